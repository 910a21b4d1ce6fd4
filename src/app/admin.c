/* The admin thread: active health checks and the admin listener. See
 * admin.h. */
#include "admin.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "client.h"
#include "head.h"
#include "listen.h"
#include "log.h"
#include "relay/json_splice.h"
#include "script.h"
#include "server.h"

/* Admin clients at once: a scraper and a probe or two. More are answered
 * 503 and closed; idle ones go at the header timeout. */
#define ADMIN_MAX_CLIENTS 64
#define ADMIN_HEAD_MAX (16 * 1024)
#define ADMIN_TIMEOUT_MS 10000
/* Response heads of a health check (a /v1/models head is a few hundred bytes). */
#define CHECK_HEAD_MAX (64 * 1024)
#define CHECK_DETAIL_MAX 128
/* A worker whose loop has not turned for this long is stalled: /healthz
 * says so (a script's top level may run up to 10 s on a reload). */
#define WORKER_STALL_MS 15000

typedef struct admin_set_s admin_set_t;

/* One server's active check: a tick every interval, one request at a time,
 * each under a deadline that covers connect, request and the whole
 * response. */
typedef struct admin_check_s {
  admin_set_t *set;
  unsigned u, k;  /* upstream and server in the set's configuration */
  int uslot, sslot;
  relay_upstream_t *peer;
  char name[RELAY_HOST_MAX + 16];       /* "host:port" */
  char host_field[RELAY_HOST_MAX + 16];
  uv_timer_t tick, deadline;
  relay_upconn_t *conn; /* the check in flight, or NULL */
  relay_head_t resp;
  int status;           /* the final status of the response in flight */
  int result;           /* -1 not checked yet, 0 failing, 1 passing */
  char detail[CHECK_DETAIL_MAX];
} admin_check_t;

/* One configuration as the admin serves it: names and slots for labels and
 * the board, and the checks. A reload makes a new one; the old one goes once
 * its timers have closed. */
struct admin_set_s {
  relay_admin_t *admin;
  relay_config_t cfg;
  int uslot[RELAY_MAX_UPSTREAMS];
  int sslot[RELAY_MAX_UPSTREAMS][RELAY_MAX_SERVERS];
  char server_name[RELAY_MAX_UPSTREAMS][RELAY_MAX_SERVERS][RELAY_HOST_MAX + 16];
  /* By slot, for the metrics' label provider: NULL where this
   * configuration has no such upstream or server. */
  const char *upstream_by_slot[RELAY_METRICS_MAX_UPSTREAMS];
  const char *server_by_slot[RELAY_METRICS_MAX_UPSTREAMS][RELAY_METRICS_MAX_SERVERS];
  admin_check_t *check[RELAY_MAX_UPSTREAMS][RELAY_MAX_SERVERS]; /* NULL: checks off */
  admin_check_t *checks;
  size_t nchecks;
  unsigned handles_open;
};

struct relay_admin_s {
  uv_loop_t loop;
  uv_thread_t thread;
  uv_async_t wakeup;
  atomic_int reload_requested, stop_requested, draining;
  const char *script_path;
  relay_metrics_t *const *metrics;
  size_t nworkers;
  relay_metrics_slots_t *slots;
  relay_health_board_t *board;
  relay_slab_pool_t slabs;
  llhttp_settings_t resp_settings;
  relay_server_t server;
  relay_server_opts_t server_opts;
  int listening;
  admin_set_t *set;
  int stopping;
};

static void check_tick_cb(uv_timer_t *t);

/* ---- the admin listener's socket ---------------------------------------- */

int relay_admin_bind(const relay_config_t *cfg, char *err, size_t errlen) {
  return relay_listen_socket(cfg->admin_addr, cfg->admin_port, 0, "RELAY_ADMIN_ADDR", "the admin port ", err, errlen);
}

/* ---- health checks -------------------------------------------------------- */

static void set_handle_closed(uv_handle_t *h);

