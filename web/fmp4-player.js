/**
 * fmp4-player: plays the live fragmented MP4 that gst-fmp4ws' `websocketsink` serves over a
 * WebSocket, using Media Source Extensions (or `ManagedMediaSource` on iOS Safari).
 *
 * Wire protocol: docs/protocol.md. Vanilla ES module, no build step.
 *
 * ```html
 * <script type="module" src="fmp4-player.js"></script>
 * <fmp4-player src="ws://host:8080/ws" muted autoplay controls stats></fmp4-player>
 * ```
 * or from JS:
 * ```js
 * import { Fmp4Player } from './fmp4-player.js';
 * const player = new Fmp4Player(document.querySelector('video'), { src: 'ws://host:8080/ws' });
 * player.addEventListener('statechange', (e) => console.log(e.detail.state));
 * player.start();
 * ```
 * @module fmp4-player
 */

/**
 * @typedef {object} Fmp4PlayerOptions
 * @property {string} [src] WebSocket URL (`ws:`/`wss:`; `http(s):` and relative URLs are
 *   resolved against the page and mapped to `ws(s):`).
 * @property {number} [targetLatency=1.5] wanted live latency in seconds (buffered end - currentTime).
 *   The effective target is raised when fragments are long (at least half a fragment + 0.5 s).
 * @property {number} [maxLatency] latency (s) above which the player jumps to the live edge
 *   instead of catching up; default 3 × the effective target (at least target + 2 s).
 * @property {number} [backBuffer=20] seconds of media kept behind the playhead; older data is removed.
 * @property {boolean} [autoplay=true] call `video.play()` once data is there (falls back to muted
 *   playback when the browser refuses unmuted autoplay).
 * @property {boolean} [pauseWhenHidden=true] send `{"type":"pause"}` while the page is hidden and
 *   `{"type":"resume"}` when it is visible again.
 * @property {boolean} [useChangeType=true] on a new init segment keep the SourceBuffer and call
 *   `SourceBuffer.changeType()` when available (otherwise the MediaSource is rebuilt).
 * @property {boolean} [preferJumps] only jump to the live edge, never change `playbackRate`
 *   (default: true on Safari, false elsewhere).
 * @property {number} [maxCatchUpRate=1.1] highest `playbackRate` used to catch up.
 * @property {number} [slowDownRate=0.95] `playbackRate` used when the buffer runs low.
 * @property {number} [reconnectMinDelay=500] first reconnect delay in ms (doubles each attempt).
 * @property {number} [reconnectMaxDelay=5000] cap of the reconnect delay in ms.
 * @property {number} [reportInterval=1000] ms between `report` messages to the server (0: none).
 * @property {boolean} [debug=false] log protocol messages and decisions to the console.
 */

/**
 * @typedef {object} Fmp4PlayerStats
 * @property {string} state current player state (see {@link Fmp4Player#state}).
 * @property {number|null} latency live latency in s: end of the buffered media - currentTime.
 * @property {number} targetLatency effective latency target in s.
 * @property {number} bitrate received media bytes per second over the last 5 s.
 * @property {number} bytesReceived media bytes received since `start()`.
 * @property {string|null} resolution `"WIDTHxHEIGHT"` of the decoded video, or null.
 * @property {number} width decoded video width (0 if none).
 * @property {number} height decoded video height (0 if none).
 * @property {string|null} mime MIME type of the current stream.
 * @property {number} droppedFrames dropped video frames since `start()`.
 * @property {number} decodedFrames decoded (total) video frames since `start()`.
 * @property {number} reconnects reconnection attempts since `start()`.
 * @property {number} stalls playback stalls (`waiting` while playing) since `start()`.
 * @property {number} jumps seeks to the live edge or over gaps done by the player.
 * @property {number} evictions buffer removals forced by `QuotaExceededError`.
 * @property {number} skips `skip` messages received (server-side backlog recovery).
 * @property {number} generation generation of the current stream (0 before the first one).
 * @property {number|null} timeToFirstFrame ms from the latest connection attempt to its first
 *   shown frame (audio only: to the start of playback), or null while none is shown yet.
 * @property {number} playbackRate current `video.playbackRate`.
 * @property {number} currentTime `video.currentTime`.
 * @property {number|null} bufferedEnd end of the buffered range, or null.
 * @property {number} fragmentDuration estimated fragment duration in s.
 */

const LOG_PREFIX = '[fmp4-player]';

/** @type {Array<[RegExp, string]>} */
const CODEC_NAMES = [
  [/^(avc1|avc3)\./, 'H.264/AVC'],
  [/^(hvc1|hev1)\./, 'H.265/HEVC'],
  [/^(vp09|vp9)/, 'VP9'],
  [/^(vp08|vp8)/, 'VP8'],
  [/^av01\./, 'AV1'],
  [/^mp4a\.40\./, 'AAC'],
  [/^mp4a\.(69|6b)/i, 'MP3'],
  [/^mp4a\.a5|^ac-3/i, 'AC-3'],
  [/^mp4a\.a6|^ec-3/i, 'E-AC-3'],
  [/^opus$/i, 'Opus'],
  [/^flac$/i, 'FLAC'],
];

/**
 * Human name of an RFC 6381 codec string.
 * @param {string} codec e.g. `"hvc1.1.6.L93.B0"`
 * @returns {string} e.g. `"H.265/HEVC (hvc1.1.6.L93.B0)"`
 */
export function describeCodec(codec) {
  for (const [re, name] of CODEC_NAMES) if (re.test(codec)) return `${name} (${codec})`;
  return codec;
}

/**
 * The MediaSource class to use: `MediaSource`, else `ManagedMediaSource` (iOS Safari), else null.
 * @returns {{ MS: (typeof MediaSource)|null, managed: boolean }}
 */
export function mediaSourceClass() {
  const w = /** @type {any} */ (globalThis);
  if (w.MediaSource) return { MS: w.MediaSource, managed: false };
  if (w.ManagedMediaSource) return { MS: w.ManagedMediaSource, managed: true };
  return { MS: null, managed: false };
}

/**
 * Checks whether this browser can play a stream described by a `stream` message.
 * @param {{mime: string, codecs?: string}} stream
 * @returns {{ ok: boolean, reason?: string, unsupported?: string[] }}
 */
export function checkSupport(stream) {
  const { MS } = mediaSourceClass();
  if (!MS) return { ok: false, reason: 'This browser has no Media Source Extensions: it cannot play this live stream.' };
  if (MS.isTypeSupported(stream.mime)) return { ok: true };
  const container = (stream.mime.split(';')[0] || 'video/mp4').trim();
  const codecs = (stream.codecs ?? (/codecs="?([^"]*)"?/.exec(stream.mime)?.[1] ?? ''))
    .split(',').map((c) => c.trim()).filter(Boolean);
  const bad = codecs.filter((c) => !MS.isTypeSupported(`${container}; codecs="${c}"`));
  const names = (bad.length ? bad : codecs).map(describeCodec);
  return {
    ok: false,
    unsupported: bad,
    reason: bad.length
      ? `This browser cannot play ${names.join(' + ')}.`
      : `This browser cannot play ${stream.mime}${names.length ? ` (${names.join(' + ')})` : ''}.`,
  };
}

