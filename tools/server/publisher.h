// The publishers: ffmpeg (or anything) sending fragmented MP4, over TCP (--ingest-port, the
// default stream, one publisher at a time) or HTTP (PUT/POST /live/NAME, chunked; one publisher
// per stream, a second one gets 409). Each publisher has its own `appsrc ! fmp4initcache !
// appsink` pipeline feeding its stream's viewers; an ingest error (garbage, a box over
// --max-box-size, --publisher-timeout without data, a disconnect mid-box) ends that publisher
// only, and its stream's viewers stay.
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include <vector>

#include "options.h"
#include "stream_registry.h"

namespace fmp4ws::tools {

struct Relay;  // publisher.cpp

// Starts and ends publishers. Main thread only (GLib default main context). Each Publisher is
// created here when a publisher connects, set as its Stream's `publisher`, and freed from an idle
// callback once it ended.
class Publishers
{
public:
  // `streams` and `opt` are borrowed and must outlive this.
  Publishers (StreamRegistry &streams, const Options &opt);
  ~Publishers ();  // closes the TCP listener; stop () and a main context iteration first
  Publishers (const Publishers &) = delete;
  Publishers &operator= (const Publishers &) = delete;

  // Listens on --ingest-port (on --address if set) for the default stream's publishers.
  bool listen_tcp (GError **error);
  // HTTP ingest on `server`: answers a publisher's request once its body is read.
  void add_http_routes (SoupServer *server);
  // HttpServer::Hooks::got_headers: PUT/POST /live/NAME (after the headers, before any of
  // the body) starts a publisher that streams the body. Answered at once instead: 403 with
  // --token-secret unless `?token=` is signed for PATH "/live/NAME/publish"
  // (publish_token_path); 400 a bad NAME; 409 NAME is publishing; 503 --max-streams
  // reached. With --no-http-ingest nothing is taken (the body check refuses it: 405).
  void on_request_headers (SoupServerMessage *msg);
  // --relay: stream --relay-name (created if needed, marked `relayed`) is pulled from the
  // origins over HTTP with libsoup (GET URL, the response body streamed into a publisher's
  // `appsrc ! fmp4initcache ! appsink`, as for TCP/HTTP ingest), one connection at a time.
  // Each attempt that ends (the origin closes, an HTTP status other than 200, garbage, no
  // answer within --publisher-timeout; once answered, TCP keepalive instead: a silent origin
  // has no publisher now, its connection stays) is logged and the next follows RelaySchedule
  // (relay_schedule.h: --relay-retry-min/--relay-retry-max); viewers stay connected and get
  // a new init segment when its caps change. Nothing to do without --relay. False (with
  // `error`) if the stream cannot be created.
  bool start_relay (std::string *error);
  // Closes the TCP listener and ends every publisher; they are freed from idle callbacks, run
  // them (iterate the main context) before clearing the streams.
  void stop ();

private:
  static gboolean on_tcp_incoming (GSocketService *, GSocketConnection *conn, GObject *,
                                   gpointer self);

  StreamRegistry &streams_;
  const Options &opt_;
  GSocketService *tcp_ = nullptr;  // owned
  std::vector<Relay *> relays_;  // owned (publisher.cpp)
};

}  // namespace fmp4ws::tools
