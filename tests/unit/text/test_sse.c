/* SSE framer tests: every stream is fed whole, cut at every byte position,
 * cut at every pair of positions (short streams) and one byte at a time; all
 * runs must give the same events, and raw events + rest must equal the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "relay/sse.h"

#define MAX_EV 64

static int bad_used; /* feed() succeeded but *used was not the input's length */

/* feed() for runs that do not fall back: *used must be the whole input. */
static int feed(relay_sse_t *s, const char *d, size_t n, relay_sse_event_cb cb, void *ud) {
  size_t used = 12345;
  int rc = relay_sse_feed(s, d, n, cb, ud, &used);
  if (rc == 0 && used != n) bad_used++;
  return rc;
}

typedef struct ev_s {
  char raw[512];
  size_t raw_len;
  char data[512];
  size_t data_len;
  int has_data;
  size_t data_lines;
  int single;
  char event[64];
  size_t event_len;
  int has_event;
  int is_done;
} ev_t;

typedef struct run_s {
  ev_t ev[MAX_EV];
  size_t n;
  char all[4096]; /* raw events then rest, to compare with the input */
  size_t all_len;
  char rest[1024];
  size_t rest_len;
  int err;
  int bad_offsets; /* single_data_line but data != raw + data_offset */
  const char *in_lo, *in_hi; /* the current input, to see in-place delivery */
  int in_place;
} run_t;

/* Copy what the framer hands out, and check the pointers it promises. */
static void on_event(void *ud, const relay_sse_event_t *e) {
  run_t *r = ud;
  if (r->n >= MAX_EV || e->raw_len > sizeof r->ev[0].raw) {
    r->err = 99;
    return;
  }
  ev_t *v = &r->ev[r->n++];
  memset(v, 0, sizeof *v);
  memcpy(v->raw, e->raw, e->raw_len);
  v->raw_len = e->raw_len;
  v->has_data = e->data != NULL;
  if (e->data) {
    memcpy(v->data, e->data, e->data_len);
    v->data_len = e->data_len;
  }
  v->data_lines = e->data_lines;
  v->single = e->single_data_line;
  if (e->single_data_line && e->data != e->raw + e->data_offset) r->bad_offsets++;
  if (e->single_data_line != (e->data_lines == 1)) r->bad_offsets++;
  if (e->event) {
    v->has_event = 1;
    memcpy(v->event, e->event, e->event_len);
    v->event_len = e->event_len;
    if (e->event < e->raw || e->event + e->event_len > e->raw + e->raw_len) r->bad_offsets++;
  }
  v->is_done = e->is_done;
  if (e->raw >= r->in_lo && e->raw < r->in_hi) r->in_place++;
  memcpy(r->all + r->all_len, e->raw, e->raw_len);
  r->all_len += e->raw_len;
}

/* Feed s in the pieces that the cut positions (ascending) make. */
static void run_cuts(run_t *r, const char *s, size_t len, const size_t *cuts, size_t ncuts,
                     size_t max_event) {
  relay_sse_t sse;
  memset(r, 0, sizeof *r);
  relay_sse_init(&sse, max_event);
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts && !r->err; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    r->in_lo = s + prev;
    r->in_hi = s + end;
    int rc = feed(&sse, s + prev, end - prev, on_event, r);
    if (rc) r->err = rc;
    prev = end;
  }
  if (!r->err) {
    const char *rest;
    relay_sse_finish(&sse, &rest, &r->rest_len);
    memcpy(r->rest, rest, r->rest_len);
    memcpy(r->all + r->all_len, rest, r->rest_len);
    r->all_len += r->rest_len;
  }
  relay_sse_dispose(&sse);
}

static int ev_eq(const ev_t *a, const ev_t *b) {
  return a->raw_len == b->raw_len && memcmp(a->raw, b->raw, a->raw_len) == 0 &&
         a->has_data == b->has_data && a->data_len == b->data_len &&
         memcmp(a->data, b->data, a->data_len) == 0 && a->data_lines == b->data_lines &&
         a->single == b->single && a->has_event == b->has_event && a->event_len == b->event_len &&
         memcmp(a->event, b->event, a->event_len) == 0 && a->is_done == b->is_done;
}

