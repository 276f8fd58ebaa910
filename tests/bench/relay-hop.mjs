// Added latency per hop (issue 15): origin → edge (fmp4ws-server --relay) on loopback.
// On demand, not in ./run-tests.sh; no npm dependency (Node 18+).
//
//   node tests/bench/relay-hop.mjs [--build build] [--seconds 60] [--warmup 5] \
//       [--frag-ms 100] [--size 640x360] [--viewers 1] [--loadclient PATH] [--json FILE]
//
// Starts an origin fmp4ws-server with an ffmpeg publisher on its TCP ingest (x264, -re lavfi
// testsrc2 at 30 fps, one fragment every --frag-ms and at each keyframe, every 2 s, with
// -write_prft wallclock) and an edge `fmp4ws-server --relay http://origin/stream.mp4`. One
// measuring viewer on each reads `GET /stream.mp4` (progressive fMP4, the same broadcaster
// path as a WebSocket viewer without the frame header) and stamps each fragment when its last
// byte (the end of its mdat) arrives, by mfhd sequence_number. The hop's added latency of a
// fragment = its stamp at the edge viewer − its stamp at the origin viewer (both in this
// process, performance.now()). After --warmup seconds, for --seconds: p50/p90/p99/max.
// Control: a second origin viewer, stamped the same way; "control" = its stamp − the first
// origin viewer's, the noise of the measurement itself (two viewers of one server, this
// process's event loop, the scheduler of a shared machine).
// --viewers N: N−1 more edge viewers that only drain /stream.mp4 (load), in a child process
// of their own (so they do not delay the measuring one); the edge's and the origin's CPU
// (utime+stime from /proc over the measured window) are reported, so runs with different N
// give the edge's CPU per viewer. --loadclient PATH (tests/bench/loadclient, built with
// -Dbench=true or `g++ -O2 -std=c++17 tests/bench/loadclient.cpp`): the load viewers are
// its WebSocket viewers (one epoll thread, mdat skipped unread) instead of Node readers.
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

// Child mode: `--drain PORT N`: N readers of /stream.mp4 that only count bytes.
if (process.argv.includes('--drain')) {
  const i = process.argv.indexOf('--drain');
  const port = Number(process.argv[i + 1]);
  const n = Number(process.argv[i + 2]);
  let bytes = 0;
  for (let k = 0; k < n; k++) {
    http.get({ host: '127.0.0.1', port, path: '/stream.mp4', agent: false }, (res) => {
      res.on('data', (d) => { bytes += d.length; });
    }).on('error', () => {});
  }
  process.on('SIGINT', () => { console.log(JSON.stringify({ drained_bytes: bytes })); process.exit(0); });
  await new Promise(() => {});
}

const HERE = path.dirname(fileURLToPath(import.meta.url));
function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const BUILD = path.resolve(arg('build', path.join(HERE, '..', '..', 'build')));
const SECONDS = Number(arg('seconds', '60'));
const WARMUP = Number(arg('warmup', '5'));
const FRAG_MS = Number(arg('frag-ms', '100'));
const SIZE = arg('size', '640x360');
const VIEWERS = Math.max(1, Number(arg('viewers', '1')));
const JSON_OUT = arg('json', '');
const LOADCLIENT = arg('loadclient', '');
const SERVER = path.join(BUILD, 'tools', 'fmp4ws-server');
const env = { ...process.env, GST_PLUGIN_PATH: path.join(BUILD, 'gst') };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const procs = [];
function start(cmd, args) {
  const p = spawn(cmd, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  p.output = '';
  p.stdout.on('data', (d) => { p.output += d; });
  p.stderr.on('data', (d) => { p.output += d; });
  procs.push(p);
  return p;
}
function stopAll() {
  for (const p of procs) try { process.kill(-p.pid, 'SIGINT'); } catch { /* gone */ }
}
process.on('exit', stopAll);
process.on('SIGINT', () => { stopAll(); process.exit(130); });

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
async function waitStatus(port) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => http.get({ host: '127.0.0.1', port, path: '/status' }, (res) => { res.resume(); r(res.statusCode === 200); }).on('error', () => r(false)));
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`no server on ${port}`);
}
// utime + stime of a process, in seconds.
function cpuSeconds(pid) {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100;  // fields 14, 15; USER_HZ 100 on Linux
}

