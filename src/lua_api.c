/* The `relay` module that scripts see, and script loading. A script declares
 * the listener, named upstreams, settings and routes; the C core reads the
 * result from relay_script_t. Errors raised here name the caller's line. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedded_lua.h"
#include "log.h"
#include "lua_api.h"
#include "script.h"

#define RELAY_SCRIPT_KEY "relay.script"

relay_script_t *relay_lua_script(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RELAY_SCRIPT_KEY);
  relay_script_t *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

struct relay_script_s *relay_lua_declaring(lua_State *L, const char *what) {
  relay_script_t *s = relay_lua_script(L);
  if (s->serving) luaL_error(L, "%s can only be called while the script loads, not from a hook", what);
  return s;
}

/* ---- the budget of a Lua state ------------------------------------------
 *
 * A script is code the relay runs on its event loop: an endless loop in a
 * hook would stall every connection of the worker, and SIGTERM with them,
 * and a growing table would take the host's memory. So each state gets an
 * allocator that counts its bytes against script_memory, and a count hook
 * that every RELAY_GUARD_COUNT instructions compares the time of the call in
 * progress with script_timeout. Past it the hook raises an error; pcall may
 * catch that, so from then on the hook runs at every instruction and raises
 * again, until control is back in C (relay_lua_guard_end). The hook is set
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

void relay_lua_guard_begin(lua_State *L) {
  relay_lua_guard_t *g = guard_of(L);
  g->start_ns = 0;
  g->expired = 0;
  g->over = 0;
}

void relay_lua_guard_call(lua_State *L, int in_pcall) { guard_of(L)->enforce = in_pcall; }

void relay_lua_guard_end(lua_State *L) {
  relay_lua_guard_t *g = guard_of(L);
  g->start_ns = 0;
  if (g->expired) {
    g->expired = 0;
    lua_sethook(g->main, guard_hook, LUA_MASKCOUNT, RELAY_GUARD_COUNT);
  }
}

/* The message of a failed lua_pcall, without converting anything (a number
 * converted to a string allocates, and the state may be at its limit). */
const char *relay_lua_error_text(lua_State *L, int rc, char *buf, size_t len) {
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

static void guard_init(relay_lua_guard_t *g, const relay_config_t *cfg) {
  memset(g, 0, sizeof *g);
  g->limit = cfg->script_memory;
  g->timeout_ns = (uint64_t)cfg->script_timeout_ms * 1000000u;
}

/* Reads an optional integer field within [lo, hi]; raises a clear error. */
static lua_Integer opt_int_field(lua_State *L, int t, const char *key, lua_Integer def,
                                 lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, t, key);
  lua_Integer v = def;
  if (!lua_isnil(L, -1)) {
    int ok;
    v = lua_tointegerx(L, -1, &ok);
    if (!ok || v < lo || v > hi)
      luaL_error(L, "%s must be an integer from %I to %I", key, (LUAI_UACINT)lo, (LUAI_UACINT)hi);
  }
  lua_pop(L, 1);
  return v;
}

static const char *opt_str_field(lua_State *L, int t, const char *key, const char *def) {
  lua_getfield(L, t, key);
  const char *v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s must be a string", key);
    v = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return v; /* still referenced by the table */
}

/* Seconds (may be fractional) to milliseconds; negative is an error. */
static unsigned long opt_seconds_field(lua_State *L, int t, const char *key, unsigned long def_ms) {
  lua_getfield(L, t, key);
  unsigned long v = def_ms;
  if (!lua_isnil(L, -1)) {
    int ok;
    lua_Number n = lua_tonumberx(L, -1, &ok);
    if (!ok || n < 0 || n > 86400.0 * 365) luaL_error(L, "%s must be a number of seconds >= 0", key);
    v = (unsigned long)(n * 1000.0 + 0.5);
  }
  lua_pop(L, 1);
  return v;
}

static void copy_bounded(lua_State *L, char *dst, size_t cap, const char *src, const char *what) {
  size_t n = strlen(src);
  if (n == 0 || n >= cap) luaL_error(L, "%s must be 1 to %d characters", what, (int)cap - 1);
  memcpy(dst, src, n + 1);
}

