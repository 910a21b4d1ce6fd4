#include "head.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

void relay_head_init(relay_head_t *h, size_t limit) {
  memset(h, 0, sizeof *h);
  relay_buf_init(&h->bytes);
  h->limit = limit;
}

/* Keep the storage: a keep-alive connection parses many heads. */
void relay_head_reset(relay_head_t *h) {
  relay_buf_reset(&h->bytes);
  h->n = 0;
  h->target_off = h->target_len = 0;
  h->in_value = 0;
}

void relay_head_dispose(relay_head_t *h) {
  relay_buf_dispose(&h->bytes);
  free(h->hdrs);
  h->hdrs = NULL;
  h->n = h->cap = 0;
}

/* Every byte of the head counts against one limit so that a client cannot
 * make the relay buffer an unbounded head (431). */
static int relay_head_append(relay_head_t *h, const char *at, size_t len) {
  if (h->bytes.len + len > h->limit) return RELAY_ETOOBIG;
  return relay_buf_append(&h->bytes, at, len) ? RELAY_ENOMEM : 0;
}

int relay_head_on_target(relay_head_t *h, const char *at, size_t len) {
  if (h->target_len == 0) h->target_off = (uint32_t)h->bytes.len;
  int rc = relay_head_append(h, at, len);
  if (rc == 0) h->target_len += (uint32_t)len;
  return rc;
}

static int relay_head_grow(relay_head_t *h) {
  /* A field's name and value are offsets into bytes: bytes must exist even
   * when every field so far is empty, so that no offset is taken from NULL. */
  if (!h->bytes.data && relay_buf_reserve(&h->bytes, 1)) return RELAY_ENOMEM;
  if (h->n < h->cap) return 0;
  size_t cap = h->cap ? h->cap * 2 : 16;
  relay_header_t *p = realloc(h->hdrs, cap * sizeof *p);
  if (!p) return RELAY_ENOMEM;
  h->hdrs = p;
  h->cap = cap;
  return 0;
}

/* A name piece after a value starts a new field; otherwise it continues the
 * name llhttp split across two reads. */
int relay_head_on_field(relay_head_t *h, const char *at, size_t len) {
  if (h->n == 0 || h->in_value) {
    if (relay_head_grow(h)) return RELAY_ENOMEM;
    relay_header_t *f = &h->hdrs[h->n++];
    f->name_off = (uint32_t)h->bytes.len;
    f->name_len = 0;
    f->value_off = 0;
    f->value_len = 0;
    h->in_value = 0;
  }
  int rc = relay_head_append(h, at, len);
  if (rc == 0) h->hdrs[h->n - 1].name_len += (uint32_t)len;
  return rc;
}

int relay_head_on_value(relay_head_t *h, const char *at, size_t len) {
  if (h->n == 0) return 0;
  relay_header_t *f = &h->hdrs[h->n - 1];
  if (!h->in_value) {
    f->value_off = (uint32_t)h->bytes.len;
    h->in_value = 1;
  }
  int rc = relay_head_append(h, at, len);
  if (rc == 0) f->value_len += (uint32_t)len;
  return rc;
}

int relay_head_add(relay_head_t *h, const char *name, const char *value, size_t value_len) {
  if (relay_head_grow(h)) return RELAY_ENOMEM;
  relay_header_t *f = &h->hdrs[h->n++];
  size_t name_len = strlen(name);
  f->name_off = (uint32_t)h->bytes.len;
  f->name_len = (uint32_t)name_len;
  f->value_off = (uint32_t)(h->bytes.len + name_len);
  f->value_len = (uint32_t)value_len;
  h->in_value = 1;
  int rc = relay_head_append(h, name, name_len);
  return rc ? rc : relay_head_append(h, value, value_len);
}

int relay_name_eq(const char *a, size_t alen, const char *b) {
  size_t blen = strlen(b);
  return alen == blen && strncasecmp(a, b, alen) == 0;
}

int relay_head_find(const relay_head_t *h, const char *name, size_t from) {
  for (size_t i = from; i < h->n; i++)
    if (relay_name_eq(relay_head_name(h, i), h->hdrs[i].name_len, name)) return (int)i;
  return -1;
}

