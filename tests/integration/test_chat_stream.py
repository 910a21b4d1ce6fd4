"""The SSE rewrite under the ways real streams arrive: events cut across TCP writes at
odd byte positions (mid-CRLF, mid-UTF-8, mid chunk-size line), CRLF and CR line ends,
comments and event:/id:/retry: lines, escaped markers, multi-byte text, n=2 interleaved
choices, the usage chunk, tool_calls, a stream that ends without finish_reason while a
marker prefix is held, [DONE], and each event delivered before the upstream sends the
next one."""

import json
import threading
import time
import unittest

from chatmock import (ChatTestCase, A, F, DONE, USAGE_CHUNK, SSEParser, StreamResponse, chat_request,
                      choice_json, chunk, harmony_text, sse, sse_handler, stream_events, tokens,
                      upstream_text, CHAT_PATH, Event)

THINK = "<think>" + A + "</think>" + F
UTF8_A = "Le caf\u00e9 \u2615 \u6771\u4eac\u306f\u5927\u304d\u3044 \U0001F914\U0001F468\u200D\U0001F4BB"
UTF8_F = "\u00a1Hola! \U0001F389 \u4f60\u597d\uff0c\u4e16\u754c \U0001F1EB\U0001F1F7"


def utf8_cuts(body):
    """Offsets that fall inside multi-byte UTF-8 characters (after a lead or continuation
    byte, before a continuation byte)."""
    return [i for i in range(1, len(body)) if 0x80 <= body[i] < 0xC0]


class Cutting(ChatTestCase):

    def _events(self, eol="\n", a=A, f=F):
        return stream_events(tokens(harmony_text("lmstudio", a, f)), eol=eol)

    def test_cut_every_7_bytes(self):
        evs = self._events()
        body = b"".join(evs)
        pieces = [body[i:i + 7] for i in range(0, len(body), 7)]
        _, _, sc, _ = self.stream(evs, pieces=pieces, delay_every=5)
        self.assertEqual(sc.text(), THINK)

    def test_cut_mid_crlf_and_mid_utf8(self):
        evs = self._events(eol="\r\n", a=UTF8_A, f=UTF8_F)
        body = b"".join(evs)
        cuts = [i + 1 for i in range(len(body) - 1) if body[i:i + 2] == b"\r\n"]   # between \r and \n
        cuts += utf8_cuts(body)
        cuts += [i + 3 for i in range(len(body)) if body[i:i + 6] == b"data: "]    # mid field name
        cuts += [i + 5 for i in range(len(body)) if body[i:i + 11] == b"<|channel|>"]  # mid marker
        self.assertGreater(len(utf8_cuts(body)), 20)
        from chatmock import cut
        pieces = cut(body, cuts)
        self.assertTrue(any(p.endswith(b"\r") for p in pieces))
        self.assertTrue(any(p and 0x80 <= p[-1] for p in pieces))
        _, _, sc, _ = self.stream(evs, pieces=pieces)
        self.assertEqual(sc.text(), "<think>" + UTF8_A + "</think>" + UTF8_F)

    def test_cut_in_chunk_framing(self):
        # the chunked encoding itself cut at odd places (size lines, chunk CRLFs)
        evs = self._events(eol="\r\n", a=UTF8_A, f=UTF8_F)
        body = b"".join(evs)
        pieces = [body[i:i + 13] for i in range(0, len(body), 13)]
        wire_len = sum(len(b"%x\r\n\r\n" % len(p)) + len(p) for p in pieces) + 5
        _, _, sc, _ = self.stream(evs, pieces=pieces, wire_pieces=list(range(1, wire_len, 5)), delay_every=7)
        self.assertEqual(sc.text(), "<think>" + UTF8_A + "</think>" + UTF8_F)

    def test_cut_one_byte_per_write_close_delimited(self):
        evs = stream_events(tokens(harmony_text("llama", "x \U0001F914 y", "\u6771 ok")), eol="\r\n")
        body = b"".join(evs)
        pieces = [body[i:i + 1] for i in range(len(body))]
        _, _, sc, _ = self.stream(evs, pieces=pieces, framing="close", delay=0)
        self.assertEqual(sc.text(), "<think>x \U0001F914 y</think>\u6771 ok")

    def test_content_length_framed_stream(self):
        # the rewritten stream changes length: it goes out chunked
        evs = self._events()
        r, _, sc, _ = self.stream(evs, framing="length")
        self.assertEqual(sc.text(), THINK)
        self.assertEqual(r.framing, "chunked")
        self.assertIsNone(r.header("content-length"))


