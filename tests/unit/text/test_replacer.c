/* Unit tests for the streaming replacer: every text is run whole, cut at every
 * position, cut at every pair of positions (short texts) and one byte at a
 * time, and all runs must agree with the expected output and with a naive
 * reference implementation of leftmost-longest replacement. */
#include "relay/buf.h"
#include "relay/replacer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuts.h"
#include "harmony_rules.h"

#define RULE(from, pat, repl, to) \
  { (from), (pat), sizeof(pat) - 1, (repl), sizeof(repl) - 1, (to) }

/* The seed's single pair (the original Rust relay's behaviour). */
static const relay_rule_t seed_rules[] = {
    RULE(0, "<|channel|>analysis<|message|>", "<think>", 1),
    RULE(1, "<|end|><|start|>assistant<|channel|>final<|message|>", "</think>", 0),
};

/* Kimi-style UTF-8 markers: U+25C1 and U+25B7 are three bytes each. */
static const relay_rule_t kimi_rules[] = {
    RULE(0, "\xe2\x97\x81think\xe2\x96\xb7", "<think>", 1),
    RULE(1, "\xe2\x97\x81/think\xe2\x96\xb7", "</think>", 0),
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- output collection -------------------------------------------------- */

/* Output seen two ways: the flat bytes, and a canonical log of
 * (kind, state, bytes) with adjacent text of one state merged, so runs that
 * were cut differently (and so called back differently) compare equal. */
typedef struct {
  relay_buf_t flat;
  relay_buf_t canon;
  relay_buf_t text; /* text run not yet written to canon */
  unsigned text_state;
  size_t calls, text_calls;
  int bad; /* callback contract violations */
  const char *last_data;
} sink_t;

static void sink_init(sink_t *s) {
  memset(s, 0, sizeof *s);
  relay_buf_init(&s->flat);
  relay_buf_init(&s->canon);
  relay_buf_init(&s->text);
  /* Never NULL data, so CHECK_MEM's memcmp() is fine on empty output. */
  relay_buf_reserve(&s->flat, 1);
  relay_buf_reserve(&s->canon, 1);
}

static void sink_close(sink_t *s) {
  relay_buf_dispose(&s->flat);
  relay_buf_dispose(&s->canon);
  relay_buf_dispose(&s->text);
}

static void sink_flush_text(sink_t *s) {
  if (s->text.len == 0) return;
  relay_buf_printf(&s->canon, "T%u:%zu:", s->text_state, s->text.len);
  relay_buf_append(&s->canon, s->text.data, s->text.len);
  relay_buf_reset(&s->text);
}

static void sink_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data,
                      size_t len) {
  sink_t *s = ud;
  s->calls++;
  s->last_data = data;
  if (data == NULL) {
    s->bad++;
    return;
  }
  relay_buf_append(&s->flat, data, len);
  if (kind == RELAY_OUT_TEXT) {
    s->text_calls++;
    if (len == 0) s->bad++;
    if (s->text.len && s->text_state != state) sink_flush_text(s);
    s->text_state = state;
    relay_buf_append(&s->text, data, len);
  } else if (kind == RELAY_OUT_REPLACEMENT) {
    sink_flush_text(s);
    relay_buf_printf(&s->canon, "R%u:%zu:", state, len);
    relay_buf_append(&s->canon, data, len);
  } else {
    s->bad++;
  }
}

static void sink_done(sink_t *s) { sink_flush_text(s); }

/* ---- runners ------------------------------------------------------------ */

