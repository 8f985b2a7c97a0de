/*
 * connector.c — task threads of one connector (see connector.h).
 */
#include "connect/connector.h"

#include "connect/task.h"
#include "util/log.h"
#include "util/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct task_s {
    rkb_connector_t *conn;
    int id;
    void *impl; /* the kind's task (task.h) */
    pthread_t thread;
    bool started;
    _Atomic int state;
    char error[1024];
} task_t;

struct rkb_connector_s {
    rkb_config_t *conf;
    const rkb_task_ops_t *ops;
    char *name;
    volatile int stop;
    task_t *tasks;
    size_t task_cnt;
};

const char *rkb_task_state_name(rkb_task_state_t state) {
    switch (state) {
    case RKB_TASK_RUNNING:
        return "RUNNING";
    case RKB_TASK_FAILED:
        return "FAILED";
    default:
        return "STOPPED";
    }
}

static void *task_main(void *arg) {
    task_t *task = arg;
    char component[256];
    snprintf(component, sizeof(component), "%s/%d", task->conn->name, task->id);
    if (task->conn->ops->run(task->impl, &task->conn->stop, task->error, sizeof(task->error))) {
        rkb_log_error(component, "task FAILED: %s", task->error);
        atomic_store(&task->state, RKB_TASK_FAILED);
    } else {
        atomic_store(&task->state, RKB_TASK_STOPPED);
    }
    return NULL;
}

rkb_connector_t *rkb_connector_start(rkb_config_t *conf, char *errstr, size_t errstr_size) {
    rkb_connector_t *conn = rkb_calloc(1, sizeof(*conn));
    conn->conf = conf;
    conn->ops = rkb_task_ops(rkb_config_connector_kind(conf));
    conn->name = rkb_strdup(rkb_config_get(conf, "name"));
    conn->task_cnt = (size_t)rkb_config_get_int(conf, "tasks.max");
    conn->tasks = rkb_calloc(conn->task_cnt, sizeof(*conn->tasks));

    for (size_t i = 0; i < conn->task_cnt; i++) {
        task_t *task = &conn->tasks[i];
        task->conn = conn;
        task->id = (int)i;
        task->impl = conn->ops ? conn->ops->create(conf, task->id, errstr, errstr_size) : NULL;
        if (!task->impl) {
            if (!conn->ops)
                snprintf(errstr, errstr_size, "unknown connector kind");
            rkb_connector_destroy(conn);
            return NULL;
        }
    }
    for (size_t i = 0; i < conn->task_cnt; i++) {
        task_t *task = &conn->tasks[i];
        atomic_store(&task->state, RKB_TASK_RUNNING);
        if (pthread_create(&task->thread, NULL, task_main, task)) {
            snprintf(errstr, errstr_size, "cannot start a thread for task %zu", i);
            atomic_store(&task->state, RKB_TASK_FAILED);
            rkb_connector_destroy(conn);
            return NULL;
        }
        task->started = true;
    }
    rkb_log_connector(RKB_LOG_INFO, conn->name, "connector started with %zu task%s", conn->task_cnt,
                      conn->task_cnt == 1 ? "" : "s");
    return conn;
}

const char *rkb_connector_name(const rkb_connector_t *conn) {
    return conn->name;
}

size_t rkb_connector_task_count(const rkb_connector_t *conn) {
    return conn->task_cnt;
}

rkb_task_state_t rkb_connector_task_state(const rkb_connector_t *conn, size_t task_id) {
    return (rkb_task_state_t)atomic_load(&conn->tasks[task_id].state);
}

size_t rkb_connector_running(const rkb_connector_t *conn) {
    size_t running = 0;
    for (size_t i = 0; i < conn->task_cnt; i++)
        running += rkb_connector_task_state(conn, i) == RKB_TASK_RUNNING;
    return running;
}

void rkb_connector_stop(rkb_connector_t *conn) {
    conn->stop = 1;
}

void rkb_connector_destroy(rkb_connector_t *conn) {
    if (!conn)
        return;
    conn->stop = 1;
    for (size_t i = 0; i < conn->task_cnt; i++) {
        if (conn->tasks[i].started)
            pthread_join(conn->tasks[i].thread, NULL);
        if (conn->ops && conn->tasks[i].impl) /* impl exists only when ops does */
            conn->ops->destroy(conn->tasks[i].impl);
    }
    free(conn->tasks);
    free(conn->name);
    rkb_config_destroy(conn->conf);
    free(conn);
}