class Framing(ChatTestCase):

    def test_crlf_line_ends(self):
        evs = stream_events(tokens(harmony_text("lmstudio")), eol="\r\n")
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)
        self.assertEqual(out.count(b"\r\n\r\n"), len(evs))
        self.assertNotIn(b"}\n", out)

    def test_cr_line_ends(self):
        evs = stream_events(tokens(harmony_text("lmstudio")), eol="\r")
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)
        self.assertNotIn(b"\n", out)

    def test_comments_and_fields_passed_through(self):
        toks = tokens(harmony_text("lmstudio"))
        evs = [b": ping - 2025-08-05 10:00:00\n\n", b"retry: 3000\n\n"]
        for k, t in enumerate(toks):
            c = chunk(t)
            if k % 4 == 0:
                evs.append(("event: message\nid: %d\ndata: %s\n\n" % (k, c)).encode())
            elif k % 4 == 1:
                evs.append((": keep-alive\ndata:%s\n: trailing comment\n\n" % c).encode())
            elif k % 4 == 2:
                evs.append(("id: %d\r\nretry: 10\r\ndata: %s\r\n\r\n" % (k, c)).encode())
            else:
                evs.append(sse(c))
            if k % 5 == 0:
                evs.append(b": ping\n\n")
        evs += [sse(chunk(finish="stop", delta_raw="{}"), extra_lines=["event: message"]),
                b": ping\n\n", sse(USAGE_CHUNK), b"event: done\ndata: [DONE]\n\n"]
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)
        for iev, oev in sc.pairs:
            if iev.data is None:
                self.assertEqual(oev.raw, iev.raw)
        self.assertEqual(out.count(b": ping\n\n"), sum(1 for e in evs if e == b": ping\n\n"))

    def test_multi_line_data_events(self):
        # one JSON document over several data: lines (valid SSE; joined with "\n")
        evs = []
        for k, t in enumerate(tokens(harmony_text("lmstudio"))):
            c = chunk(t)
            if k % 3 == 0:
                cut_at = c.index('"choices"')
                evs.append(("data: %s\ndata: %s\n\n" % (c[:cut_at], c[cut_at:])).encode())
            else:
                evs.append(sse(c))
        evs += [sse(chunk(finish="stop", delta_raw="{}")), DONE]
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)

    def test_large_event(self):
        big_a = ("\u6771\u4eac analysis " * 20000)[:300000]
        evs = stream_events(["<|channel|>analysis<|message|>" + big_a + "<|end|><|start|>assistant",
                             "<|channel|>final<|message|>" + F])
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + big_a + "</think>" + F)

    def test_http10_client_gets_close_delimited_stream(self):
        evs = stream_events(tokens(harmony_text("lmstudio")))
        relay = self.relay_for(sse_handler(evs))
        from relaytest import Client
        headers, body = chat_request(True)
        with Client(relay.port, timeout=5) as c:
            c.request("POST", CHAT_PATH, headers, body, version="HTTP/1.0")
            r = c.read_response("POST")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertNotEqual(r.framing, "chunked")
        from chatmock import StreamCheck
        sc = StreamCheck(self, evs, r.body)
        self.assertEqual(sc.text(), THINK)

    def test_keep_alive_state_not_carried_over(self):
        # the first response stops inside the analysis (a marker prefix held); the next
        # one on the same connection starts fresh: no markers, byte for byte
        first = [sse(chunk(t)) for t in tokens("<|channel|>analysis<|message|>thinking <|end|")] + [DONE]
        second = stream_events(tokens("Plain answer, no markers."))
        n = [0]
        h1, h2 = sse_handler(first), sse_handler(second)

        def handler(conn, req):
            n[0] += 1
            (h1 if n[0] == 1 else h2)(conn, req)
        relay = self.relay_for(handler)
        from relaytest import Client
        headers, body = chat_request(True)
        with Client(relay.port, timeout=5) as c:
            c.request("POST", CHAT_PATH, headers, body)
            r1 = c.read_response("POST")
            c.request("POST", CHAT_PATH, headers, body)
            r2 = c.read_response("POST")
        from chatmock import StreamCheck
        sc1 = StreamCheck(self, first, r1.body)
        self.assertIn(sc1.text(), ("<think>thinking <|end|", "<think>thinking <|end|</think>"))
        self.assertBodyEqual(r2.body, b"".join(second), "second response")

    def test_done_passed_and_last(self):
        evs = stream_events(tokens(harmony_text("lmstudio")))
        _, out, sc, _ = self.stream(evs)
        self.assertTrue(out.endswith(b"\n\ndata: [DONE]\n\n"), out[-100:])
        self.assertEqual(sc.out_events[-1].raw, DONE)
        self.assertEqual(len(sc.out_events), len(evs))

    def test_events_after_done_passed(self):
        # some servers keep the connection's stream going with comments after [DONE]
        evs = stream_events(tokens(harmony_text("lmstudio"))) + [b": bye\n\n"]
        _, out, sc, _ = self.stream(evs)
        self.assertTrue(out.endswith(b"data: [DONE]\n\n: bye\n\n"))
        self.assertEqual(sc.text(), THINK)


