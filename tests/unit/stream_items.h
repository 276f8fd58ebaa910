// Shared by the unit tests: a fixture made into broadcast items (core::StreamItem), as the
// sink's glue makes them (one init item, one item per fragment, the payload shared).
#pragma once

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

}  // namespace fmp4ws::test
