// Process helpers for the e2e tests: real gst-launch-1.0 pipelines (with the plugin of
// $FMP4WS_BUILD/gst) and real ffmpeg publishers. Every process runs in its own process group,
// under coreutils `timeout` (a hard cap even if this Node process is SIGKILLed), and is killed by
// process group when its test ends, on failure too (`Scene.run`), and at exit.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Build folder of the plugin: $FMP4WS_BUILD (absolute), default ../../../build. */
export const BUILD_DIR = path.resolve(process.env.FMP4WS_BUILD || path.join(HERE, '../../../build'));
/** Folder holding libgstfmp4ws.so. */
export const PLUGIN_DIR = path.join(BUILD_DIR, 'gst');

/** Hard cap (s) on any process started here, enforced by coreutils `timeout`. */
const HARD_CAP = Number(process.env.FMP4WS_E2E_PROC_CAP || 240);

/** Environment for gst-launch: our plugin first, and our own registry file (no clash with ~/.cache). */
export function gstEnv(extra = {}) {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return {
    ...process.env,
    GST_PLUGIN_PATH: PLUGIN_DIR + (process.env.GST_PLUGIN_PATH ? `:${process.env.GST_PLUGIN_PATH}` : ''),
    GST_REGISTRY: process.env.GST_REGISTRY || path.join(os.tmpdir(), `fmp4ws-e2e-registry-${uid}.bin`),
    ...extra,
  };
}

/** @type {Set<Proc>} every process still alive, killed at exit whatever happens */
const live = new Set();
function killAllSync() {
  for (const p of live) p.killGroup('SIGKILL');
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] ?? 1));
  });
}

const T0 = Date.now();
const stamp = (t = Date.now()) => ((t - T0) / 1000).toFixed(2).padStart(7);

