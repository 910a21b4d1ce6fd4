"""Requests and responses are forwarded unchanged: methods, targets, headers, bodies,
hop-by-hop removal, Host / X-Forwarded-*, and the upstream cannot be chosen by the client."""

import os
import random
import unittest

from relaytest import (RelayTestCase, Client, http_exchange, build_request, encode_chunked,
                       hget, hall, connection_tokens, sha256, ipv6_available, MockUpstream)

MIB = 1 << 20


class MethodsAndTargets(RelayTestCase):

    def test_every_method_with_query_forwarded(self):
        relay = self.start_relay()
        cases = [
            ("GET", "/v1/models?x=1", None),
            ("POST", "/v1/completions?stream=false", b'{"prompt":"hi"}'),
            ("PUT", "/files/a%20b?overwrite=1", b"put-body"),
            ("PATCH", "/items/7?fields=a,b", b'{"a":1}'),
            ("DELETE", "/items/7?hard=true", None),
            ("OPTIONS", "/v1/chat/completions", None),
            # an extension method llhttp knows (WebDAV / caches)
            ("PURGE", "/cache/key?x=%2F", None),
            ("PROPFIND", "/dav/", b"<propfind/>"),
        ]
        for method, target, body in cases:
            with self.subTest(method=method):
                r = http_exchange(relay.port, method, target, body=body)
                self.assertEqual(r.status, 200, r)
                doc = r.json()
                self.assertEqual(doc["method"], method)
                self.assertEqual(doc["target"], target)
                self.assertEqual(doc["body_len"], len(body or b""))
                self.assertEqual(doc["body_sha256"], sha256(body or b""))
        got = [(q.method, q.target) for q in self.upstream.requests]
        self.assertEqual(got, [(m, t) for m, t, _ in cases])

    def test_unregistered_method_forwarded_or_clean_400(self):
        # A token method llhttp does not know: forwarding it is ideal; llhttp strict mode
        # may reject it, which must then be a clean JSON 400, never a hang or a crash.
        relay = self.start_relay()
        r = http_exchange(relay.port, "FROBNICATE", "/x?y=1")
        if r.status == 200:
            self.assertEqual(r.json()["method"], "FROBNICATE")
        else:
            self.assertErrorResponse(r, 400, "invalid_request_error", "bad_request")
            self.assertEqual(self.upstream.requests, [])
        # and the relay is still serving
        self.assertEqual(http_exchange(relay.port, "GET", "/after").status, 200)

    def test_odd_but_valid_targets_intact(self):
        relay = self.start_relay()
        targets = [
            "/",
            "/v1/models?x=1&y=2&x=3",
            "/a%20b/%2F%25%E2%82%AC/c?q=%26amp%3D&r=a+b&empty=&flag",
            "/sub-delims/!$&'()*+,;=:@-._~/end?!$&'()*+,;=:@-._~/?",
            "//double//slashes/?a=/b//c",
            "/trailing/",
            "/%7Euser/%c3%a9?utf8=%C3%A9%C3%A8&pct=100%25",
            "/x?" + "k%d=v%d&" % (1, 1) * 200,
        ]
        for t in targets:
            with self.subTest(target=t):
                r = http_exchange(relay.port, "GET", t)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], t)

    def test_absolute_form_and_foreign_host_go_to_configured_upstream(self):
        # Something listening where the client points must never see the request.
        decoy = MockUpstream()
        self.addCleanup(decoy.stop)
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.send(b"GET http://127.0.0.1:%d/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                   % (decoy.port, decoy.port))
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        with Client(relay.port) as c:
            c.send(b"GET http://evil.example/abs?q=2 HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            r2 = c.read_response()
        self.assertEqual(r2.status, 200, r2)
        r3 = http_exchange(relay.port, "GET", "/host-header", headers=[("Host", "127.0.0.1:%d" % decoy.port)])
        self.assertEqual(r3.status, 200, r3)
        self.assertEqual(decoy.connection_count, 0, "the client's Host/URI chose the upstream")
        reqs = self.upstream.wait_requests(3)
        self.assertEqual(len(reqs), 3)
        expect_host = "127.0.0.1:%d" % self.upstream.port
        for q in reqs:
            self.assertEqual(q.header_all("host"), [expect_host], q.headers)
        # forwarded in origin-form
        self.assertEqual(reqs[0].target, "/x?y=1")
        self.assertEqual(reqs[1].target, "/abs?q=2")
        self.assertEqual(reqs[2].target, "/host-header")


class Headers(RelayTestCase):

    CLIENT_HEADERS = [
        ("Host", "client.example:8080"),
        ("User-Agent", "relaytest/1.0"),
        ("Accept", "application/json"),
        ("Authorization", "Bearer sk-test-123"),
        ("X-Multi", "first"),
        ("X-CaSe-MiXeD", "Value With  Two  Spaces"),
        ("X-Multi", "second"),
        ("Cookie", "a=1"),
        ("X-Empty", ""),
        ("Accept-Encoding", "gzip, br"),
        ("X-Multi", "third, with comma"),
        ("Cookie", "b=2"),
        ("X-Quoted", '"quoted;value", other'),
    ]

    def _forwarded(self, q):
        """Upstream request headers without the ones the relay sets itself."""
        skip = {"host", "x-forwarded-for", "x-forwarded-proto", "content-length", "connection"}
        return [(k.lower(), v) for k, v in q.headers if k.lower() not in skip]

    def test_request_headers_kept_in_order_with_repeats(self):
        relay = self.start_relay()
        body = b'{"model":"x"}'
        r = http_exchange(relay.port, "POST", "/v1/embeddings", headers=self.CLIENT_HEADERS, body=body)
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        want = [(k.lower(), v) for k, v in self.CLIENT_HEADERS if k.lower() != "host"]
        self.assertEqual(self._forwarded(q), want)
        self.assertEqual(q.header_all("content-length"), [str(len(body))])
        self.assertEqual(q.body, body)
        self.assertEqual(q.header_all("host"), ["127.0.0.1:%d" % self.upstream.port])
        self.assertEqual(q.header_all("x-forwarded-for"), ["127.0.0.1"])
        self.assertEqual(q.header_all("x-forwarded-proto"), ["http"])

    def test_x_forwarded_for_appended(self):
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/", headers=[("X-Forwarded-For", "203.0.113.7, 198.51.100.2")])
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header_all("x-forwarded-for"), ["203.0.113.7, 198.51.100.2, 127.0.0.1"])
        self.assertEqual(q.header_all("x-forwarded-proto"), ["http"])

    def test_hop_by_hop_request_headers_removed(self):
        relay = self.start_relay()
        hdrs = [
            ("Connection", "keep-alive, X-Hop-One"),
            ("X-Hop-One", "secret1"),
            ("Keep-Alive", "timeout=5, max=10"),
            ("X-Keep", "kept-1"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Connection", "x-hop-two"),           # a second Connection field
            ("X-Hop-Two", "secret2"),
            ("Upgrade", "h2c"),                    # not a tunnel request: hop-by-hop
            ("Trailer", "X-Checksum"),
            ("X-Keep", "kept-2"),
        ]
        r = http_exchange(relay.port, "GET", "/hop", headers=hdrs)
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        names = [k.lower() for k, _ in q.headers]
        for hop in ("x-hop-one", "x-hop-two", "keep-alive", "proxy-connection", "te",
                    "upgrade", "trailer", "transfer-encoding"):
            self.assertNotIn(hop, names, q.headers)
        # the relay may manage its own upstream connection, but must not pass the client's tokens on
        for tok in connection_tokens(q.headers):
            self.assertIn(tok, ("keep-alive", "close"), q.headers)
        self.assertEqual(q.header_all("x-keep"), ["kept-1", "kept-2"])

    def test_response_headers_kept_and_hop_by_hop_removed(self):
        def handler(conn, req):
            body = b"hello response headers"
            conn.send(
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: text/plain; charset=utf-8\r\n"
                b"Set-Cookie: a=1; Path=/\r\n"
                b"Connection: X-Up-Hop\r\n"
                b"X-Up-Hop: secret\r\n"
                b"X-Normal: 1\r\n"
                b"Keep-Alive: timeout=5, max=100\r\n"
                b"Proxy-Connection: keep-alive\r\n"
                b"Upgrade: h2c\r\n"
                b"Set-Cookie: b=2; Path=/\r\n"
                b"X-Normal: 2\r\n"
                b"X-Request-Id: abc-123\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/resp-headers")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello response headers")
        names = [k.lower() for k, _ in r.headers]
        for hop in ("x-up-hop", "keep-alive", "proxy-connection", "upgrade", "transfer-encoding"):
            self.assertNotIn(hop, names, r.headers)
        for tok in connection_tokens(r.headers):
            self.assertIn(tok, ("keep-alive", "close"), r.headers)
        self.assertEqual(r.header_all("set-cookie"), ["a=1; Path=/", "b=2; Path=/"])
        self.assertEqual(r.header_all("x-normal"), ["1", "2"])
        self.assertEqual(r.header("x-request-id"), "abc-123")
        self.assertEqual(r.header("content-type"), "text/plain; charset=utf-8")
        # relative order of the end-to-end fields is the upstream's
        order = [k.lower() for k, _ in r.headers if k.lower() in
                 ("content-type", "set-cookie", "x-normal", "x-request-id")]
        self.assertEqual(order, ["content-type", "set-cookie", "x-normal", "set-cookie",
                                 "x-normal", "x-request-id"])

    def test_large_response_header_passed(self):
        big = "b" * 30000

        def handler(conn, req):
            conn.respond(200, [("X-Big", big), ("X-After", "1")], b"ok")
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/big-response-header")
        self.assertEqual((r.status, r.body), (200, b"ok"))
        self.assertEqual(r.header("x-big"), big)
        self.assertEqual(r.header("x-after"), "1")

    def test_response_status_and_reason_passed(self):
        def handler(conn, req):
            conn.respond(418, [("Content-Type", "text/plain")], b"teapot", reason="I'm a teapot")
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/teapot")
        self.assertEqual((r.status, r.body), (418, b"teapot"))
        self.assertEqual(r.header("content-type"), "text/plain")


class Bodies(RelayTestCase):
    SIZE = 10 * MIB

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        rnd = random.Random(1234)
        cls.blob = rnd.randbytes(cls.SIZE)
        cls.sizes = [rnd.choice([1, 7, 100, 4096, 65536, 300000, 1 << 20]) for _ in range(64)]

    def test_10mib_request_body_content_length(self):
        relay = self.start_relay()
        r = http_exchange(relay.port, "POST", "/upload", body=self.blob, timeout=20)
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header_all("content-length"), [str(self.SIZE)])
        self.assertIsNone(q.header("transfer-encoding"))
        self.assertBodyEqual(q.body, self.blob, "upstream request body")

    def test_10mib_request_body_chunked(self):
        relay = self.start_relay()
        with Client(relay.port, timeout=20) as c:
            head = build_request("POST", "/upload-chunked", [("Content-Type", "application/octet-stream")],
                                 chunked=True, body=b"")
            head = head[:head.index(b"\r\n\r\n") + 4]
            c.send(head + encode_chunked(self.blob, self.sizes, ext=True))
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        self.assertTrue(q.chunked, "upstream request not chunked: %r" % q.headers)
        self.assertIsNone(q.header("content-length"), q.headers)
        self.assertEqual(len(q.header_all("transfer-encoding")), 1, q.headers)
        self.assertBodyEqual(q.body, self.blob, "upstream request body")
        self.assertEqual(r.json()["body_sha256"], sha256(self.blob))

    def test_10mib_response_body_content_length(self):
        blob = self.blob

        def handler(conn, req):
            conn.respond(200, [("Content-Type", "application/octet-stream")], blob)
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port, timeout=20) as c:
            c.request("GET", "/download")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.framing, "length", r.headers)
            self.assertEqual(r.header("content-length"), str(self.SIZE))
            self.assertBodyEqual(r.body, blob, "response body")
            # connection still usable afterwards
            c.request("GET", "/download")
            self.assertBodyEqual(c.read_response().body, blob, "second response body")

    def test_10mib_response_body_chunked(self):
        blob, sizes = self.blob, self.sizes

        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "application/octet-stream"), ("Trailer", "X-Sum")])
            pos, i = 0, 0
            while pos < len(blob):
                n = sizes[i % len(sizes)]
                conn.chunk(blob[pos:pos + n])
                pos += n
                i += 1
            conn.end_chunks([("X-Sum", "whatever")])
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port, timeout=20) as c:
            c.request("GET", "/download-chunked")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.framing, "chunked", r.headers)
            self.assertTrue(r.complete, "terminating chunk missing")
            self.assertIsNone(r.header("content-length"))
            self.assertBodyEqual(r.body, blob, "response body")
            c.request("GET", "/again")
            r2 = c.read_response()
            self.assertTrue(r2.complete)
            self.assertBodyEqual(r2.body, blob, "second response body")

    def test_close_delimited_response_goes_chunked_to_http11(self):
        blob = self.blob[:3 * MIB + 17]

        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
            for i in range(0, len(blob), 200000):
                conn.send(blob[i:i + 200000])
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port, timeout=20) as c:
            c.request("GET", "/close-delimited")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.framing, "chunked", r.headers)
            self.assertTrue(r.complete)
            self.assertBodyEqual(r.body, blob)
            # the client connection is still keep-alive; the next request uses a new upstream connection
            c.request("GET", "/next")
            r2 = c.read_response()
            self.assertEqual(r2.status, 200)
            self.assertBodyEqual(r2.body, blob)

    def test_chunked_response_to_http10_is_close_delimited(self):
        blob = self.blob[:2 * MIB + 5]

        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "application/octet-stream")])
            for i in range(0, len(blob), 100003):
                conn.chunk(blob[i:i + 100003])
            conn.end_chunks()
        self.upstream.handler = handler
        relay = self.start_relay()
        for extra in ([], [("Connection", "keep-alive")]):
            with self.subTest(headers=extra):
                with Client(relay.port, timeout=20) as c:
                    c.request("GET", "/h10", extra, version="HTTP/1.0")
                    r = c.read_response()
                    self.assertEqual(r.status, 200, r)
                    self.assertIsNone(r.header("transfer-encoding"), r.headers)
                    self.assertEqual(r.framing, "close", r.headers)
                    self.assertBodyEqual(r.body, blob)


