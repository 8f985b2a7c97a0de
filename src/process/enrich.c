/*
 * enrich.c — joins records with reference data from Redis (see enrich.h). Sits in the sink's
 * data path after conversion (convert/) and before the writer (sink/writer.c): the sink hands
 * it each batch's records that are not enriched yet.
 *
 * Per batch: (1) every record's reference key is expanded into one buffer; the cache answers
 * what it holds, and a per-batch hash map gives each distinct remaining key one lookup;
 * (2) one pipeline reads them; (3) the results go into the cache and are merged into each
 * record's value, in the batch's order. Errors of single records are collected in (1) and (2)
 * and reported in (3), so that a batch whose lookups fail (Redis down) leaves no trace: the
 * sink retries it whole.
 *
 * The cache and the per-batch map share one small open-addressing hash table (keymap_t,
 * linear probing with backward-shift deletion) that maps key bytes to an index; the keys
 * themselves stay with their owner. None of the Debian libraries in use offers one that takes
 * binary keys (jansson's object is a string-keyed map without eviction).
 */
#include "process/enrich.h"

#include "convert/convert.h"
#include "tmpl/tmpl.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Reference keys and reference data are quoted in messages up to this many bytes. */
#define KEY_SHOWN 200

/* ---- keymap: key bytes → index ------------------------------------------------------------ */

/* Where the owner keeps the key of index (the map stores only hashes and indexes). */
typedef const char *(key_of_fn)(const void *owner, int32_t index, size_t *len);

typedef struct keymap_s {
    int32_t *slots;   /* index + 1; 0 = empty */
    uint32_t *hashes; /* of the slot's key */
    size_t cap;       /* a power of two, or 0 */
    size_t cnt;
} keymap_t;

static uint32_t hash_key(const char *key, size_t len) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return (uint32_t)(h ^ (h >> 32));
}

/* The index stored for key, or -1. */
static int32_t keymap_get(const keymap_t *m, const char *key, size_t len, uint32_t hash,
                          key_of_fn *key_of, const void *owner) {
    if (!m->cap)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t pos = hash & mask; m->slots[pos]; pos = (pos + 1) & mask) {
        if (m->hashes[pos] != hash)
            continue;
        size_t klen;
        const char *k = key_of(owner, m->slots[pos] - 1, &klen);
        if (klen == len && !memcmp(k, key, len))
            return m->slots[pos] - 1;
    }
    return -1;
}

static void keymap_insert(keymap_t *m, uint32_t hash, int32_t index) {
    size_t mask = m->cap - 1, pos = hash & mask;
    while (m->slots[pos])
        pos = (pos + 1) & mask;
    m->slots[pos] = index + 1;
    m->hashes[pos] = hash;
    m->cnt++;
}

/* Adds index under a key that is not in the map yet (load kept at most 1/2). */
static void keymap_put(keymap_t *m, uint32_t hash, int32_t index) {
    if ((m->cnt + 1) * 2 > m->cap) {
        keymap_t grown = {.cap = m->cap ? m->cap * 2 : 64};
        grown.slots = rkb_calloc(grown.cap, sizeof(*grown.slots));
        grown.hashes = rkb_calloc(grown.cap, sizeof(*grown.hashes));
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i])
                keymap_insert(&grown, m->hashes[i], m->slots[i] - 1);
        free(m->slots);
        free(m->hashes);
        *m = grown;
    }
    keymap_insert(m, hash, index);
}

/* Removes index (stored under hash), moving later entries of its probe run back so that no
 * lookup stops early at the hole. */
static void keymap_remove(keymap_t *m, uint32_t hash, int32_t index) {
    size_t mask = m->cap - 1, hole = hash & mask;
    while (m->slots[hole] != index + 1)
        hole = (hole + 1) & mask;
    for (size_t pos = (hole + 1) & mask; m->slots[pos]; pos = (pos + 1) & mask) {
        size_t home = m->hashes[pos] & mask;
        /* The entry at pos may fill the hole unless its home lies cyclically in (hole, pos]. */
        bool stays = hole <= pos ? (home > hole && home <= pos) : (home > hole || home <= pos);
        if (stays)
            continue;
        m->slots[hole] = m->slots[pos];
        m->hashes[hole] = m->hashes[pos];
        hole = pos;
    }
    m->slots[hole] = 0;
    m->cnt--;
}

