/* JSON splice tests: the visitor walk, string escape and unescape,
 * validation, and lossless find/edit. (The OpenAI choices picker built on the
 * visitor is tested in tests/unit/filters/test_choices.c.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "relay/json_splice.h"

#define S(lit) lit, sizeof(lit) - 1


/* The decoded text of [start+1, end-1) of a string value. */
static relay_buf_t text;
static const char *decoded(const char *js, size_t start, size_t end) {
  relay_buf_reset(&text);
  if (relay_json_unescape(js + start + 1, end - start - 2, &text)) return "<EINVAL>";
  relay_buf_append(&text, "", 1);
  return text.data;
}

#define CHECK_SPAN(js, a, b, lit) CHECK_MEM((js) + (a), (b) - (a), lit, strlen(lit))




/* A visitor that records what it is told, following what it is asked to. */
typedef struct rec_s {
  relay_buf_t log;
  const char *js;
} rec_t;

static int rec_key(void *ud, int object, const char *raw, size_t len, int esc) {
  rec_t *r = ud;
  relay_buf_printf(&r->log, "k%d:%.*s%s ", object, (int)len, raw, esc ? "(esc)" : "");
  if (relay_json_key_is(raw, len, esc, "follow", 6)) return 2;
  if (relay_json_key_is(raw, len, esc, "want", 4)) return 3;
  return 0;
}

static int rec_value(void *ud, int tag, const relay_json_value_t *v) {
  rec_t *r = ud;
  relay_buf_printf(&r->log, "v%d:%d:%.*s ", tag, (int)v->type, (int)(v->end - v->start), r->js + v->start);
  return tag == 1 || tag == 2 ? 2 : 0; /* the root and "follow" values are followed */
}

static const char *walk(rec_t *r, const char *js) {
  relay_buf_reset(&r->log);
  r->js = js;
  relay_json_visitor_t v = {rec_key, rec_value, r, 1};
  int rc = relay_json_visit(js, strlen(js), &v);
  if (rc) relay_buf_printf(&r->log, "rc=%d", rc);
  relay_buf_append(&r->log, "", 1);
  return r->log.data;
}

static void test_visitor(void) {
  rec_t r;
  relay_buf_init(&r.log);
  /* only followed containers report their keys; wanted values are reported */
  CHECK(strcmp(walk(&r, "{\"a\":{\"follow\":1},\"want\":[1],\"follow\":{\"want\":\"x\",\"b\":2}}"),
               "v1:1:{\"a\":{\"follow\":1},\"want\":[1],\"follow\":{\"want\":\"x\",\"b\":2}} k2:a k2:want "
               "v3:2:[1] k2:follow v2:1:{\"want\":\"x\",\"b\":2} k2:want v3:3:\"x\" k2:b ") == 0);
  /* elements of a followed array are reported with its tag */
  CHECK(strcmp(walk(&r, "[1,[2],{\"want\":null}]"),
               "v1:2:[1,[2],{\"want\":null}] v2:4:1 v2:2:[2] v2:4:2 v2:1:{\"want\":null} k2:want v3:4:null ") == 0);
  /* escaped keys are compared decoded */
  CHECK(strcmp(walk(&r, "{\"\\u0077ant\":5}"), "v1:1:{\"\\u0077ant\":5} k2:\\u0077ant(esc) v3:4:5 ") == 0);
  /* a scalar root; invalid documents stop the walk with an error */
  CHECK(strcmp(walk(&r, "\"s\""), "v1:3:\"s\" ") == 0);
  CHECK(strstr(walk(&r, "{\"a\":1,}"), "rc=") != NULL);
  relay_json_value_t v = {RELAY_JSON_PRIMITIVE, 0, 0, 0};
  long n = 0;
  const char *nums = "-42 9223372036854775808 1.5 null";
  v.end = 3;
  CHECK(relay_json_parse_long(nums, &v, &n) == 0 && n == -42);
  v.start = 4;
  v.end = 23;
  CHECK(relay_json_parse_long(nums, &v, &n) == RELAY_EJSON);
  v.start = 24;
  v.end = 27;
  CHECK(relay_json_parse_long(nums, &v, &n) == RELAY_EJSON);
  v.start = 28;
  v.end = 32;
  CHECK(relay_json_is_null(nums, &v));
  relay_buf_dispose(&r.log);
}

static void test_invalid(void) {
  static const char *bad[] = {
      "",           " ",           "{",           "{\"a\":1",     "{\"a\":1,}",  "[1,]",
      "[,1]",       "[1 2]",       "[1,,2]",      "{,}",          "[,]",         "{\"a\" 1}",
      "{\"a\":}",   "{:1}",        "{\"a\"}",     "{\"a\" \"b\"}", "{\"a\":1 \"b\":2}",
      "{\"a\":\"b\":\"c\"}", "[\"a\":1]", "{\"a\":1]", "[1}",     "{\"a\":1}}",  "{} {}",
      "{}x",        "{\"a\":nul}", "{\"a\":tru}", "{\"a\":nulll}", "{\"a\":01}", "{\"a\":1.}",
      "{\"a\":.5}", "{\"a\":-}",   "{\"a\":1e}",  "{\"a\":+1}",   "{\"a\":0x1}", "{\"a\":1:2}",
      "{'a':1}",    "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"unterminated}",
      "{a:1}",      "{\"a\":NaN}", "{\"a\":1}\x01", "{\"a\":[}",  "{\"a\":{]}",  "\"a\" \"b\"",
  };
  int fails = 0;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = relay_json_visit(bad[i], strlen(bad[i]), NULL);
    size_t a, b;
    int rc2 = relay_json_find(bad[i], strlen(bad[i]), NULL, 0, &a, &b);
    if (rc != RELAY_EJSON || rc2 != RELAY_EJSON) {
      fprintf(stderr, "  accepted invalid JSON: %s (%d, %d)\n", bad[i], rc, rc2);
      fails++;
    }
  }
  CHECK(fails == 0);
  /* A NUL byte inside the text is not JSON either. */
  CHECK(relay_json_visit("{\"a\":1}\0", 8, NULL) == RELAY_EJSON);
  CHECK(relay_json_visit("{\"a\":\"x\0y\"}", 11, NULL) == RELAY_EJSON);

  static const char *good[] = {
      "{}", "[]", " {} ", "\"s\"", "{\"a\":[1,-0,0.5,-1.5e+10,2E-3,1e5,true,false,null,\"\\/\"]}",
      "\r\n\t{ \"a\" : [ ] , \"b\" : { } }\n", "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    size_t a, b;
    int rc = relay_json_find(good[i], strlen(good[i]), NULL, 0, &a, &b);
    if (rc != 0) fprintf(stderr, "  rejected valid JSON: %s (%d)\n", good[i], rc);
    CHECK(rc == 0);
  }
}

