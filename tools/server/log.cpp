#include "log.h"

#include <cstdarg>

namespace fmp4ws::tools {

void
log_msg (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  gchar *s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  GDateTime *now = g_date_time_new_now_local ();
  gchar *ts = g_date_time_format (now, "%H:%M:%S");
  g_print ("%s %s\n", ts, s);
  g_free (ts);
  g_date_time_unref (now);
  g_free (s);
}

}  // namespace fmp4ws::tools
