/**
 * `<fmp4-player>`: a custom element with a shadow DOM `<video>`, a message overlay (unsupported
 * codec, reconnecting, ended) and a stats overlay, around an {@link Fmp4Player}. Defined as
 * `fmp4-player` by fmp4-player.js.
 * @module fmp4-player/element
 */

import { Fmp4Player } from './player.js';

/** @typedef {import('./player.js').Fmp4PlayerStats} Fmp4PlayerStats */
/** @typedef {import('./player.js').Fmp4PlayerState} Fmp4PlayerState */

const ELEMENT_CSS = `
:host { display: block; position: relative; background: #000; overflow: hidden; }
:host([hidden]) { display: none; }
video, canvas { display: block; width: 100%; height: 100%; object-fit: contain; background: #000; }
video[hidden], canvas[hidden] { display: none; }
.msg { position: absolute; left: 0; right: 0; top: 50%; transform: translateY(-50%);
  margin: 0 auto; max-width: 80%; padding: .8em 1em; text-align: center;
  font: 15px/1.4 system-ui, sans-serif; color: #fff; background: rgba(0,0,0,.72); border-radius: 6px; }
.msg[hidden], .stats[hidden] { display: none; }
.stats { position: absolute; top: 6px; left: 6px; margin: 0; padding: 4px 6px; pointer-events: none;
  font: 11px/1.35 ui-monospace, monospace; color: #cfc; background: rgba(0,0,0,.6); border-radius: 4px;
  white-space: pre; }
`;

// Lets the module be imported outside a browser (e.g. to unit-test the helpers in Node).
const ElementBase = /** @type {typeof HTMLElement} */ (globalThis.HTMLElement ?? class {});

/**
 * `<fmp4-player>` custom element wrapping {@link Fmp4Player}.
 *
 * Attributes: `src` (WebSocket URL), `target-latency` (seconds; default: learned from the stream,
 * see {@link Fmp4Player}'s `targetLatency` option), `muted`, `autoplay`,
 * `controls`, `stats` (show the stats overlay), `renderer` (`mse` (default), `webcodecs` or `auto`:
 * see {@link Fmp4PlayerOptions}.renderer; a change restarts the player), `render-delay` (WebCodecs:
 * seconds, default 0.05).
 * Properties: `player` ({@link Fmp4Player}), `video`, `stats`, `state`, `src`.
 * The player's `statechange`, `error`, `stats` and `stream` events are re-dispatched on the element.
 */
