// The HTTP side of websocketsink on a libsoup 3 server: the routes (WebSocket upgrade on
// `path` or "/", GET /stream.mp4, GET /status, the player's files from a GResource or a
// document root), Origin and max-clients checks, and the hand-off of a viewer's connection
// (stolen from libsoup once its response head is written) to the I/O threads.
//
// Runs on the thread that owns the server's GMainContext. The header has no GLib/libsoup
// types: the server, context and resource are opaque pointers (libsoup is in the .cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broadcaster.h"
#include "io_thread.h"

struct _SoupServer;
struct _GMainContext;
struct _GResource;

namespace fmp4ws::server {

// The settings a request is served with (a snapshot, taken per request).
struct RouteSettings
{
  std::string path = "/ws";                  // the WebSocket endpoint ("/" works too)
  unsigned max_clients = 1000;               // 0: no limit
  std::vector<std::string> allowed_origins;  // empty: any
  bool serve_player = true;
  std::string document_root;                 // empty: the built-in player
  unsigned send_buffer_size = 256 * 1024;    // SO_SNDBUF of viewer sockets (0: kernel's)
};

// A viewer whose handshake (or /stream.mp4 response head) is written.
struct HandOff
{
  int fd = -1;
  std::unique_ptr<Transport> transport;  // owns the connection
  std::string address;
  core::Broadcaster::ViewerOptions options;
};

class HttpRoutes
{
public:
  struct Hooks
  {
    std::function<RouteSettings ()> settings;
    std::function<unsigned ()> open_viewers;  // for max-clients
    std::function<std::string ()> status_json;
    std::function<void (const char *why)> reject;  // a refused request, counted by reason
    // Give the viewer to an I/O thread (taking h.transport); false: stopping, not taken.
    std::function<bool (HandOff &h)> hand_off;
    std::function<void (const std::string &)> debug, warning;
  };

  HttpRoutes (Hooks hooks, _GResource *player) : hooks_ (std::move (hooks)), player_ (player) {}

  // Serves under `prefix` ("" or "/live/NAME") on `server`, whose sources run in `ctx` (TLS
  // connections close asynchronously there). Call where `ctx` is owned.
  void Attach (_SoupServer *server, _GMainContext *ctx, const std::string &prefix);
  void Detach (_SoupServer *server);

  // Internal: libsoup's callbacks.
  struct Upgrade;
  void Handle (void *msg, const char *full_path, void *query);
  void TakeConnection (Upgrade *u, void *msg);

private:
  Hooks hooks_;
  _GResource *player_;
  _GMainContext *ctx_ = nullptr;
  std::string prefix_;
};

// Connections and requests refused before they became viewers, by reason: the `X` of the
// "rejected: X" counted in Totals::disconnects. Every reason known here is present (0 if none):
// budget (max-connections), http-connections (max-http-connections), per-address
// (max-connections-per-address), timeout (request-timeout), origin (allowed-origins),
// max-clients, token and authorize (access control); then any other one counted.
std::vector<std::pair<std::string, uint64_t>> Refusals (const Totals &t);

// The GET /status document: {"viewers", "stream", "bytes_sent", "fragments_sent",
// "fragments_dropped", "refused": {reason: count, ...} (Refusals), "clients": [...]}.
std::string StatusJson (const Snapshot &snap, const std::string &stream_json);

}  // namespace fmp4ws::server
