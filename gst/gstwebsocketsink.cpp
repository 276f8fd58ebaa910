/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-websocketsink
 * @title: websocketsink
 *
 * An HTTP/WebSocket server (libsoup 3) that broadcasts the fragmented MP4 made
 * by #GstFmp4InitCache to every viewer, for Media Source Extensions players.
 *
 * Each viewer gets a JSON `stream` message (MSE mime type, codecs, size), the
 * init segment, then fragments starting on a keyframe fragment: with
 * #GstWebSocketSink:sync-method `latest-keyframe` (default) the cached GOP is
 * sent at once so playback starts immediately, with `next-keyframe` the viewer
 * waits for the next keyframe fragment. Each viewer's timeline is rebased so
 * its first fragment starts at 0 (#GstWebSocketSink:rebase-timestamps), so
 * players that never seek play too. A viewer whose unwritten backlog exceeds
 * #GstWebSocketSink:max-backlog-bytes or #GstWebSocketSink:max-backlog-time
 * skips to the next keyframe fragment (or is disconnected, see
 * #GstWebSocketSink:recover-policy); the others do not notice. The protocol
 * is described in docs/protocol.md.
 *
 * The same port serves the web player (`GET /`, built in), the live stream as
 * progressive fragmented MP4 (`GET /stream.mp4`, for ffplay, VLC, `<video>`)
 * a JSON status (`GET /status`) and Prometheus metrics (`GET /metrics`, the
 * text format 0.0.4; behind the same token-secret and authorize checks as
 * `/status`, route "metrics").
 *
 * HTTP and the WebSocket handshake run on the server's own thread and main
 * context (or an application's, see #GstWebSocketSink:soup-server); each
 * viewer then moves to one of #GstWebSocketSink:io-threads I/O threads (one
 * epoll loop each) that write to it. render() never waits for a viewer.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=30 ! mp4mux fragment-duration=700 ! fmp4initcache ! websocketsink port=8080
 * ]| Then open http://localhost:8080/.
 * |[
 * gst-launch-1.0 tcpserversrc host=0.0.0.0 port=8081 ! fmp4initcache ! websocketsink
 * ]| Serves what `ffmpeg ... -f mp4 -movflags frag_keyframe+default_base_moof tcp://localhost:8081`
 * sends.
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstwebsocketsink.h"

#include <gio/gio.h>
#include <libsoup/soup.h>
#include <gst/video/video.h>

#include <atomic>
#include <functional>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/box.h"
#include "core/broadcaster.h"
#include "core/json.h"
#include "server/http_routes.h"
#include "server/http_server.h"
#include "server/io_thread.h"
#include "server/metrics.h"
#include "server/ws_frame.h"

GST_DEBUG_CATEGORY_STATIC (gst_web_socket_sink_debug);
#define GST_CAT_DEFAULT gst_web_socket_sink_debug

using namespace fmp4ws::core;
namespace ws = fmp4ws::server::ws;
using fmp4ws::server::HttpRoutes;
using fmp4ws::server::IoThread;
using fmp4ws::server::Totals;

extern "C" GResource *fmp4ws_web_get_resource (void);

#define DEFAULT_ADDRESS NULL
#define DEFAULT_PORT 8080
#define DEFAULT_PATH "/ws"
#define DEFAULT_SYNC_METHOD SyncMethod::kLatestKeyframe
#define DEFAULT_RECOVER_POLICY RecoverPolicy::kKeyframe
#define DEFAULT_MAX_BACKLOG_BYTES (G_GUINT64_CONSTANT (16) << 20)
#define DEFAULT_MAX_BACKLOG_TIME (10 * GST_SECOND)
#define DEFAULT_GOP_CACHE_MAX_BYTES (G_GUINT64_CONSTANT (32) << 20)
#define DEFAULT_GOP_CACHE_MAX_TIME (15 * GST_SECOND)
#define DEFAULT_KEYFRAME_REQUEST_INTERVAL (1 * GST_SECOND)
#define DEFAULT_REBASE TRUE
#define DEFAULT_MAX_CLIENTS 1000
#define DEFAULT_MAX_CONNECTIONS 0
#define DEFAULT_REQUEST_TIMEOUT 10
#define DEFAULT_MAX_HTTP_CONNECTIONS 0
#define DEFAULT_MAX_CONNECTIONS_PER_ADDRESS 0
#define DEFAULT_MAX_MESSAGE_SIZE 4096
#define DEFAULT_MAX_MESSAGE_RATE 100
#define DEFAULT_KEEPALIVE 10
#define DEFAULT_SERVE_PLAYER TRUE
#define DEFAULT_SEND_BUFFER_SIZE (256 * 1024)
#define DEFAULT_IO_THREADS 0
#define MAX_IO_THREADS 64
#define AUTO_IO_THREADS_MAX 8
#define DEFAULT_EOS_TIMEOUT (3 * GST_SECOND)

enum
{
  PROP_0,
  PROP_ADDRESS,
  PROP_PORT,
  PROP_CURRENT_PORT,
  PROP_PATH,
  PROP_SYNC_METHOD,
  PROP_RECOVER_POLICY,
  PROP_MAX_BACKLOG_BYTES,
  PROP_MAX_BACKLOG_TIME,
  PROP_GOP_CACHE_MAX_BYTES,
  PROP_GOP_CACHE_MAX_TIME,
  PROP_REBASE,
  PROP_ADD_PRFT,
  PROP_KEYFRAME_REQUEST_INTERVAL,
  PROP_MAX_CLIENTS,
  PROP_MAX_CONNECTIONS,
  PROP_REQUEST_TIMEOUT,
  PROP_MAX_HTTP_CONNECTIONS,
  PROP_MAX_CONNECTIONS_PER_ADDRESS,
  PROP_ALLOWED_ORIGINS,
  PROP_TOKEN_SECRET,
  PROP_MAX_MESSAGE_SIZE,
  PROP_MAX_MESSAGE_RATE,
  PROP_KEEPALIVE,
  PROP_SERVE_PLAYER,
  PROP_DOCUMENT_ROOT,
  PROP_TLS_CERTIFICATE_FILE,
  PROP_TLS_KEY_FILE,
  PROP_TLS_CERTIFICATE,
  PROP_SEND_BUFFER_SIZE,
  PROP_IO_THREADS,
  PROP_SOUP_SERVER,
  PROP_MAIN_CONTEXT,
  PROP_PATH_PREFIX,
  PROP_NUM_CLIENTS,
  PROP_STATS,
};

enum
{
  SIGNAL_CLIENT_ADDED,
  SIGNAL_CLIENT_REMOVED,
  SIGNAL_AUTHORIZE,
  LAST_SIGNAL
};
static guint signals[LAST_SIGNAL];

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/quicktime, variant = (string) iso-fragmented; video/quicktime"));

namespace {

// A GstBuffer mapped for as long as any viewer may still send it: as one block, or (per_memory,
// for a buffer of several GstMemory, e.g. fmp4initcache's rewritten moof + the input's mdat,
// or a fragment across input chunks) each memory on its own, so nothing is copied into one
// block: `spans` lists them for the viewers' writev.
struct MappedBuffer
{
  explicit MappedBuffer (GstBuffer *b, bool per_memory = false) : buffer (gst_buffer_ref (b))
  {
    guint n = gst_buffer_n_memory (buffer);
    if (!per_memory || n <= 1) {
      ok = gst_buffer_map (buffer, &map, GST_MAP_READ);
      return;
    }
    maps.resize (n);
    auto runs = std::make_shared<std::vector<Span>> ();
    runs->reserve (n);
    for (guint i = 0; i < n; i++) {
      GstMemory *mem = gst_buffer_peek_memory (buffer, i);
      if (!gst_memory_map (mem, &maps[mapped], GST_MAP_READ))
        return;  // ok stays false; the destructor unmaps those mapped
      runs->push_back ({maps[mapped].data, maps[mapped].size});
      size += maps[mapped].size;
      mapped++;
    }
    spans = std::move (runs);
    ok = true;
  }
  ~MappedBuffer ()
  {
    if (ok && !spans)
      gst_buffer_unmap (buffer, &map);
    for (guint i = 0; i < mapped; i++)
      gst_memory_unmap (gst_buffer_peek_memory (buffer, i), &maps[i]);
    gst_buffer_unref (buffer);
  }
  GstBuffer *buffer;
  GstMapInfo map;                     // one block
  std::vector<GstMapInfo> maps;       // per memory
  guint mapped = 0;
  size_t size = 0;                    // per memory: the bytes of all
  std::shared_ptr<const std::vector<Span>> spans;
  bool ok = false;
};

struct Settings
{
  std::string address;
  guint port = DEFAULT_PORT;
  std::string path = DEFAULT_PATH;
  BroadcastConfig config;
  guint max_clients = DEFAULT_MAX_CLIENTS;
  guint max_connections = DEFAULT_MAX_CONNECTIONS;
  guint request_timeout = DEFAULT_REQUEST_TIMEOUT;
  guint max_http_connections = DEFAULT_MAX_HTTP_CONNECTIONS;
  guint max_connections_per_address = DEFAULT_MAX_CONNECTIONS_PER_ADDRESS;
  std::vector<std::string> allowed_origins;
  std::string allowed_origins_str;
  std::string token_secret;  // empty: no signed links needed
  guint max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
  guint max_message_rate = DEFAULT_MAX_MESSAGE_RATE;
  guint keepalive = DEFAULT_KEEPALIVE;
  guint send_buffer_size = DEFAULT_SEND_BUFFER_SIZE;
  guint io_threads = DEFAULT_IO_THREADS;
  bool serve_player = DEFAULT_SERVE_PLAYER;
  std::string document_root;
  std::string tls_cert_file, tls_key_file;
  GTlsCertificate *tls_certificate = nullptr;
  SoupServer *soup_server = nullptr;   // an application's server to join (no own listener)
  GMainContext *main_context = nullptr;  // the context that server runs in
  std::string path_prefix;             // e.g. /live/NAME when sharing a server
};

}  // namespace

struct GstWebSocketSinkPrivate
{
  Settings settings;  // GST_OBJECT_LOCK
  std::atomic<guint> current_port{0};

  // Streaming thread.
  std::shared_ptr<const InitInfo> init_info;
  ItemPtr init_item;
  uint32_t generation = 0;
  guint64 fragments_since_init = 0;
  bool init_has_warning = false;  // the current init's `stream` message carries a warning

  // Server thread (HTTP, handshakes). Both live as long as the element (libsoup may call
  // the routes late).
  std::unique_ptr<HttpRoutes> routes;
  std::unique_ptr<fmp4ws::server::HttpServer> http;

  // The I/O threads, each with its viewers. Created by start(), taken away by stop();
  // `shards_lock` guards the vector (not the shards' contents: each has its own lock).
  std::mutex shards_lock;
  std::vector<std::unique_ptr<IoThread>> shards;
  std::atomic<guint64> next_viewer_id{1};
  std::atomic<guint> open_viewers{0};  // connected, or being handed to an I/O thread
  // force-key-unit requests upstream (keyframe-request-interval, read by the I/O threads)
  std::atomic<guint64> keyframe_request_interval{DEFAULT_KEYFRAME_REQUEST_INTERVAL};
  std::atomic<gint64> last_keyframe_request_us{G_MININT64};
  std::atomic<guint64> keyframe_requests{0};

  // Any thread.
  std::mutex status_lock;
  std::string status_stream;  // stream JSON of the current init, for /status
  Totals rejected;            // requests refused before becoming viewers
};

struct _GstWebSocketSink
{
  GstBaseSink parent;
  GstWebSocketSinkPrivate *priv;
};

#define gst_web_socket_sink_parent_class parent_class
G_DEFINE_TYPE (GstWebSocketSink, gst_web_socket_sink, GST_TYPE_BASE_SINK);

GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    websocketsink, "websocketsink", GST_RANK_NONE, GST_TYPE_WEB_SOCKET_SINK,
    GST_DEBUG_CATEGORY_INIT (gst_web_socket_sink_debug, "websocketsink", 0,
                             "fragmented MP4 WebSocket broadcast sink"));

