/* sse_client.c - SSE load generator, checker and idle-stream holder for the relay benchmark.
 *
 *   sse_client --port P [--host 127.0.0.1] [--path /v1/chat/completions] [--get]
 *              [--conns C] [--threads T] [--events N] [--write event|bulk]
 *              [--duration S | --requests R] [--interval-us U]
 *              [--verify] [--dump FILE] [--timeout S]
 *   sse_client --port P --idle 1000,10000 [--stage-timeout S]
 *
 * Load mode: C keep-alive connections (split over T threads) each request a stream of N
 * content events over and over, for S seconds (or R streams per connection). Prints one
 * line of key=value results: streams, events, bytes, secs, events_per_s, errors, and with
 * --interval-us the per-event latency percentiles (arrival time minus the upstream send time
 * that bench/upstream.c writes into "created").
 * --verify decodes choices[0].delta.content of every stream and compares it with the
 * expected raw and rewritten text (harmony.h); reports match counts and leftover markers.
 *
 * Idle mode: opens connections that each get one event and then stay silent, until the
 * first target is held; prints "HELD n ..." and waits for SIGUSR1 to go on to the next
 * target; after the last one, waits for SIGUSR1/SIGTERM/stdin EOF and exits.
 */
#define _GNU_SOURCE
#include <uv.h>
#include <llhttp.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>
#include <pthread.h>
#include "harmony.h"

#define LAT_MAX_US 2000000

typedef struct thr thr;

typedef struct cli {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  llhttp_t parser;
  thr *t;
  hm_buf ev;
  size_t scan;
  hm_buf content;
  int status;
  long stream_events;
  int got_first;
  int held;
  long reqs_done;
  int closing;
  int connected;
} cli;

struct thr {
  uv_loop_t loop;
  uv_thread_t th;
  uv_timer_t deadline;
  int nconns;
  cli *conns;
  /* stats */
  uint64_t events, bytes, streams, errors, bad_status;
  uint64_t match_rewritten, match_raw, match_other, markers_left, think_open, think_close;
  uint32_t *lat;
  uint64_t lat_n, lat_over;
  int stop;
  int active;
};

/* options */
static const char *o_host = "127.0.0.1";
static int o_port = 0;
static const char *o_path = "/v1/chat/completions";
static int o_get = 0;
static int o_conns = 1, o_threads = 1;
static long o_events = 64;
static int o_bulk = 0;
static double o_duration = 0;
static long o_requests = 0;
static long o_interval = 0;
static int o_verify = 0;
static const char *o_dump = NULL;
static double o_timeout = 120;
static char *o_idle = NULL;
static double o_stage_timeout = 120;

static char *g_req;
static size_t g_req_len;
static hm_buf g_exp_raw, g_exp_rw;
static int g_dumped;
static pthread_mutex_t g_dump_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sockaddr_in g_addr;
static uint64_t g_t0;
static llhttp_settings_t g_settings;

/* idle mode state (single thread) */
static long *g_stages; static int g_nstages, g_stage;
static long g_opened, g_held, g_failed, g_inflight_open;
static thr *g_idle_thr;
static uv_signal_t g_sigusr1, g_sigterm;
static uv_timer_t g_stage_timer;

static void start_request(cli *c);
static void cli_connect(cli *c);
static void idle_fill(void);

static uint64_t now_us(void) { return uv_hrtime() / 1000ULL; }

/* ---------- tiny JSON string decoder ---------- */
static void put_utf8(hm_buf *b, unsigned cp) {
  char o[4]; size_t n;
  if (cp < 0x80) { o[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) { o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F)); n = 3; }
  else { o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F)); o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); n = 4; }
  hm_put(b, o, n);
}
static unsigned hex4(const char *p) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char ch = p[i]; v <<= 4;
    if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
    else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
  }
  return v;
}
/* p points just after the opening quote; decode until the closing quote. */
static void json_decode_append(hm_buf *out, const char *p, const char *end) {
  while (p < end && *p != '"') {
    if (*p != '\\') {
      const char *q = p;
      while (q < end && *q != '"' && *q != '\\') q++;
      hm_put(out, p, (size_t)(q - p));
      p = q;
      continue;
    }
    if (p + 1 >= end) break;
    char e = p[1];
    p += 2;
    switch (e) {
      case 'n': hm_put(out, "\n", 1); break;
      case 't': hm_put(out, "\t", 1); break;
      case 'r': hm_put(out, "\r", 1); break;
      case 'b': hm_put(out, "\b", 1); break;
      case 'f': hm_put(out, "\f", 1); break;
      case 'u': {
        if (p + 4 > end) return;
        unsigned cp = hex4(p); p += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && p + 6 <= end && p[0] == '\\' && p[1] == 'u') {
          unsigned lo = hex4(p + 2);
          if (lo >= 0xDC00 && lo < 0xE000) { cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00); p += 6; }
        }
        put_utf8(out, cp);
        break;
      }
      default: hm_put(out, &e, 1); break;
    }
  }
}

