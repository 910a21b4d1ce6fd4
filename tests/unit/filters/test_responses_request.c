/* Responses request -> chat-completions request: the real Codex CLI 0.171.0
 * request bodies (data/, see trim_captures.py), every item and tool kind,
 * the options, and the errors (400 with an OpenAI-shaped body). Every
 * successful translation must be valid JSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "responses_request.h"
#include "resp_test.h"

typedef struct tr_s {
  relay_resp_req_t r;
  relay_buf_t out;
  int rc;
} tr_t;

static void tr_run_opts(tr_t *t, const char *body, size_t len, const relay_resp_req_opts_t *opts) {
  relay_resp_req_init(&t->r);
  relay_buf_init(&t->out);
  relay_buf_append(&t->out, "X", 1); /* output is appended: the prefix must survive */
  t->rc = relay_resp_req_translate(&t->r, opts, body, len, &t->out);
  CHECK(t->out.len >= 1 && t->out.data[0] == 'X');
  memmove(t->out.data, t->out.data + 1, t->out.len - 1); /* drop the prefix */
  t->out.len--;
  if (t->rc == 0) {
    CHECK(rt_valid(t->out.data, t->out.len));
  } else {
    CHECK(t->out.len == 0);
  }
  relay_buf_append(&t->out, "", 1); /* NUL for strstr; not counted */
  t->out.len--;
}

static void tr_run(tr_t *t, const char *body) { tr_run_opts(t, body, strlen(body), NULL); }

static void tr_done(tr_t *t) {
  relay_resp_req_dispose(&t->r);
  relay_buf_dispose(&t->out);
}

/* A refused request: 400, a message naming the problem, a valid error body. */
static void expect_400(const char *body, const char *needle, int line) {
  tr_t t;
  tr_run(&t, body);
  if (t.rc != RELAY_RESP_EINVAL || t.r.err_status != 400 || !strstr(t.r.err_message, needle)) {
    check_failed++;
    fprintf(stderr, "%s:%d: expected a 400 with [%s], got rc %d status %d [%s] for %.200s\n", __FILE__, line, needle,
            t.rc, t.r.err_status, t.r.err_message, body);
  } else {
    check_passed++;
  }
  relay_buf_t e;
  relay_buf_init(&e);
  CHECK(relay_resp_req_error_json(&t.r, &e) == 0 && rt_valid(e.data, e.len));
  CHECK_EQ_STR(rt_str(e.data, e.len, "error.type"), "invalid_request_error");
  CHECK_EQ_STR(rt_str(e.data, e.len, "error.message"), t.r.err_message);
  relay_buf_dispose(&e);
  tr_done(&t);
}
#define EXPECT_400(body, needle) expect_400(body, needle, __LINE__)

static const char *fixture_raw(const char *name, const char *path) {
  size_t len;
  char *js = rt_fixture(name, &len);
  static char keep[4][65536];
  static int next;
  char *b = keep[next++ % 4];
  snprintf(b, 65536, "%s", rt_raw(js, len, path));
  free(js);
  return b;
}

/* Turn 1 of a Codex run with an unknown model: two developer messages (one
 * with three input_text parts... two here), two user messages, function
 * tools, a namespace, and web_search. */
