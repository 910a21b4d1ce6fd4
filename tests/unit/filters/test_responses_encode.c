/* The Responses encoder: the exact event sequences (as the Codex captures
 * and the openai SDK's accumulator want them) for text, reasoning + text,
 * reasoning + a function call, two calls, a custom tool call, a length
 * finish, an upstream error, a cut stream, and the non-streaming object;
 * namespace and custom tool names round trip through the request state.
 * Every event must be "event: T\ndata: J\n\n" with J valid JSON (jsmn,
 * strict check) whose type is T and whose sequence_number counts from 0 by
 * one; every text valid UTF-8. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_chunk.h"
#include "responses_encode.h"
#include "responses_request.h"
#include "resp_test.h"

#define MAX_EVENTS 4096

typedef struct ev_s {
  char type[64];
  const char *data;
  size_t len;
} ev_t;

typedef struct run_s {
  relay_resp_req_t req;
  relay_resp_enc_t enc;
  relay_buf_t out;
  ev_t ev[MAX_EVENTS];
  size_t nev;
  int framing_ok;
} run_t;

static const char *default_req = "{\"model\":\"gpt-oss-20b\",\"input\":\"hi\",\"stream\":true}";

static void run_init(run_t *r, const char *request, int stream, uint64_t seed) {
  memset(r, 0, sizeof *r);
  relay_resp_req_init(&r->req);
  relay_buf_t chat;
  relay_buf_init(&chat);
  CHECK(relay_resp_req_translate(&r->req, NULL, request, strlen(request), &chat) == 0);
  relay_buf_dispose(&chat);
  relay_resp_enc_opts_t o = {seed, 1796055379, stream, 0};
  relay_resp_enc_init(&r->enc, &r->req, &o);
  relay_buf_init(&r->out);
}

static void run_close(run_t *r) {
  relay_resp_enc_dispose(&r->enc);
  relay_resp_req_dispose(&r->req);
  relay_buf_dispose(&r->out);
}

static relay_chat_piece_t pc(relay_chat_piece_kind_t k, const char *text) {
  relay_chat_piece_t p;
  memset(&p, 0, sizeof p);
  p.kind = k;
  p.text = text;
  p.len = text ? strlen(text) : 0;
  return p;
}

static void feed(run_t *r, relay_chat_piece_t p) { CHECK(relay_resp_enc_feed(&r->enc, &p, &r->out) == 0); }
static void reasoning(run_t *r, const char *s) { feed(r, pc(RELAY_CHAT_PIECE_REASONING, s)); }
static void content(run_t *r, const char *s) { feed(r, pc(RELAY_CHAT_PIECE_CONTENT, s)); }
static void finish(run_t *r, const char *s) { feed(r, pc(RELAY_CHAT_PIECE_FINISH, s)); }

static void tool_begin(run_t *r, long index, const char *id, const char *name) {
  relay_chat_piece_t p = pc(RELAY_CHAT_PIECE_TOOL_BEGIN, NULL);
  p.index = index;
  p.id = id;
  p.id_len = strlen(id);
  p.name = name;
  p.name_len = strlen(name);
  feed(r, p);
}

static void tool_args(run_t *r, long index, const char *args) {
  relay_chat_piece_t p = pc(RELAY_CHAT_PIECE_TOOL_ARGS, args);
  p.index = index;
  feed(r, p);
}

static void usage(run_t *r, long long in, long long out, long long rs, long long cached) {
  relay_chat_piece_t p = pc(RELAY_CHAT_PIECE_USAGE, NULL);
  p.usage.prompt_tokens = in;
  p.usage.completion_tokens = out;
  p.usage.reasoning_tokens = rs;
  p.usage.cached_tokens = cached;
  feed(r, p);
}

/* Split the output into events, checking the framing, the JSON, the type
 * and the sequence numbers. */
