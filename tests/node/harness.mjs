// What the node tests share: the relay binary, the openai SDK, and starting
// and stopping relays on loopback (each with a deadline). Every test module
// imports this instead of carrying its own copy.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SOURCE_DIR = process.env.RELAY_SOURCE_DIR || path.resolve(HERE, '..', '..');

function findRelay() {
  if (process.env.RELAY_BIN) return process.env.RELAY_BIN;
  for (const d of ['build', 'build-it', 'build-debug']) {
    const p = path.join(SOURCE_DIR, d, 'oss-relay');
    if (existsSync(p)) return p;
  }
  return null;
}

export const RELAY_BIN = findRelay();
export const SKIP = RELAY_BIN && existsSync(RELAY_BIN) ? false : 'oss-relay binary not found (set RELAY_BIN)';

let OpenAI = null;
let importError = null;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  importError = e;
}
// A missing SDK is a setup error, not a reason to skip: say how to fix it.
if (!OpenAI) {
  throw new Error(`cannot import the "openai" package (${importError && importError.message}); ` +
                  `run "npm ci" in ${HERE} first`);
}
export { OpenAI };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const relays = [];

// A relay with the stock script in front of 127.0.0.1:upstreamPort; the
// environment is cleaned of the relay's own variables, then extraEnv applies.
export async function startRelay(upstreamPort, extraEnv = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(RELAY_|LISTEN_|UPSTREAM_|LOG_LEVEL|OPEN_|CLOSE_)/.test(k)) env[k] = v;
  }
  const port = await freePort();
  Object.assign(env, { LISTEN_ADDR: '127.0.0.1', LISTEN_PORT: String(port), UPSTREAM_HOST: '127.0.0.1',
                       UPSTREAM_PORT: String(upstreamPort), WORKERS: '1' }, extraEnv);
  const child = spawn(RELAY_BIN, [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const relay = { child, port, stderr: '' };
  relays.push(relay);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`relay not listening after 10 s:\n${relay.stderr}`)), 10000);
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d) => {
      relay.stderr += d;
      if (relay.stderr.includes('listening on')) { clearTimeout(timer); resolve(); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`relay exited ${code}:\n${relay.stderr}`)); });
  });
  return relay;
}

export function stopRelay(relay) {
  return new Promise((resolve) => {
    if (relay.child.exitCode !== null || relay.child.signalCode !== null) return resolve();
    const t = setTimeout(resolve, 3000);
    relay.child.once('exit', () => { clearTimeout(t); resolve(); });
    relay.child.kill('SIGKILL');
  });
}

// The official SDK pointed at a relay.
export function sdk(relay) {
  return new OpenAI({ baseURL: `http://127.0.0.1:${relay.port}/v1`, apiKey: 'sk-test', timeout: 10000, maxRetries: 0 });
}
