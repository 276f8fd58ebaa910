// ISO BMFF helpers shared by the benchmark tools (feeder, load client, minimal
// broadcaster): box walk, the few moov/moof fields they need. Header-only, no
// dependency on the plugin's core (the benchmark checks the plugin, it must not
// share its parser).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace bench {

inline uint32_t rd32 (const uint8_t *p)
{
  return (uint32_t (p[0]) << 24) | (uint32_t (p[1]) << 16) | (uint32_t (p[2]) << 8) | p[3];
}
inline uint64_t rd64 (const uint8_t *p) { return (uint64_t (rd32 (p)) << 32) | rd32 (p + 4); }
inline void wr32 (uint8_t *p, uint32_t v)
{
  p[0] = uint8_t (v >> 24);
  p[1] = uint8_t (v >> 16);
  p[2] = uint8_t (v >> 8);
  p[3] = uint8_t (v);
}
inline void wr64 (uint8_t *p, uint64_t v)
{
  wr32 (p, uint32_t (v >> 32));
  wr32 (p + 4, uint32_t (v));
}
constexpr uint32_t FourCC (const char s[5])
{
  return (uint32_t (uint8_t (s[0])) << 24) | (uint32_t (uint8_t (s[1])) << 16) |
         (uint32_t (uint8_t (s[2])) << 8) | uint32_t (uint8_t (s[3]));
}

struct Box
{
  uint32_t type = 0;
  const uint8_t *start = nullptr;  // first byte of the box header
  size_t header = 0, total = 0;
  const uint8_t *body () const { return start + header; }
  size_t body_size () const { return total - header; }
};

// Iterates the boxes in [p, p + n); stops at the first malformed or truncated one.
class BoxWalk
{
public:
  BoxWalk (const uint8_t *p, size_t n) : p_ (p), n_ (n) {}
  bool Next (Box *b)
  {
    if (n_ - pos_ < 8)
      return false;
    const uint8_t *s = p_ + pos_;
    uint64_t size = rd32 (s);
    size_t hdr = 8;
    if (size == 1) {
      if (n_ - pos_ < 16)
        return false;
      size = rd64 (s + 8);
      hdr = 16;
    } else if (size == 0) {
      size = n_ - pos_;
    }
    if (size < hdr || size > n_ - pos_)
      return false;
    b->type = rd32 (s + 4);
    b->start = s;
    b->header = hdr;
    b->total = size_t (size);
    pos_ += size_t (size);
    return true;
  }
  size_t pos () const { return pos_; }

private:
  const uint8_t *p_;
  size_t n_, pos_ = 0;
};

inline bool FindChild (const uint8_t *p, size_t n, uint32_t type, Box *out)
{
  BoxWalk w (p, n);
  Box b;
  while (w.Next (&b))
    if (b.type == type) {
      *out = b;
      return true;
    }
  return false;
}

struct Track
{
  uint32_t id = 0, timescale = 0, handler = 0;
  uint32_t trex_duration = 0, trex_flags = 0;
  bool has_trex = false;
};

struct Init
{
  std::vector<Track> tracks;
  uint32_t video_id = 0;  // 0: no video track
  bool valid = false;
  const Track *Find (uint32_t id) const
  {
    for (const Track &t : tracks)
      if (t.id == id)
        return &t;
    return nullptr;
  }
};

// Parses a moov box body (without its header).
inline bool ParseMoov (const uint8_t *p, size_t n, Init *out)
{
  *out = Init ();
  BoxWalk w (p, n);
  Box b;
  std::vector<std::pair<uint32_t, std::pair<uint32_t, uint32_t>>> trex;  // id -> dur, flags
  while (w.Next (&b)) {
    if (b.type == FourCC ("trak")) {
      Track t;
      Box tkhd, mdia, mdhd, hdlr;
      if (!FindChild (b.body (), b.body_size (), FourCC ("tkhd"), &tkhd) ||
          !FindChild (b.body (), b.body_size (), FourCC ("mdia"), &mdia))
        continue;
      const uint8_t *k = tkhd.body ();
      size_t off = k[0] == 1 ? 20 : 12;
      if (tkhd.body_size () < off + 4)
        continue;
      t.id = rd32 (k + off);
      if (FindChild (mdia.body (), mdia.body_size (), FourCC ("mdhd"), &mdhd)) {
        const uint8_t *m = mdhd.body ();
        size_t o = m[0] == 1 ? 20 : 12;
        if (mdhd.body_size () >= o + 4)
          t.timescale = rd32 (m + o);
      }
      if (FindChild (mdia.body (), mdia.body_size (), FourCC ("hdlr"), &hdlr) &&
          hdlr.body_size () >= 12)
        t.handler = rd32 (hdlr.body () + 8);
      out->tracks.push_back (t);
    } else if (b.type == FourCC ("mvex")) {
      BoxWalk mw (b.body (), b.body_size ());
      Box x;
      while (mw.Next (&x))
        if (x.type == FourCC ("trex") && x.body_size () >= 24)
          trex.push_back ({rd32 (x.body () + 4), {rd32 (x.body () + 12), rd32 (x.body () + 20)}});
    }
  }
  for (Track &t : out->tracks) {
    for (auto &e : trex)
      if (e.first == t.id) {
        t.trex_duration = e.second.first;
        t.trex_flags = e.second.second;
        t.has_trex = true;
      }
    if (t.handler == FourCC ("vide") && !out->video_id)
      out->video_id = t.id;
  }
  out->valid = !out->tracks.empty ();
  return out->valid;
}

