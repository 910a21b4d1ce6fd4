/* Metrics registry tests: slot mapping, bucket search against a linear
 * reference, the exposition text of known values summed over workers,
 * escaping, bounds, and writers racing a scraper. For ThreadSanitizer, by hand:
 *   clang -std=gnu11 -O1 -g -fsanitize=thread -Iinclude -Isrc -Itests/unit \
 *     tests/unit/core/test_metrics.c src/core/metrics.c src/buf.c -lpthread
 *
 *   test_metrics            the unit tests
 *   test_metrics --dump     a sample exposition on stdout, for the Python test
 *                           that reads it with prometheus_client's parser
 *   test_metrics --bench N  ns per counter increment and histogram observe */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "metrics.h"

/* ---- A names provider over plain tables ---- */

typedef struct names_s {
  const char *route[RELAY_METRICS_MAX_ROUTES];
  const char *upstream[RELAY_METRICS_MAX_UPSTREAMS];
  const char *server[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
} names_t;

static const char *route_name(void *ctx, size_t i) { return ((names_t *)ctx)->route[i]; }
static const char *upstream_name(void *ctx, size_t i) { return ((names_t *)ctx)->upstream[i]; }
static const char *server_name(void *ctx, size_t u, size_t s) { return ((names_t *)ctx)->server[u][s]; }

static relay_metrics_names_t provider(names_t *n) {
  relay_metrics_names_t p = {n, route_name, upstream_name, server_name};
  return p;
}

/* The value of the sample line that starts with `series` followed by a
 * space, or -1 when there is no such line. */
static long long sample(const char *text, const char *series) {
  size_t n = strlen(series);
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtoll(p + n + 1, NULL, 10);
  }
  return -1;
}

/* The exact text after "series " up to the end of the line, or "" */
static void sample_text(const char *text, const char *series, char *buf, size_t len) {
  size_t n = strlen(series);
  buf[0] = 0;
  for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
    if (strncmp(p, series, n) == 0 && p[n] == ' ') {
      const char *v = p + n + 1, *e = strchr(v, '\n');
      size_t k = e ? (size_t)(e - v) : strlen(v);
      if (k >= len) k = len - 1;
      memcpy(buf, v, k);
      buf[k] = 0;
      break;
    }
  }
}

static char *render(relay_metrics_t **ws, size_t n, names_t *names) {
  relay_buf_t b;
  relay_buf_init(&b);
  relay_metrics_names_t p = provider(names);
  int rc = relay_metrics_render((const relay_metrics_t *const *)ws, n, &p, &b);
  CHECK(rc == 0);
  relay_buf_append(&b, "", 1);
  return b.data;
}

/* ---- Slots ---- */

static void test_lock_free(void) {
  relay_metrics_t *m = relay_metrics_new();
  CHECK(m != NULL);
  CHECK(((uintptr_t)m & 63) == 0);
  CHECK(atomic_is_lock_free(&m->counter[0]));
  CHECK(atomic_is_lock_free(&m->gauge[0]));
  relay_metrics_free(m);
}

static unsigned bucket_ref(uint64_t us) {
  unsigned i = 0;
  while (i < RELAY_METRICS_BUCKETS && us > relay_metrics_bucket_bound_us(i)) i++;
  return i;
}

/* Every bound, its neighbours and random values against a linear scan. */
static void test_bucket_index(void) {
  int bad = 0;
  for (unsigned i = 0; i < RELAY_METRICS_BUCKETS; i++) {
    uint64_t b = relay_metrics_bucket_bound_us(i);
    if (relay_metrics__bucket(b) != i) bad++;
    if (relay_metrics__bucket(b - 1) != bucket_ref(b - 1)) bad++;
    if (relay_metrics__bucket(b + 1) != i + 1) bad++;
    if (i > 0 && relay_metrics_bucket_bound_us(i) <= relay_metrics_bucket_bound_us(i - 1)) bad++;
  }
  CHECK(relay_metrics__bucket(0) == 0);
  CHECK(relay_metrics__bucket(UINT64_MAX) == RELAY_METRICS_BUCKETS);
  CHECK(relay_metrics_bucket_bound_us(0) == 5000);
  CHECK(relay_metrics_bucket_bound_us(RELAY_METRICS_BUCKETS - 1) == 600000000);
  uint64_t x = 88172645463325252ull;
  for (int k = 0; k < 200000; k++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t us = x % 800000000ull;
    if (relay_metrics__bucket(us) != bucket_ref(us)) bad++;
  }
  CHECK(bad == 0);
}

