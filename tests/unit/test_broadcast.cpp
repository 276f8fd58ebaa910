// Unit tests of the broadcast model (start policies, GOP cache, backlog bounds, rebasing).
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "box.h"
#include "fixtures.h"
#include "broadcaster.h"
#include "json.h"
#include "stream_reader.h"
#include "stream_items.h"
#include "edit_stream.h"

#include <cmath>
#include <map>

using namespace fmp4ws::core;
using fmp4ws::test::MakeStream;
using fmp4ws::test::Stream;

namespace {

struct Message
{
  uint8_t opcode = 0;
  std::vector<uint8_t> payload;
  std::string text () const { return std::string (payload.begin (), payload.end ()); }
};

// Decodes one server frame from a queued message.
Message
Decode (const OutMessage &m)
{
  std::vector<uint8_t> all (*m.head);
  m.body.AppendTo (m.body_offset, m.body_size, &all);
  Message out;
  EXPECT_GE (all.size (), 2u);
  EXPECT_EQ (all[0] & 0x80, 0x80);  // FIN
  out.opcode = all[0] & 0x0f;
  EXPECT_EQ (all[1] & 0x80, 0);  // servers do not mask
  uint64_t len = all[1] & 0x7f;
  size_t pos = 2;
  if (len == 126) {
    len = (all[2] << 8) | all[3];
    pos = 4;
  } else if (len == 127) {
    len = 0;
    for (int i = 0; i < 8; i++)
      len = (len << 8) | all[2 + i];
    pos = 10;
  }
  EXPECT_EQ (all.size (), pos + len);
  out.payload.assign (all.begin () + long (pos), all.end ());
  return out;
}

// Writes (consumes) everything queued for a viewer, returning the decoded messages.
std::vector<Message>
Drain (Broadcaster &b, Broadcaster::ViewerId id)
{
  std::vector<Message> out;
  const auto *q = b.Queue (id);
  while (q && !q->empty ()) {
    const OutMessage &m = q->front ();
    EXPECT_EQ (b.FrontOffset (id), 0u);
    out.push_back (Decode (m));
    b.Consumed (id, m.size ());
  }
  return out;
}

// Decode time (seconds) of the timing track in a fragment message.
double
FragmentTime (const Message &m, const InitInfo &init)
{
  BoxIterator it (m.payload.data (), m.payload.size ());
  while (it.Next ())
    if (it.type () == FourCC ("moof")) {
      std::string error;
      auto info = ParseMoof (it.box (), it.box_size (), init, &error);
      EXPECT_TRUE (info) << error;
      return info ? info->decode_time_ns () / 1e9 : -1;
    }
  ADD_FAILURE () << "no moof";
  return -1;
}

bool
IsKeyframe (const Message &m, const InitInfo &init)
{
  BoxIterator it (m.payload.data (), m.payload.size ());
  std::string error;
  while (it.Next ())
    if (it.type () == FourCC ("moof"))
      return ParseMoof (it.box (), it.box_size (), init, &error)->keyframe;
  return false;
}

}  // namespace

TEST (Broadcast, PayloadOfSeveralSpansGivesTheSameBytes)
{
  // A fragment in several spans (the sink's buffer of several GstMemory: rewritten moof +
  // mdat, or a fragment across input chunks): every viewer gets the same bytes as from one
  // block, rebased or not, with the sink's prft or without, WebSocket or raw framing.
  Stream whole = MakeStream ("notes-g30.mp4");
  Stream split = fmp4ws::test::SplitPayloads (whole, 6);
  ASSERT_EQ (split.fragments[3]->payload.spans->size (), 6u);
  for (bool rebase : {true, false})
    for (bool prft : {true, false})
      for (Framing framing : {Framing::kWebSocket, Framing::kRaw}) {
        SCOPED_TRACE (std::string (rebase ? "rebased" : "as is") + (prft ? ", prft" : "") +
                      (framing == Framing::kRaw ? ", raw" : ""));
        std::vector<uint8_t> bytes[2];
        for (int k = 0; k < 2; k++) {
          const Stream &s = k ? split : whole;
          BroadcastConfig cfg;
          cfg.rebase = rebase;
          cfg.add_prft = prft;
          Broadcaster b (cfg);
          b.PushInit (s.init);
          Broadcaster::ViewerOptions vo;
          vo.framing = framing;
          Broadcaster::ViewerId id = b.AddViewer (vo);
          for (size_t i = 0; i < s.fragments.size (); i++) {
            auto item = std::make_shared<StreamItem> (*s.fragments[i]);
            item->arrival_unix_us = 1700000000000000 + int64_t (i) * 100000;
            b.PushFragment (item);
          }
          const auto *q = b.Queue (id);
          ASSERT_TRUE (q);
          for (const OutMessage &m : *q) {
            bytes[k].insert (bytes[k].end (), m.head->begin (), m.head->end ());
            m.body.AppendTo (m.body_offset, m.body_size, &bytes[k]);
          }
        }
        EXPECT_GT (bytes[0].size (), 40000u);  // every fragment
        EXPECT_TRUE (bytes[0] == bytes[1]);
      }
}

TEST (Broadcast, FrameHeaderLengths)
{
  for (uint64_t len : {0ull, 125ull, 126ull, 65535ull, 65536ull, 5000000000ull}) {
    std::vector<uint8_t> h;
    Broadcaster::FrameHeader (2, len, &h);
    EXPECT_EQ (h[0], 0x82);
    size_t expect = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    EXPECT_EQ (h.size (), expect) << len;
  }
}

