// Minimal JSON for the viewer protocol: string escaping, and a parser for flat objects
// (string, number, boolean, null values; nested values are skipped). Bounded input.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace fmp4ws::core {

std::string JsonString (const std::string &s);  // quoted and escaped

struct JsonValue
{
  enum Kind { kString, kNumber, kBool, kNull, kOther } kind = kNull;
  std::string str;
  double num = 0;
  bool boolean = false;
};

// Parses `{"key": value, ...}`; nullopt if it is not a JSON object.
std::optional<std::map<std::string, JsonValue>> ParseFlatJsonObject (const std::string &text);

}  // namespace fmp4ws::core
