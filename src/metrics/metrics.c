/*
 * metrics.c — histograms, scrapes rendered as Prometheus text, and per-task instruments (see
 * metrics.h). Beside the data path: tasks record into atomics as records move; GET /metrics
 * (http/rest.c through connect/worker.c) reads them into a scrape and renders it.
 */
#include "metrics/metrics.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Histograms ------------------------------------------------------------------------------ */

void rkb_histogram_init(rkb_histogram_t *h, const int64_t *bounds, size_t bound_cnt, double scale) {
    h->bounds = bounds;
    h->bound_cnt = bound_cnt;
    h->scale = scale;
    h->buckets = rkb_calloc(bound_cnt + 1, sizeof(*h->buckets));
    atomic_init(&h->sum, 0);
    for (size_t i = 0; i <= bound_cnt; i++)
        atomic_init(&h->buckets[i], 0);
}

void rkb_histogram_clear(rkb_histogram_t *h) {
    free((void *)h->buckets);
    h->buckets = NULL;
}

void rkb_histogram_observe(rkb_histogram_t *h, int64_t value) {
    size_t i = 0;
    while (i < h->bound_cnt && value > h->bounds[i])
        i++;
    atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->sum, value > 0 ? (uint64_t)value : 0);
}

/* ---- Scrapes --------------------------------------------------------------------------------- */

typedef struct sample_s {
    const rkb_metric_family_t *family;
    char *labels;       /* rendered: name="value",... (no braces), "" for none */
    double value;       /* counters, gauges */
    uint64_t *buckets;  /* histograms: a copy, cumulative, bound_cnt + 1 */
    const int64_t *bounds;
    size_t bound_cnt;
    double scale;
    double sum;
} sample_t;

struct rkb_scrape_s {
    sample_t *samples;
    size_t cnt, cap;
};

rkb_scrape_t *rkb_scrape_new(void) {
    return rkb_calloc(1, sizeof(rkb_scrape_t));
}

void rkb_scrape_destroy(rkb_scrape_t *s) {
    if (!s)
        return;
    for (size_t i = 0; i < s->cnt; i++) {
        free(s->samples[i].labels);
        free(s->samples[i].buckets);
    }
    free(s->samples);
    free(s);
}

/* Label values may hold anything (connector and topic names): backslash, double quote and line
 * feed are escaped as the exposition format requires. */
static void append_label_value(rkb_buf_t *out, const char *value) {
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            rkb_buf_appends(out, "\\\\");
        else if (*p == '"')
            rkb_buf_appends(out, "\\\"");
        else if (*p == '\n')
            rkb_buf_appends(out, "\\n");
        else
            rkb_buf_append(out, p, 1);
    }
}

static char *render_labels(const char *const *labels) {
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "");
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        rkb_buf_appendf(&out, "%s%s=\"", i ? "," : "", labels[i]);
        append_label_value(&out, labels[i + 1]);
        rkb_buf_appends(&out, "\"");
    }
    return out.data;
}

static sample_t *new_sample(rkb_scrape_t *s, const rkb_metric_family_t *family,
                            const char *const *labels) {
    if (s->cnt == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->samples = rkb_realloc(s->samples, s->cap * sizeof(*s->samples));
    }
    sample_t *sample = &s->samples[s->cnt++];
    memset(sample, 0, sizeof(*sample));
    sample->family = family;
    sample->labels = render_labels(labels);
    return sample;
}

void rkb_scrape_add(rkb_scrape_t *s, const rkb_metric_family_t *family, const char *const *labels,
                    double value) {
    new_sample(s, family, labels)->value = value;
}

void rkb_scrape_add_histogram(rkb_scrape_t *s, const rkb_metric_family_t *family,
                              const char *const *labels, const rkb_histogram_t *h) {
    sample_t *sample = new_sample(s, family, labels);
    sample->bounds = h->bounds;
    sample->bound_cnt = h->bound_cnt;
    sample->scale = h->scale;
    sample->buckets = rkb_calloc(h->bound_cnt + 1, sizeof(*sample->buckets));
    uint64_t total = 0;
    for (size_t i = 0; i <= h->bound_cnt; i++) {
        total += atomic_load(&h->buckets[i]);
        sample->buckets[i] = total;
    }
    sample->sum = (double)atomic_load(&h->sum) * h->scale;
}

