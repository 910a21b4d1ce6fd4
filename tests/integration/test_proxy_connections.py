"""Connection handling: keep-alive, pipelining, HTTP/1.0, the upstream pool, timeouts,
and the special exchanges (HEAD, 204, 304, 1xx, Expect: 100-continue, Upgrade)."""

import json
import os
import random
import threading
import time
import unittest
from urllib.parse import urlsplit, parse_qs

from relaytest import (RelayTestCase, Client, http_exchange, build_request, sha256,
                       connection_tokens, echo_handler, ConnectionClosed)


def delay_echo_handler(conn, req):
    """echo_handler that first sleeps ?delay=SECONDS."""
    q = parse_qs(urlsplit(req.target).query)
    if "delay" in q:
        time.sleep(float(q["delay"][0]))
    if req.method == "HEAD":
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 99\r\n\r\n")
        return
    echo_handler(conn, req)


class KeepAliveAndPipelining(RelayTestCase):

    def test_keep_alive_sequential(self):
        relay = self.start_relay()
        with Client(relay.port) as c:
            for i in range(6):
                body = b"x" * i * 100
                c.request("POST" if i % 2 else "GET", "/seq/%d" % i, body=body if i % 2 else None)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], "/seq/%d" % i)
                self.assertNotIn("close", connection_tokens(r.headers))
        n = self.upstream.connection_count
        self.assertLess(n, 6, "no upstream connection reuse")
        self.assertLessEqual(n, 2, "6 sequential requests on one client connection used %d upstream connections" % n)

    def test_pipelined_requests_answered_in_order(self):
        self.upstream.handler = delay_echo_handler
        relay = self.start_relay()
        reqs = [
            ("GET", "/p/0?delay=0.3", None),
            ("POST", "/p/1", b"body-one" * 1000),
            ("HEAD", "/p/2", None),
            ("GET", "/p/3?delay=0.1", None),
            ("PUT", "/p/4", b"z"),
            ("GET", "/p/5", None),
        ]
        blob = b"".join(build_request(m, t, body=b) for m, t, b in reqs)
        with Client(relay.port, timeout=8) as c:
            c.send(blob)  # all at once
            for m, t, b in reqs:
                r = c.read_response(m)
                self.assertEqual(r.status, 200, (t, r))
                if m == "HEAD":
                    self.assertEqual(r.body, b"")
                    self.assertEqual(r.header("content-length"), "99")
                else:
                    doc = r.json()
                    self.assertEqual(doc["target"], t)
                    self.assertEqual(doc["body_sha256"], sha256(b or b""))

    def test_pipelined_requests_split_oddly(self):
        relay = self.start_relay()
        blob = b"".join(build_request("POST", "/s/%d" % i, body=b"%d" % i * 50) for i in range(4))
        with Client(relay.port) as c:
            cuts = [3, 17, 40, 41, 120, 121, 122, 250, len(blob)]
            prev = 0
            for cut in cuts:
                c.send(blob[prev:cut])
                prev = cut
                time.sleep(0.01)
            for i in range(4):
                r = c.read_response()
                self.assertEqual(r.json()["target"], "/s/%d" % i)
                self.assertEqual(r.json()["body_len"], 50 * len(b"%d" % i))

    def test_client_connection_close_honoured(self):
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.request("GET", "/bye", [("Connection", "close")])
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIn("close", connection_tokens(r.headers))
            self.assertClosedSoon(c, 2.0)

    def test_concurrent_clients_get_their_own_responses(self):
        self.upstream.handler = delay_echo_handler
        relay = self.start_relay()
        results = {}

        def worker(i):
            try:
                r = http_exchange(relay.port, "POST", "/c/%d?delay=0.3" % i, body=b"%d" % i * 1000)
                results[i] = r.json()
            except Exception as e:  # reported below
                results[i] = e
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        for i in range(6):
            self.assertIsInstance(results.get(i), dict, results.get(i))
            self.assertEqual(results[i]["target"], "/c/%d?delay=0.3" % i)
            self.assertEqual(results[i]["body_sha256"], sha256(b"%d" % i * 1000))
        self.assertLess(time.monotonic() - t0, 1.5, "concurrent requests were serialised")
        self.assertGreaterEqual(self.upstream.connection_count, 6)