static void test_codex_turn1(void) {
  size_t len;
  char *body = rt_fixture("codex_fallback_turn1.json", &len);
  tr_t t;
  tr_run_opts(&t, body, len, NULL);
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "model"), "mock-model");
  /* The two developer messages merge into one system message. */
  CHECK(COUNT(t.out, "messages") == 3);
  CHECK_EQ_STR(STR(t.out, "messages.0.role"), "system");
  const char *sys = STR(t.out, "messages.0.content");
  CHECK(strncmp(sys, "You are a coding agent running in the Codex CLI", 47) == 0);
  CHECK_HAS(sys, "[... trimmed]\n\n<skills_instructions>");
  CHECK_HAS(sys, "[... trimmed]\n\n<permissions instructions>");
  CHECK_EQ_STR(STR(t.out, "messages.1.role"), "user");
  CHECK(strncmp(STR(t.out, "messages.1.content"), "<environment_context>", 21) == 0);
  CHECK_EQ_STR(STR(t.out, "messages.2.content"), "Run the command the tool asks for and report its output.");
  /* 4 functions, 5 in the namespace, 3 more; web_search left out. */
  CHECK(COUNT(t.out, "tools") == 12);
  CHECK_EQ_STR(STR(t.out, "tools.0.type"), "function");
  CHECK_EQ_STR(STR(t.out, "tools.0.function.name"), "exec_command");
  CHECK_EQ_STR(RAW(t.out, "tools.0.function.parameters"), fixture_raw("codex_fallback_turn1.json", "tools.0.parameters"));
  CHECK_EQ_STR(RAW(t.out, "tools.0.function.strict"), "false");
  CHECK_EQ_STR(RAW(t.out, "tools.0.function.description"), fixture_raw("codex_fallback_turn1.json", "tools.0.description"));
  CHECK_EQ_STR(STR(t.out, "tools.4.function.name"), "multi_agent_v1__close_agent");
  CHECK_EQ_STR(RAW(t.out, "tools.4.function.parameters"),
               fixture_raw("codex_fallback_turn1.json", "tools.4.tools.0.parameters"));
  CHECK_EQ_STR(STR(t.out, "tools.8.function.name"), "multi_agent_v1__wait_agent");
  CHECK_EQ_STR(STR(t.out, "tools.11.function.name"), "update_goal");
  CHECK(!strstr(t.out.data, "web_search"));
  CHECK(t.r.n_dropped_tools == 1);
  CHECK_HAS(t.r.notes.data, "dropped tool web_search");
  CHECK_EQ_STR(RAW(t.out, "tool_choice"), "\"auto\"");
  CHECK_EQ_STR(RAW(t.out, "parallel_tool_calls"), "true");
  CHECK_EQ_STR(RAW(t.out, "stream"), "true");
  CHECK_EQ_STR(RAW(t.out, "stream_options"), "{\"include_usage\":true}");
  /* Accepted and ignored: store, include, prompt_cache_key, client_metadata, reasoning.summary. */
  CHECK_EQ_STR(RAW(t.out, "reasoning_effort"), "<missing>");
  CHECK_EQ_STR(RAW(t.out, "store"), "<missing>");
  CHECK(!strstr(t.out.data, "client_metadata") && !strstr(t.out.data, "prompt_cache_key"));
  CHECK(t.r.notes.len && !strstr(t.r.notes.data, "ignored member"));
  /* The state for the response side. */
  CHECK(t.r.stream == 1 && t.r.parallel_tool_calls == 1);
  CHECK_MEM(t.r.model.data, t.r.model.len, "mock-model", 10);
  CHECK_MEM(t.r.tool_choice.data, t.r.tool_choice.len, "\"auto\"", 6);
  CHECK(t.r.ntools == 12 && t.r.n_items == 4 && t.r.n_messages == 3);
  const relay_resp_tool_t *tool = relay_resp_req_tool(&t.r, "multi_agent_v1__close_agent", 27);
  CHECK(tool && tool->kind == RELAY_RESP_TOOL_FUNCTION);
  if (tool) {
    CHECK_MEM(relay_resp_req_name(&t.r, tool->name_off), tool->name_len, "close_agent", 11);
    CHECK_MEM(relay_resp_req_name(&t.r, tool->ns_off), tool->ns_len, "multi_agent_v1", 14);
  }
  tool = relay_resp_req_tool(&t.r, "exec_command", 12);
  CHECK(tool && tool->ns_len == 0);
  if (tool) CHECK_MEM(relay_resp_req_name(&t.r, tool->name_off), tool->name_len, "exec_command", 12);
  CHECK(relay_resp_req_tool(&t.r, "close_agent", 11) == NULL);
  CHECK(relay_resp_req_tool(&t.r, "web_search", 10) == NULL);
  tr_done(&t);
  free(body);
}

