// libFuzzer target: the whole core path of fmp4initcache (gst/gstfmp4initcache.cpp), with a
// std::vector in place of the GstAdapter.
//
// Input: a 4-byte control header, then the byte stream.
//   byte 0, bits 0-1: max-box-size (0, 1: 64 MiB, the element's default; 2: 4096, its
//                     minimum; 3: 32768)
//           bits 2-4: chunking (0: the whole stream in one buffer; 1: one byte at a time;
//                     n >= 2: random sizes in [1, 4^n])
//           bits 5-7: extra rebase offset (see ExtraOffset)
//   bytes 1-3:        seed of the chunk-size generator
//
// The stream goes through BoxSplitter::Next/Consumed and StreamAssembler::PushBox/LostSync
// exactly as the element's chain function drives them, while a held-box list mirrors the
// element's. Checked: splitter events against the bytes, the held list against
// StreamAssembler::held() and kMaxHeldBoxes, every init segment (ftyp + moov that parses,
// without samples), every fragment (optional styp/prft/emsg/sidx/ssix, one moof that parses
// to the Decision's FragmentInfo, then the boxes its data spans, at least one mdat; a
// rewritten moof addresses MSE's way, inside them; RebaseMoof on a copy of the moof), the first
// fragment rebuilt from a moov with samples (truns point at the moov's samples), and that a
// chunked run gives exactly the boxes and segments of a whole-buffer run. ParseMoov/CleanMoov/
// ParseMoof/CodecStringForSampleEntry are also called directly on the input and on every box.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "normalize.h"

using namespace fuzz;

namespace {

constexpr uint64_t kDefaultMaxBoxSize = 64u << 20;

struct Options
{
  uint64_t max_box_size = kDefaultMaxBoxSize;
  unsigned chunking = 0;
  uint32_t seed = 0;
  int64_t extra_offset_ns = 0;
};

int64_t
ExtraOffset (unsigned sel)
{
  switch (sel) {
    case 0: return 0;
    case 1: return -10000000000;             // -10 s: times moved later
    case 2: return 500000000;                // 0.5 s
    case 3: return 10000000000;              // 10 s
    case 4: return 3600000000000;            // 1 h
    case 5: return int64_t (1) << 40;
    case 6: return std::numeric_limits<int64_t>::min ();
    default: return std::numeric_limits<int64_t>::max () / 3;
  }
}

// What a run produced, compared between chunkings. Warnings are not part of it (their
// text and number may depend on where buffers end).
struct Event
{
  enum Kind { kBox, kInit, kFragment, kSplitError, kAssemblerError } kind = kBox;
  uint64_t offset = 0;
  uint32_t type = 0;
  uint64_t size = 0;
  bool discont = false;
  bool keyframe = false;
  uint32_t sequence = 0;
  std::vector<uint8_t> bytes;

  bool operator== (const Event &o) const
  {
    return kind == o.kind && offset == o.offset && type == o.type && size == o.size &&
           discont == o.discont && keyframe == o.keyframe && sequence == o.sequence &&
           bytes == o.bytes;
  }
};

Event
Marker (Event::Kind kind, uint64_t offset)
{
  Event e;
  e.kind = kind;
  e.offset = offset;
  return e;
}

class Run
{
public:
  Run (const Options &o, bool chunked) : opt_ (o), chunked_ (chunked), rng_ (o.seed),
                                         splitter_ (o.max_box_size) {}

  std::vector<Event> Go (const uint8_t *data, size_t size)
  {
    size_t fed = 0;
    while (fed < size && !stopped_) {
      size_t n = size - fed;
      if (chunked_)
        n = std::min (n, NextChunk ());
      src_.Append (data + fed, n);
      fed += n;
      Drain ();
    }
    // End of stream (the element's EOS): whatever is left is dropped.
    return std::move (events_);
  }

private:
  size_t NextChunk ()
  {
    if (opt_.chunking == 1)
      return 1;
    return 1 + rng_.Next () % (size_t (1) << (2 * opt_.chunking));
  }

