// Self-test of the e2e harness: Debian's Chromium starts through playwright-core, MSE has the codecs
// the e2e tests use, the sampling helpers work, and web/fmp4-player.js loads and reports a codec the
// browser cannot play. No server needed (web/ is served and the WebSocket mocked by playwright).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM_PATH, haveChromium, launchBrowser, sampleVideo, videoSnapshot } from './lib/browser.mjs';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web');
const ORIGIN = 'http://fmp4ws.test';
// A missing Chromium FAILS the suite (CI installs it; a skipped test would hide a missing install):
// the first test says why, the others fail because there is no browser.
let b;
before(async () => {
  if (haveChromium()) b = await launchBrowser();
});
after(async () => {
  await b?.close();
});

test('Debian Chromium is installed', () => {
  assert.ok(haveChromium(), `no Chromium at ${CHROMIUM_PATH}: apt-get install -y chromium (or set CHROMIUM_PATH)`);
});

/** Serves web/ under ORIGIN without a server. */
async function serveWeb(page) {
  await page.route(`${ORIGIN}/**`, (route) => {
    const p = new URL(route.request().url()).pathname;
    const file = path.join(WEB, p === '/' ? 'index.html' : p);
    if (!file.startsWith(WEB) || !fs.existsSync(file)) return route.fulfill({ status: 404, body: 'not found' });
    const type = file.endsWith('.js') ? 'text/javascript' : 'text/html';
    return route.fulfill({ status: 200, contentType: type, body: fs.readFileSync(file) });
  });
}

test('MSE supports the codecs the e2e tests use', async () => {
  assert.ok(b, 'no browser');
  await b.page.goto('about:blank');
  const types = [
    'video/mp4; codecs="avc1.640028, mp4a.40.2"',
    'video/mp4; codecs="avc1.64001e"',
    'video/mp4; codecs="vp09.00.31.08, mp4a.40.2"',
    'video/mp4; codecs="av01.0.04M.08"',
    'audio/mp4; codecs="opus"',
  ];
  const res = await b.page.evaluate((t) => t.map((x) => MediaSource.isTypeSupported(x)), types);
  assert.deepEqual(res, types.map(() => true), JSON.stringify(Object.fromEntries(types.map((t, i) => [t, res[i]]))));
});

test('sampling helpers on an idle <video>', async () => {
  assert.ok(b, 'no browser');
  await b.page.setContent('<video></video>');
  const s = await sampleVideo(b.page, { seconds: 0.6, interval: 100 });
  assert.ok(s.samples.length >= 5);
  assert.ok(s.wallSeconds >= 0.5);
  assert.equal(s.playedSeconds, 0);
  assert.equal(s.error, null);
  assert.equal(s.width, 0);
  const snap = await videoSnapshot(b.page);
  assert.equal(snap.found, true);
  assert.equal(snap.stats, null);
});

test('index.html: <fmp4-player> names a codec the browser cannot play and asks for pause', async () => {
  assert.ok(b, 'no browser');
  const page = await b.context.newPage();
  try {
    await serveWeb(page);
    const fromPlayer = [];
    await page.routeWebSocket(/\/ws$/, (ws) => {
      ws.onMessage((m) => fromPlayer.push(JSON.parse(String(m))));
      ws.send(JSON.stringify({
        type: 'stream', generation: 1, mime: 'video/mp4; codecs="hvc1.1.6.L93.B0, mp4a.40.2"',
        codecs: 'hvc1.1.6.L93.B0, mp4a.40.2', width: 1920, height: 1080, has_video: true, has_audio: true, rebased: true,
      }));
    });
    await page.goto(`${ORIGIN}/`);
    await page.waitForFunction(() => window.player?.state === 'unsupported', null, { timeout: 10000 });
    const text = await page.evaluate(() => window.player.shadowRoot.querySelector('.msg').textContent);
    assert.match(text, /H\.265\/HEVC \(hvc1\.1\.6\.L93\.B0\)/);
    for (let i = 0; i < 50 && !fromPlayer.length; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(fromPlayer.filter((m) => m.type !== 'report'), [{ type: 'pause' }]);
    // and the player's stats object has the documented fields
    const stats = await page.evaluate(() => window.player.stats);
    for (const k of ['latency', 'bitrate', 'resolution', 'droppedFrames', 'decodedFrames', 'reconnects', 'stalls', 'generation', 'state', 'timeToFirstFrame']) {
      assert.ok(k in stats, `stats.${k}`);
    }
    assert.equal(stats.generation, 1);
  } finally {
    await page.close();
  }
});
