// libFuzzer target: the init-segment and fragment models without the stream around them,
// so that mutations land in moov/moof internals instead of being spent on getting a
// stream past ftyp/moov ordering.
//
// Input: a 12-byte control header, then a sequence of boxes (typically a moov and moofs).
//   bytes 0-3:  mdat_offset for BuildFirstFragment (big-endian)
//   bytes 4-7:  mdat_size for BuildFirstFragment (big-endian)
//   byte 8:     bit 0: mdat header of 16 bytes (else 8); bits 1-7: unused
//   bytes 9-11: a rebase offset in ms (big-endian, signed 24-bit)
//
// Every top-level box goes through CodecStringForSampleEntry; a moov through ParseMoov,
// CleanMoov and BuildFirstFragment (with the mdat the header describes, and with one that
// fits its samples exactly); a moof through ParseMoof against the last good moov and
// RebaseMoof. The same invariants as fuzz_stream are checked.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_common.h"

using namespace fuzz;

extern "C" int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 12)
    return 0;
  const uint64_t mdat_offset = LoadU32 (data);
  const uint64_t mdat_size = LoadU32 (data + 4);
  const uint32_t mdat_header = (data[8] & 1) ? 16 : 8;
  int32_t offset_ms = int32_t ((uint32_t (data[9]) << 16) | (uint32_t (data[10]) << 8) | data[11]);
  if (offset_ms & 0x800000)
    offset_ms -= 0x1000000;
  const int64_t offset_ns = int64_t (offset_ms) * 1000000;
  const uint8_t *p = data + 12;
  size_t n = size - 12;

  std::optional<InitInfo> init;
  BoxIterator it (p, n);
  while (it.Next ()) {
    const uint8_t *box = it.box ();
    size_t box_size = it.box_size ();
    CheckCodecString (CodecStringForSampleEntry (box, box_size));
    if (it.type () == FourCC ("moov")) {
      CheckMoovBox (box, box_size);
      std::string error;
      std::optional<InitInfo> info = ParseMoov (box, box_size, &error);
      if (!info)
        continue;
      init = std::move (info);
      if (init->moov_has_samples) {
        std::vector<uint8_t> moof =
            BuildFirstFragment (*init, 0, mdat_offset, mdat_header, mdat_size, &error);
        if (!moof.empty ())
          CheckBuiltFirstFragment (moof, *init, mdat_offset, mdat_header, mdat_size);
        else
          FUZZ_CHECK (!error.empty ());
      }
    } else if (it.type () == FourCC ("moof")) {
      CheckMoofBox (box, box_size, init ? *init : InitInfo (), offset_ns);
    }
  }
  // The rest as a lone sample entry, moov or moof, whatever it is.
  CheckCodecString (CodecStringForSampleEntry (p, n));
  if (n > 0)
    CheckMoovBox (p, n);
  return 0;
}
