/**
 * The player: ties the transport, the append queue, the box parser and the latency controller to
 * a `<video>`, keeps the player state and the statistics, and reacts to the page (visibility) and
 * to the video's events.
 * @module fmp4-player/player
 */

import { checkSupport } from './codecs.js';
import { parseInit, parseFragment, prftFor } from './bmff.js';
import { Transport, resolveWebSocketUrl, reportMessage } from './transport.js';
import { MsePipeline } from './append-queue.js';
import {
  initialState, effectiveTarget, liveEdgeTarget, playheadTarget, resumeSeek, controlStep, rangesOf,
  TargetLearner, JointEnd, shouldStart,
} from './latency-controller.js';
import { ByteRateMeter, videoQuality } from './stats.js';
import { WebCodecsRenderer, webCodecsSupport } from './webcodecs.js';
import { LOG_PREFIX, errText, round3, isSafari } from './util.js';

/** @typedef {import('./bmff.js').TrackInfo} TrackInfo */

/**
 * @typedef {object} Fmp4PlayerOptions
 * @property {string} [src] WebSocket URL (`ws:`/`wss:`; `http(s):` and relative URLs are
 *   resolved against the page and mapped to `ws(s):`).
 * @property {number|null} [targetLatency=null] wanted live latency in seconds (buffered end -
 *   currentTime). null (the default): learned from the stream — half a fragment + the fragments'
 *   arrival jitter + a margin that a stall raises and calm periods lower (latency-controller.js
 *   `TargetLearner`). A number overrides it (at least half a fragment + 0.1 s).
 * @property {number} [maxLatency] latency (s) above which the player jumps to the live edge
 *   instead of catching up; default 3 × the effective target (at least target + 1 s).
 * @property {number} [backBuffer=20] seconds of media kept behind the playhead; older data is removed.
 * @property {boolean} [autoplay=true] call `video.play()` once data is there (falls back to muted
 *   playback when the browser refuses unmuted autoplay).
 * @property {boolean} [pauseWhenHidden=true] send `{"type":"pause"}` while the page is hidden and
 *   `{"type":"resume"}` when it is visible again.
 * @property {boolean} [useChangeType=true] on a new init segment keep the SourceBuffer and call
 *   `SourceBuffer.changeType()` when available (otherwise the MediaSource is rebuilt).
 * @property {boolean} [preferJumps] only jump to the live edge, never change `playbackRate`
 *   (default: true on Safari, false elsewhere).
 * @property {number} [maxCatchUpRate=1.1] highest `playbackRate` used to catch up (the rate is
 *   1 + half the excess latency in s, at least 1.02).
 * @property {number} [slowDownRate=0.9] lowest `playbackRate`, used when the buffer runs low
 *   (the rate is 1 − half the shortfall in s, at least 0.02 off).
 * @property {number} [reconnectMinDelay=500] reconnect delay in ms: the first attempt after a lost
 *   connection waits a random 0–`reconnectMinDelay`, attempt n ≥ 1 `reconnectMinDelay`·2ⁿ ±15 %
 *   (see `reconnectDelay` in transport.js).
 * @property {number} [reconnectMaxDelay=5000] cap of the reconnect delay in ms.
 * @property {number} [reportInterval=1000] ms between `report` messages to the server (0: none).
 * @property {'mse'|'webcodecs'|'auto'} [renderer='mse'] how to play: `mse` (Media Source
 *   Extensions into the `<video>`), `webcodecs` (WebCodecs `VideoDecoder`/`AudioDecoder`, frames
 *   drawn to `canvas`, audio through an AudioWorklet: lowest latency; see webcodecs.js) or `auto`
 *   (WebCodecs when the browser has it and `isConfigSupported` accepts the stream's codecs, else
 *   MSE; decided again for every `stream` message).
 * @property {HTMLCanvasElement} [canvas] the canvas the WebCodecs renderer draws to (default: one
 *   created next to the video, in its place while WebCodecs plays).
 * @property {number} [renderDelay=0.05] WebCodecs: margin in s kept between a frame's decode and
 *   its due time (also the audio queued before playback starts); the renderer lowers the latency
 *   down to it.
 * @property {number} [renderMaxLag=0.5] WebCodecs: s behind the newest decoded media after which
 *   the clock jumps forward (older frames dropped, queued audio cut).
 * @property {number} [maxFrameQueue=16] WebCodecs: decoded `VideoFrame`s kept waiting for their
 *   time (a whole fragment's + the margin when that is more, at most 4 × this); beyond it the
 *   oldest is closed and counted as dropped.
 * @property {number} [maxDecodeQueue=60] WebCodecs: chunks waiting in a decoder
 *   (`decodeQueueSize`); beyond it the decoder is reset and waits for the next keyframe.
 * @property {boolean} [debug=false] log protocol messages and decisions to the console.
 * @property {number} [trace=0] debug only: keep the last N controller steps in
 *   `player.controlTrace` (`{t, state, sample, settings, seek, rate, arrivals}`: exactly what
 *   `controlStep` got and returned, and the fragments that arrived since the previous step as
 *   `[performance.now() ms, start s, duration s, burst]`, what the latency learner got;
 *   tests/web/record-trace.mjs records them); 0: off.
 */

