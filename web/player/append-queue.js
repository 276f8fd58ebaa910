/**
 * The SourceBuffer append queue (model: hls.js buffer-operation-queue): one MediaSource +
 * SourceBuffer attached to a video; operations (append, remove, changeType, calls such as
 * endOfStream) run one at a time and the next starts on `updateend`; `QuotaExceededError` evicts
 * media behind the playhead (cut at a keyframe) and retries the same append; old media is trimmed.
 * @module fmp4-player/append-queue
 */

import { mediaSourceClass } from './codecs.js';
import { errText } from './util.js';

/**
 * @typedef {{type: 'append', data: Uint8Array, onDone?: () => void, quotaRetries?: number}
 *   | {type: 'remove', start: number, end: number, onDone?: () => void}
 *   | {type: 'changeType', mime: string}
 *   | {type: 'call', name: string, fn: () => void}} QueueOp
 */

/**
 * One MediaSource + SourceBuffer attached to the video, with a queue of SourceBuffer operations
 * that advances only on `updateend` (model: hls.js buffer-operation-queue). Data is never dropped
 * nor reordered; `QuotaExceededError` evicts media behind the playhead and retries the same append.
 */
export class MsePipeline {
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
    /** @type {number|undefined} performance.now() of the first autoplay attempt (player.js) */
    this.autoplayWaitSince = undefined;
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

  /**
   * Removes the media before `limit` (s), cut at a keyframe, unless a removal is already queued or
   * less than 2 s would go.
   * @param {number} limit e.g. currentTime - backBuffer
   */
  trimBackBuffer(limit) {
    const sb = this.sb;
    if (!sb || this.ops.some((op) => op.type === 'remove')) return;
    const b = sb.buffered;
    const removeEnd = this.safeRemoveEnd(limit) ?? limit;
    if (b.length && b.start(0) < removeEnd - 2) {
      this.push({ type: 'remove', start: 0, end: removeEnd });
    }
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
