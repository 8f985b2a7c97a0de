/*
 * keys.c — the key-changes → Kafka source task (keys CDC; see keys.h, SEMANTICS.md §5.3).
 *
 * Data path: keyspace notifications (source/subscriber.c) and the SCAN snapshot name keys that
 * changed → a set of dirty keys (one entry per key: events for a key coalesce) → per key one
 * script reads TYPE, value and PTTL atomically (pipelined per batch) → one Kafka record per key
 * with its current state (kafka/producer.c).
 *
 * The guarantee is convergence (§5.3 point 6), not a change log: once the task has caught up
 * and Redis is quiet, the latest record of every key matching redis.keys.pattern equals the
 * key's state in Redis, and a key that does not exist has a tombstone (or no record at all).
 * Intermediate states may be skipped; records may repeat. It holds because:
 *   - the subscription comes first and the snapshot second, so a key that changes after the
 *     snapshot read it has an event in the buffer, and its state is read again after that;
 *   - a state is always read after the event that named it, and records of one key go to one
 *     partition in the order they were read (idempotent producer, Kafka key = Redis key);
 *   - events are at-most-once (§5.1), so every sign of lost ones (subscriber disconnected,
 *     event buffer full, Redis restarted: run_id changed) leads to a resubscription and a new
 *     snapshot;
 *   - keys deleted while nobody listened are found by comparing with what the topic holds: the
 *     task keeps the set of keys whose latest record is a value ("live" keys; read back from
 *     the topic itself when the task starts), and after each snapshot reads again every live
 *     key the snapshot did not return, which sends its tombstone;
 *   - a record whose delivery failed marks its key dirty again.
 * Delivery into Kafka is at-least-once for what was read; records still queued when the
 * process dies are covered by the next start's snapshot. mode=LIVEONLY takes no snapshot and
 * does not read the topic at start: changes made while the subscriber was away (a reconnect, a
 * restart) are not sent, so it does not converge after a loss.
 *
 * Record format: key = the Redis key's bytes; value = the state: a string as is; a hash as a
 * JSON object (fields sorted bytewise); a list as a JSON array; a set as a JSON array (sorted
 * bytewise, for determinism); a sorted set as a JSON array of [member, score] pairs in rank
 * order (scores as JSON numbers, ±inf as the strings "inf"/"-inf"). Bytes that are not UTF-8
 * appear in JSON as \u00XX (their Latin-1 reading). Streams are not sent (the stream source
 * is the tool for them) and neither are module types: such a key gets a tombstone if the topic
 * held a value for it, and is otherwise skipped (debug log). Headers: redis-event (the last
 * event seen for the key, or "snapshot"), redis-type (string, hash, list, set, zset; "none" on
 * a tombstone), redis-ttl (milliseconds left, only when the key has an expiry). Timestamp: the
 * time the record is produced.
 *
 * Memory: one small entry per live key (the key bytes plus ~80 bytes), plus the dirty set,
 * bounded at PENDING_MAX keys (past that, events are dropped and a resync is due).
 */
#include "source/keys.h"

#include "connect/clients.h"
#include "kafka/producer.h"
#include "kafka/reader.h"
#include "redis/redis.h"
#include "source/source_util.h"
#include "source/subscriber.h"
#include "util/log.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOPIC      "rediskeys"
#define PENDING_MAX        100000 /* dirty keys buffered before a resync is due */
#define EVENT_MAX          32     /* longest event name kept (Redis's are shorter) */
#define SHUTDOWN_FLUSH_MS  30000  /* how long shutdown waits for delivery reports */
#define BACKOFF_MAX_MS     10000
#define TOPIC_READ_TIMEOUT 30000 /* reading the topic at start: per request / without progress */

/*
 * Reads a key's state in one step, so that type, value and TTL belong together: {type} for a
 * missing key, {type, pttl} for a type that is not sent, {type, pttl, value} otherwise.
 * Read-only; TYPE on a key past its expiry deletes it (and Redis publishes "expired").
 */
static const char read_script[] =
    "local k = KEYS[1]\n"
    "local t = redis.call('TYPE', k)['ok']\n"
    "if t == 'none' then return {t} end\n"
    "local v\n"
    "if t == 'string' then v = redis.call('GET', k)\n"
    "elseif t == 'hash' then v = redis.call('HGETALL', k)\n"
    "elseif t == 'list' then v = redis.call('LRANGE', k, 0, -1)\n"
    "elseif t == 'set' then v = redis.call('SMEMBERS', k)\n"
    "elseif t == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')\n"
    "else return {t, redis.call('PTTL', k)} end\n"
    "return {t, redis.call('PTTL', k), v}\n";

/* One key the task knows: live (the topic's latest record for it is a value), dirty (its state
 * is to be sent), or both. An entry that is neither is freed. */
typedef struct key_entry_s {
    struct key_entry_s *hash_next;
    struct key_entry_s *dirty_next; /* the dirty queue, oldest first */
    uint64_t hash;
    uint32_t seen_gen; /* the snapshot that last read it */
    bool live;
    bool dirty;
    bool busy;             /* in the batch being sent: not freed until it is done */
    char event[EVENT_MAX]; /* the last event that made it dirty */
    size_t len;
    char key[];
} key_entry_t;

typedef struct key_table_s {
    key_entry_t **buckets;
    size_t bucket_cnt; /* a power of two */
    size_t cnt;
} key_table_t;

/* What went with a record to the producer: enough to send its key again if delivery fails. */
typedef struct sent_s {
    char event[EVENT_MAX];
    size_t len;
    char key[];
} sent_t;

typedef enum {
    STEP_OK,
    STEP_TRANSIENT, /* back off, then go on */
    STEP_FAILED,
    STEP_IDLE, /* redis.keys.timeout passed without an event */
} step_t;

struct rkb_keys_source_s {
    const rkb_config_t *conf;
    int task_id;
    char component[256];

    /* Settings */
    char *topic;
    char *pattern;
    bool snapshot_mode; /* mode=LIVE */
    int64_t idle_timeout_ms;
    size_t batch_size;
    char channel_prefix[64]; /* "__keyspace@<db>__:" */
    char *channel_pattern;   /* channel_prefix + pattern */

    /* Redis: commands (CONFIG, INFO, SCAN, reads), and notifications */
    rkb_redis_conf_t redis_conf;
    rkb_redis_t *redis;
    rkb_subscriber_t *sub;
    char script_sha[48];
    bool script_loaded; /* on the current connection */
    char run_id[64];    /* of the Redis last connected to; "" before */
    rkb_cmds_t *cmds;
    redisReply **replies;

