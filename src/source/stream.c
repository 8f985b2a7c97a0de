/*
 * stream.c — the Redis Streams → Kafka source task (see stream.h; SEMANTICS.md §4.3).
 *
 * Data path: XREADGROUP (redis/) → one Kafka record per entry (kafka/producer) → delivery
 * report → XACK. One task is one consumer of the group on every stream it reads; the Redis
 * pending entries list (PEL) is the truth about what still has to reach Kafka, so the task
 * keeps no state of its own that a crash could lose:
 *
 *   read        XREADGROUP GROUP g c COUNT batch.size BLOCK redis.stream.block STREAMS s... >...
 *               (one call for every stream; entries enter c's PEL as Redis hands them out);
 *               while a full batch is being produced the next read (with the XACKs due) is
 *               already on its way, so that Redis reads while Kafka records are built
 *   produce     key per redis.stream.key, value per redis.stream.value, headers redis-stream and
 *               redis-id, timestamp = the ID's milliseconds (event time; redis-kafka-connect
 *               uses its wall clock instead)
 *   acknowledge at-least-once: XACK only after the record's delivery report said the broker
 *               has it, batched into the next round trip; a failed report leaves the entry
 *               pending and it is produced again by the next recovery pass. at-most-once: XACK
 *               right after the read (with the next read when reading ahead), before producing.
 *
 * Recovery pass (at start, after a reconnect, after a failed delivery report, for a stream
 * found by the pattern): once none of the stream's records is in flight any more, read c's own
 * pending entries from ID 0 until none are left and produce them again. Entries trimmed or
 * deleted while pending come back as [id, nil]: they are acknowledged and counted as lost.
 * Every redis.stream.claim.interval.ms (after waiting for our own records in flight), XAUTOCLAIM
 * takes over entries that other consumers left pending longer than redis.stream.claim.min.idle.ms
 * (validation keeps it above kafka.message.timeout.ms, so a live consumer's records in flight
 * are never taken); claimed entries are produced like new ones, and the IDs XAUTOCLAIM reports
 * deleted are counted as lost.
 *
 * Streams: redis.stream.name, plus with redis.stream.pattern every key SCAN ... TYPE stream
 * finds, at start and every redis.stream.discovery.interval.ms. The group is created with
 * XGROUP CREATE s g redis.stream.offset MKSTREAM (BUSYGROUP is success; pattern streams without
 * MKSTREAM, so a stream deleted meanwhile is not brought back). NOGROUP on a read (the stream
 * was deleted) recreates the group from 0: the stream is new, everything in it is new.
 *
 * redis.stream.trim.acked: after acknowledgements (at most once a second per stream), one Lua
 * script, atomic so that no group can read or be created in between, computes the safe ID =
 * min over every group of the stream (XINFO GROUPS) of its smallest pending ID (XPENDING summary)
 * or, with nothing pending, the successor of its last-delivered-id, and runs XTRIM s MINID safe.
 * Entries still pending in any group are never trimmed; entries not yet delivered to some group
 * are never trimmed either.
 *
 * A field the entry does not have (redis.stream.key or redis.stream.value = field.NAME) becomes
 * a null key or value: the record is still produced, with its headers, so the entry is not
 * dropped silently; the task logs it and counts it as missing. (On a compacted topic a null
 * value is a tombstone.) Field bytes that are not UTF-8 become U+FFFD in the json value, as a
 * Java client decoding the entry would make them.
 *
 * Failures: Redis unreachable or answering LOADING/BUSY/... → back off (capped at 10 s), reconnect,
 * acknowledge what was delivered meanwhile, recovery pass. Kafka unreachable → librdkafka retries
 * within kafka.message.timeout.ms; reads stop while a few batches are in flight; failed reports
 * → back off, recovery pass. A fatal producer error fails the task.
 *
 * @locality one task thread: the loop, the Redis connection and the producer's delivery reports
 * (served by rkb_producer_poll/flush on this thread) all run here; no locks.
 */
#include "source/stream.h"

#include "connect/clients.h"
#include "kafka/producer.h"
#include "metrics/metrics.h"
#include "redis/redis.h"
#include "util/failpoint.h"
#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID_MAX 48 /* "<20 digits>-<20 digits>" and the NUL */
/* Reads stop while this many records wait for their delivery reports: INFLIGHT_BATCHES batches,
 * and at least INFLIGHT_MIN records. The floor keeps reads going through a slow produce response
 * or a stalled producer thread on a busy machine, instead of stopping after 4 batches; and it
 * leaves room for larger produce requests with a larger kafka.linger.ms (librdkafka sends one
 * partition per request: with 4000 records over 64 partitions and linger.ms=20, every request
 * stopped at the ~62 records a partition could hold). bench/stream-source: peak RSS 14 MB at
 * linger.ms=5, up to 24 MB at 20. */
#define INFLIGHT_BATCHES     4
#define INFLIGHT_MIN         16384
#define RETRY_DELAY_MAX_MS   10000 /* backoff cap for Redis and delivery failures */
#define SHUTDOWN_FLUSH_MS    10000 /* how long shutdown waits for delivery reports */
#define TRIM_INTERVAL_MS     1000  /* trim.acked: at most once a second per stream */
#define PREPARE_TOPICS_MS    1000  /* at start: how long to wait for the topics' metadata */
#define PENDING_INTERVAL_MS  1000  /* pending entries counted for GET /metrics */
#define LOST_IDS_LOGGED      5     /* IDs named in one "lost" log line */
#define DEFAULT_TOPIC        "${stream}"
#define MISSING_FIELD_LOGGED 10   /* "missing field" lines logged before going quiet */
#define RECS_PER_SLAB        1024 /* msg_opaques allocated at a time */

typedef struct entry_id_s {
    char text[ID_MAX];
} entry_id_t;

/* A delivered entry to acknowledge: its ID, and the ID's two numbers to sort by. */
typedef struct ack_id_s {
    uint64_t ms, seq;
    entry_id_t id;
} ack_id_t;

/* One stream the task reads. Never freed before the task (delivery reports point at it). */
typedef struct stream_s {
    char *name;
    char *topic;         /* the topic template expanded */
    bool configured;     /* from redis.stream.name (else found by the pattern) */
    bool active;         /* part of the reads (a pattern stream that vanished is not) */
    bool rejected;       /* found by the pattern, but its topic name is not legal: never read */
    bool group_ready;    /* XGROUP CREATE done on this connection */
    bool recreate;       /* the group vanished (NOGROUP): create it again from 0 */
    bool recovering;     /* its own pending entries must be read again from 0 */
    bool in_pass;        /* part of the running recovery pass */
    char cursor[ID_MAX]; /* recovery pass: last ID read */
    size_t inflight;     /* its records without a delivery report yet */
    ack_id_t *acks;      /* delivered, to XACK */
    size_t ack_cnt, ack_cap;
    size_t ack_sending; /* the first ack_sending IDs are in the pipeline being sent */
    bool acked_since_trim;
} stream_t;

/* msg_opaque of one produced record; on the task's free list (next) once its report came. */
typedef struct inflight_s {
    union {
        stream_t *stream;
        struct inflight_s *next;
    };
    entry_id_t id;
} inflight_t;

typedef enum { KEY_STREAM, KEY_ID, KEY_FIELD } key_mode_t;
typedef enum { VALUE_JSON, VALUE_FIELD } value_mode_t;
typedef enum { STEP_OK, STEP_TRANSIENT, STEP_FAILED } step_t;
typedef enum { READ_LIVE, READ_RECOVERY } read_kind_t;
typedef enum { FROM_READ, FROM_CLAIM } entry_origin_t;

/*
 * One round trip of the live reads (XACKs, then XREADGROUP ... >), written and answered
 * separately so that the next one can be on its way while the entries of this one are produced
 * (live_reads). SENT: written, replies not read yet; RECEIVED: replies read (their XACKs
 * settled), entries not handled yet.
 */
typedef enum { ROUND_IDLE, ROUND_SENT, ROUND_RECEIVED } round_state_t;

typedef struct read_round_s {
    round_state_t state;
    rkb_cmds_t *cmds;
    redisReply **replies; /* one per command, the XACKs first */
    size_t replies_cap;
    size_t cmd_cnt, ack_cnt, read_cnt;
    size_t got;   /* replies read so far */
    bool settled; /* its XACKs' replies are in, and settled */
    bool acked;   /* at-most-once: its entries' IDs are acknowledged already (read ahead) */
    int64_t sent_us;
} read_round_t;

struct rkb_stream_source_s {
    const rkb_config_t *conf;
    int task_id;
    char component[256];

    /* Configuration */
    char *group;
    char *consumer;
    const char *topic_template;
    const char *pattern; /* NULL: none */
    const char *start_id;
    key_mode_t key_mode;
    value_mode_t value_mode;
    const char *key_field, *value_field;
    bool at_most_once;
    bool trim_acked;
    int64_t batch_size, block_ms, claim_min_idle_ms, claim_interval_ms, discovery_interval_ms;
    size_t max_inflight;

    /* Streams */
    stream_t **streams;
    size_t stream_cnt;
    size_t lookup_hint;

    /* Clients */
    rkb_redis_conf_t redis_conf;
    rkb_redis_t *redis;
    rkb_producer_t *producer;
    rkb_cmds_t *cmds;     /* the round trip being built */
    rkb_cmds_t *ack_cmds; /* flush_acks (may run inside a delivery report) */
    redisReply **replies;
    size_t replies_cap;
    char *value; /* the json value being built */
    size_t value_cap;
    inflight_t *free_recs; /* msg_opaques to reuse (linked by .next) */
    void **rec_slabs;      /* where they were allocated, RECS_PER_SLAB each */
    size_t rec_slab_cnt;
    read_round_t rounds[2]; /* live reads: the one being handled and the next one */
    const char **argv;      /* a round's command in argv form, for rkb_redis_send */
    size_t *argvlen;
    size_t argv_cap;
    const rkb_task_ctl_t *ctl;

    /* State */
    size_t inflight;
    int64_t next_claim, next_discovery, next_trim;
    int attempt;        /* transient failures in a row */
    bool dr_failing;    /* the last delivery report failed */
    uint64_t dr_errors; /* failed reports not reported in the log yet */
    char dr_error[256]; /* the last one's text */
    bool failed;
    char failure[1024];
    rkb_stream_source_stats_t stats;
    int64_t next_pending; /* when to count pending entries again (metrics) */
};

