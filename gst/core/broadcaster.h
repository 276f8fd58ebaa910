// The broadcast model of websocketsink: one shared payload per fragment, one outgoing
// queue per viewer, start policies (latest / next keyframe), a bounded GOP cache,
// bounded per-viewer backlogs with a recover policy, per-viewer timeline rebasing,
// pause/resume. Pure logic, single-threaded (the sink's server thread owns it); the
// glue writes each viewer's queue to its socket and reports what was written.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <unordered_map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fragment.h"
#include "init_segment.h"

namespace fmp4ws::core {

// A run of bytes of a payload.
struct Span
{
  const uint8_t *data;
  size_t size;
};

// A media payload shared by every viewer (the glue keeps a GstBuffer mapped behind it): one
// run of bytes (`data`, `size`), or several (`spans`, e.g. a fragment whose rewritten moof and
// mdat are two GstMemory: written with one writev, never copied into one block).
struct Payload
{
  const uint8_t *data = nullptr;  // the bytes when in one run; nullptr with `spans`
  size_t size = 0;                // all the bytes
  std::shared_ptr<void> owner;    // keeps the bytes alive
  // Set: the payload is these runs one after the other (their sizes sum to `size`).
  std::shared_ptr<const std::vector<Span>> spans;

  // Calls f(const uint8_t *, size_t) for each run of bytes [offset, offset + n), in order.
  template <typename F>
  void ForEach (size_t offset, size_t n, F &&f) const
  {
    if (!spans) {
      if (n)
        f (data + offset, n);
      return;
    }
    for (const Span &s : *spans) {
      if (n == 0)
        break;
      if (offset >= s.size) {
        offset -= s.size;
        continue;
      }
      size_t take = std::min (n, s.size - offset);
      f (s.data + offset, take);
      n -= take;
      offset = 0;
    }
  }
  // Appends bytes [offset, offset + n) to *out (offset + n <= size).
  void AppendTo (size_t offset, size_t n, std::vector<uint8_t> *out) const
  {
    ForEach (offset, n, [out] (const uint8_t *p, size_t k) { out->insert (out->end (), p, p + k); });
  }
};

struct StreamItem
{
  enum Kind { kInit, kFragment } kind = kFragment;
  uint32_t generation = 0;
  Payload payload;
  // kInit
  std::shared_ptr<const InitInfo> init;
  std::string stream_json;  // the `stream` message for this init
  // kFragment
  bool keyframe = false;
  // A timestamp discontinuity (the buffer's DISCONT: a tfdt jump, or lost data) starts here:
  // rebased viewers' timelines restart at it, so they stay continuous.
  bool discont = false;
  uint32_t sequence = 0;
  int64_t decode_time_ns = -1;  // earliest track start (ns), -1 if unknown
  int64_t end_ns = -1;          // latest track end (ns)
  int64_t duration_ns = 0;      // media time it adds to a backlog (0 for an audio moof that
                                // runs beside video moofs, as with separate_moof)
  std::optional<FragmentInfo> info;  // moof layout, for rebasing (absent: sent as is)
  size_t moof_offset = 0, moof_size = 0;
  bool has_prft = false;            // a prft precedes the moof (the encoder's: kept as is)
  int64_t arrival_unix_us = -1;     // wall clock (Unix µs) when it reached the sink; -1: unknown
  // Message heads already made for this fragment, by (framing, timeline offset): viewers that
  // started at the same keyframe share one rewritten moof. Only the broadcaster's thread
  // touches it; bounded (kMaxHeads).
  struct Head
  {
    int framing;
    int64_t offset_ns;  // INT64_MIN: not rebased
    std::shared_ptr<const std::vector<uint8_t>> bytes;
    size_t payload_bytes_in_head;  // the moof (and what precedes it) when rewritten
  };
  static constexpr size_t kMaxHeads = 8;
  mutable std::vector<Head> heads;
};
using ItemPtr = std::shared_ptr<const StreamItem>;

// Fills a fragment item's timing and moof layout from its parsed moof.
void SetFragmentInfo (StreamItem *item, const FragmentInfo &info, const InitInfo &init,
                      size_t moof_offset, size_t moof_size);

enum class SyncMethod { kLatestKeyframe, kNextKeyframe };
enum class RecoverPolicy { kKeyframe, kDisconnect };
enum class Framing { kWebSocket, kRaw };

struct BroadcastConfig
{
  SyncMethod sync = SyncMethod::kLatestKeyframe;
  RecoverPolicy recover = RecoverPolicy::kKeyframe;
  uint64_t max_backlog_bytes = 16u << 20;
  int64_t max_backlog_ns = 10'000'000'000;
  uint64_t gop_max_bytes = 32u << 20;
  int64_t gop_max_ns = 15'000'000'000;
  bool rebase = true;
  // Fragments without a prft get one in front of their moof, per viewer: the arrival time
  // (NTP) of the fragment and the viewer's (rebased) media time (ISO/IEC 14496-12 §8.16.5,
  // flags kPrftFlagsServer).
  bool add_prft = true;
};

using Bytes = std::shared_ptr<const std::vector<uint8_t>>;
const Bytes &EmptyBytes ();

// One message to write: `head` (a frame header, maybe a rewritten moof or JSON; shared by
// the viewers whose bytes are the same) then `body` bytes of a shared payload.
struct OutMessage
{
  Bytes head = EmptyBytes ();
  Payload body;
  size_t body_offset = 0, body_size = 0;
  int64_t duration_ns = 0;   // media time this message carries (fragments)
  bool is_fragment = false;
  bool is_close = false;     // a close frame: the connection ends once it is written
  // The opcode of a ping (0x9) or pong (0xA) queued by QueueControl, 0 for anything else.
  uint8_t control = 0;
  // Heap memory the message holds beyond its wire bytes (the queue entry, the head's
  // allocation); counted in the viewer's backlog for control frames, whose wire bytes are
  // small next to it.
  size_t overhead = 0;
  size_t size () const { return head->size () + body_size; }  // wire bytes
  size_t cost () const { return size () + overhead; }        // what the backlog counts
};

struct ViewerStats
{
  uint64_t bytes_sent = 0;
  uint64_t fragments_sent = 0;      // queued and written whole
  uint64_t fragments_dropped = 0;   // skipped by the recover policy or while paused
  uint64_t skips = 0;               // backlog overflows
  uint64_t non_keyframe_starts = 0; // must stay 0
  double latency = -1;              // from the viewer's reports (buffered_end - current_time)
  double current_time = -1;
  uint64_t stalls = 0;
  double wall_clock_latency = -1;   // from the reports: capture/arrival to screen (s), -1: none
  std::string wall_clock_source;    // "encoder" or "server" (whose prft), empty: none
};

class Broadcaster
{
public:
  using ViewerId = uint64_t;

