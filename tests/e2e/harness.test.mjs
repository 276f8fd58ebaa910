// Self-test of the e2e harness, in every browser of BROWSERS (Debian's Chromium and Firefox ESR):
// the browser starts through puppeteer-core under this Node.js, MSE has the codecs the e2e tests
// use, the sampling helpers work, and web/fmp4-player.js loads and names a codec the browser cannot
// play. No pipeline needed: web/ and the WebSocket are served by lib/webserver.mjs on loopback.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSERS, BROWSER_PATHS, haveBrowser, launchBrowser, sampleVideo, videoSnapshot } from './lib/browser.mjs';
import { startWebServer } from './lib/webserver.mjs';

/** Codecs a browser may not play, with the name the player must give (the first rejected is used). */
const UNPLAYABLE = [
  ['hvc1.1.6.L93.B0', 'H.265/HEVC'],
  ['mp4a.a6', 'E-AC-3'],
  ['ac-3', 'AC-3'],
];

for (const engine of BROWSERS) {
  describe(engine, () => {
    // A missing browser FAILS the suite (the test scripts install it; a skip would hide a missing
    // install): the first test says why, the others fail because there is no browser.
    let b;
    before(async () => {
      if (haveBrowser(engine)) b = await launchBrowser({ engine });
    });
    after(async () => {
      await b?.close();
    });

    test(`Debian's ${engine} is installed and starts`, async () => {
      assert.ok(haveBrowser(engine),
        `no ${engine} at ${BROWSER_PATHS[engine]}: apt-get install -y ${engine === 'firefox' ? 'firefox-esr' : 'chromium'}`);
      assert.ok(b, 'no browser');
      const ua = await b.page.evaluate(() => navigator.userAgent);
      assert.match(ua, engine === 'firefox' ? /Firefox\// : /Chrome\//);
    });

    test('MSE supports the codecs the e2e tests use', async () => {
      assert.ok(b, 'no browser');
      await b.page.goto('about:blank');
      const types = [
        'video/mp4; codecs="avc1.640028, mp4a.40.2"',
        'video/mp4; codecs="avc1.64001e"',
        'video/mp4; codecs="vp09.00.31.08, mp4a.40.2"',
        'video/mp4; codecs="av01.0.04M.08"',
        'audio/mp4; codecs="opus"',
        'audio/mp4; codecs="flac"',
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
      await b.page.goto('about:blank');
      const rejected = await b.page.evaluate(
        (list) => list.find(([c]) => !MediaSource.isTypeSupported(`video/mp4; codecs="avc1.64001e, ${c}"`)) ?? null, UNPLAYABLE);
      assert.ok(rejected, `this ${engine} plays every codec of ${JSON.stringify(UNPLAYABLE)}: the test needs another one`);
      const [codec, name] = rejected;
      const fromPlayer = [];
      const server = await startWebServer((ws) => {
        ws.on('message', (m) => fromPlayer.push(JSON.parse(String(m))));
        ws.send(JSON.stringify({
          type: 'stream', generation: 1, mime: `video/mp4; codecs="avc1.64001e, ${codec}"`,
          codecs: `avc1.64001e, ${codec}`, width: 1920, height: 1080, has_video: true, has_audio: true, rebased: true,
        }));
      });
      const page = await b.newPage();
      try {
        await page.goto(`${server.origin}/`);
        await page.waitForFunction(() => window.player?.state === 'unsupported', { timeout: 10000 });
        const text = await page.evaluate(() => window.player.shadowRoot.querySelector('.msg').textContent);
        assert.ok(text.includes(`${name} (${codec})`), `the message names ${name} (${codec}): "${text}"`);
        for (let i = 0; i < 50 && !fromPlayer.some((m) => m.type === 'pause'); i++) await new Promise((r) => setTimeout(r, 20));
        assert.deepEqual(fromPlayer.filter((m) => m.type !== 'report'), [{ type: 'pause' }]);
        // and the player's stats object has the documented fields
        const stats = await page.evaluate(() => window.player.stats);
        for (const k of ['latency', 'bitrate', 'resolution', 'droppedFrames', 'decodedFrames', 'reconnects', 'stalls', 'generation', 'state', 'timeToFirstFrame']) {
          assert.ok(k in stats, `stats.${k}`);
        }
        assert.equal(stats.generation, 1);
      } finally {
        await page.close();
        await server.close();
      }
    });
  });
}
