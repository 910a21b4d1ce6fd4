/* One exchange: a client request forwarded to an upstream and its response
 * brought back, with hop-by-hop headers handled, bodies streamed under flow
 * control, a response filter where the route asks for one, errors answered in
 * the OpenAI error shape, and one access-log line at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_encode.h"
#include "log.h"
#include "proxy.h"
#include "relay/json_splice.h"
#include "script.h"
#include "chat.h"
#include "lua_api.h"
#include <lauxlib.h>

static void exchange_finish(relay_exchange_t *ex);
static void exchange_connect(relay_exchange_t *ex);
static int flush_batch(relay_exchange_t *ex);

static relay_worker_t *ex_worker(relay_exchange_t *ex) { return ex->client->w; }

static const char *status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

static int client_send_buf(relay_client_t *c, relay_buf_t *b) {
  if (b->len == 0) return 0;
  relay_write_t *wr = relay_write_new(&c->w->slabs, NULL, NULL);
  if (!wr) return UV_ENOMEM;
  size_t len;
  char *data = relay_buf_steal(b, &len);
  relay_write_add_heap(wr, data, len);
  return relay_client_write(c, wr);
}

/* The OpenAI error shape, so SDKs show the message instead of a parse error. */
void relay_send_error(relay_client_t *c, int status, const char *type, const char *code,
                      const char *message) {
  relay_buf_t body, out;
  relay_buf_init(&body);
  relay_buf_init(&out);
  relay_buf_append_str(&body, "{\"error\":{\"message\":\"");
  relay_json_escape(&body, message, strlen(message));
  relay_buf_printf(&body, "\",\"type\":\"%s\",\"code\":\"%s\"}}\n", type, code);
  relay_buf_printf(&out,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n",
                   status, status_reason(status), body.len);
  relay_exchange_t *ex = &c->ex;
  int is_head = ex->state != RELAY_EX_IDLE && ex->method == HTTP_HEAD;
  if (!is_head) relay_buf_append(&out, body.data, body.len);
  ex->status = status;
  ex->bytes_out = is_head ? 0 : body.len;
  relay_buf_close(&body);
  c->close_after = 1;
  client_send_buf(c, &out);
  relay_buf_close(&out);
  if (ex->state == RELAY_EX_IDLE) {
    /* No exchange yet (bad request line, header timeout): still log it. */
    ex->t_start = uv_hrtime();
    ex->client = c;
    snprintf(ex->log_path, sizeof ex->log_path, "-");
    ex->state = RELAY_EX_STREAMING;
  }
  ex->resp_head_sent = 1;
  ex->resp_complete = 1;
  exchange_finish(ex);
  relay_client_exchange_done(c);
}

void relay_exchange_fail(relay_exchange_t *ex, int status, const char *type, const char *code,
                         const char *message) {
  if (ex->up) {
    relay_upstream_close(ex->up);
    ex->up = NULL;
  }
  if (ex->resp_head_sent) {
    relay_log_warn("%s %s: %s after the response started; cutting it", llhttp_method_name(ex->method),
                   ex->log_path, message);
    exchange_finish(ex);
    relay_client_abort(ex->client);
    return;
  }
  relay_send_error(ex->client, status, type, code, message);
}

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

/* The request head for the upstream, framed from what llhttp parsed (or the
 * route's new body), never from the client's framing fields. */
