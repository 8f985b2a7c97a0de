/*
 * test_window.c — windowed aggregation (redis.type=WINDOW, SEMANTICS.md §6.3 and §7) against a
 * real redis-server and the dev broker.
 *
 * Through rkbridge: W-1 (tumbling, grace 0, results and their timestamps as each window closes)
 * continued by W-9 (a restart keeps the clock) and W-10 (a deleted result is not re-created by a
 * late record), W-2 (grace), W-8 (the Flink cross-check, the late record dead-lettered with
 * x-late-reason), W-6 (session merge and bridge, update and final mode with tombstones), U-2
 * (duplicated input, same unique count), U-3 (HyperLogLog accuracy), a 20k-record count over
 * four partitions killed at failpoints and at a random point whose de-duplicated results equal
 * an undisturbed run's, and the validation messages.
 * Straight through the apply script (no Kafka): W-3 boundaries, W-4 hopping assignment, W-5
 * hopping partial lateness, W-7 session late, event time parsing, every aggregate at once.
 *
 * One redis-server and one dev broker for the file; each test has its own topics and connector
 * names. Progress is waited for on Redis (the stored offset, an empty pending hash), never on
 * time.
 */
#include "harness.h"
#include "record_fixture.h"
#include "../sink/sink_test_util.h"

#include "config/config.h"
#include "process/window.h"
#include "sink/eos.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_redis_t *redis;
static h_broker_t *broker;
static rkb_redis_t *conn; /* the modules' own connection, for the script-level tests */

static int setup(void **state) {
    (void)state;
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "w1:1,w1_out:1,w2:1,w2_out:1,w8:1,w8_out:1,w8_dlq:1,w6:1,"
                               "w6u_out:1,w6f_out:1,u2:1,u2_out:1,u3:1,u3_out:1,wc:4,"
                               "wc_clean_out:2,wc_crash_out:2,wd:1,wd_out:1");
    rkb_redis_conf_t rc;
    char errstr[512];
    rkb_redis_conf_init(&rc);
    if (rkb_redis_conf_from_uri(&rc, h_redis_uri(redis), errstr, sizeof(errstr)))
        fail_msg("uri: %s", errstr);
    conn = rkb_redis_new(&rc, "test");
    rkb_redis_conf_clear(&rc);
    if (rkb_redis_connect(conn, errstr, sizeof(errstr)) || rkb_eos_load(conn, errstr, sizeof(errstr)))
        fail_msg("redis: %s", errstr);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rkb_redis_destroy(conn);
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------------------- */

/* Checks HGET key field (want NULL: absent). */
static void expect_field(const char *key, const char *field, const char *want) {
    char *got = h_redis_str(redis, "HGET %s %s", key, field);
    if (!want && got)
        fail_msg("%s %s = '%s', want none", key, field, got);
    if (want && (!got || strcmp(got, want)))
        fail_msg("%s %s = %s%s%s, want '%s'", key, field, got ? "'" : "", got ? got : "none",
                 got ? "'" : "", want);
    free(got);
}

static long long field_int(const char *key, const char *field) {
    char *got = h_redis_str(redis, "HGET %s %s", key, field);
    long long n = got ? atoll(got) : 0;
    free(got);
    return n;
}

/* A WINDOW connector file: name, input topic and extra lines (printf-style). */
static char *window_config(const char *name, const char *topic, const char *extra_fmt, ...) {
    char extra[2048];
    va_list ap;
    va_start(ap, extra_fmt);
    vsnprintf(extra, sizeof(extra), extra_fmt, ap);
    va_end(ap);
    return sink_config(redis, broker, name, topic, "redis.type=WINDOW\n%s", extra);
}

/* Produces key/value to topic[partition] with record timestamp ts. */
static void produce_at(rd_kafka_t *p, const char *topic, int32_t partition, const char *key,
                       const char *value, int64_t ts) {
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err)
        fail_msg("produce: %s", rd_kafka_err2str(err));
}

