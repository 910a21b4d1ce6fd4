"""The request side of issue 10 through the stock script, over real sockets: what the
upstream receives when a client sends its history back (lua/relay/history.lua,
history.prepare, wired in lua/relay/default.lua).

- Earlier turns (before the last user message) lose their reasoning: <think> blocks in
  content and the reasoning_content / reasoning / thinking members.
- The current tool loop (assistant messages with tool_calls after the last user message)
  gets its <think> blocks moved into RELAY_HISTORY_FIELD (reasoning_content by default),
  content left "" (llama.cpp's gpt-oss template raises on content and thinking together).
- The current turn's answer (no tool_calls) is left as sent.
- reasoning_effort is copied into chat_template_kwargs.reasoning_effort
  (RELAY_EFFORT_KWARGS=0 turns that off; RELAY_STRIP_HISTORY=0 turns the rest off).
- Every other byte as the client sent it; malformed bodies pass unchanged.

Each case runs for a streamed and a non-streamed request, against a dialect mock
upstream (dialects.py) that answers as the server would."""

import json
import os
import sys
import unittest

from chatmock import CHAT_PATH
from dialects import Answer, WEATHER_CALL, chat_handler, collect_body, collect_stream
from relaytest import Client, RelayTestCase

MODEL = '"model":"openai/gpt-oss-20b"'
CALL1 = ('"tool_calls":[{"id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","type":"function",'
         '"function":{"name":"get_weather","arguments":"{\\"location\\":\\"Paris\\"}"}}]')
CALL2 = ('"tool_calls":[{"id":"call_x7k2m9qa","type":"function",'
         '"function":{"name":"get_weather","arguments":"{\\"location\\":\\"Rome\\"}"}}]')
TOOLS = ',"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{}}}}]'


def request(messages, stream, tail=""):
    """A chat request body (bytes) with the given message JSON texts."""
    return ('{%s,"stream":%s,"messages":[%s]%s}'
            % (MODEL, "true" if stream else "false", ",".join(messages), tail)).encode("utf-8")


class HistoryCase(RelayTestCase):

    def relay(self, dialect="llamacpp", answers=None, **env):
        self.upstream.handler = chat_handler(dialect, answers or [Answer(tool_calls=[WEATHER_CALL])], delay=0)
        env.setdefault("WORKERS", "1")
        return self.start_relay(**env)

    def post(self, relay, body, chunked=False):
        """POST body; returns (client response, the request the upstream received)."""
        n = len(self.upstream.requests)
        with Client(relay.port, timeout=10) as c:
            c.request("POST", CHAT_PATH, [("Content-Type", "application/json")], body, chunked=chunked,
                      chunk_sizes=[7, 100])
            r = c.read_response("POST")
        self.assertEqual(r.status, 200, r.body[:300])
        self.assertTrue(r.complete)
        reqs = self.upstream.wait_requests(n + 1)
        return r, reqs[n]

    def check(self, relay, sent, want, stream):
        """The upstream gets `want` (bytes) for `sent`, with a right Content-Length, and
        the client a whole answer."""
        r, q = self.post(relay, sent)
        self.assertBodyEqual(q.body, want, "upstream request body")
        self.assertEqual(q.header("content-length"), str(len(want)))
        self.assertIsNone(q.header("transfer-encoding"))
        if stream:
            chs, info = collect_stream(r.body)
            self.assertTrue(info["done"], r.body[-200:])
        else:
            chs = collect_body(r.body)
        self.assertIn(0, chs)
        return q

    def both(self, relay, messages, want_messages, tail="", want_tail=None):
        for stream in (True, False):
            with self.subTest(stream=stream):
                self.check(relay, request(messages, stream, tail),
                           request(want_messages, stream, tail if want_tail is None else want_tail), stream)


