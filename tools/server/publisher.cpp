#include "publisher.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "log.h"
#include "relay_schedule.h"
#include "routes.h"
#include "http_server.h"  // gst/server: MessageSocket, libsoup < 3.4 workarounds
#include "token.h"        // gst/server: signed links

namespace fmp4ws::tools {

// One publisher, from its connection to its teardown. Main thread, except that its pipeline's
// appsink hands samples to the stream on the ingest streaming thread.
struct Publisher
{
  StreamRegistry *streams = nullptr;
  const Options *opt = nullptr;
  Stream *stream = nullptr;
  std::string peer;
  GstElement *pipeline = nullptr;  // appsrc ! fmp4initcache ! appsink
  GstElement *src = nullptr;
  guint bus_watch = 0;
  guint timer = 0;
  gint64 last_data_us = 0;
  guint64 bytes = 0;
  bool ended = false;
  // The remote ended its bytes (EOF): end-of-stream went into the ingest pipeline, which
  // hands on what it holds; its EOS (or an error, or --publisher-timeout) ends the publisher.
  bool draining = false;
  gint64 drain_start_us = 0;
  std::string drain_reason;
  // TCP publisher
  GSocketConnection *conn = nullptr;
  GCancellable *cancel = nullptr;
  // HTTP publisher
  SoupServerMessage *msg = nullptr;
  // Relay (an HTTP pull from an origin, --relay): its request and response body.
  SoupMessage *relay_msg = nullptr;
  GInputStream *relay_in = nullptr;
  bool relay_answered = false;  // the origin answered 200
  std::string relay_tls_errors;  // why the origin's TLS certificate was refused, if it was
  // Asynchronous operations not yet called back: their callbacks hold `this`, so the
  // teardown (pipeline, timers, the relay's retry) runs at once but the last of them frees it.
  unsigned pending_io = 0;
  bool finish_deferred = false;
  // Fragments (not init segments) its pipeline handed to the stream (ingest streaming thread).
  std::atomic<uint64_t> samples{0};
  // Run once the publisher is torn down, just before it is freed (the relay's retry).
  std::function<void (Publisher *)> on_finished;
};

namespace {

const gint64 kMaxIngestQueue = 16 << 20;  // bytes waiting in an ingest appsrc
const char kPublisherKey[] = "fmp4ws-publisher";  // an HTTP publisher's SoupServerMessage data

// Ingest streaming thread: a fragment or init segment from fmp4initcache, to the viewers.
// Every publisher starts with its init segment (a HEADER buffer): websocketsink takes the same
// bytes after fragments as a new stream (a new generation: viewers get the init again and wait
// for a keyframe, the GOP cache restarts), so a publisher that comes back, or a relay that
// reconnects, never continues the previous one's GOP.
GstFlowReturn
on_new_sample (GstAppSink *sink, gpointer user_data)
{
  GstSample *sample = gst_app_sink_pull_sample (sink);
  if (!sample)
    return GST_FLOW_EOS;
  Publisher *p = static_cast<Publisher *> (user_data);
  p->stream->push (sample);
  GstBuffer *buf = gst_sample_get_buffer (sample);
  if (buf && !GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_HEADER))
    p->samples.fetch_add (1);
  gst_sample_unref (sample);
  return GST_FLOW_OK;  // viewers never stop an ingest
}

// fmp4initcache's clock thread: its "no fragment after the init segment" diagnostic (an
// out-of-band `fmp4ws-diagnostic` event) goes on to the stream's viewer pipeline, whose
// websocketsink shows it to viewers and in /status (appsrc pushes OOB events at once).
GstPadProbeReturn
forward_diagnostic (GstPad *, GstPadProbeInfo *info, gpointer user_data)
{
  GstEvent *ev = GST_PAD_PROBE_INFO_EVENT (info);
  if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_DOWNSTREAM_OOB &&
      gst_event_has_name (ev, "fmp4ws-diagnostic"))
    gst_element_send_event (static_cast<Stream *> (user_data)->in, gst_event_ref (ev));
  return GST_PAD_PROBE_OK;
}

