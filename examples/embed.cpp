// Embedding gst-fmp4ws in a program: builds the in-pipeline example with the GStreamer API,
// logs viewers coming and going, and prints the sink's stats every 5 s.
//   fmp4ws-embed-example [PORT]
#include <gst/gst.h>

#include <cstdio>
#include <cstdlib>

static void
on_client_added (GstElement *, guint64 id, const gchar *address, gpointer)
{
  g_print ("viewer %" G_GUINT64_FORMAT " joined from %s\n", id, address);
}

static void
on_client_removed (GstElement *, guint64 id, const gchar *address, const gchar *reason, gpointer)
{
  g_print ("viewer %" G_GUINT64_FORMAT " (%s) left: %s\n", id, address, reason);
}

static gboolean
print_stats (gpointer user_data)
{
  GstStructure *stats = NULL;
  g_object_get (user_data, "stats", &stats, NULL);
  guint viewers = 0;
  guint64 bytes = 0, dropped = 0;
  gst_structure_get_uint (stats, "viewers", &viewers);
  gst_structure_get_uint64 (stats, "bytes-sent", &bytes);
  gst_structure_get_uint64 (stats, "fragments-dropped", &dropped);
  g_print ("%u viewer(s), %" G_GUINT64_FORMAT " bytes sent, %" G_GUINT64_FORMAT
           " fragments dropped for slow viewers\n",
           viewers, bytes, dropped);
  gst_structure_free (stats);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_bus (GstBus *, GstMessage *msg, gpointer loop)
{
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err;
    gchar *dbg;
    gst_message_parse_error (msg, &err, &dbg);
    g_printerr ("error: %s (%s)\n", err->message, dbg);
    g_error_free (err);
    g_free (dbg);
    g_main_loop_quit ((GMainLoop *) loop);
  } else if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
    g_main_loop_quit ((GMainLoop *) loop);
  }
  return TRUE;
}

int
main (int argc, char **argv)
{
  gst_init (&argc, &argv);
  guint port = argc > 1 ? guint (atoi (argv[1])) : 8080;
  GError *err = NULL;
  GstElement *pipeline = gst_parse_launch (
      "videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1,format=I420 "
      "! x264enc tune=zerolatency key-int-max=30 ! queue ! mp4mux name=mux fragment-duration=700 "
      "! fmp4initcache ! websocketsink name=sink "
      "audiotestsrc is-live=true volume=0.2 ! audio/x-raw,rate=48000 ! avenc_aac ! queue ! mux.",
      &err);
  if (!pipeline) {
    g_printerr ("could not build the pipeline: %s\n", err->message);
    return 1;
  }
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  g_object_set (sink, "port", port, NULL);
  g_signal_connect (sink, "client-added", G_CALLBACK (on_client_added), NULL);
  g_signal_connect (sink, "client-removed", G_CALLBACK (on_client_removed), NULL);

  GMainLoop *loop = g_main_loop_new (NULL, FALSE);
  GstBus *bus = gst_element_get_bus (pipeline);
  gst_bus_add_watch (bus, on_bus, loop);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    g_printerr ("could not start (is port %u free?)\n", port);
    return 1;
  }
  guint bound = 0;
  g_object_get (sink, "current-port", &bound, NULL);
  g_print ("open http://localhost:%u/\n", bound);
  g_timeout_add_seconds (5, print_stats, sink);
  g_main_loop_run (loop);

  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_bus_remove_watch (bus);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_main_loop_unref (loop);
  return 0;
}
