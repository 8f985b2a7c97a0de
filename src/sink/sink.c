/*
 * sink.c — the Kafka → Redis sink task (see sink.h).
 *
 * Data path: consumer (kafka/consumer.c) → convert (convert/) → writer encodes commands
 * (sink/writer.c) → one pipeline per batch (redis/), or one exactly-once script per partition
 * (sink/eos.c) → per-partition prefix of finished records → offsets stored → committed by the
 * consumer. Records that cannot be written go to the dead-letter topic (sink/dlq.c) or stop
 * the task, per errors.tolerance.
 */
#include "sink/sink.h"

#include "connect/clients.h"
#include "convert/convert.h"
#include "kafka/consumer.h"
#include "metrics/metrics.h"
#include "process/cache.h"
#include "process/enrich.h"
#include "process/output.h"
#include "process/window.h"
#include "redis/redis.h"
#include "sink/dlq.h"
#include "sink/eos.h"
#include "sink/writer.h"
#include "tmpl/tmpl.h"
#include "util/failpoint.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The most keys one merged MSET or DEL carries (rkb_cmds_coalesce). */
#define COALESCE_MAX_KEYS 1000

/* Where a record of the batch stands. A record leaves the batch (and its offset may be
 * stored) only once it and every earlier record of its partition are REC_DONE. */
typedef enum {
    REC_PENDING = 0, /* to be written (again) */
    REC_DONE,        /* applied, or nothing to apply, or dead-lettered (at-least-once) */
    REC_DATA_ERROR,  /* can never be written: dead-letter it, skip it, or fail the task */
    REC_DLQ_SENT,    /* produced to the dead-letter topic, its delivery report not yet in */
} rec_outcome_t;

typedef struct rec_state_s {
    size_t cmd_first; /* its first command in t->cmds */
    int cmd_cnt;      /* number of commands (0: nothing to write) */
    bool sent;        /* part of the last pipeline */
    bool inflight;    /* pipelined: sent, its replies not read yet */
    unsigned char flight; /* pipelined: which of t->flights carries it */
    bool transient;   /* the last attempt failed in a way that goes away by itself */
    bool skip_write;  /* exactly-once: dead-lettered; the script only moves past it */
    rec_outcome_t outcome;
    const char *stage; /* REC_DATA_ERROR: Connect's stage (dlq.h) */
    char *error;       /* REC_DATA_ERROR: why, owned */
    uint64_t seq;      /* matches dead-letter delivery reports to records */
    /* Enrichment (enrich_batch), kept across rounds: a retry neither looks up nor produces
     * the record again. */
    bool enriched;       /* its value carries its reference data (or needs none) */
    bool produced;       /* enrich.output.topic acknowledged it */
    uint64_t output_seq; /* produced, delivery report awaited (0: none) */
} rec_state_t;

/* At-least-once pipelining (apply_pipelined): one batch sent and not yet answered. */
typedef struct flight_s {
    rkb_cmds_t *cmds;
    size_t *map; /* command as encoded → the merged command that carries it */
    size_t map_cap;
    size_t ncmds; /* after merging: the replies to read */
    int64_t max_offset;
    bool active;
} flight_t;

/* Per-partition view of one round. */
typedef struct part_slot_s {
    const char *topic;
    int32_t partition;
    int64_t applied_next; /* next offset after the finished prefix, or -1 */
    int64_t stored_next;  /* exactly-once without the script: the offset Redis holds, or -1 */
    bool blocked;         /* a record of it is not finished: later ones wait (see apply_batch) */
    size_t call_index;    /* exactly-once: its script call in the pipeline */
    bool has_call;
} part_slot_t;

/* Result of one round over the batch. */
typedef enum {
    ROUND_EMPTY,     /* every record finished */
    ROUND_PROGRESS,  /* records remain, none failed transiently: go again now */
    ROUND_TRANSIENT, /* something failed transiently: back off */
    ROUND_FAILED,    /* the task cannot go on */
} round_t;

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

    /* Errors */
    bool tolerate_all;
    bool log_errors, log_messages;
    int64_t retry_timeout_ms; /* -1: forever */
    int64_t retry_delay_max_ms;
    rkb_dlq_t *dlq; /* NULL: no dead-letter topic */
    uint64_t next_seq;

    /* Enrichment (NULL: off) and its output topic (NULL: none) */
    rkb_enrich_t *enrich;
    rkb_output_t *output;
    rkb_record_t **enrich_recs; /* scratch: the records enrich_batch hands over */

    /* Exactly-once */
    bool exactly_once;
    char *offset_ns;
    rkb_eos_call_t *eos_call;
    rkb_cmds_t *pipe;      /* the script calls built from cmds */
    bool script_loaded;    /* on the current connection: the exactly-once or the cache script */
    bool was_connected;    /* a connection was up before: the next one is a reconnect */
    bool rewind;           /* exactly-once: go back to the offsets Redis holds (see rewind) */
    rkb_toppar_t *restore; /* assigned partitions whose start offset is still to be read */
    size_t restore_cnt;

    /* redis.type=WINDOW: the windowing (process/window.h); NULL otherwise */
    rkb_window_t *window;

    /* Redis */
    rkb_redis_conf_t redis_conf;
    rkb_redis_t *redis;
    bool commands_checked; /* module commands (JSON.SET, TS.ADD) known to exist */

    /* Kafka */
    rkb_consumer_t *consumer;
    char group_id[512], client_id[512];
    char **topics;
    size_t topic_cnt;
    rkb_kafka_props_t kafka_props; /* kafka.* settings */

    /* The batch in hand, in consumption order (per partition in offset order). */
    rkb_record_t *recs;
    rec_state_t *states;
    size_t cnt;
    rkb_cmds_t *cmds;
    redisReply **replies;
    size_t replies_cap;
    size_t *cmd_map; /* at-least-once: command → the merged command that carries it */
    size_t cmd_map_cap;
    size_t capacity; /* records recs and states hold: batch.size, twice that pipelined */
    /* At-least-once plain writes are pipelined two batches deep (apply_pipelined). */
    bool pipelined;
    flight_t flights[2];
    unsigned next_flight; /* the flight the next send uses */
    part_slot_t *slots;
    size_t slot_cnt, slot_cap;
    rkb_toppar_t *store;

    int attempt; /* transient failures in a row: > 0 while intake is paused for an outage */
    bool failed;
    char failure[1024];
    rkb_sink_stats_t stats;
};

/* ---- configuration -------------------------------------------------------------------------- */

static const char *const template_keys[] = {
    "redis.keyspace",   "redis.key.template",         "redis.member",
    "redis.score",      "redis.timeseries.timestamp", "redis.increment",
    "redis.hash.field", "redis.cache.version",
};

static int converter_from_config(const rkb_config_t *conf, const char *key, const char *schemas_key,
                                 rkb_converter_t *conv) {
    if (rkb_converter_parse(rkb_config_get(conf, key), &conv->type))
        return -1;
    conv->schemas_enable =
        rkb_config_is_set(conf, schemas_key) ? rkb_config_get_bool(conf, schemas_key) : -1;
    return 0;
}

/* WINDOW always is: its state and the partition's event-time clock must move with the offset. */
static bool is_exactly_once(const rkb_config_t *conf) {
    return !strcmp(rkb_config_get(conf, "redis.delivery"), "exactly-once") ||
           !strcasecmp(rkb_config_get(conf, "redis.type"), "WINDOW");
}