static void test_unescape(void) {
  relay_buf_t b;
  relay_buf_init(&b);
#define UNESC_OK(in, expect)                                       \
  do {                                                             \
    relay_buf_reset(&b);                                           \
    CHECK(relay_json_unescape(S(in), &b) == 0);                    \
    CHECK_MEM(b.data, b.len, expect, sizeof(expect) - 1);          \
  } while (0)
  UNESC_OK("plain text", "plain text");
  UNESC_OK("\\\"\\\\\\/\\b\\f\\n\\r\\t", "\"\\/\b\f\n\r\t");
  UNESC_OK("\\u003c|channel|\\u003e", "<|channel|>");
  UNESC_OK("\\u00e9\\u00E9", "\xC3\xA9\xC3\xA9");
  UNESC_OK("\\u20AC", "\xE2\x82\xAC");
  UNESC_OK("\\ud83d\\ude00", "\xF0\x9F\x98\x80");
  UNESC_OK("\\uD83D\\uDE00!", "\xF0\x9F\x98\x80!");
  UNESC_OK("a\\ud83db", "a\xEF\xBF\xBD" "b");                   /* lone high */
  UNESC_OK("\\ud83d", "\xEF\xBF\xBD");                          /* lone high at end */
  UNESC_OK("\\ude00x", "\xEF\xBF\xBDx");                        /* lone low */
  UNESC_OK("\\ud83d\\ud83d\\ude00", "\xEF\xBF\xBD\xF0\x9F\x98\x80"); /* high, then a pair */
  UNESC_OK("\\ud83d\\n", "\xEF\xBF\xBD\n");
  UNESC_OK("\\ud83d\\u0041", "\xEF\xBF\xBD" "A");
  UNESC_OK("\\u0000", "\0");
  UNESC_OK("caf\xC3\xA9 raw\ttab", "caf\xC3\xA9 raw\ttab"); /* raw bytes pass */
  relay_buf_reset(&b);
  CHECK(relay_json_unescape("", 0, &b) == 0 && b.len == 0);

  /* Errors leave out as it was; decoding appends. */
  relay_buf_reset(&b);
  relay_buf_append(&b, "keep", 4);
  CHECK(relay_json_unescape(S("ok\\x"), &b) == RELAY_EJSON);
  CHECK(relay_json_unescape(S("ok\\"), &b) == RELAY_EJSON);
  CHECK(relay_json_unescape(S("\\u12"), &b) == RELAY_EJSON);
  CHECK(relay_json_unescape(S("\\u12G4"), &b) == RELAY_EJSON);
  CHECK(relay_json_unescape(S("\\ud83d\\uZZZZ"), &b) == RELAY_EJSON);
  CHECK(relay_json_unescape(S("\\U0041"), &b) == RELAY_EJSON);
  CHECK_MEM(b.data, b.len, "keep", 4);
  CHECK(relay_json_unescape(S(" more"), &b) == 0);
  CHECK_MEM(b.data, b.len, "keep more", 9);
  relay_buf_dispose(&b);
}

static void test_escape(void) {
  relay_buf_t b;
  relay_buf_init(&b);
  CHECK(relay_json_escape(&b, S("<think>a/b</think> caf\xC3\xA9 \xF0\x9F\x98\x80 \x7F")) == 0);
  CHECK_STR(b.data, b.len, "<think>a/b</think> caf\xC3\xA9 \xF0\x9F\x98\x80 \x7F");
  relay_buf_reset(&b);
  CHECK(relay_json_escape(&b, S("q\"b\\n\nr\rt\tb\bf\f\x01\x1f\0")) == 0);
  CHECK_STR(b.data, b.len, "q\\\"b\\\\n\\nr\\rt\\tb\\bf\\f\\u0001\\u001f\\u0000");
  relay_buf_reset(&b);
  CHECK(relay_json_escape(&b, "", 0) == 0 && b.len == 0);

  /* Every byte value survives escape then unescape, and the escaped text is
   * a valid JSON string body. */
  char all[256];
  for (int i = 0; i < 256; i++) all[i] = (char)i;
  relay_buf_t back, doc;
  relay_buf_init(&back);
  relay_buf_init(&doc);
  relay_buf_reset(&b);
  CHECK(relay_json_escape(&b, all, sizeof all) == 0);
  CHECK(relay_json_unescape(b.data, b.len, &back) == 0);
  CHECK_MEM(back.data, back.len, all, sizeof all);
  relay_buf_append(&doc, "{\"k\":\"", 6);
  relay_buf_append(&doc, b.data, b.len);
  relay_buf_append(&doc, "\"}", 2);
  size_t s, e;
  relay_json_path_seg_t k = {"k", 1, 0};
  CHECK(relay_json_find(doc.data, doc.len, &k, 1, &s, &e) == 0);
  relay_buf_reset(&back);
  CHECK(relay_json_unescape(doc.data + s + 1, e - s - 2, &back) == 0);
  CHECK_MEM(back.data, back.len, all, sizeof all);
  relay_buf_dispose(&b);
  relay_buf_dispose(&back);
  relay_buf_dispose(&doc);
}

