/*
 * log.c — line-per-event logger to stderr (see log.h).
 */
#include "util/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = RKB_LOG_INFO;

/* The status line (rkb_log_status_line), "" when none. */
#define ERASE_LINE "\r\033[K"
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static char status_line[512];

void rkb_log_status_line(const char *text) {
    pthread_mutex_lock(&status_lock);
    snprintf(status_line, sizeof(status_line), "%s", text ? text : "");
    char out[sizeof(status_line) + 8];
    int n = snprintf(out, sizeof(out), ERASE_LINE "%s", status_line);
    ssize_t ignored = write(STDERR_FILENO, out, (size_t)n);
    (void)ignored;
    pthread_mutex_unlock(&status_lock);
}

void rkb_log_set_level(rkb_log_level_t level) {
    atomic_store(&log_level, (int)level);
}

rkb_log_level_t rkb_log_get_level(void) {
    return (rkb_log_level_t)atomic_load(&log_level);
}

int rkb_log_level_parse(const char *name, rkb_log_level_t *level) {
    static const struct {
        const char *name;
        rkb_log_level_t level;
    } names[] = {{"error", RKB_LOG_ERROR},
                 {"warn", RKB_LOG_WARN},
                 {"warning", RKB_LOG_WARN},
                 {"info", RKB_LOG_INFO},
                 {"debug", RKB_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (!strcasecmp(name, names[i].name)) {
            *level = names[i].level;
            return 0;
        }
    }
    return -1;
}

void rkb_log_init_from_env(void) {
    const char *env = getenv("RKB_LOG_LEVEL");
    rkb_log_level_t level;
    if (env && rkb_log_level_parse(env, &level) == 0)
        rkb_log_set_level(level);
}

static const char *level_name(rkb_log_level_t level) {
    switch (level) {
    case RKB_LOG_ERROR:
        return "ERROR";
    case RKB_LOG_WARN:
        return "WARN";
    case RKB_LOG_INFO:
        return "INFO";
    default:
        return "DEBUG";
    }
}

void rkb_log(rkb_log_level_t level, const char *component, const char *fmt, ...) {
    if ((int)level > atomic_load(&log_level))
        return;

    char line[4096];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_name(level),
                     component ? component : "rkbridge");
    if (n < 0)
        return;
    if ((size_t)n < sizeof(line)) {
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2; /* truncated: keep one line */
    line[n++] = '\n';
    pthread_mutex_lock(&status_lock);
    if (status_line[0]) { /* over the status line, which comes back below it: one write */
        char with_status[sizeof(line) + sizeof(status_line) + 8];
        int m = snprintf(with_status, sizeof(with_status), ERASE_LINE "%.*s%s", n, line,
                         status_line);
        ssize_t ignored = write(STDERR_FILENO, with_status, (size_t)m);
        (void)ignored;
    } else {
        ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
        (void)ignored;
    }
    pthread_mutex_unlock(&status_lock);
}
