#include "token.h"

#include <glib.h>

#include <cstring>

namespace fmp4ws::server {

namespace {

std::string
Signature (const std::string &secret, const std::string &path, const std::string &expiry)
{
  std::string text = expiry + ":" + path;
  gchar *hex = g_compute_hmac_for_data (G_CHECKSUM_SHA256, (const guchar *) secret.data (),
                                        secret.size (), (const guchar *) text.data (),
                                        text.size ());
  std::string s = hex ? hex : "";  // GLib writes lower-case hex
  g_free (hex);
  return s;
}

// Equal strings of equal length, in time that depends on the length only.
bool
ConstantTimeEqual (const char *a, const char *b, size_t n)
{
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < n; i++)
    diff |= (unsigned char) (a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

std::string
TokenPath (const std::string &path_prefix)
{
  return path_prefix.empty () ? "/" : path_prefix;
}

std::string
MakeToken (const std::string &secret, const std::string &path, int64_t expiry)
{
  std::string e = std::to_string (expiry);
  return e + "." + Signature (secret, path, e);
}

TokenCheck
VerifyToken (const std::string &secret, const std::string &path, const char *token, int64_t now)
{
  if (!token || !*token)
    return TokenCheck::kMissing;
  const char *dot = strchr (token, '.');
  if (!dot)
    return TokenCheck::kMalformed;
  size_t digits = size_t (dot - token);
  if (digits < 1 || digits > 19)
    return TokenCheck::kMalformed;
  int64_t expiry = 0;
  for (size_t i = 0; i < digits; i++) {
    if (token[i] < '0' || token[i] > '9')
      return TokenCheck::kMalformed;
    if (expiry > (INT64_MAX - 9) / 10)
      return TokenCheck::kMalformed;
    expiry = expiry * 10 + (token[i] - '0');
  }
  const char *sig = dot + 1;
  if (strlen (sig) != 64)
    return TokenCheck::kMalformed;
  for (const char *p = sig; *p; p++)
    if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
      return TokenCheck::kMalformed;
  std::string expected = Signature (secret, path, std::string (token, digits));
  if (expected.size () != 64 || !ConstantTimeEqual (expected.data (), sig, 64))
    return TokenCheck::kBadSignature;
  if (expiry < now)
    return TokenCheck::kExpired;
  return TokenCheck::kValid;
}

const char *
TokenCheckName (TokenCheck c)
{
  switch (c) {
    case TokenCheck::kValid:
      return "valid";
    case TokenCheck::kMissing:
      return "missing";
    case TokenCheck::kMalformed:
      return "malformed";
    case TokenCheck::kBadSignature:
      return "bad signature";
    case TokenCheck::kExpired:
      return "expired";
  }
  return "?";
}

}  // namespace fmp4ws::server
