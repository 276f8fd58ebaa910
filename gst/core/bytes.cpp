#include "bytes.h"

namespace fmp4ws::core {

std::string
FourCCToString (uint32_t fourcc)
{
  std::string s;
  for (int shift = 24; shift >= 0; shift -= 8) {
    char c = char ((fourcc >> shift) & 0xff);
    if (c >= 0x20 && c < 0x7f)
      s.push_back (c);
    else {
      static const char hex[] = "0123456789abcdef";
      s += "\\x";
      s.push_back (hex[(c >> 4) & 0xf]);
      s.push_back (hex[c & 0xf]);
    }
  }
  return s;
}

bool
Reader::Need (size_t n)
{
  if (!ok_ || size_ - pos_ < n) {
    ok_ = false;
    return false;
  }
  return true;
}

uint8_t
Reader::U8 ()
{
  if (!Need (1))
    return 0;
  return data_[pos_++];
}

uint16_t
Reader::U16 ()
{
  if (!Need (2))
    return 0;
  uint16_t v = uint16_t ((data_[pos_] << 8) | data_[pos_ + 1]);
  pos_ += 2;
  return v;
}

uint32_t
Reader::U24 ()
{
  if (!Need (3))
    return 0;
  uint32_t v = (uint32_t (data_[pos_]) << 16) | (uint32_t (data_[pos_ + 1]) << 8) | data_[pos_ + 2];
  pos_ += 3;
  return v;
}

uint32_t
Reader::U32 ()
{
  if (!Need (4))
    return 0;
  uint32_t v = LoadU32 (data_ + pos_);
  pos_ += 4;
  return v;
}

uint64_t
Reader::U64 ()
{
  uint64_t hi = U32 ();
  uint64_t lo = U32 ();
  return (hi << 32) | lo;
}

void
Reader::Skip (size_t n)
{
  if (Need (n))
    pos_ += n;
}

const uint8_t *
Reader::Bytes (size_t n)
{
  if (!Need (n))
    return nullptr;
  const uint8_t *p = data_ + pos_;
  pos_ += n;
  return p;
}

void
Writer::U16 (uint16_t v)
{
  U8 (uint8_t (v >> 8));
  U8 (uint8_t (v));
}

void
Writer::U24 (uint32_t v)
{
  U8 (uint8_t (v >> 16));
  U16 (uint16_t (v));
}

void
Writer::U32 (uint32_t v)
{
  U16 (uint16_t (v >> 16));
  U16 (uint16_t (v));
}

void
Writer::U64 (uint64_t v)
{
  U32 (uint32_t (v >> 32));
  U32 (uint32_t (v));
}

size_t
Writer::BeginBox (uint32_t type)
{
  size_t start = out_.size ();
  U32 (0);
  U32 (type);
  return start;
}

size_t
Writer::BeginFullBox (uint32_t type, uint8_t version, uint32_t flags)
{
  size_t start = BeginBox (type);
  U8 (version);
  U24 (flags);
  return start;
}

void
Writer::EndBox (size_t start)
{
  PatchU32 (start, uint32_t (out_.size () - start));
}

void
Writer::PatchU32 (size_t at, uint32_t v)
{
  StoreU32 (out_.data () + at, v);
}

}  // namespace fmp4ws::core
