// Unit tests of fmp4ws-server's pure parts (tools/server/): stream names and ingest paths,
// the GET /streams document, and the command line (flags, defaults; GLib only).
#include <glib/gstdio.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "options.h"
#include "relay_schedule.h"
#include "routes.h"
#include "token.h"

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

// parse_token_command on `fmp4ws-server token ARGS`.
bool
ParseToken (std::vector<std::string> args, TokenCommand *c, std::string *error)
{
  args.insert (args.begin (), {"fmp4ws-server", "token"});
  std::vector<char *> argv;
  for (std::string &a : args)
    argv.push_back (a.data ());
  argv.push_back (nullptr);
  int argc = int (args.size ());
  char **p = argv.data ();
  EXPECT_TRUE (is_token_command (argc, p));
  return parse_token_command (&argc, &p, c, error);
}

std::string
TempFile (const char *contents)
{
  gchar *path = nullptr;
  int fd = g_file_open_tmp ("fmp4ws-secret-XXXXXX", &path, nullptr);
  EXPECT_GE (fd, 0);
  close (fd);
  EXPECT_TRUE (g_file_set_contents (path, contents, -1, nullptr));
  std::string p = path;
  g_free (path);
  return p;
}

TEST (Options, TokenSecret)
{
  Options o;
  std::string error;
  ASSERT_TRUE (Parse ({}, &o, &error)) << error;
  EXPECT_FALSE (o.token_secret);
  EXPECT_FALSE (o.no_http_ingest);
  ASSERT_TRUE (Parse ({"--token-secret", "s3cret", "--no-http-ingest"}, &o, &error)) << error;
  EXPECT_EQ (o.token_secret, "s3cret");
  EXPECT_TRUE (o.no_http_ingest);
  // From a file: its first line, without the newline.
  std::string f = TempFile ("from-file\nsecond line\n");
  Options o2;
  ASSERT_TRUE (Parse ({"--token-secret-file", f}, &o2, &error)) << error;
  EXPECT_EQ (o2.token_secret, "from-file");
  // Empty, both, or a missing file: errors.
  std::string empty = TempFile ("\n");
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>> {
           {"--token-secret", ""}, {"--token-secret-file", empty},
           {"--token-secret", "a", "--token-secret-file", f},
           {"--token-secret-file", "/nonexistent/secret"}}) {
    Options b;
    error.clear ();
    EXPECT_FALSE (Parse (bad, &b, &error)) << bad[1];
    EXPECT_NE (error.find ("token-secret"), std::string::npos) << error;
  }
  g_unlink (f.c_str ());
  g_unlink (empty.c_str ());
}

TEST (Options, Relay)
{
  Options o;
  std::string error;
  ASSERT_TRUE (Parse ({}, &o, &error)) << error;
  EXPECT_TRUE (o.relay_urls.empty ());
  EXPECT_EQ (o.relay_name, "");
  EXPECT_DOUBLE_EQ (o.relay_retry_min, 0.5);
  EXPECT_DOUBLE_EQ (o.relay_retry_max, 30);
  Options r;
  ASSERT_TRUE (Parse ({"--relay", "http://a:8080/stream.mp4", "--relay",
                       "https://b/live/cam/stream.mp4?token=1.ab", "--relay-name", "cam",
                       "--relay-retry-min", "0.25", "--relay-retry-max", "4"},
                      &r, &error))
      << error;
  EXPECT_EQ (r.relay_urls, (std::vector<std::string>{"http://a:8080/stream.mp4",
                                                     "https://b/live/cam/stream.mp4?token=1.ab"}));
  EXPECT_EQ (r.relay_name, "cam");
  EXPECT_DOUBLE_EQ (r.relay_retry_min, 0.25);
  EXPECT_DOUBLE_EQ (r.relay_retry_max, 4);
  for (const std::vector<std::string> &bad : std::vector<std::vector<std::string>>{
           {"--relay", "ftp://a/stream.mp4"},
           {"--relay", "a:8080/stream.mp4"},
           {"--relay-name", "cam"},  // without --relay
           {"--relay", "http://a/", "--relay-name", "a/b"},
           {"--relay", "http://a/", "--relay-retry-min", "0"},
           {"--relay", "http://a/", "--relay-retry-min", "2", "--relay-retry-max", "1"},
       }) {
    Options b;
    EXPECT_FALSE (Parse (bad, &b, &error)) << bad[0] << " " << bad[1];
  }
}

