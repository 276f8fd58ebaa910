// minbroadcast: the smallest fan-out server that does the job, as a reference for
// what this machine can do. One thread, epoll. Reads a fragmented MP4 from one TCP
// publisher, splits it into top-level boxes, keeps the init segment (ftyp+moov),
// and writes each fragment ([styp...] moof mdat) to every WebSocket viewer with one
// writev(frame header, shared payload): the payload is read once and shared, no
// per-viewer copy, no rebasing, no JSON messages. New viewers get the init segment
// and start at the next keyframe fragment. A viewer whose unwritten queue passes
// --max-backlog bytes (default 16 MiB) drops it and waits for the next keyframe.
// TCP_NODELAY on viewer sockets.
//
//   minbroadcast --ingest-port P --port Q [--host 127.0.0.1] [--max-backlog BYTES]
//                [--sndbuf BYTES]   (SO_SNDBUF of viewer sockets; default: kernel autotuning)
#include <arpa/inet.h>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <unordered_map>
#include <vector>

#include "bmff.h"
#include "common.h"

using namespace bench;

namespace {

struct Message
{
  uint8_t hdr[10];
  size_t hdr_len = 0;
  std::vector<uint8_t> payload;
  bool key = false;
  size_t size () const { return hdr_len + payload.size (); }
};
using MessagePtr = std::shared_ptr<const Message>;

struct Out
{
  MessagePtr m;
  size_t off = 0;  // bytes of (hdr + payload) already written
};

struct Viewer
{
  int fd = -1;
  enum St { kHttp, kNeedInit, kWaitKey, kLive } st = kHttp;
  std::string req;
  std::deque<Out> q;
  uint64_t queued = 0;
  bool want_out = false;
};

enum Kind : uint32_t { kIngestListen = 1, kViewerListen = 2, kPublisher = 3 };

int g_ep = -1, g_pub = -1;
uint64_t g_max_backlog = 16u << 20;
int g_sndbuf = 0;  // SO_SNDBUF for viewer sockets (0: kernel autotuning)
std::unordered_map<int, Viewer *> g_viewers;
MessagePtr g_init;
Init g_init_info;
uint64_t g_dropped = 0;
volatile sig_atomic_t g_stop = 0;

void OnSignal (int) { g_stop = 1; }

int Listen (const std::string &host, int port)
{
  int fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons (uint16_t (port));
  inet_pton (AF_INET, host.c_str (), &a.sin_addr);
  if (bind (fd, (sockaddr *) &a, sizeof a) < 0 || listen (fd, 4096) < 0) {
    perror ("bind/listen");
    exit (1);
  }
  return fd;
}

void Watch (int fd, uint32_t events, uint64_t data, int op = EPOLL_CTL_ADD)
{
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
  epoll_ctl (g_ep, op, fd, &ev);
}

// Viewer fds are tagged with bit 32 set; the others carry their Kind.
uint64_t ViewerTag (int fd) { return (uint64_t (1) << 32) | uint32_t (fd); }

void CloseViewer (Viewer *v)
{
  epoll_ctl (g_ep, EPOLL_CTL_DEL, v->fd, nullptr);
  close (v->fd);
  g_viewers.erase (v->fd);
  delete v;
}

void SetWantOut (Viewer *v, bool on)
{
  if (v->want_out == on)
    return;
  v->want_out = on;
  Watch (v->fd, on ? uint32_t (EPOLLIN | EPOLLOUT) : uint32_t (EPOLLIN), ViewerTag (v->fd), EPOLL_CTL_MOD);
}

// Writes as much of the queue as the socket takes. Returns false if the viewer is gone.
bool Flush (Viewer *v)
{
  while (!v->q.empty ()) {
    iovec iov[64];
    int n = 0;
    for (const Out &o : v->q) {
      if (n + 2 > 64)
        break;
      const Message &m = *o.m;
      size_t off = o.off;
      if (off < m.hdr_len) {
        iov[n++] = {(void *) (m.hdr + off), m.hdr_len - off};
        off = 0;
      } else {
        off -= m.hdr_len;
      }
      if (off < m.payload.size ())
        iov[n++] = {(void *) (m.payload.data () + off), m.payload.size () - off};
    }
    ssize_t w = writev (v->fd, iov, n);
    if (w < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        SetWantOut (v, true);
        return true;
      }
      CloseViewer (v);
      return false;
    }
    size_t left = size_t (w);
    v->queued -= std::min<uint64_t> (v->queued, left);
    while (left && !v->q.empty ()) {
      Out &o = v->q.front ();
      size_t rest = o.m->size () - o.off;
      if (left < rest) {
        o.off += left;
        left = 0;
        break;
      }
      left -= rest;
      v->q.pop_front ();
    }
    if (!v->q.empty () && size_t (w) == 0)
      break;
  }
  if (v->q.empty ())
    SetWantOut (v, false);
  return true;
}

