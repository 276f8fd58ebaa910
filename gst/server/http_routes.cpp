#include "http_routes.h"

#include <gio/gio.h>
#include <libsoup/soup.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "http_server.h"
#include "json.h"

namespace fmp4ws::server {

using core::Broadcaster;

namespace {

// A viewer's connection as libsoup hands it over. Plain TCP: sendmsg() on the fd; TLS goes
// through GIO (and closes asynchronously on the server's context).
class GioTransport : public Transport
{
public:
  GioTransport (GIOStream *stream, int fd, bool raw_io, GMainContext *ctx)
      : stream_ (stream), fd_ (fd), raw_io_ (raw_io), ctx_ (ctx)
  {
    in_ = G_POLLABLE_INPUT_STREAM (g_io_stream_get_input_stream (stream));
    out_ = G_POLLABLE_OUTPUT_STREAM (g_io_stream_get_output_stream (stream));
  }
  ~GioTransport () override { Close (); }

  long Read (uint8_t *buf, size_t size, std::string *error) override
  {
    GError *err = NULL;
    gssize n = g_pollable_input_stream_read_nonblocking (in_, buf, size, NULL, &err);
    if (n < 0 && g_error_matches (err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK)) {
      g_clear_error (&err);
      return kWouldBlock;
    }
    if (n < 0) {
      *error = err->message;
      g_clear_error (&err);
      return kFailed;
    }
    return long (n);
  }

  long Writev (const struct iovec *vec, int n, std::string *error) override
  {
    if (raw_io_)
      return FdTransport::WritevFd (fd_, vec, n, error);
    GError *err = NULL;
    gsize w = 0;
    GPollableReturn r = g_pollable_output_stream_writev_nonblocking (
        out_, (const GOutputVector *) vec, gsize (n), &w, NULL, &err);
    if (r == G_POLLABLE_RETURN_WOULD_BLOCK)
      return kWouldBlock;
    if (r == G_POLLABLE_RETURN_FAILED) {
      *error = err ? err->message : "?";
      g_clear_error (&err);
      return kFailed;
    }
    return long (w);
  }

  void Close () override
  {
    if (!stream_)
      return;
    if (raw_io_)
      CloseNow ();
    else
      CloseAsync ();
  }

  // Closes at once (a viewer never handed over).
  void CloseNow ()
  {
    if (!stream_)
      return;
    g_io_stream_close (stream_, NULL, NULL);
    g_object_unref (stream_);
    stream_ = NULL;
  }

