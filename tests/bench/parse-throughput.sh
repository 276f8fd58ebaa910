#!/bin/sh
# fmp4initcache parse throughput on a ~1 GB fragmented MP4 (made by looping a
# pre-encoded shape with the feeder: one init, renumbered fragments, continuous tfdt),
# against the same pipeline without the parser. The file is read once first (page
# cache), each pipeline runs RUNS times; the time is gst-launch's "Execution ended
# after" (PLAYING to EOS, no startup); the last column is the same into websocketsink
# (no viewer). The big file is deleted at the end.
#
#   tests/bench/parse-throughput.sh BUILD_DIR [MEDIA_DIR] [SHAPES] [BYTES] [RUNS]
set -eu
BUILD=$(cd "${1:?usage: parse-throughput.sh BUILD_DIR [MEDIA_DIR] [SHAPES] [BYTES] [RUNS]}" && pwd)
MEDIA=${2:-/tmp/fmp4ws-bench/media}
SHAPES=${3:-frag100 frag700 perframe}
BYTES=${4:-1073741824}
RUNS=${5:-3}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$BUILD/gst}
BIG=$(mktemp /tmp/fmp4ws-big-XXXXXX.mp4)
trap 'rm -f "$BIG"' EXIT INT TERM

secs() {  # prints the pipeline's PLAYING->EOS time in seconds
  gst-launch-1.0 "$@" 2>&1 | sed -n 's/^Execution ended after \([0-9]*\):\([0-9]*\):\([0-9.]*\)$/\1 \2 \3/p' |
    awk '{ printf "%.4f\n", $1 * 3600 + $2 * 60 + $3 }'
}
best() { sort -n | head -1; }

for shape in $SHAPES; do
  "$BUILD/tests/bench/feeder" --file "$MEDIA/$shape.mp4" --dump "$BIG" --bytes "$BYTES" 2>&1 | tail -1
  size=$(stat -c %s "$BIG")
  cat "$BIG" > /dev/null
  for bs in 1048576; do
    t0=$(for i in $(seq "$RUNS"); do secs filesrc location="$BIG" blocksize=$bs ! fakesink; done | best)
    t1=$(for i in $(seq "$RUNS"); do secs filesrc location="$BIG" blocksize=$bs ! fmp4initcache ! fakesink; done | best)
    # the sink without viewers: what render() costs per fragment (mapping, moof parse, posting)
    t2=$(for i in $(seq "$RUNS"); do secs filesrc location="$BIG" blocksize=$bs ! fmp4initcache ! websocketsink port=0 sync=false; done | best)
    awk -v s="$size" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v sh="$shape" -v bs="$bs" 'BEGIN {
      printf "%-9s %6.0f MB blocksize=%d  filesrc!fakesink %.3f s = %.2f GB/s   filesrc!fmp4initcache!fakesink %.3f s = %.2f GB/s   parse cost %.3f s = %.2f GB/s   !websocketsink %.3f s (sink cost %.3f s)\n",
        sh, s / 1e6, bs, t0, s / t0 / 1e9, t1, s / t1 / 1e9, t1 - t0, (t1 > t0 ? s / (t1 - t0) / 1e9 : 0), t2, t2 - t1 }'
  done
done
