#include "box.h"

#include <algorithm>
#include <vector>

namespace fmp4ws::core {

bool
IsSyncAnchorType (uint32_t type)
{
  switch (type) {
    case FourCC ("ftyp"):
    case FourCC ("styp"):
    case FourCC ("moov"):
    case FourCC ("moof"):
    case FourCC ("sidx"):
    case FourCC ("prft"):
    case FourCC ("emsg"):
      return true;
    default:
      return false;
  }
}

bool
IsKnownTopLevelType (uint32_t type)
{
  if (IsSyncAnchorType (type))
    return true;
  switch (type) {
    case FourCC ("mdat"): case FourCC ("ssix"): case FourCC ("mfra"): case FourCC ("free"):
    case FourCC ("skip"): case FourCC ("meta"): case FourCC ("uuid"): case FourCC ("pdin"):
    case FourCC ("udta"): case FourCC ("mvex"): case FourCC ("wide"):
      return true;
    default:
      return false;
  }
}

bool
FindChild (const uint8_t *payload, size_t size, uint32_t type, const uint8_t **child_payload,
           size_t *child_size)
{
  BoxIterator it (payload, size);
  while (it.Next ()) {
    if (it.type () == type) {
      *child_payload = it.payload ();
      *child_size = it.payload_size ();
      return true;
    }
  }
  return false;
}

std::string
BoxSplitter::TakeWarning ()
{
  std::string w;
  w.swap (warning_);
  return w;
}

void
BoxSplitter::Reset ()
{
  offset_ = 0;
  boxes_ = 0;
  garbage_ = 0;
  resyncing_ = false;
  warning_.clear ();
}

BoxSplitter::Event
BoxSplitter::Next (ByteSource &src)
{
  Event ev;
  for (;;) {
    if (resyncing_ && !Resync (src, &ev))
      return ev;  // need more, or error

    size_t avail = src.Available ();
    uint8_t hdr[16];
    size_t n = std::min<size_t> (avail, sizeof hdr);
    if (n < 8)
      return ev;  // kNeedMore
    src.Peek (0, n, hdr);
    BoxHeader h;
    HeaderStatus st = ParseBoxHeader (hdr, n, max_box_size_, &h);
    switch (st) {
      case HeaderStatus::kNeedMore:
        return ev;
      case HeaderStatus::kTooLarge:
        if (!IsKnownTopLevelType (h.type)) {
          // Printable garbage (text, an HTTP header...) rather than a real box.
          resyncing_ = true;
          garbage_ = 0;
          continue;
        }
        ev.kind = Event::kError;
        ev.message = "box '" + FourCCToString (h.type) + "' at byte " + std::to_string (offset_) +
                     " is " + std::to_string (h.size) + " bytes, more than max-box-size (" +
                     std::to_string (max_box_size_) +
                     " bytes): raise max-box-size if this stream is genuine";
        return ev;
      case HeaderStatus::kBadType:
      case HeaderStatus::kTooSmall:
        // Lost sync (or garbage before the first box): scan for a known box.
        resyncing_ = true;
        garbage_ = 0;
        continue;
      case HeaderStatus::kOk:
        break;
    }
    if (avail < h.size)
      return ev;  // kNeedMore: wait for the whole box
    ev.kind = Event::kBox;
    ev.header = h;
    ev.offset = offset_;
    return ev;
  }
}

// Scans forward for "size type" where type is a sync anchor and size is plausible.
// Returns true when locked (front of src is the anchor), false when more data is
// needed or on error (ev set).
bool
BoxSplitter::Resync (ByteSource &src, Event *ev)
{
  std::vector<uint8_t> window;
  for (;;) {
    size_t avail = src.Available ();
    // Look at up to 64 KiB at a time; a candidate needs 8 bytes.
    size_t n = std::min<size_t> (avail, 65536);
    if (n < 8)
      return false;
    window.resize (n);
    src.Peek (0, n, window.data ());
    size_t i = 0;
    bool undecided = false;
    for (; i + 8 <= n; i++) {
      BoxHeader h;
      uint32_t type = LoadU32 (window.data () + i + 4);
      if (!IsSyncAnchorType (type))
        continue;
      HeaderStatus st = ParseBoxHeader (window.data () + i, n - i, max_box_size_, &h);
      if (st == HeaderStatus::kOk)
        break;
      if (st == HeaderStatus::kNeedMore) {
        // A 64-bit size not all in view: whether this is a box (or too large, or garbage)
        // must not depend on where the input buffers happen to end.
        undecided = true;
        break;
      }
    }
    if (i > 0) {
      src.Skip (i);
      offset_ += i;
      garbage_ += i;
    }
    if (undecided) {
      if (src.Available () < 16)
        return false;  // wait for the rest of its header
      continue;        // the window ended inside it: look again from the candidate
    }
    if (i + 8 <= n) {
      resyncing_ = false;
      warning_ = (boxes_ == 0 ? "skipped " + std::to_string (garbage_) +
                                    " bytes of garbage before the first box"
                              : "lost box sync at byte " + std::to_string (offset_ - garbage_) +
                                    ": skipped " + std::to_string (garbage_) +
                                    " bytes to the next '" +
                                    FourCCToString (LoadU32 (window.data () + i + 4)) + "' box");
      garbage_ = 0;
      return true;
    }
    if (garbage_ > kMaxResyncBytes) {
      ev->kind = Event::kError;
      ev->message = "no ISO BMFF box found in " + std::to_string (garbage_) +
                    " bytes: the input is not a fragmented MP4 stream (or is corrupted)";
      return false;
    }
    // Fewer than 8 bytes remain after the skipped part: wait for more.
    if (src.Available () < 8)
      return false;
  }
}

}  // namespace fmp4ws::core
