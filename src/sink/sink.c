/*
 * sink.c — the Kafka → Redis sink task, at-least-once (see sink.h).
 *
 * Data path: consumer (kafka/consumer.c) → convert (convert/) → writer encodes commands
 * (sink/writer.c) → one pipeline per batch (redis/) → per-partition acknowledged prefix →
 * offsets stored → committed by the consumer.
 */
#include "sink/sink.h"

#include "convert/convert.h"
#include "kafka/consumer.h"
#include "redis/redis.h"
#include "sink/writer.h"
#include "tmpl/tmpl.h"
#include "util/failpoint.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What happened to one record of the batch in the last pipeline. */
typedef enum {
    REC_PENDING = 0, /* not sent (its partition is blocked by an earlier record) */
    REC_OK,          /* every command acknowledged, or nothing to write */
    REC_TRANSIENT,   /* a failure that goes away by itself: send again */
    REC_FAILED,      /* can never be written */
} rec_outcome_t;

typedef struct rec_state_s {
    size_t cmd_first; /* index of its first command in the pipeline */
    int cmd_cnt;      /* number of commands (0: nothing to write) */
    bool sent;        /* encoded into the last pipeline */
    rec_outcome_t outcome;
} rec_state_t;

/* Per-partition progress within one pipeline. */
typedef struct part_slot_s {
    const char *topic;
    int32_t partition;
    int64_t applied_next; /* next offset after the acknowledged prefix, or -1 */
    bool blocked;         /* a record of it was not acknowledged: later ones stay too */
} part_slot_t;

struct rkb_sink_task_s {
    const rkb_config_t *conf;
    int task_id;
    char component[256];

    /* Mapping */
    rkb_redis_type_t type;
    rkb_writer_t *writer;
    rkb_converter_t key_conv, value_conv;
    size_t batch_size;
    bool multiexec;
    int64_t wait_replicas, wait_timeout_ms;

    /* Redis */
    rkb_redis_conf_t redis_conf;
    rkb_redis_t *redis;
    bool commands_checked; /* module commands (JSON.SET, TS.ADD) known to exist */

    /* Kafka */
    rkb_consumer_t *consumer;
    char group_id[512], client_id[512];
    char **topics;
    size_t topic_cnt;
    char **props; /* name/value pairs */
    size_t prop_cnt;

    /* The batch in hand, in consumption order (per partition in offset order). */
    rkb_record_t *recs;
    rec_state_t *states;
    size_t cnt;
    rkb_cmds_t *cmds;
    redisReply **replies;
    size_t replies_cap;
    part_slot_t *slots;
    size_t slot_cnt, slot_cap;
    rkb_toppar_t *store;

    bool failed;
    char failure[1024];
    rkb_sink_stats_t stats;
};

/* ---- configuration -------------------------------------------------------------------------- */

static const char *const template_keys[] = {
    "redis.keyspace", "redis.key.template", "redis.member", "redis.score",
    "redis.timeseries.timestamp",
};

static int converter_from_config(const rkb_config_t *conf, const char *key,
                                 const char *schemas_key, rkb_converter_t *conv) {
    if (rkb_converter_parse(rkb_config_get(conf, key), &conv->type))
        return -1;
    conv->schemas_enable =
        rkb_config_is_set(conf, schemas_key) ? rkb_config_get_bool(conf, schemas_key) : -1;
    return 0;
}

