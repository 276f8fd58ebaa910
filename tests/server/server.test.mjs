// fmp4ws-server as the notes' users run it: ffmpeg publishers that stop and start (TCP),
// several streams over HTTP PUT, a garbage publisher, and nginx in front (ws and TLS).
// Viewers are WebSocket clients (the `ws` package) that check what they receive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';
import WebSocket from 'ws';
import { here, serverBin, env, sleep, freePort, run, stop, waitFor, getJson } from './lib.mjs';

async function startServer(publisherTimeout = 3) {
  const port = await freePort();
  const ingest = await freePort();
  const s = run(serverBin, ['--port', String(port), '--ingest-port', String(ingest), '--publisher-timeout', String(publisherTimeout)]);
  await waitFor(async () => { try { await getJson(port, '/streams'); return true; } catch { return false; } }, 10000, 'the server');
  return { proc: s, port, ingest };
}

// A viewer: records stream/start messages and fragments (binary messages that hold a moof).
function viewer(url, opts = {}) {
  const v = { msgs: [], streams: [], fragments: 0, inits: 0, lastFragmentAt: 0, maxGap: 0, closed: false };
  v.ws = new WebSocket(url, opts);
  v.ws.binaryType = 'nodebuffer';
  v.ws.on('message', (data, isBinary) => {
    if (!isBinary) {
      const m = JSON.parse(data.toString());
      v.msgs.push(m);
      if (m.type === 'stream') v.streams.push(m);
      return;
    }
    const type = data.subarray(4, 8).toString('latin1');
    if (type === 'ftyp') { v.inits++; return; }
    const now = Date.now();
    if (v.lastFragmentAt) v.maxGap = Math.max(v.maxGap, now - v.lastFragmentAt);
    v.lastFragmentAt = now;
    v.fragments++;
  });
  v.ws.on('close', () => { v.closed = true; });
  v.opened = new Promise((resolve, reject) => { v.ws.on('open', resolve); v.ws.on('error', reject); });
  return v;
}

const H264 = (size, seconds) => ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`, '-f', 'lavfi', '-i', 'sine=frequency=440',
  '-t', String(seconds), '-c:a', 'aac', '-ab', '64k', '-c:v', 'libx264', '-preset', 'veryfast', '-vb', '448k', '-g', '30',
  '-pix_fmt', 'yuv420p', '-profile:v', 'high'];
const VP9 = (size, seconds) => ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${size}:rate=30`, '-f', 'lavfi', '-i', 'sine=frequency=440',
  '-t', String(seconds), '-c:a', 'libopus', '-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-b:v', '800k', '-g', '30'];
// The notes' movflags (no empty_moov) over TCP.
const NOTES_TCP = (port) => ['-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-reset_timestamps', '1',
  '-frag_duration', '70000', `tcp://localhost:${port}/`];
const PUT = (port, name) => ['-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-method', 'PUT',
  `http://127.0.0.1:${port}/live/${name}`];

function rssKiB(pid) {
  return +/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1];
}

