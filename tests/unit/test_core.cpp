// Unit tests of the pure C++ core, on streams made by real encoders (tests/fixtures).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "box.h"
#include "edit_stream.h"
#include "fixtures.h"
#include "normalize.h"
#include "bytes.h"
#include "fragment.h"
#include "init_segment.h"
#include "stream_reader.h"

using namespace fmp4ws::core;
using namespace fmp4ws::test;

namespace {

// Reads `data` in chunks given by `chunk(i)`; returns every segment, Finish() included.
template <typename ChunkFn>
std::vector<Segment>
ReadChunked (const std::vector<uint8_t> &data, ChunkFn chunk)
{
  StreamReader r;
  std::vector<Segment> all;
  size_t pos = 0;
  for (size_t i = 0; pos < data.size (); i++) {
    size_t n = std::min (chunk (i), data.size () - pos);
    auto segs = r.Push (data.data () + pos, n);
    all.insert (all.end (), segs.begin (), segs.end ());
    pos += n;
  }
  auto tail = r.Finish ();
  all.insert (all.end (), tail.begin (), tail.end ());
  return all;
}

std::vector<Segment>
ReadAll (const std::vector<uint8_t> &data)
{
  return ReadChunked (data, [&] (size_t) { return data.size (); });
}

struct Summary
{
  int inits = 0, fragments = 0, keyframes = 0, warnings = 0, errors = 0;
  std::vector<double> key_times, all_times;
  std::string codecs, first_error;
};

Summary
Summarize (const std::vector<Segment> &segs)
{
  Summary s;
  for (const Segment &g : segs) {
    switch (g.kind) {
      case Segment::kInit:
        s.inits++;
        s.codecs = g.init.codecs;
        break;
      case Segment::kFragment:
        s.fragments++;
        s.all_times.push_back (g.fragment.decode_time_ns () / 1e9);
        if (g.fragment.keyframe) {
          s.keyframes++;
          s.key_times.push_back (g.fragment.decode_time_ns () / 1e9);
        }
        break;
      case Segment::kWarning:
        s.warnings++;
        break;
      case Segment::kError:
        if (!s.errors++)
          s.first_error = g.message;
        break;
    }
  }
  return s;
}

void
ExpectSameSegments (const std::vector<Segment> &a, const std::vector<Segment> &b,
                    const std::string &what)
{
  ASSERT_EQ (a.size (), b.size ()) << what;
  for (size_t i = 0; i < a.size (); i++) {
    ASSERT_EQ (a[i].kind, b[i].kind) << what << " segment " << i;
    ASSERT_EQ (a[i].bytes, b[i].bytes) << what << " segment " << i;
    ASSERT_EQ (a[i].fragment.keyframe, b[i].fragment.keyframe) << what << " segment " << i;
    ASSERT_EQ (a[i].discont, b[i].discont) << what << " segment " << i;
  }
}

std::vector<uint8_t>
Concat (std::vector<uint8_t> a, const std::vector<uint8_t> &b)
{
  a.insert (a.end (), b.begin (), b.end ());
  return a;
}

const char *const kAllFixtures[] = {
    "notes-g30.mp4", "notes-g250.mp4", "notes-nofragdur.mp4", "empty-moov.mp4",
    "every-frame.mp4", "cmaf.mp4", "dash.mp4", "separate-moof.mp4", "omit-tfhd-offset.mp4",
    "video-only.mp4", "audio-only.mp4", "hevc.mp4", "av1.mp4", "vp9.mp4", "mp3.mp4", "opus.mp4",
    "flac.mp4", "ac3.mp4", "eac3.mp4", "mp4mux.mp4", "mp4mux-av.mp4", "tiny-notes.mp4",
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Box splitting: any chunking gives the same output.

TEST (Splitter, EverySplitOffsetGivesIdenticalOutput)
{
  for (const char *name : {"tiny-notes.mp4", "mp4mux.mp4"}) {
    std::vector<uint8_t> data = ReadFixture (name);
    std::vector<Segment> ref = ReadAll (data);
    Summary s = Summarize (ref);
    ASSERT_EQ (s.inits, 1) << name;
    ASSERT_GT (s.fragments, 2) << name;
    ASSERT_EQ (s.errors + s.warnings, 0) << name;
    for (size_t split = 1; split < data.size (); split++) {
      std::vector<Segment> got =
          ReadChunked (data, [&] (size_t i) { return i == 0 ? split : data.size (); });
      ExpectSameSegments (ref, got, std::string (name) + " split at " + std::to_string (split));
      if (HasFatalFailure ())
        return;
    }
  }
}

TEST (Splitter, OneSevenAndRandomByteChunksGiveIdenticalOutput)
{
  std::mt19937 rng (1234);
  for (const char *name : kAllFixtures) {
    std::vector<uint8_t> data = ReadFixture (name);
    std::vector<Segment> ref = ReadAll (data);
    ASSERT_EQ (Summarize (ref).inits, 1) << name;
    ExpectSameSegments (ref, ReadChunked (data, [] (size_t) { return size_t (1); }),
                        std::string (name) + " 1-byte");
    ExpectSameSegments (ref, ReadChunked (data, [] (size_t) { return size_t (7); }),
                        std::string (name) + " 7-byte");
    ExpectSameSegments (ref, ReadChunked (data, [] (size_t) { return size_t (4096); }),
                        std::string (name) + " 4096-byte");
    ExpectSameSegments (
        ref, ReadChunked (data, [&] (size_t) { return size_t (1 + rng () % 9000); }),
        std::string (name) + " random");
  }
}

TEST (Splitter, LargeSizeHeaderIsSupported)
{
  // A 64-bit largesize box ("size 1").
  std::vector<uint8_t> box = {0, 0, 0, 1, 'f', 'r', 'e', 'e', 0, 0, 0, 0, 0, 0, 0, 20, 1, 2, 3, 4};
  BoxHeader h;
  ASSERT_EQ (ParseBoxHeader (box.data (), box.size (), 1000, &h), HeaderStatus::kOk);
  EXPECT_EQ (h.size, 20u);
  EXPECT_EQ (h.header_size, 16u);
  EXPECT_EQ (ParseBoxHeader (box.data (), 12, 1000, &h), HeaderStatus::kNeedMore);
  EXPECT_EQ (ParseBoxHeader (box.data (), box.size (), 19, &h), HeaderStatus::kTooLarge);
}

// ---------------------------------------------------------------------------------------------
// Keyframe flags.

static bool
Near (double a, double b)
{
  return std::fabs (a - b) < 0.05;  // ffmpeg's lavfi input starts video ~21 ms late
}

TEST (Keyframes, FfmpegGop30WithFragDuration)
{
  // -g 30 at 30 fps, -frag_duration 70000: keyframes at 0 s and 1 s, all else delta.
  Summary s = Summarize (ReadAll (ReadFixture ("notes-g30.mp4")));
  ASSERT_EQ (s.keyframes, 2);
  EXPECT_TRUE (Near (s.key_times[0], 0.0));
  EXPECT_TRUE (Near (s.key_times[1], 1.0));
  EXPECT_GT (s.fragments, 20);
}

TEST (Keyframes, FfmpegDefaultGop250)
{
  // x264's default GOP is longer than the 2 s stream: only the first fragment is a start point.
  Summary s = Summarize (ReadAll (ReadFixture ("notes-g250.mp4")));
  ASSERT_EQ (s.keyframes, 1);
  EXPECT_TRUE (Near (s.key_times[0], 0.0));
  EXPECT_GT (s.fragments, 20);
}

TEST (Keyframes, FfmpegFragKeyframeOnlyEveryFragmentIsKey)
{
  for (const char *name : {"notes-nofragdur.mp4", "empty-moov.mp4", "cmaf.mp4", "dash.mp4",
                           "omit-tfhd-offset.mp4", "video-only.mp4"}) {
    Summary s = Summarize (ReadAll (ReadFixture (name)));
    EXPECT_EQ (s.fragments, 2) << name;
    EXPECT_EQ (s.keyframes, 2) << name;
  }
}

TEST (Keyframes, Mp4muxNonSyncBitOnly)
{
  // mp4mux fragment-duration=700 with key-int-max=30: fragments at 0, 0.7, 1.0, 1.7 s.
  for (const char *name : {"mp4mux.mp4", "mp4mux-av.mp4"}) {
    Summary s = Summarize (ReadAll (ReadFixture (name)));
    ASSERT_EQ (s.keyframes, 2) << name;
    EXPECT_TRUE (Near (s.key_times[0], 0.0)) << name;
    EXPECT_TRUE (Near (s.key_times[1], 1.0)) << name;
    for (double t : s.all_times)
      if (!Near (t, 0.0) && !Near (t, 1.0)) {
        EXPECT_TRUE (std::find (s.key_times.begin (), s.key_times.end (), t) == s.key_times.end ());
      }
  }
}

TEST (Keyframes, FrameFragmentsAndSeparateMoof)
{
  // One fragment per frame (video+audio), GOP 15 over 1 s: two video keyframe fragments;
  // audio-only moofs in a stream with video are not start points.
  Summary s = Summarize (ReadAll (ReadFixture ("every-frame.mp4")));
  EXPECT_GT (s.fragments, 70);
  EXPECT_EQ (s.keyframes, 2);
  Summary sep = Summarize (ReadAll (ReadFixture ("separate-moof.mp4")));
  EXPECT_EQ (sep.fragments, 4);
  EXPECT_EQ (sep.keyframes, 2);
}

TEST (Keyframes, AudioOnlyEveryFragmentIsKey)
{
  for (const char *name : {"audio-only.mp4", "opus.mp4", "mp3.mp4", "flac.mp4"}) {
    Summary s = Summarize (ReadAll (ReadFixture (name)));
    EXPECT_GT (s.fragments, 1) << name;
    EXPECT_EQ (s.keyframes, s.fragments) << name;
  }
}

TEST (Keyframes, SampleFlagRules)
{
  EXPECT_TRUE (SampleFlagsAreSync (0x02000000));   // depends on nothing
  EXPECT_FALSE (SampleFlagsAreSync (0x01010000));  // depends on others, non-sync
  EXPECT_FALSE (SampleFlagsAreSync (0x00010000));  // mp4mux: non-sync bit only
  EXPECT_TRUE (SampleFlagsAreSync (0x00000000));   // mp4mux sync sample
  EXPECT_FALSE (SampleFlagsAreSync (0x01000000));  // depends on others without the bit
}

// ---------------------------------------------------------------------------------------------
// RFC 6381 codec strings (values cross-checked with the mp4box npm package, see tests/e2e).

TEST (Codecs, FromRealEncoders)
{
  const std::pair<const char *, const char *> cases[] = {
      {"notes-g30.mp4", "avc1.42c00a, mp4a.40.2"},
      {"video-only.mp4", "avc1.42c00a"},
      {"audio-only.mp4", "mp4a.40.2"},
      {"hevc.mp4", "hvc1.1.6.L30.90"},
      {"av1.mp4", "av01.0.00M.08"},
      {"vp9.mp4", "vp09.00.10.08"},
      {"mp3.mp4", "mp4a.6B"},
      {"opus.mp4", "opus"},
      {"flac.mp4", "flac"},
      {"ac3.mp4", "ac-3"},
      {"eac3.mp4", "ec-3"},
      {"mp4mux-av.mp4", "avc1.42c00a, mp4a.40.2"},
  };
  for (auto &c : cases) {
    std::vector<Segment> segs = ReadAll (ReadFixture (c.first));
    ASSERT_EQ (segs.front ().kind, Segment::kInit) << c.first;
    EXPECT_EQ (segs.front ().init.codecs, c.second) << c.first;
    const InitInfo &info = segs.front ().init;
    EXPECT_EQ (info.mime, std::string (info.has_video ? "video/mp4" : "audio/mp4") +
                              "; codecs=\"" + c.second + "\"")
        << c.first;
  }
}

// Builds a sample entry box: `type`, a fixed part of `fixed` zero bytes, one child box.
static std::vector<uint8_t>
SampleEntry (const char (&type)[5], size_t fixed, const char (&child)[5],
             const std::vector<uint8_t> &child_payload)
{
  Writer w;
  size_t b = w.BeginBox (FourCC (type));
  for (size_t i = 0; i < fixed; i++)
    w.U8 (0);
  size_t c = w.BeginBox (FourCC (child));
  w.Bytes (child_payload.data (), child_payload.size ());
  w.EndBox (c);
  w.EndBox (b);
  return w.bytes ();
}

static std::string
Codec (const std::vector<uint8_t> &entry)
{
  return CodecStringForSampleEntry (entry.data (), entry.size ());
}

static std::vector<uint8_t>
Esds (uint8_t oti, std::vector<uint8_t> asc)
{
  std::vector<uint8_t> d = {0, 0, 0, 0,                       // version/flags
                            0x03, uint8_t (23 + asc.size ()),  // ES_Descriptor
                            0, 1, 0,                           // ES_ID, flags
                            0x04, uint8_t (15 + asc.size ()), oti, 0x15, 0, 0, 0, 0, 0, 0,
                            0,    0,                           0,   0,    0};
  if (!asc.empty ()) {
    d.push_back (0x05);
    d.push_back (uint8_t (asc.size ()));
    d.insert (d.end (), asc.begin (), asc.end ());
  }
  return d;
}

TEST (Codecs, AvcProfilesAndLevels)
{
  EXPECT_EQ (Codec (SampleEntry ("avc1", 78, "avcC", {1, 0x64, 0x00, 0x28, 0xff})), "avc1.640028");
  EXPECT_EQ (Codec (SampleEntry ("avc3", 78, "avcC", {1, 0x4d, 0x40, 0x1f, 0xff})), "avc3.4d401f");
  EXPECT_EQ (Codec (SampleEntry ("avc1", 78, "avcC", {1, 0x42, 0xe0, 0x0a, 0xff})), "avc1.42e00a");
  EXPECT_EQ (Codec (SampleEntry ("avc1", 78, "avcC", {1, 0x7a, 0x00, 0x33, 0xff})), "avc1.7a0033");
  EXPECT_EQ (Codec (SampleEntry ("avc1", 78, "avcC", {1, 0xf4, 0x00, 0x0d, 0xff})), "avc1.f4000d");
  EXPECT_EQ (Codec (SampleEntry ("avc1", 78, "avcC", {})), "");  // empty configuration
}

TEST (Codecs, Hevc)
{
  // Main, tier L, level 3.1 (93), progressive-source constraint flag.
  std::vector<uint8_t> main = {1, 0x01, 0x60, 0, 0, 0, 0xb0, 0, 0, 0, 0, 0, 93};
  EXPECT_EQ (Codec (SampleEntry ("hvc1", 78, "hvcC", main)), "hvc1.1.6.L93.B0");
  // Main 10, high tier, level 5.1 (153), compat flag 2 only, two constraint bytes.
  std::vector<uint8_t> main10 = {1, 0x22, 0x20, 0, 0, 0, 0x90, 0x10, 0, 0, 0, 0, 153};
  EXPECT_EQ (Codec (SampleEntry ("hev1", 78, "hvcC", main10)), "hev1.2.4.H153.90.10");
  // general_profile_space 1 → "A".
  std::vector<uint8_t> space = {1, 0x41, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 120};
  EXPECT_EQ (Codec (SampleEntry ("hvc1", 78, "hvcC", space)), "hvc1.A1.6.L120");
}

TEST (Codecs, Av1AndVp9)
{
  // av1C: marker|version, profile 0 level 8, tier M, 8-bit.
  EXPECT_EQ (Codec (SampleEntry ("av01", 78, "av1C", {0x81, 0x08, 0x0c, 0x00})), "av01.0.08M.08");
  // profile 0, level 13, high tier, 10-bit.
  EXPECT_EQ (Codec (SampleEntry ("av01", 78, "av1C", {0x81, 0x0d, 0xcc, 0x00})), "av01.0.13H.10");
  // profile 2, level 9, main tier, 12-bit.
  EXPECT_EQ (Codec (SampleEntry ("av01", 78, "av1C", {0x81, 0x49, 0x60, 0x00})), "av01.2.09M.12");
  // vpcC v1: profile 2, level 31, 10-bit.
  EXPECT_EQ (Codec (SampleEntry ("vp09", 78, "vpcC", {1, 0, 0, 0, 2, 31, 0xa2, 1, 1, 1, 0, 0})),
             "vp09.02.31.10");
}

TEST (Codecs, Mp4aObjectTypes)
{
  // AudioSpecificConfig: AOT 2 (LC), 5 (SBR/HE-AAC), 29 (PS/HE-AACv2), 42 via escape (USAC).
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x40, {0x12, 0x10}))), "mp4a.40.2");
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x40, {0x2b, 0x10}))), "mp4a.40.5");
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x40, {0xeb, 0x10}))), "mp4a.40.29");
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x40, {0xf9, 0x40}))), "mp4a.40.42");
  // MPEG-1/2 audio (MP3) object types.
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x6b, {}))), "mp4a.6B");
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", Esds (0x69, {}))), "mp4a.69");
  EXPECT_EQ (Codec (SampleEntry ("mp4a", 28, "esds", {0, 0, 0, 0})), "");
}

