#include "http_server.h"

#include <errno.h>
#include <gio/gio.h>
#include <libsoup/soup.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "http_routes.h"

namespace fmp4ws::server {

namespace {

gpointer
server_thread (gpointer data)
{
  GMainLoop *loop = static_cast<GMainLoop *> (data);
  GMainContext *ctx = g_main_loop_get_context (loop);
  g_main_context_push_thread_default (ctx);
  g_main_loop_run (loop);
  g_main_context_pop_thread_default (ctx);
  return NULL;
}

struct ServerCall
{
  std::function<void ()> fn;
  GMutex lock;
  GCond cond;
  bool done = false;
};

gboolean
server_call_dispatch (gpointer user_data)
{
  ServerCall *call = static_cast<ServerCall *> (user_data);
  call->fn ();
  g_mutex_lock (&call->lock);
  call->done = true;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->lock);
  return G_SOURCE_REMOVE;
}

struct QuitData
{
  SoupServer *server;
  GMainLoop *loop;
  std::function<void ()> first;
};

// On the server's thread: no more connections, end the loop.
gboolean
disconnect_and_quit (gpointer user_data)
{
  QuitData *q = static_cast<QuitData *> (user_data);
  q->first ();
  soup_server_disconnect (q->server);
  g_main_loop_quit (q->loop);
  return G_SOURCE_REMOVE;
}

GQuark
seen_quark ()
{
  static GQuark q = g_quark_from_static_string ("fmp4ws-accept-ref-returned");
  return q;
}

// "request-started" is emitted first for a connection's initial message, as soon as the
// listener accepted it (before a byte is read, TLS or not); then for each further request
// on a keep-alive connection (the socket is marked, so once per socket). At the first one,
// libsoup <3.4 holds two references: the connection's and the one leaked from
// g_socket_accept(); only then is one dropped (never on a libsoup that holds one).
void
on_request_started (SoupServer *, SoupServerMessage *msg, gpointer)
{
  GSocket *sock = soup_server_message_get_socket (msg);
  if (!sock || g_object_get_qdata (G_OBJECT (sock), seen_quark ()))
    return;
  g_object_set_qdata (G_OBJECT (sock), seen_quark (), GINT_TO_POINTER (1));
  if (g_atomic_int_get ((gint *) &G_OBJECT (sock)->ref_count) >= 2)
    g_object_unref (sock);
}

GQuark
socket_quark ()
{
  static GQuark q = g_quark_from_static_string ("fmp4ws-accepted-socket");
  return q;
}

GQuark
count_quark ()
{
  static GQuark q = g_quark_from_static_string ("fmp4ws-connection-count");
  return q;
}

// Binds and listens (SO_REUSEADDR, backlog SOMAXCONN; IPv6 sockets IPv6 only, as libsoup's).
GSocket *
listening_socket (GInetAddress *ia, unsigned port, GError **err)
{
  GSocketFamily family = g_inet_address_get_family (ia);
  GSocket *sock = g_socket_new (family, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_DEFAULT, err);
  if (!sock)
    return NULL;
  if (family == G_SOCKET_FAMILY_IPV6)
    g_socket_set_option (sock, IPPROTO_IPV6, IPV6_V6ONLY, TRUE, NULL);
  GSocketAddress *sa = g_inet_socket_address_new (ia, port);
  g_socket_set_listen_backlog (sock, SOMAXCONN);
  bool ok = g_socket_bind (sock, sa, TRUE, err) && g_socket_listen (sock, err);
  g_object_unref (sa);
  if (!ok)
    g_clear_object (&sock);
  return sock;
}

unsigned
local_port (GSocket *sock)
{
  GSocketAddress *sa = g_socket_get_local_address (sock, NULL);
  unsigned port = sa ? g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (sa)) : 0;
  if (sa)
    g_object_unref (sa);
  return port;
}

GQuark
conn_quark ()
{
  static GQuark q = g_quark_from_static_string ("fmp4ws-connection-state");
  return q;
}

struct Conn;

}  // namespace

// The connections waiting for their request headers ("pending"), in total, per client
// address and oldest first. Outlives the acceptor: sockets may end later, on any thread.
struct HttpServer::Ledger
{
  std::mutex lock;
  unsigned pending = 0;
  std::map<std::string, unsigned> per_address;
  std::list<Conn *> oldest_first;
  std::function<void (const char *why)> refused;
  std::function<void (SoupServerMessage *msg)> got_headers;
};

