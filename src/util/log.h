/*
 * log.h — the one logger of rkbridge.
 *
 * Every line is one event: time, level, the component ("connector/task" or a module name) and the
 * message. librdkafka's log callback is routed here too (see kafka/). Thread-safe: each call
 * writes its line with a single write(2) to stderr.
 */
#ifndef RKB_UTIL_LOG_H
#define RKB_UTIL_LOG_H

typedef enum {
    RKB_LOG_ERROR = 3,
    RKB_LOG_WARN = 4,
    RKB_LOG_INFO = 6,
    RKB_LOG_DEBUG = 7,
} rkb_log_level_t;

/* Lines above this level are dropped. Default RKB_LOG_INFO; RKB_LOG_LEVEL=debug|info|warn|error
 * in the environment sets it at start (see rkb_log_init_from_env). */
void rkb_log_set_level(rkb_log_level_t level);
rkb_log_level_t rkb_log_get_level(void);
void rkb_log_init_from_env(void);

/* Parses "error", "warn", "info", "debug" (case-insensitive). Returns 0 or -1. */
int rkb_log_level_parse(const char *name, rkb_log_level_t *level);

/* component: who speaks, e.g. "pageviews/0" or "dev-broker"; may be NULL. */
void rkb_log(rkb_log_level_t level, const char *component, const char *fmt, ...)
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
