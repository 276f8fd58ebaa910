// Unit tests of an I/O thread (gst/server/io_thread.h) over socketpairs, without GStreamer:
// a viewer gets the frames posted, a stalled viewer stays within its bound, a close frame
// is answered, keepalive pings and timeouts, shutdown closes with 1001.
#include <gtest/gtest.h>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "box.h"
#include "fixtures.h"
#include "io_thread.h"
#include "json.h"
#include "stream_reader.h"
#include "stream_items.h"
#include "ws_frame.h"

using namespace fmp4ws::core;
using namespace fmp4ws::server;
using fmp4ws::test::MakeStream;
using fmp4ws::test::Stream;

namespace {

// What the callbacks saw (they run on the I/O thread).
struct Observed
{
  std::mutex lock;
  std::condition_variable cond;
  std::vector<uint64_t> added;
  std::vector<std::pair<uint64_t, std::string>> removed;
  int released = 0;

  IoThread::Callbacks Callbacks ()
  {
    IoThread::Callbacks cb;
    cb.client_added = [this] (uint64_t id, const std::string &) {
      std::lock_guard<std::mutex> l (lock);
      added.push_back (id);
      cond.notify_all ();
    };
    cb.client_removed = [this] (uint64_t id, const std::string &, const std::string &why) {
      std::lock_guard<std::mutex> l (lock);
      removed.push_back ({id, why});
      cond.notify_all ();
    };
    cb.connection_released = [this] {
      std::lock_guard<std::mutex> l (lock);
      released++;
    };
    return cb;
  }
  // The reason `id` was removed for, waiting up to `ms`; "" if it was not.
  std::string RemovedReason (uint64_t id, int ms = 3000)
  {
    std::unique_lock<std::mutex> l (lock);
    std::string why;
    cond.wait_for (l, std::chrono::milliseconds (ms), [&] {
      for (auto &[rid, r] : removed)
        if (rid == id)
          why = r;
      return !why.empty ();
    });
    return why;
  }
  bool WaitAdded (size_t n, int ms = 3000)
  {
    std::unique_lock<std::mutex> l (lock);
    return cond.wait_for (l, std::chrono::milliseconds (ms), [&] { return added.size () >= n; });
  }
};

struct Frame
{
  uint8_t opcode = 0;
  std::vector<uint8_t> payload;
  std::string text () const { return std::string (payload.begin (), payload.end ()); }
  uint16_t close_code () const
  {
    return payload.size () >= 2 ? uint16_t ((payload[0] << 8) | payload[1]) : 0;
  }
};

// The viewer's end of a socketpair: reads and decodes the server's (unmasked) frames.
struct Client
{
  int fd = -1;
  std::vector<uint8_t> rx;
  bool eof = false;

  ~Client ()
  {
    if (fd >= 0)
      close (fd);
  }
  // Reads what is there, waiting up to `ms` for something.
  bool Fill (int ms)
  {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll (&p, 1, ms) <= 0)
      return false;
    uint8_t buf[65536];
    ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
      eof = true;
    if (n <= 0)
      return false;
    rx.insert (rx.end (), buf, buf + n);
    return true;
  }
  // The next whole frame, waiting up to `ms` in all.
  bool Next (Frame *f, int ms = 3000)
  {
    auto end = std::chrono::steady_clock::now () + std::chrono::milliseconds (ms);
    for (;;) {
      if (rx.size () >= 2) {
        EXPECT_EQ (rx[1] & 0x80, 0);  // servers never mask
        uint64_t len = rx[1] & 0x7f;
        size_t hdr = 2;
        if (len == 126 && rx.size () >= 4) {
          len = (rx[2] << 8) | rx[3];
          hdr = 4;
        } else if (len == 127 && rx.size () >= 10) {
          len = 0;
          for (int i = 0; i < 8; i++)
            len = (len << 8) | rx[2 + i];
          hdr = 10;
        }
        if ((rx[1] & 0x7f) < 126 || hdr > 2) {
          if (rx.size () >= hdr + len) {
            f->opcode = rx[0] & 0x0f;
            f->payload.assign (rx.begin () + long (hdr), rx.begin () + long (hdr + len));
            rx.erase (rx.begin (), rx.begin () + long (hdr + len));
            return true;
          }
        }
      }
      int left = int (std::chrono::duration_cast<std::chrono::milliseconds> (
                          end - std::chrono::steady_clock::now ())
                          .count ());
      if (left <= 0 || eof)
        return false;
      Fill (left);
    }
  }
  // Waits for the server to close its end (after what it sent).
  bool WaitEof (int ms = 3000)
  {
    auto end = std::chrono::steady_clock::now () + std::chrono::milliseconds (ms);
    while (!eof && std::chrono::steady_clock::now () < end)
      Fill (50);
    return eof;
  }
  void Send (uint8_t op, const std::string &payload)
  {
    const uint8_t mask[4] = {1, 2, 3, 4};
    std::vector<uint8_t> f =
        ws::EncodeClientFrame (op, (const uint8_t *) payload.data (), payload.size (), mask);
    ASSERT_EQ (write (fd, f.data (), f.size ()), ssize_t (f.size ()));
  }
  void SendRaw (const std::vector<uint8_t> &bytes)
  {
    ASSERT_EQ (write (fd, bytes.data (), bytes.size ()), ssize_t (bytes.size ()));
  }
};

