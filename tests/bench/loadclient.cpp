// loadclient: N WebSocket viewers (RFC 6455 client, masked frames) in one epoll
// thread, for benchmarking fan-out servers on one machine.
//
//   loadclient --port Q [--host 127.0.0.1] [--path /ws] --viewers N [--rate R/s]
//              [--stall 0.1] [--settle S] [--window S] [--drain S] [--max-pending K]
//              [--feeder-log LOG.csv] [--json OUT.json] [--csv OUT.csv] [--label TEXT]
//              [--mode messages|stream]
//
// Each viewer's binary payload is walked as ISO BMFF boxes (moov: track ids,
// handlers, trex defaults; moof: mfhd sequence, first-sample flags); an mdat is
// skipped without copying it (recv MSG_TRUNC). A fragment counts as received whole
// when the mdat after its moof is complete; it is identified by its mfhd sequence
// number (servers may rebase tfdt, never the sequence). --mode stream (for servers
// that broadcast raw TCP chunks, like the notes' Node.js server) treats all binary
// messages of a viewer as one byte stream and resynchronises on the next moof when
// it joined mid-box; --mode messages (default) does the same walk but counts a
// binary message that does not end on a box boundary as an error.
//
// Stalled viewers (--stall fraction, spread evenly) read until their first fragment,
// then never read again. They are left out of the latency, spread and throughput
// figures (which are those of the viewers that read).
//
// Timeline: connect N viewers at R/s (with at most K connecting or in the handshake
// at a time with --max-pending K: a server with a short listen backlog then gets no
// more SYNs than it can queue); when all are open (or given up), wait --settle
// seconds, then the steady window of --window seconds ("STEADY_START <ns>" and
// "STEADY_END <ns>" on stdout, flushed, for a driver that samples the server's CPU),
// then --drain seconds for the window's last fragments to arrive. Fragments whose
// first byte the feeder wrote (feeder log, CLOCK_MONOTONIC) inside the window are
// counted: latency = viewer got it whole - feeder wrote its first byte; spread =
// last viewer - first viewer to get it whole.
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "bmff.h"
#include "common.h"

using namespace bench;

