// Test helpers shared by the box-reading tests: fixture files (tests/fixtures, made by
// tests/fixtures/make-fixtures.sh) and a file cut into the messages the server sends.
import fs from 'node:fs';
import { boxes } from '../../web/player/bmff.js';

/** A file of tests/fixtures as bytes. */
export const fixture = (name) => new Uint8Array(fs.readFileSync(new URL(`../fixtures/${name}`, import.meta.url)));

/**
 * Splits a file the way the server sends it: init (ftyp + moov), then one message per fragment
 * ([styp] [prft] moof + mdat, the boxes from the first of them to the mdat). Media in the moov's
 * own mdat (no empty_moov) is not a fragment.
 * @param {Uint8Array} u8 a whole fMP4 file
 * @returns {{init: Uint8Array, fragments: Uint8Array[]}} views into `u8`
 */
export function split(u8) {
  const top = [...boxes(u8, 0, u8.length)];
  const moovEnd = top.find((b) => b.type === 'moov').end;
  const fragments = [];
  let start = -1;
  for (const b of top) {
    if ((b.type === 'styp' || b.type === 'prft' || b.type === 'moof') && start < 0) start = b.start;
    if (b.type === 'mdat' && start >= 0) {
      fragments.push(u8.subarray(start, b.end));
      start = -1;
    }
  }
  return { init: u8.subarray(0, moovEnd), fragments };
}
