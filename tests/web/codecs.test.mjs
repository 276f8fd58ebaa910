// describeCodec, mediaSourceClass and checkSupport (web/player/codecs.js) with a fake MediaSource.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { describeCodec, mediaSourceClass, checkSupport } from '../../web/player/codecs.js';

/** A MediaSource class whose isTypeSupported accepts the codecs given (and their combinations). */
function fakeMediaSource(codecs) {
  return class {
    static isTypeSupported(mime) {
      const m = /codecs="([^"]*)"/.exec(mime);
      if (!m) return mime === 'video/mp4' || mime === 'audio/mp4';
      return m[1].split(',').every((c) => codecs.includes(c.trim()));
    }
  };
}

afterEach(() => {
  delete globalThis.MediaSource;
  delete globalThis.ManagedMediaSource;
});

test('describeCodec names the codecs of the streams the server sends', () => {
  assert.equal(describeCodec('avc1.64001f'), 'H.264/AVC (avc1.64001f)');
  assert.equal(describeCodec('hvc1.1.6.L93.B0'), 'H.265/HEVC (hvc1.1.6.L93.B0)');
  assert.equal(describeCodec('vp09.00.10.08'), 'VP9 (vp09.00.10.08)');
  assert.equal(describeCodec('av01.0.04M.08'), 'AV1 (av01.0.04M.08)');
  assert.equal(describeCodec('mp4a.40.2'), 'AAC (mp4a.40.2)');
  assert.equal(describeCodec('mp4a.6B'), 'MP3 (mp4a.6B)');
  assert.equal(describeCodec('ac-3'), 'AC-3 (ac-3)');
  assert.equal(describeCodec('ec-3'), 'E-AC-3 (ec-3)');
  assert.equal(describeCodec('opus'), 'Opus (opus)');
  assert.equal(describeCodec('fLaC'), 'FLAC (fLaC)');
  assert.equal(describeCodec('xyz1'), 'xyz1', 'unknown: as is');
});

test('mediaSourceClass: MediaSource, else ManagedMediaSource (iOS Safari), else none', () => {
  assert.deepEqual(mediaSourceClass(), { MS: null, managed: false });
  const Managed = fakeMediaSource([]);
  globalThis.ManagedMediaSource = Managed;
  assert.deepEqual(mediaSourceClass(), { MS: Managed, managed: true });
  const MS = fakeMediaSource([]);
  globalThis.MediaSource = MS;
  assert.deepEqual(mediaSourceClass(), { MS, managed: false });
});

test('checkSupport: no MSE at all', () => {
  const r = checkSupport({ mime: 'video/mp4; codecs="avc1.64001f"' });
  assert.equal(r.ok, false);
  assert.match(r.reason, /no Media Source Extensions/);
});

test('checkSupport: supported stream', () => {
  globalThis.MediaSource = fakeMediaSource(['avc1.64001f', 'mp4a.40.2']);
  assert.deepEqual(checkSupport({ mime: 'video/mp4; codecs="avc1.64001f,mp4a.40.2"', codecs: 'avc1.64001f,mp4a.40.2' }), { ok: true });
});

test('checkSupport: names the codec the browser cannot play (codecs field, or from the mime)', () => {
  globalThis.MediaSource = fakeMediaSource(['avc1.64001f', 'mp4a.40.2']);
  const r = checkSupport({ mime: 'video/mp4; codecs="hvc1.1.6.L93.B0,mp4a.40.2"', codecs: 'hvc1.1.6.L93.B0,mp4a.40.2' });
  assert.deepEqual(r, { ok: false, unsupported: ['hvc1.1.6.L93.B0'], reason: 'This browser cannot play H.265/HEVC (hvc1.1.6.L93.B0).' });
  const r2 = checkSupport({ mime: 'audio/mp4; codecs="ac-3"' });
  assert.deepEqual(r2.unsupported, ['ac-3']);
  assert.equal(r2.reason, 'This browser cannot play AC-3 (ac-3).');
});

test('checkSupport: a stream without a mime (no audio/video track, or a codec the server cannot name)', () => {
  globalThis.MediaSource = fakeMediaSource(['avc1.64001f']);
  const r = checkSupport({ mime: '', codecs: '', has_video: false, has_audio: false });
  assert.equal(r.ok, false);
  assert.match(r.reason, /no audio or video track/);
  assert.match(checkSupport({ mime: '', codecs: '', has_video: true, has_audio: false }).reason, /does not know the codec/);
  assert.equal(describeCodec('vvc1.1.L51.CQA'), 'H.266/VVC (vvc1.1.L51.CQA)');
  assert.equal(describeCodec('ac-4.02.01.01'), 'AC-4 (ac-4.02.01.01)');
});

test('checkSupport through ManagedMediaSource', () => {
  globalThis.ManagedMediaSource = fakeMediaSource(['avc1.64001f']);
  assert.equal(checkSupport({ mime: 'video/mp4; codecs="avc1.64001f"' }).ok, true);
  assert.equal(checkSupport({ mime: 'video/mp4; codecs="vp09.00.10.08"' }).ok, false);
});

test('checkSupport: each codec fine alone but not together: the whole mime is named', () => {
  globalThis.MediaSource = class {
    static isTypeSupported(mime) {
      return !mime.includes(',');
    }
  };
  const r = checkSupport({ mime: 'video/mp4; codecs="av01.0.04M.08,fLaC"', codecs: 'av01.0.04M.08,fLaC' });
  assert.deepEqual(r.unsupported, []);
  assert.equal(r.reason, 'This browser cannot play video/mp4; codecs="av01.0.04M.08,fLaC" (AV1 (av01.0.04M.08) + FLAC (fLaC)).');
});
