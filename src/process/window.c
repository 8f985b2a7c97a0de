/*
 * window.c — windowed aggregation (see window.h): the window.* config checked and turned into
 * the compact spec the Lua side reads, each record encoded as one RKB.WINDOW pseudo-command for
 * the exactly-once apply script (src/process/window.lua does the windowing there), and the
 * emission of the results the scripts leave pending in Redis to window.output.topic.
 *
 * Data path: sink encode_batch → rkb_window_encode (templates → event time, group, value,
 * element) → sink/eos.c call per partition → window.lua (clock, assignment, close, results into
 * STATE:pending) → sink settle → rkb_window_account (counters; partitions with pending results)
 * → rkb_window_emit: HGETALL STATE:pending, produce in sequence order, wait for the delivery
 * reports, then remove each delivered entry if it is still the same (window_ack.lua).
 */
#include "process/window.h"

#include "connect/clients.h"
#include "tmpl/tmpl.h"
#include "util/failpoint.h"
#include "util/log.h"
#include "util/lua.h"
#include "util/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Event times and window lengths are kept below this, so that every sum of them stays exact in
 * the script's doubles (2^53): 10^15 ms is the year 33658. */
#define TIME_MAX 1000000000000000LL

/* User text quoted in a message is cut to this many bytes. */
#define QUOTE_MAX 64

/* How long one emission waits for its delivery reports before leaving the rest for later. */
#define EMIT_FLUSH_MS 30000

/* The prefix of the partition's offset key (eos.h) and of its window state key. */
#define OFFSET_KEY_PREFIX "rkbridge:offset:"
#define STATE_KEY_PREFIX  "rkbridge:window:"

#define LATE_REASON_PREFIX "window-closed:"

static const char *const aggregate_names[] = {"count", "sum", "min", "max", "avg", "distinct"};

/* A partition whose pending results are to be emitted. */
typedef struct watched_s {
    char *topic;
    int32_t partition;
    bool due;
} watched_t;

/* One pending result read back from Redis. Pointers into the HGETALL reply. */
typedef struct entry_s {
    size_t part; /* index in win->watched */
    const char *field;
    size_t field_len;
    const char *raw; /* the whole entry, compared before removal */
    size_t raw_len;
    int64_t seq, timestamp, start, end;
    const char *key;
    size_t key_len;
    const char *value; /* NULL: tombstone */
    size_t value_len;
    int outcome; /* 0 not reported, 1 delivered, -1 failed */
} entry_t;

struct rkb_window_s {
    char *component;
    char *offset_ns;
    char *spec; /* what window.lua parses */
    /* window.key.prefix names ${topic} or ${partition} (a Redis Cluster needs the window keys in
     * the partition's slot): spec is then rendered per record into spec_buf, from spec_head (all
     * but the prefix) and prefix. */
    bool prefix_per_partition;
    char *spec_head, *prefix;
    rkb_buf_t spec_buf;
    rkb_tmpl_t *time_tmpl, *group_tmpl, *value_tmpl, *element_tmpl; /* the last two may be NULL */
    rkb_buf_t scratch;

    /* Emission (output_topic NULL: results stay in Redis only) */
    char *output_topic;
    rkb_producer_t *producer;
    watched_t *watched;
    size_t watched_cnt, watched_cap;
    entry_t *entries; /* the emission in progress */
    size_t entry_cnt;
    uint32_t generation; /* tells this emission's delivery reports from a late one's */

    rkb_window_stats_t stats;
};

/* ---- configuration ------------------------------------------------------------------------ */

static bool is_aggregate(const char *name, size_t len) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(aggregate_names); i++)
        if (strlen(aggregate_names[i]) == len && !strncmp(aggregate_names[i], name, len))
            return true;
    return false;
}

/* Whether the window.aggregates list has name. */
static bool has_aggregate(const char *list, const char *name) {
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        size_t item = strcspn(p, ",");
        if (item == len && !strncmp(p, name, len))
            return true;
        p += item + (p[item] == ',');
    }
    return false;
}

static bool needs_value(const char *aggregates) {
    return has_aggregate(aggregates, "sum") || has_aggregate(aggregates, "min") ||
           has_aggregate(aggregates, "max") || has_aggregate(aggregates, "avg");
}

