/* The budget of a Lua state: time per call and memory per state, and the
 * library functions that could get around them. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lua_api.h"
#include "script.h"

/* ---- the budget of a Lua state ------------------------------------------
 *
 * A script is code the relay runs on its event loop: an endless loop in a
 * hook would stall every connection of the worker, and SIGTERM with them,
 * and a growing table would take the host's memory. So each state gets an
 * allocator that counts its bytes against script_memory, and a count hook
 * that every RELAY_GUARD_COUNT instructions compares the time of the call in
 * progress with script_timeout. Past it the hook raises an error; pcall may
 * catch that, so from then on the hook runs at every instruction and raises
 * again, until control is back in C (relay_lua__guard_end). The hook is set
 * on the main thread for good (coroutines inherit it when created); it costs
 * only while Lua runs, and routes without hooks run no Lua at all.
 * Standard-library C functions (a backtracking string.find) run to their
 * end between two checks. */
#define RELAY_GUARD_COUNT 1000

static relay_lua_guard_t *guard_of(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/* Shrinking never fails (Lua relies on that); growth past the limit does,
 * inside a protected call, after which Lua collects garbage once and
 * retries, then raises "not enough memory". */
static void *guard_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  relay_lua_guard_t *g = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    g->used -= old;
    return NULL;
  }
  if (g->enforce && nsize > old && nsize - old > (g->limit > g->used ? g->limit - g->used : 0)) {
    g->over = 1;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (p) g->used = g->used - old + nsize;
  return p;
}

static uint64_t guard_budget_ns(const relay_lua_guard_t *g) {
  return g->loading ? 10 * g->timeout_ns : g->timeout_ns;
}

/* The error a call past its budget gets, naming the line it was running. */
static int guard_raise(lua_State *L, relay_lua_guard_t *g) {
  lua_Debug ar;
  char where[256] = "";
  if (lua_getstack(L, 0, &ar) && lua_getinfo(L, "Sl", &ar) && ar.currentline > 0)
    snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.currentline);
  char msg[512];
  double t = (double)g->timeout_ns / 1e9;
  if (g->loading)
    snprintf(msg, sizeof msg, "%sthe script ran past its time budget at load (%g s, 10 x script_timeout)", where,
             10 * t);
  else
    snprintf(msg, sizeof msg, "%sthe script ran past its time budget (script_timeout = %g s)", where, t);
  lua_pushstring(L, msg);
  return lua_error(L);
}

static void guard_hook(lua_State *L, lua_Debug *ar) {
  relay_lua_guard_t *g = guard_of(L);
  if (g->expired) {
    guard_raise(L, g);
    return;
  }
  /* A coroutine made while the budget was spent still fires every instruction. */
  if (lua_gethookcount(L) != RELAY_GUARD_COUNT) lua_sethook(L, guard_hook, LUA_MASKCOUNT, RELAY_GUARD_COUNT);
  if (g->untimed) return;
  uint64_t now = uv_hrtime();
  if (!g->start_ns) {
    /* The clock starts at the call's first check: a call shorter than
     * RELAY_GUARD_COUNT instructions (a no-op hook) never reads it. */
    g->start_ns = now;
    return;
  }
  if (now - g->start_ns < guard_budget_ns(g)) return;
  g->expired = 1;
  lua_sethook(L, guard_hook, LUA_MASKCOUNT, 1);
  if (L != g->main) lua_sethook(g->main, guard_hook, LUA_MASKCOUNT, 1);
  guard_raise(L, g);
}

void relay_lua__guard_begin(lua_State *L) {
  relay_lua_guard_t *g = guard_of(L);
  g->start_ns = 0;
  g->expired = 0;
  g->over = 0;
}

void relay_lua__guard_call(lua_State *L, int in_pcall) { guard_of(L)->enforce = in_pcall; }

