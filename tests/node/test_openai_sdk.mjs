// oss-relay through the official `openai` npm SDK (node --test).
//
// A small node http server plays a gpt-oss upstream (one token per SSE event, as LM
// Studio / llama-server send them); the relay runs in front of it; the SDK, with
// baseURL pointing at the relay, must get "<think>A</think>F" (tags mode) or
// reasoning_content / reasoning (field mode) on the objects it returns, survive the
// final usage chunk with "choices": [] and raise no error.
//
// Run: cd tests/node && npm ci && RELAY_BIN=/path/to/oss-relay node --test test_*.mjs
// Without RELAY_BIN the binary is looked for in build/ under RELAY_SOURCE_DIR or the
// repository; without one the tests are skipped.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';

import { relays, SKIP, sdk, sleep, startRelay, stopRelay } from './harness.mjs';

// ------------------------------------------------------------------ the gpt-oss upstream

const A = 'The user greets me. I should reply politely & briefly (2 < 3) \u{1F914}.';
const F = 'Hello! How can I help you today? \u6771\u4eac \u{1F389}';
const LMSTUDIO = `<|channel|>analysis<|message|>${A}<|end|><|start|>assistant<|channel|>final<|message|>${F}`;
const LLAMA = `<|channel|>analysis<|message|>${A}<|start|>assistant<|channel|>final<|message|>${F}<|return|>`;
const THINK = `<think>${A}</think>${F}`;

function tokens(text) {
  const out = text.match(/<\|[a-z]+\|>|\s?[^\s<]+|\s+|</gu);
  assert.equal(out.join(''), text);
  return out;
}

const HEAD = { id: 'chatcmpl-node1', object: 'chat.completion.chunk', created: 1754000000,
               model: 'openai/gpt-oss-20b', system_fingerprint: 'fp_node' };

function chunkJson(delta, finish = null, index = 0) {
  return JSON.stringify({ ...HEAD, choices: [{ index, delta, logprobs: null, finish_reason: finish }] });
}

const USAGE = JSON.stringify({ ...HEAD, choices: [],
                               usage: { prompt_tokens: 71, completion_tokens: 44, total_tokens: 115 } });

// events for a completion: role chunk, one event per token, finish, usage, [DONE]
function streamEvents(text, { finish = 'stop', usage = true, done = true } = {}) {
  const evs = [chunkJson({ role: 'assistant', content: '' })];
  for (const t of tokens(text)) evs.push(chunkJson({ content: t }));
  if (finish) evs.push(chunkJson({}, finish));
  if (usage) evs.push(USAGE);
  if (done) evs.push('[DONE]');
  return evs.map((d) => `data: ${d}\n\n`);
}

function completionBody(text, messageExtra = '') {
  return `{"id":"chatcmpl-node2","object":"chat.completion","created":1754000000,` +
    `"model":"openai/gpt-oss-20b","choices":[{"index":0,"message":{"role":"assistant",` +
    `"content":${JSON.stringify(text)},"tool_calls":[]${messageExtra}},"logprobs":null,"finish_reason":"stop"}],` +
    `"usage":{"prompt_tokens":12,"completion_tokens":40,"total_tokens":52},` +
    `"stats":{"temperature":1.0000000000000002}}`;
}


// The mock answers by the request's "stream" flag with upstream.text (events sent as
// separate writes) or a JSON body. It records what it received.
const upstream = { text: LMSTUDIO, streamOpts: {}, messageExtra: '', requests: [] };
let upstreamServer;