static void test_find(void) {
  const char *js =
      "{\"a\":{\"b\":[10,{\"c\":\"x\\\"y\"},[]]},\"n\":12345678901234567890,\"f\":1.0000000000000002,"
      "\"k\\u0065y\":true}";
  size_t s, e;
  relay_json_path_seg_t p1[] = {{"a", 1, 0}, {"b", 1, 0}, {NULL, 0, 1}, {"c", 1, 0}};
  CHECK(relay_json_find(js, strlen(js), p1, 4, &s, &e) == 0);
  CHECK_SPAN(js, s, e, "\"x\\\"y\"");
  CHECK(relay_json_find(js, strlen(js), p1, 3, &s, &e) == 0);
  CHECK_SPAN(js, s, e, "{\"c\":\"x\\\"y\"}");
  relay_json_path_seg_t p2[] = {{"a", 1, 0}, {"b", 1, 0}, {NULL, 0, 2}};
  CHECK(relay_json_find(js, strlen(js), p2, 3, &s, &e) == 0);
  CHECK_SPAN(js, s, e, "[]");
  relay_json_path_seg_t p3[] = {{"n", 1, 0}};
  CHECK(relay_json_find(js, strlen(js), p3, 1, &s, &e) == 0);
  CHECK_SPAN(js, s, e, "12345678901234567890");
  relay_json_path_seg_t p4[] = {{"key", 3, 0}};
  CHECK(relay_json_find(js, strlen(js), p4, 1, &s, &e) == 0);
  CHECK_SPAN(js, s, e, "true");
  CHECK(relay_json_find(js, strlen(js), NULL, 0, &s, &e) == 0 && s == 0 && e == strlen(js));

  relay_json_path_seg_t miss[] = {{"a", 1, 0}, {"b", 1, 0}, {NULL, 0, 3}};
  CHECK(relay_json_find(js, strlen(js), miss, 3, &s, &e) == RELAY_ENOTFOUND);
  miss[2].index = -1;
  CHECK(relay_json_find(js, strlen(js), miss, 3, &s, &e) == RELAY_ENOTFOUND);
  relay_json_path_seg_t wrong[] = {{"a", 1, 0}, {NULL, 0, 0}}; /* index into an object */
  CHECK(relay_json_find(js, strlen(js), wrong, 2, &s, &e) == RELAY_ENOTFOUND);
  relay_json_path_seg_t through[] = {{"n", 1, 0}, {"x", 1, 0}}; /* key into a number */
  CHECK(relay_json_find(js, strlen(js), through, 2, &s, &e) == RELAY_ENOTFOUND);
  relay_json_path_seg_t deep[RELAY_JSON_MAX_PATH + 1];
  for (int i = 0; i <= RELAY_JSON_MAX_PATH; i++) deep[i] = (relay_json_path_seg_t){"a", 1, 0};
  CHECK(relay_json_find(js, strlen(js), deep, RELAY_JSON_MAX_PATH + 1, &s, &e) == RELAY_ETOODEEP);
  CHECK(relay_json_find(js, strlen(js), deep, RELAY_JSON_MAX_PATH, &s, &e) == RELAY_ENOTFOUND);
}

static relay_buf_t out;

/* Run one edit into a buffer that already holds a prefix (edits append),
 * and check the result is valid JSON. */
static const char *edit(const char *js, const relay_json_path_seg_t *p, size_t depth,
                        const char *raw, int *rc) {
  relay_buf_reset(&out);
  relay_buf_append(&out, "PFX", 3);
  *rc = relay_json_edit(js, strlen(js), p, depth, raw, raw ? strlen(raw) : 0, &out);
  if (*rc) {
    relay_buf_append(&out, "", 1);
    return out.data;
  }
  size_t s, e;
  if (relay_json_find(out.data + 3, out.len - 3, NULL, 0, &s, &e) != 0) {
    fprintf(stderr, "  edit produced invalid JSON: %.*s\n", (int)out.len - 3, out.data + 3);
    return "<INVALID>";
  }
  relay_buf_append(&out, "", 1);
  return out.data + 3;
}

#define KEY(k) {k, sizeof(k) - 1, 0}
#define IDX(i) {NULL, 0, i}
#define CHECK_EDIT(js, path, raw, expect)                                  \
  do {                                                                     \
    int rc_;                                                               \
    relay_json_path_seg_t p_[] = path;                                     \
    const char *r_ = edit(js, p_, sizeof p_ / sizeof p_[0], raw, &rc_);    \
    CHECK(rc_ == 0);                                                       \
    CHECK_STR(r_, strlen(r_), expect);                                     \
  } while (0)
#define P(...) {__VA_ARGS__}

static void test_edit_replace(void) {
  const char *chunk =
      "{\"id\":\"c\",\"created\":1.0000000000000002,\"n\":12345678901234567890,\"choices\":[{\"index\":0,"
      "\"delta\":{\"content\":\"<|channel|>analysis\"},\"logprobs\":null,\"finish_reason\":null}],"
      "\"e\":[],\"u\":\"a\\/b\"}";
  CHECK_EDIT(chunk, P(KEY("choices"), IDX(0), KEY("delta"), KEY("content")), "\"<think>\"",
             "{\"id\":\"c\",\"created\":1.0000000000000002,\"n\":12345678901234567890,\"choices\":[{\"index\":0,"
             "\"delta\":{\"content\":\"<think>\"},\"logprobs\":null,\"finish_reason\":null}],"
             "\"e\":[],\"u\":\"a\\/b\"}");
  CHECK_EDIT(chunk, P(KEY("e")), "[1]",
             "{\"id\":\"c\",\"created\":1.0000000000000002,\"n\":12345678901234567890,\"choices\":[{\"index\":0,"
             "\"delta\":{\"content\":\"<|channel|>analysis\"},\"logprobs\":null,\"finish_reason\":null}],"
             "\"e\":[1],\"u\":\"a\\/b\"}");
  CHECK_EDIT("[1, 2 ,3]", P(IDX(1)), "{\"x\" : null}", "[1, {\"x\" : null} ,3]");
  CHECK_EDIT("{\"a\":{\"b\":1}}", P(KEY("a")), "\"s\"", "{\"a\":\"s\"}");
  /* depth 0 replaces the document, keeping surrounding whitespace */
  int rc;
  const char *r = edit(" {} \n", NULL, 0, "[]", &rc);
  CHECK(rc == 0);
  CHECK_STR(r, strlen(r), " [] \n");
  edit("{}", NULL, 0, NULL, &rc);
  CHECK(rc == RELAY_EJSON);
  /* Duplicate keys: the last one is edited. */
  CHECK_EDIT("{\"a\":1,\"a\":2}", P(KEY("a")), "3", "{\"a\":1,\"a\":3}");
}

static void test_edit_remove(void) {
  CHECK_EDIT("{\"a\":1,\"b\":2,\"c\":3}", P(KEY("a")), NULL, "{\"b\":2,\"c\":3}");
  CHECK_EDIT("{\"a\":1,\"b\":2,\"c\":3}", P(KEY("b")), NULL, "{\"a\":1,\"c\":3}");
  CHECK_EDIT("{\"a\":1,\"b\":2,\"c\":3}", P(KEY("c")), NULL, "{\"a\":1,\"b\":2}");
  CHECK_EDIT("{\"a\":1}", P(KEY("a")), NULL, "{}");
  CHECK_EDIT("{ \"a\" : 1 }", P(KEY("a")), NULL, "{ }");
  CHECK_EDIT("[1,2,3]", P(IDX(0)), NULL, "[2,3]");
  CHECK_EDIT("[1,2,3]", P(IDX(1)), NULL, "[1,3]");
  CHECK_EDIT("[1,2,3]", P(IDX(2)), NULL, "[1,2]");
  CHECK_EDIT("[[]]", P(IDX(0)), NULL, "[]");
  CHECK_EDIT("{\"a\":{\"x\":[1,{\"y\":null}],\"z\":\"\"}}", P(KEY("a"), KEY("x"), IDX(1), KEY("y")), NULL,
             "{\"a\":{\"x\":[1,{}],\"z\":\"\"}}");

  const char *pretty = "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {\n    \"d\": \"x\"\n  }\n}\n";
  CHECK_EDIT(pretty, P(KEY("a")), NULL, "{\n  \"b\": [],\n  \"c\": {\n    \"d\": \"x\"\n  }\n}\n");
  CHECK_EDIT(pretty, P(KEY("b")), NULL, "{\n  \"a\": 1,\n  \"c\": {\n    \"d\": \"x\"\n  }\n}\n");
  CHECK_EDIT(pretty, P(KEY("c")), NULL, "{\n  \"a\": 1,\n  \"b\": []\n}\n");
  CHECK_EDIT(pretty, P(KEY("c"), KEY("d")), NULL, "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {\n  }\n}\n");

  int rc;
  relay_json_path_seg_t miss[] = {KEY("zz")};
  edit("{\"a\":1}", miss, 1, NULL, &rc);
  CHECK(rc == RELAY_ENOTFOUND);
  relay_json_path_seg_t oob[] = {IDX(3)};
  edit("[1,2,3]", oob, 1, NULL, &rc);
  CHECK(rc == RELAY_ENOTFOUND);
}

