// A viewer that arrives 10 s into a stream with a 4 s GOP (x264enc key-int-max=120 at 30 fps,
// mp4mux fragment-duration=700: most fragments start without a keyframe).
// - sync-method=latest-keyframe (default): the server sends the cached GOP at once (`start` message)
//   and the player starts near the live edge: first frame within 1 s of navigation.
// - sync-method=next-keyframe: the server waits for the next keyframe fragment (up to a GOP); the
//   start must be correct (a keyframe, plays, right size); its time is reported, not asserted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { Scene, sleep, startServer, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

const GOP_SECONDS = 4;
const JOIN_AFTER = 10; // s of stream before the viewer opens the page

/** @param {string} sinkProps extra websocketsink properties */
const gop4 = (sinkProps = '') =>
  'videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=360,framerate=30/1,format=I420 ' +
  `! x264enc tune=zerolatency speed-preset=veryfast key-int-max=${GOP_SECONDS * 30} ! queue ` +
  `! mp4mux fragment-duration=700 streamable=true name=m ! fmp4initcache ! websocketsink port=0 name=sink ${sinkProps} ` +
  'audiotestsrc is-live=true ! audio/x-raw,rate=48000 ! avenc_aac ! queue ! m.';

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  /**
   * Starts the 4 s GOP stream, waits until it is JOIN_AFTER s old, opens index.html.
   * @returns {Promise<{ port: number, ttff: number, streamAge: number, page: any }>} streamAge: s of
   *   stream when the page was opened
   */
  async function joinLate(scene, sinkProps) {
    const { gst, port } = await startServer(scene, gop4(sinkProps));
    await waitForServer(port, { stream: true, procs: [gst] });
    // live sources start at PLAYING: that is the stream's time 0
    const t0 = (await gst.waitForLine(/Setting pipeline to PLAYING/)).time;
    await sleep(Math.max(0, JOIN_AFTER * 1000 - (Date.now() - t0)));
    const page = await scene.newPage(browser);
    const streamAge = (Date.now() - t0) / 1000;
    const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`, { timeout: (GOP_SECONDS + 6) * 1000 });
    return { port, ttff, streamAge, page };
  }

  test('late joiner, latest-keyframe: first frame within 1 s, near the live edge (4 s GOP)', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { port, ttff, streamAge, page } = await joinLate(scene, '');
      const s = await watchFor(page, 6);
      await reportMetrics(t, `${engine}/late-joiner/latest-keyframe`, { ttff, s, port, extra: { joined_at_s: streamAge } });
      assertPlayed(s, { what: 'late joiner', width: 640, height: 360 });
      assert.ok(ttff < 1000, `first frame ${ttff} ms after navigation (want < 1000 ms)`);
      // near the live edge: playing the cached GOP from its keyframe would put the viewer up to a
      // GOP (4 s) + a fragment behind; the player jumps to (live edge - its target + half a fragment)
      assert.ok(s.latency.avg < 2.5, `live latency ${JSON.stringify(s.latency)} (want avg < 2.5 s: near the live edge)`);
    });
  });

  test('late joiner, sync-method=next-keyframe: starts on the next keyframe (time reported)', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { port, ttff, streamAge, page } = await joinLate(scene, 'sync-method=next-keyframe');
      const s = await watchFor(page, 6);
      await reportMetrics(t, `${engine}/late-joiner/next-keyframe`, { ttff, s, port, extra: { joined_at_s: streamAge } });
      assertPlayed(s, { what: 'late joiner (next-keyframe)', width: 640, height: 360 });
      assert.ok(ttff < (GOP_SECONDS + 2) * 1000, `first frame ${ttff} ms after navigation (want < a GOP + 2 s)`);
      assert.ok(s.latency.avg < 2.5, `live latency ${JSON.stringify(s.latency)} (want avg < 2.5 s)`);
    });
  });
});
}
