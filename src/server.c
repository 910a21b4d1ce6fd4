/* The listening socket and client connections: accept, read, parse requests
 * with llhttp, hand each request to an exchange, and serialize pipelined
 * requests so that responses go out in order. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy.h"

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void client_feed(relay_client_t *c, relay_slab_t *slab, const char *data, size_t len);
static void client_close_gracefully(relay_client_t *c);
static void client_timer_cb(uv_timer_t *t);
static void client_body_timer_cb(uv_timer_t *t);
static void client_fail_later(relay_client_t *c, int err);

static relay_client_t *client_of_parser(llhttp_t *p) { return p->data; }

/* llhttp request callbacks: collect the head, then drive the exchange. */
/* Restart the client's timer; a failure (only possible on a closing handle)
 * must not leave a wait without a deadline, so it fails the connection. */
static void client_timer_start(relay_client_t *c, uv_timer_cb cb, uint64_t ms) {
  if (uv_timer_start(&c->timer, cb, ms, 0)) client_fail_later(c, UV_EINVAL);
}

/* body_timeout 0 turns the body deadline off (like idle_timeout 0). */
static void client_body_timer_restart(relay_client_t *c) {
  if (c->w->cfg->body_timeout_ms) client_timer_start(c, client_body_timer_cb, c->w->cfg->body_timeout_ms);
}

static int on_req_message_begin(llhttp_t *p) {
  relay_client_t *c = client_of_parser(p);
  relay_head_reset(&c->req);
  c->in_request = 1;
  c->in_trailers = 0;
  c->trailer_bytes = 0;
  /* A new request on a kept-alive connection: the keep-alive timer becomes a
   * header timer from its first byte. (The first request's header timer has
   * run since the accept.) */
  if (c->keepalive_wait) {
    c->keepalive_wait = 0;
    client_timer_start(c, client_timer_cb, c->w->cfg->header_timeout_ms);
  }
  return 0;
}

/* Chunked trailers arrive through the field callbacks after the head was
 * used: they never become head fields. Dropped, and bounded like a head. */
static int on_req_trailer(relay_client_t *c, size_t len) {
  c->trailer_bytes += len;
  if (c->trailer_bytes > c->w->cfg->max_header_size) {
    c->head_too_big = 1;
    return -1;
  }
  return 0;
}

static int head_error(relay_client_t *c, int rc) {
  if (rc == RELAY_HEAD_ETOOBIG) c->head_too_big = 1;
  return -1;
}

static int on_req_url(llhttp_t *p, const char *at, size_t len) {
  relay_client_t *c = client_of_parser(p);
  int rc = relay_head_on_target(&c->req, at, len);
  return rc ? head_error(c, rc) : 0;
}

static int on_req_field(llhttp_t *p, const char *at, size_t len) {
  relay_client_t *c = client_of_parser(p);
  if (c->in_trailers) return on_req_trailer(c, len);
  int rc = relay_head_on_field(&c->req, at, len);
  return rc ? head_error(c, rc) : 0;
}

static int on_req_value(llhttp_t *p, const char *at, size_t len) {
  relay_client_t *c = client_of_parser(p);
  if (c->in_trailers) return on_req_trailer(c, len);
  int rc = relay_head_on_value(&c->req, at, len);
  return rc ? head_error(c, rc) : 0;
}

/* From the head on, a request body must keep coming: the body timer runs
 * between the client's reads until the message is complete. */
static int on_req_headers_complete(llhttp_t *p) {
  relay_client_t *c = client_of_parser(p);
  uv_timer_stop(&c->timer);
  c->in_trailers = 1;
  relay_exchange_begin(c);
  if (!c->closing && !c->shutting && c->ex.req_has_body) {
    c->in_body = 1;
    if (c->reading) client_body_timer_restart(c);
  }
  return 0;
}

static int on_req_body(llhttp_t *p, const char *at, size_t len) {
  relay_client_t *c = client_of_parser(p);
  return relay_exchange_on_request_body(&c->ex, at, len) ? -1 : 0;
}

/* Pause after each request: the next pipelined one waits for this response. */
static int on_req_message_complete(llhttp_t *p) {
  relay_client_t *c = client_of_parser(p);
  if (c->in_body) {
    c->in_body = 0;
    uv_timer_stop(&c->timer);
  }
  relay_exchange_on_request_complete(&c->ex);
  return HPE_PAUSED;
}

void relay_server_init_settings(llhttp_settings_t *s);
void relay_server_init_settings(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = on_req_message_begin;
  s->on_url = on_req_url;
  s->on_header_field = on_req_field;
  s->on_header_value = on_req_value;
  s->on_headers_complete = on_req_headers_complete;
  s->on_body = on_req_body;
  s->on_message_complete = on_req_message_complete;
}

