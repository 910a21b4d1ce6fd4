/* The chat-completions rewrite, a response filter: each choice's text runs
 * through its own streaming replacer and the result is spliced back into
 * the upstream's JSON, every other byte as it came. Routes name it with
 * relay_chat_filter_type and a relay_chat_opts_t. */
#ifndef RELAY_FILTERS_CHAT_H
#define RELAY_FILTERS_CHAT_H

#include "filter.h"
#include "relay/buf.h"
#include "relay/reasoning.h"
#include "relay/replacer.h"

/* Room for a reasoning field's name. */
#define RELAY_CHAT_FIELD_MAX 32
/* Upstream members read as reasoning. */
#define RELAY_CHAT_IN_MAX 2
/* Longest tag. */
#define RELAY_CHAT_TAG_MAX 256

struct relay_exchange_s;
typedef struct relay_chat_opts_s relay_chat_opts_t;

/* A hook on each rewritten piece of text (a script's on_text): it may
 * replace text. Negative: the hook failed; it is not called again for the
 * response. */
typedef int (*relay_text_hook_fn)(const relay_chat_opts_t *o, struct relay_exchange_s *ex, long index,
                                  const char *kind, relay_buf_t *text);

/* What reads a choice's content text. */
typedef enum {
  RELAY_CHAT_RULES = 0, /* the rule set's replacer (none: the text passes unchanged) */
  RELAY_CHAT_HARMONY    /* the harmony parser: reasoning, answer and tool calls */
} relay_chat_parser_t;

/* How a response is rewritten; shared by the routes and exchanges that use
 * it, freed with its last reference. */
struct relay_chat_opts_s {
  unsigned refs;
  relay_chat_parser_t parser;
  relay_ruleset_t *rules; /* referenced; NULL: text passes unchanged (hooks still run) */
  relay_mode_t mode;
  unsigned reasoning_states; /* states whose text is reasoning; bit i = state i */
  char field[2][RELAY_CHAT_FIELD_MAX]; /* reasoning fields of field mode ("" = unused) */
  /* Members of the upstream's delta / message whose text is reasoning, the
   * same as reasoning found in content ("" = unused). */
  char in_field[RELAY_CHAT_IN_MAX][RELAY_CHAT_FIELD_MAX];
  /* The harmony parser's calls become tool_calls (else their text stays in content). */
  int tool_calls;
  /* Tags mode: what the filter writes around reasoning it finds itself (a
   * reasoning field, the harmony parser; the rules write their own). */
  char open_tag[RELAY_CHAT_TAG_MAX], close_tag[RELAY_CHAT_TAG_MAX];
  relay_text_hook_fn on_text;          /* or NULL */
  int on_text_ref;                     /* the script's function, for on_text */
  /* Called before the options are freed, to let go of what their maker
   * holds (the script's function references). */
  void (*on_dispose)(relay_chat_opts_t *o);
  void *owner;
};

extern const relay_filter_type_t relay_chat_filter_type;

/* New options with one reference: the rules parser with no rules, tags
 * mode, <think> and </think>, field "reasoning_content", no upstream
 * reasoning members, tool calls on. */
relay_chat_opts_t *relay_chat_opts_new(void);
void relay_chat_opts_ref(relay_chat_opts_t *o);
void relay_chat_opts_unref(relay_chat_opts_t *o);

#endif