static void writer_conf_from_config(const rkb_config_t *conf, rkb_writer_conf_t *wc) {
    memset(wc, 0, sizeof(*wc));
    rkb_redis_type_parse(rkb_config_get(conf, "redis.type"), &wc->type);
    wc->keyspace = rkb_config_get(conf, "redis.keyspace");
    wc->separator = rkb_config_get(conf, "redis.separator");
    wc->key_template = rkb_config_get(conf, "redis.key.template");
    wc->member = rkb_config_get(conf, "redis.member");
    wc->score = rkb_config_get(conf, "redis.score");
    wc->ts_timestamp = rkb_config_get(conf, "redis.timeseries.timestamp");
    wc->push_left = !strcmp(rkb_config_get(conf, "redis.push.direction"), "LEFT");
    wc->stream_maxlen = rkb_config_get_int(conf, "redis.stream.maxlen");
    wc->ttl_seconds = rkb_config_get_int(conf, "redis.key.ttl");
    wc->in_transaction = rkb_config_get_bool(conf, "redis.multiexec");
}

int rkb_sink_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    char why[512];

    for (size_t i = 0; i < RKB_ARRAY_SIZE(template_keys); i++) {
        const char *text = rkb_config_get(conf, template_keys[i]);
        if (!text)
            continue;
        rkb_tmpl_t *tmpl = rkb_tmpl_parse(text, why, sizeof(why));
        if (!tmpl)
            rkb_errors_add(errs, "%s: %s: %s", rkb_config_origin(conf, template_keys[i]),
                           template_keys[i], why);
        rkb_tmpl_destroy(tmpl);
    }

    static const char *const conv_keys[][2] = {
        {"key.converter", "key.converter.schemas.enable"},
        {"value.converter", "value.converter.schemas.enable"},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(conv_keys); i++) {
        rkb_converter_t conv;
        if (converter_from_config(conf, conv_keys[i][0], conv_keys[i][1], &conv))
            rkb_errors_add(errs, "%s: %s: unknown converter '%s'",
                           rkb_config_origin(conf, conv_keys[i][0]), conv_keys[i][0],
                           rkb_config_get(conf, conv_keys[i][0]));
    }

    rkb_redis_conf_t rc;
    rkb_redis_conf_init(&rc);
    const char *uri = rkb_config_get(conf, "redis.uri");
    if (uri && *uri && rkb_redis_conf_from_uri(&rc, uri, why, sizeof(why)))
        rkb_errors_add(errs, "%s: redis.uri: %s", rkb_config_origin(conf, "redis.uri"), why);
    rkb_redis_conf_clear(&rc);

    if (errs->cnt == before) {
        /* Whatever the writer still refuses (type/key combinations). */
        rkb_writer_conf_t wc;
        writer_conf_from_config(conf, &wc);
        rkb_writer_t *writer = rkb_writer_new(&wc, why, sizeof(why));
        if (!writer)
            rkb_errors_add(errs, "%s: %s", rkb_config_origin(conf, "redis.type"), why);
        rkb_writer_destroy(writer);
    }
    return (int)(errs->cnt - before);
}

static void collect_kafka_prop(const char *name, const char *value, const char *origin,
                               void *opaque) {
    rkb_sink_task_t *t = opaque;
    t->props = rkb_realloc(t->props, (t->prop_cnt + 1) * 2 * sizeof(*t->props));
    t->props[2 * t->prop_cnt] = rkb_strdup(name);
    t->props[2 * t->prop_cnt + 1] = rkb_strdup(value);
    t->prop_cnt++;
}

static void split_topics(rkb_sink_task_t *t, const char *list) {
    const char *p = list;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            t->topics = rkb_realloc(t->topics, (t->topic_cnt + 1) * sizeof(*t->topics));
            t->topics[t->topic_cnt++] = rkb_strndup(p, len);
        }
        p = end ? end + 1 : NULL;
    }
}

