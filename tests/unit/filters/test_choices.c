/* The OpenAI choices picker (filters/choices.c): real server chunks, odd
 * shapes, bodies past the stack token array. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "choices.h"

#define S(lit) lit, sizeof(lit) - 1

static relay_chat_choice_t ch[RELAY_CHAT_MAX_CHOICES_PER_DOC];

static int find(const char *js, const char *container, const char *reasoning) {
  return relay_chat_find_choices(js, strlen(js), container, reasoning ? &reasoning : NULL, reasoning ? 1 : 0, ch,
                                 RELAY_CHAT_MAX_CHOICES_PER_DOC);
}

/* The decoded text of [start+1, end-1) of a string value. */
static relay_buf_t text;
static const char *decoded(const char *js, size_t start, size_t end) {
  relay_buf_reset(&text);
  if (relay_json_unescape(js + start + 1, end - start - 2, &text)) return "<EINVAL>";
  relay_buf_append(&text, "", 1);
  return text.data;
}

#define CHECK_SPAN(js, a, b, lit) CHECK_MEM((js) + (a), (b) - (a), lit, strlen(lit))

static void test_openai(void) {
  const char *role =
      "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
      "\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,"
      "\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},\"logprobs\":null,"
      "\"finish_reason\":null}]}";
  CHECK(find(role, "delta", NULL) == 1);
  CHECK(ch[0].index == 0 && ch[0].has_container && !ch[0].container_empty);
  CHECK(role[ch[0].container_open] == '{' && role[ch[0].container_close] == '}');
  CHECK(ch[0].has_content && ch[0].content_is_string);
  CHECK_SPAN(role, ch[0].content_start, ch[0].content_end, "\"\"");
  CHECK(!ch[0].finished && !ch[0].reasoning[0].present);

  const char *content =
      "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
      "\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
      "\"\\u003c|channel|\\u003e\"},\"logprobs\":null,\"finish_reason\":null}]}";
  CHECK(find(content, "delta", NULL) == 1);
  CHECK_SPAN(content, ch[0].content_start, ch[0].content_end, "\"\\u003c|channel|\\u003e\"");
  CHECK(strcmp(decoded(content, ch[0].content_start, ch[0].content_end), "<|channel|>") == 0);

  const char *fin =
      "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,"
      "\"finish_reason\":\"stop\"}]}";
  CHECK(find(fin, "delta", NULL) == 1);
  CHECK(ch[0].has_container && ch[0].container_empty && !ch[0].has_content && ch[0].finished);
  CHECK(ch[0].container_close == ch[0].container_open + 1);

  const char *usage =
      "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,"
      "\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
      "\"completion_tokens\":12,\"total_tokens\":21}}";
  CHECK(find(usage, "delta", NULL) == 0);

  /* n = 2: elements are reported in array order, index tells the choice. */
  const char *two =
      "{\"id\":\"x\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"B\"},\"finish_reason\":null},"
      "{\"index\":0,\"delta\":{\"content\":\"A\"},\"finish_reason\":\"length\"}]}";
  CHECK(find(two, "delta", NULL) == 2);
  CHECK(ch[0].index == 1 && ch[1].index == 0);
  CHECK(strcmp(decoded(two, ch[0].content_start, ch[0].content_end), "B") == 0);
  CHECK(strcmp(decoded(two, ch[1].content_start, ch[1].content_end), "A") == 0);
  CHECK(!ch[0].finished && ch[1].finished);

  /* tool_calls: the inner "index" is not the choice's. */
  const char *tool =
      "{\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":3,\"delta\":"
      "{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":"
      "{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\"}}]},\"logprobs\":null,"
      "\"finish_reason\":null}]}";
  CHECK(find(tool, "delta", NULL) == 1);
  CHECK(ch[0].index == 3 && ch[0].has_container && !ch[0].has_content && !ch[0].container_empty);

  const char *null_content =
      "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},"
      "\"finish_reason\":null}]}";
  CHECK(find(null_content, "delta", NULL) == 1);
  CHECK(ch[0].has_content && !ch[0].content_is_string);
  CHECK_SPAN(null_content, ch[0].content_start, ch[0].content_end, "null");

  /* No index member: the array position stands in. */
  CHECK(find("{\"choices\":[{\"delta\":{\"content\":\"a\"}},{\"delta\":{}}]}", "delta", NULL) == 2);
  CHECK(ch[0].index == 0 && ch[1].index == 1);
}

