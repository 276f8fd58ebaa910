/* GstHarness tests of fmp4initcache on streams from real encoders. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

/* A buffer wrapping (not copying) bytes [offset, offset+size) of `data`. */
static GstBuffer *
wrap (GBytes *data, gsize offset, gsize size)
{
  GBytes *part = g_bytes_new_from_bytes (data, offset, size);
  GstBuffer *b = gst_buffer_new_wrapped_bytes (part);
  g_bytes_unref (part);
  return b;
}

static GBytes *
read_fixture (const gchar *name)
{
  gchar *path = g_build_filename (FIXTURES_DIR, name, NULL);
  gchar *data = NULL;
  gsize size = 0;
  GError *err = NULL;
  fail_unless (g_file_get_contents (path, &data, &size, &err), "%s: %s", path,
               err ? err->message : "");
  g_free (path);
  return g_bytes_new_take (data, size);
}

typedef struct
{
  GPtrArray *buffers; /* output buffers, in order */
  GPtrArray *caps;    /* every caps event seen */
  GList *messages;    /* bus messages (warnings, errors) */
  GstFlowReturn last_flow;
} Output;

static void
output_free (Output *o)
{
  g_ptr_array_unref (o->buffers);
  g_ptr_array_unref (o->caps);
  g_list_free_full (o->messages, (GDestroyNotify) gst_message_unref);
  g_free (o);
}

/* Pushes `data` in chunks (chunk_fn gives each size), then EOS, into fmp4initcache with
 * `props` ("name=value ..."); collects everything. */
static Output *
run (GBytes *data, gsize (*chunk_fn) (guint i, gpointer user), gpointer user,
     const gchar *props)
{
  gchar *desc = g_strdup_printf ("fmp4initcache %s", props ? props : "");
  GstHarness *h = gst_harness_new_parse (desc);
  GstBus *bus = gst_bus_new ();
  Output *o = g_new0 (Output, 1);
  gsize size = g_bytes_get_size (data), pos = 0;
  GstEvent *ev;
  GstBuffer *buf;
  GstMessage *msg;

  o->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  o->caps = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_caps_unref);
  o->last_flow = GST_FLOW_OK;
  g_free (desc);
  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/quicktime");

  for (guint i = 0; pos < size && o->last_flow == GST_FLOW_OK; i++) {
    gsize n = chunk_fn (i, user);
    n = MIN (n, size - pos);
    /* Wrap, do not copy: lets the zero-copy test see where output bytes live. */
    GstBuffer *in = wrap (data, pos, n);
    o->last_flow = gst_harness_push (h, in);
    pos += n;
  }
  if (o->last_flow == GST_FLOW_OK)
    gst_harness_push_event (h, gst_event_new_eos ());

  while ((ev = gst_harness_try_pull_event (h))) {
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CAPS) {
      GstCaps *caps;
      gst_event_parse_caps (ev, &caps);
      g_ptr_array_add (o->caps, gst_caps_ref (caps));
    }
    gst_event_unref (ev);
  }
  while ((buf = gst_harness_try_pull (h)))
    g_ptr_array_add (o->buffers, buf);
  while ((msg = gst_bus_pop (bus)))
    o->messages = g_list_append (o->messages, msg);

  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  return o;
}

static gsize
whole (guint i, gpointer user)
{
  (void) i;
  (void) user;
  return G_MAXSIZE;
}

static gsize
fixed (guint i, gpointer user)
{
  (void) i;
  return GPOINTER_TO_SIZE (user);
}

static gsize
random_size (guint i, gpointer user)
{
  (void) i;
  return 1 + g_rand_int_range ((GRand *) user, 0, 9000);
}

static const gchar *
first_message_text (Output *o, GstMessageType type)
{
  static gchar text[1024];
  for (GList *l = o->messages; l; l = l->next) {
    GstMessage *m = l->data;
    if (GST_MESSAGE_TYPE (m) != type)
      continue;
    GError *err = NULL;
    gchar *dbg = NULL;
    if (type == GST_MESSAGE_ERROR)
      gst_message_parse_error (m, &err, &dbg);
    else
      gst_message_parse_warning (m, &err, &dbg);
    g_snprintf (text, sizeof text, "%s | %s", err->message, dbg ? dbg : "");
    g_error_free (err);
    g_free (dbg);
    return text;
  }
  return NULL;
}

static void
assert_same_output (Output *a, Output *b, const gchar *what)
{
  fail_unless (a->buffers->len == b->buffers->len, "%s: %u buffers instead of %u", what,
               b->buffers->len, a->buffers->len);
  for (guint i = 0; i < a->buffers->len; i++) {
    GstBuffer *x = g_ptr_array_index (a->buffers, i), *y = g_ptr_array_index (b->buffers, i);
    fail_unless (gst_buffer_get_size (x) == gst_buffer_get_size (y), "%s: buffer %u size", what,
                 i);
    GstMapInfo mx, my;
    gst_buffer_map (x, &mx, GST_MAP_READ);
    gst_buffer_map (y, &my, GST_MAP_READ);
    fail_unless (memcmp (mx.data, my.data, mx.size) == 0, "%s: buffer %u bytes", what, i);
    gst_buffer_unmap (x, &mx);
    gst_buffer_unmap (y, &my);
    const guint mask =
        GST_BUFFER_FLAG_HEADER | GST_BUFFER_FLAG_DELTA_UNIT | GST_BUFFER_FLAG_DISCONT;
    fail_unless ((GST_BUFFER_FLAGS (x) & mask) == (GST_BUFFER_FLAGS (y) & mask),
                 "%s: buffer %u flags", what, i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (x), GST_BUFFER_PTS (y));
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (x), GST_BUFFER_OFFSET (y));
  }
}