namespace {

using Ledger = HttpServer::Ledger;

// One accepted connection's request-timeout state, kept on its GSocket (qdata: freed with
// it). Armed (pending, counted in the ledger, a timer running) from accept to its request's
// headers, and again from the end of a response to the next request's headers; never again
// once the connection is taken as a viewer. Timers run on the server's context; the
// destructor may run on any thread (a viewer's socket ends on its I/O thread, disarmed).
struct Conn
{
  std::shared_ptr<Ledger> ledger;
  std::string address;
  GSocket *sock;  // the owner (not a reference)
  GMainContext *ctx;
  unsigned timeout_s;
  GSource *timer = nullptr;
  bool pending = false;  // counted in the ledger, in its oldest_first
  bool taken = false;
  bool tls = false;  // https: nothing is written on the socket itself
  std::list<Conn *>::iterator pos;
  gint64 since = 0;  // monotonic µs, when it began waiting

  Conn (std::shared_ptr<Ledger> l, std::string a, GSocket *s, GMainContext *c, unsigned t)
      : ledger (std::move (l)), address (std::move (a)), sock (s), ctx (c), timeout_s (t)
  {
  }
  ~Conn () { Disarm (); }

  // `counted`: the caller already counted it pending (the accept loop, under the lock).
  void Arm (bool counted = false)
  {
    if (taken || pending)
      return;
    pending = true;
    {
      std::lock_guard<std::mutex> l (ledger->lock);
      if (!counted) {
        ledger->pending++;
        ledger->per_address[address]++;
      }
      pos = ledger->oldest_first.insert (ledger->oldest_first.end (), this);
      since = g_get_monotonic_time ();
    }
    if (timeout_s) {
      timer = g_timeout_source_new_seconds (timeout_s);
      g_source_set_callback (timer, on_timeout, this, NULL);
      g_source_attach (timer, ctx);
    }
  }

  void Disarm ()
  {
    if (timer) {
      g_source_destroy (timer);
      g_source_unref (timer);
      timer = nullptr;
    }
    if (!pending)
      return;
    pending = false;
    std::lock_guard<std::mutex> l (ledger->lock);
    ledger->oldest_first.erase (pos);
    ledger->pending--;
    auto it = ledger->per_address.find (address);
    if (it != ledger->per_address.end () && --it->second == 0)
      ledger->per_address.erase (it);
  }