GType
gst_web_socket_sink_sync_method_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
      {int (SyncMethod::kLatestKeyframe),
       "Start with the cached fragments from the latest keyframe fragment (instant start)",
       "latest-keyframe"},
      {int (SyncMethod::kNextKeyframe), "Wait for the next keyframe fragment", "next-keyframe"},
      {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstWebSocketSinkSyncMethod", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType
gst_web_socket_sink_recover_policy_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
      {int (RecoverPolicy::kKeyframe),
       "Drop the viewer's backlog and resume at the next keyframe fragment", "keyframe"},
      {int (RecoverPolicy::kDisconnect), "Close the viewer's connection (status 1008)",
       "disconnect"},
      {0, NULL, NULL},
  };
  if (g_once_init_enter (&type)) {
    GType t = g_enum_register_static ("GstWebSocketSinkRecoverPolicy", values);
    g_once_init_leave (&type, t);
  }
  return type;
}

/* ------------------------------------------------------------------------------------------ */
/* The server layer (server/): I/O threads and HTTP routes, with what they need of the sink:  */
/* settings snapshots, callbacks (signals, counts, logs), the hand-off to an I/O thread.      */

// What the I/O threads need of the settings. Call with the object lock held.
static IoThread::Settings
io_settings (const Settings &s)
{
  IoThread::Settings io;
  io.config = s.config;
  io.keepalive = s.keepalive;
  io.max_message_size = s.max_message_size;
  io.max_message_rate = s.max_message_rate;
  return io;
}

static GstDebugLevel
gst_level (IoThread::LogLevel level)
{
  switch (level) {
    case IoThread::LogLevel::kError:
      return GST_LEVEL_ERROR;
    case IoThread::LogLevel::kWarning:
      return GST_LEVEL_WARNING;
    case IoThread::LogLevel::kInfo:
      return GST_LEVEL_INFO;
    case IoThread::LogLevel::kDebug:
      break;
  }
  return GST_LEVEL_DEBUG;
}

static IoThread::Callbacks
io_callbacks (GstWebSocketSink *self)
{
  IoThread::Callbacks cb;
  cb.client_added = [self] (guint64 id, const std::string &address) {
    g_signal_emit (self, signals[SIGNAL_CLIENT_ADDED], 0, id, address.c_str ());
  };
  cb.client_removed = [self] (guint64 id, const std::string &address, const std::string &why) {
    g_signal_emit (self, signals[SIGNAL_CLIENT_REMOVED], 0, id, address.c_str (), why.c_str ());
  };
  cb.connection_released = [self] { self->priv->open_viewers--; };
  cb.need_keyframe = [self] {
    // A viewer waits for a keyframe: ask upstream for one (an encoder in the pipeline, e.g.
    // x264enc, answers a force-key-unit event), at most once per keyframe-request-interval.
    GstWebSocketSinkPrivate *priv = self->priv;
    guint64 interval = priv->keyframe_request_interval.load ();
    if (interval == 0)
      return;
    gint64 now = g_get_monotonic_time ();
    gint64 last = priv->last_keyframe_request_us.load ();
    if (last != G_MININT64 && now - last < gint64 (interval / GST_USECOND))
      return;
    if (!priv->last_keyframe_request_us.compare_exchange_strong (last, now))
      return;  // another I/O thread asked just now
    priv->keyframe_requests++;
    // Pushed from GStreamer's thread pool, not from this I/O thread (which holds its lock).
    gst_element_call_async (
        GST_ELEMENT (self),
        [] (GstElement *e, gpointer) {
          GST_DEBUG_OBJECT (e, "a viewer waits for a keyframe: force-key-unit upstream");
          gst_pad_push_event (GST_BASE_SINK_PAD (e),
                              gst_video_event_new_upstream_force_key_unit (GST_CLOCK_TIME_NONE,
                                                                           TRUE, 0));
        },
        NULL, NULL);
  };
  cb.log = [self] (IoThread::LogLevel level, const std::string &msg) {
    GST_CAT_LEVEL_LOG (GST_CAT_DEFAULT, gst_level (level), self, "%s", msg.c_str ());
  };
  cb.log_enabled = [] (IoThread::LogLevel level) {
    return gst_debug_category_get_threshold (GST_CAT_DEFAULT) >= gst_level (level);
  };
  return cb;
}

// Everything the I/O threads know (viewers gone and connected) and the requests refused.
// Call with priv->shards_lock held.
static fmp4ws::server::Snapshot
snapshot (GstWebSocketSinkPrivate *priv, bool with_clients,
          std::vector<guint> *io_thread_of_client = nullptr)
{
  fmp4ws::server::Snapshot snap;
  {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    snap.totals = priv->rejected;
  }
  for (auto &sh : priv->shards) {
    sh->Snap (&snap, with_clients);
    if (io_thread_of_client)
      io_thread_of_client->resize (snap.clients.size (), sh->index ());
  }
  return snap;
}

// What the HTTP routes (server thread) need of the sink.
static HttpRoutes::Hooks
route_hooks (GstWebSocketSink *self)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  HttpRoutes::Hooks h;
  h.settings = [self] {
    fmp4ws::server::RouteSettings r;
    GST_OBJECT_LOCK (self);
    const Settings &s = self->priv->settings;
    r.path = s.path;
    r.max_clients = s.max_clients;
    r.allowed_origins = s.allowed_origins;
    r.token_secret = s.token_secret;
    r.serve_player = s.serve_player;
    r.document_root = s.document_root;
    r.send_buffer_size = s.send_buffer_size;
    GST_OBJECT_UNLOCK (self);
    return r;
  };
  h.open_viewers = [priv] { return guint (priv->open_viewers); };
  h.status_json = [priv] {
    fmp4ws::server::Snapshot snap;
    {
      std::lock_guard<std::mutex> shards_lock (priv->shards_lock);
      snap = snapshot (priv, true);
    }
    std::lock_guard<std::mutex> lock (priv->status_lock);
    return fmp4ws::server::StatusJson (snap, priv->status_stream);
  };
  h.metrics_text = [self, priv] {
    fmp4ws::server::MetricsInput in;
    in.streams.emplace_back ();
    {
      std::lock_guard<std::mutex> shards_lock (priv->shards_lock);
      in.streams[0].snap = snapshot (priv, true);
    }
    GST_OBJECT_LOCK (self);
    bool own_listener = priv->settings.soup_server == nullptr;
    GST_OBJECT_UNLOCK (self);
    if (own_listener)  // the descriptor budget is the listener's (not an application's server)
      in.connections = fmp4ws::server::ConnectionMetrics{
          priv->http->open_connections (), priv->http->connection_budget (),
          priv->http->http_connections (), priv->http->http_connection_budget ()};
    return fmp4ws::server::PrometheusText (in);
  };
  h.reject = [priv] (const char *why) {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    priv->rejected.disconnects[why]++;
  };
  h.authorize_wanted = [self] {
    return g_signal_has_handler_pending (self, signals[SIGNAL_AUTHORIZE], 0, FALSE) != FALSE;
  };
  h.authorize = [self] (const fmp4ws::server::AuthorizeRequest &r) {
    GstStructure *headers = gst_structure_new_empty ("headers");
    for (const auto &kv : r.headers) {
      // Field names: the header's name in lower case (HTTP names are case-insensitive); a
      // repeated header's values joined with ", " (RFC 9110 5.3). Names GstStructure cannot
      // hold (other than a letter, then letters, digits and "-_+.") are left out.
      gchar *name = g_ascii_strdown (kv.first.c_str (), -1);
      bool valid = g_ascii_isalpha (name[0]);
      for (const gchar *c = name; *c && valid; c++)
        valid = g_ascii_isalnum (*c) || strchr ("-_+.", *c);
      if (!valid) {
        g_free (name);
        continue;
      }
      const gchar *had = gst_structure_get_string (headers, name);
      gchar *v = had ? g_strconcat (had, ", ", kv.second.c_str (), NULL) : g_strdup (kv.second.c_str ());
      gst_structure_set (headers, name, G_TYPE_STRING, v, NULL);
      g_free (v);
      g_free (name);
    }
    GstStructure *req = gst_structure_new (
        "request", "route", G_TYPE_STRING, r.route.c_str (), "address", G_TYPE_STRING,
        r.address.c_str (), "method", G_TYPE_STRING, r.method.c_str (), "path", G_TYPE_STRING,
        r.path.c_str (), "query", G_TYPE_STRING, r.query.c_str (), "origin", G_TYPE_STRING,
        r.origin.c_str (), "headers", GST_TYPE_STRUCTURE, headers, NULL);
    gst_structure_free (headers);
    guint status = 0;
    g_signal_emit (self, signals[SIGNAL_AUTHORIZE], 0, req, &status);
    gst_structure_free (req);
    return unsigned (status);
  };
  // To the least loaded I/O thread.
  h.hand_off = [priv] (fmp4ws::server::HandOff &v) {
    guint64 id = priv->next_viewer_id++;
    std::lock_guard<std::mutex> lock (priv->shards_lock);
    IoThread *best = nullptr;
    for (auto &sh : priv->shards)
      if (!best || sh->load () < best->load ())
        best = sh.get ();
    if (!best)  // stopping
      return false;
    priv->open_viewers++;
    best->AddConnection (id, v.fd, std::move (v.transport), v.address, v.options);
    return true;
  };
  h.debug = [self] (const std::string &m) { GST_DEBUG_OBJECT (self, "%s", m.c_str ()); };
  h.warning = [self] (const std::string &m) { GST_WARNING_OBJECT (self, "%s", m.c_str ()); };
  return h;
}