namespace {

struct Options
{
  std::string host = "127.0.0.1", path = "/ws", feeder_log, json, csv, label;
  int port = 0;
  int viewers = 100;
  double rate = 500;      // connections per second
  double stall = 0;       // fraction of viewers that stop reading
  double settle = 2, window = 15, drain = 1.5;
  double ramp_timeout = 60;
  int max_pending = 0;    // at most this many viewers connecting or in the handshake (0: any)
  bool stream_mode = false;
};

struct Arrival
{
  std::vector<int64_t> t;  // when each reading viewer got it whole
};

struct Stats
{
  std::unordered_map<uint32_t, Arrival> frags;  // by mfhd sequence
  uint64_t window_bytes = 0, window_messages = 0;
  int64_t steady_start = 0, steady_end = 0;
  uint64_t nonkey_starts = 0, key_starts = 0, resyncs = 0, msg_errors = 0, skips = 0;
  uint64_t closed_by_server = 0, failed = 0, opened = 0, pings = 0;
  double ramp_s = 0;
  int not_open = 0;  // still connecting or in the handshake when the ramp ended
};

Options g_opt;
Stats g_stats;
uint32_t g_rng = 0x12345678;

uint32_t Rand ()
{
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

bool KnownBox (uint32_t t)
{
  static const uint32_t known[] = {FourCC ("ftyp"), FourCC ("moov"), FourCC ("moof"),
                                   FourCC ("mdat"), FourCC ("styp"), FourCC ("sidx"),
                                   FourCC ("prft"), FourCC ("emsg"), FourCC ("free"),
                                   FourCC ("skip"), FourCC ("mfra"), FourCC ("uuid")};
  for (uint32_t k : known)
    if (k == t)
      return true;
  return false;
}

// Box walk over a viewer's binary byte stream.
struct BoxParser
{
  enum St { kHeader, kCopy, kSkip, kSync } st = kHeader;
  uint8_t hdr[16];
  size_t hdr_len = 0;
  uint64_t left = 0;            // body bytes left in kCopy / kSkip
  bool in_mdat = false;
  uint32_t type = 0;
  std::vector<uint8_t> copy;    // whole box being copied (moov, moof)
  std::vector<uint8_t> scan;    // kSync: bytes being searched for a moof
  Init init;
  bool have_moof = false;
  Moof moof;
  bool stream_mode = false;

  bool AtBoundary () const { return st == kHeader && hdr_len == 0; }
  // Bytes that may be dropped unread right now (inside an mdat or an unneeded box).
  uint64_t Skippable () const { return st == kSkip ? left : 0; }
};

struct Viewer
{
  int fd = -1;
  int index = 0;
  enum St { kConnecting, kHandshake, kOpen, kClosed } st = kConnecting;
  bool stalled = false;
  bool reading = true;
  std::string hs;  // handshake response so far
  // Frame layer.
  uint8_t fh[14];
  size_t fh_len = 0;
  bool in_payload = false;
  uint8_t opcode = 0, msg_opcode = 0;
  bool fin = false;
  uint64_t payload_left = 0;
  std::string ctl;   // control frame payload
  std::string text;  // text message
  BoxParser box;
  bool got_first = false;
  uint64_t fragments = 0;
  int64_t opened_at = 0;
};

std::vector<Viewer> g_viewers;
int g_epoll = -1;
int g_pending = 0;  // viewers connecting or in the handshake

void SendFrame (Viewer &v, uint8_t opcode, const uint8_t *payload, size_t n)
{
  uint8_t buf[14 + 125];
  if (n > 125) n = 125;
  buf[0] = uint8_t (0x80 | opcode);
  buf[1] = uint8_t (0x80 | n);
  uint32_t mask = Rand ();
  memcpy (buf + 2, &mask, 4);
  for (size_t i = 0; i < n; i++)
    buf[6 + i] = payload[i] ^ buf[2 + (i & 3)];
  ssize_t w = send (v.fd, buf, 6 + n, MSG_NOSIGNAL | MSG_DONTWAIT);
  (void) w;  // a control frame this small is never partial on a fresh socket buffer
}

void CloseViewer (Viewer &v)
{
  if (v.st == Viewer::kConnecting || v.st == Viewer::kHandshake)
    g_pending--;
  if (v.fd >= 0) {
    epoll_ctl (g_epoll, EPOLL_CTL_DEL, v.fd, nullptr);
    close (v.fd);
    v.fd = -1;
  }
  v.st = Viewer::kClosed;
}

void StopReading (Viewer &v)
{
  v.reading = false;
  epoll_ctl (g_epoll, EPOLL_CTL_DEL, v.fd, nullptr);  // the socket stays open, unread
}

void FragmentComplete (Viewer &v, int64_t now)
{
  BoxParser &b = v.box;
  if (!b.have_moof)
    return;
  b.have_moof = false;
  v.fragments++;
  if (!v.got_first) {
    v.got_first = true;
    bool key = IsKeyframe (b.moof, b.init.valid ? &b.init : nullptr);
    if (key) g_stats.key_starts++;
    else g_stats.nonkey_starts++;
    if (v.stalled) {
      StopReading (v);
      return;
    }
  }
  if (!v.stalled)
    g_stats.frags[b.moof.sequence].t.push_back (now);
}

void BoxDone (Viewer &v)
{
  BoxParser &b = v.box;
  if (b.type == FourCC ("moov")) {
    ParseMoov (b.copy.data () + 8, b.copy.size () - 8, &b.init);
  } else if (b.type == FourCC ("moof")) {
    b.have_moof = ParseMoof (b.copy.data (), b.copy.size (), b.init.valid ? &b.init : nullptr, &b.moof);
  }
}

void FeedBoxes (Viewer &v, const uint8_t *p, size_t n, int64_t now);

// Looks for "....moof....mfhd" in b.scan; on success continues the walk from there.
void Resync (Viewer &v, int64_t now)
{
  BoxParser &b = v.box;
  std::vector<uint8_t> &s = b.scan;
  for (size_t i = 0; i + 16 <= s.size (); i++) {
    if (memcmp (&s[i + 4], "moof", 4) == 0 && memcmp (&s[i + 12], "mfhd", 4) == 0) {
      uint32_t size = rd32 (&s[i]);
      if (size < 24 || size > (1u << 24))
        continue;
      std::vector<uint8_t> rest (s.begin () + long (i), s.end ());
      s.clear ();
      b.st = BoxParser::kHeader;
      b.hdr_len = 0;
      b.have_moof = false;
      FeedBoxes (v, rest.data (), rest.size (), now);
      return;
    }
  }
  if (s.size () > 15)
    s.erase (s.begin (), s.end () - 15);
}

void FeedBoxes (Viewer &v, const uint8_t *p, size_t n, int64_t now)
{
  BoxParser &b = v.box;
  while (n > 0 && v.reading) {
    switch (b.st) {
      case BoxParser::kHeader: {
        size_t need = 8;
        while (b.hdr_len < need && n > 0) {
          b.hdr[b.hdr_len++] = *p++;
          n--;
          if (b.hdr_len == 8 && rd32 (b.hdr) == 1)
            need = 16;
        }
        if (b.hdr_len < need)
          return;
        uint64_t size = rd32 (b.hdr);
        if (size == 1)
          size = rd64 (b.hdr + 8);
        b.type = rd32 (b.hdr + 4);
        if (size < need || size > (uint64_t (1) << 32) || !KnownBox (b.type)) {
          // Joined mid-box (raw chunk broadcast) or garbage: find the next moof.
          g_stats.resyncs++;
          b.st = BoxParser::kSync;
          b.scan.assign (b.hdr, b.hdr + b.hdr_len);
          b.hdr_len = 0;
          b.have_moof = false;
          Resync (v, now);
          break;
        }
        b.left = size - need;
        b.in_mdat = b.type == FourCC ("mdat");
        if (b.type == FourCC ("moov") || b.type == FourCC ("moof")) {
          b.copy.assign (b.hdr, b.hdr + need);
          b.st = BoxParser::kCopy;
        } else {
          b.st = BoxParser::kSkip;
        }
        b.hdr_len = 0;
        if (b.left == 0) {
          if (b.st == BoxParser::kCopy) BoxDone (v);
          else if (b.in_mdat) FragmentComplete (v, now);
          b.st = BoxParser::kHeader;
        }
        break;
      }
      case BoxParser::kCopy: {
        size_t take = size_t (std::min<uint64_t> (b.left, n));
        b.copy.insert (b.copy.end (), p, p + take);
        p += take;
        n -= take;
        b.left -= take;
        if (b.left == 0) {
          BoxDone (v);
          b.st = BoxParser::kHeader;
        }
        break;
      }
      case BoxParser::kSkip: {
        size_t take = size_t (std::min<uint64_t> (b.left, n));
        p += take;
        n -= take;
        b.left -= take;
        if (b.left == 0) {
          b.st = BoxParser::kHeader;
          if (b.in_mdat)
            FragmentComplete (v, now);
        }
        break;
      }
      case BoxParser::kSync:
        b.scan.insert (b.scan.end (), p, p + n);
        n = 0;
        Resync (v, now);
        break;
    }
  }
}

// A binary message ended.
void MessageEnd (Viewer &v)
{
  if (!v.box.stream_mode && !v.box.AtBoundary ())
    g_stats.msg_errors++;
}

void FrameEnd (Viewer &v, int64_t now)
{
  (void) now;
  switch (v.opcode) {
    case 0x9:  // ping -> pong
      g_stats.pings++;
      SendFrame (v, 0xA, (const uint8_t *) v.ctl.data (), v.ctl.size ());
      break;
    case 0x8: {  // close: answer and go
      g_stats.closed_by_server++;
      SendFrame (v, 0x8, (const uint8_t *) v.ctl.data (), std::min<size_t> (v.ctl.size (), 2));
      CloseViewer (v);
      return;
    }
    case 0xA:
      break;
    default:
      if (v.fin) {
        if (v.msg_opcode == 0x2)
          MessageEnd (v);
        else if (v.msg_opcode == 0x1 && v.text.find ("\"skip\"") != std::string::npos)
          g_stats.skips++;
        v.text.clear ();
      }
  }
  v.ctl.clear ();
}

// Frame layer over the bytes read from the socket.
void FeedFrames (Viewer &v, const uint8_t *p, size_t n, int64_t now)
{
  while (n > 0 && v.st == Viewer::kOpen && v.reading) {
    if (!v.in_payload) {
      v.fh[v.fh_len++] = *p++;
      n--;
      if (v.fh_len < 2)
        continue;
      uint8_t l7 = v.fh[1] & 0x7f;
      size_t need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((v.fh[1] & 0x80) ? 4 : 0);
      if (v.fh_len < need)
        continue;
      v.fin = v.fh[0] & 0x80;
      v.opcode = v.fh[0] & 0x0f;
      uint64_t len = l7;
      if (l7 == 126)
        len = (uint64_t (v.fh[2]) << 8) | v.fh[3];
      else if (l7 == 127)
        len = rd64 (v.fh + 2);
      if (v.opcode == 0x1 || v.opcode == 0x2)
        v.msg_opcode = v.opcode;
      v.payload_left = len;
      v.fh_len = 0;
      v.in_payload = true;
      if (len == 0) {
        v.in_payload = false;
        FrameEnd (v, now);
      }
      continue;
    }
    size_t take = size_t (std::min<uint64_t> (v.payload_left, n));
    if (v.opcode >= 0x8)
      v.ctl.append ((const char *) p, take);
    else if (v.msg_opcode == 0x2)
      FeedBoxes (v, p, take, now);
    else if (v.text.size () < 65536)
      v.text.append ((const char *) p, take);
    p += take;
    n -= take;
    v.payload_left -= take;
    if (v.payload_left == 0) {
      v.in_payload = false;
      FrameEnd (v, now);
    }
  }
}

void CountBytes (Viewer &v, size_t n, int64_t now)
{
  if (!v.stalled && now >= g_stats.steady_start && g_stats.steady_start && now < g_stats.steady_end) {
    g_stats.window_bytes += n;
  }
}

uint8_t g_buf[1 << 18];

void OnReadable (Viewer &v)
{
  for (int round = 0; round < 8 && v.st != Viewer::kClosed && v.reading; round++) {
    // Inside an mdat with nothing buffered: drop the bytes in the kernel, no copy.
    if (v.st == Viewer::kOpen && v.in_payload && v.msg_opcode == 0x2 && v.opcode < 0x8) {
      uint64_t skip = std::min<uint64_t> (v.payload_left, v.box.Skippable ());
      if (skip >= 2048) {
        ssize_t r = recv (v.fd, g_buf, size_t (std::min<uint64_t> (skip, sizeof g_buf)),
                          MSG_TRUNC | MSG_DONTWAIT);
        if (r > 0) {
          int64_t now = NowNs ();
          CountBytes (v, size_t (r), now);
          v.payload_left -= uint64_t (r);
          v.box.left -= uint64_t (r);
          if (v.box.left == 0) {
            v.box.st = BoxParser::kHeader;
            if (v.box.in_mdat)
              FragmentComplete (v, now);
          }
          if (v.payload_left == 0) {
            v.in_payload = false;
            FrameEnd (v, now);
          }
          continue;
        }
        if (r == 0) { CloseViewer (v); return; }
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        CloseViewer (v);
        return;
      }
    }
    ssize_t r = recv (v.fd, g_buf, sizeof g_buf, MSG_DONTWAIT);
    if (r == 0) { CloseViewer (v); return; }
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      CloseViewer (v);
      return;
    }
    int64_t now = NowNs ();
    const uint8_t *p = g_buf;
    size_t n = size_t (r);
    if (v.st == Viewer::kHandshake) {
      v.hs.append ((const char *) p, n);
      size_t e = v.hs.find ("\r\n\r\n");
      if (e == std::string::npos) {
        if (v.hs.size () > 16384) { g_stats.failed++; CloseViewer (v); }
        continue;
      }
      if (v.hs.compare (0, 12, "HTTP/1.1 101") != 0) {
        fprintf (stderr, "loadclient: viewer %d refused: %.*s\n", v.index,
                 int (v.hs.find ("\r\n")), v.hs.c_str ());
        g_stats.failed++;
        CloseViewer (v);
        return;
      }
      std::string rest = v.hs.substr (e + 4);
      v.hs.clear ();
      v.hs.shrink_to_fit ();
      v.st = Viewer::kOpen;
      g_pending--;
      v.opened_at = now;
      g_stats.opened++;
      CountBytes (v, rest.size (), now);
      FeedFrames (v, (const uint8_t *) rest.data (), rest.size (), now);
      continue;
    }
    CountBytes (v, n, now);
    FeedFrames (v, p, n, now);
  }
}

void StartConnect (Viewer &v)
{
  v.fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (v.fd < 0) {
    perror ("socket");
    g_stats.failed++;
    g_pending--;
    v.st = Viewer::kClosed;
    return;
  }
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons (uint16_t (g_opt.port));
  inet_pton (AF_INET, g_opt.host.c_str (), &a.sin_addr);
  int r = connect (v.fd, (sockaddr *) &a, sizeof a);
  if (r < 0 && errno != EINPROGRESS) {
    perror ("connect");
    g_stats.failed++;
    CloseViewer (v);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT | EPOLLIN;
  ev.data.u32 = uint32_t (v.index);
  epoll_ctl (g_epoll, EPOLL_CTL_ADD, v.fd, &ev);
}

void OnConnected (Viewer &v)
{
  int err = 0;
  socklen_t len = sizeof err;
  getsockopt (v.fd, SOL_SOCKET, SO_ERROR, &err, &len);
  if (err) {
    fprintf (stderr, "loadclient: viewer %d: connect: %s\n", v.index, strerror (err));
    g_stats.failed++;
    CloseViewer (v);
    return;
  }
  char key_raw[16];
  for (char &c : key_raw) c = char (Rand ());
  std::string key = Base64 (std::string (key_raw, 16));
  std::string req = "GET " + g_opt.path + " HTTP/1.1\r\nHost: " + g_opt.host + ":" +
                    std::to_string (g_opt.port) +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                    "\r\nSec-WebSocket-Version: 13\r\n\r\n";
  if (send (v.fd, req.data (), req.size (), MSG_NOSIGNAL) != ssize_t (req.size ())) {
    g_stats.failed++;
    CloseViewer (v);
    return;
  }
  v.st = Viewer::kHandshake;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u32 = uint32_t (v.index);
  epoll_ctl (g_epoll, EPOLL_CTL_MOD, v.fd, &ev);
}

struct FeederEntry
{
  uint32_t seq;
  int64_t first_ns;
  uint64_t bytes;
  bool key;
};

std::vector<FeederEntry> ReadFeederLog (const std::string &path)
{
  std::vector<FeederEntry> out;
  FILE *f = fopen (path.c_str (), "r");
  if (!f)
    return out;
  char line[256];
  while (fgets (line, sizeof line, f)) {
    unsigned seq;
    long long t0, t1;
    unsigned long long bytes;
    int key;
    if (sscanf (line, "%u,%lld,%lld,%llu,%d", &seq, &t0, &t1, &bytes, &key) == 5)
      out.push_back ({seq, t0, bytes, key != 0});
  }
  fclose (f);
  return out;
}

double CpuSeconds ()
{
  rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

void Usage ()
{
  fprintf (stderr,
           "usage: loadclient --port Q [--host H] [--path /ws] --viewers N [--rate R] [--stall F]\n"
           "                  [--settle S] [--window S] [--drain S] [--ramp-timeout S] [--max-pending K]\n"
           "                  [--feeder-log LOG] [--json OUT] [--csv OUT] [--label TEXT]\n"
           "                  [--mode messages|stream]\n");
  exit (2);
}

}  // namespace

int
main (int argc, char **argv)
{
  Options &o = g_opt;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&] () -> std::string {
      if (i + 1 >= argc) Usage ();
      return argv[++i];
    };
    if (a == "--host") o.host = val ();
    else if (a == "--port") o.port = atoi (val ().c_str ());
    else if (a == "--path") o.path = val ();
    else if (a == "--viewers") o.viewers = atoi (val ().c_str ());
    else if (a == "--rate") o.rate = atof (val ().c_str ());
    else if (a == "--stall") o.stall = atof (val ().c_str ());
    else if (a == "--settle") o.settle = atof (val ().c_str ());
    else if (a == "--window") o.window = atof (val ().c_str ());
    else if (a == "--drain") o.drain = atof (val ().c_str ());
    else if (a == "--ramp-timeout") o.ramp_timeout = atof (val ().c_str ());
    else if (a == "--max-pending") o.max_pending = atoi (val ().c_str ());
    else if (a == "--feeder-log") o.feeder_log = val ();
    else if (a == "--json") o.json = val ();
    else if (a == "--csv") o.csv = val ();
    else if (a == "--label") o.label = val ();
    else if (a == "--mode") o.stream_mode = val () == "stream";
    else Usage ();
  }
  if (!o.port || o.viewers <= 0) Usage ();
  signal (SIGPIPE, SIG_IGN);
  rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < rlim_t (o.viewers + 64)) {
    rl.rlim_cur = std::min<rlim_t> (rl.rlim_max, rlim_t (o.viewers + 64));
    setrlimit (RLIMIT_NOFILE, &rl);
  }

  g_epoll = epoll_create1 (0);
  g_viewers.resize (size_t (o.viewers));
  int nstalled = int (o.stall * o.viewers + 0.5);
  for (int i = 0; i < o.viewers; i++) {
    Viewer &v = g_viewers[size_t (i)];
    v.index = i;
    // Spread stalled viewers evenly over the connection order.
    v.stalled = nstalled > 0 && (int64_t (i) * nstalled / o.viewers) != (int64_t (i + 1) * nstalled / o.viewers);
    v.box.stream_mode = o.stream_mode;
  }

  double cpu0 = CpuSeconds ();
  int64_t t0 = NowNs ();
  int next = 0;
  int64_t all_open_at = 0;
  int64_t ramp_deadline = t0 + int64_t (o.ramp_timeout * 1e9);
  int64_t stop_at = 0;
  double cpu_window_start = 0, cpu_window = 0;
  bool steady_printed = false, end_printed = false;
  int64_t last_progress = t0;
  std::vector<epoll_event> evs (4096);
  for (;;) {
    int64_t now = NowNs ();
    // Connect at the given rate.
    int due = std::min<int64_t> (o.viewers, int64_t (double (now - t0) / 1e9 * o.rate) + 1);
    while (next < due && (!o.max_pending || g_pending < o.max_pending)) {
      g_pending++;
      StartConnect (g_viewers[size_t (next++)]);
    }
    if (!all_open_at && (next == o.viewers || now > ramp_deadline)) {
      uint64_t settled = 0;
      for (const Viewer &v : g_viewers)
        settled += v.st == Viewer::kOpen || v.st == Viewer::kClosed;
      if (settled == uint64_t (o.viewers) || now > ramp_deadline) {
        next = o.viewers;  // no more connections after the ramp
        all_open_at = now;
        g_stats.steady_start = now + int64_t (o.settle * 1e9);
        g_stats.steady_end = g_stats.steady_start + int64_t (o.window * 1e9);
        stop_at = g_stats.steady_end + int64_t (o.drain * 1e9);
        int st[4] = {0, 0, 0, 0};
        for (const Viewer &v : g_viewers)
          st[v.st]++;
        g_stats.ramp_s = (now - t0) / 1e9;
        g_stats.not_open = st[Viewer::kConnecting] + st[Viewer::kHandshake];
        fprintf (stderr,
                 "loadclient: %llu/%d viewers open after %.2f s (still connecting %d, in "
                 "handshake %d, closed %d)\n",
                 (unsigned long long) g_stats.opened, o.viewers, g_stats.ramp_s,
                 st[Viewer::kConnecting], st[Viewer::kHandshake], st[Viewer::kClosed]);
      }
    }
    if (all_open_at && !steady_printed && now >= g_stats.steady_start) {
      printf ("STEADY_START %lld\n", (long long) now);
      fflush (stdout);
      steady_printed = true;
      cpu_window_start = CpuSeconds ();
    }
    if (all_open_at && !end_printed && now >= g_stats.steady_end) {
      printf ("STEADY_END %lld\n", (long long) now);
      fflush (stdout);
      end_printed = true;
      cpu_window = CpuSeconds () - cpu_window_start;
    }
    if (all_open_at && now >= stop_at)
      break;
    if (!all_open_at && now - last_progress > 5000000000LL) {
      last_progress = now;
      fprintf (stderr, "loadclient: %.0f s: %llu open, %d pending, %d started\n", (now - t0) / 1e9,
               (unsigned long long) g_stats.opened, g_pending, next);
    }
    int timeout = next < o.viewers ? 1 : 5;
    int n = epoll_wait (g_epoll, evs.data (), int (evs.size ()), timeout);
    for (int i = 0; i < n; i++) {
      Viewer &v = g_viewers[evs[size_t (i)].data.u32];
      if (v.st == Viewer::kClosed)
        continue;
      if (v.st == Viewer::kConnecting) {
        if (evs[size_t (i)].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
          OnConnected (v);
        continue;
      }
      OnReadable (v);
    }
  }
  double cpu_total = CpuSeconds () - cpu0;

  // Summaries.
  std::vector<FeederEntry> feed = ReadFeederLog (o.feeder_log);
  // Viewers that read and are still connected: each should get every fragment.
  int reading = 0, without_fragment = 0;
  for (const Viewer &v : g_viewers) {
    reading += !v.stalled && v.st == Viewer::kOpen;
    without_fragment += !v.stalled && v.st == Viewer::kOpen && !v.got_first;
  }
  std::vector<int64_t> lat, spread;
  uint64_t expected = 0, got = 0, in_window = 0, window_bytes_fed = 0;
  for (const FeederEntry &e : feed) {
    if (e.first_ns < g_stats.steady_start || e.first_ns >= g_stats.steady_end)
      continue;
    in_window++;
    window_bytes_fed += e.bytes;
    expected += uint64_t (reading);
    auto it = g_stats.frags.find (e.seq);
    if (it == g_stats.frags.end () || it->second.t.empty ())
      continue;
    const std::vector<int64_t> &t = it->second.t;
    got += t.size ();
    int64_t mn = INT64_MAX, mx = INT64_MIN;
    for (int64_t x : t) {
      lat.push_back (x - e.first_ns);
      mn = std::min (mn, x);
      mx = std::max (mx, x);
    }
    spread.push_back (mx - mn);
  }
  std::sort (lat.begin (), lat.end ());
  std::sort (spread.begin (), spread.end ());
  double win = o.window;
  auto ms = [] (int64_t ns) { return ns / 1e6; };
  char json[4096];
  snprintf (json, sizeof json,
            "{\"label\":\"%s\",\"viewers\":%d,\"stalled\":%d,\"opened\":%llu,\"failed\":%llu,"
            "\"ramp_s\":%.2f,\"not_open_at_ramp_end\":%d,"
            "\"reading_viewers\":%d,\"viewers_without_fragment\":%d,\"closed_by_server\":%llu,\"window_s\":%.3f,"
            "\"fragments_in_window\":%llu,\"deliveries_expected\":%llu,\"deliveries\":%llu,"
            "\"delivered_ratio\":%.6f,"
            "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
            "\"spread_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
            "\"nonkey_starts\":%llu,\"key_starts\":%llu,\"resyncs\":%llu,\"message_errors\":%llu,"
            "\"skip_messages\":%llu,\"pings\":%llu,"
            "\"throughput_mbps\":%.3f,\"per_viewer_mbps\":%.4f,\"source_mbps\":%.4f,"
            "\"client_cpu_s\":%.3f,\"client_cpu_window_pct\":%.1f}",
            o.label.c_str (), o.viewers, nstalled, (unsigned long long) g_stats.opened,
            (unsigned long long) g_stats.failed, g_stats.ramp_s, g_stats.not_open, reading,
            without_fragment,
            (unsigned long long) g_stats.closed_by_server, win, (unsigned long long) in_window,
            (unsigned long long) expected, (unsigned long long) got,
            expected ? double (got) / double (expected) : 0.0, ms (Percentile (lat, 0.5)),
            ms (Percentile (lat, 0.99)), lat.empty () ? 0.0 : ms (lat.back ()),
            ms (Percentile (spread, 0.5)), ms (Percentile (spread, 0.99)),
            spread.empty () ? 0.0 : ms (spread.back ()), (unsigned long long) g_stats.nonkey_starts,
            (unsigned long long) g_stats.key_starts, (unsigned long long) g_stats.resyncs,
            (unsigned long long) g_stats.msg_errors, (unsigned long long) g_stats.skips,
            (unsigned long long) g_stats.pings, g_stats.window_bytes * 8 / win / 1e6,
            reading ? g_stats.window_bytes * 8 / win / 1e6 / reading : 0.0,
            window_bytes_fed * 8 / win / 1e6, cpu_total, cpu_window / win * 100);
  printf ("RESULT %s\n", json);
  fflush (stdout);
  if (!o.json.empty ()) {
    FILE *f = fopen (o.json.c_str (), "w");
    if (f) { fprintf (f, "%s\n", json); fclose (f); }
  }
  if (!o.csv.empty ()) {
    FILE *f = fopen (o.csv.c_str (), "w");
    if (f) {
      fprintf (f, "seq,feeder_first_byte_ns,viewers_got,first_ns,last_ns,p50_latency_ms\n");
      for (const FeederEntry &e : feed) {
        if (e.first_ns < g_stats.steady_start || e.first_ns >= g_stats.steady_end)
          continue;
        auto it = g_stats.frags.find (e.seq);
        std::vector<int64_t> t = it == g_stats.frags.end () ? std::vector<int64_t> () : it->second.t;
        std::sort (t.begin (), t.end ());
        fprintf (f, "%u,%lld,%zu,%lld,%lld,%.3f\n", e.seq, (long long) e.first_ns, t.size (),
                 (long long) (t.empty () ? 0 : t.front ()), (long long) (t.empty () ? 0 : t.back ()),
                 t.empty () ? 0.0 : (Percentile (t, 0.5) - e.first_ns) / 1e6);
      }
      fclose (f);
    }
  }
  for (Viewer &v : g_viewers)
    if (v.fd >= 0)
      close (v.fd);
  return 0;
}