GST_START_TEST (test_chunkings_give_identical_output)
{
  const gchar *fixtures[] = {"notes-g30.mp4", "mp4mux-av.mp4", "every-frame.mp4",
                             "separate-moof.mp4", "audio-only.mp4", "vp9.mp4"};
  GRand *rng = g_rand_new_with_seed (42);
  for (guint f = 0; f < G_N_ELEMENTS (fixtures); f++) {
    GBytes *data = read_fixture (fixtures[f]);
    Output *ref = run (data, whole, NULL, NULL);
    fail_unless (ref->buffers->len > 2, "%s: too few buffers", fixtures[f]);
    fail_unless (first_message_text (ref, GST_MESSAGE_WARNING) == NULL, "%s: %s", fixtures[f],
                 first_message_text (ref, GST_MESSAGE_WARNING));
    gsize sizes[] = {1, 7, 4096};
    for (guint s = 0; s < G_N_ELEMENTS (sizes); s++) {
      Output *o = run (data, fixed, GSIZE_TO_POINTER (sizes[s]), NULL);
      gchar *what = g_strdup_printf ("%s in %" G_GSIZE_FORMAT "-byte chunks", fixtures[f],
                                     sizes[s]);
      assert_same_output (ref, o, what);
      g_free (what);
      output_free (o);
    }
    Output *o = run (data, random_size, rng, NULL);
    assert_same_output (ref, o, fixtures[f]);
    output_free (o);
    output_free (ref);
    g_bytes_unref (data);
  }
  g_rand_free (rng);
}
GST_END_TEST;

GST_START_TEST (test_caps_and_flags)
{
  GBytes *data = read_fixture ("notes-g30.mp4");
  Output *o = run (data, fixed, GSIZE_TO_POINTER (4096), NULL);
  fail_unless_equals_int (o->caps->len, 1);
  GstStructure *s = gst_caps_get_structure (g_ptr_array_index (o->caps, 0), 0);
  fail_unless (gst_structure_has_name (s, "video/quicktime"));
  fail_unless_equals_string (gst_structure_get_string (s, "variant"), "iso-fragmented");
  fail_unless_equals_string (gst_structure_get_string (s, "codecs"), "avc1.42c00a, mp4a.40.2");
  fail_unless_equals_string (gst_structure_get_string (s, "mime"),
                             "video/mp4; codecs=\"avc1.42c00a, mp4a.40.2\"");
  gint w = 0, hgt = 0;
  fail_unless (gst_structure_get_int (s, "width", &w) && gst_structure_get_int (s, "height", &hgt));
  fail_unless_equals_int (w, 128);
  fail_unless_equals_int (hgt, 72);

  /* streamheader = the first buffer, flagged HEADER. */
  const GValue *sh = gst_structure_get_value (s, "streamheader");
  fail_unless (sh && GST_VALUE_HOLDS_ARRAY (sh) && gst_value_array_get_size (sh) == 1);
  GstBuffer *header = gst_value_get_buffer (gst_value_array_get_value (sh, 0));
  GstBuffer *first = g_ptr_array_index (o->buffers, 0);
  fail_unless (GST_BUFFER_FLAG_IS_SET (first, GST_BUFFER_FLAG_HEADER));
  fail_if (GST_BUFFER_FLAG_IS_SET (first, GST_BUFFER_FLAG_DISCONT));
  fail_unless (gst_buffer_get_size (header) == gst_buffer_get_size (first));
  fail_unless (gst_buffer_memcmp (first, 0, g_bytes_get_data (data, NULL), 28) == 0); /* ftyp */

  /* Fragments: the first starts at 0 on a keyframe; keyframe fragments at 0 s and ~1 s only. */
  guint keys = 0;
  for (guint i = 1; i < o->buffers->len; i++) {
    GstBuffer *b = g_ptr_array_index (o->buffers, i);
    fail_if (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_HEADER));
    fail_unless (GST_BUFFER_PTS_IS_VALID (b) && GST_BUFFER_DURATION_IS_VALID (b));
    fail_unless_equals_uint64 (GST_BUFFER_OFFSET (b), i - 1); /* mfhd sequence */
    if (!GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT)) {
      keys++;
      fail_unless (GST_BUFFER_PTS (b) == 0 ||
                   (GST_BUFFER_PTS (b) > 950 * GST_MSECOND &&
                    GST_BUFFER_PTS (b) < 1050 * GST_MSECOND),
                   "unexpected keyframe at %" GST_TIME_FORMAT, GST_TIME_ARGS (GST_BUFFER_PTS (b)));
    }
    if (i == 1)
      fail_unless_equals_uint64 (GST_BUFFER_PTS (b), 0);
  }
  fail_unless_equals_int (keys, 2);
  output_free (o);
  g_bytes_unref (data);
}
GST_END_TEST;

