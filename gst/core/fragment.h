// The fragment model: what a moof says (sequence, decode times, duration, keyframe),
// and the per-viewer tfdt rewrite that rebases a fragment's timeline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "init_segment.h"

namespace fmp4ws::core {

struct TrafTiming
{
  uint32_t track_id = 0;
  uint32_t timescale = 0;       // from the init segment (0 if the track is unknown)
  uint64_t decode_time = 0;     // tfdt
  uint64_t duration = 0;        // sum of the traf's sample durations
  size_t tfdt_offset = 0;       // offset of the tfdt box inside the moof (0: no tfdt)
  uint32_t samples = 0;
};

struct FragmentInfo
{
  uint32_t sequence = 0;        // mfhd
  bool keyframe = false;        // a viewer may start here
  bool has_video = false;       // has a traf for a video track
  std::vector<TrafTiming> trafs;
  int timing = -1;              // index in trafs used for time (first video traf, else first)

  // Decode time and duration of the timing traf in nanoseconds; -1 if unknown.
  int64_t decode_time_ns () const;
  int64_t duration_ns () const;
  // Earliest start and latest end over all tracks with samples (ns); -1 if unknown.
  int64_t start_ns () const;
  int64_t end_ns () const;
};

// Sample flag helpers (ISO/IEC 14496-12 8.8.3.1).
inline bool
SampleFlagsAreSync (uint32_t flags)
{
  bool non_sync = flags & 0x00010000;
  unsigned depends_on = (flags >> 24) & 0x3;
  return !non_sync && depends_on != 1;
}

// Parses a whole moof box (header included) against the init segment it belongs to.
std::optional<FragmentInfo> ParseMoof (const uint8_t *moof, size_t size, const InitInfo &init,
                                       std::string *error);
// The same into *out, reusing its storage (no allocation per fragment once its traf list
// has grown). Returns false (and sets *error) on failure, *out then being unspecified.
bool ParseMoofInto (const uint8_t *moof, size_t size, const InitInfo &init, FragmentInfo *out,
                    std::string *error);

// Rewrites, in place, every tfdt of a moof copy to tfdt - offset_ns (each track in its
// own timescale, so tracks stay in sync; a negative offset moves times later). Times
// below 0 are clamped to 0. Returns false if the moof is malformed.
bool RebaseMoof (uint8_t *moof, size_t size, const FragmentInfo &info, int64_t offset_ns);

// ISO/IEC 14496-12 §8.16.5 ProducerReferenceTimeBox (`prft`), version 1: 32 bytes.
constexpr size_t kPrftSize = 32;
// The prft flags websocketsink writes in the boxes it adds, "the time the movie fragment was
// written" (§8.16.5.3): it is how a player tells the sink's prft (arrival at the server) from an
// encoder's (ffmpeg -write_prft writes flags 0, capture/input time).
constexpr uint32_t kPrftFlagsServer = 4;
// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (RFC 5905 §6).
constexpr uint64_t kNtpUnixOffset = 2208988800u;

// Unix time in microseconds as a 64-bit NTP timestamp (32.32 fixed point, RFC 5905 §6).
uint64_t NtpFromUnixMicros (int64_t unix_us);

// True if one of the top-level boxes in bytes[0, size) (what precedes a moof: styp, sidx,
// emsg, prft) is a prft.
bool HasPrft (const uint8_t *bytes, size_t size);

// Rewrites, in place, the media_time of every prft among the top-level boxes of
// bytes[0, size) (what precedes a moof) to media_time - offset_ns in its reference track's
// timescale (from `info`; a prft of a track not in the moof is left alone), as RebaseMoof does
// for the tfdt: an encoder's prft then keeps pointing at the same sample in a rebased timeline.
// False if a prft is truncated.
bool RebasePrft (uint8_t *bytes, size_t size, const FragmentInfo &info, int64_t offset_ns);

// Writes a prft (version 1, kPrftSize bytes at out) for a moof that follows it: reference
// track = the timing track (FragmentInfo::timing), media_time = that track's tfdt as written in
// `moof` (rebased or not), ntp_timestamp = `unix_us` less the track fragment's duration (the
// time its first sample would have arrived had the samples come one by one; the fragment
// arrives when its last is done), flags `flags`. False if the moof lacks what it needs (no
// timing track with a tfdt).
bool WritePrft (uint8_t *out, const uint8_t *moof, size_t moof_size, const FragmentInfo &info,
                int64_t unix_us, uint32_t flags);

}  // namespace fmp4ws::core