/** @returns {boolean} true on Safari (desktop or iOS), where playbackRate changes are avoided. */
function isSafari() {
  const nav = globalThis.navigator;
  if (!nav) return false;
  return /^((?!chrome|chromium|android|crios|fxios|edg).)*safari/i.test(nav.userAgent) ||
    (nav.vendor === 'Apple Computer, Inc.' && !/chrome|crios/i.test(nav.userAgent));
}

/**
 * Maps a player `src` to a WebSocket URL (relative URLs and http(s) are accepted).
 * @param {string} src
 * @returns {string}
 */
export function resolveWebSocketUrl(src) {
  const base = globalThis.location?.href ?? 'http://localhost/';
  const u = new URL(src, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.href;
}

// ---------------------------------------------------------------------------------------------
// Minimal ISO BMFF reading: track timescales from the init segment and the start (tfdt) of a
// fragment, so the player knows where each fragment lands on the timeline.

/**
 * @param {Uint8Array} u8
 * @param {number} start
 * @param {number} end
 * @returns {Generator<{type: string, body: number, end: number}>}
 */
function* boxes(u8, start, end) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let off = start;
  while (off + 8 <= end) {
    let size = dv.getUint32(off);
    const type = String.fromCharCode(u8[off + 4], u8[off + 5], u8[off + 6], u8[off + 7]);
    let hdr = 8;
    if (size === 1) {
      if (off + 16 > end) return;
      size = Number(dv.getBigUint64(off + 8));
      hdr = 16;
    } else if (size === 0) {
      size = end - off;
    }
    if (size < hdr || off + size > end) return;
    yield { type, body: off + hdr, end: off + size };
    off += size;
  }
}

/**
 * @param {Uint8Array} u8
 * @param {{body: number, end: number}} box
 * @param {string} type
 */
function findChild(u8, box, type) {
  for (const b of boxes(u8, box.body, box.end)) if (b.type === type) return b;
  return null;
}

/**
 * @typedef {object} TrackInfo
 * @property {number} id track_ID
 * @property {number} timescale media timescale (ticks per second)
 * @property {string} handler `vide`, `soun`, …
 * @property {number} defaultFlags `trex` default_sample_flags
 */

/**
 * Tracks of an init segment (timescale, handler and `trex` default sample flags).
 * @param {Uint8Array} u8 ftyp + moov
 * @returns {Map<number, TrackInfo>} track_ID → track (empty if no moov)
 */
export function parseInit(u8) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  /** @type {Map<number, TrackInfo>} */
  const tracks = new Map();
  for (const moov of boxes(u8, 0, u8.length)) {
    if (moov.type !== 'moov') continue;
    for (const box of boxes(u8, moov.body, moov.end)) {
      if (box.type === 'trak') {
        const tkhd = findChild(u8, box, 'tkhd');
        const mdia = findChild(u8, box, 'mdia');
        const mdhd = mdia && findChild(u8, mdia, 'mdhd');
        const hdlr = mdia && findChild(u8, mdia, 'hdlr');
        if (!tkhd || !mdhd) continue;
        const id = dv.getUint32(tkhd.body + (u8[tkhd.body] === 1 ? 20 : 12));
        const timescale = dv.getUint32(mdhd.body + (u8[mdhd.body] === 1 ? 20 : 12));
        const handler = hdlr ? String.fromCharCode(...u8.subarray(hdlr.body + 8, hdlr.body + 12)) : '';
        const prev = tracks.get(id);
        if (timescale > 0) tracks.set(id, { id, timescale, handler, defaultFlags: prev?.defaultFlags ?? 0 });
      } else if (box.type === 'mvex') {
        for (const trex of boxes(u8, box.body, box.end)) {
          if (trex.type !== 'trex' || trex.body + 24 > trex.end) continue;
          const id = dv.getUint32(trex.body + 4);
          const flags = dv.getUint32(trex.body + 20);
          const t = tracks.get(id);
          if (t) t.defaultFlags = flags;
          else tracks.set(id, { id, timescale: 0, handler: '', defaultFlags: flags });
        }
      }
    }
  }
  for (const [id, t] of tracks) if (!t.timescale) tracks.delete(id);
  return tracks;
}

/**
 * Start time and keyframe flag of a media segment: the earliest `tfdt` over its track fragments
 * (seconds) and whether the video track's first sample is a sync sample (`sample_is_non_sync_sample`
 * clear, from `trun` first-sample/per-sample flags, else `tfhd`, else `trex` defaults). In an
 * audio-only stream every segment is a keyframe; in a stream with video, a segment without video
 * (mp4mux and ffmpeg `separate_moof` write one moof per track) is not: removing media up to its
 * start could cut a GOP.
 * @param {Uint8Array} u8 `[styp/prft/emsg]` + moof + mdat
 * @param {Map<number, TrackInfo>} tracks from {@link parseInit}
 * @returns {{ start: number|null, keyframe: boolean }}
 */
export function parseFragment(u8, tracks) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let start = null;
  let keyframe = true;
  for (const t of tracks.values()) if (t.handler === 'vide') keyframe = false; // until a video traf says so
  for (const moof of boxes(u8, 0, u8.length)) {
    if (moof.type !== 'moof') continue;
    for (const traf of boxes(u8, moof.body, moof.end)) {
      if (traf.type !== 'traf') continue;
      const tfhd = findChild(u8, traf, 'tfhd');
      const tfdt = findChild(u8, traf, 'tfdt');
      if (!tfhd) continue;
      const track = tracks.get(dv.getUint32(tfhd.body + 4));
      if (!track) continue;
      if (tfdt) {
        const ticks = u8[tfdt.body] === 1 ? Number(dv.getBigUint64(tfdt.body + 4)) : dv.getUint32(tfdt.body + 4);
        const t = ticks / track.timescale;
        if (start === null || t < start) start = t;
      }
      if (track.handler !== 'vide') continue;
      const tfFlags = dv.getUint32(tfhd.body) & 0xffffff;
      let p = tfhd.body + 8;
      if (tfFlags & 0x1) p += 8;
      if (tfFlags & 0x2) p += 4;
      if (tfFlags & 0x8) p += 4;
      if (tfFlags & 0x10) p += 4;
      let flags = tfFlags & 0x20 ? dv.getUint32(p) : track.defaultFlags;
      const trun = findChild(u8, traf, 'trun');
      if (trun) {
        const trFlags = dv.getUint32(trun.body) & 0xffffff;
        let q = trun.body + 8;
        if (trFlags & 0x1) q += 4;
        if (trFlags & 0x4) flags = dv.getUint32(q);
        else if (trFlags & 0x400) {
          if (trFlags & 0x100) q += 4;
          if (trFlags & 0x200) q += 4;
          flags = dv.getUint32(q);
        }
      }
      keyframe = !(flags & 0x10000);
    }
    break;
  }
  return { start, keyframe };
}

// ---------------------------------------------------------------------------------------------

/**
 * One MediaSource + SourceBuffer attached to the video, with a queue of SourceBuffer operations
 * that advances only on `updateend` (model: hls.js buffer-operation-queue). Data is never dropped
 * nor reordered; `QuotaExceededError` evicts media behind the playhead and retries the same append.
 * @private
 */
