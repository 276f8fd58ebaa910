/**
 * The WebCodecs renderer: decodes the same fMP4 messages as the MSE path with `VideoDecoder` /
 * `AudioDecoder` (WebCodecs, W3C), draws `VideoFrame`s to a canvas at their presentation time and
 * plays `AudioData` through an `AudioWorklet`. The audio output is the clock when there is audio
 * that plays; otherwise (no audio track, audio suspended by the autoplay policy, audio gap) a
 * `performance.now()` clock is.
 *
 * Latency: a frame is shown at the first animation frame at which it is due (the newest due frame
 * wins; older undrawn ones are closed and counted as dropped). `renderDelay` is the margin kept
 * between a frame's decode and its due time: the clock is moved forward when every frame of the
 * last half second came earlier than that, and stopped (a stall) when it runs out of frames. Each
 * stall adds a frame duration to the margin (up to `maxLag` / 4; long fragments below) and every
 * 2 s without one take 10 ms off, down to `renderDelay`: jitter the network shows is absorbed.
 * The audio output keeps the same margin queued, and its running dry is a stall too (one stall
 * per underrun, however many of audio and video ran out; none while the player has paused the
 * stream or after its end: {@link WebCodecsRenderer#setSuspended}).
 *
 * Long fragments: media comes in whole fragments (mp4mux fragment-duration=700: video moofs of
 * 0.37–0.43 s, AAC moofs of 0.683 s), so just before one arrives the newest decoded media is a
 * fragment's length ahead of the previous arrival. The windows and bounds scale with the longest
 * track's fragment (`fragmentSpan`, the longest of the last 8): the headroom window (and the
 * audio output's trimming window) spans two fragments, at least 0.5 s; the queue of decoded
 * frames holds a fragment's (`frameQueueLimit`); the clock jumps only when more than `maxLag` and two
 * fragments + the margin behind; a stall raises the margin by max(a frame, an eighth of a
 * fragment), up to max(`maxLag` / 4, a fragment).
 * Before (fixed 0.5 s windows and bounds), a 700 ms stream stalled at every fragment (51–56 times
 * in 30 s, issue 14).
 * @module fmp4-player/webcodecs
 */

import { parseSampleTracks, parseSamples, parsePrft } from './samples.js';
import { prftFor } from './bmff.js';
import { errText } from './util.js';

/** @typedef {import('./samples.js').SampleTrack} SampleTrack */

/** ms over which the smallest margin between a frame's decode and its due time is taken */
const HEADROOM_WINDOW_MS = 500;

const VIDEO_CODEC = /^(avc1|avc3|hvc1|hev1|vp08|vp09|vp8|vp9|av01)/;

/**
 * Splits the `codecs` of a `stream` message into the video and the audio codec.
 * @param {{codecs?: string, mime?: string}} stream
 * @returns {{ video: string|null, audio: string|null }} RFC 6381 codec strings (`opus`/`flac` in
 *   lower case, as WebCodecs' codec registry spells them)
 */
export function streamCodecs(stream) {
  const list = (stream.codecs ?? (/codecs="?([^"]*)"?/.exec(stream.mime ?? '')?.[1] ?? ''))
    .split(',').map((c) => c.trim()).filter(Boolean);
  let video = null;
  let audio = null;
  for (const c of list) {
    if (VIDEO_CODEC.test(c)) video ??= c;
    else audio ??= /^(opus|flac)$/i.test(c) ? c.toLowerCase() : /^mp4a\.(69|6b)$/i.test(c) ? 'mp3' : c;
  }
  return { video, audio };
}

/**
 * Whether this browser can decode a stream with WebCodecs (`VideoDecoder.isConfigSupported` /
 * `AudioDecoder.isConfigSupported` on its codec strings; audio checked at 48 kHz stereo, the real
 * rate and channels are only known from the init segment).
 * @param {{codecs?: string, mime?: string, has_video?: boolean, has_audio?: boolean}} stream
 * @returns {Promise<{ ok: boolean, reason?: string }>}
 */
export async function webCodecsSupport(stream) {
  const g = /** @type {any} */ (globalThis);
  if (typeof g.VideoDecoder !== 'function' || typeof g.AudioDecoder !== 'function') {
    return { ok: false, reason: 'This browser has no WebCodecs (VideoDecoder/AudioDecoder).' };
  }
  const { video, audio } = streamCodecs(stream);
  if (!video && !audio) return { ok: false, reason: `no codec in the stream message (${stream.mime})` };
  try {
    if (video && !(await g.VideoDecoder.isConfigSupported({ codec: video })).supported) {
      return { ok: false, reason: `WebCodecs cannot decode ${video} here.` };
    }
    if (audio) {
      if (typeof g.AudioWorkletNode !== 'function') return { ok: false, reason: 'This browser has no AudioWorklet.' };
      if (!(await g.AudioDecoder.isConfigSupported({ codec: audio, sampleRate: 48000, numberOfChannels: 2 })).supported) {
        return { ok: false, reason: `WebCodecs cannot decode ${audio} here.` };
      }
    }
  } catch (e) {
    return { ok: false, reason: `WebCodecs rejected the codec: ${errText(e)}` };
  }
  return { ok: true };
}

