/* Client connections: accept, read into slabs, parse requests with llhttp,
 * hold every wait to a deadline, and keep pipelined requests in order. Each
 * request goes to the owner's handler; see server.h. */
#include "server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void client_feed(relay_client_t *c, relay_slab_t *slab, const char *data, size_t len);
static void client_close_gracefully(relay_client_t *c);
static void client_fail_later(relay_client_t *c, int err);
static void client_wait_start(relay_client_t *c);
static void client_timer_cb(uv_timer_t *t);
static void client_body_stalled(relay_client_t *c);

static relay_client_t *client_of_parser(llhttp_t *p) { return p->data; }
static const relay_server_opts_t *client_opts(const relay_client_t *c) { return c->server->opts; }
static const relay_server_handler_t *client_handler(const relay_client_t *c) { return c->server->handler; }

/* The slab that holds data, for zero-copy forwarding; NULL when the bytes
 * live elsewhere (the pipelined-request buffer). */
static relay_slab_t *client_slab_of(const relay_client_t *c, const char *data) {
  relay_slab_t *s = c->cur_slab;
  return s && data >= s->data && data < s->data + RELAY_SLAB_SIZE ? s : NULL;
}

/* ---- llhttp request callbacks ---------------------------------------- */

/* A new request on a kept-alive connection: the keep-alive timer becomes a
 * header timer from its first byte. (The first request's header timer has
 * run since the accept.) */
static int on_req_message_begin(llhttp_t *p) {
  relay_client_t *c = client_of_parser(p);
  relay_head_reset(&c->req);
  c->phase = RELAY_CLIENT_HEAD;
  c->in_trailers = 0;
  c->trailer_bytes = 0;
  if (c->keepalive_wait) {
    c->keepalive_wait = 0;
    client_wait_start(c);
  }
  return 0;
}

/* Chunked trailers arrive through the field callbacks after the head was
 * used: they never become head fields. Dropped, and bounded like a head. */
static int on_req_trailer(relay_client_t *c, size_t len) {
  c->trailer_bytes += len;
  if (c->trailer_bytes > client_opts(c)->max_header_size) {
    c->head_too_big = 1;
    return -1;
  }
  return 0;
}

static int head_error(relay_client_t *c, int rc) {
  if (rc == RELAY_ETOOBIG) c->head_too_big = 1;
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
  c->in_trailers = 1;
  c->phase = RELAY_CLIENT_EXCHANGE; /* the head deadline is over */
  int has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  client_handler(c)->on_request(c);
  if (!c->closing && !c->shutting && has_body) {
    c->in_body = 1;
    client_wait_start(c);
  }
  return 0;
}

/* Once the exchange is over (an early answer), the rest of the body is read
 * and dropped here, so the next request on the connection parses cleanly. */
static int on_req_body(llhttp_t *p, const char *at, size_t len) {
  relay_client_t *c = client_of_parser(p);
  if (c->phase != RELAY_CLIENT_EXCHANGE) return 0;
  return client_handler(c)->on_body(c, client_slab_of(c, at), at, len) ? -1 : 0;
}

/* Pause after each request: the next pipelined one waits for this response. */
static int on_req_message_complete(llhttp_t *p) {
  relay_client_t *c = client_of_parser(p);
  c->in_body = 0; /* the body deadline is over */
  if (c->phase == RELAY_CLIENT_EXCHANGE) client_handler(c)->on_body_end(c);
  return HPE_PAUSED;
}

/* ---- closing ----------------------------------------------------------- */

static void client_handle_closed(uv_handle_t *h) {
  relay_client_t *c = h->data;
  if (--c->handles_open > 0) return;
  relay_server_t *s = c->server;
  relay_list_remove(&c->link);
  s->nclients--;
  relay_head_dispose(&c->req);
  relay_buf_dispose(&c->pipelined);
  s->handler->on_closed(c);
  free(c);
}

void relay_client_close(relay_client_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->phase == RELAY_CLIENT_EXCHANGE || c->phase == RELAY_CLIENT_TUNNEL) client_handler(c)->on_gone(c);
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

/* ---- deadlines --------------------------------------------------------- */

/* When the connection's current wait ends, in loop time; 0 for none. A
 * request body (also one still arriving after an early answer), while the
 * relay reads it: the body timeout from the last read. Before the first
 * request and during a head: the header timeout (from the accept, or from a
 * kept-alive request's first byte). Between requests: the keep-alive
 * timeout. */
static uint64_t client_deadline(const relay_client_t *c) {
  const relay_server_opts_t *o = client_opts(c);
  if (c->in_body) return c->reading && o->body_timeout_ms ? c->wait_start + o->body_timeout_ms : 0;
  switch (c->phase) {
    case RELAY_CLIENT_IDLE:
      return c->wait_start + (c->keepalive_wait ? o->keepalive_timeout_ms : o->header_timeout_ms);
    case RELAY_CLIENT_HEAD: return c->wait_start + o->header_timeout_ms;
    default: return 0;
  }
}

