// Unit tests of the RFC 6455 frame codec (gst/server/ws_frame.h): the examples of RFC 6455
// section 5.7, every length encoding, decoding split at every offset, the checks and their
// close codes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broadcaster.h"
#include "ws_frame.h"

using namespace fmp4ws::server::ws;
using Bytes = std::vector<uint8_t>;

namespace {

const uint8_t kMask[4] = {0x37, 0xfa, 0x21, 0x3d};  // the RFC's examples' mask

// RFC 6455 5.7.
const Bytes kHelloUnmasked = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
const Bytes kHelloMasked = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
const Bytes kHelFragment = {0x01, 0x03, 0x48, 0x65, 0x6c};  // unmasked "Hel", not final
const Bytes kLoFragment = {0x80, 0x02, 0x6c, 0x6f};         // unmasked "lo", final
const Bytes kPingUnmasked = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
const Bytes kPongMasked = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};

Bytes
Frame (uint8_t op, const std::string &payload, bool fin = true)
{
  return EncodeClientFrame (op, (const uint8_t *) payload.data (), payload.size (), kMask, fin);
}

Bytes
Cat (std::initializer_list<Bytes> parts)
{
  Bytes out;
  for (const Bytes &p : parts)
    out.insert (out.end (), p.begin (), p.end ());
  return out;
}

// What a decoder reports, as text, for comparing whole runs.
struct Decoded
{
  std::vector<std::string> events;
  Decoder::Result end = Decoder::kNeedMore;
  Status status;
};

std::string
Describe (const Event &e)
{
  std::string payload ((const char *) e.data, e.size);
  switch (e.kind) {
    case Event::kText:
      return "text:" + payload;
    case Event::kBinary:
      return "binary:" + std::to_string (e.size);
    case Event::kPing:
      return "ping:" + payload;
    case Event::kPong:
      return "pong:" + payload;
    case Event::kClose:
      return "close:" + std::to_string (e.close_code);
  }
  return "?";
}

// Feeds `chunks` one after the other, draining events after each.
Decoded
Decode (const std::vector<Bytes> &chunks, size_t max_message = 4096)
{
  Decoder d (max_message);
  Decoded run;
  for (const Bytes &c : chunks) {
    d.Feed (c.data (), c.size ());
    Event e;
    Decoder::Result r;
    while ((r = d.Next (&e)) == Decoder::kEvent)
      run.events.push_back (Describe (e));
    run.end = r;
    if (r == Decoder::kError || r == Decoder::kDone)
      break;
  }
  run.status = d.status ();
  return run;
}

Decoded
DecodeAll (const Bytes &b, size_t max_message = 4096)
{
  return Decode ({b}, max_message);
}

}  // namespace

// --- Server -> client headers ----------------------------------------------------------------

TEST (WsFrameEncode, RfcHelloUnmasked)
{
  Bytes b;
  AppendHeader (kOpText, 5, &b);
  b.insert (b.end (), {'H', 'e', 'l', 'l', 'o'});
  EXPECT_EQ (b, kHelloUnmasked);
  Bytes ping;
  AppendHeader (kOpPing, 5, &ping);
  ping.insert (ping.end (), {'H', 'e', 'l', 'l', 'o'});
  EXPECT_EQ (ping, kPingUnmasked);
}

TEST (WsFrameEncode, RfcFragments)
{
  Bytes a, b;
  AppendHeader (kOpText, 3, &a, /*fin=*/false);
  AppendHeader (kOpContinuation, 2, &b);
  EXPECT_EQ (a, Bytes (kHelFragment.begin (), kHelFragment.begin () + 2));
  EXPECT_EQ (b, Bytes (kLoFragment.begin (), kLoFragment.begin () + 2));
}