static void test_edit_insert(void) {
  CHECK_EDIT("{}", P(KEY("content")), "\"x\"", "{\"content\":\"x\"}");
  CHECK_EDIT("{ }", P(KEY("content")), "\"x\"", "{\"content\":\"x\" }");
  CHECK_EDIT("{\n}", P(KEY("content")), "\"x\"", "{\"content\":\"x\"\n}");
  CHECK_EDIT("{\"role\":\"assistant\"}", P(KEY("content")), "\"x\"",
             "{\"role\":\"assistant\",\"content\":\"x\"}");
  CHECK_EDIT("{\"a\" : 1}", P(KEY("b")), "2", "{\"a\" : 1,\"b\" : 2}");
  CHECK_EDIT("{\n  \"a\": 1,\n  \"b\": 2\n}", P(KEY("c")), "[]",
             "{\n  \"a\": 1,\n  \"b\": 2,\n  \"c\": []\n}");
  CHECK_EDIT("{\"q\\\"k\":1}", P(KEY("n\"ew\n")), "null", "{\"q\\\"k\":1,\"n\\\"ew\\n\":null}");
  /* The finish chunk's empty delta gets a content member. */
  CHECK_EDIT("{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
             P(KEY("choices"), IDX(0), KEY("delta"), KEY("content")), "\"held\"",
             "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"held\"},\"finish_reason\":\"stop\"}]}");

  int rc;
  /* Only the last key may be missing, and only inside an object. */
  relay_json_path_seg_t p1[] = {KEY("x"), KEY("y")};
  CHECK_STR(edit("{}", p1, 2, "1", &rc), 3, "PFX");
  CHECK(rc == RELAY_ENOTFOUND);
  relay_json_path_seg_t p2[] = {IDX(0)};
  edit("[]", p2, 1, "1", &rc);
  CHECK(rc == RELAY_ENOTFOUND);
  relay_json_path_seg_t p3[] = {KEY("a"), KEY("b")};
  edit("{\"a\":[]}", p3, 2, "1", &rc);
  CHECK(rc == RELAY_ENOTFOUND);
  edit("{\"a\":1,}", p3, 1, "1", &rc);
  CHECK(rc == RELAY_EJSON);
  CHECK(out.len == 3 + 1); /* "PFX" and the NUL the helper added: untouched */
  relay_json_path_seg_t deep[RELAY_JSON_MAX_PATH + 1];
  for (int i = 0; i <= RELAY_JSON_MAX_PATH; i++) deep[i] = (relay_json_path_seg_t)KEY("a");
  edit("{}", deep, RELAY_JSON_MAX_PATH + 1, "1", &rc);
  CHECK(rc == RELAY_ETOODEEP);
}

/* Bodies with far more tokens than the stack array (logprobs), found and
 * edited like small ones. */
static void test_big(void) {
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_append_str(&b, "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                           "\"content\":\"<|channel|>final<|message|>ok\"},\"logprobs\":{\"content\":[");
  for (int i = 0; i < 50000; i++)
    relay_buf_printf(&b, "%s{\"token\":\"t%d\",\"logprob\":-0.%d,\"bytes\":[116,%d],\"top_logprobs\":[]}",
                     i ? "," : "", i, i, i % 256);
  relay_buf_append_str(&b, "]},\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":50000}}");
  CHECK(relay_json_visit(b.data, b.len, NULL) == 0);
  relay_json_path_seg_t p[] = {KEY("choices"), IDX(0), KEY("logprobs"), KEY("content"), IDX(49999),
                               KEY("token")};
  size_t s, e;
  CHECK(relay_json_find(b.data, b.len, p, 6, &s, &e) == 0);
  CHECK_SPAN(b.data, s, e, "\"t49999\"");
  relay_buf_t o;
  relay_buf_init(&o);
  CHECK(relay_json_edit(b.data, b.len, p, 2, NULL, 0, &o) == 0);
  CHECK_STR(o.data, o.len, "{\"id\":\"x\",\"choices\":[],\"usage\":{\"total_tokens\":50000}}");
  relay_buf_dispose(&o);
  relay_buf_dispose(&b);
}

/* A document with more tokens than RELAY_JSON_MAX_TOKENS is refused, not
 * tokenized into ten times its size; one just under the cap is fine. */
static void test_token_cap(void) {
  size_t n = RELAY_JSON_MAX_TOKENS; /* elements; the array itself is one more token */
  char *b = malloc(2 * n + 2);
  b[0] = '[';
  for (size_t i = 0; i < n; i++) {
    b[1 + 2 * i] = '1';
    b[2 + 2 * i] = ',';
  }
  b[2 * n] = ']';
  size_t s, e;
  CHECK(relay_json_find(b, 2 * n + 1, NULL, 0, &s, &e) == RELAY_ETOOBIG);
  CHECK(relay_json_visit(b, 2 * n + 1, NULL) == RELAY_ETOOBIG);
  b[2 * (n - 8)] = ']'; /* n - 8 elements: under the cap */
  CHECK(relay_json_find(b, 2 * (n - 8) + 1, NULL, 0, &s, &e) == 0);
  free(b);
}

/* Nesting is limited, and a hostile "[[[[..." is turned away in linear
 * time (jsmn alone would take minutes on it). */