static void client_handle_closed(uv_handle_t *h) {
  relay_client_t *c = h->data;
  if (--c->handles_open > 0) return;
  relay_worker_t *w = c->w;
  relay_list_remove(&c->link);
  w->nclients--;
  relay_head_close(&c->req);
  relay_head_close(&c->ex.resp);

  relay_buf_close(&c->ex.up_head);
  relay_buf_close(&c->ex.up_pending);
  relay_buf_close(&c->ex.req_body);
  relay_buf_close(&c->ex.filtered);
  relay_buf_close(&c->ex.batch);
  relay_buf_close(&c->pipelined);
  free(c);
  relay_worker_maybe_finish(w);
}

void relay_client_close(relay_client_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->ex.state != RELAY_EX_IDLE && c->ex.state != RELAY_EX_DONE)
    relay_exchange_on_client_gone(&c->ex);
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, client_handle_closed);
  uv_close((uv_handle_t *)&c->send_timer, client_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, client_handle_closed);
}

/* Cut the response: what was already queued still goes out (nothing relayed
 * is lost), then the connection closes without a terminating chunk, so the
 * client's parser sees an incomplete body rather than a clean end. */
void relay_client_abort(relay_client_t *c) {
  c->close_after = 1;
  client_close_gracefully(c);
}

static void client_shutdown_cb(uv_shutdown_t *req, int status) {
  relay_client_t *c = req->data;
  free(req);
  relay_client_close(c);
}

/* Close after every queued byte is written: a response must not be cut by
 * our own close. */
static void client_close_gracefully(relay_client_t *c) {
  if (c->closing || c->shutting) return;
  c->shutting = 1;
  uv_shutdown_t *req = malloc(sizeof *req);
  if (!req) {
    relay_client_close(c);
    return;
  }
  req->data = c;
  c->reading = 0;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (uv_shutdown(req, (uv_stream_t *)&c->tcp, client_shutdown_cb)) {
    free(req);
    relay_client_close(c);
  }
}

static void client_timer_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  if (c->ex.state != RELAY_EX_IDLE) return;
  if (c->in_request) {
    relay_log_info("client %s: request head not received in time", c->peer);
    relay_send_error(c, 408, "invalid_request_error", "request_timeout",
                     "request head not received in time");
    return;
  }
  relay_client_close(c);
}

/* The request body stalled: 408 if nothing was answered yet, else a cut. */
static void client_body_timer_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  if (!c->in_body) return;
  relay_log_info("client %s: request body stalled for %lu ms during %s", c->peer, c->w->cfg->body_timeout_ms,
                 c->ex.log_path);
  c->in_body = 0;
  c->close_after = 1;
  relay_client_read_pause(c);
  if (c->ex.state == RELAY_EX_IDLE || c->ex.state == RELAY_EX_DONE) {
    relay_client_abort(c); /* what was answered still goes out */
    return;
  }
  relay_exchange_fail(&c->ex, 408, "invalid_request_error", "request_timeout",
                      "request body not received in time");
}

/* The client stopped reading: nothing was written for the send timeout
 * while the write queue stayed over the high-water mark. */
static void client_send_timer_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  relay_log_info("client %s: stopped reading the response for %lu ms; closing", c->peer,
                 c->w->cfg->send_timeout_ms);
  relay_client_close(c);
}

static void client_deferred_fail_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  relay_log_debug("client %s: closing after a failed call: %s", c->peer, uv_strerror(c->deferred_err));
  relay_client_close(c);
}

/* A libuv call failed in the middle of an exchange step: close the
 * connection on the next loop turn rather than re-enter the exchange now. */
static void client_fail_later(relay_client_t *c, int err) {
  if (c->closing || c->deferred_err) return;
  c->deferred_err = err ? err : UV_EINVAL;
  if (uv_timer_start(&c->send_timer, client_deferred_fail_cb, 0, 0)) relay_client_close(c);
}

static void client_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  relay_client_t *c = h->data;
  relay_slab_t *s = relay_slab_get(&c->w->slabs);
  *buf = s ? uv_buf_init(s->data, RELAY_SLAB_SIZE) : uv_buf_init(NULL, 0);
}

/* While reads are paused the wait is on the other side, not the client:
 * the body timer runs only while the relay reads. */
void relay_client_read_resume(relay_client_t *c) {
  if (c->reading || c->closing || c->read_eof) return;
  int rc = uv_read_start((uv_stream_t *)&c->tcp, client_alloc_cb, client_read_cb);
  if (rc) {
    client_fail_later(c, rc);
    return;
  }
  c->reading = 1;
  if (c->in_body) client_body_timer_restart(c);
}

