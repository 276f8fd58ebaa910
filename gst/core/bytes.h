// Big-endian readers and writers over plain byte spans. No GLib, no exceptions:
// every read is bounds-checked through Reader::ok().
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace fmp4ws::core {

constexpr uint32_t
FourCC (const char (&s)[5])
{
  return (uint32_t (uint8_t (s[0])) << 24) | (uint32_t (uint8_t (s[1])) << 16) |
         (uint32_t (uint8_t (s[2])) << 8) | uint32_t (uint8_t (s[3]));
}

std::string FourCCToString (uint32_t fourcc);

// Sequential big-endian reader. Any read past the end sets the failure flag and
// returns 0; callers check ok() once after a group of reads.
class Reader
{
public:
  Reader (const uint8_t *data, size_t size) : data_ (data), size_ (size) {}

  // Inline: moof parsing calls these for every field of every fragment.
  uint8_t U8 ()
  {
    if (!Need (1))
      return 0;
    return data_[pos_++];
  }
  uint16_t U16 ()
  {
    if (!Need (2))
      return 0;
    uint16_t v = uint16_t ((data_[pos_] << 8) | data_[pos_ + 1]);
    pos_ += 2;
    return v;
  }
  uint32_t U24 ()
  {
    if (!Need (3))
      return 0;
    uint32_t v = (uint32_t (data_[pos_]) << 16) | (uint32_t (data_[pos_ + 1]) << 8) |
                 data_[pos_ + 2];
    pos_ += 3;
    return v;
  }
  uint32_t U32 ()
  {
    if (!Need (4))
      return 0;
    uint32_t v = (uint32_t (data_[pos_]) << 24) | (uint32_t (data_[pos_ + 1]) << 16) |
                 (uint32_t (data_[pos_ + 2]) << 8) | data_[pos_ + 3];
    pos_ += 4;
    return v;
  }
  uint64_t U64 ()
  {
    uint64_t hi = U32 ();
    uint64_t lo = U32 ();
    return (hi << 32) | lo;
  }
  void Skip (size_t n)
  {
    if (Need (n))
      pos_ += n;
  }
  // nullptr (and failure) if fewer than n remain
  const uint8_t *Bytes (size_t n)
  {
    if (!Need (n))
      return nullptr;
    const uint8_t *p = data_ + pos_;
    pos_ += n;
    return p;
  }

  size_t pos () const { return pos_; }
  size_t remaining () const { return ok_ ? size_ - pos_ : 0; }
  bool ok () const { return ok_; }
  const uint8_t *data () const { return data_; }

private:
  bool Need (size_t n)
  {
    if (!ok_ || size_ - pos_ < n) {
      ok_ = false;
      return false;
    }
    return true;
  }
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Appending big-endian writer.
class Writer
{
public:
  void U8 (uint8_t v) { out_.push_back (v); }
  void U16 (uint16_t v);
  void U24 (uint32_t v);
  void U32 (uint32_t v);
  void U64 (uint64_t v);
  void Bytes (const uint8_t *p, size_t n) { out_.insert (out_.end (), p, p + n); }
  // Starts a box: writes a size placeholder and the type; returns the position to pass to EndBox.
  size_t BeginBox (uint32_t type);
  size_t BeginFullBox (uint32_t type, uint8_t version, uint32_t flags);
  void EndBox (size_t start);
  void PatchU32 (size_t at, uint32_t v);

  size_t size () const { return out_.size (); }
  std::vector<uint8_t> &bytes () { return out_; }

private:
  std::vector<uint8_t> out_;
};

inline uint32_t
LoadU32 (const uint8_t *p)
{
  return (uint32_t (p[0]) << 24) | (uint32_t (p[1]) << 16) | (uint32_t (p[2]) << 8) | p[3];
}

inline void
StoreU32 (uint8_t *p, uint32_t v)
{
  p[0] = uint8_t (v >> 24);
  p[1] = uint8_t (v >> 16);
  p[2] = uint8_t (v >> 8);
  p[3] = uint8_t (v);
}

inline void
StoreU64 (uint8_t *p, uint64_t v)
{
  StoreU32 (p, uint32_t (v >> 32));
  StoreU32 (p + 4, uint32_t (v));
}

}  // namespace fmp4ws::core
