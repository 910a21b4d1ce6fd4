/* The filter chain without sockets or a loop: units (bytes, events, whole
 * bodies), order through several stages, bypass past the limits (nothing
 * lost, nothing twice), a failing sink, and a filter that fails its
 * response. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "filter.h"

/* The client: what reaches the end of the chain. */
static relay_buf_t out;
static int sink_fail_after = -1; /* calls before the sink starts failing; -1 never */
static int sink_calls;

static int sink(void *ud, const char *data, size_t len) {
  if (sink_fail_after >= 0 && sink_calls++ >= sink_fail_after) return RELAY_ENOMEM;
  return relay_buf_append(&out, data, len);
}

/* A test filter: tags what it passes with its name, in its unit. */
typedef struct tag_filter_s {
  relay_filter_t base;
  char tag;
  relay_unit_t want;
  int ended;        /* how it ended, +1 */
  int fail_body;    /* BODY: call relay_filter_fail */
  size_t held;      /* EVENTS: bytes of one event it keeps back until the end */
  relay_buf_t keep;
} tag_filter_t;

static int tag_on_head(relay_filter_t *f, const relay_response_t *r) {
  tag_filter_t *t = (tag_filter_t *)f;
  f->unit = t->want;
  return 0;
}

static int tag_on_data(relay_filter_t *f, const char *data, size_t len) {
  tag_filter_t *t = (tag_filter_t *)f;
  if (t->fail_body) {
    relay_filter_fail(f);
    return 0;
  }
  char open[3] = {'<', t->tag, '>'};
  int rc = relay_filter_pass(f, open, 3);
  if (rc == 0) rc = relay_filter_pass(f, data, len);
  return rc;
}

/* Each event goes on with a marker before it; a holding filter keeps every
 * event back until its end (to see that a bypass flushes them first). */
static int tag_on_event(relay_filter_t *f, const relay_sse_event_t *ev) {
  tag_filter_t *t = (tag_filter_t *)f;
  if (t->held) return relay_buf_append(&t->keep, ev->raw, ev->raw_len);
  char m[3] = {'[', t->tag, ']'};
  int rc = relay_filter_pass(f, m, 3);
  return rc ? rc : relay_filter_pass(f, ev->raw, ev->raw_len);
}

static int tag_on_end(relay_filter_t *f, relay_end_t how) {
  tag_filter_t *t = (tag_filter_t *)f;
  t->ended = (int)how + 1;
  int rc = 0;
  if (t->keep.len) rc = relay_filter_pass(f, t->keep.data, t->keep.len);
  relay_buf_reset(&t->keep);
  return rc;
}

static int disposed;
static void tag_dispose(relay_filter_t *f) {
  tag_filter_t *t = (tag_filter_t *)f;
  relay_buf_dispose(&t->keep);
  disposed++;
  free(t);
}

static const relay_filter_ops_t tag_ops = {"tag", tag_on_head, tag_on_data, tag_on_event, tag_on_end, tag_dispose};

static tag_filter_t *tag_new(char tag, relay_unit_t unit) {
  tag_filter_t *t = calloc(1, sizeof *t);
  t->base.ops = &tag_ops;
  t->tag = tag;
  t->want = unit;
  return t;
}

static void chain_with(relay_chain_t *c, size_t max_event, size_t max_body, tag_filter_t **fs, int n) {
  relay_buf_reset(&out);
  sink_fail_after = -1;
  sink_calls = 0;
  relay_chain_init(c, max_event, max_body, sink, NULL, "test");
  relay_response_t r;
  memset(&r, 0, sizeof r);
  for (int i = 0; i < n; i++) {
    CHECK(fs[i]->base.ops->on_head(&fs[i]->base, &r) == 0);
    CHECK(relay_chain_add(c, &fs[i]->base) == 0);
  }
}

