/* Metrics registry: the family table, per-worker instances and the render
 * into the Prometheus text exposition format 0.0.4. The concurrency argument
 * is in metrics.h; this file only ever reads other threads' values with
 * relaxed atomic loads. */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if ATOMIC_LLONG_LOCK_FREE != 2 || ATOMIC_LONG_LOCK_FREE != 2
#warning "64-bit atomics are not always lock-free here: metrics stay correct but updates take a lock"
#endif

_Static_assert(sizeof(relay_metrics_u64_t) == sizeof(uint64_t), "counters are plain 64-bit cells");
_Static_assert(sizeof(relay_metrics_hist_t) % sizeof(uint64_t) == 0, "histograms are arrays of cells");

/* Slot + 1 of each exact status code worth its own series, 0 for the codes
 * that fold into their class: one load on the hot path. The slot order is
 * the order of the names in relay_metrics_code_name. */
const uint8_t relay_metrics__code_slot[600] = {
    [101] = 1,  [200] = 2,  [201] = 3,  [202] = 4,  [204] = 5,  [206] = 6,  [301] = 7,
    [302] = 8,  [304] = 9,  [307] = 10, [308] = 11, [400] = 12, [401] = 13, [403] = 14,
    [404] = 15, [405] = 16, [408] = 17, [409] = 18, [413] = 19, [422] = 20, [429] = 21,
    [431] = 22, [499] = 23, [500] = 24, [501] = 25, [502] = 26, [503] = 27, [504] = 28,
};

/* 5 ms .. 600 s: local models answer the first token in milliseconds, long
 * reasoning streams run for minutes. */
const uint64_t relay_metrics__bounds_us[RELAY_METRICS_BUCKETS] = {
    5000,    10000,    25000,    50000,    100000,   250000,    500000,    1000000,
    2500000, 5000000, 10000000, 30000000, 60000000, 120000000, 300000000, 600000000,
};

static const char *const metrics_method_names[RELAY_METRICS_METHODS] = {"GET", "HEAD", "POST", "OPTIONS",
                                                                        "other"};

static const char *const metrics_class_names[6] = {"1xx", "2xx", "3xx", "4xx", "5xx", "other"};

typedef enum { FAM_COUNTER, FAM_GAUGE, FAM_HISTOGRAM } fam_type_t;

/* How a family's cells are laid out and labelled. */
typedef enum {
  SHAPE_SCALAR,   /* one cell */
  SHAPE_UPSTREAM, /* [upstream] */
  SHAPE_SERVER,   /* [upstream][server] */
  SHAPE_REQUESTS, /* [route][method][code], series only once non-zero */
  SHAPE_HIST      /* relay_metrics_hist_t[upstream] */
} fam_shape_t;

/* How the workers' values combine: summed, or "up" = no worker has it down. */
typedef enum { AGG_SUM_U64, AGG_SUM_I64, AGG_UP } fam_agg_t;

typedef struct fam_s {
  const char *name;
  const char *help;
  fam_type_t type;
  fam_shape_t shape;
  fam_agg_t agg;
  size_t offset; /* of the family's first cell in relay_metrics_t */
} fam_t;

#define OFF(field) offsetof(relay_metrics_t, field)

