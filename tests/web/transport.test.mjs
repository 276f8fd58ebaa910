// The WebSocket transport (web/player/transport.js) with a fake WebSocket: messages dispatched by
// type, stale sockets ignored, reconnect with backoff, stop.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { Transport, reconnectDelay, resolveWebSocketUrl, pageWebSocketUrl, reportMessage } from '../../web/player/transport.js';

class FakeWebSocket {
  static OPEN = 1;
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeWebSocket.all.push(this);
  }
  send(s) {
    this.sent.push(JSON.parse(s));
  }
  close(code, reason) {
    this.readyState = 3;
    this.closed = { code, reason };
  }
  // the server's side
  serverOpen() {
    this.readyState = 1;
    this.onopen?.();
  }
  serverSend(data) {
    this.onmessage?.({ data });
  }
  serverClose(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

beforeEach(() => {
  FakeWebSocket.all = [];
  globalThis.WebSocket = FakeWebSocket;
});
/** Transports of the current test: stopped after it (a failed test must not leave timers). */
const live = [];
afterEach(() => {
  for (const { t, running } of live.splice(0)) {
    running.on = false;
    t.stop();
  }
  delete globalThis.WebSocket;
});

function setup(running = { on: true }) {
  const ev = { opened: [], messages: [], binary: [], closes: [], errors: [], scheduled: [], reconnects: 0 };
  const t = new Transport({
    running: () => running.on,
    delays: () => ({ min: 5, max: 40 }),
    onOpen: (url) => ev.opened.push(url),
    messages: { stream: (m) => ev.messages.push(m), eos: (m) => ev.messages.push(m) },
    onBinary: (d) => ev.binary.push(d),
    onClose: (e) => ev.closes.push(e.code),
    onReconnectScheduled: (delay, attempt) => ev.scheduled.push([delay, attempt]),
    onReconnect: () => {
      ev.reconnects++;
      t.newSession();
      t.open('ws://h/ws');
    },
    onError: (m, fatal) => ev.errors.push([m, fatal]),
    log: () => {},
  });
  live.push({ t, running });
  return { t, ev, running };
}

test('reconnectDelay: first attempt uniform in [0, min); then doubles from min up to max, ±15 % jitter', () => {
  assert.equal(reconnectDelay(0, 500, 5000, 0), 0);
  assert.equal(reconnectDelay(0, 500, 5000, 0.5), 250);
  assert.ok(reconnectDelay(0, 500, 5000, 0.999999) < 500);
  assert.equal(reconnectDelay(0, 500, 200, 0.5), 100, 'never above max');
  assert.equal(reconnectDelay(1, 500, 5000, 0.5), 1000);
  assert.equal(reconnectDelay(3, 500, 5000, 0.5), 4000);
  assert.equal(reconnectDelay(4, 500, 5000, 0.5), 5000);
  assert.equal(reconnectDelay(10, 500, 5000, 0), 5000 * 0.85);
  assert.equal(Math.round(reconnectDelay(1, 500, 5000, 0.999999)), 1150);
});

test('reconnectDelay: 300 viewers of one server come back spread over [0, min), not in lockstep', () => {
  // Math.random as the player uses it: the first attempts of 300 viewers cover the whole window
  const d = Array.from({ length: 300 }, () => reconnectDelay(0, 500, 5000));
  const bins = new Array(5).fill(0);
  for (const x of d) {
    assert.ok(x >= 0 && x < 500, `${x} in [0, 500)`);
    bins[Math.floor(x / 100)]++;
  }
  // each 100 ms fifth gets 60 on average; below 20 has a probability under 1e-9
  for (const [i, n] of bins.entries()) assert.ok(n >= 20, `${n} viewers in [${i * 100}, ${i * 100 + 100}) ms: ${bins}`);
  // the old ±15 % window (425–575 ms) would hold them all within 150 ms
  assert.ok(Math.max(...d) - Math.min(...d) > 400, 'spread over more than 400 ms');
});

test('resolveWebSocketUrl maps http(s) and relative URLs to ws(s)', () => {
  assert.equal(resolveWebSocketUrl('http://h:8080/ws'), 'ws://h:8080/ws');
  assert.equal(resolveWebSocketUrl('https://h/ws'), 'wss://h/ws');
  assert.equal(resolveWebSocketUrl('ws://h/ws'), 'ws://h/ws');
  assert.equal(resolveWebSocketUrl('/ws'), 'ws://localhost/ws', 'no page: against http://localhost/');
});

test('pageWebSocketUrl: ws next to the page, ?ws=, and the page\'s signed-link token passed on', () => {
  assert.equal(pageWebSocketUrl('http://h:8080/'), 'ws://h:8080/ws');
  assert.equal(pageWebSocketUrl('https://h/live/cam1/'), 'wss://h/live/cam1/ws');
  assert.equal(pageWebSocketUrl('http://h:8080/?ws=/other'), 'ws://h:8080/other');
  const tok = '1700000000.' + 'ab'.repeat(32);
  assert.equal(pageWebSocketUrl(`http://h:8080/live/cam1/?token=${tok}`), `ws://h:8080/live/cam1/ws?token=${tok}`);
  assert.equal(pageWebSocketUrl(`https://h/?latency=2&token=${tok}&debug`), `wss://h/ws?token=${tok}`);
  // with ?ws=: kept with its own query; a token of its own is not replaced
  assert.equal(pageWebSocketUrl(`http://h/?ws=/x%3Frebase%3D0&token=${tok}`), `ws://h/x?rebase=0&token=${tok}`);
  assert.equal(pageWebSocketUrl(`http://h/?ws=/x%3Ftoken%3Dmine&token=${tok}`), 'ws://h/x?token=mine');
  // never to another server (or port)
  assert.equal(pageWebSocketUrl(`http://h/?ws=ws://evil/ws&token=${tok}`), 'ws://evil/ws');
  assert.equal(pageWebSocketUrl(`http://h:8080/?ws=ws://h:9090/ws&token=${tok}`), 'ws://h:9090/ws');
  // same host given as ws://: passed on
  assert.equal(pageWebSocketUrl(`http://h:8080/?ws=ws://h:8080/ws&token=${tok}`), `ws://h:8080/ws?token=${tok}`);
});

test('messages by type, binary as Uint8Array, non-JSON reported, unknown types ignored', () => {
  const { t, ev } = setup();
  t.newSession();
  t.open('ws://h/ws');
  const ws = FakeWebSocket.all[0];
  assert.equal(ws.binaryType, 'arraybuffer');
  ws.serverOpen();
  assert.deepEqual(ev.opened, ['ws://h/ws']);
  ws.serverSend('{"type":"stream","generation":1}');
  ws.serverSend('{"type":"future-thing"}');
  ws.serverSend('{"type":"constructor"}');
  ws.serverSend('not json');
  ws.serverSend(new Uint8Array([1, 2, 3]).buffer);
  assert.deepEqual(ev.messages, [{ type: 'stream', generation: 1 }]);
  assert.equal(ev.errors.length, 1);
  assert.match(ev.errors[0][0], /not JSON/);
  assert.equal(ev.errors[0][1], false);
  assert.deepEqual([...ev.binary[0]], [1, 2, 3]);
});

test('send: only while open; report message fields as in docs/protocol.md', () => {
  const { t } = setup();
  t.newSession();
  t.open('ws://h/ws');
  const ws = FakeWebSocket.all[0];
  assert.equal(t.send({ type: 'pause' }), false, 'not open yet');
  ws.serverOpen();
  assert.ok(t.isOpen);
  assert.equal(t.send(reportMessage({ currentTime: 1.5, bufferedEnd: 3, stalls: 2, droppedFrames: 4 })), true);
  assert.deepEqual(ws.sent, [{ type: 'report', current_time: 1.5, buffered_end: 3, stalls: 2, dropped_frames: 4 }]);
});

test('lost connection: onClose, then reconnect with growing delays; backoff reset; stale socket ignored', async () => {
  const { t, ev } = setup();
  t.newSession();
  t.open('ws://h/ws');
  FakeWebSocket.all[0].serverClose(1006);
  assert.deepEqual(ev.closes, [1006]);
  assert.equal(ev.scheduled.length, 1);
  assert.equal(ev.scheduled[0][1], 1);
  assert.ok(ev.scheduled[0][0] >= 0 && ev.scheduled[0][0] < 5, 'first attempt: within [0, min)');
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(ev.reconnects, 1);
  assert.equal(FakeWebSocket.all.length, 2);
  // the old socket's late events are ignored
  FakeWebSocket.all[0].serverSend('{"type":"stream"}');
  FakeWebSocket.all[0].serverClose(1006);
  assert.deepEqual(ev.messages, []);
  assert.equal(ev.closes.length, 1);
  FakeWebSocket.all[1].serverClose(1006);
  assert.equal(ev.scheduled[1][1], 2);
  assert.ok(ev.scheduled[1][0] >= 10 * 0.85 && ev.scheduled[1][0] <= 10 * 1.15, 'then min·2 ±15 %');
  t.resetBackoff();
  assert.equal(t.attempts, 0);
  t.stop();
});

test('stop: closes with 1000, no reconnect; close(): reconnects like a lost connection', async () => {
  const { t, ev, running } = setup();
  t.newSession();
  t.open('ws://h/ws');
  const ws = FakeWebSocket.all[0];
  ws.serverOpen();
  t.close(1000, 'media error, reconnecting');
  assert.deepEqual(ws.closed, { code: 1000, reason: 'media error, reconnecting' });
  ws.serverClose(1000);
  assert.equal(ev.scheduled.length, 1, 'reconnect scheduled');
  running.on = false;
  t.stop();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(ev.reconnects, 0, 'stopped before the delay');
  running.on = true;
  t.newSession();
  t.open('ws://h/ws');
  const ws2 = FakeWebSocket.all[1];
  t.stop();
  assert.deepEqual(ws2.closed, { code: 1000, reason: 'player stopped' });
  ws2.serverClose(1000);
  assert.equal(ev.closes.length, 1, 'no callback after stop');
});
