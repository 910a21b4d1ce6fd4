/* Paths and edits on JSON documents: relay_json_find(), relay_json_edit()
 * and relay_json_edit_many(); see include/relay/json_splice.h. Documents are
 * tokenized and checked by json_splice.c (json_doc.h); every edit copies the
 * bytes around it unchanged, so no value is ever re-encoded.
 */
#include "relay/json_splice.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_doc.h"

/* ---- paths and edits --------------------------------------------------- */

/* Where one path step lands inside its container, with what an edit needs
 * to keep the separators right. Offsets are -1 when they do not apply. */
typedef struct json_slot_s {
  int key, value;     /* the member's key token (objects) and value token */
  int prev_end;       /* end of the item before it */
  int next_begin;     /* start of the item after it */
  int last_key, last_value; /* the container's last item */
  int last_prev_end;  /* end of the item before the last one */
} json_slot_t;

/* Find seg inside container token c. Every item is visited (last duplicate
 * key counts), which costs no more than skipping over them. */
static int json_locate(json_doc_t *d, int c, const relay_json_path_seg_t *seg,
                       json_slot_t *sl) {
  const jsmntok_t *t = d->tok;
  int is_obj = seg->key != NULL, prev_end = -1, want_next = 0;
  int want_bs = is_obj && memchr(seg->key, '\\', seg->key_len) != NULL;
  sl->key = sl->value = sl->prev_end = sl->next_begin = -1;
  sl->last_key = sl->last_value = sl->last_prev_end = -1;
  if (t[c].type != (is_obj ? JSMN_OBJECT : JSMN_ARRAY)) return RELAY_ENOTFOUND;
  int it = c + 1;
  for (int m = 0; m < t[c].size; m++) {
    int k = is_obj ? it : -1, v = is_obj ? it + 1 : it;
    if (want_next) {
      sl->next_begin = tok_begin(&t[it]);
      want_next = 0;
    }
    if (is_obj ? json_key_eq(d, k, seg->key, seg->key_len, want_bs) : m == seg->index) {
      sl->key = k;
      sl->value = v;
      sl->prev_end = prev_end;
      sl->next_begin = -1;
      want_next = 1;
    }
    if (m == t[c].size - 1) {
      sl->last_key = k;
      sl->last_value = v;
      sl->last_prev_end = prev_end;
    }
    prev_end = tok_end(&t[v]);
    it = json_skip(d, v);
  }
  return sl->value >= 0 ? 0 : RELAY_ENOTFOUND;
}

/* Walk path[0..n) from the root; *v is the token reached. */
static int json_walk(json_doc_t *d, const relay_json_path_seg_t *path, size_t n, int *v) {
  json_slot_t sl;
  int cur = 0;
  for (size_t s = 0; s < n; s++) {
    int rc = json_locate(d, cur, &path[s], &sl);
    if (rc) return rc;
    cur = sl.value;
  }
  *v = cur;
  return 0;
}

int relay_json_find(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, size_t *start, size_t *end) {
  json_doc_t d;
  int v = 0;
  if (depth > RELAY_JSON_MAX_PATH) return RELAY_ETOODEEP;
  int rc = relay_json__doc_parse(&d, json, len, NULL);
  if (rc == 0) rc = json_walk(&d, path, depth, &v);
  if (rc == 0) {
    *start = (size_t)tok_begin(&d.tok[v]);
    *end = (size_t)tok_end(&d.tok[v]);
  }
  json_doc_dispose(&d);
  return rc;
}

/* out += json[0..a) + mid + json[b..len): the one shape of every edit. */
static int json_splice_out(relay_buf_t *out, const json_doc_t *d, int a, const char *mid,
                           size_t mid_len, int b) {
  if (relay_buf_reserve(out, (size_t)a + mid_len + (size_t)(d->len - b))) return RELAY_ENOMEM;
  relay_buf_append(out, d->js, (size_t)a);
  relay_buf_append(out, mid, mid_len);
  relay_buf_append(out, d->js + b, (size_t)(d->len - b));
  return 0;
}

/* Drop a member or element with exactly one of its separators: up to the
 * next item when there is one (so that item takes its place, indentation
 * and all), else back to the end of the previous item, else (the only item)
 * back to the opening bracket. */
