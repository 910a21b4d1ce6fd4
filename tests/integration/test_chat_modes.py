"""Output modes (RELAY_MODE=tags|field|strip, RELAY_REASONING_FIELD) on streams and on
whole JSON bodies, and OPEN_PATTERN/CLOSE_PATTERN replacing the harmony rules with a
single pair. Bodies carry values a JSON round trip would spoil (1.0000000000000002,
1e-07, -0.0, 2^64-1, [], {}, \\/ and \\u00e9 escapes) and must keep them verbatim."""

import json
import unittest

from chatmock import (ChatTestCase, A, F, DONE, USAGE_CHUNK, chunk, completion_body, harmony_text,
                      sse, stream_events, tokens, skeleton)

THINK = "<think>" + A + "</think>" + F
LMSTUDIO = harmony_text("lmstudio")
LLAMA = harmony_text("llama")
TWO = ("<|channel|>analysis<|message|>one.<|end|><|start|>assistant<|channel|>analysis<|message|>"
       " two.<|end|><|start|>assistant<|channel|>final<|message|>" + F + "<|return|>")


class JsonBody(ChatTestCase):

    def _body(self, contents, env=None, **kw):
        body = completion_body(contents, **kw)
        r, got, _ = self.body(body, env=env)
        self.assertEqual(r.header("content-type"), "application/json")
        return body, got, json.loads(got)

    def _check_verbatim(self, got):
        for lit in (b'"temperature":1.0000000000000002', b'"top_p":1e-07', b'"logprob":-0.0',
                    b'"seed":18446744073709551615', b'"empty":[]', b'"obj":{}', b'"tool_calls":[]',
                    b'"top_logprobs":[]', b'"model":"openai\\/gpt-oss-20b"', b'"b6100-\\u00e9"',
                    b'"prompt_tokens_details":null'):
            self.assertIn(lit, got)

    def test_tags(self):
        body, got, doc = self._body([LMSTUDIO])
        self.assertEqual(doc["choices"][0]["message"]["content"], THINK)
        self.assertBodySkeleton(got, body)
        self._check_verbatim(got)

    def test_tags_explicit_mode(self):
        body, got, doc = self._body([LLAMA], env={"RELAY_MODE": "tags"})
        self.assertEqual(doc["choices"][0]["message"]["content"], THINK)
        self.assertBodySkeleton(got, body)

    def test_field_reasoning_content(self):
        body, got, doc = self._body([LMSTUDIO], env={"RELAY_MODE": "field"})
        msg = doc["choices"][0]["message"]
        self.assertEqual(msg["content"], F)
        self.assertEqual(msg["reasoning_content"], A)
        self.assertNotIn("reasoning", msg)
        self.assertEqual(list(msg)[0], "reasoning_content")
        self.assertIn(b'"message":{"reasoning_content":', got)
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning_content"))
        self._check_verbatim(got)

    def test_field_reasoning(self):
        body, got, doc = self._body([LLAMA], env={"RELAY_MODE": "field", "RELAY_REASONING_FIELD": "reasoning"})
        msg = doc["choices"][0]["message"]
        self.assertEqual((msg["reasoning"], msg["content"]), (A, F))
        self.assertNotIn("reasoning_content", msg)
        self.assertEqual(list(msg)[0], "reasoning")
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning"))

    def test_field_both(self):
        body, got, doc = self._body([LMSTUDIO + "<|return|>"],
                                    env={"RELAY_MODE": "field", "RELAY_REASONING_FIELD": "both"})
        msg = doc["choices"][0]["message"]
        self.assertEqual((msg["reasoning_content"], msg["reasoning"], msg["content"]), (A, A, F))
        self.assertEqual(set(list(msg)[:2]), {"reasoning_content", "reasoning"})
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning", "reasoning_content"))
        self._check_verbatim(got)

    def test_field_two_analysis_messages(self):
        body, got, doc = self._body([TWO], env={"RELAY_MODE": "field"})
        msg = doc["choices"][0]["message"]
        self.assertEqual((msg["reasoning_content"], msg["content"]), ("one. two.", F))

    def test_field_without_markers_byte_identical(self):
        body, got, doc = self._body(["Just an answer."], env={"RELAY_MODE": "field"})
        self.assertBodyEqual(got, body)

    def test_field_appends_to_upstream_reasoning(self):
        # the upstream already split some reasoning out: the relay's follows it
        body = completion_body([LMSTUDIO], extra_message=',"reasoning_content":"Earlier. "')
        r, got, _ = self.body(body, env={"RELAY_MODE": "field"})
        msg = json.loads(got)["choices"][0]["message"]
        self.assertEqual((msg["reasoning_content"], msg["content"]), ("Earlier. " + A, F))
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning_content"),
                                drop_in=("content", "reasoning_content"))

    def test_field_body_with_null_reasoning_content(self):
        body = completion_body([LMSTUDIO], extra_message=',"reasoning_content":null')
        r, got, _ = self.body(body, env={"RELAY_MODE": "field"})
        msg = json.loads(got)["choices"][0]["message"]
        self.assertEqual((msg.get("reasoning_content"), msg["content"]), (A, F))
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning_content"),
                                drop_in=("content", "reasoning_content"))

    def test_field_both_body_with_upstream_reasoning(self):
        # the upstream (vLLM, LM Studio) already has "reasoning": null; "both" must not
        # write a second "reasoning" key
        body = completion_body([LMSTUDIO], extra_message=',"reasoning":null')
        r, got, _ = self.body(body, env={"RELAY_MODE": "field", "RELAY_REASONING_FIELD": "both"})
        msg = json.loads(got)["choices"][0]["message"]
        self.assertEqual((msg.get("reasoning_content"), msg.get("reasoning"), msg["content"]), (A, A, F))
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning_content", "reasoning"),
                                drop_in=("content", "reasoning_content", "reasoning"))

    def test_strip(self):
        body, got, doc = self._body([LMSTUDIO], env={"RELAY_MODE": "strip"})
        msg = doc["choices"][0]["message"]
        self.assertEqual(msg["content"], F)
        self.assertNotIn("reasoning_content", msg)
        self.assertNotIn("reasoning", msg)
        self.assertBodySkeleton(got, body)
        self._check_verbatim(got)

    def test_two_choices(self):
        body, got, doc = self._body([LMSTUDIO, "<|channel|>analysis<|message|>other<|start|>assistant"
                                               "<|channel|>final<|message|>second"])
        self.assertEqual([c["message"]["content"] for c in doc["choices"]],
                         [THINK, "<think>other</think>second"])
        self.assertBodySkeleton(got, body)

    def test_escaped_markers_in_body(self):
        body, got, doc = self._body([LMSTUDIO], style="go")
        self.assertIn(b"\\u003c|channel|\\u003e", body)
        self.assertEqual(doc["choices"][0]["message"]["content"], THINK)
        self.assertBodySkeleton(got, body)

    def test_null_content_unchanged(self):
        body = completion_body(["x"]).replace(b'"content":"x"', b'"content":null')
        r, got, _ = self.body(body)
        self.assertBodyEqual(got, body)

    def test_body_cut_in_many_writes(self):
        body = completion_body([harmony_text("lmstudio", "\u6771\u4eac \U0001F914", "\U0001F389")])
        pieces = [body[i:i + 3] for i in range(0, len(body), 3)]
        r, got, _ = self.body(body, pieces=pieces, delay=0)
        self.assertEqual(json.loads(got)["choices"][0]["message"]["content"],
                         "<think>\u6771\u4eac \U0001F914</think>\U0001F389")
        self.assertBodySkeleton(got, body)

    def test_body_over_buffer_limit_passes_unchanged(self):
        # too big to hold for a rewrite: it must still arrive whole and unchanged
        body = completion_body([LMSTUDIO + " pad" * 2000])
        r, got, _ = self.body(body, env={"RELAY_MAX_BODY_BUFFER": "1024"})
        self.assertBodyEqual(got, body)

    def test_pretty_printed_body(self):
        doc = json.loads(completion_body([LMSTUDIO]))
        body = json.dumps(doc, indent=2, ensure_ascii=False).encode()
        r, got, _ = self.body(body, env={"RELAY_MODE": "field"})
        msg = json.loads(got)["choices"][0]["message"]
        self.assertEqual((msg["reasoning_content"], msg["content"]), (A, F))
        self.assertBodySkeleton(got, body, drop_out=("content", "reasoning_content"))


