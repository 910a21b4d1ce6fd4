/* The Responses encoder as a filter, without sockets or a loop: a chain of
 * the chat rewrite (field mode, harmony rules, as the Lua layer sets it on a
 * Responses route) and the encoder, with a buffer as the client. A raw
 * harmony stream gives the same events whatever the cuts (every byte), no
 * chat byte ever reaches the client, whole bodies answer with the encoder's
 * status, error statuses with the upstream's message, and the ends of a
 * stream decide its terminal event. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "resp_test.h"
#include "responses.h"
#include "text/harmony_rules.h"

static relay_buf_t out;

static int sink(void *ud, const char *data, size_t len) { return relay_buf_append(&out, data, len); }

static relay_chat_opts_t *field_opts(void) {
  relay_chat_opts_t *o = relay_chat_opts_new();
  CHECK(relay_ruleset_new(&o->rules, harmony_rules, HARMONY_NRULES) == 0);
  o->mode = RELAY_MODE_FIELD;
  o->reasoning_states = 1u << 1; /* state 1: analysis */
  snprintf(o->field[0], sizeof o->field[0], "%s", RELAY_RESPONSES_REASONING_KEY);
  return o;
}

/* A request translated as the front end does it. */
static void translate(relay_resp_req_t *r, const char *body) {
  relay_buf_t chat;
  relay_buf_init(&chat);
  relay_resp_req_init(r);
  CHECK(relay_resp_req_translate(r, NULL, body, strlen(body), &chat) == 0);
  relay_buf_dispose(&chat);
}

/* The chain a Responses route builds for a response with this status and
 * Content-Type: the chat filter when it takes part, then the encoder.
 * Returns the number of stages. */
static unsigned bridge_chain(relay_chain_t *c, relay_chat_opts_t *o, const relay_resp_req_t *req, int status,
                             const char *ctype, const char *encoding, size_t max_body) {
  relay_buf_reset(&out);
  relay_chain_init(c, max_body, max_body, sink, NULL, "test");
  c->status = status;
  relay_head_t h;
  relay_head_init(&h, 4096);
  if (ctype) relay_head_add(&h, "Content-Type", ctype, strlen(ctype));
  if (encoding) relay_head_add(&h, "Content-Encoding", encoding, strlen(encoding));
  relay_response_t r;
  relay_response_classify(&r, status, &h);
  relay_filter_t *fs[2] = {relay_chat_filter_type.create(o, NULL), relay_responses_filter_new(req, 0x1234, 1700000000)};
  for (int i = 0; i < 2; i++) {
    /* the core's order: the chain is made, then each filter asked */
    if (fs[i]->ops->on_head(fs[i], &r) == 0) CHECK(relay_chain_add(c, fs[i]) == 0);
    else fs[i]->ops->dispose(fs[i]);
  }
  relay_head_dispose(&h);
  return c->n;
}

static void add_chunk(relay_buf_t *b, const char *delta, const char *finish) {
  relay_buf_printf(b,
                   "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-oss\","
                   "\"choices\":[{\"index\":0,\"delta\":%s,\"finish_reason\":%s}]}\n\n",
                   delta, finish ? finish : "null");
}

static const char *const harmony_tokens[] = {
    "<|channel|>", "analysis", "<|message|>", "Think \\\"hard\\\" \\u00e9", "<|end|>",        "<|start|>",
    "assistant",   "<|channel|>", "final",    "<|message|>",              "Hello \\u003cb\\u003e", " \\ud83c\\udf89!"};

static void harmony_stream(relay_buf_t *in, int done) {
  add_chunk(in, "{\"role\":\"assistant\",\"content\":\"\"}", NULL);
  for (size_t i = 0; i < sizeof harmony_tokens / sizeof harmony_tokens[0]; i++) {
    char d[128];
    snprintf(d, sizeof d, "{\"content\":\"%s\"}", harmony_tokens[i]);
    add_chunk(in, d, NULL);
  }
  add_chunk(in, "{}", "\"stop\"");
  relay_buf_append_str(in, "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,"
                           "\"total_tokens\":14}}\n\n");
  if (done) relay_buf_append_str(in, "data: [DONE]\n\n");
}

/* The data of the event whose type is `type` (the first), NUL-terminated in
 * buf; "" when there is none. */
