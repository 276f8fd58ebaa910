#!/usr/bin/env python3
"""Tables (Markdown) and plots (PNG, gnuplot) from tests/bench/run.py results.

  tests/bench/report.py OUT/results.jsonl [--md OUT/tables.md] [--img-dir docs/]
      [--img-prefix benchmarks] [--variant NAME | --compare OTHER.jsonl --compare-name TEXT]

The last line for each point (shape, server, viewers, stall) wins, so a point
re-run later replaces the earlier one.
"""
import argparse
import json
import os
import subprocess
import tempfile

SERVERS = [('sink', 'websocketsink'), ('sink1', 'websocketsink, 1 I/O thread'),
           ('sink2', 'websocketsink, 2 I/O threads'), ('minbcast', 'minimal epoll'),
           ('node', 'Node.js (notes)')]
SHAPES = [('frag100', '100 ms fragments'), ('frag700', '700 ms fragments'),
          ('perframe', 'one fragment per frame (video+audio, about 77 msg/s)')]


def load(path, variant=''):
    pts = {}
    for line in open(path):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if r.get('meta') or r.get('variant', '') != variant:
            continue
        pts[(r['shape'], r['server'], r['viewers'], r.get('stall_fraction', 0))] = r
    return pts


def f(v, fmt='{:.1f}'):
    return '—' if v is None else fmt.format(v)


def row(r):
    c = r.get('client', {})
    lat, spr = c.get('latency_ms', {}), c.get('spread_ms', {})
    rss = r.get('server_rss_kib')
    return [f(r.get('server_cpu_pct')), f(rss / 1024 if rss else None),
            f(lat.get('p50'), '{:.2f}'), f(lat.get('p99'), '{:.2f}'), f(lat.get('max'), '{:.1f}'),
            f(spr.get('p50'), '{:.2f}'), f(spr.get('p99'), '{:.2f}'),
            str(c.get('nonkey_starts', '—')),
            f(c.get('delivered_ratio'), '{:.4f}'),
            f(c.get('throughput_mbps'), '{:.0f}'),
            f'{c.get("opened", 0)}/{r["viewers"]}',
            f(r.get('client_cpu_pct')), f(r.get('machine_cpu_pct'), '{:.0f}')]


HEAD = ['server', 'viewers', 'CPU % of 1 core', 'RSS MiB', 'lat p50 ms', 'lat p99 ms', 'lat max ms',
        'spread p50 ms', 'spread p99 ms', 'non-key starts', 'delivered', 'Mb/s out', 'open',
        'client CPU %', 'machine CPU %']


def tables(pts):
    out = []
    viewers = sorted({k[2] for k in pts})
    for shape, title in SHAPES:
        if not any(k[0] == shape for k in pts):
            continue
        out.append(f'\n#### {title} (`{shape}`)\n')
        out.append('| ' + ' | '.join(HEAD) + ' |')
        out.append('|' + '---|' * len(HEAD))
        for n in viewers:
            for server, name in SERVERS:
                for stall in sorted({k[3] for k in pts}):
                    r = pts.get((shape, server, n, stall))
                    if not r:
                        continue
                    label = name + (f' +{int(stall * 100)}% stalled' if stall else '')
                    if 'error' in r:
                        out.append(f'| {label} | {n} | error: {r["error"]} |')
                        continue
                    out.append('| ' + ' | '.join([label, str(n)] + row(r)) + ' |')
    return '\n'.join(out) + '\n'


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def targets(pts):
    out = ['\n| check | shape | viewers | value | target | met |', '|---|---|---|---|---|---|']

    def cpu(shape, server, n, stall=0):
        r = pts.get((shape, server, n, stall))
        return r.get('server_cpu_pct') if r else None

    def p99(shape, server, n, stall=0):
        r = pts.get((shape, server, n, stall))
        return r.get('client', {}).get('latency_ms', {}).get('p99') if r else None

    def yes(ok):
        return '—' if ok is None else ('yes' if ok else '**no**')

    for shape, _ in SHAPES:
        for n in (1000, 2000):
            x = ratio(cpu(shape, 'sink', n), cpu(shape, 'minbcast', n))
            if x is not None:
                out.append(f'| CPU sink / minimal | {shape} | {n} | {x:.2f}× | ≤ 1.25× | {yes(x <= 1.25)} |')
            x = ratio(cpu(shape, 'sink', n), cpu(shape, 'node', n))
            if x is not None:
                out.append(f'| CPU sink / Node.js | {shape} | {n} | {x:.2f}× | ≤ 0.5× | {yes(x <= 0.5)} |')
            a, b = p99(shape, 'sink', n), p99(shape, 'minbcast', n)
            if a is not None and b is not None:
                out.append(f'| p99 latency sink vs minimal | {shape} | {n} | {a:.2f} vs {b:.2f} ms | ≤ minimal | {yes(a <= b)} |')
        r = pts.get((shape, 'sink', 1000, 0))
        if r:
            s = r.get('client', {}).get('spread_ms', {}).get('p99')
            out.append(f'| spread p99 | {shape} | 1000 | {s:.2f} ms | ≤ 50 ms | {yes(s <= 50)} |')
    c = cpu('perframe', 'sink', 1000)
    if c is not None:
        out.append(f'| per-frame CPU | perframe | 1000 | {c:.1f} % | ≤ 30 % of a core | {yes(c <= 30)} |')
    for shape, _ in SHAPES:
        for n in sorted({k[2] for k in pts}):
            r = pts.get((shape, 'sink', n, 0))
            if not r or not r.get('server_rss_kib'):
                continue
            mib = r['server_rss_kib'] / 1024
            limit = 20 + 64 * n / 1024
            out.append(f'| RSS | {shape} | {n} | {mib:.1f} MiB | ≤ {limit:.1f} MiB (20 MiB + 64 KiB/viewer) | {yes(mib <= limit)} |')
    for shape, _ in SHAPES:
        for (s2, srv, n, stall), r in sorted(pts.items()):
            if s2 != shape or srv != 'sink' or not stall:
                continue
            a, b = p99(shape, 'sink', n, stall), p99(shape, 'sink', n)
            if a is not None and b:
                d = (a - b) / b * 100
                out.append(f'| p99 change with {int(stall * 100)}% stalled | {shape} | {n} | {b:.2f} → {a:.2f} ms ({d:+.0f} %) | < +10 % | {yes(d < 10)} |')
    return '\n'.join(out) + '\n'