/* relay.listen{addr = "0.0.0.0", port = 8080} */
static int l_listen(lua_State *L) {
  relay_script_t *s = relay_lua_declaring(L, "relay.listen");
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *addr = opt_str_field(L, 1, "addr", s->cfg.listen_addr);
  char tmp[RELAY_HOST_MAX];
  copy_bounded(L, tmp, sizeof tmp, addr, "listen addr");
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(tmp, 0, &a4) != 0 && uv_ip6_addr(tmp, 0, &a6) != 0)
    return luaL_error(L, "listen addr '%s' is not an IPv4 or IPv6 address", tmp);
  strcpy(s->cfg.listen_addr, tmp);
  s->cfg.listen_port = (int)opt_int_field(L, 1, "port", s->cfg.listen_port, 1, 65535);
  return 0;
}

/* relay.upstream{name = "default", host = "127.0.0.1", port = 1234}: returns the name. */
static int l_upstream(lua_State *L) {
  relay_script_t *s = relay_lua_declaring(L, "relay.upstream");
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *name = opt_str_field(L, 1, "name", "default");
  const char *host = opt_str_field(L, 1, "host", NULL);
  if (!host) return luaL_error(L, "upstream '%s' needs a host", name);
  lua_getfield(L, 1, "port");
  if (lua_isnil(L, -1)) return luaL_error(L, "upstream '%s' needs a port", name);
  lua_pop(L, 1);
  int port = (int)opt_int_field(L, 1, "port", 0, 1, 65535);
  int idx = relay_config_find_upstream(&s->cfg, name);
  if (idx < 0) {
    if (s->cfg.nupstreams == RELAY_MAX_UPSTREAMS)
      return luaL_error(L, "too many upstreams (at most %d)", RELAY_MAX_UPSTREAMS);
    idx = (int)s->cfg.nupstreams++;
  }
  relay_upstream_cfg_t *u = &s->cfg.upstreams[idx];
  copy_bounded(L, u->name, sizeof u->name, name, "upstream name");
  copy_bounded(L, u->host, sizeof u->host, host, "upstream host");
  if (u->host[0] == '[') { /* accept "[::1]" as well as "::1" */
    size_t n = strlen(u->host);
    if (u->host[n - 1] != ']') return luaL_error(L, "upstream host '%s' is malformed", host);
    memmove(u->host, u->host + 1, n - 2);
    u->host[n - 2] = 0;
  }
  u->port = port;
  if (port == 80) snprintf(u->host_field, sizeof u->host_field, strchr(u->host, ':') ? "[%s]" : "%s", u->host);
  else snprintf(u->host_field, sizeof u->host_field, strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host, port);
  lua_pushstring(L, u->name);
  return 1;
}

/* relay.settings{connect_timeout = 10, ...}: timeouts in seconds. */
static int l_settings(lua_State *L) {
  relay_script_t *s = relay_lua_declaring(L, "relay.settings");
  relay_config_t *c = &s->cfg;
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const known[] = {"connect_timeout", "header_timeout", "idle_timeout", "body_timeout",
                                      "send_timeout",
                                      "keepalive_timeout", "shutdown_timeout", "max_header_size",
                                      "max_body_buffer", "workers", "log_level", "script_timeout",
                                      "script_memory", NULL};
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = known; *k; k++) ok |= strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!ok) return luaL_error(L, "unknown setting '%s'", luaL_tolstring(L, -1, NULL));
  }
  c->connect_timeout_ms = opt_seconds_field(L, 1, "connect_timeout", c->connect_timeout_ms);
  c->header_timeout_ms = opt_seconds_field(L, 1, "header_timeout", c->header_timeout_ms);
  c->idle_timeout_ms = opt_seconds_field(L, 1, "idle_timeout", c->idle_timeout_ms);
  c->body_timeout_ms = opt_seconds_field(L, 1, "body_timeout", c->body_timeout_ms);
  c->send_timeout_ms = opt_seconds_field(L, 1, "send_timeout", c->send_timeout_ms);
  c->keepalive_timeout_ms = opt_seconds_field(L, 1, "keepalive_timeout", c->keepalive_timeout_ms);
  c->shutdown_timeout_ms = opt_seconds_field(L, 1, "shutdown_timeout", c->shutdown_timeout_ms);
  c->max_header_size = (size_t)opt_int_field(L, 1, "max_header_size", (lua_Integer)c->max_header_size,
                                             1024, 16 * 1024 * 1024);
  c->max_body_buffer = (size_t)opt_int_field(L, 1, "max_body_buffer", (lua_Integer)c->max_body_buffer,
                                             1024, (lua_Integer)1 << 32);
  c->workers = (int)opt_int_field(L, 1, "workers", c->workers, 0, 256);
  lua_getfield(L, 1, "script_timeout");
  if (!lua_isnil(L, -1)) {
    int ok;
    lua_Number n = lua_tonumberx(L, -1, &ok);
    if (!ok || !(n >= 0.001 && n <= 3600)) return luaL_error(L, "script_timeout must be a number of seconds from 0.001 to 3600");
    c->script_timeout_ms = (unsigned long)(n * 1000.0 + 0.5);
  }
  lua_pop(L, 1);
  c->script_memory = (size_t)opt_int_field(L, 1, "script_memory", (lua_Integer)c->script_memory,
                                           1024 * 1024, (lua_Integer)1 << 40);
  /* They apply to this state at once (the rest of the load included). */
  s->guard.limit = c->script_memory;
  s->guard.timeout_ns = (uint64_t)c->script_timeout_ms * 1000000u;
  const char *level = opt_str_field(L, 1, "log_level", NULL);
  if (level) {
    relay_log_level_t lv;
    if (relay_log_parse_level(level, &lv))
      return luaL_error(L, "log_level '%s' is not one of error, warn, info, debug", level);
    s->log_level = (int)lv;
  }
  return 0;
}

