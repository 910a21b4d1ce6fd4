"""A real client: curl, including `curl -N` on a Server-Sent-Events stream where each
event must reach curl's output before the upstream sends the next one."""

import os
import select
import shutil
import subprocess
import threading
import time
import unittest

from relaytest import RelayTestCase, sha256, echo_handler

CURL = shutil.which("curl")


@unittest.skipUnless(CURL, "curl not installed")
class Curl(RelayTestCase):

    def _curl(self, *args, timeout=15):
        p = subprocess.run([CURL, "-sS", "--max-time", "10"] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return p.returncode, p.stdout, p.stderr.decode("utf-8", "replace")

    def test_curl_get_and_post(self):
        relay = self.start_relay()
        rc, out, err = self._curl("-i", "http://127.0.0.1:%d/v1/models?x=1&y=%%20z" % relay.port)
        self.assertEqual(rc, 0, err)
        self.assertTrue(out.startswith(b"HTTP/1.1 200"), out[:200])
        self.assertIn(b'"target": "/v1/models?x=1&y=%20z"', out)

        path = os.path.join(self.workdir, "upload.bin")
        data = os.urandom(3 << 20)
        with open(path, "wb") as f:
            f.write(data)
        rc, out, err = self._curl("-X", "POST", "--data-binary", "@" + path,
                                  "-H", "Content-Type: application/octet-stream",
                                  "http://127.0.0.1:%d/v1/files" % relay.port)
        self.assertEqual(rc, 0, err)
        self.assertIn(sha256(data).encode(), out)

    def test_curl_expect_100_continue(self):
        def handler(conn, req):
            if (req.header("expect") or "").lower() == "100-continue":
                conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn.read_body(req)
            echo_handler(conn, req)
        up = self.make_upstream(handler, read_body=False)
        relay = self.start_relay(upstream=up)
        path = os.path.join(self.workdir, "upload.bin")
        data = os.urandom(2 << 20)
        with open(path, "wb") as f:
            f.write(data)
        t0 = time.monotonic()
        rc, out, err = self._curl("--expect100-timeout", "4", "-H", "Expect: 100-continue",
                                  "--data-binary", "@" + path, "http://127.0.0.1:%d/v1/files" % relay.port)
        dt = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertIn(sha256(data).encode(), out)
        self.assertLess(dt, 3.0, "curl waited for its expect timeout: no 100 Continue relayed")

    def _sse_through_curl(self, method, path, events, body=None):
        """The upstream sends events[0], waits until the test saw it in curl's output,
        then events[1], ... Returns curl's whole stdout."""
        seen = [threading.Event() for _ in events]
        waited = []

        def handler(conn, req):
            conn.start_chunked(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")])
            for i, ev in enumerate(events):
                conn.chunk(ev)
                waited.append(seen[i].wait(5))
            conn.end_chunks()
        self.upstream.handler = handler
        relay = self.start_relay()
        args = [CURL, "-sS", "-N", "--max-time", "20", "-X", method]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", body]
        args.append("http://127.0.0.1:%d%s" % (relay.port, path))
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(5), p.stdout.close(), p.stderr.close()))
        out = b""
        fd = p.stdout.fileno()
        expected = b""
        for i, ev in enumerate(events):
            expected += ev
            deadline = time.monotonic() + 4
            while not out.startswith(expected) and time.monotonic() < deadline:
                r, _, _ = select.select([fd], [], [], 0.1)
                if r:
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        break
                    out += chunk
            self.assertEqual(out, expected, "event %d not printed by curl while the upstream waits "
                                            "(held back by the relay?)" % i)
            seen[i].set()
        rest = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                rest += chunk
        rc = p.wait(5)
        self.assertEqual(rc, 0, p.stderr.read().decode("utf-8", "replace"))
        self.assertEqual(rest, b"")
        self.assertEqual(waited, [True] * len(events))
        return out

    def test_curl_sse_events_not_held_back(self):
        events = [b"event: message\ndata: first\n\n", b": keep-alive comment\n\n",
                  b"id: 3\ndata: third\n\n", b"data: [DONE]\n\n"]
        self._sse_through_curl("GET", "/v1/events", events)

    def test_curl_sse_chat_completions_plain_text_unchanged(self):
        # No harmony markers in the text: the rewrite must pass every event byte for byte, at once.
        def ev(content, finish="null"):
            delta = '{"content":%s}' % content if content is not None else "{}"
            return ('data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,'
                    '"model":"gpt-oss-20b","choices":[{"index":0,"delta":%s,"logprobs":null,'
                    '"finish_reason":%s}]}\n\n' % (delta, finish)).encode()
        events = [ev('"Hello"'), ev('" wor"'), ev('"ld!"'), ev(None, '"stop"'), b"data: [DONE]\n\n"]
        self._sse_through_curl("POST", "/v1/chat/completions", events,
                               body='{"model":"gpt-oss-20b","stream":true,"messages":[]}')


if __name__ == "__main__":
    unittest.main()
