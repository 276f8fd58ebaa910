#!/bin/sh
# Pre-encodes the benchmark streams into DIR (default /tmp/fmp4ws-bench/media):
# 60 s of 1280x720 30 fps H.264 at 2 Mb/s (a noisy test pattern, so the encoder
# really spends its bitrate; GOP 2 s) + AAC 128 kb/s, then remuxed (no re-encode) into
#   frag100.mp4   fragments of 100 ms   (-frag_duration 100000, frag_keyframe)
#   frag700.mp4   fragments of 700 ms   (-frag_duration 700000, frag_keyframe)
#   perframe.mp4  one fragment per frame (frag_every_frame, video + audio)
# all with empty_moov+default_base_moof.
set -eu
DIR=${1:-/tmp/fmp4ws-bench/media}
mkdir -p "$DIR"
cd "$DIR"
if [ ! -s src.mp4 ]; then
  nice ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t+u" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000" -t 60 \
    -c:v libx264 -preset veryfast -profile:v high -pix_fmt yuv420p \
    -b:v 2M -maxrate 2M -bufsize 2M -g 60 -keyint_min 60 -sc_threshold 0 \
    -c:a aac -b:a 128k -movflags +faststart src.mp4
fi
remux() {
  out=$1; shift
  [ -s "$out" ] || ffmpeg -hide_banner -loglevel error -y -i src.mp4 -c copy -f mp4 "$@" "$out"
}
remux frag100.mp4 -movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 100000
remux frag700.mp4 -movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 700000
remux perframe.mp4 -movflags frag_every_frame+empty_moov+default_base_moof
ls -l "$DIR"
