#!/usr/bin/env bash
# The notes' workflow: ffmpeg pushes fragmented MP4 over TCP, browsers watch.
#   examples/notes-tcp.sh [HTTP_PORT] [INGEST_PORT]
# then, in another terminal, the notes' ffmpeg command, e.g. with a test source:
#   ffmpeg -re -f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=frequency=440 \
#     -c:a aac -ab 64k -c:v libx264 -vb 448k -vsync 2 -pix_fmt yuv420p -profile:v high \
#     -f mp4 -movflags frag_keyframe+default_base_moof -reset_timestamps 1 -frag_duration 70000 \
#     tcp://localhost:8081/
# and open http://localhost:8080/. host=0.0.0.0: on Debian 12 host=localhost binds only ::1
# while ffmpeg's tcp://localhost may connect to 127.0.0.1. tcpserversrc ends the pipeline when
# ffmpeg disconnects: use tools/fmp4ws-server to keep viewers across ffmpeg restarts.
set -euo pipefail
PORT=${1:-8080}
INGEST=${2:-8081}
echo "waiting for ffmpeg on tcp://localhost:${INGEST}/ ; viewers: open http://localhost:${PORT}/"
exec gst-launch-1.0 -e tcpserversrc host=0.0.0.0 port="${INGEST}" \
  ! fmp4initcache ! websocketsink port="${PORT}"
