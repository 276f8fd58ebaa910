// Restarts, without reloading the page:
// - publisher restart: `fdsrc fd=0 ! fmp4initcache ! websocketsink` gets ffmpeg #1's output, then
//   ffmpeg #2's (other resolution and codecs) on the same stdin: the concatenated bytes are what a
//   restarting publisher produces (a new ftyp+moov mid-stream; lib/publishers.mjs).
// - server restart: gst-launch is killed and started again on the same port; the player reconnects.
// - the publisher's video stops while audio goes on: the player must not loop over old media.
// - the pipeline is stopped: viewers should get close 1001 (todo: see the test).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSERS, useBrowser, videoSnapshot } from './lib/browser.mjs';
import { Scene, TCP_PIPELINE, notesFfmpegArgs, sleep, startPipeline, startServer, waitForServer } from './lib/pipeline.mjs';
import { rawWebSocket } from './lib/rawws.mjs';
import { assertPlayed, openViewer, reportMetrics, waitForAdvance, watchFor } from './lib/viewer.mjs';
import { FD_PIPELINE, feed, h264, vp9 } from './lib/publishers.mjs';


for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  /** Marks the page so that a reload would be noticed. */
  async function markPage(page) {
    await page.evaluate(() => { window.__e2eNoReload = 'original page'; });
  }
  async function assertNotReloaded(page) {
    assert.equal(await page.evaluate(() => window.__e2eNoReload), 'original page', 'the page was reloaded');
  }

  test('publisher restart mid-stream (640x360 H.264+AAC → 960x540 VP9+Opus): plays on without reload', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const gst = scene.add(startPipeline(FD_PIPELINE(), { stdin: 'pipe' }));
      const port = await gst.port('sink');
      await waitForServer(port, { procs: [gst] });
      const one = feed(scene, gst, h264(640, 360), 'ffmpeg#1 h264');
      await waitForServer(port, { stream: true, procs: [gst, one.ff] });
      const page = await scene.newPage(browser);
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
      await markPage(page);
      const s1 = await watchFor(page, 4);
      await reportMetrics(t, `${engine}/restart/publisher-before`, { ttff, s: s1, port });
      assertPlayed(s1, { what: 'before the publisher restart', width: 640, height: 360 });

      // the publisher stops cleanly (ffmpeg finishes its file) and a new one starts at once
      await one.ff.stop({ signal: 'SIGINT', grace: 3000 });
      await one.flushed;
      const tSwitch = Date.now();
      const two = feed(scene, gst, vp9(960, 540), 'ffmpeg#2 vp9');
      const { ms } = await waitForAdvance(page, (x) => x.width === 960 && x.height === 540 && x.stats?.generation >= 2, 15000,
        'the new 960x540 stream in the page');
      const switchMs = Date.now() - tSwitch;
      const s2 = await watchFor(page, 5);
      const status = await (await fetch(`http://127.0.0.1:${port}/status`)).json();
      await reportMetrics(t, `${engine}/restart/publisher-after`, {
        s: s2, port, extra: { switch_ms: switchMs, waited_ms: ms, generation: s2.stats?.generation, codecs: `"${status.stream?.codecs}"` },
      });
      assert.ok(two.ff.alive, 'ffmpeg #2 is still running');
      assertPlayed(s2, { what: 'after the publisher restart', width: 960, height: 360 * 1.5 });
      assert.equal(s2.stats.reconnects, 0, 'the player kept its connection');
      await assertNotReloaded(page);
    });
  });

  test('server restart on the same port: the player reconnects and plays without reload', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const gst1 = scene.add(startPipeline(FD_PIPELINE(), { stdin: 'pipe', name: 'gst-launch#1' }));
      const port = await gst1.port('sink');
      await waitForServer(port, { procs: [gst1] });
      const one = feed(scene, gst1, h264(640, 360), 'ffmpeg#1');
      await waitForServer(port, { stream: true, procs: [gst1, one.ff] });
      const page = await scene.newPage(browser);
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
      await markPage(page);
      const s1 = await watchFor(page, 4);
      await reportMetrics(t, `${engine}/restart/server-before`, { ttff, s: s1, port });
      assertPlayed(s1, { what: 'before the server restart', width: 640, height: 360 });

      // the server dies (SIGKILL: no goodbye to the viewers), its publisher with it
      const tKill = Date.now();
      await gst1.stop({ signal: 'SIGKILL' });
      await one.ff.stop({ signal: 'SIGKILL' });
      const gst2 = scene.add(startPipeline(FD_PIPELINE(port), { stdin: 'pipe', name: 'gst-launch#2' }));
      await waitForServer(port, { procs: [gst2], timeout: 10000 });
      const restartedMs = Date.now() - tKill;
      const two = feed(scene, gst2, h264(854, 480), 'ffmpeg#2');
      await waitForServer(port, { stream: true, procs: [gst2, two.ff] });
      const before = await videoSnapshot(page);
      const { ms } = await waitForAdvance(page, (x) => x.width === 854 && x.decoded > 0 && x.currentTime > 0.5 && !x.paused, 20000,
        'playback from the restarted server');
      const recoveredMs = Date.now() - tKill;
      const s2 = await watchFor(page, 5);
      await reportMetrics(t, `${engine}/restart/server-after`, {
        s: s2, port,
        extra: { server_back_ms: restartedMs, recovered_ms: recoveredMs, waited_ms: ms, reconnects: s2.stats?.reconnects, state_at_restart: before.stats?.state },
      });
      assertPlayed(s2, { what: 'after the server restart', width: 854, height: 480 });
      assert.ok(s2.stats.reconnects >= 1, 'the player reconnected');
      await assertNotReloaded(page);
    });
  });

  test("publisher's video stops while its audio goes on: the page never replays old media", async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const gst = scene.add(startPipeline(FD_PIPELINE(), { stdin: 'pipe' }));
      const port = await gst.port('sink');
      await waitForServer(port, { procs: [gst] });
      // `-t 4` before the first -i limits the video input only: the sine goes on (a camera that dies
      // while the microphone works)
      const { ff } = feed(scene, gst, ['-t', '4', ...h264(640, 360)], 'ffmpeg video 4 s');
      await waitForServer(port, { stream: true, procs: [gst, ff] });
      const page = await scene.newPage(browser);
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
      // the video ends ~4 s into the stream; watch well past it (Chromium plays audio on for ~3 s)
      const s = await watchFor(page, 10);
      const backwards = [];
      for (let i = 1; i < s.samples.length; i++) {
        const d = s.samples[i].currentTime - s.samples[i - 1].currentTime;
        if (d < -0.01) backwards.push(`${s.samples[i - 1].currentTime.toFixed(2)} -> ${s.samples[i].currentTime.toFixed(2)}`);
      }
      await reportMetrics(t, `${engine}/video-stops`, { ttff, s, port, extra: { state: s.stats?.state, backward_seeks: backwards.length } });
      assert.equal(s.error, null);
      assert.ok(s.decodedFrames > 0, 'frames were decoded before the video stopped');
      assert.deepEqual(backwards, [], 'the playhead went back (old media replayed)');
    });
  });
});
}

