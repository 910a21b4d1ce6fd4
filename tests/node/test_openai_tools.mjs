// The openai npm SDK against oss-relay in front of servers that leave gpt-oss harmony in
// content (mlx_lm.server, llama-server without its parser, LM Studio before 0.3.23) and
// servers that send reasoning in a member of their own (issues 10 and 11).
//
// The mock upstream speaks raw harmony as mlx_lm.server writes it (every delta with
// "reasoning": "" and "tool_calls": [], one token per event, no <|call|> at the end): the
// relay must turn the call into tool_calls that the SDK's helpers accept:
//   * chat.completions.stream(...).finalChatCompletion() and create() (streamed or not)
//     give the call with its arguments (parsed_arguments for a strict tool);
//   * runTools() completes a two-step loop: the tool's result goes back with the relay's
//     call id, and the final answer comes;
//   * the stream helper reads the reasoning of each dialect (llama.cpp reasoning_content,
//     vLLM reasoning and its mirrored pair, Ollama's "content":"" beside reasoning, harmony
//     in content) as <think> tags in tags mode and as reasoning_content in field mode.
//
// Run: cd tests/node && npm ci && RELAY_BIN=/path/to/oss-relay node --test test_openai_tools.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { SKIP, relays, sdk, startRelay as startRelayOn, stopRelay } from './harness.mjs';

// ------------------------------------------------------------------ the upstream

const A = 'The user wants the weather in Paris & "now" (2 < 3); call get_weather \u{1F324}.';
const A2 = 'The tool said 18 \u00b0C; answer briefly.';
const F = 'It is 18 \u00b0C in Paris.';
const ARGS = '{"location":"Paris","unit":"\u00b0C"}';
const CALL_TEXT = `<|channel|>analysis<|message|>${A}<|end|><|start|>assistant<|channel|>commentary ` +
                  `to=functions.get_weather <|constrain|>json<|message|>${ARGS}`;
const ANSWER_TEXT = `<|channel|>analysis<|message|>${A2}<|end|><|start|>assistant<|channel|>final<|message|>${F}`;

function tokens(text) {
  const out = text.match(/<\|[a-z]+\|>|\s?[^\s<]+|\s+|</gu) || [];
  assert.equal(out.join(''), text);
  return out;
}

// mlx_lm.server's chunks: Python's json.dumps spacing and ASCII escapes, "reasoning": ""
// and "tool_calls": [] in every delta, no role chunk, finish "stop", [DONE].
function pyjson(v) {
  if (Array.isArray(v)) return `[${v.map(pyjson).join(', ')}]`;
  if (v && typeof v === 'object') return `{${Object.entries(v).map(([k, x]) => `${pyjson(k)}: ${pyjson(x)}`).join(', ')}}`;
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/[\u007f-\uffff]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  return JSON.stringify(v);
}
const MLX_ID = 'chatcmpl-3f2a6c1e-9b7d-4e21-8f5a-0c4d2b6e8a19';
function mlxChunk(content, finish = null) {
  return pyjson({ id: MLX_ID, system_fingerprint: '0.28.3', object: 'chat.completion.chunk', model: 'gpt-oss-20b',
                  created: 1755000000, choices: [{ index: 0, finish_reason: finish,
                    delta: { role: 'assistant', content, reasoning: '', tool_calls: [] } }] });
}

// Reasoning dialects (research/dialects/NOTES.md): chunks for reasoning A then answer F.
const HEAD = { id: 'chatcmpl-d1', object: 'chat.completion.chunk', created: 1755000000, model: 'gpt-oss-20b' };
const ch = (delta, finish = null) => JSON.stringify({ ...HEAD, choices: [{ index: 0, delta, finish_reason: finish }] });
const DIALECTS = {
  'llama.cpp reasoning_content': () => [ch({ role: 'assistant', content: null }),
    ...tokens(A).map((t) => ch({ reasoning_content: t })), ...tokens(F).map((t) => ch({ content: t })), ch({}, 'stop')],
  'vLLM reasoning': () => [ch({ role: 'assistant', content: '' }),
    ...tokens(A).map((t) => ch({ reasoning: t })), ...tokens(F).map((t) => ch({ content: t })), ch({}, 'stop')],
  'vLLM mirrored pair': () => [ch({ role: 'assistant', content: '', reasoning_content: null }),
    ...tokens(A).map((t) => ch({ reasoning: t, reasoning_content: t })),
    ...tokens(F).map((t) => ch({ content: t, reasoning_content: null })), ch({ reasoning_content: null }, 'stop')],
  'Ollama content "" beside reasoning': () => [
    ...tokens(A).map((t) => ch({ role: 'assistant', content: '', reasoning: t })),
    ...tokens(F).map((t) => ch({ role: 'assistant', content: t })), ch({ role: 'assistant', content: '' }, 'stop')],
  'harmony in content (mlx)': () => [...tokens(ANSWER_TEXT.replace(A2, A)).map((t) => mlxChunk(t)), mlxChunk('', 'stop')],
};