static const char *find_key(const char *p, size_t n, const char *key) {
  size_t kl = strlen(key);
  const char *end = p + n;
  while (p < end) {
    const char *q = memmem(p, (size_t)(end - p), key, kl);
    if (!q) return NULL;
    q += kl;
    while (q < end && (*q == ' ' || *q == '\t')) q++;
    if (q < end && *q == ':') {
      q++;
      while (q < end && (*q == ' ' || *q == '\t')) q++;
      return q;
    }
    p = q;
  }
  return NULL;
}

/* ---------- events ---------- */

static void on_event(cli *c, const char *e, size_t n) {
  thr *t = c->t;
  if (t->stop) return;
  t->events++;
  c->stream_events++;
  if (o_idle && !c->held) {
    c->held = 1;
    g_held++;
    g_inflight_open--;
    idle_fill();
    return;
  }
  if (o_interval) {
    const char *v = find_key(e, n, "\"created\"");
    if (v) {
      uint64_t sent = strtoull(v, NULL, 10);
      if (sent > 1000) {
        uint64_t now = now_us();
        uint64_t d = now > sent ? now - sent : 0;
        if (d < LAT_MAX_US) t->lat[d]++; else t->lat_over++;
        t->lat_n++;
      }
    }
  }
  if (o_verify) {
    const char *v = find_key(e, n, "\"content\"");
    if (v && *v == '"') json_decode_append(&c->content, v + 1, e + n);
  }
}

static int cb_begin(llhttp_t *p) {
  cli *c = p->data;
  c->ev.len = 0; c->scan = 0;
  c->content.len = 0;
  if (c->content.p) c->content.p[0] = 0;
  c->stream_events = 0;
  return 0;
}
static int cb_headers_complete(llhttp_t *p) {
  cli *c = p->data;
  c->status = llhttp_get_status_code(p);
  if (c->status != 200) c->t->bad_status++;
  return 0;
}
static int cb_body(llhttp_t *p, const char *at, size_t n) {
  cli *c = p->data;
  c->t->bytes += n;
  hm_put(&c->ev, at, n);
  char *b = c->ev.p;
  size_t len = c->ev.len, start = 0, i = c->scan;
  for (;;) {
    char *q = memmem(b + i, len - i, "\n\n", 2);
    if (!q) break;
    size_t end = (size_t)(q - b);
    on_event(c, b + start, end - start);
    start = i = end + 2;
  }
  if (start) {
    memmove(b, b + start, len - start);
    c->ev.len = len - start;
  }
  c->scan = c->ev.len ? c->ev.len - 1 : 0;
  return 0;
}

static void check_stream(cli *c) {
  thr *t = c->t;
  const char *s = c->content.p ? c->content.p : "";
  size_t n = c->content.len;
  if (n == g_exp_rw.len && memcmp(s, g_exp_rw.p, n) == 0) t->match_rewritten++;
  else if (n == g_exp_raw.len && memcmp(s, g_exp_raw.p, n) == 0) t->match_raw++;
  else t->match_other++;
  t->markers_left += (uint64_t)hm_count_markers(s, n);
  for (const char *q = s; (q = memmem(q, n - (size_t)(q - s), "<think>", 7)); q += 7) t->think_open++;
  for (const char *q = s; (q = memmem(q, n - (size_t)(q - s), "</think>", 8)); q += 8) t->think_close++;
  if (o_dump) {
    pthread_mutex_lock(&g_dump_mu);
    if (!g_dumped) {
      g_dumped = 1;
      FILE *f = fopen(o_dump, "wb");
      if (f) { fwrite(s, 1, n, f); fclose(f); }
    }
    pthread_mutex_unlock(&g_dump_mu);
  }
}

static void cli_close(cli *c);

static int cb_complete(llhttp_t *p) {
  cli *c = p->data;
  thr *t = c->t;
  if (t->stop) return HPE_PAUSED;
  if (c->ev.len) { on_event(c, c->ev.p, c->ev.len); c->ev.len = 0; }
  t->streams++;
  if (o_verify) check_stream(c);
  c->reqs_done++;
  return HPE_PAUSED;
}