static int runs_eq(const run_t *a, const run_t *b) {
  if (a->n != b->n || a->err != b->err || a->rest_len != b->rest_len) return 0;
  if (memcmp(a->rest, b->rest, a->rest_len) != 0) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (!ev_eq(&a->ev[i], &b->ev[i])) return 0;
  return 1;
}

static run_t whole, other;

/* The whole run is the reference; every other way of cutting must match it.
 * Returns the reference run for the caller's own expectations. */
static const run_t *check_stream(const char *s, size_t max_event) {
  size_t len = strlen(s), cuts[4096];
  run_cuts(&whole, s, len, NULL, 0, max_event);
  CHECK(whole.bad_offsets == 0);
  if (!whole.err) CHECK_MEM(whole.all, whole.all_len, s, len);
  int bad = 0;
  for (size_t c = 1; c < len; c++) {
    run_cuts(&other, s, len, &c, 1, max_event);
    if (!runs_eq(&whole, &other) || other.bad_offsets) {
      if (!bad) fprintf(stderr, "  stream %.40s... differs when cut at %zu\n", s, c);
      bad++;
    }
  }
  CHECK(bad == 0);
  if (len <= 80) {
    bad = 0;
    for (size_t a = 1; a < len; a++)
      for (size_t b = a + 1; b < len; b++) {
        cuts[0] = a;
        cuts[1] = b;
        run_cuts(&other, s, len, cuts, 2, max_event);
        if (!runs_eq(&whole, &other)) bad++;
      }
    CHECK(bad == 0);
  }
  for (size_t c = 0; c + 1 < len; c++) cuts[c] = c + 1;
  run_cuts(&other, s, len, cuts, len ? len - 1 : 0, max_event);
  CHECK(runs_eq(&whole, &other));
  CHECK(other.bad_offsets == 0);
  if (!other.err) CHECK_MEM(other.all, other.all_len, s, len);
  return &whole;
}

#define CHECK_DATA(ev, s) CHECK_MEM((ev)->data, (ev)->data_len, s, strlen(s))
#define CHECK_RAW(ev, s) CHECK_MEM((ev)->raw, (ev)->raw_len, s, strlen(s))

static void test_lf(void) {
  const run_t *r = check_stream("data: hello\n\ndata: world\n\n", 0);
  CHECK(r->n == 2);
  CHECK_RAW(&r->ev[0], "data: hello\n\n");
  CHECK_DATA(&r->ev[0], "hello");
  CHECK_DATA(&r->ev[1], "world");
  CHECK(r->ev[0].single && r->ev[0].data_lines == 1);
  CHECK(r->rest_len == 0);
}

static void test_crlf(void) {
  const run_t *r = check_stream("data: a\r\n\r\ndata: b c\r\n\r\n", 0);
  CHECK(r->n == 2);
  CHECK_RAW(&r->ev[0], "data: a\r\n\r\n");
  CHECK_DATA(&r->ev[0], "a");
  CHECK_DATA(&r->ev[1], "b c");
  CHECK(r->rest_len == 0);
}

static void test_cr(void) {
  /* The last event's empty line ends in a bare CR at the end of input: it
   * cannot be told apart from a cut "\r\n", so it comes back as rest. */
  const run_t *r = check_stream("data: a\r\rdata: b\r\r", 0);
  CHECK(r->n == 1);
  CHECK_RAW(&r->ev[0], "data: a\r\r");
  CHECK_DATA(&r->ev[0], "a");
  CHECK_MEM(r->rest, r->rest_len, "data: b\r\r", 9);
  r = check_stream("data: a\r\rdata: b\r\r: next\n\n", 0);
  CHECK(r->n == 3);
  CHECK_RAW(&r->ev[1], "data: b\r\r");
  CHECK_RAW(&r->ev[2], ": next\n\n");
}

