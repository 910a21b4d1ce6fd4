"""Hostile peers on the HTTP side (issue 8), over real sockets, each class with variants:

  RequestFraming      a client naming framing or relay-set fields in Connection cannot
                      desync a pooled upstream connection (no smuggling into the next
                      client's request); the upstream always sees one well-framed request
  ResponseFraming     the same for an upstream's response: the client always gets framing
  TargetSplit         one split of the request target: a script's ACL sees exactly the path
                      that goes upstream (absolute form, any case, #fragment, no path, query)
  Deadlines           the 2nd request head on a kept-alive connection, a stalled request
                      body (buffered and streamed routes), an upstream trickling its head,
                      a client that stops reading: each has a deadline
  InterimFlood        endless 1xx from an upstream to a client that does not read: memory
                      stays bounded (RSS from /proc) and the exchange ends with a 502
  HeaderCount         60,000 tiny fields cost linear CPU (utime+stime from /proc), both ways
  Retry               only idempotent methods are retried after a reused connection died
  Trailers            chunked request trailers never become head fields
  StatusRange         upstream status codes outside 100..599 are a 502
  ReloadMidBody       a request routed before SIGHUP goes to its own script's upstream
"""

import json
import os
import signal
import socket
import threading
import time
import unittest

from relaytest import (RelayTestCase, Client, RssSampler, ConnectionClosed, http_exchange, build_request,
                       encode_chunked, echo_handler, status_head, sha256, wait_for)
from test_lua_routing import LuaTestCase, script_path

SANITIZED = os.environ.get("RELAY_SANITIZED", "").lower() in ("1", "true", "on", "yes")
SECRET = "Bearer victim-secret-7f3a"


def assert_one_request(test, reqs, what):
    test.assertEqual(len(reqs), 1, "%s: %r" % (what, reqs))
    return reqs[0]


