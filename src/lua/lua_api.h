/* What the files of the Lua layer share: the script of a state, the budget
 * of every call into it, the pieces of the `relay` module, and the hooks
 * the site and the filters call back through. */
#ifndef RELAY_LUA_API_H
#define RELAY_LUA_API_H

#include <lua.h>

#include "exchange.h"
#include "proxy.h"
#include "filter.h"
#include "lua_text.h"
#include "relay/replacer.h"
#include "script.h"

/* script.c */
relay_script_t *relay_lua__script(lua_State *L);
/* The script of the state, for a declaration: raises when the script is
 * already serving (a hook cannot re-declare routes or lift its own budget). */
relay_script_t *relay_lua__declaring(lua_State *L, const char *what);

/* guard.c: every call from C into a script's Lua state (and every C-side
 * push that may allocate around it) runs between begin and end: the call
 * gets script_timeout, the state stays under script_memory. */
void relay_lua__guard_init(relay_lua_guard_t *g, const relay_config_t *cfg);
/* A state whose allocator and count hook keep to g, with the standard
 * libraries less what could get around the budget. */
lua_State *relay_lua__guard_new_state(relay_lua_guard_t *g);
void relay_lua__guard_begin(lua_State *L);
/* Returns 1 when the call ran long enough to read the clock (the caller
 * brings its loop's cached time up to date). */
int relay_lua__guard_end(lua_State *L);
/* 1 right before the lua_pcall, 0 right after: only then is the memory
 * limit applied, so that an allocation the relay makes outside a protected
 * call (pushing an event, a body) never fails for it. */
void relay_lua__guard_call(lua_State *L, int in_pcall);
/* The message of a failed lua_pcall (rc its result) at the top of the stack,
 * converting nothing; memory errors name the limit. buf holds it when made. */
const char *relay_lua__error_text(lua_State *L, int rc, char *buf, size_t len);
/* A message handler that adds a traceback. */
int relay_lua__traceback(lua_State *L);

/* api.c: the module table, with every piece below installed. */
int relay_lua__open_module(lua_State *L);
/* Raises "<what> '<key>'" for the first key of the table at idx that is not
 * in known (NULL-terminated): a misspelt option is an error, never ignored. */
void relay_lua__check_keys(lua_State *L, int idx, const char *const *known, const char *what);
/* routes.c: relay.route. */
void relay_lua__open_routes(lua_State *L);
/* hooks.c: relay.on_request, and running a request hook for the core. */
void relay_lua__open_hooks(lua_State *L);
int relay_lua__run_request_hook(relay_site_t *site, relay_exchange_t *ex, int with_body, char *err, size_t errlen);
/* The exchange's context table (made on first use) on the stack. */
void relay_lua__push_ctx(lua_State *L, relay_exchange_t *ex);

/* routes.c: a rewrite = {...} table at t as the filters it asks for (the
 * chat rewrite, and the script's response hooks), each with one reference.
 * Raises on a bad table (nothing is held then). */
unsigned relay_lua__read_rewrite(lua_State *L, int t, relay_filter_spec_t *specs, unsigned max);
/* A front end reads what its route's filters write in one way: the chat
 * rewrite of such a route writes reasoning in field mode, to the member the
 * front end reads, whatever the rewrite table said. */
void relay_lua__frontend_rewrite(const relay_frontend_type_t *fe, relay_filter_spec_t *specs, unsigned n);

/* response_hooks.c: on_event, on_body and on_end of a rewrite, as a filter
 * and at the end of the exchange; on_text through the chat filter. */
typedef struct relay_lua_hooks_opts_s {
  unsigned refs;
  relay_script_t *script; /* whose state holds the functions; it outlives these options */
  int on_event_ref, on_body_ref, on_end_ref; /* registry references, or 0 */
} relay_lua_hooks_opts_t;

extern const relay_filter_type_t relay_lua__hooks_filter_type;
relay_lua_hooks_opts_t *relay_lua__hooks_opts_new(relay_script_t *s);
struct relay_chat_opts_s;
int relay_lua__text_hook(const struct relay_chat_opts_s *o, relay_exchange_t *ex, long index, const char *kind,
                        relay_buf_t *text);
void relay_lua__exchange_end(relay_site_t *site, relay_exchange_t *ex);

#endif
