"""The access log: one line per exchange, with the documented fields."""

import re
import time
import unittest

from relaytest import RelayTestCase, Client, http_exchange, build_request

ACCESS_FORMAT = re.compile(
    r"access method=(?P<method>\S+) path=(?P<path>\S+) status=(?P<status>\d{3}) "
    r"bytes_in=(?P<bytes_in>\d+) bytes_out=(?P<bytes_out>\d+) "
    r"duration_ms=(?P<duration_ms>\d+(?:\.\d+)?) ttfb_ms=(?P<ttfb_ms>\d+(?:\.\d+)?|-) "
    r"upstream=(?P<upstream>\S+)")


class AccessLog(RelayTestCase):

    def test_access_line_fields(self):
        body = b"y" * 123

        def handler(conn, req):
            if "slow" in req.target:
                time.sleep(0.2)
            conn.respond(200, [("Content-Type", "application/json")], body)
        self.upstream.handler = handler
        relay = self.start_relay()
        r = http_exchange(relay.port, "GET", "/v1/models?x=1")
        self.assertEqual((r.status, len(r.body)), (200, 123))
        r = http_exchange(relay.port, "POST", "/v1/embeddings?slow=1", body=b"z" * 1000)
        self.assertEqual(r.status, 200)
        lines = relay.wait_access(2)
        self.assertEqual(len(lines), 2, relay.stderr_text())
        up = "127.0.0.1:%d" % self.upstream.port
        m = ACCESS_FORMAT.search(lines[0]["_line"])
        self.assertIsNotNone(m, "access line not in the documented form: %r" % lines[0]["_line"])
        a = m.groupdict()
        self.assertEqual(a, dict(a, method="GET", path="/v1/models?x=1", status="200", bytes_in="0",
                                 bytes_out="123", upstream=up))
        self.assertNotEqual(a["ttfb_ms"], "-")
        self.assertLessEqual(float(a["ttfb_ms"]), float(a["duration_ms"]))
        m = ACCESS_FORMAT.search(lines[1]["_line"])
        self.assertIsNotNone(m, lines[1]["_line"])
        b = m.groupdict()
        self.assertEqual(b, dict(b, method="POST", path="/v1/embeddings?slow=1", status="200",
                                 bytes_in="1000", bytes_out="123", upstream=up))
        self.assertGreaterEqual(float(b["ttfb_ms"]), 190.0)
        self.assertGreaterEqual(float(b["duration_ms"]), float(b["ttfb_ms"]))
        self.assertLess(float(b["duration_ms"]), 2000.0)

    def test_one_line_per_exchange(self):
        # One worker: the order of lines from different connections is only
        # defined within one event loop.
        relay = self.start_relay(WORKERS="1")
        with Client(relay.port) as c:
            c.send(b"".join(build_request("GET", "/pipe/%d" % i) for i in range(3)))
            for i in range(3):
                self.assertEqual(c.read_response().status, 200)
        with Client(relay.port) as c:
            c.send(b"NOT HTTP\r\n\r\n")
            self.assertEqual(c.read_response().status, 400)
        http_exchange(relay.port, "HEAD", "/head")
        # a connection that sends nothing is not an exchange
        Client(relay.port).close()
        time.sleep(0.3)
        lines = relay.wait_access(5)
        got = [(a.get("method"), a.get("path"), a.get("status")) for a in lines]
        self.assertEqual(got[:3], [("GET", "/pipe/0", "200"), ("GET", "/pipe/1", "200"),
                                   ("GET", "/pipe/2", "200")], relay.stderr_text())
        self.assertEqual(len(lines), 5, relay.stderr_text())
        self.assertEqual(lines[3].get("status"), "400")
        self.assertEqual(lines[3].get("ttfb_ms"), "-")
        self.assertEqual((lines[4].get("method"), lines[4].get("status"), lines[4].get("bytes_out")),
                         ("HEAD", "200", "0"))


if __name__ == "__main__":
    unittest.main()
