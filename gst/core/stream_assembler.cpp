#include "stream_assembler.h"

#include <algorithm>

namespace fmp4ws::core {

namespace {
constexpr size_t kMaxFtypSize = 4096;
}

void
StreamAssembler::Reset ()
{
  int64_t threshold = discont_threshold_ns_;
  uint64_t span = max_data_span_;
  *this = StreamAssembler ();
  discont_threshold_ns_ = threshold;
  max_data_span_ = span;
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
  placed_ = false;
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
      return OnMoof (h, offset, data);
    case FourCC ("mdat"):
      return OnMdat (h, offset);
    case FourCC ("styp"): case FourCC ("prft"): case FourCC ("emsg"): case FourCC ("sidx"):
    case FourCC ("ssix"): {
      Decision d;
      if (moof_held_)
        DiscardHeld (&d, "the sample data its moof addresses did not follow it");
      if (!init_ || ftyp_held_) {
        d.kind = Decision::kDrop;
        d.note = "dropped '" + FourCCToString (h.type) + "' outside a fragment";
        return d;
      }
      Hold (&d);  // goes out with the next fragment
      return d;
    }
    default: {
      // free, skip, uuid... between a moof and the end of the data it addresses belong to the
      // fragment: its data offsets count them.
      if (moof_held_)
        return OnFragmentData (h, false);
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
  track_end_.clear ();  // a new init starts new timelines
  have_last_jump_ = false;
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
StreamAssembler::OnMoof (const BoxHeader &h, uint64_t offset, const uint8_t *data)
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
    DiscardHeld (&d, "a moof came before all the sample data of the previous one");
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
  if (!ParseMoofLayout (data, size_t (h.size), *init_, &layout_, &error)) {
    d.kind = Decision::kDrop;
    d.warning = "dropped a malformed fragment: " + error;
    discont_ = true;
    return d;
  }
  // A 32-bit tfdt that wrapped: the track's time goes on past 2^32 (version 1 out).
  for (TrafLayout &tl : layout_.trafs) {
    if (!tl.has_tfdt || tl.tfdt_version != 0)
      continue;
    auto it = std::find_if (track_end_.begin (), track_end_.end (),
                            [&] (const TrackEnd &te) { return te.track_id == tl.track_id; });
    if (it == track_end_.end ())
      continue;
    const Track *t = init_->FindTrack (tl.track_id);
    if (!t || t->timescale == 0)
      continue;
    uint64_t time = tl.tfdt + (it->wraps << 32);
    // Just past 2^32 again: the previous end is near the top, this one near 0.
    __int128 next = (__int128) time + ((__int128) 1 << 32) - it->end;
    if (next * 1000000000 / t->timescale <= discont_threshold_ns_ &&
        -next * 1000000000 / t->timescale <= discont_threshold_ns_) {
      it->wraps++;
      time += uint64_t (1) << 32;
    }
    if (it->wraps) {
      tl.set_tfdt = true;
      tl.tfdt_out = time;
      layout_.reasons |= kTfdtWrap;
    }
  }
  if (layout_.reasons)
    moof_copy_.assign (data, data + h.size);
  moof_size_ = h.size;
  moof_position_ = offset - ftyp_offset_;
  moof_index_ = held_;
  after_moof_ = 0;
  placed_ = false;
  moof_held_ = true;
  Hold (&d);
  return d;
}

// A box after the held moof (mdat, or free/skip/uuid...): held until the moof's sample data
// is all there, then the fragment goes out.
Decision
StreamAssembler::OnFragmentData (const BoxHeader &h, bool is_mdat)
{
  Decision d;
  uint64_t box_start = moof_size_ + after_moof_;
  if (is_mdat && !placed_) {
    std::string error;
    bool placed = PlaceMoofData (layout_, moof_size_, moof_position_, box_start + h.header_size,
                                 box_start + h.size, &placement_, &error);
    if (placed && uint64_t (placement_.end) - moof_size_ > max_data_span_) {
      error = "its sample data spans " + std::to_string (uint64_t (placement_.end) - moof_size_) +
              " bytes after the moof, more than max-box-size (" +
              std::to_string (max_data_span_) + ")";
      placed = false;
    }
    if (!placed) {
      DiscardHeld (&d, error.c_str ());
      d.kind = Decision::kDrop;
      return d;
    }
    placed_ = true;
  }
  Hold (&d);
  if (d.kind == Decision::kDrop) {
    DiscardHeld (&d, "too many boxes between a moof and the end of its sample data");
    return d;
  }
  after_moof_ += h.size;
  if (placed_ && int64_t (moof_size_ + after_moof_) >= placement_.end)
    FinishFragment (&d);
  return d;
}

// Makes *d the emit of the held fragment (the current box included), its moof rewritten if
// its addressing is not the one MSE takes.
void
StreamAssembler::FinishFragment (Decision *d)
{
  d->pieces.reserve (held_);
  for (size_t i = 0; i < held_; i++)
    d->pieces.push_back ({int (i), {}});
  if (layout_.reasons) {
    for (TrafLayout &tl : layout_.trafs) {
      if (tl.has_tfdt)
        continue;
      tl.set_tfdt = true;
      tl.tfdt_out = 0;
      if (tl.has_tfxd) {
        tl.tfdt_out = tl.tfxd_time;
        continue;
      }
      for (const TrackEnd &te : track_end_)
        if (te.track_id == tl.track_id)
          tl.tfdt_out = te.end;
    }
    std::string error;
    std::vector<uint8_t> moof =
        RewriteMoof (moof_copy_.data (), moof_copy_.size (), layout_, placement_, &error);
    if (moof.empty () || !ParseMoofInto (moof.data (), moof.size (), *init_, &fragment_, &error)) {
      d->pieces.clear ();
      DiscardHeld (d, ("could not normalise its moof: " + error).c_str ());
      d->kind = Decision::kDrop;  // the current box, held above, goes with the rest
      held_ = 0;
      return;
    }
    d->pieces[moof_index_] = {-1, std::move (moof)};
    d->normalized = true;
    stats_.normalized++;
    uint32_t fresh = layout_.reasons & ~reasons_told_;
    if (fresh) {
      reasons_told_ |= fresh;
      d->info = "rewrote moofs to movie-fragment-relative addressing with a tfdt, as MSE "
                "requires; the input has " + NormalizeReasonsText (fresh);
      if (placement_.anchored)
        d->info += " (absolute offsets that do not count from this stream's start: placed at "
                   "the mdat)";
    }
  }
  CheckTimeline (d);
  stats_.fragments++;
  d->kind = Decision::kEmitFragment;
  d->fragment = &fragment_;
  d->discont = d->discont || discont_;
  discont_ = false;
  held_ = 0;
  moof_held_ = false;
  placed_ = false;
}

// Compares each track's tfdt with the end of its previous fragment.
void
StreamAssembler::CheckTimeline (Decision *d)
{
  for (const TrafTiming &t : fragment_.trafs) {
    if (t.samples == 0 || t.timescale == 0)
      continue;
    uint64_t end = t.decode_time + t.duration;
    auto it = std::find_if (track_end_.begin (), track_end_.end (),
                            [&] (const TrackEnd &te) { return te.track_id == t.track_id; });
    if (it == track_end_.end ()) {
      if (track_end_.size () < 64)
        track_end_.push_back ({t.track_id, end, 0});
      continue;
    }
    __int128 jump = (__int128) t.decode_time - (__int128) it->end;
    __int128 jump_ns = jump * 1000000000 / t.timescale;
    it->end = end;
    if (jump_ns > discont_threshold_ns_ || -jump_ns > discont_threshold_ns_) {
      // The other tracks of a stream jump by about as much, maybe in later moofs (one moof
      // per track, or a track without samples in this one): one discontinuity, flagged once.
      __int128 diff = jump_ns - last_jump_ns_;
      bool same = have_last_jump_ && diff <= discont_threshold_ns_ &&
                  -diff <= discont_threshold_ns_ &&
                  std::find (jumped_tracks_.begin (), jumped_tracks_.end (), t.track_id) ==
                      jumped_tracks_.end ();
      if (same) {
        jumped_tracks_.push_back (t.track_id);
      } else {
        have_last_jump_ = true;
        last_jump_ns_ = int64_t (jump_ns);
        jumped_tracks_.assign (1, t.track_id);
        if (!d->timestamp_jump) {
          stats_.discontinuities++;
          d->timestamp_jump = true;
          d->discont = true;
        }
      }
      d->note = "track " + std::to_string (t.track_id) + ": tfdt jumps by " +
                std::to_string (int64_t (jump_ns / 1000000)) + " ms: timestamp discontinuity";
    }
  }
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
    CheckTimeline (&d);
    stats_.fragments++;
    d.fragment = &fragment_;
    d.discont = d.discont || discont_;
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
  return OnFragmentData (h, true);
}

}  // namespace fmp4ws::core
