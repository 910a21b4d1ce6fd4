/* The Responses bridge as a front end and its encoder filter; see
 * responses.h. */
#include "responses.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "chat_chunk.h"
#include "exchange.h"
#include "log.h"
#include "proxy.h"
#include "relay/sse.h"
#include "responses_encode.h"

/* One upstream event held whole while it is framed here, when the filter
 * runs outside a chain (the chain's own limit otherwise). */
#define RS_MAX_EVENT (8 * 1024 * 1024)

typedef enum {
  RS_EVENTS = 1, /* a 2xx event stream for a streaming request: framed here as it comes */
  RS_BODY,       /* another readable 2xx: the whole body */
  RS_ERROR       /* an error status, or a body the relay cannot read: an error answer */
} rs_mode_t;

typedef struct rs_filter_s {
  relay_filter_t base;
  const relay_resp_req_t *req;
  uint64_t seed;
  int64_t created_at;
  rs_mode_t mode;
  int status;        /* the upstream's */
  int encoded;       /* ... its body is encoded */
  relay_media_t media;
  int finish_seen;   /* a finish_reason came */
  int framer_ready;  /* the framer was made (at the first bytes, with the chain's limit) */
  int framing_dead;  /* the framer gave up (an event over the limit) */
  int err;           /* out of memory, or the output could not be passed: cut */
  relay_resp_enc_t enc;
  relay_chat_chunk_t reader;
  relay_sse_t framer;
  relay_buf_t out;
  /* RS_ERROR: what the upstream's error object said. */
  relay_buf_t err_message, err_type, err_code;
} rs_filter_t;

static const char *rs_name(const rs_filter_t *f) { return f->base.ex ? f->base.ex->log_path : "-"; }

/* ---- the encoder's input: chat chunks --------------------------------------- */

/* A stream ends well only after a finish_reason: note it on the way. */
static int rs_piece(void *ud, const relay_chat_piece_t *p) {
  rs_filter_t *f = ud;
  if (p->kind == RELAY_CHAT_PIECE_FINISH) f->finish_seen = 1;
  return relay_resp_enc_feed(&f->enc, p, &f->out);
}

/* What the relay found wrong with the upstream's output ends the response
 * as failed (with response.failed, or a failed object). */
static void rs_fail(rs_filter_t *f, const char *message) {
  if (relay_resp_enc_fail(&f->enc, NULL, message, strlen(message), &f->out)) f->err = 1;
}

/* One chat document (a chunk's data, or a whole body). A document that is
 * not JSON is skipped in a stream (servers send odd keep-alives) and fails
 * a body. */
static void rs_document(rs_filter_t *f, const char *data, size_t len, int body) {
  int rc = relay_chat_chunk_read(&f->reader, data, len, body, rs_piece, f);
  if (rc == 0) return;
  if (rc == RELAY_CHAT_CHUNK_EINVAL) {
    if (body) rs_fail(f, "the upstream server sent a body that is not a chat completion");
    else relay_log_debug("%s: an upstream event that is not a JSON object was skipped", rs_name(f));
  } else if (rc == RELAY_CHAT_CHUNK_ETOOBIG) {
    rs_fail(f, "the upstream server sent a document with too many JSON values");
  } else {
    f->err = 1;
  }
}

/* One upstream event: [DONE] ends the response as the upstream says;
 * comments and anything after the end carry nothing for the client. */
static void rs_event(void *ud, const relay_sse_event_t *ev) {
  rs_filter_t *f = ud;
  if (f->err || relay_resp_enc_ended(&f->enc) || !ev->data) return;
  if (ev->is_done) {
    if (relay_resp_enc_end(&f->enc, &f->out)) f->err = 1;
    return;
  }
  rs_document(f, ev->data, ev->data_len, 0);
}

/* Bytes of an event stream through the framer; an event over the limit
 * fails the response (its bytes cannot be read, and must not pass). */
static void rs_frame(rs_filter_t *f, const char *data, size_t len) {
  if (f->framing_dead || relay_resp_enc_ended(&f->enc)) return;
  if (!f->framer_ready) {
    relay_sse_init(&f->framer, f->base.chain ? f->base.chain->max_event : RS_MAX_EVENT);
    f->framer_ready = 1;
  }
  size_t used;
  if (relay_sse_feed(&f->framer, data, len, rs_event, f, &used) == 0) return;
  f->framing_dead = 1;
  rs_fail(f, "the upstream server sent an event larger than the relay's limit");
}

