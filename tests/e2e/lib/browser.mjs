// Browser helpers for the e2e tests: launch Debian's Chromium (DevTools protocol) or Debian's
// Firefox ESR (WebDriver BiDi) through puppeteer-core (never a downloaded browser; runs on Debian
// 12's own Node.js 18) and measure what a <video> really does.
import fs from 'node:fs';
import { after, before } from 'node:test';
import puppeteer from 'puppeteer-core';

/** Debian's browsers; override with CHROMIUM_PATH / FIREFOX_PATH. */
export const BROWSER_PATHS = {
  chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  firefox: process.env.FIREFOX_PATH || '/usr/bin/firefox-esr',
};

/** The engines the playback tests run in: `FMP4WS_E2E_BROWSERS=chromium,firefox` (the default). */
export const BROWSERS = (process.env.FMP4WS_E2E_BROWSERS || 'chromium,firefox')
  .split(',').map((b) => b.trim()).filter(Boolean);
for (const b of BROWSERS) {
  if (!(b in BROWSER_PATHS)) throw new Error(`FMP4WS_E2E_BROWSERS: unknown browser "${b}" (chromium, firefox)`);
}

/** Chromium flags of DESIGN.md: no background traffic on a machine without a network. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/** Firefox preferences: autoplay with sound allowed, no background traffic. */
export const FIREFOX_PREFS = {
  'media.autoplay.default': 0, // allow audible autoplay
  'media.autoplay.blocking_policy': 0,
  'media.autoplay.block-webaudio': false,
  'app.update.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'extensions.update.enabled': false,
  'browser.region.update.enabled': false,
  'browser.newtabpage.enabled': false,
};

/**
 * @param {string} [engine] 'chromium' (default) or 'firefox'
 * @returns {boolean} whether that browser's binary is there (harness.test.mjs fails otherwise).
 */
export function haveBrowser(engine = 'chromium') {
  return fs.existsSync(BROWSER_PATHS[engine]);
}

/**
 * Launches a browser with a fresh temporary profile (removed by close()).
 * @param {{ engine?: 'chromium'|'firefox', headless?: boolean, args?: string[],
 *   viewport?: {width: number, height: number} }} [opts]
 * @returns {Promise<{ engine: string, browser: import('puppeteer-core').Browser,
 *   page: import('puppeteer-core').Page, newPage: () => Promise<import('puppeteer-core').Page>,
 *   logs: string[], close: () => Promise<void> }>}
 *   `logs` collects the console messages and errors of every page (`[type] text`).
 */
