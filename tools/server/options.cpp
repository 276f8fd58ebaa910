#include "options.h"

#include "routes.h"
#include "relay_schedule.h"

namespace fmp4ws::tools {

namespace {

// A string flag: GOption writes a gchar * (freed here), Options keeps a std::string.
struct StringArg
{
  gchar *value = nullptr;
  ~StringArg () { g_free (value); }
  void
  store (std::optional<std::string> *to) const
  {
    if (value)
      *to = value;
  }
};

// A secret from --X or --X-file (its first line). False with `error` set if both, or empty.
bool
take_secret (const StringArg &value, const StringArg &file, const char *flag,
             std::optional<std::string> *to, std::string *error)
{
  if (value.value && file.value) {
    *error = std::string ("--") + flag + " and --" + flag + "-file: give one";
    return false;
  }
  if (file.value) {
    gchar *contents = nullptr;
    GError *err = nullptr;
    if (!g_file_get_contents (file.value, &contents, nullptr, &err)) {
      *error = std::string ("--") + flag + "-file: " + err->message;
      g_error_free (err);
      return false;
    }
    std::string v = contents;
    g_free (contents);
    v = v.substr (0, v.find_first_of ("\r\n"));
    *to = v;
  } else if (value.value) {
    *to = value.value;
  } else {
    return true;
  }
  if (to->value ().empty ()) {
    *error = std::string ("--") + flag + ": the secret is empty";
    return false;
  }
  return true;
}

}  // namespace

bool
is_token_command (int argc, char **argv)
{
  return argc >= 2 && argv[1] && g_strcmp0 (argv[1], "token") == 0;
}

bool
parse_token_command (int *argc, char ***argv, TokenCommand *cmd, std::string *error)
{
  StringArg secret, secret_file, stream, base_url;
  gboolean list = FALSE, metrics = FALSE, publish = FALSE;
  gint64 ttl = cmd->ttl;
  GOptionEntry entries[] = {
      {"secret", 0, 0, G_OPTION_ARG_STRING, &secret.value, "The server's --token-secret", "S"},
      {"secret-file", 0, 0, G_OPTION_ARG_FILENAME, &secret_file.value, "Read the secret from FILE (its first line)", "FILE"},
      {"stream", 0, 0, G_OPTION_ARG_STRING, &stream.value, "Stream NAME (/live/NAME/; default: the TCP-ingest stream at /)", "NAME"},
      {"list", 0, 0, G_OPTION_ARG_NONE, &list, "A GET /streams URL instead of a viewer URL", nullptr},
      {"metrics", 0, 0, G_OPTION_ARG_NONE, &metrics, "A GET /metrics URL (Prometheus) instead of a viewer URL", nullptr},
      {"publish", 0, 0, G_OPTION_ARG_NONE, &publish, "The HTTP-ingest URL (PUT/POST) of --stream NAME instead of a viewer URL", nullptr},
      {"ttl", 0, 0, G_OPTION_ARG_INT64, &ttl, "Seconds the link is valid from now (default 3600)", "SECONDS"},
      {"base-url", 0, 0, G_OPTION_ARG_STRING, &base_url.value, "Where viewers reach the server (default http://localhost:8080)", "URL"},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  // GOption parses from argv[1]: skip the program name, "token" takes its place.
  int sub_argc = *argc - 1;
  char **sub_argv = *argv + 1;
  GOptionContext *ctx = g_option_context_new ("- print a signed viewer URL");
  g_option_context_set_summary (
      ctx, "fmp4ws-server token --secret S [--stream NAME] [--ttl SECONDS] [--base-url URL]\n"
           "The URL's ?token=EXPIRY.SIG: SIG = hex HMAC-SHA256 of \"EXPIRY:PATH\" with the secret,\n"
           "PATH = /live/NAME (/ for the default stream, /streams with --list, /metrics with --metrics,\n"
           "/live/NAME/publish with --publish).");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  GError *err = nullptr;
  bool ok = g_option_context_parse (ctx, &sub_argc, &sub_argv, &err);
  g_option_context_free (ctx);
  if (!ok) {
    *error = err->message;
    g_error_free (err);
    return false;
  }
  *argc = sub_argc + 1;
  if (sub_argc > 1) {
    *error = std::string ("token: unexpected argument ") + sub_argv[1];
    return false;
  }
  std::optional<std::string> s;
  if (!take_secret (secret, secret_file, "secret", &s, error))
    return false;
  if (!s) {
    *error = "token: --secret or --secret-file is required";
    return false;
  }
  cmd->secret = *s;
  if (stream.value)
    cmd->stream = stream.value;
  if (!cmd->stream.empty () && !valid_stream_name (cmd->stream)) {
    *error = "token: --stream: not a stream name (1 to 64 of A-Z a-z 0-9 . _ -)";
    return false;
  }
  cmd->list = list;
  cmd->metrics = metrics;
  cmd->publish = publish;
  if (int (list) + int (metrics) + int (publish) > 1) {
    *error = "token: --list, --metrics and --publish: one of them";
    return false;
  }
  if (publish && cmd->stream.empty ()) {
    *error = "token: --publish needs --stream NAME (the TCP-ingest stream has no HTTP ingest)";
    return false;
  }
  if (ttl <= 0 || ttl > int64_t (100) * 365 * 24 * 3600) {
    *error = "token: --ttl must be 1 second to 100 years";
    return false;
  }
  cmd->ttl = ttl;
  if (base_url.value)
    cmd->base_url = base_url.value;
  if (!g_str_has_prefix (cmd->base_url.c_str (), "http://") &&
      !g_str_has_prefix (cmd->base_url.c_str (), "https://")) {
    *error = "token: --base-url must start with http:// or https://";
    return false;
  }
  return true;
}

bool
parse_options (int *argc, char ***argv, GOptionGroup *extra, Options *opt, std::string *error)
{
  StringArg address, tls_cert, tls_key, allowed_origins, sync_method, recover_policy;
  StringArg token_secret, token_secret_file;
  gboolean no_http_ingest = FALSE;
  gchar **relay = nullptr;
  StringArg relay_name;
  gint64 max_backlog_bytes = opt->max_backlog_bytes, max_box_size = opt->max_box_size;
  GOptionEntry entries[] = {
      {"port", 'p', 0, G_OPTION_ARG_INT, &opt->port, "HTTP/WebSocket port for viewers and HTTP ingest (default 8080)", "PORT"},
      {"address", 'a', 0, G_OPTION_ARG_STRING, &address.value, "Address to listen on (default: all interfaces)", "ADDR"},
      {"ingest-port", 'i', 0, G_OPTION_ARG_INT, &opt->ingest_port, "TCP ingest port for ffmpeg's tcp:// output (default 8081, 0: off)", "PORT"},
      {"tls-cert", 0, 0, G_OPTION_ARG_FILENAME, &tls_cert.value, "PEM certificate: serve https/wss", "FILE"},
      {"tls-key", 0, 0, G_OPTION_ARG_FILENAME, &tls_key.value, "PEM private key (default: in the certificate file)", "FILE"},
      {"allowed-origins", 0, 0, G_OPTION_ARG_STRING, &allowed_origins.value, "Comma-separated Origins allowed to watch (default: any)", "LIST"},
      {"max-clients", 0, 0, G_OPTION_ARG_INT, &opt->max_clients, "Most viewers per stream (default 1000, 0: no limit)", "N"},
      {"sync-method", 0, 0, G_OPTION_ARG_STRING, &sync_method.value, "latest-keyframe (default) or next-keyframe", "METHOD"},
      {"recover-policy", 0, 0, G_OPTION_ARG_STRING, &recover_policy.value, "Slow viewers: keyframe (default) or disconnect", "POLICY"},
      {"max-backlog-bytes", 0, 0, G_OPTION_ARG_INT64, &max_backlog_bytes, "Per-viewer backlog bound in bytes (default 16 MiB)", "BYTES"},
      {"max-backlog-time", 0, 0, G_OPTION_ARG_DOUBLE, &opt->max_backlog_time, "Per-viewer backlog bound in seconds (default 10)", "SECONDS"},
      {"publisher-timeout", 0, 0, G_OPTION_ARG_INT, &opt->publisher_timeout, "Drop a publisher that sends nothing for this long (default 10 s; a relay: until its origin answers, then TCP keepalive probes after this long)", "SECONDS"},
      {"max-streams", 0, 0, G_OPTION_ARG_INT, &opt->max_streams, "Most HTTP-ingest streams (default 16)", "N"},
      {"max-box-size", 0, 0, G_OPTION_ARG_INT64, &max_box_size, "Largest MP4 box accepted from a publisher (default 64 MiB)", "BYTES"},
      {"token-secret", 0, 0, G_OPTION_ARG_STRING, &token_secret.value, "Signed links: viewers need ?token= made with this secret (fmp4ws-server token; default: none)", "S"},
      {"no-http-ingest", 0, 0, G_OPTION_ARG_NONE, &no_http_ingest, "No HTTP ingest: PUT/POST /live/NAME gets 405 (default: on; with a token secret it needs a publish token)", nullptr},
      {"token-secret-file", 0, 0, G_OPTION_ARG_FILENAME, &token_secret_file.value, "The same, read from FILE (its first line; not in the process list)", "FILE"},
      {"max-connections", 0, 0, G_OPTION_ARG_INT, &opt->max_connections, "Most HTTP connections open at once (viewers, publishers, requests), others get 503 (default 0: the file descriptor limit less 64)", "N"},
      {"request-timeout", 0, 0, G_OPTION_ARG_INT, &opt->request_timeout, "Seconds a connection may take to send its request headers, TLS handshake included (default 10, 0: no limit)", "SECONDS"},
      {"max-http-connections", 0, 0, G_OPTION_ARG_INT, &opt->max_http_connections, "Most connections waiting for their request headers at once; when full a new one closes the oldest if it waited a tenth of --request-timeout, else gets 503 (default 0: half of --max-connections)", "N"},
      {"max-connections-per-address", 0, 0, G_OPTION_ARG_INT, &opt->max_connections_per_address, "Most connections waiting for their request headers per client IP address, others get 503 (default 0: no limit; clients behind one NAT share an address)", "N"},
      {"relay", 0, 0, G_OPTION_ARG_STRING_ARRAY, &relay, "Edge: pull stream --relay-name from an origin's progressive fMP4, http(s)://ORIGIN:8080/stream.mp4 or .../live/NAME/stream.mp4 (?token= if the origin signs links); repeat for more origins, tried in turn (default: none)", "URL"},
      {"relay-name", 0, 0, G_OPTION_ARG_STRING, &relay_name.value, "The stream --relay fills: NAME at /live/NAME/ (default: the default stream at /, and then no TCP ingest)", "NAME"},
      {"relay-retry-min", 0, 0, G_OPTION_ARG_DOUBLE, &opt->relay_retry_min, "Seconds before reconnecting to an origin that ended its stream; the wait doubles after each round of failed origins (default 0.5)", "SECONDS"},
      {"relay-retry-max", 0, 0, G_OPTION_ARG_DOUBLE, &opt->relay_retry_max, "The longest wait between rounds of reconnects (default 30)", "SECONDS"},
      {"relay-idle-timeout", 0, 0, G_OPTION_ARG_INT, &opt->relay_idle_timeout, "Reconnect when an origin that answered sends nothing for this long: a hung origin process (its kernel still answers TCP keepalive) is left for the next --relay; viewers then get the origin's init and GOP again as a new stream (default 0: never, an origin without a publisher may be silent for any time)", "SECONDS"},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("- live fragmented MP4 to web browsers");
  g_option_context_set_summary (
      ctx, "Publish with ffmpeg:\n"
           "  ffmpeg ... -f mp4 -movflags frag_keyframe+default_base_moof tcp://HOST:8081/\n"
           "  ffmpeg ... -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -method PUT "
           "http://HOST:8080/live/NAME\n"
           "Watch: http://HOST:8080/ (TCP stream) or http://HOST:8080/live/NAME/; list: /streams; Prometheus: /metrics\n"
           "Edge: fmp4ws-server --relay http://ORIGIN:8080/stream.mp4 (pulls the origin's default stream)\n"
           "Signed viewer URL (with --token-secret): fmp4ws-server token --help");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  if (extra)
    g_option_context_add_group (ctx, extra);
  GError *err = nullptr;
  bool ok = g_option_context_parse (ctx, argc, argv, &err);
  g_option_context_free (ctx);
  if (relay) {
    for (gchar **u = relay; *u; u++)
      opt->relay_urls.push_back (*u);
    g_strfreev (relay);
  }
  if (!ok) {
    *error = err->message;
    g_error_free (err);
    return false;
  }
  for (int v : {opt->max_connections, opt->request_timeout, opt->max_http_connections,
                opt->max_connections_per_address})
    if (v < 0) {
      *error = "--max-connections, --request-timeout, --max-http-connections and "
               "--max-connections-per-address take a number >= 0";
      return false;
    }
  for (const std::string &u : opt->relay_urls)
    if (!g_str_has_prefix (u.c_str (), "http://") && !g_str_has_prefix (u.c_str (), "https://")) {
      *error = "--relay: not an http:// or https:// URL: " + redact_token (u);
      return false;
    }
  if (relay_name.value) {
    if (opt->relay_urls.empty ()) {
      *error = "--relay-name needs --relay URL";
      return false;
    }
    opt->relay_name = relay_name.value;
    if (!valid_stream_name (opt->relay_name)) {
      *error = "--relay-name: not a stream name (1 to 64 of A-Z a-z 0-9 . _ -)";
      return false;
    }
  }
  if (opt->relay_idle_timeout < 0 || opt->relay_idle_timeout > 86400) {
    *error = "--relay-idle-timeout takes 0 (never) to 86400 s";
    return false;
  }
  if (!(opt->relay_retry_min > 0 && opt->relay_retry_min <= 3600 &&
        opt->relay_retry_max >= opt->relay_retry_min && opt->relay_retry_max <= 86400)) {
    *error = "--relay-retry-min must be > 0 and <= 3600 s, --relay-retry-max >= it and <= 86400 s";
    return false;
  }
  address.store (&opt->address);
  tls_cert.store (&opt->tls_cert);
  tls_key.store (&opt->tls_key);
  allowed_origins.store (&opt->allowed_origins);
  sync_method.store (&opt->sync_method);
  recover_policy.store (&opt->recover_policy);
  opt->max_backlog_bytes = max_backlog_bytes;
  opt->max_box_size = max_box_size;
  opt->no_http_ingest = no_http_ingest;
  return take_secret (token_secret, token_secret_file, "token-secret", &opt->token_secret, error);
}

}  // namespace fmp4ws::tools
