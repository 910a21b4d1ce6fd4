"""SIGTERM / SIGINT: stop accepting, let exchanges in flight finish within
RELAY_SHUTDOWN_TIMEOUT, exit 0."""

import signal
import socket
import threading
import time
import unittest

from relaytest import RelayTestCase, Client, http_exchange


def refused_within(port, timeout):
    """True once a connect to port is refused (polled) within timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = socket.socket()
        s.settimeout(0.5)
        try:
            s.connect(("127.0.0.1", port))
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.05)
    return False


class Shutdown(RelayTestCase):

    def _streaming_handler(self, n=6, interval=0.2):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            for i in range(n):
                conn.chunk(b"data: %d\n\n" % i)
                time.sleep(interval)
            conn.chunk(b"data: [DONE]\n\n")
            conn.end_chunks()
        return handler

    def _graceful(self, sig):
        self.upstream.handler = self._streaming_handler()
        relay = self.start_relay(RELAY_SHUTDOWN_TIMEOUT=10)
        c = Client(relay.port, timeout=5)
        self.addCleanup(c.close)
        c.request("POST", "/v1/completions", body=b'{"stream":true}')
        head = c.read_until(b"data: 0\n\n")
        self.assertIn(b" 200 ", head)
        t_sig = time.monotonic()
        relay.signal(sig)
        self.assertTrue(refused_within(relay.port, 1.5), "still accepting connections after the signal")
        self.assertIsNone(relay.proc.poll(), "exited before the stream in flight finished")
        # the rest of the stream arrives intact
        rest = c.read_until(b"0\r\n\r\n")
        data = head[head.index(b"\r\n\r\n") + 4:] + rest
        for i in range(6):
            self.assertIn(b"data: %d\n\n" % i, data)
        self.assertIn(b"data: [DONE]\n\n", data)
        rc = relay.wait_exit(5)
        self.assertEqual(rc, 0, "exit status %r after %s" % (rc, sig))
        self.assertGreater(time.monotonic() - t_sig, 0.8, "did not wait for the stream in flight")
        lines = relay.access_lines()
        self.assertEqual([a.get("status") for a in lines], ["200"], relay.stderr_text())

    def test_sigterm_graceful(self):
        self._graceful(signal.SIGTERM)

    def test_sigint_graceful(self):
        self._graceful(signal.SIGINT)

    def test_sigterm_idle_exits_promptly(self):
        relay = self.start_relay()
        self.assertEqual(http_exchange(relay.port, "GET", "/").status, 200)
        t0 = time.monotonic()
        relay.signal(signal.SIGTERM)
        self.assertEqual(relay.wait_exit(3), 0)
        self.assertLess(time.monotonic() - t0, 2.0)

    def test_idle_keepalive_client_does_not_delay_shutdown(self):
        relay = self.start_relay(RELAY_SHUTDOWN_TIMEOUT=20)
        c = Client(relay.port)
        self.addCleanup(c.close)
        c.request("GET", "/keep")
        self.assertEqual(c.read_response().status, 200)
        t0 = time.monotonic()
        relay.signal(signal.SIGTERM)
        rc = relay.wait_exit(5)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 2.0, "an idle keep-alive connection held up shutdown")
        self.assertTrue(c.wait_closed(1.0))

    def test_shutdown_deadline(self):
        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream")])
            conn.chunk(b"data: never ending\n\n")
            conn.wait_peer_closed(15)
        self.upstream.handler = handler
        relay = self.start_relay(RELAY_SHUTDOWN_TIMEOUT=1)
        c = Client(relay.port, timeout=8)
        self.addCleanup(c.close)
        c.request("GET", "/v1/stream")
        c.read_until(b"never ending\n\n")
        t0 = time.monotonic()
        relay.signal(signal.SIGTERM)
        rc = relay.wait_exit(5)
        dt = time.monotonic() - t0
        self.assertIsNotNone(rc, "relay still running 5s after SIGTERM with RELAY_SHUTDOWN_TIMEOUT=1")
        self.assertGreaterEqual(dt, 0.8, "did not give the stream its deadline")
        self.assertLess(dt, 3.0)
        self.assertTrue(c.wait_closed(1.0))
        self.assertNotIn(b"0\r\n\r\n", bytes(c.buf), "a stream cut by the deadline looked complete")
        conn = self.upstream.wait_conns(1)[0]
        self.assertTrue(conn.peer_closed.wait(1.0))


if __name__ == "__main__":
    unittest.main()
