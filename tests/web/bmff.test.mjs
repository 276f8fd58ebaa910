// The player's box parser (web/player/bmff.js) on real fMP4 files (tests/fixtures, made by
// tests/fixtures/make-fixtures.sh; keyframe counts checked with ffprobe's packet flags).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boxes, parseInit, parseFragment, prftFor, ENCODER_PRFT_HOLD, NTP_UNIX_OFFSET } from '../../web/player/bmff.js';
import { fixture, split } from './split.mjs';

test('boxes: top-level boxes of a file, and a truncated box ends the walk', () => {
  const u8 = fixture('notes-g30.mp4');
  const top = [...boxes(u8, 0, u8.length)];
  assert.deepEqual(top.slice(0, 2).map((b) => b.type), ['ftyp', 'moov']);
  assert.equal(top[top.length - 1].end, u8.length, 'the walk covers the file');
  const cut = [...boxes(u8, 0, 100)];
  assert.deepEqual(cut.map((b) => b.type), ['ftyp'], 'moov does not fit in 100 bytes');
});

test('parseInit: tracks, timescales and handlers', () => {
  const tracks = parseInit(split(fixture('notes-g30.mp4')).init);
  assert.deepEqual([...tracks.values()].map((t) => [t.handler, t.timescale]), [['vide', 15360], ['soun', 48000]]);
  const audio = parseInit(split(fixture('audio-only.mp4')).init);
  assert.deepEqual([...audio.values()].map((t) => [t.handler, t.timescale]), [['soun', 48000]]);
  assert.equal(parseInit(new Uint8Array(16)).size, 0, 'no moov: no track');
});

// notes-g30.mp4 has no empty_moov: its first keyframe is in the moov's samples, not in a fragment
for (const [file, keyframes] of [['notes-g30.mp4', [1]], ['separate-moof.mp4', [0, 1]], ['mp4mux-av.mp4', [0, 1]]]) {
  test(`parseFragment: ${file}: start times and keyframe fragments (ffprobe: keyframes at ${keyframes} s)`, () => {
    const { init, fragments } = split(fixture(file));
    const tracks = parseInit(init);
    const parsed = fragments.map((f) => parseFragment(f, tracks));
    assert.ok(parsed.length > 2, `${parsed.length} fragments`);
    for (const p of parsed) assert.equal(typeof p.start, 'number');
    const starts = parsed.map((p) => p.start);
    assert.ok(starts.every((s) => s >= 0 && s < 2.1), `starts in the 2 s of the file: ${starts}`);
    const key = parsed.filter((p) => p.keyframe).map((p) => p.start);
    assert.equal(key.length, keyframes.length, `keyframe fragments at ${key}`);
    key.forEach((s, i) => assert.ok(Math.abs(s - keyframes[i]) < 0.05, `keyframe ${s} ≈ ${keyframes[i]}`));
  });
}

test('parseFragment: trackEnds, one per track fragment (mp4mux: one moof per track; ffmpeg: both in one)', () => {
  const ends = (file) => {
    const { init, fragments } = split(fixture(file));
    const tracks = parseInit(init);
    return fragments.map((f) => parseFragment(f, tracks).trackEnds);
  };
  const mux = ends('mp4mux-av.mp4');
  // AAC: 32 frames of 1024 at 48 kHz per moof (0.683 s); video 0.7 s / 0.3 s
  assert.deepEqual(mux.slice(0, 3).map((e) => e.map(([id, t]) => [id, Math.round(t * 1000) / 1000])), [[[2, 0.683]], [[1, 0.7]], [[1, 1]]]);
  const notes = ends('notes-g30.mp4');
  assert.ok(notes.every((e) => e.length === 2), 'ffmpeg: video and audio in every moof');
  for (const e of notes) assert.ok(Math.abs(e[0][1] - e[1][1]) < 0.05, `interleaved: ${e}`);
});

test('parseFragment: audio only: every fragment is a keyframe, starts ascending', () => {
  const { init, fragments } = split(fixture('audio-only.mp4'));
  const tracks = parseInit(init);
  const parsed = fragments.map((f) => parseFragment(f, tracks));
  assert.ok(parsed.length >= 3);
  assert.ok(parsed.every((p) => p.keyframe));
  for (let i = 1; i < parsed.length; i++) assert.ok(parsed[i].start > parsed[i - 1].start);
  const d = parsed[1].start - parsed[0].start;
  assert.ok(Math.abs(d - 0.5) < 0.05, `-frag_duration 500000: ${d} s (whole AAC frames)`);
});