/**
 * @typedef {object} Fmp4PlayerStats
 * @property {string} state current player state (see {@link Fmp4Player#state}).
 * @property {number|null} latency live latency in s: end of the buffered media - currentTime.
 * @property {number} targetLatency effective latency target in s (learned, or the option's; WebCodecs:
 *   the margin kept between a frame's decode and its due time, `renderDelay` plus what stalls added).
 * @property {number} jitter fragment arrival jitter in s seen over the last 15 s (max − median of
 *   arrival time − media end time).
 * @property {number} latencyMargin learned margin in s (raised by stalls, lowered when calm).
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
 * @property {'mse'|'webcodecs'} renderer what plays the current stream.
 * @property {number} [framesDrawn] WebCodecs: frames drawn to the canvas since the connection.
 * @property {number} [frameQueue] WebCodecs: decoded frames waiting for their time.
 * @property {number} [decodeQueue] WebCodecs: chunks waiting in the decoders.
 * @property {number} [audioQueue] WebCodecs: s of audio queued in the AudioWorklet.
 * @property {'audio'|'wall'} [clock] WebCodecs: what drives the clock (audio output, or
 *   `performance.now()` when there is no audio playing).
 * @property {number|null} [audioOutputLatency] WebCodecs: s from the AudioWorklet to the speaker
 *   (`AudioContext.outputLatency` + `baseLatency`), null without audio.
 * @property {number|null} [avOffset] WebCodecs: presentation time of the frame on screen minus the
 *   clock when it was drawn (s; with the audio clock: video ahead (+) or behind (−) the audio heard).
 * @property {number|null} wallClockLatency s from the wall-clock time of the frame on screen to
 *   now (`Date.now()`): the frame's time from the latest `prft` (ISO/IEC 14496-12 §8.16.5) at or
 *   before `currentTime`, + (currentTime − its media time). null without a prft. Assumes the
 *   page's clock and the prft writer's are in sync (NTP; exact on one machine).
 * @property {'encoder'|'server'|null} wallClockSource whose prft: `server` (websocketsink's own,
 *   prft flags 4: the fragment's arrival at the server) or `encoder` (any other flags, e.g.
 *   ffmpeg `-write_prft wallclock`); null without a prft.
 */

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
 * - `ended`: the server sent `eos`: the MediaSource is ended, so what is buffered plays to its end
 *   (even a buffer too short for the browser to start on); stays `ended` while that tail plays
 *   and until a new `stream` (the player keeps trying to reconnect);
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
      targetLatency: null,
      backBuffer: 20,
      autoplay: true,
      pauseWhenHidden: true,
      useChangeType: true,
      maxCatchUpRate: 1.1,
      slowDownRate: 0.9,
      reconnectMinDelay: 500,
      reconnectMaxDelay: 5000,
      reportInterval: 1000,
      renderer: 'mse',
      renderDelay: 0.05,
      renderMaxLag: 0.5,
      maxFrameQueue: 16,
      maxDecodeQueue: 60,
      debug: false,
      trace: 0,
      ...options,
    };
    this._src = options.src ?? '';
    /** @type {Fmp4PlayerState} */
    this._state = 'idle';
    this._running = false;
    this._transport = new Transport({
      running: () => this._running,
      delays: () => ({ min: this.options.reconnectMinDelay, max: this.options.reconnectMaxDelay }),
      onOpen: () => {
        if (this._state === 'connecting' || this._state === 'reconnecting' || this._state === 'ended') this._setState('loading');
        this._syncPause();
      },
      messages: {
        stream: (msg) => this._onStream(msg),
        start: (msg) => this._onStart(msg),
        skip: (msg) => this._onSkip(msg),
        eos: () => this._onEos(),
      },
      onBinary: (data) => this._onBinary(data),
      onClose: (ev) => {
        if (!this._eos && ev.code !== 1000 && ev.code !== 1001) {
          this._error(`connection closed (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`, false);
        }
      },
      onReconnectScheduled: () => {
        if (this._state !== 'ended' && this._state !== 'unsupported') this._setState('reconnecting');
      },
      onReconnect: () => {
        this._counters.reconnects++;
        this._connect();
      },
      onError: (message, fatal, error) => this._error(message, fatal, error),
      log: (...a) => this._log(...a),
    });
    /** @type {MsePipeline|null} */
    this._mse = null;
    /** @type {WebCodecsRenderer|null} */
    this._wc = null;
    /** a `stream` message whose renderer is being chosen (`auto`), with the binaries received meanwhile */
    this._wcPending = /** @type {null | {msg: any, queue: Uint8Array[], session: number}} */ (null);
    this._wcAwaitInit = false;
    /** @type {HTMLCanvasElement|null} */
    this.canvas = options.canvas ?? null;
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
    /** performance.now() at which to check the latency once after the first frame (0: done) */
    this._settleAt = 0;
    this._pauseReasons = new Set();
    this._pauseSent = false;
    this._eos = false;
    /** `eos` came and no new `stream` since: the state stays 'ended' while the tail plays */
    this._streamEnded = false;
    this._connectT0 = 0;
    this._ttff = /** @type {number|null} */ (null);
    this._framesShown = false;
    /** @type {import('./latency-controller.js').ControllerState} */
    this._ctl = initialState();
    /** @type {Array<{mediaTime: number, unixMs: number, source: 'encoder'|'server'}>} recent prfts */
    this._prfts = [];
    /** learns the latency target when `options.targetLatency` is null */
    this._learner = this._newLearner();
    /** end of what the video element can play (smallest track end), for the learner */
    this._jointEnd = new JointEnd();
    /** @type {Array<object>|null} the last `options.trace` controller steps (debug only) */
    this.controlTrace = null;
    /** @type {Array<[number, number, number, boolean]>} fragments since the last traced step */
    this._traceArrivals = [];
    this._rx = new ByteRateMeter();
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

  /**
   * The latency learner, with its defaults in every browser: the least margin 0.2 s (Chromium
   * underflows with 0.08–0.17 s buffered). Firefox used to start at 0.5 s (its MSE stalled with
   * more left on a machine loaded 11–21×); on a quiet machine Firefox 153 played every shape at
   * 0.2 s without a stall (6 runs, jitter 0 and 50 ms, issue 14), and where it does stall each
   * stall raises the margin.
   * @returns {TargetLearner}
   */
  _newLearner() {
    return new TargetLearner();
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

  /** @returns {number|null} wanted latency in seconds, null: learned */
  get targetLatency() {
    return this.options.targetLatency;
  }

  /** @param {number|null} v seconds (> 0), or null to learn it */
  set targetLatency(v) {
    if (v === null || (Number.isFinite(v) && v > 0)) this.options.targetLatency = v;
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
    if (this._wc) return this._wcStats();
    const v = this.video;
    const q = videoQuality(v);
    const b = v.buffered;
    const bufferedEnd = b.length ? b.end(b.length - 1) : null;
    return {
      state: this._state,
      latency: bufferedEnd !== null && this._mse ? round3(Math.max(0, bufferedEnd - v.currentTime)) : null,
      targetLatency: round3(this._effectiveTarget()),
      jitter: round3(this._learner.jitter),
      latencyMargin: round3(this._learner.margin),
      bitrate: this._rx.bitrate(performance.now(), this._connectT0),
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
      renderer: 'mse',
      ...this._wallClock(),
    };
  }

  /** @returns {Fmp4PlayerStats} the stats while the WebCodecs renderer plays */
  _wcStats() {
    const w = /** @type {WebCodecsRenderer} */ (this._wc).stats();
    const r = (/** @type {number|null} */ x) => (x === null ? null : round3(x));
    return {
      state: this._state,
      latency: r(w.buffer),
      targetLatency: round3(w.margin),
      bitrate: this._rx.bitrate(performance.now(), this._connectT0),
      bytesReceived: this._counters.bytes,
      resolution: w.width ? `${w.width}x${w.height}` : null,
      width: w.width,
      height: w.height,
      mime: this._stream?.mime ?? null,
      droppedFrames: this._frameBase.dropped + w.framesDropped,
      decodedFrames: this._frameBase.decoded + w.framesDecoded,
      reconnects: this._counters.reconnects,
      stalls: this._counters.stalls + w.stalls,
      jumps: this._counters.jumps + w.clockJumps,
      evictions: this._counters.evictions,
      skips: this._counters.skips,
      generation: this._generation,
      timeToFirstFrame: this._ttff,
      playbackRate: 1,
      currentTime: round3(w.currentTime ?? 0),
      bufferedEnd: r(w.bufferedEnd),
      fragmentDuration: round3(this._fragDuration),
      renderer: 'webcodecs',
      framesDrawn: w.framesDrawn,
      frameQueue: w.frameQueue,
      decodeQueue: w.decodeQueue,
      audioQueue: round3(w.audioQueue),
      clock: w.clock,
      audioOutputLatency: r(w.audioOutputLatency),
      avOffset: r(w.avOffset),
      wallClockLatency: r(w.wallClockLatency),
      wallClockSource: w.wallClockSource,
    };
  }

  /**
   * Wall-clock latency of the frame on screen, from the prft that dates currentTime (`prftFor`).
   * @returns {{wallClockLatency: number|null, wallClockSource: 'encoder'|'server'|null}}
   */
  _wallClock() {
    const ct = this.video.currentTime;
    const best = prftFor(this._prfts, ct, (p) => p.mediaTime, (p) => p.source);
    if (!best || !this._mse) return { wallClockLatency: null, wallClockSource: null };
    const frameWallMs = best.unixMs + (ct - best.mediaTime) * 1000;
    return { wallClockLatency: round3((Date.now() - frameWallMs) / 1000), wallClockSource: best.source };
  }

  /** Connects and starts playing. Does nothing if already started. */
  start() {
    if (this._running) return;
    if (!this._src) throw new Error('Fmp4Player: no src');
    this._running = true;
    this._transport.resetBackoff();
    this._eos = false;
    this._streamEnded = false;
    this._counters = { bytes: 0, reconnects: 0, stalls: 0, jumps: 0, evictions: 0, skips: 0 };
    this._frameBase = { dropped: 0, decoded: 0 };
    this._rx.reset();
    this._learner = this._newLearner();
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
    this._transport.stop();
    for (const t of this._timers) clearInterval(t);
    this._timers = [];
    for (const [t, f] of this._videoListeners) this.video.removeEventListener(t, f);
    document.removeEventListener('visibilitychange', this._onVisibility);
    this._teardownMse();
    this._teardownWc();
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
    this._transport.newSession();
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
    this._learner.resetArrivals();
    this._prfts = [];
    this._transport.open(url);
  }

  /** @param {any} msg the `skip` message */
  _onSkip(msg) {
    this._counters.skips++;
    this._learner.resetArrivals();
    this._log(`server skipped ${msg.fragments} fragments (${msg.reason})`);
    this._wc?.onSkip();
    this._jumpOnData = true;
  }

  _onEos() {
    this._eos = true;
    this._streamEnded = true;
    this._wc?.setSuspended(true);
    this._setState('ended');
    this._mse?.push({ type: 'call', name: 'endOfStream', fn: () => {
      const ms = this._mse?.ms;
      if (ms && ms.readyState === 'open') ms.endOfStream();
    } });
  }

  // ------------------------------------------------------------------ stream / media

  /**
   * @param {any} msg the `stream` message
   * @param {boolean} [mseOnly] the renderer is chosen already (MSE): do not dispatch `stream` again
   * @param {any} [previousStream] the stream before `msg` (when `mseOnly`)
   */
  _onStream(msg, mseOnly = false, previousStream = null) {
    const previous = mseOnly ? previousStream : this._stream;
    this._streamEnded = false;
    if (!mseOnly) {
      this._stream = msg;
      this._generation = msg.generation ?? this._generation + 1;
      this._learner.resetArrivals();
      // a new publisher (new init segment) starts irregularly: more margin for a while
      if (previous) this._learner.raise(performance.now() / 1000, 0.5);
      this.dispatchEvent(new CustomEvent('stream', { detail: msg }));
      if (this.options.renderer === 'webcodecs' || this.options.renderer === 'auto') {
        this._chooseRenderer(msg, previous);
        return;
      }
    }
    this._teardownWc();
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
    const session = this._transport.session;
    this._mse = new MsePipeline(this.video, mime, {
      onFatal: (m, e) => session === this._transport.session && this._fatalMedia(m, e),
      onEvict: () => this._counters.evictions++,
      onStreaming: (on) => {
        if (session !== this._transport.session) return;
        this._log(on ? 'startstreaming' : 'endstreaming');
        if (on) this._pauseReasons.delete('mms');
        else this._pauseReasons.add('mms');
        this._syncPause();
      },
      log: (...a) => this._log(...a),
    });
    this._lastFragStart = null;
    this._framesShown = false;
    this._settleAt = 0;
    this._watchFirstFrame();
  }

  _teardownMse() {
    if (!this._mse) return;
    const q = videoQuality(this.video);
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
    this._learner.resetArrivals();
  }

  /** @param {Uint8Array} data */
  _onBinary(data) {
    const now = performance.now();
    this._counters.bytes += data.byteLength;
    this._rx.add(now, data.byteLength);
    if (this._wcPending) {
      // the renderer is being chosen (a promise, a few ms): keep what comes meanwhile, bounded
      if (this._wcPending.queue.length < this.options.maxDecodeQueue) this._wcPending.queue.push(data);
      else this._log('renderer not chosen yet: fragment dropped');
      return;
    }
    if (this._wc) {
      this._onBinaryWc(data);
      return;
    }
    this._mediaBinary(data, now);
  }

  /**
   * @param {Uint8Array} data a binary message for the MSE path
   * @param {number} [now] when it arrived (performance.now() ms; the latency learner's arrival time)
   */
  _mediaBinary(data, now = performance.now()) {
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
      this._jointEnd = new JointEnd();
      mse.push({ type: 'append', data });
      return;
    }
    let start = null;
    let keyframe = false;
    let prft = null;
    /** @type {Array<[number, number, number]>} */
    let trackEnds = [];
    try {
      ({ start, keyframe, prft, trackEnds } = parseFragment(data, this._tracks));
    } catch (e) {
      this._log('could not read the fragment header:', errText(e));
    }
    // the learner sees the steps of the end of what the video element can play (the smallest
    // of the tracks' ends: mp4mux writes one moof per track, each with its own length)
    const step = this._jointEnd.add(trackEnds);
    if (step) {
      this._learner.fragment(now / 1000, step.start, step.duration, this._liveStart !== null);
      if (this.options.trace > 0) {
        this._traceArrivals.push([Math.round(now * 10) / 10, step.start, Math.round(step.duration * 1e6) / 1e6, this._liveStart !== null]);
      }
      if (this._learner.fragmentDuration > 0) this._fragDuration = this._learner.fragmentDuration;
    }
    if (prft && Number.isFinite(prft.mediaTime)) {
      // flags 4 ("movie fragment written"): websocketsink's own, at the fragment's arrival
      this._prfts.push({ mediaTime: prft.mediaTime, unixMs: prft.unixMs, source: prft.flags === 4 ? 'server' : 'encoder' });
      if (this._prfts.length > 256) this._prfts.splice(0, this._prfts.length - 256);
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
        this._prfts = [];
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
      after.push(() => this._resume());
    }
    after.push(() => this._maybeAutoplay());
    op.onDone = () => { for (const f of after) f(); };
    mse.push(op);
  }

  // ------------------------------------------------------------------ WebCodecs renderer

  /**
   * Picks the renderer of a `stream` message (`renderer` `webcodecs` or `auto`), then plays it.
   * @param {any} msg
   * @param {any} previous the stream before it
   */
  _chooseRenderer(msg, previous) {
    const session = this._transport.session;
    const pending = { msg, queue: /** @type {Uint8Array[]} */ ([]), session };
    this._wcPending = pending;
    webCodecsSupport(msg).then((support) => {
      if (this._wcPending !== pending) return; // a newer stream message, or stop()
      this._wcPending = null;
      if (session !== this._transport.session || !this._running) return;
      if (!support.ok && this.options.renderer === 'auto') {
        this._log(`renderer auto: MSE (${support.reason})`);
        this._onStream(msg, true, previous);
        for (const d of pending.queue) this._mediaBinary(d);
        return;
      }
      if (!support.ok) {
        this._teardownWc();
        this._teardownMse();
        this._setState('unsupported');
        this._pauseReasons.add('unsupported');
        this._syncPause();
        this._error(support.reason ?? 'unsupported stream', true);
        return;
      }
      if (this._pauseReasons.delete('unsupported')) this._syncPause();
      this._teardownMse();
      if (!this._wc || this._forceNewPipeline) this._createWc();
      this._forceNewPipeline = false;
      this._wcAwaitInit = true;
      if (this._state === 'unsupported') this._setState('loading');
      for (const d of pending.queue) this._onBinaryWc(d);
    });
  }

  _createWc() {
    this._teardownWc();
    if (!this.canvas) {
      this.canvas = document.createElement('canvas');
      this.canvas.style.cssText = 'display:block;width:100%;height:100%;object-fit:contain;background:#000';
      this.video.insertAdjacentElement('afterend', this.canvas);
    }
    this.video.hidden = true;
    this.canvas.hidden = false;
    const session = this._transport.session;
    const o = this.options;
    this._log(`WebCodecs renderer (connection ${session})`);
    this._wc = new WebCodecsRenderer(this.canvas, {
      renderDelay: o.renderDelay,
      maxLag: o.renderMaxLag,
      maxFrameQueue: o.maxFrameQueue,
      maxDecodeQueue: o.maxDecodeQueue,
      muted: this.video.muted,
    }, {
      onFatal: (m, e) => {
        if (session !== this._transport.session) return;
        this._error(m, true, e);
        this._teardownWc();
        this._transport.close(1000, 'decoder error, reconnecting');
      },
      onFirstFrame: () => {
        if (session !== this._transport.session) return;
        this._framesShown = true;
        this._transport.resetBackoff();
        if (this._ttff === null) {
          this._ttff = Math.round(performance.now() - this._connectT0);
          this._log(`first frame after ${this._ttff} ms`);
        }
        if (!this._pauseReasons.size) this._setState('playing');
      },
      log: (...a) => this._log(...a),
    });
  }

  _teardownWc() {
    this._wcPending = null;
    if (!this._wc) return;
    const w = this._wc.stats();
    this._frameBase.dropped += w.framesDropped;
    this._frameBase.decoded += w.framesDecoded;
    this._counters.stalls += w.stalls;
    this._counters.jumps += w.clockJumps;
    this._wc.destroy();
    this._wc = null;
    this.video.hidden = false;
    if (this.canvas) this.canvas.hidden = true;
  }

  /** @param {Uint8Array} data a binary message for the WebCodecs renderer */
  _onBinaryWc(data) {
    const wc = /** @type {WebCodecsRenderer} */ (this._wc);
    if (this._wcAwaitInit) {
      this._wcAwaitInit = false;
      this._tracks = parseInit(data);
      wc.setInit(data, this._stream);
      return;
    }
    try {
      const { start } = parseFragment(data, this._tracks);
      if (start !== null && this._lastFragStart !== null) {
        const d = start - this._lastFragStart;
        if (d > 0.01 && d < 10) this._fragDuration = this._fragDuration * 0.8 + d * 0.2;
      }
      if (start !== null) this._lastFragStart = start;
      wc.push(data);
    } catch (e) {
      this._error(`could not read a fragment: ${errText(e)}`, false, e);
    }
  }

  _watchFirstFrame() {
    const v = /** @type {any} */ (this.video);
    const session = this._transport.session;
    const mark = () => {
      if (session !== this._transport.session || this._framesShown) return;
      this._framesShown = true;
      this._settleAt = performance.now() + 1000;
      this._transport.resetBackoff(); // playback works: the next reconnect starts with the short delay
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
    // once the start burst is in, start at the top of the saw (see shouldStart)
    const b = v.buffered;
    const now = performance.now();
    mse.autoplayWaitSince ??= now;
    if (!shouldStart({
      ahead: b.end(b.length - 1) - v.currentTime,
      target: this._effectiveTarget(),
      fragmentDuration: this._fragDuration,
      waitedMs: now - mse.autoplayWaitSince,
      burstPending: this._liveStart !== null,
    })) return;
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
    this._teardownWc();
    // Start over on a fresh connection: the server sends the init segment and a keyframe again.
    this._transport.close(1000, 'media error, reconnecting');
  }

  // ------------------------------------------------------------------ playback control

  /** @returns {number} latency target in s (raised for long fragments) */
  _effectiveTarget() {
    return effectiveTarget(this.options.targetLatency, this._fragDuration, this._learner.target);
  }

  /** @returns {import('./latency-controller.js').LatencySettings} */
  _latencySettings() {
    const o = this.options;
    return {
      targetLatency: o.targetLatency,
      maxLatency: o.maxLatency,
      preferJumps: this._preferJumps,
      maxCatchUpRate: o.maxCatchUpRate,
      slowDownRate: o.slowDownRate,
    };
  }

  /** @returns {import('./latency-controller.js').PlaybackSample} */
  _sample(dt) {
    const v = this.video;
    return {
      dt,
      currentTime: v.currentTime,
      buffered: rangesOf(v.buffered),
      paused: v.paused,
      ended: v.ended,
      suspended: this._pauseReasons.size > 0,
      fragmentDuration: this._fragDuration,
      learnedTarget: Math.round(this._learner.target * 1000) / 1000,
    };
  }

  /**
   * Does a seek decided by the latency controller.
   * @param {import('./latency-controller.js').Seek} seek
   */
  _applySeek(seek) {
    const v = this.video;
    if (seek.kind === 'live') {
      const b = v.buffered;
      this._log(`jump to live (${seek.why}): ${v.currentTime.toFixed(2)} -> ${seek.to.toFixed(2)} (buffered end ${b.end(b.length - 1).toFixed(2)})`);
    } else if (seek.kind === 'playhead') {
      this._log(`playhead ${v.currentTime.toFixed(2)} outside buffered media (${seek.why}): seek to ${(seek.to - 0.001).toFixed(2)}`);
    } else {
      this._log(`${seek.why}: ${seek.kind === 'gap' ? 'jumping over it' : 'nudging'}`);
    }
    v.currentTime = seek.to;
    if (seek.jump) this._counters.jumps++;
    if (seek.kind === 'live' || seek.kind === 'playhead') this._ctl = { ...this._ctl, latencySamples: [] };
  }

  /**
   * @param {number|null} liveEdge server's live edge (from `start`) or null for the buffered end
   * @param {string} why
   * @returns {boolean} whether a seek was done
   */
  _seekLive(liveEdge, why) {
    const v = this.video;
    // just after a fragment arrived (the top of the saw): the target + half a fragment behind
    const to = liveEdgeTarget(rangesOf(v.buffered), v.currentTime, this._effectiveTarget() + this._fragDuration / 2, liveEdge);
    if (to === null) return false;
    this._applySeek({ to, kind: 'live', why, jump: true });
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
    const to = playheadTarget(rangesOf(v.buffered), v.currentTime, why, this._fragDuration, this._effectiveTarget());
    if (to === null) return false;
    this._applySeek({ to, kind: 'playhead', why, jump: true });
    return true;
  }

  /** After a pause or a server skip: back into buffered media, or to the live edge if far behind. */
  _resume() {
    const seek = resumeSeek(this._sample(0), this._latencySettings());
    if (seek) this._applySeek(seek);
  }

  _tick() {
    const now = performance.now();
    const v = this.video;
    const mse = this._mse;
    const dt = Math.min(1000, now - (this._lastTick || now));
    this._lastTick = now;
    this._learner.tick(now / 1000);
    if (this._settleAt && now >= this._settleAt && mse && !v.seeking && !v.paused) {
      // 1 s after the first frame: what piled up while the page started to play (decoder
      // set-up, the start burst) is skipped if well over the target, as after a hidden page
      this._settleAt = 0;
      this._resume();
    }
    // autoplay waits for the top of the saw (at most 2 s, shouldStart): decided here too, not only when a
    // fragment is appended, so a stream that stops or sends long fragments starts anyway
    if (mse && !mse.autoplayed) this._maybeAutoplay();
    if (mse && mse.sb && v.readyState > 0 && !v.seeking) this._control(dt);
    this._wc?.setMuted(v.muted);
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
      mse.trimBackBuffer(this.video.currentTime - this.options.backBuffer);
    }
  }

  /**
   * Stall/gap handling and live latency control, every 250 ms (decisions: latency-controller.js).
   * @param {number} dt ms since the previous tick (timers are throttled in hidden pages)
   */
  _control(dt) {
    const prev = this._ctl;
    const sample = this._sample(dt);
    const settings = this._latencySettings();
    const { state, seek, rate } = controlStep(prev, sample, settings);
    if (this.options.trace > 0) this._traceStep(prev, sample, settings, seek, rate);
    this._ctl = state;
    if (seek) this._applySeek(seek);
    if (rate !== null) this._setRate(rate);
  }

  /**
   * Debug only (`options.trace`): keeps one controller step, its input and its decision.
   * Controller states are never modified (controlStep returns new ones), so they are kept as is.
   */
  _traceStep(state, sample, settings, seek, rate) {
    if (!this.controlTrace) this.controlTrace = [];
    this.controlTrace.push({ t: performance.now(), state, sample, settings, seek, rate, arrivals: this._traceArrivals });
    this._traceArrivals = [];
    const extra = this.controlTrace.length - this.options.trace;
    if (extra > 0) this.controlTrace.splice(0, extra);
  }

  /** @param {number} r */
  _setRate(r) {
    const rate = Math.round(r * 100) / 100;
    if (this.video.playbackRate !== rate) this.video.playbackRate = rate;
  }

  _sendReport() {
    const v = this.video;
    if (this._wc) {
      const w = this._wc.stats();
      this._transport.send(reportMessage({
        currentTime: round3(w.currentTime ?? 0),
        bufferedEnd: round3(w.bufferedEnd ?? 0),
        stalls: this._counters.stalls + w.stalls,
        droppedFrames: this._frameBase.dropped + w.framesDropped,
      }));
      return;
    }
    if (!this._mse) return;
    const b = v.buffered;
    const wc = this._wallClock();
    this._transport.send(reportMessage({
      currentTime: round3(v.currentTime),
      bufferedEnd: b.length ? round3(b.end(b.length - 1)) : 0,
      stalls: this._counters.stalls,
      droppedFrames: this._frameBase.dropped + videoQuality(v).dropped,
      wallClockLatency: wc.wallClockLatency,
      wallClockSource: wc.wallClockSource,
    }));
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
    if (!this._transport.isOpen) return;
    if (this._transport.send({ type: want ? 'pause' : 'resume' })) {
      this._pauseSent = want;
      this._wc?.setSuspended(want);
      this._learner.resetArrivals();
      this._log(want ? `pause (${[...this._pauseReasons].join(', ')})` : 'resume');
      if (want && this._state !== 'unsupported') this._setState('suspended');
      else if (!want) this._setState(this._wc ? (this._framesShown ? 'playing' : 'loading') : this.video.paused ? 'loading' : 'playing');
    }
  }

  // ------------------------------------------------------------------ video events

  _onPlaying() {
    // after `eos` the video may still start (endOfStream lets the browser play a buffer too short
    // to start on, then its tail), also while reconnecting: the stream stays 'ended'
    if (!this._pauseReasons.size && !this._streamEnded) this._setState('playing');
  }

  _onWaiting() {
    if (this.video.seeking || !this._framesShown || !this._mse) return;
    if (this._pauseReasons.size) return;
    this._counters.stalls++;
    this._learner.stall(performance.now() / 1000);
    this._log(`stall: latency margin now ${this._learner.margin.toFixed(2)} s`);
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