    /* Kafka */
    rkb_producer_t *producer;

    /* What the task knows about keys */
    key_table_t table;
    key_entry_t *dirty_head, *dirty_tail;
    size_t dirty_cnt;
    key_entry_t **batch; /* batch_size entries being sent */
    uint32_t snapshot_gen;

    bool topic_loaded; /* live keys read back from the topic (mode LIVE, once per run) */
    bool resync;       /* subscribe (again) and, mode LIVE, take a snapshot */
    bool overflowed;   /* the dirty set was full: events were dropped */
    int64_t last_event_ms;
    int attempt; /* transient failures in a row */
    bool failed;
    char failure[1024];
    rkb_buf_t value; /* the record value being built */
    rkb_keys_source_stats_t stats;
};

/* ---- small helpers --------------------------------------------------------------------------- */

/* Redis's glob (stringmatchlen in util.c): '*', '?', '[...]' with '^' negation and ranges,
 * '\' escapes. Binary-safe: keys may hold any byte. */
static bool glob_match(const char *pat, size_t pat_len, const char *str, size_t str_len) {
    while (pat_len && str_len) {
        switch (*pat) {
        case '*':
            while (pat_len > 1 && pat[1] == '*')
                pat++, pat_len--;
            if (pat_len == 1)
                return true;
            for (size_t skip = 0; skip <= str_len; skip++)
                if (glob_match(pat + 1, pat_len - 1, str + skip, str_len - skip))
                    return true;
            return false;
        case '?':
            break;
        case '[': {
            pat++, pat_len--;
            bool negate = pat_len && *pat == '^';
            if (negate)
                pat++, pat_len--;
            bool match = false;
            while (pat_len && *pat != ']') {
                if (*pat == '\\' && pat_len >= 2) {
                    pat++, pat_len--;
                    match |= *pat == *str;
                } else if (pat_len >= 3 && pat[1] == '-') {
                    unsigned char lo = (unsigned char)pat[0], hi = (unsigned char)pat[2];
                    unsigned char c = (unsigned char)*str;
                    if (lo > hi) {
                        unsigned char swap = lo;
                        lo = hi;
                        hi = swap;
                    }
                    match |= c >= lo && c <= hi;
                    pat += 2, pat_len -= 2;
                } else {
                    match |= *pat == *str;
                }
                pat++, pat_len--;
            }
            if (!pat_len) /* no closing ']': as Redis, the class ends with the pattern */
                pat--, pat_len++;
            if (match == negate)
                return false;
            break;
        }
        case '\\':
            if (pat_len >= 2)
                pat++, pat_len--;
            /* fall through */
        default:
            if (*pat != *str)
                return false;
            break;
        }
        pat++, pat_len--;
        str++, str_len--;
    }
    while (pat_len && *pat == '*')
        pat++, pat_len--;
    return !pat_len && !str_len;
}

/* Events after which the key is gone from this database: its tombstone needs no read (if it
 * comes back, the event that recreates it follows). */
static bool is_removal_event(const char *event) {
    return !strcmp(event, "del") || !strcmp(event, "expired") || !strcmp(event, "evicted") ||
           !strcmp(event, "rename_from") || !strcmp(event, "move_from");
}

/* ---- the key table --------------------------------------------------------------------------- */

static uint64_t hash_key(const char *key, size_t len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    return h;
}

static key_entry_t *table_find(const key_table_t *t, const char *key, size_t len) {
    if (!t->bucket_cnt)
        return NULL;
    uint64_t h = hash_key(key, len);
    for (key_entry_t *e = t->buckets[h & (t->bucket_cnt - 1)]; e; e = e->hash_next)
        if (e->hash == h && e->len == len && !memcmp(e->key, key, len))
            return e;
    return NULL;
}

