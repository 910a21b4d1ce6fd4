/* libFuzzer target for the Responses bridge's pure parts.
 *
 * Byte 0 picks the mode:
 * - bit 0 clear: the rest is a Responses request body (bit 1: wrapped as
 *   the items of {"input":[...]} with tools of every kind, so that an
 *   empty corpus soon reaches the item code; bits 2-3: options). The
 *   translation must not crash; when it succeeds its output is valid JSON
 *   (jsmn plus the strict check of relay_json_find), when it fails the
 *   output buffer is as it was, the status is 400 and the error body is
 *   valid JSON.
 * - bit 0 set: the rest is lines of chat-completions chunks (bit 1: one
 *   JSON body instead, non-streaming), read by the chat chunk reader and
 *   encoded as a Responses stream for a request with namespaced and custom
 *   tools; a line "!" cuts the stream. Every event must be
 *   "event: T\ndata: J\n\n" with J valid JSON and valid UTF-8, the first
 *   response.created, sequence numbers 0, 1, 2, ..., and exactly one
 *   terminal event, last; a JSON body must be one valid object.
 * Any broken promise calls abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_chunk.h"
#include "responses_encode.h"
#include "responses_request.h"
#include "relay/json_splice.h"

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

static int fz_valid(const char *js, size_t len) {
  size_t s, e;
  return relay_json_find(js ? js : "", len, NULL, 0, &s, &e) == 0;
}

static int fz_utf8(const unsigned char *u, size_t n) {
  for (size_t i = 0; i < n;) {
    unsigned c = u[i];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || i + len > n) return 0;
    for (size_t k = 1; k < len; k++)
      if ((u[i + k] & 0xC0) != 0x80) return 0;
    if ((c == 0xE0 && u[i + 1] < 0xA0) || (c == 0xED && u[i + 1] > 0x9F) || (c == 0xF0 && u[i + 1] < 0x90) ||
        (c == 0xF4 && u[i + 1] > 0x8F))
      return 0;
    i += len;
  }
  return 1;
}

static const char fz_tools[] =
    "\"tools\":[{\"type\":\"function\",\"name\":\"exec_command\",\"parameters\":{\"type\":\"object\"}},"
    "{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":[{\"type\":\"function\",\"name\":\"f\"},{\"type\":\"custom\",\"name\":\"k\"}]},"
    "{\"type\":\"custom\",\"name\":\"apply_patch\",\"format\":{\"type\":\"grammar\",\"syntax\":\"lark\",\"definition\":\"s\"}},"
    "{\"type\":\"web_search\"}]";

static void fz_request(const uint8_t *data, size_t size, int flags) {
  relay_buf_t body, out;
  relay_resp_req_t r;
  relay_resp_req_opts_t o = {flags & 4 ? "" : NULL, flags & 8 ? "developer" : NULL};
  relay_buf_init(&body);
  relay_buf_init(&out);
  if (flags & 2) {
    FUZZ_CHECK(relay_buf_append_str(&body, "{\"model\":\"m\",\"stream\":true,") == 0);
    FUZZ_CHECK(relay_buf_append_str(&body, fz_tools) == 0);
    FUZZ_CHECK(relay_buf_append_str(&body, ",\"input\":[") == 0);
    FUZZ_CHECK(relay_buf_append(&body, data, size) == 0);
    FUZZ_CHECK(relay_buf_append_str(&body, "]}") == 0);
  } else {
    FUZZ_CHECK(relay_buf_append(&body, data, size) == 0);
  }
  FUZZ_CHECK(relay_buf_append(&out, "#", 1) == 0);
  relay_resp_req_init(&r);
  int rc = relay_resp_req_translate(&r, &o, body.data ? body.data : "", body.len, &out);
  FUZZ_CHECK(rc == 0 || rc == RELAY_RESP_EINVAL);
  FUZZ_CHECK(out.len >= 1 && out.data[0] == '#');
  if (rc == 0) {
    FUZZ_CHECK(fz_valid(out.data + 1, out.len - 1));
    for (size_t i = 0; i < r.ntools; i++) { /* the map finds every tool it holds */
      const relay_resp_tool_t *t = &r.tools[i];
      FUZZ_CHECK(relay_resp_req_tool(&r, relay_resp_req_name(&r, t->chat_off), t->chat_len) == t);
      FUZZ_CHECK(t->chat_len > 0 && t->chat_len <= RELAY_RESP_MAX_NAME);
    }
  } else {
    FUZZ_CHECK(out.len == 1 && r.err_status == 400 && r.err_message[0]);
    relay_buf_t e;
    relay_buf_init(&e);
    FUZZ_CHECK(relay_resp_req_error_json(&r, &e) == 0 && fz_valid(e.data, e.len));
    relay_buf_dispose(&e);
  }
  relay_resp_req_dispose(&r);
  relay_buf_dispose(&body);
  relay_buf_dispose(&out);
}

static int fz_feed(void *ud, const relay_chat_piece_t *p) {
  void **pair = ud;
  return relay_resp_enc_feed(pair[0], p, pair[1]);
}

