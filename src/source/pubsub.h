/*
 * pubsub.h — the Redis pub/sub → Kafka source task: SUBSCRIBE to redis.pubsub.channels and
 * PSUBSCRIBE to redis.pubsub.patterns, produce each message to the topic template (${channel})
 * with the channel in a header. At-most-once by nature: Redis keeps nothing for a subscriber
 * that is away, so messages published while it reconnects are lost (documented).
 */
#ifndef RKB_SOURCE_PUBSUB_H
#define RKB_SOURCE_PUBSUB_H

#include "config/config.h"

#include <stddef.h>

typedef struct rkb_pubsub_source_s rkb_pubsub_source_t;

int rkb_pubsub_source_validate(const rkb_config_t *conf, rkb_errors_t *errs);
rkb_pubsub_source_t *rkb_pubsub_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                           size_t errstr_size);
int rkb_pubsub_source_run(rkb_pubsub_source_t *src, const volatile int *stop, char *errstr,
                          size_t errstr_size);
void rkb_pubsub_source_destroy(rkb_pubsub_source_t *src); /* NULL is safe */

#endif
