// RFC 6455 frame codec of websocketsink: server->client frame headers (the payload is never
// copied: a header is written before a shared payload, see core::OutMessage) and an
// incremental decoder of client->server frames. Pure: no I/O, no GLib, no exceptions;
// malformed input gives a status carrying the close code to answer with.
//
// Why our own decoder and not libwslay (Debian 12: libwslay1 1.1.1), as evaluated for issue 12:
// - wslay_frame is a bare frame parser without any of the validation (RSV bits, opcode
//   order, UTF-8, close codes) that was missing here: using it would save only the header
//   parsing, which was already here and tested.
// - wslay_event does validate, but on a protocol error it does not report the code: it
//   queues a close frame (and, for every ping, a pong) in its own send queue and stops
//   reading. To get that code out we would have to drain its queue through a send callback
//   next to our zero-copy queue (two writers of one socket), feed it through a recv callback
//   and copy each message out of its malloc'ed buffers. It also accepts only close codes
//   1000-1011 and 3000-4999 (it fails the IANA-registered 1012-1014 that viewers may send).
// - What was missing is small and pure: a few header checks, a message state, a close-payload
//   check, and an incremental UTF-8 validator (Utf8Validator below, RFC 3629 / Unicode
//   Table 3-7, checked exhaustively by tests/unit/test_ws_frame.cpp). GLib's g_utf8_validate
//   was weighed for it: it refuses U+0000 (valid UTF-8, valid in a WebSocket text message),
//   cannot tell a sequence cut by a fragment boundary from an invalid one, and would bring
//   GLib into this pure file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace fmp4ws::server::ws {

enum Opcode : uint8_t
{
  kOpContinuation = 0x0,
  kOpText = 0x1,
  kOpBinary = 0x2,
  kOpClose = 0x8,
  kOpPing = 0x9,
  kOpPong = 0xA,
};

// Close codes (RFC 6455 7.4.1) the server sends.
enum CloseCode : uint16_t
{
  kCloseNormal = 1000,
  kCloseGoingAway = 1001,
  kCloseProtocolError = 1002,
  kCloseInvalidPayload = 1007,  // e.g. a text message that is not UTF-8
  kClosePolicy = 1008,
  kCloseTooBig = 1009,
  kCloseInternalError = 1011,
};

// Longest server frame header (no mask): 2 + 8 bytes.
constexpr size_t kMaxServerHeaderSize = 10;
// Longest control frame payload.
constexpr size_t kMaxControlPayload = 125;

// Writes the header of an unmasked (server->client) frame of `len` payload bytes into `out`;
// returns its size (2, 4 or 10).
size_t EncodeHeader (uint8_t opcode, uint64_t len, uint8_t out[kMaxServerHeaderSize],
                     bool fin = true);
// The same, appended to `out` (the payload is then written after it, or sent from elsewhere).
void AppendHeader (uint8_t opcode, uint64_t len, std::vector<uint8_t> *out, bool fin = true);

// A whole masked (client->server) frame: for tests and clients.
std::vector<uint8_t> EncodeClientFrame (uint8_t opcode, const uint8_t *payload, size_t size,
                                        const uint8_t mask[4], bool fin = true);

// A close code received from a peer as the server answers it: a missing or invalid code
// (outside 1000-4999, or 1005/1006 that must never be sent) becomes 1000.
uint16_t EchoCloseCode (const uint8_t *payload, size_t size);

// Whether a peer may send `code` in a close frame (RFC 6455 7.4.1, 7.4.2 and the IANA
// "WebSocket Close Code Number Registry"): 1000-1003, 1007-1014 and 3000-4999. Not: below
// 1000, 1004 (reserved), 1005/1006/1015 (never sent in a frame), 1016-2999 (unassigned or
// reserved for the protocol) and 5000 and up.
bool IsValidCloseCode (uint16_t code);

// Incremental UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF). Feed() the bytes in any pieces; false as soon as they cannot be UTF-8. The text
// is whole and valid when every Feed() was true and complete() is true.
class Utf8Validator
{
public:
  bool Feed (const uint8_t *data, size_t size);
  // Not in the middle of a sequence.
  bool complete () const { return need_ == 0; }
  void Reset () { need_ = 0; }

private:
  uint8_t need_ = 0;                 // continuation bytes still expected
  uint8_t lo_ = 0x80, hi_ = 0xbf;    // range of the next continuation byte
};

// The result of decoding: ok, or the close code to answer with and why.
struct Status
{
  uint16_t close_code = 0;       // 0: ok; else 1002 / 1007 / 1009
  const char *reason = nullptr;  // static string, for logs and the close frame
  bool ok () const { return close_code == 0; }
};

// Checks a received close frame's payload (RFC 6455 5.5.1, 7.4): empty, or a valid code
// (else 1002; a 1-byte payload is 1002 too) followed by a UTF-8 reason (else 1007).
Status CheckClosePayload (const uint8_t *payload, size_t size);

// What the decoder found.
struct Event
{
  enum Kind
  {
    kText,    // a whole text message (its frames joined)
    kBinary,  // a whole binary message (its frames joined)
    kPing,    // answer with a pong carrying `data`
    kPong,
    kClose,   // the peer closes; `close_code` is the code to answer with
  } kind = kText;
  const uint8_t *data = nullptr;  // unmasked payload; valid until the next Feed()/Next()
  size_t size = 0;
  uint16_t close_code = 0;
};

// Incremental decoder of a client's frames. Feed() the bytes as they arrive (any chunking),
// then call Next() until it says kNeedMore. After a close frame or an error it takes nothing
// more (kDone / kError).
//
// Checks (RFC 6455 5.2-5.5, 7.4, 8.1), each failing the connection with the close code to
// send (1002 protocol error, 1007 invalid payload, 1009 too big). As soon as a frame's
// header is complete: the client's mask bit, RSV1-3 set (no extension is negotiated), reserved
// opcodes, control frames of more than 125 bytes or fragmented, a continuation frame with no
// message started, a text/binary frame inside a fragmented message, a 1-byte close payload
// (1002), a message bigger than max_message_size (1009). As each frame's payload is complete:
// UTF-8 of a text message, fragment by fragment and whole at its final frame (1007); a close
// frame's code (1002, see IsValidCloseCode) and its reason's UTF-8 (1007).
class Decoder
{
public:
  enum Result
  {
    kEvent,     // *ev is set
    kNeedMore,  // Feed() more bytes
    kDone,      // a close frame was decoded: nothing more is read
    kError,     // see status()
  };

  explicit Decoder (size_t max_message_size = 4096) : max_message_ (max_message_size) {}

  void set_max_message_size (size_t n) { max_message_ = n; }
  size_t max_message_size () const { return max_message_; }

  void Feed (const uint8_t *data, size_t size);
  Result Next (Event *ev);

  const Status &status () const { return status_; }
  bool finished () const { return state_ != kOpen; }
  // Bytes fed but not decoded yet (a partial frame).
  size_t buffered () const { return rx_.size () - pos_; }

private:
  enum State { kOpen, kClosed, kFailed };
  Result Fail (uint16_t code, const char *reason);

  size_t max_message_;
  std::vector<uint8_t> rx_;
  size_t pos_ = 0;                  // decoded up to here
  std::vector<uint8_t> fragmented_; // a message in continuation frames
  bool clear_fragmented_ = false;   // delivered: clear on the next call
  uint8_t message_op_ = 0;          // kOpText / kOpBinary while a fragmented message is open
  Utf8Validator utf8_;              // of the text message being received
  State state_ = kOpen;
  Status status_;
};

}  // namespace fmp4ws::server::ws
