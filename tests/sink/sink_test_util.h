/*
 * sink_test_util.h — shared by the sink integration tests: connector file text for a sink on
 * the harness's Redis and dev broker, with the short group timeouts the mock needs.
 */
#ifndef RKB_TESTS_SINK_TEST_UTIL_H
#define RKB_TESTS_SINK_TEST_UTIL_H

#include "harness.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* A sink connector file: name, topic and extra "key=value\n" lines (printf-style). The
 * returned text is malloc'd (caller frees). */
static inline char *sink_config(h_redis_t *redis, h_broker_t *broker, const char *name,
                                const char *topic, const char *extra_fmt, ...) {
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
                 "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                 "topics=%s\n"
                 "redis.uri=%s\n"
                 "kafka.bootstrap.servers=%s\n"
                 "kafka.session.timeout.ms=6000\n"
                 "kafka.heartbeat.interval.ms=500\n"
                 "%s",
                 name, topic, h_redis_uri(redis), broker->bootstrap, extra) < 0)
        abort();
    return text;
}

/* Prints what a rkbridge process wrote, for a failing test. */
static inline void sink_dump_output(h_proc_t *proc) {
    char *out = h_proc_output(proc);
    fprintf(stderr, "---- rkbridge output ----\n%s\n-------------------------\n", out);
    free(out);
}

/* The committed offsets of group on topic's partitions 0..partitions-1, added up (a partition
 * with none counts 0). */
static inline int64_t sink_committed_sum(h_broker_t *broker, const char *group,
                                         const char *topic, int partitions) {
    int64_t sum = 0;
    for (int p = 0; p < partitions; p++) {
        int64_t off = h_committed(broker, group, topic, p);
        sum += off < 0 ? 0 : off;
    }
    return sum;
}

#endif