/* Exact codes map to the slot whose name is that code; the rest to their class. */
static void test_code_slots(void) {
  int bad = 0, exact = 0;
  for (int st = -5; st < 1000; st++) {
    unsigned s = relay_metrics_code_slot(st);
    if (s >= RELAY_METRICS_CODES) bad++;
    const char *name = relay_metrics_code_name(s);
    if (st < 100 || st > 599) {
      if (s != RELAY_METRICS_CODE_OTHER || strcmp(name, "other") != 0) bad++;
    } else if (s < RELAY_METRICS_EXACT_CODES) {
      exact++;
      if (atoi(name) != st) bad++;
    } else {
      char cls[4] = {(char)('0' + st / 100), 'x', 'x', 0};
      if (strcmp(name, cls) != 0) bad++;
    }
  }
  CHECK(bad == 0);
  CHECK(exact == RELAY_METRICS_EXACT_CODES);
  CHECK(relay_metrics_code_slot(200) < RELAY_METRICS_EXACT_CODES);
  CHECK(strcmp(relay_metrics_code_name(relay_metrics_code_slot(418)), "4xx") == 0);
  CHECK(strcmp(relay_metrics_code_name(relay_metrics_code_slot(499)), "499") == 0);
  CHECK(strcmp(relay_metrics_code_name(relay_metrics_code_slot(0)), "other") == 0);
}

static void test_method_class(void) {
  CHECK(relay_metrics_method_class("GET", 3) == RELAY_METRICS_GET);
  CHECK(relay_metrics_method_class("HEAD", 4) == RELAY_METRICS_HEAD);
  CHECK(relay_metrics_method_class("POST", 4) == RELAY_METRICS_POST);
  CHECK(relay_metrics_method_class("OPTIONS", 7) == RELAY_METRICS_OPTIONS);
  CHECK(relay_metrics_method_class("get", 3) == RELAY_METRICS_OTHER_METHOD);
  CHECK(relay_metrics_method_class("GETX", 4) == RELAY_METRICS_OTHER_METHOD);
  CHECK(relay_metrics_method_class("POS", 3) == RELAY_METRICS_OTHER_METHOD);
  CHECK(relay_metrics_method_class("DELETE", 6) == RELAY_METRICS_OTHER_METHOD);
  CHECK(relay_metrics_method_class("", 0) == RELAY_METRICS_OTHER_METHOD);
  CHECK(strcmp(relay_metrics_method_name(RELAY_METRICS_OTHER_METHOD), "other") == 0);
}

/* ---- Render ---- */

