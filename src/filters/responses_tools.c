/* The tools of a Responses request (responses_request.c translates the
 * rest): tools[] as chat function tools (namespaces flattened, freeform
 * tools offered as a function with one string argument, hosted tools left
 * out and noted), the map of the names offered upstream, sorted for
 * relay_resp_req_tool(), and tool_choice in the chat form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jdoc.h"
#include "responses_request.h"
#include "responses_request_internal.h"

/* ---- tools --------------------------------------------------------------- */

/* Remember a tool offered upstream: its flattened name is in q->tmp. */
static int rq_map_tool(rq_t *q, int ns, int name, relay_resp_tool_kind_t kind, const char *param) {
  relay_resp_req_t *r = q->r;
  if (r->ntools >= RELAY_RESP_MAX_TOOLS)
    return relay_resp_req__fail(q, param, "more than %d tools", RELAY_RESP_MAX_TOOLS);
  if (r->ntools % 16 == 0) {
    relay_resp_tool_t *t = realloc(r->tools, (r->ntools + 16) * sizeof *t);
    if (!t) return RELAY_RESP_ENOMEM;
    r->tools = t;
  }
  relay_resp_tool_t *t = &r->tools[r->ntools++];
  memset(t, 0, sizeof *t);
  t->kind = kind;
  t->chat_off = r->names.len;
  t->chat_len = q->tmp.len;
  if (relay_buf_append(&r->names, q->tmp.data, q->tmp.len)) return RELAY_RESP_ENOMEM;
  t->name_off = t->chat_off;
  t->name_len = t->chat_len;
  if (relay_jdoc_is_string(&q->d, ns)) {
    t->ns_off = r->names.len;
    if (relay_jdoc_decode(&q->d, ns, &r->names)) return RELAY_RESP_ENOMEM;
    t->ns_len = r->names.len - t->ns_off;
    t->name_off = r->names.len;
    if (relay_jdoc_decode(&q->d, name, &r->names)) return RELAY_RESP_ENOMEM;
    t->name_len = r->names.len - t->name_off;
  }
  return 0;
}

/* The parameters of a freeform tool: one string, described with the
 * tool's grammar so that the model can still follow it. */
static int rq_custom_params(rq_t *q, relay_buf_t *b, int tool, const char *param) {
  relay_jdoc_t *d = &q->d;
  int fmt = relay_jdoc_get(d, tool, "format");
  if (rq_put(b, ",\"parameters\":{\"type\":\"object\",\"properties\":{\"input\":{\"type\":\"string\","
                "\"description\":\"The raw input text of this freeform tool (not JSON)."))
    return RELAY_RESP_ENOMEM;
  if (!relay_jdoc_is_null(d, fmt)) {
    int ft = relay_jdoc_get(d, fmt, "type");
    if (!relay_jdoc_is_object(d, fmt) || !relay_jdoc_is_string(d, ft))
      return relay_resp_req__fail(q, param, "a custom tool's format must be an object with a type");
    if (relay_jdoc_str_is(d, ft, "grammar")) {
      int syn = relay_jdoc_get(d, fmt, "syntax"), def = relay_jdoc_get(d, fmt, "definition");
      if (!relay_jdoc_is_string(d, def))
        return relay_resp_req__fail(q, param, "a grammar format needs a string definition");
      if (rq_put(b, " It must follow this ")) return RELAY_RESP_ENOMEM;
      if (relay_jdoc_is_string(d, syn) && (relay_jdoc_copy_body(d, syn, b) || rq_put(b, " ")))
        return RELAY_RESP_ENOMEM;
      if (rq_put(b, "grammar:\\n") || relay_jdoc_copy_body(d, def, b)) return RELAY_RESP_ENOMEM;
    } else if (!relay_jdoc_str_is(d, ft, "text")) {
      return relay_resp_req__fail(q, param, "custom tool format type %s is not supported", relay_resp_req__show(q, ft));
    }
  }
  return rq_put(b, "\"}},\"required\":[\"input\"],\"additionalProperties\":false}");
}

/* A function or custom tool (ns: its namespace token, or -1) as a chat
 * function tool. */