static void test_servers(void) {
  /* LM Studio: harmony markers in plain text. */
  const char *lms =
      "{\"id\":\"chatcmpl-7y2\",\"object\":\"chat.completion.chunk\",\"created\":1754400000,"
      "\"model\":\"openai/gpt-oss-20b\",\"system_fingerprint\":\"openai/gpt-oss-20b\","
      "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"<|channel|>\"},\"logprobs\":null,"
      "\"finish_reason\":null}]}";
  CHECK(find(lms, "delta", NULL) == 1);
  CHECK(strcmp(decoded(lms, ch[0].content_start, ch[0].content_end), "<|channel|>") == 0);

  /* llama.cpp server: choices first, finish_reason before index, timings. */
  const char *llama =
      "{\"choices\":[{\"finish_reason\":null,\"index\":0,\"delta\":{\"content\":\"Hi \\\"there\\\"\"}}],"
      "\"created\":1754400000,\"id\":\"chatcmpl-abc\",\"model\":\"gpt-oss-20b\","
      "\"system_fingerprint\":\"b6100-3db4da56\",\"object\":\"chat.completion.chunk\","
      "\"timings\":{\"prompt_n\":1,\"prompt_ms\":12.5,\"predicted_per_second\":61.72839506172839}}";
  CHECK(find(llama, "delta", NULL) == 1);
  CHECK(strcmp(decoded(llama, ch[0].content_start, ch[0].content_end), "Hi \"there\"") == 0);

  /* vLLM with a reasoning field. */
  const char *vllm =
      "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"
      "\"model\":\"openai/gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":"
      "\"think\",\"content\":null},\"logprobs\":null,\"finish_reason\":null,"
      "\"stop_reason\":null}]}";
  CHECK(find(vllm, "delta", "reasoning_content") == 1);
  CHECK(ch[0].reasoning[0].present && ch[0].reasoning[0].type == RELAY_JSON_STRING);
  CHECK_SPAN(vllm, ch[0].reasoning[0].start, ch[0].reasoning[0].end, "\"think\"");
  CHECK(find(vllm, "delta", "reasoning") == 1);
  CHECK(!ch[0].reasoning[0].present);

  /* A whole pretty-printed chat.completion body. */
  const char *body =
      "{\n  \"id\" : \"chatcmpl-9\",\n  \"object\" : \"chat.completion\",\n  \"choices\" : [\n"
      "    {\n      \"index\" : 0,\n      \"message\" : {\n        \"role\" : \"assistant\",\n"
      "        \"content\" : \"<|channel|>analysis<|message|>A<|end|>\"\n      },\n"
      "      \"finish_reason\" : \"stop\"\n    }\n  ],\n  \"usage\" : { \"total_tokens\" : 5 }\n}\n";
  CHECK(find(body, "message", NULL) == 1);
  CHECK(ch[0].finished && ch[0].content_is_string);
  CHECK(strcmp(decoded(body, ch[0].content_start, ch[0].content_end),
               "<|channel|>analysis<|message|>A<|end|>") == 0);
  CHECK(find(body, "delta", NULL) == 1);
  CHECK(!ch[0].has_container);

  /* Escaped keys are matched decoded. */
  const char *esc = "{\"ch\\u006fices\":[{\"\\u0069ndex\":2,\"delta\":{\"c\\u006Fntent\":\"x\"}}]}";
  CHECK(find(esc, "delta", NULL) == 1);
  CHECK(ch[0].index == 2 && ch[0].has_content);
  /* ... and a key spelled longer is not a prefix match. */
  CHECK(find("{\"choices\":[{\"delta\":{\"contents\":\"x\",\"conten\":\"y\"}}]}", "delta", NULL) == 1);
  CHECK(!ch[0].has_content);
  /* Duplicate keys: the last one counts. */
  const char *dup = "{\"choices\":[{\"delta\":{\"content\":\"a\",\"content\":\"b\"},\"index\":0,\"index\":4}]}";
  CHECK(find(dup, "delta", NULL) == 1);
  CHECK(ch[0].index == 4 && strcmp(decoded(dup, ch[0].content_start, ch[0].content_end), "b") == 0);
}

static void test_shapes(void) {
  CHECK(find("{\"id\":1}", "delta", NULL) == 0);
  CHECK(find("{\"choices\":null}", "delta", NULL) == 0);
  CHECK(find("{\"choices\":{}}", "delta", NULL) == RELAY_EJSON);
  CHECK(find("[{\"choices\":[]}]", "delta", NULL) == RELAY_EJSON);
  CHECK(find("{\"choices\":[1]}", "delta", NULL) == RELAY_EJSON);
  CHECK(find("{\"choices\":[{\"index\":\"0\"}]}", "delta", NULL) == RELAY_EJSON);
  CHECK(find("{\"choices\":[{\"index\":1.5}]}", "delta", NULL) == RELAY_EJSON);
  CHECK(find("{\"choices\":[{\"index\":99999999999999999999}]}", "delta", NULL) == RELAY_EJSON);
  CHECK(find("{\"choices\":[{\"index\":-3}]}", "delta", NULL) == 1 && ch[0].index == -3);
  CHECK(find("{\"choices\":[{\"delta\":null}]}", "delta", NULL) == 1 && !ch[0].has_container);
  CHECK(find("{\"choices\":[{\"delta\":{\"content\":[{\"type\":\"text\"}]}}]}", "delta", NULL) == 1);
  CHECK(ch[0].has_content && !ch[0].content_is_string);
  CHECK(relay_chat_find_choices(S("{\"choices\":[{},{},{}]}"), "delta", NULL, 0, ch, 2) ==
        RELAY_ETOOMANY);
  CHECK(relay_chat_find_choices(S("{\"choices\":[{},{},{}]}"), "delta", NULL, 0, ch, 3) == 3);
}

