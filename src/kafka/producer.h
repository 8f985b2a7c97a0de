/*
 * producer.h — the Kafka producer rkbridge writes with (the sink's dead-letter topic, enrichment
 * and window results, the config topic, and the Redis → Kafka sources). All librdkafka producer
 * calls live here.
 *
 * Idempotent (enable.idempotence=true, so acks=all, ordered retries, no duplicates from
 * retries): a delivery report (DR) with no error means the broker has the record.
 * DRs are delivered by rkb_producer_poll/rkb_producer_flush on the caller's thread.
 *
 * @locality: one thread owns a producer (librdkafka runs its own threads behind it).
 */
#ifndef RKB_KAFKA_PRODUCER_H
#define RKB_KAFKA_PRODUCER_H

#include <stddef.h>
#include <stdint.h>

/* One header of a record to produce. value NULL = a null header; a non-NULL value with len 0
 * is an empty (not null) one. */
typedef struct rkb_header_s {
    const char *name;
    const void *value;
    size_t len;
} rkb_header_t;

/* Called once per produced record from rkb_producer_poll/flush: err 0 = delivered, else a
 * librdkafka error code with its text. msg_opaque is what rkb_producer_send was given.
 * Also called from inside rkb_producer_send (while it waits out a full queue) and
 * rkb_producer_destroy (records it could not deliver: _PURGE_QUEUE / _PURGE_INFLIGHT), always
 * on the owner's thread. */
typedef void(rkb_delivery_cb_t)(void *msg_opaque, int err, const char *errstr, void *opaque);

typedef struct rkb_producer_conf_s {
    const char *component; /* for log lines */
    const char *client_id;
    /* librdkafka properties as name/value pairs, applied after rkbridge's defaults (so the user
     * wins), except enable.idempotence which stays true. */
    const char *const *props;
    size_t prop_cnt; /* number of pairs */
    rkb_delivery_cb_t *on_delivery;
    void *opaque; /* passed to on_delivery */
} rkb_producer_conf_t;

typedef struct rkb_producer_s rkb_producer_t;

/* Returns NULL with errstr (naming the kafka.* property at fault when librdkafka rejects one). */
rkb_producer_t *rkb_producer_new(const rkb_producer_conf_t *conf, char *errstr, size_t errstr_size);

/* Queues one record (bytes are copied). partition -1 = by key. timestamp -1 = now (0 too:
 * librdkafka reads 0 as "now"). key/value NULL = null. A full local queue is waited out by
 * serving DRs (up to 10 s). Returns 0, or -1 with errstr (unknown topic known to the client,
 * queue still full, fatal producer error); then no DR will come. */
int rkb_producer_send(rkb_producer_t *p, const char *topic, int32_t partition, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      const rkb_header_t *headers, size_t header_cnt, int64_t timestamp,
                      void *msg_opaque, char *errstr, size_t errstr_size);

/* Makes the producer learn topic's partitions and leaders now: one Metadata request, waiting up
 * to timeout_ms for a broker to answer. Without it, a producer that starts before its first
 * broker connection is up learns a topic at librdkafka's next scan of unknown topics (every
 * second) and holds the records queued until then. Returns 0, or -1 with errstr (the broker
 * did not answer in time, or said the topic does not exist): records can be sent either way,
 * and go out once the topic is known. */
int rkb_producer_prepare_topic(rkb_producer_t *p, const char *topic, int timeout_ms, char *errstr,
                               size_t errstr_size);

/* Serves DRs for up to timeout_ms. */
void rkb_producer_poll(rkb_producer_t *p, int timeout_ms);
/* Waits until every queued record has its DR (up to timeout_ms). Returns the number still
 * outstanding (0 = all reported). */
int rkb_producer_flush(rkb_producer_t *p, int timeout_ms);
/* Records queued or in flight without a DR yet. */
int rkb_producer_outstanding(rkb_producer_t *p);
/* The fatal error that ended the producer (a librdkafka error code, its name and reason in
 * errstr), or 0 while it can still send. After a fatal error every send fails and the owner
 * must give up the producer (SEMANTICS.md §3.1). */
int rkb_producer_fatal_error(rkb_producer_t *p, char *errstr, size_t errstr_size);

/* The Kafka cluster's id (malloc'd, caller frees), or NULL when the brokers did not say within
 * timeout_ms. */
char *rkb_producer_cluster_id(rkb_producer_t *p, int timeout_ms);

/* Best effort: makes sure topic exists with `partitions` (<= 0: 1) and `replication_factor`
 * (-1 = broker default) through the Admin API; an existing topic is fine. Returns within
 * timeout_ms: 0, or -1 with errstr when the broker refused or did not answer in time. The dev
 * broker has no CreateTopics and names no usable controller, so there it always takes the
 * whole timeout_ms and returns -1 (it creates topics on first produce instead). */
int rkb_producer_ensure_topic(rkb_producer_t *p, const char *topic, int partitions,
                              int replication_factor, int timeout_ms, char *errstr,
                              size_t errstr_size);
/* The same, creating the topic with topic configs (name/value pairs, config_cnt pairs), e.g.
 * cleanup.policy=compact. An existing topic is left as it is. */
int rkb_producer_ensure_topic_with(rkb_producer_t *p, const char *topic, int partitions,
                                   int replication_factor, const char *const *configs,
                                   size_t config_cnt, int timeout_ms, char *errstr,
                                   size_t errstr_size);

/* Flushes (up to timeout_ms), then frees. Undelivered records get their DR with an error
 * (_PURGE_QUEUE, or _PURGE_INFLIGHT when a request was in flight: possibly written) before
 * this returns. NULL is safe. */
void rkb_producer_destroy(rkb_producer_t *p, int timeout_ms);

#endif
