"""Mock upstreams that speak each server's dialect of gpt-oss reasoning (issue 10).

A scripted answer (reasoning text, content text, tool calls) is written exactly as each
server writes it: one SSE event per model token (as a list of bytes, one TCP write each)
or one JSON body, n=1 or n=2. The wire forms come from the servers' own code and docs,
collected in /work/research/dialects/NOTES.md; each builder cites its source. Nothing
here is copied from those projects: the shapes are rebuilt from the descriptions.

    from dialects import Answer, DIALECTS, chat_handler
    d = DIALECTS["llamacpp"]
    events = d.events([Answer()])              # list of bytes, ends with data: [DONE]
    body = d.body([Answer(), Answer(...)])     # bytes (n=2)
    upstream.handler = chat_handler("vllm", [Answer(tool_calls=[WEATHER_CALL])])

chat_handler() answers as the server would for the request it gets: a stream when the
request says "stream": true, a JSON body otherwise, the usage chunk when the server would
send one for the request's stream_options. collect_stream() / collect_body() read any of
these back into per-choice content, reasoning fields and tool calls, so a test can compare
what the relay sent with what the script said.

| name | server | reasoning on the wire |
| --- | --- | --- |
| llamacpp | llama-server --jinja (default reasoning format) | reasoning_content |
| llamacpp_none | llama-server --reasoning-format none | harmony in content, final header eaten |
| vllm | vLLM after PR #33402 (2026) | reasoning |
| vllm_mirror | vLLM ~0.11.1-0.15 | reasoning plus a mirrored reasoning_content |
| vllm_010 | vLLM 0.10.x | reasoning_content |
| ollama | Ollama /v1 | reasoning, with "content":"" beside it |
| lmstudio | LM Studio 0.3.23+ | reasoning |
| harmony | LM Studio before 0.3.23 | harmony markers in content |
| mlx | mlx_lm.server | harmony markers in content, "reasoning": "" beside |

VARIANTS adds other builds of the same servers: llamacpp_timings_every (b9554's timings on
every chunk), llamacpp_peg ("arguments":"{" with the name, "content":"" in bodies),
vllm_steps / vllm_mirror_steps (three tokens per engine step: content, reasoning and
tool_calls in one delta), mlx_no_keepalive. chat_handler(name, cuts=N) writes a stream
in N-byte pieces instead of one event per write.

Standard library only.
"""

import json
import re

from chatmock import json_handler, parse_sse, sse_handler, tokens

CREATED = 1755000000

# The scripted texts carry what the encoders treat differently: <, > and & (Go escapes
# them), non-ASCII (Python's json.dumps escapes it), a quote and a backslash.
REASONING = 'The user asks for the weather in Paris & Rome (2 < 3 > 1). Call get_weather \u2014 "m\u00e9t\u00e9o" \\ ok.'
CONTENT = "Paris: 18 \u00b0C, sunny \u2600\ufe0f. Rome: 21 \u00b0C <warm> & dry."
WEATHER_ARGS = '{"location":"Paris","unit":"\u00b0C"}'


class ToolCall:
    """One scripted call: a name and the arguments text the model wrote."""

    def __init__(self, name="get_weather", arguments=WEATHER_ARGS):
        self.name = name
        self.arguments = arguments


WEATHER_CALL = ToolCall()


class Answer:
    """What the model says for one choice. finish: None means what the server derives
    ("tool_calls" when there are calls, else "stop")."""

    def __init__(self, reasoning=REASONING, content=CONTENT, tool_calls=(), finish=None):
        self.reasoning = reasoning
        self.content = content
        self.tool_calls = list(tool_calls)
        self.finish = finish

    def finish_reason(self):
        if self.finish is not None:
            return self.finish
        return "tool_calls" if self.tool_calls else "stop"


def second(answer):
    """A different answer for choice 1 of an n=2 response."""
    return Answer(answer.reasoning + " (second)", answer.content + " (second)",
                  answer.tool_calls, answer.finish)


# ----------------------------------------------------------------------------- encoders


def js(s):
    """Raw UTF-8 JSON string (nlohmann with ensure_ascii=false, pydantic, Node)."""
    return json.dumps(s, ensure_ascii=False)