/* Bodies with far more tokens than the stack array (logprobs). */
static void test_big(void) {
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_append_str(&b, "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                           "\"content\":\"<|channel|>final<|message|>ok\"},\"logprobs\":{\"content\":[");
  for (int i = 0; i < 50000; i++)
    relay_buf_printf(&b, "%s{\"token\":\"t%d\",\"logprob\":-0.%d,\"bytes\":[116,%d],\"top_logprobs\":[]}",
                     i ? "," : "", i, i, i % 256);
  relay_buf_append_str(&b, "]},\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":50000}}");
  CHECK(relay_chat_find_choices(b.data, b.len, "message", NULL, 0, ch, 4) == 1);
  CHECK(ch[0].finished && ch[0].content_is_string);
  CHECK(strcmp(decoded(b.data, ch[0].content_start, ch[0].content_end), "<|channel|>final<|message|>ok") == 0);
  relay_buf_dispose(&b);
}

/* A hostile "[[[[..." is turned away in linear time. */
static void test_nesting(void) {
  size_t d = 200000;
  char *b = malloc(2 * d);
  memset(b, '[', d);
  memset(b + d, ']', d);
  clock_t t0 = clock();
  CHECK(relay_chat_find_choices(b, 2 * d, "delta", NULL, 0, ch, 4) == RELAY_ETOODEEP);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  free(b);
}

/* Several reasoning keys at once, the members' keys (for removing them),
 * tool_calls and finish_reason: vLLM's mirror era, mlx_lm's spaced chunks
 * and llama.cpp's finish-first element. */
static void test_members(void) {
  static const char *const keys[] = {"reasoning_content", "reasoning", "thinking"};
  const char *mirror =
      "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"x\",\"reasoning_content\":\"x\"},"
      "\"logprobs\":null,\"finish_reason\":null,\"token_ids\":null}]}";
  CHECK(relay_chat_find_choices(mirror, strlen(mirror), "delta", keys, 3, ch, 4) == 1);
  CHECK(ch[0].reasoning[0].present && ch[0].reasoning[1].present && !ch[0].reasoning[2].present);
  CHECK_SPAN(mirror, ch[0].reasoning[0].key_start, ch[0].reasoning[0].end, "\"reasoning_content\":\"x\"");
  CHECK_SPAN(mirror, ch[0].reasoning[1].key_start, ch[0].reasoning[1].end, "\"reasoning\":\"x\"");
  CHECK(ch[0].container_members == 2 && !ch[0].has_content && !ch[0].tool_calls.present);
  CHECK(ch[0].finish.present && !ch[0].finished && ch[0].finish.type == RELAY_JSON_PRIMITIVE);
  CHECK_SPAN(mirror, ch[0].finish.start, ch[0].finish.end, "null");

  const char *mlx =
      "{\"id\": \"c\", \"choices\": [{\"index\": 0, \"finish_reason\": \"stop\", \"delta\": {\"role\": "
      "\"assistant\", \"content\": \"\", \"reasoning\": \"\", \"tool_calls\": []}}]}";
  CHECK(relay_chat_find_choices(mlx, strlen(mlx), "delta", keys, 3, ch, 4) == 1);
  CHECK(ch[0].finished && ch[0].finish.type == RELAY_JSON_STRING);
  CHECK_SPAN(mlx, ch[0].finish.start, ch[0].finish.end, "\"stop\"");
  CHECK(ch[0].reasoning[1].present && ch[0].reasoning[1].empty && ch[0].reasoning[1].type == RELAY_JSON_STRING);
  CHECK_SPAN(mlx, ch[0].reasoning[1].key_start, ch[0].reasoning[1].end, "\"reasoning\": \"\"");
  CHECK(ch[0].tool_calls.present && ch[0].tool_calls.type == RELAY_JSON_ARRAY && ch[0].tool_calls.empty);
  CHECK_SPAN(mlx, ch[0].tool_calls.start, ch[0].tool_calls.end, "[]");
  CHECK(ch[0].container_members == 4);

  const char *calls =
      "{\"choices\":[{\"finish_reason\":null,\"index\":1,\"delta\":{\"tool_calls\":[{\"index\":0,"
      "\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}}]}";
  CHECK(relay_chat_find_choices(calls, strlen(calls), "delta", NULL, 0, ch, 4) == 1);
  CHECK(ch[0].index == 1 && ch[0].tool_calls.present && !ch[0].tool_calls.empty);
  CHECK(calls[ch[0].tool_calls.start] == '[' && calls[ch[0].tool_calls.end - 1] == ']');
  CHECK(ch[0].finish.present && !ch[0].finished);
  /* too many keys */
  static const char *const five[] = {"a", "b", "c", "d", "e"};
  CHECK(relay_chat_find_choices(calls, strlen(calls), "delta", five, 5, ch, 4) == RELAY_EINVAL);
}

int main(void) {
  test_openai();
  test_servers();
  test_shapes();
  test_big();
  test_nesting();
  test_members();
  relay_buf_dispose(&text);
  return check_report("test_choices");
}
