/* upstream.c - a fast, minimal OpenAI-compatible HTTP/1.1 server for benchmarking the relay.
 *
 *   upstream [--host 127.0.0.1] [--port 18001] [--threads N]
 *
 * N threads (default: nproc), each with its own libuv loop and a listening socket bound with
 * SO_REUSEPORT on the same port. Keep-alive; requests parsed with llhttp.
 *
 * Routes (method is not checked):
 *   /v1/models               small JSON
 *   /upload                  reads and discards the body, answers {"ok":true,"bytes":N}
 *   /v1/chat/completions     body contains "stream":true -> SSE harmony stream, else a JSON completion
 *   /v1/stream               the same SSE stream (a route the relay does not rewrite)
 *   anything else            404 JSON
 *
 * Stream knobs, as request headers or query parameters:
 *   X-Bench-Events: N        / ?events=N        content events (default 64; see harmony.h)
 *   X-Bench-Write: event|bulk / ?write=...      one write per event (default, like real servers)
 *                                               or 64 KiB writes
 *   X-Bench-Interval-Us: U   / ?interval_us=U   pace: one event every U us (ms timer resolution);
 *                                               "created" carries the send time (CLOCK_MONOTONIC us)
 *   X-Bench-Idle: 1          / ?idle=1          send headers + one event, then hold the connection
 *   X-Bench-Form: F          / ?form=F          harmony (default: markers in content), reasoning
 *                                               (reasoning_content, then content: llama.cpp), tool
 *                                               (harmony with a tool call in content: mlx_lm.server)
 */
#define _GNU_SOURCE
#include <uv.h>
#include <llhttp.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>
#include <signal.h>
#include <strings.h>
#include <ctype.h>
#include "harmony.h"

#define MAX_INFLIGHT 32
#define READ_BUF (256 * 1024)
#define MAX_PENDING (256 * 1024)
#define CACHE_SLOTS 16

typedef struct {
  int n;                /* content events */
  int form;             /* HM_FORM_* */
  char *data;           /* chunked body: every event its own chunk, then "0\r\n\r\n" */
  size_t len;
  size_t *off;          /* unit k = [off[k], off[k+1]); units = n + 2 events + terminator */
  int nunits;
  char *json;           /* the non-stream completion, full response without head */
  size_t json_len;
} stream_t;

typedef struct worker {
  uv_loop_t loop;
  uv_tcp_t server;
  uv_thread_t thread;
  int id;
  char rbuf[READ_BUF];
  stream_t *cache[CACHE_SLOTS];
  int cache_next;
} worker;

typedef struct conn {
  uv_tcp_t tcp;
  worker *w;
  llhttp_t parser;
  llhttp_settings_t *settings;
  /* request */
  char url[1024]; size_t url_len;
  char hf[64]; size_t hf_len;
  char hv[64]; size_t hv_len;
  char body[4096]; size_t body_len;
  unsigned long long body_total;
  long events; int bulk; long interval_us; int idle; int form;
  int keepalive;
  /* response */
  int responding;
  stream_t *s;
  size_t pos; int unit; int last_unit;
  int inflight;
  uv_write_t wr[MAX_INFLIGHT];
  int freelist[MAX_INFLIGHT]; int nfree;
  char head[512];
  uv_timer_t timer; int timer_on; int paced_i;
  char *pending; size_t pend_len, pend_cap;
  int closing;
  int closing_handles;
} conn;

static int g_threads;
static char g_host[64] = "127.0.0.1";
static int g_port = 18001;

static const char MODELS_JSON[] =
  "{\"object\":\"list\",\"data\":[{\"id\":\"gpt-oss-20b\",\"object\":\"model\",\"created\":1,"
  "\"owned_by\":\"bench\"}]}";

/* ---------- stream cache ---------- */

static void chunk_append(hm_buf *b, const char *s, size_t n) {
  char hx[24];
  int k = snprintf(hx, sizeof hx, "%zx\r\n", n);
  hm_put(b, hx, (size_t)k);
  hm_put(b, s, n);
  hm_put(b, "\r\n", 2);
}