/* See that the timer fires no later than the current deadline. A deadline
 * mostly moves later (each read of a body, each request on a kept-alive
 * connection), which costs no timer call: the timer that fires early finds
 * the later one and is set again. A failure (only possible on a closing
 * handle) must not leave a wait without a deadline: it fails the connection. */
static void client_arm(relay_client_t *c) {
  if (c->closing) return;
  uint64_t deadline = client_deadline(c);
  if (deadline == 0 || (c->timer_due && c->timer_due <= deadline)) return;
  uint64_t now = uv_now(c->server->loop);
  if (uv_timer_start(&c->timer, client_timer_cb, deadline > now ? deadline - now : 0, 0)) {
    client_fail_later(c, UV_EINVAL);
    return;
  }
  c->timer_due = deadline;
}

/* A wait starts (or, for a body that moves, starts again) now. */
static void client_wait_start(relay_client_t *c) {
  c->wait_start = uv_now(c->server->loop);
  client_arm(c);
}

/* The timer fired: if the wait's deadline moved on, sleep until it; else
 * keep-alive ran out between requests (close), a head did not arrive in time
 * (408), or a request body stalled. */
static void client_timer_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  c->timer_due = 0;
  uint64_t deadline = client_deadline(c);
  if (deadline == 0) return;
  if (uv_now(c->server->loop) < deadline) {
    client_arm(c);
    return;
  }
  if (c->in_body) {
    client_body_stalled(c);
    return;
  }
  if (c->phase == RELAY_CLIENT_HEAD) {
    relay_log_info("client %s: request head not received in time", c->peer);
    c->close_after = 1;
    client_handler(c)->on_error(c, 408, "request_timeout", "request head not received in time");
    return;
  }
  relay_client_close(c);
}

/* The request body stalled: the handler answers 408, or cuts a response
 * that has begun. */
static void client_body_stalled(relay_client_t *c) {
  relay_log_info("client %s: request body stalled for %lu ms", c->peer, client_opts(c)->body_timeout_ms);
  c->in_body = 0;
  c->close_after = 1;
  relay_client_read_pause(c);
  if (c->phase != RELAY_CLIENT_EXCHANGE) {
    relay_client_abort(c); /* what was answered still goes out */
    return;
  }
  client_handler(c)->on_error(c, 408, "request_timeout", "request body not received in time");
}

/* The client stopped reading: nothing was written for the send timeout
 * while the write queue stayed over the high-water mark. */
static void client_send_timer_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  relay_log_info("client %s: stopped reading the response for %lu ms; closing", c->peer,
                 client_opts(c)->send_timeout_ms);
  relay_client_close(c);
}

static void client_deferred_fail_cb(uv_timer_t *t) {
  relay_client_t *c = t->data;
  relay_log_debug("client %s: closing after a failed call: %s", c->peer, relay_strerror(c->deferred_err));
  relay_client_close(c);
}

/* A libuv call failed in the middle of an exchange step: close the
 * connection on the next loop turn rather than re-enter the handler now. */
static void client_fail_later(relay_client_t *c, int err) {
  if (c->closing || c->deferred_err) return;
  c->deferred_err = err ? err : UV_EINVAL;
  if (uv_timer_start(&c->send_timer, client_deferred_fail_cb, 0, 0)) relay_client_close(c);
}

/* The send timer runs from the moment the write queue passes the high-water
 * mark (the other side is paused) until it drains below the low mark (the
 * other side resumes), and restarts with every completed write: a slow reader
 * that keeps reading is fine, one that stopped is cut after send_timeout. */
static void client_send_timer_update(relay_client_t *c, int progressed) {
  if (c->deferred_err || c->closing || client_opts(c)->send_timeout_ms == 0) return;
  if (c->write_pending < RELAY_LOW_WATER) {
    if (c->send_waiting) {
      c->send_waiting = 0;
      uv_timer_stop(&c->send_timer);
    }
    return;
  }
  if (c->send_waiting && !progressed) return;
  c->send_waiting = 1;
  if (uv_timer_start(&c->send_timer, client_send_timer_cb, client_opts(c)->send_timeout_ms, 0))
    client_fail_later(c, UV_EINVAL);
}

/* ---- reading and writing ---------------------------------------------- */

static void client_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  relay_client_t *c = h->data;
  relay_slab_t *s = relay_slab_get(c->server->slabs);
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
  if (c->in_body) client_wait_start(c);
}

