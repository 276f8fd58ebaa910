// The WebCodecs renderer's sample reader (web/player/samples.js) on real fMP4 files
// (tests/fixtures, made by tests/fixtures/make-fixtures.sh). Expected sample counts, byte totals,
// keyframe counts and first presentation times are ffprobe's (`-show_entries
// packet=stream_index,pts_time,size,flags`), per stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fixture, split } from './split.mjs';
import { parseSampleTracks, parseSamples, parsePrft, esdsAudioSpecificConfig, opusHeadFromDops } from '../../web/player/samples.js';

/** Per track: [samples, bytes, keyframes, first pts] over all fragments. */
function summary(file) {
  const { init, fragments } = split(fixture(file));
  const tracks = parseSampleTracks(init);
  const per = new Map();
  for (const f of fragments) {
    for (const s of parseSamples(f, tracks)) {
      const p = per.get(s.trackId) ?? { n: 0, bytes: 0, key: 0, first: Infinity, samples: [] };
      p.n++;
      p.bytes += s.data.length;
      p.key += s.keyframe ? 1 : 0;
      p.first = Math.min(p.first, s.pts);
      p.samples.push(s);
      per.set(s.trackId, p);
    }
  }
  return { tracks, per };
}

// [file, per track: [kind, format, samples, bytes, keyframes, first pts]] (ffprobe's numbers; all
// these files have an empty moov, so every sample is in a fragment)
const CASES = [
  ['every-frame.mp4', [['video', 'avc1', 30, 9976, 2, 0], ['audio', 'mp4a', 48, 8993, 48, 0]]], // one moof per sample
  ['separate-moof.mp4', [['video', 'avc1', 60, 19214, 2, 0], ['audio', 'mp4a', 95, 17671, 95, 0]]], // one moof per track
  ['omit-tfhd-offset.mp4', [['video', 'avc1', 60, 19214, 2, 0], ['audio', 'mp4a', 95, 17671, 95, 0]]], // no default-base-is-moof: 2nd traf follows the 1st's data
  ['cmaf.mp4', [['video', 'avc1', 60, 19214, 2, 0], ['audio', 'mp4a', 95, 17671, 95, 0]]],
  ['mp4mux-av.mp4', [['video', 'avc1', 60, 10159, 2, 0], ['audio', 'mp4a', 95, 17769, 95, 0]]], // GStreamer's mp4mux
  ['hevc.mp4', [['video', 'hvc1', 30, 10603, 2, 0.0667]]], // B-frames: composition offsets
  ['vp9.mp4', [['video', 'vp09', 30, 19412, 2, 0]]],
  ['opus.mp4', [['audio', 'Opus', 51, 9559, 51, 0]]],
  ['flac.mp4', [['audio', 'fLaC', 11, 13231, 11, 0]]],
];

for (const [file, want] of CASES) {
  test(`parseSamples: ${file}: samples, bytes, keyframes and first pts per track as ffprobe counts them`, () => {
    const { tracks, per } = summary(file);
    const got = [...tracks.values()].map((t) => {
      const p = per.get(t.id);
      return [t.kind, t.format, p.n, p.bytes, p.key, Math.round(p.first * 1e4) / 1e4];
    });
    assert.deepEqual(got, want);
    for (const [id, p] of per) {
      const t = tracks.get(id);
      // decode times never go back, and run without a gap: each sample starts where the previous
      // one ended (every-frame.mp4 has one moof, so one tfdt, per sample, and its audio does not:
      // there the dts are checked against ffprobe's dts_time)
      if (file === 'every-frame.mp4' && t.kind === 'audio') {
        assert.deepEqual(p.samples.slice(40, 45).map((x) => x.dts.toFixed(6)), ['0.853333', '0.874667', '0.917333', '0.917333', '0.960000']);
        continue;
      }
      for (let i = 1; i < p.samples.length; i++) {
        const a = p.samples[i - 1];
        const b = p.samples[i];
        assert.ok(b.dts >= a.dts, `${t.kind} sample ${i}: dts ${a.dts} -> ${b.dts}`);
        assert.ok(Math.abs(a.dts + a.duration - b.dts) < 1.5 / t.timescale, `${t.kind} sample ${i}: ${a.dts}+${a.duration} != ${b.dts}`);
      }
      // the first sample of a video track is a keyframe
      if (t.kind === 'video') assert.equal(p.samples[0].keyframe, true);
    }
  });
}

test('parseSamples: the bytes of a sample are the sample (H.264: AVCC length-prefixed NAL units filling it exactly)', () => {
  const { tracks, per } = summary('every-frame.mp4');
  const video = [...tracks.values()].find((t) => t.kind === 'video');
  const lengthSize = (video.description[4] & 3) + 1;
  assert.equal(lengthSize, 4);
  for (const s of per.get(video.id).samples) {
    let p = 0;
    const types = [];
    while (p + 4 <= s.data.length) {
      const n = (s.data[p] << 24 | s.data[p + 1] << 16 | s.data[p + 2] << 8 | s.data[p + 3]) >>> 0;
      types.push(s.data[p + 4] & 0x1f);
      p += 4 + n;
    }
    assert.equal(p, s.data.length, 'NAL units fill the sample');
    assert.equal(types.includes(5), s.keyframe, `IDR NAL unit (type 5) iff keyframe: ${types}`);
  }
});