/**
 * The AudioWorklet processor: plays planar float PCM chunks back to back, reports the media time
 * of what it plays. Messages in: `{pts, channels: Float32Array[]}` (a chunk), `{flush: true}`,
 * `{prebuffer, maxQueue, window}` (seconds). Out, every ~20 ms: `{pts, t, playing, queued,
 * ran_dry}` (`pts`: media time of the next sample played at AudioContext time `t`; `queued`:
 * seconds queued; `ran_dry`: it was playing and its queue ran out in this quantum).
 */
const WORKLET_SOURCE = `
class Fmp4WsAudio extends AudioWorkletProcessor {
  constructor() {
    super();
    this.q = []; this.off = 0; this.queued = 0; this.playing = false; this.pos = null;
    this.prebuffer = 0.05; this.maxQueue = 0.5; this.n = 0; this.dropped = 0;
    this.minQueued = Infinity; this.window = 0.5; this.windowLeft = sampleRate / 2;
    this.port.onmessage = (e) => {
      const m = e.data;
      if (m.flush) { this.q = []; this.off = 0; this.queued = 0; this.playing = false; this.pos = null; return; }
      if (m.prebuffer !== undefined) {
        this.prebuffer = m.prebuffer; this.maxQueue = m.maxQueue;
        // a longer window lengthens the current one (the first one, before the fragments were
        // known, is not cut short); a shorter one applies from the next
        const w = m.window ?? 0.5;
        if (w > this.window) this.windowLeft += (w - this.window) * sampleRate;
        this.window = w;
        return;
      }
      const len = m.channels[0].length;
      this.q.push(m); this.queued += len;
      // too much queued (the clock fell behind): drop the oldest audio, down to the prebuffer
      const max = this.maxQueue * sampleRate, keep = this.prebuffer * sampleRate;
      if (this.queued > max) this.drop(this.queued - keep);
    };
  }
  // drops up to n samples from the head of the queue
  drop(n) {
    while (n > 0 && this.q.length) {
      const left = this.q[0].channels[0].length - this.off;
      const k = Math.min(n, left);
      this.off += k; this.queued -= k; this.dropped += k; n -= k;
      if (this.off >= this.q[0].channels[0].length) { this.q.shift(); this.off = 0; }
    }
  }
  process(inputs, outputs) {
    const out = outputs[0];
    const frames = out[0].length;
    if (!this.playing && this.queued >= this.prebuffer * sampleRate) this.playing = true;
    let w = 0;
    let dry = false;
    if (this.playing) {
      while (w < frames && this.q.length) {
        const c = this.q[0];
        const len = c.channels[0].length;
        const n = Math.min(frames - w, len - this.off);
        for (let ch = 0; ch < out.length; ch++) {
          const src = c.channels[Math.min(ch, c.channels.length - 1)];
          out[ch].set(src.subarray(this.off, this.off + n), w);
        }
        w += n; this.off += n; this.queued -= n;
        this.pos = c.pts + this.off / sampleRate;
        if (this.off >= len) { this.q.shift(); this.off = 0; }
      }
      if (w < frames) { this.playing = false; dry = true; } // ran dry: prebuffer again
      // latency: when the queue never went below prebuffer + 10 ms in the last window (two
      // fragments, at least half a second), drop the excess (the audio plays that much closer
      // to the live edge)
      this.minQueued = Math.min(this.minQueued, this.queued);
      this.windowLeft -= frames;
      if (this.windowLeft <= 0) {
        const excess = this.minQueued - this.prebuffer * sampleRate;
        if (this.playing && excess > 0.01 * sampleRate) this.drop(Math.floor(excess));
        this.minQueued = Infinity; this.windowLeft = sampleRate * this.window;
      }
    }
    for (let ch = 0; ch < out.length; ch++) out[ch].fill(0, w);
    if (++this.n % 8 === 0 || w < frames) {
      const next = this.q.length ? this.q[0].pts + this.off / sampleRate : this.pos;
      this.port.postMessage({ pts: next, t: currentTime + frames / sampleRate, playing: this.playing && w === frames,
        queued: this.queued / sampleRate, dropped: this.dropped, ran_dry: dry });
    }
    return true;
  }
}
registerProcessor('fmp4ws-audio', Fmp4WsAudio);
`;

