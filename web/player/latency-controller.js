/**
 * Live-edge decisions (model: hls.js latency-controller), as pure functions of what the player
 * samples from the `<video>` and of its settings: where to jump (live edge, into buffered media,
 * over a gap), which `playbackRate` keeps the latency near its target. No DOM: the player applies
 * the returned action; the tests feed recorded samples.
 * @module fmp4-player/latency-controller
 */

/**
 * @typedef {object} LatencySettings
 * @property {number|null} targetLatency wanted latency in s, or null (the default): learned from
 *   what the player sees ({@link TargetLearner}, passed in each sample as `learnedTarget`)
 * @property {number} [maxLatency] latency above which to jump (default from the target)
 * @property {boolean} preferJumps only jump, never change `playbackRate` (Safari)
 * @property {number} maxCatchUpRate highest `playbackRate` to catch up
 * @property {number} slowDownRate lowest `playbackRate`, when the buffer runs low
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
 * @property {number} [learnedTarget] the {@link TargetLearner}'s target in s (used when
 *   `settings.targetLatency` is null)
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

/** Least buffer (s) kept beyond half a fragment, whatever the target asked. */
export const MIN_MARGIN = 0.1;

/**
 * The latency target in s (latency: end of the buffered media − currentTime).
 * - `targetLatency` set (the `target-latency` attribute): that, but at least half a fragment +
 *   {@link MIN_MARGIN} (fragments arrive whole: the buffer saws between L − fd/2 and L + fd/2
 *   around its average L);
 * - null: the learned one (`learnedTarget`, see {@link TargetLearner}), or, before anything was
 *   learned, half a fragment + {@link LEARN_DEFAULTS}.margin + {@link LEARN_DEFAULTS}.jitter.
 * @param {number|null|undefined} targetLatency
 * @param {number} fragmentDuration s
 * @param {number} [learnedTarget] s
 */
export function effectiveTarget(targetLatency, fragmentDuration, learnedTarget) {
  if (targetLatency && targetLatency > 0) return Math.max(targetLatency, fragmentDuration / 2 + MIN_MARGIN);
  if (Number.isFinite(learnedTarget) && /** @type {number} */ (learnedTarget) > 0) return /** @type {number} */ (learnedTarget);
  return fragmentDuration / 2 + LEARN_DEFAULTS.margin + LEARN_DEFAULTS.jitter;
}

/**
 * The controller's dead band around the target (s): above target + band it catches up, below
 * target − band it slows down; once moving it goes on until within band/4.
 * @param {number} target s
 */
export function deadBand(target) {
  return Math.max(0.04, 0.15 * target);
}

/**
 * The lowest latency (s) the controller aims at, just before a fragment arrives: the target less
 * half a fragment (the target is the average of the saw), at least {@link MIN_MARGIN} / 2.
 * @param {number} target s
 * @param {number} fragmentDuration s
 */
export function lowWaterTarget(target, fragmentDuration) {
  return Math.max(MIN_MARGIN / 2, target - fragmentDuration / 2);
}

/** ms a player waits at most for {@link startAhead} of buffer before it plays anyway (a stream
 * that stopped, or fragments longer than the wait, must still start). */
export const MAX_START_WAIT_MS = 2000;

/**
 * Buffer (s) ahead of the playhead with which playback starts: the top of the saw the fragments
 * make (the target + half a fragment), as after a jump to the live edge, so that the trough
 * before the next fragment is the low-water target. Started with less (a viewer that joined just
 * after a keyframe gets a short start burst: measured, a 700 ms stream's 0.3 s burst), the first
 * trough underflows before the controller has the four samples it steers on.
 * @param {number} target effective latency target (s)
 * @param {number} fragmentDuration s
 */
export function startAhead(target, fragmentDuration) {
  return target + fragmentDuration / 2;
}

/**
 * Whether a player that has media but has not started yet starts now (autoplay).
 * - the start burst is still arriving (`burstPending`): wait, the rest comes within ms and
 *   the player then jumps to the live edge;
 * - else play once {@link startAhead} is buffered (20 ms of slack for the rounding of a
 *   jump), or after {@link MAX_START_WAIT_MS} whatever is buffered.
 * @param {{ahead: number, target: number, fragmentDuration: number, waitedMs: number,
 *   burstPending: boolean}} s `ahead`: buffered end − currentTime (s); `waitedMs`: since the
 *   first media was buffered
 * @returns {boolean}
 */