// Frees an ended publisher; then its stream goes if it never got an init segment.
gboolean
finish_publisher (gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  Stream *s = p->stream;
  StreamRegistry *streams = p->streams;
  if (p->timer)
    g_source_remove (p->timer);
  if (p->bus_watch)
    g_source_remove (p->bus_watch);
  gst_element_set_state (p->pipeline, GST_STATE_NULL);
  gst_object_unref (p->src);
  gst_object_unref (p->pipeline);
  g_clear_object (&p->conn);
  if (p->msg) {
    g_signal_handlers_disconnect_by_data (p->msg, p);
    g_object_set_data (G_OBJECT (p->msg), kPublisherKey, nullptr);
    g_object_unref (p->msg);
  }
  g_clear_object (&p->relay_in);  // a pending read holds its own reference
  if (p->on_finished)
    p->on_finished (p);
  if (p->pending_io) {
    // A relay's cancelled operation has not called back yet: its callback frees the rest.
    p->finish_deferred = true;
  } else {
    g_clear_object (&p->cancel);
    g_clear_object (&p->relay_msg);
    delete p;
  }
  streams->remove_if_unused (s);
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
    GSocket *sock = fmp4ws::server::MessageSocket (p->msg);
    if (sock && !g_socket_is_closed (sock))
      g_socket_shutdown (sock, TRUE, TRUE, nullptr);
  }
  if (p->stream->publisher == p)
    p->stream->publisher = nullptr;
  // Tear down outside the callback that got us here.
  g_idle_add (finish_publisher, p);
}

gboolean
on_ingest_bus (GstBus *, GstMessage *m, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_EOS && p->draining) {
    end_publisher (p, p->drain_reason);
    return G_SOURCE_CONTINUE;
  }
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

// Every second: --publisher-timeout without data ends the publisher. Not a relay whose origin
// answered: an origin without a publisher at the moment is silent and its connection must
// stay (a new connection would replay its cached init and GOP to the edge's viewers as a new
// stream); TCP keepalive watches that connection instead (relay_keepalive).
gboolean
on_publisher_timer (gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  const int timeout = p->opt->publisher_timeout;
  if (p->draining && !p->ended &&
      g_get_monotonic_time () - p->drain_start_us > gint64 (std::max (1, timeout)) * G_USEC_PER_SEC) {
    p->timer = 0;
    end_publisher (p, p->drain_reason + " (its ingest pipeline did not finish within " +
                          std::to_string (std::max (1, timeout)) + " s)");
    return G_SOURCE_REMOVE;
  }
  const int idle = p->opt->relay_idle_timeout;
  if (p->relay_answered && !p->draining && !p->ended && idle > 0 &&
      g_get_monotonic_time () - p->last_data_us > gint64 (idle) * G_USEC_PER_SEC) {
    p->timer = 0;
    end_publisher (p, "relay: no data from the origin for " + std::to_string (idle) +
                          " s (--relay-idle-timeout)");
    return G_SOURCE_REMOVE;
  }
  if (p->relay_answered || p->draining)
    return G_SOURCE_CONTINUE;
  if (!p->ended && g_get_monotonic_time () - p->last_data_us > gint64 (timeout) * G_USEC_PER_SEC) {
    p->timer = 0;
    end_publisher (p, "stalled: no data for " + std::to_string (timeout) + " s");
    return G_SOURCE_REMOVE;
  }
  return G_SOURCE_CONTINUE;
}

