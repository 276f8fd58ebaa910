// A userspace delay-jitter TCP proxy: the nearest thing to `tc qdisc ... netem delay Jms Jms` where
// the kernel has no sch_netem (issue 14, the latency benchmark's jitter rows).
//
//   browser ──tcp──▶ proxy (listen) ──tcp──▶ server (target)
//           ◀── each chunk server → browser delayed by a uniform random 0–2J ms (mean J),
//               never before an earlier chunk (byte order kept) ──
//
// What it models: netem's `delay J J` (no distribution table: uniform over [J − J, J + J]) on the
// server's egress, seen through TCP: a packet that netem holds longer does not let later ones
// reach the application first (TCP delivers in order; the later ones wait for it, head-of-line
// blocking). So chunk i is written to the browser at max(its arrival + d_i, the time chunk i−1
// was written), d_i uniform in [0, 2J] ms. Differences from netem, said where results are shown:
// the unit is a read() chunk (what one `data` event of the server socket brings: on loopback
// usually one write of the server, up to 64 KiB), not a packet of at most one MTU; the timers are
// Node's (≥ 1 ms, later when the machine is busy); browser → server is not delayed (as netem on
// the server side's egress only).
//
// Used by latency-bench.mjs (in process, `createJitterProxy`) and on its own:
//   node tests/bench/latency/jitter-proxy.mjs --target 127.0.0.1:8080 --jitter 20 [--port 0]
// prints "listening on 127.0.0.1:PORT"; Ctrl-C stops it.
import net from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * @typedef {object} JitterProxyOptions
 * @property {string} targetHost the server's address
 * @property {number} targetPort the server's TCP port
 * @property {number} jitterMs J: every chunk server → client is delayed by a uniform random
 *   0–2J ms (mean J), as `netem delay Jms Jms`; 0: forwarded at once
 * @property {string} [host='127.0.0.1'] address to listen on
 * @property {number} [port=0] port to listen on (0: any free one, see `port` of the result)
 * @property {() => number} [random=Math.random] uniform in [0, 1) (tests pass a seeded one)
 * @property {(e: {readAt: number, delayMs: number, writtenAt: number, heldMs: number, bytes: number}) => void} [onChunk]
 *   called as each chunk server → client is written (times in ms, `performance.now()`): `delayMs`
 *   its random delay, `heldMs` = writtenAt − readAt, how long it was actually held (≥ delayMs − 0.5;
 *   more when it waited for an earlier chunk or a busy event loop)
 */

/**
 * @typedef {object} JitterProxy
 * @property {number} port the port it listens on
 * @property {string} host the address it listens on
 * @property {{connections: number, chunks: number, bytes: number, delaySumMs: number, maxHeldMs: number}} stats
 *   totals over all connections (server → client direction)
 * @property {() => Promise<void>} close stops listening and closes every connection
 */

/**
 * Starts a delay-jitter proxy. Each accepted connection opens one to the target; bytes client →
 * server are forwarded at once, bytes server → client chunk by chunk with the delay above, in
 * order. A side that closes or fails closes the other once the delayed bytes are written.
 * @param {JitterProxyOptions} options
 * @returns {Promise<JitterProxy>} once listening
 * @throws {RangeError} jitterMs negative or not finite
 */
export async function createJitterProxy(options) {
  const { targetHost, targetPort, jitterMs, host = '127.0.0.1', port = 0, random = Math.random, onChunk } = options;
  if (!(Number.isFinite(jitterMs) && jitterMs >= 0)) throw new RangeError(`jitterMs must be ≥ 0, not ${jitterMs}`);
  const stats = { connections: 0, chunks: 0, bytes: 0, delaySumMs: 0, maxHeldMs: 0 };
  /** @type {Set<() => void>} each open connection's teardown */
  const conns = new Set();

  const server = net.createServer({ noDelay: true }, (client) => {
    stats.connections++;
    const upstream = net.connect({ host: targetHost, port: targetPort, noDelay: true });
    // chunks server → client not yet written, in the order read; `due` never decreases along it
    /** @type {Array<{due: number, read: number, delayMs: number, b: Buffer}>} */
    const queue = [];
    let lastDue = 0; // due time of the newest chunk: none overtakes an earlier one
    /** @type {NodeJS.Timeout|null} */
    let timer = null;
    let upstreamEnded = false;
    const finish = () => { if (upstreamEnded && queue.length === 0 && !client.destroyed) client.end(); };
    // one timer per connection, for the head of the queue: writes every chunk that is due, in
    // order (one timer per chunk would not keep the order: Node orders timers by whole-ms expiry)
    const pump = () => {
      timer = null;
      const now = performance.now();
      while (queue.length && queue[0].due <= now + 0.5) {
        const c = /** @type {{due: number, read: number, delayMs: number, b: Buffer}} */ (queue.shift());
        const heldMs = now - c.read;
        stats.chunks++;
        stats.bytes += c.b.length;
        stats.delaySumMs += c.delayMs;
        stats.maxHeldMs = Math.max(stats.maxHeldMs, heldMs);
        // backpressure as TCP's: a browser that does not read stops the reads from the server
        if (!client.destroyed && !client.write(c.b)) upstream.pause();
        onChunk?.({ readAt: c.read, delayMs: c.delayMs, writtenAt: now, heldMs, bytes: c.b.length });
      }
      if (queue.length) {
        timer = setTimeout(pump, Math.max(1, queue[0].due - now));
      }
      finish();
    };
    client.on('drain', () => upstream.resume());
    client.on('data', (b) => { if (!upstream.write(b)) client.pause(); });
    upstream.on('drain', () => client.resume());
    client.on('end', () => upstream.end());
    upstream.on('data', (b) => {
      const read = performance.now();
      const delayMs = jitterMs > 0 ? random() * 2 * jitterMs : 0;
      const due = Math.max(read + delayMs, lastDue);
      lastDue = due;
      queue.push({ due, read, delayMs, b });
      if (timer === null) pump();
    });
    upstream.on('end', () => { upstreamEnded = true; finish(); });
    const drop = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      queue.length = 0;
      client.destroy();
      upstream.destroy();
      conns.delete(drop);
    };
    conns.add(drop);
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', () => { if (!upstreamEnded) drop(); });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(undefined); });
  });
  const addr = /** @type {net.AddressInfo} */ (server.address());
  return {
    port: addr.port,
    host,
    stats,
    close: () => new Promise((resolve) => {
      for (const drop of [...conns]) drop();
      server.close(() => resolve());
    }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : def;
  };
  const target = arg('target', '');
  const m = /^(.+):(\d+)$/.exec(target);
  if (!m) {
    console.error('usage: jitter-proxy.mjs --target HOST:PORT --jitter MS [--port 0] [--host 127.0.0.1]');
    process.exit(2);
  }
  const p = await createJitterProxy({
    targetHost: m[1], targetPort: Number(m[2]), jitterMs: Number(arg('jitter', '0')),
    host: arg('host', '127.0.0.1'), port: Number(arg('port', '0')),
  });
  console.log(`listening on ${p.host}:${p.port}`);
  process.on('SIGINT', () => p.close().then(() => process.exit(0)));
}
