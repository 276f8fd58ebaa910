// Helpers shared by the tests in this directory (server, limits, metrics): the build to test,
// child processes in their own process groups (every one still running is SIGKILLed, with its
// group, when the test file ends), free ports, polling and plain HTTP GETs on loopback.
// Not a test file itself: `node --test` only runs *.test.mjs here.
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';

export const here = dirname(fileURLToPath(import.meta.url));
export const build = process.env.FMP4WS_BUILD || join(here, '..', '..', 'build');
export const serverBin = join(build, 'tools', 'fmp4ws-server');
export const env = { ...process.env, GST_PLUGIN_PATH: join(build, 'gst') };
const children = new Set();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Registered when a test file imports this module (each test file runs in a process of its own).
after(() => {
  for (const c of children) {
    try { process.kill(-c.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

// `cmd` in a process group of its own, with the plugins of the build; `output` collects its
// stdout and stderr, `done` resolves to { code, sig } when it exits.
export function run(cmd, args, opts = {}) {
  const c = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(c);
  c.output = '';
  c.stdout.on('data', (d) => { c.output += d; });
  c.stderr.on('data', (d) => { c.output += d; });
  c.done = new Promise((resolve) => c.on('exit', (code, sig) => { children.delete(c); resolve({ code, sig }); }));
  return c;
}

// `sig` to the process group of a child of run(); resolves when the child has exited.
export function stop(c, sig = 'SIGTERM') {
  try { process.kill(-c.pid, sig); } catch { /* gone */ }
  return c.done;
}

// Polls `pred` (maybe async) every `every` ms until it is true; fails after `ms`.
export async function waitFor(pred, ms, what, every = 50) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await sleep(every);
  }
  assert.fail(`timed out waiting for ${what}`);
}

// GET http://127.0.0.1:port/path: { status, headers, body }.
export function get(port, path, opts = {}) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, ...opts }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    }).on('error', reject);
  });
}

// GET http://127.0.0.1:port/path: the body parsed as JSON (whatever the status).
export async function getJson(port, path) {
  return JSON.parse((await get(port, path)).body);
}
