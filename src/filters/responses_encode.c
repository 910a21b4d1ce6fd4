/* Chat pieces -> Responses events or object; see responses_encode.h.
 *
 * Every item's final JSON is made once, when it closes, and kept: the
 * terminal event's output[] is then those texts joined in output_index
 * order, whatever order the items closed in.
 */
#include "responses_encode.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jdoc.h"
#include "relay/json_splice.h"
#include "relay/utf8.h"

#define ENC_ENOMEM RELAY_RESP_ENC_ENOMEM

/* ---- small writers ------------------------------------------------------- */

static int enc_put(relay_buf_t *b, const char *s) { return relay_buf_append_str(b, s) ? ENC_ENOMEM : 0; }

/* A JSON string. Item text is clean already; names, ids and messages from
 * the upstream (or the client) may not be: those are cleaned here, so that
 * every event is valid UTF-8 whatever came in. */
static int enc_str(relay_buf_t *b, const char *s, size_t n) {
  int rc = 0;
  if (relay_buf_append(b, "\"", 1)) return ENC_ENOMEM;
  if (relay_utf8_valid(s, n)) {
    rc = relay_json_escape(b, s, n);
  } else {
    relay_buf_t clean;
    relay_buf_init(&clean);
    rc = relay_utf8_clean_all(s, n, &clean) || relay_json_escape(b, clean.data ? clean.data : "", clean.len);
    relay_buf_dispose(&clean);
  }
  if (rc || relay_buf_append(b, "\"", 1)) return ENC_ENOMEM;
  return 0;
}

/* An encoded string body (the request's model) as a string: escapes are
 * ASCII, so cleaning the bytes cleans the text. */
static int enc_body(relay_buf_t *b, const relay_buf_t *body) {
  const char *s = body->data ? body->data : "";
  if (relay_utf8_valid(s, body->len))
    return relay_buf_append(b, "\"", 1) || relay_buf_append(b, s, body->len) || relay_buf_append(b, "\"", 1) ? ENC_ENOMEM : 0;
  relay_buf_t clean;
  relay_buf_init(&clean);
  int rc = relay_utf8_clean_all(s, body->len, &clean) || relay_buf_append(b, "\"", 1) ||
           relay_buf_append(b, clean.data ? clean.data : "", clean.len) || relay_buf_append(b, "\"", 1);
  relay_buf_dispose(&clean);
  return rc ? ENC_ENOMEM : 0;
}

static int enc_raw_or_null(relay_buf_t *b, const relay_buf_t *raw) {
  if (!raw->len) return enc_put(b, "null");
  return relay_buf_append(b, raw->data, raw->len) ? ENC_ENOMEM : 0;
}

static const char *enc_prefix(relay_resp_item_kind_t k) {
  switch (k) {
  case RELAY_RESP_ITEM_REASONING: return "rs";
  case RELAY_RESP_ITEM_MESSAGE: return "msg";
  case RELAY_RESP_ITEM_FUNCTION_CALL: return "fc";
  default: return "ctc";
  }
}

static int enc_item_id(const relay_resp_enc_t *e, size_t i, relay_buf_t *b) {
  return relay_buf_printf(b, "\"%s_%s_%zu\"", enc_prefix(e->items[i].kind), e->seed_hex, i) ? ENC_ENOMEM : 0;
}

/* "event: T\ndata: {"type":"T","sequence_number":N" — the caller adds the
 * other members and enc_ev_close(). */
