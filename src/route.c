/* Routes: the declarative ones a script lists with relay.route{...}, matched
 * in C with no Lua call per request, and the per-request decision. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "lua_api.h"
#include "lua_text.h"
#include "proxy.h"
#include "script.h"

void relay_route_init(relay_route_t *r) {
  memset(r, 0, sizeof *r);
  r->upstream_index = 0;
  r->ctx_ref = LUA_NOREF;
  r->on_request_ref = LUA_NOREF;
}

static void unref_hooks(lua_State *L, relay_chat_opts_t *o) {
  int *refs[] = {&o->on_text_ref, &o->on_event_ref, &o->on_body_ref, &o->on_end_ref};
  for (size_t i = 0; i < 4; i++) {
    if (*refs[i] != LUA_NOREF && L) luaL_unref(L, LUA_REGISTRYINDEX, *refs[i]);
    *refs[i] = LUA_NOREF;
  }
}

void relay_route_release(relay_script_t *s, relay_route_t *r) {
  relay_buf_close(&r->local_head);
  relay_buf_close(&r->local_body);
  relay_buf_close(&r->new_target);
  relay_buf_close(&r->header_edits);
  relay_buf_close(&r->new_body);
  if (r->has_chat_owned) {
    if (r->chat_owned.rules) relay_ruleset_unref(r->chat_owned.rules);
    unref_hooks(s ? s->L : NULL, &r->chat_owned);
  }
  r->has_chat_owned = 0;
  r->chat = NULL;
  if (r->ctx_ref != LUA_NOREF && s && s->L) luaL_unref(s->L, LUA_REGISTRYINDEX, r->ctx_ref);
  r->ctx_ref = LUA_NOREF;
}

/* Reads rewrite = {rules = ..., mode = ..., field = ...} into opts. */
int relay_lua_read_chat_opts(lua_State *L, int t, relay_chat_opts_t *opts) {
  memset(opts, 0, sizeof *opts);
  opts->on_text_ref = opts->on_event_ref = opts->on_body_ref = opts->on_end_ref = LUA_NOREF;
  lua_getfield(L, t, "rules");
  /* No rules: the text passes unchanged, but the hooks still run. */
  if (!lua_isnil(L, -1) && !luaL_testudata(L, -1, "relay.ruleset"))
    return luaL_error(L, "rewrite.rules must be a rule set from relay.rules{...}");
  opts->rules = lua_isnil(L, -1) ? NULL : relay_lua_check_ruleset(L, -1);
  if (opts->rules) relay_ruleset_ref(opts->rules);
  lua_pop(L, 1);
  static const char *const hook_names[] = {"on_text", "on_event", "on_body", "on_end"};
  int *hook_refs[] = {&opts->on_text_ref, &opts->on_event_ref, &opts->on_body_ref, &opts->on_end_ref};
  for (int i = 0; i < 4; i++) {
    lua_getfield(L, t, hook_names[i]);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
    } else if (lua_isfunction(L, -1)) {
      *hook_refs[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    } else {
      unref_hooks(L, opts);
      if (opts->rules) relay_ruleset_unref(opts->rules);
      return luaL_error(L, "rewrite.%s must be a function", hook_names[i]);
    }
  }
  lua_getfield(L, t, "mode");
  const char *mode = lua_isnil(L, -1) ? "tags" : luaL_checkstring(L, -1);
  if (strcmp(mode, "tags") == 0) opts->mode = RELAY_MODE_TAGS;
  else if (strcmp(mode, "field") == 0) opts->mode = RELAY_MODE_FIELD;
  else if (strcmp(mode, "strip") == 0) opts->mode = RELAY_MODE_STRIP;
  else {
    if (opts->rules) relay_ruleset_unref(opts->rules);
    unref_hooks(L, opts);
    return luaL_error(L, "rewrite mode '%s' is not one of tags, field, strip", mode);
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "field");
  const char *field = lua_isnil(L, -1) ? "reasoning_content" : luaL_checkstring(L, -1);
  if (strcmp(field, "both") == 0) {
    strcpy(opts->field[0], "reasoning_content");
    strcpy(opts->field[1], "reasoning");
  } else {
    if (strlen(field) == 0 || strlen(field) >= sizeof opts->field[0] || strchr(field, '"') ||
        strchr(field, '\\')) {
      if (opts->rules) relay_ruleset_unref(opts->rules);
      unref_hooks(L, opts);
      return luaL_error(L, "field '%s' is not a usable JSON key", field);
    }
    strcpy(opts->field[0], field);
  }
  lua_pop(L, 1);
  opts->reasoning_states = relay_lua_reasoning_states(L, t, opts->rules);
  return 0;
}

