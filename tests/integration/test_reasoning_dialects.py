"""Reasoning in every upstream dialect, through the stock relay (issues 10 and 11).

Each mock upstream of dialects.py speaks one server exactly as it writes gpt-oss output
(llama.cpp's reasoning_content, vLLM's reasoning and its transitional pair, Ollama's
"content":"" beside reasoning, LM Studio, harmony left in content by LM Studio before
0.3.23 and mlx_lm.server, llama.cpp --reasoning-format none), one token per event and as
a whole body, n=2 where the server has it, with and without tool calls. In every output
mode the client must read the same thing whatever the dialect:

  tags   content = <think>REASONING</think>ANSWER, no reasoning member
  field  the configured member(s) hold REASONING (renamed when the upstream used the
         other name, never both unless asked), content = ANSWER
  strip  content = ANSWER, no reasoning anywhere

plus the tool calls (the upstream's own, ids included, or the relay's from harmony text),
finish_reason "tool_calls" when there are calls, one event down per event up, and every
byte outside content, the reasoning members and tool_calls as the upstream sent it (the
finish_reason of a call made from harmony text apart). Streams cut at odd TCP
boundaries give the same.
"""

import json
import unittest

import dialects as D
from chatmock import ChatTestCase, parse_sse, post_chat, skeleton

CALL = D.WEATHER_CALL
SCRIPTS = {
    "reasoning+content": [D.Answer()],
    "reasoning+call": [D.Answer(content="", tool_calls=[CALL])],
    "reasoning+preamble+call": [D.Answer(content="Let me check.", tool_calls=[CALL])],
    "content only": [D.Answer(reasoning="", content="Just text, no markers.")],
    "n=2": [D.Answer(), D.second(D.Answer(content="", tool_calls=[CALL]))],
}
ALL = dict(D.DIALECTS, **D.VARIANTS)
MODES = [("tags", None), ("field", "reasoning_content"), ("field", "reasoning"), ("field", "both"),
         ("strip", None)]
MEMBERS = ("content", "reasoning_content", "reasoning", "tool_calls")


def mode_env(mode, field):
    env = {"RELAY_MODE": mode}
    if field:
        env["RELAY_REASONING_FIELD"] = field
    return env


def fields_of(field):
    return ("reasoning_content", "reasoning") if field == "both" else (field,)


