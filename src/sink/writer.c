/*
 * writer.c — the sink's data mapping: one converted record (convert/) in, the Redis commands
 * that apply it out, appended to the batch (redis/ rkb_cmds_t) that the sink sends as one
 * pipeline. See writer.h for the table of types, commands, tombstones and TTLs.
 *
 * Everything that can fail for a record (templates, JSON, numbers, the TTL header) is worked
 * out before the first command is appended, and a failure truncates the batch back to where it
 * was, so a bad record never leaves half its commands in a batch.
 *
 * @locality a writer belongs to one sink task thread; its templates are read-only after
 * rkb_writer_new, its scratch buffer is the task's.
 */
#include "sink/writer.h"

#include "convert/convert.h"
#include "process/cache.h"
#include "tmpl/tmpl.h"
#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* User text quoted in a message is cut to this many bytes. */
#define QUOTE_MAX 64

#define NULL_KEY_MESSAGE                                                                           \
    "the record key is null; STRING/HASH/JSON keys need one (or set redis.key.template)"

static const char *const type_names[] = {
    [RKB_TYPE_STRING] = "STRING", [RKB_TYPE_HASH] = "HASH",
    [RKB_TYPE_JSON] = "JSON",     [RKB_TYPE_STREAM] = "STREAM",
    [RKB_TYPE_LIST] = "LIST",     [RKB_TYPE_SET] = "SET",
    [RKB_TYPE_ZSET] = "ZSET",     [RKB_TYPE_TIMESERIES] = "TIMESERIES",
    [RKB_TYPE_PUBSUB] = "PUBSUB", [RKB_TYPE_COUNTER] = "COUNTER",
    [RKB_TYPE_CACHE] = "CACHE",   [RKB_TYPE_WINDOW] = "WINDOW",
    [RKB_TYPE_NONE] = "NONE",
};

int rkb_redis_type_parse(const char *name, rkb_redis_type_t *type) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(type_names); i++) {
        if (!strcasecmp(name, type_names[i])) {
            *type = (rkb_redis_type_t)i;
            return 0;
        }
    }
    return -1;
}

const char *rkb_redis_type_name(rkb_redis_type_t type) {
    if ((size_t)type >= RKB_ARRAY_SIZE(type_names))
        return "UNKNOWN";
    return type_names[type];
}

/* A flat object with more members takes the JSON tree path. */
#define FLAT_MAX_FIELDS 64

struct rkb_writer_s {
    rkb_redis_type_t type;
    rkb_tmpl_t *key_template; /* redis.key.template, or NULL: the keyspace rule */
    rkb_tmpl_t *keyspace;     /* NULL when unused (a key template, or an empty keyspace) */
    char *separator;
    bool key_is_record_key;   /* STRING/HASH/JSON: the key ends with the record key */
    rkb_tmpl_t *record_key;   /* "${key}", for that rule */
    rkb_tmpl_t *member;       /* LIST, SET, ZSET */
    rkb_tmpl_t *score;        /* ZSET score, TIMESERIES value */
    rkb_tmpl_t *ts_timestamp; /* TIMESERIES */
    rkb_tmpl_t *increment;    /* COUNTER */
    rkb_tmpl_t *hash_field;   /* COUNTER: NULL for INCRBY, set for HINCRBY */
    rkb_cache_t *cache;       /* CACHE */
    int64_t value_max_bytes;  /* 0: no limit */
    bool push_left;
    int64_t stream_maxlen;
    int64_t ttl_seconds;
    bool in_transaction;
    /* Every expansion of a record lands here, one after the other (spans below), so a warmed-up
     * writer allocates nothing per record. */
    rkb_buf_t scratch;
    /* HASH and STREAM: the members of a flat object value, scanned without a JSON tree
     * (rkb_json_flat_scan); flat_cnt of them for the record being encoded, -1: none. */
    rkb_json_field_t flat[FLAT_MAX_FIELDS];
    int flat_cnt;
};

/* A piece of w->scratch. Offsets, not pointers: the buffer moves when it grows. */
typedef struct {
    size_t off;
    size_t len;
} span_t;

static const char *span_data(const rkb_writer_t *w, span_t span) {
    return w->scratch.data + span.off;
}

