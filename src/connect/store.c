/*
 * store.c — connectors kept in the config topic (see store.h): read back with kafka/reader.c at
 * start, written with kafka/producer.c, one acknowledged record per change.
 */
#include "connect/store.h"

#include "connect/clients.h"
#include "kafka/producer.h"
#include "kafka/reader.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT         "config-store"
#define READ_TIMEOUT_MS   10000
#define CREATE_TIMEOUT_MS 2000  /* CreateTopics; the dev broker never answers it */
#define DELIVERY_MS       10000 /* message.timeout.ms of the store's records */
#define FLUSH_MS          15000 /* > DELIVERY_MS: a report always comes before this */

struct rkb_store_s {
    char *topic;
    int replication_factor;
    rkb_kafka_props_t props; /* the worker's kafka.* settings */
    rkb_producer_t *producer;
    char *cluster_id;
    /* The delivery report of the record being written. */
    int result; /* 1: waiting, 0: delivered, else the error */
    char why[256];
};

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_store_t *store = opaque;
    store->result = err;
    snprintf(store->why, sizeof(store->why), "%s", err ? errstr : "");
}

rkb_store_t *rkb_store_open(const rkb_config_t *worker, char *errstr, size_t errstr_size) {
    errstr[0] = '\0';
    const char *topic = rkb_config_get(worker, "config.storage.topic");
    bool has_bootstrap = false;
    rkb_kafka_props_t props;
    rkb_connect_kafka_props(worker, &props);
    for (size_t i = 0; i < props.cnt; i++)
        has_bootstrap |= !strcmp(props.pairs[2 * i], "bootstrap.servers");
    if (!topic || !*topic || !has_bootstrap) {
        rkb_kafka_props_clear(&props);
        return NULL;
    }

    rkb_store_t *store = rkb_calloc(1, sizeof(*store));
    store->topic = rkb_strdup(topic);
    store->replication_factor = (int)rkb_config_get_int(worker, "config.storage.replication.factor");
    store->props = props;
    /* The worker's settings, then a delivery timeout short enough for a REST request to wait
     * for: a record that cannot be written fails within it instead of minutes later. */
    size_t cnt = props.cnt + 1;
    const char **pairs = rkb_calloc(2 * cnt, sizeof(*pairs));
    for (size_t i = 0; i < 2 * props.cnt; i++)
        pairs[i] = props.pairs[i];
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%d", DELIVERY_MS);
    pairs[2 * props.cnt] = "message.timeout.ms";
    pairs[2 * props.cnt + 1] = timeout;
    rkb_producer_conf_t pc = {
        .component = COMPONENT,
        .client_id = "rkbridge-config-store",
        .props = pairs,
        .prop_cnt = cnt,
        .on_delivery = on_delivery,
        .opaque = store,
    };
    store->producer = rkb_producer_new(&pc, errstr, errstr_size);
    free(pairs);
    if (!store->producer) {
        rkb_store_destroy(store);
        return NULL;
    }
    return store;
}

/* ---- Reading back ----------------------------------------------------------------------------- */

typedef struct stored_s {
    char *name;
    json_t *config; /* NULL: deleted (or never written) */
    char *target;
} stored_t;

typedef struct load_s {
    rkb_store_t *store;
    stored_t *items;
    size_t cnt;
    size_t skipped;
} load_t;

static stored_t *stored_find(load_t *load, const char *name) {
    for (size_t i = 0; i < load->cnt; i++)
        if (!strcmp(load->items[i].name, name))
            return &load->items[i];
    load->items = rkb_realloc(load->items, (load->cnt + 1) * sizeof(*load->items));
    stored_t *item = &load->items[load->cnt++];
    memset(item, 0, sizeof(*item));
    item->name = rkb_strdup(name);
    return item;
}

/* The config of a {"properties":{...}} value, if every property is a string (new reference). */
static json_t *parse_config(const void *value, size_t len) {
    json_t *root = json_loadb(value, len, 0, NULL);
    json_t *props = json_object_get(root, "properties");
    json_t *config = NULL;
    if (json_is_object(props)) {
        const char *key;
        json_t *v;
        bool ok = true;
        json_object_foreach(props, key, v) ok &= json_is_string(v);
        if (ok)
            config = json_incref(props);
    }
    json_decref(root);
    return config;
}

static char *parse_state(const void *value, size_t len) {
    json_t *root = json_loadb(value, len, 0, NULL);
    const char *state = json_string_value(json_object_get(root, "state"));
    char *copy = NULL;
    if (state && (!strcmp(state, "STARTED") || !strcmp(state, "PAUSED") ||
                  !strcmp(state, "STOPPED")))
        copy = rkb_strdup(state);
    json_decref(root);
    return copy;
}

static void on_record(int32_t partition, int64_t offset, const void *key, size_t key_len,
                      const void *value, size_t value_len, void *opaque) {
    load_t *load = opaque;
    char *name = key ? rkb_strndup(key, key_len) : NULL;
    stored_t *item = NULL;
    bool config_key = name && !strncmp(name, "connector-", 10) && name[10];
    bool target_key = name && !strncmp(name, "target-state-", 13) && name[13];
    if (config_key) {
        item = stored_find(load, name + 10);
        json_decref(item->config);
        item->config = value ? parse_config(value, value_len) : NULL;
        if (value && !item->config)
            load->skipped++;
    } else if (target_key) {
        item = stored_find(load, name + 13);
        free(item->target);
        item->target = value ? parse_state(value, value_len) : NULL;
    } else {
        load->skipped++; /* another writer's record (Connect's task-, commit- keys): not ours */
    }
    free(name);
}