export async function launchBrowser(opts = {}) {
  const engine = opts.engine ?? 'chromium';
  const viewport = opts.viewport ?? { width: 1280, height: 720 };
  if (!haveBrowser(engine)) {
    throw new Error(`no ${engine} at ${BROWSER_PATHS[engine]}: apt-get install -y ${engine === 'firefox' ? 'firefox-esr' : 'chromium'}`);
  }
  const browser = engine === 'firefox'
    ? await puppeteer.launch({
      browser: 'firefox',
      executablePath: BROWSER_PATHS.firefox,
      headless: opts.headless ?? true,
      args: opts.args ?? [],
      extraPrefsFirefox: FIREFOX_PREFS,
      defaultViewport: viewport,
    })
    : await puppeteer.launch({
      browser: 'chrome',
      executablePath: BROWSER_PATHS.chromium,
      headless: opts.headless ?? true,
      args: [...CHROMIUM_ARGS, ...(opts.args ?? [])],
      defaultViewport: viewport,
    });
  const logs = [];
  const watch = (page) => {
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e?.message ?? e}`));
  };
  const newPage = async () => {
    const p = await browser.newPage();
    watch(p);
    return p;
  };
  let page = (await browser.pages())[0];
  if (page) watch(page);
  else page = await newPage();
  return {
    engine,
    browser,
    page,
    newPage,
    logs,
    async close() {
      await browser.close().catch((e) => console.warn(`closing ${engine}:`, e.message));
    },
  };
}

/**
 * The browser of a `describe(engine)` block: launched by a `before` hook, closed by an
 * `after` hook of the block this is called in. The object is filled when `before` has run
 * (same fields as launchBrowser's result).
 * @param {'chromium'|'firefox'} engine
 * @returns {Awaited<ReturnType<typeof launchBrowser>>}
 */
export function useBrowser(engine) {
  const handle = /** @type {any} */ ({});
  before(async () => {
    Object.assign(handle, await launchBrowser({ engine }));
  });
  after(async () => {
    await handle.close?.();
  });
  return handle;
}

/**
 * Navigates and resolves once the document has been parsed (the page's own timings use
 * `performance.now()`, whose origin is the navigation start, so this wait does not bias them).
 * @param {import('puppeteer-core').Page} page @param {string} url
 */
export async function gotoPage(page, url) {
  await page.goto(url, { waitUntil: 'domcontentloaded' });
}

// The functions below run inside the page (serialised by page.evaluate): keep them self-contained.

/** In-page: finds a <video> by selector, looking into open shadow roots (<fmp4-player>) too. */
function inPageFindVideo(selector) {
  const search = (root) => {
    const direct = root.querySelector(selector);
    if (direct) return direct;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) {
        const found = search(el.shadowRoot);
        if (found) return found;
      }
    }
    return null;
  };
  return search(document);
}

/** In-page: snapshot of a video (and of the player's stats when there is one). */
function inPageSnapshot(video, playerSelector) {
  const q = video && typeof video.getVideoPlaybackQuality === 'function' ? video.getVideoPlaybackQuality() : null;
  const b = video ? video.buffered : null;
  const el = playerSelector ? document.querySelector(playerSelector) : null;
  let stats = null;
  if (el && el.stats) stats = el.stats;
  else if (window.player && window.player.stats) stats = window.player.stats;
  return {
    t: performance.now(),
    found: !!video,
    currentTime: video ? video.currentTime : 0,
    paused: video ? video.paused : true,
    readyState: video ? video.readyState : 0,
    width: video ? video.videoWidth : 0,
    height: video ? video.videoHeight : 0,
    decoded: q ? q.totalVideoFrames : 0,
    dropped: q ? q.droppedVideoFrames : 0,
    bufferedStart: b && b.length ? b.start(0) : null,
    bufferedEnd: b && b.length ? b.end(b.length - 1) : null,
    error: video && video.error ? { code: video.error.code, message: video.error.message } : null,
    stats,
  };
}

/**
 * Samples a page's <video> for `seconds` (all sampling happens in the page, one round trip).
 * @param {import('puppeteer-core').Page} page
 * @param {{ seconds?: number, interval?: number, selector?: string, playerSelector?: string }} [opts]
 * @returns {Promise<{
 *   samples: object[], wallSeconds: number, mediaAdvance: number, playedSeconds: number,
 *   progressRatio: number, width: number, height: number, decodedFrames: number,
 *   droppedFrames: number, frozenSeconds: number, error: object|null,
 *   latency: {min: number, avg: number, max: number}|null, stats: object|null }>}
 *   - `playedSeconds`: currentTime progress counting only steps ≤ 1.5 × the sampling interval
 *     (seeks/jumps excluded); `progressRatio` = playedSeconds / wallSeconds;
 *   - `frozenSeconds`: wall time in which currentTime did not move while not paused;
 *   - `latency`: buffered end − currentTime measured in the page (independent of the player);
 *   - `stats`: the player's own stats at the end (`<fmp4-player>`.stats or window.player.stats).
 */
export async function sampleVideo(page, opts = {}) {
  const { seconds = 10, interval = 250, selector = 'video', playerSelector = 'fmp4-player' } = opts;
  const samples = await page.evaluate(
    async ({ seconds, interval, selector, playerSelector, findSrc, snapSrc }) => {
      // eslint-disable-next-line no-new-func
      const find = new Function(`return (${findSrc})`)();
      // eslint-disable-next-line no-new-func
      const snap = new Function(`return (${snapSrc})`)();
      const out = [];
      const end = performance.now() + seconds * 1000;
      for (;;) {
        out.push(snap(find(selector), playerSelector));
        if (performance.now() >= end) break;
        await new Promise((r) => setTimeout(r, interval));
      }
      return out;
    },
    { seconds, interval, selector, playerSelector, findSrc: inPageFindVideo.toString(), snapSrc: inPageSnapshot.toString() },
  );
  return summarize(samples, interval);
}

/**
 * @param {object[]} samples from the page
 * @param {number} interval ms
 */
export function summarize(samples, interval = 250) {
  const first = samples[0];
  const last = samples[samples.length - 1];
  const wallSeconds = (last.t - first.t) / 1000;
  let played = 0;
  let frozen = 0;
  const lat = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dWall = (b.t - a.t) / 1000;
    const d = b.currentTime - a.currentTime;
    if (d > 0 && d <= Math.max(1.5 * dWall, (1.5 * interval) / 1000)) played += d;
    if (d === 0 && !b.paused) frozen += dWall;
    if (b.bufferedEnd !== null) lat.push(b.bufferedEnd - b.currentTime);
  }
  return {
    samples,
    wallSeconds,
    mediaAdvance: last.currentTime - first.currentTime,
    playedSeconds: played,
    progressRatio: wallSeconds > 0 ? played / wallSeconds : 0,
    width: last.width,
    height: last.height,
    decodedFrames: last.decoded - first.decoded,
    droppedFrames: last.dropped - first.dropped,
    frozenSeconds: frozen,
    error: samples.find((s) => s.error)?.error ?? null,
    latency: lat.length
      ? { min: Math.min(...lat), avg: lat.reduce((x, y) => x + y, 0) / lat.length, max: Math.max(...lat) }
      : null,
    stats: last.stats,
  };
}

/**
 * One snapshot of the page's <video> (and player stats).
 * @param {import('puppeteer-core').Page} page
 * @param {{ selector?: string, playerSelector?: string }} [opts]
 */
export async function videoSnapshot(page, opts = {}) {
  const { selector = 'video', playerSelector = 'fmp4-player' } = opts;
  return page.evaluate(
    ({ selector, playerSelector, findSrc, snapSrc }) => {
      // eslint-disable-next-line no-new-func
      const find = new Function(`return (${findSrc})`)();
      // eslint-disable-next-line no-new-func
      const snap = new Function(`return (${snapSrc})`)();
      return snap(find(selector), playerSelector);
    },
    { selector, playerSelector, findSrc: inPageFindVideo.toString(), snapSrc: inPageSnapshot.toString() },
  );
}

/**
 * Waits until the page's <video> shows a frame; measured in the page, independently of the player.
 * @param {import('puppeteer-core').Page} page
 * @param {{ timeout?: number, selector?: string }} [opts]
 * @returns {Promise<{ sinceNavigation: number, sinceCall: number }>} ms from the navigation start
 *   (`performance.now()` origin) and from this call to the first decoded frame.
 */
export async function waitForFirstFrame(page, opts = {}) {
  const { timeout = 20000, selector = 'video' } = opts;
  return page.evaluate(
    async ({ timeout, selector, findSrc }) => {
      // eslint-disable-next-line no-new-func
      const find = new Function(`return (${findSrc})`)();
      const t0 = performance.now();
      for (;;) {
        const v = find(selector);
        const q = v && v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
        if (v && v.readyState >= 2 && ((q && q.totalVideoFrames > 0) || v.currentTime > 0)) {
          const now = performance.now();
          return { sinceNavigation: Math.round(now), sinceCall: Math.round(now - t0) };
        }
        if (performance.now() - t0 > timeout) throw new Error(`no video frame within ${timeout} ms`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    { timeout, selector, findSrc: inPageFindVideo.toString() },
  );
}

/**
 * Waits until `predicate(snapshot)` is true (polled every 100 ms from Node).
 * @param {import('puppeteer-core').Page} page
 * @param {(s: ReturnType<typeof inPageSnapshot>) => boolean} predicate
 * @param {{ timeout?: number, selector?: string, playerSelector?: string, what?: string }} [opts]
 */
export async function waitForVideo(page, predicate, opts = {}) {
  const { timeout = 20000, what = 'video condition' } = opts;
  const t0 = Date.now();
  let s;
  for (;;) {
    s = await videoSnapshot(page, opts);
    if (predicate(s)) return s;
    if (Date.now() - t0 > timeout) throw new Error(`timeout waiting for ${what}; last: ${JSON.stringify({ ...s, stats: s.stats && { state: s.stats.state } })}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The player's stats (`<fmp4-player>`.stats or window.player.stats), or null.
 * @param {import('puppeteer-core').Page} page
 * @param {string} [playerSelector]
 */
export async function playerStats(page, playerSelector = 'fmp4-player') {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    if (el && el.stats) return el.stats;
    return window.player && window.player.stats ? window.player.stats : null;
  }, playerSelector);
}
