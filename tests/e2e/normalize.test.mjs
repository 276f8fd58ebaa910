// Addressing MSE does not take, normalised by fmp4initcache (issue 13, part 1): ffmpeg with the
// movflags most guides give (`frag_keyframe+empty_moov`, no `default_base_moof`: absolute
// tfhd base_data_offset) and with `+omit_tfhd_offset` (the second traf's data offset implicit),
// live over TCP into `tcpserversrc ! fmp4initcache ! websocketsink`. Before: a black page
// (CHUNK_DEMUXER_ERROR_APPEND_FAILED / a decode error); now index.html plays.
import { describe, test } from 'node:test';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { NOTES_TEST_INPUT, Scene, TCP_PIPELINE, startServer, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

const ffmpegArgs = (movflags, port) => [
  ...NOTES_TEST_INPUT,
  '-c:a', 'aac', '-ab', '64k', '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-profile:v', 'high', '-g', '30',
  '-f', 'mp4', '-movflags', movflags, `tcp://127.0.0.1:${port}/`,
];

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  for (const movflags of ['frag_keyframe+empty_moov', 'frag_keyframe+empty_moov+omit_tfhd_offset']) {
    test(`ffmpeg -movflags ${movflags} → index.html plays`, async (t) => {
      const scene = new Scene();
      await scene.run(async () => {
        const { gst, port, tcpPort } = await startServer(scene, TCP_PIPELINE);
        const ff = scene.ffmpeg(ffmpegArgs(movflags, tcpPort));
        await waitForServer(port, { stream: true, procs: [gst, ff] });
        const page = await scene.newPage(browser);
        const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
        const s = await watchFor(page, 6);
        await reportMetrics(t, `${engine}/normalize/${movflags}`, { ttff, s, port });
        assertPlayed(s, { what: movflags, width: 640, height: 360 });
      });
    });
  }
});
}
