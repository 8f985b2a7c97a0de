/*
 * worker.h — the worker: every connector of this process by name, what Kafka Connect's herder
 * does for one worker. It starts connectors from files and from the config topic
 * (connect/store.h), changes them on request (create, update, pause, resume, stop, restart,
 * delete: the REST API's verbs, http/rest.c), and answers for them in Kafka Connect's JSON
 * shapes (ConnectorInfo, ConnectorStateInfo, ConfigInfos), in GET /metrics and GET /health.
 *
 * Worker settings (RKB_SCOPE_WORKER in config_props.c) come from `run --worker FILE` and the
 * flags; its kafka.* settings are inherited by every connector that does not set them.
 *
 * Connectors created or changed over the REST API are written to the config topic before the
 * request is answered (so a 2xx means it is stored); connectors from files are run from their
 * file at every start, and REST changes to them last until the process ends.
 *
 * Several workers with the same config topic share its connectors (Kafka Connect's distributed
 * mode, without its task assignment): each keeps reading the topic and applies what the others
 * wrote — a connector created, its config changed (its tasks restart only when the config
 * differs), paused, resumed, stopped or deleted. Every worker runs every task of every stored
 * connector; sink tasks of one connector share the topic's partitions through its consumer group
 * (connect-NAME), stream source tasks share the streams through the Redis consumer group (each
 * process under its own consumer name: ${worker} in redis.stream.consumer.name).
 *
 * Threads and locks:
 * - Requests (REST threads) look and change under the worker's lock, and never block on a
 *   connector: what takes time (starting, stopping, restarting tasks) is only asked for, and
 *   done by rkb_worker_tick on the main thread, which holds the lock only to pick up the work.
 *   Changes are serialized among themselves by a second lock held across the config topic
 *   write, so two requests never interleave their store writes.
 * - Only the main thread destroys connectors, so a connector a request sees under the lock
 *   stays alive while it looks at it.
 */
#ifndef RKB_CONNECT_WORKER_H
#define RKB_CONNECT_WORKER_H

#include "config/config.h"
#include "metrics/metrics.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_worker_s rkb_worker_t;

/* Outcomes of requests; http/rest.c maps them to statuses. errstr says why for the errors. */
typedef enum {
    RKB_WORKER_OK = 0,
    RKB_WORKER_CREATED,       /* a new connector (PUT .../config) */
    RKB_WORKER_NOT_FOUND,     /* no such connector or task */
    RKB_WORKER_CONFLICT,      /* the connector exists already (POST /connectors) */
    RKB_WORKER_INVALID,       /* the request or the config is not valid */
    RKB_WORKER_STORE_FAILED,  /* the config topic could not be written: nothing changed */
    RKB_WORKER_UNAVAILABLE,   /* the config topic could not be read at start: no changes */
} rkb_worker_rc_t;

/* What a connector is asked to be (Kafka Connect's target states). */
typedef enum {
    RKB_TARGET_STARTED,
    RKB_TARGET_PAUSED,
    RKB_TARGET_STOPPED,
} rkb_target_t;

/* conf is a validated worker config, taken over. */
rkb_worker_t *rkb_worker_new(rkb_config_t *conf);
void rkb_worker_destroy(rkb_worker_t *w); /* stops everything first; NULL is safe */

const rkb_config_t *rkb_worker_config(const rkb_worker_t *w);
/* "HOST:PORT" of the REST API, shown as worker_id in statuses. */
void rkb_worker_set_id(rkb_worker_t *w, const char *worker_id);

/* Loads a connector file and validates it (inheriting the worker's kafka.* settings); adds
 * "FILE:LINE: key: why" lines to errs and returns false when it is not valid. A valid one is
 * registered, to be started by the first tick. @locality main thread, before rkb_worker_start */
bool rkb_worker_add_file(rkb_worker_t *w, const char *path, rkb_errors_t *errs);
/* Reads the config topic (if the worker has one) and registers the connectors it holds; a file
 * connector of the same name wins. Returns 0, or -1 with errstr when the topic cannot be read:
 * with required the worker cannot go on; without, it runs its files and answers requests that
 * would change connectors with RKB_WORKER_UNAVAILABLE (nothing is stored that could not be read
 * back). @locality main thread */
int rkb_worker_start(rkb_worker_t *w, bool required, char *errstr, size_t errstr_size);