/* Two workers' known values: every family sums (or, for up, combines) them. */
static void test_render_sums(void) {
  relay_metrics_t *ws[3] = {relay_metrics_new(), NULL, relay_metrics_new()};
  names_t names = {0};
  names.route[0] = "chat";
  names.route[RELAY_METRICS_ROUTE_NONE] = "none";
  names.upstream[0] = "default";
  names.upstream[2] = "big";
  names.server[0][0] = "127.0.0.1:1234";
  names.server[0][1] = "[::1]:1234";
  names.server[2][0] = "10.0.0.2:80";

  for (int i = 0; i < 3; i++) relay_metrics_request(ws[0], 0, RELAY_METRICS_POST, 200);
  for (int i = 0; i < 2; i++) relay_metrics_request(ws[2], 0, RELAY_METRICS_POST, 200);
  relay_metrics_request(ws[2], 0, RELAY_METRICS_GET, 418);
  relay_metrics_request(ws[0], RELAY_METRICS_ROUTE_NONE, RELAY_METRICS_OTHER_METHOD, 502);
  relay_metrics_request(ws[0], 5, RELAY_METRICS_GET, 200); /* unnamed route: left out */

  relay_metrics_observe(ws[0], RELAY_METRICS_TTFB, 0, 4000);      /* <= 0.005 */
  relay_metrics_observe(ws[2], RELAY_METRICS_TTFB, 0, 5000);      /* == 0.005 */
  relay_metrics_observe(ws[2], RELAY_METRICS_TTFB, 0, 2000000);   /* <= 2.5 */
  relay_metrics_observe(ws[0], RELAY_METRICS_TTFB, 0, 700000000); /* +Inf only */
  relay_metrics_observe(ws[0], RELAY_METRICS_DURATION, 2, 1500000);

  relay_metrics_gauge_add(ws[0], RELAY_METRICS_CLIENT_CONNECTIONS, 3);
  relay_metrics_gauge_add(ws[2], RELAY_METRICS_CLIENT_CONNECTIONS, 2);
  relay_metrics_gauge_add(ws[2], RELAY_METRICS_CLIENT_CONNECTIONS, -1);
  relay_metrics_gauge_add(ws[2], RELAY_METRICS_OPEN_STREAMS, 1);
  relay_metrics_count(ws[0], RELAY_METRICS_CLIENT_RECEIVED_BYTES, 1000);
  relay_metrics_count(ws[2], RELAY_METRICS_CLIENT_RECEIVED_BYTES, 24);
  relay_metrics_count(ws[2], RELAY_METRICS_TOOL_CALLS, 7);
  relay_metrics_count(ws[0], RELAY_METRICS_SCRIPT_ERRORS, 1);
  relay_metrics_upstream_bytes(ws[0], 0, 10, 20);
  relay_metrics_upstream_bytes(ws[2], 0, 1, 2);
  relay_metrics_server_up(ws[2], 0, 1, 0); /* worker 2 has [::1] down */
  relay_metrics_server_outstanding(ws[0], 0, 0, 2);
  relay_metrics_server_outstanding(ws[2], 0, 0, 1);
  relay_metrics_connect_failure(ws[2], 0, 1);

  char *t = render(ws, 3, &names);
  char v[64];
  CHECK(strstr(t, "# HELP relay_requests_total Requests answered") == t);
  CHECK(strstr(t, "# TYPE relay_requests_total counter\n") != NULL);
  CHECK(strstr(t, "# TYPE relay_upstream_ttfb_seconds histogram\n") != NULL);
  CHECK(strstr(t, "# TYPE relay_client_connections gauge\n") != NULL);
  CHECK(sample(t, "relay_requests_total{route=\"chat\",method=\"POST\",code=\"200\"}") == 5);
  CHECK(sample(t, "relay_requests_total{route=\"chat\",method=\"GET\",code=\"4xx\"}") == 1);
  CHECK(sample(t, "relay_requests_total{route=\"none\",method=\"other\",code=\"502\"}") == 1);
  CHECK(sample(t, "relay_requests_total{route=\"chat\",method=\"GET\",code=\"200\"}") == -1);
  CHECK(strstr(t, "route=\"5\"") == NULL && strstr(t, "route=\"(null)\"") == NULL);
  /* Histogram: cumulative buckets, exact seconds, +Inf == _count. */
  CHECK(sample(t, "relay_upstream_ttfb_seconds_bucket{upstream=\"default\",le=\"0.005\"}") == 2);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_bucket{upstream=\"default\",le=\"1\"}") == 2);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_bucket{upstream=\"default\",le=\"2.5\"}") == 3);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_bucket{upstream=\"default\",le=\"600\"}") == 3);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_bucket{upstream=\"default\",le=\"+Inf\"}") == 4);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_count{upstream=\"default\"}") == 4);
  sample_text(t, "relay_upstream_ttfb_seconds_sum{upstream=\"default\"}", v, sizeof v);
  CHECK_STR(v, strlen(v), "702.009");
  CHECK(sample(t, "relay_upstream_ttfb_seconds_count{upstream=\"big\"}") == 0);
  CHECK(sample(t, "relay_upstream_duration_seconds_bucket{upstream=\"big\",le=\"1\"}") == 0);
  CHECK(sample(t, "relay_upstream_duration_seconds_bucket{upstream=\"big\",le=\"2.5\"}") == 1);
  sample_text(t, "relay_upstream_duration_seconds_sum{upstream=\"big\"}", v, sizeof v);
  CHECK_STR(v, strlen(v), "1.5");
  CHECK(sample(t, "relay_upstream_duration_seconds_count{upstream=\"default\"}") == 0);
  CHECK(strstr(t, "upstream=\"(null)\"") == NULL);
  /* Scalars, per upstream, per server. */
  CHECK(sample(t, "relay_client_connections") == 4);
  CHECK(sample(t, "relay_open_streams") == 1);
  CHECK(sample(t, "relay_client_received_bytes_total") == 1024);
  CHECK(sample(t, "relay_client_sent_bytes_total") == 0);
  CHECK(sample(t, "relay_tool_calls_total") == 7);
  CHECK(sample(t, "relay_script_errors_total") == 1);
  CHECK(sample(t, "relay_upstream_sent_bytes_total{upstream=\"default\"}") == 11);
  CHECK(sample(t, "relay_upstream_received_bytes_total{upstream=\"default\"}") == 22);
  CHECK(sample(t, "relay_upstream_received_bytes_total{upstream=\"big\"}") == 0);
  CHECK(sample(t, "relay_upstream_server_up{upstream=\"default\",server=\"127.0.0.1:1234\"}") == 1);
  CHECK(sample(t, "relay_upstream_server_up{upstream=\"default\",server=\"[::1]:1234\"}") == 0);
  CHECK(sample(t, "relay_upstream_server_up{upstream=\"big\",server=\"10.0.0.2:80\"}") == 1);
  CHECK(sample(t, "relay_upstream_server_outstanding{upstream=\"default\",server=\"127.0.0.1:1234\"}") == 3);
  CHECK(sample(t, "relay_upstream_connect_failures_total{upstream=\"default\",server=\"[::1]:1234\"}") == 1);
  CHECK(sample(t, "relay_upstream_connect_failures_total{upstream=\"default\",server=\"127.0.0.1:1234\"}") == 0);
  /* Every line is a comment or a sample, and the text ends with a newline. */
  int bad = 0;
  for (const char *p = t; *p; p = strchr(p, '\n') + 1) {
    if (!strchr(p, '\n')) {
      bad++;
      break;
    }
    if (*p != '#' && strncmp(p, "relay_", 6) != 0) bad++;
  }
  CHECK(bad == 0);
  free(t);

  /* Back up: the worker that saw it down now sees it up. */
  relay_metrics_server_up(ws[2], 0, 1, 1);
  t = render(ws, 3, &names);
  CHECK(sample(t, "relay_upstream_server_up{upstream=\"default\",server=\"[::1]:1234\"}") == 1);
  free(t);
  relay_metrics_free(ws[0]);
  relay_metrics_free(ws[2]);
}