/* relay.log(level, message) */
static int l_log(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *msg = luaL_checkstring(L, 2);
  relay_log_level_t lv;
  if (relay_log_parse_level(level, &lv)) return luaL_error(L, "unknown log level '%s'", level);
  relay_log(lv, "script: %s", msg);
  return 0;
}

static int l_getenv(lua_State *L) {
  const char *v = getenv(luaL_checkstring(L, 1));
  if (v) lua_pushstring(L, v);
  else lua_pushnil(L);
  return 1;
}

static const luaL_Reg relay_funcs[] = {
    {"listen", l_listen}, {"upstream", l_upstream}, {"settings", l_settings},
    {"log", l_log},       {"getenv", l_getenv},     {NULL, NULL}};

static int luaopen_relay(lua_State *L) {
  luaL_newlib(L, relay_funcs);
  lua_pushstring(L, RELAY_VERSION);
  lua_setfield(L, -2, "version");
  relay_lua_open_routes(L);
  relay_lua_open_text(L);
  relay_lua_open_hooks(L);
  return 1;
}

/* package.preload entries for every module compiled into the binary. */
static int embedded_loader(lua_State *L) {
  const relay_embedded_module_t *m = lua_touserdata(L, lua_upvalueindex(1));
  if (luaL_loadbufferx(L, m->source, m->len, m->chunkname, "t") != LUA_OK) return lua_error(L);
  lua_pushstring(L, m->name);
  lua_call(L, 1, 1);
  return 1;
}

static void install_modules(lua_State *L) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_relay);
  lua_setfield(L, -2, "relay");
  for (const relay_embedded_module_t *m = relay_embedded_modules; m->name; m++) {
    lua_pushlightuserdata(L, (void *)m);
    lua_pushcclosure(L, embedded_loader, 1);
    lua_setfield(L, -2, m->name);
  }
  lua_pop(L, 2);
}

static const relay_embedded_module_t *find_embedded(const char *name) {
  for (const relay_embedded_module_t *m = relay_embedded_modules; m->name; m++)
    if (strcmp(m->name, name) == 0) return m;
  return NULL;
}

static int traceback_handler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_tolstring(L, 1, NULL);
  lua_pushstring(L, msg);
  return 1;
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

static lua_State *new_state(relay_script_t *s) {
  guard_init(&s->guard, &s->cfg);
  lua_State *L = lua_newstate(guard_alloc, &s->guard);
  if (!L) return NULL;
  s->guard.main = L;
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
  lua_pushlightuserdata(L, s);
  lua_setfield(L, LUA_REGISTRYINDEX, RELAY_SCRIPT_KEY);
  install_modules(L);
  return L;
}

/* Lua shortens long chunk names to ".../tail"; a load error must name the
 * script's whole path so that "file:line: message" points at the file. */
