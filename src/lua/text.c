/* relay.rules, relay.replacer and relay.json: the same C code the proxy uses,
 * so scripts and Lua tests see exactly the relay's behaviour. */
#include "lua_text.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "relay/json_splice.h"

#define RULESET_MT "relay.ruleset"
#define REPLACER_MT "relay.replacer"
#define BUF_MT "relay.buf"

/* A C buffer owned by a userdata on the Lua stack. Pushing a result may
 * raise (the state's memory limit, see lua_api.c); the garbage collector
 * then frees the buffer instead of it leaking outside the count. */
static relay_buf_t *push_buf_box(lua_State *L) {
  relay_buf_t *b = lua_newuserdatauv(L, sizeof *b, 0);
  relay_buf_init(b);
  luaL_setmetatable(L, BUF_MT);
  return b;
}

static int l_buf_gc(lua_State *L) {
  relay_buf_dispose(luaL_checkudata(L, 1, BUF_MT));
  return 0;
}

typedef struct {
  relay_ruleset_t *rs;
  unsigned reasoning;   /* bit per state */
  int states_ref;       /* table index -> name, for :state() */
} l_ruleset_t;

relay_ruleset_t *relay_lua_check_ruleset(lua_State *L, int idx) {
  l_ruleset_t *u = luaL_checkudata(L, idx, RULESET_MT);
  return u->rs;
}

unsigned relay_lua_reasoning_states(lua_State *L, int t, relay_ruleset_t *rs) {
  lua_getfield(L, t, "rules");
  l_ruleset_t *u = luaL_testudata(L, -1, RULESET_MT);
  unsigned mask = u ? u->reasoning : 0;
  lua_pop(L, 1);
  return mask;
}

/* A state given by name (looked up in the states list) or by number (0-based). */
static unsigned state_index(lua_State *L, int states, int v, const char *what, int rule) {
  if (lua_type(L, v) == LUA_TNUMBER) {
    lua_Integer i = lua_tointeger(L, v);
    if (i < 0 || i >= RELAY_REPLACER_MAX_STATES)
      luaL_error(L, "rule %d: %s state %d out of range 0..%d", rule, what, (int)i, RELAY_REPLACER_MAX_STATES - 1);
    return (unsigned)i;
  }
  const char *name = lua_tostring(L, v);
  if (!name || states == 0) luaL_error(L, "rule %d: %s must be a state name from 'states' or a number", rule, what);
  lua_Integer n = (lua_Integer)lua_rawlen(L, states);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, states, i);
    int eq = lua_isstring(L, -1) && strcmp(lua_tostring(L, -1), name) == 0;
    lua_pop(L, 1);
    if (eq) return (unsigned)(i - 1);
  }
  return (unsigned)luaL_error(L, "rule %d: unknown state '%s'", rule, name);
}

/* relay.rules{states = {"outside", "inside"}, reasoning = {"inside"},
 *   {from = "outside", pattern = "<think>", replace = "<think>", to = "inside"}, ...} */
