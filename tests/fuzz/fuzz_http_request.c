/* libFuzzer target for the request side: llhttp request parsing and the
 * upstream head rebuild (http_encode.c), as the proxy does them.
 *
 * Input: byte 0 picks the spec's flags and header edits, byte 1 a replaced
 * body length (the route's new body) or none; the rest is the client's bytes.
 * When llhttp accepts a request head, the rebuilt head must re-parse with
 * llhttp to the same method, the split target and the framing the relay chose
 * from the parser's state; have exactly one Host, at most one framing field,
 * no Connection field but the relay's own, and no field the client named in
 * Connection (a script edit may set such a name, and the relay its own
 * Accept-Encoding). Any broken promise aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "encode.h"
#include "http_parse.h"

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) abort(); \
  } while (0)

/* Header edits a script could return; bit i of the selector takes pair i. */
static const char *const fz_edits[][2] = {
    {"Host", "script.example"}, {"Content-Length", "5"}, {"Transfer-Encoding", "chunked"},
    {"Connection", "close"},    {"X-Forwarded-For", "\x01"}, {"X-Api", "k"},
    {"Accept-Encoding", "br"},  {"x-hop", "set-by-script"}};

static void fz_build_edits(relay_buf_t *b, unsigned sel) {
  for (unsigned i = 0; i < 8; i++) {
    if (!(sel & (1u << i))) continue;
    FUZZ_CHECK(relay_buf_append(b, fz_edits[i][0], strlen(fz_edits[i][0]) + 1) == 0);
    FUZZ_CHECK(relay_buf_append(b, fz_edits[i][1], strlen(fz_edits[i][1]) + 1) == 0);
  }
}

static int fz_edited(unsigned sel, const char *name, size_t len) {
  for (unsigned i = 0; i < 8; i++)
    if ((sel & (1u << i)) && strlen(fz_edits[i][0]) == len && strncasecmp(fz_edits[i][0], name, len) == 0)
      return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  unsigned sel = data[0], body_sel = data[1];
  const char *raw = (const char *)data + 2;
  size_t raw_len = size - 2;

  tp_msg_t in;
  tp_init(&in, HTTP_REQUEST, 0);
  llhttp_errno_t e = tp_parse(&in, raw, raw_len);
  (void)e; /* the head may be fine while the body is not: the relay has sent the head by then */
  if (!in.headers_done || in.head_error) {
    tp_close(&in);
    return 0;
  }

  relay_target_t t;
  relay_target_split(relay_head_target(&in.head), in.head.target_len, &t);
  FUZZ_CHECK(t.path_len > 0);

  /* The framing exactly as proxy.c derives it. */
  relay_request_spec_t s;
  memset(&s, 0, sizeof s);
  s.method = llhttp_method_name((llhttp_method_t)in.method);
  s.target = &t;
  s.host = "up.example:1234";
  s.host_len = strlen(s.host);
  s.peer = "127.0.0.1";
  s.peer_len = 9;
  int chunked = (in.flags & F_CHUNKED) != 0;
  if (body_sel & 1) {
    s.framing = RELAY_FRAME_LENGTH; /* the route replaced the body */
    s.length = body_sel >> 1;
  } else if (chunked) {
    s.framing = RELAY_FRAME_CHUNKED;
  } else if (in.flags & F_CONTENT_LENGTH) {
    s.framing = RELAY_FRAME_LENGTH;
    s.length = in.content_length;
  }
  s.flags = (in.upgrade ? RELAY_REQ_UPGRADE : 0) | ((sel >> 6) & 1 ? RELAY_REQ_DROP_EXPECT : 0) |
            ((sel >> 7) & 1 ? RELAY_REQ_IDENTITY : 0);
  unsigned edit_sel = (sel & 0x3f) * 5u; /* spread six bits over the eight edits */
  relay_buf_t edits;
  relay_buf_init(&edits);
  fz_build_edits(&edits, edit_sel);
  s.edits = edits.data;
  s.edits_len = edits.len;

  relay_conn_tokens_t ct;
  int tokens_rc = relay_conn_tokens_collect(&ct, &in.head);
  relay_buf_t out;
  relay_buf_init(&out);
  int rc = relay_encode_request_head(&out, &in.head, &s);
  FUZZ_CHECK(rc == tokens_rc);
  if (rc) goto done;

  /* The head ends at the first empty line and nowhere before. */
  const char *end = NULL;
  for (size_t i = 0; i + 3 < out.len; i++)
    if (memcmp(out.data + i, "\r\n\r\n", 4) == 0) {
      end = out.data + i;
      break;
    }
  FUZZ_CHECK(end && (size_t)(end - out.data) + 4 == out.len);

  tp_msg_t re;
  tp_init(&re, HTTP_REQUEST, 0);
  llhttp_errno_t e2 = tp_parse(&re, out.data, out.len);
  FUZZ_CHECK(tp_ok(e2));
  FUZZ_CHECK(re.headers_done && !re.head_error);
  FUZZ_CHECK(re.method == in.method);
  /* The target is the split: path, then ?query when there was one. */
  FUZZ_CHECK(re.head.target_len == t.path_len + (t.has_query ? 1 + t.query_len : 0));
  FUZZ_CHECK(memcmp(relay_head_target(&re.head), t.path, t.path_len) == 0);
  if (t.has_query) {
    FUZZ_CHECK(relay_head_target(&re.head)[t.path_len] == '?');
    FUZZ_CHECK(memcmp(relay_head_target(&re.head) + t.path_len + 1, t.query, t.query_len) == 0);
  }
  /* Framing. */
  FUZZ_CHECK(re.host_fields == 1);
  FUZZ_CHECK(re.length_fields + re.te_fields == (s.framing != RELAY_FRAME_NONE));
  FUZZ_CHECK(((re.flags & F_CHUNKED) != 0) == (s.framing == RELAY_FRAME_CHUNKED));
  FUZZ_CHECK(((re.flags & F_CONTENT_LENGTH) != 0) == (s.framing == RELAY_FRAME_LENGTH));
  if (s.framing == RELAY_FRAME_LENGTH) FUZZ_CHECK(re.content_length == s.length);
  FUZZ_CHECK(re.connection_fields == ((s.flags & RELAY_REQ_UPGRADE) ? 1 : 0));
  /* Nothing the client named in Connection, unless a script edit set it. */
  for (size_t i = 0; i < re.head.n; i++) {
    const char *name = relay_head_name(&re.head, i);
    size_t len = re.head.hdrs[i].name_len;
    relay_field_kind_t k = relay_field_kind(name, len);
    /* (Accept-Encoding: identity is the relay's own on rewritten routes.) */
    if (relay_conn_tokens_has(&ct, name, len))
      FUZZ_CHECK(fz_edited(edit_sel, name, len) || (k == RELAY_FIELD_ACCEPT_ENCODING && (s.flags & RELAY_REQ_IDENTITY)));
    if (k == RELAY_FIELD_UPGRADE) FUZZ_CHECK(s.flags & RELAY_REQ_UPGRADE);
    if (k == RELAY_FIELD_KEEP_ALIVE || k == RELAY_FIELD_PROXY_CONNECTION || k == RELAY_FIELD_TE ||
        k == RELAY_FIELD_TRAILER)
      FUZZ_CHECK(0);
    if (k == RELAY_FIELD_EXPECT) FUZZ_CHECK(!(s.flags & RELAY_REQ_DROP_EXPECT));
  }
  tp_close(&re);
done:
  relay_buf_dispose(&out);
  relay_buf_dispose(&edits);
  tp_close(&in);
  return 0;
}
