"""Write calls per proxied keep-alive request, as the kernel counts them (/proc/PID/io
syscw: every write and writev of the relay's threads). A request costs one write to the
upstream and one to the client when the upstream's answer comes in one read: the head,
the body (a small one copied, a large one from the read buffer), and, for a chunked
body, its last chunk all leave in the same write. Counts, not timings."""

import json
import time
import unittest

from relaytest import RelayTestCase, Client, build_request, sha256, echo_handler

N = 40          # requests measured per case
SLACK = 0.1     # writes per request allowed above the floor (a stray write anywhere)


def syscw(pid):
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("syscw:"):
                return int(line.split()[1])
    raise AssertionError("no syscw in /proc/%d/io" % pid)


def one_send_handler(conn, req):
    """The whole response in one send, so the relay reads it in one read."""
    q = req.target.split("?", 1)[1] if "?" in req.target else ""
    if q.startswith("chunked"):
        events = b"".join(b"data: {\"n\":%d}\n\n" % i for i in range(3))
        body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in (events[:10], events[10:30], events[30:]))
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + body + b"0\r\n\r\n")
    elif q.startswith("large"):
        body = bytes(range(256)) * 80  # 20 KiB: over the batch piece limit, forwarded from the read buffer
        conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n"
                  % len(body) + body)
    else:
        echo_handler(conn, req)


class WritesPerRequest(RelayTestCase):

    def setUp(self):
        super().setUp()
        self.upstream.handler = one_send_handler
        self.relay = self.start_relay(WORKERS=1, LOG_LEVEL="warn")

    def per_request(self, target, check):
        with Client(self.relay.port, timeout=5) as c:
            for _ in range(3):  # warm: the pooled upstream connection exists
                c.request("GET", target)
                check(c.read_response())
            before = syscw(self.relay.pid)
            for _ in range(N):
                c.request("GET", target)
                check(c.read_response())
            after = syscw(self.relay.pid)
        return (after - before) / N

    def test_content_length_response_one_write_each_way(self):
        def check(r):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json()["target"], "/small")
        w = self.per_request("/small", check)
        self.assertLessEqual(w, 2 + SLACK, "%.2f writes per request (head and body written apart?)" % w)

    def test_chunked_response_and_last_chunk_one_write(self):
        events = b"".join(b"data: {\"n\":%d}\n\n" % i for i in range(3))

        def check(r):
            self.assertEqual(r.status, 200, r)
            self.assertTrue(r.complete)
            self.assertEqual(r.body, events)
        w = self.per_request("/sse?chunked", check)
        self.assertLessEqual(w, 2 + SLACK, "%.2f writes per request (head, body, last chunk apart?)" % w)

    def test_large_body_goes_with_its_head(self):
        body = bytes(range(256)) * 80

        def check(r):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(sha256(r.body), sha256(body))
        w = self.per_request("/big?large", check)
        self.assertLessEqual(w, 2 + SLACK, "%.2f writes per request (head apart from the body?)" % w)

    def test_pipelined_requests_in_order_one_write_each(self):
        with Client(self.relay.port, timeout=5) as c:
            c.request("GET", "/warm")
            c.read_response()
            before = syscw(self.relay.pid)
            c.send(b"".join(build_request("GET", "/p/%d" % i) for i in range(N)))
            for i in range(N):
                r = c.read_response()
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["target"], "/p/%d" % i)
            after = syscw(self.relay.pid)
        w = (after - before) / N
        self.assertLessEqual(w, 2 + SLACK, "%.2f writes per pipelined request" % w)


if __name__ == "__main__":
    unittest.main()