// A /stream.mp4 reader; `onFragment(sequence, t)` when a fragment's mdat is complete.
function reader(port, onFragment) {
  let buf = Buffer.alloc(0);
  let seq = -1;
  const req = http.get({ host: '127.0.0.1', port, path: '/stream.mp4', agent: false }, (res) => {
    res.on('data', (d) => {
      const t = performance.now();
      if (!onFragment) return;
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      let off = 0;
      while (off + 8 <= buf.length) {
        const size = buf.readUInt32BE(off);
        const type = buf.toString('latin1', off + 4, off + 8);
        if (size < 8) throw new Error(`bad box ${type} size ${size}`);
        if (type === 'moof' && off + 24 <= buf.length) seq = buf.readUInt32BE(off + 20);  // moof > mfhd (full box) > sequence_number
        if (off + size > buf.length) break;
        if (type === 'mdat' && seq >= 0) onFragment(seq, t);
        off += size;
      }
      buf = buf.subarray(off);
    });
  });
  req.on('error', () => {});
  return req;
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const originPort = await freePort();
const ingestPort = await freePort();
const edgePort = await freePort();
const origin = start(SERVER, ['--port', String(originPort), '--ingest-port', String(ingestPort)]);
await waitStatus(originPort);
// The encoder and the load viewers run at nice 10 under SCHED_OTHER (`chrt -o 0`): what is
// measured is the servers' hops. The servers and the measuring viewers run with this script's
// policy: at normal priority (not under `nice`: on a busy machine a niced server waits for the
// CPU behind everything else, and that wait is what gets measured), or, to see what the edge
// itself adds on a machine shared with other work, `chrt -f 10 node relay-hop.mjs ...`
// (SCHED_FIFO; they use a few % of a core; reported as "policy").
const ff = start('chrt', ['-o', '0', 'nice', '-n', '10', 'ffmpeg', '-hide_banner', '-nostats', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', `testsrc2=size=${SIZE}:rate=30`,
  '-t', String(WARMUP + SECONDS + 10), '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-vb', '800k', '-g', '60',
  '-pix_fmt', 'yuv420p', '-write_prft', 'wallclock', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof',
  '-frag_duration', String(FRAG_MS * 1000), `tcp://127.0.0.1:${ingestPort}/`]);
const edge = start(SERVER, ['--port', String(edgePort), '--relay', `http://127.0.0.1:${originPort}/stream.mp4`]);
await waitStatus(edgePort);

const atOrigin = new Map();
const atOrigin2 = new Map();
const atEdge = new Map();
reader(originPort, (s, t) => { if (!atOrigin.has(s)) atOrigin.set(s, t); });
reader(originPort, (s, t) => { if (!atOrigin2.has(s)) atOrigin2.set(s, t); });
reader(edgePort, (s, t) => { if (!atEdge.has(s)) atEdge.set(s, t); });
if (VIEWERS > 1 && LOADCLIENT) {
  start('chrt', ['-o', '0', 'nice', '-n', '10', LOADCLIENT, '--port', String(edgePort), '--path', '/', '--viewers', String(VIEWERS - 1), '--rate', '500',
    '--settle', '0', '--window', String(WARMUP + SECONDS + 5), '--drain', '1']);
} else if (VIEWERS > 1) {
  start('chrt', ['-o', '0', 'nice', '-n', '10', process.execPath, fileURLToPath(import.meta.url), '--drain', String(edgePort), String(VIEWERS - 1)]);
}

await sleep(WARMUP * 1000);
const t0 = performance.now();
const cpu0 = { edge: cpuSeconds(edge.pid), origin: cpuSeconds(origin.pid) };
const firstSeq = Math.max(-1, ...atOrigin.keys()) + 1;
await sleep(SECONDS * 1000);
const cpu1 = { edge: cpuSeconds(edge.pid), origin: cpuSeconds(origin.pid) };
const wall = (performance.now() - t0) / 1000;
await sleep(1000);  // the last fragments reach the edge viewer

// Stamps at `to` − stamps at the first origin viewer, for the fragments of the window.
function hop(to) {
  const d = [];
  let missing = 0;
  for (const [s, t] of atOrigin) {
    if (s < firstSeq || t > t0 + SECONDS * 1000) continue;
    if (!to.has(s)) { missing++; continue; }
    d.push(to.get(s) - t);
  }
  d.sort((a, b) => a - b);
  return { d, missing };
}
const summary = (d) => ({
  p50: +percentile(d, 50).toFixed(2), p90: +percentile(d, 90).toFixed(2),
  p99: +percentile(d, 99).toFixed(2), max: +d[d.length - 1]?.toFixed(2), min: +d[0]?.toFixed(2),
});
const { d: deltas, missing } = hop(atEdge);
const control = hop(atOrigin2).d;
const r = {
  seconds: SECONDS, frag_ms: FRAG_MS, size: SIZE, edge_viewers: VIEWERS, load: VIEWERS > 1 ? (LOADCLIENT ? 'loadclient' : 'node') : 'none', fragments: deltas.length, missing_at_edge: missing,
  hop_ms: summary(deltas), control_ms: summary(control),
  policy: ['other', 'fifo', 'rr', 'batch', 'iso', 'idle'][Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[38])] ?? '?',
  nice: os.getPriority(), loadavg: fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
  cpu_percent: { edge: +(100 * (cpu1.edge - cpu0.edge) / wall).toFixed(2), origin: +(100 * (cpu1.origin - cpu0.origin) / wall).toFixed(2) },
};
console.log(JSON.stringify(r));
if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(r) + '\n', { flag: 'a' });
if (!deltas.length) {
  console.error('no fragment measured\n--- origin ---\n' + origin.output + '\n--- edge ---\n' + edge.output + '\n--- ffmpeg ---\n' + ff.output);
  process.exitCode = 1;
}
stopAll();