/* cc receives the CACHE rules wc points to (it must live until rkb_writer_new returned). */
static void writer_conf_from_config(const rkb_config_t *conf, rkb_writer_conf_t *wc,
                                    rkb_cache_conf_t *cc) {
    memset(wc, 0, sizeof(*wc));
    memset(cc, 0, sizeof(*cc));
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
    wc->increment = rkb_config_get(conf, "redis.increment");
    wc->hash_field = rkb_config_get(conf, "redis.hash.field");
    wc->value_max_bytes = rkb_config_get_int(conf, "redis.value.max.bytes");
    /* Inside the batch's MULTI, or inside the exactly-once script, a record needs no MULTI of
     * its own to keep its write and its EXPIRE together. */
    wc->in_transaction = rkb_config_get_bool(conf, "redis.multiexec") || is_exactly_once(conf);
    if (wc->type == RKB_TYPE_CACHE) {
        cc->version = rkb_config_get(conf, "redis.cache.version");
        cc->op_field = rkb_config_get(conf, "redis.cache.op.field");
        cc->delete_ops = rkb_config_get(conf, "redis.cache.delete.ops");
        cc->value_field = rkb_config_get(conf, "redis.cache.value.field");
        cc->layout_value = !strcmp(rkb_config_get(conf, "redis.cache.layout"), "value");
        cc->invalidate = !strcmp(rkb_config_get(conf, "redis.cache.mode"), "invalidate");
        cc->tombstone_ttl_seconds = rkb_config_get_int(conf, "redis.cache.tombstone.ttl");
        cc->exactly_once = is_exactly_once(conf);
        wc->cache = cc;
    }
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

    if (is_exactly_once(conf) && rkb_config_get_bool(conf, "redis.multiexec"))
        rkb_errors_add(errs,
                       "%s: redis.multiexec: not used with redis.delivery=exactly-once, where "
                       "each partition's batch is already one atomic script",
                       rkb_config_origin(conf, "redis.multiexec"));

    rkb_enrich_validate(conf, errs);
    if (!strcasecmp(rkb_config_get(conf, "redis.type"), "WINDOW"))
        rkb_window_validate(conf, errs);

    if (errs->cnt == before) {
        /* Whatever the writer still refuses (type/key combinations). */
        rkb_writer_conf_t wc;
        rkb_cache_conf_t cc;
        writer_conf_from_config(conf, &wc, &cc);
        rkb_writer_t *writer = rkb_writer_new(&wc, why, sizeof(why));
        if (!writer)
            rkb_errors_add(errs, "%s: %s", rkb_config_origin(conf, "redis.type"), why);
        rkb_writer_destroy(writer);
    }
    return (int)(errs->cnt - before);
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

static void on_dlq_result(uint64_t seq, bool ok, const char *errstr, void *opaque);
static void poll_into_batch(rkb_sink_task_t *t, int timeout_ms);
static size_t poll_room(const rkb_sink_task_t *t);
static void on_output_result(uint64_t seq, bool ok, const char *errstr, void *opaque);

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
    rkb_cache_conf_t cc;
    writer_conf_from_config(conf, &wc, &cc);
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

    t->tolerate_all = !strcmp(rkb_config_get(conf, "errors.tolerance"), "all");
    t->log_errors = rkb_config_get_bool(conf, "errors.log.enable");
    t->log_messages = rkb_config_get_bool(conf, "errors.log.include.messages");
    t->retry_timeout_ms = rkb_config_get_int(conf, "errors.retry.timeout");
    t->retry_delay_max_ms = rkb_config_get_int(conf, "errors.retry.delay.max.ms");

    t->exactly_once = is_exactly_once(conf);
    const char *ns = rkb_config_get(conf, "redis.offset.namespace");
    t->offset_ns = rkb_strdup(ns && *ns ? ns : name);
    if (t->exactly_once) {
        t->eos_call = rkb_eos_call_new();
        t->pipe = rkb_cmds_new();
    }
    if (t->type == RKB_TYPE_WINDOW &&
        !(t->window = rkb_window_new(conf, task_id, t->component, t->offset_ns, errstr,
                                     errstr_size)))
        goto fail;

    if (rkb_connect_redis_conf(conf, task_id, &t->redis_conf, errstr, errstr_size))
        goto fail;
    t->redis = rkb_redis_new(&t->redis_conf, t->component);

    split_topics(t, rkb_config_get(conf, "topics"));
    rkb_connect_kafka_props(conf, &t->kafka_props);

    const char *dlq_topic = rkb_config_get(conf, "errors.deadletterqueue.topic.name");
    if (dlq_topic && *dlq_topic && !t->tolerate_all)
        rkb_log_warn(t->component, "errors.deadletterqueue.topic.name is set but "
                                   "errors.tolerance=none: a bad record stops the task instead");
    if (dlq_topic && *dlq_topic && t->tolerate_all) {
        rkb_dlq_conf_t dc = {
            .component = t->component,
            .topic = dlq_topic,
            .replication_factor =
                (int)rkb_config_get_int(conf, "errors.deadletterqueue.topic.replication.factor"),
            .context_headers =
                rkb_config_get_bool(conf, "errors.deadletterqueue.context.headers.enable"),
            .conf = conf,
            .task_id = task_id,
            .on_result = on_dlq_result,
            .opaque = t,
        };
        t->dlq = rkb_dlq_new(&dc, errstr, errstr_size);
        if (!t->dlq)
            goto fail;
    }

    if (*rkb_config_get(conf, "enrich.key")) {
        rkb_enrich_conf_t ec;
        rkb_enrich_conf_from_config(conf, &ec);
        if (!(t->enrich = rkb_enrich_new(&ec, errstr, errstr_size)))
            goto fail;
        t->enrich_recs = rkb_calloc(t->batch_size, sizeof(*t->enrich_recs));
        const char *output_topic = rkb_config_get(conf, "enrich.output.topic");
        rkb_output_conf_t oc = {.component = t->component, .topic = output_topic,
                                .conf = conf, .task_id = task_id,
                                .on_result = on_output_result, .opaque = t};
        if (*output_topic && !(t->output = rkb_output_new(&oc, errstr, errstr_size)))
            goto fail;
    }

    /* Pipelining needs each batch's replies to stand alone: not with MULTI/EXEC or WAIT, not
     * with the Redis lookups of enrichment on the same connection, not with the types whose
     * writes are scripts with their own loading and accounting. */
    t->pipelined = !t->exactly_once && !t->multiexec && t->wait_replicas <= 0 && !t->enrich &&
                   t->type != RKB_TYPE_CACHE && t->type != RKB_TYPE_WINDOW;
    t->capacity = t->pipelined ? 2 * t->batch_size : t->batch_size;
    t->recs = rkb_calloc(t->capacity, sizeof(*t->recs));
    for (size_t i = 0; i < t->capacity; i++)
        rkb_record_init(&t->recs[i]);
    t->states = rkb_calloc(t->capacity, sizeof(*t->states));
    t->store = rkb_calloc(t->capacity, sizeof(*t->store));
    t->cmds = rkb_cmds_new();
    for (size_t f = 0; t->pipelined && f < RKB_ARRAY_SIZE(t->flights); f++)
        t->flights[f].cmds = rkb_cmds_new();
    return t;

fail:
    rkb_sink_task_destroy(t);
    return NULL;
}

const rkb_sink_stats_t *rkb_sink_task_stats(const rkb_sink_task_t *task) {
    return &task->stats;
}

/* ---- Redis connection ------------------------------------------------------------------------ */

/* Module commands are missing from a plain Redis: say so once, clearly, instead of failing
 * on the first record with "unknown command". The writer's command, and the enrichment
 * lookup's. */
static int check_commands(rkb_sink_task_t *t) {
    char type_setting[64];
    snprintf(type_setting, sizeof(type_setting), "redis.type=%s", rkb_redis_type_name(t->type));
    const char *const needed[][3] = { /* command, the setting that needs it, its module */
        {t->type == RKB_TYPE_JSON         ? "JSON.SET"
         : t->type == RKB_TYPE_TIMESERIES ? "TS.ADD"
                                          : NULL,
         type_setting, t->type == RKB_TYPE_JSON ? "RedisJSON" : "RedisTimeSeries"},
        {t->enrich ? rkb_enrich_module_command(t->enrich) : NULL, "enrich.lookup=JSON",
         "RedisJSON"},
    };
    for (size_t k = 0; k < RKB_ARRAY_SIZE(needed) && !t->commands_checked; k++) {
        const char *command = needed[k][0];
        if (!command)
            continue;
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
                     "%s needs the %s module: this Redis does not know %s", needed[k][1],
                     needed[k][2], command);
            return -1;
        }
    }
    t->commands_checked = true;
    return 0;
}

/* What a Redis setup step's result means for the task: 0 done, 1 transient (an I/O failure:
 * retry later), -1 the task failed (context prefixes the reason in t->failure). */
static int setup_result(rkb_sink_task_t *t, int err, const char *context, const char *why) {
    if (err == RKB_REDIS_OK)
        return 0;
    if (err == RKB_REDIS_ERR_IO) {
        rkb_log_warn(t->component, "%s", why);
        return 1;
    }
    t->failed = true;
    snprintf(t->failure, sizeof(t->failure), "%s%s", context, why);
    return -1;
}

/* Connects if needed, and loads the exactly-once script where it is missing. Returns 0, 1
 * (transient: retry later) or -1 (task failed). */
static int ensure_connected(rkb_sink_task_t *t) {
    char why[512];
    if (!rkb_redis_is_connected(t->redis)) {
        t->script_loaded = false;
        int rc = setup_result(t, rkb_redis_connect(t->redis, why, sizeof(why)), "", why);
        if (!rc) {
            t->rewind = t->rewind || (t->was_connected && t->exactly_once);
            t->was_connected = true;
            rc = check_commands(t);
        }
        if (!rc && t->multiexec && rkb_redis_is_cluster(t->redis)) {
            t->failed = true;
            snprintf(t->failure, sizeof(t->failure), "%s",
                     "redis.multiexec=true: one MULTI/EXEC over a batch cannot span the slots of "
                     "a Redis Cluster; set redis.multiexec=false (each record is still written "
                     "whole)");
            rc = -1;
        }
        if (rc)
            return rc;
    }
    if (t->exactly_once && !t->script_loaded) {
        int rc = setup_result(t, rkb_eos_load(t->redis, why, sizeof(why)),
                              "loading the exactly-once script: ", why);
        if (rc)
            return rc;
        t->script_loaded = true;
    }
    /* At-least-once CACHE calls the compare-and-set script by its SHA. */
    if (!t->exactly_once && t->type == RKB_TYPE_CACHE && !t->script_loaded) {
        int rc = setup_result(t, rkb_cache_load(t->redis, why, sizeof(why)),
                              "loading the cache script: ", why);
        if (rc)
            return rc;
        t->script_loaded = true;
    }
    return 0;
}

/* ---- the batch ------------------------------------------------------------------------------ */

static void fail_task(rkb_sink_task_t *t, const rkb_record_t *rec, const char *why) {
    if (t->failed)
        return;
    t->failed = true;
    if (rec)
        snprintf(t->failure, sizeof(t->failure),
                 "cannot write record %s[%d]@%lld: %s (errors.tolerance=none: nothing is "
                 "committed past it)",
                 rec->topic, rec->partition, (long long)rec->offset, why);
    else
        snprintf(t->failure, sizeof(t->failure), "%s", why);
}

/* Bytes for a log line: printable ASCII as is, the rest as \xNN, cut at 256 bytes. */
static void describe_bytes(const char *data, size_t len, rkb_buf_t *out) {
    if (!data) {
        rkb_buf_appends(out, "null");
        return;
    }
    size_t shown = len > 256 ? 256 : len;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            rkb_buf_append(out, &data[i], 1);
        else
            rkb_buf_appendf(out, "\\x%02x", c);
    }
    if (shown < len)
        rkb_buf_appendf(out, "... (%zu bytes)", len);
}

