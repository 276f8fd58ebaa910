// The SourceBuffer operation queue (web/player/append-queue.js) with a fake MediaSource and
// SourceBuffer: operations start one at a time on `updateend`, in order; QuotaExceededError evicts
// media behind the playhead (cut at a keyframe) and retries the same append.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { MsePipeline } from '../../web/player/append-queue.js';

class FakeTimeRanges {
  /** @param {Array<[number, number]>} r */
  constructor(r) {
    this.r = r;
  }
  get length() {
    return this.r.length;
  }
  start(i) {
    return this.r[i][0];
  }
  end(i) {
    return this.r[i][1];
  }
}

class FakeSourceBuffer extends EventTarget {
  constructor(mime) {
    super();
    this.mime = mime;
    this.updating = false;
    /** @type {Array<[number, number]>} buffered ranges, set by the test */
    this.ranges = [];
    /** every call, in order: ['append', tag] / ['remove', start, end] / ['changeType', mime] */
    this.calls = [];
    /** appends that throw QuotaExceededError (by tag, once each) */
    this.full = new Set();
  }
  get buffered() {
    return new FakeTimeRanges(this.ranges);
  }
  appendBuffer(data) {
    if (this.updating) throw new DOMException('still updating', 'InvalidStateError');
    const tag = data[0];
    if (this.full.delete(tag)) {
      this.calls.push(['quota', tag]);
      throw new DOMException('full', 'QuotaExceededError');
    }
    this.calls.push(['append', tag]);
    this.updating = true;
  }
  remove(start, end) {
    if (this.updating) throw new DOMException('still updating', 'InvalidStateError');
    this.calls.push(['remove', start, end]);
    this.ranges = this.ranges.map(([s, e]) => [Math.max(s, end), e]).filter(([s, e]) => e > s);
    this.updating = true;
  }
  changeType(mime) {
    this.calls.push(['changeType', mime]);
  }
  /** The browser finishes the running operation. */
  finish() {
    assert.ok(this.updating, 'finish() with nothing running');
    this.updating = false;
    this.dispatchEvent(new Event('updateend'));
  }
}

class FakeMediaSource extends EventTarget {
  static last = null;
  constructor() {
    super();
    this.readyState = 'closed';
    /** @type {FakeSourceBuffer|null} */
    this.sb = null;
    FakeMediaSource.last = this;
  }
  addSourceBuffer(mime) {
    this.sb = new FakeSourceBuffer(mime);
    return this.sb;
  }
  removeSourceBuffer() {}
  open() {
    this.readyState = 'open';
    this.dispatchEvent(new Event('sourceopen'));
  }
}

const saved = {};
beforeEach(() => {
  saved.createObjectURL = URL.createObjectURL;
  saved.revokeObjectURL = URL.revokeObjectURL;
  URL.createObjectURL = () => 'blob:fake';
  URL.revokeObjectURL = () => {};
  globalThis.MediaSource = FakeMediaSource;
});
afterEach(() => {
  URL.createObjectURL = saved.createObjectURL;
  URL.revokeObjectURL = saved.revokeObjectURL;
  delete globalThis.MediaSource;
});

function setup() {
  const events = { fatal: [], evictions: 0 };
  const video = { currentTime: 0, src: '', removeAttribute() {}, load() {} };
  const mse = new MsePipeline(/** @type {any} */ (video), 'video/mp4; codecs="avc1.64001f"', {
    onFatal: (m) => events.fatal.push(m),
    onEvict: () => events.evictions++,
    onStreaming: () => {},
    log: () => {},
  });
  const ms = FakeMediaSource.last;
  return { mse, ms, video, events };
}
const data = (tag) => new Uint8Array([tag, 0, 0, 0]);

test('appends wait for sourceopen, then run one at a time, in order, on updateend', () => {
  const { mse, ms, video, events } = setup();
  assert.equal(video.src, 'blob:fake');
  const done = [];
  for (const tag of [1, 2, 3]) mse.push({ type: 'append', data: data(tag), onDone: () => done.push(tag) });
  assert.equal(ms.sb, null, 'no SourceBuffer before sourceopen');
  ms.open();
  const sb = ms.sb;
  assert.deepEqual(sb.calls, [['append', 1]]);
  assert.equal(mse.queuedBytes, 12);
  sb.finish();
  assert.deepEqual(done, [1]);
  assert.deepEqual(sb.calls, [['append', 1], ['append', 2]]);
  mse.push({ type: 'append', data: data(4) });
  sb.finish();
  sb.finish();
  assert.deepEqual(sb.calls.map((c) => c[1]), [1, 2, 3, 4]);
  assert.deepEqual(done, [1, 2, 3]);
  sb.finish();
  assert.ok(mse.idle);
  assert.deepEqual(events.fatal, []);
});

