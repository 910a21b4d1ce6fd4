/* The choices picker: a relay_json_visit visitor that follows the root, its
 * "choices" array, each element and each element's container, and records
 * the members the rewrite edits. See choices.h. */
#include "choices.h"

#include <string.h>

/* What a followed container or a wanted value is. */
enum {
  TAG_DOCUMENT = 1, /* the root value */
  TAG_ROOT,         /* the root object */
  TAG_CHOICES_KEY, /* the value of the root's "choices" */
  TAG_CHOICES,     /* the choices array: its elements */
  TAG_ELEMENT,     /* one element object */
  TAG_INDEX,
  TAG_FINISH,
  TAG_CONTAINER_KEY, /* the value of "delta" / "message" */
  TAG_CONTAINER,     /* that object */
  TAG_CONTENT,
  TAG_TOOL_CALLS,
  TAG_REASONING /* + the key's position */
};

typedef struct picker_s {
  const char *json;
  const char *container;
  size_t container_len;
  const char *const *keys;
  size_t nkeys;
  size_t key_len[RELAY_CHAT_MAX_KEYS];
  relay_chat_choice_t *out;
  size_t max;
  size_t count; /* elements of the current choices array */
  size_t key_start; /* the opening quote of the key just reported */
  int root_object;
  int err;      /* a shape error */
} picker_t;

/* The slot of the current element, or NULL past max (ETOOMANY at the end). */
static relay_chat_choice_t *current(picker_t *pk) {
  return pk->count && pk->count <= pk->max ? &pk->out[pk->count - 1] : NULL;
}

/* A member of the container: content, tool_calls or one of the caller's keys. */
static int container_key(picker_t *pk, const char *raw, size_t len, int esc) {
  if (relay_json_key_is(raw, len, esc, "content", 7)) return TAG_CONTENT;
  if (relay_json_key_is(raw, len, esc, "tool_calls", 10)) return TAG_TOOL_CALLS;
  for (size_t k = 0; k < pk->nkeys; k++)
    if (relay_json_key_is(raw, len, esc, pk->keys[k], pk->key_len[k])) return TAG_REASONING + (int)k;
  return 0;
}

static int picker_key(void *ud, int object, const char *raw, size_t len, int esc) {
  picker_t *pk = ud;
  int tag = 0;
#define NAME(lit) relay_json_key_is(raw, len, esc, lit, sizeof(lit) - 1)
  switch (object) {
    case TAG_ROOT: return NAME("choices") ? TAG_CHOICES_KEY : 0;
    case TAG_ELEMENT:
      if (NAME("index")) return TAG_INDEX;
      if (NAME("finish_reason")) tag = TAG_FINISH;
      else if (relay_json_key_is(raw, len, esc, pk->container, pk->container_len)) return TAG_CONTAINER_KEY;
      break;
    case TAG_CONTAINER: tag = container_key(pk, raw, len, esc); break;
    default: return 0;
  }
#undef NAME
  pk->key_start = (size_t)(raw - pk->json) - 1;
  return tag;
}

/* A new "choices" array starts over (the last one of a repeated key counts). */
static int picker_choices(picker_t *pk, const relay_json_value_t *v) {
  pk->count = 0;
  pk->err = 0;
  if (v->type == RELAY_JSON_ARRAY) return TAG_CHOICES;
  if (!relay_json_is_null(pk->json, v)) pk->err = RELAY_EJSON;
  return 0;
}

/* A new element of choices[] gets the next slot, if there is room. */
static int picker_element(picker_t *pk, const relay_json_value_t *v) {
  size_t k = pk->count++;
  if (v->type != RELAY_JSON_OBJECT) {
    pk->err = RELAY_EJSON;
    return 0;
  }
  if (k < pk->max) {
    memset(&pk->out[k], 0, sizeof pk->out[k]);
    pk->out[k].index = (long)k;
  }
  return TAG_ELEMENT;
}

/* A repeated container starts over, keeping what the element said. */
static int picker_container(relay_chat_choice_t *c, const relay_json_value_t *v) {
  long index = c->index;
  int finished = c->finished;
  relay_chat_member_t finish = c->finish;
  memset(c, 0, sizeof *c);
  c->index = index;
  c->finished = finished;
  c->finish = finish;
  if (v->type != RELAY_JSON_OBJECT) return 0;
  c->has_container = 1;
  c->container_open = v->start;
  c->container_close = v->end - 1;
  c->container_empty = v->size == 0;
  c->container_members = (size_t)v->size;
  return TAG_CONTAINER;
}

