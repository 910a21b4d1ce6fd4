/* Incremental Server-Sent-Events framer.
 *
 * Bytes go in cut anywhere (mid-line, mid-CRLF); complete events come out, each
 * as the exact raw bytes it occupied in the stream (so an event that is not
 * rewritten goes out byte for byte) plus the offsets of its data payload.
 * Line ends may be "\n", "\r\n" or "\r"; an event ends at an empty line.
 * Comment lines (": ping") and event:/id:/retry: fields stay in the raw bytes.
 */
#ifndef RELAY_SSE_H
#define RELAY_SSE_H

#include <stddef.h>

#define RELAY_SSE_ENOMEM -1
#define RELAY_SSE_ETOOBIG -2 /* one event longer than the framer's limit */

typedef struct relay_sse_event_s {
  const char *raw;   /* the whole event including its terminating blank line */
  size_t raw_len;
  /* The data payload: the values of all data: lines joined with "\n", as the
   * SSE spec builds it. Points into raw when there is a single data line
   * (the common case), else into a framer-owned buffer. NULL if no data line. */
  const char *data;
  size_t data_len;
  int single_data_line; /* 1 when data lies inside raw at data_offset */
  size_t data_offset;   /* offset of data inside raw, when single_data_line */
  int is_done;          /* data is exactly "[DONE]" */
} relay_sse_event_t;

typedef void (*relay_sse_event_cb)(void *ud, const relay_sse_event_t *ev);

typedef struct relay_sse_s {
  char *buf; /* bytes of the event in progress */
  size_t len, cap;
  size_t scan;      /* bytes of buf already scanned for line ends */
  size_t line_start;
  int pending_cr;   /* last byte seen was '\r' (a following '\n' belongs to it) */
  char *joined;     /* multi-line data join buffer */
  size_t joined_cap;
  size_t max_event; /* limit on one event's size */
} relay_sse_t;

int relay_sse_init(relay_sse_t *s, size_t max_event);
/* Feed bytes; calls cb once per complete event, in order. */
int relay_sse_feed(relay_sse_t *s, const char *data, size_t len, relay_sse_event_cb cb, void *ud);
/* End of stream: bytes of an unterminated last event (may be empty) are
 * returned through *rest so the caller can pass them on unchanged. */
void relay_sse_finish(relay_sse_t *s, const char **rest, size_t *rest_len);
void relay_sse_close(relay_sse_t *s);
const char *relay_sse_strerror(int err);

#endif