/* The stream's last event may lack its empty line: two line ends deliver
 * it (or, after a whole event, only empty blocks, which carry no data). */
static void rs_frame_end(rs_filter_t *f) { rs_frame(f, "\n\n", 2); }

/* The encoder's output goes on; a failure to pass it cuts the response. */
static int rs_send(rs_filter_t *f) {
  if (!f->err && f->out.len && relay_filter_pass(&f->base, f->out.data, f->out.len) < 0) f->err = 1;
  relay_buf_reset(&f->out);
  return f->err ? -1 : 0;
}

/* ---- error answers ------------------------------------------------------------ */

/* An error body is read for its error object only: its message, type and
 * code are what the client should see. */
static int rs_error_piece(void *ud, const relay_chat_piece_t *p) {
  rs_filter_t *f = ud;
  if (p->kind != RELAY_CHAT_PIECE_ERROR) return 0;
  relay_buf_reset(&f->err_message);
  relay_buf_reset(&f->err_type);
  relay_buf_reset(&f->err_code);
  if (relay_buf_append(&f->err_message, p->text, p->len) || relay_buf_append(&f->err_type, p->type, p->type_len) ||
      relay_buf_append(&f->err_code, p->code, p->code_len))
    return -1;
  if (!p->code && p->type && p->type_len == 25 && memcmp(p->type, "exceed_context_size_error", 25) == 0 &&
      relay_buf_append_str(&f->err_code, "context_length_exceeded")) /* llama.cpp's; Codex acts on the code */
    return -1;
  return 0;
}

/* A NUL-terminated copy for relay_resp_error_json's type and code, or NULL. */
static const char *rs_cstr(relay_buf_t *b) {
  if (!b->len || relay_buf_append(b, "", 1)) return NULL;
  b->len--;
  return memchr(b->data, 0, b->len) ? NULL : b->data;
}

/* The client's error: the upstream's own message when its body is an error
 * object, else what went wrong. A 2xx the relay cannot read becomes a 502. */
static void rs_error_body(rs_filter_t *f, const char *data, size_t len) {
  int ok2xx = f->status >= 200 && f->status <= 299;
  char msg[160];
  if (!f->encoded) relay_chat_chunk_read(&f->reader, data, len, 1, rs_error_piece, f);
  const char *type = rs_cstr(&f->err_type), *code = rs_cstr(&f->err_code);
  if (!f->err_message.len) {
    if (f->encoded) snprintf(msg, sizeof msg, "the upstream server sent an encoded body the relay cannot read");
    else if (ok2xx) snprintf(msg, sizeof msg, "the upstream server sent a body that is neither JSON nor an event stream");
    else snprintf(msg, sizeof msg, "the upstream server answered with status %d", f->status);
    type = code = NULL;
    if (relay_buf_append_str(&f->err_message, msg)) f->err = 1;
  }
  if (!type) type = ok2xx || f->status >= 500 ? "upstream_error" : "invalid_request_error";
  if (ok2xx) relay_filter_set_status(&f->base, 502);
  if (relay_resp_error_json(&f->out, f->err_message.data, f->err_message.len, type, NULL, code)) f->err = 1;
}

/* ---- the filter ------------------------------------------------------------- */

/* Only a 2xx JSON or event-stream body, unencoded, is a chat response. */
static int rs_readable(const relay_response_t *r) { return relay_response_is_rewritable(r); }

/* How the body is read is decided by the head: a stream for a streaming
 * request is framed here as it comes; anything else is held whole. */
static int rs_on_head(relay_filter_t *base, const relay_response_t *r) {
  rs_filter_t *f = (rs_filter_t *)base;
  if (!f->req) return RELAY_FILTER_SKIP;
  f->status = r->status;
  f->encoded = r->encoded;
  f->media = r->media;
  relay_resp_enc_opts_t eo;
  memset(&eo, 0, sizeof eo);
  eo.seed = f->seed;
  eo.created_at = f->created_at;
  eo.stream = f->req->stream;
  if (base->ex) eo.max_output = relay_exchange_config(base->ex)->max_body_buffer;
  relay_resp_enc_dispose(&f->enc);
  relay_resp_enc_init(&f->enc, f->req, &eo);
  if (!rs_readable(r)) {
    f->mode = RS_ERROR;
    base->unit = RELAY_UNIT_BODY;
  } else if (f->req->stream && r->media == RELAY_MEDIA_SSE) {
    f->mode = RS_EVENTS;
    base->unit = RELAY_UNIT_BYTES;
  } else {
    f->mode = RS_BODY;
    base->unit = RELAY_UNIT_BODY;
  }
  return 0;
}

