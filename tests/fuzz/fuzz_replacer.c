/* libFuzzer target for the streaming replacer: feeding a text in pieces must
 * give exactly what feeding it whole gives (same bytes, same kinds and states),
 * and both must match a naive leftmost-longest reference. Aborts on mismatch.
 *
 * Input: byte 0 = number of cuts (low 4 bits) and rule set (bit 7: 0 = stock
 * harmony, 1 = a small set of self-overlapping patterns over "ab"); then two
 * bytes per cut (little-endian position, taken modulo the text length + 1);
 * the rest is the text, where bytes 0x80..0x80+NFRAGS-1 stand for harmony
 * fragments so that the fuzzer meets real markers and near misses often.
 */
#include "relay/buf.h"
#include "relay/replacer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harmony_rules.h"

#define RULE(from, pat, repl, to) \
  { (from), (pat), sizeof(pat) - 1, (repl), sizeof(repl) - 1, (to) }

static const relay_rule_t overlap_rules[] = {
    RULE(0, "aab", "<1>", 1), RULE(0, "ab", "<2>", 0),  RULE(0, "abab", "", 2),
    RULE(1, "b", "<3>", 0),   RULE(1, "bba", "<4>", 2), RULE(2, "a", "", 2),
    RULE(2, "baab", "<5>", 0),
};

static const char *const frags[] = {
    "<|",          "|>",        "<|channel|>", "analysis",   "final",
    "commentary",  "<|message|>", "<|end|>",   "<|start|>",  "assistant",
    "<|return|>",  "<|call|>",  "<|constrain|>", "<|end|><|start|>assistant",
    "<|channel|>analysis<|message|>", "<|channel|>final<|message|>",
    "<|start|>assistant<|channel|>", " to=functions.f ", "\xe2\x97\x81", "<|chan",
};
#define NFRAGS (sizeof frags / sizeof frags[0])

/* Output reduced to a canonical log: text runs of one state merged, every
 * replacement kept, so differently cut runs compare equal. */
typedef struct {
  relay_buf_t log;
  int in_text;
  unsigned text_state;
  size_t text_len_at; /* offset of the current run's length field */
} out_t;

static void out_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data,
                     size_t len) {
  out_t *o = ud;
  if (data == NULL) abort();
  if (kind == RELAY_OUT_TEXT) {
    if (len == 0) abort();
    if (!o->in_text || o->text_state != state) {
      char head[2 + sizeof(size_t)] = {'T', (char)('0' + state)};
      relay_buf_append(&o->log, head, sizeof head);
      o->in_text = 1;
      o->text_state = state;
      o->text_len_at = o->log.len - sizeof(size_t);
    }
    relay_buf_append(&o->log, data, len);
    /* keep the run's length up to date so that the log is unambiguous */
    size_t run_len;
    memcpy(&run_len, o->log.data + o->text_len_at, sizeof run_len);
    run_len += len;
    memcpy(o->log.data + o->text_len_at, &run_len, sizeof run_len);
  } else {
    char head[2 + sizeof(size_t)] = {'R', (char)('0' + state)};
    memcpy(head + 2, &len, sizeof len);
    relay_buf_append(&o->log, head, sizeof head);
    relay_buf_append(&o->log, data, len);
    o->in_text = 0;
  }
}

/* Feed text cut at the sorted cuts (ncuts == (size_t)-1: byte by byte). */
static void run(const relay_ruleset_t *rs, const char *t, size_t len, const size_t *cuts,
                size_t ncuts, out_t *o) {
  relay_replacer_t r;
  size_t maxp = relay_ruleset_max_pattern(rs);
  if (relay_replacer_init(&r, rs) != 0) abort();
  size_t prev = 0;
  int bytewise = ncuts == (size_t)-1;
  size_t steps = bytewise ? len : ncuts + 1;
  for (size_t k = 0; k < steps; k++) {
    size_t c = bytewise ? k + 1 : k < ncuts ? cuts[k] : len;
    if (relay_replacer_feed(&r, t + prev, c - prev, out_emit, o) != 0) abort();
    if (relay_replacer_pending(&r) >= maxp) abort();
    prev = c;
  }
  if (relay_replacer_finish(&r, out_emit, o) != 0) abort();
  if (relay_replacer_pending(&r) != 0) abort();
  relay_replacer_dispose(&r);
}

