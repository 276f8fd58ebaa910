#!/usr/bin/env bash
# The demo: builds the plugin and runs the main pipeline. Installs what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh build
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
export GST_PLUGIN_PATH="$PWD/$BUILD/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
echo ">> videotestsrc ! x264enc ! mp4mux fragment-duration=700 ! fmp4initcache ! fakesink"
exec gst-launch-1.0 -v videotestsrc is-live=true num-buffers=150 \
  ! video/x-raw,width=640,height=360,framerate=30/1,format=I420 \
  ! x264enc tune=zerolatency key-int-max=30 ! mp4mux fragment-duration=700 \
  ! fmp4initcache ! fakesink silent=false