TEST (Broadcast, NewViewerGetsStreamInitThenLatestGop)
{
  Stream s = MakeStream ("notes-g30.mp4");  // keyframe fragments: #0 and #12
  ASSERT_TRUE (s.fragments[12]->keyframe);
  Broadcaster b;
  b.PushInit (s.init);
  for (size_t i = 0; i < 16; i++)
    b.PushFragment (s.fragments[i]);
  EXPECT_EQ (b.gop_size (), 4u);
  auto id = b.AddViewer ({});
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 3u + 4u);
  EXPECT_EQ (msgs[0].opcode, 1);
  auto json = ParseFlatJsonObject (msgs[0].text ());
  ASSERT_TRUE (json) << msgs[0].text ();
  EXPECT_EQ ((*json)["type"].str, "stream");
  EXPECT_EQ ((*json)["mime"].str, s.init->init->mime);
  EXPECT_TRUE ((*json)["rebased"].boolean);
  EXPECT_EQ (msgs[1].opcode, 2);
  EXPECT_EQ (msgs[1].payload.size (), s.init->payload.size);
  auto start = ParseFlatJsonObject (msgs[2].text ());
  ASSERT_TRUE (start) << msgs[2].text ();
  EXPECT_EQ ((*start)["type"].str, "start");
  EXPECT_EQ ((*start)["burst"].num, 4);
  EXPECT_EQ ((*start)["start_time"].num, 0);
  double burst_duration = 0;
  for (size_t i = 12; i < 16; i++)
    burst_duration += s.fragments[i]->duration_ns / 1e9;
  EXPECT_NEAR ((*start)["live_edge"].num, burst_duration, 1e-3);
  // The burst: fragment 12 (keyframe) rebased to 0, then contiguous.
  const InitInfo &init = *s.init->init;
  EXPECT_TRUE (IsKeyframe (msgs[3], init));
  double t = 0;
  for (size_t i = 3; i < msgs.size (); i++) {
    EXPECT_NEAR (FragmentTime (msgs[i], init), t, 1e-3) << i;
    t += s.fragments[12 + i - 3]->duration_ns / 1e9;
  }
  // mdat bytes are the shared payload's, unchanged.
  EXPECT_EQ (0, memcmp (msgs[3].payload.data () + s.fragments[12]->moof_size,
                        s.fragments[12]->payload.data + s.fragments[12]->moof_size,
                        s.fragments[12]->payload.size - s.fragments[12]->moof_size));
  EXPECT_EQ (b.Stats (id)->non_keyframe_starts, 0u);
  EXPECT_EQ (b.Stats (id)->fragments_sent, 4u);
}

// The sink runs one broadcaster per I/O thread, each fed its own copy of every item (the
// payload stays shared): viewers with caller-chosen ids get the same bytes from either.
TEST (Broadcast, CopiedItemsInAnotherBroadcasterGiveTheSameBytes)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster a, b;
  a.PushInit (s.init);
  b.PushInit (std::make_shared<const StreamItem> (*s.init));
  for (size_t i = 0; i < 16; i++) {
    a.PushFragment (s.fragments[i]);
    b.PushFragment (std::make_shared<const StreamItem> (*s.fragments[i]));
  }
  EXPECT_EQ (a.AddViewer ({}, 7), 7u);
  EXPECT_EQ (b.AddViewer ({}, 8), 8u);
  EXPECT_TRUE (a.HasViewer (7) && !a.HasViewer (8));
  for (size_t i = 16; i < 20; i++) {
    a.PushFragment (s.fragments[i]);
    b.PushFragment (std::make_shared<const StreamItem> (*s.fragments[i]));
  }
  std::vector<Message> ma = Drain (a, 7), mb = Drain (b, 8);
  ASSERT_EQ (ma.size (), mb.size ());
  ASSERT_EQ (ma.size (), 3u + 4u + 4u);
  for (size_t i = 0; i < ma.size (); i++) {
    EXPECT_EQ (ma[i].opcode, mb[i].opcode) << i;
    EXPECT_EQ (ma[i].payload, mb[i].payload) << i;
  }
  // An id the broadcaster did not choose does not collide with the ones it chooses later.
  auto next = a.AddViewer ({});
  EXPECT_NE (next, 7u);
}

// Fragments lost before the broadcaster (its I/O thread fell behind): what a viewer has
// queued is still sent whole, then a skip message, then the next keyframe fragment, on a
// continuous timeline; the GOP cache (which has a hole now) is forgotten.
TEST (Broadcast, GapSkipsToNextKeyframeAfterWhatIsQueued)
{
  Stream s = MakeStream ("notes-g30.mp4");  // keyframe fragments: #0 and #12
  ASSERT_GT (s.fragments.size (), 13u);
  Broadcaster b;
  b.PushInit (s.init);
  for (size_t i = 0; i < 4; i++)
    b.PushFragment (s.fragments[i]);
  auto id = b.AddViewer ({});
  Drain (b, id);
  b.PushFragment (s.fragments[4]);
  b.PushFragment (s.fragments[5]);
  b.Gap (3);  // #6, #7, #8 never came
  EXPECT_EQ (b.gop_size (), 0u);
  for (size_t i = 9; i <= 12; i++)
    b.PushFragment (s.fragments[i]);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 4u);
  const InitInfo &init = *s.init->init;
  double end5 = FragmentTime (msgs[1], init) + s.fragments[5]->duration_ns / 1e9;
  auto skip = ParseFlatJsonObject (msgs[2].text ());
  ASSERT_TRUE (skip) << msgs[2].text ();
  EXPECT_EQ ((*skip)["type"].str, "skip");
  EXPECT_EQ ((*skip)["reason"].str, "overload");
  EXPECT_EQ ((*skip)["fragments"].num, 3);
  EXPECT_TRUE (IsKeyframe (msgs[3], init));
  EXPECT_NEAR (FragmentTime (msgs[3], init), end5, 1e-3);
  EXPECT_EQ (b.gop_size (), 1u);
  EXPECT_EQ (b.Stats (id)->non_keyframe_starts, 0u);
  EXPECT_EQ (b.Stats (id)->fragments_dropped, 3u);
  // A viewer that joins now starts on the keyframe after the gap.
  auto late = b.AddViewer ({});
  std::vector<Message> lm = Drain (b, late);
  ASSERT_EQ (lm.size (), 4u);
  EXPECT_TRUE (IsKeyframe (lm[3], init));
}