/* A check's verdict: posted to the workers, and logged when it changes. */
static void check_done(admin_check_t *c, int passed, const char *detail) {
  uv_timer_stop(&c->deadline);
  int before = c->result;
  c->result = passed;
  snprintf(c->detail, sizeof c->detail, "%s", detail);
  if (c->uslot >= 0 && c->sslot >= 0) relay_health_post(c->set->admin->board, (unsigned)c->uslot, (unsigned)c->sslot, passed);
  const char *up = c->set->cfg.upstreams[c->u].name;
  if (!passed && before != 0)
    relay_log_warn("upstream %s: server %s fails its health check (%s)", up, c->name, detail);
  else if (passed && before == 0)
    relay_log_info("upstream %s: server %s passes its health check again", up, c->name);
}

static void check_on_connected(void *ud, relay_upconn_t *u) {
  admin_check_t *c = ud;
  const relay_upstream_cfg_t *cfg = &c->set->cfg.upstreams[c->u];
  relay_write_t *wr = relay_write_new(&c->set->admin->slabs, NULL, NULL);
  char head[RELAY_HEALTH_PATH_MAX + RELAY_HOST_MAX + 160];
  int n = snprintf(head, sizeof head,
                   "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: oss-relay/%s health-check\r\nAccept: */*\r\n"
                   "Connection: close\r\n\r\n",
                   cfg->health_path, c->host_field, RELAY_VERSION);
  if (!wr || n < 0 || (size_t)n >= sizeof head || relay_write_add_copy(wr, head, (size_t)n)) {
    if (wr) relay_write_free(wr);
    relay_upconn_close(u);
    c->conn = NULL;
    check_done(c, 0, "out of memory");
    return;
  }
  relay_upconn_write(u, wr);
}

static void check_on_error(void *ud, int err, int timed_out) {
  admin_check_t *c = ud;
  c->conn = NULL;
  char d[CHECK_DETAIL_MAX];
  snprintf(d, sizeof d, "%s", timed_out ? "timed out" : err == UV_EPROTO ? "not a valid HTTP response" : relay_strerror(err));
  check_done(c, 0, d);
}

static int check_on_head(void *ud, const llhttp_t *p) {
  admin_check_t *c = ud;
  c->status = p->status_code;
  return 0;
}

static int check_on_body(void *ud, relay_slab_t *s, const char *data, size_t len) { return 0; }

static int check_on_message_end(void *ud, const llhttp_t *p) {
  return p->status_code >= 100 && p->status_code < 200 ? 0 : HPE_PAUSED;
}

/* The whole response is in. Any answer below 500 passes: the server is up
 * and serving HTTP (a 401 from a server that wants an API key the check
 * does not send must not take every server out); a 5xx (a model still
 * loading, a broken backend) fails. */
static void check_on_done(void *ud, int reusable) {
  admin_check_t *c = ud;
  relay_upconn_t *u = c->conn;
  c->conn = NULL;
  if (u) relay_upconn_release(u, 0);
  char d[CHECK_DETAIL_MAX];
  snprintf(d, sizeof d, "status %d", c->status);
  check_done(c, c->status >= 200 && c->status < 500, d);
}

static void check_noop(void *ud) {}
static void check_tunnel_data(void *ud, relay_slab_t *s, const char *data, size_t len) {}

static const relay_upconn_handler_t check_handler = {
    check_on_connected, check_on_error, check_on_head, check_on_body,     check_on_message_end, check_on_done,
    check_noop,         check_noop,     check_noop,    check_tunnel_data, check_noop};

/* The deadline of the whole check: whatever is left of it is closed. */
static void check_deadline_cb(uv_timer_t *t) {
  admin_check_t *c = t->data;
  if (!c->conn) return;
  relay_upconn_close(c->conn);
  c->conn = NULL;
  char d[CHECK_DETAIL_MAX];
  snprintf(d, sizeof d, "no answer within %lu ms", c->set->cfg.upstreams[c->u].health_timeout_ms);
  check_done(c, 0, d);
}

/* One request at a time: a check still in flight at the next tick is left
 * to its deadline. */
