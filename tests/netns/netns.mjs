// Linux network namespaces for the tests in this directory (Debian's iproute2, as root): a
// Topology creates named namespaces (`fmp4ws-<pid>-<role>`, unique per run), joins pairs of
// them with veth pairs (one /24 per link), runs processes inside them (nsenter --net) and
// removes everything — processes, namespaces and the /run/netns mount if this run made it —
// when the test ends, also on failure, timeout or a signal. Namespaces left by a run that
// crashed (its pid is gone) are removed by the next run before it starts.
// Not a test file itself: `node --test` only runs *.test.mjs here.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const PREFIX = 'fmp4ws-';

function run(args) {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * The command line running `cmd args` in namespace `ns`. nsenter (util-linux) only enters the
 * network namespace; `ip netns exec` and `ip -n` also make "/" a slave mount, which fails in a
 * chroot whose root is not a mount point (CI's fresh Debian root: "mount --make-rslave /"
 * failed: Invalid argument).
 * @param {string} ns full name @param {string} cmd @param {string[]} args
 * @returns {[string, string[]]}
 */
export function inNamespace(ns, cmd, args) {
  return ['nsenter', [`--net=/run/netns/${ns}`, '--', cmd, ...args]];
}

/** `ip args` in namespace `ns` (see inNamespace). */
function ipIn(ns, args) {
  const [c, a] = inNamespace(ns, 'ip', args);
  return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function isMountpoint(path) {
  try {
    execFileSync('findmnt', ['-rn', '--mountpoint', path], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** @returns {string[]} the names `ip netns list` shows */
export function listNamespaces() {
  return run(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
}

/** SIGKILLs every process in namespace `ns` and deletes it (errors ignored: best effort). */
function destroyNamespace(ns) {
  for (let i = 0; i < 3; i++) {
    let pids = [];
    try { pids = run(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number); } catch { break; }
    if (pids.length === 0) break;
    for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    execFileSync('sleep', ['0.1']);
  }
  try { run(['netns', 'del', ns]); } catch { /* already gone */ }
}

/**
 * Why namespaces cannot be used here, or null when they can: root, `ip` (iproute2) and a
 * namespace that can really be added and removed.
 * @returns {string|null}
 */
export function whyNoNamespaces() {
  if (process.getuid() !== 0) return `not root (uid ${process.getuid()}): creating network namespaces needs root`;
  try { run(['-V']); } catch { return 'no `ip` command: apt-get install iproute2'; }
  const probe = `${PREFIX}${process.pid}-probe`;
  const hadMount = isMountpoint('/run/netns');
  try {
    run(['netns', 'add', probe]);
    ipIn(probe, ['link', 'set', 'lo', 'up']);
  } catch (e) {
    return `\`ip netns add\` or entering the namespace (nsenter) failed: ${String(e.stderr || e.message).trim()}`;
  } finally {
    try { run(['netns', 'del', probe]); } catch { /* not made */ }
    if (!hadMount && isMountpoint('/run/netns') && listNamespaces().length === 0) {
      try { execFileSync('umount', ['/run/netns']); } catch { /* busy */ }
    }
  }
  return null;
}

/** Removes the namespaces of earlier runs whose process is gone. @returns {string[]} removed */
export function removeStale() {
  const removed = [];
  for (const ns of listNamespaces()) {
    const m = /^fmp4ws-(\d+)-/.exec(ns);
    if (!m || +m[1] === process.pid || existsSync(`/proc/${m[1]}`)) continue;
    destroyNamespace(ns);
    removed.push(ns);
  }
  return removed;
}

export class Topology {
  constructor() {
    this.id = `${PREFIX}${process.pid}`;
    /** @type {string[]} namespaces made, in order */
    this.namespaces = [];
    /** @type {Set<import('node:child_process').ChildProcess>} */
    this.children = new Set();
    this.links = 0;
    this.hadMount = isMountpoint('/run/netns');
    this.destroyed = false;
    this._onExit = () => this.destroy();
    this._onSignal = (sig) => { this.destroy(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); };
    process.on('exit', this._onExit);
    process.once('SIGINT', this._onSignal);
    process.once('SIGTERM', this._onSignal);
  }

  /** The full name of role `role` (e.g. "edge1"). */
  name(role) {
    return `${this.id}-${role}`;
  }

  /** Adds namespace `role` with its loopback up. @returns {string} its full name */
  add(role) {
    const ns = this.name(role);
    run(['netns', 'add', ns]);
    this.namespaces.push(ns);
    ipIn(ns, ['link', 'set', 'lo', 'up']);
    return ns;
  }

  /**
   * Joins namespaces `a` and `b` with a veth pair on subnet `net`.0/24: `a` gets `net`.1,
   * `b` `net`.2 (interface names are per namespace: `to-<other role>`).
   * @param {string} a role @param {string} b role @param {string} net e.g. "10.77.1"
   * @returns {{a: string, b: string}} the two addresses
   */
  link(a, b, net) {
    const na = this.name(a);
    const nb = this.name(b);
    const ia = `to-${b}`.slice(0, 15);
    const ib = `to-${a}`.slice(0, 15);
    ipIn(na, ['link', 'add', 'name', ia, 'type', 'veth', 'peer', 'name', ib, 'netns', nb]);
    ipIn(na, ['addr', 'add', `${net}.1/24`, 'dev', ia]);
    ipIn(nb, ['addr', 'add', `${net}.2/24`, 'dev', ib]);
    ipIn(na, ['link', 'set', ia, 'up']);
    ipIn(nb, ['link', 'set', ib, 'up']);
    this.links++;
    return { a: `${net}.1`, b: `${net}.2` };
  }

  /**
   * Runs `cmd args` in namespace `role` (a process group of its own); `output` collects the
   * last 64 KiB of stdout+stderr unless `opts.stdout === 'pipe'` (then stdout is left to the
   * caller); `done` resolves to { code, sig }.
   */
  spawn(role, cmd, args, opts = {}) {
    const { stdout, env, name } = opts;
    const [n0, n1] = inNamespace(this.name(role), cmd, args);
    // SIGKILL when this test process dies, even by SIGKILL (prctl PR_SET_PDEATHSIG, kept
    // through nsenter's exec into `cmd`): no origin, edge or nginx left running in the
    // namespaces until the next run's removeStale().
    const [c0, a0] = ['setpriv', ['--pdeathsig', 'KILL', n0, ...n1]];
    const c = spawn(c0, a0, {
      env: env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
    });
    c.label = name ?? `${role}: ${cmd}`;
    this.children.add(c);
    c.output = '';
    const keep = (d) => { c.output = (c.output + d).slice(-65536); };
    if (stdout !== 'pipe') c.stdout.on('data', keep);
    c.stderr.on('data', keep);
    c.done = new Promise((resolve) => c.on('exit', (code, sig) => { this.children.delete(c); resolve({ code, sig }); }));
    return c;
  }

  /**
   * `sig` to the process group of a child of spawn(), SIGKILL if it is still there after
   * `grace` ms; resolves when it has exited.
   */
  async stop(c, sig = 'SIGTERM', grace = 5000) {
    try { process.kill(-c.pid, sig); } catch { /* gone */ }
    let timer;
    const killed = new Promise((resolve) => {
      timer = setTimeout(() => { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } resolve(); }, grace);
    });
    await Promise.race([c.done, killed]);
    clearTimeout(timer);
    return c.done;
  }

  /** Runs `cmd args` in namespace `role` to its end. @returns {Promise<string>} its stdout */
  async exec(role, cmd, args, timeout = 5000) {
    const [c, a] = inNamespace(this.name(role), cmd, args);
    const { stdout } = await execFileP(c, a, { timeout, encoding: 'utf8' });
    return stdout;
  }

  /** Kills every process started here and in the namespaces, deletes the namespaces. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const c of this.children) { try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ } }
    for (const ns of this.namespaces.reverse()) destroyNamespace(ns);
    // deleting a namespace removes its veth ends, and with them their peers
    if (!this.hadMount && isMountpoint('/run/netns') && listNamespaces().length === 0) {
      try { execFileSync('umount', ['/run/netns']); } catch { /* busy: another user */ }
    }
    process.off('exit', this._onExit);
    process.off('SIGINT', this._onSignal);
    process.off('SIGTERM', this._onSignal);
  }
}