TEST (Broadcast, RebaseOffKeepsOriginalTimes)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  for (size_t i = 0; i < 14; i++)
    b.PushFragment (s.fragments[i]);
  Broadcaster::ViewerOptions o;
  o.rebase = false;
  auto id = b.AddViewer (o);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 5u);
  EXPECT_NEAR (FragmentTime (msgs[3], *s.init->init), s.fragments[12]->decode_time_ns / 1e9, 1e-3);
  EXPECT_EQ (msgs[3].payload.size (), s.fragments[12]->payload.size);
  EXPECT_EQ (0, memcmp (msgs[3].payload.data (), s.fragments[12]->payload.data,
                        s.fragments[12]->payload.size));
}

TEST (Broadcast, NextKeyframeWaits)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b (BroadcastConfig{SyncMethod::kNextKeyframe});
  b.PushInit (s.init);
  for (size_t i = 0; i < 5; i++)
    b.PushFragment (s.fragments[i]);
  auto id = b.AddViewer ({});
  EXPECT_EQ (Drain (b, id).size (), 2u);  // stream + init
  for (size_t i = 5; i < 12; i++)
    b.PushFragment (s.fragments[i]);
  EXPECT_EQ (Drain (b, id).size (), 0u);
  b.PushFragment (s.fragments[12]);
  b.PushFragment (s.fragments[13]);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 2u);
  EXPECT_TRUE (IsKeyframe (msgs[0], *s.init->init));
  EXPECT_NEAR (FragmentTime (msgs[0], *s.init->init), 0, 1e-3);
}

TEST (Broadcast, ViewerBeforeInitStartsOnFirstKeyframe)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  auto id = b.AddViewer ({});
  EXPECT_EQ (Drain (b, id).size (), 0u);
  b.PushInit (s.init);
  for (size_t i = 0; i < 3; i++)
    b.PushFragment (s.fragments[i]);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 5u);
  EXPECT_TRUE (IsKeyframe (msgs[2], *s.init->init));
}

TEST (Broadcast, StalledViewerStaysWithinBoundAndOthersGetEverything)
{
  Stream s = MakeStream ("notes-g30.mp4");
  BroadcastConfig c;
  c.max_backlog_bytes = 30000;
  Broadcaster b (c);
  b.PushInit (s.init);
  auto fast = b.AddViewer ({});
  auto slow = b.AddViewer ({});
  std::vector<Message> fast_msgs = Drain (b, fast);
  // The slow viewer takes the first 100 bytes and then stalls mid-message.
  b.Consumed (slow, 100);
  uint64_t max_backlog = 0;
  int64_t shift = 0, total = 0;
  for (const auto &f : s.fragments)
    total += f->duration_ns;
  for (int r = 0; r < 10; r++) {
    for (const auto &f : s.fragments) {
      auto copy = std::make_shared<StreamItem> (*f);
      copy->decode_time_ns += shift;
      copy->end_ns += shift;
      b.PushFragment (copy);
      auto m = Drain (b, fast);
      fast_msgs.insert (fast_msgs.end (), m.begin (), m.end ());
      max_backlog = std::max (max_backlog, b.BacklogBytes (slow));
    }
    shift += total;
  }
  EXPECT_EQ (b.Stats (fast)->fragments_sent, 10 * s.fragments.size ());
  EXPECT_EQ (b.Stats (fast)->fragments_dropped, 0u);
  // Bound + one message (the one being written when the bound was hit).
  size_t biggest = 0;
  for (const auto &f : s.fragments)
    biggest = std::max (biggest, f->payload.size);
  EXPECT_LE (max_backlog, c.max_backlog_bytes + biggest + 64);
  EXPECT_GT (b.Stats (slow)->skips, 0u);
  EXPECT_GT (b.Stats (slow)->fragments_dropped, 0u);
  // The slow viewer recovers: it finishes its partial message, gets a skip notice, and
  // goes on at the next keyframe fragment.
  b.Consumed (slow, b.Queue (slow)->front ().size () - b.FrontOffset (slow));
  std::vector<Message> rest = Drain (b, slow);
  for (const auto &f : s.fragments) {
    auto copy = std::make_shared<StreamItem> (*f);
    copy->decode_time_ns += shift;
    copy->end_ns += shift;
    b.PushFragment (copy);
    auto m = Drain (b, slow);
    rest.insert (rest.end (), m.begin (), m.end ());
  }
  bool saw_fragment = false;
  for (const Message &m : rest) {
    if (m.opcode == 2 && !saw_fragment && m.payload.size () > 8 &&
        LoadU32 (m.payload.data () + 4) == FourCC ("moof")) {
      saw_fragment = true;
      EXPECT_TRUE (IsKeyframe (m, *s.init->init));
    }
  }
  EXPECT_TRUE (saw_fragment);
  EXPECT_EQ (b.Stats (slow)->non_keyframe_starts, 0u);
}