class RequestFraming(RelayTestCase):
    """Item 1: `Connection: keep-alive, Content-Length` made the relay drop Content-Length
    and forward the body unframed; the upstream took the body for the start of the next
    request and glued the next client's request (and its Authorization) onto it."""

    SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\nX-Glue: "

    def attack_then_victim(self, attack, expect_body, want_status=200):
        relay = self.start_relay(WORKERS=1)
        with Client(relay.port) as c:
            c.send(attack)
            r = c.read_response("POST")
            self.assertEqual(r.status, want_status, r)
        time.sleep(0.05)   # the attacker's upstream connection is back in the pool
        with Client(relay.port) as v:
            v.request("GET", "/victim", [("Authorization", SECRET)])
            rv = v.read_response()
        self.assertEqual(rv.status, 200, rv)
        self.assertEqual(rv.json()["target"], "/victim", "the victim got someone else's response")
        reqs = self.upstream.wait_requests(2)
        time.sleep(0.1)
        reqs = list(self.upstream.requests)
        self.assertEqual([(q.method, q.target) for q in reqs], [("POST", "/attack"), ("GET", "/victim")],
                         "the upstream must see exactly the two requests sent")
        self.assertEqual(reqs[0].body, expect_body)
        self.assertIsNone(reqs[0].header("authorization"), "the victim's credentials leaked into the attack")
        self.assertEqual(reqs[1].header("authorization"), SECRET)
        self.assertEqual(reqs[0].header_all("host"), ["127.0.0.1:%d" % self.upstream.port])
        self.assertEqual(len(reqs[0].header_all("content-length")) + len(reqs[0].header_all("transfer-encoding")),
                         1, "exactly one framing field: %r" % reqs[0].headers)
        self.assertEqual(self.upstream.errors, [])
        return reqs[0]

    def test_content_length_named_in_connection(self):
        for conn in ("keep-alive, Content-Length", "Content-Length", "content-length ,keep-alive",
                     "keep-alive, Content-Length, Host, X-Forwarded-For, X-Forwarded-Proto"):
            with self.subTest(connection=conn):
                self.upstream = self.make_upstream()
                body = self.SMUGGLED
                attack = (b"POST /attack HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n"
                          b"Connection: %s\r\nContent-Length: %d\r\n\r\n" % (conn.encode(), len(body)) + body)
                q = self.attack_then_victim(attack, body)
                self.assertEqual(q.header("content-length"), str(len(body)))
                self.assertEqual(q.header("x-forwarded-for"), "10.9.9.9, 127.0.0.1",
                                 "X-Forwarded-For is the relay's: a Connection listing cannot drop it")
                self.assertEqual(q.header("x-forwarded-proto"), "http")

    def test_connection_close_and_content_length(self):
        # the attacker's own connection closes; the upstream connection is still pooled
        body = self.SMUGGLED
        attack = (b"POST /attack HTTP/1.1\r\nHost: x\r\nConnection: close, Content-Length\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.attack_then_victim(attack, body)

    def test_transfer_encoding_named_in_connection(self):
        body = self.SMUGGLED
        attack = (b"POST /attack HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Transfer-Encoding\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + encode_chunked(body, [7]))
        q = self.attack_then_victim(attack, body)
        self.assertTrue(q.chunked)

    def test_zero_length_post_keeps_its_length(self):
        attack = b"POST /attack HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 0\r\n\r\n"
        q = self.attack_then_victim(attack, b"")
        self.assertEqual(q.header("content-length"), "0")

    def test_other_listed_fields_are_still_dropped(self):
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/x", [("Connection", "keep-alive, X-Hop, x-other"),
                                                    ("X-Hop", "1"), ("X-Other", "2"), ("X-Kept", "3")])
        self.assertEqual(r.status, 200)
        q = self.upstream.wait_requests(1)[0]
        self.assertIsNone(q.header("x-hop"))
        self.assertIsNone(q.header("x-other"))
        self.assertEqual(q.header("x-kept"), "3")
        self.assertIsNone(q.header("connection"))

    def test_too_many_connection_options_is_400(self):
        relay = self.start_relay()
        names = ", ".join("x-n%d" % i for i in range(200))
        r = http_exchange(relay.port, "GET", "/x", [("Connection", names)])
        self.assertErrorResponse(r, 400, "invalid_request_error", "bad_request")
        self.assertEqual(self.upstream.requests, [])
        # repeats of a few names are fine
        r = http_exchange(relay.port, "GET", "/y", [("Connection", ", ".join(["x-a", "x-b"] * 500))])
        self.assertEqual(r.status, 200)

    def test_transfer_codings_other_than_chunked_are_501(self):
        """The relay frames bodies itself and can only undo chunked: `gzip, chunked` used to
        reach the upstream as gzip bytes labelled only chunked."""
        relay = self.start_relay()
        gz = encode_chunked(b"\x1f\x8b\x08\x00not-really-gzip")
        for te, status, code in ((["gzip, chunked"], 501, "unsupported_transfer_coding"),
                                 (["gzip", "chunked"], 501, "unsupported_transfer_coding"),
                                 (["identity, chunked"], 501, "unsupported_transfer_coding"),
                                 (["x-custom, chunked"], 501, "unsupported_transfer_coding"),
                                 (["chunked, chunked"], 400, "bad_request")):   # llhttp's own refusal
            with self.subTest(te=te), Client(relay.port) as c:
                head = "POST /te HTTP/1.1\r\nHost: x\r\n" + "".join("Transfer-Encoding: %s\r\n" % v for v in te)
                c.send(head.encode() + b"\r\n" + gz)
                r = c.read_response("POST")
                self.assertErrorResponse(r, status, "invalid_request_error", code)
        self.assertEqual(self.upstream.requests, [], "nothing may reach the upstream")
        for te in ("chunked", "Chunked", " chunked "):
            with self.subTest(te=te), Client(relay.port) as c:
                c.send(("POST /ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: %s\r\n\r\n" % te).encode()
                       + encode_chunked(b"hello"))
                r = c.read_response("POST")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["body_len"], 5)


