#include "broadcaster.h"

#include <algorithm>
#include <cstdio>

#include "bytes.h"

namespace fmp4ws::core {

namespace {

constexpr uint8_t kOpText = 0x1, kOpBinary = 0x2, kOpClose = 0x8;

std::string
Seconds (int64_t ns)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%.6f", ns / 1e9);
  return buf;
}

}  // namespace

const Bytes &
EmptyBytes ()
{
  static const Bytes empty = std::make_shared<const std::vector<uint8_t>> ();
  return empty;
}

void
SetFragmentInfo (StreamItem *item, const FragmentInfo &info, const InitInfo &init,
                 size_t moof_offset, size_t moof_size)
{
  item->info = info;
  item->moof_offset = moof_offset;
  item->moof_size = moof_size;
  item->sequence = info.sequence;
  item->decode_time_ns = info.start_ns ();
  item->end_ns = info.end_ns ();
  // An audio moof beside video moofs (separate_moof, mp4mux) covers time the video
  // moofs cover too: it adds nothing to a backlog's duration.
  item->duration_ns = (info.has_video || !init.has_video) ? std::max<int64_t> (info.duration_ns (), 0) : 0;
  item->has_prft = false;
  if ((item->payload.data || item->payload.spans) && moof_offset <= item->payload.size) {
    if (item->payload.data) {
      item->has_prft = HasPrft (item->payload.data, moof_offset);
    } else {
      std::vector<uint8_t> before;  // the boxes before the moof (styp, prft...): small
      item->payload.AppendTo (0, moof_offset, &before);
      item->has_prft = HasPrft (before.data (), before.size ());
    }
  }
}