  // Closes it, counted as `why` (shut down: libsoup's read or TLS handshake fails, it lets
  // go of the connection and the socket ends). `why` NULL: not counted. On the server's
  // thread. Whatever was written goes out, then a FIN (RFC 9293 §3.6); the socket's final
  // close then resets the connection (SO_LINGER 0, as nginx's reset_timedout_connection):
  // once shut for reading, Linux no longer reopens a receive window that a client still
  // sending filled (tcp_cleanup_rbuf), and a graceful close would leave that client
  // probing the zero window, its descriptor held, until tcp_fin_timeout (60 s); the RST
  // ends it at once (the client sees ECONNRESET or EPIPE, after what was written to it).
  void Close (const char *why)
  {
    Disarm ();
    if (!g_socket_is_closed (sock)) {
      if (why && ledger->refused)
        ledger->refused (why);
      struct linger abortive = {1, 0};
      setsockopt (g_socket_get_fd (sock), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
      g_socket_shutdown (sock, FALSE, TRUE, NULL);  // the FIN, after the answer
      g_socket_shutdown (sock, TRUE, FALSE, NULL);  // libsoup's next read ends
    }
  }

  static gboolean on_timeout (gpointer data)
  {
    Conn *c = static_cast<Conn *> (data);
    g_source_unref (c->timer);
    c->timer = nullptr;
    c->Close ("rejected: timeout");
    return G_SOURCE_REMOVE;
  }
};

Conn *
conn_of (SoupServerMessage *msg)
{
  GSocket *sock = MessageSocket (msg);
  return sock ? static_cast<Conn *> (g_object_get_qdata (G_OBJECT (sock), conn_quark ())) : NULL;
}

// Whether the request carries a body (RFC 9112 §6.3: Transfer-Encoding, else a
// Content-Length above 0).
bool
has_request_body (SoupServerMessage *msg)
{
  SoupMessageHeaders *h = soup_server_message_get_request_headers (msg);
  if (soup_message_headers_get_one (h, "Transfer-Encoding"))
    return true;
  const char *cl = soup_message_headers_get_one (h, "Content-Length");
  return cl && soup_message_headers_get_content_length (h) != 0;
}

// Answers `msg` (its status and response body as set) on the connection itself and closes
// it, counted as `why`: libsoup 3.2 would first read the whole request body, into memory,
// however slow or big. On https the connection is only closed (a plain answer would be
// garbage there). The response goes out before the FIN; a client still sending may see a
// reset instead (RFC 9112 §9.6).
void
answer_and_close (Conn *c, SoupServerMessage *msg, const char *why)
{
  if (!c->tls) {
    guint status = soup_server_message_get_status (msg);
    const char *phrase = soup_server_message_get_reason_phrase (msg);
    GBytes *body = soup_message_body_flatten (soup_server_message_get_response_body (msg));
    const char *type = soup_message_headers_get_content_type (
        soup_server_message_get_response_headers (msg), NULL);
    const char *allow =
        soup_message_headers_get_one (soup_server_message_get_response_headers (msg), "Allow");
    std::string head = "HTTP/1.1 " + std::to_string (status) + " " +
                       (phrase ? phrase : soup_status_get_phrase (status)) +
                       "\r\nConnection: close\r\nCache-Control: no-store\r\n";
    if (type)
      head += std::string ("Content-Type: ") + type + "\r\n";
    if (allow)
      head += std::string ("Allow: ") + allow + "\r\n";
    head += "Content-Length: " + std::to_string (g_bytes_get_size (body)) + "\r\n\r\n";
    head.append ((const char *) g_bytes_get_data (body, NULL), g_bytes_get_size (body));
    g_bytes_unref (body);
    // Best effort, not blocking: a fresh connection's send buffer takes it whole.
    g_socket_send_with_blocking (c->sock, head.data (), head.size (), FALSE, NULL, NULL);
  }
  c->Close (why);
}

// The request headers are in: the connection is no longer pending. The application's hook
// (got_headers) may answer the request or take its body as a stream. A request with a body
// (Content-Length > 0 or Transfer-Encoding) that is answered, or that nothing streams (an
// application streams one by turning the body's accumulation off, e.g. fmp4ws-server's HTTP
// ingest), is answered here before libsoup reads the body, and the connection closed:
// unanswered, 413 Content Too Large (RFC 9110 §15.5.14) for GET/HEAD and 405 Method Not
// Allowed (§15.5.6) for the rest, counted "rejected: body". A request without a body goes
// on as before.
void
on_got_headers (SoupServerMessage *msg, gpointer)
{
  Conn *c = conn_of (msg);
  if (!c)
    return;
  c->Disarm ();
  if (c->ledger->got_headers)
    c->ledger->got_headers (msg);
  if (!has_request_body (msg))
    return;
  if (soup_server_message_get_status (msg) != 0) {
    answer_and_close (c, msg, NULL);  // the application's answer, counted by it
    return;
  }
  if (!soup_message_body_get_accumulate (soup_server_message_get_request_body (msg)))
    return;  // streamed by the application, under its own bounds
  const char *method = soup_server_message_get_method (msg);
  bool get = !strcmp (method, "GET") || !strcmp (method, "HEAD");
  soup_server_message_set_status (msg, get ? 413 : SOUP_STATUS_METHOD_NOT_ALLOWED,
                                  get ? "Content Too Large" : NULL);
  if (!get)
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Allow",
                                  "GET, HEAD");
  static const char text[] = "request bodies are not accepted here\n";
  soup_server_message_set_response (msg, "text/plain", SOUP_MEMORY_STATIC, text, sizeof text - 1);
  answer_and_close (c, msg, "rejected: body");
}

// A request begins (the connection's first, or the next on a keep-alive connection): until
// its headers are in, the connection is pending.
void
on_conn_request_started (SoupServer *, SoupServerMessage *msg, gpointer)
{
  Conn *c = conn_of (msg);
  if (!c)
    return;
  c->Arm ();
  g_signal_connect (msg, "got-headers", G_CALLBACK (on_got_headers), NULL);
}

// A response is done: a keep-alive connection now waits for its next request.
void
on_conn_request_finished (SoupServer *, SoupServerMessage *msg, gpointer)
{
  Conn *c = conn_of (msg);
  if (c && !g_socket_is_closed (c->sock))
    c->Arm ();
}

std::string
peer_address (const struct sockaddr_storage &ss)
{
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss.ss_family == AF_INET)
    inet_ntop (AF_INET, &((const struct sockaddr_in *) &ss)->sin_addr, buf, sizeof buf);
  else if (ss.ss_family == AF_INET6)
    inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) &ss)->sin6_addr, buf, sizeof buf);
  return buf;
}

const char kBusyResponse[] =
    "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    "Content-Length: 19\r\nRetry-After: 5\r\n\r\nserver is too busy\n";

}  // namespace