static int json_remove(const json_doc_t *d, int c, const json_slot_t *sl, relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  int b = tok_begin(&t[sl->key >= 0 ? sl->key : sl->value]);
  int e = tok_end(&t[sl->value]);
  if (sl->next_begin >= 0) e = sl->next_begin;
  else if (sl->prev_end >= 0) b = sl->prev_end;
  else b = t[c].start + 1;
  return json_splice_out(out, d, b, "", 0, e);
}

/* Add "key":raw as the last member of object c, spelled like the members
 * already there: the separator before the last member and the one between
 * its key and value are reused, so pretty-printed documents stay pretty. */
static int json_insert(const json_doc_t *d, int c, const json_slot_t *sl,
                       const relay_json_path_seg_t *seg, const char *raw, size_t raw_len,
                       relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  const char *sep = "", *colon = ":";
  size_t sep_len = 0, colon_len = 1;
  int at = t[c].start + 1;
  relay_buf_t mid;
  if (sl->last_value >= 0) {
    const jsmntok_t *lk = &t[sl->last_key], *lv = &t[sl->last_value];
    at = tok_end(lv);
    sep = ",";
    sep_len = 1;
    if (sl->last_prev_end >= 0) {
      sep = d->js + sl->last_prev_end;
      sep_len = (size_t)(tok_begin(lk) - sl->last_prev_end);
    }
    colon = d->js + tok_end(lk);
    colon_len = (size_t)(tok_begin(lv) - tok_end(lk));
  }
  relay_buf_init(&mid);
  int rc = 0;
  if (relay_buf_append(&mid, sep, sep_len) || relay_buf_append(&mid, "\"", 1) ||
      relay_json_escape(&mid, seg->key, seg->key_len) || relay_buf_append(&mid, "\"", 1) ||
      relay_buf_append(&mid, colon, colon_len) || relay_buf_append(&mid, raw, raw_len)) {
    rc = RELAY_ENOMEM;
  }
  if (rc == 0) rc = json_splice_out(out, d, at, mid.data ? mid.data : "", mid.len, at);
  relay_buf_dispose(&mid);
  return rc;
}

static int json_edit_doc(json_doc_t *d, const relay_json_path_seg_t *path, size_t depth,
                         const char *raw, size_t raw_len, relay_buf_t *out) {
  const jsmntok_t *t = d->tok;
  json_slot_t sl;
  int c;
  if (depth == 0) {
    if (!raw) return RELAY_EJSON;
    return json_splice_out(out, d, tok_begin(&t[0]), raw, raw_len, tok_end(&t[0]));
  }
  int rc = json_walk(d, path, depth - 1, &c);
  if (rc) return rc;
  const relay_json_path_seg_t *seg = &path[depth - 1];
  rc = json_locate(d, c, seg, &sl);
  if (rc == 0 && raw)
    return json_splice_out(out, d, tok_begin(&t[sl.value]), raw, raw_len, tok_end(&t[sl.value]));
  if (rc == 0) return json_remove(d, c, &sl, out);
  if (raw && seg->key && t[c].type == JSMN_OBJECT) return json_insert(d, c, &sl, seg, raw, raw_len, out);
  return rc;
}

int relay_json_edit(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, const char *raw_value, size_t raw_len, relay_buf_t *out) {
  json_doc_t d;
  if (depth > RELAY_JSON_MAX_PATH) return RELAY_ETOODEEP;
  int rc = relay_json__doc_parse(&d, json, len, NULL);
  if (rc == 0) rc = json_edit_doc(&d, path, depth, raw_value, raw_len, out);
  json_doc_dispose(&d);
  return rc;
}

/* ---- batches of edits -------------------------------------------------- */

/* An edit of a batch, kept with its position in the caller's list. */
typedef struct json_bedit_s {
  const relay_json_edit_t *e;
  size_t pos;
} json_bedit_t;

/* One splice of the output: json[start..end) becomes text. Inserted members
 * have start == end; their text lives in the batch's scratch buffer. */