GST_START_TEST (test_properties)
{
  GBytes *data = read_fixture ("vp9.mp4");
  GstHarness *h = gst_harness_new ("fmp4initcache");
  gchar *codecs = NULL, *mime = NULL;
  GstBuffer *init = NULL;
  guint w = 0, hgt = 0;
  gst_harness_set_src_caps_str (h, "video/quicktime");
  g_object_get (h->element, "codecs", &codecs, "init-segment", &init, NULL);
  fail_unless (codecs == NULL && init == NULL);
  fail_unless_equals_int (gst_harness_push (h, wrap (data, 0,
                                                g_bytes_get_size (data))), GST_FLOW_OK);
  g_object_get (h->element, "codecs", &codecs, "mime-type", &mime, "init-segment", &init,
                "width", &w, "height", &hgt, NULL);
  fail_unless_equals_string (codecs, "vp09.00.10.08");
  fail_unless_equals_string (mime, "video/mp4; codecs=\"vp09.00.10.08\"");
  fail_unless (init != NULL && gst_buffer_get_size (init) > 100);
  fail_unless_equals_int (w, 128);
  fail_unless_equals_int (hgt, 72);
  g_free (codecs);
  g_free (mime);
  gst_buffer_unref (init);
  gst_harness_teardown (h);
  g_bytes_unref (data);
}
GST_END_TEST;

GST_START_TEST (test_restart_gives_new_caps)
{
  GBytes *a = read_fixture ("notes-g30.mp4"), *b = read_fixture ("vp9.mp4");
  GByteArray *cat = g_byte_array_new ();
  g_byte_array_append (cat, g_bytes_get_data (a, NULL), g_bytes_get_size (a));
  g_byte_array_append (cat, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  GBytes *data = g_byte_array_free_to_bytes (cat);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (4096), NULL);
  fail_unless_equals_int (o->caps->len, 2);
  GstStructure *s2 = gst_caps_get_structure (g_ptr_array_index (o->caps, 1), 0);
  fail_unless_equals_string (gst_structure_get_string (s2, "codecs"), "vp09.00.10.08");
  guint headers = 0;
  for (guint i = 0; i < o->buffers->len; i++) {
    GstBuffer *buf = g_ptr_array_index (o->buffers, i);
    if (!GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_HEADER))
      continue;
    headers++;
    /* A restart's header is DISCONT; the fragment after any header is a keyframe. */
    fail_unless_equals_int (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_DISCONT), headers > 1);
    fail_unless (i + 1 < o->buffers->len);
    fail_if (GST_BUFFER_FLAG_IS_SET (g_ptr_array_index (o->buffers, i + 1),
                                     GST_BUFFER_FLAG_DELTA_UNIT));
  }
  fail_unless_equals_int (headers, 2);
  output_free (o);
  g_bytes_unref (data);
  g_bytes_unref (a);
  g_bytes_unref (b);
}
GST_END_TEST;

GST_START_TEST (test_zero_copy)
{
  /* One input buffer: each fragment's mdat must be memory of the input, not a copy. */
  GBytes *data = read_fixture ("empty-moov.mp4");
  gsize size;
  const guint8 *in = g_bytes_get_data (data, &size);
  Output *o = run (data, whole, NULL, NULL);
  fail_unless (o->buffers->len == 3);
  for (guint i = 1; i < o->buffers->len; i++) {
    GstBuffer *b = g_ptr_array_index (o->buffers, i);
    guint n = gst_buffer_n_memory (b);
    GstMemory *last = gst_buffer_peek_memory (b, n - 1);
    GstMapInfo map;
    fail_unless (gst_memory_map (last, &map, GST_MAP_READ));
    fail_unless (map.data >= in && map.data + map.size <= in + size,
                 "fragment %u's mdat was copied", i);
    fail_unless (map.size > 1000);
    gst_memory_unmap (last, &map);
  }
  output_free (o);
  g_bytes_unref (data);
}
GST_END_TEST;

static GBytes *
concat3 (const void *a, gsize na, GBytes *b, const void *c, gsize nc)
{
  GByteArray *cat = g_byte_array_new ();
  g_byte_array_append (cat, a, na);
  g_byte_array_append (cat, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  if (c)
    g_byte_array_append (cat, c, nc);
  return g_byte_array_free_to_bytes (cat);
}

GST_START_TEST (test_garbage_before_first_box_warns_and_resyncs)
{
  GBytes *clean = read_fixture ("tiny-notes.mp4");
  const gchar garbage[] = "HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n\r\n";
  GBytes *data = concat3 (garbage, strlen (garbage), clean, NULL, 0);
  Output *ref = run (clean, whole, NULL, NULL);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (7), NULL);
  const gchar *w = first_message_text (o, GST_MESSAGE_WARNING);
  fail_unless (w && strstr (w, "garbage before the first box"), "%s", w);
  fail_unless (first_message_text (o, GST_MESSAGE_ERROR) == NULL);
  assert_same_output (ref, o, "garbage prefix");
  output_free (o);
  output_free (ref);
  g_bytes_unref (data);
  g_bytes_unref (clean);
}
GST_END_TEST;

