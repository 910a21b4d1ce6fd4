/* Unit tests for the pure HTTP pieces, no sockets: the request-target split,
 * the Connection option set, and the two head builders of http_encode.c,
 * whose output is checked byte for byte and re-parsed with llhttp. */
#include <stdlib.h>

#include "check.h"
#include "encode.h"
#include "http_parse.h"

static void check_split(const char *t, const char *path, const char *query) {
  relay_target_t s;
  relay_target_split(t, strlen(t), &s);
  CHECK_STR(s.path, s.path_len, path);
  if (query) {
    CHECK(s.has_query);
    CHECK_STR(s.query, s.query_len, query);
  } else {
    CHECK(!s.has_query);
    CHECK(s.query_len == 0);
  }
}

static void test_target_split(void) {
  check_split("/", "/", NULL);
  check_split("/a/b", "/a/b", NULL);
  check_split("/a?b=1", "/a", "b=1");
  check_split("/a?", "/a", "");
  check_split("/a#frag", "/a", NULL);
  check_split("/a?b#c", "/a", "b");
  check_split("/a#b?c", "/a", NULL);
  check_split("/p?q=1?r#s#t", "/p", "q=1?r");
  check_split("http://x/admin", "/admin", NULL);
  check_split("HTTP://X/admin", "/admin", NULL);
  check_split("hTtPs://x:443/admin/users?x=1", "/admin/users", "x=1");
  check_split("http://x", "/", NULL);
  check_split("http://h?x", "/", "x");
  check_split("http://h#f", "/", NULL);
  check_split("http://u@h:1/p", "/p", NULL);
  check_split("http://[::1]:8/p?q", "/p", "q");
  check_split("svn+ssh.1-x://h/p", "/p", NULL);
  check_split("*", "*", NULL);
  check_split("host:443", "host:443", NULL);  /* CONNECT's authority form stays */
  check_split("1http://x/p", "1http://x/p", NULL);  /* not a scheme */
  check_split("http:/x", "http:/x", NULL);
  check_split("", "/", NULL);
}

static void parse_head(tp_msg_t *m, llhttp_type_t type, const char *raw, int skip_body) {
  tp_init(m, type, skip_body);
  llhttp_errno_t e = tp_parse(m, raw, strlen(raw));
  CHECK(tp_ok(e));
  CHECK(m->headers_done);
}

static void test_conn_tokens(void) {
  tp_msg_t m;
  parse_head(&m,
             HTTP_REQUEST,
             "GET / HTTP/1.1\r\nConnection: keep-alive, Content-Length, X-A\r\n"
             "Connection: x-b ,close, Host, x-forwarded-for,X-Forwarded-Proto, Transfer-Encoding, TE, x-a\r\n\r\n",
             0);
  relay_conn_tokens_t ct;
  CHECK(relay_conn_tokens_collect(&ct, &m.head) == 0);
  CHECK(ct.n == 2); /* x-a and x-b: owned, fixed and repeated names take no slot */
  CHECK(ct.close && ct.keep_alive && !ct.upgrade);
  CHECK(relay_conn_tokens_has(&ct, "X-A", 3));
  CHECK(relay_conn_tokens_has(&ct, "x-B", 3));
  CHECK(!relay_conn_tokens_has(&ct, "content-length", 14));
  CHECK(!relay_conn_tokens_has(&ct, "host", 4));
  tp_close(&m);

  /* 32 distinct names are fine, the 33rd is refused. */
  char raw[2048] = "GET / HTTP/1.1\r\nConnection: ";
  for (int i = 0; i < 33; i++) {
    char t[16];
    snprintf(t, sizeof t, "%sx-%d", i ? "," : "", i);
    strcat(raw, t);
    if (i == 31) {
      tp_msg_t m32;
      char tmp[2048];
      snprintf(tmp, sizeof tmp, "%s\r\n\r\n", raw);
      parse_head(&m32, HTTP_REQUEST, tmp, 0);
      CHECK(relay_conn_tokens_collect(&ct, &m32.head) == 0 && ct.n == 32);
      tp_close(&m32);
    }
  }
  strcat(raw, "\r\n\r\n");
  parse_head(&m, HTTP_REQUEST, raw, 0);
  CHECK(relay_conn_tokens_collect(&ct, &m.head) == RELAY_ETOKENS);
  relay_buf_t b;
  relay_buf_init(&b);
  relay_target_t t;
  relay_target_split("/", 1, &t);
  relay_request_spec_t s = {.method = "GET", .target = &t, .host = "h", .host_len = 1, .peer = "p", .peer_len = 1};
  CHECK(relay_encode_request_head(&b, &m.head, &s) == RELAY_ETOKENS);
  relay_buf_dispose(&b);
  tp_close(&m);
}

