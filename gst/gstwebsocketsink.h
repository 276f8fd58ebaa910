/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/base/gstbasesink.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define GST_TYPE_WEB_SOCKET_SINK (gst_web_socket_sink_get_type ())
G_DECLARE_FINAL_TYPE (GstWebSocketSink, gst_web_socket_sink, GST, WEB_SOCKET_SINK, GstBaseSink)

#define GST_TYPE_WEB_SOCKET_SINK_SYNC_METHOD (gst_web_socket_sink_sync_method_get_type ())
GType gst_web_socket_sink_sync_method_get_type (void);

#define GST_TYPE_WEB_SOCKET_SINK_RECOVER_POLICY (gst_web_socket_sink_recover_policy_get_type ())
GType gst_web_socket_sink_recover_policy_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (websocketsink);

G_END_DECLS
