/* Responses request -> chat-completions request; see responses_request.h.
 *
 * One walk over the top-level members records where each known value is;
 * the chat body is then written in a fixed order. The input items are read
 * once, in order, into messages: system text and an assistant turn are held
 * ("pending") while the next items may still belong to them, so that
 * consecutive system messages merge, and reasoning + text + tool calls of
 * one assistant turn become one chat message. Tools, the map of their
 * names and tool_choice are responses_tools.c's.
 */
#include "responses_request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jdoc.h"
#include "relay/json_splice.h"
#include "responses_request_internal.h"

/* Between a namespace and a tool's name in the name offered upstream. */
#define RQ_NS_SEP "__"
/* Between text parts, and between merged system messages (encoded). */
#define RQ_PART_SEP "\\n\\n"
#define RQ_IMAGE_NOTE "[image omitted: the relay passes no images in tool output upstream]"

/* Known top-level members: their value tokens, -1 when absent. */
typedef struct rq_top_s {
  int model, input, instructions, tools, tool_choice, parallel, reasoning, max_output, temperature,
      top_p, stream, text, previous, conversation, background, prompt;
} rq_top_t;

void relay_resp_req_init(relay_resp_req_t *r) {
  memset(r, 0, sizeof *r);
  r->parallel_tool_calls = 1;
  relay_buf_init(&r->model);
  relay_buf_init(&r->tool_choice);
  relay_buf_init(&r->temperature);
  relay_buf_init(&r->top_p);
  relay_buf_init(&r->max_output_tokens);
  relay_buf_init(&r->names);
  relay_buf_init(&r->notes);
}

void relay_resp_req_dispose(relay_resp_req_t *r) {
  relay_buf_dispose(&r->model);
  relay_buf_dispose(&r->tool_choice);
  relay_buf_dispose(&r->temperature);
  relay_buf_dispose(&r->top_p);
  relay_buf_dispose(&r->max_output_tokens);
  relay_buf_dispose(&r->names);
  relay_buf_dispose(&r->notes);
  free(r->tools);
  r->tools = NULL;
  r->ntools = 0;
}

/* ---- errors -------------------------------------------------------------- */

/* Refuse the request: a 400 with a message a user can act on. */
int relay_resp_req__fail(rq_t *q, const char *param, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->r->err_message, sizeof q->r->err_message, fmt, ap);
  va_end(ap);
  snprintf(q->r->err_param, sizeof q->r->err_param, "%s", param ? param : "");
  q->r->err_status = 400;
  return RELAY_RESP_EINVAL;
}

/* A client's string, safe to quote in an error message: printable ASCII
 * only, shortened. The message is JSON-escaped later anyway; this keeps it
 * readable and valid UTF-8 whatever the client sent. */
