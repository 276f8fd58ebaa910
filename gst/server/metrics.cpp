#include "metrics.h"

#include <charconv>
#include <cmath>
#include <functional>

#include "http_routes.h"  // Refusals

namespace fmp4ws::server {

const std::vector<double> kBacklogBytesBuckets = {16384,   65536,    262144,   1048576,
                                                  4194304, 16777216, 67108864};
const std::vector<double> kBacklogSecondsBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const std::vector<double> kLatencySecondsBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

std::string
PrometheusLabelValue (const std::string &v)
{
  std::string out;
  out.reserve (v.size ());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string
PrometheusNumber (double v)
{
  if (std::isnan (v))
    return "NaN";
  if (std::isinf (v))
    return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  if (v == std::floor (v) && std::fabs (v) < 9.0e15) {  // integral: all digits, no exponent
    auto r = std::to_chars (buf, buf + sizeof buf, int64_t (v));
    return std::string (buf, r.ptr);
  }
  // Locale-independent, shortest round-trip (Go's ParseFloat reads it).
  auto r = std::to_chars (buf, buf + sizeof buf, v);
  return std::string (buf, r.ptr);
}

namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Writer
{
public:
  void Family (const char *name, const char *type, const char *help)
  {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;  // no '\\' or line feeds in our help texts
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }

  void Sample (const std::string &name, const Labels &labels, double v)
  {
    out_ += name;
    if (!labels.empty ()) {
      out_ += '{';
      bool first = true;
      for (auto &[k, val] : labels) {
        if (!first)
          out_ += ',';
        first = false;
        out_ += k + "=\"" + PrometheusLabelValue (val) + "\"";
      }
      out_ += '}';
    }
    out_ += ' ';
    out_ += PrometheusNumber (v);
    out_ += '\n';
  }

  // A histogram of `values` (cumulative buckets, _sum, _count).
  void Histogram (const char *name, const Labels &labels, const std::vector<double> &bounds,
                  const std::vector<double> &values)
  {
    double sum = 0;
    for (double v : values)
      sum += v;
    for (double le : bounds) {
      uint64_t n = 0;
      for (double v : values)
        n += v <= le;
      Labels l = labels;
      l.emplace_back ("le", PrometheusNumber (le));
      Sample (std::string (name) + "_bucket", l, double (n));
    }
    Labels l = labels;
    l.emplace_back ("le", "+Inf");
    Sample (std::string (name) + "_bucket", l, double (values.size ()));
    Sample (std::string (name) + "_sum", labels, sum);
    Sample (std::string (name) + "_count", labels, double (values.size ()));
  }

  std::string Take () { return std::move (out_); }

private:
  std::string out_;
};

}  // namespace

std::string
PrometheusText (const MetricsInput &in)
{
  Writer w;
  auto base = [&] (const StreamMetrics &s) {
    Labels l;
    if (in.stream_label)
      l.emplace_back ("stream", s.stream);
    return l;
  };
  // One sample per stream of a family.
  auto per_stream = [&] (const char *name, const char *type, const char *help,
                         const std::function<double (const StreamMetrics &)> &value) {
    w.Family (name, type, help);
    for (const StreamMetrics &s : in.streams)
      w.Sample (name, base (s), value (s));
  };

  per_stream ("fmp4ws_viewers", "gauge", "Viewers connected now (WebSocket and /stream.mp4).",
              [] (const StreamMetrics &s) { return double (s.snap.viewers); });
  per_stream ("fmp4ws_viewer_connections_total", "counter",
              "Viewers accepted (handshake done, handed to an I/O thread).",
              [] (const StreamMetrics &s) { return double (s.snap.totals.connections); });

  w.Family ("fmp4ws_refused_connections_total", "counter",
            "Connections and requests refused before they became viewers, by reason: budget "
            "(max-connections), http-connections, per-address, timeout (request-timeout), "
            "origin, max-clients, token, authorize, body (a request body nothing streams).");
  // With a shared accept loop (unassigned_refusals), its reasons are counted there, not per
  // stream; the streams keep the request-level ones.
  auto loop_reason = [] (const std::string &r) {
    return r == "budget" || r == "http-connections" || r == "per-address" || r == "timeout" ||
           r == "body";
  };
  for (const StreamMetrics &s : in.streams)
    for (auto &[reason, n] : Refusals (s.snap.totals)) {
      if (in.unassigned_refusals && loop_reason (reason))
        continue;
      Labels l = base (s);
      l.emplace_back ("reason", reason);
      w.Sample ("fmp4ws_refused_connections_total", l, double (n));
    }
  if (in.unassigned_refusals)
    for (auto &[reason, n] : Refusals (*in.unassigned_refusals)) {
      if (!loop_reason (reason) && n == 0)
        continue;
      Labels l;
      if (in.stream_label)
        l.emplace_back ("stream", "");
      l.emplace_back ("reason", reason);
      w.Sample ("fmp4ws_refused_connections_total", l, double (n));
    }

  w.Family ("fmp4ws_disconnects_total", "counter",
            "Viewers gone, by reason (the close reason, e.g. \"client closed (1001)\").");
  static const std::string rejected = "rejected: ";
  for (const StreamMetrics &s : in.streams)
    for (auto &[reason, n] : s.snap.totals.disconnects) {
      if (reason.compare (0, rejected.size (), rejected) == 0)
        continue;  // refusals, above
      Labels l = base (s);
      l.emplace_back ("reason", reason);
      w.Sample ("fmp4ws_disconnects_total", l, double (n));
    }

  per_stream ("fmp4ws_sent_bytes_total", "counter",
              "Bytes written to viewers (frame headers included).",
              [] (const StreamMetrics &s) { return double (s.snap.totals.bytes_sent); });
  per_stream ("fmp4ws_sent_fragments_total", "counter",
              "Media fragments (moof+mdat) written whole to viewers, summed over viewers.",
              [] (const StreamMetrics &s) { return double (s.snap.totals.fragments_sent); });
  w.Family ("fmp4ws_dropped_fragments_total", "counter",
            "Fragments not sent, by reason: recover (a viewer's backlog dropped by "
            "recover-policy, or waiting for a keyframe; per viewer), overload (an I/O thread "
            "did not take it in time; per I/O thread).");
  for (const StreamMetrics &s : in.streams) {
    Labels l = base (s);
    l.emplace_back ("reason", "recover");
    w.Sample ("fmp4ws_dropped_fragments_total", l, double (s.snap.totals.fragments_dropped));
    l.back ().second = "overload";
    w.Sample ("fmp4ws_dropped_fragments_total", l, double (s.snap.overload_drops));
  }
  w.Family ("fmp4ws_skips_total", "counter",
            "Viewer backlog overflows (max-backlog-bytes or max-backlog-time exceeded), by "
            "reason: backlog.");
  for (const StreamMetrics &s : in.streams) {
    Labels l = base (s);
    l.emplace_back ("reason", "backlog");
    w.Sample ("fmp4ws_skips_total", l, double (s.snap.totals.skips));
  }

  // Histograms over the viewers connected now (a snapshot at scrape time: counts go down as
  // viewers leave, so read them with histogram_quantile () directly, not with rate ()).
  // A histogram per stream of one value per viewer connected now; a viewer whose `value`
  // is negative is left out.
  auto per_viewer = [&] (const char *name, const char *help, const std::vector<double> &buckets,
                         const std::function<double (const ClientSnapshot &)> &value) {
    w.Family (name, "histogram", help);
    for (const StreamMetrics &s : in.streams) {
      std::vector<double> v;
      for (const ClientSnapshot &c : s.snap.clients) {
        double x = value (c);
        if (x >= 0)
          v.push_back (x);
      }
      w.Histogram (name, base (s), buckets, v);
    }
  };
  per_viewer ("fmp4ws_viewer_backlog_bytes",
              "Bytes queued for each viewer connected now, not yet written to its socket.",
              kBacklogBytesBuckets,
              [] (const ClientSnapshot &c) { return double (c.backlog_bytes); });
  per_viewer ("fmp4ws_viewer_backlog_seconds",
              "Media time queued for each viewer connected now, in seconds.",
              kBacklogSecondsBuckets, [] (const ClientSnapshot &c) {
                return c.backlog_ns > 0 ? double (c.backlog_ns) / 1e9 : 0.0;
              });
  per_viewer ("fmp4ws_viewer_latency_seconds",
              "Live latency each viewer connected now last reported (buffered end minus current "
              "time, in seconds); viewers that never reported are left out.",
              kLatencySecondsBuckets, [] (const ClientSnapshot &c) {
                return c.stats.latency >= 0 ? c.stats.latency : -1.0;
              });

  per_stream ("fmp4ws_gop_cache_fragments", "gauge",
              "Fragments in the GOP cache (from the latest keyframe fragment).",
              [] (const StreamMetrics &s) { return double (s.snap.gop_fragments); });
  per_stream ("fmp4ws_gop_cache_bytes", "gauge", "Bytes in the GOP cache.",
              [] (const StreamMetrics &s) { return double (s.snap.gop_bytes); });

  if (in.publishers) {
    per_stream ("fmp4ws_publishing", "gauge", "1 while a publisher sends the stream, else 0.",
                [] (const StreamMetrics &s) { return s.publishing ? 1.0 : 0.0; });
    per_stream ("fmp4ws_publishers_total", "counter", "Publishers of the stream so far.",
                [] (const StreamMetrics &s) { return double (s.publishers); });
    w.Family ("fmp4ws_streams", "gauge", "Streams the server has now.");
    w.Sample ("fmp4ws_streams", {}, double (in.streams.size ()));
  }

  if (in.connections) {
    const ConnectionMetrics &c = *in.connections;
    w.Family ("fmp4ws_open_connections", "gauge",
              "Connections accepted and not yet closed (viewers and HTTP requests).");
    w.Sample ("fmp4ws_open_connections", {}, c.open_connections);
    w.Family ("fmp4ws_connection_budget", "gauge",
              "Most connections open at once (max-connections, or the descriptor limit less a "
              "reserve).");
    w.Sample ("fmp4ws_connection_budget", {}, c.connection_budget);
    w.Family ("fmp4ws_http_connections", "gauge",
              "Connections waiting for their request headers now.");
    w.Sample ("fmp4ws_http_connections", {}, c.http_connections);
    w.Family ("fmp4ws_http_connection_budget", "gauge",
              "Most connections waiting for their request headers at once "
              "(max-http-connections).");
    w.Sample ("fmp4ws_http_connection_budget", {}, c.http_connection_budget);
  }

  if (in.process) {
    const ProcessMetrics &p = *in.process;
    w.Family ("process_cpu_seconds_total", "counter", "User and system CPU time, in seconds.");
    w.Sample ("process_cpu_seconds_total", {}, p.cpu_seconds);
    w.Family ("process_resident_memory_bytes", "gauge", "Resident memory size, in bytes.");
    w.Sample ("process_resident_memory_bytes", {}, double (p.resident_bytes));
    w.Family ("process_open_fds", "gauge", "Open file descriptors.");
    w.Sample ("process_open_fds", {}, double (p.open_fds));
    w.Family ("process_max_fds", "gauge", "The file descriptor limit (RLIMIT_NOFILE).");
    w.Sample ("process_max_fds", {}, double (p.max_fds));
    w.Family ("process_start_time_seconds", "gauge",
              "Start time of the process since the Unix epoch, in seconds.");
    w.Sample ("process_start_time_seconds", {}, p.start_time_seconds);
  }
  return w.Take ();
}

}  // namespace fmp4ws::server
