/*
 * store.c — connectors kept in the config topic (see store.h): read back with kafka/reader.c at
 * start and followed with its tail afterwards, written with kafka/producer.c, one acknowledged
 * record per change.
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
#define TAIL_FETCH_WAIT   "200" /* fetch.wait.max.ms of the tail: another worker's change is
                                 * seen within about this (plus a tick) */
#define POLL_MAX          256   /* records reported per rkb_store_poll */

/* A connector as the topic holds it so far. */
typedef struct stored_s {
    char *name;
    json_t *config; /* NULL: deleted (or never written) */
    char *target;
} stored_t;

/* A record this worker wrote that the tail has not read back yet. */
typedef struct echo_s {
    char *key;
    char *value; /* NULL: a tombstone */
} echo_t;

struct rkb_store_s {
    char *topic;
    int replication_factor;
    rkb_kafka_props_t props; /* the worker's kafka.* settings */
    rkb_producer_t *producer;
    char *cluster_id;
    /* The delivery report of the record being written. */
    int result; /* 1: waiting, 0: delivered, else the error */
    char why[256];
    /* What the topic holds, as read so far (the load, then the tail). */
    stored_t *items;
    size_t item_cnt;
    int64_t next_offset; /* of partition 0 after the load; -1: nothing read */
    rkb_tail_t *tail;    /* from the load on */
    echo_t *echoes;      /* own writes not read back yet, oldest first */
    size_t echo_cnt;
    size_t skipped; /* records that are not rkbridge's */
};

/* The worker's kafka.* settings plus one more pair (malloc'd array of borrowed strings). */
static const char **props_with(const rkb_store_t *store, const char *name, const char *value,
                               size_t *cnt) {
    *cnt = store->props.cnt + 1;
    const char **pairs = rkb_calloc(2 * *cnt, sizeof(*pairs));
    for (size_t i = 0; i < 2 * store->props.cnt; i++)
        pairs[i] = store->props.pairs[i];
    pairs[2 * store->props.cnt] = name;
    pairs[2 * store->props.cnt + 1] = value;
    return pairs;
}

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
    store->next_offset = -1;
    /* The worker's settings, then a delivery timeout short enough for a REST request to wait
     * for: a record that cannot be written fails within it instead of minutes later. */
    char timeout[32];
    snprintf(timeout, sizeof(timeout), "%d", DELIVERY_MS);
    size_t cnt;
    const char **pairs = props_with(store, "message.timeout.ms", timeout, &cnt);
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

static stored_t *stored_find(rkb_store_t *store, const char *name) {
    for (size_t i = 0; i < store->item_cnt; i++)
        if (!strcmp(store->items[i].name, name))
            return &store->items[i];
    store->items = rkb_realloc(store->items, (store->item_cnt + 1) * sizeof(*store->items));
    stored_t *item = &store->items[store->item_cnt++];
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

/* Applies one record to the items. Returns the item it changed, or NULL when the record is not
 * rkbridge's (Connect's task-, commit- keys, a value it cannot parse); *what says which half. */
static stored_t *apply_record(rkb_store_t *store, const char *key, const void *value,
                              size_t value_len, rkb_store_change_t *what) {
    stored_t *item = NULL;
    if (!strncmp(key, "connector-", 10) && key[10]) {
        json_t *config = value ? parse_config(value, value_len) : NULL;
        if (value && !config)
            return NULL;
        item = stored_find(store, key + 10);
        json_decref(item->config);
        item->config = config;
        *what = RKB_STORE_CONFIG;
    } else if (!strncmp(key, "target-state-", 13) && key[13]) {
        char *state = value ? parse_state(value, value_len) : NULL;
        if (value && !state)
            return NULL;
        item = stored_find(store, key + 13);
        free(item->target);
        item->target = state;
        *what = RKB_STORE_TARGET;
    }
    return item;
}

static void on_load_record(int32_t partition, int64_t offset, const void *key, size_t key_len,
                           const void *value, size_t value_len, void *opaque) {
    rkb_store_t *store = opaque;
    if (partition == 0 && offset >= store->next_offset)
        store->next_offset = offset + 1;
    char *name = key ? rkb_strndup(key, key_len) : NULL;
    rkb_store_change_t what;
    if (!name || !apply_record(store, name, value, value_len, &what))
        store->skipped++;
    free(name);
}

/* Starts following partition 0 where the load ended. */
static int start_tail(rkb_store_t *store, char *errstr, size_t errstr_size) {
    size_t cnt;
    const char **pairs = props_with(store, "fetch.wait.max.ms", TAIL_FETCH_WAIT, &cnt);
    rkb_reader_conf_t rc = {
        .component = COMPONENT,
        .client_id = "rkbridge-config-store",
        .props = pairs,
        .prop_cnt = cnt,
    };
    char why[512];
    store->tail = rkb_tail_new(&rc, store->topic, 0, store->next_offset, why, sizeof(why));
    free(pairs);
    if (!store->tail) {
        snprintf(errstr, errstr_size, "following topic %s: %s", store->topic, why);
        return -1;
    }
    return 0;
}

int rkb_store_load(rkb_store_t *store, rkb_store_connector_cb_t *cb, void *opaque, char *errstr,
                   size_t errstr_size) {
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
    int rc_read =
        rkb_reader_read_topic(&rc, store->topic, on_load_record, store, why, sizeof(why));
    if (rc_read) {
        snprintf(errstr, errstr_size, "reading the connector configurations from topic %s: %s",
                 store->topic, why);
        return -1;
    }
    if (partition_cnt == 0) {
        /* Kafka Connect's config topic: one partition (a total order), compacted (the last
         * record of each key is all that matters). */
        static const char *const configs[] = {"cleanup.policy", "compact"};
        if (rkb_producer_ensure_topic_with(store->producer, store->topic, 1,
                                           store->replication_factor, configs, 1,
                                           CREATE_TIMEOUT_MS, why, sizeof(why)))
            rkb_log_info(COMPONENT, "%s not created (%s); the first write creates it",
                         store->topic, why);
        else
            rkb_log_info(COMPONENT, "created topic %s (compacted)", store->topic);
    }
    if (start_tail(store, errstr, errstr_size))
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i < store->item_cnt; i++) {
        if (!store->items[i].config)
            continue;
        cb(store->items[i].name, store->items[i].config, store->items[i].target, opaque);
        kept++;
    }
    rkb_log_info(COMPONENT, "topic %s holds %zu connector%s%s", store->topic, kept,
                 kept == 1 ? "" : "s",
                 store->skipped ? " (records that are not rkbridge's were skipped)" : "");
    store->cluster_id = rkb_producer_cluster_id(store->producer, 2000);
    return 0;
}

