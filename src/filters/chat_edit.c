/* The edits of the chat rewrite (chat.c): what a choice's new text does to
 * the upstream's document. Values replaced in place, reasoning members
 * removed with one separator, missing members inserted, tool_calls entries
 * appended, finish_reason set; the edits are recorded per document and
 * applied in one pass that copies every other byte as it came.
 */
#include "chat_internal.h"

#include <stdlib.h>
#include <string.h>

#include "relay/json_splice.h"

static void put_json_string(relay_chat_t *chat, relay_buf_t *b, const char *s, size_t len) {
  chat_put(chat, b, "\"", 1);
  if (relay_json_escape(b, s ? s : "", len)) chat->broken = 1;
  chat_put(chat, b, "\"", 1);
}

/* "name": for a configured field name. */
static void put_key(relay_chat_t *chat, relay_buf_t *b, const char *name) {
  chat_put(chat, b, "\"", 1);
  chat_put_str(chat, b, name);
  chat_put(chat, b, "\":", 2);
}

/* ---- edits of the document --------------------------------------------- */

/* Record that [start, end) becomes the bytes appended to edits_buf since off. */
static void edit_add(relay_chat_t *chat, size_t start, size_t end, size_t off) {
  if (chat->nedits == chat->edits_cap) {
    size_t cap = chat->edits_cap ? chat->edits_cap * 2 : 16;
    chat_edit_t *e = realloc(chat->edits, cap * sizeof *e);
    if (!e) {
      chat->broken = 1;
      return;
    }
    chat->edits = e;
    chat->edits_cap = cap;
  }
  chat_edit_t *e = &chat->edits[chat->nedits++];
  e->start = start;
  e->end = end;
  e->off = off;
  e->len = chat->edits_buf.len - off;
}

/* Edits never overlap; an insertion sorts before a removal that starts
 * where it is. */