  // The element's chain function after gst_adapter_push.
  void Drain ()
  {
    for (;;) {
      size_t before = src_.Available ();
      BoxSplitter::Event ev = splitter_.Next (src_);
      size_t after = src_.Available ();
      FUZZ_CHECK (after <= before);
      removed_ += before - after;  // garbage skipped by a resync
      FUZZ_CHECK (splitter_.offset () == removed_);
      if (!splitter_.TakeWarning ().empty ()) {
        Apply (assembler_.LostSync (), nullptr, nullptr);
        FUZZ_CHECK (held_.empty () && assembler_.held () == 0);
      }
      if (ev.kind == BoxSplitter::Event::kNeedMore) {
        CheckNeedMore ();
        return;
      }
      if (ev.kind == BoxSplitter::Event::kError) {
        FUZZ_CHECK (!ev.message.empty ());
        Record (Marker (Event::kSplitError, removed_));
        stopped_ = true;
        return;
      }
      FUZZ_CHECK (ev.kind == BoxSplitter::Event::kBox);
      const BoxHeader &h = ev.header;
      FUZZ_CHECK (h.header_size == 8 || h.header_size == 16);
      FUZZ_CHECK (h.size >= h.header_size);
      FUZZ_CHECK (h.size <= opt_.max_box_size);
      FUZZ_CHECK (h.size <= src_.Available ());
      FUZZ_CHECK (ev.offset == removed_);
      BoxHeader again;
      FUZZ_CHECK (ParseBoxHeader (src_.front (), src_.Available (), opt_.max_box_size, &again) ==
                  HeaderStatus::kOk);
      FUZZ_CHECK (again.type == h.type && again.size == h.size &&
                  again.header_size == h.header_size);

      std::vector<uint8_t> box = src_.Take (size_t (h.size));
      removed_ += box.size ();
      splitter_.Consumed (h.size);
      FUZZ_CHECK (splitter_.offset () == removed_);
      Event e = Marker (Event::kBox, ev.offset);
      e.type = h.type;
      e.size = h.size;
      Record (e);

      // Direct calls on every box (only on one run of the two: they do not depend on chunking).
      if (!chunked_)
        CheckBoxDirectly (h, box);

      if (h.type == FourCC ("ftyp"))
        ftyp_offset_ = ev.offset;
      Decision d = assembler_.PushBox (h, ev.offset,
                                       h.type == FourCC ("mdat") ? nullptr : box.data ());
      Apply (d, &box, &h);
      if (stopped_)
        return;
    }
  }

  // kNeedMore must mean it: the front cannot be a whole box yet.
  void CheckNeedMore ()
  {
    size_t avail = src_.Available ();
    if (avail < 8)
      return;
    BoxHeader h;
    HeaderStatus st = ParseBoxHeader (src_.front (), avail, opt_.max_box_size, &h);
    if (st == HeaderStatus::kNeedMore) {
      FUZZ_CHECK (avail < 16);
      return;
    }
    FUZZ_CHECK (st == HeaderStatus::kOk);
    FUZZ_CHECK (h.size > avail);
  }

  void CheckBoxDirectly (const BoxHeader &h, const std::vector<uint8_t> &box)
  {
    if (h.type == FourCC ("moov"))
      CheckMoovBox (box.data (), box.size ());
    if (h.type == FourCC ("moof")) {
      if (const InitInfo *init = assembler_.init ())
        CheckMoofBox (box.data (), box.size (), *init, opt_.extra_offset_ns);
      CheckMoofBox (box.data (), box.size (), InitInfo (), opt_.extra_offset_ns);
    }
    CheckCodecString (CodecStringForSampleEntry (box.data (), box.size ()));
  }

  // The element's apply_decision, with the held GstBuffers as byte vectors.
  void Apply (const Decision &d, std::vector<uint8_t> *box, const BoxHeader *h)
  {
    if (d.discard_held)
      held_.clear ();
    if (box)
      held_.push_back (*box);
    switch (d.kind) {
      case Decision::kHold:
        FUZZ_CHECK (d.pieces.empty ());
        break;
      case Decision::kDrop:
        FUZZ_CHECK (box != nullptr);
        FUZZ_CHECK (d.pieces.empty ());
        held_.pop_back ();
        break;
      case Decision::kEmitInit:
        FUZZ_CHECK (box != nullptr);
        OnInit (d);
        held_.clear ();
        break;
      case Decision::kEmitFragment:
        FUZZ_CHECK (box != nullptr && h != nullptr);
        OnFragment (d, *h);
        held_.clear ();
        break;
      case Decision::kError:
        FUZZ_CHECK (!d.message.empty ());
        Record (Marker (Event::kAssemblerError, removed_));
        stopped_ = true;
        return;
    }
    FUZZ_CHECK (held_.size () <= StreamAssembler::kMaxHeldBoxes);
    FUZZ_CHECK (assembler_.held () == held_.size ());
  }