static int redis_conf_from_config(const rkb_config_t *conf, rkb_redis_conf_t *rc,
                                  const char *client_name, char *errstr, size_t errstr_size) {
    rkb_redis_conf_init(rc);
    const char *uri = rkb_config_get(conf, "redis.uri");
    if (uri && *uri) {
        if (rkb_redis_conf_from_uri(rc, uri, errstr, errstr_size))
            return -1;
    } else {
        free(rc->host);
        rc->host = rkb_strdup(rkb_config_get(conf, "redis.host"));
        rc->port = (int)rkb_config_get_int(conf, "redis.port");
    }
    const char *user = rkb_config_get(conf, "redis.username");
    const char *password = rkb_config_get(conf, "redis.password");
    if (!rc->username && user && *user)
        rc->username = rkb_strdup(user);
    if (!rc->password && password && *password)
        rc->password = rkb_strdup(password);
    int timeout_ms = (int)rkb_config_get_int(conf, "redis.timeout") * 1000;
    rc->connect_timeout_ms = timeout_ms;
    rc->command_timeout_ms = timeout_ms;
    free(rc->client_name);
    rc->client_name = rkb_strdup(client_name);
    return 0;
}

rkb_sink_task_t *rkb_sink_task_new(const rkb_config_t *conf, int task_id, char *errstr,
                                   size_t errstr_size) {
    rkb_sink_task_t *t = rkb_calloc(1, sizeof(*t));
    const char *name = rkb_config_get(conf, "name");
    t->conf = conf;
    t->task_id = task_id;
    snprintf(t->component, sizeof(t->component), "%s/%d", name, task_id);
    snprintf(t->group_id, sizeof(t->group_id), "connect-%s", name);
    snprintf(t->client_id, sizeof(t->client_id), "rkbridge-%s-%d", name, task_id);

    rkb_writer_conf_t wc;
    writer_conf_from_config(conf, &wc);
    t->type = wc.type;
    t->writer = rkb_writer_new(&wc, errstr, errstr_size);
    if (!t->writer)
        goto fail;
    if (converter_from_config(conf, "key.converter", "key.converter.schemas.enable",
                              &t->key_conv) ||
        converter_from_config(conf, "value.converter", "value.converter.schemas.enable",
                              &t->value_conv)) {
        snprintf(errstr, errstr_size, "unknown converter");
        goto fail;
    }
    t->batch_size = (size_t)rkb_config_get_int(conf, "batch.size");
    t->multiexec = rkb_config_get_bool(conf, "redis.multiexec");
    t->wait_replicas = rkb_config_get_int(conf, "redis.wait.replicas");
    t->wait_timeout_ms = rkb_config_get_int(conf, "redis.wait.timeout");

    /* CLIENT SETNAME takes no spaces. */
    char client_name[512];
    snprintf(client_name, sizeof(client_name), "rkbridge:%s:%d", name, task_id);
    for (char *p = client_name; *p; p++)
        if (*p == ' ' || *p == '\n')
            *p = '_';
    if (redis_conf_from_config(conf, &t->redis_conf, client_name, errstr, errstr_size))
        goto fail;
    t->redis = rkb_redis_new(&t->redis_conf, t->component);

    split_topics(t, rkb_config_get(conf, "topics"));
    rkb_config_foreach_kafka(conf, collect_kafka_prop, t);

    t->recs = rkb_calloc(t->batch_size, sizeof(*t->recs));
    for (size_t i = 0; i < t->batch_size; i++)
        rkb_record_init(&t->recs[i]);
    t->states = rkb_calloc(t->batch_size, sizeof(*t->states));
    t->store = rkb_calloc(t->batch_size, sizeof(*t->store));
    t->cmds = rkb_cmds_new();
    return t;

fail:
    rkb_sink_task_destroy(t);
    return NULL;
}

const rkb_sink_stats_t *rkb_sink_task_stats(const rkb_sink_task_t *task) {
    return &task->stats;
}

/* ---- the batch ------------------------------------------------------------------------------ */

static void fail_task(rkb_sink_task_t *t, const rkb_record_t *rec, const char *why) {
    if (t->failed)
        return;
    t->failed = true;
    snprintf(t->failure, sizeof(t->failure), "cannot write record %s[%d]@%lld: %s", rec->topic,
             rec->partition, (long long)rec->offset, why);
}

