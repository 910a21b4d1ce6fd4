/* Metrics for the admin port's /metrics: a fixed set of counter, gauge and
 * histogram families, one instance per worker thread, summed at scrape time
 * into the Prometheus text exposition format 0.0.4.
 *
 * Concurrency contract (C11 memory model):
 * - Each relay_metrics_t has exactly ONE writer: the worker thread that owns
 *   it. Every update below is a relaxed atomic load of the value followed by
 *   a relaxed atomic store of the new value: no lock, no read-modify-write
 *   instruction, no fence (on x86-64 and AArch64 it compiles to the plain
 *   load, add, store of a non-atomic increment).
 * - A scraper on another thread reads each value with a relaxed atomic load.
 *   Because every access to the value is atomic there is no data race, and an
 *   atomic object cannot be read half-written: a 64-bit counter is never torn,
 *   even while its writer stores to it (on a target where uint64_t atomics
 *   are not lock-free, the compiler's libatomic makes them so with a lock; the
 *   unit test checks that they are lock-free here).
 * - Read-read coherence (C11 5.1.2.4) means that one scraper thread never sees
 *   a value older than one it already saw, so a counter it reports never goes
 *   back, and the sum over workers never goes back either.
 * - Nothing orders one value against another: a scrape is not a snapshot of
 *   an instant. That is what Prometheus expects of a counter set; a seqlock
 *   would buy cross-value consistency for two extra stores and fences per
 *   update and retries for the reader, which the families do not need. The
 *   one cross-value rule that matters, a histogram's _count equal to its
 *   "+Inf" bucket and buckets rising with "le", holds by construction: the
 *   buckets are stored non-cumulative and _count is computed from the same
 *   loads. Only _sum may lag its _count by the observations in progress.
 *
 * Label sets are bounded by construction: every family is indexed by slots
 * fixed here (route, method class, status code, upstream, server), and names
 * are supplied only at render time by a relay_metrics_names_t. */
#ifndef RELAY_METRICS_H
#define RELAY_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "relay/buf.h"

/* Route slots: the script's static routes, one slot per distinct route name
 * ever declared (a relay_metrics_slots_t hands them out, so that a slot keeps
 * its meaning across reloads), then one slot for requests routed by the
 * script's on_request function, one for requests no route took (the default
 * upstream, or answered by the relay itself before routing), and one for
 * static routes declared after the 64 slots were all taken. */
#define RELAY_METRICS_STATIC_ROUTES 64
#define RELAY_METRICS_ROUTE_SCRIPT 64
#define RELAY_METRICS_ROUTE_NONE 65
#define RELAY_METRICS_ROUTE_OTHER 66
#define RELAY_METRICS_MAX_ROUTES 67
/* As RELAY_MAX_UPSTREAMS; servers per upstream as RELAY_BALANCER_MAX_SERVERS. */
#define RELAY_METRICS_MAX_UPSTREAMS 32
#define RELAY_METRICS_MAX_SERVERS 16

/* Method classes: the label method="GET" and so on. */
typedef enum {
  RELAY_METRICS_GET = 0,
  RELAY_METRICS_HEAD,
  RELAY_METRICS_POST,
  RELAY_METRICS_OPTIONS,
  RELAY_METRICS_OTHER_METHOD,
  RELAY_METRICS_METHODS
} relay_metrics_method_t;

/* Status code slots: the exact codes in the table in metrics.c, then one
 * slot per class for the codes not in the table (code="4xx"), then "other"
 * for anything outside 100-599 (no response at all is counted as 499 by the
 * proxy; this slot is for bugs and hostile scripts). */
#define RELAY_METRICS_EXACT_CODES 28
#define RELAY_METRICS_CODE_1XX RELAY_METRICS_EXACT_CODES
#define RELAY_METRICS_CODE_OTHER (RELAY_METRICS_EXACT_CODES + 5)
#define RELAY_METRICS_CODES (RELAY_METRICS_EXACT_CODES + 6)

/* Histogram buckets for LLM latencies, in microseconds: 5 ms to 600 s. The
 * bounds are in metrics.c; "+Inf" is the extra last bucket. */
#define RELAY_METRICS_BUCKETS 16
/* Observations are clamped here (about 11.5 days) so that _sum cannot wrap. */
#define RELAY_METRICS_OBSERVE_MAX_US (1000000ull * 1000000ull)

