// The WebCodecs renderer's pure helpers (web/player/webcodecs.js): codec strings of a `stream`
// message split into video and audio as WebCodecs' codec registry spells them, and the avc1
// codec string of an avcC (checked against ffprobe's profile and level of the fixtures). The renderer itself needs a browser: tests/e2e/webcodecs.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { boxes } from '../../web/player/bmff.js';
import { parseSampleTracks } from '../../web/player/samples.js';
import { streamCodecs, avcCodecString, webCodecsSupport } from '../../web/player/webcodecs.js';

const init = (name) => {
  const u8 = new Uint8Array(fs.readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));
  return u8.subarray(0, [...boxes(u8, 0, u8.length)].find((b) => b.type === 'moov').end);
};

test('streamCodecs: video and audio codec of a stream message', () => {
  assert.deepEqual(streamCodecs({ codecs: 'avc1.64001e, mp4a.40.2' }), { video: 'avc1.64001e', audio: 'mp4a.40.2' });
  assert.deepEqual(streamCodecs({ codecs: 'vp09.00.10.08, Opus' }), { video: 'vp09.00.10.08', audio: 'opus' });
  assert.deepEqual(streamCodecs({ codecs: 'fLaC' }), { video: null, audio: 'flac' });
  assert.deepEqual(streamCodecs({ codecs: 'mp4a.6B' }), { video: null, audio: 'mp3' });
  assert.deepEqual(streamCodecs({ mime: 'video/mp4; codecs="av01.0.04M.08"' }), { video: 'av01.0.04M.08', audio: null }, 'from the mime when there is no codecs field');
  assert.deepEqual(streamCodecs({ mime: 'video/mp4' }), { video: null, audio: null });
});

test('avcCodecString: avc1.PPCCLL from the avcC of the fixtures (profile, constraints, level)', () => {
  const v = (name) => [...parseSampleTracks(init(name)).values()].find((t) => t.kind === 'video');
  // ffprobe: profile Constrained Baseline (profile_idc 66 = 0x42, constraint_set0+1 = 0xc0), level 10 (0x0a)
  for (const f of ['notes-g30.mp4', 'every-frame.mp4', 'mp4mux-av.mp4']) assert.equal(avcCodecString(v(f)), 'avc1.42c00a', f);
  assert.equal(avcCodecString(v('vp9.mp4')), null, 'not AVC');
});

test('webCodecsSupport: without WebCodecs (Node.js has none) the answer says so', async () => {
  assert.equal(typeof globalThis.VideoDecoder, 'undefined');
  const r = await webCodecsSupport({ codecs: 'avc1.64001e' });
  assert.deepEqual(r, { ok: false, reason: 'This browser has no WebCodecs (VideoDecoder/AudioDecoder).' });
});