const char *relay_resp_req__show(rq_t *q, int tok) {
  size_t k = 0;
  relay_buf_t dec;
  if (tok < 0 || !relay_jdoc_is_string(&q->d, tok)) return "(not a string)";
  relay_buf_init(&dec);
  if (relay_jdoc_decode(&q->d, tok, &dec)) dec.len = 0;
  for (size_t i = 0; i < dec.len && k + 4 < sizeof q->shown; i++) {
    unsigned char c = (unsigned char)dec.data[i];
    q->shown[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
  }
  if (k + 4 >= sizeof q->shown) {
    memcpy(q->shown + k, "...", 3);
    k += 3;
  }
  q->shown[k] = 0;
  relay_buf_dispose(&dec);
  return q->shown;
}

/* "input[3].content[1]" style paths for err_param. */
const char *relay_resp_req__param(rq_t *q, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(q->param, sizeof q->param, fmt, ap);
  va_end(ap);
  return q->param;
}

int relay_resp_req__note(rq_t *q, const char *what, int tok) {
  relay_buf_t *n = &q->r->notes;
  if ((n->len && relay_buf_append_str(n, "; ")) || relay_buf_append_str(n, what)) return RELAY_RESP_ENOMEM;
  if (tok >= 0 && (relay_buf_append_str(n, " ") || relay_buf_append_str(n, relay_resp_req__show(q, tok))))
    return RELAY_RESP_ENOMEM;
  if (relay_buf_reserve(n, 1)) return RELAY_RESP_ENOMEM;
  n->data[n->len] = 0; /* ready to print */
  return 0;
}

/* ---- messages ------------------------------------------------------------ */

static int rq_msg_open(rq_t *q, const char *role) {
  relay_buf_t *m = &q->msgs;
  q->r->n_messages++;
  if ((m->len && relay_buf_append(m, ",", 1)) || relay_buf_append_str(m, "{\"role\":") ||
      rq_put_escaped(m, role, strlen(role)))
    return RELAY_RESP_ENOMEM;
  return 0;
}

static int rq_flush_system(rq_t *q) {
  if (q->pend != RQ_PEND_SYSTEM) return 0;
  q->pend = RQ_PEND_NONE;
  relay_buf_t *m = &q->msgs;
  if (rq_msg_open(q, q->sys_role) || rq_put(m, ",\"content\":\"") ||
      relay_buf_append(m, q->sys.data, q->sys.len) || rq_put(m, "\"}"))
    return RELAY_RESP_ENOMEM;
  q->sys.len = 0;
  return 0;
}

/* An assistant turn with neither text nor tool calls would be an empty
 * message upstream: its reasoning has nothing to belong to and is dropped. */
static int rq_flush_assistant(rq_t *q) {
  if (q->pend != RQ_PEND_ASSISTANT) return 0;
  q->pend = RQ_PEND_NONE;
  relay_buf_t *m = &q->msgs;
  int rc = 0;
  if (!q->has_content && !q->n_calls) {
    q->r->n_reasoning_dropped += q->n_reasoning;
  } else {
    rc = rq_msg_open(q, "assistant") || rq_put(m, ",\"content\":");
    if (!rc && q->has_content)
      rc = rq_put(m, "\"") || relay_buf_append(m, q->content.data, q->content.len) || rq_put(m, "\"");
    else if (!rc)
      rc = rq_put(m, "null");
    if (!rc && q->n_reasoning) {
      q->r->n_reasoning += q->n_reasoning;
      rc = rq_put(m, ",") || rq_put_escaped(m, q->rfield, strlen(q->rfield)) || rq_put(m, ":\"") ||
           relay_buf_append(m, q->reasoning.data, q->reasoning.len) || rq_put(m, "\"");
    }
    if (!rc && q->n_calls)
      rc = rq_put(m, ",\"tool_calls\":[") || relay_buf_append(m, q->calls.data, q->calls.len) || rq_put(m, "]");
    if (!rc) rc = rq_put(m, "}");
  }
  q->content.len = q->reasoning.len = q->calls.len = 0;
  q->has_content = 0;
  q->n_reasoning = q->n_calls = 0;
  return rc ? RELAY_RESP_ENOMEM : 0;
}

static int rq_flush(rq_t *q) {
  int rc = rq_flush_system(q);
  return rc ? rc : rq_flush_assistant(q);
}

static int rq_start_assistant(rq_t *q) {
  int rc = rq_flush_system(q);
  q->pend = RQ_PEND_ASSISTANT;
  return rc;
}

/* ---- content parts ------------------------------------------------------- */

/* Append a text token's encoded body to the joined text (blank line between
 * parts) and, for user messages, as a text part. */
static int rq_text_part(rq_t *q, int tok, int want_parts) {
  if (q->text.len && relay_buf_append_str(&q->text, RQ_PART_SEP)) return RELAY_RESP_ENOMEM;
  if (relay_jdoc_copy_body(&q->d, tok, &q->text)) return RELAY_RESP_ENOMEM;
  if (!want_parts) return 0;
  relay_buf_t *p = &q->parts;
  if ((p->len && rq_put(p, ",")) || rq_put(p, "{\"type\":\"text\",\"text\":") || rq_put_str(q, p, tok) ||
      rq_put(p, "}"))
    return RELAY_RESP_ENOMEM;
  return 0;
}

/* input_image by URL (https or data:) as a chat image_url part. */
static int rq_image_part(rq_t *q, int part, const char *param) {
  relay_jdoc_t *d = &q->d;
  int url = relay_jdoc_get(d, part, "image_url"), detail = relay_jdoc_get(d, part, "detail");
  if (!relay_jdoc_is_string(d, url)) {
    if (!relay_jdoc_is_null(d, relay_jdoc_get(d, part, "file_id")))
      return relay_resp_req__fail(q, param, "input_image with file_id is not supported: the relay has no Files API; "
                                            "send the image as image_url (a URL or a data: URL)");
    return relay_resp_req__fail(q, param, "input_image needs image_url (a URL or a data: URL)");
  }
  relay_buf_t *p = &q->parts;
  if ((p->len && rq_put(p, ",")) || rq_put(p, "{\"type\":\"image_url\",\"image_url\":{\"url\":") ||
      rq_put_str(q, p, url))
    return RELAY_RESP_ENOMEM;
  if (relay_jdoc_is_string(d, detail) && (rq_put(p, ",\"detail\":") || rq_put_str(q, p, detail)))
    return RELAY_RESP_ENOMEM;
  return rq_put(p, "}}");
}

/* A message's content into q->text (and q->parts when images are allowed).
 * Returns the number of images, or a negative code. */
static int rq_content(rq_t *q, int c, size_t item, int allow_images) {
  relay_jdoc_t *d = &q->d;
  int images = 0, rc;
  q->text.len = q->parts.len = 0;
  if (relay_jdoc_is_null(d, c)) return 0;
  if (relay_jdoc_is_string(d, c)) return rq_text_part(q, c, allow_images);
  if (!relay_jdoc_is_array(d, c))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].content", item),
                                "message content must be a string or an array of parts");
  int p = c + 1;
  for (int k = 0; k < d->tok[c].size; k++, p = relay_jdoc_next(d, p)) {
    const char *param = relay_resp_req__param(q, "input[%zu].content[%d]", item, k);
    int type = relay_jdoc_get(d, p, "type");
    if (!relay_jdoc_is_object(d, p) || !relay_jdoc_is_string(d, type))
      return relay_resp_req__fail(q, param, "a content part must be an object with a type");
    if (relay_jdoc_str_is(d, type, "input_text") || relay_jdoc_str_is(d, type, "output_text") ||
        relay_jdoc_str_is(d, type, "text") || relay_jdoc_str_is(d, type, "refusal")) {
      int t = relay_jdoc_get(d, p, relay_jdoc_str_is(d, type, "refusal") ? "refusal" : "text");
      if (!relay_jdoc_is_string(d, t))
        return relay_resp_req__fail(q, param, "a %s part needs a string text", relay_resp_req__show(q, type));
      rc = rq_text_part(q, t, allow_images);
    } else if (relay_jdoc_str_is(d, type, "input_image")) {
      if (!allow_images) return relay_resp_req__fail(q, param, "input_image is only supported in user messages");
      rc = rq_image_part(q, p, param);
      images++;
    } else {
      return relay_resp_req__fail(q, param, "content part type %s is not supported", relay_resp_req__show(q, type));
    }
    if (rc) return rc;
  }
  return images;
}