/* relay.route{method = "POST", path = "/v1/chat/completions", upstream = "default", rewrite = {...}} */
static int l_route(lua_State *L) {
  relay_script_t *s = relay_lua_declaring(L, "relay.route");
  luaL_checktype(L, 1, LUA_TTABLE);
  if (s->nroutes == RELAY_MAX_ROUTES) return luaL_error(L, "too many routes (at most %d)", RELAY_MAX_ROUTES);
  relay_static_route_t r;
  memset(&r, 0, sizeof r);
  r.upstream_index = -1;
  r.on_request_ref = LUA_NOREF;
  lua_getfield(L, 1, "on_request");
  if (!lua_isnil(L, -1)) {
    if (!lua_isfunction(L, -1)) return luaL_error(L, "relay.route: on_request must be a function");
    r.on_request_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    lua_pop(L, 1);
  }
  lua_getfield(L, 1, "body");
  r.wants_body = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "method");
  if (!lua_isnil(L, -1)) {
    const char *m = luaL_checkstring(L, -1);
    if (strlen(m) >= sizeof r.method) return luaL_error(L, "method '%s' is too long", m);
    strcpy(r.method, m);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "path");
  if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "relay.route needs a path (a string starting with '/')");
  const char *path = lua_tostring(L, -1);
  if (path[0] != '/' || strlen(path) >= sizeof r.path) return luaL_error(L, "path must start with '/' (got '%s')", path);
  strcpy(r.path, path);
  lua_pop(L, 1);
  lua_getfield(L, 1, "upstream");
  if (!lua_isnil(L, -1)) {
    const char *name = luaL_checkstring(L, -1);
    r.upstream_index = relay_config_find_upstream(&s->cfg, name);
    if (r.upstream_index < 0) return luaL_error(L, "unknown upstream '%s' (declare it first)", name);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "rewrite");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    relay_lua_read_chat_opts(L, lua_gettop(L), &r.chat);
    r.has_chat = 1;
  }
  lua_pop(L, 1);
  s->routes[s->nroutes++] = r;
  return 0;
}

void relay_lua_release_routes(relay_script_t *s) {
  for (size_t i = 0; i < s->nroutes; i++)
    if (s->routes[i].has_chat && s->routes[i].chat.rules) relay_ruleset_unref(s->routes[i].chat.rules);
  s->nroutes = 0; /* hook references die with the Lua state */
}

void relay_lua_open_routes(lua_State *L) {
  lua_pushcfunction(L, l_route);
  lua_setfield(L, -2, "route");
}

static int path_matches(const char *pattern, const char *path, size_t len) {
  size_t plen = strlen(pattern);
  if (plen && pattern[plen - 1] == '*') return len >= plen - 1 && memcmp(pattern, path, plen - 1) == 0;
  return len == plen && memcmp(pattern, path, len) == 0;
}

/* The path part of the target, exactly as it goes upstream (one split for
 * routes, scripts and the request line). */
static void request_path(const relay_exchange_t *ex, const char **p, size_t *len) {
  const relay_head_t *h = &ex->client->req;
  relay_target_t t;
  relay_target_split(relay_head_target(h), h->target_len, &t);
  *p = t.path;
  *len = t.path_len;
}

int relay_route_head(relay_worker_t *w, relay_exchange_t *ex, char *err, size_t errlen) {
  relay_script_t *s = ex->script;
  const char *path;
  size_t len;
  request_path(ex, &path, &len);
  const char *method = llhttp_method_name(ex->method);
  ex->upstream_index = 0;
  ex->route.on_request_ref = s->on_request_ref;
  ex->route.on_request_wants_body = s->on_request_wants_body;
  for (size_t i = 0; i < s->nroutes; i++) {
    const relay_static_route_t *r = &s->routes[i];
    if (r->method[0] && strcmp(r->method, method) != 0) continue;
    if (!path_matches(r->path, path, len)) continue;
    if (r->upstream_index >= 0) ex->upstream_index = r->upstream_index;
    ex->route.chat = r->has_chat ? &r->chat : NULL;
    if (r->on_request_ref != LUA_NOREF) {
      ex->route.on_request_ref = r->on_request_ref;
      ex->route.on_request_wants_body = r->wants_body;
    }
    break;
  }
  ex->route.upstream_index = ex->upstream_index;
  return relay_lua_route_request(w, ex, err, errlen);
}
