// ISO BMFF box headers, child iteration, and the incremental top-level box splitter.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "bytes.h"

namespace fmp4ws::core {

struct BoxHeader
{
  uint32_t type = 0;
  uint64_t size = 0;         // whole box, header included
  uint32_t header_size = 0;  // 8, or 16 with a 64-bit largesize
};

enum class HeaderStatus
{
  kOk,
  kNeedMore,   // fewer bytes than a header needs
  kBadType,    // type is not four printable characters
  kTooSmall,   // size < header size (includes size 0, "to end of file", unusable live)
  kTooLarge,   // size > the caller's bound
};

inline bool
IsPrintableType (uint32_t type)
{
  for (int shift = 24; shift >= 0; shift -= 8) {
    uint8_t c = uint8_t (type >> shift);
    if (c < 0x20 || c > 0x7e)
      return false;
  }
  return true;
}

// Parses the header at p[0..n). Does not look past the header. Inline: it runs for every
// box, and every child box of every moof.
inline HeaderStatus
ParseBoxHeader (const uint8_t *p, size_t n, uint64_t max_size, BoxHeader *out)
{
  if (n < 8)
    return HeaderStatus::kNeedMore;
  uint64_t size = LoadU32 (p);
  uint32_t type = LoadU32 (p + 4);
  uint32_t header = 8;
  if (!IsPrintableType (type))
    return HeaderStatus::kBadType;
  if (size == 1) {
    if (n < 16)
      return HeaderStatus::kNeedMore;
    size = (uint64_t (LoadU32 (p + 8)) << 32) | LoadU32 (p + 12);
    header = 16;
  }
  out->type = type;
  out->size = size;
  out->header_size = header;
  if (size < header)
    return HeaderStatus::kTooSmall;
  if (size > max_size)
    return HeaderStatus::kTooLarge;
  return HeaderStatus::kOk;
}

// True for the top-level box types a resync may lock onto.
bool IsSyncAnchorType (uint32_t type);
// True for the box types ISO BMFF allows at top level (anchors, mdat, free, mfra...).
// An oversized box of another type is taken for garbage, not for a box.
bool IsKnownTopLevelType (uint32_t type);

// Iterates the child boxes of a box payload. Stops (and sets error()) at the first
// child whose size does not fit in the parent.
class BoxIterator
{
public:
  BoxIterator (const uint8_t *payload, size_t size) : p_ (payload), size_ (size) {}
  // Advances to the next child; false at the end or on error.
  bool Next ()
  {
    if (error_ || size_ - pos_ < 8)
      return false;
    BoxHeader h;
    HeaderStatus st = ParseBoxHeader (p_ + pos_, size_ - pos_, size_ - pos_, &h);
    if (st != HeaderStatus::kOk) {
      error_ = true;
      return false;
    }
    start_ = pos_;
    header_ = h.header_size;
    box_size_ = size_t (h.size);
    type_ = h.type;
    pos_ += box_size_;
    return true;
  }
  uint32_t type () const { return type_; }
  const uint8_t *box () const { return p_ + start_; }              // header included
  size_t box_size () const { return box_size_; }
  const uint8_t *payload () const { return p_ + start_ + header_; }
  size_t payload_size () const { return box_size_ - header_; }
  bool error () const { return error_; }

private:
  const uint8_t *p_;
  size_t size_;
  size_t pos_ = 0;
  size_t start_ = 0;
  size_t header_ = 0;
  size_t box_size_ = 0;
  uint32_t type_ = 0;
  bool error_ = false;
};

// Finds the first child of the given type; returns false if absent.
bool FindChild (const uint8_t *payload, size_t size, uint32_t type, const uint8_t **child_payload,
                size_t *child_size);

// The bytes a splitter reads from. The element implements it over a GstAdapter
// (zero copy); tests implement it over a std::vector.
class ByteSource
{
public:
  virtual ~ByteSource () = default;
  virtual size_t Available () const = 0;
  virtual void Peek (size_t offset, size_t n, uint8_t *out) const = 0;
  virtual void Skip (size_t n) = 0;
};

// Incremental top-level box splitter: any chunking of the input gives the same boxes.
// It never buffers by itself: bytes stay in the ByteSource until the caller takes a box.
class BoxSplitter
{
public:
  // Garbage scanned while looking for a box before giving up (see README, "Bad input").
  static constexpr uint64_t kMaxResyncBytes = 4u << 20;

  struct Event
  {
    enum Kind
    {
      kNeedMore,  // wait for more input
      kBox,       // a whole box is available at the front: the caller must consume header.size bytes
      kError,     // unrecoverable: message says why
    } kind = kNeedMore;
    BoxHeader header;
    uint64_t offset = 0;  // stream offset of the box
    std::string message;
  };

  explicit BoxSplitter (uint64_t max_box_size) : max_box_size_ (max_box_size) {}

  // Looks at the front of src. Garbage is skipped (and reported via TakeWarning()).
  Event Next (ByteSource &src);
  // Must be called after the caller consumed a kBox event's bytes.
  void Consumed (uint64_t n) { offset_ += n; boxes_++; }

  // A warning produced by the last Next() (garbage skipped), or empty.
  std::string TakeWarning ();
  uint64_t offset () const { return offset_; }
  void Reset ();
  void set_max_box_size (uint64_t v) { max_box_size_ = v; }

private:
  bool Resync (ByteSource &src, Event *ev);

  uint64_t max_box_size_;
  uint64_t offset_ = 0;
  uint64_t boxes_ = 0;
  uint64_t garbage_ = 0;       // bytes skipped in the current resync
  bool resyncing_ = false;
  std::string warning_;
};

}  // namespace fmp4ws::core
