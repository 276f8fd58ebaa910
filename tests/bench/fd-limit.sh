#!/bin/bash
# Issue 12's measurement: `tcpserversrc ! fmp4initcache ! websocketsink` fed a live stream by
# ffmpeg, the server under `ulimit -n 1024` (soft and hard: what a login shell or a systemd
# service gets by default), then
#   1. N viewers (default 1,100) connecting at once (loadclient, no rate limit), for a window;
#   2. after they left, N connections sending half an HTTP request, held --hold seconds, then gone;
#   3. after step 1, 3 s into step 2 (the half requests held) and after step 2: new viewers
#      (loadclient, 20) and GET /status, what they got and how long it took.
# Prints the server's /status refusals, its descriptors and what each step got.
#
#   tests/bench/fd-limit.sh [--build build] [--plugin-path DIR] [--viewers 1100] [--limit 1024] [--hold 15]
# (--plugin-path: the plugin to measure, default BUILD/gst; loadclient is BUILD's.)
# Needs: a build with -Dbench=true (loadclient), ffmpeg, curl, python3.
set -euo pipefail
BUILD=build
N=1100
LIMIT=1024
HOLD=15
PLUGIN=
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --viewers) N=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --hold) HOLD=$2; shift 2 ;;
    --plugin-path) PLUGIN=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--viewers N] [--limit FDS] [--hold S]" >&2; exit 2 ;;
  esac
done
LOAD=$BUILD/tests/bench/loadclient
PLUGIN=${PLUGIN:-$BUILD/gst}
[ -x "$LOAD" ] || { echo "no $LOAD: meson configure $BUILD -Dbench=true && ninja -C $BUILD" >&2; exit 2; }
free_port () { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IN=$(free_port)
WS=$(free_port)
OUT=$(mktemp -d /tmp/fmp4ws-fdlimit-XXXXXX)
pids=()
cleanup () { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

(ulimit -n "$LIMIT"; GST_PLUGIN_PATH=$PLUGIN GST_DEBUG=websocketsink:4 exec gst-launch-1.0 -q \
   tcpserversrc host=127.0.0.1 port="$IN" ! fmp4initcache ! websocketsink port="$WS") \
   >"$OUT/server.log" 2>&1 &
SERVER=$!
pids+=("$SERVER")
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$WS/status" && break; sleep 0.1; done
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x360:rate=30 -t 600 \
  -c:v libx264 -preset veryfast -g 30 -pix_fmt yuv420p -f mp4 \
  -movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 100000 \
  "tcp://127.0.0.1:$IN" >"$OUT/ffmpeg.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -s "http://127.0.0.1:$WS/status" | grep -q '"stream":{' && break; sleep 0.1; done
echo "server pid $SERVER, limit $(prlimit --pid "$SERVER" --nofile --noheadings -o SOFT,HARD), $(ls /proc/$SERVER/fd | wc -l) fds open"

result () { grep '^RESULT' "$1" | sed 's/^RESULT //' | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("opened %d of %d, failed %d, viewers without a fragment %d, closed by server %d, ramp %.2f s" % (
  r["opened"], r["viewers"], r["failed"], r["viewers_without_fragment"], r["closed_by_server"],
  r["ramp_s"]))'; }
status () { curl -s -m 5 -w ' (%{http_code} in %{time_total} s)' "http://127.0.0.1:$WS/status" | python3 -c '
import json, sys
t = sys.stdin.read(); body, tail = t.rsplit(" (", 1)
r = json.loads(body)
print("/status (" + tail, "viewers", r["viewers"], "refused", json.dumps(r.get("refused")))' 2>/dev/null || echo "/status: no JSON answer"; }
newcomers () {
  local t0 t1
  t0=$(date +%s.%N)
  "$LOAD" --port "$WS" --viewers 20 --rate 1000 --settle 1 --window 2 --drain 1 >"$OUT/new-$1.txt" 2>"$OUT/new-$1.err" || true
  t1=$(date +%s.%N)
  echo "  new viewers: $(result "$OUT/new-$1.txt") (run took $(echo "$t1 - $t0" | bc) s)"
  echo "  $(status)"
  echo "  server fds: $(ls /proc/$SERVER/fd | wc -l)"
}

echo "1. $N viewers at once"
"$LOAD" --port "$WS" --viewers "$N" --rate 1000000 --settle 2 --window 5 --drain 1 --ramp-timeout 30 \
  >"$OUT/crowd.txt" 2>"$OUT/crowd.err" || true
echo "  $(result "$OUT/crowd.txt")"
echo "  refusals seen by the client: $(grep -c refused "$OUT/crowd.err" || true) ($(grep -o 'refused: HTTP/1.1 [0-9]*' "$OUT/crowd.err" | sort | uniq -c | tr '\n' ' '))"
sleep 1
newcomers 1

echo "2. $N half-sent requests, held $HOLD s"
python3 - "$WS" "$N" "$HOLD" >"$OUT/half.txt" <<'EOF' &
import socket, sys, time, resource
port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
socks, t0 = [], time.time()
for i in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.send(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: webso")
    except OSError:
        pass
    socks.append(s)
time.sleep(hold)
closed = answered = 0
for s in socks:
    s.setblocking(False)
    try:
        d = s.recv(4096)
        closed += 1
        answered += d.startswith(b"HTTP/1.1 503")
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("  after %.0f s: %d of %d closed by the server (%d of them answered 503), %d still open" % (
    time.time() - t0, closed, n, answered, n - closed))
for s in socks:
    s.close()
EOF
HALF=$!
sleep 3
echo "  3 s in, while they are held:"
newcomers 2
wait "$HALF" || true
cat "$OUT/half.txt"
sleep 1
newcomers 3
echo "server log: $OUT/server.log"
grep -E "file descriptor limit|cannot accept|at most" "$OUT/server.log" | sed 's/^.*websocketsink[^ ]* //' | head -5
