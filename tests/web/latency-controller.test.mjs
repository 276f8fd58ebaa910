// The latency controller's decisions (web/player/latency-controller.js): no browser, the decision
// function is pure.
// - fixtures/latency-trace.json: SYNTHETIC samples (fixtures/make-trace.py), one scenario per rule
//   of the controller, edge cases included that real runs rarely show (gap, stuck decoder, timeline
//   going back, preferJumps, 4 s fragments);
// - fixtures/trace-<browser>-<scenario>.json: REAL traces (tests/web/record-trace.mjs, by hand):
//   every tick of the player in Chromium / Firefox on real streams, the exact controlStep input and
//   output; replayed below (same decisions) and judged (rates, seeks, convergence, recovery).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  initialState, controlStep, resumeSeek, effectiveTarget, maxLatency, liveEdgeTarget, playheadTarget, rangesOf,
  lowWater, lowWaterTarget, deadBand, windowLength, TargetLearner, LEARN_DEFAULTS, MIN_MARGIN,
  shouldStart, startAhead, MAX_START_WAIT_MS, JointEnd,
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

/** The controller's error on a state's window: low water − low-water target (s). */
const errorOf = (state, target, fd) => lowWater(state.latencySamples, fd) - lowWaterTarget(target, fd);

test('0.4 s above the target: gentle playbackRate up, back to 1 near the target', () => {
  const { actions } = run('above-target');
  assert.deepEqual(seeks(actions), []);
  const r = rates(actions);
  const firstUp = r.findIndex((x) => x !== null && x > 1);
  assert.equal(firstUp, 3, 'as soon as the window has 4 samples');
  for (const x of r.slice(firstUp, 24)) assert.ok(x > 1 && x <= SETTINGS.maxCatchUpRate, `gentle: ${x}`);
  // the latency falls to the target: 1.0 again, only once within band/4 (hysteresis)
  const back = r.findIndex((x, i) => i > firstUp && x === 1);
  assert.ok(back > 24, `back to 1 at ${back}: ${r}`);
  const band = deadBand(1.5);
  assert.ok(errorOf(actions[back].state, 1.5, 0.5) <= band / 4, 'within band/4 of the target');
  assert.ok(errorOf(actions[back - 1].state, 1.5, 0.5) > band / 4, 'still catching up until then');
  assert.ok(r.slice(back).every((x) => x <= 1), 'no catching up once there (the scenario then drifts below)');
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
  assert.equal(a.seek.to, end - 1.5 - 0.25, 'the target + half a fragment behind the end: the top of the saw');
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
  assert.equal(seek.to, Math.max(s.buffered[1][0], s.buffered[1][1] - 1.75));
  assert.ok(seek.to >= s.buffered[1][0], 'into the new data');
  // the old data was removed meanwhile (playhead outside every range): the start of the new data
  const moved = resumeSeek({ ...s, buffered: [s.buffered[1]] }, SETTINGS);
  assert.equal(moved?.kind, 'playhead');
  assert.equal(moved.to, s.buffered[1][0] + 0.001);
  const [behind] = trace.scenarios['hidden-resumed-behind'];
  const live = resumeSeek(behind, SETTINGS);
  assert.equal(live?.kind, 'live');
  assert.equal(live.to, 212.5 - 1.75);
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
  assert.equal(effectiveTarget(1.5, 4), 2 + MIN_MARGIN);
  assert.equal(maxLatency(SETTINGS, 4), 3 * (2 + MIN_MARGIN));
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

// ---------------------------------------------------------------------------------------------
// REAL traces (fixtures/trace-<browser>-<scenario>.json, recorded by record-trace.mjs: every tick
// of the player in Chromium / Firefox on real streams, the exact controlStep input and output).

const FIXTURES = new URL('./fixtures/', import.meta.url);
const REAL = fs.readdirSync(FIXTURES).filter((f) => /^trace-.+\.json$/.test(f)).sort()
  .map((f) => ({ file: f, ...JSON.parse(fs.readFileSync(new URL(f, FIXTURES), 'utf8')) }));
const settingsOf = (tr, k) => k.settings ?? tr.settings;
/** The player's stall count at the end of a recorded run (from the trace's `about`). */
const recordedStalls = (tr) => Number(/stalls=(\d+)/.exec(tr.about)?.[1] ?? 0);
const latencyOf = (s) => (s.buffered.length ? s.buffered[s.buffered.length - 1][1] - s.currentTime : null);
const targetOf = (k) => effectiveTarget(k.settings.targetLatency, k.sample.fragmentDuration, k.sample.learnedTarget);
/** The controller's error at a step: low water of its window − low-water target (s). */
const errOf = (k) => errorOf(k.next, targetOf(k), k.sample.fragmentDuration);
/** What the player does to the controller state after it applies a seek (player.js _applySeek). */
const afterSeek = (state, seek) => (seek && (seek.kind === 'live' || seek.kind === 'playhead') ? { ...state, latencySamples: [] } : state);
/**
 * Ticks after which the player reset the controller's latency window itself, between two ticks
 * (player.js `_resume` → `_applySeek` after a hidden page: a seek the controller did not decide):
 * the next recorded state is the returned one with `latencySamples: []`.
 */
function outsideResets(tr) {
  const out = [];
  for (let i = 0; i + 1 < tr.ticks.length; i++) {
    const k = tr.ticks[i];
    const a = controlStep(k.state, k.sample, settingsOf(tr, k));
    const next = tr.ticks[i + 1].state;
    if (!a.seek && next.latencySamples.length === 0 && a.state.latencySamples.length > 0
      && JSON.stringify(next) === JSON.stringify({ ...a.state, latencySamples: [] })) out.push(i);
  }
  return out;
}
/**
 * Replays a recorded trace through today's controlStep, from its first recorded state, open loop
 * (the samples are the recorded ones): `{sample, prev, next, seek, rate, settings}` per tick. The
 * property tests below judge these decisions (so they test the controller, not the recording).
 */
function replayReal(tr) {
  const resets = outsideResets(tr);
  let state = tr.ticks[0].state;
  return tr.ticks.map((k, i) => {
    const settings = settingsOf(tr, k);
    const a = controlStep(state, k.sample, settings);
    const step = { sample: k.sample, settings, prev: state, next: a.state, seek: a.seek, rate: a.rate };
    state = afterSeek(a.state, a.seek);
    if (resets.includes(i)) state = { ...state, latencySamples: [] };
    return step;
  });
}

test('real traces: recorded in both browsers, each scenario, with how/when/which browser', () => {
  const have = new Set(REAL.map((t) => `${t.browser}-${t.scenario}`));
  for (const b of ['chromium', 'firefox']) {
    for (const s of ['notes', 'testpattern', 'notes-sigstop', 'notes-hidden']) assert.ok(have.has(`${b}-${s}`), `trace-${b}-${s}.json`);
  }
  for (const tr of REAL) {
    assert.match(tr.about, /^REAL trace, recorded by tests\/web\/record-trace\.mjs/, tr.file);
    assert.ok(tr.browserVersion && tr.recordedAt, tr.file);
    assert.ok(tr.ticks.length >= 100, `${tr.file}: ${tr.ticks.length} ticks (~30 s)`);
  }
});

for (const tr of REAL) {
  const name = tr.file.replace(/^trace-|\.json$/g, '');
  const ticks = tr.ticks;
  const dist = tr.disturbance;
  const steps = replayReal(tr);
  const resets = outsideResets(tr);

  test(`${name}: every recorded step is what controlStep returns for the recorded input`, () => {
    for (let i = 0; i < ticks.length; i++) {
      const k = ticks[i];
      const a = controlStep(k.state, k.sample, settingsOf(tr, k));
      assert.deepEqual({ seek: a.seek, rate: a.rate }, { seek: k.seek, rate: k.rate }, `tick ${i}`);
      // the next tick starts from the returned state (after the player's own reset on a seek, and
      // on a seek of its own between two ticks: resume after a hidden page)
      const want = resets.includes(i) ? { ...a.state, latencySamples: [] } : afterSeek(a.state, a.seek);
      if (i + 1 < ticks.length) assert.deepEqual(ticks[i + 1].state, want, `state after tick ${i}`);
    }
  });

  test(`${name}: replayed from its first recorded state, the decisions are the recorded ones`, () => {
    // the player's own seeks between ticks: only on a page shown again, once, right after it
    if (dist?.what.includes('hidden')) {
      assert.ok(resets.length <= 1 && resets.every((i) => i >= dist.toTick - 2 && i <= dist.toTick + 4), `resets ${resets}`);
    } else assert.deepEqual(resets, [], 'no seek outside the controller');
    assert.deepEqual(steps.map((k) => ({ seek: k.seek, rate: k.rate })), ticks.map((k) => ({ seek: k.seek, rate: k.rate })));
  });

  test(`${name}: playbackRate within [slowDownRate, maxCatchUpRate], and never away from the target`, () => {
    for (let i = 0; i < steps.length; i++) {
      const k = steps[i];
      const st = k.settings;
      if (k.rate === null) continue;
      assert.ok(k.rate >= st.slowDownRate && k.rate <= st.maxCatchUpRate, `tick ${i}: rate ${k.rate}`);
      const next = k.next;
      if (k.seek || k.sample.paused || k.sample.suspended || !next.latencySamples.length) continue;
      const e = errOf(k);
      if (k.rate > 1) assert.ok(e > 0, `tick ${i}: faster (${k.rate}) with the low water ${e} s under its target`);
      if (k.rate < 1) assert.ok(e < 0, `tick ${i}: slower (${k.rate}) with the low water ${e} s over its target`);
    }
  });

  // Ticks where playback ran dry outside the disturbance (latency under Chromium's underflow
  // point, or the playhead stuck): the stream or the machine (shared, loaded) starved the page;
  // the player then has to learn a higher target, and the convergence checks below do not apply.
  const dry = ticks.map((k, i) => i).filter((i) => {
    const k = ticks[i];
    if (k.sample.suspended || k.sample.paused || !k.sample.buffered.length) return false;
    if (dist && i >= dist.fromTick - 1 && i <= dist.toTick + 12) return false;
    return latencyOf(k.sample) < 0.12 || k.state.stuckMs > 0;
  });
  // an undisturbed run where the page stalled (the player's own count at the end) ran dry too
  if (!dist && recordedStalls(tr) > 0 && !dry.length) dry.push(ticks.findIndex((k) => k.sample.buffered.length));
  if (dry.length) {
    test(`${name}: ran dry at ticks ${dry.slice(0, 5)}${dry.length > 5 ? '…' : ''} (starved; ${recordedStalls(tr)} stalls): the learned target rose, rates stay gentle`, () => {
      const t0 = ticks[dry[0]].sample.learnedTarget;
      const later = ticks.slice(dry[0]).map((k) => k.sample.learnedTarget);
      assert.ok(Math.max(...later) > t0, `learned target ${t0} then at most ${Math.max(...later)}`);
      for (const k of steps) if (k.rate !== null) assert.ok(k.rate >= 0.9 && k.rate <= 1.1, `rate ${k.rate}`);
    });
    continue;
  }

  test(`${name}: no seek in steady state`, () => {
    const seekTicks = steps.map((k, i) => (k.seek ? i : -1)).filter((i) => i >= 0);
    if (!dist) {
      assert.deepEqual(seekTicks, [], 'an undisturbed stream: never a seek');
      return;
    }
    // before the disturbance none; after it at most one (a jump back to the live edge), within
    // 10 s of its end, and none after
    assert.ok(seekTicks.every((i) => i >= dist.fromTick), `seeks before the disturbance: ${seekTicks}`);
    assert.ok(seekTicks.length <= 1, `seeks ${seekTicks}`);
    for (const i of seekTicks) {
      assert.ok(i <= dist.toTick + 40, `seek at tick ${i}, disturbance ended at ${dist.toTick}`);
      assert.equal(steps[i].seek.kind, 'live');
    }
  });

  if (!dist) {
    test(`${name}: settles at the target (rate 1) as fast as the rates allow, then stays`, () => {
      const st = steps[0].settings;
      const first = steps.findIndex((k) => k.rate === 1 && k.next.latencySamples.length >= 4);
      assert.ok(first > 0, 'reaches rate 1');
      // from the first full window, the error shrinks by |1 − rate| s per s (at least 0.02): the
      // time it needs
      const i0 = steps.findIndex((k) => k.prev.latencySamples.length >= 4);
      const e0 = Math.abs(errOf(steps[i0]));
      const need = Math.ceil(e0 / Math.max(0.02, 0.3 * e0) / 0.25) + Math.ceil(Math.log(Math.max(1, e0 / 0.04)) / 0.3 / 0.25);
      assert.ok(first <= i0 + need * 1.5 + 12, `rate 1 first at tick ${first}; ${e0.toFixed(2)} s off at tick ${i0} needs ~${need} ticks`);
      const rest = steps.slice(first);
      assert.ok(rest.length >= 0.25 * steps.length, `steady for ${rest.length} of ${steps.length} ticks only`);
      // most of the time near the target (real streams on a shared machine: fragments come late,
      // the controller moves, gently, with the rate bounded to [0.9, 1.1])
      const near = rest.filter((k) => Math.abs(errOf(k)) <= deadBand(targetOf(k)) + 0.1).length;
      assert.ok(near >= 0.6 * rest.length, `within the band + 0.1 s in ${near} of the last ${rest.length} ticks`);
      // and the last 10 s within the band around the target, or moving toward it
      for (let i = steps.length - 40; i < steps.length; i++) {
        const k = steps[i];
        const e = errOf(k);
        const band = deadBand(targetOf(k));
        assert.ok(Math.abs(e) <= band + 0.01 || (e > 0 ? k.rate > 1 : k.rate < 1), `tick ${i}: low water ${e.toFixed(3)} s off, band ${band.toFixed(3)}, rate ${k.rate}`);
      }
      assert.ok(st.maxCatchUpRate <= 1.1 && st.slowDownRate >= 0.9, 'gentle rate bounds');
    });
  } else {
    test(`${name}: after the disturbance, steady again within 40 ticks (10 s), correcting toward the target`, () => {
      const from = dist.toTick + 40;
      assert.ok(steps.length - from >= 15, `recorded ${steps.length - from} ticks after the recovery window only`);
      for (let i = from; i < steps.length; i++) {
        const k = steps[i];
        const lat = latencyOf(k.sample);
        const e = errOf(k);
        const band = deadBand(targetOf(k));
        assert.ok(!k.sample.paused && !k.sample.suspended && k.next.stuckMs === 0 && !k.seek, `tick ${i}: playing, no seek`);
        assert.ok(lat > 0 && lat < maxLatency(k.settings, k.sample.fragmentDuration, k.sample.learnedTarget), `tick ${i}: latency ${lat}`);
        // off the controller's band: corrects
        if (e > band) assert.ok(k.rate > 1, `tick ${i}: low water ${e} s over, rate ${k.rate}`);
        if (e < -band) assert.ok(k.rate < 1, `tick ${i}: low water ${e} s under, rate ${k.rate}`);
        assert.ok(Math.abs(e) <= 1, `tick ${i}: ${e} s off the target`);
      }
      // the disturbance was real: the player saw it (data ran dry or the page was suspended)
      const during = steps.slice(dist.fromTick, dist.toTick + 8);
      assert.ok(during.some((k) => k.sample.suspended || k.next.stuckMs > 0 || latencyOf(k.sample) < 0.3), 'the disturbance shows in the samples');
    });
  }
}

// ---------------------------------------------------------------------------------------------
// The latency learner (TargetLearner): target = fragment / 2 + arrival jitter + margin.

test('learner: fragment duration (median), jitter from late arrivals, bursts and warm-up left out', () => {
  const l = new TargetLearner();
  assert.equal(l.target, LEARN_DEFAULTS.jitter + LEARN_DEFAULTS.margin, 'nothing seen yet');
  // a start burst of 10 cached 0.1 s fragments at t = 0: durations only
  for (let i = 0; i < 10; i++) l.fragment(0, i * 0.1, 0.1, true);
  assert.equal(l.fragmentDuration, 0.1);
  assert.equal(l.arrivals.length, 0, 'a burst is not arrival jitter');
  // then live, one every 0.1 s, on time: the first warmUp s are left out
  let t = 0;
  for (let i = 10; i < 200; i++) l.fragment((t = (i - 9) * 0.1), i * 0.1, 0.1);
  assert.ok(l.arrivals.length > 100 && l.arrivals[0].t >= LEARN_DEFAULTS.warmUp, `${l.arrivals.length} arrivals from ${l.arrivals[0].t}`);
  assert.ok(l.jitter < 1e-9, `on time: jitter ${l.jitter}`);
  assert.ok(Math.abs(l.target - (0.05 + LEARN_DEFAULTS.margin)) < 1e-9, `${l.target}`);
  // one fragment in 10 comes 0.3 s late (the next ones on time): more than 5 % → the jitter
  for (let i = 200; i < 400; i++) l.fragment((t = (i - 9) * 0.1 + (i % 10 === 0 ? 0.3 : 0)), i * 0.1, 0.1);
  assert.ok(Math.abs(l.jitter - 0.3) < 1e-6, `jitter ${l.jitter}`);
  // a slow drift between media and wall clock (1 %) is not jitter
  const d = new TargetLearner();
  for (let i = 0; i < 400; i++) d.fragment(i * 0.1 * 1.01, i * 0.1, 0.1);
  assert.ok(d.jitter < 0.03, `drift: jitter ${d.jitter}`);
  // a reset (new generation, skip, pause) forgets the arrivals
  l.resetArrivals();
  assert.equal(l.jitter, LEARN_DEFAULTS.jitter);
});

test('learner: lateness seen in the warm-up covers the start, then gives way to what follows', () => {
  // examples/testpattern.sh seen through JointEnd (recorded in Chromium, issue 14): steps of
  // 0.02–0.59 s, up to 0.32 s later than the best of the 2 s before, from the first second on
  const steps = [[0.309, 0.3, 0.367], [0.608, 0.667, 0.016], [0.885, 0.683, 0.284], [1.077, 0.967, 0.296], [1.584, 1.263, 0.504],
    [1.803, 1.767, 0.179], [2.251, 1.945, 0.588], [2.570, 2.533, 0.095], [2.951, 2.628, 0.672], [3.274, 3.3, 0.011]];
  const l = new TargetLearner();
  for (const [t, start, d] of steps) l.fragment(t, start, d);
  assert.equal(l.arrivals.length, 0, 'all in the warm-up');
  assert.ok(l.jitter > 0.25 && l.jitter <= LEARN_DEFAULTS.maxJitter, `warm-up jitter ${l.jitter}`);
  // a page that ran at the old 0.1 s default here stalled 1.2 s after its start (both runs' troughs
  // 0.08–0.10 s): the target now covers the saw from the start
  assert.ok(l.target > 0.6, `target ${l.target}`);
  // later arrivals on time: once two are seen the warm-up is left out
  const r = new TargetLearner();
  r.fragment(0.1, 0, 0.1);
  r.fragment(1, 0.5, 0.1); // 0.4 s late in the warm-up (a publisher catching up)
  assert.ok(Math.abs(r.jitter - 0.4) < 1e-9);
  for (let i = 0; i < 10; i++) r.fragment(4 + i * 0.1, 3.5 + i * 0.1, 0.1);
  assert.ok(r.jitter < 1e-9, `regular after the warm-up: jitter ${r.jitter}`);
  assert.equal(r.warm.length, 0, 'the warm-up is forgotten once two later arrivals are seen');
  // many warm-up arrivals: the 95th percentile as after it, not the max (one message held by a
  // busy page at its start is not the stream's jitter)
  const p = new TargetLearner();
  for (let i = 0; i < 39; i++) p.fragment(0.1 * (i + 1) + 0.01 * (i % 2), 0.1 * i, 0.1);
  p.fragment(3.95, 3.5, 0.1); // 0.35 s late, once in 40
  assert.equal(p.jitter, LEARN_DEFAULTS.jitter, `p95 of the warm-up (under the default): ${p.jitter}`);
});

test('learner: a stall raises the margin, calm periods lower it back to the least', () => {
  const l = new TargetLearner();
  l.fragment(0, 0, 0.5);
  const m0 = l.margin;
  l.stall(1);
  assert.equal(l.margin, m0 + Math.max(LEARN_DEFAULTS.stallRaise, m0 / 2));
  l.stall(2);
  const m2 = l.margin;
  assert.ok(m2 > m0 + 0.25);
  l.tick(2 + LEARN_DEFAULTS.calmPeriod - 0.01);
  assert.equal(l.margin, m2, 'not calm for long enough yet');
  l.tick(2 + LEARN_DEFAULTS.calmPeriod);
  assert.equal(l.margin, Math.max(m0, m2 * 0.75));
  l.tick(1000);
  assert.equal(l.margin, LEARN_DEFAULTS.margin, 'back to the least after a long calm');
  for (let i = 0; i < 50; i++) l.stall(2000 + i);
  assert.equal(l.margin, LEARN_DEFAULTS.maxMargin, 'bounded');
});

test('learner: a new publisher raises the margin for a while; Firefox starts higher', () => {
  const l = new TargetLearner();
  l.fragment(0, 0, 0.1);
  l.raise(1, 0.5);
  assert.equal(l.margin, 0.5);
  l.raise(2, 0.3);
  assert.equal(l.margin, 0.5, 'never lowered by a raise');
  l.tick(1000);
  assert.equal(l.margin, LEARN_DEFAULTS.margin, 'calm periods bring it back');
  assert.equal(new TargetLearner({ margin: 0.5 }).target, 0.5 + LEARN_DEFAULTS.jitter);
});

test('target: learned by default, target-latency overrides (at least half a fragment + MIN_MARGIN)', () => {
  assert.equal(effectiveTarget(null, 0.7, 0.62), 0.62);
  assert.equal(effectiveTarget(null, 0.7), 0.35 + LEARN_DEFAULTS.margin + LEARN_DEFAULTS.jitter, 'nothing learned yet');
  assert.equal(effectiveTarget(0.3, 0.7, 0.62), 0.35 + MIN_MARGIN, 'a set target wins, within what the fragments allow');
  assert.equal(effectiveTarget(0.3, 0.033, 0.62), 0.3, 'the old floor (half a fragment + 0.5 s) is gone');
  assert.ok(Math.abs(lowWaterTarget(0.3, 0.2) - 0.2) < 1e-9);
  assert.equal(windowLength(0.033), 4);
  assert.equal(windowLength(0.7), 6);
  assert.equal(lowWater([0.5, 0.6, 0.7, 0.6], 0.5), 0.6 - 0.25, 'a saw sampled away from its troughs');
  assert.equal(lowWater([0.2, 0.3, 0.25, 0.3], 0.033), 0.2);
});

// ---------------------------------------------------------------------------------------------
// JointEnd: the end of what a <video> can play (the smallest track end) and how it moves.

test('JointEnd: the smallest track end, its steps; one-track streams step with their fragments', () => {
  // examples/testpattern.sh as fmp4ws-inspect lists it: video 0.4/0.433/0.4 s moofs, AAC 0.683 s
  const j = new JointEnd();
  const steps = [[[1, 0.4, 0]], [[2, 0.683, 0]], [[1, 0.833, 0.4]], [[1, 1.233, 0.833]], [[2, 1.365, 0.683]], [[1, 1.6, 1.233]], [[1, 2.0, 1.6]], [[2, 2.048, 1.365]]]
    .map((e) => j.add(e));
  const r = (x) => x && [Math.round(x.start * 1000) / 1000, Math.round(x.duration * 1000) / 1000];
  assert.deepEqual(steps.map(r), [[0, 0.4], null, [0.4, 0.283], null, [0.683, 0.55], [1.233, 0.132], null, [1.365, 0.635]],
    'the first segment is a step of its own (a start burst of one long fragment teaches its length)');
  assert.equal(j.end, 2.0);
  // one track: every fragment is a step of its own length
  const v = new JointEnd();
  v.add([[1, 0.1]]);
  assert.deepEqual(r(v.add([[1, 0.2]])), [0.1, 0.1]);
  // both tracks in one moof (ffmpeg): the smaller end
  const f = new JointEnd();
  f.add([[1, 0.188], [2, 0.171]]);
  assert.deepEqual(r(f.add([[1, 0.288], [2, 0.256]])), [0.171, 0.085]);
});

test('JointEnd: a track that stops is left out after staleAfter s; a timeline that goes back starts over', () => {
  const j = new JointEnd(5);
  j.add([[1, 1], [2, 1]]);
  for (let t = 2; t <= 6; t++) assert.equal(j.add([[1, t]]), null, `audio stuck at 1: the end stays (t ${t})`);
  assert.deepEqual(j.add([[1, 7]]), { start: 1, duration: 6 }, 'audio 6 s behind: stopped, left out');
  assert.equal(j.add([[1, 0.5]]), null, 'back in time: a new timeline');
  assert.equal(j.end, 0.5);
  assert.deepEqual(j.add([[1, 1]]), { start: 0.5, duration: 0.5 });
  assert.equal(new JointEnd().add([]), null, 'no tfdt: nothing');
});

// ---------------------------------------------------------------------------------------------
// The start: autoplay waits for the top of the saw (shouldStart).

test('start: waits for the burst, then for target + half a fragment, at most MAX_START_WAIT_MS', () => {
  const base = { target: 0.467, fragmentDuration: 0.367, waitedMs: 0, burstPending: false };
  assert.ok(Math.abs(startAhead(0.467, 0.367) - 0.6505) < 1e-9);
  assert.equal(shouldStart({ ...base, ahead: 0.3 }), false, 'a 0.3 s burst of a 0.37 s-fragment stream (recorded: it stalled at 1.2 s)');
  assert.equal(shouldStart({ ...base, ahead: 0.667 }), true, 'the next fragment is in');
  assert.equal(shouldStart({ ...base, ahead: 0.64 }), true, 'within 20 ms (a jump lands at the top exactly)');
  assert.equal(shouldStart({ ...base, ahead: 3, burstPending: true }), false, 'the rest of the burst comes within ms');
  assert.equal(shouldStart({ ...base, ahead: 0.05, burstPending: true, waitedMs: MAX_START_WAIT_MS }), true, 'never waits longer');
  assert.equal(shouldStart({ ...base, target: 0.25, fragmentDuration: 0.033, ahead: 0.27 }), true, 'per-frame fragments: at once');
});

/**
 * A page that joins a live stream of `fd` s fragments (fragment k covers [k fd, (k + 1) fd) and
 * arrives whole at wall time (k + 1) fd + `late(k)`): it joins `joinAt` s after the arrival of the
 * `burst`-th fragment since a keyframe and gets those at once (the start burst). Fed as player.js
 * feeds it: every segment through JointEnd to the learner, the player's fragment duration 0.5 s
 * until the learner has one, the burst landed by a jump to the live edge (target + half a fragment
 * behind its end), then controlStep + TargetLearner, playing once `start` says so.
 * @returns {{low: number, stalledFor: number, startedAhead: number|null}} the lowest buffer ahead
 *   while playing in the first `seconds` s, how long it sat at the end of the data, and the
 *   buffer it started with
 */
function joinLive({ fd, burst, joinAt, seconds, late, start }) {
  const learner = new TargetLearner();
  const joint = new JointEnd();
  let fragDuration = 0.5; // Fmp4Player's until the learner has one
  const settings = { targetLatency: null, preferJumps: false, maxCatchUpRate: 1.1, slowDownRate: 0.9 };
  let state = initialState();
  const key = 48;
  let k = key + burst; // the next fragment to arrive
  const t0 = k * fd + late(k - 1) + joinAt;
  const feed = (t, i, isBurst) => {
    const step = joint.add([[1, (i + 1) * fd, i * fd]]);
    if (step) learner.fragment(t, step.start, step.duration, isBurst);
    if (learner.fragmentDuration > 0) fragDuration = learner.fragmentDuration;
  };
  for (let i = key; i < k; i++) feed(t0, i, true);
  const startMedia = key * fd;
  let end = k * fd;
  const target = () => effectiveTarget(null, fragDuration, learner.target);
  let ct = liveEdgeTarget([[startMedia, end]], startMedia, target() + fragDuration / 2) ?? startMedia;
  let playing = false;
  let rate = 1;
  let low = Infinity;
  let stalledFor = 0;
  let startedAhead = null;
  let nextTick = t0 + 0.25;
  for (let t = t0; t < t0 + seconds; t += 0.005) {
    while ((k + 1) * fd + late(k) <= t) { feed(t, k, false); end = (k + 1) * fd; k++; }
    if (!playing && start({ ahead: end - ct, target: target(), fragmentDuration: fragDuration, waitedMs: (t - t0) * 1000, burstPending: false })) {
      playing = true;
      startedAhead = end - ct;
    }
    if (playing) {
      if (ct >= end) stalledFor += 0.005;
      ct = Math.min(end, ct + 0.005 * rate);
      low = Math.min(low, end - ct);
    }
    if (t >= nextTick) {
      nextTick += 0.25;
      learner.tick(t);
      const a = controlStep(state, { dt: 250, currentTime: ct, buffered: [[startMedia, end]], paused: !playing, ended: false, suspended: false, fragmentDuration: fragDuration, learnedTarget: learner.target }, settings);
      state = a.state;
      if (a.seek) { ct = a.seek.to; state = { ...state, latencySamples: [] }; }
      if (a.rate !== null) rate = a.rate;
    }
  }
  return { low, stalledFor, startedAhead };
}

test('start: a viewer that joins just after a keyframe does not underflow in its first seconds', () => {
  // the recorded case: 0.37 s fragments, a 0.3 s burst (one fragment); Chromium underflows with
  // up to 0.17 s ahead (measured, issue 14)
  const late = (k) => 0.02 + 0.06 * ((k * 7919) % 11) / 10; // 20–80 ms, deterministic
  for (const burst of [1, 2, 3]) {
    for (const joinAt of [0, 0.03, 0.1, 0.2, 0.3]) {
      const { low } = joinLive({ fd: 0.367, burst, joinAt, seconds: 6, late, start: shouldStart });
      assert.ok(low >= 0.17, `burst of ${burst}, joined ${joinAt} s after it: buffer down to ${low.toFixed(3)} s`);
    }
  }
  // the rule is what keeps it up: playing what a one-fragment burst holds at once runs it down
  const eager = joinLive({ fd: 0.367, burst: 1, joinAt: 0.03, seconds: 6, late, start: () => true });
  assert.ok(eager.low < 0.17, `starting at once: buffer down to ${eager.low.toFixed(3)} s`);
});

test('start: long fragments (1 and 2 s, a one-fragment burst): the burst teaches their length, no stall', () => {
  // before, JointEnd's first segment was no step: the learner knew no fragment length after the
  // burst, the player's 0.5 s default made the target 0.3 s, it started with 0.55 s of a 2 s
  // fragment and sat 1.45 s at the end of the data (found by a review, issue 14)
  for (const fd of [1, 2]) {
    const r = joinLive({ fd, burst: 1, joinAt: 0, seconds: 8, late: () => 0.03, start: shouldStart });
    assert.equal(r.stalledFor, 0, `${fd} s fragments: started with ${r.startedAhead?.toFixed(3)} s, sat ${r.stalledFor.toFixed(2)} s at the end`);
  }
});

// ---------------------------------------------------------------------------------------------
// Closed loop on REAL arrivals: the traces recorded with the learner keep, per tick, the fragments
// that arrived since the previous tick (performance.now() of their arrival, start, duration).
// The simulated page plays at the controller's rate, stalls when it reaches the end of the data
// less Chromium's underflow point (FLOOR: measured at 0.08–0.17 s, issue 14), plays again once
// RESUME s more are there, and takes the controller's seeks: no browser, but the stream's real
// timing. Chromium traces only (Firefox underflows and resumes differently; its traces are judged
// open loop above). The numbers (0 stalls in 30 s, buffer p50) are held by the benchmark
// in a real browser (tests/bench/latency): here a late fragment beyond the learned jitter may
// stall once, and then raises the margin so that it does not again.
const FLOOR = 0.1;
const RESUME = 0.2;

function simulate(tr) {
  const arrivals = tr.ticks.flatMap((k) => k.arrivals ?? []).map(([t, start, duration, burst]) => ({ t: t / 1000, start, duration, burst }));
  const settings = { ...settingsOf(tr, tr.ticks[0]), targetLatency: null };
  const learner = new TargetLearner();
  let state = initialState();
  const k0 = tr.ticks.find((k) => k.sample.buffered.length);
  let t = k0.t / 1000;
  let ct = k0.sample.currentTime;
  let end = k0.sample.buffered.at(-1)[1];
  let start = k0.sample.buffered.at(-1)[0];
  let rate = 1;
  let stalled = false;
  let stalls = 0;
  let ai = arrivals.findIndex((a) => a.t > t);
  if (ai < 0) ai = arrivals.length;
  const out = [];
  const tEnd = tr.ticks.at(-1).t / 1000;
  let nextTick = t + 0.25;
  for (; t < tEnd; t += 0.005) {
    for (; ai < arrivals.length && arrivals[ai].t <= t; ai++) {
      const a = arrivals[ai];
      learner.fragment(a.t, a.start, a.duration, a.burst);
      end = Math.max(end, a.start + a.duration);
    }
    if (end - ct > FLOOR + RESUME) stalled = false;
    if (!stalled) {
      ct += 0.005 * rate;
      if (ct > end - FLOOR) {
        ct = end - FLOOR;
        stalled = true;
        stalls++;
        learner.stall(t);
      }
    }
    if (t >= nextTick) {
      nextTick += 0.25;
      learner.tick(t);
      const sample = {
        dt: 250, currentTime: ct, buffered: [[start, end]], paused: false, ended: false, suspended: false,
        fragmentDuration: learner.fragmentDuration || 0.5, learnedTarget: learner.target,
      };
      const a = controlStep(state, sample, settings);
      state = afterSeek(a.state, a.seek);
      if (a.seek && a.seek.kind !== 'nudge') ct = a.seek.to;
      if (a.rate !== null) rate = a.rate;
      out.push({ t, buffer: end - ct, rate, target: learner.target, margin: learner.margin, stalls, seek: a.seek });
    }
  }
  return { out, stalls, learner };
}

const p50 = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Media seconds the stream delivered per wall-clock second over a trace's arrivals, outside its
 * disturbance (and the 3 s after it: ffmpeg -re sends what it owes): under 0.97 the publisher
 * (or the shared machine) did not keep up in real time, and no player could avoid stalls.
 */
function deliveryRate(tr) {
  const d = tr.disturbance;
  const live = tr.ticks.flatMap((k) => k.arrivals ?? []).filter((a) => !a[3]);
  const parts = d ? [live.filter((a) => a[0] < d.from), live.filter((a) => a[0] > d.to + 3000)] : [live];
  let media = 0;
  let wall = 0;
  for (const p of parts) {
    if (p.length < 2) continue;
    media += (p.at(-1)[1] + p.at(-1)[2]) - (p[0][1] + p[0][2]);
    wall += (p.at(-1)[0] - p[0][0]) / 1000;
  }
  return wall > 0 ? media / wall : 0;
}
for (const tr of REAL.filter((x) => x.browser === 'chromium' && x.ticks.some((k) => k.arrivals?.length) && !x.disturbance?.what.includes('hidden'))) {
  const name = tr.file.replace(/^trace-|\.json$/g, '');
  const rate = deliveryRate(tr);
  if (rate < 0.97) {
    test(`${name}: closed loop: the stream came at ${rate.toFixed(2)} s of media per s (starved): every stall raises the margin, rates gentle`, () => {
      const { out } = simulate(tr);
      for (const o of out) assert.ok(o.rate >= 0.9 && o.rate <= 1.1, `rate ${o.rate} at ${o.t}`);
      for (let i = 1; i < out.length; i++) {
        if (out[i].stalls > out[i - 1].stalls) assert.ok(out[i].margin > out[i - 1].margin || out[i].margin === LEARN_DEFAULTS.maxMargin, `stall at ${out[i].t}`);
      }
    });
    continue;
  }
  test(`${name}: closed loop on the recorded arrivals: no stall when undisturbed, low buffer, gentle rates`, () => {
    const { out, stalls, learner } = simulate(tr);
    const fd = learner.fragmentDuration;
    assert.ok(out.length > 80, `${out.length} ticks simulated`);
    for (const o of out) assert.ok(o.rate >= 0.9 && o.rate <= 1.1, `rate ${o.rate} at ${o.t}`);
    const settled = out.slice(Math.floor(out.length / 3));
    const buffer = p50(settled.map((o) => o.buffer));
    // every stall raised the margin
    for (let i = 1; i < out.length; i++) {
      if (out[i].stalls > out[i - 1].stalls) assert.ok(out[i].margin > out[i - 1].margin || out[i].margin === LEARN_DEFAULTS.maxMargin, `stall at ${out[i].t}: margin ${out[i].margin}`);
    }
    if (!tr.disturbance) {
      assert.ok(stalls <= 2, `${stalls} stalls`);
      // the learned target and where the buffer sits: half a fragment + jitter + margin, loosely
      // (the numbers are held by tests/bench/latency in a real browser)
      assert.ok(buffer <= fd / 2 + learner.jitter + learner.margin + 0.2, `buffer p50 ${buffer.toFixed(3)} s, fragments ${fd.toFixed(3)} s, jitter ${learner.jitter.toFixed(3)} s`);
      assert.ok(settled.filter((o) => o.seek).length === 0, 'no seek once settled');
    } else {
      // ffmpeg stopped for 2 s (and, SIGCONTed on a loaded machine, may come slowly for a while):
      // the data runs dry, each stall raising the margin (above), then it plays on
      assert.ok(stalls >= 1, 'the outage was seen');
      const last5 = out.filter((o) => o.t > out.at(-1).t - 5);
      assert.ok(last5.every((o) => o.stalls === stalls), 'no stall in the last 5 s');
    }
  });
}