/**
 * @typedef {object} WebCodecsOptions
 * @property {number} renderDelay margin (s) kept between a frame's decode and its due time, and
 *   audio queued before playback starts; default 0.05
 * @property {number} maxLag seconds behind the newest decoded media after which the clock jumps
 *   forward (older frames dropped, queued audio cut); default 0.5
 * @property {number} maxFrameQueue decoded frames kept waiting for their time (more when a fragment
 *   holds more: {@link WebCodecsRenderer#frameQueueLimit}, at most 4 ×); the oldest is closed
 *   (dropped) beyond it; default 16
 * @property {number} maxDecodeQueue chunks waiting in a decoder; beyond it the decoder is reset and
 *   waits for the next keyframe; default 60
 * @property {boolean} muted audio output gain 0 (the audio still drives the clock)
 */

/**
 * @typedef {object} WebCodecsHooks
 * @property {(message: string, err?: unknown) => void} onFatal a decoder failed: the player
 *   reconnects (fresh init segment and keyframe)
 * @property {() => void} onFirstFrame the first frame was drawn
 * @property {(...a: unknown[]) => void} log
 */

/** Decodes and renders one connection's fMP4 messages (see module doc). */
export class WebCodecsRenderer {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {WebCodecsOptions} options
   * @param {WebCodecsHooks} hooks
   */
  constructor(canvas, options, hooks) {
    this.canvas = canvas;
    this.options = options;
    this.hooks = hooks;
    /** @type {CanvasRenderingContext2D|null} */
    this.ctx2d = canvas.getContext('2d');
    /** @type {Map<number, SampleTrack>} */
    this.tracks = new Map();
    /** @type {{video: string|null, audio: string|null}} */
    this.codecs = { video: null, audio: null };
    /** @type {any} */ this.vdec = null;
    /** @type {any} */ this.adec = null;
    this.vConfigKey = '';
    this.aConfigKey = '';
    this.waitKey = true;
    /** @type {any[]} decoded frames waiting for their time, in presentation order */
    this.frames = [];
    /** @type {AudioContext|null} */ this.actx = null;
    /** @type {AudioWorkletNode|null} */ this.node = null;
    /** @type {GainNode|null} */ this.gain = null;
    this.workletReady = false;
    /** @type {Array<{pts: number, channels: Float32Array[]}>} audio decoded before the worklet is ready */
    this.audioBacklog = [];
    /** latest worklet report: media time `pts` at AudioContext time `t` */
    this.audioPos = /** @type {{pts: number|null, t: number, playing: boolean, queued: number, dropped: number, at: number, ran_dry?: boolean}} */ ({ pts: null, t: 0, playing: false, queued: 0, dropped: 0, at: 0 });
    /** wall clock: media time `m` at performance.now() `w`; stopped while `running` is false */
    this.clock = { m: 0, w: 0, running: false, started: false };
    /** min over the current window of (due time − decode time) of the frames, s */
    this.headroom = { min: Infinity, since: 0 };
    /** s added to renderDelay by stalls (see the module doc) */
    this.extraDelay = 0;
    /** a stall was counted and playback has not run again since (one stall per underrun) */
    this.inStall = false;
    /** the stream is paused by the player or ended: running out is not a stall */
    this.suspended = false;
    /** @type {Map<number, number[]>} track_ID → its last fragments' durations (s) */
    this.fragDurations = new Map();
    /** the audio output's settings last sent (see {@link WebCodecsRenderer#syncAudioOutput}) */
    this.audioSettings = '';
    this.calmSince = 0;
    this.newestPts = null;
    this.lastSamplePts = null;
    this.frameDuration = 1 / 30;
    this.counters = { drawn: 0, dropped: 0, decoded: 0, late: 0, resets: 0, stalls: 0, clockJumps: 0, keyWaits: 0 };
    this.width = 0;
    this.height = 0;
    this.firstDrawn = false;
    /** @type {Array<{dts: number, wall: number}>} prft: wall clock (Unix ms) of a decode time of this timeline */
    this.prft = [];
    this.wallClockLatency = /** @type {number|null} */ (null);
    this.wallClockSource = /** @type {'encoder'|'server'|null} */ (null);
    /** presentation time of the last drawn frame − the clock when it was drawn, s */
    this.drawOffset = /** @type {number|null} */ (null);
    this.raf = 0;
    this.closed = false;
    this._draw = () => this.draw();
    this._unlock = () => { this.actx?.resume().catch(() => {}); };
    globalThis.document?.addEventListener('pointerdown', this._unlock);
    globalThis.document?.addEventListener('keydown', this._unlock);
    this.raf = requestAnimationFrame(this._draw);
  }

  // ------------------------------------------------------------------ input