/* Drops what scratch holds after offset mark (a value already copied into the batch). */
static void scratch_cut(rkb_writer_t *w, size_t mark) {
    w->scratch.len = mark;
    w->scratch.data[mark] = '\0';
}

static bool key_from_record_key(rkb_redis_type_t type) {
    return type == RKB_TYPE_STRING || type == RKB_TYPE_HASH || type == RKB_TYPE_JSON ||
           type == RKB_TYPE_CACHE;
}

/* Parses the template of config key conf_key; text NULL or "" takes default_text. */
static int compile(rkb_tmpl_t **tmpl, const char *conf_key, const char *text,
                   const char *default_text, char *errstr, size_t errstr_size) {
    char reason[256];
    *tmpl = rkb_tmpl_parse(text && *text ? text : default_text, reason, sizeof(reason));
    if (!*tmpl) {
        snprintf(errstr, errstr_size, "%s: %s", conf_key, reason);
        return -1;
    }
    return 0;
}

rkb_writer_t *rkb_writer_new(const rkb_writer_conf_t *wc, char *errstr, size_t errstr_size) {
    if ((size_t)wc->type >= RKB_ARRAY_SIZE(type_names)) {
        snprintf(errstr, errstr_size, "redis.type: unknown type %d", (int)wc->type);
        return NULL;
    }
    rkb_writer_t *w = rkb_calloc(1, sizeof(*w));
    w->type = wc->type;
    w->separator = rkb_strdup(wc->separator ? wc->separator : ":");
    w->push_left = wc->push_left;
    w->stream_maxlen = wc->stream_maxlen > 0 ? wc->stream_maxlen : 0;
    w->ttl_seconds = wc->ttl_seconds > 0 ? wc->ttl_seconds : 0;
    w->in_transaction = wc->in_transaction;
    w->value_max_bytes = wc->value_max_bytes > 0 ? wc->value_max_bytes : 0;
    rkb_buf_init(&w->scratch);

    if (wc->key_template && *wc->key_template) {
        if (compile(&w->key_template, "redis.key.template", wc->key_template, NULL, errstr,
                    errstr_size))
            goto fail;
    } else {
        const char *keyspace = wc->keyspace ? wc->keyspace : "${topic}";
        if (key_from_record_key(wc->type)) {
            w->key_is_record_key = true;
            if (compile(&w->record_key, "redis.keyspace", "${key}", NULL, errstr, errstr_size))
                goto fail;
        } else if (!*keyspace) {
            snprintf(errstr, errstr_size,
                     "redis.keyspace: must not be empty for %s (the keyspace is the key; or set "
                     "redis.key.template)",
                     type_names[wc->type]);
            goto fail;
        }
        if (*keyspace &&
            compile(&w->keyspace, "redis.keyspace", keyspace, NULL, errstr, errstr_size))
            goto fail;
    }

    /* Defaults follow redis-kafka-connect: the record key is the member and the timeseries
     * timestamp, the value is the score and the timeseries value. */
    switch (wc->type) {
    case RKB_TYPE_CACHE: {
        if (!wc->cache) {
            snprintf(errstr, errstr_size, "redis.type: CACHE needs the redis.cache.* settings");
            goto fail;
        }
        rkb_cache_conf_t cc = *wc->cache;
        cc.ttl_seconds = w->ttl_seconds;
        w->cache = rkb_cache_new(&cc, errstr, errstr_size);
        if (!w->cache)
            goto fail;
        break;
    }
    case RKB_TYPE_ZSET:
        if (compile(&w->score, "redis.score", wc->score, "${value}", errstr, errstr_size))
            goto fail;
        /* fall through */
    case RKB_TYPE_LIST:
    case RKB_TYPE_SET:
        if (compile(&w->member, "redis.member", wc->member, "${key}", errstr, errstr_size))
            goto fail;
        break;
    case RKB_TYPE_TIMESERIES:
        if (compile(&w->score, "redis.score", wc->score, "${value}", errstr, errstr_size) ||
            compile(&w->ts_timestamp, "redis.timeseries.timestamp", wc->ts_timestamp, "${key}",
                    errstr, errstr_size))
            goto fail;
        break;
    case RKB_TYPE_COUNTER:
        if (compile(&w->increment, "redis.increment", wc->increment, "${value}", errstr,
                    errstr_size))
            goto fail;
        if (wc->hash_field && *wc->hash_field &&
            compile(&w->hash_field, "redis.hash.field", wc->hash_field, NULL, errstr, errstr_size))
            goto fail;
        break;
    default:
        break;
    }
    return w;

fail:
    rkb_writer_destroy(w);
    return NULL;
}