static void after_complete(cli *c) {
  thr *t = c->t;
  if (t->stop) return;
  int ka = llhttp_should_keep_alive(&c->parser);
  if (o_requests && c->reqs_done >= o_requests) { cli_close(c); return; }
  if (!ka) { cli_close(c); cli_connect(c); return; }
  llhttp_resume(&c->parser);
  start_request(c);
}

/* ---------- connection plumbing ---------- */

static void on_closed(uv_handle_t *h) {
  cli *c = h->data;
  c->closing = 0;
  thr *t = c->t;
  t->active--;
  if (c->connected == -1) { c->connected = 0; cli_connect(c); }
  if (t->active == 0 && !o_idle) uv_stop(&t->loop);
}

static void cli_close(cli *c) {
  if (c->closing || uv_is_closing((uv_handle_t *)&c->tcp)) return;
  c->closing = 1;
  c->connected = 0;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  static __thread char buf[256 * 1024];
  (void)h; (void)sz;
  *b = uv_buf_init(buf, sizeof buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  cli *c = s->data;
  thr *t = c->t;
  if (n == 0) return;
  if (n < 0) {
    if (!t->stop) {
      t->errors++;
      if (o_idle) {
        g_failed++;
        if (!c->held) g_inflight_open--; else g_held--;
        cli_close(c);
        idle_fill();
        return;
      }
    }
    cli_close(c);
    return;
  }
  enum llhttp_errno e = llhttp_execute(&c->parser, b->base, (size_t)n);
  if (e == HPE_PAUSED) { after_complete(c); return; }
  if (e != HPE_OK) {
    if (!t->stop) {
      t->errors++;
      fprintf(stderr, "sse_client: parse error %s: %s\n", llhttp_errno_name(e), llhttp_get_error_reason(&c->parser));
    }
    cli_close(c);
  }
}

static void on_written(uv_write_t *w, int status) {
  cli *c = w->data;
  if (status < 0 && !c->t->stop) { c->t->errors++; cli_close(c); }
}

static void start_request(cli *c) {
  uv_buf_t b = uv_buf_init(g_req, (unsigned)g_req_len);
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) { c->t->errors++; cli_close(c); }
}