  /**
   * A new init segment (first one, or publisher restart): new decoders if the configuration
   * changed; the timeline goes on (the server rebases it), so the clock is kept.
   * @param {Uint8Array} init ftyp + moov
   * @param {{codecs?: string, mime?: string}} stream the `stream` message it came with
   */
  setInit(init, stream) {
    this.tracks = parseSampleTracks(init);
    this.fragDurations.clear(); // a new publisher may cut its fragments otherwise
    this.suspended = false;
    this.codecs = streamCodecs(stream);
    const v = this.videoTrack();
    const a = this.audioTrack();
    if (v) this.configureVideo(v);
    else this.closeVideo();
    if (a) this.configureAudio(a);
    else this.closeAudio();
    this.waitKey = true;
  }

  /** @returns {SampleTrack|undefined} */
  videoTrack() {
    for (const t of this.tracks.values()) if (t.kind === 'video') return t;
    return undefined;
  }

  /** @returns {SampleTrack|undefined} */
  audioTrack() {
    for (const t of this.tracks.values()) if (t.kind === 'audio') return t;
    return undefined;
  }

  /** @param {SampleTrack} t */
  configureVideo(t) {
    const codec = this.codecs.video ?? avcCodecString(t);
    if (!codec) {
      this.hooks.onFatal(`no codec string for the ${t.format} video track`);
      return;
    }
    const config = {
      codec,
      codedWidth: t.width || undefined,
      codedHeight: t.height || undefined,
      optimizeForLatency: true,
      ...(t.description ? { description: t.description } : {}),
    };
    const key = `${codec}|${t.width}x${t.height}|${t.description ? [...t.description].join(',') : ''}`;
    if (this.vdec && this.vdec.state === 'configured' && key === this.vConfigKey) return;
    this.closeVideo();
    this.vConfigKey = key;
    const VD = /** @type {any} */ (globalThis).VideoDecoder;
    this.vdec = new VD({
      output: (/** @type {any} */ frame) => this.onFrame(frame),
      error: (/** @type {any} */ e) => { if (!this.closed) this.hooks.onFatal(`VideoDecoder (${codec}): ${errText(e)}`, e); },
    });
    try {
      this.vdec.configure(config);
    } catch (e) {
      this.hooks.onFatal(`VideoDecoder.configure(${codec}): ${errText(e)}`, e);
    }
    this.hooks.log(`VideoDecoder ${codec} ${t.width}x${t.height}`);
  }

  /** @param {SampleTrack} t */
  configureAudio(t) {
    const codec = this.codecs.audio ?? { mp4a: 'mp4a.40.2', Opus: 'opus', fLaC: 'flac' }[t.format];
    if (!codec || !t.sampleRate || !t.channels) {
      this.hooks.log(`audio track ${t.format}: no decoder configuration, playing video only`);
      this.closeAudio();
      return;
    }
    const config = { codec, sampleRate: t.sampleRate, numberOfChannels: t.channels, ...(t.description ? { description: t.description } : {}) };
    const key = `${codec}|${t.sampleRate}|${t.channels}|${t.description ? [...t.description].join(',') : ''}`;
    if (this.adec && this.adec.state === 'configured' && key === this.aConfigKey) return;
    this.closeAudio(false);
    this.aConfigKey = key;
    const AD = /** @type {any} */ (globalThis).AudioDecoder;
    this.adec = new AD({
      output: (/** @type {any} */ data) => this.onAudio(data),
      error: (/** @type {any} */ e) => { if (!this.closed) this.hooks.onFatal(`AudioDecoder (${codec}): ${errText(e)}`, e); },
    });
    try {
      this.adec.configure(config);
    } catch (e) {
      this.hooks.onFatal(`AudioDecoder.configure(${codec}): ${errText(e)}`, e);
      return;
    }
    if (!this.actx || this.actx.sampleRate !== t.sampleRate) this.openAudioOutput(t.sampleRate);
    this.hooks.log(`AudioDecoder ${codec} ${t.sampleRate} Hz ${t.channels} ch`);
  }

