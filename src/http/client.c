/* Upstream connections: name resolution, connect under a deadline, response
 * parsing with llhttp, and a per-upstream pool of idle keep-alive
 * connections. See client.h. */
#include "client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void up_fail(relay_upconn_t *u, int err, int timed_out);
static void up_arm(relay_upconn_t *u);
static void up_touch(relay_upconn_t *u);

static relay_upconn_t *up_of_parser(llhttp_t *p) { return p->data; }
static const relay_upstream_opts_t *up_opts(const relay_upconn_t *u) { return &u->upstream->opts; }
static const char *up_name(const relay_upconn_t *u) { return u->upstream->name; }

/* ---- llhttp response callbacks ---------------------------------------- */

/* The first byte of a response head: from now on the whole head must arrive
 * within the header timeout (an upstream that trickles a head byte by byte
 * would otherwise hold the exchange for ever, each byte resetting the idle
 * timer). The wait for this first byte stays the idle timeout: models think
 * for minutes. */
static int on_resp_message_begin(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->ud) relay_head_reset(u->resp);
  u->in_trailers = 0;
  u->trailer_bytes = 0;
  if (up_opts(u)->header_timeout_ms) {
    u->in_head = 1;
    u->head_deadline = uv_now(u->upstream->loop) + up_opts(u)->header_timeout_ms;
    up_arm(u);
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
  return u->ud && relay_head_on_target(u->resp, at, len) ? -1 : 0;
}

static int on_resp_field(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->in_trailers) return up_trailer(u, len);
  return u->ud && relay_head_on_field(u->resp, at, len) ? -1 : 0;
}

static int on_resp_value(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (u->in_trailers) return up_trailer(u, len);
  return u->ud && relay_head_on_value(u->resp, at, len) ? -1 : 0;
}

static int on_resp_headers_complete(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ud) return -1;
  u->in_trailers = 1;
  u->in_head = 0; /* the head deadline is over; the wait timer learns it when it fires */
  return u->h->on_head(u->ud, p);
}

static int on_resp_body(llhttp_t *p, const char *at, size_t len) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ud) return -1;
  relay_slab_t *s = u->cur_slab;
  if (s && !(at >= s->data && at < s->data + RELAY_SLAB_SIZE)) s = NULL;
  return u->h->on_body(u->ud, s, at, len) ? -1 : 0;
}

static int on_resp_message_complete(llhttp_t *p) {
  relay_upconn_t *u = up_of_parser(p);
  if (!u->ud) return -1;
  return u->h->on_message_end(u->ud, p);
}

void relay_upstream_settings_init(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = on_resp_message_begin;
  s->on_status = on_resp_status;
  s->on_header_field = on_resp_field;
  s->on_header_value = on_resp_value;
  s->on_headers_complete = on_resp_headers_complete;
  s->on_body = on_resp_body;
  s->on_message_complete = on_resp_message_complete;
}

/* ---- upstreams --------------------------------------------------------- */

relay_upstream_t *relay_upstream_new(uv_loop_t *loop, relay_slab_pool_t *slabs, const llhttp_settings_t *settings,
                                     const char *name, const char *host, int port, const relay_upstream_opts_t *opts) {
  relay_upstream_t *up = calloc(1, sizeof *up);
  if (!up) return NULL;
  up->loop = loop;
  up->slabs = slabs;
  up->settings = settings;
  snprintf(up->name, sizeof up->name, "%s", name);
  snprintf(up->host, sizeof up->host, "%s", host);
  up->port = port;
  up->opts = *opts;
  relay_list_init(&up->idle);
  up->refs = 1;
  return up;
}

void relay_upstream_ref(relay_upstream_t *up) { up->refs++; }

void relay_upstream_unref(relay_upstream_t *up) {
  if (up && --up->refs == 0) free(up);
}

void relay_upstream_close_idle(relay_upstream_t *up) {
  while (!relay_list_empty(&up->idle)) relay_upconn_close(relay_container_of(up->idle.next, relay_upconn_t, link));
}

