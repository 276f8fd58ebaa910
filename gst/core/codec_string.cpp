// RFC 6381 "codecs" parameters from ISO BMFF sample entries.
// References: ISO/IEC 14496-15 (avc1/hvc1), AV1 ISOBMFF binding §5 (av01),
// VP codec ISOBMFF binding (vp09), ISO/IEC 14496-1/-3 (mp4a), ETSI TS 102 366 (ac-3/ec-3),
// ISO/IEC 14496-15:2022 §11.2.4.2 + Annex E.6 (vvc1/vvi1), ETSI TS 103 190-2 Annex E (ac-4),
// ISO/IEC 14496-30 + the W3C TTML profile registry (wvtt, stpp[.ttml.<profile>]),
// ISO/IEC 23001-18 (evte), ISO/IEC 14496-12 §12.3 (urim, metx, mett).
#include <cstdio>
#include <cstring>

#include <algorithm>
#include <vector>

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
    case FourCC ("dvhe"): case FourCC ("vvc1"): case FourCC ("vvi1"):
      return 78;
    case FourCC ("mp4a"): case FourCC ("Opus"): case FourCC ("fLaC"): case FourCC ("ac-3"):
    case FourCC ("ec-3"): case FourCC ("enca"): case FourCC (".mp3"): case FourCC ("ac-4"): {
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


// MSB-first bit reader over a byte span; reads past the end set a flag and return 0.
class BitReader
{
public:
  BitReader (const uint8_t *data, size_t size) : data_ (data), bits_ (size * 8) {}
  uint32_t Bits (unsigned n)
  {
    uint32_t v = 0;
    for (unsigned i = 0; i < n; i++) {
      if (pos_ >= bits_) {
        ok_ = false;
        return 0;
      }
      v = (v << 1) | ((data_[pos_ / 8] >> (7 - pos_ % 8)) & 1u);
      pos_++;
    }
    return v;
  }
  void Skip (size_t n)
  {
    if (n > bits_ - std::min (pos_, bits_))
      ok_ = false;
    pos_ = std::min (pos_ + n, bits_);
  }
  void ByteAlign () { Skip ((8 - pos_ % 8) % 8); }
  size_t byte_pos () const { return (pos_ + 7) / 8; }
  bool ok () const { return ok_; }

private:
  const uint8_t *data_;
  size_t bits_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// RFC 4648 §6 base32 (upper case), without the '=' padding, as ISO/IEC 14496-15 Annex E.6
// asks for the VVC general_constraint_info.
std::string
Base32 (const uint8_t *p, size_t n)
{
  static const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  uint32_t acc = 0;
  unsigned bits = 0;
  for (size_t i = 0; i < n; i++) {
    acc = (acc << 8) | p[i];
    bits += 8;
    while (bits >= 5) {
      out.push_back (kAlphabet[(acc >> (bits - 5)) & 31]);
      bits -= 5;
    }
  }
  if (bits > 0)
    out.push_back (kAlphabet[(acc << (5 - bits)) & 31]);
  return out;
}

// vvcC (a FullBox holding a VvcDecoderConfigurationRecord, ISO/IEC 14496-15:2022
// §11.2.4.2) → "vvc1.<general_profile_idc>.<L|H><general_level_idc>[.C<constraints>]
// [.S<sub_profile>{+<sub_profile>}]" (Annex E.6). <constraints> is base32 of the bytes that
// follow general_level_idc in VvcPTLRecord (ptl_frame_only_constraint_flag,
// ptl_multilayer_enabled_flag, general_constraint_info), trailing zero bytes left out but
// one; sub-profiles are 8-digit upper-case hex. The optional .O<OlsIdx>+<MaxTid> is not
// written (it only narrows an operating point). E.g. "vvc1.1.L51.CQA" (Main 10, level 3.1,
// frame-only constraint), as Chromium's ParseVVCCodecId reads it.
std::string
VvcString (uint32_t type, const uint8_t *c, size_t n)
{
  if (n < 5)
    return {};
  BitReader r (c + 4, n - 4);  // after version/flags
  r.Skip (5);                   // reserved '11111'b
  r.Skip (2);                   // LengthSizeMinusOne
  if (!r.Bits (1))              // ptl_present_flag: without it there is no profile to name
    return {};
  r.Skip (9);                   // ols_idx
  unsigned num_sublayers = r.Bits (3);
  r.Skip (2 + 2 + 3 + 5);       // constant_frame_rate, chroma_format_idc, bit_depth, reserved
  // VvcPTLRecord(num_sublayers)
  r.Skip (2);
  unsigned constraint_bytes = r.Bits (6);
  unsigned profile = r.Bits (7);
  unsigned tier = r.Bits (1);
  unsigned level = r.Bits (8);
  if (!r.ok () || constraint_bytes == 0)
    return {};
  size_t at = r.byte_pos ();
  const uint8_t *gci = c + 4 + at;
  if (4 + at + constraint_bytes > n)
    return {};
  r.Skip (8 * constraint_bytes);
  std::vector<bool> present;  // ptl_sublayer_level_present_flag[num_sublayers - 2 .. 0]
  for (int i = int (num_sublayers) - 2; i >= 0; i--)
    present.push_back (r.Bits (1));
  for (unsigned j = num_sublayers; j <= 8 && num_sublayers > 1; j++)
    r.Skip (1);  // ptl_reserved_zero_bit
  for (bool p : present)
    if (p)
      r.Skip (8);  // sublayer_level_idc
  unsigned sub_profiles = r.Bits (8);
  std::string s = FourCCToString (type) + "." + std::to_string (profile) + "." +
                  (tier ? "H" : "L") + std::to_string (level);
  size_t used = constraint_bytes;
  while (used > 1 && gci[used - 1] == 0)
    used--;
  s += ".C" + Base32 (gci, used);
  for (unsigned i = 0; i < sub_profiles && r.ok (); i++) {
    char buf[16];
    snprintf (buf, sizeof buf, "%08X", r.Bits (32));
    s += (i == 0 ? ".S" : "+");
    s += buf;
  }
  return r.ok () ? s : std::string ();
}

// dac4 (ac4_dsi_v1, ETSI TS 103 190-2 Annex E.6) → "ac-4.<bitstream_version>.
// <presentation_version>.<mdcompat>" (Annex E.13: each two hexadecimal digits), read from
// the first presentation. E.g. "ac-4.02.01.03". Empty when the DSI is not v1 or is cut short.
std::string
Ac4String (const uint8_t *c, size_t n)
{
  BitReader r (c, n);
  unsigned dsi_version = r.Bits (3);
  unsigned bitstream_version = r.Bits (7);
  r.Skip (1 + 4);  // fs_index, frame_rate_index
  unsigned n_presentations = r.Bits (9);
  if (!r.ok () || dsi_version != 1 || n_presentations == 0)
    return {};
  if (bitstream_version > 1 && r.Bits (1)) {  // b_program_id
    r.Skip (16);                               // short_program_id
    if (r.Bits (1))                            // b_uuid
      r.Skip (128);
  }
  r.Skip (2 + 32 + 32);  // ac4_bitrate_dsi()
  r.ByteAlign ();
  unsigned presentation_version = r.Bits (8);
  unsigned pres_bytes = r.Bits (8);
  if (pres_bytes == 255)
    r.Skip (16);  // add_pres_bytes
  unsigned mdcompat = 0;
  if (presentation_version == 0 || presentation_version == 1 || presentation_version == 2) {
    // ac4_presentation_v0_dsi / v1_dsi both begin with presentation_config(_v1) (5 bits)
    // and, unless it is 6 (EMDF substreams only), mdcompat (3 bits).
    unsigned config = r.Bits (5);
    if (config != 6)
      mdcompat = r.Bits (3);
  }
  if (!r.ok ())
    return {};
  char buf[32];
  snprintf (buf, sizeof buf, "ac-4.%02X.%02X.%02X", bitstream_version, presentation_version,
            mdcompat);
  return buf;
}

// The TTML profile short codes of the W3C TTML Media Type Definition and Profile Registry
// that an stpp names in its namespace or schema_location.
const std::pair<const char *, const char *> kTtmlProfiles[] = {
    {"http://www.w3.org/ns/ttml/profile/imsc1/text", "im1t"},
    {"http://www.w3.org/ns/ttml/profile/imsc1/image", "im1i"},
    {"http://www.w3.org/ns/ttml/profile/imsc1.1/text", "im2t"},
    {"http://www.w3.org/ns/ttml/profile/imsc1.1/image", "im2i"},
    {"urn:ebu:tt:distribution:2014-01", "etd1"},
};

// stpp (XMLSubtitleSampleEntry, ISO/IEC 14496-12 §12.6.3.2): `payload` starts after the
// box header; namespace, schema_location and auxiliary_mime_types are C strings after the
// 8 bytes of SampleEntry. "stpp" alone when no registered profile is named, else
// "stpp.ttml.<code>[+<code>...]" (e.g. "stpp.ttml.im1t").
std::string
StppString (const uint8_t *payload, size_t n)
{
  if (n < 8)
    return "stpp";
  std::string text;  // namespace + ' ' + schema_location
  size_t at = 8;
  for (int field = 0; field < 2 && at < n; field++) {
    const void *end = memchr (payload + at, 0, n - at);
    size_t len = end ? size_t (static_cast<const uint8_t *> (end) - (payload + at)) : n - at;
    text.append (reinterpret_cast<const char *> (payload + at), len);
    text.push_back (' ');
    at += len + 1;
  }
  std::string codes;
  for (const auto &p : kTtmlProfiles) {
    // whole space-separated tokens only ("imsc1/text" must not match "imsc1/textX")
    size_t len = strlen (p.first);
    for (size_t pos = text.find (p.first); pos != std::string::npos;
         pos = text.find (p.first, pos + 1)) {
      bool start = pos == 0 || text[pos - 1] == ' ';
      bool end = pos + len == text.size () || text[pos + len] == ' ';
      if (start && end) {
        codes += (codes.empty () ? "" : "+") + std::string (p.second);
        break;
      }
    }
  }
  return codes.empty () ? "stpp" : "stpp.ttml." + codes;
}

bool
IsPrintableFourCC (uint32_t type)
{
  for (int i = 0; i < 4; i++) {
    unsigned ch = (type >> (24 - 8 * i)) & 0xffu;
    if (ch < 0x20 || ch > 0x7e)
      return false;
  }
  return true;
}
}  // namespace

bool
IsTextOrMetadataHandler (uint32_t handler)
{
  switch (handler) {
    case FourCC ("text"): case FourCC ("subt"): case FourCC ("sbtl"): case FourCC ("meta"):
    case FourCC ("clcp"):
      return true;
    default:
      return false;
  }
}

std::string
CodecStringForSampleEntry (const uint8_t *entry, size_t size)
{
  return CodecStringForSampleEntry (entry, size, 0);
}

std::string
CodecStringForSampleEntry (const uint8_t *entry, size_t size, uint32_t handler)
{
  if (size < 8)
    return {};
  uint32_t type = LoadU32 (entry + 4);
  const uint8_t *payload = entry + 8;
  size_t payload_size = size - 8;
  // Text and metadata sample entries: named by their four-character code, which is what
  // MP4RA registers as their codecs parameter (stpp adds its TTML profile).
  switch (type) {
    case FourCC ("stpp"):
      return StppString (payload, payload_size);
    case FourCC ("wvtt"): case FourCC ("evte"): case FourCC ("urim"): case FourCC ("tx3g"):
    case FourCC ("c608"): case FourCC ("c708"): case FourCC ("metx"): case FourCC ("mett"):
    case FourCC ("sbtt"): case FourCC ("stxt"):
      return FourCCToString (type);
    default:
      if (IsTextOrMetadataHandler (handler) && IsPrintableFourCC (type))
        return FourCCToString (type);
      break;
  }
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
    case FourCC ("vvc1"): case FourCC ("vvi1"):
      return FindChild (children, children_size, FourCC ("vvcC"), &c, &n) ? VvcString (type, c, n)
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
    case FourCC ("ac-4"):
      return FindChild (children, children_size, FourCC ("dac4"), &c, &n) ? Ac4String (c, n)
                                                                          : std::string ();
    default:
      return {};
  }
}

}  // namespace fmp4ws::core
