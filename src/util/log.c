/*
 * log.c — line-per-event logger to stderr, as text or JSON (see log.h).
 *
 * Each call formats its whole line on the stack (no allocation, no lock) and hands it to one
 * write(2), so any thread may log at any time, librdkafka's included.
 */
#include "util/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The longest message kept; longer ones are cut and end in "...". */
#define LOG_MSG_MAX 4096
/* Room for the message escaped (at worst 6 bytes per byte in JSON) and the fields around it. */
#define LOG_LINE_MAX (6 * LOG_MSG_MAX + 1024)

static _Atomic int log_level = RKB_LOG_INFO;
static _Atomic int log_format = RKB_LOG_FORMAT_TEXT;

void rkb_log_set_level(rkb_log_level_t level) {
    atomic_store(&log_level, (int)level);
}

rkb_log_level_t rkb_log_get_level(void) {
    return (rkb_log_level_t)atomic_load(&log_level);
}

void rkb_log_set_format(rkb_log_format_t format) {
    atomic_store(&log_format, (int)format);
}

rkb_log_format_t rkb_log_get_format(void) {
    return (rkb_log_format_t)atomic_load(&log_format);
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

int rkb_log_format_parse(const char *name, rkb_log_format_t *format) {
    if (!strcasecmp(name, "text")) {
        *format = RKB_LOG_FORMAT_TEXT;
        return 0;
    }
    if (!strcasecmp(name, "json")) {
        *format = RKB_LOG_FORMAT_JSON;
        return 0;
    }
    return -1;
}

void rkb_log_init_from_env(void) {
    /* The format first, so that a complaint about the level is already in the right format. */
    const char *format_env = getenv("RKB_LOG_FORMAT");
    rkb_log_format_t format;
    bool bad_format = false;
    if (format_env && *format_env) {
        if (rkb_log_format_parse(format_env, &format) == 0)
            rkb_log_set_format(format);
        else
            bad_format = true;
    }
    const char *level_env = getenv("RKB_LOG_LEVEL");
    rkb_log_level_t level;
    bool bad_level = false;
    if (level_env && *level_env) {
        if (rkb_log_level_parse(level_env, &level) == 0)
            rkb_log_set_level(level);
        else
            bad_level = true;
    }
    /* Only a short prefix of the bad value is quoted: it is the user's, of any length. */
    if (bad_format)
        rkb_log(RKB_LOG_WARN, NULL, "RKB_LOG_FORMAT=%.32s: expected text or json; using text",
                format_env);
    if (bad_level)
        rkb_log(RKB_LOG_WARN, NULL,
                "RKB_LOG_LEVEL=%.32s: expected error, warn, info or debug; using info", level_env);
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

/* ---- Who speaks ----------------------------------------------------------------------------- */

typedef struct {
    const char *connector; /* NULL: none */
    size_t connector_len;
    long task;             /* -1: none */
    const char *component; /* as given, never NULL */
} speaker_t;

/* "NAME/N" (N decimal) is task N of connector NAME; anything else is a module's name. */
static speaker_t speaker_of(const char *component) {
    speaker_t who = {.task = -1, .component = component ? component : "rkbridge"};
    const char *slash = component ? strrchr(component, '/') : NULL;
    if (!slash)
        return who;
    const char *digits = slash + 1;
    size_t n = strspn(digits, "0123456789");
    if (n == 0 || n > 9 || digits[n] != '\0')
        return who;
    who.connector = component;
    who.connector_len = (size_t)(slash - component);
    who.task = strtol(digits, NULL, 10);
    return who;
}

/* ---- Building the line ---------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} out_t;

static void put(out_t *out, const char *s, size_t n) {
    if (out->len + n > out->cap)
        n = out->cap - out->len;
    memcpy(out->buf + out->len, s, n);
    out->len += n;
}

static void puts_(out_t *out, const char *s) {
    put(out, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0 if it is not one
 * (overlong forms, surrogates and code points above U+10FFFF are not valid). */
static size_t utf8_sequence(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* s as the inside of a JSON string: quotes, backslashes and control characters escaped,
 * invalid UTF-8 as U+FFFD. Stops, without cutting an escape or a character, when fewer than
 * reserve bytes of room would be left; returns false then. */
static bool put_json_text(out_t *out, const char *s, size_t len, size_t reserve) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        char esc[8];
        const char *piece = esc;
        size_t piece_len;
        size_t used = 1;
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            piece_len = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            piece_len = 2;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            piece_len = 6;
        } else if (c < 0x80) {
            piece = (const char *)p + i;
            piece_len = 1;
        } else if ((used = utf8_sequence(p + i, len - i)) > 0) {
            piece = (const char *)p + i;
            piece_len = used;
        } else {
            piece = "\\ufffd";
            piece_len = 6;
            used = 1;
        }
        if (out->len + piece_len + reserve > out->cap)
            return false;
        put(out, piece, piece_len);
        i += used;
    }
    return true;
}

/* s for a text line: newlines and other control characters escaped (tabs kept), so that a
 * message stays on its line. Same stopping rule as put_json_text. */
static bool put_plain_text(out_t *out, const char *s, size_t len, size_t reserve) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t piece_len;
        if (c == '\n' || c == '\r') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : 'r';
            piece_len = 2;
        } else if ((c < 0x20 && c != '\t') || c == 0x7F) {
            snprintf(esc, sizeof(esc), "\\x%02x", c);
            piece_len = 4;
        } else {
            esc[0] = (char)c;
            piece_len = 1;
        }
        if (out->len + piece_len + reserve > out->cap)
            return false;
        put(out, esc, piece_len);
    }
    return true;
}