/* ------------------------------------------------------------------------------------------ */
/* Streaming thread -> I/O threads                                                            */

enum class Post { kInit, kFragment, kEos, kReset, kSettings };

// Gives a command to every I/O thread. Stream items are copied per thread (a small struct:
// the payload stays shared) because each thread's broadcaster caches rewritten moofs in it.
static void
post_command (GstWebSocketSink *self, Post what, ItemPtr item = nullptr)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  // shards_lock first, then the settings: two threads setting properties at once post their
  // snapshots in the order they took them, so the I/O threads end with the newest settings.
  std::lock_guard<std::mutex> lock (priv->shards_lock);
  GST_OBJECT_LOCK (self);
  const uint64_t max_bytes = priv->settings.config.max_backlog_bytes;
  IoThread::Settings io;
  if (what == Post::kSettings)
    io = io_settings (priv->settings);
  GST_OBJECT_UNLOCK (self);
  const size_t n = priv->shards.size ();
  for (size_t i = 0; i < n; i++) {
    IoThread *sh = priv->shards[i].get ();
    ItemPtr it = item && i > 0 ? std::make_shared<const StreamItem> (*item) : item;
    switch (what) {
      case Post::kInit:
        sh->PostInit (std::move (it));
        break;
      case Post::kFragment:
        sh->PostFragment (std::move (it), max_bytes);
        break;
      case Post::kEos:
        sh->PostEos ();
        break;
      case Post::kReset:
        sh->PostReset ();
        break;
      case Post::kSettings:
        sh->PostSettings (io);
        break;
    }
  }
}

static std::string
stream_json (const InitInfo &info, uint32_t generation, const std::string &warning = {})
{
  std::string s = "{\"type\":\"stream\",\"generation\":" + std::to_string (generation) +
                   ",\"mime\":" + JsonString (info.mime) + ",\"codecs\":" +
                   JsonString (info.codecs);
  if (info.width && info.height)
    s += ",\"width\":" + std::to_string (info.width) + ",\"height\":" +
         std::to_string (info.height);
  s += std::string (",\"has_video\":") + (info.has_video ? "true" : "false") +
       ",\"has_audio\":" + (info.has_audio ? "true" : "false");
  if (!warning.empty ())
    s += ",\"warning\":" + JsonString (warning);
  return s + "}";
}

// A new init segment (from caps or a HEADER buffer); ignored if it is the current one.
static void
take_init (GstWebSocketSink *self, GstBuffer *buffer)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  auto mapped = std::make_shared<MappedBuffer> (buffer);
  if (!mapped->ok)
    return;
  const uint8_t *data = mapped->map.data;
  size_t size = mapped->map.size;
  // The same init as in the caps' streamheader, before any fragment: already taken. The
  // same bytes after fragments are a new stream (a publisher restarted with the same
  // settings): a new generation, so viewers' timelines restart cleanly.
  if (priv->init_item && priv->fragments_since_init == 0 &&
      priv->init_item->payload.size == size &&
      memcmp (priv->init_item->payload.data, data, size) == 0)
    return;
  priv->fragments_since_init = 0;
  priv->init_has_warning = false;
  BoxIterator it (data, size);
  std::optional<InitInfo> info;
  std::string error = "no moov box in the init segment";
  while (it.Next ())
    if (it.type () == FourCC ("moov"))
      info = ParseMoov (it.box (), it.box_size (), &error);
  if (!info) {
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Invalid init segment"), ("%s", error.c_str ()));
    return;
  }
  auto item = std::make_shared<StreamItem> ();
  item->kind = StreamItem::kInit;
  item->generation = ++priv->generation;
  item->payload = {data, size, mapped};
  auto shared_info = std::make_shared<const InitInfo> (std::move (*info));
  item->init = shared_info;
  item->stream_json = stream_json (*shared_info, item->generation);
  priv->init_info = shared_info;
  priv->init_item = item;
  {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    priv->status_stream = item->stream_json;
  }
  GST_INFO_OBJECT (self, "init segment #%u: %s", item->generation, item->stream_json.c_str ());
  post_command (self, Post::kInit, item);
}

// The current init segment again, as a new generation whose `stream` message carries
// `warning` (or none): every viewer and /status get the text (the player shows it). Only
// before the first fragment of an init, so no viewer has media to lose. Streaming thread,
// or with the sink pad's stream lock held.
static void
repost_init (GstWebSocketSink *self, const std::string &warning)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  if (!priv->init_item || priv->fragments_since_init > 0)
    return;
  auto item = std::make_shared<StreamItem> (*priv->init_item);
  item->generation = ++priv->generation;
  item->stream_json = stream_json (*priv->init_info, item->generation, warning);
  priv->init_item = item;
  priv->init_has_warning = !warning.empty ();
  {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    priv->status_stream = item->stream_json;
  }
  post_command (self, Post::kInit, item);
}

static gboolean
gst_web_socket_sink_set_caps (GstBaseSink *sink, GstCaps *caps)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (sink);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  const GValue *sh = gst_structure_get_value (s, "streamheader");
  if (sh && GST_VALUE_HOLDS_ARRAY (sh) && gst_value_array_get_size (sh) > 0) {
    // One init segment: all header buffers together.
    GstBuffer *init = gst_buffer_new ();
    for (guint i = 0; i < gst_value_array_get_size (sh); i++) {
      const GValue *v = gst_value_array_get_value (sh, i);
      if (GST_VALUE_HOLDS_BUFFER (v))
        init = gst_buffer_append (init, gst_buffer_ref (gst_value_get_buffer (v)));
    }
    take_init (self, init);
    gst_buffer_unref (init);
  }
  return TRUE;
}

static GstFlowReturn
gst_web_socket_sink_render (GstBaseSink *sink, GstBuffer *buffer)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (sink);
  GstWebSocketSinkPrivate *priv = self->priv;
  if (GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_HEADER)) {
    take_init (self, buffer);
    return GST_FLOW_OK;
  }
  if (!priv->init_item) {
    GST_DEBUG_OBJECT (self, "dropping a fragment that came before any init segment");
    return GST_FLOW_OK;
  }
  auto mapped = std::make_shared<MappedBuffer> (buffer, true);
  if (!mapped->ok) {
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("could not map a buffer"));
    return GST_FLOW_ERROR;
  }
  if (priv->init_has_warning)  // fragments came after all: the warning is no longer true
    repost_init (self, {});
  auto item = std::make_shared<StreamItem> ();
  item->kind = StreamItem::kFragment;
  item->generation = priv->generation;
  if (mapped->spans)
    item->payload = {nullptr, mapped->size, mapped, mapped->spans};
  else
    item->payload = {mapped->map.data, mapped->map.size, mapped, nullptr};
  item->keyframe = !GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DELTA_UNIT);
  item->discont = GST_BUFFER_FLAG_IS_SET (buffer, GST_BUFFER_FLAG_DISCONT);
  item->arrival_unix_us = g_get_real_time ();  // for the prft the sink adds (add-prft)
  // The moof: parsed where it lies, or from a copy of the boxes up to its end when they span
  // memories (only those small boxes; the mdat is never copied).
  std::vector<uint8_t> head;
  const uint8_t *bytes = mapped->spans ? nullptr : mapped->map.data;
  size_t avail = mapped->spans ? 0 : mapped->map.size;
  if (mapped->spans) {
    for (size_t at = 0; at + 8 <= item->payload.size;) {
      uint8_t hdr[16];
      size_t hn = std::min<size_t> (16, item->payload.size - at);
      size_t k = 0;
      item->payload.ForEach (at, hn, [&] (const uint8_t *p, size_t n) { memcpy (hdr + k, p, n); k += n; });
      uint64_t box = GST_READ_UINT32_BE (hdr);
      if (box == 1 && hn == 16)
        box = GST_READ_UINT64_BE (hdr + 8);
      if (box < 8 || box > item->payload.size - at)
        break;
      if (GST_READ_UINT32_BE (hdr + 4) == FourCC ("moof")) {
        item->payload.AppendTo (0, size_t (at + box), &head);
        break;
      }
      at += size_t (box);
    }
    bytes = head.data ();
    avail = head.size ();
  }
  BoxIterator it (bytes, avail);
  while (it.Next ()) {
    if (it.type () != FourCC ("moof"))
      continue;
    std::string error;
    item->info = ParseMoof (it.box (), it.box_size (), *priv->init_info, &error);
    if (item->info) {
      SetFragmentInfo (item.get (), *item->info, *priv->init_info, size_t (it.box () - bytes),
                       it.box_size ());
    } else {
      GST_WARNING_OBJECT (self, "fragment without a valid moof (%s): sent as is", error.c_str ());
    }
    break;
  }
  priv->fragments_since_init++;
  post_command (self, Post::kFragment, item);
  return GST_FLOW_OK;
}

