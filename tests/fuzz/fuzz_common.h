// Shared helpers for the libFuzzer targets: a vector-backed ByteSource and the invariant
// checks on what the core produces (init segments, moofs, rebased moofs, first fragments).
// Every check aborts with a message, so libFuzzer reports it as a crash with a stack trace.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "box.h"
#include "bytes.h"
#include "fragment.h"
#include "init_segment.h"
#include "stream_assembler.h"

namespace fuzz {

using namespace fmp4ws::core;

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf (stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);        \
      abort ();                                                                            \
    }                                                                                      \
  } while (0)

// What GstAdapter is to the element: bytes appended at the back, peeked and skipped at
// the front. Peek/Skip beyond what is available is a bug in the splitter (gst_adapter_copy
// and gst_adapter_flush would g_return_if_fail), so it aborts.
class VectorSource : public ByteSource
{
public:
  size_t Available () const override { return buf_.size () - pos_; }
  void Peek (size_t offset, size_t n, uint8_t *out) const override
  {
    FUZZ_CHECK (offset <= Available () && n <= Available () - offset);
    if (n)
      memcpy (out, buf_.data () + pos_ + offset, n);
  }
  void Skip (size_t n) override
  {
    FUZZ_CHECK (n <= Available ());
    pos_ += n;
    if (pos_ > 65536 && pos_ * 2 > buf_.size ()) {
      buf_.erase (buf_.begin (), buf_.begin () + long (pos_));
      pos_ = 0;
    }
  }
  void Append (const uint8_t *p, size_t n) { buf_.insert (buf_.end (), p, p + n); }
  const uint8_t *front () const { return buf_.data () + pos_; }
  std::vector<uint8_t> Take (size_t n)
  {
    FUZZ_CHECK (n <= Available ());
    std::vector<uint8_t> v (front (), front () + n);
    Skip (n);
    return v;
  }

private:
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
};

struct TopBox
{
  uint32_t type;
  size_t offset, size, header;
};

// Splits bytes that must be a sequence of whole boxes (an output segment). Aborts otherwise.
inline std::vector<TopBox>
SplitWhole (const uint8_t *p, size_t n)
{
  std::vector<TopBox> boxes;
  size_t pos = 0;
  while (pos < n) {
    BoxHeader h;
    FUZZ_CHECK (ParseBoxHeader (p + pos, n - pos, n - pos, &h) == HeaderStatus::kOk);
    boxes.push_back ({h.type, pos, size_t (h.size), h.header_size});
    pos += size_t (h.size);
  }
  FUZZ_CHECK (pos == n);
  return boxes;
}

// RFC 6381 codec strings go into caps, a MIME type and JavaScript: only [A-Za-z0-9.-].
inline void
CheckCodecString (const std::string &s)
{
  for (char c : s)
    FUZZ_CHECK ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-');
}

inline void
CheckInitInfo (const InitInfo &info)
{
  FUZZ_CHECK (!info.tracks.empty ());
  bool video = false, audio = false, samples = false, all_known = true;
  for (const Track &t : info.tracks) {
    video |= t.is_video ();
    audio |= t.is_audio ();
    CheckCodecString (t.codec);
    if ((t.is_video () || t.is_audio ()) && t.codec.empty ())
      all_known = false;
    const SampleTable &st = t.samples;
    samples |= !st.sizes.empty ();
    FUZZ_CHECK (st.durations.size () == st.sizes.size ());
    FUZZ_CHECK (st.offsets.size () == st.sizes.size ());
    FUZZ_CHECK (st.cts_offsets.empty () || st.cts_offsets.size () == st.sizes.size ());
    FUZZ_CHECK (st.sync.size () <= st.sizes.size ());
  }
  FUZZ_CHECK (info.has_video == video);
  FUZZ_CHECK (info.has_audio == audio);
  FUZZ_CHECK (info.moov_has_samples == samples);
  FUZZ_CHECK (!info.mime.empty () == (all_known && !info.codecs.empty ()));
  for (char c : info.codecs)
    FUZZ_CHECK (c != '"' && c != '\\' && c != ';');
  if (info.has_video) {
    FUZZ_CHECK (info.FirstVideo () != nullptr);
  }
}