static int cmp_edit(const void *a, const void *b) {
  const chat_edit_t *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

/* A handful of edits per event: insertion sort, no qsort call. */
static void sort_edits(chat_edit_t *e, size_t n) {
  if (n > 16) {
    qsort(e, n, sizeof e[0], cmp_edit);
    return;
  }
  for (size_t i = 1; i < n; i++) {
    chat_edit_t x = e[i];
    size_t j = i;
    while (j > 0 && cmp_edit(&e[j - 1], &x) > 0) {
      e[j] = e[j - 1];
      j--;
    }
    e[j] = x;
  }
}

void relay_chat__apply_edits(relay_chat_t *chat, const char *doc, size_t len, relay_buf_t *out) {
  sort_edits(chat->edits, chat->nedits);
  size_t pos = 0;
  for (size_t i = 0; i < chat->nedits; i++) {
    const chat_edit_t *e = &chat->edits[i];
    chat_put(chat, out, doc + pos, e->start - pos);
    if (e->len) chat_put(chat, out, chat->edits_buf.data + e->off, e->len); /* removals carry no text */
    pos = e->end;
  }
  chat_put(chat, out, doc + pos, len - pos);
}

/* The members a container lacks, comma-separated, in the order reasoning,
 * content, tool_calls. Returns how many were written. */
int relay_chat__put_members(relay_chat_t *chat, relay_buf_t *b, const chat_missing_t *m) {
  const relay_delta_out_t *o = &chat->o;
  int members = 0;
  for (int i = 0; i < 2; i++) {
    if (!m->field[i]) continue;
    if (members++) chat_put(chat, b, ",", 1);
    put_key(chat, b, chat->opts->field[i]);
    put_json_string(chat, b, o->reasoning.data, o->reasoning.len);
  }
  if (m->content) {
    if (members++) chat_put(chat, b, ",", 1);
    chat_put_str(chat, b, "\"content\":");
    put_json_string(chat, b, o->content.data, o->content.len);
  }
  if (m->tool_calls) {
    if (members++) chat_put(chat, b, ",", 1);
    chat_put_str(chat, b, "\"tool_calls\":[");
    chat_put(chat, b, o->calls.data, o->calls.len);
    chat_put(chat, b, "]", 1);
  }
  return members;
}

/* Replace a value with a JSON string. */
static void edit_string(relay_chat_t *chat, size_t start, size_t end, const relay_buf_t *text) {
  size_t off = chat->edits_buf.len;
  put_json_string(chat, &chat->edits_buf, text->data, text->len);
  edit_add(chat, start, end, off);
}

/* The content member: replaced when the text changed (text left as it was
 * keeps its original encoding, \u003c included), set when it was null and
 * text came, else left. Returns 1 when the member is missing and needed. */
static int edit_content(relay_chat_t *chat, const relay_chat_choice_t *f) {
  const relay_buf_t *t = &chat->o.content;
  if (!f->has_content) return t->len > 0;
  if (f->content_is_string) {
    int same = t->len == chat->decoded.len && (t->len == 0 || memcmp(t->data, chat->decoded.data, t->len) == 0);
    if (!same) edit_string(chat, f->content_start, f->content_end, t);
  } else if (t->len > 0) {
    edit_string(chat, f->content_start, f->content_end, t);
  }
  return 0;
}

/* Which output field (0, 1) a key is, or -1. */
static int output_field(const relay_chat_t *chat, size_t k) {
  for (int i = 0; i < 2; i++)
    if (chat->opts->field[i][0] && strcmp(chat->keys[k], chat->opts->field[i]) == 0) return i;
  return -1;
}

/* The reasoning members: in field mode the configured ones get the text
 * (set in place, or missing and needed), the other reasoning members go;
 * in tags and strip mode every reasoning member goes (its text is in
 * content, or gone), null ones too (vLLM's "reasoning_content": null). A
 * member that is neither a string nor null stays as it came. Removed members
 * go into rm[] (document order is sorted out by the caller). */
/* Does a string member already hold this text (then it keeps its bytes)? */
static int same_text(relay_chat_t *chat, const char *json, const relay_chat_member_t *m, const relay_buf_t *t) {
  if (m->type != RELAY_JSON_STRING) return 0;
  relay_buf_reset(&chat->text);
  if (relay_json_unescape(json + m->start + 1, m->end - m->start - 2, &chat->text) != 0) return 0;
  return chat->text.len == t->len && (t->len == 0 || memcmp(chat->text.data, t->data, t->len) == 0);
}

static size_t edit_reasoning(relay_chat_t *chat, const relay_chat_choice_t *f, const char *json,
                             chat_missing_t *miss, relay_json_span_t *rm) {
  const relay_buf_t *r = &chat->o.reasoning;
  int field = chat->opts->mode == RELAY_MODE_FIELD;
  int have[2] = {0, 0};
  size_t n = 0;
  for (size_t k = 0; k < chat->nkeys; k++) {
    const relay_chat_member_t *m = &f->reasoning[k];
    if (!m->present) continue;
    int out = field ? output_field(chat, k) : -1;
    if (out >= 0) {
      have[out] = 1;
      if ((r->len > 0 || (m->type == RELAY_JSON_STRING && !m->empty)) && !same_text(chat, json, m, r))
        edit_string(chat, m->start, m->end, r);
    } else if ((chat->key_in & (1u << k)) &&
               (m->type == RELAY_JSON_STRING || relay_json_is_null(json, &(relay_json_value_t){m->type, m->start, m->end, 0}))) {
      rm[n].start = m->key_start;
      rm[n].end = m->end;
      n++;
    }
  }
  for (int i = 0; i < 2 && field; i++) miss->field[i] = chat->opts->field[i][0] && !have[i] && r->len > 0;
  return n;
}

/* New tool_calls entries: into the upstream's array (after its entries, or
 * replacing [] or null), else a new member. */
static void edit_tool_calls(relay_chat_t *chat, const relay_chat_choice_t *f, const char *json,
                            chat_missing_t *miss) {
  const relay_delta_out_t *o = &chat->o;
  if (o->entries == 0) return;
  const relay_chat_member_t *m = &f->tool_calls;
  if (!m->present) {
    miss->tool_calls = 1;
    return;
  }
  size_t off = chat->edits_buf.len;
  if (m->type == RELAY_JSON_ARRAY && !m->empty) {
    chat_put(chat, &chat->edits_buf, ",", 1);
    chat_put(chat, &chat->edits_buf, o->calls.data, o->calls.len);
    /* before the ']' and any space in front of it */
    size_t at = m->end - 1;
    while (at > m->start + 1 && (json[at - 1] == ' ' || json[at - 1] == '\n' || json[at - 1] == '\r' ||
                                 json[at - 1] == '\t'))
      at--;
    edit_add(chat, at, at, off);
    return;
  }
  chat_put(chat, &chat->edits_buf, "[", 1);
  chat_put(chat, &chat->edits_buf, o->calls.data, o->calls.len);
  chat_put(chat, &chat->edits_buf, "]", 1);
  edit_add(chat, m->start, m->end, off);
}

/* Once the choice made a call, its finish_reason says so ("length" stays:
 * the call was cut). */
static void edit_finish(relay_chat_t *chat, const chat_choice_t *c, const relay_chat_choice_t *f,
                        const char *json) {
  const relay_chat_member_t *m = &f->finish;
  if (!f->finished || c->st.calls == 0 || m->type != RELAY_JSON_STRING) return;
  size_t n = m->end - m->start;
  if ((n == 12 && memcmp(json + m->start, "\"tool_calls\"", 12) == 0) ||
      (n == 8 && memcmp(json + m->start, "\"length\"", 8) == 0))
    return;
  size_t off = chat->edits_buf.len;
  chat_put_str(chat, &chat->edits_buf, "\"tool_calls\"");
  edit_add(chat, m->start, m->end, off);
}

static int cmp_span(const void *a, const void *b) {
  const relay_json_span_t *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* After run_choice, the edits that give the choice its new container:
 * values replaced, members removed, the missing ones inserted (into the
 * first removed member's place, else right after the '{'). */
void relay_chat__edit_choice(relay_chat_t *chat, const chat_choice_t *c, const relay_chat_choice_t *f,
                             const char *json) {
  edit_finish(chat, c, f, json);
  if (!f->has_container) return;
  chat_missing_t miss = {0, {0, 0}, 0};
  relay_json_span_t rm[RELAY_CHAT_MAX_KEYS], cut[RELAY_CHAT_MAX_KEYS];
  miss.content = edit_content(chat, f);
  size_t nrm = edit_reasoning(chat, f, json, &miss, rm);
  edit_tool_calls(chat, f, json, &miss);
  if (nrm > 1) qsort(rm, nrm, sizeof rm[0], cmp_span);
  int inserting = miss.content || miss.field[0] || miss.field[1] || miss.tool_calls;
  size_t first = 0;
  if (inserting && nrm == 0 && !f->container_empty && miss.tool_calls) {
    /* tool_calls last, as servers write them: before the '}' */
    size_t off = chat->edits_buf.len;
    chat_missing_t calls = {0, {0, 0}, 1};
    chat_put(chat, &chat->edits_buf, ",", 1);
    relay_chat__put_members(chat, &chat->edits_buf, &calls);
    edit_add(chat, f->container_close, f->container_close, off);
    miss.tool_calls = 0;
    inserting = miss.content || miss.field[0] || miss.field[1];
  }
  if (inserting) {
    size_t off = chat->edits_buf.len;
    relay_chat__put_members(chat, &chat->edits_buf, &miss);
    if (nrm > 0) {
      edit_add(chat, rm[0].start, rm[0].end, off);
      first = 1;
    } else {
      if (!f->container_empty) chat_put(chat, &chat->edits_buf, ",", 1);
      edit_add(chat, f->container_open + 1, f->container_open + 1, off);
    }
  }
  if (nrm > first) {
    relay_json_member_cuts(json, rm + first, nrm - first, cut);
    for (size_t i = 0; i < nrm - first; i++) edit_add(chat, cut[i].start, cut[i].end, chat->edits_buf.len);
  }
}