class Dialects(ChatTestCase):

    def expect(self, d, a, mode, field, ch, what):
        """A collected choice against the script, for this output mode."""
        r, c = a.reasoning, a.content
        if mode == "tags":
            want = ("<think>" + r + "</think>" if r else "") + c
        else:
            want = c
        self.assertEqual(ch.content or "", want, "content; " + what)
        on = fields_of(field) if mode == "field" else ()
        for f in ("reasoning_content", "reasoning", "thinking"):
            self.assertEqual(ch.text(f), r if f in on else "", "member %s; %s" % (f, what))
        calls = ch.calls()
        self.assertEqual([x["name"] for x in calls], [t.name for t in a.tool_calls], "call names; " + what)
        for got, t in zip(calls, a.tool_calls):
            self.assertEqual(json.loads(got["arguments"]), json.loads(t.arguments), "arguments; " + what)
            self.assertEqual(got["type"], "function")
            self.assertTrue(got["id"])
        self.assertEqual(len({x["id"] for x in calls}), len(calls), "ids unique; " + what)
        self.assertEqual(ch.finish_reason, "tool_calls" if a.tool_calls else a.finish_reason(), "finish; " + what)

    def parsed_ids(self, d, i, a):
        """The ids a server that parses calls gives them (kept by the relay)."""
        if d.harmony_in_content and d.name != "llamacpp_none":
            return None
        if isinstance(d, D.Ollama):
            return [d.call_id(k) for k in range(len(a.tool_calls))]
        if isinstance(d, D.LmStudio):
            return ["19362932%d" % k for k in range(len(a.tool_calls))]
        return [d.call_id(i, k) for k in range(len(a.tool_calls))]

    def skeletons_match(self, d, in_events, out_bytes, what):
        """One event down per event up; outside the members the rewrite owns, the same
        bytes (a harmony call's finish_reason apart)."""
        ins, rest = parse_sse(b"".join(in_events))
        outs, orest = parse_sse(out_bytes)
        self.assertEqual((rest, orest), (b"", b""))
        self.assertEqual(len(outs), len(ins), "events in = events out; " + what)
        for k, (i, o) in enumerate(zip(ins, outs)):
            if i.data is None or i.is_done:
                self.assertEqual(o.raw, i.raw, "event %d; %s" % (k, what))
                continue
            si = skeleton(i.data, "delta", set(MEMBERS))
            so = skeleton(o.data, "delta", set(MEMBERS))
            if d.harmony_in_content:  # the relay's own calls: "stop" became "tool_calls"
                si, so = (x.replace(b'"finish_reason": "tool_calls"', b'"finish_reason": "stop"')
                          .replace(b'"finish_reason":"tool_calls"', b'"finish_reason":"stop"') for x in (si, so))
            self.assertEqual(so, si, "event %d outside the rewritten members; %s" % (k, what))

    def run_dialect(self, relay, name, mode, field, cuts=None, scripts=SCRIPTS):
        d = D.dialect(name)
        for sname, answers in scripts.items():
            what = "%s, %s %s, %s%s" % (name, mode, field or "", sname, ", cuts %d" % cuts if cuts else "")
            # one write per event (or per piece); a short pause now and then lets the relay
            # read them apart without making the suite slow
            handler = D.chat_handler(d, answers, cuts=cuts, delay=0.0005, delay_every=8 if cuts else 4)
            self.upstream.handler = handler
            want = d.answers(answers)
            # a stream, one token per event (or cut every `cuts` bytes)
            r, out = post_chat(relay.port, stream=True)
            self.assertEqual(r.status, 200, what)
            self.assertTrue(r.complete, what)
            chs, info = D.collect_stream(out)
            self.assertTrue(info["done"], what)
            self.assertEqual(sorted(chs), list(range(len(want))), what)
            for i, a in enumerate(want):
                self.expect(d, a, mode, field, chs[i], "stream choice %d; %s" % (i, what))
                ids = self.parsed_ids(d, i, a)
                if ids is not None:
                    self.assertEqual([x["id"] for x in chs[i].calls()], ids, "the upstream's ids; " + what)
                self.assertIn("assistant", chs[i].roles, what)
            self.skeletons_match(d, d.events(answers, usage=d.wants_usage(json.loads(handler.script.requests[-1].body))),
                                 out, what)
            # the whole body
            r, got = post_chat(relay.port, stream=False)
            self.assertEqual(r.status, 200, what)
            self.assertEqual(int(r.header("content-length")), len(got), "Content-Length; " + what)
            doc = json.loads(got)
            bchs = D.collect_body(got)
            for i, a in enumerate(want):
                self.expect(d, a, mode, field, bchs[i], "body choice %d; %s" % (i, what))
            self.assertEqual(doc["usage"], json.loads(d.body(answers))["usage"], what)

    def test_every_dialect_every_mode(self):
        for mode, field in MODES:
            relay = self.start_relay(self.upstream, WORKERS="1", **mode_env(mode, field))
            for name in ALL:
                with self.subTest(dialect=name, mode=mode, field=field):
                    self.run_dialect(relay, name, mode, field)

    def test_odd_tcp_boundaries(self):
        # the stream written in 7- and 13-byte pieces: events, lines, UTF-8 and escapes
        # straddle TCP writes
        scripts = {k: SCRIPTS[k] for k in ("reasoning+preamble+call", "n=2")}
        for mode, field in (("tags", None), ("field", "reasoning")):
            relay = self.start_relay(self.upstream, WORKERS="1", **mode_env(mode, field))
            for name in ALL:
                for cuts in (7, 13):
                    with self.subTest(dialect=name, mode=mode, cuts=cuts):
                        self.run_dialect(relay, name, mode, field, cuts=cuts, scripts=scripts)

    def test_mixed_forms_one_relay(self):
        # one relay, the upstream switching forms from one response to the next: markers
        # in content, then a reasoning field, then harmony again
        relay = self.start_relay(self.upstream, WORKERS="1")
        for name in ("harmony", "llamacpp", "mlx", "vllm", "ollama", "harmony"):
            with self.subTest(dialect=name):
                self.run_dialect(relay, name, "tags", None)


if __name__ == "__main__":
    unittest.main()