/** A child process in its own process group, with a bounded log of its output. */
export class Proc {
  /**
   * @param {string} name short name for logs
   * @param {string} cmd
   * @param {string[]} args
   * @param {{ env?: NodeJS.ProcessEnv, stdin?: 'ignore'|'pipe', stdout?: 'log'|'pipe',
   *           maxLines?: number, cap?: number }} [opts]
   *   `stdout: 'pipe'` leaves stdout to the caller (`proc.child.stdout`), e.g. ffmpeg writing to
   *   pipe:1; stderr is always logged.
   */
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.cmd = [cmd, ...args];
    this.maxLines = opts.maxLines ?? 400;
    /** @type {Array<{ t: number, text: string }>} output lines (bounded) with their Date.now() */
    this.entries = [];
    this.startedAt = Date.now();
    /** @type {Array<{re: RegExp, resolve: (m: RegExpMatchArray) => void}>} */
    this._waiters = [];
    const cap = opts.cap ?? HARD_CAP;
    this.child = spawn('timeout', ['--kill-after=3', String(cap), cmd, ...args], {
      env: opts.env ?? process.env,
      detached: true, // own process group: killGroup() reaches everything it started
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    this.pid = this.child.pid;
    this.exitCode = /** @type {number|null} */ (null);
    this.exitSignal = /** @type {string|null} */ (null);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        live.delete(this);
        this._push(`[exit] code=${code} signal=${signal}`);
        resolve({ code, signal });
      });
    });
    this.child.once('error', (e) => this._push(`[spawn error] ${e.message}`));
    live.add(this);
    this._collect(this.child.stderr);
    if (opts.stdout !== 'pipe') this._collect(this.child.stdout);
    if (this.child.stdin) this.child.stdin.on('error', (e) => this._push(`[stdin] ${e.message}`));
    this._push(`[start] pid=${this.pid} ${this.cmd.join(' ')}`);
  }

  get alive() {
    return this.exitCode === null && this.exitSignal === null;
  }

  /** @param {import('node:stream').Readable} stream */
  _collect(stream) {
    let rest = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      const parts = (rest + chunk).split(/\r?\n|\r/);
      rest = parts.pop() ?? '';
      for (const l of parts) if (l.trim()) this._push(l);
    });
    stream.on('end', () => rest.trim() && this._push(rest));
  }

  /** @param {string} line */
  _push(line) {
    const t = Date.now();
    const text = line.length > 400 ? `${line.slice(0, 400)}…` : line;
    this.entries.push({ t, text });
    if (this.entries.length > this.maxLines) this.entries.splice(0, this.entries.length - this.maxLines);
    for (const w of [...this._waiters]) {
      const m = line.match(w.re);
      if (m) {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        w.resolve(Object.assign(m, { time: t }));
      }
    }
  }

  /** Output lines, each prefixed with seconds since the test file started. */
  get lines() {
    return this.entries.map((e) => `${stamp(e.t)} ${e.text}`);
  }

  /**
   * Waits for an output line matching `re` (lines already seen count too).
   * @param {RegExp} re
   * @param {number} [timeout] ms
   * @returns {Promise<RegExpMatchArray & { time: number }>} the match, and when (Date.now()) the
   *   line was printed
   */
  waitForLine(re, timeout = 15000) {
    for (const e of this.entries) {
      const m = e.text.match(re);
      if (m) return Promise.resolve(Object.assign(m, { time: e.t }));
    }
    return new Promise((resolve, reject) => {
      const w = { re, resolve: (m) => { clearTimeout(timer); resolve(m); } };
      const timer = setTimeout(() => {
        this._waiters.splice(this._waiters.indexOf(w), 1);
        reject(new Error(`${this.name}: no output line matching ${re} within ${timeout} ms${this.alive ? '' : ' (process exited)'}`));
      }, timeout);
      this._waiters.push(w);
      this.exited.then(() => setTimeout(() => {
        if (this._waiters.includes(w)) {
          clearTimeout(timer);
          this._waiters.splice(this._waiters.indexOf(w), 1);
          reject(new Error(`${this.name} exited (code ${this.exitCode}, signal ${this.exitSignal}) before printing ${re}`));
        }
      }, 50));
    });
  }

  /** Sends `signal` to the whole process group (no error if it is gone). */
  killGroup(signal = 'SIGKILL') {
    if (!this.alive) return;
    try {
      process.kill(-this.pid, signal);
    } catch (e) {
      if (/** @type {any} */ (e).code !== 'ESRCH') throw e;
    }
  }

  /**
   * Sends `signal` to the command alone (the child of the coreutils `timeout` wrapper), once.
   * A signal to the group reaches the command up to three times (from the sender, forwarded by
   * `timeout`, and `timeout`'s own kill of the group): gst-launch-1.0 handles the first SIGINT
   * and removes its handler, so a late second one kills it mid-shutdown. Tests of what a
   * program does on a signal use this.
   * @param {NodeJS.Signals} signal
   */
  signalCommand(signal) {
    if (!this.alive) return;
    const children = fs.readFileSync(`/proc/${this.pid}/task/${this.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    if (children.length !== 1) throw new Error(`${this.name}: expected one child of timeout, found [${children.join(', ')}]`);
    process.kill(Number(children[0]), signal);
  }

  /**
   * Stops the process: `signal` to its group, SIGKILL after `grace` ms.
   * @param {{ signal?: NodeJS.Signals, grace?: number }} [opts]
   */
  async stop({ signal = 'SIGKILL', grace = 3000 } = {}) {
    if (!this.alive) return this.exited;
    this.killGroup(signal);
    if (signal !== 'SIGKILL') {
      const t = setTimeout(() => this.killGroup('SIGKILL'), grace);
      await this.exited;
      clearTimeout(t);
    }
    return this.exited;
  }

  /** @param {number} [n] last lines of output */
  tail(n = 60) {
    return `--- ${this.name} (pid ${this.pid}${this.alive ? ', running' : `, exit ${this.exitCode ?? this.exitSignal}`}) ---\n${this.lines.slice(-n).join('\n')}`;
  }
}

/**
 * A TCP port that is free now (for programs that cannot report the port they picked, like the
 * example scripts): bound on all interfaces (IPv4 and IPv6), then released.
 * @returns {Promise<number>}
 */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/** Source tree root (examples/ and web/ live there). */
export const SOURCE_DIR = path.resolve(HERE, '../../..');

/**
 * Runs an example script of examples/ (with GST_PLUGIN_PATH set) on free ports and waits for its
 * server; retries with other ports if a port was taken in between.
 * @param {Scene} scene
 * @param {string} script file name in examples/
 * @param {number} nPorts how many port arguments the script takes (the first is the HTTP port)
 * @returns {Promise<{ proc: Proc, port: number, ports: number[] }>}
 */
export async function startExample(scene, script, nPorts = 1) {
  let lastErr;
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = [];
    while (ports.length < nPorts) {
      const p = await freePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const proc = scene.add(new Proc(script, path.join(SOURCE_DIR, 'examples', script), ports.map(String), { env: gstEnv() }));
    try {
      await waitForServer(ports[0], { procs: [proc] });
      return { proc, port: ports[0], ports };
    } catch (e) {
      lastErr = e;
      if (proc.alive) throw e;
      if (!/already in use|could not start the web server|failed to bind|bind/i.test(proc.lines.join('\n'))) throw e;
    }
  }
  throw lastErr;
}

/** A gst-launch-1.0 pipeline (run with -v so that `current-port` notifications are printed). */
export class GstPipeline extends Proc {
  /**
   * @param {string} description gst-launch pipeline description
   * @param {{ name?: string, env?: object, stdin?: 'ignore'|'pipe', cap?: number }} [opts]
   */
  constructor(description, opts = {}) {
    super(opts.name ?? 'gst-launch', 'gst-launch-1.0', ['-v', ...splitArgs(description)], {
      env: gstEnv(opts.env), stdin: opts.stdin, cap: opts.cap,
    });
    this.description = description;
  }

  /**
   * The port an element listens on, from its `current-port` notification (port=0 picks one).
   * @param {string} element element name (`name=` in the description)
   * @param {number} [timeout] ms
   */
  async port(element, timeout = 15000) {
    const re = new RegExp(`:${element.replace(/[^\w-]/g, '')}: current-port = (\\d+)`);
    const m = await this.waitForLine(re, timeout);
    return Number(m[1]);
  }
}

/**
 * Splits a pipeline description into argv words as a shell would (whitespace; "double quotes" keep
 * spaces): gst-launch-1.0 escapes the spaces inside each of its arguments.
 * @param {string} s
 * @returns {string[]}
 */
export function splitArgs(s) {
  const out = [];
  let cur = '';
  let quoted = false;
  let any = false;
  for (const ch of s) {
    if (ch === '"') {
      quoted = !quoted;
      any = true;
    } else if (/\s/.test(ch) && !quoted) {
      if (any) out.push(cur);
      cur = '';
      any = false;
    } else {
      cur += ch;
      any = true;
    }
  }
  if (any) out.push(cur);
  return out;
}

/**
 * Starts a pipeline.
 * @param {string} description
 * @param {ConstructorParameters<typeof GstPipeline>[1]} [opts]
 */
export function startPipeline(description, opts) {
  return new GstPipeline(description, opts);
}

/**
 * Starts ffmpeg with `args` (only the logging options -hide_banner -nostats -loglevel are added).
 * @param {string[]} args
 * @param {{ name?: string, stdout?: 'log'|'pipe', loglevel?: string, cap?: number }} [opts]
 */
export function startFfmpeg(args, opts = {}) {
  return new Proc(opts.name ?? 'ffmpeg', 'ffmpeg',
    ['-hide_banner', '-nostats', '-loglevel', opts.loglevel ?? 'warning', ...args],
    { stdout: opts.stdout, cap: opts.cap });
}

/**
 * Polls `GET /status` until the server answers (and, with `stream`, until it has an init segment).
 * @param {number} port
 * @param {{ timeout?: number, stream?: boolean, host?: string, procs?: Proc[], query?: string }} [opts]
 *   `procs`: fail early when one of these exits; `query`: e.g. `?token=...` (a signed link).
 * @returns {Promise<any>} the status JSON
 */
export async function waitForServer(port, opts = {}) {
  const { timeout = 20000, stream = false, host = '127.0.0.1', procs = [], query = '' } = opts;
  const t0 = Date.now();
  let last = 'no answer';
  for (;;) {
    for (const p of procs) if (!p.alive) throw new Error(`${p.name} exited (code ${p.exitCode}, signal ${p.exitSignal}) while waiting for http://${host}:${port}/status\n${p.tail(30)}`);
    try {
      const r = await fetch(`http://${host}:${port}/status${query}`, { signal: AbortSignal.timeout(2000) });
      if (r.ok) {
        const s = await r.json();
        if (!stream || s.stream) return s;
        last = JSON.stringify(s);
      } else last = `HTTP ${r.status}`;
    } catch (e) {
      last = /** @type {Error} */ (e).message;
    }
    if (Date.now() - t0 > timeout) throw new Error(`server on port ${port} not ready within ${timeout} ms (${stream ? 'waiting for a stream; ' : ''}last: ${last})`);
    await sleep(100);
  }
}