void relay_client_read_pause(relay_client_t *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
  if (c->in_body) uv_timer_stop(&c->timer);
}

/* The send timer runs from the moment the write queue passes the high-water
 * mark (the other side is paused) until it drains below the low mark (the
 * other side resumes), and restarts with every completed write: a slow reader
 * that keeps reading is fine, one that stopped is cut after send_timeout. */
static void client_send_timer_update(relay_client_t *c, int progressed) {
  if (c->deferred_err || c->closing || c->w->cfg->send_timeout_ms == 0) return;
  if (c->write_pending < RELAY_LOW_WATER) {
    if (c->send_waiting) {
      c->send_waiting = 0;
      uv_timer_stop(&c->send_timer);
    }
    return;
  }
  if (c->send_waiting && !progressed) return;
  c->send_waiting = 1;
  if (uv_timer_start(&c->send_timer, client_send_timer_cb, c->w->cfg->send_timeout_ms, 0))
    client_fail_later(c, UV_EINVAL);
}

static void client_write_cb(relay_write_t *wr, int status) {
  relay_client_t *c = wr->owner;
  c->write_pending -= wr->bytes;
  if (c->closing) return;
  if (status < 0) {
    relay_log_debug("client %s: write failed: %s", c->peer, uv_strerror(status));
    relay_client_close(c);
    return;
  }
  if (c->send_waiting) client_send_timer_update(c, 1);
  if (c->write_pending < RELAY_LOW_WATER && c->ex.state != RELAY_EX_IDLE)
    relay_exchange_on_client_drained(&c->ex);
}

int relay_client_write(relay_client_t *c, relay_write_t *wr) {
  if (c->closing || c->shutting || wr->nbufs == 0) {
    int rc = (c->closing || c->shutting) ? UV_ECANCELED : 0;
    relay_write_free(wr);
    return rc;
  }
  wr->cb = client_write_cb;
  wr->owner = c;
  size_t bytes = wr->bytes;
  int rc = relay_write_submit(wr, (uv_stream_t *)&c->tcp);
  if (rc) {
    client_fail_later(c, rc);
    return rc;
  }
  c->write_pending += bytes;
  if (c->write_pending >= RELAY_HIGH_WATER && !c->send_waiting) client_send_timer_update(c, 0);
  return rc;
}

/* A parse error before any response: answer 400 (or 431) ourselves. */
static void client_parse_error(relay_client_t *c, llhttp_errno_t err) {
  if (c->head_too_big) {
    relay_send_error(c, 431, "invalid_request_error", "headers_too_large",
                     "request header fields too large");
    return;
  }
  const char *reason = llhttp_get_error_reason(&c->parser);
  relay_log_info("client %s: bad request: %s (%s)", c->peer, llhttp_errno_name(err),
                 reason ? reason : "");
  char msg[256];
  snprintf(msg, sizeof msg, "malformed HTTP request: %s", reason ? reason : llhttp_errno_name(err));
  if (c->ex.state != RELAY_EX_IDLE && c->ex.resp_head_sent) {
    relay_client_abort(c);
    return;
  }
  relay_send_error(c, 400, "invalid_request_error", "bad_request", msg);
}

/* Keep bytes that arrive while the parser waits for a response; a client
 * that pipelines too far ahead is paused rather than buffered without bound. */
static void client_stash(relay_client_t *c, const char *data, size_t len) {
  if (relay_buf_append(&c->pipelined, data, len)) {
    relay_client_close(c);
    return;
  }
  if (c->pipelined.len >= RELAY_PIPELINE_MAX) relay_client_read_pause(c);
}