static part_slot_t *slot_for(rkb_sink_task_t *t, const rkb_record_t *rec) {
    for (size_t i = 0; i < t->slot_cnt; i++) {
        part_slot_t *slot = &t->slots[i];
        if (slot->partition == rec->partition &&
            (slot->topic == rec->topic || !strcmp(slot->topic, rec->topic)))
            return slot;
    }
    if (t->slot_cnt == t->slot_cap) {
        t->slot_cap = t->slot_cap ? t->slot_cap * 2 : 16;
        t->slots = rkb_realloc(t->slots, t->slot_cap * sizeof(*t->slots));
    }
    part_slot_t *slot = &t->slots[t->slot_cnt++];
    slot->topic = rec->topic;
    slot->partition = rec->partition;
    slot->applied_next = -1;
    slot->blocked = false;
    return slot;
}

/* Module commands are missing from a plain Redis: say so once, clearly, instead of failing
 * on the first record with "unknown command". */
static int check_commands(rkb_sink_task_t *t) {
    const char *command = t->type == RKB_TYPE_JSON         ? "JSON.SET"
                          : t->type == RKB_TYPE_TIMESERIES ? "TS.ADD"
                                                           : NULL;
    if (!command || t->commands_checked)
        return 0;
    const char *argv[] = {"COMMAND", "INFO", command};
    char why[512];
    redisReply *reply = rkb_redis_command(t->redis, 3, argv, NULL, why, sizeof(why));
    if (!reply)
        return 1; /* connection failed: transient */
    bool known = reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
                 reply->element[0]->type == REDIS_REPLY_ARRAY;
    freeReplyObject(reply);
    if (!known) {
        t->failed = true;
        snprintf(t->failure, sizeof(t->failure),
                 "redis.type=%s needs the %s module: this Redis does not know %s",
                 rkb_redis_type_name(t->type),
                 t->type == RKB_TYPE_JSON ? "RedisJSON" : "RedisTimeSeries", command);
        return -1;
    }
    t->commands_checked = true;
    return 0;
}

/* Connects if needed. Returns 0, 1 (transient: retry later) or -1 (task failed). */
static int ensure_connected(rkb_sink_task_t *t) {
    if (rkb_redis_is_connected(t->redis))
        return 0;
    char why[512];
    int err = rkb_redis_connect(t->redis, why, sizeof(why));
    if (err == RKB_REDIS_ERR_IO) {
        rkb_log_warn(t->component, "%s", why);
        return 1;
    }
    if (err != RKB_REDIS_OK) {
        t->failed = true;
        snprintf(t->failure, sizeof(t->failure), "%s", why);
        return -1;
    }
    return check_commands(t);
}

/* The reply that tells how command j went: its own reply, or, inside the batch's MULTI, its
 * element of the EXEC reply (a command refused while queueing has its error as the QUEUED
 * reply; an aborted EXEC fails every command with the EXEC error). */
static const redisReply *command_result(const rkb_sink_task_t *t, size_t j, size_t exec_index) {
    const redisReply *reply = t->replies[j];
    if (!t->multiexec || reply->type == REDIS_REPLY_ERROR)
        return reply;
    const redisReply *exec = t->replies[exec_index];
    if (exec->type == REDIS_REPLY_ARRAY && j - 1 < exec->elements)
        return exec->element[j - 1];
    return exec; /* EXECABORT or nil */
}

/* Drops the records at positions where keep[i] is false, keeping the order of the rest. */
static void compact_batch(rkb_sink_task_t *t, const bool *keep) {
    size_t out = 0;
    for (size_t i = 0; i < t->cnt; i++) {
        if (keep[i]) {
            if (out != i) {
                t->recs[out] = t->recs[i];
                t->states[out] = t->states[i];
                rkb_record_init(&t->recs[i]);
            }
            out++;
        } else {
            rkb_consumer_release(&t->recs[i]);
        }
    }
    t->cnt = out;
}