static const char *event_data(const relay_buf_t *s, const char *type, relay_buf_t *buf) {
  char want[96];
  snprintf(want, sizeof want, "event: %s\ndata: ", type);
  relay_buf_reset(buf);
  const char *p = s->data ? memmem(s->data, s->len, want, strlen(want)) : NULL;
  if (p) {
    p += strlen(want);
    const char *e = memmem(p, s->len - (size_t)(p - s->data), "\n\n", 2);
    relay_buf_append(buf, p, e ? (size_t)(e - p) : 0);
  }
  relay_buf_append(buf, "", 1);
  buf->len--;
  return buf->data;
}

/* Every event is "event: T\ndata: {...}\n\n" with valid JSON; counts them. */
static size_t check_events(const relay_buf_t *s) {
  size_t n = 0;
  const char *p = s->data, *end = s->data + s->len;
  while (p < end) {
    const char *e = memmem(p, (size_t)(end - p), "\n\n", 2);
    CHECK(e != NULL);
    if (!e) break;
    CHECK(strncmp(p, "event: response.", 16) == 0);
    const char *d = memmem(p, (size_t)(e - p), "\ndata: ", 7);
    CHECK(d != NULL);
    if (d) CHECK(rt_valid(d + 7, (size_t)(e - d - 7)));
    n++;
    p = e + 2;
  }
  return n;
}

/* A raw harmony stream cut at every byte gives one output: a reasoning item
 * and a message, completed, and no chat byte. */
static void test_stream_every_cut(void) {
  relay_resp_req_t req;
  translate(&req, "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}");
  relay_chat_opts_t *o = field_opts();
  relay_buf_t in, first, tmp;
  relay_buf_init(&in);
  relay_buf_init(&first);
  relay_buf_init(&tmp);
  harmony_stream(&in, 1);
  for (size_t cut = 0; cut <= in.len; cut++) {
    relay_chain_t c;
    CHECK(bridge_chain(&c, o, &req, 200, "text/event-stream", NULL, 1 << 20) == 2);
    CHECK(relay_chain_feed(&c, in.data, cut) == 0);
    CHECK(relay_chain_feed(&c, in.data + cut, in.len - cut) == 0);
    CHECK(relay_chain_end(&c, 1) == 0);
    if (cut == 0) relay_buf_append(&first, out.data, out.len);
    else if (out.len != first.len || memcmp(out.data, first.data, out.len) != 0) {
      CHECK_MEM(out.data, out.len, first.data, first.len);
      relay_chain_dispose(&c);
      break;
    }
    relay_chain_dispose(&c);
  }
  CHECK(check_events(&first) > 10);
  CHECK(memmem(first.data, first.len, "chat.completion", 15) == NULL);
  CHECK(memmem(first.data, first.len, "[DONE]", 6) == NULL);
  const char *done = event_data(&first, "response.completed", &tmp);
  relay_buf_t d = {(char *)done, strlen(done), 0};
  CHECK_EQ_STR(STR(d, "response.status"), "completed");
  CHECK_EQ_STR(STR(d, "response.output.0.type"), "reasoning");
  CHECK_EQ_STR(STR(d, "response.output.0.content.0.text"), "Think \"hard\" \xc3\xa9");
  CHECK_EQ_STR(STR(d, "response.output.1.type"), "message");
  CHECK_EQ_STR(STR(d, "response.output.1.content.0.text"), "Hello <b> \xf0\x9f\x8e\x89!");
  CHECK_EQ_STR(RAW(d, "response.usage.input_tokens"), "9");
  CHECK_EQ_STR(STR(d, "response.id"), "resp_0000000000001234");
  CHECK_EQ_STR(RAW(d, "response.created_at"), "1700000000");
  relay_chat_opts_unref(o);
  relay_resp_req_dispose(&req);
  relay_buf_dispose(&in);
  relay_buf_dispose(&first);
  relay_buf_dispose(&tmp);
}

/* How a stream ends: [DONE] or a finish_reason completes it; a clean end
 * without either fails it and asks for the connection to close (the chain
 * says the output is missing a piece); a cut fails it and lets the core cut. */
