// The latency benchmark's delay-jitter proxy (tests/bench/latency/jitter-proxy.mjs), on real TCP
// sockets over loopback: bytes server → client arrive whole and in order, no chunk is written
// before its random delay (0–2J ms) nor before an earlier chunk (head-of-line, as TCP over a
// jittery link), client → server passes, the end of the stream follows the delayed bytes.
// No upper bound on any time is asserted (a busy machine delays timers: that must not fail a
// test); the delays' distribution is checked on a seeded random source, not on the clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createJitterProxy } from '../bench/latency/jitter-proxy.mjs';

/** A seeded uniform [0, 1) source (mulberry32). @param {number} seed */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A TCP server on loopback that, per connection, calls `serve(socket)`.
 * @param {(s: net.Socket) => void} serve
 */
async function listen(serve) {
  const server = net.createServer(serve);
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: /** @type {net.AddressInfo} */ (server.address()).port };
}

/** Connects to `port` and collects everything until the end. @returns {Promise<Buffer>} */
function readAll(port, send = null) {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    const parts = [];
    c.on('connect', () => { if (send) c.write(send); });
    c.on('data', (b) => parts.push(b));
    c.on('end', () => { resolve(Buffer.concat(parts)); c.end(); });
    c.on('error', reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('bytes arrive whole and in order; no chunk before its delay or before an earlier one', async () => {
  const J = 20;
  const N = 60;
  const payload = (i) => Buffer.from(`chunk ${String(i).padStart(4, '0')};`.repeat(1 + (i % 7)));
  const expected = Buffer.concat(Array.from({ length: N }, (_, i) => payload(i)));
  const { server, port } = await listen(async (s) => {
    for (let i = 0; i < N; i++) {
      s.write(payload(i));
      await sleep(i % 3 === 0 ? 0 : 3);
    }
    s.end();
  });
  const chunks = [];
  const rnd = seeded(14);
  const proxy = await createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: J, random: rnd, onChunk: (e) => chunks.push(e) });
  try {
    const got = await readAll(proxy.port);
    assert.equal(got.toString(), expected.toString(), 'the bytes, whole and in order');
    assert.ok(chunks.length >= 2, `several chunks read (${chunks.length})`);
    let earliestDue = 0; // the latest due time of the chunks before: none is written before it
    for (const [i, c] of chunks.entries()) {
      assert.ok(c.delayMs >= 0 && c.delayMs < 2 * J, `chunk ${i}: delay ${c.delayMs} ms in [0, ${2 * J})`);
      assert.ok(c.writtenAt >= c.readAt + c.delayMs - 0.5, `chunk ${i}: written ${c.heldMs} ms after it was read, its delay ${c.delayMs} ms`);
      assert.ok(c.writtenAt >= earliestDue - 0.5, `chunk ${i}: not written before an earlier chunk was due`);
      if (i) assert.ok(c.writtenAt >= chunks[i - 1].writtenAt, `chunk ${i}: written after chunk ${i - 1}`);
      earliestDue = Math.max(earliestDue, c.readAt + c.delayMs);
    }
    assert.equal(proxy.stats.bytes, expected.length);
    assert.equal(proxy.stats.chunks, chunks.length);
  } finally {
    await proxy.close();
    server.close();
  }
});

