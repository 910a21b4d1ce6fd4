/* The response side of an exchange: the head (the one place that decides its
 * framing and sends it), the body through the route's filter chain, batching
 * per upstream read, flow control towards the upstream, and the responses
 * the relay makes itself (errors in the OpenAI shape, a script's answer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "relay/json_splice.h"

/* One SSE event held whole for a filter: at most this, and at most
 * max_body_buffer. A longer event ends that filter's part in the response. */
#define RELAY_MAX_EVENT (8 * 1024 * 1024)
/* Body pieces up to this size are batched (copied); larger ones go out from
 * the read slab, uncopied. */
#define RELAY_BATCH_PIECE_MAX (16 * 1024)
/* Room a batch's write needs besides its bytes: a chunk-size line and the
 * chunk's end with the last chunk. */
#define RELAY_FLUSH_FRAMING 32

static const char *status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 304: return "Not Modified";
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
    default: return status < 400 ? "OK" : "Error";
  }
}

static int client_11(const relay_exchange_t *ex) { return ex->http_major == 1 && ex->http_minor >= 1; }

/* How the client connection continues after this response. */
static relay_conn_t client_connection(const relay_exchange_t *ex) {
  const relay_client_t *c = ex->client;
  if (c->close_after || c->server->draining) return RELAY_CONN_CLOSE;
  if (ex->http_major == 1 && ex->http_minor == 0) return RELAY_CONN_KEEP_ALIVE;
  return RELAY_CONN_NONE;
}

static int client_send_buf(relay_exchange_t *ex, relay_buf_t *b) {
  if (b->len == 0) return 0;
  relay_write_t *wr = relay_write_new(&ex->proxy->slabs, NULL, NULL);
  if (!wr) return UV_ENOMEM;
  size_t len;
  char *data = relay_buf_steal(b, &len);
  relay_write_add_heap(wr, data, len);
  return relay_client_write(ex->client, wr);
}

static int flush_batch(relay_exchange_t *ex, relay_slab_t *slab, const char *piece, size_t piece_len);

/* A head as bytes on b: fields (an upstream's, or ones the relay made) less
 * hop-by-hop and framing ones, the framing given, the connection's fate, and
 * any body that goes with it. On an error b is as it was. */
static int encode_head(relay_buf_t *b, int status, const relay_head_t *fields, relay_frame_t framing,
                       uint64_t length, relay_conn_t conn, const char *body, size_t body_len) {
  relay_response_spec_t spec;
  spec.status = status;
  spec.framing = framing;
  spec.length = length;
  spec.connection = conn;
  size_t was = b->len;
  int rc = relay_encode_response_head(b, fields, &spec);
  if (rc == 0 && body_len && relay_buf_append(b, body, body_len)) rc = RELAY_ENOMEM;
  if (rc) b->len = was;
  return rc;
}

/* The one place a head of the upstream's response goes to the client. While
 * an upstream read is parsed it joins the read's batch, ahead of the body
 * bytes the same read brings: head and first body bytes leave in one write.
 * Returns 0 or a negative error (nothing was sent). */
static int send_head(relay_exchange_t *ex, int status, const relay_head_t *fields, relay_frame_t framing,
                     uint64_t length, relay_conn_t conn, const char *body, size_t body_len) {
  if (ex->batching) {
    /* Heads come before body bytes; should body bytes wait, they go first. */
    if (ex->batch.len > ex->batch_framed) flush_batch(ex, NULL, NULL, 0);
    int rc = encode_head(&ex->batch, status, fields, framing, length, conn, body, body_len);
    if (rc == 0) ex->batch_framed = ex->batch.len;
    return rc;
  }
  relay_buf_t b;
  relay_buf_init(&b);
  int rc = encode_head(&b, status, fields, framing, length, conn, body, body_len);
  if (rc == 0) client_send_buf(ex, &b);
  relay_buf_dispose(&b);
  return rc;
}

/* A response of the relay's own ends the exchange at once (the connection may
 * close right after): it goes now, behind whatever the read batched. */
