// feeder: pushes a pre-encoded fragmented MP4 to a TCP ingest (tcpserversrc, the
// minimal broadcaster, the notes' Node.js server) in real time, paced by the
// fragments' tfdt, and logs when the first byte of each fragment was written.
//
//   feeder --file F.mp4 --port P [--host 127.0.0.1] --log LOG.csv [--duration S]
//   feeder --file F.mp4 --dump OUT.mp4 --bytes N      (no pacing: a long stream in a file)
//
// The file is played in a loop without a restart: the init segment (ftyp, then moov,
// written apart like ffmpeg does over a socket) goes once; at each loop every
// fragment's mfhd sequence number is renumbered (1, 2, 3, ... over the whole run:
// the identity the load client matches on) and its tfdt shifted by the loop's
// duration, so the server sees one continuous live stream.
//
// Log (CSV, one line per fragment, flushed): seq,first_byte_ns,last_byte_ns,bytes,keyframe
// with CLOCK_MONOTONIC times (the load client uses the same clock).
#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include "bmff.h"
#include "common.h"

using namespace bench;

namespace {

struct Fragment
{
  size_t offset, size;  // in the file: [pre-boxes] moof mdat
  size_t moof_at;       // moof offset in the file
  Moof moof;
  double t = 0;         // media time (s) from the start of the loop
  bool keyframe = false;
};

volatile sig_atomic_t g_stop = 0;
void OnSignal (int) { g_stop = 1; }

bool WriteAll (int fd, const uint8_t *p, size_t n)
{
  while (n) {
    ssize_t w = write (fd, p, n);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    p += w;
    n -= size_t (w);
  }
  return true;
}

void SleepUntil (int64_t ns)
{
  timespec ts{time_t (ns / 1000000000), long (ns % 1000000000)};
  while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR && !g_stop) {
  }
}

void Usage ()
{
  fprintf (stderr,
           "usage: feeder --file F.mp4 (--port P [--host H] [--log LOG] [--duration S] |\n"
           "              --dump OUT --bytes N)\n");
  exit (2);
}

}  // namespace

