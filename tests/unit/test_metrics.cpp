// GET /metrics' text (gst/server/metrics.h): the Prometheus text format 0.0.4 built from a
// Snapshot. The same text is checked by promtool in tests/check and tests/server.
#include <gtest/gtest.h>

#include <sstream>

#include "metrics.h"

using namespace fmp4ws::server;

namespace {

ClientSnapshot
client (uint64_t id, uint64_t backlog_bytes, int64_t backlog_ns, double latency)
{
  ClientSnapshot c;
  c.id = id;
  c.address = "127.0.0.1";
  c.backlog_bytes = backlog_bytes;
  c.backlog_ns = backlog_ns;
  c.stats.latency = latency;
  return c;
}

bool
has_line (const std::string &text, const std::string &line)
{
  std::istringstream in (text);
  for (std::string l; std::getline (in, l);)
    if (l == line)
      return true;
  return false;
}

StreamMetrics
sample_stream ()
{
  StreamMetrics s;
  s.snap.viewers = 3;
  s.snap.totals.connections = 7;
  s.snap.totals.bytes_sent = 123456789012ull;
  s.snap.totals.fragments_sent = 42;
  s.snap.totals.fragments_dropped = 5;
  s.snap.totals.skips = 2;
  s.snap.totals.disconnects["client closed (1001)"] = 4;
  s.snap.totals.disconnects["rejected: origin"] = 1;
  s.snap.totals.disconnects["rejected: token"] = 6;
  s.snap.overload_drops = 9;
  s.snap.gop_fragments = 4;
  s.snap.gop_bytes = 500000;
  s.snap.clients = {client (1, 1000, 40000000, 0.2), client (2, 300000, 3000000000, -1),
                    client (3, 100000000, 60000000000, 1.5)};
  return s;
}

}  // namespace

