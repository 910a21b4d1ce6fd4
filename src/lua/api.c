/* The declarations of the `relay` module: relay.listen, relay.upstream,
 * relay.settings, relay.log, relay.getenv, and the module itself. A script
 * makes them while it loads; errors name the caller's line. */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "log.h"
#include "lua_api.h"
#include "script.h"

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
  relay_script_t *s = relay_lua__declaring(L, "relay.listen");
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *addr = opt_str_field(L, 1, "addr", s->site.cfg.listen_addr);
  char tmp[RELAY_HOST_MAX];
  copy_bounded(L, tmp, sizeof tmp, addr, "listen addr");
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(tmp, 0, &a4) != 0 && uv_ip6_addr(tmp, 0, &a6) != 0)
    return luaL_error(L, "listen addr '%s' is not an IPv4 or IPv6 address", tmp);
  strcpy(s->site.cfg.listen_addr, tmp);
  s->site.cfg.listen_port = (int)opt_int_field(L, 1, "port", s->site.cfg.listen_port, 1, 65535);
  return 0;
}

/* One server given as host and port (the one-server form). */
static void read_host_port(lua_State *L, const char *name, relay_server_addr_t *a) {
  const char *host = opt_str_field(L, 1, "host", NULL);
  if (!host) luaL_error(L, "upstream '%s' needs a host (or servers = {...})", name);
  lua_getfield(L, 1, "port");
  if (lua_isnil(L, -1)) luaL_error(L, "upstream '%s' needs a port", name);
  lua_pop(L, 1);
  int port = (int)opt_int_field(L, 1, "port", 0, 1, 65535);
  memset(a, 0, sizeof *a);
  copy_bounded(L, a->host, sizeof a->host, host, "upstream host");
  if (a->host[0] == '[') { /* accept "[::1]" as well as "::1" */
    size_t n = strlen(a->host);
    if (a->host[n - 1] != ']') luaL_error(L, "upstream host '%s' is malformed", host);
    memmove(a->host, a->host + 1, n - 2);
    a->host[n - 2] = 0;
  }
  a->ipv6 = strchr(a->host, ':') != NULL;
  a->port = port;
}

/* servers = {"h:p", ...} or "h:p,h:p": parsed and checked by the same code
 * as UPSTREAM_SERVERS, whose messages name the entry at fault. */
static unsigned read_servers(lua_State *L, int t, const char *name, relay_server_addr_t *out) {
  char err[256];
  int n;
  if (lua_type(L, t) == LUA_TSTRING) {
    n = relay_balancer_parse_servers(lua_tostring(L, t), out, RELAY_MAX_SERVERS, err, sizeof err);
    if (n < 0) luaL_error(L, "upstream '%s': %s", name, err);
    return (unsigned)n;
  }
  if (!lua_istable(L, t)) luaL_error(L, "upstream '%s': servers must be a list of \"host:port\" strings", name);
  lua_Integer len = luaL_len(L, t);
  if (len < 1) luaL_error(L, "upstream '%s': servers is empty", name);
  if (len > RELAY_MAX_SERVERS) luaL_error(L, "upstream '%s': more than %d servers", name, RELAY_MAX_SERVERS);
  for (lua_Integer i = 1; i <= len; i++) {
    lua_geti(L, t, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "upstream '%s': servers[%I] must be a \"host:port\" string", name, (LUAI_UACINT)i);
    relay_server_addr_t a;
    if (relay_balancer_parse_servers(lua_tostring(L, -1), &a, 1, err, sizeof err) != 1)
      luaL_error(L, "upstream '%s': servers[%I]: %s", name, (LUAI_UACINT)i,
                 strstr(err, "more than") ? "one \"host:port\" per entry" : err);
    lua_pop(L, 1);
    for (lua_Integer k = 1; k < i; k++)
      if (out[k - 1].port == a.port && strcasecmp(out[k - 1].host, a.host) == 0)
        luaL_error(L, "upstream '%s': servers[%I] repeats servers[%I]", name, (LUAI_UACINT)i, (LUAI_UACINT)k);
    out[i - 1] = a;
  }
  return (unsigned)len;
}

/* health_path, health_interval, health_timeout of an upstream. */
static void read_health(lua_State *L, relay_upstream_cfg_t *u) {
  const char *path = opt_str_field(L, 1, "health_path", u->health_path);
  size_t n = strlen(path);
  if (path[0] != '/' || n >= sizeof u->health_path) luaL_error(L, "health_path must start with '/' (at most %d bytes)", (int)sizeof u->health_path - 1);
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)path[i] <= 0x20 || path[i] == 0x7f) luaL_error(L, "health_path must not contain spaces or control characters");
  memmove(u->health_path, path, n + 1);
  lua_getfield(L, 1, "health_interval");
  int set = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (set) {
    u->health_interval_ms = opt_seconds_field(L, 1, "health_interval", 0);
    if (u->health_interval_ms > 0 && u->health_interval_ms < 100) luaL_error(L, "health_interval must be 0 (off) or at least 0.1 seconds");
  }
  u->health_timeout_ms = opt_seconds_field(L, 1, "health_timeout", u->health_timeout_ms);
  if (u->health_timeout_ms < 10 || u->health_timeout_ms > 600000) luaL_error(L, "health_timeout must be 0.01 to 600 seconds");
}