/* The relay's metric families, in exposition order. */
static const fam_t metrics_families[] = {
    {"relay_requests_total", "Requests answered, by route, method class and status code.", FAM_COUNTER,
     SHAPE_REQUESTS, AGG_SUM_U64, OFF(requests)},
    {"relay_upstream_ttfb_seconds",
     "Time from the request going to the upstream to the first byte of its response.", FAM_HISTOGRAM, SHAPE_HIST,
     AGG_SUM_U64, OFF(hist[RELAY_METRICS_TTFB])},
    {"relay_upstream_duration_seconds",
     "Time from the request going to the upstream to the end of its response.", FAM_HISTOGRAM, SHAPE_HIST,
     AGG_SUM_U64, OFF(hist[RELAY_METRICS_DURATION])},
    {"relay_client_connections", "Client connections open now.", FAM_GAUGE, SHAPE_SCALAR, AGG_SUM_I64,
     OFF(gauge[RELAY_METRICS_CLIENT_CONNECTIONS])},
    {"relay_open_streams", "Streamed responses (server-sent events) in progress now.", FAM_GAUGE, SHAPE_SCALAR,
     AGG_SUM_I64, OFF(gauge[RELAY_METRICS_OPEN_STREAMS])},
    {"relay_client_received_bytes_total", "Request body bytes received from clients (tunnelled bytes included).", FAM_COUNTER, SHAPE_SCALAR,
     AGG_SUM_U64, OFF(counter[RELAY_METRICS_CLIENT_RECEIVED_BYTES])},
    {"relay_client_sent_bytes_total", "Response body bytes sent to clients (tunnelled bytes included).", FAM_COUNTER, SHAPE_SCALAR, AGG_SUM_U64,
     OFF(counter[RELAY_METRICS_CLIENT_SENT_BYTES])},
    {"relay_upstream_sent_bytes_total", "Request body bytes sent to upstream servers (tunnelled bytes included).", FAM_COUNTER, SHAPE_UPSTREAM,
     AGG_SUM_U64, OFF(upstream_sent)},
    {"relay_upstream_received_bytes_total", "Response body bytes received from upstream servers, without their chunk framing (tunnelled bytes included).", FAM_COUNTER,
     SHAPE_UPSTREAM, AGG_SUM_U64, OFF(upstream_received)},
    {"relay_rewritten_events_total", "Server-sent events the chat rewrite changed.", FAM_COUNTER, SHAPE_SCALAR,
     AGG_SUM_U64, OFF(counter[RELAY_METRICS_REWRITTEN_EVENTS])},
    {"relay_reasoning_blocks_total", "Reasoning blocks the chat rewrite found.", FAM_COUNTER, SHAPE_SCALAR,
     AGG_SUM_U64, OFF(counter[RELAY_METRICS_REASONING_BLOCKS])},
    {"relay_tool_calls_total", "Tool calls in responses the chat rewrite reads, counted where each begins.", FAM_COUNTER, SHAPE_SCALAR, AGG_SUM_U64,
     OFF(counter[RELAY_METRICS_TOOL_CALLS])},
    {"relay_upstream_server_up", "1 while no worker has the server marked down, else 0.", FAM_GAUGE,
     SHAPE_SERVER, AGG_UP, OFF(server_down)},
    {"relay_upstream_server_outstanding", "Requests in progress on the server now.", FAM_GAUGE, SHAPE_SERVER,
     AGG_SUM_I64, OFF(server_outstanding)},
    {"relay_upstream_connect_failures_total", "Connects to the server refused or timed out.", FAM_COUNTER,
     SHAPE_SERVER, AGG_SUM_U64, OFF(connect_failures)},
    {"relay_script_errors_total", "Script errors while serving (hooks and routing functions).", FAM_COUNTER,
     SHAPE_SCALAR, AGG_SUM_U64, OFF(counter[RELAY_METRICS_SCRIPT_ERRORS])},
};

/* Aligned to a cache line so that no two workers' hot counters share one. */
relay_metrics_t *relay_metrics_new(void) {
  size_t size = (sizeof(relay_metrics_t) + 63) / 64 * 64;
  relay_metrics_t *m = aligned_alloc(64, size);
  if (!m) return NULL;
  /* All-zero bits are the value 0 of a lock-free atomic integer. */
  memset(m, 0, size);
  return m;
}

void relay_metrics_free(relay_metrics_t *m) { free(m); }

const char *relay_metrics_method_name(relay_metrics_method_t m) {
  return (unsigned)m < RELAY_METRICS_METHODS ? metrics_method_names[m] : "other";
}

