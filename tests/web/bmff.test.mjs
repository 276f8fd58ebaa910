// The player's box parser (web/player/bmff.js) on real fMP4 files (tests/fixtures, made by
// tests/fixtures/make-fixtures.sh; keyframe counts checked with ffprobe's packet flags).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { boxes, parseInit, parseFragment } from '../../web/player/bmff.js';

const fixture = (name) => new Uint8Array(fs.readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));

/**
 * Splits a file the way the server sends it: init (ftyp + moov), then one message per fragment
 * ([styp] + moof + mdat). Media in the moov's own mdat (no empty_moov) is not a fragment.
 */
function split(u8) {
  const top = [...boxes(u8, 0, u8.length)];
  const moovEnd = top.find((b) => b.type === 'moov').end;
  const fragments = [];
  let start = -1;
  for (const b of top) {
    const boxStart = b.body - (b.end - b.body > 0xffffffff ? 16 : 8);
    if ((b.type === 'styp' || b.type === 'moof') && start < 0) start = boxStart;
    if (b.type === 'mdat' && start >= 0) {
      fragments.push(u8.subarray(start, b.end));
      start = -1;
    }
  }
  return { init: u8.subarray(0, moovEnd), fragments };
}

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
  assert.deepEqual(parseFragment(fragments[0], new Map()), { start: null, keyframe: true });
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
  assert.deepEqual(parseFragment(frag(traf(1, 2000, 0x02000000), traf(2, 91200)), TRACKS), { start: 1.9, keyframe: true });
  assert.deepEqual(parseFragment(frag(traf(2, 91200), traf(1, 2000, 0x02000000)), TRACKS), { start: 1.9, keyframe: true });
  assert.deepEqual(parseFragment(frag(traf(1, 2000, 0x01010000), traf(2, 96000)), TRACKS), { start: 2, keyframe: false });
  assert.deepEqual(parseFragment(frag(traf(1, 2000)), TRACKS), { start: 2, keyframe: false }, 'trex default: non-sync');
  assert.deepEqual(parseFragment(frag(traf(2, 48000)), TRACKS), { start: 1, keyframe: false }, 'audio moof in a stream with video');
});
