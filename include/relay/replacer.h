/* Streaming multi-pattern replacer: the heart of the chat rewrite.
 *
 * A rule set is a small state machine of (from_state, pattern, replacement,
 * to_state) rules, compiled once into one Aho-Corasick automaton per state and
 * shared read-only by any number of replacers (one per choice index).
 *
 * A replacer takes text in pieces of any size and emits output through a
 * callback as soon as it is settled: only the longest tail that is still a
 * prefix of a pattern active in the current state is held back. Among matches
 * the leftmost wins, then the longest; after a match the replacer moves to the
 * rule's to_state and keeps scanning there. Feeding a text one byte at a time
 * gives exactly the output of feeding it whole. Work per input byte is bounded
 * by a constant (the longest pattern), never by the length of the text.
 */
#ifndef RELAY_REPLACER_H
#define RELAY_REPLACER_H

#include <stddef.h>
#include <stdint.h>

#define RELAY_REPLACER_MAX_STATES 16
#define RELAY_REPLACER_MAX_RULES 64
#define RELAY_REPLACER_MAX_PATTERN 1024

/* Error codes: negative, with relay_replacer_strerror(). */
#define RELAY_REPLACER_EINVAL -1 /* bad rule: empty pattern, state out of range, too long */
#define RELAY_REPLACER_ENOMEM -2
#define RELAY_REPLACER_ETOOMANY -3 /* more rules than RELAY_REPLACER_MAX_RULES */

typedef struct relay_rule_s {
  unsigned from_state;
  const char *pattern;
  size_t pattern_len;
  const char *replacement;
  size_t replacement_len;
  unsigned to_state;
} relay_rule_t;

/* Compiled, immutable rule set; opaque. */
typedef struct relay_ruleset_s relay_ruleset_t;

/* What a piece of output is: plain text seen while in `state`, or the
 * replacement of a rule that fired (state is then that rule's to_state).
 * Output modes (tags / field / strip) are decided by the receiver from this. */
typedef enum { RELAY_OUT_TEXT = 0, RELAY_OUT_REPLACEMENT = 1 } relay_out_kind_t;

typedef void (*relay_replacer_emit_cb)(void *ud, relay_out_kind_t kind, unsigned state,
                                       const char *data, size_t len);

int relay_ruleset_new(relay_ruleset_t **out, const relay_rule_t *rules, size_t nrules);
void relay_ruleset_free(relay_ruleset_t *rs);
/* Reference counting so a rule set can outlive the script reload that made it. */
void relay_ruleset_ref(relay_ruleset_t *rs);
void relay_ruleset_unref(relay_ruleset_t *rs);
size_t relay_ruleset_max_pattern(const relay_ruleset_t *rs);
/* Number of states used by the rules (highest state index + 1). */
unsigned relay_ruleset_nstates(const relay_ruleset_t *rs);

typedef struct relay_replacer_s {
  const relay_ruleset_t *rs;
  unsigned state;      /* current state */
  uint32_t node;       /* automaton node in the current state's trie */
  /* Held-back bytes (never longer than the longest pattern). */
  char *held;
  size_t held_len;
  size_t held_cap;
  /* Best complete match among the held bytes, if any (-1 = none). */
  int cand_rule;
  size_t cand_start;
  uint64_t matches; /* rules fired so far, for logs and tests */
} relay_replacer_t;

int relay_replacer_init(relay_replacer_t *r, const relay_ruleset_t *rs);
/* Feed len bytes; settled output goes to emit. Returns 0 or a negative code. */
int relay_replacer_feed(relay_replacer_t *r, const char *data, size_t len,
                        relay_replacer_emit_cb emit, void *ud);
/* End of text: resolve and release everything held. The replacer can be fed
 * again afterwards (it keeps its state). */
int relay_replacer_finish(relay_replacer_t *r, relay_replacer_emit_cb emit, void *ud);
/* Bytes currently held back. */
size_t relay_replacer_pending(const relay_replacer_t *r);
void relay_replacer_close(relay_replacer_t *r);
const char *relay_replacer_strerror(int err);

#endif
