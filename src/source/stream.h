/*
 * stream.h — the Redis Streams → Kafka source task (SEMANTICS.md §4.3), compatible with
 * redis-kafka-connect's RedisStreamSourceConnector keys.
 *
 * One task = one consumer of the Redis consumer group (redis.stream.consumer.group, name
 * redis.stream.consumer.name with ${task}) over every configured stream (redis.stream.name,
 * plus streams matching redis.stream.pattern, found again every discovery interval), and one
 * idempotent producer. The loop: XGROUP CREATE ... MKSTREAM (BUSYGROUP is fine); first this
 * consumer's own pending entries (ID 0: what a previous run read but never acknowledged),
 * then new ones (">"); each entry becomes one Kafka record (key per redis.stream.key, value per
 * redis.stream.value, headers redis-stream and redis-id, timestamp = the ID's milliseconds);
 * XACK only after the record's delivery report said the broker has it (at-least-once), or right
 * after the read (at-most-once). Every claim interval, XAUTOCLAIM takes over entries other
 * consumers left pending longer than redis.stream.claim.min.idle.ms. Pending entries that were
 * trimmed or deleted before they were produced are counted and logged as lost.
 */
#ifndef RKB_SOURCE_STREAM_H
#define RKB_SOURCE_STREAM_H

#include "config/config.h"
#include "connect/task_ctl.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_stream_source_s rkb_stream_source_t;

/* Counters of one task; read from any thread. */
typedef struct rkb_stream_source_stats_s {
    _Atomic uint64_t read;     /* entries XREADGROUP returned (new and re-read) */
    _Atomic uint64_t produced; /* delivery reports without error */
    _Atomic uint64_t acked;    /* entries XACK removed from the PEL */
    _Atomic uint64_t lost;     /* pending entries trimmed or deleted before they were produced */
    _Atomic uint64_t claimed;  /* entries XAUTOCLAIM handed over */
    _Atomic uint64_t failed;   /* delivery reports with an error */
    _Atomic uint64_t missing;  /* records produced with a null key or value: the field was missing */
    _Atomic uint64_t retries;  /* backoffs after a Redis or delivery failure */
} rkb_stream_source_stats_t;

/* Source-specific checks on top of rkb_config_validate ("ORIGIN: key: why" lines). */
int rkb_stream_source_validate(const rkb_config_t *conf, rkb_errors_t *errs);
rkb_stream_source_t *rkb_stream_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                           size_t errstr_size);
/* Runs until ctl->stop (then: stop reading, flush the producer, XACK what was delivered, exit)
 * or a failure. While ctl asks for a pause, no entry is read; what is in flight is delivered
 * and acknowledged first. 0 when stopped, -1 when FAILED (errstr). */
int rkb_stream_source_run(rkb_stream_source_t *src, rkb_task_ctl_t *ctl, char *errstr,
                          size_t errstr_size);
const rkb_stream_source_stats_t *rkb_stream_source_stats(const rkb_stream_source_t *src);
void rkb_stream_source_destroy(rkb_stream_source_t *src); /* NULL is safe */

#endif
