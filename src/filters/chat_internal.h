/* The chat rewrite's state, private to src/filters: what chat.c (the
 * filter: attach, events and bodies, reading choices, output) and
 * chat_edit.c (the edits that splice a choice's new text into the upstream's
 * document) both need. The public contract is chat.h; no other layer
 * includes this header.
 *
 * The small helpers stay static inline: they run for every piece of output
 * on the path of every SSE event, in both files.
 */
#ifndef RELAY_FILTERS_CHAT_INTERNAL_H
#define RELAY_FILTERS_CHAT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chat.h"
#include "chat_delta.h"
#include "choices.h"
#include "relay/buf.h"
#include "relay/harmony.h"
#include "relay/json_splice.h"

typedef struct chat_choice_s {
  long index;
  int finished;
  union {
    relay_replacer_t r; /* RELAY_CHAT_RULES with rules */
    relay_harmony_t h;  /* RELAY_CHAT_HARMONY */
  } src;
  relay_delta_state_t st;
  int rules_in; /* the rules' replacer is in a reasoning state (for the stats) */
} chat_choice_t;

typedef struct chat_edit_s {
  size_t start, end;   /* bytes of the original replaced by the edit */
  size_t off, len;     /* the new bytes, in chat->edits_buf */
} chat_edit_t;

typedef struct relay_chat_s {
  relay_filter_t base;
  const relay_chat_opts_t *opts;
  relay_delta_cfg_t cfg;
  int sse;
  int text_hook_failed; /* the on_text hook failed once: not called again */
  chat_choice_t *choices; /* sorted by index, at most CHAT_MAX_CHOICES */
  size_t nchoices, cap;
  int capped_logged;
  int odd_logged; /* a reasoning member that is not a string was logged */
  /* The members the picker locates: the upstream's reasoning members and,
   * in field mode, the output fields (their text is joined, not doubled). */
  const char *keys[RELAY_CHAT_MAX_KEYS];
  size_t nkeys;
  unsigned key_in, key_out; /* bit k: keys[k] is read as reasoning / written */
  /* Scratch, reused for every event so the steady state does not allocate. */
  relay_buf_t decoded, text, out, edits_buf, payload;
  relay_delta_out_t o;
  chat_edit_t *edits;
  size_t nedits, edits_cap;
  relay_buf_t last_chunk; /* the last data payload, a template for flush events */
  int template_ok; /* last_chunk and found[0] describe a one-choice chunk ... */
  int vary;        /* ... whose only changing part is this string member */
  /* Choices of the current document; grown on demand (n is nearly always 1)
   * so that an idle stream stays small. */
  relay_chat_choice_t *found;
  size_t found_cap;
  /* The choice being run, for the parsers' callbacks. */
  chat_choice_t *cur;
  const char *cur_json;
  const relay_chat_choice_t *cur_f;
  int finishing; /* 0, 1 at the choice's finish_reason, 2 at the end of the stream */
  /* Tool call ids: unique per response, from a seed drawn at the first call. */
  uint64_t seed;
  int seeded;
  uint64_t ncalls;
  /* Output could not be made exactly (out of memory, or the client write
   * failed). A stream: nothing more goes out and the response is cut,
   * visibly. A JSON body: it goes out as it came. */
  int broken;
} relay_chat_t;

/* Appends that remember a failure: a builder runs to its end and its caller
 * looks at chat->broken once, instead of every call checking. */
static inline void chat_put(relay_chat_t *chat, relay_buf_t *b, const void *p, size_t n) {
  if (n && relay_buf_append(b, p, n)) chat->broken = 1;
}

static inline void chat_put_str(relay_chat_t *chat, relay_buf_t *b, const char *s) { chat_put(chat, b, s, strlen(s)); }

/* ---- edits of the document (chat_edit.c) ------------------------------- */

/* What a choice's container gets from the writer's output, besides what
 * replaces values in place: members it lacks. */
typedef struct chat_missing_s {
  int content;
  int field[2];
  int tool_calls;
} chat_missing_t;

static inline void edit_begin(relay_chat_t *chat) {
  chat->nedits = 0;
  relay_buf_reset(&chat->edits_buf);
}

/* The recorded edits applied to doc, into out (failures set chat->broken). */
void relay_chat__apply_edits(relay_chat_t *chat, const char *doc, size_t len, relay_buf_t *out);

/* The members a container lacks, comma-separated, in the order reasoning,
 * content, tool_calls. Returns how many were written. */
int relay_chat__put_members(relay_chat_t *chat, relay_buf_t *b, const chat_missing_t *m);

/* After run_choice, the edits that give the choice its new container:
 * values replaced, members removed, the missing ones inserted (into the
 * first removed member's place, else right after the '{'). */
void relay_chat__edit_choice(relay_chat_t *chat, const chat_choice_t *c, const relay_chat_choice_t *f,
                             const char *json);

#endif /* RELAY_FILTERS_CHAT_INTERNAL_H */