  /** @param {number} sampleRate */
  openAudioOutput(sampleRate) {
    this.closeAudioOutput();
    const AC = /** @type {any} */ (globalThis).AudioContext ?? /** @type {any} */ (globalThis).webkitAudioContext;
    if (!AC) return;
    let actx;
    try {
      actx = new AC({ sampleRate, latencyHint: 'interactive' });
    } catch {
      actx = new AC({ latencyHint: 'interactive' }); // a rate it cannot open: its own (PCM is then played at the wrong speed; logged)
      this.hooks.log(`AudioContext cannot run at ${sampleRate} Hz; using ${actx.sampleRate} Hz`);
    }
    this.actx = actx;
    const url = URL.createObjectURL(new Blob([WORKLET_SOURCE], { type: 'text/javascript' }));
    actx.audioWorklet.addModule(url).then(() => {
      URL.revokeObjectURL(url);
      if (this.actx !== actx || this.closed) return;
      const node = new AudioWorkletNode(actx, 'fmp4ws-audio', { numberOfInputs: 0, outputChannelCount: [Math.max(1, Math.min(2, this.audioTrack()?.channels ?? 2))] });
      node.port.onmessage = (e) => {
        if (this.node !== node) return;
        if (this.audioPos.playing && !e.data.playing && e.data.ran_dry) this.stalled();
        else if (e.data.playing) this.inStall = false;
        this.audioPos = { ...e.data, at: performance.now() };
      };
      this.audioSettings = '';
      const gain = actx.createGain();
      gain.gain.value = this.options.muted ? 0 : 1;
      node.connect(gain).connect(actx.destination);
      this.node = node;
      this.gain = gain;
      this.workletReady = true;
      this.syncAudioOutput();
      for (const c of this.audioBacklog) this.sendAudio(c);
      this.audioBacklog = [];
    }, (e) => this.hooks.log('AudioWorklet module failed; playing video only:', errText(e)));
    if (actx.state !== 'running') actx.resume().catch(() => {});
  }

  /**
   * The player paused the stream (`pause` sent: a hidden page) or it ended (`eos`): media running
   * out is then expected, not a stall. A new init segment clears it.
   * @param {boolean} suspended
   */
  setSuspended(suspended) {
    this.suspended = suspended;
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    this.options.muted = muted;
    if (this.gain) this.gain.gain.value = muted ? 0 : 1;
  }

  /** The server skipped fragments (`skip`): the next one is a keyframe fragment. */
  onSkip() {
    this.waitKey = true;
  }

  /**
   * A media segment.
   * @param {Uint8Array} data `[styp/prft/emsg]` + moof + mdat
   */
  push(data) {
    const samples = parseSamples(data, this.tracks);
    if (!samples.length) return;
    this.noteFragment(samples);
    const p = parsePrft(data, this.tracks);
    if (p) {
      const ref = samples.find((s) => s.trackId === p.trackId);
      if (ref) {
        this.prft.push({ dts: ref.dts, wall: p.wallClock, source: p.source });
        if (this.prft.length > 64) this.prft.shift();
      }
    }
    const v = this.videoTrack();
    const a = this.audioTrack();
    const first = samples[0].pts;
    if (this.lastSamplePts !== null && (first < this.lastSamplePts - 1 || first > this.lastSamplePts + 5)) {
      this.hooks.log(`timeline jump ${this.lastSamplePts.toFixed(3)} -> ${first.toFixed(3)}: clock reset`);
      this.resetClock();
      this.fragDurations.clear();
      this.waitKey = true;
    }
    for (const s of samples) {
      this.lastSamplePts = Math.max(this.lastSamplePts ?? -Infinity, s.pts);
      if (v && s.trackId === v.id && this.vdec && this.vdec.state === 'configured') {
        if (this.waitKey && !s.keyframe) {
          this.counters.keyWaits++;
          continue;
        }
        if (this.vdec.decodeQueueSize > this.options.maxDecodeQueue) {
          this.hooks.log(`video decode queue ${this.vdec.decodeQueueSize} > ${this.options.maxDecodeQueue}: reset, waiting for a keyframe`);
          this.resetDecoder('video');
          continue;
        }
        if (s.duration > 0) this.frameDuration = this.frameDuration * 0.9 + s.duration * 0.1;
        this.waitKey = false;
        const EVC = /** @type {any} */ (globalThis).EncodedVideoChunk;
        this.vdec.decode(new EVC({ type: s.keyframe ? 'key' : 'delta', timestamp: Math.round(s.pts * 1e6), duration: Math.round(s.duration * 1e6), data: s.data }));
      } else if (a && s.trackId === a.id && this.adec && this.adec.state === 'configured') {
        if (this.adec.decodeQueueSize > this.options.maxDecodeQueue) {
          this.resetDecoder('audio');
          continue;
        }
        const EAC = /** @type {any} */ (globalThis).EncodedAudioChunk;
        this.adec.decode(new EAC({ type: 'key', timestamp: Math.round(s.pts * 1e6), duration: Math.round(s.duration * 1e6), data: s.data }));
      }
    }
  }

  /** @param {'video'|'audio'} which */
  resetDecoder(which) {
    this.counters.resets++;
    const t = which === 'video' ? this.videoTrack() : this.audioTrack();
    if (which === 'video') {
      this.closeVideo();
      if (t) this.configureVideo(t);
      this.waitKey = true;
    } else {
      this.closeAudio(false);
      if (t) this.configureAudio(t);
    }
  }

  // ------------------------------------------------------------------ decoded media

