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
 * room for), RELAY_ETOOBIG (more than RELAY_JSON_MAX_TOKENS tokens), RELAY_EOVERLAP (two edits of a batch name the same value, or
 * one lies inside the other). */

#define RELAY_JSON_MAX_PATH 32
/* Containers inside containers. Chat completions nest about 6 deep; the limit
 * keeps a hostile "[[[[..." from costing quadratic time inside jsmn. */
#define RELAY_JSON_MAX_NESTING 256
/* Tokens of one document (20 bytes each): a hostile "[1,1,1,..." body makes
 * one per two bytes, so the token array is capped rather than left to grow
 * to ten times the body. A chat body with 50,000 logprobs has about 500,000. */
#define RELAY_JSON_MAX_TOKENS (1u << 20)

/* A walk over a document, for readers that want a few members of a known
 * shape (the chat filter's choices) in the same single pass that validates
 * the document: no second walk, no allocation for small documents. The
 * visitor is told of the members of the objects it follows and of the
 * elements of the arrays it follows, and chooses which of those containers
 * it follows in turn, by giving them a nonzero tag. */
typedef enum {
  RELAY_JSON_OBJECT = 1,
  RELAY_JSON_ARRAY,
  RELAY_JSON_STRING,
  RELAY_JSON_PRIMITIVE /* a number, true, false or null */
} relay_json_type_t;

/* A value as the walk meets it. [start, end) is the whole token, quotes
 * included for a string (its encoded body is [start + 1, end - 1)). */
typedef struct relay_json_value_s {
  relay_json_type_t type;
  size_t start, end;
  int size; /* members or elements of a container */
} relay_json_value_t;

typedef struct relay_json_visitor_s {
  /* A member key of an object followed with tag `object`: returns the tag
   * its value is reported with (0: not wanted). raw is the key as written
   * (between the quotes); escaped: it holds a backslash (compare it with
   * relay_json_key_is, which decodes). */
  int (*key)(void *ud, int object, const char *raw, size_t len, int escaped);
  /* A value wanted by its key's tag, or an element of an array followed
   * with tag `tag`: returns the tag to follow it with, when it is an object
   * or an array (0: not followed). */
  int (*value)(void *ud, int tag, const relay_json_value_t *v);
  void *ud;
  int root; /* the tag the root value is reported with (0: not wanted) */
} relay_json_visitor_t;

/* Validate json (the checks of relay_json_find) and walk it with v, in
 * document order. Returns 0, RELAY_EJSON, RELAY_ETOODEEP or RELAY_ENOMEM.
 * Work is one jsmn pass plus one pass over its tokens. */
int relay_json_visit(const char *json, size_t len, const relay_json_visitor_t *v);
/* Whether a raw key decodes to want (wlen bytes). */
int relay_json_key_is(const char *raw, size_t len, int escaped, const char *want, size_t wlen);
/* A value that is an integer fitting a long (no fraction, no exponent). 0 or
 * RELAY_EJSON. */
int relay_json_parse_long(const char *json, const relay_json_value_t *v, long *out);
/* Whether the value is the literal null. */
int relay_json_is_null(const char *json, const relay_json_value_t *v);

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

/* A byte range [start, end) of a document. */
typedef struct relay_json_span_s {
  size_t start, end;
} relay_json_span_t;

/* Removing members of one object without a second parse: members[i] is a
 * member of the object, from its key's opening quote to one past its value
 * (offsets a validating pass gave), n of them in document order. cuts[i]
 * gets the bytes to delete for members[i]: a member goes with the separator
 * before it when some member that stays comes before it, else with the one
 * after it (or alone when no member follows), so that deleting all the cuts
 * leaves the object valid, every other byte as it was. Only the whitespace
 * and commas between members are read. The cuts are in document order and
 * never overlap each other or a member that stays (a member's value may be
 * replaced in the same pass). */
void relay_json_member_cuts(const char *json, const relay_json_span_t *members, size_t n, relay_json_span_t *cuts);

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
