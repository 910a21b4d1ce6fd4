/* The chat rewrite filter without sockets or a loop: driven through a
 * filter chain whose sink is a buffer. Harmony streams give the tags (or
 * the field) whatever the cuts, every other byte stays, JSON bodies are
 * rewritten once, n > 1 streams keep a replacer per choice, held text is
 * flushed at the end and before a bypass, and responses that are not
 * rewritable keep the filter out. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "relay/json_splice.h"
#include "check.h"
#include "text/harmony_rules.h"

static relay_buf_t out;

static int sink(void *ud, const char *data, size_t len) { return relay_buf_append(&out, data, len); }

static relay_chat_opts_t *harmony_opts(relay_mode_t mode) {
  relay_chat_opts_t *o = relay_chat_opts_new();
  CHECK(relay_ruleset_new(&o->rules, harmony_rules, HARMONY_NRULES) == 0);
  o->mode = mode;
  o->reasoning_states = 1u << 1; /* state 1: analysis */
  return o;
}

/* A chain with one chat filter for a 200 response of this content type;
 * returns 0 when the filter took part. */
static int chat_chain(relay_chain_t *c, relay_chat_opts_t *o, int status, const char *ctype, size_t max_event) {
  relay_buf_reset(&out);
  relay_chain_init(c, max_event, 1 << 20, sink, NULL, "test");
  relay_head_t h;
  relay_head_init(&h, 4096);
  if (ctype) relay_head_add(&h, "Content-Type", ctype, strlen(ctype));
  relay_response_t r;
  relay_response_classify(&r, status, &h);
  relay_filter_t *f = relay_chat_filter_type.create(o, NULL);
  int rc = f->ops->on_head(f, &r);
  relay_head_dispose(&h);
  if (rc) {
    f->ops->dispose(f);
    return rc;
  }
  CHECK(relay_chain_add(c, f) == 0);
  return 0;
}

/* One SSE event per token, OpenAI chunk shape. */
static void add_event(relay_buf_t *b, int index, const char *token_json) {
  relay_buf_printf(b,
                   "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-oss\","
                   "\"choices\":[{\"index\":%d,\"delta\":{\"content\":%s},\"finish_reason\":null}]}\n\n",
                   index, token_json);
}

/* The content of one choice, concatenated over the output's events (the
 * stream is known: one data line per event, "content":"..." once). */
static void collect(const char *s, size_t len, int index, const char *key, relay_buf_t *text) {
  char want[32];
  snprintf(want, sizeof want, "\"index\":%d", index);
  relay_buf_reset(text);
  const char *end = s + len;
  while (s < end) {
    const char *e = memmem(s, (size_t)(end - s), "\n\n", 2);
    if (!e) break;
    if (memmem(s, (size_t)(e - s), want, strlen(want))) {
      char k[48];
      snprintf(k, sizeof k, "\"%s\":\"", key);
      const char *v = memmem(s, (size_t)(e - s), k, strlen(k));
      if (v) {
        v += strlen(k);
        const char *q = v;
        while (q < e && !(*q == '"' && q[-1] != '\\')) q++;
        relay_json_unescape(v, (size_t)(q - v), text);
      }
    }
    s = e + 2;
  }
}

static const char *const tokens[] = {"\"<|channel|>\"", "\"analysis\"", "\"<|message|>\"", "\"Let me think\"",
                                     "\"<|end|>\"", "\"<|start|>\"", "\"assistant\"", "\"<|channel|>\"",
                                     "\"final\"", "\"<|message|>\"", "\"Hello \\u003cb\\u003e\"", "\"!\""};

static void harmony_stream(relay_buf_t *in, int index) {
  for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) add_event(in, index, tokens[i]);
}

/* Tags mode, whatever the cuts: "<think>Let me think</think>Hello <b>!", one
 * event out per event in, the rest of each event as it came. */
