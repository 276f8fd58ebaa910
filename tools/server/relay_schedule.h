// fmp4ws-server --relay: which origin URL an edge tries next and how long it waits first
// (pure C++, no GLib; tests/unit/test_server_tools.cpp).
#pragma once

#include <string>
#include <vector>

namespace fmp4ws::tools {

// The reconnect schedule of one relay over its list of origin URLs (--relay URL, repeatable).
//
// - An attempt that brought the stream (an init segment and at least one fragment) and then
//   ended: the same URL again after `min_s` (an origin that restarts comes back there).
// - An attempt that failed (no connection, an HTTP error status, garbage, no answer, an end
//   before any fragment): the next URL of the list at once, while the current round has URLs left; once
//   every URL failed in a row (a round), a wait that doubles each round: `min_s`, 2·`min_s`,
//   4·`min_s`, ... at most `max_s`.
// Deterministic (no jitter): one edge pulls one stream, so there is no herd to spread.
class RelaySchedule
{
public:
  // `urls` non-empty; 0 < min_s <= max_s (seconds).
  RelaySchedule (std::vector<std::string> urls, double min_s, double max_s);

  const std::string &url () const { return urls_[index_]; }  // the URL to try now
  size_t index () const { return index_; }
  // The attempt with url () ended; `delivered`: it brought the stream. Moves url () on and
  // returns the seconds to wait before the next attempt (0: at once).
  double ended (bool delivered);
  unsigned failures () const { return failures_; }  // failed attempts in a row

private:
  std::vector<std::string> urls_;
  double min_s_, max_s_;
  size_t index_ = 0;
  unsigned failures_ = 0;
};

// `url` with the value of its `token` query parameter, and its userinfo ("user:password@",
// RFC 3986 section 3.2.1), replaced by "***" (for logs: both are credentials). Other parts
// are kept.
std::string redact_token (const std::string &url);

}  // namespace fmp4ws::tools
