/**
 * Live-edge decisions (model: hls.js latency-controller), as pure functions of what the player
 * samples from the `<video>` and of its settings: where to jump (live edge, into buffered media,
 * over a gap), which `playbackRate` keeps the latency near its target. No DOM: the player applies
 * the returned action; the tests feed recorded samples.
 * @module fmp4-player/latency-controller
 */

/**
 * @typedef {object} LatencySettings
 * @property {number} targetLatency wanted latency in s
 * @property {number} [maxLatency] latency above which to jump (default from the target)
 * @property {boolean} preferJumps only jump, never change `playbackRate` (Safari)
 * @property {number} maxCatchUpRate highest `playbackRate` to catch up
 * @property {number} slowDownRate `playbackRate` when the buffer runs low
 */

/**
 * @typedef {object} PlaybackSample one look at the video, every 250 ms
 * @property {number} dt ms since the previous sample (timers are throttled in hidden pages)
 * @property {number} currentTime `video.currentTime`
 * @property {Array<[number, number]>} buffered `video.buffered` as [start, end] pairs
 * @property {boolean} paused `video.paused`
 * @property {boolean} [ended] `video.ended`
 * @property {boolean} [suspended] the player asked the server to pause (hidden page, …)
 * @property {number} fragmentDuration estimated fragment duration in s
 */

/**
 * @typedef {object} ControllerState what the controller remembers between samples
 * @property {number} lastCt currentTime of the previous sample
 * @property {number} stuckMs how long (ms) currentTime has not moved while playing
 * @property {boolean} catchingUp playing faster than 1×
 * @property {boolean} slowingDown playing slower than 1×
 * @property {number[]} latencySamples recent latencies (s), the averaging window
 */

/**
 * @typedef {object} Seek
 * @property {number} to the new currentTime
 * @property {'live'|'playhead'|'gap'|'nudge'} kind live edge / into buffered media / over a gap /
 *   a small step to wake a stuck decoder
 * @property {string} why for the log
 * @property {boolean} jump counted in the stats' `jumps` (all but `nudge`)
 */

/**
 * @typedef {object} ControlAction
 * @property {ControllerState} state the state for the next sample
 * @property {Seek|null} seek a seek to do, or null
 * @property {number|null} rate the `playbackRate` to set (2 decimals), or null to leave it
 */

/**
 * `video.buffered` as [start, end] pairs.
 * @param {TimeRanges} b
 * @returns {Array<[number, number]>}
 */
export function rangesOf(b) {
  /** @type {Array<[number, number]>} */
  const out = [];
  for (let i = 0; i < b.length; i++) out.push([b.start(i), b.end(i)]);
  return out;
}

/** @returns {ControllerState} the state before the first sample */
export function initialState() {
  return { lastCt: -1, stuckMs: 0, catchingUp: false, slowingDown: false, latencySamples: [] };
}

/**
 * The latency target in s: the wanted one, raised for long fragments (half a fragment + 0.5 s).
 * @param {number} targetLatency
 * @param {number} fragmentDuration
 */
export function effectiveTarget(targetLatency, fragmentDuration) {
  return Math.max(targetLatency, fragmentDuration / 2 + 0.5);
}

/**
 * Latency (s) above which the player jumps to the live edge instead of catching up.
 * @param {LatencySettings} settings
 * @param {number} fragmentDuration
 */
export function maxLatency(settings, fragmentDuration) {
  const t = effectiveTarget(settings.targetLatency, fragmentDuration);
  if (settings.maxLatency) return Math.max(settings.maxLatency, t + 0.5);
  return settings.preferJumps ? Math.max(2 * t, t + 1.5) : Math.max(3 * t, t + 2);
}

/**
 * Where a jump to the live edge lands: the end of the buffered media (or the server's live edge, if
 * earlier) minus the target, within the last buffered range.
 * @param {Array<[number, number]>} buffered
 * @param {number} currentTime
 * @param {number} target effective latency target (s)
 * @param {number|null} [liveEdge] the server's live edge (from `start`), or null
 * @returns {number|null} the new currentTime, or null (nothing buffered, or already within 0.25 s)
 */
export function liveEdgeTarget(buffered, currentTime, target, liveEdge = null) {
  if (!buffered.length) return null;
  const [start, bufferedEnd] = buffered[buffered.length - 1];
  let end = bufferedEnd;
  if (liveEdge !== null && Number.isFinite(liveEdge)) end = Math.min(end, liveEdge);
  const to = Math.max(start, end - target);
  if (Math.abs(currentTime - to) < 0.25) return null;
  return to;
}

/**
 * Where to move a playhead that is outside every buffered range (Chromium does not skip gaps): the
 * start of the next range ahead, else near the live edge.
 * A stall (`why === 'stalled'`) a little past the end of the buffered media is a live edge waiting
 * for data (Chromium plays audio on for up to ~3 s when video runs out: buffered, the intersection
 * of the tracks, then ends behind currentTime); seeking back would replay old media, again and
 * again while video is missing: only a playhead far past everything (the timeline went back) moves.
 * @param {Array<[number, number]>} buffered
 * @param {number} currentTime
 * @param {string} why `stalled`, `first fragment`, `resumed`
 * @param {number} fragmentDuration
 * @param {number} target effective latency target (s)
 * @returns {number|null} the new currentTime, or null (inside buffered media, or waiting for data)
 */
