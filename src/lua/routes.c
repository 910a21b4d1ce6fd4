/* relay.route{...}: routes declared once and matched in C (no Lua call per
 * request), and the rewrite = {...} table both routes and request hooks use
 * to name the response filters. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "chat.h"
#include "lua_api.h"
#include "responses.h"

/* The chat options' hook references live in the script's state. */
static void chat_opts_dispose(relay_chat_opts_t *o) {
  relay_script_t *s = o->owner;
  if (o->on_text_ref && s->L) luaL_unref(s->L, LUA_REGISTRYINDEX, o->on_text_ref);
  o->on_text_ref = 0;
}

/* A function field of the rewrite table as a registry reference (0 if nil). */
static int hook_ref(lua_State *L, int t, const char *name) {
  lua_getfield(L, t, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, 1);
    return -1;
  }
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* A member name for the JSON the relay writes or reads. */
static int usable_key(const char *k) {
  size_t n = strlen(k);
  return n > 0 && n < RELAY_CHAT_FIELD_MAX && !strchr(k, '"') && !strchr(k, '\\');
}

/* rewrite.upstream_reasoning: the upstream's members whose text is
 * reasoning. nil: reasoning_content and reasoning when the rewrite reads
 * text at all (rules or a parser); false or {}: none. */
static int read_upstream_reasoning(lua_State *L, int t, int reads_text, char out[][RELAY_CHAT_FIELD_MAX]) {
  lua_getfield(L, t, "upstream_reasoning");
  int n = 0;
  if (lua_isnil(L, -1)) {
    if (reads_text) {
      strcpy(out[0], "reasoning_content");
      strcpy(out[1], "reasoning");
      n = 2;
    }
  } else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    n = 0;
  } else if (lua_istable(L, -1)) {
    lua_Integer len = (lua_Integer)lua_rawlen(L, -1);
    if (len > RELAY_CHAT_IN_MAX)
      luaL_error(L, "rewrite.upstream_reasoning names at most %d members", RELAY_CHAT_IN_MAX);
    for (lua_Integer i = 1; i <= len; i++) {
      lua_rawgeti(L, -1, i);
      /* the type first: lua_tostring would turn a number into a string in place */
      const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
      if (!k || !usable_key(k))
        luaL_error(L, "rewrite.upstream_reasoning[%d] is not a usable JSON key", (int)i);
      strcpy(out[n++], k);
      lua_pop(L, 1);
    }
  } else {
    luaL_error(L, "rewrite.upstream_reasoning must be a list of member names or false");
  }
  lua_pop(L, 1);
  return n;
}

/* An optional string field of at most max - 1 bytes into out (else def). */
static void read_tag(lua_State *L, int t, const char *name, const char *def, char *out, size_t max) {
  lua_getfield(L, t, name);
  size_t n = strlen(def);
  const char *v = lua_isnil(L, -1) ? def : luaL_checklstring(L, -1, &n);
  if (n >= max || strlen(v) != n) luaL_error(L, "rewrite.%s must be a string of at most %d bytes without NUL", name,
                                             (int)max - 1);
  memcpy(out, v, n + 1);
  lua_pop(L, 1);
}

/* The chat rewrite's options: parser, rules, mode, field(s), upstream
 * reasoning members, tool calls, tags, on_text. Validation comes first so
 * that an error holds nothing. */