int
main (int argc, char **argv)
{
  std::string file, host = "127.0.0.1", log_path, dump;
  int port = 0;
  double duration = 0;
  uint64_t dump_bytes = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto val = [&] () -> std::string {
      if (i + 1 >= argc)
        Usage ();
      return argv[++i];
    };
    if (a == "--file") file = val ();
    else if (a == "--host") host = val ();
    else if (a == "--port") port = atoi (val ().c_str ());
    else if (a == "--log") log_path = val ();
    else if (a == "--duration") duration = atof (val ().c_str ());
    else if (a == "--dump") dump = val ();
    else if (a == "--bytes") dump_bytes = strtoull (val ().c_str (), nullptr, 10);
    else Usage ();
  }
  if (file.empty () || (port == 0 && dump.empty ()))
    Usage ();

  // Load and index the file.
  std::vector<uint8_t> data;
  {
    FILE *f = fopen (file.c_str (), "rb");
    if (!f) { perror (file.c_str ()); return 1; }
    uint8_t buf[1 << 16];
    size_t n;
    while ((n = fread (buf, 1, sizeof buf, f)) > 0)
      data.insert (data.end (), buf, buf + n);
    fclose (f);
  }
  BoxWalk w (data.data (), data.size ());
  Box b;
  Init init;
  std::vector<uint8_t> ftyp, moov;
  std::vector<Fragment> frags;
  size_t pending = SIZE_MAX;  // start of boxes waiting for their mdat
  size_t moof_at = SIZE_MAX;
  while (w.Next (&b)) {
    size_t at = size_t (b.start - data.data ());
    if (b.type == FourCC ("ftyp")) {
      if (!ftyp.empty ()) break;  // a second stream in the file: stop there
      ftyp.assign (b.start, b.start + b.total);
    } else if (b.type == FourCC ("moov")) {
      moov.assign (b.start, b.start + b.total);
      ParseMoov (b.body (), b.body_size (), &init);
    } else if (b.type == FourCC ("mdat")) {
      if (moof_at == SIZE_MAX) { pending = SIZE_MAX; continue; }  // bare mdat: skip
      Fragment fr;
      fr.offset = pending;
      fr.size = at + b.total - pending;
      fr.moof_at = moof_at;
      Box mb;
      BoxWalk mw (data.data () + moof_at, data.size () - moof_at);
      mw.Next (&mb);
      if (!ParseMoof (mb.start, mb.total, &init, &fr.moof)) {
        fprintf (stderr, "feeder: bad moof at %zu\n", moof_at);
        return 1;
      }
      fr.keyframe = IsKeyframe (fr.moof, &init);
      frags.push_back (fr);
      pending = moof_at = SIZE_MAX;
    } else if (b.type == FourCC ("mfra") || b.type == FourCC ("free") || b.type == FourCC ("skip")) {
      continue;
    } else {
      if (pending == SIZE_MAX) pending = at;
      if (b.type == FourCC ("moof")) moof_at = at;
    }
  }
  if (ftyp.empty () || moov.empty () || frags.empty () || !init.valid) {
    fprintf (stderr, "feeder: %s is not a fragmented MP4 with ftyp, moov and fragments\n",
             file.c_str ());
    return 1;
  }
  // Per track: first tfdt and the loop's length (max end - first start).
  struct Span { uint64_t first = UINT64_MAX, end = 0; };
  std::vector<Span> spans (init.tracks.size ());
  auto track_index = [&] (uint32_t id) -> int {
    for (size_t i = 0; i < init.tracks.size (); i++)
      if (init.tracks[i].id == id) return int (i);
    return -1;
  };
  for (Fragment &fr : frags)
    for (const Traf &t : fr.moof.trafs) {
      int i = track_index (t.track_id);
      if (i < 0 || !t.has_tfdt) continue;
      spans[i].first = std::min (spans[i].first, t.tfdt);
      spans[i].end = std::max (spans[i].end, t.tfdt + t.duration);
    }
  double loop_s = 0;
  for (size_t i = 0; i < spans.size (); i++)
    if (spans[i].first != UINT64_MAX && init.tracks[i].timescale)
      loop_s = std::max (loop_s, double (spans[i].end - spans[i].first) / init.tracks[i].timescale);
  for (Fragment &fr : frags) {
    double t = 1e18;
    for (const Traf &tr : fr.moof.trafs) {
      int i = track_index (tr.track_id);
      if (i < 0 || !tr.has_tfdt || !init.tracks[i].timescale) continue;
      t = std::min (t, double (tr.tfdt - spans[i].first) / init.tracks[i].timescale);
    }
    fr.t = t < 1e17 ? t : 0;
  }
  size_t keys = 0;
  for (const Fragment &fr : frags) keys += fr.keyframe;
  fprintf (stderr, "feeder: %s: %zu fragments (%zu keyframe), %.3f s per loop, %.2f Mb/s\n",
           file.c_str (), frags.size (), keys, loop_s,
           loop_s > 0 ? data.size () * 8 / loop_s / 1e6 : 0.0);

  uint32_t seq = 0;
  // Renumbers and shifts a fragment for loop `loop` (in place in `data`).
  auto rewrite = [&] (Fragment &fr, uint64_t loop) {
    uint8_t *m = data.data () + fr.moof_at;
    wr32 (m + fr.moof.sequence_off, ++seq);
    for (const Traf &t : fr.moof.trafs) {
      if (!t.has_tfdt) continue;
      int i = track_index (t.track_id);
      uint64_t span = i >= 0 ? spans[i].end - spans[i].first : 0;
      uint64_t v = t.tfdt + loop * span;
      if (t.tfdt_version == 1)
        wr64 (m + t.tfdt_value_off, v);
      else
        wr32 (m + t.tfdt_value_off, uint32_t (v));
    }
  };

  signal (SIGINT, OnSignal);
  signal (SIGTERM, OnSignal);
  signal (SIGPIPE, SIG_IGN);

  if (!dump.empty ()) {
    FILE *o = fopen (dump.c_str (), "wb");
    if (!o) { perror (dump.c_str ()); return 1; }
    fwrite (ftyp.data (), 1, ftyp.size (), o);
    fwrite (moov.data (), 1, moov.size (), o);
    uint64_t written = ftyp.size () + moov.size ();
    for (uint64_t loop = 0; written < dump_bytes && !g_stop; loop++)
      for (Fragment &fr : frags) {
        rewrite (fr, loop);
        fwrite (data.data () + fr.offset, 1, fr.size, o);
        written += fr.size;
        if (written >= dump_bytes) break;
      }
    fclose (o);
    fprintf (stderr, "feeder: wrote %llu bytes, %u fragments to %s\n",
             (unsigned long long) written, seq, dump.c_str ());
    return 0;
  }

  FILE *log = log_path.empty () ? nullptr : fopen (log_path.c_str (), "w");
  if (!log_path.empty () && !log) { perror (log_path.c_str ()); return 1; }
  if (log) { fprintf (log, "seq,first_byte_ns,last_byte_ns,bytes,keyframe\n"); fflush (log); }

  // Connect (the server may still be starting).
  int fd = -1;
  int64_t give_up = NowNs () + 15 * int64_t (1000000000);
  while (!g_stop) {
    fd = socket (AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons (uint16_t (port));
    inet_pton (AF_INET, host.c_str (), &a.sin_addr);
    if (connect (fd, (sockaddr *) &a, sizeof a) == 0)
      break;
    close (fd);
    fd = -1;
    if (NowNs () > give_up) { fprintf (stderr, "feeder: cannot connect to %s:%d\n", host.c_str (), port); return 1; }
    usleep (50000);
  }
  if (fd < 0) return 1;
  int one = 1;
  setsockopt (fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  // Like ffmpeg over a socket: ftyp first, the moov a little later.
  if (!WriteAll (fd, ftyp.data (), ftyp.size ())) return 1;
  usleep (100000);
  if (!WriteAll (fd, moov.data (), moov.size ())) return 1;
  usleep (100000);

  int64_t start = NowNs ();
  int64_t end = duration > 0 ? start + int64_t (duration * 1e9) : INT64_MAX;
  for (uint64_t loop = 0; !g_stop; loop++) {
    for (Fragment &fr : frags) {
      int64_t due = start + int64_t ((double (loop) * loop_s + fr.t) * 1e9);
      if (due >= end || g_stop) goto done;
      SleepUntil (due);
      if (g_stop) goto done;
      rewrite (fr, loop);
      int64_t t0 = NowNs ();
      if (!WriteAll (fd, data.data () + fr.offset, fr.size)) {
        fprintf (stderr, "feeder: write: %s\n", strerror (errno));
        goto done;
      }
      int64_t t1 = NowNs ();
      if (log) {
        fprintf (log, "%u,%lld,%lld,%zu,%d\n", seq, (long long) t0, (long long) t1, fr.size,
                 fr.keyframe ? 1 : 0);
        fflush (log);
      }
    }
  }
done:
  if (log) fclose (log);
  close (fd);
  return 0;
}
