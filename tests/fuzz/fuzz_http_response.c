/* libFuzzer target for the response side: llhttp response parsing and the
 * client head rebuild (http_encode.c), as the proxy does them.
 *
 * Input: byte 0 says whether the request was HEAD, whether the client speaks
 * HTTP/1.1, whether a filter transforms the body and which Connection the
 * relay adds; the rest is the upstream's bytes. When llhttp accepts a head
 * with a status the relay forwards (100..599), the rebuilt head must re-parse
 * to the same status and to the framing relay_response_framing chose (which
 * keeps an untransformed Content-Length and otherwise chunks or closes), with
 * at most one framing field, no hop-by-hop field but the relay's own, and no
 * field the upstream named in Connection. Any broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "http_parse.h"

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int head_req = data[0] & 1, client_11 = (data[0] >> 1) & 1, transformed = (data[0] >> 2) & 1;
  relay_conn_t conn = (relay_conn_t)((data[0] >> 3) % 3); /* NONE, CLOSE, KEEP_ALIVE */
  const char *raw = (const char *)data + 1;
  size_t raw_len = size - 1;

  tp_msg_t in;
  tp_init(&in, HTTP_RESPONSE, head_req);
  (void)tp_parse(&in, raw, raw_len);
  if (!in.headers_done || in.head_error || in.status < 100 || in.status > 599) {
    tp_close(&in); /* the relay answers 502 for these */
    return 0;
  }
  int status = in.status;
  int interim = status < 200 && status != 101;
  int no_body = interim || head_req || status == 204 || status == 304 || status == 101;
  int has_length = (in.flags & F_CONTENT_LENGTH) && !(in.flags & F_CHUNKED);

  relay_response_spec_t s;
  memset(&s, 0, sizeof s);
  s.status = status;
  if (status == 101) {
    s.connection = RELAY_CONN_UPGRADE;
  } else if (!interim) {
    s.framing = relay_response_framing(status, no_body, has_length, transformed, client_11);
    s.length = in.content_length;
    s.connection = conn;
  }
  /* What the framing must be, said once more without the helper. */
  if (interim || status == 101 || status == 204) FUZZ_CHECK(s.framing == RELAY_FRAME_NONE);
  else if (no_body) FUZZ_CHECK(s.framing == (has_length ? RELAY_FRAME_LENGTH : RELAY_FRAME_NONE));
  else if (has_length && !transformed) FUZZ_CHECK(s.framing == RELAY_FRAME_LENGTH);
  else FUZZ_CHECK(s.framing == (client_11 ? RELAY_FRAME_CHUNKED : RELAY_FRAME_CLOSE));

  relay_conn_tokens_t ct;
  int tokens_rc = relay_conn_tokens_collect(&ct, &in.head);
  relay_buf_t out;
  relay_buf_init(&out);
  int rc = relay_encode_response_head(&out, &in.head, &s);
  FUZZ_CHECK(rc == tokens_rc);
  if (rc) goto done;

  tp_msg_t re;
  tp_init(&re, HTTP_RESPONSE, head_req || no_body);
  llhttp_errno_t e2 = tp_parse(&re, out.data, out.len);
  FUZZ_CHECK(tp_ok(e2));
  FUZZ_CHECK(re.headers_done && !re.head_error);
  FUZZ_CHECK(re.status == status);
  FUZZ_CHECK(re.head.target_len == in.head.target_len);
  FUZZ_CHECK(memcmp(relay_head_target(&re.head), relay_head_target(&in.head), in.head.target_len) == 0);
  FUZZ_CHECK(re.length_fields + re.te_fields ==
             (s.framing == RELAY_FRAME_LENGTH || s.framing == RELAY_FRAME_CHUNKED));
  FUZZ_CHECK(((re.flags & F_CHUNKED) != 0) == (s.framing == RELAY_FRAME_CHUNKED));
  FUZZ_CHECK(((re.flags & F_CONTENT_LENGTH) != 0) == (s.framing == RELAY_FRAME_LENGTH));
  if (s.framing == RELAY_FRAME_LENGTH) FUZZ_CHECK(re.content_length == in.content_length);
  FUZZ_CHECK(re.connection_fields == (s.connection != RELAY_CONN_NONE));
  for (size_t i = 0; i < re.head.n; i++) {
    const char *name = relay_head_name(&re.head, i);
    size_t len = re.head.hdrs[i].name_len;
    relay_field_kind_t k = relay_field_kind(name, len);
    FUZZ_CHECK(!relay_conn_tokens_has(&ct, name, len));
    if (k == RELAY_FIELD_UPGRADE) FUZZ_CHECK(status == 101);
    if (k == RELAY_FIELD_KEEP_ALIVE || k == RELAY_FIELD_PROXY_CONNECTION || k == RELAY_FIELD_TE ||
        k == RELAY_FIELD_TRAILER)
      FUZZ_CHECK(0);
  }
  tp_close(&re);
done:
  relay_buf_dispose(&out);
  tp_close(&in);
  return 0;
}
