// fmp4ws-server: the notes' Node.js server done right, with GStreamer and our two elements.
//
//   fmp4ws-server [--port 8080] [--ingest-port 8081] [options]
//   fmp4ws-server --relay http://ORIGIN:8080/stream.mp4 [--relay URL2 ...] [--relay-name NAME]
//   fmp4ws-server token --secret S [--stream NAME | --list | --metrics] [--ttl SECONDS] [--base-url URL]
//
// - TCP ingest (the notes' workflow): ffmpeg ... -f mp4 tcp://host:8081 publishes the default
//   stream, watched at http://host:8080/ (WebSocket ws://host:8080/ws or ws://host:8080/).
//   Publishers come one after another; a second concurrent publisher is refused (its
//   connection is closed at once, logged). Viewers stay connected between publishers and get
//   the new init segment when the next one starts.
// - HTTP ingest: ffmpeg ... -f mp4 -method PUT http://host:8080/live/NAME (or POST, chunked)
//   publishes stream NAME, watched at http://host:8080/live/NAME/. GET /streams lists streams;
//   GET /metrics is the Prometheus text of every stream, the accept loop and the process.
// - Edges (--relay URL): a stream pulled over HTTP from an origin's progressive fMP4 (GET
//   /stream.mp4 of another fmp4ws-server or websocketsink), one connection whatever the number
//   of viewers, reconnected with backoff (publisher.h Publishers::start_relay).
// - Each stream: one viewer pipeline (appsrc ! websocketsink on the shared server) that lives
//   as long as the server, and one ingest pipeline per publisher (appsrc ! fmp4initcache !
//   appsink). An ingest error (garbage, a stall, a disconnect mid-box) ends that publisher,
//   never the server or other streams.
//
// Where things are (tools/server/):
//   options.{h,cpp}          the flags (an Options struct) and --help
//   stream_registry.{h,cpp}  streams, their viewer pipelines, GET /streams, GET /metrics
//   publisher.{h,cpp}        publishers: TCP and HTTP ingest, their pipelines, timeouts
//   routes.{h,cpp}           URL layout (stream names, paths) and the /streams JSON: pure
//   log.{h,cpp}              the timestamped log lines
// This file: parse, init, wire, run, shut down. Everything runs on the main thread (GLib's
// default main context) but the ingest pipelines' streaming threads (Stream::push).
#include "config.h"  // FMP4WS_PLUGIN_DIR

#include <gst/gst.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include <map>
#include <string>

#include "server/log.h"
#include "server/options.h"
#include "server/publisher.h"
#include "server/stream_registry.h"
#include "http_server.h"  // gst/server: our own listener (HttpServer::ListenFor)
#include "server/routes.h"
#include "token.h"          // gst/server: signed links

using namespace fmp4ws::tools;

namespace {

// Both elements of the plugin are in the registry (and loadable).
bool
have_fmp4ws_elements ()
{
  bool ok = true;
  for (const char *name : {"websocketsink", "fmp4initcache"}) {
    GstElementFactory *f = gst_element_factory_find (name);
    ok = ok && f;
    if (f)
      gst_object_unref (f);
  }
  return ok;
}

// `fmp4ws-server token ...`: prints a signed viewer (or /streams) URL; exit status.
int
run_token_command (int argc, char **argv)
{
  TokenCommand cmd;
  std::string error;
  if (!parse_token_command (&argc, &argv, &cmd, &error)) {
    g_printerr ("%s\n", error.c_str ());
    return 2;
  }
  const int64_t expiry = g_get_real_time () / G_USEC_PER_SEC + cmd.ttl;
  const std::string path =
      cmd.list      ? "/streams"
      : cmd.metrics ? "/metrics"
      : cmd.publish ? publish_token_path (cmd.stream)
                    : token_path (cmd.stream);
  const std::string token = fmp4ws::server::MakeToken (cmd.secret, path, expiry);
  const std::string url = cmd.list      ? streams_url (cmd.base_url, token)
                          : cmd.metrics ? metrics_url (cmd.base_url, token)
                          : cmd.publish ? publish_url (cmd.base_url, cmd.stream, token)
                                        : viewer_url (cmd.base_url, cmd.stream, token);
  g_print ("%s\n", url.c_str ());
  return 0;
}

gboolean
on_signal (gpointer loop)
{
  log_msg ("shutting down");
  g_main_loop_quit (static_cast<GMainLoop *> (loop));
  return G_SOURCE_REMOVE;
}

}  // namespace