static int rq_tool_fn(rq_t *q, relay_buf_t *b, int tool, int ns, int custom, const char *param) {
  relay_jdoc_t *d = &q->d;
  int name = relay_jdoc_get(d, tool, "name"), desc = relay_jdoc_get(d, tool, "description");
  int params = relay_jdoc_get(d, tool, "parameters"), strict = relay_jdoc_get(d, tool, "strict");
  int rc = relay_resp_req__flat_name(q, ns, name, param);
  if (rc) return rc;
  if (!relay_jdoc_is_null(d, desc) && !relay_jdoc_is_string(d, desc))
    return relay_resp_req__fail(q, param, "a tool description must be a string");
  if (!custom && !relay_jdoc_is_null(d, params) && !relay_jdoc_is_object(d, params))
    return relay_resp_req__fail(q, param, "a function's parameters must be an object");
  if (!custom && !relay_jdoc_is_null(d, strict) && !relay_jdoc_is_bool(d, strict))
    return relay_resp_req__fail(q, param, "strict must be a boolean");
  if ((b->len && rq_put(b, ",")) || rq_put(b, "{\"type\":\"function\",\"function\":{\"name\":") ||
      rq_put_escaped(b, q->tmp.data, q->tmp.len))
    return RELAY_RESP_ENOMEM;
  if (relay_jdoc_is_string(d, desc) && (rq_put(b, ",\"description\":") || rq_put_str(q, b, desc)))
    return RELAY_RESP_ENOMEM;
  if (custom) rc = rq_custom_params(q, b, tool, param);
  else if (relay_jdoc_is_object(d, params)) rc = rq_put(b, ",\"parameters\":") || rq_put_raw(q, b, params);
  else rc = rq_put(b, ",\"parameters\":{\"type\":\"object\",\"properties\":{}}");
  if (rc) return rc < 0 ? rc : RELAY_RESP_ENOMEM;
  if (!custom && relay_jdoc_is_bool(d, strict) && (rq_put(b, ",\"strict\":") || rq_put_raw(q, b, strict)))
    return RELAY_RESP_ENOMEM;
  if (rq_put(b, "}}")) return RELAY_RESP_ENOMEM;
  return rq_map_tool(q, ns, name, custom ? RELAY_RESP_TOOL_CUSTOM : RELAY_RESP_TOOL_FUNCTION, param);
}

/* One entry of tools[] (ns >= 0: inside that namespace). Hosted and
 * unknown tool types are left out and noted. */
static int rq_tool(rq_t *q, relay_buf_t *b, int tool, int ns, const char *param) {
  relay_jdoc_t *d = &q->d;
  int type = relay_jdoc_get(d, tool, "type");
  if (!relay_jdoc_is_object(d, tool) || !relay_jdoc_is_string(d, type))
    return relay_resp_req__fail(q, param, "a tool must be an object with a type");
  if (relay_jdoc_str_is(d, type, "function")) return rq_tool_fn(q, b, tool, ns, 0, param);
  if (relay_jdoc_str_is(d, type, "custom")) return rq_tool_fn(q, b, tool, ns, 1, param);
  if (relay_jdoc_str_is(d, type, "namespace")) {
    int name = relay_jdoc_get(d, tool, "name"), list = relay_jdoc_get(d, tool, "tools");
    if (ns >= 0) return relay_resp_req__fail(q, param, "namespaces cannot be nested");
    if (!relay_jdoc_is_string(d, name)) return relay_resp_req__fail(q, param, "a namespace needs a string name");
    if (!relay_jdoc_is_array(d, list)) return relay_resp_req__fail(q, param, "a namespace needs a tools array");
    char inner[96];
    int t = list + 1, rc;
    for (int k = 0; k < d->tok[list].size; k++, t = relay_jdoc_next(d, t)) {
      snprintf(inner, sizeof inner, "%s.tools[%d]", param, k);
      if ((rc = rq_tool(q, b, t, name, inner))) return rc;
    }
    return 0;
  }
  q->r->n_dropped_tools++;
  return relay_resp_req__note(q, "dropped tool", type);
}

