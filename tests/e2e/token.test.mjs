// Signed links (websocketsink token-secret): a page opened with a valid ?token= plays (index.html
// passes the token on to its WebSocket); without a token, with an expired one or one signed for
// another path, every route answers 403 — to the browser and to plain HTTP/WebSocket clients.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { Scene, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

const SECRET = 'e2e-secret';
const PIPELINE =
  'videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=180,framerate=30/1,format=I420 ' +
  '! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! queue ' +
  '! mp4mux fragment-duration=500 streamable=true ! fmp4initcache ' +
  `! websocketsink port=0 name=sink token-secret=${SECRET}`;

/** EXPIRY.SIG as any backend makes it (Node's crypto here, GLib's GHmac in the sink). */
function token(expiry, path, secret = SECRET) {
  return `${expiry}.${crypto.createHmac('sha256', secret).update(`${expiry}:${path}`).digest('hex')}`;
}
const now = () => Math.floor(Date.now() / 1000);

/** Status of a request (GET/HEAD, or a WebSocket upgrade), without reading a streaming body. */
function statusOf(port, path, { method = 'GET', upgrade = false } = {}) {
  return new Promise((resolve, reject) => {
    const headers = upgrade
      ? { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64') }
      : {};
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false });
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path}: no answer in 5 s`)));
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve({ status: res.statusCode, body: '' }); });
    req.on('response', (res) => {
      if (res.statusCode === 200 && /video\/mp4/.test(res.headers['content-type'] ?? '')) {
        res.destroy(); // the live stream goes on
        return resolve({ status: 200, body: '' });
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Every route of the stream with `query`: [what, status, body]. */
async function routes(port, query) {
  const out = [];
  for (const p of ['/', '/index.html', '/status', '/stream.mp4', '/notes-client.html'])
    out.push([`GET ${p}`, await statusOf(port, p + query)]);
  out.push(['HEAD /stream.mp4', await statusOf(port, `/stream.mp4${query}`, { method: 'HEAD' })]);
  for (const p of ['/ws', '/'])
    out.push([`WebSocket ${p}`, await statusOf(port, p + query, { upgrade: true })]);
  return out;
}

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  test('token-secret: a page with a valid token plays; missing, expired or wrong-path tokens get 403 everywhere', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const gst = scene.pipeline(PIPELINE);
      const port = await gst.port('sink');
      const valid = `?token=${token(now() + 600, '/')}`;
      await waitForServer(port, { stream: true, procs: [gst], query: valid });

      // Refused, with the same answer whatever is wrong.
      const bad = {
        missing: '',
        expired: `?token=${token(now() - 1, '/')}`,
        'wrong path': `?token=${token(now() + 600, '/live/cam1')}`,
        'wrong secret': `?token=${token(now() + 600, '/', 'other')}`,
      };
      for (const [why, q] of Object.entries(bad)) {
        for (const [what, r] of await routes(port, q)) {
          assert.equal(r.status, 403, `${why}: ${what} → ${r.status}`);
          if (!what.startsWith('WebSocket') && !what.startsWith('HEAD')) assert.equal(r.body, 'forbidden\n', `${why}: ${what} body`);
        }
      }
      for (const [what, r] of await routes(port, valid))
        assert.equal(r.status, what.startsWith('WebSocket') ? 101 : 200, `valid: ${what} → ${r.status}`);

      // In the browser: the page without a token is refused...
      const page = await scene.newPage(browser);
      for (const [why, q] of Object.entries(bad)) {
        const res = await page.goto(`http://127.0.0.1:${port}/${q}`, { waitUntil: 'domcontentloaded' });
        assert.equal(res.status(), 403, `browser, ${why}: page → ${res.status()}`);
      }
      // ...with one it loads its scripts (no token needed), passes the token to its WebSocket, plays.
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/${valid}`);
      const s = await watchFor(page, 5);
      await reportMetrics(t, `${engine}/token/index.html`, { ttff, s, port, query: valid });
      assertPlayed(s, { what: 'index.html with a token', width: 320, height: 180 });
      const wsUrl = await page.evaluate(() => window.player.getAttribute('src'));
      assert.equal(wsUrl, `ws://127.0.0.1:${port}/ws${valid}`);
      // The browser's own WebSocket without a token, or with an expired one, never opens.
      const outcomes = await page.evaluate((urls) => Promise.all(urls.map((u) => new Promise((resolve) => {
        const ws = new WebSocket(u);
        ws.onopen = () => { resolve('open'); ws.close(); };
        ws.onclose = () => resolve('closed');
      }))), [`ws://127.0.0.1:${port}/ws`, `ws://127.0.0.1:${port}/ws${bad.expired}`, `ws://127.0.0.1:${port}/ws${valid}`]);
      assert.deepEqual(outcomes, ['closed', 'closed', 'open']);
    });
  });
});
}