/* No workers and no names: still valid text, every family declared. */
static void test_render_empty(void) {
  relay_buf_t b;
  relay_buf_init(&b);
  CHECK(relay_metrics_render(NULL, 0, NULL, &b) == 0);
  relay_buf_append(&b, "", 1);
  CHECK(sample(b.data, "relay_client_connections") == 0);
  CHECK(sample(b.data, "relay_tool_calls_total") == 0);
  CHECK(strstr(b.data, "# TYPE relay_upstream_server_up gauge\n") != NULL);
  CHECK(strstr(b.data, "{") == NULL);
  int types = 0;
  for (const char *p = b.data; (p = strstr(p, "# TYPE ")); p++) types++;
  CHECK(types == 16);
  relay_buf_dispose(&b);
}

/* Label values: \ " and newline escaped, valid UTF-8 kept, invalid bytes '?'. */
static void test_escaping(void) {
  relay_metrics_t *w = relay_metrics_new();
  names_t names = {0};
  names.route[1] = "a\\b\"c\nd";
  names.route[2] = "mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x9a\x80";
  names.route[3] = "bad\xff\xc3(\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80!";
  names.upstream[0] = "u}\"{";
  relay_metrics_request(w, 1, RELAY_METRICS_GET, 200);
  relay_metrics_request(w, 2, RELAY_METRICS_GET, 200);
  relay_metrics_request(w, 3, RELAY_METRICS_GET, 200);
  char *t = render(&w, 1, &names);
  CHECK(sample(t, "relay_requests_total{route=\"a\\\\b\\\"c\\nd\",method=\"GET\",code=\"200\"}") == 1);
  CHECK(sample(t, "relay_requests_total{route=\"mod\xc3\xa8le \xe6\xa8\xa1\xe5\x9e\x8b \xf0\x9f\x9a\x80\","
                  "method=\"GET\",code=\"200\"}") == 1);
  CHECK(sample(t, "relay_requests_total{route=\"bad\?\?(\?\?\?\?\?\?\?\?\?!\",method=\"GET\",code=\"200\"}") == 1);
  CHECK(sample(t, "relay_upstream_sent_bytes_total{upstream=\"u}\\\"{\"}") == 0);
  free(t);
  relay_metrics_free(w);
}

/* Indexes past the tables fold into "none"/"other" or are dropped, and a huge
 * observation is clamped so that _sum cannot wrap. */
static void test_bounds(void) {
  relay_metrics_t *w = relay_metrics_new();
  names_t names = {0};
  names.route[RELAY_METRICS_ROUTE_NONE] = "none";
  names.upstream[0] = "u";
  relay_metrics_request(w, 1u << 30, (relay_metrics_method_t)99, 200);
  relay_metrics_request(w, RELAY_METRICS_MAX_ROUTES, RELAY_METRICS_GET, 1000);
  relay_metrics_observe(w, RELAY_METRICS_TTFB, RELAY_METRICS_MAX_UPSTREAMS, 1);
  relay_metrics_observe(w, (relay_metrics_histogram_t)7, 0, 1);
  relay_metrics_upstream_bytes(w, 99, 1, 1);
  relay_metrics_server_up(w, 0, RELAY_METRICS_MAX_SERVERS, 0);
  relay_metrics_server_outstanding(w, 99, 0, 1);
  relay_metrics_connect_failure(w, 0, 99);
  relay_metrics_count(w, (relay_metrics_counter_t)99, 1);
  relay_metrics_gauge_add(w, (relay_metrics_gauge_t)99, 1);
  relay_metrics_observe(w, RELAY_METRICS_DURATION, 0, UINT64_MAX);
  relay_metrics_observe(w, RELAY_METRICS_DURATION, 0, UINT64_MAX);
  char *t = render(&w, 1, &names);
  char v[64];
  CHECK(sample(t, "relay_requests_total{route=\"none\",method=\"other\",code=\"200\"}") == 1);
  CHECK(sample(t, "relay_requests_total{route=\"none\",method=\"GET\",code=\"other\"}") == 1);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_count{upstream=\"u\"}") == 0);
  CHECK(sample(t, "relay_upstream_duration_seconds_count{upstream=\"u\"}") == 2);
  sample_text(t, "relay_upstream_duration_seconds_sum{upstream=\"u\"}", v, sizeof v);
  CHECK_STR(v, strlen(v), "2000000");
  free(t);
  relay_metrics_free(w);
}

/* ---- Writers racing a scraper ---- */

#define WRITERS 4
#define ITERS 200000

typedef struct race_s {
  relay_metrics_t *ws[WRITERS];
  names_t names;
  _Atomic int writers_done;
  int scrapes;
  int regressions;   /* a counter seen lower than in an earlier scrape */
  int inconsistent;  /* a histogram whose buckets fall or whose +Inf is not _count */
  int render_errors;
} race_t;

typedef struct writer_arg_s {
  race_t *race;
  int index;
} writer_arg_t;

/* Each writer touches only its own worker's instance, as a worker would. */
static void *writer_main(void *arg) {
  writer_arg_t *a = arg;
  relay_metrics_t *m = a->race->ws[a->index];
  for (uint64_t i = 0; i < ITERS; i++) {
    relay_metrics_request(m, 0, RELAY_METRICS_POST, (i & 7) ? 200 : 502);
    relay_metrics_observe(m, RELAY_METRICS_TTFB, 0, (i * 7919) % 900000000);
    relay_metrics_count(m, RELAY_METRICS_TOOL_CALLS, 1);
    relay_metrics_count(m, RELAY_METRICS_CLIENT_SENT_BYTES, 0x100000001ull); /* crosses 32 bits quickly */
    relay_metrics_gauge_add(m, RELAY_METRICS_OPEN_STREAMS, 1);
    relay_metrics_gauge_add(m, RELAY_METRICS_OPEN_STREAMS, -1);
  }
  atomic_fetch_add(&a->race->writers_done, 1);
  return NULL;
}