static void put_timestamp(out_t *out) {
    struct timespec ts;
    struct tm tm;
    char text[40];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n =
        snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    put(out, text, n > 0 ? (size_t)n : 0);
}

/* The status line (rkb_log_status_line), "" when none: erased before each log line and drawn
 * again below it, in the same write. */
#define ERASE_LINE "\r\033[K"
static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static char status_line[512];

static void write_all(const char *line, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, line, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* nowhere to complain to */
        line += n;
        len -= (size_t)n;
    }
}

static void write_line(const char *line, size_t len) {
    pthread_mutex_lock(&status_lock);
    if (status_line[0]) {
        size_t status_len = strlen(status_line);
        char *with_status = malloc(len + status_len + sizeof(ERASE_LINE));
        if (with_status) {
            memcpy(with_status, ERASE_LINE, sizeof(ERASE_LINE) - 1);
            memcpy(with_status + sizeof(ERASE_LINE) - 1, line, len);
            memcpy(with_status + sizeof(ERASE_LINE) - 1 + len, status_line, status_len);
            write_all(with_status, sizeof(ERASE_LINE) - 1 + len + status_len);
            free(with_status);
            pthread_mutex_unlock(&status_lock);
            return;
        }
    }
    write_all(line, len);
    pthread_mutex_unlock(&status_lock);
}

void rkb_log_status_line(const char *text) {
    pthread_mutex_lock(&status_lock);
    snprintf(status_line, sizeof(status_line), "%s", text ? text : "");
    char out[sizeof(status_line) + sizeof(ERASE_LINE)];
    int n = snprintf(out, sizeof(out), ERASE_LINE "%s", status_line);
    write_all(out, n > 0 ? (size_t)n : 0);
    pthread_mutex_unlock(&status_lock);
}

/* The one place a line is made. msg_len may exceed what msg holds (vsnprintf's answer): the
 * message was cut then. */
static void emit(rkb_log_level_t level, const speaker_t *who, const char *msg, size_t msg_len) {
    char line[LOG_LINE_MAX];
    out_t out = {.buf = line, .cap = sizeof(line)};
    bool cut = msg_len >= LOG_MSG_MAX;
    if (cut)
        msg_len = LOG_MSG_MAX - 1;
    const size_t tail_room = 16; /* "...", closing quote and brace, newline */

    if (rkb_log_get_format() == RKB_LOG_FORMAT_JSON) {
        char task[32];
        puts_(&out, "{\"ts\":\"");
        put_timestamp(&out);
        puts_(&out, "\",\"level\":\"");
        puts_(&out, level_name(level));
        puts_(&out, "\",\"connector\":");
        if (who->connector) {
            puts_(&out, "\"");
            put_json_text(&out, who->connector, who->connector_len, LOG_MSG_MAX);
            puts_(&out, "\"");
        } else {
            puts_(&out, "null");
        }
        puts_(&out, ",\"task\":");
        if (who->task >= 0) {
            snprintf(task, sizeof(task), "%ld", who->task);
            puts_(&out, task);
        } else {
            puts_(&out, "null");
        }
        if (!who->connector) {
            puts_(&out, ",\"component\":\"");
            put_json_text(&out, who->component, strlen(who->component), LOG_MSG_MAX);
            puts_(&out, "\"");
        }
        puts_(&out, ",\"msg\":\"");
        if (!put_json_text(&out, msg, msg_len, tail_room))
            cut = true;
        puts_(&out, cut ? "...\"}\n" : "\"}\n");
    } else {
        put_timestamp(&out);
        char level_field[16];
        snprintf(level_field, sizeof(level_field), " %-5s [", level_name(level));
        puts_(&out, level_field);
        if (who->connector && who->task < 0)
            put_plain_text(&out, who->connector, who->connector_len, LOG_MSG_MAX);
        else
            put_plain_text(&out, who->component, strlen(who->component), LOG_MSG_MAX);
        puts_(&out, "] ");
        if (!put_plain_text(&out, msg, msg_len, tail_room))
            cut = true;
        puts_(&out, cut ? "...\n" : "\n");
    }
    write_line(line, out.len);
}

static void vlog(rkb_log_level_t level, const speaker_t *who, const char *fmt, va_list ap) {
    char msg[LOG_MSG_MAX];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0)
        return;
    emit(level, who, msg, (size_t)n);
}

void rkb_log(rkb_log_level_t level, const char *component, const char *fmt, ...) {
    if ((int)level > atomic_load(&log_level))
        return;
    speaker_t who = speaker_of(component);
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &who, fmt, ap);
    va_end(ap);
}

void rkb_log_always(rkb_log_level_t level, const char *component, const char *fmt, ...) {
    speaker_t who = speaker_of(component);
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &who, fmt, ap);
    va_end(ap);
}

void rkb_log_connector(rkb_log_level_t level, const char *connector, const char *fmt, ...) {
    if ((int)level > atomic_load(&log_level))
        return;
    speaker_t who = {.connector = connector ? connector : "",
                     .connector_len = connector ? strlen(connector) : 0,
                     .task = -1,
                     .component = connector ? connector : ""};
    va_list ap;
    va_start(ap, fmt);
    vlog(level, &who, fmt, ap);
    va_end(ap);
}
