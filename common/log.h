/* log.h - logging to stderr, one line per event.
 *
 * Owns: the process-wide log level and the line format
 * "LEVEL component: message".  Timestamps are left to journald when run as a
 * service; set PS_LOG_TIME=1 in the environment to prefix an ISO time.
 *
 * Privacy rule: never pass names, ID numbers, phone numbers or addresses to
 * these functions.  Log record ids, org unit codes, node ids and counts.
 */
#ifndef PS_LOG_H
#define PS_LOG_H

typedef enum ps_log_level { PS_LOG_DEBUG = 0, PS_LOG_INFO, PS_LOG_WARN, PS_LOG_ERROR, PS_LOG_OFF } ps_log_level_t;

/** Sets the lowest level written. */
void ps_log_set_level(ps_log_level_t level);
/** Parses "debug", "info", "warn", "error", "off"; returns -1 when unknown. */
int ps_log_level_from_name(const char *name);
/** Writes one line if level is enabled. */
void ps_log(ps_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define PS_DEBUG(c, ...) ps_log(PS_LOG_DEBUG, c, __VA_ARGS__)
#define PS_INFO(c, ...) ps_log(PS_LOG_INFO, c, __VA_ARGS__)
#define PS_WARN(c, ...) ps_log(PS_LOG_WARN, c, __VA_ARGS__)
#define PS_ERROR(c, ...) ps_log(PS_LOG_ERROR, c, __VA_ARGS__)

#endif