  struct ViewerOptions
  {
    Framing framing = Framing::kWebSocket;
    std::optional<SyncMethod> sync;  // per-viewer override
    std::optional<bool> rebase;
  };

  // What happened to a viewer during an operation, for the glue. kNeedKeyframe: the viewer
  // waits for the next keyframe fragment (no cached GOP for it: next-keyframe, a GOP longer
  // than the cache, a backlog or overload skip), the glue may ask upstream for one.
  struct Event
  {
    ViewerId viewer;
    enum Kind { kWritable, kClose, kNeedKeyframe } kind;
    uint16_t close_code = 0;
    std::string reason;
  };

  explicit Broadcaster (BroadcastConfig config = {}) : config_ (config) {}

  void set_config (const BroadcastConfig &c) { config_ = c; }
  const BroadcastConfig &config () const { return config_; }

  // Stream side.
  void PushInit (ItemPtr init);
  void PushFragment (ItemPtr fragment);
  // End of stream: every viewer gets {"type":"eos"} and a close frame (1000).
  void PushEos ();
  // A new stream segment after EOS/flush: forget the GOP cache.
  void ResetStream ();
  // `lost` fragments never reached this broadcaster (its thread fell behind and they were
  // dropped before it): the GOP cache is forgotten and every live viewer skips to the next
  // keyframe fragment, after what it has queued, with a `skip` message (reason "overload").
  void Gap (uint64_t lost);

