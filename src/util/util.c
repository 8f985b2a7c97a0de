/*
 * util.c — time, number parsing, byte buffers and allocation helpers (see util.h).
 */
#include "util/util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t rkb_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rkb_now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void rkb_sleep_ms(int64_t ms, const volatile int *stop) {
    int64_t until = rkb_now_ms() + ms;
    for (;;) {
        int64_t left = until - rkb_now_ms();
        if (left <= 0 || (stop && *stop))
            return;
        if (left > 50)
            left = 50; /* wake up regularly to notice *stop */
        struct timespec ts = {.tv_sec = left / 1000, .tv_nsec = (left % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

int rkb_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int rkb_parse_double(const char *s, double *out) {
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int rkb_parse_bool(const char *s, bool *out) {
    if (!strcasecmp(s, "true")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(s, "false")) {
        *out = false;
        return 0;
    }
    return -1;
}

static void oom(size_t size) {
    fprintf(stderr, "rkbridge: out of memory allocating %zu bytes\n", size);
    abort();
}

void *rkb_malloc(size_t size) {
    void *p = malloc(size ? size : 1);
    if (!p)
        oom(size);
    return p;
}

void *rkb_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *rkb_realloc(void *p, size_t size) {
    void *q = realloc(p, size ? size : 1);
    if (!q)
        oom(size);
    return q;
}

char *rkb_strdup(const char *s) {
    return rkb_strndup(s, strlen(s));
}

char *rkb_strndup(const char *s, size_t n) {
    char *p = rkb_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void rkb_buf_init(rkb_buf_t *buf) {
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

void rkb_buf_reset(rkb_buf_t *buf) {
    buf->len = 0;
    if (buf->data)
        buf->data[0] = '\0';
}

void rkb_buf_free(rkb_buf_t *buf) {
    free(buf->data);
    rkb_buf_init(buf);
}

static void buf_reserve(rkb_buf_t *buf, size_t extra) {
    if (buf->len + extra + 1 <= buf->cap)
        return;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < buf->len + extra + 1)
        cap *= 2;
    buf->data = rkb_realloc(buf->data, cap);
    buf->cap = cap;
}

void rkb_buf_append(rkb_buf_t *buf, const void *data, size_t len) {
    buf_reserve(buf, len);
    if (len)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
}

void rkb_buf_appends(rkb_buf_t *buf, const char *str) {
    rkb_buf_append(buf, str, strlen(str));
}

void rkb_buf_appendf(rkb_buf_t *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    buf_reserve(buf, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
}

size_t rkb_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    size_t *row = rkb_malloc((lb + 1) * sizeof(*row));
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            if (up + 1 < best)
                best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    size_t d = row[lb];
    free(row);
    return d;
}

int64_t rkb_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms) {
    int64_t delay = base_ms;
    for (int i = 0; i < attempt && delay < max_ms; i++)
        delay *= 2;
    if (delay > max_ms)
        delay = max_ms;
    /* +-20% jitter so that many tasks do not retry in lockstep */
    int64_t jitter = delay / 5;
    if (jitter > 0)
        delay += (int64_t)(random() % (2 * jitter + 1)) - jitter;
    return delay > 0 ? delay : 1;
}
