/* The request side of an exchange: routing with the site, the upstream head
 * and body (framed from what llhttp parsed), the upstream connection's
 * callbacks, retries, tunnels, and the end of the exchange. The response
 * side is response.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"

static void exchange_connect(relay_exchange_t *ex, int last_err, int timed_out);
static void on_connected(void *ud, relay_upconn_t *u);
static void answer_upstream_error(relay_exchange_t *ex, int err, int timed_out);

/* RFC 9110 9.2.2: a request that may be repeated without a different
 * effect. Only these are retried after a reused connection failed, since the
 * upstream may have read and acted on the first attempt. */
static int method_idempotent(llhttp_method_t m) {
  switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE: return 1;
    default: return 0;
  }
}

static relay_slab_pool_t *ex_slabs(relay_exchange_t *ex) { return &ex->proxy->slabs; }

/* Does the request carry body bytes (not just a "Content-Length: 0")? */
static int exchange_has_body(const relay_exchange_t *ex) {
  return ex->req_framing == RELAY_FRAME_CHUNKED || (ex->req_framing == RELAY_FRAME_LENGTH && ex->req_length > 0);
}

const relay_upstream_cfg_t *relay_exchange_upstream(const relay_exchange_t *ex) {
  if (!ex->site || ex->route.local_status || ex->route.upstream_index >= (int)ex->site->cfg.nupstreams) return NULL;
  return &ex->site->cfg.upstreams[ex->route.upstream_index];
}

const relay_server_addr_t *relay_exchange_server(const relay_exchange_t *ex) {
  const relay_upstream_cfg_t *u = relay_exchange_upstream(ex);
  if (!u || !ex->has_server || ex->server < 0 || ex->server >= (int)u->nservers) return NULL;
  return &u->servers[ex->server];
}

/* The route's upstream on this loop: its servers and their balancer. */
static relay_site_upstream_t *ex_group(const relay_exchange_t *ex) {
  return ex->site->upstreams[ex->route.upstream_index];
}

static relay_metrics_t *ex_metrics(const relay_exchange_t *ex) { return ex->proxy->shared.metrics; }

/* ---- the route ---------------------------------------------------------- */

static void route_release_filters(relay_route_t *r) {
  for (unsigned i = 0; i < r->nown; i++)
    if (r->own_filters[i].type->opts_unref) r->own_filters[i].type->opts_unref(r->own_filters[i].opts);
  r->nown = 0;
  r->filters = NULL;
  r->nfilters = 0;
}

/* The static route first (matched in C), then the request hook that applies,
 * at once or, when it reads the body, once the body is in. Returns 0, 1 (the
 * hook waits for the body) or a negative error with err filled. */
static int route_request(relay_exchange_t *ex, char *err, size_t errlen) {
  relay_site_t *s = ex->site;
  relay_target_t t;
  relay_target_split(relay_head_target(&ex->client->req), ex->client->req.target_len, &t);
  const relay_static_route_t *r = relay_site_match(s, llhttp_method_name(ex->method), t.path, t.path_len);
  relay_route_t *rt = &ex->route;
  rt->upstream_index = r && r->upstream_index >= 0 ? r->upstream_index : 0;
  rt->metrics_slot = r ? r->metrics_slot : s->hook ? RELAY_METRICS_ROUTE_SCRIPT : RELAY_METRICS_ROUTE_NONE;
  rt->filters = r ? r->filters : NULL;
  rt->nfilters = r ? r->nfilters : 0;
  rt->hook = r && r->hook ? r->hook : s->hook;
  rt->hook_wants_body = r && r->hook ? r->hook_wants_body : s->hook_wants_body;
  if (r) rt->frontend = r->frontend;
  /* A front end reads the whole body first; a hook then sees its translation. */
  if (rt->frontend.type) return 1;
  if (!rt->hook) return 0;
  if (rt->hook_wants_body) return 1;
  return s->ops->run_hook(s, ex, 0, err, errlen);
}

/* A filter that reads the body's text needs it unencoded. */
static int route_reads_body(const relay_route_t *r) {
  for (unsigned i = 0; i < r->nfilters; i++)
    if (r->filters[i].type->flags & RELAY_FILTER_READS_BODY) return 1;
  const relay_filter_type_t *fe = r->frontend.type ? r->frontend.type->filter : NULL;
  return fe && (fe->flags & RELAY_FILTER_READS_BODY);
}