static void check_histogram(race_t *r, const char *t) {
  long long prev = 0;
  char series[128];
  for (unsigned b = 0; b <= RELAY_METRICS_BUCKETS; b++) {
    char le[32];
    if (b < RELAY_METRICS_BUCKETS) {
      uint64_t us = relay_metrics_bucket_bound_us(b);
      if (us % 1000000 == 0) snprintf(le, sizeof le, "%" PRIu64, us / 1000000);
      else {
        snprintf(le, sizeof le, "%.6f", (double)us / 1e6);
        char *e = le + strlen(le);
        while (e[-1] == '0') *--e = 0;
      }
    } else {
      strcpy(le, "+Inf");
    }
    snprintf(series, sizeof series, "relay_upstream_ttfb_seconds_bucket{upstream=\"u\",le=\"%s\"}", le);
    long long v = sample(t, series);
    if (v < prev) r->inconsistent++;
    prev = v;
  }
  if (prev != sample(t, "relay_upstream_ttfb_seconds_count{upstream=\"u\"}")) r->inconsistent++;
}

/* Renders until the writers finish: per scrape, histograms consistent; across
 * scrapes, every counter at least where it was. */
static void *scraper_main(void *arg) {
  race_t *r = arg;
  long long last[4] = {0, 0, 0, 0};
  const char *series[4] = {"relay_tool_calls_total", "relay_client_sent_bytes_total",
                           "relay_requests_total{route=\"r\",method=\"POST\",code=\"200\"}",
                           "relay_upstream_ttfb_seconds_count{upstream=\"u\"}"};
  relay_metrics_names_t p = provider(&r->names);
  relay_buf_t b;
  relay_buf_init(&b);
  for (;;) {
    int done = atomic_load(&r->writers_done) == WRITERS;
    relay_buf_reset(&b);
    if (relay_metrics_render((const relay_metrics_t *const *)r->ws, WRITERS, &p, &b) ||
        relay_buf_append(&b, "", 1)) {
      r->render_errors++;
      break;
    }
    for (int i = 0; i < 4; i++) {
      long long v = sample(b.data, series[i]);
      if (v < last[i] && !(i == 2 && v == -1 && last[i] == 0)) r->regressions++;
      if (v > last[i]) last[i] = v;
    }
    if (sample(b.data, "relay_open_streams") < 0) r->inconsistent++;
    check_histogram(r, b.data);
    r->scrapes++;
    if (done) break;
  }
  relay_buf_dispose(&b);
  return NULL;
}

static void test_race(void) {
  race_t *r = calloc(1, sizeof *r);
  r->names.route[0] = "r";
  r->names.upstream[0] = "u";
  for (int i = 0; i < WRITERS; i++) r->ws[i] = relay_metrics_new();
  pthread_t wt[WRITERS], st;
  writer_arg_t args[WRITERS];
  pthread_create(&st, NULL, scraper_main, r);
  for (int i = 0; i < WRITERS; i++) {
    args[i].race = r;
    args[i].index = i;
    pthread_create(&wt[i], NULL, writer_main, &args[i]);
  }
  for (int i = 0; i < WRITERS; i++) pthread_join(wt[i], NULL);
  pthread_join(st, NULL);
  printf("race: %d scrapes while %d writers did %d updates each\n", r->scrapes, WRITERS, ITERS * 6);
  CHECK(r->scrapes >= 1);
  CHECK(r->regressions == 0);
  CHECK(r->inconsistent == 0);
  CHECK(r->render_errors == 0);
  /* The last scrape started after every writer finished: exact totals. */
  char *t = render(r->ws, WRITERS, &r->names);
  CHECK(sample(t, "relay_tool_calls_total") == (long long)WRITERS * ITERS);
  char v[64], want[64];
  snprintf(want, sizeof want, "%" PRIu64, (uint64_t)(WRITERS * ITERS * 0x100000001ull));
  sample_text(t, "relay_client_sent_bytes_total", v, sizeof v);
  CHECK_STR(v, strlen(v), want);
  CHECK(sample(t, "relay_requests_total{route=\"r\",method=\"POST\",code=\"200\"}") ==
        (long long)WRITERS * ITERS * 7 / 8);
  CHECK(sample(t, "relay_requests_total{route=\"r\",method=\"POST\",code=\"502\"}") ==
        (long long)WRITERS * ITERS / 8);
  CHECK(sample(t, "relay_upstream_ttfb_seconds_count{upstream=\"u\"}") == (long long)WRITERS * ITERS);
  CHECK(sample(t, "relay_open_streams") == 0);
  uint64_t sum_us = 0;
  for (uint64_t i = 0; i < ITERS; i++) sum_us += (i * 7919) % 900000000;
  sum_us *= WRITERS;
  snprintf(want, sizeof want, "%" PRIu64 ".%06" PRIu64, sum_us / 1000000, sum_us % 1000000);
  char *e = want + strlen(want);
  while (e[-1] == '0') *--e = 0;
  if (e[-1] == '.') e[-1] = 0;
  sample_text(t, "relay_upstream_ttfb_seconds_sum{upstream=\"u\"}", v, sizeof v);
  CHECK_STR(v, strlen(v), want);
  free(t);
  for (int i = 0; i < WRITERS; i++) relay_metrics_free(r->ws[i]);
  free(r);
}