/* Unlabelled counters. */
typedef enum {
  RELAY_METRICS_CLIENT_RECEIVED_BYTES = 0,
  RELAY_METRICS_CLIENT_SENT_BYTES,
  RELAY_METRICS_REWRITTEN_EVENTS,
  RELAY_METRICS_REASONING_BLOCKS,
  RELAY_METRICS_TOOL_CALLS,
  RELAY_METRICS_SCRIPT_ERRORS,
  RELAY_METRICS_COUNTERS
} relay_metrics_counter_t;

/* Unlabelled gauges. */
typedef enum {
  RELAY_METRICS_CLIENT_CONNECTIONS = 0,
  RELAY_METRICS_OPEN_STREAMS,
  RELAY_METRICS_GAUGES
} relay_metrics_gauge_t;

typedef enum { RELAY_METRICS_TTFB = 0, RELAY_METRICS_DURATION, RELAY_METRICS_HISTOGRAMS } relay_metrics_histogram_t;

typedef _Atomic(uint64_t) relay_metrics_u64_t;
typedef _Atomic(int64_t) relay_metrics_i64_t;

/* Non-cumulative buckets: bucket[i] counts observations in (bound[i-1], bound[i]],
 * bucket[RELAY_METRICS_BUCKETS] those above the last bound. */
typedef struct relay_metrics_hist_s {
  relay_metrics_u64_t bucket[RELAY_METRICS_BUCKETS + 1];
  relay_metrics_u64_t sum_us;
} relay_metrics_hist_t;

/* One worker's values. Layout is public so that the updates inline; only the
 * owning thread writes, only relay_metrics_render reads from elsewhere. */
