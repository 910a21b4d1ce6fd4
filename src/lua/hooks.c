/* Request hooks: relay.on_request(fn [, {body = true}]) and a route's own
 * on_request. Only routes with a hook pay for a Lua call per request; the
 * function sees the request and returns the decision as a table, which is
 * checked here (the core owns framing) and written into the route. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "lua_api.h"

/* relay.on_request(fn [, {body = true}]) */
static int l_on_request(lua_State *L) {
  relay_script_t *s = relay_lua__declaring(L, "relay.on_request");
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int wants_body = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "body");
    wants_body = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (s->site.hook) luaL_unref(L, LUA_REGISTRYINDEX, s->site.hook);
  lua_pushvalue(L, 1);
  s->site.hook = luaL_ref(L, LUA_REGISTRYINDEX);
  s->site.hook_wants_body = wants_body;
  return 0;
}

/* Requests and events get a json() method that decodes lazily with
 * lua-cjson: a script that never asks pays nothing. */
static const char relay_lazy_json_src[] =
    "local field = ...\n"
    "local cjson = require('cjson')\n"
    "local cache = setmetatable({}, {__mode = 'k'})\n"
    "return {__index = {json = function(self)\n"
    "  local v = cache[self]\n"
    "  if v == nil then\n"
    "    local ok, r = pcall(cjson.decode, self[field] or '')\n"
    "    if not ok then error(field .. ' is not valid JSON: ' .. tostring(r), 2) end\n"
    "    v = r; cache[self] = v\n"
    "  end\n"
    "  return v\n"
    "end}}\n";

static void make_lazy_json_mt(lua_State *L, const char *field, const char *key) {
  if (luaL_loadbuffer(L, relay_lazy_json_src, sizeof relay_lazy_json_src - 1, "=relay.lazy_json") != LUA_OK)
    lua_error(L);
  lua_pushstring(L, field);
  lua_call(L, 1, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, key);
}

void relay_lua__open_hooks(lua_State *L) {
  lua_pushcfunction(L, l_on_request);
  lua_setfield(L, -2, "on_request");
  make_lazy_json_mt(L, "body", "relay.request_mt");
  make_lazy_json_mt(L, "data", "relay.event_mt");
}

/* The per-request context table shared by the request and response hooks;
 * the site lets go of it when the exchange ends (relay_lua__exchange_end). */
void relay_lua__push_ctx(lua_State *L, relay_exchange_t *ex) {
  if (!ex->route.script_ctx) {
    lua_newtable(L);
    ex->route.script_ctx = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, ex->route.script_ctx);
}

/* Header names arrive in any case; scripts look them up in lower case.
 * Repeated fields are joined with ", " as RFC 9110 allows. */
static void push_headers(lua_State *L, const relay_head_t *h) {
  lua_createtable(L, 0, (int)h->n);
  char name[256];
  for (size_t i = 0; i < h->n; i++) {
    size_t n = h->hdrs[i].name_len < sizeof name - 1 ? h->hdrs[i].name_len : sizeof name - 1;
    for (size_t k = 0; k < n; k++) {
      char ch = relay_head_name(h, i)[k];
      name[k] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    lua_pushlstring(L, name, n);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, relay_head_value(h, i), h->hdrs[i].value_len);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, relay_head_value(h, i), h->hdrs[i].value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}

/* What the hook sees is what would go upstream: after a front end, its
 * translation (target and body). */
static void push_request(lua_State *L, relay_exchange_t *ex, int with_body) {
  relay_client_t *c = ex->client;
  relay_target_t t; /* what goes upstream: no scheme or authority, no fragment */
  if (ex->route.frontend.type && ex->route.new_target.len)
    relay_target_split(ex->route.new_target.data, ex->route.new_target.len, &t);
  else
    relay_target_split(relay_head_target(&c->req), c->req.target_len, &t);
  lua_createtable(L, 0, 8);
  lua_pushstring(L, llhttp_method_name(ex->method));
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, t.path, t.path_len);
  if (t.has_query) {
    lua_pushliteral(L, "?");
    lua_pushlstring(L, t.query, t.query_len);
    lua_concat(L, 3);
  }
  lua_setfield(L, -2, "target");
  lua_pushlstring(L, t.path, t.path_len);
  lua_setfield(L, -2, "path");
  if (t.has_query) {
    lua_pushlstring(L, t.query, t.query_len);
    lua_setfield(L, -2, "query");
  }
  push_headers(L, &c->req);
  lua_setfield(L, -2, "headers");
  lua_pushstring(L, c->peer);
  lua_setfield(L, -2, "client");
  lua_pushstring(L, ex->route.nfilters ? "rewrite" : "proxy");
  lua_setfield(L, -2, "treatment");
  if (ex->route.frontend.type) {
    lua_pushstring(L, ex->route.frontend.type->name);
    lua_setfield(L, -2, "frontend");
  }
  if (with_body) {
    lua_pushlstring(L, ex->req_body.data ? ex->req_body.data : "", ex->req_body.len);
    lua_setfield(L, -2, "body");
  }
  relay_lua__push_ctx(L, ex);
  lua_setfield(L, -2, "ctx");
  lua_getfield(L, LUA_REGISTRYINDEX, "relay.request_mt");
  lua_setmetatable(L, -2);
}

