// fmp4ws-inspect: what fmp4initcache sees in a fragmented MP4 file or stream.
//   fmp4ws-inspect [--fragments] [--chunk N] FILE|-
// Prints the init segment(s): RFC 6381 codecs, MSE mime, tracks; with --fragments one
// line per fragment (sequence, decode time, duration, keyframe, size). Reads stdin with "-",
// so `ffmpeg ... -f mp4 pipe:1 | fmp4ws-inspect -` works live.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bytes.h"
#include "stream_reader.h"

using namespace fmp4ws::core;

static void
Usage ()
{
  fprintf (stderr,
           "usage: fmp4ws-inspect [--fragments] [--chunk N] FILE|-\n"
           "  Prints the codecs (RFC 6381), MSE mime type and tracks of a fragmented MP4,\n"
           "  and with --fragments one line per fragment.\n");
}

int
main (int argc, char **argv)
{
  bool fragments = false;
  size_t chunk = 65536;
  const char *path = nullptr;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--fragments"))
      fragments = true;
    else if (!strcmp (argv[i], "--chunk") && i + 1 < argc)
      chunk = size_t (std::max (1L, atol (argv[++i])));
    else if (!strcmp (argv[i], "--help") || !strcmp (argv[i], "-h")) {
      Usage ();
      return 0;
    } else if (!path)
      path = argv[i];
    else {
      Usage ();
      return 2;
    }
  }
  if (!path) {
    Usage ();
    return 2;
  }
  FILE *f = strcmp (path, "-") ? fopen (path, "rb") : stdin;
  if (!f) {
    perror (path);
    return 1;
  }
  StreamReader reader;
  std::vector<uint8_t> buf (chunk);
  int status = 0;
  unsigned inits = 0, frags = 0, keyframes = 0;
  auto print = [&] (const std::vector<Segment> &segs) {
    for (const Segment &s : segs) {
      switch (s.kind) {
        case Segment::kInit:
          inits++;
          printf ("init %u: %zu bytes%s\n", inits, s.bytes.size (), s.discont ? " discont" : "");
          printf ("  codecs: %s\n  mime: %s\n", s.init.codecs.c_str (), s.init.mime.c_str ());
          if (s.init.width)
            printf ("  size: %ux%u\n", s.init.width, s.init.height);
          for (const Track &t : s.init.tracks)
            printf ("  track %u: %s '%s' codec %s timescale %u%s\n", t.id,
                    FourCCToString (t.handler).c_str (), FourCCToString (t.sample_entry).c_str (),
                    t.codec.empty () ? "(unknown)" : t.codec.c_str (), t.timescale,
                    t.samples.sizes.empty ()
                        ? ""
                        : (" (" + std::to_string (t.samples.sizes.size ()) +
                           " samples in moov)").c_str ());
          fflush (stdout);
          break;
        case Segment::kFragment:
          frags++;
          keyframes += s.fragment.keyframe;
          if (fragments)
            printf ("fragment seq=%u dts=%.6f duration=%.6f key=%d video=%d size=%zu%s\n",
                    s.fragment.sequence, s.fragment.decode_time_ns () / 1e9,
                    s.fragment.duration_ns () / 1e9, int (s.fragment.keyframe),
                    int (s.fragment.has_video), s.bytes.size (), s.discont ? " discont" : "");
          break;
        case Segment::kWarning:
          fprintf (stderr, "warning: %s\n", s.message.c_str ());
          break;
        case Segment::kError:
          fprintf (stderr, "error: %s\n", s.message.c_str ());
          status = 1;
          break;
      }
    }
  };
  size_t n;
  while (status == 0 && (n = fread (buf.data (), 1, buf.size (), f)) > 0)
    print (reader.Push (buf.data (), n));
  print (reader.Finish ());
  if (f != stdin)
    fclose (f);
  printf ("%u init segment(s), %u fragment(s), %u keyframe fragment(s)\n", inits, frags,
          keyframes);
  if (inits == 0 && status == 0) {
    fprintf (stderr, "error: no init segment (ftyp+moov) found\n");
    status = 1;
  }
  return status;
}