static void keymap_clear(keymap_t *m) {
    if (m->cnt && m->cap)
        memset(m->slots, 0, m->cap * sizeof(*m->slots));
    m->cnt = 0;
}

static void keymap_free(keymap_t *m) {
    free(m->slots);
    free(m->hashes);
}

/* ---- the cache: LRU with a TTL ------------------------------------------------------------- */

typedef struct cache_entry_s {
    char *key;
    size_t key_len;
    uint32_t hash;
    json_t *data;       /* the reference data; NULL: the key did not exist */
    int64_t expires_at; /* ms, on the clock given to rkb_enrich_batch */
    int32_t prev, next; /* LRU list, most recently used first; -1 ends it */
} cache_entry_t;

typedef struct cache_s {
    cache_entry_t *entries;
    size_t cnt, cap; /* cap grows up to max */
    size_t max;      /* 0: no cache */
    int64_t ttl_ms;
    int32_t head, tail;
    keymap_t map;
} cache_t;

static const char *cache_key_of(const void *owner, int32_t index, size_t *len) {
    const cache_entry_t *entry = &((const cache_t *)owner)->entries[index];
    *len = entry->key_len;
    return entry->key;
}

static void lru_unlink(cache_t *c, int32_t i) {
    cache_entry_t *entry = &c->entries[i];
    if (entry->prev >= 0)
        c->entries[entry->prev].next = entry->next;
    else
        c->head = entry->next;
    if (entry->next >= 0)
        c->entries[entry->next].prev = entry->prev;
    else
        c->tail = entry->prev;
}

static void lru_push_front(cache_t *c, int32_t i) {
    cache_entry_t *entry = &c->entries[i];
    entry->prev = -1;
    entry->next = c->head;
    if (c->head >= 0)
        c->entries[c->head].prev = i;
    c->head = i;
    if (c->tail < 0)
        c->tail = i;
}

/* The entry of key, fresh or expired, or -1. */
static int32_t cache_find(const cache_t *c, const char *key, size_t len, uint32_t hash) {
    return c->max ? keymap_get(&c->map, key, len, hash, cache_key_of, c) : -1;
}

/* Stores what a lookup found for key (data: a new reference taken here, NULL for a miss), as
 * the most recently used entry; the least recently used goes when the cache is full. */
static void cache_put(cache_t *c, const char *key, size_t len, uint32_t hash, json_t *data,
                      int64_t now_ms) {
    if (!c->max)
        return;
    int32_t i = cache_find(c, key, len, hash);
    if (i >= 0) { /* an expired entry read again */
        lru_unlink(c, i);
    } else if (c->cnt < c->max) {
        if (c->cnt == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            if (c->cap > c->max)
                c->cap = c->max;
            c->entries = rkb_realloc(c->entries, c->cap * sizeof(*c->entries));
        }
        i = (int32_t)c->cnt++;
        c->entries[i] = (cache_entry_t){.data = NULL};
    } else { /* full: the least recently used entry makes room */
        i = c->tail;
        lru_unlink(c, i);
        keymap_remove(&c->map, c->entries[i].hash, i);
        free(c->entries[i].key);
        json_decref(c->entries[i].data);
        c->entries[i] = (cache_entry_t){.data = NULL};
    }
    cache_entry_t *entry = &c->entries[i];
    if (!entry->key) {
        entry->key = rkb_malloc(len ? len : 1);
        memcpy(entry->key, key, len);
        entry->key_len = len;
        entry->hash = hash;
        keymap_put(&c->map, hash, i);
    }
    json_decref(entry->data);
    entry->data = json_incref(data);
    entry->expires_at = now_ms + c->ttl_ms;
    lru_push_front(c, i);
}

