"""Streaming behaviour: bounded memory under backpressure in both directions, a client
that goes away closes the upstream connection at once, an upstream that dies leaves
a visibly cut response."""

import hashlib
import http.client
import os
import sys
import struct
import threading
import time
import unittest
import zlib
import random

from relaytest import RelayTestCase, Client, ConnectionClosed, RssSampler, wait_for, sha256

MIB = 1 << 20
GIB = 1 << 30
RSS_LIMIT_KB = 64 * 1024
PAUSE = 1.5                 # seconds the slow side stops reading
PUSHED_LIMIT = 48 * MIB     # bytes the fast side may get ahead during the pause (kernel buffers + relay)
SANITIZED = os.environ.get("RELAY_SANITIZED", "0").lower() in ("1", "on", "true", "yes")


def note(msg):
    if os.environ.get("RELAYTEST_VERBOSE"):
        sys.stderr.write("\n  [%s] " % msg)


def numbered_block(block, i):
    return struct.pack(">Q", i) + block[8:]


class Backpressure(RelayTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.block = random.Random(5).randbytes(MIB)

    def test_1gib_response_to_slow_client_bounded_memory(self):
        block, nblocks = self.block, GIB // MIB
        state = {"sent": 0, "crc": 0, "done": False}

        def handler(conn, req):
            if not conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % GIB):
                return
            crc = 0
            for i in range(nblocks):
                b = numbered_block(block, i)
                crc = zlib.crc32(b, crc)
                if not conn.send(b):
                    return
                state["sent"] += len(b)
            state["crc"] = crc
            state["done"] = True

        self.upstream.handler = handler
        relay = self.start_relay()
        base_rss = relay.rss_kb()
        sampler = RssSampler(relay)
        self.addCleanup(sampler.stop)
        c = Client(relay.port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/v1/huge")
        r = c.read_head()
        self.assertIn(b" 200 ", r.split(b"\r\n")[0])
        # read a little, then stop reading
        got = len(c.buf)
        crc = zlib.crc32(bytes(c.buf))
        c.buf.clear()
        buf = bytearray(4 * MIB)
        mv = memoryview(buf)
        while got < MIB:
            n = c.sock.recv_into(mv)
            self.assertGreater(n, 0, "EOF early")
            crc = zlib.crc32(mv[:n], crc)
            got += n
        time.sleep(PAUSE)
        pushed = state["sent"]
        paused_rss = sampler.max_kb
        # now read the rest as fast as possible
        c.sock.settimeout(15)
        deadline = time.monotonic() + 30
        while got < GIB and time.monotonic() < deadline:
            n = c.sock.recv_into(mv)
            if n == 0:
                break
            crc = zlib.crc32(mv[:n], crc)
            got += n
        max_rss = sampler.stop()
        self.assertLess(pushed, PUSHED_LIMIT,
                        "upstream pushed %d MiB while the client was not reading" % (pushed // MIB))
        self.assertLess(paused_rss, RSS_LIMIT_KB, "RSS %d kB while the client paused (start %s kB)"
                        % (paused_rss, base_rss))
        self.assertEqual(got, GIB, "response truncated")
        self.assertTrue(wait_for(lambda: state["done"], 5))
        self.assertEqual(crc, state["crc"], "response bytes differ")
        self.assertLess(max_rss, RSS_LIMIT_KB, "max RSS %d kB over the transfer (start %s kB)" % (max_rss, base_rss))
        note("download: start RSS %s kB, max %d kB; upstream ahead by %d KiB during the pause"
             % (base_rss, max_rss, pushed // 1024))

    def test_1gib_upload_to_slow_upstream_bounded_memory(self):
        block, nblocks = self.block, GIB // MIB
        state = {}

        def handler(conn, req):
            n = int(req.header("content-length"))
            crc, got = 0, 0
            first = conn.read_exact(min(MIB, n))
            crc = zlib.crc32(first, crc)
            got += len(first)
            state["paused"] = time.monotonic()
            time.sleep(PAUSE)
            state["client_sent_at_resume"] = sender["sent"]
            if conn.buf:
                crc = zlib.crc32(conn.buf, crc)
                got += len(conn.buf)
                conn.buf.clear()
            buf = bytearray(4 * MIB)
            mv = memoryview(buf)
            while got < n:
                k = conn.sock.recv_into(mv, min(len(buf), n - got))
                if k == 0:
                    break
                crc = zlib.crc32(mv[:k], crc)
                got += k
            body = b'{"len":%d,"crc":%d}' % (got, crc)
            conn.respond(200, [("Content-Type", "application/json")], body)

        up = self.make_upstream(handler, read_body=False)
        relay = self.start_relay(upstream=up)
        sampler = RssSampler(relay)
        self.addCleanup(sampler.stop)
        c = Client(relay.port, timeout=15)
        self.addCleanup(c.close)
        sender = {"sent": 0, "crc": 0, "err": None}

        def send_all():
            try:
                c.send(b"PUT /v1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                       b"Content-Length: %d\r\n\r\n" % GIB)
                crc = 0
                for i in range(nblocks):
                    b = numbered_block(block, i)
                    crc = zlib.crc32(b, crc)
                    c.sock.sendall(b)
                    sender["sent"] += len(b)
                sender["crc"] = crc
            except Exception as e:
                sender["err"] = e
        t = threading.Thread(target=send_all, daemon=True)
        t.start()
        self.assertTrue(wait_for(lambda: "client_sent_at_resume" in state, 10), "upstream never paused")
        paused_rss = sampler.max_kb
        t.join(40)
        self.assertFalse(t.is_alive(), "upload did not finish")
        self.assertIsNone(sender["err"])
        r = c.read_response("PUT")
        max_rss = sampler.stop()
        self.assertEqual(r.status, 200, r)
        self.assertLess(state["client_sent_at_resume"], PUSHED_LIMIT,
                        "client pushed %d MiB while the upstream was not reading"
                        % (state["client_sent_at_resume"] // MIB))
        self.assertLess(paused_rss, RSS_LIMIT_KB, "RSS %d kB while the upstream paused" % paused_rss)
        doc = r.json()
        self.assertEqual(doc["len"], GIB)
        self.assertEqual(doc["crc"], sender["crc"], "uploaded bytes differ")
        self.assertLess(max_rss, RSS_LIMIT_KB, "max RSS %d kB over the upload" % max_rss)
        note("upload: max RSS %d kB; client ahead by %d KiB during the pause"
             % (max_rss, state["client_sent_at_resume"] // 1024))


class BatchedStreamBackpressure(RelayTestCase):
    """A chunked stream of small events, hundreds per upstream read: each read's events leave
    in one write (with the head, for the first), and a client that stops reading still holds
    the upstream back within the memory bound."""

    def test_small_events_to_a_paused_client_bounded_memory(self):
        events = b"".join(b'data: {"n":%06d,"pad":"%s"}\n\n' % (i, b"x" * (i % 50)) for i in range(8000))
        block = b"".join(b"%x\r\n%s\r\n" % (len(events[i:i + 100]), events[i:i + 100])
                         for i in range(0, len(events), 100))
        nblocks = 128 * MIB // len(events)
        state = {"sent": 0, "done": False}

        def handler(conn, req):
            if not conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n"):
                return
            for _ in range(nblocks):
                if not conn.send(block):
                    return
                state["sent"] += len(events)
            conn.send(b"0\r\n\r\n")
            state["done"] = True

        self.upstream.handler = handler
        relay = self.start_relay()
        sampler = RssSampler(relay)
        self.addCleanup(sampler.stop)
        c = Client(relay.port, timeout=10)
        self.addCleanup(c.close)
        c.request("GET", "/v1/events")
        head = c.read_head()
        self.assertIn(b" 200 ", head.split(b"\r\n")[0])
        self.assertIn(b"transfer-encoding: chunked", head.lower())
        raw = bytearray(c.buf)
        c.buf.clear()
        while len(raw) < MIB:
            piece = c.sock.recv(1 << 20)
            self.assertTrue(piece, "EOF early")
            raw += piece
        time.sleep(PAUSE)
        pushed = state["sent"]
        paused_rss = sampler.max_kb
        deadline = time.monotonic() + 60
        while not raw.endswith(b"\r\n0\r\n\r\n") and time.monotonic() < deadline:
            piece = c.sock.recv(4 << 20)
            if not piece:
                break
            raw += piece
        max_rss = sampler.stop()
        self.assertLess(pushed, PUSHED_LIMIT, "upstream pushed %d MiB while the client was not reading"
                        % (pushed // MIB))
        if not SANITIZED:  # AddressSanitizer keeps freed blocks (one per read here) in its quarantine
            self.assertLess(paused_rss, RSS_LIMIT_KB, "RSS %d kB while the client paused" % paused_rss)
            self.assertLess(max_rss, RSS_LIMIT_KB, "max RSS %d kB over the stream" % max_rss)
        # decode the relay's chunking: the events arrive whole and in order, then a clean end
        body, pos, nchunks = bytearray(), 0, 0
        while True:
            eol = raw.index(b"\r\n", pos)
            size = int(raw[pos:eol], 16)
            if size == 0:
                self.assertEqual(raw[eol:], b"\r\n\r\n", "bytes after the last chunk")
                break
            body += raw[eol + 2:eol + 2 + size]
            self.assertEqual(raw[eol + 2 + size:eol + 4 + size], b"\r\n")
            pos = eol + 4 + size
            nchunks += 1
        self.assertTrue(state["done"])
        self.assertEqual(len(body), nblocks * len(events))
        self.assertEqual(sha256(bytes(body)), sha256(events * nblocks), "events differ or are out of order")
        # batched per read: far fewer chunks out than the upstream's 100-byte chunks in
        self.assertLess(nchunks, nblocks * len(block) // 100 // 10)
        note("batched stream: %d chunks out, max RSS %d kB, upstream ahead by %d KiB during the pause"
             % (nchunks, max_rss, pushed // 1024))


class ClientGoesAway(RelayTestCase):
    """The relay closes the upstream connection within a second of the client leaving."""

    def _assert_upstream_closed_after(self, t0, conn_wait=3.0):
        conns = self.upstream.wait_conns(1)
        self.assertTrue(conns, "no upstream connection")
        conn = conns[0]
        self.assertTrue(conn.peer_closed.wait(conn_wait), "upstream connection still open %.1fs after the "
                        "client left" % conn_wait)
        self.assertLess(conn.peer_closed_at - t0, 1.0, "upstream connection closed %.2fs after the client left"
                        % (conn.peer_closed_at - t0))

    def test_abort_mid_sse_stream(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b'data: {"n":1}\n\n')
            conn.wait_peer_closed(5)
        self.upstream.handler = handler
        relay = self.start_relay()
        c = Client(relay.port)
        c.request("POST", "/v1/completions", body=b'{"stream":true}')
        r_head = c.read_until(b'data: {"n":1}')
        self.assertIn(b" 200 ", r_head)
        t0 = time.monotonic()
        c.close()
        self._assert_upstream_closed_after(t0)

    def test_abort_mid_large_body(self):
        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (200 * MIB))
            chunk = b"\x5a" * (256 * 1024)
            for _ in range(800):
                if not conn.send(chunk):
                    return
        self.upstream.handler = handler
        relay = self.start_relay()
        c = Client(relay.port)
        c.request("GET", "/v1/big")
        c.read_head()
        c.read_exact(MIB)
        t0 = time.monotonic()
        c.close()
        self._assert_upstream_closed_after(t0)

    def test_abort_while_waiting_for_response(self):
        # the model is "thinking": no response bytes yet
        def handler(conn, req):
            conn.wait_peer_closed(5)
        self.upstream.handler = handler
        relay = self.start_relay()
        c = Client(relay.port)
        c.request("POST", "/v1/chat/completions", body=b'{"model":"m","messages":[]}')
        self.upstream.wait_requests(1)
        time.sleep(0.2)
        t0 = time.monotonic()
        c.close()
        self._assert_upstream_closed_after(t0)

    def test_abort_mid_upload(self):
        def handler(conn, req):
            try:
                conn.read_body(req)
            except (ConnectionClosed, OSError):
                return
            conn.respond(200, [], b"unexpected")
        up = self.make_upstream(handler, read_body=False)
        self.upstream = up
        relay = self.start_relay(upstream=up)
        c = Client(relay.port)
        c.send(b"POST /v1/files HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (10 * MIB))
        c.send(b"q" * 100000)
        up.wait_conns(1)
        time.sleep(0.2)
        t0 = time.monotonic()
        c.close()
        self._assert_upstream_closed_after(t0)


class UpstreamDies(RelayTestCase):

    def _http_client_read(self, port, path):
        hc = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            hc.request("GET", path)
            resp = hc.getresponse()
            status = resp.status
            with self.assertRaises(http.client.IncompleteRead) as cm:
                resp.read()
            return status, cm.exception
        finally:
            hc.close()

    def _die_chunked(self, how):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b"data: partial-1\n\n")
            conn.chunk(b"data: partial-2\n\n")
            time.sleep(0.1)
            conn.reset() if how == "reset" else conn.close()
        return handler

    def test_chunked_upstream_dies_http_client(self):
        self.upstream.handler = self._die_chunked("close")
        relay = self.start_relay()
        status, exc = self._http_client_read(relay.port, "/v1/stream")
        self.assertEqual(status, 200)
        self.assertEqual(exc.partial, b"data: partial-1\n\ndata: partial-2\n\n")

    def test_chunked_upstream_dies_raw(self):
        for how in ("close", "reset"):
            with self.subTest(how=how):
                self.upstream.handler = self._die_chunked(how)
                relay = self.start_relay()
                with Client(relay.port) as c:
                    c.request("GET", "/v1/stream")
                    r = c.read_response()
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.framing, "chunked")
                    self.assertFalse(r.complete, "cut stream ended with a terminating chunk")
                    self.assertTrue(r.eof)
                    self.assertEqual(r.body, b"data: partial-1\n\ndata: partial-2\n\n")

    def test_content_length_upstream_dies(self):
        def handler(conn, req):
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
                      + b"7" * 500)
            time.sleep(0.1)
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        status, exc = self._http_client_read(relay.port, "/v1/models")
        self.assertEqual(status, 200)
        self.assertEqual(exc.partial, b"7" * 500)
        with Client(relay.port) as c:
            c.request("GET", "/v1/models")
            t0 = time.monotonic()
            r = c.read_response()
            self.assertLess(time.monotonic() - t0, 2.0)
        self.assertEqual(r.header("content-length"), "1000")
        self.assertFalse(r.complete)
        self.assertEqual(r.body, b"7" * 500)

    def test_upstream_dies_right_after_head(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            time.sleep(0.1)
            conn.close()
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.request("GET", "/v1/stream")
            r = c.read_response()
        # either the head was already relayed (then the stream must look cut) or a 502
        if r.status == 200:
            self.assertFalse(r.complete, "an empty cut stream looked complete")
        else:
            self.assertErrorResponse(r, 502, "upstream_error", "upstream_bad_response")

    def test_upstream_sends_bad_chunk(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b"data: ok\n\n")
            time.sleep(0.05)
            conn.send(b"zz\r\nnot a chunk\r\n0\r\n\r\n")
            conn.wait_peer_closed(3)
        self.upstream.handler = handler
        relay = self.start_relay()
        with Client(relay.port) as c:
            c.request("GET", "/v1/stream")
            r = c.read_response()
        self.assertEqual(r.status, 200)
        self.assertFalse(r.complete, "garbled upstream chunking was relayed as a clean end")
        self.assertNotIn(b"not a chunk", r.body)


if __name__ == "__main__":
    unittest.main()
