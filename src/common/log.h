/* Logging to stderr with a timestamp and level. The level is set once at
 * start-up (qlog_set_level) before the event loop runs; it is the one piece
 * of process-wide state outside the daemon context, because every module logs
 * and threading a context through pure helpers would buy nothing. */
#ifndef QUILT_LOG_H
#define QUILT_LOG_H

enum qlog_level { QLOG_ERROR, QLOG_WARN, QLOG_INFO, QLOG_DEBUG };

void qlog_set_level(enum qlog_level level);
int qlog_enabled(enum qlog_level level);
void qlog(enum qlog_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) qlog(QLOG_ERROR, __VA_ARGS__)
#define log_warn(...) qlog(QLOG_WARN, __VA_ARGS__)
#define log_info(...) qlog(QLOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                         \
  do {                                                                         \
    if (qlog_enabled(QLOG_DEBUG))                                              \
      qlog(QLOG_DEBUG, __VA_ARGS__);                                           \
  } while (0)

#endif