static void test_mixed(void) {
  const run_t *r = check_stream("data: a\r\n\ndata: b\n\r\ndata: c\r\r\ndata: d\n\r: x\r\n\r\n", 0);
  /* "\n\r" is an LF line end followed by an empty line ended by CR. */
  CHECK(r->n == 5);
  CHECK_RAW(&r->ev[0], "data: a\r\n\n");
  CHECK_RAW(&r->ev[1], "data: b\n\r\n");
  CHECK_RAW(&r->ev[2], "data: c\r\r\n");
  CHECK_RAW(&r->ev[3], "data: d\n\r");
  CHECK_RAW(&r->ev[4], ": x\r\n\r\n");
  CHECK_DATA(&r->ev[2], "c");
  CHECK_DATA(&r->ev[3], "d");
  CHECK(r->rest_len == 0);
  /* "\r\r\n" is a CR line end, then an empty line ended by CRLF. */
  r = check_stream("data: x\r\r\n\n", 0);
  CHECK(r->n == 2);
  CHECK_RAW(&r->ev[0], "data: x\r\r\n");
  CHECK_RAW(&r->ev[1], "\n");
  CHECK(!r->ev[1].has_data);
}

static void test_multiline(void) {
  const run_t *r = check_stream("data: line1\ndata: line2\r\ndata:line3\rdata\ndata: \n\n", 0);
  CHECK(r->n == 1);
  CHECK_DATA(&r->ev[0], "line1\nline2\nline3\n\n");
  CHECK(r->ev[0].data_lines == 5);
  CHECK(!r->ev[0].single);
  r = check_stream("data: {\"a\":\ndata: 1}\n\ndata: single\n\n", 0);
  CHECK(r->n == 2);
  CHECK_DATA(&r->ev[0], "{\"a\":\n1}");
  CHECK_DATA(&r->ev[1], "single");
  CHECK(r->ev[1].single);
}

static void test_fields(void) {
  const run_t *r = check_stream(
      "event: message\nid: 42\nretry: 1000\ndata: {\"x\":1}\n\n"
      "event:delta\ndata:  two\n\n"
      "data : not data\ndat: no\nDATA: no\n\n"
      "data\n\n"
      "data:\n\n",
      0);
  CHECK(r->n == 5);
  CHECK_DATA(&r->ev[0], "{\"x\":1}");
  CHECK(r->ev[0].has_event);
  CHECK_MEM(r->ev[0].event, r->ev[0].event_len, "message", 7);
  CHECK_DATA(&r->ev[1], " two"); /* only one space is stripped */
  CHECK_MEM(r->ev[1].event, r->ev[1].event_len, "delta", 5);
  CHECK(!r->ev[2].has_data);
  CHECK(r->ev[3].has_data && r->ev[3].data_len == 0);
  CHECK(r->ev[4].has_data && r->ev[4].data_len == 0);
}

static void test_comments(void) {
  const run_t *r = check_stream(": ping\n\n:\n: keep-alive\r\n\r\ndata: a\n: mid\ndata: b\n\n", 0);
  CHECK(r->n == 3);
  CHECK_RAW(&r->ev[0], ": ping\n\n");
  CHECK(!r->ev[0].has_data);
  CHECK(!r->ev[1].has_data);
  CHECK_RAW(&r->ev[1], ":\n: keep-alive\r\n\r\n");
  CHECK_DATA(&r->ev[2], "a\nb");
  /* Stray empty lines are events of their own, so nothing is lost. */
  r = check_stream("\n\ndata: a\n\n\n", 0);
  CHECK(r->n == 4);
  CHECK_RAW(&r->ev[0], "\n");
  CHECK_RAW(&r->ev[2], "data: a\n\n");
  CHECK_RAW(&r->ev[3], "\n");
}

static void test_done(void) {
  const run_t *r = check_stream("data: [DONE]\n\ndata:[DONE]\n\ndata: [DONE] \n\ndata: [DONE]x\n\n", 0);
  CHECK(r->n == 4);
  CHECK(r->ev[0].is_done);
  CHECK(r->ev[1].is_done);
  CHECK(!r->ev[2].is_done);
  CHECK(!r->ev[3].is_done);
}