// The listening sockets and their accept loop, on the server's context. libsoup's own
// listener (3.2.3, soup-listener.c listen_watch) removes its watch when one accept fails:
// out of file descriptors once, it never accepts again. Here an accept that fails for want
// of resources pauses the watches and retries a little later; and connections are counted
// (from accept to their socket's end) against a budget below the descriptor limit.
struct HttpServer::Acceptor
{
  HttpServer *owner;
  SoupServer *server;
  GMainContext *ctx;
  GTlsCertificate *cert = nullptr;
  std::vector<GSocket *> sockets;
  std::vector<GSource *> sources;  // one per socket while watching, else empty
  GSource *retry = nullptr;
  gint64 last_warning = G_MININT64 / 2;
  unsigned budget = 0;
  unsigned limit = 0;
  unsigned request_timeout = 0;       // seconds, 0: none
  unsigned max_pending = 0;           // connections waiting for request headers
  unsigned max_per_address = 0;       // the same per client address, 0: no limit
  std::shared_ptr<Ledger> ledger = std::make_shared<Ledger> ();
  gulong started_id = 0, finished_id = 0;
  // Outlives the acceptor: the last sockets may end later, on any thread.
  std::shared_ptr<std::atomic<unsigned>> open = std::make_shared<std::atomic<unsigned>> (0);

  Acceptor (HttpServer *o, SoupServer *s, GMainContext *c) : owner (o), server (s), ctx (c) {}
  ~Acceptor ()
  {
    if (started_id)
      g_signal_handler_disconnect (server, started_id);
    if (finished_id)
      g_signal_handler_disconnect (server, finished_id);
    Unwatch ();
    if (retry) {
      g_source_destroy (retry);
      g_source_unref (retry);
    }
    for (GSocket *s : sockets) {
      g_socket_close (s, NULL);
      g_object_unref (s);
    }
    g_clear_object (&cert);
  }

  void Watch ()
  {
    for (GSocket *s : sockets) {
      GSource *src = g_socket_create_source (s, G_IO_IN, NULL);
      g_source_set_callback (src, (GSourceFunc) (void (*) ()) on_incoming, this, NULL);
      g_source_attach (src, ctx);
      sources.push_back (src);
    }
  }

  void Unwatch ()
  {
    for (GSource *src : sources) {
      g_source_destroy (src);
      g_source_unref (src);
    }
    sources.clear ();
  }

  static gboolean on_retry (gpointer data)
  {
    Acceptor *a = static_cast<Acceptor *> (data);
    g_source_unref (a->retry);
    a->retry = NULL;
    a->Watch ();
    return G_SOURCE_REMOVE;
  }

  // Out of descriptors (or kernel memory): stop watching for a while (a listening socket
  // with a full queue stays readable: watching it would spin), say so at most every 10 s.
  void Pause (int e)
  {
    Unwatch ();
    retry = g_timeout_source_new (200);
    g_source_set_callback (retry, on_retry, this, NULL);
    g_source_attach (retry, ctx);
    gint64 now = g_get_monotonic_time ();
    if (now - last_warning >= 10 * G_USEC_PER_SEC) {
      last_warning = now;
      if (owner->hooks_.warning)
        owner->hooks_.warning (
            std::string ("cannot accept connections: ") + g_strerror (e) + " (" +
            std::to_string (open->load ()) + " open, file descriptor limit " +
            std::to_string (limit) +
            "); retrying every 200 ms. Raise the limit (LimitNOFILE= in a systemd unit, "
            "ulimit -n in a shell) or lower max-connections");
    }
  }