/* Naive leftmost-longest, first rule on a tie. */
static void reference(const relay_rule_t *rules, size_t nrules, const char *t, size_t len,
                      out_t *o) {
  unsigned st = 0;
  size_t from = 0, j = 0;
  while (j < len) {
    int best = -1;
    for (size_t k = 0; k < nrules; k++) {
      if (rules[k].from_state != st || rules[k].pattern_len > len - j) continue;
      if (memcmp(t + j, rules[k].pattern, rules[k].pattern_len) != 0) continue;
      if (best < 0 || rules[k].pattern_len > rules[best].pattern_len) best = (int)k;
    }
    if (best < 0) {
      j++;
      continue;
    }
    if (j > from) out_emit(o, RELAY_OUT_TEXT, st, t + from, j - from);
    out_emit(o, RELAY_OUT_REPLACEMENT, rules[best].to_state, rules[best].replacement,
             rules[best].replacement_len);
    st = rules[best].to_state;
    j += rules[best].pattern_len;
    from = j;
  }
  if (len > from) out_emit(o, RELAY_OUT_TEXT, st, t + from, len - from);
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

static int same(const out_t *a, const out_t *b) {
  return a->log.len == b->log.len && (a->log.len == 0 || !memcmp(a->log.data, b->log.data, a->log.len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static relay_ruleset_t *sets[2];
  if (!sets[0]) {
    if (relay_ruleset_new(&sets[0], harmony_rules, HARMONY_NRULES) != 0) abort();
    if (relay_ruleset_new(&sets[1], overlap_rules, sizeof overlap_rules / sizeof *overlap_rules))
      abort();
  }
  if (size < 1) return 0;
  int which = data[0] >> 7;
  size_t ncuts = data[0] & 15;
  if (size < 1 + 2 * ncuts) return 0;
  const uint8_t *raw = data + 1 + 2 * ncuts;
  size_t rawlen = size - 1 - 2 * ncuts;

  relay_buf_t text;
  relay_buf_init(&text);
  for (size_t i = 0; i < rawlen; i++) {
    if (raw[i] >= 0x80 && raw[i] < 0x80 + NFRAGS)
      relay_buf_append_str(&text, frags[raw[i] - 0x80]);
    else
      relay_buf_append(&text, &raw[i], 1);
  }
  const char *t = text.data ? text.data : "";
  size_t cuts[16];
  for (size_t k = 0; k < ncuts; k++)
    cuts[k] = (data[1 + 2 * k] | (size_t)data[2 + 2 * k] << 8) % (text.len + 1);
  qsort(cuts, ncuts, sizeof cuts[0], cmp_size);

  out_t whole = {0}, cut = {0}, bytes = {0}, ref = {0};
  run(sets[which], t, text.len, NULL, 0, &whole);
  run(sets[which], t, text.len, cuts, ncuts, &cut);
  run(sets[which], t, text.len, NULL, (size_t)-1, &bytes);
  if (which)
    reference(overlap_rules, sizeof overlap_rules / sizeof *overlap_rules, t, text.len, &ref);
  else
    reference(harmony_rules, HARMONY_NRULES, t, text.len, &ref);
  if (!same(&whole, &cut) || !same(&whole, &bytes) || !same(&whole, &ref)) abort();

  relay_buf_dispose(&whole.log);
  relay_buf_dispose(&cut.log);
  relay_buf_dispose(&bytes.log);
  relay_buf_dispose(&ref.log);
  relay_buf_dispose(&text);
  return 0;
}
