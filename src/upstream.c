/* Upstream connections: name resolution, connect with a timeout, response
 * parsing with llhttp, and a per-worker pool of idle keep-alive connections
 * per configured upstream. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"
#include "script.h"

static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void up_fail(relay_upconn_t *u, int err, int timed_out);

static relay_upconn_t *up_of_parser(llhttp_t *p) { return p->data; }

/* The first byte of a response head: from now on the whole head must arrive
 * within the header timeout (an upstream that trickles a head byte by byte
 * would otherwise hold the exchange for ever, each byte resetting the idle
 * timer). The wait for this first byte stays the idle timeout: models think
 * for minutes. */
static int on_resp_message_begin(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->ex) relay_head_reset(&u->ex->resp);
  u->in_trailers = 0;
  u->trailer_bytes = 0;
  if (u->cfg->header_timeout_ms) {
    u->in_head = 1;
    u->head_deadline = uv_now(&u->w->loop) + u->cfg->header_timeout_ms;
    relay_upstream_restart_idle_timer(u);
  }
  return 0;
}

/* Trailers are not head fields: llhttp reports them through the same
 * callbacks, after the head went out. They are dropped, bounded like a head. */
static int up_trailer(relay_upconn_t *u, size_t len) {
  u->trailer_bytes += len;
  return u->trailer_bytes > RELAY_RESP_HEAD_MAX ? -1 : 0;
}

static int on_resp_status(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  return u->ex && relay_head_on_target(&u->ex->resp, at, len) ? -1 : 0;
}

static int on_resp_field(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->in_trailers) return up_trailer(u, len);
  return u->ex && relay_head_on_field(&u->ex->resp, at, len) ? -1 : 0;
}

static int on_resp_value(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->in_trailers) return up_trailer(u, len);
  return u->ex && relay_head_on_value(&u->ex->resp, at, len) ? -1 : 0;
}

static int on_resp_headers_complete(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ex) return -1;
  u->in_trailers = 1;
  if (u->in_head) {
    u->in_head = 0;
    relay_upstream_restart_idle_timer(u);
  }
  return relay_exchange_on_response_head(u->ex, p);
}

static int on_resp_body(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ex) return -1;
  return relay_exchange_on_response_body(u->ex, u->cur_slab, at, len) ? -1 : 0;
}

static int on_resp_message_complete(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ex) return -1;
  return relay_exchange_on_response_complete(u->ex, p);
}

void relay_upstream_init_settings(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = on_resp_message_begin;
  s->on_status = on_resp_status;
  s->on_header_field = on_resp_field;
  s->on_header_value = on_resp_value;
  s->on_headers_complete = on_resp_headers_complete;
  s->on_body = on_resp_body;
  s->on_message_complete = on_resp_message_complete;
}

static void up_handle_closed(uv_handle_t *h) {
  relay_upconn_t *u = h->data;
  if (--u->handles_open > 0) return;
  relay_worker_t *w = u->w;
  w->nupconns--;
  if (u->script) relay_script_unref(u->script);
  free(u);
  relay_worker_maybe_finish(w);
}

void relay_upstream_close(relay_upconn_t *u) {
  if (u->state == RELAY_UP_CLOSING) return;
  if (u->state == RELAY_UP_IDLE) {
    relay_list_remove(&u->link);
    u->w->pools[u->upstream_index].nidle--;
  }
  u->state = RELAY_UP_CLOSING;
  u->ex = NULL;
  if (u->gai_pending) {
    /* The resolver callback frees nothing of ours; it sees CLOSING and closes. */
    uv_cancel((uv_req_t *)&u->gai);
    return;
  }
  uv_timer_stop(&u->timer);
  uv_close((uv_handle_t *)&u->timer, up_handle_closed);
  uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
}

static void up_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  relay_upconn_t *u = h->data;
  relay_slab_t *s = relay_slab_get(&u->w->slabs);
  *buf = s ? uv_buf_init(s->data, RELAY_SLAB_SIZE) : uv_buf_init(NULL, 0);
}

static void up_deferred_fail_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  up_fail(u, u->deferred_err, 0);
}

/* A libuv call failed where the exchange cannot hear of it at once (it is
 * in the middle of using the connection): fail on the next loop turn. */