/* Two BYTES stages: each piece goes through both, in order. */
static void test_bytes(void) {
  relay_chain_t c;
  tag_filter_t *fs[] = {tag_new('a', RELAY_UNIT_BYTES), tag_new('b', RELAY_UNIT_BYTES)};
  chain_with(&c, 1024, 1024, fs, 2);
  CHECK(!relay_chain_holds_body(&c));
  CHECK(relay_chain_feed(&c, "xy", 2) == 0);
  CHECK(relay_chain_feed(&c, "z", 1) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK_STR(out.data, out.len, "<b><a><b>xy<b><a><b>z");
  CHECK(fs[0]->ended == RELAY_END_COMPLETE + 1 && fs[1]->ended == RELAY_END_COMPLETE + 1);
  relay_chain_dispose(&c);
}

/* EVENTS: whole events whatever the cuts; the unterminated rest goes out
 * after the filter's end, as it came. */
static void test_events(void) {
  const char *in = "data: 1\n\n: ping\r\n\r\ndata: 2\rdata: 3\r\rdata: tail";
  const char *want = "[e]data: 1\n\n[e]: ping\r\n\r\n[e]data: 2\rdata: 3\r\rdata: tail";
  size_t n = strlen(in);
  for (size_t cut = 0; cut <= n; cut++) {
    relay_chain_t c;
    tag_filter_t *fs[] = {tag_new('e', RELAY_UNIT_EVENTS)};
    chain_with(&c, 1024, 1024, fs, 1);
    CHECK(relay_chain_feed(&c, in, cut) == 0);
    CHECK(relay_chain_feed(&c, in + cut, n - cut) == 0);
    CHECK(relay_chain_end(&c, 1) == 0);
    CHECK_STR(out.data, out.len, want);
    relay_chain_dispose(&c);
  }
}

/* BODY: the body is held and handed over once, at the end; the stage after
 * it gets the filter's output in its own unit. */
static void test_body(void) {
  relay_chain_t c;
  tag_filter_t *fs[] = {tag_new('j', RELAY_UNIT_BODY), tag_new('k', RELAY_UNIT_BYTES)};
  chain_with(&c, 1024, 1024, fs, 2);
  CHECK(relay_chain_holds_body(&c));
  CHECK(relay_chain_feed(&c, "{\"a\":", 5) == 0);
  CHECK(relay_chain_feed(&c, "1}", 2) == 0);
  CHECK(out.len == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK_STR(out.data, out.len, "<k><j><k>{\"a\":1}");
  relay_chain_dispose(&c);
  /* cut: a held body is not handed over */
  tag_filter_t *gs[] = {tag_new('j', RELAY_UNIT_BODY)};
  chain_with(&c, 1024, 1024, gs, 1);
  CHECK(relay_chain_feed(&c, "{\"a\"", 4) == 0);
  CHECK(relay_chain_end(&c, 0) == 0);
  CHECK(out.len == 0 && gs[0]->ended == RELAY_END_CUT + 1);
  relay_chain_dispose(&c);
}

/* An event over the limit takes the filter out of the way: what it held
 * goes first, then every byte it had not seen, once; later bytes bypass it. */
static void test_event_bypass(void) {
  const char *in = "data: a\n\ndata: b\n\ndata: 0123456789abcdef\n\ndata: c\n\n";
  size_t n = strlen(in);
  for (size_t cut = 0; cut <= n; cut++) {
    relay_chain_t c;
    tag_filter_t *fs[] = {tag_new('e', RELAY_UNIT_EVENTS), tag_new('z', RELAY_UNIT_BYTES)};
    fs[0]->held = 1;
    chain_with(&c, 16, 1024, fs, 2);
    CHECK(relay_chain_feed(&c, in, cut) == 0);
    CHECK(relay_chain_feed(&c, in + cut, n - cut) == 0);
    CHECK(relay_chain_end(&c, 1) == 0);
    CHECK(fs[0]->ended == RELAY_END_BYPASS + 1);
    /* strip the markers the stages added: the bytes are the input, in order */
    relay_buf_t plain;
    relay_buf_init(&plain);
    for (size_t i = 0; i < out.len; i++) {
      if (i + 2 < out.len && (out.data[i] == '[' || out.data[i] == '<') && (out.data[i + 2] == ']' || out.data[i + 2] == '>')) {
        i += 2;
        continue;
      }
      relay_buf_append(&plain, out.data + i, 1);
    }
    CHECK_STR(plain.data, plain.len, in);
    relay_buf_dispose(&plain);
    relay_chain_dispose(&c);
  }
}

/* A body over the limit: the part held so far and the rest, once, past the
 * filter; the chain no longer holds the body (the head may go). */
static void test_body_bypass(void) {
  relay_chain_t c;
  tag_filter_t *fs[] = {tag_new('j', RELAY_UNIT_BODY)};
  chain_with(&c, 1024, 8, fs, 1);
  CHECK(relay_chain_feed(&c, "12345", 5) == 0);
  CHECK(relay_chain_holds_body(&c));
  CHECK(relay_chain_feed(&c, "6789", 4) == 0);
  CHECK(!relay_chain_holds_body(&c));
  CHECK(relay_chain_feed(&c, "AB", 2) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK_STR(out.data, out.len, "123456789AB");
  CHECK(fs[0]->ended == RELAY_END_BYPASS + 1);
  relay_chain_dispose(&c);
}

/* A sink that fails: the error reaches the feed, and nothing follows the
 * gap. A BODY filter that fails its response marks the chain. */
static void test_failures(void) {
  relay_chain_t c;
  tag_filter_t *fs[] = {tag_new('a', RELAY_UNIT_BYTES)};
  chain_with(&c, 1024, 1024, fs, 1);
  sink_fail_after = 1;
  CHECK(relay_chain_feed(&c, "x", 1) < 0);
  CHECK(relay_chain_feed(&c, "y", 1) < 0);
  CHECK(relay_chain_end(&c, 1) < 0);
  CHECK_STR(out.data, out.len, "<a>");
  relay_chain_dispose(&c);
  tag_filter_t *gs[] = {tag_new('j', RELAY_UNIT_BODY)};
  gs[0]->fail_body = 1;
  chain_with(&c, 1024, 1024, gs, 1);
  CHECK(relay_chain_feed(&c, "{}", 2) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.failed && out.len == 0);
  relay_chain_dispose(&c);
  /* a full chain refuses (and disposes) one more filter */
  chain_with(&c, 1024, 1024, NULL, 0);
  int before = disposed;
  for (int i = 0; i < RELAY_CHAIN_MAX; i++) CHECK(relay_chain_add(&c, &tag_new('x', RELAY_UNIT_BYTES)->base) == 0);
  CHECK(relay_chain_add(&c, &tag_new('x', RELAY_UNIT_BYTES)->base) == RELAY_ETOOMANY);
  CHECK(disposed == before + 1);
  relay_chain_dispose(&c);
}

/* What the rewriting filters take: 2xx, JSON or SSE, unencoded. */
static void test_classify(void) {
  relay_head_t h;
  relay_head_init(&h, 4096);
  relay_response_t r;
  relay_head_add(&h, "Content-Type", "text/event-stream; charset=utf-8", 32);
  relay_response_classify(&r, 200, &h);
  CHECK(r.media == RELAY_MEDIA_SSE && !r.encoded && relay_response_is_rewritable(&r));
  relay_response_classify(&r, 500, &h);
  CHECK(!relay_response_is_rewritable(&r));
  relay_head_reset(&h);
  relay_head_add(&h, "content-type", "Application/JSON", 16);
  relay_head_add(&h, "Content-Encoding", "gzip", 4);
  relay_response_classify(&r, 200, &h);
  CHECK(r.media == RELAY_MEDIA_JSON && r.encoded && !relay_response_is_rewritable(&r));
  relay_head_reset(&h);
  relay_head_add(&h, "Content-Type", "application/jsonl", 17);
  relay_response_classify(&r, 200, &h);
  CHECK(r.media == RELAY_MEDIA_OTHER);
  relay_head_dispose(&h);
}

/* A held body's filter may choose the status, but only one that frames a
 * body; outside a chain the call does nothing. */
static void test_set_status(void) {
  relay_chain_t c;
  tag_filter_t *a = tag_new('a', RELAY_UNIT_BODY);
  chain_with(&c, 1024, 1024, &a, 1);
  c.status = 200;
  relay_filter_set_status(&a->base, 502);
  CHECK(c.status == 502);
  static const int refused[] = {0, 100, 101, 199, 204, 205, 304, 600, -1};
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
    relay_filter_set_status(&a->base, refused[i]);
    CHECK(c.status == 502);
  }
  relay_filter_set_status(&a->base, 400);
  CHECK(c.status == 400);
  relay_chain_dispose(&c);
  tag_filter_t *loose = tag_new('b', RELAY_UNIT_BODY);
  relay_filter_set_status(&loose->base, 500); /* no chain: nothing to set, no crash */
  loose->base.ops->dispose(&loose->base);
}

/* Only the last stage's output can be the whole response. */
static void test_end_response(void) {
  relay_chain_t c;
  tag_filter_t *fs[2] = {tag_new('a', RELAY_UNIT_BYTES), tag_new('b', RELAY_UNIT_BYTES)};
  chain_with(&c, 1024, 1024, fs, 2);
  relay_filter_end_response(&fs[0]->base);
  CHECK(c.ended == 0);
  relay_filter_end_response(&fs[1]->base);
  CHECK(c.ended == 1);
  relay_chain_dispose(&c);
}

int main(void) {
  relay_buf_init(&out);
  test_set_status();
  test_end_response();
  test_bytes();
  test_events();
  test_body();
  test_event_bypass();
  test_body_bypass();
  test_failures();
  test_classify();
  relay_buf_dispose(&out);
  return check_report("test_chain");
}