/* A sample value: integers as integers, anything else in full precision. */
static void append_number(rkb_buf_t *out, double v) {
    if (isnan(v))
        rkb_buf_appends(out, "NaN");
    else if (isinf(v))
        rkb_buf_appends(out, v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9007199254740992.0)
        rkb_buf_appendf(out, "%.0f", v);
    else {
        /* The shortest text that reads back as the same double (0.3, not 0.29999999999999999). */
        char text[32];
        for (int precision = 15; precision <= 17; precision++) {
            snprintf(text, sizeof(text), "%.*g", precision, v);
            if (strtod(text, NULL) == v)
                break;
        }
        rkb_buf_appends(out, text);
    }
}

/* "NAME{labels,extra}" or "NAME{extra}" or "NAME". */
static void append_series(rkb_buf_t *out, const char *name, const char *suffix, const char *labels,
                          const char *extra) {
    rkb_buf_appendf(out, "%s%s", name, suffix);
    bool has_labels = *labels, has_extra = extra && *extra;
    if (!has_labels && !has_extra)
        return;
    rkb_buf_appendf(out, "{%s%s%s}", labels, has_labels && has_extra ? "," : "",
                    has_extra ? extra : "");
}

static void render_histogram(const sample_t *sample, rkb_buf_t *out) {
    const char *name = sample->family->name;
    char le[64];
    for (size_t i = 0; i <= sample->bound_cnt; i++) {
        if (i < sample->bound_cnt)
            snprintf(le, sizeof(le), "le=\"%.15g\"", (double)sample->bounds[i] * sample->scale);
        else
            snprintf(le, sizeof(le), "le=\"+Inf\"");
        append_series(out, name, "_bucket", sample->labels, le);
        rkb_buf_appends(out, " ");
        append_number(out, (double)sample->buckets[i]);
        rkb_buf_appends(out, "\n");
    }
    append_series(out, name, "_sum", sample->labels, NULL);
    rkb_buf_appends(out, " ");
    append_number(out, sample->sum);
    rkb_buf_appends(out, "\n");
    append_series(out, name, "_count", sample->labels, NULL);
    rkb_buf_appends(out, " ");
    append_number(out, (double)sample->buckets[sample->bound_cnt]);
    rkb_buf_appends(out, "\n");
}

static const char *type_name(rkb_metric_type_t type) {
    switch (type) {
    case RKB_METRIC_COUNTER:
        return "counter";
    case RKB_METRIC_GAUGE:
        return "gauge";
    case RKB_METRIC_HISTOGRAM:
        return "histogram";
    }
    return "untyped";
}

void rkb_scrape_render(const rkb_scrape_t *s, rkb_buf_t *out) {
    bool *done = rkb_calloc(s->cnt ? s->cnt : 1, sizeof(*done));
    for (size_t i = 0; i < s->cnt; i++) {
        if (done[i])
            continue;
        const rkb_metric_family_t *family = s->samples[i].family;
        /* Families are told apart by name, so that two declarations of one family (it must
         * not happen) would still render as one block. */
        rkb_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", family->name, family->help,
                        family->name, type_name(family->type));
        for (size_t j = i; j < s->cnt; j++) {
            const sample_t *sample = &s->samples[j];
            if (done[j] || strcmp(sample->family->name, family->name))
                continue;
            done[j] = true;
            if (family->type == RKB_METRIC_HISTOGRAM) {
                render_histogram(sample, out);
                continue;
            }
            append_series(out, family->name, "", sample->labels, NULL);
            rkb_buf_appends(out, " ");
            append_number(out, sample->value);
            rkb_buf_appends(out, "\n");
        }
    }
    free(done);
}

/* ---- Task metrics ---------------------------------------------------------------------------- */

/* Redis round trips: 100 µs .. 10 s. */
static const int64_t round_trip_bounds_us[] = {100,    250,    500,     1000,    2500,
                                               5000,   10000,  25000,   50000,   100000,
                                               250000, 500000, 1000000, 2500000, 10000000};
/* Records per batch, up to batch.size's maximum. */
static const int64_t batch_bounds[] = {1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 100000};

typedef struct lag_s {
    char *topic;
    int32_t partition;
    int64_t lag;
} lag_t;

typedef struct pending_s {
    char *stream;
    int64_t entries;
} pending_t;

struct rkb_task_metrics_s {
    rkb_histogram_t round_trip; /* microseconds, rendered in seconds */
    rkb_histogram_t batch;      /* records */
    _Atomic uint64_t rebalances;
    _Atomic int redis_up, redis_down; /* connections of the task in each state */

    pthread_mutex_t lock; /* the tables below: replaced by the task, read by scrapes */
    lag_t *lags;
    size_t lag_cnt;
    pending_t *pending;
    size_t pending_cnt;
};

static _Thread_local rkb_task_metrics_t *current;