TEST (Broadcast, RebasedTimelineHasNoGapAfterASkip)
{
  Stream s = MakeStream ("notes-g30.mp4");
  BroadcastConfig c;
  c.max_backlog_bytes = 20000;
  Broadcaster b (c);
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  std::vector<Message> got = Drain (b, id);
  // Deliver 0..3, stall through a backlog overflow, then drain.
  for (size_t i = 0; i < 4; i++)
    b.PushFragment (s.fragments[i]);
  auto a = Drain (b, id);
  for (size_t i = 4; i < s.fragments.size (); i++)
    b.PushFragment (s.fragments[i]);
  auto c2 = Drain (b, id);
  ASSERT_GT (b.Stats (id)->skips, 0u);
  std::vector<Message> frags;
  for (auto *v : {&a, &c2})
    for (const Message &m : *v)
      if (m.opcode == 2)
        frags.push_back (m);
  // Times are contiguous: each fragment starts where the previous one ended.
  double t = 0;
  for (size_t i = 0; i < frags.size (); i++) {
    double ft = FragmentTime (frags[i], *s.init->init);
    EXPECT_NEAR (ft, t, 2e-3) << "fragment " << i;
    // Duration: find the source fragment by payload size + mdat bytes.
    for (const auto &f : s.fragments)
      if (f->payload.size == frags[i].payload.size () &&
          !memcmp (f->payload.data + f->moof_size, frags[i].payload.data () + f->moof_size,
                   f->payload.size - f->moof_size))
        t = ft + f->duration_ns / 1e9;
  }
}

TEST (Broadcast, DisconnectPolicyClosesWith1008)
{
  Stream s = MakeStream ("notes-g30.mp4");
  BroadcastConfig c;
  c.max_backlog_bytes = 20000;
  c.recover = RecoverPolicy::kDisconnect;
  Broadcaster b (c);
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  b.TakeEvents ();
  for (const auto &f : s.fragments)
    b.PushFragment (f);
  bool closed = false;
  for (const auto &e : b.TakeEvents ())
    if (e.kind == Broadcaster::Event::kClose) {
      closed = true;
      EXPECT_EQ (e.close_code, 1008);
    }
  ASSERT_TRUE (closed);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_FALSE (msgs.empty ());
  EXPECT_EQ (msgs.back ().opcode, 8);
  EXPECT_EQ ((msgs.back ().payload[0] << 8) | msgs.back ().payload[1], 1008);
  EXPECT_LE (b.BacklogBytes (id), 0u);
}

TEST (Broadcast, NewInitReachesEveryViewerThenKeyframe)
{
  Stream a = MakeStream ("notes-g30.mp4", 1), v = MakeStream ("vp9.mp4", 2);
  Broadcaster b;
  b.PushInit (a.init);
  auto id = b.AddViewer ({});
  for (size_t i = 0; i < 5; i++)
    b.PushFragment (a.fragments[i]);
  Drain (b, id);
  b.PushInit (v.init);
  for (const auto &f : v.fragments)
    b.PushFragment (f);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_GE (msgs.size (), 3u);
  EXPECT_EQ (ParseFlatJsonObject (msgs[0].text ())->at ("type").str, "stream");
  EXPECT_EQ (msgs[1].payload.size (), v.init->payload.size);
  EXPECT_TRUE (IsKeyframe (msgs[2], *v.init->init));
  // Rebased: the new stream continues the viewer's timeline.
  double end = 0;
  for (size_t i = 0; i < 5; i++)
    end += a.fragments[i]->duration_ns / 1e9;
  EXPECT_NEAR (FragmentTime (msgs[2], *v.init->init), end, 2e-3);
}

TEST (Broadcast, PauseAndResume)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  for (size_t i = 0; i < 3; i++)
    b.PushFragment (s.fragments[i]);
  Drain (b, id);
  b.Pause (id);
  for (size_t i = 3; i < 14; i++)
    b.PushFragment (s.fragments[i]);
  EXPECT_EQ (Drain (b, id).size (), 0u);
  b.Resume (id);
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 3u);  // start + fragments 12, 13
  EXPECT_EQ (ParseFlatJsonObject (msgs[0].text ())->at ("type").str, "start");
  EXPECT_TRUE (IsKeyframe (msgs[1], *s.init->init));
  EXPECT_EQ (b.Stats (id)->non_keyframe_starts, 0u);
}

TEST (Broadcast, RawFramingIsAPlainMp4ByteStream)
{
  Stream s = MakeStream ("empty-moov.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  Broadcaster::ViewerOptions o;
  o.framing = Framing::kRaw;
  o.rebase = false;
  auto id = b.AddViewer (o);
  for (const auto &f : s.fragments)
    b.PushFragment (f);
  b.PushEos ();
  std::vector<uint8_t> bytes;
  const auto *q = b.Queue (id);
  bool closed = false;
  while (!q->empty ()) {
    const OutMessage &m = q->front ();
    bytes.insert (bytes.end (), m.head->begin (), m.head->end ());
    bytes.insert (bytes.end (), m.body.data + m.body_offset,
                  m.body.data + m.body_offset + m.body_size);
    closed |= b.Consumed (id, m.size ());
  }
  EXPECT_TRUE (closed);
  // The source file, less ffmpeg's trailing mfra (dropped by the assembler).
  std::vector<uint8_t> src = ReadFixture ("empty-moov.mp4");
  ASSERT_LT (bytes.size (), src.size ());
  EXPECT_EQ (LoadU32 (src.data () + bytes.size () + 4), FourCC ("mfra"));
  src.resize (bytes.size ());
  EXPECT_EQ (bytes, src);
}

TEST (Broadcast, EosSendsEosThenNormalClose)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  b.PushFragment (s.fragments[0]);
  b.PushEos ();
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 5u);
  EXPECT_EQ (msgs[2].opcode, 2);  // the fragment is not dropped
  EXPECT_EQ (msgs[3].text (), "{\"type\":\"eos\"}");
  EXPECT_EQ (msgs[4].opcode, 8);
  EXPECT_EQ ((msgs[4].payload[0] << 8) | msgs[4].payload[1], 1000);
}