/** @param {number} port @param {string} [host] @param {string} [query] e.g. `?token=...` */
export async function getStatus(port, host = '127.0.0.1', query = '') {
  const r = await fetch(`http://${host}:${port}/status${query}`, { signal: AbortSignal.timeout(3000) });
  return r.json();
}

/** @param {number} ms */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps the processes (and a browser) of one test and tears them down; attaches their logs to
 * errors so that a failure shows what the pipeline and the page said.
 */
export class Scene {
  constructor() {
    /** @type {Proc[]} */
    this.procs = [];
    /** @type {{ logs: string[] }|null} browser whose console is reported on failure */
    this.browser = null;
    /** @type {Array<{ close: () => Promise<void> }>} pages closed by cleanup() */
    this.pages = [];
  }

  /**
   * A new page of `browser` (from launchBrowser), closed by cleanup(); its console is in report().
   * @param {{ newPage: () => Promise<import('puppeteer-core').Page>, logs: string[] }} browser
   */
  async newPage(browser) {
    this.browser = browser;
    browser.logs.length = 0;
    const page = await browser.newPage();
    this.pages.push(page);
    return page;
  }

  /** @template {Proc} P @param {P} p @returns {P} */
  add(p) {
    this.procs.push(p);
    return p;
  }

  /** @param {string} description @param {ConstructorParameters<typeof GstPipeline>[1]} [opts] */
  pipeline(description, opts) {
    return this.add(startPipeline(description, opts));
  }