const upstream = { dialect: null, requests: [] };
let upstreamServer;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function harmonyTurn(doc) {
  const first = !(doc.messages || []).some((m) => m.role === 'tool');
  return first ? CALL_TEXT : ANSWER_TEXT;
}

function startUpstream() {
  upstreamServer = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { raw += d; });
    req.on('end', async () => {
      upstream.requests.push(raw);
      let doc = {};
      try { doc = JSON.parse(raw); } catch { /* not JSON */ }
      if (!doc.stream) {
        const b = Buffer.from(pyjson({ id: MLX_ID, system_fingerprint: '0.28.3', object: 'chat.completion',
          model: 'gpt-oss-20b', created: 1755000000, choices: [{ index: 0, finish_reason: 'stop',
            message: { role: 'assistant', content: harmonyTurn(doc), reasoning: '', tool_calls: [] } }],
          usage: { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 } }));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': b.length });
        res.end(b);
        return;
      }
      const evs = upstream.dialect ? DIALECTS[upstream.dialect]()
        : [...tokens(harmonyTurn(doc)).map((t) => mlxChunk(t)), mlxChunk('', 'stop')];
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.flushHeaders();
      res.write(': keepalive 1024/1024\n\n');
      for (const ev of [...evs, '[DONE]']) {
        if (res.destroyed) return;
        res.write(`data: ${ev}\n\n`);
        await sleep(1);
      }
      res.end();
    });
  });
  return new Promise((resolve) => upstreamServer.listen(0, '127.0.0.1', () => resolve(upstreamServer.address().port)));
}

// ------------------------------------------------------------------ the relay

const startRelay = (extraEnv = {}) => startRelayOn(upstreamServer.address().port, extraEnv);

async function withRelay(env, dialect, fn) {
  upstream.dialect = dialect;
  upstream.requests.length = 0;
  const relay = await startRelay(env);
  try {
    return await fn(sdk(relay), relay);
  } catch (e) {
    e.message += `\n--- relay stderr ---\n${relay.stderr}`;
    throw e;
  } finally {
    await stopRelay(relay);
  }
}

const PARAMS = {
  type: 'object', additionalProperties: false,
  properties: { location: { type: 'string' }, unit: { type: 'string' } }, required: ['location', 'unit'],
};
const STRICT_TOOL = { type: 'function', function: { name: 'get_weather', description: 'The weather in a city.', strict: true,
                                                     parameters: PARAMS } };
const REQUEST = { model: 'gpt-oss-20b', messages: [{ role: 'user', content: 'What is the weather in Paris?' }] };

before(async () => { if (!SKIP) await startUpstream(); });
after(async () => {
  await Promise.all(relays.map(stopRelay));
  if (upstreamServer) await new Promise((r) => { upstreamServer.closeAllConnections?.(); upstreamServer.close(() => r()); });
});

const T = { timeout: 20000, skip: SKIP };

test('stream().finalChatCompletion(): the harmony call is a tool call with parsed arguments', T, async () => {
  await withRelay({}, null, async (client) => {
    const stream = client.chat.completions.stream({ ...REQUEST, tools: [STRICT_TOOL] });
    const deltas = [];
    let done = null;
    stream.on('tool_calls.function.arguments.delta', (e) => deltas.push(e.arguments_delta));
    stream.on('tool_calls.function.arguments.done', (e) => { done = e; });
    const c = await stream.finalChatCompletion();
    const m = c.choices[0].message;
    assert.equal(c.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, `<think>${A}</think>`);
    assert.equal(m.tool_calls.length, 1);
    const call = m.tool_calls[0];
    assert.match(call.id, /^call_[0-9A-Za-z]{24}$/);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    assert.equal(call.function.arguments, ARGS);
    assert.deepEqual(call.function.parsed_arguments, { location: 'Paris', unit: '\u00b0C' });
    assert.ok(deltas.length > 1, 'the arguments came in pieces');
    assert.equal(deltas.join(''), ARGS);
    assert.deepEqual(done.parsed_arguments, { location: 'Paris', unit: '\u00b0C' });
  });
});

