// Offline study of the latency learner (web/player/latency-controller.js TargetLearner) on the
// fragment arrivals a benchmark run recorded (latency-bench.mjs keeps them in results.jsonl):
// how late the fragments came (the learner's `late`: arrival − media end, less the best of the
// 2 s before), what the learner made of it, and what the runs needed.
//
//   node tests/bench/latency/learner-study.mjs OUT/results.jsonl [--margin 0.2,0.15,0.1]
//
// Per MSE run: lateness p50/p95/p99/max (ms) over the run after the learner's warm-up; the learned
// jitter (p95 over 15 s) and target (median over the run, the defaults); the buffer p50 measured;
// and, per margin asked, the learned target with that margin and how many fragments came later
// than that target's jitter + margin allowance (fragments that would have eaten into the
// Chromium underflow reserve, 0.05–0.17 s, i.e. stall candidates). The replay has no playback:
// a stall's raise of the margin is not in it (every margin stays at its floor), nor is the
// controller's steering (the learned target is what the buffer's troughs are steered to).
import fs from 'node:fs';
import { TargetLearner, LEARN_DEFAULTS } from '../../../web/player/latency-controller.js';

const file = process.argv[2];
if (!file) {
  console.error('usage: learner-study.mjs OUT/results.jsonl [--margin 0.2,0.15,0.1]');
  process.exit(2);
}
const mi = process.argv.indexOf('--margin');
const margins = (mi > 0 ? process.argv[mi + 1] : `${LEARN_DEFAULTS.margin},0.15,0.1`).split(',').map(Number);

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))] : NaN;
};
const ms = (x) => (Number.isFinite(x) ? (x * 1000).toFixed(0) : '–');

/** Replays `arrivals` ([performance.now() ms, start s, duration s, burst]) through a learner. */
function replay(arrivals, options) {
  const l = new TargetLearner(options);
  const lates = [];
  const targets = [];
  const jitters = [];
  /** fragments whose lateness exceeded the jitter the learner had learned before them by more than its margin */
  let over = 0;
  for (const [tMs, start, duration, burst] of arrivals) {
    const now = tMs / 1000;
    const before = { jitter: l.jitter, margin: l.margin, learned: l.arrivals.length >= 2 };
    const n = l.arrivals.length;
    l.fragment(now, start, duration, burst);
    l.tick(now);
    if (l.arrivals.length > n || (l.arrivals.length && l.arrivals.at(-1).t === now)) {
      const late = l.arrivals.at(-1).late;
      lates.push(late);
      if (before.learned && late > before.jitter + before.margin) over++;
    }
    targets.push(l.target);
    jitters.push(l.jitter);
  }
  return { lates, target: pct(targets, 0.5), jitter: pct(jitters, 0.5), over };
}

const rows = [];
for (const line of fs.readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
  const r = JSON.parse(line);
  if (r.renderer !== 'mse' || !r.arrivals?.length) continue;
  const base = replay(r.arrivals, {});
  const alt = margins.map((m) => ({ m, ...replay(r.arrivals, { margin: m }) }));
  rows.push(`| ${r.shape} | ${r.jitterMs}${r.jitterVia ? ` (${r.jitterVia})` : ''} | ${r.loadAvg[0].toFixed(1)} | ${base.lates.length} | `
    + `${ms(pct(base.lates, 0.5))} / ${ms(pct(base.lates, 0.95))} / ${ms(pct(base.lates, 0.99))} / ${ms(Math.max(...base.lates))} | `
    + `${ms(base.jitter)} | ${base.target.toFixed(3)} | ${r.buffer.p50?.toFixed(3)} | ${r.stalls} | `
    + `${alt.map((a) => `${a.m}: ${a.target.toFixed(3)}, ${a.over}`).join('; ')} |`);
}
console.log('| shape | jitter (ms) | load | fragments | lateness p50 / p95 / p99 / max (ms) | learned jitter (ms, median) | learned target (s, median) | buffer p50 (s) | stalls | margin: target (s), fragments later than jitter + margin |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