  /** @param {string[]} args @param {Parameters<typeof startFfmpeg>[1]} [opts] */
  ffmpeg(args, opts) {
    return this.add(startFfmpeg(args, opts));
  }

  /** Logs of every process and the page, for a failure message. */
  report(lines = 40) {
    const parts = this.procs.map((p) => p.tail(lines));
    if (this.browser) parts.push(`--- page console ---\n${this.browser.logs.slice(-lines).join('\n')}`);
    return parts.join('\n');
  }

  /** Closes the pages and kills every process group (SIGINT first, SIGKILL after 2 s). */
  async cleanup() {
    if (process.env.FMP4WS_E2E_DEBUG) console.log(`# e2e-debug\n${this.report(200).replace(/^/gm, '# ')}`);
    await Promise.all(this.pages.map((p) => p.close().catch(() => {})));
    this.pages = [];
    await Promise.all(this.procs.map((p) => p.stop({ signal: 'SIGINT', grace: 2000 })));
    this.procs = [];
  }

  /**
   * Runs `fn`; on error, appends the processes' and page's logs to the error message.
   * @template T @param {() => Promise<T>} fn @returns {Promise<T>}
   */
  async run(fn) {
    try {
      return await fn();
    } catch (e) {
      const err = /** @type {Error} */ (e);
      err.message = `${err.message}\n${this.report()}`;
      throw err;
    } finally {
      await this.cleanup();
    }
  }
}

