#include "normalize.h"

#include <algorithm>
#include <cstring>

#include "box.h"
#include "bytes.h"

namespace fmp4ws::core {

namespace {
// tfhd flags (ISO/IEC 14496-12 8.8.7.1)
constexpr uint32_t kBaseDataOffsetPresent = 0x000001;
constexpr uint32_t kSampleDescriptionIndexPresent = 0x000002;
constexpr uint32_t kDefaultSampleDurationPresent = 0x000008;
constexpr uint32_t kDefaultSampleSizePresent = 0x000010;
constexpr uint32_t kDefaultSampleFlagsPresent = 0x000020;
constexpr uint32_t kDefaultBaseIsMoof = 0x020000;
// trun flags (8.8.8.1)
constexpr uint32_t kDataOffsetPresent = 0x000001;
constexpr uint32_t kFirstSampleFlagsPresent = 0x000004;
constexpr uint32_t kSampleDurationPresent = 0x000100;
constexpr uint32_t kSampleSizePresent = 0x000200;
constexpr uint32_t kSampleFlagsPresent = 0x000400;
constexpr uint32_t kSampleCtoPresent = 0x000800;
// Smooth Streaming TfxdBox ([MS-SSTR] 2.2.4.4): uuid 6d1d9b05-42d5-44e6-80e2-141daff757b2
constexpr uint8_t kTfxdUuid[16] = {0x6d, 0x1d, 0x9b, 0x05, 0x42, 0xd5, 0x44, 0xe6,
                                   0x80, 0xe2, 0x14, 0x1d, 0xaf, 0xf7, 0x57, 0xb2};
}  // namespace

std::string
NormalizeReasonsText (uint32_t reasons)
{
  std::string s;
  auto add = [&] (uint32_t bit, const char *text) {
    if (reasons & bit)
      s += (s.empty () ? "" : "; ") + std::string (text);
  };
  add (kAbsoluteBase, "tfhd base_data_offset (absolute file offsets, as ffmpeg without "
                      "default_base_moof, GPAC and old ffmpeg write)");
  add (kImplicitBase, "several trafs without default-base-is-moof (each based on the end of the "
                      "previous traf's data)");
  add (kImplicitDataOffset, "trun without data_offset (as with omit_tfhd_offset)");
  add (kMissingTfdt, "traf without tfdt (time taken from Smooth Streaming's tfxd, else from the "
                     "end of the track's previous fragment)");
  add (kTfdtWrap, "32-bit tfdt that wrapped around (written as a 64-bit tfdt that goes on)");
  return s;
}

bool
ParseMoofLayout (const uint8_t *moof, size_t size, const InitInfo &init, MoofLayout *out,
                 std::string *error)
{
  BoxHeader h;
  if (ParseBoxHeader (moof, size, size, &h) != HeaderStatus::kOk || h.type != FourCC ("moof") ||
      h.size != size) {
    *error = "not a moof box";
    return false;
  }
  out->trafs.clear ();
  out->reasons = 0;
  BoxIterator it (moof + h.header_size, size - h.header_size);
  while (it.Next ()) {
    if (it.type () != FourCC ("traf"))
      continue;
    TrafLayout tl;
    bool tfhd_seen = false;
    uint32_t default_size = 0;
    bool have_default_size = false;
    BoxIterator tr (it.payload (), it.payload_size ());
    while (tr.Next ()) {
      Reader r (tr.payload (), tr.payload_size ());
      if (tr.type () == FourCC ("tfhd")) {
        r.U8 ();
        tl.tfhd_flags = r.U24 ();
        tl.track_id = r.U32 ();
        if (tl.tfhd_flags & kBaseDataOffsetPresent) tl.base_data_offset = r.U64 ();
        if (tl.tfhd_flags & kSampleDescriptionIndexPresent) r.Skip (4);
        if (tl.tfhd_flags & kDefaultSampleDurationPresent) r.Skip (4);
        if (tl.tfhd_flags & kDefaultSampleSizePresent) {
          default_size = r.U32 ();
          have_default_size = true;
        }
        if (tl.tfhd_flags & kDefaultSampleFlagsPresent) r.Skip (4);
        if (!r.ok ()) {
          *error = "moof: truncated tfhd";
          return false;
        }
        tfhd_seen = true;
        const Track *t = init.FindTrack (tl.track_id);
        if (!have_default_size && t && t->has_trex) {
          default_size = t->trex_size;
          have_default_size = true;
        }
      } else if (tr.type () == FourCC ("tfdt")) {
        tl.has_tfdt = true;
        tl.tfdt_version = r.U8 ();
        r.Skip (3);
        tl.tfdt = tl.tfdt_version == 1 ? r.U64 () : r.U32 ();
      } else if (tr.type () == FourCC ("uuid") && tr.payload_size () >= 16 + 4 &&
                 memcmp (tr.payload (), kTfxdUuid, 16) == 0) {
        r.Skip (16);
        uint8_t version = r.U8 ();
        r.Skip (3);
        uint64_t t = version == 1 ? r.U64 () : r.U32 ();
        if (r.ok ()) {
          tl.has_tfxd = true;
          tl.tfxd_time = t;
        }
      } else if (tr.type () == FourCC ("trun")) {
        if (!tfhd_seen) {
          *error = "moof: trun before its traf's tfhd";
          return false;
        }
        r.U8 ();
        uint32_t flags = r.U24 ();
        uint32_t count = r.U32 ();
        TrunLayout run;
        if (flags & kDataOffsetPresent) {
          run.has_data_offset = true;
          run.data_offset = int32_t (r.U32 ());
        }
        if (flags & kFirstSampleFlagsPresent) r.Skip (4);
        bool has_dur = flags & kSampleDurationPresent, has_size = flags & kSampleSizePresent,
             has_flags = flags & kSampleFlagsPresent, has_cto = flags & kSampleCtoPresent;
        size_t per_sample = 4u * (has_dur + has_size + has_flags + has_cto);
        if (!r.ok () || (per_sample && r.remaining () / per_sample < count)) {
          *error = "moof: trun sample table overruns its box";
          return false;
        }
        if (!has_size) {
          if (count > 0 && !have_default_size) {
            *error = "moof: track " + std::to_string (tl.track_id) +
                     " gives its sample sizes nowhere (trun, tfhd, trex)";
            return false;
          }
          run.bytes = uint64_t (count) * default_size;
        } else {
          for (uint32_t i = 0; i < count; i++) {
            if (has_dur) r.Skip (4);
            run.bytes += r.U32 ();
            if (has_flags) r.Skip (4);
            if (has_cto) r.Skip (4);
          }
        }
        tl.truns.push_back (run);
      }
    }
    if (tr.error () || !tfhd_seen) {
      *error = "moof: malformed traf";
      return false;
    }
    if (tl.tfhd_flags & kBaseDataOffsetPresent)
      out->reasons |= kAbsoluteBase;
    else if (!out->trafs.empty () && !(tl.tfhd_flags & kDefaultBaseIsMoof))
      out->reasons |= kImplicitBase;
    for (const TrunLayout &run : tl.truns)
      if (!run.has_data_offset)
        out->reasons |= kImplicitDataOffset;
    if (!tl.has_tfdt)
      out->reasons |= kMissingTfdt;
    out->trafs.push_back (std::move (tl));
  }
  if (it.error ()) {
    *error = "moof: a child box overruns its parent";
    return false;
  }
  return true;
}

bool
PlaceMoofData (const MoofLayout &layout, uint64_t moof_size, uint64_t moof_position,
               uint64_t data_start, uint64_t data_end, DataPlacement *out, std::string *error)
{
  out->starts.clear ();
  out->traf_bases.clear ();
  out->anchored = false;
  // Positions relative to the moof start (absolute ones through the moof's stream position).
  std::vector<bool> absolute, traf_absolute;
  int64_t prev_traf_end = 0;
  bool first_traf = true;
  // Offsets past this are nonsense (a 64-bit base_data_offset, a sample table that sums past
  // any box): refused before any arithmetic could overflow.
  constexpr int64_t kFar = int64_t (1) << 52;
  for (const TrafLayout &tl : layout.trafs) {
    bool abs = tl.tfhd_flags & kBaseDataOffsetPresent;
    if (abs && (tl.base_data_offset > uint64_t (kFar) || moof_position > uint64_t (kFar))) {
      *error = "moof: base_data_offset " + std::to_string (tl.base_data_offset) + " out of range";
      return false;
    }
    int64_t base;
    if (abs)
      base = int64_t (tl.base_data_offset) - int64_t (moof_position);
    else if ((tl.tfhd_flags & kDefaultBaseIsMoof) || first_traf)
      base = 0;
    else
      base = prev_traf_end;
    // A later traf with neither base flag: ISO/IEC 14496-12 bases it on the end of the
    // previous traf's data (ffmpeg's omit_tfhd_offset writes data_offset 0 there), but some
    // packagers (GPAC 0.5) count its data_offset from the moof. Take the reading under which
    // the traf's data follows the previous traf's, else the one inside the first mdat.
    bool implicit = !abs && base != 0;
    int64_t pos = base;
    for (size_t i = 0; i < tl.truns.size (); i++) {
      const TrunLayout &run = tl.truns[i];
      if (run.has_data_offset && implicit && i == 0) {
        int64_t spec = base + run.data_offset, from_moof = run.data_offset;
        bool spec_in = spec >= int64_t (data_start) && spec < int64_t (data_end);
        bool moof_in = from_moof >= int64_t (data_start) && from_moof < int64_t (data_end);
        if (from_moof == prev_traf_end && spec != prev_traf_end)
          base = 0;
        else if (spec != prev_traf_end && !spec_in && moof_in)
          base = 0;
        pos = base + run.data_offset;
      } else if (run.has_data_offset)
        pos = base + run.data_offset;
      else if (i == 0 && !abs && base == 0)
        // Based on the moof itself: only the mdat (after the previous traf's data) makes sense.
        pos = std::max (int64_t (data_start), prev_traf_end);
      else if (i == 0)
        pos = base;
      if (pos > kFar || pos < -kFar || run.bytes > uint64_t (kFar)) {
        *error = "moof: sample data offsets out of range";
        return false;
      }
      out->starts.push_back (pos);
      absolute.push_back (abs);
      pos += int64_t (run.bytes);
    }
    out->traf_bases.push_back (base);
    traf_absolute.push_back (abs);
    prev_traf_end = pos;
    first_traf = false;
  }
  // The first byte of sample data: it should begin the first mdat's payload or lie in it.
  int64_t first = INT64_MAX;
  size_t k = 0;
  bool any_absolute = false;
  for (const TrafLayout &tl : layout.trafs)
    for (const TrunLayout &run : tl.truns) {
      if (run.bytes > 0) {
        first = std::min (first, out->starts[k]);
        any_absolute = any_absolute || absolute[k];
      }
      k++;
    }
  if (first == INT64_MAX)
    first = int64_t (data_start);  // no sample data at all
  if (any_absolute && (first < int64_t (data_start) || first >= int64_t (data_end))) {
    // Offsets in a file other than this stream (segments concatenated, a stream cut from a
    // file): only their differences mean something here.
    int64_t shift = int64_t (data_start) - first;
    for (size_t i = 0; i < out->starts.size (); i++)
      if (absolute[i])
        out->starts[i] += shift;
    for (size_t i = 0; i < out->traf_bases.size (); i++)
      if (traf_absolute[i])
        out->traf_bases[i] += shift;
    out->anchored = true;
  }
  out->end = int64_t (moof_size);
  k = 0;
  for (const TrafLayout &tl : layout.trafs)
    for (const TrunLayout &run : tl.truns) {
      int64_t s = out->starts[k++];
      if (run.bytes == 0)
        continue;
      if (s < int64_t (moof_size)) {
        *error = "moof: sample data of track " + std::to_string (tl.track_id) +
                 " would start inside the moof (data offset " + std::to_string (s) + ")";
        return false;
      }
      out->end = std::max (out->end, s + int64_t (run.bytes));
    }
  return true;
}

std::vector<uint8_t>
RewriteMoof (const uint8_t *moof, size_t size, const MoofLayout &layout,
             const DataPlacement &placement, std::string *error)
{
  BoxHeader h;
  if (ParseBoxHeader (moof, size, size, &h) != HeaderStatus::kOk || h.size != size) {
    *error = "not a moof box";
    return {};
  }
  Writer w;
  size_t moof_start = w.BeginBox (FourCC ("moof"));
  std::vector<size_t> offset_fields;  // positions of the trun data_offsets written
  // Boxes copied unchanged: (old start, end, new start), relative to the moof starts.
  struct Moved
  {
    int64_t from, to, at;
  };
  std::vector<Moved> moved;
  auto copy = [&] (const uint8_t *box, size_t n) {
    moved.push_back ({int64_t (box - moof), int64_t (box - moof + n), int64_t (w.size ())});
    w.Bytes (box, n);
  };
  // saio offsets written: (position, version, old offset, traf index)
  struct SaioOffset
  {
    size_t field;
    uint8_t version;
    uint64_t offset;
    size_t traf;
  };
  std::vector<SaioOffset> saio;
  size_t traf_index = 0;
  BoxIterator it (moof + h.header_size, size - h.header_size);
  while (it.Next ()) {
    if (it.type () != FourCC ("traf")) {
      copy (it.box (), it.box_size ());
      continue;
    }
    if (traf_index >= layout.trafs.size ()) {
      *error = "moof changed since its layout was parsed";
      return {};
    }
    const TrafLayout &tl = layout.trafs[traf_index];
    size_t traf_start = w.BeginBox (FourCC ("traf"));
    BoxIterator tr (it.payload (), it.payload_size ());
    while (tr.Next ()) {
      Reader r (tr.payload (), tr.payload_size ());
      if (tr.type () == FourCC ("tfhd")) {
        uint8_t version = r.U8 ();
        uint32_t flags = r.U24 ();
        uint32_t flags_out = (flags & ~kBaseDataOffsetPresent) | kDefaultBaseIsMoof;
        size_t b = w.BeginFullBox (FourCC ("tfhd"), version, flags_out);
        w.U32 (r.U32 ());  // track_ID
        if (flags & kBaseDataOffsetPresent)
          r.Skip (8);
        if (!r.ok ()) {
          *error = "moof: truncated tfhd";
          return {};
        }
        w.Bytes (tr.payload () + r.pos (), tr.payload_size () - r.pos ());
        w.EndBox (b);
        if (tl.set_tfdt || !tl.has_tfdt) {
          size_t t = w.BeginFullBox (FourCC ("tfdt"), 1, 0);
          w.U64 (tl.tfdt_out);
          w.EndBox (t);
        }
      } else if (tr.type () == FourCC ("tfdt") && (tl.set_tfdt || !tl.has_tfdt)) {
        continue;  // written after the tfhd
      } else if (tr.type () == FourCC ("trun")) {
        uint8_t version = r.U8 ();
        uint32_t flags = r.U24 ();
        uint32_t count = r.U32 ();
        if (flags & kDataOffsetPresent)
          r.Skip (4);
        if (!r.ok ()) {
          *error = "moof: truncated trun";
          return {};
        }
        size_t b = w.BeginFullBox (FourCC ("trun"), version, flags | kDataOffsetPresent);
        w.U32 (count);
        offset_fields.push_back (w.size ());
        w.U32 (0);  // patched below
        w.Bytes (tr.payload () + r.pos (), tr.payload_size () - r.pos ());
        w.EndBox (b);
      } else if (tr.type () == FourCC ("saio")) {
        // ISO/IEC 14496-12 §8.7.9.2: [aux_info_type, parameter] entry_count offset[]
        uint8_t version = r.U8 ();
        uint32_t flags = r.U24 ();
        size_t b = w.BeginFullBox (FourCC ("saio"), version, flags);
        if (flags & 1)
          w.U64 (r.U64 ());
        uint32_t count = r.U32 ();
        if (!r.ok () || r.remaining () / (version == 1 ? 8 : 4) < count) {
          *error = "moof: truncated saio";
          return {};
        }
        w.U32 (count);
        for (uint32_t i = 0; i < count; i++) {
          uint64_t o = version == 1 ? r.U64 () : r.U32 ();
          saio.push_back ({w.size (), version, o, traf_index});
          if (version == 1)
            w.U64 (o);
          else
            w.U32 (uint32_t (o));
        }
        w.Bytes (tr.payload () + r.pos (), tr.payload_size () - r.pos ());
        w.EndBox (b);
      } else {
        copy (tr.box (), tr.box_size ());
      }
    }
    w.EndBox (traf_start);
    traf_index++;
  }
  if (it.error () || offset_fields.size () != placement.starts.size ()) {
    *error = "moof changed since its layout was parsed";
    return {};
  }
  w.EndBox (moof_start);
  // The boxes after the moof move by the change of its size.
  int64_t delta = int64_t (w.size ()) - int64_t (size);
  for (size_t i = 0; i < offset_fields.size (); i++) {
    int64_t v = placement.starts[i] + delta;
    if (v < INT32_MIN || v > INT32_MAX) {
      *error = "moof: data offset " + std::to_string (v) + " does not fit a trun";
      return {};
    }
    w.PatchU32 (offset_fields[i], uint32_t (int32_t (v)));
  }
  // saio: where the auxiliary information was (from the old moof start), where it is now,
  // as an offset from the new base, the moof start (every tfhd default-base-is-moof).
  for (const SaioOffset &so : saio) {
    if (so.traf >= placement.traf_bases.size ()) {
      *error = "moof changed since its layout was parsed";
      return {};
    }
    if (so.offset > (uint64_t (1) << 52)) {
      *error = "moof: saio offset " + std::to_string (so.offset) + " out of range";
      return {};
    }
    int64_t old_pos = placement.traf_bases[so.traf] + int64_t (so.offset);
    int64_t new_pos;
    if (old_pos >= int64_t (size))
      new_pos = old_pos + delta;  // after the moof (mdat): moves with it
    else if (old_pos < 0)
      new_pos = old_pos;          // before the moof: the moof start did not move
    else {
      auto m = std::find_if (moved.begin (), moved.end (),
                             [&] (const Moved &x) { return old_pos >= x.from && old_pos < x.to; });
      if (m == moved.end ()) {
        *error = "moof: a saio offset (" + std::to_string (old_pos) +
                 " from the moof) points into a box the rewrite changes";
        return {};
      }
      new_pos = m->at + (old_pos - m->from);
    }
    if (new_pos < 0 || (so.version == 0 && new_pos > int64_t (UINT32_MAX))) {
      *error = "moof: saio offset " + std::to_string (new_pos) + " does not fit its box";
      return {};
    }
    uint8_t *f = w.bytes ().data () + so.field;
    if (so.version == 1)
      StoreU64 (f, uint64_t (new_pos));
    else
      StoreU32 (f, uint32_t (new_pos));
  }
  return std::move (w.bytes ());
}

}  // namespace fmp4ws::core
