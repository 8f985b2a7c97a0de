/*
 * test_sink_errors.c — a sink that never loses and never stalls on a bad record (issue 3):
 * poison records go to the dead-letter topic with Kafka Connect's context headers and the
 * offsets move past them; errors.tolerance=none stops the task without committing past the bad
 * record; outages of Redis and of the broker, and injected Kafka errors, lose nothing and need
 * no restart. Real redis-server and dev broker; state checked in Redis and Kafka.
 */
#include "harness.h"
#include "sink_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

static h_redis_t *redis;
static h_broker_t *broker;

static int setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "poison:4,dlq:1,strict:1,outage:4,outage_dlq:1");
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

static const char *header(const rd_kafka_message_t *msg, const char *name, char *buf,
                          size_t size) {
    rd_kafka_headers_t *hdrs;
    const void *value;
    size_t len;
    if (rd_kafka_message_headers(msg, &hdrs) ||
        rd_kafka_header_get_last(hdrs, name, &value, &len))
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, value ? (const char *)value : "");
    return buf;
}

enum { GOOD = 10000 };

/* What each poison record is, by its key. */
static const char *poison_kind(const char *key) {
    if (!strncmp(key, "badjson", 7))
        return "badjson";
    if (!strncmp(key, "nofield", 7))
        return "nofield";
    if (!strncmp(key, "wrongtype", 9))
        return "wrongtype";
    if (!strncmp(key, "big", 3))
        return "big";
    return NULL;
}

/* 10k good records with 20 poison ones mixed in: every good one lands, every poison one is in
 * the dead-letter topic with its original key, value and headers plus the context headers, and
 * the committed offsets end past all of them. */
static void test_poison_records_dead_lettered(void **state) {
    /* A key of the wrong type for HSET. */
    h_redis_int(redis, "RPUSH user:wrongtype x");

    rd_kafka_t *p = h_producer_new(broker);
    char key[64], value[4096];
    int poison = 0;
    for (int i = 0; i < GOOD; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "{\"userid\":\"u%d\",\"n\":%d}", i, i);
        h_produce(p, "poison", -1, key, value, NULL);
        if (i % 500 == 250) {
            int kind = poison % 4;
            snprintf(key, sizeof(key), "%s%d",
                     (const char *[]){"badjson", "nofield", "wrongtype", "big"}[kind], poison);
            if (kind == 0)
                snprintf(value, sizeof(value), "{\"userid\": not json");
            else if (kind == 1)
                snprintf(value, sizeof(value), "{\"user\":\"u%d\"}", i);
            else if (kind == 2)
                snprintf(value, sizeof(value), "{\"userid\":\"wrongtype\"}");
            else
                snprintf(value, sizeof(value), "{\"userid\":\"big\",\"pad\":\"%02000d\"}", 0);
            h_produce(p, "poison", -1, key, value, "trace", key, NULL);
            poison++;
        }
    }
    h_producer_flush(p);
    h_producer_destroy(p);
    assert_int_equal(poison, 20);

    char *text = sink_config(redis, broker, "poison", "poison",
                             "redis.type=HASH\n"
                             "redis.key.template=user:${value.userid}\n"
                             "value.converter=json\n"
                             "redis.value.max.bytes=1000\n"
                             "errors.tolerance=all\n"
                             "errors.deadletterqueue.topic.name=dlq\n"
                             "errors.deadletterqueue.context.headers.enable=true\n"
                             "errors.log.enable=true\n"
                             "tasks.max=2\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(sink_committed_sum(broker, "connect-poison", "poison", 4) == GOOD + poison, 120000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    char *out = h_proc_output(proc);
    assert_non_null(strstr(out, "error writing record poison[")); /* errors.log.enable */
    free(out);
    h_proc_free(proc);

    /* Every good record is in Redis. */
    for (int i = 0; i < GOOD; i += 97) {
        char *n = h_redis_str(redis, "HGET user:u%d n", i);
        assert_non_null(n);
        assert_int_equal(atoi(n), i);
        free(n);
    }
    redisReply *r = h_redis_cmd(redis, "EVAL %s 0",
                                "local n = 0 for i = 0, 9999 do "
                                "n = n + redis.call('EXISTS', 'user:u' .. i) end return n");
    assert_int_equal(r->integer, GOOD);
    freeReplyObject(r);
    assert_int_equal(h_redis_int(redis, "EXISTS user:big"), 0);
    assert_int_equal(h_redis_int(redis, "LLEN user:wrongtype"), 1); /* untouched */

    /* Every poison record is in the dead-letter topic, once, as it was, with the context. */
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "dlq", &msgs);
    assert_int_equal(cnt, (size_t)poison);
    int seen[4] = {0};
    for (size_t i = 0; i < cnt; i++) {
        char k[64], buf[2048];
        snprintf(k, sizeof(k), "%.*s", (int)msgs[i]->key_len, (const char *)msgs[i]->key);
        const char *kind = poison_kind(k);
        assert_non_null(kind);
        assert_string_equal(header(msgs[i], "trace", buf, sizeof(buf)), k); /* original header */
        assert_string_equal(header(msgs[i], "__connect.errors.topic", buf, sizeof(buf)),
                            "poison");
        assert_non_null(header(msgs[i], "__connect.errors.partition", buf, sizeof(buf)));
        assert_non_null(header(msgs[i], "__connect.errors.offset", buf, sizeof(buf)));
        assert_string_equal(header(msgs[i], "__connect.errors.connector.name", buf, sizeof(buf)),
                            "poison");
        assert_non_null(header(msgs[i], "__connect.errors.task.id", buf, sizeof(buf)));
        assert_string_equal(header(msgs[i], "__connect.errors.class.name", buf, sizeof(buf)),
                            "com.redis.kafka.connect.RedisSinkConnector");
        assert_non_null(
            header(msgs[i], "__connect.errors.exception.class.name", buf, sizeof(buf)));
        const char *stage = header(msgs[i], "__connect.errors.stage", buf, sizeof(buf));
        char message[2048];
        header(msgs[i], "__connect.errors.exception.message", message, sizeof(message));
        if (!strcmp(kind, "badjson")) {
            assert_string_equal(stage, "VALUE_CONVERTER");
            assert_non_null(strstr(message, "JSON"));
            seen[0]++;
        } else if (!strcmp(kind, "nofield")) {
            assert_string_equal(stage, "TASK_PUT");
            assert_non_null(strstr(message, "${value.userid}"));
            seen[1]++;
        } else if (!strcmp(kind, "wrongtype")) {
            assert_string_equal(stage, "TASK_PUT");
            assert_non_null(strstr(message, "WRONGTYPE"));
            seen[2]++;
        } else {
            assert_string_equal(stage, "TASK_PUT");
            assert_non_null(strstr(message, "redis.value.max.bytes"));
            seen[3]++;
        }
    }
    for (int k = 0; k < 4; k++)
        assert_int_equal(seen[k], 5);
    h_messages_free(msgs, cnt);
}

