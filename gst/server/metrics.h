// GET /metrics: the Prometheus text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/), built from the same
// Snapshot as GET /status and the stats property. Pure C++: no GLib or GStreamer types, so
// websocketsink (one stream) and fmp4ws-server (every stream, a `stream` label each, and the
// process) share it. Unit-tested in tests/unit/test_metrics.cpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io_thread.h"

namespace fmp4ws::server {

// The Content-Type of the text format 0.0.4.
inline constexpr const char *kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// One stream's numbers.
struct StreamMetrics
{
  std::string stream;  // the `stream` label's value (only with MetricsInput::stream_label)
  Snapshot snap;       // taken with clients (for the histograms)
  // fmp4ws-server only (MetricsInput::publishers): whether someone publishes now, and how
  // many publishers the stream had so far.
  bool publishing = false;
  uint64_t publishers = 0;
};

// The HTTP accept loop's descriptor budget (HttpServer): connections open and their budget
// (max-connections), connections waiting for their request headers and their cap
// (max-http-connections). Absent where the server is not ours (a shared soup-server).
struct ConnectionMetrics
{
  unsigned open_connections = 0, connection_budget = 0;
  unsigned http_connections = 0, http_connection_budget = 0;
};

// Process-level numbers (fmp4ws-server), with the names of the Prometheus client libraries.
struct ProcessMetrics
{
  double cpu_seconds = 0;        // user + system
  uint64_t resident_bytes = 0;
  uint64_t open_fds = 0, max_fds = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};

struct MetricsInput
{
  std::vector<StreamMetrics> streams;
  bool stream_label = false;  // label every stream's series with stream="NAME"
  bool publishers = false;    // emit fmp4ws_publishing / fmp4ws_publishers_total
  std::optional<ConnectionMetrics> connections;
  // Refusals counted outside any stream (fmp4ws-server's accept loop), emitted with
  // stream="" (Prometheus: no stream label): budget, http-connections, per-address and
  // timeout always (the streams' own rows then leave these out), any other reason if not 0.
  std::optional<Totals> unassigned_refusals;
  std::optional<ProcessMetrics> process;
};

// The histograms' upper bounds (le), besides +Inf.
extern const std::vector<double> kBacklogBytesBuckets;    // 16 KiB .. 64 MiB
extern const std::vector<double> kBacklogSecondsBuckets;  // 0.05 .. 30 s
extern const std::vector<double> kLatencySecondsBuckets;  // 0.05 .. 30 s

// A label value escaped for the text format: \ as \\, " as \", line feed as \n.
std::string PrometheusLabelValue (const std::string &v);

// A sample value: integers as they are, others shortest round-trip, "+Inf"/"-Inf"/"NaN".
std::string PrometheusNumber (double v);

// The whole exposition (every family with # HELP and # TYPE, '\n' line ends, no timestamps).
// Families (all prefixed fmp4ws_; see README "Metrics" for the list): viewers, viewer
// connections, refusals and disconnects by reason, bytes and fragments sent, drops by reason,
// skips, backlog and latency histograms over the viewers connected now, GOP cache, then the
// optional connection, publisher and process families.
std::string PrometheusText (const MetricsInput &in);

}  // namespace fmp4ws::server