/* Marks record i as impossible to write, and logs it when errors.log.enable says so. */
static void set_data_error(rkb_sink_task_t *t, size_t i, const char *stage, const char *why) {
    rec_state_t *st = &t->states[i];
    const rkb_record_t *rec = &t->recs[i];
    st->outcome = REC_DATA_ERROR;
    st->stage = stage;
    free(st->error);
    st->error = rkb_strdup(why);
    if (!t->log_errors)
        return;
    rkb_buf_t msg;
    rkb_buf_init(&msg);
    rkb_buf_appendf(&msg, "error writing record %s[%d]@%lld at stage %s: %s", rec->topic,
                    rec->partition, (long long)rec->offset, stage, why);
    if (t->log_messages) {
        rkb_buf_appends(&msg, "; key=");
        describe_bytes(rec->key, rec->key_len, &msg);
        rkb_buf_appends(&msg, " value=");
        describe_bytes(rec->value, rec->value_len, &msg);
    }
    rkb_log_warn(t->component, "%s", msg.data);
    rkb_buf_free(&msg);
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
    memset(slot, 0, sizeof(*slot));
    slot->topic = rec->topic;
    slot->partition = rec->partition;
    slot->applied_next = -1;
    return slot;
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
                memset(&t->states[i], 0, sizeof(t->states[i]));
            }
            out++;
        } else {
            rkb_consumer_release(&t->recs[i]);
            free(t->states[i].error);
            memset(&t->states[i], 0, sizeof(t->states[i]));
        }
    }
    t->cnt = out;
}

/* Applies the converters to record i (again: a no-op once done). A failure makes it a data
 * error at the converter's stage. Returns true when converted. */
static bool convert_record(rkb_sink_task_t *t, size_t i) {
    char why[512];
    if (rkb_convert_record(&t->key_conv, &t->value_conv, &t->recs[i], why, sizeof(why)) == 0)
        return true;
    set_data_error(t, i,
                   !strncmp(why, "key", 3) ? RKB_STAGE_KEY_CONVERTER : RKB_STAGE_VALUE_CONVERTER,
                   why);
    return false;
}

/* Encodes every record that is due into t->cmds. At-least-once: a record that cannot be
 * written does not hold back the later records of its partition (it writes nothing, so the
 * order of writes is kept); exactly-once: it does, because the script would move the stored
 * offset past it before it was dead-lettered. */
static void encode_batch(rkb_sink_task_t *t, rkb_cmds_t *cmds) {
    char why[512];
    rkb_cmds_reset(cmds);
    t->slot_cnt = 0;
    if (t->multiexec) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "MULTI");
        rkb_cmds_end(cmds);
    }
    for (size_t i = 0; i < t->cnt; i++) {
        rkb_record_t *rec = &t->recs[i];
        rec_state_t *st = &t->states[i];
        if (st->inflight)
            continue; /* in an earlier pipeline, not answered yet */
        part_slot_t *slot = slot_for(t, rec);
        st->sent = false;
        st->transient = false;
        st->cmd_first = rkb_cmds_count(cmds);
        st->cmd_cnt = 0;
        if (st->outcome != REC_PENDING) {
            if (t->exactly_once && st->outcome != REC_DONE)
                slot->blocked = true;
            continue;
        }
        if (slot->blocked)
            continue;
        if (!st->skip_write) {
            int n = -1;
            if (convert_record(t, i)) {
                n = rkb_writer_encode(t->writer, rec, cmds, why, sizeof(why));
                /* WINDOW: the writer only checked the size; the window encodes the record. */
                if (n == 0 && t->window)
                    n = rkb_window_encode(t->window, rec, cmds, why, sizeof(why));
                if (n < 0)
                    set_data_error(t, i, RKB_STAGE_TASK_PUT, why);
            }
            if (n < 0) {
                if (t->exactly_once)
                    slot->blocked = true;
                continue;
            }
            st->cmd_cnt = n;
        } else if (t->window && rkb_window_is_late(st->error)) {
            /* A late window record the dead-letter topic has: the pass that moves the offset
             * past it also counts it, so a retried dead-letter produce counts it once. */
            st->cmd_cnt = rkb_window_encode_late(t->window, rec, cmds);
        }
        st->sent = true;
    }
    if (t->multiexec) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EXEC");
        rkb_cmds_end(cmds);
    }
}

/*
 * Redis Cluster runs a script only when all of its keys are in one slot, so exactly-once there
 * needs every key a record writes in the slot of its partition's offset key, whose hash tag is
 * {TOPIC:PARTITION} (SEMANTICS.md E-8). A key elsewhere is a setting to change, not a record to
 * skip: the task stops, naming the key and what to put in the key template, before anything of
 * the batch is sent.
 */
static bool keys_in_offset_slot(rkb_sink_task_t *t, size_t i, const char *offset_key,
                                unsigned want) {
    const rec_state_t *st = &t->states[i];
    for (size_t j = st->cmd_first; j < st->cmd_first + (size_t)st->cmd_cnt; j++) {
        size_t len;
        const char *name = rkb_cmds_argv(t->cmds, j, 0, NULL);
        if (rkb_cmds_argc(t->cmds, j) < 2 || !strcasecmp(name, "PUBLISH"))
            continue;
        const char *key = rkb_cmds_argv(t->cmds, j, 1, &len);
        if (!strcasecmp(name, "RKB.WINDOW")) {
            /* Its state key is the partition's; the window keys start with the prefix. */
            const char *prefix = rkb_window_spec_prefix(rkb_cmds_argv(t->cmds, j, 2, NULL));
            char probe[1100];
            snprintf(probe, sizeof(probe), "%sgroup", prefix);
            if (rkb_redis_key_slot(probe, strlen(probe)) == want)
                continue;
            char why[1000];
            snprintf(why, sizeof(why),
                     "redis.type=WINDOW on Redis Cluster: the window keys of %s[%d] ('%.150s...') "
                     "are not in the slot of the partition's offset key '%.150s', so a window "
                     "cannot change in one step with it; set window.key.prefix with the hash tag "
                     "{${topic}:${partition}}, e.g. window.key.prefix=win:{${topic}:${partition}}: "
                     "(SEMANTICS.md E-8)",
                     t->recs[i].topic, t->recs[i].partition, prefix, offset_key);
            fail_task(t, NULL, why);
            return false;
        }
        if (rkb_redis_key_slot(key, len) == want)
            continue;
        const rkb_record_t *rec = &t->recs[i];
        char why[1024];
        snprintf(why, sizeof(why),
                 "redis.delivery=exactly-once on Redis Cluster: record %s[%d]@%lld writes key "
                 "'%.200s' (slot %u), not in the slot of its partition's offset key '%.200s' "
                 "(slot %u), so the two cannot change in one step; put the hash tag "
                 "{${topic}:${partition}} in redis.keyspace or redis.key.template (SEMANTICS.md "
                 "E-8)",
                 rec->topic, rec->partition, (long long)rec->offset, key,
                 rkb_redis_key_slot(key, len), offset_key, want);
        fail_task(t, NULL, why);
        return false;
    }
    return true;
}

/* Exactly-once: one script call per partition over its sent records, into t->pipe. Returns
 * false when the task failed (a key outside its partition's slot on a cluster). */
static bool build_script_calls(rkb_sink_task_t *t) {
    bool cluster = rkb_redis_is_cluster(t->redis);
    char offset_key[1024];
    unsigned offset_slot = 0;
    rkb_cmds_reset(t->pipe);
    for (size_t s = 0; s < t->slot_cnt; s++) {
        part_slot_t *slot = &t->slots[s];
        slot->has_call = false;
        for (size_t i = 0; i < t->cnt; i++) {
            const rkb_record_t *rec = &t->recs[i];
            if (!t->states[i].sent || rec->partition != slot->partition ||
                strcmp(rec->topic, slot->topic))
                continue;
            if (!slot->has_call) {
                rkb_eos_call_begin(t->eos_call,
                                   rkb_eos_offset_key(t->offset_ns, slot->topic, slot->partition,
                                                      offset_key, sizeof(offset_key)));
                slot->has_call = true;
                offset_slot = rkb_redis_key_slot(offset_key, strlen(offset_key));
            }
            if (cluster && !keys_in_offset_slot(t, i, offset_key, offset_slot))
                return false;
            rkb_eos_call_add(t->eos_call, rec->offset, t->cmds, t->states[i].cmd_first,
                             t->states[i].cmd_cnt);
        }
        if (slot->has_call) {
            slot->call_index = rkb_cmds_count(t->pipe);
            rkb_eos_call_end(t->eos_call, t->pipe);
        }
    }
    return true;
}

/* At-least-once: the reply that tells how command j went: its own reply, or, inside the
 * batch's MULTI, its element of the EXEC reply (a command refused while queueing has its error
 * as the QUEUED reply; an aborted EXEC fails every command with the EXEC error). */
static const redisReply *command_result(const rkb_sink_task_t *t, const size_t *map, size_t j,
                                        size_t exec_index) {
    if (map)
        return t->replies[map[j]];
    const redisReply *reply = t->replies[j];
    if (!t->multiexec || reply->type == REDIS_REPLY_ERROR)
        return reply;
    const redisReply *exec = t->replies[exec_index];
    if (exec->type == REDIS_REPLY_ARRAY && j - 1 < exec->elements)
        return exec->element[j - 1];
    return exec; /* EXECABORT or nil */
}

/* At-least-once outcomes from the replies of each record's commands: of the records sent in
 * the last pipeline (flight < 0), or of those the given flight carried. */
static void settle_commands(rkb_sink_task_t *t, size_t exec_index, int flight) {
    const size_t *map = flight < 0 ? t->cmd_map : t->flights[flight].map;
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (flight < 0 ? !st->sent : !st->inflight || st->flight != flight)
            continue;
        st->inflight = false;
        st->outcome = REC_DONE;
        for (int k = 0; k < st->cmd_cnt; k++) {
            const redisReply *reply =
                command_result(t, map, st->cmd_first + (size_t)k, exec_index);
            const char *err = rkb_redis_reply_error(reply);
            if (!err) {
                if (t->type == RKB_TYPE_CACHE && rkb_cache_reply_is_stale(reply))
                    atomic_fetch_add(&t->stats.records_stale, 1);
                continue;
            }
            if (rkb_eos_error_is_noscript(err))
                t->script_loaded = false; /* Redis restarted or flushed its scripts: reload */
            if (rkb_eos_error_is_noscript(err) || rkb_redis_error_is_transient(err)) {
                st->outcome = REC_PENDING;
                st->transient = true;
                rkb_log_warn(t->component, "%s[%d]@%lld: %s; retrying", t->recs[i].topic,
                             t->recs[i].partition, (long long)t->recs[i].offset, err);
            } else {
                set_data_error(t, i, RKB_STAGE_TASK_PUT, err);
            }
            break;
        }
    }
}