class StreamModes(ChatTestCase):

    def test_field_reasoning_content_stream(self):
        evs = stream_events(tokens(LMSTUDIO))
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field"}, fields=("reasoning_content",))
        self.assertEqual(sc.text(), F)
        self.assertEqual(sc.reasoning["reasoning_content"][0], A)
        self.assertEqual(sc.reasoning["reasoning"], {})
        self.assertNotIn(b"<think>", out)
        self.assertIn(b'"delta":{"reasoning_content":"The",', out)

    def test_field_reasoning_stream(self):
        evs = stream_events(tokens(LLAMA))
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field", "RELAY_REASONING_FIELD": "reasoning"},
                                    fields=("reasoning",))
        self.assertEqual(sc.text(), F)
        self.assertEqual(sc.reasoning["reasoning"][0], A)
        self.assertEqual(sc.reasoning["reasoning_content"], {})

    def test_field_both_stream(self):
        evs = stream_events(tokens(TWO))
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field", "RELAY_REASONING_FIELD": "both"},
                                    fields=("reasoning_content", "reasoning"))
        self.assertEqual(sc.text(), F)
        self.assertEqual(sc.reasoning["reasoning_content"][0], "one. two.")
        self.assertEqual(sc.reasoning["reasoning"][0], "one. two.")
        for _, oev in sc.pairs:
            j = oev.json()
            if j and j.get("choices"):
                d = j["choices"][0]["delta"]
                self.assertEqual(d.get("reasoning_content"), d.get("reasoning"), oev.raw)

    def test_field_held_reasoning_flushed_at_done(self):
        # the stream stops inside the analysis with a marker prefix held, no finish_reason
        evs = [sse(chunk(t)) for t in tokens("<|channel|>analysis<|message|>Hmm <|end")] + [DONE]
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field"}, fields=("reasoning_content",))
        self.assertEqual(sc.reasoning["reasoning_content"][0], "Hmm <|end")
        self.assertEqual(sc.text(), "")
        self.assertEqual(len(sc.flush_events), 1)

    def test_field_held_reasoning_flushed_into_finish_event(self):
        evs = stream_events(tokens("<|channel|>analysis<|message|>Hmm <|end"))
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field"}, fields=("reasoning_content",))
        self.assertEqual(sc.reasoning["reasoning_content"][0], "Hmm <|end")
        self.assertEqual(sc.flush_events, [])
        fin = sc.pairs[-3][1].json()["choices"][0]
        self.assertEqual(fin["finish_reason"], "stop")
        self.assertEqual(fin["delta"], {"reasoning_content": "<|end"})

    def test_field_upstream_delta_with_null_reasoning_content(self):
        # vLLM-style deltas carry "reasoning_content":null on every chunk; the relay's
        # reasoning must not end up as a second key that the null overrides
        toks = tokens(LMSTUDIO)
        evs = [sse(chunk(delta_raw='{"role":"assistant","content":"","reasoning_content":null}'))]
        evs += [sse(chunk(delta_raw='{"content":%s,"reasoning_content":null}' % json.dumps(t))) for t in toks]
        evs += [sse(chunk(finish="stop", delta_raw="{}")), DONE]
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "field"}, fields=("reasoning_content",))
        self.assertEqual(sc.text(), F)
        self.assertEqual(sc.reasoning["reasoning_content"].get(0), A)

    def test_field_upstream_native_reasoning_unchanged(self):
        # llama-server --reasoning-format deepseek: reasoning already split out, no
        # markers in content: in field mode with the same field, nothing to do, byte for
        # byte (tags mode moves it into content: test_reasoning_dialects.py)
        evs = [sse(chunk(delta_raw='{"role":"assistant","content":null}'))]
        evs += [sse(chunk(delta_raw='{"reasoning_content":%s}' % json.dumps(t))) for t in tokens(A)]
        evs += [sse(chunk(t)) for t in tokens(F)]
        evs += [sse(chunk(finish="stop", delta_raw="{}")), sse(USAGE_CHUNK), DONE]
        for mode in ("field",):
            with self.subTest(mode=mode):
                _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": mode})
                self.assertBodyEqual(out, b"".join(evs))

    def test_strip_stream(self):
        evs = stream_events(tokens(LMSTUDIO + "<|return|>"))
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "strip"})
        self.assertEqual(sc.text(), F)
        self.assertNotIn(b"reasoning", out)
        self.assertNotIn(b"user greets", out)

    def test_strip_n2(self):
        evs = [sse(chunk(t, index=i)) for t in tokens(LMSTUDIO) for i in (0, 1)]
        evs += [sse(chunk(index=i, finish="stop", delta_raw="{}")) for i in (1, 0)] + [DONE]
        _, out, sc, _ = self.stream(evs, env={"RELAY_MODE": "strip"})
        self.assertEqual((sc.text(0), sc.text(1)), (F, F))


