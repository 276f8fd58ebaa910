/**
 * Small helpers shared by the player's modules.
 * @module fmp4-player/util
 */

export const LOG_PREFIX = '[fmp4-player]';

/**
 * `"Name: message"` of an error (or `String(e)` for anything else).
 * @param {unknown} e
 * @returns {string}
 */
export function errText(e) {
  if (e && typeof e === 'object' && 'message' in e) return `${/** @type {any} */ (e).name ?? 'Error'}: ${/** @type {any} */ (e).message}`;
  return String(e);
}

/** @param {number} x @returns {number} x rounded to 3 decimals */
export function round3(x) {
  return Math.round(x * 1000) / 1000;
}

/** @returns {boolean} true on Safari (desktop or iOS), where playbackRate changes are avoided. */
export function isSafari() {
  const nav = globalThis.navigator;
  if (!nav) return false;
  return /^((?!chrome|chromium|android|crios|fxios|edg).)*safari/i.test(nav.userAgent) ||
    (nav.vendor === 'Apple Computer, Inc.' && !/chrome|crios/i.test(nav.userAgent));
}
