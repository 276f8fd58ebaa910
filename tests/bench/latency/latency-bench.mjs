// Latency benchmark of the web player (issue 14): three stream shapes × renderers × injected delay
// jitter, in a real browser (Chromium; Firefox with --browser) over loopback, the player with no
// attributes (its defaults).
// On demand (not in ./run-tests.sh; the targets are held here, not in the test suites):
//
//   cd tests/e2e && npm ci                                   # puppeteer-core (once)
//   FMP4WS_BUILD=$PWD/build node tests/bench/latency/latency-bench.mjs \
//       [--shapes per-frame,70ms,700ms] [--renderers mse,webcodecs] [--jitter 0,20,50] [--seconds 30] \
//       [--out /tmp/fmp4ws-latency] [--markdown docs/latency.md] [--browser chromium|firefox] \
//       [--jitter-via auto|netem|proxy] [--join-after 3]
//
// Each run: the stream (see SHAPES) into `websocketsink`, the page `web/index.html` served by it
// (document-root = this tree's web/), `?renderer=NAME` set as the element's `renderer` attribute
// before it starts (MSE is the player's default: no attribute). From the first shown frame on,
// every 100 ms the harness reads, from outside the player, the `<video>`'s
// buffered.end − currentTime ("buffer") and the player's `stats` (stalls, wallClockLatency when the
// player has it); `waiting` events while playing are counted by a listener of the harness too.
// The viewer joins a running stream: the page opens `--join-after` s (default 3) after the server
// serves it (a publisher's first seconds are irregular: ffmpeg starting next to the browser falls
// behind and then sends faster than real time, up to ~1 s of media early; a viewer there from
// the very start would measure that burst, not the player; 0: join at once, as before).
// Jitter (`--jitter-via`, default auto: netem where it works, else the proxy; said in the output
// and in each result's `jitterVia`):
// - netem: as root, the server runs in a network namespace joined to this one by a veth pair, and
//   `tc qdisc add dev <veth in the namespace> root netem delay Jms Jms` delays every packet from
//   the server to the browser by 0–2J ms (uniform, mean J); loopback (shared with everything
//   else on the machine) is never touched;
// - proxy: where the kernel has no sch_netem (or without root), jitter-proxy.mjs (in this
//   process) between the browser and the server delays each chunk server → browser by 0–2J ms,
//   never before an earlier chunk (TCP's order); the page and its WebSocket go through it.
// Jitter 0 is always the direct connection (no qdisc, no proxy).
// Renderers: `mse` reads the `<video>` (buffer = buffered.end − currentTime, from outside the
// player); `webcodecs` has no `<video>`: its buffer is the player's `stats.latency` (end of the
// decoded and queued media − the media time on screen) and its first frame `stats.framesDrawn`.
// Writes OUT/results.jsonl (one line per run, every sample) and, with --markdown, the tables and
// an SVG plot of buffer/latency over time next to it (docs/latency-*.svg).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { launchBrowser, gotoPage, waitForFirstFrame } from '../../e2e/lib/browser.mjs';
import {
  Scene, Proc, SOURCE_DIR, TCP_PIPELINE, NOTES_TEST_INPUT, gstEnv, splitArgs, pluginBuilt, sleep, waitForServer,
} from '../../e2e/lib/pipeline.mjs';
import { renderMarkdown } from './report.mjs';
import { createJitterProxy } from './jitter-proxy.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB_DIR = path.join(SOURCE_DIR, 'web');
const NS = 'fmp4lat';
const HOST_IP = '10.214.0.1';
const NS_IP = '10.214.0.2';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const SECONDS = Number(arg('seconds', '30'));
const OUT = arg('out', '/tmp/fmp4ws-latency');
const MARKDOWN = arg('markdown', '');
const ENGINE = arg('browser', 'chromium');
const JITTER_VIA = arg('jitter-via', 'auto');
const JOIN_AFTER = Number(arg('join-after', '3'));

/** ffmpeg's notes command (x264 + AAC, -re lavfi 640x360@30) with another fragmenting. */
const notesArgs = (tcpPort, frag) => [
  '-hide_banner', '-nostats', '-loglevel', 'error', ...NOTES_TEST_INPUT,
  '-c:a', 'aac', '-ab', '64k', '-c:v', 'libx264', '-vb', '448k', '-vsync', '2', '-pix_fmt', 'yuv420p',
  '-profile:v', 'high', '-tune', 'zerolatency', '-g', '60', ...frag, '-write_prft', 'wallclock',
  '-f', 'mp4', `tcp://127.0.0.1:${tcpPort}/`,
];

