"""The stock harmony rules on every row of DESIGN.md's "What real servers emit for
gpt-oss" table, streamed (one token per event, as real servers send them) and as a whole
JSON body. Each test checks the exact text the client gets and that every byte outside
the content strings is what the upstream sent."""

import json
import unittest

from chatmock import (ChatTestCase, A, F, CHAT_PATH, DONE, USAGE_CHUNK, chunk, completion_body,
                      enc, harmony_text, json_handler, post_chat, sse, sse_handler,
                      stream_events, tokens, upstream_text, parse_sse)

END, START, CH, MSG = "<|end|>", "<|start|>assistant", "<|channel|>", "<|message|>"
ANALYSIS = CH + "analysis" + MSG
FINAL = CH + "final" + MSG
TOOL = (START + CH + "commentary to=functions.get_weather " + "<|constrain|>json" + MSG
        + '{"city":"Paris","unit":"celsius"}' + "<|call|>")


class Table(ChatTestCase):
    """One relay per test serves both shapes: the handler answers a request with
    "stream": true with SSE, otherwise with a JSON body."""

    def both(self, text, expected, env=None):
        """Run text through the relay streamed and as a body; assert the client text is
        one of expected (a str or a tuple of acceptable strs). Returns the StreamCheck."""
        if isinstance(expected, str):
            expected = (expected,)
        events = stream_events(tokens(text))
        self.assertEqual(upstream_text(events), text)
        body = completion_body([text])
        sse_h = sse_handler(events)
        json_h = json_handler(body)

        def handler(conn, req):
            if json.loads(req.body).get("stream"):
                sse_h(conn, req)
            else:
                json_h(conn, req)
        relay = self.relay_for(handler, **(env or {}))

        r, out = post_chat(relay.port, stream=True)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertEqual(r.header("content-type"), "text/event-stream")
        from chatmock import StreamCheck
        sc = StreamCheck(self, events, out)
        self.assertIn(sc.text(), expected, "streamed text")
        self.assertEqual(sc.flush_events, [], "nothing should be left to flush after a finish event")
        # the last three events (finish, usage, [DONE]) byte for byte
        for iev, oev in sc.pairs[-2:]:
            self.assertEqual(oev.raw, iev.raw)

        r, got = post_chat(relay.port, stream=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(int(r.header("content-length")), len(got))
        self.assertBodySkeleton(got, body)
        doc = json.loads(got)
        self.assertIn(doc["choices"][0]["message"]["content"], expected, "body text")
        return sc

    def test_lmstudio_form(self):
        self.both(harmony_text("lmstudio"), "<think>" + A + "</think>" + F)

    def test_llama_server_without_end(self):
        self.both(harmony_text("llama"), "<think>" + A + "</think>" + F)

    def test_start_assistant_first(self):
        self.both(harmony_text("start_first"), "<think>" + A + "</think>" + F)

    def test_start_assistant_first_without_end(self):
        self.both(harmony_text("start_first_llama"), "<think>" + A + "</think>" + F)

    def test_two_analysis_messages(self):
        a1, a2 = "First I think.", " Then I think again."
        text = ANALYSIS + a1 + END + START + ANALYSIS + a2 + END + START + FINAL + F
        sc = self.both(text, ("<think>" + a1 + a2 + "</think>" + F,
                              "<think>" + a1 + "</think><think>" + a2 + "</think>" + F))
        self.assertNotIn("<|", sc.text())

    def test_two_analysis_messages_without_end(self):
        a1, a2 = "First I think.", " Then I think again."
        text = ANALYSIS + a1 + START + ANALYSIS + a2 + START + FINAL + F
        self.both(text, ("<think>" + a1 + a2 + "</think>" + F,
                         "<think>" + a1 + "</think><think>" + a2 + "</think>" + F))

    # With RELAY_TOOL_CALLS=0 the call's text stays in content, after the think block
    # (test_tool_calls.py has the default: the call becomes tool_calls).
    def test_tool_call_after_analysis(self):
        self.both(ANALYSIS + A + END + TOOL, "<think>" + A + "</think>" + TOOL, env={"RELAY_TOOL_CALLS": "0"})

    def test_tool_call_after_analysis_without_end(self):
        self.both(ANALYSIS + A + TOOL, "<think>" + A + "</think>" + TOOL, env={"RELAY_TOOL_CALLS": "0"})

    def test_trailing_return(self):
        self.both(harmony_text("lmstudio") + "<|return|>", "<think>" + A + "</think>" + F)

    def test_trailing_end(self):
        self.both(harmony_text("llama") + "<|end|>", "<think>" + A + "</think>" + F)

    def test_end_then_final_channel_without_start(self):
        self.both(ANALYSIS + A + END + FINAL + F, "<think>" + A + "</think>" + F)

    def test_final_channel_only(self):
        # no analysis at all (reasoning effort low): only the final header, dropped
        self.both(START + FINAL + F + "<|return|>", F)

    def test_custom_tags(self):
        self.both(harmony_text("lmstudio"), "[R]" + A + "[/R]" + F,
                  env={"OPEN_TAG": "[R]", "CLOSE_TAG": "[/R]"})


class NoMarkers(ChatTestCase):
    """Text without markers: the whole response is what the upstream sent."""

    def _same(self, events, body):
        sse_h, json_h = sse_handler(events), json_handler(body)

        def handler(conn, req):
            (sse_h if json.loads(req.body).get("stream") else json_h)(conn, req)
        relay = self.relay_for(handler)
        r, out = post_chat(relay.port, stream=True)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertBodyEqual(out, b"".join(events), "SSE body")
        r, out = post_chat(relay.port, stream=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), str(len(body)))
        self.assertBodyEqual(out, body, "JSON body")

    def test_plain_text_byte_identical(self):
        text = "Paris is the capital of France. It has 2.1 million people; café, 東京, 🎉 ok."
        self._same(stream_events(tokens(text)), completion_body([text]))

    def test_lookalike_text_byte_identical(self):
        # '|' and '>' and words like analysis/final, never a possible marker start at an
        # event's end: nothing is held, nothing changes
        text = "channel|> analysis message|> a|b final <b>bold</b> end|> x<y"
        evs = stream_events(["channel|>", " analysis", " message|>", " a|b", " final", " <b>bold",
                             "</b>", " end|>", " x<y"])
        self.assertEqual(upstream_text(evs), text)
        self._same(evs, completion_body([text]))

    # Ollama (Go encoding/json) escapes < > & as \u003c \u003e \u0026; Python servers
    # escape all non-ASCII (\u00e9, surrogate pairs) and some write '/' as '\/'. With no
    # marker in the text, DESIGN.md says the response is unchanged byte for byte.

    def test_escaped_text_byte_identical_stream(self):
        evs = [sse(chunk("", role="assistant"))]
        for t in ["Use", " <b>", " & ", "caf\u00e9", " \u6771\u4eac", " \U0001F389"]:
            evs.append(sse(chunk(t, style="go")))
        for t in [" caf\u00e9", " \U0001F389", " \u6771\u4eac"]:
            evs.append(sse(chunk(t, style="ascii")))
        evs.append(sse(chunk(delta_raw='{"content":" http:\\/\\/example.com\\/x \\"q\\"\\n"}')))
        evs += [sse(chunk(finish="stop", delta_raw="{}")), sse(USAGE_CHUNK), DONE]
        self.assertIn(b"\\u003cb\\u003e", b"".join(evs))
        self._same(evs, completion_body(["x"]))

    def test_escaped_text_byte_identical_body(self):
        body = completion_body(["a <b> & caf\u00e9 \U0001F389 http://x/y"], style="ascii")
        body = body.replace(b"a <b> &", b"a \\u003cb\\u003e \\u0026").replace(b"http://x/y", b"http:\\/\\/x\\/y")
        self.assertIn(b"\\ud83c\\udf89", body)
        self._same(stream_events(tokens("x")), body)


if __name__ == "__main__":
    unittest.main()
