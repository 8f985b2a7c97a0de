/*
 * connector.c — task threads of one connector (see connector.h).
 *
 * A task slot holds the task instance (the kind's object), its metrics, its control and its
 * thread. The slot's lock guards the instance and metrics pointers and the failure trace
 * against readers on other threads while a restart swaps them; states are atomics.
 */
#include "connect/connector.h"

#include "util/log.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct task_s {
    rkb_connector_t *conn;
    int id;
    void *impl;                  /* the kind's task (task.h); under conn->lock */
    rkb_task_metrics_t *metrics; /* under conn->lock */
    rkb_task_ctl_t ctl;
    pthread_t thread;
    bool started; /* a thread to join */
    _Atomic int state;
    char error[1024]; /* why it FAILED; under conn->lock */
} task_t;

struct rkb_connector_s {
    rkb_config_t *conf;
    const rkb_task_ops_t *ops;
    char *name;
    pthread_mutex_t lock;
    _Atomic bool paused; /* applies to tasks started later too */
    task_t *tasks;
    size_t task_cnt;
};

const char *rkb_task_state_name(rkb_task_state_t state) {
    switch (state) {
    case RKB_TASK_RUNNING:
        return "RUNNING";
    case RKB_TASK_FAILED:
        return "FAILED";
    case RKB_TASK_STOPPED:
        return "STOPPED";
    case RKB_TASK_PAUSED:
        return "PAUSED";
    case RKB_TASK_UNASSIGNED:
        return "UNASSIGNED";
    case RKB_TASK_RESTARTING:
        return "RESTARTING";
    }
    return "UNASSIGNED";
}

/* The task thread. Its metrics are the thread's current ones, so that the clients it makes
 * and uses (redis/, kafka/) record into them. */
static void *task_main(void *arg) {
    task_t *task = arg;
    rkb_connector_t *conn = task->conn;
    char component[256];
    snprintf(component, sizeof(component), "%s/%d", conn->name, task->id);
    rkb_task_metrics_set_current(task->metrics);
    char error[sizeof(task->error)] = "";
    if (conn->ops->run(task->impl, &task->ctl, error, sizeof(error))) {
        rkb_log_error(component, "task FAILED: %s", error);
        pthread_mutex_lock(&conn->lock);
        snprintf(task->error, sizeof(task->error), "%s", error);
        pthread_mutex_unlock(&conn->lock);
        atomic_store(&task->state, RKB_TASK_FAILED);
    } else {
        atomic_store(&task->state, RKB_TASK_STOPPED);
    }
    rkb_task_metrics_set_current(NULL);
    return NULL;
}

/* Builds the task's instance and metrics (no I/O). Returns 0, or -1 with errstr. */
static int task_build(task_t *task, char *errstr, size_t errstr_size) {
    rkb_connector_t *conn = task->conn;
    rkb_task_metrics_t *metrics = rkb_task_metrics_new();
    /* Clients made while the task is built (the sink's Redis handle) belong to its metrics. */
    rkb_task_metrics_t *outer = rkb_task_metrics_current();
    rkb_task_metrics_set_current(metrics);
    void *impl = conn->ops->create(conn->conf, task->id, errstr, errstr_size);
    rkb_task_metrics_set_current(outer);
    if (!impl) {
        rkb_task_metrics_destroy(metrics);
        return -1;
    }
    pthread_mutex_lock(&conn->lock);
    task->impl = impl;
    task->metrics = metrics;
    task->error[0] = '\0';
    pthread_mutex_unlock(&conn->lock);
    return 0;
}

static int task_launch(task_t *task, char *errstr, size_t errstr_size) {
    task->ctl.stop = 0;
    rkb_task_ctl_pause(&task->ctl, atomic_load(&task->conn->paused));
    atomic_store(&task->ctl.paused, false);
    atomic_store(&task->state, RKB_TASK_RUNNING);
    if (pthread_create(&task->thread, NULL, task_main, task)) {
        snprintf(errstr, errstr_size, "cannot start a thread for task %d", task->id);
        pthread_mutex_lock(&task->conn->lock);
        snprintf(task->error, sizeof(task->error), "%s", errstr);
        pthread_mutex_unlock(&task->conn->lock);
        atomic_store(&task->state, RKB_TASK_FAILED);
        return -1;
    }
    task->started = true;
    return 0;
}

static void task_join(task_t *task) {
    task->ctl.stop = 1;
    if (task->started)
        pthread_join(task->thread, NULL);
    task->started = false;
}

