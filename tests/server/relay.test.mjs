// Edges: fmp4ws-server --relay URL pulling an origin's GET /stream.mp4 (another fmp4ws-server
// on loopback), with real ffmpeg publishers and WebSocket viewers (the `ws` package). What an
// edge must do (issue 15): serve the origin's stream, keyframe first, with the origin's prft;
// one connection to the origin whatever its viewer count; new init segments on the same
// WebSocket when the origin's stream changes or the origin restarts; origins tried in turn;
// bad origins (404, garbage) logged and retried while the edge goes on serving.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { serverBin, sleep, freePort, run, stop, waitFor, get, getJson } from './lib.mjs';
import { boxes, parseInit, parseFragment } from '../../web/player/bmff.js';

// A server on free ports; `args` more flags. Resolves once /status answers.
async function startServer(args = [], port = 0) {
  port = port || await freePort();
  const ingest = await freePort();
  const proc = run(serverBin, ['--port', String(port), '--ingest-port', String(ingest), ...args]);
  await waitFor(async () => { try { return (await get(port, '/status')).status === 200; } catch { return false; } }, 10000, `the server on ${port}`);
  return { proc, port, ingest };
}

const H264 = (size, seconds) => ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`,
  '-t', String(seconds), '-c:v', 'libx264', '-preset', 'veryfast', '-vb', '300k', '-g', '30', '-pix_fmt', 'yuv420p'];
const VP9 = (size, seconds) => ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`,
  '-t', String(seconds), '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '300k', '-g', '30'];
const TCP = (port) => ['-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', `tcp://127.0.0.1:${port}/`];
const publish = (args, ingest) => run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args, ...TCP(ingest)]);

// mfhd sequence_number of a fragment message (prft + moof + mdat), -1 if none.
function sequenceOf(u8) {
  for (const b of boxes(u8, 0, u8.length)) {
    if (b.type !== 'moof') continue;
    for (const c of boxes(u8, b.body, b.end))
      if (c.type === 'mfhd') return new DataView(u8.buffer, u8.byteOffset).getUint32(c.body + 4);
  }
  return -1;
}

// A WebSocket viewer recording per init segment (`inits`, with its `stream` message) the
// fragments that follow it: { keyframe, sequence, prft, at }.
function viewer(url) {
  const v = { inits: [], streams: [], closed: false, fragments: 0 };
  v.ws = new WebSocket(url);
  v.ws.binaryType = 'nodebuffer';
  v.ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const m = JSON.parse(data.toString());
      if (m.type === 'stream') v.streams.push(m);
      return;
    }
    const u8 = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data.subarray(4, 8).toString('latin1') === 'ftyp') {
      v.inits.push({ tracks: parseInit(u8), fragments: [] });
      return;
    }
    const init = v.inits[v.inits.length - 1];
    const f = parseFragment(u8, init.tracks);
    init.fragments.push({ keyframe: f.keyframe, prft: f.prft, sequence: sequenceOf(u8), at: Date.now(), start: f.start, duration: f.duration });
    v.fragments++;
  });
  v.ws.on('close', () => { v.closed = true; });
  v.opened = new Promise((resolve, reject) => { v.ws.on('open', resolve); v.ws.on('error', reject); });
  return v;
}

const relayUrl = (port, path = '/stream.mp4') => `http://127.0.0.1:${port}${path}`;