static int l_rules(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "states");
  int states = lua_istable(L, -1) ? lua_gettop(L) : 0;
  if (!states) lua_pop(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  if (n == 0) return luaL_error(L, "a rule set needs at least one rule");
  if (n > RELAY_REPLACER_MAX_RULES) return luaL_error(L, "too many rules (at most %d)", RELAY_REPLACER_MAX_RULES);
  relay_rule_t rules[RELAY_REPLACER_MAX_RULES];
  unsigned used = 0;
  /* Pattern and replacement strings stay on the stack until compiled. */
  luaL_checkstack(L, 2 * (int)n + 8, "too many rules");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    int r = lua_gettop(L);
    if (!lua_istable(L, r)) return luaL_error(L, "rule %d must be a table", (int)i);
    relay_rule_t *rule = &rules[i - 1];
    lua_getfield(L, r, "from");
    rule->from_state = lua_isnil(L, -1) ? 0 : state_index(L, states, lua_gettop(L), "from", (int)i);
    lua_getfield(L, r, "to");
    rule->to_state = lua_isnil(L, -1) ? rule->from_state : state_index(L, states, lua_gettop(L), "to", (int)i);
    lua_pop(L, 2);
    lua_getfield(L, r, "anchored");
    rule->anchored = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, r, "pattern");
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "rule %d: pattern must be a string", (int)i);
    rule->pattern = lua_tolstring(L, -1, &rule->pattern_len);
    lua_getfield(L, r, "replace");
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "");
    }
    if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "rule %d: replace must be a string", (int)i);
    rule->replacement = lua_tolstring(L, -1, &rule->replacement_len);
    lua_remove(L, r); /* leaves pattern and replacement */
    used |= 1u << rule->from_state | 1u << rule->to_state;
  }
  l_ruleset_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->rs = NULL;
  u->reasoning = 0;
  luaL_setmetatable(L, RULESET_MT);
  int rc = relay_ruleset_new(&u->rs, rules, (size_t)n);
  if (rc) return luaL_error(L, "invalid rule set: %s", relay_strerror(rc));
  lua_getfield(L, 1, "prefix");
  if (!lua_isnil(L, -1)) {
    size_t plen;
    const char *prefix = lua_tolstring(L, -1, &plen);
    if (!prefix || lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "prefix must be a string");
    rc = relay_ruleset_set_prefix(u->rs, prefix, plen);
    if (rc) return luaL_error(L, "invalid prefix: %s", relay_strerror(rc));
  }
  lua_pop(L, 1);
  lua_getfield(L, 1, "reasoning");
  if (lua_istable(L, -1)) {
    int t = lua_gettop(L);
    lua_Integer m = (lua_Integer)lua_rawlen(L, t);
    for (lua_Integer i = 1; i <= m; i++) {
      lua_rawgeti(L, t, i);
      u->reasoning |= 1u << state_index(L, states, lua_gettop(L), "reasoning", (int)i);
      lua_pop(L, 1);
    }
  } else {
    u->reasoning = used & ~1u; /* every state but the initial one */
  }
  lua_pop(L, 1);
  if (states) {
    lua_pushvalue(L, states);
    lua_setiuservalue(L, -2, 1);
  }
  return 1;
}

static int l_ruleset_gc(lua_State *L) {
  l_ruleset_t *u = luaL_checkudata(L, 1, RULESET_MT);
  if (u->rs) relay_ruleset_unref(u->rs);
  u->rs = NULL;
  return 0;
}

typedef struct {
  relay_replacer_t r;
  relay_mode_t mode;
  unsigned reasoning;
  int open;
} l_replacer_t;

typedef struct {
  relay_buf_t *content;
  relay_buf_t *reasoning;
  l_replacer_t *u;
  int oom;
} l_emit_t;

/* Collect output by sink in C buffers (two luaL_Buffers cannot interleave). */
static void l_emit(void *ud, relay_out_kind_t kind, unsigned state, const char *data, size_t len) {
  l_emit_t *e = ud;
  switch (relay_output_sink(e->u->mode, e->u->reasoning, kind, state)) {
    case RELAY_SINK_CONTENT: e->oom |= relay_buf_append(e->content, data, len); break;
    case RELAY_SINK_REASONING: e->oom |= relay_buf_append(e->reasoning, data, len); break;
    case RELAY_SINK_DROP: break;
  }
}

/* relay.replacer.new(rules [, {mode = "tags"|"field"|"strip"}]) */
static int l_replacer_new(lua_State *L) {
  l_ruleset_t *rs = luaL_checkudata(L, 1, RULESET_MT);
  const char *mode = "tags";
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "mode");
    if (!lua_isnil(L, -1)) mode = luaL_checkstring(L, -1);
  }
  l_replacer_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->open = 0;
  if (strcmp(mode, "tags") == 0) u->mode = RELAY_MODE_TAGS;
  else if (strcmp(mode, "field") == 0) u->mode = RELAY_MODE_FIELD;
  else if (strcmp(mode, "strip") == 0) u->mode = RELAY_MODE_STRIP;
  else return luaL_error(L, "mode '%s' is not one of tags, field, strip", mode);
  u->reasoning = rs->reasoning;
  if (relay_replacer_init(&u->r, rs->rs) != 0) return luaL_error(L, "out of memory");
  u->open = 1;
  luaL_setmetatable(L, REPLACER_MT);
  lua_pushvalue(L, 1); /* keep the rule set alive */
  lua_setiuservalue(L, -2, 1);
  return 1;
}

