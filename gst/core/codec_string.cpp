// RFC 6381 "codecs" parameters from ISO BMFF sample entries.
// References: ISO/IEC 14496-15 (avc1/hvc1), AV1 ISOBMFF binding §5 (av01),
// VP codec ISOBMFF binding (vp09), ISO/IEC 14496-1/-3 (mp4a), ETSI TS 102 366 (ac-3/ec-3).
#include <cstdio>

#include "box.h"
#include "init_segment.h"

namespace fmp4ws::core {

namespace {

std::string
Hex2 (unsigned v)
{
  char buf[8];
  snprintf (buf, sizeof buf, "%02X", v & 0xffu);
  return buf;
}

std::string
Dec2 (unsigned v)
{
  char buf[16];
  snprintf (buf, sizeof buf, "%02u", v);
  return buf;
}

// Size of the fixed part of a sample entry before its child boxes.
size_t
SampleEntryHeaderSize (uint32_t type, const uint8_t *payload, size_t size)
{
  switch (type) {
    case FourCC ("avc1"): case FourCC ("avc3"): case FourCC ("avc2"): case FourCC ("avc4"):
    case FourCC ("hvc1"): case FourCC ("hev1"): case FourCC ("av01"): case FourCC ("vp08"):
    case FourCC ("vp09"): case FourCC ("encv"): case FourCC ("mp4v"): case FourCC ("dvh1"):
    case FourCC ("dvhe"):
      return 78;
    case FourCC ("mp4a"): case FourCC ("Opus"): case FourCC ("fLaC"): case FourCC ("ac-3"):
    case FourCC ("ec-3"): case FourCC ("enca"): case FourCC (".mp3"): {
      // AudioSampleEntry v0 is 28 bytes; QuickTime sound description v1/v2 are longer.
      if (size < 10)
        return 28;
      unsigned version = (payload[8] << 8) | payload[9];
      return version == 1 ? 44 : version == 2 ? 64 : 28;
    }
    default:
      return 0;
  }
}

std::string
AvcString (uint32_t type, const uint8_t *c, size_t n)
{
  if (n < 4)
    return {};
  // Lower-case hex, as ffmpeg, hls.js and mp4box.js write it (browsers accept both).
  char buf[16];
  snprintf (buf, sizeof buf, ".%02x%02x%02x", c[1], c[2], c[3]);
  return FourCCToString (type) + buf;
}

std::string
HevcString (uint32_t type, const uint8_t *c, size_t n)
{
  if (n < 13)
    return {};
  unsigned space = c[1] >> 6;
  unsigned tier = (c[1] >> 5) & 1;
  unsigned profile = c[1] & 0x1f;
  uint32_t compat = LoadU32 (c + 2);
  uint32_t reversed = 0;
  for (int i = 0; i < 32; i++)
    if (compat & (1u << i))
      reversed |= 1u << (31 - i);
  std::string s = FourCCToString (type) + ".";
  if (space > 0)
    s.push_back (char ('A' + space - 1));
  char buf[32];
  snprintf (buf, sizeof buf, "%u.%X.%c%u", profile, reversed, tier ? 'H' : 'L', c[12]);
  s += buf;
  // Constraint flags: six bytes, trailing zero bytes omitted.
  int last = -1;
  for (int i = 0; i < 6; i++)
    if (c[6 + i])
      last = i;
  for (int i = 0; i <= last; i++)
    s += "." + Hex2 (c[6 + i]);
  return s;
}

std::string
Av1String (const uint8_t *c, size_t n)
{
  if (n < 4)
    return {};
  unsigned profile = c[1] >> 5;
  unsigned level = c[1] & 0x1f;
  unsigned tier = c[2] >> 7;
  unsigned high_bitdepth = (c[2] >> 6) & 1;
  unsigned twelve_bit = (c[2] >> 5) & 1;
  unsigned depth = high_bitdepth ? (twelve_bit ? 12 : 10) : 8;
  char buf[32];
  snprintf (buf, sizeof buf, "av01.%u.%02u%c.%02u", profile, level, tier ? 'H' : 'M', depth);
  return buf;
}

std::string
Vp9String (uint32_t type, const uint8_t *c, size_t n)
{
  // vpcC is a FullBox: version(1) flags(3), then profile, level, bitDepth(4)...
  if (n < 8)
    return {};
  unsigned version = c[0];
  if (version != 1)
    return {};
  unsigned profile = c[4], level = c[5], depth = c[6] >> 4;
  return FourCCToString (type) + "." + Dec2 (profile) + "." + Dec2 (level) + "." + Dec2 (depth);
}

// Reads an MPEG-4 descriptor header (tag + expandable length).
bool
ReadDescriptor (Reader &r, uint8_t *tag, uint32_t *len)
{
  *tag = r.U8 ();
  uint32_t l = 0;
  for (int i = 0; i < 4; i++) {
    uint8_t b = r.U8 ();
    l = (l << 7) | (b & 0x7f);
    if (!(b & 0x80))
      break;
  }
  *len = l;
  return r.ok ();
}

std::string
Mp4aString (const uint8_t *esds, size_t n)
{
  Reader r (esds, n);
  r.Skip (4);  // FullBox version/flags
  uint8_t tag;
  uint32_t len;
  if (!ReadDescriptor (r, &tag, &len) || tag != 0x03)
    return {};
  r.Skip (2);  // ES_ID
  uint8_t flags = r.U8 ();
  if (flags & 0x80)
    r.Skip (2);
  if (flags & 0x40)
    r.Skip (r.U8 ());
  if (flags & 0x20)
    r.Skip (2);
  if (!ReadDescriptor (r, &tag, &len) || tag != 0x04)
    return {};
  uint8_t oti = r.U8 ();
  r.Skip (12);  // streamType, bufferSizeDB, maxBitrate, avgBitrate
  if (!r.ok () || oti == 0)
    return {};
  if (oti != 0x40)
    return "mp4a." + Hex2 (oti);
  if (!ReadDescriptor (r, &tag, &len) || tag != 0x05 || len < 1)
    return "mp4a.40";
  const uint8_t *asc = r.Bytes (len < 2 ? len : 2);
  if (!asc)
    return "mp4a.40";
  unsigned aot = asc[0] >> 3;
  if (aot == 31) {
    if (len < 2)
      return "mp4a.40";
    aot = 32 + (((asc[0] & 0x07) << 3) | (asc[1] >> 5));
  }
  return "mp4a.40." + std::to_string (aot);
}

}  // namespace

std::string
CodecStringForSampleEntry (const uint8_t *entry, size_t size)
{
  if (size < 8)
    return {};
  uint32_t type = LoadU32 (entry + 4);
  const uint8_t *payload = entry + 8;
  size_t payload_size = size - 8;
  size_t skip = SampleEntryHeaderSize (type, payload, payload_size);
  if (skip == 0 || payload_size < skip)
    return {};
  const uint8_t *children = payload + skip;
  size_t children_size = payload_size - skip;

  if (type == FourCC ("encv") || type == FourCC ("enca")) {
    // Protected entry: the original format is in sinf/frma.
    const uint8_t *sinf, *frma;
    size_t sinf_size, frma_size;
    if (!FindChild (children, children_size, FourCC ("sinf"), &sinf, &sinf_size) ||
        !FindChild (sinf, sinf_size, FourCC ("frma"), &frma, &frma_size) || frma_size < 4)
      return {};
    type = LoadU32 (frma);
  }

  const uint8_t *c;
  size_t n;
  switch (type) {
    case FourCC ("avc1"): case FourCC ("avc2"): case FourCC ("avc3"): case FourCC ("avc4"):
      return FindChild (children, children_size, FourCC ("avcC"), &c, &n) ? AvcString (type, c, n)
                                                                          : std::string ();
    case FourCC ("hvc1"): case FourCC ("hev1"):
      return FindChild (children, children_size, FourCC ("hvcC"), &c, &n) ? HevcString (type, c, n)
                                                                          : std::string ();
    case FourCC ("av01"):
      return FindChild (children, children_size, FourCC ("av1C"), &c, &n) ? Av1String (c, n)
                                                                          : std::string ();
    case FourCC ("vp09"): case FourCC ("vp08"):
      return FindChild (children, children_size, FourCC ("vpcC"), &c, &n) ? Vp9String (type, c, n)
                                                                          : std::string ();
    case FourCC ("mp4a"):
      return FindChild (children, children_size, FourCC ("esds"), &c, &n) ? Mp4aString (c, n)
                                                                          : std::string ();
    case FourCC (".mp3"):
      return "mp3";
    case FourCC ("Opus"):
      return "opus";
    case FourCC ("fLaC"):
      return "flac";
    case FourCC ("ac-3"):
      return "ac-3";
    case FourCC ("ec-3"):
      return "ec-3";
    default:
      return {};
  }
}

}  // namespace fmp4ws::core
