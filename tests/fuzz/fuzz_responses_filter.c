/* libFuzzer target for the Responses front end's filter on a chain, as a
 * Responses route builds it: the chat rewrite (field mode, harmony rules)
 * then the encoder, fed an arbitrary upstream body.
 *
 * Byte 0: bit 0 the request streams; bit 1 the upstream says
 * text/event-stream (else application/json); bit 2 the status is 400 (else
 * 200); bit 3 the body is cut (else it ends cleanly). Byte 1: where the body
 * is split in two for the second run. The rest is the upstream body.
 *
 * Promises (abort() when broken): the output is the same whether the body
 * came whole or in two pieces; a streamed 2xx gives only whole events
 * "event: response.T\ndata: J\n\n" with J valid JSON, sequence numbers 0, 1,
 * 2, ..., the first response.created, and exactly one terminal event, last;
 * anything else gives one valid JSON document (a Response or an error).
 */
#define _GNU_SOURCE /* memmem */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "log.h"
#include "relay/json_splice.h"
#include "responses.h"
#include "text/harmony_rules.h"

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

static relay_buf_t out;

static int sink(void *ud, const char *data, size_t len) { return relay_buf_append(&out, data, len); }

static int valid_json(const char *js, size_t len) {
  size_t s, e;
  return relay_json_find(js ? js : "", len, NULL, 0, &s, &e) == 0;
}

/* One run through a fresh chain; the output is left in `out`. */
static void run(relay_chat_opts_t *o, const relay_resp_req_t *req, int status, const char *ctype, const char *body,
                size_t len, size_t split, int complete) {
  relay_buf_reset(&out);
  relay_chain_t c;
  relay_chain_init(&c, 4096, 1 << 16, sink, NULL, "fuzz");
  c.status = status;
  relay_head_t h;
  relay_head_init(&h, 4096);
  relay_head_add(&h, "Content-Type", ctype, strlen(ctype));
  relay_response_t r;
  relay_response_classify(&r, status, &h);
  relay_filter_t *fs[2] = {relay_chat_filter_type.create(o, NULL), relay_responses_filter_new(req, 7, 1700000000)};
  for (int i = 0; i < 2; i++) {
    FUZZ_CHECK(fs[i] != NULL);
    if (fs[i]->ops->on_head(fs[i], &r) == 0) relay_chain_add(&c, fs[i]);
    else fs[i]->ops->dispose(fs[i]);
  }
  relay_head_dispose(&h);
  if (relay_chain_feed(&c, body, split) == 0 && relay_chain_feed(&c, body + split, len - split) == 0)
    relay_chain_end(&c, complete);
  relay_chain_dispose(&c);
}

static int is_terminal(const char *type, size_t n) {
  return (n == 18 && memcmp(type, "response.completed", 18) == 0) ||
         (n == 19 && memcmp(type, "response.incomplete", 19) == 0) ||
         (n == 15 && memcmp(type, "response.failed", 15) == 0);
}

/* The events of a streamed response, checked one by one. */
static void check_events(const char *s, size_t len) {
  size_t pos = 0, seq = 0, terminals = 0;
  while (pos < len) {
    FUZZ_CHECK(terminals == 0); /* nothing after the terminal event */
    FUZZ_CHECK(len - pos > 16 && memcmp(s + pos, "event: response.", 16) == 0);
    const char *nl = memchr(s + pos, '\n', len - pos);
    FUZZ_CHECK(nl != NULL);
    const char *type = s + pos + 7;
    size_t tlen = (size_t)(nl - type);
    const char *data = nl + 1;
    FUZZ_CHECK((size_t)(s + len - data) > 6 && memcmp(data, "data: ", 6) == 0);
    data += 6;
    const char *end = memchr(data, '\n', (size_t)(s + len - data));
    FUZZ_CHECK(end != NULL && end + 1 < s + len && end[1] == '\n');
    FUZZ_CHECK(valid_json(data, (size_t)(end - data)));
    char want[48];
    int w = snprintf(want, sizeof want, ",\"sequence_number\":%zu", seq);
    FUZZ_CHECK(memmem(data, (size_t)(end - data), want, (size_t)w) != NULL);
    if (seq == 0) FUZZ_CHECK(tlen == 16 && memcmp(type, "response.created", 16) == 0);
    terminals += is_terminal(type, tlen);
    seq++;
    pos = (size_t)(end + 2 - s);
  }
  FUZZ_CHECK(terminals == 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static relay_chat_opts_t *o;
  static relay_resp_req_t req[2];
  if (!o) {
    relay_log_set_level(RELAY_LOG_ERROR); /* the filters' warnings would be most of the work */
    o = relay_chat_opts_new();
    if (relay_ruleset_new(&o->rules, harmony_rules, HARMONY_NRULES) != 0) abort();
    o->mode = RELAY_MODE_FIELD;
    o->reasoning_states = 1u << 1;
    strcpy(o->field[0], RELAY_RESPONSES_REASONING_KEY);
    static const char *const bodies[2] = {
        "{\"model\":\"m\",\"input\":\"hi\",\"stream\":false,\"tools\":[{\"type\":\"function\",\"name\":\"f\"},"
        "{\"type\":\"custom\",\"name\":\"apply_patch\"},{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":"
        "[{\"type\":\"function\",\"name\":\"g\"}]}]}",
        "{\"model\":\"m\",\"input\":\"hi\",\"stream\":true,\"tools\":[{\"type\":\"function\",\"name\":\"f\"},"
        "{\"type\":\"custom\",\"name\":\"apply_patch\"},{\"type\":\"namespace\",\"name\":\"ns\",\"tools\":"
        "[{\"type\":\"function\",\"name\":\"g\"}]}]}"};
    for (int i = 0; i < 2; i++) {
      relay_buf_t chat;
      relay_buf_init(&chat);
      relay_resp_req_init(&req[i]);
      if (relay_resp_req_translate(&req[i], NULL, bodies[i], strlen(bodies[i]), &chat) != 0) abort();
      relay_buf_dispose(&chat);
    }
    relay_buf_init(&out);
  }
  if (size < 2) return 0;
  int stream = data[0] & 1, sse = data[0] & 2, status = data[0] & 4 ? 400 : 200, complete = !(data[0] & 8);
  const char *body = (const char *)data + 2;
  size_t len = size - 2, split = len ? data[1] % (len + 1) : 0;
  const char *ctype = sse ? "text/event-stream" : "application/json";
  run(o, &req[stream], status, ctype, body, len, len, complete);
  relay_buf_t whole;
  relay_buf_init(&whole);
  if (out.len && relay_buf_append(&whole, out.data, out.len)) abort();
  run(o, &req[stream], status, ctype, body, len, split, complete);
  FUZZ_CHECK(out.len == whole.len && (!out.len || memcmp(out.data, whole.data, out.len) == 0));
  if (status == 200 && stream && (complete || sse)) {
    /* a streamed answer; a cut held body is no answer at all (the core's 502) */
    if (out.len) check_events(out.data, out.len);
  } else if (out.len) {
    FUZZ_CHECK(valid_json(out.data, out.len));
  }
  relay_buf_dispose(&whole);
  return 0;
}
