/* The state of one request translation, private to src/filters: what
 * responses_request.c (errors, messages, content parts, input items, the top
 * level) and responses_tools.c (tools, their names, tool_choice) both need.
 * The public contract is responses_request.h; no other layer includes this
 * header.
 *
 * The output helpers stay static inline: they run for every value written,
 * in both files.
 */
#ifndef RELAY_FILTERS_RESPONSES_REQUEST_INTERNAL_H
#define RELAY_FILTERS_RESPONSES_REQUEST_INTERNAL_H

#include <stddef.h>
#include <string.h>

#include "jdoc.h"
#include "relay/buf.h"
#include "relay/json_splice.h"
#include "responses_request.h"

typedef enum { RQ_PEND_NONE, RQ_PEND_SYSTEM, RQ_PEND_ASSISTANT } rq_pend_t;

typedef struct rq_s {
  relay_resp_req_t *r;
  relay_jdoc_t d;
  const char *rfield;  /* reasoning member upstream; "" drops reasoning */
  const char *dev_role;
  relay_buf_t msgs;    /* the messages array's members */
  /* The message being held. */
  rq_pend_t pend;
  const char *sys_role;
  relay_buf_t sys;     /* merged system text, encoded */
  relay_buf_t content; /* assistant text, encoded */
  int has_content;
  relay_buf_t reasoning; /* assistant reasoning text, encoded */
  size_t n_reasoning;    /* reasoning items in it */
  relay_buf_t calls;     /* tool_calls members */
  size_t n_calls;
  /* Scratch. */
  relay_buf_t tmp, text, parts;
  char param[96];
  char shown[64];
} rq_t;

/* ---- errors (responses_request.c) ---------------------------------------- */

/* Refuse the request: a 400 with a message a user can act on. Returns
 * RELAY_RESP_EINVAL. */
int relay_resp_req__fail(rq_t *q, const char *param, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A client's string, safe to quote in an error message (printable ASCII
 * only, shortened); in q->shown until the next call. */
const char *relay_resp_req__show(rq_t *q, int tok);

/* "input[3].content[1]" style paths for err_param; in q->param until the
 * next call. */
const char *relay_resp_req__param(rq_t *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One more entry of r->notes: what, and the client's string at tok (when
 * tok >= 0). */
int relay_resp_req__note(rq_t *q, const char *what, int tok);

/* ---- output helpers ------------------------------------------------------ */

static inline int rq_put(relay_buf_t *b, const char *s) { return relay_buf_append_str(b, s) ? RELAY_RESP_ENOMEM : 0; }

static inline int rq_put_raw(rq_t *q, relay_buf_t *b, int tok) {
  size_t n;
  const char *p = relay_jdoc_raw(&q->d, tok, &n);
  return relay_buf_append(b, p, n) ? RELAY_RESP_ENOMEM : 0;
}

/* A string value as it came ("..." included), safe for strict readers. */
static inline int rq_put_str(rq_t *q, relay_buf_t *b, int tok) {
  if (relay_buf_append(b, "\"", 1) || relay_jdoc_copy_body(&q->d, tok, b) || relay_buf_append(b, "\"", 1))
    return RELAY_RESP_ENOMEM;
  return 0;
}

static inline int rq_put_escaped(relay_buf_t *b, const char *s, size_t n) {
  if (relay_buf_append(b, "\"", 1) || relay_json_escape(b, s, n) || relay_buf_append(b, "\"", 1))
    return RELAY_RESP_ENOMEM;
  return 0;
}

/* ---- tool names ---------------------------------------------------------- */

/* The decoded name offered upstream for name (+ namespace) tokens, into
 * q->tmp; checks the length limit (responses_request.c). */
int relay_resp_req__flat_name(rq_t *q, int ns, int name, const char *param);

/* The order of the tool map, bytewise with a prefix before the longer name
 * (sorted in responses_tools.c, searched by relay_resp_req_tool()). */
static inline int rq_name_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al > bl) - (al < bl);
}

/* ---- tools (responses_tools.c) ------------------------------------------- */

/* tools[] as chat function tools into b; the names offered upstream go into
 * the map of q->r. */
int relay_resp_req__tools(rq_t *q, int tools, relay_buf_t *b);

/* Sort the map by upstream name for relay_resp_req_tool(); two tools with
 * one upstream name could not be told apart, so that is refused. */
int relay_resp_req__sort_tools(rq_t *q);

/* tool_choice in the chat form; the request's own form is kept to echo. */
int relay_resp_req__tool_choice(rq_t *q, int tc, relay_buf_t *b);

#endif /* RELAY_FILTERS_RESPONSES_REQUEST_INTERNAL_H */