// A new publisher of `s`, its ingest pipeline playing; it becomes the stream's publisher.
Publisher *
start_publisher (StreamRegistry &streams, const Options &opt, Stream *s, const std::string &peer)
{
  Publisher *p = new Publisher ();
  p->streams = &streams;
  p->opt = &opt;
  p->stream = s;
  p->peer = peer;
  p->last_data_us = g_get_monotonic_time ();
  gchar *desc = g_strdup_printf ("appsrc name=src format=bytes max-bytes=%" G_GINT64_FORMAT
                                 " ! fmp4initcache max-box-size=%" G_GINT64_FORMAT
                                 " ! appsink name=out sync=false",
                                 kMaxIngestQueue, gint64 (opt.max_box_size));
  p->pipeline = gst_parse_launch (desc, nullptr);
  g_free (desc);
  p->src = gst_bin_get_by_name (GST_BIN (p->pipeline), "src");
  GstElement *out = gst_bin_get_by_name (GST_BIN (p->pipeline), "out");
  GstAppSinkCallbacks cb = {};
  cb.new_sample = on_new_sample;
  gst_app_sink_set_callbacks (GST_APP_SINK (out), &cb, p, nullptr);
  GstPad *out_pad = gst_element_get_static_pad (out, "sink");
  gst_pad_add_probe (out_pad, GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM, forward_diagnostic, s, nullptr);
  gst_object_unref (out_pad);
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
  if (p->ended || p->draining)
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

// The remote ended its bytes (EOF): what the ingest pipeline holds (whole fragments in
// appsrc's queue and fmp4initcache) still goes to the viewers, then the publisher ends with
// `reason` (bounded by --publisher-timeout). Idempotent.
void
drain_publisher (Publisher *p, const std::string &reason)
{
  if (p->ended || p->draining)
    return;
  p->draining = true;
  p->drain_start_us = g_get_monotonic_time ();
  p->drain_reason = reason;
  if (gst_app_src_end_of_stream (GST_APP_SRC (p->src)) != GST_FLOW_OK)
    end_publisher (p, reason);
}

/* TCP ingest ------------------------------------------------------------------------------ */

// A finished g_input_stream_read_bytes_async of publisher `p`'s input (TCP or a relay's
// response body): its bytes into the pipeline. `alive` false: the publisher was torn down
// meanwhile (the read was cancelled), the result is dropped. A read error ends the publisher
// (`error_prefix` + the error), the end of the input drains it (`end_reason`). True when the
// caller should read on.
bool
take_read (Publisher *p, GObject *source, GAsyncResult *res, bool alive, const char *error_prefix,
           const char *end_reason)
{
  GError *err = nullptr;
  GBytes *bytes = g_input_stream_read_bytes_finish (G_INPUT_STREAM (source), res, &err);
  if (!alive) {
    g_clear_error (&err);
    if (bytes)
      g_bytes_unref (bytes);
    return false;
  }
  if (!bytes) {
    end_publisher (p, std::string (error_prefix) + err->message);
    g_error_free (err);
    return false;
  }
  if (g_bytes_get_size (bytes) == 0) {
    g_bytes_unref (bytes);
    drain_publisher (p, end_reason);
    return false;
  }
  bool ok = feed_publisher (p, bytes);
  g_bytes_unref (bytes);
  return ok;
}

void
on_tcp_read (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  if (take_read (p, source, res, !p->ended, "read error: ", "publisher disconnected"))
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

/* HTTP ingest ----------------------------------------------------------------------------- */

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

// The whole request body was read: a finished HTTP publisher. Answering here keeps the
// stream's own handler (viewers only) from running.
void
on_request_read (SoupServer *, SoupServerMessage *msg, gpointer)
{
  Publisher *p = static_cast<Publisher *> (g_object_get_data (G_OBJECT (msg), kPublisherKey));
  if (!p)
    return;
  bool failed = p->ended;  // already ended by an ingest error
  end_publisher (p, "publisher finished", false);
  if (failed) {
    fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
    soup_server_message_set_status (msg, SOUP_STATUS_UNPROCESSABLE_ENTITY, nullptr);
    return;
  }
  fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
  soup_server_message_set_status (msg, SOUP_STATUS_OK, nullptr);
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "ok\n", 3);
}


/* Relay: an HTTP pull from an origin (--relay) ---------------------------------------------- */

}  // namespace