/* The next element of a comma-separated field value (RFC 9110 5.6.1), from
 * *pos: its bounds without the whitespace around it. Returns 0 at the end;
 * empty elements are skipped. */
static int list_next(const char *v, size_t len, size_t *pos, size_t *start, size_t *end) {
  size_t i = *pos;
  for (;;) {
    while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    if (i >= len) {
      *pos = i;
      return 0;
    }
    size_t s = i;
    while (i < len && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e > s) {
      *pos = i;
      *start = s;
      *end = e;
      return 1;
    }
  }
}

int relay_head_value_has_token(const char *value, size_t len, const char *token) {
  size_t tlen = strlen(token), pos = 0, start, end;
  while (list_next(value, len, &pos, &start, &end))
    if (end - start == tlen && strncasecmp(value + start, token, tlen) == 0) return 1;
  return 0;
}

int relay_head_te_is_chunked_only(const relay_head_t *h) {
  size_t codings = 0;
  for (int i = relay_head_find(h, "transfer-encoding", 0); i >= 0;
       i = relay_head_find(h, "transfer-encoding", (size_t)i + 1)) {
    const char *v = relay_head_value(h, (size_t)i);
    size_t pos = 0, start, end;
    while (list_next(v, h->hdrs[i].value_len, &pos, &start, &end))
      if (++codings > 1 || end - start != 7 || strncasecmp(v + start, "chunked", 7) != 0) return 0;
  }
  return 1;
}

/* Scheme per RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) then "://".
 * Returns the length of "scheme://", or 0 for any other target. */
static size_t relay_target_scheme_len(const char *t, size_t len) {
  size_t i = 0;
  if (len == 0 || !((t[0] | 0x20) >= 'a' && (t[0] | 0x20) <= 'z')) return 0;
  while (i < len) {
    char ch = t[i];
    int ok = ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') || (ch >= '0' && ch <= '9') || ch == '+' ||
             ch == '-' || ch == '.';
    if (!ok) break;
    i++;
  }
  if (len - i < 3 || memcmp(t + i, "://", 3) != 0) return 0;
  return i + 3;
}

/* One split for everything that reads the target (upstream request line,
 * route matching, the script's req.path/query/target): what a script allows
 * is exactly what the upstream receives. */
void relay_target_split(const char *t, size_t len, relay_target_t *out) {
  size_t i = relay_target_scheme_len(t, len);
  if (i) {
    while (i < len && t[i] != '/' && t[i] != '?' && t[i] != '#') i++;
  }
  size_t start = i;
  while (i < len && t[i] != '?' && t[i] != '#') i++;
  out->path = t + start;
  out->path_len = i - start;
  if (out->path_len == 0) {
    out->path = "/";
    out->path_len = 1;
  }
  out->has_query = i < len && t[i] == '?';
  out->query = out->has_query ? t + i + 1 : "";
  out->query_len = 0;
  if (out->has_query) {
    size_t q = i + 1;
    while (q < len && t[q] != '#') q++;
    out->query_len = q - (i + 1);
  }
}

static int relay_kind_eq(const char *name, const char *lower, size_t len) {
  return strncasecmp(name, lower, len) == 0;
}

