// fmp4ws-server's command line: the flags, their defaults and the --help text.
#pragma once

#include <glib.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fmp4ws::tools {

// What the flags set. Plain values, copied freely; read-only once the server runs.
struct Options
{
  int port = 8080;                     // --port: viewers and HTTP ingest (0: any free port)
  std::optional<std::string> address;  // --address: an IP address; unset: all interfaces
  int ingest_port = 8081;              // --ingest-port: TCP ingest, 0: off
  std::optional<std::string> tls_cert, tls_key;  // --tls-cert/--tls-key: https/wss
  // Set on every stream's websocketsink; unset: the element's default.
  std::optional<std::string> allowed_origins, sync_method, recover_policy;
  int max_clients = 1000;
  int64_t max_backlog_bytes = 16 << 20;
  double max_backlog_time = 10;        // seconds
  int publisher_timeout = 10;          // seconds without data before a publisher is dropped
  int max_streams = 16;                // HTTP-ingest streams
  int64_t max_box_size = 64 << 20;     // fmp4initcache max-box-size for each publisher
  // --token-secret / --token-secret-file: signed links on every stream (websocketsink
  // token-secret; a stream's PATH is its path prefix, "/" for the default stream) and on
  // GET /streams (PATH "/streams"); unset: none needed.
  std::optional<std::string> token_secret;
  // --no-http-ingest: no PUT/POST /live/NAME publishers (such a request gets 405).
  bool no_http_ingest = false;
  // The HTTP accept loop's bounds (gst/server/http_server.h HttpServer::Options).
  int max_connections = 0;             // --max-connections: open at once, 0: fd limit less 64
  int request_timeout = 10;            // --request-timeout: seconds to send request headers, 0: none
  int max_http_connections = 0;        // --max-http-connections: waiting for headers, 0: half the budget
  int max_connections_per_address = 0; // --max-connections-per-address: the same per address, 0: none
  // --relay URL (repeatable): this server is an edge; stream --relay-name is pulled over HTTP
  // from an origin's progressive fMP4 (http(s)://ORIGIN/stream.mp4, /live/NAME/stream.mp4,
  // maybe with ?token=), the URLs tried in turn (tools/server/relay_schedule.h). Empty: none.
  std::vector<std::string> relay_urls;
  std::string relay_name;              // --relay-name: the stream it fills, "": the default one
  double relay_retry_min = 0.5;        // --relay-retry-min: seconds, first wait before a retry
  double relay_retry_max = 30;         // --relay-retry-max: seconds, the longest wait
  int relay_idle_timeout = 0;          // --relay-idle-timeout: seconds without data from an
                                       // origin that answered before reconnecting, 0: never
};

// `fmp4ws-server token ...`: prints a signed viewer URL.
struct TokenCommand
{
  std::string secret;                          // --secret or --secret-file (required)
  std::string stream;                          // --stream NAME; "": the default (TCP) stream
  bool list = false;                           // --list: the GET /streams URL instead
  bool metrics = false;                        // --metrics: the GET /metrics URL instead
  bool publish = false;                        // --publish: the HTTP-ingest URL of --stream NAME
  int64_t ttl = 3600;                          // --ttl SECONDS, > 0
  std::string base_url = "http://localhost:8080";  // --base-url: where viewers reach the server
};

// Parses the command line into `opt` (which holds the defaults) and removes what it parsed from
// argv. `extra` (may be null; taken) is another option group, e.g. gst_init_get_option_group ().
// --help prints the help and exits 0. False on a bad command line, with the message in `error`.
bool parse_options (int *argc, char ***argv, GOptionGroup *extra, Options *opt,
                    std::string *error);

// Whether argv names the `token` subcommand (argv[1] == "token").
bool is_token_command (int argc, char **argv);
// Parses `fmp4ws-server token [flags]` (argv[0] the program, argv[1] "token") into `cmd`.
// --help prints the help and exits 0. False on a bad command line (unknown flag, no secret,
// an empty secret, both --secret and --secret-file, ttl <= 0, an invalid stream name, a base
// URL that is not http(s)://), with the message in `error`.
bool parse_token_command (int *argc, char ***argv, TokenCommand *cmd, std::string *error);

}  // namespace fmp4ws::tools