static void test_unterminated(void) {
  const run_t *r = check_stream("data: a\n\ndata: partial", 0);
  CHECK(r->n == 1);
  CHECK_MEM(r->rest, r->rest_len, "data: partial", 13);
  r = check_stream("data: a\n\ndata: b\n", 0);
  CHECK(r->n == 1);
  CHECK_MEM(r->rest, r->rest_len, "data: b\n", 8);
  r = check_stream("data: b\r\n\r", 0);
  CHECK(r->n == 0);
  CHECK(r->rest_len == 10);
}

static void test_bom(void) {
  const run_t *r = check_stream("\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", 0);
  CHECK(r->n == 2);
  CHECK_DATA(&r->ev[0], "a");
  CHECK_RAW(&r->ev[0], "\xEF\xBB\xBF" "data: a\n\n");
  /* Only at the very start of the stream. */
  r = check_stream("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", 0);
  CHECK(r->n == 2);
  CHECK(!r->ev[1].has_data);
}

static void test_realistic(void) {
  const run_t *r = check_stream(
      "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
      "\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
      "\"content\":\"\"},\"finish_reason\":null}]}\n\n"
      ": ping - 2025-01-01 00:00:00\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
      "\"\\u003c|channel|\\u003e\"},\"finish_reason\":null}]}\n\n"
      "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n"
      "data: [DONE]\n\n",
      0);
  CHECK(r->n == 5);
  CHECK(r->ev[4].is_done);
  CHECK(!r->ev[1].has_data);
  CHECK(r->rest_len == 0);
}

static void test_toobig(void) {
  /* 16 bytes fit, 17 do not; events before the big one are delivered
   * whatever the cuts. */
  const run_t *r = check_stream("data: 123456789\n\n", 17);
  CHECK(r->err == 0 && r->n == 1);
  r = check_stream("data: 123456789\n\n", 16);
  CHECK(r->err == RELAY_ETOOBIG && r->n == 0);
  r = check_stream("data: a\n\ndata: 123456789abcdef\n\n", 16);
  CHECK(r->err == RELAY_ETOOBIG && r->n == 1);
  r = check_stream("data: a\n\ndata: 123456789abcdef", 16);
  CHECK(r->err == RELAY_ETOOBIG && r->n == 1);
  /* An event held for a possible LF is measured with that LF. */
  r = check_stream("data: 12345678\r\r\n", 16);
  CHECK(r->err == RELAY_ETOOBIG && r->n == 0);
  r = check_stream("data: 12345678\r\rdata: b\n\n", 16);
  CHECK(r->err == 0 && r->n == 2);
}

/* After an error, rest + input[used..] are exactly the bytes not delivered,
 * so a caller can fall back to passing the stream through. The caller's
 * *used survives finish() (it used to live in the framer, and finish() reset
 * it before the chat filter read it: the bytes of the input went out twice).
 * Every cut of streams where the limit is crossed in the first input, in the
 * second, inside the buffer, and with events delivered from the same input. */