static void parse_events(run_t *r, int line) {
  const char *p = r->out.data ? r->out.data : "", *end = p + r->out.len;
  r->nev = 0;
  r->framing_ok = 1;
  while (p < end && r->nev < MAX_EVENTS) {
    ev_t *e = &r->ev[r->nev];
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (strncmp(p, "event: ", 7) != 0 || !nl || (size_t)(nl - p - 7) >= sizeof e->type) break;
    memcpy(e->type, p + 7, (size_t)(nl - p - 7));
    e->type[nl - p - 7] = 0;
    p = nl + 1;
    if (end - p < 6 || strncmp(p, "data: ", 6) != 0) break;
    p += 6;
    const char *stop = NULL;
    for (const char *q = p; q + 1 < end; q++)
      if (q[0] == '\n' && q[1] == '\n') {
        stop = q;
        break;
      }
    if (!stop || memchr(p, '\n', (size_t)(stop - p))) break;
    e->data = p;
    e->len = (size_t)(stop - p);
    p = stop + 2;
    char seq[32];
    snprintf(seq, sizeof seq, "%zu", r->nev);
    if (!rt_valid(e->data, e->len) || strcmp(rt_str(e->data, e->len, "type"), e->type) != 0 ||
        strcmp(rt_raw(e->data, e->len, "sequence_number"), seq) != 0 || !rt_utf8(e->data, e->len)) {
      fprintf(stderr, "%s:%d: bad event %zu: %s %.*s\n", __FILE__, line, r->nev, e->type, (int)e->len, e->data);
      r->framing_ok = 0;
    }
    r->nev++;
  }
  if (p != end) {
    fprintf(stderr, "%s:%d: bad framing at [%.80s]\n", __FILE__, line, p);
    r->framing_ok = 0;
  }
  CHECK(r->framing_ok);
}

/* The event types must be exactly these ("response." left out). */
static void expect_types(run_t *r, const char *const *want, size_t n, int line) {
  parse_events(r, line);
  int ok = r->nev == n;
  for (size_t i = 0; ok && i < n; i++) ok = strncmp(r->ev[i].type, "response.", 9) == 0 && strcmp(r->ev[i].type + 9, want[i]) == 0;
  if (ok) {
    check_passed++;
    return;
  }
  check_failed++;
  fprintf(stderr, "%s:%d: event types differ; got %zu:\n", __FILE__, line, r->nev);
  for (size_t i = 0; i < r->nev || i < n; i++)
    fprintf(stderr, "  %-45s %s\n", i < r->nev ? r->ev[i].type : "-", i < n ? want[i] : "-");
}
#define EXPECT_TYPES(r, ...)                                              \
  do {                                                                    \
    static const char *const w_[] = {__VA_ARGS__};                        \
    expect_types(r, w_, sizeof w_ / sizeof w_[0], __LINE__);              \
  } while (0)

/* Field of event i by path, raw / decoded. */
static const char *EV_RAW(run_t *r, size_t i, const char *path) {
  return i < r->nev ? rt_raw(r->ev[i].data, r->ev[i].len, path) : "<no event>";
}
static const char *EV_STR(run_t *r, size_t i, const char *path) {
  return i < r->nev ? rt_str(r->ev[i].data, r->ev[i].len, path) : "<no event>";
}
static size_t last(run_t *r) { return r->nev ? r->nev - 1 : 0; }

static void test_text_only(void) {
  run_t r;
  run_init(&r, default_req, 1, 0xabc);
  content(&r, "");
  content(&r, "Hel");
  content(&r, "lo \"you\"\n");
  finish(&r, "stop");
  usage(&r, 12, 5, 0, 4);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  CHECK(relay_resp_enc_ended(&r.enc));
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "output_text.delta",
               "output_text.delta", "output_text.done", "content_part.done", "output_item.done", "completed");
  CHECK_EQ_STR(EV_STR(&r, 0, "response.id"), "resp_0000000000000abc");
  CHECK_EQ_STR(EV_STR(&r, 0, "response.object"), "response");
  CHECK_EQ_STR(EV_RAW(&r, 0, "response.created_at"), "1796055379");
  CHECK_EQ_STR(EV_STR(&r, 0, "response.status"), "in_progress");
  CHECK_EQ_STR(EV_STR(&r, 0, "response.model"), "gpt-oss-20b");
  CHECK_EQ_STR(EV_RAW(&r, 0, "response.output"), "[]");
  CHECK_EQ_STR(EV_RAW(&r, 0, "response.usage"), "null");
  CHECK_EQ_STR(EV_RAW(&r, 0, "response.tool_choice"), "\"auto\"");
  CHECK_EQ_STR(EV_RAW(&r, 0, "response.parallel_tool_calls"), "true");
  CHECK_EQ_STR(EV_RAW(&r, 2, "item"), "{\"id\":\"msg_0000000000000abc_0\",\"type\":\"message\",\"status\":\"in_progress\","
                                      "\"role\":\"assistant\",\"content\":[]}");
  CHECK_EQ_STR(EV_RAW(&r, 3, "part"), "{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}");
  CHECK_EQ_STR(EV_STR(&r, 4, "item_id"), "msg_0000000000000abc_0");
  CHECK_EQ_STR(EV_RAW(&r, 4, "output_index"), "0");
  CHECK_EQ_STR(EV_RAW(&r, 4, "content_index"), "0");
  CHECK_EQ_STR(EV_STR(&r, 4, "delta"), "Hel");
  CHECK_EQ_STR(EV_RAW(&r, 4, "logprobs"), "[]");
  CHECK_EQ_STR(EV_STR(&r, 5, "delta"), "lo \"you\"\n");
  CHECK_EQ_STR(EV_STR(&r, 6, "text"), "Hello \"you\"\n");
  CHECK_EQ_STR(EV_STR(&r, 7, "part.text"), "Hello \"you\"\n");
  CHECK_EQ_STR(EV_STR(&r, 8, "item.status"), "completed");
  CHECK_EQ_STR(EV_STR(&r, 8, "item.content.0.text"), "Hello \"you\"\n");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.status"), "completed");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.error"), "null");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.output.0"), EV_RAW(&r, 8, "item"));
  CHECK_EQ_STR(EV_RAW(&r, c, "response.usage"),
               "{\"input_tokens\":12,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":5,"
               "\"output_tokens_details\":{\"reasoning_tokens\":0},\"total_tokens\":17}");
  /* Nothing after the end. */
  size_t len = r.out.len;
  content(&r, "late");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0 && relay_resp_enc_cut(&r.enc, &r.out) == 0);
  CHECK(r.out.len == len);
  run_close(&r);
}

