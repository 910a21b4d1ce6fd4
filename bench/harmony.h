/* harmony.h - the synthetic gpt-oss token stream shared by bench/upstream.c and
 * bench/sse_client.c (header-only; a benchmark tool, not part of the relay).
 *
 * A stream of N content events (N >= 11) is:
 *   "<|channel|>" "analysis" "<|message|>"            (open marker, 3 tokens)
 *   R reasoning words
 *   "<|end|>" "<|start|>" "assistant" "<|channel|>" "final" "<|message|>"
 *                                                      (close marker, 6 tokens)
 *   A answer words
 * with R = (N - 9) / 2 and A = N - 9 - R, then one finish chunk and "data: [DONE]".
 * So a stream has N + 2 SSE events in all.
 */
#ifndef BENCH_HARMONY_H
#define BENCH_HARMONY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HARMONY_MARKER_TOKENS 9
#define HARMONY_MIN_EVENTS 11

/* Each word: the JSON-encoded form (as it appears between quotes) and its decoded text. */
typedef struct { const char *json; const char *text; } hm_tok;

static const hm_tok HM_WORDS[] = {
  {" The", " The"}, {" user", " user"}, {" asks", " asks"}, {" about", " about"},
  {" a", " a"}, {" reverse", " reverse"}, {" proxy", " proxy"}, {".", "."},
  {" We", " We"}, {" should", " should"}, {" explain", " explain"}, {" how", " how"},
  {" it", " it"}, {" works", " works"}, {",", ","}, {"\\n", "\n"},
  {" caf\xc3\xa9", " caf\xc3\xa9"}, {" and", " and"}, {" the", " the"}, {" \\\"relay\\\"", " \"relay\""},
  {" keeps", " keeps"}, {" every", " every"}, {" byte", " byte"}, {" intact", " intact"},
  {" while", " while"}, {" rewriting", " rewriting"}, {" markers", " markers"}, {";", ";"},
  {" tokens", " tokens"}, {" stream", " stream"}, {" quickly", " quickly"}, {"\\n\\n", "\n\n"},
};
#define HM_NWORDS (sizeof HM_WORDS / sizeof HM_WORDS[0])

static const char *const HM_OPEN[3] = {"<|channel|>", "analysis", "<|message|>"};
static const char *const HM_CLOSE[6] = {"<|end|>", "<|start|>", "assistant", "<|channel|>", "final", "<|message|>"};

static inline int hm_clamp_events(long n) {
  if (n < HARMONY_MIN_EVENTS) n = HARMONY_MIN_EVENTS;
  if (n > 5000000) n = 5000000;
  return (int)n;
}

/* Token i (0-based) of a stream of n content events; returns JSON form and decoded text. */
static inline hm_tok hm_token(int n, int i) {
  int r = (n - HARMONY_MARKER_TOKENS) / 2;
  hm_tok t;
  if (i < 3) { t.json = t.text = HM_OPEN[i]; return t; }
  i -= 3;
  if (i < r) return HM_WORDS[i % HM_NWORDS];
  i -= r;
  if (i < 6) { t.json = t.text = HM_CLOSE[i]; return t; }
  i -= 6;
  return HM_WORDS[(i + 7) % HM_NWORDS];
}

/* Is token i a reasoning word (1), an answer word (2), or a marker token (0)? */
static inline int hm_token_kind(int n, int i) {
  int r = (n - HARMONY_MARKER_TOKENS) / 2;
  if (i < 3) return 0;
  if (i < 3 + r) return 1;
  if (i < 9 + r) return 0;
  return 2;
}

#define HM_EVENT_FMT \
  "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":%llu," \
  "\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}," \
  "\"finish_reason\":null}]}\n\n"
/* The other scripted forms (bench/upstream.c ?form=): reasoning in a member of its own,
 * as llama.cpp sends gpt-oss reasoning (HM_FORM_REASONING: N/2 events of
 * "reasoning_content", then the answer in "content"), and harmony with a tool call left in
 * content, as mlx_lm.server sends it (HM_FORM_TOOL: the analysis, the call's header in
 * 11 tokens, then the arguments in word-sized pieces; no <|call|>). */
enum { HM_FORM_HARMONY = 0, HM_FORM_REASONING = 1, HM_FORM_TOOL = 2 };
#define HM_REASONING_EVENT_FMT \
  "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":%llu," \
  "\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"%s\"}," \
  "\"finish_reason\":null}]}\n\n"
static const char *const HM_CALL_HEAD[11] = {"<|end|>", "<|start|>", "assistant", "<|channel|>", "commentary", " to",
                                             "=functions", ".get_weather", " <|constrain|>", "json", "<|message|>"};
#define HM_CALL_TOKENS 14 /* the open marker, the header, and the arguments' opening {\"notes\":\" */

/* Token i of a tool-call stream of n content events: the JSON form (as it appears
 * between quotes). Arguments are {"notes":"<words>"}: pieces of words. */
static inline const char *hm_tool_token(int n, int i) {
  int r = (n - HM_CALL_TOKENS) / 2;
  if (i < 3) return HM_OPEN[i];
  i -= 3;
  if (i < r) return HM_WORDS[i % HM_NWORDS].json;
  i -= r;
  if (i < 11) return HM_CALL_HEAD[i];
  i -= 11;
  if (i == 0) return "{\\\"notes\\\":\\\"";
  return HM_WORDS[(i + 3) % 8].json; /* plain words: the arguments stay valid JSON */
}

#define HM_FINISH_EVENT \
  "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1," \
  "\"model\":\"gpt-oss-20b\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
#define HM_DONE_EVENT "data: [DONE]\n\n"

/* Simple growable byte buffer. */
typedef struct { char *p; size_t len, cap; } hm_buf;

static inline void hm_reserve(hm_buf *b, size_t extra) {
  if (b->len + extra + 1 <= b->cap) return;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < b->len + extra + 1) nc *= 2;
  char *np = realloc(b->p, nc);
  if (!np) { perror("realloc"); abort(); }
  b->p = np; b->cap = nc;
}
static inline void hm_put(hm_buf *b, const char *s, size_t n) {
  hm_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static inline void hm_puts(hm_buf *b, const char *s) { hm_put(b, s, strlen(s)); }

/* Expected decoded content of choice 0: raw (markers intact) or rewritten (stock tags mode). */
static inline void hm_expected(int n, int rewritten, hm_buf *out) {
  out->len = 0;
  hm_reserve(out, 0);
  out->p[0] = 0;
  for (int i = 0; i < n; i++) {
    if (rewritten) {
      if (i == 0) hm_puts(out, "<think>");
      if (i == 3 + (n - HARMONY_MARKER_TOKENS) / 2) hm_puts(out, "</think>");
      if (hm_token_kind(n, i) == 0) continue;
    }
    hm_puts(out, hm_token(n, i).text);
  }
}

/* Count harmony marker leftovers ("<|...|>") in decoded text. */
static inline long hm_count_markers(const char *s, size_t len) {
  static const char *const mk[] = {"<|channel|>", "<|message|>", "<|end|>", "<|start|>",
                                   "<|return|>", "<|call|>", "<|constrain|>"};
  long c = 0;
  for (size_t i = 0; i + 1 < len; i++) {
    if (s[i] != '<' || s[i + 1] != '|') continue;
    for (size_t k = 0; k < sizeof mk / sizeof mk[0]; k++) {
      size_t l = strlen(mk[k]);
      if (i + l <= len && memcmp(s + i, mk[k], l) == 0) { c++; break; }
    }
  }
  return c;
}

#endif