/* ---- small helpers --------------------------------------------------------------------------- */

static bool str_starts(const char *s, const char *prefix) {
    return !strncmp(s, prefix, strlen(prefix));
}

/*
 * The source templates know one or two tokens each (topic: ${stream}; consumer name: ${task} and
 * ${worker}), so they get this small checker/expander instead of the record templates of tmpl/.
 * "$$" is a literal "$", as in tmpl.h. tokens: NULL-terminated.
 */
static int tmpl_check(const char *text, const char *const *tokens, char *why, size_t why_size) {
    for (const char *p = text; *p; p++) {
        if (*p != '$')
            continue;
        if (p[1] == '$') {
            p++;
            continue;
        }
        if (p[1] != '{') {
            snprintf(why, why_size, "'$' at column %d must start ${%s} or be doubled ($$)",
                     (int)(p - text) + 1, tokens[0]);
            return -1;
        }
        const char *end = strchr(p, '}');
        if (!end) {
            snprintf(why, why_size, "unterminated '${' at column %d", (int)(p - text) + 1);
            return -1;
        }
        size_t len = (size_t)(end - p - 2);
        bool known = false;
        for (size_t i = 0; tokens[i] && !known; i++)
            known = len == strlen(tokens[i]) && !strncmp(p + 2, tokens[i], len);
        if (!known) {
            snprintf(why, why_size, "unknown token '%.*s' at column %d (only ${%s}%s%s%s %s known)",
                     (int)(end - p + 1), p, (int)(p - text) + 1, tokens[0],
                     tokens[1] ? " and ${" : "", tokens[1] ? tokens[1] : "", tokens[1] ? "}" : "",
                     tokens[1] ? "are" : "is");
            return -1;
        }
        p = end;
    }
    return 0;
}

/* Expands a template that passed tmpl_check, values[i] for tokens[i]. The result is owned by
 * the caller. */
static char *tmpl_expand(const char *text, const char *const *tokens, const char *const *values) {
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "");
    for (const char *p = text; *p; p++) {
        if (*p == '$' && p[1] == '$') {
            rkb_buf_append(&out, "$", 1);
            p++;
        } else if (*p == '$' && p[1] == '{') {
            const char *end = strchr(p, '}');
            for (size_t i = 0; tokens[i]; i++)
                if ((size_t)(end - p - 2) == strlen(tokens[i]) &&
                    !strncmp(p + 2, tokens[i], strlen(tokens[i])))
                    rkb_buf_appends(&out, values[i]);
            p = end;
        } else {
            rkb_buf_append(&out, p, 1);
        }
    }
    return out.data;
}

static const char *const topic_tokens[] = {"stream", NULL};
static const char *const consumer_tokens[] = {"task", "worker", NULL};

/* ${worker}: the worker's worker.id, which the worker sets on every connector it starts (see
 * connect/worker.c); HOSTNAME:pPID for a config that did not come through one. */
static char *worker_name(const rkb_config_t *conf) {
    const char *id = rkb_config_get(conf, "worker.id");
    if (id && *id)
        return rkb_strdup(id);
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1))
        snprintf(host, sizeof(host), "localhost");
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appendf(&out, "%s:p%ld", host, (long)getpid());
    return out.data;
}

/* Kafka's rule for topic names: 1-249 of [a-zA-Z0-9._-], not "." or "..". */
static bool topic_name_ok(const char *topic) {
    size_t len = strlen(topic);
    if (len == 0 || len > 249 || !strcmp(topic, ".") || !strcmp(topic, ".."))
        return false;
    for (const char *p = topic; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* An entry ID as XGROUP CREATE takes it: "$", "ms" or "ms-seq". */
static bool start_id_ok(const char *id) {
    if (!strcmp(id, "$"))
        return true;
    const char *dash = strchr(id, '-');
    size_t ms_len = dash ? (size_t)(dash - id) : strlen(id);
    if (ms_len == 0 || ms_len > 20 || strspn(id, "0123456789") != ms_len)
        return false;
    if (!dash)
        return true;
    size_t seq_len = strlen(dash + 1);
    return seq_len > 0 && seq_len <= 20 && strspn(dash + 1, "0123456789") == seq_len;
}

/* The record timestamp: the ID's milliseconds, or -1 (now) when they do not fit. */
static int64_t id_timestamp(const char *id) {
    char *end;
    unsigned long long ms = strtoull(id, &end, 10);
    if (end == id || *end != '-' || ms > INT64_MAX)
        return -1;
    return (int64_t)ms;
}

/* The length of the valid UTF-8 sequence at s (at most len bytes), or 0 if it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t len) {
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* The most bytes put_json_string writes for len bytes: a control byte becomes \u00XX. */
#define JSON_STRING_MAX(len) (6 * (len) + 2)

/* Writes s as a JSON string at out, which has room for JSON_STRING_MAX(len) bytes: escapes as
 * JSON requires, invalid UTF-8 bytes as U+FFFD. Returns the end of what it wrote. */
static char *put_json_string(char *out, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    *out++ = '"';
    size_t run = 0; /* start of the bytes that go out as they are */
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t n = c >= 0x80 ? utf8_seq_len(u + i, len - i) : 0;
        if (n) {
            i += n;
            continue;
        }
        memcpy(out, s + run, i - run);
        out += i - run;
        switch (c) {
        case '"':
            *out++ = '\\', *out++ = '"';
            break;
        case '\\':
            *out++ = '\\', *out++ = '\\';
            break;
        case '\n':
            *out++ = '\\', *out++ = 'n';
            break;
        case '\r':
            *out++ = '\\', *out++ = 'r';
            break;
        case '\t':
            *out++ = '\\', *out++ = 't';
            break;
        default:
            if (c < 0x20) {
                memcpy(out, "\\u00", 4);
                out[4] = hex[c >> 4], out[5] = hex[c & 0xF];
                out += 6;
            } else {
                memcpy(out, "\xEF\xBF\xBD", 3); /* U+FFFD */
                out += 3;
            }
        }
        run = ++i;
    }
    memcpy(out, s + run, len - run);
    out += len - run;
    *out++ = '"';
    return out;
}

/* ---- configuration --------------------------------------------------------------------------- */

/* "stream", "id" or "field.NAME" (key); "json" or "field.NAME" (value). */
static int parse_key_mode(const char *text, key_mode_t *mode, const char **field) {
    *field = NULL;
    if (!strcmp(text, "stream"))
        *mode = KEY_STREAM;
    else if (!strcmp(text, "id"))
        *mode = KEY_ID;
    else if (str_starts(text, "field.") && text[6])
        *mode = KEY_FIELD, *field = text + 6;
    else
        return -1;
    return 0;
}

static int parse_value_mode(const char *text, value_mode_t *mode, const char **field) {
    *field = NULL;
    if (!strcmp(text, "json"))
        *mode = VALUE_JSON;
    else if (str_starts(text, "field.") && text[6])
        *mode = VALUE_FIELD, *field = text + 6;
    else
        return -1;
    return 0;
}

static const char *topic_template(const rkb_config_t *conf) {
    const char *topic = rkb_config_get(conf, "topic");
    return topic && *topic ? topic : DEFAULT_TOPIC;
}

/* The librdkafka delivery timeout the user set (message.timeout.ms or its alias), else
 * librdkafka's default. */
typedef struct {
    int64_t ms;
    const char *name, *origin;
} msg_timeout_t;

static void find_msg_timeout(const char *name, const char *value, const char *origin,
                             void *opaque) {
    msg_timeout_t *timeout = opaque;
    int64_t ms;
    if ((!strcmp(name, "message.timeout.ms") || !strcmp(name, "delivery.timeout.ms")) &&
        !rkb_parse_int64(value, 0, INT64_MAX, &ms)) {
        timeout->ms = ms;
        timeout->name = name;
        timeout->origin = origin;
    }
}

int rkb_stream_source_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    char why[512];

    const char *names = rkb_config_get(conf, "redis.stream.name");
    const char *pattern = rkb_config_get(conf, "redis.stream.pattern");
    if ((!names || !*names) && (!pattern || !*pattern))
        rkb_errors_add(errs,
                       "%s: redis.stream.name: set redis.stream.name, "
                       "redis.stream.pattern, or both",
                       rkb_config_origin(conf, "connector.class"));

    key_mode_t key_mode;
    value_mode_t value_mode;
    const char *field;
    if (parse_key_mode(rkb_config_get(conf, "redis.stream.key"), &key_mode, &field))
        rkb_errors_add(errs, "%s: redis.stream.key: must be stream, id or field.NAME, got '%s'",
                       rkb_config_origin(conf, "redis.stream.key"),
                       rkb_config_get(conf, "redis.stream.key"));
    if (parse_value_mode(rkb_config_get(conf, "redis.stream.value"), &value_mode, &field))
        rkb_errors_add(errs, "%s: redis.stream.value: must be json or field.NAME, got '%s'",
                       rkb_config_origin(conf, "redis.stream.value"),
                       rkb_config_get(conf, "redis.stream.value"));

    const char *topic = topic_template(conf);
    if (tmpl_check(topic, topic_tokens, why, sizeof(why))) {
        rkb_errors_add(errs, "%s: topic: %s", rkb_config_origin(conf, "topic"), why);
    } else {
        /* Every configured stream must give a legal topic name (pattern streams are checked
         * when they are found). */
        const char *p = names;
        while (p && *p) {
            const char *end = strchr(p, ',');
            char *name = end ? rkb_strndup(p, (size_t)(end - p)) : rkb_strdup(p);
            char *expanded = tmpl_expand(topic, topic_tokens, (const char *const[]){name});
            if (!topic_name_ok(expanded))
                rkb_errors_add(errs,
                               "%s: topic: stream '%s' gives topic '%s', which is not a legal "
                               "Kafka topic name (1-249 letters, digits, '.', '_', '-'); set "
                               "topic",
                               rkb_config_origin(conf, rkb_config_is_set(conf, "topic")
                                                           ? "topic"
                                                           : "redis.stream.name"),
                               name, expanded);
            free(expanded);
            free(name);
            p = end ? end + 1 : NULL;
        }
    }

    const char *consumer = rkb_config_get(conf, "redis.stream.consumer.name");
    if (tmpl_check(consumer, consumer_tokens, why, sizeof(why)))
        rkb_errors_add(errs, "%s: redis.stream.consumer.name: %s",
                       rkb_config_origin(conf, "redis.stream.consumer.name"), why);
    else if (!*consumer)
        rkb_errors_add(errs, "%s: redis.stream.consumer.name: must not be empty",
                       rkb_config_origin(conf, "redis.stream.consumer.name"));
    if (!*rkb_config_get(conf, "redis.stream.consumer.group"))
        rkb_errors_add(errs, "%s: redis.stream.consumer.group: must not be empty",
                       rkb_config_origin(conf, "redis.stream.consumer.group"));

    const char *offset = rkb_config_get(conf, "redis.stream.offset");
    if (!start_id_ok(offset))
        rkb_errors_add(errs,
                       "%s: redis.stream.offset: must be an entry ID (0-0, 1700000000000-0) or "
                       "$, got '%s'",
                       rkb_config_origin(conf, "redis.stream.offset"), offset);

    /* Claiming entries idle for less than the delivery timeout would take records a live
     * consumer still has in flight: they would be produced twice. */
    msg_timeout_t timeout = {.ms = 300000, .name = "message.timeout.ms", .origin = NULL};
    rkb_config_foreach_kafka(conf, find_msg_timeout, &timeout);
    int64_t min_idle = rkb_config_get_int(conf, "redis.stream.claim.min.idle.ms");
    if (timeout.ms == 0)
        rkb_errors_add(errs,
                       "%s: kafka.%s: 0 (no delivery timeout) lets a record stay in flight "
                       "forever, so no redis.stream.claim.min.idle.ms is safe; set a finite "
                       "timeout",
                       timeout.origin, timeout.name);
    else if (min_idle <= timeout.ms)
        rkb_errors_add(errs,
                       "%s: redis.stream.claim.min.idle.ms: %lld must be above kafka.%s "
                       "(%lld), or entries that live consumers still have in flight are claimed "
                       "and produced twice",
                       rkb_config_origin(conf, "redis.stream.claim.min.idle.ms"),
                       (long long)min_idle, timeout.name, (long long)timeout.ms);
    return (int)(errs->cnt - before);
}