/* ---- --dump: the sample the Python test checks with prometheus_client ---- */

static int dump(void) {
  relay_metrics_t *ws[2] = {relay_metrics_new(), relay_metrics_new()};
  names_t names = {0};
  names.route[0] = "POST /v1/chat/completions";
  names.route[1] = "we\"ird\\route\nname";
  names.route[RELAY_METRICS_ROUTE_SCRIPT] = "(script)";
  names.route[RELAY_METRICS_ROUTE_NONE] = "(none)";
  names.upstream[0] = "default";
  names.upstream[1] = "mod\xc3\xa8le";
  names.server[0][0] = "127.0.0.1:1234";
  names.server[0][1] = "[::1]:1235";
  names.server[1][0] = "gpu-2:8000";
  for (int i = 0; i < 10; i++) relay_metrics_request(ws[i & 1], 0, RELAY_METRICS_POST, 200);
  relay_metrics_request(ws[0], 0, RELAY_METRICS_POST, 429);
  relay_metrics_request(ws[1], 1, RELAY_METRICS_GET, 404);
  relay_metrics_request(ws[1], RELAY_METRICS_ROUTE_SCRIPT, RELAY_METRICS_OPTIONS, 204);
  relay_metrics_request(ws[0], RELAY_METRICS_ROUTE_NONE, RELAY_METRICS_OTHER_METHOD, 418);
  relay_metrics_request(ws[0], RELAY_METRICS_ROUTE_NONE, RELAY_METRICS_HEAD, 0);
  static const uint64_t ttfb[] = {3250, 5000, 12000, 480000, 2500000, 61000000};
  for (size_t i = 0; i < sizeof ttfb / sizeof ttfb[0]; i++) {
    relay_metrics_observe(ws[i & 1], RELAY_METRICS_TTFB, 0, ttfb[i]);
    relay_metrics_observe(ws[i & 1], RELAY_METRICS_DURATION, 0, ttfb[i] * 10);
  }
  relay_metrics_observe(ws[1], RELAY_METRICS_TTFB, 1, 601000000);
  relay_metrics_gauge_add(ws[0], RELAY_METRICS_CLIENT_CONNECTIONS, 5);
  relay_metrics_gauge_add(ws[1], RELAY_METRICS_CLIENT_CONNECTIONS, 2);
  relay_metrics_gauge_add(ws[1], RELAY_METRICS_OPEN_STREAMS, 3);
  relay_metrics_count(ws[0], RELAY_METRICS_CLIENT_RECEIVED_BYTES, 123456);
  relay_metrics_count(ws[1], RELAY_METRICS_CLIENT_SENT_BYTES, 18446744073709551615ull);
  relay_metrics_count(ws[0], RELAY_METRICS_REWRITTEN_EVENTS, 40);
  relay_metrics_count(ws[1], RELAY_METRICS_REWRITTEN_EVENTS, 2);
  relay_metrics_count(ws[1], RELAY_METRICS_REASONING_BLOCKS, 3);
  relay_metrics_count(ws[0], RELAY_METRICS_TOOL_CALLS, 4);
  relay_metrics_count(ws[1], RELAY_METRICS_SCRIPT_ERRORS, 1);
  relay_metrics_upstream_bytes(ws[0], 0, 300, 4000);
  relay_metrics_upstream_bytes(ws[1], 1, 5, 6);
  relay_metrics_server_up(ws[1], 0, 1, 0);
  relay_metrics_server_outstanding(ws[0], 0, 0, 2);
  relay_metrics_server_outstanding(ws[1], 0, 0, 1);
  relay_metrics_connect_failure(ws[1], 0, 1);
  relay_metrics_connect_failure(ws[1], 0, 1);
  char *t = render(ws, 2, &names);
  fputs(t, stdout);
  free(t);
  relay_metrics_free(ws[0]);
  relay_metrics_free(ws[1]);
  return check_failed ? 1 : 0;
}

/* ---- --bench N ---- */

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* noinline so that callgrind shows each loop as its own function. */
__attribute__((noinline)) static void bench_count(relay_metrics_t *m, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) relay_metrics_count(m, RELAY_METRICS_TOOL_CALLS, 1);
}

__attribute__((noinline)) static void bench_request(relay_metrics_t *m, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) relay_metrics_request(m, (unsigned)(i & 3), RELAY_METRICS_POST, 200);
}

__attribute__((noinline)) static void bench_observe(relay_metrics_t *m, uint64_t n) {
  uint64_t us = 1234;
  for (uint64_t i = 0; i < n; i++) {
    relay_metrics_observe(m, RELAY_METRICS_TTFB, 0, us);
    us = us * 2862933555777941757ull + 3037000493ull; /* vary the bucket: no trained branch */
    us >>= 34;
  }
}