function startUpstream() {
  upstreamServer = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { body += d; });
    req.on('end', async () => {
      upstream.requests.push({ method: req.method, url: req.url, headers: req.headers, body });
      let doc = {};
      try { doc = JSON.parse(body); } catch { /* not JSON */ }
      if (!doc.stream) {
        const b = Buffer.from(completionBody(upstream.text, upstream.messageExtra));
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': b.length });
        res.end(b);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.flushHeaders();
      for (const ev of streamEvents(upstream.text, upstream.streamOpts)) {
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



const REQ = { model: 'openai/gpt-oss-20b', messages: [{ role: 'user', content: 'hi' }] };

// Run fn with a relay in the given mode and upstream text; the relay is stopped after.
async function withRelay(env, text, streamOpts, fn) {
  upstream.text = text;
  upstream.streamOpts = streamOpts || {};
  upstream.messageExtra = (streamOpts && streamOpts.messageExtra) || '';
  const relay = await startRelay(upstreamServer.address().port, env);
  try {
    await fn(sdk(relay), relay);
  } catch (e) {
    e.message += `\n--- relay stderr ---\n${relay.stderr}`;
    throw e;
  } finally {
    await stopRelay(relay);
  }
}

async function collect(stream) {
  const out = { content: '', reasoning_content: '', reasoning: '', chunks: [], finish: null, usage: null };
  for await (const chunk of stream) {
    out.chunks.push(chunk);
    if (chunk.usage) out.usage = chunk.usage;
    for (const c of chunk.choices) {
      assert.equal(c.index, 0);
      if (typeof c.delta.content === 'string') out.content += c.delta.content;
      if (typeof c.delta.reasoning_content === 'string') out.reasoning_content += c.delta.reasoning_content;
      if (typeof c.delta.reasoning === 'string') out.reasoning += c.delta.reasoning;
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

// ------------------------------------------------------------------ tests

before(async () => { if (!SKIP) await startUpstream(); });
after(async () => {
  await Promise.all(relays.map(stopRelay));
  if (upstreamServer) await new Promise((r) => { upstreamServer.closeAllConnections?.(); upstreamServer.close(() => r()); });
});

const T = { timeout: 20000, skip: SKIP };

test('streaming, tags mode: <think>A</think>F and the usage chunk', T, async () => {
  await withRelay({}, LMSTUDIO, {}, async (client) => {
    const stream = await client.chat.completions.create({ ...REQ, stream: true, stream_options: { include_usage: true } });
    const got = await collect(stream);
    assert.equal(got.content, THINK);
    assert.equal(got.finish, 'stop');
    const last = got.chunks[got.chunks.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(got.usage.total_tokens, 115);
    assert.equal(got.chunks.length, tokens(LMSTUDIO).length + 3);
    assert.equal(got.chunks[3].id, 'chatcmpl-node1');
  });
});

test('streaming, llama-server form with <|return|>', T, async () => {
  await withRelay({}, LLAMA, {}, async (client) => {
    const got = await collect(await client.chat.completions.create({ ...REQ, stream: true }));
    assert.equal(got.content, THINK);
  });
});

test('non-streaming, tags mode', T, async () => {
  await withRelay({ RELAY_MODE: 'tags' }, LMSTUDIO, {}, async (client) => {
    const res = await client.chat.completions.create({ ...REQ });
    assert.equal(res.choices[0].message.content, THINK);
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.usage.total_tokens, 52);
    assert.deepEqual(res.choices[0].message.tool_calls, []);
  });
});

test('stream helper: finalChatCompletion() accumulates the rewritten text', T, async () => {
  await withRelay({}, LMSTUDIO, {}, async (client) => {
    const s = client.chat.completions.stream({ ...REQ, stream_options: { include_usage: true } });
    let deltas = '';
    s.on('content', (delta) => { deltas += delta; });
    const final = await s.finalChatCompletion();
    assert.equal(final.choices[0].message.content, THINK);
    assert.equal(deltas, THINK);
    assert.equal(final.usage.total_tokens, 115);
  });
});

test('streaming, field mode: delta.reasoning_content', T, async () => {
  await withRelay({ RELAY_MODE: 'field' }, LMSTUDIO, {}, async (client) => {
    const got = await collect(await client.chat.completions.create({ ...REQ, stream: true, stream_options: { include_usage: true } }));
    assert.equal(got.reasoning_content, A);
    assert.equal(got.content, F);
    assert.equal(got.reasoning, '');
    assert.deepEqual(got.chunks[got.chunks.length - 1].choices, []);
  });
});

test('non-streaming, field mode: message.reasoning_content', T, async () => {
  await withRelay({ RELAY_MODE: 'field' }, LLAMA, {}, async (client) => {
    const res = await client.chat.completions.create({ ...REQ });
    const msg = res.choices[0].message;
    assert.equal(msg.reasoning_content, A);
    assert.equal(msg.content, F);
    assert.equal(Object.keys(msg)[0], 'reasoning_content');
  });
});

test('non-streaming, field mode, upstream message has "reasoning_content": null (vLLM)', T, async () => {
  await withRelay({ RELAY_MODE: 'field' }, LMSTUDIO, { messageExtra: ',"reasoning_content":null' }, async (client) => {
    const res = await client.chat.completions.create({ ...REQ });
    const msg = res.choices[0].message;
    assert.equal(msg.content, F);
    assert.equal(msg.reasoning_content, A);
  });
});

test('field mode with RELAY_REASONING_FIELD=both: reasoning and reasoning_content', T, async () => {
  await withRelay({ RELAY_MODE: 'field', RELAY_REASONING_FIELD: 'both' }, LMSTUDIO, {}, async (client) => {
    const got = await collect(await client.chat.completions.create({ ...REQ, stream: true }));
    assert.equal(got.reasoning_content, A);
    assert.equal(got.reasoning, A);
    assert.equal(got.content, F);
    const res = await client.chat.completions.create({ ...REQ });
    assert.equal(res.choices[0].message.reasoning, A);
    assert.equal(res.choices[0].message.reasoning_content, A);
    assert.equal(res.choices[0].message.content, F);
  });
});

test('strip mode', T, async () => {
  await withRelay({ RELAY_MODE: 'strip' }, LMSTUDIO, {}, async (client) => {
    const got = await collect(await client.chat.completions.create({ ...REQ, stream: true }));
    assert.equal(got.content, F);
    const res = await client.chat.completions.create({ ...REQ });
    assert.equal(res.choices[0].message.content, F);
  });
});

test('stream that ends without finish_reason while "<|" is held: text still arrives', T, async () => {
  await withRelay({}, LMSTUDIO + ' <|', { finish: null, usage: false }, async (client) => {
    const got = await collect(await client.chat.completions.create({ ...REQ, stream: true }));
    assert.equal(got.content, THINK + ' <|');
  });
});

test('the upstream is asked for identity encoding', T, async () => {
  await withRelay({}, LMSTUDIO, {}, async (client) => {
    upstream.requests.length = 0;
    await collect(await client.chat.completions.create({ ...REQ, stream: true }));
    assert.equal(upstream.requests.length, 1);
    assert.equal(upstream.requests[0].headers['accept-encoding'], 'identity');
    assert.equal(upstream.requests[0].url, '/v1/chat/completions');
  });
});
