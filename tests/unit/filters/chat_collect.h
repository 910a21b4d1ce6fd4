/* What an OpenAI client reads back from a chat stream or body, for the chat
 * filter's unit tests and fuzzer: per choice the content, reasoning_content
 * and reasoning texts (joined over the events), the tool calls (id, name,
 * arguments joined by index) and the finish_reason, with a count of entries
 * that break the streaming rules and of events that are not JSON. Reads with
 * relay_json_find (slow, simple, independent of the filter's picker). */
#ifndef RELAY_TEST_CHAT_COLLECT_H
#define RELAY_TEST_CHAT_COLLECT_H

/* (the includer defines _GNU_SOURCE first, for memmem) */
#include <stdlib.h>
#include <string.h>

#include "relay/buf.h"
#include "relay/json_splice.h"

/* Calls whose texts are kept per choice; later ones are only counted. */
#define MAX_CALLS 8
typedef struct {
  relay_buf_t content, rc, r; /* content, reasoning_content, reasoning */
  relay_buf_t finish;
  int ncalls;
  relay_buf_t id[MAX_CALLS], name[MAX_CALLS], args[MAX_CALLS];
  int bad;     /* an entry broke the stream rules (first delta without id/type/name) */
  int invalid; /* (choice 0 only) events whose data is not valid JSON */
} got_t;

static inline void got_init(got_t *g) {
  memset(g, 0, sizeof *g);
}

static inline void got_dispose(got_t *g) {
  relay_buf_dispose(&g->content);
  relay_buf_dispose(&g->rc);
  relay_buf_dispose(&g->r);
  relay_buf_dispose(&g->finish);
  for (int k = 0; k < MAX_CALLS; k++) {
    relay_buf_dispose(&g->id[k]);
    relay_buf_dispose(&g->name[k]);
    relay_buf_dispose(&g->args[k]);
  }
}

/* The value at path: 1 a string (appended decoded to b when b), 0 absent or
 * null, 2 another value (its raw text appended). */
static inline int get_value(const char *doc, size_t len, const relay_json_path_seg_t *p, size_t depth, relay_buf_t *b) {
  size_t s, e;
  if (relay_json_find(doc, len, p, depth, &s, &e) != 0) return 0;
  if (doc[s] == '"') {
    if (b) relay_json_unescape(doc + s + 1, e - s - 2, b);
    return 1;
  }
  if (e - s == 4 && memcmp(doc + s, "null", 4) == 0) return 0;
  if (b) relay_buf_append(b, doc + s, e - s);
  return 2;
}

#define SEG(k) {k, sizeof(k) - 1, 0}
#define IDX(i) {NULL, 0, (i)}

/* One document's choices into got[index]. container: "delta" or "message". */
static inline void read_doc(const char *doc, size_t len, const char *container, got_t *got, int nch, int stream) {
  for (long k = 0;; k++) {
    relay_json_path_seg_t p[6] = {SEG("choices"), IDX(k), {container, strlen(container), 0}, SEG("content")};
    size_t s, e;
    if (relay_json_find(doc, len, p, 2, &s, &e) != 0) break;
    relay_buf_t num;
    relay_buf_init(&num);
    relay_json_path_seg_t pi[3] = {SEG("choices"), IDX(k), SEG("index")};
    long index = k;
    if (get_value(doc, len, pi, 3, &num) == 2 && relay_buf_append(&num, "", 1) == 0) index = strtol(num.data, NULL, 10);
    relay_buf_dispose(&num);
    if (index < 0 || index >= nch) {
      got[0].bad++; /* a choice index that was never sent */
      continue;
    }
    got_t *g = &got[index];
    if (!stream) relay_buf_reset(&g->content);
    get_value(doc, len, p, 4, &g->content);
    p[3] = (relay_json_path_seg_t)SEG("reasoning_content");
    get_value(doc, len, p, 4, &g->rc);
    p[3] = (relay_json_path_seg_t)SEG("reasoning");
    get_value(doc, len, p, 4, &g->r);
    relay_json_path_seg_t pf[3] = {SEG("choices"), IDX(k), SEG("finish_reason")};
    relay_buf_t fin;
    relay_buf_init(&fin);
    if (get_value(doc, len, pf, 3, &fin) == 1) {
      relay_buf_reset(&g->finish);
      relay_buf_append(&g->finish, fin.data, fin.len);
    }
    relay_buf_dispose(&fin);
    /* tool_calls entries */
    for (long j = 0;; j++) {
      relay_json_path_seg_t pc[7] = {SEG("choices"), IDX(k), {container, strlen(container), 0}, SEG("tool_calls"),
                                     IDX(j), SEG("index")};
      if (relay_json_find(doc, len, pc, 5, &s, &e) != 0) break;
      relay_buf_t v;
      relay_buf_init(&v);
      long ci = j;
      if (stream) {
        if (get_value(doc, len, pc, 6, &v) != 2 || relay_buf_append(&v, "", 1)) g->bad++;
        else ci = strtol(v.data, NULL, 10);
      }
      relay_buf_reset(&v);
      if (ci < 0 || ci >= MAX_CALLS) {
        if (ci < 0) g->bad++;
        else if (ci >= g->ncalls) g->ncalls = (int)ci + 1;
        relay_buf_dispose(&v);
        continue;
      }
      int first = ci >= g->ncalls;
      if (first) g->ncalls = (int)ci + 1;
      pc[5] = (relay_json_path_seg_t)SEG("id");
      int has_id = get_value(doc, len, pc, 6, &g->id[ci]) == 1;
      pc[5] = (relay_json_path_seg_t)SEG("type");
      int typed = get_value(doc, len, pc, 6, &v) == 1 && v.len == 8 && memcmp(v.data, "function", 8) == 0;
      pc[5] = (relay_json_path_seg_t)SEG("function");
      pc[6] = (relay_json_path_seg_t)SEG("name");
      int named = get_value(doc, len, pc, 7, &g->name[ci]) == 1;
      pc[6] = (relay_json_path_seg_t)SEG("arguments");
      int args = get_value(doc, len, pc, 7, &g->args[ci]) == 1;
      if (first && !(has_id && typed && named)) g->bad++;
      if (!first && (has_id || named)) g->bad++; /* a name comes once */
      if (!args && !first) g->bad++;
      relay_buf_dispose(&v);
    }
  }
}

/* The client's view of a relayed stream; returns the number of events. */
static inline size_t read_stream(const char *s, size_t len, got_t *got, int nch) {
  size_t events = 0;
  const char *end = s + len;
  while (s < end) {
    const char *e = memmem(s, (size_t)(end - s), "\n\n", 2);
    if (!e) break;
    events++;
    if ((size_t)(e - s) > 6 && memcmp(s, "data: ", 6) == 0 && memcmp(s + 6, "[DONE]", 6) != 0) {
      size_t a, b;
      relay_json_path_seg_t root = {NULL, 0, 0};
      if (relay_json_find(s + 6, (size_t)(e - s) - 6, &root, 0, &a, &b) != 0) {
        got[0].invalid++; /* not valid JSON */
        s = e + 2;
        continue;
      }
      read_doc(s + 6, (size_t)(e - s) - 6, "delta", got, nch, 1);
    }
    s = e + 2;
  }
  return events;
}

/* ---- checks ------------------------------------------------------------ */

#endif
