/* Lossless JSON edits with byte offsets from jsmn.
 *
 * The stock rewrite path never re-encodes upstream JSON: it finds the string it
 * rewrites, decodes it, and splices the re-encoded result back in place, so that
 * every other byte (key order, number spelling, [] and null) is kept.
 *
 * Documents are tokenized with jsmn (strict mode) and then checked: what jsmn
 * lets through (missing or extra commas and colons, bad literals and numbers,
 * several top-level values) is rejected with RELAY_EJSON, so an edit
 * never works on a misread document. Raw control characters inside strings
 * are tolerated, as most JSON readers do. A bare number or literal as the
 * whole document needs a trailing delimiter (a jsmn strict-mode rule; chat
 * documents are objects). Documents up to INT_MAX bytes; the token array
 * starts on the stack and grows on the heap for big documents. Nothing here
 * keeps state between calls: safe from any number of threads.
 *
 * Keys are matched on their decoded text ("\u0063ontent" is "content"). When
 * an object has the same key twice, the last one counts, as in JavaScript and
 * Python. Offsets are bytes from the start of the text passed in; a value's
 * span covers the whole token, quotes included for strings.
 */
#ifndef RELAY_JSON_SPLICE_H
#define RELAY_JSON_SPLICE_H

#include <stddef.h>

#include "relay/buf.h"
#include "relay/error.h"

/* Errors (relay/error.h): RELAY_EJSON (not valid JSON, or not the expected
 * shape), RELAY_ENOMEM (also a document over INT_MAX bytes), RELAY_ENOTFOUND
 * (a path that does not exist), RELAY_ETOODEEP (a path longer than
 * RELAY_JSON_MAX_PATH, or a document nested deeper than
 * RELAY_JSON_MAX_NESTING), RELAY_ETOOMANY (more choices than the caller has
 * room for), RELAY_EOVERLAP (two edits of a batch name the same value, or
 * one lies inside the other). */

#define RELAY_JSON_MAX_CHOICES 64
#define RELAY_JSON_MAX_PATH 32
/* Containers inside containers. Chat completions nest about 6 deep; the limit
 * keeps a hostile "[[[[..." from costing quadratic time inside jsmn. */
#define RELAY_JSON_MAX_NESTING 256

/* One element of choices[], as the rewrite needs it. All offsets are byte
 * offsets into the JSON text passed to relay_json_find_choices(). For a
 * string value, [start, end) runs from the opening quote to one past the
 * closing quote, so the encoded string body is [start + 1, end - 1): pass that
 * to relay_json_unescape(), and splice a new value as
 * json[0..start) + '"' + escaped + '"' + json[end..len). */
typedef struct relay_json_choice_s {
  long index;              /* the element's "index" member, else its array position */
  int has_container;       /* the "delta" / "message" member exists and is an object */
  size_t container_open;   /* offset of its '{' */
  size_t container_close;  /* offset of its '}' */
  int container_empty;     /* the object has no members */
  int has_content;         /* "content" member present in the container */
  int content_is_string;   /* its value is a string (else null or other) */
  size_t content_start;    /* value token start (the opening quote for strings) */
  size_t content_end;      /* one past the value token (past the closing quote) */
  int has_reasoning;       /* the container has the caller's reasoning_key member */
  int reasoning_is_string; /* its value is a string */
  size_t reasoning_start, reasoning_end; /* its value token, as for content */
  int finished;            /* "finish_reason" present and not null */
} relay_json_choice_t;

/* Parse a chat completion chunk or body and describe choices[i].<container>.
 * container is "delta" (SSE chunks) or "message" (JSON bodies).
 * reasoning_key, if not NULL, is also located (e.g. "reasoning_content").
 * out[k] describes the k-th element of the array in document order (look at
 * out[k].index for the choice it belongs to; n > 1 streams interleave).
 * Returns the number of choices found (>= 0) or a negative code: EINVAL when
 * the text is not valid JSON, the root is not an object, "choices" is neither
 * an array nor null, an element is not an object, or an "index" is not an
 * integer; ETOOMANY when there are more than max elements; ETOODEEP when
 * nested deeper than RELAY_JSON_MAX_NESTING. A document without "choices"
 * (or with "choices": null or []) gives 0. container must not be NULL.
 * A container member that is not an object (null) gives has_container 0.
 * Does not allocate unless the document has more than 256 JSON tokens; one
 * jsmn pass plus one pass over its tokens (see json_splice.c for costs). */
