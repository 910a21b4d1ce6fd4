/* libFuzzer target for the SSE framer and the JSON splice.
 *
 * Input: byte 0 picks the framer's event limit and whether the rest is the
 * stream itself or lines of content text put into chat chunk events (see
 * fz_template), bytes 1-2 a split point. The stream is framed whole, split in two at the chosen
 * point, and one byte at a time; all three must give the same events (raw,
 * data, event name, [DONE]) and the same rest or error, and raw events + rest
 * must be the input; after an error (an event over a tiny limit), the events
 * delivered, finish()'s rest and the input from *used on must be the input,
 * each byte once. Each event of the whole run is also rebuilt with new data
 * (its own raw bytes, every kind of line break in them) and framed again: one
 * event, the new data with breaks as LF, the other lines unchanged. Each
 * event's data then goes through find_choices, the string round trips and
 * the edits. Any broken promise calls abort().
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "choices.h"
#include "relay/json_splice.h"
#include "relay/sse.h"

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

typedef struct fz_run_s {
  relay_buf_t log;   /* every event serialized, to compare runs */
  relay_buf_t bytes; /* raw events then rest: must equal the input */
  relay_buf_t datas; /* each event's data, length-prefixed, for the JSON checks */
  int err;
  int rebuild; /* check relay_sse_event_with_data on every event */
} fz_run_t;

static void fz_put(relay_buf_t *b, const void *p, size_t n) {
  FUZZ_CHECK(relay_buf_append(b, &n, sizeof n) == 0);
  FUZZ_CHECK(relay_buf_append(b, p, n) == 0);
}

/* What a second framer makes of a rebuilt event. */
typedef struct fz_back_s {
  int skip; /* the sentinel empty event still to come first */
  size_t n, data_lines;
  relay_buf_t data, event, raw;
  int has_data, has_event;
} fz_back_t;

static void fz_back_cb(void *ud, const relay_sse_event_t *e) {
  fz_back_t *b = ud;
  if (b->skip) {
    b->skip = 0;
    FUZZ_CHECK(e->raw_len == 1 && !e->data);
    return;
  }
  if (b->n++) return;
  if (e->data) FUZZ_CHECK(relay_buf_append(&b->data, e->data, e->data_len) == 0);
  FUZZ_CHECK(relay_buf_append(&b->raw, e->raw, e->raw_len) == 0);
  if (e->event) FUZZ_CHECK(relay_buf_append(&b->event, e->event, e->event_len) == 0);
  b->has_data = e->data != NULL;
  b->has_event = e->event != NULL;
  b->data_lines = e->data_lines;
}

static int fz_same(const relay_buf_t *a, const char *p, size_t n) {
  return a->len == n && (n == 0 || memcmp(a->data, p, n) == 0);
}

/* The lines of an event that are not data lines (after the BOM, if it has
 * one), in order: a rebuilt event must keep them byte for byte (empty
 * comment lines aside). */
static void fz_other_lines(const char *raw, size_t n, int bom, relay_buf_t *out) {
  size_t i = bom ? 3 : 0;
  while (i < n) {
    size_t q = i;
    while (q < n && raw[q] != '\r' && raw[q] != '\n') q++;
    size_t e = q < n ? q + 1 : q;
    if (q < n && raw[q] == '\r' && q + 1 < n && raw[q + 1] == '\n') e++;
    int data_line = q - i >= 4 && memcmp(raw + i, "data", 4) == 0 && (q - i == 4 || raw[i + 4] == ':');
    /* an empty comment line ":" LF is what the writer adds to keep a CR
     * and an LF from reading as one CRLF: not compared */
    int empty_comment = q - i == 1 && raw[i] == ':' && e - q == 1 && raw[q] == '\n';
    if (!data_line && !empty_comment) FUZZ_CHECK(relay_buf_append(out, raw + i, e - i) == 0);
    i = e;
  }
}

/* Frame out as the relay's client would: mid-stream (an empty line first
 * ends the stream start, so that a BOM is a BOM only where the original
 * event had one), then one more byte so a CR-ended event is delivered. It
 * must give exactly one event with data x (line breaks as LF), one data
 * line per line, and the name and other lines of the original event. */
