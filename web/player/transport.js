/**
 * The connection to `websocketsink` (docs/protocol.md): one WebSocket at a time, reconnection with
 * exponential backoff and jitter, the server's JSON messages dispatched by type and the viewer's
 * messages (`pause`, `resume`, `report`) sent.
 * @module fmp4-player/transport
 */

import { errText } from './util.js';

/**
 * Maps a player `src` to a WebSocket URL (relative URLs and http(s) are accepted).
 * @param {string} src
 * @returns {string}
 */
export function resolveWebSocketUrl(src) {
  const base = globalThis.location?.href ?? 'http://localhost/';
  const u = new URL(src, base);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  return u.href;
}

/**
 * The WebSocket URL of a page served by websocketsink (web/index.html): the page's `?ws=` (a
 * path or a full URL), by default `ws` next to the page. The page's own `?token=` (a signed
 * link: websocketsink's `token-secret`) is passed on to the WebSocket URL unless that has one,
 * and only when it goes to the page's own host and port (a token never leaves for another
 * server).
 * @param {string} pageHref the page's URL (`location.href`)
 * @returns {string} a ws: or wss: URL
 */
export function pageWebSocketUrl(pageHref) {
  const page = new URL(pageHref);
  const params = page.searchParams;
  const u = new URL(params.get('ws') || 'ws', page);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  const token = params.get('token');
  if (token && !u.searchParams.has('token') && u.host === page.host) u.searchParams.set('token', token);
  return u.href;
}

/**
 * Delay before reconnection attempt `attempt` (0-based, counted since playback last worked).
 * - attempt 0: uniform in [0, `min`) ("full jitter"): a viewer whose server (an edge behind a
 *   balancer) went away comes back fast, and the hundreds of viewers of that server, which all
 *   lose their connection at the same instant, do not come back in lockstep: their new
 *   connections are spread evenly over `min` (500 ms by default) instead of landing within
 *   ±15 % of it;
 * - attempt n ≥ 1: `min`·2ⁿ, capped at `max`, with ±15 % jitter (0.85–1.15 s, 1.7–2.3 s, … for
 *   `min` 500 ms), so that a server that is really down is not hammered.
 * @param {number} attempt
 * @param {number} min ms
 * @param {number} max ms
 * @param {number} [random] in [0, 1) (default `Math.random()`)
 * @returns {number} ms
 */
export function reconnectDelay(attempt, min, max, random = Math.random()) {
  if (attempt <= 0) return Math.min(min, max) * random;
  return Math.min(max, min * 2 ** attempt) * (0.85 + random * 0.3);
}

/**
 * The `report` message (docs/protocol.md): where the viewer plays and how well.
 * @param {{currentTime: number, bufferedEnd: number, stalls: number, droppedFrames: number,
 *   wallClockLatency?: number|null, wallClockSource?: string|null}} r (the wall clock fields are
 *   sent when known: `wall_clock_latency` s, `wall_clock_source` "encoder" | "server")
 */
export function reportMessage(r) {
  return {
    type: 'report',
    current_time: r.currentTime,
    buffered_end: r.bufferedEnd,
    stalls: r.stalls,
    dropped_frames: r.droppedFrames,
    ...(r.wallClockLatency !== null && r.wallClockLatency !== undefined && r.wallClockSource
      ? { wall_clock_latency: r.wallClockLatency, wall_clock_source: r.wallClockSource } : {}),
  };
}

/**
 * @typedef {object} TransportHooks
 * @property {() => boolean} running whether to reconnect at all (false after `stop()`)
 * @property {() => {min: number, max: number}} delays reconnect delays in ms
 * @property {(url: string) => void} onOpen the WebSocket is open
 * @property {Record<string, (msg: any) => void>} messages handlers of the server's messages by
 *   `type` (`stream`, `start`, `skip`, `eos`); other types are logged and ignored
 * @property {(data: Uint8Array) => void} onBinary an init segment or a fragment
 * @property {(ev: CloseEvent) => void} onClose the WebSocket closed (a reconnect is scheduled next)
 * @property {(delay: number, attempt: number) => void} onReconnectScheduled
 * @property {() => void} onReconnect the delay has passed: connect again
 * @property {(message: string, fatal: boolean, error?: unknown) => void} onError
 * @property {(...a: unknown[]) => void} log
 */

