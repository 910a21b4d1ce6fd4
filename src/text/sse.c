/* Incremental SSE event framer; see include/relay/sse.h for the contract.
 *
 * The scanner works on one event at a time, with every offset relative to the
 * event's first byte. That event is either wholly inside the current input
 * (scanned and delivered in place, no copy) or was cut by the end of an input
 * and lives in s->buf, which then grows line by line. Because offsets are
 * relative, an event can move from the input to the buffer mid-scan without
 * any fix-up, and bytes are never scanned twice for line ends.
 */
#include "relay/sse.h"

#include <string.h>

#define SSE_DEFAULT_MAX_EVENT ((size_t)1 << 20)

static const char sse_bom[3] = {'\xEF', '\xBB', '\xBF'};

/* Start every stream in the same state; the buffers are allocated lazily so
 * that a framer that never sees a cut event never allocates. */
int relay_sse_init(relay_sse_t *s, size_t max_event) {
  memset(s, 0, sizeof *s);
  relay_buf_init(&s->buf);
  relay_buf_init(&s->joined);
  s->max_event = max_event ? max_event : SSE_DEFAULT_MAX_EVENT;
  if (s->max_event > (size_t)-1 / 2) s->max_event = (size_t)-1 / 2; /* max_event + 1 must not wrap */
  s->stream_start = 1;
  return 0;
}

void relay_sse_dispose(relay_sse_t *s) {
  relay_buf_dispose(&s->buf);
  relay_buf_dispose(&s->joined);
}


/* Forget the event in progress but keep the buffers' memory, so that the
 * steady state (one event after another) does not allocate. */
static void sse_event_reset(relay_sse_t *s) {
  s->buf.len = 0;
  s->line_start = 0;
  s->pending_cr = 0;
  s->held = 0;
  s->data_lines = 0;
  s->has_event = 0;
  s->joined.len = 0;
  s->bom = 0;
}

/* Remember what one complete, non-empty line says. Only data: and event:
 * matter to callers; comments and other fields stay in raw untouched. The
 * join buffer is only used from the second data line on, since a single data
 * line (the normal case) can be handed out in place. */
static int sse_line(relay_sse_t *s, const char *ev, size_t ls, size_t le) {
  const char *l = ev + ls;
  size_t n = le - ls;
  if (l[0] == ':') return 0; /* comment */
  const char *colon = memchr(l, ':', n);
  size_t name_len = colon ? (size_t)(colon - l) : n;
  size_t vs = colon ? name_len + 1 : n;
  if (vs < n && l[vs] == ' ') vs++;

  if (name_len == 4 && memcmp(l, "data", 4) == 0) {
    if (s->data_lines == 1) {
      s->joined.len = 0;
      if (relay_buf_append(&s->joined, ev + s->data_off, s->data_len)) return RELAY_ENOMEM;
    }
    if (s->data_lines == 0) {
      s->data_off = ls + vs;
      s->data_len = n - vs;
    } else if (relay_buf_append(&s->joined, "\n", 1) ||
               relay_buf_append(&s->joined, l + vs, n - vs)) {
      return RELAY_ENOMEM;
    }
    s->data_lines++;
  } else if (name_len == 5 && memcmp(l, "event", 5) == 0) {
    s->has_event = 1;
    s->event_off = ls + vs;
    s->event_len = n - vs;
  }
  return 0;
}

/* Where the next '\n' is, remembered across lines and across the events of
 * one input: a CR-only stream has none, and looking for it again from every
 * line would rescan the rest of the input each time. memchr searched
 * [from, limit), the end of the bytes at hand, and found at (NULL: none). */
typedef struct sse_lf_s {
  const char *from, *at, *limit;
} sse_lf_t;

/* The next '\n' in [x, end), or end; end <= lf->limit. */
static const char *sse_next_lf(sse_lf_t *lf, const char *x, const char *end) {
  if (!lf->from || x < lf->from || (lf->at && lf->at < x)) {
    lf->from = x;
    lf->at = memchr(x, '\n', (size_t)(lf->limit - x));
  }
  return lf->at && lf->at < end ? lf->at : end;
}