TEST (RelaySchedule, OneUrlWaitsDoublingUpToTheMaximum)
{
  RelaySchedule s ({"http://a/"}, 0.5, 3);
  EXPECT_EQ (s.url (), "http://a/");
  std::vector<double> waits;
  for (int i = 0; i < 6; i++)
    waits.push_back (s.ended (false));
  EXPECT_EQ (waits, (std::vector<double>{0.5, 1, 2, 3, 3, 3}));
  EXPECT_EQ (s.failures (), 6u);
  EXPECT_EQ (s.url (), "http://a/");
  // A connection that brought the stream resets the backoff.
  EXPECT_DOUBLE_EQ (s.ended (true), 0.5);
  EXPECT_EQ (s.failures (), 0u);
  EXPECT_DOUBLE_EQ (s.ended (false), 0.5);
  EXPECT_DOUBLE_EQ (s.ended (false), 1);
}

TEST (RelaySchedule, UrlsAreTriedInTurnAndEachRoundWaitsLonger)
{
  RelaySchedule s ({"a", "b", "c"}, 1, 100);
  std::vector<std::pair<std::string, double>> seen;
  for (int i = 0; i < 7; i++) {
    std::string u = s.url ();
    seen.emplace_back (u, s.ended (false));
  }
  EXPECT_EQ (seen, (std::vector<std::pair<std::string, double>>{
                       {"a", 0}, {"b", 0}, {"c", 1}, {"a", 0}, {"b", 0}, {"c", 2}, {"a", 0}}));
  EXPECT_EQ (s.url (), "b");
  // The URL that delivered is tried again first after min; failing, the next one at once.
  EXPECT_DOUBLE_EQ (s.ended (true), 1);
  EXPECT_EQ (s.url (), "b");
  EXPECT_DOUBLE_EQ (s.ended (false), 0);
  EXPECT_EQ (s.url (), "c");
}

TEST (RelaySchedule, ManyFailuresStayAtTheMaximum)
{
  RelaySchedule s ({"a"}, 0.5, 30);
  double w = 0;
  for (int i = 0; i < 100000; i++)
    w = s.ended (false);
  EXPECT_DOUBLE_EQ (w, 30);
}

TEST (RedactToken, HidesTheTokenValueOnly)
{
  EXPECT_EQ (redact_token ("http://o/stream.mp4"), "http://o/stream.mp4");
  EXPECT_EQ (redact_token ("http://o/stream.mp4?token=123.abc"), "http://o/stream.mp4?token=***");
  EXPECT_EQ (redact_token ("http://o/s.mp4?rebase=0&token=1.a&x=y#f"),
             "http://o/s.mp4?rebase=0&token=***&x=y#f");
  EXPECT_EQ (redact_token ("http://o/s.mp4?xtoken=1"), "http://o/s.mp4?xtoken=1");
  // Userinfo is a credential too (RFC 3986 section 3.2.1).
  EXPECT_EQ (redact_token ("http://u:s3cret@o:8080/s.mp4?token=1"), "http://***@o:8080/s.mp4?token=***");
  EXPECT_EQ (redact_token ("https://s3cret@o/s.mp4"), "https://***@o/s.mp4");
  EXPECT_EQ (redact_token ("http://a:b@c@o/s.mp4"), "http://***@o/s.mp4");
  EXPECT_EQ (redact_token ("http://o/s.mp4?next=a@b"), "http://o/s.mp4?next=a@b");
  EXPECT_EQ (redact_token ("http://o/a@b/s.mp4"), "http://o/a@b/s.mp4");
}

TEST (TokenCommand, NotWithoutTheWord)
{
  char prog[] = "fmp4ws-server", port[] = "--port", tok[] = "token";
  char *a[] = {prog, port, tok, nullptr};
  EXPECT_FALSE (is_token_command (3, a));
  char *b[] = {prog, nullptr};
  EXPECT_FALSE (is_token_command (1, b));
}

