/* Chat-completions documents as typed pieces; see chat_chunk.h. */
#include "chat_chunk.h"

#include <string.h>

#include "relay/json_splice.h"

void relay_chat_chunk_init(relay_chat_chunk_t *r, const char *reasoning_key) {
  r->reasoning_key = reasoning_key && *reasoning_key ? reasoning_key : "reasoning_content";
  relay_jdoc_init(&r->doc);
  relay_buf_init(&r->text);
}

void relay_chat_chunk_dispose(relay_chat_chunk_t *r) {
  relay_jdoc_dispose(&r->doc);
  relay_buf_dispose(&r->text);
}

typedef struct cc_ctx_s {
  relay_chat_chunk_t *r;
  relay_jdoc_t *d;
  relay_chat_piece_cb cb;
  void *ud;
} cc_ctx_t;

static const char *cc_text(const relay_chat_chunk_t *r, size_t off) {
  return r->text.data ? r->text.data + off : "";
}

/* Append string token i decoded to the scratch text; its offset goes to
 * *off, its length to *len. Anything but a string gives nothing. */
static int cc_decode(cc_ctx_t *c, int i, size_t *off, size_t *len) {
  *off = c->r->text.len;
  *len = 0;
  if (!relay_jdoc_is_string(c->d, i)) return 0;
  if (relay_jdoc_decode(c->d, i, &c->r->text)) return RELAY_CHAT_CHUNK_ENOMEM;
  *len = c->r->text.len - *off;
  return 0;
}

/* A text piece from string token i; empty strings and nulls give none. */
static int cc_text_piece(cc_ctx_t *c, relay_chat_piece_kind_t kind, int i, long index) {
  size_t off, len;
  c->r->text.len = 0;
  int rc = cc_decode(c, i, &off, &len);
  if (rc || len == 0) return rc;
  relay_chat_piece_t p = {.kind = kind, .index = index, .text = cc_text(c->r, off), .len = len};
  return c->cb(c->ud, &p);
}

static int cc_kind_piece(cc_ctx_t *c, relay_chat_piece_kind_t kind, long index) {
  relay_chat_piece_t p = {.kind = kind, .index = index};
  return c->cb(c->ud, &p);
}

/* Arguments are a JSON string in the chat API; a server that sends an
 * object instead (some do in whole bodies) has its raw text taken as the
 * arguments, which is what the string would have held. */
static int cc_args_piece(cc_ctx_t *c, int args, long index) {
  if (args < 0 || relay_jdoc_is_string(c->d, args))
    return cc_text_piece(c, RELAY_CHAT_PIECE_TOOL_ARGS, args, index);
  if (!relay_jdoc_is_object(c->d, args) && !relay_jdoc_is_array(c->d, args)) return 0;
  relay_chat_piece_t p = {.kind = RELAY_CHAT_PIECE_TOOL_ARGS, .index = index};
  p.text = relay_jdoc_raw(c->d, args, &p.len);
  return c->cb(c->ud, &p);
}

/* One tool_calls[] element at position pos. */
static int cc_tool_call(cc_ctx_t *c, int tc, long pos, int body) {
  relay_jdoc_t *d = c->d;
  int64_t idx;
  long index = pos;
  if (!relay_jdoc_is_object(d, tc)) return 0;
  if (!body && relay_jdoc_int(d, relay_jdoc_get(d, tc, "index"), &idx) == 0 && idx >= 0 &&
      idx <= 0x7fffffff)
    index = (long)idx;
  int fn = relay_jdoc_get(d, tc, "function");
  int id = relay_jdoc_get(d, tc, "id");
  int name = relay_jdoc_is_object(d, fn) ? relay_jdoc_get(d, fn, "name") : -1;
  int args = relay_jdoc_is_object(d, fn) ? relay_jdoc_get(d, fn, "arguments") : -1;
  int rc = 0;
  if (relay_jdoc_is_string(d, id) || relay_jdoc_is_string(d, name) || body) {
    size_t id_off, id_len, name_off, name_len;
    c->r->text.len = 0;
    if ((rc = cc_decode(c, id, &id_off, &id_len)) || (rc = cc_decode(c, name, &name_off, &name_len)))
      return rc;
    relay_chat_piece_t p;
    memset(&p, 0, sizeof p);
    p.kind = RELAY_CHAT_PIECE_TOOL_BEGIN;
    p.index = index;
    p.id = cc_text(c->r, id_off);
    p.id_len = id_len;
    p.name = cc_text(c->r, name_off);
    p.name_len = name_len;
    if ((rc = c->cb(c->ud, &p))) return rc;
  }
  if ((rc = cc_args_piece(c, args, index))) return rc;
  if (body) rc = cc_kind_piece(c, RELAY_CHAT_PIECE_TOOL_END, index);
  return rc;
}

/* The element of choices[] that is choice 0: "index": 0, or the first
 * element when elements carry no index. */
static int cc_choice0(relay_jdoc_t *d, int choices) {
  if (!relay_jdoc_is_array(d, choices)) return -1;
  int e = choices + 1;
  for (int k = 0; k < d->tok[choices].size; k++, e = relay_jdoc_next(d, e)) {
    if (!relay_jdoc_is_object(d, e)) continue;
    int idx = relay_jdoc_get(d, e, "index");
    int64_t v;
    if (idx < 0 ? k == 0 : relay_jdoc_int(d, idx, &v) == 0 && v == 0) return e;
  }
  return -1;
}

