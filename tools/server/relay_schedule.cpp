#include "relay_schedule.h"

#include <algorithm>
#include <cmath>

namespace fmp4ws::tools {

RelaySchedule::RelaySchedule (std::vector<std::string> urls, double min_s, double max_s)
    : urls_ (std::move (urls)), min_s_ (min_s), max_s_ (std::max (min_s, max_s))
{
  if (urls_.empty ())
    urls_.push_back ("");
}

double
RelaySchedule::ended (bool delivered)
{
  if (delivered) {
    failures_ = 0;
    return min_s_;
  }
  failures_++;
  index_ = (index_ + 1) % urls_.size ();
  if (failures_ % urls_.size () != 0)
    return 0;  // URLs left in this round
  const unsigned rounds = failures_ / unsigned (urls_.size ());
  // min · 2^(rounds-1), capped; the exponent is capped too (no overflow after many rounds).
  return std::min (max_s_, min_s_ * std::ldexp (1.0, int (std::min (rounds - 1, 60u))));
}

namespace {

// `url` with its userinfo (RFC 3986 section 3.2.1, "user:password@") replaced by "***".
std::string
redact_userinfo (const std::string &url)
{
  const size_t scheme = url.find ("://");
  if (scheme == std::string::npos)
    return url;
  const size_t host = scheme + 3;
  const size_t end = std::min (url.find_first_of ("/?#", host), url.size ());
  const size_t at = url.rfind ('@', end == 0 ? 0 : end - 1);
  if (at == std::string::npos || at < host)
    return url;
  return url.substr (0, host) + "***" + url.substr (at);
}

}  // namespace

std::string
redact_token (const std::string &original)
{
  const std::string url = redact_userinfo (original);
  const size_t q = url.find ('?');
  if (q == std::string::npos)
    return url;
  std::string out = url.substr (0, q + 1);
  size_t at = q + 1;
  const size_t hash = url.find ('#', at);
  const size_t end = hash == std::string::npos ? url.size () : hash;
  bool first = true;
  while (at <= end) {
    size_t amp = url.find ('&', at);
    if (amp == std::string::npos || amp > end)
      amp = end;
    std::string param = url.substr (at, amp - at);
    if (!first)
      out += '&';
    first = false;
    if (param.compare (0, 6, "token=") == 0)
      out += "token=***";
    else
      out += param;
    at = amp + 1;
  }
  if (hash != std::string::npos)
    out += url.substr (hash);
  return out;
}

}  // namespace fmp4ws::tools
