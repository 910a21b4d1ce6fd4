/* The `relay` C module for plain Lua 5.4 (the LuaRocks package).
 *
 * Inside the oss-relay binary, `relay` is built into the executable. This
 * module gives plain Lua the parts that make sense outside the proxy, with the
 * very same code: relay.rules, relay.replacer.new and relay.json.* come from
 * src/lua/text.c (compiled into this module unchanged), plus relay.getenv,
 * relay.log (to stderr) and relay.version. The declarations that configure a
 * running relay (listen, upstream, settings, route, on_request) raise an
 * error that says so.
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef RELAY_VERSION
#define RELAY_VERSION "0.1.0"
#endif

/* src/lua/text.c: adds rules, replacer and json to the table on top. */
void relay_lua_open_text(lua_State *L);

static int l_getenv(lua_State *L) {
  const char *v = getenv(luaL_checkstring(L, 1));
  if (v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

/* relay.log(level, message): one line on stderr, as the binary writes it.
 * RELAY_LOG_LEVEL (default info) filters, as LOG_LEVEL does in the relay. */
static int l_log(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  int lv = -1;
  for (int i = 0; levels[i]; i++)
    if (strcmp(levels[i], level) == 0) lv = i;
  if (lv < 0) return luaL_error(L, "unknown log level '%s'", level);
  int max = 2;
  const char *env = getenv("RELAY_LOG_LEVEL");
  if (env)
    for (int i = 0; levels[i]; i++)
      if (strcmp(levels[i], env) == 0) max = i;
  if (lv > max) return 0;
  char ts[32] = "";
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm)) strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  fprintf(stderr, "%s %s script: %s\n", ts, level, msg);
  return 0;
}

static int l_unavailable(lua_State *L) {
  return luaL_error(L, "relay.%s is only available in a script run by oss-relay",
                    lua_tostring(L, lua_upvalueindex(1)));
}

int luaopen_relay(lua_State *L) {
  static const luaL_Reg funcs[] = {{"getenv", l_getenv}, {"log", l_log}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  static const char *const server_only[] = {"listen", "upstream", "settings", "route", "on_request", NULL};
  for (int i = 0; server_only[i]; i++) {
    lua_pushstring(L, server_only[i]);
    lua_pushcclosure(L, l_unavailable, 1);
    lua_setfield(L, -2, server_only[i]);
  }
  lua_pushstring(L, RELAY_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "standalone"); /* absent inside the binary */
  relay_lua_open_text(L);
  return 1;
}
