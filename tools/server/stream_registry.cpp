#include "stream_registry.h"

#include <gst/app/gstappsrc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "log.h"
#include "routes.h"
#include "http_server.h"  // gst/server: libsoup < 3.4 workarounds
#include "token.h"        // gst/server: signed links

namespace fmp4ws::tools {

const char *
stream_label (const Stream *s)
{
  return s->name.empty () ? "(default)" : s->name.c_str ();
}

/* Stream ----------------------------------------------------------------------------------- */

Stream::Stream (const std::string &stream_name)
    : name (stream_name), prefix (viewer_prefix (stream_name))
{
}

Stream::~Stream ()
{
  if (pipeline) {
    gst_element_set_state (pipeline, GST_STATE_NULL);
    gst_object_unref (in);
    gst_object_unref (sink);
    gst_object_unref (pipeline);
  }
  if (caps_)
    gst_caps_unref (caps_);
}

void
Stream::push (GstSample *sample)
{
  GstCaps *caps = gst_sample_get_caps (sample);
  {
    std::lock_guard<std::mutex> lock (caps_lock_);
    if (caps && (!caps_ || !gst_caps_is_equal (caps, caps_))) {
      gst_caps_replace (&caps_, caps);
      gst_app_src_set_caps (GST_APP_SRC (in), caps);
    }
  }
  GstBuffer *buf = gst_sample_get_buffer (sample);
  gst_app_src_push_buffer (GST_APP_SRC (in), gst_buffer_ref (buf));  // viewers never stop an ingest
}

bool
Stream::has_init () const
{
  std::lock_guard<std::mutex> lock (caps_lock_);
  return caps_ != nullptr;
}

std::string
Stream::codecs () const
{
  std::lock_guard<std::mutex> lock (caps_lock_);
  const char *c = caps_ ? gst_structure_get_string (gst_caps_get_structure (caps_, 0), "codecs")
                        : nullptr;
  return c ? c : "";
}

unsigned
Stream::viewers () const
{
  guint n = 0;
  g_object_get (sink, "num-clients", &n, NULL);
  return n;
}

/* StreamRegistry --------------------------------------------------------------------------- */

StreamRegistry::StreamRegistry (SoupServer *server, const Options &opt)
    : server_ (server), opt_ (opt)
{
}

StreamRegistry::~StreamRegistry () { clear (); }

void
StreamRegistry::add_routes ()
{
  soup_server_add_handler (server_, "/streams", on_streams, this, nullptr);
  soup_server_add_handler (server_, "/metrics", on_metrics, this, nullptr);
  soup_server_add_handler (server_, "/live", on_unknown_live, this, nullptr);
}

void
StreamRegistry::on_unknown_live (SoupServer *, SoupServerMessage *msg, const char *,
                                 GHashTable *, gpointer self)
{
  StreamRegistry *reg = static_cast<StreamRegistry *> (self);
  fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
  if (reg->opt_.token_secret) {
    soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, nullptr);
    soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "forbidden\n", 10);
    return;
  }
  soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, nullptr);
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "not found\n", 10);
}

Stream *
StreamRegistry::find (const std::string &name) const
{
  auto it = streams_.find (name);
  return it == streams_.end () ? nullptr : it->second.get ();
}