static void test_reasoning_text(void) {
  run_t r;
  run_init(&r, default_req, 1, 1);
  reasoning(&r, "Think");
  reasoning(&r, "ing");
  content(&r, "Answer");
  finish(&r, "stop");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "reasoning_text.delta",
               "reasoning_text.delta", "reasoning_text.done", "content_part.done", "output_item.done",
               "output_item.added", "content_part.added", "output_text.delta", "output_text.done", "content_part.done",
               "output_item.done", "completed");
  CHECK_EQ_STR(EV_RAW(&r, 2, "item"), "{\"id\":\"rs_0000000000000001_0\",\"type\":\"reasoning\",\"summary\":[],\"content\":[]}");
  CHECK_EQ_STR(EV_RAW(&r, 3, "part"), "{\"type\":\"reasoning_text\",\"text\":\"\"}");
  CHECK_EQ_STR(EV_STR(&r, 5, "delta"), "ing");
  CHECK_EQ_STR(EV_STR(&r, 6, "text"), "Thinking");
  CHECK_EQ_STR(EV_RAW(&r, 8, "item"), "{\"id\":\"rs_0000000000000001_0\",\"type\":\"reasoning\",\"summary\":[],"
                                      "\"content\":[{\"type\":\"reasoning_text\",\"text\":\"Thinking\"}]}");
  CHECK_EQ_STR(EV_RAW(&r, 9, "output_index"), "1");
  CHECK_EQ_STR(EV_STR(&r, 9, "item.id"), "msg_0000000000000001_1");
  size_t c = last(&r);
  CHECK(rt_count(r.ev[c].data, r.ev[c].len, "response.output") == 2);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.content.0.text"), "Thinking");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.content.0.text"), "Answer");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.usage"), "null");
  run_close(&r);
}

/* The order of captures/fallback_exec_reasoning/001-events.json, without
 * the summary events (the relay has raw reasoning text, no summary). */
static void test_reasoning_function_call(void) {
  run_t r;
  run_init(&r, default_req, 1, 2);
  reasoning(&r, "The user wants the echo run; call the tool.");
  tool_begin(&r, 0, "call_mock_1", "exec_command");
  tool_args(&r, 0, "{\"cmd\": \"echo relay-ok-$((12000+345))\", ");
  tool_args(&r, 0, "\"yield_time_ms\": 1000}");
  finish(&r, "tool_calls");
  usage(&r, 100, 20, 7, 0);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "reasoning_text.delta",
               "reasoning_text.done", "content_part.done", "output_item.done", "output_item.added",
               "function_call_arguments.delta", "function_call_arguments.delta", "function_call_arguments.done",
               "output_item.done", "completed");
  CHECK_EQ_STR(EV_RAW(&r, 8, "item"), "{\"id\":\"fc_0000000000000002_1\",\"type\":\"function_call\",\"status\":\"in_progress\","
                                      "\"name\":\"exec_command\",\"call_id\":\"call_mock_1\",\"arguments\":\"\"}");
  CHECK_EQ_STR(EV_RAW(&r, 9, "output_index"), "1");
  CHECK_EQ_STR(EV_STR(&r, 9, "item_id"), "fc_0000000000000002_1");
  CHECK_EQ_STR(EV_RAW(&r, 9, "content_index"), "<missing>");
  CHECK_EQ_STR(EV_STR(&r, 10, "delta"), "\"yield_time_ms\": 1000}");
  CHECK_EQ_STR(EV_STR(&r, 11, "name"), "exec_command");
  const char *args = "{\"cmd\": \"echo relay-ok-$((12000+345))\", \"yield_time_ms\": 1000}";
  CHECK_EQ_STR(EV_STR(&r, 11, "arguments"), args);
  CHECK_EQ_STR(EV_STR(&r, 12, "item.status"), "completed");
  CHECK_EQ_STR(EV_STR(&r, 12, "item.arguments"), args);
  CHECK_EQ_STR(EV_STR(&r, 12, "item.call_id"), "call_mock_1");
  CHECK_EQ_STR(EV_RAW(&r, 12, "item.namespace"), "<missing>");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_RAW(&r, c, "response.output.1"), EV_RAW(&r, 12, "item"));
  CHECK_EQ_STR(EV_RAW(&r, c, "response.usage.output_tokens_details.reasoning_tokens"), "7");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.usage.total_tokens"), "120");
  run_close(&r);
}