static void check_fallback(const char *s, size_t max_event, size_t want_events) {
  size_t len = strlen(s);
  int bad = 0;
  for (size_t c = 0; c <= len; c++) {
    static run_t r;
    relay_sse_t sse;
    const char *rest;
    size_t rest_len, used = 777, used2 = 777;
    memset(&r, 0, sizeof r);
    relay_sse_init(&sse, max_event);
    size_t at = 0; /* the failing input starts at s + at */
    int rc = relay_sse_feed(&sse, s, c, on_event, &r, &used);
    if (rc == 0) {
      if (used != c) bad++;
      at = c;
      rc = relay_sse_feed(&sse, s + c, len - c, on_event, &r, &used);
    }
    if (rc != RELAY_ETOOBIG || r.n != want_events) bad++;
    if (relay_sse_feed(&sse, "x", 1, on_event, &r, &used2) != RELAY_ETOOBIG || used2 != 0) bad++; /* sticky */
    relay_sse_finish(&sse, &rest, &rest_len);
    /* delivered + rest + unconsumed input: the stream, each byte once */
    char all[512];
    size_t n = r.all_len;
    memcpy(all, r.all, n);
    memcpy(all + n, rest, rest_len);
    n += rest_len;
    memcpy(all + n, s + at + used, len - at - used);
    n += len - at - used;
    if (n != len || memcmp(all, s, len) != 0) {
      fprintf(stderr, "  fallback loses or repeats bytes when cut at %zu (%zu bytes for %zu)\n", c, n, len);
      bad++;
    }
    /* the framer takes a new stream after finish() */
    r.n = 0;
    if (feed(&sse, "data: z\n\n", 9, on_event, &r) != 0 || r.n != 1) bad++;
    relay_sse_dispose(&sse);
  }
  CHECK(bad == 0);
}

static void test_error_fallback(void) {
  check_fallback("data: a\n\ndata: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\ndata: c\n\n", 20, 1);
  /* events before and after, CR and CRLF line ends, a comment, several lines */
  check_fallback("data: a\r\rdata: b\r\n\r\n: cccccccccccccccccccccccccccccccc\r\rdata: d\n\n", 24, 2);
  check_fallback("data: 1\n\ndata: 2\n\ndata: 3\ndata: 4\ndata: 5\ndata: 6\n\ndata: 7\n\n", 20, 2);
  /* a line that never ends */
  check_fallback("data: a\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 16, 1);
  /* over the limit only by the LF that may follow a CR */
  check_fallback("data: a\n\ndata: 12345678\r\r\n", 16, 1);
}

/* Whole events inside one input are handed out in place and the buffer is
 * never allocated; a cut event is copied once and the buffer then reused. */
static void test_zero_copy(void) {
  const char *s = "data: {\"a\":1}\n\ndata: {\"b\":2}\n\n";
  run_t r;
  relay_sse_t sse;
  memset(&r, 0, sizeof r);
  relay_sse_init(&sse, 0);
  for (int i = 0; i < 100; i++) {
    r.in_lo = s;
    r.in_hi = s + strlen(s);
    CHECK(feed(&sse, s, strlen(s), on_event, &r) == 0);
    r.n = 0;
    r.all_len = 0;
  }
  CHECK(r.in_place == 200);
  CHECK(sse.buf.cap == 0 && sse.buf.data == NULL);
  size_t cap = 0;
  for (int i = 0; i < 100; i++) {
    CHECK(feed(&sse, s, 10, on_event, &r) == 0);
    CHECK(feed(&sse, s + 10, strlen(s) - 10, on_event, &r) == 0);
    if (i == 0) cap = sse.buf.cap;
    r.n = 0;
    r.all_len = 0;
  }
  CHECK(cap > 0 && sse.buf.cap == cap);
  relay_sse_dispose(&sse);
}

static void count_cb(void *ud, const relay_sse_event_t *e) {
  size_t *n = ud;
  *n += e->data_len;
}

/* Work must stay linear in the input: one byte at a time over a big event,
 * a big CR-only stream in one input (no '\n' anywhere, so a search for one
 * must not restart at every line or event), and a cut event of many CR-only
 * lines. Each would take seconds to minutes if quadratic. */
static void test_linear(void) {
  size_t big = 4u << 20;
  char *s = malloc(big + 16);
  memcpy(s, "data: ", 6);
  memset(s + 6, 'x', big);
  memcpy(s + 6 + big, "\n\n", 2);
  relay_sse_t sse;
  relay_sse_init(&sse, big + 64);
  size_t got = 0;
  clock_t t0 = clock();
  for (size_t i = 0; i < big + 8; i++) feed(&sse, s + i, 1, count_cb, &got);
  CHECK(got == big);
  relay_sse_dispose(&sse);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 8.0); /* ~0.1 s at -O2, ~1 s with ASan at -O0 */

  size_t nev = 400000;
  char *cr = malloc(nev * 10);
  for (size_t i = 0; i < nev; i++) memcpy(cr + i * 10, "data: ab\r\r", 10);
  relay_sse_init(&sse, 0);
  got = 0;
  t0 = clock();
  CHECK(feed(&sse, cr, nev * 10, count_cb, &got) == 0);
  CHECK(got == (nev - 1) * 2);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  relay_sse_dispose(&sse);

  size_t nl = 300000;
  size_t l = 0;
  for (size_t i = 0; i < nl; i++, l += 3) memcpy(cr + l, ":x\r", 3);
  memcpy(cr + l, "data: ab\r\r\n", 11);
  l += 11;
  relay_sse_init(&sse, 4u << 20);
  got = 0;
  t0 = clock();
  CHECK(feed(&sse, cr, 1, count_cb, &got) == 0);
  CHECK(feed(&sse, cr + 1, l - 1, count_cb, &got) == 0);
  CHECK(got == 2);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  relay_sse_dispose(&sse);
  free(cr);
  free(s);
}