GST_START_TEST (test_random_bytes_error)
{
  guint8 *junk = g_malloc (6 << 20);
  GRand *rng = g_rand_new_with_seed (3);
  for (gsize i = 0; i < (6u << 20); i++)
    junk[i] = (guint8) g_rand_int (rng);
  GBytes *data = g_bytes_new_take (junk, 6 << 20);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (65536), NULL);
  fail_unless_equals_int (o->last_flow, GST_FLOW_ERROR);
  const gchar *e = first_message_text (o, GST_MESSAGE_ERROR);
  fail_unless (e && strstr (e, "not a fragmented MP4"), "%s", e);
  fail_unless_equals_int (o->buffers->len, 0);
  output_free (o);
  g_bytes_unref (data);
  g_rand_free (rng);
}
GST_END_TEST;

GST_START_TEST (test_box_larger_than_max_box_size_errors)
{
  /* A stream whose last box claims 1 MiB with max-box-size=64 KiB. */
  GBytes *clean = read_fixture ("tiny-notes.mp4");
  const guint8 big_mdat[] = {0x00, 0x10, 0x00, 0x00, 'm', 'd', 'a', 't'};
  GBytes *data = concat3 (NULL, 0, clean, big_mdat, sizeof big_mdat);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (4096), "max-box-size=65536");
  fail_unless_equals_int (o->last_flow, GST_FLOW_ERROR);
  const gchar *e = first_message_text (o, GST_MESSAGE_ERROR);
  fail_unless (e && strstr (e, "max-box-size") && strstr (e, "'mdat'"), "%s", e);
  output_free (o);
  g_bytes_unref (data);
  g_bytes_unref (clean);
}
GST_END_TEST;

GST_START_TEST (test_truncated_stream_warns_at_eos)
{
  GBytes *clean = read_fixture ("tiny-notes.mp4");
  GBytes *data = g_bytes_new_from_bytes (clean, 0, g_bytes_get_size (clean) - 100);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (4096), NULL);
  const gchar *w = first_message_text (o, GST_MESSAGE_WARNING);
  fail_unless (w && strstr (w, "middle of a box"), "%s", w);
  fail_unless (first_message_text (o, GST_MESSAGE_ERROR) == NULL);
  output_free (o);
  g_bytes_unref (data);
  g_bytes_unref (clean);
}
GST_END_TEST;

GST_START_TEST (test_not_fragmented_error)
{
  /* A plain (non-fragmented) MP4: moov without mvex. */
  gchar *path = g_build_filename (g_get_tmp_dir (), "fmp4ws-plain.mp4", NULL);
  gchar *cmd = g_strdup_printf ("ffmpeg -hide_banner -loglevel error -y -f lavfi -i "
                                "testsrc2=size=64x36:rate=10 -t 0.5 -c:v libx264 -f mp4 "
                                "-movflags faststart %s", path);
  gint status = -1;
  fail_unless (g_spawn_command_line_sync (cmd, NULL, NULL, &status, NULL) && status == 0,
               "ffmpeg failed: %s", cmd);
  gchar *contents;
  gsize len;
  fail_unless (g_file_get_contents (path, &contents, &len, NULL));
  GBytes *data = g_bytes_new_take (contents, len);
  Output *o = run (data, fixed, GSIZE_TO_POINTER (4096), NULL);
  fail_unless_equals_int (o->last_flow, GST_FLOW_ERROR);
  const gchar *e = first_message_text (o, GST_MESSAGE_ERROR);
  fail_unless (e && strstr (e, "not fragmented MP4") && strstr (e, "frag_keyframe"), "%s", e);
  output_free (o);
  g_bytes_unref (data);
  g_unlink (path);
  g_free (path);
  g_free (cmd);
}
GST_END_TEST;

GST_START_TEST (test_flush_resets)
{
  GBytes *data = read_fixture ("tiny-notes.mp4");
  GstHarness *h = gst_harness_new ("fmp4initcache");
  gst_harness_set_src_caps_str (h, "video/quicktime");
  /* Half a stream, flush, then the whole stream: output as if the first half never came. */
  gst_harness_push (h, wrap (data, 0, 3000));
  gst_harness_push_event (h, gst_event_new_flush_start ());
  gst_harness_push_event (h, gst_event_new_flush_stop (TRUE));
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_BYTES);
  gst_harness_push_event (h, gst_event_new_segment (&seg));
  GstBuffer *b;
  while ((b = gst_harness_try_pull (h)))
    gst_buffer_unref (b);
  fail_unless_equals_int (gst_harness_push (h, wrap (data, 0,
                                                g_bytes_get_size (data))), GST_FLOW_OK);
  b = gst_harness_pull (h);
  fail_unless (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_HEADER));
  gst_buffer_unref (b);
  b = gst_harness_pull (h);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (b), 0);
  fail_if (GST_BUFFER_FLAG_IS_SET (b, GST_BUFFER_FLAG_DELTA_UNIT));
  gst_buffer_unref (b);
  gst_harness_teardown (h);
  g_bytes_unref (data);
}
GST_END_TEST;

/* Size of the init segment (every top-level box up to and including the moov). */
static gsize
init_size (GBytes *data)
{
  gsize size = 0, pos = 0;
  const guint8 *d = g_bytes_get_data (data, &size);
  while (pos + 8 <= size) {
    guint32 box = GST_READ_UINT32_BE (d + pos);
    gboolean moov = memcmp (d + pos + 4, "moov", 4) == 0;
    fail_unless (box >= 8);
    pos += box;
    if (moov)
      return pos;
  }
  fail ("no moov");
  return 0;
}

