/* Server choice and health for one upstream in one worker; the states are
 * described in balancer.h. Everything here is O(number of servers) with at
 * most RELAY_BALANCER_MAX_SERVERS servers. */
#include "balancer.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

int relay_balancer_init(relay_balancer_t *b, unsigned nservers, uint32_t backoff_min_ms,
                        uint32_t backoff_max_ms) {
  memset(b, 0, sizeof *b);
  if (nservers == 0 || nservers > RELAY_BALANCER_MAX_SERVERS) return RELAY_EINVAL;
  b->n = nservers;
  b->backoff_min_ms = backoff_min_ms ? backoff_min_ms : RELAY_BALANCER_BACKOFF_MIN_MS;
  b->backoff_max_ms = backoff_max_ms ? backoff_max_ms : RELAY_BALANCER_BACKOFF_MAX_MS;
  if (b->backoff_max_ms < b->backoff_min_ms) b->backoff_max_ms = b->backoff_min_ms;
  return 0;
}

/* min << (failures - 1), computed so that no shift or multiply can overflow
 * however many failures pile up. */
uint64_t relay_balancer_backoff_ms(const relay_balancer_t *b, uint32_t failures) {
  if (failures == 0) return 0;
  uint64_t d = b->backoff_min_ms;
  for (uint32_t i = 1; i < failures && d < b->backoff_max_ms; i++) d *= 2;
  return d < b->backoff_max_ms ? d : b->backoff_max_ms;
}

static int backing_off(const relay_balancer_server_t *s, uint64_t now_ms) {
  return s->failures > 0 && now_ms < s->retry_at;
}

int relay_balancer_is_up(const relay_balancer_t *b, unsigned server, uint64_t now_ms) {
  if (server >= b->n) return 0;
  const relay_balancer_server_t *s = &b->servers[server];
  return !s->active_out && !backing_off(s, now_ms);
}

uint64_t relay_balancer_down_until(const relay_balancer_t *b, unsigned server) {
  if (server >= b->n) return UINT64_MAX;
  const relay_balancer_server_t *s = &b->servers[server];
  if (s->active_out) return UINT64_MAX;
  return s->failures > 0 ? s->retry_at : 0;
}

int relay_balancer_any_up(const relay_balancer_t *b, uint64_t now_ms) {
  for (unsigned i = 0; i < b->n; i++)
    if (relay_balancer_is_up(b, i, now_ms)) return 1;
  return 0;
}

/* A server in trial (failures > 0, back-off over) takes a request only
 * while none is outstanding on it: one connect attempt, not a burst. */
static int can_take(const relay_balancer_server_t *s, uint64_t now_ms) {
  if (s->active_out || backing_off(s, now_ms)) return 0;
  return s->failures == 0 || s->outstanding == 0;
}

/* Scan from the cursor and keep the first strictly smaller count: the least
 * outstanding wins, and among equals the one nearest after the cursor, so
 * that equal servers take turns. */
int relay_balancer_pick(relay_balancer_t *b, uint64_t now_ms, uint32_t exclude) {
  int best = RELAY_ENOSERVER;
  for (unsigned k = 0; k < b->n; k++) {
    unsigned i = (b->next + k) % b->n;
    const relay_balancer_server_t *s = &b->servers[i];
    if ((exclude >> i) & 1u) continue;
    if (!can_take(s, now_ms)) continue;
    if (best < 0 || s->outstanding < b->servers[best].outstanding) best = (int)i;
  }
  if (best < 0) return RELAY_ENOSERVER;
  b->servers[best].outstanding++;
  b->next = ((unsigned)best + 1) % b->n;
  return best;
}

void relay_balancer_done(relay_balancer_t *b, unsigned server) {
  if (server < b->n && b->servers[server].outstanding > 0) b->servers[server].outstanding--;
}

void relay_balancer_connected(relay_balancer_t *b, unsigned server) {
  if (server >= b->n) return;
  b->servers[server].failures = 0;
  b->servers[server].retry_at = 0;
}

/* Failures that overlap one back-off are one outage: only a failure after
 * the back-off (the trial's) makes the next one longer. */
void relay_balancer_failed(relay_balancer_t *b, unsigned server, uint64_t now_ms) {
  if (server >= b->n) return;
  relay_balancer_server_t *s = &b->servers[server];
  if (backing_off(s, now_ms)) return;
  if (s->failures < UINT32_MAX) s->failures++;
  s->retry_at = now_ms + relay_balancer_backoff_ms(b, s->failures);
}

void relay_balancer_checked(relay_balancer_t *b, unsigned server, int up) {
  if (server >= b->n) return;
  relay_balancer_server_t *s = &b->servers[server];
  s->active_out = !up;
  if (up) {
    s->failures = 0;
    s->retry_at = 0;
  }
}

/* ---- Server lists ---- */

typedef struct parse_s {
  char *err;
  size_t errlen;
  int index;         /* 1-based entry number, for messages */
  const char *entry; /* the entry, blanks trimmed */
  size_t len;
} parse_t;

/* `server 2 "entry": message`, with the entry cut at 64 bytes and bytes
 * outside printable ASCII shown as '?' (the list may come from anywhere). */
