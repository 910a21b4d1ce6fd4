/* A loaded script: its Lua state and the site it declared (listener,
 * upstreams, settings, routes). Each worker loads its own; none is shared
 * across threads. The site is the core's view of it and holds the
 * reference count: a reload swaps the worker's script while exchanges in
 * flight keep the one they were routed with. */
#ifndef RELAY_LUA_SCRIPT_H
#define RELAY_LUA_SCRIPT_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "site.h"

#define RELAY_SCRIPT_PATH_MAX 1024

/* What one Lua state may spend: its allocator counts bytes against `limit`,
 * and a count hook checks the time of the call in progress (see guard.c).
 * The state's allocator gets a pointer to it, so it must not move while the
 * state lives. */
typedef struct relay_lua_guard_s {
  size_t used;          /* bytes the state holds now */
  size_t limit;         /* script_memory */
  int enforce;          /* inside lua_pcall: the limit applies (see relay_lua__guard_call) */
  int over;             /* an allocation was refused for the limit */
  uint64_t timeout_ns;  /* script_timeout: one call from C into Lua */
  uint64_t start_ns;    /* when the call in progress was first seen running; 0 = not yet */
  int loading;          /* the script's top level: 10 x timeout */
  int expired;          /* past the budget: raise until control is back in C */
  int untimed;          /* --run: no time budget */
  lua_State *main;      /* the state's main thread */
} relay_lua_guard_t;

typedef struct relay_script_s {
  relay_site_t site; /* first: the core's view */
  lua_State *L;
  relay_lua_guard_t guard;
  char path[RELAY_SCRIPT_PATH_MAX]; /* "" = the built-in stock script */
  int log_level; /* from relay.settings{log_level=}, -1 = not set */
  int serving;   /* loaded: declarations (relay.route, relay.settings, ...) are closed */
} relay_script_t;

/* Load the script (path NULL = stock) into s. On error returns -1 with a
 * message of the form "file:line: message" in err. Pair with
 * relay_script_dispose(). */
int relay_script_load(relay_script_t *s, const char *path, char *err, size_t errlen);
void relay_script_dispose(relay_script_t *s);
/* A loaded script on the heap whose site holds one reference; the last
 * relay_site_unref() frees it. NULL on error (err filled). */
relay_script_t *relay_script_new(const char *path, char *err, size_t errlen);
/* Run a Lua file in a fresh state with the relay module (tests, --run). */
int relay_script_run_file(const char *path, char *err, size_t errlen);

#endif
