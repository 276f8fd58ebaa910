#!/usr/bin/env bash
# The demo: builds the plugin and serves a live test pattern with sound to browsers:
#   ./run-demo.sh      then open http://localhost:8080/   (PORT=... to change the port)
# Installs what is missing (as root).
set -euo pipefail
cd "$(dirname "$0")"
scripts/deps.sh build
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
export GST_PLUGIN_PATH="$PWD/$BUILD/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
PORT=${PORT:-8080}
exec examples/testpattern.sh "$PORT"
