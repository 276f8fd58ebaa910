// Records REAL latency-controller traces: what `controlStep(state, sample, settings)`
// (web/player/latency-controller.js) got and decided at every 250 ms tick of the player, in a real
// browser playing a real stream. Run by hand (not by run-tests.sh, not by `node --test`):
//
//   cd tests/e2e && npm ci        # puppeteer-core (once)
//   cd tests/web && FMP4WS_BUILD=/abs/build node record-trace.mjs [scenario…]
//       FMP4WS_E2E_BROWSERS=chromium,firefox (default: both)   RECORD_SECONDS=30 (default)
//
// Writes tests/web/fixtures/trace-<browser>-<scenario>.json, replayed by
// latency-controller.test.mjs. Scenarios (default: all):
//   notes           the notes' ffmpeg command (70 ms fragments, `-re` lavfi test source) into
//                   `tcpserversrc ! fmp4initcache ! websocketsink` (examples/notes-tcp.sh)
//   testpattern     examples/testpattern.sh's pipeline (x264enc + avenc_aac → mp4mux
//                   fragment-duration=700, in the pipeline)
//   notes-sigstop   notes; at 12 s ffmpeg is stopped (SIGSTOP) for 2 s, then continued: the buffer
//                   runs dry, then ffmpeg (-re) sends the 2 s it owes at once
//   notes-hidden    notes; at 12 s the page says it is hidden for 3 s (document.visibilityState
//                   overridden + `visibilitychange`: the player's real pause path — it asks the
//                   server to pause — but the browser does not throttle timers as in a real
//                   hidden tab)
//
// How the samples are taken: the page is the player's own index.html, served by websocketsink
// with `document-root=<this checkout>/web` (so the web/ of this tree is what runs, not the copy in
// the plugin's GResource); a preload script sets the player's debug option `trace` before its first
// tick, and the player keeps every step in `player.controlTrace` (`{t, state, sample, settings,
// seek, rate, arrivals}`: the exact objects passed to and returned by controlStep, and the fragment arrivals the latency learner got). The fixture keeps them
// as `ticks` (`settings` once at the top when they never change).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BROWSERS, launchBrowser, gotoPage, waitForFirstFrame } from '../e2e/lib/browser.mjs';
import {
  Scene, SOURCE_DIR, TCP_PIPELINE, notesFfmpegArgs, pluginBuilt, sleep, startServer, waitForServer,
} from '../e2e/lib/pipeline.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WEB_DIR = path.join(SOURCE_DIR, 'web');
const SECONDS = Number(process.env.RECORD_SECONDS || 30);
const DISTURB_AT = 12; // s after the first frame

/** examples/testpattern.sh's pipeline, read from the script, with port=0 name=sink document-root. */
function testpatternDescription() {
  const sh = fs.readFileSync(path.join(SOURCE_DIR, 'examples', 'testpattern.sh'), 'utf8');
  const m = /exec gst-launch-1\.0 -e([\s\S]*)$/.exec(sh.replace(/\\\n/g, ' '));
  if (!m) throw new Error('examples/testpattern.sh: no `exec gst-launch-1.0 -e` line');
  const desc = m[1].trim().replace(/websocketsink port="\$\{PORT\}"/, `websocketsink port=0 name=sink document-root=${WEB_DIR}`);
  if (/\$\{/.test(desc) || !/name=sink/.test(desc)) throw new Error(`examples/testpattern.sh: unexpected pipeline: ${desc}`);
  return desc;
}

/** @type {Record<string, { what: string, start: (scene: Scene) => Promise<{port: number, ff?: any, desc: string}>,
 *   disturb?: (ctx: {ff?: any, page: any}) => Promise<string> }>} */
const SCENARIOS = {
  notes: {
    what: "the notes' ffmpeg command (-frag_duration 70000, -re lavfi testsrc2 640x360@30 + sine) into examples/notes-tcp.sh's pipeline",
    start: notesStream,
  },
  testpattern: {
    what: 'examples/testpattern.sh (videotestsrc → x264enc key-int-max=30 + audiotestsrc → avenc_aac → mp4mux fragment-duration=700)',
    async start(scene) {
      const desc = testpatternDescription();
      const { gst, port } = await startServer(scene, desc);
      await waitForServer(port, { stream: true, procs: [gst] });
      return { port, desc };
    },
  },
  'notes-sigstop': {
    what: "notes; ffmpeg SIGSTOPped for 2 s at 12 s after the first frame, then SIGCONT (-re: it then sends the 2 s it owes at once)",
    start: notesStream,
    async disturb({ ff }) {
      ff.signalCommand('SIGSTOP');
      await sleep(2000);
      ff.signalCommand('SIGCONT');
      return 'ffmpeg SIGSTOP 2 s';
    },
  },
  'notes-hidden': {
    what: 'notes; page hidden for 3 s at 12 s after the first frame (visibilityState overridden + visibilitychange: the player pauses the server; timers not throttled)',
    start: notesStream,
    async disturb({ page }) {
      const setHidden = (hidden) => page.evaluate((h) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
        document.dispatchEvent(new Event('visibilitychange'));
      }, hidden);
      await setHidden(true);
      await sleep(3000);
      await setHidden(false);
      return 'page hidden 3 s (emulated)';
    },
  },
};

/** @param {Scene} scene */
async function notesStream(scene) {
  const desc = `${TCP_PIPELINE} document-root=${WEB_DIR}`;
  const { gst, port, tcpPort } = await startServer(scene, desc);
  const ff = scene.ffmpeg(notesFfmpegArgs(tcpPort));
  await waitForServer(port, { stream: true, procs: [gst, ff] });
  return { port, ff, desc: `${desc}  <-  ffmpeg ${notesFfmpegArgs(tcpPort).join(' ')}` };
}