/* ---- streams --------------------------------------------------------------------------------- */

static stream_t *stream_find(rkb_stream_source_t *t, const char *name, size_t len) {
    for (size_t n = 0; n < t->stream_cnt; n++) {
        size_t i = (t->lookup_hint + n) % t->stream_cnt;
        stream_t *s = t->streams[i];
        if (strlen(s->name) == len && !memcmp(s->name, name, len)) {
            t->lookup_hint = i + 1; /* replies list streams in the order they were asked */
            return s;
        }
    }
    return NULL;
}

static stream_t *stream_add(rkb_stream_source_t *t, const char *name, bool configured) {
    stream_t *s = rkb_calloc(1, sizeof(*s));
    s->name = rkb_strdup(name);
    s->topic = tmpl_expand(t->topic_template, topic_tokens, (const char *const[]){name});
    s->configured = configured;
    s->active = true;
    s->recovering = true; /* our pending entries of an earlier run come first */
    t->streams = rkb_realloc(t->streams, (t->stream_cnt + 1) * sizeof(*t->streams));
    t->streams[t->stream_cnt++] = s;
    return s;
}

static void stream_free(stream_t *s) {
    free(s->name);
    free(s->topic);
    free(s->acks);
    free(s);
}

/* The decimal number at *p (digits only, as Redis writes them), moving *p past it. */
static uint64_t parse_u64(const char **p) {
    uint64_t value = 0;
    for (; **p >= '0' && **p <= '9'; (*p)++)
        value = value * 10 + (uint64_t)(**p - '0');
    return value;
}

/* id: an ID as Redis returned it, shorter than ID_MAX (entry_ok). */
static void ack_add(stream_t *s, const char *id) {
    if (s->ack_cnt == s->ack_cap) {
        s->ack_cap = s->ack_cap ? s->ack_cap * 2 : 64;
        s->acks = rkb_realloc(s->acks, s->ack_cap * sizeof(*s->acks));
    }
    ack_id_t *ack = &s->acks[s->ack_cnt++];
    memcpy(ack->id.text, id, strlen(id) + 1);
    const char *p = id;
    ack->ms = parse_u64(&p);
    ack->seq = *p == '-' ? (p++, parse_u64(&p)) : 0;
}

static int ack_cmp(const void *a, const void *b) {
    const ack_id_t *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static size_t acks_pending(const rkb_stream_source_t *t) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->stream_cnt; i++)
        cnt += t->streams[i]->ack_cnt;
    return cnt;
}

/* ---- construction ---------------------------------------------------------------------------- */

rkb_stream_source_t *rkb_stream_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                           size_t errstr_size) {
    rkb_stream_source_t *t = rkb_calloc(1, sizeof(*t));
    t->conf = conf;
    t->task_id = task_id;
    snprintf(t->component, sizeof(t->component), "%s/%d", rkb_config_get(conf, "name"), task_id);

    char task[16];
    snprintf(task, sizeof(task), "%d", task_id);
    t->group = rkb_strdup(rkb_config_get(conf, "redis.stream.consumer.group"));
    char *worker = worker_name(conf);
    t->consumer = tmpl_expand(rkb_config_get(conf, "redis.stream.consumer.name"), consumer_tokens,
                              (const char *const[]){task, worker});
    free(worker);
    t->topic_template = topic_template(conf);
    const char *pattern = rkb_config_get(conf, "redis.stream.pattern");
    t->pattern = pattern && *pattern ? pattern : NULL;
    t->start_id = rkb_config_get(conf, "redis.stream.offset");
    if (parse_key_mode(rkb_config_get(conf, "redis.stream.key"), &t->key_mode, &t->key_field) ||
        parse_value_mode(rkb_config_get(conf, "redis.stream.value"), &t->value_mode,
                         &t->value_field)) {
        snprintf(errstr, errstr_size, "redis.stream.key or redis.stream.value not valid");
        goto fail;
    }
    t->at_most_once = !strcmp(rkb_config_get(conf, "redis.stream.delivery"), "at-most-once");
    t->trim_acked = rkb_config_get_bool(conf, "redis.stream.trim.acked");
    t->batch_size = rkb_config_get_int(conf, "batch.size");
    t->block_ms = rkb_config_get_int(conf, "redis.stream.block");
    t->claim_min_idle_ms = rkb_config_get_int(conf, "redis.stream.claim.min.idle.ms");
    t->claim_interval_ms = rkb_config_get_int(conf, "redis.stream.claim.interval.ms");
    t->discovery_interval_ms = rkb_config_get_int(conf, "redis.stream.discovery.interval.ms");
    t->max_inflight = (size_t)t->batch_size * INFLIGHT_BATCHES;
    if (t->max_inflight < INFLIGHT_MIN)
        t->max_inflight = INFLIGHT_MIN;

    const char *names = rkb_config_get(conf, "redis.stream.name");
    for (const char *p = names; p && *p;) {
        const char *end = strchr(p, ',');
        char *name = end ? rkb_strndup(p, (size_t)(end - p)) : rkb_strdup(p);
        if (!stream_find(t, name, strlen(name)))
            stream_add(t, name, true);
        free(name);
        p = end ? end + 1 : NULL;
    }

    if (rkb_connect_redis_conf(conf, task_id, &t->redis_conf, errstr, errstr_size))
        goto fail;
    /* A blocking XREADGROUP holds the socket for up to BLOCK ms before Redis answers: the
     * command timeout (redis.timeout) counts from there. */
    t->redis_conf.command_timeout_ms += (int)t->block_ms;
    t->redis = rkb_redis_new(&t->redis_conf, t->component);
    t->cmds = rkb_cmds_new();
    t->ack_cmds = rkb_cmds_new();
    for (size_t i = 0; i < RKB_ARRAY_SIZE(t->rounds); i++)
        t->rounds[i].cmds = rkb_cmds_new();
    return t;

fail:
    rkb_stream_source_destroy(t);
    return NULL;
}

/* ---- acknowledgements ------------------------------------------------------------------------ */

/* Appends one XACK per stream with delivered entries to cmds; returns how many. The IDs stay
 * in the lists until settle_acks learns that Redis has them. They go out in ID order: delivery
 * reports come a partition at a time, in an order that scatters them over the group's pending
 * entries list, and Redis removes sorted IDs from it faster (1000 IDs of 100k pending: ~0.3 ms
 * sorted, ~0.7 ms shuffled; in bench/stream-source XACK went from ~1.0 to ~0.7 ms a call). */
static size_t add_acks(rkb_stream_source_t *t, rkb_cmds_t *cmds) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        s->ack_sending = s->ack_cnt;
        if (!s->ack_cnt)
            continue;
        qsort(s->acks, s->ack_cnt, sizeof(*s->acks), ack_cmp);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "XACK");
        rkb_cmds_args(cmds, s->name);
        rkb_cmds_args(cmds, t->group);
        for (size_t j = 0; j < s->ack_cnt; j++)
            rkb_cmds_args(cmds, s->acks[j].id.text);
        rkb_cmds_end(cmds);
        cnt++;
    }
    return cnt;
}

/* After the pipeline holding add_acks's commands (replies NULL: it failed, keep the IDs). An
 * error reply (NOGROUP: the stream is gone, and its PEL with it) has nothing left to
 * acknowledge, so the IDs are dropped either way once Redis answered. */
static void settle_acks(rkb_stream_source_t *t, redisReply **replies) {
    size_t r = 0;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        size_t sent = s->ack_sending;
        s->ack_sending = 0;
        if (!sent || !replies)
            continue;
        const redisReply *reply = replies[r++];
        if (reply->type == REDIS_REPLY_INTEGER) {
            t->stats.acked += (uint64_t)reply->integer;
            s->acked_since_trim = true;
        } else {
            rkb_log_warn(t->component, "XACK %s: %s; %zu delivered entries not acknowledged",
                         s->name, reply->type == REDIS_REPLY_ERROR ? reply->str : "odd reply",
                         sent);
        }
        memmove(s->acks, s->acks + sent, (s->ack_cnt - sent) * sizeof(*s->acks));
        s->ack_cnt -= sent;
    }
}