/* relay.upstream{name = "default", host = "127.0.0.1", port = 1234} or
 * {name = ..., servers = {"10.0.0.1:8000", "10.0.0.2:8000"}}, with the
 * health check settings: returns the name. */
static int l_upstream(lua_State *L) {
  relay_script_t *s = relay_lua__declaring(L, "relay.upstream");
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const known[] = {"name", "host", "port", "servers", "health_path", "health_interval",
                                      "health_timeout", NULL};
  relay_lua__check_keys(L, 1, known, "relay.upstream: unknown field");
  const char *name = opt_str_field(L, 1, "name", "default");
  relay_upstream_cfg_t u;
  memset(&u, 0, sizeof u);
  copy_bounded(L, u.name, sizeof u.name, name, "upstream name");
  relay_config_upstream_defaults(&u);
  lua_getfield(L, 1, "servers");
  if (!lua_isnil(L, -1)) {
    lua_getfield(L, 1, "host");
    lua_getfield(L, 1, "port");
    if (!lua_isnil(L, -1) || !lua_isnil(L, -2))
      return luaL_error(L, "upstream '%s': give servers or host and port, not both", name);
    lua_pop(L, 2);
    u.nservers = read_servers(L, lua_gettop(L), name, u.servers);
  } else {
    read_host_port(L, name, &u.servers[0]);
    u.nservers = 1;
  }
  lua_pop(L, 1);
  read_health(L, &u);
  int idx = relay_config_find_upstream(&s->site.cfg, name);
  if (idx < 0) {
    if (s->site.cfg.nupstreams == RELAY_MAX_UPSTREAMS)
      return luaL_error(L, "too many upstreams (at most %d)", RELAY_MAX_UPSTREAMS);
    idx = (int)s->site.cfg.nupstreams++;
  }
  s->site.cfg.upstreams[idx] = u;
  lua_pushstring(L, s->site.cfg.upstreams[idx].name);
  return 1;
}

/* relay.admin{addr = "127.0.0.1", port = 9090}: the admin listener
 * (/healthz, /metrics); port 0 (or no call) leaves it off. */
static int l_admin(lua_State *L) {
  relay_script_t *s = relay_lua__declaring(L, "relay.admin");
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || (strcmp(lua_tostring(L, -1), "addr") && strcmp(lua_tostring(L, -1), "port")))
      return luaL_error(L, "relay.admin: unknown field '%s'", luaL_tolstring(L, -1, NULL));
  }
  const char *addr = opt_str_field(L, 1, "addr", s->site.cfg.admin_addr);
  char tmp[RELAY_HOST_MAX];
  copy_bounded(L, tmp, sizeof tmp, addr, "admin addr");
  size_t n = strlen(tmp);
  if (n > 2 && tmp[0] == '[' && tmp[n - 1] == ']') { /* "[::1]" */
    memmove(tmp, tmp + 1, n - 2);
    tmp[n - 2] = 0;
  }
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  if (uv_ip4_addr(tmp, 0, &a4) != 0 && uv_ip6_addr(tmp, 0, &a6) != 0)
    return luaL_error(L, "admin addr '%s' is not an IPv4 or IPv6 address", tmp);
  strcpy(s->site.cfg.admin_addr, tmp);
  s->site.cfg.admin_port = (int)opt_int_field(L, 1, "port", s->site.cfg.admin_port, 0, 65535);
  return 0;
}

/* relay.settings{connect_timeout = 10, ...}: timeouts in seconds. */
static int l_settings(lua_State *L) {
  relay_script_t *s = relay_lua__declaring(L, "relay.settings");
  relay_config_t *c = &s->site.cfg;
  luaL_checktype(L, 1, LUA_TTABLE);
  static const char *const known[] = {"connect_timeout", "header_timeout", "idle_timeout", "body_timeout",
                                      "send_timeout",
                                      "keepalive_timeout", "shutdown_timeout", "max_header_size",
                                      "max_body_buffer", "workers", "log_level", "script_timeout",
                                      "script_memory", NULL};
  relay_lua__check_keys(L, 1, known, "unknown setting");
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
    {"listen", l_listen}, {"upstream", l_upstream}, {"admin", l_admin}, {"settings", l_settings},
    {"log", l_log},       {"getenv", l_getenv},     {NULL, NULL}};

void relay_lua__check_keys(lua_State *L, int idx, const char *const *known, const char *what) {
  idx = lua_absindex(L, idx);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, lua_tostring(L, -1)) == 0;
    if (!ok) luaL_error(L, "%s '%s'", what, luaL_tolstring(L, -1, NULL));
  }
}

int relay_lua__open_module(lua_State *L) {
  luaL_newlib(L, relay_funcs);
  lua_pushstring(L, RELAY_VERSION);
  lua_setfield(L, -2, "version");
  relay_lua__open_routes(L);
  relay_lua_open_text(L);
  relay_lua__open_hooks(L);
  return 1;
}