export class Fmp4PlayerElement extends ElementBase {
  static get observedAttributes() {
    return ['src', 'target-latency', 'muted', 'autoplay', 'controls', 'stats', 'renderer', 'render-delay'];
  }

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = ELEMENT_CSS;
    /** @type {HTMLVideoElement} */
    this.video = document.createElement('video');
    this.video.playsInline = true;
    this.video.setAttribute('part', 'video');
    /** @type {HTMLCanvasElement} the WebCodecs renderer's picture (hidden while MSE plays) */
    this.canvas = document.createElement('canvas');
    this.canvas.setAttribute('part', 'canvas');
    this.canvas.hidden = true;
    this._msg = document.createElement('div');
    this._msg.className = 'msg';
    this._msg.hidden = true;
    this._msg.setAttribute('role', 'status');
    this._statsEl = document.createElement('pre');
    this._statsEl.className = 'stats';
    this._statsEl.hidden = true;
    root.append(style, this.video, this.canvas, this._msg, this._statsEl);
    /** @type {Fmp4Player} */
    this.player = new Fmp4Player(this.video, { autoplay: false, canvas: this.canvas });
    this._fatalMessage = '';
    /** the `warning` of the current `stream` message ('' if none) */
    this._streamWarning = '';
    for (const type of ['statechange', 'error', 'stats', 'stream', 'automute']) {
      this.player.addEventListener(type, (ev) => {
        const detail = /** @type {CustomEvent} */ (ev).detail;
        this._onPlayerEvent(type, detail);
        this.dispatchEvent(new CustomEvent(type, { detail, bubbles: false, composed: true }));
      });
    }
  }

  connectedCallback() {
    this._applyAll();
    if (this.getAttribute('src') && !this.player.running) this._restart();
  }

  disconnectedCallback() {
    queueMicrotask(() => {
      if (!this.isConnected) this.player.stop();
    });
  }

  /**
   * @param {string} name
   * @param {string|null} oldValue
   * @param {string|null} value
   */
  attributeChangedCallback(name, oldValue, value) {
    if (oldValue === value) return;
    if (name === 'src' || name === 'renderer') {
      this._applyAll();
      if (this.isConnected && (name === 'src' || this.player.running)) this._restart();
      return;
    }
    this._applyAll();
  }

  _applyAll() {
    const o = this.player.options;
    const tl = parseFloat(this.getAttribute('target-latency') ?? '');
    o.targetLatency = Number.isFinite(tl) && tl > 0 ? tl : null;
    o.autoplay = this.hasAttribute('autoplay');
    const r = this.getAttribute('renderer');
    o.renderer = r === 'webcodecs' || r === 'auto' ? r : 'mse';
    const rd = parseFloat(this.getAttribute('render-delay') ?? '');
    o.renderDelay = Number.isFinite(rd) && rd >= 0 ? rd : 0.05;
    this.video.muted = this.hasAttribute('muted');
    this.video.controls = this.hasAttribute('controls');
    this._statsEl.hidden = !this.hasAttribute('stats');
    if (!this._statsEl.hidden) this._renderStats(this.player.stats);
  }

  _restart() {
    const src = this.getAttribute('src');
    this.player.stop();
    this._fatalMessage = '';
    this._streamWarning = '';
    this._showMessage('');
    if (!src) return;
    this.player.src = src;
    this.player.start();
  }

  /**
   * @param {string} type
   * @param {any} detail
   */
  _onPlayerEvent(type, detail) {
    if (type === 'error' && detail.fatal && this.player.state === 'unsupported') {
      this._fatalMessage = detail.message;
      this._showMessage(detail.message);
    } else if (type === 'statechange') {
      const s = detail.state;
      if (s === 'unsupported') this._showMessage(this._fatalMessage);
      else if (s === 'reconnecting') this._showMessage('Connection lost — reconnecting…');
      else if (s === 'ended') this._showMessage('The stream has ended.');
      else if (s === 'playing') { this._streamWarning = ''; this._showMessage(''); }
      else if (s === 'loading' || s === 'connecting') this._showMessage(this._streamWarning);
    } else if (type === 'stream') {
      // the server's diagnostic for this init (e.g. no fragment came after it): shown until
      // the stream plays; a `stream` message without one clears it
      this._streamWarning = typeof detail?.warning === 'string' ? detail.warning : '';
      if (this.player.state !== 'unsupported') this._showMessage(this._streamWarning);
    } else if (type === 'stats' && !this._statsEl.hidden) {
      this._renderStats(detail);
    } else if (type === 'automute') {
      if (!this.hasAttribute('muted')) this.setAttribute('muted', '');
    }
  }

  /** @param {string} text */
  _showMessage(text) {
    this._msg.textContent = text;
    this._msg.hidden = !text;
  }

  /** @param {Fmp4PlayerStats} s */
  _renderStats(s) {
    const kbps = ((s.bitrate * 8) / 1000).toFixed(0);
    this._statsEl.textContent = [
      `state      ${s.state}`,
      `buffer     ${s.latency === null ? '-' : s.latency.toFixed(2)} s (target ${s.targetLatency.toFixed(2)}, jitter ${s.jitter.toFixed(2)})`,
      `wall clock ${s.wallClockLatency === null ? '-' : `${s.wallClockLatency.toFixed(3)} s (${s.wallClockSource})`}`,
      `rate       ${s.playbackRate.toFixed(2)}x`,
      `bitrate    ${kbps} kbit/s`,
      `resolution ${s.resolution ?? '-'}`,
      `renderer   ${s.renderer}${s.renderer === 'webcodecs' ? ` (${s.clock} clock, ${s.framesDrawn} drawn, queue ${s.frameQueue}${s.wallClockLatency != null ? `, wall-clock latency ${s.wallClockLatency.toFixed(3)} s` : ''})` : ''}`,
      `frames     ${s.decodedFrames} decoded, ${s.droppedFrames} dropped`,
      `stalls     ${s.stalls}  jumps ${s.jumps}  reconnects ${s.reconnects}`,
      `generation ${s.generation}${s.timeToFirstFrame !== null ? `  first frame ${s.timeToFirstFrame} ms` : ''}`,
    ].join('\n');
  }

  /** @returns {Fmp4PlayerStats} */
  get stats() {
    return this.player.stats;
  }

  /** @returns {Fmp4PlayerState} */
  get state() {
    return this.player.state;
  }

  /** @returns {string} */
  get src() {
    return this.getAttribute('src') ?? '';
  }

  /** @param {string} v */
  set src(v) {
    this.setAttribute('src', v);
  }
}