static void test_reuse_after_finish(void) {
  relay_sse_t sse;
  run_t r;
  const char *rest;
  size_t rest_len;
  memset(&r, 0, sizeof r);
  relay_sse_init(&sse, 0);
  feed(&sse, "data: a\n\ndata: b", 16, on_event, &r);
  relay_sse_finish(&sse, &rest, &rest_len);
  CHECK_MEM(rest, rest_len, "data: b", 7);
  feed(&sse, "\xEF\xBB\xBF" "data: c\n\n", 12, on_event, &r);
  CHECK(r.n == 2);
  CHECK_DATA(&r.ev[1], "c");
  relay_sse_finish(&sse, &rest, &rest_len);
  CHECK(rest_len == 0);
  CHECK(strcmp(relay_strerror(RELAY_ETOOBIG), "larger than the limit") == 0);
  relay_sse_dispose(&sse);
}

/* ---- writing new data into events ---- */

/* The first event a framer delivers, copied, and (when `with` is set) that
 * event rebuilt with the new data `with`. */
typedef struct wr_s {
  const char *with;
  size_t with_len;
  relay_buf_t out;  /* the rebuilt event */
  relay_buf_t raw, data, event;
  size_t n, data_lines;
  int has_data, has_event, bom, rc;
} wr_t;

static void wr_cb(void *ud, const relay_sse_event_t *e) {
  wr_t *w = ud;
  if (w->n++) return;
  relay_buf_append(&w->raw, e->raw, e->raw_len);
  w->has_data = e->data != NULL;
  if (e->data) relay_buf_append(&w->data, e->data, e->data_len);
  w->has_event = e->event != NULL;
  if (e->event) relay_buf_append(&w->event, e->event, e->event_len);
  w->data_lines = e->data_lines;
  w->bom = e->bom;
  if (w->with) w->rc = relay_sse_event_with_data(e, w->with, w->with_len, &w->out);
}

static void wr_init(wr_t *w, const char *with, size_t with_len) {
  memset(w, 0, sizeof *w);
  w->with = with;
  w->with_len = with_len;
}

static void wr_close(wr_t *w) {
  relay_buf_dispose(&w->out);
  relay_buf_dispose(&w->raw);
  relay_buf_dispose(&w->data);
  relay_buf_dispose(&w->event);
}

/* Frame a whole stream and then one more byte (so that an event ending in a
 * bare CR is delivered too); returns how many bytes of the stream were left
 * over (0 when it ended with a complete event). */
static size_t wr_frame(wr_t *w, const char *s, size_t len) {
  relay_sse_t sse;
  const char *rest;
  size_t rest_len;
  relay_sse_init(&sse, 16u << 20);
  CHECK(feed(&sse, s, len, wr_cb, w) == 0);
  CHECK(feed(&sse, ":", 1, wr_cb, w) == 0);
  relay_sse_finish(&sse, &rest, &rest_len);
  relay_sse_dispose(&sse);
  return rest_len - 1;
}