static void test_stream_ends(void) {
  relay_resp_req_t req;
  translate(&req, "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}");
  relay_chat_opts_t *o = field_opts();
  relay_buf_t in, tmp;
  relay_buf_init(&in);
  relay_buf_init(&tmp);
  struct {
    int done, keep_finish, complete, want_rc;
    const char *terminal;
  } cases[] = {
      {1, 1, 1, 0, "response.completed"}, {0, 1, 1, 0, "response.completed"}, {0, 0, 1, -1, "response.failed"},
      {1, 1, 0, 0, "response.completed"}, {0, 0, 0, 0, "response.failed"},
  };
  /* An upstream error mid-stream ends the response there: the chain says so,
   * and nothing the upstream sends after it comes out. */
  relay_buf_reset(&in);
  add_chunk(&in, "{\"content\":\"Hi\"}", NULL);
  relay_buf_append_str(&in, "data: {\"error\":{\"code\":500,\"message\":\"boom\"}}\n\n");
  size_t at_error = in.len;
  harmony_stream(&in, 1);
  relay_chain_t ce;
  bridge_chain(&ce, o, &req, 200, "text/event-stream", NULL, 1 << 20);
  CHECK(relay_chain_feed(&ce, in.data, at_error) == 0);
  CHECK(ce.ended == 1);
  size_t before = out.len;
  CHECK(relay_chain_feed(&ce, in.data + at_error, in.len - at_error) == 0);
  CHECK(relay_chain_end(&ce, 1) == 0);
  CHECK(out.len == before);
  CHECK_HAS(event_data(&out, "response.failed", &tmp), "boom");
  relay_chain_dispose(&ce);
  /* A completed one does not: the upstream ends its own message (and its
   * connection can be reused). */
  relay_buf_reset(&in);
  harmony_stream(&in, 1);
  bridge_chain(&ce, o, &req, 200, "text/event-stream", NULL, 1 << 20);
  CHECK(relay_chain_feed(&ce, in.data, in.len) == 0);
  CHECK(ce.ended == 0);
  relay_chain_dispose(&ce);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    relay_buf_reset(&in);
    harmony_stream(&in, cases[k].done);
    if (!cases[k].keep_finish) {
      char *f = memmem(in.data, in.len, "\"finish_reason\":\"stop\"", 22);
      in.len = (size_t)(f - in.data);
      while (in.len && in.data[in.len - 1] != '\n') in.len--; /* the stream ends before the finish chunk */
    }
    relay_chain_t c;
    bridge_chain(&c, o, &req, 200, "text/event-stream", NULL, 1 << 20);
    CHECK(relay_chain_feed(&c, in.data, in.len) == 0);
    int rc = relay_chain_end(&c, cases[k].complete);
    if (rc != cases[k].want_rc) fprintf(stderr, "case %zu: rc %d\n", k, rc);
    CHECK(rc == cases[k].want_rc);
    CHECK(*event_data(&out, cases[k].terminal, &tmp) != 0);
    CHECK(check_events(&out) > 3);
    relay_chain_dispose(&c);
  }
  relay_chat_opts_unref(o);
  relay_resp_req_dispose(&req);
  relay_buf_dispose(&in);
  relay_buf_dispose(&tmp);
}

/* A whole JSON body: one Response object and its status; an error object in
 * a 200 gives the error's status. */
static void test_json_bodies(void) {
  relay_resp_req_t req;
  translate(&req, "{\"model\":\"m\",\"input\":\"hi\"}");
  relay_chat_opts_t *o = field_opts();
  static const char ok[] =
      "{\"id\":\"c2\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
      "\"content\":\"<|channel|>analysis<|message|>R<|end|><|start|>assistant<|channel|>final<|message|>F\"},"
      "\"finish_reason\":\"stop\"}]}";
  relay_chain_t c;
  CHECK(bridge_chain(&c, o, &req, 200, "application/json", NULL, 1 << 20) == 2);
  CHECK(relay_chain_feed(&c, ok, sizeof ok - 1) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 200);
  CHECK_EQ_STR(STR(out, "status"), "completed");
  CHECK_EQ_STR(STR(out, "output.0.content.0.text"), "R");
  CHECK_EQ_STR(STR(out, "output.1.content.0.text"), "F");
  relay_chain_dispose(&c);

  static const char err[] = "{\"error\":{\"code\":503,\"message\":\"Loading model\",\"type\":\"unavailable_error\"}}";
  bridge_chain(&c, o, &req, 200, "application/json", NULL, 1 << 20);
  CHECK(relay_chain_feed(&c, err, sizeof err - 1) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 503);
  CHECK_EQ_STR(STR(out, "status"), "failed");
  CHECK_EQ_STR(STR(out, "error.message"), "Loading model");
  relay_chain_dispose(&c);

  static const char junk[] = "not json at all";
  bridge_chain(&c, o, &req, 200, "application/json", NULL, 1 << 20);
  CHECK(relay_chain_feed(&c, junk, sizeof junk - 1) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 502);
  CHECK_EQ_STR(STR(out, "status"), "failed");

  /* over the body limit: the encoder cannot answer, and says so (the core's 502) */
  relay_chain_dispose(&c);
  bridge_chain(&c, o, &req, 200, "application/json", NULL, 64);
  CHECK(relay_chain_feed(&c, ok, sizeof ok - 1) < 0);
  CHECK(memmem(out.data ? out.data : "", out.len, "chat.completion", 15) == NULL);
  relay_chain_dispose(&c);
  relay_chat_opts_unref(o);
  relay_resp_req_dispose(&req);
}