static void test_sse_tags(void) {
  relay_buf_t in, text, first;
  relay_buf_init(&in);
  relay_buf_init(&text);
  relay_buf_init(&first);
  harmony_stream(&in, 0);
  relay_buf_append_str(&in, "data: [DONE]\n\n");
  relay_chat_opts_t *o = harmony_opts(RELAY_MODE_TAGS);
  for (size_t cut = 0; cut <= in.len; cut += 7) {
    relay_chain_t c;
    CHECK(chat_chain(&c, o, 200, "text/event-stream", 1 << 20) == 0);
    CHECK(relay_chain_feed(&c, in.data, cut) == 0);
    CHECK(relay_chain_feed(&c, in.data + cut, in.len - cut) == 0);
    CHECK(relay_chain_end(&c, 1) == 0);
    collect(out.data, out.len, 0, "content", &text);
    CHECK_STR(text.data, text.len, "<think>Let me think</think>Hello <b>!");
    relay_filter_stats_t st;
    relay_chain_stats(&c, &st);
    CHECK(st.reasoning_blocks == 1 && st.tool_calls == 0 && st.events_rewritten > 0);
    if (cut == 0) {
      relay_buf_append(&first, out.data, out.len);
    } else {
      CHECK_MEM(out.data, out.len, first.data, first.len);
    }
    relay_chain_dispose(&c);
  }
  /* events in = events out; ids, model, finish_reason kept */
  size_t events = 0;
  for (const char *p = first.data; (p = memmem(p, first.len - (size_t)(p - first.data), "\n\n", 2)); p += 2) events++;
  CHECK(events == sizeof tokens / sizeof tokens[0] + 1);
  CHECK(memmem(first.data, first.len, "\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1", 53) != NULL);
  CHECK(memmem(first.data, first.len, "data: [DONE]\n\n", 14) != NULL);
  relay_chat_opts_unref(o);
  relay_buf_dispose(&in);
  relay_buf_dispose(&text);
  relay_buf_dispose(&first);
}

/* Field mode moves the analysis into reasoning_content; n = 2 interleaved
 * keeps one replacer per choice. */