static void test_two_calls(void) {
  run_t r;
  run_init(&r, default_req, 1, 3);
  tool_begin(&r, 0, "call_a", "f");
  tool_args(&r, 0, "{\"x\":");
  tool_begin(&r, 1, "call_b", "g");
  tool_args(&r, 0, "1}"); /* interleaved: still item 0 */
  tool_args(&r, 1, "{}");
  tool_begin(&r, 1, "call_b", "g"); /* a repeated id and name is not a new call */
  finish(&r, "tool_calls");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "function_call_arguments.delta", "output_item.added",
               "function_call_arguments.delta", "function_call_arguments.delta", "function_call_arguments.done",
               "output_item.done", "function_call_arguments.done", "output_item.done", "completed");
  CHECK_EQ_STR(EV_RAW(&r, 5, "output_index"), "0");
  CHECK_EQ_STR(EV_RAW(&r, 6, "output_index"), "1");
  CHECK_EQ_STR(EV_STR(&r, 7, "arguments"), "{\"x\":1}");
  CHECK_EQ_STR(EV_STR(&r, 9, "arguments"), "{}");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.call_id"), "call_a");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.call_id"), "call_b");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.id"), "fc_0000000000000003_0");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.id"), "fc_0000000000000003_1");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.name"), "g");
  run_close(&r);

  /* Servers that number every call 0: a new id is a new call; a call
   * without id gets one made up; arguments before the name are held. */
  run_init(&r, default_req, 1, 4);
  tool_begin(&r, 0, "call_a", "f");
  tool_args(&r, 0, "{}");
  tool_begin(&r, 0, "call_b", "g");
  tool_args(&r, 0, "[1]");
  tool_args(&r, 5, "{\"early\":");
  tool_begin(&r, 5, "", "h");
  tool_args(&r, 5, "true}");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "function_call_arguments.delta",
               "function_call_arguments.done", "output_item.done", "output_item.added", "function_call_arguments.delta",
               "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
               "function_call_arguments.done", "output_item.done", "function_call_arguments.done", "output_item.done",
               "completed");
  c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.arguments"), "[1]");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.2.name"), "h");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.2.call_id"), "call_0000000000000004_2");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.2.arguments"), "{\"early\":true}");
  CHECK_EQ_STR(EV_STR(&r, 9, "delta"), "{\"early\":");
  run_close(&r);
}

/* Tools offered with a namespace and a freeform tool, as Codex does. */
static const char *tools_req =
    "{\"model\":\"m\",\"input\":\"x\",\"stream\":true,\"tools\":[{\"type\":\"function\",\"name\":\"exec_command\"},"
    "{\"type\":\"namespace\",\"name\":\"multi_agent_v1\",\"tools\":[{\"type\":\"function\",\"name\":\"close_agent\"}]},"
    "{\"type\":\"custom\",\"name\":\"apply_patch\",\"format\":{\"type\":\"grammar\",\"syntax\":\"lark\",\"definition\":\"start: x\"}}]}";

