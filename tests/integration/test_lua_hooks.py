"""The Lua response hooks over real sockets: on_text / on_event / on_body / on_end on a
streamed harmony response and on a JSON response, ctx shared with on_request, on_event
dropping and replacing events, and hook errors (mid-stream: the stream still completes
and one log line; in on_body: a 500). The script is tests/integration/scripts/hooks.lua."""

import json
import re
import threading
import time
import unittest

from chatmock import (A, F, DONE, USAGE_CHUNK, CHAT_PATH, Event, StreamCheck, StreamResponse, chat_request,
                      chunk, completion_body, harmony_text, json_handler, parse_sse, skeleton, sse, sse_handler,
                      stream_events, tokens)
from relaytest import Client, ConnectionClosed, free_port
from test_lua_routing import LuaTestCase

THINK = "<think>" + A + "</think>" + F


def on_end_fields(line):
    """'... on_end seq=1 tag=x ... content=[...] reasoning=[...]' -> dict."""
    i = line.index("on_end ")
    rest = line[i + len("on_end "):]
    m = re.search(r" content=\[(.*)\] reasoning=\[(.*)\]$", rest)
    fields = dict(kv.split("=", 1) for kv in rest[:m.start()].split())
    fields["content"], fields["reasoning"] = m.group(1), m.group(2)
    return fields


class HookCase(LuaTestCase):

    def setUp(self):
        super().setUp()
        self.relay = self.start_script("hooks.lua", DEAD_PORT=str(free_port()))
        self.port = self.relay.port

    def post(self, path, stream=True, extra_headers=(), body=None):
        headers, b = chat_request(stream, extra_headers, body)
        r = StreamResponse(self.port, "POST", path, headers, b)
        try:
            data = r.body()
        finally:
            r.close()
        return r, data

    def error_lines(self, hook):
        return [l for l in self.relay.stderr_text().splitlines() if "script error in " + hook in l]

    def assertErrorLines(self, hook, count, must_contain):
        lines = self.relay.wait_log("script error in " + hook, count=count)
        time.sleep(0.2)  # any extra line would come right after
        lines = self.error_lines(hook)
        self.assertEqual(len(lines), count, "want %d %s error line(s), got %r" % (count, hook, lines))
        for l in lines:
            self.assertIn(must_contain, l)
        return lines