/* Scan ev[i..avail) of the event starting at ev, resuming the line state kept
 * in s. Returns 1 with *evlen set when an empty line completes the event, 0
 * when more bytes are needed, or a negative code. Line ends are found with
 * memchr: '\n' through the cache, then '\r' only up to that '\n'. */
static int sse_scan(relay_sse_t *s, const char *ev, size_t i, size_t avail, size_t *evlen,
                    sse_lf_t *lf) {
  while (i < avail) {
    if (s->pending_cr) { /* is the byte after a '\r' line end its '\n'? */
      s->pending_cr = 0;
      if (ev[i] == '\n') s->line_start = ++i;
      if (s->held) {
        s->held = 0;
        *evlen = i;
        return 1;
      }
      continue;
    }
    size_t next_lf = (size_t)(sse_next_lf(lf, ev + i, ev + avail) - ev);
    size_t q = next_lf;
    const char *r = memchr(ev + i, '\r', q - i);
    if (r) q = (size_t)(r - ev);
    if (q == avail) break; /* the line is not complete yet */

    size_t ls = s->line_start;
    if (s->stream_start) {
      if (q - ls >= 3 && memcmp(ev + ls, sse_bom, 3) == 0) {
        ls += 3;
        s->bom = 1;
      }
      s->stream_start = 0;
    }
    int blank = (q == ls);
    if (!blank) {
      int rc = sse_line(s, ev, ls, q);
      if (rc) return rc;
    }
    i = q + 1;
    s->line_start = i;
    if (ev[q] == '\r') {
      s->pending_cr = 1;
      s->held = blank;
    } else if (blank) {
      *evlen = i;
      return 1;
    }
  }
  return 0;
}

/* Hand one complete event to the callback, resolving the relative offsets
 * against wherever its bytes are now. */
static void sse_deliver(relay_sse_t *s, const char *ev, size_t n, relay_sse_event_cb cb,
                        void *ud) {
  relay_sse_event_t e;
  memset(&e, 0, sizeof e);
  e.raw = ev;
  e.raw_len = n;
  e.data_lines = s->data_lines;
  if (s->data_lines == 1) {
    e.data = ev + s->data_off;
    e.data_len = s->data_len;
    e.single_data_line = 1;
    e.data_offset = s->data_off;
  } else if (s->data_lines > 1) {
    e.data = s->joined.data;
    e.data_len = s->joined.len;
  }
  if (s->has_event) {
    e.event = ev + s->event_off;
    e.event_len = s->event_len;
  }
  e.is_done = e.data && e.data_len == 6 && memcmp(e.data, "[DONE]", 6) == 0;
  e.bom = s->bom;
  cb(ud, &e);
}

/* How many bytes from x up to and including the next line end, or up to end
 * if there is none. Used to grow a cut event one line at a time. */
static size_t sse_line_span(sse_lf_t *lf, const char *x, const char *end) {
  const char *q = sse_next_lf(lf, x, end);
  const char *cr = memchr(x, '\r', (size_t)(q - x));
  if (cr) q = cr;
  return q < end ? (size_t)(q - x) + 1 : (size_t)(end - x);
}

/* Events wholly inside the input are delivered in place; the first one cut by
 * the end of the input is copied to the buffer. When an event is already in
 * the buffer it is extended by at most one line per step (bounded by
 * max_event + 1), so that no byte of a following event is copied; a byte taken
 * only to learn whether a '\n' follows a '\r' is given back. *p counts the
 * input bytes taken (delivered or buffered), also when an error returns. */