/* Stops the task's thread in order and frees its instance and metrics. */
static void task_teardown(task_t *task) {
    rkb_connector_t *conn = task->conn;
    task_join(task);
    pthread_mutex_lock(&conn->lock);
    void *impl = task->impl;
    rkb_task_metrics_t *metrics = task->metrics;
    task->impl = NULL;
    task->metrics = NULL;
    pthread_mutex_unlock(&conn->lock);
    if (impl) /* impl exists only when ops does */
        conn->ops->destroy(impl);
    rkb_task_metrics_destroy(metrics);
}

rkb_connector_t *rkb_connector_start(rkb_config_t *conf, bool paused, char *errstr,
                                     size_t errstr_size) {
    rkb_connector_t *conn = rkb_calloc(1, sizeof(*conn));
    conn->conf = conf;
    conn->ops = rkb_task_ops(rkb_config_connector_kind(conf));
    conn->name = rkb_strdup(rkb_config_get(conf, "name"));
    pthread_mutex_init(&conn->lock, NULL);
    atomic_init(&conn->paused, paused);
    conn->task_cnt = (size_t)rkb_config_get_int(conf, "tasks.max");
    conn->tasks = rkb_calloc(conn->task_cnt, sizeof(*conn->tasks));
    for (size_t i = 0; i < conn->task_cnt; i++) {
        conn->tasks[i].conn = conn;
        conn->tasks[i].id = (int)i;
        atomic_init(&conn->tasks[i].state, RKB_TASK_UNASSIGNED);
    }
    if (!conn->ops) {
        snprintf(errstr, errstr_size, "unknown connector kind");
        rkb_connector_destroy(conn);
        return NULL;
    }

    for (size_t i = 0; i < conn->task_cnt; i++) {
        if (task_build(&conn->tasks[i], errstr, errstr_size)) {
            rkb_connector_destroy(conn);
            return NULL;
        }
    }
    for (size_t i = 0; i < conn->task_cnt; i++) {
        if (task_launch(&conn->tasks[i], errstr, errstr_size)) {
            rkb_connector_destroy(conn);
            return NULL;
        }
    }
    rkb_log_connector(RKB_LOG_INFO, conn->name, "connector started with %zu task%s%s",
                      conn->task_cnt, conn->task_cnt == 1 ? "" : "s", paused ? ", paused" : "");
    return conn;
}

const char *rkb_connector_name(const rkb_connector_t *conn) {
    return conn->name;
}

const rkb_config_t *rkb_connector_config(const rkb_connector_t *conn) {
    return conn->conf;
}

size_t rkb_connector_task_count(const rkb_connector_t *conn) {
    return conn->task_cnt;
}

rkb_task_state_t rkb_connector_task_state(const rkb_connector_t *conn, size_t task_id) {
    const task_t *task = &conn->tasks[task_id];
    rkb_task_state_t state = (rkb_task_state_t)atomic_load(&task->state);
    if (state == RKB_TASK_RUNNING && rkb_task_ctl_paused(&task->ctl))
        return RKB_TASK_PAUSED;
    return state;
}

bool rkb_connector_task_trace(rkb_connector_t *conn, size_t task_id, char *buf, size_t size) {
    task_t *task = &conn->tasks[task_id];
    pthread_mutex_lock(&conn->lock);
    bool failed = atomic_load(&task->state) == RKB_TASK_FAILED;
    snprintf(buf, size, "%s", failed ? task->error : "");
    pthread_mutex_unlock(&conn->lock);
    return failed;
}

size_t rkb_connector_running(const rkb_connector_t *conn) {
    size_t running = 0;
    for (size_t i = 0; i < conn->task_cnt; i++) {
        rkb_task_state_t state = rkb_connector_task_state(conn, i);
        running += state == RKB_TASK_RUNNING || state == RKB_TASK_PAUSED ||
                   state == RKB_TASK_RESTARTING;
    }
    return running;
}

void rkb_connector_pause(rkb_connector_t *conn, bool pause) {
    atomic_store(&conn->paused, pause);
    for (size_t i = 0; i < conn->task_cnt; i++)
        rkb_task_ctl_pause(&conn->tasks[i].ctl, pause);
    rkb_log_info(conn->name, "%s", pause ? "pausing" : "resuming");
}

int rkb_connector_restart_task(rkb_connector_t *conn, size_t task_id, char *errstr,
                               size_t errstr_size) {
    task_t *task = &conn->tasks[task_id];
    atomic_store(&task->state, RKB_TASK_RESTARTING);
    rkb_log_info(conn->name, "restarting task %zu", task_id);
    task_teardown(task);
    if (task_build(task, errstr, errstr_size)) {
        pthread_mutex_lock(&conn->lock);
        snprintf(task->error, sizeof(task->error), "%s", errstr);
        pthread_mutex_unlock(&conn->lock);
        atomic_store(&task->state, RKB_TASK_FAILED);
        rkb_log_error(conn->name, "task %zu cannot be built again: %s", task_id, errstr);
        return -1;
    }
    return task_launch(task, errstr, errstr_size);
}

