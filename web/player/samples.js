/**
 * ISO BMFF sample reading for the WebCodecs renderer: decoder configurations from an init
 * segment's sample entries (ISO/IEC 14496-12 8.5.2 `stsd`) and the samples of a media segment
 * (8.8.7 `tfhd`, 8.8.8 `trun`, 8.8.12 `tfdt`, defaults from 8.8.3 `trex`), plus the `prft`
 * (8.16.5) wall-clock time of a fragment.
 * @module fmp4-player/samples
 */

import { boxes, findChild, parsePrft as parsePrftBox } from './bmff.js';

/**
 * @typedef {object} SampleTrack
 * @property {number} id track_ID
 * @property {'video'|'audio'|'other'} kind from the `hdlr` handler (`vide`, `soun`)
 * @property {number} timescale media timescale (ticks per second, `mdhd`)
 * @property {string} format sample entry type (`avc1`, `hvc1`, `vp09`, `av01`, `mp4a`, `Opus`, `fLaC`, …)
 * @property {number} editOffset ticks to subtract from presentation times: the first `elst`
 *   entry's media_time (8.6.6), 0 if none
 * @property {number} defaultDuration `trex` default_sample_duration (ticks)
 * @property {number} defaultSize `trex` default_sample_size (bytes)
 * @property {number} defaultFlags `trex` default_sample_flags
 * @property {Uint8Array|null} description codec-specific configuration for WebCodecs'
 *   `description`: the body of `avcC` (ISO/IEC 14496-15 5.3.3), `hvcC` (8.3.3) or `av1C`; the
 *   AudioSpecificConfig of `esds` (ISO/IEC 14496-3 1.6.2.1); an `OpusHead` built from `dOps`
 *   (RFC 7845 5.1); `fLaC` + the metadata blocks of `dfLa`; null for VP8/VP9 (none needed)
 * @property {number} width visual sample entry width (pixels), 0 for audio
 * @property {number} height visual sample entry height (pixels), 0 for audio
 * @property {number} sampleRate audio sample entry samplerate (Hz; `dOps` InputSampleRate is not
 *   used: Opus decodes at 48 kHz), 0 for video
 * @property {number} channels audio sample entry channelcount (`dOps` OutputChannelCount for Opus)
 */

/**
 * @typedef {object} Sample
 * @property {number} trackId
 * @property {number} dts decode time, seconds
 * @property {number} pts presentation time (dts + composition offset − edit offset), seconds
 * @property {number} duration seconds
 * @property {boolean} keyframe sync sample (`sample_is_non_sync_sample` clear)
 * @property {Uint8Array} data the sample's bytes (a view into the message, not a copy)
 */

const u32 = (dv, o) => dv.getUint32(o);
const u64 = (dv, o) => Number(dv.getBigUint64(o));

/** Sample entry types with a VisualSampleEntry (8.5.2.2) layout. */
const VISUAL = new Set(['avc1', 'avc3', 'hvc1', 'hev1', 'vp08', 'vp09', 'av01']);
/** Sample entry types with an AudioSampleEntry (8.5.2.2) layout. */
const AUDIO = new Set(['mp4a', 'Opus', 'fLaC', 'ac-3', 'ec-3']);

/**
 * Reads an MPEG-4 descriptor's size (ISO/IEC 14496-1 8.3.3: up to four 7-bit bytes).
 * @returns {[number, number]} [size, offset of the payload]
 */
function descriptorSize(u8, p, end) {
  let size = 0;
  for (let i = 0; i < 4 && p < end; i++) {
    const b = u8[p++];
    size = (size << 7) | (b & 0x7f);
    if (!(b & 0x80)) break;
  }
  return [size, p];
}

/**
 * The AudioSpecificConfig (DecoderSpecificInfo, tag 5) in an `esds` body.
 * @param {Uint8Array} u8
 * @param {{body: number, end: number}} esds
 * @returns {Uint8Array|null}
 */
