/*
 * task.h — what the connector runtime needs from each kind of task (sink, sources): one table
 * of functions per connector kind, so connect/ and the CLI never switch on the kind.
 */
#ifndef RKB_CONNECT_TASK_H
#define RKB_CONNECT_TASK_H

#include "config/config.h"
#include "connect/task_ctl.h"

#include <stddef.h>
#include <stdint.h>

/* What every kind counts, in the words of GET /metrics. Each kind keeps its own counters in
 * atomics; counts() copies them into this common shape. */
typedef struct rkb_task_counts_s {
    uint64_t records_read;          /* taken in: from Kafka (sink), from Redis (sources) */
    uint64_t records_written;       /* acknowledged: by Redis (sink), by the broker (sources) */
    uint64_t records_failed;        /* could not be written or delivered (sources retry them) */
    uint64_t records_dead_lettered; /* of the failed, acknowledged by the dead-letter topic */
    uint64_t records_skipped;       /* nothing to write, or dropped as documented */
    uint64_t retries;               /* transient failures waited out */
} rkb_task_counts_t;

typedef struct rkb_task_ops_s {
    /* Checks what only this kind knows, on top of rkb_config_validate; adds
     * "ORIGIN: key: why" lines to errs and returns their number. */
    int (*validate)(const rkb_config_t *conf, rkb_errors_t *errs);
    /* Builds task task_id of a valid config (which outlives the task). No I/O. NULL with
     * errstr on failure. */
    void *(*create)(const rkb_config_t *conf, int task_id, char *errstr, size_t errstr_size);
    /* Runs on the calling thread until ctl->stop (then shuts down in order) or a failure,
     * holding intake while ctl asks for a pause (task_ctl.h): returns 0 when stopped, -1 when
     * FAILED (errstr says why). */
    int (*run)(void *task, rkb_task_ctl_t *ctl, char *errstr, size_t errstr_size);
    /* The task's counters. @locality any thread, while the task exists */
    void (*counts)(const void *task, rkb_task_counts_t *out);
    void (*destroy)(void *task); /* NULL is safe */
} rkb_task_ops_t;

/* The functions of a connector kind, or NULL for RKB_CONNECTOR_UNKNOWN. */
const rkb_task_ops_t *rkb_task_ops(rkb_connector_kind_t kind);

#endif