static int build_upstream_head(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  const relay_upstream_cfg_t *up = &ex->script->cfg.upstreams[ex->upstream_index];
  relay_target_t target;
  if (ex->route.new_target.len) {
    target.path = ex->route.new_target.data;
    target.path_len = ex->route.new_target.len;
    target.has_query = 0;
    target.query = "";
    target.query_len = 0;
  } else {
    relay_target_split(relay_head_target(&c->req), c->req.target_len, &target);
  }
  relay_request_spec_t spec;
  spec.method = llhttp_method_name(ex->method);
  spec.target = &target;
  spec.host = up->host_field;
  spec.host_len = strlen(up->host_field);
  spec.peer = c->peer;
  spec.peer_len = strlen(c->peer);
  spec.edits = ex->route.header_edits.data;
  spec.edits_len = ex->route.header_edits.len;
  spec.length = 0;
  if (ex->route.body_replaced) {
    spec.framing = RELAY_FRAME_LENGTH;
    spec.length = ex->route.new_body.len;
  } else if (ex->req_chunked) {
    spec.framing = RELAY_FRAME_CHUNKED;
  } else if (ex->req_has_length) {
    spec.framing = RELAY_FRAME_LENGTH;
    spec.length = ex->req_length;
  } else {
    spec.framing = RELAY_FRAME_NONE;
  }
  spec.flags = (ex->req_upgrade ? RELAY_REQ_UPGRADE : 0) | (ex->expect_answered ? RELAY_REQ_DROP_EXPECT : 0) |
               (ex->route.chat ? RELAY_REQ_IDENTITY : 0);
  relay_buf_reset(&ex->up_head);
  return relay_encode_request_head(&ex->up_head, &c->req, &spec);
}

static void exchange_reset(relay_exchange_t *ex, relay_client_t *c) {
  relay_head_t resp = ex->resp;
  relay_buf_t up_head = ex->up_head, up_pending = ex->up_pending, req_body = ex->req_body,
              filtered = ex->filtered, batch = ex->batch;
  memset(ex, 0, sizeof *ex);
  ex->resp = resp;
  relay_head_reset(&ex->resp);
  ex->up_head = up_head;
  ex->up_pending = up_pending;
  ex->req_body = req_body;
  ex->filtered = filtered;
  ex->batch = batch;
  relay_buf_reset(&ex->batch);
  relay_buf_reset(&ex->up_head);
  relay_buf_reset(&ex->up_pending);
  relay_buf_reset(&ex->req_body);
  relay_buf_reset(&ex->filtered);
  ex->client = c;
  relay_route_init(&ex->route);
}

