// Shared by the unit tests: edits of a real encoder's stream (tests/fixtures) that make the
// inputs of the normalisation and discontinuity tests: tfdt shifted (timestamp jumps),
// tfdt removed, a free box put between moof and mdat.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <vector>

#include "box.h"
#include "bytes.h"
#include "init_segment.h"

namespace fmp4ws::test {

using namespace fmp4ws::core;

// The top-level boxes of a file: (offset, size, type).
struct TopBox
{
  size_t offset, size;
  uint32_t type;
};

inline std::vector<TopBox>
TopBoxes (const std::vector<uint8_t> &data)
{
  std::vector<TopBox> out;
  BoxIterator it (data.data (), data.size ());
  while (it.Next ())
    out.push_back ({size_t (it.box () - data.data ()), it.box_size (), it.type ()});
  EXPECT_FALSE (it.error ());
  return out;
}

inline InitInfo
InitOf (const std::vector<uint8_t> &data)
{
  for (const TopBox &b : TopBoxes (data))
    if (b.type == FourCC ("moov")) {
      std::string error;
      auto info = ParseMoov (data.data () + b.offset, b.size, &error);
      EXPECT_TRUE (info) << error;
      return info ? *info : InitInfo ();
    }
  ADD_FAILURE () << "no moov";
  return {};
}

// Adds `seconds` (each track in its timescale) to the tfdt of moofs [from, to) (moof
// indices in file order). The tfdt must stay >= 0.
inline void
ShiftTfdt (std::vector<uint8_t> *data, size_t from, size_t to, double seconds)
{
  InitInfo init = InitOf (*data);
  size_t index = 0;
  for (const TopBox &b : TopBoxes (*data)) {
    if (b.type != FourCC ("moof"))
      continue;
    if (index >= from && index < to) {
      uint8_t *moof = data->data () + b.offset;
      BoxIterator it (moof + 8, b.size - 8);
      while (it.Next ()) {
        if (it.type () != FourCC ("traf"))
          continue;
        uint32_t track = 0;
        BoxIterator tr (it.payload (), it.payload_size ());
        while (tr.Next ()) {
          uint8_t *p = const_cast<uint8_t *> (tr.payload ());
          if (tr.type () == FourCC ("tfhd"))
            track = LoadU32 (p + 4);
          if (tr.type () != FourCC ("tfdt"))
            continue;
          const Track *t = init.FindTrack (track);
          ASSERT_TRUE (t);
          int64_t delta = int64_t (seconds * t->timescale);
          if (p[0] == 1) {
            uint64_t v = (uint64_t (LoadU32 (p + 4)) << 32) | LoadU32 (p + 8);
            ASSERT_GE (int64_t (v) + delta, 0);
            StoreU64 (p + 4, uint64_t (int64_t (v) + delta));
          } else {
            int64_t v = LoadU32 (p + 4);
            ASSERT_GE (v + delta, 0);
            StoreU32 (p + 4, uint32_t (v + delta));
          }
        }
      }
    }
    index++;
  }
}

// Makes every 32-bit (version 0) tfdt wrap at moof `at`: each track's times become
// (tfdt - T) mod 2^32, T being its tfdt in its first moof from `at` on. Returns T - 2^32 per
// track (what the unwrapped times are shifted by: tfdt' = tfdt - (T - 2^32)).
inline std::map<uint32_t, int64_t>
WrapTfdtAt (std::vector<uint8_t> *data, size_t at)
{
  std::map<uint32_t, uint32_t> base;
  std::map<uint32_t, int64_t> shift;
  std::vector<std::pair<uint8_t *, uint32_t>> tfdts;  // (box payload, track)
  size_t index = 0;
  for (const TopBox &b : TopBoxes (*data)) {
    if (b.type != FourCC ("moof"))
      continue;
    BoxIterator it (data->data () + b.offset + 8, b.size - 8);
    while (it.Next ()) {
      if (it.type () != FourCC ("traf"))
        continue;
      uint32_t track = 0;
      BoxIterator tr (it.payload (), it.payload_size ());
      while (tr.Next ()) {
        uint8_t *p = const_cast<uint8_t *> (tr.payload ());
        if (tr.type () == FourCC ("tfhd"))
          track = LoadU32 (p + 4);
        if (tr.type () == FourCC ("tfdt")) {
          EXPECT_EQ (p[0], 0) << "a version 0 tfdt";
          tfdts.push_back ({p, track});
          if (index >= at && !base.count (track))
            base[track] = LoadU32 (p + 4);
        }
      }
    }
    index++;
  }
  for (auto &[p, track] : tfdts)
    StoreU32 (p + 4, LoadU32 (p + 4) - base[track]);  // mod 2^32
  for (auto &[track, t] : base)
    shift[track] = int64_t (t) - (int64_t (1) << 32);
  return shift;
}

// Rebuilds every moof without its tfdt boxes; the trun data_offsets (moof-relative, as with
// default_base_moof) follow the smaller moof.
inline std::vector<uint8_t>
StripTfdt (const std::vector<uint8_t> &data)
{
  std::vector<uint8_t> out;
  for (const TopBox &b : TopBoxes (data)) {
    const uint8_t *box = data.data () + b.offset;
    if (b.type != FourCC ("moof")) {
      out.insert (out.end (), box, box + b.size);
      continue;
    }
    size_t removed = 0;
    BoxIterator count (box + 8, b.size - 8);
    while (count.Next ())
      if (count.type () == FourCC ("traf")) {
        BoxIterator tr (count.payload (), count.payload_size ());
        while (tr.Next ())
          if (tr.type () == FourCC ("tfdt"))
            removed += tr.box_size ();
      }
    Writer w;
    size_t moof = w.BeginBox (FourCC ("moof"));
    BoxIterator it (box + 8, b.size - 8);
    while (it.Next ()) {
      if (it.type () != FourCC ("traf")) {
        w.Bytes (it.box (), it.box_size ());
        continue;
      }
      size_t traf = w.BeginBox (FourCC ("traf"));
      BoxIterator tr (it.payload (), it.payload_size ());
      while (tr.Next ()) {
        if (tr.type () == FourCC ("tfdt"))
          continue;
        size_t at = w.size ();
        w.Bytes (tr.box (), tr.box_size ());
        if (tr.type () == FourCC ("trun") && (tr.payload ()[3] & 0x01)) {
          uint8_t *p = w.bytes ().data () + at + 8;
          StoreU32 (p + 8, uint32_t (int32_t (LoadU32 (p + 8)) - int32_t (removed)));
        }
      }
      w.EndBox (traf);
    }
    w.EndBox (moof);
    out.insert (out.end (), w.bytes ().begin (), w.bytes ().end ());
  }
  return out;
}

// Puts a free box of `n` bytes (n >= 8) between every moof and its mdat; the trun
// data_offsets (moof-relative) count it, as a packager that writes one would.
inline std::vector<uint8_t>
FreeBetweenMoofAndMdat (const std::vector<uint8_t> &data, size_t n)
{
  std::vector<uint8_t> out;
  for (const TopBox &b : TopBoxes (data)) {
    const uint8_t *box = data.data () + b.offset;
    size_t at = out.size ();
    out.insert (out.end (), box, box + b.size);
    if (b.type != FourCC ("moof"))
      continue;
    BoxIterator it (out.data () + at + 8, b.size - 8);
    while (it.Next ())
      if (it.type () == FourCC ("traf")) {
        BoxIterator tr (it.payload (), it.payload_size ());
        while (tr.Next ())
          if (tr.type () == FourCC ("trun") && (tr.payload ()[3] & 0x01)) {
            uint8_t *p = const_cast<uint8_t *> (tr.payload ());
            StoreU32 (p + 8, uint32_t (int32_t (LoadU32 (p + 8)) + int32_t (n)));
          }
      }
    std::vector<uint8_t> free (n, 0);
    StoreU32 (free.data (), uint32_t (n));
    StoreU32 (free.data () + 4, FourCC ("free"));
    out.insert (out.end (), free.begin (), free.end ());
  }
  return out;
}

// Rewrites the tfdt of moofs [at, end) as version 1 (64-bit, the box 4 bytes longer; the trun
// data_offsets, moof-relative, follow) and adds `add[track]` ticks to every tfdt of the track,
// version 0 ones before `at` included (their sum must fit in 32 bits): a packager that
// switches tfdt version 0 -> 1 mid-stream (ISO/IEC 14496-12 §8.8.12), with or without a time
// past 2^32 at the switch.
inline std::vector<uint8_t>
TfdtVersion1From (const std::vector<uint8_t> &data, size_t at,
                  const std::map<uint32_t, int64_t> &add = {})
{
  std::vector<uint8_t> out;
  size_t index = 0;
  auto added = [&] (uint32_t track) {
    auto it = add.find (track);
    return it == add.end () ? 0 : it->second;
  };
  for (const TopBox &b : TopBoxes (data)) {
    const uint8_t *box = data.data () + b.offset;
    if (b.type != FourCC ("moof")) {
      out.insert (out.end (), box, box + b.size);
      continue;
    }
    bool v1 = index++ >= at;
    size_t grown = 0;
    BoxIterator count (box + 8, b.size - 8);
    while (count.Next ())
      if (count.type () == FourCC ("traf")) {
        BoxIterator tr (count.payload (), count.payload_size ());
        while (tr.Next ())
          if (tr.type () == FourCC ("tfdt") && tr.payload ()[0] == 0 && v1)
            grown += 4;
      }
    Writer w;
    size_t moof = w.BeginBox (FourCC ("moof"));
    BoxIterator it (box + 8, b.size - 8);
    while (it.Next ()) {
      if (it.type () != FourCC ("traf")) {
        w.Bytes (it.box (), it.box_size ());
        continue;
      }
      size_t traf = w.BeginBox (FourCC ("traf"));
      uint32_t track = 0;
      BoxIterator tr (it.payload (), it.payload_size ());
      while (tr.Next ()) {
        const uint8_t *p = tr.payload ();
        if (tr.type () == FourCC ("tfhd"))
          track = LoadU32 (p + 4);
        if (tr.type () == FourCC ("tfdt")) {
          uint64_t t = p[0] == 1 ? (uint64_t (LoadU32 (p + 4)) << 32) | LoadU32 (p + 8)
                                 : LoadU32 (p + 4);
          t = uint64_t (int64_t (t) + added (track));
          if (v1 || p[0] == 1) {
            size_t f = w.BeginFullBox (FourCC ("tfdt"), 1, 0);
            w.U64 (t);
            w.EndBox (f);
          } else {
            EXPECT_LT (t, uint64_t (1) << 32) << "a version 0 tfdt past 2^32";
            size_t f = w.BeginFullBox (FourCC ("tfdt"), 0, 0);
            w.U32 (uint32_t (t));
            w.EndBox (f);
          }
          continue;
        }
        size_t pos = w.size ();
        w.Bytes (tr.box (), tr.box_size ());
        if (tr.type () == FourCC ("trun") && (p[3] & 0x01)) {
          uint8_t *q = w.bytes ().data () + pos + 8;
          StoreU32 (q + 8, uint32_t (int32_t (LoadU32 (q + 8)) + int32_t (grown)));
        }
      }
      w.EndBox (traf);
    }
    w.EndBox (moof);
    out.insert (out.end (), w.bytes ().begin (), w.bytes ().end ());
  }
  return out;
}

// Each track's first tfdt in moof `at` (file order) or after.
inline std::map<uint32_t, uint64_t>
TfdtsFrom (const std::vector<uint8_t> &data, size_t at)
{
  std::map<uint32_t, uint64_t> out;
  size_t index = 0;
  for (const TopBox &b : TopBoxes (data)) {
    if (b.type != FourCC ("moof") || index++ < at)
      continue;
    BoxIterator it (data.data () + b.offset + 8, b.size - 8);
    while (it.Next ()) {
      if (it.type () != FourCC ("traf"))
        continue;
      uint32_t track = 0;
      BoxIterator tr (it.payload (), it.payload_size ());
      while (tr.Next ()) {
        const uint8_t *p = tr.payload ();
        if (tr.type () == FourCC ("tfhd"))
          track = LoadU32 (p + 4);
        if (tr.type () == FourCC ("tfdt") && !out.count (track))
          out[track] = p[0] == 1 ? (uint64_t (LoadU32 (p + 4)) << 32) | LoadU32 (p + 8)
                                 : LoadU32 (p + 4);
      }
    }
  }
  return out;
}

}  // namespace fmp4ws::test