test('changeType and calls run in queue order, between appends', () => {
  const { mse, ms } = setup();
  ms.open();
  const sb = ms.sb;
  const order = [];
  mse.push({ type: 'append', data: data(1) });
  mse.push({ type: 'changeType', mime: 'video/mp4; codecs="vp09.00.10.08"' });
  mse.push({ type: 'call', name: 'mark', fn: () => order.push('call') });
  mse.push({ type: 'append', data: data(2) });
  assert.deepEqual(order, [], 'the call waits for the append before it');
  sb.finish();
  assert.deepEqual(order, ['call']);
  assert.deepEqual(sb.calls, [['append', 1], ['changeType', 'video/mp4; codecs="vp09.00.10.08"'], ['append', 2]]);
});

test('QuotaExceededError: removes media up to the last keyframe before the playhead, then retries the same append', () => {
  const { mse, ms, video, events } = setup();
  ms.open();
  const sb = ms.sb;
  sb.ranges = [[0, 30]];
  for (let t = 0; t <= 28; t += 2) mse.addKeyframe(t);
  video.currentTime = 25;
  sb.full.add(7);
  mse.push({ type: 'append', data: data(7) });
  assert.deepEqual(sb.calls, [['quota', 7], ['remove', 0, 24]]);
  assert.equal(events.evictions, 1);
  sb.finish();
  assert.deepEqual(sb.calls.slice(2), [['append', 7]], 'the same data, once');
  sb.finish();
  assert.ok(mse.idle);
  assert.deepEqual(sb.ranges, [[24, 30]]);
  assert.deepEqual(events.fatal, []);
});

test('QuotaExceededError with nothing behind the playhead: waits and retries (no data dropped)', async () => {
  const { mse, ms, video, events } = setup();
  ms.open();
  const sb = ms.sb;
  sb.ranges = [[20, 30]];
  mse.addKeyframe(20);
  video.currentTime = 20.05;
  sb.full.add(9);
  mse.push({ type: 'append', data: data(9) });
  assert.deepEqual(sb.calls, [['quota', 9]]);
  assert.equal(events.evictions, 0);
  mse.push({ type: 'append', data: data(10) });
  assert.deepEqual(sb.calls, [['quota', 9]], 'the next append waits too');
  await new Promise((r) => setTimeout(r, 650));
  assert.deepEqual(sb.calls, [['quota', 9], ['append', 9]]);
  sb.finish();
  assert.deepEqual(sb.calls.at(-1), ['append', 10]);
  mse.destroy();
});

test('trimBackBuffer: removes old media up to a keyframe, once at a time; remove is clamped to the buffered end', () => {
  const { mse, ms } = setup();
  ms.open();
  const sb = ms.sb;
  sb.ranges = [[0, 40]];
  for (let t = 0; t <= 38; t += 4) mse.addKeyframe(t);
  mse.trimBackBuffer(35 - 20);
  assert.deepEqual(sb.calls, [['remove', 0, 12]]);
  mse.trimBackBuffer(16);
  assert.equal(sb.calls.length, 1, 'a removal is already running');
  sb.finish();
  mse.trimBackBuffer(13);
  assert.equal(sb.calls.length, 1, 'less than 2 s to remove');
  mse.push({ type: 'remove', start: 0, end: Infinity });
  assert.deepEqual(sb.calls.at(-1), ['remove', 0, 40]);
});

test('keyframe list starts over when the timeline goes back', () => {
  const { mse } = setup();
  for (const t of [10, 12, 14]) mse.addKeyframe(t);
  assert.equal(mse.safeRemoveEnd(13), 12);
  mse.addKeyframe(2);
  assert.deepEqual(mse.keyframes, [2]);
  assert.equal(mse.safeRemoveEnd(1), null);
});

test('an append that throws otherwise is fatal; destroy stops the queue', () => {
  const { mse, ms, events } = setup();
  ms.open();
  const sb = ms.sb;
  sb.appendBuffer = () => {
    throw new DOMException('closed', 'InvalidStateError');
  };
  mse.push({ type: 'append', data: data(1) });
  assert.deepEqual(events.fatal, ['appendBuffer failed: InvalidStateError: closed']);
  mse.destroy();
  mse.push({ type: 'append', data: data(2) });
  assert.equal(events.fatal.length, 1);
});
