/* Leveled logging to stderr. The level is set once at start-up, before any
 * worker thread exists, and only read afterwards. */
#ifndef RELAY_LOG_H
#define RELAY_LOG_H

typedef enum { RELAY_LOG_ERROR = 0, RELAY_LOG_WARN, RELAY_LOG_INFO, RELAY_LOG_DEBUG } relay_log_level_t;

int relay_log_parse_level(const char *s, relay_log_level_t *out);
void relay_log_set_level(relay_log_level_t level);
int relay_log_enabled(relay_log_level_t level);
void relay_log(relay_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define relay_log_error(...) relay_log(RELAY_LOG_ERROR, __VA_ARGS__)
#define relay_log_warn(...) relay_log(RELAY_LOG_WARN, __VA_ARGS__)
#define relay_log_info(...) relay_log(RELAY_LOG_INFO, __VA_ARGS__)
#define relay_log_debug(...)                                 \
  do {                                                       \
    if (relay_log_enabled(RELAY_LOG_DEBUG)) relay_log(RELAY_LOG_DEBUG, __VA_ARGS__); \
  } while (0)

#endif
