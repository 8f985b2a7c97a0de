/*
 * clients.h — the Redis and Kafka client settings every task builds from its connector config,
 * in one place so that the sink and the sources read the same keys the same way.
 */
#ifndef RKB_CONNECT_CLIENTS_H
#define RKB_CONNECT_CLIENTS_H

#include "config/config.h"
#include "kafka/producer.h"
#include "redis/redis.h"

#include <stddef.h>

/* Redis connection settings from redis.uri (else redis.host/redis.port), redis.username,
 * redis.password, redis.timeout and the TLS keys (redis.tls, redis.insecure, redis.cacert,
 * redis.cacert.dir, redis.key.cert, redis.key.file, redis.key.password, redis.sni); CLIENT
 * SETNAME "rkbridge:NAME:TASK" (spaces replaced).
 * out is initialized here (rkb_redis_conf_clear frees it). Returns 0, or -1 with errstr. */
int rkb_connect_redis_conf(const rkb_config_t *conf, int task_id, rkb_redis_conf_t *out,
                           char *errstr, size_t errstr_size);

/* The kafka.* settings as name/value pairs (prefix removed, in file order). */
typedef struct rkb_kafka_props_s {
    char **pairs; /* 2 * cnt strings, owned */
    size_t cnt;
} rkb_kafka_props_t;

void rkb_connect_kafka_props(const rkb_config_t *conf, rkb_kafka_props_t *out);
void rkb_kafka_props_clear(rkb_kafka_props_t *props);

/* A producer for task task_id with the kafka.* settings (client.id "rkbridge-NAME-TASKsuffix").
 * Returns NULL with errstr. */
rkb_producer_t *rkb_connect_producer_new(const rkb_config_t *conf, int task_id, const char *suffix,
                                         const char *component, rkb_delivery_cb_t *on_delivery,
                                         void *opaque, char *errstr, size_t errstr_size);

#endif