static void check_tick_cb(uv_timer_t *t) {
  admin_check_t *c = t->data;
  if (c->conn) return;
  relay_head_reset(&c->resp);
  c->status = 0;
  relay_upconn_t *u;
  int rc = relay_upconn_acquire(c->peer, &check_handler, c, &c->resp, &u);
  if (rc < 0) {
    check_done(c, 0, relay_strerror(rc));
    return;
  }
  c->conn = u;
  uv_timer_start(&c->deadline, check_deadline_cb, c->set->cfg.upstreams[c->u].health_timeout_ms, 0);
  if (rc == 1) check_on_connected(c, u);
}

/* A check's peer: a connection per check (never pooled), every deadline the
 * check's own. */
static int check_init(relay_admin_t *a, admin_set_t *set, admin_check_t *c, unsigned u, unsigned k) {
  const relay_upstream_cfg_t *ucfg = &set->cfg.upstreams[u];
  const relay_server_addr_t *addr = &ucfg->servers[k];
  c->set = set;
  c->u = u;
  c->k = k;
  c->uslot = set->uslot[u];
  c->sslot = set->sslot[u][k];
  c->result = -1;
  snprintf(c->name, sizeof c->name, "%s", set->server_name[u][k]);
  relay_config_host_field(addr, c->host_field, sizeof c->host_field);
  relay_head_init(&c->resp, CHECK_HEAD_MAX);
  unsigned long t = ucfg->health_timeout_ms;
  relay_upstream_opts_t opts = {t, t, t, 0};
  char logname[RELAY_UPSTREAM_NAME_MAX];
  snprintf(logname, sizeof logname, "%.20s %.34s (check)", ucfg->name, c->name);
  c->peer = relay_upstream_new(&a->loop, &a->slabs, &a->resp_settings, logname, addr->host, addr->port, &opts);
  if (!c->peer) return RELAY_ENOMEM;
  uv_timer_init(&a->loop, &c->tick);
  uv_timer_init(&a->loop, &c->deadline);
  c->tick.data = c->deadline.data = c;
  set->handles_open += 2;
  set->check[u][k] = c;
  return 0;
}

/* ---- configuration snapshots ---------------------------------------------- */

static void set_free(admin_set_t *set) {
  for (size_t i = 0; i < set->nchecks; i++) relay_head_dispose(&set->checks[i].resp);
  free(set->checks);
  free(set);
}

static void set_handle_closed(uv_handle_t *h) {
  admin_check_t *c = h->data;
  admin_set_t *set = c->set;
  if (--set->handles_open == 0) set_free(set);
}

/* The set is replaced (or the admin stops): checks in flight close, the
 * peers pool nothing, and the set goes once its timers have closed. */
static void set_retire(admin_set_t *set) {
  if (set->nchecks == 0 || set->handles_open == 0) {
    for (size_t i = 0; i < set->nchecks; i++)
      if (set->checks[i].peer) relay_upstream_unref(set->checks[i].peer);
    set_free(set);
    return;
  }
  for (size_t i = 0; i < set->nchecks; i++) {
    admin_check_t *c = &set->checks[i];
    if (c->conn) relay_upconn_close(c->conn);
    c->conn = NULL;
    if (c->peer) {
      relay_upstream_retire(c->peer);
      relay_upstream_unref(c->peer);
      c->peer = NULL;
    }
    if (c->tick.loop) {
      uv_close((uv_handle_t *)&c->tick, set_handle_closed);
      uv_close((uv_handle_t *)&c->deadline, set_handle_closed);
    }
  }
}

/* Slots and names for cfg, and a check per server of each upstream that is
 * checked. */
