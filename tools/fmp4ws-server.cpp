// fmp4ws-server: the notes' Node.js server done right, with GStreamer and our two elements.
//
//   fmp4ws-server [--port 8080] [--ingest-port 8081] [options]
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
#include "config.h" // FMP4WS_PLUGIN_DIR

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>
#include <glib-unix.h>
#include <libsoup/soup.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/options.h"
#include "server/routes.h"

using namespace fmp4ws::tools;

namespace {

struct Stream;

struct Publisher
{
  Stream *stream = nullptr;
  std::string peer;
  GstElement *pipeline = nullptr;  // appsrc ! fmp4initcache ! appsink
  GstElement *src = nullptr;
  guint bus_watch = 0;
  guint timer = 0;
  gint64 last_data_us = 0;
  guint64 bytes = 0;
  bool ended = false;
  // TCP publisher
  GSocketConnection *conn = nullptr;
  GCancellable *cancel = nullptr;
  // HTTP publisher
  SoupServerMessage *msg = nullptr;
};

struct Stream
{
  std::string name;    // "" for the default (TCP) stream
  std::string prefix;  // "" or /live/NAME
  GstElement *pipeline = nullptr;  // appsrc ! websocketsink
  GstElement *in = nullptr;
  GstElement *sink = nullptr;
  Publisher *publisher = nullptr;
  GstCaps *caps = nullptr;         // last caps given to `in` (streaming thread of the ingest)
  GMutex caps_lock;
  guint publishers = 0;
};

struct App
{
  Options opt;
  GMainLoop *loop = nullptr;
  SoupServer *server = nullptr;
  GSocketService *ingest = nullptr;
  std::map<std::string, std::unique_ptr<Stream>> streams;
};

App app;

const gint64 kMaxIngestQueue = 16 << 20;  // bytes waiting in an ingest appsrc

void
log_msg (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

void
log_msg (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  GDateTime *now = g_date_time_new_now_local ();
  gchar *ts = g_date_time_format (now, "%H:%M:%S");
  g_print ("%s %s\n", ts, s);
  g_free (ts);
  g_date_time_unref (now);
  g_free (s);
}

const char *
stream_label (const Stream *s)
{
  return s->name.empty () ? "(default)" : s->name.c_str ();
}

/* ---------------------------------------------------------------------------------------- */
/* Viewer side                                                                               */

Stream *
create_stream (const std::string &name)
{
  auto s = std::make_unique<Stream> ();
  s->name = name;
  s->prefix = viewer_prefix (name);
  g_mutex_init (&s->caps_lock);
  GError *err = nullptr;
  s->pipeline = gst_parse_launch (
      "appsrc name=in is-live=true format=time max-bytes=67108864 leaky-type=downstream "
      "! websocketsink name=sink",
      &err);
  if (!s->pipeline) {
    log_msg ("cannot build the viewer pipeline: %s", err->message);
    g_error_free (err);
    return nullptr;
  }
  s->in = gst_bin_get_by_name (GST_BIN (s->pipeline), "in");
  s->sink = gst_bin_get_by_name (GST_BIN (s->pipeline), "sink");
  const Options &o = app.opt;
  g_object_set (s->sink, "soup-server", app.server, "path-prefix", s->prefix.c_str (),
                "max-clients", guint (o.max_clients), "max-backlog-bytes",
                guint64 (o.max_backlog_bytes), "max-backlog-time",
                guint64 (o.max_backlog_time * GST_SECOND), NULL);
  if (o.allowed_origins)
    g_object_set (s->sink, "allowed-origins", o.allowed_origins->c_str (), NULL);
  if (o.sync_method)
    gst_util_set_object_arg (G_OBJECT (s->sink), "sync-method", o.sync_method->c_str ());
  if (o.recover_policy)
    gst_util_set_object_arg (G_OBJECT (s->sink), "recover-policy", o.recover_policy->c_str ());
  if (gst_element_set_state (s->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    log_msg ("cannot start the viewer pipeline of stream %s", name.c_str ());
    return nullptr;
  }
  Stream *raw = s.get ();
  app.streams[name] = std::move (s);
  log_msg ("stream %s: viewers at %s/", stream_label (raw), raw->prefix.c_str ());
  return raw;
}

void
destroy_stream (Stream *s)
{
  gst_element_set_state (s->pipeline, GST_STATE_NULL);
  gst_object_unref (s->in);
  gst_object_unref (s->sink);
  gst_object_unref (s->pipeline);
  if (s->caps)
    gst_caps_unref (s->caps);
  g_mutex_clear (&s->caps_lock);
}

/* ---------------------------------------------------------------------------------------- */
/* Publishers                                                                                */

// Ingest streaming thread: a fragment or init segment from fmp4initcache, to the viewers.
GstFlowReturn
on_new_sample (GstAppSink *sink, gpointer user_data)
{
  Stream *s = static_cast<Stream *> (user_data);
  GstSample *sample = gst_app_sink_pull_sample (sink);
  if (!sample)
    return GST_FLOW_EOS;
  GstCaps *caps = gst_sample_get_caps (sample);
  g_mutex_lock (&s->caps_lock);
  if (caps && (!s->caps || !gst_caps_is_equal (caps, s->caps))) {
    gst_caps_replace (&s->caps, caps);
    gst_app_src_set_caps (GST_APP_SRC (s->in), caps);
  }
  g_mutex_unlock (&s->caps_lock);
  GstBuffer *buf = gst_sample_get_buffer (sample);
  GstFlowReturn ret = gst_app_src_push_buffer (GST_APP_SRC (s->in), gst_buffer_ref (buf));
  gst_sample_unref (sample);
  return ret == GST_FLOW_OK ? GST_FLOW_OK : GST_FLOW_OK;  // viewers never stop an ingest
}

void finish_publisher (Publisher *p);

gboolean
finish_publisher_idle (gpointer user_data)
{
  finish_publisher (static_cast<Publisher *> (user_data));
  return G_SOURCE_REMOVE;
}

// Ends a publisher (idempotent); the viewer pipeline and its viewers stay. `cut` closes its
// connection (not for an HTTP publisher that finished its request: it gets a response).
void
end_publisher (Publisher *p, const std::string &reason, bool cut = true)
{
  if (p->ended)
    return;
  p->ended = true;
  log_msg ("stream %s: publisher %s ended after %" G_GUINT64_FORMAT " bytes: %s",
           stream_label (p->stream), p->peer.c_str (), p->bytes, reason.c_str ());
  if (p->cancel)
    g_cancellable_cancel (p->cancel);
  if (p->conn)
    g_io_stream_close (G_IO_STREAM (p->conn), nullptr, nullptr);
  if (p->msg && cut) {
    // An HTTP publisher still sending: cut its connection.
    GSocket *sock = soup_server_message_get_socket (p->msg);
    if (sock && !g_socket_is_closed (sock))
      g_socket_shutdown (sock, TRUE, TRUE, nullptr);
  }
  if (p->stream->publisher == p)
    p->stream->publisher = nullptr;
  // Tear down outside the callback that got us here.
  g_idle_add (finish_publisher_idle, p);
}

void
finish_publisher (Publisher *p)
{
  Stream *s = p->stream;
  if (p->timer)
    g_source_remove (p->timer);
  if (p->bus_watch)
    g_source_remove (p->bus_watch);
  gst_element_set_state (p->pipeline, GST_STATE_NULL);
  gst_object_unref (p->src);
  gst_object_unref (p->pipeline);
  g_clear_object (&p->cancel);
  g_clear_object (&p->conn);
  if (p->msg) {
    g_signal_handlers_disconnect_by_data (p->msg, p);
    g_object_set_data (G_OBJECT (p->msg), "fmp4ws-publisher", nullptr);
    g_object_unref (p->msg);
  }
  delete p;
  // A stream whose publisher never sent an init segment (garbage) is not kept around.
  guint viewers = 0;
  g_object_get (s->sink, "num-clients", &viewers, NULL);
  g_mutex_lock (&s->caps_lock);
  bool empty = !s->caps;
  g_mutex_unlock (&s->caps_lock);
  if (empty && viewers == 0 && !s->publisher && !s->name.empty ()) {
    log_msg ("stream %s: removed (no init segment was ever received)", s->name.c_str ());
    std::string name = s->name;
    destroy_stream (s);
    app.streams.erase (name);
  }
}

gboolean
on_ingest_bus (GstBus *, GstMessage *m, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR || GST_MESSAGE_TYPE (m) == GST_MESSAGE_WARNING) {
    GError *err = nullptr;
    gchar *dbg = nullptr;
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      gst_message_parse_error (m, &err, &dbg);
    else
      gst_message_parse_warning (m, &err, &dbg);
    std::string what = std::string (err->message) + (dbg ? std::string (": ") + dbg : "");
    if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR)
      end_publisher (p, "ingest error: " + what);
    else
      log_msg ("stream %s: publisher %s: %s", stream_label (p->stream), p->peer.c_str (),
               what.c_str ());
    g_error_free (err);
    g_free (dbg);
  }
  return G_SOURCE_CONTINUE;
}

gboolean
on_publisher_timer (gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  if (!p->ended &&
      g_get_monotonic_time () - p->last_data_us > gint64 (app.opt.publisher_timeout) * G_USEC_PER_SEC) {
    p->timer = 0;
    end_publisher (p, "stalled: no data for " + std::to_string (app.opt.publisher_timeout) + " s");
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

Publisher *
start_publisher (Stream *s, const std::string &peer)
{
  Publisher *p = new Publisher ();
  p->stream = s;
  p->peer = peer;
  p->last_data_us = g_get_monotonic_time ();
  gchar *desc = g_strdup_printf ("appsrc name=src format=bytes max-bytes=%" G_GINT64_FORMAT
                                 " ! fmp4initcache max-box-size=%" G_GINT64_FORMAT
                                 " ! appsink name=out sync=false",
                                 kMaxIngestQueue, app.opt.max_box_size);
  p->pipeline = gst_parse_launch (desc, nullptr);
  g_free (desc);
  p->src = gst_bin_get_by_name (GST_BIN (p->pipeline), "src");
  GstElement *out = gst_bin_get_by_name (GST_BIN (p->pipeline), "out");
  GstAppSinkCallbacks cb = {};
  cb.new_sample = on_new_sample;
  gst_app_sink_set_callbacks (GST_APP_SINK (out), &cb, s, nullptr);
  gst_object_unref (out);
  GstBus *bus = gst_element_get_bus (p->pipeline);
  p->bus_watch = gst_bus_add_watch (bus, on_ingest_bus, p);
  gst_object_unref (bus);
  gst_element_set_state (p->pipeline, GST_STATE_PLAYING);
  p->timer = g_timeout_add_seconds (1, on_publisher_timer, p);
  s->publisher = p;
  s->publishers++;
  log_msg ("stream %s: publisher #%u from %s", stream_label (s), s->publishers, peer.c_str ());
  return p;
}

// Bytes from a publisher into its ingest pipeline (bounded).
bool
feed_publisher (Publisher *p, GBytes *bytes)
{
  if (p->ended)
    return false;
  p->last_data_us = g_get_monotonic_time ();
  p->bytes += g_bytes_get_size (bytes);
  if (gint64 (gst_app_src_get_current_level_bytes (GST_APP_SRC (p->src))) > kMaxIngestQueue) {
    end_publisher (p, "ingest pipeline stuck (more than 16 MiB waiting)");
    return false;
  }
  if (gst_app_src_push_buffer (GST_APP_SRC (p->src), gst_buffer_new_wrapped_bytes (bytes)) !=
      GST_FLOW_OK) {
    end_publisher (p, "ingest pipeline stopped");
    return false;
  }
  return true;
}

/* TCP ingest ------------------------------------------------------------------------------ */

void
on_tcp_read (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  GError *err = nullptr;
  GBytes *bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), res, &err);
  if (p->ended) {  // cancelled: the publisher is being torn down
    g_clear_error (&err);
    if (bytes)
      g_bytes_unref (bytes);
    return;
  }
  if (!bytes) {
    end_publisher (p, std::string ("read error: ") + err->message);
    g_error_free (err);
    return;
  }
  if (g_bytes_get_size (bytes) == 0) {
    g_bytes_unref (bytes);
    end_publisher (p, "publisher disconnected");
    return;
  }
  bool ok = feed_publisher (p, bytes);
  g_bytes_unref (bytes);
  if (ok)
    g_input_stream_read_bytes_async (g_io_stream_get_input_stream (G_IO_STREAM (p->conn)), 65536,
                                     G_PRIORITY_DEFAULT, p->cancel, on_tcp_read, p);
}

std::string
peer_of (GSocketConnection *conn)
{
  GSocketAddress *a = g_socket_connection_get_remote_address (conn, nullptr);
  if (!a)
    return "?";
  gchar *ip = g_inet_address_to_string (g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (a)));
  std::string s = std::string (ip) + ":" +
                  std::to_string (g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (a)));
  g_free (ip);
  g_object_unref (a);
  return s;
}