class MsePipeline {
  /**
   * @param {HTMLVideoElement} video
   * @param {string} mime
   * @param {{ onFatal: (msg: string, err?: unknown) => void, onEvict: () => void,
   *           onStreaming: (on: boolean) => void, log: (...a: unknown[]) => void }} hooks
   */
  constructor(video, mime, hooks) {
    const { MS, managed } = mediaSourceClass();
    this.video = video;
    this.mime = mime;
    this.hooks = hooks;
    this.managed = managed;
    /** @type {Array<any>} */
    this.ops = [];
    /** @type {SourceBuffer|null} */
    this.sb = null;
    this.destroyed = false;
    this.waitTimer = 0;
    this.autoplayed = false;
    /** @type {number[]} start times (s) of the keyframe fragments appended, ascending */
    this.keyframes = [];
    this.ms = new /** @type {any} */ (MS)();
    if (managed) {
      // ManagedMediaSource only opens with AirPlay disabled (or an AirPlay alternative source).
      video.disableRemotePlayback = true;
      this.ms.addEventListener('startstreaming', () => hooks.onStreaming(true));
      this.ms.addEventListener('endstreaming', () => hooks.onStreaming(false));
    }
    this.url = URL.createObjectURL(this.ms);
    this.ms.addEventListener('sourceopen', () => this.onSourceOpen(), { once: true });
    video.src = this.url;
  }

  onSourceOpen() {
    if (this.destroyed) return;
    URL.revokeObjectURL(this.url);
    /** @type {SourceBuffer} */
    let sb;
    try {
      sb = this.ms.addSourceBuffer(this.mime);
    } catch (e) {
      this.hooks.onFatal(`addSourceBuffer(${this.mime}) failed: ${errText(e)}`, e);
      return;
    }
    this.sb = sb;
    sb.addEventListener('updateend', () => this.onUpdateEnd());
    sb.addEventListener('error', () => {
      if (!this.destroyed) this.hooks.onFatal('SourceBuffer error while appending (bad media data?)');
    });
    this.run();
  }

  /** @param {any} op */
  push(op) {
    this.ops.push(op);
    if (this.ops.length === 1) this.run();
  }

  /** @returns {boolean} no operation pending or running */
  get idle() {
    return this.ops.length === 0 && !!this.sb && !this.sb.updating;
  }

  /** @returns {number} bytes waiting in the queue */
  get queuedBytes() {
    let n = 0;
    for (const op of this.ops) if (op.type === 'append') n += op.data.byteLength;
    return n;
  }

  run() {
    while (!this.destroyed && this.sb && !this.sb.updating && !this.waitTimer && this.ops.length) {
      const op = this.ops[0];
      if (op.type === 'call' || op.type === 'changeType') {
        try {
          if (op.type === 'changeType') this.sb.changeType(op.mime);
          else op.fn();
        } catch (e) {
          this.ops.shift();
          this.hooks.onFatal(`${op.type === 'call' ? op.name : 'changeType'} failed: ${errText(e)}`, e);
          return;
        }
        this.ops.shift();
        continue;
      }
      if (op.type === 'remove') {
        const end = Math.min(op.end, this.maxBufferedEnd());
        if (!(end > op.start)) {
          this.ops.shift();
          op.onDone?.();
          continue;
        }
        try {
          this.sb.remove(op.start, end);
        } catch (e) {
          this.ops.shift();
          this.hooks.onFatal(`SourceBuffer.remove failed: ${errText(e)}`, e);
        }
        return;
      }
      // append
      try {
        this.sb.appendBuffer(op.data);
      } catch (e) {
        if (e && /** @type {any} */ (e).name === 'QuotaExceededError') this.onQuotaExceeded(op);
        else {
          this.ops.shift();
          this.hooks.onFatal(`appendBuffer failed: ${errText(e)}`, e);
        }
      }
      return;
    }
  }

  /** @param {number} t start time (s) of a keyframe fragment */
  addKeyframe(t) {
    const k = this.keyframes;
    if (k.length && t <= k[k.length - 1]) k.length = 0; // timeline went back: start over
    k.push(t);
    if (k.length > 500) k.splice(0, k.length - 500);
  }

  /**
   * Where a removal of old media may end without breaking what remains: the latest keyframe at or
   * before `limit` (MSE removes every frame that depends on a removed frame up to the next random
   * access point, so removing into the current GOP would remove the frames being played).
   * @param {number} limit
   * @returns {number|null} null when no keyframe position is known
   */
  safeRemoveEnd(limit) {
    const k = this.keyframes;
    for (let i = k.length - 1; i >= 0; i--) if (k[i] <= limit) return k[i];
    return null;
  }

  maxBufferedEnd() {
    const b = this.sb?.buffered;
    return b && b.length ? b.end(b.length - 1) : 0;
  }

  /** @param {any} op the append that did not fit: evict old media and retry it */
  onQuotaExceeded(op) {
    const b = this.sb?.buffered;
    const ct = this.video.currentTime;
    const removeEnd = this.safeRemoveEnd(ct) ?? ct - 10;
    op.quotaRetries = (op.quotaRetries ?? 0) + 1;
    if (b && b.length && b.start(0) < removeEnd - 0.1) {
      this.hooks.log(`QuotaExceededError: removing [${b.start(0).toFixed(2)}, ${removeEnd.toFixed(2)}) then retrying`);
      this.hooks.onEvict();
      this.ops.unshift({ type: 'remove', start: 0, end: removeEnd });
      this.run();
      return;
    }
    if (op.quotaRetries > 60) {
      this.hooks.onFatal('QuotaExceededError: nothing left to evict behind the playhead');
      return;
    }
    // Nothing behind the playhead to remove: wait for playback to move on, then retry.
    this.hooks.log('QuotaExceededError with nothing to evict yet; retrying in 500 ms');
    this.waitTimer = setTimeout(() => {
      this.waitTimer = 0;
      this.run();
    }, 500);
  }

  onUpdateEnd() {
    if (this.destroyed) return;
    const op = this.ops.shift();
    try {
      op?.onDone?.();
    } catch (e) {
      this.hooks.onFatal(`post-append step failed: ${errText(e)}`, e);
    }
    this.run();
  }