/* ---- input items --------------------------------------------------------- */

static int rq_message(rq_t *q, int it, size_t item) {
  relay_jdoc_t *d = &q->d;
  int role = relay_jdoc_get(d, it, "role"), rc;
  const char *param = relay_resp_req__param(q, "input[%zu].role", item);
  if (!relay_jdoc_is_string(d, role)) return relay_resp_req__fail(q, param, "a message needs a role");
  int user = relay_jdoc_str_is(d, role, "user"), assistant = relay_jdoc_str_is(d, role, "assistant");
  int dev = relay_jdoc_str_is(d, role, "developer"), sys = relay_jdoc_str_is(d, role, "system");
  if (!user && !assistant && !dev && !sys)
    return relay_resp_req__fail(q, param, "message role %s is not supported (user, assistant, system, developer)",
                                relay_resp_req__show(q, role));
  int images = rq_content(q, relay_jdoc_get(d, it, "content"), item, user);
  if (images < 0) return images;
  if (user) {
    relay_buf_t *m = &q->msgs;
    if ((rc = rq_flush(q)) || (rc = rq_msg_open(q, "user"))) return rc;
    if (images) {
      if (rq_put(m, ",\"content\":[") || relay_buf_append(m, q->parts.data, q->parts.len) || rq_put(m, "]}"))
        return RELAY_RESP_ENOMEM;
      return 0;
    }
    if (rq_put(m, ",\"content\":\"") || relay_buf_append(m, q->text.data, q->text.len) || rq_put(m, "\"}"))
      return RELAY_RESP_ENOMEM;
    return 0;
  }
  if (assistant) {
    if (q->pend == RQ_PEND_ASSISTANT && (q->has_content || q->n_calls) && (rc = rq_flush_assistant(q)))
      return rc;
    if ((rc = rq_start_assistant(q))) return rc;
    q->has_content = 1;
    return relay_buf_append(&q->content, q->text.data, q->text.len) ? RELAY_RESP_ENOMEM : 0;
  }
  const char *as = dev ? q->dev_role : "system";
  if (q->pend == RQ_PEND_SYSTEM && strcmp(q->sys_role, as) != 0 && (rc = rq_flush_system(q))) return rc;
  if ((rc = rq_flush_assistant(q))) return rc;
  if (q->pend == RQ_PEND_SYSTEM && q->sys.len && relay_buf_append_str(&q->sys, RQ_PART_SEP))
    return RELAY_RESP_ENOMEM;
  q->pend = RQ_PEND_SYSTEM;
  q->sys_role = as;
  return relay_buf_append(&q->sys, q->text.data, q->text.len) ? RELAY_RESP_ENOMEM : 0;
}

/* The decoded name offered upstream for name (+ namespace) tokens, into
 * q->tmp; checks the length limit. */
int relay_resp_req__flat_name(rq_t *q, int ns, int name, const char *param) {
  q->tmp.len = 0;
  if (!relay_jdoc_is_string(&q->d, name)) return relay_resp_req__fail(q, param, "a tool name must be a string");
  if (relay_jdoc_is_string(&q->d, ns)) {
    if (relay_jdoc_decode(&q->d, ns, &q->tmp) || relay_buf_append_str(&q->tmp, RQ_NS_SEP))
      return RELAY_RESP_ENOMEM;
  }
  size_t before = q->tmp.len;
  if (relay_jdoc_decode(&q->d, name, &q->tmp)) return RELAY_RESP_ENOMEM;
  if (q->tmp.len == before) return relay_resp_req__fail(q, param, "a tool name must not be empty");
  if (q->tmp.len > RELAY_RESP_MAX_NAME)
    return relay_resp_req__fail(q, param, "tool name %s is longer than %d bytes", relay_resp_req__show(q, name),
                                RELAY_RESP_MAX_NAME);
  return 0;
}