/* memcmp() that accepts the NULL data of an empty relay_buf_t. */
static int same(const char *a, size_t alen, const char *b, size_t blen) {
  return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Feed t cut at the sorted positions cuts[], then finish. Each piece is copied
 * into a buffer of exactly its size so ASan sees any read past it. Returns the
 * number of invariant violations (pending too long, errors, leftovers). */
static int run_cuts(const relay_ruleset_t *rs, const char *t, size_t len, const size_t *cuts,
                    size_t ncuts, sink_t *s) {
  relay_replacer_t r;
  int bad = 0;
  size_t maxp = relay_ruleset_max_pattern(rs);
  if (relay_replacer_init(&r, rs) != 0) return 1;
  size_t prev = 0;
  for (size_t k = 0; k <= ncuts; k++) {
    size_t c = k < ncuts ? cuts[k] : len;
    size_t n = c - prev;
    char *piece = malloc(n ? n : 1);
    memcpy(piece, t + prev, n);
    if (relay_replacer_feed(&r, piece, n, sink_emit, s) != 0) bad++;
    free(piece);
    if (relay_replacer_pending(&r) >= (maxp ? maxp : 1)) bad++;
    prev = c;
  }
  if (relay_replacer_finish(&r, sink_emit, s) != 0) bad++;
  if (relay_replacer_pending(&r) != 0) bad++;
  relay_replacer_dispose(&r);
  sink_done(s);
  return bad + s->bad;
}

/* Naive leftmost-longest: at each position try every rule of the state; the
 * first position with a match wins, the longest pattern there (first rule on a
 * tie), and scanning goes on after it in the rule's to_state. */
static void ref_run(const relay_rule_t *rules, size_t nrules, const char *t, size_t len,
                    sink_t *s) {
  unsigned st = 0;
  size_t from = 0, j = 0;
  while (j < len) {
    int best = -1;
    for (size_t k = 0; k < nrules; k++) {
      const relay_rule_t *ru = &rules[k];
      if (ru->from_state != st || ru->pattern_len > len - j) continue;
      if (memcmp(t + j, ru->pattern, ru->pattern_len) != 0) continue;
      if (best < 0 || ru->pattern_len > rules[best].pattern_len) best = (int)k;
    }
    if (best < 0) {
      j++;
      continue;
    }
    if (j > from) sink_emit(s, RELAY_OUT_TEXT, st, t + from, j - from);
    const relay_rule_t *ru = &rules[best];
    sink_emit(s, RELAY_OUT_REPLACEMENT, ru->to_state, ru->replacement ? ru->replacement : "",
              ru->replacement_len);
    st = ru->to_state;
    j += ru->pattern_len;
    from = j;
  }
  if (len > from) sink_emit(s, RELAY_OUT_TEXT, st, t + from, len - from);
  sink_done(s);
}

typedef struct {
  const char *name;
  const relay_ruleset_t *rs;
  const char *text;
  size_t len;
  const char *expect; /* flat output */
  size_t expect_len;
  const relay_buf_t *canon; /* from the whole run */
  int mismatches;
} variant_ctx_t;

/* One way of cutting: compare with the whole run, report the first mismatch. */
static void variant(variant_ctx_t *v, const size_t *cuts, size_t ncuts) {
  sink_t s;
  sink_init(&s);
  int bad = run_cuts(v->rs, v->text, v->len, cuts, ncuts, &s);
  int differs = !same(s.flat.data, s.flat.len, v->expect, v->expect_len) ||
                !same(s.canon.data, s.canon.len, v->canon->data, v->canon->len);
  if ((bad || differs) && v->mismatches++ == 0) {
    fprintf(stderr, "%s: cut at", v->name);
    for (size_t k = 0; k < ncuts; k++) fprintf(stderr, " %zu", cuts[k]);
    fprintf(stderr, ": bad=%d got [%.*s] expected [%.*s]\n", bad, (int)s.flat.len,
            s.flat.data ? s.flat.data : "", (int)v->expect_len, v->expect);
  }
  sink_close(&s);
}
static void variant_cb(void *v, const size_t *cuts, size_t ncuts) { variant(v, cuts, ncuts); }

#define PAIR_LIMIT 300

/* Run a text whole, at every cut, at every pair of cuts (short texts) and byte
 * by byte; all must give `expect` and the same kinds and states, which must in
 * turn match the reference. If expect_canon is given it is checked too. */
static void check_rules_text(const char *name, const relay_rule_t *rules, size_t nrules,
                             const char *text, size_t len, const char *expect,
                             size_t expect_len, const char *expect_canon) {
  relay_ruleset_t *rs;
  int err = relay_ruleset_new(&rs, rules, nrules);
  CHECK(err == 0);
  if (err) return;
  sink_t whole, ref;
  sink_init(&whole);
  sink_init(&ref);
  CHECK(run_cuts(rs, text, len, NULL, 0, &whole) == 0);
  if (!same(whole.flat.data, whole.flat.len, expect, expect_len))
    fprintf(stderr, "case %s:\n", name);
  CHECK_MEM(whole.flat.data, whole.flat.len, expect, expect_len);
  ref_run(rules, nrules, text, len, &ref);
  CHECK_MEM(whole.canon.data, whole.canon.len, ref.canon.data, ref.canon.len);
  if (expect_canon) CHECK_STR(whole.canon.data, whole.canon.len, expect_canon);

  variant_ctx_t v = {name, rs, text, len, expect, expect_len, &whole.canon, 0};
  for_each_cut(len, PAIR_LIMIT, variant_cb, &v);
  if (v.mismatches) fprintf(stderr, "case %s: %d cut variants differ\n", name, v.mismatches);
  CHECK(v.mismatches == 0);

  sink_close(&whole);
  sink_close(&ref);
  relay_ruleset_unref(rs);
}

#define CHECK_CASE(rules, text, expect) \
  check_rules_text(#rules ": " text, rules, NELEM(rules), text, sizeof(text) - 1, expect, \
                   sizeof(expect) - 1, NULL)
#define CHECK_CASE_KINDS(rules, text, expect, canon) \
  check_rules_text(#rules ": " text, rules, NELEM(rules), text, sizeof(text) - 1, expect, \
                   sizeof(expect) - 1, canon)

/* ---- the DESIGN.md table for gpt-oss ------------------------------------ */

#define AN "<|channel|>analysis<|message|>"
#define SA "<|start|>assistant"
#define FIN "<|channel|>final<|message|>"
#define TOOL "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>"
#define A1 "The user asks for 2+2. Simple: 4."
#define A2 "Double-check: yes, 4."
#define F1 "2 + 2 = **4**."

static void test_design_table(void) {
  /* LM Studio (the seed's pair) */
  CHECK_CASE(harmony_rules, AN A1 "<|end|>" SA FIN F1, "<think>" A1 "</think>" F1);
  /* llama-server drops <|end|> */
  CHECK_CASE(harmony_rules, AN A1 SA FIN F1, "<think>" A1 "</think>" F1);
  /* <|start|>assistant before the first <|channel|> */
  CHECK_CASE(harmony_rules, SA AN A1 "<|end|>" SA FIN F1, "<think>" A1 "</think>" F1);
  CHECK_CASE(harmony_rules, SA AN A1 SA FIN F1, "<think>" A1 "</think>" F1);
  /* two analysis messages, then final: one think block */
  CHECK_CASE(harmony_rules, AN A1 "<|end|>" SA AN A2 "<|end|>" SA FIN F1,
             "<think>" A1 A2 "</think>" F1);
  CHECK_CASE(harmony_rules, AN A1 SA AN A2 SA FIN F1, "<think>" A1 A2 "</think>" F1);
  /* analysis, then a tool call: the call's text is untouched */
  CHECK_CASE(harmony_rules, AN A1 "<|end|>" SA TOOL, "<think>" A1 "</think>" SA TOOL);
  CHECK_CASE(harmony_rules, AN A1 SA TOOL, "<think>" A1 "</think>" SA TOOL);
  /* trailing <|return|> or <|end|> after the final text */
  CHECK_CASE(harmony_rules, AN A1 "<|end|>" SA FIN F1 "<|return|>", "<think>" A1 "</think>" F1);
  CHECK_CASE(harmony_rules, AN A1 "<|end|>" SA FIN F1 "<|end|>", "<think>" A1 "</think>" F1);
  CHECK_CASE(harmony_rules, AN A1 SA FIN F1 "<|return|>", "<think>" A1 "</think>" F1);
  /* final channel only */
  CHECK_CASE(harmony_rules, FIN F1, F1);
  CHECK_CASE(harmony_rules, SA FIN F1 "<|return|>", F1);
  /* analysis cut short by <|return|> still closes the block */
  CHECK_CASE(harmony_rules, AN A1 "<|return|>", "<think>" A1 "</think>");
  /* no markers: unchanged byte for byte, including look-alikes and UTF-8 */
  CHECK_CASE(harmony_rules, "plain text < | > <| |> <|x|> caf\xc3\xa9 \xe2\x97\x81 \n\t\\u003c",
             "plain text < | > <| |> <|x|> caf\xc3\xa9 \xe2\x97\x81 \n\t\\u003c");
  CHECK_CASE(harmony_rules, "", "");
  /* the seed's pair */
  CHECK_CASE(seed_rules, AN A1 "<|end|>" SA FIN F1, "<think>" A1 "</think>" F1);
  CHECK_CASE(seed_rules, "no markers <|end|> here", "no markers <|end|> here");
}

/* ---- false starts and truncated markers --------------------------------- */

static void test_false_starts(void) {
  CHECK_CASE(harmony_rules, "Hello <|chan world", "Hello <|chan world");
  CHECK_CASE(harmony_rules, "<|channel|>analysi" "s!<|message|>", "<|channel|>analysis!<|message|>");
  CHECK_CASE(harmony_rules, "<<<|channel|>analysis<|message|>x", "<<<think>x");
  /* <|end|> alone inside analysis is text */
  CHECK_CASE(harmony_rules, AN "a<|end|>b<|end|> c" SA FIN "F", "<think>a<|end|>b<|end|> c</think>F");
  CHECK_CASE(harmony_rules, AN "a<|end|><|start|>user" SA FIN "F",
             "<think>a<|end|><|start|>user</think>F");
  /* ...but <|end|> outside is dropped */
  CHECK_CASE(harmony_rules, "a<|end|>b", "ab");
  /* a marker cut off at the very end of the stream is released as text */
  CHECK_CASE(harmony_rules, "x<|channel|>analysis<|mess", "x<|channel|>analysis<|mess");
  CHECK_CASE(harmony_rules, AN "A<|end|><|start|>assistant<|chan",
             "<think>A<|end|><|start|>assistant<|chan");
  CHECK_CASE(harmony_rules, AN "A<|end|>", "<think>A<|end|>");
  CHECK_CASE(harmony_rules, "F<|", "F<|");
  CHECK_CASE(harmony_rules, "<", "<");
}

/* ---- automaton semantics ------------------------------------------------ */

static const relay_rule_t r_aab[] = {RULE(0, "aab", "X", 0)};
static const relay_rule_t r_abab[] = {RULE(0, "abab", "X", 0)};
static const relay_rule_t r_aaa[] = {RULE(0, "aaa", "X", 0)};
static const relay_rule_t r_abcd_bc[] = {RULE(0, "abcd", "1", 0), RULE(0, "bc", "2", 0)};
static const relay_rule_t r_ab_abc[] = {RULE(0, "ab", "1", 0), RULE(0, "abc", "2", 0)};
static const relay_rule_t r_aa_aab[] = {RULE(0, "aa", "X", 0), RULE(0, "aab", "Y", 0)};
static const relay_rule_t r_dup[] = {RULE(0, "ab", "first", 0), RULE(0, "ab", "second", 0),
                                     RULE(1, "ab", "other-state", 0)};
/* finish must fire a candidate, rescan in the new state, and fire again */
static const relay_rule_t r_chain[] = {RULE(0, "ab", "X", 1), RULE(0, "abcd", "Z", 0),
                                       RULE(1, "c", "Y", 0), RULE(1, "cde", "W", 0)};
static const relay_rule_t r_empty_repl[] = {RULE(0, "<a>", "", 1), RULE(1, "<b>", "", 0)};

static void test_semantics(void) {
  CHECK_CASE(r_aab, "aaab", "aX");
  CHECK_CASE(r_aab, "aaaab aab aa", "aaX X aa");
  CHECK_CASE(r_abab, "ababab", "Xab");
  CHECK_CASE(r_abab, "abababab", "XX");
  CHECK_CASE(r_aaa, "aaaaaaa", "XXa");
  CHECK_CASE(r_abcd_bc, "abcd", "1");
  CHECK_CASE(r_abcd_bc, "abce", "a2e");
  CHECK_CASE(r_abcd_bc, "abc", "a2");
  CHECK_CASE(r_abcd_bc, "xabcdbc", "x12");
  CHECK_CASE(r_ab_abc, "abc", "2");
  CHECK_CASE(r_ab_abc, "abd", "1d");
  CHECK_CASE(r_ab_abc, "ab", "1");
  CHECK_CASE(r_ab_abc, "ababc", "12");
  CHECK_CASE(r_aa_aab, "aaa", "Xa");
  CHECK_CASE(r_aa_aab, "aaab", "Xab"); /* leftmost beats longest */
  CHECK_CASE(r_aa_aab, "aab", "Y");
  CHECK_CASE(r_dup, "abab", "firstfirst");
  CHECK_CASE(r_chain, "abc", "XY");
  CHECK_CASE(r_chain, "abcd", "Z");
  CHECK_CASE(r_chain, "abcdef", "Zef");
  CHECK_CASE(r_chain, "abcde", "Z" "e");
  CHECK_CASE(r_chain, "abce", "XYe");
  CHECK_CASE_KINDS(r_empty_repl, "x<a>y<b>z", "xyz", "T0:1:xR1:0:T1:1:yR0:0:T0:1:z");
  CHECK_CASE_KINDS(r_empty_repl, "<a><b>", "", "R1:0:R0:0:");
  /* UTF-8 markers cut inside a character */
  CHECK_CASE(kimi_rules, "\xe2\x97\x81think\xe2\x96\xb7\xe6\x80\x9d\xe8\x80\x83\xe2\x97\x81/think\xe2\x96\xb7\xe7\xad\x94",
             "<think>\xe6\x80\x9d\xe8\x80\x83</think>\xe7\xad\x94");
  CHECK_CASE(kimi_rules, "\xe2\x97\x81thin\xe2\x96\xb7 \xe2\x97\x81", "\xe2\x97\x81thin\xe2\x96\xb7 \xe2\x97\x81");
}

/* Kinds and states passed to the callback. */
static void test_kinds(void) {
  CHECK_CASE_KINDS(harmony_rules, "pre" AN "A<|end|>x" "<|end|>" SA FIN "F<|return|>",
                   "pre<think>A<|end|>x</think>F",
                   "T0:3:preR1:7:<think>T1:9:A<|end|>xR0:8:</think>T0:1:FR0:0:");
  CHECK_CASE_KINDS(harmony_rules, AN "A" SA TOOL, "<think>A</think>" SA TOOL,
                   "R1:7:<think>T1:1:AR0:47:</think>" SA "<|channel|>commentary"
                   "T0:78: to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Paris\"}<|call|>");
}

/* ---- long patterns ------------------------------------------------------ */

static void test_long_pattern(void) {
  size_t plen = RELAY_REPLACER_MAX_PATTERN, tlen = 2000 + 1;
  char *pat = malloc(plen), *text = malloc(tlen), *expect = malloc(tlen);
  memset(pat, 'a', plen - 1);
  pat[plen - 1] = 'b';
  memset(text, 'a', tlen - 1);
  text[tlen - 1] = 'b';
  size_t elen = tlen - plen;
  memset(expect, 'a', elen);
  memcpy(expect + elen, "R", 1);
  relay_rule_t rules[] = {{0, pat, plen, "R", 1, 0}};
  check_rules_text("long pattern", rules, 1, text, tlen, expect, elen + 1, NULL);
  /* without the final b nothing fires and everything comes back */
  check_rules_text("long pattern, no match", rules, 1, text, tlen - 1, text, tlen - 1, NULL);
  free(pat);
  free(text);
  free(expect);
}

/* ---- random rules against the reference --------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (uint32_t)(rng_state >> 11);
}

/* Small alphabets make overlaps, shared prefixes and state ping-pong common. */
static void test_random_vs_reference(void) {
  int failures = 0, runs = 0;
  for (int iter = 0; iter < 4000; iter++) {
    char pats[6][5], reps[6][5], text[48];
    relay_rule_t rules[6];
    unsigned nstates = 1 + rnd() % 3;
    size_t nrules = 1 + rnd() % 6;
    for (size_t k = 0; k < nrules; k++) {
      size_t plen = 1 + rnd() % 4;
      for (size_t i = 0; i < plen; i++) pats[k][i] = "aabbc"[rnd() % 5];
      int rl = rnd() % 3 == 0 ? 0 : snprintf(reps[k], sizeof reps[k], "[%zu]", k);
      rules[k] = (relay_rule_t){rnd() % nstates, pats[k], plen, rl ? reps[k] : NULL,
                                (size_t)rl, rnd() % nstates};
    }
    size_t len = rnd() % sizeof text;
    for (size_t i = 0; i < len; i++) text[i] = "aaabbbcx"[rnd() % 8];

    relay_ruleset_t *rs;
    if (relay_ruleset_new(&rs, rules, nrules) != 0) {
      failures++;
      continue;
    }
    sink_t ref;
    sink_init(&ref);
    ref_run(rules, nrules, text, len, &ref);
    size_t cuts[48];
    for (int way = 0; way < 8; way++) {
      size_t ncuts = 0;
      if (way == 1) /* byte by byte */
        for (size_t i = 1; i < len; i++) cuts[ncuts++] = i;
      else if (way > 1) /* random pieces, sometimes empty */
        for (size_t i = 0; i <= len; i++)
          if (rnd() % 4 == 0) cuts[ncuts++] = i;
      sink_t s;
      sink_init(&s);
      int bad = run_cuts(rs, text, len, cuts, ncuts, &s);
      runs++;
      if (bad || !same(s.canon.data, s.canon.len, ref.canon.data, ref.canon.len)) {
        if (failures++ == 0) {
          fprintf(stderr, "random case %d differs (way %d): text [%.*s]\n", iter, way, (int)len, text);
          for (size_t k = 0; k < nrules; k++)
            fprintf(stderr, "  %u [%.*s] -> [%.*s] -> %u\n", rules[k].from_state,
                    (int)rules[k].pattern_len, rules[k].pattern, (int)rules[k].replacement_len,
                    rules[k].replacement ? rules[k].replacement : "", rules[k].to_state);
          fprintf(stderr, "  got [%.*s]\n  ref [%.*s]\n", (int)s.canon.len,
                  s.canon.data ? s.canon.data : "", (int)ref.canon.len,
                  ref.canon.data ? ref.canon.data : "");
        }
      }
      sink_close(&s);
    }
    sink_close(&ref);
    relay_ruleset_unref(rs);
  }
  CHECK(failures == 0);
  CHECK(runs == 4000 * 8);
}

/* ---- callback economy and zero copy ------------------------------------- */

static void test_emit_calls(void) {
  relay_ruleset_t *rs;
  CHECK(relay_ruleset_new(&rs, harmony_rules, HARMONY_NRULES) == 0);
  relay_replacer_t r;
  CHECK(relay_replacer_init(&r, rs) == 0);
  relay_ruleset_unref(rs); /* the replacer keeps its own reference */

  sink_t s;
  sink_init(&s);
  static const char plain[] = "plain text with no marker at all, long enough to skip";
  CHECK(relay_replacer_feed(&r, plain, sizeof plain - 1, sink_emit, &s) == 0);
  CHECK(s.calls == 1);
  CHECK(s.last_data == plain); /* straight from the caller's buffer */

  /* a held byte and the next token come out in one call */
  CHECK(relay_replacer_feed(&r, "<", 1, sink_emit, &s) == 0);
  CHECK(s.calls == 1);
  CHECK(relay_replacer_pending(&r) == 1);
  CHECK(relay_replacer_feed(&r, " hi", 3, sink_emit, &s) == 0);
  CHECK(s.calls == 2);
  CHECK(relay_replacer_pending(&r) == 0);

  /* text before a partial marker in one call, the partial marker held */
  CHECK(relay_replacer_feed(&r, "abc<|chan", 9, sink_emit, &s) == 0);
  CHECK(s.calls == 3);
  CHECK(relay_replacer_pending(&r) == 6);
  /* held bytes plus a long run: at most two calls */
  char big[4096];
  memset(big, 'x', sizeof big);
  CHECK(relay_replacer_feed(&r, big, sizeof big, sink_emit, &s) == 0);
  CHECK(s.calls == 5);
  CHECK(s.last_data == big);

  /* a marker split over events (as servers send it) fires on its last piece */
  CHECK(relay_replacer_feed(&r, "<|channel|>", 11, sink_emit, &s) == 0);
  CHECK(relay_replacer_feed(&r, "analysis", 8, sink_emit, &s) == 0);
  CHECK(s.calls == 5);
  CHECK(relay_replacer_feed(&r, "<|message|>", 11, sink_emit, &s) == 0);
  CHECK(s.calls == 6);
  CHECK(r.state == 1);
  CHECK(r.matches == 1);
  CHECK(relay_replacer_pending(&r) == 0);
  /* <|return|> inside fires at once: nothing longer starts with it */
  CHECK(relay_replacer_feed(&r, "<|return|>", 10, sink_emit, &s) == 0);
  CHECK(s.calls == 7);
  CHECK(r.state == 0);

  /* finish keeps the state; feeding may continue */
  CHECK(relay_replacer_feed(&r, AN "x<|end", sizeof(AN "x<|end") - 1, sink_emit, &s) == 0);
  CHECK(relay_replacer_finish(&r, sink_emit, &s) == 0);
  CHECK(r.state == 1);
  CHECK(relay_replacer_pending(&r) == 0);
  CHECK(relay_replacer_feed(&r, SA FIN "F", sizeof(SA FIN "F") - 1, sink_emit, &s) == 0);
  CHECK(relay_replacer_finish(&r, sink_emit, &s) == 0);
  CHECK(r.state == 0);
  CHECK(s.bad == 0);
  sink_done(&s);
  CHECK(s.flat.len == sizeof plain - 1 + 4 + 9 + sizeof big + 7 + 8 + 7 + 6 + 8 + 1);
  sink_close(&s);

  relay_replacer_dispose(&r);
  relay_replacer_dispose(&r); /* twice is harmless */
  CHECK(relay_replacer_feed(&r, "x", 1, sink_emit, &s) == RELAY_EINVAL);
  CHECK(relay_replacer_finish(&r, sink_emit, &s) == RELAY_EINVAL);
}

/* ---- empty input and the pass-through set ------------------------------- */

static void test_empty(void) {
  relay_ruleset_t *rs;
  CHECK(relay_ruleset_new(&rs, harmony_rules, HARMONY_NRULES) == 0);
  CHECK(relay_ruleset_nstates(rs) == 2);
  CHECK(relay_ruleset_max_pattern(rs) == 55);
  relay_replacer_t r;
  CHECK(relay_replacer_init(&r, rs) == 0);
  sink_t s;
  sink_init(&s);
  CHECK(relay_replacer_feed(&r, NULL, 0, sink_emit, &s) == 0);
  CHECK(relay_replacer_feed(&r, "", 0, sink_emit, &s) == 0);
  CHECK(relay_replacer_finish(&r, sink_emit, &s) == 0);
  CHECK(relay_replacer_finish(&r, sink_emit, &s) == 0);
  CHECK(s.calls == 0);
  CHECK(relay_replacer_feed(&r, NULL, 1, sink_emit, &s) == RELAY_EINVAL);
  relay_replacer_dispose(&r);
  relay_ruleset_unref(rs);
  sink_close(&s);

  /* no rules: everything passes */
  CHECK(relay_ruleset_new(&rs, NULL, 0) == 0);
  CHECK(relay_ruleset_nstates(rs) == 1);
  CHECK(relay_ruleset_max_pattern(rs) == 0);
  relay_ruleset_unref(rs);
  static const relay_rule_t none[1];
  check_rules_text("no rules", none, 0, "any <|end|> text", 16, "any <|end|> text", 16, NULL);
}

/* ---- rule validation ---------------------------------------------------- */

static void test_errors(void) {
  relay_ruleset_t *rs = (relay_ruleset_t *)1;
  relay_rule_t bad;
  relay_rule_t ok = RULE(0, "ab", "x", 1);

  CHECK(relay_ruleset_new(NULL, &ok, 1) == RELAY_EINVAL);
  CHECK(relay_ruleset_new(&rs, NULL, 1) == RELAY_EINVAL);
  CHECK(rs == NULL);
  bad = ok;
  bad.pattern_len = 0;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad = ok;
  bad.pattern = NULL;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad = ok;
  bad.replacement = NULL;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad.replacement_len = 0; /* NULL and empty is fine */
  CHECK(relay_ruleset_new(&rs, &bad, 1) == 0);
  relay_ruleset_unref(rs);
  bad = ok;
  bad.from_state = RELAY_REPLACER_MAX_STATES;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad = ok;
  bad.to_state = RELAY_REPLACER_MAX_STATES;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad = ok;
  bad.from_state = bad.to_state = RELAY_REPLACER_MAX_STATES - 1;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == 0);
  CHECK(relay_ruleset_nstates(rs) == RELAY_REPLACER_MAX_STATES);
  relay_ruleset_unref(rs);

  static char longpat[RELAY_REPLACER_MAX_PATTERN + 1];
  memset(longpat, 'p', sizeof longpat);
  bad = (relay_rule_t){0, longpat, RELAY_REPLACER_MAX_PATTERN + 1, "", 0, 0};
  CHECK(relay_ruleset_new(&rs, &bad, 1) == RELAY_EINVAL);
  bad.pattern_len = RELAY_REPLACER_MAX_PATTERN;
  CHECK(relay_ruleset_new(&rs, &bad, 1) == 0);
  CHECK(relay_ruleset_max_pattern(rs) == RELAY_REPLACER_MAX_PATTERN);
  relay_ruleset_unref(rs);

  /* the limit on rules, and a bad rule among good ones */
  static relay_rule_t many[RELAY_REPLACER_MAX_RULES + 1];
  static char pats[RELAY_REPLACER_MAX_RULES + 1][8];
  for (int i = 0; i <= RELAY_REPLACER_MAX_RULES; i++) {
    int n = snprintf(pats[i], sizeof pats[i], "<%d>", i);
    many[i] = (relay_rule_t){(unsigned)i % 3, pats[i], (size_t)n, "r", 1, (unsigned)(i + 1) % 3};
  }
  CHECK(relay_ruleset_new(&rs, many, RELAY_REPLACER_MAX_RULES + 1) == RELAY_ETOOMANY);
  CHECK(relay_ruleset_new(&rs, many, RELAY_REPLACER_MAX_RULES) == 0);
  CHECK(relay_ruleset_nstates(rs) == 3);
  relay_ruleset_unref(rs);
  many[40].pattern_len = 0;
  CHECK(relay_ruleset_new(&rs, many, RELAY_REPLACER_MAX_RULES) == RELAY_EINVAL);
  CHECK(rs == NULL);

  CHECK(relay_replacer_init(NULL, NULL) == RELAY_EINVAL);
  relay_replacer_t r;
  CHECK(relay_replacer_init(&r, NULL) == RELAY_EINVAL);
  relay_replacer_dispose(&r);

  const char *e0 = relay_strerror(0), *e1 = relay_strerror(RELAY_EINVAL),
             *e2 = relay_strerror(RELAY_ENOMEM),
             *e3 = relay_strerror(RELAY_ETOOMANY),
             *e4 = relay_strerror(-999);
  CHECK(e0 && e1 && e2 && e3 && e4);
  CHECK(strcmp(e1, e2) && strcmp(e1, e3) && strcmp(e2, e3) && strcmp(e3, e4) && strcmp(e0, e1));
}