static admin_set_t *set_new(relay_admin_t *a, const relay_config_t *cfg) {
  admin_set_t *set = calloc(1, sizeof *set);
  if (!set) return NULL;
  set->admin = a;
  set->cfg = *cfg;
  size_t nchecks = 0;
  for (size_t u = 0; u < cfg->nupstreams; u++) {
    const relay_upstream_cfg_t *ucfg = &cfg->upstreams[u];
    set->uslot[u] = relay_metrics_slot_upstream(a->slots, ucfg->name);
    if (set->uslot[u] >= 0) set->upstream_by_slot[set->uslot[u]] = relay_metrics_slots_upstream_name(a->slots, (size_t)set->uslot[u]);
    for (unsigned k = 0; k < ucfg->nservers; k++) {
      relay_config_server_name(&ucfg->servers[k], set->server_name[u][k], sizeof set->server_name[u][k]);
      int s = set->uslot[u] < 0 ? -1 : relay_metrics_slot_server(a->slots, (unsigned)set->uslot[u], set->server_name[u][k]);
      set->sslot[u][k] = s;
      if (s >= 0) set->server_by_slot[set->uslot[u]][s] = set->server_name[u][k];
    }
    if (relay_config_health_interval(cfg, ucfg) > 0) nchecks += ucfg->nservers;
  }
  set->checks = nchecks ? calloc(nchecks, sizeof *set->checks) : NULL;
  if (nchecks && !set->checks) {
    free(set);
    return NULL;
  }
  for (size_t u = 0; u < cfg->nupstreams; u++) {
    const relay_upstream_cfg_t *ucfg = &cfg->upstreams[u];
    if (relay_config_health_interval(cfg, ucfg) == 0) continue;
    for (unsigned k = 0; k < ucfg->nservers; k++) {
      admin_check_t *c = &set->checks[set->nchecks++];
      if (check_init(a, set, c, (unsigned)u, k)) {
        set_retire(set);
        return NULL;
      }
    }
  }
  return set;
}

/* The first round of checks at once (spread over a few ms), then one per
 * interval. */
static void set_start(admin_set_t *set) {
  for (size_t i = 0; i < set->nchecks; i++) {
    admin_check_t *c = &set->checks[i];
    unsigned long every = relay_config_health_interval(&set->cfg, &set->cfg.upstreams[c->u]);
    uv_timer_start(&c->tick, check_tick_cb, i % 16, every);
  }
}

static void admin_reload(relay_admin_t *a) {
  char err[1024];
  relay_script_t *s = relay_script_new(a->script_path, err, sizeof err);
  if (!s) {
    relay_log_error("admin: the script did not load; health checks and /metrics keep the running configuration: %s",
                    err);
    return;
  }
  admin_set_t *set = set_new(a, &s->site.cfg);
  if (set && (set->cfg.admin_port != a->set->cfg.admin_port ||
              strcmp(set->cfg.admin_addr, a->set->cfg.admin_addr) != 0))
    relay_log_warn("admin: a new admin address or port takes effect at the next start");
  relay_site_unref(&s->site);
  if (!set) {
    relay_log_error("admin: out of memory; health checks keep the running configuration");
    return;
  }
  set_retire(a->set);
  a->set = set;
  set_start(set);
}

/* ---- HTTP: /healthz and /metrics ---------------------------------------------- */

static const char *reason_of(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    default: return "Service Unavailable";
  }
}

/* The response goes in one write; the connection goes on (or closes) as the
 * server decides after it. */
static void respond(relay_client_t *c, int status, const char *ctype, const char *extra, relay_buf_t *body,
                    int head_only) {
  relay_admin_t *a = c->server->data;
  relay_buf_t out;
  relay_buf_init(&out);
  int rc = relay_buf_printf(&out,
                            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                            "%s%s\r\n",
                            status, reason_of(status), ctype, body->len, extra ? extra : "",
                            c->close_after ? "Connection: close\r\n" : "");
  if (rc == 0 && !head_only && body->len) rc = relay_buf_append(&out, body->data, body->len);
  relay_write_t *wr = rc == 0 ? relay_write_new(&a->slabs, NULL, NULL) : NULL;
  if (wr) {
    size_t len;
    char *data = relay_buf_steal(&out, &len);
    relay_write_add_heap(wr, data, len);
    relay_client_write(c, wr);
  } else {
    c->close_after = 1;
  }
  relay_buf_dispose(&out);
  relay_client_exchange_done(c);
}

static void respond_error(relay_client_t *c, int status, const char *code, const char *message, const char *extra) {
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_printf(&b, "{\"error\":{\"message\":\"%s\",\"type\":\"invalid_request_error\",\"code\":\"%s\"}}\n",
                   message, code);
  respond(c, status, "application/json", extra, &b, c->parser.method == HTTP_HEAD);
  relay_buf_dispose(&b);
}

/* Label names for the render: the registry's, for what this configuration
 * has. */