static void test_nesting(void) {
  size_t d = 200000, s, e;
  char *b = malloc(2 * d + 2);
  memset(b, '[', d);
  memset(b + d, ']', d);
  clock_t t0 = clock();
  CHECK(relay_json_visit(b, 2 * d, NULL) == RELAY_ETOODEEP);
  CHECK(relay_json_find(b, 2 * d, NULL, 0, &s, &e) == RELAY_ETOODEEP);
  CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
  /* exactly at the limit is fine, one more is not, also inside the stack array */
  size_t n = RELAY_JSON_MAX_NESTING;
  memset(b, '[', n);
  memset(b + n, ']', n);
  CHECK(relay_json_find(b, 2 * n, NULL, 0, &s, &e) == 0);
  memset(b, '[', n + 1);
  memset(b + n + 1, ']', n + 1);
  CHECK(relay_json_find(b, 2 * n + 2, NULL, 0, &s, &e) == RELAY_ETOODEEP);
  free(b);
}

/* ---- batches ----------------------------------------------------------- */

#define E_SET(path, raw) {path, sizeof path / sizeof path[0], raw, sizeof raw - 1}
#define E_DEL(path) {path, sizeof path / sizeof path[0], NULL, 0}

/* Apply a batch after a prefix and return the document (or "" on error). */
static const char *batch(const char *js, const relay_json_edit_t *e, size_t n, int *rc, size_t *failed) {
  relay_buf_reset(&out);
  relay_buf_append(&out, "PFX", 3);
  *rc = relay_json_edit_many(js, strlen(js), e, n, &out, failed);
  if (*rc) {
    CHECK(out.len == 3); /* left as it was */
    return "";
  }
  size_t s, en;
  if (relay_json_find(out.data + 3, out.len - 3, NULL, 0, &s, &en) != 0) {
    fprintf(stderr, "  batch produced invalid JSON: %.*s\n", (int)out.len - 3, out.data + 3);
    return "<INVALID>";
  }
  relay_buf_append(&out, "", 1);
  return out.data + 3;
}

#define CHECK_BATCH(js, edits, expect)                                        \
  do {                                                                        \
    int rc_;                                                                  \
    size_t f_ = 99;                                                           \
    const char *r_ = batch(js, edits, sizeof edits / sizeof edits[0], &rc_, &f_); \
    CHECK(rc_ == 0);                                                          \
    CHECK(f_ == 0);                                                           \
    CHECK_STR(r_, strlen(r_), expect);                                        \
  } while (0)

static void test_batch_basic(void) {
  static relay_json_path_seg_t model[] = {KEY("model")}, c0[] = {KEY("messages"), IDX(0), KEY("content")},
                               c2[] = {KEY("messages"), IDX(2), KEY("content")}, n[] = {KEY("n")},
                               r1[] = {KEY("messages"), IDX(1), KEY("reasoning")}, eff[] = {KEY("effort")};
  const char *doc = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
                    "{\"role\":\"assistant\",\"content\":\"x\",\"reasoning\":\"r\"},"
                    "{\"role\":\"assistant\",\"content\":\"<think>a</think>b\"}],\"n\":1.50}";
  relay_json_edit_t e[] = {E_SET(c2, "\"b\""), E_SET(model, "\"new/m\""), E_DEL(r1), E_SET(c0, "\"HI\""),
                           E_SET(n, "2"), E_SET(eff, "\"high\"")};
  const char *want = "{\"model\":\"new/m\",\"messages\":[{\"role\":\"user\",\"content\":\"HI\"},"
                     "{\"role\":\"assistant\",\"content\":\"x\"},"
                     "{\"role\":\"assistant\",\"content\":\"b\"}],\"n\":2,\"effort\":\"high\"}";
  CHECK_BATCH(doc, e, want);
  /* no edits: the document as it is, checked */
  int rc;
  size_t f;
  const char *r = batch(" [1, 2] ", NULL, 0, &rc, &f);
  CHECK(rc == 0);
  CHECK_STR(r, strlen(r), " [1, 2] ");
  batch("[1,", NULL, 0, &rc, &f);
  CHECK(rc == RELAY_EJSON);
  /* the whole document, alone */
  static relay_json_path_seg_t none[1];
  relay_json_edit_t whole[] = {{none, 0, "[]", 2}};
  r = batch(" {\"a\":1} ", whole, 1, &rc, &f);
  CHECK(rc == 0);
  CHECK_STR(r, strlen(r), " [] ");
  whole[0].raw = NULL;
  batch("{}", whole, 1, &rc, &f);
  CHECK(rc == RELAY_EJSON);
  /* keys compared decoded; a repeated key: the last one counts */
  static relay_json_path_seg_t a[] = {KEY("a")}, content[] = {KEY("content")};
  relay_json_edit_t e2[] = {E_SET(content, "1"), E_SET(a, "3")};
  CHECK_BATCH("{\"\\u0063ontent\":0,\"a\":1,\"a\":2}", e2, "{\"\\u0063ontent\":1,\"a\":1,\"a\":3}");
  relay_json_edit_t e3[] = {E_DEL(a)};
  CHECK_BATCH("{\"a\":1,\"b\":0,\"a\":2}", e3, "{\"a\":1,\"b\":0}");
}

static void test_batch_removals(void) {
  static relay_json_path_seg_t i0[] = {IDX(0)}, i1[] = {IDX(1)}, i2[] = {IDX(2)}, i3[] = {IDX(3)};
  relay_json_edit_t mid[] = {E_DEL(i2), E_DEL(i1)};
  CHECK_BATCH("[1, 2, 3, 4]", mid, "[1, 4]");
  relay_json_edit_t tail[] = {E_DEL(i3), E_DEL(i2)};
  CHECK_BATCH("[1, 2, 3, 4]", tail, "[1, 2]");
  relay_json_edit_t head[] = {E_DEL(i0), E_DEL(i1)};
  CHECK_BATCH("[1, 2, 3, 4]", head, "[3, 4]");
  relay_json_edit_t gaps[] = {E_DEL(i0), E_DEL(i2), E_DEL(i3)};
  CHECK_BATCH("[1, 2, 3, 4]", gaps, "[2]");
  relay_json_edit_t all[] = {E_DEL(i3), E_DEL(i0), E_DEL(i2), E_DEL(i1)};
  CHECK_BATCH("[ 1, 2, 3, 4 ]", all, "[ ]");
  static relay_json_path_seg_t ka[] = {KEY("a")}, kb[] = {KEY("b")}, kc[] = {KEY("c")};
  const char *pretty = "{\n  \"a\": 1,\n  \"b\": [],\n  \"c\": {\n    \"d\": \"x\"\n  }\n}\n";
  relay_json_edit_t ab[] = {E_DEL(kb), E_DEL(ka)};
  CHECK_BATCH(pretty, ab, "{\n  \"c\": {\n    \"d\": \"x\"\n  }\n}\n");
  relay_json_edit_t bc[] = {E_DEL(kc), E_DEL(kb)};
  CHECK_BATCH(pretty, bc, "{\n  \"a\": 1\n}\n");
  relay_json_edit_t ac[] = {E_DEL(kc), E_DEL(ka)};
  CHECK_BATCH(pretty, ac, "{\n  \"b\": []\n}\n");
  relay_json_edit_t abc[] = {E_DEL(kc), E_DEL(ka), E_DEL(kb)};
  CHECK_BATCH(pretty, abc, "{\n}\n"); /* as removing them one by one: back to the bracket */
  /* a removal next to a set: each keeps to its own bytes */
  relay_json_edit_t set_del[] = {E_SET(kb, "\"B\""), E_DEL(kc), E_DEL(ka)};
  CHECK_BATCH("{\"a\":1,\"b\":2,\"c\":3}", set_del, "{\"b\":\"B\"}");
  relay_json_edit_t del_set[] = {E_SET(i3, "9"), E_DEL(i2), E_DEL(i1), E_SET(i0, "[0]")};
  CHECK_BATCH("[1,2,3,4]", del_set, "[[0],9]");
}

