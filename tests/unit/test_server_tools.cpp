// Unit tests of fmp4ws-server's pure parts (tools/server/): stream names and ingest paths,
// the GET /streams document, and the command line (flags, defaults; GLib only).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "options.h"
#include "routes.h"

using namespace fmp4ws::tools;

namespace {

TEST (StreamName, AcceptsNamesOfTheAllowedCharacters)
{
  EXPECT_TRUE (valid_stream_name ("a"));
  EXPECT_TRUE (valid_stream_name ("cam-1_hd.v2"));
  EXPECT_TRUE (valid_stream_name ("..."));
  EXPECT_TRUE (valid_stream_name (".hidden"));
  EXPECT_TRUE (valid_stream_name (std::string (64, 'x')));
}

TEST (StreamName, RejectsEmptyTooLongDotsAndOtherCharacters)
{
  EXPECT_FALSE (valid_stream_name (""));
  EXPECT_FALSE (valid_stream_name (std::string (65, 'x')));
  EXPECT_FALSE (valid_stream_name ("."));
  EXPECT_FALSE (valid_stream_name (".."));
  for (const char *bad : {"a/b", "a b", "a%20", "caf\xc3\xa9", "a?x=1", "a\\b", "a:b"})
    EXPECT_FALSE (valid_stream_name (bad)) << bad;
  EXPECT_FALSE (valid_stream_name (std::string ("a\0b", 3)));
}

TEST (IngestPath, LiveNameGivesName)
{
  EXPECT_EQ (ingest_stream_name ("/live/cam1"), "cam1");
  EXPECT_EQ (ingest_stream_name ("/live/a.b-c_d"), "a.b-c_d");
}

TEST (IngestPath, AnythingElseIsRefused)
{
  for (const char *bad : {"/live", "/live/", "/live/a/", "/live/a/b", "/live/..", "/live/.",
                          "/livex/a", "/LIVE/a", "/", "", "live/a", "/streams", "//live/a"})
    EXPECT_EQ (ingest_stream_name (bad), std::nullopt) << bad;
}

TEST (ViewerPrefix, DefaultStreamAtTheRoot)
{
  EXPECT_EQ (viewer_prefix (""), "");
  EXPECT_EQ (viewer_prefix ("cam1"), "/live/cam1");
}

TEST (StreamsJson, EmptyList)
{
  EXPECT_EQ (streams_json ({}), "[]\n");
}

TEST (StreamsJson, OneObjectPerStreamInOrder)
{
  StreamSummary def;
  def.path = "/";
  def.publishing = true;
  def.viewers = 2;
  def.publishers = 3;
  def.codecs = "avc1.64001e,mp4a.40.2";
  StreamSummary cam;
  cam.name = "cam1";
  cam.path = "/live/cam1/";
  EXPECT_EQ (streams_json ({def, cam}),
             "[{\"name\":\"\",\"path\":\"/\",\"publishing\":true,\"viewers\":2,\"publishers\":3,"
             "\"codecs\":\"avc1.64001e,mp4a.40.2\"},"
             "{\"name\":\"cam1\",\"path\":\"/live/cam1/\",\"publishing\":false,\"viewers\":0,"
             "\"publishers\":0,\"codecs\":\"\"}]\n");
}

// parse_options on a copy of `args` (argv[0] added); the argv left over in `rest`.
bool
Parse (std::vector<std::string> args, Options *o, std::string *error,
       std::vector<std::string> *rest = nullptr)
{
  args.insert (args.begin (), "fmp4ws-server");
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back (a.data ());
  argv.push_back (nullptr);
  int argc = int (args.size ());
  char **p = argv.data ();
  bool ok = parse_options (&argc, &p, nullptr, o, error);
  if (rest)
    rest->assign (p, p + argc);
  return ok;
}

TEST (Options, DefaultsWithoutFlags)
{
  Options o;
  std::string error;
  ASSERT_TRUE (Parse ({}, &o, &error)) << error;
  EXPECT_EQ (o.port, 8080);
  EXPECT_EQ (o.ingest_port, 8081);
  EXPECT_FALSE (o.address);
  EXPECT_FALSE (o.tls_cert);
  EXPECT_FALSE (o.tls_key);
  EXPECT_FALSE (o.allowed_origins);
  EXPECT_FALSE (o.sync_method);
  EXPECT_FALSE (o.recover_policy);
  EXPECT_EQ (o.max_clients, 1000);
  EXPECT_EQ (o.max_backlog_bytes, 16 << 20);
  EXPECT_DOUBLE_EQ (o.max_backlog_time, 10);
  EXPECT_EQ (o.publisher_timeout, 10);
  EXPECT_EQ (o.max_streams, 16);
  EXPECT_EQ (o.max_box_size, 64 << 20);
}

TEST (Options, EveryFlag)
{
  Options o;
  std::string error;
  std::vector<std::string> rest;
  ASSERT_TRUE (Parse ({"--port", "0", "--address=127.0.0.1", "--ingest-port", "9001",
                       "--tls-cert", "c.pem", "--tls-key", "k.pem", "--allowed-origins",
                       "https://a,https://b", "--max-clients", "5", "--sync-method",
                       "next-keyframe", "--recover-policy", "disconnect", "--max-backlog-bytes",
                       "8589934592", "--max-backlog-time", "2.5", "--publisher-timeout", "3",
                       "--max-streams", "2", "--max-box-size", "1024"},
                      &o, &error, &rest))
      << error;
  EXPECT_EQ (o.port, 0);
  EXPECT_EQ (o.address, "127.0.0.1");
  EXPECT_EQ (o.ingest_port, 9001);
  EXPECT_EQ (o.tls_cert, "c.pem");
  EXPECT_EQ (o.tls_key, "k.pem");
  EXPECT_EQ (o.allowed_origins, "https://a,https://b");
  EXPECT_EQ (o.max_clients, 5);
  EXPECT_EQ (o.sync_method, "next-keyframe");
  EXPECT_EQ (o.recover_policy, "disconnect");
  EXPECT_EQ (o.max_backlog_bytes, int64_t (8) << 30);
  EXPECT_DOUBLE_EQ (o.max_backlog_time, 2.5);
  EXPECT_EQ (o.publisher_timeout, 3);
  EXPECT_EQ (o.max_streams, 2);
  EXPECT_EQ (o.max_box_size, 1024);
  EXPECT_EQ (rest, std::vector<std::string> ({"fmp4ws-server"}));
}

TEST (Options, ConnectionLimits)
{
  Options o;
  std::string error;
  ASSERT_TRUE (Parse ({}, &o, &error)) << error;
  EXPECT_EQ (o.max_connections, 0);
  EXPECT_EQ (o.request_timeout, 10);
  EXPECT_EQ (o.max_http_connections, 0);
  EXPECT_EQ (o.max_connections_per_address, 0);
  ASSERT_TRUE (Parse ({"--max-connections", "500", "--request-timeout", "0",
                       "--max-http-connections=100", "--max-connections-per-address", "8"},
                      &o, &error))
      << error;
  EXPECT_EQ (o.max_connections, 500);
  EXPECT_EQ (o.request_timeout, 0);
  EXPECT_EQ (o.max_http_connections, 100);
  EXPECT_EQ (o.max_connections_per_address, 8);
  for (const char *flag : {"--max-connections", "--request-timeout", "--max-http-connections",
                           "--max-connections-per-address"}) {
    Options bad;
    EXPECT_FALSE (Parse ({flag, "-1"}, &bad, &error)) << flag;
    EXPECT_NE (error.find (flag), std::string::npos) << error;
  }
}

TEST (Options, ShortFlagsAndAnEmptyStringIsStillSet)
{
  Options o;
  std::string error;
  ASSERT_TRUE (Parse ({"-p", "1234", "-i", "0", "-a", ""}, &o, &error)) << error;
  EXPECT_EQ (o.port, 1234);
  EXPECT_EQ (o.ingest_port, 0);
  EXPECT_EQ (o.address, "");  // set, and refused later as not an IP address
}

TEST (Options, BadCommandLinesAreErrors)
{
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>> {
           {"--bogus"}, {"--port", "http"}, {"--port"}, {"--max-backlog-time", "soon"},
           {"--max-box-size", "1e3"}}) {
    Options o;
    std::string error;
    EXPECT_FALSE (Parse (bad, &o, &error)) << bad[0];
    EXPECT_FALSE (error.empty ()) << bad[0];
  }
}

}  // namespace