static void check_template(const rkb_config_t *conf, const char *key, rkb_errors_t *errs) {
    const char *text = rkb_config_get(conf, key);
    if (!text || !*text)
        return;
    char why[256];
    rkb_tmpl_t *tmpl = rkb_tmpl_parse(text, why, sizeof(why));
    if (!tmpl)
        rkb_errors_add(errs, "%s: %s: %s", rkb_config_origin(conf, key), key, why);
    rkb_tmpl_destroy(tmpl);
}

static void check_time_range(const rkb_config_t *conf, const char *key, rkb_errors_t *errs) {
    if (rkb_config_get_int(conf, key) > TIME_MAX)
        rkb_errors_add(errs, "%s: %s: at most %lld ms", rkb_config_origin(conf, key), key,
                       (long long)TIME_MAX);
}

int rkb_window_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    const char *aggregates = rkb_config_get(conf, "window.aggregates");
    const char *origin = rkb_config_origin(conf, "window.aggregates");

    if (!aggregates || !*aggregates)
        rkb_errors_add(errs, "%s: window.aggregates: name at least one of count, sum, min, max, "
                             "avg, distinct",
                       origin);
    for (const char *p = aggregates; p && *p;) {
        size_t len = strcspn(p, ",");
        if (!is_aggregate(p, len))
            rkb_errors_add(errs,
                           "%s: window.aggregates: unknown aggregate '%.*s' (count, sum, min, "
                           "max, avg, distinct)",
                           origin, (int)(len < QUOTE_MAX ? len : QUOTE_MAX), p);
        for (const char *q = aggregates; q < p;) {
            size_t qlen = strcspn(q, ",");
            if (qlen == len && !strncmp(p, q, len)) {
                rkb_errors_add(errs, "%s: window.aggregates: '%.*s' is listed twice", origin,
                               (int)len, p);
                break;
            }
            q += qlen + 1;
        }
        p += len + (p[len] == ',');
    }

    static const char *const templates[] = {"window.time", "window.group", "window.value",
                                            "window.distinct"};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(templates); i++)
        check_template(conf, templates[i], errs);
    if (!*rkb_config_get(conf, "window.time"))
        rkb_errors_add(errs, "%s: window.time: must not be empty (default ${timestamp})",
                       rkb_config_origin(conf, "window.time"));
    if (!*rkb_config_get(conf, "window.group"))
        rkb_errors_add(errs, "%s: window.group: must not be empty (default ${key})",
                       rkb_config_origin(conf, "window.group"));
    if (aggregates && needs_value(aggregates) && !*rkb_config_get(conf, "window.value"))
        rkb_errors_add(errs,
                       "%s: window.value: must be set for window.aggregates sum, min, max or avg "
                       "(the number they aggregate, e.g. ${value.amount})",
                       origin);
    if (aggregates && has_aggregate(aggregates, "distinct") &&
        !*rkb_config_get(conf, "window.distinct"))
        rkb_errors_add(errs,
                       "%s: window.distinct: must be set for window.aggregates distinct (what is "
                       "counted, e.g. ${value.user_id})",
                       origin);

    static const char *const times[] = {"window.size.ms", "window.advance.ms", "window.gap.ms",
                                        "window.grace.ms"};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(times); i++)
        check_time_range(conf, times[i], errs);
    const char *type = rkb_config_get(conf, "window.type");
    int64_t size = rkb_config_get_int(conf, "window.size.ms");
    int64_t advance = rkb_config_get_int(conf, "window.advance.ms");
    if (!strcmp(type, "hopping") && advance > size)
        rkb_errors_add(errs, "%s: window.advance.ms: %lld is more than window.size.ms (%lld)",
                       rkb_config_origin(conf, "window.advance.ms"), (long long)advance,
                       (long long)size);
    if (strcmp(type, "hopping") && advance && advance != size)
        rkb_errors_add(errs, "%s: window.advance.ms: only used with window.type=hopping",
                       rkb_config_origin(conf, "window.advance.ms"));

    if (!strcmp(rkb_config_get(conf, "window.late"), "dead-letter")) {
        const char *dlq = rkb_config_get(conf, "errors.deadletterqueue.topic.name");
        if (!dlq || !*dlq || strcmp(rkb_config_get(conf, "errors.tolerance"), "all"))
            rkb_errors_add(errs,
                           "%s: window.late: dead-letter needs errors.deadletterqueue.topic.name "
                           "and errors.tolerance=all",
                           rkb_config_origin(conf, "window.late"));
    }
    if (rkb_config_is_set(conf, "redis.delivery") &&
        strcmp(rkb_config_get(conf, "redis.delivery"), "exactly-once"))
        rkb_errors_add(errs,
                       "%s: redis.delivery: redis.type=WINDOW always runs exactly-once (the "
                       "windows move with the offsets kept in Redis)",
                       rkb_config_origin(conf, "redis.delivery"));
    return (int)(errs->cnt - before);
}