TEST (Broadcast, ControlFramesDoNotSplitAMessage)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  b.Consumed (id, 3);  // in the middle of the stream JSON
  const uint8_t ping[] = {'h', 'i'};
  b.QueueControl (id, 0xA, ping, 2);
  const auto *q = b.Queue (id);
  ASSERT_GE (q->size (), 2u);
  EXPECT_EQ ((*(*q)[1].head)[0], 0x8A);  // right after the partly written message
}

// RFC 6455 §5.5.3: a viewer that pings and never reads has at most one pong waiting (the
// newest ping's payload), and what it costs is counted in its backlog: 100,000 pings leave the
// queue as one ping left it.
TEST (Broadcast, PingFloodKeepsOnePendingPong)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  auto id = b.AddViewer ({});
  b.Consumed (id, 3);  // in the middle of the stream JSON: it must finish as is
  const size_t queued = b.Queue (id)->size ();
  uint64_t after_one = 0;
  for (uint32_t i = 0; i < 100000; i++) {
    const uint8_t ping[4] = {uint8_t (i >> 24), uint8_t (i >> 16), uint8_t (i >> 8), uint8_t (i)};
    b.QueueControl (id, 0xA, ping, 4);
    if (i == 0)
      after_one = b.BacklogBytes (id);
    ASSERT_EQ (b.BacklogBytes (id), after_one) << "after " << i + 1 << " pings";
  }
  const auto *q = b.Queue (id);
  ASSERT_EQ (q->size (), queued + 1);
  size_t pongs = 0;
  for (const OutMessage &m : *q)
    pongs += (*m.head)[0] == 0x8A;
  EXPECT_EQ (pongs, 1u);
  const std::vector<uint8_t> &pong = *(*q)[1].head;  // right after the partly written message
  EXPECT_EQ (pong, (std::vector<uint8_t>{0x8A, 4, 0x00, 0x01, 0x86, 0x9F}));  // 99999
  // Its memory counts, not only its 6 wire bytes; all of it goes once written.
  EXPECT_GT ((*q)[1].cost (), 6 + sizeof (OutMessage));
  uint64_t wire = 0;
  for (const OutMessage &m : *q)
    wire += m.size ();
  b.Consumed (id, wire - 3);
  EXPECT_EQ (b.BacklogBytes (id), 0u);
  EXPECT_TRUE (b.Queue (id)->empty ());
}

// A pong partly written finishes with its own payload; the next ping gets a new pong after it,
// whose payload later pings replace.
TEST (Broadcast, PartlyWrittenPongFinishesAsIs)
{
  Broadcaster b;
  auto id = b.AddViewer ({});  // no stream yet: control frames alone
  const uint8_t a[] = {'a'}, p2[] = {'b'}, p3[] = {'c'};
  b.QueueControl (id, 0xA, a, 1);
  b.Consumed (id, 1);  // one byte of the pong "a" is out
  b.QueueControl (id, 0xA, p2, 1);
  b.QueueControl (id, 0xA, p3, 1);
  b.QueueControl (id, 0x9, p2, 1);  // a ping of ours is another opcode: its own slot
  b.QueueControl (id, 0x9, p3, 1);
  const auto *q = b.Queue (id);
  ASSERT_EQ (q->size (), 3u);
  EXPECT_EQ (*(*q)[0].head, (std::vector<uint8_t>{0x8A, 1, 'a'}));
  size_t pongs = 0, pings = 0;
  for (size_t i = 1; i < q->size (); i++) {
    const std::vector<uint8_t> &h = *(*q)[i].head;
    if (h[0] == 0x8A) {
      pongs++;
      EXPECT_EQ (h, (std::vector<uint8_t>{0x8A, 1, 'c'}));
    } else {
      pings++;
      EXPECT_EQ (h, (std::vector<uint8_t>{0x89, 1, 'c'}));
    }
  }
  EXPECT_EQ (pongs, 1u);
  EXPECT_EQ (pings, 1u);
  b.Consumed (id, 2 + 3 + 3);
  EXPECT_TRUE (q->empty ());
  EXPECT_EQ (b.BacklogBytes (id), 0u);
}

// Control frames are bounded by max_backlog_bytes like fragments, with no stream flowing too:
// a pong that would take a viewer past it closes it (recover disconnect, or no stream) or
// skips what it has queued (recover keyframe).
TEST (Broadcast, ControlFramesAreBoundedByTheBacklog)
{
  Stream s = MakeStream ("notes-g30.mp4");
  const uint8_t ping[] = {'p'};
  {
    BroadcastConfig c;
    c.recover = RecoverPolicy::kDisconnect;
    Broadcaster b (c);
    b.PushInit (s.init);
    auto id = b.AddViewer ({});
    c.max_backlog_bytes = b.BacklogBytes (id) + 16;  // no room for a pong's memory
    b.set_config (c);
    b.TakeEvents ();
    b.QueueControl (id, 0xA, ping, 1);
    auto ev = b.TakeEvents ();
    ASSERT_FALSE (ev.empty ());
    bool closed = false;
    for (auto &e : ev)
      if (e.kind == Broadcaster::Event::kClose) {
        closed = true;
        EXPECT_EQ (e.close_code, 1008);
        EXPECT_EQ (e.reason, "too slow: backlog limit reached");
      }
    EXPECT_TRUE (closed);
    EXPECT_EQ (b.Stats (id)->skips, 1u);
  }
  {
    Broadcaster b;  // recover keyframe: the queue goes, the pong is still answered
    b.PushInit (s.init);
    auto id = b.AddViewer ({});
    for (size_t i = 1; i < s.fragments.size (); i++)
      b.PushFragment (s.fragments[i]);
    BroadcastConfig c;
    c.max_backlog_bytes = b.BacklogBytes (id) + 16;
    b.set_config (c);
    b.QueueControl (id, 0xA, ping, 1);
    EXPECT_EQ (b.Stats (id)->skips, 1u);
    EXPECT_LE (b.BacklogBytes (id), 1024u);
    size_t pongs = 0;
    for (const OutMessage &m : *b.Queue (id))
      pongs += (*m.head)[0] == 0x8A;
    EXPECT_EQ (pongs, 1u);
  }
}