static void set_err(char *err, size_t errlen, lua_State *L, int rc, const char *path) {
  char buf[256];
  const char *msg = relay_lua_error_text(L, rc, buf, sizeof buf);
  if (rc == LUA_ERRMEM && path && msg == buf) { /* Lua gives no position for memory errors */
    snprintf(err, errlen, "%s: %s", path, msg);
    return;
  }
  if (path && strncmp(msg, "...", 3) == 0) {
    const char *colon = strchr(msg + 3, ':');
    size_t tail = colon ? (size_t)(colon - (msg + 3)) : 0;
    size_t plen = strlen(path);
    if (colon && tail <= plen && memcmp(path + plen - tail, msg + 3, tail) == 0) {
      snprintf(err, errlen, "%s%s", path, colon);
      return;
    }
  }
  snprintf(err, errlen, "%s", msg);
}

int relay_script_load(relay_script_t *s, const char *path, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  relay_config_defaults(&s->cfg);
  s->on_request_ref = LUA_NOREF;
  s->log_level = -1;
  snprintf(s->path, sizeof s->path, "%s", path ? path : "");
  lua_State *L = new_state(s);
  if (!L) {
    snprintf(err, errlen, "cannot create a Lua state");
    return -1;
  }
  s->L = L;
  lua_pushcfunction(L, traceback_handler);
  int rc;
  if (path) {
    rc = luaL_loadfilex(L, path, "t");
  } else {
    const relay_embedded_module_t *m = find_embedded("relay.default");
    rc = m ? luaL_loadbufferx(L, m->source, m->len, m->chunkname, "t") : LUA_ERRFILE;
    if (!m) lua_pushstring(L, "stock script missing from the binary");
  }
  if (rc == LUA_OK) {
    s->guard.loading = 1;
    relay_lua_guard_begin(L);
    relay_lua_guard_call(L, 1);
    rc = lua_pcall(L, 0, 0, -2);
    relay_lua_guard_call(L, 0);
    relay_lua_guard_end(L);
    s->guard.loading = 0;
  }
  if (rc != LUA_OK) {
    set_err(err, errlen, L, rc, path);
    relay_script_close(s);
    return -1;
  }
  lua_settop(L, 0);
  s->serving = 1;
  if (s->cfg.nupstreams == 0) {
    snprintf(err, errlen, "%s: the script declares no upstream (relay.upstream{...})",
             path ? path : "stock script");
    relay_script_close(s);
    return -1;
  }
  return 0;
}

void relay_script_close(relay_script_t *s) {
  relay_lua_release_routes(s);
  if (s->L) {
    relay_lua_guard_begin(s->L); /* lua_close runs the script's finalizers */
    lua_close(s->L);
  }
  s->L = NULL;
}

int relay_script_run_file(const char *path, char *err, size_t errlen) {
  relay_script_t *s = calloc(1, sizeof *s);
  if (!s) return -1;
  relay_config_defaults(&s->cfg);
  s->on_request_ref = LUA_NOREF;
  lua_State *L = new_state(s);
  if (!L) {
    free(s);
    snprintf(err, errlen, "cannot create a Lua state");
    return -1;
  }
  s->L = L;
  s->guard.untimed = 1; /* tests and tools: a memory limit, no time budget */
  lua_pushcfunction(L, traceback_handler);
  int rc = luaL_loadfilex(L, path, "t");
  if (rc == LUA_OK) {
    relay_lua_guard_call(L, 1);
    rc = lua_pcall(L, 0, 0, -2);
    relay_lua_guard_call(L, 0);
  }
  if (rc != LUA_OK) set_err(err, errlen, L, rc, path);
  relay_script_close(s);
  free(s);
  return rc == LUA_OK ? 0 : -1;
}

relay_script_t *relay_script_new(const char *path, char *err, size_t errlen) {
  relay_script_t *s = malloc(sizeof *s);
  if (!s) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  if (relay_script_load(s, path, err, errlen) != 0) {
    free(s);
    return NULL;
  }
  s->refs = 1;
  return s;
}

void relay_script_ref(relay_script_t *s) { s->refs++; }

void relay_script_unref(relay_script_t *s) {
  if (!s || --s->refs > 0) return;
  relay_script_close(s);
  free(s);
}