  std::vector<uint8_t> Build (const Decision &d, std::vector<bool> *from_held)
  {
    std::vector<uint8_t> out;
    FUZZ_CHECK (!d.pieces.empty ());
    for (const Piece &p : d.pieces) {
      FUZZ_CHECK (p.held >= -1 && p.held < int (held_.size ()));
      const std::vector<uint8_t> &b = p.held >= 0 ? held_[size_t (p.held)] : p.bytes;
      FUZZ_CHECK (!b.empty ());
      from_held->push_back (p.held >= 0);
      out.insert (out.end (), b.begin (), b.end ());
    }
    return out;
  }

  void OnInit (const Decision &d)
  {
    FUZZ_CHECK (d.init != nullptr && d.init == assembler_.init ());
    FUZZ_CHECK (d.init->fragmented);
    CheckInitInfo (*d.init);
    std::vector<bool> from_held;
    std::vector<uint8_t> bytes = Build (d, &from_held);
    std::vector<TopBox> boxes = SplitWhole (bytes.data (), bytes.size ());
    FUZZ_CHECK (boxes.size () == 2);
    FUZZ_CHECK (boxes[0].type == FourCC ("ftyp") && boxes[1].type == FourCC ("moov"));
    std::string error;
    std::optional<InitInfo> moov =
        ParseMoov (bytes.data () + boxes[1].offset, boxes[1].size, &error);
    FUZZ_CHECK (moov);
    FUZZ_CHECK (moov->fragmented);
    FUZZ_CHECK (!moov->moov_has_samples);  // MSE wants empty sample tables
    CheckSameTracks (*d.init, *moov);
    Event e = Marker (Event::kInit, 0);
    e.discont = d.discont;
    e.bytes = std::move (bytes);
    Record (std::move (e));
  }

  void OnFragment (const Decision &d, const BoxHeader &last)
  {
    const InitInfo *init = assembler_.init ();
    FUZZ_CHECK (init != nullptr);
    FUZZ_CHECK (d.fragment != nullptr);
    CheckFragmentInfo (*d.fragment);
    std::vector<bool> from_held;
    std::vector<uint8_t> bytes = Build (d, &from_held);
    // The current box (an mdat, or a box inside the span the data offsets address) is the
    // last piece.
    FUZZ_CHECK (d.pieces.back ().held == int (held_.size ()) - 1);
    std::vector<TopBox> boxes = SplitWhole (bytes.data (), bytes.size ());
    FUZZ_CHECK (boxes.size () >= 2);
    FUZZ_CHECK (boxes.back ().size == last.size);
    // [styp|prft|emsg|sidx|ssix]* moof, then the boxes its data spans: at least one mdat,
    // no box that starts something else.
    size_t moofs = 0, moof_index = 0, mdats = 0;
    for (size_t i = 0; i < boxes.size (); i++) {
      uint32_t t = boxes[i].type;
      bool prefix = t == FourCC ("styp") || t == FourCC ("prft") || t == FourCC ("emsg") ||
                    t == FourCC ("sidx") || t == FourCC ("ssix");
      if (t == FourCC ("moof")) {
        moofs++;
        moof_index = i;
        continue;
      }
      mdats += moofs == 1 && t == FourCC ("mdat");
      if ((moofs == 0 && !prefix) || (moofs == 1 && (prefix || t == FourCC ("ftyp") ||
                                                     t == FourCC ("moov")))) {
        fprintf (stderr, "fragment holds a '%s' box (box %zu of %zu)\n",
                 FourCCToString (t).c_str (), i, boxes.size ());
        FUZZ_CHECK (!"only styp/prft/emsg/sidx/ssix, one moof and the boxes of its data");
      }
    }
    FUZZ_CHECK (moofs == 1);
    FUZZ_CHECK (mdats >= 1);
    const TopBox &mb = boxes[moof_index];
    const uint8_t *moof = bytes.data () + mb.offset;
    std::string error;
    std::optional<FragmentInfo> f = ParseMoof (moof, mb.size, *init, &error);
    FUZZ_CHECK (f);
    CheckSameFragment (*f, *d.fragment);
    // A moof the assembler made (ffmpeg's moov with samples): the mdat comes right after it
    // and its samples are the moov's.
    if (!d.pieces[0].bytes.empty () && !d.normalized) {
      FUZZ_CHECK (d.pieces.size () == 2 && moof_index == 0 && last.type == FourCC ("mdat"));
      CheckBuiltFirstFragment (d.pieces[0].bytes, *init, removed_ - last.size - ftyp_offset_,
                               last.header_size, last.size);
    }
    // A rewritten moof: the addressing MSE takes, every run inside what follows the moof.
    if (d.normalized) {
      FUZZ_CHECK (!d.pieces[moof_index].bytes.empty ());
      MoofLayout layout;
      FUZZ_CHECK (ParseMoofLayout (moof, mb.size, *init, &layout, &error));
      FUZZ_CHECK (layout.reasons == 0);
      size_t after = bytes.size () - mb.offset;
      for (const TrafLayout &tl : layout.trafs)
        for (const TrunLayout &run : tl.truns)
          FUZZ_CHECK (run.bytes == 0 || (run.data_offset >= int64_t (mb.size) &&
                                         uint64_t (run.data_offset) + run.bytes <= after));
    }
    // What a viewer's send path does with each fragment.
    CheckRebases (moof, mb.size, *init, *f, opt_.extra_offset_ns);
    Event e = Marker (Event::kFragment, 0);
    e.discont = d.discont;
    e.keyframe = d.fragment->keyframe;
    e.sequence = d.fragment->sequence;
    e.bytes = std::move (bytes);
    Record (std::move (e));
  }