/* Only the init segment, then nothing: one warning naming `fix`, and the same text sent
 * downstream as the fmp4ws-diagnostic out-of-band event. */
static void
check_no_fragment_warning (const gchar *fixture, const gchar *fix)
{
  GBytes *data = read_fixture (fixture);
  GstHarness *h = gst_harness_new_parse ("fmp4initcache no-fragment-timeout=50");
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;
  GstEvent *ev;
  gboolean saw_event = FALSE;

  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/quicktime");
  fail_unless_equals_int (gst_harness_push (h, wrap (data, 0, init_size (data))), GST_FLOW_OK);
  /* bounded wait for the check to fire (it is due after 50 ms) */
  msg = gst_bus_timed_pop_filtered (bus, 30 * GST_SECOND, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "%s: no warning after the init segment alone", fixture);
  gst_message_parse_warning (msg, &err, &debug);
  fail_unless (strstr (err->message, "No fragment after the init segment") != NULL, "%s",
               err->message);
  fail_unless (debug && strstr (debug, fix) != NULL, "%s: '%s' does not name %s", fixture,
               debug, fix);
  /* The element posts the warning, then pushes the event (on its clock thread): wait for it
   * (gst_harness_pull_event: NULL after the harness's 60 s bound), not just look. */
  while (!saw_event && (ev = gst_harness_pull_event (h))) {
    const GstStructure *st = gst_event_get_structure (ev);
    if (GST_EVENT_TYPE (ev) == GST_EVENT_CUSTOM_DOWNSTREAM_OOB && st &&
        gst_structure_has_name (st, "fmp4ws-diagnostic")) {
      const gchar *m = gst_structure_get_string (st, "message");
      fail_unless (m && strstr (debug, m) != NULL, "event '%s' is not the warning's text", m);
      saw_event = TRUE;
    }
    gst_event_unref (ev);
  }
  fail_unless (saw_event, "no fmp4ws-diagnostic event downstream");
  /* one warning only */
  gst_message_unref (msg);
  fail_unless (gst_bus_pop_filtered (bus, GST_MESSAGE_WARNING) == NULL);
  g_clear_error (&err);
  g_free (debug);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  gst_harness_teardown (h);
  g_bytes_unref (data);
}

GST_START_TEST (test_no_fragment_after_init_warns_with_the_fix)
{
  check_no_fragment_warning ("audio-only.mp4", "-frag_duration 500000");
  check_no_fragment_warning ("notes-g250.mp4", "-g ");
}
GST_END_TEST;

GST_START_TEST (test_no_fragment_timeout_zero_disables)
{
  GBytes *data = read_fixture ("audio-only.mp4");
  /* a whole stream with the check off, and one with the default (5 s) where the fragments
   * come at once: no warning either way */
  Output *o = run (data, whole, NULL, "no-fragment-timeout=0");
  fail_unless (o->messages == NULL);
  output_free (o);
  o = run (data, whole, NULL, NULL);
  fail_unless (o->messages == NULL);
  output_free (o);
  g_bytes_unref (data);
}
GST_END_TEST;

/* ---- Normalisation (issue 13): moofs rewritten to movie-fragment-relative addressing. ---- */

static guint32
rd32 (const guint8 *p)
{
  return GST_READ_UINT32_BE (p);
}

/* Pushes `data` whole (one input buffer), then EOS; keeps the element for its properties. */
static GstHarness *
run_whole (GBytes *data, const gchar *props, GPtrArray *buffers, GList **messages)
{
  gchar *desc = g_strdup_printf ("fmp4initcache name=cache %s", props ? props : "");
  GstHarness *h = gst_harness_new_parse (desc);
  GstBus *bus = gst_bus_new ();
  GstBuffer *buf;
  GstMessage *msg;
  g_free (desc);
  gst_element_set_bus (h->element, bus);
  gst_harness_set_src_caps_str (h, "video/quicktime");
  fail_unless_equals_int (gst_harness_push (h, wrap (data, 0, g_bytes_get_size (data))),
                          GST_FLOW_OK);
  gst_harness_push_event (h, gst_event_new_eos ());
  while ((buf = gst_harness_try_pull (h)))
    g_ptr_array_add (buffers, buf);
  while ((msg = gst_bus_pop (bus)))
    *messages = g_list_append (*messages, msg);
  gst_element_set_bus (h->element, NULL);
  gst_object_unref (bus);
  return h;
}

static guint64
stat_of (GstHarness *h, const gchar *field)
{
  GstStructure *st = NULL;
  guint64 v = 0;
  GstElement *cache = gst_bin_get_by_name (GST_BIN (h->element), "cache");
  fail_unless (cache != NULL);
  g_object_get (cache, "stats", &st, NULL);
  gst_object_unref (cache);
  fail_unless (st != NULL);
  fail_unless (gst_structure_get_uint64 (st, field, &v), "no %s in stats", field);
  gst_structure_free (st);
  return v;
}