static void on_connect(uv_connect_t *r, int status) {
  cli *c = r->data;
  if (status < 0) {
    if (!c->t->stop) {
      c->t->errors++;
      fprintf(stderr, "sse_client: connect: %s\n", uv_strerror(status));
      if (o_idle) { g_failed++; g_inflight_open--; }
    }
    cli_close(c);
    if (o_idle) idle_fill();
    return;
  }
  c->connected = 1;
  uv_tcp_nodelay(&c->tcp, 1);
  llhttp_init(&c->parser, HTTP_RESPONSE, &g_settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  start_request(c);
}

static void cli_connect(cli *c) {
  thr *t = c->t;
  if (t->stop) return;
  if (c->closing) { c->connected = -1; return; } /* reconnect after close completes */
  uv_tcp_init(&t->loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  c->held = 0;
  t->active++;
  int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&g_addr, on_connect);
  if (r < 0) {
    t->errors++;
    fprintf(stderr, "sse_client: connect: %s\n", uv_strerror(r));
    if (o_idle) { g_failed++; g_inflight_open--; }
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
}

/* ---------- load mode ---------- */

static void on_deadline(uv_timer_t *tm) {
  thr *t = tm->data;
  t->stop = 1;
  uv_stop(&t->loop);
}

static void thr_main(void *arg) {
  thr *t = arg;
  uv_run(&t->loop, UV_RUN_DEFAULT);
}

/* ---------- idle mode ---------- */

static void idle_report(void) {
  printf("HELD %ld target=%ld failed=%ld opened=%ld\n", g_held, g_stages[g_stage], g_failed, g_opened);
  fflush(stdout);
}

static void idle_fill(void) {
  if (g_stage >= g_nstages) return;
  long target = g_stages[g_stage];
  thr *t = g_idle_thr;
  while (g_held + g_inflight_open < target && g_inflight_open < 256 && g_opened < t->nconns) {
    cli *c = &t->conns[g_opened++];
    c->t = t;
    g_inflight_open++;
    cli_connect(c);
  }
  if (g_held >= target && uv_is_active((uv_handle_t *)&g_stage_timer)) {
    uv_timer_stop(&g_stage_timer);
    idle_report();
  } else if (g_opened >= t->nconns && g_inflight_open == 0 && uv_is_active((uv_handle_t *)&g_stage_timer)) {
    uv_timer_stop(&g_stage_timer);
    idle_report();
  }
}

static void on_stage_timeout(uv_timer_t *tm) {
  (void)tm;
  fprintf(stderr, "sse_client: stage timeout\n");
  idle_report();
}

static void on_usr1(uv_signal_t *s, int sig) {
  (void)s; (void)sig;
  g_stage++;
  if (g_stage >= g_nstages) { printf("DONE\n"); fflush(stdout); exit(0); }
  uv_timer_start(&g_stage_timer, on_stage_timeout, (uint64_t)(o_stage_timeout * 1000), 0);
  idle_fill();
}
static void on_term(uv_signal_t *s, int sig) { (void)s; (void)sig; exit(0); }

/* ---------- main ---------- */

static void usage(const char *a) {
  fprintf(stderr, "usage: %s --port P [--host H] [--path P] [--get] [--conns C] [--threads T] [--events N]\n"
                  "  [--write event|bulk] [--duration S | --requests R] [--interval-us U] [--verify]\n"
                  "  [--dump FILE] [--timeout S] [--idle N1,N2,...] [--stage-timeout S]\n", a);
  exit(2);
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(argv[0]), ""))
    if (!strcmp(a, "--host")) o_host = ARG();
    else if (!strcmp(a, "--port")) o_port = atoi(ARG());
    else if (!strcmp(a, "--path")) o_path = ARG();
    else if (!strcmp(a, "--get")) o_get = 1;
    else if (!strcmp(a, "--conns")) o_conns = atoi(ARG());
    else if (!strcmp(a, "--threads")) o_threads = atoi(ARG());
    else if (!strcmp(a, "--events")) o_events = atol(ARG());
    else if (!strcmp(a, "--write")) o_bulk = !strcmp(ARG(), "bulk");
    else if (!strcmp(a, "--duration")) o_duration = atof(ARG());
    else if (!strcmp(a, "--requests")) o_requests = atol(ARG());
    else if (!strcmp(a, "--interval-us")) o_interval = atol(ARG());
    else if (!strcmp(a, "--verify")) o_verify = 1;
    else if (!strcmp(a, "--dump")) { o_dump = ARG(); o_verify = 1; }
    else if (!strcmp(a, "--timeout")) o_timeout = atof(ARG());
    else if (!strcmp(a, "--idle")) o_idle = ARG();
    else if (!strcmp(a, "--stage-timeout")) o_stage_timeout = atof(ARG());
    else usage(argv[0]);
  }
  if (!o_port) usage(argv[0]);
  if (o_threads < 1) o_threads = 1;
  if (o_idle) o_threads = 1;
  if (!o_duration && !o_requests && !o_idle) o_requests = 1;
  uv_ip4_addr(o_host, o_port, &g_addr);
  o_events = hm_clamp_events(o_events);
  hm_expected((int)o_events, 0, &g_exp_raw);
  hm_expected((int)o_events, 1, &g_exp_rw);

  static const char body[] = "{\"model\":\"gpt-oss-20b\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
  hm_buf rq = {0};
  char tmp[512];
  snprintf(tmp, sizeof tmp, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n"
           "X-Bench-Events: %ld\r\nX-Bench-Write: %s\r\n",
           o_get ? "GET" : "POST", o_path, o_host, o_port, o_events, o_bulk ? "bulk" : "event");
  hm_puts(&rq, tmp);
  if (o_interval) { snprintf(tmp, sizeof tmp, "X-Bench-Interval-Us: %ld\r\n", o_interval); hm_puts(&rq, tmp); }
  if (o_idle) hm_puts(&rq, "X-Bench-Idle: 1\r\n");
  if (!o_get) {
    snprintf(tmp, sizeof tmp, "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", sizeof body - 1, body);
    hm_puts(&rq, tmp);
  } else hm_puts(&rq, "\r\n");
  g_req = rq.p; g_req_len = rq.len;

  llhttp_settings_init(&g_settings);
  g_settings.on_message_begin = cb_begin;
  g_settings.on_headers_complete = cb_headers_complete;
  g_settings.on_body = cb_body;
  g_settings.on_message_complete = cb_complete;

  if (o_idle) {
    long maxn = 0;
    char *s = strdup(o_idle);
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
      g_stages = realloc(g_stages, sizeof(long) * (size_t)(g_nstages + 1));
      g_stages[g_nstages++] = atol(tok);
      if (atol(tok) > maxn) maxn = atol(tok);
    }
    thr *t = calloc(1, sizeof *t);
    g_idle_thr = t;
    uv_loop_init(&t->loop);
    t->nconns = (int)maxn;
    t->conns = calloc((size_t)maxn, sizeof(cli));
    uv_signal_init(&t->loop, &g_sigusr1);
    uv_signal_start(&g_sigusr1, on_usr1, SIGUSR1);
    uv_signal_init(&t->loop, &g_sigterm);
    uv_signal_start(&g_sigterm, on_term, SIGTERM);
    uv_timer_init(&t->loop, &g_stage_timer);
    uv_timer_start(&g_stage_timer, on_stage_timeout, (uint64_t)(o_stage_timeout * 1000), 0);
    idle_fill();
    uv_run(&t->loop, UV_RUN_DEFAULT);
    return 0;
  }

  thr *ts = calloc((size_t)o_threads, sizeof *ts);
  int per = o_conns / o_threads, extra = o_conns % o_threads;
  double limit = o_duration ? o_duration : o_timeout;
  g_t0 = now_us();
  for (int i = 0; i < o_threads; i++) {
    thr *t = &ts[i];
    uv_loop_init(&t->loop);
    t->nconns = per + (i < extra);
    t->conns = calloc((size_t)(t->nconns ? t->nconns : 1), sizeof(cli));
    if (o_interval) t->lat = calloc(LAT_MAX_US, sizeof(uint32_t));
    uv_timer_init(&t->loop, &t->deadline);
    t->deadline.data = t;
    uv_timer_start(&t->deadline, on_deadline, (uint64_t)(limit * 1000), 0);
    for (int k = 0; k < t->nconns; k++) { t->conns[k].t = t; cli_connect(&t->conns[k]); }
  }
  for (int i = 1; i < o_threads; i++) uv_thread_create(&ts[i].th, thr_main, &ts[i]);
  thr_main(&ts[0]);
  for (int i = 1; i < o_threads; i++) uv_thread_join(&ts[i].th);
  double secs = (double)(now_us() - g_t0) / 1e6;
  if (o_duration && secs > o_duration) secs = o_duration;

  thr sum = {0};
  uint32_t *lat = o_interval ? calloc(LAT_MAX_US, sizeof(uint32_t)) : NULL;
  int timed_out = 0;
  for (int i = 0; i < o_threads; i++) {
    thr *t = &ts[i];
    sum.events += t->events; sum.bytes += t->bytes; sum.streams += t->streams;
    sum.errors += t->errors; sum.bad_status += t->bad_status;
    sum.match_rewritten += t->match_rewritten; sum.match_raw += t->match_raw; sum.match_other += t->match_other;
    sum.markers_left += t->markers_left; sum.think_open += t->think_open; sum.think_close += t->think_close;
    sum.lat_n += t->lat_n; sum.lat_over += t->lat_over;
    if (lat) for (int k = 0; k < LAT_MAX_US; k++) lat[k] += t->lat[k];
    if (!o_duration && t->stop) timed_out = 1;
  }
  printf("streams=%llu events=%llu bytes=%llu secs=%.3f events_per_s=%.0f errors=%llu bad_status=%llu",
         (unsigned long long)sum.streams, (unsigned long long)sum.events, (unsigned long long)sum.bytes, secs,
         secs > 0 ? (double)sum.events / secs : 0.0, (unsigned long long)sum.errors,
         (unsigned long long)sum.bad_status);
  if (timed_out) printf(" timed_out=1");
  if (o_verify)
    printf(" match_rewritten=%llu match_raw=%llu match_other=%llu markers_left=%llu think_open=%llu think_close=%llu",
           (unsigned long long)sum.match_rewritten, (unsigned long long)sum.match_raw,
           (unsigned long long)sum.match_other, (unsigned long long)sum.markers_left,
           (unsigned long long)sum.think_open, (unsigned long long)sum.think_close);
  if (lat) {
    uint64_t want50 = sum.lat_n / 2, want90 = sum.lat_n * 9 / 10, want99 = sum.lat_n * 99 / 100, acc = 0;
    long p50 = -1, p90 = -1, p99 = -1, mx = 0;
    for (long k = 0; k < LAT_MAX_US; k++) {
      if (!lat[k]) continue;
      acc += lat[k];
      mx = k;
      if (p50 < 0 && acc > want50) p50 = k;
      if (p90 < 0 && acc > want90) p90 = k;
      if (p99 < 0 && acc > want99) p99 = k;
    }
    printf(" lat_samples=%llu lat_p50_us=%ld lat_p90_us=%ld lat_p99_us=%ld lat_max_us=%ld lat_over_2s=%llu",
           (unsigned long long)sum.lat_n, p50, p90, p99, mx, (unsigned long long)sum.lat_over);
  }
  printf("\n");
  fflush(stdout);
  return (sum.errors || sum.bad_status || timed_out) ? 1 : 0;
}
