// N WebSocket viewers in one process (run by edges.test.mjs inside the viewers' namespace):
//   node loadclients.mjs URL COUNT
// Each viewer reads what web/player reads: the init segment (ftyp+moov, parsed with the player's
// own web/player/bmff.js), then fragments (moof+mdat), checking that the first fragment after
// every init starts with a keyframe; on a lost connection it reconnects with the player's own
// backoff (reconnectDelay of web/player/transport.js, 500 ms → 5 s). It prints one JSON line per
// event on stdout, times in ms since the epoch (the clock the test shares):
//   {"ev":"open","id","t"} {"ev":"close","id","t","code"}
//   {"ev":"init","id","t","hash"}                  an init segment (hash: its SHA-1, 12 hex digits)
//   {"ev":"key","id","t","keyframe"}               the first fragment after an init
//   {"ev":"tick","t","open","flowing","fragments","bad"} every 250 ms: viewers open, viewers that
//       got a fragment within the last second, fragments in all, fragments that broke a rule
// and exits on SIGTERM.
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { parseInit, parseFragment } from '../../web/player/bmff.js';
import { reconnectDelay } from '../../web/player/transport.js';

const [url, countArg] = process.argv.slice(2);
const count = Number(countArg);
if (!url || !(count > 0)) {
  console.error('usage: node loadclients.mjs ws://HOST:PORT/ws COUNT');
  process.exit(2);
}
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
let fragments = 0;
let bad = 0;

class Viewer {
  constructor(id) {
    this.id = id;
    this.attempts = 0;
    this.tracks = null;
    this.afterInit = false;
    this.lastFragment = 0;
    this.ws = null;
    this.connect();
  }

  connect() {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('open', () => out({ ev: 'open', id: this.id, t: Date.now() }));
    ws.on('message', (data, isBinary) => { if (isBinary) this.onBinary(data); });
    ws.on('error', () => { /* 'close' follows */ });
    ws.on('close', (code) => {
      out({ ev: 'close', id: this.id, t: Date.now(), code });
      this.tracks = null;
      this.afterInit = false;
      const delay = reconnectDelay(this.attempts++, 500, 5000);
      setTimeout(() => this.connect(), delay);
    });
  }

  onBinary(buf) {
    const u8 = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    const type = buf.subarray(4, 8).toString('latin1');
    const t = Date.now();
    if (type === 'ftyp' || type === 'moov') {
      this.tracks = parseInit(u8);
      this.afterInit = true;
      out({ ev: 'init', id: this.id, t, hash: createHash('sha1').update(buf).digest('hex').slice(0, 12) });
      return;
    }
    fragments++;
    if (!this.tracks) { bad++; return; } // a fragment before any init segment
    const f = parseFragment(u8, this.tracks);
    if (this.afterInit) {
      this.afterInit = false;
      if (!f.keyframe) bad++;
      out({ ev: 'key', id: this.id, t, keyframe: f.keyframe });
    }
    this.lastFragment = t;
    this.attempts = 0; // playback works: the next reconnect starts with the short delay
  }
}

const viewers = [];
// open them 25 at a time (every 20 ms), as a crowd arrives rather than one SYN burst
let next = 0;
const opener = setInterval(() => {
  for (let i = 0; i < 25 && next < count; i++) viewers.push(new Viewer(next++));
  if (next >= count) clearInterval(opener);
}, 20);
setInterval(() => {
  const t = Date.now();
  let open = 0;
  let flowing = 0;
  for (const v of viewers) {
    if (v.ws.readyState === WebSocket.OPEN) open++;
    if (t - v.lastFragment < 1000) flowing++;
  }
  out({ ev: 'tick', t, open, flowing, fragments, bad });
}, 250);
process.on('SIGTERM', () => process.exit(0));