/* errors.tolerance=none: the task stops FAILED at the bad record, says which, and commits
 * nothing past it. */
static void test_tolerance_none_stops_at_bad_record(void **state) {
    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[64];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "s%d", i);
        snprintf(value, sizeof(value), i == 5 ? "{oops" : "{\"n\":%d}", i);
        h_produce(p, "strict", 0, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);

    char *text = sink_config(redis, broker, "strict", "strict", "redis.type=HASH\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    int status = h_proc_wait(proc, 60000); /* its only task failed: the process ends */
    char *out = h_proc_output(proc);
    if (status != 1)
        fprintf(stderr, "%s\n", out);
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "task FAILED: cannot write record strict[0]@5"));
    free(out);
    h_proc_free(proc);
    assert_int_equal(h_committed(broker, "connect-strict", "strict", 0), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(h_redis_int(redis, "EXISTS strict:s%d", i), 1);
}

/* Redis killed and restarted 5 s later, the broker down for 5 s, Fetch/OffsetCommit/Produce
 * errors injected, while records keep coming: nothing is lost and the same process finishes
 * the run. Each application adds "partition/offset" to a set: the gap check. */
static void test_outages_lose_nothing(void **state) {
    h_redis_t *shared = redis;
    redis = h_redis_start("--appendonly yes --appendfsync always");
    char *text = sink_config(redis, broker, "outage", "outage",
                             "redis.type=SET\nredis.keyspace=applied:outage\n"
                             "redis.member=${partition}/${offset}\nbatch.size=200\n"
                             "redis.timeout=1\n"
                             "kafka.session.timeout.ms=15000\n"
                             "kafka.max.poll.interval.ms=20000\n"
                             "kafka.reconnect.backoff.max.ms=500\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);

    rd_kafka_t *p = h_producer_new(broker);
    int produced = 0;
    char key[32];
    /* Phases, each with records flowing: normal, Redis down, broker down, injected errors. */
    for (int phase = 0; phase < 5; phase++) {
        if (phase == 1)
            h_redis_kill(redis);
        if (phase == 2)
            h_redis_restart(redis);
        if (phase == 3) {
            assert_int_equal(h_broker_ctl(broker, "error Fetch 3 NOT_LEADER_FOR_PARTITION"), 0);
            assert_int_equal(
                h_broker_ctl(broker, "error OffsetCommit 3 REQUEST_TIMED_OUT"), 0);
            assert_int_equal(h_broker_ctl(broker, "error Produce 2 NOT_LEADER_FOR_PARTITION"),
                             0);
        }
        for (int i = 0; i < 1000; i++, produced++) {
            snprintf(key, sizeof(key), "%d", produced);
            h_produce(p, "outage", produced % 4, key, key, NULL);
        }
        h_producer_flush(p);
        if (phase == 1) {
            h_sleep_ms(5000); /* Redis stays down 5 s */
        } else if (phase == 3) {
            assert_int_equal(h_broker_ctl(broker, "down all"), 0);
            h_sleep_ms(5000); /* the broker stays down 5 s */
            assert_int_equal(h_broker_ctl(broker, "up all"), 0);
        } else {
            h_sleep_ms(1000);
        }
    }
    h_producer_destroy(p);

    bool done = H_WAIT_FOR(sink_committed_sum(broker, "connect-outage", "outage", 4) == produced, 120000);
    if (!done || !h_proc_alive(proc))
        sink_dump_output(proc);
    assert_true(done);
    assert_true(h_proc_alive(proc)); /* no restart was needed */
    assert_int_equal(h_redis_int(redis, "SCARD applied:outage"), produced);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    h_redis_stop(redis);
    redis = shared;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poison_records_dead_lettered),
        cmocka_unit_test(test_tolerance_none_stops_at_bad_record),
        cmocka_unit_test(test_outages_lose_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
