/**
 * Codec names and browser support: which MediaSource class to use (MSE or iOS Safari's
 * ManagedMediaSource) and which codec of a `stream` message the browser cannot play.
 * @module fmp4-player/codecs
 */

/** @type {Array<[RegExp, string]>} */
const CODEC_NAMES = [
  [/^(avc1|avc3)\./, 'H.264/AVC'],
  [/^(hvc1|hev1)\./, 'H.265/HEVC'],
  [/^(vp09|vp9)/, 'VP9'],
  [/^(vp08|vp8)/, 'VP8'],
  [/^av01\./, 'AV1'],
  [/^(vvc1|vvi1)\./, 'H.266/VVC'],
  [/^mp4a\.40\./, 'AAC'],
  [/^mp4a\.(69|6b)/i, 'MP3'],
  [/^mp4a\.a5|^ac-3/i, 'AC-3'],
  [/^mp4a\.a6|^ec-3/i, 'E-AC-3'],
  [/^opus$/i, 'Opus'],
  [/^flac$/i, 'FLAC'],
  [/^ac-4/i, 'AC-4'],
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
 * @param {{mime: string, codecs?: string, has_video?: boolean, has_audio?: boolean}} stream
 * @returns {{ ok: boolean, reason?: string, unsupported?: string[] }}
 */
export function checkSupport(stream) {
  const { MS } = mediaSourceClass();
  if (!MS) return { ok: false, reason: 'This browser has no Media Source Extensions: it cannot play this live stream.' };
  if (!stream.mime) {
    // the server found no audio/video track, or one whose codec it cannot name
    return {
      ok: false,
      unsupported: [],
      reason: stream.has_video || stream.has_audio
        ? 'The server does not know the codec of this stream: it cannot be played.'
        : 'This stream has no audio or video track (only text or metadata): there is nothing to play.',
    };
  }
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