/*
 * Sends the batch in hand as one pipeline and keeps what was not applied.
 * Returns 0 when every record is done, 1 when some must be sent again (transient), -1 when the
 * task failed (t->failure says which record).
 * Ordering that carries the guarantee: offsets are stored only after the replies were read and
 * only for each partition's acknowledged prefix — a crash before the store replays the batch.
 */
static int apply_batch(rkb_sink_task_t *t) {
    if (!t->cnt)
        return 0;
    int rc = ensure_connected(t);
    if (rc)
        return rc;

    char why[512];
    rkb_cmds_reset(t->cmds);
    t->slot_cnt = 0;
    if (t->multiexec) {
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "MULTI");
        rkb_cmds_end(t->cmds);
    }
    for (size_t i = 0; i < t->cnt; i++) {
        rkb_record_t *rec = &t->recs[i];
        rec_state_t *st = &t->states[i];
        part_slot_t *slot = slot_for(t, rec);
        st->outcome = REC_PENDING;
        st->sent = false;
        st->cmd_cnt = 0;
        st->cmd_first = rkb_cmds_count(t->cmds);
        if (slot->blocked)
            continue;
        int n = -1;
        if (rkb_convert_record(&t->key_conv, &t->value_conv, rec, why, sizeof(why)) == 0)
            n = rkb_writer_encode(t->writer, rec, t->cmds, why, sizeof(why));
        if (n < 0) {
            st->outcome = REC_FAILED;
            slot->blocked = true;
            fail_task(t, rec, why);
            continue;
        }
        st->cmd_cnt = n;
        st->sent = true;
    }
    size_t exec_index = 0;
    if (t->multiexec) {
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "EXEC");
        exec_index = rkb_cmds_end(t->cmds);
    }
    size_t wait_index = 0;
    if (t->wait_replicas > 0) {
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "WAIT");
        rkb_cmds_arg_int(t->cmds, t->wait_replicas);
        rkb_cmds_arg_int(t->cmds, t->wait_timeout_ms);
        wait_index = rkb_cmds_end(t->cmds);
    }

    size_t ncmds = rkb_cmds_count(t->cmds);
    if (ncmds > t->replies_cap) {
        t->replies_cap = ncmds * 2;
        t->replies = rkb_realloc(t->replies, t->replies_cap * sizeof(*t->replies));
    }
    if (rkb_redis_pipeline(t->redis, t->cmds, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(t->component, "%s", why);
        return t->failed ? -1 : 1;
    }
    atomic_fetch_add(&t->stats.batches, 1);

    int64_t max_offset = -1;
    for (size_t i = 0; i < t->cnt; i++)
        if (t->recs[i].offset > max_offset)
            max_offset = t->recs[i].offset;
    rkb_failpoint("crash_after_redis_apply", max_offset);

    bool replicas_short = false;
    if (t->wait_replicas > 0) {
        const redisReply *wait = t->replies[wait_index];
        if (wait->type != REDIS_REPLY_INTEGER || wait->integer < t->wait_replicas) {
            replicas_short = true;
            rkb_log_warn(t->component, "WAIT: %lld of %lld replicas acknowledged; retrying",
                         wait->type == REDIS_REPLY_INTEGER ? wait->integer : 0LL,
                         (long long)t->wait_replicas);
        }
    }

    /* Outcome of each record from its commands' replies. */
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (!st->sent)
            continue; /* refused by the writer, or behind such a record: stays */
        st->outcome = replicas_short ? REC_TRANSIENT : REC_OK;
        for (int k = 0; k < st->cmd_cnt; k++) {
            const char *err = rkb_redis_reply_error(command_result(t, st->cmd_first + k, exec_index));
            if (!err)
                continue;
            if (rkb_redis_error_is_transient(err)) {
                st->outcome = REC_TRANSIENT;
                rkb_log_warn(t->component, "%s[%d]@%lld: %s; retrying", t->recs[i].topic,
                             t->recs[i].partition, (long long)t->recs[i].offset, err);
            } else {
                st->outcome = REC_FAILED;
                fail_task(t, &t->recs[i], err);
            }
            break;
        }
    }
    rkb_redis_replies_free(t->replies, ncmds);

    /* Per partition: the prefix up to the first record not acknowledged is applied. */
    for (size_t s = 0; s < t->slot_cnt; s++) {
        t->slots[s].blocked = false;
        t->slots[s].applied_next = -1;
    }
    bool *keep = rkb_calloc(t->cnt, sizeof(*keep));
    bool remaining = false;
    for (size_t i = 0; i < t->cnt; i++) {
        part_slot_t *slot = slot_for(t, &t->recs[i]);
        if (!slot->blocked && t->states[i].outcome == REC_OK) {
            slot->applied_next = t->recs[i].offset + 1;
            if (t->states[i].cmd_cnt)
                atomic_fetch_add(&t->stats.records_written, 1);
            else
                atomic_fetch_add(&t->stats.records_skipped, 1);
        } else {
            slot->blocked = true;
            keep[i] = true;
            remaining = true;
            if (t->states[i].outcome == REC_FAILED)
                atomic_fetch_add(&t->stats.records_failed, 1);
        }
    }
    size_t store_cnt = 0;
    for (size_t s = 0; s < t->slot_cnt; s++) {
        if (t->slots[s].applied_next < 0)
            continue;
        t->store[store_cnt].topic = t->slots[s].topic;
        t->store[store_cnt].partition = t->slots[s].partition;
        t->store[store_cnt].offset = t->slots[s].applied_next;
        store_cnt++;
    }
    rkb_consumer_store(t->consumer, t->store, store_cnt);
    compact_batch(t, keep);
    free(keep);

    if (t->failed)
        return -1;
    return remaining ? 1 : 0;
}