class Http10(RelayTestCase):

    def test_http10_closes_after_response(self):
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.send(b"GET /old?x=1 HTTP/1.0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/old?x=1")
            self.assertClosedSoon(c, 2.0, "HTTP/1.0 connection")
        q = self.upstream.wait_requests(1)[0]
        self.assertEqual(q.header_all("host"), ["127.0.0.1:%d" % self.upstream.port])

    def test_http10_keep_alive(self):
        relay = self.start_relay()
        with Client(relay.port) as c:
            for i in range(3):
                c.send(b"POST /ka/%d HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\nabc" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], "/ka/%d" % i)
                self.assertEqual(r.json()["body_len"], 3)
                self.assertIn("keep-alive", connection_tokens(r.headers), r.headers)
                self.assertIsNotNone(r.header("content-length"))


class Pool(RelayTestCase):

    def test_pool_reuse_across_client_connections(self):
        ncpu = os.cpu_count() or 1
        n = 2 * ncpu + 4
        relay = self.start_relay()
        for i in range(n):
            r = http_exchange(relay.port, "GET", "/pool/%d" % i)
            self.assertEqual(r.status, 200)
        got = self.upstream.connection_count
        self.assertLess(got, n, "no pooling: %d requests used %d upstream connections" % (n, got))
        self.assertLessEqual(got, ncpu, "%d sequential requests used %d upstream connections" % (n, got))

    def test_pool_survives_upstream_closing_idle_connection(self):
        def handler(conn, req):
            echo_handler(conn, req)
            time.sleep(0.1)
            conn.close()  # keep-alive advertised, then closed while idle in the pool
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            for i in range(3):
                c.request("GET", "/stale/%d" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, "request %d after the pooled connection closed: %r" % (i, r))
                time.sleep(0.4)
        self.assertEqual(len(self.upstream.requests), 3)

    def test_upstream_connection_close_not_reused(self):
        def handler(conn, req):
            conn.respond(200, [("Connection", "close")], b"once")
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            for i in range(3):
                c.request("GET", "/cc/%d" % i)
                r = c.read_response()
                self.assertEqual((r.status, r.body), (200, b"once"), r)
        self.assertEqual(self.upstream.connection_count, 3)