void relay_upstream_retire(relay_upstream_t *up) {
  up->retired = 1;
  relay_upstream_close_idle(up);
}

/* ---- connections ------------------------------------------------------- */

static void up_handle_closed(uv_handle_t *h) {
  relay_upconn_t *u = h->data;
  if (--u->handles_open > 0) return;
  relay_upstream_t *up = u->upstream;
  up->nconns--;
  if (up->open_conns) (*up->open_conns)--;
  free(u);
  if (up->on_conn_freed) up->on_conn_freed(up->data);
  relay_upstream_unref(up);
}

void relay_upconn_close(relay_upconn_t *u) {
  if (u->state == RELAY_UPCONN_CLOSING) return;
  if (u->state == RELAY_UPCONN_IDLE) {
    relay_list_remove(&u->link);
    u->upstream->nidle--;
  }
  u->state = RELAY_UPCONN_CLOSING;
  u->ud = NULL;
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
  relay_slab_t *s = relay_slab_get(u->upstream->slabs);
  *buf = s ? uv_buf_init(s->data, RELAY_SLAB_SIZE) : uv_buf_init(NULL, 0);
}

static void up_deferred_fail_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  up_fail(u, u->deferred_err, 0);
}

/* A libuv call failed where the owner cannot hear of it at once (it is in
 * the middle of using the connection): fail on the next loop turn. */
static void up_fail_later(relay_upconn_t *u, int err) {
  if (u->state == RELAY_UPCONN_CLOSING || u->deferred_err) return;
  u->deferred_err = err ? err : UV_EINVAL;
  u->timer_due = 0;
  /* Only a closing handle makes this fail, and a closing connection returned
   * above; failing at once is still better than a connection nobody fails. */
  if (uv_timer_start(&u->timer, up_deferred_fail_cb, 0, 0)) up_fail(u, u->deferred_err, 0);
}

void relay_upconn_read_resume(relay_upconn_t *u) {
  if (u->reading || u->state == RELAY_UPCONN_CLOSING) return;
  int rc = uv_read_start((uv_stream_t *)&u->tcp, up_alloc_cb, up_read_cb);
  if (rc) {
    up_fail_later(u, rc);
    return;
  }
  u->reading = 1;
  if (u->state == RELAY_UPCONN_BUSY) up_touch(u);
}

/* While the client cannot keep up, the upstream is not read and its idle
 * deadline does not run (up_deadline): a slow reader is not an upstream
 * timeout. Resuming starts the wait afresh. */
void relay_upconn_read_pause(relay_upconn_t *u) {
  if (!u->reading) return;
  uv_read_stop((uv_stream_t *)&u->tcp);
  u->reading = 0;
}

/* When the connection's current wait ends, in loop time; 0 for none. In the
 * pool: the keep-alive timeout from the release. Busy and reading: the idle
 * timeout from the last progress, or the head deadline if that comes first. */
static uint64_t up_deadline(const relay_upconn_t *u) {
  const relay_upstream_opts_t *o = up_opts(u);
  if (u->state == RELAY_UPCONN_IDLE) return u->last_io + o->keepalive_timeout_ms;
  if (u->state != RELAY_UPCONN_BUSY || u->tunnel || !u->reading) return 0;
  uint64_t d = o->idle_timeout_ms ? u->last_io + o->idle_timeout_ms : 0;
  if (u->in_head && (d == 0 || u->head_deadline < d)) d = u->head_deadline;
  return d;
}

/* The wait timer fired: the deadline it was set for may have moved on (every
 * byte and every release moves it); if so it sleeps again until the new one. */