static void test_batch_inserts(void) {
  static relay_json_path_seg_t ka[] = {KEY("a")}, kx[] = {KEY("x")}, ky[] = {KEY("y")}, kz[] = {KEY("z")};
  relay_json_edit_t three[] = {E_SET(kz, "3"), E_SET(kx, "1"), E_SET(ky, "2")};
  /* several new keys of one object: in the order given */
  CHECK_BATCH("{}", three, "{\"z\":3,\"x\":1,\"y\":2}");
  CHECK_BATCH("{\"a\" : 0}", three, "{\"a\" : 0,\"z\" : 3,\"x\" : 1,\"y\" : 2}");
  CHECK_BATCH("{\n  \"a\": 0,\n  \"b\": 0\n}", three,
              "{\n  \"a\": 0,\n  \"b\": 0,\n  \"z\": 3,\n  \"x\": 1,\n  \"y\": 2\n}");
  /* next to a set or a removal of the last member */
  relay_json_edit_t set_ins[] = {E_SET(kx, "1"), E_SET(ka, "\"A\"")};
  CHECK_BATCH("{\"a\":0}", set_ins, "{\"a\":\"A\",\"x\":1}");
  relay_json_edit_t del_ins[] = {E_SET(kx, "1"), E_DEL(ka)};
  CHECK_BATCH("{\"a\":0}", del_ins, "{\"x\":1}");
  CHECK_BATCH("{ \"a\": 0 }", del_ins, "{\"x\": 1 }"); /* the removed member's spacing */
  static relay_json_path_seg_t kb[] = {KEY("b")};
  relay_json_edit_t del_last_ins[] = {E_DEL(kb), E_SET(kx, "1")};
  CHECK_BATCH("{\"a\":0, \"b\":0}", del_last_ins, "{\"a\":0, \"x\":1}");
  relay_json_edit_t del_all_ins2[] = {E_DEL(kb), E_SET(kx, "1"), E_DEL(ka), E_SET(ky, "2")};
  CHECK_BATCH("{\"a\":0,\"b\":0}", del_all_ins2, "{\"x\":1,\"y\":2}");
  /* keys are escaped as relay_json_edit escapes them */
  static relay_json_path_seg_t odd[] = {KEY("n\"ew\n")};
  relay_json_edit_t esc[] = {E_SET(odd, "null")};
  CHECK_BATCH("{}", esc, "{\"n\\\"ew\\n\":null}");
}

static void test_batch_errors(void) {
  int rc;
  size_t f;
  static relay_json_path_seg_t m[] = {KEY("m")}, m1[] = {KEY("m"), IDX(1)}, m1c[] = {KEY("m"), IDX(1), KEY("c")},
                               m2[] = {KEY("m"), IDX(2)}, zz[] = {KEY("zz"), KEY("q")}, mk[] = {KEY("m"), KEY("k")},
                               none[1];
  const char *doc = "{\"m\":[{\"c\":1},{\"c\":2}]}";
  /* the same value twice, or one inside another: in any order */
  relay_json_edit_t same[] = {E_SET(m1, "1"), E_SET(m2, "2"), E_DEL(m1)};
  batch(doc, same, 3, &rc, &f);
  CHECK(rc == RELAY_EOVERLAP && f == 2);
  relay_json_edit_t nested[] = {E_SET(m1c, "1"), E_DEL(m1)};
  batch(doc, nested, 2, &rc, &f);
  CHECK(rc == RELAY_EOVERLAP && f == 1);
  relay_json_edit_t nested2[] = {E_DEL(m), E_SET(m1c, "1")};
  batch(doc, nested2, 2, &rc, &f);
  CHECK(rc == RELAY_EOVERLAP && f == 1);
  relay_json_edit_t whole[] = {{none, 0, "1", 1}, E_SET(m1c, "1")};
  batch(doc, whole, 2, &rc, &f);
  CHECK(rc == RELAY_EOVERLAP);
  /* missing paths: the first in the given order is named, nothing is written */
  relay_json_edit_t miss[] = {E_SET(m1c, "5"), E_SET(m2, "3"), E_SET(zz, "1"), E_DEL(mk)};
  batch(doc, miss, 4, &rc, &f);
  CHECK(rc == RELAY_ENOTFOUND && f == 1);
  relay_json_edit_t miss2[] = {E_SET(m1c, "5"), E_SET(zz, "1"), E_SET(m2, "3")};
  batch(doc, miss2, 3, &rc, &f);
  CHECK(rc == RELAY_ENOTFOUND && f == 1);
  relay_json_edit_t ok[] = {E_SET(m1c, "5")};
  batch("{\"m\":[{\"c\":1},{\"c\":2}],}", ok, 1, &rc, &f);
  CHECK(rc == RELAY_EJSON);
  relay_json_path_seg_t deep[RELAY_JSON_MAX_PATH + 1];
  for (int i = 0; i <= RELAY_JSON_MAX_PATH; i++) deep[i] = (relay_json_path_seg_t)KEY("a");
  relay_json_edit_t toodeep[] = {E_SET(m1c, "5"), {deep, RELAY_JSON_MAX_PATH + 1, "1", 1}};
  batch(doc, toodeep, 2, &rc, &f);
  CHECK(rc == RELAY_ETOODEEP && f == 1);
  CHECK(strcmp(relay_strerror(RELAY_EOVERLAP), "edits overlap") == 0);
}

/* Random documents and random disjoint edits (sets and removals): the batch
 * gives what relay_json_edit() gives applied one by one from the end of the
 * document backwards (where earlier paths stay valid), and the same result
 * for every order of the list. */
