// The HTTP/WebSocket server websocketsink serves on: its own libsoup 3 server listening on
// an address and port (plain or TLS), run by its own thread ("websocketsink") and
// GMainContext; or an application's server, joined in that server's context. HttpRoutes do
// the serving; this owns the server's life: listen, run, run a function where libsoup may
// be touched, stop.
//
// No GLib/libsoup types in this header: opaque pointers only (the .cpp uses them).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

struct _SoupServer;
struct _SoupServerMessage;
struct _GMainContext;
struct _GMainLoop;
struct _GThread;
struct _GTlsCertificate;
struct _GSocket;

namespace fmp4ws::server {

class HttpRoutes;

// libsoup before 3.4 (Debian 12 has 3.2.3) leaks what every connection it accepts is made
// of (issue #16): its listener keeps the reference g_socket_accept() gave it, so no accepted
// GSocket is ever finalized (fixed upstream by libsoup b545d5f0, 3.4.0); and a keep-alive
// connection that the client closes while idle is never disconnected, so its
// SoupServerConnection, GSocketConnection and stream stay (fixed by d20c6601, 3.4.0).
// Whether the running libsoup has these bugs.
bool LibsoupLeaksConnections ();
// Gives back the accepted socket's reference libsoup keeps, on a server that listens with
// libsoup's listeners (call before listening; a no-op on a fixed libsoup). The idle
// keep-alive leak is avoided by the routes (HttpRoutes: "Connection: close").
void FixLibsoupAcceptLeak (_SoupServer *server);
// On a libsoup that leaks idle keep-alive connections, asks for the connection to be closed
// after this response (`Connection: close`); a no-op on a fixed libsoup. For every response
// of a server that is not a WebSocket upgrade (whose connection is taken over).
void EndConnectionAfterResponse (_SoupServerMessage *msg);
// The socket of a message's connection: libsoup's (soup_server_message_get_socket), or, on
// a connection HttpServer accepted itself (soup_server_accept_iostream, where libsoup has
// none), the one it attached to the remote address. NULL if neither.
_GSocket *MessageSocket (_SoupServerMessage *msg);

// Tells the accept loop that a connection it accepted (found by MessageSocket) is taken from
// libsoup as a viewer: its request-timeout no longer applies, even between requests. A no-op
// on a connection HttpServer did not accept (an application's server).
void ConnectionTaken (_GSocket *sock);

// Raises the soft RLIMIT_NOFILE to the hard limit, once per process; returns the soft limit
// then (0: unknown), and says what it did in *log (once) and *warning (a low hard limit).
unsigned RaiseFileLimit (std::string *log, std::string *warning);

class HttpServer
{
public:
  struct Options
  {
    std::string address;                       // empty: all interfaces (IPv4 and IPv6)
    unsigned port = 8080;                      // 0: a free one (see port())
    std::string tls_cert_file, tls_key_file;   // PEM files (key: in the cert file if empty)
    _GTlsCertificate *tls_certificate = nullptr;  // or this one (borrowed)
    // Most connections open at once (HTTP and viewers, until their socket is gone); past
    // it a new one gets a 503 and is closed. 0: the file-descriptor limit less kFdReserve.
    unsigned max_connections = 0;
    // Seconds a connection may take to send its request line and headers: from accept (a TLS
    // handshake included) and, on a keep-alive connection, from the end of one response to
    // the next request's headers. Then it is closed ("rejected: timeout"). 0: no limit.
    unsigned request_timeout = 10;
    // Most connections waiting for their request headers at once (the ones request_timeout
    // bounds); when full, a new connection closes the oldest of them if that one has waited
    // request_timeout / 10, else it gets a 503 at accept (both "rejected:
    // http-connections"). 0: half the connection budget.
    unsigned max_http_connections = 0;
    // The same per client address, but past it the new connection gets a 503 at accept and
    // is closed ("rejected: per-address"). 0: no limit (clients behind one NAT share an
    // address).
    unsigned max_connections_per_address = 0;
  };
  static constexpr unsigned kFdReserve = 64;  // descriptors left to the rest of the process
  enum class Error { kNone, kTlsCertificate, kListen };
  struct Hooks
  {
    std::function<void (const std::string &)> error;  // e.g. a context that never answers
    std::function<void (const std::string &)> warning;  // e.g. out of file descriptors (rate-limited)
    std::function<void (const std::string &)> info;
    // A connection refused or closed before its request was in, by reason: "rejected: budget"
    // (max_connections), "rejected: http-connections", "rejected: per-address",
    // "rejected: timeout", "rejected: body" (see got_headers). Called on the server's thread.
    std::function<void (const char *why)> refused;
    // Own-accepted connections only (Listen, ListenFor): a request's headers are in, before
    // anything of its body is read. The application may answer it (set a status) or take its
    // body as a stream (turn the request body's accumulation off, bounding it itself); a
    // request with a body (Content-Length > 0 or Transfer-Encoding) it does neither with is
    // then refused: 413 for GET/HEAD, else 405, the connection closed ("rejected: body").
    // Called on the server's thread.
    std::function<void (_SoupServerMessage *msg)> got_headers;
  };