// Two views of the same moov, one of them cleaned: everything but the samples must agree.
inline void
CheckSameTracks (const InitInfo &a, const InitInfo &b)
{
  FUZZ_CHECK (a.tracks.size () == b.tracks.size ());
  for (size_t i = 0; i < a.tracks.size (); i++) {
    const Track &x = a.tracks[i], &y = b.tracks[i];
    FUZZ_CHECK (x.id == y.id);
    FUZZ_CHECK (x.handler == y.handler);
    FUZZ_CHECK (x.timescale == y.timescale);
    FUZZ_CHECK (x.sample_entry == y.sample_entry);
    FUZZ_CHECK (x.codec == y.codec);
    FUZZ_CHECK (x.width == y.width && x.height == y.height);
    FUZZ_CHECK (x.channels == y.channels && x.sample_rate == y.sample_rate);
    FUZZ_CHECK (x.has_trex == y.has_trex);
    FUZZ_CHECK (x.trex_duration == y.trex_duration && x.trex_size == y.trex_size &&
                x.trex_flags == y.trex_flags);
  }
  FUZZ_CHECK (a.codecs == b.codecs);
  FUZZ_CHECK (a.mime == b.mime);
  FUZZ_CHECK (a.fragmented == b.fragmented);
  FUZZ_CHECK (a.has_video == b.has_video && a.has_audio == b.has_audio);
  FUZZ_CHECK (a.width == b.width && a.height == b.height);
}

inline void
CheckFragmentInfo (const FragmentInfo &f)
{
  FUZZ_CHECK (!f.trafs.empty ());
  FUZZ_CHECK (f.timing >= 0 && size_t (f.timing) < f.trafs.size ());
  int64_t dts = f.decode_time_ns (), dur = f.duration_ns ();
  FUZZ_CHECK (dts >= -1 && dur >= -1);
  FUZZ_CHECK ((dts == -1) == (f.trafs[size_t (f.timing)].timescale == 0));
  // The span over all tracks (what the broadcaster keeps viewers' timelines with).
  int64_t start = f.start_ns (), end = f.end_ns ();
  FUZZ_CHECK (start >= -1 && end >= -1);
  FUZZ_CHECK ((start < 0) == (end < 0));
  if (start >= 0 && end < start) {
    fprintf (stderr, "fragment ends (%lld ns) before it starts (%lld ns)\n", (long long) end,
             (long long) start);
    FUZZ_CHECK (end >= start);
  }
}

inline bool
SameTraf (const TrafTiming &a, const TrafTiming &b)
{
  return a.track_id == b.track_id && a.timescale == b.timescale && a.duration == b.duration &&
         a.tfdt_offset == b.tfdt_offset && a.samples == b.samples;
}

inline void
CheckSameFragment (const FragmentInfo &a, const FragmentInfo &b)
{
  FUZZ_CHECK (a.sequence == b.sequence);
  FUZZ_CHECK (a.keyframe == b.keyframe);
  FUZZ_CHECK (a.has_video == b.has_video);
  FUZZ_CHECK (a.timing == b.timing);
  FUZZ_CHECK (a.trafs.size () == b.trafs.size ());
  for (size_t i = 0; i < a.trafs.size (); i++) {
    FUZZ_CHECK (SameTraf (a.trafs[i], b.trafs[i]));
    FUZZ_CHECK (a.trafs[i].decode_time == b.trafs[i].decode_time);
  }
}

// The tfdt value RebaseMoof must write for an offset: tfdt - offset, the offset in the
// track's timescale rounded to the nearest tick (half away from zero, so that an offset
// taken from the track's own tfdt maps back exactly), clamped to [0, largest value the
// field holds] (never wrapped).
inline uint64_t
ExpectedRebased (uint64_t decode_time, uint32_t timescale, int64_t offset_ns, bool v1)
{
  __int128 x = (__int128) offset_ns * timescale;
  __int128 shift = (x + (x >= 0 ? 500000000 : -500000000)) / 1000000000;
  __int128 t = (__int128) decode_time - shift;
  __int128 top = v1 ? (__int128) std::numeric_limits<uint64_t>::max () : (__int128) 0xffffffffu;
  return uint64_t (t < 0 ? 0 : t > top ? top : t);
}

// Version of the tfdt box at `offset` in a moof (its payload found through its header).
inline bool
TfdtIsV1 (const uint8_t *moof, size_t size, size_t offset)
{
  BoxHeader h;
  FUZZ_CHECK (offset < size);
  FUZZ_CHECK (ParseBoxHeader (moof + offset, size - offset, size - offset, &h) ==
              HeaderStatus::kOk);
  FUZZ_CHECK (h.type == FourCC ("tfdt") && h.size > h.header_size);
  return moof[offset + h.header_size] == 1;
}

