/*
 * util.h — small helpers used across modules: monotonic time, strict number parsing,
 * growable byte buffer. No module-specific logic lives here.
 */
#ifndef RKB_UTIL_UTIL_H
#define RKB_UTIL_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RKB_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Monotonic clock in milliseconds / microseconds. */
int64_t rkb_now_ms(void);
int64_t rkb_now_us(void);
/* Sleeps ms milliseconds (restarts on EINTR unless *stop becomes true; stop may be NULL). */
void rkb_sleep_ms(int64_t ms, const volatile int *stop);

/* Strict decimal parsing: the whole string must be a number within [min, max].
 * Returns 0, or -1 (not a number, trailing garbage, out of range). */
int rkb_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out);
int rkb_parse_double(const char *s, double *out);
/* "true"/"false" (case-insensitive). Returns 0 or -1. */
int rkb_parse_bool(const char *s, bool *out);

/* Growable byte buffer. Always NUL-terminated after the data (not counted in len). */
typedef struct rkb_buf_s {
    char *data;
    size_t len;
    size_t cap;
} rkb_buf_t;

void rkb_buf_init(rkb_buf_t *buf);
void rkb_buf_reset(rkb_buf_t *buf); /* len = 0, keeps the memory */
void rkb_buf_free(rkb_buf_t *buf);
void rkb_buf_append(rkb_buf_t *buf, const void *data, size_t len);
void rkb_buf_appends(rkb_buf_t *buf, const char *str);
void rkb_buf_appendf(rkb_buf_t *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* malloc/calloc/realloc/strdup that abort with a message on out-of-memory. */
void *rkb_malloc(size_t size);
void *rkb_calloc(size_t n, size_t size);
void *rkb_realloc(void *p, size_t size);
char *rkb_strdup(const char *s);
char *rkb_strndup(const char *s, size_t n);

/* Capped exponential backoff with jitter: attempt 0 -> ~base, doubling up to max. */
int64_t rkb_backoff_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* Levenshtein distance, for "did you mean" suggestions. */
size_t rkb_edit_distance(const char *a, const char *b);

#endif
