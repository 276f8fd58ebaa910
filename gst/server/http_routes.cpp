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
#include "metrics.h"
#include "token.h"

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
  if (sock)
    ConnectionTaken (sock);  // no request-timeout for a viewer
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
      // Keep the query (a signed link's token) on the way to the page.
      GUri *uri = soup_server_message_get_uri (msg);
      const char *q = uri ? g_uri_get_query (uri) : NULL;
      std::string to = prefix_ + "/" + (q && *q ? std::string ("?") + q : std::string ());
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
  bool is_ws = soup_websocket_server_check_handshake (msg, NULL, NULL, NULL, NULL);
  if (!Allowed (s, msg, is_ws, method, path, full_path, query, address))
    return;
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
    respond_text (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "text/plain", "method not allowed\n");
    return;
  }

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
  if (strcmp (path, "/metrics") == 0 && hooks_.metrics_text) {
    respond_text (msg, SOUP_STATUS_OK, kMetricsContentType, hooks_.metrics_text ());
    return;
  }
  serve_file (s, player_, msg, path);
}

// The access checks of a request under the prefix: the signed link (token-secret), then the
// application's (authorize). False: refused (answered and counted).
bool
HttpRoutes::Allowed (const RouteSettings &s, void *m, bool is_ws, const char *method,
                     const char *path, const char *full_path, void *q, const std::string &address)
{
  SoupServerMessage *msg = static_cast<SoupServerMessage *> (m);
  GHashTable *query = static_cast<GHashTable *> (q);
  std::string p = path;
  const char *route = "file";
  if (is_ws && (s.path == p || p == "/"))
    route = "websocket";
  else if (p == "/stream.mp4")
    route = "stream";
  else if (p == "/status" || p == "/status.json")
    route = "status";
  else if (p == "/metrics")
    route = "metrics";
  else if (p == "/" || p == "/index.html")
    route = "page";
  if (!s.token_secret.empty ()) {
    auto ends = [&] (const char *ext) {
      size_t n = strlen (ext);
      return p.size () >= n && p.compare (p.size () - n, n, ext) == 0;
    };
    // The player's scripts and style sheets: public code, nothing of the stream in them, and
    // a module's imports cannot carry the page's query.
    bool asset = strcmp (route, "file") == 0 && (ends (".js") || ends (".mjs") || ends (".css"));
    if (!asset) {
      const char *token = query ? (const char *) g_hash_table_lookup (query, "token") : NULL;
      TokenCheck c = VerifyToken (s.token_secret, TokenPath (prefix_), token,
                                  g_get_real_time () / G_USEC_PER_SEC);
      if (c != TokenCheck::kValid) {
        if (hooks_.debug)
          hooks_.debug (std::string ("token ") + TokenCheckName (c) + ": " + method + " " +
                        full_path + " from " + address + " refused");
        hooks_.reject ("rejected: token");
        // The same answer whatever was wrong.
        respond_text (msg, SOUP_STATUS_FORBIDDEN, "text/plain", "forbidden\n");
        return false;
      }
    }
  }
  if (hooks_.authorize && hooks_.authorize_wanted && hooks_.authorize_wanted ()) {
    AuthorizeRequest r;
    r.route = route;
    r.address = address;
    r.method = method;
    r.path = full_path;
    GUri *uri = soup_server_message_get_uri (msg);
    const char *raw = uri ? g_uri_get_query (uri) : NULL;
    r.query = raw ? raw : "";
    SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
    const char *origin = soup_message_headers_get_one (h, "Origin");
    r.origin = origin ? origin : "";
    SoupMessageHeadersIter it;
    const char *name, *value;
    soup_message_headers_iter_init (&it, h);
    while (soup_message_headers_iter_next (&it, &name, &value))
      r.headers.emplace_back (name, value);
    unsigned status = hooks_.authorize (r);
    if (status != 0) {
      if (status < 400 || status > 599)
        status = SOUP_STATUS_FORBIDDEN;
      if (hooks_.debug)
        hooks_.debug (std::string ("authorize: ") + method + " " + full_path + " from " +
                      address + " refused with " + std::to_string (status));
      hooks_.reject ("rejected: authorize");
      const char *phrase = soup_status_get_phrase (status);
      respond_text (msg, status, "text/plain",
                    std::string (phrase && *phrase ? phrase : "refused") + "\n");
      return false;
    }
  }
  return true;
}

std::vector<std::pair<std::string, uint64_t>>
Refusals (const Totals &t)
{
  static const char *const known[] = {"budget",  "http-connections", "per-address",
                                      "timeout", "origin",           "max-clients",
                                      "token",   "authorize",        "body"};
  static const std::string prefix = "rejected: ";
  std::vector<std::pair<std::string, uint64_t>> out;
  for (const char *k : known) {
    auto it = t.disconnects.find (prefix + k);
    out.emplace_back (k, it == t.disconnects.end () ? 0 : it->second);
  }
  for (auto &[reason, n] : t.disconnects) {
    if (reason.compare (0, prefix.size (), prefix) != 0)
      continue;
    std::string k = reason.substr (prefix.size ());
    bool seen = false;
    for (auto &[name, count] : out)
      seen |= name == k;
    if (!seen)
      out.emplace_back (k, n);
  }
  return out;
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
       std::to_string (t.fragments_dropped);
  std::string refused;
  for (auto &[reason, n] : Refusals (t))
    refused += std::string (refused.empty () ? "" : ",") + core::JsonString (reason) + ":" +
               std::to_string (n);
  s += ",\"refused\":{" + refused + "},\"clients\":[" + clients + "]}";
  return s;
}

}  // namespace fmp4ws::server