  /** Detach from the video and release everything. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.waitTimer);
    this.ops.length = 0;
    try {
      if (this.ms.readyState === 'open' && this.sb && !this.sb.updating) this.ms.removeSourceBuffer(this.sb);
    } catch (e) {
      this.hooks.log('removeSourceBuffer during teardown failed:', errText(e));
    }
    URL.revokeObjectURL(this.url);
    if (this.video.src === this.url) {
      this.video.removeAttribute('src');
      this.video.load();
    }
  }
}

/** @param {unknown} e */
function errText(e) {
  if (e && typeof e === 'object' && 'message' in e) return `${/** @type {any} */ (e).name ?? 'Error'}: ${/** @type {any} */ (e).message}`;
  return String(e);
}

/**
 * Player states, as reported by {@link Fmp4Player#state} and `statechange`:
 * - `idle`: not started;
 * - `connecting`: opening the WebSocket (first time);
 * - `loading`: connected, waiting for the stream / the first frame;
 * - `playing`: frames are being shown;
 * - `buffering`: playback stalled waiting for data;
 * - `paused`: the video element is paused (user, or autoplay refused);
 * - `suspended`: the player asked the server to pause (hidden page, ManagedMediaSource `endstreaming`);
 * - `reconnecting`: connection lost, waiting to reconnect (with backoff);
 * - `ended`: the server sent `eos` (the player keeps trying to reconnect);
 * - `unsupported`: the browser cannot play the stream's codecs (see `error` event / message);
 * - `stopped`: `stop()` was called.
 * @typedef {'idle'|'connecting'|'loading'|'playing'|'buffering'|'paused'|'suspended'|'reconnecting'|'ended'|'unsupported'|'stopped'} Fmp4PlayerState
 */

/**
 * Live fMP4-over-WebSocket player for a given `<video>`.
 *
 * Events (all `CustomEvent`s):
 * - `statechange` — `detail: { state, previous }`;
 * - `error` — `detail: { message, fatal, error? }` (fatal: the current MediaSource is rebuilt or
 *   playback cannot go on, e.g. `unsupported`);
 * - `stats` — `detail: Fmp4PlayerStats`, once per second while started;
 * - `stream` — `detail`: the server's `stream` message (new init segment / generation).
 */
export class Fmp4Player extends EventTarget {
  /**
   * @param {HTMLVideoElement} video the element to play into
   * @param {Fmp4PlayerOptions} [options]
   */
  constructor(video, options = {}) {
    super();
    if (!video) throw new TypeError('Fmp4Player needs a <video> element');
    /** @readonly */
    this.video = video;
    /** @type {Required<Omit<Fmp4PlayerOptions, 'maxLatency'|'preferJumps'|'src'>> & Fmp4PlayerOptions} */
    this.options = {
      targetLatency: 1.5,
      backBuffer: 20,
      autoplay: true,
      pauseWhenHidden: true,
      useChangeType: true,
      maxCatchUpRate: 1.1,
      slowDownRate: 0.95,
      reconnectMinDelay: 500,
      reconnectMaxDelay: 5000,
      reportInterval: 1000,
      debug: false,
      ...options,
    };
    this._src = options.src ?? '';
    /** @type {Fmp4PlayerState} */
    this._state = 'idle';
    this._running = false;
    /** @type {WebSocket|null} */
    this._ws = null;
    this._session = 0;
    this._attempts = 0;
    this._reconnectTimer = 0;
    /** @type {MsePipeline|null} */
    this._mse = null;
    /** @type {any} */
    this._stream = null;
    this._generation = 0;
    this._awaitInit = false;
    /** @type {Map<number, TrackInfo>} */
    this._tracks = new Map();
    /** @type {null | {remaining: number, liveEdge: number, startTime: number}} */
    this._liveStart = null;
    this._firstFragment = true;
    this._discontinuityCheck = false;
    this._forceNewPipeline = true;
    this._warnedNoStream = false;
    this._lastFragStart = /** @type {number|null} */ (null);
    this._fragDuration = 0.5;
    this._jumpOnData = false;
    this._pauseReasons = new Set();
    this._pauseSent = false;
    this._eos = false;
    this._connectT0 = 0;
    this._ttff = /** @type {number|null} */ (null);
    this._framesShown = false;
    this._lastCt = -1;
    this._stuckMs = 0;
    this._catchingUp = false;
    this._slowingDown = false;
    /** @type {number[]} */
    this._latencySamples = [];
    /** @type {Array<[number, number]>} */
    this._rx = [];
    this._counters = { bytes: 0, reconnects: 0, stalls: 0, jumps: 0, evictions: 0, skips: 0 };
    this._frameBase = { dropped: 0, decoded: 0 };
    this._timers = /** @type {number[]} */ ([]);
    this._lastReport = 0;
    this._lastStats = 0;
    this._lastTrim = 0;
    this._lastTick = 0;
    this._preferJumps = options.preferJumps ?? isSafari();

    this._onVisibility = () => this._handleVisibility();
    /** @type {Array<[string, EventListener]>} */
    this._videoListeners = [
      ['playing', () => this._onPlaying()],
      ['waiting', () => this._onWaiting()],
      ['pause', () => this._onVideoPause()],
      ['error', () => this._onVideoError()],
    ];
  }

  /** @returns {string} the WebSocket URL */
  get src() {
    return this._src;
  }

  /** Setting `src` restarts the player if it is running. @param {string} v */
  set src(v) {
    this._src = v;
    if (this._running) {
      this.stop();
      this.start();
    }
  }

  /** @returns {number} wanted latency in seconds */
  get targetLatency() {
    return this.options.targetLatency;
  }

  /** @param {number} v seconds (> 0) */
  set targetLatency(v) {
    if (Number.isFinite(v) && v > 0) this.options.targetLatency = v;
  }

  /** @returns {Fmp4PlayerState} */
  get state() {
    return this._state;
  }

  /** @returns {boolean} true between `start()` and `stop()` */
  get running() {
    return this._running;
  }

  /** @returns {any} the latest `stream` message (mime, codecs, width, height, generation…) or null */
  get stream() {
    return this._stream;
  }

  /** @returns {Fmp4PlayerStats} a snapshot of the playback statistics */
  get stats() {
    const v = this.video;
    const q = this._quality();
    const b = v.buffered;
    const bufferedEnd = b.length ? b.end(b.length - 1) : null;
    const now = performance.now();
    const windowStart = now - 5000;
    let bytes = 0;
    for (const [t, n] of this._rx) if (t >= windowStart) bytes += n;
    const span = Math.min(5, Math.max(0.5, (now - (this._connectT0 || now)) / 1000));
    return {
      state: this._state,
      latency: bufferedEnd !== null && this._mse ? round3(Math.max(0, bufferedEnd - v.currentTime)) : null,
      targetLatency: round3(this._effectiveTarget()),
      bitrate: Math.round(bytes / span),
      bytesReceived: this._counters.bytes,
      resolution: v.videoWidth ? `${v.videoWidth}x${v.videoHeight}` : null,
      width: v.videoWidth,
      height: v.videoHeight,
      mime: this._stream?.mime ?? null,
      droppedFrames: this._frameBase.dropped + q.dropped,
      decodedFrames: this._frameBase.decoded + q.decoded,
      reconnects: this._counters.reconnects,
      stalls: this._counters.stalls,
      jumps: this._counters.jumps,
      evictions: this._counters.evictions,
      skips: this._counters.skips,
      generation: this._generation,
      timeToFirstFrame: this._ttff,
      playbackRate: v.playbackRate,
      currentTime: round3(v.currentTime),
      bufferedEnd: bufferedEnd === null ? null : round3(bufferedEnd),
      fragmentDuration: round3(this._fragDuration),
    };
  }

  /** Connects and starts playing. Does nothing if already started. */
  start() {
    if (this._running) return;
    if (!this._src) throw new Error('Fmp4Player: no src');
    this._running = true;
    this._attempts = 0;
    this._eos = false;
    this._counters = { bytes: 0, reconnects: 0, stalls: 0, jumps: 0, evictions: 0, skips: 0 };
    this._frameBase = { dropped: 0, decoded: 0 };
    this._rx = [];
    this.video.playsInline = true;
    for (const [t, f] of this._videoListeners) this.video.addEventListener(t, f);
    document.addEventListener('visibilitychange', this._onVisibility);
    if (this.options.pauseWhenHidden && document.visibilityState === 'hidden') this._pauseReasons.add('hidden');
    this._timers.push(setInterval(() => this._tick(), 250));
    this._setState('connecting');
    this._connect();
  }