class EarlierTurns(HistoryCase):

    def test_tags_and_members_leave_earlier_turns(self):
        relay = self.relay()
        sent = ['{"role":"system","content":"Be brief. <think> is a tag."}',
                '{"role":"user","content":"hi <think>not mine</think>"}',
                '{"role":"assistant","content":"<think>The user greets.</think>Hello!",'
                '"reasoning_content":"The user greets.","reasoning":"x","thinking":null}',
                '{"role":"user","content":"weather?"}',
                '{"role":"assistant","content":"<think>call it</think>",' + CALL1 + ',"reasoning_content":"old"}',
                '{"role":"tool","tool_call_id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","content":"<think>18</think>"}',
                '{"role":"assistant","content":"\\n<think>done</think>\\n\\n18 \\u00b0C \\/ sunny"}',
                '{"role":"user","content":"thanks"}']
        want = ['{"role":"system","content":"Be brief. <think> is a tag."}',
                '{"role":"user","content":"hi <think>not mine</think>"}',
                '{"role":"assistant","content":"Hello!"}',
                '{"role":"user","content":"weather?"}',
                '{"role":"assistant","content":"",' + CALL1 + '}',
                '{"role":"tool","tool_call_id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","content":"<think>18</think>"}',
                '{"role":"assistant","content":"18 \u00b0C / sunny"}',
                '{"role":"user","content":"thanks"}']
        self.both(relay, sent, want)

    def test_content_as_parts(self):
        relay = self.relay()
        sent = ['{"role":"user","content":[{"type":"text","text":"q1"}]}',
                '{"role":"assistant","content":[{"type":"text","text":"<think>r</think>A"},'
                '{"type":"text","text":"B<think>s</think>"}]}',
                '{"role":"user","content":[{"type":"text","text":"q2"}]}',
                '{"role":"assistant","content":[{"type":"text","text":"<think>R</think>"}],' + CALL1 + '}',
                '{"role":"tool","tool_call_id":"x","content":"18"}']
        want = ['{"role":"user","content":[{"type":"text","text":"q1"}]}',
                '{"role":"assistant","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]}',
                '{"role":"user","content":[{"type":"text","text":"q2"}]}',
                '{"role":"assistant","content":[{"type":"text","text":""}],' + CALL1 + ',"reasoning_content":"R"}',
                '{"role":"tool","tool_call_id":"x","content":"18"}']
        self.both(relay, sent, want)


class ToolLoop(HistoryCase):

    SENT = ['{"role":"user","content":"before"}',
            '{"role":"assistant","content":"<think>old</think>Old answer."}',
            '{"role":"user","content":"Weather in Paris, then Rome?"}',
            '{"role":"assistant","content":"<think>Paris first.</think>",' + CALL1 + '}',
            '{"role":"tool","tool_call_id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","content":"18"}',
            '{"role":"assistant","content":"<think>Now Rome.</think>\\n\\nChecking Rome too.",' + CALL2 + '}',
            '{"role":"tool","tool_call_id":"call_x7k2m9qa","content":"21"}']

    def want(self, field_members):
        return ['{"role":"user","content":"before"}',
                '{"role":"assistant","content":"Old answer."}',
                '{"role":"user","content":"Weather in Paris, then Rome?"}',
                '{"role":"assistant","content":"",' + CALL1 + field_members("Paris first.") + '}',
                '{"role":"tool","tool_call_id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","content":"18"}',
                '{"role":"assistant","content":"",' + CALL2 + field_members("Now Rome.\\n\\nChecking Rome too.") + '}',
                '{"role":"tool","tool_call_id":"call_x7k2m9qa","content":"21"}']

    def test_reasoning_moves_to_reasoning_content(self):
        relay = self.relay()
        self.both(relay, self.SENT, self.want(lambda t: ',"reasoning_content":"%s"' % t), tail=TOOLS)

    def test_history_field_choices(self):
        choices = {
            "reasoning": lambda t: ',"reasoning":"%s"' % t,
            "thinking": lambda t: ',"thinking":"%s"' % t,
            "both": lambda t: ',"reasoning_content":"%s","reasoning":"%s"' % (t, t),
            "all": lambda t: ',"reasoning_content":"%s","reasoning":"%s","thinking":"%s"' % (t, t, t),
        }
        for value, members in choices.items():
            with self.subTest(RELAY_HISTORY_FIELD=value):
                relay = self.relay("vllm", RELAY_HISTORY_FIELD=value)
                self.both(relay, self.SENT, self.want(members))
                relay.kill()

    def test_the_current_answer_is_left_as_sent(self):
        relay = self.relay()
        sent = self.SENT + ['{"role":"assistant","content":"<think>Both known.</think>Paris 18, Rome 21."}']
        want = self.want(lambda t: ',"reasoning_content":"%s"' % t) + \
            ['{"role":"assistant","content":"<think>Both known.</think>Paris 18, Rome 21."}']
        self.both(relay, sent, want)

    def test_reasoning_already_in_the_field(self):
        relay = self.relay()
        sent = ['{"role":"user","content":"q"}',
                '{"role":"assistant","content":null,' + CALL1 + ',"reasoning_content":"in the field"}',
                '{"role":"tool","tool_call_id":"a","content":"18"}',
                '{"role":"assistant","content":"<think>in the field too</think>",' + CALL2 +
                ',"reasoning_content":"in the field too"}']
        want = sent[:3] + ['{"role":"assistant","content":"",' + CALL2 + ',"reasoning_content":"in the field too"}']
        self.both(relay, sent, want)
        # nothing to move at all: the body goes up byte for byte
        self.both(relay, sent[:3], sent[:3])

    def test_no_user_message(self):
        relay = self.relay()
        sent = ['{"role":"system","content":"agent"}',
                '{"role":"assistant","content":"<think>start</think>",' + CALL1 + '}',
                '{"role":"tool","tool_call_id":"a","content":"18"}']
        want = ['{"role":"system","content":"agent"}',
                '{"role":"assistant","content":"",' + CALL1 + ',"reasoning_content":"start"}',
                '{"role":"tool","tool_call_id":"a","content":"18"}']
        self.both(relay, sent, want)

    def test_openai_sdk_run_tools_second_request(self):
        """What openai (npm) runTools() sends after the first call in tags mode:
        toRequestMessage() keeps role, content, tool_calls (lib/AbstractChatCompletionRunner.ts),
        so the reasoning comes back only as <think> tags in content; the tool result's
        content is the function's JSON.stringify."""
        relay = self.relay("llamacpp", [Answer(content="It is 18 \u00b0C in Paris.")])
        sent = ['{"role":"user","content":"What is the weather in Paris?"}',
                '{"role":"assistant","content":"<think>The user wants the weather; call get_weather.</think>",'
                '"tool_calls":[{"id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","type":"function",'
                '"function":{"arguments":"{\\"location\\":\\"Paris\\"}","name":"get_weather"}}]}',
                '{"role":"tool","tool_call_id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","content":"{\\"temp\\":18}"}']
        want = [sent[0],
                '{"role":"assistant","content":"",'
                '"tool_calls":[{"id":"Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA","type":"function",'
                '"function":{"arguments":"{\\"location\\":\\"Paris\\"}","name":"get_weather"}}],'
                '"reasoning_content":"The user wants the weather; call get_weather."}',
                sent[2]]
        self.both(relay, sent, want, tail=TOOLS)