static gboolean
gst_web_socket_sink_event (GstBaseSink *sink, GstEvent *event)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (sink);
  GstWebSocketSinkPrivate *priv = self->priv;
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS: {
      // Flush what viewers can take (bounded wait), then they are closed normally.
      post_command (self, Post::kEos);
      gint64 deadline = g_get_monotonic_time () + DEFAULT_EOS_TIMEOUT / GST_USECOND;
      while (priv->open_viewers > 0 && g_get_monotonic_time () < deadline)
        g_usleep (10000);
      break;
    }
    case GST_EVENT_FLUSH_STOP:
      post_command (self, Post::kReset);
      break;
    case GST_EVENT_CUSTOM_DOWNSTREAM_OOB: {
      // fmp4initcache's "no fragment after the init segment" diagnostic, from its clock
      // thread: the stream lock keeps render() (init_item, generation) out meanwhile.
      const GstStructure *st = gst_event_get_structure (event);
      const gchar *message = st && gst_structure_has_name (st, "fmp4ws-diagnostic")
                                 ? gst_structure_get_string (st, "message")
                                 : nullptr;
      if (message && *message) {
        GST_PAD_STREAM_LOCK (GST_BASE_SINK_PAD (sink));
        GST_INFO_OBJECT (self, "diagnostic from upstream: %s", message);
        repost_init (self, message);
        GST_PAD_STREAM_UNLOCK (GST_BASE_SINK_PAD (sink));
      }
      break;
    }
    default:
      break;
  }
  return GST_BASE_SINK_CLASS (parent_class)->event (sink, event);
}

/* ------------------------------------------------------------------------------------------ */
/* Start / stop                                                                               */

static bool
start_shards (GstWebSocketSink *self, guint io_threads)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  // Auto: half the cores (the rest for the pipeline that makes the stream and for the
  // kernel's network stack), at least 1, at most 8. See docs/benchmarks.md.
  guint n = io_threads ? io_threads
                       : CLAMP (g_get_num_processors () / 2, 1u, guint (AUTO_IO_THREADS_MAX));
  GST_OBJECT_LOCK (self);
  IoThread::Settings io = io_settings (priv->settings);
  GST_OBJECT_UNLOCK (self);
  std::vector<std::unique_ptr<IoThread>> shards;
  for (guint i = 0; i < n; i++) {
    std::string error;
    std::unique_ptr<IoThread> sh = IoThread::Start (i, io, io_callbacks (self), &error);
    if (!sh) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE, ("Could not start an I/O thread"),
                         ("%s", error.c_str ()));
      return false;  // the threads started so far stop with `shards`
    }
    shards.push_back (std::move (sh));
  }
  GST_INFO_OBJECT (self, "%u I/O thread(s)", n);
  {
    std::lock_guard<std::mutex> lock (priv->shards_lock);
    priv->shards.swap (shards);
  }
  // a property set while the threads were starting went to no thread: give them the newest
  post_command (self, Post::kSettings);
  return true;
}

static void
stop_shards (GstWebSocketSink *self)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  std::vector<std::unique_ptr<IoThread>> shards;
  {
    std::lock_guard<std::mutex> lock (priv->shards_lock);
    shards.swap (priv->shards);
  }
  shards.clear ();  // each closes its viewers and ends
}

static void
reset_stream_state (GstWebSocketSinkPrivate *priv)
{
  {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    priv->rejected = Totals ();
    priv->status_stream.clear ();
  }
  priv->init_item.reset ();
  priv->init_info.reset ();
  priv->generation = 0;
  priv->fragments_since_init = 0;
}

static gboolean
gst_web_socket_sink_start (GstBaseSink *sink)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (sink);
  GstWebSocketSinkPrivate *priv = self->priv;

  GST_OBJECT_LOCK (self);
  guint io_threads = priv->settings.io_threads;
  GST_OBJECT_UNLOCK (self);
  reset_stream_state (priv);
  // The I/O threads first: every later failure below stops them again.
  if (!start_shards (self, io_threads))
    return FALSE;

  GST_OBJECT_LOCK (self);
  Settings s = priv->settings;
  if (s.tls_certificate)
    g_object_ref (s.tls_certificate);
  if (s.soup_server)
    g_object_ref (s.soup_server);
  if (s.main_context)
    g_main_context_ref (s.main_context);
  GST_OBJECT_UNLOCK (self);
  const std::string &prefix = s.path_prefix;

  bool ok = true;
  if (s.soup_server) {
    // Join the application's server: handlers under path-prefix, sources in its context.
    priv->http->Join (s.soup_server, s.main_context, priv->routes.get (), prefix);
    GST_INFO_OBJECT (self, "serving %s/ on the application's server", prefix.c_str ());
  } else {
    fmp4ws::server::HttpServer::Options o;
    o.address = s.address;
    o.port = s.port;
    o.tls_cert_file = s.tls_cert_file;
    o.tls_key_file = s.tls_key_file;
    o.tls_certificate = s.tls_certificate;
    o.max_connections = s.max_connections;
    o.request_timeout = s.request_timeout;
    o.max_http_connections = s.max_http_connections;
    o.max_connections_per_address = s.max_connections_per_address;
    std::string detail;
    switch (priv->http->Listen (o, priv->routes.get (), prefix, &detail)) {
      case fmp4ws::server::HttpServer::Error::kNone:
        priv->current_port = priv->http->port ();
        GST_INFO_OBJECT (self,
                         "listening on %s (websocket path %s), at most %u connections, %u of "
                         "them waiting for their request headers (request-timeout %u s)",
                         priv->http->uri ().c_str (), s.path.c_str (),
                         priv->http->connection_budget (),
                         priv->http->http_connection_budget (), s.request_timeout);
        break;
      case fmp4ws::server::HttpServer::Error::kTlsCertificate:
        GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Could not load the TLS certificate"),
                           ("%s", detail.c_str ()));
        ok = false;
        break;
      case fmp4ws::server::HttpServer::Error::kListen:
        GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE, ("Could not start the web server"),
                           ("%s", detail.c_str ()));
        ok = false;
        break;
    }
  }
  if (s.tls_certificate)
    g_object_unref (s.tls_certificate);
  if (s.soup_server)
    g_object_unref (s.soup_server);
  if (s.main_context)
    g_main_context_unref (s.main_context);
  if (!ok) {
    stop_shards (self);
    return FALSE;
  }
  if (!s.soup_server)
    g_object_notify (G_OBJECT (self), "current-port");
  return TRUE;
}

static gboolean
gst_web_socket_sink_stop (GstBaseSink *sink)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (sink);
  GstWebSocketSinkPrivate *priv = self->priv;
  if (!priv->http->running ())
    return TRUE;
  // Viewers first (each I/O thread closes its own and ends), then the HTTP side.
  stop_shards (self);
  priv->http->Stop ();
  reset_stream_state (priv);
  priv->current_port = 0;
  return TRUE;
}

/* ------------------------------------------------------------------------------------------ */
/* Stats                                                                                      */