static void cache_free(cache_t *c) {
    for (size_t i = 0; i < c->cnt; i++) {
        free(c->entries[i].key);
        json_decref(c->entries[i].data);
    }
    free(c->entries);
    keymap_free(&c->map);
}

/* ---- the handle ---------------------------------------------------------------------------- */

/* One distinct reference key of a batch that the cache could not answer. */
typedef struct lookup_s {
    size_t key_off, key_len; /* in e->keys */
    uint32_t hash;
    json_t *data;  /* the reference data (owned); NULL: none */
    bool exists;   /* false: a miss */
    char *error;   /* the key could not be read as reference data (owned), or NULL */
} lookup_t;

/* One record of a batch. */
typedef struct item_s {
    rkb_record_t *rec;
    size_t key_off, key_len; /* its reference key in e->keys */
    int32_t lookup;          /* its lookup, or -1 */
    bool needs_merge;        /* false: a tombstone, or an error already */
    bool cached;             /* answered by the cache: data/exists below */
    bool exists;
    json_t *data;  /* cached: a reference of its own (the entry may be evicted meanwhile) */
    char *error;   /* found before the lookups, reported after (owned), or NULL */
} item_t;

struct rkb_enrich_s {
    rkb_tmpl_t *key_tmpl;
    rkb_enrich_lookup_t lookup;
    char *field; /* NULL: merge at the top level */
    rkb_enrich_miss_t on_miss;
    json_t *default_data;
    cache_t cache;

    /* Scratch of one batch, kept between batches. */
    rkb_buf_t keys; /* every record's reference key, back to back */
    item_t *items;
    size_t item_cap;
    lookup_t *lookups;
    size_t lookup_cnt, lookup_cap;
    keymap_t batch_map; /* distinct key → lookup */
    rkb_cmds_t *cmds;
    redisReply **replies;
    size_t replies_cap;

    rkb_enrich_stats_t stats;
};

static const char *const lookup_names[] = {"HASH", "STRING", "JSON"};
static const char *const miss_names[] = {"pass", "default", "dead-letter"};

void rkb_enrich_conf_from_config(const rkb_config_t *conf, rkb_enrich_conf_t *ec) {
    memset(ec, 0, sizeof(*ec));
    ec->key_template = rkb_config_get(conf, "enrich.key");
    const char *lookup = rkb_config_get(conf, "enrich.lookup");
    for (size_t i = 0; i < RKB_ARRAY_SIZE(lookup_names); i++)
        if (!strcasecmp(lookup, lookup_names[i]))
            ec->lookup = (rkb_enrich_lookup_t)i;
    const char *miss = rkb_config_get(conf, "enrich.on.miss");
    for (size_t i = 0; i < RKB_ARRAY_SIZE(miss_names); i++)
        if (!strcasecmp(miss, miss_names[i]))
            ec->on_miss = (rkb_enrich_miss_t)i;
    ec->field = rkb_config_get(conf, "enrich.field");
    ec->default_json = rkb_config_get(conf, "enrich.default");
    ec->cache_max_entries = rkb_config_get_int(conf, "enrich.cache.max.entries");
    ec->cache_ttl_ms = rkb_config_get_int(conf, "enrich.cache.ttl.ms");
}