static void test_custom_tool_call(void) {
  run_t r;
  run_init(&r, tools_req, 1, 5);
  tool_begin(&r, 0, "call_p", "apply_patch");
  tool_args(&r, 0, "{\"input\":\"*** Begin Patch\\n*** Add File: hello");
  tool_args(&r, 0, ".txt\\n+relay-ok-12345\\n*** End Patch\\n\"}");
  finish(&r, "tool_calls");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "custom_tool_call_input.delta",
               "custom_tool_call_input.done", "output_item.done", "completed");
  const char *patch = "*** Begin Patch\n*** Add File: hello.txt\n+relay-ok-12345\n*** End Patch\n";
  CHECK_EQ_STR(EV_RAW(&r, 2, "item"), "{\"id\":\"ctc_0000000000000005_0\",\"type\":\"custom_tool_call\",\"status\":\"in_progress\","
                                      "\"name\":\"apply_patch\",\"call_id\":\"call_p\",\"input\":\"\"}");
  CHECK_EQ_STR(EV_STR(&r, 3, "delta"), patch);
  CHECK_EQ_STR(EV_STR(&r, 4, "input"), patch);
  CHECK_EQ_STR(EV_STR(&r, 5, "item.input"), patch);
  CHECK_EQ_STR(EV_RAW(&r, 5, "item.arguments"), "<missing>");
  CHECK_EQ_STR(EV_STR(&r, last(&r), "response.output.0.type"), "custom_tool_call");
  run_close(&r);

  /* A model that sends the raw text instead of {"input": ...}; and one
   * with another member name. */
  run_init(&r, tools_req, 1, 6);
  tool_begin(&r, 0, "c1", "apply_patch");
  tool_args(&r, 0, "*** Begin Patch\n");
  tool_begin(&r, 1, "c2", "apply_patch");
  tool_args(&r, 1, "{\"patch\":\"p\\u00e9\"}");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  parse_events(&r, __LINE__);
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.input"), "*** Begin Patch\n");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.input"), "p\xC3\xA9");
  run_close(&r);
}

/* Namespaced names come back split; the request fixture of Codex. */
static void test_namespace_round_trip(void) {
  size_t len;
  char *body = rt_fixture("codex_fallback_turn1.json", &len);
  run_t r;
  run_init(&r, body, 1, 7);
  tool_begin(&r, 0, "call_mock_1", "multi_agent_v1__close_agent");
  tool_args(&r, 0, "{\"target\": \"no-such-agent\"}");
  tool_begin(&r, 1, "call_2", "not_offered");
  finish(&r, "tool_calls");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  parse_events(&r, __LINE__);
  CHECK_EQ_STR(EV_RAW(&r, 2, "item"), "{\"id\":\"fc_0000000000000007_0\",\"type\":\"function_call\",\"status\":\"in_progress\","
                                      "\"name\":\"close_agent\",\"call_id\":\"call_mock_1\",\"arguments\":\"\","
                                      "\"namespace\":\"multi_agent_v1\"}");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.name"), "close_agent");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.namespace"), "multi_agent_v1");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.type"), "function_call");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.name"), "not_offered");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.output.1.namespace"), "<missing>");
  CHECK_EQ_STR(EV_STR(&r, c, "response.model"), "mock-model");
  for (size_t i = 0; i < r.nev; i++)
    if (strcmp(r.ev[i].type, "response.function_call_arguments.done") == 0)
      CHECK(strcmp(EV_STR(&r, i, "name"), "close_agent") == 0 || strcmp(EV_STR(&r, i, "name"), "not_offered") == 0);
  run_close(&r);
  free(body);
}

/* Through the chat reader, as the integration will: raw chat chunks of a
 * namespaced call and a custom one. */
typedef struct pipe_s {
  run_t *r;
} pipe_t;

static int pipe_cb(void *ud, const relay_chat_piece_t *p) {
  pipe_t *pp = ud;
  return relay_resp_enc_feed(&pp->r->enc, p, &pp->r->out);
}

static void test_through_reader(void) {
  run_t r;
  run_init(&r, tools_req, 1, 8);
  relay_chat_chunk_t rd;
  relay_chat_chunk_init(&rd, NULL);
  pipe_t pp = {&r};
  const char *chunks[] = {
      "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"two calls\"}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c0\",\"type\":\"function\","
      "\"function\":{\"name\":\"multi_agent_v1__close_agent\",\"arguments\":\"\"}}]}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c1\",\"type\":\"function\","
      "\"function\":{\"name\":\"apply_patch\",\"arguments\":\"{\\\"input\\\":\\\"x\\\\n\\\"}\"}}]}}]}",
      "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
      "{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}"};
  for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
    CHECK(relay_chat_chunk_read(&rd, chunks[i], strlen(chunks[i]), 0, pipe_cb, &pp) == 0);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "reasoning_text.delta",
               "reasoning_text.done", "content_part.done", "output_item.done", "output_item.added",
               "function_call_arguments.delta", "output_item.added", "function_call_arguments.done", "output_item.done",
               "custom_tool_call_input.delta", "custom_tool_call_input.done", "output_item.done", "completed");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.namespace"), "multi_agent_v1");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.name"), "close_agent");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.2.type"), "custom_tool_call");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.2.input"), "x\n");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.usage.total_tokens"), "7");
  relay_chat_chunk_dispose(&rd);
  run_close(&r);
}