void
Broadcaster::FrameHeader (uint8_t opcode, uint64_t len, std::vector<uint8_t> *out)
{
  out->push_back (uint8_t (0x80 | opcode));  // FIN, no mask (server to client)
  if (len < 126) {
    out->push_back (uint8_t (len));
  } else if (len <= 0xffff) {
    out->push_back (126);
    out->push_back (uint8_t (len >> 8));
    out->push_back (uint8_t (len));
  } else {
    out->push_back (127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out->push_back (uint8_t (len >> shift));
  }
}

SyncMethod
Broadcaster::SyncOf (const Viewer &v) const
{
  return v.options.sync.value_or (config_.sync);
}

bool
Broadcaster::RebaseOf (const Viewer &v) const
{
  return v.options.rebase.value_or (config_.rebase);
}

void
Broadcaster::Emit (ViewerId id, Event::Kind kind, uint16_t code, const std::string &reason)
{
  events_.push_back ({id, kind, code, reason});
}

std::vector<Broadcaster::Event>
Broadcaster::TakeEvents ()
{
  std::vector<Event> e;
  e.swap (events_);
  return e;
}

static void
Enqueue (std::deque<OutMessage> &q, OutMessage m, uint64_t *backlog, int64_t *backlog_ns)
{
  *backlog += m.size ();
  *backlog_ns += m.duration_ns;
  q.push_back (std::move (m));
}

void
Broadcaster::QueueText (ViewerId id, Viewer &v, const std::string &json)
{
  if (v.options.framing != Framing::kWebSocket)
    return;
  bool was_empty = v.queue.empty ();
  OutMessage m;
  std::vector<uint8_t> head;
  FrameHeader (kOpText, json.size (), &head);
  head.insert (head.end (), json.begin (), json.end ());
  m.head = std::make_shared<const std::vector<uint8_t>> (std::move (head));
  Enqueue (v.queue, std::move (m), &v.backlog_bytes, &v.backlog_ns);
  if (was_empty)
    Emit (id, Event::kWritable);
}

void
Broadcaster::QueueInit (ViewerId id, Viewer &v)
{
  const StreamItem &init = *init_;
  std::string json = init.stream_json;
  if (!json.empty () && json.back () == '}')
    json.insert (json.size () - 1, std::string (",\"rebased\":") +
                                       (RebaseOf (v) ? "true" : "false"));
  QueueText (id, v, json);
  bool was_empty = v.queue.empty ();
  OutMessage m;
  if (v.options.framing == Framing::kWebSocket) {
    std::vector<uint8_t> head;
    FrameHeader (kOpBinary, init.payload.size, &head);
    m.head = std::make_shared<const std::vector<uint8_t>> (std::move (head));
  }
  m.body = init.payload;
  m.body_size = init.payload.size;
  Enqueue (v.queue, std::move (m), &v.backlog_bytes, &v.backlog_ns);
  if (was_empty)
    Emit (id, Event::kWritable);
  v.generation = init.generation;
  v.have_offset = false;  // the new timeline continues the viewer's
}

void
Broadcaster::QueueFragment (ViewerId id, Viewer &v, const ItemPtr &fp)
{
  const StreamItem &f = *fp;
  if (v.phase != Phase::kLive && !f.keyframe)
    v.stats.non_keyframe_starts++;  // never, by construction: tests check it
  bool was_empty = v.queue.empty ();
  OutMessage m;
  m.is_fragment = true;
  m.duration_ns = std::max<int64_t> (f.duration_ns, 0);
  size_t keep = 0;  // bytes of the payload copied into head (moof, rewritten and/or with a prft)
  const bool moof_ok = f.info && f.moof_offset + f.moof_size <= f.payload.size;
  bool rebase = RebaseOf (v) && moof_ok && f.decode_time_ns >= 0;
  // A timestamp jump (fmp4initcache flags the first fragment of it once, whichever track
  // comes first): the viewer's timeline goes on from where it was.
  if (rebase && f.discont)
    v.have_offset = false;
  // A prft of our own in front of the moof (arrival time, the viewer's media time) when the
  // fragment has none; its bytes depend on the offset as the rewritten moof does.
  const bool add_prft = config_.add_prft && moof_ok && !f.has_prft && f.arrival_unix_us >= 0;
  if (rebase) {
    if (!v.have_offset) {
      v.offset_ns = f.decode_time_ns - v.timeline_end_ns;
      v.have_offset = true;
    }
  }
  if (rebase || add_prft)
    keep = f.moof_offset + f.moof_size;
  // The head (frame header + what precedes the moof + maybe a prft + the moof, rewritten)
  // depends only on the framing and the offset: reuse the one made for an earlier viewer with
  // the same (not rebased with a prft: the same bytes as offset 0).
  const int framing = int (v.options.framing);
  const int64_t key = rebase ? v.offset_ns : (keep ? 0 : INT64_MIN);
  const StreamItem::Head *cached = nullptr;
  for (const StreamItem::Head &h : f.heads)
    if (h.framing == framing && h.offset_ns == key) {
      cached = &h;
      break;
    }
  if (cached) {
    m.head = cached->bytes;
    keep = cached->payload_bytes_in_head;
  } else {
    std::vector<uint8_t> content;  // replaces payload[0, keep)
    if (keep) {
      f.payload.AppendTo (0, f.moof_offset, &content);
      const size_t prft_at = content.size ();
      if (add_prft)
        content.resize (prft_at + kPrftSize);
      const size_t moof_at = content.size ();
      f.payload.AppendTo (f.moof_offset, f.moof_size, &content);
      bool ok = !rebase || RebaseMoof (content.data () + moof_at, f.moof_size, *f.info, v.offset_ns);
      if (ok && rebase && f.has_prft)
        ok = RebasePrft (content.data (), f.moof_offset, *f.info, v.offset_ns);
      if (ok && add_prft)
        ok = WritePrft (content.data () + prft_at, content.data () + moof_at, f.moof_size, *f.info,
                        f.arrival_unix_us, kPrftFlagsServer);
      if (!ok) {
        // Malformed moof: send the fragment untouched rather than corrupt it.
        content.clear ();
        keep = 0;
      }
    }
    std::vector<uint8_t> head;
    if (v.options.framing == Framing::kWebSocket)
      FrameHeader (kOpBinary, content.size () + f.payload.size - keep, &head);
    head.insert (head.end (), content.begin (), content.end ());
    m.head = std::make_shared<const std::vector<uint8_t>> (std::move (head));
    if (f.heads.size () < StreamItem::kMaxHeads)
      f.heads.push_back ({framing, key, m.head, keep});
  }
  m.body = f.payload;
  m.body_offset = keep;
  m.body_size = f.payload.size - keep;
  if (f.end_ns >= 0)
    v.timeline_end_ns = std::max (v.timeline_end_ns, f.end_ns - (rebase ? v.offset_ns : 0));
  Enqueue (v.queue, std::move (m), &v.backlog_bytes, &v.backlog_ns);
  if (was_empty)
    Emit (id, Event::kWritable);
}

void
Broadcaster::StartViewer (ViewerId id, Viewer &v)
{
  v.phase = Phase::kWaitKeyframe;
  if (SyncOf (v) != SyncMethod::kLatestKeyframe || gop_.empty () || !init_ ||
      gop_.front ()->generation != init_->generation) {
    Emit (id, Event::kNeedKeyframe);
    return;
  }
  // Burst the cached GOP if it fits in the viewer's backlog bounds.
  uint64_t bytes = 0;
  int64_t ns = 0, end = gop_.front ()->decode_time_ns;
  for (const ItemPtr &f : gop_) {
    bytes += f->payload.size;
    ns += std::max<int64_t> (f->duration_ns, 0);
    end = std::max (end, f->end_ns);
  }
  if (gop_discont_)
    end = gop_.front ()->decode_time_ns + ns;  // decode times jump inside: count durations
  if (v.backlog_bytes + bytes > config_.max_backlog_bytes ||
      v.backlog_ns + ns > config_.max_backlog_ns) {
    Emit (id, Event::kNeedKeyframe);
    return;
  }
  // The first fragment will start at the end of the viewer's timeline (rebased) or at
  // its own decode time.
  int64_t start = RebaseOf (v) ? v.timeline_end_ns : gop_.front ()->decode_time_ns;
  QueueText (id, v,
             "{\"type\":\"start\",\"burst\":" + std::to_string (gop_.size ()) +
                 ",\"start_time\":" + Seconds (start) + ",\"live_edge\":" +
                 Seconds (start + end - gop_.front ()->decode_time_ns) +
                 "}");
  for (const ItemPtr &f : gop_) {
    QueueFragment (id, v, f);
    v.phase = Phase::kLive;
  }
}

void
Broadcaster::DropQueue (Viewer &v)
{
  // A message partly written must be finished, or the byte stream breaks.
  size_t keep = v.front_offset > 0 ? 1 : 0;
  while (v.queue.size () > keep) {
    const OutMessage &m = v.queue.back ();
    if (m.is_fragment) {
      v.stats.fragments_dropped++;
      dropped_total_++;
    }
    v.backlog_bytes -= m.cost ();
    v.backlog_ns -= m.duration_ns;
    v.queue.pop_back ();
  }
  if (keep) {
    v.backlog_bytes = v.queue.front ().cost () - v.front_offset;
    v.backlog_ns = v.queue.front ().duration_ns;
  } else {
    v.backlog_bytes = 0;
    v.backlog_ns = 0;
  }
}

bool
Broadcaster::OverBound (const Viewer &v, const OutMessage &next) const
{
  if (v.queue.empty ())
    return false;  // a single fragment bigger than the bound still goes out
  return v.backlog_bytes + next.size () > config_.max_backlog_bytes ||
         v.backlog_ns + next.duration_ns > config_.max_backlog_ns;
}

void
Broadcaster::Overflow (ViewerId id, Viewer &v)
{
  v.stats.skips++;
  if (config_.recover == RecoverPolicy::kDisconnect) {
    Close (id, 1008, "too slow: backlog limit reached");
    return;
  }
  uint64_t before = v.stats.fragments_dropped;
  DropQueue (v);
  v.phase = Phase::kWaitKeyframe;
  Emit (id, Event::kNeedKeyframe);
  v.have_offset = false;  // close the gap for players that never seek
  QueueText (id, v,
             "{\"type\":\"skip\",\"fragments\":" +
                 std::to_string (v.stats.fragments_dropped - before) + ",\"reason\":\"backlog\"}");
}

void
Broadcaster::CacheFragment (const ItemPtr &f)
{
  if (f->keyframe) {
    gop_.clear ();
    gop_bytes_ = 0;
    gop_ns_ = 0;
    gop_discont_ = false;
  } else if (gop_.empty ()) {
    return;  // no keyframe to start from
  } else if (f->discont) {
    gop_discont_ = true;
  }
  gop_.push_back (f);
  gop_bytes_ += f->payload.size;
  gop_ns_ += std::max<int64_t> (f->duration_ns, 0);
  int64_t span = gop_discont_ ? gop_ns_ : f->end_ns - gop_.front ()->decode_time_ns;
  if (gop_bytes_ > config_.gop_max_bytes || span > config_.gop_max_ns) {
    // Too long to replay: new viewers wait for the next keyframe instead.
    gop_.clear ();
    gop_bytes_ = 0;
  }
}

void
Broadcaster::PushInit (ItemPtr init)
{
  init_ = std::move (init);
  gop_.clear ();
  gop_bytes_ = 0;
  for (auto &[id, v] : viewers_) {
    if (v.phase == Phase::kPaused || v.phase == Phase::kClosing)
      continue;
    QueueInit (id, v);
    v.phase = Phase::kWaitKeyframe;
  }
}

void
Broadcaster::PushFragment (ItemPtr fp)
{
  if (!init_ || fp->generation != init_->generation)
    return;
  CacheFragment (fp);
  for (auto &[id, v] : viewers_) {
    switch (v.phase) {
      case Phase::kNeedInit:
      case Phase::kPaused:
      case Phase::kClosing:
        break;
      case Phase::kWaitKeyframe:
        if (fp->keyframe && v.generation == fp->generation) {
          QueueFragment (id, v, fp);
          v.phase = Phase::kLive;
        }
        break;
      case Phase::kLive: {
        OutMessage probe;
        probe.body_size = fp->payload.size;
        probe.duration_ns = std::max<int64_t> (fp->duration_ns, 0);
        if (OverBound (v, probe)) {
          Overflow (id, v);
          if (v.phase == Phase::kWaitKeyframe && fp->keyframe) {
            QueueFragment (id, v, fp);
            v.phase = Phase::kLive;
          } else if (v.phase == Phase::kWaitKeyframe) {
            v.stats.fragments_dropped++;
            dropped_total_++;
          }
        } else {
          QueueFragment (id, v, fp);
        }
        break;
      }
    }
  }
}

void
Broadcaster::PushEos ()
{
  for (auto &[id, v] : viewers_) {
    if (v.phase == Phase::kClosing)
      continue;
    QueueText (id, v, "{\"type\":\"eos\"}");
    Close (id, 1000, "end of stream", true);
  }
}

void
Broadcaster::ResetStream ()
{
  gop_.clear ();
  gop_bytes_ = 0;
}

void
Broadcaster::Gap (uint64_t lost)
{
  gop_.clear ();
  gop_bytes_ = 0;
  for (auto &[id, v] : viewers_) {
    if (v.phase != Phase::kLive)
      continue;
    // What is queued is whole and in order: it is still sent. What follows must start on
    // a keyframe, and its timeline continues where the queued part ends.
    v.phase = Phase::kWaitKeyframe;
    Emit (id, Event::kNeedKeyframe);
    v.have_offset = false;
    v.stats.fragments_dropped += lost;
    dropped_total_ += lost;
    QueueText (id, v,
               "{\"type\":\"skip\",\"fragments\":" + std::to_string (lost) +
                   ",\"reason\":\"overload\"}");
  }
}

Broadcaster::ViewerId
Broadcaster::AddViewer (const ViewerOptions &options)
{
  while (viewers_.count (next_id_))
    next_id_++;
  return AddViewer (options, next_id_++);
}

Broadcaster::ViewerId
Broadcaster::AddViewer (const ViewerOptions &options, ViewerId id)
{
  Viewer &v = viewers_[id];
  v = Viewer ();
  v.options = options;
  if (init_) {
    QueueInit (id, v);
    StartViewer (id, v);
  }
  return id;
}

void
Broadcaster::RemoveViewer (ViewerId id)
{
  viewers_.erase (id);
}

void
Broadcaster::Pause (ViewerId id)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end () || it->second.phase == Phase::kClosing)
    return;
  DropQueue (it->second);
  it->second.phase = Phase::kPaused;
}