class Effort(HistoryCase):

    MSGS = ['{"role":"assistant","content":"<think>a</think>A"}', '{"role":"user","content":"q"}']
    CLEAN = ['{"role":"assistant","content":"A"}', '{"role":"user","content":"q"}']

    def test_reasoning_effort_is_copied_into_chat_template_kwargs(self):
        relay = self.relay()
        self.both(relay, self.MSGS, self.CLEAN, tail=',"reasoning_effort":"high"',
                  want_tail=',"reasoning_effort":"high","chat_template_kwargs":{"reasoning_effort":"high"}')
        self.both(relay, self.MSGS, self.CLEAN, tail=',"reasoning_effort":"low","chat_template_kwargs":{"enable_thinking":true}',
                  want_tail=',"reasoning_effort":"low","chat_template_kwargs":{"enable_thinking":true,"reasoning_effort":"low"}')
        kept = ',"reasoning_effort":"low","chat_template_kwargs":{"reasoning_effort":"high"}'
        self.both(relay, self.MSGS, self.CLEAN, tail=kept, want_tail=kept)
        odd = ',"reasoning_effort":"low","chat_template_kwargs":"x"'
        self.both(relay, self.MSGS, self.CLEAN, tail=odd, want_tail=odd)

    def test_effort_kwargs_off(self):
        relay = self.relay(RELAY_EFFORT_KWARGS="0")
        self.both(relay, self.MSGS, self.CLEAN, tail=',"reasoning_effort":"high"')

    def test_strip_history_off_keeps_the_effort_mapping(self):
        relay = self.relay(RELAY_STRIP_HISTORY="0")
        loop = ['{"role":"user","content":"q"}', '{"role":"assistant","content":"<think>r</think>",' + CALL1 + '}']
        self.both(relay, self.MSGS + loop[1:], self.MSGS + loop[1:], tail=',"reasoning_effort":"medium"',
                  want_tail=',"reasoning_effort":"medium","chat_template_kwargs":{"reasoning_effort":"medium"}')

    def test_everything_off(self):
        relay = self.relay(RELAY_STRIP_HISTORY="off", RELAY_EFFORT_KWARGS="no")
        self.both(relay, self.MSGS, self.MSGS, tail=',"reasoning_effort":"high"')


