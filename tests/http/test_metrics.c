/*
 * test_metrics.c — GET /metrics and GET /health against a running worker with a sink (from a
 * file) and a stream source (over the REST API), one redis-server and one dev broker.
 *
 * Every scrape passes a strict check of Prometheus's text exposition format 0.0.4 (written here
 * from the format's description, not from any client library): HELP/TYPE lines, metric and label
 * name syntax, label value escaping, values, families contiguous with TYPE before samples,
 * histograms with _bucket{le} ascending to +Inf and cumulative, _count = the +Inf bucket, _sum,
 * and no series twice. The counters must equal the records the test moved; consumer lag and
 * stream pending entries fall to 0 once everything is through; a 404 is counted; /health says
 * 503 while Redis is down and 200 again after.
 */
#include "http_test_util.h"

#include <ctype.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define WAIT_MS 60000

static h_redis_t *redis;
static h_broker_t *broker;

static int group_setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "metrics-in:4");
    return 0;
}

static int group_teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* ---- A strict reader of the text exposition format ------------------------------------------- */

typedef struct series_s {
    char *name;   /* sample name (with _bucket, _sum, _count) */
    char *labels; /* canonical: sorted name="value", pairs (unescaped), le left out of buckets */
    char *le;     /* buckets: the le value */
    double value;
} series_t;

typedef struct exposition_s {
    series_t *series;
    size_t cnt;
} exposition_t;

/* A deviation ends the parse: reject() records why and jumps back to exposition_parse, which
 * frees what it built. Temporaries live on the stack, so nothing leaks on the way out. */
static jmp_buf reject_jmp;
static char reject_why[1024];

static void reject(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void reject(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reject_why, sizeof(reject_why), fmt, ap);
    va_end(ap);
    longjmp(reject_jmp, 1);
}