TEST (Codecs, OtherAudio)
{
  EXPECT_EQ (Codec (SampleEntry ("Opus", 28, "dOps", {0, 2, 1, 0x38, 0, 0, 0xbb, 0x80, 0, 0, 0})),
             "opus");
  EXPECT_EQ (Codec (SampleEntry ("fLaC", 28, "dfLa", {0, 0, 0, 0})), "flac");
  EXPECT_EQ (Codec (SampleEntry ("ac-3", 28, "dac3", {0x10, 0x3d, 0xe0})), "ac-3");
  EXPECT_EQ (Codec (SampleEntry ("ec-3", 28, "dec3", {0x01, 0xc0, 0x20, 0x0f, 0x00})), "ec-3");
  EXPECT_EQ (Codec (SampleEntry ("xxxx", 28, "abcd", {})), "");
}

static std::vector<uint8_t>
Hex (const std::string &hex)
{
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < hex.size (); i += 2)
    out.push_back (uint8_t (std::stoul (hex.substr (i, 2), nullptr, 16)));
  return out;
}

TEST (Codecs, VvcFromGpac)
{
  // The vvcC of a real VVC stream packaged by GPAC 2.4 (../shared/realworld/38_*, from
  // Eyevinn/mp4ff mp4/testdata/vvc_400kbps_2s.mp4): Main 10 (1), main tier, level 51 (3.1),
  // one constraint byte 0x80 (ptl_frame_only_constraint_flag) → base32 "QA", 6 sublayers,
  // no sub-profile.
  std::vector<uint8_t> vvcc = Hex (
      "00000000ff00655f010233800000050002d00000028f000100b0007900ad0233800000800a0200b446a007374dba"
      "6469149bce1365630408278034833610864c442064883521e8f56a4bc926a4b2445a88bc449a88914911264889"
      "351962210b24216a10bc217ab525e4bd43483362419b1012210202454204048d210202458810122208091641012"
      "242024c81222102459081224409341224824e12709b222211164222444d22493a7fe9765fe7240000030004000"
      "003006784ec0061a80004c4b40030d40002625a10900001000d008100000501005a22241fb820");
  EXPECT_EQ (Codec (SampleEntry ("vvc1", 78, "vvcC", vvcc)), "vvc1.1.L51.CQA");
  EXPECT_EQ (Codec (SampleEntry ("vvi1", 78, "vvcC", vvcc)), "vvi1.1.L51.CQA");
}