export function esdsAudioSpecificConfig(u8, esds) {
  let p = esds.body + 4; // FullBox version/flags
  const end = esds.end;
  // ES_Descriptor (3) → DecoderConfigDescriptor (4) → DecoderSpecificInfo (5)
  while (p < end) {
    const tag = u8[p++];
    let size;
    [size, p] = descriptorSize(u8, p, end);
    if (tag === 3) {
      const flags = u8[p + 2];
      p += 3;
      if (flags & 0x80) p += 2; // dependsOn_ES_ID
      if (flags & 0x40) p += 1 + u8[p]; // URL
      if (flags & 0x20) p += 2; // OCR_ES_Id
    } else if (tag === 4) {
      p += 13; // objectTypeIndication … avgBitrate
    } else if (tag === 5) {
      return p + size <= end ? u8.slice(p, p + size) : null;
    } else {
      p += size;
    }
  }
  return null;
}

/**
 * An `OpusHead` identification header (RFC 7845 5.1, little-endian) from a `dOps` body
 * (Encapsulation of Opus in ISO BMFF 4.3.2, big-endian).
 * @param {Uint8Array} u8
 * @param {{body: number, end: number}} dOps
 * @returns {Uint8Array}
 */
export function opusHeadFromDops(u8, dOps) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  const b = dOps.body;
  const channels = u8[b + 1];
  const family = u8[b + 10];
  const table = family !== 0 ? u8.subarray(b + 11, Math.min(dOps.end, b + 13 + channels)) : new Uint8Array(0);
  const out = new Uint8Array(19 + table.length);
  const ov = new DataView(out.buffer);
  out.set([0x4f, 0x70, 0x75, 0x73, 0x48, 0x65, 0x61, 0x64], 0); // "OpusHead"
  out[8] = 1;
  out[9] = channels;
  ov.setUint16(10, dv.getUint16(b + 2), true); // PreSkip
  ov.setUint32(12, dv.getUint32(b + 4), true); // InputSampleRate
  ov.setInt16(16, dv.getInt16(b + 8), true); // OutputGain
  out[18] = family;
  out.set(table, 19);
  return out;
}

/**
 * Tracks of an init segment with what a WebCodecs decoder needs.
 * @param {Uint8Array} u8 ftyp + moov
 * @returns {Map<number, SampleTrack>} track_ID → track (empty if no moov)
 */
