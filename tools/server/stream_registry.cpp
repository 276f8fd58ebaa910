#include "stream_registry.h"

#include <gst/app/gstappsrc.h>

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
  if (s->has_init () || s->viewers () != 0 || s->publisher || s->name.empty ())
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
  if (reg->opt_.token_secret) {
    // Stream names, codecs and viewer counts: only with a link signed for "/streams".
    const char *token = query ? (const char *) g_hash_table_lookup (query, "token") : nullptr;
    if (fmp4ws::server::VerifyToken (*reg->opt_.token_secret, "/streams", token,
                                     g_get_real_time () / G_USEC_PER_SEC) !=
        fmp4ws::server::TokenCheck::kValid) {
      fmp4ws::server::EndConnectionAfterResponse (msg);
      soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, nullptr);
      soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "forbidden\n", 10);
      return;
    }
  }
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

}  // namespace fmp4ws::tools