static step_t round_receive(rkb_stream_source_t *t, read_round_t *round);

/* XACKs everything delivered so far, in a round trip of its own. Returns 0, or -1 when Redis
 * could not be reached (the IDs are kept). May run inside a delivery report, so it touches
 * neither t->cmds nor t->replies; a live read on its way is answered first (its replies wait
 * in their round for live_reads), since the connection answers in order. */
static int flush_acks(rkb_stream_source_t *t) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(t->rounds); i++)
        round_receive(t, &t->rounds[i]);
    if (!acks_pending(t) || !rkb_redis_is_connected(t->redis))
        return acks_pending(t) ? -1 : 0;
    rkb_cmds_reset(t->ack_cmds);
    size_t cnt = add_acks(t, t->ack_cmds);
    redisReply **replies = rkb_calloc(cnt, sizeof(*replies));
    char why[512];
    int rc = rkb_redis_pipeline(t->redis, t->ack_cmds, replies, why, sizeof(why));
    if (rc != RKB_REDIS_OK)
        rkb_log_warn(t->component, "%s", why);
    settle_acks(t, rc == RKB_REDIS_OK ? replies : NULL);
    rkb_redis_replies_free(replies, cnt);
    free(replies);
    return rc == RKB_REDIS_OK ? 0 : -1;
}

/* ---- producing ------------------------------------------------------------------------------- */

/* A msg_opaque for a record about to be produced: from the free list, which grows a slab at a
 * time (at most max_inflight of them are ever in use, so it stays small). */
static inflight_t *rec_get(rkb_stream_source_t *t) {
    if (!t->free_recs) {
        inflight_t *slab = rkb_malloc(RECS_PER_SLAB * sizeof(*slab));
        t->rec_slabs = rkb_realloc(t->rec_slabs, (t->rec_slab_cnt + 1) * sizeof(*t->rec_slabs));
        t->rec_slabs[t->rec_slab_cnt++] = slab;
        for (size_t i = 0; i < RECS_PER_SLAB; i++) {
            slab[i].next = t->free_recs;
            t->free_recs = &slab[i];
        }
    }
    inflight_t *rec = t->free_recs;
    t->free_recs = rec->next;
    return rec;
}

static void rec_put(rkb_stream_source_t *t, inflight_t *rec) {
    rec->next = t->free_recs;
    t->free_recs = rec;
}

/*
 * @locality the task thread, from rkb_producer_poll/flush/send/destroy.
 * The guarantee-bearing order: an entry's ID joins the XACK list only here, after the broker
 * acknowledged its record; a failed report leaves the entry pending for the next recovery pass.
 */
static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_stream_source_t *t = opaque;
    inflight_t *rec = msg_opaque;
    stream_t *s = rec->stream;
    s->inflight--;
    t->inflight--;
    if (!err) {
        t->stats.produced++;
        t->dr_failing = false;
        if (!t->at_most_once) {
            if (rkb_failpoint_armed("crash_before_xack", (int64_t)t->stats.produced)) {
                /* Everything delivered before this record is acknowledged; this one is not. */
                flush_acks(t);
                rkb_failpoint("crash_before_xack", (int64_t)t->stats.produced);
            }
            ack_add(s, rec->id.text);
        }
    } else {
        t->stats.failed++;
        t->dr_errors++;
        snprintf(t->dr_error, sizeof(t->dr_error), "%s %s to %s: %s", s->name, rec->id.text,
                 s->topic, errstr);
        if (!t->at_most_once) {
            s->recovering = true;
            t->dr_failing = true;
        }
    }
    rec_put(t, rec);
}

/* The first field named name in an entry's field/value array, or NULL. */
static const redisReply *entry_field(const redisReply *body, const char *name) {
    size_t len = strlen(name);
    for (size_t i = 0; i + 1 < body->elements; i += 2) {
        const redisReply *f = body->element[i];
        if (f->type == REDIS_REPLY_STRING && (size_t)f->len == len && !memcmp(f->str, name, len))
            return body->element[i + 1];
    }
    return NULL;
}

static void note_missing(rkb_stream_source_t *t, const stream_t *s, const char *id,
                         const char *what, const char *field) {
    if (t->stats.missing++ < MISSING_FIELD_LOGGED)
        rkb_log_warn(t->component, "%s %s has no field '%s': produced with a null %s%s", s->name,
                     id, field, what,
                     t->stats.missing == MISSING_FIELD_LOGGED ? " (no more such lines)" : "");
}

/* The entry's fields as a JSON object, in t->value; returns its length. */
static size_t json_value(rkb_stream_source_t *t, const redisReply *body) {
    size_t need = 2;
    for (size_t i = 0; i + 1 < body->elements; i += 2)
        need += JSON_STRING_MAX((size_t)body->element[i]->len) +
                JSON_STRING_MAX((size_t)body->element[i + 1]->len) + 2;
    if (need > t->value_cap) {
        t->value_cap = need * 2;
        t->value = rkb_realloc(t->value, t->value_cap);
    }
    char *out = t->value;
    *out++ = '{';
    for (size_t i = 0; i + 1 < body->elements; i += 2) {
        const redisReply *f = body->element[i], *v = body->element[i + 1];
        if (i)
            *out++ = ',';
        out = put_json_string(out, f->str ? f->str : "", f->str ? (size_t)f->len : 0);
        *out++ = ':';
        out = put_json_string(out, v->str ? v->str : "", v->str ? (size_t)v->len : 0);
    }
    *out++ = '}';
    return (size_t)(out - t->value);
}

/* Produces one entry (id: id_len bytes, shorter than ID_MAX). Returns 0, or -1 (t->failed when
 * the producer failed fatally). */
static int produce_entry(rkb_stream_source_t *t, stream_t *s, const char *id, size_t id_len,
                         const redisReply *body) {
    const void *key = NULL, *value = NULL;
    size_t key_len = 0, value_len = 0;
    switch (t->key_mode) {
    case KEY_STREAM:
        key = s->name, key_len = strlen(s->name);
        break;
    case KEY_ID:
        key = id, key_len = id_len;
        break;
    case KEY_FIELD: {
        const redisReply *f = entry_field(body, t->key_field);
        if (f && f->type == REDIS_REPLY_STRING)
            key = f->str, key_len = (size_t)f->len;
        else
            note_missing(t, s, id, "key", t->key_field);
        break;
    }
    }
    if (t->value_mode == VALUE_FIELD) {
        const redisReply *f = entry_field(body, t->value_field);
        if (f && f->type == REDIS_REPLY_STRING)
            value = f->str, value_len = (size_t)f->len;
        else
            note_missing(t, s, id, "value", t->value_field);
    } else {
        value_len = json_value(t, body);
        value = t->value;
    }
    const rkb_header_t headers[] = {
        {.name = "redis-stream", .value = s->name, .len = strlen(s->name)},
        {.name = "redis-id", .value = id, .len = id_len},
    };
    inflight_t *rec = rec_get(t);
    rec->stream = s;
    memcpy(rec->id.text, id, id_len);
    rec->id.text[id_len] = '\0';
    char why[512];
    if (rkb_producer_send(t->producer, s->topic, -1, key, key_len, value, value_len, headers,
                          RKB_ARRAY_SIZE(headers), id_timestamp(id), rec, why, sizeof(why))) {
        rec_put(t, rec);
        char fatal[512];
        if (rkb_producer_fatal_error(t->producer, fatal, sizeof(fatal))) {
            t->failed = true;
            snprintf(t->failure, sizeof(t->failure), "%s", why);
        } else {
            rkb_log_warn(t->component, "%s %s: %s; it stays pending", s->name, id, why);
        }
        return -1;
    }
    s->inflight++;
    t->inflight++;
    return 0;
}

/* Serves delivery reports until fewer than max_inflight records wait for theirs. */
static void wait_for_room(rkb_stream_source_t *t, const volatile int *stop) {
    while (t->inflight >= t->max_inflight && !*stop)
        rkb_producer_poll(t->producer, 10);
}

/* Serves delivery reports until no record of the streams picked by pick is in flight. */
static void drain(rkb_stream_source_t *t, const volatile int *stop, bool (*pick)(const stream_t *),
                  const stream_t *only) {
    for (;;) {
        size_t inflight = 0;
        for (size_t i = 0; i < t->stream_cnt; i++) {
            const stream_t *s = t->streams[i];
            if (only ? s == only : pick(s))
                inflight += s->inflight;
        }
        if (!inflight || *stop)
            return;
        rkb_producer_poll(t->producer, 10);
    }
}

/* An entry as XREADGROUP and XAUTOCLAIM return it: [id, fields] or [id, nil]. */
static bool entry_ok(const redisReply *e) {
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 2 &&
           e->element[0]->type == REDIS_REPLY_STRING && e->element[0]->len < ID_MAX;
}

static void log_lost(rkb_stream_source_t *t, const stream_t *s, const char *ids, size_t cnt,
                     const char *how) {
    rkb_log_warn(t->component,
                 "%s: %zu pending entr%s (%s) %s before reaching Kafka: counted as lost", s->name,
                 cnt, cnt == 1 ? "y" : "ies", ids, how);
}

/*
 * Handles the entries one stream returned ([id, fields] each; [id, nil] for an entry deleted
 * or trimmed while pending). At-most-once acknowledges them all first, in a round trip of its
 * own, and produces only once Redis has the acknowledgements; acked: that was done already
 * (ack_ahead). Returns 0, or -1 to back off (the entries not produced stay pending; every
 * stream gets a recovery pass).
 */
static int process_entries(rkb_stream_source_t *t, stream_t *s, const redisReply *entries,
                           entry_origin_t origin, bool acked) {
    rkb_buf_t lost_ids;
    rkb_buf_init(&lost_ids);
    size_t lost = 0;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (!entry_ok(e))
            continue;
        const char *id = e->element[0]->str;
        if (e->element[1]->type != REDIS_REPLY_ARRAY) { /* gone: nothing to produce */
            if (lost++ < LOST_IDS_LOGGED)
                rkb_buf_appendf(&lost_ids, "%s%s", lost > 1 ? ", " : "", id);
            if (!acked)
                ack_add(s, id);
        } else if (t->at_most_once && !acked) {
            ack_add(s, id);
        }
    }
    if (lost) {
        if (lost > LOST_IDS_LOGGED)
            rkb_buf_appends(&lost_ids, ", ...");
        t->stats.lost += lost;
        log_lost(t, s, lost_ids.data, lost, "had been deleted or trimmed");
    }
    rkb_buf_free(&lost_ids);
    if (t->at_most_once && !acked && flush_acks(t))
        goto fail;

    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (!entry_ok(e) || e->element[1]->type != REDIS_REPLY_ARRAY)
            continue;
        if (origin == FROM_CLAIM)
            t->stats.claimed++;
        if (produce_entry(t, s, e->element[0]->str, (size_t)e->element[0]->len, e->element[1]))
            goto fail;
    }
    return 0;

