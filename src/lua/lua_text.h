/* The C text core exposed to Lua (relay.rules, relay.replacer, relay.json).
 * It needs only Lua and the text layer, so the LuaRocks package builds it
 * for plain Lua as well. */
#ifndef RELAY_LUA_TEXT_H
#define RELAY_LUA_TEXT_H

#include <lua.h>

#include "relay/reasoning.h"
#include "relay/replacer.h"

/* Adds rules, replacer and json to the module table on top of the stack. */
void relay_lua_open_text(lua_State *L);
relay_ruleset_t *relay_lua_check_ruleset(lua_State *L, int idx);
/* Reasoning states of the ruleset at rewrite table t (or of the rule set). */
unsigned relay_lua_reasoning_states(lua_State *L, int t, relay_ruleset_t *rs);

#endif