gboolean
on_tcp_incoming (GSocketService *, GSocketConnection *conn, GObject *, gpointer)
{
  Stream *s = app.streams[""].get ();
  std::string peer = peer_of (conn);
  if (s->publisher) {
    log_msg ("stream %s: refused a second publisher from %s (%s is publishing)",
             stream_label (s), peer.c_str (), s->publisher->peer.c_str ());
    g_io_stream_close (G_IO_STREAM (conn), nullptr, nullptr);
    return TRUE;
  }
  Publisher *p = start_publisher (s, peer);
  p->conn = G_SOCKET_CONNECTION (g_object_ref (conn));
  p->cancel = g_cancellable_new ();
  g_input_stream_read_bytes_async (g_io_stream_get_input_stream (G_IO_STREAM (conn)), 65536,
                                   G_PRIORITY_DEFAULT, p->cancel, on_tcp_read, p);
  return TRUE;
}

/* HTTP ingest and endpoints --------------------------------------------------------------- */

void
on_http_chunk (SoupServerMessage *, GBytes *chunk, gpointer user_data)
{
  feed_publisher (static_cast<Publisher *> (user_data), chunk);
}

void
on_http_finished (SoupServerMessage *, gpointer user_data)
{
  end_publisher (static_cast<Publisher *> (user_data), "publisher disconnected");
}