static void up_wait_timeout_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  u->timer_due = 0;
  uint64_t deadline = up_deadline(u);
  if (deadline == 0) return;
  uint64_t now = uv_now(u->upstream->loop);
  if (now < deadline) {
    up_arm(u);
    return;
  }
  if (u->state == RELAY_UPCONN_IDLE) {
    relay_upconn_close(u);
    return;
  }
  if (u->in_head && now >= u->head_deadline) {
    relay_log_info("upstream %s: response head not complete within %lu ms", up_name(u), up_opts(u)->header_timeout_ms);
    up_fail(u, UV_ETIMEDOUT, 1);
    return;
  }
  relay_log_info("upstream %s: no data for %lu ms", up_name(u), up_opts(u)->idle_timeout_ms);
  up_fail(u, UV_ETIMEDOUT, 1);
}

/* See that the wait timer fires no later than the current deadline. Progress
 * only moves a deadline later, so it costs no timer call: a timer that fires
 * early finds the later deadline and is set again (once per timeout, not once
 * per read). Only a nearer deadline (a head's, the pool's) resets the timer. */
static void up_arm(relay_upconn_t *u) {
  if (u->deferred_err || u->state == RELAY_UPCONN_CLOSING) return;
  uint64_t deadline = up_deadline(u);
  if (deadline == 0 || (u->timer_due && u->timer_due <= deadline)) return;
  uint64_t now = uv_now(u->upstream->loop);
  if (uv_timer_start(&u->timer, up_wait_timeout_cb, deadline > now ? deadline - now : 0, 0)) {
    up_fail_later(u, UV_EINVAL);
    return;
  }
  u->timer_due = deadline;
}

/* Progress (bytes read or written): the wait starts again from now. */
static void up_touch(relay_upconn_t *u) {
  u->last_io = uv_now(u->upstream->loop);
  if (!u->timer_due) up_arm(u);
}

/* The owner learns of the failure; the connection is never reused. */
static void up_fail(relay_upconn_t *u, int err, int timed_out) {
  void *ud = u->ud;
  const relay_upconn_handler_t *h = u->h;
  relay_upconn_close(u);
  if (ud) h->on_error(ud, err, timed_out);
}

/* After a complete response: bytes beyond it mean a confused upstream, so the
 * connection is only reused when the response ended exactly at a read end. */
static void up_response_done(relay_upconn_t *u, int extra_bytes) {
  int reusable = !extra_bytes && llhttp_should_keep_alive(&u->parser);
  if (u->ud) u->h->on_done(u->ud, reusable);
}

static void up_feed(relay_upconn_t *u, relay_slab_t *slab, const char *data, size_t len) {
  void *ud = u->ud;
  const relay_upconn_handler_t *h = u->h;
  if (ud && u->tunnel) {
    h->on_tunnel_data(ud, slab, data, len);
    return;
  }
  u->cur_slab = slab;
  if (ud) h->on_read_begin(ud);
  llhttp_errno_t err = llhttp_execute(&u->parser, data, len);
  u->cur_slab = NULL;
  /* The owner outlives this call even if the connection closed meanwhile. */
  if (ud) h->on_read_end(ud);
  if (u->state == RELAY_UPCONN_CLOSING) return;
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    const char *pos = llhttp_get_error_pos(&u->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    if (u->tunnel) {
      if (used < len && u->ud) u->h->on_tunnel_data(u->ud, slab, data + used, len - used);
      return;
    }
    up_response_done(u, used < len);
    return;
  }
  relay_log_info("upstream %s: bad response: %s (%s)", up_name(u), llhttp_errno_name(err),
                 llhttp_get_error_reason(&u->parser) ? llhttp_get_error_reason(&u->parser) : "");
  up_fail(u, UV_EPROTO, 0);
}

/* End of stream: a close-delimited body ends here; anything else is a cut. */
static void up_eof(relay_upconn_t *u) {
  if (u->tunnel) {
    void *ud = u->ud;
    const relay_upconn_handler_t *h = u->h;
    relay_upconn_close(u);
    if (ud) h->on_tunnel_eof(ud);
    return;
  }
  llhttp_errno_t err = llhttp_finish(&u->parser);
  if (u->state == RELAY_UPCONN_CLOSING) return;
  if (err == HPE_PAUSED) {
    up_response_done(u, 1);
    return;
  }
  up_fail(u, UV_EOF, 0);
}