// A masked client frame, maybe with RSV bits or without FIN.
std::vector<uint8_t>
ClientFrame (uint8_t op, const std::string &payload, bool fin = true, uint8_t rsv = 0)
{
  const uint8_t mask[4] = {9, 8, 7, 6};
  std::vector<uint8_t> f = ws::EncodeClientFrame (op, (const uint8_t *) payload.data (),
                                                  payload.size (), mask, fin);
  f[0] |= rsv;
  return f;
}

std::vector<uint8_t>
Cat (std::initializer_list<std::vector<uint8_t>> parts)
{
  std::vector<uint8_t> out;
  for (const auto &p : parts)
    out.insert (out.end (), p.begin (), p.end ());
  return out;
}

// A viewer on a socketpair: the server end goes to the thread.
void
Connect (IoThread *t, uint64_t id, Client *c, int sndbuf = 0)
{
  int sv[2];
  ASSERT_EQ (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  if (sndbuf) {
    setsockopt (sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    setsockopt (sv[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  }
  c->fd = sv[1];
  t->AddConnection (id, sv[0], std::make_unique<FdTransport> (sv[0]), "test", {});
}

IoThread::Settings
Quiet ()
{
  IoThread::Settings s;
  s.keepalive = 0;
  return s;
}

// So that a connection that ends within a test's wait was ended by the server at once, not by
// the close timeout (2 s by default).
IoThread::Settings
QuietNoCloseTimeout ()
{
  IoThread::Settings s = Quiet ();
  s.close_timeout_us = 60000000;
  return s;
}

}  // namespace

TEST (IoThread, ViewerGetsTheFramesPosted)
{
  Stream s = MakeStream ("notes-g30.mp4");
  ASSERT_TRUE (s.init);
  ASSERT_GT (s.fragments.size (), 12u);
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, Quiet (), obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client c;
  Connect (t.get (), 7, &c);
  ASSERT_TRUE (obs.WaitAdded (1));
  EXPECT_EQ (obs.added[0], 7u);
  EXPECT_EQ (t->load (), 1u);
  t->PostInit (s.init);
  for (const ItemPtr &f : s.fragments)
    t->PostFragment (f, 0);

  Frame f;
  ASSERT_TRUE (c.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpText);
  EXPECT_NE (f.text ().find ("\"type\":\"stream\""), std::string::npos) << f.text ();
  ASSERT_TRUE (c.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpBinary);
  EXPECT_EQ (f.payload.size (), s.init->payload.size);
  // Then every fragment from the first keyframe fragment, same sizes (only tfdt rewritten).
  for (const ItemPtr &frag : s.fragments) {
    ASSERT_TRUE (c.Next (&f));
    ASSERT_EQ (f.opcode, ws::kOpBinary);
    EXPECT_EQ (f.payload.size (), frag->payload.size);
  }
  Snapshot snap;
  t->Snap (&snap, true);
  EXPECT_EQ (snap.viewers, 1u);
  ASSERT_EQ (snap.clients.size (), 1u);
  EXPECT_EQ (snap.clients[0].stats.fragments_sent, s.fragments.size ());
  EXPECT_EQ (snap.clients[0].backlog_bytes, 0u);
}

TEST (IoThread, PayloadOfSeveralSpansIsWrittenWhole)
{
  // Fragments in 100 spans each (more than one writev's 64 iovecs), over a socket with small
  // buffers (partial writes): the viewer gets the same frames as from one block.
  Stream whole = MakeStream ("notes-g30.mp4");
  Stream split = fmp4ws::test::SplitPayloads (whole, 100);
  std::vector<Frame> got[2];
  for (int k = 0; k < 2; k++) {
    const Stream &s = k ? split : whole;
    Observed obs;
    std::string error;
    auto t = IoThread::Start (0, Quiet (), obs.Callbacks (), &error);
    ASSERT_TRUE (t) << error;
    Client c;
    Connect (t.get (), 7, &c, 4096);
    ASSERT_TRUE (obs.WaitAdded (1));
    t->PostInit (s.init);
    for (const ItemPtr &f : s.fragments)
      t->PostFragment (f, 0);
    Frame f;
    for (size_t i = 0; i < 2 + s.fragments.size (); i++) {  // stream, init, fragments
      ASSERT_TRUE (c.Next (&f)) << i;
      got[k].push_back (f);
    }
  }
  ASSERT_EQ (got[0].size (), got[1].size ());
  for (size_t i = 0; i < got[0].size (); i++) {
    EXPECT_EQ (got[0][i].opcode, got[1][i].opcode) << i;
    EXPECT_TRUE (got[0][i].payload == got[1][i].payload) << "frame " << i;
  }
}

TEST (IoThread, StalledViewerIsBounded)
{
  Stream s = MakeStream ("notes-g30.mp4");
  IoThread::Settings set = Quiet ();
  set.config.max_backlog_bytes = 8192;
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, set, obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client stalled, reader;
  Connect (t.get (), 1, &stalled, 4096);
  Connect (t.get (), 2, &reader);
  ASSERT_TRUE (obs.WaitAdded (2));
  t->PostInit (s.init);
  // The reader takes each fragment as it comes; the stalled viewer never reads.
  Frame f;
  ASSERT_TRUE (reader.Next (&f));  // stream
  ASSERT_TRUE (reader.Next (&f));  // init
  EXPECT_EQ (f.opcode, ws::kOpBinary);
  size_t biggest = 0;
  for (int round = 0; round < 3; round++) {
    for (const ItemPtr &frag : s.fragments) {
      t->PostFragment (frag, 0);
      biggest = std::max (biggest, frag->payload.size);
      ASSERT_TRUE (reader.Next (&f));
      ASSERT_EQ (f.opcode, ws::kOpBinary);
      EXPECT_EQ (f.payload.size (), frag->payload.size);
    }
  }
  Snapshot snap;
  t->Snap (&snap, true);
  ASSERT_EQ (snap.clients.size (), 2u);
  for (const ClientSnapshot &cs : snap.clients) {
    if (cs.id != 1)
      continue;
    EXPECT_LE (cs.backlog_bytes, set.config.max_backlog_bytes + biggest + 1024);
    EXPECT_GT (cs.stats.fragments_dropped, 0u);
  }
}

TEST (IoThread, CloseFrameIsAnswered)
{
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, Quiet (), obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client c;
  Connect (t.get (), 3, &c);
  ASSERT_TRUE (obs.WaitAdded (1));
  c.Send (ws::kOpPing, "hi");
  Frame f;
  ASSERT_TRUE (c.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpPong);
  EXPECT_EQ (f.text (), "hi");
  c.Send (ws::kOpClose, std::string ("\x0f\xa0", 2));  // 4000
  ASSERT_TRUE (c.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpClose);
  EXPECT_EQ (f.close_code (), 4000);
  EXPECT_TRUE (c.WaitEof ());
  EXPECT_EQ (obs.RemovedReason (3), "client closed");
  EXPECT_EQ (t->load (), 0u);
}

TEST (IoThread, TooBigMessageCloses1009)
{
  Observed obs;
  IoThread::Settings set = QuietNoCloseTimeout ();
  set.max_message_size = 200;
  std::string error;
  auto t = IoThread::Start (0, set, obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client c;
  Connect (t.get (), 4, &c);
  ASSERT_TRUE (obs.WaitAdded (1));
  c.Send (ws::kOpText, std::string (201, 'x'));
  Frame f;
  ASSERT_TRUE (c.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpClose);
  EXPECT_EQ (f.close_code (), ws::kCloseTooBig);
  EXPECT_EQ (f.text ().substr (2), "message too big");
  // Then the connection ends (RFC 6455 7.1.7), without waiting for the viewer's close.
  EXPECT_TRUE (c.WaitEof ());
  EXPECT_FALSE (c.Next (&f, 100));
  EXPECT_EQ (obs.RemovedReason (4), "message too big");
}

// Frames RFC 6455 says fail the connection: the viewer gets a close frame with the code
// (after what it was sent before), then the connection ends; nothing it sent after the bad
// frame is heard.
TEST (IoThread, BadFramesFailTheConnection)
{
  struct Case
  {
    const char *name;
    std::vector<uint8_t> bytes;
    uint16_t code;
    const char *reason;
  };
  const std::string valid_start = "{\"type\":\"pause\"}";
  const Case cases[] = {
      {"rsv1", ClientFrame (ws::kOpText, valid_start, true, 0x40), 1002,
       "protocol error: reserved bits set"},
      {"rsv2", ClientFrame (ws::kOpPing, "p", true, 0x20), 1002,
       "protocol error: reserved bits set"},
      {"rsv3", ClientFrame (ws::kOpBinary, "b", true, 0x10), 1002,
       "protocol error: reserved bits set"},
      {"continuation first", ClientFrame (ws::kOpContinuation, "x"), 1002,
       "protocol error: continuation frame without a message"},
      {"text inside text",
       Cat ({ClientFrame (ws::kOpText, "a", false), ClientFrame (ws::kOpText, "b")}), 1002,
       "protocol error: new message inside a fragmented one"},
      {"binary inside binary",
       Cat ({ClientFrame (ws::kOpBinary, "a", false), ClientFrame (ws::kOpBinary, "b")}), 1002,
       "protocol error: new message inside a fragmented one"},
      {"bad utf-8", ClientFrame (ws::kOpText, "caf\xc3"), 1007,
       "invalid UTF-8 in a text message"},
      {"bad utf-8 fragmented",
       Cat ({ClientFrame (ws::kOpText, "\xed", false),
             ClientFrame (ws::kOpContinuation, "\xa0\x80")}),
       1007, "invalid UTF-8 in a text message"},
      {"close 999", ClientFrame (ws::kOpClose, std::string ("\x03\xe7", 2)), 1002,
       "protocol error: invalid close code"},
      {"close 1004", ClientFrame (ws::kOpClose, std::string ("\x03\xec", 2)), 1002,
       "protocol error: invalid close code"},
      {"close 1005", ClientFrame (ws::kOpClose, std::string ("\x03\xed", 2)), 1002,
       "protocol error: invalid close code"},
      {"close 1015", ClientFrame (ws::kOpClose, std::string ("\x03\xf7", 2)), 1002,
       "protocol error: invalid close code"},
      {"close 2999", ClientFrame (ws::kOpClose, std::string ("\x0b\xb7", 2)), 1002,
       "protocol error: invalid close code"},
      {"close 1-byte", ClientFrame (ws::kOpClose, "\x03"), 1002,
       "protocol error: 1-byte close payload"},
      {"close reason", ClientFrame (ws::kOpClose, std::string ("\x03\xe8\xff", 3)), 1007,
       "invalid UTF-8 in a close reason"},
  };
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, QuietNoCloseTimeout (), obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  uint64_t id = 100;
  for (const Case &k : cases) {
    SCOPED_TRACE (k.name);
    id++;
    Client c;
    Connect (t.get (), id, &c);
    ASSERT_TRUE (obs.WaitAdded (id - 100));
    // A ping first: answered (frames before the bad one are heard).
    c.Send (ws::kOpPing, "before");
    Frame f;
    ASSERT_TRUE (c.Next (&f));
    EXPECT_EQ (f.opcode, ws::kOpPong);
    EXPECT_EQ (f.text (), "before");
    c.SendRaw (Cat ({k.bytes, ClientFrame (ws::kOpPing, "after")}));
    ASSERT_TRUE (c.Next (&f));
    EXPECT_EQ (f.opcode, ws::kOpClose);
    EXPECT_EQ (f.close_code (), k.code);
    EXPECT_EQ (f.text ().substr (2), k.reason);
    EXPECT_TRUE (c.WaitEof ());
    EXPECT_FALSE (c.Next (&f, 0));  // no pong for "after"
    EXPECT_EQ (obs.RemovedReason (id), k.reason);
  }
  EXPECT_EQ (t->load (), 0u);
}

// Valid close codes, IANA-registered ones included, are echoed.
TEST (IoThread, ValidCloseCodesAreEchoed)
{
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, QuietNoCloseTimeout (), obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  uint64_t id = 200;
  for (uint16_t code : {1000, 1003, 1007, 1012, 1014, 3000, 4999}) {
    SCOPED_TRACE (code);
    id++;
    Client c;
    Connect (t.get (), id, &c);
    ASSERT_TRUE (obs.WaitAdded (id - 200));
    c.Send (ws::kOpClose, std::string ({char (code >> 8), char (code & 0xff)}) + "\xc3\xa9");
    Frame f;
    ASSERT_TRUE (c.Next (&f));
    EXPECT_EQ (f.opcode, ws::kOpClose);
    EXPECT_EQ (f.close_code (), code);
    EXPECT_TRUE (c.WaitEof ());
    EXPECT_EQ (obs.RemovedReason (id), "client closed");
  }
}

// A viewer that floods pings and never reads (a small receive buffer, soon full): its queue
// keeps at most one pong waiting (RFC 6455 §5.5.3), so 100,000 pings cost nothing that
// grows; once it reads, the last pong answers the last ping.
TEST (IoThread, PingFloodFromANonReadingViewerIsBounded)
{
  Observed obs;
  IoThread::Settings set = QuietNoCloseTimeout ();
  set.max_message_rate = 0;  // the bound under test is the queue's, not the rate's
  std::string error;
  auto t = IoThread::Start (0, set, obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client c;
  Connect (t.get (), 21, &c, 4096);
  ASSERT_TRUE (obs.WaitAdded (1));
  const uint32_t kPings = 100000;
  std::vector<uint8_t> flood;
  for (uint32_t i = 0; i < kPings; i++) {
    const uint8_t p[4] = {uint8_t (i >> 24), uint8_t (i >> 16), uint8_t (i >> 8), uint8_t (i)};
    std::vector<uint8_t> f = ClientFrame (ws::kOpPing, std::string ((const char *) p, 4));
    flood.insert (flood.end (), f.begin (), f.end ());
  }
  c.SendRaw (flood);  // blocks until the thread has read it all
  // The socket holds the flood's tail the thread has not read yet: whenever we look, the
  // backlog is at most a pong being written and one waiting (a pong a ping: 100s of KiB).
  Snapshot snap;
  for (int i = 0; i < 50; i++) {
    snap = Snapshot ();
    t->Snap (&snap, true);
    ASSERT_EQ (snap.clients.size (), 1u);
    ASSERT_LE (snap.clients[0].backlog_bytes, 2 * (10 + 512u))
        << "a pong per ping was queued";
    usleep (2000);
  }
  // Now it reads: pongs, the last of them for the last ping.
  Frame f, last_pong;
  size_t pongs = 0;
  while (c.Next (&f, 200)) {
    ASSERT_EQ (f.opcode, ws::kOpPong);
    pongs++;
    last_pong = f;
  }
  EXPECT_GE (pongs, 1u);
  EXPECT_LT (pongs, size_t (kPings));
  const uint32_t last = kPings - 1;
  EXPECT_EQ (last_pong.payload, (std::vector<uint8_t>{uint8_t (last >> 24), uint8_t (last >> 16),
                                                      uint8_t (last >> 8), uint8_t (last)}));
  EXPECT_EQ (obs.RemovedReason (21, 0), "");
}

// More frames a second than max_message_rate: closed with 1008.
TEST (IoThread, MessageRateLimitCloses1008)
{
  Observed obs;
  IoThread::Settings set = QuietNoCloseTimeout ();
  set.max_message_rate = 100;
  std::string error;
  auto t = IoThread::Start (0, set, obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client c;
  Connect (t.get (), 22, &c);
  ASSERT_TRUE (obs.WaitAdded (1));
  // 100,000 pings: past the limit whatever the thread's pace (it would have to take more
  // than 1,000 seconds for them).
  std::vector<uint8_t> flood;
  for (int i = 0; i < 100000; i++) {
    std::vector<uint8_t> f = ClientFrame (ws::kOpPing, "");
    flood.insert (flood.end (), f.begin (), f.end ());
  }
  // The thread stops reading once it closes: write what the socket takes, then read.
  size_t off = 0;
  while (off < flood.size ()) {
    ssize_t n = send (c.fd, flood.data () + off, flood.size () - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0)
      break;
    off += size_t (n);
  }
  Frame f;
  bool closed = false;
  while (c.Next (&f)) {
    if (f.opcode == ws::kOpClose) {
      closed = true;
      EXPECT_EQ (f.close_code (), ws::kClosePolicy);
      EXPECT_EQ (f.text ().substr (2), "too many messages: message rate limit reached");
      break;
    }
    EXPECT_EQ (f.opcode, ws::kOpPong);
    // Keep sending: the limit must be reached even if the socket took little at first.
    if (off < flood.size ()) {
      ssize_t n = send (c.fd, flood.data () + off, flood.size () - off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0)
        off += size_t (n);
    }
  }
  EXPECT_TRUE (closed);
  EXPECT_EQ (obs.RemovedReason (22, 60000), "too many messages: message rate limit reached");
}

TEST (IoThread, KeepalivePingsThenTimesOut)
{
  Observed obs;
  IoThread::Settings set = Quiet ();
  set.keepalive = 1;     // every tick
  set.tick_us = 30000;   // 30 ms: silent for 90 ms = dead
  std::string error;
  auto t = IoThread::Start (0, set, obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client quiet, alive;
  Connect (t.get (), 5, &quiet);
  Connect (t.get (), 6, &alive);
  ASSERT_TRUE (obs.WaitAdded (2));
  Frame f;
  ASSERT_TRUE (quiet.Next (&f));
  EXPECT_EQ (f.opcode, ws::kOpPing);
  EXPECT_EQ (f.text (), "ka");
  // `alive` answers every ping for a while; `quiet` never does.
  auto end = std::chrono::steady_clock::now () + std::chrono::milliseconds (400);
  while (std::chrono::steady_clock::now () < end) {
    if (alive.Next (&f, 50) && f.opcode == ws::kOpPing)
      alive.Send (ws::kOpPong, f.text ());
  }
  EXPECT_EQ (obs.RemovedReason (5), "keepalive timeout");
  EXPECT_EQ (obs.RemovedReason (6, 0), "");
  Snapshot snap;
  t->Snap (&snap, false);
  EXPECT_EQ (snap.viewers, 1u);
  EXPECT_EQ (snap.totals.disconnects["keepalive timeout"], 1u);
}

TEST (IoThread, ShutdownClosesWith1001)
{
  Stream s = MakeStream ("notes-g30.mp4");
  Observed obs;
  std::string error;
  auto t = IoThread::Start (0, Quiet (), obs.Callbacks (), &error);
  ASSERT_TRUE (t) << error;
  Client a, b;
  Connect (t.get (), 8, &a);
  Connect (t.get (), 9, &b);
  ASSERT_TRUE (obs.WaitAdded (2));
  t->PostInit (s.init);
  t.reset ();  // stops: everyone gets 1001
  for (Client *c : {&a, &b}) {
    Frame f, last;
    while (c->Next (&f, 1000))
      last = f;
    EXPECT_EQ (last.opcode, ws::kOpClose);
    EXPECT_EQ (last.close_code (), ws::kCloseGoingAway);
    EXPECT_TRUE (c->eof);
  }
  EXPECT_EQ (obs.RemovedReason (8, 0), "server stopped");
  EXPECT_EQ (obs.RemovedReason (9, 0), "server stopped");
  EXPECT_EQ (obs.released, 2);
}