static int send_head_now(relay_exchange_t *ex, int status, const relay_head_t *fields, relay_frame_t framing,
                         uint64_t length, relay_conn_t conn, const char *body, size_t body_len) {
  flush_batch(ex, NULL, NULL, 0);
  int batching = ex->batching;
  ex->batching = 0;
  int rc = send_head(ex, status, fields, framing, length, conn, body, body_len);
  ex->batching = batching;
  return rc;
}

/* ---- responses of the relay's own -------------------------------------- */

/* Fields of a response the relay makes: the reason phrase and a JSON type. */
static void own_head(relay_head_t *h, int status) {
  relay_head_init(h, RELAY_RESP_HEAD_MAX);
  const char *reason = status_reason(status);
  relay_head_on_target(h, reason, strlen(reason));
  relay_head_add(h, "Content-Type", "application/json", 16);
}

/* The OpenAI error shape, so SDKs show the message instead of a parse error. */
void relay_exchange__send_error(relay_exchange_t *ex, int status, const char *type, const char *code,
                                const char *message) {
  relay_client_t *c = ex->client;
  if (ex->state == RELAY_EX_IDLE || ex->state == RELAY_EX_DONE) relay_exchange__begin_bare(ex);
  relay_buf_t body;
  relay_buf_init(&body);
  relay_buf_append_str(&body, "{\"error\":{\"message\":\"");
  relay_json_escape(&body, message, strlen(message));
  relay_buf_append_str(&body, "\",\"type\":\"");
  relay_buf_append_str(&body, type);
  relay_buf_append_str(&body, "\",\"code\":\"");
  relay_buf_append_str(&body, code);
  relay_buf_append_str(&body, "\"}}\n");
  relay_head_t h;
  own_head(&h, status);
  int is_head = ex->method == HTTP_HEAD && strcmp(ex->log_path, "-") != 0;
  c->close_after = 1;
  send_head_now(ex, status, &h, RELAY_FRAME_LENGTH, body.len, RELAY_CONN_CLOSE, body.data, is_head ? 0 : body.len);
  relay_head_dispose(&h);
  ex->status = status;
  ex->bytes_out = is_head ? 0 : body.len;
  relay_buf_dispose(&body);
  ex->resp_state = RELAY_RESP_DONE;
  relay_exchange__finish(ex);
  relay_client_exchange_done(c);
}

void relay_exchange__fail(relay_exchange_t *ex, int status, const char *type, const char *code, const char *message) {
  if (ex->up) {
    relay_upconn_close(ex->up);
    ex->up = NULL;
  }
  if (relay_exchange_head_sent(ex)) {
    relay_log_warn("%s %s: %s after the response started; cutting it", llhttp_method_name(ex->method), ex->log_path,
                   message);
    flush_batch(ex, NULL, NULL, 0); /* what was relayed arrives before the cut */
    relay_exchange__finish(ex);
    relay_client_abort(ex->client);
    return;
  }
  relay_exchange__send_error(ex, status, type, code, message);
}

/* The site answered the request itself. The connection stays usable: the
 * server reads the rest of the request and goes on. 204, 205 and 304 carry
 * no content; 204 and 304 no length either (RFC 9110 8.6, 15.3.5). */
void relay_exchange__respond_local(relay_exchange_t *ex) {
  relay_route_t *r = &ex->route;
  int status = r->local_status;
  const char *reason = status_reason(status);
  relay_head_t *h = &r->local_head;
  relay_head_on_target(h, reason, strlen(reason));
  relay_frame_t framing = status == 204 || status == 304 ? RELAY_FRAME_NONE : RELAY_FRAME_LENGTH;
  int with_body = ex->method != HTTP_HEAD && framing == RELAY_FRAME_LENGTH;
  ex->status = status;
  send_head_now(ex, status, h, framing, r->local_body.len, client_connection(ex), r->local_body.data,
                with_body ? r->local_body.len : 0);
  ex->bytes_out = with_body ? r->local_body.len : 0;
  ex->resp_state = RELAY_RESP_DONE;
  relay_exchange__finish(ex);
  relay_client_exchange_done(ex->client);
}

/* ---- the body to the client --------------------------------------------- */