static void up_fail_later(relay_upconn_t *u, int err) {
  if (u->state == RELAY_UP_CLOSING || u->deferred_err) return;
  u->deferred_err = err ? err : UV_EINVAL;
  /* Only a closing handle makes this fail, and a closing connection returned
   * above; failing at once is still better than a connection nobody fails. */
  if (uv_timer_start(&u->timer, up_deferred_fail_cb, 0, 0)) up_fail(u, u->deferred_err, 0);
}

void relay_upstream_read_resume(relay_upconn_t *u) {
  if (u->reading || u->state == RELAY_UP_CLOSING || !u->tcp_inited) return;
  int rc = uv_read_start((uv_stream_t *)&u->tcp, up_alloc_cb, up_read_cb);
  if (rc) {
    up_fail_later(u, rc);
    return;
  }
  u->reading = 1;
  if (u->state == RELAY_UP_BUSY) relay_upstream_restart_idle_timer(u);
}

/* While the client cannot keep up, the upstream is not read and its idle
 * timer does not run: a slow reader is not an upstream timeout. */
void relay_upstream_read_pause(relay_upconn_t *u) {
  if (!u->reading) return;
  uv_read_stop((uv_stream_t *)&u->tcp);
  u->reading = 0;
  if (!u->deferred_err) uv_timer_stop(&u->timer);
}

static void up_idle_timeout_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  if (u->state == RELAY_UP_IDLE) {
    relay_upstream_close(u);
    return;
  }
  if (u->in_head && uv_now(&u->w->loop) >= u->head_deadline) {
    relay_log_info("upstream %s: response head not complete within %lu ms", u->cfg->upstreams[u->upstream_index].name,
                   u->cfg->header_timeout_ms);
    up_fail(u, UV_ETIMEDOUT, 1);
    return;
  }
  relay_log_info("upstream %s: no data for %lu ms", u->cfg->upstreams[u->upstream_index].name,
                 u->cfg->idle_timeout_ms);
  up_fail(u, UV_ETIMEDOUT, 1);
}

/* The idle timeout between bytes, or the head deadline if that comes first. */
void relay_upstream_restart_idle_timer(relay_upconn_t *u) {
  if (u->state != RELAY_UP_BUSY || u->deferred_err) return;
  if (u->ex && u->ex->state == RELAY_EX_TUNNEL) return;
  uint64_t timeout = u->cfg->idle_timeout_ms;
  if (u->in_head) {
    uint64_t now = uv_now(&u->w->loop);
    uint64_t left = u->head_deadline > now ? u->head_deadline - now : 0;
    if (timeout == 0 || left < timeout) timeout = left;
  } else if (timeout == 0) {
    return;
  }
  if (uv_timer_start(&u->timer, up_idle_timeout_cb, timeout, 0)) up_fail_later(u, UV_EINVAL);
}

/* The exchange learns of the failure; the connection is never reused. */
static void up_fail(relay_upconn_t *u, int err, int timed_out) {
  relay_exchange_t *ex = u->ex;
  relay_upstream_close(u);
  if (ex) relay_exchange_on_upstream_error(ex, err, timed_out);
}

/* After a complete response: bytes beyond it mean a confused upstream, so the
 * connection is only reused when the response ended exactly at a read end. */
static void up_response_done(relay_upconn_t *u, int extra_bytes) {
  relay_exchange_t *ex = u->ex;
  int reusable = !extra_bytes && llhttp_should_keep_alive(&u->parser);
  if (ex) relay_exchange_on_response_done(ex, reusable);
}

static void up_feed(relay_upconn_t *u, relay_slab_t *slab, const char *data, size_t len) {
  relay_exchange_t *ex = u->ex;
  if (ex && ex->state == RELAY_EX_TUNNEL) {
    relay_exchange_on_tunnel_upstream_data(ex, slab, data, len);
    return;
  }
  u->cur_slab = slab;
  if (ex) relay_exchange_batch_begin(ex);
  llhttp_errno_t err = llhttp_execute(&u->parser, data, len);
  u->cur_slab = NULL;
  /* The exchange outlives this call even if the connection closed meanwhile. */
  if (ex && ex->batching) relay_exchange_batch_end(ex);
  if (u->state == RELAY_UP_CLOSING) return;
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    const char *pos = llhttp_get_error_pos(&u->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (u->ex && u->ex->state == RELAY_EX_TUNNEL) {
      if (used < len) relay_exchange_on_tunnel_upstream_data(u->ex, slab, data + used, len - used);
      return;
    }
    up_response_done(u, used < len);
    return;
  }
  relay_log_info("upstream %s: bad response: %s (%s)",
                 u->cfg->upstreams[u->upstream_index].name, llhttp_errno_name(err),
                 llhttp_get_error_reason(&u->parser) ? llhttp_get_error_reason(&u->parser) : "");
  up_fail(u, UV_EPROTO, 0);
}