int relay_lua__guard_end(lua_State *L) {
  relay_lua_guard_t *g = guard_of(L);
  int long_call = g->start_ns != 0;
  g->start_ns = 0;
  if (g->expired) {
    g->expired = 0;
    lua_sethook(g->main, guard_hook, LUA_MASKCOUNT, RELAY_GUARD_COUNT);
  }
  return long_call;
}

/* The message of a failed lua_pcall, without converting anything (a number
 * converted to a string allocates, and the state may be at its limit). */
const char *relay_lua__error_text(lua_State *L, int rc, char *buf, size_t len) {
  relay_lua_guard_t *g = guard_of(L);
  if (rc == LUA_ERRMEM && g->over) {
    snprintf(buf, len, "not enough memory: the script's state reached script_memory (%zu bytes)", g->limit);
    return buf;
  }
  if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    snprintf(buf, len, LUA_NUMBER_FMT, (LUAI_UACNUMBER)lua_tonumber(L, -1));
    return buf;
  }
  snprintf(buf, len, "(error object is a %s value)", luaL_typename(L, -1));
  return buf;
}

/* Whether the table at idx has a __gc field of its own (raw). */
static int has_raw_gc(lua_State *L, int idx) {
  lua_pushliteral(L, "__gc");
  int t = lua_rawget(L, idx);
  lua_pop(L, 1);
  return t != LUA_TNIL;
}

/* debug.sethook would let a script take the budget's hook off. */
static int l_no_sethook(lua_State *L) {
  return luaL_error(L, "debug.sethook is not available in oss-relay (the relay's script budget uses the hook)");
}

/* Lua runs __gc metamethods with hooks off, so a finalizer that loops could
 * not be stopped: scripts may not give tables one. The check is the one Lua
 * makes itself (a raw __gc field when the metatable is set). */
static int l_setmetatable_no_gc(lua_State *L) {
  if (lua_type(L, 2) == LUA_TTABLE && has_raw_gc(L, 2))
    return luaL_error(L, "__gc metamethods are not available in oss-relay scripts (finalizers run outside the "
                         "script's time budget)");
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
  return lua_gettop(L);
}

static void wrap_setmetatable(lua_State *L, const char *lib, const char *name) {
  if (lib) lua_getglobal(L, lib);
  else lua_pushglobaltable(L);
  lua_getfield(L, -1, name);
  lua_pushcclosure(L, l_setmetatable_no_gc, 1);
  lua_setfield(L, -2, name);
  lua_pop(L, 1);
}

/* An error the budget's hook raises reaches xpcall's message handler while
 * Lua still has hooks off (it is called from inside the hook): a handler that
 * looped could not be stopped. Past the budget the script's handler is
 * skipped and the error goes on as it is. */
static int xpcall_handler(lua_State *L) {
  if (guard_of(L)->expired) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext ctx) { return lua_gettop(L); }

static int l_xpcall_guarded(lua_State *L) {
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, xpcall_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, xpcall_done); /* f may yield */
  return lua_gettop(L);
}

void relay_lua__guard_init(relay_lua_guard_t *g, const relay_config_t *cfg) {
  memset(g, 0, sizeof *g);
  g->limit = cfg->script_memory;
  g->timeout_ns = (uint64_t)cfg->script_timeout_ms * 1000000u;
}

lua_State *relay_lua__guard_new_state(relay_lua_guard_t *g) {
  lua_State *L = lua_newstate(guard_alloc, g);
  if (!L) return NULL;
  g->main = L;
  lua_sethook(L, guard_hook, LUA_MASKCOUNT, RELAY_GUARD_COUNT);
  luaL_openlibs(L);
  lua_getglobal(L, "debug");
  lua_pushcfunction(L, l_no_sethook);
  lua_setfield(L, -2, "sethook");
  lua_pop(L, 1);
  lua_getglobal(L, "xpcall");
  lua_pushcclosure(L, l_xpcall_guarded, 1);
  lua_setglobal(L, "xpcall");
  wrap_setmetatable(L, NULL, "setmetatable");
  wrap_setmetatable(L, "debug", "setmetatable");
  return L;
}