rkb_task_metrics_t *rkb_task_metrics_new(void) {
    rkb_task_metrics_t *tm = rkb_calloc(1, sizeof(*tm));
    rkb_histogram_init(&tm->round_trip, round_trip_bounds_us, RKB_ARRAY_SIZE(round_trip_bounds_us),
                       1e-6);
    rkb_histogram_init(&tm->batch, batch_bounds, RKB_ARRAY_SIZE(batch_bounds), 1);
    pthread_mutex_init(&tm->lock, NULL);
    return tm;
}

static void free_lags(lag_t *lags, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        free(lags[i].topic);
    free(lags);
}

void rkb_task_metrics_destroy(rkb_task_metrics_t *tm) {
    if (!tm)
        return;
    rkb_histogram_clear(&tm->round_trip);
    rkb_histogram_clear(&tm->batch);
    free_lags(tm->lags, tm->lag_cnt);
    for (size_t i = 0; i < tm->pending_cnt; i++)
        free(tm->pending[i].stream);
    free(tm->pending);
    pthread_mutex_destroy(&tm->lock);
    free(tm);
}

rkb_task_metrics_t *rkb_task_metrics_current(void) {
    return current;
}

void rkb_task_metrics_set_current(rkb_task_metrics_t *tm) {
    current = tm;
}

void rkb_task_metrics_redis_round_trip(rkb_task_metrics_t *tm, int64_t us, size_t commands) {
    (void)commands;
    if (tm)
        rkb_histogram_observe(&tm->round_trip, us);
}

void rkb_task_metrics_redis_conn(rkb_task_metrics_t *tm, rkb_conn_state_t from,
                                 rkb_conn_state_t to) {
    if (!tm || from == to)
        return;
    if (from == RKB_CONN_UP)
        atomic_fetch_sub(&tm->redis_up, 1);
    else if (from == RKB_CONN_DOWN)
        atomic_fetch_sub(&tm->redis_down, 1);
    if (to == RKB_CONN_UP)
        atomic_fetch_add(&tm->redis_up, 1);
    else if (to == RKB_CONN_DOWN)
        atomic_fetch_add(&tm->redis_down, 1);
}

void rkb_task_metrics_batch(rkb_task_metrics_t *tm, size_t records) {
    if (tm)
        rkb_histogram_observe(&tm->batch, (int64_t)records);
}

void rkb_task_metrics_rebalance(rkb_task_metrics_t *tm) {
    if (tm)
        atomic_fetch_add(&tm->rebalances, 1);
}

/* Reads topics.*.partitions.* of a librdkafka statistics object: the assigned partitions
 * ("desired") whose lag is known (consumer_lag >= 0; partition -1 is librdkafka's internal
 * unassigned one). */
static void read_lags(json_t *stats, lag_t **out, size_t *out_cnt) {
    const char *topic_name;
    json_t *topic;
    json_object_foreach(json_object_get(stats, "topics"), topic_name, topic) {
        const char *key;
        json_t *part;
        json_object_foreach(json_object_get(topic, "partitions"), key, part) {
            json_t *id = json_object_get(part, "partition");
            json_t *lag = json_object_get(part, "consumer_lag");
            json_t *desired = json_object_get(part, "desired");
            if (!json_is_integer(id) || json_integer_value(id) < 0 || !json_is_integer(lag) ||
                json_integer_value(lag) < 0 || (desired && !json_is_true(desired)))
                continue;
            *out = rkb_realloc(*out, (*out_cnt + 1) * sizeof(**out));
            (*out)[*out_cnt] = (lag_t){.topic = rkb_strdup(topic_name),
                                       .partition = (int32_t)json_integer_value(id),
                                       .lag = json_integer_value(lag)};
            (*out_cnt)++;
        }
    }
}

void rkb_task_metrics_consumer_stats(rkb_task_metrics_t *tm, const char *json) {
    if (!tm)
        return;
    json_t *stats = json_loads(json, 0, NULL);
    if (!stats)
        return;
    lag_t *lags = NULL;
    size_t cnt = 0;
    read_lags(stats, &lags, &cnt);
    json_decref(stats);
    pthread_mutex_lock(&tm->lock);
    lag_t *old = tm->lags;
    size_t old_cnt = tm->lag_cnt;
    tm->lags = lags;
    tm->lag_cnt = cnt;
    pthread_mutex_unlock(&tm->lock);
    free_lags(old, old_cnt);
}