/* End of stream: a close-delimited body ends here; anything else is a cut. */
static void up_eof(relay_upconn_t *u) {
  relay_exchange_t *ex = u->ex;
  if (ex && ex->state == RELAY_EX_TUNNEL) {
    relay_upstream_close(u);
    relay_exchange_on_upstream_eof_tunnel(ex);
    return;
  }
  llhttp_errno_t err = llhttp_finish(&u->parser);
  if (u->state == RELAY_UP_CLOSING) return;
  if (err == HPE_PAUSED && ex && ex->resp_complete) {
    up_response_done(u, 1);
    return;
  }
  up_fail(u, UV_EOF, 0);
}

static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  relay_upconn_t *u = s->data;
  relay_slab_t *slab = buf->base ? relay_container_of(buf->base, relay_slab_t, data) : NULL;
  if (u->state == RELAY_UP_IDLE) {
    /* An idle pooled connection that speaks or closes is no longer usable. */
    relay_upstream_close(u);
  } else if (nread > 0) {
    relay_upstream_restart_idle_timer(u);
    up_feed(u, slab, buf->base, (size_t)nread);
  } else if (nread == UV_EOF) {
    up_eof(u);
  } else if (nread < 0) {
    up_fail(u, (int)nread, 0);
  }
  if (slab) relay_slab_unref(&u->w->slabs, slab);
}

static void up_write_cb(relay_write_t *wr, int status) {
  relay_upconn_t *u = wr->owner;
  u->write_pending -= wr->bytes;
  if (u->state == RELAY_UP_CLOSING) return;
  if (status < 0) {
    up_fail(u, status, 0);
    return;
  }
  relay_upstream_restart_idle_timer(u);
  if (u->write_pending < RELAY_LOW_WATER && u->ex) relay_exchange_on_upstream_drained(u->ex);
}

int relay_upstream_write(relay_upconn_t *u, relay_write_t *wr) {
  if (u->state == RELAY_UP_CLOSING || wr->nbufs == 0) {
    relay_write_free(wr);
    return u->state == RELAY_UP_CLOSING ? UV_ECANCELED : 0;
  }
  wr->cb = up_write_cb;
  wr->owner = u;
  size_t bytes = wr->bytes;
  int rc = relay_write_submit(wr, (uv_stream_t *)&u->tcp);
  if (rc == 0) u->write_pending += bytes;
  else up_fail_later(u, rc);
  return rc;
}

static void up_connected(relay_upconn_t *u) {
  u->state = RELAY_UP_BUSY;
  uv_tcp_nodelay(&u->tcp, 1);
  uv_timer_stop(&u->timer);
  relay_upstream_read_resume(u);
  relay_exchange_on_connected(u->ex, u);
}

static void up_connect_timeout_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  relay_log_info("upstream %s: connect timed out", u->cfg->upstreams[u->upstream_index].name);
  up_fail(u, UV_ETIMEDOUT, 1);
}

static void up_connect_cb(uv_connect_t *req, int status) {
  relay_upconn_t *u = req->data;
  if (u->state == RELAY_UP_CLOSING) return;
  if (status < 0) {
    relay_log_info("upstream %s: connect failed: %s",
                   u->cfg->upstreams[u->upstream_index].name, uv_strerror(status));
    up_fail(u, status, 0);
    return;
  }
  up_connected(u);
}

static void up_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  relay_upconn_t *u = req->data;
  u->gai_pending = 0;
  if (u->state == RELAY_UP_CLOSING) {
    if (res) uv_freeaddrinfo(res);
    uv_close((uv_handle_t *)&u->timer, up_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
    return;
  }
  if (status < 0 || !res) {
    relay_log_info("upstream %s: cannot resolve %s: %s",
                   u->cfg->upstreams[u->upstream_index].name,
                   u->cfg->upstreams[u->upstream_index].host, uv_strerror(status));
    if (res) uv_freeaddrinfo(res);
    up_fail(u, status < 0 ? status : UV_EAI_NONAME, 0);
    return;
  }
  u->state = RELAY_UP_CONNECTING;
  int rc = uv_tcp_connect(&u->connect_req, &u->tcp, res->ai_addr, up_connect_cb);
  uv_freeaddrinfo(res);
  if (rc) up_fail(u, rc, 0);
}