int
main (int argc, char **argv)
{
  if (is_token_command (argc, argv))
    return run_token_command (argc, argv);
  Options o;
  std::string error;
  if (!parse_options (&argc, &argv, gst_init_get_option_group (), &o, &error)) {
    g_printerr ("%s\n", error.c_str ());
    return 2;
  }
  gst_init (&argc, &argv);
  if (!have_fmp4ws_elements ()) {
    // Installed with a prefix GStreamer does not scan (meson's default /usr/local): look in the
    // folder this program's plugin was installed into.
    gst_registry_scan_path (gst_registry_get (), FMP4WS_PLUGIN_DIR);
    if (!have_fmp4ws_elements ()) {
      g_printerr ("the fmp4ws GStreamer plugin is not found: set GST_PLUGIN_PATH to its folder\n"
                  "(not in GStreamer's registry, nor in " FMP4WS_PLUGIN_DIR ")\n");
      return 1;
    }
  }

  GMainLoop *loop = g_main_loop_new (nullptr, FALSE);
  SoupServer *server = soup_server_new ("server-header", "fmp4ws-server ", NULL);
  // Our own listening sockets and accept loop (gst/server/http_server.h), not libsoup's
  // soup_server_listen* (3.2.3: stops accepting for good after one failed accept, no request
  // timeout): a connection budget, request-timeout and caps on requests still in HTTP.
  std::map<std::string, guint64> refused;
  gint64 refused_logged = G_MININT64 / 2;
  fmp4ws::server::HttpServer::Hooks hooks;
  hooks.error = [] (const std::string &m) { log_msg ("error: %s", m.c_str ()); };
  hooks.warning = [] (const std::string &m) { log_msg ("warning: %s", m.c_str ()); };
  hooks.info = [] (const std::string &m) { log_msg ("%s", m.c_str ()); };
  hooks.refused = [&] (const char *why) {
    // Counted by reason; logged at most every 10 s (a flood must not flood the log).
    refused[why]++;
    gint64 now = g_get_monotonic_time ();
    if (now - refused_logged < 10 * G_USEC_PER_SEC)
      return;
    refused_logged = now;
    std::string counts;
    for (auto &[reason, n] : refused)
      counts += (counts.empty () ? "" : ", ") + reason + " " + std::to_string (n);
    log_msg ("connections refused so far: %s", counts.c_str ());
  };
  // HTTP ingest takes its requests at got-headers, before any body is read (set below).
  Publishers *ingest = nullptr;
  hooks.got_headers = [&ingest] (SoupServerMessage *msg) {
    if (ingest)
      ingest->on_request_headers (msg);
  };
  fmp4ws::server::HttpServer http (std::move (hooks));
  if (o.address && o.address->empty ()) {
    g_printerr ("--address must be an IP address or a host name\n");
    return 2;
  }
  fmp4ws::server::HttpServer::Options ho;
  ho.address = o.address ? *o.address : "";
  ho.port = unsigned (o.port);
  if (o.tls_cert) {
    ho.tls_cert_file = *o.tls_cert;
    ho.tls_key_file = o.tls_key ? *o.tls_key : *o.tls_cert;
  }
  ho.max_connections = unsigned (o.max_connections);
  ho.request_timeout = unsigned (o.request_timeout);
  ho.max_http_connections = unsigned (o.max_http_connections);
  ho.max_connections_per_address = unsigned (o.max_connections_per_address);
  {
    StreamRegistry streams (server, o);
    Publishers publishers (streams, o);
    publishers.add_http_routes (server);
    ingest = &publishers;
    const double start_time_s = double (g_get_real_time ()) / G_USEC_PER_SEC;
    streams.process_metrics = [&] (fmp4ws::server::MetricsInput *in) {
      in->connections = fmp4ws::server::ConnectionMetrics{
          http.open_connections (), http.connection_budget (), http.http_connections (),
          http.http_connection_budget ()};
      // The accept loop's refusals (budget, per-address, timeout, http-connections): no stream.
      fmp4ws::server::Totals loop;
      for (auto &[why, n] : refused)
        loop.disconnects[why] = n;
      in->unassigned_refusals = loop;
      in->process = read_process_metrics (start_time_s);
    };
    streams.add_routes ();
    std::string detail;
    switch (http.ListenFor (server, nullptr, ho, &detail)) {
      case fmp4ws::server::HttpServer::Error::kNone:
        break;
      case fmp4ws::server::HttpServer::Error::kTlsCertificate:
        g_printerr ("TLS certificate: %s\n", detail.c_str ());
        return 1;
      case fmp4ws::server::HttpServer::Error::kListen:
        g_printerr ("cannot listen: %s\n", detail.c_str ());
        return 1;
    }
    log_msg ("at most %u connections, %u of them waiting for their request headers (%d s each)",
             http.connection_budget (), http.http_connection_budget (), o.request_timeout);
    if (!streams.create (""))  // the default stream, TCP ingest's
      return 1;
    // An edge that relays the default stream takes no TCP publisher for it: the ingest
    // port is not listened to (a second source would fight the relay).
    const bool tcp_ingest = o.ingest_port > 0 && !(!o.relay_urls.empty () && o.relay_name.empty ());
    if (o.ingest_port > 0 && !tcp_ingest)
      log_msg ("TCP ingest off: the default stream is relayed (--relay)");
    if (tcp_ingest) {
      GError *err = nullptr;
      if (!publishers.listen_tcp (&err)) {
        g_printerr ("cannot listen on ingest port %d: %s\n", o.ingest_port, err->message);
        return 1;
      }
    }
    if (!publishers.start_relay (&detail)) {
      g_printerr ("--relay: %s\n", detail.c_str ());
      return 1;
    }
    const char *scheme = o.tls_cert ? "https" : "http";
    const int port = int (http.port ());
    log_msg ("viewers: %s://localhost:%d/  (streams: /streams, /live/NAME/)", scheme, port);
    if (tcp_ingest)
      log_msg ("publish: ffmpeg ... -f mp4 -movflags frag_keyframe+default_base_moof "
               "tcp://localhost:%d/", o.ingest_port);
    log_msg ("publish: ffmpeg ... -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof "
             "-method PUT %s://localhost:%d/live/NAME", scheme, port);

    g_unix_signal_add (SIGINT, on_signal, loop);
    g_unix_signal_add (SIGTERM, on_signal, loop);
    g_main_loop_run (loop);

    // Clean shutdown: publishers, then viewers (each closed with a WebSocket close), server.
    publishers.stop ();
    while (g_main_context_iteration (nullptr, FALSE))
      ;
    streams.clear ();
    http.Stop ();  // no more connections
    ingest = nullptr;
  }
  soup_server_disconnect (server);
  g_object_unref (server);
  g_main_loop_unref (loop);
  gst_deinit ();
  return 0;
}