static int same(const relay_buf_t *a, const relay_buf_t *b) {
  return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* Line breaks as an SSE parser reads them: CRLF and CR become LF. */
static void normalise(const char *x, size_t n, relay_buf_t *out) {
  for (size_t i = 0; i < n; i++) {
    if (x[i] == '\r') {
      relay_buf_append(out, "\n", 1);
      if (i + 1 < n && x[i + 1] == '\n') i++;
    } else {
      relay_buf_append(out, x + i, 1);
    }
  }
}

/* The lines of an event that are not data lines, as they are. */
static void strip_data_lines(const char *raw, size_t n, int bom, relay_buf_t *out) {
  size_t i = bom ? 3 : 0;
  relay_buf_append(out, raw, i);
  while (i < n) {
    size_t q = i;
    while (q < n && raw[q] != '\r' && raw[q] != '\n') q++;
    size_t e = q < n ? q + 1 : q;
    if (raw[q] == '\r' && q + 1 < n && raw[q + 1] == '\n') e++;
    int data = q - i >= 4 && memcmp(raw + i, "data", 4) == 0 && (q - i == 4 || raw[i + 4] == ':');
    if (!data) relay_buf_append(out, raw + i, e - i);
    i = e;
  }
}

/* Rebuild the first event of `in` with data x: framing the result gives
 * exactly one event, its data is x with line breaks as LF, it has one data
 * line per line of x, and every line that is not a data line is unchanged. */
static int check_with_data(const char *in, size_t in_len, const char *x, size_t xlen) {
  wr_t w, back;
  relay_buf_t want, a, b;
  int ok = 1;
  wr_init(&w, x, xlen);
  wr_init(&back, NULL, 0);
  relay_buf_init(&want);
  relay_buf_init(&a);
  relay_buf_init(&b);
  wr_frame(&w, in, in_len);
  ok &= w.n >= 1 && w.rc == 0;
  ok &= wr_frame(&back, w.out.data, w.out.len) == 0 && back.n == 1;
  normalise(x, xlen, &want);
  ok &= back.has_data && same(&back.data, &want);
  size_t lines = 1;
  for (size_t i = 0; i < want.len; i++) lines += want.data[i] == '\n';
  ok &= back.data_lines == lines;
  ok &= back.has_event == w.has_event && same(&back.event, &w.event);
  ok &= back.bom == w.bom;
  strip_data_lines(w.raw.data, w.raw.len, w.bom, &a);
  strip_data_lines(w.out.data, w.out.len, w.bom, &b);
  ok &= same(&a, &b);
  if (!ok)
    fprintf(stderr, "  with_data: [%.*s] + [%.*s] gave [%.*s]\n", (int)in_len, in, (int)xlen, x, (int)w.out.len,
            w.out.data ? w.out.data : "");
  wr_close(&w);
  wr_close(&back);
  relay_buf_dispose(&want);
  relay_buf_dispose(&a);
  relay_buf_dispose(&b);
  return ok;
}

/* Every event shape against data with every kind of line break, leading and
 * trailing, and values that look like fields. */
static void test_with_data_breaks(void) {
  static const char *events[] = {
      "data: {\"a\":1}\n\n", "data: {\"a\":1}\r\n\r\n", "data: {\"a\":1}\r\r", "data:{\"a\":1}\n\n",
      "data\n\n", "data:\n\n", "data: \n\n", "event: e\nid: 7\ndata: x\nretry: 5\n\n",
      ": c\r\nevent: e\r\ndata: a\r\ndata: b\r\n: d\r\n\r\n", "data:a\rdata\rdata: c\r\r",
      "\xEF\xBB\xBF" "data: bom\n\n", "\xEF\xBB\xBF" "data: 1\ndata: 2\n\n", "\xEF\xBB\xBF" "data\n\n",
      "event: only\n\n", ": comment only\r\n\r\n", "data1: not data\ndata: yes\n\n",
  };
  static const char *values[] = {
      "", "x", " lead", "  two", "a\rb", "a\r\nb", "a\nb", "\r", "\n", "\r\n", "\r\r", "\n\r", "\r\n\n",
      "\rlead", "trail\r", "trail\r\n", "x\r\n\r\ny\rz\n", ":colon", "data: fake", "event: x\r\rid: 1",
      "\n\r\n\r", "\xEF\xBB\xBF" "bom in data",
  };
  int bad = 0;
  for (size_t i = 0; i < sizeof events / sizeof *events; i++)
    for (size_t j = 0; j < sizeof values / sizeof *values; j++)
      bad += !check_with_data(events[i], strlen(events[i]), values[j], strlen(values[j]));
  CHECK(bad == 0);
  /* long runs of CRs, LFs and CRLFs (linear: no rescan per line) */
  size_t big = 200000;
  char *x = malloc(big);
  for (size_t k = 0; k < 3; k++) {
    for (size_t i = 0; i < big; i++) x[i] = k == 0 ? '\r' : k == 1 ? (i % 2 ? 'a' : '\n') : (i % 2 ? '\n' : '\r');
    clock_t t0 = clock();
    CHECK(check_with_data("data: x\n\n", 9, x, big));
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  }
  free(x);
}

/* The exact bytes: a single data line is replaced in place, its line end
 * reused for continuation lines; the optional space is added only where the
 * new value needs it. */
static void test_with_data_exact(void) {
  static const struct {
    const char *in, *x, *out;
  } cases[] = {
      {"data: a\n\n", "b", "data: b\n\n"},
      {"data:a\n\n", "b", "data:b\n\n"},
      {"data:a\n\n", " b", "data:  b\n\n"},
      {"data\n\n", "b", "data:b\n\n"},
      {"data\n\n", " b", "data:  b\n\n"},
      {"id: 1\r\ndata: a\r\n\r\n", "x\ry\r\nz\n", "id: 1\r\ndata: x\r\ndata: y\r\ndata: z\r\ndata: \r\n\r\n"},
      {"data: a\r\r", "x\ny", "data: x\rdata: y\r\r"},
      {"event: e\ndata: a\ndata: b\n: c\n\n", "x\ry", "event: e\ndata: x\ndata: y\n: c\n\n"},
      {"event: e\r\n\r\n", "x", "event: e\r\ndata: x\r\n\r\n"},
      /* a later data line between a CR-ended line and the LF of the empty
       * line goes; CR then LF would read as one CRLF line end and the event
       * would not end, so a comment line keeps them apart (fuzzer find) */
      {"data: 1\rb\rdata: 2\n\n", "X", "data: X\rb\r:\n\n"},
      {"data: 1\rdata: 2\n\n", "X", "data: X\r:\n\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    wr_t w;
    wr_init(&w, cases[i].x, strlen(cases[i].x));
    wr_frame(&w, cases[i].in, strlen(cases[i].in));
    CHECK(w.n == 1 && w.rc == 0);
    CHECK_STR(w.out.data, w.out.len, cases[i].out);
    wr_close(&w);
  }
  relay_buf_t b;
  relay_buf_init(&b);
  CHECK(relay_sse_append_event(&b, "{\n \"a\": 1\r}", 11) == 0);
  CHECK_STR(b.data, b.len, "data: {\ndata:  \"a\": 1\ndata: }\n\n");
  b.len = 0;
  CHECK(relay_sse_append_event(&b, "", 0) == 0);
  CHECK_STR(b.data, b.len, "data: \n\n");
  relay_buf_dispose(&b);
}

int main(void) {
  test_lf();
  test_crlf();
  test_cr();
  test_mixed();
  test_multiline();
  test_fields();
  test_comments();
  test_done();
  test_unterminated();
  test_bom();
  test_realistic();
  test_toobig();
  test_error_fallback();
  test_zero_copy();
  test_linear();
  test_reuse_after_finish();
  test_with_data_breaks();
  test_with_data_exact();
  CHECK(bad_used == 0);
  return check_report("test_sse");
}