static int replacer_run(lua_State *L, int finish) {
  l_replacer_t *u = luaL_checkudata(L, 1, REPLACER_MT);
  size_t len = 0;
  const char *s = finish ? NULL : luaL_checklstring(L, 2, &len);
  l_emit_t e;
  e.content = push_buf_box(L);
  e.reasoning = push_buf_box(L);
  e.u = u;
  e.oom = 0;
  int rc = finish ? relay_replacer_finish(&u->r, l_emit, &e) : relay_replacer_feed(&u->r, s, len, l_emit, &e);
  lua_pushlstring(L, e.content->data ? e.content->data : "", e.content->len);
  lua_pushlstring(L, e.reasoning->data ? e.reasoning->data : "", e.reasoning->len);
  relay_buf_dispose(e.content);
  relay_buf_dispose(e.reasoning);
  if (rc || e.oom) return luaL_error(L, "replacer: %s", rc ? relay_strerror(rc) : "out of memory");
  if (u->mode == RELAY_MODE_FIELD) return 2;
  lua_pop(L, 1);
  return 1;
}

static int l_replacer_feed(lua_State *L) { return replacer_run(L, 0); }
static int l_replacer_finish(lua_State *L) { return replacer_run(L, 1); }

static int l_replacer_state(lua_State *L) {
  l_replacer_t *u = luaL_checkudata(L, 1, REPLACER_MT);
  lua_pushinteger(L, u->r.state);
  return 1;
}

static int l_replacer_pending(lua_State *L) {
  l_replacer_t *u = luaL_checkudata(L, 1, REPLACER_MT);
  lua_pushinteger(L, (lua_Integer)relay_replacer_pending(&u->r));
  return 1;
}

static int l_replacer_gc(lua_State *L) {
  l_replacer_t *u = luaL_checkudata(L, 1, REPLACER_MT);
  if (u->open) relay_replacer_dispose(&u->r);
  u->open = 0;
  return 0;
}

/* Path from a Lua table {"messages", 1, "content"}: numbers are 1-based. */
static int read_path(lua_State *L, int idx, relay_json_path_seg_t *segs, int max) {
  luaL_checktype(L, idx, LUA_TTABLE);
  int n = (int)lua_rawlen(L, idx);
  if (n == 0 || n > max) return luaL_error(L, "path must have 1 to %d elements", max);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k < 1) return luaL_error(L, "path element %d: array positions start at 1", i);
      segs[i - 1].key = NULL;
      segs[i - 1].index = (long)(k - 1);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      segs[i - 1].key = lua_tolstring(L, -1, &segs[i - 1].key_len);
    } else {
      return luaL_error(L, "path element %d must be a string or a number", i);
    }
    lua_pop(L, 1); /* the string stays alive in the path table */
  }
  return n;
}

#define PATH_MAX_DEPTH 32

/* relay.json.get(doc, path) -> raw JSON text of the value, or nil */
static int l_json_get(lua_State *L) {
  size_t len;
  const char *doc = luaL_checklstring(L, 1, &len);
  relay_json_path_seg_t segs[PATH_MAX_DEPTH];
  int n = read_path(L, 2, segs, PATH_MAX_DEPTH);
  size_t a, b;
  int rc = relay_json_find(doc, len, segs, (size_t)n, &a, &b);
  if (rc == RELAY_ENOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) return luaL_error(L, "relay.json.get: %s", relay_strerror(rc));
  lua_pushlstring(L, doc + a, b - a);
  return 1;
}

static int json_edit(lua_State *L, const char *raw, size_t raw_len) {
  size_t len;
  const char *doc = luaL_checklstring(L, 1, &len);
  relay_json_path_seg_t segs[PATH_MAX_DEPTH];
  int n = read_path(L, 2, segs, PATH_MAX_DEPTH);
  relay_buf_t *out = push_buf_box(L);
  int rc = relay_json_edit(doc, len, segs, (size_t)n, raw, raw_len, out);
  if (rc) {
    relay_buf_dispose(out);
    lua_pushnil(L);
    lua_pushstring(L, relay_strerror(rc));
    return 2;
  }
  lua_pushlstring(L, out->data ? out->data : "", out->len);
  relay_buf_dispose(out);
  return 1;
}

/* relay.json.set_raw(doc, path, raw_json) -> new doc | nil, err */
static int l_json_set_raw(lua_State *L) {
  size_t raw_len;
  const char *raw = luaL_checklstring(L, 3, &raw_len);
  return json_edit(L, raw, raw_len);
}