struct Traf
{
  uint32_t track_id = 0;
  bool has_tfdt = false;
  int tfdt_version = 0;
  size_t tfdt_value_off = 0;  // from the start of the moof box
  uint64_t tfdt = 0;
  uint32_t samples = 0;
  uint64_t duration = 0;      // in the track's timescale
  bool first_flags_known = false;
  uint32_t first_flags = 0;
};

struct Moof
{
  uint32_t sequence = 0;
  size_t sequence_off = 0;  // from the start of the moof box
  std::vector<Traf> trafs;
};

// Parses a whole moof box (header included). `init` gives trex defaults (may be null).
inline bool ParseMoof (const uint8_t *moof, size_t size, const Init *init, Moof *out)
{
  *out = Moof ();
  BoxWalk top (moof, size);
  Box m;
  if (!top.Next (&m) || m.type != FourCC ("moof"))
    return false;
  BoxWalk w (m.body (), m.body_size ());
  Box b;
  bool have_mfhd = false;
  while (w.Next (&b)) {
    if (b.type == FourCC ("mfhd") && b.body_size () >= 8) {
      out->sequence = rd32 (b.body () + 4);
      out->sequence_off = size_t (b.body () + 4 - moof);
      have_mfhd = true;
    } else if (b.type == FourCC ("traf")) {
      Traf t;
      uint32_t def_dur = 0, def_flags = 0;
      bool has_def_dur = false, has_def_flags = false;
      BoxWalk tw (b.body (), b.body_size ());
      Box c;
      bool first_trun = true;
      // tfhd comes first (required by the spec): defaults before truns.
      while (tw.Next (&c)) {
        const uint8_t *q = c.body ();
        size_t qn = c.body_size ();
        if (c.type == FourCC ("tfhd") && qn >= 8) {
          uint32_t fl = rd32 (q) & 0xffffff;
          t.track_id = rd32 (q + 4);
          size_t o = 8;
          if (fl & 0x1) o += 8;
          if (fl & 0x2) o += 4;
          if (fl & 0x8) {
            if (qn >= o + 4) { def_dur = rd32 (q + o); has_def_dur = true; }
            o += 4;
          }
          if (fl & 0x10) o += 4;
          if (fl & 0x20) {
            if (qn >= o + 4) { def_flags = rd32 (q + o); has_def_flags = true; }
            o += 4;
          }
        } else if (c.type == FourCC ("tfdt") && qn >= 8) {
          t.has_tfdt = true;
          t.tfdt_version = q[0];
          t.tfdt_value_off = size_t (q + 4 - moof);
          if (q[0] == 1 && qn >= 12)
            t.tfdt = rd64 (q + 4);
          else
            t.tfdt = rd32 (q + 4);
        } else if (c.type == FourCC ("trun") && qn >= 8) {
          uint32_t fl = rd32 (q) & 0xffffff;
          uint32_t count = rd32 (q + 4);
          size_t o = 8;
          if (fl & 0x1) o += 4;
          bool has_first = false;
          uint32_t first = 0;
          if (fl & 0x4) {
            if (qn < o + 4) break;
            first = rd32 (q + o);
            has_first = true;
            o += 4;
          }
          size_t per = ((fl & 0x100) ? 4 : 0) + ((fl & 0x200) ? 4 : 0) + ((fl & 0x400) ? 4 : 0) +
                       ((fl & 0x800) ? 4 : 0);
          if (per && (qn - o) / per < count)
            count = uint32_t ((qn - o) / per);  // truncated table: count what is there
          uint32_t trex_dur = 0, trex_flags = 0;
          if (init)
            if (const Track *tr = init->Find (t.track_id)) {
              trex_dur = tr->trex_duration;
              trex_flags = tr->trex_flags;
            }
          uint32_t dflt_dur = has_def_dur ? def_dur : trex_dur;
          for (uint32_t i = 0; i < count; i++) {
            const uint8_t *s = q + o + size_t (i) * per;
            size_t so = 0;
            uint32_t d = dflt_dur;
            if (fl & 0x100) { d = rd32 (s + so); so += 4; }
            if (fl & 0x200) so += 4;
            uint32_t sf = 0;
            bool has_sf = false;
            if (fl & 0x400) { sf = rd32 (s + so); has_sf = true; so += 4; }
            t.duration += d;
            if (first_trun && i == 0) {
              t.first_flags_known = true;
              if (has_first)
                t.first_flags = first;
              else if (has_sf)
                t.first_flags = sf;
              else if (has_def_flags)
                t.first_flags = def_flags;
              else if (init && init->Find (t.track_id))
                t.first_flags = trex_flags;
              else
                t.first_flags_known = false;
            }
          }
          t.samples += count;
          if (count)
            first_trun = false;
        }
      }
      out->trafs.push_back (t);
    }
  }
  return have_mfhd;
}

// A fragment starts on a keyframe when its video track's first sample is a sync sample
// (sample_is_non_sync_sample, bit 0x10000, clear). A moof without the video track (in a
// stream with video) is no start point. Without an init, the first traf decides.
inline bool IsKeyframe (const Moof &m, const Init *init)
{
  uint32_t vid = init && init->valid ? init->video_id : 0;
  if (init && init->valid && !vid)
    return true;  // audio only: every fragment is a sync point
  for (const Traf &t : m.trafs) {
    if (vid && t.track_id != vid)
      continue;
    if (!t.samples)
      continue;
    return t.first_flags_known && !(t.first_flags & 0x10000);
  }
  return false;
}

inline bool HasVideo (const Moof &m, const Init *init)
{
  if (!init || !init->valid || !init->video_id)
    return true;
  for (const Traf &t : m.trafs)
    if (t.track_id == init->video_id && t.samples)
      return true;
  return false;
}

}  // namespace bench