/* Compiles ec; on failure sets *bad_key to the config key at fault and errstr to why. */
static rkb_enrich_t *enrich_new(const rkb_enrich_conf_t *ec, const char **bad_key, char *errstr,
                                size_t errstr_size) {
    rkb_enrich_t *e = rkb_calloc(1, sizeof(*e));
    e->lookup = ec->lookup;
    e->on_miss = ec->on_miss;
    e->field = ec->field && *ec->field ? rkb_strdup(ec->field) : NULL;
    e->cache.max = ec->cache_max_entries > 0 ? (size_t)ec->cache_max_entries : 0;
    e->cache.ttl_ms = ec->cache_ttl_ms;
    e->cache.head = e->cache.tail = -1;
    rkb_buf_init(&e->keys);
    e->cmds = rkb_cmds_new();

    *bad_key = "enrich.key";
    if (!ec->key_template || !*ec->key_template) {
        snprintf(errstr, errstr_size, "empty: nothing to look up");
        goto fail;
    }
    if (!(e->key_tmpl = rkb_tmpl_parse(ec->key_template, errstr, errstr_size)))
        goto fail;
    *bad_key = "enrich.default";
    json_error_t error;
    e->default_data = json_loads(ec->default_json ? ec->default_json : "{}", JSON_DECODE_ANY,
                                 &error);
    if (!e->default_data) {
        snprintf(errstr, errstr_size, "not JSON: %s at position %d", error.text, error.position);
        goto fail;
    }
    if (e->on_miss == RKB_ENRICH_MISS_DEFAULT && !e->field && !json_is_object(e->default_data)) {
        snprintf(errstr, errstr_size,
                 "is %s: merged at the top level it must be a JSON object (or set enrich.field)",
                 rkb_json_type_name(e->default_data));
        goto fail;
    }
    return e;

fail:
    rkb_enrich_destroy(e);
    return NULL;
}

rkb_enrich_t *rkb_enrich_new(const rkb_enrich_conf_t *ec, char *errstr, size_t errstr_size) {
    const char *bad_key;
    char why[512];
    rkb_enrich_t *e = enrich_new(ec, &bad_key, why, sizeof(why));
    if (!e)
        snprintf(errstr, errstr_size, "%s: %s", bad_key, why);
    return e;
}

int rkb_enrich_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    const char *key = rkb_config_get(conf, "enrich.key");
    const char *output = rkb_config_get(conf, "enrich.output.topic");
    bool enriching = key && *key, has_output = output && *output;

    if (!strcasecmp(rkb_config_get(conf, "redis.type"), "NONE") && !has_output)
        rkb_errors_add(errs,
                       "%s: redis.type: NONE writes nothing to Redis: it needs "
                       "enrich.output.topic (with enrich.key) to send records anywhere",
                       rkb_config_origin(conf, "redis.type"));
    if (has_output && !enriching)
        rkb_errors_add(errs, "%s: enrich.output.topic: needs enrich.key (the output topic "
                             "carries enriched records)",
                       rkb_config_origin(conf, "enrich.output.topic"));
    if (!enriching)
        return (int)(errs->cnt - before);

    rkb_enrich_conf_t ec;
    rkb_enrich_conf_from_config(conf, &ec);
    const char *bad_key;
    char why[512];
    rkb_enrich_t *e = enrich_new(&ec, &bad_key, why, sizeof(why));
    if (!e)
        rkb_errors_add(errs, "%s: %s: %s", rkb_config_origin(conf, bad_key), bad_key, why);
    rkb_enrich_destroy(e);

    const char *dead_letter_topic = rkb_config_get(conf, "errors.deadletterqueue.topic.name");
    if (ec.on_miss == RKB_ENRICH_MISS_DEAD_LETTER &&
        (strcmp(rkb_config_get(conf, "errors.tolerance"), "all") || !dead_letter_topic ||
         !*dead_letter_topic))
        rkb_errors_add(errs,
                       "%s: enrich.on.miss: dead-letter needs errors.tolerance=all and "
                       "errors.deadletterqueue.topic.name (otherwise a miss stops the task or "
                       "drops the record)",
                       rkb_config_origin(conf, "enrich.on.miss"));
    return (int)(errs->cnt - before);
}

void rkb_enrich_destroy(rkb_enrich_t *e) {
    if (!e)
        return;
    rkb_tmpl_destroy(e->key_tmpl);
    free(e->field);
    json_decref(e->default_data);
    cache_free(&e->cache);
    rkb_buf_free(&e->keys);
    free(e->items);
    free(e->lookups);
    keymap_free(&e->batch_map);
    rkb_cmds_destroy(e->cmds);
    free(e->replies);
    free(e);
}

const char *rkb_enrich_module_command(const rkb_enrich_t *e) {
    return e->lookup == RKB_ENRICH_JSON ? "JSON.GET" : NULL;
}

