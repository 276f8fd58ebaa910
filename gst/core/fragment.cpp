#include "fragment.h"

#include <algorithm>

#include "box.h"
#include "bytes.h"

namespace fmp4ws::core {

// Bound on the samples of one traf: a trun without per-sample fields costs no bytes per
// sample, so its count alone says nothing about the size of the box.
constexpr uint32_t kMaxTrafSamples = 1u << 20;

static int64_t
ToNs (uint64_t t, uint32_t timescale)
{
  if (timescale == 0)
    return -1;
  // t * 1e9 / timescale without overflow for any realistic t.
  unsigned __int128 v = (unsigned __int128) t * 1000000000u / timescale;
  return v > (unsigned __int128) INT64_MAX ? INT64_MAX : int64_t (v);
}

int64_t
FragmentInfo::decode_time_ns () const
{
  return timing < 0 ? -1 : ToNs (trafs[timing].decode_time, trafs[timing].timescale);
}

int64_t
FragmentInfo::duration_ns () const
{
  return timing < 0 ? -1 : ToNs (trafs[timing].duration, trafs[timing].timescale);
}

int64_t
FragmentInfo::start_ns () const
{
  int64_t best = -1;
  for (const TrafTiming &t : trafs) {
    int64_t v = t.samples ? ToNs (t.decode_time, t.timescale) : -1;
    if (v >= 0 && (best < 0 || v < best))
      best = v;
  }
  return best;
}

int64_t
FragmentInfo::end_ns () const
{
  int64_t best = -1;
  for (const TrafTiming &t : trafs) {
    uint64_t end = t.decode_time + t.duration;
    if (end < t.decode_time)
      end = UINT64_MAX;  // saturate: a wrapped sum would end the fragment before it starts
    int64_t v = t.samples ? ToNs (end, t.timescale) : -1;
    best = std::max (best, v);
  }
  return best;
}

std::optional<FragmentInfo>
ParseMoof (const uint8_t *moof, size_t size, const InitInfo &init, std::string *error)
{
  FragmentInfo info;
  if (!ParseMoofInto (moof, size, init, &info, error))
    return std::nullopt;
  return info;
}

bool
ParseMoofInto (const uint8_t *moof, size_t size, const InitInfo &init, FragmentInfo *out,
               std::string *error)
{
  BoxHeader h;
  if (ParseBoxHeader (moof, size, size, &h) != HeaderStatus::kOk || h.type != FourCC ("moof") ||
      h.size != size) {
    *error = "not a moof box";
    return false;
  }
  FragmentInfo &info = *out;
  info.sequence = 0;
  info.keyframe = false;
  info.has_video = false;
  info.trafs.clear ();
  info.timing = -1;
  bool video_sync = false;
  BoxIterator it (moof + h.header_size, size - h.header_size);
  while (it.Next ()) {
    if (it.type () == FourCC ("mfhd")) {
      Reader r (it.payload (), it.payload_size ());
      r.Skip (4);
      info.sequence = r.U32 ();
      continue;
    }
    if (it.type () != FourCC ("traf"))
      continue;
    TrafTiming tt;
    bool have_default_flags = false, have_default_duration = false;
    uint32_t default_flags = 0, default_duration = 0;
    bool first_flags_known = false;
    uint32_t first_flags = 0;
    bool tfhd_seen = false;
    BoxIterator tr (it.payload (), it.payload_size ());
    while (tr.Next ()) {
      Reader r (tr.payload (), tr.payload_size ());
      if (tr.type () == FourCC ("tfhd")) {
        r.U8 ();
        uint32_t flags = r.U24 ();
        tt.track_id = r.U32 ();
        if (flags & 0x01) r.Skip (8);  // base_data_offset
        if (flags & 0x02) r.Skip (4);  // sample_description_index
        if (flags & 0x08) { default_duration = r.U32 (); have_default_duration = true; }
        if (flags & 0x10) r.Skip (4);  // default_sample_size
        if (flags & 0x20) { default_flags = r.U32 (); have_default_flags = true; }
        if (!r.ok ()) {
          *error = "moof: truncated tfhd";
          return false;
        }
        tfhd_seen = true;
        const Track *t = init.FindTrack (tt.track_id);
        if (t) {
          tt.timescale = t->timescale;
          if (!have_default_duration && t->has_trex) {
            default_duration = t->trex_duration;
            have_default_duration = true;
          }
          if (!have_default_flags && t->has_trex) {
            default_flags = t->trex_flags;
            have_default_flags = true;
          }
        }
      } else if (tr.type () == FourCC ("tfdt")) {
        uint8_t version = r.U8 ();
        r.Skip (3);
        tt.decode_time = version == 1 ? r.U64 () : r.U32 ();
        tt.tfdt_offset = size_t (tr.box () - moof);
        if (!r.ok ()) {
          *error = "moof: truncated tfdt";
          return false;
        }
      } else if (tr.type () == FourCC ("trun")) {
        r.U8 ();
        uint32_t flags = r.U24 ();
        uint32_t count = r.U32 ();
        if (flags & 0x001) r.Skip (4);  // data_offset
        bool has_first = flags & 0x004;
        uint32_t ff = has_first ? r.U32 () : 0;
        bool has_dur = flags & 0x100, has_size = flags & 0x200, has_flags = flags & 0x400,
             has_cto = flags & 0x800;
        size_t per_sample = 4u * (has_dur + has_size + has_flags + has_cto);
        if (!r.ok () || (per_sample && r.remaining () / per_sample < count)) {
          *error = "moof: trun sample table overruns its box";
          return false;
        }
        if (uint64_t (tt.samples) + count > kMaxTrafSamples) {
          *error = "moof: more than " + std::to_string (kMaxTrafSamples) + " samples in a traf";
          return false;
        }
        if (per_sample == 0) {
          // No per-sample fields: every sample takes the defaults, no need to visit them.
          tt.duration += uint64_t (count) * default_duration;
          if (count > 0 && tt.samples == 0 && !first_flags_known && has_first) {
            first_flags = ff;
            first_flags_known = true;
          }
          tt.samples += count;
          continue;
        }
        for (uint32_t i = 0; i < count; i++) {
          uint32_t d = has_dur ? r.U32 () : default_duration;
          if (has_size) r.Skip (4);
          uint32_t sf = has_flags ? r.U32 () : 0;
          if (has_cto) r.Skip (4);
          tt.duration += d;
          if (tt.samples == 0 && i == 0 && !first_flags_known) {
            if (has_first) {
              first_flags = ff;
              first_flags_known = true;
            } else if (has_flags) {
              first_flags = sf;
              first_flags_known = true;
            }
          }
        }
        tt.samples += count;
      }
    }
    if (tr.error ()) {
      *error = "moof: a box inside traf overruns its parent";
      return false;
    }
    if (!tfhd_seen) {
      *error = "moof: traf without tfhd";
      return false;
    }
    if (!first_flags_known && have_default_flags) {
      first_flags = default_flags;
      first_flags_known = true;
    }
    const Track *t = init.FindTrack (tt.track_id);
    if (t && t->is_video () && !info.has_video && tt.samples > 0) {
      info.has_video = true;
      // No flags anywhere: nothing says the sample is not a sync sample.
      video_sync = first_flags_known ? SampleFlagsAreSync (first_flags) : true;
      info.timing = int (info.trafs.size ());
    }
    info.trafs.push_back (tt);
  }
  if (it.error ()) {
    *error = "moof: a child box overruns its parent";
    return false;
  }
  if (info.trafs.empty ()) {
    *error = "moof without traf";
    return false;
  }
  if (info.timing < 0)
    info.timing = 0;
  // In a stream with video, only a fragment that starts on a video sync sample is a
  // start point; audio-only streams start anywhere.
  info.keyframe = init.has_video ? (info.has_video && video_sync) : true;
  return true;
}

bool
RebaseMoof (uint8_t *moof, size_t size, const FragmentInfo &info, int64_t offset_ns)
{
  for (const TrafTiming &tt : info.trafs) {
    if (tt.tfdt_offset == 0 || tt.timescale == 0)
      continue;
    if (tt.tfdt_offset >= size)
      return false;
    BoxHeader h;
    if (ParseBoxHeader (moof + tt.tfdt_offset, size - tt.tfdt_offset, size - tt.tfdt_offset,
                        &h) != HeaderStatus::kOk ||
        h.type != FourCC ("tfdt"))
      return false;
    // The header may be 16 bytes (64-bit largesize): reach the payload through it.
    uint8_t *p = moof + tt.tfdt_offset + h.header_size - 8;  // p[8]: version, p + 12: time
    uint8_t version = p[8];
    if (h.size - h.header_size < (version == 1 ? 12u : 8u))
      return false;
    // Rounded to the nearest tick: an offset taken from this track's own tfdt maps back exactly.
    __int128 shift = ((__int128) offset_ns * tt.timescale +
                      (offset_ns >= 0 ? 500000000 : -500000000)) / 1000000000;
    __int128 t = (__int128) tt.decode_time - shift;
    if (t < 0)
      t = 0;
    if (version == 1) {
      StoreU64 (p + 12, uint64_t (t > UINT64_MAX ? UINT64_MAX : t));
    } else {
      StoreU32 (p + 12, uint32_t (t > 0xffffffff ? 0xffffffff : t));
    }
  }
  return true;
}

uint64_t
NtpFromUnixMicros (int64_t unix_us)
{
  int64_t sec = unix_us / 1000000;
  int64_t us = unix_us % 1000000;
  if (us < 0) {
    us += 1000000;
    sec -= 1;
  }
  uint64_t frac = (uint64_t (us) << 32) / 1000000;
  return (uint64_t (sec + int64_t (kNtpUnixOffset)) << 32) | frac;
}

bool
HasPrft (const uint8_t *bytes, size_t size)
{
  BoxIterator it (bytes, size);
  while (it.Next ())
    if (it.type () == FourCC ("prft"))
      return true;
  return false;
}

bool
RebasePrft (uint8_t *bytes, size_t size, const FragmentInfo &info, int64_t offset_ns)
{
  BoxIterator it (bytes, size);
  while (it.Next ()) {
    if (it.type () != FourCC ("prft"))
      continue;
    uint8_t *p = bytes + (it.payload () - bytes);
    size_t n = it.payload_size ();
    if (n < 4)
      return false;
    uint8_t version = p[0];
    if (n < (version == 1 ? 24u : 20u))
      return false;
    uint32_t track_id = LoadU32 (p + 4);
    uint32_t timescale = 0;
    for (const TrafTiming &tt : info.trafs)
      if (tt.track_id == track_id)
        timescale = tt.timescale;
    if (timescale == 0)
      continue;
    __int128 shift = ((__int128) offset_ns * timescale +
                      (offset_ns >= 0 ? 500000000 : -500000000)) / 1000000000;
    uint64_t mt = version == 1 ? (uint64_t (LoadU32 (p + 16)) << 32) | LoadU32 (p + 20)
                               : LoadU32 (p + 16);
    __int128 t = (__int128) mt - shift;
    if (t < 0)
      t = 0;
    if (version == 1)
      StoreU64 (p + 16, uint64_t (t > UINT64_MAX ? UINT64_MAX : t));
    else
      StoreU32 (p + 16, uint32_t (t > 0xffffffff ? 0xffffffff : t));
  }
  return true;
}

bool
WritePrft (uint8_t *out, const uint8_t *moof, size_t moof_size, const FragmentInfo &info,
           int64_t unix_us, uint32_t flags)
{
  if (info.timing < 0 || size_t (info.timing) >= info.trafs.size ())
    return false;
  const TrafTiming &tt = info.trafs[size_t (info.timing)];
  if (tt.tfdt_offset == 0 || tt.timescale == 0 || tt.tfdt_offset >= moof_size)
    return false;
  BoxHeader h;
  if (ParseBoxHeader (moof + tt.tfdt_offset, moof_size - tt.tfdt_offset,
                      moof_size - tt.tfdt_offset, &h) != HeaderStatus::kOk ||
      h.type != FourCC ("tfdt"))
    return false;
  const uint8_t *p = moof + tt.tfdt_offset + h.header_size;  // version, flags, time
  uint8_t version = p[0];
  if (h.size - h.header_size < (version == 1 ? 12u : 8u))
    return false;
  uint64_t media_time = version == 1 ? (uint64_t (LoadU32 (p + 4)) << 32) | LoadU32 (p + 8)
                                     : LoadU32 (p + 4);
  int64_t duration_us = int64_t ((__int128) tt.duration * 1000000 / tt.timescale);
  StoreU32 (out, uint32_t (kPrftSize));
  StoreU32 (out + 4, FourCC ("prft"));
  StoreU32 (out + 8, (1u << 24) | (flags & 0xffffff));  // version 1
  StoreU32 (out + 12, tt.track_id);
  StoreU64 (out + 16, NtpFromUnixMicros (unix_us - duration_us));
  StoreU64 (out + 24, media_time);
  return true;
}

}  // namespace fmp4ws::core