void rkb_writer_destroy(rkb_writer_t *w) {
    if (!w)
        return;
    rkb_cache_destroy(w->cache);
    rkb_tmpl_destroy(w->key_template);
    rkb_tmpl_destroy(w->keyspace);
    rkb_tmpl_destroy(w->record_key);
    rkb_tmpl_destroy(w->member);
    rkb_tmpl_destroy(w->score);
    rkb_tmpl_destroy(w->ts_timestamp);
    rkb_tmpl_destroy(w->increment);
    rkb_tmpl_destroy(w->hash_field);
    free(w->separator);
    rkb_buf_free(&w->scratch);
    free(w);
}

/* Appends the expansion of tmpl to the scratch buffer and sets *span to it. Errors name the
 * config key the template came from. */
static int expand(rkb_writer_t *w, const rkb_tmpl_t *tmpl, const char *conf_key, rkb_record_t *rec,
                  span_t *span, char *errstr, size_t errstr_size) {
    char reason[384];
    span->off = w->scratch.len;
    if (rkb_tmpl_expand(tmpl, rec, &w->scratch, reason, sizeof(reason))) {
        snprintf(errstr, errstr_size, "%s: %s", conf_key, reason);
        return -1;
    }
    span->len = w->scratch.len - span->off;
    return 0;
}

static int build_key(rkb_writer_t *w, rkb_record_t *rec, span_t *key, char *errstr,
                     size_t errstr_size) {
    if (w->key_template)
        return expand(w, w->key_template, "redis.key.template", rec, key, errstr, errstr_size);
    if (!w->key_is_record_key)
        return expand(w, w->keyspace, "redis.keyspace", rec, key, errstr, errstr_size);

    if (!rec->key) {
        snprintf(errstr, errstr_size, NULL_KEY_MESSAGE);
        return -1;
    }
    key->off = w->scratch.len;
    span_t part;
    if (w->keyspace) {
        if (expand(w, w->keyspace, "redis.keyspace", rec, &part, errstr, errstr_size))
            return -1;
        rkb_buf_appends(&w->scratch, w->separator);
    }
    /* Only a json key converter reading "null" can fail here. */
    char reason[256];
    if (rkb_tmpl_expand(w->record_key, rec, &w->scratch, reason, sizeof(reason))) {
        snprintf(errstr, errstr_size, NULL_KEY_MESSAGE);
        return -1;
    }
    key->len = w->scratch.len - key->off;
    return 0;
}

/* The TTL of this record in seconds, 0 for none: the header wins over the config. */
static int record_ttl(const rkb_writer_t *w, const rkb_record_t *rec, int64_t *ttl, char *errstr,
                      size_t errstr_size) {
    *ttl = w->ttl_seconds;
    const void *val;
    size_t len;
    if (!rec->header_get || rec->header_get(rec, RKB_TTL_HEADER, &val, &len) || !val)
        return 0;
    char text[32];
    int64_t seconds;
    if (len >= sizeof(text) || memchr(val, '\0', len)) {
        seconds = 0;
        goto bad;
    }
    memcpy(text, val, len);
    text[len] = '\0';
    if (rkb_parse_int64(text, INT64_MIN, INT64_MAX, &seconds))
        goto bad;
    *ttl = seconds > 0 ? seconds : 0;
    return 0;

bad:
    snprintf(errstr, errstr_size, "header " RKB_TTL_HEADER ": '%.*s' is not an integer",
             (int)(len < QUOTE_MAX ? len : QUOTE_MAX), (const char *)val);
    return -1;
}

static void not_a_number(const char *conf_key, const rkb_writer_t *w, span_t text, char *errstr,
                         size_t errstr_size) {
    snprintf(errstr, errstr_size, "%s: '%.*s' is not a number", conf_key,
             (int)(text.len < QUOTE_MAX ? text.len : QUOTE_MAX), span_data(w, text));
}

