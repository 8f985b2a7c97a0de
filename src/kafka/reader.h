/*
 * reader.h — reads a topic once, from its beginning up to the end it had when the read started,
 * outside any consumer group: nothing is joined, nothing is committed. The keys source reads its
 * own topic with it at start, to learn which keys the topic still holds a value for, so that it
 * can send tombstones for keys deleted while it was not running (SEMANTICS.md §5.3 point 6).
 *
 * A tail (rkb_tail_*) follows one partition from an offset on, also outside any group: the
 * worker's config topic store keeps reading the records other workers write with it.
 *
 * @locality: the calling thread (librdkafka runs its own threads behind it, only during the call;
 * a tail's threads run from rkb_tail_new to rkb_tail_destroy).
 */
#ifndef RKB_KAFKA_READER_H
#define RKB_KAFKA_READER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rkb_reader_conf_s {
    const char *component; /* for log lines */
    const char *client_id;
    /* librdkafka properties as name/value pairs (the connector's kafka.* settings). */
    const char *const *props;
    size_t prop_cnt; /* number of pairs */
    /* Bounds each request to the broker (metadata, end offsets) and any stretch of time in
     * which no partition makes progress. */
    int timeout_ms;
    /* Optional: receives the topic's partition count (0: the broker does not know the topic). */
    int *partition_cnt;
} rkb_reader_conf_t;

/* Called for every record, in offset order within a partition (partitions interleave). key
 * and value view librdkafka's buffer for the duration of the call; value NULL = a tombstone,
 * key NULL = a null key. */
typedef void(rkb_reader_record_cb_t)(int32_t partition, int64_t offset, const void *key,
                                     size_t key_len, const void *value, size_t value_len,
                                     void *opaque);

/* Reads topic. A topic the broker does not know counts as empty. Returns 0, or -1 with errstr
 * (broker unreachable, no progress within timeout_ms, a property librdkafka refused): then
 * on_record may have seen part of the topic, and the caller should start over. */
int rkb_reader_read_topic(const rkb_reader_conf_t *conf, const char *topic,
                          rkb_reader_record_cb_t *on_record, void *opaque, char *errstr,
                          size_t errstr_size);

/* ---- Following one partition ------------------------------------------------------------- */

typedef struct rkb_tail_s rkb_tail_t;

/* Starts reading topic's partition at offset (a negative offset: from the beginning); conf's
 * timeout_ms and partition_cnt are not used. Records come through rkb_tail_poll. Returns NULL
 * with errstr when librdkafka refuses a property. A topic that does not exist yet is waited for
 * (it is read once it does). */
rkb_tail_t *rkb_tail_new(const rkb_reader_conf_t *conf, const char *topic, int32_t partition,
                         int64_t offset, char *errstr, size_t errstr_size);
/* Hands the records fetched by now to on_record, in offset order, at most max of them, without
 * waiting. Returns how many. Errors (broker down, ...) are retried by librdkafka and logged at
 * debug level. @locality one thread at a time */
size_t rkb_tail_poll(rkb_tail_t *tail, rkb_reader_record_cb_t *on_record, void *opaque,
                     size_t max);
void rkb_tail_destroy(rkb_tail_t *tail); /* NULL is safe */

#endif
