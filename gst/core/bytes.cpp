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
