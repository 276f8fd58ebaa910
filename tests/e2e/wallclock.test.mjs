// Wall-clock latency (issue 14): the player's stats.wallClockLatency / wallClockSource from the
// stream's prft boxes, and what the server reports per viewer (GET /status). Encoder prft: the
// notes' ffmpeg command with `-write_prft wallclock`; server prft: examples/testpattern.sh (mp4mux
// writes none, websocketsink adds one, add-prft on by default). Loose bounds (no timed assertion
// that could flake: the numbers are in docs/latency.md, from tests/bench/latency).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BROWSERS, useBrowser, playerStats } from './lib/browser.mjs';
import { Scene, getStatus, notesFfmpegArgs, sleep, startExample, waitForServer } from './lib/pipeline.mjs';
import { openViewer } from './lib/viewer.mjs';

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  /** After the first frame: the player's figure, then the server's for this viewer. */
  async function check(page, port, source) {
    let st = null;
    for (let i = 0; i < 40 && !(st?.wallClockLatency !== null && st?.wallClockSource); i++) {
      await sleep(250);
      st = await playerStats(page);
    }
    assert.equal(st?.wallClockSource, source, `stats ${JSON.stringify(st)}`);
    // capture/arrival to screen on one machine: at least the buffer's worth, at most seconds
    assert.ok(st.wallClockLatency > 0 && st.wallClockLatency < 10, `wallClockLatency ${st.wallClockLatency}`);
    let viewer = null;
    for (let i = 0; i < 40 && !viewer; i++) {
      await sleep(250);
      viewer = (await getStatus(port)).clients?.find((c) => c.wall_clock_source);
    }
    assert.ok(viewer, 'a viewer with wall_clock_latency in /status');
    assert.equal(viewer.wall_clock_source, source);
    assert.ok(viewer.wall_clock_latency > 0 && viewer.wall_clock_latency < 10, JSON.stringify(viewer));
  }

  test('encoder prft (ffmpeg -write_prft wallclock) → wallClockSource "encoder", in stats and /status', async () => {
    const scene = new Scene();
    await scene.run(async () => {
      const { proc: gst, port, ports: [, tcpPort] } = await startExample(scene, 'notes-tcp.sh', 2);
      const args = notesFfmpegArgs(tcpPort);
      args.splice(args.length - 1, 0, '-write_prft', 'wallclock');
      const ff = scene.ffmpeg(args);
      await waitForServer(port, { stream: true, procs: [gst, ff] });
      const page = await scene.newPage(browser);
      await openViewer(page, `http://127.0.0.1:${port}/`);
      await check(page, port, 'encoder');
    });
  });

  test('no prft in the stream (mp4mux) → websocketsink adds one: wallClockSource "server"', async () => {
    const scene = new Scene();
    await scene.run(async () => {
      const { proc, port } = await startExample(scene, 'testpattern.sh', 1);
      await waitForServer(port, { stream: true, procs: [proc] });
      const page = await scene.newPage(browser);
      await openViewer(page, `http://127.0.0.1:${port}/`);
      await check(page, port, 'server');
    });
  });
});
}
