#!/usr/bin/env bash
# Regenerates the seed corpora in corpus/ from tiny real streams (ffmpeg and mp4mux).
# The committed seeds are what the fuzzers start from; run this only to change them.
#   corpus/stream/: 4-byte control header (see fuzz_stream.cpp) + a whole stream
#   corpus/init/:   12-byte control header (see fuzz_init.cpp) + the moov and moofs of a
#                   stream (mdats left out), with the moov's mdat described in the header
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

FF="ffmpeg -hide_banner -loglevel error -y"
V="-f lavfi -i testsrc2=size=64x48:rate=10"
A="-f lavfi -i sine=frequency=440:sample_rate=8000"
X264="-c:v libx264 -preset ultrafast -g 5"
AAC="-c:a aac -ab 16k"
cd "$tmp"
# ffmpeg without empty_moov: the moov carries the first samples, a bare mdat follows.
$FF $V $A -t 1 $X264 $AAC -f mp4 -movflags frag_keyframe+default_base_moof h264-aac-moovsamples.mp4
$FF $V $A -t 1 $X264 -bf 2 $AAC -f mp4 -movflags frag_keyframe+default_base_moof -frag_duration 200000 h264-aac-fragdur.mp4
$FF $V $A -t 1 $X264 $AAC -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof h264-aac-emptymoov.mp4
$FF $V $A -t 0.5 $X264 $AAC -f mp4 -movflags frag_every_frame+empty_moov+default_base_moof h264-aac-everyframe.mp4
$FF $V $A -t 1 $X264 $AAC -f mp4 -movflags dash+frag_keyframe+global_sidx -write_prft wallclock h264-aac-dash-prft.mp4
$FF $V -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1 -c:v libvpx-vp9 -deadline realtime -g 5 -c:a libopus -b:a 16k -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof vp9-opus.mp4
$FF $V -t 0.6 -c:v libx265 -x265-params log-level=error -g 3 -tag:v hvc1 -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof hevc.mp4
$FF $V -t 0.6 -c:v libaom-av1 -cpu-used 8 -g 3 -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof av1.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=44100 -t 0.5 -c:a flac -strict -2 -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 200000 flac.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=48000 -t 0.5 -c:a ac3 -b:a 64k -f mp4 -movflags frag_keyframe+default_base_moof -frag_duration 200000 ac3.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=22050 -t 0.5 -c:a libmp3lame -b:a 32k -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -frag_duration 200000 mp3.mp4
# GStreamer's mp4mux (sync samples marked with the non-sync bit only, ends with an mfra).
gst-launch-1.0 -q videotestsrc num-buffers=20 ! video/x-raw,width=64,height=48 ! x264enc \
  ! mp4mux fragment-duration=500 ! filesink location=mp4mux-h264.mp4
gst-launch-1.0 -q videotestsrc num-buffers=20 ! video/x-raw,width=64,height=48,framerate=10/1 \
  ! x264enc key-int-max=5 ! queue ! mp4mux name=m fragment-duration=500 ! filesink location=mp4mux-h264-aac.mp4 \
  audiotestsrc num-buffers=10 ! audio/x-raw,rate=8000 ! avenc_aac ! queue ! m.
cd - > /dev/null

rm -rf corpus/stream corpus/init
mkdir -p corpus/stream corpus/init
python3 - "$tmp" corpus <<'EOF'
import os, struct, sys
src, out = sys.argv[1], sys.argv[2]

def boxes(d):
    i = 0
    while i + 8 <= len(d):
        size, typ = struct.unpack('>I4s', d[i:i + 8])
        if size == 1:
            size = struct.unpack('>Q', d[i + 8:i + 16])[0]
        yield typ, i, size
        i += size

# Control byte 0 of fuzz_stream: bits 0-1 max-box-size, 2-4 chunking, 5-7 extra rebase base.
# Each seed gets its own chunking so that all of them are in the corpus from the start.
for n, name in enumerate(sorted(f for f in os.listdir(src) if f.endswith('.mp4'))):
    d = open(os.path.join(src, name), 'rb').read()
    base = name[:-4]
    chunking = n % 8
    ctrl = bytes([(chunking << 2) | ((n % 8) << 5), 0x12, 0x34, 0x56 + n])
    open(os.path.join(out, 'stream', base + '.bin'), 'wb').write(ctrl + d)

    # fuzz_init: moov + moofs, no mdat; the header names the moov's own mdat if it has one.
    parts, mdat_off, mdat_size, after_moov = [], 0, 0, False
    for typ, off, size in boxes(d):
        if typ == b'moov':
            parts.append(d[off:off + size]); after_moov = True; continue
        if typ == b'mdat' and after_moov and not mdat_size:
            mdat_off, mdat_size = off, size
        if typ == b'moof' and len(parts) < 4:
            parts.append(d[off:off + size])
        after_moov = False
    ctrl = struct.pack('>IIB', mdat_off, mdat_size, 0) + struct.pack('>I', 1000)[1:]
    open(os.path.join(out, 'init', base + '.bin'), 'wb').write(ctrl + b''.join(parts))
EOF
du -sb corpus/stream corpus/init
