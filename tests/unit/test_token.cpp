// Signed viewer links (gst/server/token.h): make and verify `EXPIRY.SIG` tokens.
#include <gtest/gtest.h>

#include "token.h"

using namespace fmp4ws::server;

namespace {

// Made independently with OpenSSL:
//   printf '%s' "1700000000:/live/cam1" | openssl dgst -sha256 -hmac s3cret
const char kKnownSig[] = "1bf7fff02d43454d0483f92f95063bcec913ea49d2c29f10935b9a7f82b4e68e";
const int64_t kExpiry = 1700000000;

}  // namespace

TEST (Token, PathOfAStream)
{
  EXPECT_EQ (TokenPath (""), "/");
  EXPECT_EQ (TokenPath ("/live/cam1"), "/live/cam1");
}

TEST (Token, MatchesOpenSsl)
{
  EXPECT_EQ (MakeToken ("s3cret", "/live/cam1", kExpiry), std::string ("1700000000.") + kKnownSig);
}

TEST (Token, ValidUntilAndIncludingItsExpiry)
{
  std::string t = MakeToken ("s3cret", "/live/cam1", kExpiry);
  EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", t.c_str (), kExpiry - 3600), TokenCheck::kValid);
  EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", t.c_str (), kExpiry), TokenCheck::kValid);
  EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", t.c_str (), kExpiry + 1), TokenCheck::kExpired);
}

TEST (Token, Missing)
{
  EXPECT_EQ (VerifyToken ("s3cret", "/", nullptr, 0), TokenCheck::kMissing);
  EXPECT_EQ (VerifyToken ("s3cret", "/", "", 0), TokenCheck::kMissing);
}

TEST (Token, WrongSecretOrPath)
{
  std::string t = MakeToken ("s3cret", "/live/cam1", kExpiry);
  EXPECT_EQ (VerifyToken ("other", "/live/cam1", t.c_str (), 0), TokenCheck::kBadSignature);
  EXPECT_EQ (VerifyToken ("s3cret", "/live/cam2", t.c_str (), 0), TokenCheck::kBadSignature);
  EXPECT_EQ (VerifyToken ("s3cret", "/", t.c_str (), 0), TokenCheck::kBadSignature);
  // The expiry is signed: moving it invalidates the signature.
  std::string later = "1700003600." + t.substr (t.find ('.') + 1);
  EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", later.c_str (), 0), TokenCheck::kBadSignature);
  // One flipped hex digit anywhere.
  for (size_t i = t.find ('.') + 1; i < t.size (); i++) {
    std::string bad = t;
    bad[i] = bad[i] == '0' ? '1' : '0';
    EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", bad.c_str (), 0), TokenCheck::kBadSignature)
        << i;
  }
}

TEST (Token, Malformed)
{
  std::string sig = kKnownSig;
  std::string upper = sig;
  for (char &c : upper)
    c = char (toupper (c));
  const std::string cases[] = {
      "1700000000",                           // no signature
      "." + sig,                              // no expiry
      "17000x0000." + sig,                    // not a number
      "-1700000000." + sig,                   // negative
      "+1700000000." + sig,
      "17000000000000000000." + sig,          // 20 digits
      "99999999999999999999." + sig,          // over int64
      "1700000000." + sig.substr (1),         // 63 hex digits
      "1700000000." + sig + "0",              // 65
      "1700000000." + upper,                  // upper-case hex
      "1700000000." + sig.substr (0, 63) + "g",
      "1700000000.." + sig.substr (1),
      "1700000000 " + sig,
  };
  for (const std::string &c : cases)
    EXPECT_EQ (VerifyToken ("s3cret", "/live/cam1", c.c_str (), 0), TokenCheck::kMalformed) << c;
}

TEST (Token, EmptySecretStillSigns)
{
  // An empty key is a valid HMAC key (the sink never uses one: NULL/"" turns tokens off).
  std::string t = MakeToken ("", "/", 10);
  EXPECT_EQ (VerifyToken ("", "/", t.c_str (), 0), TokenCheck::kValid);
  EXPECT_EQ (VerifyToken ("x", "/", t.c_str (), 0), TokenCheck::kBadSignature);
}

TEST (Token, Names)
{
  EXPECT_STREQ (TokenCheckName (TokenCheck::kExpired), "expired");
  EXPECT_STREQ (TokenCheckName (TokenCheck::kBadSignature), "bad signature");
}