/* Expands a number template (ZSET score, TIMESERIES value) and checks it. */
static int expand_number(rkb_writer_t *w, const rkb_tmpl_t *tmpl, const char *conf_key,
                         rkb_record_t *rec, double *number, char *errstr, size_t errstr_size) {
    span_t text;
    if (expand(w, tmpl, conf_key, rec, &text, errstr, errstr_size))
        return -1;
    const char *data = span_data(w, text);
    /* The expansion is last in scratch, so it is NUL-terminated; a NUL inside is garbage. */
    if (strlen(data) != text.len || rkb_parse_double(data, number)) {
        not_a_number(conf_key, w, text, errstr, errstr_size);
        return -1;
    }
    scratch_cut(w, text.off); /* the number is kept as a double */
    return 0;
}

/* A COUNTER increment: an integer goes to INCRBY/HINCRBY, any other finite number to
 * INCRBYFLOAT/HINCRBYFLOAT (Redis refuses a decimal in INCRBY). */
typedef struct {
    bool is_integer;
    int64_t integer;
    double decimal;
} increment_t;

static int expand_increment(rkb_writer_t *w, rkb_record_t *rec, increment_t *increment,
                            char *errstr, size_t errstr_size) {
    span_t text;
    if (expand(w, w->increment, "redis.increment", rec, &text, errstr, errstr_size))
        return -1;
    const char *data = span_data(w, text);
    bool nul_free = strlen(data) == text.len; /* as in expand_number */
    if (nul_free && !rkb_parse_int64(data, INT64_MIN, INT64_MAX, &increment->integer)) {
        increment->is_integer = true;
    } else if (nul_free && !rkb_parse_double(data, &increment->decimal)) {
        increment->is_integer = false;
    } else {
        not_a_number("redis.increment", w, text, errstr, errstr_size);
        return -1;
    }
    scratch_cut(w, text.off);
    return 0;
}

/* A TIMESERIES timestamp: milliseconds >= 0, or -1 for "*" (Redis's clock). */
static int expand_ts(rkb_writer_t *w, rkb_record_t *rec, int64_t *ts, char *errstr,
                     size_t errstr_size) {
    span_t text;
    if (expand(w, w->ts_timestamp, "redis.timeseries.timestamp", rec, &text, errstr, errstr_size))
        return -1;
    const char *data = span_data(w, text);
    if (!strcmp(data, "*"))
        *ts = -1;
    else if (strlen(data) != text.len || rkb_parse_int64(data, 0, INT64_MAX, ts)) {
        snprintf(errstr, errstr_size,
                 "redis.timeseries.timestamp: '%.*s' is not a timestamp (milliseconds >= 0, or "
                 "'*')",
                 (int)(text.len < QUOTE_MAX ? text.len : QUOTE_MAX), data);
        return -1;
    }
    scratch_cut(w, text.off);
    return 0;
}

static void arg_span(rkb_cmds_t *cmds, const rkb_writer_t *w, span_t span) {
    rkb_cmds_arg(cmds, span_data(w, span), span.len);
}

static void arg_double(rkb_cmds_t *cmds, rkb_writer_t *w, double number) {
    size_t mark = w->scratch.len;
    rkb_double_to_text(number, &w->scratch);
    rkb_cmds_arg(cmds, w->scratch.data + mark, w->scratch.len - mark);
    scratch_cut(w, mark);
}

static size_t count_non_null_members(const json_t *object) {
    const char *name;
    json_t *member;
    size_t cnt = 0;
    json_object_foreach((json_t *)object, name, member) {
        if (!json_is_null(member))
            cnt++;
    }
    return cnt;
}

/* HSET/XADD field-value pairs: every member but nulls, values as rkb_json_to_text. */
static void arg_fields(rkb_cmds_t *cmds, rkb_writer_t *w, const json_t *object) {
    const char *name;
    json_t *member;
    json_object_foreach((json_t *)object, name, member) {
        if (json_is_null(member))
            continue;
        rkb_cmds_arg(cmds, name, rkb_json_object_key_len(name));
        size_t mark = w->scratch.len;
        rkb_json_to_text(member, &w->scratch);
        rkb_cmds_arg(cmds, w->scratch.data + mark, w->scratch.len - mark);
        scratch_cut(w, mark);
    }
}