TEST (TokenCommand, DefaultsAndEveryFlag)
{
  TokenCommand c;
  std::string error;
  ASSERT_TRUE (ParseToken ({"--secret", "s3cret"}, &c, &error)) << error;
  EXPECT_EQ (c.secret, "s3cret");
  EXPECT_EQ (c.stream, "");
  EXPECT_FALSE (c.list);
  EXPECT_EQ (c.ttl, 3600);
  EXPECT_EQ (c.base_url, "http://localhost:8080");
  TokenCommand d;
  ASSERT_TRUE (ParseToken ({"--secret=x", "--stream", "cam1", "--ttl", "60", "--base-url",
                            "https://tv.example/", "--list"},
                           &d, &error))
      << error;
  EXPECT_EQ (d.secret, "x");
  EXPECT_EQ (d.stream, "cam1");
  EXPECT_EQ (d.ttl, 60);
  EXPECT_EQ (d.base_url, "https://tv.example/");
  EXPECT_TRUE (d.list);
  EXPECT_FALSE (d.metrics);
  TokenCommand m;
  ASSERT_TRUE (ParseToken ({"--secret=x", "--metrics", "--ttl", "31536000"}, &m, &error)) << error;
  EXPECT_TRUE (m.metrics);
  EXPECT_FALSE (m.list);
  EXPECT_FALSE (m.publish);
  TokenCommand pub;
  ASSERT_TRUE (ParseToken ({"--secret=x", "--publish", "--stream", "cam1"}, &pub, &error)) << error;
  EXPECT_TRUE (pub.publish);
  EXPECT_EQ (pub.stream, "cam1");
  std::string f = TempFile ("filed\n");
  TokenCommand e;
  ASSERT_TRUE (ParseToken ({"--secret-file", f, "--stream", "a.b-c_1"}, &e, &error)) << error;
  EXPECT_EQ (e.secret, "filed");
  g_unlink (f.c_str ());
}

TEST (TokenCommand, BadCommandLinesAreErrors)
{
  for (std::vector<std::string> bad : std::vector<std::vector<std::string>> {
           {}, {"--stream", "cam1"}, {"--secret", ""}, {"--secret", "x", "--secret-file", "/etc/hostname"},
           {"--secret", "x", "--stream", "../etc"}, {"--secret", "x", "--stream", "a/b"},
           {"--secret", "x", "--ttl", "0"}, {"--secret", "x", "--ttl", "-5"},
           {"--secret", "x", "--ttl", "soon"}, {"--secret", "x", "--base-url", "ftp://h"},
           {"--secret", "x", "--base-url", "localhost:8080"}, {"--secret", "x", "extra"},
           {"--secret", "x", "--bogus"}, {"--secret", "x", "--list", "--metrics"},
           {"--secret", "x", "--publish"}, {"--secret", "x", "--publish", "--stream", "a", "--list"},
           {"--secret", "x", "--publish", "--stream", "a", "--metrics"}}) {
    TokenCommand c;
    std::string error;
    EXPECT_FALSE (ParseToken (bad, &c, &error)) << (bad.empty () ? "(none)" : bad.back ());
    EXPECT_FALSE (error.empty ());
  }
}

TEST (TokenCommand, ViewerUrlsCarryATokenForTheStreamsPath)
{
  EXPECT_EQ (token_path (""), "/");
  EXPECT_EQ (token_path ("cam1"), "/live/cam1");
  EXPECT_EQ (viewer_url ("http://h:8080", "", "T"), "http://h:8080/?token=T");
  EXPECT_EQ (viewer_url ("http://h:8080/", "cam1", "T"), "http://h:8080/live/cam1/?token=T");
  EXPECT_EQ (viewer_url ("https://tv.example/proxy//", "cam1", "T"),
             "https://tv.example/proxy/live/cam1/?token=T");
  EXPECT_EQ (streams_url ("http://h:8080/", "T"), "http://h:8080/streams?token=T");
  EXPECT_EQ (metrics_url ("http://h:8080//", "T"), "http://h:8080/metrics?token=T");
  // HTTP ingest signs its own PATH: a viewer's token is not a publisher's.
  EXPECT_EQ (publish_token_path ("cam1"), "/live/cam1/publish");
  EXPECT_NE (publish_token_path ("cam1"), token_path ("cam1"));
  EXPECT_EQ (publish_url ("http://h:8080/", "cam1", "T"), "http://h:8080/live/cam1?token=T");
  // The path the server's sink checks (its path-prefix, or "/") is the one signed.
  const std::string t = fmp4ws::server::MakeToken ("s", token_path ("cam1"), 2000000000);
  EXPECT_EQ (fmp4ws::server::VerifyToken ("s", viewer_prefix ("cam1"), t.c_str (), 0),
             fmp4ws::server::TokenCheck::kValid);
  EXPECT_EQ (fmp4ws::server::VerifyToken ("s", fmp4ws::server::TokenPath (viewer_prefix ("")),
                                          fmp4ws::server::MakeToken ("s", token_path (""), 2000000000).c_str (), 0),
             fmp4ws::server::TokenCheck::kValid);
}

}  // namespace