static void table_grow(key_table_t *t) {
    size_t cnt = t->bucket_cnt ? t->bucket_cnt * 2 : 1024;
    key_entry_t **buckets = rkb_calloc(cnt, sizeof(*buckets));
    for (size_t i = 0; i < t->bucket_cnt; i++) {
        for (key_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->hash_next;
            e->hash_next = buckets[e->hash & (cnt - 1)];
            buckets[e->hash & (cnt - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = buckets;
    t->bucket_cnt = cnt;
}

static key_entry_t *table_get(key_table_t *t, const char *key, size_t len) {
    key_entry_t *e = table_find(t, key, len);
    if (e)
        return e;
    if (t->cnt >= t->bucket_cnt)
        table_grow(t);
    e = rkb_calloc(1, sizeof(*e) + len + 1);
    e->hash = hash_key(key, len);
    e->len = len;
    memcpy(e->key, key, len);
    e->hash_next = t->buckets[e->hash & (t->bucket_cnt - 1)];
    t->buckets[e->hash & (t->bucket_cnt - 1)] = e;
    t->cnt++;
    return e;
}

/* Frees e if nothing refers to it any more. */
static void table_release(key_table_t *t, key_entry_t *e) {
    if (e->live || e->dirty || e->busy)
        return;
    key_entry_t **link = &t->buckets[e->hash & (t->bucket_cnt - 1)];
    while (*link != e)
        link = &(*link)->hash_next;
    *link = e->hash_next;
    t->cnt--;
    free(e);
}

static void table_clear(key_table_t *t) {
    for (size_t i = 0; i < t->bucket_cnt; i++) {
        for (key_entry_t *e = t->buckets[i], *next; e; e = next) {
            next = e->hash_next;
            free(e);
        }
    }
    free(t->buckets);
    memset(t, 0, sizeof(*t));
}

/* ---- the dirty set --------------------------------------------------------------------------- */

static void enqueue(rkb_keys_source_t *src, key_entry_t *e) {
    e->dirty = true;
    e->dirty_next = NULL;
    if (src->dirty_tail)
        src->dirty_tail->dirty_next = e;
    else
        src->dirty_head = e;
    src->dirty_tail = e;
    src->dirty_cnt++;
}

/* Key must be sent (again): event is what happened to it. Coalesces with a pending entry (the
 * latest event wins). When the set is full the event is dropped and a resync is due. */
static void mark_dirty(rkb_keys_source_t *src, const char *key, size_t len, const char *event) {
    key_entry_t *e = table_find(&src->table, key, len);
    if (!e || !e->dirty) {
        if (src->dirty_cnt >= PENDING_MAX) {
            if (!src->overflowed)
                rkb_log_warn(src->component,
                             "more than %d changed keys waiting: dropping events; a resync "
                             "follows",
                             PENDING_MAX);
            src->overflowed = true;
            src->resync = true;
            return;
        }
        e = e ? e : table_get(&src->table, key, len);
        enqueue(src, e);
    }
    snprintf(e->event, sizeof(e->event), "%s", event);
}

/* Forgets every dirty key (a snapshot is about to cover them). */
static void clear_dirty(rkb_keys_source_t *src) {
    for (key_entry_t *e = src->dirty_head, *next; e; e = next) {
        next = e->dirty_next;
        e->dirty = false;
        e->dirty_next = NULL;
        table_release(&src->table, e);
    }
    src->dirty_head = src->dirty_tail = NULL;
    src->dirty_cnt = 0;
}

/* ---- configuration --------------------------------------------------------------------------- */

static const char *topic_of(const rkb_config_t *conf) {
    const char *topic = rkb_config_get(conf, "topic");
    return topic && *topic ? topic : DEFAULT_TOPIC;
}

int rkb_keys_source_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    if (rkb_config_get_int(conf, "tasks.max") != 1)
        rkb_errors_add(errs,
                       "%s: tasks.max: must be 1 for the keys source: keyspace notifications are "
                       "broadcast, so every task would send every change (redis-kafka-connect "
                       "advises one task too)",
                       rkb_config_origin(conf, "tasks.max"));
    const char *topic = topic_of(conf);
    size_t len = strlen(topic);
    bool valid = len <= 249 && strcmp(topic, ".") && strcmp(topic, "..");
    for (size_t i = 0; i < len && valid; i++)
        valid = rkb_source_is_topic_char(topic[i]);
    if (strchr(topic, '$'))
        rkb_errors_add(errs,
                       "%s: topic: the keys source writes to one fixed topic: no ${...} tokens "
                       "('%s')",
                       rkb_config_origin(conf, "topic"), topic);
    else if (!valid)
        rkb_errors_add(errs,
                       "%s: topic: '%s' is not a valid Kafka topic name (letters, digits, '.', "
                       "'_' and '-', at most 249)",
                       rkb_config_origin(conf, "topic"), topic);
    const char *pattern = rkb_config_get(conf, "redis.keys.pattern");
    if (!pattern || !*pattern)
        rkb_errors_add(errs, "%s: redis.keys.pattern: must not be empty (* for every key)",
                       rkb_config_origin(conf, "redis.keys.pattern"));
    return (int)(errs->cnt - before);
}

rkb_keys_source_t *rkb_keys_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                       size_t errstr_size) {
    rkb_keys_source_t *src = rkb_calloc(1, sizeof(*src));
    src->conf = conf;
    src->task_id = task_id;
    snprintf(src->component, sizeof(src->component), "%s/%d", rkb_config_get(conf, "name"),
             task_id);
    src->topic = rkb_strdup(topic_of(conf));
    src->pattern = rkb_strdup(rkb_config_get(conf, "redis.keys.pattern"));
    src->snapshot_mode = !strcmp(rkb_config_get(conf, "mode"), "LIVE");
    src->idle_timeout_ms = rkb_config_get_int(conf, "redis.keys.timeout");
    src->batch_size = (size_t)rkb_config_get_int(conf, "batch.size");
    rkb_buf_init(&src->value);

    if (rkb_connect_redis_conf(conf, task_id, &src->redis_conf, errstr, errstr_size)) {
        rkb_keys_source_destroy(src);
        return NULL;
    }
    snprintf(src->channel_prefix, sizeof(src->channel_prefix),
             "__keyspace@%d__:", src->redis_conf.db);
    size_t prefix_len = strlen(src->channel_prefix), pattern_len = strlen(src->pattern);
    src->channel_pattern = rkb_malloc(prefix_len + pattern_len + 1);
    memcpy(src->channel_pattern, src->channel_prefix, prefix_len);
    memcpy(src->channel_pattern + prefix_len, src->pattern, pattern_len + 1);

    src->redis = rkb_redis_new(&src->redis_conf, src->component);
    /* The subscriber gets a name of its own in CLIENT LIST: "rkbridge:NAME:TASK:sub". */
    rkb_redis_conf_t sub_conf = src->redis_conf;
    char sub_name[600];
    snprintf(sub_name, sizeof(sub_name), "%s:sub", src->redis_conf.client_name);
    sub_conf.client_name = sub_name;
    src->sub = rkb_subscriber_new(&sub_conf, src->component);

    src->cmds = rkb_cmds_new();
    src->replies = rkb_calloc(src->batch_size, sizeof(*src->replies));
    src->batch = rkb_calloc(src->batch_size, sizeof(*src->batch));
    return src;
}

void rkb_keys_source_destroy(rkb_keys_source_t *src) {
    if (!src)
        return;
    /* The producer first: its last delivery reports mark keys in the table. */
    rkb_producer_destroy(src->producer, 0);
    rkb_subscriber_destroy(src->sub);
    rkb_redis_destroy(src->redis);
    rkb_redis_conf_clear(&src->redis_conf);
    rkb_cmds_destroy(src->cmds);
    free(src->replies);
    free(src->batch);
    table_clear(&src->table);
    rkb_buf_free(&src->value);
    free(src->topic);
    free(src->pattern);
    free(src->channel_pattern);
    free(src);
}

static void fail(rkb_keys_source_t *src, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail(rkb_keys_source_t *src, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(src->failure, sizeof(src->failure), fmt, ap);
    va_end(ap);
    src->failed = true;
}

/* ---- Redis: connection, notifications config, run_id ----------------------------------------- */

/* One command on the command connection. NULL on a connection failure (logged). */
static redisReply *command(rkb_keys_source_t *src, int argc, const char **argv) {
    char why[512];
    redisReply *reply = rkb_redis_command(src->redis, argc, argv, NULL, why, sizeof(why));
    if (!reply)
        rkb_log_warn(src->component, "%s", why);
    return reply;
}

/* Fails the task for an error reply that will not pass by itself; returns the step result. */
static step_t error_reply(rkb_keys_source_t *src, const char *what, const char *msg) {
    if (rkb_redis_error_is_transient(msg)) {
        rkb_log_warn(src->component, "%s: %s", what, msg);
        return STEP_TRANSIENT;
    }
    fail(src, "%s: %s", what, msg);
    return STEP_FAILED;
}

/* The run_id in INFO server: a new one means Redis restarted (and lost or reloaded its data)
 * while we were not looking, so whatever was published meanwhile is lost. */
static step_t check_run_id(rkb_keys_source_t *src) {
    const char *argv[] = {"INFO", "server"};
    redisReply *reply = command(src, 2, argv);
    if (!reply)
        return STEP_TRANSIENT;
    step_t rc = STEP_OK;
    const char *line = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, "run_id:") : NULL;
    if (line) {
        line += strlen("run_id:");
        char run_id[sizeof(src->run_id)];
        size_t len = strcspn(line, "\r\n");
        snprintf(run_id, sizeof(run_id), "%.*s", (int)len, line);
        if (src->run_id[0] && strcmp(run_id, src->run_id)) {
            rkb_log_warn(src->component,
                         "Redis restarted (run_id %s, was %s): resubscribing and taking a new "
                         "snapshot",
                         run_id, src->run_id);
            src->resync = true;
        }
        memcpy(src->run_id, run_id, sizeof(run_id));
    } else if (reply->type == REDIS_REPLY_ERROR) {
        rc = error_reply(src, "INFO server", reply->str);
    }
    freeReplyObject(reply);
    return rc;
}

static step_t load_script(rkb_keys_source_t *src) {
    const char *argv[] = {"SCRIPT", "LOAD", read_script};
    redisReply *reply = command(src, 3, argv);
    if (!reply)
        return STEP_TRANSIENT;
    step_t rc = STEP_OK;
    if (reply->type == REDIS_REPLY_STRING && reply->len < sizeof(src->script_sha)) {
        memcpy(src->script_sha, reply->str, reply->len + 1);
        src->script_loaded = true;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        rc = error_reply(src, "SCRIPT LOAD (the keys source reads each key with a script)",
                         reply->str);
    } else {
        fail(src, "SCRIPT LOAD: unexpected reply (type %d)", reply->type);
        rc = STEP_FAILED;
    }
    freeReplyObject(reply);
    return rc;
}

/* Connects the command connection if needed; then the read script and the run_id check. */
static step_t ensure_redis(rkb_keys_source_t *src) {
    if (rkb_redis_is_connected(src->redis) && src->script_loaded)
        return STEP_OK;
    if (!rkb_redis_is_connected(src->redis)) {
        char why[512];
        int err = rkb_redis_connect(src->redis, why, sizeof(why));
        if (err == RKB_REDIS_ERR_IO) {
            rkb_log_warn(src->component, "%s", why);
            return STEP_TRANSIENT;
        }
        if (err) {
            fail(src, "%s", why);
            return STEP_FAILED;
        }
        src->script_loaded = false;
        step_t rc = check_run_id(src);
        if (rc != STEP_OK)
            return rc;
    }
    return load_script(src);
}

#define NOTIFY_HELP                                                                                \
    "set notify-keyspace-events to include K and A (e.g. CONFIG SET notify-keyspace-events KEA)"

/*
 * Keyspace events are off by default (SEMANTICS.md §5.1). The task needs K (the
 * __keyspace@<db>__:<key> channels) and every class of change, A (= g$lshztxed). It keeps the
 * flags already set (E, n, m...) and adds what is missing. Where CONFIG is refused (an ACL user
 * without +config, a renamed command, a managed service), the task fails with what to set:
 * without the events it would silently send nothing.
 */
static step_t ensure_notifications(rkb_keys_source_t *src) {
    static const char classes[] = "g$lshztxed";
    const char *get_argv[] = {"CONFIG", "GET", "notify-keyspace-events"};
    redisReply *reply = command(src, 3, get_argv);
    if (!reply)
        return STEP_TRANSIENT;
    if (reply->type == REDIS_REPLY_ERROR) {
        step_t rc = rkb_redis_error_is_transient(reply->str) ? STEP_TRANSIENT : STEP_FAILED;
        if (rc == STEP_FAILED)
            fail(src, "cannot read notify-keyspace-events (CONFIG GET: %s): " NOTIFY_HELP,
                 reply->str);
        else
            rkb_log_warn(src->component, "CONFIG GET notify-keyspace-events: %s", reply->str);
        freeReplyObject(reply);
        return rc;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        freeReplyObject(reply);
        fail(src, "CONFIG GET notify-keyspace-events: unexpected reply; " NOTIFY_HELP);
        return STEP_FAILED;
    }
    const char *flags = reply->element[1]->str;
    bool has_all = true;
    for (const char *c = classes; *c; c++)
        has_all &= strchr(flags, *c) != NULL;
    has_all |= strchr(flags, 'A') != NULL;
    if (strchr(flags, 'K') && has_all) {
        freeReplyObject(reply);
        return STEP_OK;
    }

    char wanted[64] = "KA";
    size_t len = 2;
    for (const char *c = flags; *c && len < sizeof(wanted) - 1; c++)
        if (*c != 'K' && *c != 'A' && !strchr(classes, *c) && !memchr(wanted, *c, len))
            wanted[len++] = *c;
    wanted[len] = '\0';
    char was[64];
    snprintf(was, sizeof(was), "%s", flags);
    freeReplyObject(reply);

    const char *set_argv[] = {"CONFIG", "SET", "notify-keyspace-events", wanted};
    reply = command(src, 4, set_argv);
    if (!reply)
        return STEP_TRANSIENT;
    step_t rc = STEP_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        rc = rkb_redis_error_is_transient(reply->str) ? STEP_TRANSIENT : STEP_FAILED;
        if (rc == STEP_FAILED)
            fail(src,
                 "notify-keyspace-events is '%s' and cannot be changed (CONFIG SET: "
                 "%s): " NOTIFY_HELP,
                 was, reply->str);
    } else {
        rkb_log_info(src->component,
                     "notify-keyspace-events was '%s': set it to '%s' (the keys source needs "
                     "keyspace events of every kind)",
                     was, wanted);
    }
    freeReplyObject(reply);
    return rc;
}

/* ---- events ---------------------------------------------------------------------------------- */

/* A keyspace notification: channel "__keyspace@<db>__:<key>", payload = the event name. */
static void on_event(const rkb_sub_message_t *msg, void *opaque) {
    rkb_keys_source_t *src = opaque;
    size_t prefix_len = strlen(src->channel_prefix);
    if (msg->channel_len < prefix_len || memcmp(msg->channel, src->channel_prefix, prefix_len))
        return;
    char event[EVENT_MAX];
    snprintf(event, sizeof(event), "%.*s", (int)msg->payload_len, msg->payload);
    src->stats.events++;
    src->last_event_ms = rkb_now_ms();
    /* keymiss (flag m) says a read found nothing, our own reads included: not a change. */
    if (!strcmp(event, "keymiss"))
        return;
    mark_dirty(src, msg->channel + prefix_len, msg->channel_len - prefix_len, event);
}

/* Takes the events that have arrived (waiting up to timeout_ms for the first). A failed
 * subscriber connection is a loss of events: a resync is due. */
static step_t drain_events(rkb_keys_source_t *src, int timeout_ms, size_t max) {
    char why[512];
    if (rkb_subscriber_poll(src->sub, timeout_ms, max, on_event, src, why, sizeof(why)) >= 0)
        return STEP_OK;
    rkb_log_warn(src->component, "lost the keyspace notifications (%s): resubscribing%s", why,
                 src->snapshot_mode ? " and taking a new snapshot"
                                    : "; mode=LIVEONLY: changes made meanwhile are not sent");
    src->resync = true;
    return STEP_TRANSIENT;
}

/* ---- records --------------------------------------------------------------------------------- */

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_keys_source_t *src = opaque;
    sent_t *sent = msg_opaque;
    if (!err) {
        src->stats.delivered++;
    } else {
        /* Send the key's current state again: the topic may still hold an older one, even a
         * value where a tombstone failed, so the key counts as live until one is delivered
         * (a resync that drops the dirty set then still reads it). */
        if (!src->stats.delivery_failed)
            rkb_log_warn(src->component, "delivery to %s failed: %s; sending the key again",
                         src->topic, errstr);
        src->stats.delivery_failed++;
        table_get(&src->table, sent->key, sent->len)->live = true;
        mark_dirty(src, sent->key, sent->len, sent->event);
    }
    free(sent);
}