export function playheadTarget(buffered, currentTime, why, fragmentDuration, target) {
  if (!buffered.length) return null;
  const ct = currentTime;
  for (const [s, e] of buffered) if (ct >= s - 0.05 && ct <= e + 0.05) return null;
  for (const [s] of buffered) if (s > ct) return s + 0.001;
  const [lastStart, lastEnd] = buffered[buffered.length - 1];
  const overrun = ct - lastEnd;
  if (why === 'stalled' && overrun < Math.max(5, 4 * fragmentDuration)) return null;
  return Math.max(lastStart, lastEnd - target) + 0.001;
}

/**
 * After a pause (hidden page, server `skip`): back into buffered media, else to the live edge when
 * the latency is above the maximum.
 * @param {PlaybackSample} sample
 * @param {LatencySettings} settings
 * @returns {Seek|null}
 */
export function resumeSeek(sample, settings) {
  const { buffered, currentTime: ct, fragmentDuration: fd } = sample;
  const target = effectiveTarget(settings.targetLatency, fd);
  const fix = playheadTarget(buffered, ct, 'resumed', fd, target);
  if (fix !== null) return { to: fix, kind: 'playhead', why: 'resumed', jump: true };
  if (!buffered.length) return null;
  const latency = buffered[buffered.length - 1][1] - ct;
  if (!(latency > maxLatency(settings, fd))) return null;
  const to = liveEdgeTarget(buffered, ct, target);
  return to === null ? null : { to, kind: 'live', why: `latency ${latency.toFixed(2)} s`, jump: true };
}

/**
 * One step of stall/gap handling and live latency control (every 250 ms while the video has
 * data and is not seeking). Pure: the state is not modified, the next one is returned.
 * - stuck ≥ 500 ms while playing: outside buffered media → seek into it; at the end of a range
 *   followed by a gap → jump over the gap; stuck ≥ 1.5 s with > 1 s ahead → nudge by 0.1 s;
 * - paused or suspended: `playbackRate` 1;
 * - latency above the maximum: jump to the live edge, rate 1;
 * - else (unless `preferJumps`) average the latency over ~2 fragments (≥ 8 samples, once ≥ 4 are
 *   there) and, with hysteresis: above target + 0.3 s → faster (1 + 0.15 × excess, ≥ 1.02, ≤
 *   maxCatchUpRate) until within 0.05 s; below target − min(0.5, target/2) → slowDownRate until
 *   within 0.1 s; else 1.
 * @param {ControllerState} state
 * @param {PlaybackSample} sample
 * @param {LatencySettings} settings
 * @returns {ControlAction}
 */
export function controlStep(state, sample, settings) {
  const { buffered: b, currentTime: ct, fragmentDuration: fd } = sample;
  const playing = !sample.paused && !sample.ended;
  const next = { ...state, latencySamples: state.latencySamples };
  next.stuckMs = playing && ct === state.lastCt ? state.stuckMs + sample.dt : 0;
  next.lastCt = ct;
  /** @param {Seek|null} seek @param {number|null} rate */
  const act = (seek, rate) => ({ state: next, seek, rate: rate === null ? null : Math.round(rate * 100) / 100 });
  if (!b.length) return act(null, null);
  const target = effectiveTarget(settings.targetLatency, fd);
  if (next.stuckMs >= 500) {
    const fix = playheadTarget(b, ct, 'stalled', fd, target);
    if (fix !== null) {
      next.stuckMs = 0;
      next.latencySamples = [];
      return act({ to: fix, kind: 'playhead', why: 'stalled', jump: true }, null);
    }
    // inside a range: a gap right after it, or a decoder that needs a nudge
    for (let i = 0; i < b.length - 1; i++) {
      if (ct >= b[i][0] && ct <= b[i][1] + 0.05 && b[i][1] - ct < 0.5) {
        next.stuckMs = 0;
        return act({ to: b[i + 1][0] + 0.001, kind: 'gap', why: `gap ${b[i][1].toFixed(2)}..${b[i + 1][0].toFixed(2)}`, jump: true }, null);
      }
    }
    if (next.stuckMs >= 1500 && b[b.length - 1][1] - ct > 1) {
      next.stuckMs = 0;
      return act({ to: ct + 0.1, kind: 'nudge', why: `playhead stuck at ${ct.toFixed(2)} with data ahead`, jump: false }, null);
    }
  }
  if (!playing || sample.suspended) return act(null, 1);
  const latency = b[b.length - 1][1] - ct;
  if (latency > maxLatency(settings, fd)) {
    const to = liveEdgeTarget(b, ct, target);
    if (to === null) return act(null, 1);
    next.latencySamples = [];
    return act({ to, kind: 'live', why: `latency ${latency.toFixed(2)} s`, jump: true }, 1);
  }
  if (settings.preferJumps) return act(null, null);
  const windowLen = Math.max(8, Math.ceil((2 * fd) / 0.25));
  next.latencySamples = [...state.latencySamples, latency].slice(-windowLen);
  if (next.latencySamples.length < 4) return act(null, null);
  const avg = next.latencySamples.reduce((a, x) => a + x, 0) / next.latencySamples.length;
  const d = avg - target;
  if (state.catchingUp ? d > 0.05 : d > 0.3) {
    next.catchingUp = true;
    next.slowingDown = false;
    return act(null, Math.min(settings.maxCatchUpRate, 1 + Math.max(0.02, d * 0.15)));
  }
  if (state.slowingDown ? d < -0.1 : d < -Math.min(0.5, target / 2)) {
    next.slowingDown = true;
    next.catchingUp = false;
    return act(null, settings.slowDownRate);
  }
  next.catchingUp = false;
  next.slowingDown = false;
  return act(null, 1);
}