/* ---- reference counting ------------------------------------------------- */

static void test_refcount(void) {
  relay_ruleset_t *rs;
  CHECK(relay_ruleset_new(&rs, seed_rules, NELEM(seed_rules)) == 0);
  relay_ruleset_ref(rs);
  relay_replacer_t a, b;
  CHECK(relay_replacer_init(&a, rs) == 0);
  CHECK(relay_replacer_init(&b, rs) == 0);
  relay_ruleset_unref(rs);
  relay_ruleset_unref(rs); /* both of ours gone; the replacers still hold it */
  sink_t s;
  sink_init(&s);
  CHECK(relay_replacer_feed(&a, AN "x", sizeof(AN "x") - 1, sink_emit, &s) == 0);
  relay_replacer_dispose(&a);
  CHECK(relay_replacer_feed(&b, AN "y", sizeof(AN "y") - 1, sink_emit, &s) == 0);
  relay_replacer_dispose(&b); /* last reference: ASan would report a leak otherwise */
  CHECK_STR(s.flat.data, s.flat.len, "<think>x<think>y");
  sink_close(&s);
}

/* ---- a huge stream ------------------------------------------------------ */

static const char *const analysis_words[] = {
    "think", "ing", " ", "\n", "2+2", "<", "<|", "<|end|>x", "<|end|> ", "<|chan",
    "<|channel|>ana", "<|start|>assist", "<|start|>assistant<|channel|>fin", "<|ret",
    "caf\xc3\xa9", "\xe2\x88\x91", "<|end|><|start|>assistant<|channel|>x", "|>", "{\"a\":1}"};