class Text(ChatTestCase):

    def test_escaped_markers(self):
        # Go's encoding/json (Ollama) writes < and > as \u003c and \u003e
        evs = stream_events(tokens(harmony_text("lmstudio")), style="go")
        self.assertIn(b'"\\u003c|channel|\\u003e"', b"".join(evs))
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)
        self.assertNotIn(b"|channel|", out)

    def test_ascii_escaped_utf8(self):
        # Python's json.dumps: all non-ASCII as \uXXXX, emoji as surrogate pairs
        evs = stream_events(tokens(harmony_text("llama", UTF8_A, UTF8_F)), style="ascii")
        self.assertIn(b"\\ud83e\\udd14", b"".join(evs))
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + UTF8_A + "</think>" + UTF8_F)

    def test_utf8_next_to_markers(self):
        # emoji / CJK right before and after every marker, one character per event
        a = "\U0001F914\u6771"
        f = "\u4eac\U0001F389"
        text = "\U0001F600" + harmony_text("lmstudio", a, f) + "\u00e9"
        toks = []
        for t in tokens(text):
            toks += list(t) if not t.startswith("<|") else [t]
        evs = stream_events(toks)
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "\U0001F600<think>" + a + "</think>" + f + "\u00e9")

    def test_marker_cut_into_small_tokens(self):
        # a marker cut inside itself over events: "<", "|", "chan", "nel", "|>", ...
        text = harmony_text("lmstudio")
        toks = []
        for t in tokens(text):
            if t.startswith("<|"):
                toks += [t[0], t[1], t[2:5], t[5:-2], t[-2:]] if len(t) > 6 else list(t)
            else:
                toks.append(t)
        evs = stream_events([t for t in toks if t])
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)

    def test_whole_harmony_in_one_event(self):
        evs = stream_events([harmony_text("lmstudio") + "<|return|>"])
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)

    def test_json_escapes_in_text(self):
        a = 'line1\nline2\t"quoted" back\\slash \x01 \u2028 </script>'
        f = 'C:\\path\\file "x"\r\n'
        evs = stream_events(tokens(harmony_text("llama", a, f)), style="ascii")
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + a + "</think>" + f)

    def test_escaped_key(self):
        # keys are matched on their decoded text
        evs = [sse(chunk(delta_raw='{"\\u0063ontent":%s}' % json.dumps(t))) for t in tokens(harmony_text("lmstudio"))]
        evs += [sse(chunk(finish="stop", delta_raw="{}")), DONE]
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)

    def test_bom_at_stream_start(self):
        evs = stream_events(tokens(harmony_text("lmstudio")))
        evs[0] = b"\xef\xbb\xbf" + sse(chunk("<|channel|>", role="assistant"))
        evs[1] = sse(chunk(""))
        _, out, sc, _ = self.stream(evs)
        self.assertTrue(out.startswith(b"\xef\xbb\xbf"))
        self.assertEqual(sc.text(), THINK)

    def test_finish_reason_on_the_content_event(self):
        # the last token and finish_reason in one event: held text goes out in it
        evs = [sse(chunk(t)) for t in tokens(harmony_text("lmstudio", A, "See <"))]
        evs[-1] = sse(chunk(tokens(harmony_text("lmstudio", A, "See <"))[-1], finish="stop"))
        evs += [sse(USAGE_CHUNK), DONE]
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + A + "</think>See <")
        self.assertEqual(sc.pairs[-3][1].json()["choices"][0]["delta"]["content"], "<")
        self.assertEqual(sc.flush_events, [])

    def test_held_prefix_released_by_next_event(self):
        # "<|" could start a marker: held (content ""), released when " no" settles it
        evs = stream_events(["a", " <|", " no", " <|end", "ing|>"])
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "a <| no <|ending|>")
        outs = [oev.json()["choices"][0]["delta"]["content"] for _, oev in sc.pairs[1:6]]
        self.assertEqual(outs, ["a", " ", "<| no", " ", "<|ending|>"])

    def test_held_prefix_flushed_into_finish_event(self):
        # the text ends with a possible marker start: it goes out with the finish event,
        # which gets a "content" key it did not have
        evs = stream_events(tokens(harmony_text("lmstudio", A, "It is 2 <")))
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + A + "</think>It is 2 <")
        iev, oev = sc.pairs[-3]
        self.assertEqual(oev.json()["choices"][0]["finish_reason"], "stop")
        self.assertEqual(oev.json()["choices"][0]["delta"], {"content": "<"})
        self.assertEqual(sc.flush_events, [])


