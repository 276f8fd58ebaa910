// The server's log: "HH:MM:SS message" lines on stdout. Any thread.
#pragma once

#include <glib.h>

namespace fmp4ws::tools {

void log_msg (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

}  // namespace fmp4ws::tools
