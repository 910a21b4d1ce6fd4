/* Empty stand-in for <uv.h>, used only by the LuaRocks build.
 *
 * src/lua_text.c includes "lua_api.h", which includes <uv.h>, but uses
 * nothing from libuv; the rock compiles src/lua_text.c as it is, so that
 * plain Lua gets exactly the relay's relay.rules / relay.replacer / relay.json,
 * without making libuv a build dependency of the rock. Remove this file once
 * lua_text.c no longer includes lua_api.h. */
#ifndef RELAY_ROCK_COMPAT_UV_H
#define RELAY_ROCK_COMPAT_UV_H
#endif