/* BYTES: a piece of a stream; BODY: the whole body, once. */
static int rs_on_data(relay_filter_t *base, const char *data, size_t len) {
  rs_filter_t *f = (rs_filter_t *)base;
  if (f->err) return -1;
  switch (f->mode) {
    case RS_EVENTS:
      if (relay_resp_enc_start(&f->enc, &f->out)) f->err = 1;
      rs_frame(f, data, len);
      break;
    case RS_BODY:
      if (f->media == RELAY_MEDIA_SSE) {
        rs_frame(f, data, len);
        rs_frame_end(f);
        /* The whole stream is in: it ends as it said, or it was cut short. */
        if (!relay_resp_enc_ended(&f->enc) &&
            (f->finish_seen ? relay_resp_enc_end(&f->enc, &f->out) : relay_resp_enc_cut(&f->enc, &f->out)))
          f->err = 1;
      } else {
        rs_document(f, data, len, 1);
        if (!f->err && relay_resp_enc_end(&f->enc, &f->out)) f->err = 1;
      }
      if (!f->req->stream) relay_filter_set_status(base, relay_resp_enc_http_status(&f->enc));
      break;
    default: rs_error_body(f, data, len); break;
  }
  if (rs_send(f)) return -1;
  /* A stream that failed is over (response.failed is terminal): the client
   * need not wait for the upstream, which is closed. One that completed
   * lets the upstream end its message, so its connection can be reused. */
  if (f->mode == RS_EVENTS && relay_resp_enc_ended(&f->enc) && f->enc.failed) relay_filter_end_response(base);
  return 0;
}

/* The end of a stream decides how the response ends: as the upstream said,
 * or failed. A stream that ended without its end, or was cut, leaves the
 * client connection to be closed after response.failed: a negative answer
 * makes the core cut the response there. A held body was answered in
 * on_data; a held body over the limit cannot be answered (the core's 502). */
static int rs_on_end(relay_filter_t *base, relay_end_t how) {
  rs_filter_t *f = (rs_filter_t *)base;
  if (f->err) return -1;
  if (f->mode != RS_EVENTS) {
    if (how == RELAY_END_BYPASS)
      relay_log_warn("%s: the upstream's body is larger than max_body_buffer; it cannot be translated", rs_name(f));
    return how == RELAY_END_BYPASS ? -1 : 0;
  }
  if (relay_resp_enc_start(&f->enc, &f->out)) f->err = 1;
  int closed = relay_resp_enc_ended(&f->enc);
  if (how == RELAY_END_COMPLETE && !closed) rs_frame_end(f);
  int cut = 0;
  if (!relay_resp_enc_ended(&f->enc)) {
    if (how == RELAY_END_COMPLETE && f->finish_seen) {
      if (relay_resp_enc_end(&f->enc, &f->out)) f->err = 1;
    } else {
      relay_log_warn("%s: the upstream stream ended before the response was complete", rs_name(f));
      if (relay_resp_enc_cut(&f->enc, &f->out)) f->err = 1;
      cut = 1;
    }
  }
  if (rs_send(f)) return -1;
  return cut && how == RELAY_END_COMPLETE ? -1 : 0;
}

/* The encoder holds the response's text until its end: it all goes here. */
static void rs_dispose(relay_filter_t *base) {
  rs_filter_t *f = (rs_filter_t *)base;
  relay_resp_enc_dispose(&f->enc);
  relay_chat_chunk_dispose(&f->reader);
  if (f->framer_ready) relay_sse_dispose(&f->framer);
  relay_buf_dispose(&f->out);
  relay_buf_dispose(&f->err_message);
  relay_buf_dispose(&f->err_type);
  relay_buf_dispose(&f->err_code);
  free(f);
}

static const relay_filter_ops_t rs_ops = {"responses", rs_on_head, rs_on_data, NULL, rs_on_end, rs_dispose};

/* The state the core's and the unit tests' filters share; what depends on
 * the response waits for on_head. */
