/*
 * pubsub.h — the Redis pub/sub → Kafka source task: SUBSCRIBE to redis.pubsub.channels and
 * PSUBSCRIBE to redis.pubsub.patterns, produce each message to the topic template (${channel})
 * with the channel in a header. At-most-once by nature: Redis keeps nothing for a subscriber
 * that is away, so messages published while it reconnects are lost (documented).
 */
#ifndef RKB_SOURCE_PUBSUB_H
#define RKB_SOURCE_PUBSUB_H

#include "config/config.h"
#include "connect/task_ctl.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_pubsub_source_s rkb_pubsub_source_t;

/* Counters of one task; read from any thread. */
typedef struct rkb_pubsub_source_stats_s {
    _Atomic uint64_t received;  /* messages taken from the subscription */
    _Atomic uint64_t delivered; /* delivery reports without error */
    _Atomic uint64_t delivery_failed;
    _Atomic uint64_t dropped;    /* messages whose channel makes no legal topic name */
    _Atomic uint64_t reconnects; /* subscribed again after a loss */
    _Atomic uint64_t retries;    /* backoffs after a failure */
} rkb_pubsub_source_stats_t;

int rkb_pubsub_source_validate(const rkb_config_t *conf, rkb_errors_t *errs);
rkb_pubsub_source_t *rkb_pubsub_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                           size_t errstr_size);
/* Runs until ctl->stop or a failure. While ctl asks for a pause, no message is taken from the
 * subscription (Redis buffers them, up to its client-output-buffer-limit for pub/sub clients:
 * past it Redis drops the subscriber and what it held is lost, at-most-once). */
int rkb_pubsub_source_run(rkb_pubsub_source_t *src, rkb_task_ctl_t *ctl, char *errstr,
                          size_t errstr_size);
const rkb_pubsub_source_stats_t *rkb_pubsub_source_stats(const rkb_pubsub_source_t *src);
void rkb_pubsub_source_destroy(rkb_pubsub_source_t *src); /* NULL is safe */

#endif