TEST (Codecs, VvcTierConstraintsSubProfilesAndSublayers)
{
  // Built field by field (ISO/IEC 14496-15:2022 §11.2.4.2.2): ptl_present, ols_idx 0,
  // num_sublayers 2, 4:2:0, 10-bit; PTL: 2 constraint bytes, profile 17 (Multilayer Main 10),
  // high tier, level 83; constraint bytes 0xC4 0x00 (frame-only, multilayer, gci bits);
  // sublayer flags: [0] present (+7 reserved bits), sublayer_level_idc 80; 2 sub-profiles.
  std::vector<uint8_t> vvcc = {0, 0, 0, 0,           // FullBox
                               0xff,                 // reserved, LengthSizeMinusOne 3, ptl_present
                               0x00, 0x29,           // ols_idx 0, num_sublayers 2, cfr 2, chroma 1
                               0x5f,                 // bit_depth_minus8 2, reserved
                               0x02,                 // num_bytes_constraint_info 2
                               0x23,                 // profile 17, tier 1
                               83,                   // level
                               0xc4, 0x00,           // constraint info
                               0x80,                 // sublayer_level_present[0] = 1, reserved
                               80,                   // sublayer_level_idc[0]
                               2,                    // ptl_num_sub_profiles
                               0x00, 0x00, 0x00, 0x25, 0x12, 0x34, 0xab, 0xcd,
                               0x05, 0x00, 0x02, 0xd0, 0x00, 0x00,  // width, height, fps
                               0x00};                               // num_of_arrays
  EXPECT_EQ (Codec (SampleEntry ("vvc1", 78, "vvcC", vvcc)), "vvc1.17.H83.CYQ.S00000025+1234ABCD");
  // No PTL, or a record cut short: no string rather than a wrong one.
  std::vector<uint8_t> no_ptl = {0, 0, 0, 0, 0xfe, 0x00};
  EXPECT_EQ (Codec (SampleEntry ("vvc1", 78, "vvcC", no_ptl)), "");
  std::vector<uint8_t> cut (vvcc.begin (), vvcc.begin () + 12);
  EXPECT_EQ (Codec (SampleEntry ("vvc1", 78, "vvcC", cut)), "");
}

TEST (Codecs, Ac4)
{
  // A real dac4 (ac4_dsi_v1, from Eyevinn/mp4ff mp4/testdata/stsd_ac4.bin): bitstream_version
  // 2, one presentation, presentation_version 1, program id 300, mdcompat 1.
  std::vector<uint8_t> dac4 =
      Hex ("20a4018096300000000ffffffff00112f9a800004800008e501000008f10995b8080");
  EXPECT_EQ (Codec (SampleEntry ("ac-4", 28, "dac4", dac4)), "ac-4.02.01.01");
  // Hand-built: bitstream_version 2, no program id, bit rate dsi, presentation_version 1,
  // pres_bytes 4, presentation_config_v1 0, mdcompat 3.
  //   001 0000010 1 0010 | 000000001 | b_program_id 0, 2 + 32 + 32 bits of bit rate → bit 91,
  //   aligned to byte 12: presentation_version 1, pres_bytes 4, config 0 + mdcompat 3.
  std::vector<uint8_t> built = {0x20, 0xa4, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 0,
                                0x01, 0x04, 0x03, 0, 0, 0};
  EXPECT_EQ (Codec (SampleEntry ("ac-4", 28, "dac4", built)), "ac-4.02.01.03");
  EXPECT_EQ (Codec (SampleEntry ("ac-4", 28, "dac4", {0x20})), "");  // cut short
}

TEST (Codecs, TextAndMetadataTracks)
{
  // Real USP stpp entry (../shared/realworld/20_*): namespace "http://www.w3.org/ns/ttml" only.
  std::vector<uint8_t> usp = Hex ("0000002c73747070000000000000000168747470"
                                  "3a2f2f7777772e77332e6f72672f6e732f74746d6c000000");
  EXPECT_EQ (Codec (usp), "stpp");
  auto stpp = [] (const std::string &ns, const std::string &schema) {
    Writer w;
    size_t b = w.BeginBox (FourCC ("stpp"));
    for (int i = 0; i < 7; i++)
      w.U8 (0);
    w.U8 (1);  // data_reference_index
    w.Bytes (reinterpret_cast<const uint8_t *> (ns.c_str ()), ns.size () + 1);
    w.Bytes (reinterpret_cast<const uint8_t *> (schema.c_str ()), schema.size () + 1);
    w.U8 (0);  // auxiliary_mime_types
    w.EndBox (b);
    return w.bytes ();
  };
  EXPECT_EQ (Codec (stpp ("http://www.w3.org/ns/ttml http://www.w3.org/ns/ttml/profile/imsc1/text",
                          "")),
             "stpp.ttml.im1t");
  EXPECT_EQ (Codec (stpp ("http://www.w3.org/ns/ttml", "urn:ebu:tt:distribution:2014-01")),
             "stpp.ttml.etd1");
  EXPECT_EQ (Codec (stpp ("http://www.w3.org/ns/ttml/profile/imsc1.1/image "
                          "http://www.w3.org/ns/ttml/profile/imsc1/image",
                          "")),
             "stpp.ttml.im1i+im2i");
  EXPECT_EQ (Codec (stpp ("http://www.w3.org/ns/ttml/profile/imsc1/textual", "")), "stpp");
  EXPECT_EQ (Codec (SampleEntry ("wvtt", 8, "vttC", {'W', 'E', 'B', 'V', 'T', 'T'})), "wvtt");
  EXPECT_EQ (Codec (SampleEntry ("evte", 8, "btrt", std::vector<uint8_t> (12, 0))), "evte");
  EXPECT_EQ (Codec (SampleEntry ("urim", 8, "uri ", {0, 0, 0, 0, 'u', 0})), "urim");
  // Any printable entry of a text/metadata handler: its four-character code.
  std::vector<uint8_t> other = SampleEntry ("abcd", 8, "xxxx", {});
  EXPECT_EQ (CodecStringForSampleEntry (other.data (), other.size (), FourCC ("meta")), "abcd");
  EXPECT_EQ (CodecStringForSampleEntry (other.data (), other.size (), FourCC ("vide")), "");
}

TEST (Codecs, MimeListsAudioAndVideoOnly)
{
  // Apple's HLS fMP4 with a CEA-608 track (handler 'clcp', ../shared/realworld/12_*): the
  // caption track has a codec string but stays out of the mime.
  std::ifstream f (std::string (REALWORLD_DIR) +
                       "/12_apple-coremedia_h264-c608_2traf_emsg-between-frags.mp4",
                   std::ios::binary);
  ASSERT_TRUE (f.good ()) << "missing " << REALWORLD_DIR
                          << ": the shared real-world files must be beside the clone";
  std::vector<uint8_t> data ((std::istreambuf_iterator<char> (f)),
                             std::istreambuf_iterator<char> ());
  std::vector<Segment> segs = ReadAll (data);
  ASSERT_FALSE (segs.empty ());
  ASSERT_EQ (segs.front ().kind, Segment::kInit);
  const InitInfo &info = segs.front ().init;
  EXPECT_EQ (info.codecs, "avc1.64001f");
  EXPECT_EQ (info.other_codecs, "c608");
  EXPECT_EQ (info.mime, "video/mp4; codecs=\"avc1.64001f\"");
}

// ---------------------------------------------------------------------------------------------
// ffmpeg's non-empty moov: clean init + rebuilt first fragment.