test('TCP publishers come and go (resolution and codec changes); viewers stay; RSS is flat', { timeout: 180000 }, async (t) => {
  const s = await startServer();
  try {
    const v = viewer(`ws://127.0.0.1:${s.port}/`);  // the notes' client connects to /
    await v.opened;
    const plan = [
      { args: H264('640x360', 3), codecs: /^avc1\.64/, width: 640 },
      { args: H264('1280x720', 3), codecs: /^avc1\.64/, width: 1280 },
      { args: VP9('640x360', 3), codecs: /^vp09/, width: 640 },
      { args: H264('640x360', 3), codecs: /^avc1/, width: 640 },
      { args: VP9('1280x720', 3), codecs: /^vp09/, width: 1280 },
    ];
    const rss = [];
    for (let i = 0; i < plan.length; i++) {
      const before = v.fragments;
      const t0 = Date.now();
      const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...plan[i].args, ...NOTES_TCP(s.ingest)]);
      await waitFor(() => v.streams.length === i + 1 && v.fragments > before, 10000, `publisher ${i + 1}'s first fragment`);
      const firstFragmentMs = Date.now() - t0;
      const st = v.streams[i];
      assert.equal(st.generation, i + 1);
      assert.match(st.codecs, plan[i].codecs);
      assert.equal(st.width, plan[i].width);
      assert.equal(v.inits, i + 1, 'one init segment per publisher');
      const { code } = await ff.done;
      assert.equal(code, 0, ff.output);
      await sleep(300);
      rss.push(rssKiB(s.proc.pid));
      t.diagnostic(`publisher ${i + 1} (${st.codecs}, ${st.width}x${st.height}): first fragment ${firstFragmentMs} ms after ffmpeg started; server RSS ${rss[i]} KiB`);
    }
    assert.ok(!v.closed, 'the viewer stayed connected');
    // RSS from restart to restart: no growth beyond noise after the first ones.
    assert.ok(rss[4] <= rss[1] + 8 * 1024, `RSS grew: ${rss.join(' -> ')} KiB`);
    v.ws.close();
  } finally {
    await stop(s.proc, 'SIGINT');
  }
});

test('a second concurrent TCP publisher is refused; the first goes on', { timeout: 60000 }, async () => {
  const s = await startServer();
  try {
    const v = viewer(`ws://127.0.0.1:${s.port}/ws`);
    await v.opened;
    const a = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 4), ...NOTES_TCP(s.ingest)]);
    await waitFor(() => v.fragments > 2, 10000, 'the first publisher');
    const b = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 4), ...NOTES_TCP(s.ingest)]);
    const rb = await b.done;
    assert.notEqual(rb.code, 0, 'the second publisher must be refused');
    const ra = await a.done;
    assert.equal(ra.code, 0, a.output);
    assert.equal(v.streams.length, 1);
    assert.match(s.proc.output, /refused a second publisher/);
  } finally {
    await stop(s.proc, 'SIGINT');
  }
});

test('an audio-only publisher with frag_keyframe alone: viewers and /status are told why and how to fix it', { timeout: 60000 }, async () => {
  // such a publisher sends nothing after its init: a --publisher-timeout (10 s, the default)
  // longer than fmp4initcache's no-fragment-timeout (5 s) lets the diagnostic come first
  const s = await startServer(10);
  try {
    const v = viewer(`ws://127.0.0.1:${s.port}/ws`);
    await v.opened;
    const a = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'sine=frequency=440',
      '-c:a', 'aac', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', `tcp://127.0.0.1:${s.ingest}/`]);
    // fmp4initcache's no-fragment-timeout (5 s) after the init segment
    await waitFor(() => v.streams.some((m) => typeof m.warning === 'string'), 20000, 'a stream message with a warning');
    const warning = v.streams.find((m) => m.warning).warning;
    assert.match(warning, /-frag_duration 500000/);
    assert.equal(v.fragments, 0);
    const st = await getJson(s.port, '/status');
    assert.match(JSON.stringify(st), /frag_keyframe/);
    assert.match(s.proc.output, /No fragment after the init segment/);
    await stop(a, 'SIGKILL');
  } finally {
    await stop(s.proc, 'SIGINT');
  }
});