static void fz_check_rebuilt(const relay_sse_event_t *e, const relay_buf_t *out, const char *x, size_t xlen) {
  relay_sse_t s;
  fz_back_t b;
  size_t used;
  const char *rest;
  size_t rest_len;
  memset(&b, 0, sizeof b);
  b.skip = !e->bom;
  relay_sse_init(&s, out->len + 16);
  if (!e->bom) FUZZ_CHECK(relay_sse_feed(&s, "\n", 1, fz_back_cb, &b, &used) == 0);
  FUZZ_CHECK(relay_sse_feed(&s, out->data, out->len, fz_back_cb, &b, &used) == 0);
  FUZZ_CHECK(relay_sse_feed(&s, ":", 1, fz_back_cb, &b, &used) == 0);
  relay_sse_finish(&s, &rest, &rest_len);
  FUZZ_CHECK(b.n == 1 && b.has_data && !b.skip && rest_len == 1);
  relay_buf_t want, a, c;
  relay_buf_init(&want);
  relay_buf_init(&a);
  relay_buf_init(&c);
  size_t lines = 1;
  for (size_t i = 0; i < xlen; i++) {
    int brk = x[i] == '\r' || x[i] == '\n';
    if (x[i] == '\r' && i + 1 < xlen && x[i + 1] == '\n') i++;
    lines += brk;
    FUZZ_CHECK(relay_buf_append(&want, brk ? "\n" : x + i, 1) == 0);
  }
  FUZZ_CHECK(fz_same(&b.data, want.data, want.len) && b.data_lines == lines);
  FUZZ_CHECK(b.has_event == (e->event != NULL));
  if (e->event) FUZZ_CHECK(fz_same(&b.event, e->event, e->event_len));
  fz_other_lines(e->raw, e->raw_len, e->bom, &a);
  fz_other_lines(b.raw.data, b.raw.len, e->bom, &c);
  FUZZ_CHECK(fz_same(&a, c.data, c.len));
  relay_sse_dispose(&s);
  relay_buf_dispose(&want);
  relay_buf_dispose(&a);
  relay_buf_dispose(&c);
  relay_buf_dispose(&b.data);
  relay_buf_dispose(&b.event);
  relay_buf_dispose(&b.raw);
}

/* New data into the event: its own raw bytes (every kind of line break the
 * input has, empty lines, field-like text), and through append_event. */
static void fz_rebuild(const relay_sse_event_t *e) {
  relay_buf_t out;
  relay_buf_init(&out);
  FUZZ_CHECK(relay_sse_event_with_data(e, e->raw, e->raw_len, &out) == 0);
  fz_check_rebuilt(e, &out, e->raw, e->raw_len);
  relay_sse_event_t plain;
  memset(&plain, 0, sizeof plain);
  plain.raw = "\n";
  plain.raw_len = 1;
  out.len = 0;
  FUZZ_CHECK(relay_sse_append_event(&out, e->raw, e->raw_len) == 0);
  fz_check_rebuilt(&plain, &out, e->raw, e->raw_len);
  relay_buf_dispose(&out);
}

/* Record an event and check the pointers the framer promises. */
static void fz_on_event(void *ud, const relay_sse_event_t *e) {
  fz_run_t *r = ud;
  FUZZ_CHECK(e->raw_len > 0);
  FUZZ_CHECK(e->single_data_line == (e->data_lines == 1));
  FUZZ_CHECK((e->data != NULL) == (e->data_lines > 0));
  if (e->single_data_line) {
    FUZZ_CHECK(e->data == e->raw + e->data_offset);
    FUZZ_CHECK(e->data_offset + e->data_len <= e->raw_len);
  }
  if (e->event) FUZZ_CHECK(e->event >= e->raw && e->event + e->event_len <= e->raw + e->raw_len);
  FUZZ_CHECK(e->is_done == (e->data && e->data_len == 6 && memcmp(e->data, "[DONE]", 6) == 0));
  fz_put(&r->log, e->raw, e->raw_len);
  fz_put(&r->log, e->data ? e->data : "", e->data_len);
  fz_put(&r->log, &e->data_lines, sizeof e->data_lines);
  fz_put(&r->log, e->event ? e->event : "", e->event ? e->event_len : 0);
  FUZZ_CHECK(relay_buf_append(&r->bytes, e->raw, e->raw_len) == 0);
  if (e->data) fz_put(&r->datas, e->data, e->data_len);
  if (r->rebuild) fz_rebuild(e);
}

/* Frame data in pieces of at most `piece` bytes, the first piece ending at
 * `first` (0: no special first piece). */
