// The in-pipeline example (examples/testpattern.sh: videotestsrc ! x264enc ! mp4mux
// fragment-duration=700 ! fmp4initcache ! websocketsink, with audiotestsrc ! avenc_aac) in the player.
import { describe, test } from 'node:test';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { Scene, startExample, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  test('examples/testpattern.sh (x264enc + avenc_aac → mp4mux) → index.html plays 640x360', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { proc, port } = await startExample(scene, 'testpattern.sh', 1);
      await waitForServer(port, { stream: true, procs: [proc] });
      const page = await scene.newPage(browser);
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
      const s = await watchFor(page, 10);
      await reportMetrics(t, `${engine}/testpattern.sh/index.html`, { ttff, s, port });
      assertPlayed(s, { what: 'index.html', width: 640, height: 360 });
    });
  });
});
}