  // FUZZ_VERBOSE=1 ./fuzz_stream FILE: what the element does with FILE (one-buffer run).
  void Record (Event e)
  {
    static const bool verbose = getenv ("FUZZ_VERBOSE") != nullptr;
    if (verbose && !chunked_) {
      static const char *const kinds[] = {"box", "init", "fragment", "splitter error",
                                          "assembler error"};
      if (e.kind == Event::kBox)
        fprintf (stderr, "box '%s' at %llu, %llu bytes\n", FourCCToString (e.type).c_str (),
                 (unsigned long long) e.offset, (unsigned long long) e.size);
      else
        fprintf (stderr, "  -> %s%s%s seq %u, %zu bytes\n", kinds[e.kind],
                 e.discont ? " discont" : "", e.keyframe ? " keyframe" : "", e.sequence,
                 e.bytes.size ());
    }
    events_.push_back (std::move (e));
  }

  Options opt_;
  bool chunked_;
  Rng rng_;
  VectorSource src_;
  BoxSplitter splitter_;
  StreamAssembler assembler_;
  std::vector<std::vector<uint8_t>> held_;
  uint64_t removed_ = 0;  // bytes taken from the front of src_ so far = stream offset
  uint64_t ftyp_offset_ = 0;
  bool stopped_ = false;
  std::vector<Event> events_;
};

}  // namespace

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 4)
    return 0;
  Options o;
  switch (data[0] & 3) {
    case 2: o.max_box_size = 4096; break;
    case 3: o.max_box_size = 32768; break;
    default: break;
  }
  o.chunking = (data[0] >> 2) & 7;
  o.extra_offset_ns = ExtraOffset (data[0] >> 5);
  o.seed = (uint32_t (data[1]) << 16) | (uint32_t (data[2]) << 8) | data[3];
  const uint8_t *stream = data + 4;
  size_t n = size - 4;

  // Direct calls on the raw input: nothing may crash, whatever the bytes.
  {
    if (n > 0)
      CheckMoovBox (stream, n);
    CheckMoofBox (stream, n, InitInfo (), o.extra_offset_ns);
    CheckCodecString (CodecStringForSampleEntry (stream, n));
  }

  std::vector<Event> whole = Run (o, false).Go (stream, n);
  if (o.chunking != 0) {
    std::vector<Event> chunked = Run (o, true).Go (stream, n);
    if (!(chunked == whole)) {
      size_t i = 0;
      while (i < whole.size () && i < chunked.size () && whole[i] == chunked[i])
        i++;
      fprintf (stderr,
               "chunking changed the output: %zu events in one buffer, %zu chunked, first "
               "difference at event %zu\n",
               whole.size (), chunked.size (), i);
      for (const std::vector<Event> *v : {&whole, &chunked})
        if (i < v->size ()) {
          const Event &e = (*v)[i];
          fprintf (stderr, "  %s: kind %d offset %llu type '%s' size %llu\n",
                   v == &whole ? "whole" : "chunked", int (e.kind),
                   (unsigned long long) e.offset, FourCCToString (e.type).c_str (),
                   (unsigned long long) e.size);
        }
      FUZZ_CHECK (!"any chunking of the input gives the same boxes and segments");
    }
  }
  return 0;
}