/* Check the framing, JSON, order and numbering of every event. */
static void fz_check_stream(const relay_buf_t *out) {
  const char *p = out->data ? out->data : "", *end = p + out->len;
  size_t seq = 0;
  int terminal = 0;
  while (p < end) {
    FUZZ_CHECK(!terminal);
    FUZZ_CHECK(end - p > 7 && memcmp(p, "event: ", 7) == 0);
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl);
    const char *type = p + 7;
    size_t tlen = (size_t)(nl - type);
    p = nl + 1;
    FUZZ_CHECK(end - p > 6 && memcmp(p, "data: ", 6) == 0);
    p += 6;
    nl = memchr(p, '\n', (size_t)(end - p));
    FUZZ_CHECK(nl && nl + 1 < end && nl[1] == '\n');
    FUZZ_CHECK(fz_valid(p, (size_t)(nl - p)) && fz_utf8((const unsigned char *)p, (size_t)(nl - p)));
    char head[160];
    int hn = snprintf(head, sizeof head, "{\"type\":\"%.*s\",\"sequence_number\":%zu,", (int)tlen, type, seq);
    FUZZ_CHECK(hn > 0 && (size_t)hn < sizeof head && (size_t)(nl - p) > (size_t)hn && memcmp(p, head, (size_t)hn) == 0);
    if (seq == 0) FUZZ_CHECK(tlen == 16 && memcmp(type, "response.created", 16) == 0);
    terminal = (tlen == 18 && memcmp(type, "response.completed", 18) == 0) ||
               (tlen == 19 && memcmp(type, "response.incomplete", 19) == 0) ||
               (tlen == 15 && memcmp(type, "response.failed", 15) == 0);
    seq++;
    p = nl + 2;
  }
  FUZZ_CHECK(terminal);
}

static void fz_encode(const uint8_t *data, size_t size, int flags) {
  static const char req_body[] = "{\"model\":\"m\",\"input\":\"x\",\"stream\":true,\"max_output_tokens\":9,";
  relay_buf_t req_text, chat, out;
  relay_resp_req_t r;
  relay_resp_enc_t e;
  relay_chat_chunk_t rd;
  int stream = !(flags & 2);
  relay_buf_init(&req_text);
  relay_buf_init(&chat);
  relay_buf_init(&out);
  FUZZ_CHECK(relay_buf_append_str(&req_text, req_body) == 0 && relay_buf_append_str(&req_text, fz_tools) == 0 &&
             relay_buf_append_str(&req_text, "}") == 0);
  relay_resp_req_init(&r);
  FUZZ_CHECK(relay_resp_req_translate(&r, NULL, req_text.data, req_text.len, &chat) == 0);
  relay_resp_enc_opts_t o = {(uint64_t)size * 2654435761u, 1, stream, flags & 4 ? 64 : 0};
  relay_resp_enc_init(&e, &r, &o);
  relay_chat_chunk_init(&rd, flags & 8 ? "reasoning" : NULL);
  void *pair[2] = {&e, &out};
  int cut = 0;
  if (!stream) {
    int rc = relay_chat_chunk_read(&rd, (const char *)data, size, 1, fz_feed, pair);
    FUZZ_CHECK(rc == 0 || rc == RELAY_CHAT_CHUNK_EINVAL || rc == RELAY_CHAT_CHUNK_ETOOBIG);
  } else {
    while (size > 0 && !cut) {
      const uint8_t *nl = memchr(data, '\n', size);
      size_t n = nl ? (size_t)(nl - data) : size;
      if (n == 1 && data[0] == '!') cut = 1;
      else {
        int rc = relay_chat_chunk_read(&rd, (const char *)data, n, 0, fz_feed, pair);
        FUZZ_CHECK(rc == 0 || rc == RELAY_CHAT_CHUNK_EINVAL || rc == RELAY_CHAT_CHUNK_ETOOBIG);
      }
      data += nl ? n + 1 : n;
      size -= nl ? n + 1 : n;
    }
  }
  FUZZ_CHECK((cut ? relay_resp_enc_cut(&e, &out) : relay_resp_enc_end(&e, &out)) == 0);
  FUZZ_CHECK(relay_resp_enc_ended(&e));
  size_t len = out.len;
  FUZZ_CHECK(relay_resp_enc_end(&e, &out) == 0 && out.len == len); /* nothing after the end */
  if (stream) fz_check_stream(&out);
  else FUZZ_CHECK(fz_valid(out.data, out.len) && fz_utf8((const unsigned char *)out.data, out.len));
  relay_chat_chunk_dispose(&rd);
  relay_resp_enc_dispose(&e);
  relay_resp_req_dispose(&r);
  relay_buf_dispose(&req_text);
  relay_buf_dispose(&chat);
  relay_buf_dispose(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int flags = data[0];
  if (flags & 1) fz_encode(data + 1, size - 1, flags);
  else fz_request(data + 1, size - 1, flags);
  return 0;
}