/* Exactly-once outcomes from each partition's script reply. */
static void settle_scripts(rkb_sink_task_t *t) {
    char why[512];
    for (size_t s = 0; s < t->slot_cnt; s++) {
        part_slot_t *slot = &t->slots[s];
        if (!slot->has_call)
            continue;
        rkb_eos_result_t result;
        bool call_ok =
            rkb_eos_parse_reply(t->replies[slot->call_index], &result, why, sizeof(why)) == 0;
        if (call_ok)
            atomic_fetch_add(&t->stats.records_stale,
                             (uint64_t)rkb_eos_result_counter(&result, "stale"));
        if (!call_ok) {
            if (rkb_eos_error_is_noscript(why))
                t->script_loaded = false; /* Redis restarted or flushed its scripts */
            else if (!rkb_redis_error_is_transient(why)) {
                fail_task(t, NULL, why);
                continue;
            }
            rkb_log_warn(t->component, "%s[%d]: %s; retrying", slot->topic, slot->partition, why);
        }
        if (call_ok && t->window)
            rkb_window_account(t->window, slot->topic, slot->partition, &result);
        for (size_t i = 0; i < t->cnt; i++) {
            const rkb_record_t *rec = &t->recs[i];
            rec_state_t *st = &t->states[i];
            if (!st->sent || rec->partition != slot->partition || strcmp(rec->topic, slot->topic))
                continue;
            if (!call_ok) {
                st->transient = true; /* stays REC_PENDING */
            } else if (result.bad_offset < 0 || rec->offset < result.bad_offset) {
                st->outcome = REC_DONE; /* applied now, or already (a replay) */
            } else if (rec->offset == result.bad_offset) {
                if (rkb_redis_error_is_transient(result.bad_reason)) {
                    st->transient = true; /* e.g. OOM while it ran: the script stopped there */
                    rkb_log_warn(t->component, "%s[%d]@%lld: %s; retrying", rec->topic,
                                 rec->partition, (long long)rec->offset, result.bad_reason);
                } else {
                    set_data_error(t, i, RKB_STAGE_TASK_PUT, result.bad_reason);
                }
            } /* after the stopping record: not run, stays REC_PENDING */
        }
    }
}

static rec_state_t *state_by_seq(rkb_sink_task_t *t, uint64_t seq) {
    for (size_t i = 0; i < t->cnt; i++)
        if (t->states[i].outcome == REC_DLQ_SENT && t->states[i].seq == seq)
            return &t->states[i];
    return NULL; /* dropped meanwhile (revoked partition) */
}

/* The dead-letter topic's delivery report for one record. */
static void on_dlq_result(uint64_t seq, bool ok, const char *errstr, void *opaque) {
    rkb_sink_task_t *t = opaque;
    rec_state_t *st = state_by_seq(t, seq);
    if (!st)
        return;
    if (!ok) {
        st->outcome = REC_DATA_ERROR; /* produce it again */
        st->transient = true;
        return;
    }
    atomic_fetch_add(&t->stats.records_dead_lettered, 1);
    const rkb_record_t *rec = &t->recs[st - t->states];
    rkb_failpoint("crash_after_dlq_produce", rec->offset);
    if (t->exactly_once) {
        /* The script still has to move the partition's stored offset past it. */
        st->outcome = REC_PENDING;
        st->skip_write = true;
    } else {
        st->outcome = REC_DONE;
    }
}

/* Records that cannot be written: fail the task (errors.tolerance=none), or dead-letter them
 * and wait for the delivery reports, or skip them. Returns true if something must be retried. */
static bool handle_data_errors(rkb_sink_task_t *t) {
    bool sent = false, retry = false;
    char why[512];
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (st->outcome == REC_DLQ_SENT) {
            sent = true; /* still waiting for an earlier report */
            continue;
        }
        if (st->outcome != REC_DATA_ERROR)
            continue;
        atomic_fetch_add(&t->stats.records_failed, 1);
        if (!t->tolerate_all) {
            fail_task(t, &t->recs[i], st->error);
            return false;
        }
        if (!t->dlq) {
            st->outcome = t->exactly_once ? REC_PENDING : REC_DONE;
            st->skip_write = t->exactly_once;
            atomic_fetch_add(&t->stats.records_skipped, 1);
            continue;
        }
        st->seq = ++t->next_seq;
        const rkb_header_t *extra = NULL;
        size_t extra_cnt = 0;
        if (t->window && rkb_window_is_late(st->error))
            extra_cnt = rkb_window_late_headers(&extra); /* x-late-reason=window-closed */
        if (rkb_dlq_send_with_headers(t->dlq, &t->recs[i], extra, extra_cnt, st->stage, st->error,
                                      st->seq, why, sizeof(why))) {
            rkb_log_warn(t->component, "dead-letter topic: %s; retrying", why);
            st->transient = true;
            retry = true;
            continue;
        }
        st->outcome = REC_DLQ_SENT;
        sent = true;
    }
    /* An offset is stored only after the dead-letter topic has the record: wait for the
     * reports (they arrive through on_dlq_result). */
    if (sent && rkb_dlq_flush(t->dlq, 30000) > 0)
        retry = true;
    for (size_t i = 0; i < t->cnt; i++)
        if (t->states[i].outcome == REC_DATA_ERROR || t->states[i].outcome == REC_DLQ_SENT)
            retry = true;
    return retry;
}

/* At-least-once: after the first record of a partition that must be written again, the later
 * ones must be written again too, after it, so that Redis sees them in offset order. */
static void keep_partition_order(rkb_sink_task_t *t) {
    for (size_t s = 0; s < t->slot_cnt; s++)
        t->slots[s].blocked = false;
    for (size_t i = 0; i < t->cnt; i++) {
        part_slot_t *slot = slot_for(t, &t->recs[i]);
        rec_state_t *st = &t->states[i];
        if (st->outcome == REC_PENDING)
            slot->blocked = true;
        else if (st->outcome == REC_DONE && slot->blocked && st->sent && st->cmd_cnt)
            st->outcome = REC_PENDING;
    }
}