/* The same arguments as arg_fields, from the members rkb_json_flat_scan found. */
static void arg_flat_fields(rkb_cmds_t *cmds, rkb_writer_t *w) {
    for (int i = 0; i < w->flat_cnt; i++) {
        const rkb_json_field_t *f = &w->flat[i];
        if (f->is_null)
            continue;
        rkb_cmds_arg(cmds, f->name, f->name_len); /* a name with escapes is not scanned flat */
        if (!f->escaped_value) {
            rkb_cmds_arg(cmds, f->value, f->value_len);
            continue;
        }
        size_t mark = w->scratch.len;
        rkb_json_unescape(f->value, f->value_len, &w->scratch);
        rkb_cmds_arg(cmds, w->scratch.data + mark, w->scratch.len - mark);
        scratch_cut(w, mark);
    }
}

/* Scans the record's value as a flat object when nothing has parsed it yet (see
 * rkb_json_flat_scan). Returns true, with w->flat_cnt members of which at least one is not null,
 * when the fast path applies. */
static bool scan_flat(rkb_writer_t *w, const rkb_record_t *rec) {
    w->flat_cnt = -1;
    if (rec->value_json_state != 0 || !rec->value)
        return false;
    int cnt = rkb_json_flat_scan(rec->value, rec->value_len, rec->value_schemas_enable, w->flat,
                                 FLAT_MAX_FIELDS);
    bool any = false;
    for (int i = 0; i < cnt && !any; i++)
        any = !w->flat[i].is_null;
    if (!any)
        return false; /* the tree path says what is wrong, or that there is nothing to write */
    w->flat_cnt = cnt;
    return true;
}

static int encode_tombstone(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                            size_t errstr_size) {
    span_t key, member;
    int64_t ts;
    /* Append-only structures keep their history, and a counter has nothing to take back: nothing
     * to delete. */
    if (w->type == RKB_TYPE_STREAM || w->type == RKB_TYPE_PUBSUB || w->type == RKB_TYPE_COUNTER)
        return 0;
    if (build_key(w, rec, &key, errstr, errstr_size))
        return -1;
    switch (w->type) {
    case RKB_TYPE_STRING:
    case RKB_TYPE_HASH:
    case RKB_TYPE_JSON:
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "DEL");
        arg_span(cmds, w, key);
        rkb_cmds_end(cmds);
        return 1;
    case RKB_TYPE_LIST:
    case RKB_TYPE_SET:
    case RKB_TYPE_ZSET:
        if (expand(w, w->member, "redis.member", rec, &member, errstr, errstr_size))
            return -1;
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, w->type == RKB_TYPE_LIST  ? "LREM"
                            : w->type == RKB_TYPE_SET ? "SREM"
                                                      : "ZREM");
        arg_span(cmds, w, key);
        if (w->type == RKB_TYPE_LIST)
            rkb_cmds_args(cmds, "0"); /* every occurrence */
        arg_span(cmds, w, member);
        rkb_cmds_end(cmds);
        return 1;
    case RKB_TYPE_TIMESERIES:
        if (expand_ts(w, rec, &ts, errstr, errstr_size))
            return -1;
        if (ts < 0) {
            snprintf(errstr, errstr_size,
                     "redis.timeseries.timestamp: '*' names no sample, a tombstone cannot delete "
                     "one");
            return -1;
        }
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "TS.DEL");
        arg_span(cmds, w, key);
        rkb_cmds_arg_int(cmds, ts);
        rkb_cmds_arg_int(cmds, ts);
        rkb_cmds_end(cmds);
        return 1;
    default:
        return 0;
    }
}

