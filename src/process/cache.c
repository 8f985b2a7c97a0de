/*
 * cache.c — the change event → versioned cache entry command (cache.h), and the standalone
 * compare-and-set script that at-least-once mode and applications call.
 *
 * Data path: sink writer (key) → rkb_cache_encode (version, op, state from the JSON value) →
 * one command in the batch → Redis runs src/process/cache.lua (standalone, or inside the
 * exactly-once script) → 1 applied / 0 stale, counted by the sink.
 *
 * @locality an rkb_cache_t belongs to one sink task thread; the script SHA is process-wide and
 * guarded by sha_lock.
 */
#include "process/cache.h"

#include "convert/convert.h"
#include "tmpl/tmpl.h"
#include "util/lua.h"
#include "util/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rkb_cache_s {
    rkb_tmpl_t *version;
    char *op_field;
    char **delete_ops;
    size_t delete_op_cnt;
    char *value_field;
    bool layout_value;
    bool invalidate;
    int64_t ttl_seconds;
    int64_t tombstone_ttl_seconds;
    bool exactly_once;
    rkb_buf_t scratch; /* the version, then a field's text */
};

/* ---- the standalone script ------------------------------------------------------------------- */

/* The library expects the exactly-once script's `pseudo` and `counters` tables; alone, it gets
 * throwaway ones. */
static const char script_head[] = "local pseudo, counters = {}, {}\n";
static const char script_tail[] = "\nreturn rkb_cache_cas(KEYS[1], ARGV, 1)\n";

static pthread_once_t script_once = PTHREAD_ONCE_INIT;
static char *script; /* built once, lives as long as the process */
static size_t script_len;
static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;
static char script_sha[41]; /* "" until a SCRIPT LOAD answered */

static void build_script(void) {
    rkb_buf_t buf;
    rkb_buf_init(&buf);
    rkb_buf_appends(&buf, script_head);
    rkb_buf_append(&buf, rkb_lua_cache, rkb_lua_cache_len);
    rkb_buf_appends(&buf, script_tail);
    script = buf.data;
    script_len = buf.len;
}

const char *rkb_cache_script(size_t *len) {
    pthread_once(&script_once, build_script);
    if (len)
        *len = script_len;
    return script;
}

int rkb_cache_load(rkb_redis_t *redis, char *errstr, size_t errstr_size) {
    size_t len;
    const char *text = rkb_cache_script(&len);
    char sha[41];
    int err = rkb_redis_script_load(redis, "the cache script", text, len, sha, errstr,
                                    errstr_size);
    if (err == RKB_REDIS_OK) {
        pthread_mutex_lock(&sha_lock);
        memcpy(script_sha, sha, sizeof(script_sha));
        pthread_mutex_unlock(&sha_lock);
    }
    return err;
}

bool rkb_cache_reply_is_stale(const redisReply *reply) {
    return reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0;
}

/* ---- configuration ----------------------------------------------------------------------------- */

rkb_cache_t *rkb_cache_new(const rkb_cache_conf_t *cc, char *errstr, size_t errstr_size) {
    rkb_cache_t *cache = rkb_calloc(1, sizeof(*cache));
    rkb_buf_init(&cache->scratch);
    char why[256];
    cache->version = rkb_tmpl_parse(cc->version && *cc->version ? cc->version : "${value.version}",
                                    why, sizeof(why));
    if (!cache->version) {
        snprintf(errstr, errstr_size, "redis.cache.version: %s", why);
        rkb_cache_destroy(cache);
        return NULL;
    }
    cache->op_field = rkb_strdup(cc->op_field ? cc->op_field : "");
    cache->value_field = rkb_strdup(cc->value_field ? cc->value_field : "");
    for (const char *p = cc->delete_ops; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len) {
            cache->delete_ops = rkb_realloc(cache->delete_ops,
                                            (cache->delete_op_cnt + 1) * sizeof(char *));
            cache->delete_ops[cache->delete_op_cnt++] = rkb_strndup(p, len);
        }
        p = end ? end + 1 : NULL;
    }
    cache->layout_value = cc->layout_value;
    cache->invalidate = cc->invalidate;
    cache->ttl_seconds = cc->ttl_seconds > 0 ? cc->ttl_seconds : 0;
    cache->tombstone_ttl_seconds = cc->tombstone_ttl_seconds > 0 ? cc->tombstone_ttl_seconds : 1;
    cache->exactly_once = cc->exactly_once;
    return cache;
}

void rkb_cache_destroy(rkb_cache_t *cache) {
    if (!cache)
        return;
    rkb_tmpl_destroy(cache->version);
    free(cache->op_field);
    free(cache->value_field);
    for (size_t i = 0; i < cache->delete_op_cnt; i++)
        free(cache->delete_ops[i]);
    free(cache->delete_ops);
    rkb_buf_free(&cache->scratch);
    free(cache);
}

/* ---- one event ---------------------------------------------------------------------------------- */