// One relay: the stream it fills, its origins' schedule, the libsoup session that pulls, the
// publisher of the current attempt (null between attempts) and the retry timer. Main thread.
struct Relay
{
  StreamRegistry *streams = nullptr;
  const Options *opt = nullptr;
  Stream *stream = nullptr;
  RelaySchedule schedule;
  SoupSession *session = nullptr;  // owned
  Publisher *current = nullptr;
  guint retry = 0;                 // the timer of the next attempt, 0: none
  bool stopped = false;
  Relay (std::vector<std::string> urls, double min_s, double max_s)
      : schedule (std::move (urls), min_s, max_s)
  {
  }
};

namespace {

void relay_connect (Relay *r);

gboolean
on_relay_retry (gpointer user_data)
{
  Relay *r = static_cast<Relay *> (user_data);
  r->retry = 0;
  relay_connect (r);
  return G_SOURCE_REMOVE;
}

// The current attempt's publisher was torn down: the next attempt, on the schedule.
void
relay_finished (Relay *r, Publisher *p)
{
  if (r->current == p)
    r->current = nullptr;
  if (r->stopped)
    return;
  const bool delivered = p->samples.load () > 0;  // fragments came through
  if (!delivered && p->relay_answered)
    log_msg ("stream %s: relay: no fragment came through (is the URL a live fMP4 stream, "
             "e.g. /stream.mp4?)", stream_label (r->stream));
  const double wait_s = r->schedule.ended (delivered);
  log_msg ("stream %s: relay: next attempt in %.1f s: %s", stream_label (r->stream), wait_s,
           redact_token (r->schedule.url ()).c_str ());
  r->retry = g_timeout_add (guint (wait_s * 1000), on_relay_retry, r);
}

// An async callback of publisher `p` is back: false (and maybe the teardown) if it ended.
bool
relay_io_back (Publisher *p)
{
  p->pending_io--;
  if (!p->ended)
    return true;
  if (p->pending_io == 0 && p->finish_deferred) {  // torn down already: free what is left
    g_clear_object (&p->cancel);
    g_clear_object (&p->relay_msg);
    delete p;
  }
  return false;
}

void
on_relay_read (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  const bool alive = relay_io_back (p);  // always: it counts the callback
  if (take_read (p, source, res, alive, "relay: read error: ",
                 "relay: the origin ended its response")) {
    p->pending_io++;
    g_input_stream_read_bytes_async (p->relay_in, 65536, G_PRIORITY_DEFAULT, p->cancel,
                                     on_relay_read, p);
  }
}

void
on_relay_sent (GObject *source, GAsyncResult *res, gpointer user_data)
{
  Publisher *p = static_cast<Publisher *> (user_data);
  GError *err = nullptr;
  GInputStream *in = soup_session_send_finish (SOUP_SESSION (source), res, &err);
  if (!relay_io_back (p)) {
    g_clear_error (&err);
    g_clear_object (&in);
    return;
  }
  if (!in) {
    end_publisher (p, std::string ("relay: cannot reach the origin: ") + err->message +
                          p->relay_tls_errors);
    g_error_free (err);
    return;
  }
  const guint status = soup_message_get_status (p->relay_msg);
  if (status != SOUP_STATUS_OK) {
    const char *phrase = soup_message_get_reason_phrase (p->relay_msg);
    g_object_unref (in);
    end_publisher (p, "relay: the origin answered " + std::to_string (status) + " " +
                          (phrase ? phrase : "") +
                          (status == SOUP_STATUS_FORBIDDEN ? " (is ?token= valid for this path?)"
                                                           : ""));
    return;
  }
  // A page, not a stream (a login page, a proxy's or CDN's error page answered 200): said
  // so, instead of its bytes failing as an fMP4 stream. Any other type is tried (origins
  // other than fmp4ws-server may say application/octet-stream or nothing).
  const char *type = soup_message_headers_get_content_type (
      soup_message_get_response_headers (p->relay_msg), nullptr);
  if (type && (g_str_has_prefix (type, "text/") || strstr (type, "html") || strstr (type, "json"))) {
    g_object_unref (in);
    end_publisher (p, std::string ("relay: the origin answered 200 with Content-Type ") + type +
                          ", not an fMP4 stream (video/mp4): a login or error page?");
    return;
  }
  p->relay_in = in;
  p->relay_answered = true;
  p->last_data_us = g_get_monotonic_time ();
  p->pending_io++;
  g_input_stream_read_bytes_async (in, 65536, G_PRIORITY_DEFAULT, p->cancel, on_relay_read, p);
}

// A relay's new TCP connection to its origin: keepalive probes after --publisher-timeout of
// silence, 3 of them 1 s apart, so an origin host that is gone (no FIN/RST: a crash, a cut
// network) ends the connection although an origin without a publisher sends nothing.
void
relay_keepalive (SoupMessage *, GSocketClientEvent event, GIOStream *connection, gpointer user_data)
{
  if (event != G_SOCKET_CLIENT_CONNECTED || !G_IS_SOCKET_CONNECTION (connection))
    return;
  const Publisher *p = static_cast<const Publisher *> (user_data);
  GSocket *sock = g_socket_connection_get_socket (G_SOCKET_CONNECTION (connection));
  g_socket_set_keepalive (sock, TRUE);
  g_socket_set_option (sock, IPPROTO_TCP, TCP_KEEPIDLE, std::max (1, p->opt->publisher_timeout), nullptr);
  g_socket_set_option (sock, IPPROTO_TCP, TCP_KEEPINTVL, 1, nullptr);
  g_socket_set_option (sock, IPPROTO_TCP, TCP_KEEPCNT, 3, nullptr);
}

// An https origin's certificate that GIO's TLS database refused: why, for the log line of the
// failed attempt (libsoup only says "Unacceptable TLS certificate"). Still refused.
gboolean
relay_tls_refused (SoupMessage *, GTlsCertificate *, GTlsCertificateFlags errors, gpointer user_data)
{
  static const std::pair<GTlsCertificateFlags, const char *> kWhy[] = {
      {G_TLS_CERTIFICATE_UNKNOWN_CA, "not signed by a known certificate authority"},
      {G_TLS_CERTIFICATE_BAD_IDENTITY, "not for this host name"},
      {G_TLS_CERTIFICATE_NOT_ACTIVATED, "not valid yet"},
      {G_TLS_CERTIFICATE_EXPIRED, "expired"},
      {G_TLS_CERTIFICATE_REVOKED, "revoked"},
      {G_TLS_CERTIFICATE_INSECURE, "insecure algorithm"},
      {G_TLS_CERTIFICATE_GENERIC_ERROR, "unknown error"},
  };
  std::string why;
  for (const auto &w : kWhy)
    if (errors & w.first)
      why += std::string (why.empty () ? "" : ", ") + w.second;
  static_cast<Publisher *> (user_data)->relay_tls_errors = " (the certificate: " + why + ")";
  return FALSE;
}

// An attempt: GET the schedule's URL, its body into a new publisher of the relay's stream.
void
relay_connect (Relay *r)
{
  const std::string &url = r->schedule.url ();
  Publisher *p = start_publisher (*r->streams, *r->opt, r->stream, "relay " + redact_token (url));
  p->on_finished = [r] (Publisher *done) { relay_finished (r, done); };
  r->current = p;
  p->relay_msg = soup_message_new ("GET", url.c_str ());
  if (!p->relay_msg) {
    end_publisher (p, "relay: not a valid URL");
    return;
  }
  // A connection of its own each time (never one kept alive after an error answer): the
  // keepalive is set on it, and a restarted origin is reached afresh.
  soup_message_add_flags (p->relay_msg, SOUP_MESSAGE_NEW_CONNECTION);
  g_signal_connect (p->relay_msg, "network-event", G_CALLBACK (relay_keepalive), p);
  g_signal_connect (p->relay_msg, "accept-certificate", G_CALLBACK (relay_tls_refused), p);
  p->cancel = g_cancellable_new ();
  p->pending_io++;
  soup_session_send_async (r->session, p->relay_msg, G_PRIORITY_DEFAULT, p->cancel,
                           on_relay_sent, p);
}

}  // namespace

