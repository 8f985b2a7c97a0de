/*
 * test_stream_source_cluster.c — the Redis Streams source on a local Redis Cluster (3 masters,
 * no replicas): XGROUP, XREADGROUP, XACK and the trim script go to the master of the stream's
 * slot through the cluster handle; every entry reaches Kafka once and is acknowledged
 * (SEMANTICS.md S-1's shape on a cluster).
 */
#include "harness.h"
#include "harness_cluster.h"
#include "source_test_util.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRIES 300

static h_cluster_t *cluster;
static h_broker_t *broker;

static int setup(void **state) {
    (void)state;
    cluster = h_cluster_start(3, 0);
    broker = h_broker_start(1, "stream_out:1");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_broker_stop(broker);
    h_cluster_stop(cluster);
    return 0;
}

/* XINFO GROUPS of stream on its master: the group's pending count, or -1 without a group. */
static long long group_field(h_redis_t *master, const char *stream, const char *field) {
    redisReply *reply = h_redis_cmd(master, "XINFO GROUPS %s", stream);
    long long value = -1;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        redisReply *group = reply->element[0];
        for (size_t i = 0; i + 1 < group->elements; i += 2)
            if (!strcmp(group->element[i]->str, field))
                value = group->element[i + 1]->integer;
    }
    freeReplyObject(reply);
    return value;
}

static void test_stream_to_kafka_on_cluster(void **state) {
    (void)state;
    /* A stream whose slot is not the seed's, so that every command has to be routed. */
    h_redis_t *seed = cluster->nodes[0];
    const char *stream = NULL;
    static const char *const candidates[] = {"orders-a", "orders-b", "orders-c", "orders-d"};
    for (size_t i = 0; i < 4 && !stream; i++)
        if (h_cluster_master_of(cluster, candidates[i]) != seed)
            stream = candidates[i];
    assert_non_null(stream);
    h_redis_t *master = h_cluster_master_of(cluster, stream);
    for (int i = 0; i < ENTRIES; i++) {
        redisReply *reply = h_redis_cmd(master, "XADD %s * n %d", stream, i);
        freeReplyObject(reply);
    }
    char *text = source_config(seed, broker, "src_cluster",
                               "com.redis.kafka.connect.RedisStreamSourceConnector",
                               "redis.stream.name=%s\ntopic=stream_out\n", stream);
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(group_field(master, stream, "entries-read") == ENTRIES &&
                               group_field(master, stream, "pending") == 0,
                           60000);
    if (!done)
        source_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "stream_out", &msgs);
    assert_int_equal(cnt, ENTRIES);
    h_messages_free(msgs, cnt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_to_kafka_on_cluster),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