/* ffprobe's packet count per stream ("30,45,") of a file. */
static gchar *
probe_packets (const gchar *path)
{
  gchar *cmd = g_strdup_printf ("ffprobe -v error -count_packets -show_entries "
                                "stream=nb_read_packets -of csv=p=0 '%s'", path);
  gchar *out = NULL;
  gint status = 0;
  GError *err = NULL;
  fail_unless (g_spawn_command_line_sync (cmd, &out, NULL, &status, &err), "%s: %s", cmd,
               err ? err->message : "");
  fail_unless (g_spawn_check_wait_status (status, NULL), "%s failed", cmd);
  g_free (cmd);
  g_strdelimit (out, "\n", ',');
  return out;
}

GST_START_TEST (test_normalised_output_keeps_every_sample)
{
  /* name, reason in the info message, ffprobe's count of the input if it reads it wrong */
  const gchar *cases[][3] = {
      {"absolute-base.mp4", "base_data_offset", NULL},
      {"omit-tfhd-offset.mp4", "several trafs", NULL},
      {"realworld/02_ffmpeg-lavf58_h264-aac_partially-fragmented.mp4", "base_data_offset", NULL},
      /* ffmpeg reads GPAC 0.5's second traf as the spec says (from the end of the first traf's
       * data) and finds 88 audio packets, with decode errors: the trun sample counts are 82 and
       * 119, and our output has them all, decoded without an error. */
      {"realworld/08_gpac050_h264-aac_2traf_implicit-base_sidx-per-frag.mp4", "several trafs",
       "82,119,"},
      {"realworld/22_ffmpeg-lavf60_ismv-smooth_h264-aac_tfxd-uuid_trun-v1-neg.mp4", "tfdt", NULL},
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    GBytes *data = read_fixture (cases[c][0]);
    gsize in_size;
    const guint8 *in = g_bytes_get_data (data, &in_size);
    GPtrArray *buffers = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
    GList *messages = NULL;
    GstHarness *h = run_whole (data, NULL, buffers, &messages);

    /* One info message per kind of rewrite, naming it. */
    guint infos = 0;
    for (GList *l = messages; l; l = l->next) {
      GstMessage *m = l->data;
      fail_if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_ERROR, "%s: error", cases[c][0]);
      fail_if (GST_MESSAGE_TYPE (m) == GST_MESSAGE_WARNING, "%s: warning", cases[c][0]);
      if (GST_MESSAGE_TYPE (m) != GST_MESSAGE_INFO)
        continue;
      GError *err = NULL;
      gchar *dbg = NULL;
      gst_message_parse_info (m, &err, &dbg);
      fail_unless (strstr (dbg, cases[c][1]) != NULL, "%s: info '%s'", cases[c][0], dbg);
      infos++;
      g_error_free (err);
      g_free (dbg);
    }
    fail_unless_equals_int (infos, 1);
    guint64 fragments = stat_of (h, "fragments");
    fail_unless_equals_uint64 (fragments, buffers->len - 1);
    fail_unless (stat_of (h, "fragments-normalized") > 0);
    fail_unless_equals_uint64 (stat_of (h, "discontinuities"), 0);
    fail_unless_equals_uint64 (stat_of (h, "init-segments"), 1);

    /* The mdat is never copied: the last memory of each fragment is the input's. */
    for (guint i = 1; i < buffers->len; i++) {
      GstBuffer *b = g_ptr_array_index (buffers, i);
      GstMemory *last = gst_buffer_peek_memory (b, gst_buffer_n_memory (b) - 1);
      GstMapInfo map;
      fail_unless (gst_memory_map (last, &map, GST_MAP_READ));
      if (i > 1 || !strstr (cases[c][0], "/02_")) /* 02: the moov's mdat, also shared */
        fail_unless (map.data >= in && map.data + map.size <= in + in_size,
                     "%s: fragment %u's mdat was copied", cases[c][0], i);
      gst_memory_unmap (last, &map);
    }

    /* Every sample is there: ffprobe counts the same packets in the output as in the input. */
    gchar *out_path = g_build_filename (g_get_tmp_dir (), "fmp4ws-normalised-XXXXXX.mp4", NULL);
    gint fd = g_mkstemp (out_path);
    fail_unless (fd >= 0);
    for (guint i = 0; i < buffers->len; i++) {
      GstBuffer *b = g_ptr_array_index (buffers, i);
      GstMapInfo map;
      gst_buffer_map (b, &map, GST_MAP_READ);
      fail_unless (write (fd, map.data, map.size) == (gssize) map.size);
      gst_buffer_unmap (b, &map);
    }
    close (fd);
    gchar *in_path = g_build_filename (FIXTURES_DIR, cases[c][0], NULL);
    gchar *want = cases[c][2] ? g_strdup (cases[c][2]) : probe_packets (in_path);
    gchar *got = probe_packets (out_path);
    fail_unless (g_str_equal (want, got), "%s: ffprobe packets %s in the input, %s out",
                 cases[c][0], want, got);
    /* and ffmpeg decodes it without a word */
    gchar *cmd = g_strdup_printf ("ffmpeg -v error -i '%s' -f null -", out_path);
    gchar *err_out = NULL;
    gint status = 0;
    fail_unless (g_spawn_command_line_sync (cmd, NULL, &err_out, &status, NULL));
    fail_unless (g_spawn_check_wait_status (status, NULL) && err_out[0] == '\0',
                 "%s: ffmpeg says: %s", cases[c][0], err_out);
    g_free (cmd);
    g_free (err_out);
    g_unlink (out_path);
    g_free (want);
    g_free (got);
    g_free (in_path);
    g_free (out_path);
    gst_harness_teardown (h);
    g_list_free_full (messages, (GDestroyNotify) gst_message_unref);
    g_ptr_array_unref (buffers);
    g_bytes_unref (data);
  }
}
GST_END_TEST;