TEST (FirstFragment, MoovSamplesBecomeAKeyframeFragment)
{
  std::vector<uint8_t> data = ReadFixture ("notes-g30.mp4");
  std::vector<Segment> segs = ReadAll (data);
  ASSERT_GE (segs.size (), 3u);
  const Segment &init = segs[0];
  ASSERT_EQ (init.kind, Segment::kInit);
  ASSERT_TRUE (init.init.moov_has_samples);

  // The init segment sent on is ftyp + a moov without samples.
  BoxIterator it (init.bytes.data (), init.bytes.size ());
  ASSERT_TRUE (it.Next ());
  EXPECT_EQ (it.type (), FourCC ("ftyp"));
  ASSERT_TRUE (it.Next ());
  ASSERT_EQ (it.type (), FourCC ("moov"));
  std::string error;
  auto clean = ParseMoov (it.box (), it.box_size (), &error);
  ASSERT_TRUE (clean) << error;
  EXPECT_FALSE (clean->moov_has_samples);
  EXPECT_EQ (clean->codecs, init.init.codecs);
  EXPECT_FALSE (it.Next ());

  // The first fragment is a moof + the mdat that followed the moov, a keyframe at time 0.
  const Segment &first = segs[1];
  ASSERT_EQ (first.kind, Segment::kFragment);
  EXPECT_TRUE (first.fragment.keyframe);
  EXPECT_EQ (first.fragment.decode_time_ns (), 0);
  size_t moov_samples = 0;
  for (const Track &t : init.init.tracks)
    moov_samples += t.samples.sizes.size ();
  size_t frag_samples = 0;
  for (const TrafTiming &t : first.fragment.trafs)
    frag_samples += t.samples;
  EXPECT_EQ (frag_samples, moov_samples);
  // Its moof's data offsets point at the same bytes the moov's chunk offsets did.
  BoxIterator fit (first.bytes.data (), first.bytes.size ());
  ASSERT_TRUE (fit.Next ());
  ASSERT_EQ (fit.type (), FourCC ("moof"));
  size_t moof_size = fit.box_size ();
  ASSERT_TRUE (fit.Next ());
  ASSERT_EQ (fit.type (), FourCC ("mdat"));
  const Track &v = init.init.tracks[0];
  uint64_t mdat_in_file = 0;
  // Locate the mdat after the moov in the source file.
  BoxIterator src (data.data (), data.size ());
  while (src.Next ())
    if (src.type () == FourCC ("mdat")) {
      mdat_in_file = uint64_t (src.box () - data.data ());
      break;
    }
  uint64_t first_sample_in_fragment = moof_size + (v.samples.offsets[0] - mdat_in_file);
  EXPECT_EQ (0, memcmp (first.bytes.data () + first_sample_in_fragment,
                        data.data () + v.samples.offsets[0], v.samples.sizes[0]));
  // The next fragment continues the timeline.
  EXPECT_EQ (segs[2].fragment.decode_time_ns (), first.fragment.duration_ns ());
}

TEST (FirstFragment, EmptyMoovIsPassedThrough)
{
  std::vector<uint8_t> data = ReadFixture ("empty-moov.mp4");
  std::vector<Segment> segs = ReadAll (data);
  ASSERT_EQ (segs[0].kind, Segment::kInit);
  EXPECT_FALSE (segs[0].init.moov_has_samples);
  // ftyp+moov unchanged.
  EXPECT_EQ (0, memcmp (segs[0].bytes.data (), data.data (), segs[0].bytes.size ()));
}

// ---------------------------------------------------------------------------------------------
// Restarts, rebasing.

TEST (Restart, NewFtypMoovIsANewInitSegment)
{
  std::vector<uint8_t> a = ReadFixture ("notes-g30.mp4"), b = ReadFixture ("vp9.mp4");
  std::vector<Segment> segs = ReadAll (Concat (a, b));
  Summary s = Summarize (segs);
  EXPECT_EQ (s.inits, 2);
  EXPECT_EQ (s.errors, 0);
  int inits = 0;
  for (size_t i = 0; i < segs.size (); i++) {
    if (segs[i].kind != Segment::kInit)
      continue;
    inits++;
    EXPECT_EQ (segs[i].discont, inits > 1);
    ASSERT_LT (i + 1, segs.size ());
    EXPECT_TRUE (segs[i + 1].fragment.keyframe);
  }
  EXPECT_EQ (s.codecs, "vp09.00.10.08");
}

TEST (Rebase, FirstFragmentStartsAtZeroAndTracksStayInSync)
{
  std::vector<Segment> segs = ReadAll (ReadFixture ("empty-moov.mp4"));
  ASSERT_EQ (segs.size (), 3u);
  const Segment &f = segs[2];  // second fragment, starts at 1 s
  ASSERT_TRUE (Near (f.fragment.decode_time_ns () / 1e9, 1.0));
  std::vector<uint8_t> moof = f.bytes;
  int64_t base = f.fragment.decode_time_ns ();
  ASSERT_TRUE (RebaseMoof (moof.data (), moof.size (), f.fragment, base));
  std::string error;
  BoxIterator it (moof.data (), moof.size ());
  ASSERT_TRUE (it.Next ());
  auto info = ParseMoof (it.box (), it.box_size (), segs[0].init, &error);
  ASSERT_TRUE (info) << error;
  ASSERT_EQ (info->trafs.size (), 2u);
  for (size_t i = 0; i < info->trafs.size (); i++) {
    double before = double (f.fragment.trafs[i].decode_time) / f.fragment.trafs[i].timescale;
    double after = double (info->trafs[i].decode_time) / info->trafs[i].timescale;
    EXPECT_NEAR (before - after, base / 1e9, 1e-3) << "track " << i;
  }
  EXPECT_EQ (info->decode_time_ns (), 0);
}

// ---------------------------------------------------------------------------------------------
// Bad input.

TEST (BadInput, GarbageBeforeFirstBoxIsSkipped)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  std::vector<uint8_t> garbage = {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', 0, 1, 2, 3};
  std::vector<Segment> clean = ReadAll (data);
  std::vector<Segment> got = ReadAll (Concat (garbage, data));
  ASSERT_EQ (got[0].kind, Segment::kWarning);
  got.erase (got.begin ());
  ExpectSameSegments (clean, got, "garbage prefix");
}

TEST (BadInput, GarbageBetweenBoxesResyncs)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  std::vector<Segment> clean = ReadAll (data);
  // Insert junk (a size < 8 header, then random bytes) after the third fragment.
  size_t at = 0;
  int frags = 0;
  BoxIterator it (data.data (), data.size ());
  while (it.Next ())
    if (it.type () == FourCC ("mdat") && ++frags == 3) {
      at = size_t (it.box () - data.data ()) + it.box_size ();
      break;
    }
  ASSERT_GT (at, 0u);
  std::vector<uint8_t> junk = {0, 0, 0, 3, 'j', 'u', 'n', 'k', 9, 9, 9};
  std::vector<uint8_t> bad (data.begin (), data.begin () + long (at));
  bad.insert (bad.end (), junk.begin (), junk.end ());
  bad.insert (bad.end (), data.begin () + long (at), data.end ());
  Summary s = Summarize (ReadAll (bad));
  Summary ref = Summarize (clean);
  EXPECT_EQ (s.errors, 0);
  EXPECT_EQ (s.warnings, 1);
  EXPECT_EQ (s.fragments, ref.fragments);
}

TEST (BadInput, OversizedBoxIsAnError)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  StreamReader r (4096);  // max-box-size 4 KiB; the init fits, some mdat does not
  std::vector<uint8_t> big = {0x10, 0, 0, 0, 'm', 'd', 'a', 't'};
  std::vector<Segment> segs = r.Push (data.data (), 28 + 1432);  // ftyp + moov
  ASSERT_EQ (Summarize (segs).inits, 1);
  auto more = r.Push (big.data (), big.size ());
  Summary s = Summarize (more);
  ASSERT_EQ (s.errors, 1);
  EXPECT_NE (s.first_error.find ("max-box-size"), std::string::npos) << s.first_error;
  EXPECT_NE (s.first_error.find ("mdat"), std::string::npos) << s.first_error;
}

TEST (BadInput, RandomBytesAreAnErrorWithBoundedMemory)
{
  std::mt19937 rng (7);
  StreamReader r;
  std::vector<uint8_t> chunk (65536);
  Summary s;
  size_t fed = 0;
  while (s.errors == 0 && fed < 64u << 20) {
    for (auto &b : chunk)
      b = uint8_t (rng ());
    s = Summarize (r.Push (chunk.data (), chunk.size ()));
    fed += chunk.size ();
    ASSERT_LT (r.buffered (), 1u << 20);  // garbage is not accumulated
  }
  ASSERT_EQ (s.errors, 1);
  EXPECT_NE (s.first_error.find ("not a fragmented MP4"), std::string::npos) << s.first_error;
  EXPECT_LE (fed, BoxSplitter::kMaxResyncBytes + 2 * chunk.size ());
}

TEST (BadInput, TruncatedStreamWarnsAtEnd)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  data.resize (data.size () - 100);
  std::vector<Segment> segs = ReadAll (data);
  ASSERT_EQ (segs.back ().kind, Segment::kWarning);
  EXPECT_NE (segs.back ().message.find ("middle of a box"), std::string::npos);
}

TEST (BadInput, UnknownAndIgnoredTopLevelBoxesAreDropped)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  std::vector<Segment> clean = ReadAll (data);
  std::vector<uint8_t> extra = {0, 0, 0, 12, 'u', 'u', 'i', 'd', 1, 2, 3, 4,
                                0, 0, 0, 8,  'f', 'r', 'e', 'e', 0, 0, 0, 9,
                                'm', 'f', 'r', 'a', 0};
  // Between two fragments (not before the moov's mdat: that would move the samples the
  // moov's absolute chunk offsets point at).
  BoxIterator it (data.data (), data.size ());
  size_t at = 0;
  int mdats = 0;
  while (it.Next ())
    if (it.type () == FourCC ("mdat") && ++mdats == 2)
      at = size_t (it.box () - data.data ()) + it.box_size ();
  ASSERT_GT (at, 0u);
  std::vector<uint8_t> with =
      Concat (std::vector<uint8_t> (data.begin (), data.begin () + long (at)), extra);
  with = Concat (with, std::vector<uint8_t> (data.begin () + long (at), data.end ()));
  ExpectSameSegments (clean, ReadAll (with), "extra boxes");
  // mp4mux's trailing mfra is dropped silently.
  Summary s = Summarize (ReadAll (ReadFixture ("mp4mux.mp4")));
  EXPECT_EQ (s.warnings + s.errors, 0);
}