int relay_json_find_choices(const char *json, size_t len, const char *container,
                            const char *reasoning_key, relay_json_choice_t *out,
                            size_t max);

/* Decode the body of a JSON string token (text between the quotes) and append
 * it to out: all escapes including \uXXXX and surrogate pairs. Lone surrogates
 * decode to U+FFFD. An unknown escape, a short \u or a trailing backslash is
 * RELAY_EJSON (out is then left as it was). Other bytes, also raw
 * control characters and invalid UTF-8, are copied as they are.
 * Returns 0 or a negative code. */
int relay_json_unescape(const char *s, size_t len, relay_buf_t *out);

/* Append s encoded as a JSON string *without* the surrounding quotes: escapes
 * '"', '\\' and control characters below 0x20 only (\b \f \n \r \t, else
 * \u00xx), never '/', never non-ASCII; other bytes are copied unchanged, so
 * relay_json_unescape() gives s back exactly. Returns 0 or RELAY_ENOMEM. */
int relay_json_escape(relay_buf_t *out, const char *s, size_t len);

/* A path into a document: object keys and array indexes. */
typedef struct relay_json_path_seg_s {
  const char *key; /* decoded key; NULL for an array index */
  size_t key_len;
  long index;
} relay_json_path_seg_t;

/* Locate the value at path (depth 0 is the whole document). *start and *end are
 * the value token's offsets (quotes included for strings).
 * Returns 0, ENOTFOUND, ETOODEEP or EINVAL. */
int relay_json_find(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, size_t *start, size_t *end);

/* Append to out the document json with the value at path replaced by
 * raw_value (raw JSON text, not checked), or the member/element removed when
 * raw_value is NULL (its separating comma goes with it: the one after it, or
 * for the last one the one before it). Setting a missing last key of an
 * existing object inserts it as the object's last member (key escaped with
 * relay_json_escape), spelled like the members already there: the separator
 * before the last member (",\n  " in pretty JSON; "," with fewer than two
 * members) and the spacing around its ':' are reused; "{}" becomes
 * {"key":raw}. Everything else is copied byte for byte. depth 0 replaces the
 * whole document (removing it is EINVAL). Missing intermediate steps, a
 * missing array index, or removing a missing key are ENOTFOUND. On error out
 * is left as it was. */
int relay_json_edit(const char *json, size_t len, const relay_json_path_seg_t *path,
                    size_t depth, const char *raw_value, size_t raw_len, relay_buf_t *out);

/* One edit of a batch: the value at path (depth segments) set to raw JSON text
 * (raw_len bytes, not checked), or removed when raw is NULL. */
typedef struct relay_json_edit_s {
  const relay_json_path_seg_t *path;
  size_t depth;
  const char *raw;
  size_t raw_len;
} relay_json_edit_t;

/* Append to out the document json with all n edits applied, each exactly as
 * relay_json_edit() would apply it to the original document: every path is
 * read in the original (array positions do not shift when an earlier element
 * is removed), and the result is the same whatever the order of the edits,
 * except that several keys inserted into one object are appended in the
 * order the edits give them. Removing neighbouring items takes exactly one
 * separator per item, as relay_json_edit() one after another would.
 * One jsmn pass and one walk over the containers the paths go through, then
 * the output in one pass: linear in the document plus n log n, where n
 * relay_json_edit() calls would cost n passes over the document.
 * Returns 0 or a negative code with out left as it was: EOVERLAP when two
 * paths are equal or one is a prefix of the other (or a whole-document edit
 * is not alone), ENOTFOUND, EINVAL, ETOODEEP as for relay_json_edit(). When
 * failed is not NULL it gets the position of the first edit (in the given
 * order) that failed, for EOVERLAP the later of the two. n = 0 copies the
 * document (after checking it). */
int relay_json_edit_many(const char *json, size_t len, const relay_json_edit_t *edits, size_t n,
                         relay_buf_t *out, size_t *failed);

#endif
