/* The C text core exposed to Lua: rule sets, replacers and lossless JSON edits. */
#ifndef RELAY_LUA_TEXT_H
#define RELAY_LUA_TEXT_H

#include <lua.h>

#include "relay/replacer.h"
#include "script.h"

struct relay_worker_s;
struct relay_exchange_s;

relay_ruleset_t *relay_lua_check_ruleset(lua_State *L, int idx);
/* Reasoning states of the ruleset at rewrite table t (or of the rule set). */
unsigned relay_lua_reasoning_states(lua_State *L, int t, relay_ruleset_t *rs);
int relay_lua_read_chat_opts(lua_State *L, int t, relay_chat_opts_t *opts);
int relay_lua_route_request(struct relay_worker_s *w, struct relay_exchange_s *ex, char *err, size_t errlen);

typedef enum { RELAY_SINK_CONTENT = 0, RELAY_SINK_REASONING, RELAY_SINK_DROP } relay_sink_t;

/* Where a piece of replacer output goes in each output mode: tags keeps
 * everything in content; field moves reasoning text to its own field and drops
 * the tags; strip drops reasoning text and tags. */
static inline relay_sink_t relay_output_sink(relay_mode_t mode, unsigned reasoning_states,
                                             relay_out_kind_t kind, unsigned state) {
  if (mode == RELAY_MODE_TAGS) return RELAY_SINK_CONTENT;
  if (kind == RELAY_OUT_REPLACEMENT) return RELAY_SINK_DROP;
  if (reasoning_states & (1u << state))
    return mode == RELAY_MODE_FIELD ? RELAY_SINK_REASONING : RELAY_SINK_DROP;
  return RELAY_SINK_CONTENT;
}

#endif