test('two HTTP-ingest streams at once; a garbage publisher is dropped, the other stream plays on', { timeout: 90000 }, async (t) => {
  const s = await startServer();
  try {
    const pa = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 8), ...PUT(s.port, 'a')]);
    const pb = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...VP9('320x180', 8), ...PUT(s.port, 'b')]);
    await waitFor(async () => (await getJson(s.port, '/streams')).filter((x) => x.publishing).length === 2, 10000, 'two streams');
    const va = viewer(`ws://127.0.0.1:${s.port}/live/a/ws`);
    const vb = viewer(`ws://127.0.0.1:${s.port}/live/b/ws`);
    await Promise.all([va.opened, vb.opened]);
    await waitFor(() => va.fragments > 3 && vb.fragments > 3, 10000, 'both streams');
    assert.match(va.streams[0].codecs, /^avc1/);
    assert.match(vb.streams[0].codecs, /^vp09/);
    // The player page of a stream is served under its path.
    const page = await new Promise((resolve) => http.get({ host: '127.0.0.1', port: s.port, path: '/live/a/' }, (res) => {
      let body = ''; res.on('data', (d) => { body += d; }); res.on('end', () => resolve({ status: res.statusCode, body }));
    }));
    assert.equal(page.status, 200);
    assert.match(page.body, /fmp4-player/);

    // Garbage, sent without end: the server drops that publisher (4 MiB without a box).
    const garbageDone = new Promise((resolve) => {
      const req = http.request({ host: '127.0.0.1', port: s.port, path: '/live/junk', method: 'PUT' });
      req.on('error', () => resolve('connection cut'));
      req.on('response', (res) => resolve(`status ${res.statusCode}`));
      const chunk = Buffer.alloc(64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 64 * 1024 * 1024) {
          for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, i);
          sent += chunk.length;
          if (!req.write(chunk)) { req.once('drain', pump); return; }
        }
        req.end();
      };
      pump();
    });
    const gapBefore = va.fragments;
    const how = await garbageDone;
    t.diagnostic(`garbage publisher: ${how}`);
    await waitFor(() => /publisher .* ended .*: ingest error/.test(s.proc.output), 5000, 'the garbage publisher to be dropped');
    await sleep(1000);
    assert.ok(va.fragments > gapBefore + 2, 'stream a kept playing');
    assert.ok(va.maxGap < 1500, `stream a stalled ${va.maxGap} ms`);
    const streams = await getJson(s.port, '/streams');
    assert.ok(!streams.some((x) => x.name === 'junk'), 'the garbage stream is not listed');
    assert.equal((await pa.done).code, 0, pa.output);
    assert.equal((await pb.done).code, 0, pb.output);
  } finally {
    await stop(s.proc, 'SIGINT');
  }
});

test('a stalled publisher is dropped after --publisher-timeout', { timeout: 60000 }, async () => {
  const s = await startServer();
  try {
    // Connect, send a valid ftyp, then nothing.
    const sock = connect(s.ingest, '127.0.0.1');
    await new Promise((r) => sock.on('connect', r));
    const ftyp = Buffer.from('0000001c667479706973356f0000020069736f3569736f366d703431', 'hex');
    sock.write(ftyp);
    const closed = new Promise((r) => sock.on('close', r));
    await waitFor(() => /stalled: no data for 3 s/.test(s.proc.output), 8000, 'the stall timeout');
    await closed;
  } finally {
    await stop(s.proc, 'SIGINT');
  }
});

/** `fmp4ws-server token ARGS`: the URL it prints. */
function tokenUrl(args) {
  const out = execFileSync(serverBin, ['token', ...args], { env, encoding: 'utf8' });
  assert.match(out, /^https?:\/\/\S+\?token=\d+\.[0-9a-f]{64}\n$/, out);
  return new URL(out.trim());
}

/** PUT `path` with a chunked body of which nothing is sent yet: { status, body } of the answer
 * the server gives at the request's headers (the request is then dropped). */