/** A process, in the namespace when there is one. */
function spawnIn(scene, netns, name, cmd, args, env) {
  const wrap = netns ? ['netns', 'exec', netns.ns, cmd] : null;
  return scene.add(new Proc(name, wrap ? 'ip' : cmd, wrap ? [...wrap, ...args] : args, { env }));
}

/** The pipeline's port of an element (its `current-port` notification, gst-launch -v). */
async function portOf(proc, element) {
  const m = await proc.waitForLine(new RegExp(`:${element}: current-port = (\\d+)`), 15000);
  return Number(m[1]);
}

/** The three stream shapes of the issue. */
const SHAPES = {
  'per-frame': {
    what: 'ffmpeg x264 (zerolatency, GOP 60) + AAC, one fragment per frame (-movflags frag_every_frame), prft wallclock',
    frag: ['-movflags', 'frag_every_frame+default_base_moof', '-reset_timestamps', '1'],
  },
  '70ms': {
    what: "the notes' command (x264 zerolatency, GOP 60, + AAC, -frag_duration 70000), prft wallclock",
    frag: ['-movflags', 'frag_keyframe+default_base_moof', '-reset_timestamps', '1', '-frag_duration', '70000'],
  },
  '700ms': {
    what: 'examples/testpattern.sh: videotestsrc → x264enc zerolatency key-int-max=30 + audiotestsrc → avenc_aac → mp4mux fragment-duration=700 (no prft: the sink adds one)',
    pipeline: true,
  },
};

function testpatternDescription() {
  const sh = fs.readFileSync(path.join(SOURCE_DIR, 'examples', 'testpattern.sh'), 'utf8');
  const m = /exec gst-launch-1\.0 -e([\s\S]*)$/.exec(sh.replace(/\\\n/g, ' '));
  if (!m) throw new Error('examples/testpattern.sh: no `exec gst-launch-1.0 -e` line');
  return m[1].trim().replace(/websocketsink port="\$\{PORT\}"/, `websocketsink port=0 name=sink document-root=${WEB_DIR}`);
}

const sh = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

