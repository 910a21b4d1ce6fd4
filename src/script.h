/* A loaded script: its Lua state and what it declared (listener, upstreams,
 * settings, routes). Each worker owns one; none is shared across threads. */
#ifndef RELAY_SCRIPT_H
#define RELAY_SCRIPT_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "relay/replacer.h"

#define RELAY_MAX_ROUTES 64

typedef enum { RELAY_MODE_TAGS = 0, RELAY_MODE_FIELD, RELAY_MODE_STRIP } relay_mode_t;

/* How a chat-completions response is rewritten. */
typedef struct relay_chat_opts_s {
  relay_ruleset_t *rules;
  relay_mode_t mode;
  /* States whose text is reasoning (field/strip modes); bit i = state i. */
  unsigned reasoning_states;
  char field[2][32]; /* reasoning field names for field mode ("" = unused) */
  /* Lua hooks (registry references in the script's state, or LUA_NOREF). */
  int on_text_ref, on_event_ref, on_body_ref, on_end_ref;
} relay_chat_opts_t;

typedef struct relay_static_route_s {
  char method[16];     /* "" = any */
  char path[256];      /* exact path, or prefix when it ends in '*' */
  int upstream_index;  /* -1 = default */
  relay_chat_opts_t chat;
  int has_chat;
  int on_request_ref;  /* this route's request hook, or LUA_NOREF */
  int wants_body;
} relay_static_route_t;

/* What one Lua state may spend: its allocator counts bytes against `limit`,
 * and a count hook checks the time of the call in progress (see lua_api.c).
 * The state's allocator gets a pointer to it, so it must not move while the
 * state lives. */
typedef struct relay_lua_guard_s {
  size_t used;          /* bytes the state holds now */
  size_t limit;         /* script_memory */
  int enforce;          /* inside lua_pcall: the limit applies (see relay_lua_guard_call) */
  int over;             /* an allocation was refused for the limit */
  uint64_t timeout_ns;  /* script_timeout: one call from C into Lua */
  uint64_t start_ns;    /* when the call in progress was first seen running; 0 = not yet */
  int loading;          /* the script's top level: 10 x timeout */
  int expired;          /* past the budget: raise until control is back in C */
  int untimed;          /* --run: no time budget */
  lua_State *main;      /* the state's main thread */
} relay_lua_guard_t;

typedef struct relay_script_s {
  lua_State *L;
  relay_lua_guard_t guard;
  int refs; /* the worker and every exchange routed with it */
  char path[1024]; /* "" = the built-in stock script */
  relay_config_t cfg;
  int cfg_upstream_locked;
  relay_static_route_t routes[RELAY_MAX_ROUTES];
  size_t nroutes;
  int on_request_ref; /* LUA_NOREF when the script has no routing function */
  int on_request_wants_body;
  int log_level; /* from relay.settings{log_level=}, -1 = not set */
  int serving;   /* loaded: declarations (relay.route, relay.settings, ...) are closed */
} relay_script_t;

/* Load the script (path NULL = stock). On error returns -1 with a message of
 * the form "file:line: message" in err. */
int relay_script_load(relay_script_t *s, const char *path, char *err, size_t errlen);
void relay_script_close(relay_script_t *s);
/* Heap-allocated, reference-counted scripts: a reload swaps the worker's
 * script while exchanges in flight keep the one they were routed with. */
relay_script_t *relay_script_new(const char *path, char *err, size_t errlen);
void relay_script_ref(relay_script_t *s);
void relay_script_unref(relay_script_t *s);
/* Run a Lua file in a fresh state with the relay module (tests, --run). */
int relay_script_run_file(const char *path, char *err, size_t errlen);

#endif