  /** Disconnects, detaches the MediaSource and stops all timers. `start()` may be called again. */
  stop() {
    if (!this._running) return;
    this._running = false;
    this._session++;
    clearTimeout(this._reconnectTimer);
    for (const t of this._timers) clearInterval(t);
    this._timers = [];
    for (const [t, f] of this._videoListeners) this.video.removeEventListener(t, f);
    document.removeEventListener('visibilitychange', this._onVisibility);
    if (this._ws) {
      const ws = this._ws;
      this._ws = null;
      try {
        ws.close(1000, 'player stopped');
      } catch (e) {
        this._log('closing the WebSocket failed:', errText(e));
      }
    }
    this._teardownMse();
    this._pauseReasons.clear();
    this._pauseSent = false;
    this.video.playbackRate = 1;
    this._setState('stopped');
  }

  /** Same as `stop()`; kept for symmetry with other players. */
  destroy() {
    this.stop();
  }

  /**
   * Seeks to the live edge (end of the buffered media minus the target latency).
   * @returns {boolean} whether a seek was done
   */
  jumpToLive() {
    return this._seekLive(null, 'api');
  }

  // ------------------------------------------------------------------ connection

  _connect() {
    const session = ++this._session;
    let url;
    try {
      url = resolveWebSocketUrl(this._src);
    } catch (e) {
      this._error(`invalid src ${this._src}: ${errText(e)}`, true, e);
      return;
    }
    this._connectT0 = performance.now();
    this._ttff = null;
    this._framesShown = false;
    this._eos = false;
    this._pauseSent = false;
    this._pauseReasons.delete('unsupported');
    this._forceNewPipeline = true;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this._error(`cannot open ${url}: ${errText(e)}`, false, e);
      this._scheduleReconnect(session);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    ws.onopen = () => {
      if (session !== this._session) return;
      this._log('connected to', url);
      if (this._state === 'connecting' || this._state === 'reconnecting' || this._state === 'ended') this._setState('loading');
      this._syncPause();
    };
    ws.onmessage = (ev) => {
      if (session !== this._session) return;
      if (typeof ev.data === 'string') this._onText(ev.data);
      else this._onBinary(new Uint8Array(ev.data));
    };
    ws.onerror = () => {
      if (session !== this._session) return;
      this._log('WebSocket error on', url);
    };
    ws.onclose = (ev) => {
      if (session !== this._session) return;
      this._ws = null;
      this._log(`WebSocket closed: code ${ev.code} ${ev.reason || ''}`);
      if (!this._eos && ev.code !== 1000 && ev.code !== 1001) {
        this._error(`connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`, false);
      }
      this._scheduleReconnect(session);
    };
  }

  /** @param {number} session */
  _scheduleReconnect(session) {
    if (!this._running || session !== this._session) return;
    const { reconnectMinDelay: min, reconnectMaxDelay: max } = this.options;
    const delay = Math.min(max, min * 2 ** this._attempts) * (0.85 + Math.random() * 0.3);
    this._attempts++;
    if (this._state !== 'ended' && this._state !== 'unsupported') this._setState('reconnecting');
    this._log(`reconnecting in ${Math.round(delay)} ms (attempt ${this._attempts})`);
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => {
      if (!this._running || session !== this._session) return;
      this._counters.reconnects++;
      this._connect();
    }, delay);
  }

