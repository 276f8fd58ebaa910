// The real-world matrix of issue 13: every fragmented MP4 that another packager or an ffmpeg
// guide produces either plays or gets a clear error.
//
// Inputs: the public files of other packagers in ../shared/realworld (MANIFEST.tsv: GPAC,
// Apple, AWS Elemental, Unified Streaming, Bento4, old ffmpeg), and short clips made here with
// ffmpeg's fragmenting options (with/without default_base_moof, omit_tfhd_offset, empty_moov,
// separate_moof, negative_cts_offsets, -write_prft wallclock, frag_every_frame, delay_moov,
// -f ismv, cmaf (styp), global_sidx, an extra tx3g text track, audio only).
// Debian 12 has no gpac package (MP4Box): the GPAC-made streams are the shared files' (GPAC
// 0.5, 2.1, 2.4: sidx per fragment, styp, chunked CMAF, VVC); ffmpeg's cmaf and global_sidx
// give styp/sidx streams of our own.
//
// For each input:
// 1. fmp4initcache keeps every sample: ffprobe's packet count of every stream of the input
//    equals that of the element's output (`filesrc ! fmp4initcache ! filesink`) — and the
//    samples the input's trun/stsz boxes declare, the reference where ffprobe misreads an
//    input.
// 2. Debian's Chromium plays it through `tcpserversrc ! fmp4initcache ! websocketsink`
//    (index.html, the input fed over TCP in ~1.5 s and the connection then kept open): frames
//    decoded (audio only: currentTime advances), no MediaError, for a viewer that opens at the
//    start and for a late joiner that opens when 60 % was fed (each in its own window, so that
//    both pages stay visible; the input is never held back for a viewer). An input whose MSE type this
//    Chromium refuses (or that has no audio/video track) must instead get a clear error: the
//    player in state `unsupported` with its message shown.
//
// ../shared missing is a failure, never a skip (CI lays it beside the clone).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import {
  Scene, SOURCE_DIR, TCP_PIPELINE, gstEnv, metric, pluginBuilt, sleep, startServer, waitForServer,
} from '../e2e/lib/pipeline.mjs';

/** ../shared beside the clone (override: FMP4WS_SHARED). */
const SHARED = path.resolve(process.env.FMP4WS_SHARED || path.join(SOURCE_DIR, '..', 'shared'));
const REALWORLD = path.join(SHARED, 'realworld');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
/** Same flags as tests/e2e (lib/browser.mjs CHROMIUM_ARGS). */
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
];
const FEED_MS = 1500; // each input is fed over TCP in this long, in 25 chunks
const LATE_AT = 0.6; // the late joiner opens when this share of the input was fed
const PLAY_TIMEOUT = 6000; // ms for a viewer to decode a frame once the input was fed

/** The shared files, from MANIFEST.tsv (a listed file that is missing fails its case). */
function sharedCases() {
  const manifest = path.join(REALWORLD, 'MANIFEST.tsv');
  if (!fs.existsSync(manifest)) return null;
  return fs.readFileSync(manifest, 'utf8').split('\n').slice(1).filter((l) => l.trim())
    .map((l) => l.split('\t')[0]).map((f) => ({ name: f, file: path.join(REALWORLD, f), todo: KNOWN_FAILURES[f] }));
}

/**
 * Cases that still fail, each with why: reported as TODO (run, shown with their failure, counted
 * apart by run-tests.sh, never as passed). Issue 13 stays open while this list is not empty.
 */
