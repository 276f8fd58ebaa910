// A minimal WebSocket client on a raw TCP socket (Node 20 has no WebSocket client): records what the
// server sends, frame by frame, including the close frame (or its absence) when the server goes away.
import net from 'node:net';
import crypto from 'node:crypto';

/**
 * Connects to ws://host:port/path and records every frame.
 * @param {number} port
 * @param {{ host?: string, path?: string }} [opts]
 * @returns {Promise<{ events: Array<{t: number, kind: string, code?: number, reason?: string, text?: string, bytes?: number}>,
 *   closed: Promise<void>, socket: net.Socket }>} resolves after the 101 response
 */
export function rawWebSocket(port, opts = {}) {
  const { host = '127.0.0.1', path = '/ws' } = opts;
  const t0 = Date.now();
  const events = [];
  const push = (e) => events.push({ t: Date.now() - t0, ...e });
  const socket = net.connect(port, host);
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let resolveOpen;
  let rejectOpen;
  const opened = new Promise((res, rej) => { resolveOpen = res; rejectOpen = rej; });
  const closed = new Promise((res) => socket.once('close', () => { push({ kind: 'tcp-closed' }); res(); }));
  socket.on('connect', () => {
    const key = crypto.randomBytes(16).toString('base64');
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  });
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    if (!upgraded) {
      const i = buf.indexOf('\r\n\r\n');
      if (i < 0) return;
      const status = buf.subarray(0, buf.indexOf('\r\n')).toString();
      buf = buf.subarray(i + 4);
      if (!/ 101 /.test(status)) return rejectOpen(new Error(`no upgrade: ${status}`));
      upgraded = true;
      resolveOpen();
    }
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) {
        if (buf.length < 4) return;
        len = buf.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (buf.length < 10) return;
        len = Number(buf.readBigUInt64BE(2));
        off = 10;
      }
      if (buf.length < off + len) return;
      const p = buf.subarray(off, off + len);
      buf = buf.subarray(off + len);
      if (op === 8) push({ kind: 'close', code: p.length >= 2 ? p.readUInt16BE(0) : undefined, reason: p.subarray(2).toString() });
      else if (op === 1) push({ kind: 'text', text: p.toString() });
      else if (op === 2) push({ kind: 'binary', bytes: len });
      else push({ kind: `op${op}`, bytes: len });
    }
  });
  socket.on('end', () => push({ kind: 'tcp-fin' }));
  socket.on('error', (e) => { push({ kind: `error ${/** @type {any} */ (e).code ?? e.message}` }); rejectOpen(e); });
  return opened.then(() => ({ events, closed, socket }));
}
