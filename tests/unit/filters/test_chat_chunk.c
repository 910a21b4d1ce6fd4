/* The chat chunk reader: chunk and body shapes of OpenAI, llama.cpp, vLLM
 * and Ollama as typed pieces of choice 0, in order. Each piece is logged as
 * a short token ("R[text]" reasoning, "C[..]" content, "B<i>[id|name]",
 * "A<i>[args]", "E<i>" tool end, "F[reason]", "U[p,c,r,cached]",
 * "X[status|code|type|message]") and the log is compared. */
#include <stdio.h>
#include <string.h>

#include "chat_chunk.h"
#include "resp_test.h"

static relay_buf_t logb;

static int log_piece(void *ud, const relay_chat_piece_t *p) {
  (void)ud;
  switch (p->kind) {
  case RELAY_CHAT_PIECE_REASONING: relay_buf_printf(&logb, "R[%.*s]", (int)p->len, p->text); break;
  case RELAY_CHAT_PIECE_CONTENT: relay_buf_printf(&logb, "C[%.*s]", (int)p->len, p->text); break;
  case RELAY_CHAT_PIECE_TOOL_BEGIN:
    relay_buf_printf(&logb, "B%ld[%.*s|%.*s]", p->index, (int)p->id_len, p->id, (int)p->name_len, p->name);
    break;
  case RELAY_CHAT_PIECE_TOOL_ARGS: relay_buf_printf(&logb, "A%ld[%.*s]", p->index, (int)p->len, p->text); break;
  case RELAY_CHAT_PIECE_TOOL_END: relay_buf_printf(&logb, "E%ld", p->index); break;
  case RELAY_CHAT_PIECE_FINISH: relay_buf_printf(&logb, "F[%.*s]", (int)p->len, p->text); break;
  case RELAY_CHAT_PIECE_USAGE:
    relay_buf_printf(&logb, "U[%lld,%lld,%lld,%lld]", (long long)p->usage.prompt_tokens,
                     (long long)p->usage.completion_tokens, (long long)p->usage.reasoning_tokens,
                     (long long)p->usage.cached_tokens);
    break;
  case RELAY_CHAT_PIECE_ERROR:
    relay_buf_printf(&logb, "X[%d|%.*s|%.*s|%.*s]", p->status, (int)p->code_len, p->code ? p->code : "",
                     (int)p->type_len, p->type ? p->type : "", (int)p->len, p->text);
    break;
  }
  return 0;
}

static relay_chat_chunk_t rd;

static const char *read_doc(const char *js, int body, int *rc) {
  logb.len = 0;
  *rc = relay_chat_chunk_read(&rd, js, strlen(js), body, log_piece, NULL);
  relay_buf_append(&logb, "", 1);
  logb.len--;
  return logb.data ? logb.data : "";
}

static void expect(const char *js, int body, const char *want, int line) {
  int rc;
  const char *got = read_doc(js, body, &rc);
  if (rc == 0 && strcmp(got, want) == 0) {
    check_passed++;
  } else {
    check_failed++;
    fprintf(stderr, "%s:%d: rc %d, got [%s]\n    expected [%s]\n", __FILE__, line, rc, got, want);
  }
}
#define EXPECT(js, want) expect(js, 0, want, __LINE__)
#define EXPECT_BODY(js, want) expect(js, 1, want, __LINE__)

static void test_stream_chunks(void) {
  /* OpenAI: the role chunk has content "" (no piece). */
  EXPECT("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-oss-20b\","
         "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
         "\"logprobs\":null,\"finish_reason\":null}]}",
         "");
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9\\n\\\"q\\\"\"},\"finish_reason\":null}]}",
         "C[caf\xC3\xA9\n\"q\"]");
  /* llama.cpp: reasoning_content, tool call pieces, finish, usage alone. */
  EXPECT("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"reasoning_content\":\"Let me\"}}],"
         "\"created\":1,\"id\":\"chatcmpl-x\",\"model\":\"gpt-oss\",\"system_fingerprint\":\"b6000\","
         "\"object\":\"chat.completion.chunk\"}",
         "R[Let me]");
  EXPECT("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"abc\","
         "\"type\":\"function\",\"function\":{\"name\":\"exec_command\",\"arguments\":\"\"}}]}}]}",
         "B0[abc|exec_command]");
  EXPECT("{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
         "\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}}]}",
         "A0[{\"cmd\":]");
  EXPECT("{\"choices\":[{\"finish_reason\":\"tool_calls\",\"index\":0,\"delta\":{}}]}", "F[tool_calls]");
  EXPECT("{\"choices\":[],\"usage\":{\"completion_tokens\":5,\"prompt_tokens\":10,\"total_tokens\":15,"
         "\"prompt_tokens_details\":{\"cached_tokens\":3}},\"timings\":{\"prompt_n\":10}}",
         "U[10,5,0,3]");
  /* finish and usage in one chunk (some servers), usage last. */
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"},\"finish_reason\":\"length\"}],"
         "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"completion_tokens_details\":{\"reasoning_tokens\":1}}}",
         "C[!]F[length]U[1,2,1,0]");
  /* vLLM sends "reasoning" (and sometimes both): the configured key wins. */
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"hm\"}}]}", "R[hm]");
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"a\",\"reasoning_content\":\"b\"}}]}", "R[b]");
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":null,\"reasoning\":\"a\"}}]}", "R[a]");
  /* Ollama: a whole call in one chunk; two calls in one array. */
  EXPECT("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
         "\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_x\",\"index\":0,\"type\":\"function\","
         "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},{\"id\":\"call_y\",\"index\":1,\"type\":"
         "\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}",
         "B0[call_x|f]A0[{\"a\":1}]B1[call_y|g]A1[{}]");
  /* Only choice 0 counts, wherever it is; an index-less element is 0 when first. */
  EXPECT("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}},{\"index\":0,\"delta\":{\"content\":\"A\"}}]}", "C[A]");
  EXPECT("{\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"}}]}", "");
  EXPECT("{\"choices\":[{\"delta\":{\"content\":\"A\"}},{\"delta\":{\"content\":\"B\"}}]}", "C[A]");
  /* Escaped keys; members of another type are skipped. */
  EXPECT("{\"choices\":[{\"index\":0,\"d\\u0065lta\":{\"content\":\"k\"}}]}", "C[k]");
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"content\":5,\"tool_calls\":{},\"reasoning_content\":[]},"
         "\"finish_reason\":7}],\"usage\":null}",
         "");
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[5,{\"index\":\"x\",\"function\":{\"name\":\"n\"}}]}}],"
         "\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1.5}}",
         "B1[|n]U[0,0,0,0]");
  EXPECT("{\"choices\":null}", "");
  EXPECT("{}", "");
}