  /** @param {any} frame VideoFrame */
  onFrame(frame) {
    if (this.closed) {
      frame.close();
      return;
    }
    this.counters.decoded++;
    const pts = frame.timestamp / 1e6;
    const now = this.mediaNow();
    if (now === null) {
      // first frame of the clock: due `renderDelay` from now
      this.startClock(pts - this.margin());
    } else {
      const headroom = pts - now;
      if (headroom < this.headroom.min) this.headroom.min = headroom;
    }
    this.newestPts = Math.max(this.newestPts ?? -Infinity, pts);
    // in presentation order (the decoder outputs it so; kept sorted in case)
    let i = this.frames.length;
    while (i > 0 && this.frames[i - 1].timestamp > frame.timestamp) i--;
    this.frames.splice(i, 0, frame);
    while (this.frames.length > this.frameQueueLimit()) {
      this.frames.shift().close();
      this.counters.dropped++;
    }
  }

  /** @param {any} data AudioData */
  onAudio(data) {
    if (this.closed) {
      data.close();
      return;
    }
    const n = data.numberOfFrames;
    const channels = [];
    try {
      for (let ch = 0; ch < Math.min(2, data.numberOfChannels); ch++) {
        const buf = new Float32Array(n);
        data.copyTo(buf, { planeIndex: ch, format: 'f32-planar' });
        channels.push(buf);
      }
    } catch (e) {
      this.hooks.log('AudioData.copyTo failed:', errText(e));
    }
    const pts = data.timestamp / 1e6;
    data.close();
    if (!channels.length) return;
    const chunk = { pts, channels };
    // a suspended AudioContext (autoplay policy until a click, or no audio output device) plays
    // nothing: its chunks are dropped, not queued (the wall clock runs meanwhile)
    if (this.actx && this.actx.state !== 'running' && this.workletReady) return;
    if (this.workletReady) this.sendAudio(chunk);
    else {
      this.audioBacklog.push(chunk);
      if (this.audioBacklog.length > 256) this.audioBacklog.shift();
    }
  }

  /** @param {{pts: number, channels: Float32Array[]}} c */
  sendAudio(c) {
    this.node?.port.postMessage(c, c.channels.map((x) => x.buffer));
  }

  // ------------------------------------------------------------------ clock

  /** @returns {boolean} whether the audio output drives the clock now */
  audioClock() {
    const a = this.audioPos;
    return !!this.actx && this.actx.state === 'running' && a.playing && a.pts !== null && performance.now() - a.at < 250;
  }

  /**
   * The media time due now (s), or null before the first frame / audio.
   * @returns {number|null}
   */
  mediaNow() {
    if (this.audioClock() && this.actx) {
      const a = this.audioPos;
      const out = /** @type {any} */ (this.actx).outputLatency || this.actx.baseLatency || 0;
      const m = /** @type {number} */ (a.pts) + Math.min(0.1, Math.max(-0.1, this.actx.currentTime - a.t)) - out;
      // keep the wall clock in step, for when the audio stops
      this.clock = { m, w: performance.now(), running: true, started: true };
      return m;
    }
    const c = this.clock;
    if (!c.started) return null;
    return c.running ? c.m + (performance.now() - c.w) / 1000 : c.m;
  }

  /** @returns {number} the margin (s) kept now: renderDelay + what stalls added */
  margin() {
    return this.options.renderDelay + this.extraDelay;
  }

  /**
   * Keeps each track's fragment durations (the sum of its samples' in a segment; the last 8).
   * @param {Array<{trackId: number, duration: number}>} samples one segment's
   */
  noteFragment(samples) {
    /** @type {Map<number, number>} */
    const sums = new Map();
    for (const x of samples) sums.set(x.trackId, (sums.get(x.trackId) ?? 0) + Math.max(0, x.duration));
    for (const [id, d] of sums) {
      if (!(d > 0 && d < 30)) continue;
      const list = this.fragDurations.get(id) ?? [];
      list.push(d);
      if (list.length > 8) list.shift();
      this.fragDurations.set(id, list);
    }
    this.syncAudioOutput();
  }

  /**
   * @returns {number} s: the longest of each track's last 8 fragments, 0 before any (the longest,
   *   not a median: the longest wait between two fragments is where the media runs out)
   */
  fragmentSpan() {
    let span = 0;
    for (const list of this.fragDurations.values()) span = Math.max(span, ...list);
    return span;
  }

  /**
   * @returns {number} decoded frames kept waiting: `maxFrameQueue`, or a whole fragment + the
   *   margin + 2 frames when that is more (a fragment's frames are decoded as it arrives and wait
   *   for their turn: 21 frames for 0.7 s at 30 fps), at most 4 × `maxFrameQueue`
   */
  frameQueueLimit() {
    const q = this.options.maxFrameQueue;
    const need = Math.ceil((this.fragmentSpan() + this.margin()) / this.frameDuration) + 2;
    return Math.min(4 * q, Math.max(q, need));
  }