/* Stores the next offset of each partition's finished prefix and lets those records go. */
static void store_finished(rkb_sink_task_t *t) {
    for (size_t s = 0; s < t->slot_cnt; s++) {
        t->slots[s].blocked = false;
        t->slots[s].applied_next = -1;
    }
    bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
    for (size_t i = 0; i < t->cnt; i++) {
        part_slot_t *slot = slot_for(t, &t->recs[i]);
        const rec_state_t *st = &t->states[i];
        if (!slot->blocked && st->outcome == REC_DONE) {
            slot->applied_next = t->recs[i].offset + 1;
            if (st->cmd_cnt && !st->skip_write)
                atomic_fetch_add(&t->stats.records_written, 1);
        } else {
            slot->blocked = true;
            keep[i] = true;
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
}

/* ---- enrichment (process/enrich.h) and its output topic (process/output.h) ---------------- */

static void on_enrich_error(rkb_record_t *rec, const char *why, void *opaque) {
    rkb_sink_task_t *t = opaque;
    set_data_error(t, (size_t)(rec - t->recs), RKB_STAGE_TRANSFORMATION, why);
}

/* The output topic's delivery report for one record. */
static void on_output_result(uint64_t seq, bool ok, const char *errstr, void *opaque) {
    rkb_sink_task_t *t = opaque;
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (st->output_seq != seq)
            continue;
        st->output_seq = 0; /* failed: produced again next round */
        st->produced = ok;
        if (ok) {
            atomic_fetch_add(&t->stats.records_produced, 1);
            rkb_failpoint("crash_after_output_produce", t->recs[i].offset);
        }
        return;
    } /* not found: dropped meanwhile (revoked partition) */
}

/*
 * The stage before encoding, for the records due to be written that are not enriched yet:
 * enrich them (lookups, merge, miss policy; records that cannot be enriched become data errors
 * at stage TRANSFORMATION), then, with enrich.output.topic, produce every enriched record not
 * produced yet and wait for the delivery reports. Returns ROUND_PROGRESS when every record due
 * is ready to be written, or ROUND_TRANSIENT (lookups or a delivery failed): then nothing is
 * written this round, so no record goes to Redis before an earlier one of its partition, and
 * the round is retried through the sink's usual pause and backoff.
 * Ordering that carries the guarantee: a record reaches Redis (which, in exactly-once mode,
 * stores its offset) only after the output topic acknowledged it, so a crash can duplicate
 * output, never lose it.
 */
static round_t enrich_batch(rkb_sink_task_t *t) {
    if (!t->enrich)
        return ROUND_PROGRESS;
    size_t n = 0;
    for (size_t i = 0; i < t->cnt; i++) {
        const rec_state_t *st = &t->states[i];
        if (st->outcome == REC_PENDING && !st->skip_write && !st->enriched && convert_record(t, i))
            t->enrich_recs[n++] = &t->recs[i];
    }
    char why[512];
    if (n && rkb_enrich_batch(t->enrich, t->redis, t->enrich_recs, n, rkb_now_ms(),
                              on_enrich_error, t, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(t->component, "%s", why);
        return ROUND_TRANSIENT; /* no record changed */
    }
    for (size_t k = 0; k < n; k++)
        t->states[t->enrich_recs[k] - t->recs].enriched = true;
    const rkb_enrich_stats_t *es = rkb_enrich_stats(t->enrich);
    atomic_store(&t->stats.enrich_lookups, es->lookups);
    atomic_store(&t->stats.enrich_cache_hits, es->cache_hits);
    atomic_store(&t->stats.enrich_misses, es->misses);
    if (!t->output)
        return ROUND_PROGRESS;

    bool ready = true, waiting = false;
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (st->outcome != REC_PENDING || st->skip_write || st->produced)
            continue;
        if (!st->output_seq) {
            st->output_seq = ++t->next_seq;
            if (rkb_output_send(t->output, &t->recs[i], st->output_seq, why, sizeof(why))) {
                rkb_log_warn(t->component, "output topic: %s; retrying", why);
                st->output_seq = 0;
                ready = false;
                continue;
            }
        }
        waiting = true;
    }
    if (waiting)
        rkb_output_flush(t->output, 30000); /* the reports arrive through on_output_result */
    for (size_t i = 0; i < t->cnt && ready; i++)
        ready = t->states[i].outcome != REC_PENDING || t->states[i].skip_write ||
                t->states[i].produced;
    return ready ? ROUND_PROGRESS : ROUND_TRANSIENT;
}

static size_t ensure_replies(rkb_sink_task_t *t, size_t n) {
    if (n > t->replies_cap) {
        t->replies_cap = n * 2;
        t->replies = rkb_realloc(t->replies, t->replies_cap * sizeof(*t->replies));
    }
    return n;
}

/* WINDOW: produces the results the scripts left pending in Redis (process/window.h). Only after
 * the scripts: a result goes to Kafka once Redis holds it together with its offset, and leaves
 * Redis only after Kafka acknowledged it (at-least-once: a crash in between emits it again).
 * ROUND_EMPTY when nothing waits (or everything went), ROUND_TRANSIENT to try again later. */
static round_t emit_window_results(rkb_sink_task_t *t) {
    if (!t->window || !rkb_window_emit_due(t->window))
        return ROUND_EMPTY;
    int rc = ensure_connected(t);
    if (rc)
        return rc < 0 ? ROUND_FAILED : ROUND_TRANSIENT;
    char why[512];
    rc = rkb_window_emit(t->window, t->redis, why, sizeof(why));
    if (rc < 0)
        fail_task(t, NULL, why);
    return rc < 0 ? ROUND_FAILED : rc ? ROUND_TRANSIENT : ROUND_EMPTY;
}

/*
 * One round over the batch in hand: write what is due (one pipeline), settle each record,
 * dead-letter what cannot be written, store the offsets of each partition's finished prefix.
 * Ordering that carries the guarantee: offsets are stored only after Redis replied (and, for a
 * dead-lettered record, after the dead-letter topic acknowledged it) — a crash before the store
 * replays the batch; in exactly-once mode the script's stored offset makes that replay a no-op.
 */
/* Merges the runs of plain SET and DEL in cmds (rkb_cmds_coalesce), *map grown to fit; returns
 * the new count. */
static size_t coalesce(const rkb_sink_task_t *t, rkb_cmds_t *cmds, size_t **map,
                       size_t *map_cap) {
    size_t n = rkb_cmds_count(cmds);
    if (n > *map_cap) {
        *map_cap = n * 2;
        *map = rkb_realloc(*map, *map_cap * sizeof(**map));
    }
    /* On a Redis Cluster the keys of one MSET or DEL must share a slot: runs break where the
     * slot changes (keys tagged per partition still merge). */
    return rkb_cmds_coalesce(cmds, COALESCE_MAX_KEYS, rkb_redis_is_cluster(t->redis), *map);
}

/* The highest offset among the records encoded in this round, -1 when none was. */
static int64_t sent_max_offset(const rkb_sink_task_t *t) {
    int64_t max_offset = -1;
    for (size_t i = 0; i < t->cnt; i++)
        if (t->states[i].sent && t->recs[i].offset > max_offset)
            max_offset = t->recs[i].offset;
    return max_offset;
}

static void mark_sent_transient(rkb_sink_task_t *t) {
    for (size_t i = 0; i < t->cnt; i++)
        if (t->states[i].sent)
            t->states[i].transient = true;
}

/* The crash_mid_batch failpoint, once armed: the first half of pipe's commands reach Redis,
 * then the process dies. */
static void crash_half_sent(rkb_sink_task_t *t, rkb_cmds_t *pipe, int64_t max_offset) {
    char why[512];
    rkb_cmds_truncate(pipe, (rkb_cmds_count(pipe) + 1) / 2);
    size_t half = ensure_replies(t, rkb_cmds_count(pipe));
    if (rkb_redis_pipeline(t->redis, pipe, t->replies, why, sizeof(why)) == RKB_REDIS_OK)
        rkb_redis_replies_free(t->replies, half);
    rkb_failpoint("crash_mid_batch", max_offset);
}

/* Sends the encoded batch (exactly-once: as one script call per partition) and settles each
 * record from the replies. ROUND_TRANSIENT when the connection failed (the records stay
 * REC_PENDING), else ROUND_PROGRESS. */
static round_t send_and_settle(rkb_sink_task_t *t) {
    size_t exec_index = rkb_cmds_count(t->cmds) - 1;
    rkb_cmds_t *pipe = t->cmds;
    if (t->exactly_once) {
        if (!build_script_calls(t))
            return ROUND_FAILED;
        pipe = t->pipe;
    } else if (!t->multiexec) {
        /* Runs of plain SETs become one MSET (and of DELs one DEL): Redis parses and answers
         * one command per run instead of one per record. */
        coalesce(t, t->cmds, &t->cmd_map, &t->cmd_map_cap);
    }
    size_t wait_index = 0;
    if (t->wait_replicas > 0) {
        rkb_cmds_begin(pipe);
        rkb_cmds_args(pipe, "WAIT");
        rkb_cmds_arg_int(pipe, t->wait_replicas);
        rkb_cmds_arg_int(pipe, t->wait_timeout_ms);
        wait_index = rkb_cmds_end(pipe);
    }

    int64_t max_offset = sent_max_offset(t);
    if (max_offset >= 0) {
        char why[512];
        size_t ncmds = ensure_replies(t, rkb_cmds_count(pipe));
        if (rkb_failpoint_armed("crash_mid_batch", max_offset))
            crash_half_sent(t, pipe, max_offset);
        if (rkb_redis_pipeline(t->redis, pipe, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
            rkb_log_warn(t->component, "%s", why);
            mark_sent_transient(t);
            return ROUND_TRANSIENT; /* the records stay REC_PENDING */
        }
        atomic_fetch_add(&t->stats.batches, 1);
        rkb_task_metrics_batch(rkb_task_metrics_current(), t->cnt);
        rkb_failpoint("crash_after_redis_apply", max_offset);

        if (t->exactly_once)
            settle_scripts(t);
        else
            settle_commands(t, exec_index, -1);

        if (t->wait_replicas > 0) {
            const redisReply *wait = t->replies[wait_index];
            if (wait->type != REDIS_REPLY_INTEGER || wait->integer < t->wait_replicas) {
                rkb_log_warn(t->component, "WAIT: %lld of %lld replicas acknowledged; retrying",
                             wait->type == REDIS_REPLY_INTEGER ? wait->integer : 0LL,
                             (long long)t->wait_replicas);
                for (size_t i = 0; i < t->cnt; i++) {
                    if (t->states[i].sent && t->states[i].outcome == REC_DONE) {
                        t->states[i].outcome = REC_PENDING;
                        t->states[i].transient = true;
                    }
                }
            }
        }
        rkb_redis_replies_free(t->replies, ncmds);
    }

    return ROUND_PROGRESS;
}

/* ---- exactly-once without the script -------------------------------------------------------
 *
 * A STRING batch whose every command is a SET or a DEL cannot fail half-way for a reason of its
 * own data, so it needs none of the script's checks: the same step is made with Redis's own
 * optimistic transaction, which costs Redis a fraction of the script (no Lua values per record,
 * and runs of SET go as one MSET):
 *
 *     WATCH offset_key...   MGET offset_key...                      (one round trip)
 *     MULTI  the writes of the records at or above each stored offset
 *            MSET offset_key next_offset ...   EXEC                 (one round trip)
 *
 * If another writer (a zombie owner of a partition) changed an offset key in between, EXEC does
 * nothing and the step starts again from the offsets it left. Redis Cluster would need the keys
 * of one transaction in one slot: this path is for a single Redis.
 */
#define EOS_PLAIN_ATTEMPTS 5

static bool plain_writes_only(const rkb_sink_task_t *t) {
    if (t->type != RKB_TYPE_STRING || t->window || t->wait_replicas > 0)
        return false;
    size_t n = rkb_cmds_count(t->cmds);
    for (size_t j = 0; j < n; j++) {
        const char *name = rkb_cmds_argv(t->cmds, j, 0, NULL);
        if (strcasecmp(name, "SET") && strcasecmp(name, "DEL"))
            return false;
    }
    return true;
}

/* The first round trip: watches the offset keys of the batch's partitions and reads them into
 * slot->stored_next (-1: none). ROUND_PROGRESS, ROUND_TRANSIENT or ROUND_FAILED (a key holds
 * something else than an offset). */
static round_t eos_plain_read(rkb_sink_task_t *t) {
    char why[512], key[1024];
    rkb_cmds_reset(t->pipe);
    for (int cmd = 0; cmd < 2; cmd++) {
        rkb_cmds_begin(t->pipe);
        rkb_cmds_args(t->pipe, cmd ? "MGET" : "WATCH");
        for (size_t s = 0; s < t->slot_cnt; s++)
            rkb_cmds_args(t->pipe, rkb_eos_offset_key(t->offset_ns, t->slots[s].topic,
                                                      t->slots[s].partition, key, sizeof(key)));
        rkb_cmds_end(t->pipe);
    }
    ensure_replies(t, 2);
    if (rkb_redis_pipeline(t->redis, t->pipe, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(t->component, "%s", why);
        return ROUND_TRANSIENT;
    }
    const redisReply *got = t->replies[1];
    round_t round = ROUND_PROGRESS;
    if (got->type != REDIS_REPLY_ARRAY || got->elements != t->slot_cnt) {
        rkb_log_warn(t->component, "reading the offsets: %s",
                     rkb_redis_reply_error(got) ? rkb_redis_reply_error(got) : "unexpected reply");
        round = ROUND_TRANSIENT;
    }
    for (size_t s = 0; round == ROUND_PROGRESS && s < t->slot_cnt; s++) {
        part_slot_t *slot = &t->slots[s];
        const char *name =
            rkb_eos_offset_key(t->offset_ns, slot->topic, slot->partition, key, sizeof(key));
        if (rkb_eos_parse_offset(got->element[s], name, &slot->stored_next, why, sizeof(why))) {
            fail_task(t, NULL, why);
            round = ROUND_FAILED;
        }
    }
    rkb_redis_replies_free(t->replies, 2);
    return round;
}

static round_t apply_eos_plain(rkb_sink_task_t *t) {
    char why[512], key[1024], next[24];
    int64_t max_offset = sent_max_offset(t);
    if (max_offset < 0)
        return ROUND_PROGRESS; /* nothing was sent */

    for (int attempt = 0; attempt < EOS_PLAIN_ATTEMPTS; attempt++) {
        round_t read = eos_plain_read(t);
        if (read == ROUND_TRANSIENT)
            mark_sent_transient(t);
        if (read != ROUND_PROGRESS)
            return read;

        /* The second: the writes at or above each stored offset, and the new offsets. */
        rkb_cmds_reset(t->pipe);
        rkb_cmds_begin(t->pipe);
        rkb_cmds_args(t->pipe, "MULTI");
        rkb_cmds_end(t->pipe);
        for (size_t s = 0; s < t->slot_cnt; s++)
            t->slots[s].applied_next = -1;
        for (size_t i = 0; i < t->cnt; i++) {
            const rec_state_t *st = &t->states[i];
            const rkb_record_t *rec = &t->recs[i];
            if (!st->sent)
                continue;
            part_slot_t *slot = slot_for(t, rec);
            if (rec->offset < slot->stored_next)
                continue; /* applied already (by a zombie, or before a lost reply) */
            slot->applied_next = rec->offset + 1;
            for (int k = 0; k < st->cmd_cnt; k++) {
                size_t j = st->cmd_first + (size_t)k;
                rkb_cmds_begin(t->pipe);
                for (int a = 0; a < rkb_cmds_argc(t->cmds, j); a++) {
                    size_t len;
                    const char *arg = rkb_cmds_argv(t->cmds, j, a, &len);
                    rkb_cmds_arg(t->pipe, arg, len);
                }
                rkb_cmds_end(t->pipe);
            }
        }
        bool offsets = false;
        for (size_t s = 0; s < t->slot_cnt; s++) {
            part_slot_t *slot = &t->slots[s];
            if (slot->applied_next < 0)
                continue;
            if (!offsets) {
                rkb_cmds_begin(t->pipe);
                rkb_cmds_args(t->pipe, "MSET");
                offsets = true;
            }
            rkb_cmds_args(t->pipe, rkb_eos_offset_key(t->offset_ns, slot->topic,
                                                      slot->partition, key, sizeof(key)));
            snprintf(next, sizeof(next), "%lld", (long long)slot->applied_next);
            rkb_cmds_args(t->pipe, next);
        }
        if (offsets)
            rkb_cmds_end(t->pipe);
        rkb_cmds_begin(t->pipe);
        rkb_cmds_args(t->pipe, offsets ? "EXEC" : "DISCARD");
        rkb_cmds_end(t->pipe);
        size_t n = ensure_replies(t, coalesce(t, t->pipe, &t->cmd_map, &t->cmd_map_cap));
        if (rkb_failpoint_armed("crash_mid_batch", max_offset))
            crash_half_sent(t, t->pipe, max_offset); /* no EXEC: nothing applies */
        if (rkb_redis_pipeline(t->redis, t->pipe, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
            rkb_log_warn(t->component, "%s", why);
            mark_sent_transient(t);
            return ROUND_TRANSIENT;
        }
        const redisReply *exec = t->replies[n - 1];
        const char *err = rkb_redis_reply_error(exec);
        for (size_t e = 0; !err && exec->type == REDIS_REPLY_ARRAY && e < exec->elements; e++)
            err = rkb_redis_reply_error(exec->element[e]);
        bool conflict = offsets && !err && exec->type == REDIS_REPLY_NIL;
        if (err)
            snprintf(why, sizeof(why), "%s", err);
        rkb_redis_replies_free(t->replies, n);
        if (conflict) {
            rkb_log_info(t->component, "an offset key changed while the batch was prepared "
                                       "(another writer?): reading the offsets again");
            continue;
        }
        if (err) {
            /* EXECABORT (e.g. OOM while queueing): nothing applied; the batch waits. */
            rkb_log_warn(t->component, "exactly-once transaction: %s; retrying", why);
            mark_sent_transient(t);
            return ROUND_TRANSIENT;
        }
        atomic_fetch_add(&t->stats.batches, 1);
        rkb_task_metrics_batch(rkb_task_metrics_current(), t->cnt);
        rkb_failpoint("crash_after_redis_apply", max_offset);
        for (size_t i = 0; i < t->cnt; i++)
            if (t->states[i].sent)
                t->states[i].outcome = REC_DONE;
        return ROUND_PROGRESS;
    }
    rkb_log_warn(t->component, "offset keys kept changing under the batch (%d attempts); retrying",
                 EOS_PLAIN_ATTEMPTS);
    mark_sent_transient(t);
    return ROUND_TRANSIENT;
}

static int rewind_to_stored(rkb_sink_task_t *t);

static round_t apply_batch(rkb_sink_task_t *t) {
    if (!t->cnt)
        return ROUND_EMPTY;
    int rc = ensure_connected(t);
    if (rc)
        return rc < 0 ? ROUND_FAILED : ROUND_TRANSIENT;
    if (t->rewind) {
        if (rewind_to_stored(t))
            return ROUND_TRANSIENT;
        if (!t->cnt)
            return ROUND_EMPTY;
    }
    round_t enriched = enrich_batch(t); /* a no-op without enrich.key */
    if (enriched != ROUND_PROGRESS)
        return enriched;

    encode_batch(t, t->cmds);
    bool plain = t->exactly_once && !rkb_redis_is_cluster(t->redis) && plain_writes_only(t);
    round_t sent = plain ? apply_eos_plain(t) : send_and_settle(t);
    if (sent != ROUND_PROGRESS)
        return sent;

    bool transient = false;
    if (!t->failed && handle_data_errors(t))
        transient = true;
    if (!t->exactly_once)
        keep_partition_order(t);
    for (size_t i = 0; i < t->cnt; i++)
        transient |= t->states[i].transient;
    store_finished(t);

    if (t->failed)
        return ROUND_FAILED;
    if (transient)
        return ROUND_TRANSIENT;
    round_t emitted = emit_window_results(t);
    if (emitted != ROUND_EMPTY)
        return emitted;
    return t->cnt ? ROUND_PROGRESS : ROUND_EMPTY;
}

/* ---- at-least-once pipelining ------------------------------------------------------------- */

/* The connection went down with batches in flight: their replies are gone, and every record
 * they carried is to be written again (after the earlier records of its partition: they are
 * earlier in the batch, and encode_batch sends in batch order). */
static void lose_flights(rkb_sink_task_t *t) {
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (st->inflight) {
            st->inflight = false;
            st->outcome = REC_PENDING;
            st->transient = true;
        }
    }
    for (size_t f = 0; f < RKB_ARRAY_SIZE(t->flights); f++)
        t->flights[f].active = false;
}

/* Reads the replies of flight f and settles its records. Returns false when the connection
 * failed (every flight is lost then). */
static bool receive_flight(rkb_sink_task_t *t, unsigned f) {
    char why[512];
    flight_t *flight = &t->flights[f];
    size_t n = ensure_replies(t, flight->ncmds);
    if (rkb_redis_pipeline_recv(t->redis, n, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(t->component, "%s", why);
        lose_flights(t);
        return false;
    }
    flight->active = false;
    settle_commands(t, 0, (int)f);
    rkb_redis_replies_free(t->replies, n);
    rkb_failpoint("crash_after_redis_apply", flight->max_offset);
    return true;
}

/*
 * At-least-once without MULTI/EXEC, WAIT or enrichment: while Redis works through one batch,
 * the next is read from Kafka, encoded and sent behind it; only then are the first batch's
 * replies read. Two batches are in flight at most, each in its own command arena (t->flights),
 * and the records of both stay in t->recs in consumption order.
 *
 * Order and offsets are as in apply_batch: an offset is stored only once its record and every
 * earlier one of its partition are done. A record of the newer batch whose partition has an
 * earlier record to write again (a transient error in the older batch) is written again after
 * it: keep_partition_order sends it back to pending once its own reply is in, so Redis ends
 * with the later value.
 *
 * intake: read more records first (not while finishing what is in hand).
 */
static round_t apply_pipelined(rkb_sink_task_t *t, bool intake) {
    char why[512];
    if (!rkb_redis_is_connected(t->redis))
        lose_flights(t);
    int rc = ensure_connected(t);
    if (rc)
        return rc < 0 ? ROUND_FAILED : ROUND_TRANSIENT;
    if (intake && poll_room(t))
        poll_into_batch(t, 0); /* may serve a rebalance, which finishes what is in hand */

    unsigned next = t->next_flight, older = next ^ 1u;
    flight_t *flight = &t->flights[next];
    encode_batch(t, flight->cmds);
    size_t sent = 0;
    flight->max_offset = -1;
    for (size_t i = 0; i < t->cnt; i++) {
        rec_state_t *st = &t->states[i];
        if (!st->sent || st->inflight) /* not encoded now, or in the older flight */
            continue;
        if (!st->cmd_cnt) {
            st->outcome = REC_DONE; /* nothing to write (e.g. a STREAM tombstone) */
            continue;
        }
        st->inflight = true;
        st->flight = (unsigned char)next;
        sent++;
        if (t->recs[i].offset > flight->max_offset)
            flight->max_offset = t->recs[i].offset;
    }
    bool transient = false;
    if (sent) {
        flight->ncmds = coalesce(t, flight->cmds, &flight->map, &flight->map_cap);
        if (rkb_failpoint_armed("crash_mid_batch", flight->max_offset)) {
            if (t->flights[older].active) /* its replies come first */
                receive_flight(t, older);
            crash_half_sent(t, flight->cmds, flight->max_offset);
        }
        if (rkb_redis_pipeline_send(t->redis, flight->cmds, why, sizeof(why)) != RKB_REDIS_OK) {
            rkb_log_warn(t->component, "%s", why);
            lose_flights(t);
            return ROUND_TRANSIENT;
        }
        flight->active = true;
        t->next_flight = older;
        atomic_fetch_add(&t->stats.batches, 1);
        rkb_task_metrics_batch(rkb_task_metrics_current(), sent);
    }
    /* The older batch's replies; with nothing new sent, the newest batch's too. */
    if (t->flights[older].active && !receive_flight(t, older))
        return ROUND_TRANSIENT;
    /* A record that cannot be written is dealt with (dead-lettered, or the task stops) once
     * the records sent before and after it have their replies: then the offsets stored, or
     * committed as the task stops, cover every record that made it. */
    bool data_error = false;
    for (size_t i = 0; i < t->cnt && !data_error; i++)
        data_error = t->states[i].outcome == REC_DATA_ERROR;
    if ((!sent || data_error) && t->flights[next].active && !receive_flight(t, next))
        return ROUND_TRANSIENT;

    if (!t->failed && handle_data_errors(t))
        transient = true;
    keep_partition_order(t);
    for (size_t i = 0; i < t->cnt; i++)
        transient |= t->states[i].transient && !t->states[i].inflight;
    store_finished(t);
    if (t->failed)
        return ROUND_FAILED;
    if (transient)
        return ROUND_TRANSIENT;
    return t->cnt ? ROUND_PROGRESS : ROUND_EMPTY;
}

/* Everything in hand, once: one apply_batch, or, pipelined, until nothing is in flight (no more
 * records are read). */
static round_t finish_in_hand(rkb_sink_task_t *t) {
    if (!t->pipelined)
        return apply_batch(t);
    round_t round = t->cnt ? ROUND_PROGRESS : ROUND_EMPTY;
    for (int pass = 0; pass < 4 && t->cnt && !t->failed; pass++) {
        round = apply_pipelined(t, false);
        if (round != ROUND_PROGRESS)
            break;
    }
    return round;
}

/* ---- exactly-once start offsets -----------------------------------------------------------------
 */

/* Reads the stored next offsets of parts from Redis into parts[i].offset (left alone where
 * none is stored). Returns 0, or -1 when Redis could not answer. */
static int read_start_offsets(rkb_sink_task_t *t, rkb_toppar_t *parts, size_t cnt) {
    if (ensure_connected(t))
        return -1;
    const char **topics = rkb_calloc(cnt, sizeof(*topics));
    int32_t *partitions = rkb_calloc(cnt, sizeof(*partitions));
    int64_t *offsets = rkb_calloc(cnt, sizeof(*offsets));
    for (size_t i = 0; i < cnt; i++) {
        topics[i] = parts[i].topic;
        partitions[i] = parts[i].partition;
    }
    char why[512];
    int rc = rkb_eos_read_offsets(t->redis, t->offset_ns, topics, partitions, cnt, offsets, why,
                                  sizeof(why));
    if (rc == RKB_REDIS_OK) {
        for (size_t i = 0; i < cnt; i++) {
            if (offsets[i] >= 0) {
                parts[i].offset = offsets[i];
                rkb_log_info(t->component, "%s[%d]: starting at offset %lld (stored in Redis)",
                             parts[i].topic, parts[i].partition, (long long)offsets[i]);
            } else {
                rkb_log_info(t->component,
                             "%s[%d]: no offset stored in Redis; starting at the committed "
                             "offset, else per auto.offset.reset",
                             parts[i].topic, parts[i].partition);
            }
        }
    } else {
        rkb_log_warn(t->component, "reading start offsets from Redis: %s", why);
    }
    free(topics);
    free(partitions);
    free(offsets);
    return rc == RKB_REDIS_OK ? 0 : -1;
}

/*
 * Exactly-once, after a reconnect: Redis may hold less than it acknowledged before. A failover
 * promotes a replica that had not yet received the last writes of its master (replication is
 * asynchronous), and those writes took their offsets with them (one script, one slot). So the
 * offsets Redis holds now are read again, and each partition that has one goes back there:
 * what it holds in hand is dropped and read again from Kafka (a partition whose stored offset
 * is not behind what it applies next stays as it is). Records below the stored offset
 * are still skipped by the script; records the new master lost are applied again. A partition
 * with no stored offset keeps its place (nothing of it was applied, or the loss took all of it:
 * the rare case left, its committed offset then leads).
 */
static int rewind_to_stored(rkb_sink_task_t *t) {
    rkb_toppar_t *parts;
    size_t cnt = rkb_consumer_assignment(t->consumer, &parts);
    /* What each partition applies next: its first record in hand, else its position. */
    int64_t *next = rkb_calloc(cnt ? cnt : 1, sizeof(*next));
    for (size_t p = 0; p < cnt; p++) {
        next[p] = parts[p].offset;
        parts[p].offset = RKB_OFFSET_INVALID;
        for (size_t i = 0; i < t->cnt; i++)
            if (t->recs[i].partition == parts[p].partition &&
                !strcmp(t->recs[i].topic, parts[p].topic) &&
                (next[p] < 0 || t->recs[i].offset < next[p]))
                next[p] = t->recs[i].offset;
    }
    int rc = cnt ? read_start_offsets(t, parts, cnt) : 0;
    /* Redis holding at least what comes next lost nothing of it: that partition stays where it
     * is (no seek, nothing dropped, nothing fetched again). */
    for (size_t p = 0; !rc && p < cnt; p++)
        if (parts[p].offset >= 0 && next[p] >= 0 && parts[p].offset >= next[p])
            parts[p].offset = RKB_OFFSET_INVALID;
    free(next);
    if (!rc && cnt) {
        bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
        for (size_t i = 0; i < t->cnt; i++) {
            keep[i] = true;
            for (size_t p = 0; p < cnt && keep[i]; p++)
                keep[i] = !(parts[p].offset >= 0 && parts[p].partition == t->recs[i].partition &&
                            !strcmp(parts[p].topic, t->recs[i].topic));
        }
        compact_batch(t, keep);
        free(keep);
        rkb_consumer_seek(t->consumer, parts, cnt);
    }
    for (size_t p = 0; p < cnt; p++)
        free((char *)parts[p].topic);
    free(parts);
    if (!rc)
        t->rewind = false;
    return rc;
}

static void restore_forget(rkb_sink_task_t *t, const rkb_toppar_t *parts, size_t cnt) {
    size_t out = 0;
    for (size_t i = 0; i < t->restore_cnt; i++) {
        bool gone = false;
        for (size_t j = 0; j < cnt && !gone; j++)
            gone = parts[j].partition == t->restore[i].partition &&
                   !strcmp(parts[j].topic, t->restore[i].topic);
        if (gone)
            free((char *)t->restore[i].topic);
        else
            t->restore[out++] = t->restore[i];
    }
    t->restore_cnt = out;
}

/* Partitions whose start offset could not be read at assignment (Redis was down) stay paused
 * until it can: then the consumer seeks there. Returns 0, or -1 to retry later. */
static int restore_pending(rkb_sink_task_t *t) {
    for (size_t i = 0; i < t->restore_cnt; i++)
        t->restore[i].offset = RKB_OFFSET_INVALID;
    if (read_start_offsets(t, t->restore, t->restore_cnt))
        return -1;
    rkb_consumer_seek(t->consumer, t->restore, t->restore_cnt);
    restore_forget(t, t->restore, t->restore_cnt);
    if (!t->attempt) /* paused only for this (an outage resumes when it ends) */
        rkb_consumer_pause_all(t->consumer, false);
    return 0;
}

/* ---- rebalance handlers (called from inside rkb_consumer_poll on the task thread) ---------- */

static bool in_parts(const rkb_record_t *rec, const rkb_toppar_t *parts, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        if (parts[i].partition == rec->partition && !strcmp(parts[i].topic, rec->topic))
            return true;
    return false;
}

/* Exactly-once: start each new partition where Redis says it was applied up to (absolute
 * offset: no committed-offset lookup). If Redis cannot answer now, pause and do it later. */
static void on_assign(rkb_toppar_t *parts, size_t cnt, void *opaque) {
    rkb_sink_task_t *t = opaque;
    /* WINDOW: results an earlier owner (or a crash) left pending are emitted now. */
    for (size_t i = 0; t->window && i < cnt; i++)
        rkb_window_watch(t->window, parts[i].topic, parts[i].partition);
    if (!t->exactly_once || read_start_offsets(t, parts, cnt) == 0)
        return;
    rkb_log_warn(t->component, "Redis unavailable at assignment: pausing until the start "
                               "offsets can be read");
    t->restore = rkb_realloc(t->restore, (t->restore_cnt + cnt) * sizeof(*t->restore));
    for (size_t i = 0; i < cnt; i++) {
        t->restore[t->restore_cnt] = parts[i];
        t->restore[t->restore_cnt].topic = rkb_strdup(parts[i].topic);
        t->restore_cnt++;
    }
    rkb_consumer_pause_all(t->consumer, true);
}

/*
 * Partitions are going. Not lost: finish what is in hand once (a bounded attempt: Redis's own
 * timeouts) so that the stored offsets, committed right after we return, cover it; what still
 * did not make it is dropped and will be read again by the next owner from the committed offset.
 * Lost: another member may own them already; drop their records without storing anything.
 */
static void on_revoke(const rkb_toppar_t *parts, size_t cnt, bool lost, void *opaque) {
    rkb_sink_task_t *t = opaque;
    if (!lost && t->cnt && !t->failed)
        finish_in_hand(t);
    restore_forget(t, parts, cnt);
    for (size_t i = 0; t->window && i < cnt; i++)
        rkb_window_forget(t->window, parts[i].topic, parts[i].partition); /* the next owner's */
    bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
    size_t dropped = 0;
    for (size_t i = 0; i < t->cnt; i++) {
        keep[i] = !in_parts(&t->recs[i], parts, cnt);
        dropped += !keep[i];
    }
    if (dropped)
        rkb_log_info(t->component, "dropping %zu unfinished records of %s partitions", dropped,
                     lost ? "lost" : "revoked");
    compact_batch(t, keep);
    free(keep);
}

/* ---- the loop ---------------------------------------------------------------------------------
 */

/* How many records the batch takes now: up to batch.size not yet sent (pipelined, the batch in
 * flight stays in the arrays meanwhile). 0: polling only serves events. */
static size_t poll_room(const rkb_sink_task_t *t) {
    size_t unsent = 0;
    for (size_t i = 0; i < t->cnt; i++)
        unsent += !t->states[i].inflight;
    size_t room = t->capacity - t->cnt;
    size_t want = t->batch_size - unsent;
    return room < want ? room : want;
}

static void poll_into_batch(rkb_sink_task_t *t, int timeout_ms) {
    size_t before = t->cnt;
    size_t max = poll_room(t);
    rkb_consumer_poll(t->consumer, t->recs, &t->cnt, max, timeout_ms);
    for (size_t i = before; i < t->cnt; i++)
        memset(&t->states[i], 0, sizeof(t->states[i]));
    if (t->cnt > before)
        atomic_fetch_add(&t->stats.records_read, t->cnt - before);
}

int rkb_sink_task_run(rkb_sink_task_t *t, rkb_task_ctl_t *ctl, char *errstr,
                      size_t errstr_size) {
    const volatile int *stop = rkb_task_ctl_stop(ctl);
    rkb_consumer_conf_t cc = {
        .component = t->component,
        .group_id = t->group_id,
        .client_id = t->client_id,
        .topics = (const char *const *)t->topics,
        .topic_cnt = t->topic_cnt,
        .topics_regex = rkb_config_get(t->conf, "topics.regex"),
        .props = (const char *const *)t->kafka_props.pairs,
        .prop_cnt = t->kafka_props.cnt,
        .prefetch_share = (int)rkb_config_get_int(t->conf, "tasks.max"),
        .handlers = {.on_assign = on_assign, .on_revoke = on_revoke, .opaque = t},
    };
    t->consumer = rkb_consumer_new(&cc, errstr, errstr_size);
    if (!t->consumer)
        return -1;

    char where[256];
    rkb_log_info(t->component, "sink started: %s %s → redis %s as %s, %s",
                 cc.topics_regex ? "topics matching" : "topics",
                 cc.topics_regex ? cc.topics_regex : rkb_config_get(t->conf, "topics"),
                 rkb_redis_conf_describe(&t->redis_conf, where, sizeof(where)),
                 rkb_redis_type_name(t->type), t->exactly_once ? "exactly-once" : "at-least-once");
    /* Connect now, so that a refused password or certificate fails the task at start rather
     * than at the first record; a transient failure is retried with the first batch. */
    ensure_connected(t);

    int64_t outage_since = 0;
    while (!*stop && !t->failed) {
        round_t round;
        if (t->restore_cnt && restore_pending(t))
            round = t->failed ? ROUND_FAILED : ROUND_TRANSIENT;
        else if (!t->cnt && rkb_consumer_hold(t->consumer, rkb_task_ctl_hold(ctl, true)))
            round = (poll_into_batch(t, 100), ROUND_EMPTY); /* paused: serves the group only */
        else if (!t->cnt && (poll_into_batch(t, 100), !t->cnt))
            round = emit_window_results(t); /* ROUND_EMPTY unless window results wait */
        else
            round = t->pipelined ? apply_pipelined(t, true) : apply_batch(t);

        if (round == ROUND_FAILED)
            break;
        if (round != ROUND_TRANSIENT) {
            if (t->attempt && !t->restore_cnt) {
                rkb_log_info(t->component, "writes succeed again after %d retries; resuming",
                             t->attempt);
                rkb_consumer_pause_all(t->consumer, false);
                t->attempt = 0;
            }
            continue;
        }
        /* Transient: hold the batch, pause intake, keep polling so the member stays in its
         * group and rebalances are served, and try again after a capped backoff. */
        int64_t now = rkb_now_ms();
        if (!t->attempt) {
            outage_since = now;
            rkb_log_warn(t->component, "writes failing: pausing intake, %zu records held", t->cnt);
        }
        rkb_consumer_pause_all(t->consumer, true);
        atomic_fetch_add(&t->stats.retries, 1);
        if (t->retry_timeout_ms >= 0 && now - outage_since > t->retry_timeout_ms) {
            char why[256];
            snprintf(why, sizeof(why),
                     "writes kept failing for %lld ms (errors.retry.timeout=%lld); giving up",
                     (long long)(now - outage_since), (long long)t->retry_timeout_ms);
            fail_task(t, NULL, why);
            break;
        }
        int64_t until = now + rkb_backoff_ms(t->attempt++, 100, t->retry_delay_max_ms);
        while (!*stop && !t->failed && rkb_now_ms() < until)
            poll_into_batch(t, 50); /* paused: serves events (and holds what was in flight) */
    }

    /* Orderly shutdown: intake has stopped; finish what is in hand once (if Redis answers),
     * store, then close, which commits the stored offsets and leaves the group. */
    if (!t->failed && t->cnt && finish_in_hand(t) != ROUND_EMPTY)
        rkb_log_warn(t->component, "%zu records not finished at shutdown; they will be read again",
                     t->cnt);
    bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
    compact_batch(t, keep); /* releases everything */
    free(keep);
    rkb_consumer_close(t->consumer);
    t->consumer = NULL;
    rkb_redis_close(t->redis);

    char enrichment[256] = "";
    if (t->enrich)
        snprintf(enrichment, sizeof(enrichment),
                 "; enrichment: %llu lookups, %llu cache hits, %llu misses, %llu produced",
                 (unsigned long long)t->stats.enrich_lookups,
                 (unsigned long long)t->stats.enrich_cache_hits,
                 (unsigned long long)t->stats.enrich_misses,
                 (unsigned long long)t->stats.records_produced);
    rkb_log_info(
        t->component,
        "sink stopped: %llu read, %llu written, %llu skipped, %llu failed, "
        "%llu dead-lettered, %llu retries, %llu stale%s",
        (unsigned long long)t->stats.records_read, (unsigned long long)t->stats.records_written,
        (unsigned long long)t->stats.records_skipped, (unsigned long long)t->stats.records_failed,
        (unsigned long long)t->stats.records_dead_lettered, (unsigned long long)t->stats.retries,
        (unsigned long long)t->stats.records_stale, enrichment);
    if (t->window) {
        const rkb_window_stats_t *ws = rkb_window_stats(t->window);
        rkb_log_info(t->component,
                     "windows: %llu closed, %llu results emitted; dropped: %llu late records, "
                     "%llu late hopping windows, %llu without event time",
                     (unsigned long long)ws->windows_closed,
                     (unsigned long long)ws->results_emitted,
                     (unsigned long long)ws->dropped_late_records,
                     (unsigned long long)ws->dropped_late_windows,
                     (unsigned long long)ws->dropped_invalid_ts);
    }
    if (t->failed) {
        snprintf(errstr, errstr_size, "%s", t->failure);
        return -1;
    }
    return 0;
}

void rkb_sink_task_destroy(rkb_sink_task_t *t) {
    if (!t)
        return;
    rkb_dlq_destroy(t->dlq); /* first: its last reports look records up in the batch */
    t->dlq = NULL;
    rkb_output_destroy(t->output); /* likewise */
    t->output = NULL;
    rkb_enrich_destroy(t->enrich);
    free(t->enrich_recs);
    if (t->consumer) {
        bool *keep = rkb_calloc(t->cnt ? t->cnt : 1, sizeof(*keep));
        compact_batch(t, keep);
        free(keep);
        rkb_consumer_close(t->consumer);
    }
    rkb_writer_destroy(t->writer);
    rkb_window_destroy(t->window);
    rkb_redis_destroy(t->redis);
    rkb_redis_conf_clear(&t->redis_conf);
    rkb_cmds_destroy(t->cmds);
    rkb_cmds_destroy(t->pipe);
    free(t->cmd_map);
    for (size_t f = 0; f < RKB_ARRAY_SIZE(t->flights); f++) {
        rkb_cmds_destroy(t->flights[f].cmds);
        free(t->flights[f].map);
    }
    rkb_eos_call_destroy(t->eos_call);
    restore_forget(t, t->restore, t->restore_cnt);
    free(t->restore);
    free(t->offset_ns);
    for (size_t i = 0; i < t->topic_cnt; i++)
        free(t->topics[i]);
    free(t->topics);
    rkb_kafka_props_clear(&t->kafka_props);
    free(t->recs);
    free(t->states);
    free(t->store);
    free(t->replies);
    free(t->slots);
    free(t);
}