class Choices(ChatTestCase):

    def test_n2_interleaved_independent_state(self):
        # choice 0 is LM Studio form, choice 1 llama-server form with a trailing <|return|>;
        # their events alternate, so a marker of one is cut by events of the other
        t0 = tokens(harmony_text("lmstudio"))
        a1, f1 = "Other \U0001F914 thoughts.", "Bonjour \u00e0 tous."
        t1 = tokens(harmony_text("llama", a1, f1) + "<|return|>")
        evs = [sse(chunk(choices_raw="[%s,%s]" % (choice_json(0, "", role="assistant"),
                                                   choice_json(1, "", role="assistant"))))]
        # the first tokens of both in one event (a marker start in each)
        evs.append(sse(chunk(choices_raw="[%s,%s]" % (choice_json(1, t1[0]), choice_json(0, t0[0])))))
        for k in range(1, max(len(t0), len(t1))):
            if k < len(t1):
                evs.append(sse(chunk(t1[k], index=1)))
            if k < len(t0):
                evs.append(sse(chunk(t0[k], index=0)))
        evs += [sse(chunk(index=1, finish="stop", delta_raw="{}")),
                sse(chunk(index=0, finish="length", delta_raw="{}")),
                sse(USAGE_CHUNK), DONE]
        _, _, sc, _ = self.stream(evs)
        up0, up1 = upstream_text(evs, 0), upstream_text(evs, 1)
        self.assertNotEqual(up0, up1)
        exp0 = up0.replace("<|channel|>analysis<|message|>", "<think>") \
                  .replace("<|end|><|start|>assistant<|channel|>final<|message|>", "</think>")
        exp1 = up1.replace("<|channel|>analysis<|message|>", "<think>") \
                  .replace("<|start|>assistant<|channel|>final<|message|>", "</think>").replace("<|return|>", "")
        self.assertEqual(sc.text(0), exp0)
        self.assertEqual(sc.text(1), exp1)
        self.assertNotIn("<|", exp0 + exp1)

    def test_n2_held_prefixes_flushed_separately(self):
        # both choices hold "<|" when the stream ends without finish_reason: two flush events
        evs = [sse(chunk("a <|", index=0)), sse(chunk("b <|", index=1)), DONE]
        _, _, sc, _ = self.stream(evs)
        self.assertEqual((sc.text(0), sc.text(1)), ("a <|", "b <|"))
        self.assertEqual(len(sc.flush_events), 2)

    def test_usage_chunk_with_empty_choices_kept(self):
        evs = stream_events(tokens(harmony_text("lmstudio")))
        _, out, sc, _ = self.stream(evs)
        self.assertIn(sse(USAGE_CHUNK), out)
        self.assertIn(b'"choices":[],"usage":{', out)
        usage_pairs = [(i, o) for i, o in sc.pairs if i.raw == sse(USAGE_CHUNK)]
        self.assertEqual(len(usage_pairs), 1)
        self.assertEqual(usage_pairs[0][1].raw, usage_pairs[0][0].raw)

    def test_usage_in_last_content_chunk(self):
        # vLLM with continuous_usage_stats: usage on every chunk next to choices
        evs = []
        for t in tokens(harmony_text("lmstudio")):
            evs.append(sse(chunk(t)[:-1] + ',"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'))
        evs += [sse(chunk(finish="stop", delta_raw="{}")), DONE]
        _, _, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), THINK)

    def test_tool_calls_untouched(self):
        # tool calls the upstream parsed pass through unchanged, ids included
        toks = tokens("<|channel|>analysis<|message|>" + A)
        evs = [sse(chunk("", role="assistant"))] + [sse(chunk(t)) for t in toks]
        tool_evs = [
            sse(chunk(delta_raw='{"content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function",'
                                '"function":{"name":"get_weather","arguments":""}}]}')),
            sse(chunk(delta_raw='{"tool_calls":[{"index":0,"function":{"arguments":"{\\"q\\":\\"<|channel|>"}}]}')),
            sse(chunk(delta_raw='{"tool_calls":[{"index":0,"function":{"arguments":"analysis<|message|>\\"}"}}]}')),
            sse(chunk(delta_raw='{"tool_calls":[{"index":0,"function":{"arguments":" 1.0000000000000002 []"}}]}')),
        ]
        evs += tool_evs
        evs += [sse(chunk(finish="tool_calls", delta_raw="{}")), sse(USAGE_CHUNK), DONE]
        _, out, sc, _ = self.stream(evs)
        for ev in tool_evs[1:]:
            self.assertIn(ev, out)
        # the first tool call closes the think block: its content null becomes the close
        # tag, its tool_calls stay byte for byte
        first = sse(chunk(delta_raw='{"content":"</think>","tool_calls":[{"index":0,"id":"call_abc",'
                                    '"type":"function","function":{"name":"get_weather","arguments":""}}]}'))
        self.assertIn(first, out)
        self.assertEqual(sc.text(), "<think>" + A + "</think>")