const KNOWN_FAILURES = {};

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'fmp4ws-realworld-'));
const SRT = path.join(TMP, 'subtitles.srt');
const AV_INPUT = ['-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=30:duration=2', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=2'];
// B-frames (veryfast keeps them) so that composition offsets, negative ones too, are there
const AV_CODECS = ['-c:v', 'libx264', '-preset', 'veryfast', '-g', '15', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-b:a', '64k'];
const MP4 = (flags, extra = []) => [...AV_INPUT, ...AV_CODECS, ...extra, '-f', 'mp4', '-movflags', flags];
/** ffmpeg's options as guides give them; `args` end before the output file. */
const FFMPEG_CASES = [
  { name: 'ffmpeg frag_keyframe+empty_moov (no default_base_moof)', args: MP4('frag_keyframe+empty_moov') },
  { name: 'ffmpeg frag_keyframe+empty_moov+default_base_moof', args: MP4('frag_keyframe+empty_moov+default_base_moof') },
  { name: 'ffmpeg frag_keyframe+default_base_moof (no empty_moov)', args: MP4('frag_keyframe+default_base_moof') },
  { name: 'ffmpeg frag_keyframe+empty_moov+omit_tfhd_offset', args: MP4('frag_keyframe+empty_moov+omit_tfhd_offset') },
  { name: 'ffmpeg +separate_moof', args: MP4('frag_keyframe+empty_moov+default_base_moof+separate_moof') },
  { name: 'ffmpeg +negative_cts_offsets', args: MP4('frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets') },
  { name: 'ffmpeg -write_prft wallclock', args: MP4('frag_keyframe+empty_moov+default_base_moof', ['-write_prft', 'wallclock']) },
  { name: 'ffmpeg frag_every_frame', args: MP4('frag_every_frame+empty_moov+default_base_moof') },
  { name: 'ffmpeg +delay_moov', args: MP4('frag_keyframe+empty_moov+default_base_moof+delay_moov') },
  { name: 'ffmpeg +cmaf (styp)', args: MP4('frag_keyframe+empty_moov+default_base_moof+cmaf') },
  { name: 'ffmpeg +global_sidx', args: MP4('frag_keyframe+empty_moov+default_base_moof+global_sidx') },
  { name: 'ffmpeg -f ismv (Smooth Streaming)', args: [...AV_INPUT, ...AV_CODECS, '-f', 'ismv'] },
  { name: 'ffmpeg audio only, -frag_duration 500000', args: [...AV_INPUT.slice(4), '-c:a', 'aac', '-b:a', '64k', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000'] },
  {
    name: 'ffmpeg with a tx3g text track (handler sbtl)',
    args: [...AV_INPUT, '-i', SRT, '-map', '0', '-map', '1', '-map', '2', ...AV_CODECS, '-c:s', 'mov_text', '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof'],
  },
];

/** @returns {string[]} "type:codec=packets" of every stream ffprobe finds */
function packetCounts(file) {
  const r = spawnSync('ffprobe', ['-v', 'error', '-count_packets', '-show_entries',
    'stream=codec_type,codec_name,nb_read_packets', '-of', 'json', file], { encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, `ffprobe ${file}: ${r.stderr}`);
  return (JSON.parse(r.stdout).streams ?? []).map((s) => `${s.codec_type}:${s.codec_name}=${s.nb_read_packets}`);
}

/**
 * The samples an ISO BMFF file declares, per track in moov order: the moov's `stsz`
 * sample_count plus every `trun` sample_count of its track (ISO/IEC 14496-12 §8.7.3, §8.8.8).
 * The reference of "every sample kept": ffprobe itself misreads some inputs (GPAC 0.5's
 * implicit base across two trafs: 88 AAC packets of 119).
 * @returns {number[]}
 */
function declaredSamples(file) {
  const d = fs.readFileSync(file);
  const boxes = function* (start, end) {
    for (let s = start; s + 8 <= end;) {
      let size = d.readUInt32BE(s);
      let header = 8;
      if (size === 1) { size = Number(d.readBigUInt64BE(s + 8)); header = 16; }
      if (size === 0) size = end - s;
      if (size < header || s + size > end) return;
      yield { type: d.toString('latin1', s + 4, s + 8), payload: s + header, end: s + size };
      s += size;
    }
  };
  const child = (box, type) => { for (const b of boxes(box.payload, box.end)) if (b.type === type) return b; return null; };
  const ids = [];
  const count = new Map();
  for (const top of boxes(0, d.length)) {
    if (top.type === 'moov') {
      for (const trak of boxes(top.payload, top.end)) {
        if (trak.type !== 'trak') continue;
        const tkhd = child(trak, 'tkhd');
        const id = d.readUInt32BE(tkhd.payload + (d[tkhd.payload] === 1 ? 20 : 12));
        const stbl = child(child(child(trak, 'mdia') ?? trak, 'minf') ?? trak, 'stbl');
        const stsz = stbl && (child(stbl, 'stsz') ?? child(stbl, 'stz2'));
        ids.push(id);
        count.set(id, stsz ? d.readUInt32BE(stsz.payload + 8) : 0);
      }
    } else if (top.type === 'moof') {
      for (const traf of boxes(top.payload, top.end)) {
        if (traf.type !== 'traf') continue;
        const id = d.readUInt32BE(child(traf, 'tfhd').payload + 4);
        for (const b of boxes(traf.payload, traf.end)) {
          if (b.type === 'trun') count.set(id, (count.get(id) ?? 0) + d.readUInt32BE(b.payload + 4));
        }
      }
    }
  }
  return ids.map((id) => count.get(id));
}

/** Runs `filesrc ! fmp4initcache ! filesink`; returns the output file and the pipeline's log. */
function throughInitCache(file) {
  const out = path.join(TMP, `${path.basename(file)}.out.mp4`);
  const r = spawnSync('gst-launch-1.0', ['filesrc', `location=${file}`, '!', 'fmp4initcache', '!', 'filesink', `location=${out}`],
    { encoding: 'utf8', env: gstEnv(), timeout: 60000 });
  return { out, status: r.status, log: `${r.stdout}\n${r.stderr}`.trim() };
}

/** Feeds `file` to 127.0.0.1:port in 25 chunks over FEED_MS; the socket stays open (no EOS). */
async function feed(file, port, onProgress) {
  const data = fs.readFileSync(file);
  const sock = net.connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  sock.on('error', () => {});
  const n = 25;
  for (let i = 0; i < n; i++) {
    const chunk = data.subarray(Math.floor((i * data.length) / n), Math.floor(((i + 1) * data.length) / n));
    await new Promise((resolve) => sock.write(chunk, resolve));
    await onProgress((i + 1) / n);
    await sleep(FEED_MS / n);
  }
  return sock;
}

/** In-page: the <fmp4-player>'s video and state. */
function inPageState() {
  const el = document.querySelector('fmp4-player');
  const v = el?.shadowRoot?.querySelector('video');
  const q = v?.getVideoPlaybackQuality?.();
  const msg = el?.shadowRoot?.querySelector('.msg');
  return {
    state: el?.player?.state ?? null,
    currentTime: v ? v.currentTime : 0,
    ended: v ? v.ended : false,
    decoded: q ? q.totalVideoFrames : 0,
    width: v ? v.videoWidth : 0,
    error: v?.error ? { code: v.error.code, message: v.error.message } : null,
    message: msg && !msg.hidden ? msg.textContent : '',
  };
}

/** Waits until `pred(state)` or the timeout; returns the last state. */
async function waitState(page, pred, timeout) {
  const t0 = Date.now();
  let s;
  for (;;) {
    s = await page.evaluate(inPageState);
    if (pred(s) || Date.now() - t0 > timeout) return s;
    await sleep(100);
  }
}

describe('real-world fragmented MP4', () => {
  const shared = sharedCases();
  /** @type {import('puppeteer-core').Browser} */
  let browser;
  const logs = [];
  const chromium = {
    logs,
    // each viewer in its own window, as two viewers on two screens: a second tab in one window
    // would hide the first page (its player then pauses the stream, state 'suspended')
    newPage: async () => {
      const p = await browser.newPage({ type: 'window' });
      p.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
      p.on('pageerror', (e) => logs.push(`[pageerror] ${e?.message ?? e}`));
      return p;
    },
  };
  before(async () => {
    fs.writeFileSync(SRT, '1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n');
    browser = await puppeteer.launch({ browser: 'chrome', executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close().catch(() => {});
    fs.rmSync(TMP, { recursive: true, force: true });
  });

  test('the shared real-world files are there (../shared/realworld/MANIFEST.tsv)', () => {
    assert.ok(shared, `${REALWORLD}/MANIFEST.tsv is missing: ../shared must be beside the clone (or set FMP4WS_SHARED)`);
    assert.ok(shared.length > 0, 'MANIFEST.tsv lists no file');
    assert.ok(pluginBuilt(), 'the plugin is not built');
  });

  test('ffmpeg audio only with frag_keyframe alone (live): the page says why nothing plays and how to fix it', async (t) => {
    const scene = new Scene();
    await scene.run(async () => {
      const { gst, port, tcpPort } = await startServer(scene,
        'tcpserversrc host=0.0.0.0 port=0 name=src ! fmp4initcache no-fragment-timeout=2000 ! websocketsink port=0 name=sink');
      const ff = scene.ffmpeg(['-re', '-f', 'lavfi', '-i', 'sine=frequency=440', '-c:a', 'aac', '-b:a', '64k',
        '-f', 'mp4', '-movflags', 'frag_keyframe+empty_moov+default_base_moof', `tcp://localhost:${tcpPort}/`]);
      await waitForServer(port, { stream: true, procs: [gst, ff] });
      const page = await scene.newPage(chromium);
      await page.goto(`http://127.0.0.1:${port}/`, { waitUntil: 'domcontentloaded' });
      const s = await waitState(page, (x) => x.message.includes('-frag_duration'), 15000);
      assert.ok(s.message.includes('-frag_duration 500000'), `the page shows ${JSON.stringify(s)}`);
      const status = await (await fetch(`http://127.0.0.1:${port}/status`)).json();
      assert.ok(String(status.stream?.warning).includes('frag_keyframe'), `/status: ${JSON.stringify(status.stream)}`);
      metric(t, 'realworld/diagnostic/audio-only-frag_keyframe', { message: JSON.stringify(s.message.slice(0, 100)) });
    });
  });

  // A stream that ends before the browser can start it: less media than Chromium needs to leave
  // HAVE_METADATA (02's first 60 %: 0.30 s, its only keyframe in the moov; a 0.3 s ffmpeg clip),
  // then EOS. The player ends the MediaSource (endOfStream), so what was buffered plays to its
  // end, and it stays 'ended' (not 'playing' when the tail starts, nor 'reconnecting' after).
  const SHORT_CASES = [
    { name: '02 cut at 60 %', make: (out) => {
      const d = fs.readFileSync(path.join(REALWORLD, '02_ffmpeg-lavf58_h264-aac_partially-fragmented.mp4'));
      fs.writeFileSync(out, d.subarray(0, Math.floor(d.length * LATE_AT)));
    } },
    { name: 'ffmpeg 0.3 s clip', make: (out) => {
      const r = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...MP4('frag_keyframe+empty_moov+default_base_moof'), '-t', '0.3', out],
        { encoding: 'utf8', timeout: 60000 });
      assert.equal(r.status, 0, r.stderr);
    } },
  ];
  for (const c of SHORT_CASES) {
    test(`a stream that ends before the browser can start it (${c.name}): plays to its end, state 'ended'`, async (t) => {
      const file = path.join(TMP, `short-${c.name.replace(/[^\w]+/g, '_')}.mp4`);
      c.make(file);
      const scene = new Scene();
      await scene.run(async () => {
        const { gst, port, tcpPort } = await startServer(scene, TCP_PIPELINE);
        let page = null;
        const sock = await feed(file, tcpPort, async () => {
          if (page) return;
          const s = await waitForServer(port, { procs: [gst], timeout: 500 }).catch(() => null);
          if (!s?.stream) return;
          page = await scene.newPage(chromium);
          await page.goto(`http://127.0.0.1:${port}/?debug`, { waitUntil: 'domcontentloaded' });
        });
        sock.end(); // EOS: the pipeline ends, the sink sends `eos` to its viewers
        assert.ok(page, 'the server never had the stream');
        const s = await waitState(page, (x) => x.ended || x.error !== null, PLAY_TIMEOUT);
        assert.equal(s.error, null, JSON.stringify(s));
        assert.ok(s.ended && s.currentTime > 0 && s.decoded > 0, `did not play to its end: ${JSON.stringify(s)}`);
        assert.equal(s.state, 'ended', JSON.stringify(s));
        metric(t, `realworld/short/${c.name.replace(/[^\w]+/g, '_')}`, { played_s: s.currentTime.toFixed(3), decoded: s.decoded });
      });
    });
  }

  const cases = [...(shared ?? []).map((c) => ({ ...c, kind: 'shared' })), ...FFMPEG_CASES.map((c) => ({ ...c, kind: 'ffmpeg' }))];
  for (const c of cases) {
    test(c.name, c.todo ? { todo: c.todo } : {}, async (t) => {
      let file = c.file;
      if (c.kind === 'ffmpeg') {
        file = path.join(TMP, `${c.name.replace(/[^\w+-]+/g, '_')}.mp4`);
        const r = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y', ...c.args, file], { encoding: 'utf8', timeout: 60000 });
        assert.equal(r.status, 0, `ffmpeg ${c.args.join(' ')}: ${r.stderr}`);
      }
      assert.ok(fs.existsSync(file), `missing ${file}`);

      // 1. every sample kept (checked after the playback, so that one run tells both): ffprobe's
      //    packet counts of the input and of fmp4initcache's output are equal, and equal to
      //    the samples the input's boxes declare; where ffprobe misreads the input, the
      //    declared count is the reference (said in the metric line)
      const input = packetCounts(file);
      const declared = declaredSamples(file);
      const ffprobeMisreads = input.length !== declared.length ||
        input.some((x, i) => Number(x.split('=')[1]) !== declared[i]);
      const reference = ffprobeMisreads ? input.map((x, i) => `${x.split('=')[0]}=${declared[i]}`) : input;
      const cached = throughInitCache(file);
      const output = cached.status === 0 ? packetCounts(cached.out) : [];
      const samplesKept = () => {
        assert.equal(cached.status, 0, `fmp4initcache failed on ${path.basename(file)}:\n${cached.log}`);
        assert.deepEqual(output, reference, `packets out (ffprobe of fmp4initcache's output) vs in (${ffprobeMisreads
          ? `the input's trun/stsz sample counts, ffprobe reads ${input.join(',')}` : 'ffprobe of the input'})\n${cached.log}`);
      };

      // 2. Chromium through websocketsink: a viewer from the start and a late joiner
      const scene = new Scene();
      await scene.run(async () => {
        const { gst, port, tcpPort } = await startServer(scene, TCP_PIPELINE);
        const pages = [];
        let mime = '';
        let sock;
        const open = async () => {
          const page = await scene.newPage(chromium);
          await page.goto(`http://127.0.0.1:${port}/`, { waitUntil: 'domcontentloaded' });
          pages.push(page);
        };
        sock = await feed(file, tcpPort, async (done) => {
          if (pages.length === 0) {
            const s = await waitForServer(port, { procs: [gst], timeout: 500 }).catch(() => null);
            if (s?.stream) {
              mime = s.stream.mime ?? '';
              await open();
            }
          } else if (pages.length === 1 && done >= LATE_AT) {
            // never hold the input for a viewer to start: the first 60 % of a short input can be
            // less than Chromium needs to leave HAVE_METADATA (02: 0.30 s of media, its moov's
            // 37 KB keyframe being most of the bytes, stays at readyState 1 until more comes)
            await open();
          }
        });
        try {
          const status = await waitForServer(port, { stream: true, procs: [gst], timeout: 5000 });
          mime = status.stream.mime ?? '';
          while (pages.length < 2) await open();
          const hasVideo = /^video\//.test(mime);
          const supported = mime !== '' && await pages[0].evaluate((m) => MediaSource.isTypeSupported(m), mime);
          // both viewers at once (a failing case costs one timeout, not two)
          const results = await Promise.all(pages.map((page) => (supported
            ? waitState(page, (x) => x.error !== null || x.state === 'unsupported' ||
                (hasVideo ? x.decoded > 0 && x.currentTime > 0 : x.currentTime > 0), PLAY_TIMEOUT)
            : waitState(page, (x) => x.state === 'unsupported' && x.message !== '', PLAY_TIMEOUT))));
          for (const [i, s] of results.entries()) {
            const who = i === 0 ? 'viewer from the start' : 'late joiner';
            const brief = `${who}: ${JSON.stringify(s)} (mime ${JSON.stringify(mime)})`;
            if (supported) {
              assert.equal(s.error, null, `MediaError: ${brief}`);
              assert.notEqual(s.state, 'unsupported', brief);
              if (hasVideo) assert.ok(s.decoded > 0 && s.width > 0, `no frame decoded: ${brief}`);
              assert.ok(s.currentTime > 0, `currentTime did not advance: ${brief}`);
            } else {
              // a clear error instead: the player says why
              assert.equal(s.state, 'unsupported', `this Chromium cannot play ${JSON.stringify(mime)}: want a clear error, got ${brief}`);
              assert.ok(s.message.length > 0, `no message shown: ${brief}`);
            }
          }
          metric(t, `realworld/${c.kind}/${path.basename(file)}`, {
            mime: JSON.stringify(mime), plays: supported, packets_in: JSON.stringify(reference.join(',')),
            ffprobe_misreads_input: ffprobeMisreads,
            packets_out: JSON.stringify(output.join(',')),
            decoded_first: results[0].decoded, decoded_late: results[1].decoded,
            message: JSON.stringify(supported ? '' : results[0].message.slice(0, 80)),
          });
        } finally {
          sock.destroy();
        }
      });
      samplesKept();
    });
  }
});