  /** @returns {number} s behind the newest decoded media beyond which the clock jumps */
  lagLimit() {
    return Math.max(this.options.maxLag, 2 * this.fragmentSpan() + this.margin());
  }

  /** @returns {number} ms over which the least headroom (and the audio's least queue) is taken */
  windowMs() {
    return Math.max(HEADROOM_WINDOW_MS, 2000 * this.fragmentSpan());
  }

  /**
   * A stall (frames or audio ran out): the margin grows by a frame (an eighth of a fragment when
   * that is more: 85 ms for 0.683 s AAC moofs), up to max(maxLag / 4, a fragment).
   */
  stalled() {
    if (this.inStall || this.suspended) return;
    this.inStall = true;
    this.counters.stalls++;
    const span = this.fragmentSpan();
    this.extraDelay = Math.min(Math.max(this.options.maxLag / 4, span), this.extraDelay + Math.max(this.frameDuration, span / 8));
    this.calmSince = performance.now();
    this.syncAudioOutput();
  }

  /**
   * Tells the audio output its prebuffer (the margin), its largest queue (margin + lag limit) and
   * its trimming window, when they changed by 10 ms or more.
   */
  syncAudioOutput() {
    if (!this.node) return;
    const r = (/** @type {number} */ x) => Math.round(x * 100) / 100;
    const m = { prebuffer: r(this.margin()), maxQueue: r(this.margin() + this.lagLimit()), window: r(this.windowMs() / 1000) };
    const key = JSON.stringify(m);
    if (key === this.audioSettings) return;
    this.audioSettings = key;
    this.node.port.postMessage(m);
  }

  /** @param {number} m media time due now */
  startClock(m) {
    this.inStall = false;
    this.clock = { m, w: performance.now(), running: true, started: true };
    this.headroom = { min: Infinity, since: performance.now() };
  }

  resetClock() {
    for (const f of this.frames) f.close();
    this.counters.dropped += this.frames.length;
    this.frames = [];
    this.clock = { m: 0, w: 0, running: false, started: false };
    this.newestPts = null;
    this.lastSamplePts = null;
    this.prft = [];
    this.node?.port.postMessage({ flush: true });
    this.audioPos = { pts: null, t: 0, playing: false, queued: 0, dropped: this.audioPos.dropped, at: 0 };
  }

  /** Wall-clock clock control, once per drawn animation frame (the audio clock runs itself). */
  steer() {
    const now = performance.now();
    if (this.extraDelay > 0 && now - this.calmSince >= 2000) {
      this.extraDelay = Math.max(0, this.extraDelay - 0.01);
      this.calmSince = now;
      this.syncAudioOutput();
    }
    if (this.audioClock()) return;
    const c = this.clock;
    if (!c.started) return;
    const m = this.mediaNow() ?? 0;
    if (c.running && !this.frames.length && this.newestPts !== null && m > this.newestPts + 2 * this.frameDuration) {
      // ran out of frames: stop the clock at the newest; the next frame restarts it renderDelay early
      this.clock = { m: this.newestPts + this.frameDuration, w: now, running: false, started: true };
      this.stalled();
      return;
    }
    if (!c.running && this.frames.length) {
      // frames again after a stall: the newest is due in renderDelay (older ones of a clump are
      // dropped as late: latency first)
      this.startClock(/** @type {number} */ (this.newestPts) - this.margin());
      return;
    }
    if (this.newestPts !== null && this.newestPts - m > this.lagLimit()) {
      // far behind (burst after a resume, a clump of late fragments): jump
      this.startClock(this.newestPts - this.margin());
      this.counters.clockJumps++;
      return;
    }
    if (now - this.headroom.since >= this.windowMs()) {
      // every frame of the last window was decoded more than renderDelay before its time: show
      // them that much earlier
      const excess = this.headroom.min - this.margin();
      if (Number.isFinite(excess) && excess > 0.005) this.clock = { m: m + excess, w: now, running: true, started: true };
      this.headroom = { min: Infinity, since: now };
    }
  }

  // ------------------------------------------------------------------ drawing

  draw() {
    if (this.closed) return;
    this.raf = requestAnimationFrame(this._draw);
    this.steer();
    const m = this.mediaNow();
    if (m === null || !this.frames.length) return;
    // the newest due frame (half a frame early is due: it is closer to now than the previous one)
    let k = -1;
    const due = m + this.frameDuration / 2;
    for (let i = 0; i < this.frames.length; i++) if (this.frames[i].timestamp / 1e6 <= due) k = i;
    if (k < 0) return;
    for (let i = 0; i < k; i++) {
      this.frames[i].close();
      this.counters.dropped++;
      this.counters.late++;
    }
    const frame = this.frames[k];
    this.frames.splice(0, k + 1);
    const w = frame.displayWidth;
    const h = frame.displayHeight;
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.width = w;
    this.height = h;
    try {
      this.ctx2d?.drawImage(frame, 0, 0, w, h);
      this.counters.drawn++;
    } finally {
      frame.close();
    }
    this.updateWallClockLatency(frame.timestamp / 1e6);
    // A/V: how far the frame put on screen is from the clock (the audio being heard, when it drives it)
    this.drawOffset = frame.timestamp / 1e6 - m;
    if (!this.firstDrawn) {
      this.firstDrawn = true;
      this.hooks.onFirstFrame();
    }
  }