class EndWithoutFinish(ChatTestCase):
    """The upstream stops without a finish_reason while a possible marker start is held:
    the held text must still reach the client (in an extra event before [DONE], or at
    the end of the stream)."""

    def _evs(self):
        return [sse(chunk("", role="assistant"))] + [sse(chunk(t)) for t in tokens(harmony_text("lmstudio", A, "Done <|"))]

    def test_held_text_released_before_done(self):
        evs = self._evs() + [sse(USAGE_CHUNK), DONE]
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + A + "</think>Done <|")
        self.assertEqual(len(sc.flush_events), 1)
        self.assertTrue(out.endswith(sc.flush_events[0].raw + DONE))

    def test_held_text_released_at_end_of_stream(self):
        evs = self._evs()
        _, out, sc, _ = self.stream(evs)
        self.assertEqual(sc.text(), "<think>" + A + "</think>Done <|")
        self.assertEqual(len(sc.flush_events), 1)
        self.assertTrue(out.endswith(sc.flush_events[0].raw))

    def test_held_text_released_at_close_delimited_end(self):
        evs = self._evs()
        _, out, sc, _ = self.stream(evs, framing="close")
        self.assertEqual(sc.text(), "<think>" + A + "</think>Done <|")

    def test_held_text_released_before_unterminated_last_event(self):
        # the last event lacks its empty line: it goes out as it came, after the flush
        tail = b'data: {"partial":'
        evs = self._evs() + [tail]
        _, out, sc, _ = self.stream(evs[:-1], pieces=evs, check=False)
        self.assertTrue(out.endswith(tail), out[-80:])
        from chatmock import StreamCheck
        sc = StreamCheck(self, evs[:-1], out, rest_expected=tail)
        self.assertEqual(sc.text(), "<think>" + A + "</think>Done <|")

    def test_held_analysis_released_in_tags_mode(self):
        # cut inside the analysis: the text so far, open tag included, reaches the client
        evs = [sse(chunk(t)) for t in tokens("<|channel|>analysis<|message|>thinking <|en")] + [DONE]
        _, _, sc, _ = self.stream(evs)
        # (whether a close tag follows is not specified; the text must all be there)
        self.assertIn(sc.text(), ("<think>thinking <|en", "<think>thinking <|en</think>"))


