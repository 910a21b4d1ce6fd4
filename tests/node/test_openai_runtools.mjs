// The openai npm SDK's runTools() loop through oss-relay (issue 10, request side).
//
// runTools() replays the assistant message of each call with toRequestMessage()
// (lib/AbstractChatCompletionRunner.ts), which keeps role, content and tool_calls only:
// in tags mode the model's reasoning comes back as <think>…</think> in content. The
// stock script must hand it to the upstream in reasoning_content (RELAY_HISTORY_FIELD)
// with content "", so that llama.cpp's gpt-oss template renders it as the analysis
// before the call (and does not raise on content and thinking together).
//
// The upstream: a first answer with reasoning and a parsed tool call, then, once the
// tool result is there, a final answer. Two forms of the first answer's reasoning:
// gpt-oss harmony markers that the relay rewrites to <think> tags (DESIGN.md's LM Studio
// row, with the call already parsed into tool_calls) and <think> tags the upstream wrote
// itself (a Qwen3-style template on a server that leaves them in content).
//
// Run: cd tests/node && npm ci && RELAY_BIN=/path/to/oss-relay node --test test_openai_runtools.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { relays, SKIP, sdk, sleep, startRelay, stopRelay } from './harness.mjs';

// ------------------------------------------------------------------ the upstream

const A = 'The user wants the weather in Paris & "now" (2 < 3); call get_weather \u{1F324}.';
const F = 'It is 18 \u00b0C in Paris.';
const HARMONY = `<|channel|>analysis<|message|>${A}<|end|><|start|>assistant<|channel|>final<|message|>`;
const THINK = `<think>${A}</think>`;
const CALL_ID = 'Qb3kV9sX1mZ8pL2wR7tY4nC6hJ0fD5gA';
const ARGS = '{"location":"Paris"}';

function tokens(text) {
  const out = text.match(/<\|[a-z]+\|>|\s?[^\s<]+|\s+|</gu) || [];
  assert.equal(out.join(''), text);
  return out;
}

const HEAD = { id: 'chatcmpl-rt1', object: 'chat.completion.chunk', created: 1755000000, model: 'openai/gpt-oss-20b' };
const chunk = (delta, finish = null) => JSON.stringify({ ...HEAD, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });

// first turn: reasoning text in content, then the call; second turn: the answer
function streamEvents(first, text) {
  const evs = [chunk({ role: 'assistant', content: '' })];
  for (const t of tokens(text)) evs.push(chunk({ content: t }));
  if (first) {
    evs.push(chunk({ tool_calls: [{ index: 0, id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: '' } }] }));
    for (const p of ['{"loc', 'ation":', '"Paris"}']) evs.push(chunk({ tool_calls: [{ index: 0, function: { arguments: p } }] }));
  }
  evs.push(chunk({}, first ? 'tool_calls' : 'stop'));
  evs.push('[DONE]');
  return evs.map((d) => `data: ${d}\n\n`);
}

function body(first, text) {
  const message = { role: 'assistant', content: text };
  if (first) message.tool_calls = [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: ARGS } }];
  return JSON.stringify({ id: 'chatcmpl-rt2', object: 'chat.completion', created: 1755000000, model: 'openai/gpt-oss-20b',
                          choices: [{ index: 0, message, logprobs: null, finish_reason: first ? 'tool_calls' : 'stop' }],
                          usage: { prompt_tokens: 20, completion_tokens: 10, total_tokens: 30 } });
}

const upstream = { reasoning: HARMONY, requests: [] };
let upstreamServer;

function startUpstream() {
  upstreamServer = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { raw += d; });
    req.on('end', async () => {
      upstream.requests.push(raw);
      let doc = {};
      try { doc = JSON.parse(raw); } catch { /* not JSON */ }
      const first = !(doc.messages || []).some((m) => m.role === 'tool');
      const text = first ? upstream.reasoning : F;
      if (!doc.stream) {
        const b = Buffer.from(body(first, text));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': b.length });
        res.end(b);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.flushHeaders();
      for (const ev of streamEvents(first, text)) {
        if (res.destroyed) return;
        res.write(ev);
        await sleep(1);
      }
      res.end();
    });
  });
  return new Promise((resolve) => upstreamServer.listen(0, '127.0.0.1', () => resolve(upstreamServer.address().port)));
}

// ------------------------------------------------------------------ the relay


const TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city.',
    parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] },
    parse: JSON.parse,
    function: (args) => ({ location: args.location, temp: 18 }),
  },
};

// runTools() with the given stream flag through a relay; returns the final content and
// the two requests the upstream received.
async function runLoop(env, reasoning, stream) {
  upstream.reasoning = reasoning;
  upstream.requests.length = 0;
  const relay = await startRelay(upstreamServer.address().port, env);
  try {
    const client = sdk(relay);
    const runner = client.chat.completions.runTools({
      model: 'openai/gpt-oss-20b', stream,
      messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
      tools: [TOOL],
    });
    const content = await runner.finalContent();
    return { content, requests: upstream.requests.slice() };
  } catch (e) {
    e.message += `\n--- relay stderr ---\n${relay.stderr}`;
    throw e;
  } finally {
    await stopRelay(relay);
  }
}

function assistantOf(raw) {
  const doc = JSON.parse(raw);
  const m = doc.messages.filter((x) => x.role === 'assistant');
  assert.equal(m.length, 1, raw);
  return { doc, m: m[0] };
}

before(async () => { if (!SKIP) await startUpstream(); });
after(async () => {
  await Promise.all(relays.map(stopRelay));
  if (upstreamServer) await new Promise((r) => { upstreamServer.closeAllConnections?.(); upstreamServer.close(() => r()); });
});

const T = { timeout: 20000, skip: SKIP };

for (const stream of [true, false]) {
  for (const [form, reasoning] of [['harmony rewritten by the relay', HARMONY], ['<think> tags from the upstream', THINK]]) {
    test(`runTools(stream: ${stream}), ${form}: the second request carries reasoning_content`, T, async () => {
      const { content, requests } = await runLoop({}, reasoning, stream);
      assert.equal(content, F);
      assert.equal(requests.length, 2);
      const { doc, m } = assistantOf(requests[1]);
      assert.equal(m.content, '', 'content left empty beside the moved reasoning');
      assert.equal(m.reasoning_content, A);
      assert.equal(m.reasoning, undefined);
      assert.equal(m.tool_calls[0].id, CALL_ID);
      assert.equal(m.tool_calls[0].function.arguments, ARGS);
      const tool = doc.messages.find((x) => x.role === 'tool');
      assert.equal(tool.tool_call_id, CALL_ID);
      assert.deepEqual(JSON.parse(tool.content), { location: 'Paris', temp: 18 });
      // the keys the SDK sent, in its order, with the field added last
      assert.deepEqual(Object.keys(m), ['role', 'content', 'tool_calls', 'reasoning_content']);
    });
  }
}

test('RELAY_HISTORY_FIELD=reasoning (vLLM, Ollama) and RELAY_STRIP_HISTORY=0', T, async () => {
  let { requests } = await runLoop({ RELAY_HISTORY_FIELD: 'reasoning' }, THINK, true);
  let { m } = assistantOf(requests[1]);
  assert.equal(m.reasoning, A);
  assert.equal(m.reasoning_content, undefined);
  assert.equal(m.content, '');
  ({ requests } = await runLoop({ RELAY_STRIP_HISTORY: '0' }, THINK, true));
  ({ m } = assistantOf(requests[1]));
  assert.equal(m.content, THINK, 'history hygiene off: as the SDK sent it');
  assert.equal(m.reasoning_content, undefined);
});