class ResponseFraming(RelayTestCase):
    """Item 2: an upstream naming Content-Length in Connection left the client with no
    framing at all on a keep-alive connection."""

    def serve(self, raw_response):
        def handler(conn, req):
            conn.send(raw_response(req))
        self.upstream.handler = handler
        return self.start_relay()

    def test_content_length_named_in_connection(self):
        for conn in ("keep-alive, Content-Length", "Content-Length", "Content-Length, Transfer-Encoding, close"):
            with self.subTest(connection=conn):
                self.upstream = self.make_upstream()
                relay = self.serve(lambda req: b"HTTP/1.1 200 OK\r\nConnection: %s\r\nContent-Length: 5\r\n"
                                               b"X-Up: 1\r\n\r\nhello" % conn.encode())
                with Client(relay.port, timeout=2) as c:
                    for i in range(3):
                        c.request("GET", "/r%d" % i)
                        r = c.read_response()
                        self.assertEqual((r.status, r.framing, r.body), (200, "length", b"hello"), r)
                        self.assertEqual(r.header("x-up"), "1")
                        self.assertEqual(len(r.header_all("content-length")), 1)

    def test_chunked_response_naming_transfer_encoding(self):
        relay = self.serve(lambda req: b"HTTP/1.1 200 OK\r\nConnection: Transfer-Encoding, Content-Length\r\n"
                                       b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        with Client(relay.port, timeout=2) as c:
            for i in range(2):
                c.request("GET", "/c%d" % i)
                r = c.read_response()
                self.assertEqual((r.status, r.framing, r.body, r.complete), (200, "chunked", b"hello", True), r)

    def test_transfer_codings_other_than_chunked_are_502(self):
        """An upstream's `gzip, chunked` would reach the client dechunked but still gzip,
        under the relay's own chunked framing and with the coding lost: a 502 instead."""
        for te in ("gzip, chunked", "chunked, chunked", "deflate, chunked"):
            with self.subTest(te=te):
                self.upstream = self.make_upstream()
                relay = self.serve(lambda req: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n"
                                               b"5\r\nhello\r\n0\r\n\r\n" % te.encode())
                r = http_exchange(relay.port, "GET", "/gz")
                self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_head_and_304_keep_their_announced_length(self):
        def raw(req):
            st = b"304 Not Modified" if req.target == "/304" else b"200 OK"
            return b"HTTP/1.1 " + st + b"\r\nConnection: Content-Length\r\nContent-Length: 1234\r\n\r\n"
        relay = self.serve(raw)
        with Client(relay.port, timeout=2) as c:
            c.request("HEAD", "/h")
            r = c.read_response("HEAD")
            self.assertEqual((r.status, r.header("content-length")), (200, "1234"))
            c.request("GET", "/304")
            r = c.read_response()
            self.assertEqual((r.status, r.header("content-length"), r.body), (304, "1234", b""))
            c.request("HEAD", "/h2")
            self.assertEqual(c.read_response("HEAD").status, 200)

    def test_http10_client_gets_a_length(self):
        relay = self.serve(lambda req: b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello")
        with Client(relay.port, timeout=2) as c:
            c.send(b"GET /ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            r = c.read_response()
            self.assertEqual((r.status, r.framing, r.body), (200, "length", b"hello"), r)
            self.assertEqual(r.header("connection"), "keep-alive")

    def test_interim_head_carries_no_framing(self):
        relay = self.serve(lambda req: b"HTTP/1.1 103 Early Hints\r\nContent-Length: 7\r\nLink: </a>\r\n\r\n"
                                       b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        with Client(relay.port, timeout=2) as c:
            c.request("GET", "/hints")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"ok"))
            self.assertEqual(len(r.interim), 1)
            self.assertIsNone(r.interim[0].header("content-length"))
            self.assertEqual(r.interim[0].header("link"), "</a>")


class TargetSplit(LuaTestCase):
    """Item 4: for `GET http://x/admin` a script saw req.path = "http://x/admin" while the
    upstream got /admin. One function splits the target for the script, the C routes and
    the request line."""

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("acl.lua")

    def send(self, target):
        with Client(self.relay.port, timeout=3) as c:
            c.send(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            return c.read_response()

    def test_acl_denies_admin_in_every_form(self):
        for target in ("/admin", "http://x/admin", "HTTP://X/admin", "hTtP://x:80/admin?y=1",
                       "https://evil.example:443/admin/users", "http://u@x/admin/", "/admin#frag",
                       "/admin?x=1#frag", "http://x/admin#top", "/admin/?q", "http://[::1]:9/admin"):
            with self.subTest(target=target):
                r = self.send(target)
                self.assertEqual(r.status, 403, "%s passed the script's ACL: %r" % (target, r))
        self.assertEqual([q.target for q in self.upstream.requests + self.upstream_b.requests], [],
                         "a denied request reached an upstream")

    def test_script_sees_what_goes_upstream(self):
        cases = [("http://x", "/", None), ("HTTP://x?a=1", "/", "a=1"), ("http://h?x", "/", "x"),
                 ("http://x/ok?a=1#f", "/ok", "a=1"), ("/ok#f?no", "/ok", None), ("/ok?#", "/ok", ""),
                 ("https://x/adminx", "/adminx", None), ("/p?q=1?r#s#t", "/p", "q=1?r")]
        for target, path, query in cases:
            with self.subTest(target=target):
                n = len(self.upstream.requests)
                r = self.send(target)
                self.assertEqual(r.status, 200, r)
                q = self.upstream.wait_requests(n + 1)[n]
                want = path + ("" if query is None else "?" + query)
                self.assertEqual(q.target, want)
                self.assertEqual(q.header("x-seen-target"), want)
                self.assertEqual(q.header("x-seen-path"), path)
                self.assertEqual(q.header("x-seen-query"), "-" if query is None else query)

    def test_c_routes_use_the_same_split(self):
        for target in ("/private/1", "http://x/private/2", "HTTP://X/private/3#f", "/private/4?q#f"):
            with self.subTest(target=target):
                n = len(self.upstream_b.requests)
                self.assertEqual(self.send(target).status, 200)
                q = self.upstream_b.wait_requests(n + 1)[n]
                self.assertTrue(q.target.startswith("/private/"), q.target)
                self.assertNotIn("#", q.target)
        self.assertEqual(self.upstream.requests, [])


class Deadlines(RelayTestCase):
    """Item 5: timeouts that were never armed."""

    def test_header_timeout_on_second_request(self):
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=0.5, RELAY_KEEPALIVE_TIMEOUT=30)
        with Client(relay.port, timeout=5) as c:
            c.request("GET", "/first")
            self.assertEqual(c.read_response().status, 200)
            c.send(b"GET /second HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            c.settimeout(4)
            r = c.read_response()
            self.assertErrorResponse(r, 408, "invalid_request_error", "request_timeout")
            self.assertLess(time.monotonic() - t0, 3.0)
            self.assertClosedSoon(c, 2)
        self.assertEqual([q.target for q in self.upstream.requests], ["/first"])

    def test_trickled_second_head_is_cut(self):
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=1, RELAY_KEEPALIVE_TIMEOUT=30)
        with Client(relay.port, timeout=5) as c:
            c.request("GET", "/first")
            self.assertEqual(c.read_response().status, 200)
            c.send(b"GET /slowloris HTTP/1.1\r\nHost: x\r\n")
            took = c.trickle_until_closed(5)
            self.assertIsNotNone(took, "a second head trickled byte by byte was never cut off")
            self.assertLess(took, 3.5)

    def test_pipelined_second_head_is_timed(self):
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=0.5, RELAY_KEEPALIVE_TIMEOUT=30)
        with Client(relay.port, timeout=5) as c:
            c.send(build_request("GET", "/first") + b"GET /second HTTP/1.1\r\nHost: x\r\n")
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            r = c.read_response()
            self.assertEqual(r.status, 408)
            self.assertLess(time.monotonic() - t0, 3.0)

    def stalled_body(self, relay, target, head_extra=b"", chunked=False):
        with Client(relay.port, timeout=5) as c:
            if chunked:
                c.send(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Transfer-Encoding: chunked\r\n" + head_extra + b"\r\n5\r\n{\"a\":")
            else:
                c.send(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 1000\r\n" + head_extra + b"\r\n{\"messages\":")
            t0 = time.monotonic()
            r = c.read_response("POST")
            dt = time.monotonic() - t0
            self.assertErrorResponse(r, 408, "invalid_request_error", "request_timeout")
            self.assertLess(dt, 3.5)
            self.assertClosedSoon(c, 2)

    def test_stalled_body_on_buffered_chat_route(self):
        # the stock chat route reads the whole body first (history hygiene)
        relay = self.start_relay(RELAY_BODY_TIMEOUT=0.5)
        self.stalled_body(relay, b"/v1/chat/completions")
        self.stalled_body(relay, b"/v1/chat/completions", chunked=True)
        self.assertEqual(self.upstream.requests, [])
        self.assertEqual(self.upstream.connection_count, 0)

    def test_stalled_body_on_streaming_route(self):
        self.upstream.read_body = True
        relay = self.start_relay(RELAY_BODY_TIMEOUT=0.5)
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                n = self.upstream.connection_count
                self.stalled_body(relay, b"/v1/files", chunked=chunked)
                conn = self.upstream.wait_conns(n + 1)[n]
                self.assertTrue(conn.peer_closed.wait(3), "the upstream connection of a stalled body stays open")

    def test_stalled_body_after_expect_continue(self):
        relay = self.start_relay(RELAY_BODY_TIMEOUT=0.5)
        with Client(relay.port, timeout=5) as c:
            c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   b"Content-Type: application/json\r\nContent-Length: 10\r\n\r\n")
            r = c.read_response("POST")
            self.assertEqual([i.status for i in r.interim], [100])
            self.assertEqual(r.status, 408)

    def test_slow_but_moving_body_is_not_cut(self):
        relay = self.start_relay(RELAY_BODY_TIMEOUT=0.6)
        body = b"x" * 12
        with Client(relay.port, timeout=5) as c:
            c.send(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
            for i in range(0, len(body), 2):
                time.sleep(0.2)
                c.send(body[i:i + 2])
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_sha256"], sha256(body))

    def trickling_upstream(self, first, each):
        """The upstream sends first, then each every 0.1 s for as long as the test runs;
        the relay (header timeout 1 s, idle timeout far off) in front of it."""
        stop = threading.Event()
        self.addCleanup(stop.set)

        def handler(conn, req):
            conn.send(first)
            while not stop.is_set():
                if not conn.send(each):
                    return
                time.sleep(0.1)
        self.upstream.handler = handler
        return self.start_relay(RELAY_HEADER_TIMEOUT=1, RELAY_IDLE_TIMEOUT=30)

    def test_upstream_trickling_its_head_times_out(self):
        relay = self.trickling_upstream(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"a")
        with Client(relay.port, timeout=6) as c:
            t0 = time.monotonic()
            c.request("GET", "/trickle")
            r = c.read_response()
            self.assertErrorResponse(r, 504, "upstream_error", "upstream_timeout")
            self.assertLess(time.monotonic() - t0, 4)
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(3))

    def test_upstream_trickling_interim_then_final_head_times_out(self):
        relay = self.trickling_upstream(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", b"X-A: b\r\n")
        with Client(relay.port, timeout=6) as c:
            t0 = time.monotonic()
            c.request("GET", "/trickle")
            r = c.read_response()
            self.assertEqual(r.status, 504, r)
            self.assertLess(time.monotonic() - t0, 4)

    def test_slow_first_byte_and_slow_final_after_interim_still_fine(self):
        # the wait for a head's first byte is the idle timeout, not the header timeout
        def handler(conn, req):
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(1.2)
            conn.respond(200, [("Content-Type", "text/plain")], b"thought")
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=0.4, RELAY_IDLE_TIMEOUT=10)
        with Client(relay.port, timeout=6) as c:
            c.request("GET", "/think")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"thought"), r)

    def test_client_that_stops_reading_is_cut(self):
        chunk = b"z" * (1 << 20)

        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (200 * len(chunk)))
            for _ in range(200):
                if not conn.send(chunk):
                    return
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_SEND_TIMEOUT=1)
        c = Client(relay.port, timeout=5)
        self.addCleanup(c.close)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.request("GET", "/big")
        conn = self.upstream.wait_conns(1)[0]
        t0 = time.monotonic()
        self.assertTrue(conn.peer_closed.wait(6), "a client that reads nothing holds the exchange for ever")
        self.assertLess(time.monotonic() - t0, 5.5)
        self.assertTrue(relay.wait_log("stopped reading", timeout=2))