// Queues a message; writes at once when nothing is waiting (the common case: one
// writev(header, payload) per viewer and fragment).
bool Send (Viewer *v, const MessagePtr &m)
{
  if (v->q.empty ()) {
    iovec iov[2] = {{(void *) m->hdr, m->hdr_len}, {(void *) m->payload.data (), m->payload.size ()}};
    ssize_t w = writev (v->fd, iov, 2);
    if (w == ssize_t (m->size ()))
      return true;
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      CloseViewer (v);
      return false;
    }
    v->q.push_back ({m, w > 0 ? size_t (w) : 0});
    v->queued += m->size () - (w > 0 ? size_t (w) : 0);
    SetWantOut (v, true);
    return true;
  }
  if (v->queued + m->size () > g_max_backlog) {
    // Too slow: keep a partly written message, drop the rest, wait for a keyframe.
    size_t keep = v->q.front ().off > 0 ? 1 : 0;
    while (v->q.size () > keep) {
      g_dropped++;
      v->q.pop_back ();
    }
    v->queued = keep ? v->q.front ().m->size () - v->q.front ().off : 0;
    v->st = Viewer::kWaitKey;
    if (!m->key)
      return true;
    v->st = Viewer::kLive;
  }
  v->q.push_back ({m, 0});
  v->queued += m->size ();
  return true;
}

void Broadcast (const MessagePtr &m)
{
  std::vector<Viewer *> vs;
  vs.reserve (g_viewers.size ());
  for (auto &kv : g_viewers)
    vs.push_back (kv.second);
  for (Viewer *v : vs) {
    if (v->st == Viewer::kWaitKey && m->key)
      v->st = Viewer::kLive;
    if (v->st == Viewer::kLive)
      Send (v, m);
  }
}

MessagePtr MakeMessage (std::vector<uint8_t> &&payload, bool key)
{
  auto m = std::make_shared<Message> ();
  m->payload = std::move (payload);
  m->hdr_len = FrameHeader (0x2, m->payload.size (), m->hdr);
  m->key = key;
  return m;
}

// Publisher byte stream -> boxes -> init / fragments.
std::vector<uint8_t> g_in;
size_t g_in_pos = 0;
std::vector<uint8_t> g_ftyp, g_frag;
bool g_frag_has_moof = false;
Moof g_moof;

void OnBox (const uint8_t *p, size_t n, uint32_t type)
{
  if (type == FourCC ("ftyp")) {
    g_ftyp.assign (p, p + n);
    g_frag.clear ();
    g_frag_has_moof = false;
  } else if (type == FourCC ("moov")) {
    std::vector<uint8_t> init = g_ftyp;
    init.insert (init.end (), p, p + n);
    ParseMoov (p + 8, n - 8, &g_init_info);
    g_init = MakeMessage (std::move (init), false);
    std::vector<Viewer *> vs;
    for (auto &kv : g_viewers)
      vs.push_back (kv.second);
    for (Viewer *v : vs)
      if (v->st != Viewer::kHttp) {
        v->st = Viewer::kWaitKey;
        Send (v, g_init);
      }
  } else if (type == FourCC ("mdat")) {
    if (!g_frag_has_moof || !g_init) {
      g_frag.clear ();
      g_frag_has_moof = false;
      return;
    }
    g_frag.insert (g_frag.end (), p, p + n);
    bool key = IsKeyframe (g_moof, &g_init_info);
    MessagePtr m = MakeMessage (std::move (g_frag), key);
    g_frag = {};
    g_frag_has_moof = false;
    Broadcast (m);
  } else if (type == FourCC ("mfra") || type == FourCC ("free") || type == FourCC ("skip")) {
  } else {
    if (type == FourCC ("moof")) {
      ParseMoof (p, n, &g_init_info, &g_moof);
      g_frag_has_moof = true;
    }
    g_frag.insert (g_frag.end (), p, p + n);
  }
}

void OnPublisherData ()
{
  // A few reads per wakeup (level-triggered): an overloaded broadcaster must not
  // starve its listener and its viewers' EPOLLOUT by reading the publisher forever.
  for (int round = 0; round < 4; round++) {
    if (g_in.size () - g_in_pos < (1 << 16))
      g_in.resize (g_in_pos + (1 << 17));
    size_t have = g_in_pos;
    ssize_t r = read (g_pub, g_in.data () + have, g_in.size () - have);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      fprintf (stderr, "minbroadcast: publisher gone\n");
      epoll_ctl (g_ep, EPOLL_CTL_DEL, g_pub, nullptr);
      close (g_pub);
      g_pub = -1;
      g_in_pos = 0;
      return;
    }
    if (r < 0)
      return;
    g_in_pos += size_t (r);
    // Whole boxes from the front.
    size_t pos = 0;
    while (g_in_pos - pos >= 8) {
      const uint8_t *s = g_in.data () + pos;
      uint64_t size = rd32 (s);
      if (size == 1) {
        if (g_in_pos - pos < 16)
          break;
        size = rd64 (s + 8);
      }
      if (size < 8) {
        fprintf (stderr, "minbroadcast: bad box, dropping the publisher\n");
        close (g_pub);
        g_pub = -1;
        return;
      }
      if (size > g_in_pos - pos) {
        if (g_in.size () < pos + size)
          g_in.resize (pos + size_t (size));  // room for the whole box
        break;
      }
      OnBox (s, size_t (size), rd32 (s + 4));
      pos += size_t (size);
    }
    if (pos) {
      memmove (g_in.data (), g_in.data () + pos, g_in_pos - pos);
      g_in_pos -= pos;
    }
  }
}

