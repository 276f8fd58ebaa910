/**
 * Minimal ISO BMFF reading: track timescales from the init segment and the start (tfdt) of a
 * fragment, so the player knows where each fragment lands on the timeline.
 * @module fmp4-player/bmff
 */

/**
 * The boxes between `start` and `end` (a truncated box ends the walk; ISO/IEC 14496-12 §4.2:
 * 32-bit size, 64-bit `largesize` when size is 1, to the end when size is 0).
 * @param {Uint8Array} u8
 * @param {number} start
 * @param {number} end
 * @returns {Generator<{type: string, start: number, body: number, end: number}>} offsets into
 *   `u8`: `start` of the box header, `body` after the header, `end` after the box
 */
export function* boxes(u8, start, end) {
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
    yield { type, start: off, body: off + hdr, end: off + size };
    off += size;
  }
}

/**
 * The first child box of a type.
 * @param {Uint8Array} u8
 * @param {{body: number, end: number}} box
 * @param {string} type
 */
export function findChild(u8, box, type) {
  for (const b of boxes(u8, box.body, box.end)) if (b.type === type) return b;
  return null;
}

/**
 * @typedef {object} TrackInfo
 * @property {number} id track_ID
 * @property {number} timescale media timescale (ticks per second)
 * @property {string} handler `vide`, `soun`, …
 * @property {number} defaultFlags `trex` default_sample_flags
 * @property {number} [defaultDuration] `trex` default_sample_duration (ticks)
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
        if (timescale > 0) tracks.set(id, { id, timescale, handler, defaultFlags: prev?.defaultFlags ?? 0, defaultDuration: prev?.defaultDuration ?? 0 });
      } else if (box.type === 'mvex') {
        for (const trex of boxes(u8, box.body, box.end)) {
          if (trex.type !== 'trex' || trex.body + 24 > trex.end) continue;
          const id = dv.getUint32(trex.body + 4);
          const duration = dv.getUint32(trex.body + 12);
          const flags = dv.getUint32(trex.body + 20);
          const t = tracks.get(id);
          if (t) {
            t.defaultFlags = flags;
            t.defaultDuration = duration;
          } else tracks.set(id, { id, timescale: 0, handler: '', defaultFlags: flags, defaultDuration: duration });
        }
      }
    }
  }
  for (const [id, t] of tracks) if (!t.timescale) tracks.delete(id);
  return tracks;
}

/**
 * ISO/IEC 14496-12 §8.16.5 ProducerReferenceTimeBox (`prft`): the wall-clock (NTP) time of the
 * sample of `referenceTrackId` whose media time is `mediaTime`.
 * @typedef {object} ProducerReferenceTime
 * @property {number} referenceTrackId reference_track_ID
 * @property {number} flags the box flags: what the time is (0: capture / input to the encoder,
 *   1: encoder output, 2: movie fragment finalised, 4: movie fragment written, 8: arbitrary but
 *   consistent); websocketsink writes its own with 4 (arrival at the server)
 * @property {number} ntpSeconds ntp_timestamp as seconds since 1900-01-01 (RFC 5905 §6)
 * @property {number} unixMs the same as ms since 1970-01-01 (`Date.now()` scale)
 * @property {number} mediaTime media_time in seconds (track timescale), or NaN if the track is
 *   unknown
 */

/** Seconds from the NTP epoch (1900) to the Unix epoch (1970), RFC 5905 §6. */
export const NTP_UNIX_OFFSET = 2208988800;

/** Media seconds an encoder's prft keeps precedence over the server's (see `prftFor`). */
export const ENCODER_PRFT_HOLD = 10;

/**
 * The prft that dates media time `t`: the latest at or before `t`, except that an encoder's
 * (capture time) wins over a later server's (websocketsink's arrival time, flags 4) while it is
 * less than ENCODER_PRFT_HOLD media seconds older. An encoder that stamps only some fragments
 * (ffmpeg `-write_prft` with `frag_every_frame` stamps the video ones) gets server stamps on
 * the rest; without this the latency would jump between capture → screen and arrival → screen.
 * @template P
 * @param {P[]} list the prfts received, in any order
 * @param {number} t media time (s) of the frame on screen
 * @param {(p: P) => number} timeOf a prft's media time (s)
 * @param {(p: P) => ('encoder'|'server')} sourceOf whose prft
 * @returns {P|null} null when none is at or before `t`
 */
export function prftFor(list, t, timeOf, sourceOf) {
  let best = null;
  let encoder = null;
  for (const p of list) {
    const pt = timeOf(p);
    if (pt > t + 1e-3) continue;
    if (!best || pt > timeOf(best)) best = p;
    if (sourceOf(p) === 'encoder' && (!encoder || pt > timeOf(encoder))) encoder = p;
  }
  if (best && encoder && timeOf(best) - timeOf(encoder) < ENCODER_PRFT_HOLD) return encoder;
  return best;
}