/* The spec window.lua parses (parse_spec there):
 * "KIND SIZE ADVANCE GAP GRACE AGGREGATES EMIT OUTPUT LATE STATE_TTL RESULT_TTL PREFIX". */
static char *build_spec(const rkb_config_t *conf) {
    const char *type = rkb_config_get(conf, "window.type");
    int64_t size = rkb_config_get_int(conf, "window.size.ms");
    int64_t advance = rkb_config_get_int(conf, "window.advance.ms");
    if (!advance || strcmp(type, "hopping"))
        advance = size;
    const char *prefix = rkb_config_get(conf, "window.key.prefix");
    const char *output = rkb_config_get(conf, "window.output.topic");
    rkb_buf_t spec;
    rkb_buf_init(&spec);
    rkb_buf_appendf(&spec, "%s %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %s %s %d %s %" PRId64
                           " %" PRId64 " ",
                    type, size, advance, rkb_config_get_int(conf, "window.gap.ms"),
                    rkb_config_get_int(conf, "window.grace.ms"),
                    rkb_config_get(conf, "window.aggregates"), rkb_config_get(conf, "window.emit"),
                    output && *output ? 1 : 0, rkb_config_get(conf, "window.late"),
                    rkb_config_get_int(conf, "window.state.ttl.ms"),
                    rkb_config_get_int(conf, "window.result.ttl.ms"));
    if (prefix && *prefix)
        rkb_buf_appends(&spec, prefix);
    else
        rkb_buf_appendf(&spec, "win:%s:", rkb_config_get(conf, "name"));
    return spec.data;
}

/* The spec for a record of topic/partition: win->spec, or with ${topic} and ${partition}
 * replaced in the prefix. */
static const char *spec_for(rkb_window_t *win, const char *topic, int32_t partition) {
    if (!win->prefix_per_partition)
        return win->spec;
    rkb_buf_t *out = &win->spec_buf;
    rkb_buf_reset(out);
    rkb_buf_appends(out, win->spec_head);
    for (const char *p = win->prefix; *p;) {
        if (!strncmp(p, "${topic}", 8)) {
            rkb_buf_appends(out, topic);
            p += 8;
        } else if (!strncmp(p, "${partition}", 12)) {
            rkb_buf_appendf(out, "%" PRId32, partition);
            p += 12;
        } else {
            rkb_buf_append(out, p++, 1);
        }
    }
    return out->data;
}

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque);

static rkb_tmpl_t *parse_template(const rkb_config_t *conf, const char *key, char *errstr,
                                  size_t errstr_size) {
    const char *text = rkb_config_get(conf, key);
    if (!text || !*text)
        return NULL;
    char why[256];
    rkb_tmpl_t *tmpl = rkb_tmpl_parse(text, why, sizeof(why));
    if (!tmpl)
        snprintf(errstr, errstr_size, "%s: %s", key, why);
    return tmpl;
}