/* Content event i of a stream of n events in a form. */
static int form_event(char *out, size_t cap, int form, int n, int i) {
  if (form == HM_FORM_TOOL) return snprintf(out, cap, HM_EVENT_FMT, 1ULL, hm_tool_token(n, i));
  if (form == HM_FORM_REASONING)
    return snprintf(out, cap, i < n / 2 ? HM_REASONING_EVENT_FMT : HM_EVENT_FMT, 1ULL, HM_WORDS[i % HM_NWORDS].json);
  return snprintf(out, cap, HM_EVENT_FMT, 1ULL, hm_token(n, i).json);
}

static stream_t *get_stream(worker *w, long nreq, int form) {
  int n = hm_clamp_events(nreq);
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (w->cache[i] && w->cache[i]->n == n && w->cache[i]->form == form) return w->cache[i];
  stream_t *s = calloc(1, sizeof *s);
  s->n = n;
  s->form = form;
  s->nunits = n + 3;
  s->off = malloc(sizeof(size_t) * (size_t)(s->nunits + 1));
  hm_buf b = {0}, ev = {0}, text = {0};
  char tmp[512];
  for (int i = 0; i < n; i++) {
    s->off[i] = b.len;
    int k = form_event(tmp, sizeof tmp, form, n, i);
    chunk_append(&b, tmp, (size_t)k);
    hm_puts(&text, hm_token(n, i).json);
  }
  s->off[n] = b.len;
  chunk_append(&b, HM_FINISH_EVENT, sizeof HM_FINISH_EVENT - 1);
  s->off[n + 1] = b.len;
  chunk_append(&b, HM_DONE_EVENT, sizeof HM_DONE_EVENT - 1);
  s->off[n + 2] = b.len;
  hm_puts(&b, "0\r\n\r\n");
  s->off[n + 3] = b.len;
  s->data = b.p; s->len = b.len;
  /* non-stream JSON completion body */
  hm_puts(&ev, "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-oss-20b\","
               "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"");
  hm_put(&ev, text.p, text.len);
  snprintf(tmp, sizeof tmp, "\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":10,"
           "\"completion_tokens\":%d,\"total_tokens\":%d}}", n, n + 10);
  hm_puts(&ev, tmp);
  s->json = ev.p; s->json_len = ev.len;
  free(text.p);
  int slot = w->cache_next++ % CACHE_SLOTS;
  /* old entries are leaked on purpose: a connection may still be writing from them
     (the bench uses only a handful of sizes). */
  w->cache[slot] = s;
  return s;
}

/* ---------- connection plumbing ---------- */

static void on_close(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->closing_handles > 0) return;
  free(c->pending);
  free(c);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->timer_on) { uv_timer_stop(&c->timer); }
  c->closing_handles = 2;
  uv_close((uv_handle_t *)&c->timer, on_close);
  uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void feed(conn *c, const char *data, size_t len);
static void pump(conn *c);

static void response_done(conn *c) {
  c->responding = 0;
  c->s = NULL;
  if (!c->keepalive) { conn_close(c); return; }
  llhttp_resume(&c->parser);
  if (c->pend_len) {
    size_t n = c->pend_len;
    c->pend_len = 0;
    /* feed() may stash a suffix of this buffer again; it uses memmove. */
    feed(c, c->pending, n);
  }
}

static void on_write(uv_write_t *req, int status) {
  conn *c = req->data;
  int idx = (int)(req - c->wr);
  c->freelist[c->nfree++] = idx;
  c->inflight--;
  if (status < 0 || c->closing) { conn_close(c); return; }
  pump(c);
}

static int write_buf(conn *c, const char *p, size_t n) {
  if (c->nfree == 0) return -1;
  int idx = c->freelist[--c->nfree];
  uv_write_t *req = &c->wr[idx];
  req->data = c;
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int r = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (r < 0) { c->freelist[c->nfree++] = idx; conn_close(c); return -1; }
  c->inflight++;
  return 0;
}

/* Paced writes own their memory. */
typedef struct { uv_write_t req; conn *c; char data[600]; } paced_wr;
static void on_paced_write(uv_write_t *req, int status) {
  paced_wr *pw = (paced_wr *)req;
  conn *c = pw->c;
  free(pw);
  c->inflight--;
  if (status < 0 || c->closing) { conn_close(c); return; }
  pump(c);
}