/* Everything the current read produced, in one write: heads (and bodies sent
 * with them) first, then the body bytes batched as one chunk with piece (a
 * large one, left in its read slab) at its end, then the last chunk if the
 * response ended. One write per read, whatever the read held. */
static int flush_batch(relay_exchange_t *ex, relay_slab_t *slab, const char *piece, size_t piece_len) {
  relay_client_t *c = ex->client;
  size_t framed = ex->batch_framed, batched = ex->batch.len - framed, body = batched + piece_len;
  int last = ex->batch_last;
  if (ex->batch.len == 0 && piece_len == 0 && !last) return 0;
  relay_write_t *wr = relay_write_new(&ex->proxy->slabs, NULL, NULL);
  if (!wr) return UV_ENOMEM;
  ex->batch_framed = 0;
  ex->batch_last = 0;
  int chunked = ex->resp_framing == RELAY_FRAME_CHUNKED;
  if (ex->batch.len + RELAY_FLUSH_FRAMING <= RELAY_WRITE_INLINE - 24) {
    /* Copied in wire order into the write's inline area, where the pieces
     * join into one buffer: one plain write instead of a writev. */
    relay_write_add_copy(wr, ex->batch.data, framed);
    if (body && chunked) relay_write_add_chunk_size(wr, body);
    relay_write_add_copy(wr, ex->batch.data + framed, batched);
    relay_buf_reset(&ex->batch);
  } else {
    const char *p = relay_write_take(wr, &ex->batch);
    relay_write_add_static(wr, p, framed);
    if (body && chunked) relay_write_add_chunk_size(wr, body);
    relay_write_add_static(wr, p + framed, batched);
  }
  if (slab) relay_write_add_slab(wr, slab, piece, piece_len);
  if (body && chunked) relay_write_add_copy(wr, last ? "\r\n0\r\n\r\n" : "\r\n", last ? 7 : 2);
  else if (last) relay_write_add_copy(wr, "0\r\n\r\n", 5);
  int rc = relay_client_write(c, wr);
  if (c->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upconn_read_pause(ex->up);
  return rc;
}

void relay_exchange__batch_begin(relay_exchange_t *ex) { ex->batching = 1; }

void relay_exchange__batch_end(relay_exchange_t *ex) {
  ex->batching = 0;
  flush_batch(ex, NULL, NULL, 0);
}

/* Body bytes to the client, chunk-framed where the relay chose chunked. While
 * an upstream read is parsed, small pieces join its batch (copied) and a
 * large one that lies in the read slab ends the batch's write uncopied.
 * Otherwise they go at once: from the read slab when they lie in one, else
 * copied into a block of their own size (a large filter output is never
 * copied into a buffer that grows by doubling). */
int relay_exchange__send_down(relay_exchange_t *ex, relay_slab_t *slab, const char *data, size_t len) {
  relay_client_t *c = ex->client;
  if (len == 0) return 0;
  if (ex->batching && len <= RELAY_BATCH_PIECE_MAX) {
    ex->bytes_out += len;
    return relay_buf_append(&ex->batch, data, len) ? UV_ENOMEM : 0;
  }
  if (ex->batching && slab) {
    ex->bytes_out += len;
    return flush_batch(ex, slab, data, len);
  }
  flush_batch(ex, NULL, NULL, 0);
  relay_write_t *wr = relay_write_new(&ex->proxy->slabs, NULL, NULL);
  if (!wr) return UV_ENOMEM;
  int chunked = ex->resp_framing == RELAY_FRAME_CHUNKED;
  if (chunked) relay_write_add_chunk_size(wr, len);
  if (slab) {
    relay_write_add_slab(wr, slab, data, len);
  } else if (relay_write_add_copy(wr, data, len)) {
    relay_write_free(wr);
    return UV_ENOMEM;
  }
  if (chunked) relay_write_add_static(wr, "\r\n", 2);
  ex->bytes_out += len;
  int rc = relay_client_write(c, wr);
  if (c->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upconn_read_pause(ex->up);
  return rc;
}

/* The head the client gets for a body made anew (a front end's translation,
 * its own error): the status's reason phrase when the status changed, the
 * upstream's fields but Content-Type and Content-Encoding replaced by
 * content_type (NULL: kept). The head is rebuilt in place: the upstream
 * connection still writes trailers into it. */
static int rewrite_head(relay_exchange_t *ex, int status, const char *content_type) {
  relay_head_t *old = &ex->resp, h;
  relay_head_init(&h, RELAY_RESP_HEAD_MAX);
  int rc;
  if (status == ex->status) {
    rc = relay_head_on_target(&h, relay_head_target(old), old->target_len);
  } else {
    const char *reason = status_reason(status);
    rc = relay_head_on_target(&h, reason, strlen(reason));
  }
  for (size_t i = 0; i < old->n && rc == 0; i++) {
    const char *name = relay_head_name(old, i);
    size_t nlen = old->hdrs[i].name_len;
    if (content_type && (relay_name_eq(name, nlen, "content-type") || relay_name_eq(name, nlen, "content-encoding")))
      continue;
    relay_buf_t tmp; /* relay_head_add takes a NUL-terminated name */
    relay_buf_init(&tmp);
    rc = relay_buf_append(&tmp, name, nlen) || relay_buf_append(&tmp, "", 1) ? RELAY_ENOMEM : 0;
    if (rc == 0) rc = relay_head_add(&h, tmp.data, relay_head_value(old, i), old->hdrs[i].value_len);
    relay_buf_dispose(&tmp);
  }
  if (rc == 0 && content_type) rc = relay_head_add(&h, "Content-Type", content_type, strlen(content_type));
  if (rc) {
    relay_head_dispose(&h);
    return rc;
  }
  relay_head_dispose(old);
  *old = h;
  ex->status = status;
  return 0;
}

/* A filter that read the whole body may have chosen the status. */
static void apply_chain_status(relay_exchange_t *ex) {
  if (ex->chain && ex->chain->status && ex->chain->status != ex->status &&
      rewrite_head(ex, ex->chain->status, NULL) != 0)
    relay_log_warn("%s: out of memory for the response head; the status stays %d", ex->log_path, ex->status);
}

/* The head of a response whose final body length is unknown goes now: the
 * body streams chunked (or close-delimited to an HTTP/1.0 client). */
static int release_held_head(relay_exchange_t *ex) {
  apply_chain_status(ex);
  ex->resp_framing = relay_response_framing(ex->status, 0, 0, 1, client_11(ex));
  if (ex->resp_framing == RELAY_FRAME_CLOSE) ex->client->close_after = 1;
  ex->resp_state = RELAY_RESP_SENDING;
  return send_head(ex, ex->status, &ex->resp, ex->resp_framing, 0, client_connection(ex), NULL, 0);
}

/* Where the filter chain's output goes. While the head is held, output
 * produced at the end of the body is the whole body (held, sent with its
 * length); output before that means a stage gave up holding the body (over
 * its limit), so the head goes out now and the body streams. */
static int exchange_sink(void *ud, const char *data, size_t len) {
  relay_exchange_t *ex = ud;
  if (ex->resp_state == RELAY_RESP_HELD) {
    if (ex->ending) return relay_buf_append(&ex->held, data, len) ? RELAY_ENOMEM : 0;
    if (release_held_head(ex)) return RELAY_ENOMEM;
  }
  int rc = relay_exchange__send_down(ex, NULL, data, len);
  return rc < 0 ? rc : 0;
}

/* The route's filters, then its front end's, each asked whether it takes
 * part in this response. */
static void build_chain(relay_exchange_t *ex, const relay_response_t *r) {
  const relay_route_t *rt = &ex->route;
  relay_filter_spec_t fe = {rt->frontend.type ? rt->frontend.type->filter : NULL, rt->frontend.opts};
  unsigned n = rt->nfilters + (fe.type != NULL);
  size_t max_body = relay_exchange_config(ex)->max_body_buffer;
  for (unsigned i = 0; i < n; i++) {
    const relay_filter_spec_t *spec = i < rt->nfilters ? &rt->filters[i] : &fe;
    relay_filter_t *f = spec->type->create(spec->opts, ex);
    if (!f) {
      relay_log_warn("%s: out of memory for the %s filter; the response passes unfiltered", ex->log_path,
                     spec->type->name);
      continue;
    }
    f->ex = ex;
    int rc = f->ops->on_head(f, r);
    if (rc != 0) {
      f->ops->dispose(f);
      continue;
    }
    if (!ex->chain) {
      ex->chain = malloc(sizeof *ex->chain);
      if (!ex->chain) {
        f->ops->dispose(f);
        return;
      }
      relay_chain_init(ex->chain, max_body < RELAY_MAX_EVENT ? max_body : RELAY_MAX_EVENT, max_body, exchange_sink, ex,
                       ex->log_path);
      ex->chain->status = ex->status;
    }
    relay_chain_add(ex->chain, f);
  }
}

/* ---- the upstream's response, as the connection reports it --------------- */

/* Interim responses (100 Continue, 103 Early Hints) go to 1.1 clients as
 * they come, under the same flow control as a body, and only so many. */
static int on_interim_head(relay_exchange_t *ex, int status) {
  if (++ex->interim > RELAY_MAX_INTERIM) {
    relay_log_info("%s %s: upstream sent more than %d interim responses", llhttp_method_name(ex->method),
                   ex->log_path, RELAY_MAX_INTERIM);
    return -1;
  }
  if (client_11(ex) && send_head(ex, status, &ex->resp, RELAY_FRAME_NONE, 0, RELAY_CONN_NONE, NULL, 0)) return -1;
  if (ex->client->write_pending >= RELAY_HIGH_WATER && ex->up) relay_upconn_read_pause(ex->up);
  return 1;
}

/* A 101: the head goes as it came and both sides become a tunnel. */
static int on_switching_protocols(relay_exchange_t *ex) {
  if (!ex->req_upgrade) return -1;
  if (send_head(ex, 101, &ex->resp, RELAY_FRAME_NONE, 0, RELAY_CONN_UPGRADE, NULL, 0)) return -1;
  ex->resp_state = RELAY_RESP_SENDING;
  ex->state = RELAY_EX_TUNNEL;
  relay_upconn_start_tunnel(ex->up);
  relay_client_start_tunnel(ex->client);
  return 0;
}

/* The front end's say on the response: what the client gets (status,
 * Content-Type) and what its filters read. A body is there, so the status
 * stays one that has a body. */
static int frontend_response(relay_exchange_t *ex, relay_response_t *r) {
  const relay_frontend_type_t *t = ex->route.frontend.type;
  if (!t || !t->on_response || !ex->route.frontend_state) return 0;
  t->on_response(ex->route.frontend_state, r);
  if (r->status < 200 || r->status > 599 || r->status == 204 || r->status == 205 || r->status == 304)
    r->status = ex->status;
  if (r->status == ex->status && !r->content_type) return 0;
  if (rewrite_head(ex, r->status, r->content_type) == 0) return 0;
  relay_log_warn("%s: out of memory for the response head", ex->log_path);
  return -1;
}

int relay_exchange__on_response_head(relay_exchange_t *ex, const llhttp_t *p) {
  relay_client_t *c = ex->client;
  int status = p->status_code;
  ex->retryable = 0;
  if (status < 100 || status > 599) {
    relay_log_info("%s %s: upstream sent status %d", llhttp_method_name(ex->method), ex->log_path, status);
    return -1; /* 502 upstream_bad_response */
  }
  if (status < 200 && status != 101) return on_interim_head(ex, status);
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
  if (status == 101) return on_switching_protocols(ex);
  if (ex->req_upgrade) c->close_after = 1; /* the upgrade was refused; its bytes can't be parsed */
  int no_body = ex->method == HTTP_HEAD || status == 204 || status == 304;
  int has_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED);
  if (!no_body) {
    relay_response_t r;
    relay_response_classify(&r, status, &ex->resp);
    if (frontend_response(ex, &r)) return -1;
    status = ex->status;
    build_chain(ex, &r);
  }
  if (ex->chain && relay_chain_holds_body(ex->chain)) {
    ex->resp_state = RELAY_RESP_HELD;
    return 0;
  }
  ex->resp_framing = relay_response_framing(status, no_body, has_length, ex->chain != NULL, client_11(ex));
  if (ex->resp_framing == RELAY_FRAME_CLOSE) c->close_after = 1;
  if (send_head(ex, status, &ex->resp, ex->resp_framing, p->content_length, client_connection(ex), NULL, 0)) return -1;
  ex->resp_state = RELAY_RESP_SENDING;
  /* llhttp would read a body announced by Content-Length on a HEAD/204/304. */
  return no_body ? 1 : 0;
}

/* The chain's last filter made the whole response: it goes out complete
 * with this read's write, the last chunk ending it (or now, outside a read);
 * the upstream connection is closed once this read is parsed. */
static void end_early(relay_exchange_t *ex) {
  if (ex->resp_framing == RELAY_FRAME_CHUNKED) ex->batch_last = 1;
  if (!ex->batching) flush_batch(ex, NULL, NULL, 0);
  ex->resp_state = RELAY_RESP_DONE;
  ex->ended_early = 1;
}

int relay_exchange__on_response_body(relay_exchange_t *ex, relay_slab_t *s, const char *data, size_t len) {
  if (ex->ended_early) return 0; /* the response went out whole: the rest is not needed */
  if (ex->chain) {
    if (relay_chain_feed(ex->chain, data, len) < 0) return -1;
    if (ex->chain->ended && ex->resp_state == RELAY_RESP_SENDING) end_early(ex);
    return 0;
  }
  return relay_exchange__send_down(ex, s, data, len) < 0 ? -1 : 0;
}

/* A held body is whole: the head goes with its length, the body with it. */
static void send_held(relay_exchange_t *ex) {
  apply_chain_status(ex);
  ex->resp_framing = RELAY_FRAME_LENGTH;
  ex->resp_state = RELAY_RESP_SENDING;
  send_head(ex, ex->status, &ex->resp, RELAY_FRAME_LENGTH, ex->held.len, client_connection(ex), ex->held.data,
            ex->held.len);
  ex->bytes_out += ex->held.len;
  relay_buf_reset(&ex->held);
}

/* The response message ended inside the parser: the filters finish, a held
 * body goes out whole, a chunked one gets its last chunk. A filter whose
 * output is missing a piece leaves the response visibly cut instead. */
int relay_exchange__on_response_end(relay_exchange_t *ex, const llhttp_t *p) {
  int status = p->status_code;
  if (status >= 100 && status < 200 && status != 101) return 0;
  if (status == 101) return HPE_PAUSED;
  if (ex->ended_early) {
    ex->ended_early = 2; /* the exchange ends as usual, on the connection's done */
    return HPE_PAUSED;
  }
  if (ex->chain) {
    ex->ending = 1;
    int rc = relay_chain_end(ex->chain, 1);
    ex->ending = 0;
    if (ex->resp_state == RELAY_RESP_HELD) {
      if (rc < 0 || ex->chain->failed) return HPE_PAUSED; /* a 500, once the connection is released */
      send_held(ex);
    } else if (rc < 0) {
      relay_log_warn("%s %s: a filter's output is incomplete; cutting the response", llhttp_method_name(ex->method),
                     ex->log_path);
      if (!ex->batching) flush_batch(ex, NULL, NULL, 0);
      return HPE_PAUSED; /* resp_state stays SENDING: the client sees a cut */
    }
  }
  /* The last chunk ends the read's write (or, outside a read, goes now). */
  if (ex->resp_framing == RELAY_FRAME_CHUNKED) ex->batch_last = 1;
  if (!ex->batching) flush_batch(ex, NULL, NULL, 0);
  ex->resp_state = RELAY_RESP_DONE;
  return HPE_PAUSED;
}

/* Everything relayed so far arrives; then the visible cut. */
void relay_exchange__cut_response(relay_exchange_t *ex) {
  if (ex->chain) relay_chain_end(ex->chain, 0);
  ex->batching = 0;
  flush_batch(ex, NULL, NULL, 0);
  relay_exchange__finish(ex);
  relay_client_abort(ex->client);
}