/* The front end's state goes with the exchange (after its filter). */
static void route_release_frontend(relay_route_t *r) {
  if (r->frontend_state) r->frontend.type->state_free(r->frontend_state);
  r->frontend_state = NULL;
}

/* ---- the upstream request ------------------------------------------------ */

/* The request head for the upstream, framed from what llhttp parsed (or the
 * route's new body), never from the client's framing fields. */
static int build_upstream_head(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  const char *host = ex_group(ex)->host_field[ex->server];
  relay_target_t target;
  if (ex->route.new_target.len) {
    memset(&target, 0, sizeof target);
    target.path = ex->route.new_target.data;
    target.path_len = ex->route.new_target.len;
    target.query = "";
  } else {
    relay_target_split(relay_head_target(&c->req), c->req.target_len, &target);
  }
  relay_request_spec_t spec;
  memset(&spec, 0, sizeof spec);
  spec.method = llhttp_method_name(ex->method);
  spec.target = &target;
  spec.host = host;
  spec.host_len = strlen(host);
  spec.peer = c->peer;
  spec.peer_len = strlen(c->peer);
  spec.edits = ex->route.header_edits.data;
  spec.edits_len = ex->route.header_edits.len;
  spec.framing = ex->route.body_replaced ? RELAY_FRAME_LENGTH : ex->req_framing;
  spec.length = ex->route.body_replaced ? ex->route.new_body.len : ex->req_length;
  spec.flags = (ex->req_upgrade ? RELAY_REQ_UPGRADE : 0) | (ex->expect_answered ? RELAY_REQ_DROP_EXPECT : 0) |
               (ex->identity ? RELAY_REQ_IDENTITY : 0);
  relay_buf_reset(&ex->up_head);
  return relay_encode_request_head(&ex->up_head, &c->req, &spec);
}

/* A write of body bytes: pointing into the read slab when they live there
 * (no copy), else copied; chunk-framed when that side is chunked. */
static relay_write_t *body_write(relay_slab_pool_t *pool, relay_slab_t *slab, const char *data, size_t len,
                                 int chunked) {
  relay_write_t *wr = relay_write_new(pool, NULL, NULL);
  if (!wr) return NULL;
  if (chunked) relay_write_add_chunk_size(wr, len);
  if (slab) {
    relay_write_add_slab(wr, slab, data, len);
  } else if (relay_write_add_copy(wr, data, len)) {
    relay_write_free(wr);
    return NULL;
  }
  if (chunked) relay_write_add_static(wr, "\r\n", 2);
  return wr;
}

/* Body bytes towards the upstream, framed as the upstream head announced. */
static int send_body_up(relay_exchange_t *ex, relay_slab_t *slab, const char *data, size_t len) {
  relay_upconn_t *u = ex->up;
  int chunked = !ex->route.body_replaced && ex->req_framing == RELAY_FRAME_CHUNKED;
  relay_write_t *wr = body_write(ex_slabs(ex), slab, data, len, chunked);
  if (!wr) return UV_ENOMEM;
  ex->retryable = 0;
  ex->up_body_out += len;
  int rc = relay_upconn_write(u, wr);
  if (u->write_pending >= RELAY_HIGH_WATER) relay_client_read_pause(ex->client);
  return rc;
}

static void send_last_chunk_up(relay_exchange_t *ex) {
  relay_write_t *wr = relay_write_new(ex_slabs(ex), NULL, NULL);
  if (!wr) return;
  relay_write_add_static(wr, "0\r\n\r\n", 5);
  relay_upconn_write(ex->up, wr);
}

/* ---- the request side, as the server reports it ---------------------------- */

void relay_exchange__init(relay_exchange_t *ex, relay_proxy_t *p, relay_client_t *c) {
  memset(ex, 0, sizeof *ex);
  ex->proxy = p;
  ex->client = c;
  relay_head_init(&ex->resp, RELAY_RESP_HEAD_MAX);
  relay_head_init(&ex->route.local_head, RELAY_RESP_HEAD_MAX);
}