static bool metric_name_ok(const char *s, size_t len) {
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static bool label_name_ok(const char *s, size_t len) {
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_') || (len >= 2 && !strncmp(s, "__", 2)))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* A value as Go's ParseFloat takes it in the format: decimal numbers, NaN, +Inf, -Inf. */
static bool value_ok(const char *s, double *out) {
    if (!strcmp(s, "NaN")) {
        *out = NAN;
        return true;
    }
    if (!strcmp(s, "+Inf") || !strcmp(s, "-Inf")) {
        *out = s[0] == '+' ? INFINITY : -INFINITY;
        return true;
    }
    char *end;
    *out = strtod(s, &end);
    return *s && end != s && !*end && !strpbrk(s, "xXpPiInN");
}

typedef struct label_s {
    char name[128];
    char value[1024];
} label_t;

static int compare_labels(const void *a, const void *b) {
    return strcmp(((const label_t *)a)->name, ((const label_t *)b)->name);
}

/* Parses "{a="x",b="y"}" at *p (nothing when there is no '{'). Returns the label count. */
static size_t parse_labels(const char **p, label_t *labels, size_t max, const char *line) {
    size_t cnt = 0;
    if (**p != '{')
        return 0;
    (*p)++;
    while (**p != '}') {
        const char *name = *p;
        while (**p && **p != '=')
            (*p)++;
        size_t name_len = (size_t)(*p - name);
        if (**p != '=' || !label_name_ok(name, name_len) || name_len >= sizeof(labels->name))
            reject("bad label name in: %s", line);
        if (cnt == max)
            reject("too many labels in: %s", line);
        snprintf(labels[cnt].name, sizeof(labels[cnt].name), "%.*s", (int)name_len, name);
        (*p)++;
        if (**p != '"')
            reject("label value not quoted in: %s", line);
        (*p)++;
        size_t n = 0;
        for (;; (*p)++) {
            if (!**p)
                reject("unterminated label value in: %s", line);
            if (**p == '"')
                break;
            char c = **p;
            if (c == '\\') {
                (*p)++;
                if (**p == 'n')
                    c = '\n';
                else if (**p == '\\' || **p == '"')
                    c = **p;
                else
                    reject("bad escape in a label value: %s", line);
            }
            if (n + 1 >= sizeof(labels->value))
                reject("label value too long in: %s", line);
            labels[cnt].value[n++] = c;
        }
        labels[cnt].value[n] = '\0';
        cnt++;
        (*p)++; /* the closing quote */
        if (**p == ',')
            (*p)++;
        else if (**p != '}')
            reject("expected ',' or '}' in: %s", line);
    }
    (*p)++;
    for (size_t i = 0; i < cnt; i++)
        for (size_t j = i + 1; j < cnt; j++)
            if (!strcmp(labels[i].name, labels[j].name))
                reject("label %s twice in: %s", labels[i].name, line);
    return cnt;
}

/* True when sample is one of the family's sample names, given its TYPE. */
static bool sample_in_family(const char *sample, const char *family, const char *type) {
    if (strcmp(type, "histogram"))
        return !strcmp(sample, family);
    size_t len = strlen(family);
    return !strncmp(sample, family, len) &&
           (!strcmp(sample + len, "_bucket") || !strcmp(sample + len, "_sum") ||
            !strcmp(sample + len, "_count"));
}

/* For each label set of a histogram family: buckets in ascending le ending with +Inf,
 * cumulative, _count equal to the +Inf bucket, one _sum; no bucket or sum without a count. */
static void check_histograms(const exposition_t *ex, const char *family) {
    char bucket[300], sum[300], count[300];
    snprintf(bucket, sizeof(bucket), "%s_bucket", family);
    snprintf(sum, sizeof(sum), "%s_sum", family);
    snprintf(count, sizeof(count), "%s_count", family);
    for (size_t i = 0; i < ex->cnt; i++) {
        if (strcmp(ex->series[i].name, count))
            continue;
        const char *labels = ex->series[i].labels;
        double last_le = -INFINITY, last_value = 0;
        bool inf = false, has_sum = false;
        for (size_t j = 0; j < ex->cnt; j++) {
            const series_t *s = &ex->series[j];
            if (strcmp(s->labels, labels))
                continue;
            has_sum |= !strcmp(s->name, sum);
            if (strcmp(s->name, bucket))
                continue;
            double le;
            if (!value_ok(s->le, &le))
                reject("%s: bad le \"%s\"", family, s->le);
            if (inf)
                reject("%s{%s}: a bucket after +Inf", family, labels);
            if (!(le > last_le))
                reject("%s{%s}: le not ascending", family, labels);
            if (s->value < last_value)
                reject("%s{%s}: buckets not cumulative", family, labels);
            last_le = le;
            last_value = s->value;
            inf = isinf(le) && le > 0;
        }
        if (!inf)
            reject("%s{%s}: no le=\"+Inf\" bucket", family, labels);
        if (last_value != ex->series[i].value)
            reject("%s{%s}: _count %g is not the +Inf bucket %g", family, labels,
                   ex->series[i].value, last_value);
        if (!has_sum)
            reject("%s{%s}: no _sum", family, labels);
    }
    for (size_t j = 0; j < ex->cnt; j++) {
        const series_t *s = &ex->series[j];
        if (strcmp(s->name, bucket) && strcmp(s->name, sum))
            continue;
        bool counted = false;
        for (size_t i = 0; i < ex->cnt && !counted; i++)
            counted = !strcmp(ex->series[i].name, count) && !strcmp(ex->series[i].labels, s->labels);
        if (!counted)
            reject("%s{%s}: no _count", family, s->labels);
    }
}

static void exposition_free(exposition_t *ex) {
    for (size_t i = 0; i < ex->cnt; i++) {
        free(ex->series[i].name);
        free(ex->series[i].labels);
        free(ex->series[i].le);
    }
    free(ex->series);
    memset(ex, 0, sizeof(*ex));
}

/* One sample line of the family being read. */
static void parse_sample(exposition_t *ex, const char *line, const char *family, const char *type) {
    const char *p = line;
    size_t name_len = strcspn(p, "{ ");
    if (!metric_name_ok(p, name_len) || name_len >= 256)
        reject("bad sample name: %s", line);
    char name[256];
    snprintf(name, sizeof(name), "%.*s", (int)name_len, p);
    if (!*type || !sample_in_family(name, family, type))
        reject("a sample outside its family (# TYPE %s %s): %s", family, type, line);
    if (!strcmp(type, "counter") && (name_len < 6 || strcmp(name + name_len - 6, "_total")))
        reject("a counter not named *_total: %s", line);
    p += name_len;
    label_t labels[16];
    size_t label_cnt = parse_labels(&p, labels, 16, line);
    if (*p != ' ')
        reject("expected one space before the value: %s", line);
    p++;
    char value_text[64];
    size_t value_len = strcspn(p, " ");
    if (value_len >= sizeof(value_text))
        reject("bad value: %s", line);
    snprintf(value_text, sizeof(value_text), "%.*s", (int)value_len, p);
    double value;
    if (!value_ok(value_text, &value))
        reject("bad value: %s", line);
    if (p[value_len]) { /* an optional timestamp, milliseconds */
        char *end;
        strtoll(p + value_len + 1, &end, 10);
        if (*end || end == p + value_len + 1)
            reject("bad timestamp: %s", line);
    }
    bool is_bucket = !strcmp(type, "histogram") && name_len > 7 &&
                     !strcmp(name + name_len - 7, "_bucket");
    qsort(labels, label_cnt, sizeof(*labels), compare_labels);
    char canonical[4096] = "", le[1024] = "";
    bool has_le = false;
    for (size_t i = 0; i < label_cnt; i++) {
        if (!strcmp(labels[i].name, "le") && is_bucket) {
            snprintf(le, sizeof(le), "%s", labels[i].value);
            has_le = true;
            continue;
        }
        size_t used = strlen(canonical);
        int n = snprintf(canonical + used, sizeof(canonical) - used, "%s=\"%s\",",
                         labels[i].name, labels[i].value);
        if (n < 0 || (size_t)n >= sizeof(canonical) - used)
            reject("labels too long for this check: %s", line);
    }
    if (is_bucket && !has_le)
        reject("a bucket without le: %s", line);
    for (size_t i = 0; i < ex->cnt; i++)
        if (!strcmp(ex->series[i].name, name) && !strcmp(ex->series[i].labels, canonical) &&
            !strcmp(ex->series[i].le ? ex->series[i].le : "", le))
            reject("a series twice: %s", line);
    series_t *s = realloc(ex->series, (ex->cnt + 1) * sizeof(*ex->series));
    if (!s)
        abort();
    ex->series = s;
    ex->series[ex->cnt++] = (series_t){.name = strdup(name),
                                       .labels = strdup(canonical),
                                       .le = has_le ? strdup(le) : NULL,
                                       .value = value};
}

/* Parses and checks a whole exposition. Returns false with reject_why on a deviation (ex is
 * then empty). */
static bool exposition_parse(const char *text, exposition_t *ex) {
    memset(ex, 0, sizeof(*ex));
    if (setjmp(reject_jmp)) {
        exposition_free(ex);
        return false;
    }
    static char seen[512][256]; /* families met so far */
    size_t seen_cnt = 0;
    char family[256] = "", type[32] = "";
    bool help_seen = false;
    size_t len = strlen(text);
    if (!len || text[len - 1] != '\n')
        reject("the exposition does not end with a line feed");
    for (const char *line = text; *line;) {
        const char *eol = strchr(line, '\n');
        char copy[8192];
        if ((size_t)(eol - line) >= sizeof(copy))
            reject("a line too long");
        snprintf(copy, sizeof(copy), "%.*s", (int)(eol - line), line);
        line = eol + 1;
        if (!*copy)
            reject("an empty line");
        if (strncmp(copy, "# HELP ", 7) && strncmp(copy, "# TYPE ", 7)) {
            if (copy[0] != '#') /* other comments are allowed */
                parse_sample(ex, copy, family, type);
            continue;
        }
        bool is_help = copy[2] == 'H';
        const char *name = copy + 7;
        size_t name_len = strcspn(name, " ");
        if (!metric_name_ok(name, name_len) || name[name_len] != ' ' || name_len >= 256)
            reject("bad metric name in: %s", copy);
        if (strlen(family) != name_len || strncmp(family, name, name_len)) {
            /* A new family, never met before: a family's lines are contiguous. */
            if (*family && !strcmp(type, "histogram"))
                check_histograms(ex, family);
            snprintf(family, sizeof(family), "%.*s", (int)name_len, name);
            for (size_t i = 0; i < seen_cnt; i++)
                if (!strcmp(seen[i], family))
                    reject("family %s in two places", family);
            if (seen_cnt == 512)
                reject("too many families");
            snprintf(seen[seen_cnt++], sizeof(seen[0]), "%s", family);
            type[0] = '\0';
            help_seen = false;
        }
        const char *rest = name + name_len + 1;
        if (is_help) {
            if (help_seen || !*rest)
                reject("HELP twice, or empty: %s", copy);
            help_seen = true;
            for (const char *q = rest; *q; q++)
                if (*q == '\\' && q[1] != '\\' && q[1] != 'n')
                    reject("bad escape in HELP: %s", copy);
                else if (*q == '\\')
                    q++;
            continue;
        }
        if (*type)
            reject("TYPE twice: %s", copy);
        if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram") &&
            strcmp(rest, "summary") && strcmp(rest, "untyped"))
            reject("bad TYPE: %s", copy);
        for (size_t i = 0; i < ex->cnt; i++) /* TYPE comes before the family's samples */
            if (sample_in_family(ex->series[i].name, family, rest))
                reject("TYPE after samples of its family: %s", copy);
        snprintf(type, sizeof(type), "%s", rest);
    }
    if (!strcmp(type, "histogram"))
        check_histograms(ex, family);
    return true;
}

/* The sum of every series of name whose canonical labels contain all of the given
 * "name=\"value\"," fragments; *found counts them. */
static double series_sum(const exposition_t *ex, const char *name, const char *with,
                         const char *with2, size_t *found) {
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < ex->cnt; i++) {
        const series_t *s = &ex->series[i];
        if (strcmp(s->name, name) || (with && !strstr(s->labels, with)) ||
            (with2 && !strstr(s->labels, with2)))
            continue;
        sum += s->value;
        cnt++;
    }
    if (found)
        *found = cnt;
    return sum;
}