class InterimFlood(RelayTestCase):
    """Item 6a: endless 100 Continue to a client that does not read grew the relay to GBs."""

    FLOOD_BYTES = 8 << 20

    def flood(self, head):
        state = {"sent": 0}

        def handler(conn, req):
            block = head * (65536 // len(head))
            while state["sent"] < self.FLOOD_BYTES:
                if not conn.send(block):
                    return
                state["sent"] += len(block)
            conn.wait_peer_closed(5)
        self.upstream.handler = handler
        relay = self.start_relay()
        base = relay.rss_kb()
        sampler = RssSampler(relay)
        try:
            c = Client(relay.port, timeout=5)
            self.addCleanup(c.close)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            c.request("GET", "/flood")
            conn = self.upstream.wait_conns(1)[0]
            conn.peer_closed.wait(8)   # the relay gives up on the upstream (or the flood ends)
            time.sleep(0.3)
        finally:
            peak = sampler.stop()
        grown = peak - base
        self.assertLess(grown, 48 * 1024, "RSS grew by %d KiB under an interim-response flood (%d bytes sent)"
                        % (grown, state["sent"]))
        self.assertTrue(conn.peer_closed.is_set(), "the flooding upstream was never cut off")
        self.assertLess(state["sent"], self.FLOOD_BYTES, "the relay read the whole flood")
        r = c.read_response()
        self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")
        self.assertLessEqual(len(r.interim), 16)
        return r

    def test_endless_100_continue(self):
        r = self.flood(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.assertTrue(all(i.status == 100 for i in r.interim))

    def test_endless_early_hints(self):
        r = self.flood(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
        self.assertTrue(all(i.status == 103 for i in r.interim))

    def test_large_interim_heads_obey_flow_control(self):
        # each head is 200 KiB: a few of them fill the client's queue; the relay stops reading
        big = b"HTTP/1.1 103 Early Hints\r\n" + b"".join(b"Link: </%06d-%s>\r\n" % (i, b"a" * 90)
                                                          for i in range(2000)) + b"\r\n"

        def handler(conn, req):
            for _ in range(40):
                if not conn.send(big):
                    return
            conn.wait_peer_closed(5)
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_SEND_TIMEOUT=1)
        c = Client(relay.port, timeout=5)
        self.addCleanup(c.close)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        c.request("GET", "/big-hints")
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(6), "the exchange waits for ever on a client that does not read")
        self.assertLess(conn.bytes_sent, 40 * len(big))


class HeaderCount(RelayTestCase):
    """Item 6b: hop-by-hop filtering rescanned every Connection field per field."""

    N = 120000

    def cpu_of(self, relay, fn):
        before = relay.cpu_seconds()
        fn()
        return relay.cpu_seconds() - before

    def test_many_request_fields(self):
        relay = self.start_relay(RELAY_MAX_HEADER_SIZE=1 << 20)
        for conn_value in ("keep-alive", "keep-alive, x-drop, x-also"):
            with self.subTest(connection=conn_value):
                n = len(self.upstream.requests)
                head = (b"GET /many HTTP/1.1\r\nHost: x\r\nConnection: " + conn_value.encode() + b"\r\n"
                        + b"a: b\r\n" * self.N + b"X-Drop: 1\r\n\r\n")

                def go():
                    with Client(relay.port, timeout=30) as c:
                        c.send(head)
                        self.assertEqual(c.read_response().status, 200)
                cpu = self.cpu_of(relay, go)
                self.assertLess(cpu, 1.0, "%d request fields cost %.2f s of CPU" % (self.N, cpu))
                q = self.upstream.wait_requests(n + 1)[n]
                self.assertEqual(len(q.header_all("a")), self.N)
                self.assertIsNone(q.header("x-drop") if "x-drop" in conn_value else None)

    def test_many_connection_fields(self):
        relay = self.start_relay(RELAY_MAX_HEADER_SIZE=1 << 20)
        head = b"GET /conn HTTP/1.1\r\nHost: x\r\n" + b"Connection: x-a\r\nX-A: 1\r\n" * (self.N // 2) + b"\r\n"

        def go():
            with Client(relay.port, timeout=30) as c:
                c.send(head)
                self.assertEqual(c.read_response().status, 200)
        cpu = self.cpu_of(relay, go)
        self.assertLess(cpu, 1.0, "%d Connection fields cost %.2f s of CPU" % (self.N // 2, cpu))
        self.assertIsNone(self.upstream.wait_requests(1)[0].header("x-a"))

    def test_many_response_fields(self):
        fields = b"a: b\r\n" * self.N

        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, x-drop\r\nX-Drop: 1\r\n" + fields
                      + b"Content-Length: 2\r\n\r\nok")
        self.upstream.handler = handler
        relay = self.start_relay()

        def go():
            with Client(relay.port, timeout=30) as c:
                c.request("GET", "/many-back")
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"ok"))
                self.assertEqual(len(r.header_all("a")), self.N)
                self.assertIsNone(r.header("x-drop"))
        cpu = self.cpu_of(relay, go)
        self.assertLess(cpu, 1.0, "%d response fields cost %.2f s of CPU" % (self.N, cpu))


class Retry(RelayTestCase):
    """Item 9: a body-less POST was sent again on a fresh connection after a reused one
    died having read it."""

    def setUp(self):
        super().setUp()
        served = {}

        def handler(conn, req):
            served[conn.id] = served.get(conn.id, 0) + 1
            if served[conn.id] == 2:
                conn.close()      # read the request, acted on it, died without answering
                return
            echo_handler(conn, req)
        self.upstream.handler = handler
        self.relay = self.start_relay(WORKERS=1)

    def attempt(self, method, extra=()):
        with Client(self.relay.port) as c:
            c.request("GET", "/warm")
            self.assertEqual(c.read_response().status, 200)
            n = len(self.upstream.requests)
            c.request(method, "/op", list(extra))
            r = c.read_response(method)
        time.sleep(0.1)
        return r, [q for q in self.upstream.requests[n:] if q.target == "/op"]

    def test_non_idempotent_methods_are_not_replayed(self):
        for method, extra in (("POST", ()), ("POST", [("Content-Length", "0")]), ("PATCH", ()),
                              ("LOCK", ()), ("MKCOL", ())):
            with self.subTest(method=method, extra=extra):
                r, seen = self.attempt(method, extra)
                self.assertEqual(len(seen), 1, "%s was sent %d times" % (method, len(seen)))
                self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_idempotent_methods_are_retried(self):
        for method in ("GET", "HEAD", "DELETE", "OPTIONS", "PUT"):
            with self.subTest(method=method):
                extra = [("Content-Length", "0")] if method == "PUT" else []
                r, seen = self.attempt(method, extra)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(seen), 2)


