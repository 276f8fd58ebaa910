// Movie-fragment addressing: where a moof's sample data lies, and the rewrite of a moof to
// the addressing the MSE "ISO BMFF Byte Stream Format" requires (every traf's base is the
// moof: tfhd default-base-is-moof, no base_data_offset, every trun with a data_offset; every
// traf with a tfdt).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "init_segment.h"

namespace fmp4ws::core {

// Why a moof was rewritten (bits of MoofLayout::reasons).
enum NormalizeReason : uint32_t
{
  kAbsoluteBase = 1u << 0,        // tfhd base_data_offset (absolute file offsets)
  kImplicitBase = 1u << 1,        // several trafs, a later one based on the previous traf's data
  kImplicitDataOffset = 1u << 2,  // a trun without data_offset (follows the previous run)
  kMissingTfdt = 1u << 3,         // a traf without tfdt (time from tfxd or the previous end)
  kTfdtWrap = 1u << 4,            // a 32-bit (version 0) tfdt that wrapped: written as version 1
};
// "absolute base_data_offset, ..." for the reasons set in `reasons`.
std::string NormalizeReasonsText (uint32_t reasons);

struct TrunLayout
{
  bool has_data_offset = false;
  int32_t data_offset = 0;
  uint64_t bytes = 0;  // sum of the run's sample sizes
};

struct TrafLayout
{
  uint32_t track_id = 0;
  uint32_t tfhd_flags = 0;
  uint64_t base_data_offset = 0;  // tfhd flag 0x000001
  bool has_tfdt = false;
  uint8_t tfdt_version = 0;
  uint64_t tfdt = 0;              // its baseMediaDecodeTime
  bool set_tfdt = false;          // RewriteMoof writes tfdt_out (version 1) for this traf
  uint64_t tfdt_out = 0;
  bool has_tfxd = false;          // Smooth Streaming's TfxdBox (uuid 6d1d9b05-...)
  uint64_t tfxd_time = 0;         // its fragment_absolute_time (track timescale)
  std::vector<TrunLayout> truns;
};

struct MoofLayout
{
  std::vector<TrafLayout> trafs;
  uint32_t reasons = 0;  // NormalizeReason bits; 0: the moof is already normalised
};

// Parses the addressing of a whole moof (header included, ISO/IEC 14496-12 8.8.7 tfhd,
// 8.8.8 trun). Sample sizes come from the trun, tfhd default_sample_size or trex. Returns
// false (and sets *error) on a malformed moof or a sample size given nowhere.
bool ParseMoofLayout (const uint8_t *moof, size_t size, const InitInfo &init, MoofLayout *out,
                      std::string *error);

// Where each trun's data starts, in bytes from the start of the moof, in traf/trun order.
struct DataPlacement
{
  std::vector<int64_t> starts;
  std::vector<int64_t> traf_bases;  // each traf's base offset (relative to the moof start),
                                    // for its trun data_offsets and saio offsets
  int64_t end = 0;       // end of the data the moof addresses (relative to the moof start)
  bool anchored = false; // absolute offsets did not match the stream: placed at the mdat
};

// Resolves the data positions of `layout` (ISO/IEC 14496-12 8.8.7.1: base_data_offset, else
// the moof for the first traf or with default-base-is-moof, else the end of the previous
// traf's data; a trun without data_offset follows the previous run). `moof_position` is the
// moof's offset from the stream's ftyp (what absolute base_data_offsets count from);
// [data_start, data_end) is the payload of the first mdat after the moof, relative to the moof.
// Absolute offsets that put the first sample outside that mdat (a stream cut from a file,
// segments concatenated) are shifted so the first sample starts the mdat payload. Returns
// false (*error) if the data starts inside the moof.
bool PlaceMoofData (const MoofLayout &layout, uint64_t moof_size, uint64_t moof_position,
                    uint64_t data_start, uint64_t data_end, DataPlacement *out,
                    std::string *error);

// A copy of the moof (header included) with default-base-is-moof in every tfhd (its
// base_data_offset removed), a data_offset in every trun (the placement's, relative to the
// new moof), and, for each traf with `set_tfdt` (those without tfdt, those whose 32-bit tfdt
// wrapped), a version-1 tfdt of `tfdt_out` right after its tfhd in place of its own.
// Every saio offset (sample auxiliary information, as CENC's senc; ISO/IEC 14496-12 §8.7.9.3:
// in a traf relative to the base its tfhd sets, as the trun data_offsets) is rewritten against
// the new base (the moof) and follows the bytes it points at: inside a box copied unchanged
// (senc, uuid...) or after the moof (mdat), as they move. Everything else is copied unchanged.
// Returns an empty vector (*error) if an offset does not fit a trun's signed 32-bit
// data_offset or its saio entry, or a saio offset points into a box the rewrite changes.
std::vector<uint8_t> RewriteMoof (const uint8_t *moof, size_t size, const MoofLayout &layout,
                                  const DataPlacement &placement, std::string *error);

}  // namespace fmp4ws::core