fail:
    for (size_t i = 0; i < t->stream_cnt; i++)
        t->streams[i]->recovering = true;
    return -1;
}

/* ---- Redis ----------------------------------------------------------------------------------- */

static void ensure_replies(rkb_stream_source_t *t, size_t n) {
    if (n > t->replies_cap) {
        t->replies_cap = n * 2;
        t->replies = rkb_realloc(t->replies, t->replies_cap * sizeof(*t->replies));
    }
}

/* Sends t->cmds; on success the replies are in t->replies (caller frees them). Logs an I/O
 * failure and returns -1. */
static int send_cmds(rkb_stream_source_t *t) {
    char why[512];
    ensure_replies(t, rkb_cmds_count(t->cmds));
    if (rkb_redis_pipeline(t->redis, t->cmds, t->replies, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(t->component, "%s", why);
        return -1;
    }
    return 0;
}

/* What an error reply to a read, claim or scan means for the loop. NOGROUP (the stream, or its
 * group, was deleted), or UNBLOCKED (7.0: the stream a blocked read waited on was deleted),
 * makes every group be created again; anything unexpected is logged and retried after a
 * backoff, with the groups checked again (a key that is no stream any more is found there). */
static step_t reply_error(rkb_stream_source_t *t, const char *what, const char *msg) {
    if (str_starts(msg, "NOGROUP") || str_starts(msg, "UNBLOCKED")) {
        rkb_log_warn(t->component, "%s: %s: creating the group again (MKSTREAM, from 0)", what,
                     msg);
        for (size_t i = 0; i < t->stream_cnt; i++) {
            stream_t *s = t->streams[i];
            s->group_ready = false;
            s->recreate = true;
            s->recovering = true; /* a running pass ends; the new group gets one of its own */
            s->in_pass = false;
        }
        return STEP_OK;
    }
    rkb_log_warn(t->component, "%s: %s", what, msg);
    if (!rkb_redis_error_is_transient(msg))
        for (size_t i = 0; i < t->stream_cnt; i++)
            t->streams[i]->group_ready = false;
    return STEP_TRANSIENT;
}

/* Connects, and makes every stream read again its own pending entries: whatever was in flight
 * when the connection broke is settled by the recovery pass. */
static step_t ensure_connected(rkb_stream_source_t *t) {
    if (rkb_redis_is_connected(t->redis))
        return STEP_OK;
    char why[512];
    int err = rkb_redis_connect(t->redis, why, sizeof(why));
    if (err == RKB_REDIS_ERR_IO) {
        rkb_log_warn(t->component, "%s", why);
        return STEP_TRANSIENT;
    }
    if (err != RKB_REDIS_OK) {
        t->failed = true;
        snprintf(t->failure, sizeof(t->failure), "%s", why);
        return STEP_FAILED;
    }
    for (size_t i = 0; i < t->stream_cnt; i++) {
        t->streams[i]->group_ready = false;
        t->streams[i]->recovering = true;
    }
    t->next_discovery = 0;
    return STEP_OK;
}

/* XGROUP CREATE for every stream without a group on this connection: redis.stream.offset the
 * first time, 0 after NOGROUP; MKSTREAM for configured streams only. A pattern stream that no
 * longer exists leaves the reads (discovery finds it again if it comes back). */
static step_t ensure_groups(rkb_stream_source_t *t) {
    rkb_cmds_reset(t->cmds);
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        if (!s->active || s->group_ready)
            continue;
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "XGROUP");
        rkb_cmds_args(t->cmds, "CREATE");
        rkb_cmds_args(t->cmds, s->name);
        rkb_cmds_args(t->cmds, t->group);
        rkb_cmds_args(t->cmds, s->recreate ? "0" : t->start_id);
        if (s->configured)
            rkb_cmds_args(t->cmds, "MKSTREAM");
        rkb_cmds_end(t->cmds);
    }
    size_t cnt = rkb_cmds_count(t->cmds);
    if (!cnt)
        return STEP_OK;
    if (send_cmds(t))
        return STEP_TRANSIENT;
    step_t result = STEP_OK;
    size_t r = 0;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        if (!s->active || s->group_ready)
            continue;
        const redisReply *reply = t->replies[r++];
        const char *msg = reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
        if (!msg || str_starts(msg, "BUSYGROUP")) {
            if (!msg)
                rkb_log_info(t->component, "%s: created consumer group %s at %s", s->name, t->group,
                             s->recreate ? "0" : t->start_id);
            s->group_ready = true;
            s->recreate = false;
            s->recovering = true;
        } else if (rkb_redis_error_is_transient(msg)) {
            rkb_log_warn(t->component, "XGROUP CREATE %s: %s", s->name, msg);
            result = STEP_TRANSIENT;
        } else if (!s->configured) {
            rkb_log_info(t->component, "%s: no longer read (%s)", s->name, msg);
            s->active = false;
        } else {
            t->failed = true;
            snprintf(t->failure, sizeof(t->failure), "redis.stream.name: XGROUP CREATE %s %s: %s",
                     s->name, t->group, msg);
            result = STEP_FAILED;
            break;
        }
    }
    rkb_redis_replies_free(t->replies, cnt);
    return result;
}

/* SCAN for the streams matching redis.stream.pattern; new ones join the reads (after their
 * group is created and their own pending entries are read). */
static step_t discover(rkb_stream_source_t *t) {
    char cursor[32] = "0";
    do {
        rkb_cmds_reset(t->cmds);
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "SCAN");
        rkb_cmds_args(t->cmds, cursor);
        rkb_cmds_args(t->cmds, "MATCH");
        rkb_cmds_args(t->cmds, t->pattern);
        rkb_cmds_args(t->cmds, "TYPE");
        rkb_cmds_args(t->cmds, "stream");
        rkb_cmds_args(t->cmds, "COUNT");
        rkb_cmds_arg_int(t->cmds, 1000);
        rkb_cmds_end(t->cmds);
        if (send_cmds(t))
            return STEP_TRANSIENT;
        const redisReply *reply = t->replies[0];
        if (reply->type == REDIS_REPLY_ERROR) {
            step_t st = reply_error(t, "SCAN", reply->str);
            rkb_redis_replies_free(t->replies, 1);
            return st == STEP_OK ? STEP_TRANSIENT : st;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[1]->type != REDIS_REPLY_ARRAY) {
            rkb_log_warn(t->component, "SCAN: unexpected reply");
            rkb_redis_replies_free(t->replies, 1);
            return STEP_TRANSIENT;
        }
        snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
        const redisReply *keys = reply->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || strlen(k->str) != (size_t)k->len)
                continue; /* names with NUL bytes are not supported */
            stream_t *s = stream_find(t, k->str, (size_t)k->len);
            if (s && (s->active || s->rejected))
                continue;
            if (s) { /* it was deleted, and is back */
                s->active = true;
                s->group_ready = false;
                s->recovering = true;
            } else {
                s = stream_add(t, k->str, false);
                if (!topic_name_ok(s->topic)) { /* said once: it stays rejected */
                    rkb_log_error(t->component,
                                  "%s matches redis.stream.pattern but gives topic '%s', which "
                                  "is not a legal Kafka topic name: not read (set topic)",
                                  s->name, s->topic);
                    s->active = false;
                    s->rejected = true;
                    continue;
                }
            }
            rkb_log_info(t->component, "%s: found by redis.stream.pattern '%s'; reading it",
                         s->name, t->pattern);
        }
        rkb_redis_replies_free(t->replies, 1);
    } while (strcmp(cursor, "0"));
    t->next_discovery = rkb_now_ms() + t->discovery_interval_ms;
    return STEP_OK;
}

/* Appends "XREADGROUP GROUP g c COUNT n [BLOCK b] STREAMS s... id..." over the streams the
 * read is for (live: every active stream, with ">"; recovery: those in the pass, from their
 * cursors); returns how many it named (0: no command added). */
static size_t add_read(rkb_stream_source_t *t, rkb_cmds_t *cmds, read_kind_t kind) {
    size_t cnt = 0;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        const stream_t *s = t->streams[i];
        cnt += kind == READ_LIVE ? s->active && s->group_ready : s->in_pass;
    }
    if (!cnt)
        return 0;
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "XREADGROUP");
    rkb_cmds_args(cmds, "GROUP");
    rkb_cmds_args(cmds, t->group);
    rkb_cmds_args(cmds, t->consumer);
    rkb_cmds_args(cmds, "COUNT");
    rkb_cmds_arg_int(cmds, t->batch_size);
    if (kind == READ_LIVE) {
        rkb_cmds_args(cmds, "BLOCK");
        rkb_cmds_arg_int(cmds, t->block_ms);
    }
    rkb_cmds_args(cmds, "STREAMS");
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < t->stream_cnt; i++) {
            const stream_t *s = t->streams[i];
            if (kind == READ_LIVE ? !(s->active && s->group_ready) : !s->in_pass)
                continue;
            if (pass == 0)
                rkb_cmds_args(cmds, s->name);
            else
                rkb_cmds_args(cmds, kind == READ_LIVE ? ">" : s->cursor);
        }
    }
    rkb_cmds_end(cmds);
    return cnt;
}

/* Element i of an XREADGROUP reply (an array): the stream it is for, with its entries, or NULL
 * when it is not [name, entries] of one of the task's streams. */
static stream_t *reply_stream(rkb_stream_source_t *t, const redisReply *reply, size_t i,
                              const redisReply **entries) {
    const redisReply *sr = reply->element[i];
    if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
        sr->element[0]->type != REDIS_REPLY_STRING || sr->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    *entries = sr->element[1];
    return stream_find(t, sr->element[0]->str, (size_t)sr->element[0]->len);
}