TEST (WsFrameEncode, RfcLengths)
{
  // 256 bytes binary: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000.
  uint8_t h[kMaxServerHeaderSize];
  ASSERT_EQ (EncodeHeader (kOpBinary, 256, h), 4u);
  EXPECT_EQ (Bytes (h, h + 4), (Bytes{0x82, 0x7e, 0x01, 0x00}));
  ASSERT_EQ (EncodeHeader (kOpBinary, 65536, h), 10u);
  EXPECT_EQ (Bytes (h, h + 10), (Bytes{0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ (EncodeHeader (kOpBinary, 125, h), 2u);
  EXPECT_EQ (EncodeHeader (kOpBinary, 126, h), 4u);
  EXPECT_EQ (EncodeHeader (kOpBinary, 65535, h), 4u);
  ASSERT_EQ (EncodeHeader (kOpBinary, uint64_t (1) << 40, h), 10u);
  EXPECT_EQ (Bytes (h, h + 10), (Bytes{0x82, 0x7f, 0, 0, 1, 0, 0, 0, 0, 0}));
}

// The broadcaster (core) makes the heads of queued messages; its headers must be the codec's.
TEST (WsFrameEncode, SameAsBroadcasterHeads)
{
  for (uint64_t len : {uint64_t (0), uint64_t (1), uint64_t (125), uint64_t (126),
                       uint64_t (127), uint64_t (65535), uint64_t (65536), uint64_t (1) << 32,
                       ~uint64_t (0) >> 1}) {
    for (uint8_t op : {kOpText, kOpBinary, kOpClose, kOpPing, kOpPong}) {
      Bytes ours, core;
      AppendHeader (op, len, &ours);
      fmp4ws::core::Broadcaster::FrameHeader (op, len, &core);
      EXPECT_EQ (ours, core) << "len " << len << " op " << int (op);
    }
  }
}

TEST (WsFrameEncode, ClientFrameIsRfcMasked)
{
  EXPECT_EQ (Frame (kOpText, "Hello"), kHelloMasked);
  EXPECT_EQ (Frame (kOpPong, "Hello"), kPongMasked);
}

// --- Client -> server decoding ------------------------------------------------------------

TEST (WsFrameDecode, RfcMaskedHello)
{
  Decoded r = DecodeAll (kHelloMasked);
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:Hello"}));
  EXPECT_EQ (r.end, Decoder::kNeedMore);
  EXPECT_TRUE (r.status.ok ());
}

TEST (WsFrameDecode, RfcUnmaskedIsAProtocolError)
{
  for (const Bytes &b : {kHelloUnmasked, kHelFragment, kPingUnmasked}) {
    Decoded r = DecodeAll (b);
    EXPECT_TRUE (r.events.empty ());
    EXPECT_EQ (r.end, Decoder::kError);
    EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  }
}

TEST (WsFrameDecode, RfcFragmentedMasked)
{
  Decoded r = DecodeAll (Cat ({Frame (kOpText, "Hel", false), Frame (kOpContinuation, "lo")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:Hello"}));
}

TEST (WsFrameDecode, RfcPingPong)
{
  Decoded r = DecodeAll (Cat ({Frame (kOpPing, "Hello"), kPongMasked}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"ping:Hello", "pong:Hello"}));
}

TEST (WsFrameDecode, ControlFramesBetweenFragments)
{
  Decoded r = DecodeAll (Cat ({Frame (kOpText, "Hel", false), Frame (kOpPing, "x"),
                           Frame (kOpContinuation, "lo")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"ping:x", "text:Hello"}));
}

TEST (WsFrameDecode, RfcLengths256And64K)
{
  std::string s256 (256, 'a'), s64k (65536, 'b');
  Decoded r = DecodeAll (Frame (kOpBinary, s256));
  EXPECT_EQ (r.events, (std::vector<std::string>{"binary:256"}));
  r = DecodeAll (Frame (kOpText, s256));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:" + s256}));
  // 64 KiB: the 64-bit length form.
  Bytes big = Frame (kOpBinary, s64k);
  ASSERT_EQ (big[1], 0xff);
  r = DecodeAll (big, 1 << 20);
  EXPECT_EQ (r.events, (std::vector<std::string>{"binary:65536"}));
  r = DecodeAll (Frame (kOpText, s64k), 1 << 20);
  ASSERT_EQ (r.events.size (), 1u);
  EXPECT_EQ (r.events[0], "text:" + s64k);
}

// Any chunking gives the same events: split in two at every offset, and byte by byte.
TEST (WsFrameDecode, SplitAtEveryOffset)
{
  std::string s300 (300, 'z');
  Bytes stream = Cat ({Frame (kOpText, "{\"type\":\"report\"}"), Frame (kOpText, "Hel", false),
                       Frame (kOpPing, "p"), Frame (kOpContinuation, "lo"),
                       Frame (kOpBinary, s300), Frame (kOpText, s300), kPongMasked,
                       Frame (kOpClose, std::string ("\x03\xe9", 2)),
                       Frame (kOpText, "after close")});
  const std::vector<std::string> want = {"text:{\"type\":\"report\"}", "ping:p", "text:Hello",
                                         "binary:300", "text:" + s300, "pong:Hello",
                                         "close:1001"};
  Decoded whole = DecodeAll (stream);
  EXPECT_EQ (whole.events, want);
  EXPECT_EQ (whole.end, Decoder::kDone);
  for (size_t cut = 0; cut <= stream.size (); cut++) {
    Decoded r = Decode ({Bytes (stream.begin (), stream.begin () + long (cut)),
                     Bytes (stream.begin () + long (cut), stream.end ())});
    ASSERT_EQ (r.events, want) << "split at " << cut;
    ASSERT_EQ (r.end, Decoder::kDone) << "split at " << cut;
  }
  std::vector<Bytes> bytes;
  for (uint8_t b : stream)
    bytes.push_back ({b});
  Decoded r = Decode (bytes);
  EXPECT_EQ (r.events, want);
}

TEST (WsFrameDecode, OversizedMessageIsRefusedOnItsHeader)
{
  // Only the header of a 64 KiB frame: refused before its payload arrives.
  Bytes big = Frame (kOpBinary, std::string (65536, 'x'));
  Decoded r = DecodeAll (Bytes (big.begin (), big.begin () + 14), 4096);
  EXPECT_EQ (r.end, Decoder::kError);
  EXPECT_EQ (r.status.close_code, kCloseTooBig);
  EXPECT_STREQ (r.status.reason, "message too big");
  // Exactly the limit is fine; one more byte is not.
  r = DecodeAll (Frame (kOpText, std::string (4096, 'a')), 4096);
  EXPECT_EQ (r.events.size (), 1u);
  r = DecodeAll (Frame (kOpText, std::string (4097, 'a')), 4096);
  EXPECT_EQ (r.status.close_code, kCloseTooBig);
}

TEST (WsFrameDecode, OversizedFragmentedMessage)
{
  std::string half (3000, 'a');
  Decoded r = DecodeAll (Cat ({Frame (kOpText, half, false), Frame (kOpContinuation, half)}), 4096);
  EXPECT_TRUE (r.events.empty ());
  EXPECT_EQ (r.status.close_code, kCloseTooBig);
}

TEST (WsFrameDecode, ControlFrameRules)
{
  // Control frames: at most 125 bytes, never fragmented.
  Decoded r = DecodeAll (Frame (kOpPing, std::string (126, 'p')));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  r = DecodeAll (Frame (kOpPing, "p", /*fin=*/false));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  r = DecodeAll (Frame (kOpClose, "", /*fin=*/false));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  r = DecodeAll (Frame (kOpPing, std::string (125, 'p')));
  EXPECT_EQ (r.events.size (), 1u);
}

TEST (WsFrameDecode, ReservedOpcodes)
{
  for (uint8_t op : {0x3, 0x4, 0x7, 0xB, 0xF}) {
    Decoded r = DecodeAll (Frame (op, "x"));
    EXPECT_EQ (r.status.close_code, kCloseProtocolError) << int (op);
    EXPECT_STREQ (r.status.reason, "protocol error: bad frame");
  }
}

// Close codes a peer may send (RFC 6455 7.4.1/7.4.2 and the IANA registry) are echoed; the
// others fail the connection with 1002 and are not heard as a close.
TEST (WsFrameDecode, CloseCodes)
{
  auto code_of = [] (const std::string &payload) {
    Decoded r = DecodeAll (Frame (kOpClose, payload));
    EXPECT_EQ (r.end, Decoder::kDone);
    return r.events.empty () ? std::string () : r.events.back ();
  };
  EXPECT_EQ (code_of (""), "close:1000");
  EXPECT_EQ (code_of (std::string ("\x03\xe9", 2)), "close:1001");
  EXPECT_EQ (code_of (std::string ("\x0f\xa0", 2) + "app"), "close:4000");
  EXPECT_EQ (code_of (std::string ("\x03\xf4", 2)), "close:1012");  // IANA: service restart
}

TEST (WsFrameDecode, InvalidCloseCodesAre1002)
{
  for (uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}) {
    std::string payload = {char (code >> 8), char (code & 0xff)};
    Decoded r = DecodeAll (Frame (kOpClose, payload));
    EXPECT_TRUE (r.events.empty ()) << code;
    EXPECT_EQ (r.end, Decoder::kError) << code;
    EXPECT_EQ (r.status.close_code, kCloseProtocolError) << code;
    EXPECT_STREQ (r.status.reason, "protocol error: invalid close code");
  }
  // Every code, against the ranges written out.
  for (uint32_t code = 0; code <= 0xffff; code++) {
    bool valid = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                 (code >= 3000 && code <= 4999);
    ASSERT_EQ (IsValidCloseCode (uint16_t (code)), valid) << code;
    std::string payload = {char (code >> 8), char (code & 0xff)};
    ASSERT_EQ (CheckClosePayload ((const uint8_t *) payload.data (), 2).ok (), valid) << code;
  }
}

TEST (WsFrameDecode, OneByteCloseIs1002)
{
  Decoded r = DecodeAll (Frame (kOpClose, "\x03"));
  EXPECT_TRUE (r.events.empty ());
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  EXPECT_STREQ (r.status.reason, "protocol error: 1-byte close payload");
  // Refused on its header alone.
  Bytes f = Frame (kOpClose, "\x03");
  r = DecodeAll (Bytes (f.begin (), f.begin () + 2));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
}

TEST (WsFrameDecode, CloseReasonMustBeUtf8)
{
  Decoded r = DecodeAll (Frame (kOpClose, std::string ("\x03\xe8", 2) + "bye \xff"));
  EXPECT_TRUE (r.events.empty ());
  EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
  EXPECT_STREQ (r.status.reason, "invalid UTF-8 in a close reason");
  // Cut in the middle of a character.
  r = DecodeAll (Frame (kOpClose, std::string ("\x03\xe8", 2) + "\xe2\x82"));
  EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
  r = DecodeAll (Frame (kOpClose, std::string ("\x03\xe8", 2) + "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
  EXPECT_EQ (r.events, (std::vector<std::string>{"close:1000"}));
  EXPECT_TRUE (r.status.ok ());
}

TEST (WsFrameDecode, ReservedBitsAre1002)
{
  for (uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    for (const Bytes &plain : {Frame (kOpText, "x"), Frame (kOpBinary, "x"), Frame (kOpPing, "x"),
                               Frame (kOpClose, "")}) {
      Bytes f = plain;
      f[0] |= rsv;
      Decoded r = DecodeAll (f);
      EXPECT_TRUE (r.events.empty ());
      EXPECT_EQ (r.end, Decoder::kError);
      EXPECT_EQ (r.status.close_code, kCloseProtocolError) << int (rsv);
      EXPECT_STREQ (r.status.reason, "protocol error: reserved bits set");
    }
    // On a continuation frame too.
    Bytes cont = Frame (kOpContinuation, "lo");
    cont[0] |= rsv;
    Decoded r = DecodeAll (Cat ({Frame (kOpText, "Hel", false), cont}));
    EXPECT_TRUE (r.events.empty ());
    EXPECT_STREQ (r.status.reason, "protocol error: reserved bits set");
  }
}

TEST (WsFrameDecode, ContinuationWithoutStartIs1002)
{
  for (bool fin : {true, false}) {
    Decoded r = DecodeAll (Frame (kOpContinuation, "lo", fin));
    EXPECT_TRUE (r.events.empty ());
    EXPECT_EQ (r.status.close_code, kCloseProtocolError);
    EXPECT_STREQ (r.status.reason, "protocol error: continuation frame without a message");
  }
  // After a whole message, nothing is open any more.
  Decoded r = DecodeAll (Cat ({Frame (kOpText, "Hel", false), Frame (kOpContinuation, "lo"),
                               Frame (kOpContinuation, "again")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:Hello"}));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
  r = DecodeAll (Cat ({Frame (kOpBinary, "ab"), Frame (kOpContinuation, "cd")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"binary:2"}));
  EXPECT_EQ (r.status.close_code, kCloseProtocolError);
}

TEST (WsFrameDecode, NewMessageInsideFragmentedOneIs1002)
{
  for (uint8_t first : {kOpText, kOpBinary}) {
    for (uint8_t second : {kOpText, kOpBinary}) {
      for (bool fin : {true, false}) {
        Decoded r = DecodeAll (Cat ({Frame (first, "ab", false), Frame (kOpPing, "p"),
                                     Frame (second, "cd", fin)}));
        EXPECT_EQ (r.events, (std::vector<std::string>{"ping:p"}));
        EXPECT_EQ (r.status.close_code, kCloseProtocolError);
        EXPECT_STREQ (r.status.reason, "protocol error: new message inside a fragmented one");
      }
    }
  }
}

TEST (WsFrameDecode, InvalidUtf8TextIs1007)
{
  for (const std::string &bad :
       {std::string ("\xff"), std::string ("ok\x80"), std::string ("\xc0\xaf"),  // overlong '/'
        std::string ("\xe0\x80\xaf"), std::string ("\xed\xa0\x80"),               // surrogate
        std::string ("\xf4\x90\x80\x80"),  // above U+10FFFF
        std::string ("\xe2\x82"),           // cut at the end
        std::string ("a\xf5\x80\x80\x80")}) {
    Decoded r = DecodeAll (Frame (kOpText, bad));
    EXPECT_TRUE (r.events.empty ());
    EXPECT_EQ (r.end, Decoder::kError);
    EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
    EXPECT_STREQ (r.status.reason, "invalid UTF-8 in a text message");
  }
  // Binary messages are not text.
  Decoded r = DecodeAll (Frame (kOpBinary, "\xff\xfe"));
  EXPECT_EQ (r.events, (std::vector<std::string>{"binary:2"}));
  // U+0000 is UTF-8.
  r = DecodeAll (Frame (kOpText, std::string ("a\0b", 3)));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:" + std::string ("a\0b", 3)}));
}

TEST (WsFrameDecode, FragmentedUtf8)
{
  // A character split between fragments is fine.
  Decoded r = DecodeAll (Cat ({Frame (kOpText, "\xe2", false), Frame (kOpContinuation, "\x82", false),
                               Frame (kOpContinuation, "\xac!")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:\xe2\x82\xac!"}));
  // A bad first fragment fails at once, before the final one arrives.
  r = DecodeAll (Frame (kOpText, "ab\xff", false));
  EXPECT_EQ (r.end, Decoder::kError);
  EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
  // The whole message ends in the middle of a character.
  r = DecodeAll (Cat ({Frame (kOpText, "ab\xe2", false), Frame (kOpContinuation, "\x82")}));
  EXPECT_TRUE (r.events.empty ());
  EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
  // Each fragment alone would be fine as a start; joined they are not (overlong).
  r = DecodeAll (Cat ({Frame (kOpText, "\xe0", false), Frame (kOpContinuation, "\x80\x80")}));
  EXPECT_EQ (r.status.close_code, kCloseInvalidPayload);
  // The state starts afresh with each message.
  r = DecodeAll (Cat ({Frame (kOpText, "\xc3\xa9"), Frame (kOpText, "\xc3", false),
                       Frame (kOpContinuation, "\xa9")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"text:\xc3\xa9", "text:\xc3\xa9"}));
}

// The new checks give the same events and the same code, however the bytes arrive: whole,
// split in two at every offset, byte by byte.
TEST (WsFrameDecode, FailuresSplitAtEveryOffset)
{
  Bytes rsv = Frame (kOpBinary, "x");
  rsv[0] |= 0x40;
  const std::string ok_then = "{\"type\":\"pause\"}";
  struct Case
  {
    const char *name;
    Bytes stream;
    uint16_t code;
  } cases[] = {
      {"rsv", Cat ({Frame (kOpText, ok_then), rsv}), kCloseProtocolError},
      {"continuation first", Cat ({Frame (kOpText, ok_then), Frame (kOpContinuation, "x")}),
       kCloseProtocolError},
      {"new message inside", Cat ({Frame (kOpText, ok_then), Frame (kOpText, "a", false),
                                   Frame (kOpBinary, "b")}),
       kCloseProtocolError},
      {"bad utf-8", Cat ({Frame (kOpText, ok_then), Frame (kOpText, "\xce\xba\xe1", false),
                          Frame (kOpContinuation, "\xbd\xb9\xed\xa0\x80")}),
       kCloseInvalidPayload},
      {"close 999", Cat ({Frame (kOpText, ok_then), Frame (kOpClose, "\x03\xe7")}),
       kCloseProtocolError},
      {"close 1004", Cat ({Frame (kOpText, ok_then), Frame (kOpClose, "\x03\xec")}),
       kCloseProtocolError},
      {"close 1-byte", Cat ({Frame (kOpText, ok_then), Frame (kOpClose, "\x03")}),
       kCloseProtocolError},
      {"close reason", Cat ({Frame (kOpText, ok_then), Frame (kOpClose, "\x03\xe8\xc0\x80")}),
       kCloseInvalidPayload},
      {"too big", Cat ({Frame (kOpText, ok_then), Frame (kOpText, "a", false),
                        Frame (kOpContinuation, std::string (100, 'b'))}),
       kCloseTooBig},
  };
  const std::vector<std::string> want = {"text:" + ok_then};
  for (const Case &c : cases) {
    Decoded whole = DecodeAll (c.stream, 64);
    EXPECT_EQ (whole.events, want) << c.name;
    EXPECT_EQ (whole.end, Decoder::kError) << c.name;
    EXPECT_EQ (whole.status.close_code, c.code) << c.name;
    for (size_t cut = 0; cut <= c.stream.size (); cut++) {
      Decoded r = Decode ({Bytes (c.stream.begin (), c.stream.begin () + long (cut)),
                           Bytes (c.stream.begin () + long (cut), c.stream.end ())},
                          64);
      ASSERT_EQ (r.events, want) << c.name << " split at " << cut;
      ASSERT_EQ (r.end, Decoder::kError) << c.name << " split at " << cut;
      ASSERT_EQ (r.status.close_code, c.code) << c.name << " split at " << cut;
    }
    std::vector<Bytes> bytes;
    for (uint8_t b : c.stream)
      bytes.push_back ({b});
    Decoded r = Decode (bytes, 64);
    EXPECT_EQ (r.events, want) << c.name;
    EXPECT_EQ (r.status.close_code, c.code) << c.name;
  }
}

TEST (WsFrameDecode, NothingAfterCloseOrError)
{
  Decoder d;
  Bytes b = Cat ({Frame (kOpClose, ""), Frame (kOpText, "late")});
  d.Feed (b.data (), b.size ());
  Event e;
  ASSERT_EQ (d.Next (&e), Decoder::kEvent);
  EXPECT_EQ (e.kind, Event::kClose);
  EXPECT_EQ (d.Next (&e), Decoder::kDone);
  d.Feed (b.data (), b.size ());
  EXPECT_EQ (d.Next (&e), Decoder::kDone);
  EXPECT_TRUE (d.finished ());

  Decoder bad;
  bad.Feed (kHelloUnmasked.data (), kHelloUnmasked.size ());
  EXPECT_EQ (bad.Next (&e), Decoder::kError);
  bad.Feed (kHelloMasked.data (), kHelloMasked.size ());
  EXPECT_EQ (bad.Next (&e), Decoder::kError);
  EXPECT_EQ (bad.buffered (), 0u);
}

// Binary messages may be fragmented like text ones (RFC 6455 5.4): the frames are joined.
// (Before issue 12 a binary first frame started nothing and its continuation frames were
// heard as text.)
TEST (WsFrameDecode, BinaryFragments)
{
  Decoded r = DecodeAll (Cat ({Frame (kOpBinary, "ab", false), Frame (kOpPing, "p"),
                               Frame (kOpContinuation, "cd", false),
                               Frame (kOpContinuation, "\xff")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"ping:p", "binary:5"}));
  EXPECT_TRUE (r.status.ok ());
  // Then a text message as usual.
  r = DecodeAll (Cat ({Frame (kOpBinary, "ab", false), Frame (kOpContinuation, "cd"),
                       Frame (kOpText, "ef")}));
  EXPECT_EQ (r.events, (std::vector<std::string>{"binary:4", "text:ef"}));
}

TEST (WsFrameDecode, PartialHeaderNeedsMore)
{
  Bytes b = Frame (kOpText, std::string (300, 'q'));  // 16-bit length
  for (size_t n = 0; n < b.size (); n++) {
    Decoded r = DecodeAll (Bytes (b.begin (), b.begin () + long (n)));
    EXPECT_TRUE (r.events.empty ());
    EXPECT_EQ (r.end, Decoder::kNeedMore) << n;
  }
}

// --- UTF-8 validation ----------------------------------------------------------------------

namespace {

// A reference written differently from Utf8Validator: decode each sequence by its lead
// byte's bit pattern, then refuse overlong forms, surrogates and code points above U+10FFFF.
bool
ReferenceUtf8 (const uint8_t *p, size_t n)
{
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    size_t len;
    uint32_t cp, min;
    if ((b & 0x80) == 0) {
      len = 1, cp = b, min = 0;
    } else if ((b & 0xe0) == 0xc0) {
      len = 2, cp = b & 0x1f, min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
      len = 3, cp = b & 0x0f, min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
      len = 4, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

bool
Valid (const uint8_t *p, size_t n)
{
  Utf8Validator v;
  return v.Feed (p, n) && v.complete ();
}

std::string
Encode (uint32_t cp)
{
  std::string s;
  if (cp < 0x80) {
    s += char (cp);
  } else if (cp < 0x800) {
    s += char (0xc0 | (cp >> 6));
    s += char (0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    s += char (0xe0 | (cp >> 12));
    s += char (0x80 | ((cp >> 6) & 0x3f));
    s += char (0x80 | (cp & 0x3f));
  } else {
    s += char (0xf0 | (cp >> 18));
    s += char (0x80 | ((cp >> 12) & 0x3f));
    s += char (0x80 | ((cp >> 6) & 0x3f));
    s += char (0x80 | (cp & 0x3f));
  }
  return s;
}

}  // namespace

// Every sequence of 1, 2 and 3 bytes, and 4-byte ones around every boundary, against the
// reference; every scalar value encoded is valid, every surrogate is not.
TEST (Utf8Validator, AgreesWithReference)
{
  uint8_t b[4];
  for (uint32_t n = 0; n < (1u << 24); n++) {
    b[0] = uint8_t (n >> 16), b[1] = uint8_t (n >> 8), b[2] = uint8_t (n);
    if (n < 256) {
      ASSERT_EQ (Valid (b + 2, 1), ReferenceUtf8 (b + 2, 1)) << n;
    }
    if (n < 65536) {
      ASSERT_EQ (Valid (b + 1, 2), ReferenceUtf8 (b + 1, 2)) << n;
    }
    ASSERT_EQ (Valid (b, 3), ReferenceUtf8 (b, 3)) << n;
  }
  const uint8_t edges[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xff};
  for (uint32_t lead = 0xe0; lead <= 0xff; lead++)
    for (uint32_t second = 0; second < 256; second++)
      for (uint8_t third : edges)
        for (uint8_t fourth : edges) {
          b[0] = uint8_t (lead), b[1] = uint8_t (second), b[2] = third, b[3] = fourth;
          ASSERT_EQ (Valid (b, 4), ReferenceUtf8 (b, 4))
              << std::hex << lead << " " << second << " " << int (third) << " " << int (fourth);
        }
  for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
    std::string s = Encode (cp);
    bool surrogate = cp >= 0xd800 && cp <= 0xdfff;
    ASSERT_EQ (Valid ((const uint8_t *) s.data (), s.size ()), !surrogate) << cp;
  }
  std::string above = Encode (0x110000);
  EXPECT_FALSE (Valid ((const uint8_t *) above.data (), above.size ()));
}

// Fed in two pieces cut anywhere, the answer is the same; a piece may end inside a character.
TEST (Utf8Validator, Incremental)
{
  const std::string good = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z\xf4\x8f\xbf\xbf";
  const std::string bad = "a\xc3\xa9\xe2\x82\xac\xed\xa0\x80z";
  for (bool is_good : {true, false}) {
    const std::string &s = is_good ? good : bad;
    bool want = Valid ((const uint8_t *) s.data (), s.size ());
    EXPECT_EQ (want, is_good);
    for (size_t cut = 0; cut <= s.size (); cut++) {
      Utf8Validator v;
      bool ok = v.Feed ((const uint8_t *) s.data (), cut);
      ok = v.Feed ((const uint8_t *) s.data () + cut, s.size () - cut) && ok;
      EXPECT_EQ (ok && v.complete (), want) << cut;
    }
  }
  // Once wrong, wrong for good.
  Utf8Validator v;
  EXPECT_FALSE (v.Feed ((const uint8_t *) "\xff", 1));
  EXPECT_FALSE (v.Feed ((const uint8_t *) "a", 1));
  EXPECT_FALSE (v.Feed ((const uint8_t *) "\x80", 1));
  EXPECT_FALSE (v.complete ());
  // Cut inside a character: not complete until it is.
  Utf8Validator w;
  EXPECT_TRUE (w.Feed ((const uint8_t *) "\xe2\x82", 2));
  EXPECT_FALSE (w.complete ());
  EXPECT_TRUE (w.Feed ((const uint8_t *) "\xac", 1));
  EXPECT_TRUE (w.complete ());
}
