#include "init_segment.h"

#include <algorithm>
#include <cstdio>

#include "box.h"
#include "bytes.h"

namespace fmp4ws::core {

bool
Track::is_video () const
{
  return handler == FourCC ("vide");
}

bool
Track::is_audio () const
{
  return handler == FourCC ("soun");
}

bool
Track::is_text_or_metadata () const
{
  return IsTextOrMetadataHandler (handler);
}

const Track *
InitInfo::FindTrack (uint32_t id) const
{
  for (const Track &t : tracks)
    if (t.id == id)
      return &t;
  return nullptr;
}

const Track *
InitInfo::FirstVideo () const
{
  for (const Track &t : tracks)
    if (t.is_video ())
      return &t;
  return nullptr;
}

namespace {

// Bound on samples we are willing to expand from a moov (ffmpeg puts one fragment there).
constexpr size_t kMaxMoovSamples = 1u << 20;

// *budget: samples the moov may still list (one budget for all its tracks).
bool
ParseSampleTables (const uint8_t *stbl, size_t stbl_size, size_t *budget, SampleTable *st,
                   std::string *error)
{
  const uint8_t *p;
  size_t n;
  // stsz / stz2
  if (FindChild (stbl, stbl_size, FourCC ("stsz"), &p, &n)) {
    Reader r (p, n);
    r.Skip (4);
    uint32_t fixed = r.U32 ();
    uint32_t count = r.U32 ();
    if (!r.ok () || (fixed == 0 && r.remaining () / 4 < count)) {
      *error = "moov: bad stsz";
      return false;
    }
    if (count > *budget) {
      *error = "moov: more than " + std::to_string (kMaxMoovSamples) + " samples in its tracks";
      return false;
    }
    *budget -= count;
    st->sizes.resize (count, fixed);
    if (fixed == 0)
      for (uint32_t i = 0; i < count; i++)
        st->sizes[i] = r.U32 ();
  }
  size_t count = st->sizes.size ();
  if (count == 0)
    return true;
  // stts
  if (FindChild (stbl, stbl_size, FourCC ("stts"), &p, &n)) {
    Reader r (p, n);
    r.Skip (4);
    uint32_t entries = r.U32 ();
    for (uint32_t i = 0; i < entries && r.ok () && st->durations.size () < count; i++) {
      uint32_t c = r.U32 (), d = r.U32 ();
      for (uint32_t k = 0; k < c && st->durations.size () < count; k++)
        st->durations.push_back (d);
    }
  }
  st->durations.resize (count, 0);
  // ctts
  if (FindChild (stbl, stbl_size, FourCC ("ctts"), &p, &n)) {
    Reader r (p, n);
    r.Skip (4);
    uint32_t entries = r.U32 ();
    for (uint32_t i = 0; i < entries && r.ok () && st->cts_offsets.size () < count; i++) {
      uint32_t c = r.U32 ();
      int32_t o = int32_t (r.U32 ());
      for (uint32_t k = 0; k < c && st->cts_offsets.size () < count; k++)
        st->cts_offsets.push_back (o);
    }
    st->cts_offsets.resize (count, 0);
  }
  // stss
  if (FindChild (stbl, stbl_size, FourCC ("stss"), &p, &n)) {
    st->has_stss = true;
    Reader r (p, n);
    r.Skip (4);
    uint32_t entries = r.U32 ();
    for (uint32_t i = 0; i < entries && r.ok () && i < count; i++)
      st->sync.push_back (r.U32 ());
  }
  // stsc + stco/co64 -> per-sample offsets
  std::vector<uint64_t> chunks;
  bool co64 = false;
  if (FindChild (stbl, stbl_size, FourCC ("stco"), &p, &n) ||
      (co64 = FindChild (stbl, stbl_size, FourCC ("co64"), &p, &n))) {
    Reader r (p, n);
    r.Skip (4);
    uint32_t entries = r.U32 ();
    if (entries > kMaxMoovSamples) {
      *error = "moov: bad chunk offset table";
      return false;
    }
    for (uint32_t i = 0; i < entries && r.ok (); i++)
      chunks.push_back (co64 ? r.U64 () : r.U32 ());
  }
  struct Stsc { uint32_t first_chunk, per_chunk; };
  std::vector<Stsc> stsc;
  if (FindChild (stbl, stbl_size, FourCC ("stsc"), &p, &n)) {
    Reader r (p, n);
    r.Skip (4);
    uint32_t entries = r.U32 ();
    for (uint32_t i = 0; i < entries && r.ok () && i < kMaxMoovSamples; i++) {
      uint32_t first = r.U32 (), per = r.U32 ();
      r.Skip (4);
      if (r.ok ())
        stsc.push_back ({first, per});
    }
  }
  if (chunks.empty () || stsc.empty ()) {
    *error = "moov lists samples but has no chunk table";
    return false;
  }
  size_t sample = 0;
  for (size_t e = 0; e < stsc.size () && sample < count; e++) {
    uint32_t first = stsc[e].first_chunk;
    uint32_t last = e + 1 < stsc.size () ? stsc[e + 1].first_chunk : uint32_t (chunks.size () + 1);
    if (first == 0 || last < first) {
      *error = "moov: bad stsc";
      return false;
    }
    for (uint32_t ch = first; ch < last && ch <= chunks.size () && sample < count; ch++) {
      uint64_t off = chunks[ch - 1];
      for (uint32_t k = 0; k < stsc[e].per_chunk && sample < count; k++) {
        st->offsets.push_back (off);
        off += st->sizes[sample++];
      }
    }
  }
  if (st->offsets.size () != count) {
    *error = "moov: sample tables disagree on the sample count";
    return false;
  }
  return true;
}

bool
ParseTrak (const uint8_t *trak, size_t size, size_t *budget, Track *t, std::string *error)
{
  const uint8_t *p, *mdia, *minf, *stbl;
  size_t n, mdia_n, minf_n, stbl_n;
  if (FindChild (trak, size, FourCC ("tkhd"), &p, &n)) {
    Reader r (p, n);
    uint8_t version = r.U8 ();
    r.Skip (3);
    r.Skip (version == 1 ? 16 : 8);  // creation/modification time
    t->id = r.U32 ();
    r.Skip (4 + (version == 1 ? 8 : 4) + 8 + 2 + 2 + 2 + 2 + 36);
    uint32_t w = r.U32 (), h = r.U32 ();
    if (r.ok ()) {
      t->width = w >> 16;
      t->height = h >> 16;
    }
  }
  if (!FindChild (trak, size, FourCC ("mdia"), &mdia, &mdia_n)) {
    *error = "moov: track without mdia";
    return false;
  }
  if (FindChild (mdia, mdia_n, FourCC ("mdhd"), &p, &n)) {
    Reader r (p, n);
    uint8_t version = r.U8 ();
    r.Skip (3 + (version == 1 ? 16 : 8));
    t->timescale = r.U32 ();
  }
  if (FindChild (mdia, mdia_n, FourCC ("hdlr"), &p, &n) && n >= 12)
    t->handler = LoadU32 (p + 8);
  if (!FindChild (mdia, mdia_n, FourCC ("minf"), &minf, &minf_n) ||
      !FindChild (minf, minf_n, FourCC ("stbl"), &stbl, &stbl_n))
    return true;  // a track without sample description: nothing more to learn
  if (FindChild (stbl, stbl_n, FourCC ("stsd"), &p, &n) && n >= 8) {
    BoxIterator it (p + 8, n - 8);
    if (it.Next ()) {
      t->sample_entry = it.type ();
      t->codec = CodecStringForSampleEntry (it.box (), it.box_size (), t->handler);
      const uint8_t *e = it.payload ();
      size_t en = it.payload_size ();
      if (t->is_video () && en >= 28) {
        uint32_t w = (e[24] << 8) | e[25], h = (e[26] << 8) | e[27];
        if (t->width == 0 || t->height == 0) {
          t->width = w;
          t->height = h;
        }
      } else if (t->is_audio () && en >= 28) {
        t->channels = (e[16] << 8) | e[17];
        t->sample_rate = LoadU32 (e + 24) >> 16;
      }
      if (t->sample_entry == FourCC ("encv") || t->sample_entry == FourCC ("enca")) {
        // The codec string already names the original format.
        size_t dot = t->codec.find ('.');
        std::string orig = t->codec.substr (0, dot);
        if (orig.size () == 4)
          t->sample_entry = LoadU32 (reinterpret_cast<const uint8_t *> (orig.data ()));
      }
    }
  }
  return ParseSampleTables (stbl, stbl_n, budget, &t->samples, error);
}

}  // namespace

std::optional<InitInfo>
ParseMoov (const uint8_t *moov, size_t size, std::string *error)
{
  BoxHeader h;
  if (ParseBoxHeader (moov, size, size, &h) != HeaderStatus::kOk || h.type != FourCC ("moov") ||
      h.size != size) {
    *error = "not a moov box";
    return std::nullopt;
  }
  const uint8_t *payload = moov + h.header_size;
  size_t payload_size = size - h.header_size;
  InitInfo info;
  size_t budget = kMaxMoovSamples;  // for all its tracks together
  BoxIterator it (payload, payload_size);
  while (it.Next ()) {
    if (it.type () == FourCC ("trak")) {
      Track t;
      if (!ParseTrak (it.payload (), it.payload_size (), &budget, &t, error))
        return std::nullopt;
      info.tracks.push_back (std::move (t));
    } else if (it.type () == FourCC ("mvex")) {
      info.fragmented = true;
      BoxIterator mv (it.payload (), it.payload_size ());
      while (mv.Next ()) {
        if (mv.type () != FourCC ("trex"))
          continue;
        Reader r (mv.payload (), mv.payload_size ());
        r.Skip (4);
        uint32_t id = r.U32 ();
        r.Skip (4);  // default_sample_description_index
        uint32_t dur = r.U32 (), sz = r.U32 (), flags = r.U32 ();
        if (!r.ok ())
          continue;
        for (Track &t : info.tracks)
          if (t.id == id) {
            t.has_trex = true;
            t.trex_duration = dur;
            t.trex_size = sz;
            t.trex_flags = flags;
          }
      }
    }
  }
  if (it.error ()) {
    *error = "moov: a child box overruns its parent";
    return std::nullopt;
  }
  if (info.tracks.empty ()) {
    *error = "moov has no tracks";
    return std::nullopt;
  }
  // Video first, then audio, then the rest: the order MSE mime strings usually take.
  std::vector<const Track *> order;
  for (const Track &t : info.tracks)
    if (t.is_video ())
      order.push_back (&t);
  for (const Track &t : info.tracks)
    if (t.is_audio ())
      order.push_back (&t);
  for (const Track &t : info.tracks) {
    if (t.is_video ()) {
      info.has_video = true;
      if (info.width == 0) {
        info.width = t.width;
        info.height = t.height;
      }
    }
    if (t.is_audio ())
      info.has_audio = true;
    if (!t.samples.sizes.empty ())
      info.moov_has_samples = true;
  }
  bool all_known = true;
  for (const Track *t : order) {
    if (t->codec.empty ()) {
      all_known = false;
      continue;
    }
    if (!info.codecs.empty ())
      info.codecs += ", ";
    info.codecs += t->codec;
  }
  for (const Track &t : info.tracks) {
    if (t.is_video () || t.is_audio () || t.codec.empty ())
      continue;
    if (!info.other_codecs.empty ())
      info.other_codecs += ", ";
    info.other_codecs += t.codec;
  }
  // A mime with a codec missing would mislead MediaSource.isTypeSupported(): leave it empty.
  if (!info.codecs.empty () && all_known)
    info.mime = std::string (info.has_video ? "video/mp4" : "audio/mp4") + "; codecs=\"" +
                info.codecs + "\"";
  return info;
}

std::string
NoFragmentDiagnosis (const InitInfo &init, double seconds)
{
  char head[96];
  snprintf (head, sizeof head, "No fragment in the %g s since the init segment. ", seconds);
  if (!init.has_video && init.has_audio)
    return std::string (head) +
           "An audio-only stream from ffmpeg with -movflags frag_keyframe alone gets no "
           "fragment until ffmpeg ends (frag_keyframe cuts fragments at video keyframes "
           "only): add -frag_duration 500000 (0.5 s fragments) or use -movflags "
           "+frag_every_frame. With mp4mux, set fragment-duration.";
  if (init.has_video)
    return std::string (head) +
           "ffmpeg's -movflags frag_keyframe starts a fragment at each video keyframe, so the "
           "keyframe interval is likely longer than that: lower it with -g (e.g. -g 60 at 30 "
           "fps) or add -frag_duration 500000. With mp4mux, set fragment-duration; with x264enc, "
           "key-int-max.";
  return std::string (head) +
         "The stream has no audio or video track: add -frag_duration 500000 to ffmpeg.";
}

namespace {

bool
IsContainer (uint32_t type)
{
  switch (type) {
    case FourCC ("moov"): case FourCC ("trak"): case FourCC ("mdia"): case FourCC ("minf"):
    case FourCC ("stbl"):
      return true;
    default:
      return false;
  }
}

void
WriteEmptyTable (Writer &w, uint32_t type)
{
  size_t b = w.BeginFullBox (type, 0, 0);
  if (type == FourCC ("stsz"))
    w.U32 (0);  // sample_size
  w.U32 (0);    // entry / sample count
  w.EndBox (b);
}

// Zeroes the duration field of mvhd/tkhd/mdhd/mehd in a copied box.
void
ZeroDuration (uint32_t type, std::vector<uint8_t> &out, size_t box_start, size_t header)
{
  uint8_t *p = out.data () + box_start + header;
  size_t n = out.size () - box_start - header;
  if (n < 4)
    return;
  bool v1 = p[0] == 1;
  size_t at = 0, width = v1 ? 8 : 4;
  switch (type) {
    case FourCC ("mvhd"): case FourCC ("mdhd"):
      at = 4 + (v1 ? 16 : 8) + 4;  // after times and timescale
      break;
    case FourCC ("tkhd"):
      at = 4 + (v1 ? 16 : 8) + 8;  // after times, track_ID, reserved
      break;
    case FourCC ("mehd"):
      at = 4;
      break;
    default:
      return;
  }
  if (at + width <= n)
    std::fill (p + at, p + at + width, 0);
}

void
CleanBox (const uint8_t *box, size_t size, Writer &w)
{
  BoxHeader h;
  ParseBoxHeader (box, size, size, &h);
  if (!IsContainer (h.type)) {
    size_t start = w.size ();
    w.Bytes (box, size);
    ZeroDuration (h.type, w.bytes (), start, h.header_size);
    return;
  }
  size_t b = w.BeginBox (h.type);
  BoxIterator it (box + h.header_size, size - h.header_size);
  while (it.Next ()) {
    switch (it.type ()) {
      case FourCC ("stts"): case FourCC ("stsc"): case FourCC ("stsz"): case FourCC ("stco"):
        WriteEmptyTable (w, it.type ());
        break;
      case FourCC ("co64"):
        WriteEmptyTable (w, FourCC ("stco"));
        break;
      case FourCC ("stz2"):
        WriteEmptyTable (w, FourCC ("stsz"));
        break;
      case FourCC ("ctts"): case FourCC ("stss"): case FourCC ("stps"): case FourCC ("sdtp"):
      case FourCC ("sbgp"): case FourCC ("subs"): case FourCC ("saiz"): case FourCC ("saio"):
        break;  // describe the moov's samples only
      case FourCC ("mvex"): {
        size_t mb = w.BeginBox (FourCC ("mvex"));
        BoxIterator mv (it.payload (), it.payload_size ());
        while (mv.Next ())
          CleanBox (mv.box (), mv.box_size (), w);
        w.EndBox (mb);
        break;
      }
      default:
        CleanBox (it.box (), it.box_size (), w);
    }
  }
  w.EndBox (b);
}

}  // namespace

std::vector<uint8_t>
CleanMoov (const uint8_t *moov, size_t size)
{
  Writer w;
  CleanBox (moov, size, w);
  return std::move (w.bytes ());
}

std::vector<uint8_t>
BuildFirstFragment (const InitInfo &init, uint32_t sequence, uint64_t mdat_offset,
                    uint32_t mdat_header, uint64_t mdat_size, std::string *error)
{
  const uint64_t payload_start = mdat_offset + mdat_header;
  const uint64_t payload_end = mdat_offset + mdat_size;
  Writer w;
  struct Patch { size_t at; uint64_t sample_offset; };
  std::vector<Patch> patches;

  size_t moof = w.BeginBox (FourCC ("moof"));
  size_t mfhd = w.BeginFullBox (FourCC ("mfhd"), 0, 0);
  w.U32 (sequence);
  w.EndBox (mfhd);
  for (const Track &t : init.tracks) {
    const SampleTable &st = t.samples;
    size_t count = st.sizes.size ();
    if (count == 0)
      continue;
    for (size_t i = 0; i < count; i++) {
      if (st.offsets[i] < payload_start || st.offsets[i] + st.sizes[i] > payload_end) {
        *error = "the samples listed in the moov are not in the mdat that follows it";
        return {};
      }
    }
    bool has_cts = !st.cts_offsets.empty ();
    bool negative_cts = false;
    for (int32_t o : st.cts_offsets)
      negative_cts |= o < 0;
    size_t traf = w.BeginBox (FourCC ("traf"));
    size_t tfhd = w.BeginFullBox (FourCC ("tfhd"), 0, 0x020000);  // default-base-is-moof
    w.U32 (t.id);
    w.EndBox (tfhd);
    size_t tfdt = w.BeginFullBox (FourCC ("tfdt"), 1, 0);
    w.U64 (0);
    w.EndBox (tfdt);
    // One trun per run of contiguous samples (a chunk, usually).
    size_t i = 0;
    while (i < count) {
      size_t j = i + 1;
      while (j < count && st.offsets[j] == st.offsets[j - 1] + st.sizes[j - 1])
        j++;
      uint32_t flags = 0x000001 | 0x000100 | 0x000200 | 0x000400 | (has_cts ? 0x000800 : 0);
      size_t trun = w.BeginFullBox (FourCC ("trun"), negative_cts ? 1 : 0, flags);
      w.U32 (uint32_t (j - i));
      patches.push_back ({w.size (), st.offsets[i]});
      w.U32 (0);  // data_offset, patched below
      for (size_t k = i; k < j; k++) {
        bool sync = !st.has_stss ||
                    std::binary_search (st.sync.begin (), st.sync.end (), uint32_t (k + 1));
        w.U32 (st.durations[k]);
        w.U32 (st.sizes[k]);
        w.U32 (sync ? 0x02000000 : 0x01010000);
        if (has_cts)
          w.U32 (uint32_t (st.cts_offsets[k]));
      }
      w.EndBox (trun);
      i = j;
    }
    w.EndBox (traf);
  }
  w.EndBox (moof);
  const uint64_t moof_size = w.size ();
  for (const Patch &p : patches) {
    uint64_t rel = moof_size + mdat_header + (p.sample_offset - payload_start);
    if (rel > 0x7fffffff) {
      *error = "first fragment too large";
      return {};
    }
    w.PatchU32 (p.at, uint32_t (rel));
  }
  return std::move (w.bytes ());
}

}  // namespace fmp4ws::core