const rkb_enrich_stats_t *rkb_enrich_stats(const rkb_enrich_t *e) {
    return &e->stats;
}

/* ---- one batch ------------------------------------------------------------------------------ */

static const char *batch_key_of(const void *owner, int32_t index, size_t *len) {
    const rkb_enrich_t *e = owner;
    *len = e->lookups[index].key_len;
    return e->keys.data + e->lookups[index].key_off;
}

/* "'KEY'" for messages: the key's bytes, cut at KEY_SHOWN. */
static int key_shown_len(size_t len) {
    return (int)(len > KEY_SHOWN ? KEY_SHOWN : len);
}

static char *item_key_error(const rkb_enrich_t *e, const item_t *item, const char *what) {
    char *msg = NULL;
    if (asprintf(&msg, "enrich.key '%.*s': %s", key_shown_len(item->key_len),
                 e->keys.data + item->key_off, what) < 0)
        abort();
    return msg;
}

/* Step 1 for one record: its reference key, then the cache or a lookup. Errors are kept in
 * the item (reported in step 3). */
static void prepare_item(rkb_enrich_t *e, item_t *item, int64_t now_ms, uint64_t *hits) {
    char why[512];
    rkb_record_t *rec = item->rec;
    if (!rec->value)
        return; /* a tombstone: nothing to merge into */
    const json_t *value = rkb_record_value_json(rec, why, sizeof(why));
    if (!value || !json_is_object(value)) {
        char *msg = NULL;
        if (asprintf(&msg, "enrichment needs a JSON object value, %s%s",
                     value ? "got " : "", value ? rkb_json_type_name(value) : why) < 0)
            abort();
        item->error = msg;
        return;
    }
    item->key_off = e->keys.len;
    if (rkb_tmpl_expand(e->key_tmpl, rec, &e->keys, why, sizeof(why))) {
        e->keys.len = item->key_off;
        if (asprintf(&item->error, "enrich.key: %s", why) < 0)
            abort();
        return;
    }
    item->key_len = e->keys.len - item->key_off;
    item->needs_merge = true;
    const char *key = e->keys.data + item->key_off;
    uint32_t hash = hash_key(key, item->key_len);

    int32_t cached = cache_find(&e->cache, key, item->key_len, hash);
    if (cached >= 0 && e->cache.entries[cached].expires_at > now_ms) {
        cache_entry_t *entry = &e->cache.entries[cached];
        item->cached = true;
        item->exists = entry->data != NULL;
        item->data = json_incref(entry->data);
        lru_unlink(&e->cache, cached);
        lru_push_front(&e->cache, cached);
        (*hits)++;
        return;
    }
    item->lookup = keymap_get(&e->batch_map, key, item->key_len, hash, batch_key_of, e);
    if (item->lookup >= 0)
        return; /* an earlier record of the batch reads the same key */
    if (e->lookup_cnt == e->lookup_cap) {
        e->lookup_cap = e->lookup_cap ? e->lookup_cap * 2 : 64;
        e->lookups = rkb_realloc(e->lookups, e->lookup_cap * sizeof(*e->lookups));
    }
    item->lookup = (int32_t)e->lookup_cnt++;
    e->lookups[item->lookup] = (lookup_t){.key_off = item->key_off,
                                          .key_len = item->key_len,
                                          .hash = hash};
    keymap_put(&e->batch_map, hash, item->lookup);
}

/* Parses JSON text read from Redis into *data; a string that is not JSON becomes a JSON
 * string when plain_text_ok. Returns 0, or -1 with why. */
static int parse_reference(const char *text, size_t len, bool plain_text_ok, json_t **data,
                           char *why, size_t why_size) {
    json_error_t error;
    *data = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (*data)
        return 0;
    if (plain_text_ok && (*data = json_stringn(text, len)))
        return 0;
    if (plain_text_ok)
        snprintf(why, why_size, "its value is neither JSON nor UTF-8 text");
    else
        snprintf(why, why_size, "its value is not JSON: %s", error.text);
    return -1;
}