// Early handler (after the headers): PUT/POST /live/NAME starts a publisher.
void
on_ingest_headers (SoupServer *, SoupServerMessage *msg, const char *path, GHashTable *,
                   gpointer)
{
  const char *method = soup_server_message_get_method (msg);
  if (strcmp (method, "PUT") != 0 && strcmp (method, "POST") != 0)
    return;
  std::optional<std::string> name = ingest_stream_name (path);
  if (!name) {
    soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, nullptr);
    return;
  }
  auto it = app.streams.find (*name);
  Stream *s = it == app.streams.end () ? nullptr : it->second.get ();
  if (s && s->publisher) {
    log_msg ("stream %s: refused a second publisher from %s", name->c_str (),
             soup_server_message_get_remote_host (msg));
    soup_server_message_set_status (msg, SOUP_STATUS_CONFLICT, nullptr);
    return;
  }
  if (!s) {
    if (app.streams.size () > size_t (app.opt.max_streams)) {
      soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, nullptr);
      return;
    }
    s = create_stream (*name);
    if (!s) {
      soup_server_message_set_status (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, nullptr);
      return;
    }
  }
  Publisher *p = start_publisher (s, soup_server_message_get_remote_host (msg));
  p->msg = SOUP_SERVER_MESSAGE (g_object_ref (msg));
  g_object_set_data (G_OBJECT (msg), "fmp4ws-publisher", p);
  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (on_http_chunk), p);
  g_signal_connect (msg, "finished", G_CALLBACK (on_http_finished), p);
}