/* The code label of a slot; the unit test checks it against the slot table. */
const char *relay_metrics_code_name(unsigned slot) {
  static const char exact[RELAY_METRICS_EXACT_CODES][4] = {
      "101", "200", "201", "202", "204", "206", "301", "302", "304", "307", "308", "400", "401", "403",
      "404", "405", "408", "409", "413", "422", "429", "431", "499", "500", "501", "502", "503", "504",
  };
  if (slot < RELAY_METRICS_EXACT_CODES) return exact[slot];
  if (slot < RELAY_METRICS_CODES) return metrics_class_names[slot - RELAY_METRICS_EXACT_CODES];
  return "other";
}

uint64_t relay_metrics_bucket_bound_us(unsigned i) {
  return i < RELAY_METRICS_BUCKETS ? relay_metrics__bounds_us[i] : UINT64_MAX;
}

/* ---- Reading other threads' cells ---- */

static const relay_metrics_u64_t *cell_u64(const relay_metrics_t *w, size_t offset, size_t i) {
  return (const relay_metrics_u64_t *)((const char *)w + offset) + i;
}

static const relay_metrics_i64_t *cell_i64(const relay_metrics_t *w, size_t offset, size_t i) {
  return (const relay_metrics_i64_t *)((const char *)w + offset) + i;
}

static uint64_t sum_u64(const relay_metrics_t *const *ws, size_t n, size_t offset, size_t i) {
  uint64_t s = 0;
  for (size_t k = 0; k < n; k++)
    if (ws[k]) s += atomic_load_explicit(cell_u64(ws[k], offset, i), memory_order_relaxed);
  return s;
}

static int64_t sum_i64(const relay_metrics_t *const *ws, size_t n, size_t offset, size_t i) {
  /* Unsigned arithmetic: an unbalanced caller must not make this UB. */
  uint64_t s = 0;
  for (size_t k = 0; k < n; k++)
    if (ws[k]) s += (uint64_t)atomic_load_explicit(cell_i64(ws[k], offset, i), memory_order_relaxed);
  return (int64_t)s;
}

/* Up while no worker has the server down at now_ms: a cell is "down until". */
static int up_of(const relay_metrics_t *const *ws, size_t n, size_t offset, size_t i, uint64_t now_ms) {
  for (size_t k = 0; k < n; k++) {
    if (!ws[k]) continue;
    int64_t until = atomic_load_explicit(cell_i64(ws[k], offset, i), memory_order_relaxed);
    if (until == RELAY_METRICS_DOWN_FOREVER || (until > 0 && (uint64_t)until > now_ms)) return 0;
  }
  return 1;
}

int relay_metrics_server_is_up(const relay_metrics_t *const *workers, size_t n, unsigned upstream, unsigned server,
                               uint64_t now_ms) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return 0;
  return up_of(workers, n, OFF(server_down), upstream * RELAY_METRICS_MAX_SERVERS + server, now_ms);
}

int64_t relay_metrics_server_load(const relay_metrics_t *const *workers, size_t n, unsigned upstream,
                                  unsigned server) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return 0;
  return sum_i64(workers, n, OFF(server_outstanding), upstream * RELAY_METRICS_MAX_SERVERS + server);
}

/* ---- Text ---- */

/* Length of the valid UTF-8 sequence at p, or 0 (overlong forms, surrogates
 * and code points above U+10FFFF are invalid). Stops at a NUL. */
static size_t utf8_len(const unsigned char *p) {
  unsigned char c = p[0];
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  for (size_t k = 1; k < n; k++)
    if ((p[k] & 0xC0) != 0x80) return 0;
  if (n == 2 && c < 0xC2) return 0;
  if (n == 3 && ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0))) return 0;
  if (n == 4 && ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90) || c > 0xF4)) return 0;
  return n;
}

/* Label values may hold any UTF-8; the spec escapes \ " and newline. Bytes
 * that are not valid UTF-8 become '?' so that a strict parser never rejects
 * the whole scrape for one odd name. */
