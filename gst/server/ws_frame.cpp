#include "ws_frame.h"

#include <cstring>

namespace fmp4ws::server::ws {

size_t
EncodeHeader (uint8_t opcode, uint64_t len, uint8_t out[kMaxServerHeaderSize], bool fin)
{
  out[0] = uint8_t ((fin ? 0x80 : 0x00) | (opcode & 0x0f));  // no mask (server to client)
  if (len < 126) {
    out[1] = uint8_t (len);
    return 2;
  }
  if (len <= 0xffff) {
    out[1] = 126;
    out[2] = uint8_t (len >> 8);
    out[3] = uint8_t (len);
    return 4;
  }
  out[1] = 127;
  for (int i = 0; i < 8; i++)
    out[2 + i] = uint8_t (len >> (56 - 8 * i));
  return 10;
}

void
AppendHeader (uint8_t opcode, uint64_t len, std::vector<uint8_t> *out, bool fin)
{
  uint8_t h[kMaxServerHeaderSize];
  size_t n = EncodeHeader (opcode, len, h, fin);
  out->insert (out->end (), h, h + n);
}

std::vector<uint8_t>
EncodeClientFrame (uint8_t opcode, const uint8_t *payload, size_t size, const uint8_t mask[4],
                   bool fin)
{
  std::vector<uint8_t> f;
  AppendHeader (opcode, size, &f, fin);
  f[1] |= 0x80;
  f.insert (f.end (), mask, mask + 4);
  for (size_t i = 0; i < size; i++)
    f.push_back (uint8_t (payload[i] ^ mask[i & 3]));
  return f;
}

uint16_t
EchoCloseCode (const uint8_t *payload, size_t size)
{
  uint16_t code = size >= 2 ? uint16_t ((payload[0] << 8) | payload[1]) : uint16_t (kCloseNormal);
  if (code < 1000 || code >= 5000 || code == 1005 || code == 1006)
    code = kCloseNormal;
  return code;
}

bool
IsValidCloseCode (uint16_t code)
{
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

// Unicode Table 3-7 (well-formed UTF-8 byte sequences): after a lead byte, the range of the
// first continuation byte depends on it (E0, ED, F0, F4); the others are 80..BF.
bool
Utf8Validator::Feed (const uint8_t *data, size_t size)
{
  constexpr uint8_t kBad = 0xff;
  if (need_ == kBad)
    return false;
  for (size_t i = 0; i < size; i++) {
    uint8_t b = data[i];
    if (need_) {
      if (b < lo_ || b > hi_) {
        need_ = kBad;
        return false;
      }
      lo_ = 0x80;
      hi_ = 0xbf;
      need_--;
    } else if (b < 0x80) {
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need_ = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      need_ = 2;
      if (b == 0xe0)
        lo_ = 0xa0;  // no overlong form
      else if (b == 0xed)
        hi_ = 0x9f;  // no surrogate
    } else if (b >= 0xf0 && b <= 0xf4) {
      need_ = 3;
      if (b == 0xf0)
        lo_ = 0x90;  // no overlong form
      else if (b == 0xf4)
        hi_ = 0x8f;  // nothing above U+10FFFF
    } else {  // a continuation byte first, C0/C1 (overlong), F5..FF
      need_ = kBad;
      return false;
    }
  }
  return true;
}

Status
CheckClosePayload (const uint8_t *payload, size_t size)
{
  if (size == 0)
    return {};
  if (size == 1)
    return {kCloseProtocolError, "protocol error: 1-byte close payload"};
  if (!IsValidCloseCode (uint16_t ((payload[0] << 8) | payload[1])))
    return {kCloseProtocolError, "protocol error: invalid close code"};
  Utf8Validator v;
  if (!v.Feed (payload + 2, size - 2) || !v.complete ())
    return {kCloseInvalidPayload, "invalid UTF-8 in a close reason"};
  return {};
}

void
Decoder::Feed (const uint8_t *data, size_t size)
{
  if (state_ != kOpen)
    return;
  if (pos_ > 0) {
    rx_.erase (rx_.begin (), rx_.begin () + long (pos_));
    pos_ = 0;
  }
  rx_.insert (rx_.end (), data, data + size);
}

Decoder::Result
Decoder::Fail (uint16_t code, const char *reason)
{
  state_ = kFailed;
  status_ = {code, reason};
  rx_.clear ();
  pos_ = 0;
  return kError;
}

Decoder::Result
Decoder::Next (Event *ev)
{
  if (clear_fragmented_) {
    fragmented_.clear ();
    clear_fragmented_ = false;
  }
  for (;;) {
    if (state_ == kClosed)
      return kDone;
    if (state_ == kFailed)
      return kError;
    size_t avail = rx_.size () - pos_;
    if (avail < 2)
      return kNeedMore;
    uint8_t *p = rx_.data () + pos_;
    bool fin = p[0] & 0x80;
    uint8_t op = p[0] & 0x0f;
    bool masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7f;
    size_t hdr = 2;
    if (len == 126) {
      if (avail < 4)
        return kNeedMore;
      len = (uint64_t (p[2]) << 8) | p[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10)
        return kNeedMore;
      len = 0;
      for (int i = 0; i < 8; i++)
        len = (len << 8) | p[2 + i];
      hdr = 10;
    }
    if (!masked)
      return Fail (kCloseProtocolError, "protocol error: unmasked client frame");
    if (p[0] & 0x70)  // RSV1-3: no extension was negotiated
      return Fail (kCloseProtocolError, "protocol error: reserved bits set");
    if ((op >= 0x8 && (len > kMaxControlPayload || !fin)) || (op >= 0x3 && op <= 0x7) ||
        op > 0xA)
      return Fail (kCloseProtocolError, "protocol error: bad frame");
    if (op == kOpClose && len == 1)
      return Fail (kCloseProtocolError, "protocol error: 1-byte close payload");
    if (op == kOpContinuation && !message_op_)
      return Fail (kCloseProtocolError, "protocol error: continuation frame without a message");
    if ((op == kOpText || op == kOpBinary) && message_op_)
      return Fail (kCloseProtocolError, "protocol error: new message inside a fragmented one");
    if (len > max_message_ ||
        (op == kOpContinuation && fragmented_.size () + len > max_message_))
      return Fail (kCloseTooBig, "message too big");
    if (avail < hdr + 4 + len)
      return kNeedMore;
    const uint8_t *mask = p + hdr;
    uint8_t *payload = p + hdr + 4;
    for (size_t i = 0; i < len; i++)
      payload[i] ^= mask[i & 3];
    pos_ += hdr + 4 + size_t (len);
    switch (op) {
      case kOpContinuation:
      case kOpText:
      case kOpBinary: {
        uint8_t message = op == kOpContinuation ? message_op_ : op;
        if (message == kOpText) {
          // Fragment by fragment (a bad fragment fails before the final one), then whole.
          if (!utf8_.Feed (payload, size_t (len)) || (fin && !utf8_.complete ()))
            return Fail (kCloseInvalidPayload, "invalid UTF-8 in a text message");
          if (fin)
            utf8_.Reset ();
        }
        if (fin && op != kOpContinuation) {  // a whole message in one frame
          ev->kind = op == kOpBinary ? Event::kBinary : Event::kText;
          ev->data = payload;
          ev->size = size_t (len);
          ev->close_code = 0;
          return kEvent;
        }
        fragmented_.insert (fragmented_.end (), payload, payload + len);
        if (!fin) {
          message_op_ = message;
          break;
        }
        message_op_ = 0;
        clear_fragmented_ = true;
        ev->kind = message == kOpBinary ? Event::kBinary : Event::kText;
        ev->data = fragmented_.data ();
        ev->size = fragmented_.size ();
        ev->close_code = 0;
        return kEvent;
      }
      case kOpClose: {
        Status st = CheckClosePayload (payload, size_t (len));
        if (!st.ok ())
          return Fail (st.close_code, st.reason);
        state_ = kClosed;
        ev->kind = Event::kClose;
        ev->data = payload;
        ev->size = size_t (len);
        ev->close_code = EchoCloseCode (payload, size_t (len));
        return kEvent;
      }
      case kOpPing:
        ev->kind = Event::kPing;
        ev->data = payload;
        ev->size = size_t (len);
        ev->close_code = 0;
        return kEvent;
      case kOpPong:
        ev->kind = Event::kPong;
        ev->data = payload;
        ev->size = size_t (len);
        ev->close_code = 0;
        return kEvent;
    }
  }
}

}  // namespace fmp4ws::server::ws