// The whole request body was read: a finished HTTP publisher. Answering here keeps the
// stream's own handler (viewers only) from running.
void
on_request_read (SoupServer *, SoupServerMessage *msg, gpointer)
{
  Publisher *p = static_cast<Publisher *> (g_object_get_data (G_OBJECT (msg), "fmp4ws-publisher"));
  if (!p)
    return;
  bool failed = p->ended;  // already ended by an ingest error
  end_publisher (p, "publisher finished", false);
  if (failed) {
    soup_server_message_set_status (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY, nullptr);
    return;
  }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "ok\n", 3);
}

void
on_streams (SoupServer *, SoupServerMessage *msg, const char *, GHashTable *, gpointer)
{
  std::vector<StreamSummary> list;
  for (auto &[name, s] : app.streams) {
    StreamSummary sum;
    sum.name = name;
    sum.path = s->prefix + "/";
    sum.publishing = s->publisher != nullptr;
    guint viewers = 0;
    g_object_get (s->sink, "num-clients", &viewers, NULL);
    sum.viewers = viewers;
    sum.publishers = s->publishers;
    g_mutex_lock (&s->caps_lock);
    if (s->caps) {
      const char *codecs = gst_structure_get_string (gst_caps_get_structure (s->caps, 0), "codecs");
      sum.codecs = codecs ? codecs : "";
    }
    g_mutex_unlock (&s->caps_lock);
    list.push_back (std::move (sum));
  }
  std::string json = streams_json (list);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, json.data (),
                                    json.size ());
}

gboolean
on_signal (gpointer)
{
  log_msg ("shutting down");
  g_main_loop_quit (app.loop);
  return G_SOURCE_REMOVE;
}

}  // namespace

// Both elements of the plugin are in the registry (and loadable).
static bool
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