export function shouldStart(s) {
  if (s.waitedMs >= MAX_START_WAIT_MS) return true;
  if (s.burstPending) return false;
  return s.ahead >= startAhead(s.target, s.fragmentDuration) - 0.02;
}

/**
 * The low water of the latency over a window of samples: the lowest sample, or the average less
 * half a fragment if that is lower (samples every 250 ms can miss the troughs of the saw, always
 * when the fragment duration is a multiple of 250 ms; over whole periods the average is exact).
 * @param {number[]} samples latencies (s)
 * @param {number} fragmentDuration s
 */
export function lowWater(samples, fragmentDuration) {
  const avg = samples.reduce((a, x) => a + x, 0) / samples.length;
  return Math.min(Math.min(...samples), avg - fragmentDuration / 2);
}

/**
 * Samples (250 ms each) the controller looks back over: two fragments, at least 4 (1 s).
 * @param {number} fragmentDuration s
 */
export function windowLength(fragmentDuration) {
  return Math.max(4, Math.ceil((2 * fragmentDuration) / 0.25));
}

/**
 * Latency (s) above which the player jumps to the live edge instead of catching up with
 * `playbackRate`: the `maxLatency` setting, else 3 × the target (at least target + 1 s; with
 * `preferJumps` 2 × the target, at least target + 1.5 s).
 * @param {LatencySettings} settings
 * @param {number} fragmentDuration
 * @param {number} [learnedTarget]
 */
export function maxLatency(settings, fragmentDuration, learnedTarget) {
  const t = effectiveTarget(settings.targetLatency, fragmentDuration, learnedTarget);
  if (settings.maxLatency) return Math.max(settings.maxLatency, t + 0.5);
  return settings.preferJumps ? Math.max(2 * t, t + 1.5) : Math.max(3 * t, t + 1);
}

/**
 * @typedef {object} LearnOptions
 * @property {number} window s of fragment arrivals the jitter is measured over
 * @property {number} lookBack s: a fragment's lateness is measured against the earliest-arriving
 *   fragment (smallest arrival − media end) of this many s before it (a slow drift between the
 *   media clock and the wall clock is not jitter: the rate control follows it)
 * @property {number} maxJitter s: a fragment later than this is an outage (a publisher that
 *   stopped, a network that dropped out), not jitter: left out of the jitter (if playback
 *   stalled meanwhile, the stall raised the margin)
 * @property {number} warmUp s after a reset whose arrivals are not the stream's jitter (a page
 *   starting to play, the server sending what it held back): until later ones are seen, the
 *   jitter is at least the largest of their lateness (≤ `maxJitter`), so that a stream whose
 *   fragments come irregularly from the start is covered from the start; then they are left out
 * @property {number} margin s of buffer beyond fragment and jitter to start with (and the least):
 *   Chromium's renderers underflow (`waiting`, readyState 2) with 0.08–0.17 s still buffered
 *   (measured, issue 14), so the least buffer kept is above that
 * @property {number} maxMargin s, the most a run of stalls raises the margin to
 * @property {number} stallRaise s added to the margin per stall (at least; or half the margin)
 * @property {number} calmPeriod s without a stall after which the margin is lowered (× 0.75)
 * @property {number} jitter s of arrival jitter assumed before two arrivals were seen
 * @property {number} maxTarget s, the highest learned target
 */

/** @type {LearnOptions} */
export const LEARN_DEFAULTS = Object.freeze({
  window: 15, warmUp: 4, lookBack: 2, maxJitter: 0.5, margin: 0.2, maxMargin: 2, stallRaise: 0.15, calmPeriod: 10, jitter: 0.1, maxTarget: 5,
});