static const char *const final_words[] = {
    "answer", " ", "\n", "<", "<|", "<|chan", "<|channel|>fin", "<|start|>x", "<|star",
    "\xc3\xa9", "<|en", "<|retur", "<|channel|>analysis<|mess", "**4**", "|>"};

static void add_words(relay_buf_t *in, relay_buf_t *out, const char *const *words, size_t n) {
  size_t count = 1 + rnd() % 40;
  for (size_t i = 0; i < count; i++) {
    const char *w = words[rnd() % n];
    relay_buf_append_str(in, w);
    relay_buf_append_str(out, w);
  }
}

static void add_both(relay_buf_t *in, relay_buf_t *out, const char *i, const char *o) {
  relay_buf_append_str(in, i);
  relay_buf_append_str(out, o);
}

/* Whole harmony responses of every shape, with look-alike text, back to back;
 * the expected output is built alongside. */
static void build_huge(relay_buf_t *in, relay_buf_t *out, size_t size) {
  const size_t na = NELEM(analysis_words), nf = NELEM(final_words);
  while (in->len < size) {
    switch (rnd() % 6) {
    case 0:
      add_both(in, out, AN, "<think>");
      add_words(in, out, analysis_words, na);
      add_both(in, out, "<|end|>" SA FIN, "</think>");
      add_words(in, out, final_words, nf);
      add_both(in, out, "<|return|>", "");
      break;
    case 1:
      add_both(in, out, SA AN, "<think>");
      add_words(in, out, analysis_words, na);
      add_both(in, out, SA FIN, "</think>");
      add_words(in, out, final_words, nf);
      add_both(in, out, "<|end|>", "");
      break;
    case 2:
      add_both(in, out, AN, "<think>");
      add_words(in, out, analysis_words, na);
      add_both(in, out, "<|end|>" SA AN, "");
      add_words(in, out, analysis_words, na);
      add_both(in, out, SA FIN, "</think>");
      add_words(in, out, final_words, nf);
      break;
    case 3:
      add_both(in, out, AN, "<think>");
      add_words(in, out, analysis_words, na);
      add_both(in, out, "<|end|>" SA TOOL, "</think>" SA TOOL);
      break;
    case 4:
      add_both(in, out, FIN, "");
      add_words(in, out, final_words, nf);
      break;
    default:
      add_words(in, out, final_words, nf);
      break;
    }
  }
}