static int parse_error(parse_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int parse_error(parse_t *p, const char *fmt, ...) {
  char shown[72];
  size_t n = p->len < 64 ? p->len : 64;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p->entry[i];
    shown[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  strcpy(shown + n, p->len > 64 ? "..." : "");
  char msg[160];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (p->errlen) snprintf(p->err, p->errlen, "server %d \"%s\": %s", p->index, shown, msg);
  return RELAY_EINVAL;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static int is_host_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_';
}

/* An IPv6 literal as getaddrinfo takes it: hex digits, ':' and '.' (an
 * embedded IPv4), then optionally "%zone". Only the characters are checked
 * here; the resolver has the last word on the address itself. */
static int valid_v6(const char *s, size_t n) {
  size_t i = 0, colons = 0;
  for (; i < n && s[i] != '%'; i++) {
    char c = s[i];
    if (c == ':') colons++;
    else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '.')) return 0;
  }
  if (colons < 2) return 0;
  if (i == n) return 1;
  if (i + 1 == n) return 0; /* "%" with no zone */
  for (i++; i < n; i++)
    if (!is_host_char(s[i])) return 0;
  return 1;
}

/* Decimal 1-65535, digits only. */
static int parse_port(parse_t *p, const char *s, size_t n) {
  if (n == 0) return parse_error(p, "missing port after ':'");
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9' || v > 65535) return parse_error(p, "port is not a number 1-65535");
    v = v * 10 + (s[i] - '0');
  }
  if (v < 1 || v > 65535) return parse_error(p, "port is not a number 1-65535");
  return v;
}

/* "http://host:port" is the likeliest slip; it deserves its own message. */
static int has_scheme(const char *e, size_t n) {
  for (size_t i = 0; i + 3 <= n; i++)
    if (e[i] == ':' && e[i + 1] == '/' && e[i + 2] == '/') return 1;
  return 0;
}

/* One trimmed, non-empty entry into *a. */
static int parse_entry(parse_t *p, relay_server_addr_t *a) {
  const char *e = p->entry, *host, *port;
  size_t hlen, plen;
  memset(a, 0, sizeof *a);
  if (has_scheme(e, p->len)) return parse_error(p, "write host:port, without a scheme");
  if (e[0] == '[') {
    const char *close = memchr(e, ']', p->len);
    if (!close) return parse_error(p, "missing ']' after the IPv6 address");
    host = e + 1;
    hlen = (size_t)(close - host);
    if (hlen == 0 || !valid_v6(host, hlen)) return parse_error(p, "not an IPv6 address in brackets");
    const char *rest = close + 1, *end = e + p->len;
    if (rest == end) return parse_error(p, "missing \":port\"");
    if (*rest != ':') return parse_error(p, "expected \":port\" after ']'");
    port = rest + 1;
    plen = (size_t)(end - port);
    a->ipv6 = 1;
  } else {
    const char *colon = NULL;
    for (size_t i = 0; i < p->len; i++)
      if (e[i] == ':') colon = e + i;
    if (!colon) return parse_error(p, "missing \":port\"");
    host = e;
    hlen = (size_t)(colon - e);
    if (memchr(host, ':', hlen)) return parse_error(p, "an IPv6 address needs brackets, as in [::1]:8080");
    if (hlen == 0) return parse_error(p, "missing host before ':'");
    for (size_t i = 0; i < hlen; i++)
      if (!is_host_char(host[i])) return parse_error(p, "the host may only hold letters, digits, '-', '.' and '_'");
    port = colon + 1;
    plen = p->len - hlen - 1;
  }
  if (hlen >= sizeof a->host) return parse_error(p, "host longer than %d bytes", (int)sizeof a->host - 1);
  int v = parse_port(p, port, plen);
  if (v < 0) return v;
  memcpy(a->host, host, hlen);
  a->port = v;
  return 0;
}

/* The same server twice would silently double its share; say so instead. */
static int find_repeat(const relay_server_addr_t *out, size_t n, const relay_server_addr_t *a) {
  for (size_t i = 0; i < n; i++)
    if (out[i].port == a->port && strcasecmp(out[i].host, a->host) == 0) return (int)i;
  return -1;
}

int relay_balancer_parse_servers(const char *list, relay_server_addr_t *out, size_t max, char *err,
                                 size_t errlen) {
  parse_t p = {err, errlen, 0, list, 0};
  if (errlen) err[0] = 0;
  const char *s = list;
  while (is_blank(*s)) s++;
  if (*s == 0) {
    if (errlen) snprintf(err, errlen, "the server list is empty");
    return RELAY_EINVAL;
  }
  size_t n = 0;
  for (const char *cur = list;;) {
    const char *comma = strchr(cur, ',');
    const char *end = comma ? comma : cur + strlen(cur);
    const char *b = cur;
    while (b < end && is_blank(*b)) b++;
    while (end > b && is_blank(end[-1])) end--;
    p.index++;
    p.entry = b;
    p.len = (size_t)(end - b);
    if (p.len == 0) return parse_error(&p, "empty entry (two commas, or a comma at an end)");
    if (n == max) return parse_error(&p, "more than %zu servers", max);
    int rc = parse_entry(&p, &out[n]);
    if (rc < 0) return rc;
    int twin = find_repeat(out, n, &out[n]);
    if (twin >= 0) return parse_error(&p, "repeats server %d", twin + 1);
    n++;
    if (!comma) break;
    cur = comma + 1;
  }
  return (int)n;
}