/* Step 2's result for one lookup, from its reply. Returns 0, or -1 when the reply is a
 * transient error (the batch is retried), with why. */
static int settle_lookup(rkb_enrich_t *e, lookup_t *lookup, const redisReply *reply, char *why,
                         size_t why_size) {
    char reason[512] = "";
    if (reply->type == REDIS_REPLY_ERROR) {
        if (rkb_redis_error_is_transient(reply->str)) {
            snprintf(why, why_size, "enrichment lookup: %s", reply->str);
            return -1;
        }
        snprintf(reason, sizeof(reason), "%s", reply->str); /* e.g. WRONGTYPE */
    } else if (reply->type == REDIS_REPLY_NIL) {
        lookup->exists = false;
    } else if (e->lookup == RKB_ENRICH_HASH && reply->type == REDIS_REPLY_ARRAY) {
        /* HGETALL: field, value, ...; none at all means no such key (Redis has no empty
         * hashes). Fields become JSON strings: a hash holds text. */
        lookup->exists = reply->elements > 0;
        lookup->data = lookup->exists ? json_object() : NULL;
        for (size_t j = 0; j + 1 < reply->elements; j += 2) {
            const redisReply *field = reply->element[j], *value = reply->element[j + 1];
            json_t *text = json_stringn(value->str, value->len);
            if (!text || json_object_setn_new(lookup->data, field->str, field->len, text)) {
                snprintf(reason, sizeof(reason), "hash field '%.*s' is not UTF-8 text",
                         key_shown_len(field->len), field->str);
                break;
            }
        }
    } else if (e->lookup != RKB_ENRICH_HASH && reply->type == REDIS_REPLY_STRING) {
        lookup->exists = true;
        /* GET: JSON text is parsed, other text is a string; JSON.GET always gives JSON. */
        parse_reference(reply->str, reply->len, e->lookup == RKB_ENRICH_STRING, &lookup->data,
                        reason, sizeof(reason));
    } else {
        snprintf(reason, sizeof(reason), "unexpected reply type %d", reply->type);
    }
    if (*reason) {
        json_decref(lookup->data);
        lookup->data = NULL;
        lookup->error = rkb_strdup(reason);
    }
    return 0;
}

/* Step 2: one pipeline for every lookup. Returns RKB_REDIS_OK, or RKB_REDIS_ERR_IO with why. */
static int fetch_lookups(rkb_enrich_t *e, rkb_redis_t *redis, int64_t now_ms, char *why,
                         size_t why_size) {
    if (!e->lookup_cnt)
        return RKB_REDIS_OK;
    static const char *const commands[] = {"HGETALL", "GET", "JSON.GET"};
    rkb_cmds_reset(e->cmds);
    for (size_t j = 0; j < e->lookup_cnt; j++) {
        rkb_cmds_begin(e->cmds);
        rkb_cmds_args(e->cmds, commands[e->lookup]);
        rkb_cmds_arg(e->cmds, e->keys.data + e->lookups[j].key_off, e->lookups[j].key_len);
        rkb_cmds_end(e->cmds); /* JSON.GET without a path: the whole document, as JSON text */
    }
    if (e->lookup_cnt > e->replies_cap) {
        e->replies_cap = e->lookup_cnt * 2;
        e->replies = rkb_realloc(e->replies, e->replies_cap * sizeof(*e->replies));
    }
    int rc = rkb_redis_pipeline(redis, e->cmds, e->replies, why, why_size);
    if (rc != RKB_REDIS_OK)
        return RKB_REDIS_ERR_IO;
    for (size_t j = 0; j < e->lookup_cnt && rc == RKB_REDIS_OK; j++)
        if (settle_lookup(e, &e->lookups[j], e->replies[j], why, why_size))
            rc = RKB_REDIS_ERR_IO;
    rkb_redis_replies_free(e->replies, e->lookup_cnt);
    if (rc != RKB_REDIS_OK)
        return rc;
    e->stats.lookups += e->lookup_cnt;
    for (size_t j = 0; j < e->lookup_cnt; j++) {
        const lookup_t *lookup = &e->lookups[j];
        if (!lookup->error)
            cache_put(&e->cache, e->keys.data + lookup->key_off, lookup->key_len, lookup->hash,
                      lookup->data, now_ms);
    }
    return RKB_REDIS_OK;
}