  // At accept, before a byte is read: a short fixed answer (plain HTTP only: on a TLS port
  // it would be garbage to the client, which just sees the connection closed), written
  // directly; whatever does not fit is dropped.
  void Refuse (int fd, const char *why)
  {
    if (owner->hooks_.refused)  // counted before the client can see the answer
      owner->hooks_.refused (why);
    if (!cert) {
      ssize_t n = send (fd, kBusyResponse, sizeof kBusyResponse - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
      (void) n;
      shutdown (fd, SHUT_WR);
    }
    close (fd);
  }

  // Counts the new connection pending, unless over a cap: then the reason.
  const char *Admit (const std::string &address)
  {
    if (budget && open->load () >= budget)
      return "rejected: budget";
    // Full of connections waiting for their request headers: the oldest of them makes room
    // if it has waited a tenth of request-timeout (a real client sends its headers within
    // milliseconds, a stalled one holds its slot until request-timeout: refusing newcomers
    // would lock real clients out); else (a burst of young ones, real clients perhaps) the
    // newcomer gets the 503.
    Conn *oldest = nullptr;
    {
      std::lock_guard<std::mutex> l (ledger->lock);
      if (max_per_address) {
        auto it = ledger->per_address.find (address);
        if (it != ledger->per_address.end () && it->second >= max_per_address)
          return "rejected: per-address";
      }
      if (max_pending && ledger->pending >= max_pending && !ledger->oldest_first.empty () &&
          ledger->oldest_first.front ()->since <=
              g_get_monotonic_time () - gint64 (request_timeout) * G_USEC_PER_SEC / 10)
        oldest = ledger->oldest_first.front ();
    }
    // Pending connections end on this thread only (taken ones are not pending): `oldest` is
    // alive.
    if (oldest)
      oldest->Close ("rejected: http-connections");
    std::lock_guard<std::mutex> l (ledger->lock);
    if (max_pending && ledger->pending >= max_pending)
      return "rejected: http-connections";  // still full: the newcomer gets the 503
    unsigned &mine = ledger->per_address[address];
    if (max_per_address && mine >= max_per_address) {
      if (mine == 0)
        ledger->per_address.erase (address);
      return "rejected: per-address";
    }
    mine++;
    ledger->pending++;
    return nullptr;
  }

  void Serve (int fd, const std::string &address)
  {
    GError *err = NULL;
    GSocket *sock = g_socket_new_from_fd (fd, &err);
    // From here the connection is pending until its request headers are in (counted by
    // Admit): a Conn on the socket keeps that state and its request-timeout timer.
    Conn *conn = new Conn (ledger, address, sock, ctx, request_timeout);
    if (!sock) {
      g_clear_error (&err);
      close (fd);
      conn->Arm (true);
      delete conn;  // un-counts
      return;
    }
    conn->Arm (true);
    conn->tls = cert != nullptr;
    g_object_set_qdata_full (G_OBJECT (sock), conn_quark (), conn,
                             [] (gpointer p) { delete static_cast<Conn *> (p); });
    g_socket_set_option (sock, IPPROTO_TCP, TCP_NODELAY, TRUE, NULL);
    open->fetch_add (1);
    g_object_set_qdata_full (G_OBJECT (sock), count_quark (),
                             new std::shared_ptr<std::atomic<unsigned>> (open), [] (gpointer p) {
                               auto *c = static_cast<std::shared_ptr<std::atomic<unsigned>> *> (p);
                               (*c)->fetch_sub (1);
                               delete c;
                             });
    GSocketAddress *local = g_socket_get_local_address (sock, NULL);
    GSocketAddress *remote = g_socket_get_remote_address (sock, NULL);
    GIOStream *stream = G_IO_STREAM (g_socket_connection_factory_create_connection (sock));
    if (local && remote && cert) {
      // As libsoup's listener does (soup-server-connection.c, accepted): HTTP/1 only, no
      // close_notify required. The handshake happens at the first read.
      const char *protocols[] = {"http/1.1", "http/1.0", NULL};
      GIOStream *tls = G_IO_STREAM (g_initable_new (
          g_tls_backend_get_server_connection_type (g_tls_backend_get_default ()), NULL, &err,
          "base-io-stream", stream, "certificate", cert, "require-close-notify", FALSE,
          "advertised-protocols", protocols, NULL));
      g_object_unref (stream);
      stream = tls;
      g_clear_error (&err);
    }
    if (stream && local && remote) {
      // The routes find the socket here (MessageSocket): libsoup has none for the stream.
      g_object_set_qdata_full (G_OBJECT (remote), socket_quark (), g_object_ref (sock),
                               g_object_unref);
      soup_server_accept_iostream (server, stream, local, remote, NULL);
    } else if (stream) {
      g_io_stream_close (stream, NULL, NULL);
    }
    if (stream)
      g_object_unref (stream);
    if (local)
      g_object_unref (local);
    if (remote)
      g_object_unref (remote);
    g_object_unref (sock);
  }

  static gboolean on_incoming (GSocket *listener, GIOCondition, gpointer data)
  {
    Acceptor *a = static_cast<Acceptor *> (data);
    if (a->retry)
      return G_SOURCE_REMOVE;  // paused by another listening socket in this iteration
    for (int i = 0; i < 64; i++) {
      struct sockaddr_storage ss = {};
      socklen_t len = sizeof ss;
      int fd = accept4 (g_socket_get_fd (listener), (struct sockaddr *) &ss, &len,
                        SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        int e = errno;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM)
          continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
          return G_SOURCE_CONTINUE;
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, or anything unexpected: never stop for good.
        a->Pause (e);
        return G_SOURCE_REMOVE;
      }
      std::string address = peer_address (ss);
      if (const char *why = a->Admit (address))
        a->Refuse (fd, why);
      else
        a->Serve (fd, address);
    }
    return G_SOURCE_CONTINUE;
  }
};

