// Every codec this Chromium's MSE accepts and this machine's ffmpeg can put in a fragmented MP4:
// video only (H.264, VP9, AV1), audio only (AAC, Opus, FLAC) and audio+video, each streamed with
// the notes' movflags (no empty_moov: the moov carries the first samples) through
// `tcpserversrc ! fmp4initcache ! websocketsink` and watched for a few seconds in index.html.
// A codec the browser's MSE or the machine's ffmpeg lacks is skipped, with the reason.
import { describe, test, before } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSERS, useBrowser } from './lib/browser.mjs';
import { Scene, TCP_PIPELINE, ffmpegHasEncoder, startServer, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, openViewer, reportMetrics, watchFor } from './lib/viewer.mjs';

const SECONDS = 6; // of playback per codec

/** @typedef {{ name: string, encoder: string, args: string[], probe: string }} Codec */
/** @type {Record<string, Codec>} video codecs; probe: a codec string for MediaSource.isTypeSupported */
const VIDEO = {
  h264: { name: 'H.264', encoder: 'libx264', probe: 'avc1.64001e',
    args: ['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-pix_fmt', 'yuv420p', '-b:v', '400k'] },
  vp9: { name: 'VP9', encoder: 'libvpx-vp9', probe: 'vp09.00.20.08',
    args: ['-c:v', 'libvpx-vp9', '-deadline', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-b:v', '400k'] },
  av1: ffmpegHasEncoder('libaom-av1') || !ffmpegHasEncoder('libsvtav1')
    ? { name: 'AV1 (libaom)', encoder: 'libaom-av1', probe: 'av01.0.00M.08',
      args: ['-c:v', 'libaom-av1', '-usage', 'realtime', '-cpu-used', '8', '-row-mt', '1', '-b:v', '300k'] }
    : { name: 'AV1 (SVT-AV1)', encoder: 'libsvtav1', probe: 'av01.0.00M.08',
      args: ['-c:v', 'libsvtav1', '-preset', '12', '-b:v', '300k'] },
};
/** @type {Record<string, Codec>} */
const AUDIO = {
  aac: { name: 'AAC', encoder: 'aac', probe: 'mp4a.40.2', args: ['-c:a', 'aac', '-b:a', '64k'] },
  opus: { name: 'Opus', encoder: 'libopus', probe: 'opus', args: ['-c:a', 'libopus', '-b:a', '64k'] },
  flac: { name: 'FLAC', encoder: 'flac', probe: 'flac', args: ['-c:a', 'flac', '-strict', '-2'] },
};

/** @type {Array<{ v?: string, a?: string, size?: [number, number] }>} */
const CASES = [
  { v: 'h264', size: [320, 240] },
  { v: 'vp9', size: [352, 288] },
  { v: 'av1', size: [320, 180] },
  { a: 'aac' },
  { a: 'opus' },
  { a: 'flac' },
  { v: 'vp9', a: 'opus', size: [320, 240] },
  { v: 'av1', a: 'flac', size: [320, 240] },
];

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);
  /** @type {Record<string, boolean>} MediaSource.isTypeSupported for each probe type */
  let mse = {};
  before(async () => {
    const types = [];
    for (const c of Object.values(VIDEO)) types.push(`video/mp4; codecs="${c.probe}"`);
    for (const c of Object.values(AUDIO)) types.push(`audio/mp4; codecs="${c.probe}"`);
    await browser.page.goto('about:blank');
    const res = await browser.page.evaluate((t) => t.map((x) => MediaSource.isTypeSupported(x)), types);
    mse = Object.fromEntries(types.map((t, i) => [t, res[i]]));
  });

  for (const c of CASES) {
    const v = c.v ? VIDEO[c.v] : null;
    const a = c.a ? AUDIO[c.a] : null;
    const label = [v?.name, a?.name].filter(Boolean).join(' + ') + (v && !a ? ' (video only)' : !v ? ' (audio only)' : '');
    test(`codec ${label} plays`, async (t) => {
      for (const [codec, kind] of [[v, 'video'], [a, 'audio']]) {
        if (!codec) continue;
        if (!ffmpegHasEncoder(codec.encoder)) return t.skip(`ffmpeg has no ${codec.encoder} encoder`);
        if (!mse[`${kind}/mp4; codecs="${codec.probe}"`]) return t.skip(`this ${engine}'s MSE does not accept ${kind}/mp4; codecs="${codec.probe}"`);
      }
      const scene = new Scene();
      await scene.run(async () => {
        const { gst, port, tcpPort } = await startServer(scene, TCP_PIPELINE);
        const args = ['-re'];
        if (v) args.push('-f', 'lavfi', '-i', `testsrc2=size=${c.size[0]}x${c.size[1]}:rate=30`);
        if (a) args.push('-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000');
        if (v) args.push(...v.args, '-g', '60');
        if (a) args.push(...a.args);
        args.push('-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-frag_duration', '200000', `tcp://localhost:${tcpPort}/`);
        const ff = scene.ffmpeg(args);
        const status = await waitForServer(port, { stream: true, procs: [gst, ff] });
        const page = await scene.newPage(browser);
        await page.goto('about:blank');
        // the codec string fmp4initcache computed must be one this browser accepts
        assert.ok(await page.evaluate((m) => MediaSource.isTypeSupported(m), status.stream.mime),
          `MediaSource.isTypeSupported(${status.stream.mime}) is false`);
        const { ttff } = await openViewer(page, `http://127.0.0.1:${port}/`);
        const s = await watchFor(page, SECONDS);
        await reportMetrics(t, `${engine}/codec/${[c.v, c.a].filter(Boolean).join('+')}`, { ttff, s, port, extra: { codecs: `"${status.stream.codecs}"` } });
        if (v) assertPlayed(s, { what: label, width: c.size[0], height: c.size[1] });
        else assertPlayed(s, { what: label, video: false });
      });
    });
  }
});
}