/* Turn 2 with a reasoning item, the function call and its output. */
static void test_codex_reasoning_turn2(void) {
  size_t len;
  char *body = rt_fixture("codex_reasoning_turn2.json", &len);
  tr_t t;
  tr_run_opts(&t, body, len, NULL);
  CHECK(t.rc == 0);
  CHECK(COUNT(t.out, "messages") == 5);
  CHECK_EQ_STR(STR(t.out, "messages.3.role"), "assistant");
  CHECK_EQ_STR(RAW(t.out, "messages.3.content"), "null");
  /* content (reasoning_text) wins over summary */
  CHECK_EQ_STR(STR(t.out, "messages.3.reasoning_content"), "The user wants the echo run; call the tool.");
  CHECK(COUNT(t.out, "messages.3.tool_calls") == 1);
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.id"), "call_mock_1");
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.type"), "function");
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.function.name"), "exec_command");
  CHECK_EQ_STR(RAW(t.out, "messages.3.tool_calls.0.function.arguments"),
               fixture_raw("codex_reasoning_turn2.json", "input.5.arguments"));
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.function.arguments"),
               "{\"cmd\": \"echo relay-ok-$((12000+345))\", \"yield_time_ms\": 1000}");
  CHECK_EQ_STR(STR(t.out, "messages.4.role"), "tool");
  CHECK_EQ_STR(STR(t.out, "messages.4.tool_call_id"), "call_mock_1");
  CHECK_HAS(STR(t.out, "messages.4.content"), "Process exited with code 0");
  CHECK_HAS(STR(t.out, "messages.4.content"), "relay-ok-12345\n");
  CHECK(t.r.n_reasoning == 1 && t.r.n_reasoning_dropped == 0 && t.r.n_tool_calls == 1);
  tr_done(&t);

  /* The reasoning field is configurable, or off. */
  relay_resp_req_opts_t o = {"reasoning", NULL};
  tr_run_opts(&t, body, len, &o);
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "messages.3.reasoning"), "The user wants the echo run; call the tool.");
  CHECK_EQ_STR(RAW(t.out, "messages.3.reasoning_content"), "<missing>");
  tr_done(&t);
  o.reasoning_field = "";
  tr_run_opts(&t, body, len, &o);
  CHECK(t.rc == 0);
  CHECK(!strstr(t.out.data, "echo run; call the tool"));
  CHECK(t.r.n_reasoning == 0 && t.r.n_reasoning_dropped == 1);
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.id"), "call_mock_1");
  tr_done(&t);
  /* Developer messages may keep their role. */
  o.reasoning_field = NULL;
  o.developer_role = "developer";
  tr_run_opts(&t, body, len, &o);
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "messages.0.role"), "developer");
  CHECK(COUNT(t.out, "messages") == 5);
  tr_done(&t);
  free(body);
}

/* A namespaced call in the history is flattened like the tool. */
static void test_codex_namespace_turn2(void) {
  size_t len;
  char *body = rt_fixture("codex_namespace_turn2.json", &len);
  tr_t t;
  tr_run_opts(&t, body, len, NULL);
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.function.name"), "multi_agent_v1__close_agent");
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.function.arguments"), "{\"target\": \"no-such-agent\"}");
  CHECK_EQ_STR(STR(t.out, "messages.4.tool_call_id"), "call_mock_1");
  CHECK_HAS(STR(t.out, "messages.4.content"), "invalid agent id no-such-agent");
  tr_done(&t);
  free(body);
}

/* The catalog profile: the freeform apply_patch tool, tool_search and
 * web_search, a custom_tool_call and its output, reasoning.effort. */
static void test_codex_apply_patch_turn2(void) {
  size_t len;
  char *body = rt_fixture("codex_apply_patch_turn2.json", &len);
  tr_t t;
  tr_run_opts(&t, body, len, NULL);
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "reasoning_effort"), "\"medium\"");
  CHECK(COUNT(t.out, "tools") == 8);
  CHECK(t.r.n_dropped_tools == 2);
  CHECK_HAS(t.r.notes.data, "dropped tool tool_search");
  CHECK_HAS(t.r.notes.data, "dropped tool web_search");
  CHECK_EQ_STR(STR(t.out, "tools.3.function.name"), "apply_patch");
  CHECK_HAS(STR(t.out, "tools.3.function.description"), "FREEFORM tool");
  CHECK_EQ_STR(STR(t.out, "tools.3.function.parameters.type"), "object");
  CHECK_EQ_STR(STR(t.out, "tools.3.function.parameters.properties.input.type"), "string");
  CHECK_EQ_STR(RAW(t.out, "tools.3.function.parameters.required"), "[\"input\"]");
  CHECK_EQ_STR(RAW(t.out, "tools.3.function.parameters.additionalProperties"), "false");
  const char *desc = STR(t.out, "tools.3.function.parameters.properties.input.description");
  CHECK_HAS(desc, "lark grammar:\nstart: begin_patch hunk+ end_patch\n");
  const relay_resp_tool_t *tool = relay_resp_req_tool(&t.r, "apply_patch", 11);
  CHECK(tool && tool->kind == RELAY_RESP_TOOL_CUSTOM && tool->ns_len == 0);
  /* custom_tool_call -> a tool call whose arguments are {"input": raw} */
  CHECK_EQ_STR(STR(t.out, "messages.3.role"), "assistant");
  CHECK_EQ_STR(STR(t.out, "messages.3.reasoning_content"), "The user wants the echo run; call the tool.");
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_calls.0.function.name"), "apply_patch");
  const char *args = STR(t.out, "messages.3.tool_calls.0.function.arguments");
  CHECK(rt_valid(args, strlen(args)));
  CHECK_EQ_STR(rt_str(args, strlen(args), "input"), "*** Begin Patch\n*** Add File: hello.txt\n+relay-ok-12345\n*** End Patch\n");
  CHECK_EQ_STR(STR(t.out, "messages.4.role"), "tool");
  CHECK_HAS(STR(t.out, "messages.4.content"), "Success. Updated the following files:\nA hello.txt\n");
  CHECK(!strstr(t.out.data, "verbosity"));
  tr_done(&t);
  free(body);
}