test('an edge serves the origin\'s stream: keyframe first, the origin\'s prft, one origin connection for many viewers', { timeout: 90000 }, async (t) => {
  const origin = await startServer();
  const ff = publish(H264('320x180', 40), origin.ingest);
  const edge = await startServer(['--relay', relayUrl(origin.port)]);
  try {
    assert.match(edge.proc.output, /TCP ingest off: the default stream is relayed/);
    const vs = [0, 1, 2, 3].map(() => viewer(`ws://127.0.0.1:${edge.port}/`));
    await Promise.all(vs.map((v) => v.opened));
    await waitFor(() => vs.every((v) => v.fragments >= 3), 20000, 'fragments at every edge viewer');
    for (const v of vs) {
      assert.equal(v.inits.length, 1);
      assert.match(v.streams[0].codecs, /^avc1\./);
      assert.equal(v.streams[0].width, 320);
      assert.ok(v.inits[0].fragments[0].keyframe, 'an edge viewer starts at a keyframe');
    }
    // One connection to the origin (the edge's), whatever the edge's viewer count.
    const os = await getJson(origin.port, '/status');
    assert.equal(os.viewers, 1, JSON.stringify(os.clients));
    assert.equal((await getJson(edge.port, '/status')).viewers, 4);
    // The wall-clock stamps are the origin's: the same prft for the same fragment.
    const ov = viewer(`ws://127.0.0.1:${origin.port}/`);
    await ov.opened;
    await waitFor(() => ov.fragments >= 3, 10000, 'origin viewer fragments');
    const last = ov.inits[0].fragments[ov.inits[0].fragments.length - 1];
    await waitFor(() => vs[0].inits[0].fragments.some((f) => f.sequence === last.sequence), 5000, 'the same fragment at the edge');
    const same = vs[0].inits[0].fragments.find((f) => f.sequence === last.sequence);
    assert.ok(last.prft && same.prft, 'both have a prft');
    assert.equal(same.prft.flags, last.prft.flags);
    assert.equal(same.prft.ntpSeconds, last.prft.ntpSeconds, 'the edge kept the origin\'s prft');
    t.diagnostic(`fragment ${last.sequence}: origin viewer at ${last.at}, edge viewer at ${same.at} (ms)`);
    for (const v of [...vs, ov]) v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('the origin\'s stream changes, then the origin restarts with another codec: the edge viewer gets each new init on the same WebSocket, keyframe first', { timeout: 120000 }, async () => {
  let origin = await startServer();
  let ff = publish(H264('320x180', 6), origin.ingest);
  const edge = await startServer(['--relay', relayUrl(origin.port), '--relay-retry-max', '2']);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 3, 20000, 'the first stream');
    assert.equal((await ff.done).code, 0, ff.output);
    // A new publisher at the same origin: another resolution.
    ff = publish(H264('640x360', 60), origin.ingest);
    await waitFor(() => v.inits.length === 2 && v.inits[1].fragments.length >= 2, 20000, 'the second stream');
    assert.equal(v.streams[1].width, 640);
    // The origin dies and comes back on the same port with another codec.
    await stop(ff, 'SIGKILL');
    await stop(origin.proc, 'SIGKILL');
    await sleep(1500);
    origin = await startServer([], origin.port);
    ff = publish(VP9('480x270', 60), origin.ingest);
    await waitFor(() => v.inits.length === 3 && v.inits[2].fragments.length >= 2, 30000, 'the restarted origin\'s stream');
    assert.match(v.streams[2].codecs, /^vp09/);
    assert.equal(v.streams[2].width, 480);
    assert.ok(!v.closed, 'the edge viewer stayed connected');
    for (const init of v.inits) assert.ok(init.fragments[0].keyframe, 'each stream starts at a keyframe');
    assert.match(edge.proc.output, /relay: next attempt in/);
    // A viewer that joins now starts on a whole GOP of the new stream.
    const late = viewer(`ws://127.0.0.1:${edge.port}/`);
    await late.opened;
    await waitFor(() => late.fragments >= 1, 10000, 'the late viewer');
    assert.equal(late.inits.length, 1);
    assert.ok(late.inits[0].fragments[0].keyframe);
    assert.match(late.streams[0].codecs, /^vp09/);
    v.ws.close();
    late.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('the origin restarts with the same stream (same init bytes): the edge viewer gets the init again, then a keyframe, and its timeline goes on (never backwards)', { timeout: 90000 }, async (t) => {
  // One encoded file published twice with -c copy: the same init segment both times.
  const dir = mkdtempSync(join(tmpdir(), 'relay-'));
  const file = join(dir, 'a.mp4');
  const enc = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30', '-t', '30',
    '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-pix_fmt', 'yuv420p', file]);
  assert.equal((await enc.done).code, 0, enc.output);
  const copy = ['-re', '-i', file, '-c', 'copy'];
  let origin = await startServer();
  let ff = publish(copy, origin.ingest);
  const edge = await startServer(['--relay', relayUrl(origin.port), '--relay-retry-max', '1']);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 4, 20000, 'the first run');
    await stop(ff, 'SIGKILL');
    await stop(origin.proc, 'SIGKILL');
    const before = v.fragments;
    origin = await startServer([], origin.port);
    ff = publish(copy, origin.ingest);
    await waitFor(() => v.fragments >= before + 4, 30000, 'the second run');
    // The same init bytes after fragments are a new stream for websocketsink (a new
    // generation): sent again, and the viewer waits for a keyframe of the new run.
    assert.equal(v.inits.length, 2);
    assert.ok(v.inits[1].fragments[0].keyframe);
    const all = v.inits.flatMap((i) => i.fragments);
    t.diagnostic(`${v.inits.length} init segment(s); starts ${all.map((f) => f.start.toFixed(2)).join(' ')}`);
    for (let i = 1; i < all.length; i++)
      assert.ok(all[i].start >= all[i - 1].start + all[i - 1].duration - 0.05,
        `fragment ${i} starts at ${all[i].start} s, before the end of the one before (${all[i - 1].start} + ${all[i - 1].duration})`);
    assert.ok(!v.closed);
    v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('origins tried in turn: the first is down, the second is used; an encoder\'s prft passes both hops', { timeout: 60000 }, async () => {
  const origin = await startServer();
  const ff = publish([...H264('320x180', 30), '-write_prft', 'wallclock'], origin.ingest);
  const down = await freePort();
  const edge = await startServer(['--relay', relayUrl(down), '--relay', relayUrl(origin.port)]);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'fragments through the second origin');
    assert.match(edge.proc.output, new RegExp(`relay http://127.0.0.1:${down}/stream.mp4 ended .*cannot reach the origin`));
    assert.equal((await getJson(origin.port, '/status')).viewers, 1);
    // ffmpeg's -write_prft wallclock boxes reach the edge viewer as they left ffmpeg (not
    // replaced by either server's own: flags 4).
    const ov = viewer(`ws://127.0.0.1:${origin.port}/`);
    await ov.opened;
    await waitFor(() => ov.fragments >= 2, 10000, 'origin viewer fragments');
    const o = ov.inits[0].fragments[1];
    await waitFor(() => v.inits[0].fragments.some((f) => f.sequence === o.sequence), 5000, 'the same fragment at the edge');
    const e = v.inits[0].fragments.find((f) => f.sequence === o.sequence);
    assert.ok(o.prft && e.prft);
    assert.notEqual(e.prft.flags, 4, 'the encoder\'s prft, not a server\'s');
    assert.deepEqual([e.prft.flags, e.prft.ntpSeconds], [o.prft.flags, o.prft.ntpSeconds]);
    ov.ws.close();
    v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('credentials in --relay (userinfo, ?token=) never reach the log, /status or /metrics', { timeout: 60000 }, async () => {
  const origin = await startServer();
  const ff = publish(H264('320x180', 30), origin.ingest);
  const edge = await startServer(['--relay', `http://edge:s3cret@127.0.0.1:${origin.port}/stream.mp4?token=t0ken`,
    '--relay-retry-min', '0.2']);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'fragments through the edge');
    await stop(ff, 'SIGKILL');  // the origin's stream ends: a reconnect, logged again
    const status = await get(edge.port, '/status');
    const metrics = await get(edge.port, '/metrics');
    assert.match(edge.proc.output, /relayed from http:\/\/\*\*\*@127\.0\.0\.1:\d+\/stream\.mp4\?token=\*\*\*/);
    for (const text of [edge.proc.output, status.body, metrics.body])
      assert.doesNotMatch(text, /s3cret|t0ken/);
    v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('an origin that ends its response: every whole fragment it sent reaches the edge viewer before the reconnect (the ingest pipeline is drained, not dropped)', { timeout: 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-eof-'));
  const file = join(dir, 'short.mp4');
  const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30',
    '-t', '2', '-c:v', 'libx264', '-preset', 'veryfast', '-g', '15', '-pix_fmt', 'yuv420p',
    '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', file]);
  assert.equal((await ff.done).code, 0, ff.output);
  const bytes = readFileSync(file);
  const fragmentsInFile = [...boxes(new Uint8Array(bytes), 0, bytes.length)].filter((b) => b.type === 'moof').length;
  assert.ok(fragmentsInFile >= 4, `${fragmentsInFile} fragments`);
  let answered = 0;
  let release;
  const held = new Promise((r) => { release = r; });
  // The whole file, then the end of the response; the second request waits (no second copy).
  const short = http.createServer(async (req, res) => {
    if (answered++ > 0) await held;
    res.writeHead(200, { 'Content-Type': 'video/mp4' });
    res.end(bytes);
  });
  await new Promise((r) => short.listen(0, '127.0.0.1', r));
  const edge = await startServer(['--relay', relayUrl(short.address().port), '--relay-retry-min', '0.2', '--publisher-timeout', '2']);
  try {
    const ev = viewer(`ws://127.0.0.1:${edge.port}/`);
    await ev.opened;
    await waitFor(() => /relay: the origin ended its response/.test(edge.proc.output), 20000, 'the end of the first response');
    await waitFor(() => answered >= 2, 10000, 'the reconnect');
    await sleep(500);
    // The viewer joined before the edge's first fragment or after some of it: what it got
    // ends with the file's last fragment, keyframe first, none lost at the end.
    const got = ev.inits.flatMap((i) => i.fragments);
    assert.ok(got.length >= 1, 'fragments at the edge viewer');
    assert.equal(got[got.length - 1].sequence, fragmentsInFile, 'the last fragment of the response came through');
    assert.doesNotMatch(edge.proc.output, /no fragment came through/);
    ev.ws.close();
  } finally {
    release();
    short.closeAllConnections?.();
    short.close();
    await stop(edge.proc, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the origin\'s publisher goes away for longer than --publisher-timeout: the edge keeps its connection (no replayed GOP) and the next publisher comes through it', { timeout: 60000 }, async () => {
  const origin = await startServer();
  let ff = publish(H264('320x180', 3), origin.ingest);
  const edge = await startServer(['--relay', relayUrl(origin.port), '--publisher-timeout', '1']);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'the first publisher');
    assert.equal((await ff.done).code, 0, ff.output);
    const fragments = v.fragments;
    await sleep(4000);  // 4 × the edge's --publisher-timeout without data
    assert.doesNotMatch(edge.proc.output, /relay: next attempt/, 'the edge kept its connection');
    assert.equal(v.inits.length, 1, 'no init (and no cached GOP) replayed');
    assert.equal(v.fragments, fragments);
    ff = publish(H264('640x360', 30), origin.ingest);
    await waitFor(() => v.inits.length === 2 && v.inits[1].fragments.length >= 1, 15000, 'the next publisher at the edge');
    assert.equal(v.streams[1].width, 640);
    assert.ok(v.inits[1].fragments[0].keyframe);
    assert.equal((await getJson(origin.port, '/status')).viewers, 1);
    v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('--relay-idle-timeout: a hung origin process (SIGSTOP: its kernel still answers) is left for the next origin; the viewer gets its stream on the same WebSocket', { timeout: 90000 }, async () => {
  const a = await startServer();
  const b = await startServer();
  const ffa = publish(H264('320x180', 60), a.ingest);
  const ffb = publish(H264('640x360', 60), b.ingest);
  const edge = await startServer(['--relay', relayUrl(a.port), '--relay', relayUrl(b.port),
    '--relay-idle-timeout', '2', '--publisher-timeout', '1', '--relay-retry-min', '0.2']);
  try {
    const v = viewer(`ws://127.0.0.1:${edge.port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'fragments from the first origin');
    assert.equal(v.streams[0].width, 320);
    a.proc.kill('SIGSTOP');
    await waitFor(() => v.streams.some((st) => st.width === 640) && v.inits[v.inits.length - 1].fragments.length >= 1,
      30000, 'the second origin\'s stream at the edge viewer');
    assert.match(edge.proc.output, /relay: no data from the origin for 2 s \(--relay-idle-timeout\)/);
    const last = v.inits[v.inits.length - 1];
    assert.ok(last.fragments[0].keyframe, 'keyframe first');
    assert.equal(v.closed, false);
    v.ws.close();
  } finally {
    a.proc.kill('SIGCONT');
    await stop(ffa, 'SIGKILL');
    await stop(ffb, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(a.proc, 'SIGINT');
    await stop(b.proc, 'SIGINT');
  }
});

test('bad origins (404, garbage) are logged and retried with backoff; the edge keeps serving', { timeout: 60000 }, async () => {
  const origin = await startServer();  // no stream named nope: 404
  // 200 and random bytes without end (until the edge hangs up).
  const junk = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'video/mp4' });
    res.on('error', () => {});
    const chunk = Buffer.alloc(64 * 1024);
    const pump = () => {
      while (!res.destroyed) {
        for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, i);
        if (!res.write(chunk)) { res.once('drain', pump); return; }
      }
    };
    pump();
  });
  await new Promise((r) => junk.listen(0, '127.0.0.1', r));
  const edge = await startServer(['--relay', relayUrl(origin.port, '/live/nope/stream.mp4'),
    '--relay', relayUrl(junk.address().port, '/stream.mp4'), '--relay-retry-min', '0.2', '--relay-retry-max', '0.8']);
  try {
    await waitFor(() => (edge.proc.output.match(/ingest error/g) || []).length >= 3, 20000, 'three rounds');
    const out = edge.proc.output;
    assert.match(out, /relay: the origin answered 404 Not Found/);
    assert.match(out, /ingest error: /);
    // Backoff: the waits between rounds grow to --relay-retry-max.
    const waits = [...out.matchAll(/relay: next attempt in ([0-9.]+) s/g)].map((m) => +m[1]);
    assert.deepEqual(waits.slice(0, 6), [0, 0.2, 0, 0.4, 0, 0.8]);
    const st = await get(edge.port, '/status');
    assert.equal(st.status, 200);
    assert.equal(edge.proc.exitCode, null, 'the edge is running');
  } finally {
    junk.close();
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('an origin that answers 200 with a page (text/html): the edge says so and backs off', { timeout: 60000 }, async () => {
  // A login or error page in front of the origin, held open like a stream would be.
  const page = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.write('<!DOCTYPE html><html><body>please log in</body></html>');
  });
  await new Promise((r) => page.listen(0, '127.0.0.1', r));
  const edge = await startServer(['--relay', relayUrl(page.address().port), '--relay-retry-min', '0.2', '--relay-retry-max', '0.4']);
  try {
    await waitFor(() => (edge.proc.output.match(/Content-Type text\/html/g) || []).length >= 3, 20000, 'three refused answers');
    assert.match(edge.proc.output, /relay: the origin answered 200 with Content-Type text\/html, not an fMP4 stream/);
    const waits = [...edge.proc.output.matchAll(/relay: next attempt in ([0-9.]+) s/g)].map((m) => +m[1]);
    assert.deepEqual(waits.slice(0, 3), [0.2, 0.4, 0.4]);
    assert.equal((await get(edge.port, '/status')).status, 200);
  } finally {
    page.closeAllConnections?.();
    page.close();
    await stop(edge.proc, 'SIGINT');
  }
});

test('an https origin with a self-signed certificate: refused, and the log says why', { timeout: 60000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relay-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=elsewhere.example',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const origin = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'video/mp4' });
  });
  await new Promise((r) => origin.listen(0, '127.0.0.1', r));
  const edge = await startServer(['--relay', `https://127.0.0.1:${origin.address().port}/stream.mp4`, '--relay-retry-min', '0.2']);
  try {
    await waitFor(() => /cannot reach the origin/.test(edge.proc.output), 20000, 'the refused origin');
    assert.match(edge.proc.output, /relay: cannot reach the origin: .*\(the certificate: not signed by a known certificate authority, not for this host name\)/);
    assert.equal((await get(edge.port, '/status')).status, 200);
  } finally {
    origin.closeAllConnections?.();
    origin.close();
    await stop(edge.proc, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an origin that accepts but never answers: ended by --publisher-timeout, backed off; SIGINT during a pending request exits 0', { timeout: 60000 }, async () => {
  const held = new Set();
  const mute = net.createServer((sock) => { held.add(sock); sock.on('error', () => {}); sock.on('close', () => held.delete(sock)); });
  await new Promise((r) => mute.listen(0, '127.0.0.1', r));
  const edge = await startServer(['--relay', relayUrl(mute.address().port), '--publisher-timeout', '1',
    '--relay-retry-min', '0.2', '--relay-retry-max', '0.4']);
  try {
    await waitFor(() => (edge.proc.output.match(/stalled: no data/g) || []).length >= 3, 20000, 'three unanswered attempts');
    const waits = [...edge.proc.output.matchAll(/relay: next attempt in ([0-9.]+) s/g)].map((m) => +m[1]);
    assert.deepEqual(waits.slice(0, 3), [0.2, 0.4, 0.4], 'a silent connection is a failure: backed off');
    assert.equal((await get(edge.port, '/status')).status, 200);
    // A request is pending (the origin holds it): the edge still shuts down at once.
    await waitFor(() => held.size > 0, 5000, 'a pending request');
    const { code } = await stop(edge.proc, 'SIGINT');
    assert.equal(code, 0, edge.proc.output);
  } finally {
    for (const c of held) c.destroy();
    mute.close();
    await stop(edge.proc, 'SIGKILL');
  }
});

test('--relay-name: a named stream of the origin (HTTP ingest) relayed into a named stream of the edge; HTTP publishers of it get 409', { timeout: 60000 }, async () => {
  const origin = await startServer();
  const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 30), '-f', 'mp4',
    '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-method', 'PUT', `http://127.0.0.1:${origin.port}/live/a`]);
  const edge = await startServer(['--relay', relayUrl(origin.port, '/live/a/stream.mp4'), '--relay-name', 'cam']);
  try {
    assert.doesNotMatch(edge.proc.output, /TCP ingest off/, 'the default stream keeps its TCP ingest');
    const v = viewer(`ws://127.0.0.1:${edge.port}/live/cam/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'fragments of /live/cam/');
    assert.ok(v.inits[0].fragments[0].keyframe);
    const streams = await getJson(edge.port, '/streams');
    assert.ok(streams.some((x) => x.name === 'cam' && x.publishing), JSON.stringify(streams));
    const put = await new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: edge.port, path: '/live/cam', method: 'PUT' }, (res) => { res.resume(); resolve(res.statusCode); });
      req.on('error', () => resolve('error'));
      req.write(Buffer.alloc(16));
    });
    assert.equal(put, 409);
    v.ws.close();
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(edge.proc, 'SIGINT');
    await stop(origin.proc, 'SIGINT');
  }
});

test('the gst-launch edge of the README: souphttpsrc is-live=true ! fmp4initcache ! websocketsink serves the origin\'s stream', { timeout: 60000 }, async () => {
  const origin = await startServer();
  const ff = publish(H264('320x180', 30), origin.ingest);
  const port = await freePort();
  const gl = run('gst-launch-1.0', ['-q', 'souphttpsrc', `location=${relayUrl(origin.port)}`, 'is-live=true',
    '!', 'fmp4initcache', '!', 'websocketsink', `port=${port}`]);
  try {
    await waitFor(async () => { try { return (await get(port, '/status')).status === 200; } catch { return false; } }, 10000, 'the pipeline');
    const v = viewer(`ws://127.0.0.1:${port}/`);
    await v.opened;
    await waitFor(() => v.fragments >= 2, 20000, 'fragments through the pipeline');
    assert.match(v.streams[0].codecs, /^avc1\./);
    assert.ok(v.inits[0].fragments[0].keyframe);
    assert.ok(v.inits[0].fragments[0].prft, 'the origin\'s prft');
    assert.equal((await getJson(origin.port, '/status')).viewers, 1);
    // What it does not do: outlive its origin (souphttpsrc ends the pipeline at the end of
    // the response; the test times out if it does not).
    await stop(origin.proc, 'SIGKILL');
    const r = await gl.done;
    assert.equal(r.sig, null, 'gst-launch exited by itself');
    await waitFor(() => v.closed, 5000, 'the viewer closed with the pipeline');
  } finally {
    await stop(ff, 'SIGKILL');
    await stop(gl, 'SIGKILL');
    await stop(origin.proc, 'SIGINT');
  }
});