static void paced_tick(uv_timer_t *t) {
  conn *c = t->data;
  if (c->closing) return;
  stream_t *s = c->s;
  paced_wr *pw = malloc(sizeof *pw);
  pw->c = c;
  pw->req.data = c;
  size_t len;
  if (c->paced_i < s->n) {
    char ev[512];
    unsigned long long now_us = uv_hrtime() / 1000ULL;
    int k = snprintf(ev, sizeof ev, HM_EVENT_FMT, now_us, hm_token(s->n, c->paced_i).json);
    len = (size_t)snprintf(pw->data, sizeof pw->data, "%x\r\n%s\r\n", k, ev);
    c->paced_i++;
  } else {
    len = s->off[s->nunits] - s->off[s->n];
    memcpy(pw->data, s->data + s->off[s->n], len);
    uv_timer_stop(&c->timer);
    c->timer_on = 0;
    c->paced_i = -1; /* finished */
  }
  uv_buf_t b = uv_buf_init(pw->data, (unsigned)len);
  if (uv_write(&pw->req, (uv_stream_t *)&c->tcp, &b, 1, on_paced_write) < 0) {
    free(pw); conn_close(c); return;
  }
  c->inflight++;
}

static void pump(conn *c) {
  if (!c->responding || c->closing) return;
  stream_t *s = c->s;
  if (s && !c->timer_on && c->paced_i == 0 && c->interval_us == 0) {
    if (c->bulk) {
      size_t end = s->off[c->last_unit];
      while (c->inflight < 4 && c->pos < end) {
        size_t n = end - c->pos;
        if (n > 65536) n = 65536;
        if (write_buf(c, s->data + c->pos, n) < 0) return;
        c->pos += n;
      }
    } else {
      while (c->inflight < MAX_INFLIGHT && c->unit < c->last_unit) {
        size_t a = s->off[c->unit], b = s->off[c->unit + 1];
        if (write_buf(c, s->data + a, b - a) < 0) return;
        c->unit++;
      }
    }
    int finished = c->bulk ? c->pos >= s->off[c->last_unit] : c->unit >= c->last_unit;
    if (finished && c->inflight == 0 && !c->idle) response_done(c);
    return;
  }
  if (s && c->interval_us) {
    if (c->paced_i == -1 && c->inflight == 0) response_done(c);
    return;
  }
  if (!s && c->inflight == 0) response_done(c);
}

static const char *path_end(const char *u) {
  const char *q = strchr(u, '?');
  return q ? q : u + strlen(u);
}
static int path_is(const char *u, const char *p) {
  size_t n = (size_t)(path_end(u) - u);
  return n == strlen(p) && memcmp(u, p, n) == 0;
}
static long query_num(const char *u, const char *key, long def) {
  const char *q = strchr(u, '?');
  size_t kl = strlen(key);
  while (q) {
    q++;
    if (strncmp(q, key, kl) == 0 && q[kl] == '=') return strtol(q + kl + 1, NULL, 10);
    q = strchr(q, '&');
  }
  return def;
}
static const char *query_str(const char *u, const char *key) {
  const char *q = strchr(u, '?');
  size_t kl = strlen(key);
  while (q) {
    q++;
    if (strncmp(q, key, kl) == 0 && q[kl] == '=') return q + kl + 1;
    q = strchr(q, '&');
  }
  return NULL;
}

static const char *conn_hdr(conn *c) { return c->keepalive ? "" : "Connection: close\r\n"; }

static void respond_json(conn *c, int status, const char *body, size_t len) {
  int k = snprintf(c->head, sizeof c->head,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n%s\r\n",
                   status, status == 200 ? "OK" : "Not Found", len, conn_hdr(c));
  c->s = NULL;
  write_buf(c, c->head, (size_t)k);
  if (len) write_buf(c, body, len);
}

