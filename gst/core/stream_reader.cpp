#include "stream_reader.h"

#include <algorithm>

namespace fmp4ws::core {

void
StreamReader::Queue::Peek (size_t offset, size_t n, uint8_t *out) const
{
  std::copy_n (bytes_.begin () + long (offset), n, out);
}

void
StreamReader::Queue::Skip (size_t n)
{
  bytes_.erase (bytes_.begin (), bytes_.begin () + long (n));
}

std::vector<uint8_t>
StreamReader::Queue::Take (size_t n)
{
  std::vector<uint8_t> v (bytes_.begin (), bytes_.begin () + long (n));
  Skip (n);
  return v;
}

void
StreamReader::Apply (const Decision &d, std::vector<uint8_t> box, std::vector<Segment> *out)
{
  if (d.discard_held)
    held_.clear ();
  if (!d.warning.empty ())
    out->push_back ({Segment::kWarning, {}, {}, {}, false, d.warning});
  if (!box.empty ())
    held_.push_back (std::move (box));
  switch (d.kind) {
    case Decision::kHold:
      return;
    case Decision::kDrop:
      if (!held_.empty ())
        held_.pop_back ();
      return;
    case Decision::kError:
      out->push_back ({Segment::kError, {}, {}, {}, false, d.message});
      failed_ = true;
      return;
    case Decision::kEmitInit:
    case Decision::kEmitFragment: {
      Segment s;
      s.kind = d.kind == Decision::kEmitInit ? Segment::kInit : Segment::kFragment;
      for (const Piece &p : d.pieces) {
        const std::vector<uint8_t> &b = p.held >= 0 ? held_[size_t (p.held)] : p.bytes;
        s.bytes.insert (s.bytes.end (), b.begin (), b.end ());
      }
      if (d.init)
        s.init = *d.init;
      if (d.fragment)
        s.fragment = *d.fragment;
      s.discont = d.discont;
      s.normalized = d.normalized;
      s.timestamp_jump = d.timestamp_jump;
      s.info = d.info;
      held_.clear ();
      out->push_back (std::move (s));
      return;
    }
  }
}

std::vector<Segment>
StreamReader::Push (const uint8_t *data, size_t size)
{
  std::vector<Segment> out;
  if (failed_)
    return out;
  queue_.Append (data, size);
  for (;;) {
    BoxSplitter::Event ev = splitter_.Next (queue_);
    std::string warning = splitter_.TakeWarning ();
    if (!warning.empty ()) {
      out.push_back ({Segment::kWarning, {}, {}, {}, false, warning});
      Apply (assembler_.LostSync (), {}, &out);
    }
    if (ev.kind == BoxSplitter::Event::kNeedMore)
      return out;
    if (ev.kind == BoxSplitter::Event::kError) {
      out.push_back ({Segment::kError, {}, {}, {}, false, ev.message});
      failed_ = true;
      return out;
    }
    std::vector<uint8_t> box = queue_.Take (size_t (ev.header.size));
    splitter_.Consumed (ev.header.size);
    Decision d = assembler_.PushBox (ev.header, ev.offset,
                                     ev.header.type == FourCC ("mdat") ? nullptr : box.data ());
    Apply (d, std::move (box), &out);
    if (failed_)
      return out;
  }
}

std::vector<Segment>
StreamReader::Finish ()
{
  std::vector<Segment> out;
  if (!failed_ && (queue_.Available () > 0 || !held_.empty ()))
    out.push_back ({Segment::kWarning, {}, {}, {}, false,
                    "the stream ended in the middle of a box (" +
                        std::to_string (queue_.Available ()) + " bytes dropped)"});
  return out;
}

}  // namespace fmp4ws::core