static void set_member(relay_chat_member_t *m, size_t key_start, const relay_json_value_t *v) {
  m->present = 1;
  m->type = v->type;
  m->key_start = key_start;
  m->start = v->start;
  m->end = v->end;
  m->empty = v->type == RELAY_JSON_STRING ? v->end - v->start == 2 : v->size == 0 && v->type != RELAY_JSON_PRIMITIVE;
}

static int picker_value(void *ud, int tag, const relay_json_value_t *v) {
  picker_t *pk = ud;
  if (tag == TAG_DOCUMENT) {
    pk->root_object = v->type == RELAY_JSON_OBJECT;
    return pk->root_object ? TAG_ROOT : 0;
  }
  if (tag == TAG_CHOICES_KEY) return picker_choices(pk, v);
  if (tag == TAG_CHOICES) return picker_element(pk, v);
  relay_chat_choice_t *c = current(pk);
  if (!c) return 0;
  switch (tag) {
    case TAG_INDEX:
      if (relay_json_parse_long(pk->json, v, &c->index)) pk->err = RELAY_EJSON;
      return 0;
    case TAG_FINISH:
      c->finished = !relay_json_is_null(pk->json, v);
      set_member(&c->finish, pk->key_start, v);
      return 0;
    case TAG_CONTAINER_KEY: return picker_container(c, v);
    case TAG_CONTENT:
      c->has_content = 1;
      c->content_is_string = v->type == RELAY_JSON_STRING;
      c->content_start = v->start;
      c->content_end = v->end;
      return 0;
    case TAG_TOOL_CALLS: set_member(&c->tool_calls, pk->key_start, v); return 0;
    default:
      if (tag >= TAG_REASONING && tag < TAG_REASONING + RELAY_CHAT_MAX_KEYS)
        set_member(&c->reasoning[tag - TAG_REASONING], pk->key_start, v);
      return 0;
  }
}

int relay_chat_find_choices(const char *json, size_t len, const char *container, const char *const *keys,
                            size_t nkeys, relay_chat_choice_t *out, size_t max) {
  if (nkeys > RELAY_CHAT_MAX_KEYS) return RELAY_EINVAL;
  picker_t pk;
  memset(&pk, 0, sizeof pk);
  pk.json = json;
  pk.container = container;
  pk.container_len = strlen(container);
  pk.keys = keys;
  pk.nkeys = nkeys;
  for (size_t k = 0; k < nkeys; k++) pk.key_len[k] = strlen(keys[k]);
  pk.out = out;
  pk.max = max;
  relay_json_visitor_t v = {picker_key, picker_value, &pk, TAG_DOCUMENT};
  int rc = relay_json_visit(json, len, &v);
  if (rc == 0 && !pk.root_object) rc = RELAY_EJSON;
  if (rc == 0 && pk.err) rc = pk.err;
  if (rc == 0 && pk.count > max) rc = RELAY_ETOOMANY;
  return rc == 0 ? (int)pk.count : rc;
}

/* The walk behind relay_chat_count_call_starts: the array's elements, and
 * each element's "id". */
enum { CALLS_DOCUMENT = 1, CALLS_ARRAY, CALLS_ELEMENT, CALLS_ID };

static int calls_key(void *ud, int object, const char *raw, size_t len, int esc) {
  return object == CALLS_ELEMENT && relay_json_key_is(raw, len, esc, "id", 2) ? CALLS_ID : 0;
}

static int calls_value(void *ud, int tag, const relay_json_value_t *v) {
  unsigned *n = ud;
  if (tag == CALLS_DOCUMENT) return v->type == RELAY_JSON_ARRAY ? CALLS_ARRAY : 0;
  if (tag == CALLS_ARRAY) return v->type == RELAY_JSON_OBJECT ? CALLS_ELEMENT : 0;
  if (tag == CALLS_ID && v->type == RELAY_JSON_STRING && v->end - v->start > 2) (*n)++;
  return 0;
}

unsigned relay_chat_count_call_starts(const char *json, const relay_chat_member_t *m) {
  unsigned n = 0;
  if (!m->present || m->type != RELAY_JSON_ARRAY) return 0;
  relay_json_visitor_t v = {calls_key, calls_value, &n, CALLS_DOCUMENT};
  if (relay_json_visit(json + m->start, m->end - m->start, &v) != 0) return 0;
  return n;
}