/* Collects flat output only, cheaply. */
static void flat_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data,
                      size_t len) {
  relay_buf_append(ud, data, len);
}

static void test_huge(void) {
  size_t mb = 50;
  const char *env = getenv("RELAY_TEST_HUGE_MB");
  if (env) mb = (size_t)strtoul(env, NULL, 10);
  relay_buf_t in, expect, got;
  relay_buf_init(&in);
  relay_buf_init(&expect);
  relay_buf_init(&got);
  build_huge(&in, &expect, mb << 20);
  relay_ruleset_t *rs;
  CHECK(relay_ruleset_new(&rs, harmony_rules, HARMONY_NRULES) == 0);

  for (int way = 0; way < 2; way++) {
    relay_replacer_t r;
    CHECK(relay_replacer_init(&r, rs) == 0);
    relay_buf_reset(&got);
    CHECK(relay_buf_reserve(&got, expect.len) == 0);
    size_t maxpend = 0;
    if (way == 0) {
      CHECK(relay_replacer_feed(&r, in.data, in.len, flat_emit, &got) == 0);
    } else { /* token-sized pieces */
      for (size_t off = 0; off < in.len;) {
        size_t n = 1 + rnd() % 16;
        if (n > in.len - off) n = in.len - off;
        relay_replacer_feed(&r, in.data + off, n, flat_emit, &got);
        if (relay_replacer_pending(&r) > maxpend) maxpend = relay_replacer_pending(&r);
        off += n;
      }
    }
    CHECK(relay_replacer_finish(&r, flat_emit, &got) == 0);
    CHECK(maxpend < relay_ruleset_max_pattern(rs));
    CHECK(r.matches > 0);
    CHECK(got.len == expect.len);
    CHECK(same(got.data, got.len, expect.data, expect.len));
    relay_replacer_dispose(&r);
  }
  relay_ruleset_unref(rs);
  relay_buf_dispose(&in);
  relay_buf_dispose(&expect);
  relay_buf_dispose(&got);
}

