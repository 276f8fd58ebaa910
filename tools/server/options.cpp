#include "options.h"

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

}  // namespace

bool
parse_options (int *argc, char ***argv, GOptionGroup *extra, Options *opt, std::string *error)
{
  StringArg address, tls_cert, tls_key, allowed_origins, sync_method, recover_policy;
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
      {"publisher-timeout", 0, 0, G_OPTION_ARG_INT, &opt->publisher_timeout, "Drop a publisher that sends nothing for this long (default 10 s)", "SECONDS"},
      {"max-streams", 0, 0, G_OPTION_ARG_INT, &opt->max_streams, "Most HTTP-ingest streams (default 16)", "N"},
      {"max-box-size", 0, 0, G_OPTION_ARG_INT64, &max_box_size, "Largest MP4 box accepted from a publisher (default 64 MiB)", "BYTES"},
      {"max-connections", 0, 0, G_OPTION_ARG_INT, &opt->max_connections, "Most HTTP connections open at once (viewers, publishers, requests), others get 503 (default 0: the file descriptor limit less 64)", "N"},
      {"request-timeout", 0, 0, G_OPTION_ARG_INT, &opt->request_timeout, "Seconds a connection may take to send its request headers, TLS handshake included (default 10, 0: no limit)", "SECONDS"},
      {"max-http-connections", 0, 0, G_OPTION_ARG_INT, &opt->max_http_connections, "Most connections waiting for their request headers at once; when full a new one closes the oldest if it waited a tenth of --request-timeout, else gets 503 (default 0: half of --max-connections)", "N"},
      {"max-connections-per-address", 0, 0, G_OPTION_ARG_INT, &opt->max_connections_per_address, "Most connections waiting for their request headers per client IP address, others get 503 (default 0: no limit; clients behind one NAT share an address)", "N"},
      {nullptr, 0, 0, G_OPTION_ARG_NONE, nullptr, nullptr, nullptr},
  };
  GOptionContext *ctx = g_option_context_new ("- live fragmented MP4 to web browsers");
  g_option_context_set_summary (
      ctx, "Publish with ffmpeg:\n"
           "  ffmpeg ... -f mp4 -movflags frag_keyframe+default_base_moof tcp://HOST:8081/\n"
           "  ffmpeg ... -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof -method PUT "
           "http://HOST:8080/live/NAME\n"
           "Watch: http://HOST:8080/ (TCP stream) or http://HOST:8080/live/NAME/; list: /streams");
  g_option_context_add_main_entries (ctx, entries, nullptr);
  if (extra)
    g_option_context_add_group (ctx, extra);
  GError *err = nullptr;
  bool ok = g_option_context_parse (ctx, argc, argv, &err);
  g_option_context_free (ctx);
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
  address.store (&opt->address);
  tls_cert.store (&opt->tls_cert);
  tls_key.store (&opt->tls_key);
  allowed_origins.store (&opt->allowed_origins);
  sync_method.store (&opt->sync_method);
  recover_policy.store (&opt->recover_policy);
  opt->max_backlog_bytes = max_backlog_bytes;
  opt->max_box_size = max_box_size;
  return true;
}

}  // namespace fmp4ws::tools