class NotHeldBack(ChatTestCase):

    def test_each_event_delivered_before_the_next_is_sent(self):
        # the mock sends event k, then waits until the client has read the relay's event k
        evs = stream_events(tokens(harmony_text("lmstudio") + "<|return|>"))
        evs.insert(3, b": ping\n\n")
        seen = [threading.Event() for _ in evs]
        h = sse_handler(evs, handshake=seen, handshake_timeout=3.0)
        relay = self.relay_for(h)
        headers, body = chat_request(True)
        r = StreamResponse(relay.port, "POST", CHAT_PATH, headers, body, timeout=5)
        self.addCleanup(r.close)
        self.assertEqual(r.status, 200)
        parser = SSEParser()
        out = b""
        got = 0
        for piece in r.pieces():
            out += piece
            for ev in parser.feed(piece):
                self.assertLess(got, len(evs), "more events than sent: %r" % ev.raw)
                seen[got].set()
                got += 1
        self.assertTrue(r.complete)
        self.assertEqual(got, len(evs))
        self.assertEqual(h.script.waits, [True] * len(evs), "an event was held back by the relay")
        from chatmock import StreamCheck
        sc = StreamCheck(self, evs, out)
        self.assertEqual(sc.text(), THINK)

    def test_held_text_event_still_sent_at_once(self):
        # events whose text is held back (content "") must still go out at once
        evs = stream_events(["<|", "channel", "|>", "analysis", "<|message|>", "x", "<|end|>", "<|start|>"])
        seen = [threading.Event() for _ in evs]
        h = sse_handler(evs, handshake=seen, handshake_timeout=3.0)
        relay = self.relay_for(h)
        headers, body = chat_request(True)
        r = StreamResponse(relay.port, "POST", CHAT_PATH, headers, body, timeout=5)
        self.addCleanup(r.close)
        parser = SSEParser()
        got, contents = 0, []
        for piece in r.pieces():
            for ev in parser.feed(piece):
                if got < len(evs):
                    seen[got].set()
                got += 1
                j = ev.json()
                if j and j.get("choices"):
                    contents.append(j["choices"][0]["delta"].get("content"))
        self.assertEqual(h.script.waits, [True] * len(evs))
        # role, "<|", "channel", "|>", "analysis", "<|message|>" held (the header is
        # decided by <|message|>, and the open tag goes out with the first reasoning
        # piece); then "<think>x"; <|end|> ends the analysis and <|start|> is held as the
        # start of a header; the finish event closes the block and releases it
        self.assertEqual(contents[:9], ["", "", "", "", "", "", "<think>x", "", ""])
        self.assertEqual(contents[9], "</think><|start|>")
        self.assertEqual(len(contents), 10)

if __name__ == "__main__":
    unittest.main()