static void up_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  relay_upconn_t *u = s->data;
  relay_slab_t *slab = buf->base ? relay_container_of(buf->base, relay_slab_t, data) : NULL;
  relay_slab_pool_t *slabs = u->upstream->slabs;
  if (u->state == RELAY_UPCONN_IDLE) {
    /* An idle pooled connection that speaks or closes is no longer usable. */
    relay_upconn_close(u);
  } else if (nread > 0) {
    up_touch(u);
    up_feed(u, slab, buf->base, (size_t)nread);
  } else if (nread == UV_EOF) {
    up_eof(u);
  } else if (nread < 0) {
    up_fail(u, (int)nread, 0);
  }
  if (slab) relay_slab_unref(slabs, slab);
}

static void up_write_cb(relay_write_t *wr, int status) {
  relay_upconn_t *u = wr->owner;
  u->write_pending -= wr->bytes;
  if (u->state == RELAY_UPCONN_CLOSING) return;
  if (status < 0) {
    up_fail(u, status, 0);
    return;
  }
  if (u->state == RELAY_UPCONN_BUSY) up_touch(u);
  if (u->write_pending < RELAY_LOW_WATER && u->ud) u->h->on_drained(u->ud);
}

int relay_upconn_write(relay_upconn_t *u, relay_write_t *wr) {
  if (u->state == RELAY_UPCONN_CLOSING || wr->nbufs == 0) {
    relay_write_free(wr);
    return u->state == RELAY_UPCONN_CLOSING ? UV_ECANCELED : 0;
  }
  wr->cb = up_write_cb;
  wr->owner = u;
  size_t queued;
  int rc = relay_write_send(wr, (uv_stream_t *)&u->tcp, &queued);
  if (rc) {
    up_fail_later(u, rc);
    return rc;
  }
  u->write_pending += queued;
  /* Written at once: progress, as when a queued write completes. */
  if (queued == 0 && u->state == RELAY_UPCONN_BUSY) up_touch(u);
  return 0;
}

static void up_connected(relay_upconn_t *u) {
  u->state = RELAY_UPCONN_BUSY;
  uv_tcp_nodelay(&u->tcp, 1);
  uv_timer_stop(&u->timer); /* the connect deadline */
  u->timer_due = 0;
  relay_upconn_read_resume(u);
  if (u->ud) u->h->on_connected(u->ud, u);
}

static void up_connect_timeout_cb(uv_timer_t *t) {
  relay_upconn_t *u = t->data;
  relay_log_info("upstream %s: connect timed out", up_name(u));
  up_fail(u, UV_ETIMEDOUT, 1);
}

static void up_connect_cb(uv_connect_t *req, int status) {
  relay_upconn_t *u = req->data;
  if (u->state == RELAY_UPCONN_CLOSING) return;
  if (status < 0) {
    relay_log_info("upstream %s: connect failed: %s", up_name(u), relay_strerror(status));
    up_fail(u, status, 0);
    return;
  }
  up_connected(u);
}

static void up_resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  relay_upconn_t *u = req->data;
  u->gai_pending = 0;
  if (u->state == RELAY_UPCONN_CLOSING) {
    if (res) uv_freeaddrinfo(res);
    uv_close((uv_handle_t *)&u->timer, up_handle_closed);
    uv_close((uv_handle_t *)&u->tcp, up_handle_closed);
    return;
  }
  if (status < 0 || !res) {
    relay_log_info("upstream %s: cannot resolve %s: %s", up_name(u), u->upstream->host, relay_strerror(status));
    if (res) uv_freeaddrinfo(res);
    up_fail(u, status < 0 ? status : UV_EAI_NONAME, 0);
    return;
  }
  u->state = RELAY_UPCONN_CONNECTING;
  int rc = uv_tcp_connect(&u->connect_req, &u->tcp, res->ai_addr, up_connect_cb);
  uv_freeaddrinfo(res);
  if (rc) up_fail(u, rc, 0);
}

