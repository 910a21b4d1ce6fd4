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
    int rc = relay_sse_feed(&sse, s + prev, end - prev, on_event, r);
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
  relay_sse_close(&sse);
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
  CHECK(r->err == RELAY_SSE_ETOOBIG && r->n == 0);
  r = check_stream("data: a\n\ndata: 123456789abcdef\n\n", 16);
  CHECK(r->err == RELAY_SSE_ETOOBIG && r->n == 1);
  r = check_stream("data: a\n\ndata: 123456789abcdef", 16);
  CHECK(r->err == RELAY_SSE_ETOOBIG && r->n == 1);
  /* An event held for a possible LF is measured with that LF. */
  r = check_stream("data: 12345678\r\r\n", 16);
  CHECK(r->err == RELAY_SSE_ETOOBIG && r->n == 0);
  r = check_stream("data: 12345678\r\rdata: b\n\n", 16);
  CHECK(r->err == 0 && r->n == 2);
}

/* After an error, rest + input[consumed..] are exactly the bytes not
 * delivered, so a caller can fall back to passing the stream through. */
static void test_error_fallback(void) {
  const char *s = "data: a\n\ndata: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n\ndata: c\n\n";
  size_t len = strlen(s);
  int bad = 0;
  for (size_t c = 0; c <= len; c++) {
    static run_t r;
    relay_sse_t sse;
    const char *rest;
    size_t rest_len;
    memset(&r, 0, sizeof r);
    relay_sse_init(&sse, 20);
    size_t at = 0, in_len = c; /* the failing input is s[at..at+in_len) */
    int rc = relay_sse_feed(&sse, s, c, on_event, &r);
    if (rc == 0) {
      at = c;
      in_len = len - c;
      rc = relay_sse_feed(&sse, s + c, len - c, on_event, &r);
    }
    size_t consumed = sse.consumed;
    if (rc != RELAY_SSE_ETOOBIG || r.n != 1) bad++;
    if (relay_sse_feed(&sse, "x", 1, on_event, &r) != RELAY_SSE_ETOOBIG) bad++; /* sticky */
    relay_sse_finish(&sse, &rest, &rest_len);
    /* delivered + rest + unconsumed input + the inputs never fed */
    char all[256];
    size_t n = r.all_len;
    memcpy(all, r.all, n);
    memcpy(all + n, rest, rest_len);
    n += rest_len;
    memcpy(all + n, s + at + consumed, len - at - consumed);
    n += len - at - consumed;
    (void)in_len;
    if (n != len || memcmp(all, s, len) != 0) {
      fprintf(stderr, "  fallback loses bytes when cut at %zu\n", c);
      bad++;
    }
    relay_sse_close(&sse);
  }
  CHECK(bad == 0);
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
    CHECK(relay_sse_feed(&sse, s, strlen(s), on_event, &r) == 0);
    r.n = 0;
    r.all_len = 0;
  }
  CHECK(r.in_place == 200);
  CHECK(sse.buf.cap == 0 && sse.buf.data == NULL);
  size_t cap = 0;
  for (int i = 0; i < 100; i++) {
    CHECK(relay_sse_feed(&sse, s, 10, on_event, &r) == 0);
    CHECK(relay_sse_feed(&sse, s + 10, strlen(s) - 10, on_event, &r) == 0);
    if (i == 0) cap = sse.buf.cap;
    r.n = 0;
    r.all_len = 0;
  }
  CHECK(cap > 0 && sse.buf.cap == cap);
  relay_sse_close(&sse);
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
  for (size_t i = 0; i < big + 8; i++) relay_sse_feed(&sse, s + i, 1, count_cb, &got);
  CHECK(got == big);
  relay_sse_close(&sse);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 8.0); /* ~0.1 s at -O2, ~1 s with ASan at -O0 */

  size_t nev = 400000;
  char *cr = malloc(nev * 10);
  for (size_t i = 0; i < nev; i++) memcpy(cr + i * 10, "data: ab\r\r", 10);
  relay_sse_init(&sse, 0);
  got = 0;
  t0 = clock();
  CHECK(relay_sse_feed(&sse, cr, nev * 10, count_cb, &got) == 0);
  CHECK(got == (nev - 1) * 2);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  relay_sse_close(&sse);

  size_t nl = 300000;
  size_t l = 0;
  for (size_t i = 0; i < nl; i++, l += 3) memcpy(cr + l, ":x\r", 3);
  memcpy(cr + l, "data: ab\r\r\n", 11);
  l += 11;
  relay_sse_init(&sse, 4u << 20);
  got = 0;
  t0 = clock();
  CHECK(relay_sse_feed(&sse, cr, 1, count_cb, &got) == 0);
  CHECK(relay_sse_feed(&sse, cr + 1, l - 1, count_cb, &got) == 0);
  CHECK(got == 2);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  relay_sse_close(&sse);
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
  relay_sse_feed(&sse, "data: a\n\ndata: b", 16, on_event, &r);
  relay_sse_finish(&sse, &rest, &rest_len);
  CHECK_MEM(rest, rest_len, "data: b", 7);
  relay_sse_feed(&sse, "\xEF\xBB\xBF" "data: c\n\n", 12, on_event, &r);
  CHECK(r.n == 2);
  CHECK_DATA(&r.ev[1], "c");
  relay_sse_finish(&sse, &rest, &rest_len);
  CHECK(rest_len == 0);
  CHECK(strcmp(relay_sse_strerror(RELAY_SSE_ETOOBIG), "SSE event larger than the limit") == 0);
  relay_sse_close(&sse);
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
  return check_report("test_sse");
}