typedef struct relay_metrics_s {
  relay_metrics_u64_t requests[RELAY_METRICS_MAX_ROUTES][RELAY_METRICS_METHODS][RELAY_METRICS_CODES];
  relay_metrics_hist_t hist[RELAY_METRICS_HISTOGRAMS][RELAY_METRICS_MAX_UPSTREAMS];
  relay_metrics_u64_t upstream_sent[RELAY_METRICS_MAX_UPSTREAMS];
  relay_metrics_u64_t upstream_received[RELAY_METRICS_MAX_UPSTREAMS];
  relay_metrics_u64_t connect_failures[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
  /* "Down until" this loop time in ms (uv_now; every loop reads the same
   * monotonic clock), so that a back-off that simply runs out needs no
   * update: 0 (zeroed memory, the balancer's start state) is up,
   * RELAY_METRICS_DOWN_FOREVER is down until told otherwise. */
  relay_metrics_i64_t server_down[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
  relay_metrics_i64_t server_outstanding[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
  relay_metrics_u64_t counter[RELAY_METRICS_COUNTERS];
  relay_metrics_i64_t gauge[RELAY_METRICS_GAUGES];
  /* The loop time (ms) the worker last went round its loop: /healthz sees a
   * worker that stopped turning. Not a metric family. */
  relay_metrics_i64_t heartbeat_ms;
} relay_metrics_t;

/* Label values for the render, read on the scraping thread. A NULL return
 * means the slot is unused and its series are left out. The strings must stay
 * valid and unchanged during the render (give the scraper its own copy of the
 * names; never point into a worker's live script). */
typedef struct relay_metrics_names_s {
  void *ctx;
  const char *(*route)(void *ctx, size_t route);
  const char *(*upstream)(void *ctx, size_t upstream);
  const char *(*server)(void *ctx, size_t upstream, size_t server);
  /* The loop time (ms) the "down until" cells are read against; 0 reads
   * every non-zero cell as down. */
  uint64_t now_ms;
} relay_metrics_names_t;

#define RELAY_METRICS_DOWN_FOREVER INT64_MAX

/* A zeroed instance on its own cache lines (workers never share a line).
 * NULL when out of memory. */
relay_metrics_t *relay_metrics_new(void);
void relay_metrics_free(relay_metrics_t *m);

/* Append the exposition text for the sum of n workers' values to out.
 * workers[i] may be NULL (a worker not started yet). Returns 0, or
 * RELAY_ENOMEM with out holding a partial text. Work is linear in
 * n times the fixed number of slots. */
int relay_metrics_render(const relay_metrics_t *const *workers, size_t n, const relay_metrics_names_t *names,
                         relay_buf_t *out);

/* A server as the workers see it, for /healthz: up (no worker has it down at
 * now_ms) and the requests in progress on it. */
int relay_metrics_server_is_up(const relay_metrics_t *const *workers, size_t n, unsigned upstream, unsigned server,
                               uint64_t now_ms);
int64_t relay_metrics_server_load(const relay_metrics_t *const *workers, size_t n, unsigned upstream,
                                  unsigned server);

/* Label text of a slot, for tests and the names provider's documentation. */
const char *relay_metrics_method_name(relay_metrics_method_t m);
const char *relay_metrics_code_name(unsigned slot);
/* Upper bound of bucket i in microseconds. */
uint64_t relay_metrics_bucket_bound_us(unsigned i);

/* ---- Hot path: owner thread only, O(1), no allocation, no lock. ---- */

extern const uint8_t relay_metrics__code_slot[600];
extern const uint64_t relay_metrics__bounds_us[RELAY_METRICS_BUCKETS];

/* The single writer's increment: relaxed load + relaxed store, no RMW. */
static inline void relay_metrics__add(relay_metrics_u64_t *c, uint64_t n) {
  atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Wrapping arithmetic: an unbalanced caller must not make this undefined. */
static inline void relay_metrics__gauge_add(relay_metrics_i64_t *g, int64_t d) {
  uint64_t v = (uint64_t)atomic_load_explicit(g, memory_order_relaxed) + (uint64_t)d;
  atomic_store_explicit(g, (int64_t)v, memory_order_relaxed);
}

/* Index of the first bucket whose bound is >= us (Prometheus "le"), by a
 * five-step binary search over the 16 bounds; 16 means "+Inf" only. */
static inline unsigned relay_metrics__bucket(uint64_t us) {
  const uint64_t *b = relay_metrics__bounds_us;
  unsigned i = 0;
  i += (unsigned)(us > b[7]) << 3;
  i += (unsigned)(us > b[i + 3]) << 2;
  i += (unsigned)(us > b[i + 1]) << 1;
  i += (unsigned)(us > b[i]);
  i += (unsigned)(us > b[i]);
  return i;
}

/* The method class of a request method name (case-sensitive, as HTTP is). */
static inline relay_metrics_method_t relay_metrics_method_class(const char *m, size_t len) {
  if (len == 3 && m[0] == 'G' && m[1] == 'E' && m[2] == 'T') return RELAY_METRICS_GET;
  if (len == 4 && m[0] == 'P' && m[1] == 'O' && m[2] == 'S' && m[3] == 'T') return RELAY_METRICS_POST;
  if (len == 4 && m[0] == 'H' && m[1] == 'E' && m[2] == 'A' && m[3] == 'D') return RELAY_METRICS_HEAD;
  if (len == 7 && m[0] == 'O' && m[1] == 'P' && m[2] == 'T' && m[3] == 'I' && m[4] == 'O' && m[5] == 'N' &&
      m[6] == 'S')
    return RELAY_METRICS_OPTIONS;
  return RELAY_METRICS_OTHER_METHOD;
}

/* The status slot: exact code, else its class, else "other". */
static inline unsigned relay_metrics_code_slot(int status) {
  if (status < 100 || status > 599) return RELAY_METRICS_CODE_OTHER;
  unsigned s = relay_metrics__code_slot[status];
  return s ? s - 1 : RELAY_METRICS_CODE_1XX + (unsigned)(status / 100 - 1);
}

/* One answered request. Out-of-range slots fold into "none"/"other" rather
 * than write outside the table. */
static inline void relay_metrics_request(relay_metrics_t *m, unsigned route, relay_metrics_method_t method,
                                         int status) {
  if (route >= RELAY_METRICS_MAX_ROUTES) route = RELAY_METRICS_ROUTE_NONE;
  if ((unsigned)method >= RELAY_METRICS_METHODS) method = RELAY_METRICS_OTHER_METHOD;
  relay_metrics__add(&m->requests[route][method][relay_metrics_code_slot(status)], 1);
}

/* One upstream latency observation in microseconds (TTFB or total duration). */
static inline void relay_metrics_observe(relay_metrics_t *m, relay_metrics_histogram_t h, unsigned upstream,
                                         uint64_t us) {
  if ((unsigned)h >= RELAY_METRICS_HISTOGRAMS || upstream >= RELAY_METRICS_MAX_UPSTREAMS) return;
  if (us > RELAY_METRICS_OBSERVE_MAX_US) us = RELAY_METRICS_OBSERVE_MAX_US;
  relay_metrics_hist_t *x = &m->hist[h][upstream];
  relay_metrics__add(&x->bucket[relay_metrics__bucket(us)], 1);
  relay_metrics__add(&x->sum_us, us);
}

static inline void relay_metrics_count(relay_metrics_t *m, relay_metrics_counter_t c, uint64_t n) {
  if ((unsigned)c < RELAY_METRICS_COUNTERS) relay_metrics__add(&m->counter[c], n);
}

/* Open/close: +1 / -1. The per-worker value may go negative only if the
 * caller is unbalanced; the render reports the sum as it is. */
static inline void relay_metrics_gauge_add(relay_metrics_t *m, relay_metrics_gauge_t g, int64_t d) {
  if ((unsigned)g < RELAY_METRICS_GAUGES) relay_metrics__gauge_add(&m->gauge[g], d);
}

static inline void relay_metrics_upstream_bytes(relay_metrics_t *m, unsigned upstream, uint64_t sent,
                                                uint64_t received) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS) return;
  relay_metrics__add(&m->upstream_sent[upstream], sent);
  relay_metrics__add(&m->upstream_received[upstream], received);
}

/* This worker's view of a server: up (1) or down (0), as its balancer says. */
static inline void relay_metrics_server_up(relay_metrics_t *m, unsigned upstream, unsigned server, int up) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return;
  atomic_store_explicit(&m->server_down[upstream][server], up ? 0 : RELAY_METRICS_DOWN_FOREVER,
                        memory_order_relaxed);
}

/* The same as a time: down until loop time until_ms (0 = up now). */
static inline void relay_metrics_server_down_until(relay_metrics_t *m, unsigned upstream, unsigned server,
                                                   uint64_t until_ms) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return;
  int64_t v = until_ms >= (uint64_t)RELAY_METRICS_DOWN_FOREVER ? RELAY_METRICS_DOWN_FOREVER : (int64_t)until_ms;
  atomic_store_explicit(&m->server_down[upstream][server], v, memory_order_relaxed);
}