relay_filter_t *relay_responses_filter_new(const relay_resp_req_t *req, uint64_t seed, int64_t created_at) {
  rs_filter_t *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->base.ops = &rs_ops;
  f->req = req;
  f->seed = seed;
  f->created_at = created_at;
  relay_chat_chunk_init(&f->reader, RELAY_RESPONSES_REASONING_KEY);
  relay_buf_init(&f->out);
  relay_buf_init(&f->err_message);
  relay_buf_init(&f->err_type);
  relay_buf_init(&f->err_code);
  /* on_head inits these; dispose must find them empty if it never ran. */
  relay_resp_enc_init(&f->enc, req, &(relay_resp_enc_opts_t){0});
  return &f->base;
}

/* splitmix64's finaliser: nearby inputs (consecutive exchange ids) give
 * unrelated seeds. */
static uint64_t rs_mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/* Per response: ids unique across loops, workers and restarts. */
static relay_filter_t *rs_create(const void *opts, struct relay_exchange_s *ex) {
  uint64_t seed = rs_mix(ex->id ^ ((uint64_t)ex->proxy->worker << 48) ^ rs_mix(uv_hrtime()));
  relay_filter_t *f = relay_responses_filter_new(ex->route.frontend_state, seed, (int64_t)time(NULL));
  if (f) f->ex = ex;
  return f;
}

const relay_filter_type_t relay_responses_filter_type = {"responses", rs_create, NULL, NULL, RELAY_FILTER_READS_BODY};

/* ---- the front end ------------------------------------------------------------ */

/* The whole body into a chat request; a refusal is the client's 400 and
 * never reaches the upstream. */
static int rs_on_request(const void *opts, relay_frontend_request_t *rq) {
  const relay_responses_opts_t *o = opts;
  relay_resp_req_t *r = malloc(sizeof *r);
  if (!r) return RELAY_ENOMEM;
  relay_resp_req_init(r);
  rq->state = r;
  relay_resp_req_opts_t ro = {o->reasoning_field, o->developer_role};
  int rc = relay_resp_req_translate(r, &ro, rq->body, rq->len, rq->new_body);
  if (rc == RELAY_RESP_EINVAL) {
    relay_log_info("%s: refused (%d): %s%s%s", rq->log_name, r->err_status, r->err_message,
                   r->err_param[0] ? " at " : "", r->err_param);
    rq->status = r->err_status >= 400 && r->err_status <= 499 ? r->err_status : 400;
    return relay_resp_req_error_json(r, rq->answer) ? RELAY_ENOMEM : 0;
  }
  if (rc) return RELAY_ENOMEM;
  if (r->notes.len) relay_log_debug("%s: %s", rq->log_name, r->notes.data);
  return relay_buf_append_str(rq->target, o->chat_path) ? RELAY_ENOMEM : 0;
}

/* What the client gets: an event stream for a readable 2xx to a streaming
 * request, JSON otherwise (the encoder's object, or an error). A 2xx with no
 * Content-Type at all is read as what the request asked for. */
static void rs_on_response(void *state, relay_response_t *r) {
  const relay_resp_req_t *req = state;
  if (r->status >= 200 && r->status <= 299 && r->media == RELAY_MEDIA_OTHER &&
      relay_head_find(r->head, "content-type", 0) < 0)
    r->media = req->stream ? RELAY_MEDIA_SSE : RELAY_MEDIA_JSON;
  r->content_type = rs_readable(r) && req->stream ? "text/event-stream" : "application/json";
}

/* The translation's state (tool names) lives until the exchange ends. */
static void rs_state_free(void *state) {
  relay_resp_req_dispose(state);
  free(state);
}

static void rs_opts_ref(void *o) { relay_responses_opts_ref(o); }
static void rs_opts_unref(void *o) { relay_responses_opts_unref(o); }

const relay_frontend_type_t relay_responses_frontend = {"responses",  rs_on_request, rs_on_response, rs_state_free,
                                                        &relay_responses_filter_type, rs_opts_ref, rs_opts_unref};

/* A route's options, shared by its exchanges (a reload keeps the old ones
 * alive for exchanges in flight). */
relay_responses_opts_t *relay_responses_opts_new(void) {
  relay_responses_opts_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->refs = 1;
  strcpy(o->chat_path, "/v1/chat/completions");
  strcpy(o->reasoning_field, "reasoning_content");
  strcpy(o->developer_role, "system");
  return o;
}

void relay_responses_opts_ref(relay_responses_opts_t *o) { o->refs++; }

void relay_responses_opts_unref(relay_responses_opts_t *o) {
  if (o && --o->refs == 0) free(o);
}
