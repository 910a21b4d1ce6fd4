/* A rewrite's response hooks: on_event and on_body run as a filter of their
 * own, after the chat rewrite (so they see its output); on_text is called by
 * the chat filter for each rewritten piece; on_end runs when the exchange
 * ends. Each call runs under the script's budget with the exchange's ctx. A
 * failing hook is logged once and skipped for the rest of its response: the
 * response goes out as the core produced it (a failing on_body, whose
 * response has not started, makes it a 500). */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "log.h"
#include "lua_api.h"

/* Every way out of a hook: the stack as it was, the budget closed, and the
 * loop's clock brought up to date after a call long enough to have read it
 * (timers set next must not fire early). */
static void hook_end(relay_exchange_t *ex, lua_State *L, int top) {
  lua_settop(L, top);
  if (relay_lua__guard_end(L) && ex) uv_update_time(ex->proxy->loop);
}

static int hook_failed(relay_exchange_t *ex, lua_State *L, const char *hook, int rc, int top) {
  char buf[256];
  relay_log_error("%s %s: script error in %s: %s", ex ? llhttp_method_name(ex->method) : "-", ex ? ex->log_path : "-",
                  hook, relay_lua__error_text(L, rc, buf, sizeof buf));
  if (ex && ex->proxy->shared.metrics) relay_metrics_count(ex->proxy->shared.metrics, RELAY_METRICS_SCRIPT_ERRORS, 1);
  hook_end(ex, L, top);
  return -1;
}

/* Opens the call's budget and pushes the function and the ctx. The pushes
 * before the pcall are the relay's own (bounded by the event or body) and
 * not held to the memory limit, so they cannot fail outside a protected
 * call. */