static int cc_choice(cc_ctx_t *c, int ch, int body) {
  relay_jdoc_t *d = c->d;
  int rc, cont = relay_jdoc_get(d, ch, body ? "message" : "delta");
  if (relay_jdoc_is_object(d, cont)) {
    int rs = relay_jdoc_get(d, cont, c->r->reasoning_key);
    if (!relay_jdoc_is_string(d, rs)) rs = relay_jdoc_get(d, cont, "reasoning");
    if ((rc = cc_text_piece(c, RELAY_CHAT_PIECE_REASONING, rs, 0))) return rc;
    if ((rc = cc_text_piece(c, RELAY_CHAT_PIECE_CONTENT, relay_jdoc_get(d, cont, "content"), 0)))
      return rc;
    int tcs = relay_jdoc_get(d, cont, "tool_calls");
    if (relay_jdoc_is_array(d, tcs)) {
      int e = tcs + 1;
      for (int k = 0; k < d->tok[tcs].size; k++, e = relay_jdoc_next(d, e))
        if ((rc = cc_tool_call(c, e, k, body))) return rc;
    }
  }
  return cc_text_piece(c, RELAY_CHAT_PIECE_FINISH, relay_jdoc_get(d, ch, "finish_reason"), 0);
}

static int64_t cc_count(relay_jdoc_t *d, int obj, const char *key) {
  int64_t v;
  if (relay_jdoc_int(d, relay_jdoc_get(d, obj, key), &v) || v < 0) return 0;
  return v;
}

static int cc_usage(cc_ctx_t *c, int u) {
  relay_jdoc_t *d = c->d;
  relay_chat_piece_t p;
  memset(&p, 0, sizeof p);
  p.kind = RELAY_CHAT_PIECE_USAGE;
  p.usage.prompt_tokens = cc_count(d, u, "prompt_tokens");
  p.usage.completion_tokens = cc_count(d, u, "completion_tokens");
  p.usage.cached_tokens = cc_count(d, relay_jdoc_get(d, u, "prompt_tokens_details"), "cached_tokens");
  p.usage.reasoning_tokens =
      cc_count(d, relay_jdoc_get(d, u, "completion_tokens_details"), "reasoning_tokens");
  return c->cb(c->ud, &p);
}

/* {"error": {"message", "type", "code"}} (OpenAI, vLLM; llama.cpp with a
 * numeric code), or {"error": "message"}. */
static int cc_error(cc_ctx_t *c, int err) {
  relay_jdoc_t *d = c->d;
  size_t m_off, m_len, c_off, c_len, t_off, t_len;
  int64_t status;
  int msg = err, code = -1, type = -1, rc;
  c->r->text.len = 0;
  if (relay_jdoc_is_object(d, err)) {
    msg = relay_jdoc_get(d, err, "message");
    code = relay_jdoc_get(d, err, "code");
    type = relay_jdoc_get(d, err, "type");
  }
  if ((rc = cc_decode(c, msg, &m_off, &m_len)) || (rc = cc_decode(c, code, &c_off, &c_len)) ||
      (rc = cc_decode(c, type, &t_off, &t_len)))
    return rc;
  relay_chat_piece_t p;
  memset(&p, 0, sizeof p);
  p.kind = RELAY_CHAT_PIECE_ERROR;
  p.text = cc_text(c->r, m_off);
  p.len = m_len;
  if (c_len) {
    p.code = cc_text(c->r, c_off);
    p.code_len = c_len;
  }
  if (t_len) {
    p.type = cc_text(c->r, t_off);
    p.type_len = t_len;
  }
  if (relay_jdoc_int(d, code, &status) == 0 && status >= 100 && status <= 599) p.status = (int)status;
  return c->cb(c->ud, &p);
}

int relay_chat_chunk_read(relay_chat_chunk_t *r, const char *json, size_t len, int body,
                          relay_chat_piece_cb cb, void *ud) {
  cc_ctx_t c = {r, &r->doc, cb, ud};
  int rc = relay_jdoc_parse(&r->doc, json, len, RELAY_CHAT_CHUNK_MAX_TOKENS);
  if (rc == RELAY_ENOMEM) return RELAY_CHAT_CHUNK_ENOMEM;
  if (rc == RELAY_ETOOMANY) return RELAY_CHAT_CHUNK_ETOOBIG;
  if (rc || !relay_jdoc_is_object(&r->doc, 0)) return RELAY_CHAT_CHUNK_EINVAL;
  int err = relay_jdoc_get(&r->doc, 0, "error");
  if (relay_jdoc_is_object(&r->doc, err) || relay_jdoc_is_string(&r->doc, err)) return cc_error(&c, err);
  int ch = cc_choice0(&r->doc, relay_jdoc_get(&r->doc, 0, "choices"));
  if (ch >= 0 && (rc = cc_choice(&c, ch, body))) return rc;
  int u = relay_jdoc_get(&r->doc, 0, "usage");
  if (relay_jdoc_is_object(&r->doc, u)) return cc_usage(&c, u);
  return 0;
}