unsigned
RaiseFileLimit (std::string *log, std::string *warning)
{
  static std::once_flag once;
  static std::string said, warned;
  std::call_once (once, [&] {
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
      return;
    rlim_t before = rl.rlim_cur;
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      if (setrlimit (RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = before;
    }
    auto str = [] (rlim_t v) {
      return v == RLIM_INFINITY ? std::string ("unlimited") : std::to_string (v);
    };
    said = "file descriptor limit: soft " + str (before) + " raised to " + str (rl.rlim_cur) +
           " (hard " + str (rl.rlim_max) + ")";
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096)
      warned = "the file descriptor limit is low (hard " + str (rl.rlim_max) +
               "): each viewer takes one; raise it (LimitNOFILE= in a systemd unit, ulimit -Hn "
               "in a shell)";
    if (log)
      *log = said;
    if (warning)
      *warning = warned;
  });
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) != 0)
    return 0;
  return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > G_MAXUINT ? G_MAXUINT : unsigned (rl.rlim_cur);
}

GSocket *
MessageSocket (SoupServerMessage *msg)
{
  GSocket *sock = soup_server_message_get_socket (msg);
  if (sock)
    return sock;
  GSocketAddress *remote = soup_server_message_get_remote_address (msg);
  return remote ? G_SOCKET (g_object_get_qdata (G_OBJECT (remote), socket_quark ())) : NULL;
}

unsigned
HttpServer::open_connections () const
{
  return acceptor_ ? acceptor_->open->load () : 0;
}

unsigned
HttpServer::connection_budget () const
{
  return acceptor_ ? acceptor_->budget : 0;
}

unsigned
HttpServer::http_connections () const
{
  std::shared_ptr<Ledger> l = std::atomic_load (&ledger_);
  if (!l)
    return 0;
  std::lock_guard<std::mutex> lock (l->lock);
  return l->pending;
}

unsigned
HttpServer::http_connection_budget () const
{
  return http_budget_.load ();
}

void
ConnectionTaken (GSocket *sock)
{
  Conn *c = sock ? static_cast<Conn *> (g_object_get_qdata (G_OBJECT (sock), conn_quark ()))
                 : NULL;
  if (c) {
    c->taken = true;
    c->Disarm ();
  }
}

bool
LibsoupLeaksConnections ()
{
  return soup_get_major_version () == 3 && soup_get_minor_version () < 4;
}

void
EndConnectionAfterResponse (_SoupServerMessage *msg)
{
  static const bool leaky = LibsoupLeaksConnections ();
  if (leaky)
    soup_message_headers_replace (soup_server_message_get_response_headers (msg), "Connection",
                                  "close");
}

void
FixLibsoupAcceptLeak (_SoupServer *server)
{
  if (LibsoupLeaksConnections ())
    g_signal_connect (server, "request-started", G_CALLBACK (on_request_started), NULL);
}

bool
HttpServer::RunOnServer (std::function<void ()> fn)
{
  GMainContext *ctx = ctx_;
  if (g_main_context_is_owner (ctx)) {
    fn ();
    return true;
  }
  if (g_main_context_acquire (ctx)) {
    g_main_context_push_thread_default (ctx);
    fn ();
    g_main_context_pop_thread_default (ctx);
    g_main_context_release (ctx);
    return true;
  }
  ServerCall call;
  call.fn = std::move (fn);
  g_mutex_init (&call.lock);
  g_cond_init (&call.cond);
  GSource *src = g_idle_source_new ();
  g_source_set_priority (src, G_PRIORITY_HIGH);
  g_source_set_callback (src, server_call_dispatch, &call, NULL);
  g_source_attach (src, ctx);
  g_mutex_lock (&call.lock);
  gint64 end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (!call.done && g_cond_wait_until (&call.cond, &call.lock, end))
    ;
  bool done = call.done;
  g_mutex_unlock (&call.lock);
  if (!done) {
    // The context's thread is stuck or gone: never leave `call` dangling.
    g_source_destroy (src);
    if (hooks_.error)
      hooks_.error ("the server's main context did not answer in 5 s");
  }
  g_source_unref (src);
  g_mutex_clear (&call.lock);
  g_cond_clear (&call.cond);
  return done;
}

