/*
 * consumer.h — the Kafka consumer as the sink uses it (all librdkafka consumer calls live here).
 *
 * A group member with manual offset store: the owner hands records out in batches, stores the
 * next offset of a partition only once Redis acknowledged everything before it, and the stored
 * offsets are committed (periodically by librdkafka's auto-commit, and synchronously on
 * revocation and close). See SEMANTICS.md §1.2–1.4.
 *
 * Rebalances are delivered to the owner's handlers from inside rkb_consumer_poll, on the
 * polling thread, before librdkafka changes the assignment: on_revoke must finish with the
 * revoked partitions (drain what can be drained, store offsets) before it returns, because the
 * consumer commits the stored offsets right after it and then gives the partitions up.
 *
 * Metrics: a consumer created on a task's thread (metrics/metrics.h) counts the rebalances that
 * reach it and, unless kafka.statistics.interval.ms says otherwise, reads librdkafka's
 * statistics every 5 s for the consumer lag of each assigned partition.
 *
 * @locality: one thread owns a consumer and calls every function below (librdkafka runs its
 * own threads behind it).
 */
#ifndef RKB_KAFKA_CONSUMER_H
#define RKB_KAFKA_CONSUMER_H

#include "kafka/producer.h"
#include "record/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A topic partition, with an offset where one is meant (next offset to read/commit). */
typedef struct rkb_toppar_s {
    const char *topic;
    int32_t partition;
    int64_t offset;
} rkb_toppar_t;

#define RKB_OFFSET_INVALID (-1001) /* librdkafka's RD_KAFKA_OFFSET_INVALID */

typedef struct rkb_consumer_handlers_s {
    /* Partitions were assigned. The handler may set parts[i].offset to an absolute offset to
     * start there (exactly-once restore); left at RKB_OFFSET_INVALID the committed offset and
     * then auto.offset.reset apply. May be NULL. */
    void (*on_assign)(rkb_toppar_t *parts, size_t cnt, void *opaque);
    /* Partitions are being taken away. lost: they may already belong to another member, so
     * nothing of them may be stored or committed. May be NULL. */
    void (*on_revoke)(const rkb_toppar_t *parts, size_t cnt, bool lost, void *opaque);
    void *opaque;
} rkb_consumer_handlers_t;

typedef struct rkb_consumer_conf_s {
    const char *component; /* for log lines, e.g. "pageviews/0" */
    const char *group_id;
    const char *client_id;
    const char *const *topics; /* subscription: topic names ... */
    size_t topic_cnt;
    const char *topics_regex; /* ... or one regex, subscribed as "^(regex)" */
    /* librdkafka properties as name/value pairs, applied after rkbridge's defaults (so the user
     * wins), except the ones the sink's guarantees depend on (enable.auto.offset.store). */
    const char *const *props;
    size_t prop_cnt; /* number of pairs */
    /* How many consumers of the process share the default prefetch bounds (a connector's
     * tasks): each gets its share, so the process's peak memory does not grow with tasks.max.
     * 0 or 1: the whole. */
    int prefetch_share;
    rkb_consumer_handlers_t handlers;
} rkb_consumer_conf_t;

typedef struct rkb_consumer_s rkb_consumer_t;

/* Creates the consumer and subscribes. Returns NULL with errstr (naming the property at fault
 * when librdkafka rejects one). */
rkb_consumer_t *rkb_consumer_new(const rkb_consumer_conf_t *conf, char *errstr,
                                 size_t errstr_size);

/* Waits up to timeout_ms for records and appends up to max of them to recs[*cnt...] (each is
 * overwritten), advancing *cnt as it goes, so that a rebalance handler running inside this call
 * sees every record taken so far. Serves rebalance handlers and logs consumer errors meanwhile.
 * Returns the number appended; records view librdkafka's buffers until rkb_consumer_release.
 * max may be 0 to only serve events. */
size_t rkb_consumer_poll(rkb_consumer_t *c, rkb_record_t *recs, size_t *cnt, size_t max,
                         int timeout_ms);
/* Gives a record's message back to librdkafka and clears the record. */
void rkb_consumer_release(rkb_record_t *rec);

/* The headers of a record that came from rkb_consumer_poll, in order, into out (up to max;
 * they view the message's memory). Returns how many the record has (may exceed max). */
size_t rkb_consumer_record_headers(const rkb_record_t *rec, rkb_header_t *out, size_t max);

/* Moves the fetch position of assigned partitions to parts[i].offset (absolute offsets only;
 * entries with a negative offset are left alone). Returns 0 or -1 (logged). */
int rkb_consumer_seek(rkb_consumer_t *c, const rkb_toppar_t *parts, size_t cnt);

/* Stores next offsets (parts[i].offset) to be committed. A partition no longer assigned is
 * skipped (librdkafka refuses it with _STATE; that is expected after a revocation). */
void rkb_consumer_store(rkb_consumer_t *c, const rkb_toppar_t *parts, size_t cnt);
/* Commits the stored offsets of the current assignment now, synchronously. Nothing new to
 * commit is success. Returns 0 or -1 (logged). */
int rkb_consumer_commit(rkb_consumer_t *c);

/* Pauses or resumes fetching of every assigned partition (the poll loop keeps running, so the
 * member stays in the group). */
void rkb_consumer_pause_all(rkb_consumer_t *c, bool pause);
bool rkb_consumer_paused(const rkb_consumer_t *c);
/* A second, independent reason to pause fetching: the owner's task is paused over the REST API.
 * Fetching runs only while neither pause_all nor hold asks to stop it, so resuming after an
 * outage does not end a hold, and the other way round. Returns hold. */
bool rkb_consumer_hold(rkb_consumer_t *c, bool hold);

/* Number of partitions currently assigned. */
size_t rkb_consumer_assignment_size(rkb_consumer_t *c);
/* The current assignment into *parts (malloc'd, each topic malloc'd: the caller frees both),
 * each offset the partition's position (the offset of the next record poll returns), or
 * RKB_OFFSET_INVALID before any was polled. Returns the count. */
size_t rkb_consumer_assignment(rkb_consumer_t *c, rkb_toppar_t **parts);

/* Commits, leaves the group and frees everything. Records must have been released first.
 * NULL is safe. */
void rkb_consumer_close(rkb_consumer_t *c);

#endif