static int put_label_value(relay_buf_t *out, const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    size_t n = utf8_len(p);
    int rc;
    if (n == 0) {
      rc = relay_buf_append(out, "?", 1);
      n = 1;
    } else if (*p == '\\') {
      rc = relay_buf_append(out, "\\\\", 2);
    } else if (*p == '"') {
      rc = relay_buf_append(out, "\\\"", 2);
    } else if (*p == '\n') {
      rc = relay_buf_append(out, "\\n", 2);
    } else {
      rc = relay_buf_append(out, p, n);
    }
    if (rc) return rc;
    p += n;
  }
  return 0;
}

/* HELP text escapes \ and newline only. */
static int put_help(relay_buf_t *out, const char *s) {
  for (; *s; s++) {
    int rc = *s == '\\' ? relay_buf_append(out, "\\\\", 2)
             : *s == '\n' ? relay_buf_append(out, "\\n", 2)
                          : relay_buf_append(out, s, 1);
    if (rc) return rc;
  }
  return 0;
}

/* Seconds from microseconds, exactly, without trailing zeros: 2500000 -> "2.5". */
static void format_seconds(char *buf, size_t len, uint64_t us) {
  uint64_t frac = us % 1000000;
  if (frac == 0) {
    snprintf(buf, len, "%" PRIu64, us / 1000000);
    return;
  }
  char f[8];
  snprintf(f, sizeof f, "%06" PRIu64, frac);
  size_t k = 6;
  while (f[k - 1] == '0') k--;
  f[k] = 0;
  snprintf(buf, len, "%" PRIu64 ".%s", us / 1000000, f);
}

/* A label set under construction: up to three name="value" pairs. */
typedef struct labels_s {
  const char *name[4];
  const char *value[4];
  size_t n;
} labels_t;

/* name{labels} value\n; suffix is "_bucket", "_sum" and so on. */
static int put_sample(relay_buf_t *out, const char *name, const char *suffix, const labels_t *l,
                      const char *value) {
  if (relay_buf_append_str(out, name) || relay_buf_append_str(out, suffix)) return RELAY_ENOMEM;
  if (l->n) {
    if (relay_buf_append(out, "{", 1)) return RELAY_ENOMEM;
    for (size_t i = 0; i < l->n; i++) {
      if (relay_buf_printf(out, "%s%s=\"", i ? "," : "", l->name[i]) || put_label_value(out, l->value[i]) ||
          relay_buf_append(out, "\"", 1))
        return RELAY_ENOMEM;
    }
    if (relay_buf_append(out, "}", 1)) return RELAY_ENOMEM;
  }
  return relay_buf_printf(out, " %s\n", value);
}

/* The family's value at cell i, as exposition text. */
static void cell_text(const fam_t *f, const relay_metrics_t *const *ws, size_t n, size_t i, uint64_t now_ms,
                      char *buf, size_t len) {
  if (f->agg == AGG_SUM_U64) snprintf(buf, len, "%" PRIu64, sum_u64(ws, n, f->offset, i));
  else if (f->agg == AGG_SUM_I64) snprintf(buf, len, "%" PRId64, sum_i64(ws, n, f->offset, i));
  else snprintf(buf, len, "%d", up_of(ws, n, f->offset, i, now_ms));
}

static const char *name_of(const char *(*fn)(void *, size_t), void *ctx, size_t i) {
  return fn ? fn(ctx, i) : NULL;
}

/* Series appear only once non-zero: 66 x 5 x 34 possible, a handful used. */
static int render_requests(const fam_t *f, const relay_metrics_t *const *ws, size_t n,
                           const relay_metrics_names_t *names, relay_buf_t *out) {
  for (size_t r = 0; r < RELAY_METRICS_MAX_ROUTES; r++) {
    const char *route = name_of(names->route, names->ctx, r);
    if (!route) continue;
    for (size_t m = 0; m < RELAY_METRICS_METHODS; m++) {
      for (size_t c = 0; c < RELAY_METRICS_CODES; c++) {
        size_t i = (r * RELAY_METRICS_METHODS + m) * RELAY_METRICS_CODES + c;
        uint64_t v = sum_u64(ws, n, f->offset, i);
        if (v == 0) continue;
        char text[24];
        snprintf(text, sizeof text, "%" PRIu64, v);
        labels_t l = {{"route", "method", "code"},
                      {route, relay_metrics_method_name((relay_metrics_method_t)m), relay_metrics_code_name(c)},
                      3};
        if (put_sample(out, f->name, "", &l, text)) return RELAY_ENOMEM;
      }
    }
  }
  return 0;
}