static const char *route_label(void *ctx, size_t i) {
  admin_set_t *set = ctx;
  if (i == RELAY_METRICS_ROUTE_SCRIPT) return "(script)";
  if (i == RELAY_METRICS_ROUTE_NONE) return "(none)";
  if (i == RELAY_METRICS_ROUTE_OTHER) return "(other)";
  return relay_metrics_slots_route_name(set->admin->slots, i);
}

static const char *upstream_label(void *ctx, size_t u) {
  admin_set_t *set = ctx;
  return u < RELAY_METRICS_MAX_UPSTREAMS ? set->upstream_by_slot[u] : NULL;
}

static const char *server_label(void *ctx, size_t u, size_t s) {
  admin_set_t *set = ctx;
  return u < RELAY_METRICS_MAX_UPSTREAMS && s < RELAY_METRICS_MAX_SERVERS ? set->server_by_slot[u][s] : NULL;
}

static void serve_metrics(relay_client_t *c, int head_only) {
  relay_admin_t *a = c->server->data;
  uv_update_time(&a->loop);
  relay_metrics_names_t names = {a->set, route_label, upstream_label, server_label, uv_now(&a->loop)};
  relay_buf_t b;
  relay_buf_init(&b);
  if (relay_metrics_render((const relay_metrics_t *const *)a->metrics, a->nworkers, &names, &b)) {
    relay_buf_dispose(&b);
    respond_error(c, 500, "out_of_memory", "the metrics could not be rendered", NULL);
    return;
  }
  respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, &b, head_only);
  relay_buf_dispose(&b);
}

static void put_json_str(relay_buf_t *b, const char *s) {
  relay_buf_append(b, "\"", 1);
  relay_json_escape(b, s, strlen(s));
  relay_buf_append(b, "\"", 1);
}

/* One upstream: its servers as the workers see them (up unless a worker has
 * it down) with their checks; healthy while one server is up. */
static int healthz_upstream(relay_admin_t *a, admin_set_t *set, size_t u, uint64_t now, relay_buf_t *b) {
  const relay_upstream_cfg_t *ucfg = &set->cfg.upstreams[u];
  int any_up = 0;
  relay_buf_t servers;
  relay_buf_init(&servers);
  for (unsigned k = 0; k < ucfg->nservers; k++) {
    int us = set->uslot[u], ss = set->sslot[u][k];
    const relay_metrics_t *const *ws = (const relay_metrics_t *const *)a->metrics;
    int known = ws && us >= 0 && ss >= 0;
    int up = !known || relay_metrics_server_is_up(ws, a->nworkers, (unsigned)us, (unsigned)ss, now);
    int64_t load = known ? relay_metrics_server_load(ws, a->nworkers, (unsigned)us, (unsigned)ss) : 0;
    any_up |= up;
    const admin_check_t *c = set->check[u][k];
    relay_buf_append_str(&servers, k ? ",{\"server\":" : "{\"server\":");
    put_json_str(&servers, set->server_name[u][k]);
    relay_buf_printf(&servers, ",\"state\":\"%s\",\"outstanding\":%lld,\"check\":\"%s\"", up ? "up" : "down",
                     (long long)load, !c ? "off" : c->result < 0 ? "pending" : c->result ? "passing" : "failing");
    if (c && c->result >= 0) {
      relay_buf_append_str(&servers, ",\"last_check\":");
      put_json_str(&servers, c->detail);
    }
    relay_buf_append(&servers, "}", 1);
  }
  relay_buf_append_str(b, "{\"name\":");
  put_json_str(b, ucfg->name);
  relay_buf_printf(b, ",\"healthy\":%s,\"servers\":[", any_up ? "true" : "false");
  if (servers.len) relay_buf_append(b, servers.data, servers.len);
  relay_buf_append_str(b, "]}");
  relay_buf_dispose(&servers);
  return any_up;
}

/* Workers whose loop has not turned for WORKER_STALL_MS (their heartbeat
 * is written every 200 ms), as a JSON list in out; returns how many. */
