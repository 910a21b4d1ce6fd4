/* The OpenAI `choices` of a chat completion chunk or body, as the chat
 * rewrite needs them: where each choice's content and reasoning strings sit,
 * and whether it finished. Pure (the text layer only), so unit tests and
 * fuzzers use it alone. */
#ifndef RELAY_FILTERS_CHOICES_H
#define RELAY_FILTERS_CHOICES_H

#include <stddef.h>

#include "relay/json_splice.h"

/* Elements of choices[] one document may have. */
#define RELAY_CHAT_MAX_CHOICES_PER_DOC 64

/* Reasoning members one call can look for. */
#define RELAY_CHAT_MAX_KEYS 4

/* A member of an object and its value. Offsets as below. */
typedef struct relay_chat_member_s {
  int present;             /* the member is there */
  relay_json_type_t type;  /* of its value */
  int empty;               /* the value is "", {} or [] */
  size_t key_start;        /* its key's opening quote */
  size_t start, end;       /* its value token */
} relay_chat_member_t;

/* One element of choices[]. All offsets are byte offsets into the JSON text
 * passed to relay_chat_find_choices(). For a string value, [start, end) runs
 * from the opening quote to one past the closing quote, so the encoded
 * string body is [start + 1, end - 1): pass that to relay_json_unescape(),
 * and splice a new value as json[0..start) + '"' + escaped + '"' +
 * json[end..len). */
typedef struct relay_chat_choice_s {
  long index;              /* the element's "index" member, else its array position */
  int has_container;       /* the "delta" / "message" member exists and is an object */
  size_t container_open;   /* offset of its '{' */
  size_t container_close;  /* offset of its '}' */
  int container_empty;     /* the object has no members */
  size_t container_members; /* how many it has */
  int has_content;         /* "content" member present in the container */
  int content_is_string;   /* its value is a string (else null or other) */
  size_t content_start;    /* value token start (the opening quote for strings) */
  size_t content_end;      /* one past the value token (past the closing quote) */
  /* The container's members named by the caller's keys, in the keys' order. */
  relay_chat_member_t reasoning[RELAY_CHAT_MAX_KEYS];
  relay_chat_member_t tool_calls; /* the container's "tool_calls" */
  relay_chat_member_t finish;     /* the element's "finish_reason" */
  int finished;            /* "finish_reason" present and not null */
} relay_chat_choice_t;

/* Parse a chat completion chunk or body and describe choices[i].<container>.
 * container is "delta" (SSE chunks) or "message" (JSON bodies). keys (nkeys
 * of them, at most RELAY_CHAT_MAX_KEYS; NULL when 0) are further members of
 * the container to locate, e.g. "reasoning_content" and "reasoning".
 * out[k] describes the k-th element of the array in document order (look at
 * out[k].index for the choice it belongs to; n > 1 streams interleave).
 * Returns the number of choices found (>= 0) or a negative code: RELAY_EJSON
 * when the text is not valid JSON, the root is not an object, "choices" is
 * neither an array nor null, an element is not an object, or an "index" is
 * not an integer; RELAY_ETOOMANY when there are more than max elements;
 * RELAY_ETOODEEP when nested deeper than RELAY_JSON_MAX_NESTING; RELAY_EINVAL
 * for more than RELAY_CHAT_MAX_KEYS keys. A document without "choices" (or
 * with "choices": null or []) gives 0. A container member that is not an
 * object (null) gives has_container 0. When a key repeats, the last one
 * counts. One validating pass (relay_json_visit); no allocation unless the
 * document has more than 256 JSON tokens. */
int relay_chat_find_choices(const char *json, size_t len, const char *container, const char *const *keys,
                            size_t nkeys, relay_chat_choice_t *out, size_t max);

/* Tool calls that begin in an upstream's tool_calls array (m, found by the
 * picker): its elements with a non-empty "id" (a stream's later pieces of a
 * call carry none). For the metrics; 0 for anything but an array. */
unsigned relay_chat_count_call_starts(const char *json, const relay_chat_member_t *m);

#endif