static int copy_string_field(lua_State *L, int t, const char *key, relay_buf_t *out) {
  lua_getfield(L, t, key);
  int present = !lua_isnil(L, -1);
  if (present) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "on_request: '%s' must be a string", key);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    relay_buf_reset(out);
    relay_buf_append(out, s, n);
  }
  lua_pop(L, 1);
  return present;
}

/* RFC 9110 section 5.6.2 tchar: a field name is one token, so nothing a
 * script returns can add a field, end the head or split a name. */
static int is_tchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int header_name_ok(const char *s, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* A field value may hold HTAB, visible bytes and obs-text (RFC 9110 section
 * 5.5); any other control byte is an error: CR and LF would end the field,
 * NUL and the rest are read differently by different servers. Returns the
 * offending byte's offset, or -1. */
static long header_value_bad(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return (long)i;
  }
  return -1;
}

/* Fields that frame the message or manage the connection: the core writes
 * them from what it parsed, so a script's copy would contradict the body
 * actually sent. */
static const char *const framing_fields[] = {"content-length", "transfer-encoding", "connection", "keep-alive",
                                             "proxy-connection", "te", "trailer", "upgrade", NULL};
/* ...and the fields the relay sets on every upstream request itself. */
static const char *const relay_set_fields[] = {"host", "x-forwarded-for", "x-forwarded-proto", NULL};

static int name_in(const char *name, size_t n, const char *const *list) {
  for (; *list; list++)
    if (relay_name_eq(name, n, *list)) return 1;
  return 0;
}

/* A header name or value as it may appear in a log line: control bytes and
 * quotes escaped, so that a hostile value cannot forge log lines. */
#define LOG_NAME_MAX 64 /* bytes of a bad header name or value shown in a log line */

static const char *push_printable(lua_State *L, const char *s, size_t n) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n && i < LOG_NAME_MAX; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      char esc[8];
      snprintf(esc, sizeof esc, "\\x%02x", c);
      luaL_addstring(&b, esc);
    } else {
      luaL_addchar(&b, (char)c);
    }
  }
  if (n > LOG_NAME_MAX) luaL_addstring(&b, "...");
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

/* The checks both kinds of script headers share: the key at -2 must be a
 * token, the value at -1 (a string or number) free of control bytes. who is
 * the message prefix ("on_request", "respond"). Raises on a bad one. */