int rkb_store_load(rkb_store_t *store, rkb_store_connector_cb_t *cb, void *opaque, char *errstr,
                   size_t errstr_size) {
    load_t load = {.store = store};
    int partition_cnt = 0;
    rkb_reader_conf_t rc = {
        .component = COMPONENT,
        .client_id = "rkbridge-config-store",
        .props = (const char *const *)store->props.pairs,
        .prop_cnt = store->props.cnt,
        .timeout_ms = READ_TIMEOUT_MS,
        .partition_cnt = &partition_cnt,
    };
    char why[512];
    int rc_read = rkb_reader_read_topic(&rc, store->topic, on_record, &load, why, sizeof(why));
    if (rc_read) {
        snprintf(errstr, errstr_size, "reading the connector configurations from topic %s: %s",
                 store->topic, why);
    } else {
        if (partition_cnt == 0) {
            /* Kafka Connect's config topic: one partition (a total order), compacted (the
             * last record of each key is all that matters). */
            static const char *const configs[] = {"cleanup.policy", "compact"};
            if (rkb_producer_ensure_topic_with(store->producer, store->topic, 1,
                                               store->replication_factor, configs, 1,
                                               CREATE_TIMEOUT_MS, why, sizeof(why)))
                rkb_log_info(COMPONENT, "%s not created (%s); the first write creates it", store->topic,
                             why);
            else
                rkb_log_info(COMPONENT, "created topic %s (compacted)", store->topic);
        }
        size_t kept = 0;
        for (size_t i = 0; i < load.cnt; i++) {
            if (!load.items[i].config)
                continue;
            cb(load.items[i].name, load.items[i].config, load.items[i].target, opaque);
            kept++;
        }
        rkb_log_info(COMPONENT, "topic %s holds %zu connector%s%s", store->topic, kept,
                     kept == 1 ? "" : "s",
                     load.skipped ? " (records that are not rkbridge's were skipped)" : "");
        store->cluster_id = rkb_producer_cluster_id(store->producer, 2000);
    }
    for (size_t i = 0; i < load.cnt; i++) {
        free(load.items[i].name);
        json_decref(load.items[i].config);
        free(load.items[i].target);
    }
    free(load.items);
    return rc_read ? -1 : 0;
}

/* ---- Writing ---------------------------------------------------------------------------------- */

/* Writes one record to partition 0 and waits for its delivery report. value NULL: a
 * tombstone. */
static int put(rkb_store_t *store, const char *key, const char *value, char *errstr,
               size_t errstr_size) {
    store->result = 1;
    char why[512];
    if (rkb_producer_send(store->producer, store->topic, 0, key, strlen(key), value,
                          value ? strlen(value) : 0, NULL, 0, -1, NULL, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "topic %s: %s", store->topic, why);
        return -1;
    }
    if (rkb_producer_flush(store->producer, FLUSH_MS) || store->result == 1) {
        snprintf(errstr, errstr_size, "topic %s: no delivery report within %d ms", store->topic,
                 FLUSH_MS);
        return -1;
    }
    if (store->result) {
        snprintf(errstr, errstr_size, "topic %s: %s", store->topic, store->why);
        return -1;
    }
    return 0;
}

int rkb_store_put_config(rkb_store_t *store, const char *name, const json_t *config, char *errstr,
                         size_t errstr_size) {
    json_t *root = json_pack("{sO}", "properties", (json_t *)config);
    char *value = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *key = NULL;
    rkb_buf_t buf;
    rkb_buf_init(&buf);
    rkb_buf_appendf(&buf, "connector-%s", name);
    key = buf.data;
    int rc = put(store, key, value, errstr, errstr_size);
    free(value);
    rkb_buf_free(&buf);
    return rc;
}

int rkb_store_put_target(rkb_store_t *store, const char *name, const char *state, char *errstr,
                         size_t errstr_size) {
    rkb_buf_t key, value;
    rkb_buf_init(&key);
    rkb_buf_init(&value);
    rkb_buf_appendf(&key, "target-state-%s", name);
    rkb_buf_appendf(&value, "{\"state\":\"%s\"}", state);
    int rc = put(store, key.data, value.data, errstr, errstr_size);
    rkb_buf_free(&key);
    rkb_buf_free(&value);
    return rc;
}

int rkb_store_delete(rkb_store_t *store, const char *name, char *errstr, size_t errstr_size) {
    rkb_buf_t key;
    rkb_buf_init(&key);
    rkb_buf_appendf(&key, "target-state-%s", name);
    int rc = put(store, key.data, NULL, errstr, errstr_size);
    rkb_buf_reset(&key);
    rkb_buf_appendf(&key, "connector-%s", name);
    if (!rc)
        rc = put(store, key.data, NULL, errstr, errstr_size);
    rkb_buf_free(&key);
    return rc;
}

const char *rkb_store_topic(const rkb_store_t *store) {
    return store->topic;
}

const char *rkb_store_cluster_id(const rkb_store_t *store) {
    return store->cluster_id;
}

void rkb_store_destroy(rkb_store_t *store) {
    if (!store)
        return;
    rkb_producer_destroy(store->producer, 5000);
    rkb_kafka_props_clear(&store->props);
    free(store->topic);
    free(store->cluster_id);
    free(store);
}