Stream *
StreamRegistry::create (const std::string &name)
{
  auto s = std::make_unique<Stream> (name);
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
  g_object_set (s->sink, "soup-server", server_, "path-prefix", s->prefix.c_str (),
                "max-clients", guint (opt_.max_clients), "max-backlog-bytes",
                guint64 (opt_.max_backlog_bytes), "max-backlog-time",
                guint64 (opt_.max_backlog_time * GST_SECOND), NULL);
  if (opt_.allowed_origins)
    g_object_set (s->sink, "allowed-origins", opt_.allowed_origins->c_str (), NULL);
  if (opt_.token_secret)  // PATH: the prefix, "/" for the default stream (token_path)
    g_object_set (s->sink, "token-secret", opt_.token_secret->c_str (), NULL);
  if (opt_.sync_method)
    gst_util_set_object_arg (G_OBJECT (s->sink), "sync-method", opt_.sync_method->c_str ());
  if (opt_.recover_policy)
    gst_util_set_object_arg (G_OBJECT (s->sink), "recover-policy", opt_.recover_policy->c_str ());
  if (gst_element_set_state (s->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    log_msg ("cannot start the viewer pipeline of stream %s", name.c_str ());
    return nullptr;
  }
  Stream *raw = s.get ();
  streams_[name] = std::move (s);
  log_msg ("stream %s: viewers at %s/", stream_label (raw), raw->prefix.c_str ());
  return raw;
}

bool
StreamRegistry::full () const
{
  // streams_ holds the default stream too: --max-streams HTTP-ingest streams besides it.
  return streams_.size () > size_t (opt_.max_streams);
}

void
StreamRegistry::remove_if_unused (Stream *s)
{
  if (s->has_init () || s->viewers () != 0 || s->publisher || s->name.empty () || s->relayed)
    return;
  log_msg ("stream %s: removed (no init segment was ever received)", s->name.c_str ());
  std::string name = s->name;  // not a reference into what erase () frees
  streams_.erase (name);
}

std::vector<Stream *>
StreamRegistry::all () const
{
  std::vector<Stream *> v;
  for (auto &[name, s] : streams_)
    v.push_back (s.get ());
  return v;
}

void
StreamRegistry::clear ()
{
  streams_.clear ();
}

void
StreamRegistry::on_streams (SoupServer *, SoupServerMessage *msg, const char *,
                            GHashTable *query, gpointer self)
{
  StreamRegistry *reg = static_cast<StreamRegistry *> (self);
  // Stream names, codecs and viewer counts: only with a link signed for "/streams".
  if (!reg->token_ok (msg, query, "/streams"))
    return;
  std::vector<StreamSummary> list;
  for (auto &[name, s] : reg->streams_) {
    StreamSummary sum;
    sum.name = name;
    sum.path = s->prefix + "/";
    sum.publishing = s->publisher != nullptr;
    sum.viewers = s->viewers ();
    sum.publishers = s->publishers;
    sum.codecs = s->codecs ();
    list.push_back (std::move (sum));
  }
  std::string json = streams_json (list);
  fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
  soup_server_message_set_status (msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response (msg, "application/json", SOUP_MEMORY_COPY, json.data (),
                                    json.size ());
}

bool
StreamRegistry::token_ok (SoupServerMessage *msg, GHashTable *query, const char *path) const
{
  if (!opt_.token_secret)
    return true;
  const char *token = query ? (const char *) g_hash_table_lookup (query, "token") : nullptr;
  if (fmp4ws::server::VerifyToken (*opt_.token_secret, path, token,
                                   g_get_real_time () / G_USEC_PER_SEC) ==
      fmp4ws::server::TokenCheck::kValid)
    return true;
  fmp4ws::server::EndConnectionAfterResponse (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, nullptr);
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "forbidden\n", 10);
  return false;
}

// GET /metrics: every stream (stream="NAME", "(default)" for the TCP-ingest one), the accept
// loop and the process. With --token-secret: only with a link signed for "/metrics"
// (`fmp4ws-server token --metrics`; Prometheus sends it as a scrape `params: token`).
void
StreamRegistry::on_metrics (SoupServer *, SoupServerMessage *msg, const char *,
                            GHashTable *query, gpointer self)
{
  StreamRegistry *reg = static_cast<StreamRegistry *> (self);
  const char *method = soup_server_message_get_method (msg);
  if (strcmp (method, "GET") != 0 && strcmp (method, "HEAD") != 0) {
    fmp4ws::server::EndConnectionAfterResponse (msg);
    soup_server_message_set_status (msg, SOUP_STATUS_METHOD_NOT_ALLOWED, nullptr);
    return;
  }
  if (!reg->token_ok (msg, query, "/metrics"))
    return;
  fmp4ws::server::MetricsInput in;
  in.stream_label = true;
  in.publishers = true;
  for (auto &[name, s] : reg->streams_) {
    fmp4ws::server::StreamMetrics m;
    m.stream = stream_label (s.get ());
    GstStructure *stats = nullptr;
    g_object_get (s->sink, "stats", &stats, NULL);
    if (stats) {
      m.snap = snapshot_from_stats (stats);
      gst_structure_free (stats);
    }
    m.publishing = s->publisher != nullptr;
    m.publishers = s->publishers;
    in.streams.push_back (std::move (m));
  }
  if (reg->process_metrics)
    reg->process_metrics (&in);
  std::string text = fmp4ws::server::PrometheusText (in);
  fmp4ws::server::EndConnectionAfterResponse (msg);
  soup_server_message_set_status (msg, SOUP_STATUS_OK, nullptr);
  soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Cache-Control",
                                "no-store");
  soup_server_message_set_response (msg, fmp4ws::server::kMetricsContentType, SOUP_MEMORY_COPY,
                                    text.data (), text.size ());
}