static void dispatch(conn *c) {
  c->responding = 1;
  c->url[c->url_len] = 0;
  const char *u = c->url;
  c->events = query_num(u, "events", c->events);
  c->interval_us = query_num(u, "interval_us", c->interval_us);
  c->idle = (int)query_num(u, "idle", c->idle);
  const char *fm = query_str(u, "form");
  if (fm) c->form = !strncmp(fm, "reasoning", 9) ? HM_FORM_REASONING : !strncmp(fm, "tool", 4) ? HM_FORM_TOOL : 0;
  const char *wm = query_str(u, "write");
  if (wm) c->bulk = strncmp(wm, "bulk", 4) == 0;
  c->body[c->body_len < sizeof c->body ? c->body_len : sizeof c->body - 1] = 0;
  int is_chat = path_is(u, "/v1/chat/completions");
  int stream = path_is(u, "/v1/stream") ||
               (is_chat && (strstr(c->body, "\"stream\":true") || strstr(c->body, "\"stream\": true")));
  if (stream) {
    stream_t *s = get_stream(c->w, c->events, c->form);
    c->s = s;
    c->unit = 0; c->pos = 0; c->paced_i = 0;
    c->last_unit = c->idle ? 1 : s->nunits;
    int k = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     "Transfer-Encoding: chunked\r\n%s\r\n", conn_hdr(c));
    write_buf(c, c->head, (size_t)k);
    if (c->interval_us > 0 && !c->idle) {
      uint64_t ms = (uint64_t)(c->interval_us / 1000);
      if (ms < 1) ms = 1;
      c->timer_on = 1;
      uv_timer_start(&c->timer, paced_tick, ms, ms);
      return;
    }
    c->interval_us = 0;
    pump(c);
    return;
  }
  if (is_chat) {
    stream_t *s = get_stream(c->w, c->events, c->form);
    respond_json(c, 200, s->json, s->json_len);
    return;
  }
  if (path_is(u, "/v1/models")) { respond_json(c, 200, MODELS_JSON, sizeof MODELS_JSON - 1); return; }
  if (path_is(u, "/upload")) {
    /* body must outlive the write: keep it in the head buffer tail */
    char *b = c->head + 256;
    int n = snprintf(b, 200, "{\"ok\":true,\"bytes\":%llu}", c->body_total);
    int k = snprintf(c->head, 256,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n",
                     n, conn_hdr(c));
    write_buf(c, c->head, (size_t)k);
    write_buf(c, b, (size_t)n);
    return;
  }
  static const char nf[] = "{\"error\":{\"message\":\"not found\",\"type\":\"invalid_request_error\",\"code\":null}}";
  respond_json(c, 404, nf, sizeof nf - 1);
}

/* ---------- llhttp callbacks ---------- */

static int cb_begin(llhttp_t *p) {
  conn *c = p->data;
  c->url_len = c->hf_len = c->hv_len = c->body_len = 0;
  c->body_total = 0;
  c->events = 64; c->bulk = 0; c->interval_us = 0; c->idle = 0; c->form = 0;
  return 0;
}
static int cb_url(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->url_len + n >= sizeof c->url) n = sizeof c->url - 1 - c->url_len;
  memcpy(c->url + c->url_len, at, n);
  c->url_len += n;
  return 0;
}
static int cb_hf(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->hf_len + n >= sizeof c->hf) n = sizeof c->hf - 1 - c->hf_len;
  memcpy(c->hf + c->hf_len, at, n);
  c->hf_len += n;
  return 0;
}
static int cb_hv(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  if (c->hv_len + n >= sizeof c->hv) n = sizeof c->hv - 1 - c->hv_len;
  memcpy(c->hv + c->hv_len, at, n);
  c->hv_len += n;
  return 0;
}
static int cb_hv_done(llhttp_t *p) {
  conn *c = p->data;
  c->hf[c->hf_len] = 0;
  c->hv[c->hv_len] = 0;
  if (c->hf_len > 8 && strncasecmp(c->hf, "x-bench-", 8) == 0) {
    const char *k = c->hf + 8;
    if (!strcasecmp(k, "events")) c->events = strtol(c->hv, NULL, 10);
    else if (!strcasecmp(k, "write")) c->bulk = strncasecmp(c->hv, "bulk", 4) == 0;
    else if (!strcasecmp(k, "interval-us")) c->interval_us = strtol(c->hv, NULL, 10);
    else if (!strcasecmp(k, "idle")) c->idle = atoi(c->hv) != 0;
    else if (!strcasecmp(k, "form"))
      c->form = !strncasecmp(c->hv, "reasoning", 9) ? HM_FORM_REASONING : !strncasecmp(c->hv, "tool", 4) ? HM_FORM_TOOL : 0;
  }
  c->hf_len = c->hv_len = 0;
  return 0;
}
static int cb_body(llhttp_t *p, const char *at, size_t n) {
  conn *c = p->data;
  c->body_total += n;
  if (c->body_len < sizeof c->body - 1) {
    size_t k = sizeof c->body - 1 - c->body_len;
    if (k > n) k = n;
    memcpy(c->body + c->body_len, at, k);
    c->body_len += k;
  }
  return 0;
}
static int cb_complete(llhttp_t *p) {
  conn *c = p->data;
  c->keepalive = llhttp_should_keep_alive(p);
  return HPE_PAUSED;
}