// docs/protocol.md: "Other closes: 1001 (server shutting down)": when the pipeline stops, every
// viewer whose socket can take it gets a close frame 1001 before the connection ends.
test('pipeline stopped (SIGINT to gst-launch): viewers get a close frame 1001', async (t) => {
  const scene = new Scene();
  await scene.run(async () => {
    const { gst, port, tcpPort } = await startServer(scene, TCP_PIPELINE);
    const ff = scene.ffmpeg(notesFfmpegArgs(tcpPort));
    await waitForServer(port, { stream: true, procs: [gst, ff] });
    const ws = await rawWebSocket(port);
    await sleep(1000);
    // gst-launch without -e: the pipeline goes to NULL at once. One SIGINT to gst-launch alone (a
    // second one, as a signal to the group can bring, kills it before it can say goodbye)
    gst.signalCommand('SIGINT');
    await Promise.race([ws.closed, sleep(5000)]);
    const ends = ws.events.filter((e) => e.kind !== 'binary' && e.kind !== 'text');
    t.diagnostic(`e2e-metric server-stop frames=${JSON.stringify(ends)}`);
    ws.socket.destroy();
    const close = ws.events.find((e) => e.kind === 'close');
    assert.ok(close, `no close frame before the connection ended: ${JSON.stringify(ends)}`);
    assert.equal(close.code, 1001);
  });
});