def js_go(s):
    """Go's encoding/json: raw UTF-8 but <, >, & and U+2028/U+2029 escaped."""
    out = json.dumps(s, ensure_ascii=False)
    return (out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def compact(args_text):
    """The arguments re-dumped compact (llama.cpp regex era, Ollama's json.Marshal), or
    as written when they are not JSON."""
    try:
        return json.dumps(json.loads(args_text), separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        return args_text


def arg_pieces(args_text, size=4):
    """Arguments streamed in token-sized pieces."""
    return [args_text[i:i + size] for i in range(0, len(args_text), size)] or [""]


def sse(data):
    return b"data: " + data.encode("utf-8") + b"\n\n"


DONE = b"data: [DONE]\n\n"


def interleave(per_choice):
    """Round-robin the event lists of several choices (servers run them in parallel)."""
    out = []
    k = 0
    while any(k < len(evs) for evs in per_choice):
        for evs in per_choice:
            if k < len(evs):
                out.append(evs[k])
        k += 1
    return out


def harmony_text(answer, eat_final_header=False, call_marker=False):
    """The raw harmony an engine without a harmony parser leaves in content. A preamble
    (content beside a tool call) is a commentary message; the final header is dropped
    when eat_final_header (llama.cpp --reasoning-format none: test-chat.cpp's
    "<|channel|>analysis<|message|>I'm\\nthinking<|end|>Hello, world!")."""
    out = ""
    if answer.reasoning:
        out += "<|channel|>analysis<|message|>" + answer.reasoning + "<|end|>"
    if answer.tool_calls:
        if answer.content:
            out += "<|start|>assistant<|channel|>commentary<|message|>" + answer.content + "<|end|>"
        for k, c in enumerate(answer.tool_calls):
            if k:  # only a server that does not stop at <|call|> writes a second call
                out += "<|call|>"
            out += ("<|start|>assistant<|channel|>commentary to=functions." + c.name +
                    " <|constrain|>json<|message|>" + c.arguments)
        if call_marker:
            out += "<|call|>"
    elif answer.content:
        if answer.reasoning and not eat_final_header:
            out += "<|start|>assistant<|channel|>final<|message|>"
        out += answer.content
    return out


# ----------------------------------------------------------------------------- dialects


class Dialect:
    """name -> events(answers) / body(answers). answers: a list of Answer, one per choice
    (servers without n send only the first)."""

    name = None
    supports_n = True
    reasoning_fields = ()       # the delta/message members that carry reasoning
    harmony_in_content = False  # reasoning reaches the client as markers in content
    stream_framing = "chunked"  # how the server frames a stream (mlx: close-delimited)

    def wants_usage(self, request):
        """Whether the server sends a usage chunk for this request (a dict)."""
        so = request.get("stream_options") if isinstance(request, dict) else None
        return isinstance(so, dict) and bool(so.get("include_usage"))

    def finish(self, answer):
        """The finish_reason the server sends for this answer."""
        return answer.finish_reason()

    def answers(self, answers):
        answers = list(answers)
        return answers if self.supports_n else answers[:1]

    def scripted(self, answer):
        """What collect_*() should give back for this answer: (content, reasoning) of the
        client-visible text. Harmony dialects give the raw harmony as content."""
        if self.harmony_in_content:
            return self.harmony(answer), ""
        return answer.content, answer.reasoning


class LlamaCpp(Dialect):
    """llama-server --jinja, default --reasoning-format auto (deepseek for gpt-oss).

    tools/server/server-task.cpp @ 00efb3e1 (to_json_oaicompat_chat_stream: a role chunk
    of its own with "content":null, then one event per non-empty diff), common/chat.cpp
    @ 0083bb18 (common_chat_msg_diff_to_json_oaicompat: reasoning_content, content,
    tool_calls; a call's first delta {index,id,type,function:{name}}, "arguments" only
    when non-empty), tools/server/server-common.cpp (gen_tool_call_id: 32 alphanumerics;
    format_oai_sse; [DONE]). Key order: choices first, id after created; compact dumps,
    raw UTF-8. Usage chunk ("choices":[]) only with stream_options.include_usage;
    "timings" on the last event (b9554 capture in openai-php/client #780 has it on
    every chunk: timings="every")."""

    name = "llamacpp"
    reasoning_fields = ("reasoning_content",)
    model = "gpt-oss-20b"
    fingerprint = "b6140-3f1c2b0a"
    chat_id = "chatcmpl-qC6laQHbZ2CmxNvJ4NoB1L93LcVF7nfe"
    TIMINGS = ('{"cache_n":7,"prompt_n":112,"prompt_ms":251.51,"prompt_per_token_ms":2.2456,'
               '"prompt_per_second":445.31,"predicted_n":57,"predicted_ms":812.4,'
               '"predicted_per_token_ms":14.25,"predicted_per_second":70.16}')

    def __init__(self, timings="last", first_args=None, empty_content="null"):
        self.timings = timings            # "last", "every" or None
        self.first_args = first_args      # None: no "arguments" in a call's first delta; "{": PEG era
        self.empty_content = empty_content  # body content when empty: "null", "empty", "null_if_tools"

    def call_id(self, i, k):
        base = "Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA"
        return base[:30] + "%d%d" % (i, k)

    def _chunk(self, choices, last=False, usage=None):
        tail = ',"usage":' + usage if usage else ""
        if self.timings == "every" or (self.timings == "last" and last):
            tail += ',"timings":' + self.TIMINGS
        return sse('{"choices":[%s],"created":%d,"id":"%s","model":"%s","system_fingerprint":"%s",'
                   '"object":"chat.completion.chunk"%s}'
                   % (choices, CREATED, self.chat_id, self.model, self.fingerprint, tail))

    def _choice(self, i, delta, finish=None):
        return '{"finish_reason":%s,"index":%d,"delta":%s}' % (js(finish) if finish else "null", i, delta)

    def content_deltas(self, answer):
        out = ['{"reasoning_content":%s}' % js(t) for t in tokens(answer.reasoning)] if answer.reasoning else []
        out += ['{"content":%s}' % js(t) for t in tokens(answer.content)] if answer.content else []
        return out

    def call_deltas(self, i, answer):
        out = []
        for k, c in enumerate(answer.tool_calls):
            args = compact(c.arguments)
            fn = '"name":%s' % js(c.name)
            if self.first_args and args.startswith(self.first_args):
                fn += ',"arguments":%s' % js(self.first_args)
                args = args[len(self.first_args):]
            out.append('{"tool_calls":[{"index":%d,"id":"%s","type":"function","function":{%s}}]}'
                       % (k, self.call_id(i, k), fn))
            out += ['{"tool_calls":[{"index":%d,"function":{"arguments":%s}}]}' % (k, js(p))
                    for p in arg_pieces(args) if p]
        return out

    def choice_events(self, i, answer):
        evs = [self._choice(i, '{"role":"assistant","content":null}')]
        evs += [self._choice(i, d) for d in self.content_deltas(answer) + self.call_deltas(i, answer)]
        evs.append(self._choice(i, "{}", answer.finish_reason()))
        return evs

    def events(self, answers, usage=True):
        answers = self.answers(answers)
        choices = interleave([self.choice_events(i, a) for i, a in enumerate(answers)])
        out = [self._chunk(c, last=(k == len(choices) - 1 and not usage)) for k, c in enumerate(choices)]
        if usage:
            out.append(self._chunk("", last=True,
                                   usage='{"completion_tokens":57,"prompt_tokens":112,"total_tokens":169}'))
        out.append(DONE)
        return out

    def message(self, i, answer):
        content = answer.content
        if content:
            c = js(content)
        elif self.empty_content == "empty" or (self.empty_content == "null_if_tools" and not answer.tool_calls):
            c = '""'
        else:
            c = "null"
        m = '{"role":"assistant","content":%s' % c
        if answer.reasoning:
            m += ',"reasoning_content":%s' % js(answer.reasoning)
        if answer.tool_calls:
            m += ',"tool_calls":[%s]' % ",".join(
                '{"type":"function","function":{"name":%s,"arguments":%s},"id":"%s"}'
                % (js(c.name), js(compact(c.arguments)), self.call_id(i, k))
                for k, c in enumerate(answer.tool_calls))
        return m + "}"

    def body(self, answers):
        answers = self.answers(answers)
        choices = ",".join('{"finish_reason":%s,"index":%d,"message":%s}'
                           % (js(a.finish_reason()), i, self.message(i, a)) for i, a in enumerate(answers))
        timings = ',"timings":' + self.TIMINGS if self.timings else ""
        return ('{"choices":[%s],"created":%d,"model":"%s","system_fingerprint":"%s","object":"chat.completion",'
                '"usage":{"completion_tokens":57,"prompt_tokens":112,"total_tokens":169},"id":"%s"%s}'
                % (choices, CREATED, self.model, self.fingerprint, self.chat_id, timings)).encode("utf-8")


class LlamaCppNone(LlamaCpp):
    """llama-server --reasoning-format none (or deepseek-legacy): the harmony text stays in
    content with the final header eaten (tests/test-chat.cpp @ e7e21164, REASONING_FORMAT_NONE:
    "<|channel|>analysis<|message|>I'm\\nthinking<|end|>Hello, world!\\nWhat's up?"); tool calls
    are still parsed into tool_calls when the request has tools (common/chat-parser.cpp
    @ 1d232c2c). Envelope as llamacpp."""

    name = "llamacpp_none"
    reasoning_fields = ()
    harmony_in_content = True

    def harmony(self, answer):
        # the calls are parsed out, a preamble stays as text after the analysis
        text = ""
        if answer.reasoning:
            text += "<|channel|>analysis<|message|>" + answer.reasoning + "<|end|>"
        return text + (answer.content or "")

    def content_deltas(self, answer):
        text = self.harmony(answer)
        return ['{"content":%s}' % js(t) for t in tokens(text)] if text else []

    def message(self, i, answer):
        a = Answer(None, self.harmony(answer), answer.tool_calls, answer.finish)
        return LlamaCpp.message(self, i, a)


class Vllm(Dialect):
    """vLLM, gpt-oss through the harmony path, after PR #33402 (merged 2026-01-30): the
    reasoning is in "reasoning" only.

    entrypoints/openai/chat_completion/stream_harmony.py @ 1a5f571f (one delta per engine
    step: reasoning / content / tool_calls), engine/protocol.py @ 040a2cc2 (field order of
    the chunk, the choice and DeltaToolCall: id, type, index, function), serving.py (the
    first chunk per choice {"role":"assistant","content":""}; "token_ids":null from 0.10.2,
    PR #25514's capture; the finish chunk with stop_reason; the usage chunk with
    "choices":[] and prompt_tokens, total_tokens, completion_tokens; [DONE]),
    chat_utils.make_tool_call_id (chatcmpl-tool-<32 hex>). Tool arguments stream as the
    model wrote them, the body has json.dumps(json.loads(args)) (", " and ": ", ASCII)
    from tool_parsers/openai_tool_parser.py @ 006b0243. StreamOptions.include_usage
    defaults to true, so "stream_options":{} is enough for a usage chunk."""

    name = "vllm"
    reasoning_fields = ("reasoning",)
    model = "openai/gpt-oss-20b"
    chat_id = "chatcmpl-9f1c3e5a7b9d4f2e8c6a4b2d0f1e3c5a"

    def wants_usage(self, request):
        so = request.get("stream_options") if isinstance(request, dict) else None
        return isinstance(so, dict) and so.get("include_usage", True) is not False

    def call_id(self, i, k):
        return "chatcmpl-tool-3c0e5b8a9d2f4e1c8b7a6f5e4d3c2b%d%d" % (i, k)

    def __init__(self, step=1):
        # tokens per engine step: with step > 1 one delta may carry content, reasoning and
        # tool_calls together, and two entries of one call (stream_harmony.py groups an
        # engine step's tokens by channel and recipient)
        self.step = step

    def reasoning_members(self, text):
        """The delta members for a reasoning piece (None: a delta without reasoning)."""
        return ['"reasoning":%s' % js(text)] if text is not None else []

    def delta(self, content=None, reasoning=None, calls=()):
        """A DeltaMessage dumped with exclude_unset: fields in class order (role, content,
        reasoning[, reasoning_content], tool_calls)."""
        parts = ['"content":%s' % js(content)] if content is not None else []
        parts += self.reasoning_members(reasoning)
        if calls:
            parts.append('"tool_calls":[%s]' % ",".join(calls))
        return "{" + ",".join(parts) + "}"

    def role_delta(self):
        return '{"role":"assistant","content":""}'

    def _chunk(self, choice):
        return sse('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s","choices":[%s]}'
                   % (self.chat_id, CREATED, self.model, choice))

    def items(self, i, answer):
        """The model's output, token by token: (kind, text-or-entry)."""
        out = [("reasoning", t) for t in tokens(answer.reasoning)] if answer.reasoning else []
        out += [("content", t) for t in tokens(answer.content)] if answer.content else []
        for k, c in enumerate(answer.tool_calls):
            out.append(("call", '{"id":"%s","type":"function","index":%d,"function":{"name":%s,"arguments":""}}'
                        % (self.call_id(i, k), k, js(c.name))))
            out += [("call", '{"index":%d,"function":{"arguments":%s}}' % (k, js(p)))
                    for p in arg_pieces(c.arguments) if p]
        return out

    def choice_events(self, i, answer):
        tail = ',"logprobs":null,"finish_reason":null,"token_ids":null}'
        evs = ['{"index":%d,"delta":%s,"logprobs":null,"finish_reason":null}' % (i, self.role_delta())]
        items = self.items(i, answer)
        for g in range(0, len(items), self.step):
            group = items[g:g + self.step]
            content = "".join(t for kind, t in group if kind == "content")
            reasoning = "".join(t for kind, t in group if kind == "reasoning")
            calls = [t for kind, t in group if kind == "call"]
            d = self.delta(content if any(k == "content" for k, _ in group) else None,
                           reasoning if any(k == "reasoning" for k, _ in group) else None, calls)
            evs.append('{"index":%d,"delta":%s%s' % (i, d, tail))
        stop = 200012 if answer.tool_calls else 200002  # <|call|> / <|return|>
        evs.append('{"index":%d,"delta":%s,"logprobs":null,"finish_reason":%s,"stop_reason":%d,"token_ids":null}'
                   % (i, self.delta(), js(answer.finish_reason()), stop))
        return evs

    def events(self, answers, usage=True):
        answers = self.answers(answers)
        out = [self._chunk(c) for c in interleave([self.choice_events(i, a) for i, a in enumerate(answers)])]
        if usage:
            out.append(sse('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s","choices":[],'
                           '"usage":{"prompt_tokens":96,"total_tokens":150,"completion_tokens":54}}'
                           % (self.chat_id, CREATED, self.model)))
        out.append(DONE)
        return out

    def body_reasoning(self, text):
        return ',"reasoning":%s' % (js(text) if text else "null")

    def body_args(self, args_text):
        try:
            return json.dumps(json.loads(args_text))
        except ValueError:
            return args_text

    def message(self, i, answer):
        calls = ",".join('{"id":"%s","type":"function","function":{"name":%s,"arguments":%s}}'
                         % (self.call_id(i, k), js(c.name), js(self.body_args(c.arguments)))
                         for k, c in enumerate(answer.tool_calls))
        return ('{"role":"assistant","content":%s,"refusal":null,"annotations":null,"audio":null,'
                '"function_call":null,"tool_calls":[%s]%s}'
                % (js(answer.content) if answer.content else "null", calls, self.body_reasoning(answer.reasoning)))

    def body(self, answers):
        answers = self.answers(answers)
        choices = ",".join('{"index":%d,"message":%s,"logprobs":null,"finish_reason":%s,"stop_reason":null,'
                           '"token_ids":null}' % (i, self.message(i, a), js(a.finish_reason()))
                           for i, a in enumerate(answers))
        return ('{"id":"%s","object":"chat.completion","created":%d,"model":"%s","choices":[%s],'
                '"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":96,"total_tokens":150,'
                '"completion_tokens":54,"prompt_tokens_details":null},"prompt_logprobs":null,'
                '"prompt_token_ids":null,"kv_transfer_params":null}'
                % (self.chat_id, CREATED, self.model, choices)).encode("utf-8")


class VllmMirror(Vllm):
    """vLLM ~0.11.1 to ~0.15 (PR #27752, Nov 2025, until PR #33402): DeltaMessage's
    after-validator copies reasoning into reasoning_content, and exclude_unset then dumps
    it on every delta: {"reasoning":"x","reasoning_content":"x"}, and
    "reasoning_content":null beside content, tool calls and the finish, in DeltaMessage's
    field order (derived from
    engine/protocol.py @ 040a2cc2, see NOTES.md 1.2). The body has both members."""

    name = "vllm_mirror"
    reasoning_fields = ("reasoning", "reasoning_content")

    def reasoning_members(self, text):
        if text is None:
            return ['"reasoning_content":null']
        return ['"reasoning":%s' % js(text), '"reasoning_content":%s' % js(text)]

    def role_delta(self):
        return '{"role":"assistant","content":"","reasoning_content":null}'

    def body_reasoning(self, text):
        v = js(text) if text else "null"
        return ',"reasoning":%s,"reasoning_content":%s' % (v, v)


class Vllm010(Vllm):
    """vLLM 0.10.x (entrypoints/openai/serving_chat.py @ 99c5632f, token by token):
    analysis goes to reasoning_content (PR #25514's 0.10.2 capture:
    {"index":0,"delta":{"reasoning_content":" need"},"logprobs":null,"finish_reason":null,
    "token_ids":null})."""

    name = "vllm_010"
    reasoning_fields = ("reasoning_content",)

    def reasoning_members(self, text):
        return ['"reasoning_content":%s' % js(text)] if text is not None else []

    def body_reasoning(self, text):
        return ',"reasoning_content":%s' % (js(text) if text else "null")


class Ollama(Dialect):
    """Ollama's OpenAI layer. openai/openai.go @ 634c4166 (ChunkChoice/Message structs:
    every delta has "role":"assistant" and "content", "" when empty; reasoning omitempty;
    tool calls {id,index,type,function}), middleware/openai.go @ 077a50ba (ChatWriter:
    "data: %s\\n\\n", the usage chunk is a copy of the last with "choices":[], [DONE]; ids
    chatcmpl-<rand 999>), server/routes.go toolCallId (call_ + 8 [a-z0-9]),
    harmony/harmonyparser.go @ 03dd14ae (calls are held until the end and come whole in
    the last chunk, with finish_reason "tool_calls"). Go's json escapes <, >, &. No n: one
    choice, index 0. Bodies are written with json.NewEncoder: a trailing newline."""

    name = "ollama"
    supports_n = False
    reasoning_fields = ("reasoning",)
    model = "gpt-oss:20b"
    chat_id = "chatcmpl-412"

    def call_id(self, k):
        return "call_x7k2m9q%d" % k

    def _calls(self, answer):
        return ",".join('{"id":"%s","index":%d,"type":"function","function":{"name":%s,"arguments":%s}}'
                        % (self.call_id(k), k, js_go(c.name), js_go(compact(c.arguments)))
                        for k, c in enumerate(answer.tool_calls))

    def _chunk(self, delta, finish=None):
        return ('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s","system_fingerprint":"fp_ollama",'
                '"choices":[{"index":0,"delta":%s,"finish_reason":%s}]' % (self.chat_id, CREATED, self.model, delta,
                                                                            js(finish) if finish else "null"))

    def events(self, answers, usage=True):
        a = self.answers(answers)[0]
        docs = []
        if a.reasoning:
            docs += [self._chunk('{"role":"assistant","content":"","reasoning":%s}' % js_go(t)) for t in tokens(a.reasoning)]
        if a.content:
            docs += [self._chunk('{"role":"assistant","content":%s}' % js_go(t)) for t in tokens(a.content)]
        if a.tool_calls:
            last = self._chunk('{"role":"assistant","content":"","tool_calls":[%s]}' % self._calls(a), a.finish_reason())
        else:
            last = self._chunk('{"role":"assistant","content":""}', a.finish_reason())
        docs.append(last)
        out = [sse(d + "}") for d in docs]
        if usage:
            out.append(sse('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s",'
                           '"system_fingerprint":"fp_ollama","choices":[],'
                           '"usage":{"prompt_tokens":80,"completion_tokens":40,"total_tokens":120}}'
                           % (self.chat_id, CREATED, self.model)))
        out.append(DONE)
        return out

    def body(self, answers):
        a = self.answers(answers)[0]
        m = '{"role":"assistant","content":%s' % js_go(a.content or "")
        if a.reasoning:
            m += ',"reasoning":%s' % js_go(a.reasoning)
        if a.tool_calls:
            m += ',"tool_calls":[%s]' % self._calls(a)
        m += "}"
        return ('{"id":"%s","object":"chat.completion","created":%d,"model":"%s","system_fingerprint":"fp_ollama",'
                '"choices":[{"index":0,"message":%s,"finish_reason":%s}],'
                '"usage":{"prompt_tokens":80,"completion_tokens":40,"total_tokens":120}}\n'
                % (self.chat_id, CREATED, self.model, m, js(a.finish_reason()))).encode("utf-8")


class LmStudio(Dialect):
    """LM Studio 0.3.23+ (closed source). lmstudio.ai/docs/app/api-changelog, 0.3.23: "For
    gpt-oss ... reasoning content moves out of message.content and into
    choices.message.reasoning (non-streaming) and choices.delta.reasoning (streaming)";
    0.3.15: finish_reason "tool_calls"; 0.3.17: arguments streamed as generated; 0.3.18:
    stream_options.include_usage. The envelope follows the captures in
    lmstudio-bug-tracker #378 and #723 (id chatcmpl-<19 alnum>, system_fingerprint = the
    model, "role":"assistant" in every delta, "logprobs":null) and call ids of digits
    (#830). The rest (finish and usage chunks, the body) is derived from the OpenAI shape.
    No n: one choice."""

    name = "lmstudio"
    supports_n = False
    reasoning_fields = ("reasoning",)
    model = "openai/gpt-oss-20b"
    chat_id = "chatcmpl-evf5zdsvuaonsed2l41gw"

    def _chunk(self, delta, finish=None):
        return sse('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s","system_fingerprint":"%s",'
                   '"choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}'
                   % (self.chat_id, CREATED, self.model, self.model, delta, js(finish) if finish else "null"))

    def deltas(self, a):
        out = ['{"role":"assistant","reasoning":%s}' % js(t) for t in tokens(a.reasoning)] if a.reasoning else []
        out += ['{"role":"assistant","content":%s}' % js(t) for t in tokens(a.content)] if a.content else []
        for k, c in enumerate(a.tool_calls):
            out.append('{"role":"assistant","tool_calls":[{"index":%d,"id":"19362932%d","type":"function",'
                       '"function":{"name":%s,"arguments":""}}]}' % (k, k, js(c.name)))
            out += ['{"role":"assistant","tool_calls":[{"index":%d,"function":{"arguments":%s}}]}' % (k, js(p))
                    for p in arg_pieces(c.arguments) if p]
        return out

    def usage_event(self):
        return sse('{"id":"%s","object":"chat.completion.chunk","created":%d,"model":"%s",'
                   '"system_fingerprint":"%s","choices":[],'
                   '"usage":{"prompt_tokens":88,"completion_tokens":41,"total_tokens":129}}'
                   % (self.chat_id, CREATED, self.model, self.model))

    def finish(self, a):
        return a.finish_reason()

    def events(self, answers, usage=True):
        a = self.answers(answers)[0]
        out = [self._chunk(d) for d in self.deltas(a)]
        out.append(self._chunk("{}", self.finish(a)))
        if usage:
            out.append(self.usage_event())
        out.append(DONE)
        return out

    def message(self, a):
        m = '{"role":"assistant","content":%s' % js(a.content or "")
        if a.reasoning:
            m += ',"reasoning":%s' % js(a.reasoning)
        m += ',"tool_calls":[%s]}' % ",".join(
            '{"id":"19362932%d","type":"function","function":{"name":%s,"arguments":%s}}'
            % (k, js(c.name), js(c.arguments)) for k, c in enumerate(a.tool_calls))
        return m

    def body(self, answers):
        a = self.answers(answers)[0]
        return ('{"id":"%s","object":"chat.completion","created":%d,"model":"%s","choices":[{"index":0,'
                '"message":%s,"logprobs":null,"finish_reason":%s}],'
                '"usage":{"prompt_tokens":88,"completion_tokens":41,"total_tokens":129},"stats":{},'
                '"system_fingerprint":"%s"}'
                % (self.chat_id, CREATED, self.model, self.message(a), js(a.finish_reason()), self.model)).encode("utf-8")


class HarmonyLmStudio(LmStudio):
    """LM Studio before 0.3.23 (the seed's pair): harmony markers left in content,
    "<|channel|>analysis<|message|>A<|end|><|start|>assistant<|channel|>final<|message|>F"
    (api-changelog 0.3.23 describes the change; DESIGN.md row 1). A tool call stays text
    in content too. Envelope as lmstudio."""

    name = "harmony"
    reasoning_fields = ()
    harmony_in_content = True

    def harmony(self, answer):
        return harmony_text(answer)

    def deltas(self, a):
        return ['{"role":"assistant","content":%s}' % js(t) for t in tokens(self.harmony(a))]

    def finish(self, a):
        return a.finish or "stop"  # the call is text: nothing was parsed

    def body(self, answers):
        a = self.answers(answers)[0]
        return LmStudio.body(self, [Answer(None, self.harmony(a), (), self.finish(a))])


class Mlx(Dialect):
    """mlx_lm.server (mlx_lm/server.py @ 0130d3b7): no harmony parser (issue #875), so the
    raw harmony is the content, one token per event; every delta carries "reasoning": ""
    and "tool_calls": [] (generate_response); Python's json.dumps with its default
    separators and ensure_ascii; ": keepalive N/M" comments during prompt processing; the
    last chunk has an empty content and finish_reason "stop" (<|return|> and <|call|> are
    end-of-sequence tokens and never reach the stream); the usage chunk, only with
    stream_options.include_usage, says "object": "chat.completion"; [DONE]. No n. The
    stream goes out on an HTTP/1.0 connection (BaseHTTPRequestHandler): close-delimited."""

    name = "mlx"
    supports_n = False
    reasoning_fields = ()
    harmony_in_content = True
    stream_framing = "close"
    model = "mlx-community/gpt-oss-20b-MXFP4-Q8"
    chat_id = "chatcmpl-3f2a6c1e-9b7d-4e21-8f5a-0c4d2b6e8a19"
    fingerprint = "0.28.3-0.29.1-macOS-15.5-arm64-arm-64bit-applegpu_g15s"

    def __init__(self, keepalive=True):
        self.keepalive = keepalive

    def harmony(self, answer):
        return harmony_text(answer)

    def _doc(self, obj, choices, usage=None):
        d = {"id": self.chat_id, "system_fingerprint": self.fingerprint, "object": obj, "model": self.model,
             "created": CREATED, "choices": choices}
        if usage:
            d["usage"] = usage
        return json.dumps(d)

    def finish(self, answer):
        return answer.finish or "stop"  # nothing parses the call

    def _delta_chunk(self, text, finish=None):
        return sse(self._doc("chat.completion.chunk", [{"index": 0, "finish_reason": finish, "delta": {
            "role": "assistant", "content": text, "reasoning": "", "tool_calls": []}}]))

    USAGE = {"prompt_tokens": 1024, "completion_tokens": 57, "total_tokens": 1081,
             "prompt_tokens_details": {"cached_tokens": 0}}

    def events(self, answers, usage=True):
        a = self.answers(answers)[0]
        out = [b": keepalive 512/1024\n\n", b": keepalive 1024/1024\n\n"] if self.keepalive else []
        out += [self._delta_chunk(t) for t in tokens(self.harmony(a))]
        out.append(self._delta_chunk("", self.finish(a)))
        if usage:
            out.append(sse(self._doc("chat.completion", [], self.USAGE)))
        out.append(DONE)
        return out

    def body(self, answers):
        a = self.answers(answers)[0]
        return self._doc("chat.completion", [{"index": 0, "finish_reason": self.finish(a), "message": {
            "role": "assistant", "content": self.harmony(a), "reasoning": "", "tool_calls": []}}],
            self.USAGE).encode("utf-8")


DIALECTS = {d.name: d for d in (LlamaCpp(), LlamaCppNone(), Vllm(), VllmMirror(), Vllm010(), Ollama(),
                                LmStudio(), HarmonyLmStudio(), Mlx())}
# variants a test can pass to chat_handler() instead of a name
VARIANTS = {
    "llamacpp_timings_every": LlamaCpp(timings="every"),
    "llamacpp_peg": LlamaCpp(first_args="{", empty_content="empty"),
    "vllm_steps": Vllm(step=3),
    "vllm_mirror_steps": VllmMirror(step=3),
    "mlx_no_keepalive": Mlx(keepalive=False),
}


# ----------------------------------------------------------------------------- MockUpstream handlers


def _request_json(req):
    try:
        doc = json.loads((req.body or b"").decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def dialect(name):
    """A Dialect by name (DIALECTS or VARIANTS), or the Dialect given."""
    if not isinstance(name, str):
        return name
    return DIALECTS[name] if name in DIALECTS else VARIANTS[name]


def chat_handler(name, answers=None, script=None, usage=None, framing=None, cuts=None, **handler_kw):
    """A MockUpstream handler speaking a dialect (a name in DIALECTS or VARIANTS, or a
    Dialect): a stream when the request has "stream": true, else a JSON body. usage None:
    as the server would for the request's stream_options; True/False: always/never.
    framing: the stream's framing (default: the server's). cuts: write the stream not one
    event per write but cut at these byte offsets of the whole stream (a list), or every
    `cuts` bytes (an int), so that events, lines, UTF-8 sequences and escapes straddle TCP
    writes. Other keywords go to chatmock.sse_handler (delay, wire_pieces, handshake, ...).
    handler.script.requests holds what it received."""
    d = dialect(name)
    answers = list(answers) if answers is not None else [Answer()]
    from chatmock import Script, cut
    script = script if script is not None else Script()

    def handler(conn, req):
        doc = _request_json(req)
        if doc.get("stream") is True:
            u = d.wants_usage(doc) if usage is None else usage
            events = d.events(answers, usage=u)
            kw = dict(handler_kw)
            if cuts is not None:
                whole = b"".join(events)
                offsets = list(range(cuts, len(whole), cuts)) if isinstance(cuts, int) else cuts
                kw["pieces"] = cut(whole, offsets)
            h = sse_handler(events, script=script, framing=framing or d.stream_framing, **kw)
        else:
            h = json_handler(d.body(answers), script=script)
        h(conn, req)

    handler.script = script
    handler.dialect = d
    return handler


# ----------------------------------------------------------------------------- reading them back


class Choice:
    """What a client gets for one choice index."""

    def __init__(self):
        self.content = None
        self.fields = {}        # reasoning member -> text
        self.tool_calls = {}    # index -> {"id", "type", "name", "arguments"}
        self.finish_reason = None
        self.roles = []

    def text(self, field):
        return self.fields.get(field, "")

    def calls(self):
        return [self.tool_calls[k] for k in sorted(self.tool_calls)]


REASONING_MEMBERS = ("reasoning_content", "reasoning", "thinking")


def _add(ch, d, stream):
    if "role" in d:
        ch.roles.append(d["role"])
    if isinstance(d.get("content"), str):
        ch.content = (ch.content or "") + d["content"] if stream else d["content"]
    for f in REASONING_MEMBERS:
        if isinstance(d.get(f), str):
            ch.fields[f] = ch.fields.get(f, "") + d[f]
    for pos, tc in enumerate(d.get("tool_calls") or []):
        k = tc.get("index", pos)
        t = ch.tool_calls.setdefault(k, {"id": None, "type": None, "name": "", "arguments": ""})
        if tc.get("id"):
            t["id"] = tc["id"]
        if tc.get("type"):
            t["type"] = tc["type"]
        fn = tc.get("function") or {}
        if fn.get("name"):
            t["name"] = fn["name"]
        if isinstance(fn.get("arguments"), str):
            t["arguments"] += fn["arguments"]


def collect_stream(data):
    """SSE bytes (or a list of event bytes) -> ({index: Choice}, info). info has 'done'
    (saw [DONE]), 'usage' (the usage object or None), 'events' (parsed Events), 'rest'
    (bytes after the last complete event)."""
    if isinstance(data, (list, tuple)):
        data = b"".join(data)
    events, rest = parse_sse(data)
    choices, info = {}, {"done": False, "usage": None, "events": events, "rest": rest}
    for ev in events:
        if ev.is_done:
            info["done"] = True
            continue
        doc = ev.json()
        if not isinstance(doc, dict):
            continue
        if doc.get("usage"):
            info["usage"] = doc["usage"]
        for pos, c in enumerate(doc.get("choices") or []):
            ch = choices.setdefault(c.get("index", pos), Choice())
            if c.get("finish_reason"):
                ch.finish_reason = c["finish_reason"]
            if isinstance(c.get("delta"), dict):
                _add(ch, c["delta"], True)
    return choices, info


def collect_body(data):
    """A JSON body -> {index: Choice}."""
    doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    choices = {}
    for pos, c in enumerate(doc.get("choices") or []):
        ch = choices.setdefault(c.get("index", pos), Choice())
        ch.finish_reason = c.get("finish_reason")
        if isinstance(c.get("message"), dict):
            _add(ch, c["message"], False)
    return choices


def reasoning_of(choice, dialect):
    """The reasoning text a dialect carried in its field(s) for a collected choice (the
    first of its fields that is there)."""
    for f in dialect.reasoning_fields:
        if f in choice.fields:
            return choice.fields[f]
    return ""


HARMONY_RX = re.compile(r"<\|[a-z]+\|>")