  // Viewer side.
  ViewerId AddViewer (const ViewerOptions &options);
  // With an id chosen by the caller (unique across several broadcasters); an existing
  // viewer with that id is replaced.
  ViewerId AddViewer (const ViewerOptions &options, ViewerId id);
  void RemoveViewer (ViewerId id);
  bool HasViewer (ViewerId id) const { return viewers_.count (id) != 0; }
  void Pause (ViewerId id);
  void Resume (ViewerId id);
  // Queues a control frame (ping 0x9 or pong 0xA, RFC 6455 §5.5.2/§5.5.3; payload cut to 125
  // bytes) after the message being written, before the rest of the queue. At most one of each
  // opcode waits unstarted: a newer one replaces its payload (§5.5.3 allows answering only the
  // most recent ping); one partly written is finished as is. Its bytes plus its memory
  // (OutMessage::overhead) count in the backlog, bounded by max_backlog_bytes as fragments
  // are: past it the viewer overflows (recover policy: skip, or close 1008 "too slow:
  // backlog limit reached"; a viewer with no stream yet or paused is closed so).
  void QueueControl (ViewerId id, uint8_t opcode, const uint8_t *payload, size_t size);
  // Closes: queues a close frame after what is queued (drain) or instead of it.
  void Close (ViewerId id, uint16_t code, const std::string &reason, bool drain = false);
  void Report (ViewerId id, double current_time, double buffered_end, uint64_t stalls);
  // The viewer's wall-clock latency (s, from a prft: now − the wall-clock time of the frame
  // on screen) and whose prft it came from ("encoder" or "server"). Values outside
  // [-60, 3600] s or another source are ignored (a viewer's clock may be off; not a crash).
  void ReportWallClock (ViewerId id, double latency_s, const std::string &source);

  // The viewer's queue, front first; the glue writes from `front_offset`.
  const std::deque<OutMessage> *Queue (ViewerId id) const;
  size_t FrontOffset (ViewerId id) const;
  // The glue wrote n bytes from the front of the queue (n may be 0 to pass an empty
  // message). Returns true when a close message was completed: close the connection.
  bool Consumed (ViewerId id, size_t n);
  uint64_t BacklogBytes (ViewerId id) const;
  int64_t BacklogNs (ViewerId id) const;
  const ViewerStats *Stats (ViewerId id) const;

  // Events since the last call (viewers that got data to write, viewers to close).
  std::vector<Event> TakeEvents ();

  size_t viewer_count () const { return viewers_.size (); }
  const ItemPtr &current_init () const { return init_; }
  size_t gop_size () const { return gop_.size (); }
  uint64_t gop_bytes () const { return gop_bytes_; }
  uint64_t total_fragments_dropped () const { return dropped_total_; }

  // RFC 6455 server frame header (unmasked) for a payload of `len` bytes.
  static void FrameHeader (uint8_t opcode, uint64_t len, std::vector<uint8_t> *out);

private:
  enum class Phase { kNeedInit, kWaitKeyframe, kLive, kPaused, kClosing };

  struct Viewer
  {
    ViewerOptions options;
    Phase phase = Phase::kNeedInit;
    uint32_t generation = 0;        // generation whose init was queued
    std::deque<OutMessage> queue;
    size_t front_offset = 0;        // bytes of queue.front() already written
    uint64_t backlog_bytes = 0;     // unwritten bytes in queue (+ control frames' overhead)
    int64_t backlog_ns = 0;         // media duration of unwritten fragments
    bool have_offset = false;
    int64_t offset_ns = 0;          // out time = in time - offset
    int64_t timeline_end_ns = 0;    // end of the last fragment queued, in out time
    ViewerStats stats;
  };

  SyncMethod SyncOf (const Viewer &v) const;
  bool RebaseOf (const Viewer &v) const;
  void QueueText (ViewerId id, Viewer &v, const std::string &json);
  void QueueInit (ViewerId id, Viewer &v);
  void QueueFragment (ViewerId id, Viewer &v, const ItemPtr &f);
  void StartViewer (ViewerId id, Viewer &v);  // after init: burst or wait
  void DropQueue (Viewer &v);                 // keeps a partially written front message
  bool OverBound (const Viewer &v, const OutMessage &next) const;
  void Overflow (ViewerId id, Viewer &v);
  void Emit (ViewerId id, Event::Kind kind, uint16_t code = 0, const std::string &reason = {});
  void CacheFragment (const ItemPtr &f);

  BroadcastConfig config_;
  ItemPtr init_;
  std::vector<ItemPtr> gop_;  // from the latest keyframe fragment of the current init
  uint64_t gop_bytes_ = 0;
  int64_t gop_ns_ = 0;         // sum of the cached fragments' durations
  bool gop_discont_ = false;   // a discontinuity inside the cached GOP
  std::unordered_map<ViewerId, Viewer> viewers_;
  ViewerId next_id_ = 1;
  std::vector<Event> events_;
  uint64_t dropped_total_ = 0;
};

}  // namespace fmp4ws::core