int relay_resp_req__tools(rq_t *q, int tools, relay_buf_t *b) {
  relay_jdoc_t *d = &q->d;
  if (relay_jdoc_is_null(d, tools)) return 0;
  if (!relay_jdoc_is_array(d, tools)) return relay_resp_req__fail(q, "tools", "tools must be an array");
  int t = tools + 1, rc;
  for (int k = 0; k < d->tok[tools].size; k++, t = relay_jdoc_next(d, t))
    if ((rc = rq_tool(q, b, t, -1, relay_resp_req__param(q, "tools[%d]", k)))) return rc;
  return 0;
}

typedef struct rq_sort_s {
  const char *name;
  size_t len;
  relay_resp_tool_t tool;
} rq_sort_t;

static int rq_sort_cmp(const void *pa, const void *pb) {
  const rq_sort_t *a = pa, *b = pb;
  return rq_name_cmp(a->name, a->len, b->name, b->len);
}

/* Sort the map by upstream name for relay_resp_req_tool(); two tools with
 * one upstream name could not be told apart, so that is refused. */
int relay_resp_req__sort_tools(rq_t *q) {
  relay_resp_req_t *r = q->r;
  if (r->ntools < 2) return 0;
  rq_sort_t *s = malloc(r->ntools * sizeof *s);
  if (!s) return RELAY_RESP_ENOMEM;
  for (size_t i = 0; i < r->ntools; i++) {
    s[i].name = r->names.data + r->tools[i].chat_off;
    s[i].len = r->tools[i].chat_len;
    s[i].tool = r->tools[i];
  }
  qsort(s, r->ntools, sizeof *s, rq_sort_cmp);
  int rc = 0;
  for (size_t i = 0; i < r->ntools; i++) {
    r->tools[i] = s[i].tool;
    if (i && rc == 0 && rq_sort_cmp(&s[i - 1], &s[i]) == 0)
      rc = relay_resp_req__fail(q, "tools", "tool name %.*s is offered twice", (int)(s[i].len > 64 ? 64 : s[i].len),
                                s[i].name);
  }
  free(s);
  return rc;
}

/* tool_choice in the chat form; the request's own form is kept to echo. */
int relay_resp_req__tool_choice(rq_t *q, int tc, relay_buf_t *b) {
  relay_jdoc_t *d = &q->d;
  if (relay_jdoc_is_null(d, tc)) return 0;
  if (rq_put_raw(q, &q->r->tool_choice, tc)) return RELAY_RESP_ENOMEM;
  if (relay_jdoc_is_string(d, tc)) {
    if (!relay_jdoc_str_is(d, tc, "auto") && !relay_jdoc_str_is(d, tc, "none") && !relay_jdoc_str_is(d, tc, "required"))
      return relay_resp_req__fail(q, "tool_choice", "tool_choice %s is not supported (auto, none, required)",
                                  relay_resp_req__show(q, tc));
    return rq_put_raw(q, b, tc);
  }
  int type = relay_jdoc_get(d, tc, "type");
  if (!relay_jdoc_is_object(d, tc) || !relay_jdoc_is_string(d, type))
    return relay_resp_req__fail(q, "tool_choice", "tool_choice must be a string or an object with a type");
  if (!relay_jdoc_str_is(d, type, "function") && !relay_jdoc_str_is(d, type, "custom"))
    return relay_resp_req__fail(q, "tool_choice",
                                "tool_choice type %s is not supported (function, custom; hosted tools are not "
                                "offered upstream)", relay_resp_req__show(q, type));
  int ns = relay_jdoc_get(d, tc, "namespace");
  if (!relay_jdoc_is_null(d, ns) && !relay_jdoc_is_string(d, ns))
    return relay_resp_req__fail(q, "tool_choice.namespace", "namespace must be a string");
  int rc = relay_resp_req__flat_name(q, ns, relay_jdoc_get(d, tc, "name"), "tool_choice.name");
  if (rc) return rc;
  if (rq_put(b, "{\"type\":\"function\",\"function\":{\"name\":") || rq_put_escaped(b, q->tmp.data, q->tmp.len) ||
      rq_put(b, "}}"))
    return RELAY_RESP_ENOMEM;
  return 0;
}
