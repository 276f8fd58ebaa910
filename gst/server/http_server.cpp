#include "http_server.h"

#include <gio/gio.h>
#include <libsoup/soup.h>
#include <sys/socket.h>

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
};

// On the server's thread: no more connections, end the loop.
gboolean
disconnect_and_quit (gpointer user_data)
{
  QuitData *q = static_cast<QuitData *> (user_data);
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

}  // namespace

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

HttpServer::Error
HttpServer::Listen (const Options &o, HttpRoutes *routes, const std::string &prefix,
                    std::string *detail)
{
  external_ = false;
  GError *err = NULL;
  GTlsCertificate *cert = o.tls_certificate ? G_TLS_CERTIFICATE (g_object_ref (o.tls_certificate))
                                            : NULL;
  if (!cert && !o.tls_cert_file.empty ()) {
    cert = g_tls_certificate_new_from_files (
        o.tls_cert_file.c_str (),
        o.tls_key_file.empty () ? o.tls_cert_file.c_str () : o.tls_key_file.c_str (), &err);
    if (!cert) {
      *detail = o.tls_cert_file + " / " + o.tls_key_file + ": " + err->message;
      g_clear_error (&err);
      return Error::kTlsCertificate;
    }
  }

  GMainContext *ctx = g_main_context_new ();
  g_main_context_push_thread_default (ctx);
  SoupServer *server = soup_server_new ("server-header", "gst-fmp4ws ", NULL);
  if (cert)
    soup_server_set_tls_certificate (server, cert);
  FixLibsoupAcceptLeak (server);
  routes->Attach (server, ctx, prefix);
  SoupServerListenOptions opts = cert ? SOUP_SERVER_LISTEN_HTTPS : SoupServerListenOptions (0);
  gboolean ok;
  if (o.address.empty ()) {
    ok = soup_server_listen_all (server, o.port, opts, &err);
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
    ok = FALSE;
    if (ia) {
      GSocketAddress *sa = g_inet_socket_address_new (ia, o.port);
      ok = soup_server_listen (server, sa, opts, &err);
      g_object_unref (sa);
      g_object_unref (ia);
    }
  }
  g_main_context_pop_thread_default (ctx);
  if (cert)
    g_object_unref (cert);
  if (!ok) {
    *detail = "listening on " + (o.address.empty () ? std::string ("all interfaces") : o.address) +
              " port " + std::to_string (o.port) + ": " + (err ? err->message : "unknown error");
    g_clear_error (&err);
    g_object_unref (server);
    g_main_context_unref (ctx);
    return Error::kListen;
  }
  routes_ = routes;
  server_ = server;
  ctx_ = ctx;
  loop_ = g_main_loop_new (ctx, FALSE);
  GSList *uris = soup_server_get_uris (server);
  if (uris) {
    port_ = g_uri_get_port ((GUri *) uris->data);
    gchar *u = g_uri_to_string ((GUri *) uris->data);
    uri_ = u;
    g_free (u);
  }
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  // libsoup listens with a backlog of 10: a crowd arriving at once (a popular stream
  // starting) would see refused or retried connections. Linux takes a new backlog on a
  // listening socket.
  for (GSList *l = soup_server_get_listeners (server); l; l = l->next)
    listen (g_socket_get_fd (G_SOCKET (l->data)), SOMAXCONN);
  thread_ = g_thread_new ("websocketsink", server_thread, loop_);
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
  } else {
    QuitData q{server_, loop_};
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
  port_ = 0;
  uri_.clear ();
}

}  // namespace fmp4ws::server