/* Request head complete: route it, then connect (or wait for the body). */
void relay_exchange_begin(relay_client_t *c) {
  relay_exchange_t *ex = &c->ex;
  exchange_reset(ex, c);
  llhttp_t *p = &c->parser;
  ex->state = RELAY_EX_ROUTING;
  ex->id = ++c->w->next_exchange_id;
  ex->t_start = uv_hrtime();
  ex->method = (llhttp_method_t)p->method;
  ex->http_major = p->http_major;
  ex->http_minor = p->http_minor;
  ex->client_keep_alive = llhttp_should_keep_alive(p);
  ex->req_upgrade = p->upgrade;
  ex->req_chunked = (p->flags & F_CHUNKED) != 0;
  /* llhttp counts content_length down as the body goes by: keep the total. */
  ex->req_has_length = !ex->req_chunked && (p->flags & F_CONTENT_LENGTH);
  ex->req_length = ex->req_has_length ? p->content_length : 0;
  ex->req_has_body = ex->req_chunked || ex->req_length > 0;
  snprintf(ex->log_path, sizeof ex->log_path, "%.*s", (int)c->req.target_len, relay_head_target(&c->req));
  if (!ex->client_keep_alive) c->close_after = 1;
  ex->script = c->w->script;
  relay_script_ref(ex->script);
  relay_conn_tokens_t ct;
  if (relay_conn_tokens_collect(&ct, &c->req)) {
    relay_send_error(c, 400, "invalid_request_error", "bad_request",
                     "too many options in the Connection header");
    return;
  }
  /* RFC 9112 6.1: chunked not last is a 400; another coding before it, 501. */
  if (relay_head_find(&c->req, "transfer-encoding", 0) >= 0 && !ex->req_chunked) {
    relay_send_error(c, 400, "invalid_request_error", "bad_request",
                     "the chunked transfer coding must be the last one");
    return;
  }
  if (!relay_head_te_is_chunked_only(&c->req)) {
    relay_send_error(c, 501, "invalid_request_error", "unsupported_transfer_coding",
                     "only the chunked transfer coding is supported");
    return;
  }
  char err[256] = "";
  int rc = relay_route_head(c->w, ex, err, sizeof err);
  if (rc < 0) {
    relay_log_error("%s %s: script error: %s", llhttp_method_name(ex->method), ex->log_path, err);
    relay_send_error(c, 500, "server_error", "script_error", "the relay's script failed");
    return;
  }
  if (ex->route.local_status) return; /* answered by relay_route_head */
  /* A body the script replaced without reading: the new one goes up whole,
   * with its own length; the client's is still read, and dropped. */
  if (ex->route.body_replaced) ex->req_chunked = 0;
  if (rc == 1) {
    ex->buffer_request = 1;
    /* The script reads the body before any upstream is asked, so the relay
     * itself tells an Expect: 100-continue client to go on. */
    int e = relay_head_find(&c->req, "expect", 0);
    if (e >= 0 && ex->http_minor >= 1 &&
        relay_head_value_has_token(relay_head_value(&c->req, (size_t)e), c->req.hdrs[e].value_len, "100-continue")) {
      relay_write_t *wr = relay_write_new(&c->w->slabs, NULL, NULL);
      if (wr) {
        relay_write_add_static(wr, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        relay_client_write(c, wr);
      }
      ex->expect_answered = 1;
    }
    if (!ex->req_has_body) relay_exchange_on_request_complete(ex);
    return;
  }
  exchange_connect(ex);
}

static void exchange_connect(relay_exchange_t *ex) {
  ex->state = RELAY_EX_CONNECTING;
  if (build_upstream_head(ex)) {
    relay_exchange_fail(ex, 500, "server_error", "out_of_memory", "could not build the upstream request");
    return;
  }
  int rc = relay_upstream_acquire(ex_worker(ex), ex, ex->upstream_index);
  if (rc < 0) {
    relay_exchange_fail(ex, 502, "upstream_error", "upstream_unreachable", uv_strerror(rc));
    return;
  }
  if (rc == 1) relay_exchange_on_connected(ex, ex->up);
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
  relay_write_t *wr = body_write(&ex_worker(ex)->slabs, slab, data, len, ex->req_chunked);
  if (!wr) return UV_ENOMEM;
  ex->retryable = 0;
  int rc = relay_upstream_write(u, wr);
  if (u->write_pending >= RELAY_HIGH_WATER) relay_client_read_pause(ex->client);
  return rc;
}

static int slab_holds(relay_slab_t *s, const char *p) {
  return s && p >= s->data && p < s->data + RELAY_SLAB_SIZE;
}

int relay_exchange_on_request_body(relay_exchange_t *ex, const char *data, size_t len) {
  relay_client_t *c = ex->client;
  ex->bytes_in += len;
  if (ex->state == RELAY_EX_DONE) return 0; /* answered early; the rest is discarded */
  if (ex->route.body_replaced && !ex->buffer_request) return 0; /* the script replaced it */
  if (ex->buffer_request) {
    if (ex->req_body.len + len > ex_worker(ex)->cfg->max_body_buffer) {
      relay_send_error(c, 413, "invalid_request_error", "request_too_large",
                       "request body larger than the relay's body buffer limit");
      return -1;
    }
    return relay_buf_append(&ex->req_body, data, len) ? -1 : 0;
  }
  if (ex->state == RELAY_EX_STREAMING && ex->up) {
    return send_body_up(ex, slab_holds(c->cur_slab, data) ? c->cur_slab : NULL, data, len) ? -1 : 0;
  }
  if (relay_buf_append(&ex->up_pending, data, len)) return -1;
  if (ex->up_pending.len >= RELAY_HIGH_WATER) relay_client_read_pause(c);
  return 0;
}

void relay_exchange_on_request_complete(relay_exchange_t *ex) {
  ex->req_complete = 1;
  if (ex->state == RELAY_EX_DONE) return;
  if (ex->buffer_request && ex->state == RELAY_EX_ROUTING) {
    relay_client_t *c = ex->client;
    char err[256] = "";
    if (relay_route_with_body(c->w, ex, err, sizeof err) < 0) {
      relay_log_error("%s %s: script error: %s", llhttp_method_name(ex->method), ex->log_path, err);
      relay_send_error(c, 500, "server_error", "script_error", "the relay's script failed");
      return;
    }
    if (ex->route.local_status) return;
    if (!ex->route.body_replaced && (ex->req_has_body || ex->req_has_length)) {
      /* Forward the body as received, now with a known length. */
      relay_buf_t tmp = ex->route.new_body;
      ex->route.new_body = ex->req_body;
      ex->req_body = tmp;
      ex->route.body_replaced = 1;
    }
    ex->req_chunked = 0;
    exchange_connect(ex);
    return;
  }
  if (ex->state == RELAY_EX_STREAMING && ex->up && ex->req_chunked) {
    relay_write_t *wr = relay_write_new(&ex_worker(ex)->slabs, NULL, NULL);
    if (wr) {
      relay_write_add_static(wr, "0\r\n\r\n", 5);
      relay_upstream_write(ex->up, wr);
    }
  }
}

/* The upstream connection is ready: send the head and whatever body waited. */
void relay_exchange_on_connected(relay_exchange_t *ex, relay_upconn_t *u) {
  ex->up = u;
  ex->state = RELAY_EX_STREAMING;
  ex->retryable = u->reused && !ex->req_has_body && method_idempotent(ex->method);
  relay_write_t *wr = relay_write_new(&ex_worker(ex)->slabs, NULL, NULL);
  char *head = malloc(ex->up_head.len);
  if (!wr || !head) {
    free(wr);
    free(head);
    relay_exchange_fail(ex, 502, "upstream_error", "upstream_unreachable", "out of memory");
    return;
  }
  memcpy(head, ex->up_head.data, ex->up_head.len);
  relay_write_add_heap(wr, head, ex->up_head.len);
  relay_upstream_write(u, wr);
  if (ex->route.body_replaced) {
    if (ex->route.new_body.len) send_body_up(ex, NULL, ex->route.new_body.data, ex->route.new_body.len);
    return;
  }
  if (ex->up_pending.len) {
    send_body_up(ex, NULL, ex->up_pending.data, ex->up_pending.len);
    relay_buf_reset(&ex->up_pending);
    relay_client_read_resume(ex->client);
  }
  if (ex->req_complete && ex->req_chunked) {
    wr = relay_write_new(&ex_worker(ex)->slabs, NULL, NULL);
    if (wr) {
      relay_write_add_static(wr, "0\r\n\r\n", 5);
      relay_upstream_write(u, wr);
    }
  }
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

void relay_exchange_on_upstream_error(relay_exchange_t *ex, int err, int timed_out) {
  ex->up = NULL;
  if (ex->state == RELAY_EX_DONE || ex->state == RELAY_EX_IDLE) return;
  if (ex->state == RELAY_EX_TUNNEL) {
    exchange_finish(ex);
    relay_client_abort(ex->client);
    return;
  }
  /* A pooled connection the upstream closed meanwhile: one more try on a
   * fresh connection, when nothing of the request body has gone out. */
  if (ex->retryable && !timed_out && ex->retries == 0 && ex->status == 0) {
    ex->retries++;
    relay_log_debug("%s: reused upstream connection failed (%s); retrying", ex->log_path, uv_strerror(err));
    exchange_connect(ex);
    return;
  }
  if (ex->resp_head_sent) {
    relay_log_warn("%s %s: upstream failed mid-response (%s); cutting the response",
                   llhttp_method_name(ex->method), ex->log_path, uv_strerror(err));
    if (ex->filter) ex->filter->vt->on_end(ex->filter, 0);
    ex->batching = 0;
    flush_batch(ex); /* everything relayed so far arrives; then the visible cut */
    exchange_finish(ex);
    relay_client_abort(ex->client);
    return;
  }
  char msg[256];
  if (timed_out) {
    snprintf(msg, sizeof msg, "upstream timed out");
    relay_send_error(ex->client, 504, "upstream_error", "upstream_timeout", msg);
    return;
  }
  const char *code = error_code_for(err);
  if (strcmp(code, "upstream_bad_response") == 0)
    snprintf(msg, sizeof msg, "upstream sent no valid response (%s)", uv_strerror(err));
  else
    snprintf(msg, sizeof msg, "upstream unreachable (%s)", uv_strerror(err));
  relay_send_error(ex->client, 502, "upstream_error", code, msg);
}

/* How the client connection continues after this response. */
static relay_conn_t client_connection(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  if (c->close_after || c->w->shutting_down) return RELAY_CONN_CLOSE;
  if (ex->http_major == 1 && ex->http_minor == 0) return RELAY_CONN_KEEP_ALIVE;
  return RELAY_CONN_NONE;
}

/* The upstream's head to the client with the relay's framing: hop-by-hop
 * fields dropped, Content-Length and Transfer-Encoding written from what
 * the relay sends. Returns 0 or a negative error (nothing was sent). */
static int send_client_head(relay_exchange_t *ex, int status, relay_frame_t framing, uint64_t length,
                            relay_conn_t conn, const char *body, size_t body_len) {
  relay_response_spec_t spec;
  spec.status = status;
  spec.framing = framing;
  spec.length = length;
  spec.connection = conn;
  relay_buf_t b;
  relay_buf_init(&b);
  int rc = relay_encode_response_head(&b, &ex->resp, &spec);
  if (rc == 0 && body_len && relay_buf_append(&b, body, body_len)) rc = RELAY_ENCODE_ENOMEM;
  if (rc == 0) client_send_buf(ex->client, &b);
  relay_buf_close(&b);
  return rc;
}

int relay_exchange_on_response_head(relay_exchange_t *ex, llhttp_t *p) {
  relay_client_t *c = ex->client;
  int status = p->status_code;
  ex->retryable = 0;
  if (status < 100 || status > 599) {
    relay_log_info("%s %s: upstream sent status %d", llhttp_method_name(ex->method), ex->log_path, status);
    return -1; /* 502 upstream_bad_response */
  }
  if (status < 200 && status != 101) {
    /* Interim responses (100 Continue, 103 Early Hints) go to 1.1 clients as
     * they come, under the same flow control as a body, and only so many. */
    if (++ex->interim > RELAY_MAX_INTERIM) {
      relay_log_info("%s %s: upstream sent more than %d interim responses", llhttp_method_name(ex->method),
                     ex->log_path, RELAY_MAX_INTERIM);
      return -1;
    }
    if (ex->http_major == 1 && ex->http_minor >= 1 &&
        send_client_head(ex, status, RELAY_FRAME_NONE, 0, RELAY_CONN_NONE, NULL, 0))
      return -1;
    if (c->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upstream_read_pause(ex->up);
    return 1;
  }
  relay_conn_tokens_t ct;
  if (relay_conn_tokens_collect(&ct, &ex->resp)) {
    relay_log_info("%s %s: upstream listed too many Connection options", llhttp_method_name(ex->method),
                   ex->log_path);
    return -1;
  }
  if (!relay_head_te_is_chunked_only(&ex->resp)) {
    relay_log_info("%s %s: upstream used a transfer coding other than chunked", llhttp_method_name(ex->method),
                   ex->log_path);
    return -1;
  }
  ex->status = status;
  ex->t_first_byte = uv_hrtime();
  if (status == 101) {
    if (!ex->req_upgrade) return -1;
    if (send_client_head(ex, status, RELAY_FRAME_NONE, 0, RELAY_CONN_UPGRADE, NULL, 0)) return -1;
    ex->resp_head_sent = 1;
    ex->state = RELAY_EX_TUNNEL;
    uv_timer_stop(&ex->up->timer);
    return 0;
  }
  if (ex->req_upgrade) c->close_after = 1; /* the upgrade was refused; its bytes can't be parsed */
  ex->resp_no_body = ex->method == HTTP_HEAD || status == 204 || status == 304;
  int has_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
  if (!ex->resp_no_body && ex->route.chat) relay_chat_attach(ex);
  int buffered = ex->filter && ex->filter->buffers_body;
  relay_frame_t framing = relay_response_framing(status, ex->resp_no_body, has_length, ex->filter != NULL,
                                                 ex->http_major == 1 && ex->http_minor >= 1);
  if (!buffered) {
    if (framing == RELAY_FRAME_CHUNKED) ex->resp_out_chunked = 1;
    if (framing == RELAY_FRAME_CLOSE) {
      ex->resp_out_close = 1;
      c->close_after = 1;
    }
    if (send_client_head(ex, status, framing, p->content_length, client_connection(ex), NULL, 0)) return -1;
    ex->resp_head_sent = 1;
  }
  /* llhttp would read a body announced by Content-Length on a HEAD/204/304. */
  return ex->resp_no_body ? 1 : 0;
}

/* Body bytes to the client, chunk-framed where we chose chunked. */
#define RELAY_BATCH_PIECE_MAX (16 * 1024) /* larger pieces go out from the slab, uncopied */

/* Send what the current read collected, as one chunk. */
static int flush_batch(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  if (ex->batch.len == 0) return 0;
  size_t len = ex->batch.len;
  relay_write_t *wr = relay_write_new(&c->w->slabs, NULL, NULL);
  if (!wr) return UV_ENOMEM;
  if (ex->resp_out_chunked) relay_write_add_chunk_size(wr, len);
  if (len <= RELAY_WRITE_INLINE / 2) {
    relay_write_add_copy(wr, ex->batch.data, len);
    relay_buf_reset(&ex->batch);
  } else {
    char *data = relay_buf_steal(&ex->batch, NULL);
    relay_write_add_heap(wr, data, len);
  }
  if (ex->resp_out_chunked) relay_write_add_static(wr, "\r\n", 2);
  int rc = relay_client_write(c, wr);
  if (c->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upstream_read_pause(ex->up);
  return rc;
}

void relay_exchange_batch_begin(relay_exchange_t *ex) { ex->batching = 1; }

void relay_exchange_batch_end(relay_exchange_t *ex) {
  ex->batching = 0;
  flush_batch(ex);
}

static int send_body_down(relay_exchange_t *ex, relay_slab_t *slab, const char *data, size_t len) {
  relay_client_t *c = ex->client;
  if (len == 0) return 0;
  if (ex->batching && len <= RELAY_BATCH_PIECE_MAX) {
    ex->bytes_out += len;
    return relay_buf_append(&ex->batch, data, len) ? UV_ENOMEM : 0;
  }
  flush_batch(ex);
  relay_write_t *wr = body_write(&c->w->slabs, slab, data, len, ex->resp_out_chunked);
  if (!wr) return UV_ENOMEM;
  ex->bytes_out += len;
  int rc = relay_client_write(c, wr);
  if (c->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upstream_read_pause(ex->up);
  return rc;
}

int relay_exchange_emit(relay_exchange_t *ex, const char *data, size_t len) {
  if (ex->filter && ex->filter->buffers_body)
    return relay_buf_append(&ex->filtered, data, len);
  return send_body_down(ex, NULL, data, len);
}

int relay_exchange_on_response_body(relay_exchange_t *ex, relay_slab_t *s, const char *data,
                                    size_t len) {
  if (ex->filter) return ex->filter->vt->on_data(ex->filter, data, len);
  return send_body_down(ex, slab_holds(s, data) ? s : NULL, data, len);
}

/* A buffering filter has the whole body: now the head with its length. */
static void flush_buffered_response(relay_exchange_t *ex) {
  send_client_head(ex, ex->status, RELAY_FRAME_LENGTH, ex->filtered.len, client_connection(ex), ex->filtered.data,
                   ex->filtered.len);
  ex->bytes_out += ex->filtered.len;
  relay_buf_reset(&ex->filtered);
  ex->resp_head_sent = 1;
}

int relay_exchange_on_response_complete(relay_exchange_t *ex, llhttp_t *p) {
  int status = p->status_code;
  if (status >= 100 && status < 200 && status != 101) return 0;
  if (status == 101) return HPE_PAUSED;
  if (ex->filter) {
    ex->filter->vt->on_end(ex->filter, 1);
    flush_batch(ex);
    if (ex->filter->buffers_body && ex->filter->failed) {
      ex->resp_complete = 1;
      ex->resp_failed = 1;
      return HPE_PAUSED;
    }
    if (ex->filter->buffers_body) flush_buffered_response(ex);
  }
  flush_batch(ex);
  if (ex->resp_out_chunked) {
    relay_write_t *wr = relay_write_new(&ex_worker(ex)->slabs, NULL, NULL);
    if (wr) {
      relay_write_add_static(wr, "0\r\n\r\n", 5);
      relay_client_write(ex->client, wr);
    }
  }
  ex->resp_complete = 1;
  return HPE_PAUSED;
}

void relay_exchange_on_response_done(relay_exchange_t *ex, int upstream_reusable) {
  relay_client_t *c = ex->client;
  if (ex->up) {
    /* A request body still on its way makes the connection unusable. */
    relay_upstream_release(ex->up, upstream_reusable && ex->req_complete);
    ex->up = NULL;
  }
  if (ex->resp_failed) {
    relay_send_error(c, 500, "server_error", "script_error", "the relay's script failed on the response");
    return;
  }
  if (!ex->req_complete) c->close_after = 1;
  exchange_finish(ex);
  if (ex->resp_out_close) relay_client_abort(c);
  else if (!c->closing) relay_client_exchange_done(c);
}

void relay_exchange_on_client_gone(relay_exchange_t *ex) {
  if (ex->up) {
    /* Close at once: the model must stop generating for nobody. */
    relay_upstream_close(ex->up);
    ex->up = NULL;
  }
  if (ex->state != RELAY_EX_DONE && ex->state != RELAY_EX_IDLE) {
    ex->status = ex->status ? ex->status : 499;
    exchange_finish(ex);
  }
}

void relay_exchange_on_client_drained(relay_exchange_t *ex) {
  if (ex->up && ex->state != RELAY_EX_DONE) relay_upstream_read_resume(ex->up);
}

void relay_exchange_on_upstream_drained(relay_exchange_t *ex) {
  if (ex->state == RELAY_EX_STREAMING || ex->state == RELAY_EX_TUNNEL)
    relay_client_read_resume(ex->client);
}

void relay_exchange_on_tunnel_data(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len) {
  if (!ex->up) return;
  relay_write_t *wr = relay_write_new(&ex_worker(ex)->slabs, NULL, NULL);
  if (!wr) return;
  if (slab_holds(s, data)) relay_write_add_slab(wr, s, data, len);
  else if (relay_write_add_copy(wr, data, len)) {
    relay_write_free(wr);
    return;
  }
  ex->bytes_in += len;
  relay_upstream_write(ex->up, wr);
  if (ex->up && ex->up->write_pending >= RELAY_HIGH_WATER) relay_client_read_pause(ex->client);
}

void relay_exchange_on_tunnel_upstream_data(relay_exchange_t *ex, relay_slab_t *s, const char *data,
                                            size_t len) {
  send_body_down(ex, slab_holds(s, data) ? s : NULL, data, len);
}

void relay_exchange_on_upstream_eof_tunnel(relay_exchange_t *ex) {
  ex->up = NULL;
  exchange_finish(ex);
  relay_client_abort(ex->client);
}

/* One access-log line per exchange; then the exchange's resources go. */
static void exchange_finish(relay_exchange_t *ex) {
  if (ex->state == RELAY_EX_DONE || ex->state == RELAY_EX_IDLE) return;
  relay_client_t *c = ex->client;
  relay_worker_t *w = c->w;
  if (ex->up) {
    /* Still attached (an error while connecting or sending): never reused. */
    relay_upstream_close(ex->up);
    ex->up = NULL;
  }
  if (relay_log_enabled(RELAY_LOG_INFO)) {
    uint64_t now = uv_hrtime();
    char ttfb[32] = "-";
    if (ex->t_first_byte) snprintf(ttfb, sizeof ttfb, "%.3f", (double)(ex->t_first_byte - ex->t_start) / 1e6);
    char upstream[RELAY_HOST_MAX + 16] = "-";
    if (ex->t_first_byte || ex->up || ex->state == RELAY_EX_STREAMING || ex->state == RELAY_EX_TUNNEL) {
      const relay_config_t *cfg = ex->script ? &ex->script->cfg : w->cfg;
      if (!ex->route.local_status && ex->upstream_index < (int)cfg->nupstreams) {
        const relay_upstream_cfg_t *up = &cfg->upstreams[ex->upstream_index];
        snprintf(upstream, sizeof upstream, strchr(up->host, ':') ? "[%s]:%d" : "%s:%d", up->host, up->port);
      }
    }
    relay_log_info("access method=%s path=%s status=%d bytes_in=%llu bytes_out=%llu "
                   "duration_ms=%.3f ttfb_ms=%s upstream=%s client=%s",
                   ex->log_path[0] == '-' && !ex->log_path[1] ? "-" : llhttp_method_name(ex->method),
                   ex->log_path, ex->status, (unsigned long long)ex->bytes_in,
                   (unsigned long long)ex->bytes_out, (double)(now - ex->t_start) / 1e6, ttfb, upstream, c->peer);
  }
  if (ex->route.chat && ex->route.chat->on_end_ref != LUA_NOREF && ex->script)
    relay_lua_hook_end(ex, ex->route.chat->on_end_ref);
  if (ex->filter) {
    ex->filter->vt->destroy(ex->filter);
    ex->filter = NULL;
  }
  relay_route_release(ex->script ? ex->script : w->script, &ex->route);
  if (ex->script) relay_script_unref(ex->script);
  ex->script = NULL;
  ex->state = RELAY_EX_DONE;
}

/* The script answered the request itself. The connection stays usable: the
 * client parser finishes reading this request and resumes as usual. */
void relay_exchange_respond_local(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  relay_route_t *r = &ex->route;
  relay_buf_t b;
  relay_buf_init(&b);
  relay_buf_printf(&b, "HTTP/1.1 %d %s\r\n", r->local_status, status_reason(r->local_status));
  relay_buf_append(&b, r->local_head.data, r->local_head.len);
  /* 204 and 304 have no content and no length (RFC 9110 sections 8.6, 15.3.5);
   * the script's reader refused a body for them. */
  if (r->local_status != 204 && r->local_status != 304)
    relay_buf_printf(&b, "Content-Length: %zu\r\n", r->local_body.len);
  ex->status = r->local_status;
  ex->resp_head_sent = 1;
  ex->resp_complete = 1;
  relay_conn_t conn = client_connection(ex);
  if (conn == RELAY_CONN_CLOSE) relay_buf_append_str(&b, "Connection: close\r\n");
  else if (conn == RELAY_CONN_KEEP_ALIVE) relay_buf_append_str(&b, "Connection: keep-alive\r\n");
  relay_buf_append_str(&b, "\r\n");
  if (ex->method != HTTP_HEAD) {
    relay_buf_append(&b, r->local_body.data, r->local_body.len);
    ex->bytes_out = r->local_body.len;
  }
  client_send_buf(c, &b);
  relay_buf_close(&b);
  exchange_finish(ex);
}

/* A buffering filter gave up (body over the limit): send the head now and
 * stream the rest chunked (or close-delimited to an HTTP/1.0 client). */
void relay_exchange_unbuffer(relay_exchange_t *ex) {
  relay_client_t *c = ex->client;
  if (!ex->filter || !ex->filter->buffers_body) return;
  ex->filter->buffers_body = 0;
  if (ex->http_major == 1 && ex->http_minor >= 1) {
    ex->resp_out_chunked = 1;
  } else {
    ex->resp_out_close = 1;
    c->close_after = 1;
  }
  send_client_head(ex, ex->status, ex->resp_out_chunked ? RELAY_FRAME_CHUNKED : RELAY_FRAME_CLOSE, 0,
                   client_connection(ex), NULL, 0);
  ex->resp_head_sent = 1;
}
