/*
 * task.h — what the connector runtime needs from each kind of task (sink, sources): one table
 * of functions per connector kind, so connect/ and the CLI never switch on the kind.
 */
#ifndef RKB_CONNECT_TASK_H
#define RKB_CONNECT_TASK_H

#include "config/config.h"

#include <stddef.h>

typedef struct rkb_task_ops_s {
    /* Checks what only this kind knows, on top of rkb_config_validate; adds
     * "ORIGIN: key: why" lines to errs and returns their number. */
    int (*validate)(const rkb_config_t *conf, rkb_errors_t *errs);
    /* Builds task task_id of a valid config (which outlives the task). No I/O. NULL with
     * errstr on failure. */
    void *(*create)(const rkb_config_t *conf, int task_id, char *errstr, size_t errstr_size);
    /* Runs on the calling thread until *stop (then shuts down in order) or a failure:
     * returns 0 when stopped, -1 when FAILED (errstr says why). */
    int (*run)(void *task, const volatile int *stop, char *errstr, size_t errstr_size);
    void (*destroy)(void *task); /* NULL is safe */
} rkb_task_ops_t;

/* The functions of a connector kind, or NULL for RKB_CONNECTOR_UNKNOWN. */
const rkb_task_ops_t *rkb_task_ops(rkb_connector_kind_t kind);

#endif