static void test_errors(void) {
  EXPECT("{\"error\":{\"code\":500,\"message\":\"model crashed\",\"type\":\"server_error\"}}",
         "X[500||server_error|model crashed]");
  EXPECT("{\"error\":{\"code\":400,\"message\":\"the request exceeds the available context size\","
         "\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":9000,\"n_ctx\":8192}}",
         "X[400||exceed_context_size_error|the request exceeds the available context size]");
  EXPECT("{\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
         "X[0|rate_limit_exceeded|requests|Rate limit]");
  EXPECT("{\"error\":\"plain message\"}", "X[0|||plain message]");
  EXPECT("{\"error\":null,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}", "C[ok]");
  int rc;
  const char *bad[] = {"", "data", "[1]", "{\"choices\":[}", "{\"a\":1}{", "\"x\"", "{\"a\":\"\\x\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    read_doc(bad[i], 0, &rc);
    CHECK(rc == RELAY_CHAT_CHUNK_EINVAL);
  }
}

static void test_bodies(void) {
  EXPECT_BODY("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,"
              "\"message\":{\"role\":\"assistant\",\"content\":\"Hi\",\"reasoning_content\":\"think\",\"tool_calls\":["
              "{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},"
              "{\"id\":\"c2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":{\"x\":[1, 2]}}}]},"
              "\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,"
              "\"completion_tokens_details\":{\"reasoning_tokens\":1}}}",
              "R[think]C[Hi]B0[c1|f]A0[{}]E0B1[c2|g]A1[{\"x\":[1, 2]}]E1F[tool_calls]U[1,2,1,0]");
  /* In a body, a call without id or name still has a begin and an end. */
  EXPECT_BODY("{\"choices\":[{\"index\":0,\"message\":{\"content\":null,\"tool_calls\":[{\"function\":{\"arguments\":\"{}\"}}]},"
              "\"finish_reason\":\"stop\"}]}",
              "B0[|]A0[{}]E0F[stop]");
  /* A chunk read as a body has no message: nothing but the finish. */
  EXPECT_BODY("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}", "F[stop]");
}

static int stop_cb(void *ud, const relay_chat_piece_t *p) {
  int *n = ud;
  (void)p;
  return ++*n == 2 ? -42 : 0;
}

static void test_reader(void) {
  /* The callback stops the read with its value. */
  int n = 0;
  const char *js = "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"a\",\"content\":\"b\"},\"finish_reason\":\"stop\"}]}";
  CHECK(relay_chat_chunk_read(&rd, js, strlen(js), 0, stop_cb, &n) == -42 && n == 2);
  /* Another reasoning key. */
  relay_chat_chunk_t r2;
  relay_chat_chunk_init(&r2, "thinking");
  logb.len = 0;
  js = "{\"choices\":[{\"index\":0,\"delta\":{\"thinking\":\"t\",\"reasoning_content\":\"x\"}}]}";
  CHECK(relay_chat_chunk_read(&r2, js, strlen(js), 0, log_piece, NULL) == 0);
  CHECK_STR(logb.data, logb.len, "R[t]");
  relay_chat_chunk_dispose(&r2);
  /* A big body (more tokens than the stack array) and reuse after it. */
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_append_str(&b, "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"x\",\"tool_calls\":[");
  for (int i = 0; i < 200; i++)
    relay_buf_printf(&b, "%s{\"id\":\"c%d\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}", i ? "," : "", i);
  relay_buf_append_str(&b, "]}}]}");
  relay_buf_append(&b, "", 1);
  int rc;
  const char *got = read_doc(b.data, 1, &rc);
  CHECK(rc == 0 && strncmp(got, "C[x]B0[c0|f]A0[{}]E0B1[c1|f]", 28) == 0);
  CHECK(strstr(got, "B199[c199|f]A199[{}]E199") != NULL);
  relay_buf_dispose(&b);
  EXPECT("{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"small again\"}}]}", "C[small again]");
}

int main(void) {
  relay_buf_init(&logb);
  relay_chat_chunk_init(&rd, NULL);
  test_stream_chunks();
  test_errors();
  test_bodies();
  test_reader();
  relay_chat_chunk_dispose(&rd);
  relay_buf_dispose(&logb);
  return check_report("test_chat_chunk");
}
