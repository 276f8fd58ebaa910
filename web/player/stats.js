/**
 * Playback statistics helpers: received bytes over a sliding window (bitrate) and the video's
 * decoded/dropped frame counts.
 * @module fmp4-player/stats
 */

/** Received media bytes with their arrival times, for the bitrate over the last 5 s. */
export class ByteRateMeter {
  constructor() {
    /** @type {Array<[number, number]>} [time (ms), bytes] */
    this.rx = [];
  }

  reset() {
    this.rx = [];
  }

  /**
   * @param {number} now ms (`performance.now()`)
   * @param {number} bytes
   */
  add(now, bytes) {
    this.rx.push([now, bytes]);
    while (this.rx.length && this.rx[0][0] < now - 6000) this.rx.shift();
  }

  /**
   * Bytes per second over the last 5 s (or since `since`, if more recent; at least 0.5 s).
   * @param {number} now ms
   * @param {number} since ms, start of the connection (0: unknown)
   * @returns {number}
   */
  bitrate(now, since) {
    const windowStart = now - 5000;
    let bytes = 0;
    for (const [t, n] of this.rx) if (t >= windowStart) bytes += n;
    const span = Math.min(5, Math.max(0.5, (now - (since || now)) / 1000));
    return Math.round(bytes / span);
  }
}

/**
 * Decoded and dropped video frames of an element (`getVideoPlaybackQuality`, else WebKit's
 * counters).
 * @param {HTMLVideoElement} video
 * @returns {{dropped: number, decoded: number}}
 */
export function videoQuality(video) {
  const v = /** @type {any} */ (video);
  if (typeof v.getVideoPlaybackQuality === 'function') {
    const q = v.getVideoPlaybackQuality();
    return { dropped: q.droppedVideoFrames, decoded: q.totalVideoFrames };
  }
  return { dropped: v.webkitDroppedFrameCount ?? 0, decoded: v.webkitDecodedFrameCount ?? 0 };
}