  /** @param {number} pts of the frame now on screen */
  updateWallClockLatency(pts) {
    const ref = prftFor(this.prft, pts, (p) => p.dts, (p) => p.source);
    if (!ref) return;
    this.wallClockLatency = Math.max(0, (Date.now() - (ref.wall + (pts - ref.dts) * 1000)) / 1000);
    this.wallClockSource = ref.source;
  }

  // ------------------------------------------------------------------ stats / teardown

  /**
   * @returns {{ framesDrawn: number, framesDropped: number, framesDecoded: number, frameQueue: number,
   *   decodeQueue: number, audioQueue: number, buffer: number|null, currentTime: number|null,
   *   bufferedEnd: number|null, clock: 'audio'|'wall', audioOutputLatency: number|null, width: number, height: number,
   *   wallClockLatency: number|null, wallClockSource: 'encoder'|'server'|null, avOffset: number|null, margin: number, stalls: number, decoderResets: number, clockJumps: number }}
   */
  stats() {
    const m = this.mediaNow();
    const end = this.newestPts === null ? null : this.newestPts + this.frameDuration;
    const audioEnd = this.audioPos.pts !== null && this.audioClock() ? this.audioPos.pts + this.audioPos.queued : null;
    const bufferedEnd = end === null ? audioEnd : audioEnd === null ? end : Math.max(end, audioEnd);
    return {
      framesDrawn: this.counters.drawn,
      framesDropped: this.counters.dropped,
      framesDecoded: this.counters.decoded,
      frameQueue: this.frames.length,
      decodeQueue: (this.vdec?.decodeQueueSize ?? 0) + (this.adec?.decodeQueueSize ?? 0),
      audioQueue: this.audioPos.queued,
      buffer: m !== null && bufferedEnd !== null ? Math.max(0, bufferedEnd - m) : null,
      currentTime: m,
      bufferedEnd,
      clock: this.audioClock() ? 'audio' : 'wall',
      audioOutputLatency: this.actx ? (/** @type {any} */ (this.actx).outputLatency || 0) + (this.actx.baseLatency || 0) : null,
      width: this.width,
      height: this.height,
      wallClockLatency: this.wallClockLatency,
      wallClockSource: this.wallClockSource,
      avOffset: this.drawOffset,
      margin: this.margin(),
      stalls: this.counters.stalls,
      decoderResets: this.counters.resets,
      clockJumps: this.counters.clockJumps,
    };
  }

  closeVideo() {
    if (this.vdec && this.vdec.state !== 'closed') this.vdec.close();
    this.vdec = null;
    this.vConfigKey = '';
  }

  /** @param {boolean} [output=true] close the AudioContext too */
  closeAudio(output = true) {
    if (this.adec && this.adec.state !== 'closed') this.adec.close();
    this.adec = null;
    this.aConfigKey = '';
    if (output) this.closeAudioOutput();
  }

  closeAudioOutput() {
    this.node?.disconnect();
    this.node = null;
    this.gain = null;
    this.workletReady = false;
    this.audioBacklog = [];
    if (this.actx) this.actx.close().catch(() => {});
    this.actx = null;
    this.audioPos = { pts: null, t: 0, playing: false, queued: 0, dropped: 0, at: 0 };
  }

  /** Closes decoders, frames and the audio output. The canvas keeps its last picture. */
  destroy() {
    if (this.closed) return;
    this.closed = true;
    cancelAnimationFrame(this.raf);
    globalThis.document?.removeEventListener('pointerdown', this._unlock);
    globalThis.document?.removeEventListener('keydown', this._unlock);
    this.closeVideo();
    this.closeAudio();
    for (const f of this.frames) f.close();
    this.frames = [];
  }
}

/**
 * `avc1.PPCCLL` from an `avcC` (ISO/IEC 14496-15 5.3.3.1: profile, compatibility, level), for a
 * stream message without `codecs`.
 * @param {SampleTrack} t
 * @returns {string|null}
 */
export function avcCodecString(t) {
  if ((t.format !== 'avc1' && t.format !== 'avc3') || !t.description || t.description.length < 4) return null;
  const hex = (/** @type {number} */ b) => b.toString(16).padStart(2, '0');
  return `${t.format}.${hex(t.description[1])}${hex(t.description[2])}${hex(t.description[3])}`;
}