static void test_input_forms(void) {
  tr_t t;
  tr_run(&t, "{\"model\":\"m\",\"input\":\"Hi \\\"there\\\"\"}");
  CHECK(t.rc == 0 && t.r.stream == 0);
  CHECK_EQ_STR(t.out.data, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi \\\"there\\\"\"}],\"stream\":false}");
  tr_done(&t);
  tr_run(&t, "{\"instructions\":\"Be brief.\",\"input\":\"Hi\"}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(t.out.data, "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
                           "\"content\":\"Hi\"}],\"stream\":false}");
  tr_done(&t);
  /* instructions merge with the developer messages that follow */
  tr_run(&t, "{\"instructions\":\"A\",\"input\":[{\"role\":\"developer\",\"content\":\"B\"},{\"type\":\"message\","
             "\"role\":\"system\",\"content\":[{\"type\":\"input_text\",\"text\":\"C\"}]},{\"role\":\"user\","
             "\"content\":\"u\"},{\"role\":\"system\",\"content\":\"D\"}]}");
  CHECK(t.rc == 0);
  CHECK(COUNT(t.out, "messages") == 3);
  CHECK_EQ_STR(STR(t.out, "messages.0.content"), "A\n\nB\n\nC");
  CHECK_EQ_STR(STR(t.out, "messages.2.role"), "system");
  CHECK_EQ_STR(STR(t.out, "messages.2.content"), "D");
  tr_done(&t);
  /* Parts: output_text, refusal and text join; an empty content stays. */
  tr_run(&t, "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"a\"},{\"type\":\"text\","
             "\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"c\","
             "\"annotations\":[]},{\"type\":\"refusal\",\"refusal\":\"no\"}]},{\"role\":\"assistant\",\"content\":\"\"}]}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "messages.0.content"), "a\n\nb");
  CHECK_EQ_STR(STR(t.out, "messages.1.content"), "c\n\nno");
  CHECK_EQ_STR(RAW(t.out, "messages.2.content"), "\"\"");
  CHECK(COUNT(t.out, "messages") == 3);
  tr_done(&t);
}

/* How assistant turns are assembled from items. */
static void test_assistant_turns(void) {
  tr_t t;
  /* text + two calls + reasoning before them -> one assistant message */
  tr_run(&t, "{\"input\":[{\"role\":\"user\",\"content\":\"go\"},"
             "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"S1\"},"
             "{\"type\":\"summary_text\",\"text\":\"S2\"}],\"encrypted_content\":null},"
             "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Let me look.\"}]},"
             "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
             "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"namespace\":\"ns\",\"arguments\":\"{\\\"a\\\":1}\"},"
             "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"r1\"},"
             "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"r2\"},"
             "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"R\"}]},"
             "{\"role\":\"assistant\",\"content\":\"done\"}]}");
  CHECK(t.rc == 0);
  CHECK(COUNT(t.out, "messages") == 5);
  CHECK_EQ_STR(STR(t.out, "messages.1.role"), "assistant");
  CHECK_EQ_STR(STR(t.out, "messages.1.content"), "Let me look.");
  CHECK_EQ_STR(STR(t.out, "messages.1.reasoning_content"), "S1\nS2");
  CHECK(COUNT(t.out, "messages.1.tool_calls") == 2);
  CHECK_EQ_STR(STR(t.out, "messages.1.tool_calls.1.function.name"), "ns__g");
  CHECK_EQ_STR(RAW(t.out, "messages.1.tool_calls.1.function.arguments"), "\"{\\\"a\\\":1}\"");
  CHECK_EQ_STR(STR(t.out, "messages.2.tool_call_id"), "c1");
  CHECK_EQ_STR(STR(t.out, "messages.3.tool_call_id"), "c2");
  CHECK_EQ_STR(STR(t.out, "messages.4.content"), "done");
  CHECK_EQ_STR(STR(t.out, "messages.4.reasoning_content"), "R");
  CHECK(t.r.n_reasoning == 2 && t.r.n_tool_calls == 2);
  tr_done(&t);
  /* Text after a tool call starts a new assistant message; a reasoning
   * item with nothing after it is dropped; two in a row join. */
  tr_run(&t, "{\"input\":[{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
             "{\"role\":\"assistant\",\"content\":\"x\"},"
             "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"lost\"}]},"
             "{\"role\":\"user\",\"content\":\"next\"},"
             "{\"type\":\"reasoning\",\"summary\":[],\"content\":[{\"type\":\"reasoning_text\",\"text\":\"a\"}]},"
             "{\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"b\"}]},"
             "{\"type\":\"reasoning\",\"summary\":[],\"encrypted_content\":\"opaque\"},"
             "{\"type\":\"custom_tool_call\",\"call_id\":\"c3\",\"name\":\"patch\",\"input\":\"raw \\\"text\\\"\\n\"}]}");
  CHECK(t.rc == 0);
  CHECK(COUNT(t.out, "messages") == 4);
  CHECK_EQ_STR(RAW(t.out, "messages.0.content"), "null");
  CHECK_EQ_STR(STR(t.out, "messages.1.content"), "x");
  CHECK_EQ_STR(RAW(t.out, "messages.1.reasoning_content"), "<missing>");
  CHECK(!strstr(t.out.data, "lost"));
  CHECK_EQ_STR(STR(t.out, "messages.3.reasoning_content"), "a\nb");
  const char *args = STR(t.out, "messages.3.tool_calls.0.function.arguments");
  CHECK_EQ_STR(rt_str(args, strlen(args), "input"), "raw \"text\"\n");
  CHECK(t.r.n_reasoning_dropped == 2 && t.r.n_reasoning == 2);
  tr_done(&t);
}

static void test_tool_outputs_and_images(void) {
  tr_t t;
  tr_run(&t, "{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"what is this\"},"
             "{\"type\":\"input_image\",\"image_url\":\"data:image/png;base64,AAAA\",\"detail\":\"low\"}]},"
             "{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":[{\"type\":\"input_text\",\"text\":\"see\"},"
             "{\"type\":\"input_image\",\"image_url\":\"https://x/y.png\"}]},"
             "{\"type\":\"custom_tool_call_output\",\"call_id\":\"d\",\"output\":null}]}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "messages.0.content"),
               "[{\"type\":\"text\",\"text\":\"what is this\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
               "\"data:image/png;base64,AAAA\",\"detail\":\"low\"}}]");
  CHECK_HAS(STR(t.out, "messages.1.content"), "see\n\n[image omitted");
  CHECK(!strstr(t.out.data, "y.png"));
  CHECK_EQ_STR(RAW(t.out, "messages.2.content"), "\"\"");
  CHECK_HAS(t.r.notes.data, "tool output");
  tr_done(&t);
  EXPECT_400("{\"input\":[{\"role\":\"system\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"u\"}]}]}",
             "only supported in user messages");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"file_id\":\"file_1\"}]}]}",
             "file_id is not supported");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\",\"file_data\":\"x\"}]}]}",
             "content part type input_file is not supported");
  EXPECT_400("{\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":[{\"type\":\"audio\"}]}]}",
             "tool output part type audio");
}

static void test_tools_and_choice(void) {
  tr_t t;
  tr_run(&t, "{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},"
             "{\"type\":\"custom\",\"name\":\"c\",\"description\":\"free\"},"
             "{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":[{\"type\":\"custom\",\"name\":\"k\",\"format\":{\"type\":\"text\"}},"
             "{\"type\":\"web_search\"}]},{\"type\":\"file_search\",\"vector_store_ids\":[]},{\"type\":\"image_generation\"}],"
             "\"tool_choice\":{\"type\":\"function\",\"name\":\"k\",\"namespace\":\"ns\"},\"parallel_tool_calls\":false}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "tools.0"), "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}");
  CHECK_EQ_STR(STR(t.out, "tools.1.function.description"), "free");
  CHECK_EQ_STR(STR(t.out, "tools.1.function.parameters.properties.input.description"),
               "The raw input text of this freeform tool (not JSON).");
  CHECK_EQ_STR(STR(t.out, "tools.2.function.name"), "ns__k");
  CHECK(COUNT(t.out, "tools") == 3 && t.r.n_dropped_tools == 3);
  CHECK_EQ_STR(RAW(t.out, "tool_choice"), "{\"type\":\"function\",\"function\":{\"name\":\"ns__k\"}}");
  CHECK_EQ_STR(RAW(t.out, "parallel_tool_calls"), "false");
  CHECK(t.r.parallel_tool_calls == 0);
  CHECK_STR(t.r.tool_choice.data, t.r.tool_choice.len, "{\"type\":\"function\",\"name\":\"k\",\"namespace\":\"ns\"}");
  const relay_resp_tool_t *k = relay_resp_req_tool(&t.r, "ns__k", 5);
  CHECK(k && k->kind == RELAY_RESP_TOOL_CUSTOM && k->ns_len == 2);
  CHECK(relay_resp_req_tool(&t.r, "c", 1) && relay_resp_req_tool(&t.r, "f", 1));
  tr_done(&t);
  /* Only hosted tools: no tools, no tool_choice upstream. */
  tr_run(&t, "{\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}],\"tool_choice\":\"required\",\"parallel_tool_calls\":true}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(t.out.data, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":false}");
  tr_done(&t);
  tr_run(&t, "{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":null,\"strict\":true}],"
             "\"tool_choice\":\"none\"}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "tool_choice"), "\"none\"");
  CHECK_EQ_STR(RAW(t.out, "tools.0.function.strict"), "true");
  tr_done(&t);
  tr_run(&t, "{\"input\":\"x\",\"tools\":[{\"type\":\"custom\",\"name\":\"c\"}],\"tool_choice\":{\"type\":\"custom\",\"name\":\"c\"}}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "tool_choice"), "{\"type\":\"function\",\"function\":{\"name\":\"c\"}}");
  tr_done(&t);
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":\"sometimes\"}", "tool_choice sometimes is not supported");
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":{\"type\":\"web_search\"}}", "tool_choice type web_search");
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":{\"type\":\"allowed_tools\",\"mode\":\"auto\",\"tools\":[]}}",
             "tool_choice type allowed_tools");
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":{\"type\":\"function\"}}", "tool name must be a string");
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":5}", "tool_choice must be");
  EXPECT_400("{\"input\":\"x\",\"tool_choice\":{\"type\":\"function\",\"name\":\"k\",\"namespace\":[]}}",
             "namespace must be a string");
  EXPECT_400("{\"input\":\"x\",\"tools\":{}}", "tools must be an array");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"name\":\"f\"}]}", "a tool must be an object with a type");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":7}]}", "tool name must be a string");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"\"}]}", "must not be empty");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"parameters\":[]}]}", "parameters must be an object");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"strict\":1}]}", "strict must be a boolean");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"a__b\"},{\"type\":\"namespace\",\"name\":\"a\","
             "\"tools\":[{\"type\":\"function\",\"name\":\"b\"}]}]}",
             "tool name a__b is offered twice");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"namespace\",\"name\":\"a\",\"tools\":[{\"type\":\"namespace\","
             "\"name\":\"b\",\"tools\":[]}]}]}",
             "namespaces cannot be nested");
  EXPECT_400("{\"input\":\"x\",\"tools\":[{\"type\":\"custom\",\"name\":\"c\",\"format\":{\"type\":\"regexp\"}}]}",
             "custom tool format type regexp");
  /* Limits: name length, tool count. */
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_append_str(&b, "{\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"");
  for (int i = 0; i < RELAY_RESP_MAX_NAME; i++) relay_buf_append(&b, "n", 1);
  relay_buf_append_str(&b, "\"}]}");
  relay_buf_append(&b, "", 1);
  tr_run(&t, b.data);
  CHECK(t.rc == 0); /* exactly the limit */
  tr_done(&t);
  b.len = 0;
  relay_buf_append_str(&b, "{\"input\":\"x\",\"tools\":[{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":[{\"type\":\"function\",\"name\":\"");
  for (int i = 0; i < RELAY_RESP_MAX_NAME - 3; i++) relay_buf_append(&b, "n", 1);
  relay_buf_append_str(&b, "\"}]}]}");
  relay_buf_append(&b, "", 1);
  EXPECT_400(b.data, "is longer than 256 bytes");
  b.len = 0;
  relay_buf_append_str(&b, "{\"input\":\"x\",\"tools\":[");
  for (int i = 0; i <= RELAY_RESP_MAX_TOOLS; i++)
    relay_buf_printf(&b, "%s{\"type\":\"function\",\"name\":\"f%d\"}", i ? "," : "", i);
  relay_buf_append_str(&b, "]}");
  relay_buf_append(&b, "", 1);
  EXPECT_400(b.data, "more than 512 tools");
  relay_buf_dispose(&b);
}

static void test_scalars(void) {
  tr_t t;
  tr_run(&t, "{\"model\":\"gpt-oss\",\"input\":\"x\",\"stream\":true,\"max_output_tokens\":256,\"temperature\":0.7,"
             "\"top_p\":1e-1,\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\",\"context\":\"all_turns\"},"
             "\"text\":{\"verbosity\":\"low\",\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"strict\":true,"
             "\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}}},"
             "\"store\":true,\"metadata\":{\"k\":\"v\"},\"user\":\"u\",\"service_tier\":\"auto\",\"truncation\":\"disabled\","
             "\"include\":[],\"prompt_cache_key\":\"p\",\"client_metadata\":{},\"previous_response_id\":null,\"new_thing\":1}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(t.out.data,
               "{\"model\":\"gpt-oss\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_effort\":\"high\","
               "\"max_tokens\":256,\"temperature\":0.7,\"top_p\":1e-1,\"response_format\":{\"type\":\"json_schema\","
               "\"json_schema\":{\"name\":\"out\",\"schema\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}},"
               "\"strict\":true}},\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
  CHECK_MEM(t.r.temperature.data, t.r.temperature.len, "0.7", 3);
  CHECK_MEM(t.r.top_p.data, t.r.top_p.len, "1e-1", 4);
  CHECK_MEM(t.r.max_output_tokens.data, t.r.max_output_tokens.len, "256", 3);
  CHECK_HAS(t.r.notes.data, "ignored member new_thing");
  CHECK(!strstr(t.r.notes.data, "metadata") && !strstr(t.r.notes.data, "store"));
  tr_done(&t);
  tr_run(&t, "{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_object\"}},\"reasoning\":null,\"temperature\":null}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "response_format"), "{\"type\":\"json_object\"}");
  CHECK_EQ_STR(RAW(t.out, "temperature"), "<missing>");
  tr_done(&t);
  /* Keys compare decoded; a repeated key: the last one counts. */
  tr_run(&t, "{\"\\u0069nput\":\"a\",\"model\":\"one\",\"model\":\"two\"}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(STR(t.out, "messages.0.content"), "a");
  CHECK_EQ_STR(STR(t.out, "model"), "two");
  tr_done(&t);
  /* Raw control characters (accepted by the check) go out escaped. */
  tr_run(&t, "{\"input\":\"a\tb\x01\"}");
  CHECK(t.rc == 0);
  CHECK_EQ_STR(RAW(t.out, "messages.0.content"), "\"a\\tb\\u0001\"");
  tr_done(&t);
  EXPECT_400("{\"input\":\"x\",\"stream\":\"yes\"}", "stream must be a boolean");
  EXPECT_400("{\"input\":\"x\",\"temperature\":\"hot\"}", "temperature must be a number");
  EXPECT_400("{\"input\":\"x\",\"top_p\":[]}", "top_p must be a number");
  EXPECT_400("{\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens must be a positive integer");
  EXPECT_400("{\"input\":\"x\",\"max_output_tokens\":1.5}", "max_output_tokens must be a positive integer");
  EXPECT_400("{\"input\":\"x\",\"parallel_tool_calls\":1}", "parallel_tool_calls must be a boolean");
  EXPECT_400("{\"input\":\"x\",\"reasoning\":\"high\"}", "reasoning must be an object");
  EXPECT_400("{\"input\":\"x\",\"reasoning\":{\"effort\":3}}", "reasoning.effort must be a string");
  EXPECT_400("{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}", "text.format type xml");
  EXPECT_400("{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"n\"}}}", "needs a string name and an object schema");
  EXPECT_400("{\"input\":\"x\",\"model\":5}", "model must be a string");
  EXPECT_400("{\"input\":\"x\",\"instructions\":[]}", "instructions must be a string");
}

static void test_errors(void) {
  /* Malformed JSON, whatever jsmn alone would let through. */
  const char *bad[] = {"", "{", "{\"input\":}", "{\"input\":\"x\"", "[1 2]", "{\"input\":\"x\",}", "{\"input\":\"x\"} x",
                       "{\"input\" \"x\"}", "{\"input\":tru}", "{\"a\":01}", "{\"input\":\"x\\q\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) EXPECT_400(bad[i], "not valid JSON");
  tr_t t;
  tr_run_opts(&t, "{\"input\":\"x\"}\0", 14, NULL); /* a NUL after the document */
  CHECK(t.rc == RELAY_RESP_EINVAL);
  tr_done(&t);
  EXPECT_400("[]", "must be a JSON object");
  EXPECT_400("null ", "must be a JSON object");
  EXPECT_400("\"input\"", "must be a JSON object");
  EXPECT_400("{}", "the request has no input");
  EXPECT_400("{\"input\":[]}", "the request has no input");
  EXPECT_400("{\"input\":\"x\",\"previous_response_id\":\"resp_1\"}", "oss-relay is stateless");
  EXPECT_400("{\"input\":\"x\",\"conversation\":\"conv_1\"}", "oss-relay is stateless");
  EXPECT_400("{\"input\":\"x\",\"background\":true}", "background responses are not supported");
  EXPECT_400("{\"input\":\"x\",\"prompt\":{\"id\":\"p\"}}", "stored prompts are not supported");
  EXPECT_400("{\"input\":5}", "input must be a string or an array");
  EXPECT_400("{\"input\":[5]}", "an input item must be an object");
  EXPECT_400("{\"input\":[{\"content\":\"x\"}]}", "an input item needs a type");
  EXPECT_400("{\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}", "item_reference is not supported");
  EXPECT_400("{\"input\":[{\"type\":\"additional_tools\",\"tools\":[]}]}", "input item type additional_tools is not supported");
  EXPECT_400("{\"input\":[{\"type\":\"web_search_call\"}]}", "input item type web_search_call");
  EXPECT_400("{\"input\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "message role tool is not supported");
  EXPECT_400("{\"input\":[{\"type\":\"message\",\"content\":\"x\"}]}", "a message needs a role");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":5}]}", "content must be a string or an array");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":[\"x\"]}]}", "a content part must be an object with a type");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]}", "needs a string text");
  EXPECT_400("{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_video\"}]}]}", "content part type input_video");
  EXPECT_400("{\"input\":[{\"type\":\"function_call\",\"name\":\"f\",\"arguments\":\"{}\"}]}", "needs a string call_id");
  EXPECT_400("{\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"arguments\":{}}]}",
             "function_call needs a string arguments");
  EXPECT_400("{\"input\":[{\"type\":\"custom_tool_call\",\"call_id\":\"c\",\"name\":\"f\"}]}", "custom_tool_call needs a string input");
  EXPECT_400("{\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\",\"name\":\"f\",\"namespace\":1,\"arguments\":\"\"}]}",
             "namespace must be a string");
  EXPECT_400("{\"input\":[{\"type\":\"function_call_output\",\"output\":\"x\"}]}", "a tool output needs a string call_id");
  EXPECT_400("{\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\",\"output\":{}}]}", "tool output must be a string");
  EXPECT_400("{\"input\":[{\"type\":\"reasoning\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]}", "a reasoning content part");
  EXPECT_400("{\"input\":[{\"type\":\"reasoning\",\"summary\":\"x\"}]}", "reasoning summary must be an array");
  /* The param names where it went wrong; the message quotes client text safely. */
  tr_run(&t, "{\"input\":[{\"role\":\"user\",\"content\":\"ok\"},{\"role\":\"user\",\"content\":[{\"type\":\"input_text\","
             "\"text\":\"a\"},{\"type\":\"bad\\u0000\\\"type\\u00e9\"}]}]}");
  CHECK(t.rc == RELAY_RESP_EINVAL);
  CHECK_EQ_STR(t.r.err_param, "input[1].content[1]");
  CHECK_HAS(t.r.err_message, "content part type bad?\"type?? is not supported");
  CHECK(rt_utf8(t.r.err_message, strlen(t.r.err_message)));
  tr_done(&t);
  /* Nesting and size limits. */
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_append_str(&b, "{\"input\":\"x\",\"metadata\":");
  for (int i = 0; i < 300; i++) relay_buf_append(&b, "[", 1);
  for (int i = 0; i < 300; i++) relay_buf_append(&b, "]", 1);
  relay_buf_append_str(&b, "}");
  relay_buf_append(&b, "", 1);
  EXPECT_400(b.data, "nested more than 256 deep");
  b.len = 0;
  relay_buf_append_str(&b, "{\"input\":\"x\",\"metadata\":[0");
  for (int i = 0; i < RELAY_RESP_MAX_TOKENS; i++) relay_buf_append(&b, ",0", 2);
  relay_buf_append_str(&b, "]}");
  relay_buf_append(&b, "", 1);
  EXPECT_400(b.data, "more than 1048576 JSON values");
  relay_buf_dispose(&b);
  /* The error body helper. */
  relay_buf_t e;
  relay_buf_init(&e);
  CHECK(relay_resp_error_json(&e, "bad \"x\"\n", 8, NULL, "input", "code_1") == 0);
  CHECK_EQ_STR(e.len ? (relay_buf_append(&e, "", 1), e.data) : "",
               "{\"error\":{\"message\":\"bad \\\"x\\\"\\n\",\"type\":\"invalid_request_error\",\"param\":\"input\",\"code\":\"code_1\"}}");
  relay_buf_dispose(&e);
}

int main(void) {
  test_codex_turn1();
  test_codex_reasoning_turn2();
  test_codex_namespace_turn2();
  test_codex_apply_patch_turn2();
  test_input_forms();
  test_assistant_turns();
  test_tool_outputs_and_images();
  test_tools_and_choice();
  test_scalars();
  test_errors();
  return check_report("test_responses_request");
}