void
Broadcaster::Resume (ViewerId id)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end () || it->second.phase != Phase::kPaused)
    return;
  Viewer &v = it->second;
  v.have_offset = false;
  if (!init_) {
    v.phase = Phase::kNeedInit;
    return;
  }
  if (v.generation != init_->generation)
    QueueInit (id, v);
  StartViewer (id, v);
}

void
Broadcaster::QueueControl (ViewerId id, uint8_t opcode, const uint8_t *payload, size_t size)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end () || it->second.options.framing != Framing::kWebSocket)
    return;
  Viewer &v = it->second;
  if (v.phase == Phase::kClosing)
    return;
  const size_t n = std::min<size_t> (size, 125);  // RFC 6455 §5.5: control payloads <= 125
  std::vector<uint8_t> head;
  head.reserve (4 + n);
  FrameHeader (opcode, n, &head);
  head.insert (head.end (), payload, payload + n);
  Bytes bytes = std::make_shared<const std::vector<uint8_t>> (std::move (head));
  // Control frames go right after a partly written front message, so the unstarted ones are
  // together there: one of the same opcode gets the new payload (RFC 6455 §5.5.3).
  auto first = v.queue.begin () + (v.front_offset > 0 ? 1 : 0);
  for (auto q = first; q != v.queue.end () && q->control != 0; ++q) {
    if (q->control != opcode)
      continue;
    v.backlog_bytes -= q->size ();
    q->head = std::move (bytes);
    v.backlog_bytes += q->size ();
    return;
  }
  OutMessage m;
  m.head = std::move (bytes);
  m.control = opcode;
  // The deque entry, the vector and its shared block (one allocation), two malloc headers.
  m.overhead = sizeof (OutMessage) + sizeof (std::vector<uint8_t>) + 2 * sizeof (void *) +
               m.head->capacity () - m.head->size () + 32;
  if (!v.queue.empty () && v.backlog_bytes + m.cost () > config_.max_backlog_bytes) {
    if (config_.recover == RecoverPolicy::kKeyframe &&
        (v.phase == Phase::kLive || v.phase == Phase::kWaitKeyframe)) {
      Overflow (id, v);  // what is queued goes; the control frame is still answered
    } else {
      v.stats.skips++;
      Close (id, 1008, "too slow: backlog limit reached");
      return;
    }
  }
  bool was_empty = v.queue.empty ();
  v.backlog_bytes += m.cost ();
  first = v.queue.begin () + (v.front_offset > 0 ? 1 : 0);
  v.queue.insert (first, std::move (m));
  if (was_empty)
    Emit (id, Event::kWritable);
}