/* Build the upstream head for raw with spec, compare, and re-parse it. */
static void check_request(const char *raw, relay_request_spec_t *s, const char *want) {
  tp_msg_t in, out;
  parse_head(&in, HTTP_REQUEST, raw, 0);
  relay_target_t t;
  relay_target_split(relay_head_target(&in.head), in.head.target_len, &t);
  s->target = &t;
  if (!s->method) s->method = llhttp_method_name((llhttp_method_t)in.method);
  if (!s->host) {
    s->host = "up:1234";
    s->host_len = 7;
  }
  if (!s->peer) {
    s->peer = "10.0.0.1";
    s->peer_len = 8;
  }
  relay_buf_t b;
  relay_buf_init(&b);
  CHECK(relay_encode_request_head(&b, &in.head, s) == 0);
  CHECK_MEM(b.data, b.len, want, strlen(want));
  parse_head(&out, HTTP_REQUEST, want, 0);
  CHECK(out.host_fields == 1);
  CHECK(out.length_fields + out.te_fields <= 1);
  relay_buf_dispose(&b);
  tp_close(&in);
  tp_close(&out);
}

static void test_request_head(void) {
  /* The smuggling payload: Content-Length listed in Connection still frames. */
  relay_request_spec_t s = {0};
  s.framing = RELAY_FRAME_LENGTH;
  s.length = 5;
  check_request("POST http://evil/a?x#f HTTP/1.1\r\nHost: evil\r\nConnection: keep-alive, Content-Length, X-Drop\r\n"
                "Content-Length: 5\r\nX-Drop: 1\r\nX-Forwarded-For: 1.2.3.4\r\nX-Keep: k\r\n"
                "X-Forwarded-Proto: https\r\nKeep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\n\r\n",
                &s,
                "POST /a?x HTTP/1.1\r\nX-Keep: k\r\nHost: up:1234\r\n"
                "X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\nX-Forwarded-Proto: http\r\nContent-Length: 5\r\n\r\n");

  /* Chunked: the client's Transfer-Encoding is replaced by ours. */
  memset(&s, 0, sizeof s);
  s.framing = RELAY_FRAME_CHUNKED;
  check_request("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: Transfer-Encoding\r\n\r\n", &s,
                "POST / HTTP/1.1\r\nHost: up:1234\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                "Transfer-Encoding: chunked\r\n\r\n");

  /* Edits: framing, hop-by-hop, Host and X-Forwarded-* names ignored (the
   * relay's own), others replace or remove the client's field; identity on
   * rewrite. */
  static const char edits[] = "X-Api\0key\0Content-Length\0" "99\0Transfer-Encoding\0chunked\0Host\0other\0"
                              "Connection\0close\0X-Forwarded-Proto\0\x01\0X-Gone\0\x01\0Accept-Encoding\0br\0";
  memset(&s, 0, sizeof s);
  s.edits = edits;
  s.edits_len = sizeof edits - 1;
  s.flags = RELAY_REQ_IDENTITY | RELAY_REQ_DROP_EXPECT;
  check_request("GET /e HTTP/1.1\r\nX-Api: client\r\nX-Gone: 1\r\nAccept-Encoding: gzip\r\nExpect: 100-continue\r\n"
                "X-Stay: s\r\n\r\n",
                &s,
                "GET /e HTTP/1.1\r\nX-Stay: s\r\nX-Api: key\r\nAccept-Encoding: identity\r\nHost: up:1234\r\n"
                "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n\r\n");

  /* Upgrade keeps Upgrade and says so in its own Connection. */
  memset(&s, 0, sizeof s);
  s.flags = RELAY_REQ_UPGRADE;
  check_request("GET /ws HTTP/1.1\r\nConnection: Upgrade, X-Hop\r\nUpgrade: websocket\r\nX-Hop: 1\r\n\r\n", &s,
                "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nHost: up:1234\r\nX-Forwarded-For: 10.0.0.1\r\n"
                "X-Forwarded-Proto: http\r\nConnection: upgrade\r\n\r\n");

  /* A zero length is still a length. */
  memset(&s, 0, sizeof s);
  s.framing = RELAY_FRAME_LENGTH;
  check_request("POST /z HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &s,
                "POST /z HTTP/1.1\r\nHost: up:1234\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: http\r\n"
                "Content-Length: 0\r\n\r\n");
}

static void check_response(const char *raw, int skip_body, relay_response_spec_t *s, const char *want) {
  tp_msg_t in, out;
  parse_head(&in, HTTP_RESPONSE, raw, skip_body);
  if (!s->status) s->status = in.status;
  relay_buf_t b;
  relay_buf_init(&b);
  CHECK(relay_encode_response_head(&b, &in.head, s) == 0);
  CHECK_MEM(b.data, b.len, want, strlen(want));
  parse_head(&out, HTTP_RESPONSE, want, skip_body);
  CHECK(out.status == in.status);
  CHECK(out.length_fields + out.te_fields <= 1);
  relay_buf_dispose(&b);
  tp_close(&in);
  tp_close(&out);
}

static void test_response_head(void) {
  relay_response_spec_t s = {0};
  s.framing = RELAY_FRAME_LENGTH;
  s.length = 5;
  check_response("HTTP/1.1 200 OK\r\nConnection: keep-alive, Content-Length, X-Hop\r\nContent-Length: 5\r\n"
                 "X-Hop: 1\r\nX-Up: u\r\nKeep-Alive: timeout=5\r\n\r\nhello",
                 0, &s, "HTTP/1.1 200 OK\r\nX-Up: u\r\nContent-Length: 5\r\n\r\n");
  memset(&s, 0, sizeof s);
  s.framing = RELAY_FRAME_CHUNKED;
  s.connection = RELAY_CONN_CLOSE;
  check_response("HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Type: a/b\r\n\r\n", 0, &s,
                 "HTTP/1.1 201 Created\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  memset(&s, 0, sizeof s);
  s.connection = RELAY_CONN_UPGRADE;
  check_response("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX: y\r\n\r\n", 0, &s,
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX: y\r\nConnection: upgrade\r\n\r\n");
  memset(&s, 0, sizeof s);
  check_response("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Length: 9\r\nUpgrade: x\r\n\r\n", 0, &s,
                 "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
  memset(&s, 0, sizeof s);
  s.framing = RELAY_FRAME_LENGTH;
  s.length = 1234;
  s.connection = RELAY_CONN_KEEP_ALIVE;
  check_response("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 1, &s,
                 "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nConnection: keep-alive\r\n\r\n");
}

static void test_response_framing(void) {
  CHECK(relay_response_framing(100, 1, 0, 0, 1) == RELAY_FRAME_NONE);
  CHECK(relay_response_framing(101, 1, 0, 0, 1) == RELAY_FRAME_NONE);
  CHECK(relay_response_framing(204, 1, 1, 0, 1) == RELAY_FRAME_NONE);
  CHECK(relay_response_framing(304, 1, 1, 0, 1) == RELAY_FRAME_LENGTH);
  CHECK(relay_response_framing(304, 1, 0, 0, 1) == RELAY_FRAME_NONE);
  CHECK(relay_response_framing(200, 1, 1, 1, 1) == RELAY_FRAME_LENGTH); /* HEAD */
  CHECK(relay_response_framing(200, 0, 1, 0, 1) == RELAY_FRAME_LENGTH);
  CHECK(relay_response_framing(200, 0, 1, 0, 0) == RELAY_FRAME_LENGTH);
  CHECK(relay_response_framing(200, 0, 1, 1, 1) == RELAY_FRAME_CHUNKED);
  CHECK(relay_response_framing(200, 0, 0, 0, 1) == RELAY_FRAME_CHUNKED);
  CHECK(relay_response_framing(200, 0, 0, 0, 0) == RELAY_FRAME_CLOSE);
  CHECK(relay_response_framing(500, 0, 1, 1, 0) == RELAY_FRAME_CLOSE);
}

static void test_u64(void) {
  char p[24];
  size_t n = relay_u64_to_dec(p, 0);
  CHECK_STR(p, n, "0");
  n = relay_u64_to_dec(p, 18446744073709551615ull);
  CHECK_STR(p, n, "18446744073709551615");
  n = relay_u64_to_dec(p, 1000);
  CHECK_STR(p, n, "1000");
}

static void test_field_kind(void) {
  CHECK(relay_field_kind("CONTENT-length", 14) == RELAY_FIELD_CONTENT_LENGTH);
  CHECK(relay_field_kind("Content-Lengthx", 15) == RELAY_FIELD_OTHER);
  CHECK(relay_field_kind("te", 2) == RELAY_FIELD_TE);
  CHECK(relay_field_kind("X-Forwarded-Proto", 17) == RELAY_FIELD_X_FORWARDED_PROTO);
  CHECK(relay_field_kind_is_hop_by_hop(RELAY_FIELD_TRANSFER_ENCODING));
  CHECK(!relay_field_kind_is_hop_by_hop(RELAY_FIELD_HOST));
}

int main(void) {
  test_target_split();
  test_conn_tokens();
  test_request_head();
  test_response_head();
  test_response_framing();
  test_u64();
  test_field_kind();
  return check_report("test_http_encode");
}