/**
 * Learns the latency target from what the player sees (no DOM; times in s on one clock, e.g.
 * `performance.now() / 1000`):
 *   target = fragment duration / 2 + arrival jitter + margin
 * - fragment duration: median of the last 16 fragments' durations (`trun` sample durations);
 * - arrival jitter: each fragment's lateness = its (arrival time − media end time) minus the
 *   smallest of that over the `lookBack` s before it (how much later than the best recent one it
 *   came); the jitter is the 95th percentile of the lateness over the last `window` s (the max
 *   under 20 fragments; lateness over `maxJitter` is an outage, left out). The buffer must cover
 *   it or playback stalls. A burst of cached fragments
 *   at start is left out; the first `warmUp` s after a reset only count until two later
 *   arrivals are seen (the start is covered, a publisher's catching up does not linger); a rarer
 *   late fragment is a stall, which raises the margin;
 * - margin: `margin` at first; every stall raises it (+ max(`stallRaise`, margin / 2), at most
 *   `maxMargin`); every `calmPeriod` s without a stall lowers it (× 0.75, at least `margin`).
 * The arrivals are forgotten (`resetArrivals`) when the media timeline and the wall clock part:
 * a new generation, a server skip, a pause or a reconnect.
 */
export class TargetLearner {
  /** @param {Partial<LearnOptions>} [options] */
  constructor(options = {}) {
    /** @type {LearnOptions} */
    this.options = { ...LEARN_DEFAULTS, ...options };
    this.margin = this.options.margin;
    this.stalls = 0;
    /** @type {number|null} */
    this.calmSince = null;
    /** @type {Array<{t: number, x: number, late: number}>} */
    this.arrivals = [];
    /** @type {Array<{t: number, x: number, late: number}>} arrivals of the warm-up */
    this.warm = [];
    /** @type {number[]} */
    this.durations = [];
    /** @type {number|null} time of the first arrival after a reset */
    this.resetAt = null;
  }

  resetArrivals() {
    this.arrivals = [];
    this.warm = [];
    this.resetAt = null;
  }

  /**
   * A fragment arrived.
   * @param {number} now s
   * @param {number} start media time of its first sample (s, `tfdt`)
   * @param {number} duration s (sum of its sample durations), 0 if unknown
   * @param {boolean} [burst] part of a `start` burst (cached, sent at once): duration only
   */
  fragment(now, start, duration, burst = false) {
    if (duration > 0 && duration < 30) {
      this.durations.push(duration);
      if (this.durations.length > 16) this.durations.shift();
    }
    if (this.calmSince === null) this.calmSince = now;
    if (burst || !Number.isFinite(start)) return;
    if (this.resetAt === null || this.resetAt === undefined) this.resetAt = now;
    const x = now - (start + Math.max(0, duration));
    let best = x;
    for (const list of [this.arrivals, this.warm]) {
      for (let i = list.length - 1; i >= 0 && list[i].t >= now - this.options.lookBack; i--) best = Math.min(best, list[i].x);
    }
    if (now - this.resetAt < this.options.warmUp) {
      this.warm.push({ t: now, x, late: x - best });
      if (this.warm.length > 256) this.warm.shift();
      return;
    }
    this.arrivals.push({ t: now, x, late: x - best });
    if (this.arrivals.length >= 2) this.warm = [];
    const from = now - this.options.window;
    let i = 0;
    while (i < this.arrivals.length && this.arrivals[i].t < from) i++;
    if (i) this.arrivals.splice(0, i);
  }

  /** Playback stalled (waiting for data while playing). @param {number} now s */
  stall(now) {
    this.stalls++;
    const o = this.options;
    this.margin = Math.min(o.maxMargin, this.margin + Math.max(o.stallRaise, this.margin / 2));
    this.calmSince = now;
  }

  /**
   * Raises the margin to at least `margin` for now (calm periods lower it again): a new
   * publisher or stream (new init segment) starts irregularly.
   * @param {number} now s
   * @param {number} margin s
   */
  raise(now, margin) {
    this.margin = Math.min(this.options.maxMargin, Math.max(this.margin, margin));
    this.calmSince = now;
  }

  /** Called on every tick: lowers the margin after calm periods. @param {number} now s */
  tick(now) {
    if (this.calmSince === null) return;
    const o = this.options;
    while (now - this.calmSince >= o.calmPeriod) {
      this.margin = Math.max(o.margin, this.margin * 0.75);
      this.calmSince += o.calmPeriod;
    }
  }

  /** @returns {number} fragment duration (s): median of the recent ones, 0 if none yet */
  get fragmentDuration() {
    return median(this.durations);
  }

