// Timestamp discontinuities inside one init segment (issue 13, part 5): an encoder or camera
// that resets, a looped file. A 25 s stream (1 s fragments) whose tfdt jumps 8 s back at 12 s
// and 60 s forward at 18 s is fed in real time through `fdsrc ! fmp4initcache ! websocketsink`;
// the player (index.html) and the notes' client (notes-client.html, which never seeks) must play
// on through both jumps (before the fix: 17.8 and 9.9 of 25 s). fmp4initcache flags the jumps
// DISCONT and websocketsink's rebasing restarts each viewer's timeline there.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BROWSERS, gotoPage, useBrowser, waitForFirstFrame } from './lib/browser.mjs';
import { Scene, startPipeline, waitForServer } from './lib/pipeline.mjs';
import { assertPlayed, reportMetrics, watchFor } from './lib/viewer.mjs';

const SECONDS = 25;

/** Top-level ISO BMFF boxes of `buf`: { type, start, size }. */
function boxes(buf, start = 0, end = buf.length) {
  const out = [];
  for (let p = start; p + 8 <= end;) {
    let size = buf.readUInt32BE(p);
    const type = buf.toString('latin1', p + 4, p + 8);
    let header = 8;
    if (size === 1) { size = Number(buf.readBigUInt64BE(p + 8)); header = 16; }
    if (size < header || p + size > end) throw new Error(`bad box at ${p}`);
    out.push({ type, start: p, size, payload: p + header });
    p += size;
  }
  return out;
}
const child = (buf, box, type) => boxes(buf, box.payload, box.start + box.size).filter((b) => b.type === type);

/** track_ID → mdhd timescale, from the moov. */
function timescales(buf, moov) {
  const map = new Map();
  for (const trak of child(buf, moov, 'trak')) {
    const [tkhd] = child(buf, trak, 'tkhd');
    const id = buf.readUInt32BE(tkhd.payload + (buf[tkhd.payload] === 1 ? 20 : 12));
    const [mdhd] = child(buf, child(buf, trak, 'mdia')[0], 'mdhd');
    map.set(id, buf.readUInt32BE(mdhd.payload + (buf[mdhd.payload] === 1 ? 20 : 12)));
  }
  return map;
}

/** Adds `seconds` to every tfdt of the moof (each track in its timescale). */
function shiftTfdt(buf, moof, scales, seconds) {
  for (const traf of child(buf, moof, 'traf')) {
    const [tfhd] = child(buf, traf, 'tfhd');
    const scale = scales.get(buf.readUInt32BE(tfhd.payload + 4));
    for (const tfdt of child(buf, traf, 'tfdt')) {
      const at = tfdt.payload + 4;
      const delta = BigInt(Math.round(seconds * scale));
      if (buf[tfdt.payload] === 1) buf.writeBigUInt64BE(buf.readBigUInt64BE(at) + delta, at);
      else buf.writeUInt32BE(Number(BigInt(buf.readUInt32BE(at)) + delta), at);
    }
  }
}

/**
 * The stream: ffmpeg's 25 s H.264 (GOP 30, 30 fps: 1 s fragments) + AAC, its tfdt edited so that
 * fragment 12 goes 8 s back and fragment 18 60 s forward. Returns the init and the fragments.
 */
function makeJumpingStream() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fmp4ws-discont-'));
  const file = path.join(dir, 'src.mp4');
  try {
    execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-t', String(SECONDS), '-c:v', 'libx264', '-preset', 'veryfast', '-pix_fmt', 'yuv420p', '-profile:v', 'high', '-g', '30',
      '-b:v', '600k', '-c:a', 'aac', '-b:a', '64k',
      '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', file], { timeout: 120000 });
    const buf = fs.readFileSync(file);
    const top = boxes(buf);
    const moov = top.find((b) => b.type === 'moov');
    const scales = timescales(buf, moov);
    const init = buf.subarray(0, moov.start + moov.size);
    const fragments = [];
    for (let i = 0; i < top.length; i++) {
      if (top[i].type !== 'moof') continue;
      const k = fragments.length;
      if (k >= 12) shiftTfdt(buf, top[i], scales, k >= 18 ? -8 + 60 : -8);
      const mdat = top[i + 1];
      assert.equal(mdat.type, 'mdat');
      fragments.push(buf.subarray(top[i].start, mdat.start + mdat.size));
    }
    assert.equal(fragments.length, SECONDS, 'one fragment a second');
    return { init, fragments };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

let stream = null;

for (const engine of BROWSERS) {
describe(engine, () => {
  const browser = useBrowser(engine);

  // One page at a time: a page in a background tab is hidden (the player pauses its stream then).
  for (const [what, urlPath] of [['index.html', '/'], ['notes-client.html', '/notes-client.html']]) {
    test(`tfdt 8 s back at 12 s and 60 s forward at 18 s: ${what} plays on`, async (t) => {
      stream ??= makeJumpingStream();
      const { init, fragments } = stream;
      const scene = new Scene();
      await scene.run(async () => {
        const gst = scene.add(startPipeline('fdsrc fd=0 ! fmp4initcache ! websocketsink port=0 name=sink', { stdin: 'pipe' }));
        const port = await gst.port('sink');
        await waitForServer(port, { procs: [gst] });
        // The page waits for the stream, then gets it from its start.
        const page = await scene.newPage(browser);
        await gotoPage(page, `http://127.0.0.1:${port}${urlPath}`);

        // Real time: the init and fragment 0 now, fragment k at k seconds.
        const t0 = Date.now();
        gst.child.stdin.write(init);
        let timer = null;
        const fed = new Promise((resolve) => {
          let k = 0;
          const next = () => {
            while (k < fragments.length && Date.now() - t0 >= k * 1000) gst.child.stdin.write(fragments[k++]);
            if (k < fragments.length) timer = setTimeout(next, Math.max(0, t0 + k * 1000 - Date.now()));
            else resolve();
          };
          next();
        });
        try {
          const first = await waitForFirstFrame(page, { timeout: 15000 });
          // Watch through both jumps (12 s and 18 s) to the end of the stream.
          const watch = Math.max(10, SECONDS - 1 - (Date.now() - t0) / 1000);
          const s = await watchFor(page, watch);
          await fed;
          await reportMetrics(t, `${engine}/discont/${what}`, { ttff: first.sinceNavigation, s, port });
          assertPlayed(s, { what: `${what} across the jumps`, width: 640, height: 360 });
        } finally {
          clearTimeout(timer);
        }
      });
    });
  }
});
}
