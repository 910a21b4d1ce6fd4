/* Output modes for reasoning text, shared by the chat filter and the Lua
 * replacer binding: where a piece of replacer output goes. */
#ifndef RELAY_REASONING_H
#define RELAY_REASONING_H

#include "relay/replacer.h"

/* tags: reasoning stays in content between the tags; field: it goes to its
 * own field(s) and the tags go; strip: it goes, tags and all. */
typedef enum { RELAY_MODE_TAGS = 0, RELAY_MODE_FIELD, RELAY_MODE_STRIP } relay_mode_t;

typedef enum { RELAY_SINK_CONTENT = 0, RELAY_SINK_REASONING, RELAY_SINK_DROP } relay_sink_t;

/* Where a piece of replacer output goes in each output mode: tags keeps
 * everything in content; field moves reasoning text to its own field and drops
 * the tags; strip drops reasoning text and tags. reasoning_states: bit i set
 * when state i's text is reasoning. */
static inline relay_sink_t relay_output_sink(relay_mode_t mode, unsigned reasoning_states, relay_out_kind_t kind,
                                             unsigned state) {
  if (mode == RELAY_MODE_TAGS) return RELAY_SINK_CONTENT;
  if (kind == RELAY_OUT_REPLACEMENT) return RELAY_SINK_DROP;
  if (reasoning_states & (1u << state)) return mode == RELAY_MODE_FIELD ? RELAY_SINK_REASONING : RELAY_SINK_DROP;
  return RELAY_SINK_CONTENT;
}

#endif