class StreamHooks(HookCase):

    def test_hooks_on_streamed_harmony(self):
        events = stream_events(tokens(harmony_text("lmstudio")))
        self.upstream.handler = sse_handler(events)
        n_data = sum(1 for e in events if Event(e).data is not None and not Event(e).is_done)
        for seq, tag in ((1, "first"), (2, "second")):
            r, out = self.post(CHAT_PATH, extra_headers=[("X-Test-Tag", tag)])
            self.assertEqual(r.status, 200)
            self.assertTrue(r.complete)
            sc = StreamCheck(self, events, out, fields=("reasoning_content",))
            # on_text saw reasoning after the rules ran and upper-cased it; content as is
            self.assertEqual(sc.text(), F)
            self.assertEqual(sc.reasoning["reasoning_content"].get(0, ""), A.upper())
            line = self.relay.wait_log(r"on_end seq=%d " % seq)
            self.assertTrue(line, "no on_end line for request %d" % seq)
            f = on_end_fields(line[-1])
            # ctx set by on_request (from the request JSON and headers) reaches every hook
            self.assertEqual((f["seq"], f["tag"], f["model"]), (str(seq), tag, "openai/gpt-oss-20b"))
            self.assertEqual((f["status"], f["complete"]), ("200", "true"))
            # a fresh ctx per exchange: counts are not carried over
            self.assertEqual(f["events"], str(n_data))
            self.assertEqual(f["ids"], "chatcmpl-9f8e7d")
            self.assertEqual(f["body_calls"], "0")
            self.assertGreater(int(f["text_calls"]), 5)
            self.assertEqual(f["content"], F)
            self.assertEqual(f["reasoning"], A)
            self.assertEqual(int(f["bytes_out"]) > 0, True)
            # lua/API.md: ev.data is "the raw data string (JSON text, or [DONE])"
            self.assertEqual(f["done"], "true", "on_event was not called for data: [DONE]")
        self.assertEqual(self.error_lines("on_"), [])

    def test_hooks_on_json_body(self):
        want = completion_body([harmony_text("llama")])
        self.upstream.handler = json_handler(want)
        r, out = self.post(CHAT_PATH, stream=False, extra_headers=[("X-Test-Tag", "json")])
        self.assertEqual(r.status, 200)
        self.assertEqual(int(r.header("content-length")), len(out))
        doc = json.loads(out)
        msg = doc["choices"][0]["message"]
        self.assertEqual(msg["content"], F)
        self.assertEqual(msg["reasoning_content"], A.upper())
        self.assertEqual(doc["x_hooks"], "seq 1")
        # every other byte as the upstream sent it
        tail = b',"x_hooks":"seq 1"}'
        self.assertTrue(out.endswith(tail), out[-60:])
        got = out[:-len(tail)] + b"}"
        self.assertBodyEqual(skeleton(got, "message", {"content", "reasoning_content"}),
                             skeleton(want, "message", {"content"}), "body outside the message text")
        f = on_end_fields(self.relay.wait_log(r"on_end seq=1 ")[-1])
        self.assertEqual((f["tag"], f["model"], f["status"], f["complete"]), ("json", "openai/gpt-oss-20b", "200", "true"))
        self.assertEqual((f["events"], f["body_calls"], f["saw_reasoning_field"]), ("0", "1", "true"))
        self.assertEqual((f["content"], f["reasoning"]), (F, A))
        self.assertEqual(f["bytes_out"], str(len(out)))

    def test_on_event_drops_and_replaces(self):
        path = "/v1/edit-events/chat/completions"
        evs = [
            sse(chunk("", role="assistant")),                         # 0 kept
            sse(chunk("Hello")),                                      # 1 kept
            sse(chunk("DROPME")),                                     # 2 dropped
            sse(chunk("REPLACEME"), eol="\r\n"),                      # 3 content replaced
            b"event: ping\nid: 7\ndata: {\"x\":1}\n\n",               # 4 data replaced, other lines kept
            b": keep-alive comment\n\n",                              # 5 no data: not a hook call
            sse(chunk("MULTI")),                                      # 6 data with a line break
            sse(chunk(finish="stop", delta_raw="{}")),                # 7 kept
            sse(USAGE_CHUNK),                                         # 8 dropped
            DONE,                                                     # 9 kept
        ]
        self.upstream.handler = sse_handler(evs)
        r, out = self.post(path)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        got, rest = parse_sse(out)
        self.assertEqual(rest, b"")
        want = [evs[0], evs[1], sse(chunk("replaced"), eol="\r\n"),
                b"event: ping\nid: 7\ndata: {\"pong\":true}\n\n", evs[5], None, evs[7], evs[9]]
        self.assertEqual(len(got), len(want), "events: %r" % [e.raw for e in got])
        for k, (g, w) in enumerate(zip(got, want)):
            if w is None:
                self.assertEqual(g.data, b'{"a":1}\n{"b":2}',
                                 "a replacement with a line break must stay one event's data; got %r" % g.raw)
            else:
                self.assertEqual(g.raw, w, "event %d" % k)
        self.assertEqual(self.error_lines("on_"), [])