/** The namespace and its veth pair (as root), or null. */
function setupNetns() {
  if (process.getuid?.() !== 0) return null;
  try {
    teardownNetns();
    sh('ip', ['netns', 'add', NS]);
    sh('ip', ['link', 'add', `${NS}0`, 'type', 'veth', 'peer', 'name', `${NS}1`]);
    sh('ip', ['link', 'set', `${NS}1`, 'netns', NS]);
    sh('ip', ['addr', 'add', `${HOST_IP}/30`, 'dev', `${NS}0`]);
    sh('ip', ['link', 'set', `${NS}0`, 'up']);
    sh('ip', ['netns', 'exec', NS, 'ip', 'addr', 'add', `${NS_IP}/30`, 'dev', `${NS}1`]);
    sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', `${NS}1`, 'up']);
    sh('ip', ['netns', 'exec', NS, 'ip', 'link', 'set', 'lo', 'up']);
    let netem = null;
    try {
      sh('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', `${NS}1`, 'root', 'netem', 'delay', '1ms']);
      sh('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'del', 'dev', `${NS}1`, 'root']);
    } catch (e) {
      netem = String(e.stderr || e.message).trim().split('\n')[0];
    }
    return { ns: NS, netemError: netem };
  } catch (e) {
    console.error(`# no network namespace (${String(e.message).split('\n')[0]}): loopback, jitter 0 only`);
    teardownNetns();
    return null;
  }
}
const netems = (n) => n.netemError;
function teardownNetns() {
  try { sh('ip', ['link', 'del', `${NS}0`]); } catch { /* not there */ }
  try { sh('ip', ['netns', 'del', NS]); } catch { /* not there */ }
}
function setJitter(ms) {
  try { sh('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'del', 'dev', `${NS}1`, 'root']); } catch { /* none */ }
  if (ms > 0) sh('ip', ['netns', 'exec', NS, 'tc', 'qdisc', 'add', 'dev', `${NS}1`, 'root', 'netem', 'delay', `${ms}ms`, `${ms}ms`]);
}

/** Sets the element's renderer attribute before index.html sets `src` (MSE: nothing). */
function preloadRenderer(renderer) {
  let el;
  Object.defineProperty(window, 'player', {
    configurable: true,
    get: () => el,
    set: (v) => { el = v; },
  });
  if (renderer === 'mse') return;
  const orig = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function setAttribute(name, value) {
    if (this.localName === 'fmp4-player' && name === 'src' && !this.hasAttribute('renderer')) orig.call(this, 'renderer', renderer);
    return orig.call(this, name, value);
  };
}

const pct = (xs, p) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  return s[Math.min(s.length - 1, Math.max(0, Math.round((p / 100) * (s.length - 1))))];
};

async function runOne(browser, shape, renderer, jitter, netns, via) {
  const sc = SHAPES[shape];
  const scene = new Scene();
  /** @type {import('./jitter-proxy.mjs').JitterProxy|null} */
  let proxy = null;
  return scene.run(async () => {
    const host = netns ? NS_IP : '127.0.0.1';
    const desc = sc.pipeline ? testpatternDescription() : `${TCP_PIPELINE} document-root=${WEB_DIR}`;
    const gst = spawnIn(scene, netns, 'gst-launch', 'gst-launch-1.0', ['-v', ...splitArgs(desc)], gstEnv());
    const port = await portOf(gst, 'sink');
    const procs = [gst];
    if (!sc.pipeline) procs.push(spawnIn(scene, netns, 'ffmpeg', 'ffmpeg', notesArgs(await portOf(gst, 'src'), sc.frag)));
    await waitForServer(port, { stream: true, procs, host });
    if (JOIN_AFTER > 0) await sleep(JOIN_AFTER * 1000);
    if (netns && via === 'netem') setJitter(jitter);
    if (via === 'proxy' && jitter > 0) proxy = await createJitterProxy({ targetHost: host, targetPort: port, jitterMs: jitter });
    const page = await scene.newPage(browser);
    await page.evaluateOnNewDocument(preloadRenderer, renderer);
    await gotoPage(page, proxy ? `http://127.0.0.1:${proxy.port}/` : `http://${host}:${port}/`);
    if (renderer === 'mse') await waitForFirstFrame(page, { timeout: 20000 });
    else await page.waitForFunction(() => window.player?.stats?.framesDrawn > 0, { timeout: 20000, polling: 50 });
    await page.evaluate(() => {
      // the fragments' arrivals as the latency learner got them (player option `trace`, debug):
      // kept in results.jsonl for offline study of the learner (tests/bench/latency/learner-study.mjs)
      if (window.player.player) window.player.player.options.trace = 1000;
      window.__bench = { waiting: 0, at: [] };
      const v = window.player.video;
      v.addEventListener('waiting', () => {
        if (v.seeking) return;
        window.__bench.waiting++;
        const b = v.buffered;
        const ranges = [];
        for (let i = 0; i < b.length; i++) ranges.push([b.start(i), b.end(i)]);
        window.__bench.at.push({ currentTime: v.currentTime, ranges, readyState: v.readyState });
      });
    });
    const samples = [];
    const load0 = os.loadavg()[0];
    const t0 = Date.now();
    while (Date.now() - t0 < SECONDS * 1000) {
      const s = await page.evaluate(() => {
        const el = window.player;
        const v = el.video;
        const b = v.buffered;
        const st = el.stats;
        const wc = st.renderer === 'webcodecs';
        return {
          buffer: wc ? st.latency ?? null : b.length ? b.end(b.length - 1) - v.currentTime : null,
          wallClockLatency: st.wallClockLatency ?? null,
          wallClockSource: st.wallClockSource ?? null,
          target: st.targetLatency,
          rate: v.playbackRate,
          stalls: st.stalls,
          jumps: st.jumps,
          renderer: st.renderer ?? 'mse',
          waiting: window.__bench.waiting,
          jitter: st.jitter,
          margin: st.latencyMargin,
          ...(wc ? { clock: st.clock, frameQueue: st.frameQueue, audioQueue: st.audioQueue, droppedFrames: st.droppedFrames } : {}),
        };
      });
      samples.push({ t: (Date.now() - t0) / 1000, ...s });
      await sleep(100);
    }
    const last = samples.at(-1);
    const waitingAt = await page.evaluate(() => window.__bench.at);
    const arrivals = await page.evaluate(() => (window.player.player?.controlTrace ?? []).flatMap((s) => s.arrivals ?? []));
    const proxyStats = proxy ? { ...proxy.stats } : null;
    if (last.renderer !== renderer) throw new Error(`asked for renderer ${renderer}, the player used ${last.renderer}`);
    const buf = samples.map((s) => s.buffer);
    const wcl = samples.map((s) => s.wallClockLatency);
    const r = {
      shape, what: sc.what, renderer, joinAfter: JOIN_AFTER, jitterMs: jitter, jitterVia: jitter > 0 ? via : null, seconds: SECONDS, netns: !!netns,
      proxy: proxyStats && {
        chunks: proxyStats.chunks,
        meanDelayMs: proxyStats.chunks ? proxyStats.delaySumMs / proxyStats.chunks : null,
        maxHeldMs: proxyStats.maxHeldMs,
      },
      browser: await browser.browser.version(),
      loadAvg: [load0, os.loadavg()[0]], cpus: os.cpus().length,
      stalls: last.stalls, waiting: last.waiting, jumps: last.jumps,
      buffer: { p10: pct(buf, 10), p50: pct(buf, 50), p90: pct(buf, 90) },
      wallClock: { p50: pct(wcl, 50), p90: pct(wcl, 90), source: last.wallClockSource },
      target: last.target,
      waitingAt,
      arrivals,
      samples,
    };
    const f3 = (x) => (x === null ? '-' : x.toFixed(3));
    console.log(`${shape.padEnd(9)} ${renderer} jitter ${String(jitter).padStart(2)} ms${jitter ? ` (${via}${proxyStats ? `: ${proxyStats.chunks} chunks, mean delay ${r.proxy.meanDelayMs?.toFixed(1)} ms, held ≤ ${proxyStats.maxHeldMs.toFixed(0)} ms` : ''})` : ''}: buffer p50 ${f3(r.buffer.p50)} s (p10 ${f3(r.buffer.p10)}, p90 ${f3(r.buffer.p90)}), `
      + `${waitingAt.length ? `waiting at ${JSON.stringify(waitingAt)}, ` : ''}wall clock p50 ${f3(r.wallClock.p50)} s (${r.wallClock.source ?? '-'}), stalls ${r.stalls} (waiting ${r.waiting}), jumps ${r.jumps}, target ${f3(r.target)}, load ${load0.toFixed(1)}/${os.cpus().length} cores`);
    return r;
  }).finally(() => proxy?.close());
}

async function main() {
  if (!pluginBuilt()) throw new Error('plugin not built: set FMP4WS_BUILD to the build folder');
  const shapes = arg('shapes', Object.keys(SHAPES).join(',')).split(',');
  const renderers = arg('renderers', 'mse,webcodecs').split(',');
  let jitters = arg('jitter', '0,20,50').split(',').map(Number);
  for (const s of shapes) if (!SHAPES[s]) throw new Error(`unknown shape ${s}`);
  if (!['auto', 'netem', 'proxy'].includes(JITTER_VIA)) throw new Error(`--jitter-via: auto, netem or proxy, not ${JITTER_VIA}`);
  const wantJitter = jitters.some((j) => j > 0);
  // the namespace only for netem (the proxy runs on loopback, as jitter 0)
  let netns = wantJitter && JITTER_VIA !== 'proxy' ? setupNetns() : null;
  let via = JITTER_VIA === 'proxy' ? 'proxy' : 'netem';
  if (wantJitter && via === 'netem' && (!netns || netns.netemError)) {
    const why = !netns ? 'needs root (a network namespace and tc netem on its veth)'
      : `is not available here (\`tc qdisc add ... netem\`: ${netems(netns)}; the kernel has no sch_netem)`;
    if (JITTER_VIA === 'netem') throw new Error(`--jitter-via netem: tc netem ${why}`);
    console.error(`# tc netem ${why}: jitter through the userspace proxy (jitter-proxy.mjs) instead`);
    if (netns) teardownNetns();
    netns = null;
    via = 'proxy';
  }
  if (wantJitter) console.error(`# jitter via ${via === 'netem' ? 'tc netem on a veth pair' : 'the userspace delay-jitter proxy (jitter-proxy.mjs)'}`);
  fs.mkdirSync(OUT, { recursive: true });
  const file = path.join(OUT, 'results.jsonl');
  const results = [];
  let failed = 0;
  const b = await launchBrowser({ engine: ENGINE });
  try {
    for (const jitter of jitters) for (const shape of shapes) for (const renderer of renderers) {
      let r;
      try {
        r = await runOne(b, shape, renderer, jitter, netns, via);
      } catch (e) {
        // one run that fails (a renderer the browser lacks, a publisher that did not start) is a
        // row with its reason; the others still run
        const error = String(/** @type {Error} */ (e).message).split('\n')[0];
        console.error(`${shape.padEnd(9)} ${renderer} jitter ${String(jitter).padStart(2)} ms: FAILED: ${error}`);
        failed++;
        r = { shape, renderer, jitterMs: jitter, jitterVia: jitter > 0 ? via : null, browser: await b.browser.version(), error, loadAvg: [os.loadavg()[0], os.loadavg()[0]], cpus: os.cpus().length, samples: [] };
      }
      results.push(r);
      fs.appendFileSync(file, `${JSON.stringify(r)}\n`);
    }
  } finally {
    await b.close();
    if (netns) teardownNetns();
  }
  if (MARKDOWN) renderMarkdown(results, MARKDOWN);
  if (failed) throw new Error(`${failed} of ${results.length} runs failed (rows with their reason in ${file})`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  teardownNetns();
  process.exit(1);
});