export function parseSampleTracks(u8) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  /** @type {Map<number, SampleTrack>} */
  const tracks = new Map();
  /** @type {Map<number, [number, number, number]>} trex defaults */
  const trex = new Map();
  for (const moov of boxes(u8, 0, u8.length)) {
    if (moov.type !== 'moov') continue;
    for (const box of boxes(u8, moov.body, moov.end)) {
      if (box.type === 'mvex') {
        for (const t of boxes(u8, box.body, box.end)) {
          if (t.type === 'trex' && t.body + 24 <= t.end) {
            trex.set(u32(dv, t.body + 4), [u32(dv, t.body + 12), u32(dv, t.body + 16), u32(dv, t.body + 20)]);
          }
        }
        continue;
      }
      if (box.type !== 'trak') continue;
      const tkhd = findChild(u8, box, 'tkhd');
      const mdia = findChild(u8, box, 'mdia');
      const mdhd = mdia && findChild(u8, mdia, 'mdhd');
      const hdlr = mdia && findChild(u8, mdia, 'hdlr');
      const minf = mdia && findChild(u8, mdia, 'minf');
      const stbl = minf && findChild(u8, minf, 'stbl');
      const stsd = stbl && findChild(u8, stbl, 'stsd');
      if (!tkhd || !mdhd || !stsd) continue;
      const id = u32(dv, tkhd.body + (u8[tkhd.body] === 1 ? 20 : 12));
      const timescale = u32(dv, mdhd.body + (u8[mdhd.body] === 1 ? 20 : 12));
      if (!timescale) continue;
      const handler = hdlr ? String.fromCharCode(...u8.subarray(hdlr.body + 8, hdlr.body + 12)) : '';
      let editOffset = 0;
      const edts = findChild(u8, box, 'edts');
      const elst = edts && findChild(u8, edts, 'elst');
      if (elst) {
        const v1 = u8[elst.body] === 1;
        // skip empty edits (media_time −1): the first real entry's media_time
        const n = u32(dv, elst.body + 4);
        for (let i = 0, p = elst.body + 8; i < n && p + (v1 ? 20 : 12) <= elst.end; i++, p += v1 ? 20 : 12) {
          const mt = v1 ? Number(dv.getBigInt64(p + 8)) : dv.getInt32(p + 4);
          if (mt >= 0) {
            editOffset = mt;
            break;
          }
        }
      }
      const entry = [...boxes(u8, stsd.body + 8, stsd.end)][0];
      if (!entry) continue;
      /** @type {SampleTrack} */
      const t = {
        id,
        kind: handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : 'other',
        timescale,
        format: entry.type,
        editOffset,
        defaultDuration: 0,
        defaultSize: 0,
        defaultFlags: 0,
        description: null,
        width: 0,
        height: 0,
        sampleRate: 0,
        channels: 0,
      };
      if (VISUAL.has(entry.type) && entry.body + 78 <= entry.end) {
        t.width = dv.getUint16(entry.body + 24);
        t.height = dv.getUint16(entry.body + 26);
        const cfg = { avc1: 'avcC', avc3: 'avcC', hvc1: 'hvcC', hev1: 'hvcC', av01: 'av1C' }[entry.type];
        const c = cfg && findChild(u8, { body: entry.body + 78, end: entry.end }, cfg);
        if (c) t.description = u8.slice(c.body, c.end);
      } else if (AUDIO.has(entry.type) && entry.body + 28 <= entry.end) {
        t.channels = dv.getUint16(entry.body + 16);
        t.sampleRate = dv.getUint16(entry.body + 24); // 16.16 fixed point: the integer part
        const children = { body: entry.body + 28, end: entry.end };
        if (entry.type === 'mp4a') {
          const esds = findChild(u8, children, 'esds');
          if (esds) t.description = esdsAudioSpecificConfig(u8, esds);
          // muxers often write channelcount 2 whatever the stream: the AudioSpecificConfig's
          // channelConfiguration (ISO/IEC 14496-3 1.6.2.1) is the truth when it gives one
          const asc = t.description;
          if (asc && asc.length >= 2) {
            const freqIndex = ((asc[0] & 0x07) << 1) | (asc[1] >> 7);
            const bits = freqIndex === 15 ? (asc.length >= 5 ? (asc[4] >> 3) & 0x0f : 0) : (asc[1] >> 3) & 0x0f;
            if (bits >= 1 && bits <= 7) t.channels = bits === 7 ? 8 : bits;
          }
        } else if (entry.type === 'Opus') {
          const dOps = findChild(u8, children, 'dOps');
          if (dOps && dOps.body + 11 <= dOps.end) {
            t.description = opusHeadFromDops(u8, dOps);
            t.channels = u8[dOps.body + 1];
            t.sampleRate = 48000;
          }
        } else if (entry.type === 'fLaC') {
          const dfLa = findChild(u8, children, 'dfLa');
          if (dfLa) {
            const blocks = u8.subarray(dfLa.body + 4, dfLa.end);
            t.description = new Uint8Array(4 + blocks.length);
            t.description.set([0x66, 0x4c, 0x61, 0x43], 0); // "fLaC"
            t.description.set(blocks, 4);
          }
        }
      }
      tracks.set(id, t);
    }
  }
  for (const [id, d] of trex) {
    const t = tracks.get(id);
    if (t) [t.defaultDuration, t.defaultSize, t.defaultFlags] = d;
  }
  return tracks;
}

/**
 * The samples of a media segment, in `trun` order per track fragment. A `moof` whose `tfhd` has
 * `base-data-offset-present` is read relative to the message start (the server sends each
 * fragment as its own message, so an absolute file offset has no meaning here); without it the
 * base is the `moof` (8.8.7.1: `default-base-is-moof`, or the first track fragment) or, for a
 * later track fragment without `default-base-is-moof`, the end of the previous one's data.
 * Samples whose bytes fall outside the message are not returned.
 * @param {Uint8Array} u8 `[styp/prft/emsg]` + moof + mdat (several moof + mdat pairs are read in turn)
 * @param {Map<number, SampleTrack>} tracks from {@link parseSampleTracks}
 * @returns {Sample[]}
 */