void
HttpServer::Join (_SoupServer *server, _GMainContext *ctx, HttpRoutes *routes,
                  const std::string &prefix)
{
  external_ = true;
  routes_ = routes;
  server_ = SOUP_SERVER (g_object_ref (server));
  ctx_ = g_main_context_ref (ctx ? ctx : g_main_context_default ());
  RunOnServer ([&] { routes_->Attach (server_, ctx_, prefix); });
}

namespace {

// The certificate of o (borrowed, or loaded from its files), or NULL for plain HTTP.
bool
load_certificate (const HttpServer::Options &o, GTlsCertificate **cert, std::string *detail)
{
  GError *err = NULL;
  *cert = o.tls_certificate ? G_TLS_CERTIFICATE (g_object_ref (o.tls_certificate)) : NULL;
  if (!*cert && !o.tls_cert_file.empty ()) {
    *cert = g_tls_certificate_new_from_files (
        o.tls_cert_file.c_str (),
        o.tls_key_file.empty () ? o.tls_cert_file.c_str () : o.tls_key_file.c_str (), &err);
    if (!*cert) {
      *detail = o.tls_cert_file + " / " + o.tls_key_file + ": " + err->message;
      g_clear_error (&err);
      return false;
    }
  }
  return true;
}

}  // namespace

// Listening sockets on o.address/o.port and the accept loop (Acceptor) on `ctx`, handing
// connections to `server`. Takes `cert`.
HttpServer::Error
HttpServer::OpenAcceptor (_SoupServer *server, _GMainContext *ctx, const Options &o,
                          _GTlsCertificate *cert, std::string *detail)
{
  GError *err = NULL;
  std::string said, warned;
  unsigned limit = RaiseFileLimit (&said, &warned);
  if (!said.empty () && hooks_.info)
    hooks_.info (said);
  if (!warned.empty () && hooks_.warning)
    hooks_.warning (warned);

  std::vector<GSocket *> sockets;
  bool ok = false;
  if (o.address.empty ()) {
    // All interfaces, as soup_server_listen_all: IPv4, then IPv6 on the same port (skipped
    // where the system has no IPv6). With port 0, another try if that port is taken in IPv6.
    for (int attempt = 0; attempt < 5 && !ok; attempt++) {
      g_clear_error (&err);
      GInetAddress *any4 = g_inet_address_new_any (G_SOCKET_FAMILY_IPV4);
      GSocket *v4 = listening_socket (any4, o.port, &err);
      g_object_unref (any4);
      if (!v4)
        break;
      GInetAddress *any6 = g_inet_address_new_any (G_SOCKET_FAMILY_IPV6);
      GSocket *v6 = listening_socket (any6, local_port (v4), &err);
      g_object_unref (any6);
      if (v6 || g_error_matches (err, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED)) {
        g_clear_error (&err);
        sockets.push_back (v4);
        if (v6)
          sockets.push_back (v6);
        ok = true;
      } else {
        g_object_unref (v4);
        if (o.port != 0)
          break;
      }
    }
  } else {
    GInetAddress *ia = g_inet_address_new_from_string (o.address.c_str ());
    if (!ia) {
      // A host name: resolve it (blocking, once, at start).
      GResolver *resolver = g_resolver_get_default ();
      GList *list = g_resolver_lookup_by_name (resolver, o.address.c_str (), NULL, &err);
      g_object_unref (resolver);
      if (list) {
        ia = G_INET_ADDRESS (g_object_ref (list->data));
        g_resolver_free_addresses (list);
      }
    }
    if (ia) {
      GSocket *sock = listening_socket (ia, o.port, &err);
      g_object_unref (ia);
      if (sock) {
        sockets.push_back (sock);
        ok = true;
      }
    }
  }
  if (!ok) {
    *detail = "listening on " + (o.address.empty () ? std::string ("all interfaces") : o.address) +
              " port " + std::to_string (o.port) + ": " + (err ? err->message : "unknown error");
    g_clear_error (&err);
    for (GSocket *sock : sockets)
      g_object_unref (sock);
    if (cert)
      g_object_unref (cert);
    return Error::kListen;
  }

  acceptor_ = new Acceptor (this, server, ctx);
  acceptor_->cert = cert;  // ours
  acceptor_->sockets = sockets;
  acceptor_->limit = limit;
  acceptor_->budget = o.max_connections
                          ? o.max_connections
                          : (limit > 2 * kFdReserve ? limit - kFdReserve : limit / 2);
  acceptor_->request_timeout = o.request_timeout;
  acceptor_->max_pending =
      o.max_http_connections ? o.max_http_connections : MAX (1u, acceptor_->budget / 2);
  acceptor_->max_per_address = o.max_connections_per_address;
  std::atomic_store (&ledger_, acceptor_->ledger);
  http_budget_ = acceptor_->max_pending;
  acceptor_->ledger->refused = hooks_.refused;
  acceptor_->ledger->got_headers = hooks_.got_headers;
  acceptor_->started_id = g_signal_connect (server, "request-started",
                                            G_CALLBACK (on_conn_request_started), NULL);
  acceptor_->finished_id = g_signal_connect (server, "request-finished",
                                             G_CALLBACK (on_conn_request_finished), NULL);
  acceptor_->Watch ();
  port_ = local_port (sockets[0]);
  {
    GSocketAddress *sa = g_socket_get_local_address (sockets[0], NULL);
    gchar *host = sa ? g_inet_address_to_string (
                           g_inet_socket_address_get_address (G_INET_SOCKET_ADDRESS (sa)))
                     : g_strdup ("?");
    bool v6 = strchr (host, ':') != NULL;
    uri_ = std::string (cert ? "https" : "http") + "://" + (v6 ? "[" : "") + host +
           (v6 ? "]" : "") + ":" + std::to_string (port_) + "/";
    g_free (host);
    if (sa)
      g_object_unref (sa);
  }
  return Error::kNone;
}

