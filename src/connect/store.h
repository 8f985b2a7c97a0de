/*
 * store.h — where the worker keeps connectors created over the REST API: a compacted Kafka topic
 * (config.storage.topic), as Kafka Connect does, so that they come back when rkbridge restarts
 * and several rkbridge processes with the same topic share them (Kafka Connect's distributed
 * mode): after the load at start, the store keeps reading the topic (rkb_store_poll), so a
 * change another worker wrote reaches this one.
 *
 * Records, with Kafka Connect's key names: "connector-NAME" → {"properties":{...}} (the config
 * as submitted), "target-state-NAME" → {"state":"STARTED"|"PAUSED"|"STOPPED"}; deleting a
 * connector writes a tombstone for both. Every record goes to partition 0, so reading the topic
 * back replays them in the order they were written; the last record of each key wins.
 *
 * The topic is created (one partition, cleanup.policy=compact) when the broker does not know it.
 * The dev broker (librdkafka 2.0.2's mock) has no CreateTopics, and creates a topic with 4
 * partitions as soon as any Metadata request names it (even with allow.auto.create.topics=false),
 * so there the read at start creates it; that is fine since only partition 0 is used. A real
 * broker that refuses CreateTopics (e.g. a replication factor above its broker count) leaves the
 * creation to its auto.create.topics.enable at the first write.
 *
 * Records a worker wrote itself come back through the topic too. rkb_store_poll does not report
 * them (the worker applied the change when it wrote it), nor any record of a key read while a
 * write of this worker to that key is still on its way: the topic's single partition puts that
 * write after it, so it is older than what the worker holds.
 *
 * @locality one thread at a time (the worker serializes every call with its change lock); writes
 * block until the broker acknowledged the record (at most about 15 s).
 */
#ifndef RKB_CONNECT_STORE_H
#define RKB_CONNECT_STORE_H

#include "config/config.h"

#include <jansson.h>
#include <stddef.h>

typedef struct rkb_store_s rkb_store_t;

/* Called once per stored connector, in the order they were first written: config is the
 * submitted config (a JSON object of strings, borrowed), target_state "STARTED", "PAUSED",
 * "STOPPED" or NULL (never set). */
typedef void(rkb_store_connector_cb_t)(const char *name, json_t *config, const char *target_state,
                                       void *opaque);

/* The store of a worker config: NULL without errstr when there is none (config.storage.topic
 * empty, or no kafka.bootstrap.servers), NULL with errstr when its producer cannot be made. */
rkb_store_t *rkb_store_open(const rkb_config_t *worker, char *errstr, size_t errstr_size);
/* Reads the whole topic (creating it when the broker does not know it) and reports every
 * connector it holds. Returns 0, or -1 with errstr (broker unreachable, ...). */
int rkb_store_load(rkb_store_t *store, rkb_store_connector_cb_t *cb, void *opaque, char *errstr,
                   size_t errstr_size);
/* Writes a connector's config / target state, or its tombstones; each returns 0 once the broker
 * has the record, or -1 with errstr. */
/* What a record read by rkb_store_poll changed. */
typedef enum {
    RKB_STORE_CONFIG, /* config: the new config, or NULL: the connector was deleted;
                       * target_state: the last one stored for it (NULL: none), for a
                       * connector new to the worker */
    RKB_STORE_TARGET, /* target_state: the new one, or NULL: removed (a delete does that
                       * first, then removes the config); config NULL */
} rkb_store_change_t;

typedef void(rkb_store_change_cb_t)(const char *name, rkb_store_change_t what, json_t *config,
                                    const char *target_state, void *opaque);

/* Reports the records that reached the topic since the last call (or the load), in the topic's
 * order, without waiting (at most a few hundred per call). config is borrowed. Returns how many
 * were reported. Does nothing before a successful rkb_store_load. */
size_t rkb_store_poll(rkb_store_t *store, rkb_store_change_cb_t *cb, void *opaque);

int rkb_store_put_config(rkb_store_t *store, const char *name, const json_t *config, char *errstr,
                         size_t errstr_size);
int rkb_store_put_target(rkb_store_t *store, const char *name, const char *state, char *errstr,
                         size_t errstr_size);
int rkb_store_delete(rkb_store_t *store, const char *name, char *errstr, size_t errstr_size);

const char *rkb_store_topic(const rkb_store_t *store);
/* The Kafka cluster id as learned when the store was loaded, or NULL. */
const char *rkb_store_cluster_id(const rkb_store_t *store);

void rkb_store_destroy(rkb_store_t *store); /* NULL is safe */

#endif