/* Sets, from moof `from` on, each track's tfdt to tfdt - (its tfdt in moof `from`): the
 * timeline starts again at 0 there, as an encoder that resets does (tfdt v1 only). */
static GBytes *
restart_timestamps_at (GBytes *data, guint from)
{
  gsize size = 0;
  const guint8 *orig = g_bytes_get_data (data, &size);
  guint8 *b = g_memdup2 (orig, size);
  guint64 base[8] = {0};
  guint32 ids[8] = {0};
  guint moof = 0;
  for (gsize p = 0; p + 8 <= size; p += rd32 (b + p)) {
    if (memcmp (b + p + 4, "moof", 4) != 0)
      continue;
    if (moof++ < from)
      continue;
    for (gsize q = p + 8; q < p + rd32 (b + p); q += rd32 (b + q)) {
      if (memcmp (b + q + 4, "traf", 4) != 0)
        continue;
      guint32 id = 0;
      for (gsize r = q + 8; r < q + rd32 (b + q); r += rd32 (b + r)) {
        if (memcmp (b + r + 4, "tfhd", 4) == 0)
          id = rd32 (b + r + 12);
        if (memcmp (b + r + 4, "tfdt", 4) != 0)
          continue;
        fail_unless (b[r + 8] == 1);
        guint64 t = GST_READ_UINT64_BE (b + r + 12);
        guint k = 0;
        while (k < 8 && ids[k] && ids[k] != id)
          k++;
        fail_unless (k < 8);
        if (!ids[k]) {
          ids[k] = id;
          base[k] = t;
        }
        GST_WRITE_UINT64_BE (b + r + 12, t - base[k]);
      }
    }
  }
  return g_bytes_new_take (b, size);
}

GST_START_TEST (test_timestamp_jump_is_flagged_discont)
{
  GBytes *src = read_fixture ("every-frame.mp4");
  GBytes *data = restart_timestamps_at (src, 15); /* 0.5 s back at moof 15 */
  for (int loose = 0; loose < 2; loose++) {
    GPtrArray *buffers = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
    GList *messages = NULL;
    /* 100 ms: a jump; 1 s (the default): within the threshold */
    GstHarness *h = run_whole (data, loose ? NULL : "discont-threshold=100000000", buffers,
                               &messages);
    guint disconts = 0, at = 0;
    for (guint i = 1; i < buffers->len; i++)
      if (GST_BUFFER_FLAG_IS_SET (g_ptr_array_index (buffers, i), GST_BUFFER_FLAG_DISCONT)) {
        disconts++;
        at = i;
      }
    fail_unless_equals_int (disconts, loose ? 0 : 1);
    if (!loose) {
      fail_unless_equals_int (at, 1 + 15); /* after the init segment */
      fail_unless_equals_uint64 (GST_BUFFER_PTS (g_ptr_array_index (buffers, at)), 0);
    }
    fail_unless_equals_uint64 (stat_of (h, "discontinuities"), loose ? 0 : 1);
    fail_unless_equals_uint64 (stat_of (h, "fragments-normalized"), 0);
    gst_harness_teardown (h);
    g_list_free_full (messages, (GDestroyNotify) gst_message_unref);
    g_ptr_array_unref (buffers);
  }
  g_bytes_unref (data);
  g_bytes_unref (src);
}
GST_END_TEST;

/* Rewrites the version 0 tfdt of moofs `from` on as version 1 (ISO/IEC 14496-12 §8.8.12: the
 * same baseMediaDecodeTime in 64 bits; each tfdt 4 bytes longer, the moof-relative trun
 * data_offsets follow), as a packager that switches versions mid-stream. */