static int stalled_workers(relay_admin_t *a, uint64_t now, relay_buf_t *out) {
  int n = 0;
  if (!a->metrics) return 0;
  for (size_t i = 0; i < a->nworkers; i++) {
    int64_t hb = relay_metrics_last_heartbeat(a->metrics[i]);
    if (hb >= 0 && (uint64_t)hb + WORKER_STALL_MS >= now) continue;
    relay_buf_printf(out, "%s%zu", n ? "," : "", i);
    n++;
  }
  return n;
}

/* GET /healthz (readiness): 200 while every upstream has a server up and
 * every worker turns, else 503; 503 while stopping. GET /healthz?live
 * (liveness): 200 while every worker turns, whatever the upstreams do (a
 * restart of the relay would not bring a model back). */
static void serve_healthz(relay_client_t *c, const relay_target_t *t, int head_only) {
  relay_admin_t *a = c->server->data;
  admin_set_t *set = a->set;
  uv_update_time(&a->loop);
  uint64_t now = uv_now(&a->loop);
  relay_buf_t ups, b, stalled;
  relay_buf_init(&ups);
  relay_buf_init(&b);
  relay_buf_init(&stalled);
  int nstalled = stalled_workers(a, now, &stalled);
  int live = t->has_query && t->query_len == 4 && memcmp(t->query, "live", 4) == 0;
  int ok;
  if (live) {
    ok = nstalled == 0;
    relay_buf_printf(&b, "{\"status\":\"%s\"", ok ? "alive" : "stalled");
  } else {
    int healthy = 1;
    for (size_t u = 0; u < set->cfg.nupstreams; u++) {
      if (u) relay_buf_append(&ups, ",", 1);
      healthy &= healthz_upstream(a, set, u, now, &ups);
    }
    int stopping = atomic_load(&a->draining);
    ok = healthy && !stopping && nstalled == 0;
    relay_buf_printf(&b, "{\"status\":\"%s\",\"upstreams\":[",
                     stopping ? "stopping" : nstalled ? "stalled" : healthy ? "ok" : "unavailable");
    if (ups.len) relay_buf_append(&b, ups.data, ups.len);
    relay_buf_append(&b, "]", 1);
  }
  if (nstalled) {
    relay_buf_append_str(&b, ",\"stalled_workers\":[");
    relay_buf_append(&b, stalled.data, stalled.len);
    relay_buf_append(&b, "]", 1);
  }
  relay_buf_append_str(&b, "}\n");
  respond(c, ok ? 200 : 503, "application/json", NULL, &b, head_only);
  relay_buf_dispose(&ups);
  relay_buf_dispose(&b);
  relay_buf_dispose(&stalled);
}

static int path_is(const relay_target_t *t, const char *p) {
  return t->path_len == strlen(p) && memcmp(t->path, p, t->path_len) == 0;
}

static void admin_on_request(relay_client_t *c) {
  relay_admin_t *a = c->server->data;
  if (!llhttp_should_keep_alive(&c->parser)) c->close_after = 1;
  if (a->server.nclients > ADMIN_MAX_CLIENTS) {
    c->close_after = 1;
    respond_error(c, 503, "too_many_connections", "too many admin connections", NULL);
    return;
  }
  relay_target_t t;
  relay_target_split(relay_head_target(&c->req), c->req.target_len, &t);
  int get = c->parser.method == HTTP_GET, head = c->parser.method == HTTP_HEAD;
  int metrics = path_is(&t, "/metrics"), healthz = path_is(&t, "/healthz");
  if (!metrics && !healthz) {
    respond_error(c, 404, "not_found", "the admin port serves GET /healthz and GET /metrics", NULL);
    return;
  }
  if (!get && !head) {
    respond_error(c, 405, "method_not_allowed", "use GET", "Allow: GET, HEAD\r\n");
    return;
  }
  if (metrics && !a->metrics) {
    respond_error(c, 404, "not_found", "metrics are off", NULL);
    return;
  }
  if (metrics) serve_metrics(c, head);
  else serve_healthz(c, &t, head);
}

static int admin_on_body(relay_client_t *c, relay_slab_t *s, const char *data, size_t len) { return 0; }
static void admin_on_client(relay_client_t *c) {}
static void admin_on_tunnel(relay_client_t *c, relay_slab_t *s, const char *data, size_t len) {}

