// fmp4ws-server (issue 5) in the browser: the notes' workflow, where ffmpeg is stopped and started
// again (another resolution, another codec) while the same page stays open. The page must play
// again after each publisher, without reload, and the server's memory must not grow.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { BUILD_DIR, Proc, Scene, freePort, gstEnv, sleep, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, waitForAdvance, watchFor } from './lib/viewer.mjs';

const SERVER = path.join(BUILD_DIR, 'tools', 'fmp4ws-server');

const input = (w, h, freq) => ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${w}x${h}:rate=30`, '-f', 'lavfi', '-i', `sine=frequency=${freq}:sample_rate=48000`];
// The notes' command (movflags, -frag_duration 70000), with a test source.
const h264 = (w, h) => [...input(w, h, 440), '-c:a', 'aac', '-ab', '64k', '-c:v', 'libx264', '-preset', 'veryfast',
  '-vb', '448k', '-g', '30', '-vsync', '2', '-pix_fmt', 'yuv420p', '-profile:v', 'high'];
const vp9 = (w, h) => [...input(w, h, 660), '-c:a', 'libopus', '-b:a', '64k', '-c:v', 'libvpx-vp9', '-deadline', 'realtime',
  '-cpu-used', '8', '-row-mt', '1', '-b:v', '500k', '-g', '30'];
const notesOut = (port) => ['-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-reset_timestamps', '1',
  '-frag_duration', '70000', `tcp://localhost:${port}/`];

const rssKiB = (pid) => +/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1];

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  test('fmp4ws-server: ffmpeg stops and starts 5 times (640x360 → 1280x720, H.264 → VP9); the same page plays on', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const port = await freePort();
      const ingest = await freePort();
      const server = scene.add(new Proc('fmp4ws-server', SERVER, ['--port', String(port), '--ingest-port', String(ingest)],
        { env: gstEnv() }));
      await waitForServer(port, { procs: [server] });
      // The serverPid is coreutils timeout's child: find it for the RSS.
      const plan = [
        { args: h264(640, 360), w: 640, h: 360 },
        { args: h264(1280, 720), w: 1280, h: 720 },
        { args: vp9(640, 360), w: 640, h: 360 },
        { args: h264(640, 360), w: 640, h: 360 },
        { args: vp9(1280, 720), w: 1280, h: 720 },
      ];
      let page;
      const rss = [];
      const pid = +readFileSync(`/proc/${server.pid}/task/${server.pid}/children`, 'utf8').trim().split(/\s+/)[0];
      for (let i = 0; i < plan.length; i++) {
        const p = plan[i];
        const t0 = Date.now();
        const ff = scene.ffmpeg([...p.args, ...notesOut(ingest)], { name: `ffmpeg#${i + 1}` });
        let ttff = null;
        if (i === 0) {
          await waitForServer(port, { stream: true, procs: [server, ff] });
          page = await scene.newPage(browser);
          ({ ttff } = await openViewer(page, `http://127.0.0.1:${port}/`));
          await page.evaluate(() => { window.__e2eNoReload = 'original page'; });
        }
        const { ms } = await waitForAdvance(page,
          (x) => x.width === p.w && x.height === p.h && (x.stats?.generation ?? 0) >= i + 1 && !x.paused && x.decoded > 0,
          15000, `publisher ${i + 1} (${p.w}x${p.h}) in the page`);
        const shownMs = Date.now() - t0;
        // The old publisher's data ran out while the new ffmpeg started (a real gap of ~1 s): let
        // the player refill before judging steady playback.
        await sleep(1000);
        const s = await watchFor(page, 3);
        assertPlayed(s, { what: `publisher ${i + 1}`, width: p.w, height: p.h });
        assert.equal(await page.evaluate(() => window.__e2eNoReload), 'original page', 'the page was reloaded');
        assert.equal(s.stats.reconnects, 0, 'the player kept its connection');
        await ff.stop({ signal: 'SIGINT', grace: 3000 });  // the publisher goes away (as with Ctrl+C)
        await sleep(500);
        rss.push(rssKiB(pid));
        await reportMetrics(t, `${engine}/server/publisher-${i + 1}`, {
          ttff, s, port, extra: { size: `${p.w}x${p.h}`, shown_after_ffmpeg_start_ms: shownMs, waited_ms: ms, server_rss_kib: rss[i] },
        });
      }
      // No growth from restart to restart (beyond the first ones warming up caches).
      assert.ok(rss[4] <= rss[1] + 8 * 1024, `server RSS grew: ${rss.join(' → ')} KiB`);
    });
  });
});
}
