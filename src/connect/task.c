/*
 * task.c — the table of task kinds (see task.h). A new connector kind adds one entry here.
 */
#include "connect/task.h"

#include "sink/sink.h"
#include "source/keys.h"
#include "source/pubsub.h"
#include "source/stream.h"

#include <string.h>

static void *sink_create(const rkb_config_t *conf, int task_id, char *errstr,
                         size_t errstr_size) {
    return rkb_sink_task_new(conf, task_id, errstr, errstr_size);
}

static int sink_run(void *task, rkb_task_ctl_t *ctl, char *errstr, size_t errstr_size) {
    return rkb_sink_task_run(task, ctl, errstr, errstr_size);
}

static void sink_counts(const void *task, rkb_task_counts_t *out) {
    const rkb_sink_stats_t *stats = rkb_sink_task_stats(task);
    *out = (rkb_task_counts_t){
        .records_read = atomic_load(&stats->records_read),
        .records_written = atomic_load(&stats->records_written),
        .records_failed = atomic_load(&stats->records_failed),
        .records_dead_lettered = atomic_load(&stats->records_dead_lettered),
        .records_skipped = atomic_load(&stats->records_skipped),
        .retries = atomic_load(&stats->retries),
    };
}

static void sink_destroy(void *task) {
    rkb_sink_task_destroy(task);
}

static const rkb_task_ops_t sink_ops = {
    .validate = rkb_sink_validate,
    .create = sink_create,
    .run = sink_run,
    .counts = sink_counts,
    .destroy = sink_destroy,
};

static void *stream_source_create(const rkb_config_t *conf, int task_id, char *errstr,
                                  size_t errstr_size) {
    return rkb_stream_source_new(conf, task_id, errstr, errstr_size);
}

static int stream_source_run(void *task, rkb_task_ctl_t *ctl, char *errstr, size_t errstr_size) {
    return rkb_stream_source_run(task, ctl, errstr, errstr_size);
}

/* Lost entries (trimmed while pending) count as failed: they never reached Kafka. */
static void stream_source_counts(const void *task, rkb_task_counts_t *out) {
    const rkb_stream_source_stats_t *stats = rkb_stream_source_stats(task);
    *out = (rkb_task_counts_t){
        .records_read = atomic_load(&stats->read),
        .records_written = atomic_load(&stats->produced),
        .records_failed = atomic_load(&stats->failed) + atomic_load(&stats->lost),
        .retries = atomic_load(&stats->retries),
    };
}

static void stream_source_destroy(void *task) {
    rkb_stream_source_destroy(task);
}

static const rkb_task_ops_t stream_source_ops = {
    .validate = rkb_stream_source_validate,
    .create = stream_source_create,
    .run = stream_source_run,
    .counts = stream_source_counts,
    .destroy = stream_source_destroy,
};

static void *keys_source_create(const rkb_config_t *conf, int task_id, char *errstr,
                                size_t errstr_size) {
    return rkb_keys_source_new(conf, task_id, errstr, errstr_size);
}

static int keys_source_run(void *task, rkb_task_ctl_t *ctl, char *errstr, size_t errstr_size) {
    return rkb_keys_source_run(task, ctl, errstr, errstr_size);
}

static void keys_source_counts(const void *task, rkb_task_counts_t *out) {
    const rkb_keys_source_stats_t *stats = rkb_keys_source_stats(task);
    *out = (rkb_task_counts_t){
        .records_read = atomic_load(&stats->events),
        .records_written = atomic_load(&stats->delivered),
        .records_failed = atomic_load(&stats->delivery_failed),
        .records_skipped = atomic_load(&stats->skipped),
        .retries = atomic_load(&stats->retries),
    };
}

static void keys_source_destroy(void *task) {
    rkb_keys_source_destroy(task);
}

static const rkb_task_ops_t keys_source_ops = {
    .validate = rkb_keys_source_validate,
    .create = keys_source_create,
    .run = keys_source_run,
    .counts = keys_source_counts,
    .destroy = keys_source_destroy,
};

static void *pubsub_source_create(const rkb_config_t *conf, int task_id, char *errstr,
                                  size_t errstr_size) {
    return rkb_pubsub_source_new(conf, task_id, errstr, errstr_size);
}

static int pubsub_source_run(void *task, rkb_task_ctl_t *ctl, char *errstr, size_t errstr_size) {
    return rkb_pubsub_source_run(task, ctl, errstr, errstr_size);
}

static void pubsub_source_counts(const void *task, rkb_task_counts_t *out) {
    const rkb_pubsub_source_stats_t *stats = rkb_pubsub_source_stats(task);
    *out = (rkb_task_counts_t){
        .records_read = atomic_load(&stats->received),
        .records_written = atomic_load(&stats->delivered),
        .records_failed = atomic_load(&stats->delivery_failed),
        .records_skipped = atomic_load(&stats->dropped),
        .retries = atomic_load(&stats->retries),
    };
}

static void pubsub_source_destroy(void *task) {
    rkb_pubsub_source_destroy(task);
}

static const rkb_task_ops_t pubsub_source_ops = {
    .validate = rkb_pubsub_source_validate,
    .create = pubsub_source_create,
    .run = pubsub_source_run,
    .counts = pubsub_source_counts,
    .destroy = pubsub_source_destroy,
};

const rkb_task_ops_t *rkb_task_ops(rkb_connector_kind_t kind) {
    switch (kind) {
    case RKB_CONNECTOR_SINK:
        return &sink_ops;
    case RKB_CONNECTOR_STREAM_SOURCE:
        return &stream_source_ops;
    case RKB_CONNECTOR_KEYS_SOURCE:
        return &keys_source_ops;
    case RKB_CONNECTOR_PUBSUB_SOURCE:
        return &pubsub_source_ops;
    default:
        return NULL;
    }
}