/* Anchored rules fire only where their state was entered: at the start of
 * the text here, never in the middle of prose; cut anywhere, same output. */
static void test_anchored(void) {
  relay_rule_t rules[] = {RULE(0, "analysis", "<think>", 1), RULE(1, "assistantfinal", "</think>", 2)};
  rules[0].anchored = 1;
  relay_ruleset_t *rs;
  CHECK(relay_ruleset_new(&rs, rules, 2) == 0);
  static const char *const cases[][2] = {
      {"analysisUser asks.assistantfinalHello!", "<think>User asks.</think>Hello!"},
      {"The analysis shows assistantfinal x", "The analysis shows assistantfinal x"},
      {"aanalysis then assistantfinal", "aanalysis then assistantfinal"},
      {"anal", "anal"},
      {"analysis", "<think>"},
      {"", ""},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *t = cases[k][0];
    size_t len = strlen(t);
    for (size_t cut = 0; cut <= len; cut++) {
      for (size_t step = 1; step <= 2; step++) {
        size_t cuts[64];
        size_t n = 0;
        if (step == 1) {
          cuts[n++] = cut;
        } else {
          for (size_t c = 1; c < len && n < 64; c++) cuts[n++] = c; /* one byte at a time */
        }
        sink_t s;
        sink_init(&s);
        CHECK(run_cuts(rs, t, len, cuts, n, &s) == 0);
        CHECK_STR(s.flat.data, s.flat.len, cases[k][1]);
        sink_close(&s);
      }
    }
  }
  relay_ruleset_unref(rs);
  /* Anchored and floating rules may not share a state. */
  relay_rule_t mixed[] = {RULE(0, "a", "", 1), RULE(0, "b", "", 1)};
  mixed[0].anchored = 1;
  CHECK(relay_ruleset_new(&rs, mixed, 2) == RELAY_EINVAL);
}

int main(void) {
  test_anchored();
  test_design_table();
  test_false_starts();
  test_semantics();
  test_kinds();
  test_long_pattern();
  test_random_vs_reference();
  test_emit_calls();
  test_empty();
  test_errors();
  test_refcount();
  test_huge();
  return check_report("test_replacer");
}