rkb_window_t *rkb_window_new(const rkb_config_t *conf, int task_id, const char *component,
                             const char *offset_ns, char *errstr, size_t errstr_size) {
    rkb_window_t *win = rkb_calloc(1, sizeof(*win));
    win->component = rkb_strdup(component);
    win->offset_ns = rkb_strdup(offset_ns);
    win->spec = build_spec(conf);
    const char *prefix = rkb_config_get(conf, "window.key.prefix");
    rkb_buf_init(&win->spec_buf);
    if (prefix && (strstr(prefix, "${topic}") || strstr(prefix, "${partition}"))) {
        win->prefix_per_partition = true;
        win->prefix = rkb_strdup(prefix);
        win->spec_head = rkb_strndup(win->spec, strlen(win->spec) - strlen(prefix));
    }
    rkb_buf_init(&win->scratch);
    const char *aggregates = rkb_config_get(conf, "window.aggregates");
    if (!(win->time_tmpl = parse_template(conf, "window.time", errstr, errstr_size)) ||
        !(win->group_tmpl = parse_template(conf, "window.group", errstr, errstr_size)))
        goto fail;
    if (needs_value(aggregates) &&
        !(win->value_tmpl = parse_template(conf, "window.value", errstr, errstr_size)))
        goto fail;
    if (has_aggregate(aggregates, "distinct") &&
        !(win->element_tmpl = parse_template(conf, "window.distinct", errstr, errstr_size)))
        goto fail;

    const char *output = rkb_config_get(conf, "window.output.topic");
    if (output && *output) {
        win->output_topic = rkb_strdup(output);
        win->producer = rkb_connect_producer_new(conf, task_id, "-window", component, on_delivery,
                                                 win, errstr, errstr_size);
        if (!win->producer)
            goto fail;
    }
    return win;

fail:
    rkb_window_destroy(win);
    return NULL;
}

void rkb_window_destroy(rkb_window_t *win) {
    if (!win)
        return;
    /* First: its last delivery reports come through on_delivery, which reads win. */
    rkb_producer_destroy(win->producer, 10000);
    free(win->component);
    free(win->offset_ns);
    free(win->spec);
    free(win->spec_head);
    free(win->prefix);
    rkb_buf_free(&win->spec_buf);
    rkb_tmpl_destroy(win->time_tmpl);
    rkb_tmpl_destroy(win->group_tmpl);
    rkb_tmpl_destroy(win->value_tmpl);
    rkb_tmpl_destroy(win->element_tmpl);
    rkb_buf_free(&win->scratch);
    free(win->output_topic);
    for (size_t i = 0; i < win->watched_cnt; i++)
        free(win->watched[i].topic);
    free(win->watched);
    free(win->entries);
    free(win);
}

const rkb_window_stats_t *rkb_window_stats(const rkb_window_t *win) {
    return &win->stats;
}

/* ---- records ------------------------------------------------------------------------------ */

/* rkbridge:window:{TOPIC:PARTITION}:NS: the offset key's hash tag and namespace. */
static void state_key(const rkb_window_t *win, const char *topic, int32_t partition, char *out,
                      size_t size) {
    char offset_key[1024];
    rkb_eos_offset_key(win->offset_ns, topic, partition, offset_key, sizeof(offset_key));
    size_t prefix_len = strlen(OFFSET_KEY_PREFIX);
    if (strncmp(offset_key, OFFSET_KEY_PREFIX, prefix_len)) {
        rkb_log_error(win->component, "unexpected offset key '%s'", offset_key);
        abort(); /* eos.h's documented layout changed: the windows would lose their clock */
    }
    snprintf(out, size, STATE_KEY_PREFIX "%s", offset_key + prefix_len);
}

/* An event time: ms since the epoch, or a stream entry ID "ms-seq"; -1 when it is neither. */
static int64_t parse_event_time(const char *text, size_t len) {
    char digits[24];
    const char *dash = memchr(text, '-', len);
    size_t ms_len = dash ? (size_t)(dash - text) : len;
    if (!ms_len || ms_len >= sizeof(digits))
        return -1;
    if (dash) {
        size_t seq_len = len - ms_len - 1;
        if (!seq_len || strspn(dash + 1, "0123456789") < seq_len)
            return -1;
    }
    memcpy(digits, text, ms_len);
    digits[ms_len] = '\0';
    int64_t ts;
    if (strspn(digits, "0123456789") != ms_len || rkb_parse_int64(digits, 0, TIME_MAX, &ts))
        return -1;
    return ts;
}

