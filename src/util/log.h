/*
 * log.h — the one logger of rkbridge.
 *
 * Every line is one event: time, level, who speaks and the message. Who speaks is a component
 * string: "CONNECTOR/TASK" for a task's lines ("pageviews/0"), or a module name ("dev-broker");
 * connector-level lines name the connector (rkb_log_connector). librdkafka's log callback is
 * routed here too, under the component of the client that logged (kafka/kafka_conf.c).
 *
 * Two formats, chosen once at start (RKB_LOG_FORMAT=text|json, or `run --log-format`):
 *   text  2024-05-01T12:00:00.123Z INFO  [pageviews/0] connected to redis 127.0.0.1:6379/0
 *   json  {"ts":"2024-05-01T12:00:00.123Z","level":"INFO","connector":"pageviews","task":0,
 *          "msg":"connected to redis 127.0.0.1:6379/0"}
 * JSON lines always hold ts, level, connector, task and msg (connector and task are null when
 * the line belongs to no connector or task), plus "component" for a module's lines. A message
 * never spans lines: control characters are escaped in both formats, and invalid UTF-8 becomes
 * U+FFFD in JSON. Messages longer than about 4 KB are cut (marked with "...").
 *
 * Thread-safe: each call writes its line with a single write(2) to stderr, so lines from
 * different threads (ours and librdkafka's) never interleave.
 */
#ifndef RKB_UTIL_LOG_H
#define RKB_UTIL_LOG_H

#include <stdarg.h>

typedef enum {
    RKB_LOG_ERROR = 3,
    RKB_LOG_WARN = 4,
    RKB_LOG_INFO = 6,
    RKB_LOG_DEBUG = 7,
} rkb_log_level_t;

typedef enum {
    RKB_LOG_FORMAT_TEXT = 0,
    RKB_LOG_FORMAT_JSON = 1,
} rkb_log_format_t;

/* Lines above this level are dropped. Default RKB_LOG_INFO. */
void rkb_log_set_level(rkb_log_level_t level);
rkb_log_level_t rkb_log_get_level(void);
void rkb_log_set_format(rkb_log_format_t format);
rkb_log_format_t rkb_log_get_format(void);

/* Reads RKB_LOG_LEVEL=debug|info|warn|error and RKB_LOG_FORMAT=text|json from the
 * environment; a value that is none of these is reported on one log line and ignored.
 * @locality main thread, before any other thread logs. */
void rkb_log_init_from_env(void);

/* Parse "error", "warn", "info", "debug" / "text", "json" (case-insensitive). Return 0 or -1. */
int rkb_log_level_parse(const char *name, rkb_log_level_t *level);
int rkb_log_format_parse(const char *name, rkb_log_format_t *format);

/* component: who speaks, e.g. "pageviews/0" or "dev-broker"; NULL: "rkbridge" (the process).
 * @locality any thread */
void rkb_log(rkb_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line about a whole connector (not one of its tasks): connector set, task null. */
void rkb_log_connector(rkb_log_level_t level, const char *connector, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As rkb_log, but written whatever the level: for lines the user asked for by name
 * (librdkafka's debug lines exist only when kafka.debug is set). */
void rkb_log_always(rkb_log_level_t level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A one-line status kept below the log lines on a terminal (`rkbridge run`'s live status):
 * it is drawn now, and drawn again after every log line, which is written over it. NULL or "":
 * erase it and stop. The caller writes it only when stderr is a terminal. */
void rkb_log_status_line(const char *text);

#define rkb_log_error(comp, ...) rkb_log(RKB_LOG_ERROR, comp, __VA_ARGS__)
#define rkb_log_warn(comp, ...)  rkb_log(RKB_LOG_WARN, comp, __VA_ARGS__)
#define rkb_log_info(comp, ...)  rkb_log(RKB_LOG_INFO, comp, __VA_ARGS__)
#define rkb_log_debug(comp, ...)                                                                   \
    do {                                                                                           \
        if (rkb_log_get_level() >= RKB_LOG_DEBUG)                                                  \
            rkb_log(RKB_LOG_DEBUG, comp, __VA_ARGS__);                                             \
    } while (0)

#endif
