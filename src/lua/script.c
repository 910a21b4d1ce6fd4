/* Script loading: a Lua state with its budget, the `relay` module and the
 * Lua modules compiled into the binary; the site the script declares, and
 * the site operations the core calls back through. */
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

relay_script_t *relay_lua__script(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, RELAY_SCRIPT_KEY);
  relay_script_t *s = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return s;
}

struct relay_script_s *relay_lua__declaring(lua_State *L, const char *what) {
  relay_script_t *s = relay_lua__script(L);
  if (s->serving) luaL_error(L, "%s can only be called while the script loads, not from a hook", what);
  return s;
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
  lua_pushcfunction(L, relay_lua__open_module);
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

static lua_State *new_state(relay_script_t *s) {
  relay_lua__guard_init(&s->guard, &s->site.cfg);
  lua_State *L = relay_lua__guard_new_state(&s->guard);
  if (!L) return NULL;
  lua_pushlightuserdata(L, s);
  lua_setfield(L, LUA_REGISTRYINDEX, RELAY_SCRIPT_KEY);
  install_modules(L);
  return L;
}

/* Lua shortens long chunk names to ".../tail"; a load error must name the
 * script's whole path so that "file:line: message" points at the file. */
static void set_err(char *err, size_t errlen, lua_State *L, int rc, const char *path) {
  char buf[256];
  const char *msg = relay_lua__error_text(L, rc, buf, sizeof buf);
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

static void script_site_dispose(relay_site_t *site);

static const relay_site_ops_t script_site_ops = {relay_lua__run_request_hook, relay_lua__exchange_end,
                                                 script_site_dispose};

int relay_script_load(relay_script_t *s, const char *path, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  relay_site_init(&s->site, &script_site_ops);
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
    relay_lua__guard_begin(L);
    relay_lua__guard_call(L, 1);
    rc = lua_pcall(L, 0, 0, -2);
    relay_lua__guard_call(L, 0);
    relay_lua__guard_end(L);
    s->guard.loading = 0;
  }
  if (rc != LUA_OK) {
    set_err(err, errlen, L, rc, path);
    relay_script_dispose(s);
    return -1;
  }
  lua_settop(L, 0);
  s->serving = 1;
  if (s->site.cfg.nupstreams == 0) {
    snprintf(err, errlen, "%s: the script declares no upstream (relay.upstream{...})",
             path ? path : "stock script");
    relay_script_dispose(s);
    return -1;
  }
  return 0;
}

/* The routes' filter options go first: letting go of them drops the
 * script's function references, which needs the state. */
void relay_script_dispose(relay_script_t *s) {
  relay_site_release_routes(&s->site);
  if (s->L) {
    relay_lua__guard_begin(s->L); /* lua_close runs the script's finalizers */
    lua_close(s->L);
  }
  s->L = NULL;
}

int relay_script_run_file(const char *path, char *err, size_t errlen) {
  relay_script_t *s = calloc(1, sizeof *s);
  if (!s) return -1;
  relay_site_init(&s->site, &script_site_ops);
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
    relay_lua__guard_call(L, 1);
    rc = lua_pcall(L, 0, 0, -2);
    relay_lua__guard_call(L, 0);
  }
  if (rc != LUA_OK) set_err(err, errlen, L, rc, path);
  relay_script_dispose(s);
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
  return s;
}

/* The site's last reference went: the script goes with it. */
static void script_site_dispose(relay_site_t *site) {
  relay_script_t *s = (relay_script_t *)site;
  relay_script_dispose(s);
  free(s);
}