/*
 * The reply to one XREADGROUP (NULL: the round named no stream): the entries produced. A
 * recovery read that returns nothing for a stream ends the pass for it. acked: see
 * process_entries.
 */
static step_t handle_read(rkb_stream_source_t *t, read_kind_t kind, const redisReply *reply,
                          bool acked) {
    step_t result = STEP_OK;
    if (!reply || reply->type == REDIS_REPLY_NIL) {
        for (size_t i = 0; reply && i < t->stream_cnt; i++)
            t->streams[i]->in_pass = false; /* (a recovery read never answers nil) */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        result = reply_error(t, "XREADGROUP", reply->str);
    } else if (reply->type == REDIS_REPLY_ARRAY) {
        if (kind == READ_RECOVERY)
            for (size_t i = 0; i < t->stream_cnt; i++)
                t->streams[i]->in_pass = false; /* set again below where entries came */
        for (size_t i = 0; i < reply->elements && result == STEP_OK; i++) {
            const redisReply *entries;
            stream_t *s = reply_stream(t, reply, i, &entries);
            if (!s || !entries->elements)
                continue;
            t->stats.read += entries->elements;
            rkb_task_metrics_batch(rkb_task_metrics_current(), entries->elements);
            if (kind == READ_RECOVERY) {
                const redisReply *last = entries->element[entries->elements - 1];
                if (entry_ok(last)) {
                    snprintf(s->cursor, ID_MAX, "%s", last->element[0]->str);
                    s->in_pass = true;
                }
            }
            if (process_entries(t, s, entries, FROM_READ, acked))
                result = t->failed ? STEP_FAILED : STEP_TRANSIENT;
        }
    } else {
        rkb_log_warn(t->component, "XREADGROUP: unexpected reply (type %d)", reply->type);
        result = STEP_TRANSIENT;
    }
    return result;
}

/* One round trip, waited for: the XACKs that are due, then one XREADGROUP (new entries, or this
 * consumer's pending ones after each stream's cursor), and the entries produced. */
static step_t read_round(rkb_stream_source_t *t, read_kind_t kind) {
    rkb_cmds_reset(t->cmds);
    size_t ack_cnt = add_acks(t, t->cmds);
    size_t read_cnt = add_read(t, t->cmds, kind);
    size_t cnt = rkb_cmds_count(t->cmds);
    if (!cnt)
        return STEP_OK;
    if (send_cmds(t)) {
        settle_acks(t, NULL);
        return STEP_TRANSIENT;
    }
    settle_acks(t, t->replies);
    step_t result = handle_read(t, kind, read_cnt ? t->replies[ack_cnt] : NULL, false);
    rkb_redis_replies_free(t->replies, cnt);
    return result;
}

/* ---- pipelined live reads -------------------------------------------------------------------- */

static bool is_recovering(const stream_t *s) {
    return s->active && s->group_ready && s->recovering;
}

static bool any_recovering(const rkb_stream_source_t *t) {
    for (size_t i = 0; i < t->stream_cnt; i++)
        if (is_recovering(t->streams[i]))
            return true;
    return false;
}

/* Writes a live round (the XACKs that are due, then XREADGROUP ... >) without waiting for its
 * replies. Returns 0, or -1 when the connection failed (logged; the IDs stay to acknowledge). */
static int round_send(rkb_stream_source_t *t, read_round_t *round) {
    rkb_cmds_reset(round->cmds);
    round->ack_cnt = add_acks(t, round->cmds);
    round->read_cnt = add_read(t, round->cmds, READ_LIVE);
    round->cmd_cnt = rkb_cmds_count(round->cmds);
    round->got = 0;
    round->settled = false;
    round->acked = false;
    if (round->cmd_cnt > round->replies_cap) {
        round->replies_cap = round->cmd_cnt * 2;
        round->replies = rkb_realloc(round->replies, round->replies_cap * sizeof(*round->replies));
    }
    round->sent_us = rkb_now_us();
    for (size_t i = 0; i < round->cmd_cnt; i++) {
        size_t argc = (size_t)rkb_cmds_argc(round->cmds, i);
        if (argc > t->argv_cap) {
            t->argv_cap = argc * 2;
            t->argv = rkb_realloc(t->argv, t->argv_cap * sizeof(*t->argv));
            t->argvlen = rkb_realloc(t->argvlen, t->argv_cap * sizeof(*t->argvlen));
        }
        for (size_t j = 0; j < argc; j++)
            t->argv[j] = rkb_cmds_argv(round->cmds, i, (int)j, &t->argvlen[j]);
        char why[512];
        if (rkb_redis_send(t->redis, (int)argc, t->argv, t->argvlen, why, sizeof(why))) {
            rkb_log_warn(t->component, "%s", why);
            settle_acks(t, NULL);
            round->state = ROUND_IDLE;
            return -1;
        }
    }
    round->state = ROUND_SENT;
    return 0;
}

/* Reads the replies of a round that was sent (nothing to do otherwise) up to reply number upto,
 * settling its XACKs once their replies are in. A connection that fails or stays silent past
 * the command timeout is closed: STEP_TRANSIENT, and the round is gone (its entries stay
 * pending for the recovery pass after the reconnect). */
static step_t round_receive_upto(rkb_stream_source_t *t, read_round_t *round, size_t upto) {
    if (round->state != ROUND_SENT)
        return STEP_OK;
    for (; round->got < upto; round->got++) {
        char why[512];
        int err = rkb_redis_read(t->redis, t->redis_conf.command_timeout_ms,
                                 &round->replies[round->got], why, sizeof(why));
        if (!err && !round->replies[round->got]) {
            snprintf(why, sizeof(why), "redis: no reply within %d ms (command timeout)",
                     t->redis_conf.command_timeout_ms);
            rkb_redis_close(t->redis);
            err = RKB_REDIS_ERR_IO;
        }
        if (err) {
            rkb_log_warn(t->component, "%s", why);
            rkb_redis_replies_free(round->replies, round->got);
            if (!round->settled)
                settle_acks(t, NULL);
            round->state = ROUND_IDLE;
            return STEP_TRANSIENT;
        }
    }
    if (!round->settled && round->got >= round->ack_cnt) {
        settle_acks(t, round->replies);
        round->settled = true;
    }
    if (round->got == round->cmd_cnt) {
        rkb_task_metrics_redis_round_trip(rkb_task_metrics_current(), rkb_now_us() - round->sent_us,
                                          round->cmd_cnt);
        round->state = ROUND_RECEIVED;
    }
    return STEP_OK;
}

static step_t round_receive(rkb_stream_source_t *t, read_round_t *round) {
    return round_receive_upto(t, round, round->cmd_cnt);
}

/* The XREADGROUP reply of a received round, or NULL. */
static const redisReply *round_read_reply(const read_round_t *round) {
    return round->state == ROUND_RECEIVED && round->read_cnt ? round->replies[round->ack_cnt]
                                                             : NULL;
}

/* Frees a received round's replies; handle: produce its entries first. */
static step_t round_finish(rkb_stream_source_t *t, read_round_t *round, bool handle) {
    step_t result = STEP_OK;
    if (round->state != ROUND_RECEIVED)
        return result;
    if (handle)
        result = handle_read(t, READ_LIVE, round_read_reply(round), round->acked);
    rkb_redis_replies_free(round->replies, round->cmd_cnt);
    round->state = ROUND_IDLE;
    return result;
}

/* How many entries a received round brought, and whether some stream filled its COUNT (then
 * more are likely waiting). */
static size_t round_entries(rkb_stream_source_t *t, const read_round_t *round, bool *full) {
    const redisReply *reply = round_read_reply(round);
    size_t cnt = 0;
    *full = false;
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *entries;
        if (!reply_stream(t, reply, i, &entries))
            continue;
        cnt += entries->elements;
        *full |= entries->elements >= (size_t)t->batch_size;
    }
    return cnt;
}

/* At-most-once, reading ahead: every ID of a received round joins the XACK of the next one
 * (they are produced once that XACK is answered). */
static void ack_ahead(rkb_stream_source_t *t, read_round_t *round) {
    const redisReply *reply = round_read_reply(round);
    for (size_t i = 0; reply && reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *entries;
        stream_t *s = reply_stream(t, reply, i, &entries);
        for (size_t j = 0; s && j < entries->elements; j++)
            if (entry_ok(entries->element[j]))
                ack_add(s, entries->element[j]->element[0]->str);
    }
    round->acked = true;
}

/* Whether the next live read may go out before the entries in hand (coming) are produced: only
 * while nothing else is due that step() must see to first (a stop or pause, failed deliveries,
 * a recovery pass, claims, trimming, pending counts, discovery, backpressure). */
static bool may_read_ahead(rkb_stream_source_t *t, const volatile int *stop, size_t coming) {
    int64_t now = rkb_now_ms();
    return !*stop && !t->failed && !atomic_load(&t->ctl->pause) && !t->dr_errors &&
           t->inflight + coming < t->max_inflight && !any_recovering(t) &&
           rkb_redis_is_connected(t->redis) && now < t->next_claim &&
           (!t->trim_acked || now < t->next_trim) && now < t->next_pending &&
           (!t->pattern || now < t->next_discovery);
}

/*
 * Live reads, pipelined: while a round's entries are being produced, the next round is already
 * on its way, so that Redis reads batch N+1 while Kafka records are built for batch N.
 * At-least-once, the XACKs in a round are the IDs whose delivery reports came before it was
 * written, so nothing is acknowledged before Kafka has it. At-most-once, the next round carries
 * the XACK of batch N's IDs, and batch N is produced once that XACK is answered (the read
 * behind it still on its way). Returns with no round in flight. When producing a batch fails,
 * the round already sent is answered but its entries are left pending: every stream gets a
 * recovery pass, which reads them again.
 */