void relay_exchange__dispose(relay_exchange_t *ex) {
  relay_exchange__finish(ex);
  relay_head_dispose(&ex->resp);
  relay_head_dispose(&ex->route.local_head);
  relay_buf_dispose(&ex->route.local_body);
  relay_buf_dispose(&ex->route.new_target);
  relay_buf_dispose(&ex->route.header_edits);
  relay_buf_dispose(&ex->route.new_body);
  relay_buf_dispose(&ex->up_head);
  relay_buf_dispose(&ex->up_pending);
  relay_buf_dispose(&ex->req_body);
  relay_buf_dispose(&ex->held);
  relay_buf_dispose(&ex->batch);
}

/* Between requests of a connection the buffers stay (emptied): a
 * keep-alive connection does not allocate per request. */
static void exchange_reset(relay_exchange_t *ex) {
  relay_exchange_t keep = *ex;
  memset(ex, 0, sizeof *ex);
  ex->proxy = keep.proxy;
  ex->client = keep.client;
  ex->resp = keep.resp;
  relay_head_reset(&ex->resp);
  ex->route.local_head = keep.route.local_head;
  relay_head_reset(&ex->route.local_head);
#define KEEP_BUF(field)    \
  ex->field = keep.field; \
  relay_buf_reset(&ex->field)
  KEEP_BUF(route.local_body);
  KEEP_BUF(route.new_target);
  KEEP_BUF(route.header_edits);
  KEEP_BUF(route.new_body);
  KEEP_BUF(up_head);
  KEEP_BUF(up_pending);
  KEEP_BUF(req_body);
  KEEP_BUF(held);
  KEEP_BUF(batch);
#undef KEEP_BUF
}

/* An exchange for an error found before any request was routed (a bad
 * request line, a head not in time): enough state to answer and log it. */
void relay_exchange__begin_bare(relay_exchange_t *ex) {
  exchange_reset(ex);
  ex->state = RELAY_EX_ROUTING;
  ex->route.metrics_slot = RELAY_METRICS_ROUTE_NONE;
  ex->t_start = uv_hrtime();
  strcpy(ex->log_path, "-");
}

/* Answer 100 Continue ourselves when the hook reads the body before any
 * upstream is asked. */
