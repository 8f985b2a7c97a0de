/*
 * keys.h — the key-changes → Kafka source task (keys CDC, SEMANTICS.md §5.3), compatible with
 * redis-kafka-connect's RedisKeysSourceConnector keys.
 *
 * State transfer, not diffs: the task subscribes to keyspace notifications for
 * redis.keys.pattern FIRST, then (mode LIVE) SCANs a snapshot, then for every changed key reads
 * its current state and produces it (Kafka key = Redis key; value: a string as is, a hash as a
 * JSON object, other types as documented in keys.c) with the event in a header; a deleted,
 * expired or evicted key produces a tombstone. After any sign of lost events (disconnect,
 * buffer overflow, Redis restart) it resubscribes and takes a new snapshot, so the latest
 * record per key in the topic always converges on Redis's state. notify-keyspace-events is set
 * when Redis allows it; otherwise the task fails saying what to configure.
 */
#ifndef RKB_SOURCE_KEYS_H
#define RKB_SOURCE_KEYS_H

#include "config/config.h"
#include "connect/task_ctl.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_keys_source_s rkb_keys_source_t;

/* Counters of one task; read from any thread. */
typedef struct rkb_keys_source_stats_s {
    _Atomic uint64_t events;     /* keyspace notifications taken in */
    _Atomic uint64_t upserts;    /* values sent */
    _Atomic uint64_t tombstones; /* tombstones sent */
    _Atomic uint64_t skipped;    /* changed keys with nothing to send */
    _Atomic uint64_t delivered;  /* delivery reports without error */
    _Atomic uint64_t delivery_failed;
    _Atomic uint64_t snapshots;
    _Atomic uint64_t resyncs; /* subscriptions (the first one included) */
    _Atomic uint64_t retries; /* backoffs after a failure */
} rkb_keys_source_stats_t;

int rkb_keys_source_validate(const rkb_config_t *conf, rkb_errors_t *errs);
rkb_keys_source_t *rkb_keys_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                       size_t errstr_size);
/* Runs until ctl->stop or a failure. While ctl asks for a pause no event is taken in (they wait
 * in the subscription; if Redis drops it meanwhile, resume resubscribes and takes a new
 * snapshot); the keys already known to have changed are sent first. */
int rkb_keys_source_run(rkb_keys_source_t *src, rkb_task_ctl_t *ctl, char *errstr,
                        size_t errstr_size);
const rkb_keys_source_stats_t *rkb_keys_source_stats(const rkb_keys_source_t *src);
void rkb_keys_source_destroy(rkb_keys_source_t *src); /* NULL is safe */

#endif
