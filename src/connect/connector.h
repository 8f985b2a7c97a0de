/*
 * connector.h — runs one connector: tasks.max task threads built from one config, with their
 * states, as Kafka Connect's worker does. The kind's functions come from connect/task.h; the
 * worker (connect/worker.h) owns connectors and drives them.
 *
 * Each task has a control (task_ctl.h) for stop and pause, and its own metrics
 * (metrics/metrics.h), set as the thread's current task metrics while the task is built and
 * while it runs. A restarted task is a new instance: new task object, new metrics.
 *
 * @locality rkb_connector_start, _restart_task, _stop and _destroy: one thread (the worker's).
 * The readers (states, traces, counts, scrape) and rkb_connector_pause: any thread, as long as
 * the connector is not destroyed meanwhile (the worker's lock sees to that).
 */
#ifndef RKB_CONNECT_CONNECTOR_H
#define RKB_CONNECT_CONNECTOR_H

#include "config/config.h"
#include "connect/task.h"
#include "metrics/metrics.h"

#include <stdbool.h>
#include <stddef.h>

/* Kafka Connect's task states (AbstractStatus.State). */
typedef enum {
    RKB_TASK_RUNNING = 0,
    RKB_TASK_FAILED,
    RKB_TASK_STOPPED,    /* its run ended without failure (stop, redis.keys.timeout) */
    RKB_TASK_PAUSED,     /* running with intake paused, holding nothing (task_ctl.h) */
    RKB_TASK_UNASSIGNED, /* not started */
    RKB_TASK_RESTARTING,
} rkb_task_state_t;

/* "RUNNING", "FAILED", "STOPPED", "PAUSED", "UNASSIGNED", "RESTARTING". */
const char *rkb_task_state_name(rkb_task_state_t state);

typedef struct rkb_connector_s rkb_connector_t;

/* Starts the tasks of a valid config; paused: they start with intake paused. conf is taken
 * over: destroyed with the connector, or before this returns NULL.
 * Returns NULL with errstr if a task cannot even be built. */
rkb_connector_t *rkb_connector_start(rkb_config_t *conf, bool paused, char *errstr,
                                     size_t errstr_size);

const char *rkb_connector_name(const rkb_connector_t *conn);
const rkb_config_t *rkb_connector_config(const rkb_connector_t *conn);
size_t rkb_connector_task_count(const rkb_connector_t *conn);
rkb_task_state_t rkb_connector_task_state(const rkb_connector_t *conn, size_t task_id);
/* Copies why a FAILED task failed into buf; false (buf "") when it is not FAILED. */
bool rkb_connector_task_trace(rkb_connector_t *conn, size_t task_id, char *buf, size_t size);
/* Number of tasks whose thread runs (RUNNING, PAUSED, RESTARTING). */
size_t rkb_connector_running(const rkb_connector_t *conn);

/* Asks every task to pause (true) or resume (false); returns at once. */
void rkb_connector_pause(rkb_connector_t *conn, bool pause);
/* Stops task task_id in order (joins its thread), builds it again and starts it (paused if
 * the connector is). Returns 0, or -1 with errstr when it cannot be built: the task is then
 * FAILED with that trace. */
int rkb_connector_restart_task(rkb_connector_t *conn, size_t task_id, char *errstr,
                               size_t errstr_size);

/* What one task did so far, for metrics, health and the status line. */
typedef struct rkb_task_summary_s {
    rkb_task_counts_t counts;
    int64_t backlog;  /* consumer lag + stream pending entries */
    bool redis_down;  /* one of its Redis connections is known to be down */
} rkb_task_summary_t;

void rkb_connector_task_summary(rkb_connector_t *conn, size_t task_id, rkb_task_summary_t *out);
/* Adds every task's series (labels connector, task) to a scrape. */
void rkb_connector_scrape(rkb_connector_t *conn, rkb_scrape_t *s);

/* Asks every task to stop in order (see sink.h); returns at once. */
void rkb_connector_stop(rkb_connector_t *conn);
/* Stops (if not yet asked) and waits until every task thread ended; the states are final. */
void rkb_connector_wait(rkb_connector_t *conn);
/* Stops (if not yet asked), joins the task threads and frees. NULL is safe. */
void rkb_connector_destroy(rkb_connector_t *conn);

#endif
