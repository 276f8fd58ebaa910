// Signed viewer links (websocketsink's `token-secret`): `?token=EXPIRY.SIG`, where EXPIRY is a
// Unix time in seconds (decimal) and SIG the lower-case hex HMAC-SHA256 (RFC 2104, FIPS 180-4;
// GLib's GHmac) of the text `EXPIRY:PATH` keyed with the secret. PATH is the stream's base
// path: "/" for a sink on its own server, its path-prefix otherwise (e.g. "/live/cam1").
//
// The same token is made by any backend, e.g.
//   e=$(( $(date +%s) + 3600 ))
//   printf '%s' "$e:/live/cam1" | openssl dgst -sha256 -hmac "$SECRET" | sed "s/.*= /$e./"
//
// Pure functions (no GLib in this header; GLib's HMAC in the .cpp), unit-tested in
// tests/unit/test_token.cpp.
#pragma once

#include <cstdint>
#include <string>

namespace fmp4ws::server {

// The PATH a stream's tokens sign: "/" for an empty prefix, else the prefix as given.
std::string TokenPath (const std::string &path_prefix);

// "EXPIRY.SIG" for a link valid until `expiry` (Unix seconds) on the stream at `path`.
std::string MakeToken (const std::string &secret, const std::string &path, int64_t expiry);

enum class TokenCheck {
  kValid,
  kMissing,       // no token (nullptr or "")
  kMalformed,     // not 1-19 decimal digits, '.', 64 lower-case hex digits
  kBadSignature,  // signed with another secret or for another path
  kExpired,       // EXPIRY < now (checked after the signature)
};

// Checks `token` (may be nullptr) for the stream at `path`, at Unix time `now` (seconds).
// The signature is compared in constant time. A link is valid up to and including its EXPIRY
// second.
TokenCheck VerifyToken (const std::string &secret, const std::string &path, const char *token,
                        int64_t now);

// "valid", "missing", "malformed", "bad signature", "expired" (for logs only: a client gets
// the same answer for every refusal).
const char *TokenCheckName (TokenCheck c);

}  // namespace fmp4ws::server