test('parseSampleTracks: decoder configurations (avcC, hvcC, av1C, AudioSpecificConfig, OpusHead, fLaC)', () => {
  const first = (file) => [...parseSampleTracks(split(fixture(file)).init).values()];
  const [v, a] = first('every-frame.mp4');
  assert.deepEqual([v.width, v.height, v.description.length, v.description[0]], [128, 72, 40, 1], 'avcC: configurationVersion 1, 40 bytes as ffprobe extradata_size');
  assert.deepEqual([a.sampleRate, a.channels, a.description.length], [48000, 1, 5], 'AAC: mono (the ASC says so; the sample entry says 2)');
  assert.equal(a.description[0] >> 3, 2, 'AAC LC (audioObjectType 2)');
  const [h] = first('hevc.mp4');
  assert.deepEqual([h.format, h.description.length, h.description[0]], ['hvc1', 2408, 1], 'hvcC as ffprobe extradata_size');
  const [av1] = first('av1.mp4');
  assert.deepEqual([av1.format, av1.description.length, av1.description[0]], ['av01', 16, 0x81], 'av1C: marker + version 1');
  const [vp9] = first('vp9.mp4');
  assert.equal(vp9.description, null, 'VP9: no description');
  const [opus] = first('opus.mp4');
  assert.equal(String.fromCharCode(...opus.description.subarray(0, 8)), 'OpusHead');
  assert.deepEqual([opus.description.length, opus.description[9], opus.sampleRate, opus.channels], [19, 1, 48000, 1], 'OpusHead as ffprobe extradata (19 bytes, mono)');
  const [flac] = first('flac.mp4');
  assert.equal(String.fromCharCode(...flac.description.subarray(0, 4)), 'fLaC');
  assert.equal(flac.description[4] & 0x7f, 0, 'first metadata block: STREAMINFO');
  assert.equal(flac.description.length, 4 + 4 + 34, 'fLaC + block header + STREAMINFO (ffprobe extradata 34)');
});

test('esdsAudioSpecificConfig / opusHeadFromDops: hand-made boxes', () => {
  // esds: FullBox header, ES_Descriptor(3) { ES_ID, flags, DecoderConfigDescriptor(4) { 13 bytes, DecoderSpecificInfo(5) { 11 90 } } }
  const esds = new Uint8Array([0, 0, 0, 0, 3, 0x80, 0x80, 0x80, 25, 0, 1, 0, 4, 0x80, 0x80, 0x80, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x80, 0x80, 0x80, 2, 0x11, 0x90]);
  assert.deepEqual([...esdsAudioSpecificConfig(esds, { body: 0, end: esds.length })], [0x11, 0x90]);
  assert.equal(esdsAudioSpecificConfig(esds, { body: 0, end: 20 }), null, 'truncated: none');
  // dOps: version 0, 2 channels, pre-skip 312, 48000 Hz, gain 0, family 0
  const dops = new Uint8Array([0, 2, 0x01, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0]);
  const head = opusHeadFromDops(dops, { body: 0, end: dops.length });
  assert.deepEqual([...head], [...Buffer.from('OpusHead'), 1, 2, 0x38, 0x01, 0x80, 0xbb, 0, 0, 0, 0, 0]);
});

test('parsePrft: ffmpeg -write_prft wallclock: NTP wall clock → Unix ms, media time of the reference track', () => {
  const { init, fragments } = split(fixture('prft.mp4'));
  const tracks = parseSampleTracks(init);
  const prfts = fragments.map((f) => parsePrft(f, tracks));
  assert.ok(prfts.length >= 5 && prfts.every((p) => p !== null), 'every fragment has one');
  // the fixture was made on 2026-11-30 (make-fixtures.sh); wall clock non-decreasing, media time matches tfdt
  for (const p of prfts) assert.ok(p.wallClock > Date.UTC(2026, 10, 30) && p.wallClock < Date.UTC(2026, 11, 1), new Date(p.wallClock).toISOString());
  for (let i = 1; i < prfts.length; i++) assert.ok(prfts[i].wallClock >= prfts[i - 1].wallClock);
  fragments.forEach((f, i) => {
    const first = parseSamples(f, tracks)[0];
    assert.ok(Math.abs(prfts[i].mediaTime - first.dts) < 1e-6, `prft media_time ${prfts[i].mediaTime} = first dts ${first.dts}`);
  });
  assert.equal(parsePrft(split(fixture('every-frame.mp4')).fragments[0], tracks), null, 'no prft: null');
});

test('parseSamples: truncated messages give only whole samples, and never throw', () => {
  const { init, fragments } = split(fixture('separate-moof.mp4'));
  const tracks = parseSampleTracks(init);
  const f = fragments[0];
  const all = parseSamples(f, tracks);
  for (const cut of [0, 7, 8, 100, Math.floor(f.length / 2), f.length - 1]) {
    const got = parseSamples(f.subarray(0, cut), tracks);
    assert.ok(got.length <= all.length);
    for (const s of got) assert.ok(s.data.byteOffset + s.data.length <= f.byteOffset + cut);
  }
  assert.deepEqual(parseSamples(f, new Map()), [], 'unknown tracks: no samples');
  assert.equal(parseSampleTracks(new Uint8Array(16)).size, 0, 'no moov: no track');
});
