/*
 * connector.h — runs one connector: tasks.max task threads built from one config, with their
 * states, as Kafka Connect's worker does. The kind's functions come from connect/task.h.
 */
#ifndef RKB_CONNECT_CONNECTOR_H
#define RKB_CONNECT_CONNECTOR_H

#include "config/config.h"

#include <stddef.h>

typedef enum {
    RKB_TASK_RUNNING = 0,
    RKB_TASK_FAILED,
    RKB_TASK_STOPPED,
} rkb_task_state_t;

const char *rkb_task_state_name(rkb_task_state_t state); /* "RUNNING", "FAILED", "STOPPED" */

typedef struct rkb_connector_s rkb_connector_t;

/* Starts the tasks of a valid config. conf is taken over: destroyed with the connector, or
 * before this returns NULL.
 * Returns NULL with errstr if a task cannot even be built. */
rkb_connector_t *rkb_connector_start(rkb_config_t *conf, char *errstr, size_t errstr_size);

const char *rkb_connector_name(const rkb_connector_t *conn);
size_t rkb_connector_task_count(const rkb_connector_t *conn);
rkb_task_state_t rkb_connector_task_state(const rkb_connector_t *conn, size_t task_id);
/* Number of tasks still RUNNING. */
size_t rkb_connector_running(const rkb_connector_t *conn);

/* Asks every task to stop in order (see sink.h); returns at once. */
void rkb_connector_stop(rkb_connector_t *conn);
/* Stops (if not yet asked), joins the task threads and frees. NULL is safe. */
void rkb_connector_destroy(rkb_connector_t *conn);

#endif
