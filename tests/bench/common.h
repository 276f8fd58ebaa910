// Small helpers shared by the benchmark tools: monotonic clock, SHA-1/base64 for
// the WebSocket handshake (RFC 6455 4.2.2), RFC 6455 frame headers, percentiles.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <time.h>
#include <vector>

namespace bench {

inline int64_t NowNs ()
{
  timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return int64_t (ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// SHA-1 (FIPS 180-1), for Sec-WebSocket-Accept only.
inline std::string Sha1 (const std::string &msg)
{
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  std::string m = msg;
  uint64_t bits = uint64_t (msg.size ()) * 8;
  m.push_back (char (0x80));
  while (m.size () % 64 != 56)
    m.push_back (0);
  for (int i = 7; i >= 0; i--)
    m.push_back (char (bits >> (i * 8)));
  auto rol = [] (uint32_t x, int n) { return (x << n) | (x >> (32 - n)); };
  for (size_t off = 0; off < m.size (); off += 64) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
      w[i] = (uint32_t (uint8_t (m[off + 4 * i])) << 24) |
             (uint32_t (uint8_t (m[off + 4 * i + 1])) << 16) |
             (uint32_t (uint8_t (m[off + 4 * i + 2])) << 8) | uint8_t (m[off + 4 * i + 3]);
    for (int i = 16; i < 80; i++)
      w[i] = rol (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
      uint32_t f, k;
      if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
      else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
      else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
      else { f = b ^ c ^ d; k = 0xCA62C1D6; }
      uint32_t t = rol (a, 5) + f + e + k + w[i];
      e = d; d = c; c = rol (b, 30); b = a; a = t;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
  }
  std::string out;
  for (uint32_t v : h)
    for (int i = 3; i >= 0; i--)
      out.push_back (char (v >> (i * 8)));
  return out;
}

inline std::string Base64 (const std::string &in)
{
  static const char *t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size (); i += 3) {
    uint32_t v = (uint8_t (in[i]) << 16) | (uint8_t (in[i + 1]) << 8) | uint8_t (in[i + 2]);
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += t[(v >> 6) & 63]; out += t[v & 63];
  }
  if (i + 1 == in.size ()) {
    uint32_t v = uint8_t (in[i]) << 16;
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += "==";
  } else if (i + 2 == in.size ()) {
    uint32_t v = (uint8_t (in[i]) << 16) | (uint8_t (in[i + 1]) << 8);
    out += t[v >> 18]; out += t[(v >> 12) & 63]; out += t[(v >> 6) & 63]; out += '=';
  }
  return out;
}

inline std::string WebSocketAccept (const std::string &key)
{
  return Base64 (Sha1 (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
}

// Server frame header (no mask); returns its length (2, 4 or 10).
inline size_t FrameHeader (uint8_t opcode, uint64_t len, uint8_t out[10])
{
  out[0] = uint8_t (0x80 | opcode);
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

// Nearest-rank percentile of a sorted vector (q in [0, 1]).
template <typename T> T Percentile (const std::vector<T> &sorted, double q)
{
  if (sorted.empty ())
    return T ();
  size_t i = size_t (q * double (sorted.size ()));
  if (i >= sorted.size ())
    i = sorted.size () - 1;
  return sorted[i];
}

}  // namespace bench
