// RFC 6455 frame codec of websocketsink: server->client frame headers (the payload is never
// copied: a header is written before a shared payload, see core::OutMessage) and an
// incremental decoder of client->server frames. Pure: no I/O, no GLib, no exceptions;
// malformed input gives a status carrying the close code to answer with.
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

// The result of decoding: ok, or the close code to answer with and why.
struct Status
{
  uint16_t close_code = 0;       // 0: ok; else 1002 / 1007 / 1009
  const char *reason = nullptr;  // static string, for logs and the close frame
  bool ok () const { return close_code == 0; }
};

// What the decoder found.
struct Event
{
  enum Kind
  {
    kText,    // a whole text message (its frames joined)
    kBinary,  // a whole single-frame binary message
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
// Checks made today (a frame is refused as soon as its header is complete): the client's
// mask bit (1002), control frames of more than 125 bytes or fragmented (1002), reserved
// opcodes (1002), a message bigger than max_message_size (1009). Not checked (as before this
// codec): RSV bits, UTF-8 of text messages (1007), continuation frames out of sequence.
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
  std::vector<uint8_t> fragmented_; // a text message in continuation frames
  bool clear_fragmented_ = false;   // delivered: clear on the next call
  State state_ = kOpen;
  Status status_;
};

}  // namespace fmp4ws::server::ws