static void test_length(void) {
  run_t r;
  run_init(&r, "{\"input\":\"x\",\"stream\":true,\"max_output_tokens\":5,\"temperature\":0.5}", 1, 9);
  reasoning(&r, "hmm");
  content(&r, "partial");
  finish(&r, "length");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "reasoning_text.delta",
               "reasoning_text.done", "content_part.done", "output_item.done", "output_item.added",
               "content_part.added", "output_text.delta", "output_text.done", "content_part.done", "output_item.done",
               "incomplete");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.status"), "incomplete");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.incomplete_details"), "{\"reason\":\"max_output_tokens\"}");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.status"), "incomplete");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.max_output_tokens"), "5");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.temperature"), "0.5");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.model"), "\"\"");
  run_close(&r);

  /* Cut off inside a tool call: the call is not done (it must not run). */
  run_init(&r, default_req, 1, 10);
  tool_begin(&r, 0, "c", "exec_command");
  tool_args(&r, 0, "{\"cmd\":\"rm -rf /tm");
  finish(&r, "length");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "function_call_arguments.delta", "incomplete");
  c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.status"), "incomplete");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.arguments"), "{\"cmd\":\"rm -rf /tm");
  run_close(&r);

  run_init(&r, default_req, 1, 11);
  content(&r, "x");
  finish(&r, "content_filter");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  parse_events(&r, __LINE__);
  CHECK_EQ_STR(EV_RAW(&r, last(&r), "response.incomplete_details"), "{\"reason\":\"content_filter\"}");
  run_close(&r);
}

static void test_upstream_error(void) {
  run_t r;
  run_init(&r, default_req, 1, 12);
  content(&r, "Par");
  relay_chat_piece_t p = pc(RELAY_CHAT_PIECE_ERROR, "the request exceeds the available context size");
  p.status = 400;
  p.type = "exceed_context_size_error";
  p.type_len = strlen(p.type);
  feed(&r, p);
  CHECK(relay_resp_enc_ended(&r.enc));
  content(&r, "more"); /* ignored */
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "output_text.delta", "failed");
  size_t c = last(&r);
  CHECK_EQ_STR(EV_STR(&r, c, "response.status"), "failed");
  CHECK_EQ_STR(EV_RAW(&r, c, "response.error"),
               "{\"code\":\"context_length_exceeded\",\"message\":\"the request exceeds the available context size\"}");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.status"), "incomplete");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.content.0.text"), "Par");
  CHECK(relay_resp_enc_http_status(&r.enc) == 400);
  run_close(&r);

  run_init(&r, default_req, 1, 13);
  p = pc(RELAY_CHAT_PIECE_ERROR, "Rate limit reached");
  p.code = "rate_limit_exceeded";
  p.code_len = strlen(p.code);
  feed(&r, p);
  EXPECT_TYPES(&r, "created", "in_progress", "failed");
  CHECK_EQ_STR(EV_STR(&r, 2, "response.error.code"), "rate_limit_exceeded");
  CHECK_EQ_STR(EV_RAW(&r, 2, "response.output"), "[]");
  run_close(&r);

  /* A failure the caller found. */
  run_init(&r, default_req, 1, 14);
  CHECK(relay_resp_enc_fail(&r.enc, NULL, "upstream answered 503", 21, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "failed");
  CHECK_EQ_STR(EV_RAW(&r, 2, "response.error"), "{\"code\":\"server_error\",\"message\":\"upstream answered 503\"}");
  CHECK(relay_resp_enc_http_status(&r.enc) == 502);
  run_close(&r);
}

