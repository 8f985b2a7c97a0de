/*
 * test_pubsub_source.c — the pub/sub source end to end: `rkbridge run` with a pub/sub connector
 * against one redis-server and the dev broker; messages are PUBLISHed by the test and read
 * back from the topics. Covered: channels and patterns with their headers, the topic template
 * (and the characters a topic cannot hold), null keys and binary values, the channels shared
 * out among tasks (each message once), resubscription after the subscriber is killed, and
 * validation.
 */
#include "harness.h"
#include "source_test_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#define PUBSUB_CLASS "rkbridge.RedisPubSubSourceConnector"
#define WAIT_MS      60000

static h_redis_t *redis;
static h_broker_t *broker;

static int setup(void **state) {
    (void)state;
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "ps-news:1,ps-log_a:1,ps-log.b:1,share-a:1,share-b:1,re-r:1");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

static h_proc_t *start_source(const char *name, const char *extra) {
    char *text = source_config(redis, broker, name, PUBSUB_CLASS, "%s", extra);
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    return proc;
}

static void stop_source(h_proc_t *proc) {
    int status = h_proc_stop(proc, SIGTERM, 60000);
    if (status != 0)
        source_dump_output(proc);
    assert_int_equal(status, 0);
    h_proc_free(proc);
}

static long long subscribers(const char *channel) {
    redisReply *reply = h_redis_cmd(redis, "PUBSUB NUMSUB %s", channel);
    long long cnt = reply->element[1]->integer;
    freeReplyObject(reply);
    return cnt;
}

/* Waits until channels (NULL-terminated) each have `want` subscribers and there are `patterns`
 * pattern subscriptions. */
static void wait_subscribed(h_proc_t *proc, const char *const *channels, long long want,
                            long long patterns) {
    bool ok = H_WAIT_FOR(({
                             bool all = h_redis_int(redis, "PUBSUB NUMPAT") == patterns;
                             for (size_t i = 0; channels[i] && all; i++)
                                 all = subscribers(channels[i]) == want;
                             all;
                         }),
                         WAIT_MS);
    if (!ok) {
        source_dump_output(proc);
        fail_msg("the source never subscribed");
    }
}

static size_t topic_count(const char *topic) {
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    h_messages_free(msgs, cnt);
    return cnt;
}

static void wait_count(h_proc_t *proc, const char *topic, size_t want) {
    if (!H_WAIT_FOR(topic_count(topic) >= want, WAIT_MS)) {
        source_dump_output(proc);
        fail_msg("%s: %zu records, expected %zu", topic, topic_count(topic), want);
    }
}

static void assert_header(const rd_kafka_message_t *msg, const char *name, const char *value) {
    char *got = source_header(msg, name);
    if (!value) {
        assert_null(got);
        return;
    }
    assert_non_null(got);
    assert_string_equal(got, value);
    free(got);
}

/* A channel and a pattern: the topic template, headers, null key, the bytes as published, and
 * the characters Kafka does not allow in a topic name replaced by '_'. */
static void test_channels_and_patterns(void **state) {
    (void)state;
    h_proc_t *proc = start_source("ps", "redis.pubsub.channels=news\nredis.pubsub.patterns=log*\n"
                                        "topic=ps-${channel}\n");
    wait_subscribed(proc, (const char *[]){"news", NULL}, 1, 1);
    assert_int_equal(h_redis_int(redis, "PUBLISH news %b", "a\0b", (size_t)3), 1);
    assert_int_equal(h_redis_int(redis, "PUBLISH news second"), 1);
    assert_int_equal(h_redis_int(redis, "PUBLISH log:a from-pattern"), 1);
    assert_int_equal(h_redis_int(redis, "PUBLISH log.b dotted"), 1);
    assert_int_equal(h_redis_int(redis, "PUBLISH other nobody"), 0);
    wait_count(proc, "ps-news", 2);
    wait_count(proc, "ps-log_a", 1);
    wait_count(proc, "ps-log.b", 1);

    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "ps-news", &msgs);
    assert_int_equal(cnt, 2);
    assert_null(msgs[0]->key);
    assert_int_equal(msgs[0]->len, 3);
    assert_memory_equal(msgs[0]->payload, "a\0b", 3);
    assert_header(msgs[0], "redis-channel", "news");
    assert_header(msgs[0], "redis-pattern", NULL);
    assert_int_equal(msgs[1]->len, 6);
    assert_memory_equal(msgs[1]->payload, "second", 6);
    h_messages_free(msgs, cnt);

    cnt = h_consume_all(broker, "ps-log_a", &msgs);
    assert_int_equal(cnt, 1);
    assert_memory_equal(msgs[0]->payload, "from-pattern", 12);
    assert_header(msgs[0], "redis-channel", "log:a");
    assert_header(msgs[0], "redis-pattern", "log*");
    h_messages_free(msgs, cnt);
    stop_source(proc);
}

