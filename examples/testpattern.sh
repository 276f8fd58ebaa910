#!/usr/bin/env bash
# The in-pipeline example: a test pattern with a tone, encoded and served to browsers.
#   examples/testpattern.sh [PORT]        then open http://localhost:PORT/
# Needs GST_PLUGIN_PATH to point at the plugin (run-demo.sh sets it).
set -euo pipefail
PORT=${1:-8080}
echo "open http://localhost:${PORT}/"
exec gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=smpte horizontal-speed=4 \
    ! video/x-raw,width=640,height=360,framerate=30/1,format=I420 \
    ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 bitrate=1000 \
    ! video/x-h264,profile=high ! queue \
    ! mp4mux name=mux fragment-duration=700 streamable=true \
    ! fmp4initcache ! websocketsink port="${PORT}" \
  audiotestsrc is-live=true wave=sine freq=440 volume=0.2 \
    ! audio/x-raw,rate=48000,channels=2 ! avenc_aac bitrate=96000 ! queue ! mux.
