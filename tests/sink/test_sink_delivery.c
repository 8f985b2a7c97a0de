/*
 * test_sink_delivery.c — the at-least-once guarantees of the sink against a real redis-server
 * and the dev broker (SEMANTICS.md §1.6): every record lands (100k run), K-1 crash between the
 * Redis write and the offset store, K-2 Redis down, K-5 cooperative rebalance between two
 * members. One Redis and one dev broker serve the whole file; each test has its own topic and
 * connector (consumer group).
 */
#include "harness.h"
#include "sink_test_util.h"

#include <pthread.h>
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
    broker = h_broker_start(1, "big:8,k1:1,k2:1,k5:4");
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* 100k records over 8 partitions: every one lands as produced, offsets committed to the end. */
static void test_100k_every_record_lands(void **state) {
    enum { N = 100000 };
    rd_kafka_t *p = h_producer_new(broker);
    char key[32], value[160];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value),
                 "{\"viewtime\":%d,\"userid\":\"User_%d\",\"pageid\":\"Page_%d\","
                 "\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                 i, i % 97, i % 13);
        h_produce(p, "big", -1, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);

    char *text = sink_config(redis, broker, "big", "big", "redis.type=STRING\nredis.keyspace=\ntasks.max=2\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);

    bool all = H_WAIT_FOR(h_redis_int(redis, "DBSIZE") >= N, 120000);
    if (!all)
        sink_dump_output(proc);
    assert_true(all);
    assert_true(H_WAIT_FOR(sink_committed_sum(broker, "connect-big", "big", 8) == N, 30000));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);

    /* Every key holds exactly its record's value. */
    for (int i = 0; i < N; i += 1000) {
        redisReply *r = h_redis_cmd(redis, "MGET k%d k%d k%d", i, i + 1, i + 999);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        int idx[] = {i, i + 1, i + 999};
        for (int j = 0; j < 3; j++) {
            snprintf(value, sizeof(value),
                     "{\"viewtime\":%d,\"userid\":\"User_%d\",\"pageid\":\"Page_%d\","
                     "\"padding\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                     idx[j], idx[j] % 97, idx[j] % 13);
            assert_int_equal(r->element[j]->type, REDIS_REPLY_STRING);
            assert_string_equal(r->element[j]->str, value);
        }
        freeReplyObject(r);
    }
    /* No key is missing or extra. */
    redisReply *r = h_redis_cmd(redis, "EVAL %s 0", "local n = 0 "
                                                    "for i = 0, 99999 do "
                                                    "  n = n + redis.call('EXISTS', 'k' .. i) "
                                                    "end return n");
    assert_int_equal(r->integer, N);
    freeReplyObject(r);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* K-1: crash after Redis acknowledged offset 4 but before its offset was stored; the restart
 * re-delivers from the last commit, never after offset 4. A LIST of applied offsets counts
 * every application. */
static void test_k1_crash_between_write_and_commit(void **state) {
    rd_kafka_t *p = h_producer_new(broker);
    char key[8], value[8];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        h_produce(p, "k1", 0, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);

    char *text = sink_config(redis, broker, "k1", "k1",
                             "redis.type=LIST\nredis.keyspace=applied:k1\n"
                             "redis.member=${offset}\nbatch.size=1\n");
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_after_redis_apply@4", NULL};
    h_proc_t *proc = h_rkbridge_run(text, crash_env);
    int status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    int64_t committed = h_committed(broker, "connect-k1", "k1", 0);
    assert_true(committed <= 4); /* offset 4 was applied but never stored */

    proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-k1", "k1", 0) == 10, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);

    for (int off = 0; off < 10; off++) {
        char member[8];
        snprintf(member, sizeof(member), "%d", off);
        redisReply *r = h_redis_cmd(redis, "LPOS applied:k1 %s COUNT 0", member);
        size_t times = r->elements;
        freeReplyObject(r);
        assert_true(times >= 1);          /* nothing lost */
        if (off <= 5)
            assert_true(times <= 2);      /* replayed at most once, from the last commit; 5 is
                                           * the batch pipelined behind 4 (sent before 4's
                                           * reply was read): it may be in Redis already */
        else
            assert_int_equal(times, 1);   /* never re-delivered past the crash point */
    }
}

/* K-2: Redis down → nothing committed past the last acknowledged write, the member stays in its
 * group (longer than max.poll.interval.ms), and it resumes by itself when Redis is back. */
static void test_k2_redis_down_no_commit_ahead(void **state) {
    /* Its own Redis, durable (AOF, fsync always): a write Redis acknowledged survives the kill,
     * so what is missing after the restart would be the sink's loss, not Redis's. */
    h_redis_t *shared = redis;
    redis = h_redis_start("--appendonly yes --appendfsync always");
    char *text = sink_config(redis, broker, "k2", "k2",
                             "redis.type=STRING\nredis.keyspace=\nredis.timeout=1\n"
                             "kafka.max.poll.interval.ms=7000\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    rd_kafka_t *p = h_producer_new(broker);
    char key[8], value[8];
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof(key), "k2_%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        h_produce(p, "k2", 0, key, value, NULL);
    }
    h_producer_flush(p);
    assert_true(H_WAIT_FOR(h_committed(broker, "connect-k2", "k2", 0) == 5, 60000));

    h_redis_kill(redis);
    for (int i = 5; i < 10; i++) {
        snprintf(key, sizeof(key), "k2_%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        h_produce(p, "k2", 0, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
    /* Down for longer than max.poll.interval.ms: the committed offset must not move. */
    int64_t until = h_now_ms() + 9000;
    while (h_now_ms() < until) {
        assert_int_equal(h_committed(broker, "connect-k2", "k2", 0), 5);
        assert_true(h_proc_alive(proc));
        h_sleep_ms(500);
    }
    h_redis_restart(redis);
    bool resumed = H_WAIT_FOR(h_committed(broker, "connect-k2", "k2", 0) == 10, 60000);
    if (!resumed)
        sink_dump_output(proc);
    assert_true(resumed);
    for (int i = 0; i < 10; i++) {
        char *v = h_redis_str(redis, "GET k2_%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        assert_non_null(v);
        assert_string_equal(v, value);
        free(v);
    }
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    char *out = h_proc_output(proc);
    /* The member was never thrown out of its group while it waited for Redis. */
    assert_null(strstr(out, "lost k2["));
    assert_null(strstr(out, "max.poll.interval"));
    free(out);
    h_proc_free(proc);
    h_redis_stop(redis);
    redis = shared;
}

/* K-5: a second member joins while the first is busy; cooperative rebalance moves partitions
 * with no loss: every record of every partition is applied (gap check), and the committed
 * offsets end at the log end. */
typedef struct {
    rd_kafka_t *producer; /* made on the main thread: the harness's registry is not shared */
    int produced;
    volatile int stop;
} feeder_t;

static void *feed(void *arg) {
    feeder_t *f = arg;
    rd_kafka_t *p = f->producer;
    char key[32];
    while (!f->stop) {
        for (int i = 0; i < 100; i++, f->produced++) {
            snprintf(key, sizeof(key), "%d", f->produced);
            h_produce(p, "k5", f->produced % 4, key, key, NULL);
        }
        h_producer_flush(p);
        h_sleep_ms(20);
    }
    return NULL;
}

static void test_k5_cooperative_rebalance_no_loss(void **state) {
    /* Each application of a record appends "partition/offset"; SADD gives the distinct set. */
    char *text = sink_config(redis, broker, "k5", "k5",
                             "redis.type=SET\nredis.keyspace=applied:k5\n"
                             "redis.member=${partition}/${offset}\nbatch.size=50\n");
    feeder_t feeder = {.producer = h_producer_new(broker)};
    pthread_t thread;
    pthread_create(&thread, NULL, feed, &feeder);

    h_proc_t *a = h_rkbridge_run(text, NULL);
    assert_true(H_WAIT_FOR(h_redis_int(redis, "SCARD applied:k5") > 0, 60000));
    h_proc_t *b = h_rkbridge_run(text, NULL);
    free(text);
    /* B gets partitions: its log says so. */
    bool b_assigned = H_WAIT_FOR(({
                                     char *out = h_proc_output(b);
                                     bool yes = strstr(out, "assigned k5[") != NULL;
                                     free(out);
                                     yes;
                                 }),
                                 60000);
    if (!b_assigned) {
        sink_dump_output(a);
        sink_dump_output(b);
    }
    assert_true(b_assigned);
    feeder.stop = 1;
    pthread_join(thread, NULL);
    h_producer_destroy(feeder.producer);
    int total = feeder.produced;

    bool all = H_WAIT_FOR(h_redis_int(redis, "SCARD applied:k5") == total &&
                              sink_committed_sum(broker, "connect-k5", "k5", 4) == total,
                          60000);
    if (!all) {
        fprintf(stderr, "produced %d, applied %lld, committed %lld\n", total,
                h_redis_int(redis, "SCARD applied:k5"),
                (long long)sink_committed_sum(broker, "connect-k5", "k5", 4));
        sink_dump_output(a);
        sink_dump_output(b);
    }
    assert_true(all);
    char *out = h_proc_output(a);
    assert_non_null(strstr(out, "revoked k5[")); /* A gave partitions up, it did not lose them */
    assert_null(strstr(out, "lost k5["));
    free(out);
    assert_int_equal(h_proc_stop(b, SIGTERM, 30000), 0);
    assert_int_equal(h_proc_stop(a, SIGTERM, 30000), 0);
    h_proc_free(a);
    h_proc_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_100k_every_record_lands),
        cmocka_unit_test(test_k1_crash_between_write_and_commit),
        cmocka_unit_test(test_k2_redis_down_no_commit_ahead),
        cmocka_unit_test(test_k5_cooperative_rebalance_no_loss),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
