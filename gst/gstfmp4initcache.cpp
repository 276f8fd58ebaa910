/* SPDX-License-Identifier: LGPL-2.1-or-later */
/**
 * SECTION:element-fmp4initcache
 * @title: fmp4initcache
 *
 * Splits a live fragmented MP4 byte stream, in any chunking, into ISO BMFF
 * boxes, caches the init segment (ftyp+moov) and pushes:
 *
 * - the init segment as one buffer flagged %GST_BUFFER_FLAG_HEADER (plus
 *   %GST_BUFFER_FLAG_DISCONT when a new init segment arrives mid-stream), also
 *   put in the src caps as `streamheader`, with the RFC 6381 `codecs`, the MSE
 *   `mime` type and the video `width`/`height`;
 * - one buffer per media fragment (styp/prft/emsg/sidx + moof + mdat), with
 *   %GST_BUFFER_FLAG_DELTA_UNIT unless its first video sample is a sync sample,
 *   PTS/DTS/duration from tfdt and the sample durations, and the mfhd sequence
 *   number as buffer offset.
 *
 * ffmpeg's fragmented MP4 without `empty_moov` puts the first samples in the
 * moov, followed by a bare mdat: the element sends a clean moov (empty sample
 * tables) and turns those samples into a real first fragment.
 *
 * Fragments whose addressing MSE does not take (`tfhd` base_data_offset,
 * implicit offsets across several trafs, a `trun` without data_offset) or
 * without `tfdt` get a rewritten moof (movie-fragment-relative, with a `tfdt`
 * from Smooth Streaming's `tfxd` or the end of the track's previous fragment);
 * the mdat stays shared. One info message per kind says what was rewritten and
 * why; #GstFmp4InitCache:stats counts them. Every box a moof's data offsets
 * span (several mdats, free/skip/uuid) stays in its fragment. A `tfdt` jump
 * (#GstFmp4InitCache:discont-threshold) flags the fragment
 * %GST_BUFFER_FLAG_DISCONT.
 *
 * Top-level `mfra`, `free`, `skip` and unknown boxes outside a fragment are dropped. Garbage
 * before the first box or between boxes is skipped with a warning (up to
 * 4 MiB, then it is an error); a box larger than #GstFmp4InitCache:max-box-size
 * is an error; a stream that ends inside a box gives a warning.
 *
 * ## Example launch lines
 * |[
 * gst-launch-1.0 tcpserversrc host=0.0.0.0 port=8081 ! fmp4initcache ! fakesink dump=false silent=false -v
 * ]| Receives ffmpeg's `-f mp4 -movflags frag_keyframe+default_base_moof tcp://host:8081` and
 * prints the caps (codecs, mime, streamheader) and each fragment.
 * |[
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency key-int-max=30 ! mp4mux fragment-duration=700 ! fmp4initcache ! websocketsink
 * ]| Encodes and serves a test pattern to browsers.
 *
 * Since: 0.1
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "gstfmp4initcache.h"

#include <gst/base/gstadapter.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "core/box.h"
#include "core/stream_assembler.h"

GST_DEBUG_CATEGORY_STATIC (gst_fmp4_init_cache_debug);
#define GST_CAT_DEFAULT gst_fmp4_init_cache_debug

using namespace fmp4ws::core;

#define DEFAULT_MAX_BOX_SIZE (G_GUINT64_CONSTANT (64) << 20)
#define DEFAULT_NO_FRAGMENT_TIMEOUT 5000  // ms
// Name of the out-of-band custom downstream event that carries a diagnostic to
// websocketsink (structure field "message", a string).
#define DIAGNOSTIC_EVENT "fmp4ws-diagnostic"
#define MIN_MAX_BOX_SIZE 4096
#define DEFAULT_DISCONT_THRESHOLD (StreamAssembler::kDefaultDiscontThresholdNs)
#define MIN_DISCONT_THRESHOLD GST_MSECOND

enum
{
  PROP_0,
  PROP_MAX_BOX_SIZE,
  PROP_NO_FRAGMENT_TIMEOUT,
  PROP_CODECS,
  PROP_MIME_TYPE,
  PROP_INIT_SEGMENT,
  PROP_WIDTH,
  PROP_HEIGHT,
  PROP_DISCONT_THRESHOLD,
  PROP_STATS,
};

static GstStaticPadTemplate sink_template =
    GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("video/quicktime, variant = (string) iso-fragmented"));

struct GstFmp4InitCachePrivate
{
  GstFmp4InitCachePrivate () : splitter (DEFAULT_MAX_BOX_SIZE) {}

  // Streaming-thread state.
  //
  // The bytes not consumed yet, "the window", are the adapter's followed, inside the chain
  // function, by the rest of the input buffer being split (`in`, mapped once). The boxes
  // of a fragment (styp/prft... moof) stay at the front of the window, "lazily held",
  // until its mdat completes it; the whole fragment is then taken as one buffer sharing
  // the input memory. Boxes are taken out one by one (into `held`) only when something
  // dropped between them, or skipped garbage, breaks that contiguity. Either `held` or
  // `lazy_sizes` is empty.
  GstAdapter *adapter = nullptr;
  GstBuffer *in = nullptr;
  GstMapInfo in_map = GST_MAP_INFO_INIT;
  gsize in_pos = 0;
  std::vector<gsize> lazy_sizes;  // sizes of the lazily held boxes, in order
  gsize lazy_bytes = 0;           // their total: the current box starts there
  std::vector<GstBuffer *> held;  // held boxes taken out of the window
  std::vector<guint8> scratch;    // a box that is not all in the mapped input
  BoxSplitter splitter;
  StreamAssembler assembler;
  bool need_segment = true;
  bool saw_data = false;
  bool no_fragment_armed = false;  // a no-fragment check was armed since the last fragment

  // Settings and results, under the object lock.
  guint64 max_box_size = DEFAULT_MAX_BOX_SIZE;
  guint no_fragment_timeout = DEFAULT_NO_FRAGMENT_TIMEOUT;  // ms, 0: off
  // The pending "no fragment since the init segment" check (system clock, async) and the
  // text it will say; armed by each init segment, disarmed by the first fragment.
  GstClockID no_fragment_id = nullptr;
  std::string no_fragment_text;
  guint64 discont_threshold = DEFAULT_DISCONT_THRESHOLD;
  // Counts since READY→PAUSED (the `stats` property).
  guint64 init_segments = 0, fragments = 0, fragments_normalized = 0, discontinuities = 0;
  std::string codecs, mime;
  guint width = 0, height = 0;
  GstBuffer *init = nullptr;
};

struct _GstFmp4InitCache
{
  GstElement parent;
  GstPad *sinkpad;
  GstPad *srcpad;
  GstFmp4InitCachePrivate *priv;
};

#define gst_fmp4_init_cache_parent_class parent_class
G_DEFINE_TYPE (GstFmp4InitCache, gst_fmp4_init_cache, GST_TYPE_ELEMENT);

GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (
    fmp4initcache, "fmp4initcache", GST_RANK_NONE, GST_TYPE_FMP4_INIT_CACHE,
    GST_DEBUG_CATEGORY_INIT (gst_fmp4_init_cache_debug, "fmp4initcache", 0,
                             "fragmented MP4 init cache and fragment splitter"));

static gsize
window_size (const GstFmp4InitCachePrivate *priv)
{
  return gst_adapter_available (priv->adapter) +
         (priv->in ? priv->in_map.size - priv->in_pos : 0);
}

// Copies window bytes [offset, offset + n).
static void
window_copy (GstFmp4InitCachePrivate *priv, gsize offset, gsize n, guint8 *out)
{
  gsize a = gst_adapter_available (priv->adapter);
  if (offset < a) {
    gsize k = MIN (n, a - offset);
    gst_adapter_copy (priv->adapter, out, offset, k);
    out += k;
    offset += k;
    n -= k;
  }
  if (n > 0)
    memcpy (out, priv->in_map.data + priv->in_pos + (offset - a), n);
}

// Window bytes [offset, offset + n): in place when they are in the mapped input (the usual
// case), else copied to the scratch buffer. Valid until the window changes.
static const guint8 *
window_data (GstFmp4InitCachePrivate *priv, gsize offset, gsize n)
{
  gsize a = gst_adapter_available (priv->adapter);
  if (offset >= a)
    return priv->in_map.data + priv->in_pos + (offset - a);
  priv->scratch.resize (n);
  window_copy (priv, offset, n, priv->scratch.data ());
  return priv->scratch.data ();
}

// Takes the first n bytes of the window as a new buffer that shares their memory and
// carries nothing else (no flags, timestamps or metas of the input).
static GstBuffer *
window_take (GstFmp4InitCachePrivate *priv, gsize n)
{
  gsize a = gst_adapter_available (priv->adapter);
  if (a == 0) {
    GstBuffer *out = gst_buffer_copy_region (priv->in, GST_BUFFER_COPY_MEMORY, priv->in_pos, n);
    priv->in_pos += n;
    return out;
  }
  gsize k = MIN (n, a);
  GstBuffer *out = gst_buffer_append (gst_buffer_new (),
                                      gst_adapter_take_buffer_fast (priv->adapter, k));
  if (n > k) {
    gst_buffer_copy_into (out, priv->in, GST_BUFFER_COPY_MEMORY, priv->in_pos, n - k);
    priv->in_pos += n - k;
  }
  return out;
}

static void
window_flush (GstFmp4InitCachePrivate *priv, gsize n)
{
  gsize k = MIN (n, gst_adapter_available (priv->adapter));
  if (k > 0)
    gst_adapter_flush (priv->adapter, k);
  priv->in_pos += n - k;
}

// Takes the lazily held boxes out of the window, one buffer each, into `held`.
static void
take_out_held (GstFmp4InitCachePrivate *priv)
{
  for (gsize size : priv->lazy_sizes)
    priv->held.push_back (window_take (priv, size));
  priv->lazy_sizes.clear ();
  priv->lazy_bytes = 0;
}

// Holds the current box (the `size` bytes of the window after the lazily held ones).
static void
hold_box (GstFmp4InitCachePrivate *priv, gsize size)
{
  if (priv->held.empty ()) {
    priv->lazy_sizes.push_back (size);
    priv->lazy_bytes += size;
  } else {
    priv->held.push_back (window_take (priv, size));
  }
}

// Forgets the held boxes without touching the window (which the caller clears).
static void
forget_held (GstFmp4InitCachePrivate *priv)
{
  for (GstBuffer *b : priv->held)
    gst_buffer_unref (b);
  priv->held.clear ();
  priv->lazy_sizes.clear ();
  priv->lazy_bytes = 0;
}

// Drops the held boxes, the lazily held ones from the window.
static void
clear_held (GstFmp4InitCachePrivate *priv)
{
  if (priv->lazy_bytes > 0)
    window_flush (priv, priv->lazy_bytes);
  forget_held (priv);
}

namespace {

// The window after the lazily held boxes, for the splitter.
class WindowSource : public ByteSource
{
public:
  explicit WindowSource (GstFmp4InitCachePrivate *priv) : priv_ (priv) {}
  size_t Available () const override { return window_size (priv_) - priv_->lazy_bytes; }
  void Peek (size_t offset, size_t n, uint8_t *out) const override
  {
    window_copy (priv_, priv_->lazy_bytes + offset, n, out);
  }
  void Skip (size_t n) override
  {
    // Garbage after held boxes: they can no longer be taken with what follows as one piece.
    take_out_held (priv_);
    window_flush (priv_, n);
  }

private:
  GstFmp4InitCachePrivate *priv_;
};

}  // namespace

// Cancels the pending no-fragment check, if any. Any thread.
static void
disarm_no_fragment (GstFmp4InitCache *self)
{
  GST_OBJECT_LOCK (self);
  GstClockID id = self->priv->no_fragment_id;
  self->priv->no_fragment_id = nullptr;
  GST_OBJECT_UNLOCK (self);
  if (id) {
    gst_clock_id_unschedule (id);
    gst_clock_id_unref (id);
  }
}

// The clock thread: no fragment came within no-fragment-timeout of the init segment.
static gboolean
no_fragment_timeout_cb (GstClock *, GstClockTime, GstClockID id, gpointer user_data)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (user_data);
  GST_OBJECT_LOCK (self);
  bool current = self->priv->no_fragment_id == id;
  std::string text = self->priv->no_fragment_text;
  if (current)
    self->priv->no_fragment_id = nullptr;
  GST_OBJECT_UNLOCK (self);
  if (!current)
    return TRUE;  // disarmed meanwhile
  gst_clock_id_unref (id);  // the reference no_fragment_id held; the clock keeps its own
  GST_ELEMENT_WARNING (self, STREAM, DEMUX, ("No fragment after the init segment"), ("%s",
                       text.c_str ()));
  // Out of band: the streaming thread is waiting for input. websocketsink shows it to
  // viewers and in /status.
  gst_pad_push_event (self->srcpad,
                      gst_event_new_custom (GST_EVENT_CUSTOM_DOWNSTREAM_OOB,
                                            gst_structure_new (DIAGNOSTIC_EVENT, "message",
                                                               G_TYPE_STRING, text.c_str (),
                                                               NULL)));
  return TRUE;
}

// Streaming thread, after an init segment: warn if no fragment follows in time.
static void
arm_no_fragment (GstFmp4InitCache *self, const InitInfo &info)
{
  disarm_no_fragment (self);
  GST_OBJECT_LOCK (self);
  guint timeout = self->priv->no_fragment_timeout;
  GST_OBJECT_UNLOCK (self);
  if (timeout == 0)
    return;
  self->priv->no_fragment_armed = true;
  GstClock *clock = gst_system_clock_obtain ();
  GstClockID id = gst_clock_new_single_shot_id (
      clock, gst_clock_get_time (clock) + GstClockTime (timeout) * GST_MSECOND);
  gst_object_unref (clock);
  GST_OBJECT_LOCK (self);
  self->priv->no_fragment_text = NoFragmentDiagnosis (info, timeout / 1000.0);
  self->priv->no_fragment_id = gst_clock_id_ref (id);
  GST_OBJECT_UNLOCK (self);
  if (gst_clock_id_wait_async (id, no_fragment_timeout_cb, gst_object_ref (self),
                               (GDestroyNotify) gst_object_unref) != GST_CLOCK_OK)
    GST_WARNING_OBJECT (self, "could not schedule the no-fragment check");
  gst_clock_id_unref (id);
}

static void
reset_stream (GstFmp4InitCache *self, bool clear_results)
{
  disarm_no_fragment (self);
  GstFmp4InitCachePrivate *priv = self->priv;
  gst_adapter_clear (priv->adapter);
  priv->splitter.Reset ();
  priv->assembler.Reset ();
  forget_held (priv);
  priv->need_segment = true;
  priv->saw_data = false;
  GST_OBJECT_LOCK (self);
  priv->splitter.set_max_box_size (priv->max_box_size);
  priv->assembler.set_discont_threshold_ns (int64_t (priv->discont_threshold));
  priv->assembler.set_max_data_span (priv->max_box_size);
  if (clear_results) {
    priv->init_segments = priv->fragments = priv->fragments_normalized = 0;
    priv->discontinuities = 0;
    priv->codecs.clear ();
    priv->mime.clear ();
    priv->width = priv->height = 0;
    gst_clear_buffer (&priv->init);
  }
  GST_OBJECT_UNLOCK (self);
}

static GstBuffer *
build_output (GstFmp4InitCachePrivate *priv, const Decision &d)
{
  GstBuffer *out = gst_buffer_new ();
  for (const Piece &p : d.pieces) {
    GstBuffer *part;
    if (p.held >= 0)
      part = gst_buffer_ref (priv->held[size_t (p.held)]);
    else
      part = gst_buffer_new_memdup (p.bytes.data (), p.bytes.size ());
    out = gst_buffer_append (out, part);
  }
  return out;
}

static GstCaps *
make_caps (const InitInfo &info, GstBuffer *init)
{
  GstCaps *caps = gst_caps_new_simple ("video/quicktime", "variant", G_TYPE_STRING,
                                       "iso-fragmented", NULL);
  GstStructure *s = gst_caps_get_structure (caps, 0);
  GValue array = G_VALUE_INIT, value = G_VALUE_INIT;
  g_value_init (&array, GST_TYPE_ARRAY);
  g_value_init (&value, GST_TYPE_BUFFER);
  gst_value_set_buffer (&value, init);
  gst_value_array_append_value (&array, &value);
  gst_structure_take_value (s, "streamheader", &array);
  g_value_unset (&value);
  if (!info.codecs.empty ())
    gst_structure_set (s, "codecs", G_TYPE_STRING, info.codecs.c_str (), NULL);
  if (!info.mime.empty ())
    gst_structure_set (s, "mime", G_TYPE_STRING, info.mime.c_str (), NULL);
  if (info.width && info.height)
    gst_structure_set (s, "width", G_TYPE_INT, int (info.width), "height", G_TYPE_INT,
                       int (info.height), NULL);
  gst_structure_set (s, "has-video", G_TYPE_BOOLEAN, gboolean (info.has_video), "has-audio",
                     G_TYPE_BOOLEAN, gboolean (info.has_audio), NULL);
  return caps;
}

static void
push_segment_if_needed (GstFmp4InitCache *self)
{
  if (!self->priv->need_segment)
    return;
  GstSegment seg;
  gst_segment_init (&seg, GST_FORMAT_TIME);
  gst_pad_push_event (self->srcpad, gst_event_new_segment (&seg));
  self->priv->need_segment = false;
}

// The output of an emit decision (d.pieces), the current box (`size` bytes after the
// lazily held boxes) being the last held one. Nothing is held afterwards.
static GstBuffer *
take_output (GstFmp4InitCachePrivate *priv, const Decision &d, gsize size)
{
  // The usual fragment ([styp/prft/emsg/sidx...] moof mdat) and init segment (ftyp moov)
  // are the held boxes in order, one after the other in the window: one buffer.
  size_t n = priv->lazy_sizes.size ();
  bool in_window = priv->held.empty () && d.pieces.size () == n + 1;
  for (size_t i = 0; in_window && i <= n; i++)
    in_window = d.pieces[i].held == int (i);
  if (in_window) {
    GstBuffer *out = window_take (priv, priv->lazy_bytes + size);
    priv->lazy_sizes.clear ();
    priv->lazy_bytes = 0;
    return out;
  }
  take_out_held (priv);
  priv->held.push_back (window_take (priv, size));
  GstBuffer *out = build_output (priv, d);
  forget_held (priv);
  return out;
}

static GstFlowReturn
emit_init (GstFmp4InitCache *self, const Decision &d, GstBuffer *init)
{
  GstFmp4InitCachePrivate *priv = self->priv;
  const InitInfo &info = *d.init;
  GST_BUFFER_FLAG_SET (init, GST_BUFFER_FLAG_HEADER);
  if (d.discont)
    GST_BUFFER_FLAG_SET (init, GST_BUFFER_FLAG_DISCONT);
  GST_BUFFER_PTS (init) = GST_BUFFER_DTS (init) = GST_CLOCK_TIME_NONE;

  if (!info.has_video && !info.has_audio) {
    GST_ELEMENT_WARNING (self, STREAM, CODEC_NOT_FOUND,
                         ("No audio or video track in the stream"),
                         ("the init segment has only text/metadata tracks (%s): browsers' Media "
                          "Source Extensions play audio and video only",
                          info.other_codecs.empty () ? "unknown sample entries"
                                                     : info.other_codecs.c_str ()));
  } else if (info.mime.empty ()) {
    std::string unknown;
    for (const Track &t : info.tracks)
      if ((t.is_video () || t.is_audio ()) && t.codec.empty ())
        unknown += (unknown.empty () ? "'" : ", '") + FourCCToString (t.sample_entry) + "'";
    GST_ELEMENT_WARNING (self, STREAM, CODEC_NOT_FOUND, ("Unknown codec in the stream"),
                         ("no RFC 6381 codec string for sample entry %s: the mime type is "
                          "incomplete and browsers may refuse the stream",
                          unknown.c_str ()));
  }
  GST_INFO_OBJECT (self, "init segment #%u: %" G_GSIZE_FORMAT " bytes, mime '%s', %ux%u, "
                   "text/metadata tracks '%s'",
                   priv->assembler.generation (), gst_buffer_get_size (init), info.mime.c_str (),
                   info.width, info.height, info.other_codecs.c_str ());

  GST_OBJECT_LOCK (self);
  priv->init_segments++;
  priv->codecs = info.codecs;
  priv->mime = info.mime;
  priv->width = info.width;
  priv->height = info.height;
  gst_buffer_replace (&priv->init, init);
  GST_OBJECT_UNLOCK (self);

  GstCaps *caps = make_caps (info, init);
  bool ok = gst_pad_set_caps (self->srcpad, caps);
  gst_caps_unref (caps);
  if (!ok) {
    gst_buffer_unref (init);
    return GST_FLOW_NOT_NEGOTIATED;
  }
  push_segment_if_needed (self);
  arm_no_fragment (self, info);
  g_object_notify (G_OBJECT (self), "codecs");
  g_object_notify (G_OBJECT (self), "mime-type");
  g_object_notify (G_OBJECT (self), "init-segment");
  return gst_pad_push (self->srcpad, init);
}

static GstFlowReturn
emit_fragment (GstFmp4InitCache *self, const Decision &d, GstBuffer *frag)
{
  const FragmentInfo &f = *d.fragment;
  if (self->priv->no_fragment_armed) {  // streaming-thread flag: no lock per fragment
    self->priv->no_fragment_armed = false;
    disarm_no_fragment (self);
  }
  GstFmp4InitCachePrivate *priv = self->priv;
  GST_OBJECT_LOCK (self);
  priv->fragments++;
  if (d.normalized)
    priv->fragments_normalized++;
  if (d.timestamp_jump)
    priv->discontinuities++;
  GST_OBJECT_UNLOCK (self);
  if (!f.keyframe)
    GST_BUFFER_FLAG_SET (frag, GST_BUFFER_FLAG_DELTA_UNIT);
  if (d.discont)
    GST_BUFFER_FLAG_SET (frag, GST_BUFFER_FLAG_DISCONT);
  int64_t dts = f.decode_time_ns (), dur = f.duration_ns ();
  GST_BUFFER_PTS (frag) = GST_BUFFER_DTS (frag) = dts >= 0 ? GstClockTime (dts) : GST_CLOCK_TIME_NONE;
  GST_BUFFER_DURATION (frag) = dur >= 0 ? GstClockTime (dur) : GST_CLOCK_TIME_NONE;
  GST_BUFFER_OFFSET (frag) = f.sequence;
  GST_LOG_OBJECT (self, "fragment #%u: %" G_GSIZE_FORMAT " bytes, %s, dts %" GST_TIME_FORMAT,
                  f.sequence, gst_buffer_get_size (frag), f.keyframe ? "keyframe" : "delta",
                  GST_TIME_ARGS (GST_BUFFER_DTS (frag)));
  push_segment_if_needed (self);
  return gst_pad_push (self->srcpad, frag);
}

// Applies what the assembler decided about the current box, the `size` bytes of the
// window after the lazily held boxes (0: no current box).
static GstFlowReturn
apply_decision (GstFmp4InitCache *self, const Decision &d, gsize size)
{
  GstFmp4InitCachePrivate *priv = self->priv;
  if (d.discard_held)
    clear_held (priv);
  if (!d.warning.empty ())
    GST_ELEMENT_WARNING (self, STREAM, DEMUX, ("Problem in the fragmented MP4 stream"), ("%s",
                         d.warning.c_str ()));
  if (!d.info.empty ())
    GST_ELEMENT_INFO (self, STREAM, DEMUX, ("Fragments rewritten for Media Source Extensions"),
                      ("%s", d.info.c_str ()));
  if (!d.note.empty ())
    GST_INFO_OBJECT (self, "%s", d.note.c_str ());
  if (size == 0)
    return GST_FLOW_OK;

  GstFlowReturn ret = GST_FLOW_OK;
  switch (d.kind) {
    case Decision::kHold:
      hold_box (priv, size);
      break;
    case Decision::kDrop:
      // The boxes held before it stay held, without it.
      if (priv->lazy_bytes > 0)
        take_out_held (priv);
      window_flush (priv, size);
      break;
    case Decision::kEmitInit:
      ret = emit_init (self, d, take_output (priv, d, size));
      break;
    case Decision::kEmitFragment:
      ret = emit_fragment (self, d, take_output (priv, d, size));
      break;
    case Decision::kError:
      hold_box (priv, size);
      GST_ELEMENT_ERROR (self, STREAM, DEMUX, ("Invalid fragmented MP4 stream"), ("%s",
                         d.message.c_str ()));
      ret = GST_FLOW_ERROR;
      break;
  }
  return ret;
}

// Splits the window into boxes until more input is needed.
static GstFlowReturn
split_window (GstFmp4InitCache *self)
{
  GstFmp4InitCachePrivate *priv = self->priv;
  WindowSource src (priv);
  for (;;) {
    BoxSplitter::Event ev = priv->splitter.Next (src);
    std::string warning = priv->splitter.TakeWarning ();
    if (!warning.empty ()) {
      GST_ELEMENT_WARNING (self, STREAM, DEMUX, ("Skipped bytes that are not MP4 boxes"), ("%s",
                           warning.c_str ()));
      GstFlowReturn ret = apply_decision (self, priv->assembler.LostSync (), 0);
      if (ret != GST_FLOW_OK)
        return ret;
    }
    if (ev.kind == BoxSplitter::Event::kNeedMore)
      return GST_FLOW_OK;
    if (ev.kind == BoxSplitter::Event::kError) {
      GST_ELEMENT_ERROR (self, STREAM, DEMUX, ("Invalid fragmented MP4 stream"), ("%s",
                         ev.message.c_str ()));
      return GST_FLOW_ERROR;
    }
    // The box stays in the window (zero copy) until the decision says what it is part of.
    gsize size = gsize (ev.header.size);
    priv->splitter.Consumed (size);
    const guint8 *data = ev.header.type == FourCC ("mdat")
                             ? nullptr
                             : window_data (priv, priv->lazy_bytes, size);
    Decision d = priv->assembler.PushBox (ev.header, ev.offset, data);
    if (priv->scratch.capacity () > (1u << 20))
      std::vector<guint8> ().swap (priv->scratch);  // a big moov: do not keep its copy
    GstFlowReturn ret = apply_decision (self, d, size);
    if (ret != GST_FLOW_OK)
      return ret;
  }
}

// Splits `buffer` (one memory, or none), ownership taken. What is left of it, a partial
// box or lazily held boxes, waits in the adapter for the next input.
static GstFlowReturn
chain_memory (GstFmp4InitCache *self, GstBuffer *buffer)
{
  GstFmp4InitCachePrivate *priv = self->priv;
  if (!gst_buffer_map (buffer, &priv->in_map, GST_MAP_READ)) {
    gst_buffer_unref (buffer);
    GST_ELEMENT_ERROR (self, RESOURCE, READ, (NULL), ("could not map an input buffer"));
    return GST_FLOW_ERROR;
  }
  priv->in = buffer;
  priv->in_pos = 0;
  GstFlowReturn ret = split_window (self);
  gsize pos = priv->in_pos, left = priv->in_map.size - pos;
  gst_buffer_unmap (buffer, &priv->in_map);
  priv->in = nullptr;
  priv->in_pos = 0;
  if (left == 0) {
    gst_buffer_unref (buffer);
  } else if (pos == 0) {
    gst_adapter_push (priv->adapter, buffer);
  } else {
    gst_adapter_push (priv->adapter,
                      gst_buffer_copy_region (buffer, GST_BUFFER_COPY_MEMORY, pos, left));
    gst_buffer_unref (buffer);
  }
  return ret;
}

static GstFlowReturn
gst_fmp4_init_cache_chain (GstPad *, GstObject *parent, GstBuffer *buffer)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (parent);
  GstFmp4InitCachePrivate *priv = self->priv;

  if (gst_buffer_get_size (buffer) > 0)
    priv->saw_data = true;
  guint n = gst_buffer_n_memory (buffer);
  if (n <= 1)
    return chain_memory (self, buffer);
  // Mapping a buffer of several memories would merge (copy) them: one memory at a time.
  GstFlowReturn ret = GST_FLOW_OK;
  gsize offset = 0;
  for (guint i = 0; i < n && ret == GST_FLOW_OK; i++) {
    gsize size = gst_buffer_peek_memory (buffer, i)->size;
    ret = chain_memory (self, gst_buffer_copy_region (buffer, GST_BUFFER_COPY_MEMORY, offset,
                                                      size));
    offset += size;
  }
  // After a failure, what was not split waits in the adapter like the rest (EOS counts it).
  gsize total = gst_buffer_get_size (buffer);
  if (offset < total)
    gst_adapter_push (priv->adapter, gst_buffer_copy_region (buffer, GST_BUFFER_COPY_MEMORY,
                                                             offset, total - offset));
  gst_buffer_unref (buffer);
  return ret;
}

static gboolean
gst_fmp4_init_cache_sink_event (GstPad *pad, GstObject *parent, GstEvent *event)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (parent);
  GstFmp4InitCachePrivate *priv = self->priv;

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS:
    case GST_EVENT_SEGMENT:
      // Our caps come from the init segment; our segment is in TIME.
      gst_event_unref (event);
      return TRUE;
    case GST_EVENT_FLUSH_STOP:
      reset_stream (self, false);
      break;
    case GST_EVENT_EOS: {
      gsize left = gst_adapter_available (priv->adapter) - priv->lazy_bytes;
      gsize held = priv->held.size () + priv->lazy_sizes.size ();
      if (left > 0 || held > 0) {
        GST_ELEMENT_WARNING (self, STREAM, DEMUX, ("The stream ended in the middle of a box"),
                             ("%" G_GSIZE_FORMAT " bytes of an incomplete box and %"
                              G_GSIZE_FORMAT " held boxes dropped at end of stream",
                              left, held));
        gst_adapter_clear (priv->adapter);
        forget_held (priv);
      }
      if (priv->saw_data && !priv->assembler.init ()) {
        GST_ELEMENT_ERROR (self, STREAM, DEMUX, ("No fragmented MP4 init segment in the stream"),
                           ("the stream ended before an ftyp+moov was seen: the publisher sends it "
                            "once, at its start; start it after the server, and with ffmpeg use "
                            "-movflags +frag_keyframe+empty_moov+default_base_moof"));
      }
      break;
    }
    default:
      break;
  }
  return gst_pad_event_default (pad, parent, event);
}

static GstStateChangeReturn
gst_fmp4_init_cache_change_state (GstElement *element, GstStateChange transition)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (element);
  if (transition == GST_STATE_CHANGE_READY_TO_PAUSED)
    reset_stream (self, true);
  GstStateChangeReturn ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);
  if (transition == GST_STATE_CHANGE_PAUSED_TO_READY)
    reset_stream (self, false);
  return ret;
}

static void
gst_fmp4_init_cache_set_property (GObject *object, guint prop_id, const GValue *value,
                                  GParamSpec *pspec)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (object);
  switch (prop_id) {
    case PROP_MAX_BOX_SIZE:
      GST_OBJECT_LOCK (self);
      self->priv->max_box_size = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_NO_FRAGMENT_TIMEOUT:
      GST_OBJECT_LOCK (self);
      self->priv->no_fragment_timeout = g_value_get_uint (value);
      GST_OBJECT_UNLOCK (self);
      break;
    case PROP_DISCONT_THRESHOLD:
      GST_OBJECT_LOCK (self);
      self->priv->discont_threshold = g_value_get_uint64 (value);
      GST_OBJECT_UNLOCK (self);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
}

static void
gst_fmp4_init_cache_get_property (GObject *object, guint prop_id, GValue *value,
                                  GParamSpec *pspec)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (object);
  GstFmp4InitCachePrivate *priv = self->priv;
  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MAX_BOX_SIZE:
      g_value_set_uint64 (value, priv->max_box_size);
      break;
    case PROP_NO_FRAGMENT_TIMEOUT:
      g_value_set_uint (value, priv->no_fragment_timeout);
      break;
    case PROP_CODECS:
      g_value_set_string (value, priv->codecs.empty () ? nullptr : priv->codecs.c_str ());
      break;
    case PROP_MIME_TYPE:
      g_value_set_string (value, priv->mime.empty () ? nullptr : priv->mime.c_str ());
      break;
    case PROP_INIT_SEGMENT:
      g_value_set_boxed (value, priv->init);
      break;
    case PROP_WIDTH:
      g_value_set_uint (value, priv->width);
      break;
    case PROP_HEIGHT:
      g_value_set_uint (value, priv->height);
      break;
    case PROP_DISCONT_THRESHOLD:
      g_value_set_uint64 (value, priv->discont_threshold);
      break;
    case PROP_STATS:
      g_value_take_boxed (
          value, gst_structure_new ("application/x-fmp4initcache-stats", "init-segments",
                                    G_TYPE_UINT64, priv->init_segments, "fragments",
                                    G_TYPE_UINT64, priv->fragments, "fragments-normalized",
                                    G_TYPE_UINT64, priv->fragments_normalized,
                                    "discontinuities", G_TYPE_UINT64, priv->discontinuities,
                                    NULL));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_fmp4_init_cache_finalize (GObject *object)
{
  GstFmp4InitCache *self = GST_FMP4_INIT_CACHE (object);
  disarm_no_fragment (self);
  forget_held (self->priv);
  gst_clear_buffer (&self->priv->init);
  g_object_unref (self->priv->adapter);
  delete self->priv;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_fmp4_init_cache_class_init (GstFmp4InitCacheClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);

  gobject_class->set_property = gst_fmp4_init_cache_set_property;
  gobject_class->get_property = gst_fmp4_init_cache_get_property;
  gobject_class->finalize = gst_fmp4_init_cache_finalize;
  element_class->change_state = gst_fmp4_init_cache_change_state;

  /**
   * GstFmp4InitCache:max-box-size:
   *
   * Largest top-level box accepted, in bytes. A bigger box is an error (its bytes
   * would have to be held in memory whole). Also the most bytes the sample data of
   * one fragment may span after its moof (several mdats held until all are there):
   * a fragment that addresses more is dropped with a warning.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_BOX_SIZE,
      g_param_spec_uint64 ("max-box-size", "Maximum box size",
                           "Largest top-level box (moov, moof, mdat...) accepted, in bytes; a "
                           "larger one stops the stream with an error. Also bounds the bytes a "
                           "fragment's sample data spans after its moof",
                           MIN_MAX_BOX_SIZE, G_MAXUINT32, DEFAULT_MAX_BOX_SIZE,
                           GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                        GST_PARAM_MUTABLE_READY)));
  /**
   * GstFmp4InitCache:no-fragment-timeout:
   *
   * Milliseconds after an init segment without a fragment before the element warns
   * (GST_ELEMENT_WARNING "No fragment after the init segment", naming the likely cause and
   * the ffmpeg/mp4mux fix) and sends the same text downstream as an out-of-band custom
   * event `fmp4ws-diagnostic` (field `message`), which websocketsink shows to viewers and in
   * `/status`. 0 disables the check.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_NO_FRAGMENT_TIMEOUT,
      g_param_spec_uint ("no-fragment-timeout", "No-fragment timeout",
                         "Milliseconds after an init segment with no fragment before a warning "
                         "that names the likely cause and fix (e.g. audio-only ffmpeg with "
                         "frag_keyframe alone: add -frag_duration); 0: never",
                         0, G_MAXUINT, DEFAULT_NO_FRAGMENT_TIMEOUT,
                         GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                      GST_PARAM_MUTABLE_PLAYING)));
  /**
   * GstFmp4InitCache:codecs:
   *
   * RFC 6381 codec string of the current init segment, e.g. "avc1.640028, mp4a.40.2".
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_CODECS,
      g_param_spec_string ("codecs", "Codecs",
                           "RFC 6381 codecs of the current init segment (video first), e.g. "
                           "\"avc1.640028, mp4a.40.2\"; NULL before the first init segment",
                           NULL, GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  /**
   * GstFmp4InitCache:mime-type:
   *
   * Full MSE type of the current init segment, for MediaSource.isTypeSupported().
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_MIME_TYPE,
      g_param_spec_string ("mime-type", "MIME type",
                           "MSE type of the current init segment, e.g. video/mp4; "
                           "codecs=\"avc1.640028, mp4a.40.2\"; NULL if a codec is unknown",
                           NULL, GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  /**
   * GstFmp4InitCache:init-segment:
   *
   * The current init segment (ftyp+moov) as sent downstream.
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_INIT_SEGMENT,
      g_param_spec_boxed ("init-segment", "Init segment",
                          "The current init segment (ftyp + clean moov) as a GstBuffer",
                          GST_TYPE_BUFFER,
                          GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  /**
   * GstFmp4InitCache:width:
   *
   * Display width of the first video track (0 if none).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_WIDTH,
      g_param_spec_uint ("width", "Width", "Display width of the first video track (0: none)", 0,
                         G_MAXUINT, 0, GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));
  /**
   * GstFmp4InitCache:height:
   *
   * Display height of the first video track (0 if none).
   *
   * Since: 0.1
   */
  g_object_class_install_property (
      gobject_class, PROP_HEIGHT,
      g_param_spec_uint ("height", "Height", "Display height of the first video track (0: none)",
                         0, G_MAXUINT, 0,
                         GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  /**
   * GstFmp4InitCache:discont-threshold:
   *
   * A track's `tfdt` that differs from the end of its previous fragment (its `tfdt` plus
   * its sample durations) by more than this, backwards or forwards, within one init
   * segment (an encoder or camera that resets, a looped file)
   * is a timestamp discontinuity: the fragment is flagged %GST_BUFFER_FLAG_DISCONT and
   * counted in #GstFmp4InitCache:stats. websocketsink then restarts its viewers'
   * rebased timelines there, so they stay continuous. A 32-bit `tfdt` that wraps
   * within this threshold is no discontinuity: it is written as a 64-bit `tfdt` that
   * goes on. In nanoseconds.
   *
   * Since: 0.2
   */
  g_object_class_install_property (
      gobject_class, PROP_DISCONT_THRESHOLD,
      g_param_spec_uint64 ("discont-threshold", "Discontinuity threshold",
                           "A track's tfdt that jumps, backwards or forwards, by more than this "
                           "(ns) from the end of its previous fragment is a timestamp "
                           "discontinuity: the fragment is flagged DISCONT",
                           MIN_DISCONT_THRESHOLD, G_MAXINT64, DEFAULT_DISCONT_THRESHOLD,
                           GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
                                        GST_PARAM_MUTABLE_READY)));
  /**
   * GstFmp4InitCache:stats:
   *
   * Counts since the element went to PAUSED: `init-segments`, `fragments` (pushed),
   * `fragments-normalized` (of them, with a moof rewritten to movie-fragment-relative
   * addressing with a `tfdt`, as the MSE ISO BMFF byte stream format requires: input with
   * `tfhd` base_data_offset, implicit offsets across trafs, a `trun` without data_offset,
   * no `tfdt`) and `discontinuities` (fragments with a `tfdt` jump, see
   * #GstFmp4InitCache:discont-threshold), all guint64.
   *
   * Since: 0.2
   */
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed ("stats", "Statistics",
                          "init-segments, fragments, fragments-normalized (moof rewritten for "
                          "MSE), discontinuities (tfdt jumps), since PAUSED",
                          GST_TYPE_STRUCTURE,
                          GParamFlags (G_PARAM_READABLE | G_PARAM_STATIC_STRINGS)));

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Fragmented MP4 init cache", "Codec/Demuxer/Parser",
      "Splits a live fragmented MP4 byte stream into an init segment (streamheader, RFC 6381 "
      "codecs) and one buffer per fragment with keyframe flags",
      "gst-fmp4ws developers");
}

static void
gst_fmp4_init_cache_init (GstFmp4InitCache *self)
{
  self->priv = new GstFmp4InitCachePrivate ();
  self->priv->adapter = gst_adapter_new ();

  self->sinkpad = gst_pad_new_from_static_template (&sink_template, "sink");
  gst_pad_set_chain_function (self->sinkpad, GST_DEBUG_FUNCPTR (gst_fmp4_init_cache_chain));
  gst_pad_set_event_function (self->sinkpad,
                              GST_DEBUG_FUNCPTR (gst_fmp4_init_cache_sink_event));
  gst_element_add_pad (GST_ELEMENT (self), self->sinkpad);

  self->srcpad = gst_pad_new_from_static_template (&src_template, "src");
  gst_pad_use_fixed_caps (self->srcpad);
  gst_element_add_pad (GST_ELEMENT (self), self->srcpad);
}
