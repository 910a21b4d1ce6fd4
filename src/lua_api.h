/* Pieces of the `relay` Lua module that live in their own files. */
#ifndef RELAY_LUA_API_H
#define RELAY_LUA_API_H

#include <lua.h>
#include <uv.h>

struct relay_script_s;

struct relay_script_s *relay_lua_script(lua_State *L);
/* The script of the state, for a declaration: raises when the script is
 * already serving (a hook cannot re-declare routes or lift its own budget). */
struct relay_script_s *relay_lua_declaring(lua_State *L, const char *what);
/* Every call from C into a script's Lua state (and every C-side push that
 * may allocate around it) runs between begin and end: the call gets
 * script_timeout, the state stays under script_memory (see lua_api.c). */
void relay_lua_guard_begin(lua_State *L);
void relay_lua_guard_end(lua_State *L);
/* 1 right before the lua_pcall, 0 right after: only then is the memory
 * limit applied, so that an allocation the relay makes outside a protected
 * call (pushing an event, a body) never fails for it. */
void relay_lua_guard_call(lua_State *L, int in_pcall);
/* The message of a failed lua_pcall (rc its result) at the top of the stack,
 * converting nothing; memory errors name the limit. buf holds it when made. */
const char *relay_lua_error_text(lua_State *L, int rc, char *buf, size_t len);
/* route.c: relay.route, relay.on_request, routing at request time. */
void relay_lua_open_routes(lua_State *L);
void relay_lua_release_routes(struct relay_script_s *s);
/* lua_text.c: relay.rules, relay.replacer, relay.json (the C text core). */
void relay_lua_open_text(lua_State *L);
/* lua_hooks.c: relay.on_request. */
void relay_lua_open_hooks(lua_State *L);
struct relay_worker_s;
struct relay_exchange_s;
/* Response hooks of a rewrite route (see lua/API.md). Return -1 when the hook
 * failed (logged once per exchange); the caller keeps its own bytes. */
struct relay_buf_s;
int relay_lua_hook_text(struct relay_exchange_s *ex, int ref, long index, const char *kind, struct relay_buf_s *text);
int relay_lua_hook_event(struct relay_exchange_s *ex, int ref, struct relay_buf_s *data, const char *event_name,
                         size_t event_len, int *drop);
int relay_lua_hook_body(struct relay_exchange_s *ex, int ref, struct relay_buf_s *body);
void relay_lua_hook_end(struct relay_exchange_s *ex, int ref);
int relay_lua_call_on_request(struct relay_worker_s *w, struct relay_exchange_s *ex, int with_body,
                              char *err, size_t errlen);

#endif
