#include "io_thread.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "json.h"

namespace fmp4ws::server {

using core::Broadcaster;
using core::OutMessage;
using core::ViewerStats;

namespace {

constexpr uint64_t kWakeKey = 0;  // epoll key of the eventfd (viewer ids start at 1)

int64_t
NowUs ()  // the clock of g_get_monotonic_time ()
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return int64_t (ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

}  // namespace

struct IoThread::Connection
{
  uint64_t id = 0;
  std::unique_ptr<Transport> transport;
  int fd = -1;
  bool want_write = false;  // EPOLLOUT armed: the socket did not take everything
  int64_t close_deadline_us = 0;
  std::string address;
  bool websocket = true;
  Broadcaster::ViewerOptions options;
  ws::Decoder rx;  // the client's frames
  int64_t last_rx_us = 0;
  int64_t rate_window_us = 0;  // start of the second max_message_rate counts in
  unsigned rate_count = 0;     // frames the viewer sent in it
  std::string close_reason;
};

/* Transports ----------------------------------------------------------------------------- */

long
FdTransport::Read (uint8_t *buf, size_t size, std::string *error)
{
  for (;;) {
    ssize_t n = recv (fd_, buf, size, MSG_DONTWAIT);
    if (n >= 0)
      return long (n);
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return kWouldBlock;
    *error = strerror (errno);
    return kFailed;
  }
}

long
FdTransport::Writev (const struct iovec *vec, int n, std::string *error)
{
  return WritevFd (fd_, vec, n, error);
}

long
FdTransport::WritevFd (int fd, const struct iovec *vec, int n, std::string *error)
{
  struct msghdr mh = {};
  mh.msg_iov = const_cast<struct iovec *> (vec);
  mh.msg_iovlen = size_t (n);
  for (;;) {
    ssize_t r = sendmsg (fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0)
      return long (r);
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return kWouldBlock;
    *error = strerror (errno);
    return kFailed;
  }
}

void
FdTransport::Close ()
{
  if (fd_ >= 0)
    close (fd_);
  fd_ = -1;
}

void
Totals::Add (const Totals &o)
{
  bytes_sent += o.bytes_sent;
  fragments_sent += o.fragments_sent;
  fragments_dropped += o.fragments_dropped;
  skips += o.skips;
  connections += o.connections;
  for (auto &[reason, n] : o.disconnects)
    disconnects[reason] += n;
}

/* Life ----------------------------------------------------------------------------------- */

std::unique_ptr<IoThread>
IoThread::Start (unsigned index, const Settings &settings, Callbacks callbacks,
                 std::string *error)
{
  std::unique_ptr<IoThread> t (new IoThread ());
  t->index_ = index;
  t->cb_ = std::move (callbacks);
  t->epfd_ = epoll_create1 (EPOLL_CLOEXEC);
  t->evfd_ = eventfd (0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (t->epfd_ < 0 || t->evfd_ < 0) {
    *error = std::string ("epoll_create1/eventfd: ") + strerror (errno);
    return nullptr;  // the destructor closes what was opened
  }
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  epoll_ctl (t->epfd_, EPOLL_CTL_ADD, t->evfd_, &ev);
  t->settings_.keepalive = 0;  // so that ApplySettings starts the keepalive ticks
  t->ApplySettings (settings);
  IoThread *self = t.get ();
  t->thread_ = std::thread ([self] {
    char name[16];
    snprintf (name, sizeof name, "wssink-io%u", self->index_);
    pthread_setname_np (pthread_self (), name);
    self->Run ();
  });
  return t;
}

IoThread::~IoThread ()
{
  if (thread_.joinable ()) {
    Post ({Command::kStop, nullptr});
    thread_.join ();
  }
  // Commands that came after kStop (a viewer handed over at the last moment).
  for (Command &cmd : inbox_)
    if (cmd.kind == Command::kAdd)
      Release (cmd.conn);
  if (epfd_ >= 0)
    close (epfd_);
  if (evfd_ >= 0)
    close (evfd_);
}

void
IoThread::Log (LogLevel l, const std::string &msg) const
{
  if (LogOn (l))
    cb_.log (l, msg);
}

/* Posting ---------------------------------------------------------------------------------- */

void
IoThread::PostInit (core::ItemPtr item)
{
  Post ({Command::kInit, std::move (item)});
}

void
IoThread::PostFragment (core::ItemPtr item, uint64_t max_inbox_bytes)
{
  Post ({Command::kFragment, std::move (item)}, max_inbox_bytes);
}

void
IoThread::PostEos ()
{
  Post ({Command::kEos, nullptr});
}

void
IoThread::PostReset ()
{
  Post ({Command::kReset, nullptr});
}

void
IoThread::PostSettings (const Settings &settings)
{
  Command cmd{Command::kSettings, nullptr};
  cmd.settings = std::make_shared<const Settings> (settings);
  Post (std::move (cmd));
}

void
IoThread::AddConnection (uint64_t id, int fd, std::unique_ptr<Transport> transport,
                         const std::string &address,
                         const Broadcaster::ViewerOptions &options)
{
  Connection *c = new Connection ();
  c->id = id;
  c->fd = fd;
  c->transport = std::move (transport);
  c->address = address;
  c->options = options;
  c->websocket = options.framing == core::Framing::kWebSocket;
  load_++;
  Command cmd{Command::kAdd, nullptr};
  cmd.conn = c;
  Post (std::move (cmd));
}

// An I/O thread that fell this far behind the stream (it has not even taken the fragments
// yet) is treated like a slow viewer: what it has not taken is dropped and its viewers
// resume at the next keyframe. Bounds: a viewer's (max-backlog-bytes), and a count. Not
// max-backlog-time: a source that is not paced (a file) legitimately brings minutes of
// media in milliseconds, which a healthy thread takes as fast.
void
IoThread::Post (Command cmd, uint64_t max_bytes)
{
  bool wake;
  {
    std::lock_guard<std::mutex> lock (inbox_mutex_);
    if (cmd.kind == Command::kFragment) {
      uint64_t bytes = cmd.item->payload.size;
      if (inbox_fragments_ > 0 && (inbox_fragments_ >= kMaxInboxFragments ||
                                   (max_bytes && inbox_bytes_ + bytes > max_bytes))) {
        std::vector<Command> kept;
        uint64_t lost = 0;
        for (Command &c : inbox_) {
          if (c.kind == Command::kFragment)
            lost++;
          else
            kept.push_back (std::move (c));
        }
        Command gap{Command::kGap, nullptr};
        gap.lost = lost;
        kept.push_back (std::move (gap));
        inbox_.swap (kept);
        inbox_bytes_ = 0;
        inbox_fragments_ = 0;
        overload_drops_ += lost;
        if (LogOn (LogLevel::kWarning))
          Log (LogLevel::kWarning,
               "I/O thread " + std::to_string (index_) +
                   " fell behind the stream (max-backlog-bytes or " +
                   std::to_string (kMaxInboxFragments) + " fragments): dropped the " +
                   std::to_string (lost) + " fragments it had not taken");
      }
      inbox_bytes_ += bytes;
      inbox_fragments_++;
    }
    inbox_.push_back (std::move (cmd));
    wake = !wake_pending_;
    wake_pending_ = true;
  }
  if (wake) {
    uint64_t one = 1;
    while (write (evfd_, &one, sizeof one) < 0 && errno == EINTR)
      ;
  }
}

// Runs the inbox's commands; returns true when the thread must stop.
bool
IoThread::DrainInbox ()
{
  std::vector<Command> cmds;
  {
    std::lock_guard<std::mutex> lock (inbox_mutex_);
    cmds.swap (inbox_);
    wake_pending_ = false;
    inbox_bytes_ = 0;
    inbox_fragments_ = 0;
  }
  bool stop = false;
  for (Command &cmd : cmds) {
    switch (cmd.kind) {
      case Command::kInit:
        bc_.PushInit (cmd.item);
        break;
      case Command::kFragment:
        bc_.PushFragment (cmd.item);
        break;
      case Command::kEos:
        bc_.PushEos ();
        break;
      case Command::kReset:
        bc_.ResetStream ();
        break;
      case Command::kSettings:
        ApplySettings (*cmd.settings);
        break;
      case Command::kAdd:
        if (stop)
          Release (cmd.conn);
        else
          AddConn (cmd.conn);
        break;
      case Command::kStop:
        stop = true;
        break;
      case Command::kGap:
        bc_.Gap (cmd.lost);
        break;
    }
  }
  return stop;
}

void
IoThread::ApplySettings (const Settings &s)
{
  bc_.set_config (s.config);
  unsigned old_keepalive = settings_.keepalive;
  settings_ = s;
  if (s.keepalive != old_keepalive)
    next_tick_us_ = s.keepalive ? NowUs () + s.tick_us : 0;
}

/* Connections ------------------------------------------------------------------------------ */

void
IoThread::AddConn (Connection *c)
{
  c->last_rx_us = NowUs ();
  struct epoll_event ev = {};
  ev.events = EPOLLIN;
  ev.data.u64 = c->id;
  if (epoll_ctl (epfd_, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
    Log (LogLevel::kWarning,
         "client " + std::to_string (c->id) + ": epoll_ctl: " + strerror (errno));
    Release (c);
    return;
  }
  bc_.AddViewer (c->options, c->id);
  conns_[c->id] = c;
  totals_.connections++;
  if (LogOn (LogLevel::kInfo))
    Log (LogLevel::kInfo, "client " + std::to_string (c->id) + " (" + c->address + ") added (" +
                              (c->websocket ? "websocket" : "stream.mp4") + ", I/O thread " +
                              std::to_string (index_) + ")");
  signals_.push_back ({true, c->id, c->address, {}});
}

// A connection leaves this thread (finished, or handed over but never added): counted,
// closed, freed.
void
IoThread::Release (Connection *c)
{
  load_--;
  if (cb_.connection_released)
    cb_.connection_released ();
  c->transport->Close ();
  delete c;
}

void
IoThread::Finish (Connection *c, const std::string &reason)
{
  if (const ViewerStats *st = bc_.Stats (c->id)) {
    totals_.bytes_sent += st->bytes_sent;
    totals_.fragments_sent += st->fragments_sent;
    totals_.fragments_dropped += st->fragments_dropped;
    totals_.skips += st->skips;
  }
  std::string why = c->close_reason.empty () ? reason : c->close_reason;
  totals_.disconnects[why]++;
  bc_.RemoveViewer (c->id);
  conns_.erase (c->id);
  epoll_ctl (epfd_, EPOLL_CTL_DEL, c->fd, NULL);
  if (LogOn (LogLevel::kInfo))
    Log (LogLevel::kInfo,
         "client " + std::to_string (c->id) + " (" + c->address + ") removed: " + why);
  signals_.push_back ({false, c->id, c->address, why});
  Release (c);
}

void
IoThread::SetWriteInterest (Connection *c, bool want)
{
  if (c->want_write == want)
    return;
  c->want_write = want;
  struct epoll_event ev = {};
  ev.events = want ? uint32_t (EPOLLIN | EPOLLOUT) : uint32_t (EPOLLIN);
  if (stopping_)
    ev.events = EPOLLOUT;  // a level-triggered EPOLLIN would spin: nobody reads any more
  ev.data.u64 = c->id;
  epoll_ctl (epfd_, EPOLL_CTL_MOD, c->fd, &ev);
}

// Writes as much of the viewer's queue as the socket takes, without blocking and without
// copying: each message is its head (frame header, maybe a rewritten moof or JSON) and a
// slice of a shared payload. Arms EPOLLOUT when the socket is full.
void
IoThread::Flush (Connection *c)
{
  for (;;) {
    const std::deque<OutMessage> *q = bc_.Queue (c->id);
    if (!q || q->empty ()) {
      SetWriteInterest (c, false);
      return;
    }
    size_t offset = bc_.FrontOffset (c->id);
    struct iovec vec[64];
    constexpr size_t kMaxVec = sizeof vec / sizeof vec[0];
    size_t nvec = 0, total = 0;
    // Each message: its head, then its body's runs of bytes (one, or several for a payload
    // of several spans); a message cut by the iovec limit goes on in the next round.
    auto add = [&] (const uint8_t *p, size_t n) {
      if (nvec < kMaxVec) {
        vec[nvec].iov_base = (void *) p;
        vec[nvec].iov_len = n;
        total += n;
        nvec++;
      }
    };
    bool first = true;
    for (const OutMessage &m : *q) {
      if (nvec >= kMaxVec)
        break;
      size_t skip = first ? offset : 0;
      first = false;
      const std::vector<uint8_t> &head = *m.head;
      if (skip < head.size ()) {
        add (head.data () + skip, head.size () - skip);
        skip = 0;
      } else {
        skip -= head.size ();
      }
      if (skip < m.body_size)
        m.body.ForEach (m.body_offset + skip, m.body_size - skip, add);
      if (m.is_close)
        break;  // nothing goes after a close
    }
    size_t written = 0;
    if (nvec > 0) {
      std::string error;
      long r = c->transport->Writev (vec, int (nvec), &error);
      if (r == Transport::kWouldBlock) {
        SetWriteInterest (c, true);
        return;
      }
      if (r < 0) {
        Finish (c, "write error: " + error);
        return;
      }
      written = size_t (r);
    }
    if (bc_.Consumed (c->id, written)) {
      Finish (c, "closed");
      return;
    }
    if (written < total) {
      // The socket is full: wait until it takes more.
      SetWriteInterest (c, true);
      return;
    }
  }
}

void
IoThread::CloseViewer (Connection *c, uint16_t code, const std::string &reason)
{
  if (c->close_reason.empty ())
    c->close_reason = reason;
  bc_.Close (c->id, code, reason);
}

// Handles what the broadcaster asked for: close deadlines, writes to viewers with data.
void
IoThread::ProcessEvents ()
{
  std::vector<Broadcaster::Event> events = bc_.TakeEvents ();
  bool need_keyframe = false;
  for (const Broadcaster::Event &e : events)
    need_keyframe |= e.kind == Broadcaster::Event::kNeedKeyframe;
  if (need_keyframe && cb_.need_keyframe)
    cb_.need_keyframe ();
  for (const Broadcaster::Event &e : events) {
    if (e.kind != Broadcaster::Event::kClose)
      continue;
    auto it = conns_.find (e.viewer);
    if (it == conns_.end ())
      continue;
    Connection *c = it->second;
    if (c->close_reason.empty ())
      c->close_reason = e.reason;
    if (!c->close_deadline_us) {
      c->close_deadline_us = NowUs () + settings_.close_timeout_us;
      closing_.push_back (c->id);
    }
  }
  // Write to the viewers that got something to write (a queue only goes from empty to not
  // empty with an event; one left non-empty waits for EPOLLOUT). A viewer may be removed
  // while flushing: look each one up.
  for (const Broadcaster::Event &e : events) {
    if (e.kind != Broadcaster::Event::kWritable)
      continue;
    auto it = conns_.find (e.viewer);
    if (it == conns_.end () || it->second->want_write)
      continue;
    Flush (it->second);
  }
}

void
IoThread::HandleText (Connection *c, const std::string &text)
{
  auto obj = core::ParseFlatJsonObject (text);
  if (!obj) {
    if (LogOn (LogLevel::kDebug))
      Log (LogLevel::kDebug, "client " + std::to_string (c->id) + ": ignoring non-JSON message");
    return;
  }
  const std::string &type = (*obj)["type"].str;
  if (type == "report") {
    bc_.Report (c->id, (*obj)["current_time"].num, (*obj)["buffered_end"].num,
                uint64_t ((*obj)["stalls"].num));
    auto wcl = obj->find ("wall_clock_latency");
    auto src = obj->find ("wall_clock_source");
    if (wcl != obj->end () && wcl->second.kind == core::JsonValue::kNumber && src != obj->end () &&
        src->second.kind == core::JsonValue::kString)
      bc_.ReportWallClock (c->id, wcl->second.num, src->second.str);
  } else if (type == "pause") {
    if (LogOn (LogLevel::kDebug))
      Log (LogLevel::kDebug, "client " + std::to_string (c->id) + " paused");
    bc_.Pause (c->id);
  } else if (type == "resume") {
    if (LogOn (LogLevel::kDebug))
      Log (LogLevel::kDebug, "client " + std::to_string (c->id) + " resumed");
    bc_.Resume (c->id);
  }
}

// Decodes the client's frames (RFC 6455 5.2, see ws_frame.h). Stops at a close.
void
IoThread::HandleFrames (Connection *c, const uint8_t *data, size_t size)
{
  c->rx.set_max_message_size (settings_.max_message_size);
  c->rx.Feed (data, size);
  ws::Event ev;
  for (;;) {
    switch (c->rx.Next (&ev)) {
      case ws::Decoder::kNeedMore:
      case ws::Decoder::kDone:
        return;
      case ws::Decoder::kError:
        CloseViewer (c, c->rx.status ().close_code, c->rx.status ().reason);
        return;
      case ws::Decoder::kEvent:
        break;
    }
    // Every frame the viewer sends may make us write or work: at most max_message_rate a
    // second (a one-second window from its first frame).
    if (settings_.max_message_rate) {
      int64_t now = NowUs ();
      if (now - c->rate_window_us >= 1000000) {
        c->rate_window_us = now;
        c->rate_count = 0;
      }
      if (++c->rate_count > settings_.max_message_rate) {
        CloseViewer (c, ws::kClosePolicy, "too many messages: message rate limit reached");
        return;
      }
    }
    switch (ev.kind) {
      case ws::Event::kText:
        HandleText (c, std::string ((const char *) ev.data, ev.size));
        break;
      case ws::Event::kBinary:  // ignored
      case ws::Event::kPong:
        break;
      case ws::Event::kClose:  // answer with the same code
        CloseViewer (c, ev.close_code, "client closed");
        return;
      case ws::Event::kPing:
        bc_.QueueControl (c->id, ws::kOpPong, ev.data, ev.size);
        break;
    }
  }
}

// Reads what the viewer sent (bounded per wakeup; level-triggered epoll calls again).
void
IoThread::OnReadable (Connection *c)
{
  uint8_t buf[4096];
  const int max_rounds = c->transport->max_read_rounds ();
  for (int rounds = 0; rounds < max_rounds; rounds++) {
    std::string error;
    long n = c->transport->Read (buf, sizeof buf, &error);
    if (n == Transport::kWouldBlock)
      return;
    if (n <= 0) {
      Finish (c, n == 0 ? std::string ("connection closed by peer") : "read error: " + error);
      return;
    }
    c->last_rx_us = NowUs ();
    if (!c->websocket || !c->close_reason.empty ())
      continue;  // /stream.mp4 clients have nothing to say; a closing viewer is not heard
    HandleFrames (c, buf, size_t (n));
  }
}

/* Timers ----------------------------------------------------------------------------------- */

// Close deadlines, and keepalive: every tick, the viewers whose id falls in this tick's slot
// (id modulo the interval) are pinged or, silent for 3 intervals, dropped; so pings are
// spread evenly over the interval instead of all at once.
void
IoThread::RunTimers ()
{
  int64_t now = NowUs ();
  if (!closing_.empty ()) {
    std::vector<uint64_t> still;
    for (uint64_t id : closing_) {
      auto it = conns_.find (id);
      if (it == conns_.end ())
        continue;
      if (now >= it->second->close_deadline_us)
        Finish (it->second, "close timeout");
      else
        still.push_back (id);
    }
    closing_.swap (still);
  }
  if (settings_.keepalive && now >= next_tick_us_) {
    uint64_t slots = settings_.keepalive;
    uint64_t slot = tick_++ % slots;
    int64_t dead_after = 3 * int64_t (settings_.keepalive) * settings_.tick_us;
    std::vector<Connection *> dead;
    for (auto &[id, c] : conns_) {
      if (!c->websocket || id % slots != slot || c->close_deadline_us)
        continue;
      if (now - c->last_rx_us > dead_after)
        dead.push_back (c);
      else
        bc_.QueueControl (id, ws::kOpPing, (const uint8_t *) "ka", 2);
    }
    for (Connection *c : dead)
      Finish (c, "keepalive timeout");
    next_tick_us_ = now + settings_.tick_us;
  }
}

int
IoThread::TimeoutMs () const
{
  int64_t next = INT64_MAX;
  if (settings_.keepalive)
    next = next_tick_us_;
  for (uint64_t id : closing_) {
    auto it = conns_.find (id);
    if (it != conns_.end ())
      next = std::min (next, it->second->close_deadline_us);
  }
  if (next == INT64_MAX)
    return -1;
  int64_t wait = next - NowUs ();
  return wait <= 0 ? 0 : int (std::min ((wait + 999) / 1000, int64_t (60000)));
}

// Resets the eventfd that Post() wrote to.
void
IoThread::ClearWake ()
{
  uint64_t v;
  while (read (evfd_, &v, sizeof v) < 0 && errno == EINTR)
    ;
}

/* The loop --------------------------------------------------------------------------------- */

// Stopping: viewers get a close frame (1001, going away) if their socket takes it within a
// short grace (a socket that was full a moment ago, or a message half written, must not
// cost them the close frame); nobody is waited for longer.
void
IoThread::Shutdown ()
{
  std::vector<Connection *> all;
  for (auto &kv : conns_)
    all.push_back (kv.second);
  for (Connection *c : all) {
    if (c->websocket)
      CloseViewer (c, ws::kCloseGoingAway, "server stopped");
    else
      Finish (c, "server stopped");  // /stream.mp4: nothing to say goodbye with
  }
  bc_.TakeEvents ();
  stopping_ = true;
  // Write what each socket takes now (EPOLLOUT armed or not), then wait for the rest.
  std::vector<uint64_t> ids;
  for (auto &kv : conns_)
    ids.push_back (kv.first);
  for (uint64_t id : ids) {
    auto it = conns_.find (id);
    if (it != conns_.end ())
      Flush (it->second);
  }
  for (auto &kv : conns_) {
    struct epoll_event ev = {};
    ev.events = EPOLLOUT;  // no reads now: a level-triggered EPOLLIN would spin
    ev.data.u64 = kv.first;
    epoll_ctl (epfd_, EPOLL_CTL_MOD, kv.second->fd, &ev);
  }
  int64_t end = NowUs () + settings_.stop_grace_us;
  struct epoll_event evs[64];
  while (!conns_.empty ()) {
    int64_t left = end - NowUs ();
    if (left <= 0)
      break;
    int n = epoll_wait (epfd_, evs, 64, int ((left + 999) / 1000));
    if (n < 0 && errno != EINTR)
      break;
    for (int i = 0; i < n; i++) {
      if (evs[i].data.u64 == kWakeKey) {
        ClearWake ();
        continue;
      }
      auto it = conns_.find (evs[i].data.u64);
      if (it == conns_.end ())
        continue;
      Flush (it->second);
      auto again = conns_.find (evs[i].data.u64);
      if (again != conns_.end () && (evs[i].events & (EPOLLERR | EPOLLHUP)))
        Finish (again->second, "server stopped");
    }
  }
  all.clear ();
  for (auto &kv : conns_)
    all.push_back (kv.second);
  for (Connection *c : all)
    Finish (c, "server stopped");
}

void
IoThread::EmitSignals ()
{
  std::vector<PendingSignal> sigs;
  {
    std::lock_guard<std::mutex> lock (lock_);
    sigs.swap (signals_);
  }
  for (const PendingSignal &s : sigs) {
    if (s.added) {
      if (cb_.client_added)
        cb_.client_added (s.id, s.address);
    } else if (cb_.client_removed) {
      cb_.client_removed (s.id, s.address, s.reason);
    }
  }
}

void
IoThread::Run ()
{
  struct epoll_event evs[256];
  bool stop = false;
  while (!stop) {
    int timeout;
    {
      std::lock_guard<std::mutex> lock (lock_);
      timeout = TimeoutMs ();
    }
    int n = epoll_wait (epfd_, evs, 256, timeout);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      Log (LogLevel::kError, std::string ("epoll_wait: ") + strerror (errno));
      n = 0;
      stop = true;  // never spin; the destructor still joins and frees everything
    }
    {
      std::lock_guard<std::mutex> lock (lock_);
      for (int i = 0; i < n; i++) {
        uint64_t key = evs[i].data.u64;
        if (key == kWakeKey) {
          ClearWake ();
          stop |= DrainInbox ();
          continue;
        }
        auto it = conns_.find (key);
        if (it == conns_.end ())
          continue;  // finished earlier in this batch
        Connection *c = it->second;
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
          OnReadable (c);
          if (!conns_.count (key))
            continue;
        }
        if (evs[i].events & EPOLLOUT)
          Flush (c);
      }
      RunTimers ();
      ProcessEvents ();
      if (stop)
        Shutdown ();
    }
    EmitSignals ();
  }
}

/* Stats ------------------------------------------------------------------------------------ */

void
IoThread::Snap (Snapshot *out, bool with_clients) const
{
  std::lock_guard<std::mutex> lock (lock_);
  out->totals.Add (totals_);
  out->viewers += conns_.size ();
  out->overload_drops += overload_drops_;
  out->gop_fragments = bc_.gop_size ();  // the same in every I/O thread
  out->gop_bytes = bc_.gop_bytes ();
  for (auto &[id, c] : conns_) {
    const ViewerStats *st = bc_.Stats (id);
    out->totals.bytes_sent += st->bytes_sent;
    out->totals.fragments_sent += st->fragments_sent;
    out->totals.fragments_dropped += st->fragments_dropped;
    out->totals.skips += st->skips;
    if (with_clients)
      out->clients.push_back ({id, c->address, c->websocket, *st, bc_.BacklogBytes (id),
                               bc_.BacklogNs (id)});
  }
}

}  // namespace fmp4ws::server