/* Appends bytes as a JSON string: valid UTF-8 as is (escaped where JSON needs it), any other
 * byte as \u00XX. */
static void json_string(rkb_buf_t *out, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    rkb_buf_append(out, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t seq = 0;
        if (c >= 0x80) { /* the length of a valid UTF-8 sequence starting here, or 0 */
            const unsigned char *u = (const unsigned char *)s + i;
            size_t left = len - i;
            if (c >= 0xc2 && c <= 0xdf && left >= 2 && (u[1] & 0xc0) == 0x80)
                seq = 2;
            else if (c >= 0xe0 && c <= 0xef && left >= 3 && (u[1] & 0xc0) == 0x80 &&
                     (u[2] & 0xc0) == 0x80 && !(c == 0xe0 && u[1] < 0xa0) &&
                     !(c == 0xed && u[1] >= 0xa0))
                seq = 3;
            else if (c >= 0xf0 && c <= 0xf4 && left >= 4 && (u[1] & 0xc0) == 0x80 &&
                     (u[2] & 0xc0) == 0x80 && (u[3] & 0xc0) == 0x80 &&
                     !(c == 0xf0 && u[1] < 0x90) && !(c == 0xf4 && u[1] >= 0x90))
                seq = 4;
        }
        if (seq) {
            rkb_buf_append(out, s + i, seq);
            i += seq;
            continue;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rkb_buf_append(out, esc, 2);
        } else if (c >= 0x20 && c < 0x80) {
            rkb_buf_append(out, s + i, 1);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rkb_buf_append(out, esc, 6);
        }
        i++;
    }
    rkb_buf_append(out, "\"", 1);
}