static void fz_frame(fz_run_t *r, const uint8_t *data, size_t len, size_t max_event, size_t first,
                     size_t piece) {
  relay_sse_t s;
  relay_sse_init(&s, max_event);
  size_t p = 0;
  r->err = 0;
  while (p < len) {
    size_t n = len - p, used;
    if (first && p < first) n = first - p;
    else if (n > piece) n = piece;
    int rc = relay_sse_feed(&s, (const char *)data + p, n, fz_on_event, r, &used);
    if (rc) {
      r->err = rc;
      FUZZ_CHECK(used <= n);
      /* fall back: rest + unconsumed input + the rest of the stream */
      const char *rest;
      size_t rest_len;
      relay_sse_finish(&s, &rest, &rest_len);
      FUZZ_CHECK(relay_buf_append(&r->bytes, rest, rest_len) == 0);
      FUZZ_CHECK(relay_buf_append(&r->bytes, data + p + used, len - p - used) == 0);
      relay_sse_dispose(&s);
      return;
    }
    FUZZ_CHECK(used == n);
    p += n;
  }
  const char *rest;
  size_t rest_len;
  relay_sse_finish(&s, &rest, &rest_len);
  fz_put(&r->log, rest, rest_len);
  FUZZ_CHECK(relay_buf_append(&r->bytes, rest, rest_len) == 0);
  relay_sse_dispose(&s);
}

/* unescape(escape(x)) == x for any bytes. */
static void fz_round_trip(const char *x, size_t n) {
  relay_buf_t esc, back;
  relay_buf_init(&esc);
  relay_buf_init(&back);
  FUZZ_CHECK(relay_json_escape(&esc, x, n) == 0);
  for (size_t i = 0; i < esc.len; i++) { /* no raw control byte or bare quote */
    unsigned char c = (unsigned char)esc.data[i];
    FUZZ_CHECK(c >= 0x20 && c != '"');
    if (c == '\\') i++;
  }
  FUZZ_CHECK(relay_json_unescape(esc.data, esc.len, &back) == 0);
  FUZZ_CHECK(back.len == n && (n == 0 || memcmp(back.data, x, n) == 0));
  relay_buf_dispose(&esc);
  relay_buf_dispose(&back);
}

/* A document that an edit produced must be valid JSON again. */
static void fz_valid(const relay_buf_t *b) {
  size_t s, e;
  FUZZ_CHECK(relay_json_find(b->data ? b->data : "", b->len, NULL, 0, &s, &e) == 0);
}

/* Splice a rewritten content back the way the relay does, and check that
 * putting the original token back gives the input byte for byte. */
static void fz_choices(const char *js, size_t len) {
  relay_chat_choice_t ch[8];
  static const char *const keys[] = {"reasoning_content", "reasoning"};
  int n = relay_chat_find_choices(js, len, "delta", keys, 2, ch, 8);
  FUZZ_CHECK(n >= RELAY_ETOOMANY && n <= 8);
  for (int i = 0; i < n; i++) {
    relay_chat_choice_t *c = &ch[i];
    if (c->has_container) {
      FUZZ_CHECK(c->container_open < c->container_close && c->container_close < len);
      FUZZ_CHECK(js[c->container_open] == '{' && js[c->container_close] == '}');
    }
    if (!c->has_content) continue;
    FUZZ_CHECK(c->has_container && c->content_start < c->content_end && c->content_end <= len);
    FUZZ_CHECK(c->content_start > c->container_open && c->content_end <= c->container_close);
    if (!c->content_is_string) continue;
    FUZZ_CHECK(js[c->content_start] == '"' && js[c->content_end - 1] == '"');
    relay_buf_t text, out;
    relay_buf_init(&text);
    relay_buf_init(&out);
    FUZZ_CHECK(relay_json_unescape(js + c->content_start + 1, c->content_end - c->content_start - 2,
                                   &text) == 0);
    fz_round_trip(text.data ? text.data : "", text.len);
    /* splice as the relay does: head + '"' + escape(new) + '"' + tail */
    FUZZ_CHECK(relay_buf_append(&out, js, c->content_start + 1) == 0);
    FUZZ_CHECK(relay_json_escape(&out, text.data ? text.data : "", text.len) == 0);
    FUZZ_CHECK(relay_buf_append(&out, js + c->content_end - 1, len - c->content_end + 1) == 0);
    fz_valid(&out);
    relay_buf_dispose(&text);
    relay_buf_dispose(&out);
  }
  if (n >= 1 && ch[0].has_container) {
    relay_json_path_seg_t p[4] = {{"choices", 7, 0}, {NULL, 0, 0}, {"delta", 5, 0}, {"content", 7, 0}};
    relay_buf_t out;
    relay_buf_init(&out);
    if (ch[0].has_content) {
      /* the same token back: identical bytes */
      size_t a = ch[0].content_start, b = ch[0].content_end;
      FUZZ_CHECK(relay_json_edit(js, len, p, 4, js + a, b - a, &out) == 0);
      FUZZ_CHECK(out.len == len && memcmp(out.data, js, len) == 0);
      out.len = 0;
      FUZZ_CHECK(relay_json_edit(js, len, p, 4, NULL, 0, &out) == 0);
      fz_valid(&out);
    } else {
      FUZZ_CHECK(relay_json_edit(js, len, p, 4, "\"x\"", 3, &out) == 0);
      fz_valid(&out);
      if (ch[0].container_empty) FUZZ_CHECK(out.len == len + 13); /* "content":"x" */
    }
    relay_buf_dispose(&out);
  }
}