static int encode_write(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                        size_t errstr_size) {
    char reason[256];
    span_t key, member = {0, 0}, field = {0, 0};
    int64_t ttl = 0, ts = 0;
    double score = 0;
    increment_t increment = {0};
    const json_t *json = NULL;
    const char *value = NULL;
    size_t value_len = 0;

    if (build_key(w, rec, &key, errstr, errstr_size))
        return -1;
    /* PUBLISH has no key to expire. */
    if (w->type != RKB_TYPE_PUBSUB && record_ttl(w, rec, &ttl, errstr, errstr_size))
        return -1;

    /* Everything that can fail, before the first command. */
    switch (w->type) {
    case RKB_TYPE_STRING:
    case RKB_TYPE_PUBSUB:
        value = rkb_record_value_bytes(rec, &value_len);
        break;
    case RKB_TYPE_HASH:
        if (scan_flat(w, rec))
            break;
        if (!(json = rkb_record_value_json(rec, reason, sizeof(reason)))) {
            snprintf(errstr, errstr_size, "HASH needs a JSON object value: %s", reason);
            return -1;
        }
        if (!json_is_object(json)) {
            snprintf(errstr, errstr_size, "HASH needs a JSON object value, got %s",
                     rkb_json_type_name(json));
            return -1;
        }
        /* HSET needs a field; an object of nulls has nothing to write. */
        if (!count_non_null_members(json))
            return 0;
        break;
    case RKB_TYPE_JSON:
        if (!rkb_record_value_json(rec, reason, sizeof(reason))) {
            snprintf(errstr, errstr_size, "JSON needs a JSON value: %s", reason);
            return -1;
        }
        value = rkb_record_value_bytes(rec, &value_len);
        break;
    case RKB_TYPE_STREAM:
        /* Not JSON, or not an object: the whole value is one field named "value". */
        json = rkb_record_value_json(rec, reason, sizeof(reason));
        if (!json_is_object(json)) {
            json = NULL;
            value = rkb_record_value_bytes(rec, &value_len);
        } else if (!count_non_null_members(json)) {
            snprintf(errstr, errstr_size, "STREAM entry has no fields (every member is null)");
            return -1;
        }
        break;
    case RKB_TYPE_LIST:
    case RKB_TYPE_SET:
        if (expand(w, w->member, "redis.member", rec, &member, errstr, errstr_size))
            return -1;
        break;
    case RKB_TYPE_ZSET:
        if (expand(w, w->member, "redis.member", rec, &member, errstr, errstr_size) ||
            expand_number(w, w->score, "redis.score", rec, &score, errstr, errstr_size))
            return -1;
        break;
    case RKB_TYPE_TIMESERIES:
        if (expand_ts(w, rec, &ts, errstr, errstr_size) ||
            expand_number(w, w->score, "redis.score", rec, &score, errstr, errstr_size))
            return -1;
        break;
    case RKB_TYPE_COUNTER:
        if ((w->hash_field &&
             expand(w, w->hash_field, "redis.hash.field", rec, &field, errstr, errstr_size)) ||
            expand_increment(w, rec, &increment, errstr, errstr_size))
            return -1;
        break;
    case RKB_TYPE_CACHE:
    case RKB_TYPE_WINDOW:
    case RKB_TYPE_NONE:
        break;
    }

    size_t start = rkb_cmds_count(cmds);
    /* SET has EX; anything else gets EXPIRE in the same MULTI/EXEC as the write, so a crash
     * between the two cannot leave a key that never expires. */
    bool expire = ttl > 0 && w->type != RKB_TYPE_STRING;
    if (expire && !w->in_transaction) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "MULTI");
        rkb_cmds_end(cmds);
    }

    rkb_cmds_begin(cmds);
    switch (w->type) {
    case RKB_TYPE_STRING:
        rkb_cmds_args(cmds, "SET");
        arg_span(cmds, w, key);
        rkb_cmds_arg(cmds, value, value_len);
        if (ttl > 0) {
            rkb_cmds_args(cmds, "EX");
            rkb_cmds_arg_int(cmds, ttl);
        }
        break;
    case RKB_TYPE_HASH:
        rkb_cmds_args(cmds, "HSET");
        arg_span(cmds, w, key);
        if (json)
            arg_fields(cmds, w, json);
        else
            arg_flat_fields(cmds, w);
        break;
    case RKB_TYPE_JSON:
        rkb_cmds_args(cmds, "JSON.SET");
        arg_span(cmds, w, key);
        rkb_cmds_args(cmds, "$");
        rkb_cmds_arg(cmds, value, value_len);
        break;
    case RKB_TYPE_STREAM:
        rkb_cmds_args(cmds, "XADD");
        arg_span(cmds, w, key);
        if (w->stream_maxlen > 0) {
            rkb_cmds_args(cmds, "MAXLEN");
            rkb_cmds_args(cmds, "~");
            rkb_cmds_arg_int(cmds, w->stream_maxlen);
        }
        rkb_cmds_args(cmds, "*");
        if (json) {
            arg_fields(cmds, w, json);
        } else {
            rkb_cmds_args(cmds, "value");
            rkb_cmds_arg(cmds, value, value_len);
        }
        break;
    case RKB_TYPE_LIST:
    case RKB_TYPE_SET:
        rkb_cmds_args(cmds, w->type == RKB_TYPE_SET ? "SADD" : w->push_left ? "LPUSH" : "RPUSH");
        arg_span(cmds, w, key);
        arg_span(cmds, w, member);
        break;
    case RKB_TYPE_ZSET:
        rkb_cmds_args(cmds, "ZADD");
        arg_span(cmds, w, key);
        arg_double(cmds, w, score);
        arg_span(cmds, w, member);
        break;
    case RKB_TYPE_TIMESERIES:
        rkb_cmds_args(cmds, "TS.ADD");
        arg_span(cmds, w, key);
        if (ts < 0)
            rkb_cmds_args(cmds, "*");
        else
            rkb_cmds_arg_int(cmds, ts);
        arg_double(cmds, w, score);
        break;
    case RKB_TYPE_PUBSUB:
        rkb_cmds_args(cmds, "PUBLISH");
        arg_span(cmds, w, key);
        rkb_cmds_arg(cmds, value, value_len);
        break;
    case RKB_TYPE_COUNTER:
        if (w->hash_field) {
            rkb_cmds_args(cmds, increment.is_integer ? "HINCRBY" : "HINCRBYFLOAT");
            arg_span(cmds, w, key);
            arg_span(cmds, w, field);
        } else {
            rkb_cmds_args(cmds, increment.is_integer ? "INCRBY" : "INCRBYFLOAT");
            arg_span(cmds, w, key);
        }
        if (increment.is_integer)
            rkb_cmds_arg_int(cmds, increment.integer);
        else
            arg_double(cmds, w, increment.decimal);
        break;
    case RKB_TYPE_CACHE:
    case RKB_TYPE_WINDOW:
    case RKB_TYPE_NONE:
        break;
    }
    rkb_cmds_end(cmds);

    if (expire) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EXPIRE");
        arg_span(cmds, w, key);
        rkb_cmds_arg_int(cmds, ttl);
        rkb_cmds_end(cmds);
        if (!w->in_transaction) {
            rkb_cmds_begin(cmds);
            rkb_cmds_args(cmds, "EXEC");
            rkb_cmds_end(cmds);
        }
    }
    return (int)(rkb_cmds_count(cmds) - start);
}