static void check_header_pair(lua_State *L, const char *who, const char **name, size_t *nlen,
                              const char **value, size_t *vlen) {
  *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, nlen) : NULL;
  if (!*name || !header_name_ok(*name, *nlen)) {
    if (!*name) luaL_error(L, "%s: bad header name (a %s, not a string)", who, luaL_typename(L, -2));
    luaL_error(L, "%s: bad header name '%s' (not an RFC 9110 token)", who, push_printable(L, *name, *nlen));
  }
  if (!value) return;
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER)
    luaL_error(L, "%s: header '%s' must be a string (got %s)", who, *name, luaL_typename(L, -1));
  *value = lua_tolstring(L, -1, vlen); /* converts a number in place: values may be, keys not */
  long bad = header_value_bad(*value, *vlen);
  if (bad >= 0) {
    char c = (*value)[bad];
    if (c == '\r' || c == '\n') luaL_error(L, "%s: header '%s' has a line break", who, *name);
    char hex[8];
    snprintf(hex, sizeof hex, "\\x%02x", (unsigned)(unsigned char)c); /* lua_pushfstring has no %x */
    luaL_error(L, "%s: header '%s' has a control byte (%s)", who, *name, hex);
  }
}

/* headers = {name = "value" | false}: set or remove request headers. Names
 * must be tokens and values free of control bytes; framing fields and those
 * the relay sets itself cannot be touched (the core owns framing). */
static void read_header_edits(lua_State *L, int t, relay_route_t *r) {
  lua_getfield(L, t, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *name, *v = NULL;
      size_t nlen, vlen = 0;
      int remove = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
      check_header_pair(L, "on_request", &name, &nlen, remove ? NULL : &v, &vlen);
      if (name_in(name, nlen, framing_fields) || name_in(name, nlen, relay_set_fields))
        luaL_error(L, "on_request: header '%s' is set by the relay itself (framing, Host, X-Forwarded-*); "
                   "a script cannot set or remove it", name);
      relay_buf_append(&r->header_edits, name, nlen + 1);
      if (remove) relay_buf_append(&r->header_edits, "\x01", 2);
      else relay_buf_append(&r->header_edits, v, vlen + 1);
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
}

/* Statuses whose responses never have content (RFC 9110 sections 6.4.1,
 * 15.3.6): a body there would be read as the start of the next response. */
static int status_has_no_content(lua_Integer status) { return status == 204 || status == 205 || status == 304; }

/* respond = {status = 401, headers = {...}, body = "..." | json = {...}} */
static void read_local_response(lua_State *L, int t, relay_route_t *r) {
  lua_getfield(L, t, "status");
  lua_Integer status = luaL_optinteger(L, -1, 200);
  if (status < 200 || status > 599) luaL_error(L, "respond: status %d out of range 200..599", (int)status);
  lua_pop(L, 1);
  int json = 0;
  lua_getfield(L, t, "json");
  if (!lua_isnil(L, -1)) {
    if (status_has_no_content(status)) luaL_error(L, "respond: status %d cannot have a body (json)", (int)status);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -3);
    lua_call(L, 1, 1);
    size_t n;
    const char *s = lua_tolstring(L, -1, &n);
    relay_buf_append(&r->local_body, s, n);
    lua_pop(L, 2);
    json = 1;
  } else {
    copy_string_field(L, t, "body", &r->local_body);
    if (r->local_body.len && status_has_no_content(status))
      luaL_error(L, "respond: status %d cannot have a body", (int)status);
  }
  lua_pop(L, 1);
  int has_type = 0;
  lua_getfield(L, t, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      const char *name, *v;
      size_t nlen, vlen;
      check_header_pair(L, "respond", &name, &nlen, &v, &vlen);
      /* Framing is the core's: the script's own Content-Length and the like go. */
      if (name_in(name, nlen, framing_fields)) {
        lua_pop(L, 1);
        continue;
      }
      if (relay_name_eq(name, nlen, "content-type")) has_type = 1;
      if (relay_head_add(&r->local_head, name, v, vlen)) luaL_error(L, "respond: headers too large");
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  if (!has_type && json) relay_head_add(&r->local_head, "Content-Type", "application/json", 16);
  r->local_status = (int)status;
}

/* Turns the function's result into the route. nil keeps the static route. */
static void read_decision(lua_State *L, relay_exchange_t *ex, int t) {
  relay_route_t *r = &ex->route;
  relay_script_t *s = (relay_script_t *)ex->site;
  lua_getfield(L, t, "respond");
  if (lua_istable(L, -1)) {
    read_local_response(L, lua_gettop(L), r);
    lua_pop(L, 1);
    return;
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "upstream");
  if (!lua_isnil(L, -1)) {
    const char *name = luaL_checkstring(L, -1);
    int idx = relay_config_find_upstream(&s->site.cfg, name);
    if (idx < 0) luaL_error(L, "on_request: unknown upstream '%s'", name);
    r->upstream_index = idx;
  }
  lua_pop(L, 1);
  lua_getfield(L, t, "rewrite");
  if (lua_istable(L, -1)) {
    r->nown = relay_lua__read_rewrite(L, lua_gettop(L), r->own_filters, RELAY_ROUTE_MAX_FILTERS);
    r->filters = r->own_filters;
    r->nfilters = r->nown;
    relay_lua__frontend_rewrite(r->frontend.type, r->own_filters, r->nown);
  } else if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
    r->filters = NULL;
    r->nfilters = 0;
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "on_request: rewrite must be a table or false");
  }
  lua_pop(L, 1);
  copy_string_field(L, t, "path", &r->new_target);
  if (r->new_target.len && r->new_target.data[0] != '/') luaL_error(L, "on_request: path must start with '/'");
  for (size_t i = 0; i < r->new_target.len; i++)
    if ((unsigned char)r->new_target.data[i] <= ' ') luaL_error(L, "on_request: path has a space or control byte");
  if (r->new_target.len && !memchr(r->new_target.data, '?', r->new_target.len)) {
    /* A new path keeps the request's query unless it brings its own. */
    const relay_head_t *h = &ex->client->req;
    relay_target_t tg;
    relay_target_split(relay_head_target(h), h->target_len, &tg);
    if (tg.has_query) {
      relay_buf_append(&r->new_target, "?", 1);
      relay_buf_append(&r->new_target, tg.query, tg.query_len);
    }
  }
  read_header_edits(L, t, r);
  if (copy_string_field(L, t, "body", &r->new_body)) r->body_replaced = 1;
}