/* Template mode: each line of the input becomes the raw content string of a
 * chat chunk event, so that even a run from an empty corpus spends its time
 * on escapes, markers and the JSON paths rather than on finding "choices". */
static void fz_template(relay_buf_t *out, const uint8_t *data, size_t size) {
  static const char *line_ends[] = {"\n\n", "\r\n\r\n", "\r\r", "\n: ping\n\n"};
  size_t k = 0;
  while (size > 0) {
    const uint8_t *nl = memchr(data, '\n', size);
    size_t n = nl ? (size_t)(nl - data) : size;
    relay_buf_printf(out, "data: {\"id\":\"c\",\"choices\":[{\"index\":%zu,\"delta\":{\"content\":\"",
                     k % 3);
    relay_buf_append(out, data, n);
    relay_buf_append_str(out, "\"},\"finish_reason\":null}]}");
    relay_buf_append_str(out, line_ends[k++ % 4]);
    data += nl ? n + 1 : n;
    size -= nl ? n + 1 : n;
  }
  relay_buf_append_str(out, "data: [DONE]\n\n");
}

/* Byte 0: bit 6 selects template mode; below 32 it is a tiny event limit
 * (byte + 1), else the default limit. Bytes 1-2: the split point. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  size_t max_event = data[0] < 32 ? (size_t)data[0] + 1 : 0;
  int templated = data[0] & 0x40;
  size_t split = ((size_t)data[1] << 8 | data[2]);
  data += 3;
  size -= 3;
  relay_buf_t tmpl;
  relay_buf_init(&tmpl);
  if (templated) {
    fz_template(&tmpl, data, size);
    data = (const uint8_t *)tmpl.data;
    size = tmpl.len;
  }
  split = size ? split % (size + 1) : 0;

  fz_run_t whole, cut, bytes;
  fz_run_t *runs[3] = {&whole, &cut, &bytes};
  for (int i = 0; i < 3; i++) {
    relay_buf_init(&runs[i]->log);
    relay_buf_init(&runs[i]->bytes);
    relay_buf_init(&runs[i]->datas);
    runs[i]->rebuild = i == 0;
  }
  fz_frame(&whole, data, size, max_event, 0, (size_t)-1);
  fz_frame(&cut, data, size, max_event, split, (size_t)-1);
  fz_frame(&bytes, data, size, max_event, 0, 1);
  for (int i = 0; i < 3; i++) {
    fz_run_t *r = runs[i];
    FUZZ_CHECK(r->err == whole.err);
    FUZZ_CHECK(r->log.len == whole.log.len &&
               (r->log.len == 0 || memcmp(r->log.data, whole.log.data, r->log.len) == 0));
    FUZZ_CHECK(r->bytes.len == size && (size == 0 || memcmp(r->bytes.data, data, size) == 0));
  }

  fz_round_trip((const char *)data, size);
  for (size_t off = 0; off < whole.datas.len;) {
    size_t n;
    memcpy(&n, whole.datas.data + off, sizeof n);
    off += sizeof n;
    fz_choices(whole.datas.data + off, n);
    fz_round_trip(whole.datas.data + off, n);
    off += n;
  }
  /* The input itself as a JSON document, for inputs that are not SSE. */
  fz_choices((const char *)data, size);

  for (int i = 0; i < 3; i++) {
    relay_buf_dispose(&runs[i]->log);
    relay_buf_dispose(&runs[i]->bytes);
    relay_buf_dispose(&runs[i]->datas);
  }
  relay_buf_dispose(&tmpl);
  return 0;
}
