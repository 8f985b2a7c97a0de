/*
 * task.c — the table of task kinds (see task.h). A new connector kind adds one entry here.
 */
#include "connect/task.h"

#include "sink/sink.h"

static void *sink_create(const rkb_config_t *conf, int task_id, char *errstr,
                         size_t errstr_size) {
    return rkb_sink_task_new(conf, task_id, errstr, errstr_size);
}

static int sink_run(void *task, const volatile int *stop, char *errstr, size_t errstr_size) {
    return rkb_sink_task_run(task, stop, errstr, errstr_size);
}

static void sink_destroy(void *task) {
    rkb_sink_task_destroy(task);
}

static const rkb_task_ops_t sink_ops = {
    .validate = rkb_sink_validate,
    .create = sink_create,
    .run = sink_run,
    .destroy = sink_destroy,
};

const rkb_task_ops_t *rkb_task_ops(rkb_connector_kind_t kind) {
    switch (kind) {
    case RKB_CONNECTOR_SINK:
        return &sink_ops;
    default:
        return NULL;
    }
}