/* Pushes the value at idx encoded as JSON text: strings escaped as
 * relay_json_escape does, integers as they are, floats in the shortest
 * spelling that reads back as the same double, booleans, cjson.null, tables
 * through cjson. fname names the function in errors. */
static void push_json_value(lua_State *L, int idx, const char *fname) {
  relay_buf_t *enc = push_buf_box(L);
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      relay_buf_append(enc, "\"", 1);
      relay_json_escape(enc, s, n);
      relay_buf_append(enc, "\"", 1);
      break;
    }
    case LUA_TBOOLEAN: relay_buf_append_str(enc, lua_toboolean(L, idx) ? "true" : "false"); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) relay_buf_printf(enc, "%lld", (long long)lua_tointeger(L, idx));
      else {
        /* The shortest spelling that reads back as the same double. */
        double d = lua_tonumber(L, idx);
        if (d != d || d == HUGE_VAL || d == -HUGE_VAL) luaL_error(L, "%s: %f is not a JSON number", fname, d);
        char tmp[32];
        for (int prec = 15; prec <= 17; prec++) {
          snprintf(tmp, sizeof tmp, "%.*g", prec, d);
          if (strtod(tmp, NULL) == d) break;
        }
        relay_buf_append_str(enc, tmp);
      }
      break;
    case LUA_TLIGHTUSERDATA:
      /* cjson.null */
      if (lua_touserdata(L, idx) != NULL) luaL_error(L, "%s: cannot encode a userdata", fname);
      relay_buf_append_str(enc, "null");
      break;
    case LUA_TTABLE: {
      lua_getglobal(L, "require");
      lua_pushstring(L, "cjson");
      lua_call(L, 1, 1);
      lua_getfield(L, -1, "encode");
      lua_pushvalue(L, idx);
      lua_call(L, 1, 1);
      lua_replace(L, -3); /* the encoding takes the box's place */
      lua_pop(L, 1);
      relay_buf_dispose(enc);
      return;
    }
    default: luaL_error(L, "%s: cannot encode a %s", fname, luaL_typename(L, idx));
  }
  lua_pushlstring(L, enc->data ? enc->data : "", enc->len);
  relay_buf_dispose(enc);
  lua_replace(L, -2);
}

/* relay.json.set(doc, path, value): strings, numbers, booleans; tables via cjson. */
static int l_json_set(lua_State *L) {
  luaL_checkany(L, 3);
  push_json_value(L, 3, "relay.json.set");
  size_t raw_len;
  const char *raw = lua_tolstring(L, -1, &raw_len);
  return json_edit(L, raw, raw_len);
}

/* relay.json.remove(doc, path) -> new doc | nil, err */
static int l_json_remove(lua_State *L) { return json_edit(L, NULL, 0); }

/* relay.json.string(s): s encoded as a JSON string value, quotes included. */
static int l_json_string(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  relay_buf_t *enc = push_buf_box(L);
  relay_buf_append(enc, "\"", 1);
  relay_json_escape(enc, s, n);
  relay_buf_append(enc, "\"", 1);
  lua_pushlstring(L, enc->data, enc->len);
  relay_buf_dispose(enc);
  return 1;
}

/* relay.json.edit(doc, {{path = p, value = v} | {path = p, raw = "json"} |
 * {path = p, remove = true}, ...}) -> new doc | nil, err, index: every edit
 * read against doc as given and applied in one pass (relay_json_edit_many),
 * where a loop of relay.json.set calls would re-read the document each
 * time. The paths, edits and encoded values live in Lua memory (a userdata
 * and a table on the stack), so nothing leaks if reading them raises. */