// RebaseMoof on a copy of a moof that ParseMoof accepted: it must succeed, the copy must
// still parse the same way, and only the tfdt times may change, to the expected values.
inline void
CheckRebase (const uint8_t *moof, size_t size, const InitInfo &init, const FragmentInfo &info,
             int64_t offset_ns)
{
  std::vector<uint8_t> copy (moof, moof + size);
  FUZZ_CHECK (RebaseMoof (copy.data (), copy.size (), info, offset_ns));
  std::string error;
  std::optional<FragmentInfo> again = ParseMoof (copy.data (), copy.size (), init, &error);
  if (!again) {
    fprintf (stderr, "rebased moof (offset %lld ns) no longer parses: %s\n",
             (long long) offset_ns, error.c_str ());
    FUZZ_CHECK (again);
  }
  FUZZ_CHECK (again->sequence == info.sequence);
  FUZZ_CHECK (again->keyframe == info.keyframe);
  FUZZ_CHECK (again->trafs.size () == info.trafs.size ());
  for (size_t i = 0; i < info.trafs.size (); i++) {
    const TrafTiming &o = info.trafs[i], &n = again->trafs[i];
    FUZZ_CHECK (SameTraf (o, n));
    uint64_t want = (o.tfdt_offset && o.timescale)
                        ? ExpectedRebased (o.decode_time, o.timescale, offset_ns,
                                           TfdtIsV1 (moof, size, o.tfdt_offset))
                        : o.decode_time;
    if (n.decode_time != want) {
      fprintf (stderr,
               "traf %zu: tfdt %llu, timescale %u, offset %lld ns: rebased to %llu, want %llu\n",
               i, (unsigned long long) o.decode_time, o.timescale, (long long) offset_ns,
               (unsigned long long) n.decode_time, (unsigned long long) want);
      FUZZ_CHECK (n.decode_time == want);
    }
  }
}

inline void
CheckRebases (const uint8_t *moof, size_t size, const InitInfo &init, const FragmentInfo &info,
              int64_t extra_offset_ns)
{
  CheckRebase (moof, size, init, info, 0);
  int64_t own = info.decode_time_ns ();
  if (own >= 0) {
    CheckRebase (moof, size, init, info, own);   // this fragment at time 0
    CheckRebase (moof, size, init, info, -own);  // times moved later
  }
  CheckRebase (moof, size, init, info, extra_offset_ns);
  CheckRebase (moof, size, init, info, std::numeric_limits<int64_t>::max ());
  CheckRebase (moof, size, init, info, std::numeric_limits<int64_t>::min ());
}

// Walks the truns of a moof that BuildFirstFragment made and checks that every sample
// points at exactly the bytes the moov's sample tables name, inside the mdat that follows.
inline void
CheckBuiltFirstFragment (const std::vector<uint8_t> &moof, const InitInfo &init,
                         uint64_t mdat_offset, uint32_t mdat_header, uint64_t mdat_size)
{
  std::vector<TopBox> top = SplitWhole (moof.data (), moof.size ());
  FUZZ_CHECK (top.size () == 1 && top[0].type == FourCC ("moof"));
  std::string error;
  std::optional<FragmentInfo> f = ParseMoof (moof.data (), moof.size (), init, &error);
  if (!f) {
    fprintf (stderr, "built first fragment does not parse: %s\n", error.c_str ());
    FUZZ_CHECK (f);
  }
  CheckFragmentInfo (*f);
  FUZZ_CHECK (f->sequence == 0);
  // One traf per track with samples, in track order (track IDs may repeat in bad input,
  // so do not look tracks up by ID).
  std::vector<const Track *> with_samples;
  for (const Track &t : init.tracks)
    if (!t.samples.sizes.empty ())
      with_samples.push_back (&t);
  FUZZ_CHECK (f->trafs.size () == with_samples.size ());

  BoxIterator it (moof.data () + top[0].header, moof.size () - top[0].header);
  size_t traf_index = 0;
  while (it.Next ()) {
    if (it.type () != FourCC ("traf"))
      continue;
    const TrafTiming &tt = f->trafs[traf_index];
    const Track *t = with_samples[traf_index++];
    FUZZ_CHECK (tt.track_id == t->id);
    const SampleTable &st = t->samples;
    FUZZ_CHECK (tt.samples == st.sizes.size ());
    uint64_t duration = 0;
    for (uint32_t d : st.durations)
      duration += d;
    FUZZ_CHECK (tt.duration == duration);
    FUZZ_CHECK (tt.decode_time == 0);
    size_t k = 0;
    BoxIterator tr (it.payload (), it.payload_size ());
    while (tr.Next ()) {
      if (tr.type () != FourCC ("trun"))
        continue;
      Reader r (tr.payload (), tr.payload_size ());
      r.U8 ();
      uint32_t flags = r.U24 ();
      uint32_t count = r.U32 ();
      FUZZ_CHECK (flags & 0x001);
      FUZZ_CHECK (flags & 0x200);
      int32_t data_offset = int32_t (r.U32 ());
      if (flags & 0x004)
        r.U32 ();
      // data_offset is from the moof start (default-base-is-moof); the mdat follows the moof.
      FUZZ_CHECK (data_offset >= 0 && uint64_t (data_offset) >= moof.size () + mdat_header);
      uint64_t pos = mdat_offset + (uint64_t (data_offset) - moof.size ());
      for (uint32_t i = 0; i < count; i++, k++) {
        uint32_t dur = (flags & 0x100) ? r.U32 () : 0;
        uint32_t sz = r.U32 ();
        if (flags & 0x400)
          r.U32 ();
        if (flags & 0x800)
          r.U32 ();
        FUZZ_CHECK (r.ok ());
        FUZZ_CHECK (k < st.sizes.size ());
        FUZZ_CHECK (sz == st.sizes[k]);
        if (flags & 0x100)
          FUZZ_CHECK (dur == st.durations[k]);
        FUZZ_CHECK (pos == st.offsets[k]);
        FUZZ_CHECK (pos >= mdat_offset + mdat_header && pos + sz <= mdat_offset + mdat_size);
        pos += sz;
      }
    }
    FUZZ_CHECK (!tr.error ());
    FUZZ_CHECK (k == st.sizes.size ());
  }
  FUZZ_CHECK (traf_index == f->trafs.size ());
  CheckRebases (moof.data (), moof.size (), init, *f, 1000000000);
}