/* ---- Following -------------------------------------------------------------------------------- */

/* True when the record (key, value) is one of this worker's writes not read back yet, or older
 * than one: the oldest pending write of that key is dropped when it is this record. */
static bool take_echo(rkb_store_t *store, const char *key, const void *value, size_t value_len) {
    for (size_t i = 0; i < store->echo_cnt; i++) {
        echo_t *echo = &store->echoes[i];
        if (strcmp(echo->key, key))
            continue;
        bool same = echo->value ? value && strlen(echo->value) == value_len &&
                                      !memcmp(echo->value, value, value_len)
                                : !value;
        if (same) {
            free(echo->key);
            free(echo->value);
            memmove(echo, echo + 1, (store->echo_cnt - i - 1) * sizeof(*echo));
            store->echo_cnt--;
        }
        return true;
    }
    return false;
}

typedef struct poll_s {
    rkb_store_t *store;
    rkb_store_change_cb_t *cb;
    void *opaque;
} poll_t;

static void on_tail_record(int32_t partition, int64_t offset, const void *key, size_t key_len,
                           const void *value, size_t value_len, void *opaque) {
    poll_t *poll = opaque;
    rkb_store_t *store = poll->store;
    char *name = key ? rkb_strndup(key, key_len) : NULL;
    bool own = name && take_echo(store, name, value, value_len);
    rkb_store_change_t what;
    stored_t *item = name ? apply_record(store, name, value, value_len, &what) : NULL;
    if (!item) {
        if (!store->skipped++)
            rkb_log_info(COMPONENT, "topic %s: records that are not rkbridge's are skipped",
                         store->topic);
    } else if (!own) {
        poll->cb(item->name, what, what == RKB_STORE_CONFIG ? item->config : NULL, item->target,
                 poll->opaque);
    }
    free(name);
}

size_t rkb_store_poll(rkb_store_t *store, rkb_store_change_cb_t *cb, void *opaque) {
    if (!store->tail)
        return 0;
    poll_t poll = {.store = store, .cb = cb, .opaque = opaque};
    return rkb_tail_poll(store->tail, on_tail_record, &poll, POLL_MAX);
}

/* ---- Writing ---------------------------------------------------------------------------------- */

/* Writes one record to partition 0 and waits for its delivery report. value NULL: a
 * tombstone. */
static int put(rkb_store_t *store, const char *key, const char *value, char *errstr,
               size_t errstr_size) {
    /* Remembered before it is sent, so that the tail knows it for its own (store.h); a record
     * that failed is forgotten again: if it reached the topic after all, reading it back
     * applies it like another worker's. */
    store->echoes = rkb_realloc(store->echoes, (store->echo_cnt + 1) * sizeof(*store->echoes));
    store->echoes[store->echo_cnt++] =
        (echo_t){.key = rkb_strdup(key), .value = value ? rkb_strdup(value) : NULL};
    store->result = 1;
    char why[512];
    int rc = -1;
    if (rkb_producer_send(store->producer, store->topic, 0, key, strlen(key), value,
                          value ? strlen(value) : 0, NULL, 0, -1, NULL, why, sizeof(why)))
        snprintf(errstr, errstr_size, "topic %s: %s", store->topic, why);
    else if (rkb_producer_flush(store->producer, FLUSH_MS) || store->result == 1)
        snprintf(errstr, errstr_size, "topic %s: no delivery report within %d ms", store->topic,
                 FLUSH_MS);
    else if (store->result)
        snprintf(errstr, errstr_size, "topic %s: %s", store->topic, store->why);
    else
        rc = 0;
    if (rc) {
        /* The newest echo is this record's (writes are serialized). */
        echo_t *echo = &store->echoes[--store->echo_cnt];
        free(echo->key);
        free(echo->value);
    }
    return rc;
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
    rkb_tail_destroy(store->tail);
    rkb_producer_destroy(store->producer, 5000);
    rkb_kafka_props_clear(&store->props);
    for (size_t i = 0; i < store->item_cnt; i++) {
        free(store->items[i].name);
        json_decref(store->items[i].config);
        free(store->items[i].target);
    }
    free(store->items);
    for (size_t i = 0; i < store->echo_cnt; i++) {
        free(store->echoes[i].key);
        free(store->echoes[i].value);
    }
    free(store->echoes);
    free(store->topic);
    free(store->cluster_id);
    free(store);
}