static GstStructure *
get_stats (GstWebSocketSink *self)
{
  GstWebSocketSinkPrivate *priv = self->priv;
  fmp4ws::server::Snapshot snap;
  std::vector<guint> io_thread_of;
  guint io_threads;
  {
    std::lock_guard<std::mutex> shards_lock (priv->shards_lock);
    snap = snapshot (priv, true, &io_thread_of);
    io_threads = guint (priv->shards.size ());
  }
  const Totals &t = snap.totals;
  GValue clients = G_VALUE_INIT;
  g_value_init (&clients, GST_TYPE_ARRAY);
  guint viewers = guint (snap.viewers), gop_fragments = guint (snap.gop_fragments);
  guint64 gop_bytes = snap.gop_bytes, overload_drops = snap.overload_drops;
  {
    for (size_t i = 0; i < snap.clients.size (); i++) {
      const fmp4ws::server::ClientSnapshot &c = snap.clients[i];
      const ViewerStats *st = &c.stats;
      GstStructure *cs = gst_structure_new (
          "client", "id", G_TYPE_UINT64, (guint64) c.id, "address", G_TYPE_STRING,
          c.address.c_str (), "websocket", G_TYPE_BOOLEAN, gboolean (c.websocket),
          "io-thread", G_TYPE_UINT, io_thread_of[i], "bytes-sent", G_TYPE_UINT64, st->bytes_sent,
          "fragments-sent", G_TYPE_UINT64, st->fragments_sent, "fragments-dropped",
          G_TYPE_UINT64, st->fragments_dropped, "skips", G_TYPE_UINT64, st->skips,
          "non-keyframe-starts", G_TYPE_UINT64, st->non_keyframe_starts, "backlog-bytes",
          G_TYPE_UINT64, c.backlog_bytes, "backlog-time", G_TYPE_UINT64,
          (guint64) MAX (c.backlog_ns, 0), "latency", G_TYPE_DOUBLE, st->latency,
          "current-time", G_TYPE_DOUBLE, st->current_time, "stalls", G_TYPE_UINT64,
          st->stalls, "wall-clock-latency", G_TYPE_DOUBLE, st->wall_clock_latency,
          "wall-clock-source", G_TYPE_STRING, st->wall_clock_source.c_str (), NULL);
      GValue v = G_VALUE_INIT;
      g_value_init (&v, GST_TYPE_STRUCTURE);
      gst_value_set_structure (&v, cs);
      gst_value_array_append_and_take_value (&clients, &v);
      gst_structure_free (cs);
    }
  }
  GstStructure *disc = gst_structure_new_empty ("disconnects");
  for (auto &[reason, n] : t.disconnects) {
    std::string key;
    for (char ch : reason)
      key.push_back (g_ascii_isalnum (ch) ? ch : '-');
    gst_structure_set (disc, key.c_str (), G_TYPE_UINT64, n, NULL);
  }
  GstStructure *refused = gst_structure_new_empty ("refused");
  for (auto &[reason, n] : fmp4ws::server::Refusals (t)) {
    std::string key;
    for (char ch : reason)
      key.push_back (g_ascii_isalnum (ch) ? ch : '-');
    gst_structure_set (refused, key.c_str (), G_TYPE_UINT64, n, NULL);
  }
  GstStructure *s = gst_structure_new (
      "application/x-websocketsink-stats", "viewers", G_TYPE_UINT, viewers, "http-connections",
      G_TYPE_UINT, priv->http->http_connections (), "io-threads",
      G_TYPE_UINT, io_threads, "connections", G_TYPE_UINT64, t.connections,
      "bytes-sent", G_TYPE_UINT64, t.bytes_sent, "fragments-sent", G_TYPE_UINT64,
      t.fragments_sent, "fragments-dropped", G_TYPE_UINT64, t.fragments_dropped, "skips",
      G_TYPE_UINT64, t.skips,
      "gop-cache-fragments", G_TYPE_UINT, gop_fragments, "gop-cache-bytes", G_TYPE_UINT64,
      gop_bytes, "overload-drops", G_TYPE_UINT64, overload_drops, "keyframe-requests",
      G_TYPE_UINT64, self->priv->keyframe_requests.load (), "disconnects",
      GST_TYPE_STRUCTURE, disc, "refused", GST_TYPE_STRUCTURE, refused, NULL);
  gst_structure_free (disc);
  gst_structure_free (refused);
  gst_structure_take_value (s, "clients", &clients);
  return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Properties                                                                                 */

static std::vector<std::string>
split_list (const gchar *s)
{
  std::vector<std::string> out;
  if (!s)
    return out;
  gchar **parts = g_strsplit_set (s, ", ", -1);
  for (gchar **p = parts; *p; p++)
    if (**p)
      out.push_back (*p);
  g_strfreev (parts);
  return out;
}

static void
gst_web_socket_sink_set_property (GObject *object, guint prop_id, const GValue *value,
                                  GParamSpec *pspec)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (object);
  Settings &s = self->priv->settings;
  bool config_changed = false;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ADDRESS:
      s.address = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_PORT:
      s.port = g_value_get_uint (value);
      break;
    case PROP_PATH: {
      const gchar *p = g_value_get_string (value);
      s.path = p && p[0] == '/' ? p : std::string ("/") + (p ? p : "");
      break;
    }
    case PROP_SYNC_METHOD:
      s.config.sync = SyncMethod (g_value_get_enum (value));
      config_changed = true;
      break;
    case PROP_RECOVER_POLICY:
      s.config.recover = RecoverPolicy (g_value_get_enum (value));
      config_changed = true;
      break;
    case PROP_MAX_BACKLOG_BYTES:
      s.config.max_backlog_bytes = g_value_get_uint64 (value);
      config_changed = true;
      break;
    case PROP_MAX_BACKLOG_TIME:
      s.config.max_backlog_ns = int64_t (g_value_get_uint64 (value));
      config_changed = true;
      break;
    case PROP_GOP_CACHE_MAX_BYTES:
      s.config.gop_max_bytes = g_value_get_uint64 (value);
      config_changed = true;
      break;
    case PROP_GOP_CACHE_MAX_TIME:
      s.config.gop_max_ns = int64_t (g_value_get_uint64 (value));
      config_changed = true;
      break;
    case PROP_REBASE:
      s.config.rebase = g_value_get_boolean (value);
      config_changed = true;
      break;
    case PROP_ADD_PRFT:
      s.config.add_prft = g_value_get_boolean (value);
      config_changed = true;
      break;
    case PROP_KEYFRAME_REQUEST_INTERVAL:
      self->priv->keyframe_request_interval = g_value_get_uint64 (value);
      break;
    case PROP_MAX_CONNECTIONS:
      s.max_connections = g_value_get_uint (value);
      break;
    case PROP_REQUEST_TIMEOUT:
      s.request_timeout = g_value_get_uint (value);
      break;
    case PROP_MAX_HTTP_CONNECTIONS:
      s.max_http_connections = g_value_get_uint (value);
      break;
    case PROP_MAX_CONNECTIONS_PER_ADDRESS:
      s.max_connections_per_address = g_value_get_uint (value);
      break;
    case PROP_MAX_CLIENTS:
      s.max_clients = g_value_get_uint (value);
      break;
    case PROP_ALLOWED_ORIGINS:
      s.allowed_origins_str = g_value_get_string (value) ? g_value_get_string (value) : "";
      s.allowed_origins = split_list (g_value_get_string (value));
      break;
    case PROP_TOKEN_SECRET:
      s.token_secret = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_MAX_MESSAGE_SIZE:
      s.max_message_size = g_value_get_uint (value);
      config_changed = true;  // in order with the other settings (an older snapshot must not undo it)
      break;
    case PROP_MAX_MESSAGE_RATE:
      s.max_message_rate = g_value_get_uint (value);
      config_changed = true;  // in order with the other settings (an older snapshot must not undo it)
      break;
    case PROP_KEEPALIVE:
      s.keepalive = g_value_get_uint (value);
      break;
    case PROP_SERVE_PLAYER:
      s.serve_player = g_value_get_boolean (value);
      break;
    case PROP_DOCUMENT_ROOT:
      s.document_root = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_TLS_CERTIFICATE_FILE:
      s.tls_cert_file = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_TLS_KEY_FILE:
      s.tls_key_file = g_value_get_string (value) ? g_value_get_string (value) : "";
      break;
    case PROP_TLS_CERTIFICATE:
      g_clear_object (&s.tls_certificate);
      s.tls_certificate = (GTlsCertificate *) g_value_dup_object (value);
      break;
    case PROP_SEND_BUFFER_SIZE:
      s.send_buffer_size = g_value_get_uint (value);
      break;
    case PROP_IO_THREADS:
      s.io_threads = g_value_get_uint (value);
      break;
    case PROP_SOUP_SERVER:
      g_clear_object (&s.soup_server);
      s.soup_server = (SoupServer *) g_value_dup_object (value);
      break;
    case PROP_MAIN_CONTEXT:
      if (s.main_context)
        g_main_context_unref (s.main_context);
      s.main_context = (GMainContext *) g_value_dup_boxed (value);
      break;
    case PROP_PATH_PREFIX: {
      std::string p = g_value_get_string (value) ? g_value_get_string (value) : "";
      while (!p.empty () && p.back () == '/')
        p.pop_back ();
      if (!p.empty () && p[0] != '/')
        p = "/" + p;
      s.path_prefix = p;
      break;
    }
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  GST_OBJECT_UNLOCK (self);
  if (config_changed)
    post_command (self, Post::kSettings);
}

