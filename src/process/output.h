/*
 * output.h — a processing step's output topic (enrich.output.topic): each processed record is
 * produced with the consumed record's key, headers and timestamp and its value as it is now
 * (rkb_record_value_bytes: the enriched JSON), partitioned by key, so that one key's records
 * keep their order. Delivery is reported per record through the callback given at creation; the
 * sink lets a record go on to Redis (and its offset be stored) only after that report said the
 * broker has it.
 *
 * @locality: the task thread that owns it (reports arrive on it, from rkb_output_flush).
 */
#ifndef RKB_PROCESS_OUTPUT_H
#define RKB_PROCESS_OUTPUT_H

#include "config/config.h"
#include "record/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called once for every record given to rkb_output_send: ok = the broker has it. */
typedef void(rkb_output_result_cb_t)(uint64_t seq, bool ok, const char *errstr, void *opaque);

typedef struct rkb_output_conf_s {
    const char *component;    /* log lines */
    const char *topic;        /* where records go */
    const rkb_config_t *conf; /* name and kafka.* settings of the producer */
    int task_id;
    rkb_output_result_cb_t *on_result;
    void *opaque;
} rkb_output_conf_t;

typedef struct rkb_output_s rkb_output_t;

/* Creates the (idempotent) producer. NULL with errstr. */
rkb_output_t *rkb_output_new(const rkb_output_conf_t *conf, char *errstr, size_t errstr_size);

/* Queues rec (which must come from the consumer: its headers are read from the message).
 * Returns 0, or -1 with errstr (then no result will be reported for seq). */
int rkb_output_send(rkb_output_t *out, rkb_record_t *rec, uint64_t seq, char *errstr,
                    size_t errstr_size);

/* Waits up to timeout_ms for every queued record's result (reported through on_result).
 * Returns the number still without a result. */
int rkb_output_flush(rkb_output_t *out, int timeout_ms);

void rkb_output_destroy(rkb_output_t *out); /* NULL is safe */

#endif
