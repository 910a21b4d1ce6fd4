/* Incremental Server-Sent-Events framer.
 *
 * Bytes go in cut anywhere (mid-line, between '\r' and '\n'); complete events
 * come out, in order, each as the exact raw bytes it occupied in the stream
 * (so an event that is not rewritten goes out byte for byte) plus its data
 * payload. The concatenation of the raw bytes of all events, followed by the
 * rest returned by relay_sse_finish(), is exactly the input.
 *
 * Framing follows the SSE spec (HTML Living Standard, "Parsing an event
 * stream"): line ends are "\n", "\r\n" or "\r"; an event ends at an empty line.
 * Every block ending in an empty line is delivered, also one with no data
 * line (only comments such as ": ping", or a stray empty line): its data is
 * then NULL and the caller passes raw on. event:/id:/retry: lines and comments
 * stay in raw. A UTF-8 BOM at the very start of the stream is skipped for
 * field parsing (it stays in raw).
 *
 * Cutting the input differently never changes the events. One consequence:
 * when an event's empty line ends in a bare '\r' that is the last byte fed so
 * far, the event is held until the next byte shows whether a '\n' belongs to
 * it (a CR-only stream therefore delivers each event when the next one starts
 * to arrive); at end of stream such an event is part of finish()'s rest.
 *
 * Copies: an event that lies whole inside one feed() input is delivered
 * pointing into that input (no copy); only the bytes of an event cut by the
 * end of an input are copied into the framer's buffer, which is reused, so the
 * steady state does not allocate.
 *
 * Errors: an event longer than the limit (or out of memory) ends the framing.
 * feed() then says through *used how much of its input it took; the bytes not
 * delivered as events are exactly finish()'s rest followed by input[*used..],
 * so a caller that falls back to passing the stream through loses nothing and
 * repeats nothing. *used belongs to the caller: nothing the framer does later
 * (finish() included) can change it.
 *
 * Writing: relay_sse_event_with_data() and relay_sse_append_event() put new
 * data into an event. Every line break in the new data (CR, LF or CRLF, the
 * three SSE line ends) continues on a new "data:" line, so the client reads one
 * event whose data is the new data with each break as LF; a leading space is
 * kept. Text from anywhere (a script, a template) cannot split or end an event.
 */
#ifndef RELAY_SSE_H
#define RELAY_SSE_H

#include <stddef.h>

#include "relay/buf.h"
#include "relay/error.h"

/* Errors (relay/error.h): RELAY_ENOMEM, RELAY_ETOOBIG (one event longer than
 * the framer's limit). */

typedef struct relay_sse_event_s {
  /* The whole event including its terminating empty line. Valid only during
   * the callback: it points into the feed() input or the framer's buffer. */
  const char *raw;
  size_t raw_len;
  /* The data payload: the values of all data: lines joined with "\n", as the
   * SSE spec builds it (one space after "data:" is not part of the value).
   * Points into raw when there is a single data line (the common case), else
   * into a framer-owned buffer. NULL (data_len 0) if there is no data line;
   * "" for a data line with an empty value. Valid only during the callback. */
  const char *data;
  size_t data_len;
  int single_data_line; /* exactly one data line: data == raw + data_offset */
  size_t data_offset;   /* offset of data inside raw, when single_data_line */
  size_t data_lines;    /* number of data: lines */
  /* Value of the last event: line (points into raw), NULL if none. */
  const char *event;
  size_t event_len;
  int is_done; /* data is exactly "[DONE]" */
  int bom;     /* raw starts with the stream's UTF-8 BOM (3 bytes, not a field) */
} relay_sse_event_t;

/* Called once per event; must not call back into the same framer. */
typedef void (*relay_sse_event_cb)(void *ud, const relay_sse_event_t *ev);

/* All fields are private. Offsets are relative to the start of the event in
 * progress, whose bytes so far are in buf when it was cut by an input's end. */
typedef struct relay_sse_s {
  relay_buf_t buf;   /* bytes of the event in progress (when cut by an input's end) */
  size_t max_event;  /* limit on one event's raw size */
  size_t line_start; /* start of the line being scanned */
  int pending_cr;    /* last byte seen was a '\r' line end; a '\n' may follow */
  int held;          /* that '\r' ended an empty line: event complete but for a '\n' */
  int stream_start;  /* no line of the stream finished yet (BOM check) */
  /* What the complete lines of the event in progress said so far. */
  size_t data_lines;
  size_t data_off, data_len; /* first data value */
  int has_event;
  size_t event_off, event_len; /* last event: value */
  relay_buf_t joined;          /* data values joined with "\n" once there are two */
  int bom;                     /* the event in progress starts with the BOM */
  int err; /* sticky error code, 0 while healthy */
} relay_sse_t;

/* max_event bounds one event's raw size (0 means 1 MiB). Never fails today;
 * returns 0 so callers can treat it like the other init functions. */
int relay_sse_init(relay_sse_t *s, size_t max_event);
/* Feed bytes; calls cb once per complete event, in order. *used (required)
 * is set on every return: len after success; after an error, the bytes of
 * this input that were delivered in events or went into the buffer (so they
 * are in finish()'s rest). Returns 0, or a negative code after which the
 * framer is done until finish(): feeding again gives the same error with
 * *used = 0. */
int relay_sse_feed(relay_sse_t *s, const char *data, size_t len, relay_sse_event_cb cb, void *ud,
                   size_t *used);
/* End of stream, or giving up after an error: the bytes not delivered as
 * events (an unterminated last event, one held for a possible '\n', or the
 * event in progress when an error struck; often empty) are returned through
 * *rest so the caller can pass them on unchanged. *rest stays valid until the
 * next feed() or close(). The framer is reset and may take a new stream. */
void relay_sse_finish(relay_sse_t *s, const char **rest, size_t *rest_len);
void relay_sse_dispose(relay_sse_t *s);

/* Append to out the event ev (as delivered to a callback) with its data
 * replaced by data[0..len): the first data line gets the new data (its
 * breaks continued on new "data: " lines ending like that line), further
 * data lines are dropped, every other line and line end stays as it was. An
 * event without a data line gets one before its empty line. Returns 0 or
 * RELAY_ENOMEM (out may then hold part of the event). */
int relay_sse_event_with_data(const relay_sse_event_t *ev, const char *data, size_t len, relay_buf_t *out);
/* Append a whole event made of data alone: "data: " lines ending in "\n",
 * then the empty line. Returns 0 or RELAY_ENOMEM. */
int relay_sse_append_event(relay_buf_t *out, const char *data, size_t len);

#endif
