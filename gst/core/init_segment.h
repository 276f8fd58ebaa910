// The init segment model: what a moov says about its tracks, RFC 6381 codec strings,
// a "clean" moov for MSE, and the first fragment ffmpeg hides in a non-empty moov.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fmp4ws::core {

// Sample tables of a moov that carries samples (ffmpeg without empty_moov).
struct SampleTable
{
  std::vector<uint32_t> sizes;
  std::vector<uint32_t> durations;
  std::vector<int32_t> cts_offsets;  // empty when there is no ctts
  std::vector<uint32_t> sync;        // 1-based sync sample numbers; empty when all are sync
  bool has_stss = false;
  std::vector<uint64_t> offsets;     // absolute byte offset of each sample (from stsc+stco)
};

struct Track
{
  uint32_t id = 0;
  uint32_t handler = 0;       // 'vide', 'soun', ...
  uint32_t timescale = 0;     // mdhd
  uint32_t sample_entry = 0;  // stsd entry type (for encrypted entries: the original format)
  std::string codec;          // RFC 6381, empty when unknown
  uint32_t width = 0, height = 0;  // video: display size (tkhd), else sample entry
  uint32_t channels = 0, sample_rate = 0;
  // trex defaults
  bool has_trex = false;
  uint32_t trex_duration = 0, trex_size = 0, trex_flags = 0;
  SampleTable samples;

  bool is_video () const;
  bool is_audio () const;
  bool is_text_or_metadata () const;  // IsTextOrMetadataHandler (handler)
};

struct InitInfo
{
  std::vector<Track> tracks;
  std::string codecs;  // "avc1.640028, mp4a.40.2" (video first; audio and video tracks only)
  std::string mime;    // video/mp4; codecs="..."  (audio/mp4 when there is no video); empty
                       // when an audio/video codec is unknown or there is no audio/video
  std::string other_codecs;  // the text/metadata tracks' codecs, "wvtt, evte" (not in mime)
  uint32_t width = 0, height = 0;
  bool has_video = false, has_audio = false;
  bool moov_has_samples = false;  // ffmpeg's non-empty moov: see BuildFirstFragment
  bool fragmented = false;        // moov has mvex

  const Track *FindTrack (uint32_t id) const;
  const Track *FirstVideo () const;
};

// Parses a whole moov box (header included). On failure returns nullopt and sets *error.
std::optional<InitInfo> ParseMoov (const uint8_t *moov, size_t size, std::string *error);

// RFC 6381 string for one stsd sample entry box (header included); empty if unknown.
// Video: avc1-4, hvc1/hev1, av01, vp08/vp09, vvc1/vvi1 ("vvc1.1.L51.CQA", ISO/IEC 14496-15
// Annex E.6). Audio: mp4a, .mp3, Opus, fLaC, ac-3, ec-3, ac-4 ("ac-4.02.01.03", ETSI
// TS 103 190-2 Annex E.13). Text/metadata: wvtt, stpp ("stpp.ttml.im1t" when the entry names
// a registered TTML profile), evte, urim, tx3g, c608, metx, mett...: the four-character code.
// `handler` (the track's hdlr handler_type, 0 if unknown): for a text/metadata handler
// (IsTextOrMetadataHandler) any other printable sample entry type is named by its code too.
std::string CodecStringForSampleEntry (const uint8_t *entry, size_t size);
std::string CodecStringForSampleEntry (const uint8_t *entry, size_t size, uint32_t handler);

// Handlers of tracks that MSE does not play (ISO/IEC 14496-12 §12.3-12.6 and QuickTime):
// 'text', 'subt', 'sbtl', 'meta', 'clcp' (closed captions).
bool IsTextOrMetadataHandler (uint32_t handler);

// What to tell a publisher whose init segment came `seconds` ago with no fragment since:
// the likely cause for this init's tracks and the fix. Audio only: ffmpeg's frag_keyframe
// cuts fragments at video keyframes only, so an audio-only stream gets none until ffmpeg
// ends (fix: -frag_duration 500000 or +frag_every_frame). Video: the keyframe interval is
// longer than `seconds` (fix: -g, or -frag_duration; mp4mux: fragment-duration).
std::string NoFragmentDiagnosis (const InitInfo &init, double seconds);

// A copy of the moov with empty sample tables and zero durations, as MSE expects of an
// init segment. Boxes that describe samples (stss, ctts, sbgp, sdtp...) are dropped.
std::vector<uint8_t> CleanMoov (const uint8_t *moov, size_t size);

// Builds a moof for the samples a non-empty moov describes, to put in front of the mdat
// that holds them. mdat_offset is the stream offset of that mdat (relative to the
// stream's ftyp, as the moov's chunk offsets are), mdat_header its header size and
// mdat_size its whole size. Returns an empty vector (and sets *error) if the samples do
// not all lie inside that mdat.
std::vector<uint8_t> BuildFirstFragment (const InitInfo &init, uint32_t sequence,
                                         uint64_t mdat_offset, uint32_t mdat_header,
                                         uint64_t mdat_size, std::string *error);

}  // namespace fmp4ws::core