static int sse_feed(relay_sse_t *s, const char *data, size_t len, relay_sse_event_cb cb, void *ud,
                    size_t *pp) {
  size_t p = 0, evlen;
  sse_lf_t lf_in = {NULL, NULL, data + len}; /* for the input, kept across its events */
  int rc = 0;
  while (p < len) {
    size_t room = s->max_event + 1 - s->buf.len;
    if (s->buf.len == 0) {
      size_t avail = len - p < room ? len - p : room;
      rc = sse_scan(s, data + p, 0, avail, &evlen, &lf_in);
      if (rc < 0) break;
      if (rc == 1) {
        if (evlen > s->max_event) {
          rc = RELAY_ETOOBIG;
          break;
        }
        sse_deliver(s, data + p, evlen, cb, ud);
        sse_event_reset(s);
        p += evlen;
        rc = 0;
        continue;
      }
      if (avail > s->max_event) {
        rc = RELAY_ETOOBIG;
        break;
      }
      if (relay_buf_append(&s->buf, data + p, avail)) {
        rc = RELAY_ENOMEM;
        break;
      }
      p += avail;
      continue;
    }
    size_t take = s->pending_cr ? 1 : sse_line_span(&lf_in, data + p, data + len);
    if (take > room) take = room;
    size_t from = s->buf.len;
    if (relay_buf_append(&s->buf, data + p, take)) {
      rc = RELAY_ENOMEM;
      break;
    }
    p += take;
    sse_lf_t lf_buf = {NULL, NULL, s->buf.data + s->buf.len}; /* the buffer moves as it grows */
    rc = sse_scan(s, s->buf.data, from, s->buf.len, &evlen, &lf_buf);
    if (rc < 0) break;
    if (rc == 0) {
      if (s->buf.len > s->max_event) {
        rc = RELAY_ETOOBIG;
        break;
      }
      continue;
    }
    if (evlen > s->max_event) {
      rc = RELAY_ETOOBIG; /* the bytes past it stay in the buffer: they are in the rest */
      break;
    }
    p -= s->buf.len - evlen; /* bytes past the event go back to the input */
    sse_deliver(s, s->buf.data, evlen, cb, ud);
    sse_event_reset(s);
    rc = 0;
  }
  *pp = p;
  return rc;
}

/* The count of bytes taken is handed to the caller, never kept in the framer,
 * so that no later call (finish() resets the framer) can change what a
 * caller falling back to passthrough relies on. An error is sticky. */
int relay_sse_feed(relay_sse_t *s, const char *data, size_t len, relay_sse_event_cb cb, void *ud,
                   size_t *used) {
  *used = 0;
  if (s->err) return s->err;
  if (len == 0) return 0;
  int rc = sse_feed(s, data, len, cb, ud, used);
  if (rc) s->err = rc;
  return rc;
}

/* Whatever was not delivered goes back to the caller unchanged; the framer
 * then starts over, keeping its memory. */
void relay_sse_finish(relay_sse_t *s, const char **rest, size_t *rest_len) {
  *rest = s->buf.len ? s->buf.data : "";
  *rest_len = s->buf.len;
  sse_event_reset(s);
  s->stream_start = 1;
  s->err = 0;
}

/* Offset of the first CR or LF in d[0..len), or len. lf caches the next LF
 * (NULL: none left), so that data made of CRs alone is not rescanned for an
 * LF at every line: the whole value is searched once for each kind. */
static size_t sse_next_break(const char *d, size_t len, const char **lf) {
  const char *stop = *lf ? *lf : d + len;
  const char *cr = memchr(d, '\r', (size_t)(stop - d));
  return (size_t)((cr ? cr : stop) - d);
}

/* Append a data value; each line break in it (CR, LF or CRLF) becomes the
 * line end eol and a new "data: " line, so the value cannot end the line, the
 * event or the stream's framing early. The first line's prefix and the last
 * line's end are the caller's. */
static int sse_put_value(relay_buf_t *out, const char *d, size_t len, const char *eol, size_t eol_len) {
  const char *lf = memchr(d, '\n', len);
  for (;;) {
    size_t n = sse_next_break(d, len, &lf);
    if (relay_buf_append(out, d, n)) return RELAY_ENOMEM;
    if (n == len) return 0;
    size_t skip = d[n] == '\r' && n + 1 < len && d[n + 1] == '\n' ? 2 : 1;
    if (relay_buf_append(out, eol, eol_len) || relay_buf_append(out, "data: ", 6)) return RELAY_ENOMEM;
    d += n + skip;
    len -= n + skip;
    if (lf && lf < d) lf = memchr(d, '\n', len);
  }
}