static unsigned rnd_state = 12345;
static unsigned rnd(unsigned n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 16) % n;
}

static void gen_value(relay_buf_t *b, int depth) {
  unsigned kind = depth >= 4 ? rnd(3) : rnd(6);
  const char *ws = rnd(3) == 0 ? " " : "";
  switch (kind) {
    case 0: relay_buf_printf(b, "%u", rnd(1000)); break;
    case 1: relay_buf_printf(b, "\"s%u\\n\"", rnd(100)); break;
    case 2: relay_buf_append_str(b, rnd(2) ? "null" : "true"); break;
    case 3:
    case 4: {
      unsigned n = rnd(5);
      relay_buf_printf(b, "{%s", ws);
      for (unsigned i = 0; i < n; i++) {
        relay_buf_printf(b, "%s\"k%u\"%s:%s", i ? "," : "", i, ws, ws);
        gen_value(b, depth + 1);
      }
      relay_buf_printf(b, "%s}", ws);
      break;
    }
    default: {
      unsigned n = rnd(5);
      relay_buf_printf(b, "[%s", ws);
      for (unsigned i = 0; i < n; i++) {
        relay_buf_printf(b, "%s%s", i ? "," : "", ws);
        gen_value(b, depth + 1);
      }
      relay_buf_printf(b, "%s]", ws);
    }
  }
}

typedef struct {
  relay_json_path_seg_t seg[8];
  size_t depth;
  size_t start;
} rpath_t;

/* Every path of the document (below the root), with its value's offset. */
static size_t all_paths(const char *js, rpath_t *paths, size_t max) {
  static char keys[8][8];
  size_t n = 0;
  rpath_t cur;
  memset(&cur, 0, sizeof cur);
  /* breadth by trying keys k0..k4 and positions 0..4 at each depth */
  rpath_t queue[512];
  size_t qh = 0, qt = 0;
  queue[qt++] = cur;
  for (int i = 0; i < 8; i++) snprintf(keys[i], sizeof keys[i], "k%d", i);
  while (qh < qt && n < max) {
    rpath_t p = queue[qh++];
    if (p.depth == 6) continue;
    for (int kind = 0; kind < 2; kind++)
      for (int i = 0; i < 5; i++) {
        rpath_t q = p;
        q.seg[q.depth] = kind ? (relay_json_path_seg_t){NULL, 0, i} : (relay_json_path_seg_t){keys[i], 2, 0};
        q.depth++;
        size_t s, e;
        if (relay_json_find(js, strlen(js), q.seg, q.depth, &s, &e) != 0) continue;
        q.start = s;
        if (n < max) paths[n++] = q;
        if (qt < 512) queue[qt++] = q;
      }
  }
  return n;
}

static int is_prefix(const rpath_t *a, const rpath_t *b) {
  if (a->depth > b->depth) return 0;
  for (size_t i = 0; i < a->depth; i++) {
    const relay_json_path_seg_t *x = &a->seg[i], *y = &b->seg[i];
    if (!x->key != !y->key) return 0;
    if (x->key ? (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len)) : x->index != y->index) return 0;
  }
  return 1;
}

static void test_batch_random(void) {
  relay_buf_t doc, ref, tmp, first;
  relay_buf_init(&doc);
  relay_buf_init(&ref);
  relay_buf_init(&tmp);
  relay_buf_init(&first);
  static rpath_t paths[256], chosen[16];
  static const char *vals[] = {"0", "\"v\"", "[]", "{\"z\":[1]}", NULL};
  int mismatches = 0, runs = 0;
  for (int iter = 0; iter < 3000; iter++) {
    relay_buf_reset(&doc);
    gen_value(&doc, 0);
    relay_buf_append(&doc, "", 1);
    doc.len--;
    size_t np = all_paths(doc.data, paths, 256);
    if (np == 0) continue;
    /* pick disjoint paths */
    size_t nc = 0;
    for (int tries = 0; tries < 40 && nc < 8; tries++) {
      rpath_t *p = &paths[rnd((unsigned)np)];
      int ok = 1;
      for (size_t j = 0; j < nc && ok; j++) ok = !is_prefix(p, &chosen[j]) && !is_prefix(&chosen[j], p);
      if (ok) chosen[nc++] = *p;
    }
    relay_json_edit_t e[16];
    for (size_t j = 0; j < nc; j++) {
      const char *v = vals[rnd(5)];
      e[j] = (relay_json_edit_t){chosen[j].seg, chosen[j].depth, v, v ? strlen(v) : 0};
    }
    /* reference: one by one, from the end of the document backwards */
    size_t order[16];
    for (size_t j = 0; j < nc; j++) order[j] = j;
    for (size_t x = 1; x < nc; x++)
      for (size_t y = x; y > 0 && chosen[order[y - 1]].start < chosen[order[y]].start; y--) {
        size_t t = order[y];
        order[y] = order[y - 1];
        order[y - 1] = t;
      }
    relay_buf_reset(&ref);
    relay_buf_append(&ref, doc.data, doc.len);
    int ref_ok = 1;
    for (size_t j = 0; j < nc && ref_ok; j++) {
      const relay_json_edit_t *x = &e[order[j]];
      relay_buf_reset(&tmp);
      ref_ok = relay_json_edit(ref.data, ref.len, x->path, x->depth, x->raw, x->raw_len, &tmp) == 0;
      relay_buf_reset(&ref);
      relay_buf_append(&ref, tmp.data, tmp.len);
    }
    CHECK(ref_ok);
    /* the batch, in several orders */
    for (int perm = 0; perm < 4; perm++) {
      for (size_t j = nc; j > 1; j--) {
        size_t k = rnd((unsigned)j);
        relay_json_edit_t t = e[j - 1];
        e[j - 1] = e[k];
        e[k] = t;
      }
      relay_buf_reset(&tmp);
      size_t f;
      int rc = relay_json_edit_many(doc.data, doc.len, e, nc, &tmp, &f);
      runs++;
      if (rc != 0 || tmp.len != ref.len || memcmp(tmp.data, ref.data, ref.len) != 0) {
        if (mismatches++ < 3)
          fprintf(stderr, "  batch %d differs (rc %d):\n  doc   %s\n  batch %.*s\n  ref   %.*s\n", iter, rc, doc.data,
                  (int)tmp.len, tmp.data ? tmp.data : "", (int)ref.len, ref.data);
      }
    }
  }
  CHECK(mismatches == 0);
  CHECK(runs > 2000);
  relay_buf_dispose(&doc);
  relay_buf_dispose(&ref);
  relay_buf_dispose(&tmp);
  relay_buf_dispose(&first);
}