/* ---- rebalance handlers (called from inside rkb_consumer_poll on the task thread) ---------- */

static bool in_parts(const rkb_record_t *rec, const rkb_toppar_t *parts, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        if (parts[i].partition == rec->partition && !strcmp(parts[i].topic, rec->topic))
            return true;
    return false;
}

/*
 * Partitions are going. Not lost: apply what is in hand once (a bounded attempt: Redis's own
 * timeouts) so that the stored offsets, committed right after we return, cover it; what still
 * did not make it is dropped and will be read again by the next owner from the committed offset.
 * Lost: another member may own them already; drop their records without storing anything.
 */
static void on_revoke(const rkb_toppar_t *parts, size_t cnt, bool lost, void *opaque) {
    rkb_sink_task_t *t = opaque;
    if (!lost && t->cnt && !t->failed)
        apply_batch(t);
    bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
    size_t dropped = 0;
    for (size_t i = 0; i < t->cnt; i++) {
        keep[i] = !in_parts(&t->recs[i], parts, cnt);
        dropped += !keep[i];
    }
    if (dropped)
        rkb_log_info(t->component, "dropping %zu unapplied records of %s partitions", dropped,
                     lost ? "lost" : "revoked");
    compact_batch(t, keep);
    free(keep);
}

/* ---- the loop --------------------------------------------------------------------------------- */

static void poll_into_batch(rkb_sink_task_t *t, int timeout_ms) {
    size_t before = t->cnt;
    rkb_consumer_poll(t->consumer, t->recs, &t->cnt, t->batch_size - t->cnt, timeout_ms);
    if (t->cnt > before)
        atomic_fetch_add(&t->stats.records_read, t->cnt - before);
}