/* Merges data into the record's value (a JSON object): under e->field, or its members at the
 * top level. Returns 0, or -1 with a message (malloc'd) in *error. */
static int merge(rkb_enrich_t *e, const item_t *item, json_t *data, char **error) {
    if (!e->field && !json_is_object(data)) {
        char what[128];
        snprintf(what, sizeof(what),
                 "the reference data is %s: merging at the top level needs a JSON object (or "
                 "set enrich.field)",
                 rkb_json_type_name(data));
        *error = item_key_error(e, item, what);
        return -1;
    }
    char why[256];
    json_t *merged = json_copy(rkb_record_value_json(item->rec, why, sizeof(why)));
    if (e->field)
        json_object_set(merged, e->field, data);
    else
        json_object_update(merged, data);
    rkb_record_set_value_json(item->rec, merged);
    return 0;
}

/* Step 3 for one record: merge, apply the miss policy, or report its error. */
static void finish_item(rkb_enrich_t *e, item_t *item, rkb_enrich_error_cb_t *on_error,
                        void *opaque) {
    char *error = item->error;
    item->error = NULL;
    if (!error && item->needs_merge) {
        const lookup_t *lookup = item->cached ? NULL : &e->lookups[item->lookup];
        bool exists = lookup ? lookup->exists : item->exists;
        json_t *data = lookup ? lookup->data : item->data;
        if (lookup && lookup->error) {
            error = item_key_error(e, item, lookup->error);
        } else if (exists) {
            merge(e, item, data, &error);
        } else {
            e->stats.misses++;
            if (e->on_miss == RKB_ENRICH_MISS_DEFAULT)
                merge(e, item, e->default_data, &error);
            else if (e->on_miss == RKB_ENRICH_MISS_DEAD_LETTER)
                error = item_key_error(e, item,
                                       "no reference data (enrich.on.miss=dead-letter)");
        }
    }
    if (error)
        on_error(item->rec, error, opaque);
    free(error);
}

/* Releases what step 1 and 2 left in the scratch (after a batch, done or abandoned). */
static void reset_batch(rkb_enrich_t *e, size_t cnt) {
    for (size_t i = 0; i < cnt; i++) {
        json_decref(e->items[i].data);
        free(e->items[i].error);
    }
    for (size_t j = 0; j < e->lookup_cnt; j++) {
        json_decref(e->lookups[j].data);
        free(e->lookups[j].error);
    }
    e->lookup_cnt = 0;
    keymap_clear(&e->batch_map);
    rkb_buf_reset(&e->keys);
}

int rkb_enrich_batch(rkb_enrich_t *e, rkb_redis_t *redis, rkb_record_t *const *recs, size_t cnt,
                     int64_t now_ms, rkb_enrich_error_cb_t *on_error, void *opaque, char *errstr,
                     size_t errstr_size) {
    if (cnt > e->item_cap) {
        e->item_cap = cnt * 2;
        e->items = rkb_realloc(e->items, e->item_cap * sizeof(*e->items));
    }
    uint64_t hits = 0;
    for (size_t i = 0; i < cnt; i++) {
        e->items[i] = (item_t){.rec = recs[i], .lookup = -1};
        prepare_item(e, &e->items[i], now_ms, &hits);
    }
    /* Nothing has changed in a record yet: a failed fetch leaves the batch as it was. */
    int rc = fetch_lookups(e, redis, now_ms, errstr, errstr_size);
    if (rc == RKB_REDIS_OK) {
        e->stats.cache_hits += hits;
        for (size_t i = 0; i < cnt; i++)
            finish_item(e, &e->items[i], on_error, opaque);
    }
    reset_batch(e, cnt);
    return rc;
}