/* Produces {"ts":T} for each event time in ts (key u1), then waits for the acknowledgements. */
static void produce_ts_values(const char *topic, const int64_t *ts, size_t cnt) {
    rd_kafka_t *p = h_producer_new(broker);
    char value[64];
    for (size_t i = 0; i < cnt; i++) {
        snprintf(value, sizeof(value), "{\"ts\":%lld}", (long long)ts[i]);
        h_produce(p, topic, 0, "u1", value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
}

/* Connector name's offset stored in Redis for topic[partition] is next, and none of its window
 * results waits for Kafka. */
static bool caught_up(const char *name, const char *topic, int32_t partition, long long next) {
    char *v = h_redis_str(redis, "GET rkbridge:offset:{%s:%d}:%s", topic, partition, name);
    bool at = v && atoll(v) == next;
    free(v);
    return at &&
           h_redis_int(redis, "HLEN rkbridge:window:{%s:%d}:%s:pending", topic, partition, name) ==
               0;
}

static void wait_caught_up(h_proc_t *proc, const char *name, const char *topic,
                           int32_t partition, long long next) {
    bool ok = H_WAIT_FOR(caught_up(name, topic, partition, next), 60000);
    if (!ok) {
        sink_dump_output(proc);
        fail_msg("%s did not get to offset %lld of %s[%d] with every result emitted", name, next,
                 topic, partition);
    }
}

static void stop(h_proc_t *proc) {
    int status = h_proc_stop(proc, SIGTERM, 30000);
    if (status != 0)
        sink_dump_output(proc);
    assert_int_equal(status, 0);
    h_proc_free(proc);
}

/* One record of an output topic. */
typedef struct result_s {
    char *key;
    char *value; /* NULL: tombstone */
    int64_t timestamp;
    char start[32], end[32]; /* headers x-window-start, x-window-end */
} result_t;

static void header_text(rd_kafka_headers_t *headers, const char *name, char *out, size_t size) {
    const void *val;
    size_t len;
    out[0] = '\0';
    if (headers && rd_kafka_header_get_last(headers, name, &val, &len) == 0 && val)
        snprintf(out, size, "%.*s", (int)len, (const char *)val);
}

/* Every record of topic (all partitions: partition by partition, in offset order). */
static size_t read_results(const char *topic, result_t **out) {
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    result_t *results = calloc(cnt ? cnt : 1, sizeof(*results));
    for (size_t i = 0; i < cnt; i++) {
        rd_kafka_message_t *m = msgs[i];
        results[i].key = strndup(m->key ? m->key : "", m->key_len);
        results[i].value = m->payload ? strndup(m->payload, m->len) : NULL;
        rd_kafka_timestamp_type_t type;
        results[i].timestamp = rd_kafka_message_timestamp(m, &type);
        rd_kafka_headers_t *headers = NULL;
        rd_kafka_message_headers(m, &headers);
        header_text(headers, "x-window-start", results[i].start, sizeof(results[i].start));
        header_text(headers, "x-window-end", results[i].end, sizeof(results[i].end));
    }
    h_messages_free(msgs, cnt);
    *out = results;
    return cnt;
}

static void free_results(result_t *results, size_t cnt) {
    for (size_t i = 0; i < cnt; i++) {
        free(results[i].key);
        free(results[i].value);
    }
    free(results);
}

/* The result JSON of group u1, [start, end), tumbling or session, for a bare value. */
static char *result_json(const char *type, long long start, long long end, const char *value,
                         bool final) {
    char *text;
    bool session = !strcmp(type, "session");
    if (asprintf(&text,
                 "{\"key\":\"u1\",\"window_start\":%lld,\"window_end\":%lld,%s\"type\":\"%s\","
                 "\"value\":%s,\"final\":%s}",
                 start, end, session ? "\"end_inclusive\":true," : "", type, value,
                 final ? "true" : "false") < 0)
        abort();
    return text;
}

/* results[i] is u1's [start, end) of type with value (NULL: a tombstone) and headers. */
static void expect_result(const result_t *results, size_t cnt, size_t i, const char *type,
                          long long start, long long end, const char *value, bool final) {
    if (i >= cnt)
        fail_msg("result %zu missing (%zu results)", i, cnt);
    const result_t *r = &results[i];
    assert_string_equal(r->key, "u1");
    char text[32];
    snprintf(text, sizeof(text), "%lld", start);
    assert_string_equal(r->start, text);
    snprintf(text, sizeof(text), "%lld", end);
    assert_string_equal(r->end, text);
    if (!value) {
        if (r->value)
            fail_msg("result %zu: '%s', want a tombstone for [%lld,%lld]", i, r->value, start, end);
        return;
    }
    char *want = result_json(type, start, end, value, final);
    if (!r->value || strcmp(r->value, want))
        fail_msg("result %zu: %s, want %s", i, r->value ? r->value : "(tombstone)", want);
    free(want);
}

/* ---- W-1, W-9, W-10 ------------------------------------------------------------------------- */

/* W-1: tumbling 10000, grace 0, on the record timestamps (window.time's default). Each window's
 * result comes out when the clock reaches its end: [0,10000)=3 when 10000 arrives (3000 is then
 * late), [10000,20000)=1 when 25000 does; result timestamps window_end - 1. Then W-9: after a
 * restart the clock is still 25000, so 3000 is still late and nothing is emitted again; W-10:
 * the result key of [0,10000) deleted, 4000 is dropped and does not re-create it. */
static void test_w1_tumbling_w9_restart_w10_deleted_key(void **state) {
    char *text = window_config("w1", "w1", "window.size.ms=10000\nwindow.output.topic=w1_out\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    rd_kafka_t *p = h_producer_new(broker);
    const int64_t first[] = {1000, 5000, 9999};
    for (size_t i = 0; i < 3; i++)
        produce_at(p, "w1", 0, "u1", "x", first[i]);
    h_producer_flush(p);
    wait_caught_up(proc, "w1", "w1", 0, 3);
    result_t *results;
    size_t cnt = read_results("w1_out", &results);
    assert_int_equal(cnt, 0); /* nothing closed yet */
    free_results(results, cnt);

    produce_at(p, "w1", 0, "u1", "x", 10000);
    h_producer_flush(p);
    wait_caught_up(proc, "w1", "w1", 0, 4);
    cnt = read_results("w1_out", &results);
    assert_int_equal(cnt, 1);
    expect_result(results, cnt, 0, "tumbling", 0, 10000, "3", true);
    assert_int_equal(results[0].timestamp, 9999);
    free_results(results, cnt);

    produce_at(p, "w1", 0, "u1", "x", 3000);
    produce_at(p, "w1", 0, "u1", "x", 25000);
    h_producer_flush(p);
    wait_caught_up(proc, "w1", "w1", 0, 6);
    cnt = read_results("w1_out", &results);
    assert_int_equal(cnt, 2);
    expect_result(results, cnt, 0, "tumbling", 0, 10000, "3", true);
    expect_result(results, cnt, 1, "tumbling", 10000, 20000, "1", true);
    assert_int_equal(results[1].timestamp, 19999);
    free_results(results, cnt);
    stop(proc);

    const char *state_key = "rkbridge:window:{w1:0}:w1";
    expect_field(state_key, "clock", "25000");
    expect_field(state_key, "dropped_late_records", "1");
    expect_field("win:w1:u1:0", "count", "3");
    expect_field("win:w1:u1:0", "final", "1");
    expect_field("win:w1:u1:10000", "count", "1");
    expect_field("win:w1:u1:10000", "final", "1");
    expect_field("win:w1:u1:20000", "count", "1");
    expect_field("win:w1:u1:20000", "final", NULL); /* still open */
    assert_true(h_redis_int(redis, "PTTL win:w1:u1:0") > 0); /* window.result.ttl.ms */
    assert_int_equal(h_redis_int(redis, "ZCARD %s:open", state_key), 1);

    /* W-9 and W-10 */
    freeReplyObject(h_redis_cmd(redis, "DEL win:w1:u1:0"));
    produce_at(p, "w1", 0, "u1", "x", 3000);
    produce_at(p, "w1", 0, "u1", "x", 4000);
    h_producer_flush(p);
    h_producer_destroy(p);
    proc = h_rkbridge_run(text, NULL);
    free(text);
    wait_caught_up(proc, "w1", "w1", 0, 8);
    stop(proc);
    expect_field(state_key, "dropped_late_records", "3");
    assert_int_equal(h_redis_int(redis, "EXISTS win:w1:u1:0"), 0);
    cnt = read_results("w1_out", &results);
    assert_int_equal(cnt, 2); /* no result emitted again */
    free_results(results, cnt);
}

/* ---- W-2, W-8 ------------------------------------------------------------------------------- */

/* W-2: the same records with grace 2000: 3000 is in time ([0,10000)=4), and [0,10000) closes
 * only when 25000 arrives (25000 >= 12000). Event time from the value (window.time). */
static void test_w2_grace(void **state) {
    char *text = window_config("w2", "w2",
                               "window.size.ms=10000\nwindow.grace.ms=2000\n"
                               "window.time=${value.ts}\nwindow.output.topic=w2_out\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    const int64_t first[] = {1000, 5000, 9999, 10000, 3000};
    produce_ts_values("w2", first, 5);
    wait_caught_up(proc, "w2", "w2", 0, 5);
    result_t *results;
    size_t cnt = read_results("w2_out", &results);
    assert_int_equal(cnt, 0); /* 10000 < 10000 + 2000: [0,10000) is still open */
    free_results(results, cnt);

    const int64_t last[] = {25000};
    produce_ts_values("w2", last, 1);
    wait_caught_up(proc, "w2", "w2", 0, 6);
    stop(proc);
    cnt = read_results("w2_out", &results);
    assert_int_equal(cnt, 2);
    expect_result(results, cnt, 0, "tumbling", 0, 10000, "4", true);
    assert_int_equal(results[0].timestamp, 9999);
    expect_result(results, cnt, 1, "tumbling", 10000, 20000, "1", true);
    free_results(results, cnt);
    expect_field("rkbridge:window:{w2:0}:w2", "dropped_late_records", NULL);
    expect_field("win:w2:u1:0", "count", "4");
}

/* W-8: Flink's BoundedOutOfOrderness(2000) over tumbling 10000 fires [0,10000)=4 after 12000
 * and sends 2000 to the side output. With grace 2000: the same final value, and 2000 is the one
 * late record, produced to the dead-letter topic with x-late-reason=window-closed and counted
 * once. */
static void test_w8_flink_cross_check_late_to_dead_letter(void **state) {
    char *text = window_config("w8", "w8",
                               "window.size.ms=10000\nwindow.grace.ms=2000\n"
                               "window.time=${value.ts}\nwindow.output.topic=w8_out\n"
                               "window.late=dead-letter\nerrors.tolerance=all\n"
                               "errors.deadletterqueue.topic.name=w8_dlq\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    const int64_t ts[] = {1000, 5000, 9999, 10000, 3000, 12000, 2000};
    produce_ts_values("w8", ts, 7);
    wait_caught_up(proc, "w8", "w8", 0, 7);
    stop(proc);

    result_t *results;
    size_t cnt = read_results("w8_out", &results);
    assert_int_equal(cnt, 1);
    expect_result(results, cnt, 0, "tumbling", 0, 10000, "4", true);
    free_results(results, cnt);
    expect_field("rkbridge:window:{w8:0}:w8", "dropped_late_records", "1");
    expect_field("win:w8:u1:10000", "count", "2");

    rd_kafka_message_t **msgs;
    cnt = h_consume_all(broker, "w8_dlq", &msgs);
    assert_int_equal(cnt, 1);
    assert_int_equal(msgs[0]->len, strlen("{\"ts\":2000}"));
    assert_memory_equal(msgs[0]->payload, "{\"ts\":2000}", msgs[0]->len);
    rd_kafka_headers_t *headers = NULL;
    rd_kafka_message_headers(msgs[0], &headers);
    char reason[64];
    header_text(headers, "x-late-reason", reason, sizeof(reason));
    assert_string_equal(reason, "window-closed");
    h_messages_free(msgs, cnt);
}

/* Deliveries of results fail (the broker refuses three produce requests): the results stay
 * pending in Redis, are produced again, and each reaches the topic once (a refused request
 * appended nothing). */
static void test_failed_result_delivery_is_retried(void **state) {
    const int64_t ts[] = {1000, 10000, 25000};
    produce_ts_values("wd", ts, 3);
    assert_int_equal(h_broker_ctl(broker, "error Produce 3 TOPIC_AUTHORIZATION_FAILED "
                                          "TOPIC_AUTHORIZATION_FAILED TOPIC_AUTHORIZATION_FAILED"),
                     0);
    char *text = window_config("wd", "wd",
                               "window.size.ms=10000\nwindow.time=${value.ts}\n"
                               "window.output.topic=wd_out\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    wait_caught_up(proc, "wd", "wd", 0, 3);
    char *out = h_proc_output(proc);
    bool retried = strstr(out, "window result to wd_out: delivery failed") != NULL;
    free(out);
    if (!retried)
        sink_dump_output(proc);
    assert_true(retried);
    stop(proc);
    result_t *results;
    size_t cnt = read_results("wd_out", &results);
    assert_int_equal(cnt, 2);
    expect_result(results, cnt, 0, "tumbling", 0, 10000, "1", true);
    expect_result(results, cnt, 1, "tumbling", 10000, 20000, "1", true);
    free_results(results, cnt);
}

/* ---- W-6 ------------------------------------------------------------------------------------ */

/* W-6: sessions, gap 5000, grace 0, records 0, 4000, 12000, 8000, each alone in its batch. Two
 * connectors on one topic in one process: update mode emits [0,0]=1; then a tombstone for
 * [0,0] and [0,4000]=2; at 12000 the final [0,4000]=2 (closed: 12000 > 4000+5000) and
 * [12000,12000]=1; 8000 bridges both into [0,12000]=4 with tombstones for [12000,12000] and
 * [0,4000]. Final mode emits [0,4000]=2 when it closes, its tombstone when 8000 merges it, and
 * [0,12000]=4 when 30000 closes that. Session results end at the last record (inclusive). */
static void test_w6_session_merge_and_bridge(void **state) {
    char *update = window_config("w6u", "w6",
                                 "window.type=session\nwindow.gap.ms=5000\n"
                                 "window.time=${value.ts}\nwindow.emit=update\n"
                                 "window.output.topic=w6u_out\n");
    char *final = window_config("w6f", "w6",
                                "window.type=session\nwindow.gap.ms=5000\n"
                                "window.time=${value.ts}\nwindow.output.topic=w6f_out\n");
    const char *const argv[] = {"rkbridge", "run", h_write_file("w6u.properties", update),
                                h_write_file("w6f.properties", final), NULL};
    free(update);
    free(final);
    h_proc_t *proc = h_rkbridge_spawn(argv, NULL);

    const int64_t ts[] = {0, 4000, 12000, 8000, 30000};
    for (size_t i = 0; i < 5; i++) {
        produce_ts_values("w6", &ts[i], 1);
        wait_caught_up(proc, "w6u", "w6", 0, (long long)i + 1);
        wait_caught_up(proc, "w6f", "w6", 0, (long long)i + 1);
    }
    stop(proc);

    result_t *results;
    size_t cnt = read_results("w6u_out", &results);
    size_t i = 0;
    expect_result(results, cnt, i++, "session", 0, 0, "1", false);
    expect_result(results, cnt, i++, "session", 0, 0, NULL, false);
    expect_result(results, cnt, i++, "session", 0, 4000, "2", false);
    expect_result(results, cnt, i++, "session", 0, 4000, "2", true);
    expect_result(results, cnt, i++, "session", 12000, 12000, "1", false);
    expect_result(results, cnt, i++, "session", 12000, 12000, NULL, false);
    expect_result(results, cnt, i++, "session", 0, 4000, NULL, false);
    expect_result(results, cnt, i++, "session", 0, 12000, "4", false);
    expect_result(results, cnt, i++, "session", 0, 12000, "4", true); /* 30000 closes it */
    expect_result(results, cnt, i++, "session", 30000, 30000, "1", false);
    assert_int_equal(cnt, i);
    assert_int_equal(results[2].timestamp, 4000); /* a session's timestamp: its last record */
    free_results(results, cnt);

    cnt = read_results("w6f_out", &results);
    i = 0;
    expect_result(results, cnt, i++, "session", 0, 4000, "2", true);
    expect_result(results, cnt, i++, "session", 0, 4000, NULL, false);
    expect_result(results, cnt, i++, "session", 0, 12000, "4", true);
    assert_int_equal(cnt, i);
    assert_int_equal(results[2].timestamp, 12000);
    free_results(results, cnt);

    /* Redis: the merged session closed under its final name; the pieces are gone. */
    expect_field("win:w6f:u1:0:12000", "count", "4");
    expect_field("win:w6f:u1:0:12000", "final", "1");
    assert_int_equal(h_redis_int(redis, "EXISTS win:w6f:u1:0:4000 win:w6f:u1:12000:open "
                                        "win:w6f:u1:0:open"),
                     0);
    expect_field("win:w6f:u1:30000:open", "count", "1");
}

/* ---- U-2, U-3 ------------------------------------------------------------------------------- */

/* Produces users user:FIRST..user:LAST (key k, event times in [0, 60000)) to topic. */
static void produce_users(rd_kafka_t *p, const char *topic, const char *key, int first, int last) {
    char value[96];
    for (int u = first; u <= last; u++) {
        snprintf(value, sizeof(value), "{\"user\":\"user:%d\",\"ts\":%d}", u, u % 60000);
        h_produce(p, topic, 0, key, value, NULL);
    }
}

static const char *const unique_config =
    "window.size.ms=60000\nwindow.time=${value.ts}\nwindow.aggregates=count,distinct\n"
    "window.distinct=${value.user}\nwindow.output.topic=%s\n";

/* The value of the one result of topic for key k: {"count":C,"distinct":D}. */
static void unique_result(const char *topic, long long *count, long long *distinct) {
    result_t *results;
    size_t cnt = read_results(topic, &results);
    assert_int_equal(cnt, 1);
    const char *value = results[0].value;
    assert_non_null(value);
    assert_non_null(strstr(value, "\"type\":\"tumbling\""));
    assert_non_null(strstr(value, "\"approx\":true,\"final\":true}"));
    const char *v = strstr(value, "\"value\":{\"count\":");
    assert_non_null(v);
    if (sscanf(v, "\"value\":{\"count\":%lld,\"distinct\":%lld}", count, distinct) != 2)
        fail_msg("unexpected result %s", value);
    assert_int_equal(results[0].timestamp, 59999);
    free_results(results, cnt);
}

/* U-2: the same 1000 (user, time) events fed twice (an at-least-once replay upstream): the
 * unique count equals one pass's, exactly (PFADD of the same elements: deterministic). */
static void test_u2_duplicated_input_same_unique_count(void **state) {
    char *text = window_config("u2", "u2", unique_config, "u2_out");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    rd_kafka_t *p = h_producer_new(broker);
    produce_users(p, "u2", "k", 1, 1000);
    produce_users(p, "u2", "k", 1, 1000);
    h_produce(p, "u2", 0, "k", "{\"user\":\"closer\",\"ts\":60000}", NULL); /* closes [0,60000) */
    h_producer_flush(p);
    h_producer_destroy(p);
    wait_caught_up(proc, "u2", "u2", 0, 2001);
    stop(proc);

    for (int u = 1; u <= 1000; u++)
        freeReplyObject(h_redis_cmd(redis, "PFADD u2:single-pass user:%d", u));
    long long single_pass = h_redis_int(redis, "PFCOUNT u2:single-pass");
    long long count, distinct;
    unique_result("u2_out", &count, &distinct);
    assert_int_equal(count, 2000);
    assert_int_equal(distinct, single_pass);
    assert_int_equal(field_int("win:u2:k:0", "distinct"), single_pass);
    assert_int_equal(h_redis_int(redis, "EXISTS win:u2:k:0:distinct"), 0); /* dropped at close */
}

/* U-3: 10000 distinct users in one window: the estimate is within 3 sigma (0.81 %) of 10000. */
static void test_u3_unique_count_accuracy(void **state) {
    char *text = window_config("u3", "u3", unique_config, "u3_out");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    rd_kafka_t *p = h_producer_new(broker);
    produce_users(p, "u3", "k", 1, 10000);
    h_produce(p, "u3", 0, "k", "{\"user\":\"closer\",\"ts\":60000}", NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
    wait_caught_up(proc, "u3", "u3", 0, 10001);
    stop(proc);
    long long count, distinct;
    unique_result("u3_out", &count, &distinct);
    assert_int_equal(count, 10000);
    if (llabs(distinct - 10000) > 243)
        fail_msg("estimate %lld is more than 243 from 10000", distinct);
    assert_int_equal(field_int("win:u3:k:0", "distinct"), distinct);
}

/* ---- crashes ------------------------------------------------------------------------------ */

enum { WC_PARTITIONS = 4, WC_PER_PARTITION = 5000, WC_KEYS_PER_PARTITION = 10 };

/* Record j of partition p: key k<p + 4*(j%10)>, event time 10j + (7j % 50): out of order by up
 * to 49 ms, never late with grace 100. */
static int64_t wc_ts(int j) {
    return 10LL * j + (7 * j) % 50;
}

static void produce_wc(void) {
    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[48];
    for (int j = 0; j < WC_PER_PARTITION; j++) {
        for (int part = 0; part < WC_PARTITIONS; part++) {
            snprintf(key, sizeof(key), "k%d", part + WC_PARTITIONS * (j % WC_KEYS_PER_PARTITION));
            snprintf(value, sizeof(value), "{\"ts\":%lld}", (long long)wc_ts(j));
            h_produce(p, "wc", part, key, value, NULL);
        }
    }
    h_producer_flush(p);
    h_producer_destroy(p);
}

static char *wc_config(const char *name, const char *output) {
    return window_config(name, "wc",
                         "window.size.ms=1000\nwindow.grace.ms=100\nwindow.time=${value.ts}\n"
                         "window.output.topic=%s\nbatch.size=500\n",
                         output);
}

static bool wc_done(const char *name) {
    for (int part = 0; part < WC_PARTITIONS; part++)
        if (!caught_up(name, "wc", part, WC_PER_PARTITION))
            return false;
    return true;
}

static long long wc_applied(const char *name) {
    long long sum = 0;
    for (int part = 0; part < WC_PARTITIONS; part++) {
        char *v = h_redis_str(redis, "GET rkbridge:offset:{wc:%d}:%s", part, name);
        sum += v ? atoll(v) : 0;
        free(v);
    }
    return sum;
}

/* A final result by (key, window_start, window_end), and its value. */
typedef struct wc_result_s {
    char id[128];
    char value[256];
} wc_result_t;

static int wc_result_cmp(const void *a, const void *b) {
    return strcmp(((const wc_result_t *)a)->id, ((const wc_result_t *)b)->id);
}

/* The distinct results of topic, sorted by id; fails on two different values for one id.
 * *raw gets how many records the topic holds. */
static size_t wc_distinct_results(const char *topic, wc_result_t **out, size_t *raw) {
    result_t *results;
    size_t cnt = read_results(topic, &results);
    wc_result_t *all = calloc(cnt ? cnt : 1, sizeof(*all));
    for (size_t i = 0; i < cnt; i++) {
        assert_non_null(results[i].value);
        snprintf(all[i].id, sizeof(all[i].id), "%s/%s/%s", results[i].key, results[i].start,
                 results[i].end);
        snprintf(all[i].value, sizeof(all[i].value), "%s", results[i].value);
    }
    free_results(results, cnt);
    qsort(all, cnt, sizeof(*all), wc_result_cmp);
    size_t distinct = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (distinct && !strcmp(all[distinct - 1].id, all[i].id)) {
            if (strcmp(all[distinct - 1].value, all[i].value))
                fail_msg("%s emitted as %s and as %s", all[i].id, all[distinct - 1].value,
                         all[i].value);
            continue;
        }
        all[distinct++] = all[i];
    }
    *raw = cnt;
    *out = all;
    return distinct;
}

/* What an exact count gives: per partition, every window of each key that the partition's last
 * event time closed (end + grace <= clock), with its record count. */
static size_t wc_expected(wc_result_t **out) {
    enum { WINDOWS = 60 };
    static int counts[WC_PARTITIONS * WC_KEYS_PER_PARTITION][WINDOWS];
    memset(counts, 0, sizeof(counts));
    int64_t clock = 0;
    for (int j = 0; j < WC_PER_PARTITION; j++) {
        clock = wc_ts(j) > clock ? wc_ts(j) : clock;
        for (int part = 0; part < WC_PARTITIONS; part++)
            counts[part + WC_PARTITIONS * (j % WC_KEYS_PER_PARTITION)][wc_ts(j) / 1000]++;
    }
    wc_result_t *all = calloc(WC_PARTITIONS * WC_KEYS_PER_PARTITION * WINDOWS, sizeof(*all));
    size_t cnt = 0;
    for (int k = 0; k < WC_PARTITIONS * WC_KEYS_PER_PARTITION; k++) {
        for (int w = 0; w < WINDOWS; w++) {
            long long start = w * 1000LL, end = start + 1000;
            if (!counts[k][w] || end + 100 > clock)
                continue;
            snprintf(all[cnt].id, sizeof(all[cnt].id), "k%d/%lld/%lld", k, start, end);
            snprintf(all[cnt].value, sizeof(all[cnt].value),
                     "{\"key\":\"k%d\",\"window_start\":%lld,\"window_end\":%lld,\"type\":"
                     "\"tumbling\",\"value\":%d,\"final\":true}",
                     k, start, end, counts[k][w]);
            cnt++;
        }
    }
    qsort(all, cnt, sizeof(*all), wc_result_cmp);
    *out = all;
    return cnt;
}

static void expect_same_results(const wc_result_t *got, size_t got_cnt, const wc_result_t *want,
                                size_t want_cnt, const char *what) {
    for (size_t i = 0; i < got_cnt && i < want_cnt; i++)
        if (strcmp(got[i].id, want[i].id) || strcmp(got[i].value, want[i].value))
            fail_msg("%s: result %zu is %s, want %s", what, i, got[i].value, want[i].value);
    if (got_cnt != want_cnt)
        fail_msg("%s: %zu distinct results, want %zu", what, got_cnt, want_cnt);
}

static void run_to_failpoint(const char *text, const char *failpoint) {
    const char *const env[] = {failpoint, NULL};
    h_proc_t *proc = h_rkbridge_run(text, env);
    int status = h_proc_wait(proc, 120000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
}

/* 20000 records over four partitions and 40 keys counted in 1 s windows: an undisturbed run,
 * and a run killed after a Redis apply (crash_after_redis_apply), after Kafka acknowledged
 * results not yet removed from Redis (crash_after_window_emit: they come again), and at a
 * random point (SIGKILL), then finished. Both give the same distinct results as an exact count,
 * with no window emitted twice with different values. */
static void test_crashes_emit_what_an_undisturbed_run_does(void **state) {
    produce_wc();
    wc_result_t *want;
    size_t want_cnt = wc_expected(&want);

    char *text = wc_config("wc_clean", "wc_clean_out");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(wc_done("wc_clean"), 180000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    stop(proc);
    wc_result_t *clean;
    size_t clean_raw, clean_cnt = wc_distinct_results("wc_clean_out", &clean, &clean_raw);
    expect_same_results(clean, clean_cnt, want, want_cnt, "undisturbed run");
    assert_int_equal(clean_raw, clean_cnt); /* nothing emitted twice without a crash */

    text = wc_config("wc_crash", "wc_crash_out");
    run_to_failpoint(text, "RKB_FAILPOINT=crash_after_redis_apply@1500");
    run_to_failpoint(text, "RKB_FAILPOINT=crash_after_window_emit@300");
    srandom((unsigned)h_now_ms());
    long long target = wc_applied("wc_crash") + 2000 + random() % 4000;
    if (target > WC_PARTITIONS * WC_PER_PARTITION - 500)
        target = WC_PARTITIONS * WC_PER_PARTITION - 500;
    proc = h_rkbridge_run(text, NULL);
    H_WAIT_FOR(wc_applied("wc_crash") >= target, 120000);
    assert_int_equal(h_proc_stop(proc, SIGKILL, 10000), 128 + SIGKILL);
    h_proc_free(proc);

    proc = h_rkbridge_run(text, NULL);
    free(text);
    done = H_WAIT_FOR(wc_done("wc_crash"), 180000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    stop(proc);
    wc_result_t *crashed;
    size_t crashed_raw, crashed_cnt = wc_distinct_results("wc_crash_out", &crashed, &crashed_raw);
    expect_same_results(crashed, crashed_cnt, clean, clean_cnt, "crashed run");
    /* crash_after_window_emit left delivered results in Redis: they were emitted again. */
    assert_true(crashed_raw > crashed_cnt);
    free(want);
    free(clean);
    free(crashed);
}

/* ---- validation --------------------------------------------------------------------------- */

static void test_validation_names_the_key(void **state) {
    const char *path = h_write_file(
        "bad-window.properties",
        "name=bad\nconnector.class=com.redis.kafka.connect.RedisSinkConnector\ntopics=t\n"
        "redis.type=WINDOW\n"
        "window.aggregates=count,median,sum,count\n" /* line 5 */
        "window.type=hopping\nwindow.size.ms=1000\n"
        "window.advance.ms=2000\n" /* line 8 */
        "window.group=${valeu.x}\n" /* line 9 */
        "window.late=dead-letter\n" /* line 10 */
        "redis.delivery=at-least-once\n" /* line 11 */);
    const char *const argv[] = {h_rkbridge_bin(), "validate", path, NULL};
    char *out = NULL, *err = NULL;
    assert_int_equal(h_run(argv, &out, &err), 2);
    const char *const want[] = {
        ":5: window.aggregates: unknown aggregate 'median'",
        ":5: window.aggregates: 'count' is listed twice",
        ":5: window.value: must be set for window.aggregates sum",
        ":8: window.advance.ms: 2000 is more than window.size.ms (1000)",
        ":9: window.group: ",
        ":10: window.late: dead-letter needs errors.deadletterqueue.topic.name",
        ":11: redis.delivery: redis.type=WINDOW always runs exactly-once",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(err, want[i]))
            fail_msg("no '%s' in:\n%s", want[i], err);
    free(out);
    free(err);

    path = h_write_file("bad-window2.properties",
                        "name=bad2\nconnector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                        "topics=t\nredis.type=WINDOW\nwindow.aggregates=distinct\n"
                        "window.advance.ms=5\n");
    const char *const argv2[] = {h_rkbridge_bin(), "validate", path, NULL};
    assert_int_equal(h_run(argv2, &out, &err), 2);
    assert_non_null(strstr(err, ":5: window.distinct: must be set for window.aggregates distinct"));
    assert_non_null(strstr(err, ":6: window.advance.ms: only used with window.type=hopping"));
    free(out);
    free(err);
}

/* ---- straight through the apply script ---------------------------------------------------- */

/* A window built from config lines, as a sink task would build it (name = the namespace). */
static rkb_window_t *direct_window(const char *name, const char *lines) {
    rkb_config_t *conf = rkb_config_new();
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    char *text;
    if (asprintf(&text, "name=%s\nredis.type=WINDOW\nkafka.bootstrap.servers=%s\n%s", name,
                 broker->bootstrap, lines) < 0)
        abort();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        *eq = '\0';
        rkb_config_set(conf, line, eq + 1, "test", &errs);
    }
    free(text);
    rkb_window_validate(conf, &errs);
    if (errs.cnt)
        fail_msg("config: %s", errs.msgs[0]);
    rkb_errors_clear(&errs);
    char errstr[512];
    rkb_window_t *win = rkb_window_new(conf, 0, "test", name, errstr, sizeof(errstr));
    if (!win)
        fail_msg("rkb_window_new: %s", errstr);
    rkb_config_destroy(conf);
    return win;
}

/* Runs one record of topic "d", partition, offset, key u1, record timestamp ts and value
 * through RKB.WINDOW in one script call; returns the call's result. */
static rkb_eos_result_t direct_apply(rkb_window_t *win, const char *ns, int32_t partition,
                                     int64_t offset, int64_t ts, const char *value) {
    rkb_record_t rec;
    h_record_make(&rec, "u1", value);
    rec.topic = "d";
    rec.partition = partition;
    rec.offset = offset;
    rec.timestamp = ts;
    char errstr[512], offset_key[256];
    rkb_cmds_t *cmds = rkb_cmds_new(), *out = rkb_cmds_new();
    if (rkb_window_encode(win, &rec, cmds, errstr, sizeof(errstr)) != 1)
        fail_msg("encode: %s", errstr);
    rkb_eos_call_t *call = rkb_eos_call_new();
    rkb_eos_call_begin(call, rkb_eos_offset_key(ns, "d", partition, offset_key,
                                                sizeof(offset_key)));
    rkb_eos_call_add(call, offset, cmds, 0, 1);
    rkb_eos_call_end(call, out);
    redisReply *reply = NULL;
    if (rkb_redis_pipeline(conn, out, &reply, errstr, sizeof(errstr)))
        fail_msg("pipeline: %s", errstr);
    rkb_eos_result_t result;
    if (rkb_eos_parse_reply(reply, &result, errstr, sizeof(errstr)))
        fail_msg("script: %s", errstr);
    if (result.bad_offset >= 0)
        fail_msg("record %lld refused: %s", (long long)offset, result.bad_reason);
    freeReplyObject(reply);
    rkb_eos_call_destroy(call);
    rkb_cmds_destroy(cmds);
    rkb_cmds_destroy(out);
    rkb_record_clear(&rec);
    return result;
}

/* W-3: size 10000, grace 0: 9999 is in [0,10000), 10000 in [10000,20000). Grace 5000: after the
 * clock reached 14999 a record at 100 is still taken, after 15000 it is dropped. */
static void test_w3_boundaries(void **state) {
    rkb_window_t *win = direct_window("d3", "window.size.ms=10000\n");
    direct_apply(win, "d3", 0, 0, 9999, "x");
    direct_apply(win, "d3", 0, 1, 10000, "x");
    expect_field("win:d3:u1:0", "count", "1");
    expect_field("win:d3:u1:0", "final", "1");
    expect_field("win:d3:u1:10000", "count", "1");
    rkb_window_destroy(win);

    win = direct_window("d3g", "window.size.ms=10000\nwindow.grace.ms=5000\n");
    direct_apply(win, "d3g", 0, 0, 14999, "x");
    rkb_eos_result_t result = direct_apply(win, "d3g", 0, 1, 100, "x");
    assert_int_equal(rkb_eos_result_counter(&result, "dropped_late_records"), 0);
    expect_field("win:d3g:u1:0", "count", "1");
    direct_apply(win, "d3g", 0, 2, 15000, "x");
    result = direct_apply(win, "d3g", 0, 3, 100, "x");
    assert_int_equal(rkb_eos_result_counter(&result, "dropped_late_records"), 1);
    expect_field("win:d3g:u1:0", "count", "1");
    expect_field("win:d3g:u1:0", "final", "1");
    rkb_window_destroy(win);
}

/* W-4: hopping size 10000, advance 5000 (each record on its own partition: its own clock). */
static void test_w4_hopping_assignment(void **state) {
    rkb_window_t *win =
        direct_window("d4", "window.type=hopping\nwindow.size.ms=10000\nwindow.advance.ms=5000\n");
    const struct {
        int64_t ts;
        const char *keys[3];
    } cases[] = {
        {12000, {"win:d4:u1:5000", "win:d4:u1:10000", NULL}},
        {3000, {"win:d4:u1:0", NULL}},
        {7000, {"win:d4:u1:0", "win:d4:u1:5000", NULL}},
        {10000, {"win:d4:u1:5000", "win:d4:u1:10000", NULL}},
    };
    for (int i = 0; i < 4; i++) {
        freeReplyObject(h_redis_cmd(redis, "EVAL %s 0", "for _, k in ipairs(redis.call('KEYS', "
                                                        "'win:d4:*')) do redis.call('DEL', k) end"));
        direct_apply(win, "d4", i, 0, cases[i].ts, "x");
        redisReply *keys = h_redis_cmd(redis, "KEYS win:d4:*");
        size_t want = 0;
        while (cases[i].keys[want])
            want++;
        if (keys->elements != want)
            fail_msg("ts %lld: %zu windows, want %zu", (long long)cases[i].ts, keys->elements,
                     want);
        for (size_t k = 0; k < want; k++)
            expect_field(cases[i].keys[k], "count", "1");
        freeReplyObject(keys);
    }
    rkb_window_destroy(win);
}

/* W-5: hopping 10000/5000, grace 0: 1000, 12000, then 7000: [0,10000) is closed (clock 12000),
 * so 7000 only counts in [5000,15000) (2 there with 12000); the skipped window is counted in
 * dropped_late_windows, the record is not a dropped record. */
static void test_w5_hopping_partial_lateness(void **state) {
    rkb_window_t *win =
        direct_window("d5", "window.type=hopping\nwindow.size.ms=10000\nwindow.advance.ms=5000\n");
    direct_apply(win, "d5", 0, 0, 1000, "x");
    direct_apply(win, "d5", 0, 1, 12000, "x");
    rkb_eos_result_t result = direct_apply(win, "d5", 0, 2, 7000, "x");
    assert_int_equal(rkb_eos_result_counter(&result, "dropped_late_windows"), 1);
    assert_int_equal(rkb_eos_result_counter(&result, "dropped_late_records"), 0);
    expect_field("win:d5:u1:0", "count", "1");
    expect_field("win:d5:u1:0", "final", "1");
    expect_field("win:d5:u1:5000", "count", "2");
    expect_field("win:d5:u1:10000", "count", "1");
    expect_field("rkbridge:window:{d:0}:d5", "dropped_late_windows", "1");
    expect_field("rkbridge:window:{d:0}:d5", "dropped_late_records", NULL);
    rkb_window_destroy(win);
}

/* W-7: W-6's sessions, then 20000 (closes [0,12000]) and 1000: its merged session [0,12000]
 * ends before 20000 - 0 - 5000, so it is dropped, and the closed session is untouched. */
static void test_w7_session_late(void **state) {
    rkb_window_t *win = direct_window("d7", "window.type=session\nwindow.gap.ms=5000\n");
    const int64_t ts[] = {0, 4000, 12000, 8000, 20000};
    for (int i = 0; i < 5; i++)
        direct_apply(win, "d7", 0, i, ts[i], "x");
    expect_field("win:d7:u1:0:12000", "count", "4");
    expect_field("win:d7:u1:0:12000", "final", "1");
    rkb_eos_result_t result = direct_apply(win, "d7", 0, 5, 1000, "x");
    assert_int_equal(rkb_eos_result_counter(&result, "dropped_late_records"), 1);
    expect_field("win:d7:u1:0:12000", "count", "4");
    expect_field("win:d7:u1:20000:open", "count", "1");
    assert_int_equal(h_redis_int(redis, "EXISTS win:d7:u1:1000:open win:d7:u1:0:open"), 0);
    /* Both sessions are still the group's (the late record's look-up kept the later one). */
    char *score = h_redis_str(redis, "ZSCORE win:d7:u1:sessions win:d7:u1:20000:open");
    assert_non_null(score);
    assert_string_equal(score, "20000");
    free(score);
    assert_int_equal(h_redis_int(redis, "ZCARD win:d7:u1:sessions"), 2);
    rkb_window_destroy(win);
}

/* Event times: ms, a stream entry ID (its ms); a missing, negative or unparsable one is counted
 * in dropped_invalid_ts and changes nothing. */
static void test_event_time_parsing(void **state) {
    rkb_window_t *win = direct_window("dt", "window.size.ms=10000\nwindow.time=${value}\n");
    direct_apply(win, "dt", 0, 0, 0, "1700000000000-3");
    direct_apply(win, "dt", 0, 1, 0, "1700000001000");
    const char *const bad[] = {"abc", "-5", "12-", "1.5", ""};
    for (int i = 0; i < 5; i++) {
        rkb_eos_result_t result = direct_apply(win, "dt", 0, 2 + i, 0, bad[i]);
        if (rkb_eos_result_counter(&result, "dropped_invalid_ts") != 1)
            fail_msg("'%s' was taken as an event time", bad[i]);
    }
    expect_field("win:dt:u1:1700000000000", "count", "2");
    expect_field("rkbridge:window:{d:0}:dt", "dropped_invalid_ts", "5");
    expect_field("rkbridge:window:{d:0}:dt", "clock", "1700000001000");
    rkb_window_destroy(win);
}

/* Every aggregate at once: the hash at close and the pending result (its JSON, in the
 * configured order, with approx for distinct). A value that is not a number is a data error
 * naming window.value. */
static void test_all_aggregates(void **state) {
    rkb_window_t *win = direct_window(
        "da", "window.size.ms=10000\nwindow.aggregates=count,sum,min,max,avg,distinct\n"
              "window.value=${value.n}\nwindow.distinct=${value.u}\n"
              "window.output.topic=da_out\n");
    const char *const values[] = {"{\"n\":1.5,\"u\":\"a\"}", "{\"n\":2,\"u\":\"b\"}",
                                  "{\"n\":-3,\"u\":\"a\"}", "{\"n\":4e2,\"u\":\"c\"}"};
    for (int i = 0; i < 4; i++)
        direct_apply(win, "da", 0, i, 1000 * (i + 1), values[i]);
    rkb_eos_result_t result = direct_apply(win, "da", 0, 4, 10000, "{\"n\":0,\"u\":\"z\"}");
    assert_int_equal(rkb_eos_result_counter(&result, "windows_closed"), 1);
    assert_int_equal(rkb_eos_result_counter(&result, "pending"), 1);
    expect_field("win:da:u1:0", "sum", "400.5");
    expect_field("win:da:u1:0", "min", "-3");
    expect_field("win:da:u1:0", "max", "400");
    expect_field("win:da:u1:0", "avg", "100.125");
    expect_field("win:da:u1:0", "distinct", "3");
    char *entry = h_redis_str(redis, "HGET rkbridge:window:{d:0}:da:pending 0:10000:u1");
    assert_non_null(entry);
    const char *want = "{\"key\":\"u1\",\"window_start\":0,\"window_end\":10000,\"type\":"
                       "\"tumbling\",\"value\":{\"count\":4,\"sum\":400.5,\"min\":-3,\"max\":400,"
                       "\"avg\":100.125,\"distinct\":3},\"approx\":true,\"final\":true}";
    const char *body = strchr(entry, '\n');
    assert_non_null(body);
    assert_string_equal(body + 1 + 2, want); /* after the key "u1" */
    assert_true(!strncmp(entry, "1 9999 0 10000 2 ", 17));
    free(entry);

    rkb_record_t rec;
    h_record_make(&rec, "u1", "{\"n\":\"many\",\"u\":\"a\"}");
    rkb_cmds_t *cmds = rkb_cmds_new();
    char errstr[512];
    assert_int_equal(rkb_window_encode(win, &rec, cmds, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "window.value: 'many' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, "u1", "{\"u\":\"a\"}");
    assert_int_equal(rkb_window_encode(win, &rec, cmds, errstr, sizeof(errstr)), -1);
    assert_non_null(strstr(errstr, "window.value: ${value.n}"));
    rkb_record_clear(&rec);
    h_record_make(&rec, "u1", NULL);
    assert_int_equal(rkb_window_encode(win, &rec, cmds, errstr, sizeof(errstr)), 0); /* ignored */
    rkb_record_clear(&rec);
    rkb_cmds_destroy(cmds);
    rkb_window_destroy(win);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w3_boundaries),
        cmocka_unit_test(test_w4_hopping_assignment),
        cmocka_unit_test(test_w5_hopping_partial_lateness),
        cmocka_unit_test(test_w7_session_late),
        cmocka_unit_test(test_event_time_parsing),
        cmocka_unit_test(test_all_aggregates),
        cmocka_unit_test(test_validation_names_the_key),
        cmocka_unit_test(test_w1_tumbling_w9_restart_w10_deleted_key),
        cmocka_unit_test(test_w2_grace),
        cmocka_unit_test(test_w8_flink_cross_check_late_to_dead_letter),
        cmocka_unit_test(test_failed_result_delivery_is_retried),
        cmocka_unit_test(test_w6_session_merge_and_bridge),
        cmocka_unit_test(test_u2_duplicated_input_same_unique_count),
        cmocka_unit_test(test_u3_unique_count_accuracy),
        cmocka_unit_test(test_crashes_emit_what_an_undisturbed_run_does),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