TEST (BadInput, NotFragmentedIsAClearError)
{
  std::vector<uint8_t> data = ReadFixture ("tiny-notes.mp4");
  // A moov without mvex (as in a plain MP4): rename the mvex box to 'free'.
  for (size_t i = 0; i + 4 < 1400; i++)
    if (!memcmp (&data[i], "mvex", 4))
      memcpy (&data[i], "free", 4);
  Summary s = Summarize (ReadAll (data));
  ASSERT_EQ (s.errors, 1);
  EXPECT_NE (s.first_error.find ("not fragmented"), std::string::npos) << s.first_error;
}

TEST (BadInput, FragmentsBeforeInitAreDroppedWithAWarning)
{
  std::vector<uint8_t> data = ReadFixture ("empty-moov.mp4");
  std::vector<Segment> clean = ReadAll (data);
  // Start the stream at its first moof, then append the whole stream.
  BoxIterator it (data.data (), data.size ());
  size_t moof = 0;
  while (it.Next ())
    if (it.type () == FourCC ("moof")) {
      moof = size_t (it.box () - data.data ());
      break;
    }
  std::vector<uint8_t> joined (data.begin () + long (moof), data.end ());
  std::vector<Segment> segs = ReadAll (Concat (joined, data));
  Summary s = Summarize (segs);
  EXPECT_EQ (s.warnings, 1);
  EXPECT_EQ (s.inits, 1);
  EXPECT_EQ (s.fragments, Summarize (clean).fragments);
}

// ---------------------------------------------------------------------------------------------
// Inputs the fuzzer found (tests/fuzz/crashes): a hang, a memory blow-up, chunking-dependent
// results, a misplaced ftyp. Each must finish, and give the same output in any chunking.

#include <dirent.h>

TEST (FuzzRegressions, CrashInputsAreHandled)
{
  std::string dir = std::string (FIXTURES_DIR) + "/../fuzz/crashes";
  DIR *d = opendir (dir.c_str ());
  ASSERT_TRUE (d) << dir;
  int files = 0;
  while (dirent *e = readdir (d)) {
    std::string name = e->d_name;
    if (name.size () < 5 || name.compare (name.size () - 4, 4, ".bin") != 0)
      continue;  // README.md, make-crashes.py
    std::ifstream f (dir + "/" + name, std::ios::binary);
    std::vector<uint8_t> data ((std::istreambuf_iterator<char> (f)),
                               std::istreambuf_iterator<char> ());
    files++;
    // The fuzz harness' 4-byte header picks chunking and max-box-size: skip it here.
    if (data.size () > 4)
      data.erase (data.begin (), data.begin () + 4);
    std::vector<Segment> whole = ReadAll (data);
    for (const Segment &s : whole)
      if (s.kind == Segment::kFragment) {
        EXPECT_GE (s.fragment.end_ns (), s.fragment.start_ns ()) << name;
        std::vector<uint8_t> moof = s.bytes;
        BoxIterator mi (moof.data (), moof.size ());
        while (mi.Next ())
          if (mi.type () == FourCC ("moof")) {
            uint8_t *p = moof.data () + (mi.box () - moof.data ());
            EXPECT_TRUE (RebaseMoof (p, mi.box_size (), s.fragment, INT64_MIN / 2)) << name;
            std::string error;
            EXPECT_TRUE (ParseMoof (p, mi.box_size (), whole[0].init, &error)) << name << error;
            break;
          }
      }
    ExpectSameSegments (whole, ReadChunked (data, [] (size_t) { return size_t (1); }), name);
    for (const Segment &s : whole) {
      if (s.kind != Segment::kFragment)
        continue;
      BoxIterator it (s.bytes.data (), s.bytes.size ());
      ASSERT_TRUE (it.Next ()) << name;
      EXPECT_NE (it.type (), FourCC ("ftyp")) << name << ": ftyp inside a fragment";
    }
  }
  closedir (d);
  EXPECT_GE (files, 7);
}

// ---------------------------------------------------------------------------------------------
// Normalisation: every fragment uses movie-fragment-relative addressing with a tfdt (the MSE
// "ISO BMFF Byte Stream Format"), whatever addressing the input used.

namespace {

struct Addressed
{
  uint64_t samples = 0, bytes = 0;
  int trafs = 0, mdats = 0;
};

// Checks a fragment as MSE reads it: every tfhd without base_data_offset and with
// default-base-is-moof (or the first traf), every trun with a data_offset, every traf with a
// tfdt, every run's data inside an mdat payload of the fragment. Counts what it addresses.
Addressed
CheckMseAddressing (const Segment &f, const InitInfo &init, const std::string &what)
{
  Addressed a;
  std::vector<std::pair<size_t, size_t>> mdats;  // payload ranges, from the moof start
  size_t moof_at = 0, moof_size = 0;
  BoxIterator top (f.bytes.data (), f.bytes.size ());
  while (top.Next ()) {
    if (top.type () == FourCC ("moof") && !moof_size) {
      moof_at = size_t (top.box () - f.bytes.data ());
      moof_size = top.box_size ();
    } else if (top.type () == FourCC ("mdat")) {
      size_t at = size_t (top.box () - f.bytes.data ());
      mdats.push_back ({at + 8 - moof_at, at + top.box_size () - moof_at});
      a.mdats++;
    }
  }
  EXPECT_FALSE (top.error ()) << what;
  EXPECT_GT (moof_size, 0u) << what;
  MoofLayout layout;
  std::string error;
  EXPECT_TRUE (ParseMoofLayout (f.bytes.data () + moof_at, moof_size, init, &layout, &error))
      << what << ": " << error;
  EXPECT_EQ (layout.reasons, 0u) << what << ": " << NormalizeReasonsText (layout.reasons);
  for (size_t i = 0; i < layout.trafs.size (); i++) {
    const TrafLayout &tl = layout.trafs[i];
    a.trafs++;
    EXPECT_FALSE (tl.tfhd_flags & 0x000001) << what;
    EXPECT_TRUE (i == 0 || (tl.tfhd_flags & 0x020000)) << what;
    EXPECT_TRUE (tl.has_tfdt) << what;
    for (const TrunLayout &run : tl.truns) {
      EXPECT_TRUE (run.has_data_offset) << what;
      if (run.bytes == 0)
        continue;
      // Inside the mdats (a run may span several, as USP's TTML does).
      bool inside = !mdats.empty () && size_t (run.data_offset) >= mdats.front ().first &&
                    size_t (run.data_offset) + run.bytes <= mdats.back ().second + 8 * (mdats.size () - 1);
      EXPECT_TRUE (inside) << what << ": run at " << run.data_offset << " (" << run.bytes
                           << " bytes) is not inside the mdats";
      a.bytes += run.bytes;
    }
  }
  for (const TrafTiming &t : f.fragment.trafs)
    a.samples += t.samples;
  return a;
}

// Samples the moofs of a file declare (trun sample counts), by top-level parsing.
uint64_t
DeclaredSamples (const std::vector<uint8_t> &data)
{
  uint64_t n = 0;
  for (const TopBox &b : TopBoxes (data)) {
    if (b.type != FourCC ("moof"))
      continue;
    BoxIterator it (data.data () + b.offset + 8, b.size - 8);
    while (it.Next ())
      if (it.type () == FourCC ("traf")) {
        BoxIterator tr (it.payload (), it.payload_size ());
        while (tr.Next ())
          if (tr.type () == FourCC ("trun"))
            n += LoadU32 (tr.payload () + 4);
      }
  }
  return n;
}

struct Normalised
{
  int fragments = 0, normalized = 0;
  uint64_t samples = 0;
  std::string info;
};

Normalised
CheckNormalised (const std::vector<uint8_t> &data, const std::string &what)
{
  std::vector<Segment> segs = ReadAll (data);
  Normalised n;
  const InitInfo *init = nullptr;
  for (const Segment &g : segs) {
    EXPECT_NE (g.kind, Segment::kError) << what << ": " << g.message;
    EXPECT_NE (g.kind, Segment::kWarning) << what << ": " << g.message;
    if (g.kind == Segment::kInit)
      init = &g.init;
    if (g.kind != Segment::kFragment)
      continue;
    n.fragments++;
    n.normalized += g.normalized;
    if (!g.info.empty ())
      n.info += g.info;
    Addressed a = CheckMseAddressing (g, *init, what + " fragment " + std::to_string (n.fragments));
    n.samples += a.samples;
  }
  return n;
}

}  // namespace

TEST (Normalize, AbsoluteBaseDataOffsetFromFfmpegWithoutDefaultBaseMoof)
{
  // -movflags frag_keyframe+empty_moov (the flags guides give): tfhd base_data_offset.
  std::vector<uint8_t> data = ReadFixture ("absolute-base.mp4");
  Normalised n = CheckNormalised (data, "absolute-base");
  EXPECT_EQ (n.fragments, 2);
  EXPECT_EQ (n.normalized, 2);
  EXPECT_EQ (n.samples, DeclaredSamples (data));
  EXPECT_NE (n.info.find ("base_data_offset"), std::string::npos) << n.info;
}