function putHead(port, path) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'PUT', agent: false, headers: { 'Transfer-Encoding': 'chunked' } });
    req.on('response', (res) => {
      let body = ''; res.on('data', (d) => { body += d; });
      res.on('end', () => { resolve({ status: res.statusCode, body }); req.destroy(); });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

/** GET (or a WebSocket upgrade): { status, body }, a streaming body cut after its head. */
function request(port, path, upgrade = false) {
  return new Promise((resolve, reject) => {
    const headers = upgrade ? { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' } : {};
    const req = http.request({ host: '127.0.0.1', port, path, headers, agent: false });
    req.on('upgrade', (res, sock) => { sock.destroy(); resolve({ status: res.statusCode, body: '' }); });
    req.on('response', (res) => {
      if (/video\/mp4/.test(res.headers['content-type'] ?? '')) { res.destroy(); return resolve({ status: res.statusCode, body: '' }); }
      let body = ''; res.on('data', (d) => { body += d; }); res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('--token-secret: the URL `fmp4ws-server token` prints plays; other streams\', expired and missing tokens get 403', { timeout: 90000 }, async () => {
  const SECRET = 'server-test-secret';
  const dir = mkdtempSync(join(tmpdir(), 'fmp4ws-token-'));
  writeFileSync(join(dir, 'secret'), `${SECRET}\n`);
  const port0 = await freePort();
  const list = tokenUrl(['--secret', SECRET, '--list', '--base-url', `http://127.0.0.1:${port0}`]);
  assert.equal(list.pathname, '/streams');
  // The list URL is made before the server starts: it names the port.
  const ingest = await freePort();
  const proc = run(serverBin, ['--port', String(port0), '--ingest-port', String(ingest), '--token-secret-file', join(dir, 'secret')]);
  const s = { proc, port: port0 };
  try {
    await waitFor(async () => { try { await getJson(s.port, list.pathname + list.search); return true; } catch { return false; } }, 10000, 'the server');
    const base = `http://127.0.0.1:${s.port}`;
    const cam1 = tokenUrl(['--secret-file', join(dir, 'secret'), '--stream', 'cam1', '--ttl', '120', '--base-url', base]);
    assert.equal(cam1.pathname, '/live/cam1/');
    // HTTP ingest needs a token signed for /live/cam1/publish: none, a viewer's or another
    // stream's publish token get 403 at the headers; unknown names answer like known ones.
    const publishUrl = tokenUrl(['--secret', SECRET, '--publish', '--stream', 'cam1', '--base-url', base]);
    assert.equal(publishUrl.pathname, '/live/cam1');
    const cam2Publish = tokenUrl(['--secret', SECRET, '--publish', '--stream', 'cam2', '--base-url', base]).search;
    for (const [why, q] of Object.entries({ none: '', viewer: cam1.search, other: cam2Publish })) {
      assert.deepEqual(await putHead(s.port, `/live/cam1${q}`), { status: 403, body: 'forbidden\n' }, `PUT, ${why}`);
    }
    assert.deepEqual(await request(s.port, '/live/nosuch/status'), await request(s.port, '/live/cam1/status'));
    assert.deepEqual(await request(s.port, '/live/nosuch/status'), { status: 403, body: 'forbidden\n' });
    const pub = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 8), ...PUT(s.port, 'cam1').slice(0, -1),
      `http://127.0.0.1:${s.port}/live/cam1${publishUrl.search}`]);
    await waitFor(async () => (await getJson(s.port, list.pathname + list.search)).some((x) => x.name === 'cam1' && x.publishing), 10000, 'stream cam1');
    // A second publisher while cam1 publishes: 409 Conflict.
    assert.equal((await putHead(s.port, `/live/cam1${publishUrl.search}`)).status, 409);

    // The printed URL: the page, and its token on every other route of the stream.
    const page = await request(s.port, cam1.pathname + cam1.search);
    assert.equal(page.status, 200);
    assert.match(page.body, /fmp4-player/);
    for (const p of ['status', 'stream.mp4']) assert.equal((await request(s.port, `/live/cam1/${p}${cam1.search}`)).status, 200, p);
    const v = viewer(`ws://127.0.0.1:${s.port}/live/cam1/ws${cam1.search}`);
    await v.opened;
    await waitFor(() => v.fragments > 3, 10000, 'fragments for the signed viewer');
    v.ws.close();

    // Refused: another stream's token, the default stream's, another secret's, an expired one, none.
    const other = tokenUrl(['--secret', SECRET, '--stream', 'cam2', '--base-url', base]).search;
    const root = tokenUrl(['--secret', SECRET, '--base-url', base]).search;
    const wrong = tokenUrl(['--secret', 'not-the-secret', '--stream', 'cam1', '--base-url', base]).search;
    const exp = Math.floor(Date.now() / 1000) - 1;
    const { createHmac } = await import('node:crypto');
    const expired = `?token=${exp}.${createHmac('sha256', SECRET).update(`${exp}:/live/cam1`).digest('hex')}`;
    for (const [why, q] of Object.entries({ other, root, wrong, expired, none: '' })) {
      for (const p of ['', 'index.html', 'status', 'stream.mp4']) {
        const r = await request(s.port, `/live/cam1/${p}${q}`);
        assert.deepEqual(r, { status: 403, body: 'forbidden\n' }, `${why}: /live/cam1/${p}`);
      }
      assert.equal((await request(s.port, `/live/cam1/ws${q}`, true)).status, 403, `${why}: WebSocket`);
    }
    const refused = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${s.port}/live/cam1/ws${other}`);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws.on('open', () => resolve('open'));
      ws.on('error', () => {});
    });
    assert.equal(refused, 403);
    // The default stream takes its own token; GET /streams only a /streams one.
    assert.equal((await request(s.port, `/${root}`)).status, 200);
    assert.equal((await request(s.port, `/status${root}`)).status, 200);
    assert.equal((await request(s.port, `/${cam1.search}`)).status, 403);
    assert.equal((await request(s.port, '/streams')).status, 403);
    assert.equal((await request(s.port, `/streams${root}`)).status, 403);
    assert.equal((await pub.done).code, 0, pub.output);
  } finally {
    await stop(s.proc, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('behind nginx (WebSocket proxy, and TLS terminated by nginx)', { timeout: 90000 }, async (t) => {
  const s = await startServer();
  const dir = mkdtempSync(join(tmpdir(), 'fmp4ws-nginx-'));
  try {
    const httpPort = await freePort();
    const httpsPort = await freePort();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const conf = readFileSync(join(here, '..', '..', 'docs', 'nginx.conf'), 'utf8')
      .replace(/127\.0\.0\.1:8080/g, `127.0.0.1:${s.port}`)
      .replace(/listen 80;/, `listen 127.0.0.1:${httpPort};`)
      .replace(/listen 443 ssl;/, `listen 127.0.0.1:${httpsPort} ssl;`)
      .replace(/\/etc\/ssl\/fmp4ws\/cert\.pem/, join(dir, 'cert.pem'))
      .replace(/\/etc\/ssl\/fmp4ws\/key\.pem/, join(dir, 'key.pem'));
    writeFileSync(join(dir, 'site.conf'), conf);
    writeFileSync(join(dir, 'nginx.conf'), `
      worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
      ${process.getuid() === 0 ? 'user root;' : ''}
      events { worker_connections 256; }
      http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir};
             fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
             include ${dir}/site.conf; }`);
    const ng = run('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;']);
    await waitFor(async () => {
      try { await getJson(httpPort, '/streams'); return true; } catch { return false; }
    }, 10000, 'nginx');
    const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...H264('320x180', 8), ...NOTES_TCP(s.ingest)]);
    const v = viewer(`ws://127.0.0.1:${httpPort}/ws`);
    // nginx listens on 127.0.0.1 only: name the address (on Debian 12 "localhost" is ::1 first,
    // and Node.js 18 does not fall back to IPv4); the certificate's name goes in SNI
    const vs = viewer(`wss://127.0.0.1:${httpsPort}/ws`, { rejectUnauthorized: false, servername: 'localhost' });
    await Promise.all([v.opened, vs.opened]);
    await waitFor(() => v.fragments > 5 && vs.fragments > 5, 15000, 'fragments through nginx');
    assert.match(v.streams[0].mime, /^video\/mp4; codecs="avc1/);
    assert.match(vs.streams[0].mime, /^video\/mp4; codecs="avc1/);
    t.diagnostic(`through nginx: ${v.fragments} fragments (ws), ${vs.fragments} (wss), largest gap ${Math.max(v.maxGap, vs.maxGap)} ms`);
    v.ws.close();
    vs.ws.close();
    await ff.done;
    await stop(ng, 'SIGQUIT');
  } finally {
    await stop(s.proc, 'SIGINT');
    rmSync(dir, { recursive: true, force: true });
  }
});