/* function_call / custom_tool_call: one more entry of the assistant turn's
 * tool_calls. A custom call's raw input becomes {"input": ...}, which is
 * encoded once more as the arguments string. */
static int rq_tool_call(rq_t *q, int it, size_t item, int custom) {
  relay_jdoc_t *d = &q->d;
  int name = relay_jdoc_get(d, it, "name"), ns = relay_jdoc_get(d, it, "namespace");
  int call_id = relay_jdoc_get(d, it, "call_id");
  int payload = relay_jdoc_get(d, it, custom ? "input" : "arguments");
  int rc;
  if (!relay_jdoc_is_string(d, call_id))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].call_id", item),
                                "a tool call needs a string call_id");
  if (!relay_jdoc_is_string(d, payload))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].%s", item, custom ? "input" : "arguments"),
                                "%s needs a string %s", custom ? "custom_tool_call" : "function_call",
                                custom ? "input" : "arguments");
  if (!relay_jdoc_is_null(d, ns) && !relay_jdoc_is_string(d, ns))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].namespace", item),
                                "namespace must be a string");
  if ((rc = relay_resp_req__flat_name(q, ns, name, relay_resp_req__param(q, "input[%zu].name", item)))) return rc;
  if (q->pend != RQ_PEND_ASSISTANT && (rc = rq_start_assistant(q))) return rc;
  relay_buf_t *c = &q->calls;
  q->r->n_tool_calls++;
  if ((q->n_calls++ && rq_put(c, ",")) || rq_put(c, "{\"id\":") || rq_put_str(q, c, call_id) ||
      rq_put(c, ",\"type\":\"function\",\"function\":{\"name\":") || rq_put_escaped(c, q->tmp.data, q->tmp.len) ||
      rq_put(c, ",\"arguments\":"))
    return RELAY_RESP_ENOMEM;
  if (!custom) rc = rq_put_str(q, c, payload);
  else {
    q->text.len = 0;
    rc = rq_put(&q->text, "{\"input\":\"") || relay_jdoc_copy_body(d, payload, &q->text) || rq_put(&q->text, "\"}") ||
         rq_put_escaped(c, q->text.data, q->text.len);
  }
  return rc || rq_put(c, "}}") ? RELAY_RESP_ENOMEM : 0;
}

/* A tool result as a tool message. An array output keeps its text parts;
 * chat tool messages cannot carry images, so those become a note. */
static int rq_tool_output(rq_t *q, int it, size_t item) {
  relay_jdoc_t *d = &q->d;
  int call_id = relay_jdoc_get(d, it, "call_id"), out = relay_jdoc_get(d, it, "output"), rc;
  if (!relay_jdoc_is_string(d, call_id))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].call_id", item),
                                "a tool output needs a string call_id");
  q->text.len = 0;
  if (relay_jdoc_is_string(d, out)) {
    if (relay_jdoc_copy_body(d, out, &q->text)) return RELAY_RESP_ENOMEM;
  } else if (relay_jdoc_is_array(d, out)) {
    int p = out + 1;
    for (int k = 0; k < d->tok[out].size; k++, p = relay_jdoc_next(d, p)) {
      int type = relay_jdoc_get(d, p, "type"), t = relay_jdoc_get(d, p, "text");
      if (q->text.len && rq_put(&q->text, RQ_PART_SEP)) return RELAY_RESP_ENOMEM;
      if (relay_jdoc_is_string(d, t) &&
          (relay_jdoc_str_is(d, type, "input_text") || relay_jdoc_str_is(d, type, "output_text") ||
           relay_jdoc_str_is(d, type, "text"))) {
        if (relay_jdoc_copy_body(d, t, &q->text)) return RELAY_RESP_ENOMEM;
      } else if (relay_jdoc_str_is(d, type, "input_image") || relay_jdoc_str_is(d, type, "input_file")) {
        if (rq_put(&q->text, RQ_IMAGE_NOTE) ||
            relay_resp_req__note(q, "image or file in tool output replaced by a note", -1))
          return RELAY_RESP_ENOMEM;
      } else {
        return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].output[%d]", item, k),
                                    "tool output part type %s is not supported", relay_resp_req__show(q, type));
      }
    }
  } else if (!relay_jdoc_is_null(d, out)) {
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].output", item),
                                "tool output must be a string or an array of parts");
  }
  relay_buf_t *m = &q->msgs;
  if ((rc = rq_flush(q)) || (rc = rq_msg_open(q, "tool"))) return rc;
  if (rq_put(m, ",\"tool_call_id\":") || rq_put_str(q, m, call_id) || rq_put(m, ",\"content\":\"") ||
      relay_buf_append(m, q->text.data, q->text.len) || rq_put(m, "\"}"))
    return RELAY_RESP_ENOMEM;
  return 0;
}