int rkb_writer_encode(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                      size_t errstr_size) {
    /* First, so that an oversized value costs no parsing. An enriched value is checked at
     * the size it has now. */
    size_t value_len = rec->value_replaced ? rec->value_text_len : rec->value_len;
    if (rec->value && w->value_max_bytes > 0 && value_len > (uint64_t)w->value_max_bytes) {
        snprintf(errstr, errstr_size,
                 "value is %zu bytes, more than redis.value.max.bytes (%" PRId64 ")", value_len,
                 w->value_max_bytes);
        return -1;
    }
    if (w->type == RKB_TYPE_NONE || w->type == RKB_TYPE_WINDOW)
        return 0;
    size_t start = rkb_cmds_count(cmds);
    rkb_buf_reset(&w->scratch);
    if (w->type == RKB_TYPE_CACHE) {
        span_t key;
        if (build_key(w, rec, &key, errstr, errstr_size))
            return -1;
        return rkb_cache_encode(w->cache, rec, span_data(w, key), key.len, cmds, errstr,
                                errstr_size);
    }
    int n = rec->value ? encode_write(w, rec, cmds, errstr, errstr_size)
                       : encode_tombstone(w, rec, cmds, errstr, errstr_size);
    if (n < 0)
        rkb_cmds_truncate(cmds, start);
    return n;
}