/* The member at dotted path ("after", "source.lsn", "items.0") of json, or NULL. */
static json_t *at_path(json_t *json, const char *path) {
    const char *step = path;
    while (json && *step) {
        const char *end = strchr(step, '.');
        size_t len = end ? (size_t)(end - step) : strlen(step);
        char name[256];
        if (!len || len >= sizeof(name))
            return NULL;
        memcpy(name, step, len);
        name[len] = '\0';
        if (json_is_object(json)) {
            json = json_object_get(json, name);
        } else if (json_is_array(json)) {
            int64_t index;
            json = rkb_parse_int64(name, 0, INT64_MAX, &index) ? NULL
                                                                : json_array_get(json, (size_t)index);
        } else {
            return NULL;
        }
        step = end ? end + 1 : step + len;
    }
    return json;
}

/* A version is integers joined by ':' (as cache.lua reads it). */
static bool is_version(const char *text, size_t len) {
    bool digit = false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] >= '0' && text[i] <= '9') {
            digit = true;
        } else if (text[i] == ':' && digit) {
            digit = false;
        } else {
            return false;
        }
    }
    return digit && len <= 200;
}

static bool is_delete(const rkb_cache_t *cache, json_t *value) {
    if (cache->invalidate)
        return true;
    if (!*cache->op_field)
        return false;
    json_t *op = at_path(value, cache->op_field);
    if (!json_is_string(op))
        return false;
    for (size_t i = 0; i < cache->delete_op_cnt; i++)
        if (!strcmp(json_string_value(op), cache->delete_ops[i]))
            return true;
    return false;
}

/* Appends the state's field/value pairs. */
static void arg_state(rkb_cache_t *cache, json_t *state, rkb_cmds_t *cmds) {
    rkb_buf_reset(&cache->scratch);
    if (!cache->layout_value && json_is_object(state)) {
        const char *name;
        json_t *member;
        json_object_foreach(state, name, member) {
            /* The entry's own fields cannot be overwritten by the state's. */
            if (!strcmp(name, "_v") || !strcmp(name, "_deleted"))
                continue;
            rkb_buf_reset(&cache->scratch);
            rkb_json_to_text(member, &cache->scratch);
            rkb_cmds_args(cmds, name);
            rkb_cmds_arg(cmds, cache->scratch.data, cache->scratch.len);
        }
        return;
    }
    char *text = json_dumps(state, JSON_COMPACT | JSON_ENCODE_ANY);
    rkb_cmds_args(cmds, "val");
    rkb_cmds_args(cmds, text ? text : "null");
    free(text);
}

int rkb_cache_encode(rkb_cache_t *cache, rkb_record_t *rec, const char *key, size_t key_len,
                     rkb_cmds_t *cmds, char *errstr, size_t errstr_size) {
    if (!rec->value)
        return 0; /* no version: nothing it could safely change */
    char why[384];
    json_t *value = rkb_record_value_json(rec, why, sizeof(why));
    if (!value) {
        snprintf(errstr, errstr_size, "CACHE needs a JSON value: %s", why);
        return -1;
    }
    rkb_buf_reset(&cache->scratch);
    if (rkb_tmpl_expand(cache->version, rec, &cache->scratch, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "redis.cache.version: %s", why);
        return -1;
    }
    if (!is_version(cache->scratch.data, cache->scratch.len)) {
        snprintf(errstr, errstr_size,
                 "redis.cache.version: '%.64s' is not a non-negative integer or integers "
                 "joined by ':'",
                 cache->scratch.data);
        return -1;
    }
    bool delete = is_delete(cache, value);
    json_t *state = value;
    if (!delete && *cache->value_field) {
        state = at_path(value, cache->value_field);
        if (!state || json_is_null(state)) {
            snprintf(errstr, errstr_size, "redis.cache.value.field: no field '%s' in the value",
                     cache->value_field);
            return -1;
        }
    }

    rkb_cmds_begin(cmds);
    if (cache->exactly_once) {
        rkb_cmds_args(cmds, "RKB.CACHE");
    } else {
        char sha[sizeof(script_sha)];
        pthread_mutex_lock(&sha_lock);
        memcpy(sha, script_sha, sizeof(sha));
        pthread_mutex_unlock(&sha_lock);
        if (*sha) {
            rkb_cmds_args(cmds, "EVALSHA");
            rkb_cmds_args(cmds, sha);
        } else {
            size_t len;
            const char *text = rkb_cache_script(&len);
            rkb_cmds_args(cmds, "EVAL");
            rkb_cmds_arg(cmds, text, len);
        }
        rkb_cmds_args(cmds, "1");
    }
    rkb_cmds_arg(cmds, key, key_len);
    rkb_cmds_arg(cmds, cache->scratch.data, cache->scratch.len); /* the version */
    rkb_cmds_args(cmds, delete ? "delete" : "upsert");
    rkb_cmds_arg_int(cmds, cache->ttl_seconds);
    rkb_cmds_arg_int(cmds, cache->tombstone_ttl_seconds);
    if (!delete)
        arg_state(cache, state, cmds);
    rkb_cmds_end(cmds);
    return 1;
}