  /** @param {object} msg */
  _send(msg) {
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      this._log('send failed:', errText(e));
      return false;
    }
  }

  /** @param {string} text */
  _onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      this._error(`ignoring a text message that is not JSON: ${errText(e)}`, false, e);
      return;
    }
    if (this.options.debug) this._log('<-', text);
    switch (msg?.type) {
      case 'stream':
        this._onStream(msg);
        break;
      case 'start':
        this._onStart(msg);
        break;
      case 'skip':
        this._counters.skips++;
        this._log(`server skipped ${msg.fragments} fragments (${msg.reason})`);
        this._jumpOnData = true;
        break;
      case 'eos':
        this._eos = true;
        this._setState('ended');
        this._mse?.push({ type: 'call', name: 'endOfStream', fn: () => {
          const ms = this._mse?.ms;
          if (ms && ms.readyState === 'open') ms.endOfStream();
        } });
        break;
      default:
        this._log('ignoring message type', msg?.type);
    }
  }

  // ------------------------------------------------------------------ stream / media

  /** @param {any} msg the `stream` message */
  _onStream(msg) {
    const previous = this._stream;
    this._stream = msg;
    this._generation = msg.generation ?? this._generation + 1;
    this.dispatchEvent(new CustomEvent('stream', { detail: msg }));
    const support = checkSupport(msg);
    if (!support.ok) {
      this._teardownMse();
      this._awaitInit = false;
      this._setState('unsupported');
      this._pauseReasons.add('unsupported');
      this._syncPause();
      this._error(support.reason ?? 'unsupported stream', true);
      return;
    }
    if (this._pauseReasons.delete('unsupported')) this._syncPause();
    this._awaitInit = true;
    this._liveStart = null;
    this._firstFragment = true;
    const mse = this._mse;
    const sb = mse?.sb;
    const sameTracks = previous && previous.has_video === msg.has_video && previous.has_audio === msg.has_audio;
    if (mse && sb && !this._forceNewPipeline && this.options.useChangeType && sameTracks &&
        typeof sb.changeType === 'function' && mse.ms.readyState !== 'closed') {
      // Keep the SourceBuffer: switch codec in place; a timeline discontinuity is handled at the
      // first fragment (old media removed, playhead moved).
      if (msg.mime !== mse.mime) {
        this._log(`changeType ${mse.mime} -> ${msg.mime}`);
        mse.push({ type: 'changeType', mime: msg.mime });
        mse.mime = msg.mime;
      }
      this._discontinuityCheck = true;
    } else {
      this._log(`new MediaSource for ${msg.mime} (generation ${this._generation})`);
      this._teardownMse();
      this._createMse(msg.mime);
      this._discontinuityCheck = false;
    }
    this._forceNewPipeline = false;
    if (this._state === 'unsupported') this._setState('loading');
  }

  /** @param {string} mime */
  _createMse(mime) {
    const session = this._session;
    this._mse = new MsePipeline(this.video, mime, {
      onFatal: (m, e) => session === this._session && this._fatalMedia(m, e),
      onEvict: () => this._counters.evictions++,
      onStreaming: (on) => {
        if (session !== this._session) return;
        this._log(on ? 'startstreaming' : 'endstreaming');
        if (on) this._pauseReasons.delete('mms');
        else this._pauseReasons.add('mms');
        this._syncPause();
      },
      log: (...a) => this._log(...a),
    });
    this._lastFragStart = null;
    this._framesShown = false;
    this._watchFirstFrame();
  }

  _teardownMse() {
    if (!this._mse) return;
    const q = this._quality();
    this._frameBase.dropped += q.dropped;
    this._frameBase.decoded += q.decoded;
    this._mse.destroy();
    this._mse = null;
    this._pauseReasons.delete('mms');
  }

  /** @param {any} msg the `start` message */
  _onStart(msg) {
    if (!(msg.burst > 0)) return;
    this._liveStart = { remaining: msg.burst, liveEdge: Number(msg.live_edge), startTime: Number(msg.start_time) };
  }

  /** @param {Uint8Array} data */
  _onBinary(data) {
    const now = performance.now();
    this._counters.bytes += data.byteLength;
    this._rx.push([now, data.byteLength]);
    while (this._rx.length && this._rx[0][0] < now - 6000) this._rx.shift();
    const mse = this._mse;
    if (!mse) {
      if (this._state !== 'unsupported' && !this._warnedNoStream) {
        this._warnedNoStream = true;
        this._error('binary data before any "stream" message: ignored (protocol violation)', false);
      }
      return;
    }
    if (this._awaitInit) {
      this._awaitInit = false;
      this._tracks = parseInit(data);
      mse.push({ type: 'append', data });
      return;
    }
    let start = null;
    let keyframe = false;
    try {
      ({ start, keyframe } = parseFragment(data, this._tracks));
    } catch (e) {
      this._log('could not read the fragment header:', errText(e));
    }
    if (start !== null && this._lastFragStart !== null) {
      const d = start - this._lastFragStart;
      if (d > 0.01 && d < 10) this._fragDuration = this._fragDuration * 0.8 + d * 0.2;
    }
    const op = { type: 'append', data, onDone: /** @type {(() => void)|undefined} */ (undefined) };
    /** @type {Array<() => void>} */
    const after = [];
    if (this._discontinuityCheck) {
      this._discontinuityCheck = false;
      const prev = this._lastFragStart;
      const contiguous = start !== null && prev !== null && start >= prev - 0.05 && start <= prev + 3 * this._fragDuration + 1;
      if (!contiguous) {
        this._log(`timeline discontinuity at the new generation (${prev} -> ${start}): dropping old media`);
        mse.push({ type: 'remove', start: 0, end: Infinity });
        mse.keyframes.length = 0;
        this._firstFragment = true;
      }
    }
    if (start !== null) {
      this._lastFragStart = start;
      if (keyframe) mse.addKeyframe(start);
    }
    if (this._liveStart) {
      if (--this._liveStart.remaining <= 0) {
        const ls = this._liveStart;
        this._liveStart = null;
        this._firstFragment = false;
        after.push(() => this._seekLive(ls.liveEdge, 'start'));
      }
    } else if (this._firstFragment) {
      this._firstFragment = false;
      after.push(() => this._fixPlayhead('first fragment'));
    } else if (this._jumpOnData) {
      this._jumpOnData = false;
      after.push(() => {
        if (!this._fixPlayhead('resumed')) this._maybeJumpFar();
      });
    }
    after.push(() => this._maybeAutoplay());
    op.onDone = () => { for (const f of after) f(); };
    mse.push(op);
  }

  _watchFirstFrame() {
    const v = /** @type {any} */ (this.video);
    const session = this._session;
    const mark = () => {
      if (session !== this._session || this._framesShown) return;
      this._framesShown = true;
      this._attempts = 0; // playback works: the next reconnect starts with the short delay
      if (this._ttff === null) {
        this._ttff = Math.round(performance.now() - this._connectT0);
        this._log(`first frame after ${this._ttff} ms`);
      }
    };
    if (this._stream && this._stream.has_video === false) {
      // Audio only: no frame is ever presented (requestVideoFrameCallback would never fire, leaving
      // timeToFirstFrame null, stalls uncounted and the reconnect backoff never reset): the start
      // of playback is the "first frame".
      this.video.addEventListener('playing', mark, { once: true });
    } else if (typeof v.requestVideoFrameCallback === 'function') v.requestVideoFrameCallback(() => mark());
    else this.video.addEventListener('loadeddata', mark, { once: true });
  }

  _maybeAutoplay() {
    const v = this.video;
    const mse = this._mse;
    // once per MediaSource: a pause by the user is respected afterwards
    if (!this.options.autoplay || !mse || mse.autoplayed || !v.buffered.length) return;
    mse.autoplayed = true;
    if (!v.paused) return;
    const p = v.play();
    if (!p) return;
    p.catch((e) => {
      if (e?.name === 'NotAllowedError' && !v.muted) {
        this._log('unmuted autoplay refused; playing muted');
        v.muted = true;
        this.dispatchEvent(new CustomEvent('automute'));
        v.play().catch((e2) => this._error(`autoplay refused: ${errText(e2)}`, false, e2));
      } else if (e?.name === 'AbortError') {
        this._log('play() interrupted (source changed or paused):', errText(e));
      } else {
        this._error(`play() failed: ${errText(e)}`, false, e);
      }
    });
  }

  /**
   * @param {string} message
   * @param {unknown} [err]
   */
  _fatalMedia(message, err) {
    const mediaErr = this.video.error;
    const full = mediaErr ? `${message} (MediaError ${mediaErr.code}: ${mediaErr.message})` : message;
    this._error(full, true, err);
    this._teardownMse();
    // Start over on a fresh connection: the server sends the init segment and a keyframe again.
    const ws = this._ws;
    if (ws) {
      try {
        ws.close(1000, 'media error, reconnecting');
      } catch (e) {
        this._log('close failed:', errText(e));
      }
    }
  }

  // ------------------------------------------------------------------ playback control

  /** @returns {number} latency target in s (raised for long fragments) */
  _effectiveTarget() {
    return Math.max(this.options.targetLatency, this._fragDuration / 2 + 0.5);
  }

  /**
   * @param {number|null} liveEdge server's live edge (from `start`) or null for the buffered end
   * @param {string} why
   * @returns {boolean} whether a seek was done
   */
  _seekLive(liveEdge, why) {
    const v = this.video;
    const b = v.buffered;
    if (!b.length) return false;
    const last = b.length - 1;
    let end = b.end(last);
    if (liveEdge !== null && Number.isFinite(liveEdge)) end = Math.min(end, liveEdge);
    const target = Math.max(b.start(last), end - this._effectiveTarget());
    if (Math.abs(v.currentTime - target) < 0.25) return false;
    this._log(`jump to live (${why}): ${v.currentTime.toFixed(2)} -> ${target.toFixed(2)} (buffered end ${b.end(last).toFixed(2)})`);
    v.currentTime = target;
    this._counters.jumps++;
    this._latencySamples = [];
    return true;
  }

  /**
   * Moves the playhead into buffered media when it is outside every buffered range
   * (Chromium does not skip gaps).
   * @param {string} why
   * @returns {boolean} whether a seek was done
   */
  _fixPlayhead(why) {
    const v = this.video;
    const b = v.buffered;
    if (!b.length) return false;
    const ct = v.currentTime;
    for (let i = 0; i < b.length; i++) if (ct >= b.start(i) - 0.05 && ct <= b.end(i) + 0.05) return false;
    let target = null;
    for (let i = 0; i < b.length; i++) {
      if (b.start(i) > ct) {
        target = b.start(i);
        break;
      }
    }
    if (target === null) {
      // Nothing buffered ahead of the playhead. A stall a little past the end of the buffered media
      // is a live edge waiting for data (Chromium plays audio on for up to ~3 s when video runs
      // out: buffered, the intersection of the tracks, then ends behind currentTime); seeking back
      // would replay old media, again and again while video is missing. Only a playhead far past
      // everything (the timeline went back) is moved.
      const overrun = ct - b.end(b.length - 1);
      if (why === 'stalled' && overrun < Math.max(5, 4 * this._fragDuration)) return false;
      target = Math.max(b.start(b.length - 1), b.end(b.length - 1) - this._effectiveTarget());
    }
    this._log(`playhead ${ct.toFixed(2)} outside buffered media (${why}): seek to ${target.toFixed(2)}`);
    v.currentTime = target + 0.001;
    this._counters.jumps++;
    this._latencySamples = [];
    return true;
  }

  _maybeJumpFar() {
    const v = this.video;
    const b = v.buffered;
    if (!b.length) return false;
    const latency = b.end(b.length - 1) - v.currentTime;
    if (latency > this._maxLatency()) return this._seekLive(null, `latency ${latency.toFixed(2)} s`);
    return false;
  }

  _maxLatency() {
    const t = this._effectiveTarget();
    if (this.options.maxLatency) return Math.max(this.options.maxLatency, t + 0.5);
    return this._preferJumps ? Math.max(2 * t, t + 1.5) : Math.max(3 * t, t + 2);
  }

  _tick() {
    const now = performance.now();
    const v = this.video;
    const mse = this._mse;
    const dt = Math.min(1000, now - (this._lastTick || now));
    this._lastTick = now;
    if (mse && mse.sb && v.readyState > 0 && !v.seeking) this._control(dt);
    if (this.options.reportInterval > 0 && now - this._lastReport >= this.options.reportInterval) {
      this._lastReport = now;
      this._sendReport();
    }
    if (now - this._lastStats >= 1000) {
      this._lastStats = now;
      this.dispatchEvent(new CustomEvent('stats', { detail: this.stats }));
    }
    if (mse && now - this._lastTrim >= 2000) {
      this._lastTrim = now;
      this._trimBackBuffer(mse);
    }
  }

  /**
   * Stall/gap handling and live latency control, every 250 ms.
   * @param {number} dt ms since the previous tick (timers are throttled in hidden pages)
   */
  _control(dt) {
    const v = this.video;
    const b = v.buffered;
    const ct = v.currentTime;
    const playing = !v.paused && !v.ended;
    // stall / gap handling
    if (playing && ct === this._lastCt) this._stuckMs += dt;
    else this._stuckMs = 0;
    this._lastCt = ct;
    if (!b.length) return;
    if (this._stuckMs >= 500) {
      if (this._fixPlayhead('stalled')) {
        this._stuckMs = 0;
        return;
      }
      // inside a range: a gap right after it, or a decoder that needs a nudge
      for (let i = 0; i < b.length - 1; i++) {
        if (ct >= b.start(i) && ct <= b.end(i) + 0.05 && b.end(i) - ct < 0.5) {
          this._log(`gap ${b.end(i).toFixed(2)}..${b.start(i + 1).toFixed(2)}: jumping over it`);
          v.currentTime = b.start(i + 1) + 0.001;
          this._counters.jumps++;
          this._stuckMs = 0;
          return;
        }
      }
      if (this._stuckMs >= 1500 && b.end(b.length - 1) - ct > 1) {
        this._log(`playhead stuck at ${ct.toFixed(2)} with data ahead: nudging`);
        v.currentTime = ct + 0.1;
        this._stuckMs = 0;
        return;
      }
    }
    if (!playing || this._pauseReasons.size) {
      this._setRate(1);
      return;
    }
    // live latency control (model: hls.js latency-controller)
    const latency = b.end(b.length - 1) - ct;
    if (latency > this._maxLatency()) {
      this._seekLive(null, `latency ${latency.toFixed(2)} s`);
      this._setRate(1);
      return;
    }
    if (this._preferJumps) return;
    this._latencySamples.push(latency);
    const windowLen = Math.max(8, Math.ceil((2 * this._fragDuration) / 0.25));
    while (this._latencySamples.length > windowLen) this._latencySamples.shift();
    if (this._latencySamples.length < 4) return;
    const avg = this._latencySamples.reduce((a, x) => a + x, 0) / this._latencySamples.length;
    const target = this._effectiveTarget();
    const d = avg - target;
    if (this._catchingUp ? d > 0.05 : d > 0.3) {
      this._catchingUp = true;
      this._slowingDown = false;
      this._setRate(Math.min(this.options.maxCatchUpRate, 1 + Math.max(0.02, d * 0.15)));
    } else if (this._slowingDown ? d < -0.1 : d < -Math.min(0.5, target / 2)) {
      this._slowingDown = true;
      this._catchingUp = false;
      this._setRate(this.options.slowDownRate);
    } else {
      this._catchingUp = false;
      this._slowingDown = false;
      this._setRate(1);
    }
  }

  /** @param {number} r */
  _setRate(r) {
    const rate = Math.round(r * 100) / 100;
    if (this.video.playbackRate !== rate) this.video.playbackRate = rate;
  }

  /** @param {MsePipeline} mse */
  _trimBackBuffer(mse) {
    const sb = mse.sb;
    if (!sb || mse.ops.some((op) => op.type === 'remove')) return;
    const b = sb.buffered;
    const limit = this.video.currentTime - this.options.backBuffer;
    const removeEnd = mse.safeRemoveEnd(limit) ?? limit;
    if (b.length && b.start(0) < removeEnd - 2) {
      mse.push({ type: 'remove', start: 0, end: removeEnd });
    }
  }

  _sendReport() {
    const v = this.video;
    if (!this._mse) return;
    const b = v.buffered;
    this._send({
      type: 'report',
      current_time: round3(v.currentTime),
      buffered_end: b.length ? round3(b.end(b.length - 1)) : 0,
      stalls: this._counters.stalls,
      dropped_frames: this._frameBase.dropped + this._quality().dropped,
    });
  }

  _quality() {
    const v = /** @type {any} */ (this.video);
    if (typeof v.getVideoPlaybackQuality === 'function') {
      const q = v.getVideoPlaybackQuality();
      return { dropped: q.droppedVideoFrames, decoded: q.totalVideoFrames };
    }
    return { dropped: v.webkitDroppedFrameCount ?? 0, decoded: v.webkitDecodedFrameCount ?? 0 };
  }

  // ------------------------------------------------------------------ pause / resume

  _handleVisibility() {
    if (!this.options.pauseWhenHidden) return;
    if (document.visibilityState === 'hidden') this._pauseReasons.add('hidden');
    else if (this._pauseReasons.delete('hidden')) this._jumpOnData = true;
    this._syncPause();
  }

  /** Sends pause/resume when the set of pause reasons becomes non-empty/empty. */
  _syncPause() {
    const want = this._pauseReasons.size > 0;
    if (want === this._pauseSent) return;
    if (!this._ws || this._ws.readyState !== WebSocket.OPEN) return;
    if (this._send({ type: want ? 'pause' : 'resume' })) {
      this._pauseSent = want;
      this._log(want ? `pause (${[...this._pauseReasons].join(', ')})` : 'resume');
      if (want && this._state !== 'unsupported') this._setState('suspended');
      else if (!want) this._setState(this.video.paused ? 'loading' : 'playing');
    }
  }

  // ------------------------------------------------------------------ video events

  _onPlaying() {
    if (!this._pauseReasons.size) this._setState('playing');
  }

  _onWaiting() {
    if (this.video.seeking || !this._framesShown || !this._mse) return;
    if (this._pauseReasons.size) return;
    this._counters.stalls++;
    this._setState('buffering');
  }

  _onVideoPause() {
    if (!this._mse || this.video.ended) return;
    if (this._state === 'playing' || this._state === 'buffering') this._setState('paused');
  }

  _onVideoError() {
    if (!this._mse) return;
    const e = this.video.error;
    this._fatalMedia(`media error ${e?.code ?? '?'}: ${e?.message || 'decode error'}`, e);
  }

  // ------------------------------------------------------------------ helpers

  /** @param {Fmp4PlayerState} s */
  _setState(s) {
    if (s === this._state) return;
    const previous = this._state;
    this._state = s;
    this._log(`state ${previous} -> ${s}`);
    this.dispatchEvent(new CustomEvent('statechange', { detail: { state: s, previous } }));
  }

  /**
   * @param {string} message
   * @param {boolean} fatal
   * @param {unknown} [error]
   */
  _error(message, fatal, error) {
    (fatal ? console.error : console.warn)(LOG_PREFIX, message, ...(error ? [error] : []));
    this.dispatchEvent(new CustomEvent('error', { detail: { message, fatal, error } }));
  }

  /** @param {...unknown} args */
  _log(...args) {
    if (this.options.debug) console.debug(LOG_PREFIX, ...args);
  }
}