/* The text parts of a reasoning item's array (content or summary), joined. */
static int rq_reasoning_parts(rq_t *q, int arr, const char *type_name, size_t item, const char *member) {
  relay_jdoc_t *d = &q->d;
  if (relay_jdoc_is_null(d, arr)) return 0;
  if (!relay_jdoc_is_array(d, arr))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].%s", item, member),
                                "reasoning %s must be an array", member);
  int p = arr + 1;
  for (int k = 0; k < d->tok[arr].size; k++, p = relay_jdoc_next(d, p)) {
    int type = relay_jdoc_get(d, p, "type"), t = relay_jdoc_get(d, p, "text");
    if (!relay_jdoc_str_is(d, type, type_name) || !relay_jdoc_is_string(d, t))
      return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].%s[%d]", item, member, k),
                                  "a reasoning %s part must be {\"type\":\"%s\",\"text\":...}", member, type_name);
    if (q->text.len && rq_put(&q->text, "\\n")) return RELAY_RESP_ENOMEM;
    if (relay_jdoc_copy_body(d, t, &q->text)) return RELAY_RESP_ENOMEM;
  }
  return 0;
}

/* A reasoning item: its text goes with the next assistant message. */
static int rq_reasoning(rq_t *q, int it, size_t item) {
  relay_jdoc_t *d = &q->d;
  int rc;
  q->text.len = 0;
  if ((rc = rq_reasoning_parts(q, relay_jdoc_get(d, it, "content"), "reasoning_text", item, "content")))
    return rc;
  if (!q->text.len &&
      (rc = rq_reasoning_parts(q, relay_jdoc_get(d, it, "summary"), "summary_text", item, "summary")))
    return rc;
  if (!q->text.len || !*q->rfield) {
    q->r->n_reasoning_dropped++;
    return 0;
  }
  if (q->pend == RQ_PEND_ASSISTANT && (q->has_content || q->n_calls) && (rc = rq_flush_assistant(q)))
    return rc;
  if (q->pend != RQ_PEND_ASSISTANT && (rc = rq_start_assistant(q))) return rc;
  if ((q->reasoning.len && rq_put(&q->reasoning, "\\n")) ||
      relay_buf_append(&q->reasoning, q->text.data, q->text.len))
    return RELAY_RESP_ENOMEM;
  q->n_reasoning++;
  return 0;
}

static int rq_item(rq_t *q, int it, size_t item) {
  relay_jdoc_t *d = &q->d;
  if (!relay_jdoc_is_object(d, it))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu]", item), "an input item must be an object");
  int type = relay_jdoc_get(d, it, "type");
  q->r->n_items++;
  if (type < 0 && relay_jdoc_get(d, it, "role") >= 0) return rq_message(q, it, item);
  if (!relay_jdoc_is_string(d, type))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].type", item), "an input item needs a type");
  if (relay_jdoc_str_is(d, type, "message")) return rq_message(q, it, item);
  if (relay_jdoc_str_is(d, type, "function_call")) return rq_tool_call(q, it, item, 0);
  if (relay_jdoc_str_is(d, type, "custom_tool_call")) return rq_tool_call(q, it, item, 1);
  if (relay_jdoc_str_is(d, type, "function_call_output") || relay_jdoc_str_is(d, type, "custom_tool_call_output"))
    return rq_tool_output(q, it, item);
  if (relay_jdoc_str_is(d, type, "reasoning")) return rq_reasoning(q, it, item);
  if (relay_jdoc_str_is(d, type, "item_reference"))
    return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].type", item),
                                "item_reference is not supported: oss-relay is stateless; send the items themselves");
  return relay_resp_req__fail(q, relay_resp_req__param(q, "input[%zu].type", item),
                              "input item type %s is not supported", relay_resp_req__show(q, type));
}

static int rq_input(rq_t *q, int input) {
  relay_jdoc_t *d = &q->d;
  int rc;
  if (relay_jdoc_is_string(d, input)) {
    if ((rc = rq_flush(q)) || (rc = rq_msg_open(q, "user"))) return rc;
    if (rq_put(&q->msgs, ",\"content\":") || rq_put_str(q, &q->msgs, input) || rq_put(&q->msgs, "}"))
      return RELAY_RESP_ENOMEM;
    return 0;
  }
  if (relay_jdoc_is_null(d, input)) return 0;
  if (!relay_jdoc_is_array(d, input))
    return relay_resp_req__fail(q, "input", "input must be a string or an array of items");
  int it = input + 1;
  for (int k = 0; k < d->tok[input].size; k++, it = relay_jdoc_next(d, it))
    if ((rc = rq_item(q, it, (size_t)k))) return rc;
  return 0;
}

/* ---- top level ----------------------------------------------------------- */

/* Record the known members, note the unknown ones; the last of a repeated
 * key counts. */
