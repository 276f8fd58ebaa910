// The publishers: ffmpeg (or anything) sending fragmented MP4, over TCP (--ingest-port, the
// default stream, one publisher at a time) or HTTP (PUT/POST /live/NAME, chunked; one publisher
// per stream, a second one gets 409). Each publisher has its own `appsrc ! fmp4initcache !
// appsink` pipeline feeding its stream's viewers; an ingest error (garbage, a box over
// --max-box-size, --publisher-timeout without data, a disconnect mid-box) ends that publisher
// only, and its stream's viewers stay.
#pragma once

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "options.h"
#include "stream_registry.h"

namespace fmp4ws::tools {

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
  // PUT/POST /live/NAME on `server`: an early handler (after the headers) starts the publisher.
  void add_http_routes (SoupServer *server);
  // Closes the TCP listener and ends every publisher; they are freed from idle callbacks, run
  // them (iterate the main context) before clearing the streams.
  void stop ();

private:
  static gboolean on_tcp_incoming (GSocketService *, GSocketConnection *conn, GObject *,
                                   gpointer self);
  static void on_ingest_headers (SoupServer *, SoupServerMessage *msg, const char *path,
                                 GHashTable *, gpointer self);

  StreamRegistry &streams_;
  const Options &opt_;
  GSocketService *tcp_ = nullptr;  // owned
};

}  // namespace fmp4ws::tools