class UpstreamAddress(RelayTestCase):

    def test_upstream_host_localhost(self):
        up = self.make_upstream(hosts=("127.0.0.1", "::1") if ipv6_available() else ("127.0.0.1",))
        relay = self.start_relay(upstream=up, UPSTREAM_HOST="localhost")
        r = http_exchange(relay.port, "GET", "/via-localhost")
        self.assertEqual(r.status, 200, r)
        q = up.wait_requests(1)[0]
        self.assertEqual(q.header_all("host"), ["localhost:%d" % up.port])

    @unittest.skipUnless(ipv6_available(), "no IPv6 loopback")
    def test_upstream_ipv6_literal(self):
        up = self.make_upstream(hosts=("::1",))
        relay = self.start_relay(upstream=up, UPSTREAM_HOST="::1")
        r = http_exchange(relay.port, "GET", "/via-v6")
        self.assertEqual(r.status, 200, r)
        q = up.wait_requests(1)[0]
        self.assertEqual(q.header_all("host"), ["[::1]:%d" % up.port])

    @unittest.skipUnless(ipv6_available(), "no IPv6 loopback")
    def test_listen_ipv6(self):
        relay = self.start_relay(LISTEN_ADDR="::1")
        with Client(relay.port, host="::1") as c:
            c.request("GET", "/from-v6")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header_all("x-forwarded-for"), ["::1"])


if __name__ == "__main__":
    unittest.main()
