// Shared by the unit tests: a fixture made into broadcast items (core::StreamItem), as the
// sink's glue makes them (one init item, one item per fragment, the payload shared).
#pragma once

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "box.h"
#include "broadcaster.h"
#include "fixtures.h"
#include "json.h"
#include "stream_reader.h"

namespace fmp4ws::test {

using namespace fmp4ws::core;

// A stream made into broadcast items, as the sink's glue makes them.
struct Stream
{
  ItemPtr init;
  std::vector<ItemPtr> fragments;
};

inline Stream MakeStreamFromBytes (const std::vector<uint8_t> &data, uint32_t generation = 1);

inline Stream
MakeStream (const std::string &fixture, uint32_t generation = 1)
{
  return MakeStreamFromBytes (ReadFixture (fixture), generation);
}

// The same from a stream's bytes (an edited fixture).
inline Stream
MakeStreamFromBytes (const std::vector<uint8_t> &data, uint32_t generation)
{
  auto segs = std::make_shared<std::vector<Segment>> ();
  StreamReader r;
  *segs = r.Push (data.data (), data.size ());
  Stream s;
  std::shared_ptr<const InitInfo> info;
  for (const Segment &g : *segs) {
    auto item = std::make_shared<StreamItem> ();
    item->generation = generation;
    item->payload = {g.bytes.data (), g.bytes.size (), segs};
    if (g.kind == Segment::kInit) {
      info = std::make_shared<InitInfo> (g.init);
      item->kind = StreamItem::kInit;
      item->init = info;
      item->stream_json = "{\"type\":\"stream\",\"mime\":" + JsonString (g.init.mime) + "}";
      s.init = item;
    } else if (g.kind == Segment::kFragment) {
      item->kind = StreamItem::kFragment;
      item->keyframe = g.fragment.keyframe;
      item->discont = g.discont;
      // The moof is the first box (these fixtures have no styp).
      BoxIterator it (g.bytes.data (), g.bytes.size ());
      EXPECT_TRUE (it.Next ());
      SetFragmentInfo (item.get (), g.fragment, *info, 0, it.box_size ());
      s.fragments.push_back (item);
    }
  }
  return s;
}

// The same stream with each fragment's payload in `runs` spans over the same bytes (as the sink
// makes them from a buffer of several GstMemory): cut inside the moof, at its end (a
// rewritten moof + the mdat), then into equal pieces of the rest. Nothing is copied.
inline Stream
SplitPayloads (const Stream &in, size_t runs)
{
  Stream out;
  out.init = in.init;
  for (const ItemPtr &f : in.fragments) {
    auto item = std::make_shared<StreamItem> (*f);
    const Payload &p = f->payload;
    std::vector<size_t> cuts = {std::min<size_t> (5, p.size), std::min (f->moof_size, p.size)};
    for (size_t i = 1; runs > 2 && i < runs - 2; i++)
      cuts.push_back (f->moof_size + (p.size - f->moof_size) * i / (runs - 2));
    cuts.push_back (p.size);
    auto spans = std::make_shared<std::vector<Span>> ();
    size_t at = 0;
    for (size_t c : cuts) {
      if (c < at)
        c = at;
      spans->push_back ({p.data + at, c - at});  // empty runs too: they must do no harm
      at = c;
    }
    item->payload = {nullptr, p.size, p.owner, spans};
    item->heads.clear ();
    out.fragments.push_back (item);
  }
  return out;
}

}  // namespace fmp4ws::test