class Bytes(HistoryCase):

    def test_every_other_byte_as_sent(self):
        relay = self.relay()
        for stream in (True, False):
            with self.subTest(stream=stream):
                sent = ('{\n  "model" : "openai\\/gpt-oss-20b" ,\n  "stream" : %s,\n  "temperature":0.60,"seed":18446744073709551615,'
                        '"stop":[],"logit_bias":{},\n  "messages" : [\n'
                        '    {"role":"assistant","content":"<think>r</think>caf\\u00e9","x":1.0e+2},\n'
                        '    {"role":"user","content":"\\ud83d\\ude00"},\n'
                        '    { "role" : "assistant" , "content" : "<think>\\"q\\"</think>" , %s }\n  ]\n}'
                        % ("true" if stream else "false", CALL1)).encode()
                want = ('{\n  "model" : "openai\\/gpt-oss-20b" ,\n  "stream" : %s,\n  "temperature":0.60,"seed":18446744073709551615,'
                        '"stop":[],"logit_bias":{},\n  "messages" : [\n'
                        '    {"role":"assistant","content":"caf\u00e9","x":1.0e+2},\n'
                        '    {"role":"user","content":"\\ud83d\\ude00"},\n'
                        '    { "role" : "assistant" , "content" : "" , %s , "reasoning_content":"\\"q\\"" }\n  ]\n}'
                        % ("true" if stream else "false", CALL1)).encode()
                self.check(relay, sent, want, stream)

    def test_chunked_request_body(self):
        relay = self.relay()
        sent = request(['{"role":"user","content":"q"}',
                        '{"role":"assistant","content":"<think>r</think>",' + CALL1 + '}'], True)
        want = request(['{"role":"user","content":"q"}',
                        '{"role":"assistant","content":"",' + CALL1 + ',"reasoning_content":"r"}'], True)
        r, q = self.post(relay, sent, chunked=True)
        self.assertBodyEqual(q.body, want, "upstream request body")
        self.assertEqual(q.header("content-length"), str(len(want)))

    def test_malformed_bodies_pass_unchanged(self):
        relay = self.relay()
        loop = '{"role":"user","content":"q"},{"role":"assistant","content":"<think>r</think>",' + CALL1 + '}'
        bodies = [
            b'{"stream":false,"messages":[' + loop.encode() + b']',                     # cut
            b'{"stream":false,"messages":[' + loop.encode() + b'],"n":NaN}',             # lua-cjson only
            b'{"stream":false,"messages":[{"role":"user","content":"q"},{"role":"assistant",'
            b'"content":"<think>r</think>","tool_calls":[{"id":"c"}],"reasoning_content":7}]}',  # not a string
            b'{"stream":false,"messages":{"0":{"role":"assistant","content":"<think>r</think>"}}}',
            b'<think>not json</think>',
        ]
        for b in bodies:
            with self.subTest(body=b[:60]):
                r, q = self.post(relay, b)
                self.assertBodyEqual(q.body, b, "upstream request body")


class Scale(HistoryCase):

    def test_long_tool_loop_in_linear_time(self):
        """12,000 messages in the current loop (6,000 calls): one batch edit, CPU bounded
        (a relay.json.set per message took seconds on 8,000 messages)."""
        relay = self.relay()
        sent, want = ['{"role":"user","content":"go"}'], ['{"role":"user","content":"go"}']
        for i in range(6000):
            sent.append('{"role":"assistant","content":"<think>step %d</think>","tool_calls":[{"id":"c%d"}]}' % (i, i))
            want.append('{"role":"assistant","content":"","tool_calls":[{"id":"c%d"}],"reasoning_content":"step %d"}' % (i, i))
            sent.append('{"role":"tool","tool_call_id":"c%d","content":"ok"}' % i)
            want.append(sent[-1])
        cpu0 = relay.cpu_seconds()
        q = self.check(relay, request(sent, False), request(want, False), False)
        cpu = relay.cpu_seconds() - cpu0
        self.assertEqual(len(json.loads(q.body)["messages"]), 12001)
        if os.environ.get("RELAYTEST_VERBOSE"):
            sys.stderr.write("\n  tool loop: %d messages, relay CPU %.3f s\n" % (len(sent), cpu))
        self.assertLess(cpu, 2.0, "the relay spent %.2f s of CPU on one request" % cpu)


class Config(HistoryCase):

    def test_bad_history_field_stops_start_up(self):
        code, out, err = self.run_relay(["--check"], env={"RELAY_HISTORY_FIELD": "reasoning_text"})
        self.assertNotEqual(code, 0)
        self.assertIn('RELAY_HISTORY_FIELD="reasoning_text" is not one of reasoning_content, reasoning, thinking, '
                      'both, all', err)
        code, out, err = self.run_relay(["--check"], env={"RELAY_EFFORT_KWARGS": "maybe"})
        self.assertNotEqual(code, 0)
        self.assertIn('RELAY_EFFORT_KWARGS="maybe" is not a boolean', err)


if __name__ == "__main__":
    unittest.main()