test('parseFragment: unknown track or no moof: no start', () => {
  const { fragments } = split(fixture('notes-g30.mp4'));
  const p = parseFragment(fragments[0], new Map());
  assert.deepEqual({ start: p.start, keyframe: p.keyframe, duration: p.duration }, { start: null, keyframe: true, duration: 0 });
  assert.equal(parseFragment(new Uint8Array(8), parseInit(split(fixture('notes-g30.mp4')).init)).start, null);
});

// Hand-made fragments: the earliest tfdt over the track fragments, and the video keyframe flag from
// trun's first-sample flags, else the trex defaults.
const u32 = (n) => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const box = (type, ...parts) => {
  const body = parts.flat();
  return [...u32(8 + body.length), ...[...type].map((c) => c.charCodeAt(0)), ...body];
};
const traf = (id, ticks, firstFlags) => box('traf',
  box('tfhd', u32(0x020000), u32(id)),
  box('tfdt', [1, 0, 0, 0], u32(0), u32(ticks)),
  ...(firstFlags === undefined ? [] : [box('trun', u32(0x000004), u32(1), u32(firstFlags))]));
const TRACKS = new Map([
  [1, { id: 1, timescale: 1000, handler: 'vide', defaultFlags: 0x10000 }],
  [2, { id: 2, timescale: 48000, handler: 'soun', defaultFlags: 0 }],
]);

test('parseFragment: earliest tfdt of the moof; keyframe from trun first-sample flags, else trex', () => {
  const frag = (...trafs) => new Uint8Array([...box('moof', ...trafs), ...box('mdat', [0])]);
  const sk = (u8) => {
    const p = parseFragment(u8, TRACKS);
    return { start: p.start, keyframe: p.keyframe };
  };
  assert.deepEqual(sk(frag(traf(1, 2000, 0x02000000), traf(2, 91200))), { start: 1.9, keyframe: true });
  assert.deepEqual(sk(frag(traf(2, 91200), traf(1, 2000, 0x02000000))), { start: 1.9, keyframe: true });
  assert.deepEqual(sk(frag(traf(1, 2000, 0x01010000), traf(2, 96000))), { start: 2, keyframe: false });
  assert.deepEqual(sk(frag(traf(1, 2000))), { start: 2, keyframe: false }, 'trex default: non-sync');
  assert.deepEqual(sk(frag(traf(2, 48000))), { start: 1, keyframe: false }, 'audio moof in a stream with video');
});

// Fragment durations (the player's fragment-duration estimate and the latency learner use them):
// the sum of the video track fragment's sample durations, whatever the fragmenting.
for (const [file, want] of [['notes-g30.mp4', null], ['separate-moof.mp4', null], ['mp4mux-av.mp4', null], ['audio-only.mp4', 0.5]]) {
  test(`parseFragment: ${file}: durations add up to the timeline (next start − start)`, () => {
    const { init, fragments } = split(fixture(file));
    const tracks = parseInit(init);
    const video = [...tracks.values()].some((t) => t.handler === 'vide');
    const parsed = fragments.map((f) => parseFragment(f, tracks)).filter((p) => !video || p.hasVideo);
    assert.ok(parsed.length >= 2, `${parsed.length} fragments`);
    for (const p of parsed) assert.ok(p.duration > 0 && p.duration < 3, `duration ${p.duration}`);
    // the video fragments tile the video timeline: each ends where the next starts (the start is
    // the earliest tfdt of the moof: audio may start a little earlier in the same moof)
    for (let i = 0; i + 1 < parsed.length; i++) {
      const gap = parsed[i + 1].start - (parsed[i].start + parsed[i].duration);
      assert.ok(Math.abs(gap) < 0.05, `fragment ${i}: ends ${parsed[i].start + parsed[i].duration}, next starts ${parsed[i + 1].start}`);
    }
    if (want !== null) assert.ok(Math.abs(parsed[0].duration - want) < 0.05, `${parsed[0].duration} ≈ ${want}`);
  });
}

