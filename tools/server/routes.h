// The server's URL layout and its GET /streams document. Pure C++ (no GLib, no GStreamer):
// unit-tested in tests/unit/test_server_tools.cpp.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace fmp4ws::tools {

// A stream name as in /live/NAME: 1 to 64 of [A-Za-z0-9._-], not "." or "..".
bool valid_stream_name (const std::string &name);

// The stream an HTTP publisher (PUT/POST) targets: NAME for /live/NAME, nullopt for any other
// path or an invalid name (the server answers 400).
std::optional<std::string> ingest_stream_name (const std::string &path);

// Where a stream's viewers are (websocketsink's path-prefix): "" for the default (TCP) stream,
// /live/NAME otherwise.
std::string viewer_prefix (const std::string &name);

// The PATH a stream's signed links sign (websocketsink token-secret): its path prefix, "/" for
// the default stream.
std::string token_path (const std::string &name);

// The PATH an HTTP publisher's signed link signs: "/live/NAME/publish" (not a viewer's
// "/live/NAME": a viewer link cannot publish). NAME must not be empty.
std::string publish_token_path (const std::string &name);

// The signed HTTP-ingest URL: `base_url` (a trailing '/' dropped), /live/NAME?token=TOKEN
// (PUT or POST it; the token signs publish_token_path).
std::string publish_url (const std::string &base_url, const std::string &name,
                         const std::string &token);

// A signed viewer URL: `base_url` (e.g. http://host:8080, a trailing '/' dropped), the stream's
// page (/ or /live/NAME/) and ?token=TOKEN.
std::string viewer_url (const std::string &base_url, const std::string &name,
                        const std::string &token);

// The signed GET /streams URL: `base_url` (a trailing '/' dropped), /streams?token=TOKEN (the
// token signs PATH "/streams").
std::string streams_url (const std::string &base_url, const std::string &token);

// The signed GET /metrics URL: `base_url` (a trailing '/' dropped), /metrics?token=TOKEN (the
// token signs PATH "/metrics").
std::string metrics_url (const std::string &base_url, const std::string &token);

// One stream as GET /streams lists it.
struct StreamSummary
{
  std::string name;    // "" for the default (TCP) stream
  std::string path;    // its player page: "/" or /live/NAME/
  bool publishing = false;
  unsigned viewers = 0;
  unsigned publishers = 0;  // publishers so far
  std::string codecs;       // RFC 6381, "" before the first init segment
};

// The GET /streams body: a JSON array, one object per stream, and a newline. Values are written
// as they are: names are valid_stream_name()s and codecs RFC 6381 strings, nothing to escape.
std::string streams_json (const std::vector<StreamSummary> &streams);

}  // namespace fmp4ws::tools