TEST (Metrics, LabelValuesAreEscaped)
{
  EXPECT_EQ (PrometheusLabelValue ("plain"), "plain");
  EXPECT_EQ (PrometheusLabelValue ("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ (PrometheusLabelValue ("tab\tstays"), "tab\tstays");
}

TEST (Metrics, Numbers)
{
  EXPECT_EQ (PrometheusNumber (0), "0");
  EXPECT_EQ (PrometheusNumber (123456789012.0), "123456789012");
  EXPECT_EQ (PrometheusNumber (0.05), "0.05");
  EXPECT_EQ (PrometheusNumber (1.0 / 0.0), "+Inf");
  EXPECT_EQ (PrometheusNumber (-1.0 / 0.0), "-Inf");
  EXPECT_EQ (PrometheusNumber (0.0 / 0.0), "NaN");
}

TEST (Metrics, SinkFamiliesFromASnapshot)
{
  MetricsInput in;
  in.streams.push_back (sample_stream ());
  in.connections = ConnectionMetrics{12, 960, 2, 480};
  std::string t = PrometheusText (in);
  EXPECT_TRUE (has_line (t, "# HELP fmp4ws_viewers Viewers connected now (WebSocket and /stream.mp4)."));
  EXPECT_TRUE (has_line (t, "# TYPE fmp4ws_viewers gauge"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewers 3"));
  EXPECT_TRUE (has_line (t, "# TYPE fmp4ws_viewer_connections_total counter"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_connections_total 7"));
  EXPECT_TRUE (has_line (t, "fmp4ws_sent_bytes_total 123456789012"));
  EXPECT_TRUE (has_line (t, "fmp4ws_sent_fragments_total 42"));
  // Every known refusal reason, zeros included.
  for (const char *r : {"budget", "http-connections", "per-address", "timeout", "max-clients",
                        "authorize"})
    EXPECT_TRUE (has_line (t, std::string ("fmp4ws_refused_connections_total{reason=\"") + r +
                                  "\"} 0"))
        << r;
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{reason=\"origin\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{reason=\"token\"} 6"));
  // Disconnects leave the refusals out.
  EXPECT_TRUE (has_line (t, "fmp4ws_disconnects_total{reason=\"client closed (1001)\"} 4"));
  EXPECT_EQ (t.find ("fmp4ws_disconnects_total{reason=\"rejected"), std::string::npos);
  EXPECT_TRUE (has_line (t, "fmp4ws_dropped_fragments_total{reason=\"recover\"} 5"));
  EXPECT_TRUE (has_line (t, "fmp4ws_dropped_fragments_total{reason=\"overload\"} 9"));
  EXPECT_TRUE (has_line (t, "fmp4ws_skips_total{reason=\"backlog\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_gop_cache_fragments 4"));
  EXPECT_TRUE (has_line (t, "fmp4ws_gop_cache_bytes 500000"));
  EXPECT_TRUE (has_line (t, "fmp4ws_open_connections 12"));
  EXPECT_TRUE (has_line (t, "fmp4ws_connection_budget 960"));
  EXPECT_TRUE (has_line (t, "fmp4ws_http_connections 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_http_connection_budget 480"));
  // Not asked for: no publishers, no process, no stream label.
  EXPECT_EQ (t.find ("fmp4ws_publish"), std::string::npos);
  EXPECT_EQ (t.find ("process_"), std::string::npos);
  EXPECT_EQ (t.find ("stream=\""), std::string::npos);
  EXPECT_EQ (t.back (), '\n');
}

TEST (Metrics, HistogramsAreCumulative)
{
  MetricsInput in;
  in.streams.push_back (sample_stream ());
  std::string t = PrometheusText (in);
  EXPECT_TRUE (has_line (t, "# TYPE fmp4ws_viewer_backlog_bytes histogram"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_bucket{le=\"16384\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_bucket{le=\"262144\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_bucket{le=\"1048576\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_bucket{le=\"67108864\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_sum 100301000"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_bytes_count 3"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_seconds_bucket{le=\"0.05\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_seconds_bucket{le=\"5\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_seconds_bucket{le=\"30\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_backlog_seconds_sum 63.04"));
  // The viewer that never reported is left out of the latency.
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_bucket{le=\"0.1\"} 0"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_bucket{le=\"0.25\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_bucket{le=\"2.5\"} 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_count 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_sum 1.7"));
}

TEST (Metrics, ServerLabelsStreamsAndReportsTheProcess)
{
  MetricsInput in;
  in.stream_label = true;
  in.publishers = true;
  StreamMetrics a = sample_stream ();
  a.stream = "(default)";
  a.publishing = true;
  a.publishers = 3;
  StreamMetrics b;
  b.stream = "we\"ird\\name\n";  // never a valid stream name, but escaped all the same
  in.streams = {a, b};
  Totals accept_loop;
  accept_loop.disconnects["rejected: budget"] = 11;
  in.unassigned_refusals = accept_loop;
  in.process = ProcessMetrics{1.5, 1 << 20, 17, 1024, 1700000000.25};
  std::string t = PrometheusText (in);
  EXPECT_TRUE (has_line (t, "fmp4ws_viewers{stream=\"(default)\"} 3"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewers{stream=\"we\\\"ird\\\\name\\n\"} 0"));
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{stream=\"(default)\",reason=\"token\"} 6"));
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{stream=\"\",reason=\"budget\"} 11"));
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{stream=\"\",reason=\"timeout\"} 0"));
  // The accept loop's reasons only there; the request-level ones only per stream.
  EXPECT_EQ (t.find ("{stream=\"(default)\",reason=\"budget\"}"), std::string::npos);
  EXPECT_EQ (t.find ("{stream=\"\",reason=\"token\"}"), std::string::npos);
  EXPECT_TRUE (has_line (t, "fmp4ws_refused_connections_total{stream=\"(default)\",reason=\"origin\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_publishing{stream=\"(default)\"} 1"));
  EXPECT_TRUE (has_line (t, "fmp4ws_publishers_total{stream=\"(default)\"} 3"));
  EXPECT_TRUE (has_line (t, "fmp4ws_streams 2"));
  EXPECT_TRUE (has_line (t, "fmp4ws_viewer_latency_seconds_count{stream=\"we\\\"ird\\\\name\\n\"} 0"));
  EXPECT_TRUE (has_line (t, "process_open_fds 17"));
  EXPECT_TRUE (has_line (t, "process_max_fds 1024"));
  EXPECT_TRUE (has_line (t, "process_resident_memory_bytes 1048576"));
  EXPECT_TRUE (has_line (t, "process_cpu_seconds_total 1.5"));
  EXPECT_TRUE (has_line (t, "process_start_time_seconds 1700000000.25"));
}

// Each family's samples together, right after its HELP and TYPE (the format requires it).
TEST (Metrics, FamiliesAreContiguous)
{
  MetricsInput in;
  in.stream_label = true;
  in.publishers = true;
  StreamMetrics a = sample_stream (), b = sample_stream ();
  a.stream = "a";
  b.stream = "b";
  in.streams = {a, b};
  in.connections = ConnectionMetrics{};
  in.process = ProcessMetrics{};
  std::istringstream lines (PrometheusText (in));
  std::string family;
  std::vector<std::string> seen;
  for (std::string l; std::getline (lines, l);) {
    if (l.rfind ("# TYPE ", 0) == 0) {
      family = l.substr (7, l.find (' ', 7) - 7);
      for (auto &f : seen)
        EXPECT_NE (f, family) << "family twice: " << family;
      seen.push_back (family);
      continue;
    }
    if (l.rfind ("# HELP ", 0) == 0)
      continue;
    ASSERT_FALSE (family.empty ()) << l;
    EXPECT_EQ (l.rfind (family, 0), 0u) << l << " outside " << family;
  }
  EXPECT_GE (seen.size (), 20u);
}
