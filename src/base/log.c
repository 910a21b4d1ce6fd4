#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Written once by main() before workers start; read-only afterwards. */
static relay_log_level_t relay_log_level = RELAY_LOG_INFO;

static const char *const relay_log_names[] = {"error", "warn", "info", "debug"};

int relay_log_parse_level(const char *s, relay_log_level_t *out) {
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, relay_log_names[i]) == 0) {
      *out = (relay_log_level_t)i;
      return 0;
    }
  }
  if (strcasecmp(s, "warning") == 0) {
    *out = RELAY_LOG_WARN;
    return 0;
  }
  return -1;
}

void relay_log_set_level(relay_log_level_t level) { relay_log_level = level; }

int relay_log_enabled(relay_log_level_t level) { return level <= relay_log_level; }

/* One line per call, formatted first so concurrent workers never interleave
 * halves of lines. */
void relay_log(relay_log_level_t level, const char *fmt, ...) {
  if (!relay_log_enabled(level)) return;
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                   tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                   relay_log_names[level]);
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
  va_end(ap);
  size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
  if (len > sizeof line - 2) len = sizeof line - 2;
  /* One event, one line: a script traceback's line breaks become " | ". */
  for (size_t i = (size_t)n; i < len; i++) {
    if (line[i] == '\t') line[i] = ' ';
    if (line[i] == '\n' && len + 2 < sizeof line - 2) {
      memmove(line + i + 3, line + i + 1, len - i - 1);
      memcpy(line + i, " | ", 3);
      len += 2;
    } else if (line[i] == '\n' || line[i] == '\r') {
      line[i] = ' ';
    }
  }
  line[len++] = '\n';
  fwrite(line, 1, len, stderr);
}