void
Broadcaster::Close (ViewerId id, uint16_t code, const std::string &reason, bool drain)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end () || it->second.phase == Phase::kClosing)
    return;
  Viewer &v = it->second;
  if (!drain)
    DropQueue (v);
  bool was_empty = v.queue.empty ();
  OutMessage m;
  m.is_close = true;
  if (v.options.framing == Framing::kWebSocket) {
    std::string r = reason.substr (0, 123);
    std::vector<uint8_t> head;
    FrameHeader (kOpClose, 2 + r.size (), &head);
    head.push_back (uint8_t (code >> 8));
    head.push_back (uint8_t (code));
    head.insert (head.end (), r.begin (), r.end ());
    m.head = std::make_shared<const std::vector<uint8_t>> (std::move (head));
  }
  Enqueue (v.queue, std::move (m), &v.backlog_bytes, &v.backlog_ns);
  v.phase = Phase::kClosing;
  Emit (id, Event::kClose, code, reason);
  if (was_empty)
    Emit (id, Event::kWritable);
}

void
Broadcaster::Report (ViewerId id, double current_time, double buffered_end, uint64_t stalls)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end ())
    return;
  ViewerStats &s = it->second.stats;
  s.current_time = current_time;
  s.latency = buffered_end >= current_time ? buffered_end - current_time : 0;
  s.stalls = stalls;
}