static void
gst_web_socket_sink_get_property (GObject *object, guint prop_id, GValue *value,
                                  GParamSpec *pspec)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (object);
  GstWebSocketSinkPrivate *priv = self->priv;
  if (prop_id == PROP_STATS) {
    GstStructure *st = get_stats (self);
    g_value_take_boxed (value, st);
    return;
  }
  if (prop_id == PROP_NUM_CLIENTS) {
    g_value_set_uint (value, priv->open_viewers);
    return;
  }
  if (prop_id == PROP_CURRENT_PORT) {
    g_value_set_uint (value, priv->current_port);
    return;
  }
  const Settings &s = priv->settings;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_ADDRESS:
      g_value_set_string (value, s.address.empty () ? NULL : s.address.c_str ());
      break;
    case PROP_PORT:
      g_value_set_uint (value, s.port);
      break;
    case PROP_PATH:
      g_value_set_string (value, s.path.c_str ());
      break;
    case PROP_SYNC_METHOD:
      g_value_set_enum (value, int (s.config.sync));
      break;
    case PROP_RECOVER_POLICY:
      g_value_set_enum (value, int (s.config.recover));
      break;
    case PROP_MAX_BACKLOG_BYTES:
      g_value_set_uint64 (value, s.config.max_backlog_bytes);
      break;
    case PROP_MAX_BACKLOG_TIME:
      g_value_set_uint64 (value, guint64 (s.config.max_backlog_ns));
      break;
    case PROP_GOP_CACHE_MAX_BYTES:
      g_value_set_uint64 (value, s.config.gop_max_bytes);
      break;
    case PROP_GOP_CACHE_MAX_TIME:
      g_value_set_uint64 (value, guint64 (s.config.gop_max_ns));
      break;
    case PROP_REBASE:
      g_value_set_boolean (value, s.config.rebase);
      break;
    case PROP_ADD_PRFT:
      g_value_set_boolean (value, s.config.add_prft);
      break;
    case PROP_KEYFRAME_REQUEST_INTERVAL:
      g_value_set_uint64 (value, self->priv->keyframe_request_interval.load ());
      break;
    case PROP_MAX_CONNECTIONS:
      g_value_set_uint (value, s.max_connections);
      break;
    case PROP_REQUEST_TIMEOUT:
      g_value_set_uint (value, s.request_timeout);
      break;
    case PROP_MAX_HTTP_CONNECTIONS:
      g_value_set_uint (value, s.max_http_connections);
      break;
    case PROP_MAX_CONNECTIONS_PER_ADDRESS:
      g_value_set_uint (value, s.max_connections_per_address);
      break;
    case PROP_MAX_CLIENTS:
      g_value_set_uint (value, s.max_clients);
      break;
    case PROP_ALLOWED_ORIGINS:
      g_value_set_string (value,
                          s.allowed_origins_str.empty () ? NULL : s.allowed_origins_str.c_str ());
      break;
    case PROP_MAX_MESSAGE_SIZE:
      g_value_set_uint (value, s.max_message_size);
      break;
    case PROP_MAX_MESSAGE_RATE:
      g_value_set_uint (value, s.max_message_rate);
      break;
    case PROP_KEEPALIVE:
      g_value_set_uint (value, s.keepalive);
      break;
    case PROP_SERVE_PLAYER:
      g_value_set_boolean (value, s.serve_player);
      break;
    case PROP_DOCUMENT_ROOT:
      g_value_set_string (value, s.document_root.empty () ? NULL : s.document_root.c_str ());
      break;
    case PROP_TLS_CERTIFICATE_FILE:
      g_value_set_string (value, s.tls_cert_file.empty () ? NULL : s.tls_cert_file.c_str ());
      break;
    case PROP_TLS_KEY_FILE:
      g_value_set_string (value, s.tls_key_file.empty () ? NULL : s.tls_key_file.c_str ());
      break;
    case PROP_TLS_CERTIFICATE:
      g_value_set_object (value, s.tls_certificate);
      break;
    case PROP_SEND_BUFFER_SIZE:
      g_value_set_uint (value, s.send_buffer_size);
      break;
    case PROP_IO_THREADS:
      g_value_set_uint (value, s.io_threads);
      break;
    case PROP_SOUP_SERVER:
      g_value_set_object (value, s.soup_server);
      break;
    case PROP_MAIN_CONTEXT:
      g_value_set_boxed (value, s.main_context);
      break;
    case PROP_PATH_PREFIX:
      g_value_set_string (value, s.path_prefix.c_str ());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_web_socket_sink_finalize (GObject *object)
{
  GstWebSocketSink *self = GST_WEB_SOCKET_SINK (object);
  g_clear_object (&self->priv->settings.tls_certificate);
  g_clear_object (&self->priv->settings.soup_server);
  if (self->priv->settings.main_context)
    g_main_context_unref (self->priv->settings.main_context);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

#define RW_STATIC GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS)
#define RW_READY GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)
#define RW_PLAYING \
  GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)
#define RO_STATIC GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)

