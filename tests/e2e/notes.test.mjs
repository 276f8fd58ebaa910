// The notes' use case end to end: their ffmpeg command (test source instead of avfoundation) into
// examples/notes-tcp.sh (`tcpserversrc host=0.0.0.0 ! fmp4initcache ! websocketsink`), watched with
// the player (index.html) and with the notes' own client (notes-client.html, served by
// websocketsink).
import { describe, test } from 'node:test';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { Scene, notesFfmpegArgs, startExample, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  /** examples/notes-tcp.sh + the notes' ffmpeg command; resolves once the server has the stream. */
  async function notesStream(scene) {
    const { proc: gst, port, ports: [, tcpPort] } = await startExample(scene, 'notes-tcp.sh', 2);
    const ff = scene.ffmpeg(notesFfmpegArgs(tcpPort));
    await waitForServer(port, { stream: true, procs: [gst, ff] });
    return { port };
  }

  test("notes' ffmpeg command → examples/notes-tcp.sh → index.html plays 640x360", async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { port } = await notesStream(scene);
      const page = await scene.newPage(browser);
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
      const s = await watchFor(page, 10);
      await reportMetrics(t, `${engine}/notes-ffmpeg/index.html`, { ttff, s, port });
      assertPlayed(s, { what: 'index.html', width: 640, height: 360 });
    });
  });

  test("notes-client.html (the notes' own client) plays from websocketsink", async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { port } = await notesStream(scene);
      const page = await scene.newPage(browser);
      // the notes' client hard-codes avc1.640028 + mp4a.40.2: the stream is H.264 High + AAC
      const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/notes-client.html`);
      const s = await watchFor(page, 8);
      await reportMetrics(t, `${engine}/notes-ffmpeg/notes-client.html`, { ttff, s, port });
      assertPlayed(s, { what: 'notes-client.html', width: 640, height: 360 });
    });
  });
});
}