test('parseFragment: duration from trun sample durations, tfhd default or trex default', () => {
  const tracks = new Map([[1, { id: 1, timescale: 1000, handler: 'vide', defaultFlags: 0, defaultDuration: 40 }]]);
  const moof = (tfhdFlags, tfhdExtra, trun) => new Uint8Array([...box('moof', box('traf',
    box('tfhd', u32(tfhdFlags), u32(1), ...tfhdExtra), box('tfdt', [0, 0, 0, 0], u32(1000)), trun)), ...box('mdat', [0])]);
  // per-sample durations (0x100) and sizes (0x200): 33 + 34 + 33 ms
  const perSample = box('trun', u32(0x000300), u32(3), u32(33), u32(10), u32(34), u32(10), u32(33), u32(10));
  assert.equal(parseFragment(moof(0x020000, [], perSample), tracks).duration, 0.1);
  // tfhd default_sample_duration (0x8): 5 × 20 ms
  const five = box('trun', u32(0x000000), u32(5));
  assert.equal(parseFragment(moof(0x020008, [u32(20)], five), tracks).duration, 0.1);
  // trex default: 5 × 40 ms
  assert.equal(parseFragment(moof(0x020000, [], five), tracks).duration, 0.2);
});

test('parseFragment: prft (ISO/IEC 14496-12 §8.16.5) before the moof: NTP time, media time, flags', () => {
  const tracks = new Map([[1, { id: 1, timescale: 90000, handler: 'vide', defaultFlags: 0, defaultDuration: 3000 }]]);
  const unixS = 1764500000.25; // 2025-11-30
  const ntp = unixS + NTP_UNIX_OFFSET;
  const sec = Math.floor(ntp);
  const frac = Math.round((ntp - sec) * 2 ** 32);
  const rest = [...box('moof', box('traf', box('tfhd', u32(0x020000), u32(1)), box('tfdt', [0, 0, 0, 0], u32(180000)))), ...box('mdat', [0])];
  const v1 = new Uint8Array([...box('prft', [1, 0, 0, 4], u32(1), u32(sec), u32(frac), u32(0), u32(180000)), ...rest]);
  const p = parseFragment(v1, tracks).prft;
  assert.equal(p.flags, 4);
  assert.equal(p.referenceTrackId, 1);
  assert.equal(p.mediaTime, 2);
  assert.ok(Math.abs(p.unixMs - unixS * 1000) < 0.01, `${p.unixMs}`);
  const v0 = new Uint8Array([...box('prft', [0, 0, 0, 0], u32(1), u32(sec), u32(frac), u32(90000)), ...rest]);
  assert.deepEqual({ flags: parseFragment(v0, tracks).prft.flags, mediaTime: parseFragment(v0, tracks).prft.mediaTime }, { flags: 0, mediaTime: 1 });
  assert.equal(parseFragment(new Uint8Array(rest), tracks).prft, null, 'no prft');
  const cut = new Uint8Array([...box('prft', [1, 0, 0, 0], u32(1), u32(sec)), ...rest]);
  assert.equal(parseFragment(cut, tracks).prft, null, 'truncated prft: ignored');
});

test('prftFor: the latest prft at or before the time; an encoder\'s wins over a later server\'s while recent', () => {
  const at = (p) => p.t;
  const src = (p) => p.source;
  const enc = (t) => ({ t, source: 'encoder' });
  const srv = (t) => ({ t, source: 'server' });
  assert.equal(prftFor([], 5, at, src), null);
  assert.equal(prftFor([srv(6)], 5, at, src), null, 'none at or before 5 s');
  // server stamps only: the latest before the frame
  const s4 = srv(4);
  assert.equal(prftFor([srv(1), s4, srv(7)], 5, at, src), s4);
  // ffmpeg frag_every_frame: encoder stamps on video fragments, server stamps on audio ones
  const e4 = enc(4.0);
  assert.equal(prftFor([enc(3.9), e4, srv(4.02), srv(4.04)], 4.05, at, src), e4);
  // an encoder that stopped stamping long ago no longer wins
  const s30 = srv(4 + ENCODER_PRFT_HOLD + 1);
  assert.equal(prftFor([e4, s30], 30, at, src), s30);
  // order of the list does not matter
  assert.equal(prftFor([srv(4.04), e4, srv(4.02), enc(3.9)], 4.05, at, src), e4);
});