static GBytes *
tfdt_version_1_from (GBytes *data, guint from)
{
  gsize size = 0;
  const guint8 *b = g_bytes_get_data (data, &size);
  GByteArray *out = g_byte_array_new ();
  guint moof = 0;
  for (gsize p = 0; p + 8 <= size; p += rd32 (b + p)) {
    guint32 box = rd32 (b + p);
    fail_unless (box >= 8 && p + box <= size);
    if (memcmp (b + p + 4, "moof", 4) != 0 || moof++ < from) {
      g_byte_array_append (out, b + p, box);
      continue;
    }
    guint grow = 0; /* 4 per version 0 tfdt */
    for (gsize q = p + 8; q < p + box; q += rd32 (b + q))
      if (memcmp (b + q + 4, "traf", 4) == 0)
        for (gsize r = q + 8; r < q + rd32 (b + q); r += rd32 (b + r))
          if (memcmp (b + r + 4, "tfdt", 4) == 0 && b[r + 8] == 0)
            grow += 4;
    fail_unless (grow > 0, "moof %u has no version 0 tfdt", moof - 1);
    gsize moof_at = out->len;
    guint8 hdr[8];
    GST_WRITE_UINT32_BE (hdr, box + grow);
    memcpy (hdr + 4, "moof", 4);
    g_byte_array_append (out, hdr, 8);
    for (gsize q = p + 8; q < p + box; q += rd32 (b + q)) {
      guint32 qsize = rd32 (b + q);
      if (memcmp (b + q + 4, "traf", 4) != 0) {
        g_byte_array_append (out, b + q, qsize);
        continue;
      }
      guint traf_grow = 0;
      for (gsize r = q + 8; r < q + qsize; r += rd32 (b + r))
        if (memcmp (b + r + 4, "tfdt", 4) == 0 && b[r + 8] == 0)
          traf_grow += 4;
      GST_WRITE_UINT32_BE (hdr, qsize + traf_grow);
      memcpy (hdr + 4, "traf", 4);
      g_byte_array_append (out, hdr, 8);
      for (gsize r = q + 8; r < q + qsize; r += rd32 (b + r)) {
        guint32 rsize = rd32 (b + r);
        if (memcmp (b + r + 4, "tfdt", 4) == 0 && b[r + 8] == 0) {
          guint8 tfdt[20];
          GST_WRITE_UINT32_BE (tfdt, 20);
          memcpy (tfdt + 4, "tfdt", 4);
          GST_WRITE_UINT32_BE (tfdt + 8, 0x01000000); /* version 1, flags 0 */
          GST_WRITE_UINT64_BE (tfdt + 12, rd32 (b + r + 12));
          g_byte_array_append (out, tfdt, 20);
          continue;
        }
        gsize at = out->len;
        g_byte_array_append (out, b + r, rsize);
        if (memcmp (b + r + 4, "trun", 4) == 0 && (b[r + 11] & 0x01)) /* data_offset */
          GST_WRITE_UINT32_BE (out->data + at + 16, rd32 (b + r + 16) + grow);
      }
    }
    fail_unless_equals_int (out->len - moof_at, box + grow);
  }
  return g_byte_array_free_to_bytes (out);
}

GST_START_TEST (test_tfdt_version_0_to_1_keeps_one_timeline)
{
  /* mp4mux: version 0 tfdts; version 1 from moof 3 on, the same times */
  GBytes *src = read_fixture ("mp4mux-av.mp4");
  GBytes *data = tfdt_version_1_from (src, 3);
  GPtrArray *ref = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  GPtrArray *got = g_ptr_array_new_with_free_func ((GDestroyNotify) gst_buffer_unref);
  GList *ref_messages = NULL, *messages = NULL;
  GstHarness *hr = run_whole (src, NULL, ref, &ref_messages);
  GstHarness *h = run_whole (data, NULL, got, &messages);
  fail_unless (got->len > 4);
  fail_unless_equals_int (got->len, ref->len);
  for (guint i = 1; i < got->len; i++) {
    GstBuffer *g = g_ptr_array_index (got, i), *r = g_ptr_array_index (ref, i);
    fail_if (GST_BUFFER_FLAG_IS_SET (g, GST_BUFFER_FLAG_DISCONT), "fragment %u flagged DISCONT", i);
    fail_unless_equals_uint64 (GST_BUFFER_PTS (g), GST_BUFFER_PTS (r));
    fail_unless_equals_uint64 (GST_BUFFER_DURATION (g), GST_BUFFER_DURATION (r));
  }
  for (GList *l = messages; l; l = l->next)
    fail_if (GST_MESSAGE_TYPE (l->data) == GST_MESSAGE_WARNING ||
             GST_MESSAGE_TYPE (l->data) == GST_MESSAGE_ERROR);
  fail_unless_equals_uint64 (stat_of (h, "discontinuities"), 0);
  fail_unless_equals_uint64 (stat_of (h, "fragments-normalized"), 0);
  fail_unless_equals_uint64 (stat_of (h, "fragments"), got->len - 1);
  gst_harness_teardown (h);
  gst_harness_teardown (hr);
  g_list_free_full (messages, (GDestroyNotify) gst_message_unref);
  g_list_free_full (ref_messages, (GDestroyNotify) gst_message_unref);
  g_ptr_array_unref (got);
  g_ptr_array_unref (ref);
  g_bytes_unref (data);
  g_bytes_unref (src);
}
GST_END_TEST;

static Suite *
fmp4initcache_suite (void)
{
  Suite *s = suite_create ("fmp4initcache");
  TCase *tc = tcase_create ("general");
  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_chunkings_give_identical_output);
  tcase_add_test (tc, test_caps_and_flags);
  tcase_add_test (tc, test_properties);
  tcase_add_test (tc, test_restart_gives_new_caps);
  tcase_add_test (tc, test_zero_copy);
  tcase_add_test (tc, test_garbage_before_first_box_warns_and_resyncs);
  tcase_add_test (tc, test_random_bytes_error);
  tcase_add_test (tc, test_box_larger_than_max_box_size_errors);
  tcase_add_test (tc, test_truncated_stream_warns_at_eos);
  tcase_add_test (tc, test_not_fragmented_error);
  tcase_add_test (tc, test_flush_resets);
  tcase_add_test (tc, test_no_fragment_after_init_warns_with_the_fix);
  tcase_add_test (tc, test_no_fragment_timeout_zero_disables);
  tcase_add_test (tc, test_normalised_output_keeps_every_sample);
  tcase_add_test (tc, test_timestamp_jump_is_flagged_discont);
  tcase_add_test (tc, test_tfdt_version_0_to_1_keeps_one_timeline);
  return s;
}

GST_CHECK_MAIN (fmp4initcache);