static inline void relay_metrics_server_outstanding(relay_metrics_t *m, unsigned upstream, unsigned server,
                                                    int64_t d) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return;
  relay_metrics__gauge_add(&m->server_outstanding[upstream][server], d);
}

static inline void relay_metrics_heartbeat(relay_metrics_t *m, uint64_t now_ms) {
  atomic_store_explicit(&m->heartbeat_ms, (int64_t)now_ms, memory_order_relaxed);
}

static inline int64_t relay_metrics_last_heartbeat(const relay_metrics_t *m) {
  return atomic_load_explicit((relay_metrics_i64_t *)&m->heartbeat_ms, memory_order_relaxed);
}

static inline void relay_metrics_connect_failure(relay_metrics_t *m, unsigned upstream, unsigned server) {
  if (upstream >= RELAY_METRICS_MAX_UPSTREAMS || server >= RELAY_METRICS_MAX_SERVERS) return;
  relay_metrics__add(&m->connect_failures[upstream][server], 1);
}

/* ---- Slots: names to slot numbers, for the whole process ----
 *
 * Workers count by slot number; the admin renders a slot under its name. A
 * slot is given to a name once and keeps it for the life of the process, so
 * that a reload that reorders, adds or removes routes never moves one
 * route's counts under another's name. Writers (a worker installing a site,
 * the admin reading a configuration) take the lock, at start and reload
 * only; readers take none: an entry is written before the count that
 * publishes it (release/acquire) and never changes afterwards. */
typedef struct relay_metrics_slots_s {
  uv_mutex_t lock;
  char *route[RELAY_METRICS_STATIC_ROUTES];
  atomic_uint nroutes;
  char *upstream[RELAY_METRICS_MAX_UPSTREAMS];
  atomic_uint nupstreams;
  char *server[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
  atomic_uint nservers[RELAY_METRICS_MAX_UPSTREAMS];
} relay_metrics_slots_t;

int relay_metrics_slots_init(relay_metrics_slots_t *s);
void relay_metrics_slots_dispose(relay_metrics_slots_t *s);
/* The slot of a route name: its own, or RELAY_METRICS_ROUTE_OTHER once the
 * static slots are all given (or out of memory). */
unsigned relay_metrics_slot_route(relay_metrics_slots_t *s, const char *name);
/* The slot of an upstream name, and of a server ("host:port") within an
 * upstream's slot; -1 when all are given (the upstream or server is then
 * neither counted nor reached by active checks: logged by the caller). */
int relay_metrics_slot_upstream(relay_metrics_slots_t *s, const char *name);
int relay_metrics_slot_server(relay_metrics_slots_t *s, unsigned upstream, const char *name);
/* The name of a slot, or NULL when it has none (yet). Lock-free. */
const char *relay_metrics_slots_route_name(const relay_metrics_slots_t *s, size_t slot);
const char *relay_metrics_slots_upstream_name(const relay_metrics_slots_t *s, size_t slot);
const char *relay_metrics_slots_server_name(const relay_metrics_slots_t *s, size_t upstream, size_t slot);

#endif