class Trailers(RelayTestCase):
    """Item 10a: chunked trailers on body-buffered routes became upstream head fields."""

    TRAILERS = [("Authorization", "Bearer from-a-trailer"), ("X-Trailer-Test", "1"), ("Host", "evil.example"),
                ("Content-Length", "3")]

    def post(self, relay, target, body):
        with Client(relay.port) as c:
            c.send(b"POST " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\nTrailer: Authorization\r\n\r\n"
                   + encode_chunked(body, [5], trailers=self.TRAILERS))
            r = c.read_response("POST")
            c.request("GET", "/after")
            self.assertEqual(c.read_response().status, 200)
        return r

    def check_upstream(self, q, body):
        self.assertEqual(q.body, body)
        self.assertIsNone(q.header("authorization"), "a trailer became a head field: %r" % q.headers)
        self.assertIsNone(q.header("x-trailer-test"))
        self.assertIsNone(q.header("trailer"))
        self.assertEqual(q.header_all("host"), ["127.0.0.1:%d" % self.upstream.port])
        self.assertEqual(q.trailers, [])

    def test_trailers_dropped_on_buffered_chat_route(self):
        relay = self.start_relay()
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
        r = self.post(relay, b"/v1/chat/completions", body)
        self.assertEqual(r.status, 200, r)
        self.check_upstream(self.upstream.wait_requests(1)[0], body)

    def test_trailers_dropped_on_streaming_route(self):
        relay = self.start_relay()
        body = b"0123456789abcdef"
        r = self.post(relay, b"/v1/files", body)
        self.assertEqual(r.status, 200, r)
        self.check_upstream(self.upstream.wait_requests(1)[0], body)

    def test_response_trailers_never_reach_the_client_head(self):
        # the chat rewrite holds a JSON body whole and sends its head at the end: the
        # upstream's trailers arrived by then and must not be merged into that head
        doc = {"id": "c1", "object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
        body = json.dumps(doc).encode()

        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "application/json"), ("Trailer", "X-Trailer-Test")])
            conn.chunk(body)
            conn.end_chunks([("X-Trailer-Test", "1"), ("Set-Cookie", "session=evil"), ("Content-Length", "1")])
        self.upstream.handler = handler
        relay = self.start_relay()
        for target in (b"/v1/chat/completions", b"/v1/other"):
            with self.subTest(target=target):
                with Client(relay.port) as c:
                    c.request("POST", target.decode(), [("Content-Type", "application/json")], body=b"{}")
                    r = c.read_response("POST")
                    self.assertEqual(r.status, 200, r)
                    self.assertEqual(json.loads(r.body), doc)
                    self.assertIsNone(r.header("x-trailer-test"), r.headers)
                    self.assertIsNone(r.header("set-cookie"), r.headers)
                    self.assertEqual(r.trailers, [])
                    self.assertLessEqual(len(r.header_all("content-length")), 1)
                    c.request("GET", "/after")
                    self.assertEqual(c.read_response().status, 200)

    def test_huge_trailers_are_refused(self):
        relay = self.start_relay(RELAY_MAX_HEADER_SIZE=8192)
        with Client(relay.port) as c:
            c.send(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + encode_chunked(b"abc", trailers=[("X-T%d" % i, "v" * 100) for i in range(200)]))
            try:
                r = c.read_response("POST")
                self.assertIn(r.status, (200, 431), r)
            except ConnectionClosed:
                pass
            self.assertClosedSoon(c, 3)
        self.assertIsNone(relay.proc.poll())


