#!/usr/bin/env python3
"""Fan-out benchmark driver (run on demand; not part of ./run-tests.sh).

For each stream shape x viewer count x server (our websocketsink, the minimal epoll
broadcaster, the notes' Node.js server), alternating servers within the run:
  1. start the server (fresh process per point),
  2. start the feeder (pre-encoded fMP4 in real time -> the server's TCP ingest),
  3. start the load client (N viewers at --rate/s, settle, steady window, drain),
  4. sample the server's utime+stime (/proc/PID/stat) and RSS (/proc/PID/status) at
     the start and end of the steady window the client announces,
  5. stop everything it started (by PID), append one JSON line to OUT/results.jsonl.

  tests/bench/run.py --build BUILD_DIR [--plugin-path DIR] [--media DIR] [--out DIR]
      [--shapes frag100,frag700,perframe] [--viewers 100,500,1000,2000,5000]
      [--servers sink,minbcast,node]  (also sinkN: the sink with io-threads=N) [--stall 0.1] [--stall-servers sink]
      [--window 10] [--settle 2] [--rate 1000] [--max-pending 8] [--profile]

BUILD_DIR is a meson build dir configured with -Dbench=true (tools in
BUILD_DIR/tests/bench/); the plugin is taken from --plugin-path (default
BUILD_DIR/gst). Media: tests/bench/make-media.sh. Report: tests/bench/report.py.
"""
import argparse
import json
import re
import os
import resource
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open(f'/proc/{pid}/stat') as f:
        s = f.read()
    fields = s[s.rindex(')') + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def rss_kib(pid):
    rss = hwm = 0
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                rss = int(line.split()[1])
            elif line.startswith('VmHWM:'):
                hwm = int(line.split()[1])
    return rss, hwm


def threads(pid):
    try:
        return len(os.listdir(f'/proc/{pid}/task'))
    except OSError:
        return 0


def wait_port(port, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def chromium_running():
    return subprocess.run(['pgrep', '-x', 'chromium'], stdout=subprocess.DEVNULL).returncode == 0


def wait_idle(max_wait=1200, quiet=20):
    """Waits (up to max_wait s) until no Chromium (another helper's browser tests,
    which start one browser per test) has run for `quiet` seconds."""
    start = time.time()
    last_seen = time.time() if chromium_running() else 0
    if not last_seen:
        return 0.0
    print('waiting: chromium is running', flush=True)
    while time.time() - start < max_wait:
        if chromium_running():
            last_seen = time.time()
        elif time.time() - last_seen >= quiet:
            break
        time.sleep(1)
    return time.time() - start


def machine_busy():
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def stop(proc, sig=signal.SIGTERM, timeout=5):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Point:
    def __init__(self, args, shape, viewers, server, stall, index):
        self.args, self.shape, self.viewers, self.server, self.stall = args, shape, viewers, server, stall
        self.ingest = args.base_port + 2 * index
        self.port = self.ingest + 1
        self.tag = f'{shape}-{server}-{viewers}' + (f'-stall{int(stall * 100)}' if stall else '') + \
            (f'-{args.variant}' if args.variant else '')

    def server_cmd(self):
        a = self.args
        if self.server == 'sink' or re.fullmatch(r'sink\d+', self.server):
            # sinkN: the sink with io-threads=N; sink: its default (one per core, at most 8)
            threads = [f'io-threads={self.server[4:]}'] if self.server != 'sink' else []
            return ['gst-launch-1.0', '-q', 'tcpserversrc', 'host=127.0.0.1', f'port={self.ingest}',
                    '!', 'fmp4initcache', '!', 'websocketsink', 'address=127.0.0.1',
                    f'port={self.port}', 'max-clients=0'] + threads + self.args.sink_props.split(), None
        if self.server == 'minbcast':
            return [os.path.join(a.tools, 'minbroadcast'), '--ingest-port', str(self.ingest),
                    '--port', str(self.port)] + a.minbcast_args.split(), None
        if self.server == 'node':
            return ['node', 'server.js'], os.path.join(HERE, 'node-notes-server')
        raise ValueError(self.server)

    def run(self):
        a = self.args
        logdir = os.path.join(a.out, 'logs')
        os.makedirs(logdir, exist_ok=True)
        feed_log = os.path.join(logdir, self.tag + '.feeder.csv')
        env = dict(os.environ, GST_PLUGIN_PATH=a.plugin_path, STREAM_PORT=str(self.ingest),
                   WS_PORT=str(self.port))
        cmd, cwd = self.server_cmd()
        srv_err = open(os.path.join(logdir, self.tag + '.server.log'), 'w')
        srv = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=srv_err, stderr=subprocess.STDOUT)
        feeder = client = None
        result = {'shape': self.shape, 'server': self.server, 'viewers': self.viewers,
                  'stall_fraction': self.stall, 'tag': self.tag, 'variant': a.variant,
                  'sink_props': a.sink_props, 'minbcast_args': a.minbcast_args}
        try:
            # No probe on the ingest port: a probe would be taken for the publisher
            # (tcpserversrc ends at its disconnect); the feeder retries instead.
            feeder = subprocess.Popen(
                [os.path.join(a.tools, 'feeder'), '--file', os.path.join(a.media, self.shape + '.mp4'),
                 '--port', str(self.ingest), '--log', feed_log],
                stderr=open(os.path.join(logdir, self.tag + '.feeder.err'), 'w'))
            if not wait_port(self.port):
                raise RuntimeError('server did not listen on the viewer port')
            time.sleep(a.preroll)
            result['server_rss_idle_kib'] = rss_kib(srv.pid)[0]
            ccmd = [os.path.join(a.tools, 'loadclient'), '--port', str(self.port),
                    '--viewers', str(self.viewers), '--rate', str(a.rate),
                    '--max-pending', str(a.max_pending), '--ramp-timeout', str(a.ramp_timeout), '--settle', str(a.settle),
                    '--window', str(a.window), '--drain', str(a.drain), '--stall', str(self.stall),
                    '--feeder-log', feed_log, '--label', self.tag,
                    '--csv', os.path.join(logdir, self.tag + '.fragments.csv'),
                    '--mode', 'stream' if self.server == 'node' else 'messages']
            client = subprocess.Popen(ccmd, stdout=subprocess.PIPE, text=True,
                                      stderr=open(os.path.join(logdir, self.tag + '.client.err'), 'w'))
            c0 = t0 = cc0 = None
            perf = None
            for line in client.stdout:
                if line.startswith('STEADY_START'):
                    t0, c0, cc0 = time.monotonic(), cpu_seconds(srv.pid), cpu_seconds(client.pid)
                    m0 = machine_busy()
                    result['server_threads'] = threads(srv.pid)
                    if a.profile and self.server.startswith('sink'):
                        perf = subprocess.Popen(
                            ['perf', 'record', '-k', 'mono', '-e', 'cpu-clock', '-F', '499', '--call-graph', 'dwarf,32768', '-p', str(srv.pid),
                             '-o', os.path.join(a.out, self.tag + '.perf.data')],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                elif line.startswith('STEADY_END') and t0 is not None:
                    dt = time.monotonic() - t0
                    result['server_cpu_pct'] = 100 * (cpu_seconds(srv.pid) - c0) / dt
                    result['client_cpu_pct'] = 100 * (cpu_seconds(client.pid) - cc0) / dt
                    m1 = machine_busy()
                    # Whole machine, % of one core (200 = both cores busy).
                    result['machine_cpu_pct'] = 100 * os.cpu_count() * (m1[0] - m0[0]) / max(1, m1[1] - m0[1])
                    result['chromium_in_window'] = chromium_running()
                    rss, hwm = rss_kib(srv.pid)
                    result['server_rss_kib'], result['server_hwm_kib'] = rss, hwm
                    if perf:
                        stop(perf, signal.SIGINT, 20)
                elif line.startswith('RESULT '):
                    result['client'] = json.loads(line[7:])
            client.wait()
            result['server_alive'] = srv.poll() is None
        except Exception as e:  # noqa: BLE001 - keep the matrix going, record why
            result['error'] = str(e)
        finally:
            stop(client)
            stop(feeder)
            stop(srv)
            srv_err.close()
        return result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--build', default=os.path.join(HERE, '..', '..', 'build'))
    p.add_argument('--plugin-path')
    p.add_argument('--media', default='/tmp/fmp4ws-bench/media')
    p.add_argument('--out', default='/tmp/fmp4ws-bench/out')
    p.add_argument('--shapes', default='frag100,frag700,perframe')
    p.add_argument('--viewers', default='100,500,1000,2000,5000')
    p.add_argument('--servers', default='sink,minbcast,node')
    p.add_argument('--stall', type=float, default=0.1, help='fraction of stalled viewers for the extra runs (0: none)')
    p.add_argument('--stall-servers', default='sink')
    p.add_argument('--window', type=float, default=10)
    p.add_argument('--settle', type=float, default=2)
    p.add_argument('--drain', type=float, default=1.5)
    p.add_argument('--preroll', type=float, default=2.5, help='s of stream before viewers connect')
    p.add_argument('--rate', type=float, default=1000)
    p.add_argument('--max-pending', type=int, default=8,
                   help='viewers connecting or in the handshake at a time (0: no limit)')
    p.add_argument('--ramp-timeout', type=float, default=30)
    p.add_argument('--base-port', type=int, default=21000)
    p.add_argument('--profile', action='store_true', help='perf record the sink over each steady window')
    p.add_argument('--sink-props', default='', help="extra websocketsink properties, e.g. 'keepalive-interval=0'")
    p.add_argument('--minbcast-args', default='', help="extra minbroadcast arguments, e.g. '--sndbuf 262144'")
    p.add_argument('--variant', default='', help='a name for a variant run (kept apart in the report)')
    p.add_argument('--no-wait', action='store_true', help='do not wait for Chromium to exit')
    a = p.parse_args()
    a.build = os.path.abspath(a.build)
    a.tools = os.path.join(a.build, 'tests', 'bench')
    a.plugin_path = os.path.abspath(a.plugin_path or os.path.join(a.build, 'gst'))
    os.makedirs(a.out, exist_ok=True)
    for tool in ('loadclient', 'feeder', 'minbroadcast'):
        if not os.access(os.path.join(a.tools, tool), os.X_OK):
            sys.exit(f'{tool} not built: meson configure {a.build} -Dbench=true && ninja -C {a.build}')
    for shape in a.shapes.split(','):
        if not os.path.exists(os.path.join(a.media, shape + '.mp4')):
            sys.exit(f'no {shape}.mp4 in {a.media}: run tests/bench/make-media.sh {a.media}')
    if 'node' in a.servers and not os.path.isdir(os.path.join(HERE, 'node-notes-server', 'node_modules', 'ws')):
        subprocess.run(['npm', 'install', '--no-audit', '--no-fund'], cwd=os.path.join(HERE, 'node-notes-server'), check=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 100000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    points = []
    for shape in a.shapes.split(','):
        for n in [int(x) for x in a.viewers.split(',')]:
            for server in a.servers.split(','):
                if server:
                    points.append((shape, n, server, 0.0))
            if a.stall > 0:
                for server in a.stall_servers.split(','):
                    if server:
                        points.append((shape, n, server, a.stall))
    results_path = os.path.join(a.out, 'results.jsonl')
    start = time.time()
    meta = {'meta': True, 'nproc': os.cpu_count(), 'window_s': a.window, 'settle_s': a.settle,
            'rate': a.rate, 'max_pending': a.max_pending, 'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'argv': sys.argv[1:]}
    with open(results_path, 'a') as f:
        f.write(json.dumps(meta) + '\n')
    for i, (shape, n, server, stall) in enumerate(points):
        waited = 0 if a.no_wait else wait_idle(quiet=20 if i == 0 else 5)
        pt = Point(a, shape, n, server, stall, i)
        t = time.time()
        r = pt.run()
        r['waited_for_chromium_s'] = round(waited, 1)
        r['chromium_during'] = chromium_running()
        r['point_s'] = round(time.time() - t, 1)
        with open(results_path, 'a') as f:
            f.write(json.dumps(r) + '\n')
        c = r.get('client', {})
        lat = c.get('latency_ms', {})
        print(f"[{i + 1}/{len(points)} {time.time() - start:6.0f}s] {pt.tag:28s} cpu {r.get('server_cpu_pct', -1):6.1f}% "
              f"rss {r.get('server_rss_kib', 0) / 1024:7.1f} MiB  lat p50/p99 {lat.get('p50', -1):7.2f}/{lat.get('p99', -1):7.2f} ms "
              f"delivered {c.get('delivered_ratio', 0):.4f} open {c.get('opened', 0)}/{n} client {r.get('client_cpu_pct', -1):5.1f}%"
              + (f" ERROR {r['error']}" if 'error' in r else ''), flush=True)
    print(f'done in {time.time() - start:.0f} s: {results_path}')


if __name__ == '__main__':
    main()