/* Buckets are read once each and accumulated from those same loads, so
 * "le" rises monotonically and +Inf equals _count within the scrape. */
static int render_histogram(const fam_t *f, const relay_metrics_t *const *ws, size_t n, const char *upstream,
                            size_t u, relay_buf_t *out) {
  const size_t cells = sizeof(relay_metrics_hist_t) / sizeof(uint64_t);
  size_t base = u * cells;
  uint64_t cum = 0;
  char text[48], le[32];
  labels_t l = {{"upstream", "le"}, {upstream, le}, 2};
  for (size_t b = 0; b <= RELAY_METRICS_BUCKETS; b++) {
    cum += sum_u64(ws, n, f->offset, base + b);
    if (b < RELAY_METRICS_BUCKETS) format_seconds(le, sizeof le, relay_metrics__bounds_us[b]);
    else strcpy(le, "+Inf");
    snprintf(text, sizeof text, "%" PRIu64, cum);
    if (put_sample(out, f->name, "_bucket", &l, text)) return RELAY_ENOMEM;
  }
  l.n = 1;
  format_seconds(text, sizeof text, sum_u64(ws, n, f->offset, base + RELAY_METRICS_BUCKETS + 1));
  if (put_sample(out, f->name, "_sum", &l, text)) return RELAY_ENOMEM;
  snprintf(text, sizeof text, "%" PRIu64, cum);
  return put_sample(out, f->name, "_count", &l, text);
}

static int render_family(const fam_t *f, const relay_metrics_t *const *ws, size_t n,
                         const relay_metrics_names_t *names, relay_buf_t *out) {
  static const char *const types[] = {"counter", "gauge", "histogram"};
  if (relay_buf_printf(out, "# HELP %s ", f->name) || put_help(out, f->help) ||
      relay_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]))
    return RELAY_ENOMEM;
  char text[24];
  switch (f->shape) {
  case SHAPE_SCALAR: {
    labels_t l = {{0}, {0}, 0};
    cell_text(f, ws, n, 0, names->now_ms, text, sizeof text);
    return put_sample(out, f->name, "", &l, text);
  }
  case SHAPE_REQUESTS:
    return render_requests(f, ws, n, names, out);
  case SHAPE_UPSTREAM:
  case SHAPE_HIST:
    for (size_t u = 0; u < RELAY_METRICS_MAX_UPSTREAMS; u++) {
      const char *up = name_of(names->upstream, names->ctx, u);
      if (!up) continue;
      if (f->shape == SHAPE_HIST) {
        if (render_histogram(f, ws, n, up, u, out)) return RELAY_ENOMEM;
        continue;
      }
      labels_t l = {{"upstream"}, {up}, 1};
      cell_text(f, ws, n, u, names->now_ms, text, sizeof text);
      if (put_sample(out, f->name, "", &l, text)) return RELAY_ENOMEM;
    }
    return 0;
  case SHAPE_SERVER:
    for (size_t u = 0; u < RELAY_METRICS_MAX_UPSTREAMS; u++) {
      const char *up = name_of(names->upstream, names->ctx, u);
      if (!up) continue;
      for (size_t s = 0; s < RELAY_METRICS_MAX_SERVERS; s++) {
        const char *srv = names->server ? names->server(names->ctx, u, s) : NULL;
        if (!srv) continue;
        labels_t l = {{"upstream", "server"}, {up, srv}, 2};
        cell_text(f, ws, n, u * RELAY_METRICS_MAX_SERVERS + s, names->now_ms, text, sizeof text);
        if (put_sample(out, f->name, "", &l, text)) return RELAY_ENOMEM;
      }
    }
    return 0;
  }
  return 0;
}

