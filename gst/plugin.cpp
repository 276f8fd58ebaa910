/* gst-fmp4ws: live fragmented MP4 to web browsers over WebSockets (MSE).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <gst/gst.h>

#include "gstfmp4initcache.h"
#include "gstwebsocketsink.h"

static gboolean
plugin_init (GstPlugin *plugin)
{
  gboolean ret = FALSE;
  ret |= GST_ELEMENT_REGISTER (fmp4initcache, plugin);
  ret |= GST_ELEMENT_REGISTER (websocketsink, plugin);
  return ret;
}

GST_PLUGIN_DEFINE (GST_VERSION_MAJOR, GST_VERSION_MINOR, fmp4ws,
                   "Live fragmented MP4 to web browsers over WebSockets (MSE)", plugin_init,
                   VERSION, "LGPL", GST_PACKAGE_NAME, GST_PACKAGE_ORIGIN)