  explicit HttpServer (Hooks hooks) : hooks_ (std::move (hooks)) {}
  ~HttpServer () { Stop (); }

  // Listens (a host name is resolved once, here) and starts the server thread; on failure
  // nothing is left running and *detail says why.
  Error Listen (const Options &o, HttpRoutes *routes, const std::string &prefix,
                std::string *detail);
  // Serves on an application's server, whose sources run in `ctx` (NULL: the global
  // default context). Takes references.
  void Join (_SoupServer *server, _GMainContext *ctx, HttpRoutes *routes,
             const std::string &prefix);
  // Own listening sockets and accept loop for an application's server whose sources run in
  // `ctx` (NULL: the global default context), on the thread that runs `ctx`, with the same
  // budget, timeout and caps as Listen (libsoup's soup_server_listen* stops accepting for
  // good after one failed accept). No thread is started and no routes are attached: the
  // application adds its handlers and runs `ctx`. Call on the thread that runs `ctx`; Stop
  // there too.
  Error ListenFor (_SoupServer *server, _GMainContext *ctx, const Options &o,
                   std::string *detail);
  // Detaches (joined) or disconnects (own) the server, ends the thread, lets pending
  // closes finish, frees. The viewers must be gone already.
  void Stop ();

  bool running () const { return ctx_ != nullptr; }
  unsigned port () const { return port_; }
  // Connections accepted and not yet gone (own server only), and the budget for them.
  unsigned open_connections () const;
  unsigned connection_budget () const;
  // Connections waiting for their request headers now, and their cap (own listener only).
  unsigned http_connections () const;
  unsigned http_connection_budget () const;
  const std::string &uri () const { return uri_; }  // the first one listened on

  // Runs fn where libsoup objects may be touched: now if this thread runs (or can take)
  // the server's context, else on the thread that runs it, waiting for it (at most 5 s).
  bool RunOnServer (std::function<void ()> fn);

private:
  Hooks hooks_;
  HttpRoutes *routes_ = nullptr;
  _SoupServer *server_ = nullptr;
  _GMainContext *ctx_ = nullptr;
  _GMainLoop *loop_ = nullptr;
  _GThread *thread_ = nullptr;
  bool external_ = false;  // joined an application's server
  bool listen_for_ = false;  // our listener for an application's server (ListenFor)
  unsigned port_ = 0;
  std::string uri_;
  struct Acceptor;  // the listening sockets and their accept loop (own server)
  Error OpenAcceptor (_SoupServer *server, _GMainContext *ctx, const Options &o,
                      _GTlsCertificate *cert, std::string *detail);
  Acceptor *acceptor_ = nullptr;
 public:
  struct Ledger;  // connections waiting for their request headers (outlives the acceptor)
 private:
  std::shared_ptr<Ledger> ledger_;  // std::atomic_load/store: read from any thread
  std::atomic<unsigned> http_budget_{0};
};

}  // namespace fmp4ws::server