int
main (int argc, char **argv)
{
  Options &o = app.opt;
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

  GError *err = nullptr;
  app.loop = g_main_loop_new (nullptr, FALSE);
  app.server = soup_server_new ("server-header", "fmp4ws-server ", NULL);
  SoupServerListenOptions lo = SoupServerListenOptions (0);
  if (o.tls_cert) {
    const std::string &key = o.tls_key ? *o.tls_key : *o.tls_cert;
    GTlsCertificate *cert = g_tls_certificate_new_from_files (o.tls_cert->c_str (), key.c_str (), &err);
    if (!cert) {
      g_printerr ("TLS certificate: %s\n", err->message);
      return 1;
    }
    soup_server_set_tls_certificate (app.server, cert);
    g_object_unref (cert);
    lo = SOUP_SERVER_LISTEN_HTTPS;
  }
  soup_server_add_early_handler (app.server, "/live", on_ingest_headers, nullptr, nullptr);
  soup_server_add_handler (app.server, "/streams", on_streams, nullptr, nullptr);
  g_signal_connect (app.server, "request-read", G_CALLBACK (on_request_read), nullptr);
  gboolean ok;
  if (o.address) {
    GInetAddress *ia = g_inet_address_new_from_string (o.address->c_str ());
    if (!ia) {
      g_printerr ("--address must be an IP address\n");
      return 2;
    }
    GSocketAddress *sa = g_inet_socket_address_new (ia, o.port);
    ok = soup_server_listen (app.server, sa, lo, &err);
    g_object_unref (sa);
    g_object_unref (ia);
  } else {
    ok = soup_server_listen_all (app.server, o.port, lo, &err);
  }
  if (!ok) {
    g_printerr ("cannot listen on port %d: %s\n", o.port, err->message);
    return 1;
  }
  if (!create_stream (""))
    return 1;

  if (o.ingest_port > 0) {
    app.ingest = g_socket_service_new ();
    if (o.address) {
      GInetAddress *ia = g_inet_address_new_from_string (o.address->c_str ());
      GSocketAddress *sa = g_inet_socket_address_new (ia, o.ingest_port);
      ok = g_socket_listener_add_address (G_SOCKET_LISTENER (app.ingest), sa, G_SOCKET_TYPE_STREAM,
                                          G_SOCKET_PROTOCOL_TCP, nullptr, nullptr, &err);
      g_object_unref (sa);
      g_object_unref (ia);
    } else {
      ok = g_socket_listener_add_inet_port (G_SOCKET_LISTENER (app.ingest), o.ingest_port,
                                            nullptr, &err);
    }
    if (!ok) {
      g_printerr ("cannot listen on ingest port %d: %s\n", o.ingest_port, err->message);
      return 1;
    }
    g_signal_connect (app.ingest, "incoming", G_CALLBACK (on_tcp_incoming), nullptr);
    g_socket_service_start (app.ingest);
  }
  const char *scheme = o.tls_cert ? "https" : "http";
  log_msg ("viewers: %s://localhost:%d/  (streams: /streams, /live/NAME/)", scheme, o.port);
  if (o.ingest_port > 0)
    log_msg ("publish: ffmpeg ... -f mp4 -movflags frag_keyframe+default_base_moof "
             "tcp://localhost:%d/", o.ingest_port);
  log_msg ("publish: ffmpeg ... -f mp4 -movflags frag_keyframe+empty_moov+default_base_moof "
           "-method PUT %s://localhost:%d/live/NAME", scheme, o.port);

  g_unix_signal_add (SIGINT, on_signal, nullptr);
  g_unix_signal_add (SIGTERM, on_signal, nullptr);
  g_main_loop_run (app.loop);

  // Clean shutdown: publishers, then viewers (each closed with a WebSocket close), server.
  if (app.ingest) {
    g_socket_service_stop (app.ingest);
    g_socket_listener_close (G_SOCKET_LISTENER (app.ingest));
    g_object_unref (app.ingest);
  }
  for (auto &[name, s] : app.streams)
    if (s->publisher) {
      Publisher *p = s->publisher;
      end_publisher (p, "server shutting down");
    }
  while (g_main_context_iteration (nullptr, FALSE))
    ;
  for (auto &[name, s] : app.streams)
    destroy_stream (s.get ());
  app.streams.clear ();
  soup_server_disconnect (app.server);
  g_object_unref (app.server);
  g_main_loop_unref (app.loop);
  gst_deinit ();
  return 0;
}