/* Publishers ------------------------------------------------------------------------------ */

Publishers::Publishers (StreamRegistry &streams, const Options &opt)
    : streams_ (streams), opt_ (opt)
{
}

Publishers::~Publishers ()
{
  for (Relay *r : relays_) {
    if (r->retry)
      g_source_remove (r->retry);
    soup_session_abort (r->session);
    g_object_unref (r->session);
    delete r;
  }
  if (tcp_) {
    g_socket_service_stop (tcp_);
    g_socket_listener_close (G_SOCKET_LISTENER (tcp_));
    g_object_unref (tcp_);
  }
}

bool
Publishers::listen_tcp (GError **error)
{
  tcp_ = g_socket_service_new ();
  bool ok;
  if (opt_.address) {
    GInetAddress *ia = g_inet_address_new_from_string (opt_.address->c_str ());
    GSocketAddress *sa = g_inet_socket_address_new (ia, opt_.ingest_port);
    ok = g_socket_listener_add_address (G_SOCKET_LISTENER (tcp_), sa, G_SOCKET_TYPE_STREAM,
                                        G_SOCKET_PROTOCOL_TCP, nullptr, nullptr, error);
    g_object_unref (sa);
    g_object_unref (ia);
  } else {
    ok = g_socket_listener_add_inet_port (G_SOCKET_LISTENER (tcp_), opt_.ingest_port, nullptr,
                                          error);
  }
  if (!ok)
    return false;
  g_signal_connect (tcp_, "incoming", G_CALLBACK (on_tcp_incoming), this);
  g_socket_service_start (tcp_);
  return true;
}