static relay_upconn_t *up_new(relay_upstream_t *up) {
  relay_upconn_t *u = calloc(1, sizeof *u);
  if (!u) return NULL;
  u->upstream = up;
  relay_list_init(&u->link);
  if (uv_tcp_init(up->loop, &u->tcp)) {
    free(u);
    return NULL;
  }
  uv_timer_init(up->loop, &u->timer); /* cannot fail */
  relay_upstream_ref(up);
  up->nconns++;
  if (up->open_conns) (*up->open_conns)++;
  u->tcp.data = u;
  u->timer.data = u;
  u->connect_req.data = u;
  u->gai.data = u;
  u->handles_open = 2;
  llhttp_init(&u->parser, HTTP_RESPONSE, up->settings);
  u->parser.data = u;
  return u;
}

/* Start resolving (or, for an address literal, connecting at once: no
 * resolver round trip through the thread pool). */
static int up_start(relay_upconn_t *u) {
  relay_upstream_t *up = u->upstream;
  if (up->opts.connect_timeout_ms)
    uv_timer_start(&u->timer, up_connect_timeout_cb, up->opts.connect_timeout_ms, 0); /* live handle, real cb */
  struct sockaddr_storage ss;
  if (uv_ip4_addr(up->host, up->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(up->host, up->port, (struct sockaddr_in6 *)&ss) == 0) {
    u->state = RELAY_UPCONN_CONNECTING;
    return uv_tcp_connect(&u->connect_req, &u->tcp, (struct sockaddr *)&ss, up_connect_cb);
  }
  char port[16];
  snprintf(port, sizeof port, "%d", up->port);
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  u->state = RELAY_UPCONN_RESOLVING;
  int rc = uv_getaddrinfo(up->loop, &u->gai, up_resolved_cb, up->host, port, &hints);
  if (rc == 0) u->gai_pending = 1;
  return rc;
}

int relay_upconn_acquire(relay_upstream_t *up, const relay_upconn_handler_t *h, void *ud, relay_head_t *resp,
                         relay_upconn_t **out) {
  relay_upconn_t *u;
  *out = NULL;
  if (!relay_list_empty(&up->idle)) {
    u = relay_container_of(up->idle.prev, relay_upconn_t, link);
    relay_list_remove(&u->link);
    up->nidle--;
    u->state = RELAY_UPCONN_BUSY;
    u->reused = 1;
    u->h = h;
    u->ud = ud;
    u->resp = resp;
    /* The wait for the response starts now; the pool's timer, still set,
     * fires no later than needed (up_arm). */
    u->last_io = uv_now(up->loop);
    up_arm(u);
    *out = u;
    return 1;
  }
  u = up_new(up);
  if (!u) return UV_ENOMEM;
  u->h = h;
  u->ud = ud;
  u->resp = resp;
  int rc = up_start(u);
  if (rc) {
    u->ud = NULL;
    relay_upconn_close(u);
    return rc;
  }
  *out = u;
  return 0;
}

void relay_upconn_release(relay_upconn_t *u, int reusable) {
  if (u->state == RELAY_UPCONN_CLOSING) return;
  u->ud = NULL;
  u->resp = NULL;
  if (!reusable || u->upstream->retired || u->write_pending > 0 || u->tunnel) {
    relay_upconn_close(u);
    return;
  }
  llhttp_reset(&u->parser);
  u->in_head = 0;
  u->state = RELAY_UPCONN_IDLE;
  relay_list_push(&u->upstream->idle, &u->link);
  u->upstream->nidle++;
  relay_upconn_read_resume(u);
  u->last_io = uv_now(u->upstream->loop); /* the keep-alive wait starts */
  up_arm(u);
}

void relay_upconn_start_tunnel(relay_upconn_t *u) {
  u->tunnel = 1;
  uv_timer_stop(&u->timer);
  u->timer_due = 0;
}
