// Tables and an SVG plot (no dependency) for docs/latency.md from latency-bench.mjs results.
//   node tests/bench/latency/report.mjs OUT/results.jsonl docs/latency.md   (or latency-bench --markdown)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Targets of issue 14 (buffer p50, MSE, no attributes, no jitter). */
export const TARGETS = { 'per-frame': 0.30, '70ms': 0.35, '700ms': 0.95 };
/** Target of issue 14 for the WebCodecs renderer (wall-clock latency p50, per-frame, no jitter). */
export const WEBCODECS_TARGETS = { 'per-frame': 0.15 };
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];
const f3 = (x) => (x === null || x === undefined ? '–' : x.toFixed(3));

/**
 * An SVG line plot of one series per run: `key` of the samples over time.
 * @param {any[]} runs @param {string} key @param {string} title
 */
export function svgPlot(runs, key, title) {
  const W = 760; const H = Math.max(300, 64 + runs.length * 16); const L = 50; const R = 190; const T = 28; const B = 36;
  const xs = runs.flatMap((r) => r.samples.map((s) => s.t));
  const ys = runs.flatMap((r) => r.samples.map((s) => s[key]).filter((y) => Number.isFinite(y)));
  const xMax = Math.max(1, ...xs);
  const yMax = Math.max(0.1, Math.min(3, Math.ceil(Math.max(0, ...ys) * 10) / 10));
  const X = (t) => L + ((W - L - R) * t) / xMax;
  const Y = (y) => T + (H - T - B) * (1 - Math.min(y, yMax) / yMax);
  const out = [`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`, `<text x="${L}" y="16" font-size="13">${title}</text>`];
  for (let i = 0; i <= 5; i++) {
    const y = (yMax * i) / 5;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${Y(y)}" y2="${Y(y)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${Y(y) + 4}" text-anchor="end">${y.toFixed(2)}</text>`);
  }
  for (let t = 0; t <= xMax; t += 5) out.push(`<text x="${X(t)}" y="${H - B + 16}" text-anchor="middle">${t}</text>`);
  out.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">s since the first frame</text>`);
  out.push(`<text transform="translate(12 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">s</text>`);
  runs.forEach((r, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = r.samples.filter((s) => Number.isFinite(s[key])).map((s) => `${X(s.t).toFixed(1)},${Y(s[key]).toFixed(1)}`);
    if (pts.length) out.push(`<polyline fill="none" stroke="${c}" stroke-width="1.2" points="${pts.join(' ')}"/>`);
    out.push(`<line x1="${W - R + 10}" x2="${W - R + 28}" y1="${T + 8 + i * 16}" y2="${T + 8 + i * 16}" stroke="${c}" stroke-width="2"/>`,
      `<text x="${W - R + 32}" y="${T + 12 + i * 16}">${/firefox/i.test(r.browser ?? '') ? 'Firefox ' : ''}${r.shape} ${r.renderer}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** `HeadlessChrome/131.0…`, `Firefox/128.0…` → `Chromium 131`, `Firefox 128`. @param {string} [v] */
function shortBrowser(v) {
  const m = /^(\w+)\/(\d+)/.exec(v ?? '');
  if (!m) return v ?? '–';
  return `${/chrom/i.test(m[1]) ? 'Chromium' : /firefox/i.test(m[1]) ? 'Firefox' : m[1]} ${m[2]}`;
}

/** The tables (one row per run) as Markdown. */
export function tables(results) {
  const rows = ['| browser | shape | renderer | jitter (ms) | buffer p10 / p50 / p90 (s) | target (s) | issue target p50 | wall clock p50 / p90 (s) | source | stalls | jumps | load avg |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of results) {
    const browser = shortBrowser(r.browser);
    const jitterCol = r.jitterMs && r.jitterVia ? `${r.jitterMs} (${r.jitterVia})` : `${r.jitterMs}`;
    if (r.error) {
      rows.push(`| ${browser} | ${r.shape} | ${r.renderer} | ${jitterCol} | failed: ${r.error.replace(/\|/g, '\\|')} | | | | | | | ${r.loadAvg ? `${r.loadAvg[0].toFixed(1)}/${r.cpus}` : '–'} |`);
      continue;
    }
    let met = '';
    if (r.jitterMs === 0 && r.renderer === 'mse' && TARGETS[r.shape] !== undefined && r.buffer.p50 !== null) {
      const goal = TARGETS[r.shape];
      met = `${r.buffer.p50 <= goal && r.stalls === 0 ? 'met' : 'NOT met'} (0 stalls, buffer ≤ ${goal.toFixed(2)})`;
    } else if (r.jitterMs === 0 && r.renderer === 'webcodecs' && WEBCODECS_TARGETS[r.shape] !== undefined && r.wallClock.p50 !== null) {
      const goal = WEBCODECS_TARGETS[r.shape];
      met = `${r.wallClock.p50 <= goal ? 'met' : 'NOT met'} (wall clock ≤ ${goal.toFixed(2)})`;
    }
    rows.push(`| ${browser} | ${r.shape} | ${r.renderer} | ${jitterCol} | ${f3(r.buffer.p10)} / ${f3(r.buffer.p50)} / ${f3(r.buffer.p90)} | ${f3(r.target)} | ${met} | ${f3(r.wallClock.p50)} / ${f3(r.wallClock.p90)} | ${r.wallClock.source ?? '–'} | ${r.stalls} | ${r.jumps} | ${r.loadAvg ? `${r.loadAvg[0].toFixed(1)}/${r.cpus}` : '–'} |`);
  }
  return rows.join('\n');
}

/**
 * Writes the generated part of `mdPath` (between the BEGIN/END markers; the rest is kept) and
 * the SVG plots next to it: per jitter value J, `BASE-buffer-jitterJ.svg` and
 * `BASE-wallClockLatency-jitterJ.svg` (BASE: the Markdown file's name without `.md`).
 */
export function renderMarkdown(results, mdPath) {
  const dir = path.dirname(mdPath);
  const base = path.basename(mdPath, '.md');
  const plots = [['buffer', 'buffer: buffered.end − currentTime (MSE), stats.latency (WebCodecs) (s)'], ['wallClockLatency', 'wall-clock latency (s)']];
  const parts = [tables(results), ''];
  const jitters = [...new Set(results.map((r) => r.jitterMs))];
  for (const j of jitters) {
    const runs = results.filter((r) => r.jitterMs === j);
    const via = runs.find((r) => r.jitterVia)?.jitterVia;
    for (const [key, title] of plots) {
      if (!runs.some((r) => r.samples.some((s) => Number.isFinite(s[key])))) continue;
      const f = `${base}-${key}-jitter${j}.svg`;
      const t = `${title}, jitter ${j} ms${via ? ` (${via})` : ''}`;
      fs.writeFileSync(path.join(dir, f), svgPlot(runs, key, t));
      parts.push(`![${t}](${f})`, '');
    }
  }
  const gen = `<!-- BEGIN latency-bench -->\n${parts.join('\n')}\n<!-- END latency-bench -->`;
  let md = fs.existsSync(mdPath) ? fs.readFileSync(mdPath, 'utf8') : '# Latency\n\n<!-- BEGIN latency-bench -->\n<!-- END latency-bench -->\n';
  md = md.replace(/<!-- BEGIN latency-bench -->[\s\S]*<!-- END latency-bench -->/, gen);
  fs.writeFileSync(mdPath, md);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [, , jsonl, md] = process.argv;
  const results = fs.readFileSync(jsonl, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  renderMarkdown(results, md);
}
