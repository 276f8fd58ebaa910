// fmp4initcache's view of real streams, checked against independent tools:
// - RFC 6381 codec strings vs the mp4box npm package (mp4box.js);
// - keyframe flags vs ffprobe's packet flags;
// - the element's output (clean init + rebuilt first fragment) decoded by ffmpeg, every frame.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const MP4Box = require('mp4box');
const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, '..', 'fixtures');
const build = process.env.FMP4WS_BUILD || join(here, '..', '..', 'build');
const inspectBin = join(build, 'tools', 'fmp4ws-inspect');
const files = readdirSync(fixtures).filter((f) => f.endsWith('.mp4')).sort();

function inspect(file) {
  const out = execFileSync(inspectBin, ['--fragments', join(fixtures, file)], { encoding: 'utf8' });
  const codecs = /codecs: (.*)/.exec(out)[1];
  const fragments = [...out.matchAll(/fragment seq=(\d+) dts=([\d.]+) duration=([\d.]+) key=(\d) video=(\d)/g)]
    .map((m) => ({ seq: +m[1], dts: +m[2], key: m[4] === '1', video: m[5] === '1' }));
  return { codecs, fragments };
}

function mp4boxCodecs(file) {
  const buf = readFileSync(join(fixtures, file));
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
  ab.fileStart = 0;
  let info = null;
  const f = MP4Box.createFile();
  f.onReady = (i) => { info = i; };
  f.appendBuffer(ab);
  f.flush();
  assert.ok(info, `mp4box could not read ${file}`);
  // Video first, as fmp4initcache orders them; mp4box.js names Opus/FLAC by their sample entry.
  const kind = (t) => (t.video ? 0 : t.audio ? 1 : 2);
  return info.tracks.slice().sort((a, b) => kind(a) - kind(b))
    .map((t) => ({ Opus: 'opus', fLaC: 'flac' })[t.codec] || t.codec).join(', ');
}

for (const file of files) {
  test(`codecs of ${file} match mp4box.js`, () => {
    assert.equal(inspect(file).codecs.toLowerCase(), mp4boxCodecs(file).toLowerCase());
  });
}

function ffprobeVideoPackets(file) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries',
    'packet=dts_time,flags', '-of', 'csv=p=0', join(fixtures, file)], { encoding: 'utf8' });
  return out.trim().split('\n').filter(Boolean).map((l) => {
    const [dts, flags] = l.split(',');
    return { dts: +dts, key: flags.includes('K') };
  });
}

for (const file of files) {
  const packets = ffprobeVideoPackets(file);
  if (packets.length === 0) continue; // audio-only: every fragment is a start point (unit tests)
  test(`keyframe flags of ${file} match ffprobe`, () => {
    const { fragments } = inspect(file);
    assert.ok(fragments.length > 0);
    for (const f of fragments) {
      if (!f.video) {
        assert.equal(f.key, false, `audio-only moof ${f.seq} must not be a start point`);
        continue;
      }
      const p = packets.find((q) => Math.abs(q.dts - f.dts) < 0.0005);
      assert.ok(p, `no video packet at ${f.dts} (fragment ${f.seq})`);
      assert.equal(f.key, p.key, `fragment ${f.seq} at ${f.dts}: key=${f.key}, ffprobe says ${p.key}`);
    }
  });
}

function frameCount(path) {
  const out = execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries',
    'stream=codec_type,nb_read_frames', '-of', 'csv=p=0', path], { encoding: 'utf8' });
  return out.trim().split('\n').sort().join(' ');
}

for (const file of ['notes-g30.mp4', 'notes-g250.mp4', 'tiny-notes.mp4', 'av1.mp4', 'ac3.mp4', 'mp4mux-av.mp4', 'every-frame.mp4']) {
  test(`fmp4initcache output of ${file} decodes, every frame`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'fmp4ws-'));
    try {
      const out = join(dir, 'out.mp4');
      const r = spawnSync('gst-launch-1.0', ['-q', 'filesrc', `location=${join(fixtures, file)}`, 'blocksize=4096',
        '!', 'fmp4initcache', '!', 'filesink', `location=${out}`],
        { env: { ...process.env, GST_PLUGIN_PATH: join(build, 'gst') }, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      const dec = spawnSync('ffmpeg', ['-v', 'error', '-i', out, '-f', 'null', '-'], { encoding: 'utf8' });
      assert.equal(dec.status, 0, dec.stderr);
      assert.equal(dec.stderr.trim(), '', `ffmpeg reported errors: ${dec.stderr}`);
      // Same frames as the source: the moov's samples were not lost.
      assert.equal(frameCount(out), frameCount(join(fixtures, file)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