test('a chunk held long holds back the ones after it (head-of-line, as TCP)', async () => {
  const J = 50;
  // the first read gets the longest delay (0.99 × 2J), the next ones none; the server sends the
  // second chunk only once the proxy has read the first (its random delay was drawn), so they
  // are two reads whatever the machine's load
  let firstRead;
  const firstReadP = new Promise((r) => { firstRead = r; });
  let calls = 0;
  const random = () => {
    calls++;
    if (calls === 1) { firstRead(); return 0.99; }
    return 0;
  };
  const { server, port } = await listen(async (s) => {
    s.write('first;');
    await firstReadP;
    for (let i = 0; i < 5; i++) s.write(`next ${i};`);
    s.end();
  });
  const chunks = [];
  const proxy = await createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: J, random, onChunk: (e) => chunks.push(e) });
  try {
    const got = await readAll(proxy.port);
    assert.equal(got.toString(), `first;${[0, 1, 2, 3, 4].map((i) => `next ${i};`).join('')}`);
    assert.ok(chunks.length >= 2, `the first chunk and at least one more read apart (${chunks.length})`);
    const firstDue = chunks[0].readAt + chunks[0].delayMs;
    assert.ok(Math.abs(chunks[0].delayMs - 0.99 * 2 * J) < 1e-9);
    for (const c of chunks.slice(1)) {
      assert.equal(c.delayMs, 0);
      assert.ok(c.writtenAt >= firstDue - 0.5, `a later chunk (delay 0) waited for the first (${c.writtenAt - c.readAt} ms)`);
    }
  } finally {
    await proxy.close();
    server.close();
  }
});

test('delays are uniform over [0, 2J] (mean J), as netem delay J J', async () => {
  // the proxy draws one delay per read: fed from a seeded source, the delays it reports are
  // exactly 2J × the draws (checked), and their spread is the source's. The server sends chunk
  // i + 1 once the proxy has drawn the delay of chunk i: N reads whatever the machine's load
  const J = 30;
  const N = 100;
  const rnd = seeded(7);
  const draws = [];
  let wake = () => {};
  const random = () => { const x = rnd(); draws.push(x); wake(); return x; };
  const drawn = (n) => new Promise((r) => {
    wake = () => { if (draws.length >= n) r(); };
    wake();
  });
  const { server, port } = await listen(async (s) => {
    for (let i = 0; i < N; i++) { s.write(`${i};`); await drawn(i + 1); }
    s.end();
  });
  const chunks = [];
  const proxy = await createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: J, random, onChunk: (e) => chunks.push(e) });
  try {
    await readAll(proxy.port);
    assert.equal(chunks.length, N);
    assert.equal(draws.length, N);
    chunks.forEach((c, i) => assert.ok(Math.abs(c.delayMs - 2 * J * draws[i]) < 1e-9));
    const mean = chunks.reduce((a, c) => a + c.delayMs, 0) / chunks.length;
    assert.ok(Math.abs(mean - J) < 0.2 * J, `mean delay ${mean.toFixed(1)} ms ≈ ${J} ms over ${N} reads`);
    const q = (p) => [...chunks].map((c) => c.delayMs).sort((a, b) => a - b)[Math.floor(p * (N - 1))];
    assert.ok(q(0.1) < 0.5 * J && q(0.9) > 1.5 * J, `spread over [0, 2J]: p10 ${q(0.1).toFixed(1)}, p90 ${q(0.9).toFixed(1)} ms`);
    assert.ok(Math.abs(proxy.stats.delaySumMs / proxy.stats.chunks - mean) < 1e-6);
  } finally {
    await proxy.close();
    server.close();
  }
});

test('client → server passes at once; jitter 0 forwards in order; bad jitter is refused', async () => {
  const { server, port } = await listen((s) => {
    s.on('data', (b) => s.write(Buffer.from(b.toString().toUpperCase())));
    s.on('end', () => s.end());
  });
  const proxy = await createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: 0 });
  try {
    const got = await new Promise((resolve, reject) => {
      const c = net.connect({ host: '127.0.0.1', port: proxy.port });
      let s = '';
      c.on('data', (b) => { s += b; if (s.length >= 11) c.end(); });
      c.on('end', () => resolve(s));
      c.on('error', reject);
      c.write('hello world');
    });
    assert.equal(got, 'HELLO WORLD');
    assert.equal(proxy.stats.delaySumMs, 0);
  } finally {
    await proxy.close();
    server.close();
  }
  await assert.rejects(createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: -1 }), RangeError);
  await assert.rejects(createJitterProxy({ targetHost: '127.0.0.1', targetPort: port, jitterMs: Number.NaN }), RangeError);
});
