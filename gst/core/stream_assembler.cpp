#include "stream_assembler.h"

#include <algorithm>

namespace fmp4ws::core {

namespace {
constexpr size_t kMaxFtypSize = 4096;
}

void
StreamAssembler::Reset ()
{
  *this = StreamAssembler ();
}

void
StreamAssembler::DiscardHeld (Decision *d, const char *why)
{
  if (held_ == 0)
    return;
  d->discard_held = true;
  if (moof_held_ || expect_moov_mdat_)
    d->warning = std::string ("dropped an incomplete fragment: ") + why;
  held_ = 0;
  ftyp_held_ = false;
  moof_held_ = false;
  discont_ = true;
}

// Makes *d a hold of the current box (so that callers return their own Decision, which the
// compiler builds in place, instead of moving it through a parameter).
void
StreamAssembler::Hold (Decision *d)
{
  d->kind = Decision::kHold;
  held_++;
  if (held_ > kMaxHeldBoxes) {
    // A stream that never sends its mdat: do not hold boxes without bound.
    d->kind = Decision::kDrop;
    held_--;
    d->warning = "too many boxes without an mdat: dropping them";
  }
}

Decision
StreamAssembler::LostSync ()
{
  Decision d;
  d.kind = Decision::kHold;
  DiscardHeld (&d, "the stream lost box sync");
  expect_moov_mdat_ = false;
  discont_ = true;
  // Nothing is current: callers only use discard_held here.
  return d;
}

Decision
StreamAssembler::PushBox (const BoxHeader &h, uint64_t offset, const uint8_t *data)
{
  switch (h.type) {
    case FourCC ("ftyp"):
      return OnFtyp (h, offset, data);
    case FourCC ("moov"):
      return OnMoov (h, data);
    case FourCC ("moof"):
      return OnMoof (h, data);
    case FourCC ("mdat"):
      return OnMdat (h, offset);
    case FourCC ("styp"): case FourCC ("prft"): case FourCC ("emsg"): case FourCC ("sidx"):
    case FourCC ("ssix"): {
      Decision d;
      if (!init_ || ftyp_held_) {
        d.kind = Decision::kDrop;
        d.note = "dropped '" + FourCCToString (h.type) + "' outside a fragment";
        return d;
      }
      Hold (&d);  // goes out with the next fragment
      return d;
    }
    default: {
      Decision d;
      d.kind = Decision::kDrop;
      // mfra, free, skip, udta, uuid...: not part of a live MSE byte stream.
      if (std::find (noted_unknown_.begin (), noted_unknown_.end (), h.type) ==
              noted_unknown_.end () &&
          noted_unknown_.size () < 32) {
        noted_unknown_.push_back (h.type);
        d.note = "dropping top-level '" + FourCCToString (h.type) + "' boxes";
      }
      return d;
    }
  }
}

Decision
StreamAssembler::OnFtyp (const BoxHeader &h, uint64_t offset, const uint8_t *data)
{
  Decision d;
  DiscardHeld (&d, "a new ftyp started a new stream");
  expect_moov_mdat_ = false;
  if (h.size > kMaxFtypSize) {
    d.kind = Decision::kError;
    d.message = "ftyp box of " + std::to_string (h.size) + " bytes: not a real ftyp";
    return d;
  }
  ftyp_.assign (data, data + h.size);
  ftyp_offset_ = offset;
  ftyp_held_ = true;
  Hold (&d);
  return d;
}

Decision
StreamAssembler::OnMoov (const BoxHeader &h, const uint8_t *data)
{
  Decision d;
  bool with_ftyp = ftyp_held_ && held_ == 1;
  if (!with_ftyp)
    DiscardHeld (&d, "a new moov started a new stream");
  expect_moov_mdat_ = false;
  if (ftyp_.empty ()) {
    d.kind = Decision::kError;
    d.message = "moov box without a preceding ftyp: the stream does not start like an MP4";
    return d;
  }
  std::string error;
  std::optional<InitInfo> info = ParseMoov (data, size_t (h.size), &error);
  if (!info) {
    d.kind = Decision::kError;
    d.message = "invalid init segment: " + error;
    return d;
  }
  if (!info->fragmented) {
    d.kind = Decision::kError;
    d.message = "the stream is not fragmented MP4 (its moov has no mvex): with ffmpeg use "
                "-movflags frag_keyframe+empty_moov+default_base_moof, with mp4mux set "
                "fragment-duration";
    return d;
  }
  init_ = std::move (info);
  generation_++;
  d.kind = Decision::kEmitInit;
  d.discont = generation_ > 1;
  if (with_ftyp)
    d.pieces.push_back ({0, {}});
  else
    d.pieces.push_back ({-1, ftyp_});
  if (init_->moov_has_samples) {
    // ffmpeg without empty_moov: the moov carries the first samples, whose mdat follows.
    d.pieces.push_back ({-1, CleanMoov (data, size_t (h.size))});
    expect_moov_mdat_ = true;
    d.note = "the moov carries samples: its mdat will become the first fragment";
  } else {
    d.pieces.push_back ({with_ftyp ? 1 : 0, {}});
  }
  held_ = 0;
  ftyp_held_ = false;
  moof_held_ = false;
  discont_ = false;
  d.init = &*init_;
  return d;
}

Decision
StreamAssembler::OnMoof (const BoxHeader &h, const uint8_t *data)
{
  Decision d;
  if (!init_) {
    d.kind = Decision::kDrop;
    if (!warned_early_fragment_) {
      warned_early_fragment_ = true;
      d.warning = "dropping fragments that arrive before the init segment (ftyp+moov): the "
                  "publisher sends it once, at its start, so connect it after the server is "
                  "up (restart it), and with ffmpeg use -movflags "
                  "+frag_keyframe+empty_moov+default_base_moof";
    }
    return d;
  }
  if (ftyp_held_) {
    // A new stream started (ftyp) and its moov has not come: this fragment belongs to an
    // init segment we do not have, and must not go out with that ftyp in front of it.
    d.kind = Decision::kDrop;
    d.warning = "dropped a fragment that came after a new ftyp but before its moov";
    discont_ = true;
    return d;
  }
  if (moof_held_)
    DiscardHeld (&d, "a moof came without an mdat");
  if (expect_moov_mdat_) {
    d.warning = "the mdat holding the moov's samples is missing: the first fragment is lost";
    expect_moov_mdat_ = false;
    discont_ = true;
  }
  std::string error;
  if (!ParseMoofInto (data, size_t (h.size), *init_, &fragment_, &error)) {
    d.kind = Decision::kDrop;
    d.warning = "dropped a malformed fragment: " + error;
    discont_ = true;
    return d;
  }
  moof_held_ = true;
  Hold (&d);
  return d;
}

Decision
StreamAssembler::OnMdat (const BoxHeader &h, uint64_t offset)
{
  Decision d;
  if (expect_moov_mdat_ && held_ == 0) {
    expect_moov_mdat_ = false;
    std::string error;
    std::vector<uint8_t> moof = BuildFirstFragment (*init_, 0, offset - ftyp_offset_,
                                                    h.header_size, h.size, &error);
    if (moof.empty () || !ParseMoofInto (moof.data (), moof.size (), *init_, &fragment_, &error)) {
      d.kind = Decision::kDrop;
      d.warning = "could not rebuild the first fragment from the moov: " + error;
      discont_ = true;
      return d;
    }
    d.kind = Decision::kEmitFragment;
    d.pieces.push_back ({-1, std::move (moof)});
    d.pieces.push_back ({0, {}});
    d.fragment = &fragment_;
    d.discont = discont_;
    discont_ = false;
    held_ = 0;
    return d;
  }
  if (!moof_held_) {
    d.kind = Decision::kDrop;
    if (init_)
      d.warning = "dropped an mdat that has no moof";
    discont_ = true;
    return d;
  }
  d.kind = Decision::kEmitFragment;
  d.pieces.reserve (held_ + 1);  // one allocation per fragment, not one per growth
  for (size_t i = 0; i <= held_; i++)
    d.pieces.push_back ({int (i), {}});
  d.fragment = &fragment_;
  d.discont = discont_;
  discont_ = false;
  held_ = 0;
  moof_held_ = false;
  return d;
}

}  // namespace fmp4ws::core