/** Sets the player's `trace` option as soon as index.html publishes `window.player` (before its first tick). */
function preloadTrace(n) {
  let el;
  Object.defineProperty(window, 'player', {
    configurable: true,
    get: () => el,
    set: (v) => {
      el = v;
      if (v && v.player) v.player.options.trace = n;
    },
  });
}

async function record(browser, engine, version, name) {
  const sc = SCENARIOS[name];
  const scene = new Scene();
  return scene.run(async () => {
    const { port, ff, desc } = await sc.start(scene);
    const page = await scene.newPage(browser);
    await page.evaluateOnNewDocument(preloadTrace, 10000);
    await gotoPage(page, `http://127.0.0.1:${port}/`);
    await waitForFirstFrame(page, { timeout: 15000 });
    const now = () => page.evaluate(() => performance.now());
    let disturbance = null;
    const t0 = Date.now();
    if (sc.disturb) {
      await sleep(DISTURB_AT * 1000);
      const from = await now();
      const label = await sc.disturb({ ff, page });
      disturbance = { what: label, from, to: await now() };
    }
    await sleep(Math.max(0, SECONDS * 1000 - (Date.now() - t0)));
    // JSON in the page: objects shared between steps (a state's latencySamples, a state that is both
    // one step's output and the next one's input) are copied whole (WebDriver BiDi's serialisation
    // sends a repeated reference as a bare handle, which puppeteer turns into nothing)
    const got = JSON.parse(await page.evaluate(() => JSON.stringify({
      trace: window.player.player.controlTrace,
      stats: window.player.stats,
    })));
    const steps = got.trace ?? [];
    if (steps.length < 20) throw new Error(`${engine}/${name}: only ${steps.length} controller steps recorded`);
    // A stream that did not come in real time (the machine too loaded for ffmpeg/x264 to keep
    // up: media arriving at a fraction of the wall clock) is no trace of the player: refused.
    const live = steps.flatMap((k) => k.arrivals ?? []).filter((a) => !a[3]);
    if (live.length < 20) throw new Error(`${engine}/${name}: only ${live.length} fragment arrivals recorded`);
    const mediaPerWall = ((live.at(-1)[1] + live.at(-1)[2]) - (live[0][1] + live[0][2])) / ((live.at(-1)[0] - live[0][0]) / 1000);
    if (mediaPerWall < 0.85) {
      throw new Error(`${engine}/${name}: the stream delivered ${mediaPerWall.toFixed(2)} s of media per s (< 0.85): machine too loaded, not recorded (load average ${os.loadavg()[0].toFixed(1)})`);
    }
    const settings = steps[0].settings;
    const same = steps.every((s) => JSON.stringify(s.settings) === JSON.stringify(settings));
    const ticks = steps.map((s) => {
      const { settings: st, ...rest } = s;
      return same ? rest : s;
    });
    if (disturbance) {
      disturbance.fromTick = ticks.findIndex((k) => k.t >= disturbance.from);
      disturbance.toTick = ticks.findIndex((k) => k.t >= disturbance.to);
    }
    const st = got.stats;
    const out = {
      about: `REAL trace, recorded by tests/web/record-trace.mjs on ${new Date().toISOString()} in ${version} `
        + `(headless, puppeteer-core, Debian 12): scenario "${name}": ${sc.what}; index.html of this tree's web/ `
        + `(websocketsink document-root) with the player's debug option trace: every 250 ms tick's exact `
        + `controlStep input (state, sample; settings below) and output (seek, rate), ${ticks.length} ticks from the first `
        + `one after the page loaded. t: performance.now() in the page (ms). Player stats at the end: `
        + `jumps=${st.jumps} stalls=${st.stalls} latency=${st.latency?.toFixed?.(3)} playbackRate=${st.playbackRate} `
        + `fragmentDuration=${st.fragmentDuration}.`,
      browser: engine,
      browserVersion: version,
      scenario: name,
      recordedAt: new Date().toISOString(),
      pipeline: desc,
      disturbance,
      settings: same ? settings : null,
      ticks,
    };
    const file = path.join(HERE, 'fixtures', `trace-${engine}-${name}.json`);
    // one tick a line: readable diffs
    const head = JSON.stringify({ ...out, ticks: undefined }, null, 1).replace(/\n}$/, '');
    fs.writeFileSync(file, `${head},\n"ticks":[\n${ticks.map((k) => JSON.stringify(k)).join(',\n')}\n]}\n`);
    const seeks = ticks.filter((k) => k.seek).length;
    const rates = {};
    for (const k of ticks) rates[k.rate] = (rates[k.rate] ?? 0) + 1;
    console.log(`${path.relative(process.cwd(), file)}: ${ticks.length} ticks, ${seeks} seeks, rates ${JSON.stringify(rates)}${disturbance ? `, disturbance ticks ${disturbance.fromTick}..${disturbance.toTick}` : ''}`);
  });
}

async function main() {
  if (!pluginBuilt()) throw new Error('plugin not built: set FMP4WS_BUILD to the build folder');
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SCENARIOS);
  for (const n of names) if (!SCENARIOS[n]) throw new Error(`unknown scenario ${n} (${Object.keys(SCENARIOS).join(', ')})`);
  for (const engine of BROWSERS) {
    const b = await launchBrowser({ engine });
    try {
      const version = await b.browser.version();
      for (const n of names) await record(b, engine, version, n);
    } finally {
      await b.close();
    }
  }
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