static int l_json_edit(lua_State *L) {
  size_t len;
  const char *doc = luaL_checklstring(L, 1, &len);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = (size_t)lua_rawlen(L, 2), nsegs = 0;
  for (size_t i = 1; i <= n; i++) {
    if (lua_rawgeti(L, 2, (lua_Integer)i) != LUA_TTABLE) return luaL_error(L, "relay.json.edit: edit %d must be a table", (int)i);
    if (lua_getfield(L, -1, "path") != LUA_TTABLE)
      return luaL_error(L, "relay.json.edit: edit %d: path must be a table", (int)i);
    size_t d = (size_t)lua_rawlen(L, -1);
    if (d == 0 || d > PATH_MAX_DEPTH)
      return luaL_error(L, "relay.json.edit: edit %d: path must have 1 to %d elements", (int)i, PATH_MAX_DEPTH);
    nsegs += d;
    lua_pop(L, 2);
  }
  relay_json_edit_t *edits = lua_newuserdatauv(L, n * sizeof *edits + nsegs * sizeof(relay_json_path_seg_t) + 1, 0);
  relay_json_path_seg_t *segs = (relay_json_path_seg_t *)(edits + n);
  lua_createtable(L, (int)n, 0); /* the encoded values */
  int values = lua_gettop(L);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    int t = lua_gettop(L);
    relay_json_edit_t *e = &edits[i - 1];
    lua_getfield(L, t, "path");
    lua_pushfstring(L, "relay.json.edit: edit %d", (int)i);
    /* read_path's messages name the element; say which edit it is in */
    int d = (int)lua_rawlen(L, t + 1);
    for (int k = 1; k <= d; k++) {
      lua_rawgeti(L, t + 1, k);
      relay_json_path_seg_t *g = &segs[k - 1];
      if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_Integer x = lua_tointeger(L, -1);
        if (x < 1) return luaL_error(L, "%s: path element %d: array positions start at 1", lua_tostring(L, t + 2), k);
        g->key = NULL;
        g->key_len = 0;
        g->index = (long)(x - 1);
      } else if (lua_type(L, -1) == LUA_TSTRING) {
        g->key = lua_tolstring(L, -1, &g->key_len); /* alive in the path table */
        g->index = 0;
      } else {
        return luaL_error(L, "%s: path element %d must be a string or a number", lua_tostring(L, t + 2), k);
      }
      lua_pop(L, 1);
    }
    e->path = segs;
    e->depth = (size_t)d;
    segs += d;
    lua_getfield(L, t, "remove");
    int remove = lua_toboolean(L, -1);
    lua_getfield(L, t, "raw");
    lua_getfield(L, t, "value");
    int has_raw = !lua_isnil(L, -2), has_value = !lua_isnil(L, -1);
    if (remove + has_raw + has_value != 1)
      return luaL_error(L, "%s: needs one of value, raw or remove = true", lua_tostring(L, t + 2));
    if (remove) {
      e->raw = NULL;
      e->raw_len = 0;
    } else {
      if (has_raw) {
        if (lua_type(L, -2) != LUA_TSTRING) return luaL_error(L, "%s: raw must be a string", lua_tostring(L, t + 2));
        lua_pushvalue(L, -2);
      } else {
        push_json_value(L, lua_gettop(L), lua_tostring(L, t + 2));
      }
      e->raw = lua_tolstring(L, -1, &e->raw_len);
      lua_rawseti(L, values, (lua_Integer)i); /* keeps the string alive */
    }
    lua_settop(L, values);
  }
  relay_buf_t *out = push_buf_box(L);
  size_t failed = 0;
  int rc = relay_json_edit_many(doc, len, edits, n, out, &failed);
  if (rc) {
    relay_buf_dispose(out);
    lua_pushnil(L);
    lua_pushstring(L, relay_strerror(rc));
    lua_pushinteger(L, (lua_Integer)failed + 1);
    return 3;
  }
  lua_pushlstring(L, out->data ? out->data : "", out->len);
  relay_buf_dispose(out);
  return 1;
}

void relay_lua_open_text(lua_State *L) {
  /* the relay table is on top */
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, l_buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, RULESET_MT)) {
    lua_pushcfunction(L, l_ruleset_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  if (luaL_newmetatable(L, REPLACER_MT)) {
    static const luaL_Reg methods[] = {{"feed", l_replacer_feed}, {"finish", l_replacer_finish},
                                       {"state", l_replacer_state}, {"pending", l_replacer_pending},
                                       {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_replacer_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_rules);
  lua_setfield(L, -2, "rules");
  lua_newtable(L);
  lua_pushcfunction(L, l_replacer_new);
  lua_setfield(L, -2, "new");
  lua_setfield(L, -2, "replacer");
  static const luaL_Reg json[] = {{"get", l_json_get}, {"set", l_json_set}, {"set_raw", l_json_set_raw},
                                  {"remove", l_json_remove}, {"string", l_json_string}, {"edit", l_json_edit},
                                  {NULL, NULL}};
  luaL_newlib(L, json);
  lua_setfield(L, -2, "json");
}