static int enc_ev_open(relay_resp_enc_t *e, relay_buf_t *out, const char *type) {
  if (relay_buf_printf(out, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%" PRIu64, type, type, e->seq))
    return ENC_ENOMEM;
  e->seq++;
  return 0;
}

static int enc_ev_close(relay_buf_t *out) { return enc_put(out, "}\n\n"); }

/* "item_id":..,"output_index":N[,"content_index":0] */
static int enc_ev_where(relay_resp_enc_t *e, size_t i, int content_index, relay_buf_t *out) {
  if (enc_put(out, ",\"item_id\":") || enc_item_id(e, i, out) ||
      relay_buf_printf(out, ",\"output_index\":%zu", i) ||
      (content_index && enc_put(out, ",\"content_index\":0")))
    return ENC_ENOMEM;
  return 0;
}

/* ---- items --------------------------------------------------------------- */

/* The name an item reports, and its namespace: split back when the chat
 * name is one the request offered. */
static void enc_item_names(const relay_resp_enc_t *e, const relay_resp_item_t *it, const char **name, size_t *nlen,
                           const char **ns, size_t *nslen) {
  *ns = NULL;
  *nslen = 0;
  if (it->tool) {
    *name = relay_resp_req_name(e->req, it->tool->name_off);
    *nlen = it->tool->name_len;
    if (it->tool->ns_len) {
      *ns = relay_resp_req_name(e->req, it->tool->ns_off);
      *nslen = it->tool->ns_len;
    }
    return;
  }
  *name = it->name.data ? it->name.data : "";
  *nlen = it->name.len;
}

/* The item object. status NULL: as output_item.added shows it (no text
 * yet); else the final form with that status. */
static int enc_item_json(const relay_resp_enc_t *e, size_t i, const char *status, relay_buf_t *b) {
  const relay_resp_item_t *it = &e->items[i];
  const char *text = it->text.data ? it->text.data : "";
  size_t tlen = status ? it->text.len : 0;
  int rc = enc_put(b, "{\"id\":") || enc_item_id(e, i, b);
  if (rc) return ENC_ENOMEM;
  switch (it->kind) {
  case RELAY_RESP_ITEM_REASONING:
    rc = enc_put(b, ",\"type\":\"reasoning\",\"summary\":[],\"content\":[");
    if (!rc && status) rc = enc_put(b, "{\"type\":\"reasoning_text\",\"text\":") || enc_str(b, text, tlen) || enc_put(b, "}");
    if (!rc) rc = enc_put(b, "]");
    if (!rc && status && strcmp(status, "completed") != 0) rc = relay_buf_printf(b, ",\"status\":\"%s\"", status);
    break;
  case RELAY_RESP_ITEM_MESSAGE:
    rc = relay_buf_printf(b, ",\"type\":\"message\",\"status\":\"%s\",\"role\":\"assistant\",\"content\":[",
                          status ? status : "in_progress");
    if (!rc && status)
      rc = enc_put(b, "{\"type\":\"output_text\",\"text\":") || enc_str(b, text, tlen) ||
           enc_put(b, ",\"annotations\":[],\"logprobs\":[]}");
    if (!rc) rc = enc_put(b, "]");
    break;
  default: {
    const char *name, *ns;
    size_t nlen, nslen;
    int custom = it->kind == RELAY_RESP_ITEM_CUSTOM_TOOL_CALL;
    enc_item_names(e, it, &name, &nlen, &ns, &nslen);
    rc = relay_buf_printf(b, ",\"type\":\"%s\",\"status\":\"%s\",\"name\":", custom ? "custom_tool_call" : "function_call",
                          status ? status : "in_progress") ||
         enc_str(b, name, nlen) || enc_put(b, ",\"call_id\":") ||
         enc_str(b, it->call_id.data ? it->call_id.data : "", it->call_id.len) ||
         enc_put(b, custom ? ",\"input\":" : ",\"arguments\":") || enc_str(b, text, tlen);
    if (!rc && ns) rc = enc_put(b, ",\"namespace\":") || enc_str(b, ns, nslen);
  }
  }
  if (!rc) rc = enc_put(b, "}");
  return rc ? ENC_ENOMEM : 0;
}

static int enc_ev_item(relay_resp_enc_t *e, size_t i, const char *type, const char *status, relay_buf_t *out) {
  if (enc_ev_open(e, out, type) || relay_buf_printf(out, ",\"output_index\":%zu,\"item\":", i)) return ENC_ENOMEM;
  if (status) {
    if (relay_buf_append(out, e->items[i].json.data, e->items[i].json.len)) return ENC_ENOMEM;
  } else if (enc_item_json(e, i, NULL, out)) {
    return ENC_ENOMEM;
  }
  return enc_ev_close(out);
}

/* content_part.added / .done of a reasoning or message item. */
static int enc_ev_part(relay_resp_enc_t *e, size_t i, const char *type, int done, relay_buf_t *out) {
  const relay_resp_item_t *it = &e->items[i];
  int msg = it->kind == RELAY_RESP_ITEM_MESSAGE;
  if (enc_ev_open(e, out, type) || enc_ev_where(e, i, 1, out) ||
      enc_put(out, msg ? ",\"part\":{\"type\":\"output_text\",\"text\":" : ",\"part\":{\"type\":\"reasoning_text\",\"text\":") ||
      enc_str(out, done && it->text.data ? it->text.data : "", done ? it->text.len : 0))
    return ENC_ENOMEM;
  if (msg && enc_put(out, done ? ",\"annotations\":[],\"logprobs\":[]" : ",\"annotations\":[]")) return ENC_ENOMEM;
  if (enc_put(out, "}")) return ENC_ENOMEM;
  return enc_ev_close(out);
}

/* A delta or done event carrying text under `member`. */
static int enc_ev_text(relay_resp_enc_t *e, size_t i, const char *type, int content_index, const char *member,
                       const char *s, size_t n, const char *extra, relay_buf_t *out) {
  if (enc_ev_open(e, out, type) || enc_ev_where(e, i, content_index, out) || enc_put(out, ",\"") ||
      enc_put(out, member) || enc_put(out, "\":") || enc_str(out, s, n) || (extra && enc_put(out, extra)))
    return ENC_ENOMEM;
  return enc_ev_close(out);
}

static int enc_fail(relay_resp_enc_t *e, int status, const char *code, const char *msg, size_t len);

/* A new item (closing nothing: the caller decides). */
static int enc_new_item(relay_resp_enc_t *e, relay_resp_item_kind_t kind, size_t *idx) {
  if (e->nitems >= RELAY_RESP_MAX_ITEMS) {
    char m[96];
    int n = snprintf(m, sizeof m, "the response has more than %d output items", RELAY_RESP_MAX_ITEMS);
    return enc_fail(e, 0, NULL, m, (size_t)n) ? ENC_ENOMEM : 1;
  }
  if (e->nitems == e->cap) {
    size_t cap = e->cap ? e->cap * 2 : 4;
    relay_resp_item_t *p = realloc(e->items, cap * sizeof *p);
    if (!p) return ENC_ENOMEM;
    e->items = p;
    e->cap = cap;
  }
  relay_resp_item_t *it = &e->items[e->nitems];
  memset(it, 0, sizeof *it);
  it->kind = kind;
  it->open = 1;
  it->tool_index = -1;
  relay_buf_init(&it->text);
  relay_buf_init(&it->name);
  relay_buf_init(&it->call_id);
  relay_buf_init(&it->json);
  *idx = e->nitems++;
  return 0;
}

/* Make the item's final JSON and let its text go. */
static int enc_seal(relay_resp_enc_t *e, size_t i, const char *status) {
  relay_resp_item_t *it = &e->items[i];
  it->json.len = 0;
  if (enc_item_json(e, i, status, &it->json)) return ENC_ENOMEM;
  it->open = 0;
  e->text_bytes -= it->text.len < e->text_bytes ? it->text.len : e->text_bytes;
  relay_buf_dispose(&it->text);
  return 0;
}

/* Text appended to an item, cleaned; the new bytes are at
 * it->text[before..). Past max_output the response fails. */
static int enc_append(relay_resp_enc_t *e, size_t i, const char *s, size_t n, size_t *before) {
  relay_resp_item_t *it = &e->items[i];
  *before = it->text.len;
  if (relay_utf8_clean(&it->tail, s, n, &it->text)) return ENC_ENOMEM;
  e->text_bytes += it->text.len - *before;
  if (e->text_bytes > e->opts.max_output) {
    char m[128];
    int k = snprintf(m, sizeof m, "the response is larger than the relay's limit of %zu bytes", e->opts.max_output);
    return enc_fail(e, 0, NULL, m, (size_t)k) ? ENC_ENOMEM : 1;
  }
  return 0;
}

/* A split UTF-8 sequence left at the end of an item is not a character. */
static int enc_flush_pend(relay_resp_enc_t *e, size_t i, size_t *before) {
  relay_resp_item_t *it = &e->items[i];
  *before = it->text.len;
  if (relay_utf8_finish(&it->tail, &it->text)) return ENC_ENOMEM;
  e->text_bytes += it->text.len - *before;
  return 0;
}

static const char *enc_delta_type(relay_resp_item_kind_t k) {
  return k == RELAY_RESP_ITEM_REASONING ? "response.reasoning_text.delta" : "response.output_text.delta";
}

/* Close a reasoning or message item with its .done events. */
static int enc_close_text(relay_resp_enc_t *e, size_t i, const char *status, relay_buf_t *out) {
  relay_resp_item_t *it = &e->items[i];
  int msg = it->kind == RELAY_RESP_ITEM_MESSAGE, st = e->opts.stream;
  size_t before;
  if (enc_flush_pend(e, i, &before)) return ENC_ENOMEM;
  if (st && it->text.len > before &&
      enc_ev_text(e, i, enc_delta_type(it->kind), 1, "delta", it->text.data + before, it->text.len - before,
                  msg ? ",\"logprobs\":[]" : NULL, out))
    return ENC_ENOMEM;
  if (st && (enc_ev_text(e, i, msg ? "response.output_text.done" : "response.reasoning_text.done", 1, "text",
                         it->text.data ? it->text.data : "", it->text.len, msg ? ",\"logprobs\":[]" : NULL, out) ||
             enc_ev_part(e, i, "response.content_part.done", 1, out)))
    return ENC_ENOMEM;
  if (enc_seal(e, i, status)) return ENC_ENOMEM;
  return st ? enc_ev_item(e, i, "response.output_item.done", status, out) : 0;
}

/* A custom tool's raw input: the "input" member of the arguments object
 * the model was asked for, else its only string member, else the whole
 * arguments text as it came. */
static int enc_custom_input(relay_resp_enc_t *e, relay_resp_item_t *it) {
  relay_jdoc_t d;
  int rc = 0;
  relay_jdoc_init(&d);
  if (it->text.len && relay_jdoc_parse(&d, it->text.data, it->text.len, 4096) == 0 && relay_jdoc_is_object(&d, 0)) {
    int v = relay_jdoc_get(&d, 0, "input");
    if (!relay_jdoc_is_string(&d, v) && d.tok[0].size == 1 && relay_jdoc_is_string(&d, 2)) v = 2;
    if (relay_jdoc_is_string(&d, v)) {
      e->scratch.len = 0;
      if (relay_jdoc_decode(&d, v, &e->scratch)) rc = ENC_ENOMEM;
      else {
        it->text.len = 0;
        size_t before;
        it->tail.n = 0;
        if (relay_utf8_clean(&it->tail, e->scratch.data ? e->scratch.data : "", e->scratch.len, &it->text) ||
            enc_flush_pend(e, (size_t)(it - e->items), &before))
          rc = ENC_ENOMEM;
      }
    }
  }
  relay_jdoc_dispose(&d);
  return rc;
}

static int enc_announce(relay_resp_enc_t *e, size_t i, relay_buf_t *out);

/* Close a tool call with its .done events. */
static int enc_close_tool(relay_resp_enc_t *e, size_t i, relay_buf_t *out) {
  relay_resp_item_t *it = &e->items[i];
  int st = e->opts.stream;
  size_t before;
  if (!it->announced && enc_announce(e, i, out)) return ENC_ENOMEM;
  it = &e->items[i];
  if (enc_flush_pend(e, i, &before)) return ENC_ENOMEM;
  const char *name, *ns;
  size_t nlen, nslen;
  enc_item_names(e, it, &name, &nlen, &ns, &nslen);
  if (it->kind == RELAY_RESP_ITEM_CUSTOM_TOOL_CALL) {
    if (enc_custom_input(e, it)) return ENC_ENOMEM;
    if (st && it->text.len &&
        enc_ev_text(e, i, "response.custom_tool_call_input.delta", 0, "delta", it->text.data, it->text.len, NULL, out))
      return ENC_ENOMEM;
    if (st && enc_ev_text(e, i, "response.custom_tool_call_input.done", 0, "input", it->text.data ? it->text.data : "",
                          it->text.len, NULL, out))
      return ENC_ENOMEM;
  } else if (st) {
    if (it->text.len > it->streamed &&
        enc_ev_text(e, i, "response.function_call_arguments.delta", 0, "delta", it->text.data + it->streamed,
                    it->text.len - it->streamed, NULL, out))
      return ENC_ENOMEM;
    if (enc_ev_open(e, out, "response.function_call_arguments.done") || enc_ev_where(e, i, 0, out) ||
        enc_put(out, ",\"name\":") || enc_str(out, name, nlen) || enc_put(out, ",\"arguments\":") ||
        enc_str(out, it->text.data ? it->text.data : "", it->text.len) || enc_ev_close(out))
      return ENC_ENOMEM;
  }
  if (enc_seal(e, i, "completed")) return ENC_ENOMEM;
  return st ? enc_ev_item(e, i, "response.output_item.done", "completed", out) : 0;
}

/* output_item.added for a tool call, once its name is known (or when it
 * closes without one): the kind follows the tool the name maps to, and
 * the arguments that came before go out as one delta. */
static int enc_announce(relay_resp_enc_t *e, size_t i, relay_buf_t *out) {
  relay_resp_item_t *it = &e->items[i];
  it->announced = 1;
  it->tool = relay_resp_req_tool(e->req, it->name.data ? it->name.data : "", it->name.len);
  if (it->tool && it->tool->kind == RELAY_RESP_TOOL_CUSTOM) it->kind = RELAY_RESP_ITEM_CUSTOM_TOOL_CALL;
  if (!it->call_id.len && relay_buf_printf(&it->call_id, "call_%s_%zu", e->seed_hex, i)) return ENC_ENOMEM;
  if (!e->opts.stream) return 0;
  if (enc_ev_item(e, i, "response.output_item.added", NULL, out)) return ENC_ENOMEM;
  if (it->kind == RELAY_RESP_ITEM_FUNCTION_CALL && it->text.len) {
    if (enc_ev_text(e, i, "response.function_call_arguments.delta", 0, "delta", it->text.data, it->text.len, NULL, out))
      return ENC_ENOMEM;
    it->streamed = it->text.len;
  }
  return 0;
}

/* Close every open item in output_index order. status "completed", or
 * "incomplete" after a length finish: text items then close with their
 * events, tool calls are sealed without (their arguments may be cut). */
static int enc_close_all(relay_resp_enc_t *e, const char *status, relay_buf_t *out) {
  for (size_t i = 0; i < e->nitems; i++) {
    relay_resp_item_t *it = &e->items[i];
    if (!it->open) continue;
    int rc, tool = it->kind == RELAY_RESP_ITEM_FUNCTION_CALL || it->kind == RELAY_RESP_ITEM_CUSTOM_TOOL_CALL;
    if (!tool) rc = enc_close_text(e, i, status, out);
    else if (strcmp(status, "completed") == 0) rc = enc_close_tool(e, i, out);
    else rc = enc_seal(e, i, status);
    if (rc) return rc;
  }
  return 0;
}

/* ---- the Response object ------------------------------------------------- */

static int enc_usage(const relay_resp_enc_t *e, relay_buf_t *b) {
  if (!e->has_usage) return enc_put(b, "null");
  const relay_chat_usage_t *u = &e->usage;
  int64_t total = u->prompt_tokens + u->completion_tokens;
  return relay_buf_printf(b,
                          "{\"input_tokens\":%" PRId64 ",\"input_tokens_details\":{\"cached_tokens\":%" PRId64
                          "},\"output_tokens\":%" PRId64 ",\"output_tokens_details\":{\"reasoning_tokens\":%" PRId64
                          "},\"total_tokens\":%" PRId64 "}",
                          u->prompt_tokens, u->cached_tokens, u->completion_tokens, u->reasoning_tokens, total)
             ? ENC_ENOMEM
             : 0;
}

/* The Response with this status; output[] and usage only in the final one. */
static int enc_response(relay_resp_enc_t *e, const char *status, int final, relay_buf_t *b) {
  const relay_resp_req_t *r = e->req;
  int failed = strcmp(status, "failed") == 0, incomplete = strcmp(status, "incomplete") == 0;
  int rc = relay_buf_printf(b, "{\"id\":\"resp_%s\",\"object\":\"response\",\"created_at\":%" PRId64 ",\"status\":\"%s\",\"error\":",
                            e->seed_hex, e->opts.created_at, status);
  if (!rc && failed)
    rc = enc_put(b, "{\"code\":") || enc_str(b, e->err_code, strlen(e->err_code)) || enc_put(b, ",\"message\":") ||
         enc_str(b, e->err_message.data ? e->err_message.data : "", e->err_message.len) || enc_put(b, "}");
  else if (!rc)
    rc = enc_put(b, "null");
  if (!rc)
    rc = enc_put(b, incomplete ? (strcmp(e->finish, "content_filter") == 0 ? ",\"incomplete_details\":{\"reason\":\"content_filter\"}"
                                                                           : ",\"incomplete_details\":{\"reason\":\"max_output_tokens\"}")
                               : ",\"incomplete_details\":null");
  if (!rc) rc = enc_put(b, ",\"instructions\":null,\"max_output_tokens\":") || enc_raw_or_null(b, &r->max_output_tokens);
  if (!rc) rc = enc_put(b, ",\"metadata\":{},\"model\":") || enc_body(b, &r->model) || enc_put(b, ",\"output\":[");
  for (size_t i = 0; !rc && final && i < e->nitems; i++) {
    if (i && enc_put(b, ",")) return ENC_ENOMEM;
    rc = relay_buf_append(b, e->items[i].json.data, e->items[i].json.len);
  }
  if (!rc) rc = relay_buf_printf(b, "],\"parallel_tool_calls\":%s,\"previous_response_id\":null,\"store\":false,\"temperature\":",
                                 r->parallel_tool_calls ? "true" : "false");
  if (!rc) rc = enc_raw_or_null(b, &r->temperature) || enc_put(b, ",\"tool_choice\":") || enc_raw_or_null(b, &r->tool_choice) ||
                enc_put(b, ",\"tools\":[],\"top_p\":") || enc_raw_or_null(b, &r->top_p) || enc_put(b, ",\"usage\":");
  if (!rc) rc = final ? enc_usage(e, b) : enc_put(b, "null");
  if (!rc) rc = enc_put(b, "}");
  return rc ? ENC_ENOMEM : 0;
}

static int enc_ev_response(relay_resp_enc_t *e, const char *type, const char *status, int final, relay_buf_t *out) {
  if (enc_ev_open(e, out, type) || enc_put(out, ",\"response\":") || enc_response(e, status, final, out))
    return ENC_ENOMEM;
  return enc_ev_close(out);
}

/* ---- public -------------------------------------------------------------- */

void relay_resp_enc_init(relay_resp_enc_t *e, const relay_resp_req_t *req, const relay_resp_enc_opts_t *opts) {
  memset(e, 0, sizeof *e);
  e->req = req;
  e->opts = *opts;
  if (!e->opts.max_output) e->opts.max_output = RELAY_RESP_MAX_OUTPUT;
  snprintf(e->seed_hex, sizeof e->seed_hex, "%016" PRIx64, opts->seed);
  relay_buf_init(&e->scratch);
  relay_buf_init(&e->err_message);
}

void relay_resp_enc_dispose(relay_resp_enc_t *e) {
  for (size_t i = 0; i < e->nitems; i++) {
    relay_buf_dispose(&e->items[i].text);
    relay_buf_dispose(&e->items[i].name);
    relay_buf_dispose(&e->items[i].call_id);
    relay_buf_dispose(&e->items[i].json);
  }
  free(e->items);
  e->items = NULL;
  e->nitems = e->cap = 0;
  relay_buf_dispose(&e->scratch);
  relay_buf_dispose(&e->err_message);
}

int relay_resp_enc_start(relay_resp_enc_t *e, relay_buf_t *out) {
  if (e->started) return 0;
  e->started = 1;
  if (!e->opts.stream) return 0;
  if (enc_ev_response(e, "response.created", "in_progress", 0, out) ||
      enc_ev_response(e, "response.in_progress", "in_progress", 0, out))
    return ENC_ENOMEM;
  return 0;
}

/* Record a failure; the terminal event follows in enc_finish(). */
static int enc_fail(relay_resp_enc_t *e, int status, const char *code, const char *msg, size_t len) {
  if (e->failed) return 0;
  e->failed = 1;
  e->status = status;
  snprintf(e->err_code, sizeof e->err_code, "%s", code && *code ? code : "server_error");
  e->err_message.len = 0;
  return relay_buf_append(&e->err_message, msg, len) ? ENC_ENOMEM : 0;
}

/* The terminal event (or the object): failed, incomplete or completed. */
static int enc_finish(relay_resp_enc_t *e, relay_buf_t *out) {
  if (e->ended) return 0;
  int rc = relay_resp_enc_start(e, out);
  if (rc) return rc;
  const char *status = "completed";
  if (e->failed) status = "failed";
  else if (strcmp(e->finish, "length") == 0 || strcmp(e->finish, "content_filter") == 0) status = "incomplete";
  if (e->failed) {
    for (size_t i = 0; i < e->nitems; i++)
      if (e->items[i].open && enc_seal(e, i, "incomplete")) return ENC_ENOMEM;
  } else if ((rc = enc_close_all(e, status, out))) {
    if (rc < 0) return rc;
    return enc_finish(e, out); /* the output limit was hit while closing */
  }
  e->ended = 1;
  if (!e->opts.stream) return enc_response(e, status, 1, out);
  char type[32];
  snprintf(type, sizeof type, "response.%s", status);
  return enc_ev_response(e, type, status, 1, out);
}

/* The open tool call with this chat index (the latest such), or -1. */
static long enc_find_tool(const relay_resp_enc_t *e, long index) {
  for (size_t i = e->nitems; i-- > 0;) {
    const relay_resp_item_t *it = &e->items[i];
    if (it->open && it->tool_index == index &&
        (it->kind == RELAY_RESP_ITEM_FUNCTION_CALL || it->kind == RELAY_RESP_ITEM_CUSTOM_TOOL_CALL))
      return (long)i;
  }
  return -1;
}

/* Close the open items of other kinds than a tool call (keep: tool calls
 * stay open for a new tool call). */
static int enc_close_for(relay_resp_enc_t *e, int keep_tools, relay_buf_t *out) {
  for (size_t i = 0; i < e->nitems; i++) {
    relay_resp_item_t *it = &e->items[i];
    if (!it->open) continue;
    int tool = it->kind == RELAY_RESP_ITEM_FUNCTION_CALL || it->kind == RELAY_RESP_ITEM_CUSTOM_TOOL_CALL;
    if (tool && keep_tools) continue;
    int rc = tool ? enc_close_tool(e, i, out) : enc_close_text(e, i, "completed", out);
    if (rc) return rc;
  }
  return 0;
}

static int enc_text(relay_resp_enc_t *e, relay_resp_item_kind_t kind, const char *s, size_t n, relay_buf_t *out) {
  size_t i = e->nitems - 1, before;
  int rc;
  if (!n) return 0;
  if (!e->nitems || !e->items[i].open || e->items[i].kind != kind) {
    if ((rc = enc_close_for(e, 0, out)) || (rc = enc_new_item(e, kind, &i))) return rc;
    if (e->opts.stream && (enc_ev_item(e, i, "response.output_item.added", NULL, out) ||
                           enc_ev_part(e, i, "response.content_part.added", 0, out)))
      return ENC_ENOMEM;
  }
  if ((rc = enc_append(e, i, s, n, &before))) return rc;
  relay_resp_item_t *it = &e->items[i];
  if (!e->opts.stream || it->text.len == before) return 0;
  return enc_ev_text(e, i, enc_delta_type(kind), 1, "delta", it->text.data + before, it->text.len - before,
                     kind == RELAY_RESP_ITEM_MESSAGE ? ",\"logprobs\":[]" : NULL, out);
}

/* A tool call's first sight, or more of its id / name. At an index whose
 * call is open, another id, or another name once it has one, is a new call
 * (servers that number every call 0); an id or name repeated is not. */
static int enc_tool_begin(relay_resp_enc_t *e, const relay_chat_piece_t *p, relay_buf_t *out) {
  long f = enc_find_tool(e, p->index);
  int rc;
  if (f >= 0) {
    relay_resp_item_t *it = &e->items[f];
    int other_id = p->id_len && it->id_given &&
                   (it->call_id.len != p->id_len || memcmp(it->call_id.data, p->id, p->id_len) != 0);
    int other_name = p->name_len && it->name.len &&
                     (it->name.len != p->name_len || memcmp(it->name.data, p->name, p->name_len) != 0);
    if (!other_id && !other_name) {
      if (p->id_len && !it->id_given && !it->announced) {
        it->call_id.len = 0;
        if (relay_buf_append(&it->call_id, p->id, p->id_len)) return ENC_ENOMEM;
        it->id_given = 1;
      }
      if (p->name_len && !it->name.len) {
        if (relay_buf_append(&it->name, p->name, p->name_len)) return ENC_ENOMEM;
        if (!it->announced) return enc_announce(e, (size_t)f, out);
      }
      return 0;
    }
    if ((rc = enc_close_tool(e, (size_t)f, out))) return rc;
  }
  size_t i;
  if ((rc = enc_close_for(e, 1, out)) || (rc = enc_new_item(e, RELAY_RESP_ITEM_FUNCTION_CALL, &i))) return rc;
  relay_resp_item_t *it = &e->items[i];
  it->tool_index = p->index;
  it->id_given = p->id_len > 0;
  if (relay_buf_append(&it->call_id, p->id, p->id_len) || relay_buf_append(&it->name, p->name, p->name_len))
    return ENC_ENOMEM;
  return p->name_len ? enc_announce(e, i, out) : 0;
}

static int enc_tool_args(relay_resp_enc_t *e, const relay_chat_piece_t *p, relay_buf_t *out) {
  long f = enc_find_tool(e, p->index);
  size_t before;
  int rc;
  if (f < 0) {
    relay_chat_piece_t begin;
    memset(&begin, 0, sizeof begin);
    begin.kind = RELAY_CHAT_PIECE_TOOL_BEGIN;
    begin.index = p->index;
    if ((rc = enc_tool_begin(e, &begin, out))) return rc;
    if (e->failed) return 0;
    f = (long)e->nitems - 1;
  }
  if ((rc = enc_append(e, (size_t)f, p->text, p->len, &before))) return rc;
  relay_resp_item_t *it = &e->items[f];
  if (!e->opts.stream || !it->announced || it->kind != RELAY_RESP_ITEM_FUNCTION_CALL || it->text.len == before) return 0;
  it->streamed = it->text.len;
  return enc_ev_text(e, (size_t)f, "response.function_call_arguments.delta", 0, "delta", it->text.data + before,
                     it->text.len - before, NULL, out);
}

int relay_resp_enc_feed(relay_resp_enc_t *e, const relay_chat_piece_t *p, relay_buf_t *out) {
  int rc;
  if (e->ended) return 0;
  if ((rc = relay_resp_enc_start(e, out))) return rc;
  switch (p->kind) {
  case RELAY_CHAT_PIECE_REASONING: rc = enc_text(e, RELAY_RESP_ITEM_REASONING, p->text, p->len, out); break;
  case RELAY_CHAT_PIECE_CONTENT: rc = enc_text(e, RELAY_RESP_ITEM_MESSAGE, p->text, p->len, out); break;
  case RELAY_CHAT_PIECE_TOOL_BEGIN: rc = enc_tool_begin(e, p, out); break;
  case RELAY_CHAT_PIECE_TOOL_ARGS: rc = enc_tool_args(e, p, out); break;
  case RELAY_CHAT_PIECE_TOOL_END: {
    long f = enc_find_tool(e, p->index);
    rc = f >= 0 ? enc_close_tool(e, (size_t)f, out) : 0;
    break;
  }
  case RELAY_CHAT_PIECE_FINISH:
    snprintf(e->finish, sizeof e->finish, "%.*s", (int)(p->len < sizeof e->finish ? p->len : sizeof e->finish - 1),
             p->text ? p->text : "");
    break;
  case RELAY_CHAT_PIECE_USAGE:
    e->usage = p->usage;
    e->has_usage = 1;
    break;
  case RELAY_CHAT_PIECE_ERROR: {
    const char *code = p->code;
    size_t code_len = p->code_len;
    char cbuf[48];
    if (!code && p->type && p->type_len == 25 && memcmp(p->type, "exceed_context_size_error", 25) == 0) {
      code = "context_length_exceeded"; /* llama.cpp's; Codex acts on this code */
      code_len = strlen(code);
    }
    snprintf(cbuf, sizeof cbuf, "%.*s", (int)(code_len < sizeof cbuf ? code_len : sizeof cbuf - 1), code ? code : "");
    const char *msg = p->len ? p->text : "the upstream server reported an error";
    rc = enc_fail(e, p->status, cbuf, msg, p->len ? p->len : strlen(msg));
    break;
  }
  }
  if (rc < 0) return rc;
  return e->failed ? enc_finish(e, out) : 0;
}

int relay_resp_enc_end(relay_resp_enc_t *e, relay_buf_t *out) { return enc_finish(e, out); }

int relay_resp_enc_cut(relay_resp_enc_t *e, relay_buf_t *out) {
  static const char msg[] = "the upstream server closed the stream before the response was complete";
  if (e->ended) return 0;
  if (enc_fail(e, 502, NULL, msg, sizeof msg - 1)) return ENC_ENOMEM;
  return enc_finish(e, out);
}

int relay_resp_enc_fail(relay_resp_enc_t *e, const char *code, const char *message, size_t len, relay_buf_t *out) {
  if (e->ended) return 0;
  if (enc_fail(e, 0, code, message, len)) return ENC_ENOMEM;
  return enc_finish(e, out);
}

int relay_resp_enc_ended(const relay_resp_enc_t *e) { return e->ended; }

int relay_resp_enc_http_status(const relay_resp_enc_t *e) {
  if (!e->failed) return 200;
  return e->status >= 400 && e->status <= 599 ? e->status : 502;
}