class StatusRange(RelayTestCase):
    """Item 10b: status lines like 000, 999, 20 were forwarded."""

    def test_out_of_range_statuses_are_502(self):
        for line in (b"000 Zero", b"099 Low", b"999 High", b"20 Short", b"600 Over", b"0 Z"):
            with self.subTest(status=line):
                self.upstream = self.make_upstream(
                    lambda conn, req, line=line: conn.send(b"HTTP/1.1 " + line + b"\r\nContent-Length: 2\r\n\r\nok"))
                relay = self.start_relay()
                r = http_exchange(relay.port, "GET", "/status")
                self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_edges_of_the_range_pass(self):
        for status in (100, 199, 200, 599):
            with self.subTest(status=status):
                def handler(conn, req, status=status):
                    if status < 200:
                        conn.send(b"HTTP/1.1 %d Info\r\n\r\n" % status)
                        conn.respond(200, [], b"final")
                    else:
                        conn.respond(status, [], b"x", reason="Edge")
                self.upstream = self.make_upstream(handler)
                relay = self.start_relay()
                r = http_exchange(relay.port, "GET", "/edge")
                if status < 200:
                    self.assertEqual((r.status, [i.status for i in r.interim]), (200, [status]))
                else:
                    self.assertEqual(r.status, status)