/* tasks.max=2 over two channels: each task takes one, so every message is produced once
 * (PUBLISH says one receiver). */
static void test_channels_shared_among_tasks(void **state) {
    (void)state;
    h_proc_t *proc = start_source("share", "redis.pubsub.channels=a,b\ntasks.max=2\n"
                                           "topic=share-${channel}\n");
    wait_subscribed(proc, (const char *[]){"a", "b", NULL}, 1, 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(h_redis_int(redis, "PUBLISH a m%d", i), 1);
        assert_int_equal(h_redis_int(redis, "PUBLISH b m%d", i), 1);
    }
    wait_count(proc, "share-a", 10);
    wait_count(proc, "share-b", 10);
    stop_source(proc);
    assert_int_equal(topic_count("share-a"), 10);
    assert_int_equal(topic_count("share-b"), 10);
}

/* The subscriber connection is killed: the source subscribes again (and says how long it was
 * away); what is published after that arrives. */
static void test_resubscribes_after_disconnect(void **state) {
    (void)state;
    h_proc_t *proc = start_source("re", "redis.pubsub.channels=r\ntopic=re-${channel}\n");
    wait_subscribed(proc, (const char *[]){"r", NULL}, 1, 0);
    assert_int_equal(h_redis_int(redis, "PUBLISH r before"), 1);
    wait_count(proc, "re-r", 1);
    assert_true(h_redis_int(redis, "CLIENT KILL TYPE pubsub") >= 1);
    if (!H_WAIT_FOR(source_output_has(proc, "subscribed again after"), WAIT_MS)) {
        source_dump_output(proc);
        fail_msg("no resubscription");
    }
    wait_subscribed(proc, (const char *[]){"r", NULL}, 1, 0);
    assert_int_equal(h_redis_int(redis, "PUBLISH r after"), 1);
    wait_count(proc, "re-r", 2);
    assert_true(source_output_has(proc, "lost the subscription"));
    stop_source(proc);
}

static void test_validate(void **state) {
    (void)state;
    static const struct {
        const char *extra, *expected;
    } cases[] = {
        {"", "redis.pubsub.channels: set it, redis.pubsub.patterns, or both"},
        {"redis.pubsub.channels=a\ntopic=x-${stream}\n", "topic: unknown token '${stream}'"},
        {"redis.pubsub.channels=a\ntopic=x:${channel}\n",
         "topic: ':' cannot be part of a Kafka topic name"},
        {"redis.pubsub.channels=a,b\nredis.pubsub.patterns=c*\ntasks.max=4\n",
         "tasks.max: 4 tasks for 3 channels and patterns"},
        {"redis.pubsub.channels=a\nredis.keys.pattern=x\n",
         "redis.keys.pattern: does not apply to a pub/sub source connector"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = source_config(redis, broker, "pv", PUBSUB_CLASS, "%s", cases[i].extra);
        char *out = NULL;
        int rc = source_validate(text, &out);
        if (rc != 2 || !strstr(out, cases[i].expected))
            fail_msg("case %zu: exit %d, output:\n%s", i, rc, out);
        free(out);
        free(text);
    }
    char *text =
        source_config(redis, broker, "pv", PUBSUB_CLASS, "redis.pubsub.patterns=p*\ntasks.max=1\n");
    char *out = NULL;
    if (source_validate(text, &out) != 0)
        fail_msg("a pattern alone, default topic, refused:\n%s", out);
    free(out);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_channels_and_patterns),
        cmocka_unit_test(test_channels_shared_among_tasks),
        cmocka_unit_test(test_resubscribes_after_disconnect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