static void test_cut(void) {
  run_t r;
  run_init(&r, default_req, 1, 15);
  reasoning(&r, "plan");
  tool_begin(&r, 0, "c", "exec_command");
  tool_args(&r, 0, "{\"cmd\":");
  CHECK(relay_resp_enc_cut(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "reasoning_text.delta",
               "reasoning_text.done", "content_part.done", "output_item.done", "output_item.added",
               "function_call_arguments.delta", "failed");
  size_t c = last(&r);
  CHECK_HAS(EV_STR(&r, c, "response.error.message"), "closed the stream");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.0.content.0.text"), "plan");
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.1.status"), "incomplete");
  CHECK(relay_resp_enc_ended(&r.enc));
  run_close(&r);
  /* A stream cut before any piece still starts with response.created. */
  run_init(&r, default_req, 1, 16);
  CHECK(relay_resp_enc_cut(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "failed");
  run_close(&r);
  /* A clean end without any piece: an empty completed response. */
  run_init(&r, default_req, 1, 17);
  CHECK(relay_resp_enc_start(&r.enc, &r.out) == 0 && relay_resp_enc_start(&r.enc, &r.out) == 0);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  EXPECT_TYPES(&r, "created", "in_progress", "completed");
  CHECK_EQ_STR(EV_RAW(&r, 2, "response.output"), "[]");
  run_close(&r);
}

static void test_non_streaming(void) {
  run_t r;
  run_init(&r, tools_req, 0, 18);
  reasoning(&r, "why");
  content(&r, "Sure.");
  tool_begin(&r, 0, "c0", "multi_agent_v1__close_agent");
  tool_args(&r, 0, "{}");
  feed(&r, (relay_chat_piece_t){.kind = RELAY_CHAT_PIECE_TOOL_END, .index = 0});
  finish(&r, "tool_calls");
  usage(&r, 1, 2, 1, 0);
  CHECK(r.out.len == 0);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  CHECK(rt_valid(r.out.data, r.out.len));
  const char *head = "{\"id\":\"resp_0000000000000012\",\"object\":\"response\",";
  CHECK(strncmp(r.out.data, head, strlen(head)) == 0);
  CHECK(!memchr(r.out.data, '\n', r.out.len));
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "status"), "completed");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.0.type"), "reasoning");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.0.content.0.text"), "why");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.1.content.0.text"), "Sure.");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.2.namespace"), "multi_agent_v1");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.2.status"), "completed");
  CHECK_EQ_STR(rt_raw(r.out.data, r.out.len, "usage.total_tokens"), "3");
  CHECK(relay_resp_enc_http_status(&r.enc) == 200);
  run_close(&r);
  /* A whole body through the reader. */
  run_init(&r, default_req, 0, 19);
  relay_chat_chunk_t rd;
  relay_chat_chunk_init(&rd, NULL);
  pipe_t pp = {&r};
  const char *body = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                     "\"assistant\",\"content\":\"Hello\",\"reasoning_content\":\"greet\"},\"finish_reason\":\"stop\"}],"
                     "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}";
  CHECK(relay_chat_chunk_read(&rd, body, strlen(body), 1, pipe_cb, &pp) == 0);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  CHECK(rt_valid(r.out.data, r.out.len));
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.0.content.0.text"), "greet");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.1.content.0.text"), "Hello");
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "output.1.status"), "completed");
  relay_chat_chunk_dispose(&rd);
  run_close(&r);
  /* Failed, non-streaming: the object says so; the status is the caller's to send. */
  run_init(&r, default_req, 0, 20);
  content(&r, "x");
  CHECK(relay_resp_enc_cut(&r.enc, &r.out) == 0);
  CHECK(rt_valid(r.out.data, r.out.len));
  CHECK_EQ_STR(rt_str(r.out.data, r.out.len, "status"), "failed");
  CHECK(relay_resp_enc_http_status(&r.enc) == 502);
  run_close(&r);
}

static void test_utf8(void) {
  run_t r;
  run_init(&r, default_req, 1, 21);
  content(&r, "caf\xC3");
  content(&r, "\xA9 \xF0\x9F");
  content(&r, "\x98");
  content(&r, "\x80!");
  content(&r, "bad \xFF\xC0\xAF \xED\xA0\x80 \xE2\x82 x");
  content(&r, "\x01\x7f end\xE2");
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  parse_events(&r, __LINE__);
  CHECK(rt_utf8(r.out.data, r.out.len));
  CHECK_EQ_STR(EV_STR(&r, 4, "delta"), "caf");
  CHECK_EQ_STR(EV_STR(&r, 5, "delta"), "\xC3\xA9 ");
  CHECK_EQ_STR(EV_STR(&r, 6, "delta"), "\xF0\x9F\x98\x80!"); /* the third piece alone made no delta */
  CHECK_EQ_STR(EV_STR(&r, 7, "delta"), "bad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
                                       "\xEF\xBF\xBD x");
  CHECK_EQ_STR(EV_STR(&r, 8, "delta"), "\x01\x7f end");
  CHECK_EQ_STR(EV_STR(&r, 9, "delta"), "\xEF\xBF\xBD"); /* a sequence cut by the end */
  CHECK_EQ_STR(EV_STR(&r, last(&r), "response.output.0.content.0.text"),
               "caf\xC3\xA9 \xF0\x9F\x98\x80!bad \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD \xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD "
               "\xEF\xBF\xBD x\x01\x7f end\xEF\xBF\xBD");
  run_close(&r);
}