static void client_feed(relay_client_t *c, relay_slab_t *slab, const char *data, size_t len) {
  if (c->closing) return;
  if (c->ex.state == RELAY_EX_TUNNEL) {
    relay_exchange_on_tunnel_data(&c->ex, slab, data, len);
    return;
  }
  if (c->parser_paused) {
    client_stash(c, data, len);
    return;
  }
  c->cur_slab = slab;
  llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
  c->cur_slab = NULL;
  if (c->closing) return;
  if (err == HPE_OK) return;
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    const char *pos = llhttp_get_error_pos(&c->parser);
    size_t used = pos ? (size_t)(pos - data) : len;
    c->parser_paused = 1;
    if (used < len) {
      if (c->ex.state == RELAY_EX_TUNNEL) {
        relay_exchange_on_tunnel_data(&c->ex, slab, data + used, len - used);
      } else {
        client_stash(c, data + used, len - used);
      }
    }
    if (c->ex.state == RELAY_EX_DONE) relay_client_exchange_done(c);
    return;
  }
  client_parse_error(c, err);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  relay_client_t *c = s->data;
  relay_slab_t *slab = buf->base ? relay_container_of(buf->base, relay_slab_t, data) : NULL;
  if (nread > 0) {
    if (c->in_body) client_body_timer_restart(c);
    client_feed(c, slab, buf->base, (size_t)nread);
  } else if (nread < 0) {
    c->read_eof = 1;
    c->reading = 0;
    uv_read_stop(s);
    if (c->ex.state == RELAY_EX_IDLE || c->ex.state == RELAY_EX_DONE) {
      if (c->write_pending == 0 || nread != UV_EOF) relay_client_close(c);
      else c->close_after = 1;
    } else if (c->ex.state == RELAY_EX_TUNNEL) {
      relay_exchange_on_client_gone(&c->ex);
    } else {
      relay_log_info("client %s: closed the connection during %s", c->peer, c->ex.log_path);
      relay_client_close(c);
    }
  } else if (nread == UV_ENOBUFS) {
    relay_client_close(c);
  }
  if (slab) relay_slab_unref(&c->w->slabs, slab);
}

/* The exchange is over. Either close, or resume parsing the next pipelined
 * request and wait for more with the keep-alive timer running. */
void relay_client_exchange_done(relay_client_t *c) {
  if (c->closing) return;
  c->ex.state = RELAY_EX_IDLE;
  c->in_request = 0;
  if (c->close_after || c->w->shutting_down || c->read_eof) {
    client_close_gracefully(c);
    return;
  }
  c->parser_paused = 0;
  c->in_body = 0;
  llhttp_resume(&c->parser);
  c->keepalive_wait = 1;
  client_timer_start(c, client_timer_cb, c->w->cfg->keepalive_timeout_ms);
  if (c->pipelined.len > 0) {
    /* Parse from a private copy: parsing may stash new bytes into pipelined. */
    relay_buf_t pending = c->pipelined;
    relay_buf_init(&c->pipelined);
    client_feed(c, NULL, pending.data, pending.len);
    relay_buf_close(&pending);
  }
  if (!c->closing && !c->parser_paused) relay_client_read_resume(c);
  else if (!c->closing && c->pipelined.len < RELAY_PIPELINE_MAX) relay_client_read_resume(c);
}

static void on_connection(uv_stream_t *server, int status) {
  relay_worker_t *w = server->data;
  if (status < 0) {
    relay_log_warn("accept failed: %s", uv_strerror(status));
    return;
  }
  relay_client_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->w = w;
  if (uv_tcp_init(&w->loop, &c->tcp)) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->handles_open = 3;
  uv_timer_init(&w->loop, &c->timer); /* timers cannot fail to init */
  c->timer.data = c;
  uv_timer_init(&w->loop, &c->send_timer);
  c->send_timer.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    relay_list_init(&c->link);
    relay_list_push(&w->clients, &c->link);
    w->nclients++;
    relay_client_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* an optimisation; failure changes nothing */
  relay_list_init(&c->link);
  relay_list_push(&w->clients, &c->link);
  w->nclients++;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  strcpy(c->peer, "unknown");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET6)
      uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
    else
      uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
  }
  relay_head_init(&c->req, w->cfg->max_header_size);
  relay_head_init(&c->ex.resp, RELAY_RESP_HEAD_MAX);
  relay_buf_init(&c->pipelined);
  llhttp_init(&c->parser, HTTP_REQUEST, &w->req_settings);
  c->parser.data = c;
  client_timer_start(c, client_timer_cb, w->cfg->header_timeout_ms);
  relay_client_read_resume(c);
}

int relay_server_listen(relay_worker_t *w, int fd) {
  int rc = uv_tcp_init(&w->loop, &w->listener);
  if (rc) return rc;
  w->listener.data = w;
  w->listener_open = 1;
  rc = uv_tcp_open(&w->listener, fd);
  if (rc) return rc;
  return uv_listen((uv_stream_t *)&w->listener, 1024, on_connection);
}

void relay_server_stop_accepting(relay_worker_t *w) {
  if (!w->listener_open) return;
  w->listener_open = 0;
  uv_close((uv_handle_t *)&w->listener, NULL);
}

/* Shutdown: idle keep-alive connections go now; busy ones when done. */
void relay_server_close_idle(relay_worker_t *w) {
  relay_list_t *l = w->clients.next;
  while (l != &w->clients) {
    relay_client_t *c = relay_container_of(l, relay_client_t, link);
    l = l->next;
    if (c->ex.state == RELAY_EX_IDLE && !c->in_request)
      client_close_gracefully(c);
    else
      c->close_after = 1;
  }
}
