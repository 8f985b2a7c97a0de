/*
 * sink.h — the Kafka → Redis sink task.
 *
 * One task = one consumer-group member + one Redis connection + one thread. The loop
 * (SEMANTICS.md §1.3): poll a batch; convert and encode every record; send them in one pipeline
 * (at-least-once) or as one Lua script per partition that also advances the partition's offset
 * kept in Redis (exactly-once, §2.4, sink/eos.h); for each partition, the records finished up
 * to the first one that is not become "applied" and only their next offset is stored for commit.
 *
 * - A transient failure (connection lost, LOADING, BUSY, OOM, ...) pauses intake and retries
 *   the rest of the batch in order with capped backoff (errors.retry.delay.max.ms) while the
 *   consumer keeps polling, so the member stays in its group; errors.retry.timeout bounds it.
 * - A record that can never be written (not JSON, a missing template field, WRONGTYPE, too
 *   large) stops the task in FAILED with nothing stored past it (errors.tolerance=none), or goes
 *   to the dead-letter topic (sink/dlq.h) and its offset is stored only after the topic
 *   acknowledged it, or is skipped (errors.tolerance=all).
 * - With enrich.key, records are first joined with reference data read from Redis
 *   (process/enrich.h) and, with enrich.output.topic, produced there (process/output.h); a
 *   record is written to Redis only after the output topic acknowledged it.
 * - On revocation the batch is finished once and the stored offsets committed before the
 *   partitions go (consumer.h); on a lost assignment nothing is stored or committed. In
 *   exactly-once mode a newly assigned partition starts at the offset stored in Redis.
 */
#ifndef RKB_SINK_SINK_H
#define RKB_SINK_SINK_H

#include "config/config.h"
#include "connect/task_ctl.h"

#include <stdatomic.h>
#include <stdint.h>

/* Counters of one task; read from any thread. */
typedef struct rkb_sink_stats_s {
    _Atomic uint64_t records_read;    /* taken from Kafka */
    _Atomic uint64_t records_written; /* acknowledged by Redis and stored for commit */
    _Atomic uint64_t records_skipped; /* nothing to write (e.g. a tombstone on a STREAM) */
    _Atomic uint64_t records_failed;  /* could not be written (data errors) */
    _Atomic uint64_t records_dead_lettered; /* of those, acknowledged by the dead-letter topic */
    _Atomic uint64_t batches;         /* pipelines sent */
    _Atomic uint64_t retries;         /* transient failures retried */
    _Atomic uint64_t records_stale;   /* CACHE: changes not newer than the entry, dropped */
    /* Enrichment (process/enrich.h) */
    _Atomic uint64_t enrich_lookups;    /* reference keys read from Redis */
    _Atomic uint64_t enrich_cache_hits; /* records answered by the local cache */
    _Atomic uint64_t enrich_misses;     /* records whose reference key did not exist */
    _Atomic uint64_t records_produced;  /* acknowledged by enrich.output.topic */
} rkb_sink_stats_t;

/* Checks what only the sink knows (templates, converters, type/key combinations) on top of
 * rkb_config_validate. Adds "ORIGIN: key: why" lines to errs; returns their number. */
int rkb_sink_validate(const rkb_config_t *conf, rkb_errors_t *errs);

typedef struct rkb_sink_task_s rkb_sink_task_t;

/* Builds task task_id of the connector described by conf (which must be valid and outlive the
 * task). No I/O yet. Returns NULL with errstr. */
rkb_sink_task_t *rkb_sink_task_new(const rkb_config_t *conf, int task_id, char *errstr,
                                   size_t errstr_size);

/* Runs the task on the calling thread until ctl->stop becomes non-zero (then shuts down in
 * order: stop intake, apply what is in hand if Redis is reachable, store, commit, leave the
 * group) or until a record cannot be written. While ctl asks for a pause, the batch in hand is
 * finished and fetching is paused, the member staying in its group. Returns 0 when stopped, -1
 * when FAILED (errstr says why, naming the record's topic, partition and offset). */
int rkb_sink_task_run(rkb_sink_task_t *task, rkb_task_ctl_t *ctl, char *errstr,
                      size_t errstr_size);

const rkb_sink_stats_t *rkb_sink_task_stats(const rkb_sink_task_t *task);

void rkb_sink_task_destroy(rkb_sink_task_t *task); /* NULL is safe */

#endif