/* The one spelling of a number the script stores and emits (valid JSON, the same for the same
 * double): an integer as an integer, else the fewest digits that read back the same. */
static void canonical_number(double v, char *out, size_t size) {
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(out, size, "%.0f", v == 0 ? 0.0 : v);
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf(out, size, "%.*g", precision, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* Expands tmpl (of config key) for rec at the end of scratch; *off and *len say where. */
static int expand(rkb_window_t *win, const rkb_tmpl_t *tmpl, const char *key, rkb_record_t *rec,
                  size_t *off, size_t *len, char *errstr, size_t errstr_size) {
    char why[384];
    *off = win->scratch.len;
    if (rkb_tmpl_expand(tmpl, rec, &win->scratch, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "%s: %s", key, why);
        return -1;
    }
    *len = win->scratch.len - *off;
    return 0;
}

int rkb_window_encode(rkb_window_t *win, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                      size_t errstr_size) {
    if (!rec->value)
        return 0; /* a tombstone: ignored, as Kafka Streams' windowed aggregations do */
    rkb_buf_reset(&win->scratch);
    char why[384];

    /* A record without a usable event time is the script's to count, not an error. */
    int64_t ts = -1;
    size_t off, len;
    if (rkb_tmpl_expand(win->time_tmpl, rec, &win->scratch, why, sizeof(why)) == 0)
        ts = parse_event_time(win->scratch.data, win->scratch.len);
    rkb_buf_reset(&win->scratch);

    size_t group_off, group_len;
    if (expand(win, win->group_tmpl, "window.group", rec, &group_off, &group_len, errstr,
               errstr_size))
        return -1;
    char value[64] = "";
    if (win->value_tmpl) {
        if (expand(win, win->value_tmpl, "window.value", rec, &off, &len, errstr, errstr_size))
            return -1;
        const char *text = win->scratch.data + off;
        double number;
        if (strlen(text) != len || rkb_parse_double(text, &number)) {
            snprintf(errstr, errstr_size, "window.value: '%.*s' is not a number",
                     (int)(len < QUOTE_MAX ? len : QUOTE_MAX), text);
            return -1;
        }
        canonical_number(number, value, sizeof(value));
        win->scratch.len = off; /* kept as the canonical text */
    }
    size_t element_off = win->scratch.len, element_len = 0;
    if (win->element_tmpl && expand(win, win->element_tmpl, "window.distinct", rec, &element_off,
                                     &element_len, errstr, errstr_size))
        return -1;

    char state[1100];
    state_key(win, rec->topic, rec->partition, state, sizeof(state));
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "RKB.WINDOW");
    rkb_cmds_args(cmds, state);
    rkb_cmds_args(cmds, spec_for(win, rec->topic, rec->partition));
    rkb_cmds_arg_int(cmds, ts);
    rkb_cmds_arg(cmds, win->scratch.data + group_off, group_len);
    rkb_cmds_args(cmds, value);
    rkb_cmds_arg(cmds, win->scratch.data + element_off, element_len);
    rkb_cmds_end(cmds);
    return 1;
}

/* The prefix is the spec's last word (build_spec; window.lua's parse_spec). */
const char *rkb_window_spec_prefix(const char *spec) {
    const char *space = strrchr(spec, ' ');
    return space ? space + 1 : spec;
}

bool rkb_window_is_late(const char *reason) {
    return reason && !strncmp(reason, LATE_REASON_PREFIX, strlen(LATE_REASON_PREFIX));
}

size_t rkb_window_late_headers(const rkb_header_t **headers) {
    static const rkb_header_t late[] = {{"x-late-reason", "window-closed", 13}};
    *headers = late;
    return RKB_ARRAY_SIZE(late);
}

int rkb_window_encode_late(rkb_window_t *win, const rkb_record_t *rec, rkb_cmds_t *cmds) {
    char state[1100];
    state_key(win, rec->topic, rec->partition, state, sizeof(state));
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "RKB.WINDOW.LATE");
    rkb_cmds_args(cmds, state);
    rkb_cmds_end(cmds);
    return 1;
}

/* ---- partitions --------------------------------------------------------------------------- */