/* Dispatch on the length first: most fields are rejected by one compare. */
relay_field_kind_t relay_field_kind(const char *n, size_t len) {
  switch (len) {
    case 2: return relay_kind_eq(n, "te", 2) ? RELAY_FIELD_TE : RELAY_FIELD_OTHER;
    case 4: return relay_kind_eq(n, "host", 4) ? RELAY_FIELD_HOST : RELAY_FIELD_OTHER;
    case 6: return relay_kind_eq(n, "expect", 6) ? RELAY_FIELD_EXPECT : RELAY_FIELD_OTHER;
    case 7:
      if (relay_kind_eq(n, "upgrade", 7)) return RELAY_FIELD_UPGRADE;
      return relay_kind_eq(n, "trailer", 7) ? RELAY_FIELD_TRAILER : RELAY_FIELD_OTHER;
    case 10:
      if (relay_kind_eq(n, "connection", 10)) return RELAY_FIELD_CONNECTION;
      return relay_kind_eq(n, "keep-alive", 10) ? RELAY_FIELD_KEEP_ALIVE : RELAY_FIELD_OTHER;
    case 14: return relay_kind_eq(n, "content-length", 14) ? RELAY_FIELD_CONTENT_LENGTH : RELAY_FIELD_OTHER;
    case 15:
      if (relay_kind_eq(n, "accept-encoding", 15)) return RELAY_FIELD_ACCEPT_ENCODING;
      return relay_kind_eq(n, "x-forwarded-for", 15) ? RELAY_FIELD_X_FORWARDED_FOR : RELAY_FIELD_OTHER;
    case 16:
      return relay_kind_eq(n, "proxy-connection", 16) ? RELAY_FIELD_PROXY_CONNECTION : RELAY_FIELD_OTHER;
    case 17:
      if (relay_kind_eq(n, "transfer-encoding", 17)) return RELAY_FIELD_TRANSFER_ENCODING;
      return relay_kind_eq(n, "x-forwarded-proto", 17) ? RELAY_FIELD_X_FORWARDED_PROTO : RELAY_FIELD_OTHER;
    default: return RELAY_FIELD_OTHER;
  }
}

int relay_field_kind_is_hop_by_hop(relay_field_kind_t k) {
  switch (k) {
    case RELAY_FIELD_CONNECTION:
    case RELAY_FIELD_KEEP_ALIVE:
    case RELAY_FIELD_PROXY_CONNECTION:
    case RELAY_FIELD_TE:
    case RELAY_FIELD_TRAILER:
    case RELAY_FIELD_UPGRADE:
    case RELAY_FIELD_TRANSFER_ENCODING: return 1;
    default: return 0;
  }
}

/* A listed name the relay owns or always drops needs no slot. */
static int relay_conn_token_ignored(const char *p, size_t len) {
  relay_field_kind_t k = relay_field_kind(p, len);
  if (relay_field_kind_is_hop_by_hop(k)) return 1;
  return k == RELAY_FIELD_CONTENT_LENGTH || k == RELAY_FIELD_HOST || k == RELAY_FIELD_X_FORWARDED_FOR ||
         k == RELAY_FIELD_X_FORWARDED_PROTO || (len == 5 && strncasecmp(p, "close", 5) == 0);
}

static int relay_conn_tokens_add(relay_conn_tokens_t *ct, const char *p, size_t len) {
  if (len == 5 && strncasecmp(p, "close", 5) == 0) ct->close = 1;
  else if (len == 10 && strncasecmp(p, "keep-alive", 10) == 0) ct->keep_alive = 1;
  else if (len == 7 && strncasecmp(p, "upgrade", 7) == 0) ct->upgrade = 1;
  if (relay_conn_token_ignored(p, len) || relay_conn_tokens_has(ct, p, len)) return 0;
  if (ct->n == RELAY_CONN_TOKENS_MAX) return RELAY_ETOKENS;
  ct->tok[ct->n].p = p;
  ct->tok[ct->n].len = len;
  ct->n++;
  return 0;
}

int relay_conn_tokens_collect(relay_conn_tokens_t *ct, const relay_head_t *h) {
  ct->n = 0;
  ct->close = ct->keep_alive = ct->upgrade = 0;
  for (size_t f = 0; f < h->n; f++) {
    if (h->hdrs[f].name_len != 10 || relay_field_kind(relay_head_name(h, f), 10) != RELAY_FIELD_CONNECTION)
      continue;
    const char *v = relay_head_value(h, f);
    size_t pos = 0, start, end;
    while (list_next(v, h->hdrs[f].value_len, &pos, &start, &end))
      if (relay_conn_tokens_add(ct, v + start, end - start)) return RELAY_ETOKENS;
  }
  return 0;
}

int relay_conn_tokens_has(const relay_conn_tokens_t *ct, const char *name, size_t len) {
  for (size_t i = 0; i < ct->n; i++)
    if (ct->tok[i].len == len && strncasecmp(ct->tok[i].p, name, len) == 0) return 1;
  return 0;
}