static void test_sse_field_n2(void) {
  relay_buf_t in, text;
  relay_buf_init(&in);
  relay_buf_init(&text);
  for (size_t i = 0; i < sizeof tokens / sizeof tokens[0]; i++) {
    add_event(&in, 0, tokens[i]);
    add_event(&in, 1, tokens[i]);
  }
  relay_chat_opts_t *o = harmony_opts(RELAY_MODE_FIELD);
  relay_chain_t c;
  CHECK(chat_chain(&c, o, 200, "text/event-stream", 1 << 20) == 0);
  for (size_t i = 0; i < in.len; i += 13) CHECK(relay_chain_feed(&c, in.data + i, in.len - i < 13 ? in.len - i : 13) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  for (int k = 0; k < 2; k++) {
    relay_buf_t all;
    relay_buf_init(&all);
    /* content and reasoning arrive in pieces: gather each over the events */
    const char *s = out.data, *end = out.data + out.len;
    relay_buf_t content, reasoning;
    relay_buf_init(&content);
    relay_buf_init(&reasoning);
    while (s < end) {
      const char *e = memmem(s, (size_t)(end - s), "\n\n", 2);
      char want[16];
      snprintf(want, sizeof want, "\"index\":%d", k);
      if (memmem(s, (size_t)(e - s), want, strlen(want))) {
        collect(s, (size_t)(e - s) + 2, k, "content", &text);
        relay_buf_append(&content, text.data, text.len);
        collect(s, (size_t)(e - s) + 2, k, "reasoning_content", &text);
        relay_buf_append(&reasoning, text.data, text.len);
      }
      s = e + 2;
    }
    CHECK_STR(content.data, content.len, "Hello <b>!");
    CHECK_STR(reasoning.data, reasoning.len, "Let me think");
    relay_buf_dispose(&content);
    relay_buf_dispose(&reasoning);
    relay_buf_dispose(&all);
  }
  relay_chain_dispose(&c);
  relay_chat_opts_unref(o);
  relay_buf_dispose(&in);
  relay_buf_dispose(&text);
}

/* A JSON body is rewritten once at its end; every other byte as it came. */
static void test_json_body(void) {
  const char *body = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"<|channel|>analysis<|message|>A<|end|><|start|>assistant<|channel|>final<|message|>F\"},"
                     "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1.50e1,\"x\":[]}}";
  const char *want = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"<think>A</think>F\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1.50e1,\"x\":[]}}";
  relay_chat_opts_t *o = harmony_opts(RELAY_MODE_TAGS);
  relay_chain_t c;
  CHECK(chat_chain(&c, o, 200, "application/json", 1 << 20) == 0);
  CHECK(relay_chain_holds_body(&c));
  size_t n = strlen(body);
  CHECK(relay_chain_feed(&c, body, n / 2) == 0);
  CHECK(out.len == 0);
  CHECK(relay_chain_feed(&c, body + n / 2, n - n / 2) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK_STR(out.data, out.len, want);
  relay_chain_dispose(&c);
  /* not a chat document: as it came */
  CHECK(chat_chain(&c, o, 200, "application/json", 1 << 20) == 0);
  CHECK(relay_chain_feed(&c, "[1,2]", 5) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK_STR(out.data, out.len, "[1,2]");
  relay_chain_dispose(&c);
  relay_chat_opts_unref(o);
}

/* Held text is not lost: a stream that ends without a finish gets one more
 * event with it; a stream whose next event is over the limit gets it before
 * the raw rest. */
static void test_flush_and_bypass(void) {
  relay_chat_opts_t *o = harmony_opts(RELAY_MODE_TAGS);
  relay_buf_t in, text;
  relay_buf_init(&in);
  relay_buf_init(&text);
  add_event(&in, 0, "\"Hi <|chan\"");
  relay_chain_t c;
  CHECK(chat_chain(&c, o, 200, "text/event-stream", 1 << 20) == 0);
  CHECK(relay_chain_feed(&c, in.data, in.len) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  collect(out.data, out.len, 0, "content", &text);
  CHECK_STR(text.data, text.len, "Hi <|chan");
  relay_chain_dispose(&c);
  /* an event over the limit after held text */
  relay_buf_t big;
  relay_buf_init(&big);
  add_event(&big, 0, "\"0123456789012345678901234567890123456789012345678901234567890123456789\"");
  CHECK(chat_chain(&c, o, 200, "text/event-stream", 160) == 0);
  CHECK(relay_chain_feed(&c, in.data, in.len) == 0);
  CHECK(relay_chain_feed(&c, big.data, big.len) == 0);
  CHECK(relay_chain_end(&c, 1) == 0);
  CHECK(out.len > big.len && memcmp(out.data + out.len - big.len, big.data, big.len) == 0);
  collect(out.data, out.len - big.len, 0, "content", &text);
  CHECK_STR(text.data, text.len, "Hi <|chan");
  relay_chain_dispose(&c);
  relay_buf_dispose(&big);
  relay_buf_dispose(&in);
  relay_buf_dispose(&text);
  relay_chat_opts_unref(o);
}

/* Error statuses, other media types and encoded bodies keep the filter out. */
static void test_not_rewritable(void) {
  relay_chat_opts_t *o = harmony_opts(RELAY_MODE_TAGS);
  relay_chain_t c;
  CHECK(chat_chain(&c, o, 500, "application/json", 1024) == RELAY_FILTER_SKIP);
  CHECK(chat_chain(&c, o, 200, "text/plain", 1024) == RELAY_FILTER_SKIP);
  CHECK(chat_chain(&c, o, 200, NULL, 1024) == RELAY_FILTER_SKIP);
  relay_chat_opts_unref(o);
}

int main(void) {
  relay_buf_init(&out);
  test_sse_tags();
  test_sse_field_n2();
  test_json_body();
  test_flush_and_bypass();
  test_not_rewritable();
  relay_buf_dispose(&out);
  return check_report("test_chat");
}