void rkb_connector_task_summary(rkb_connector_t *conn, size_t task_id, rkb_task_summary_t *out) {
    task_t *task = &conn->tasks[task_id];
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&conn->lock);
    if (task->impl)
        conn->ops->counts(task->impl, &out->counts);
    if (task->metrics) {
        out->backlog = rkb_task_metrics_backlog(task->metrics);
        out->redis_down = rkb_task_metrics_redis_down(task->metrics);
    }
    pthread_mutex_unlock(&conn->lock);
}

static const rkb_metric_family_t fam_read = {
    "rkbridge_records_read_total", RKB_METRIC_COUNTER,
    "Records taken in: from Kafka (sink), from Redis (sources)"};
static const rkb_metric_family_t fam_written = {
    "rkbridge_records_written_total", RKB_METRIC_COUNTER,
    "Records acknowledged by their destination: Redis (sink), the Kafka broker (sources)"};
static const rkb_metric_family_t fam_failed = {
    "rkbridge_records_failed_total", RKB_METRIC_COUNTER,
    "Records that could not be written (sink) or delivered (sources, which produce them again)"};
static const rkb_metric_family_t fam_dead_lettered = {
    "rkbridge_records_dead_lettered_total", RKB_METRIC_COUNTER,
    "Failed records acknowledged by the dead-letter topic"};
static const rkb_metric_family_t fam_skipped = {
    "rkbridge_records_skipped_total", RKB_METRIC_COUNTER,
    "Records with nothing to write, or dropped as documented"};
static const rkb_metric_family_t fam_retries = {
    "rkbridge_retries_total", RKB_METRIC_COUNTER,
    "Transient failures (Redis or Kafka unavailable) waited out with a backoff"};
static const rkb_metric_family_t fam_state = {
    "rkbridge_task_state", RKB_METRIC_GAUGE,
    "1 for the task's current state (Kafka Connect's task states), 0 for the others"};

void rkb_connector_scrape(rkb_connector_t *conn, rkb_scrape_t *s) {
    static const rkb_task_state_t states[] = {RKB_TASK_UNASSIGNED, RKB_TASK_RUNNING,
                                              RKB_TASK_PAUSED,     RKB_TASK_FAILED,
                                              RKB_TASK_RESTARTING, RKB_TASK_STOPPED};
    for (size_t i = 0; i < conn->task_cnt; i++) {
        task_t *task = &conn->tasks[i];
        char id[16];
        snprintf(id, sizeof(id), "%d", task->id);
        const char *labels[] = {"connector", conn->name, "task", id, NULL};
        rkb_task_state_t current = rkb_connector_task_state(conn, i);
        for (size_t j = 0; j < RKB_ARRAY_SIZE(states); j++) {
            const char *state_labels[] = {"connector", conn->name, "task", id, "state",
                                          rkb_task_state_name(states[j]), NULL};
            rkb_scrape_add(s, &fam_state, state_labels, states[j] == current);
        }
        pthread_mutex_lock(&conn->lock);
        if (task->impl) {
            rkb_task_counts_t counts;
            conn->ops->counts(task->impl, &counts);
            rkb_scrape_add(s, &fam_read, labels, (double)counts.records_read);
            rkb_scrape_add(s, &fam_written, labels, (double)counts.records_written);
            rkb_scrape_add(s, &fam_failed, labels, (double)counts.records_failed);
            rkb_scrape_add(s, &fam_dead_lettered, labels, (double)counts.records_dead_lettered);
            rkb_scrape_add(s, &fam_skipped, labels, (double)counts.records_skipped);
            rkb_scrape_add(s, &fam_retries, labels, (double)counts.retries);
        }
        if (task->metrics)
            rkb_task_metrics_scrape(task->metrics, s, labels);
        pthread_mutex_unlock(&conn->lock);
    }
}

void rkb_connector_stop(rkb_connector_t *conn) {
    for (size_t i = 0; i < conn->task_cnt; i++)
        conn->tasks[i].ctl.stop = 1;
}

void rkb_connector_wait(rkb_connector_t *conn) {
    rkb_connector_stop(conn);
    for (size_t i = 0; i < conn->task_cnt; i++)
        task_join(&conn->tasks[i]);
}

void rkb_connector_destroy(rkb_connector_t *conn) {
    if (!conn)
        return;
    rkb_connector_stop(conn);
    for (size_t i = 0; i < conn->task_cnt; i++)
        task_teardown(&conn->tasks[i]);
    free(conn->tasks);
    free(conn->name);
    pthread_mutex_destroy(&conn->lock);
    rkb_config_destroy(conn->conf);
    free(conn);
}