void
Publishers::add_http_routes (SoupServer *server)
{
  g_signal_connect (server, "request-read", G_CALLBACK (on_request_read), nullptr);
}

void
Publishers::stop ()
{
  for (Relay *r : relays_) {
    r->stopped = true;
    if (r->retry)
      g_source_remove (r->retry);
    r->retry = 0;
  }
  if (tcp_) {
    g_socket_service_stop (tcp_);
    g_socket_listener_close (G_SOCKET_LISTENER (tcp_));
    g_clear_object (&tcp_);
  }
  for (Stream *s : streams_.all ())
    if (s->publisher)
      end_publisher (s->publisher, "server shutting down");
}

gboolean
Publishers::on_tcp_incoming (GSocketService *, GSocketConnection *conn, GObject *, gpointer self)
{
  Publishers *pubs = static_cast<Publishers *> (self);
  Stream *s = pubs->streams_.find ("");
  std::string peer = peer_of (conn);
  if (s->publisher) {
    log_msg ("stream %s: refused a second publisher from %s (%s is publishing)",
             stream_label (s), peer.c_str (), s->publisher->peer.c_str ());
    g_io_stream_close (G_IO_STREAM (conn), nullptr, nullptr);
    return TRUE;
  }
  Publisher *p = start_publisher (pubs->streams_, pubs->opt_, s, peer);
  p->conn = G_SOCKET_CONNECTION (g_object_ref (conn));
  p->cancel = g_cancellable_new ();
  g_input_stream_read_bytes_async (g_io_stream_get_input_stream (G_IO_STREAM (conn)), 65536,
                                   G_PRIORITY_DEFAULT, p->cancel, on_tcp_read, p);
  return TRUE;
}