void
Broadcaster::ReportWallClock (ViewerId id, double latency_s, const std::string &source)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end ())
    return;
  if (!(latency_s >= -60 && latency_s <= 3600) || (source != "encoder" && source != "server"))
    return;
  it->second.stats.wall_clock_latency = latency_s;
  it->second.stats.wall_clock_source = source;
}

const std::deque<OutMessage> *
Broadcaster::Queue (ViewerId id) const
{
  auto it = viewers_.find (id);
  return it == viewers_.end () ? nullptr : &it->second.queue;
}

size_t
Broadcaster::FrontOffset (ViewerId id) const
{
  auto it = viewers_.find (id);
  return it == viewers_.end () ? 0 : it->second.front_offset;
}

bool
Broadcaster::Consumed (ViewerId id, size_t n)
{
  auto it = viewers_.find (id);
  if (it == viewers_.end ())
    return false;
  Viewer &v = it->second;
  v.stats.bytes_sent += n;
  v.backlog_bytes -= std::min<uint64_t> (n, v.backlog_bytes);
  while (!v.queue.empty ()) {
    const OutMessage &m = v.queue.front ();
    size_t left = m.size () - v.front_offset;
    if (n < left) {
      v.front_offset += n;
      return false;
    }
    n -= left;
    bool close = m.is_close;
    v.backlog_bytes -= std::min<uint64_t> (m.overhead, v.backlog_bytes);
    if (m.is_fragment)
      v.stats.fragments_sent++;
    v.backlog_ns -= m.duration_ns;
    v.queue.pop_front ();
    v.front_offset = 0;
    if (close)
      return true;
  }
  return false;
}

uint64_t
Broadcaster::BacklogBytes (ViewerId id) const
{
  auto it = viewers_.find (id);
  return it == viewers_.end () ? 0 : it->second.backlog_bytes;
}

int64_t
Broadcaster::BacklogNs (ViewerId id) const
{
  auto it = viewers_.find (id);
  return it == viewers_.end () ? 0 : it->second.backlog_ns;
}

const ViewerStats *
Broadcaster::Stats (ViewerId id) const
{
  auto it = viewers_.find (id);
  return it == viewers_.end () ? nullptr : &it->second.stats;
}

}  // namespace fmp4ws::core
