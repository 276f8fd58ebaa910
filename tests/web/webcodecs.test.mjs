// The WebCodecs renderer's pure helpers (web/player/webcodecs.js): codec strings of a `stream`
// message split into video and audio as WebCodecs' codec registry spells them, and the avc1
// codec string of an avcC (checked against ffprobe's profile and level of the fixtures). The renderer itself needs a browser: tests/e2e/webcodecs.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSampleTracks, parseSamples } from '../../web/player/samples.js';
import { streamCodecs, avcCodecString, webCodecsSupport, WebCodecsRenderer } from '../../web/player/webcodecs.js';
import { fixture, split } from './split.mjs';

const init = (name) => split(fixture(name)).init;

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

/** The player's defaults (renderDelay 0.05 s, maxLag 0.5 s, 16 frames, 60 chunks). */
const OPTS = Object.freeze({ renderDelay: 0.05, maxLag: 0.5, maxFrameQueue: 16, maxDecodeQueue: 60, muted: true });
/** A renderer on a canvas without a 2D context (no browser needed). */
const newRenderer = () => new WebCodecsRenderer(/** @type {any} */ ({ getContext: () => null }), { ...OPTS }, { onFatal() {}, onFirstFrame() {}, log() {} });

// The renderer's bounds follow the longest track's fragments (mp4mux fragment-duration=700). Constructed without a browser: a canvas without a 2D context, no animation frames.
test('WebCodecsRenderer: windows and bounds scale with the fragments (mp4mux-av.mp4: video 0.7 / 0.3 s, AAC 0.683 s moofs)', () => {
  const g = /** @type {any} */ (globalThis);
  const raf = g.requestAnimationFrame;
  g.requestAnimationFrame = () => 0;
  g.cancelAnimationFrame ??= () => {};
  try {
    const r = newRenderer();
    assert.equal(r.fragmentSpan(), 0);
    assert.equal(r.windowMs(), 500, 'per-frame streams keep the 0.5 s window');
    assert.equal(r.lagLimit(), 0.5);
    assert.equal(r.frameQueueLimit(), 16);
    const file = split(fixture('mp4mux-av.mp4'));
    const tracks = parseSampleTracks(file.init);
    for (const seg of file.fragments) r.noteFragment(parseSamples(seg, tracks));
    const span = r.fragmentSpan();
    // the longest of each track's last 8: video 0.7 (0.7 / 0.3 alternate), AAC 32 × 1024 / 48000
    assert.ok(Math.abs(span - 0.7) < 1e-6, `the longest track's: ${span}`);
    assert.ok(Math.abs(Math.max(...r.fragDurations.get(2)) - 1024 * 32 / 48000) < 1e-6, 'AAC moofs (the last one shorter: the file ends)');
    assert.ok(Math.abs(r.windowMs() - 2000 * span) < 1e-6);
    assert.ok(Math.abs(r.lagLimit() - (2 * span + 0.05)) < 1e-9, 'a whole fragment can be queued without a jump');
    assert.equal(r.frameQueueLimit(), Math.ceil((0.7 + 0.05) / r.frameDuration) + 2, 'a whole fragment of frames waits for its turn');
    for (let i = 0; i < 100; i++) { r.stalled(); r.startClock(0); } // 100 underruns, each played out of
    assert.ok(Math.abs(r.margin() - (0.05 + span)) < 1e-9, `stalls raise the margin up to a fragment: ${r.margin()}`);
    assert.equal(r.counters.stalls, 100);
    r.fragDurations.set(1, [30 - 1e-9]);
    assert.equal(r.frameQueueLimit(), 4 * OPTS.maxFrameQueue, 'bounded: 4 × maxFrameQueue');
    r.destroy();
  } finally {
    g.requestAnimationFrame = raf;
  }
});

// Stalls are counted once per underrun, and not while the player has paused the stream or after
// its end. A fake AudioContext / AudioWorkletNode and a fake clock, no browser.
test('WebCodecsRenderer: one underrun of audio and video is one stall; none while suspended', async () => {
  const g = /** @type {any} */ (globalThis);
  const saved = {
    performance: Object.getOwnPropertyDescriptor(g, 'performance'), raf: g.requestAnimationFrame, caf: g.cancelAnimationFrame,
    AWN: g.AudioWorkletNode, AC: g.AudioContext, cou: URL.createObjectURL, rou: URL.revokeObjectURL,
  };
  let T = 0;
  let node;
  try {
    Object.defineProperty(g, 'performance', { value: { now: () => T }, configurable: true, writable: true });
    g.requestAnimationFrame = () => 0;
    g.cancelAnimationFrame = () => {};
    g.AudioWorkletNode = class { constructor() { node = this; this.port = { postMessage() {}, onmessage: null }; } connect(x) { return x; } disconnect() {} };
    g.AudioContext = class {
      constructor(o) { this.sampleRate = o.sampleRate; this.state = 'running'; this.currentTime = 0; this.outputLatency = 0; this.audioWorklet = { addModule: async () => {} }; this.destination = {}; }
      createGain() { return { gain: { value: 1 }, connect: (x) => x, disconnect() {} }; }
      resume() { return Promise.resolve(); }
      close() { return Promise.resolve(); }
    };
    URL.createObjectURL = () => 'blob:x';
    URL.revokeObjectURL = () => {};
    const r = newRenderer();
    r.openAudioOutput(48000);
    await new Promise((res) => setTimeout(res, 0));
    const msg = (d) => node.port.onmessage({ data: d });
    /** 1 s of video decoded and drawn, the audio playing and driving the clock, then both run out */
    const underrun = (t0) => {
      for (let i = 0; i < 30; i++) r.onFrame({ timestamp: Math.round((t0 / 1000 + i / 30) * 1e6), close() {} });
      r.frames = [];
      T = t0 + 990; r.actx.currentTime = T / 1000;
      msg({ pts: T / 1000, t: T / 1000, playing: true, queued: 0.01, dropped: 0, ran_dry: false });
      assert.ok(r.audioClock());
      r.mediaNow();
      T = t0 + 1000; r.actx.currentTime = T / 1000;
      msg({ pts: T / 1000, t: T / 1000, playing: false, queued: 0, dropped: 0, ran_dry: true });
      for (; T <= t0 + 1100; T += 16) r.steer(); // animation frames while nothing arrives
    };
    underrun(0);
    assert.equal(r.counters.stalls, 1, 'the audio ran dry, then the frames: one stall');
    r.setSuspended(true); // a hidden page (pause sent), or eos
    underrun(5000);
    assert.equal(r.counters.stalls, 1, 'suspended: not a stall');
    r.setSuspended(false);
    underrun(10000);
    assert.equal(r.counters.stalls, 2);
    // a new init segment forgets the last publisher's fragment lengths
    r.fragDurations.set(2, [0.683]);
    r.closeAudio = () => {}; r.configureAudio = () => {}; r.configureVideo = () => {}; r.closeVideo = () => {};
    r.setInit(init('mp4mux-av.mp4'), { codecs: 'avc1.64001e,mp4a.40.2' });
    assert.equal(r.fragmentSpan(), 0, `after setInit: ${r.fragmentSpan()}`);
    r.destroy();
  } finally {
    if (saved.performance) Object.defineProperty(g, 'performance', saved.performance);
    g.requestAnimationFrame = saved.raf;
    g.cancelAnimationFrame = saved.caf;
    g.AudioWorkletNode = saved.AWN;
    g.AudioContext = saved.AC;
    URL.createObjectURL = saved.cou;
    URL.revokeObjectURL = saved.rou;
  }
});