class HookFaults(HookCase):

    def stream_to(self, path, variant="lmstudio"):
        events = stream_events(tokens(harmony_text(variant)))
        self.upstream.handler = sse_handler(events)
        r, out = self.post(path)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete, "stream cut: %r" % out[-200:])
        return events, out

    def test_on_event_error_mid_stream(self):
        for n in (1, 2):
            events, out = self.stream_to("/v1/err-event/chat/completions")
            sc = StreamCheck(self, events, out)
            # the events from the failing one on pass as the core produced them
            self.assertEqual(sc.text(), THINK)
            self.assertTrue(out.endswith(b"data: [DONE]\n\n"))
            # one line per exchange, naming the script line
            lines = self.assertErrorLines("on_event", n, "boom in on_event 3")
            self.assertRegex(lines[-1], r"hooks\.lua:\d+:")
            # lua/API.md: on_end "runs for every exchange of the route, whatever its
            # outcome"; only the failing hook is not called again
            ends = self.relay.wait_log("err-event on_end", count=n)
            self.assertEqual(len(ends), n, "on_end did not run after on_event failed")
            self.assertIn("n=3", ends[-1])
        # the next exchange on the same route after the failures is fine too
        self.assertIsNone(self.relay.proc.poll())

    def test_on_text_error_mid_stream(self):
        events, out = self.stream_to("/v1/err-text/chat/completions")
        text = StreamCheck(self, events, out).text()
        # the first piece went through the hook, the rest as the core produced it
        self.assertTrue(text.startswith("["), text)
        self.assertEqual(text.count("["), 1, text)
        self.assertEqual(text.count("]"), 1, text)
        self.assertEqual(text.replace("[", "").replace("]", ""), THINK)
        self.assertErrorLines("on_text", 1, "boom in on_text")

    def test_on_event_bad_return(self):
        events, out = self.stream_to("/v1/bad-return/chat/completions")
        self.assertEqual(StreamCheck(self, events, out).text(), THINK)
        self.assertErrorLines("on_event", 1, "must return a string or nil")

    def test_on_end_error(self):
        events, out = self.stream_to("/v1/err-end/chat/completions")
        self.assertEqual(StreamCheck(self, events, out).text(), THINK)
        self.assertErrorLines("on_end", 1, "boom in on_end")

    def test_on_body_error_is_500_and_next_request_works(self):
        self.upstream.handler = json_handler(completion_body([harmony_text("lmstudio")]))
        headers, body = chat_request(False)
        with Client(self.port) as c:
            c.request("POST", "/v1/err-body/chat/completions", headers, body)
            r = c.read_response("POST")
            self.assertErrorResponse(r, 500, "server_error", "script_error")
            self.assertErrorLines("on_body", 1, "boom in on_body")
            if "close" not in (r.header("connection") or "").lower():
                # kept alive: the same connection serves the next request
                c.request("POST", CHAT_PATH, headers, body)
                r2 = c.read_response("POST")
                self.assertEqual(r2.status, 200)
                self.assertEqual(json.loads(r2.body)["choices"][0]["message"]["content"], F)
        # and a fresh connection too, streamed
        events, out = self.stream_to("/v1/err-event/chat/completions")
        self.assertEqual(StreamCheck(self, events, out).text(), THINK)


class OnEndOutcomes(HookCase):
    """lua/API.md: on_end runs once for every exchange of the route, whatever its outcome."""

    def end_lines(self, route, count):
        lines = self.relay.wait_log("end-any route=%s " % route, count=count)
        time.sleep(0.1)
        lines = [l for l in self.relay.stderr_text().splitlines() if "end-any route=%s " % route in l]
        self.assertEqual(len(lines), count, lines)
        return lines

    def test_on_end_for_ok_error_status_and_unreachable(self):
        events = stream_events(tokens(harmony_text("lmstudio")))
        self.upstream.handler = sse_handler(events)
        r, _ = self.post("/v1/end-any/chat/completions")
        self.assertEqual(r.status, 200)
        self.assertIn("status=200 complete=true", self.end_lines("live", 1)[-1])
        self.upstream.handler = json_handler(b'{"error":{"message":"x"}}', status=500)
        r, _ = self.post("/v1/end-any/chat/completions", stream=False)
        self.assertEqual(r.status, 500)
        self.assertIn("status=500 complete=true", self.end_lines("live", 2)[-1])
        r, _ = self.post("/v1/end-dead/chat/completions")
        self.assertEqual(r.status, 502)
        self.assertIn("status=502", self.end_lines("dead", 1)[-1])

    def test_on_end_for_cut_streams(self):
        events = stream_events(tokens(harmony_text("lmstudio")))
        # the upstream dies mid-stream
        self.upstream.handler = sse_handler(events[:8], end=False)
        headers, body = chat_request(True)
        sr = StreamResponse(self.port, "POST", "/v1/end-any/chat/completions", headers, body)
        try:
            sr.body()
        except ConnectionClosed:
            pass
        finally:
            sr.close()
        self.assertFalse(sr.complete)
        self.assertIn("complete=false", self.end_lines("live", 1)[-1])
        # the client goes away mid-stream
        gates = [threading.Event() for _ in events]
        self.upstream.handler = sse_handler(events, handshake=gates, handshake_timeout=2)
        headers, body = chat_request(True)
        sr = StreamResponse(self.port, "POST", "/v1/end-any/chat/completions", headers, body)
        next(sr.pieces())
        sr.client.abort()
        self.assertIsNone(self.relay.proc.poll())
        self.assertIn("complete=false", self.end_lines("live", 2)[-1])
        for g in gates:
            g.set()


if __name__ == "__main__":
    unittest.main()
