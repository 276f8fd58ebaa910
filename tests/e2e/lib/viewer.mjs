// What a viewer sees: open a page of the server, time its first frame, sample its <video>, assert
// that it plays, and print the measurements (never asserted as timings) in the TAP output.
import assert from 'node:assert/strict';
import { gotoPage, sampleVideo, waitForFirstFrame, videoSnapshot } from './browser.mjs';
import { getStatus, metric } from './pipeline.mjs';

/**
 * Navigates `page` to `url` and waits for the first frame (for audio only: the first advance of
 * currentTime), measured in the page from the navigation start.
 * @param {import('puppeteer-core').Page} page
 * @param {string} url
 * @param {{ timeout?: number }} [opts]
 * @returns {Promise<{ ttff: number }>} ms from navigation start to the first frame
 */
export async function openViewer(page, url, opts = {}) {
  if (process.env.FMP4WS_E2E_DEBUG) {
    // the player logs its decisions to the console (printed by Scene on cleanup)
    const u = new URL(url);
    if (u.pathname === '/' || u.pathname.endsWith('/index.html')) u.searchParams.set('debug', '');
    url = u.href;
  }
  await gotoPage(page, url);
  const first = await waitForFirstFrame(page, { timeout: opts.timeout ?? 15000 });
  return { ttff: first.sinceNavigation };
}

/**
 * Samples the page's video for `seconds`.
 * @param {import('puppeteer-core').Page} page
 * @param {number} seconds
 */
export function watchFor(page, seconds) {
  return sampleVideo(page, { seconds, interval: 250 });
}

/**
 * Asserts that the sampled video played.
 * @param {Awaited<ReturnType<typeof sampleVideo>>} s
 * @param {{ what: string, video?: boolean, width?: number, height?: number, minRatio?: number }} e
 */
export function assertPlayed(s, e) {
  const { what, video = true, minRatio = 0.8 } = e;
  const brief = JSON.stringify({
    progressRatio: +s.progressRatio.toFixed(3), mediaAdvance: +s.mediaAdvance.toFixed(3), wall: +s.wallSeconds.toFixed(2),
    size: `${s.width}x${s.height}`, decoded: s.decodedFrames, dropped: s.droppedFrames, frozen: +s.frozenSeconds.toFixed(2),
    error: s.error, state: s.stats?.state, latency: s.latency,
  });
  assert.equal(s.error, null, `${what}: video.error ${brief}`);
  assert.ok(s.progressRatio >= minRatio,
    `${what}: currentTime advanced ${s.playedSeconds.toFixed(2)} s in ${s.wallSeconds.toFixed(2)} s of wall time (< ${minRatio * 100}%) ${brief}`);
  if (s.stats) {
    assert.notEqual(s.stats.timeToFirstFrame, null, `${what}: the player reports no time to first frame ${brief}`);
    assert.notEqual(s.stats.state, 'unsupported', `${what}: the player says unsupported ${brief}`);
  }
  if (video) {
    // at least half the frames of the played media (30 fps sources) were decoded
    assert.ok(s.decodedFrames >= Math.max(10, s.playedSeconds * 15), `${what}: only ${s.decodedFrames} frames decoded ${brief}`);
    if (e.width !== undefined) assert.equal(`${s.width}x${s.height}`, `${e.width}x${e.height}`, `${what}: video size ${brief}`);
  } else {
    assert.equal(s.width, 0, `${what}: audio only, but the video element has a picture ${brief}`);
  }
}

/**
 * Prints the measurements of one scenario: `# e2e-metric <scenario> ttff_ms=… latency_avg_s=…`.
 * `latency_*`: buffered end − currentTime in the page (the viewer's live latency as the protocol
 * defines it: how far behind the newest media it has received the viewer plays);
 * `server_latency_s`: what the server got from the viewer's reports (GET /status).
 * @param {import('node:test').TestContext} t
 * @param {string} scenario
 * @param {{ ttff?: number, s?: any, port?: number, query?: string, extra?: Record<string, unknown> }} m
 *   `query`: for GET /status (e.g. a signed link's `?token=`)
 */
export async function reportMetrics(t, scenario, m) {
  const v = {};
  if (m.ttff !== undefined) v.ttff_ms = m.ttff;
  if (m.s) {
    const st = m.s.stats;
    if (st?.timeToFirstFrame !== undefined && st?.timeToFirstFrame !== null) v.player_ttff_ms = st.timeToFirstFrame;
    if (m.s.latency) {
      v.latency_avg_s = m.s.latency.avg;
      v.latency_max_s = m.s.latency.max;
    }
    v.progress = m.s.progressRatio;
    if (m.s.width) v.size = `${m.s.width}x${m.s.height}`;
    v.decoded = m.s.decodedFrames;
    v.dropped = m.s.droppedFrames;
    if (st) {
      v.stalls = st.stalls;
      v.jumps = st.jumps;
      v.rate = st.playbackRate;
    }
  }
  if (m.port) {
    try {
      const status = await getStatus(m.port, undefined, m.query);
      const c = status.clients?.[0];
      if (c) {
        if (c.latency >= 0) v.server_latency_s = c.latency; // from the viewer's reports (-1: none)
        v.backlog_bytes = c.backlog_bytes;
      }
      v.dropped_fragments = status.fragments_dropped;
    } catch {
      // the server is gone (restart tests): no server-side numbers
    }
  }
  Object.assign(v, m.extra ?? {});
  metric(t, scenario, v);
}

/**
 * Polls the page's video (every 100 ms) until `predicate(snapshot)` holds; throws after `timeout` ms
 * with the last snapshot.
 * @param {import('puppeteer-core').Page} page
 * @param {(s: any) => boolean} predicate on a `videoSnapshot` (with the player's stats)
 * @param {number} timeout ms
 * @param {string} what for the error message
 * @returns {Promise<{ snapshot: any, ms: number }>} the snapshot and how long it took
 */
export async function waitForAdvance(page, predicate, timeout, what) {
  const t0 = Date.now();
  let s;
  for (;;) {
    s = await videoSnapshot(page);
    if (predicate(s)) return { snapshot: s, ms: Date.now() - t0 };
    if (Date.now() - t0 > timeout) {
      throw new Error(`timeout (${timeout} ms) waiting for ${what}; last: ${JSON.stringify({ ...s, stats: s.stats && { state: s.stats.state, generation: s.stats.generation, reconnects: s.stats.reconnects } })}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