static int rq_walk_top(rq_t *q, rq_top_t *t) {
  static const char *const ignored[] = {"store", "include", "prompt_cache_key", "client_metadata", "metadata",
                                        "user", "service_tier", "truncation", "stream_options", "safety_identifier",
                                        "prompt_cache_retention"};
  relay_jdoc_t *d = &q->d;
  int *slot[] = {&t->model, &t->input, &t->instructions, &t->tools, &t->tool_choice, &t->parallel,
                 &t->reasoning, &t->max_output, &t->temperature, &t->top_p, &t->stream, &t->text,
                 &t->previous, &t->conversation, &t->background, &t->prompt};
  static const char *const names[] = {"model", "input", "instructions", "tools", "tool_choice",
                                      "parallel_tool_calls", "reasoning", "max_output_tokens", "temperature",
                                      "top_p", "stream", "text", "previous_response_id", "conversation",
                                      "background", "prompt"};
  for (size_t i = 0; i < sizeof slot / sizeof slot[0]; i++) *slot[i] = -1;
  int k = 1;
  for (int m = 0; m < d->tok[0].size; m++, k = relay_jdoc_next(d, k + 1)) {
    size_t i;
    for (i = 0; i < sizeof names / sizeof names[0]; i++)
      if (relay_jdoc_str_is(d, k, names[i])) {
        *slot[i] = k + 1;
        break;
      }
    if (i < sizeof names / sizeof names[0]) continue;
    for (i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
      if (relay_jdoc_str_is(d, k, ignored[i])) break;
    if (i == sizeof ignored / sizeof ignored[0] && relay_resp_req__note(q, "ignored member", k))
      return RELAY_RESP_ENOMEM;
  }
  return 0;
}

static int rq_stateless(rq_t *q, const rq_top_t *t) {
  relay_jdoc_t *d = &q->d;
  if (!relay_jdoc_is_null(d, t->previous))
    return relay_resp_req__fail(q, "previous_response_id",
                                "previous_response_id is not supported: oss-relay is stateless and stores no "
                                "responses; send the whole conversation in input");
  if (!relay_jdoc_is_null(d, t->conversation))
    return relay_resp_req__fail(q, "conversation",
                                "conversation is not supported: oss-relay is stateless; send the whole "
                                "conversation in input");
  if (t->background >= 0 && !relay_jdoc_is_null(d, t->background) &&
      (!relay_jdoc_is_bool(d, t->background) || relay_jdoc_is_true(d, t->background)))
    return relay_resp_req__fail(q, "background", "background responses are not supported: oss-relay is stateless");
  if (!relay_jdoc_is_null(d, t->prompt))
    return relay_resp_req__fail(q, "prompt",
                                "stored prompts are not supported: oss-relay is stateless; send the text in input");
  return 0;
}

/* Scalars: checked, echoed into the state, and written as chat members. */
static int rq_scalars(rq_t *q, const rq_top_t *t, relay_buf_t *o) {
  relay_jdoc_t *d = &q->d;
  relay_resp_req_t *r = q->r;
  int64_t n;
  if (!relay_jdoc_is_null(d, t->stream) && !relay_jdoc_is_bool(d, t->stream))
    return relay_resp_req__fail(q, "stream", "stream must be a boolean");
  r->stream = relay_jdoc_is_true(d, t->stream);
  if (!relay_jdoc_is_null(d, t->parallel) && !relay_jdoc_is_bool(d, t->parallel))
    return relay_resp_req__fail(q, "parallel_tool_calls", "parallel_tool_calls must be a boolean");
  if (!relay_jdoc_is_null(d, t->parallel)) r->parallel_tool_calls = relay_jdoc_is_true(d, t->parallel);
  if (!relay_jdoc_is_null(d, t->temperature) && !relay_jdoc_is_number(d, t->temperature))
    return relay_resp_req__fail(q, "temperature", "temperature must be a number");
  if (!relay_jdoc_is_null(d, t->top_p) && !relay_jdoc_is_number(d, t->top_p))
    return relay_resp_req__fail(q, "top_p", "top_p must be a number");
  if (!relay_jdoc_is_null(d, t->max_output) && (relay_jdoc_int(d, t->max_output, &n) || n < 1))
    return relay_resp_req__fail(q, "max_output_tokens", "max_output_tokens must be a positive integer");
  if (!relay_jdoc_is_null(d, t->reasoning) && !relay_jdoc_is_object(d, t->reasoning))
    return relay_resp_req__fail(q, "reasoning", "reasoning must be an object");
  int effort = relay_jdoc_get(d, t->reasoning, "effort");
  if (!relay_jdoc_is_null(d, effort) && !relay_jdoc_is_string(d, effort))
    return relay_resp_req__fail(q, "reasoning.effort", "reasoning.effort must be a string");
  if (!relay_jdoc_is_null(d, effort) && (rq_put(o, ",\"reasoning_effort\":") || rq_put_str(q, o, effort)))
    return RELAY_RESP_ENOMEM;
  if (!relay_jdoc_is_null(d, t->max_output) &&
      (rq_put(o, ",\"max_tokens\":") || rq_put_raw(q, o, t->max_output) || rq_put_raw(q, &r->max_output_tokens, t->max_output)))
    return RELAY_RESP_ENOMEM;
  if (!relay_jdoc_is_null(d, t->temperature) &&
      (rq_put(o, ",\"temperature\":") || rq_put_raw(q, o, t->temperature) || rq_put_raw(q, &r->temperature, t->temperature)))
    return RELAY_RESP_ENOMEM;
  if (!relay_jdoc_is_null(d, t->top_p) &&
      (rq_put(o, ",\"top_p\":") || rq_put_raw(q, o, t->top_p) || rq_put_raw(q, &r->top_p, t->top_p)))
    return RELAY_RESP_ENOMEM;
  return 0;
}

/* text.format as response_format; text.verbosity is ignored. */
static int rq_text_format(rq_t *q, int text, relay_buf_t *o) {
  relay_jdoc_t *d = &q->d;
  if (relay_jdoc_is_null(d, text)) return 0;
  if (!relay_jdoc_is_object(d, text)) return relay_resp_req__fail(q, "text", "text must be an object");
  int f = relay_jdoc_get(d, text, "format");
  if (relay_jdoc_is_null(d, f)) return 0;
  int type = relay_jdoc_get(d, f, "type");
  if (!relay_jdoc_is_object(d, f) || !relay_jdoc_is_string(d, type))
    return relay_resp_req__fail(q, "text.format", "text.format must be an object with a type");
  if (relay_jdoc_str_is(d, type, "text")) return 0;
  if (relay_jdoc_str_is(d, type, "json_object")) return rq_put(o, ",\"response_format\":{\"type\":\"json_object\"}");
  if (!relay_jdoc_str_is(d, type, "json_schema"))
    return relay_resp_req__fail(q, "text.format.type", "text.format type %s is not supported",
                                relay_resp_req__show(q, type));
  int name = relay_jdoc_get(d, f, "name"), schema = relay_jdoc_get(d, f, "schema");
  int desc = relay_jdoc_get(d, f, "description"), strict = relay_jdoc_get(d, f, "strict");
  if (!relay_jdoc_is_string(d, name) || !relay_jdoc_is_object(d, schema))
    return relay_resp_req__fail(q, "text.format", "a json_schema format needs a string name and an object schema");
  if (rq_put(o, ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":") ||
      rq_put_str(q, o, name) || rq_put(o, ",\"schema\":") || rq_put_raw(q, o, schema))
    return RELAY_RESP_ENOMEM;
  if (relay_jdoc_is_string(d, desc) && (rq_put(o, ",\"description\":") || rq_put_str(q, o, desc)))
    return RELAY_RESP_ENOMEM;
  if (relay_jdoc_is_bool(d, strict) && (rq_put(o, ",\"strict\":") || rq_put_raw(q, o, strict)))
    return RELAY_RESP_ENOMEM;
  return rq_put(o, "}}");
}

/* Everything but the messages, tools and tool choice, which come first. */
static int rq_translate(rq_t *q, relay_buf_t *out) {
  relay_jdoc_t *d = &q->d;
  relay_resp_req_t *r = q->r;
  rq_top_t t;
  relay_buf_t tools, choice, tail;
  int rc;
  relay_buf_init(&tools);
  relay_buf_init(&choice);
  relay_buf_init(&tail);
  if ((rc = rq_walk_top(q, &t)) || (rc = rq_stateless(q, &t))) goto done;
  if (!relay_jdoc_is_null(d, t.model) && !relay_jdoc_is_string(d, t.model)) {
    rc = relay_resp_req__fail(q, "model", "model must be a string");
    goto done;
  }
  if (relay_jdoc_is_string(d, t.model) && relay_jdoc_copy_body(d, t.model, &r->model)) {
    rc = RELAY_RESP_ENOMEM;
    goto done;
  }
  if (!relay_jdoc_is_null(d, t.instructions) && !relay_jdoc_is_string(d, t.instructions)) {
    rc = relay_resp_req__fail(q, "instructions", "instructions must be a string");
    goto done;
  }
  if ((rc = rq_scalars(q, &t, &tail)) || (rc = rq_text_format(q, t.text, &tail))) goto done;
  if ((rc = relay_resp_req__tools(q, t.tools, &tools)) || (rc = relay_resp_req__sort_tools(q)) ||
      (rc = relay_resp_req__tool_choice(q, t.tool_choice, &choice)))
    goto done;
  size_t ilen = 0;
  if (relay_jdoc_is_string(d, t.instructions)) relay_jdoc_body(d, t.instructions, &ilen);
  if (ilen) {
    q->pend = RQ_PEND_SYSTEM;
    q->sys_role = q->dev_role;
    if (relay_jdoc_copy_body(d, t.instructions, &q->sys)) {
      rc = RELAY_RESP_ENOMEM;
      goto done;
    }
  }
  if ((rc = rq_input(q, t.input)) || (rc = rq_flush(q))) goto done;
  if (!r->n_messages) {
    rc = relay_resp_req__fail(q, "input", "the request has no input");
    goto done;
  }
  rc = RELAY_RESP_ENOMEM;
  if (rq_put(out, "{")) goto done;
  if (relay_jdoc_is_string(d, t.model) && (rq_put(out, "\"model\":") || rq_put_str(q, out, t.model) || rq_put(out, ",")))
    goto done;
  if (rq_put(out, "\"messages\":[") || relay_buf_append(out, q->msgs.data, q->msgs.len) || rq_put(out, "]")) goto done;
  if (tools.len) {
    if (rq_put(out, ",\"tools\":[") || relay_buf_append(out, tools.data, tools.len) || rq_put(out, "]")) goto done;
    if (choice.len && (rq_put(out, ",\"tool_choice\":") || relay_buf_append(out, choice.data, choice.len))) goto done;
    if (!relay_jdoc_is_null(d, t.parallel) && (rq_put(out, ",\"parallel_tool_calls\":") || rq_put_raw(q, out, t.parallel)))
      goto done;
  }
  if (relay_buf_append(out, tail.data, tail.len)) goto done;
  if (r->stream && rq_put(out, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}")) goto done;
  if (!r->stream && rq_put(out, ",\"stream\":false")) goto done;
  if (rq_put(out, "}")) goto done;
  rc = 0;
done:
  relay_buf_dispose(&tools);
  relay_buf_dispose(&choice);
  relay_buf_dispose(&tail);
  return rc;
}

int relay_resp_req_translate(relay_resp_req_t *r, const relay_resp_req_opts_t *opts, const char *body, size_t len,
                             relay_buf_t *out) {
  rq_t q;
  memset(&q, 0, sizeof q);
  q.r = r;
  q.rfield = opts && opts->reasoning_field ? opts->reasoning_field : "reasoning_content";
  q.dev_role = opts && opts->developer_role && *opts->developer_role ? opts->developer_role : "system";
  relay_jdoc_init(&q.d);
  relay_buf_init(&q.msgs);
  relay_buf_init(&q.sys);
  relay_buf_init(&q.content);
  relay_buf_init(&q.reasoning);
  relay_buf_init(&q.calls);
  relay_buf_init(&q.tmp);
  relay_buf_init(&q.text);
  relay_buf_init(&q.parts);
  size_t old = out->len;
  int rc = relay_jdoc_parse(&q.d, body, len, RELAY_RESP_MAX_TOKENS);
  if (rc == RELAY_ENOMEM) rc = RELAY_RESP_ENOMEM;
  else if (rc == RELAY_ETOOMANY)
    rc = relay_resp_req__fail(&q, NULL, "the request body has more than %d JSON values", RELAY_RESP_MAX_TOKENS);
  else if (rc == RELAY_ETOODEEP)
    rc = relay_resp_req__fail(&q, NULL, "the request body is nested more than %d deep", RELAY_JSON_MAX_NESTING);
  else if (rc)
    rc = relay_resp_req__fail(&q, NULL, "the request body is not valid JSON");
  else if (!relay_jdoc_is_object(&q.d, 0))
    rc = relay_resp_req__fail(&q, NULL, "the request body must be a JSON object");
  else
    rc = rq_translate(&q, out);
  if (rc) out->len = old;
  if (!r->tool_choice.len && relay_buf_append_str(&r->tool_choice, "\"auto\"") && !rc) rc = RELAY_RESP_ENOMEM;
  relay_jdoc_dispose(&q.d);
  relay_buf_dispose(&q.msgs);
  relay_buf_dispose(&q.sys);
  relay_buf_dispose(&q.content);
  relay_buf_dispose(&q.reasoning);
  relay_buf_dispose(&q.calls);
  relay_buf_dispose(&q.tmp);
  relay_buf_dispose(&q.text);
  relay_buf_dispose(&q.parts);
  return rc;
}

const relay_resp_tool_t *relay_resp_req_tool(const relay_resp_req_t *r, const char *chat_name, size_t len) {
  size_t lo = 0, hi = r->ntools;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const relay_resp_tool_t *t = &r->tools[mid];
    int c = rq_name_cmp(r->names.data + t->chat_off, t->chat_len, chat_name, len);
    if (c == 0) return t;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

const char *relay_resp_req_name(const relay_resp_req_t *r, size_t off) {
  return r->names.data ? r->names.data + off : "";
}

int relay_resp_error_json(relay_buf_t *out, const char *message, size_t message_len, const char *type,
                          const char *param, const char *code) {
  size_t old = out->len;
  int rc = rq_put(out, "{\"error\":{\"message\":") || rq_put_escaped(out, message, message_len) ||
           rq_put(out, ",\"type\":") ||
           rq_put_escaped(out, type ? type : "invalid_request_error", strlen(type ? type : "invalid_request_error")) ||
           rq_put(out, ",\"param\":");
  if (!rc) rc = param && *param ? rq_put_escaped(out, param, strlen(param)) : rq_put(out, "null");
  if (!rc) rc = rq_put(out, ",\"code\":");
  if (!rc) rc = code ? rq_put_escaped(out, code, strlen(code)) : rq_put(out, "null");
  if (!rc) rc = rq_put(out, "}}");
  if (rc) out->len = old;
  return rc ? RELAY_RESP_ENOMEM : 0;
}

int relay_resp_req_error_json(const relay_resp_req_t *r, relay_buf_t *out) {
  return relay_resp_error_json(out, r->err_message, strlen(r->err_message), "invalid_request_error",
                               r->err_param, NULL);
}