def plots(pts, img_dir, prefix, extra=None, extra_name=''):
    viewers = sorted({k[2] for k in pts})
    tmp = tempfile.mkdtemp()
    files = {}
    servers = list(SERVERS)
    if extra:
        servers.append(('extra', extra_name))
    for shape, _ in SHAPES:
        for server, _ in servers:
            rows = []
            for n in viewers:
                r = (extra or {}).get((shape, 'sink', n, 0)) if server == 'extra' else pts.get((shape, server, n, 0))
                if r and 'server_cpu_pct' in r:
                    c = r.get('client', {})
                    rows.append(f"{n} {r['server_cpu_pct']:.2f} {c.get('latency_ms', {}).get('p50', 0):.3f} "
                                f"{c.get('latency_ms', {}).get('p99', 0):.3f}")
            p = os.path.join(tmp, f'{shape}-{server}.dat')
            with open(p, 'w') as fh:
                fh.write('\n'.join(rows) + '\n')
            files[(shape, server)] = p if rows else None
    colors = {'sink': '#1f77b4', 'sink1': '#9467bd', 'sink2': '#17becf', 'minbcast': '#2ca02c',
              'node': '#d62728'}

    present = [(sh, t) for sh, t in SHAPES if any(files.get((sh, sv)) for sv, _ in SERVERS)]
    colors['extra'] = '#1f77b4'
    names = dict(servers)

    def script(out, col, ylabel, title, logy):
        s = [f"set terminal pngcairo size {500 * len(present)},560 font 'DejaVu Sans,10'",
             f"set output '{out}'", f"set multiplot layout 1,{len(present)} title '" + title + "'",
             "set logscale x", "set xrange [80:6500]", "set xtics (100,500,1000,2000,5000)", "set grid",
             "set key below Left reverse", "set xlabel 'viewers'", f"set ylabel '{ylabel}'"]
        if logy:
            s.append('set logscale y')
        for shape, stitle in present:
            s.append(f"set title '{stitle}'")
            parts = []
            for server, _ in servers:
                p = files.get((shape, server))
                if p:
                    dash = ' dt 2 pt 6' if server == 'extra' else ' pt 7'
                    parts.append(f"'{p}' using 1:{col} with linespoints lw 2{dash} lc rgb '{colors[server]}' title '{names[server]}'")
            s.append('plot ' + ', '.join(parts) if parts else 'plot 0 notitle')
        s.append('unset multiplot')
        return '\n'.join(s) + '\n'

    os.makedirs(img_dir, exist_ok=True)
    cpu_png = os.path.join(img_dir, f'{prefix}-cpu.png')
    lat_png = os.path.join(img_dir, f'{prefix}-latency.png')
    subprocess.run(['gnuplot'], input=script(cpu_png, 2, 'server CPU, % of one core', 'Server CPU vs viewers', False), text=True, check=True)
    subprocess.run(['gnuplot'], input=script(lat_png, 4, 'p99 ingest-to-viewer latency, ms', 'p99 latency vs viewers', True), text=True, check=True)
    return cpu_png, lat_png


def main():
    p = argparse.ArgumentParser()
    p.add_argument('results')
    p.add_argument('--md')
    p.add_argument('--img-dir')
    p.add_argument('--img-prefix', default='benchmarks')
    p.add_argument('--variant', default='', help='also tabulate (and plot, dashed) this variant of the sink')
    p.add_argument('--compare', help='another results file (e.g. an older plugin): its sink is plotted dashed')
    p.add_argument('--compare-name', default='websocketsink (other build)')
    a = p.parse_args()
    pts = load(a.results)
    extra, extra_name = None, ''
    if a.compare:
        extra, extra_name = load(a.compare), a.compare_name
    elif a.variant:
        extra, extra_name = load(a.results, a.variant), f'websocketsink, {a.variant}'
    md = '### Results\n' + tables(pts) + '\n### Targets\n' + targets(pts)
    if extra:
        md += f'\n### {extra_name}\n' + tables(extra) + '\n' + targets(extra)
    if a.md:
        with open(a.md, 'w') as fh:
            fh.write(md)
    print(md)
    if a.img_dir:
        for x in plots(pts, a.img_dir, a.img_prefix, extra, extra_name):
            print('wrote', x)


if __name__ == '__main__':
    main()
