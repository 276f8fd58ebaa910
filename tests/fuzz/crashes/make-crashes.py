#!/usr/bin/env python3
"""Writes the reproducers in this folder (fuzz_stream input format: 4-byte control header,
then the stream), built from the committed seeds in ../corpus/stream. See README.md."""
import copy
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, '..', 'corpus', 'stream')
CONTAINERS = {b'moof', b'traf', b'moov', b'trak', b'mdia', b'minf', b'stbl', b'mvex'}


def parse(d):
    out, i = [], 0
    while i + 8 <= len(d):
        s, t = struct.unpack('>I4s', d[i:i + 8])
        h = 8
        if s == 1:
            s, h = struct.unpack('>Q', d[i + 8:i + 16])[0], 16
        body = d[i + h:i + s]
        out.append([t, parse(body) if t in CONTAINERS else body])
        i += s
    return out


def box(t, body, large=False):
    if isinstance(body, list):
        body = build(body)
    if large:  # 64-bit largesize header
        return struct.pack('>I4sQ', 1, t, 16 + len(body)) + body
    return struct.pack('>I4s', 8 + len(body), t) + body


def build(tree):
    return b''.join(box(*c) for c in tree)


def full(version, flags):
    return struct.pack('>I', (version << 24) | flags)


def seed(name):
    return parse(open(os.path.join(SEEDS, name), 'rb').read()[4:])


def write(name, control, stream):
    with open(os.path.join(HERE, name), 'wb') as f:
        f.write(bytes(control) + stream)


def first(tree, t):
    return next(c for c in tree if c[0] == t)


av1 = seed('av1.bin')  # ftyp moov moof mdat moof mdat mfra
h264 = seed('h264-aac-emptymoov.bin')

# 1. A new ftyp, then a moof+mdat without a moov: the fragment goes out as ftyp+moof+mdat.
write('ftyp-in-fragment.bin', [0, 0, 0, 1],
      build(av1[0:4]) + build([av1[0]]) + build(av1[4:6]))

# 2. A trun with no per-sample fields and 2^32-1 samples (x4): ParseMoof spins for seconds.
traf = [b'traf', [[b'tfhd', full(0, 0x020000) + struct.pack('>I', 1)],
                  [b'tfdt', full(1, 0) + struct.pack('>Q', 0)]] +
        [[b'trun', full(0, 0) + struct.pack('>I', 0xffffffff)] for _ in range(4)]]
moof = [b'moof', [[b'mfhd', full(0, 0) + struct.pack('>I', 7)], traf]]
write('hang-trun-no-sample-fields.bin', [0, 0, 0, 1],
      build([first(h264, b'ftyp'), first(h264, b'moov'), moof, [b'mdat', b'\0' * 8]]))

# 3. A tfdt with a 64-bit largesize header: RebaseMoof writes the time into the size field.
moof = copy.deepcopy(first(h264, b'moof'))
for traf in moof[1]:
    if traf[0] == b'traf':
        for c in traf[1]:
            if c[0] == b'tfdt':
                c.append(True)
write('rebase-tfdt-largesize.bin', [0, 0, 0, 1],
      build([first(h264, b'ftyp'), first(h264, b'moov'), moof, [b'mdat', b'\0' * 16]]))

# 4. Garbage holding "size=1 'moof' largesize=2^40": skipped when the stream comes in one
#    buffer, a fatal "more than max-box-size" error when it comes one byte at a time.
garbage = b'\xff\xfe\xfd' + struct.pack('>I4sQ', 1, b'moof', 1 << 40) + b'\xff' * 5
write('resync-largesize-chunking.bin', [1 << 2, 0, 0, 1],  # chunking 1: one byte at a time
      build(av1[0:2]) + garbage + build(av1[2:6]))

# 5. 160 tracks of 2^20 samples each, with a fixed sample size (no per-sample table):
#    a 30 KB moov makes ParseMoov allocate ~2.6 GB.
N = 1 << 20


def trak(i):
    stbl = [[b'stsz', full(0, 0) + struct.pack('>II', 1, N)],
            [b'stsc', full(0, 0) + struct.pack('>IIII', 1, 1, N, 1)],
            [b'stco', full(0, 0) + struct.pack('>II', 1, 100)]]
    return [b'trak', [[b'tkhd', full(0, 0) + struct.pack('>III', 0, 0, i + 1) + b'\0' * 68],
                      [b'mdia', [[b'minf', [[b'stbl', stbl]]]]]]]


moov = [b'moov', [trak(i) for i in range(160)] +
        [[b'mvex', [[b'trex', full(0, 0) + struct.pack('>IIIII', 1, 1, 0, 0, 0)]]]]]
write('oom-moov-sample-tables.bin', [0, 0, 0, 1],
      build([[b'ftyp', b'isom\0\0\0\0isom'], moov]))

# 6. A video track with a timescale of 4e9 and a v1 tfdt: RebaseMoof with a large negative
#    offset (times moved later) computes a time above 2^64-1 and wraps it instead of
#    saturating (a v0 tfdt saturates at 2^32-1). fuzz_stream rebases every moof with
#    INT64_MIN among other offsets.
moov = copy.deepcopy(first(h264, b'moov'))
trak = first(moov[1], b'trak')
mdia = first(trak[1], b'mdia')
mdhd = first(mdia[1], b'mdhd')
at = 20 if mdhd[1][0] == 1 else 12
mdhd[1] = mdhd[1][:at] + struct.pack('>I', 4000000000) + mdhd[1][at + 4:]
write('rebase-v1-wrap.bin', [0, 0, 0, 1],
      build([first(h264, b'ftyp'), moov, first(h264, b'moof'), first(h264, b'mdat')]))

# 7. A v1 tfdt of 2^64-256: FragmentInfo::end_ns adds the duration to it in 64 bits and
#    wraps, so the fragment "ends" long before it starts.
moof = copy.deepcopy(first(h264, b'moof'))
for traf in moof[1]:
    if traf[0] == b'traf':
        tfdt = first(traf[1], b'tfdt')
        assert tfdt[1][0] == 1
        tfdt[1] = tfdt[1][:4] + struct.pack('>Q', (1 << 64) - 256)
write('end-before-start.bin', [0, 0, 0, 1],
      build([first(h264, b'ftyp'), first(h264, b'moov'), moof, first(h264, b'mdat')]))
