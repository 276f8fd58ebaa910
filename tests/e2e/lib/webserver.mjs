// A small HTTP + WebSocket server on loopback for the harness tests: serves web/ (the player) and
// hands each WebSocket on /ws to a callback, so a test can play the server's part of
// docs/protocol.md without a pipeline. Uses the `ws` package (maintained, no native code).
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';

export const WEB_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');

const TYPES = { '.js': 'text/javascript', '.html': 'text/html', '.css': 'text/css' };

/**
 * Starts the server on 127.0.0.1 and a free port.
 * @param {(ws: import('ws').WebSocket, req: http.IncomingMessage) => void} onWebSocket called for
 *   each WebSocket opened on `/ws`
 * @returns {Promise<{ origin: string, close: () => Promise<void> }>}
 */
export async function startWebServer(onWebSocket) {
  const server = http.createServer((req, res) => {
    const p = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const file = path.join(WEB_DIR, p === '/' ? 'index.html' : p);
    if (!file.startsWith(WEB_DIR + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(fs.readFileSync(file));
  });
  const wss = new WebSocketServer({ server, path: '/ws' });
  wss.on('connection', onWebSocket);
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    origin: `http://127.0.0.1:${port}`,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise((r) => wss.close(r));
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}