/* Applies what other workers wrote to the config topic since the last tick (when no request is
 * changing a connector right then: it takes the change lock, without waiting for it), does what
 * requests asked for (start, stop, restart, delete), then waits up to wait_ms for the next
 * request (returns early when one comes). @locality main thread */
void rkb_worker_tick(rkb_worker_t *w, int wait_ms);
/* True when nothing runs or waits to: every task ended, nothing pending, and no connector held
 * paused or stopped on request. A run of connector files ends then. */
bool rkb_worker_idle(rkb_worker_t *w);
/* Stops every connector in order (all at once, each task as sink.h describes). Returns the
 * process exit code: 1 when a task or a connector FAILED, else 0. @locality main thread */
int rkb_worker_shutdown(rkb_worker_t *w);

/* ---- Requests (any thread). Returned JSON is a new reference for the caller. ---------------- */

/* GET /: {"version","commit","kafka_cluster_id"}. */
json_t *rkb_worker_root(rkb_worker_t *w);
/* GET /connectors: the names, sorted; with expand: {NAME: {"status": ..., "info": ...}}. */
json_t *rkb_worker_list(rkb_worker_t *w, bool expand_status, bool expand_info);
/* GET /connectors/NAME, .../config, .../status, .../tasks, .../tasks/ID/status. */
rkb_worker_rc_t rkb_worker_info(rkb_worker_t *w, const char *name, json_t **out);
rkb_worker_rc_t rkb_worker_get_config(rkb_worker_t *w, const char *name, json_t **out);
rkb_worker_rc_t rkb_worker_status(rkb_worker_t *w, const char *name, json_t **out);
rkb_worker_rc_t rkb_worker_tasks(rkb_worker_t *w, const char *name, json_t **out);
rkb_worker_rc_t rkb_worker_task_status(rkb_worker_t *w, const char *name, int task_id,
                                       json_t **out);

/* POST /connectors (create_only) and PUT /connectors/NAME/config: config is a JSON object of
 * strings (numbers and booleans are taken as their text); a "name" in it must be name. Validated
 * and stored before anything changes. *out: the ConnectorInfo. RKB_WORKER_CREATED or _OK. */
rkb_worker_rc_t rkb_worker_put(rkb_worker_t *w, const char *name, json_t *config,
                               bool create_only, json_t **out, char *errstr,
                               size_t errstr_size);
/* PUT .../pause, .../resume, .../stop. */
rkb_worker_rc_t rkb_worker_set_target(rkb_worker_t *w, const char *name, rkb_target_t target,
                                      char *errstr, size_t errstr_size);
/* POST .../restart: the connector (when it FAILED to start; onlyFailed: only then) and, with
 * include_tasks, its tasks (only_failed: the FAILED ones). *out (may be NULL): the status with
 * the instances to restart shown RESTARTING, or NULL when only the connector was concerned. */
rkb_worker_rc_t rkb_worker_restart(rkb_worker_t *w, const char *name, bool include_tasks,
                                   bool only_failed, json_t **out);
/* POST .../tasks/ID/restart. */
rkb_worker_rc_t rkb_worker_restart_task(rkb_worker_t *w, const char *name, int task_id);
/* DELETE /connectors/NAME: stored tombstones first, then stopped and gone. */
rkb_worker_rc_t rkb_worker_delete(rkb_worker_t *w, const char *name, char *errstr,
                                  size_t errstr_size);

/* GET /connector-plugins. */
json_t *rkb_worker_plugins(void);
/* PUT /connector-plugins/PLUGIN/config/validate: Kafka Connect's ConfigInfos, the problems of
 * rkbridge's own validation under the key they are about. */
rkb_worker_rc_t rkb_worker_validate(rkb_worker_t *w, const char *plugin, json_t *config,
                                    json_t **out, char *errstr, size_t errstr_size);

/* GET /metrics: every connector's series. */
void rkb_worker_scrape(rkb_worker_t *w, rkb_scrape_t *s);
/* GET /health: ready when every connector is RUNNING or PAUSED, so are its tasks, and none of
 * their Redis connections is down. The body says what is not ready. */
json_t *rkb_worker_health(rkb_worker_t *w, bool *ready);

/* The live status line (cli): totals over every task. */
typedef struct rkb_worker_summary_s {
    size_t connectors;
    size_t tasks_running, tasks_paused, tasks_failed;
    uint64_t records_written, records_failed;
    int64_t backlog; /* consumer lag + stream pending entries */
} rkb_worker_summary_t;

void rkb_worker_summary(rkb_worker_t *w, rkb_worker_summary_t *out);

#endif