/** @param {number} x */
function round3(x) {
  return Math.round(x * 1000) / 1000;
}

// =============================================================================================

const ELEMENT_CSS = `
:host { display: block; position: relative; background: #000; overflow: hidden; }
:host([hidden]) { display: none; }
video { display: block; width: 100%; height: 100%; object-fit: contain; background: #000; }
.msg { position: absolute; left: 0; right: 0; top: 50%; transform: translateY(-50%);
  margin: 0 auto; max-width: 80%; padding: .8em 1em; text-align: center;
  font: 15px/1.4 system-ui, sans-serif; color: #fff; background: rgba(0,0,0,.72); border-radius: 6px; }
.msg[hidden], .stats[hidden] { display: none; }
.stats { position: absolute; top: 6px; left: 6px; margin: 0; padding: 4px 6px; pointer-events: none;
  font: 11px/1.35 ui-monospace, monospace; color: #cfc; background: rgba(0,0,0,.6); border-radius: 4px;
  white-space: pre; }
`;

// Lets the module be imported outside a browser (e.g. to unit-test the helpers in Node).
const ElementBase = /** @type {typeof HTMLElement} */ (globalThis.HTMLElement ?? class {});

/**
 * `<fmp4-player>` custom element wrapping {@link Fmp4Player}.
 *
 * Attributes: `src` (WebSocket URL), `target-latency` (seconds, default 1.5), `muted`, `autoplay`,
 * `controls`, `stats` (show the stats overlay).
 * Properties: `player` ({@link Fmp4Player}), `video`, `stats`, `state`, `src`.
 * The player's `statechange`, `error`, `stats` and `stream` events are re-dispatched on the element.
 */