  int max_read_rounds () const override { return raw_io_ ? 16 : 256; }

private:
  void CloseAsync ()
  {
    // TLS: close_notify may have to wait for the socket; let GIO do it asynchronously on
    // the server's context.
    GSource *src = g_idle_source_new ();
    g_source_set_callback (
        src,
        [] (gpointer data) -> gboolean {
          GIOStream *st = G_IO_STREAM (data);
          g_io_stream_close_async (st, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
          return G_SOURCE_REMOVE;
        },
        stream_, g_object_unref);
    g_source_attach (src, ctx_);
    g_source_unref (src);
    stream_ = NULL;
  }

  GIOStream *stream_;
  GPollableInputStream *in_;
  GPollableOutputStream *out_;
  int fd_;
  bool raw_io_;
  GMainContext *ctx_;
};

void
respond_text (SoupServerMessage *msg, guint status, const char *type, const std::string &body)
{
  EndConnectionAfterResponse (msg);
  soup_server_message_set_status (msg, status, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Cache-Control",
                                "no-store");
  soup_server_message_set_response (msg, type, SOUP_MEMORY_COPY, body.data (), body.size ());
}

bool
origin_allowed (const RouteSettings &s, SoupServerMessage *msg)
{
  const char *origin =
      soup_message_headers_get_one (soup_server_message_get_request_headers (msg), "Origin");
  bool ok = s.allowed_origins.empty () || !origin;
  for (const std::string &o : s.allowed_origins)
    ok |= o == "*" || (origin && o == origin);
  return ok;
}

// A viewer socket: no Nagle delay, and a bounded kernel send buffer so that a slow viewer's
// backlog stays in the sink's queue (shared payloads, policed by max-backlog-*) instead of
// megabytes of copies in the kernel.
void
tune_viewer_socket (unsigned sndbuf, SoupServerMessage *msg)
{
  GSocket *sock = MessageSocket (msg);
  if (!sock)
    return;
  g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, 1, NULL);
  if (sndbuf > 0)
    g_socket_set_option (sock, SOL_SOCKET, SO_SNDBUF, gint (MIN (sndbuf, guint (G_MAXINT))), NULL);
}

const char *
content_type_for (const std::string &path)
{
  auto ends = [&] (const char *ext) {
    size_t n = strlen (ext);
    return path.size () >= n && path.compare (path.size () - n, n, ext) == 0;
  };
  if (ends (".html"))
    return "text/html; charset=utf-8";
  if (ends (".js") || ends (".mjs"))
    return "text/javascript; charset=utf-8";
  if (ends (".css"))
    return "text/css; charset=utf-8";
  if (ends (".json"))
    return "application/json";
  if (ends (".svg"))
    return "image/svg+xml";
  if (ends (".png"))
    return "image/png";
  if (ends (".mp4"))
    return "video/mp4";
  return "application/octet-stream";
}

// Serves a file of the player: from document-root if set (no escaping it), else built in.
void
serve_file (const RouteSettings &s, GResource *player, SoupServerMessage *msg, const char *path)
{
  const std::string &root = s.document_root;
  std::string rel = path[0] == '/' ? path + 1 : path;
  if (rel.empty ())
    rel = "index.html";
  // Reject anything that could leave the folder: "..", backslashes, NULs, absolute paths.
  bool bad = rel.find ('\\') != std::string::npos || rel[0] == '/';
  gchar **parts = g_strsplit (rel.c_str (), "/", -1);
  for (gchar **p = parts; *p; p++)
    bad |= strcmp (*p, "..") == 0 || strcmp (*p, ".") == 0 || **p == '\0';
  g_strfreev (parts);
  if (!s.serve_player || bad) {
    respond_text (msg, SOUP_STATUS_NOT_FOUND, "text/plain", "not found\n");
    return;
  }
  GBytes *bytes = NULL;
  if (!root.empty ()) {
    gchar *file = g_build_filename (root.c_str (), rel.c_str (), NULL);
    gchar *real_root = realpath (root.c_str (), NULL);
    gchar *real_file = realpath (file, NULL);
    gchar *contents = NULL;
    gsize len = 0;
    if (real_root && real_file && g_str_has_prefix (real_file, real_root) &&
        real_file[strlen (real_root)] == '/' && g_file_test (real_file, G_FILE_TEST_IS_REGULAR) &&
        g_file_get_contents (real_file, &contents, &len, NULL))
      bytes = g_bytes_new_take (contents, len);
    free (real_root);
    free (real_file);
    g_free (file);
  } else if (player) {
    std::string rpath = "/org/gstfmp4ws/web/" + rel;
    bytes = g_resource_lookup_data (player, rpath.c_str (), G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  }
  if (!bytes) {
    respond_text (msg, SOUP_STATUS_NOT_FOUND, "text/plain", "not found\n");
    return;
  }
  EndConnectionAfterResponse (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Cache-Control",
                                "no-cache");
  soup_server_message_set_response (msg, content_type_for (rel), SOUP_MEMORY_COPY,
                                    (const char *) g_bytes_get_data (bytes, NULL),
                                    g_bytes_get_size (bytes));
  g_bytes_unref (bytes);
}

void
parse_query_options (GHashTable *query, Broadcaster::ViewerOptions *o)
{
  if (!query)
    return;
  const char *rebase = (const char *) g_hash_table_lookup (query, "rebase");
  if (rebase)
    o->rebase = !(strcmp (rebase, "0") == 0 || strcmp (rebase, "false") == 0);
  const char *sync = (const char *) g_hash_table_lookup (query, "sync");
  if (sync && strcmp (sync, "next-keyframe") == 0)
    o->sync = core::SyncMethod::kNextKeyframe;
  else if (sync && strcmp (sync, "latest-keyframe") == 0)
    o->sync = core::SyncMethod::kLatestKeyframe;
}

void
server_handler (SoupServer *, SoupServerMessage *msg, const char *full_path, GHashTable *query,
                gpointer user_data)
{
  static_cast<HttpRoutes *> (user_data)->Handle (msg, full_path, query);
}

}  // namespace

struct HttpRoutes::Upgrade
{
  HttpRoutes *routes;
  Broadcaster::ViewerOptions options;
  std::string address;
  unsigned send_buffer_size;
};

static void
on_head_written (SoupServerMessage *msg, gpointer user_data)
{
  auto *u = static_cast<HttpRoutes::Upgrade *> (user_data);
  u->routes->TakeConnection (u, msg);
}

static void
upgrade_free (gpointer data, GClosure *)
{
  delete static_cast<HttpRoutes::Upgrade *> (data);
}

void
HttpRoutes::Attach (_SoupServer *server, _GMainContext *ctx, const std::string &prefix)
{
  ctx_ = ctx;
  prefix_ = prefix;
  soup_server_add_handler (server, prefix_.empty () ? NULL : prefix_.c_str (), server_handler,
                           this, NULL);
}

void
HttpRoutes::Detach (_SoupServer *server)
{
  soup_server_remove_handler (server, prefix_.empty () ? NULL : prefix_.c_str ());
}

// The response head is written: take the connection from libsoup and give it to an I/O
// thread.
void
HttpRoutes::TakeConnection (Upgrade *u, void *m)
{
  SoupServerMessage *msg = static_cast<SoupServerMessage *> (m);
  tune_viewer_socket (u->send_buffer_size, msg);
  GSocket *sock = MessageSocket (msg);
  int fd = sock ? g_socket_get_fd (sock) : -1;
  GUri *uri = soup_server_message_get_uri (msg);
  const char *scheme = uri ? g_uri_get_scheme (uri) : NULL;
  bool plain = scheme && (strcmp (scheme, "http") == 0 || strcmp (scheme, "ws") == 0);
  GIOStream *stream = soup_server_message_steal_connection (msg);
  if (!stream)
    return;
  if (fd < 0) {
    if (hooks_.warning)
      hooks_.warning ("no socket for " + u->address + ": dropped");
    g_io_stream_close (stream, NULL, NULL);
    g_object_unref (stream);
    return;
  }
  auto *transport = new GioTransport (stream, fd, plain, ctx_);
  HandOff h;
  h.fd = fd;
  h.transport.reset (transport);
  h.address = u->address;
  h.options = u->options;
  if (!hooks_.hand_off (h) && h.transport)
    transport->CloseNow ();  // stopping
}

void
HttpRoutes::Handle (void *m, const char *full_path, void *q)
{
  SoupServerMessage *msg = static_cast<SoupServerMessage *> (m);
  GHashTable *query = static_cast<GHashTable *> (q);
  const char *method = soup_server_message_get_method (msg);
  // With a path prefix (a shared server), route on the path below it.
  const char *path = full_path;
  if (!prefix_.empty ()) {
    if (prefix_ == full_path) {
      std::string to = prefix_ + "/";
      EndConnectionAfterResponse (msg);
      soup_server_message_set_redirect (msg, SOUP_STATUS_MOVED_PERMANENTLY, to.c_str ());
      return;
    }
    if (!g_str_has_prefix (full_path, prefix_.c_str ()) || full_path[prefix_.size ()] != '/') {
      respond_text (msg, SOUP_STATUS_NOT_FOUND, "text/plain", "not found\n");
      return;
    }
    path = full_path + prefix_.size ();
  }
  const char *host = soup_server_message_get_remote_host (msg);
  std::string address = host ? host : "?";
  const RouteSettings s = hooks_.settings ();

  if (hooks_.debug)
    hooks_.debug (std::string (method) + " " + path + " from " + address);
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
    respond_text (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n");
    return;
  }

  bool is_ws = soup_websocket_server_check_handshake (msg, NULL, NULL, NULL, NULL);
  bool is_stream = strcmp (path, "/stream.mp4") == 0;
  if ((is_ws && (s.path == path || strcmp (path, "/") == 0)) || is_stream) {
    if (!origin_allowed (s, msg)) {
      hooks_.reject ("rejected: origin");
      respond_text (msg, SOUP_STATUS_FORBIDDEN, "text/plain", "origin not allowed\n");
      return;
    }
    if (s.max_clients > 0 && hooks_.open_viewers () >= s.max_clients) {
      hooks_.reject ("rejected: max-clients");
      respond_text (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, "text/plain", "too many clients\n");
      return;
    }
    Upgrade *u = new Upgrade{this, {}, address, s.send_buffer_size};
    parse_query_options (query, &u->options);
    if (is_ws) {
      if (!soup_websocket_server_process_handshake (msg, NULL, NULL, NULL, NULL)) {
        delete u;
        return;  // libsoup set the error status
      }
      g_signal_connect_data (msg, "wrote-informational", G_CALLBACK (on_head_written), u,
                             upgrade_free, GConnectFlags (0));
    } else {
      u->options.framing = core::Framing::kRaw;
      soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
      SoupMessageHeaders *h = soup_server_message_get_response_headers (msg);
      soup_message_headers_set_content_type (h, "video/mp4", NULL);
      soup_message_headers_replace (h, "Cache-Control", "no-store");
      soup_message_headers_set_encoding (h, SOUP_ENCODING_EOF);
      if (strcmp (method, "HEAD") == 0) {
        EndConnectionAfterResponse (msg);
        delete u;
        return;
      }
      g_signal_connect_data (msg, "wrote-headers", G_CALLBACK (on_head_written), u,
                             upgrade_free, GConnectFlags (0));
    }
    return;
  }
  if (strcmp (path, "/status") == 0 || strcmp (path, "/status.json") == 0) {
    respond_text (msg, SOUP_STATUS_OK, "application/json", hooks_.status_json () + "\n");
    return;
  }
  serve_file (s, player_, msg, path);
}

std::string
StatusJson (const Snapshot &snap, const std::string &stream)
{
  const Totals &t = snap.totals;
  std::string clients;
  for (const ClientSnapshot &c : snap.clients) {
    if (!clients.empty ())
      clients += ",";
    char lat[32], wcl[32];
    g_snprintf (lat, sizeof lat, "%.3f", c.stats.latency);
    g_snprintf (wcl, sizeof wcl, "%.3f", c.stats.wall_clock_latency);
    clients += "{\"id\":" + std::to_string (c.id) + ",\"address\":" + core::JsonString (c.address) +
               ",\"bytes_sent\":" + std::to_string (c.stats.bytes_sent) + ",\"backlog_bytes\":" +
               std::to_string (c.backlog_bytes) + ",\"latency\":" + lat;
    if (!c.stats.wall_clock_source.empty ())
      clients += std::string (",\"wall_clock_latency\":") + wcl + ",\"wall_clock_source\":" +
                 core::JsonString (c.stats.wall_clock_source);
    clients += "}";
  }
  std::string s = "{\"viewers\":" + std::to_string (snap.viewers);
  s += ",\"stream\":" + (stream.empty () ? std::string ("null") : stream);
  s += ",\"bytes_sent\":" + std::to_string (t.bytes_sent) + ",\"fragments_sent\":" +
       std::to_string (t.fragments_sent) + ",\"fragments_dropped\":" +
       std::to_string (t.fragments_dropped) + ",\"clients\":[" + clients + "]}";
  return s;
}

}  // namespace fmp4ws::server