/* Names, ids and error messages come from the upstream as bytes: they are
 * made valid UTF-8 too (found by fuzz_responses_request). */
static void test_utf8_names(void) {
  run_t r;
  run_init(&r, default_req, 1, 24);
  tool_begin(&r, 0, "call_\xFE", "ns__\xFF\xFFk\xE2\x82");
  tool_args(&r, 0, "{}");
  relay_chat_piece_t p = pc(RELAY_CHAT_PIECE_ERROR, "bad \xC0 message");
  p.code = "c\xFFode";
  p.code_len = 5;
  feed(&r, p);
  parse_events(&r, __LINE__);
  CHECK(rt_utf8(r.out.data, r.out.len));
  CHECK_EQ_STR(EV_STR(&r, 2, "item.name"), "ns__\xEF\xBF\xBD\xEF\xBF\xBDk\xEF\xBF\xBD");
  CHECK_EQ_STR(EV_STR(&r, 2, "item.call_id"), "call_\xEF\xBF\xBD");
  CHECK_EQ_STR(EV_STR(&r, last(&r), "response.error.message"), "bad \xEF\xBF\xBD message");
  CHECK_EQ_STR(EV_STR(&r, last(&r), "response.error.code"), "c\xEF\xBF\xBDode");
  run_close(&r);
  /* The model echoed from the request, as the client sent it but clean. */
  run_init(&r, "{\"model\":\"m\xF0\x9F\x98\x80\xF0\",\"input\":\"x\",\"stream\":true}", 1, 25);
  CHECK(relay_resp_enc_end(&r.enc, &r.out) == 0);
  parse_events(&r, __LINE__);
  CHECK(rt_utf8(r.out.data, r.out.len));
  CHECK_EQ_STR(EV_STR(&r, 0, "response.model"), "m\xF0\x9F\x98\x80\xEF\xBF\xBD");
  run_close(&r);
}

static void test_limits_and_ids(void) {
  run_t r;
  memset(&r, 0, sizeof r);
  relay_resp_req_init(&r.req);
  relay_resp_enc_opts_t o = {22, 1, 1, 10};
  relay_resp_enc_init(&r.enc, &r.req, &o);
  relay_buf_init(&r.out);
  content(&r, "0123456");
  content(&r, "789ab");
  content(&r, "never");
  EXPECT_TYPES(&r, "created", "in_progress", "output_item.added", "content_part.added", "output_text.delta", "failed");
  CHECK_HAS(EV_STR(&r, last(&r), "response.error.message"), "larger than the relay's limit of 10 bytes");
  run_close(&r);

  /* More output items than allowed: the response fails, once. */
  run_init(&r, default_req, 1, 23);
  char id[32];
  for (int i = 0; i < RELAY_RESP_MAX_ITEMS + 5; i++) {
    snprintf(id, sizeof id, "c%d", i);
    tool_begin(&r, 0, id, "f");
  }
  parse_events(&r, __LINE__);
  CHECK(relay_resp_enc_ended(&r.enc));
  CHECK_EQ_STR(r.ev[last(&r)].type, "response.failed");
  CHECK_HAS(EV_STR(&r, last(&r), "response.error.message"), "more than 256 output items");
  /* Item ids are unique within the response. */
  size_t c = last(&r);
  char p1[64], p2[64];
  int dup = 0;
  for (int i = 0; i < 40 && !dup; i++)
    for (int j = i + 1; j < 40 && !dup; j++) {
      snprintf(p1, sizeof p1, "response.output.%d.id", i);
      snprintf(p2, sizeof p2, "response.output.%d.id", j);
      dup = strcmp(EV_STR(&r, c, p1), EV_STR(&r, c, p2)) == 0;
    }
  CHECK(!dup);
  CHECK_EQ_STR(EV_STR(&r, c, "response.output.255.id"), "fc_0000000000000017_255");
  run_close(&r);
}

int main(void) {
  test_text_only();
  test_reasoning_text();
  test_reasoning_function_call();
  test_two_calls();
  test_custom_tool_call();
  test_namespace_round_trip();
  test_through_reader();
  test_length();
  test_upstream_error();
  test_cut();
  test_non_streaming();
  test_utf8();
  test_utf8_names();
  test_limits_and_ids();
  return check_report("test_responses_encode");
}