static watched_t *find_watched(rkb_window_t *win, const char *topic, int32_t partition) {
    for (size_t i = 0; i < win->watched_cnt; i++)
        if (win->watched[i].partition == partition && !strcmp(win->watched[i].topic, topic))
            return &win->watched[i];
    return NULL;
}

/* Marks topic/partition for emission. */
static void mark_due(rkb_window_t *win, const char *topic, int32_t partition) {
    watched_t *w = find_watched(win, topic, partition);
    if (!w) {
        if (win->watched_cnt == win->watched_cap) {
            win->watched_cap = win->watched_cap ? win->watched_cap * 2 : 16;
            win->watched = rkb_realloc(win->watched, win->watched_cap * sizeof(*win->watched));
        }
        w = &win->watched[win->watched_cnt++];
        w->topic = rkb_strdup(topic);
        w->partition = partition;
    }
    w->due = true;
}

void rkb_window_account(rkb_window_t *win, const char *topic, int32_t partition,
                        const rkb_eos_result_t *result) {
    win->stats.dropped_late_records += rkb_eos_result_counter(result, "dropped_late_records");
    win->stats.dropped_late_windows += rkb_eos_result_counter(result, "dropped_late_windows");
    win->stats.dropped_invalid_ts += rkb_eos_result_counter(result, "dropped_invalid_ts");
    win->stats.windows_closed += rkb_eos_result_counter(result, "windows_closed");
    if (win->output_topic && rkb_eos_result_counter(result, "pending") > 0)
        mark_due(win, topic, partition);
}

void rkb_window_watch(rkb_window_t *win, const char *topic, int32_t partition) {
    if (win->output_topic)
        mark_due(win, topic, partition);
}

void rkb_window_forget(rkb_window_t *win, const char *topic, int32_t partition) {
    watched_t *w = find_watched(win, topic, partition);
    if (!w)
        return;
    free(w->topic);
    *w = win->watched[--win->watched_cnt];
}

bool rkb_window_emit_due(const rkb_window_t *win) {
    for (size_t i = 0; i < win->watched_cnt; i++)
        if (win->watched[i].due)
            return true;
    return false;
}

/* ---- emission ----------------------------------------------------------------------------- */

/* A delivery report's opaque: the emission's generation and the entry's index. */
_Static_assert(sizeof(void *) >= 8, "delivery opaques pack a generation and an index");
#define OPAQUE(gen, index) ((void *)(((uintptr_t)(gen) << 32) | (uintptr_t)(index)))

/* @locality the task thread, from rkb_producer_send/flush/destroy. */
static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_window_t *win = opaque;
    uintptr_t packed = (uintptr_t)msg_opaque;
    size_t index = (size_t)(packed & 0xffffffffu);
    if ((uint32_t)(packed >> 32) != win->generation || index >= win->entry_cnt)
        return; /* an earlier emission that gave up waiting: its entry is still pending */
    if (err)
        rkb_log_warn(win->component, "window result to %s: delivery failed: %s; it stays pending",
                     win->output_topic, errstr);
    else
        win->stats.results_emitted++;
    win->entries[index].outcome = err ? -1 : 1;
}

/* Parses "SEQ TIMESTAMP START END KEY_LEN VALUE_LEN\nKEYVALUE" (window.lua pend). */
static int parse_entry(entry_t *e) {
    const char *nl = memchr(e->raw, '\n', e->raw_len);
    if (!nl || nl - e->raw > 200)
        return -1;
    char head[256];
    memcpy(head, e->raw, (size_t)(nl - e->raw));
    head[nl - e->raw] = '\0';
    long long seq, timestamp, start, end, key_len, value_len;
    int used = 0;
    if (sscanf(head, "%lld %lld %lld %lld %lld %lld%n", &seq, &timestamp, &start, &end, &key_len,
               &value_len, &used) != 6 ||
        head[used] != '\0' || key_len < 0 || value_len < -1)
        return -1;
    size_t body = e->raw_len - (size_t)(nl + 1 - e->raw);
    if ((size_t)key_len + (size_t)(value_len < 0 ? 0 : value_len) != body)
        return -1;
    e->seq = seq;
    e->timestamp = timestamp;
    e->start = start;
    e->end = end;
    e->key = nl + 1;
    e->key_len = (size_t)key_len;
    e->value = value_len < 0 ? NULL : e->key + key_len;
    e->value_len = value_len < 0 ? 0 : (size_t)value_len;
    return 0;
}