/* The loop alone (the LCG of bench_observe), to subtract. */
__attribute__((noinline)) static uint64_t bench_lcg(uint64_t n) {
  uint64_t us = 1234, acc = 0;
  for (uint64_t i = 0; i < n; i++) {
    acc += us;
    us = us * 2862933555777941757ull + 3037000493ull;
    us >>= 34;
    __asm__ volatile("" : "+r"(acc));
  }
  return acc;
}

static int bench(uint64_t n) {
  relay_metrics_t *m = relay_metrics_new();
  double t0 = now_ns();
  bench_count(m, n);
  double t1 = now_ns();
  bench_request(m, n);
  double t2 = now_ns();
  bench_observe(m, n);
  double t3 = now_ns();
  uint64_t acc = bench_lcg(n);
  double t4 = now_ns();
  printf("counter increment: %.2f ns\nrequest count: %.2f ns\nhistogram observe: %.2f ns (loop alone %.2f ns)\n",
         (t1 - t0) / (double)n, (t2 - t1) / (double)n, (t3 - t2) / (double)n, (t4 - t3) / (double)n);
  printf("(checksum %" PRIu64 ")\n", acc + atomic_load(&m->counter[RELAY_METRICS_TOOL_CALLS]));
  relay_metrics_free(m);
  /* A scrape of 16 workers with 4 routes, 2 upstreams and 4 servers named. */
  relay_metrics_t *ws[16];
  names_t names = {0};
  const char *routes[] = {"chat", "completions", "models", "other"};
  for (int i = 0; i < 4; i++) names.route[i] = routes[i];
  names.upstream[0] = "default";
  names.upstream[1] = "big";
  names.server[0][0] = names.server[0][1] = names.server[1][0] = names.server[1][1] = "10.0.0.1:8000";
  for (int i = 0; i < 16; i++) {
    ws[i] = relay_metrics_new();
    for (int k = 0; k < 1000; k++) {
      relay_metrics_request(ws[i], (unsigned)(k & 3), RELAY_METRICS_POST, k % 10 ? 200 : 502);
      relay_metrics_observe(ws[i], RELAY_METRICS_TTFB, (unsigned)(k & 1), (uint64_t)k * 1000);
    }
  }
  relay_metrics_names_t p = provider(&names);
  relay_buf_t b;
  relay_buf_init(&b);
  int reps = 200;
  double r0 = now_ns();
  for (int i = 0; i < reps; i++) {
    relay_buf_reset(&b);
    relay_metrics_render((const relay_metrics_t *const *)ws, 16, &p, &b);
  }
  double r1 = now_ns();
  printf("render, 16 workers: %.1f us, %zu bytes; instance size %zu bytes\n", (r1 - r0) / reps / 1e3, b.len,
         sizeof(relay_metrics_t));
  relay_buf_dispose(&b);
  for (int i = 0; i < 16; i++) relay_metrics_free(ws[i]);
  return 0;
}

/* ---- Server state as "down until" ---- */

/* A back-off that runs out needs no update: the render (and /healthz) read
 * the cell against the time of the scrape. now_ms 0 reads any non-zero cell
 * as down. */
static void test_down_until(void) {
  relay_metrics_t *ws[2] = {relay_metrics_new(), relay_metrics_new()};
  names_t names = {0};
  names.upstream[3] = "pool";
  names.server[3][5] = "10.0.0.5:80";
  relay_metrics_names_t p = provider(&names);
  const char *series = "relay_upstream_server_up{upstream=\"pool\",server=\"10.0.0.5:80\"}";
  relay_metrics_server_down_until(ws[1], 3, 5, 5000);
  const relay_metrics_t *const *cw = (const relay_metrics_t *const *)ws;
  CHECK(!relay_metrics_server_is_up(cw, 2, 3, 5, 4999));
  CHECK(relay_metrics_server_is_up(cw, 2, 3, 5, 5000));
  CHECK(!relay_metrics_server_is_up(cw, 2, 3, 5, 0));
  uint64_t at[3] = {4999, 5000, 0};
  long long want[3] = {0, 1, 0};
  for (int i = 0; i < 3; i++) {
    relay_buf_t b;
    relay_buf_init(&b);
    p.now_ms = at[i];
    CHECK(relay_metrics_render(cw, 2, &p, &b) == 0);
    relay_buf_append(&b, "", 1);
    CHECK(sample(b.data, series) == want[i]);
    relay_buf_dispose(&b);
  }
  relay_metrics_server_down_until(ws[1], 3, 5, UINT64_MAX); /* out until a check passes */
  CHECK(!relay_metrics_server_is_up(cw, 2, 3, 5, UINT64_MAX - 1));
  relay_metrics_server_down_until(ws[1], 3, 5, 0);
  CHECK(relay_metrics_server_is_up(cw, 2, 3, 5, 0));
  relay_metrics_server_outstanding(ws[0], 3, 5, 2);
  relay_metrics_server_outstanding(ws[1], 3, 5, 1);
  relay_metrics_server_outstanding(ws[1], 3, 5, -1);
  CHECK(relay_metrics_server_load(cw, 2, 3, 5) == 2);
  CHECK(relay_metrics_server_load(cw, 2, 99, 5) == 0 && !relay_metrics_server_is_up(cw, 2, 3, 99, 0));
  relay_metrics_heartbeat(ws[0], 1234);
  CHECK(relay_metrics_last_heartbeat(ws[0]) == 1234);
  relay_metrics_free(ws[0]);
  relay_metrics_free(ws[1]);
}