static llhttp_settings_t g_settings;

static void stash(conn *c, const char *p, size_t n) {
  if (c->pend_len + n > c->pend_cap) {
    size_t nc = c->pend_cap ? c->pend_cap : 4096;
    while (nc < c->pend_len + n) nc *= 2;
    c->pending = realloc(c->pending, nc);
    c->pend_cap = nc;
  }
  memmove(c->pending + c->pend_len, p, n);
  c->pend_len += n;
}

static void feed(conn *c, const char *data, size_t len) {
  if (c->responding) { stash(c, data, len); return; }
  enum llhttp_errno e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_OK) return;
  if (e == HPE_PAUSED) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (used < len) stash(c, data + used, len - used);
    dispatch(c);
    return;
  }
  /* parse error: answer 400 and close */
  c->keepalive = 0;
  static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  c->responding = 1;
  c->s = NULL;
  write_buf(c, bad, sizeof bad - 1);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  conn *c = h->data;
  (void)sz;
  *b = uv_buf_init(c->w->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b) {
  conn *c = st->data;
  if (n < 0) { conn_close(c); return; }
  if (n == 0) return;
  if (c->responding && c->pend_len + (size_t)n > MAX_PENDING) { conn_close(c); return; }
  feed(c, b->base, (size_t)n);
}

static void on_conn(uv_stream_t *server, int status) {
  worker *w = server->data;
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  c->w = w;
  uv_tcp_init(&w->loop, &c->tcp);
  uv_timer_init(&w->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) { conn_close(c); return; }
  uv_tcp_nodelay(&c->tcp, 1);
  for (int i = 0; i < MAX_INFLIGHT; i++) c->freelist[i] = i;
  c->nfree = MAX_INFLIGHT;
  llhttp_init(&c->parser, HTTP_REQUEST, &g_settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void worker_main(void *arg) {
  worker *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
}

static int worker_setup(worker *w) {
  uv_loop_init(&w->loop);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) { perror("socket"); return -1; }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) { perror("SO_REUSEPORT"); return -1; }
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)g_port);
  inet_pton(AF_INET, g_host, &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return -1; }
  uv_tcp_init(&w->loop, &w->server);
  w->server.data = w;
  if (uv_tcp_open(&w->server, fd) < 0) { fprintf(stderr, "uv_tcp_open failed\n"); return -1; }
  int r = uv_listen((uv_stream_t *)&w->server, 4096, on_conn);
  if (r < 0) { fprintf(stderr, "listen: %s\n", uv_strerror(r)); return -1; }
  return 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  g_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
  /* relay-style env as defaults: lets run.sh be smoke-tested with RELAY_BIN=upstream */
  if (getenv("LISTEN_PORT")) g_port = atoi(getenv("LISTEN_PORT"));
  if (getenv("WORKERS")) g_threads = atoi(getenv("WORKERS"));
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--port") && i + 1 < argc) g_port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) g_threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--host") && i + 1 < argc) snprintf(g_host, sizeof g_host, "%s", argv[++i]);
    else { fprintf(stderr, "usage: %s [--host H] [--port P] [--threads N]\n", argv[0]); return 2; }
  }
  if (g_threads < 1) g_threads = 1;
  llhttp_settings_init(&g_settings);
  g_settings.on_message_begin = cb_begin;
  g_settings.on_url = cb_url;
  g_settings.on_header_field = cb_hf;
  g_settings.on_header_value = cb_hv;
  g_settings.on_header_value_complete = cb_hv_done;
  g_settings.on_body = cb_body;
  g_settings.on_message_complete = cb_complete;
  worker *ws = calloc((size_t)g_threads, sizeof *ws);
  for (int i = 0; i < g_threads; i++) {
    ws[i].id = i;
    if (worker_setup(&ws[i]) < 0) return 1;
  }
  fprintf(stderr, "upstream: listening on %s:%d with %d threads\n", g_host, g_port, g_threads);
  for (int i = 1; i < g_threads; i++) uv_thread_create(&ws[i].thread, worker_main, &ws[i]);
  worker_main(&ws[0]);
  return 0;
}