void OnViewerReadable (Viewer *v)
{
  char buf[4096];
  for (;;) {
    ssize_t r = read (v->fd, buf, sizeof buf);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
      CloseViewer (v);
      return;
    }
    if (r < 0)
      return;
    if (v->st != Viewer::kHttp)
      continue;  // pongs, closes: not needed here
    v->req.append (buf, size_t (r));
    size_t e = v->req.find ("\r\n\r\n");
    if (e == std::string::npos) {
      if (v->req.size () > 16384) { CloseViewer (v); return; }
      continue;
    }
    std::string key;
    size_t p = 0;
    while ((p = v->req.find ("\r\n", p)) != std::string::npos && p < e) {
      p += 2;
      if (strncasecmp (v->req.c_str () + p, "sec-websocket-key:", 18) == 0) {
        size_t s = p + 18, end = v->req.find ("\r\n", s);
        key = v->req.substr (s, end - s);
        key.erase (0, key.find_first_not_of (" \t"));
        key.erase (key.find_last_not_of (" \t") + 1);
      }
    }
    if (key.empty ()) {
      const char *bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
      (void) !write (v->fd, bad, strlen (bad));
      CloseViewer (v);
      return;
    }
    std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                       WebSocketAccept (key) + "\r\n\r\n";
    v->req.clear ();
    auto m = std::make_shared<Message> ();
    m->payload.assign (resp.begin (), resp.end ());  // no frame header: raw HTTP
    v->st = Viewer::kNeedInit;
    if (!Send (v, m))
      return;
    if (g_init) {
      v->st = Viewer::kWaitKey;
      if (!Send (v, g_init))
        return;
    }
  }
}

}  // namespace

int
main (int argc, char **argv)
{
  std::string host = "127.0.0.1";
  int ingest = 0, port = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) break;
    if (a == "--ingest-port") ingest = atoi (argv[++i]);
    else if (a == "--port") port = atoi (argv[++i]);
    else if (a == "--host") host = argv[++i];
    else if (a == "--max-backlog") g_max_backlog = strtoull (argv[++i], nullptr, 10);
    else if (a == "--sndbuf") g_sndbuf = atoi (argv[++i]);
  }
  if (!ingest || !port) {
    fprintf (stderr, "usage: minbroadcast --ingest-port P --port Q [--host H] [--max-backlog B] [--sndbuf B]\n");
    return 2;
  }
  signal (SIGPIPE, SIG_IGN);
  signal (SIGINT, OnSignal);
  signal (SIGTERM, OnSignal);
  rlimit rl;
  getrlimit (RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit (RLIMIT_NOFILE, &rl);
  g_ep = epoll_create1 (0);
  int il = Listen (host, ingest), vl = Listen (host, port);
  Watch (il, EPOLLIN, kIngestListen);
  Watch (vl, EPOLLIN, kViewerListen);
  std::vector<epoll_event> evs (1024);
  while (!g_stop) {
    int n = epoll_wait (g_ep, evs.data (), int (evs.size ()), 200);
    for (int i = 0; i < n; i++) {
      uint64_t tag = evs[size_t (i)].data.u64;
      if (tag >> 32) {
        auto it = g_viewers.find (int (uint32_t (tag)));
        if (it == g_viewers.end ())
          continue;
        Viewer *v = it->second;
        if (evs[size_t (i)].events & EPOLLOUT)
          if (!Flush (v))
            continue;
        if (evs[size_t (i)].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
          OnViewerReadable (v);
      } else if (tag == kIngestListen) {
        int fd = accept4 (il, nullptr, nullptr, SOCK_NONBLOCK);
        if (fd < 0)
          continue;
        if (g_pub >= 0) {  // one publisher at a time
          close (fd);
          continue;
        }
        g_pub = fd;
        g_in_pos = 0;
        Watch (fd, EPOLLIN, kPublisher);
      } else if (tag == kViewerListen) {
        for (;;) {
          int fd = accept4 (vl, nullptr, nullptr, SOCK_NONBLOCK);
          if (fd < 0)
            break;
          int one = 1;
          setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (g_sndbuf > 0)
            setsockopt (fd, SOL_SOCKET, SO_SNDBUF, &g_sndbuf, sizeof g_sndbuf);
          Viewer *v = new Viewer ();
          v->fd = fd;
          g_viewers[fd] = v;
          Watch (fd, EPOLLIN, ViewerTag (fd));
        }
      } else if (tag == kPublisher && g_pub >= 0) {
        OnPublisherData ();
      }
    }
  }
  fprintf (stderr, "minbroadcast: %zu viewers, %llu fragments dropped for slow viewers\n",
           g_viewers.size (), (unsigned long long) g_dropped);
  for (auto &kv : g_viewers)
    close (kv.first);
  return 0;
}
