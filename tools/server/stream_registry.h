// The streams and their viewers: one `appsrc ! websocketsink` pipeline per stream on the shared
// SoupServer (websocketsink's soup-server/path-prefix), lasting until the stream is removed;
// and GET /streams, which lists them.
#pragma once

#include <gst/gst.h>
#include <libsoup/soup.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "metrics.h"  // gst/server: Prometheus text
#include "options.h"

namespace fmp4ws::tools {

struct Publisher;  // publisher.cpp

// One stream. Created and destroyed by StreamRegistry, on the main thread; all its fields are
// for the main thread, except push () (ingest streaming threads).
struct Stream
{
  explicit Stream (const std::string &name);
  ~Stream ();  // stops the viewer pipeline (viewers get a WebSocket close) and frees it
  Stream (const Stream &) = delete;
  Stream &operator= (const Stream &) = delete;

  const std::string name;    // "" for the default (TCP) stream
  const std::string prefix;  // "" or /live/NAME
  GstElement *pipeline = nullptr;  // appsrc name=in ! websocketsink name=sink (owned)
  GstElement *in = nullptr;        // owned references
  GstElement *sink = nullptr;
  Publisher *publisher = nullptr;  // who publishes now, or null; set and owned by Publishers
  unsigned publishers = 0;         // publishers so far (Publishers counts them)
  // Filled by a relay (--relay, --relay-name): no other publisher is taken (TCP: not
  // listened to; HTTP: 409), and it stays when it has no init segment.
  bool relayed = false;

  // Ingest streaming thread: an init segment or fragment from fmp4initcache, to the viewers
  // (never blocks: the viewer appsrc drops old data when full). New caps = new init segment.
  void push (GstSample *sample);
  bool has_init () const;       // an init segment (caps) was ever pushed
  std::string codecs () const;  // its codecs, "" before
  unsigned viewers () const;

private:
  mutable std::mutex caps_lock_;
  GstCaps *caps_ = nullptr;  // the last caps given to `in`, under caps_lock_
};

// Every stream, by name. Main thread only.
class StreamRegistry
{
public:
  // `server` and `opt` are borrowed and must outlive the registry.
  StreamRegistry (SoupServer *server, const Options &opt);
  ~StreamRegistry ();  // destroys every stream
  StreamRegistry (const StreamRegistry &) = delete;
  StreamRegistry &operator= (const StreamRegistry &) = delete;

  void add_routes ();  // GET /streams and GET /metrics on the server
  // What GET /metrics adds to the streams' numbers: the accept loop's (connections, refusals
  // outside any stream) and the process's. Set by main () before add_routes ().
  std::function<void (fmp4ws::server::MetricsInput *)> process_metrics;
  Stream *find (const std::string &name) const;  // null if there is none
  // A new stream with its viewer pipeline playing (viewers at prefix/); null on failure (logged).
  Stream *create (const std::string &name);
  bool full () const;  // --max-streams HTTP-ingest streams exist: no room for another
  // After its publisher ended: removes a named stream that never received an init segment and
  // has neither viewers nor a publisher (garbage is not kept around).
  void remove_if_unused (Stream *s);
  std::vector<Stream *> all () const;
  void clear ();  // destroys every stream now

private:
  // /live/... that no stream serves (a stream's own prefix is longer): answered like a known
  // stream without a token (403 "forbidden") with --token-secret, so names cannot be probed;
  // 404 without.
  static void on_unknown_live (SoupServer *, SoupServerMessage *msg, const char *,
                               GHashTable *, gpointer self);
  static void on_streams (SoupServer *, SoupServerMessage *msg, const char *, GHashTable *,
                          gpointer self);
  static void on_metrics (SoupServer *, SoupServerMessage *msg, const char *, GHashTable *,
                          gpointer self);
  // --token-secret set and no valid ?token= for `path`: answers 403 and returns false.
  bool token_ok (SoupServerMessage *msg, GHashTable *query, const char *path) const;

  SoupServer *server_;
  const Options &opt_;
  std::map<std::string, std::unique_ptr<Stream>> streams_;
};

const char *stream_label (const Stream *s);

// A websocketsink's `stats` structure as the Snapshot it was made from (what GET /metrics
// needs: totals, refusals, GOP cache, and each client's backlog and latency).
fmp4ws::server::Snapshot snapshot_from_stats (const GstStructure *stats);

// The process's CPU time, resident memory and descriptors (Linux /proc), and `start_time_s`.
fmp4ws::server::ProcessMetrics read_process_metrics (double start_time_s);  // its name, "(default)" for the default stream

}  // namespace fmp4ws::tools