/* The separator between a data line's name and a new value: the line kept
 * up to the value ("data: ", "data:" or a bare "data") must still read as a
 * data line whose value starts with the value's first byte, a space
 * included (the parser drops one space after the colon). */
static int sse_put_separator(relay_buf_t *out, char last, const char *d, size_t len) {
  int space = len > 0 && d[0] == ' ';
  if (last == ' ') return 0;
  if (last != ':' && relay_buf_append(out, ":", 1)) return RELAY_ENOMEM;
  return space && relay_buf_append(out, " ", 1) ? RELAY_ENOMEM : 0;
}

/* The line end at raw[at] (the event is complete, so there is one). */
static size_t sse_eol_len(const char *raw, size_t raw_len, size_t at) {
  return raw[at] == '\r' && at + 1 < raw_len && raw[at + 1] == '\n' ? 2 : 1;
}

/* An event with several data lines (or none) is rebuilt line by line: the
 * first data line carries the new value, later ones go, others stay. Field
 * names are read as the framer read them (a stream's BOM is not part of one). */
static int sse_rebuild(const relay_sse_event_t *ev, const char *data, size_t len, relay_buf_t *out) {
  const char *raw = ev->raw;
  size_t n = ev->raw_len, i = ev->bom ? 3 : 0;
  int put = 0;
  if (relay_buf_append(out, raw, i)) return RELAY_ENOMEM;
  while (i < n) {
    size_t q = i;
    while (q < n && raw[q] != '\r' && raw[q] != '\n') q++;
    if (q == n) return relay_buf_append(out, raw + i, n - i) ? RELAY_ENOMEM : 0;
    size_t el = sse_eol_len(raw, n, q);
    const char *l = raw + i;
    size_t ll = q - i;
    int is_data = ll >= 4 && memcmp(l, "data", 4) == 0 && (ll == 4 || l[4] == ':');
    if (ll == 0 && !put) { /* the empty line: a data line goes before it */
      if (relay_buf_append(out, "data: ", 6) || sse_put_value(out, data, len, raw + q, el) ||
          relay_buf_append(out, raw + q, el))
        return RELAY_ENOMEM;
      put = 1;
    }
    if (is_data && !put) {
      size_t vs = ll == 4 ? 4 : (ll > 5 && l[5] == ' ' ? 6 : 5);
      if (relay_buf_append(out, l, vs) || sse_put_separator(out, l[vs - 1], data, len) ||
          sse_put_value(out, data, len, raw + q, el) || relay_buf_append(out, raw + q, el))
        return RELAY_ENOMEM;
      put = 1;
    } else if (!is_data) {
      /* A data line that went may have stood between a bare CR line end and
       * the LF of the empty line: CR then LF would read as one CRLF, and the
       * event would not end. A comment line keeps them two line ends. */
      if (ll == 0 && raw[q] == '\n' && out->len && out->data[out->len - 1] == '\r' &&
          relay_buf_append(out, ":\n", 2))
        return RELAY_ENOMEM;
      if (relay_buf_append(out, l, ll + el)) return RELAY_ENOMEM;
    }
    i = q + el;
  }
  return 0;
}

/* A single data line (nearly every event) is replaced in place: the bytes
 * before and after it are copied as they are, with no line walk. */
int relay_sse_event_with_data(const relay_sse_event_t *ev, const char *data, size_t len, relay_buf_t *out) {
  if (!ev->single_data_line) return sse_rebuild(ev, data, len, out);
  size_t at = ev->data_offset, after = at + ev->data_len;
  size_t el = sse_eol_len(ev->raw, ev->raw_len, after);
  if (relay_buf_append(out, ev->raw, at) || sse_put_separator(out, ev->raw[at - 1], data, len) ||
      sse_put_value(out, data, len, ev->raw + after, el) ||
      relay_buf_append(out, ev->raw + after, ev->raw_len - after))
    return RELAY_ENOMEM;
  return 0;
}

int relay_sse_append_event(relay_buf_t *out, const char *data, size_t len) {
  if (relay_buf_append(out, "data: ", 6) || sse_put_value(out, data, len, "\n", 1) ||
      relay_buf_append(out, "\n\n", 2))
    return RELAY_ENOMEM;
  return 0;
}
