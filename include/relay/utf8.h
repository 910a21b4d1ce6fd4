/* Well-formed UTF-8 out of text that arrives in pieces: a text a client
 * will decode as JSON strings must be valid UTF-8, and an upstream may cut
 * a character between two deltas or send bytes that are not UTF-8 at all. */
#ifndef RELAY_UTF8_H
#define RELAY_UTF8_H

#include <stddef.h>

#include "relay/buf.h"

/* The bytes of a sequence cut at the end of one piece, waiting for the next. */
typedef struct relay_utf8_tail_s {
  unsigned char b[4];
  size_t n;
} relay_utf8_tail_t;

/* Append tail + s (n bytes) to out as valid UTF-8: each maximal invalid
 * subpart (the Unicode well-formedness table: no overlongs, no surrogates,
 * nothing past U+10FFFF) becomes one U+FFFD; an incomplete sequence at the
 * end stays in tail. Returns 0 or RELAY_ENOMEM. */
int relay_utf8_clean(relay_utf8_tail_t *tail, const char *s, size_t n, relay_buf_t *out);
/* The end of the text: a sequence still waiting in tail is not a character
 * and becomes one U+FFFD. Returns 0 or RELAY_ENOMEM. */
int relay_utf8_finish(relay_utf8_tail_t *tail, relay_buf_t *out);
/* Whether s (n bytes) is valid UTF-8 through to its end. */
int relay_utf8_valid(const char *s, size_t n);
/* s (n bytes) appended to out as valid UTF-8, whole: clean + finish. */
int relay_utf8_clean_all(const char *s, size_t n, relay_buf_t *out);

#endif
