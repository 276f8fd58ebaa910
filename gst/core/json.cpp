#include "json.h"

#include <cstdio>
#include <cstdlib>

namespace fmp4ws::core {

std::string
JsonString (const std::string &s)
{
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf (buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back (char (c));
        }
    }
  }
  out.push_back ('"');
  return out;
}

namespace {

struct Parser
{
  const std::string &s;
  size_t i = 0;
  int depth = 0;

  void Ws ()
  {
    while (i < s.size () && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
      i++;
  }
  bool Eat (char c)
  {
    Ws ();
    if (i < s.size () && s[i] == c) {
      i++;
      return true;
    }
    return false;
  }
  bool String (std::string *out)
  {
    if (!Eat ('"'))
      return false;
    while (i < s.size ()) {
      char c = s[i++];
      if (c == '"')
        return true;
      if (c == '\\') {
        if (i >= s.size ())
          return false;
        char e = s[i++];
        switch (e) {
          case 'n': out->push_back ('\n'); break;
          case 't': out->push_back ('\t'); break;
          case 'r': out->push_back ('\r'); break;
          case 'b': out->push_back ('\b'); break;
          case 'f': out->push_back ('\f'); break;
          case 'u':
            if (i + 4 > s.size ())
              return false;
            out->push_back ('?');  // non-ASCII escapes are not needed by the protocol
            i += 4;
            break;
          default: out->push_back (e);
        }
      } else {
        out->push_back (c);
      }
    }
    return false;
  }
  bool Value (JsonValue *v)
  {
    Ws ();
    if (i >= s.size ())
      return false;
    char c = s[i];
    if (c == '"') {
      v->kind = JsonValue::kString;
      return String (&v->str);
    }
    if (c == '{' || c == '[') {
      // Skip a nested value (bounded depth).
      v->kind = JsonValue::kOther;
      char open = c, close = c == '{' ? '}' : ']';
      int level = 0;
      if (++depth > 16)
        return false;
      while (i < s.size ()) {
        char d = s[i];
        if (d == '"') {
          std::string skip;
          if (!String (&skip))
            return false;
          continue;
        }
        i++;
        if (d == open)
          level++;
        else if (d == close && --level == 0) {
          depth--;
          return true;
        }
      }
      return false;
    }
    if (s.compare (i, 4, "true") == 0) {
      v->kind = JsonValue::kBool;
      v->boolean = true;
      i += 4;
      return true;
    }
    if (s.compare (i, 5, "false") == 0) {
      v->kind = JsonValue::kBool;
      i += 5;
      return true;
    }
    if (s.compare (i, 4, "null") == 0) {
      v->kind = JsonValue::kNull;
      i += 4;
      return true;
    }
    const char *start = s.c_str () + i;
    char *end = nullptr;
    double d = strtod (start, &end);
    if (end == start)
      return false;
    v->kind = JsonValue::kNumber;
    v->num = d;
    i += size_t (end - start);
    return true;
  }
};

}  // namespace

std::optional<std::map<std::string, JsonValue>>
ParseFlatJsonObject (const std::string &text)
{
  Parser p{text};
  std::map<std::string, JsonValue> out;
  if (!p.Eat ('{'))
    return std::nullopt;
  if (p.Eat ('}'))
    return out;
  for (;;) {
    std::string key;
    JsonValue v;
    if (!p.String (&key) || !p.Eat (':') || !p.Value (&v))
      return std::nullopt;
    out[key] = v;
    if (p.Eat (','))
      continue;
    if (p.Eat ('}'))
      break;
    return std::nullopt;
  }
  p.Ws ();
  if (p.i != text.size ())
    return std::nullopt;
  return out;
}

}  // namespace fmp4ws::core