static relay_chat_opts_t *read_chat_opts(lua_State *L, int t, relay_script_t *s) {
  lua_getfield(L, t, "rules");
  /* No rules: the text passes unchanged, but the hooks still run. */
  if (!lua_isnil(L, -1) && !luaL_testudata(L, -1, "relay.ruleset"))
    luaL_error(L, "rewrite.rules must be a rule set from relay.rules{...}");
  relay_ruleset_t *rules = lua_isnil(L, -1) ? NULL : relay_lua_check_ruleset(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, t, "mode");
  const char *mode = lua_isnil(L, -1) ? "tags" : luaL_checkstring(L, -1);
  relay_mode_t m = RELAY_MODE_TAGS;
  if (strcmp(mode, "tags") == 0) m = RELAY_MODE_TAGS;
  else if (strcmp(mode, "field") == 0) m = RELAY_MODE_FIELD;
  else if (strcmp(mode, "strip") == 0) m = RELAY_MODE_STRIP;
  else luaL_error(L, "rewrite mode '%s' is not one of tags, field, strip", mode);
  lua_pop(L, 1);
  lua_getfield(L, t, "field");
  const char *field = lua_isnil(L, -1) ? "reasoning_content" : luaL_checkstring(L, -1);
  if (strcmp(field, "both") != 0 && !usable_key(field)) luaL_error(L, "field '%s' is not a usable JSON key", field);
  lua_getfield(L, t, "parser");
  relay_chat_parser_t parser = RELAY_CHAT_RULES;
  if (!lua_isnil(L, -1)) {
    const char *p = luaL_checkstring(L, -1);
    if (strcmp(p, "harmony") == 0) parser = RELAY_CHAT_HARMONY;
    else if (strcmp(p, "rules") != 0) luaL_error(L, "rewrite parser '%s' is not one of harmony, rules", p);
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "tool_calls");
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) luaL_error(L, "rewrite.tool_calls must be a boolean");
  int tool_calls = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  char in_field[RELAY_CHAT_IN_MAX][RELAY_CHAT_FIELD_MAX];
  memset(in_field, 0, sizeof in_field);
  read_upstream_reasoning(L, t, parser == RELAY_CHAT_HARMONY || rules != NULL, in_field);
  char open_tag[RELAY_CHAT_TAG_MAX], close_tag[RELAY_CHAT_TAG_MAX];
  read_tag(L, t, "open_tag", "<think>", open_tag, sizeof open_tag);
  read_tag(L, t, "close_tag", "</think>", close_tag, sizeof close_tag);
  static const char *const hooks[] = {"on_text", "on_event", "on_body", "on_end"};
  for (int i = 0; i < 4; i++) {
    lua_getfield(L, t, hooks[i]);
    if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) luaL_error(L, "rewrite.%s must be a function", hooks[i]);
    lua_pop(L, 1);
  }
  unsigned states = relay_lua_reasoning_states(L, t, rules);
  relay_chat_opts_t *o = relay_chat_opts_new();
  if (!o) luaL_error(L, "out of memory");
  o->rules = rules;
  if (rules) relay_ruleset_ref(rules);
  o->mode = m;
  o->parser = parser;
  o->tool_calls = tool_calls;
  memcpy(o->in_field, in_field, sizeof in_field);
  memcpy(o->open_tag, open_tag, sizeof open_tag);
  memcpy(o->close_tag, close_tag, sizeof close_tag);
  o->reasoning_states = states;
  if (strcmp(field, "both") == 0) {
    strcpy(o->field[0], "reasoning_content");
    strcpy(o->field[1], "reasoning");
  } else {
    strcpy(o->field[0], field);
  }
  o->owner = s;
  o->on_dispose = chat_opts_dispose;
  o->on_text_ref = hook_ref(L, t, "on_text");
  if (o->on_text_ref) o->on_text = relay_lua__text_hook;
  lua_pop(L, 1); /* the field string */
  return o;
}

unsigned relay_lua__read_rewrite(lua_State *L, int t, relay_filter_spec_t *specs, unsigned max) {
  relay_script_t *s = relay_lua__script(L);
  if (max < 2) luaL_error(L, "too many filters");
  relay_chat_opts_t *chat = read_chat_opts(L, t, s);
  specs[0].type = &relay_chat_filter_type;
  specs[0].opts = chat;
  unsigned n = 1;
  int ev = hook_ref(L, t, "on_event"), body = hook_ref(L, t, "on_body"), end = hook_ref(L, t, "on_end");
  if (ev || body || end) {
    relay_lua_hooks_opts_t *h = relay_lua__hooks_opts_new(s);
    if (!h) {
      relay_chat_opts_unref(chat);
      luaL_error(L, "out of memory");
    }
    h->on_event_ref = ev;
    h->on_body_ref = body;
    h->on_end_ref = end;
    specs[n].type = &relay_lua__hooks_filter_type;
    specs[n].opts = h;
    n++;
  }
  return n;
}

/* ---- front ends ------------------------------------------------------------ */

/* A front end's options as the script wrote them, checked before anything
 * is allocated (so that an error holds nothing). */
typedef struct lua_frontend_s {
  const relay_frontend_type_t *type;
  const char *chat_path, *reasoning_field, *developer_role;
} lua_frontend_t;

/* A string that can stand as a JSON member name ("" when allow_empty). */
static int json_key_ok(const char *s, int allow_empty) {
  size_t n = strlen(s);
  if ((n == 0 && !allow_empty) || n >= RELAY_RESPONSES_FIELD_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == '"' || s[i] == '\\') return 0;
  return 1;
}

static const char *frontend_str(lua_State *L, int t, const char *key, const char *def) {
  lua_getfield(L, t, key);
  const char *v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "frontend.%s must be a string", key);
    v = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return v; /* still referenced by the table */
}