class Timeouts(RelayTestCase):

    def test_header_timeout_closes_stalled_client(self):
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=0.5)
        with Client(relay.port) as c:
            c.send(b"GET /stall HTTP/1.1\r\nHost: x\r\n")
            t0 = time.monotonic()
            self.assertClosedSoon(c, 3.0, "connection with a stalled request head")
            self.assertGreaterEqual(time.monotonic() - t0, 0.4)
        self.assertEqual(self.upstream.requests, [])

    def test_header_timeout_bounds_a_trickled_head(self):
        relay = self.start_relay(RELAY_HEADER_TIMEOUT=1)
        with Client(relay.port) as c:
            c.send(b"GET /slowloris HTTP/1.1\r\nHost: x\r\n")
            took = c.trickle_until_closed(4)
            self.assertIsNotNone(took, "a head trickled byte by byte was never cut off")
            self.assertLess(took, 3.5)

    def test_keepalive_timeout_closes_idle_client(self):
        relay = self.start_relay(RELAY_KEEPALIVE_TIMEOUT=1)
        with Client(relay.port) as c:
            c.request("GET", "/ka")
            self.assertEqual(c.read_response().status, 200)
            t0 = time.monotonic()
            self.assertClosedSoon(c, 4.0, "idle keep-alive connection")
            dt = time.monotonic() - t0
            self.assertGreaterEqual(dt, 0.8, "idle connection closed before RELAY_KEEPALIVE_TIMEOUT")

    def test_slow_upstream_not_cut_by_client_timeouts(self):
        # header/keep-alive timers concern the client side only
        self.upstream.handler = delay_echo_handler
        relay = self.start_relay(RELAY_KEEPALIVE_TIMEOUT=0.5, RELAY_HEADER_TIMEOUT=0.5, RELAY_IDLE_TIMEOUT=5)
        with Client(relay.port, timeout=6) as c:
            c.request("GET", "/slow?delay=1.5")
            r = c.read_response()
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/slow?delay=1.5")

    def test_idle_timeout_is_between_bytes_not_total(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            for i in range(8):
                time.sleep(0.2)
                conn.chunk(b"data: %d\n\n" % i)
            conn.end_chunks()
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_IDLE_TIMEOUT=0.6)
        with Client(relay.port) as c:
            c.request("GET", "/events")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete)
        self.assertEqual(r.body, b"".join(b"data: %d\n\n" % i for i in range(8)))

    def test_idle_timeout_mid_body_cuts_response(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b"data: first\n\n")
            conn.wait_peer_closed(10)
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_IDLE_TIMEOUT=0.5)
        with Client(relay.port, timeout=5) as c:
            c.request("GET", "/stuck")
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete, "a stalled stream ended with a clean terminating chunk")
        self.assertEqual(r.body, b"data: first\n\n")
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(2), "stalled upstream connection not closed")


    def test_keepalive_deadline_restarts_with_each_request(self):
        # Each request on a kept-alive connection starts its keep-alive wait afresh: requests
        # 0.6 s apart under a 1 s keep-alive timeout keep the connection for 3 s; once they
        # stop, it closes about 1 s later.
        relay = self.start_relay(RELAY_KEEPALIVE_TIMEOUT=1)
        with Client(relay.port) as c:
            for i in range(6):
                if i:
                    time.sleep(0.6)
                c.request("GET", "/ka/%d" % i)
                r = c.read_response()
                self.assertEqual(r.status, 200, "request %d on a kept-alive connection: %r" % (i, r))
            t0 = time.monotonic()
            self.assertClosedSoon(c, 4.0, "idle keep-alive connection")
            self.assertGreaterEqual(time.monotonic() - t0, 0.8)

    def test_pooled_upstream_connection_kept_while_used_then_closed(self):
        # The pool's keep-alive deadline (RELAY_KEEPALIVE_TIMEOUT) starts at each release: one
        # upstream connection serves requests 0.6 s apart for 3 s under a 1 s timeout, and
        # closes about 1 s after the last.
        relay = self.start_relay(RELAY_KEEPALIVE_TIMEOUT=1, WORKERS=1)
        for i in range(6):
            if i:
                time.sleep(0.6)
            r = http_exchange(relay.port, "GET", "/pooled/%d" % i)
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["conn"], self.upstream.requests[0].conn_id,
                             "request %d went to a new upstream connection" % i)
        t0 = time.monotonic()
        conn = self.upstream.wait_conns(1)[0]
        self.assertEqual(self.upstream.connection_count, 1)
        self.assertTrue(conn.peer_closed.wait(4), "idle pooled connection never closed")
        self.assertGreaterEqual(conn.peer_closed_at - t0, 0.7, "pooled connection closed before its keep-alive ran out")

    def test_no_idle_deadline_once_the_head_is_in(self):
        # RELAY_IDLE_TIMEOUT=0 turns the wait between bytes off; the header deadline ends with
        # the head and must not go on to cut a body that pauses longer than it.
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b"data: 1\n\n")
            time.sleep(1.2)
            conn.chunk(b"data: 2\n\n")
            conn.end_chunks()
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_IDLE_TIMEOUT=0, RELAY_HEADER_TIMEOUT=0.5)
        with Client(relay.port, timeout=5) as c:
            c.request("GET", "/pause")
            r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.complete, "a body that paused past the header timeout was cut")
        self.assertEqual(r.body, b"data: 1\n\ndata: 2\n\n")

    def test_idle_timeout_not_cut_by_a_slow_upload(self):
        # The upstream reads every piece as it comes and answers at the end: it is not idle.
        # Each piece it takes is progress on the upstream connection, whether the relay's
        # write completed at once or was queued; the idle deadline must restart with it.
        for chunked in (False, True):
            with self.subTest(chunked=chunked):
                relay = self.start_relay(RELAY_IDLE_TIMEOUT=0.6, RELAY_BODY_TIMEOUT=5)
                pieces = [b"%02d" % i * 500 for i in range(10)]
                body = b"".join(pieces)
                with Client(relay.port, timeout=8) as c:
                    if chunked:
                        c.send(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
                    else:
                        c.send(b"POST /slow-upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
                    for p in pieces:
                        time.sleep(0.2)
                        c.send(b"%x\r\n%s\r\n" % (len(p), p) if chunked else p)
                    if chunked:
                        c.send(b"0\r\n\r\n")
                    r = c.read_response("POST")
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["body_sha256"], sha256(body))

class SpecialExchanges(RelayTestCase):

    def test_head_has_no_body(self):
        def handler(conn, req):
            if req.method == "HEAD":
                if req.target == "/chunked":
                    conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-H: c\r\n\r\n")
                else:
                    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1234\r\n\r\n")
            else:
                echo_handler(conn, req)
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.request("HEAD", "/length")
            r = c.read_response("HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("content-length"), "1234")
            c.request("HEAD", "/chunked")
            r = c.read_response("HEAD")
            self.assertEqual((r.status, r.header("x-h")), (200, "c"))
            # nothing stray on the wire: the next response parses cleanly
            c.request("GET", "/after-head")
            r = c.read_response()
            self.assertEqual(r.json()["target"], "/after-head")
            self.assertEqual(c.read_some(0.2) if not c.buf else bytes(c.buf), b"")

    def _no_body_handler(self, conn, req):
        if req.target == "/204":
            conn.send(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n")
        elif req.target == "/304":
            conn.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n\r\n")
        elif req.target == "/304-cl":
            # RFC 9110 8.6: a 304 may carry the Content-Length the 200 would have had
            conn.send(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 500\r\n\r\n")
        else:
            echo_handler(conn, req)

    def _check_no_body(self, method, target, status, headers=()):
        self.upstream.handler = self._no_body_handler
        relay = self.start_relay()
        with Client(relay.port, timeout=3) as c:
            c.request(method, target, list(headers))
            r = c.read_response(method)
            self.assertEqual(r.status, status, r)
            self.assertIsNone(r.header("transfer-encoding"), r.headers)
            # the connection is ready for the next exchange at once: no body expected or sent
            c.request("GET", "/after")
            r2 = c.read_response()
            self.assertEqual(r2.json()["target"], "/after")
        return r

    def test_204_has_no_body(self):
        r = self._check_no_body("DELETE", "/204", 204)
        self.assertEqual(r.header("x-a"), "1")
        self.assertIn(r.header("content-length"), (None, "0"), r.headers)

    def test_304_has_no_body(self):
        r = self._check_no_body("GET", "/304", 304, [("If-None-Match", '"v1"')])
        self.assertEqual(r.header("etag"), '"v1"')
        q = [x for x in self.upstream.requests if x.target == "/304"][0]
        self.assertEqual(q.header("if-none-match"), '"v1"')

    def test_304_with_content_length_has_no_body(self):
        r = self._check_no_body("GET", "/304-cl", 304, [("If-None-Match", '"v1"')])
        self.assertEqual(r.header("etag"), '"v1"')

    def test_1xx_early_hints_relayed_before_final(self):
        def handler(conn, req):
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            time.sleep(0.05)
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </app.js>; rel=preload\r\n\r\n")
            conn.respond(200, [("Content-Type", "text/plain")], b"final")
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.request("GET", "/hints")
            r = c.read_response()
            self.assertEqual((r.status, r.body), (200, b"final"))
            self.assertEqual([i.status for i in r.interim], [103, 103], r.interim)
            self.assertEqual(r.interim[0].header("link"), "</style.css>; rel=preload")
            self.assertEqual(r.interim[1].header("link"), "</app.js>; rel=preload")
            c.request("GET", "/hints")
            self.assertEqual(c.read_response().body, b"final")

    def test_1xx_not_sent_to_http10_client(self):
        # RFC 9110 15.2: a server must not send a 1xx response to an HTTP/1.0 client
        def handler(conn, req):
            conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            conn.respond(200, [("Content-Type", "text/plain")], b"final")
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.send(b"GET /hints HTTP/1.0\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.interim, [], "1xx relayed to an HTTP/1.0 client")
        self.assertEqual((r.status, r.body), (200, b"final"))

    def test_expect_100_continue(self):
        body = random.Random(7).randbytes(300000)

        def handler(conn, req):
            if (req.header("expect") or "").lower() == "100-continue":
                conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.read_body(req)
            echo_handler(conn, req)
        up = self.make_upstream(handler, read_body=False)
        relay = self.start_relay(upstream=up)
        with Client(relay.port) as c:
            head = (b"POST /v1/files HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body))
            c.send(head)
            interim = c._read_one("POST", None)   # the client waits for 100 before sending the body
            self.assertEqual(interim.status, 100, interim)
            c.send(body)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.interim, [])
            self.assertEqual(r.json()["body_sha256"], sha256(body))
            c.request("GET", "/after-expect")
            self.assertEqual(c.read_response().json()["target"], "/after-expect")
        q = up.wait_requests(1)[0]
        self.assertEqual(q.header("expect"), "100-continue")
        self.assertEqual(q.body, body)

    def test_expect_100_continue_upstream_ignores_expect(self):
        # Many servers never send 100 and just read the body; a client that stops waiting
        # for 100 (curl gives up after 1 s) and sends its body must get the final response.
        body = random.Random(8).randbytes(200000)
        relay = self.start_relay()   # default mock: reads the body, then answers
        with Client(relay.port) as c:
            c.send(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body))
            time.sleep(0.5)
            c.send(body)
            r = c.read_response("POST")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["body_sha256"], sha256(body))
        self.assertEqual(self.upstream.wait_requests(1)[0].body, body)

    def _ws_request(self):
        return (b"GET /ws?room=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")

    def _ws_handler(self, up_data_len, down_data, then):
        state = {}

        def handler(conn, req):
            state["req"] = req
            conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" + b"server-hello")
            state["got"] = conn.read_exact(up_data_len)
            conn.send(down_data)
            if then == "close":
                conn.close()
            else:
                state["peer_closed"] = conn.wait_peer_closed(5)
                state["peer_closed_at"] = conn.peer_closed_at
                conn.close()
        return handler, state

    def test_upgrade_tunnel_byte_for_byte_upstream_closes(self):
        rnd = random.Random(99)
        up_data = rnd.randbytes(256 * 1024) + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"  # not parsed as HTTP
        down_data = rnd.randbytes(512 * 1024)
        handler, state = self._ws_handler(len(up_data), down_data, "close")
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.send(self._ws_request())
            r = c.read_response()
            self.assertEqual(r.status, 101, r)
            self.assertEqual((r.header("upgrade") or "").lower(), "websocket")
            self.assertIn("upgrade", connection_tokens(r.headers))
            self.assertEqual(r.header("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
            self.assertEqual(c.read_exact(len(b"server-hello")), b"server-hello")
            c.send(up_data)
            got = c.read_exact(len(down_data))
            self.assertBodyEqual(got, down_data, "tunnelled downstream bytes")
            self.assertClosedSoon(c, 1.5, "client side of the tunnel after the upstream closed")
            self.assertEqual(bytes(c.buf), b"")
        q = state["req"]
        self.assertEqual((q.header("upgrade") or "").lower(), "websocket")
        self.assertIn("upgrade", connection_tokens(q.headers))
        self.assertEqual(q.header("sec-websocket-key"), "dGhlIHNhbXBsZSBub25jZQ==")
        self.assertEqual(q.target, "/ws?room=1")
        self.assertBodyEqual(state["got"], up_data, "tunnelled upstream bytes")

    def test_upgrade_tunnel_client_closes(self):
        handler, state = self._ws_handler(5, b"world", "wait")
        self.upstream.handler = handler
        relay = self.start_relay()
        c = Client(relay.port)
        try:
            c.send(self._ws_request())
            self.assertEqual(c.read_response().status, 101)
            self.assertEqual(c.read_exact(12), b"server-hello")
            c.send(b"hello")
            self.assertEqual(c.read_exact(5), b"world")
        finally:
            t0 = time.monotonic()
            c.close()
        ok = wait_flag(lambda: "peer_closed" in state, 3)
        self.assertTrue(ok and state["peer_closed"], "upstream side of the tunnel not closed")
        self.assertLess(state["peer_closed_at"] - t0, 1.0)


def wait_flag(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


if __name__ == "__main__":
    unittest.main()
