// GET /metrics (Prometheus text format 0.0.4) on fmp4ws-server and on a websocketsink of its
// own, checked by Debian's `promtool check metrics` and scraped by a real `prometheus` (Debian
// package; scripts/deps.sh test installs it): its HTTP API must report the viewers that real
// WebSocket viewers make. Missing promtool/prometheus fails the test (never skipped).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { serverBin, env, freePort, run, stop, get, waitFor as waitForEvery } from './lib.mjs';

const dirs = [];
// This file polls every 100 ms (lib.mjs' default is 50).
const waitFor = (pred, ms, what) => waitForEvery(pred, ms, what, 100);

after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function which(cmd) {
  try { return execFileSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).trim(); } catch { return ''; }
}
const NEED = 'install Debian\'s prometheus package (scripts/deps.sh test does)';

// The value of one sample line (name with its labels), or undefined.
function sample(text, series) {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function promtoolCheck(text) {
  // Exit status 0 and no complaint: execFileSync throws otherwise (with promtool's output).
  return execFileSync(which('promtool'), ['check', 'metrics'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

// One instant query of Prometheus' HTTP API: the result vector.
async function query(promPort, q) {
  const r = await get(promPort, `/api/v1/query?query=${encodeURIComponent(q)}`);
  if (r.status !== 200) return [];
  const j = JSON.parse(r.body);
  return j.status === 'success' ? j.data.result : [];
}

function viewer(url) {
  const v = { fragments: 0 };
  v.ws = new WebSocket(url);
  v.ws.binaryType = 'nodebuffer';
  v.ws.on('message', (data, isBinary) => {
    if (isBinary && data.subarray(4, 8).toString('latin1') !== 'ftyp') v.fragments++;
  });
  v.opened = new Promise((resolve, reject) => { v.ws.on('open', resolve); v.ws.on('error', reject); });
  return v;
}

const SECRET = 'prom-s3cret';

test('GET /metrics: promtool-clean on fmp4ws-server and websocketsink; a real prometheus scrapes both and sees the viewers', { timeout: 120000 }, async () => {
  assert.ok(which('promtool'), `promtool not found: ${NEED}`);
  assert.ok(which('prometheus'), `prometheus not found: ${NEED}`);

  // fmp4ws-server with signed links, stream cam1 published over HTTP PUT by ffmpeg.
  const port = await freePort();
  const srv = run(serverBin, ['--port', String(port), '--ingest-port', '0', '--token-secret', SECRET]);
  await waitFor(async () => { try { return (await get(port, '/metrics')).status === 403; } catch { return false; } }, 10000, 'fmp4ws-server');
  const tokenOf = (args) => new URL(execFileSync(serverBin, ['token', '--secret', SECRET, ...args], { env, encoding: 'utf8' }).trim()).searchParams.get('token');
  const metricsToken = tokenOf(['--metrics', '--ttl', '600']);
  const viewerToken = tokenOf(['--stream', 'cam1']);
  const ff = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30',
    '-t', '100', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '30', '-pix_fmt', 'yuv420p',
    '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '200000', '-method', 'PUT',
    `http://127.0.0.1:${port}/live/cam1?token=${tokenOf(['--publish', '--stream', 'cam1'])}`]);
  // A websocketsink of its own (gst-launch-1.0), with its own listener.
  const sinkPort = await freePort();
  const sink = run('gst-launch-1.0', ['-q', 'videotestsrc', 'is-live=true', '!', 'video/x-raw,width=320,height=180,framerate=30/1', '!',
    'x264enc', 'tune=zerolatency', 'speed-preset=ultrafast', 'key-int-max=30', '!', 'mp4mux', 'fragment-duration=200', 'streamable=true', '!',
    'fmp4initcache', '!', 'websocketsink', `port=${sinkPort}`]);
  await waitFor(async () => { try { return (await get(sinkPort, '/metrics')).status === 200; } catch { return false; } }, 15000, 'the websocketsink');

  // Real viewers: one on the server's cam1 (signed), one on the sink.
  await waitFor(async () => (await get(port, `/streams?token=${tokenOf(['--list'])}`)).body.includes('"name":"cam1"'), 20000, 'stream cam1');
  const v1 = viewer(`ws://127.0.0.1:${port}/live/cam1/ws?token=${viewerToken}`);
  const v2 = viewer(`ws://127.0.0.1:${sinkPort}/ws`);
  await Promise.all([v1.opened, v2.opened]);
  await waitFor(() => v1.fragments >= 3 && v2.fragments >= 3, 20000, 'fragments at both viewers');

  // The server: 403 without the metrics token (and with a viewer's), text 0.0.4 with it.
  assert.equal((await get(port, '/metrics')).status, 403);
  assert.equal((await get(port, `/metrics?token=${viewerToken}`)).status, 403);
  const m = await get(port, `/metrics?token=${metricsToken}`);
  assert.equal(m.status, 200);
  assert.equal(m.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  promtoolCheck(m.body);
  assert.equal(sample(m.body, 'fmp4ws_viewers{stream="cam1"}'), 1, m.body);
  assert.equal(sample(m.body, 'fmp4ws_viewers{stream="(default)"}'), 0);
  assert.equal(sample(m.body, 'fmp4ws_publishing{stream="cam1"}'), 1);
  assert.equal(sample(m.body, 'fmp4ws_publishers_total{stream="cam1"}'), 1);
  assert.ok(sample(m.body, 'fmp4ws_sent_fragments_total{stream="cam1"}') >= 3, m.body);
  assert.ok(sample(m.body, 'fmp4ws_gop_cache_fragments{stream="cam1"}') >= 1, m.body);
  assert.equal(sample(m.body, 'fmp4ws_viewer_backlog_bytes_count{stream="cam1"}'), 1);
  assert.ok(sample(m.body, 'fmp4ws_connection_budget') > 0);
  assert.ok(sample(m.body, 'process_open_fds') > 0);
  assert.ok(sample(m.body, 'fmp4ws_refused_connections_total{stream="",reason="budget"}') === 0);
  // The 403s above were counted nowhere per stream (GET /metrics is the server's, not a
  // stream's); a refused viewer is counted on its stream.
  const bad = new WebSocket(`ws://127.0.0.1:${port}/live/cam1/ws`);
  await new Promise((resolve) => { bad.on('error', resolve); bad.on('close', resolve); });
  const m2 = await get(port, `/metrics?token=${metricsToken}`);
  assert.equal(sample(m2.body, 'fmp4ws_refused_connections_total{stream="cam1",reason="token"}'), 1, m2.body);
  // The sink: promtool-clean too.
  const sm = await get(sinkPort, '/metrics');
  promtoolCheck(sm.body);
  assert.equal(sample(sm.body, 'fmp4ws_viewers'), 1, sm.body);

  // A real prometheus scraping both every second.
  const promPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fmp4ws-prom-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'prometheus.yml'), `global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: fmp4ws-server
    params:
      token: ['${metricsToken}']
    static_configs:
      - targets: ['127.0.0.1:${port}']
  - job_name: websocketsink
    static_configs:
      - targets: ['127.0.0.1:${sinkPort}']
`);
  const prom = run(which('prometheus'), [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`]);
  try {
    await waitFor(async () => {
      if (prom.exitCode !== null) assert.fail(`prometheus exited (${prom.exitCode}):\n${prom.output}`);
      try { return (await get(promPort, '/-/ready')).status === 200; } catch { return false; }
    }, 30000, `prometheus to start:\n${prom.output}`);
    const valueOf = async (q) => { const r = await query(promPort, q); return r.length === 1 ? Number(r[0].value[1]) : undefined; };
    await waitFor(async () => await valueOf('fmp4ws_viewers{job="fmp4ws-server",stream="cam1"}') === 1 &&
      await valueOf('fmp4ws_viewers{job="websocketsink"}') === 1, 30000, 'prometheus to scrape one viewer on each target');
    assert.equal(await valueOf('up{job="fmp4ws-server"}'), 1);
    assert.equal(await valueOf('up{job="websocketsink"}'), 1);
    assert.ok(await valueOf('fmp4ws_sent_bytes_total{job="websocketsink"}') > 0);
    assert.equal(await valueOf('fmp4ws_publishing{stream="cam1"}'), 1);
    // The histograms work with histogram_quantile (one viewer: a quantile of its bucket).
    const q = await valueOf('histogram_quantile(0.5, fmp4ws_viewer_backlog_bytes_bucket{job="websocketsink"})');
    assert.ok(Number.isFinite(q) && q >= 0, `backlog quantile ${q}`);
    // The viewer leaves: prometheus sees 0.
    v2.ws.close();
    await waitFor(async () => await valueOf('fmp4ws_viewers{job="websocketsink"}') === 0, 30000, 'prometheus to see the viewer gone');
  } finally {
    v1.ws.close();
    await stop(prom);
    await stop(ff, 'SIGKILL');
    await stop(sink, 'SIGINT');
    await stop(srv);
  }
});