TEST (Normalize, ImplicitOffsetsAcrossTrafsFromOmitTfhdOffset)
{
  std::vector<uint8_t> data = ReadFixture ("omit-tfhd-offset.mp4");
  Normalised n = CheckNormalised (data, "omit-tfhd-offset");
  EXPECT_EQ (n.normalized, n.fragments);
  EXPECT_EQ (n.samples, DeclaredSamples (data));
  EXPECT_NE (n.info.find ("several trafs"), std::string::npos) << n.info;
  // Only the moof changed: what follows it (the mdat) is the input's, byte for byte, and the
  // audio run starts where the video run ends, as ISO/IEC 14496-12 8.8.7.1 says.
  std::vector<Segment> segs = ReadAll (data);
  std::vector<TopBox> in = TopBoxes (data);
  size_t k = 0;
  for (const Segment &g : segs) {
    if (g.kind != Segment::kFragment)
      continue;
    while (in[k].type != FourCC ("moof"))
      k++;
    const TopBox &mdat = in[k + 1];
    ASSERT_EQ (mdat.type, FourCC ("mdat"));
    std::vector<TopBox> out = TopBoxes (g.bytes);
    ASSERT_EQ (out.size (), 2u);
    ASSERT_EQ (out[1].size, mdat.size);
    EXPECT_EQ (0, memcmp (g.bytes.data () + out[1].offset, data.data () + mdat.offset, mdat.size));
    MoofLayout l;
    std::string error;
    ASSERT_TRUE (ParseMoofLayout (g.bytes.data (), out[0].size, segs[0].init, &l, &error));
    ASSERT_EQ (l.trafs.size (), 2u);
    EXPECT_EQ (int64_t (l.trafs[1].truns[0].data_offset),
               l.trafs[0].truns[0].data_offset + int64_t (l.trafs[0].truns[0].bytes));
    EXPECT_EQ (size_t (l.trafs[0].truns[0].data_offset), out[0].size + 8);
    k++;
  }
}

TEST (Normalize, AlreadyNormalisedStreamsAreUntouched)
{
  for (const char *name : {"empty-moov.mp4", "every-frame.mp4", "separate-moof.mp4", "cmaf.mp4",
                           "dash.mp4", "mp4mux-av.mp4", "notes-g30.mp4"}) {
    std::vector<Segment> segs = ReadAll (ReadFixture (name));
    for (const Segment &g : segs) {
      EXPECT_FALSE (g.normalized) << name;
      EXPECT_FALSE (g.timestamp_jump) << name;
    }
  }
}

TEST (Normalize, RealWorldPackagers)
{
  struct Case
  {
    const char *file;
    const char *reason;
  } cases[] = {
      // ffmpeg 58 without empty_moov: absolute base_data_offset, tfdt v1.
      {"realworld/02_ffmpeg-lavf58_h264-aac_partially-fragmented.mp4", "base_data_offset"},
      // GPAC 0.5: 2 trafs, no base flags, the second traf's data_offset counted from the moof.
      {"realworld/08_gpac050_h264-aac_2traf_implicit-base_sidx-per-frag.mp4", "several trafs"},
      // ffmpeg ismv: no tfdt, Smooth Streaming tfxd.
      {"realworld/22_ffmpeg-lavf60_ismv-smooth_h264-aac_tfxd-uuid_trun-v1-neg.mp4", "tfdt"},
  };
  for (const Case &c : cases) {
    std::vector<uint8_t> data = ReadFixture (c.file);
    Normalised n = CheckNormalised (data, c.file);
    EXPECT_GT (n.normalized, 0) << c.file;
    EXPECT_NE (n.info.find (c.reason), std::string::npos) << c.file << ": " << n.info;
    // Every sample the input's moofs declare is addressed (02: plus the moov's samples).
    if (std::string (c.file).find ("/02_") == std::string::npos)
      EXPECT_EQ (n.samples, DeclaredSamples (data)) << c.file;
    else
      EXPECT_GT (n.samples, DeclaredSamples (data)) << c.file;
  }
}

TEST (Normalize, TfxdGivesTheTfdt)
{
  std::vector<uint8_t> data =
      ReadFixture ("realworld/22_ffmpeg-lavf60_ismv-smooth_h264-aac_tfxd-uuid_trun-v1-neg.mp4");
  std::vector<Segment> segs = ReadAll (data);
  // Tracks alternate, one traf per moof; each track's tfdt (from tfxd) continues its own end.
  std::map<uint32_t, uint64_t> end;
  int checked = 0;
  for (const Segment &g : segs) {
    if (g.kind != Segment::kFragment)
      continue;
    ASSERT_EQ (g.fragment.trafs.size (), 1u);
    const TrafTiming &t = g.fragment.trafs[0];
    EXPECT_NE (t.tfdt_offset, 0u);
    if (end.count (t.track_id)) {
      EXPECT_EQ (t.decode_time, end[t.track_id]) << "track " << t.track_id;
      checked++;
    }
    end[t.track_id] = t.decode_time + t.duration;
    EXPECT_FALSE (g.timestamp_jump);
  }
  EXPECT_GT (checked, 0);
}

TEST (Normalize, MissingTfdtIsTheTracksPreviousEnd)
{
  std::vector<uint8_t> data = ReadFixture ("every-frame.mp4");
  std::vector<Segment> ref = ReadAll (data);
  std::vector<uint8_t> stripped = StripTfdt (data);
  ASSERT_LT (stripped.size (), data.size ());
  Normalised n = CheckNormalised (stripped, "every-frame without tfdt");
  EXPECT_EQ (n.normalized, n.fragments);
  EXPECT_NE (n.info.find ("without tfdt"), std::string::npos) << n.info;
  std::vector<Segment> got = ReadAll (stripped);
  ASSERT_EQ (got.size (), ref.size ());
  for (size_t i = 0; i < got.size (); i++) {
    if (ref[i].kind != Segment::kFragment)
      continue;
    ASSERT_EQ (got[i].fragment.trafs.size (), ref[i].fragment.trafs.size ());
    for (size_t t = 0; t < ref[i].fragment.trafs.size (); t++) {
      const TrafTiming &g = got[i].fragment.trafs[t], &r = ref[i].fragment.trafs[t];
      const Track *track = ref[0].init.FindTrack (r.track_id);
      ASSERT_TRUE (track);
      if (track->is_video ()) {
        EXPECT_EQ (g.decode_time, r.decode_time) << "segment " << i << " traf " << t;
      } else {
        // ffmpeg guesses the last audio sample's duration of a fragment and corrects it with
        // the next tfdt; without tfdt only the durations are left: a few frames of drift.
        EXPECT_NEAR (double (g.decode_time) / track->timescale,
                     double (r.decode_time) / track->timescale, 0.25)
            << "segment " << i << " traf " << t;
      }
    }
    // The mdat is the same bytes.
    std::vector<TopBox> a = TopBoxes (ref[i].bytes), b = TopBoxes (got[i].bytes);
    EXPECT_EQ (0, memcmp (ref[i].bytes.data () + a.back ().offset,
                          got[i].bytes.data () + b.back ().offset, a.back ().size));
  }
}

TEST (Normalize, EveryBoxTheDataOffsetsSpanIsKept)
{
  // Unified Streaming TTML: styp sidx moof mdat mdat, one sample in each mdat.
  std::vector<uint8_t> data = ReadFixture ("realworld/20_usp_ttml-stpp_two-mdat-per-fragment.mp4");
  std::vector<Segment> segs = ReadAll (data);
  int fragments = 0;
  for (const Segment &g : segs) {
    ASSERT_NE (g.kind, Segment::kWarning) << g.message;
    if (g.kind != Segment::kFragment)
      continue;
    fragments++;
    Addressed a = CheckMseAddressing (g, segs[0].init, "ttml");
    EXPECT_EQ (a.mdats, 2);
    EXPECT_EQ (a.samples, 2u);
    std::vector<TopBox> in = TopBoxes (data);
    ASSERT_EQ (in[3].type, FourCC ("styp"));
    EXPECT_EQ (g.bytes.size (), data.size () - in[3].offset);  // styp to the end, all of it
  }
  EXPECT_EQ (fragments, 1);

  // A free box between moof and mdat, counted by the data offsets: kept, the fragment is the
  // input's bytes unchanged.
  std::vector<uint8_t> plain = ReadFixture ("empty-moov.mp4");
  std::vector<uint8_t> with_free = FreeBetweenMoofAndMdat (plain, 24);
  std::vector<Segment> ref = ReadAll (plain), got = ReadAll (with_free);
  ASSERT_EQ (got.size (), ref.size ());
  for (size_t i = 0; i < got.size (); i++) {
    if (got[i].kind != Segment::kFragment)
      continue;
    EXPECT_FALSE (got[i].normalized);
    EXPECT_EQ (got[i].bytes.size (), ref[i].bytes.size () + 24);
    CheckMseAddressing (got[i], got[0].init, "free between moof and mdat");
  }
}

TEST (Normalize, IncompleteDataIsDroppedWithAWarning)
{
  // The second mdat of the TTML fragment missing: a new styp comes instead.
  std::vector<uint8_t> data = ReadFixture ("realworld/20_usp_ttml-stpp_two-mdat-per-fragment.mp4");
  std::vector<TopBox> in = TopBoxes (data);
  ASSERT_EQ (in.back ().type, FourCC ("mdat"));
  std::vector<uint8_t> cut (data.begin (), data.begin () + long (in.back ().offset));
  ASSERT_EQ (in[3].type, FourCC ("styp"));
  cut.insert (cut.end (), data.begin () + long (in[3].offset), data.end ());  // styp... again
  std::vector<Segment> segs = ReadAll (cut);
  Summary s = Summarize (segs);
  EXPECT_EQ (s.fragments, 1);
  EXPECT_EQ (s.warnings, 1);
}