static step_t live_reads(rkb_stream_source_t *t, const volatile int *stop) {
    read_round_t *round = &t->rounds[0], *next = &t->rounds[1];
    if (round_send(t, round))
        return STEP_TRANSIENT;
    for (;;) {
        step_t result = round_receive(t, round);
        if (result != STEP_OK)
            return result;
        rkb_producer_poll(t->producer, 0); /* their acknowledgements go out with the next round */
        bool full;
        size_t coming = round_entries(t, round, &full);
        bool ahead = full && may_read_ahead(t, stop, coming);
        if (ahead && t->at_most_once)
            ack_ahead(t, round);
        bool sent = ahead && !round_send(t, next);
        if (sent && t->at_most_once && round_receive_upto(t, next, next->ack_cnt) != STEP_OK) {
            /* Whether Redis acknowledged them is unknown: at-most-once, they are not produced. */
            round_finish(t, round, false);
            return STEP_TRANSIENT;
        }
        if (ahead && !sent && t->at_most_once) {
            round_finish(t, round, false); /* their IDs wait in the XACK lists */
            return STEP_TRANSIENT;
        }
        result = round_finish(t, round, true);
        if (!sent)
            return ahead ? STEP_TRANSIENT : result;
        if (result != STEP_OK) {
            round_receive(t, next);
            round_finish(t, next, false);
            return result;
        }
        read_round_t *handled = round;
        round = next;
        next = handled;
    }
}

/* The recovery pass (SEMANTICS.md §4.3 step 2) over every stream marked recovering, once none
 * of their records is in flight any more (a record in flight is pending too: reading it again
 * now would produce it twice). */
static step_t recover(rkb_stream_source_t *t, const volatile int *stop) {
    drain(t, stop, is_recovering, NULL);
    if (*stop)
        return STEP_OK;
    uint64_t read_before = t->stats.read;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        if (!is_recovering(s))
            continue;
        s->recovering = false;
        s->in_pass = true;
        snprintf(s->cursor, ID_MAX, "0");
    }
    step_t result = STEP_OK;
    for (;;) {
        bool any = false;
        for (size_t i = 0; i < t->stream_cnt; i++)
            any |= t->streams[i]->in_pass;
        if (!any || *stop || result != STEP_OK)
            break;
        wait_for_room(t, stop);
        result = read_round(t, READ_RECOVERY);
    }
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        if (s->in_pass) /* interrupted: the next pass starts over from 0 */
            s->recovering = true;
        s->in_pass = false;
    }
    if (t->stats.read > read_before)
        rkb_log_info(t->component,
                     "recovery: %llu entries pending for consumer %s read again from 0",
                     (unsigned long long)(t->stats.read - read_before), t->consumer);
    return result;
}

/* XAUTOCLAIM over one stream's PEL, cursor by cursor until the scan wraps to 0-0. */
static step_t claim_stream(rkb_stream_source_t *t, stream_t *s, const volatile int *stop) {
    char cursor[ID_MAX] = "0-0";
    uint64_t claimed_before = t->stats.claimed;
    do {
        wait_for_room(t, stop);
        rkb_cmds_reset(t->cmds);
        size_t ack_cnt = add_acks(t, t->cmds);
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "XAUTOCLAIM");
        rkb_cmds_args(t->cmds, s->name);
        rkb_cmds_args(t->cmds, t->group);
        rkb_cmds_args(t->cmds, t->consumer);
        rkb_cmds_arg_int(t->cmds, t->claim_min_idle_ms);
        rkb_cmds_args(t->cmds, cursor);
        rkb_cmds_args(t->cmds, "COUNT");
        rkb_cmds_arg_int(t->cmds, t->batch_size);
        size_t cnt = rkb_cmds_end(t->cmds) + 1;
        if (send_cmds(t)) {
            settle_acks(t, NULL);
            return STEP_TRANSIENT;
        }
        settle_acks(t, t->replies);
        const redisReply *reply = t->replies[ack_cnt];
        step_t result = STEP_OK;
        if (reply->type == REDIS_REPLY_ERROR) {
            result = reply_error(t, "XAUTOCLAIM", reply->str);
            snprintf(cursor, sizeof(cursor), "0-0");
        } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
                   reply->element[0]->type != REDIS_REPLY_STRING ||
                   reply->element[0]->len >= ID_MAX ||
                   reply->element[1]->type != REDIS_REPLY_ARRAY) {
            rkb_log_warn(t->component, "XAUTOCLAIM %s: unexpected reply", s->name);
            result = STEP_TRANSIENT;
        } else {
            snprintf(cursor, sizeof(cursor), "%s", reply->element[0]->str);
            /* Element 3 (7.0+): pending IDs found deleted; XAUTOCLAIM already removed them
             * from the PEL. */
            const redisReply *deleted = reply->elements > 2 ? reply->element[2] : NULL;
            if (deleted && deleted->type == REDIS_REPLY_ARRAY && deleted->elements) {
                rkb_buf_t ids;
                rkb_buf_init(&ids);
                for (size_t i = 0; i < deleted->elements && i < LOST_IDS_LOGGED; i++)
                    rkb_buf_appendf(&ids, "%s%s", i ? ", " : "",
                                    deleted->element[i]->str ? deleted->element[i]->str : "?");
                if (deleted->elements > LOST_IDS_LOGGED)
                    rkb_buf_appends(&ids, ", ...");
                t->stats.lost += deleted->elements;
                log_lost(t, s, ids.data, deleted->elements,
                         "left by another consumer had been deleted or trimmed");
                rkb_buf_free(&ids);
            }
            if (process_entries(t, s, reply->element[1], FROM_CLAIM, false))
                result = t->failed ? STEP_FAILED : STEP_TRANSIENT;
        }
        rkb_redis_replies_free(t->replies, cnt);
        if (result != STEP_OK)
            return result;
    } while (strcmp(cursor, "0-0") && !*stop);
    if (t->stats.claimed > claimed_before)
        rkb_log_info(t->component,
                     "%s: claimed %llu entries other consumers left pending for over %lld ms",
                     s->name, (unsigned long long)(t->stats.claimed - claimed_before),
                     (long long)t->claim_min_idle_ms);
    return STEP_OK;
}

/* Every claim interval: for each stream, once our own records of it are delivered and
 * acknowledged (so that XAUTOCLAIM cannot hand us back one of our own in flight), claim. */
static step_t claim(rkb_stream_source_t *t, const volatile int *stop) {
    for (size_t i = 0; i < t->stream_cnt && !*stop; i++) {
        stream_t *s = t->streams[i];
        if (!s->active || !s->group_ready)
            continue;
        drain(t, stop, NULL, s);
        if (flush_acks(t))
            return STEP_TRANSIENT;
        if (s->recovering) /* a failed report: the recovery pass comes first */
            continue;
        step_t result = claim_stream(t, s, stop);
        if (result != STEP_OK)
            return result;
    }
    t->next_claim = rkb_now_ms() + t->claim_interval_ms;
    return STEP_OK;
}

/*
 * XTRIM MINID at the lowest ID some group of the stream still needs, in one script so that no
 * group reads, acknowledges or is created between the look and the trim. IDs are compared as
 * (ms, seq) pairs of decimal strings (Lua numbers lose precision above 2^53).
 */
static const char trim_script[] =
    "local function num_lt(a, b)\n"
    "  if #a ~= #b then return #a < #b end\n"
    "  return a < b\n"
    "end\n"
    "local function split(id)\n"
    "  local ms, seq = string.match(id, '^(%d+)-(%d+)$')\n"
    "  return ms, seq\n"
    "end\n"
    "local function id_lt(a, b)\n"
    "  local ams, aseq = split(a)\n"
    "  local bms, bseq = split(b)\n"
    "  if ams ~= bms then return num_lt(ams, bms) end\n"
    "  return num_lt(aseq, bseq)\n"
    "end\n"
    "local function incr(n)\n"
    "  local digits, i, carry = {}, #n, 1\n"
    "  for j = 1, #n do digits[j] = string.byte(n, j) - 48 end\n"
    "  while carry == 1 and i >= 1 do\n"
    "    digits[i] = digits[i] + 1\n"
    "    if digits[i] == 10 then digits[i] = 0 else carry = 0 end\n"
    "    i = i - 1\n"
    "  end\n"
    "  local out = carry == 1 and '1' or ''\n"
    "  for j = 1, #n do out = out .. digits[j] end\n"
    "  return out\n"
    "end\n"
    "local function successor(id)\n"
    "  local ms, seq = split(id)\n"
    "  if seq == '18446744073709551615' then return incr(ms) .. '-0' end\n"
    "  return ms .. '-' .. incr(seq)\n"
    "end\n"
    "local safe = nil\n"
    "for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
    "  local info = {}\n"
    "  for i = 1, #g, 2 do info[g[i]] = g[i + 1] end\n"
    "  local candidate\n"
    "  if info['pending'] > 0 then\n"
    "    candidate = redis.call('XPENDING', KEYS[1], info['name'])[2]\n"
    "  else\n"
    "    candidate = successor(info['last-delivered-id'])\n"
    "  end\n"
    "  if safe == nil or id_lt(candidate, safe) then safe = candidate end\n"
    "end\n"
    "if safe == nil then return {0, ''} end\n"
    "return {redis.call('XTRIM', KEYS[1], 'MINID', safe), safe}\n";

static step_t trim(rkb_stream_source_t *t) {
    for (size_t i = 0; i < t->stream_cnt; i++) {
        stream_t *s = t->streams[i];
        if (!s->active || !s->acked_since_trim)
            continue;
        s->acked_since_trim = false;
        rkb_cmds_reset(t->cmds);
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "EVAL");
        rkb_cmds_args(t->cmds, trim_script);
        rkb_cmds_args(t->cmds, "1");
        rkb_cmds_args(t->cmds, s->name);
        rkb_cmds_end(t->cmds);
        if (send_cmds(t))
            return STEP_TRANSIENT;
        const redisReply *reply = t->replies[0];
        if (reply->type == REDIS_REPLY_ERROR)
            rkb_log_warn(t->component, "%s: trimming acknowledged entries: %s", s->name,
                         reply->str);
        else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                 reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer)
            rkb_log_debug(t->component, "%s: XTRIM MINID %s removed %lld entries", s->name,
                          reply->element[1]->str ? reply->element[1]->str : "?",
                          reply->element[0]->integer);
        rkb_redis_replies_free(t->replies, 1);
    }
    t->next_trim = rkb_now_ms() + TRIM_INTERVAL_MS;
    return STEP_OK;
}

/* Counts each stream's pending entries for GET /metrics: XPENDING's summary, the whole group's
 * (what operators watch: entries handed out and not acknowledged yet), at most once per
 * PENDING_INTERVAL_MS. */