static void answer_expect(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  int e = relay_head_find(&c->req, "expect", 0);
  if (e < 0 || ex->http_minor < 1 ||
      !relay_head_value_has_token(relay_head_value(&c->req, (size_t)e), c->req.hdrs[e].value_len, "100-continue"))
    return;
  relay_write_t *wr = relay_write_new(ex_slabs(ex), NULL, NULL);
  if (wr) {
    relay_write_add_static(wr, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    relay_client_write(c, wr);
  }
  ex->expect_answered = 1;
}

/* What the hook decided: a local answer, or edits for the upstream. */
static int after_hook(relay_exchange_t *ex) {
  if (ex->route.local_status) {
    relay_exchange__respond_local(ex);
    return 1;
  }
  ex->identity = route_reads_body(&ex->route);
  return 0;
}

static void hook_failed(relay_exchange_t *ex, const char *err) {
  relay_log_error("%s %s: script error: %s", llhttp_method_name(ex->method), ex->log_path, err);
  if (ex_metrics(ex)) relay_metrics_count(ex_metrics(ex), RELAY_METRICS_SCRIPT_ERRORS, 1);
  relay_exchange__send_error(ex, 500, "server_error", "script_error", "the relay's script failed");
}

/* Request head complete: route it, then connect (or wait for the body). */
void relay_exchange__begin(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  const llhttp_t *p = &c->parser;
  exchange_reset(ex);
  ex->state = RELAY_EX_ROUTING;
  ex->route.metrics_slot = RELAY_METRICS_ROUTE_NONE;
  ex->id = ++ex->proxy->next_exchange_id;
  ex->t_start = uv_hrtime();
  ex->method = (llhttp_method_t)p->method;
  ex->http_major = p->http_major;
  ex->http_minor = p->http_minor;
  ex->client_keep_alive = llhttp_should_keep_alive(p);
  ex->req_upgrade = p->upgrade;
  /* llhttp counts content_length down as the body goes by: keep the total. */
  if (p->flags & F_CHUNKED) {
    ex->req_framing = RELAY_FRAME_CHUNKED;
  } else if (p->flags & F_CONTENT_LENGTH) {
    ex->req_framing = RELAY_FRAME_LENGTH;
    ex->req_length = p->content_length;
  }
  snprintf(ex->log_path, sizeof ex->log_path, "%.*s", (int)c->req.target_len, relay_head_target(&c->req));
  if (!ex->client_keep_alive) c->close_after = 1;
  ex->site = ex->proxy->site;
  relay_site_ref(ex->site);
  relay_conn_tokens_t ct;
  if (relay_conn_tokens_collect(&ct, &c->req)) {
    relay_exchange__send_error(ex, 400, "invalid_request_error", "bad_request",
                               "too many options in the Connection header");
    return;
  }
  /* RFC 9112 6.1: chunked not last is a 400; another coding before it, 501. */
  if (relay_head_find(&c->req, "transfer-encoding", 0) >= 0 && ex->req_framing != RELAY_FRAME_CHUNKED) {
    relay_exchange__send_error(ex, 400, "invalid_request_error", "bad_request",
                               "the chunked transfer coding must be the last one");
    return;
  }
  if (!relay_head_te_is_chunked_only(&c->req)) {
    relay_exchange__send_error(ex, 501, "invalid_request_error", "unsupported_transfer_coding",
                               "only the chunked transfer coding is supported");
    return;
  }
  char err[256] = "";
  int rc = route_request(ex, err, sizeof err);
  if (rc < 0) {
    hook_failed(ex, err);
    return;
  }
  if (rc == 0 && after_hook(ex)) return;
  if (rc == 1) {
    ex->buffer_request = 1;
    answer_expect(ex);
    if (!exchange_has_body(ex)) relay_exchange__on_request_complete(ex);
    return;
  }
  exchange_connect(ex, 0, 0);
}

/* ---- the server: chosen, failed over, let go ------------------------------ */

/* The balancer counts the request on its server until this; once per pick. */
static void exchange_release_server(relay_exchange_t *ex) {
  if (!ex->outstanding) return;
  ex->outstanding = 0;
  relay_site_upstream_t *g = ex_group(ex);
  relay_balancer_done(&g->balancer, (unsigned)ex->server);
  if (ex_metrics(ex) && g->slot >= 0 && g->server_slot[ex->server] >= 0)
    relay_metrics_server_outstanding(ex_metrics(ex), (unsigned)g->slot, (unsigned)g->server_slot[ex->server], -1);
}

/* A server for the request, least loaded first, skipping those it already
 * failed on; RELAY_ENOSERVER at once when none can take it. */
static int exchange_pick(relay_exchange_t *ex) {
  relay_site_upstream_t *g = ex_group(ex);
  int k = relay_balancer_pick(&g->balancer, uv_now(ex->proxy->loop), ex->servers_failed);
  if (k < 0) return k;
  ex->server = k;
  ex->has_server = 1;
  ex->outstanding = 1;
  if (ex_metrics(ex) && g->slot >= 0 && g->server_slot[k] >= 0)
    relay_metrics_server_outstanding(ex_metrics(ex), (unsigned)g->slot, (unsigned)g->server_slot[k], 1);
  return k;
}

/* Every server is down (or failed this request): say so now, without a
 * connect to a server known to be down. After a failed connect, the last
 * failure is the answer (a timeout is a 504). */
static void answer_no_server(relay_exchange_t *ex, int last_err, int timed_out) {
  if (last_err) {
    answer_upstream_error(ex, last_err, timed_out);
    return;
  }
  const relay_upstream_cfg_t *u = relay_exchange_upstream(ex);
  char msg[200];
  snprintf(msg, sizeof msg, "upstream unreachable: no server of upstream '%s' is up (each failed its last connect "
           "or health check)", u ? u->name : "-");
  relay_log_info("%s %s: %s", llhttp_method_name(ex->method), ex->log_path, msg);
  relay_exchange__fail(ex, 502, "upstream_error", "upstream_unreachable", msg);
}

/* The connect to the chosen server failed (refused, timed out, not
 * resolved): the server backs off in this loop's balancer, and the request,
 * none of which was sent, goes to another server of the upstream. Bounded:
 * each server is tried at most once per request. */
static void server_failed(relay_exchange_t *ex, int err, int timed_out) {
  relay_site_upstream_t *g = ex_group(ex);
  unsigned k = (unsigned)ex->server;
  relay_balancer_failed(&g->balancer, k, uv_now(ex->proxy->loop));
  relay_proxy__server_changed(ex->proxy, ex->site, g, k);
  if (ex_metrics(ex) && g->slot >= 0 && g->server_slot[k] >= 0)
    relay_metrics_connect_failure(ex_metrics(ex), (unsigned)g->slot, (unsigned)g->server_slot[k]);
  ex->servers_failed |= 1u << k;
  exchange_release_server(ex);
  if (g->nservers > 1) {
    char name[RELAY_HOST_MAX + 16];
    relay_config_server_name(relay_exchange_server(ex), name, sizeof name);
    relay_log_info("%s %s: upstream %s: server %s failed (%s); trying another", llhttp_method_name(ex->method),
                   ex->log_path, relay_exchange_upstream(ex)->name, name,
                   timed_out ? "connect timed out" : relay_strerror(err));
  }
  exchange_connect(ex, err, timed_out);
}

/* Pick a server and connect to it (or take a pooled connection). last_err:
 * the failure that brought the request here again, if any. */
static void exchange_connect(relay_exchange_t *ex, int last_err, int timed_out) {
  ex->state = RELAY_EX_CONNECTING;
  if (!ex->t_upstream) ex->t_upstream = uv_hrtime();
  exchange_release_server(ex); /* a retry picks again */
  if (exchange_pick(ex) < 0) {
    answer_no_server(ex, last_err, timed_out);
    return;
  }
  if (build_upstream_head(ex)) {
    relay_exchange__fail(ex, 500, "server_error", "out_of_memory", "could not build the upstream request");
    return;
  }
  relay_upstream_t *up = ex_group(ex)->servers[ex->server];
  relay_upconn_t *u;
  int rc = relay_upconn_acquire(up, &relay_exchange__upstream_handler, ex, &ex->resp, &u);
  if (rc == UV_ENOMEM) {
    relay_exchange__fail(ex, 502, "upstream_error", "upstream_unreachable", relay_strerror(rc));
    return;
  }
  if (rc < 0) {
    server_failed(ex, rc, 0);
    return;
  }
  ex->up = u;
  if (rc == 1) on_connected(ex, u);
}

int relay_exchange__on_request_body(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len) {
  ex->bytes_in += len;
  if (ex->state == RELAY_EX_DONE) return 0; /* answered early; the rest is discarded */
  if (ex->route.body_replaced && !ex->buffer_request) return 0; /* the hook replaced it */
  if (ex->buffer_request) {
    if (ex->req_body.len + len > relay_exchange_config(ex)->max_body_buffer) {
      relay_exchange__send_error(ex, 413, "invalid_request_error", "request_too_large",
                                 "request body larger than the relay's body buffer limit");
      return -1;
    }
    return relay_buf_append(&ex->req_body, data, len) ? -1 : 0;
  }
  if (ex->state == RELAY_EX_STREAMING && ex->up) return send_body_up(ex, s, data, len) ? -1 : 0;
  if (relay_buf_append(&ex->up_pending, data, len)) return -1;
  if (ex->up_pending.len >= RELAY_HIGH_WATER) relay_client_read_pause(ex->client);
  return 0;
}

/* A new path keeps the request's query unless it brings its own. */
static int keep_query(relay_exchange_t *ex, relay_buf_t *target) {
  if (!target->len || memchr(target->data, '?', target->len)) return 0;
  relay_target_t t;
  relay_target_split(relay_head_target(&ex->client->req), ex->client->req.target_len, &t);
  if (!t.has_query) return 0;
  return relay_buf_append(target, "?", 1) || relay_buf_append(target, t.query, t.query_len) ? RELAY_ENOMEM : 0;
}

/* The route's front end translates the whole body. Its translation stands in
 * for the client's request from here on (a hook sees it); a refusal is
 * answered at once. Returns 1 when the exchange was answered. */
static int frontend_request(relay_exchange_t *ex) {
  relay_route_t *rt = &ex->route;
  char log_name[RELAY_LOG_PATH_MAX + 24];
  snprintf(log_name, sizeof log_name, "%s %s", llhttp_method_name(ex->method), ex->log_path);
  relay_buf_t body;
  relay_buf_init(&body);
  relay_frontend_request_t rq;
  memset(&rq, 0, sizeof rq);
  rq.body = ex->req_body.data ? ex->req_body.data : "";
  rq.len = ex->req_body.len;
  rq.log_name = log_name;
  rq.target = &rt->new_target;
  rq.new_body = &body;
  rq.answer = &rt->local_body;
  int rc = rt->frontend.type->on_request(rt->frontend.opts, &rq);
  rt->frontend_state = rq.state;
  if (rc == 0 && !rq.status) rc = keep_query(ex, &rt->new_target);
  if (rc < 0) {
    relay_buf_dispose(&body);
    relay_log_error("%s: the %s front end failed: %s", log_name, rt->frontend.type->name, relay_strerror(rc));
    relay_exchange__send_error(ex, 500, "server_error", "frontend_error", "the relay could not translate the request");
    return 1;
  }
  if (rq.status) {
    relay_buf_dispose(&body);
    rt->local_status = rq.status;
    relay_head_add(&rt->local_head, "Content-Type", "application/json", 16);
    relay_exchange__respond_local(ex);
    return 1;
  }
  relay_buf_t tmp = ex->req_body;
  ex->req_body = body;
  relay_buf_dispose(&tmp);
  return 0;
}

void relay_exchange__on_request_complete(relay_exchange_t *ex) {
  ex->req_complete = 1;
  if (ex->state == RELAY_EX_DONE) return;
  if (ex->buffer_request && ex->state == RELAY_EX_ROUTING) {
    if (ex->route.frontend.type && frontend_request(ex)) return;
    char err[256] = "";
    if (ex->route.hook && ex->site->ops->run_hook(ex->site, ex, 1, err, sizeof err) < 0) {
      hook_failed(ex, err);
      return;
    }
    if (after_hook(ex)) return;
    if (!ex->route.body_replaced && (ex->req_framing != RELAY_FRAME_NONE || ex->route.frontend.type)) {
      /* Forward the body as received, now with a known length. */
      relay_buf_t tmp = ex->route.new_body;
      ex->route.new_body = ex->req_body;
      ex->req_body = tmp;
      ex->route.body_replaced = 1;
    }
    exchange_connect(ex, 0, 0);
    return;
  }
  if (ex->state == RELAY_EX_STREAMING && ex->up && !ex->route.body_replaced && ex->req_framing == RELAY_FRAME_CHUNKED)
    send_last_chunk_up(ex);
}

/* ---- the upstream connection's callbacks ----------------------------------- */

/* The upstream connection is ready: send the head and whatever body waited. */
static void on_connected(void *ud, relay_upconn_t *u) {
  relay_exchange_t *ex = ud;
  ex->up = u;
  ex->state = RELAY_EX_STREAMING;
  ex->retryable = u->reused && !exchange_has_body(ex) && method_idempotent(ex->method);
  if (!u->reused) {
    /* A connect that worked ends the server's back-off in this loop. */
    relay_site_upstream_t *g = ex_group(ex);
    int was_down = relay_balancer_down_until(&g->balancer, (unsigned)ex->server) != 0;
    relay_balancer_connected(&g->balancer, (unsigned)ex->server);
    if (was_down) relay_proxy__server_changed(ex->proxy, ex->site, g, (unsigned)ex->server);
  }
  relay_write_t *wr = relay_write_new(ex_slabs(ex), NULL, NULL);
  if (!wr || relay_write_add_copy(wr, ex->up_head.data, ex->up_head.len)) {
    if (wr) relay_write_free(wr);
    relay_exchange__fail(ex, 502, "upstream_error", "upstream_unreachable", "out of memory");
    return;
  }
  relay_upconn_write(u, wr);
  if (ex->route.body_replaced) {
    if (ex->route.new_body.len) send_body_up(ex, NULL, ex->route.new_body.data, ex->route.new_body.len);
    return;
  }
  if (ex->up_pending.len) {
    send_body_up(ex, NULL, ex->up_pending.data, ex->up_pending.len);
    relay_buf_reset(&ex->up_pending);
    relay_client_read_resume(ex->client);
  }
  if (ex->req_complete && ex->req_framing == RELAY_FRAME_CHUNKED) send_last_chunk_up(ex);
}

static const char *error_code_for(int err) {
  switch (err) {
    case UV_EOF:
    case UV_EPROTO:
    case UV_ECONNRESET:
    case UV_EPIPE: return "upstream_bad_response";
    default: return "upstream_unreachable";
  }
}

static void on_upstream_error(void *ud, int err, int timed_out) {
  relay_exchange_t *ex = ud;
  ex->up = NULL;
  if (ex->state == RELAY_EX_DONE || ex->state == RELAY_EX_IDLE) return;
  if (ex->state == RELAY_EX_CONNECTING) {
    /* A new connection that never connected: nothing of the request went. */
    server_failed(ex, err, timed_out);
    return;
  }
  if (ex->state == RELAY_EX_TUNNEL) {
    relay_exchange__finish(ex);
    relay_client_abort(ex->client);
    return;
  }
  /* A pooled connection the upstream closed meanwhile: one more try on a
   * fresh connection, when nothing of the request has gone out. */
  if (ex->retryable && !timed_out && ex->retries == 0 && ex->status == 0) {
    ex->retries++;
    relay_log_debug("%s: reused upstream connection failed (%s); retrying", ex->log_path, relay_strerror(err));
    exchange_connect(ex, 0, 0);
    return;
  }
  if (relay_exchange_head_sent(ex)) {
    relay_log_warn("%s %s: upstream failed mid-response (%s); cutting the response", llhttp_method_name(ex->method),
                   ex->log_path, relay_strerror(err));
    relay_exchange__cut_response(ex);
    return;
  }
  answer_upstream_error(ex, err, timed_out);
}

/* The relay's own answer to an upstream that failed before any response. */
static void answer_upstream_error(relay_exchange_t *ex, int err, int timed_out) {
  char msg[256];
  if (timed_out) {
    relay_exchange__send_error(ex, 504, "upstream_error", "upstream_timeout", "upstream timed out");
    return;
  }
  const char *code = error_code_for(err);
  snprintf(msg, sizeof msg, strcmp(code, "upstream_bad_response") == 0 ? "upstream sent no valid response (%s)"
                                                                      : "upstream unreachable (%s)",
           relay_strerror(err));
  relay_exchange__send_error(ex, 502, "upstream_error", code, msg);
}

/* An event stream counts as open from its head (before the head can reach
 * the client, so that a scrape after it sees the stream) until the exchange
 * ends, whatever happens to it meanwhile. */
static void count_stream(relay_exchange_t *ex, int status) {
  relay_response_t r;
  relay_response_classify(&r, status, &ex->resp);
  if (r.media != RELAY_MEDIA_SSE) return;
  ex->stream_counted = 1;
  relay_metrics_gauge_add(ex_metrics(ex), RELAY_METRICS_OPEN_STREAMS, 1);
}

static int on_upstream_head(void *ud, const llhttp_t *p) {
  relay_exchange_t *ex = ud;
  if (ex_metrics(ex) && !ex->stream_counted && p->status_code >= 200 && p->status_code != 204 &&
      p->status_code != 304)
    count_stream(ex, p->status_code);
  return relay_exchange__on_response_head(ex, p);
}

static int on_upstream_body(void *ud, relay_slab_t *s, const char *data, size_t len) {
  ((relay_exchange_t *)ud)->up_body_in += len;
  return relay_exchange__on_response_body(ud, s, data, len);
}

static int on_upstream_message_end(void *ud, const llhttp_t *p) { return relay_exchange__on_response_end(ud, p); }

/* The final response is over. A request body still on its way makes the
 * connection unusable; a response cut short (a filter's output missing) or
 * framed by close ends the client connection too. */
static void on_upstream_done(void *ud, int reusable) {
  relay_exchange_t *ex = ud;
  relay_client_t *c = ex->client;
  if (ex->up) {
    relay_upconn_release(ex->up, reusable && ex->req_complete);
    ex->up = NULL;
  }
  if (ex->resp_state == RELAY_RESP_HELD) {
    /* The held body could not be made (a script failed on it, or memory). */
    relay_exchange__send_error(ex, 500, "server_error", "script_error", "the relay's script failed on the response");
    return;
  }
  if (!ex->req_complete) c->close_after = 1;
  int cut = ex->resp_state != RELAY_RESP_DONE || ex->resp_framing == RELAY_FRAME_CLOSE;
  relay_exchange__finish(ex);
  if (cut) relay_client_abort(c);
  else if (!c->closing) relay_client_exchange_done(c);
}

static void on_upstream_read_begin(void *ud) { relay_exchange__batch_begin(ud); }
/* A filter made the whole response before the upstream ended its own (a
 * failure answered mid-stream): the upstream connection is closed, so that
 * the model stops generating for nobody, and the client goes on (or, for a
 * close-delimited response, sees its end). */
static void end_exchange_early(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  relay_upconn_close(ex->up);
  ex->up = NULL;
  if (!ex->req_complete) c->close_after = 1;
  int close = ex->resp_framing == RELAY_FRAME_CLOSE;
  relay_exchange__finish(ex);
  if (close) relay_client_abort(c);
  else if (!c->closing) relay_client_exchange_done(c);
}

/* Outside the parser: the place to close the upstream after an early end. */
static void on_upstream_read_end(void *ud) {
  relay_exchange_t *ex = ud;
  relay_exchange__batch_end(ex);
  if (ex->ended_early == 1 && ex->up) end_exchange_early(ex);
}

static void on_upstream_drained(void *ud) {
  relay_exchange_t *ex = ud;
  if (ex->state == RELAY_EX_STREAMING || ex->state == RELAY_EX_TUNNEL) relay_client_read_resume(ex->client);
}

static void on_upstream_tunnel_data(void *ud, relay_slab_t *s, const char *data, size_t len) {
  ((relay_exchange_t *)ud)->up_body_in += len;
  relay_exchange__send_down(ud, s, data, len);
}

static void on_upstream_tunnel_eof(void *ud) {
  relay_exchange_t *ex = ud;
  ex->up = NULL;
  relay_exchange__finish(ex);
  relay_client_abort(ex->client);
}

const relay_upconn_handler_t relay_exchange__upstream_handler = {
    on_connected,          on_upstream_error,      on_upstream_head,       on_upstream_body,
    on_upstream_message_end, on_upstream_done,     on_upstream_read_begin, on_upstream_read_end,
    on_upstream_drained,   on_upstream_tunnel_data, on_upstream_tunnel_eof};

/* ---- the client side of a tunnel, and of going away ------------------------ */

void relay_exchange__on_tunnel_data(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len) {
  if (!ex->up) return;
  relay_write_t *wr = relay_write_new(ex_slabs(ex), NULL, NULL);
  if (!wr) return;
  if (s) {
    relay_write_add_slab(wr, s, data, len);
  } else if (relay_write_add_copy(wr, data, len)) {
    relay_write_free(wr);
    return;
  }
  ex->bytes_in += len;
  ex->up_body_out += len;
  relay_upconn_write(ex->up, wr);
  if (ex->up && ex->up->write_pending >= RELAY_HIGH_WATER) relay_client_read_pause(ex->client);
}

/* The client went away: close the upstream at once, so the model stops
 * generating for nobody. */
void relay_exchange__on_client_gone(relay_exchange_t *ex) {
  if (ex->up) {
    relay_upconn_close(ex->up);
    ex->up = NULL;
  }
  if (ex->state != RELAY_EX_DONE && ex->state != RELAY_EX_IDLE) {
    if (!ex->status) ex->status = 499;
    relay_exchange__finish(ex);
  }
}

void relay_exchange__on_client_drained(relay_exchange_t *ex) {
  if (ex->up && ex->state != RELAY_EX_DONE) relay_upconn_read_resume(ex->up);
}

/* ---- the end ------------------------------------------------------------- */

/* The loggers hear of it (the access log first), then the site (its end
 * hook, its per-exchange state); then what the exchange holds goes. */
void relay_exchange__finish(relay_exchange_t *ex) {
  if (ex->state == RELAY_EX_DONE || ex->state == RELAY_EX_IDLE) return;
  if (ex->site) exchange_release_server(ex);
  if (ex->up) {
    /* Still attached (an error while connecting or sending): never reused. */
    relay_upconn_close(ex->up);
    ex->up = NULL;
  }
  relay_proxy_t *p = ex->proxy;
  for (unsigned i = 0; i < p->nloggers; i++) p->loggers[i].fn(p->loggers[i].ud, ex);
  if (ex->site) ex->site->ops->exchange_end(ex->site, ex);
  if (ex->chain) {
    relay_chain_dispose(ex->chain);
    free(ex->chain);
    ex->chain = NULL;
  }
  route_release_filters(&ex->route);
  route_release_frontend(&ex->route);
  if (ex->site) relay_site_unref(ex->site);
  ex->site = NULL;
  ex->state = RELAY_EX_DONE;
}