// ---------------------------------------------------------------------------------------------
// Timestamp discontinuities inside one init segment.

TEST (Discontinuity, TfdtJumpsForwardAndBackAreFlagged)
{
  std::vector<uint8_t> data = ReadFixture ("every-frame.mp4");
  size_t moofs = 0;
  for (const TopBox &b : TopBoxes (data))
    moofs += b.type == FourCC ("moof");
  ASSERT_GE (moofs, 25u);
  ShiftTfdt (&data, 10, moofs, 60.0);   // 60 s forward at moof 10
  ShiftTfdt (&data, 20, moofs, -30.0);  // then 30 s back at moof 20
  StreamReader r;
  std::vector<Segment> segs = r.Push (data.data (), data.size ());
  std::vector<size_t> jumps;
  size_t k = 0;
  for (const Segment &g : segs) {
    if (g.kind != Segment::kFragment)
      continue;
    EXPECT_EQ (g.discont, g.timestamp_jump) << k;
    if (g.timestamp_jump)
      jumps.push_back (k);
    k++;
  }
  EXPECT_EQ (jumps, (std::vector<size_t>{10, 20}));
  EXPECT_EQ (r.assembler ().stats ().discontinuities, 2u);
  EXPECT_EQ (r.assembler ().stats ().fragments, moofs);

  // Above the threshold only.
  StreamReader loose;
  loose.assembler ().set_discont_threshold_ns (61'000'000'000);
  for (const Segment &g : loose.Push (data.data (), data.size ()))
    EXPECT_FALSE (g.timestamp_jump);
}

TEST (Discontinuity, SmallJitterAndANewInitAreNotJumps)
{
  std::vector<uint8_t> data = ReadFixture ("every-frame.mp4");
  ShiftTfdt (&data, 10, 11, 0.5);  // half a second off, back the next fragment: within 1 s
  std::vector<Segment> segs = ReadAll (data);
  for (const Segment &g : segs)
    EXPECT_FALSE (g.timestamp_jump);
  // A new init segment starts new timelines: no jump across it.
  std::vector<uint8_t> a = ReadFixture ("every-frame.mp4");
  std::vector<Segment> two = ReadAll (Concat (a, a));
  for (const Segment &g : two)
    EXPECT_FALSE (g.timestamp_jump);
}

TEST (Discontinuity, A32BitTfdtThatWrapsGoesOnIn64Bits)
{
  // mp4mux: tfdt version 0, one traf per moof (the tracks alternate).
  std::vector<uint8_t> data = ReadFixture ("mp4mux-av.mp4");
  std::vector<Segment> ref = ReadAll (data);
  std::map<uint32_t, int64_t> shift = WrapTfdtAt (&data, 4);
  ASSERT_EQ (shift.size (), 2u);
  StreamReader r;
  std::vector<Segment> got = r.Push (data.data (), data.size ());
  ASSERT_EQ (got.size (), ref.size ());
  int normalized = 0;
  std::string info;
  for (size_t i = 0; i < got.size (); i++) {
    EXPECT_NE (got[i].kind, Segment::kWarning) << got[i].message;
    if (got[i].kind != Segment::kFragment)
      continue;
    EXPECT_FALSE (got[i].timestamp_jump) << i;
    EXPECT_FALSE (got[i].discont) << i;
    normalized += got[i].normalized;
    info += got[i].info;
    // Every time is the original one, shifted by the same amount per track: continuous.
    for (size_t t = 0; t < got[i].fragment.trafs.size (); t++) {
      const TrafTiming &g = got[i].fragment.trafs[t], &o = ref[i].fragment.trafs[t];
      EXPECT_EQ (int64_t (g.decode_time), int64_t (o.decode_time) - shift[o.track_id])
          << "segment " << i;
    }
    CheckMseAddressing (got[i], got[0].init, "wrapped " + std::to_string (i));
  }
  EXPECT_GT (normalized, 0);
  EXPECT_NE (info.find ("wrapped"), std::string::npos) << info;
  EXPECT_EQ (r.assembler ().stats ().discontinuities, 0u);
}

// The fragments of `got` against `ref` (the same stream before an edit): every track's
// decode times are ref's plus shift[track], no jump or discontinuity, nothing rewritten.
static void
CheckSameTimeline (const std::vector<Segment> &got, const std::vector<Segment> &ref,
                   std::map<uint32_t, int64_t> shift, const std::string &what)
{
  ASSERT_EQ (got.size (), ref.size ()) << what;
  for (size_t i = 0; i < got.size (); i++) {
    EXPECT_NE (got[i].kind, Segment::kWarning) << what << ": " << got[i].message;
    if (got[i].kind != Segment::kFragment)
      continue;
    EXPECT_FALSE (got[i].timestamp_jump) << what << ": segment " << i;
    EXPECT_FALSE (got[i].discont) << what << ": segment " << i;
    EXPECT_FALSE (got[i].normalized) << what << ": segment " << i << " " << got[i].info;
    ASSERT_EQ (got[i].fragment.trafs.size (), ref[i].fragment.trafs.size ());
    for (size_t t = 0; t < got[i].fragment.trafs.size (); t++) {
      const TrafTiming &g = got[i].fragment.trafs[t], &o = ref[i].fragment.trafs[t];
      EXPECT_EQ (int64_t (g.decode_time), int64_t (o.decode_time) + shift[o.track_id])
          << what << ": segment " << i;
    }
    CheckMseAddressing (got[i], got[0].init, what + " " + std::to_string (i));
  }
}

TEST (Discontinuity, TfdtVersion0To1WithoutAWrapIsOneTimeline)
{
  // mp4mux: tfdt version 0, one traf per moof (the tracks alternate).
  std::vector<uint8_t> data = ReadFixture ("mp4mux-av.mp4");
  std::vector<Segment> ref = ReadAll (data);
  size_t moofs = 0;
  for (const TopBox &b : TopBoxes (data))
    moofs += b.type == FourCC ("moof");
  ASSERT_GE (moofs, 7u);

  // 1. The same times, version 1 from moof 4 on.
  {
    StreamReader r;
    std::vector<uint8_t> v1 = TfdtVersion1From (data, 4);
    std::vector<Segment> got = r.Push (v1.data (), v1.size ());
    CheckSameTimeline (got, ref, {}, "v0 -> v1");
    EXPECT_EQ (r.assembler ().stats ().discontinuities, 0u);
  }
  // 2. The switch where the time no longer fits in 32 bits (as qtmux does): version 0 up to
  //    moof 4 (just below 2^32), version 1 from there (2^32 and on). Not a wrap: the times
  //    are taken as they are.
  {
    std::map<uint32_t, int64_t> shift;
    for (auto &[track, t] : TfdtsFrom (data, 4))
      shift[track] = (int64_t (1) << 32) - int64_t (t);
    ASSERT_EQ (shift.size (), 2u);
    StreamReader r;
    std::vector<uint8_t> v1 = TfdtVersion1From (data, 4, shift);
    std::vector<Segment> got = r.Push (v1.data (), v1.size ());
    CheckSameTimeline (got, ref, shift, "v0 below 2^32 -> v1 past it");
    EXPECT_EQ (r.assembler ().stats ().discontinuities, 0u);
  }
  // 3. Version 0 that wrapped at moof 2 (rewritten by us as version 1, past 2^32), then the
  //    packager's own version 1 with the full time from moof 5 on: one timeline.
  {
    std::vector<uint8_t> wrapped = data;
    std::map<uint32_t, int64_t> wrap = WrapTfdtAt (&wrapped, 2);  // tfdt' = tfdt - wrap
    // version 1 from moof 5 with 2^32 added; version 0 before it must not move: add 2^32 to
    // moofs >= 5 only, by converting first and shifting the version 1 boxes alone
    std::vector<uint8_t> v1 = TfdtVersion1From (wrapped, 5);
    std::vector<TopBox> boxes = TopBoxes (v1);
    size_t index = 0;
    for (const TopBox &b : boxes) {
      if (b.type != FourCC ("moof") || index++ < 5)
        continue;
      BoxIterator it (v1.data () + b.offset + 8, b.size - 8);
      while (it.Next ())
        if (it.type () == FourCC ("traf")) {
          BoxIterator tr (it.payload (), it.payload_size ());
          while (tr.Next ())
            if (tr.type () == FourCC ("tfdt")) {
              uint8_t *p = const_cast<uint8_t *> (tr.payload ());
              ASSERT_EQ (p[0], 1);
              uint64_t t = (uint64_t (LoadU32 (p + 4)) << 32) | LoadU32 (p + 8);
              ASSERT_LT (t, uint64_t (1) << 32) << "wrapped before moof 5";
              StoreU64 (p + 4, t + (uint64_t (1) << 32));
            }
        }
    }
    StreamReader r;
    std::vector<Segment> got = r.Push (v1.data (), v1.size ());
    std::map<uint32_t, int64_t> shift;
    for (auto &[track, w] : wrap)
      shift[track] = -w;
    ASSERT_EQ (got.size (), ref.size ());
    for (size_t i = 0; i < got.size (); i++) {
      EXPECT_NE (got[i].kind, Segment::kWarning) << got[i].message;
      if (got[i].kind != Segment::kFragment)
        continue;
      EXPECT_FALSE (got[i].timestamp_jump) << i;
      EXPECT_FALSE (got[i].discont) << i;
      for (size_t t = 0; t < got[i].fragment.trafs.size (); t++) {
        const TrafTiming &g = got[i].fragment.trafs[t], &o = ref[i].fragment.trafs[t];
        EXPECT_EQ (int64_t (g.decode_time), int64_t (o.decode_time) + shift[o.track_id])
            << "wrapped then v1: segment " << i;
      }
      CheckMseAddressing (got[i], got[0].init, "wrapped then v1 " + std::to_string (i));
    }
    EXPECT_EQ (r.assembler ().stats ().discontinuities, 0u);
  }
}

// A CENC-like moof (ISO/IEC 23001-7): one traf, a senc with two 8-byte IVs, a saio (v0,
// aux_info_type 'cenc') pointing at them and a saio (v1) pointing into the mdat; its tfhd
// flags `tfhd_flags` (base_data_offset = `moof_position` if flag 1), no tfdt. Returns the moof
// and mdat; *senc_at / *mdat_at: where the saio offsets point, from the moof start.
static std::vector<uint8_t>
CencLikeFragment (uint32_t tfhd_flags, uint64_t moof_position, size_t *senc_at, size_t *mdat_at,
                  int64_t saio_into_moof_shift = 0)
{
  Writer w;
  size_t moof = w.BeginBox (FourCC ("moof"));
  size_t mfhd = w.BeginFullBox (FourCC ("mfhd"), 0, 0);
  w.U32 (1);
  w.EndBox (mfhd);
  size_t traf = w.BeginBox (FourCC ("traf"));
  size_t tfhd = w.BeginFullBox (FourCC ("tfhd"), 0, tfhd_flags);
  w.U32 (1);
  if (tfhd_flags & 1)
    w.U64 (moof_position);
  w.EndBox (tfhd);
  size_t trun = w.BeginFullBox (FourCC ("trun"), 0, 0x000201);  // data_offset, sample sizes
  w.U32 (2);
  size_t data_offset = w.size ();
  w.U32 (0);
  w.U32 (10);
  w.U32 (20);
  w.EndBox (trun);
  size_t senc = w.BeginFullBox (FourCC ("senc"), 0, 0);
  w.U32 (2);
  *senc_at = w.size ();
  for (uint8_t i = 0; i < 16; i++)
    w.U8 (0xa0 + i);
  w.EndBox (senc);
  size_t saio0 = w.BeginFullBox (FourCC ("saio"), 0, 1);
  w.U32 (FourCC ("cenc"));
  w.U32 (0);
  w.U32 (1);
  size_t field0 = w.size ();
  w.U32 (0);
  w.EndBox (saio0);
  size_t saio1 = w.BeginFullBox (FourCC ("saio"), 1, 0);
  w.U32 (1);
  size_t field1 = w.size ();
  w.U64 (0);
  w.EndBox (saio1);
  w.EndBox (traf);
  w.EndBox (moof);
  size_t moof_size = w.size ();
  *mdat_at = moof_size + 8 + 5;
  w.PatchU32 (data_offset, uint32_t (moof_size + 8));
  w.PatchU32 (field0, uint32_t (int64_t (*senc_at) + saio_into_moof_shift));
  StoreU64 (w.bytes ().data () + field1, *mdat_at);
  size_t mdat = w.BeginBox (FourCC ("mdat"));
  for (uint8_t i = 0; i < 30; i++)
    w.U8 (i);
  w.EndBox (mdat);
  return w.bytes ();
}

// The saio offsets of the first traf of a moof.
static std::vector<uint64_t>
SaioOffsets (const uint8_t *moof, size_t size)
{
  std::vector<uint64_t> out;
  BoxIterator it (moof + 8, size - 8);
  while (it.Next ())
    if (it.type () == FourCC ("traf")) {
      BoxIterator tr (it.payload (), it.payload_size ());
      while (tr.Next ()) {
        if (tr.type () != FourCC ("saio"))
          continue;
        Reader r (tr.payload (), tr.payload_size ());
        uint8_t version = r.U8 ();
        uint32_t flags = r.U24 ();
        if (flags & 1)
          r.Skip (8);
        uint32_t n = r.U32 ();
        for (uint32_t i = 0; i < n; i++)
          out.push_back (version == 1 ? r.U64 () : r.U32 ());
      }
      break;
    }
  return out;
}

TEST (Normalize, SaioOffsetsFollowTheAuxiliaryInformation)
{
  // ISO/IEC 14496-12 §8.7.9.3: a saio in a traf counts from the base its tfhd sets. The
  // rewrite drops base_data_offset (8 bytes) and adds a tfdt (20): the senc moves inside the
  // moof, the mdat after it; each saio offset must still point at the same bytes.
  const uint64_t kMoofPosition = 1000;
  for (uint32_t flags : {uint32_t (0x000001), uint32_t (0x020000)}) {
    SCOPED_TRACE (flags == 1 ? "absolute base_data_offset" : "default-base-is-moof, no tfdt");
    size_t senc_at, mdat_at;
    std::vector<uint8_t> in = CencLikeFragment (flags, kMoofPosition, &senc_at, &mdat_at);
    size_t moof_size = LoadU32 (in.data ());
    MoofLayout layout;
    std::string error;
    ASSERT_TRUE (ParseMoofLayout (in.data (), moof_size, InitInfo (), &layout, &error)) << error;
    ASSERT_NE (layout.reasons, 0u);
    DataPlacement placement;
    ASSERT_TRUE (PlaceMoofData (layout, moof_size, kMoofPosition, moof_size + 8, in.size (),
                                &placement, &error)) << error;
    std::vector<uint8_t> moof = RewriteMoof (in.data (), moof_size, layout, placement, &error);
    ASSERT_FALSE (moof.empty ()) << error;
    ASSERT_NE (moof.size (), moof_size);  // bytes moved
    std::vector<uint8_t> out = moof;
    out.insert (out.end (), in.begin () + long (moof_size), in.end ());
    std::vector<uint64_t> offsets = SaioOffsets (moof.data (), moof.size ());
    ASSERT_EQ (offsets.size (), 2u);
    // the new base is the moof (default-base-is-moof): the same bytes at the new offsets
    ASSERT_LE (offsets[0] + 16, out.size ());
    EXPECT_EQ (0, memcmp (out.data () + offsets[0], in.data () + senc_at, 16)) << offsets[0];
    EXPECT_EQ (offsets[1], mdat_at + moof.size () - moof_size);
    EXPECT_EQ (0, memcmp (out.data () + offsets[1], in.data () + mdat_at, 8));
    // the rest of the output is a well-formed, normalised fragment
    MoofLayout again;
    ASSERT_TRUE (ParseMoofLayout (moof.data (), moof.size (), InitInfo (), &again, &error)) << error;
    EXPECT_EQ (again.reasons, 0u);
  }
  // A saio offset into a box the rewrite changes (here the tfhd): a clear error, no
  // fragment with offsets that point at the wrong bytes.
  size_t senc_at, mdat_at;
  std::vector<uint8_t> in = CencLikeFragment (1, kMoofPosition, &senc_at, &mdat_at,
                                              -int64_t (senc_at) + 20);
  size_t moof_size = LoadU32 (in.data ());
  MoofLayout layout;
  DataPlacement placement;
  std::string error;
  ASSERT_TRUE (ParseMoofLayout (in.data (), moof_size, InitInfo (), &layout, &error)) << error;
  ASSERT_TRUE (PlaceMoofData (layout, moof_size, kMoofPosition, moof_size + 8, in.size (),
                              &placement, &error)) << error;
  EXPECT_TRUE (RewriteMoof (in.data (), moof_size, layout, placement, &error).empty ());
  EXPECT_NE (error.find ("saio"), std::string::npos) << error;
}

TEST (Normalize, DataSpanIsBounded)
{
  // The TTML fragment's data spans both mdats (2,849 bytes after the moof): with a bound
  // below that, the fragment is dropped with a warning instead of held.
  std::vector<uint8_t> data = ReadFixture ("realworld/20_usp_ttml-stpp_two-mdat-per-fragment.mp4");
  StreamReader r;
  r.assembler ().set_max_data_span (2000);
  Summary s = Summarize (r.Push (data.data (), data.size ()));
  EXPECT_EQ (s.fragments, 0);
  EXPECT_GE (s.warnings, 1);
  // A moof whose base_data_offset is out of any range: dropped, no crash.
  std::vector<uint8_t> bad = ReadFixture ("absolute-base.mp4");
  for (const TopBox &b : TopBoxes (bad)) {
    if (b.type != FourCC ("moof"))
      continue;
    BoxIterator it (bad.data () + b.offset + 8, b.size - 8);
    while (it.Next ())
      if (it.type () == FourCC ("traf")) {
        BoxIterator tr (it.payload (), it.payload_size ());
        while (tr.Next ())
          if (tr.type () == FourCC ("tfhd"))
            StoreU64 (const_cast<uint8_t *> (tr.payload ()) + 8, 0xfffffffffffffff0ull);
      }
  }
  Summary b = Summarize (ReadAll (bad));
  EXPECT_EQ (b.fragments, 0);
  EXPECT_EQ (b.warnings, 2);
  EXPECT_EQ (b.errors, 0);
}