int rkb_sink_task_run(rkb_sink_task_t *t, const volatile int *stop, char *errstr,
                      size_t errstr_size) {
    rkb_consumer_conf_t cc = {
        .component = t->component,
        .group_id = t->group_id,
        .client_id = t->client_id,
        .topics = (const char *const *)t->topics,
        .topic_cnt = t->topic_cnt,
        .topics_regex = rkb_config_get(t->conf, "topics.regex"),
        .props = (const char *const *)t->props,
        .prop_cnt = t->prop_cnt,
        .handlers = {.on_revoke = on_revoke, .opaque = t},
    };
    t->consumer = rkb_consumer_new(&cc, errstr, errstr_size);
    if (!t->consumer)
        return -1;

    char where[256];
    rkb_log_info(t->component, "sink started: %s %s → redis %s as %s",
                 cc.topics_regex ? "topics matching" : "topics",
                 cc.topics_regex ? cc.topics_regex : rkb_config_get(t->conf, "topics"),
                 rkb_redis_conf_describe(&t->redis_conf, where, sizeof(where)),
                 rkb_redis_type_name(t->type));

    int attempt = 0;
    while (!*stop && !t->failed) {
        if (!t->cnt) {
            poll_into_batch(t, 100);
            if (!t->cnt)
                continue;
        }
        int rc = apply_batch(t);
        if (rc == 0) {
            if (attempt) {
                rkb_log_info(t->component, "Redis writes succeed again after %d retries; resuming",
                             attempt);
                rkb_consumer_pause_all(t->consumer, false);
                attempt = 0;
            }
            continue;
        }
        if (rc < 0)
            break;
        /* Transient: hold the batch, pause intake, keep polling so the member stays in its
         * group and rebalances are served, and try again after a capped backoff. */
        if (!attempt)
            rkb_log_warn(t->component, "Redis unavailable: pausing intake, %zu records held",
                         t->cnt);
        rkb_consumer_pause_all(t->consumer, true);
        atomic_fetch_add(&t->stats.retries, 1);
        int64_t until = rkb_now_ms() + rkb_backoff_ms(attempt++, 100, 5000);
        while (!*stop && !t->failed && rkb_now_ms() < until)
            poll_into_batch(t, 50); /* batch is full or paused: serves events */
    }

    /* Orderly shutdown: intake has stopped; apply what is in hand once (if Redis answers),
     * store, then close, which commits the stored offsets and leaves the group. */
    if (!t->failed && t->cnt && apply_batch(t) != 0)
        rkb_log_warn(t->component, "%zu records not applied at shutdown; they will be read again",
                     t->cnt);
    for (size_t i = 0; i < t->cnt; i++)
        rkb_consumer_release(&t->recs[i]);
    t->cnt = 0;
    rkb_consumer_close(t->consumer);
    t->consumer = NULL;
    rkb_redis_close(t->redis);

    rkb_log_info(t->component,
                 "sink stopped: %llu read, %llu written, %llu skipped, %llu failed, %llu retries",
                 (unsigned long long)t->stats.records_read,
                 (unsigned long long)t->stats.records_written,
                 (unsigned long long)t->stats.records_skipped,
                 (unsigned long long)t->stats.records_failed,
                 (unsigned long long)t->stats.retries);
    if (t->failed) {
        snprintf(errstr, errstr_size, "%s", t->failure);
        return -1;
    }
    return 0;
}

void rkb_sink_task_destroy(rkb_sink_task_t *t) {
    if (!t)
        return;
    if (t->consumer) {
        for (size_t i = 0; i < t->cnt; i++)
            rkb_consumer_release(&t->recs[i]);
        rkb_consumer_close(t->consumer);
    }
    rkb_writer_destroy(t->writer);
    rkb_redis_destroy(t->redis);
    rkb_redis_conf_clear(&t->redis_conf);
    rkb_cmds_destroy(t->cmds);
    for (size_t i = 0; i < t->topic_cnt; i++)
        free(t->topics[i]);
    free(t->topics);
    for (size_t i = 0; i < 2 * t->prop_cnt; i++)
        free(t->props[i]);
    free(t->props);
    free(t->recs);
    free(t->states);
    free(t->store);
    free(t->replies);
    free(t->slots);
    free(t);
}
