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
 * rule's to_state and keeps scanning there (the replacement itself is output,
 * never scanned). Feeding a text one byte at a time gives exactly the same
 * output as feeding it whole (the split into callback calls may differ).
 * Work per input byte is bounded by a constant (the longest pattern), never by
 * the length of the text, and feeding never allocates.
 *
 * Patterns are plain bytes: UTF-8 patterns work, and a multi-byte character may
 * be cut anywhere between pieces.
 */
#ifndef RELAY_REPLACER_H
#define RELAY_REPLACER_H

#include <stddef.h>

#include "relay/error.h"
#include <stdint.h>

#define RELAY_REPLACER_MAX_STATES 16
#define RELAY_REPLACER_MAX_RULES 64
#define RELAY_REPLACER_MAX_PATTERN 1024

/* Errors (relay/error.h): RELAY_EINVAL for a bad rule (empty pattern, state out
 * of range, pattern too long), RELAY_ENOMEM, RELAY_ETOOMANY (more rules than
 * RELAY_REPLACER_MAX_RULES). */

/* One rule. pattern: 1..RELAY_REPLACER_MAX_PATTERN bytes; replacement: any
 * length, may be empty (replacement may be NULL when replacement_len is 0);
 * from_state and to_state < RELAY_REPLACER_MAX_STATES. The strings are copied,
 * so they need not outlive relay_ruleset_new(). If the same pattern appears in
 * two rules of one state, the first of them wins and the later is ignored. */
typedef struct relay_rule_s {
  unsigned from_state;
  const char *pattern;
  size_t pattern_len;
  const char *replacement;
  size_t replacement_len;
  unsigned to_state;
  /* Anchored: the pattern only matches where the replacer entered from_state
   * (the start of the text, or right after the match that led there). A
   * state's rules are either all anchored or none; once no anchored pattern
   * can match any more, the state passes text through unchanged until it is
   * left and entered again. */
  int anchored;
} relay_rule_t;

/* Compiled, immutable rule set; opaque. Its reference count is atomic, so one
 * rule set may be shared by replacers on several threads. */
typedef struct relay_ruleset_s relay_ruleset_t;

/* What a piece of output is: plain text seen while in `state`, or the
 * replacement of a rule that fired (state is then that rule's to_state).
 * Output modes (tags / field / strip) are decided by the receiver from this. */
typedef enum { RELAY_OUT_TEXT = 0, RELAY_OUT_REPLACEMENT = 1 } relay_out_kind_t;

/* Called in output order. RELAY_OUT_TEXT: len > 0 always; data points into
 * the caller's fed buffer or the replacer's hold buffer, valid only during the
 * call. A settled run of text comes in one call where it is contiguous (at most
 * one call for the held bytes plus one for the new piece, and usually one).
 * RELAY_OUT_REPLACEMENT: exactly once per fired rule, even when the
 * replacement is empty (len 0, data non-NULL), so every state change is seen;
 * data points into the rule set. The callback must not feed, finish or close
 * the replacer that called it. */
typedef void (*relay_replacer_emit_cb)(void *ud, relay_out_kind_t kind, unsigned state,
                                       const char *data, size_t len);

/* Compile nrules rules (0 is allowed: a pass-through set). *out gets a rule set
 * with reference count 1. Returns 0, RELAY_EINVAL,
 * RELAY_ETOOMANY or RELAY_ENOMEM. */
int relay_ruleset_new(relay_ruleset_t **out, const relay_rule_t *rules, size_t nrules);
/* Reference counting so a rule set can outlive the script reload that made it. */
void relay_ruleset_ref(relay_ruleset_t *rs);
void relay_ruleset_unref(relay_ruleset_t *rs);
size_t relay_ruleset_max_pattern(const relay_ruleset_t *rs);
/* Text emitted once, as a REPLACEMENT in state 0, right before a replacer's
 * first output (for templates that open the reasoning block themselves, so
 * the model's output starts inside it). Set before the rule set is shared. */
int relay_ruleset_set_prefix(relay_ruleset_t *rs, const char *prefix, size_t len);
/* Number of states used by the rules (highest state index + 1; 1 with no rules). */
unsigned relay_ruleset_nstates(const relay_ruleset_t *rs);

/* One text stream. Fields are private; read them only through the functions
 * below (state and matches may be read directly for logs). */
typedef struct relay_replacer_s {
  const relay_ruleset_t *rs; /* referenced by init, released by close */
  unsigned state;            /* current state; starts at 0 */
  uint32_t node;             /* automaton node in the current state's table, as
                                a row offset (node index * 256) */
  /* Held-back bytes: the live pattern prefix (shorter than the longest
   * pattern); the buffer has some spare room to join small runs of text. */
  char *held;
  size_t held_len;
  size_t held_cap;
  /* Best complete match among the held bytes, if any (-1 = none); cand_start
   * is an offset into held. */
  int cand_rule;
  size_t cand_start;
  uint64_t matches; /* rules fired so far, for logs and tests */
  /* Anchored states: where the state was entered (an offset into held), and
   * whether its patterns were ruled out there. */
  size_t entry;
  int anchor_dead;
  int started; /* something was emitted (the prefix goes before it) */
} relay_replacer_t;

/* Start in state 0 with nothing held. Takes a reference on rs (the caller may
 * drop its own). Returns 0, RELAY_EINVAL or RELAY_ENOMEM. */
int relay_replacer_init(relay_replacer_t *r, const relay_ruleset_t *rs);
/* Feed len bytes; settled output goes to emit before this returns. Returns 0,
 * or RELAY_EINVAL for a closed replacer or NULL data with len > 0. */
int relay_replacer_feed(relay_replacer_t *r, const char *data, size_t len,
                        relay_replacer_emit_cb emit, void *ud);
/* End of text: resolve and release everything held. The replacer can be fed
 * again afterwards (it keeps its state). Returns 0 or RELAY_EINVAL. */
int relay_replacer_finish(relay_replacer_t *r, relay_replacer_emit_cb emit, void *ud);
/* Bytes currently held back (always less than the longest pattern). */
size_t relay_replacer_pending(const relay_replacer_t *r);
/* Free the hold buffer and drop the rule set reference; safe to call twice. */
void relay_replacer_dispose(relay_replacer_t *r);

#endif