test('create(): the call in message.tool_calls, streamed and not', T, async () => {
  await withRelay({}, null, async (client) => {
    const c = await client.chat.completions.create({ ...REQUEST, tools: [STRICT_TOOL] });
    const m = c.choices[0].message;
    assert.equal(c.choices[0].finish_reason, 'tool_calls');
    assert.equal(m.content, `<think>${A}</think>`);
    assert.equal(m.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(m.tool_calls[0].function.arguments), { location: 'Paris', unit: '\u00b0C' });
    assert.match(m.tool_calls[0].id, /^call_/);
    const s = await client.chat.completions.create({ ...REQUEST, tools: [STRICT_TOOL], stream: true });
    let args = '';
    let name = null;
    let finish = null;
    for await (const chunk of s) {
      for (const choice of chunk.choices) {
        for (const tc of choice.delta.tool_calls || []) {
          if (tc.function?.name) name = tc.function.name;
          args += tc.function?.arguments || '';
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
    assert.equal(name, 'get_weather');
    assert.deepEqual(JSON.parse(args), { location: 'Paris', unit: '\u00b0C' });
    assert.equal(finish, 'tool_calls');
  });
});

test('field mode: reasoning in reasoning_content, content empty, the call parsed', T, async () => {
  await withRelay({ RELAY_MODE: 'field' }, null, async (client) => {
    const stream = client.chat.completions.stream({ ...REQUEST, tools: [STRICT_TOOL] });
    let reasoning = '';
    stream.on('chunk', (c) => { reasoning += c.choices[0]?.delta?.reasoning_content || ''; });
    const c = await stream.finalChatCompletion();
    assert.equal(reasoning, A);
    assert.equal(c.choices[0].message.content, null);
    assert.deepEqual(c.choices[0].message.tool_calls[0].function.parsed_arguments, { location: 'Paris', unit: '\u00b0C' });
  });
});

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city.', parameters: PARAMS,
    parse: JSON.parse,
    function: (args) => ({ location: args.location, temp: 18 }),
  },
};

for (const stream of [true, false]) {
  test(`runTools(stream: ${stream}) completes a two-step loop over raw harmony`, T, async () => {
    await withRelay({}, null, async (client) => {
      const runner = client.chat.completions.runTools({ ...REQUEST, stream, tools: [WEATHER] });
      const content = await runner.finalContent();
      assert.equal(content, `<think>${A2}</think>${F}`);
      assert.equal(upstream.requests.length, 2);
      const second = JSON.parse(upstream.requests[1]);
      const assistant = second.messages.find((x) => x.role === 'assistant');
      const tool = second.messages.find((x) => x.role === 'tool');
      assert.match(assistant.tool_calls[0].id, /^call_[0-9A-Za-z]{24}$/);
      assert.equal(tool.tool_call_id, assistant.tool_calls[0].id, 'the result answers the relay\'s call id');
      assert.deepEqual(JSON.parse(tool.content), { location: 'Paris', temp: 18 });
      assert.equal(assistant.tool_calls[0].function.arguments, ARGS);
      // history: the loop's reasoning goes back in reasoning_content, not as tags
      assert.equal(assistant.reasoning_content, A);
      assert.equal(assistant.content, '');
    });
  });
}

for (const dialect of Object.keys(DIALECTS)) {
  test(`the stream helper reads reasoning from ${dialect}`, T, async () => {
    await withRelay({}, dialect, async (client) => {
      const c = await client.chat.completions.stream(REQUEST).finalChatCompletion();
      assert.equal(c.choices[0].message.content, `<think>${A}</think>${F}`);
      assert.equal(c.choices[0].message.reasoning_content, undefined);
      assert.equal(c.choices[0].message.reasoning, undefined);
    });
    await withRelay({ RELAY_MODE: 'field' }, dialect, async (client) => {
      const stream = client.chat.completions.stream(REQUEST);
      let reasoning = '';
      stream.on('chunk', (ck) => {
        const d = ck.choices[0]?.delta || {};
        reasoning += d.reasoning_content || '';
        assert.equal(d.reasoning, undefined, 'renamed, never doubled');
      });
      const c = await stream.finalChatCompletion();
      assert.equal(reasoning, A);
      assert.equal(c.choices[0].message.content, F);
    });
  });
}