static void admin_on_error(relay_client_t *c, int status, const char *code, const char *message) {
  c->close_after = 1;
  respond_error(c, status, code, message, NULL);
}

static const relay_server_handler_t admin_handler = {admin_on_request, admin_on_body,   admin_on_client,
                                                     admin_on_tunnel,  admin_on_client, admin_on_client,
                                                     admin_on_error,   admin_on_client, NULL};

/* ---- the thread --------------------------------------------------------------- */

static void admin_close_cb(uv_handle_t *h) {}

/* Everything closes; the loop ends when the last handle has. */
static void admin_shutdown(relay_admin_t *a) {
  if (a->stopping) return;
  a->stopping = 1;
  set_retire(a->set);
  a->set = NULL;
  if (a->listening) {
    relay_server_stop_accepting(&a->server);
    relay_server_close_all(&a->server);
  }
  uv_close((uv_handle_t *)&a->wakeup, admin_close_cb);
}

static void admin_wakeup_cb(uv_async_t *h) {
  relay_admin_t *a = h->data;
  if (a->stopping) return;
  if (atomic_load(&a->stop_requested)) {
    admin_shutdown(a);
    return;
  }
  if (atomic_exchange(&a->reload_requested, 0)) admin_reload(a);
}

static void admin_thread(void *arg) {
  relay_admin_t *a = arg;
  uv_run(&a->loop, UV_RUN_DEFAULT);
}

relay_admin_t *relay_admin_new(const relay_admin_opts_t *o, char *err, size_t errlen) {
  relay_admin_t *a = calloc(1, sizeof *a);
  if (!a) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  a->script_path = o->script_path;
  a->metrics = o->metrics;
  a->nworkers = o->nworkers;
  a->slots = o->slots;
  a->board = o->board;
  int rc = uv_loop_init(&a->loop);
  if (rc == 0) rc = uv_async_init(&a->loop, &a->wakeup, admin_wakeup_cb);
  if (rc) {
    snprintf(err, errlen, "admin loop: %s", relay_strerror(rc));
    return NULL; /* start-up fails; the process exits */
  }
  a->wakeup.data = a;
  relay_slab_pool_init(&a->slabs);
  relay_upstream_settings_init(&a->resp_settings);
  a->set = set_new(a, o->cfg);
  if (!a->set) {
    snprintf(err, errlen, "admin: out of memory");
    return NULL;
  }
  if (o->listen_fd >= 0) {
    a->server_opts.max_header_size = ADMIN_HEAD_MAX;
    a->server_opts.header_timeout_ms = ADMIN_TIMEOUT_MS;
    a->server_opts.body_timeout_ms = ADMIN_TIMEOUT_MS;
    a->server_opts.keepalive_timeout_ms = ADMIN_TIMEOUT_MS;
    a->server_opts.send_timeout_ms = ADMIN_TIMEOUT_MS;
    relay_server_init(&a->server, &a->loop, &a->slabs, &a->server_opts, &admin_handler, a);
    rc = relay_server_listen(&a->server, o->listen_fd);
    if (rc) {
      snprintf(err, errlen, "cannot listen on the admin port %s:%d: %s", o->cfg->admin_addr, o->cfg->admin_port,
               relay_strerror(rc));
      return NULL;
    }
    a->listening = 1;
  }
  set_start(a->set);
  return a;
}

int relay_admin_start(relay_admin_t *a) { return uv_thread_create(&a->thread, admin_thread, a); }

void relay_admin_reload(relay_admin_t *a) {
  atomic_store(&a->reload_requested, 1);
  uv_async_send(&a->wakeup);
}

void relay_admin_draining(relay_admin_t *a) { atomic_store(&a->draining, 1); }

static void admin_walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void relay_admin_stop(relay_admin_t *a) {
  atomic_store(&a->stop_requested, 1);
  uv_async_send(&a->wakeup);
  uv_thread_join(&a->thread);
  uv_walk(&a->loop, admin_walk_close, NULL);
  uv_run(&a->loop, UV_RUN_DEFAULT);
  uv_loop_close(&a->loop);
  relay_slab_pool_dispose(&a->slabs);
  free(a);
}