static lua_State *hook_begin(relay_script_t *s, relay_exchange_t *ex, int ref, int *top) {
  lua_State *L = s->L;
  *top = lua_gettop(L);
  relay_lua__guard_begin(L);
  lua_pushcfunction(L, relay_lua__traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
  relay_lua__push_ctx(L, ex);
  return L;
}

/* Calls the hook with (ctx, args...) pushed after it; leaves one result. */
static int call_hook(relay_exchange_t *ex, lua_State *L, const char *hook, int nargs, int top) {
  relay_lua__guard_call(L, 1);
  int rc = lua_pcall(L, nargs, 1, top + 1);
  relay_lua__guard_call(L, 0);
  return rc == LUA_OK ? 0 : hook_failed(ex, L, hook, rc, top);
}

/* A string result replaces buf; nil keeps it. */
static int take_string_result(relay_exchange_t *ex, lua_State *L, const char *hook, relay_buf_t *buf, int top) {
  if (lua_isnil(L, -1)) {
    hook_end(ex, L, top);
    return 0;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pushfstring(L, "%s must return a string or nil (got %s)", hook, luaL_typename(L, -1));
    return hook_failed(ex, L, hook, LUA_ERRRUN, top);
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  relay_buf_reset(buf);
  int rc = relay_buf_append(buf, s, n);
  hook_end(ex, L, top);
  return rc;
}

/* ---- on_text, for the chat filter ------------------------------------- */

int relay_lua__text_hook(const relay_chat_opts_t *o, relay_exchange_t *ex, long index, const char *kind,
                        relay_buf_t *text) {
  int top;
  lua_State *L = hook_begin(o->owner, ex, o->on_text_ref, &top);
  lua_pushinteger(L, index);
  lua_pushlstring(L, text->data ? text->data : "", text->len);
  lua_pushstring(L, kind);
  if (call_hook(ex, L, "on_text", 4, top)) return -1;
  return take_string_result(ex, L, "on_text", text, top);
}

/* ---- on_event and on_body, as a filter --------------------------------- */

typedef struct lua_hooks_filter_s {
  relay_filter_t base;
  const relay_lua_hooks_opts_t *opts;
  int failed; /* a hook failed: the rest passes untouched */
  relay_buf_t data, out;
} lua_hooks_filter_t;

/* on_event(ctx, ev) with ev = {data =, event =}: a string replaces the data,
 * false drops the event, nil keeps it. */
static int hook_event(lua_hooks_filter_t *h, const relay_sse_event_t *ev, int *drop) {
  relay_exchange_t *ex = h->base.ex;
  int top;
  lua_State *L = hook_begin(h->opts->script, ex, h->opts->on_event_ref, &top);
  lua_createtable(L, 0, 2);
  lua_pushlstring(L, ev->data, ev->data_len);
  lua_setfield(L, -2, "data");
  if (ev->event) {
    lua_pushlstring(L, ev->event, ev->event_len);
    lua_setfield(L, -2, "event");
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "relay.event_mt");
  lua_setmetatable(L, -2);
  if (call_hook(ex, L, "on_event", 2, top)) return -1;
  *drop = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  if (*drop) {
    hook_end(ex, L, top);
    return 0;
  }
  relay_buf_reset(&h->data);
  if (relay_buf_append(&h->data, ev->data, ev->data_len)) {
    hook_end(ex, L, top);
    return -1;
  }
  return take_string_result(ex, L, "on_event", &h->data, top);
}

/* Events without data (comments) pass untouched; new data is written by the
 * framer's writer, so line breaks in it cannot split or add events. */
static int hooks_on_event(relay_filter_t *f, const relay_sse_event_t *ev) {
  lua_hooks_filter_t *h = (lua_hooks_filter_t *)f;
  if (!ev->data || h->failed) return relay_filter_pass(f, ev->raw, ev->raw_len);
  int drop = 0;
  if (hook_event(h, ev, &drop)) {
    h->failed = 1;
    return relay_filter_pass(f, ev->raw, ev->raw_len);
  }
  if (drop) return 0;
  if (h->data.len == ev->data_len && memcmp(h->data.data, ev->data, ev->data_len) == 0)
    return relay_filter_pass(f, ev->raw, ev->raw_len);
  relay_buf_reset(&h->out);
  if (relay_sse_event_with_data(ev, h->data.data ? h->data.data : "", h->data.len, &h->out)) return RELAY_ENOMEM;
  return relay_filter_pass(f, h->out.data, h->out.len);
}

/* on_body(ctx, body) with the whole body: its failure fails the response. */
static int hooks_on_data(relay_filter_t *f, const char *data, size_t len) {
  lua_hooks_filter_t *h = (lua_hooks_filter_t *)f;
  relay_exchange_t *ex = f->ex;
  int top;
  lua_State *L = hook_begin(h->opts->script, ex, h->opts->on_body_ref, &top);
  lua_pushlstring(L, data, len);
  relay_buf_reset(&h->data);
  if (call_hook(ex, L, "on_body", 2, top) || relay_buf_append(&h->data, data, len) ||
      take_string_result(ex, L, "on_body", &h->data, top)) {
    relay_filter_fail(f);
    return 0;
  }
  return relay_filter_pass(f, h->data.data ? h->data.data : "", h->data.len);
}

static int hooks_on_end(relay_filter_t *f, relay_end_t how) { return 0; }

/* The hooks see what the chat rewrite would: 2xx JSON (on_body) or SSE
 * (on_event) bodies, unencoded. */
static int hooks_on_head(relay_filter_t *f, const relay_response_t *r) {
  lua_hooks_filter_t *h = (lua_hooks_filter_t *)f;
  if (!relay_response_is_rewritable(r)) return RELAY_FILTER_SKIP;
  if (r->media == RELAY_MEDIA_SSE && h->opts->on_event_ref) f->unit = RELAY_UNIT_EVENTS;
  else if (r->media == RELAY_MEDIA_JSON && h->opts->on_body_ref) f->unit = RELAY_UNIT_BODY;
  else return RELAY_FILTER_SKIP;
  return 0;
}

static void hooks_dispose(relay_filter_t *f) {
  lua_hooks_filter_t *h = (lua_hooks_filter_t *)f;
  relay_buf_dispose(&h->data);
  relay_buf_dispose(&h->out);
  free(h);
}

static const relay_filter_ops_t hooks_ops = {"script", hooks_on_head, hooks_on_data, hooks_on_event, hooks_on_end,
                                             hooks_dispose};

static relay_filter_t *hooks_create(const void *opts, relay_exchange_t *ex) {
  lua_hooks_filter_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->base.ops = &hooks_ops;
  h->base.ex = ex;
  h->opts = opts;
  return &h->base;
}

relay_lua_hooks_opts_t *relay_lua__hooks_opts_new(relay_script_t *s) {
  relay_lua_hooks_opts_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->refs = 1;
  o->script = s;
  return o;
}

static void hooks_opts_ref(void *p) { ((relay_lua_hooks_opts_t *)p)->refs++; }

static void hooks_opts_unref(void *p) {
  relay_lua_hooks_opts_t *o = p;
  if (--o->refs > 0) return;
  lua_State *L = o->script->L;
  int refs[] = {o->on_event_ref, o->on_body_ref, o->on_end_ref};
  for (int i = 0; i < 3; i++)
    if (refs[i] && L) luaL_unref(L, LUA_REGISTRYINDEX, refs[i]);
  free(o);
}

const relay_filter_type_t relay_lua__hooks_filter_type = {"script", hooks_create, hooks_opts_ref, hooks_opts_unref,
                                                         RELAY_FILTER_READS_BODY};

/* ---- on_end, and the end of the exchange -------------------------------- */

/* on_end(ctx, {status, bytes_in, bytes_out, complete}) once the exchange is
 * logged; then its ctx goes. */
void relay_lua__exchange_end(relay_site_t *site, relay_exchange_t *ex) {
  relay_script_t *s = (relay_script_t *)site;
  const relay_route_t *r = &ex->route;
  for (unsigned i = 0; i < r->nfilters; i++) {
    if (r->filters[i].type != &relay_lua__hooks_filter_type) continue;
    const relay_lua_hooks_opts_t *o = r->filters[i].opts;
    if (!o->on_end_ref) continue;
    int top;
    lua_State *L = hook_begin(s, ex, o->on_end_ref, &top);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, ex->status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, (lua_Integer)ex->bytes_out);
    lua_setfield(L, -2, "bytes_out");
    lua_pushinteger(L, (lua_Integer)ex->bytes_in);
    lua_setfield(L, -2, "bytes_in");
    lua_pushboolean(L, ex->resp_state == RELAY_RESP_DONE);
    lua_setfield(L, -2, "complete");
    if (call_hook(ex, L, "on_end", 2, top) == 0) hook_end(ex, L, top);
  }
  if (r->script_ctx && s->L) luaL_unref(s->L, LUA_REGISTRYINDEX, r->script_ctx);
  ex->route.script_ctx = 0;
}