  /** @returns {number} arrival jitter (s) over the window (the default before 2 arrivals) */
  get jitter() {
    const o = this.options;
    if (this.arrivals.length < 2) return Math.max(o.jitter, lateness95(this.warm, o.maxJitter) ?? 0);
    return lateness95(this.arrivals, o.maxJitter) ?? o.jitter;
  }

  /** @returns {number} the learned target (s) */
  get target() {
    const t = this.fragmentDuration / 2 + this.jitter + this.margin;
    return Math.min(this.options.maxTarget, t);
  }
}

/**
 * The end of what a `<video>` can play of a stream with several tracks in one SourceBuffer:
 * `buffered` is the intersection of the tracks' ranges (MSE, SourceBuffer `buffered`), so its
 * end is the smallest of the tracks' ends. Where each track comes in its own `moof` (mp4mux,
 * ffmpeg `separate_moof`) with its own fragment length (measured, examples/testpattern.sh:
 * video 0.37–0.43 s, AAC 0.683 s), that end moves in steps neither track shows alone; the
 * learner must see those steps, not the video's (the audio's end starved playback with the
 * video's 0.25 s ahead: issue 14). Fed each segment's track ends, {@link JointEnd#add} returns
 * how that end moved.
 * - the first segment (of a timeline) is a step of its own: from its earliest track start to its
 *   smallest track end (a start burst of one long fragment must teach the learner its length);
 * - a track counts from its first segment on (an init may list a track that never comes);
 * - a track whose end is more than `staleAfter` s behind the others' has stopped: left out;
 * - a track end that goes back by more than 1 s (a new timeline) starts over.
 */
export class JointEnd {
  /** @param {number} [staleAfter] s */
  constructor(staleAfter = 5) {
    this.staleAfter = staleAfter;
    /** @type {Map<number, number>} track_ID → end (s) */
    this.ends = new Map();
    /** @type {number|null} */
    this.end = null;
  }

  /**
   * @param {Array<[number, number, number?]>} trackEnds [track_ID, end, start] (s) of one
   *   segment's track fragments (`parseFragment`; start optional)
   * @returns {{start: number, duration: number}|null} the step the joint end made (from `start`,
   *   `duration` s), or null if it did not move forward
   */
  add(trackEnds) {
    for (const [id, e] of trackEnds) {
      const prev = this.ends.get(id);
      if (prev !== undefined && e < prev - 1) {
        this.ends.clear();
        this.end = null;
      }
      this.ends.set(id, Math.max(e, this.ends.get(id) ?? -Infinity));
    }
    if (!this.ends.size) return null;
    const newest = Math.max(...this.ends.values());
    let end = Infinity;
    for (const e of this.ends.values()) if (e >= newest - this.staleAfter) end = Math.min(end, e);
    const prev = this.end;
    this.end = end;
    if (prev === null) {
      const starts = trackEnds.map((t) => t[2]).filter((x) => Number.isFinite(x));
      const start = starts.length ? Math.min(.../** @type {number[]} */ (starts)) : NaN;
      return end > start ? { start, duration: end - start } : null;
    }
    if (!(end > prev)) return null;
    return { start: prev, duration: end - prev };
  }
}

/**
 * The 95th percentile of the lateness of `arrivals` (the max under 20), outages over `max` left out.
 * @param {Array<{late: number}>} arrivals
 * @param {number} max s
 * @returns {number|null} s, null if none
 */
function lateness95(arrivals, max) {
  const xs = arrivals.map((a) => a.late).filter((x) => x <= max).sort((a, b) => a - b);
  if (!xs.length) return null;
  return xs.length < 20 ? xs[xs.length - 1] : xs[Math.ceil(0.95 * (xs.length - 1))];
}