export class Fmp4PlayerElement extends ElementBase {
  static get observedAttributes() {
    return ['src', 'target-latency', 'muted', 'autoplay', 'controls', 'stats'];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = ELEMENT_CSS;
    /** @type {HTMLVideoElement} */
    this.video = document.createElement('video');
    this.video.playsInline = true;
    this.video.setAttribute('part', 'video');
    this._msg = document.createElement('div');
    this._msg.className = 'msg';
    this._msg.hidden = true;
    this._msg.setAttribute('role', 'status');
    this._statsEl = document.createElement('pre');
    this._statsEl.className = 'stats';
    this._statsEl.hidden = true;
    root.append(style, this.video, this._msg, this._statsEl);
    /** @type {Fmp4Player} */
    this.player = new Fmp4Player(this.video, { autoplay: false });
    this._fatalMessage = '';
    for (const type of ['statechange', 'error', 'stats', 'stream', 'automute']) {
      this.player.addEventListener(type, (ev) => {
        const detail = /** @type {CustomEvent} */ (ev).detail;
        this._onPlayerEvent(type, detail);
        this.dispatchEvent(new CustomEvent(type, { detail, bubbles: false, composed: true }));
      });
    }
  }

  connectedCallback() {
    this._applyAll();
    if (this.getAttribute('src') && !this.player.running) this._restart();
  }

  disconnectedCallback() {
    queueMicrotask(() => {
      if (!this.isConnected) this.player.stop();
    });
  }

  /**
   * @param {string} name
   * @param {string|null} oldValue
   * @param {string|null} value
   */
  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (name === 'src') {
      if (this.isConnected) this._restart();
      return;
    }
    this._applyAll();
  }

  _applyAll() {
    const o = this.player.options;
    const tl = parseFloat(this.getAttribute('target-latency') ?? '');
    o.targetLatency = Number.isFinite(tl) && tl > 0 ? tl : 1.5;
    o.autoplay = this.hasAttribute('autoplay');
    this.video.muted = this.hasAttribute('muted');
    this.video.controls = this.hasAttribute('controls');
    this._statsEl.hidden = !this.hasAttribute('stats');
    if (!this._statsEl.hidden) this._renderStats(this.player.stats);
  }

  _restart() {
    const src = this.getAttribute('src');
    this.player.stop();
    this._fatalMessage = '';
    this._showMessage('');
    if (!src) return;
    this.player.src = src;
    this.player.start();
  }

  /**
   * @param {string} type
   * @param {any} detail
   */
  _onPlayerEvent(type, detail) {
    if (type === 'error' && detail.fatal && this.player.state === 'unsupported') {
      this._fatalMessage = detail.message;
      this._showMessage(detail.message);
    } else if (type === 'statechange') {
      const s = detail.state;
      if (s === 'unsupported') this._showMessage(this._fatalMessage);
      else if (s === 'reconnecting') this._showMessage('Connection lost — reconnecting…');
      else if (s === 'ended') this._showMessage('The stream has ended.');
      else if (s === 'playing' || s === 'loading' || s === 'connecting') this._showMessage('');
    } else if (type === 'stats' && !this._statsEl.hidden) {
      this._renderStats(detail);
    } else if (type === 'automute') {
      if (!this.hasAttribute('muted')) this.setAttribute('muted', '');
    }
  }

  /** @param {string} text */
  _showMessage(text) {
    this._msg.textContent = text;
    this._msg.hidden = !text;
  }

  /** @param {Fmp4PlayerStats} s */
  _renderStats(s) {
    const kbps = ((s.bitrate * 8) / 1000).toFixed(0);
    this._statsEl.textContent = [
      `state      ${s.state}`,
      `latency    ${s.latency === null ? '-' : s.latency.toFixed(2)} s (target ${s.targetLatency.toFixed(2)})`,
      `rate       ${s.playbackRate.toFixed(2)}x`,
      `bitrate    ${kbps} kbit/s`,
      `resolution ${s.resolution ?? '-'}`,
      `frames     ${s.decodedFrames} decoded, ${s.droppedFrames} dropped`,
      `stalls     ${s.stalls}  jumps ${s.jumps}  reconnects ${s.reconnects}`,
      `generation ${s.generation}${s.timeToFirstFrame !== null ? `  first frame ${s.timeToFirstFrame} ms` : ''}`,
    ].join('\n');
  }

  /** @returns {Fmp4PlayerStats} */
  get stats() {
    return this.player.stats;
  }

  /** @returns {Fmp4PlayerState} */
  get state() {
    return this.player.state;
  }

  /** @returns {string} */
  get src() {
    return this.getAttribute('src') ?? '';
  }

  /** @param {string} v */
  set src(v) {
    this.setAttribute('src', v);
  }
}

if (globalThis.customElements && !customElements.get('fmp4-player')) {
  customElements.define('fmp4-player', Fmp4PlayerElement);
}