/* While paused, the body deadline does not run (client_deadline). */
void relay_client_read_pause(relay_client_t *c) {
  if (!c->reading) return;
  uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

static void client_write_cb(relay_write_t *wr, int status) {
  relay_client_t *c = wr->owner;
  c->write_pending -= wr->bytes;
  if (c->closing) return;
  if (status < 0) {
    relay_log_debug("client %s: write failed: %s", c->peer, relay_strerror(status));
    relay_client_close(c);
    return;
  }
  if (c->send_waiting) client_send_timer_update(c, 1);
  if (c->write_pending < RELAY_LOW_WATER && (c->phase == RELAY_CLIENT_EXCHANGE || c->phase == RELAY_CLIENT_TUNNEL))
    client_handler(c)->on_drained(c);
}

int relay_client_write(relay_client_t *c, relay_write_t *wr) {
  if (c->closing || c->shutting || wr->nbufs == 0) {
    int rc = (c->closing || c->shutting) ? UV_ECANCELED : 0;
    relay_write_free(wr);
    return rc;
  }
  wr->cb = client_write_cb;
  wr->owner = c;
  size_t queued;
  int rc = relay_write_send(wr, (uv_stream_t *)&c->tcp, &queued);
  if (rc) {
    client_fail_later(c, rc);
    return rc;
  }
  c->write_pending += queued;
  if (c->write_pending >= RELAY_HIGH_WATER && !c->send_waiting) client_send_timer_update(c, 0);
  return rc;
}

/* A parse error: 431 for a head over the limit, else 400. */
static void client_parse_error(relay_client_t *c, llhttp_errno_t err) {
  c->close_after = 1;
  if (c->answered) {
    /* The rest of a request that was already answered is malformed: the
     * answer stands, and the connection ends after it. */
    relay_client_abort(c);
    return;
  }
  if (c->head_too_big) {
    client_handler(c)->on_error(c, 431, "headers_too_large", "request header fields too large");
    return;
  }
  const char *reason = llhttp_get_error_reason(&c->parser);
  relay_log_info("client %s: bad request: %s (%s)", c->peer, llhttp_errno_name(err), reason ? reason : "");
  char msg[256];
  snprintf(msg, sizeof msg, "malformed HTTP request: %s", reason ? reason : llhttp_errno_name(err));
  client_handler(c)->on_error(c, 400, "bad_request", msg);
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

/* After a pause the parser stopped at the end of a message (or at an
 * upgrade): what follows is the next request, or tunnel bytes. */
static void client_feed(relay_client_t *c, relay_slab_t *slab, const char *data, size_t len) {
  if (c->closing) return;
  if (c->phase == RELAY_CLIENT_TUNNEL) {
    client_handler(c)->on_tunnel_data(c, slab, data, len);
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
      if (c->phase == RELAY_CLIENT_TUNNEL) client_handler(c)->on_tunnel_data(c, slab, data + used, len - used);
      else client_stash(c, data + used, len - used);
    }
    /* The exchange ended before its request did (an early answer): now that
     * the request is read, the connection goes on. */
    if (c->phase == RELAY_CLIENT_IDLE) relay_client_exchange_done(c);
    return;
  }
  client_parse_error(c, err);
}

static void client_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  relay_client_t *c = s->data;
  relay_slab_t *slab = buf->base ? relay_container_of(buf->base, relay_slab_t, data) : NULL;
  if (nread > 0) {
    if (c->in_body) {
      c->wait_start = uv_now(c->server->loop); /* the body moves: its wait starts again */
      if (!c->timer_due) client_arm(c);
    }
    client_feed(c, slab, buf->base, (size_t)nread);
  } else if (nread < 0) {
    c->read_eof = 1;
    c->reading = 0;
    uv_read_stop(s);
    if (c->phase == RELAY_CLIENT_IDLE || c->phase == RELAY_CLIENT_HEAD) {
      if (c->write_pending == 0 || nread != UV_EOF) relay_client_close(c);
      else c->close_after = 1;
    } else if (c->phase == RELAY_CLIENT_TUNNEL) {
      client_handler(c)->on_gone(c);
    } else {
      relay_log_info("client %s: closed the connection mid-exchange", c->peer);
      relay_client_close(c);
    }
  } else if (nread == UV_ENOBUFS) {
    relay_client_close(c);
  }
  if (slab) relay_slab_unref(c->server->slabs, slab);
}

/* ---- between exchanges ------------------------------------------------- */

/* The exchange is over. Either close, or wait for the end of a request that
 * was answered early, or go on with the next pipelined request under the
 * keep-alive deadline. */