static void
gst_web_socket_sink_class_init (GstWebSocketSinkClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseSinkClass *basesink_class = GST_BASE_SINK_CLASS (klass);

  gobject_class->set_property = gst_web_socket_sink_set_property;
  gobject_class->get_property = gst_web_socket_sink_get_property;
  gobject_class->finalize = gst_web_socket_sink_finalize;

  /**
   * GstWebSocketSink:address:
   *
   * Address or host name to listen on; NULL listens on all interfaces (IPv4 and IPv6).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_ADDRESS,
      g_param_spec_string ("address", "Address",
                           "Address to listen on (NULL: all interfaces, IPv4 and IPv6)",
                           DEFAULT_ADDRESS, RW_READY));
  /**
   * GstWebSocketSink:port:
   *
   * TCP port of the HTTP/WebSocket server; 0 picks a free port (see current-port).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_PORT,
      g_param_spec_uint ("port", "Port", "TCP port to listen on (0: pick a free one)", 0, 65535,
                         DEFAULT_PORT, RW_READY));
  /**
   * GstWebSocketSink:current-port:
   *
   * The port the server listens on (useful with port=0), 0 when stopped.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_CURRENT_PORT,
      g_param_spec_uint ("current-port", "Current port",
                         "The port the server listens on (0 when not started)", 0, 65535, 0,
                         RO_STATIC));
  /**
   * GstWebSocketSink:path:
   *
   * Path of the WebSocket endpoint. Upgrades on "/" are accepted too.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_PATH,
      g_param_spec_string ("path", "WebSocket path",
                           "Path of the WebSocket endpoint (upgrades on / are accepted too)",
                           DEFAULT_PATH, RW_READY));
  /**
   * GstWebSocketSink:sync-method:
   *
   * Where a new viewer starts.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_SYNC_METHOD,
      g_param_spec_enum ("sync-method", "Sync method",
                         "Where a new viewer starts (always on a keyframe fragment)",
                         GST_TYPE_WEB_SOCKET_SINK_SYNC_METHOD, int (DEFAULT_SYNC_METHOD),
                         RW_PLAYING));
  /**
   * GstWebSocketSink:recover-policy:
   *
   * What happens to a viewer whose backlog exceeds max-backlog-bytes or max-backlog-time.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_RECOVER_POLICY,
      g_param_spec_enum ("recover-policy", "Recover policy",
                         "What to do with a viewer whose backlog exceeds the bounds",
                         GST_TYPE_WEB_SOCKET_SINK_RECOVER_POLICY, int (DEFAULT_RECOVER_POLICY),
                         RW_PLAYING));
  /**
   * GstWebSocketSink:max-backlog-bytes:
   *
   * Most bytes queued (not yet written to the socket) for one viewer.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_BACKLOG_BYTES,
      g_param_spec_uint64 ("max-backlog-bytes", "Max backlog bytes",
                           "Most bytes queued for one viewer before recover-policy applies", 4096,
                           G_MAXUINT64, DEFAULT_MAX_BACKLOG_BYTES, RW_PLAYING));
  /**
   * GstWebSocketSink:max-backlog-time:
   *
   * Most media time (ns) queued for one viewer.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_BACKLOG_TIME,
      g_param_spec_uint64 ("max-backlog-time", "Max backlog time",
                           "Most media time (ns) queued for one viewer before recover-policy "
                           "applies",
                           GST_MSECOND, G_MAXINT64, DEFAULT_MAX_BACKLOG_TIME, RW_PLAYING));
  /**
   * GstWebSocketSink:gop-cache-max-bytes:
   *
   * Bound of the cache of fragments since the latest keyframe (latest-keyframe starts).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_GOP_CACHE_MAX_BYTES,
      g_param_spec_uint64 ("gop-cache-max-bytes", "GOP cache max bytes",
                           "Most bytes kept since the latest keyframe fragment; a longer GOP "
                           "makes new viewers wait for the next keyframe",
                           0, G_MAXUINT64, DEFAULT_GOP_CACHE_MAX_BYTES, RW_PLAYING));
  /**
   * GstWebSocketSink:gop-cache-max-time:
   *
   * Bound (ns) of the cache of fragments since the latest keyframe.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_GOP_CACHE_MAX_TIME,
      g_param_spec_uint64 ("gop-cache-max-time", "GOP cache max time",
                           "Most media time (ns) kept since the latest keyframe fragment", 0,
                           G_MAXINT64, DEFAULT_GOP_CACHE_MAX_TIME, RW_PLAYING));
  /**
   * GstWebSocketSink:rebase-timestamps:
   *
   * Rewrite each viewer's tfdt so its first fragment starts at 0 and its timeline has no
   * gaps (after skips, restarts, pauses). Viewers may opt out with ?rebase=0.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_REBASE,
      g_param_spec_boolean ("rebase-timestamps", "Rebase timestamps",
                            "Start each viewer's timeline at 0, without gaps (only the moof is "
                            "rewritten per viewer)",
                            DEFAULT_REBASE, RW_PLAYING));
  /**
   * GstWebSocketSink:keyframe-request-interval:
   *
   * When a viewer must wait for a keyframe (sync-method=next-keyframe, a GOP longer than the
   * GOP cache allows, a backlog or overload skip), send an upstream force-key-unit event
   * (gst_video_event_new_upstream_force_key_unit, all-headers) so that an encoder in the
   * pipeline (x264enc, ...) starts a new GOP now: at most once per this interval (ns). 0:
   * never. Publishers outside the pipeline (tcpserversrc) cannot be asked: the event stops
   * there.
   *
   * Since: 0.2
   */
  g_object_class_install_property (
      gobject_class, PROP_KEYFRAME_REQUEST_INTERVAL,
      g_param_spec_uint64 ("keyframe-request-interval", "Keyframe request interval",
                           "Least time (ns) between two upstream force-key-unit events sent "
                           "when a viewer waits for a keyframe (0: never)",
                           0, G_MAXINT64, DEFAULT_KEYFRAME_REQUEST_INTERVAL, RW_PLAYING));
  /**
   * GstWebSocketSink:add-prft:
   *
   * Give every fragment that has no `prft` (ISO/IEC 14496-12 §8.16.5
   * ProducerReferenceTimeBox) one, in front of its moof, per viewer: version 1, flags 4 ("the
   * time the movie fragment was written": how players tell it from an encoder's, e.g. ffmpeg
   * `-write_prft wallclock`, flags 0), reference track the fragment's first video track (else
   * its first), media_time that track's tfdt as this viewer gets it (rebased), ntp_timestamp the
   * wall clock (g_get_real_time()) when the fragment reached the sink less the track
   * fragment's duration. An encoder's prft is kept as is (its media time is the encoder's,
   * not rebased). With it the player measures wall-clock latency (capture or arrival to
   * screen; clocks in sync assumed, exact on one machine).
   *
   * Since: 0.2
   */
  g_object_class_install_property (
      gobject_class, PROP_ADD_PRFT,
      g_param_spec_boolean ("add-prft", "Add prft",
                            "Add a prft box (arrival wall-clock time, NTP) to fragments without "
                            "one, for wall-clock latency in players",
                            TRUE, RW_PLAYING));
  /**
   * GstWebSocketSink:max-clients:
   *
   * Most viewers (WebSocket and /stream.mp4) at once; others get HTTP 503. 0: no limit.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_CLIENTS,
      g_param_spec_uint ("max-clients", "Max clients",
                         "Most viewers at once, others get HTTP 503 (0: unlimited)", 0,
                         G_MAXUINT, DEFAULT_MAX_CLIENTS, RW_PLAYING));
  /**
   * GstWebSocketSink:max-connections:
   *
   * Most connections open at once, HTTP requests and viewers alike (a viewer holds one
   * until it leaves); past it a new connection is answered HTTP 503 and closed, counted in
   * stats' disconnects as "rejected: budget". 0 (default): automatic, the process's file
   * descriptor limit (its soft limit, which the element raises to the hard limit at start)
   * less 64 kept for the rest of the pipeline. Read at start; not used when joining an
   * application's server (soup-server).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_CONNECTIONS,
      g_param_spec_uint ("max-connections", "Max connections",
                         "Most connections (HTTP and viewers) open at once, others get HTTP 503; "
                         "0: the file descriptor limit less 64 (read at start)",
                         0, G_MAXUINT, DEFAULT_MAX_CONNECTIONS, RW_READY));
  /**
   * GstWebSocketSink:request-timeout:
   *
   * Seconds a connection may take to send its HTTP request line and headers (for a
   * WebSocket: its upgrade request): counted from accept, a TLS handshake included, and on a
   * keep-alive connection from the end of one response to the next request's headers. A
   * connection past it is closed, counted in stats' refused as "timeout". Viewers (once
   * upgraded, or /stream.mp4 once its response head is written) are not affected: their
   * liveness is keepalive's. 0: no limit. Read at start; own listener only (not with
   * soup-server).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_REQUEST_TIMEOUT,
      g_param_spec_uint ("request-timeout", "Request timeout",
                         "Seconds a connection may take to send its request headers (from "
                         "accept, TLS handshake included, or between keep-alive requests); then "
                         "it is closed. 0: no limit (read at start)",
                         0, G_MAXUINT, DEFAULT_REQUEST_TIMEOUT, RW_READY));
  /**
   * GstWebSocketSink:max-http-connections:
   *
   * Most connections at once that are still waiting for their request headers (the ones
   * request-timeout bounds: slow or idle requests, not viewers). When full, a new connection
   * closes the oldest of them if that one has waited a tenth of request-timeout, else the
   * newcomer is answered HTTP 503 at accept (on a TLS port just closed); both counted in
   * stats' refused as "http-connections". A real client sends its headers within
   * milliseconds, so stalled requests can neither lock it out until their timeout nor take
   * the room of viewers. 0 (default): half the connection
   * budget (max-connections, or its automatic value). Read at start; own listener only.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_HTTP_CONNECTIONS,
      g_param_spec_uint ("max-http-connections", "Max HTTP connections",
                         "Most connections waiting for their request headers at once; when full "
                         "a new one closes the oldest if it waited request-timeout/10, else gets "
                         "HTTP 503. 0: half the connection budget (read at start)",
                         0, G_MAXUINT, DEFAULT_MAX_HTTP_CONNECTIONS, RW_READY));
  /**
   * GstWebSocketSink:max-connections-per-address:
   *
   * Most connections waiting for their request headers at once from one client IP address;
   * past it a new one from that address is answered HTTP 503 at accept and closed, counted
   * in stats' refused as "per-address". 0 (default): no limit. Viewers behind one NAT or
   * proxy share an address: keep it well above the number of them that may connect at the
   * same moment. Read at start; own listener only.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_CONNECTIONS_PER_ADDRESS,
      g_param_spec_uint ("max-connections-per-address", "Max connections per address",
                         "Most connections waiting for their request headers from one client "
                         "address, others get HTTP 503 at accept; 0: no limit (mind NAT; read at "
                         "start)",
                         0, G_MAXUINT, DEFAULT_MAX_CONNECTIONS_PER_ADDRESS, RW_READY));
  /**
   * GstWebSocketSink:allowed-origins:
   *
   * Comma-separated Origin values allowed to connect (e.g. "https://example.com");
   * NULL allows all. Requests with another Origin get HTTP 403.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_ALLOWED_ORIGINS,
      g_param_spec_string ("allowed-origins", "Allowed origins",
                           "Comma-separated Origins allowed to open the stream (NULL: any); "
                           "others get HTTP 403",
                           NULL, RW_PLAYING));
  /**
   * GstWebSocketSink:token-secret:
   *
   * Signed links: when set, every request of the stream (the page, the WebSocket,
   * /stream.mp4, /status and the page's other files, but its scripts and style sheets:
   * .js, .mjs, .css) needs `?token=EXPIRY.SIG`. EXPIRY is a Unix time in seconds (decimal),
   * SIG the lower-case hex HMAC-SHA256 (RFC 2104) of `EXPIRY:PATH` keyed with this secret,
   * PATH the stream's base path: "/", or path-prefix when set (e.g. /live/cam1). A missing,
   * malformed, wrong (other secret or path) or expired token gets HTTP 403 with the same
   * body ("forbidden"), counted in stats (`refused`: `token`). The signature is
   * compared in constant time. NULL or "" (default): no token needed. Write-only; a change
   * applies to the next request (connected viewers stay).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_TOKEN_SECRET,
      g_param_spec_string ("token-secret", "Token secret",
                           "Signed links: every request of the stream needs ?token=EXPIRY.SIG, "
                           "SIG = hex HMAC-SHA256 of \"EXPIRY:PATH\" (PATH: path-prefix or /); "
                           "else HTTP 403 (NULL: off; write-only)",
                           NULL,
                           GParamFlags (G_PARAM_WRITABLE | G_PARAM_STATIC_STRINGS |
                                        GST_PARAM_MUTABLE_PLAYING)));
  /**
   * GstWebSocketSink:max-message-size:
   *
   * Largest message a viewer may send; bigger ones close the connection (1009).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_MESSAGE_SIZE,
      g_param_spec_uint ("max-message-size", "Max message size",
                         "Largest message (bytes) a viewer may send (control JSON)", 125, 1 << 20,
                         DEFAULT_MAX_MESSAGE_SIZE, RW_PLAYING));
  /**
   * GstWebSocketSink:max-message-rate:
   *
   * Most WebSocket frames a viewer may send per second, control frames (ping, pong, close,
   * RFC 6455 §5.5) and messages alike; more close the connection with 1008 (reason "too many
   * messages: message rate limit reached", also the `client-removed` reason). 0: no limit.
   * The player sends one `report` a second. Whatever the rate, a viewer that sends pings
   * without reading has at most one pong pending (RFC 6455 §5.5.3) and its control frames
   * count in its backlog (`max-backlog-bytes`).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_MESSAGE_RATE,
      g_param_spec_uint ("max-message-rate", "Max message rate",
                         "Most frames (control frames included) a viewer may send per second; "
                         "more: close 1008 (0: no limit)",
                         0, G_MAXUINT, DEFAULT_MAX_MESSAGE_RATE, RW_PLAYING));
  /**
   * GstWebSocketSink:keepalive-interval:
   *
   * Seconds between pings; a viewer silent for 3 intervals is disconnected. 0: off.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_KEEPALIVE,
      g_param_spec_uint ("keepalive-interval", "Keepalive interval",
                         "Seconds between pings; silent for 3 intervals = dead (0: off)", 0,
                         3600, DEFAULT_KEEPALIVE, RW_READY));
  /**
   * GstWebSocketSink:serve-player:
   *
   * Serve the web player over HTTP (built in, or from document-root).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_SERVE_PLAYER,
      g_param_spec_boolean ("serve-player", "Serve player",
                            "Serve the web player on GET / (built in, or document-root)",
                            DEFAULT_SERVE_PLAYER, RW_PLAYING));
  /**
   * GstWebSocketSink:document-root:
   *
   * Folder to serve instead of the built-in player (nothing outside it is served).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_DOCUMENT_ROOT,
      g_param_spec_string ("document-root", "Document root",
                           "Folder to serve over HTTP instead of the built-in player", NULL,
                           RW_PLAYING));
  /**
   * GstWebSocketSink:tls-certificate-file:
   *
   * PEM certificate (chain) file: serve https and wss.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_TLS_CERTIFICATE_FILE,
      g_param_spec_string ("tls-certificate-file", "TLS certificate file",
                           "PEM certificate file: serve https/wss", NULL, RW_READY));
  /**
   * GstWebSocketSink:tls-key-file:
   *
   * PEM private key file (default: the certificate file).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_TLS_KEY_FILE,
      g_param_spec_string ("tls-key-file", "TLS key file",
                           "PEM private key file (NULL: in the certificate file)", NULL,
                           RW_READY));
  /**
   * GstWebSocketSink:tls-certificate:
   *
   * A GTlsCertificate (with its private key): serve https and wss.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_TLS_CERTIFICATE,
      g_param_spec_object ("tls-certificate", "TLS certificate",
                           "GTlsCertificate with private key: serve https/wss",
                           G_TYPE_TLS_CERTIFICATE, RW_READY));
  /**
   * GstWebSocketSink:send-buffer-size:
   *
   * SO_SNDBUF of each viewer socket (bytes; the kernel doubles it). Small enough that a slow
   * viewer's backlog stays in the sink, where max-backlog-* applies and nothing is copied;
   * 0 leaves the kernel's autotuning (up to several MiB per viewer).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_SEND_BUFFER_SIZE,
      g_param_spec_uint ("send-buffer-size", "Send buffer size",
                         "SO_SNDBUF of each viewer socket in bytes (0: kernel autotuning); keeps "
                         "a slow viewer's backlog in the sink where max-backlog-* applies",
                         0, G_MAXINT, DEFAULT_SEND_BUFFER_SIZE, RW_PLAYING));
  /**
   * GstWebSocketSink:io-threads:
   *
   * Threads that write to viewers, each with its own epoll loop and its share of the
   * viewers (a new viewer goes to the least loaded). 0: half the CPU cores, at least 1 and
   * at most 8. HTTP requests and WebSocket handshakes stay on the server's thread.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_IO_THREADS,
      g_param_spec_uint ("io-threads", "I/O threads",
                         "Threads writing to viewers, each with its own epoll loop "
                         "(0: half the CPU cores, 1 to 8)",
                         0, MAX_IO_THREADS, DEFAULT_IO_THREADS, RW_READY));
  /**
   * GstWebSocketSink:soup-server:
   *
   * An application's SoupServer to serve on, instead of listening itself (several sinks,
   * one port: give each a path-prefix). address/port/TLS are then the server's business,
   * and so is its listener: max-connections, request-timeout, max-http-connections and
   * max-connections-per-address do not apply (origin and max-clients do). Note that
   * libsoup's own listener (soup_server_listen*, libsoup 3.2.3) stops accepting for good
   * after one failed accept (out of file descriptors) and never times out a client that
   * stops mid-TLS-handshake: an application expecting many clients should accept
   * connections itself and hand them over with soup_server_accept_iostream, as
   * fmp4ws-server does.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_SOUP_SERVER,
      g_param_spec_object ("soup-server", "Soup server",
                           "An application's SoupServer to serve on (several streams, one port: "
                           "set path-prefix); NULL: listen on address/port",
                           SOUP_TYPE_SERVER, RW_READY));
  /**
   * GstWebSocketSink:main-context:
   *
   * The GMainContext the soup-server runs in (default: the global default context).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAIN_CONTEXT,
      g_param_spec_boxed ("main-context", "Main context",
                          "The GMainContext soup-server runs in (NULL: the default context)",
                          G_TYPE_MAIN_CONTEXT, RW_READY));
  /**
   * GstWebSocketSink:path-prefix:
   *
   * Serve every endpoint under this path (e.g. /live/cam1: /live/cam1/ws,
   * /live/cam1/stream.mp4, /live/cam1/status and the player at /live/cam1/).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_PATH_PREFIX,
      g_param_spec_string ("path-prefix", "Path prefix",
                           "Serve every endpoint under this path, e.g. /live/cam1", "",
                           RW_READY));
  /**
   * GstWebSocketSink:num-clients:
   *
   * Viewers connected now.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_NUM_CLIENTS,
      g_param_spec_uint ("num-clients", "Number of clients", "Viewers connected now", 0,
                         G_MAXUINT, 0, RO_STATIC));
  /**
   * GstWebSocketSink:stats:
   *
   * viewers, http-connections (connections waiting for their request headers now: see
   * max-http-connections), io-threads, connections, bytes-sent, fragments-sent, fragments-dropped, skips
   * (backlog overflows of all viewers, gone and connected), GOP cache size, overload-drops (fragments an I/O thread that fell behind by more than
   * max-backlog-bytes or 4096 fragments never took), disconnects (by reason; refusals as
   * "rejected--REASON"), refused (a structure of counts of connections and requests refused
   * before they became viewers, by reason, every reason present: budget, http-connections,
   * per-address, timeout, origin, max-clients, token, authorize) and a `clients` array (id,
   * address, io-thread, bytes-sent, backlog, latency...).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
                          "Viewers, bytes and fragments sent/dropped, disconnects and refusals by reason, "
                          "per-client backlog and live latency",
                          GST_TYPE_STRUCTURE, RO_STATIC));

  /**
   * GstWebSocketSink::client-added:
   * @sink: the sink
   * @id: the viewer's id
   * @address: the viewer's address
   *
   * A viewer connected (WebSocket or /stream.mp4). Emitted from the viewer's I/O thread.
   *
   * Since: 0.1
   */
  signals[SIGNAL_CLIENT_ADDED] =
      g_signal_new ("client-added", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                    NULL, G_TYPE_NONE, 2, G_TYPE_UINT64, G_TYPE_STRING);
  /**
   * GstWebSocketSink::client-removed:
   * @sink: the sink
   * @id: the viewer's id
   * @address: the viewer's address
   * @reason: why ("client closed", "too slow: backlog limit reached", "keepalive timeout"...)
   *
   * A viewer left. Emitted from the viewer's I/O thread.
   *
   * Since: 0.1
   */
  signals[SIGNAL_CLIENT_REMOVED] =
      g_signal_new ("client-removed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                    NULL, NULL, G_TYPE_NONE, 3, G_TYPE_UINT64, G_TYPE_STRING, G_TYPE_STRING);

  /**
   * GstWebSocketSink::authorize:
   * @sink: the sink
   * @request: (transfer none): the request, a #GstStructure named "request" with the string
   *   fields `route` ("page": / or /index.html, "websocket", "stream": /stream.mp4,
   *   "status", "metrics" (GET /metrics), "file": any other file of the page), `address` (the client's IP address),
   *   `method`, `path` (the full path, path-prefix included), `query` (raw, without '?';
   *   "" if none), `origin` ("" if none) and `headers` (a #GstStructure named "headers": one
   *   string field per request header, its name in lower case, repeated headers joined with
   *   ", "; names other than a letter then letters, digits, "-_+." are left out)
   *
   * Access control, like #GstRTSPAuth: emitted for every HTTP request of the stream (after
   * the token-secret check, before the Origin and max-clients checks). Return 0 to allow;
   * anything else denies the request with that HTTP status (400 to 599; other values: 403),
   * counted in stats (`refused`: `authorize`). The first handler returning
   * non-zero ends the emission.
   *
   * Emitted from the sink's server thread ("websocketsink", or the thread running the
   * main-context of soup-server), never from the streaming or the I/O threads: handlers must
   * be thread-safe and should return quickly (no blocking I/O), as no other HTTP request of
   * this sink is served while one runs; viewers already connected are not affected.
   *
   * Returns: 0 to allow, or the HTTP status to deny with.
   *
   * Since: 0.1
   */
  signals[SIGNAL_AUTHORIZE] = g_signal_new (
      "authorize", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      [] (GSignalInvocationHint *, GValue *acc, const GValue *ret, gpointer) -> gboolean {
        guint v = g_value_get_uint (ret);
        g_value_set_uint (acc, v);
        return v == 0;  // the first denial ends the emission
      },
      NULL, NULL, G_TYPE_UINT, 1, GST_TYPE_STRUCTURE | G_SIGNAL_TYPE_STATIC_SCOPE);

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_set_static_metadata (
      element_class, "WebSocket fMP4 broadcast sink", "Sink/Network",
      "Serves live fragmented MP4 to web browsers (MSE) over WebSockets and HTTP",
      "gst-fmp4ws developers");

  basesink_class->start = GST_DEBUG_FUNCPTR (gst_web_socket_sink_start);
  basesink_class->stop = GST_DEBUG_FUNCPTR (gst_web_socket_sink_stop);
  basesink_class->render = GST_DEBUG_FUNCPTR (gst_web_socket_sink_render);
  basesink_class->set_caps = GST_DEBUG_FUNCPTR (gst_web_socket_sink_set_caps);
  basesink_class->event = GST_DEBUG_FUNCPTR (gst_web_socket_sink_event);

  gst_type_mark_as_plugin_api (GST_TYPE_WEB_SOCKET_SINK_SYNC_METHOD, GstPluginAPIFlags (0));
  gst_type_mark_as_plugin_api (GST_TYPE_WEB_SOCKET_SINK_RECOVER_POLICY, GstPluginAPIFlags (0));
}

static void
gst_web_socket_sink_init (GstWebSocketSink *self)
{
  self->priv = new GstWebSocketSinkPrivate ();
  self->priv->routes = std::make_unique<HttpRoutes> (route_hooks (self), fmp4ws_web_get_resource ());
  fmp4ws::server::HttpServer::Hooks hooks;
  hooks.error = [self] (const std::string &m) { GST_ERROR_OBJECT (self, "%s", m.c_str ()); };
  hooks.info = [self] (const std::string &m) { GST_INFO_OBJECT (self, "%s", m.c_str ()); };
  hooks.warning = [self] (const std::string &m) {
    GST_ELEMENT_WARNING (self, RESOURCE, OPEN_READ_WRITE, ("Server short of resources"),
                         ("%s", m.c_str ()));
  };
  GstWebSocketSinkPrivate *priv = self->priv;
  hooks.refused = [priv] (const char *why) {
    std::lock_guard<std::mutex> lock (priv->status_lock);
    priv->rejected.disconnects[why]++;
  };
  self->priv->http = std::make_unique<fmp4ws::server::HttpServer> (std::move (hooks));
  // Live: never wait for the clock, never drop late buffers.
  gst_base_sink_set_sync (GST_BASE_SINK (self), FALSE);
  gst_base_sink_set_async_enabled (GST_BASE_SINK (self), FALSE);
  gst_base_sink_set_qos_enabled (GST_BASE_SINK (self), FALSE);
}