/** @param {number[]} xs @returns {number} */
function median(xs) {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Where a jump to the live edge lands: the end of the buffered media (or the server's live edge, if
 * earlier) minus `target`, within the last buffered range. The callers pass the effective target +
 * half a fragment: a jump lands where the saw the fragments make is highest (just after a
 * fragment), so that its low end is the low-water target.
 * @param {Array<[number, number]>} buffered
 * @param {number} currentTime
 * @param {number} target distance (s) behind the end
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
 * A playhead a little past the end of the buffered media (`stalled`, `resumed`) is a live edge
 * waiting for data (Chromium plays audio on for up to ~3 s when video runs out: buffered, the
 * intersection of the tracks, then ends behind currentTime; Firefox stops just past the end while
 * the page is hidden); seeking back would replay old media: only a playhead far past everything
 * (the timeline went back) moves.
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
  if ((why === 'stalled' || why === 'resumed') && overrun < Math.max(5, 4 * fragmentDuration)) return null;
  return Math.max(lastStart, lastEnd - target) + 0.001;
}

/**
 * After a pause (hidden page, long pause, server `skip`): back into buffered media ahead, else to
 * the live edge when the latency is above the target by more than max(0.25 s, a fragment). Never
 * back in time: a playhead waiting at the end of the data stays (the server sends new data).
 * @param {PlaybackSample} sample
 * @param {LatencySettings} settings
 * @returns {Seek|null}
 */
export function resumeSeek(sample, settings) {
  const { buffered, currentTime: ct, fragmentDuration: fd } = sample;
  const target = effectiveTarget(settings.targetLatency, fd, sample.learnedTarget);
  const fix = playheadTarget(buffered, ct, 'resumed', fd, target);
  if (fix !== null) return { to: fix, kind: 'playhead', why: 'resumed', jump: true };
  if (!buffered.length) return null;
  const latency = buffered[buffered.length - 1][1] - ct;
  if (!(latency > target + Math.max(0.25, fd))) return null;
  const to = liveEdgeTarget(buffered, ct, target + fd / 2);
  if (to === null || to < ct) return null;
  return { to, kind: 'live', why: `resumed, latency ${latency.toFixed(2)} s`, jump: true };
}

/**
 * One step of stall/gap handling and live latency control (every 250 ms while the video has
 * data and is not seeking). Pure: the state is not modified, the next one is returned.
 * - stuck ≥ 500 ms while playing: outside buffered media → seek into it; at the end of a range
 *   followed by a gap → jump over the gap; stuck ≥ 1.5 s with > 1 s ahead → nudge by 0.1 s;
 * - paused or suspended: `playbackRate` 1;
 * - latency above {@link maxLatency}: jump to the live edge, rate 1;
 * - else (unless `preferJumps`) estimate the low water of the last {@link windowLength} samples
 *   ({@link lowWater}: the troughs of the saw the fragments make, where a stall would happen) and
 *   steer it to {@link lowWaterTarget} (target − half a fragment), with hysteresis (`d` = low
 *   water − low-water target, band = {@link deadBand}(target)):
 *   d > band → faster, 1 + 0.3·d (at least 1.02, at most maxCatchUpRate) until d ≤ band/4;
 *   d < −band → slower, 1 − 0.3·|d| (at least 0.02 off, at most down to slowDownRate) until
 *   d ≥ −band/4; else 1.
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
  const target = effectiveTarget(settings.targetLatency, fd, sample.learnedTarget);
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
  if (latency > maxLatency(settings, fd, sample.learnedTarget)) {
    const to = liveEdgeTarget(b, ct, target + fd / 2);
    if (to === null) return act(null, 1);
    next.latencySamples = [];
    return act({ to, kind: 'live', why: `latency ${latency.toFixed(2)} s`, jump: true }, 1);
  }
  if (settings.preferJumps) return act(null, null);
  next.latencySamples = [...state.latencySamples, latency].slice(-windowLength(fd));
  if (next.latencySamples.length < 4) return act(null, null);
  const d = lowWater(next.latencySamples, fd) - lowWaterTarget(target, fd);
  const band = deadBand(target);
  if (state.catchingUp ? d > band / 4 : d > band) {
    next.catchingUp = true;
    next.slowingDown = false;
    return act(null, Math.min(settings.maxCatchUpRate, 1 + Math.max(0.02, d * 0.3)));
  }
  if (state.slowingDown ? d < -band / 4 : d < -band) {
    next.slowingDown = true;
    next.catchingUp = false;
    return act(null, Math.max(settings.slowDownRate, 1 - Math.max(0.02, -d * 0.3)));
  }
  next.catchingUp = false;
  next.slowingDown = false;
  return act(null, 1);
}