// Everything that must hold of a moov box, whether or not the stream around it is valid.
inline void
CheckMoovBox (const uint8_t *moov, size_t size)
{
  std::string error;
  std::optional<InitInfo> info = ParseMoov (moov, size, &error);
  std::vector<uint8_t> clean = CleanMoov (moov, size);  // must not crash on anything
  if (!info) {
    FUZZ_CHECK (!error.empty ());
    return;
  }
  CheckInitInfo (*info);

  // The clean moov is one moov box that parses to the same tracks, without samples.
  std::vector<TopBox> top = SplitWhole (clean.data (), clean.size ());
  FUZZ_CHECK (top.size () == 1 && top[0].type == FourCC ("moov"));
  std::optional<InitInfo> cleaned = ParseMoov (clean.data (), clean.size (), &error);
  if (!cleaned) {
    fprintf (stderr, "CleanMoov output does not parse: %s\n", error.c_str ());
    FUZZ_CHECK (cleaned);
  }
  CheckInitInfo (*cleaned);
  FUZZ_CHECK (!cleaned->moov_has_samples);
  CheckSameTracks (*info, *cleaned);
  FUZZ_CHECK (CleanMoov (clean.data (), clean.size ()) == clean);  // idempotent

  // A moov with samples: an mdat that holds exactly its samples gives a valid first fragment.
  if (info->moov_has_samples) {
    uint64_t lo = std::numeric_limits<uint64_t>::max (), hi = 0;
    bool overflow = false;
    for (const Track &t : info->tracks)
      for (size_t i = 0; i < t.samples.sizes.size (); i++) {
        uint64_t o = t.samples.offsets[i], end = o + t.samples.sizes[i];
        overflow |= end < o;
        lo = std::min (lo, o);
        hi = std::max (hi, end);
      }
    if (!overflow && lo >= 8 && hi - lo < (1u << 30)) {
      uint64_t mdat_offset = lo - 8;
      std::vector<uint8_t> moof =
          BuildFirstFragment (*info, 0, mdat_offset, 8, hi - mdat_offset, &error);
      if (moof.empty ()) {
        fprintf (stderr, "BuildFirstFragment failed on a fitting mdat: %s\n", error.c_str ());
        FUZZ_CHECK (!moof.empty ());
      }
      CheckBuiltFirstFragment (moof, *info, mdat_offset, 8, hi - mdat_offset);
    }
  }
}

// Everything that must hold of a moof box parsed against some init segment.
inline void
CheckMoofBox (const uint8_t *moof, size_t size, const InitInfo &init, int64_t extra_offset_ns)
{
  std::string error;
  std::optional<FragmentInfo> f = ParseMoof (moof, size, init, &error);
  if (!f) {
    FUZZ_CHECK (!error.empty ());
    return;
  }
  CheckFragmentInfo (*f);
  std::optional<FragmentInfo> again = ParseMoof (moof, size, init, &error);
  FUZZ_CHECK (again);
  CheckSameFragment (*f, *again);
  CheckRebases (moof, size, init, *f, extra_offset_ns);
}

// Tiny deterministic generator for chunk sizes and such.
struct Rng
{
  uint32_t s;
  explicit Rng (uint32_t seed) : s (seed ? seed : 0x9e3779b9u) {}
  uint32_t Next ()
  {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
};

}  // namespace fuzz
