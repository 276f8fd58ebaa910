/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_FMP4_INIT_CACHE (gst_fmp4_init_cache_get_type ())
G_DECLARE_FINAL_TYPE (GstFmp4InitCache, gst_fmp4_init_cache, GST, FMP4_INIT_CACHE, GstElement)

GST_ELEMENT_REGISTER_DECLARE (fmp4initcache);

G_END_DECLS
