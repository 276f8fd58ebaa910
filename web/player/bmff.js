/**
 * Minimal ISO BMFF reading: track timescales from the init segment and the start (tfdt) of a
 * fragment, so the player knows where each fragment lands on the timeline.
 * @module fmp4-player/bmff
 */

/**
 * The boxes between `start` and `end` (a truncated box ends the walk).
 * @param {Uint8Array} u8
 * @param {number} start
 * @param {number} end
 * @returns {Generator<{type: string, body: number, end: number}>}
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
    yield { type, body: off + hdr, end: off + size };
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