/* ---- Slots: a name keeps its slot ---- */

static void test_slots(void) {
  relay_metrics_slots_t s;
  CHECK(relay_metrics_slots_init(&s) == 0);
  CHECK(relay_metrics_slot_route(&s, "POST /v1/chat/completions") == 0);
  CHECK(relay_metrics_slot_route(&s, "/v1/*") == 1);
  CHECK(relay_metrics_slot_route(&s, "POST /v1/chat/completions") == 0); /* a reload, same name */
  CHECK(strcmp(relay_metrics_slots_route_name(&s, 1), "/v1/*") == 0);
  CHECK(relay_metrics_slots_route_name(&s, 2) == NULL);
  CHECK(relay_metrics_slots_route_name(&s, 1000) == NULL);
  char name[32];
  for (int i = 2; i < RELAY_METRICS_STATIC_ROUTES; i++) {
    snprintf(name, sizeof name, "/r%d", i);
    CHECK(relay_metrics_slot_route(&s, name) == (unsigned)i);
  }
  /* Every static slot is given: a new name folds into "(other)", old ones keep theirs. */
  CHECK(relay_metrics_slot_route(&s, "/one-too-many") == RELAY_METRICS_ROUTE_OTHER);
  CHECK(relay_metrics_slot_route(&s, "/r63") == 63);
  CHECK(relay_metrics_slot_upstream(&s, "default") == 0);
  CHECK(relay_metrics_slot_upstream(&s, "gpu") == 1);
  CHECK(relay_metrics_slot_upstream(&s, "default") == 0);
  CHECK(relay_metrics_slot_server(&s, 1, "10.0.0.1:80") == 0);
  CHECK(relay_metrics_slot_server(&s, 1, "10.0.0.2:80") == 1);
  CHECK(relay_metrics_slot_server(&s, 0, "10.0.0.2:80") == 0); /* per upstream */
  CHECK(relay_metrics_slot_server(&s, RELAY_METRICS_MAX_UPSTREAMS, "x:1") == -1);
  CHECK(strcmp(relay_metrics_slots_server_name(&s, 1, 1), "10.0.0.2:80") == 0);
  CHECK(relay_metrics_slots_server_name(&s, 1, 2) == NULL);
  for (int i = 2; i < RELAY_METRICS_MAX_UPSTREAMS; i++) {
    snprintf(name, sizeof name, "u%d", i);
    CHECK(relay_metrics_slot_upstream(&s, name) == i);
  }
  CHECK(relay_metrics_slot_upstream(&s, "u-one-too-many") == -1);
  for (int i = 2; i < RELAY_METRICS_MAX_SERVERS; i++) {
    snprintf(name, sizeof name, "h:%d", i);
    CHECK(relay_metrics_slot_server(&s, 1, name) == i);
  }
  CHECK(relay_metrics_slot_server(&s, 1, "h:99") == -1);
  relay_metrics_slots_dispose(&s);
}

/* Workers install sites at once: every thread gets the same slot for a
 * name, and no name gets two. */
typedef struct slot_race_s {
  relay_metrics_slots_t *s;
  int seed;
  unsigned got[40];
} slot_race_t;

static void *slot_racer(void *arg) {
  slot_race_t *r = arg;
  char name[16];
  for (int k = 0; k < 40; k++) {
    int i = (k * 7 + r->seed) % 40;
    snprintf(name, sizeof name, "/n%d", i);
    r->got[i] = relay_metrics_slot_route(r->s, name);
  }
  return NULL;
}

static void test_slots_race(void) {
  relay_metrics_slots_t s;
  relay_metrics_slots_init(&s);
  slot_race_t r[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    r[i].s = &s;
    r[i].seed = i * 11;
    pthread_create(&t[i], NULL, slot_racer, &r[i]);
  }
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  int same = 1, seen[64] = {0}, dup = 0;
  for (int k = 0; k < 40; k++) {
    for (int i = 1; i < 4; i++) same &= r[i].got[k] == r[0].got[k];
    if (r[0].got[k] < 64 && seen[r[0].got[k]]++) dup = 1;
  }
  CHECK(same && !dup);
  CHECK(relay_metrics_slots_route_name(&s, 39) != NULL && relay_metrics_slots_route_name(&s, 40) == NULL);
  relay_metrics_slots_dispose(&s);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "--dump") == 0) return dump();
  if (argc > 2 && strcmp(argv[1], "--bench") == 0) return bench(strtoull(argv[2], NULL, 10));
  test_lock_free();
  test_bucket_index();
  test_code_slots();
  test_method_class();
  test_render_sums();
  test_render_empty();
  test_escaping();
  test_bounds();
  test_race();
  test_down_until();
  test_slots();
  test_slots_race();
  return check_report("test_metrics");
}