/** @type {Set<string>|null} */
let encoderSet = null;

/**
 * @param {string} name an ffmpeg encoder name (`libx264`, `libvpx-vp9`, `libopus`…)
 * @returns {boolean} whether this machine's ffmpeg has it
 */
export function ffmpegHasEncoder(name) {
  if (!encoderSet) {
    encoderSet = new Set();
    const r = spawnSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8', timeout: 20000 });
    for (const l of `${r.stdout ?? ''}`.split('\n')) {
      const m = /^\s[VAS][.A-Z]{5}\s+(\S+)/.exec(l);
      if (m) encoderSet.add(m[1]);
    }
  }
  return encoderSet.has(name);
}

/** Whether the plugin is built (the tests fail with this message otherwise). */
export function pluginBuilt() {
  return fs.existsSync(path.join(PLUGIN_DIR, 'libgstfmp4ws.so'));
}

/**
 * Prints one measurement line, easy to grep in the TAP output: `# e2e-metric <scenario> k=v …`.
 * @param {import('node:test').TestContext} t
 * @param {string} scenario
 * @param {Record<string, unknown>} values
 */
export function metric(t, scenario, values) {
  const kv = Object.entries(values)
    .map(([k, v]) => `${k}=${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(3)) : v}`)
    .join(' ');
  t.diagnostic(`e2e-metric ${scenario} ${kv}`);
}

/**
 * The notes' ffmpeg command (seed/fmp4-websocket-mse-notes.pt.md), as written, with a test source
 * instead of `-f avfoundation -i "2:1"`; the output URL is `tcp://localhost:PORT/`.
 * @param {number} port tcpserversrc port
 * @param {string[]} [input] ffmpeg input options
 */
export function notesFfmpegArgs(port, input = NOTES_TEST_INPUT) {
  return [
    ...input,
    '-c:a', 'aac', '-ab', '64k', '-c:v', 'libx264', '-vb', '448k', '-vsync', '2', '-pix_fmt', 'yuv420p', '-profile:v', 'high',
    '-f', 'mp4', '-movflags', 'frag_keyframe+default_base_moof', '-reset_timestamps', '1', '-frag_duration', '70000',
    `tcp://localhost:${port}/`,
  ];
}

/** `-re -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440` */
export const NOTES_TEST_INPUT = ['-re', '-f', 'lavfi', '-i', 'testsrc2=size=640x360:rate=30', '-f', 'lavfi', '-i', 'sine=frequency=440'];

/** The receiving end of the notes' command: `tcpserversrc ! fmp4initcache ! websocketsink`. */
export const TCP_PIPELINE = 'tcpserversrc host=0.0.0.0 port=0 name=src ! fmp4initcache ! websocketsink port=0 name=sink';

/**
 * Starts `description` (which names its websocketsink `sink` and, if any, its tcpserversrc `src`)
 * and waits for its HTTP server.
 * @param {Scene} scene
 * @param {string} description
 * @returns {Promise<{ gst: GstPipeline, port: number, tcpPort: number|null }>}
 */
export async function startServer(scene, description, opts = {}) {
  const gst = scene.pipeline(description, opts);
  const port = await gst.port('sink');
  const tcpPort = /name=src\b/.test(description) ? await gst.port('src') : null;
  await waitForServer(port, { procs: [gst] });
  return { gst, port, tcpPort };
}