/**
 * Start time, duration, keyframe flag and producer reference time of a media segment:
 * - `start`: the earliest `tfdt` over its track fragments (seconds);
 * - `duration`: the sum of the sample durations (`trun` per-sample, else `tfhd` default, else
 *   `trex` default) of its video track fragment (the first track fragment without video), in
 *   seconds; 0 if unknown;
 * - `keyframe`: whether the video track's first sample is a sync sample
 *   (`sample_is_non_sync_sample` clear, from `trun` first-sample/per-sample flags, else `tfhd`, else
 *   `trex` defaults). In an audio-only stream every segment is a keyframe; in a stream with video, a
 *   segment without video (mp4mux and ffmpeg `separate_moof` write one moof per track) is not:
 *   removing media up to its start could cut a GOP;
 * - `prft`: the last top-level `prft` before the `moof`, or null;
 * - `trackEnds`: [track_ID, `tfdt` + sample durations, `tfdt`] (s) of each track fragment with a
 *   `tfdt`: where each track's media ends after this segment, and where it starts.
 * @param {Uint8Array} u8 `[styp/prft/emsg]` + moof + mdat
 * @param {Map<number, TrackInfo>} tracks from {@link parseInit}
 * @returns {{ start: number|null, duration: number, keyframe: boolean, hasVideo: boolean,
 *   prft: ProducerReferenceTime|null, trackEnds: Array<[number, number, number]> }}
 */
export function parseFragment(u8, tracks) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  let start = null;
  let keyframe = true;
  let duration = 0;
  let durationFromVideo = false;
  let hasVideo = false;
  /** @type {ProducerReferenceTime|null} */
  let prft = null;
  /** @type {Array<[number, number, number]>} */
  const trackEnds = [];
  for (const t of tracks.values()) if (t.handler === 'vide') keyframe = false; // until a video traf says so
  for (const moof of boxes(u8, 0, u8.length)) {
    if (moof.type === 'prft') {
      prft = parsePrft(u8, moof, tracks);
      continue;
    }
    if (moof.type !== 'moof') continue;
    for (const traf of boxes(u8, moof.body, moof.end)) {
      if (traf.type !== 'traf') continue;
      const tfhd = findChild(u8, traf, 'tfhd');
      const tfdt = findChild(u8, traf, 'tfdt');
      if (!tfhd) continue;
      const trackId = dv.getUint32(tfhd.body + 4);
      const track = tracks.get(trackId);
      if (!track) continue;
      /** @type {number|null} */
      let tfdtTime = null;
      if (tfdt) {
        const ticks = u8[tfdt.body] === 1 ? Number(dv.getBigUint64(tfdt.body + 4)) : dv.getUint32(tfdt.body + 4);
        tfdtTime = ticks / track.timescale;
        if (start === null || tfdtTime < start) start = tfdtTime;
      }
      const isVideo = track.handler === 'vide';
      const tfFlags = dv.getUint32(tfhd.body) & 0xffffff;
      let p = tfhd.body + 8;
      if (tfFlags & 0x1) p += 8;
      if (tfFlags & 0x2) p += 4;
      const defDuration = tfFlags & 0x8 ? dv.getUint32(p) : (track.defaultDuration ?? 0);
      if (tfFlags & 0x8) p += 4;
      if (tfFlags & 0x10) p += 4;
      let flags = tfFlags & 0x20 ? dv.getUint32(p) : track.defaultFlags;
      let ticks = 0;
      for (const trun of boxes(u8, traf.body, traf.end)) {
        if (trun.type !== 'trun') continue;
        const trFlags = dv.getUint32(trun.body) & 0xffffff;
        const count = dv.getUint32(trun.body + 4);
        let q = trun.body + 8;
        if (trFlags & 0x1) q += 4;
        const first = ticks === 0;
        if (trFlags & 0x4) {
          if (first) flags = dv.getUint32(q);
          q += 4;
        } else if (first && trFlags & 0x400) {
          flags = dv.getUint32(q + (trFlags & 0x100 ? 4 : 0) + (trFlags & 0x200 ? 4 : 0));
        }
        if (!(trFlags & 0x100)) {
          ticks += count * defDuration;
          continue;
        }
        const stride = 4 * (1 + (trFlags & 0x200 ? 1 : 0) + (trFlags & 0x400 ? 1 : 0) + (trFlags & 0x800 ? 1 : 0));
        for (let i = 0; i < count && q + 4 <= trun.end; i++, q += stride) ticks += dv.getUint32(q);
      }
      if (tfdtTime !== null) trackEnds.push([trackId, tfdtTime + ticks / track.timescale, tfdtTime]);
      if (isVideo || (!durationFromVideo && duration === 0)) {
        duration = ticks / track.timescale;
        durationFromVideo = isVideo;
      }
      if (!isVideo) continue;
      hasVideo = true;
      keyframe = !(flags & 0x10000);
    }
    break;
  }
  return { start, duration, keyframe, hasVideo, prft, trackEnds };
}

/**
 * @param {Uint8Array} u8
 * @param {{body: number, end: number}} box the `prft` box
 * @param {Map<number, TrackInfo>} tracks
 * @returns {ProducerReferenceTime|null} null if truncated
 */
export function parsePrft(u8, box, tracks) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const version = u8[box.body];
  if (box.end - box.body < (version === 1 ? 24 : 20)) return null;
  const flags = dv.getUint32(box.body) & 0xffffff;
  const referenceTrackId = dv.getUint32(box.body + 4);
  const sec = dv.getUint32(box.body + 8);
  const frac = dv.getUint32(box.body + 12);
  const ntpSeconds = sec + frac / 4294967296;
  const mt = version === 1 ? Number(dv.getBigUint64(box.body + 16)) : dv.getUint32(box.body + 16);
  const track = tracks.get(referenceTrackId);
  return {
    referenceTrackId, flags, ntpSeconds,
    unixMs: (ntpSeconds - NTP_UNIX_OFFSET) * 1000,
    mediaTime: track ? mt / track.timescale : NaN,
  };
}