/* frontend = "responses" | {type = "responses", chat_path = ..., reasoning_field = ..., developer_role = ...} */
static void check_frontend(lua_State *L, int v, lua_frontend_t *fe) {
  static const char *const known[] = {"type", "chat_path", "reasoning_field", "developer_role", NULL};
  memset(fe, 0, sizeof *fe);
  const char *name;
  if (lua_type(L, v) == LUA_TSTRING) {
    name = lua_tostring(L, v);
  } else if (lua_istable(L, v)) {
    relay_lua__check_keys(L, v, known, "frontend: unknown option");
    name = frontend_str(L, v, "type", NULL);
    if (!name) luaL_error(L, "frontend needs a type (\"responses\")");
    fe->chat_path = frontend_str(L, v, "chat_path", NULL);
    fe->reasoning_field = frontend_str(L, v, "reasoning_field", NULL);
    fe->developer_role = frontend_str(L, v, "developer_role", NULL);
  } else {
    luaL_error(L, "frontend must be a string or a table");
    return;
  }
  if (strcmp(name, "responses") != 0) luaL_error(L, "unknown frontend '%s' (the one there is: responses)", name);
  fe->type = &relay_responses_frontend;
  const char *p = fe->chat_path;
  if (p && (p[0] != '/' || strlen(p) >= RELAY_RESPONSES_PATH_MAX))
    luaL_error(L, "frontend.chat_path must start with '/' (got '%s')", p);
  for (; p && *p; p++)
    if ((unsigned char)*p <= ' ' || *p == 0x7f) luaL_error(L, "frontend.chat_path has a space or control byte");
  if (fe->reasoning_field && !json_key_ok(fe->reasoning_field, 1))
    luaL_error(L, "frontend.reasoning_field '%s' is not a usable JSON key", fe->reasoning_field);
  if (fe->developer_role && strcmp(fe->developer_role, "system") != 0 && strcmp(fe->developer_role, "developer") != 0)
    luaL_error(L, "frontend.developer_role must be \"system\" or \"developer\"");
}

/* The checked options as the front end's own; NULL when out of memory. */
static void *make_frontend_opts(const lua_frontend_t *fe) {
  relay_responses_opts_t *o = relay_responses_opts_new();
  if (!o) return NULL;
  if (fe->chat_path) snprintf(o->chat_path, sizeof o->chat_path, "%s", fe->chat_path);
  if (fe->reasoning_field) snprintf(o->reasoning_field, sizeof o->reasoning_field, "%s", fe->reasoning_field);
  if (fe->developer_role) snprintf(o->developer_role, sizeof o->developer_role, "%s", fe->developer_role);
  return o;
}

void relay_lua__frontend_rewrite(const relay_frontend_type_t *fe, relay_filter_spec_t *specs, unsigned n) {
  if (fe != &relay_responses_frontend) return;
  for (unsigned i = 0; i < n; i++) {
    if (specs[i].type != &relay_chat_filter_type) continue;
    relay_chat_opts_t *o = specs[i].opts;
    o->mode = RELAY_MODE_FIELD;
    snprintf(o->field[0], sizeof o->field[0], "%s", RELAY_RESPONSES_REASONING_KEY);
    o->field[1][0] = 0;
  }
}

/* relay.route{method = "POST", path = "/v1/chat/completions", upstream = "default", rewrite = {...}} */
static int l_route(lua_State *L) {
  relay_script_t *s = relay_lua__declaring(L, "relay.route");
  relay_site_t *site = &s->site;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (site->nroutes == RELAY_MAX_ROUTES) return luaL_error(L, "too many routes (at most %d)", RELAY_MAX_ROUTES);
  relay_static_route_t r;
  memset(&r, 0, sizeof r);
  r.upstream_index = -1;
  lua_getfield(L, 1, "body");
  r.hook_wants_body = lua_toboolean(L, -1);
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
    r.upstream_index = relay_config_find_upstream(&site->cfg, name);
    if (r.upstream_index < 0) return luaL_error(L, "unknown upstream '%s' (declare it first)", name);
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "on_request");
  if (!lua_isnil(L, -1) && !lua_isfunction(L, -1)) return luaL_error(L, "relay.route: on_request must be a function");
  lua_pop(L, 1);
  lua_frontend_t fe;
  memset(&fe, 0, sizeof fe);
  lua_getfield(L, 1, "frontend");
  if (!lua_isnil(L, -1)) check_frontend(L, lua_gettop(L), &fe);
  lua_getfield(L, 1, "rewrite");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    r.nfilters = relay_lua__read_rewrite(L, lua_gettop(L), r.filters, RELAY_ROUTE_MAX_FILTERS);
  }
  lua_pop(L, 1);
  if (fe.type) {
    r.frontend.type = fe.type;
    r.frontend.opts = make_frontend_opts(&fe);
    if (!r.frontend.opts) {
      for (unsigned i = 0; i < r.nfilters; i++)
        if (r.filters[i].type->opts_unref) r.filters[i].type->opts_unref(r.filters[i].opts);
      return luaL_error(L, "out of memory");
    }
    relay_lua__frontend_rewrite(fe.type, r.filters, r.nfilters);
  }
  lua_pop(L, 1); /* frontend */
  r.hook = hook_ref(L, 1, "on_request"); /* last: nothing below can raise and leak it */
  site->routes[site->nroutes++] = r;
  return 0;
}

void relay_lua__open_routes(lua_State *L) {
  lua_pushcfunction(L, l_route);
  lua_setfield(L, -2, "route");
}