/* Error statuses, encoded and unreadable bodies: an OpenAI-shaped error, the
 * upstream's message when it has one; the chat filter stays out. */
static void test_errors(void) {
  relay_resp_req_t req;
  translate(&req, "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}");
  relay_chat_opts_t *o = field_opts();
  relay_chain_t c;
  static const char llama[] =
      "{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size\","
      "\"type\":\"exceed_context_size_error\"}}";
  CHECK(bridge_chain(&c, o, &req, 400, "application/json", NULL, 1 << 20) == 1);
  CHECK(relay_chain_feed(&c, llama, sizeof llama - 1) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 400);
  CHECK_EQ_STR(STR(out, "error.message"), "the request exceeds the available context size");
  CHECK_EQ_STR(STR(out, "error.type"), "exceed_context_size_error");
  CHECK_EQ_STR(STR(out, "error.code"), "context_length_exceeded");
  relay_chain_dispose(&c);

  CHECK(bridge_chain(&c, o, &req, 500, "text/html", NULL, 1 << 20) == 1);
  CHECK(relay_chain_feed(&c, "<html>oops</html>", 17) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 500);
  CHECK_EQ_STR(STR(out, "error.message"), "the upstream server answered with status 500");
  CHECK_EQ_STR(RAW(out, "error.code"), "null");
  relay_chain_dispose(&c);

  CHECK(bridge_chain(&c, o, &req, 200, "application/json", "gzip", 1 << 20) == 1);
  CHECK(relay_chain_feed(&c, "\x1f\x8b\x08\x00", 4) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 502);
  CHECK_HAS(STR(out, "error.message"), "encoded");
  relay_chain_dispose(&c);

  CHECK(bridge_chain(&c, o, &req, 200, "text/plain", NULL, 1 << 20) == 1);
  CHECK(relay_chain_feed(&c, "hello", 5) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(c.status == 502);
  CHECK_HAS(STR(out, "error.message"), "neither JSON nor an event stream");
  relay_chain_dispose(&c);
  relay_chat_opts_unref(o);
  relay_resp_req_dispose(&req);
}

/* An upstream event over the limit fails the response; its bytes and what
 * follows never pass. */
static void test_event_over_limit(void) {
  relay_resp_req_t req;
  translate(&req, "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true}");
  relay_chat_opts_t *o = field_opts();
  relay_buf_t in, tmp;
  relay_buf_init(&in);
  relay_buf_init(&tmp);
  add_chunk(&in, "{\"content\":\"Hi\"}", NULL);
  relay_buf_append_str(&in, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
  for (int i = 0; i < 3000; i++) relay_buf_append_str(&in, "y");
  relay_buf_append_str(&in, "\"}}]}\n\n");
  harmony_stream(&in, 1);
  relay_chain_t c;
  bridge_chain(&c, o, &req, 200, "text/event-stream", NULL, 1024);
  CHECK(relay_chain_feed(&c, in.data, in.len) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(*event_data(&out, "response.failed", &tmp) != 0);
  CHECK_HAS(tmp.data, "larger than the relay's limit");
  CHECK(memmem(out.data, out.len, "yyyy", 4) == NULL);
  CHECK(memmem(out.data, out.len, "chat.completion", 15) == NULL);
  check_events(&out);
  relay_chain_dispose(&c);
  relay_chat_opts_unref(o);
  relay_resp_req_dispose(&req);
  relay_buf_dispose(&in);
  relay_buf_dispose(&tmp);
}

int main(void) {
  relay_buf_init(&out);
  test_stream_every_cut();
  test_stream_ends();
  test_json_bodies();
  test_errors();
  test_event_over_limit();
  relay_buf_dispose(&out);
  return check_report("test_responses_filter");
}