int relay_metrics_render(const relay_metrics_t *const *workers, size_t n, const relay_metrics_names_t *names,
                         relay_buf_t *out) {
  static const relay_metrics_names_t none = {0};
  if (!names) names = &none;
  for (size_t i = 0; i < sizeof metrics_families / sizeof metrics_families[0]; i++)
    if (render_family(&metrics_families[i], workers, n, names, out)) return RELAY_ENOMEM;
  return 0;
}

/* ---- Slots ---- */

int relay_metrics_slots_init(relay_metrics_slots_t *s) {
  memset(s, 0, sizeof *s);
  return uv_mutex_init(&s->lock);
}

void relay_metrics_slots_dispose(relay_metrics_slots_t *s) {
  for (size_t i = 0; i < RELAY_METRICS_STATIC_ROUTES; i++) free(s->route[i]);
  for (size_t u = 0; u < RELAY_METRICS_MAX_UPSTREAMS; u++) {
    free(s->upstream[u]);
    for (size_t k = 0; k < RELAY_METRICS_MAX_SERVERS; k++) free(s->server[u][k]);
  }
  uv_mutex_destroy(&s->lock);
}

/* The index of name in names[0..*count), appended when absent and there is
 * room: -1 when full or out of memory. Called with the lock held; the entry
 * is complete before the count that publishes it is stored. */
static int slot_of(char **names, atomic_uint *count, size_t max, const char *name) {
  unsigned n = atomic_load_explicit(count, memory_order_relaxed);
  for (unsigned i = 0; i < n; i++)
    if (strcmp(names[i], name) == 0) return (int)i;
  if (n >= max) return -1;
  char *copy = strdup(name);
  if (!copy) return -1;
  names[n] = copy;
  atomic_store_explicit(count, n + 1, memory_order_release);
  return (int)n;
}

unsigned relay_metrics_slot_route(relay_metrics_slots_t *s, const char *name) {
  uv_mutex_lock(&s->lock);
  int i = slot_of(s->route, &s->nroutes, RELAY_METRICS_STATIC_ROUTES, name);
  uv_mutex_unlock(&s->lock);
  return i < 0 ? RELAY_METRICS_ROUTE_OTHER : (unsigned)i;
}

int relay_metrics_slot_upstream(relay_metrics_slots_t *s, const char *name) {
  uv_mutex_lock(&s->lock);
  int i = slot_of(s->upstream, &s->nupstreams, RELAY_METRICS_MAX_UPSTREAMS, name);
  uv_mutex_unlock(&s->lock);
  return i;
}

int relay_metrics_slot_server(relay_metrics_slots_t *s, unsigned upstream, const char *name) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS) return -1;
  uv_mutex_lock(&s->lock);
  int i = slot_of(s->server[upstream], &s->nservers[upstream], RELAY_METRICS_MAX_SERVERS, name);
  uv_mutex_unlock(&s->lock);
  return i;
}

const char *relay_metrics_slots_route_name(const relay_metrics_slots_t *s, size_t slot) {
  if (slot >= RELAY_METRICS_STATIC_ROUTES) return NULL;
  unsigned n = atomic_load_explicit((atomic_uint *)&s->nroutes, memory_order_acquire);
  return slot < n ? s->route[slot] : NULL;
}

const char *relay_metrics_slots_upstream_name(const relay_metrics_slots_t *s, size_t slot) {
  if (slot >= RELAY_METRICS_MAX_UPSTREAMS) return NULL;
  unsigned n = atomic_load_explicit((atomic_uint *)&s->nupstreams, memory_order_acquire);
  return slot < n ? s->upstream[slot] : NULL;
}

const char *relay_metrics_slots_server_name(const relay_metrics_slots_t *s, size_t upstream, size_t slot) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || slot >= RELAY_METRICS_MAX_SERVERS) return NULL;
  unsigned n = atomic_load_explicit((atomic_uint *)&s->nservers[upstream], memory_order_acquire);
  return slot < n ? s->server[upstream][slot] : NULL;
}