/* A score as Redis printed it: a JSON number when it is one, else (inf, -inf) a string. */
static void json_score(rkb_buf_t *out, const char *s, size_t len) {
    size_t i = 0;
    bool ok = len > 0;
    if (i < len && s[i] == '-')
        i++;
    size_t int_start = i;
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    ok &= i > int_start && !(s[int_start] == '0' && i - int_start > 1);
    if (ok && i < len && s[i] == '.') {
        size_t frac_start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        ok &= i > frac_start;
    }
    if (ok && i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t exp_start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        ok &= i > exp_start;
    }
    if (ok && i == len)
        rkb_buf_append(out, s, len);
    else
        json_string(out, s, len);
}

static int compare_elements(const void *a, const void *b) {
    const redisReply *x = *(const redisReply *const *)a, *y = *(const redisReply *const *)b;
    int c = memcmp(x->str, y->str, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* A hash's fields and values (HGETALL: field, value, ...) as a JSON object, fields sorted.
 * The pairs are sorted as units: element[0] of each is the field, compare_elements' subject. */
static void encode_hash(rkb_buf_t *out, redisReply *flat) {
    size_t pair_cnt = flat->elements / 2;
    redisReply *(*pairs)[2] = rkb_calloc(pair_cnt ? pair_cnt : 1, sizeof(*pairs));
    for (size_t i = 0; i < pair_cnt; i++) {
        pairs[i][0] = flat->element[2 * i];
        pairs[i][1] = flat->element[2 * i + 1];
    }
    qsort(pairs, pair_cnt, sizeof(*pairs), compare_elements);
    rkb_buf_append(out, "{", 1);
    for (size_t i = 0; i < pair_cnt; i++) {
        if (i)
            rkb_buf_append(out, ",", 1);
        json_string(out, pairs[i][0]->str, pairs[i][0]->len);
        rkb_buf_append(out, ":", 1);
        json_string(out, pairs[i][1]->str, pairs[i][1]->len);
    }
    rkb_buf_append(out, "}", 1);
    free(pairs);
}

static void encode_array(rkb_buf_t *out, redisReply *array, bool sorted) {
    if (sorted)
        qsort(array->element, array->elements, sizeof(*array->element), compare_elements);
    rkb_buf_append(out, "[", 1);
    for (size_t i = 0; i < array->elements; i++) {
        if (i)
            rkb_buf_append(out, ",", 1);
        json_string(out, array->element[i]->str, array->element[i]->len);
    }
    rkb_buf_append(out, "]", 1);
}

static void encode_zset(rkb_buf_t *out, redisReply *flat) {
    rkb_buf_append(out, "[", 1);
    for (size_t i = 0; i + 1 < flat->elements; i += 2) {
        if (i)
            rkb_buf_append(out, ",", 1);
        rkb_buf_append(out, "[", 1);
        json_string(out, flat->element[i]->str, flat->element[i]->len);
        rkb_buf_append(out, ",", 1);
        json_score(out, flat->element[i + 1]->str, flat->element[i + 1]->len);
        rkb_buf_append(out, "]", 1);
    }
    rkb_buf_append(out, "]", 1);
}

/* True if every element of an array reply is a string (what the script returns for the
 * collection types). */
static bool strings_only(const redisReply *array) {
    if (array->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < array->elements; i++)
        if (array->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

/* Encodes the value of a script reply into src->value. Returns the type name when the type is
 * sent, or NULL (stream, module type, or a reply we do not understand). */
static const char *encode_state(rkb_keys_source_t *src, redisReply *state) {
    rkb_buf_reset(&src->value);
    if (state->elements < 3)
        return NULL;
    const char *type = state->element[0]->str;
    redisReply *v = state->element[2];
    if (!strcmp(type, "string") && v->type == REDIS_REPLY_STRING) {
        rkb_buf_append(&src->value, v->str, v->len);
        return "string";
    }
    if (!strings_only(v))
        return NULL;
    if (!strcmp(type, "hash") && v->elements % 2 == 0) {
        encode_hash(&src->value, v);
        return "hash";
    }
    if (!strcmp(type, "list")) {
        encode_array(&src->value, v, false);
        return "list";
    }
    if (!strcmp(type, "set")) {
        encode_array(&src->value, v, true);
        return "set";
    }
    if (!strcmp(type, "zset") && v->elements % 2 == 0) {
        encode_zset(&src->value, v);
        return "zset";
    }
    return NULL;
}

/* Produces one record: the key's value (type != NULL) or its tombstone. Returns 0, or -1 when
 * the producer refused it (logged; the caller sends the key again later). */
static int produce(rkb_keys_source_t *src, const char *key, size_t len, const char *event,
                   const char *type, int64_t ttl_ms) {
    char ttl_text[24];
    rkb_header_t headers[3] = {
        {"redis-event", event, strlen(event)},
        {"redis-type", type ? type : "none", strlen(type ? type : "none")},
    };
    size_t header_cnt = 2;
    if (type && ttl_ms >= 0) {
        snprintf(ttl_text, sizeof(ttl_text), "%lld", (long long)ttl_ms);
        headers[header_cnt++] = (rkb_header_t){"redis-ttl", ttl_text, strlen(ttl_text)};
    }
    sent_t *sent = rkb_malloc(sizeof(*sent) + len + 1);
    snprintf(sent->event, sizeof(sent->event), "%s", event);
    sent->len = len;
    memcpy(sent->key, key, len);
    char why[512];
    if (rkb_producer_send(src->producer, src->topic, -1, key, len, type ? src->value.data : NULL,
                          type ? src->value.len : 0, headers, header_cnt, -1, sent, why,
                          sizeof(why))) {
        free(sent);
        char fatal[512];
        if (rkb_producer_fatal_error(src->producer, fatal, sizeof(fatal)))
            fail(src, "kafka producer: %s", fatal); /* no record can be sent any more */
        else
            rkb_log_warn(src->component, "%s", why);
        return -1;
    }
    if (type)
        src->stats.upserts++;
    else
        src->stats.tombstones++;
    return 0;
}

/* Sends a key's state as read by the script (or a tombstone when state is NULL) and records
 * what the topic now holds for it. snapshot_gen != 0 marks the key as read by that snapshot. */
static int emit(rkb_keys_source_t *src, const char *key, size_t len, const char *event,
                redisReply *state, uint32_t snapshot_gen) {
    const char *type = NULL;
    int64_t ttl_ms = -1;
    if (state) {
        type = encode_state(src, state);
        if (state->elements >= 2 && state->element[1]->type == REDIS_REPLY_INTEGER)
            ttl_ms = state->element[1]->integer;
    }
    key_entry_t *e = table_find(&src->table, key, len);
    if (state && !type && strcmp(state->element[0]->str, "none")) {
        /* Not a type we send. A value the topic holds for the key is out of date: tombstone. */
        rkb_log_debug(src->component, "'%.*s' is a %s: not sent (see keys.c)", (int)len, key,
                      state->element[0]->str);
        if (!e || !e->live) {
            src->stats.skipped++;
            return 0;
        }
    }
    if (produce(src, key, len, event, type, ttl_ms))
        return -1;
    if (type) {
        e = e ? e : table_get(&src->table, key, len);
        e->live = true;
    } else if (e) {
        e->live = false;
    }
    if (e && snapshot_gen)
        e->seen_gen = snapshot_gen;
    if (e)
        table_release(&src->table, e);
    return 0;
}

/* A key to read: bytes and what happened to it. */
typedef struct key_ref_s {
    const char *key;
    size_t len;
    const char *event;
} key_ref_t;

/* Reads the state of keys[0..n) with one pipelined script call each into src->replies.
 * A script missing from Redis's cache (a restart, SCRIPT FLUSH) is loaded again once. */
static step_t read_states(rkb_keys_source_t *src, const key_ref_t *keys, size_t n) {
    for (int attempt = 0;; attempt++) {
        step_t rc = ensure_redis(src);
        if (rc != STEP_OK)
            return rc;
        rkb_cmds_reset(src->cmds);
        for (size_t i = 0; i < n; i++) {
            rkb_cmds_begin(src->cmds);
            rkb_cmds_args(src->cmds, "EVALSHA");
            rkb_cmds_args(src->cmds, src->script_sha);
            rkb_cmds_args(src->cmds, "1");
            rkb_cmds_arg(src->cmds, keys[i].key, keys[i].len);
            rkb_cmds_end(src->cmds);
        }
        char why[512];
        if (rkb_redis_pipeline(src->redis, src->cmds, src->replies, why, sizeof(why))) {
            rkb_log_warn(src->component, "%s", why);
            return STEP_TRANSIENT;
        }
        const char *error = NULL;
        bool noscript = false;
        for (size_t i = 0; i < n; i++) {
            redisReply *reply = src->replies[i];
            if (reply->type == REDIS_REPLY_ERROR) {
                noscript |= !strncmp(reply->str, "NOSCRIPT", 8);
                error = error ? error : reply->str;
            } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
                       reply->element[0]->type != REDIS_REPLY_STRING) {
                error = error ? error : "unexpected reply from the read script";
            }
        }
        if (!error)
            return STEP_OK;
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", error);
        rkb_redis_replies_free(src->replies, n);
        if (noscript && attempt == 0) {
            src->script_loaded = false;
            continue;
        }
        return error_reply(src, "reading keys", msg);
    }
}

/* Sends up to batch.size dirty keys: removals as tombstones, the others as read now. */
static step_t send_dirty(rkb_keys_source_t *src) {
    size_t n = 0;
    while (src->dirty_head && n < src->batch_size) {
        key_entry_t *e = src->dirty_head;
        src->dirty_head = e->dirty_next;
        if (!src->dirty_head)
            src->dirty_tail = NULL;
        src->dirty_cnt--;
        e->dirty = false;
        e->busy = true;
        src->batch[n++] = e;
    }

    /* Decided once: a delivery report served while sending may change an entry's event. */
    bool *removal = rkb_calloc(n ? n : 1, sizeof(*removal));
    key_ref_t *reads = rkb_calloc(n ? n : 1, sizeof(*reads));
    size_t read_cnt = 0;
    for (size_t i = 0; i < n; i++) {
        key_entry_t *e = src->batch[i];
        removal[i] = is_removal_event(e->event);
        if (!removal[i])
            reads[read_cnt++] = (key_ref_t){e->key, e->len, e->event};
    }
    step_t rc = read_cnt ? read_states(src, reads, read_cnt) : STEP_OK;

    bool send_failed = false;
    size_t next_read = 0;
    for (size_t i = 0; i < n; i++) {
        key_entry_t *e = src->batch[i];
        redisReply *state = removal[i] ? NULL : rc == STEP_OK ? src->replies[next_read] : NULL;
        next_read += !removal[i];
        bool sent = false;
        if (!send_failed && (removal[i] || rc == STEP_OK)) {
            if (state && !strcmp(state->element[0]->str, "none"))
                state = NULL; /* gone: tombstone */
            sent = emit(src, e->key, e->len, e->event, state, 0) == 0;
            send_failed = !sent;
        }
        e->busy = false;
        if (!sent && !e->dirty)
            enqueue(src, e); /* try again later */
        table_release(&src->table, e);
    }
    if (read_cnt && rc == STEP_OK)
        rkb_redis_replies_free(src->replies, read_cnt);
    free(reads);
    free(removal);
    if (rc == STEP_OK && send_failed)
        rc = STEP_TRANSIENT;
    return rc;
}

/* ---- subscription and snapshot --------------------------------------------------------------- */

/* A record of the topic read at start: remember whether its key's latest record is a value. */
static void on_topic_record(int32_t partition, int64_t offset, const void *key, size_t key_len,
                            const void *value, size_t value_len, void *opaque) {
    rkb_keys_source_t *src = opaque;
    if (!key || !glob_match(src->pattern, strlen(src->pattern), key, key_len))
        return;
    key_entry_t *e =
        value ? table_get(&src->table, key, key_len) : table_find(&src->table, key, key_len);
    if (!e)
        return;
    e->live = value != NULL;
    table_release(&src->table, e);
}

/* mode LIVE, once per run: which keys does the topic hold a value for? Those the snapshot does
 * not find were deleted while no one listened, and get their tombstone. */
static step_t load_topic(rkb_keys_source_t *src) {
    rkb_kafka_props_t props;
    rkb_connect_kafka_props(src->conf, &props);
    char client_id[512], why[512];
    snprintf(client_id, sizeof(client_id), "rkbridge-%s-%d-reader",
             rkb_config_get(src->conf, "name"), src->task_id);
    rkb_reader_conf_t rc = {
        .component = src->component,
        .client_id = client_id,
        .props = (const char *const *)props.pairs,
        .prop_cnt = props.cnt,
        .timeout_ms = TOPIC_READ_TIMEOUT,
    };
    int err = rkb_reader_read_topic(&rc, src->topic, on_topic_record, src, why, sizeof(why));
    rkb_kafka_props_clear(&props);
    if (err) {
        rkb_log_warn(src->component, "reading back %s: %s", src->topic, why);
        clear_dirty(src); /* start over next time */
        table_clear(&src->table);
        return STEP_TRANSIENT;
    }
    rkb_log_info(src->component, "%s holds a value for %zu keys matching '%s'", src->topic,
                 src->table.cnt, src->pattern);
    src->topic_loaded = true;
    return STEP_OK;
}

/* SCAN MATCH pattern over the whole keyspace, sending each key's state, while the events that
 * arrive meanwhile wait in the dirty set. Then every live key the scan did not return is read
 * again (SCAN returns every key that existed for the whole scan, so a missing one was deleted
 * or changed meanwhile: reading tells which). */
static step_t snapshot(rkb_keys_source_t *src, const volatile int *stop) {
    uint32_t gen = ++src->snapshot_gen;
    if (!gen) /* 0 means "not a snapshot" */
        gen = ++src->snapshot_gen;
    char cursor[32] = "0", count[24];
    snprintf(count, sizeof(count), "%zu", src->batch_size);
    uint64_t sent = 0;
    key_ref_t *refs = rkb_calloc(src->batch_size, sizeof(*refs));
    step_t rc = STEP_OK;
    do {
        if (*stop) {
            rc = STEP_TRANSIENT; /* unfinished: resync stays due */
            break;
        }
        if ((rc = ensure_redis(src)) != STEP_OK)
            break;
        const char *argv[] = {"SCAN", cursor, "MATCH", src->pattern, "COUNT", count};
        redisReply *page = command(src, 6, argv);
        if (!page) {
            rc = STEP_TRANSIENT;
            break;
        }
        if (page->type == REDIS_REPLY_ERROR) {
            rc = error_reply(src, "SCAN", page->str);
            freeReplyObject(page);
            break;
        }
        if (page->type != REDIS_REPLY_ARRAY || page->elements != 2 ||
            page->element[0]->type != REDIS_REPLY_STRING ||
            page->element[1]->type != REDIS_REPLY_ARRAY || !strings_only(page->element[1])) {
            fail(src, "SCAN: unexpected reply");
            freeReplyObject(page);
            rc = STEP_FAILED;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", page->element[0]->str);
        redisReply *keys = page->element[1];
        /* COUNT is a hint: a page may hold more keys than batch.size. */
        for (size_t first = 0; first < keys->elements && rc == STEP_OK; first += src->batch_size) {
            size_t n = keys->elements - first;
            n = n < src->batch_size ? n : src->batch_size;
            for (size_t i = 0; i < n; i++)
                refs[i] = (key_ref_t){keys->element[first + i]->str, keys->element[first + i]->len,
                                      "snapshot"};
            if ((rc = read_states(src, refs, n)) != STEP_OK)
                break;
            for (size_t i = 0; i < n && rc == STEP_OK; i++) {
                redisReply *state = src->replies[i];
                bool gone = !strcmp(state->element[0]->str, "none");
                if (emit(src, refs[i].key, refs[i].len, "snapshot", gone ? NULL : state, gen))
                    rc = STEP_TRANSIENT;
                sent++;
            }
            rkb_redis_replies_free(src->replies, n);
        }
        freeReplyObject(page);
        if (rc == STEP_OK)
            rc = drain_events(src, 0, 10 * src->batch_size);
        rkb_producer_poll(src->producer, 0);
    } while (rc == STEP_OK && strcmp(cursor, "0"));
    free(refs);
    if (rc != STEP_OK)
        return rc;

    size_t unseen = 0;
    for (size_t i = 0; i < src->table.bucket_cnt; i++) {
        for (key_entry_t *e = src->table.buckets[i]; e; e = e->hash_next) {
            if (e->live && e->seen_gen != gen && !e->dirty) {
                mark_dirty(src, e->key, e->len, "snapshot");
                unseen++;
            }
        }
    }
    src->stats.snapshots++;
    rkb_log_info(src->component,
                 "snapshot of keys matching '%s': %llu sent; %zu keys the topic holds were not "
                 "found and are checked again",
                 src->pattern, (unsigned long long)sent, unseen);
    return STEP_OK;
}

/* Step 1 of SEMANTICS.md §5.3, again after any loss: notifications on, subscribe first, then
 * (mode LIVE) the snapshot. The subscription's events wait in the dirty set meanwhile. */
static step_t resync(rkb_keys_source_t *src, const volatile int *stop) {
    step_t rc = ensure_redis(src);
    if (rc == STEP_OK)
        rc = check_run_id(src);
    if (rc == STEP_OK)
        rc = ensure_notifications(src);
    if (rc != STEP_OK)
        return rc;

    char why[512];
    const char *patterns[] = {src->channel_pattern};
    src->resync = false;
    src->overflowed = false;
    if (src->snapshot_mode)
        clear_dirty(src); /* the snapshot reads every key again, after the subscription */
    int err =
        rkb_subscriber_subscribe(src->sub, NULL, 0, patterns, 1, on_event, src, why, sizeof(why));
    if (err == RKB_REDIS_ERR_IO) {
        rkb_log_warn(src->component, "%s", why);
        src->resync = true;
        return STEP_TRANSIENT;
    }
    if (err) {
        fail(src, "subscribing to %s: %s", src->channel_pattern, why);
        return STEP_FAILED;
    }
    rkb_log_info(src->component, "subscribed to %s", src->channel_pattern);
    src->stats.resyncs++;
    if (src->snapshot_mode && (rc = snapshot(src, stop)) != STEP_OK) {
        src->resync = true;
        return rc;
    }
    src->last_event_ms = rkb_now_ms();
    return STEP_OK;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static step_t step(rkb_keys_source_t *src, const volatile int *stop) {
    if (!src->topic_loaded)
        return load_topic(src);
    if (src->resync)
        return resync(src, stop);
    step_t rc = drain_events(src, src->dirty_cnt ? 0 : 100, src->batch_size);
    if (rc != STEP_OK || src->resync)
        return rc;
    if (src->dirty_cnt)
        rc = send_dirty(src);
    rkb_producer_poll(src->producer, 0);
    if (rc == STEP_OK && src->idle_timeout_ms > 0 && !src->dirty_cnt &&
        rkb_now_ms() - src->last_event_ms >= src->idle_timeout_ms)
        return STEP_IDLE;
    return rc;
}

int rkb_keys_source_run(rkb_keys_source_t *src, rkb_task_ctl_t *ctl, char *errstr,
                        size_t errstr_size) {
    const volatile int *stop = rkb_task_ctl_stop(ctl);
    src->producer = rkb_connect_producer_new(src->conf, src->task_id, NULL, src->component,
                                             on_delivery, src, errstr, errstr_size);
    if (!src->producer)
        return -1;
    char where[400];
    rkb_log_info(src->component,
                 "keys source started: keys matching '%s' in redis %s → topic %s, mode %s",
                 src->pattern, rkb_redis_conf_describe(&src->redis_conf, where, sizeof(where)),
                 src->topic, src->snapshot_mode ? "LIVE" : "LIVEONLY");
    src->topic_loaded = !src->snapshot_mode;
    src->resync = true;
    src->last_event_ms = rkb_now_ms();

    while (!*stop && !src->failed) {
        /* Paused (connect/task_ctl.h): no events are taken in; the keys known to have changed
         * are sent and delivered first, and only then is the pause reported. */
        if (rkb_task_ctl_hold(ctl, !src->dirty_cnt && !rkb_producer_outstanding(src->producer))) {
            if (src->dirty_cnt && send_dirty(src) != STEP_OK)
                rkb_source_backoff(src->producer, 1, BACKOFF_MAX_MS, stop);
            rkb_producer_poll(src->producer, 50);
            src->last_event_ms = rkb_now_ms(); /* a pause is not redis.keys.timeout's idleness */
            continue;
        }
        step_t rc = step(src, stop);
        if (rc == STEP_IDLE) {
            rkb_log_info(src->component,
                         "no change for %lld ms (redis.keys.timeout): stopping the task",
                         (long long)src->idle_timeout_ms);
            break;
        }
        if (rc == STEP_FAILED)
            break;
        if (rc == STEP_OK) {
            if (src->attempt)
                rkb_log_info(src->component, "going again after %d retries", src->attempt);
            src->attempt = 0;
            continue;
        }
        /* Transient: back off, serving delivery reports meanwhile. The first retry after a
         * loss of events comes at once. */
        src->stats.retries++;
        rkb_source_backoff(src->producer, src->attempt++, BACKOFF_MAX_MS, stop);
    }

    /* Orderly shutdown: stop intake (no more events), send the keys already known to have
     * changed if Redis answers (one pass; mode LIVE's next start covers the rest), wait for
     * the delivery reports, close. */
    rkb_subscriber_close(src->sub);
    size_t passes = src->dirty_cnt / src->batch_size + 1;
    for (size_t i = 0; i < passes && !src->failed && src->dirty_cnt && !src->resync; i++)
        if (send_dirty(src) != STEP_OK)
            break;
    rkb_source_flush(src->producer, src->component, SHUTDOWN_FLUSH_MS);
    rkb_redis_close(src->redis);
    rkb_log_info(
        src->component,
        "keys source stopped: %llu events, %llu values and %llu tombstones sent, "
        "%llu delivered, %llu failed deliveries, %llu skipped, %llu snapshots, "
        "%llu subscriptions",
        (unsigned long long)src->stats.events, (unsigned long long)src->stats.upserts,
        (unsigned long long)src->stats.tombstones, (unsigned long long)src->stats.delivered,
        (unsigned long long)src->stats.delivery_failed, (unsigned long long)src->stats.skipped,
        (unsigned long long)src->stats.snapshots, (unsigned long long)src->stats.resyncs);
    if (src->failed) {
        snprintf(errstr, errstr_size, "%s", src->failure);
        return -1;
    }
    return 0;
}

const rkb_keys_source_stats_t *rkb_keys_source_stats(const rkb_keys_source_t *src) {
    return &src->stats;
}