/* Scrapes and checks. */
static void scrape(const char *address, exposition_t *ex) {
    h_http_resp_t resp;
    assert_int_equal(h_http(address, "GET", "/metrics", NULL, NULL, &resp), 200);
    char *type = h_http_header(&resp, "Content-Type");
    assert_non_null(strstr(type, "text/plain"));
    assert_non_null(strstr(type, "version=0.0.4"));
    free(type);
    if (!exposition_parse(resp.body, ex))
        fail_msg("GET /metrics is not valid: %s\n%s", reject_why, resp.body);
    h_http_resp_free(&resp);
}

/* ---- The validator itself must be able to fail ----------------------------------------------- */

static void expect_rejected(const char *text, const char *why) {
    exposition_t ex;
    if (exposition_parse(text, &ex))
        fail_msg("the validator accepted:\n%s", text);
    if (!strstr(reject_why, why))
        fail_msg("rejected for '%s', expected '%s':\n%s", reject_why, why, text);
}

static void test_validator_rejects(void **state) {
    exposition_t ex;
    assert_false(exposition_parse("# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\n"
                                  "a_total{x=\"1\\\\ \\\" \\n\"} 3\n# a comment\n"
                                  "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                                  "h_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n"
                                  "u 1e-3 1700000000000\n",
                                  &ex));
    /* "u" has no TYPE: that one line makes it invalid ... */
    assert_int_equal(ex.cnt, 0);
    assert_non_null(strstr(reject_why, "outside its family"));
    /* ... and without it the same text is valid. */
    if (!exposition_parse("# HELP a_total A \\\\ b\\n.\n# TYPE a_total counter\n"
                          "a_total{x=\"1\\\\ \\\" \\n\"} 3\n# a comment\n"
                          "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                          "h_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n",
                          &ex))
        fail_msg("%s", reject_why);
    assert_int_equal(ex.cnt, 5);
    assert_string_equal(ex.series[0].labels, "x=\"1\\ \" \n\",");
    exposition_free(&ex);

    expect_rejected("# TYPE a_total counter\na_total 1\na_total 2\n", "twice");
    expect_rejected("# TYPE a_total counter\na_total{x=\"1\"} 1\n# TYPE b gauge\nb 1\n"
                    "# TYPE a_total counter\na_total{x=\"2\"} 1\n",
                    "two places");
    expect_rejected("a_total 1\n", "outside its family");
    expect_rejected("# TYPE 1a gauge\n1a 1\n", "metric name");
    expect_rejected("# TYPE a gauge\na{1x=\"v\"} 1\n", "label name");
    expect_rejected("# TYPE a gauge\na{__x=\"v\"} 1\n", "label name");
    expect_rejected("# TYPE a gauge\na{x=\"a\\tb\"} 1\n", "escape");
    expect_rejected("# TYPE a gauge\na{x=\"a\"b\"} 1\n", "expected ','");
    expect_rejected("# TYPE a gauge\na{x=\"v\",x=\"w\"} 1\n", "twice");
    expect_rejected("# TYPE a gauge\na one\n", "bad value");
    expect_rejected("# TYPE a gauge\na 0x10\n", "bad value");
    expect_rejected("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "+Inf");
    expect_rejected("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n"
                    "h_sum 1\nh_count 1\n",
                    "cumulative");
    expect_rejected("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
                    "_count");
    expect_rejected("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                    "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
                    "ascending");
    expect_rejected("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n", "_sum");
    expect_rejected("# TYPE h histogram\nh_bucket 1\nh_sum 1\nh_count 1\n", "without le");
    expect_rejected("# TYPE a counter\na 1\n", "_total");
    expect_rejected("# TYPE a gauge\na 1", "line feed");
    expect_rejected("# HELP a x\n# HELP a y\n# TYPE a gauge\na 1\n", "HELP twice");
    expect_rejected("# TYPE a gauge\n# TYPE a counter\na 1\n", "TYPE twice");
    expect_rejected("# TYPE a gauge\na 1\n\n", "empty line");
}

/* ---- Counters against the records moved ----------------------------------------------------- */

#define SINK_RECORDS   50
#define SOURCE_RECORDS 30

static long long sink_keys(void) {
    return h_redis_int(redis, "EVAL %s 0", "return #redis.call('KEYS', 'metrics-in:*')");
}

static bool lag_settled(const char *address, double *lag, size_t *partitions) {
    exposition_t ex;
    scrape(address, &ex);
    *lag = series_sum(&ex, "rkbridge_consumer_lag", "connector=\"metrics-sink\"", NULL, partitions);
    exposition_free(&ex);
    return *partitions == 4 && *lag == 0;
}

static bool pending_settled(const char *address, const char *source) {
    exposition_t ex;
    scrape(address, &ex);
    size_t found;
    char with[128];
    snprintf(with, sizeof(with), "connector=\"%s\"", source);
    double pending = series_sum(&ex, "rkbridge_stream_pending_entries", with, NULL, &found);
    exposition_free(&ex);
    return found == 1 && pending == 0;
}

/* Escaped in labels: a connector whose name holds a quote and a backslash. */
/* A connector named odd"name\ (its label value needs escaping): as JSON text, and as is. */
#define ODD_NAME_JSON "odd\\\"name\\\\"
#define ODD_NAME      "odd\"name\\"

static void test_counters_equal_records_moved(void **state) {
    char *file_text = NULL;
    assert_true(asprintf(&file_text,
                         "name=metrics-sink\n"
                         "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                         "topics=metrics-in\nredis.uri=%s\nredis.type=STRING\ntasks.max=2\n"
                         "kafka.session.timeout.ms=6000\nkafka.heartbeat.interval.ms=500\n"
                         "kafka.statistics.interval.ms=200\n",
                         h_redis_uri(redis)) > 0);
    const char *file = h_write_file("metrics-sink.properties", file_text);
    free(file_text);
    char *wt = NULL;
    assert_true(asprintf(&wt, "kafka.bootstrap.servers=%s\nconfig.storage.topic=metrics-configs\n",
                         broker->bootstrap) > 0);
    char address[128];
    const char *const files[] = {file, NULL};
    h_proc_t *proc = h_worker_start(wt, files, address, sizeof(address));

    /* A scrape before anything moved already passes the check. */
    exposition_t ex;
    scrape(address, &ex);
    exposition_free(&ex);

    char *seed = seed_payload(redis, ODD_NAME_JSON, "metricstream");
    assert_int_equal(http_status(address, "POST", "/connectors", seed), 201);
    free(seed);

    rd_kafka_t *producer = h_producer_new(broker);
    char key[32];
    for (int i = 0; i < SINK_RECORDS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        h_produce(producer, "metrics-in", i % 4, key, "v", NULL);
    }
    h_producer_flush(producer);
    h_producer_destroy(producer);
    stream_add(redis, "metricstream", 0, SOURCE_RECORDS);

    if (!H_WAIT_FOR(sink_keys() == SINK_RECORDS, WAIT_MS) ||
        !H_WAIT_FOR(topic_count(broker, "metricstream") == SOURCE_RECORDS, WAIT_MS)) {
        dump_output(proc);
        fail_msg("records did not move");
    }
    /* The stream source acknowledges right after its reports: pending falls to 0. */
    assert_true(H_WAIT_FOR(pending_settled(address, ODD_NAME), WAIT_MS));
    /* The sink commits within auto.commit.interval.ms: the lag of its 4 partitions falls to 0. */
    double lag;
    size_t partitions;
    if (!H_WAIT_FOR(lag_settled(address, &lag, &partitions), WAIT_MS))
        fail_msg("consumer lag: %g over %zu partitions", lag, partitions);

    scrape(address, &ex);
    size_t found;
    const char *sink = "connector=\"metrics-sink\"";
    const char *source = "connector=\"" ODD_NAME "\"";
    assert_int_equal(series_sum(&ex, "rkbridge_records_read_total", sink, NULL, &found),
                     SINK_RECORDS);
    assert_int_equal(found, 2); /* one per task */
    assert_int_equal(series_sum(&ex, "rkbridge_records_written_total", sink, NULL, NULL),
                     SINK_RECORDS);
    assert_int_equal(series_sum(&ex, "rkbridge_records_failed_total", sink, NULL, NULL), 0);
    assert_int_equal(series_sum(&ex, "rkbridge_records_dead_lettered_total", sink, NULL, NULL),
                     0);
    assert_int_equal(series_sum(&ex, "rkbridge_records_read_total", source, NULL, &found),
                     SOURCE_RECORDS);
    assert_int_equal(found, 1);
    assert_int_equal(series_sum(&ex, "rkbridge_records_written_total", source, NULL, NULL),
                     SOURCE_RECORDS);
    /* Batches: every record in one, and counted; Redis round trips timed. */
    assert_true(series_sum(&ex, "rkbridge_batch_records_sum", sink, NULL, NULL) >= SINK_RECORDS);
    assert_true(series_sum(&ex, "rkbridge_batch_records_count", sink, NULL, NULL) >= 1);
    assert_int_equal(series_sum(&ex, "rkbridge_batch_records_sum", source, NULL, NULL),
                     SOURCE_RECORDS);
    assert_true(series_sum(&ex, "rkbridge_redis_round_trip_seconds_count", sink, NULL, NULL) >= 1);
    assert_true(series_sum(&ex, "rkbridge_redis_round_trip_seconds_sum", sink, NULL, NULL) > 0);
    /* Each sink task joined the group: at least one assignment each. */
    assert_true(series_sum(&ex, "rkbridge_rebalances_total", sink, "task=\"0\"", NULL) >= 1);
    assert_true(series_sum(&ex, "rkbridge_rebalances_total", sink, "task=\"1\"", NULL) >= 1);
    assert_int_equal(series_sum(&ex, "rkbridge_redis_connected", source, NULL, NULL), 1);
    assert_int_equal(series_sum(&ex, "rkbridge_task_state", source, "state=\"RUNNING\"", NULL), 1);
    assert_int_equal(series_sum(&ex, "rkbridge_connector_state", sink, "state=\"RUNNING\"", NULL),
                     1);
    assert_int_equal(series_sum(&ex, "rkbridge_retries_total", sink, NULL, NULL), 0);
    double errors_before = series_sum(&ex, "rkbridge_rest_errors_total", "code=\"404\"", NULL, NULL);
    exposition_free(&ex);

    /* A client error is counted under its status. */
    assert_int_equal(http_status(address, "GET", "/connectors/none", NULL), 404);
    scrape(address, &ex);
    assert_int_equal(series_sum(&ex, "rkbridge_rest_errors_total", "code=\"404\"", NULL, NULL),
                     errors_before + 1);
    exposition_free(&ex);

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* ---- Health ----------------------------------------------------------------------------------- */

static bool health_is(const char *address, int want_status, const char *want) {
    int status;
    json_t *health = http_json(address, "GET", "/health", NULL, NULL, &status);
    bool ok = status == want_status &&
              !strcmp(json_string_value(json_object_get(health, "status")) ?: "", want);
    json_decref(health);
    return ok;
}

static void test_health(void **state) {
    char *wt = NULL;
    assert_true(asprintf(&wt, "kafka.bootstrap.servers=%s\nconfig.storage.topic=health-configs\n",
                         broker->bootstrap) > 0);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    assert_true(health_is(address, 200, "healthy")); /* no connector: ready */
    char *seed = seed_payload(redis, "healthy-source", "healthstream");
    assert_int_equal(http_status(address, "POST", "/connectors", seed), 201);
    free(seed);
    assert_true(H_WAIT_FOR(http_states_are(address, "healthy-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    assert_true(H_WAIT_FOR(health_is(address, 200, "healthy"), WAIT_MS));

    /* Redis gone: not ready, in Connect's error shape plus what is not ready. */
    h_redis_kill(redis);
    assert_true(H_WAIT_FOR(health_is(address, 503, "unhealthy"), WAIT_MS));
    int status;
    json_t *health = http_json(address, "GET", "/health", NULL, NULL, &status);
    assert_int_equal(json_integer_value(json_object_get(health, "error_code")), 503);
    assert_non_null(strstr(json_string_value(json_object_get(health, "message")), "Redis"));
    json_t *entry = json_object_get(json_object_get(health, "connectors"), "healthy-source");
    assert_false(json_is_true(json_object_get(entry, "ready")));
    json_decref(health);
    /* Liveness is another question: the process answers. */
    assert_int_equal(http_status(address, "GET", "/health/live", NULL), 200);

    h_redis_restart(redis);
    assert_true(H_WAIT_FOR(health_is(address, 200, "healthy"), WAIT_MS));

    /* A paused connector is ready; a stopped one is not (ready = RUNNING or PAUSED). */
    assert_int_equal(http_status(address, "PUT", "/connectors/healthy-source/pause", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "healthy-source", "PAUSED", "PAUSED", 1),
                           WAIT_MS));
    assert_true(health_is(address, 200, "healthy"));
    assert_int_equal(http_status(address, "PUT", "/connectors/healthy-source/stop", NULL), 202);
    assert_true(H_WAIT_FOR(health_is(address, 503, "unhealthy"), WAIT_MS));

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_rejects),
        cmocka_unit_test(test_counters_equal_records_moved),
        cmocka_unit_test(test_health),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
