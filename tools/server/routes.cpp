#include "routes.h"

namespace fmp4ws::tools {

namespace {

const char kLive[] = "/live/";

bool
ascii_alnum (char c)
{
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

}  // namespace

bool
valid_stream_name (const std::string &name)
{
  if (name.empty () || name.size () > 64)
    return false;
  for (char c : name)
    if (!ascii_alnum (c) && c != '-' && c != '_' && c != '.')
      return false;
  return name != "." && name != "..";
}

std::optional<std::string>
ingest_stream_name (const std::string &path)
{
  if (path.compare (0, sizeof kLive - 1, kLive) != 0)
    return std::nullopt;
  std::string name = path.substr (sizeof kLive - 1);
  if (!valid_stream_name (name))
    return std::nullopt;
  return name;
}

std::string
viewer_prefix (const std::string &name)
{
  return name.empty () ? "" : "/live/" + name;
}

std::string
token_path (const std::string &name)
{
  return name.empty () ? "/" : viewer_prefix (name);
}

std::string
publish_token_path (const std::string &name)
{
  return "/live/" + name + "/publish";
}

std::string
publish_url (const std::string &base_url, const std::string &name, const std::string &token)
{
  std::string base = base_url;
  while (!base.empty () && base.back () == '/')
    base.pop_back ();
  return base + "/live/" + name + "?token=" + token;
}

std::string
viewer_url (const std::string &base_url, const std::string &name, const std::string &token)
{
  std::string base = base_url;
  while (!base.empty () && base.back () == '/')
    base.pop_back ();
  return base + viewer_prefix (name) + "/?token=" + token;
}

std::string
streams_url (const std::string &base_url, const std::string &token)
{
  std::string base = base_url;
  while (!base.empty () && base.back () == '/')
    base.pop_back ();
  return base + "/streams?token=" + token;
}

std::string
metrics_url (const std::string &base_url, const std::string &token)
{
  std::string base = base_url;
  while (!base.empty () && base.back () == '/')
    base.pop_back ();
  return base + "/metrics?token=" + token;
}

std::string
streams_json (const std::vector<StreamSummary> &streams)
{
  std::string json = "[";
  for (const StreamSummary &s : streams) {
    if (json.size () > 1)
      json += ",";
    json += "{\"name\":\"" + s.name + "\",\"path\":\"" + s.path + "\",\"publishing\":" +
            (s.publishing ? "true" : "false") + ",\"viewers\":" + std::to_string (s.viewers) +
            ",\"publishers\":" + std::to_string (s.publishers) + ",\"codecs\":\"" + s.codecs +
            "\"}";
  }
  json += "]\n";
  return json;
}

}  // namespace fmp4ws::tools