/* A message handler that adds a traceback to the error. */
int relay_lua__traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* Protected part: everything that may raise runs inside lua_pcall. */
static int call_on_request(lua_State *L) {
  relay_exchange_t *ex = lua_touserdata(L, 1);
  int with_body = (int)lua_tointeger(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ex->route.hook);
  push_request(L, ex, with_body);
  lua_call(L, 1, 1);
  if (lua_istable(L, -1)) read_decision(L, ex, lua_gettop(L));
  else if (!lua_isnil(L, -1)) luaL_error(L, "on_request must return a table or nil (got %s)", luaL_typename(L, -1));
  return 0;
}

/* What a failed hook left in the route goes: the exchange is answered 500. */
static void route_discard(lua_State *L, relay_route_t *r) {
  for (unsigned i = 0; i < r->nown; i++) r->own_filters[i].type->opts_unref(r->own_filters[i].opts);
  r->nown = 0;
  r->filters = NULL;
  r->nfilters = 0;
  r->local_status = 0;
  r->body_replaced = 0;
  relay_buf_reset(&r->header_edits);
  relay_buf_reset(&r->new_target);
}

/* The site's run_hook: the exchange's request hook in the script's state,
 * under the script's budget. */
int relay_lua__run_request_hook(relay_site_t *site, relay_exchange_t *ex, int with_body, char *err, size_t errlen) {
  relay_script_t *s = (relay_script_t *)site;
  lua_State *L = s->L;
  int top = lua_gettop(L);
  relay_lua__guard_begin(L);
  lua_pushcfunction(L, relay_lua__traceback);
  lua_pushcfunction(L, call_on_request);
  lua_pushlightuserdata(L, ex);
  lua_pushinteger(L, with_body);
  relay_lua__guard_call(L, 1);
  int rc = lua_pcall(L, 2, 0, top + 1);
  relay_lua__guard_call(L, 0);
  if (rc != LUA_OK) {
    char buf[256];
    snprintf(err, errlen, "%s", relay_lua__error_text(L, rc, buf, sizeof buf));
    route_discard(L, &ex->route);
  }
  lua_settop(L, top);
  if (relay_lua__guard_end(L)) uv_update_time(ex->proxy->loop); /* timers set next must not fire early */
  return rc == LUA_OK ? 0 : -1;
}