export function parseSamples(u8, tracks) {
  const dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
  /** @type {Sample[]} */
  const out = [];
  for (const moof of boxes(u8, 0, u8.length)) {
    if (moof.type !== 'moof') continue;
    const moofStart = moof.body - 8;
    let prevDataEnd = moofStart;
    let first = true;
    for (const traf of boxes(u8, moof.body, moof.end)) {
      if (traf.type !== 'traf') continue;
      const tfhd = findChild(u8, traf, 'tfhd');
      if (!tfhd) continue;
      const tf = u32(dv, tfhd.body) & 0xffffff;
      const track = tracks.get(u32(dv, tfhd.body + 4));
      if (!track) continue;
      let p = tfhd.body + 8;
      let base = first || tf & 0x20000 ? moofStart : prevDataEnd;
      first = false;
      if (tf & 0x1) {
        base = u64(dv, p);
        p += 8;
      }
      if (tf & 0x2) p += 4;
      let defDuration = track.defaultDuration;
      let defSize = track.defaultSize;
      let defFlags = track.defaultFlags;
      if (tf & 0x8) { defDuration = u32(dv, p); p += 4; }
      if (tf & 0x10) { defSize = u32(dv, p); p += 4; }
      if (tf & 0x20) { defFlags = u32(dv, p); p += 4; }
      const tfdt = findChild(u8, traf, 'tfdt');
      let dts = tfdt ? (u8[tfdt.body] === 1 ? u64(dv, tfdt.body + 4) : u32(dv, tfdt.body + 4)) : 0;
      let dataPos = base;
      for (const trun of boxes(u8, traf.body, traf.end)) {
        if (trun.type !== 'trun') continue;
        const version = u8[trun.body];
        const fl = u32(dv, trun.body) & 0xffffff;
        const count = u32(dv, trun.body + 4);
        let q = trun.body + 8;
        if (fl & 0x1) { dataPos = base + dv.getInt32(q); q += 4; }
        let firstFlags = null;
        if (fl & 0x4) { firstFlags = u32(dv, q); q += 4; }
        const per = ((fl & 0x100) ? 4 : 0) + ((fl & 0x200) ? 4 : 0) + ((fl & 0x400) ? 4 : 0) + ((fl & 0x800) ? 4 : 0);
        if (q + count * per > trun.end) break; // truncated trun
        for (let i = 0; i < count; i++) {
          let duration = defDuration;
          let size = defSize;
          let flags = i === 0 && firstFlags !== null ? firstFlags : defFlags;
          let cto = 0;
          if (fl & 0x100) { duration = u32(dv, q); q += 4; }
          if (fl & 0x200) { size = u32(dv, q); q += 4; }
          if (fl & 0x400) { if (!(i === 0 && firstFlags !== null)) flags = u32(dv, q); q += 4; }
          if (fl & 0x800) { cto = version === 0 ? u32(dv, q) : dv.getInt32(q); q += 4; }
          if (dataPos >= 0 && dataPos + size <= u8.length) {
            out.push({
              trackId: track.id,
              dts: dts / track.timescale,
              pts: (dts + cto - track.editOffset) / track.timescale,
              duration: duration / track.timescale,
              keyframe: track.kind !== 'video' || !(flags & 0x10000),
              data: u8.subarray(dataPos, dataPos + size),
            });
          }
          dataPos += size;
          dts += duration;
        }
      }
      prevDataEnd = dataPos;
    }
  }
  return out;
}

/**
 * The producer reference time of a media segment (8.16.5 `prft`): the wall-clock time (NTP
 * timestamp, 64 bits) that corresponds to `media_time` of the track `reference_track_ID`.
 * @param {Uint8Array} u8 a media segment
 * @param {Map<number, {timescale: number}>} tracks
 * @returns {{ wallClock: number, mediaTime: number, trackId: number, source: 'encoder'|'server' } | null}
 *   `wallClock` in ms since the Unix epoch, `mediaTime` in seconds (same timeline as the `tfdt` it
 *   came with), `source`: `server` for websocketsink's own prft (flags 4, arrival at the server),
 *   else `encoder`; null when there is no `prft` or its track is unknown
 */
export function parsePrft(u8, tracks) {
  for (const b of boxes(u8, 0, u8.length)) {
    if (b.type === 'moof') return null; // prft comes before its moof
    if (b.type !== 'prft') continue;
    const p = parsePrftBox(u8, b, tracks); // the one prft reader (bmff.js)
    if (!p || !Number.isFinite(p.mediaTime)) return null; // truncated, or its track is unknown
    return { wallClock: p.unixMs, mediaTime: p.mediaTime, trackId: p.referenceTrackId, source: p.flags === 4 ? 'server' : 'encoder' };
  }
  return null;
}