HttpServer::Error
HttpServer::Listen (const Options &o, HttpRoutes *routes, const std::string &prefix,
                    std::string *detail)
{
  external_ = false;
  listen_for_ = false;
  GTlsCertificate *cert = NULL;
  if (!load_certificate (o, &cert, detail))
    return Error::kTlsCertificate;

  GMainContext *ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  SoupServer *server = soup_server_new ("server-header", "gst-fmp4ws ", NULL);
  // No FixLibsoupAcceptLeak: the accepted sockets' references are ours (Acceptor::Serve).
  routes->Attach (server, ctx, prefix);
  g_main_context_pop_thread_default (ctx);

  // Our own listening sockets and accept loop (Acceptor), the connections handed to libsoup.
  Error e = OpenAcceptor (server, ctx, o, cert, detail);
  if (e != Error::kNone) {
    routes->Detach (server);
    g_object_unref (server);
    g_main_context_unref (ctx);
    return e;
  }
  routes_ = routes;
  server_ = server;
  ctx_ = ctx;
  loop_ = g_main_loop_new (ctx, FALSE);
  thread_ = g_thread_new ("websocketsink", server_thread, loop_);
  return Error::kNone;
}

HttpServer::Error
HttpServer::ListenFor (_SoupServer *server, _GMainContext *ctx, const Options &o,
                       std::string *detail)
{
  external_ = false;
  listen_for_ = true;
  GTlsCertificate *cert = NULL;
  if (!load_certificate (o, &cert, detail))
    return Error::kTlsCertificate;
  ctx = ctx ? ctx : g_main_context_default ();
  Error e = OpenAcceptor (server, ctx, o, cert, detail);
  if (e != Error::kNone)
    return e;
  server_ = SOUP_SERVER (g_object_ref (server));
  ctx_ = g_main_context_ref (ctx);
  return Error::kNone;
}

void
HttpServer::Stop ()
{
  if (!ctx_)
    return;
  if (external_) {
    RunOnServer ([this] { routes_->Detach (server_); });
    g_clear_object (&server_);
  } else if (listen_for_) {
    // On the thread that runs ctx_ (the application's): no more connections.
    delete acceptor_;
    acceptor_ = nullptr;
    g_clear_object (&server_);
  } else {
    QuitData q{server_, loop_, [this] {
                  delete acceptor_;  // no more connections
                  acceptor_ = nullptr;
                }};
    GSource *s = g_idle_source_new ();
    g_source_set_priority (s, G_PRIORITY_HIGH);
    g_source_set_callback (s, disconnect_and_quit, &q, NULL);
    g_source_attach (s, ctx_);
    g_source_unref (s);
    g_thread_join (thread_);
    thread_ = NULL;
    // Let pending close operations finish on this thread, then free.
    g_main_context_push_thread_default (ctx_);
    g_clear_object (&server_);
    while (g_main_context_iteration (ctx_, FALSE))
      ;
    g_main_context_pop_thread_default (ctx_);
    g_main_loop_unref (loop_);
    loop_ = NULL;
  }
  g_main_context_unref (ctx_);
  ctx_ = NULL;
  external_ = false;
  listen_for_ = false;
  port_ = 0;
  std::atomic_store (&ledger_, std::shared_ptr<Ledger> ());
  http_budget_ = 0;
  uri_.clear ();
}

}  // namespace fmp4ws::server
