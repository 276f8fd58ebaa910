// The HTTP side of websocketsink on a libsoup 3 server: the routes (WebSocket upgrade on
// `path` or "/", GET /stream.mp4, GET /status, the player's files from a GResource or a
// document root), GET /metrics (Prometheus), Origin and max-clients checks, and the hand-off of a viewer's connection
// (stolen from libsoup once its response head is written) to the I/O threads.
//
// Runs on the thread that owns the server's GMainContext. The header has no GLib/libsoup
// types: the server, context and resource are opaque pointers (libsoup is in the .cpp).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
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
  // Signed links (token.h): non-empty, every request under the prefix needs a valid
  // ?token=EXPIRY.SIG for TokenPath (prefix), but the player's scripts and style sheets
  // (.js, .mjs, .css: ES module imports cannot carry the page's query).
  std::string token_secret;
};

// A request as the access check (websocketsink's `authorize` signal) sees it.
struct AuthorizeRequest
{
  std::string route;    // "page" (/ or /index.html), "websocket", "stream" (/stream.mp4),
                        // "status", "metrics", "file" (any other file of the page)
  std::string address;  // the client's IP address
  std::string method;   // GET, HEAD, ...
  std::string path;     // the full path, prefix included (e.g. /live/cam1/ws)
  std::string query;    // the raw query string without '?', "" if none
  std::string origin;   // the Origin header, "" if none
  std::vector<std::pair<std::string, std::string>> headers;  // request headers in order
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
    // The GET /metrics body (metrics.h PrometheusText); unset: /metrics is not served (404).
    std::function<std::string ()> metrics_text;
    std::function<void (const char *why)> reject;  // a refused request, counted by reason
    // Access check after the token's (may be empty): 0 allows, else the HTTP status to deny
    // with. Called on the server's thread for every request under the prefix, when
    // authorize_wanted () says someone listens.
    std::function<bool ()> authorize_wanted;
    std::function<unsigned (const AuthorizeRequest &)> authorize;
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
  // The access checks of a request under the prefix (token-secret, then authorize); false:
  // refused, answered and counted.
  bool Allowed (const RouteSettings &s, void *msg, bool is_ws, const char *method,
                const char *path, const char *full_path, void *query, const std::string &address);

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