class ReloadMidBody(LuaTestCase):
    """Item 10c: a request routed (and held for its body) before SIGHUP went to the new
    script's upstream while its head and access log named the old one."""

    def write_script(self, version, upstream_var):
        with open(script_path("reload_body.lua")) as f:
            src = f.read()
        src = src.replace("local VERSION = 1", "local VERSION = %d" % version, 1)
        src = src.replace('local UPSTREAM_VAR = "UPSTREAM_PORT"', 'local UPSTREAM_VAR = "%s"' % upstream_var, 1)
        tmp = self.script + ".tmp"
        with open(tmp, "w") as f:
            f.write(src)
        os.replace(tmp, self.script)

    def run_case(self, warm_new_pool):
        self.script = os.path.join(self.workdir, "reload-body-test.lua")
        self.write_script(1, "UPSTREAM_PORT")
        relay = self.start_script(None, path=self.script)
        body = b'{"half":1,"other":"' + b"x" * 100 + b'"}'
        c = Client(relay.port)
        self.addCleanup(c.close)
        c.send(b"POST /buffered HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        time.sleep(0.2)
        self.write_script(2, "UPSTREAM_B_PORT")
        relay.signal(signal.SIGHUP)
        self.assertTrue(relay.wait_log("script reloaded", timeout=5))
        if warm_new_pool:
            # a new-script exchange leaves a pooled connection to the new upstream
            with Client(relay.port) as w:
                w.request("POST", "/buffered", body=b"{}")
                self.assertEqual(w.read_response("POST").status, 200)
            q = self.upstream_b.wait_requests(1)[0]
            self.assertEqual(q.header("x-version"), "2")
        c.send(body[10:])
        r = c.read_response("POST")
        self.assertEqual(r.status, 200, r)
        q = self.upstream.wait_requests(1)
        self.assertEqual(len(q), 1, "the request routed by the old script did not reach its upstream")
        q = q[0]
        self.assertEqual(q.body, body)
        self.assertEqual(q.header("x-version"), "1")
        self.assertEqual(q.header("host"), "127.0.0.1:%d" % self.upstream.port)
        self.assertEqual([x.header("x-version") for x in self.upstream_b.requests], ["2"] if warm_new_pool else [])
        line = [a for a in relay.wait_access(2 if warm_new_pool else 1) if a["path"] == "/buffered"][-1]
        self.assertEqual(line["upstream"], "127.0.0.1:%d" % self.upstream.port, line)

    def test_buffered_request_goes_to_its_own_upstream(self):
        self.run_case(warm_new_pool=False)

    def test_pool_of_new_script_not_used_by_old_exchange(self):
        self.run_case(warm_new_pool=True)


if __name__ == "__main__":
    unittest.main()
