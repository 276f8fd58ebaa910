/**
 * fmp4-player: plays the live fragmented MP4 that gst-fmp4ws' `websocketsink` serves over a
 * WebSocket, using Media Source Extensions (or `ManagedMediaSource` on iOS Safari).
 *
 * Wire protocol: docs/protocol.md. Vanilla ES modules, no build step: this file is the one to
 * import; it re-exports the modules of `player/` (map: web/README.md) and defines `<fmp4-player>`.
 *
 * ```html
 * <script type="module" src="fmp4-player.js"></script>
 * <fmp4-player src="ws://host:8080/ws" muted autoplay controls stats></fmp4-player>
 * ```
 * or from JS:
 * ```js
 * import { Fmp4Player } from './fmp4-player.js';
 * const player = new Fmp4Player(document.querySelector('video'), { src: 'ws://host:8080/ws' });
 * player.addEventListener('statechange', (e) => console.log(e.detail.state));
 * player.start();
 * ```
 * @module fmp4-player
 */

export { Fmp4Player } from './player/player.js';
export { Fmp4PlayerElement } from './player/element.js';
export { describeCodec, mediaSourceClass, checkSupport } from './player/codecs.js';
export { resolveWebSocketUrl, pageWebSocketUrl } from './player/transport.js';
export { parseInit, parseFragment } from './player/bmff.js';

/** @typedef {import('./player/player.js').Fmp4PlayerOptions} Fmp4PlayerOptions */
/** @typedef {import('./player/player.js').Fmp4PlayerStats} Fmp4PlayerStats */
/** @typedef {import('./player/player.js').Fmp4PlayerState} Fmp4PlayerState */
/** @typedef {import('./player/bmff.js').TrackInfo} TrackInfo */

import { Fmp4PlayerElement } from './player/element.js';

if (globalThis.customElements && !customElements.get('fmp4-player')) {
  customElements.define('fmp4-player', Fmp4PlayerElement);
}