class Pair(ChatTestCase):
    """OPEN_PATTERN/CLOSE_PATTERN: one pair instead of the harmony rules."""

    SEED = {"OPEN_PATTERN": "<|channel|>analysis<|message|>",
            "CLOSE_PATTERN": "<|end|><|start|>assistant<|channel|>final<|message|>"}

    def test_seed_pair_stream_and_body(self):
        evs = stream_events(tokens(LMSTUDIO))
        _, _, sc, _ = self.stream(evs, env=self.SEED)
        self.assertEqual(sc.text(), THINK)

    def test_seed_pair_replaces_harmony_rules(self):
        # llama-server's form has no <|end|>: the seed pair does not close it, and the
        # trailing <|return|> is not a pattern any more; the block is closed at the finish
        evs = stream_events(tokens(LLAMA + "<|return|>"))
        _, _, sc, _ = self.stream(evs, env=self.SEED)
        self.assertEqual(sc.text(), "<think>" + A + "<|start|>assistant<|channel|>final<|message|>" + F +
                         "<|return|></think>")

    def test_custom_pair_with_tags_body(self):
        env = {"OPEN_PATTERN": "<think>", "CLOSE_PATTERN": "</think>",
               "OPEN_TAG": "<reasoning>", "CLOSE_TAG": "</reasoning>"}
        text = "<think>R1 <b>x</b></think>answer <|channel|>analysis<|message|>"
        body = completion_body([text])
        r, got, _ = self.body(body, env=env)
        self.assertEqual(json.loads(got)["choices"][0]["message"]["content"],
                         "<reasoning>R1 <b>x</b></reasoning>answer <|channel|>analysis<|message|>")
        self.assertBodySkeleton(got, body)

    def test_custom_pair_field_stream(self):
        env = {"OPEN_PATTERN": "<think>", "CLOSE_PATTERN": "</think>", "RELAY_MODE": "field"}
        evs = stream_events(["<", "think", ">", "R", "1", "</", "think", ">", "\n\n", "answer"])
        _, _, sc, _ = self.stream(evs, env=env, fields=("reasoning_content",))
        self.assertEqual(sc.reasoning["reasoning_content"][0], "R1")
        self.assertEqual(sc.text(), "\n\nanswer")

    def test_open_pattern_alone_is_an_error(self):
        env = self.relay_env(OPEN_PATTERN="<think>")
        rc, out, err = self.run_relay(env=env, timeout=5)
        self.assertNotEqual(rc, 0)
        self.assertIn("CLOSE_PATTERN", err)


if __name__ == "__main__":
    unittest.main()