typedef struct json_op_s {
  int start, end;
  const char *text; /* NULL: scratch + off */
  size_t off, len;
  size_t seq;       /* ties (inserts at one place) keep the edits' order */
} json_op_t;

typedef struct json_batch_s {
  json_doc_t *d;
  json_bedit_t *be; /* sorted by path */
  size_t n;
  json_op_t *ops;
  size_t nops;
  relay_buf_t scratch;
  relay_buf_t key;  /* a decoded document key */
  int err;          /* first lookup error, and the edit it belongs to */
  size_t failed;
} json_batch_t;

static int json_seg_cmp(const relay_json_path_seg_t *a, const relay_json_path_seg_t *b) {
  if (!a->key || !b->key) {
    if (a->key || b->key) return a->key ? -1 : 1; /* keys before positions */
    return a->index < b->index ? -1 : a->index > b->index;
  }
  size_t m = a->key_len < b->key_len ? a->key_len : b->key_len;
  int c = memcmp(a->key, b->key, m);
  if (c) return c;
  return a->key_len < b->key_len ? -1 : a->key_len > b->key_len;
}

/* Path order: segment by segment, a prefix before what extends it, so the
 * edits under one value are neighbours and a prefix is next to its first
 * extension. */
static int json_bedit_cmp(const void *pa, const void *pb) {
  const json_bedit_t *a = pa, *b = pb;
  size_t m = a->e->depth < b->e->depth ? a->e->depth : b->e->depth;
  for (size_t i = 0; i < m; i++) {
    int c = json_seg_cmp(&a->e->path[i], &b->e->path[i]);
    if (c) return c;
  }
  if (a->e->depth != b->e->depth) return a->e->depth < b->e->depth ? -1 : 1;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int json_op_cmp(const void *pa, const void *pb) {
  const json_op_t *a = pa, *b = pb;
  if (a->start != b->start) return a->start < b->start ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1; /* an insert after a span ending there */
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void json_batch_fail(json_batch_t *b, int err, size_t pos) {
  if (!b->err || pos < b->failed) {
    b->err = err;
    b->failed = pos;
  }
}

static json_op_t *json_batch_op(json_batch_t *b, int start, int end, size_t seq) {
  json_op_t *op = &b->ops[b->nops++];
  op->start = start;
  op->end = end;
  op->text = "";
  op->off = op->len = 0;
  op->seq = seq;
  return op;
}

/* The decoded text of key token k (no copy when it has no backslash). */
static int json_batch_key(json_batch_t *b, int k, relay_json_path_seg_t *seg) {
  json_doc_t *d = b->d;
  const char *raw = d->js + d->tok[k].start;
  size_t rlen = (size_t)(d->tok[k].end - d->tok[k].start);
  seg->index = 0;
  if (!json_key_has_bs(d, k)) {
    seg->key = raw;
    seg->key_len = rlen;
    return 0;
  }
  b->key.len = 0;
  int rc = relay_json_unescape(raw, rlen, &b->key);
  if (rc) return rc;
  seg->key = b->key.data ? b->key.data : "";
  seg->key_len = b->key.len;
  return 0;
}

/* First edit in be[lo..hi) whose segment at depth k is not below seg. */
static size_t json_batch_lower(const json_batch_t *b, size_t lo, size_t hi, size_t k,
                               const relay_json_path_seg_t *seg) {
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (json_seg_cmp(&b->be[mid].e->path[k], seg) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Where the members of a container are, for the removals and inserts that
 * need their neighbours. */
typedef struct json_items_s {
  int *begin, *end; /* item i: its first byte (key or value), one past its value */
  char *removed;
  int count;
  int last_key, last_value, last_prev_end; /* as in json_slot_t */
} json_items_t;

/* Removed items go in runs, each with exactly the separators that removing
 * them one by one would take: up to the next kept item, else back to the
 * end of the previous kept one, else (all gone) back to the bracket. */
static void json_batch_removals(json_batch_t *b, int c, const json_items_t *it, int *all_removed) {
  int i = 0, kept = 0;
  while (i < it->count) {
    if (!it->removed[i]) {
      kept = 1;
      i++;
      continue;
    }
    int j = i;
    while (j + 1 < it->count && it->removed[j + 1]) j++;
    int start, end;
    if (j + 1 < it->count) {
      start = it->begin[i];
      end = it->begin[j + 1];
    } else if (i > 0) {
      start = it->end[i - 1];
      end = it->end[j];
    } else {
      start = b->d->tok[c].start + 1;
      end = it->end[j];
    }
    json_batch_op(b, start, end, 0);
    i = j + 1;
  }
  *all_removed = it->count > 0 && !kept;
}

/* New members of object c, in the edits' order, spelled as json_insert()
 * spells one: the first takes the separator before the object's last member
 * (none when the object is, or ends up, empty), the next ones that
 * separator or ','. */
static int json_bedit_cmp_pos(const void *pa, const void *pb) {
  const json_bedit_t *a = pa, *b = pb;
  return a->pos < b->pos ? -1 : a->pos > b->pos;
}

static int json_batch_inserts(json_batch_t *b, int c, const json_items_t *it, json_bedit_t *ins, size_t nins,
                              int all_removed) {
  json_doc_t *d = b->d;
  const jsmntok_t *t = d->tok;
  const char *sep = "", *colon = ":";
  size_t sep_len = 0, colon_len = 1;
  int at = t[c].start + 1;
  if (it->last_value >= 0) {
    const jsmntok_t *lk = &t[it->last_key], *lv = &t[it->last_value];
    at = tok_end(lv);
    sep = ",";
    sep_len = 1;
    if (it->last_prev_end >= 0) {
      sep = d->js + it->last_prev_end;
      sep_len = (size_t)(tok_begin(lk) - it->last_prev_end);
    }
    colon = d->js + tok_end(lk);
    colon_len = (size_t)(tok_begin(lv) - tok_end(lk));
  }
  qsort(ins, nins, sizeof *ins, json_bedit_cmp_pos); /* in the order of the caller's list */
  int first = it->last_value < 0 || all_removed;
  for (size_t x = 0; x < nins; x++) {
    const json_bedit_t *be = &ins[x];
    const relay_json_path_seg_t *seg = &be->e->path[be->e->depth - 1];
    relay_buf_t *s = &b->scratch;
    size_t off = s->len;
    int rc = 0;
    if (!first) rc = sep_len ? relay_buf_append(s, sep, sep_len) : relay_buf_append(s, ",", 1);
    if (rc || relay_buf_append(s, "\"", 1) || relay_json_escape(s, seg->key, seg->key_len) ||
        relay_buf_append(s, "\"", 1) || relay_buf_append(s, colon, colon_len) ||
        relay_buf_append(s, be->e->raw, be->e->raw_len))
      return RELAY_ENOMEM;
    json_op_t *op = json_batch_op(b, at, at, be->pos);
    op->text = NULL;
    op->off = off;
    op->len = s->len - off;
    first = 0;
  }
  return 0;
}

static int json_batch_resolve(json_batch_t *b, int c, size_t lo, size_t hi, size_t k);

/* After the walk of container c: each group of edits that share their
 * segment k either ends there (set, remove, insert) or goes on inside the
 * member's value. found[g] is the member's value token (-1: missing) and
 * where[g] its position among the items. */
static int json_batch_apply(json_batch_t *b, int c, size_t lo, size_t hi, size_t k, const int *found,
                            const int *where, json_items_t *it) {
  const jsmntok_t *t = b->d->tok;
  size_t nins = 0;
  json_bedit_t *ins = NULL;
  int rc = 0, all_removed = 0;
  for (size_t g = lo, gi = 0; g < hi; gi++) {
    size_t end = g + 1;
    while (end < hi && json_seg_cmp(&b->be[end].e->path[k], &b->be[g].e->path[k]) == 0) end++;
    const relay_json_edit_t *e = b->be[g].e;
    int v = found[gi];
    if (e->depth == k + 1) { /* overlap was refused: alone in its group */
      if (v >= 0 && e->raw) {
        json_op_t *op = json_batch_op(b, tok_begin(&t[v]), tok_end(&t[v]), b->be[g].pos);
        op->text = e->raw;
        op->len = e->raw_len;
      } else if (v >= 0) {
        it->removed[where[gi]] = 1;
      } else if (e->raw && e->path[k].key && t[c].type == JSMN_OBJECT) {
        if (!ins && !(ins = malloc((hi - lo) * sizeof *ins))) return RELAY_ENOMEM;
        ins[nins++] = b->be[g];
      } else {
        json_batch_fail(b, RELAY_ENOTFOUND, b->be[g].pos);
      }
    } else if (v >= 0) {
      rc = json_batch_resolve(b, v, g, end, k + 1);
      if (rc) break;
    } else {
      for (size_t x = g; x < end; x++) json_batch_fail(b, RELAY_ENOTFOUND, b->be[x].pos);
    }
    g = end;
  }
  if (rc == 0 && it->removed) json_batch_removals(b, c, it, &all_removed);
  if (rc == 0 && nins) rc = json_batch_inserts(b, c, it, ins, nins, all_removed);
  free(ins);
  return rc;
}

/* Resolve be[lo..hi), which all name container c with their first k
 * segments, walking c's members once. */
static int json_batch_resolve(json_batch_t *b, int c, size_t lo, size_t hi, size_t k) {
  json_doc_t *d = b->d;
  const jsmntok_t *t = d->tok;
  int is_obj = t[c].type == JSMN_OBJECT;
  size_t ngroups = 0, needs_items = 0;
  for (size_t g = lo; g < hi; g++) {
    if (g == lo || json_seg_cmp(&b->be[g].e->path[k], &b->be[g - 1].e->path[k]) != 0) ngroups++;
    if (b->be[g].e->depth == k + 1 && !b->be[g].e->raw) needs_items = 1; /* a removal needs neighbours */
  }
  if (!is_obj && t[c].type != JSMN_ARRAY) {
    for (size_t g = lo; g < hi; g++) json_batch_fail(b, RELAY_ENOTFOUND, b->be[g].pos);
    return 0;
  }
  int *found = malloc(ngroups * 2 * sizeof *found);
  size_t *gstart = malloc(ngroups * sizeof *gstart);
  json_items_t it;
  memset(&it, 0, sizeof it);
  it.last_key = it.last_value = it.last_prev_end = -1;
  it.count = t[c].size;
  if (needs_items && it.count) {
    it.begin = malloc((size_t)it.count * 2 * sizeof *it.begin);
    it.removed = calloc((size_t)it.count, 1);
  }
  int rc = 0;
  if (!found || !gstart || (needs_items && it.count && (!it.begin || !it.removed))) {
    rc = RELAY_ENOMEM;
    goto done;
  }
  it.end = it.begin ? it.begin + it.count : NULL;
  int *where = found + ngroups;
  for (size_t g = lo, gi = 0; g < hi; g++)
    if (g == lo || json_seg_cmp(&b->be[g].e->path[k], &b->be[g - 1].e->path[k]) != 0) {
      gstart[gi] = g;
      found[gi] = where[gi] = -1;
      gi++;
    }
  int item = c + 1, prev_end = -1;
  for (int m = 0; m < t[c].size; m++) {
    int kt = is_obj ? item : -1, v = is_obj ? item + 1 : item;
    relay_json_path_seg_t seg = {NULL, 0, m};
    if (is_obj && (rc = json_batch_key(b, kt, &seg)) != 0) goto done;
    size_t at = json_batch_lower(b, lo, hi, k, &seg);
    if (at < hi && json_seg_cmp(&b->be[at].e->path[k], &seg) == 0) {
      size_t lo_g = 0, hi_g = ngroups; /* the group that starts at `at` */
      while (lo_g < hi_g) {
        size_t mid = lo_g + (hi_g - lo_g) / 2;
        if (gstart[mid] < at) lo_g = mid + 1;
        else hi_g = mid;
      }
      found[lo_g] = v; /* a repeated key: the last one counts */
      where[lo_g] = m;
    }
    if (it.begin) {
      it.begin[m] = tok_begin(&t[kt >= 0 ? kt : v]);
      it.end[m] = tok_end(&t[v]);
    }
    if (m == t[c].size - 1) {
      it.last_key = kt;
      it.last_value = v;
      it.last_prev_end = prev_end;
    }
    prev_end = tok_end(&t[v]);
    item = json_skip(d, v);
  }
  rc = json_batch_apply(b, c, lo, hi, k, found, where, &it);
done:
  free(found);
  free(gstart);
  free(it.begin);
  free(it.removed);
  return rc;
}

/* Sort, refuse overlaps, resolve every path in one walk, then splice. */
static int json_batch_run(json_batch_t *b, relay_buf_t *out) {
  json_doc_t *d = b->d;
  for (size_t i = 0; i < b->n; i++) {
    if (b->be[i].e->depth > RELAY_JSON_MAX_PATH) {
      json_batch_fail(b, RELAY_ETOODEEP, b->be[i].pos);
      return b->err;
    }
  }
  if (b->n > 1) qsort(b->be, b->n, sizeof *b->be, json_bedit_cmp);
  for (size_t i = 1; i < b->n; i++) {
    const relay_json_edit_t *p = b->be[i - 1].e, *q = b->be[i].e;
    size_t s = 0;
    while (s < p->depth && json_seg_cmp(&p->path[s], &q->path[s]) == 0) s++;
    if (s == p->depth) { /* p is a prefix of q (or equal) */
      size_t later = b->be[i - 1].pos > b->be[i].pos ? b->be[i - 1].pos : b->be[i].pos;
      json_batch_fail(b, RELAY_EOVERLAP, later);
    }
  }
  if (b->err) return b->err;
  if (b->n == 1 && b->be[0].e->depth == 0) { /* the whole document */
    const relay_json_edit_t *e = b->be[0].e;
    if (!e->raw) return RELAY_EJSON;
    return json_splice_out(out, d, tok_begin(&d->tok[0]), e->raw, e->raw_len, tok_end(&d->tok[0]));
  }
  int rc = b->n ? json_batch_resolve(b, 0, 0, b->n, 0) : 0;
  if (rc == 0) rc = b->err;
  if (rc) return rc;
  if (b->nops > 1) qsort(b->ops, b->nops, sizeof *b->ops, json_op_cmp);
  size_t total = (size_t)d->len;
  for (size_t i = 0; i < b->nops; i++) {
    if (i && b->ops[i].start < b->ops[i - 1].end) return RELAY_EOVERLAP; /* cannot happen */
    total += b->ops[i].len;
  }
  if (relay_buf_reserve(out, total)) return RELAY_ENOMEM;
  int pos = 0;
  for (size_t i = 0; i < b->nops; i++) {
    const json_op_t *op = &b->ops[i];
    relay_buf_append(out, d->js + pos, (size_t)(op->start - pos));
    relay_buf_append(out, op->text ? op->text : b->scratch.data + op->off, op->len);
    pos = op->end;
  }
  relay_buf_append(out, d->js + pos, (size_t)(d->len - pos));
  return 0;
}

int relay_json_edit_many(const char *json, size_t len, const relay_json_edit_t *edits, size_t n,
                         relay_buf_t *out, size_t *failed) {
  json_doc_t d;
  json_batch_t b;
  memset(&b, 0, sizeof b);
  b.d = &d;
  b.n = n;
  relay_buf_init(&b.scratch);
  relay_buf_init(&b.key);
  size_t old = out->len;
  int rc = relay_json__doc_parse(&d, json, len, NULL);
  if (rc == 0 && n > SIZE_MAX / sizeof(json_op_t)) rc = RELAY_ENOMEM;
  if (rc == 0 && n) {
    b.be = malloc(n * sizeof *b.be);
    b.ops = malloc(n * sizeof *b.ops);
    if (!b.be || !b.ops) rc = RELAY_ENOMEM;
  }
  if (rc == 0) {
    for (size_t i = 0; i < n; i++) {
      b.be[i].e = &edits[i];
      b.be[i].pos = i;
    }
    rc = json_batch_run(&b, out);
  }
  if (rc) out->len = old;
  if (failed) *failed = b.err ? b.failed : 0;
  free(b.be);
  free(b.ops);
  relay_buf_dispose(&b.scratch);
  relay_buf_dispose(&b.key);
  json_doc_dispose(&d);
  return rc;
}
