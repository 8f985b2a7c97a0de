/*
 * dlq.h — the sink's dead-letter topic, as Kafka Connect's DeadLetterQueueReporter does it.
 *
 * A record that cannot be written is produced to errors.deadletterqueue.topic.name with its
 * original key, value, headers and timestamp, plus (errors.deadletterqueue.context.headers.
 * enable) the __connect.errors.* context headers. Delivery is reported per record through the
 * callback given at creation; the sink stores a dead-lettered record's offset only after that
 * report said the broker has it.
 *
 * @locality: the task thread that owns it.
 */
#ifndef RKB_SINK_DLQ_H
#define RKB_SINK_DLQ_H

#include "config/config.h"
#include "kafka/producer.h"
#include "record/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka Connect's error stages, as in the __connect.errors.stage header. */
#define RKB_STAGE_KEY_CONVERTER   "KEY_CONVERTER"
#define RKB_STAGE_VALUE_CONVERTER "VALUE_CONVERTER"
#define RKB_STAGE_TASK_PUT        "TASK_PUT"
#define RKB_STAGE_TRANSFORMATION  "TRANSFORMATION" /* enrichment (process/enrich.h) */

/* Called for every record given to rkb_dlq_send: ok = the broker has it. */
typedef void(rkb_dlq_result_cb_t)(uint64_t seq, bool ok, const char *errstr, void *opaque);

typedef struct rkb_dlq_conf_s {
    const char *component;       /* log lines */
    const char *topic;           /* errors.deadletterqueue.topic.name */
    int replication_factor;      /* used if rkbridge creates the topic */
    bool context_headers;        /* add __connect.errors.* */
    const rkb_config_t *conf;    /* name, connector.class and kafka.* settings */
    int task_id;                 /* __connect.errors.task.id */
    rkb_dlq_result_cb_t *on_result;
    void *opaque;
} rkb_dlq_conf_t;

typedef struct rkb_dlq_s rkb_dlq_t;

/* Creates the producer (and the topic when the broker lets it). NULL with errstr. */
rkb_dlq_t *rkb_dlq_new(const rkb_dlq_conf_t *conf, char *errstr, size_t errstr_size);

/* Queues rec for the dead-letter topic. rec must come from the consumer (its headers are read
 * from the message). stage/reason fill the context headers. Returns 0, or -1 with errstr (then
 * no result will be reported for seq). */
int rkb_dlq_send(rkb_dlq_t *dlq, const rkb_record_t *rec, const char *stage, const char *reason,
                 uint64_t seq, char *errstr, size_t errstr_size);
/* The same, with extra headers after the original ones (e.g. a late window record's
 * x-late-reason, process/window.h); extra may be NULL when extra_cnt is 0. */
int rkb_dlq_send_with_headers(rkb_dlq_t *dlq, const rkb_record_t *rec, const rkb_header_t *extra,
                              size_t extra_cnt, const char *stage, const char *reason,
                              uint64_t seq, char *errstr, size_t errstr_size);

/* Waits up to timeout_ms for every queued record's result (reported through on_result).
 * Returns the number still without a result. */
int rkb_dlq_flush(rkb_dlq_t *dlq, int timeout_ms);

void rkb_dlq_destroy(rkb_dlq_t *dlq); /* NULL is safe */

#endif
