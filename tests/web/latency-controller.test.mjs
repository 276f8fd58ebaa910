// The latency controller's decisions (web/player/latency-controller.js) on a trace of playback
// samples (fixtures/latency-trace.json): no browser, the decision function is pure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  initialState, controlStep, resumeSeek, effectiveTarget, maxLatency, liveEdgeTarget, playheadTarget, rangesOf,
} from '../../web/player/latency-controller.js';

const trace = JSON.parse(fs.readFileSync(new URL('./fixtures/latency-trace.json', import.meta.url), 'utf8'));
const SETTINGS = trace.settings;

/** Runs a scenario through controlStep: one action per sample (the state carried over). */
function run(name, settings = SETTINGS, state = initialState()) {
  const samples = trace.scenarios[name];
  assert.ok(samples?.length, `scenario ${name} in the trace`);
  const actions = [];
  for (const sample of samples) {
    const a = controlStep(state, sample, settings);
    state = a.state;
    actions.push({ ...a, sample });
  }
  return { actions, state };
}
const seeks = (actions) => actions.filter((a) => a.seek).map((a) => a.seek);
const rates = (actions) => actions.map((a) => a.rate);

test('steady at the target: no seek, playbackRate 1', () => {
  const { actions } = run('steady');
  assert.deepEqual(seeks(actions), []);
  // 3 samples to fill the window, then 1 every time
  assert.deepEqual(rates(actions).slice(0, 3), [null, null, null]);
  assert.ok(rates(actions).slice(3).every((r) => r === 1), `rates ${rates(actions)}`);
});

test('0.5 s above the target: gentle playbackRate up, back to 1 near the target', () => {
  const { actions } = run('above-target');
  assert.deepEqual(seeks(actions), []);
  const r = rates(actions);
  const firstUp = r.findIndex((x) => x !== null && x > 1);
  assert.equal(firstUp, 3, 'as soon as the window has 4 samples');
  for (const x of r.slice(firstUp, 24)) assert.ok(x > 1 && x <= 1.08, `gentle: ${x}`);
  // the latency falls to the target: 1.0 again, only once the average is within 0.05 s (hysteresis)
  const back = r.findIndex((x, i) => i > firstUp && x === 1);
  assert.ok(back > 24, `back to 1 at ${back}: ${r}`);
  const avg = actions[back].state.latencySamples.reduce((a, x) => a + x, 0) / actions[back].state.latencySamples.length;
  assert.ok(avg - 1.5 <= 0.05, `average ${avg} within 0.05 s of the target`);
  const prevAvg = actions[back - 1].state.latencySamples.reduce((a, x) => a + x, 0) / actions[back - 1].state.latencySamples.length;
  assert.ok(prevAvg - 1.5 > 0.05, 'still catching up until then');
  assert.equal(actions.at(-1).rate, 1);
});

test('below the target: slowDownRate, then 1 when the buffer has grown back', () => {
  const { actions } = run('below-target');
  const r = rates(actions);
  assert.equal(r[3], 0.95);
  assert.ok(r.slice(3, 24).every((x) => x === 0.95));
  assert.equal(r.at(-1), 1);
  assert.deepEqual(seeks(actions), []);
});

test('far behind (video paused for 8 s): jump to the live edge at once, rate 1', () => {
  const { actions } = run('far-behind');
  const a = actions[0];
  assert.ok(a.seek, 'first sample jumps');
  assert.equal(a.seek.kind, 'live');
  assert.equal(a.seek.jump, true);
  const end = a.sample.buffered[0][1];
  assert.equal(a.seek.to, end - 1.5);
  assert.equal(a.rate, 1);
  assert.deepEqual(a.state.latencySamples, [], 'the latency window starts over');
  // the trace goes on as recorded (still behind): the controller keeps asking
  assert.ok(actions.every((x) => x.seek?.kind === 'live'));
});

test('hidden tab (suspended): rate 1, no seek while the buffer plays out and waits at its end', () => {
  const { actions } = run('hidden');
  assert.deepEqual(seeks(actions), []);
  assert.ok(rates(actions).every((r) => r === 1));
  assert.ok(actions.at(-1).state.stuckMs >= 1500, 'stuck at the end of the data, as it should');
});

test('back from a hidden tab: to the new data ahead, or to the live edge when far behind', () => {
  // the playhead waits at the end of the old data, the new data starts 11 s later: live edge
  const [s] = trace.scenarios['hidden-resumed'];
  const seek = resumeSeek(s, SETTINGS);
  assert.equal(seek?.kind, 'live');
  assert.equal(seek.to, s.buffered[1][1] - 1.5);
  assert.ok(seek.to > s.buffered[1][0], 'into the new data');
  // the old data was removed meanwhile (playhead outside every range): the start of the new data
  const moved = resumeSeek({ ...s, buffered: [s.buffered[1]] }, SETTINGS);
  assert.equal(moved?.kind, 'playhead');
  assert.equal(moved.to, s.buffered[1][0] + 0.001);
  const [behind] = trace.scenarios['hidden-resumed-behind'];
  const live = resumeSeek(behind, SETTINGS);
  assert.equal(live?.kind, 'live');
  assert.equal(live.to, 212.5 - 1.5);
  // near the live edge: nothing to do
  assert.equal(resumeSeek({ ...behind, currentTime: 211 }, SETTINGS), null);
});