/* The shape the history hygiene edits: thousands of messages, one edit each. */
static void test_batch_many_messages(void) {
  relay_buf_t b, want;
  relay_buf_init(&b);
  relay_buf_init(&want);
  enum { N = 8000 };
  relay_buf_append_str(&b, "{\"model\":\"m\",\"messages\":[");
  relay_buf_append_str(&want, "{\"model\":\"m\",\"messages\":[");
  static relay_json_path_seg_t segs[N][3];
  static relay_json_edit_t e[N];
  size_t ne = 0;
  for (int i = 0; i < N; i++) {
    const char *role = i % 2 ? "assistant" : "user";
    relay_buf_printf(&b, "%s{\"role\":\"%s\",\"content\":\"%s%d\",\"reasoning_content\":\"r\"}", i ? "," : "",
                     role, i % 2 ? "<think>x</think>a" : "q", i);
    if (i % 2)
      relay_buf_printf(&want, "%s{\"role\":\"%s\",\"content\":\"a%d\"}", i ? "," : "", role, i);
    else
      relay_buf_printf(&want, "%s{\"role\":\"%s\",\"content\":\"q%d\",\"reasoning_content\":\"r\"}", i ? "," : "",
                       role, i);
    if (i % 2) {
      segs[i][0] = (relay_json_path_seg_t)KEY("messages");
      segs[i][1] = (relay_json_path_seg_t)IDX(i);
      segs[i][2] = (relay_json_path_seg_t)KEY("content");
      static char vals[N][16];
      snprintf(vals[i], sizeof vals[i], "\"a%d\"", i);
      e[ne++] = (relay_json_edit_t){segs[i], 3, vals[i], strlen(vals[i])};
      static relay_json_path_seg_t rsegs[N][3];
      rsegs[i][0] = segs[i][0];
      rsegs[i][1] = segs[i][1];
      rsegs[i][2] = (relay_json_path_seg_t)KEY("reasoning_content");
      e[ne++] = (relay_json_edit_t){rsegs[i], 3, NULL, 0};
    }
  }
  relay_buf_append_str(&b, "]}");
  relay_buf_append_str(&want, "]}");
  relay_buf_t o;
  relay_buf_init(&o);
  size_t f;
  CHECK(relay_json_edit_many(b.data, b.len, e, ne, &o, &f) == 0);
  CHECK_MEM(o.data, o.len > 200 ? 200 : o.len, want.data, want.len > 200 ? 200 : want.len);
  CHECK(o.len == want.len && memcmp(o.data, want.data, want.len) == 0);
  relay_buf_dispose(&o);
  relay_buf_dispose(&b);
  relay_buf_dispose(&want);
}

/* Member cuts: every subset of the members of objects spaced in several
 * ways is removed; what is left is valid JSON with the kept members in order,
 * exactly one separator per removed member gone, every other byte kept. */
static void test_member_cuts(void) {
  static const char *const members[] = {"\"a\":1", "\"r\":\"x,y\"", "\"b\":[1,{\"c\":2}]", "\"rc\":null"};
  static const char *const styles[][3] = {{"", ",", ""}, {" ", ", ", " "}, {"\n  ", ",\n  ", "\n"}, {"", " , ", " "}};
  enum { N = 4 };
  for (size_t st = 0; st < sizeof styles / sizeof styles[0]; st++) {
    for (unsigned nm = 1; nm <= N; nm++) {
      relay_buf_t doc;
      relay_buf_init(&doc);
      relay_json_span_t span[N];
      relay_buf_append_str(&doc, "{");
      relay_buf_append_str(&doc, styles[st][0]);
      for (unsigned i = 0; i < nm; i++) {
        if (i) relay_buf_append_str(&doc, styles[st][1]);
        span[i].start = doc.len;
        relay_buf_append_str(&doc, members[i]);
        span[i].end = doc.len;
      }
      relay_buf_append_str(&doc, styles[st][2]);
      relay_buf_append_str(&doc, "}");
      for (unsigned set = 1; set < (1u << nm); set++) {
        relay_json_span_t rm[N], cut[N];
        size_t n = 0;
        for (unsigned i = 0; i < nm; i++)
          if (set & (1u << i)) rm[n++] = span[i];
        relay_json_member_cuts(doc.data, rm, n, cut);
        relay_buf_reset(&out);
        size_t pos = 0;
        int ordered = 1;
        for (size_t k = 0; k < n; k++) {
          if (cut[k].start < pos || cut[k].end < cut[k].start) ordered = 0;
          if (!ordered) break;
          relay_buf_append(&out, doc.data + pos, cut[k].start - pos);
          pos = cut[k].end;
        }
        CHECK(ordered);
        relay_buf_append(&out, doc.data + pos, doc.len - pos);
        /* valid, kept members in order, one comma fewer per removed member */
        size_t at = 0;
        unsigned kept = 0;
        for (unsigned i = 0; i < nm; i++) {
          if (set & (1u << i)) continue;
          kept++;
          const char *m = strstr(out.data ? out.data : "", members[i]);
          CHECK(m != NULL && (size_t)(m - out.data) >= at);
          if (m) at = (size_t)(m - out.data) + strlen(members[i]);
        }
        relay_json_path_seg_t root = {NULL, 0, 0};
        size_t a, b;
        CHECK(relay_json_find(out.data, out.len, &root, 0, &a, &b) == 0);
        size_t commas_in = 0, commas_out = 0;
        for (size_t i = 0; i < doc.len; i++) commas_in += doc.data[i] == ',';
        for (size_t i = 0; i < out.len; i++) commas_out += out.data[i] == ',';
        size_t inner = 0; /* commas inside the removed members */
        for (size_t k = 0; k < n; k++)
          for (size_t i = rm[k].start; i < rm[k].end; i++) inner += doc.data[i] == ',';
        CHECK(commas_in - commas_out == inner + (kept ? n : n - 1));
        /* the bytes outside the cuts are exactly the original's */
        CHECK(out.len <= doc.len);
      }
      relay_buf_dispose(&doc);
    }
  }
}

int main(void) {
  relay_buf_init(&text);
  relay_buf_init(&out);
  test_visitor();
  test_token_cap();
  test_invalid();
  test_unescape();
  test_escape();
  test_find();
  test_edit_replace();
  test_edit_remove();
  test_edit_insert();
  test_big();
  test_nesting();
  test_batch_basic();
  test_batch_removals();
  test_batch_inserts();
  test_batch_errors();
  test_batch_random();
  test_batch_many_messages();
  test_member_cuts();
  relay_buf_dispose(&text);
  relay_buf_dispose(&out);
  CHECK(strcmp(relay_strerror(RELAY_ENOTFOUND), "path not found") == 0);
  return check_report("test_json_splice");
}
