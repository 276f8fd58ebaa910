#!/usr/bin/env bash
# Installs what gst-fmp4ws needs on Debian 12 (as root), or prints the apt-get line.
#   scripts/deps.sh build   - to build the plugin and run the demo
#   scripts/deps.sh test    - also what the test suite needs (gtest, ffmpeg, Chromium, Firefox ESR,
#                             nginx, prometheus (promtool), iproute2, Node.js: Debian's own 18.x is enough)
set -euo pipefail
what=${1:-build}
pkgs=(build-essential meson ninja-build pkg-config
      libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libsoup-3.0-dev
      gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav glib-networking)
if [ "$what" = test ]; then
  # firefox-esr decodes H.264/AAC through FFmpeg's libavcodec, which it only recommends.
  # (tests/realworld would use gpac's MP4Box too, but Debian 12 has no gpac package: its
  # GPAC-made inputs are the shared real-world files; ffprobe comes with ffmpeg.)
  pkgs+=(libgtest-dev ffmpeg chromium firefox-esr libavcodec59 openssl curl nginx-light procps)
  # promtool and prometheus: GET /metrics is checked (tests/check) and scraped (tests/server)
  pkgs+=(prometheus)
  # iproute2 (ip netns, veth): tests/netns builds its network of namespaces with it
  pkgs+=(iproute2)
  # Node.js may come from elsewhere (nodesource): only install Debian's if there is none.
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo ">> installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing packages. Run:"
  echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}"
  exit 1
fi