static relay_upconn_t *up_new(relay_worker_t *w, relay_script_t *script, int upstream_index) {
  relay_upconn_t *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->w = w;
  u->upstream_index = upstream_index;
  relay_list_init(&u->link);
  if (uv_tcp_init(&w->loop, &u->tcp)) {
    free(u);
    return NULL;
  }
  uv_timer_init(&w->loop, &u->timer); /* cannot fail */
  u->script = script;
  relay_script_ref(script);
  u->cfg = &script->cfg;
  u->tcp.data = u;
  u->timer.data = u;
  u->connect_req.data = u;
  u->gai.data = u;
  u->handles_open = 2;
  u->tcp_inited = 1;
  llhttp_init(&u->parser, HTTP_RESPONSE, &w->resp_settings);
  u->parser.data = u;
  w->nupconns++;
  return u;
}

/* A pooled connection is handed over at once (returns 1); otherwise a new one
 * is resolved and connected, and the exchange hears of it later (returns 0). */
int relay_upstream_acquire(relay_worker_t *w, relay_exchange_t *ex, int upstream_index) {
  relay_upstream_pool_t *pool = &w->pools[upstream_index];
  /* The pool holds connections of the running script only; an exchange
   * routed before a reload connects afresh to its own script's upstream. */
  if (ex->script == w->script && !relay_list_empty(&pool->idle)) {
    relay_upconn_t *u = relay_container_of(pool->idle.prev, relay_upconn_t, link);
    relay_list_remove(&u->link);
    pool->nidle--;
    uv_timer_stop(&u->timer);
    u->state = RELAY_UP_BUSY;
    u->reused = 1;
    u->ex = ex;
    ex->up = u;
    relay_upstream_restart_idle_timer(u);
    return 1;
  }
  relay_upconn_t *u = up_new(w, ex->script, upstream_index);
  if (!u) return UV_ENOMEM;
  u->ex = ex;
  ex->up = u;
  u->state = RELAY_UP_RESOLVING;
  const relay_upstream_cfg_t *cfg = &u->cfg->upstreams[upstream_index];
  char port[16];
  snprintf(port, sizeof port, "%d", cfg->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (u->cfg->connect_timeout_ms)
    uv_timer_start(&u->timer, up_connect_timeout_cb, u->cfg->connect_timeout_ms, 0); /* live handle, real cb */
  /* An address literal needs no resolver round trip through the thread pool. */
  struct sockaddr_storage ss;
  if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss) == 0) {
    u->state = RELAY_UP_CONNECTING;
    int rc = uv_tcp_connect(&u->connect_req, &u->tcp, (struct sockaddr *)&ss, up_connect_cb);
    if (rc) {
      u->ex = NULL;
      ex->up = NULL;
      relay_upstream_close(u);
      return rc;
    }
    return 0;
  }
  int rc = uv_getaddrinfo(&w->loop, &u->gai, up_resolved_cb, cfg->host, port, &hints);
  if (rc) {
    u->ex = NULL;
    ex->up = NULL;
    relay_upstream_close(u);
    return rc;
  }
  u->gai_pending = 1;
  return 0;
}

void relay_upstream_release(relay_upconn_t *u, int reusable) {
  if (u->state == RELAY_UP_CLOSING) return;
  u->ex = NULL;
  /* A reload may have pointed the upstream's name elsewhere: no reuse then. */
  if (!reusable || u->w->shutting_down || u->write_pending > 0 || u->script != u->w->script) {
    relay_upstream_close(u);
    return;
  }
  llhttp_reset(&u->parser);
  u->in_head = 0;
  u->state = RELAY_UP_IDLE;
  u->responses++;
  relay_list_push(&u->w->pools[u->upstream_index].idle, &u->link);
  u->w->pools[u->upstream_index].nidle++;
  relay_upstream_read_resume(u);
  uv_timer_start(&u->timer, up_idle_timeout_cb, u->cfg->keepalive_timeout_ms, 0); /* live handle, real cb */
}

void relay_upstream_close_pool(relay_worker_t *w) {
  for (size_t i = 0; i < RELAY_MAX_UPSTREAMS; i++) {
    while (!relay_list_empty(&w->pools[i].idle)) {
      relay_upconn_t *u = relay_container_of(w->pools[i].idle.next, relay_upconn_t, link);
      relay_upstream_close(u);
    }
  }
}