static step_t count_pending(rkb_stream_source_t *t) {
    t->next_pending = rkb_now_ms() + PENDING_INTERVAL_MS;
    rkb_cmds_reset(t->cmds);
    for (size_t i = 0; i < t->stream_cnt; i++) {
        const stream_t *s = t->streams[i];
        if (!s->active || !s->group_ready)
            continue;
        rkb_cmds_begin(t->cmds);
        rkb_cmds_args(t->cmds, "XPENDING");
        rkb_cmds_args(t->cmds, s->name);
        rkb_cmds_args(t->cmds, t->group);
        rkb_cmds_end(t->cmds);
    }
    size_t cnt = rkb_cmds_count(t->cmds);
    if (!cnt)
        return STEP_OK;
    if (send_cmds(t))
        return STEP_TRANSIENT;
    size_t r = 0;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        const stream_t *s = t->streams[i];
        if (!s->active || !s->group_ready)
            continue;
        const redisReply *reply = t->replies[r++];
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
            reply->element[0]->type == REDIS_REPLY_INTEGER)
            rkb_task_metrics_stream_pending(rkb_task_metrics_current(), s->name,
                                            reply->element[0]->integer);
    }
    rkb_redis_replies_free(t->replies, cnt);
    return STEP_OK;
}

/* ---- the loop -------------------------------------------------------------------------------- */

static bool any_active(const rkb_stream_source_t *t) {
    for (size_t i = 0; i < t->stream_cnt; i++)
        if (t->streams[i]->active && t->streams[i]->group_ready)
            return true;
    return false;
}

/* True (with t->failed set) when the producer failed fatally. */
static bool producer_failed(rkb_stream_source_t *t) {
    char why[512];
    if (!rkb_producer_fatal_error(t->producer, why, sizeof(why)))
        return false;
    t->failed = true;
    snprintf(t->failure, sizeof(t->failure), "kafka producer failed fatally: %s", why);
    return true;
}

/* One turn of the loop. The order carries the guarantees: delivery reports first (they fill the
 * XACK lists), then whatever the connection needs, the recovery pass before any new read, and
 * claims only after our own records are settled. */
static step_t step(rkb_stream_source_t *t, const volatile int *stop) {
    rkb_producer_poll(t->producer, 0);
    if (t->dr_errors) {
        if (producer_failed(t))
            return STEP_FAILED;
        rkb_log_warn(t->component, "%llu records not delivered (last: %s); %s",
                     (unsigned long long)t->dr_errors, t->dr_error,
                     t->at_most_once ? "at-most-once: they are lost"
                                     : "their entries stay pending and are produced again");
        t->dr_errors = 0;
        if (!t->at_most_once)
            return STEP_TRANSIENT;
    }
    step_t st = ensure_connected(t);
    if (st == STEP_OK && t->pattern && rkb_now_ms() >= t->next_discovery)
        st = discover(t);
    if (st == STEP_OK)
        st = ensure_groups(t);
    if (st == STEP_OK && any_recovering(t))
        st = recover(t, stop);
    if (st == STEP_OK && rkb_now_ms() >= t->next_claim)
        st = claim(t, stop);
    if (st == STEP_OK && t->trim_acked && rkb_now_ms() >= t->next_trim)
        st = trim(t);
    if (st == STEP_OK && rkb_now_ms() >= t->next_pending)
        st = count_pending(t);
    if (st != STEP_OK || *stop)
        return st;

    if (t->inflight >= t->max_inflight) { /* backpressure: Kafka is behind */
        rkb_producer_poll(t->producer, 10);
        return STEP_OK;
    }
    if (!any_active(t)) {
        if (flush_acks(t))
            return STEP_TRANSIENT;
        rkb_producer_poll(t->producer, (int)t->block_ms);
        return STEP_OK;
    }
    return live_reads(t, stop);
}

/* Shutdown (SEMANTICS.md §4.3 step 7): reads have stopped; wait (bounded) for the delivery
 * reports, close the producer (what is left fails and stays pending), then XACK what was
 * delivered. */
static void shut_down(rkb_stream_source_t *t) {
    int left = rkb_producer_flush(t->producer, SHUTDOWN_FLUSH_MS);
    rkb_producer_destroy(t->producer, 0);
    t->producer = NULL;
    if (left)
        rkb_log_warn(t->component,
                     "%d records not delivered at shutdown: their entries stay pending and are "
                     "produced again on the next start",
                     left);
    if (acks_pending(t)) {
        char why[512];
        if (!rkb_redis_is_connected(t->redis) &&
            rkb_redis_connect(t->redis, why, sizeof(why)) != RKB_REDIS_OK)
            rkb_log_warn(t->component, "%s", why);
        size_t pending = acks_pending(t);
        if (flush_acks(t))
            rkb_log_warn(t->component,
                         "%zu delivered entries could not be acknowledged: they will be produced "
                         "again on the next start",
                         pending);
    }
    rkb_redis_close(t->redis);
}

/* Before the first read: the producer learns the configured streams' topics now, rather than at
 * librdkafka's next scan of unknown topics, up to a second later (its first broker connection
 * is not up yet when the first record is queued), with the first batches waiting in its queue.
 * Bounded: with Kafka unreachable the task starts reading after PREPARE_TOPICS_MS anyway
 * (records wait in librdkafka's queue, as they would have). Streams found later by the pattern
 * need nothing: their topic's metadata query starts with their first record, on a producer that
 * is connected by then. */
static void prepare_topics(rkb_stream_source_t *t) {
    int64_t until = rkb_now_ms() + PREPARE_TOPICS_MS;
    for (size_t i = 0; i < t->stream_cnt; i++) {
        char why[512];
        int64_t left = until - rkb_now_ms();
        if (left <= 0)
            break;
        if (rkb_producer_prepare_topic(t->producer, t->streams[i]->topic, (int)left, why,
                                       sizeof(why)))
            rkb_log_debug(t->component, "%s", why);
    }
}

static void log_started(rkb_stream_source_t *t) {
    rkb_buf_t names;
    rkb_buf_init(&names);
    for (size_t i = 0; i < t->stream_cnt; i++)
        rkb_buf_appendf(&names, "%s%s", i ? "," : "", t->streams[i]->name);
    char where[256];
    rkb_log_info(t->component,
                 "stream source started: streams %s%s%s%s → topic %s as consumer %s of group %s "
                 "(redis %s), %s",
                 t->stream_cnt ? names.data : "(none yet)",
                 t->pattern ? " and those matching '" : "", t->pattern ? t->pattern : "",
                 t->pattern ? "'" : "", t->topic_template, t->consumer, t->group,
                 rkb_redis_conf_describe(&t->redis_conf, where, sizeof(where)),
                 t->at_most_once ? "at-most-once" : "at-least-once");
    rkb_buf_free(&names);
}

int rkb_stream_source_run(rkb_stream_source_t *t, rkb_task_ctl_t *ctl, char *errstr,
                          size_t errstr_size) {
    const volatile int *stop = rkb_task_ctl_stop(ctl);
    t->ctl = ctl;
    t->producer = rkb_connect_producer_new(t->conf, t->task_id, NULL, t->component, on_delivery, t,
                                           errstr, errstr_size);
    if (!t->producer)
        return -1;
    log_started(t);
    prepare_topics(t);

    while (!*stop && !t->failed) {
        /* Paused (connect/task_ctl.h): no reads; the records in flight get their delivery
         * reports and their entries their XACK, and only then is the pause reported. */
        if (rkb_task_ctl_hold(ctl, !t->inflight && !acks_pending(t))) {
            rkb_producer_poll(t->producer, 50);
            if (!t->inflight && acks_pending(t))
                flush_acks(t);
            continue;
        }
        step_t st = step(t, stop);
        if (st == STEP_FAILED)
            break;
        if (st == STEP_OK) {
            /* Redis answers again; after failed deliveries, only a delivered record counts. */
            if (t->attempt && !t->dr_failing) {
                rkb_log_info(t->component, "reads resume after %d retries", t->attempt);
                t->attempt = 0;
            }
            continue;
        }
        /* Transient: reads pause; delivery reports keep being served while we wait. */
        if (!t->attempt)
            rkb_log_warn(t->component, "pausing reads; retrying with backoff");
        t->stats.retries++;
        int64_t until = rkb_now_ms() + rkb_backoff_ms(t->attempt++, 100, RETRY_DELAY_MAX_MS);
        while (!*stop && rkb_now_ms() < until)
            rkb_producer_poll(t->producer, 50);
    }

    shut_down(t);
    rkb_log_info(t->component,
                 "stream source stopped: %llu read, %llu produced, %llu acked, %llu lost, "
                 "%llu claimed, %llu failed deliveries, %llu missing fields",
                 (unsigned long long)t->stats.read, (unsigned long long)t->stats.produced,
                 (unsigned long long)t->stats.acked, (unsigned long long)t->stats.lost,
                 (unsigned long long)t->stats.claimed, (unsigned long long)t->stats.failed,
                 (unsigned long long)t->stats.missing);
    if (t->failed) {
        snprintf(errstr, errstr_size, "%s", t->failure);
        return -1;
    }
    return 0;
}

const rkb_stream_source_stats_t *rkb_stream_source_stats(const rkb_stream_source_t *t) {
    return &t->stats;
}

void rkb_stream_source_destroy(rkb_stream_source_t *t) {
    if (!t)
        return;
    rkb_producer_destroy(t->producer, 0); /* first: its last reports point at the streams */
    for (size_t i = 0; i < t->stream_cnt; i++)
        stream_free(t->streams[i]);
    free(t->streams);
    rkb_redis_destroy(t->redis);
    rkb_redis_conf_clear(&t->redis_conf);
    rkb_cmds_destroy(t->cmds);
    rkb_cmds_destroy(t->ack_cmds);
    for (size_t i = 0; i < RKB_ARRAY_SIZE(t->rounds); i++) {
        read_round_t *round = &t->rounds[i];
        if (round->state == ROUND_RECEIVED)
            rkb_redis_replies_free(round->replies, round->cmd_cnt);
        rkb_cmds_destroy(round->cmds);
        free(round->replies);
    }
    free(t->argv);
    free(t->argvlen);
    free(t->replies);
    free(t->value);
    for (size_t i = 0; i < t->rec_slab_cnt; i++)
        free(t->rec_slabs[i]);
    free(t->rec_slabs);
    free(t->group);
    free(t->consumer);
    free(t);
}