void
Publishers::on_request_headers (SoupServerMessage *msg)
{
  Publishers *pubs = this;
  if (opt_.no_http_ingest)
    return;
  const char *method = soup_server_message_get_method (msg);
  if (strcmp (method, "PUT") != 0 && strcmp (method, "POST") != 0)
    return;
  GUri *uri = soup_server_message_get_uri (msg);
  std::optional<std::string> name = ingest_stream_name (g_uri_get_path (uri));
  if (!name) {
    if (strncmp (g_uri_get_path (uri), "/live/", 6) != 0)
      return;  // not ingest: the body check answers it
    fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
    soup_server_message_set_status (msg, SOUP_STATUS_BAD_REQUEST, nullptr);
    return;
  }
  if (opt_.token_secret) {
    std::string token;
    if (const char *q = g_uri_get_query (uri)) {
      GHashTable *form = soup_form_decode (q);
      if (const char *t = (const char *) g_hash_table_lookup (form, "token"))
        token = t;
      g_hash_table_unref (form);
    }
    if (fmp4ws::server::VerifyToken (*opt_.token_secret, publish_token_path (*name),
                                     token.c_str (), g_get_real_time () / G_USEC_PER_SEC) !=
        fmp4ws::server::TokenCheck::kValid) {
      log_msg ("stream %s: refused a publisher from %s (no valid publish token)", name->c_str (),
               soup_server_message_get_remote_host (msg));
      soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection",
                                    "close");
      soup_server_message_set_status (msg, SOUP_STATUS_FORBIDDEN, nullptr);
      soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, "forbidden\n",
                                        10);
      return;
    }
  }
  Stream *s = pubs->streams_.find (*name);
  if (s && (s->publisher || s->relayed)) {
    log_msg ("stream %s: refused a second publisher from %s", name->c_str (),
             soup_server_message_get_remote_host (msg));
    fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
    soup_server_message_set_status (msg, SOUP_STATUS_CONFLICT, nullptr);
    return;
  }
  if (!s) {
    if (pubs->streams_.full ()) {
      fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
      soup_server_message_set_status (msg, SOUP_STATUS_SERVICE_UNAVAILABLE, nullptr);
      return;
    }
    s = pubs->streams_.create (*name);
    if (!s) {
      fmp4ws::server::EndConnectionAfterResponse (msg);  // libsoup < 3.4: see http_server.h
      soup_server_message_set_status (msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, nullptr);
      return;
    }
  }
  Publisher *p = start_publisher (pubs->streams_, pubs->opt_, s,
                                  soup_server_message_get_remote_host (msg));
  p->msg = SOUP_SERVER_MESSAGE (g_object_ref (msg));
  g_object_set_data (G_OBJECT (msg), kPublisherKey, p);
  soup_message_body_set_accumulate (soup_server_message_get_request_body (msg), FALSE);
  g_signal_connect (msg, "got-chunk", G_CALLBACK (on_http_chunk), p);
  g_signal_connect (msg, "finished", G_CALLBACK (on_http_finished), p);
}

}  // namespace fmp4ws::tools

namespace fmp4ws::tools {

bool
Publishers::start_relay (std::string *error)
{
  if (opt_.relay_urls.empty ())
    return true;
  Stream *s = streams_.find (opt_.relay_name);
  if (!s)
    s = streams_.create (opt_.relay_name);
  if (!s) {
    *error = "cannot create stream " + opt_.relay_name;
    return false;
  }
  s->relayed = true;
  Relay *r = new Relay (opt_.relay_urls, opt_.relay_retry_min, opt_.relay_retry_max);
  r->streams = &streams_;
  r->opt = &opt_;
  r->stream = s;
  // libsoup's session: HTTP/1.1 (and https through glib-networking), redirects, the proxy
  // of the environment. No I/O timeout here: --publisher-timeout ends a silent origin.
  r->session = soup_session_new_with_options ("user-agent", "fmp4ws-server-relay ", NULL);
  relays_.push_back (r);
  std::string urls;
  for (const std::string &u : opt_.relay_urls)
    urls += (urls.empty () ? "" : ", ") + redact_token (u);
  log_msg ("stream %s: relayed from %s", stream_label (s), urls.c_str ());
  relay_connect (r);
  return true;
}

}  // namespace fmp4ws::tools