test('buffering: no seek back while waiting for data past the buffered end, nothing with no data', () => {
  const { actions } = run('buffering-overrun');
  assert.deepEqual(seeks(actions), []);
  const empty = run('buffering-empty').actions;
  assert.ok(empty.every((a) => a.seek === null && a.rate === null));
});

test('paused: rate 1, no seek', () => {
  const { actions } = run('paused');
  assert.deepEqual(seeks(actions), []);
  assert.ok(rates(actions).every((r) => r === 1));
});

test('stuck before a gap: jump over it after 500 ms', () => {
  const { actions } = run('gap');
  assert.equal(actions[1].seek, null, 'stuck 250 ms: not yet');
  assert.equal(actions[2].seek?.kind, 'gap');
  assert.equal(actions[2].seek.to, 130.501);
  assert.equal(actions[2].state.stuckMs, 0);
});

test('stuck with data ahead: nudge after 1.5 s (not counted as a jump)', () => {
  const { actions } = run('stuck-decoder');
  const s = seeks(actions);
  assert.equal(s.length, 1);
  assert.equal(actions.findIndex((a) => a.seek), 6, 'stuck for 6 × 250 ms');
  assert.deepEqual({ kind: s[0].kind, jump: s[0].jump }, { kind: 'nudge', jump: false });
  assert.equal(s[0].to, 140.1);
});

test('playhead far past all data (the timeline went back): seek into it', () => {
  const { actions } = run('timeline-back');
  const a = actions.find((x) => x.seek);
  assert.equal(a?.seek.kind, 'playhead');
  assert.equal(a.seek.to, 14 - 1.5 + 0.001);
});

test('preferJumps (Safari): never a playbackRate, jump above 2 × target', () => {
  const settings = { ...SETTINGS, preferJumps: true };
  const { actions } = run('prefer-jumps', settings);
  assert.ok(actions.slice(0, 16).every((a) => a.rate === null && a.seek === null));
  assert.equal(actions[16].seek?.kind, 'live');
  // without preferJumps the same latency is caught up with playbackRate
  const { actions: a2 } = run('prefer-jumps');
  assert.deepEqual(seeks(a2), []);
  assert.ok(a2[10].rate > 1);
});

test('long fragments raise the target and the jump threshold', () => {
  assert.equal(effectiveTarget(1.5, 4), 2.5);
  assert.equal(maxLatency(SETTINGS, 4), 7.5);
  // 4 s fragments arrive whole: the latency saws between 1.25 and 5 s; 5 s is no reason to jump
  const { actions } = run('long-fragments');
  assert.ok(Math.max(...actions.map((a) => a.sample.buffered[0][1] - a.sample.currentTime)) >= 5);
  assert.deepEqual(seeks(actions), []);
  assert.ok(actions.every((a) => a.rate === null || (a.rate >= 0.95 && a.rate <= 1.1)));
  const far = { ...actions[0].sample, buffered: [[90, actions[0].sample.currentTime + 8]] };
  assert.equal(controlStep(initialState(), far, SETTINGS).seek?.kind, 'live');
});

test('thresholds: maxLatency option, live edge from the server, playhead helpers', () => {
  assert.equal(maxLatency(SETTINGS, 0.5), 4.5);
  assert.equal(maxLatency({ ...SETTINGS, maxLatency: 1 }, 0.5), 2);
  assert.equal(maxLatency({ ...SETTINGS, preferJumps: true }, 0.5), 3);
  assert.equal(liveEdgeTarget([[0, 10]], 0, 1.5, 6), 4.5, 'the server live edge when earlier');
  assert.equal(liveEdgeTarget([[0, 10]], 8.4, 1.5), null, 'already there');
  assert.equal(liveEdgeTarget([[9, 10]], 0, 1.5), 9, 'within the last range');
  assert.equal(playheadTarget([[0, 5], [7, 9]], 6, 'first fragment', 0.5, 1.5), 7.001);
  assert.equal(playheadTarget([[0, 5]], 3, 'first fragment', 0.5, 1.5), null);
  const tr = { length: 2, start: (i) => [1, 5][i], end: (i) => [2, 8][i] };
  assert.deepEqual(rangesOf(tr), [[1, 2], [5, 8]]);
});

test('controlStep does not modify the state it is given', () => {
  const state = initialState();
  const frozen = JSON.stringify(state);
  let s = state;
  for (const sample of trace.scenarios['above-target'].slice(0, 10)) s = controlStep(s, sample, SETTINGS).state;
  assert.equal(JSON.stringify(state), frozen);
  assert.ok(s.catchingUp);
});