static uint64_t
stats_u64 (const GstStructure *s, const char *field)
{
  guint64 v = 0;
  if (!gst_structure_get_uint64 (s, field, &v)) {
    guint u = 0;
    if (gst_structure_get_uint (s, field, &u))
      v = u;
  }
  return v;
}

fmp4ws::server::Snapshot
snapshot_from_stats (const GstStructure *stats)
{
  fmp4ws::server::Snapshot snap;
  fmp4ws::server::Totals &t = snap.totals;
  snap.viewers = size_t (stats_u64 (stats, "viewers"));
  t.connections = stats_u64 (stats, "connections");
  t.bytes_sent = stats_u64 (stats, "bytes-sent");
  t.fragments_sent = stats_u64 (stats, "fragments-sent");
  t.fragments_dropped = stats_u64 (stats, "fragments-dropped");
  t.skips = stats_u64 (stats, "skips");
  snap.overload_drops = stats_u64 (stats, "overload-drops");
  snap.gop_fragments = size_t (stats_u64 (stats, "gop-cache-fragments"));
  snap.gop_bytes = stats_u64 (stats, "gop-cache-bytes");
  // Disconnects by reason (field names: the reason with other than [A-Za-z0-9] as '-'), but
  // the refusals ("rejected--..."), which come from `refused` under their own names.
  const GstStructure *disc = nullptr, *refused = nullptr;
  if (gst_structure_get (stats, "disconnects", GST_TYPE_STRUCTURE, &disc, NULL) && disc) {
    for (int i = 0; i < gst_structure_n_fields (disc); i++) {
      const char *k = gst_structure_nth_field_name (disc, guint (i));
      if (!g_str_has_prefix (k, "rejected-"))
        t.disconnects[k] = stats_u64 (disc, k);
    }
    gst_structure_free ((GstStructure *) disc);
  }
  if (gst_structure_get (stats, "refused", GST_TYPE_STRUCTURE, &refused, NULL) && refused) {
    for (int i = 0; i < gst_structure_n_fields (refused); i++) {
      const char *k = gst_structure_nth_field_name (refused, guint (i));
      t.disconnects[std::string ("rejected: ") + k] = stats_u64 (refused, k);
    }
    gst_structure_free ((GstStructure *) refused);
  }
  const GValue *clients = gst_structure_get_value (stats, "clients");
  for (guint i = 0; clients && i < gst_value_array_get_size (clients); i++) {
    const GstStructure *cs = gst_value_get_structure (gst_value_array_get_value (clients, i));
    fmp4ws::server::ClientSnapshot c;
    c.id = stats_u64 (cs, "id");
    c.backlog_bytes = stats_u64 (cs, "backlog-bytes");
    c.backlog_ns = int64_t (stats_u64 (cs, "backlog-time"));
    gst_structure_get_double (cs, "latency", &c.stats.latency);
    snap.clients.push_back (std::move (c));
  }
  return snap;
}

fmp4ws::server::ProcessMetrics
read_process_metrics (double start_time_s)
{
  fmp4ws::server::ProcessMetrics p;
  p.start_time_seconds = start_time_s;
  struct rusage ru;
  if (getrusage (RUSAGE_SELF, &ru) == 0)
    p.cpu_seconds = double (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                    double (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  gchar *statm = nullptr;
  if (g_file_get_contents ("/proc/self/statm", &statm, nullptr, nullptr)) {
    unsigned long long size = 0, resident = 0;
    if (sscanf (statm, "%llu %llu", &size, &resident) == 2)
      p.resident_bytes = uint64_t (resident) * uint64_t (sysconf (_SC_PAGESIZE));
    g_free (statm);
  }
  if (GDir *d = g_dir_open ("/proc/self/fd", 0, nullptr)) {
    while (g_dir_read_name (d))
      p.open_fds++;
    g_dir_close (d);
    if (p.open_fds > 0)
      p.open_fds--;  // the listing's own descriptor
  }
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0)
    p.max_fds = rl.rlim_cur == RLIM_INFINITY ? 0 : uint64_t (rl.rlim_cur);
  return p;
}

}  // namespace fmp4ws::tools