static int entry_order(const void *a, const void *b) {
    const entry_t *x = a, *y = b;
    if (x->part != y->part)
        return x->part < y->part ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The pending results of the due partitions, from the replies of their HGETALLs. */
static size_t collect_entries(rkb_window_t *win, const size_t *parts, size_t part_cnt,
                              redisReply **replies, bool *failed) {
    size_t cnt = 0;
    for (size_t i = 0; i < part_cnt; i++)
        if (replies[i]->type == REDIS_REPLY_ARRAY)
            cnt += replies[i]->elements / 2;
    win->entries = rkb_realloc(win->entries, (cnt ? cnt : 1) * sizeof(*win->entries));
    cnt = 0;
    for (size_t i = 0; i < part_cnt; i++) {
        const redisReply *reply = replies[i];
        if (reply->type != REDIS_REPLY_ARRAY) {
            rkb_log_warn(win->component, "reading window results of %s[%d]: %s",
                         win->watched[parts[i]].topic, win->watched[parts[i]].partition,
                         reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            *failed = true;
            continue;
        }
        for (size_t j = 0; j + 1 < reply->elements; j += 2) {
            entry_t *e = &win->entries[cnt];
            memset(e, 0, sizeof(*e));
            e->part = parts[i];
            e->field = reply->element[j]->str;
            e->field_len = reply->element[j]->len;
            e->raw = reply->element[j + 1]->str;
            e->raw_len = reply->element[j + 1]->len;
            if (parse_entry(e)) {
                /* Not written by window.lua: dropped, so that it cannot block the rest. */
                rkb_log_error(win->component, "dropping a malformed pending window result '%.*s'",
                              (int)(e->field_len < QUOTE_MAX ? e->field_len : QUOTE_MAX),
                              e->field);
                e->outcome = 1;
            }
            cnt++;
        }
    }
    return cnt;
}

static void produce_entries(rkb_window_t *win) {
    char start[24], end[24], why[512];
    for (size_t i = 0; i < win->entry_cnt; i++) {
        entry_t *e = &win->entries[i];
        if (e->outcome)
            continue;
        snprintf(start, sizeof(start), "%" PRId64, e->start);
        snprintf(end, sizeof(end), "%" PRId64, e->end);
        const rkb_header_t headers[] = {{"x-window-start", start, strlen(start)},
                                        {"x-window-end", end, strlen(end)}};
        if (rkb_producer_send(win->producer, win->output_topic, -1, e->key, e->key_len, e->value,
                              e->value_len, headers, RKB_ARRAY_SIZE(headers), e->timestamp,
                              OPAQUE(win->generation, i), why, sizeof(why))) {
            rkb_log_warn(win->component, "window result to %s: %s; retrying later",
                         win->output_topic, why);
            return; /* the rest stay pending, in order */
        }
    }
    rkb_producer_flush(win->producer, EMIT_FLUSH_MS);
}

/* Removes the delivered entries from each partition's pending hash (if unchanged). Returns 0,
 * or -1 when Redis failed (they are emitted again later: at-least-once). */
static int ack_entries(rkb_window_t *win, rkb_redis_t *redis) {
    rkb_cmds_t *cmds = rkb_cmds_new();
    char state[1100], why[512];
    for (size_t i = 0; i < win->entry_cnt;) {
        size_t part = win->entries[i].part, j = i;
        bool begun = false;
        for (; j < win->entry_cnt && win->entries[j].part == part; j++) {
            const entry_t *e = &win->entries[j];
            if (e->outcome != 1)
                continue;
            if (!begun) {
                state_key(win, win->watched[part].topic, win->watched[part].partition, state,
                          sizeof(state));
                rkb_cmds_begin(cmds);
                rkb_cmds_args(cmds, "EVAL");
                rkb_cmds_arg(cmds, rkb_lua_window_ack, rkb_lua_window_ack_len);
                rkb_cmds_args(cmds, "1");
                rkb_cmds_argf(cmds, "%s:pending", state);
                begun = true;
            }
            rkb_cmds_arg(cmds, e->field, e->field_len);
            rkb_cmds_arg(cmds, e->raw, e->raw_len);
        }
        if (begun)
            rkb_cmds_end(cmds);
        i = j;
    }
    size_t cnt = rkb_cmds_count(cmds);
    int rc = 0;
    if (cnt) {
        redisReply **replies = rkb_calloc(cnt, sizeof(*replies));
        if (rkb_redis_pipeline(redis, cmds, replies, why, sizeof(why)) != RKB_REDIS_OK) {
            rkb_log_warn(win->component, "removing emitted window results: %s", why);
            rc = -1;
        } else {
            for (size_t i = 0; i < cnt; i++) {
                if (replies[i]->type == REDIS_REPLY_ERROR) {
                    rkb_log_warn(win->component, "removing emitted window results: %s",
                                 replies[i]->str);
                    rc = -1;
                }
            }
        }
        rkb_redis_replies_free(replies, cnt);
        free(replies);
    }
    rkb_cmds_destroy(cmds);
    return rc;
}

int rkb_window_emit(rkb_window_t *win, rkb_redis_t *redis, char *errstr, size_t errstr_size) {
    if (!win->producer || !rkb_window_emit_due(win))
        return 0;
    if (rkb_producer_fatal_error(win->producer, errstr, errstr_size))
        return -1;

    /* Read: one HGETALL per due partition. */
    size_t *parts = rkb_calloc(win->watched_cnt, sizeof(*parts));
    size_t part_cnt = 0;
    rkb_cmds_t *cmds = rkb_cmds_new();
    char state[1100], why[512];
    for (size_t i = 0; i < win->watched_cnt; i++) {
        if (!win->watched[i].due)
            continue;
        parts[part_cnt++] = i;
        state_key(win, win->watched[i].topic, win->watched[i].partition, state, sizeof(state));
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "HGETALL");
        rkb_cmds_argf(cmds, "%s:pending", state);
        rkb_cmds_end(cmds);
    }
    redisReply **replies = rkb_calloc(part_cnt, sizeof(*replies));
    int rc = 0;
    if (rkb_redis_pipeline(redis, cmds, replies, why, sizeof(why)) != RKB_REDIS_OK) {
        rkb_log_warn(win->component, "reading window results: %s", why);
        rc = 1;
        goto done;
    }
    bool failed = false;
    win->entry_cnt = collect_entries(win, parts, part_cnt, replies, &failed);
    /* In the order the script made them, per partition: an update before the final result,
     * a merged-away session's tombstone before the session that replaced it. */
    qsort(win->entries, win->entry_cnt, sizeof(*win->entries), entry_order);

    /* Produce and wait; only what Kafka acknowledged is removed from Redis, and only after. */
    win->generation++;
    produce_entries(win);
    rkb_failpoint("crash_after_window_emit", (int64_t)win->stats.results_emitted);
    bool ack_failed = ack_entries(win, redis) != 0;

    /* A partition is done when its results were read, and each was delivered and removed. */
    size_t delivered = 0;
    for (size_t i = 0; i < part_cnt; i++)
        win->watched[parts[i]].due = ack_failed || replies[i]->type != REDIS_REPLY_ARRAY;
    for (size_t i = 0; i < win->entry_cnt; i++) {
        if (win->entries[i].outcome == 1)
            delivered++;
        else
            win->watched[win->entries[i].part].due = true;
    }
    if (win->entry_cnt)
        rkb_log_debug(win->component, "window results: %zu of %zu emitted to %s", delivered,
                      win->entry_cnt, win->output_topic);
    rc = failed || ack_failed || delivered < win->entry_cnt ? 1 : 0;
    if (rc && rkb_producer_fatal_error(win->producer, errstr, errstr_size))
        rc = -1;

done:
    win->generation++; /* later reports of this emission find no entry */
    win->entry_cnt = 0;
    rkb_redis_replies_free(replies, part_cnt);
    free(replies);
    rkb_cmds_destroy(cmds);
    free(parts);
    return rc;
}
