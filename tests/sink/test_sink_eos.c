/*
 * test_sink_eos.c — exactly-once into Redis (redis.delivery=exactly-once, SEMANTICS.md §2):
 * E-1 crash between the apply and the Kafka commit, E-3/E-4/E-5 where consumption starts from
 * the offsets stored in Redis, dead-lettering inside the script's order, and a 100k-record
 * LIST + COUNTER run killed at each failpoint and at a random point: exactly-once leaves Redis
 * identical to an undisturbed run, at-least-once loses nothing. (E-2 and E-7, which drive the
 * script directly, are in test_eos.c.)
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
    broker = h_broker_start(1, "e1:1,e1b:1,e3:1,e4:1,e5:1,edown:1,edlq:1,edlq_out:1,dcrash:1,dcrash_out:1,crash:4,crash_alo:4,erewind:1");
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

static bool output_has(h_proc_t *proc, const char *needle) {
    char *out = h_proc_output(proc);
    bool has = strstr(out, needle) != NULL;
    free(out);
    return has;
}

static void produce_n(const char *topic, int32_t partition, int n, const char *value) {
    rd_kafka_t *p = h_producer_new(broker);
    char key[16];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "%d", i);
        h_produce(p, topic, partition, key, value, NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
}

/* Commits offset for group on topic[0], as an earlier run would have. */
static void commit_offset(const char *group, const char *topic, int64_t offset) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", broker->bootstrap, errstr, sizeof(errstr));
    rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic, 0)->offset = offset;
    assert_int_equal(rd_kafka_commit(rk, list, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
    assert_int_equal(h_committed(broker, group, topic, 0), offset);
}

/* A counter connector: HINCRBY cnt:{TOPIC} u1 1 per record, exactly-once. */
static char *counter_config(const char *name, const char *topic, const char *extra) {
    return sink_config(redis, broker, name, topic,
                       "redis.type=COUNTER\nredis.key.template=cnt:{%s}\n"
                       "redis.hash.field=u1\nredis.increment=1\n"
                       "redis.delivery=exactly-once\n%s",
                       topic, extra ? extra : "");
}

/* E-1: the process dies after Redis applied offset 6, before anything reached Kafka's commit.
 * The restart starts at 7 from the offset in Redis: the counter is 10, not 17. */
/* The next offset a partition's offset key holds, or -1. */
static long long stored_offset(const char *key) {
    char *value = h_redis_str(redis, "GET %s", key);
    long long offset = value ? atoll(value) : -1;
    free(value);
    return offset;
}

/* E-1 on topic[0] (10 records, a connector named as its topic, batch.size=1): killed right after
 * Redis applied offset 6, Redis holds offset 7; the restart says it starts there, and finishes
 * with offset 10 in Redis and in Kafka. between(): what Redis holds at the crash. */
static void run_e1(const char *topic, const char *config_text, void (*between)(void)) {
    char key[128], expect[128];
    snprintf(key, sizeof(key), "rkbridge:offset:{%s:0}:%s", topic, topic);
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_after_redis_apply@6", NULL};
    h_proc_t *proc = h_rkbridge_run(config_text, crash_env);
    int status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    assert_int_equal(stored_offset(key), 7);
    if (between)
        between();

    proc = h_rkbridge_run(config_text, NULL);
    snprintf(expect, sizeof(expect), "connect-%s", topic);
    bool done = H_WAIT_FOR(h_committed(broker, expect, topic, 0) == 10, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    snprintf(expect, sizeof(expect), "%s[0]: starting at offset 7 (stored in Redis)", topic);
    assert_true(output_has(proc, expect));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    assert_int_equal(stored_offset(key), 10);
}

static void test_e1_crash_between_apply_and_commit(void **state) {
    produce_n("e1", 0, 10, "x");
    char *text = counter_config("e1", "e1", "batch.size=1\n");
    run_e1("e1", text, NULL);
    free(text);
    char *count = h_redis_str(redis, "HGET cnt:{e1} u1");
    assert_string_equal(count, "10");
    free(count);
}

/* The crash comes after Redis applied the last record: on restart nothing is left to consume,
 * and still the committed offset catches up with Redis's (stored at assignment). */
static void test_e1_crash_after_last_apply_commits_on_restart(void **state) {
    produce_n("e1b", 0, 10, "x");
    char *text = counter_config("e1b", "e1b", "batch.size=1\n");
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_after_redis_apply@9", NULL};
    h_proc_t *proc = h_rkbridge_run(text, crash_env);
    int status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    assert_true(h_committed(broker, "connect-e1b", "e1b", 0) < 10);

    proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-e1b", "e1b", 0) == 10, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *count = h_redis_str(redis, "HGET cnt:{e1b} u1");
    assert_string_equal(count, "10");
    free(count);
}

/* Runs a counter connector over 10 records with a Redis offset and a Kafka committed offset
 * set beforehand; returns how many records it applied. */
static long long run_with_offsets(const char *topic, int64_t redis_next, int64_t kafka_committed) {
    produce_n(topic, 0, 10, "x");
    char group[64];
    snprintf(group, sizeof(group), "connect-%s", topic);
    if (kafka_committed >= 0)
        commit_offset(group, topic, kafka_committed);
    if (redis_next >= 0)
        freeReplyObject(h_redis_cmd(redis, "SET rkbridge:offset:{%s:0}:%s %lld", topic, topic,
                                    (long long)redis_next));
    char *text = counter_config(topic, topic, NULL);
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    char key[64];
    snprintf(key, sizeof(key), "rkbridge:offset:{%s:0}:%s", topic, topic);
    bool done = H_WAIT_FOR(({
                               char *v = h_redis_str(redis, "GET %s", key);
                               bool at_end = v && !strcmp(v, "10");
                               free(v);
                               at_end;
                           }),
                           60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *count = h_redis_str(redis, "HGET cnt:{%s} u1", topic);
    long long applied = count ? atoll(count) : 0;
    free(count);
    return applied;
}

/* E-3: Redis ahead of Kafka (8 vs 3) → starts at 8. */
static void test_e3_redis_ahead_of_kafka(void **state) {
    assert_int_equal(run_with_offsets("e3", 8, 3), 2);
}

/* Exactly-once STRING: plain SET writes take Redis's WATCH/MULTI/EXEC instead of the script
 * (sink.c, "exactly-once without the script"). E-1 holds for it: killed right after Redis
 * applied offset 6, the restart starts at 7 from the offset in Redis. */
static void es1_first_seven(void) {
    assert_int_equal(h_redis_int(redis, "EXISTS es1:0 es1:1 es1:2 es1:3 es1:4 es1:5 es1:6"), 7);
    assert_int_equal(h_redis_int(redis, "EXISTS es1:7"), 0);
}

static void test_e1_plain_string_crash(void **state) {
    produce_n("es1", 0, 10, "x");
    char *text = sink_config(redis, broker, "es1", "es1",
                             "redis.type=STRING\nredis.keyspace=es1\n"
                             "redis.delivery=exactly-once\nbatch.size=1\n");
    run_e1("es1", text, es1_first_seven);
    free(text);
    assert_int_equal(h_redis_int(redis, "EXISTS es1:7 es1:8 es1:9"), 3);
}


/* Another writer moves the partition's offset in Redis ahead (to 2000) while the task runs, as a
 * zombie owner would: from then on the task's records below 2000 are taken as applied and not
 * written. The move lands when the task has applied the first 500 records: the keys written are
 * 0..499, then 2000..2999, and the offset ends at 3000. */
static void test_eos_plain_string_offset_moved(void **state) {
    enum { N = 3000, FIRST = 500, MOVED = 2000 };
    rd_kafka_t *p = h_producer_new(broker);
    char key[16];
    for (int i = 0; i < FIRST; i++) {
        snprintf(key, sizeof(key), "%d", i);
        h_produce(p, "es2", 0, key, "x", NULL);
    }
    h_producer_flush(p);
    char *text = sink_config(redis, broker, "es2", "es2",
                             "redis.type=STRING\nredis.keyspace=es2\n"
                             "redis.delivery=exactly-once\nbatch.size=20\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool first = H_WAIT_FOR(stored_offset("rkbridge:offset:{es2:0}:es2") == FIRST, 60000);
    if (!first)
        sink_dump_output(proc);
    assert_true(first);
    freeReplyObject(h_redis_cmd(redis, "SET rkbridge:offset:{es2:0}:es2 %d", MOVED));
    for (int i = FIRST; i < N; i++) {
        snprintf(key, sizeof(key), "%d", i);
        h_produce(p, "es2", 0, key, "x", NULL);
    }
    h_producer_flush(p);
    h_producer_destroy(p);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-es2", "es2", 0) == N, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);

    char *stored = h_redis_str(redis, "GET rkbridge:offset:{es2:0}:es2");
    assert_string_equal(stored, "3000");
    free(stored);
    for (int i = 0; i < N; i++) {
        bool written = h_redis_int(redis, "EXISTS es2:%d", i) == 1;
        if (written != (i < FIRST || i >= MOVED))
            fail_msg("es2:%d is %s", i, written ? "written" : "missing");
    }
}

/* E-4: Redis behind Kafka (3 vs 8) → starts at 3: Redis is the truth. */
static void test_e4_redis_behind_kafka(void **state) {
    assert_int_equal(run_with_offsets("e4", 3, 8), 7);
}

/* E-5: no offset in Redis, Kafka committed 5 → starts at 5 (not at 0, as redis-kafka-connect
 * would). */
static void test_e5_no_redis_offset_uses_committed(void **state) {
    assert_int_equal(run_with_offsets("e5", -1, 5), 5);
}

/* Redis is down when the partitions are assigned: they stay paused until the offsets can be
 * read, then consumption starts at the offset stored in Redis, not at Kafka's committed one. */
static void test_assigned_while_redis_down(void **state) {
    h_redis_t *shared = redis;
    redis = h_redis_start("--appendonly yes --appendfsync always");
    produce_n("edown", 0, 10, "x");
    commit_offset("connect-edown", "edown", 2);
    freeReplyObject(h_redis_cmd(redis, "SET rkbridge:offset:{edown:0}:edown 6"));
    h_redis_kill(redis);

    char *text = counter_config("edown", "edown", "redis.timeout=1\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool paused = H_WAIT_FOR(output_has(proc, "Redis unavailable at assignment"), 60000);
    if (!paused)
        sink_dump_output(proc);
    assert_true(paused);
    h_redis_restart(redis);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-edown", "edown", 0) == 10, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_true(output_has(proc, "edown[0]: starting at offset 6 (stored in Redis)"));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *count = h_redis_str(redis, "HGET cnt:{edown} u1");
    assert_string_equal(count, "4"); /* offsets 6..9, once each */
    free(count);
    h_redis_stop(redis);
    redis = shared;
}

/* E-4 while running: Redis restarts from an older snapshot (as a promoted replica that missed
 * the last writes would hold), its counter and stored offset at 100 while the sink has applied
 * 200. At the reconnect the sink goes back to the stored offset and applies 100..199 again, once:
 * the counter ends at 201 (the record produced after the restart included), not 101. */
static void test_reconnect_rewinds_to_stored_offset(void **state) {
    (void)state;
    h_redis_t *shared = redis;
    redis = h_redis_start(NULL);
    char *text = counter_config("erewind", "erewind", "redis.timeout=1\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    produce_n("erewind", 0, 100, "x");
    bool applied = H_WAIT_FOR(stored_offset("rkbridge:offset:{erewind:0}:erewind") == 100, 60000);
    if (!applied)
        sink_dump_output(proc);
    assert_true(applied);
    freeReplyObject(h_redis_cmd(redis, "SAVE")); /* the snapshot the restart loads */
    produce_n("erewind", 0, 100, "x");
    assert_true(H_WAIT_FOR(stored_offset("rkbridge:offset:{erewind:0}:erewind") == 200, 60000));
    h_redis_restart(redis); /* loads the snapshot: counter 100, stored offset 100 */
    assert_int_equal(stored_offset("rkbridge:offset:{erewind:0}:erewind"), 100);
    produce_n("erewind", 0, 1, "x"); /* offset 200: its write finds the connection gone */
    bool done = H_WAIT_FOR(stored_offset("rkbridge:offset:{erewind:0}:erewind") == 201, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_true(output_has(proc, "erewind[0]: starting at offset 100 (stored in Redis)"));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *count = h_redis_str(redis, "HGET cnt:{erewind} u1");
    assert_string_equal(count, "201");
    free(count);
    h_redis_stop(redis);
    redis = shared;
}

/* Records that cannot be written, in exactly-once mode: one refused by the writer (not a
 * number), one refused by the script (the key holds a list): both dead-lettered, the counter
 * counts the rest exactly once, the stored offset moves past everything. */
static void test_eos_dead_letters_in_order(void **state) {
    freeReplyObject(h_redis_cmd(redis, "RPUSH cnt:wrong x"));
    rd_kafka_t *p = h_producer_new(broker);
    const char *values[] = {"{\"k\":\"a\",\"n\":1}", "{\"k\":\"a\",\"n\":\"x\"}",
                            "{\"k\":\"a\",\"n\":2}", "{\"k\":\"wrong\",\"n\":5}",
                            "{\"k\":\"a\",\"n\":3}"};
    for (int i = 0; i < 5; i++)
        h_produce(p, "edlq", 0, "k", values[i], NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
    char *text = sink_config(redis, broker, "edlq", "edlq",
                             "redis.type=COUNTER\nredis.key.template=cnt:${value.k}\n"
                             "redis.increment=${value.n}\nredis.delivery=exactly-once\n"
                             "errors.tolerance=all\n"
                             "errors.deadletterqueue.topic.name=edlq_out\n");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-edlq", "edlq", 0) == 5, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *v = h_redis_str(redis, "GET cnt:a");
    assert_string_equal(v, "6");
    free(v);
    v = h_redis_str(redis, "GET rkbridge:offset:{edlq:0}:edlq");
    assert_string_equal(v, "5");
    free(v);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "edlq_out", &msgs);
    assert_int_equal(cnt, 2);
    assert_int_equal(msgs[0]->offset, 0);
    assert_memory_equal(msgs[0]->payload, values[1], strlen(values[1]));
    assert_memory_equal(msgs[1]->payload, values[3], strlen(values[3]));
    h_messages_free(msgs, cnt);
}

/* The process dies after the dead-letter topic acknowledged a record, before its offset moved:
 * the restart dead-letters it again (the dead-letter topic is at-least-once) but the counter
 * stays exact and the offsets end past everything. */
static void test_crash_after_dead_letter(void **state) {
    rd_kafka_t *p = h_producer_new(broker);
    h_produce(p, "dcrash", 0, "k", "{\"n\":1}", NULL);
    h_produce(p, "dcrash", 0, "k", "{\"n\":\"bad\"}", NULL);
    h_produce(p, "dcrash", 0, "k", "{\"n\":2}", NULL);
    h_producer_flush(p);
    h_producer_destroy(p);
    char *text = sink_config(redis, broker, "dcrash", "dcrash",
                             "redis.type=COUNTER\nredis.key.template=cnt:dcrash\n"
                             "redis.increment=${value.n}\nredis.delivery=exactly-once\n"
                             "errors.tolerance=all\nbatch.size=1\n"
                             "errors.deadletterqueue.topic.name=dcrash_out\n");
    const char *const crash_env[] = {"RKB_FAILPOINT=crash_after_dlq_produce", NULL};
    h_proc_t *proc = h_rkbridge_run(text, crash_env);
    int status = h_proc_wait(proc, 60000);
    if (status != 128 + SIGKILL)
        sink_dump_output(proc);
    assert_int_equal(status, 128 + SIGKILL);
    h_proc_free(proc);
    rd_kafka_message_t **msgs;
    size_t cnt = h_consume_all(broker, "dcrash_out", &msgs);
    assert_int_equal(cnt, 1); /* the broker had it when the process died */
    h_messages_free(msgs, cnt);

    proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-dcrash", "dcrash", 0) == 3, 60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    char *v = h_redis_str(redis, "GET cnt:dcrash");
    assert_string_equal(v, "3");
    free(v);
    v = h_redis_str(redis, "GET rkbridge:offset:{dcrash:0}:dcrash");
    assert_string_equal(v, "3");
    free(v);
    cnt = h_consume_all(broker, "dcrash_out", &msgs);
    assert_int_equal(cnt, 2); /* once per run: at-least-once into the dead-letter topic */
    for (size_t i = 0; i < cnt; i++)
        assert_memory_equal(msgs[i]->payload, "{\"n\":\"bad\"}", msgs[i]->len);
    h_messages_free(msgs, cnt);
}

/* ---- the crash matrix --------------------------------------------------------------------------- */

enum { CRASH_RECORDS = 100000, CRASH_PARTITIONS = 4 };
static long long expected_sum[CRASH_PARTITIONS];
static int expected_cnt[CRASH_PARTITIONS];

static void produce_crash_topic(const char *topic) {
    rd_kafka_t *p = h_producer_new(broker);
    char key[16], value[32];
    memset(expected_sum, 0, sizeof(expected_sum));
    memset(expected_cnt, 0, sizeof(expected_cnt));
    for (int i = 0; i < CRASH_RECORDS; i++) {
        int part = i % CRASH_PARTITIONS;
        int n = i % 7 + 1;
        snprintf(key, sizeof(key), "%d", i);
        snprintf(value, sizeof(value), "{\"n\":%d}", n);
        h_produce(p, topic, part, key, value, NULL);
        expected_sum[part] += n;
        expected_cnt[part]++;
    }
    h_producer_flush(p);
    h_producer_destroy(p);
}

/* Two connectors on one topic in one process: a list per partition of applied offsets, and a
 * counter per partition summing value.n. */
static const char *const *crash_argv(const char *topic, const char *delivery) {
    static const char *argv[8];
    char name[64], extra[512];
    snprintf(name, sizeof(name), "%s-list", topic);
    snprintf(extra, sizeof(extra),
             "redis.type=LIST\nredis.key.template=list:{${topic}:${partition}}\n"
             "redis.member=${offset}\nredis.delivery=%s\nbatch.size=500\n",
             delivery);
    char *list = sink_config(redis, broker, name, topic, "%s", extra);
    snprintf(name, sizeof(name), "%s-counter", topic);
    snprintf(extra, sizeof(extra),
             "redis.type=COUNTER\nredis.key.template=cnt:{${topic}:${partition}}\n"
             "redis.increment=${value.n}\nredis.delivery=%s\nbatch.size=500\n",
             delivery);
    char *counter = sink_config(redis, broker, name, topic, "%s", extra);
    char file[64];
    snprintf(file, sizeof(file), "%s-list.properties", topic);
    argv[0] = "rkbridge";
    argv[1] = "run";
    argv[2] = h_write_file(file, list);
    snprintf(file, sizeof(file), "%s-counter.properties", topic);
    argv[3] = h_write_file(file, counter);
    argv[4] = NULL;
    free(list);
    free(counter);
    return argv;
}

static long long total_listed(const char *topic) {
    long long total = 0;
    for (int p = 0; p < CRASH_PARTITIONS; p++)
        total += h_redis_int(redis, "LLEN list:{%s:%d}", topic, p);
    return total;
}

static bool all_committed(const char *topic) {
    char group[64];
    for (int c = 0; c < 2; c++) {
        snprintf(group, sizeof(group), "connect-%s-%s", topic, c ? "counter" : "list");
        for (int p = 0; p < CRASH_PARTITIONS; p++)
            if (h_committed(broker, group, topic, p) != expected_cnt[p])
                return false;
    }
    return true;
}

/* Kills the run at each failpoint and at a random point, then lets it finish. */
static void crash_and_finish(const char *topic, const char *delivery) {
    produce_crash_topic(topic);
    const char *const *argv = crash_argv(topic, delivery);
    const char *const failpoints[] = {"RKB_FAILPOINT=crash_after_redis_apply@5000",
                                      "RKB_FAILPOINT=crash_mid_batch@12000", NULL};
    for (int i = 0; failpoints[i]; i++) {
        const char *const env[] = {failpoints[i], NULL};
        h_proc_t *proc = h_rkbridge_spawn(argv, env);
        int status = h_proc_wait(proc, 120000);
        if (status != 128 + SIGKILL)
            sink_dump_output(proc);
        assert_int_equal(status, 128 + SIGKILL);
        h_proc_free(proc);
    }
    /* A random point: SIGKILL once another ~15% of the records has been listed. */
    srandom((unsigned)h_now_ms());
    long long target = total_listed(topic) + CRASH_RECORDS / 10 + random() % (CRASH_RECORDS / 10);
    h_proc_t *proc = h_rkbridge_spawn(argv, NULL);
    H_WAIT_FOR(total_listed(topic) >= target, 120000);
    assert_int_equal(h_proc_stop(proc, SIGKILL, 10000), 128 + SIGKILL);
    h_proc_free(proc);

    proc = h_rkbridge_spawn(argv, NULL);
    bool done = H_WAIT_FOR(all_committed(topic), 180000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
}

static void test_eos_crashes_leave_redis_as_undisturbed(void **state) {
    crash_and_finish("crash", "exactly-once");
    for (int p = 0; p < CRASH_PARTITIONS; p++) {
        /* The list holds each offset exactly once, in order: what one clean run writes. */
        redisReply *r = h_redis_cmd(redis, "LRANGE list:{crash:%d} 0 -1", p);
        assert_int_equal(r->elements, (size_t)expected_cnt[p]);
        for (size_t i = 0; i < r->elements; i++)
            if (atoll(r->element[i]->str) != (long long)i)
                fail_msg("list:{crash:%d}[%zu] = %s", p, i, r->element[i]->str);
        freeReplyObject(r);
        char *sum = h_redis_str(redis, "GET cnt:{crash:%d}", p);
        assert_non_null(sum);
        assert_int_equal(atoll(sum), expected_sum[p]);
        free(sum);
    }
}

static void test_alo_crashes_lose_nothing(void **state) {
    crash_and_finish("crash_alo", "at-least-once");
    for (int p = 0; p < CRASH_PARTITIONS; p++) {
        /* Every offset at least once; replays only add duplicates. */
        redisReply *r = h_redis_cmd(redis, "LRANGE list:{crash_alo:%d} 0 -1", p);
        char *seen = calloc((size_t)expected_cnt[p], 1);
        for (size_t i = 0; i < r->elements; i++) {
            long long off = atoll(r->element[i]->str);
            assert_true(off >= 0 && off < expected_cnt[p]);
            seen[off] = 1;
        }
        for (int off = 0; off < expected_cnt[p]; off++)
            if (!seen[off])
                fail_msg("list:{crash_alo:%d} misses offset %d", p, off);
        free(seen);
        freeReplyObject(r);
        char *sum = h_redis_str(redis, "GET cnt:{crash_alo:%d}", p);
        assert_non_null(sum);
        assert_true(atoll(sum) >= expected_sum[p]);
        free(sum);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e1_crash_between_apply_and_commit),
        cmocka_unit_test(test_e1_crash_after_last_apply_commits_on_restart),
        cmocka_unit_test(test_e3_redis_ahead_of_kafka),
        cmocka_unit_test(test_e1_plain_string_crash),
        cmocka_unit_test(test_eos_plain_string_offset_moved),
        cmocka_unit_test(test_e4_redis_behind_kafka),
        cmocka_unit_test(test_e5_no_redis_offset_uses_committed),
        cmocka_unit_test(test_assigned_while_redis_down),
        cmocka_unit_test(test_reconnect_rewinds_to_stored_offset),
        cmocka_unit_test(test_eos_dead_letters_in_order),
        cmocka_unit_test(test_crash_after_dead_letter),
        cmocka_unit_test(test_eos_crashes_leave_redis_as_undisturbed),
        cmocka_unit_test(test_alo_crashes_lose_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
