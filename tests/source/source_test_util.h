/*
 * source_test_util.h — shared by the source integration tests: connector file text for a
 * source on the harness's Redis and dev broker, the process's output, and the latest record
 * per key of a topic (what a compacted topic converges to).
 */
#ifndef RKB_TESTS_SOURCE_TEST_UTIL_H
#define RKB_TESTS_SOURCE_TEST_UTIL_H

#include "harness.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A source connector file: name, connector class and extra "key=value\n" lines (printf-style).
 * The returned text is malloc'd (caller frees). */
static inline char *source_config(h_redis_t *redis, h_broker_t *broker, const char *name,
                                  const char *connector_class, const char *extra_fmt, ...) {
    char extra[4096] = "";
    if (extra_fmt) {
        va_list ap;
        va_start(ap, extra_fmt);
        vsnprintf(extra, sizeof(extra), extra_fmt, ap);
        va_end(ap);
    }
    char *text = NULL;
    if (asprintf(&text,
                 "name=%s\n"
                 "connector.class=%s\n"
                 "redis.uri=%s\n"
                 "kafka.bootstrap.servers=%s\n"
                 "%s",
                 name, connector_class, h_redis_uri(redis), broker->bootstrap, extra) < 0)
        abort();
    return text;
}

static inline bool source_output_has(h_proc_t *proc, const char *needle) {
    char *out = h_proc_output(proc);
    bool has = strstr(out, needle) != NULL;
    free(out);
    return has;
}

static inline void source_dump_output(h_proc_t *proc) {
    char *out = h_proc_output(proc);
    fprintf(stderr, "---- rkbridge output ----\n%s\n-------------------------\n", out);
    free(out);
}

/* `rkbridge validate` on a connector text: returns the exit code, *out its stdout+stderr
 * (malloc'd, caller frees). */
static inline int source_validate(const char *text, char **out) {
    const char *path = h_write_file("validate.properties", text);
    const char *argv[] = {h_rkbridge_bin(), "validate", path, NULL};
    char *err = NULL;
    int rc = h_run(argv, out, &err);
    size_t out_len = *out ? strlen(*out) : 0, err_len = err ? strlen(err) : 0;
    char *both = malloc(out_len + err_len + 1);
    if (!both)
        abort();
    memcpy(both, *out ? *out : "", out_len);
    memcpy(both + out_len, err ? err : "", err_len + 1);
    free(*out);
    free(err);
    *out = both;
    return rc;
}

/* The value of header name in msg (NUL-terminated copy, malloc'd), or NULL if absent. */
static inline char *source_header(const rd_kafka_message_t *msg, const char *name) {
    rd_kafka_headers_t *hdrs = NULL;
    const void *value;
    size_t size;
    if (rd_kafka_message_headers(msg, &hdrs) || rd_kafka_header_get_last(hdrs, name, &value, &size))
        return NULL;
    char *copy = malloc(size + 1);
    if (!copy)
        abort();
    memcpy(copy, value, size);
    copy[size] = '\0';
    return copy;
}

/* The latest record of each key of a topic, sorted by key. */
typedef struct source_latest_s {
    rd_kafka_message_t **msgs; /* every record, as h_consume_all returned them */
    size_t msg_cnt;
    const rd_kafka_message_t **latest; /* one per key */
    size_t cnt;
} source_latest_t;

static inline int source_compare_keys(const rd_kafka_message_t *a, const rd_kafka_message_t *b) {
    size_t len = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = memcmp(a->key, b->key, len);
    return c ? c : (a->key_len > b->key_len) - (a->key_len < b->key_len);
}

/* Sorts by key, and by position among h_consume_all's records (offset order within a
 * partition; one key lives in one partition). */
typedef struct source_ranked_s {
    const rd_kafka_message_t *msg;
    size_t pos;
} source_ranked_t;

static inline int source_compare_ranked(const void *a, const void *b) {
    const source_ranked_t *x = a, *y = b;
    int c = source_compare_keys(x->msg, y->msg);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

static inline void source_latest_read(h_broker_t *broker, const char *topic, source_latest_t *out) {
    out->msg_cnt = h_consume_all(broker, topic, &out->msgs);
    source_ranked_t *ranked = calloc(out->msg_cnt + 1, sizeof(*ranked));
    out->latest = calloc(out->msg_cnt + 1, sizeof(*out->latest));
    if (!ranked || !out->latest)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < out->msg_cnt; i++)
        if (out->msgs[i]->key)
            ranked[n++] = (source_ranked_t){out->msgs[i], i};
    qsort(ranked, n, sizeof(*ranked), source_compare_ranked);
    out->cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && !source_compare_keys(ranked[i].msg, ranked[i + 1].msg))
            continue;
        out->latest[out->cnt++] = ranked[i].msg;
    }
    free(ranked);
}

/* The latest record of key, or NULL if the topic has none. */
static inline const rd_kafka_message_t *source_latest_find(const source_latest_t *latest,
                                                           const char *key) {
    for (size_t i = 0; i < latest->cnt; i++) {
        const rd_kafka_message_t *msg = latest->latest[i];
        if (msg->key_len == strlen(key) && !memcmp(msg->key, key, msg->key_len))
            return msg;
    }
    return NULL;
}

static inline void source_latest_free(source_latest_t *latest) {
    h_messages_free(latest->msgs, latest->msg_cnt);
    free(latest->latest);
    memset(latest, 0, sizeof(*latest));
}

#endif