void relay_client_exchange_done(relay_client_t *c) {
  if (c->closing) return;
  c->phase = RELAY_CLIENT_IDLE;
  if (c->close_after || c->server->draining || c->read_eof) {
    client_close_gracefully(c);
    return;
  }
  if (!c->parser_paused) {
    c->answered = 1; /* its request is still arriving: read and dropped */
    return;
  }
  c->answered = 0;
  c->parser_paused = 0;
  c->in_body = 0;
  llhttp_resume(&c->parser);
  c->keepalive_wait = 1;
  client_wait_start(c);
  if (c->pipelined.len > 0) {
    /* Parse from a private copy: parsing may stash new bytes into pipelined. */
    relay_buf_t pending = c->pipelined;
    relay_buf_init(&c->pipelined);
    client_feed(c, NULL, pending.data, pending.len);
    relay_buf_dispose(&pending);
  }
  if (!c->closing && (!c->parser_paused || c->pipelined.len < RELAY_PIPELINE_MAX)) relay_client_read_resume(c);
}

/* Bytes the client sent after its upgrade request, before the 101, were
 * held as pipelined: they are the tunnel's first bytes. */
void relay_client_start_tunnel(relay_client_t *c) {
  c->phase = RELAY_CLIENT_TUNNEL;
  if (c->pipelined.len == 0) return;
  relay_buf_t pending = c->pipelined;
  relay_buf_init(&c->pipelined);
  client_handler(c)->on_tunnel_data(c, NULL, pending.data, pending.len);
  relay_buf_dispose(&pending);
  relay_client_read_resume(c);
}

/* ---- the listener ------------------------------------------------------ */

static void client_peer_name(relay_client_t *c) {
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  strcpy(c->peer, "unknown");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) != 0) return;
  if (ss.ss_family == AF_INET6) uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer, sizeof c->peer);
  else uv_ip4_name((struct sockaddr_in *)&ss, c->peer, sizeof c->peer);
}

static void on_connection(uv_stream_t *listener, int status) {
  relay_server_t *s = listener->data;
  if (status < 0) {
    relay_log_warn("accept failed: %s", relay_strerror(status));
    return;
  }
  relay_client_t *c = calloc(1, sizeof *c);
  if (!c) return;
  c->server = s;
  if (uv_tcp_init(s->loop, &c->tcp)) {
    free(c);
    return;
  }
  c->tcp.data = c;
  c->handles_open = 3;
  uv_timer_init(s->loop, &c->timer); /* timers cannot fail to init */
  c->timer.data = c;
  uv_timer_init(s->loop, &c->send_timer);
  c->send_timer.data = c;
  relay_head_init(&c->req, s->opts->max_header_size);
  relay_buf_init(&c->pipelined);
  relay_list_init(&c->link);
  relay_list_push(&s->clients, &c->link);
  s->nclients++;
  if (s->handler->on_open) s->handler->on_open(c);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    relay_client_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1); /* an optimisation; failure changes nothing */
  client_peer_name(c);
  llhttp_init(&c->parser, HTTP_REQUEST, &s->settings);
  c->parser.data = c;
  client_wait_start(c); /* the first head's deadline runs from the accept */
  relay_client_read_resume(c);
}

void relay_server_init(relay_server_t *s, uv_loop_t *loop, relay_slab_pool_t *slabs,
                       const relay_server_opts_t *opts, const relay_server_handler_t *handler, void *data) {
  memset(s, 0, sizeof *s);
  s->loop = loop;
  s->slabs = slabs;
  s->opts = opts;
  s->handler = handler;
  s->data = data;
  relay_list_init(&s->clients);
  llhttp_settings_init(&s->settings);
  s->settings.on_message_begin = on_req_message_begin;
  s->settings.on_url = on_req_url;
  s->settings.on_header_field = on_req_field;
  s->settings.on_header_value = on_req_value;
  s->settings.on_headers_complete = on_req_headers_complete;
  s->settings.on_body = on_req_body;
  s->settings.on_message_complete = on_req_message_complete;
}

int relay_server_listen(relay_server_t *s, int fd) {
  int rc = uv_tcp_init(s->loop, &s->listener);
  if (rc) return rc;
  s->listener.data = s;
  s->listening = 1;
  rc = uv_tcp_open(&s->listener, fd);
  if (rc) return rc;
  return uv_listen((uv_stream_t *)&s->listener, RELAY_LISTEN_BACKLOG, on_connection);
}

void relay_server_stop_accepting(relay_server_t *s) {
  if (!s->listening) return;
  s->listening = 0;
  uv_close((uv_handle_t *)&s->listener, NULL);
}

void relay_server_drain(relay_server_t *s) {
  s->draining = 1;
  relay_list_t *l = s->clients.next;
  while (l != &s->clients) {
    relay_client_t *c = relay_container_of(l, relay_client_t, link);
    l = l->next;
    if (c->phase == RELAY_CLIENT_IDLE) client_close_gracefully(c);
    else c->close_after = 1;
  }
}

void relay_server_close_all(relay_server_t *s) {
  relay_list_t *l = s->clients.next;
  while (l != &s->clients) {
    relay_client_t *c = relay_container_of(l, relay_client_t, link);
    l = l->next;
    relay_client_close(c);
  }
}