void rkb_task_metrics_stream_pending(rkb_task_metrics_t *tm, const char *stream, int64_t entries) {
    if (!tm)
        return;
    pthread_mutex_lock(&tm->lock);
    size_t i = 0;
    while (i < tm->pending_cnt && strcmp(tm->pending[i].stream, stream))
        i++;
    if (i == tm->pending_cnt) {
        tm->pending = rkb_realloc(tm->pending, (tm->pending_cnt + 1) * sizeof(*tm->pending));
        tm->pending[tm->pending_cnt++].stream = rkb_strdup(stream);
    }
    tm->pending[i].entries = entries;
    pthread_mutex_unlock(&tm->lock);
}

static const rkb_metric_family_t fam_round_trip = {
    "rkbridge_redis_round_trip_seconds", RKB_METRIC_HISTOGRAM,
    "Time from sending a pipeline (or one command) to Redis until its last reply arrived; a "
    "blocking read (XREADGROUP BLOCK) counts the time it waited"};
static const rkb_metric_family_t fam_batch = {
    "rkbridge_batch_records", RKB_METRIC_HISTOGRAM,
    "Records per batch: written to Redis in one round (sink), read in one XREADGROUP (stream "
    "source)"};
static const rkb_metric_family_t fam_rebalances = {
    "rkbridge_rebalances_total", RKB_METRIC_COUNTER,
    "Consumer group rebalances that reached the task (new assignments)"};
static const rkb_metric_family_t fam_redis_connected = {
    "rkbridge_redis_connected", RKB_METRIC_GAUGE,
    "1 while every Redis connection of the task is up, 0 while one is down or none was made yet "
    "(a sink connects at its first batch)"};
static const rkb_metric_family_t fam_lag = {
    "rkbridge_consumer_lag", RKB_METRIC_GAUGE,
    "Records in the partition after the group's committed offset (librdkafka consumer_lag)"};
static const rkb_metric_family_t fam_pending = {
    "rkbridge_stream_pending_entries", RKB_METRIC_GAUGE,
    "Entries delivered to the stream's consumer group and not acknowledged yet (XPENDING)"};

/* labels + {name, value} in a caller-provided array of room entries. */
static void extend_labels(const char **out, size_t room, const char *const *labels,
                          const char *name, const char *value, const char *name2,
                          const char *value2) {
    size_t n = 0;
    for (size_t i = 0; labels && labels[i] && n + 6 < room; i++)
        out[n++] = labels[i];
    out[n++] = name;
    out[n++] = value;
    if (name2) {
        out[n++] = name2;
        out[n++] = value2;
    }
    out[n] = NULL;
}

void rkb_task_metrics_scrape(rkb_task_metrics_t *tm, rkb_scrape_t *s, const char *const *labels) {
    rkb_scrape_add_histogram(s, &fam_round_trip, labels, &tm->round_trip);
    rkb_scrape_add_histogram(s, &fam_batch, labels, &tm->batch);
    rkb_scrape_add(s, &fam_rebalances, labels, (double)atomic_load(&tm->rebalances));
    rkb_scrape_add(s, &fam_redis_connected, labels,
                   atomic_load(&tm->redis_up) > 0 && atomic_load(&tm->redis_down) == 0);
    const char *extended[32];
    char partition[16];
    pthread_mutex_lock(&tm->lock);
    for (size_t i = 0; i < tm->lag_cnt; i++) {
        snprintf(partition, sizeof(partition), "%d", (int)tm->lags[i].partition);
        extend_labels(extended, RKB_ARRAY_SIZE(extended), labels, "topic", tm->lags[i].topic,
                      "partition", partition);
        rkb_scrape_add(s, &fam_lag, extended, (double)tm->lags[i].lag);
    }
    for (size_t i = 0; i < tm->pending_cnt; i++) {
        extend_labels(extended, RKB_ARRAY_SIZE(extended), labels, "stream", tm->pending[i].stream,
                      NULL, NULL);
        rkb_scrape_add(s, &fam_pending, extended, (double)tm->pending[i].entries);
    }
    pthread_mutex_unlock(&tm->lock);
}

int64_t rkb_task_metrics_backlog(rkb_task_metrics_t *tm) {
    int64_t total = 0;
    pthread_mutex_lock(&tm->lock);
    for (size_t i = 0; i < tm->lag_cnt; i++)
        total += tm->lags[i].lag;
    for (size_t i = 0; i < tm->pending_cnt; i++)
        total += tm->pending[i].entries;
    pthread_mutex_unlock(&tm->lock);
    return total;
}

bool rkb_task_metrics_redis_down(const rkb_task_metrics_t *tm) {
    return atomic_load(&tm->redis_down) > 0;
}