TEST (Json, FlatObjects)
{
  auto v = ParseFlatJsonObject (
      R"({"type":"report","current_time":12.5,"buffered_end":13,"ok":true,"x":null,"n":{"a":[1,2]}})");
  ASSERT_TRUE (v);
  EXPECT_EQ ((*v)["type"].str, "report");
  EXPECT_DOUBLE_EQ ((*v)["current_time"].num, 12.5);
  EXPECT_DOUBLE_EQ ((*v)["buffered_end"].num, 13);
  EXPECT_TRUE ((*v)["ok"].boolean);
  EXPECT_EQ ((*v)["x"].kind, JsonValue::kNull);
  EXPECT_EQ ((*v)["n"].kind, JsonValue::kOther);
  EXPECT_FALSE (ParseFlatJsonObject ("{\"a\":"));
  EXPECT_FALSE (ParseFlatJsonObject ("[1,2]"));
  EXPECT_FALSE (ParseFlatJsonObject ("{\"a\":1} trailing"));
  EXPECT_FALSE (ParseFlatJsonObject (std::string (100, '{')));
  EXPECT_EQ (JsonString ("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

TEST (Broadcast, ViewersWithTheSameTimelineShareOneRewrittenMoof)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Broadcaster b;
  b.PushInit (s.init);
  b.PushFragment (s.fragments[0]);
  auto a = b.AddViewer ({});  // both start on fragment 0: same offset
  auto c = b.AddViewer ({});
  Broadcaster::ViewerOptions raw;
  raw.rebase = false;
  auto r = b.AddViewer (raw);
  Drain (b, a);
  Drain (b, c);
  Drain (b, r);
  b.PushFragment (s.fragments[1]);
  const OutMessage &ma = b.Queue (a)->front (), &mc = b.Queue (c)->front (),
                   &mr = b.Queue (r)->front ();
  EXPECT_EQ (ma.head.get (), mc.head.get ());  // shared, not copied
  EXPECT_NE (ma.head.get (), mr.head.get ());  // not rebased: another head (frame header only)
  EXPECT_GT (ma.head->size (), mr.head->size ());
  EXPECT_EQ (Decode (ma).payload, Decode (mc).payload);
}

namespace {

// Largest difference, over the fragments and tracks, between a track's tfdt and the end of
// its previous fragment (s), in what a viewer got.
double
LargestTrackGap (const std::vector<Message> &msgs, const InitInfo &init)
{
  std::map<uint32_t, double> end;
  double worst = 0;
  for (const Message &m : msgs) {
    if (m.opcode != 2)
      continue;
    BoxIterator it (m.payload.data (), m.payload.size ());
    while (it.Next ()) {
      if (it.type () != FourCC ("moof"))
        continue;
      std::string error;
      auto info = ParseMoof (it.box (), it.box_size (), init, &error);
      EXPECT_TRUE (info) << error;
      for (const TrafTiming &t : info->trafs) {
        if (!t.samples)
          continue;
        double start = double (t.decode_time) / t.timescale;
        if (end.count (t.track_id))
          worst = std::max (worst, std::fabs (start - end[t.track_id]));
        end[t.track_id] = start + double (t.duration) / t.timescale;
      }
    }
  }
  return worst;
}

// A copy of a fragment item that arrived at `unix_us` (what the glue stamps), optionally with
// `prefix` (e.g. an encoder's prft) in front of its moof.
ItemPtr
Arrived (const ItemPtr &f, const InitInfo &init, int64_t unix_us, const std::vector<uint8_t> &prefix,
         std::vector<std::shared_ptr<std::vector<uint8_t>>> *keep)
{
  auto item = std::make_shared<StreamItem> (*f);
  item->heads.clear ();
  item->arrival_unix_us = unix_us;
  if (!prefix.empty ()) {
    auto bytes = std::make_shared<std::vector<uint8_t>> (prefix);
    bytes->insert (bytes->end (), f->payload.data, f->payload.data + f->payload.size);
    keep->push_back (bytes);
    item->payload = {bytes->data (), bytes->size (), bytes};
    SetFragmentInfo (item.get (), *f->info, init, prefix.size (), f->moof_size);
  }
  return item;
}

uint64_t
U64 (const uint8_t *p)
{
  return (uint64_t (LoadU32 (p)) << 32) | LoadU32 (p + 4);
}

// The timing traf's tfdt (ticks) and timescale of the moof in a message.
std::pair<uint64_t, uint32_t>
TimingTfdt (const Message &m, const InitInfo &init, uint32_t *track_id)
{
  BoxIterator it (m.payload.data (), m.payload.size ());
  while (it.Next ())
    if (it.type () == FourCC ("moof")) {
      std::string error;
      auto info = ParseMoof (it.box (), it.box_size (), init, &error);
      const TrafTiming &tt = info->trafs[size_t (info->timing)];
      *track_id = tt.track_id;
      return {tt.decode_time, tt.timescale};
    }
  return {0, 0};
}

}  // namespace

TEST (Broadcast, RebasedTimelineStaysContinuousAcrossTimestampJumps)
{
  std::vector<uint8_t> data = ReadFixture ("every-frame.mp4");
  fmp4ws::test::ShiftTfdt (&data, 10, 1000, 60.0);   // 60 s forward at moof 10
  fmp4ws::test::ShiftTfdt (&data, 20, 1000, -30.0);  // 30 s back at moof 20
  Stream s = fmp4ws::test::MakeStreamFromBytes (data);
  int disconts = 0;
  for (const ItemPtr &f : s.fragments)
    disconts += f->discont;
  ASSERT_EQ (disconts, 2);
  Broadcaster b;
  b.PushInit (s.init);
  auto rebased = b.AddViewer ({});
  Broadcaster::ViewerOptions raw_options;
  raw_options.rebase = false;
  auto raw = b.AddViewer (raw_options);
  // /stream.mp4: the same rebasing, no WebSocket framing.
  Broadcaster::ViewerOptions progressive_options;
  progressive_options.framing = Framing::kRaw;
  auto progressive = b.AddViewer (progressive_options);
  std::vector<uint8_t> progressive_bytes;  // what /stream.mp4 would write
  size_t progressive_fragments = 0;
  auto drain_raw_framing = [&] (std::vector<Message> *) {
    const auto *q = b.Queue (progressive);
    while (q && !q->empty ()) {
      const OutMessage &m = q->front ();
      progressive_fragments += m.is_fragment;
      if (m.head)
        progressive_bytes.insert (progressive_bytes.end (), m.head->begin (), m.head->end ());
      progressive_bytes.insert (progressive_bytes.end (), m.body.data + m.body_offset,
                                m.body.data + m.body_offset + m.body_size);
      b.Consumed (progressive, m.size ());
    }
  };

  std::vector<Message> got = Drain (b, rebased), got_raw = Drain (b, raw), got_progressive;
  drain_raw_framing (&got_progressive);
  for (const ItemPtr &f : s.fragments) {
    b.PushFragment (f);
    for (const Message &m : Drain (b, rebased))
      got.push_back (m);
    for (const Message &m : Drain (b, raw))
      got_raw.push_back (m);
    drain_raw_framing (&got_progressive);
  }
  // Each track goes on where it ended (ffmpeg's audio has gaps of about a frame of its own);
  // without rebasing the jumps are there.
  EXPECT_LT (LargestTrackGap (got, *s.init->init), 0.1);
  // The progressive stream read back as a file: one init, every fragment, continuous.
  StreamReader reader;
  std::vector<Segment> segs = reader.Push (progressive_bytes.data (), progressive_bytes.size ());
  std::vector<Message> as_messages;
  for (const Segment &g : segs) {
    EXPECT_NE (g.kind, Segment::kWarning) << g.message;
    EXPECT_FALSE (g.timestamp_jump);
    if (g.kind == Segment::kFragment)
      as_messages.push_back ({2, g.bytes});
  }
  got_progressive = as_messages;
  EXPECT_LT (LargestTrackGap (got_progressive, *s.init->init), 0.1);
  EXPECT_GT (LargestTrackGap (got_raw, *s.init->init), 29.0);
  // /stream.mp4 got the fragments the WebSocket viewer got (all from the first keyframe
  // fragment on), and read back as a file they are all there.
  size_t ws_fragments = 0;
  for (const Message &m : got)
    ws_fragments += m.opcode == 2;
  ws_fragments--;  // the init segment
  EXPECT_GE (ws_fragments, s.fragments.size () - 1);
  EXPECT_EQ (progressive_fragments, ws_fragments);
  EXPECT_EQ (got_progressive.size (), ws_fragments);
}

TEST (Prft, NtpTimestamps)
{
  EXPECT_EQ (NtpFromUnixMicros (0), uint64_t (kNtpUnixOffset) << 32);
  EXPECT_EQ (NtpFromUnixMicros (1'500'000), ((uint64_t (kNtpUnixOffset) + 1) << 32) | 0x80000000u);
  EXPECT_EQ (NtpFromUnixMicros (-500'000), ((uint64_t (kNtpUnixOffset) - 1) << 32) | 0x80000000u);
}

// The sink gives fragments without a prft one, per viewer (ISO/IEC 14496-12 §8.16.5): in front
// of the moof, flags 4, the timing track, the viewer's rebased tfdt, the arrival time less the
// track fragment's duration.
TEST (Prft, AddedInFrontOfTheMoofWithTheViewersMediaTime)
{
  Stream s = MakeStream ("notes-g30.mp4");  // keyframe fragments: #0 and #12
  const InitInfo &init = *s.init->init;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> keep;
  const int64_t t0 = 1'764'500'000'000'000;  // 2025-11-30, µs
  Broadcaster b;
  b.PushInit (s.init);
  std::vector<ItemPtr> items;
  for (size_t i = 0; i < 16; i++) {
    items.push_back (Arrived (s.fragments[i], init, t0 + int64_t (i) * 100'000, {}, &keep));
    b.PushFragment (items.back ());
  }
  auto id = b.AddViewer ({});
  Broadcaster::ViewerOptions raw_timeline;
  raw_timeline.rebase = false;
  auto id2 = b.AddViewer (raw_timeline);
  std::vector<Message> msgs = Drain (b, id), msgs2 = Drain (b, id2);
  ASSERT_EQ (msgs.size (), 3u + 4u);
  ASSERT_EQ (msgs2.size (), 3u + 4u);
  for (size_t k = 0; k < 4; k++) {
    const ItemPtr &f = items[12 + k];
    for (const Message *m : {&msgs[3 + k], &msgs2[3 + k]}) {
      const bool rebased = m == &msgs[3 + k];
      ASSERT_EQ (m->payload.size (), f->payload.size + kPrftSize);
      const uint8_t *p = m->payload.data ();
      EXPECT_EQ (LoadU32 (p), kPrftSize);
      EXPECT_EQ (LoadU32 (p + 4), FourCC ("prft"));
      EXPECT_EQ (LoadU32 (p + 8), (1u << 24) | kPrftFlagsServer);  // version 1, flags 4
      uint32_t track = 0;
      auto [tfdt, timescale] = TimingTfdt (*m, init, &track);
      EXPECT_EQ (LoadU32 (p + 12), track);
      EXPECT_EQ (U64 (p + 24), tfdt) << "media_time = the tfdt this viewer gets";
      const TrafTiming &tt = f->info->trafs[size_t (f->info->timing)];
      EXPECT_EQ (tfdt == tt.decode_time, !rebased);
      int64_t duration_us = int64_t (tt.duration * 1000000 / tt.timescale);
      EXPECT_EQ (U64 (p + 16), NtpFromUnixMicros (f->arrival_unix_us - duration_us));
      // then the moof and mdat, the mdat untouched
      BoxIterator it (p + kPrftSize, m->payload.size () - kPrftSize);
      ASSERT_TRUE (it.Next ());
      EXPECT_EQ (it.type (), FourCC ("moof"));
      EXPECT_EQ (0, memcmp (p + kPrftSize + f->moof_size, f->payload.data + f->moof_size,
                            f->payload.size - f->moof_size));
      (void) timescale;
    }
  }
  // off: the fragments as they came (not rebased: byte for byte)
  BroadcastConfig c;
  c.add_prft = false;
  Broadcaster off (c);
  off.PushInit (s.init);
  for (size_t i = 0; i < 16; i++)
    off.PushFragment (Arrived (s.fragments[i], init, t0, {}, &keep));
  auto id3 = off.AddViewer (raw_timeline);
  std::vector<Message> m3 = Drain (off, id3);
  ASSERT_EQ (m3.size (), 7u);
  EXPECT_EQ (m3[3].payload.size (), s.fragments[12]->payload.size);
  EXPECT_EQ (0, memcmp (m3[3].payload.data (), s.fragments[12]->payload.data, m3[3].payload.size ()));
}

// An encoder's prft (ffmpeg -write_prft) is kept, not doubled; its media_time follows the
// viewer's rebased timeline.
TEST (Prft, EncodersPrftKeptAndRebased)
{
  Stream s = MakeStream ("notes-g30.mp4");
  const InitInfo &init = *s.init->init;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> keep;
  Broadcaster b;
  b.PushInit (s.init);
  std::vector<ItemPtr> items;
  for (size_t i = 0; i < 16; i++) {
    const ItemPtr &f = s.fragments[i];
    const TrafTiming &tt = f->info->trafs[size_t (f->info->timing)];
    std::vector<uint8_t> prft (kPrftSize);
    ASSERT_TRUE (WritePrft (prft.data (), f->payload.data, f->moof_size, *f->info, 1'000'000'000'000'000, 0));
    EXPECT_EQ (U64 (prft.data () + 24), tt.decode_time);
    items.push_back (Arrived (f, init, 2'000'000'000'000'000, prft, &keep));
    EXPECT_TRUE (items.back ()->has_prft);
    b.PushFragment (items.back ());
  }
  auto id = b.AddViewer ({});
  std::vector<Message> msgs = Drain (b, id);
  ASSERT_EQ (msgs.size (), 7u);
  for (size_t k = 0; k < 4; k++) {
    const Message &m = msgs[3 + k];
    ASSERT_EQ (m.payload.size (), items[12 + k]->payload.size) << "no second prft";
    const uint8_t *p = m.payload.data ();
    EXPECT_EQ (LoadU32 (p + 8), 1u << 24) << "the encoder's flags (0) kept";
    EXPECT_EQ (U64 (p + 16), NtpFromUnixMicros (1'000'000'000'000'000 -
                                                int64_t (s.fragments[12 + k]->info->trafs[0].duration * 1000000 /
                                                         s.fragments[12 + k]->info->trafs[0].timescale)))
        << "the encoder's time kept";
    uint32_t track = 0;
    auto [tfdt, timescale] = TimingTfdt (m, init, &track);
    EXPECT_EQ (U64 (p + 24), tfdt) << "media_time rebased like the tfdt";
    EXPECT_NE (tfdt, s.fragments[12 + k]->info->trafs[size_t (s.fragments[12 + k]->info->timing)].decode_time);
    (void) timescale;
  }
}

// A viewer that must wait for a keyframe raises kNeedKeyframe (the sink then asks upstream for
// one, force-key-unit); one that gets the cached GOP does not.
TEST (Broadcast, WaitingForAKeyframeIsAnEvent)
{
  Stream s = MakeStream ("notes-g30.mp4");  // keyframe fragments: #0 and #12
  auto need = [] (Broadcaster &b) {
    bool any = false;
    for (const Broadcaster::Event &e : b.TakeEvents ())
      any |= e.kind == Broadcaster::Event::kNeedKeyframe;
    return any;
  };
  Broadcaster latest;
  latest.PushInit (s.init);
  for (size_t i = 0; i < 14; i++)
    latest.PushFragment (s.fragments[i]);
  latest.TakeEvents ();
  latest.AddViewer ({});
  EXPECT_FALSE (need (latest)) << "the cached GOP: no wait";
  Broadcaster next (BroadcastConfig{SyncMethod::kNextKeyframe});
  next.PushInit (s.init);
  for (size_t i = 0; i < 14; i++)
    next.PushFragment (s.fragments[i]);
  next.TakeEvents ();
  next.AddViewer ({});
  EXPECT_TRUE (need (next)) << "next-keyframe: waits";
}
