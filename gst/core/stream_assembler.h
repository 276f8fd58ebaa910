// Turns a sequence of whole top-level boxes into init segments and fragments.
// The caller holds the boxes (zero copy); the assembler says what to do with them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "box.h"
#include "fragment.h"
#include "init_segment.h"
#include "normalize.h"

namespace fmp4ws::core {

// One part of an output: either a box the caller holds (index into the held list,
// the current box being the last) or bytes the assembler made.
struct Piece
{
  int held = -1;
  std::vector<uint8_t> bytes;
};

struct Decision
{
  enum Kind
  {
    kHold,          // keep the current box with the held ones
    kDrop,          // drop the current box, keep the others held
    kEmitInit,      // output an init segment from `pieces`, then clear the held list
    kEmitFragment,  // output a fragment from `pieces`, then clear the held list
    kError,         // fatal: `message` says why
  } kind = kHold;
  bool discard_held = false;  // first drop every box held so far (then handle the current box)
  bool discont = false;       // output follows lost data
  std::vector<Piece> pieces;
  std::string warning;        // for the user (element warning)
  std::string note;           // for the debug log
  std::string info;           // for the user, once per kind (element info message)
  bool normalized = false;    // kEmitFragment: the moof was rewritten (see normalize.h)
  bool timestamp_jump = false;  // kEmitFragment: a track's tfdt jumped (see discont_threshold)
  std::string message;        // kError
  // Set for emits (valid until the next PushBox).
  const InitInfo *init = nullptr;
  const FragmentInfo *fragment = nullptr;
};

// Counters of what the assembler did, since the last Reset.
struct AssemblerStats
{
  uint64_t fragments = 0;        // fragments emitted
  uint64_t normalized = 0;       // of them, with a rewritten moof
  uint64_t discontinuities = 0;  // of them, with a tfdt jump in a track
};

class StreamAssembler
{
public:
  // Bound on boxes held while waiting for a fragment's mdat.
  static constexpr size_t kMaxHeldBoxes = 64;
  // Default of discont_threshold_ns: 1 s.
  static constexpr int64_t kDefaultDiscontThresholdNs = 1'000'000'000;

  // A track's tfdt that differs from the end of its previous fragment (tfdt + durations) by
  // more than this (ns), backwards or forwards, within one init segment, is a timestamp
  // discontinuity: the fragment is flagged `discont` and `timestamp_jump`.
  void set_discont_threshold_ns (int64_t v) { discont_threshold_ns_ = v; }
  // Most bytes a moof's sample data may span after it (the boxes held until it is all
  // there); a fragment addressing more is dropped with a warning. The element passes
  // max-box-size.
  void set_max_data_span (uint64_t v) { max_data_span_ = v; }
  const AssemblerStats &stats () const { return stats_; }

  // `data` must hold the whole box for every type but mdat (may be null for mdat).
  Decision PushBox (const BoxHeader &header, uint64_t offset, const uint8_t *data);

  // Called after a resync skipped bytes: what is held is incomplete.
  Decision LostSync ();

  void Reset ();
  const InitInfo *init () const { return init_ ? &*init_ : nullptr; }
  uint32_t generation () const { return generation_; }
  size_t held () const { return held_; }

private:
  void Hold (Decision *d);
  Decision OnFtyp (const BoxHeader &h, uint64_t offset, const uint8_t *data);
  Decision OnMoov (const BoxHeader &h, const uint8_t *data);
  Decision OnMoof (const BoxHeader &h, uint64_t offset, const uint8_t *data);
  Decision OnMdat (const BoxHeader &h, uint64_t offset);
  void DiscardHeld (Decision *d, const char *why);
  Decision OnFragmentData (const BoxHeader &h, bool is_mdat);
  void FinishFragment (Decision *d);
  void CheckTimeline (Decision *d);

  std::optional<InitInfo> init_;
  uint32_t generation_ = 0;       // init segments emitted so far
  std::vector<uint8_t> ftyp_;     // last ftyp (copied: it is tiny)
  uint64_t ftyp_offset_ = 0;
  bool ftyp_held_ = false;
  bool expect_moov_mdat_ = false;  // ffmpeg's non-empty moov: its mdat comes next
  bool moof_held_ = false;
  FragmentInfo fragment_;         // the held moof's (its storage reused from one to the next)
  size_t held_ = 0;
  bool discont_ = false;
  bool warned_early_fragment_ = false;
  std::vector<uint32_t> noted_unknown_;
  // The held moof's addressing (normalize.h) and the boxes after it so far.
  MoofLayout layout_;
  std::vector<uint8_t> moof_copy_;  // only when it must be rewritten
  uint64_t moof_size_ = 0;
  uint64_t moof_position_ = 0;      // from the stream's ftyp
  size_t moof_index_ = 0;           // in the held list
  uint64_t after_moof_ = 0;         // bytes of the boxes held after the moof
  bool placed_ = false;
  DataPlacement placement_;
  // Per track: the end (tfdt + durations, track timescale) of its last fragment, and how
  // often its 32-bit tfdt wrapped.
  struct TrackEnd
  {
    uint32_t track_id;
    uint64_t end;
    uint64_t wraps;
  };
  std::vector<TrackEnd> track_end_;
  uint32_t reasons_told_ = 0;
  // The last discontinuity: its jump (ns) and the tracks that made it.
  bool have_last_jump_ = false;
  int64_t last_jump_ns_ = 0;
  std::vector<uint32_t> jumped_tracks_;
  int64_t discont_threshold_ns_ = kDefaultDiscontThresholdNs;
  uint64_t max_data_span_ = 64u << 20;
  AssemblerStats stats_;
};

}  // namespace fmp4ws::core
