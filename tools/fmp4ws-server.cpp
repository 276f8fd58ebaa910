// fmp4ws-server: the notes' Node.js server done right, with GStreamer and our two elements.
//
//   fmp4ws-server [--port 8080] [--ingest-port 8081] [options]
//   fmp4ws-server token --secret S [--stream NAME] [--ttl SECONDS] [--base-url URL]
//
// - TCP ingest (the notes' workflow): ffmpeg ... -f mp4 tcp://host:8081 publishes the default
//   stream, watched at http://host:8080/ (WebSocket ws://host:8080/ws or ws://host:8080/).
//   Publishers come one after another; a second concurrent publisher is refused (its
//   connection is closed at once, logged). Viewers stay connected between publishers and get
//   the new init segment when the next one starts.
// - HTTP ingest: ffmpeg ... -f mp4 -method PUT http://host:8080/live/NAME (or POST, chunked)
//   publishes stream NAME, watched at http://host:8080/live/NAME/. GET /streams lists streams.
// - Each stream: one viewer pipeline (appsrc ! websocketsink on the shared server) that lives
//   as long as the server, and one ingest pipeline per publisher (appsrc ! fmp4initcache !
//   appsink). An ingest error (garbage, a stall, a disconnect mid-box) ends that publisher,
//   never the server or other streams.
//
// Where things are (tools/server/):
//   options.{h,cpp}          the flags (an Options struct) and --help
//   stream_registry.{h,cpp}  streams, their viewer pipelines, GET /streams
//   publisher.{h,cpp}        publishers: TCP and HTTP ingest, their pipelines, timeouts
//   routes.{h,cpp}           URL layout (stream names, paths) and the /streams JSON: pure
//   log.{h,cpp}              the timestamped log lines
// This file: parse, init, wire, run, shut down. Everything runs on the main thread (GLib's
// default main context) but the ingest pipelines' streaming threads (Stream::push).
#include "config.h"  // FMP4WS_PLUGIN_DIR

#include <gst/gst.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include <string>

#include "server/log.h"
#include "server/options.h"
#include "server/publisher.h"
#include "server/stream_registry.h"
#include "http_server.h"  // gst/server: libsoup < 3.4 workarounds
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

// On --address, or all interfaces. False with a message printed (`*exit_code` set) on failure.
bool
listen_http (SoupServer *server, const Options &o, SoupServerListenOptions lo, int *exit_code)
{
  GError *err = nullptr;
  gboolean ok;
  if (o.address) {
    GInetAddress *ia = g_inet_address_new_from_string (o.address->c_str ());
    if (!ia) {
      g_printerr ("--address must be an IP address\n");
      *exit_code = 2;
      return false;
    }
    GSocketAddress *sa = g_inet_socket_address_new (ia, o.port);
    ok = soup_server_listen (server, sa, lo, &err);
    g_object_unref (sa);
    g_object_unref (ia);
  } else {
    ok = soup_server_listen_all (server, o.port, lo, &err);
  }
  if (!ok) {
    g_printerr ("cannot listen on port %d: %s\n", o.port, err->message);
    g_error_free (err);
    *exit_code = 1;
    return false;
  }
  return true;
}

// The port the server listens on: --port, or the one the system picked for --port 0.
int
listening_port (SoupServer *server, int requested)
{
  int port = requested;
  GSList *listeners = soup_server_get_listeners (server);
  for (GSList *l = listeners; l && port == 0; l = l->next) {
    GSocketAddress *a = g_socket_get_local_address (G_SOCKET (l->data), nullptr);
    if (a && G_IS_INET_SOCKET_ADDRESS (a))
      port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (a));
    g_clear_object (&a);
  }
  g_slist_free (listeners);
  return port;
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
  const std::string path = cmd.list ? "/streams" : token_path (cmd.stream);
  const std::string token = fmp4ws::server::MakeToken (cmd.secret, path, expiry);
  const std::string url =
      cmd.list ? streams_url (cmd.base_url, token) : viewer_url (cmd.base_url, cmd.stream, token);
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
  fmp4ws::server::FixLibsoupAcceptLeak (server);  // before it listens (http_server.h)
  SoupServerListenOptions lo = SoupServerListenOptions (0);
  if (o.tls_cert) {
    GError *err = nullptr;
    const std::string &key = o.tls_key ? *o.tls_key : *o.tls_cert;
    GTlsCertificate *cert = g_tls_certificate_new_from_files (o.tls_cert->c_str (), key.c_str (), &err);
    if (!cert) {
      g_printerr ("TLS certificate: %s\n", err->message);
      return 1;
    }
    soup_server_set_tls_certificate (server, cert);
    g_object_unref (cert);
    lo = SOUP_SERVER_LISTEN_HTTPS;
  }
  {
    StreamRegistry streams (server, o);
    Publishers publishers (streams, o);
    publishers.add_http_routes (server);
    streams.add_routes ();
    int exit_code = 0;
    if (!listen_http (server, o, lo, &exit_code))
      return exit_code;
    if (!streams.create (""))  // the default stream, TCP ingest's
      return 1;
    if (o.ingest_port > 0) {
      GError *err = nullptr;
      if (!publishers.listen_tcp (&err)) {
        g_printerr ("cannot listen on ingest port %d: %s\n", o.ingest_port, err->message);
        return 1;
      }
    }
    const char *scheme = o.tls_cert ? "https" : "http";
    const int port = listening_port (server, o.port);
    log_msg ("viewers: %s://localhost:%d/  (streams: /streams, /live/NAME/)", scheme, port);
    if (o.ingest_port > 0)
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
  }
  soup_server_disconnect (server);
  g_object_unref (server);
  g_main_loop_unref (loop);
  gst_deinit ();
  return 0;
}