/** One WebSocket at a time; callbacks of an older one (a previous session) are ignored. */
export class Transport {
  /** @param {TransportHooks} hooks */
  constructor(hooks) {
    this.hooks = hooks;
    /** @type {WebSocket|null} */
    this.ws = null;
    /** incremented by every connection and by `stop()`: stale callbacks compare it */
    this.session = 0;
    /** reconnection attempts since the last success (see `resetBackoff`) */
    this.attempts = 0;
    this.reconnectTimer = 0;
  }

  /** @returns {number} a new session: the callbacks of the previous socket are ignored from now on */
  newSession() {
    return ++this.session;
  }

  /** Playback works: the next reconnect starts with the short delay. */
  resetBackoff() {
    this.attempts = 0;
  }

  /** @returns {boolean} whether the WebSocket is open */
  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /**
   * Opens a WebSocket for the current session (see `newSession`).
   * @param {string} url
   */
  open(url) {
    const session = this.session;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      this.hooks.onError(`cannot open ${url}: ${errText(e)}`, false, e);
      this.scheduleReconnect(session);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    ws.onopen = () => {
      if (session !== this.session) return;
      this.hooks.log('connected to', url);
      this.hooks.onOpen(url);
    };
    ws.onmessage = (ev) => {
      if (session !== this.session) return;
      if (typeof ev.data === 'string') this._onText(ev.data);
      else this.hooks.onBinary(new Uint8Array(ev.data));
    };
    ws.onerror = () => {
      if (session !== this.session) return;
      this.hooks.log('WebSocket error on', url);
    };
    ws.onclose = (ev) => {
      if (session !== this.session) return;
      this.ws = null;
      this.hooks.log(`WebSocket closed: code ${ev.code} ${ev.reason || ''}`);
      this.hooks.onClose(ev);
      this.scheduleReconnect(session);
    };
  }

  /** @param {number} session */
  scheduleReconnect(session) {
    if (!this.hooks.running() || session !== this.session) return;
    const { min, max } = this.hooks.delays();
    const delay = reconnectDelay(this.attempts, min, max);
    this.attempts++;
    this.hooks.onReconnectScheduled(delay, this.attempts);
    this.hooks.log(`reconnecting in ${Math.round(delay)} ms (attempt ${this.attempts})`);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.hooks.running() || session !== this.session) return;
      this.hooks.onReconnect();
    }, delay);
  }

  /**
   * Sends a JSON message if the WebSocket is open.
   * @param {object} msg
   * @returns {boolean} whether it was sent
   */
  send(msg) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(msg));
      return true;
    } catch (e) {
      this.hooks.log('send failed:', errText(e));
      return false;
    }
  }

  /**
   * Closes the WebSocket; its `close` event then schedules a reconnect as for any lost connection.
   * @param {number} code
   * @param {string} reason
   */
  close(code, reason) {
    const ws = this.ws;
    if (!ws) return;
    try {
      ws.close(code, reason);
    } catch (e) {
      this.hooks.log('close failed:', errText(e));
    }
  }

  /** Closes the WebSocket for good: no callback nor reconnect follows. */
  stop() {
    this.session++;
    clearTimeout(this.reconnectTimer);
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      try {
        ws.close(1000, 'player stopped');
      } catch (e) {
        this.hooks.log('closing the WebSocket failed:', errText(e));
      }
    }
  }

  /** @param {string} text a server message */
  _onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      this.hooks.onError(`ignoring a text message that is not JSON: ${errText(e)}`, false, e);
      return;
    }
    this.hooks.log('<-', text);
    const handler = Object.hasOwn(this.hooks.messages, msg?.type) ? this.hooks.messages[msg.type] : null;
    if (handler) handler(msg);
    else this.hooks.log('ignoring message type', msg?.type);
  }
}
