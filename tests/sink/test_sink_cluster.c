/*
 * test_sink_cluster.c — the sink on a local Redis Cluster (3 masters, 3 replicas) with a master
 * killed mid-run (issue 8): 100k records over every type that needs no module, in both delivery
 * modes. At-least-once loses nothing; exactly-once leaves Redis identical to an undisturbed run
 * on a single server (SEMANTICS.md K-1 for the replay, E-1/E-8 for the offsets in the data's
 * slot). Also: a key outside its partition's slot stops an exactly-once task with a message
 * naming the setting (E-8).
 */
#include "harness.h"
#include "harness_cluster.h"
#include "sink_test_util.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC      "orders"
#define PARTITIONS 8
#define RECORDS    100000

static h_cluster_t *cluster;
static h_broker_t *broker;

/* The types without a module, and what each connector adds to the common settings. */
static const struct {
    const char *type;
    const char *settings;
} types[] = {
    {"string", "redis.type=STRING\n"},
    {"hash", "redis.type=HASH\n"},
    {"list", "redis.type=LIST\nredis.member=${offset}:${value.id}\n"},
    {"set", "redis.type=SET\nredis.member=${value.name}\n"},
    {"zset", "redis.type=ZSET\nredis.member=${value.name}\nredis.score=${value.score}\n"},
    {"stream", "redis.type=STREAM\n"},
    {"counter", "redis.type=COUNTER\nredis.increment=${value.score}\n"},
};
#define TYPES (sizeof(types) / sizeof(types[0]))

static int setup(void **state) {
    (void)state;
    cluster = h_cluster_start(3, 1);
    broker = h_broker_start(1, TOPIC ":8,eos_bad:1,win_in:2,win_bad:1");
    rd_kafka_t *producer = h_producer_new(broker);
    for (int i = 0; i < RECORDS; i++) {
        char key[32], value[128];
        snprintf(key, sizeof(key), "k%d", i % 3000);
        snprintf(value, sizeof(value), "{\"id\":%d,\"score\":%d,\"name\":\"n%d\"}", i, i % 1000,
                 i % 50);
        h_produce(producer, TOPIC, i % PARTITIONS, key, value, NULL);
    }
    h_producer_flush(producer);
    h_producer_destroy(producer);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_broker_stop(broker);
    h_cluster_stop(cluster);
    return 0;
}

/* One connector file per type, named PREFIX_TYPE, writing MODE keys into the Redis at uri. */
static void write_connectors(const char *prefix, const char *mode, const char *uri,
                             const char *files[TYPES + 1]) {
    bool eos = !strcmp(mode, "eos");
    for (size_t t = 0; t < TYPES; t++) {
        char *text = NULL, name[64];
        snprintf(name, sizeof(name), "%s_%s", prefix, types[t].type);
        if (asprintf(&text,
                     "name=%s\n"
                     "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                     "topics=" TOPIC "\n"
                     "redis.uri=%s\n"
                     "redis.timeout=2\n"
                     "kafka.bootstrap.servers=%s\n"
                     "kafka.session.timeout.ms=6000\n"
                     "kafka.heartbeat.interval.ms=500\n"
                     "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
                     "value.converter.schemas.enable=false\n"
                     "batch.size=500\n"
                     "errors.retry.timeout=-1\n"
                     "redis.key.template={${topic}:${partition}}:%s:%s%s\n"
                     "redis.delivery=%s\n"
                     "redis.offset.namespace=%s_%s\n"
                     "%s",
                     name, uri, broker->bootstrap, mode, types[t].type,
                     strcmp(types[t].type, "stream") ? ":${key}" : "",
                     eos ? "exactly-once" : "at-least-once", mode, types[t].type,
                     types[t].settings) < 0)
            abort();
        char file[80];
        snprintf(file, sizeof(file), "%s.properties", name);
        files[t] = h_write_file(file, text);
        free(text);
    }
    files[TYPES] = NULL;
}

static int64_t least_committed(const char *prefix) {
    int64_t least = -1;
    for (size_t t = 0; t < TYPES; t++) {
        char group[96];
        snprintf(group, sizeof(group), "connect-%s_%s", prefix, types[t].type);
        int64_t sum = sink_committed_sum(broker, group, TOPIC, PARTITIONS);
        if (least < 0 || sum < least)
            least = sum;
    }
    return least;
}

/* Polls every half second (each look asks the broker for 56 committed offsets) until every
 * group committed at least want records. */
static bool wait_committed(const char *prefix, int64_t want, int timeout_ms) {
    int64_t until = h_now_ms() + timeout_ms;
    while (least_committed(prefix) < want) {
        if (h_now_ms() > until)
            return false;
        h_sleep_ms(500);
    }
    return true;
}

/* A running master that serves one of the partitions' hash tags and still has a replica
 * (killing one without would take its slots down for good). */
static h_redis_t *victim_master(void) {
    for (int p = 0; p < PARTITIONS; p++) {
        char tag[32];
        snprintf(tag, sizeof(tag), "{" TOPIC ":%d}", p);
        h_redis_t *master = h_cluster_master_of(cluster, tag);
        if (!master)
            continue;
        redisReply *info = h_redis_cmd(master, "INFO replication");
        bool has_replica = !strstr(info->str, "connected_slaves:0");
        freeReplyObject(info);
        if (has_replica)
            return master;
    }
    return NULL;
}

/* A node still running, to give rkbridge as the cluster's seed. */
static const char *running_node_uri(void) {
    for (int n = 0; n < cluster->node_cnt; n++)
        if (cluster->nodes[n]->pid > 0)
            return h_redis_uri(cluster->nodes[n]);
    return NULL;
}

/* Runs the seven connectors to the end; with kill_master, SIGKILLs the master of a slot the
 * records write to once a third of them are committed, and checks that its replica took over. */
static void run(const char *prefix, const char *mode, const char *uri, bool kill_master) {
    const char *files[TYPES + 1];
    write_connectors(prefix, mode, uri, files);
    char address[128];
    h_proc_t *proc = h_worker_start(NULL, files, address, sizeof(address));
    if (kill_master) {
        bool third = wait_committed(prefix, RECORDS / 3, 180000);
        if (!third) {
            fprintf(stderr, "committed: %lld\n", (long long)least_committed(prefix));
            sink_dump_output(proc);
        }
        assert_true(third);
        h_redis_t *victim = victim_master();
        assert_non_null(victim);
        h_redis_kill(victim);
        assert_true(h_cluster_wait_failover(cluster, victim, 30000));
    }
    bool done = wait_committed(prefix, RECORDS, 240000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_true(h_proc_alive(proc));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
}

/* The lines of a dump whose key has ":MODE:" or is an offset key of MODE's connectors. */
static char *lines_of(const char *dump, const char *mode) {
    char tag[32], ns[32];
    snprintf(tag, sizeof(tag), ":%s:", mode);
    snprintf(ns, sizeof(ns), ":%s_", mode);
    size_t len = strlen(dump);
    char *out = calloc(1, len + 1);
    const char *line = dump;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t l = end ? (size_t)(end - line) + 1 : strlen(line);
        const char *space = memchr(line, ' ', l);
        size_t key_len = space ? (size_t)(space - line) : l;
        char key[512];
        snprintf(key, sizeof(key), "%.*s", (int)key_len, line);
        if (strstr(key, tag) || strstr(key, ns))
            strncat(out, line, l);
        line += l;
    }
    return out;
}

/* The count of items in a dumped value: space-separated words (lists, sets) or " | " entries. */
static size_t count_lines(const char *text) {
    size_t n = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        n++;
    return n;
}

static void test_cluster_failover_both_modes(void **state) {
    (void)state;
    /* Undisturbed, on a single server: what Redis must hold after each run. */
    h_redis_t *single = h_redis_start(NULL);
    run("ref_alo", "alo", h_redis_uri(single), false);
    run("ref_eos", "eos", h_redis_uri(single), false);
    char *reference = h_dump_nodes(&single, 1);
    h_redis_stop(single);


    run("cl_alo", "alo", running_node_uri(), true);
    run("cl_eos", "eos", running_node_uri(), true);
    char *dump = h_cluster_dump(cluster);

    /* Exactly-once: the same keys with the same values, offsets included. */
    char *want = lines_of(reference, "eos"), *got = lines_of(dump, "eos");
    assert_true(count_lines(want) > 3000);
    if (strcmp(want, got)) {
        /* Print the first difference, not megabytes. */
        size_t i = 0;
        while (want[i] && want[i] == got[i])
            i++;
        size_t from = i > 200 ? i - 200 : 0;
        fprintf(stderr, "exactly-once differs at byte %zu:\nwant ...%.400s\ngot  ...%.400s\n", i,
                want + from, got + from);
    }
    assert_string_equal(want, got);
    free(want);
    free(got);

    /* At-least-once: every key of the undisturbed run, holding at least what it held
     * (replays append to lists and streams and add to counters again; the last value of a
     * string, hash, set or sorted set is the same). */
    want = lines_of(reference, "alo");
    got = lines_of(dump, "alo");
    assert_int_equal(count_lines(want), count_lines(got));
    const char *w = want, *g = got;
    while (*w) {
        const char *we = strchr(w, '\n'), *ge = strchr(g, '\n');
        size_t wl = (size_t)(we - w), gl = (size_t)(ge - g);
        const char *wk = memchr(w, ' ', wl), *gk = memchr(g, ' ', gl);
        assert_int_equal(wk - w, gk - g);
        assert_memory_equal(w, g, (size_t)(wk - w)); /* the same key */
        bool grows = strstr(wk, " list ") == wk || strstr(wk, " stream ") == wk ||
                     memmem(w, (size_t)(wk - w), ":counter:", 9);
        if (grows)
            assert_true(gl >= wl);
        else if (wl != gl || memcmp(w, g, wl))
            fail_msg("at-least-once lost or changed: want %.*s\ngot %.*s", (int)(wl > 300 ? 300 : wl),
                     w, (int)(gl > 300 ? 300 : gl), g);
        w = we + 1;
        g = ge + 1;
    }
    free(want);
    free(got);
    free(reference);
    free(dump);
}

static bool output_has(h_proc_t *proc, const char *needle) {
    char *out = h_proc_output(proc);
    bool found = strstr(out, needle) != NULL;
    free(out);
    return found;
}

/* E-8: exactly-once on a cluster with keys outside their partition's slot stops the task with
 * a message naming the setting; nothing is committed. */
static void test_eos_key_outside_slot(void **state) {
    (void)state;
    rd_kafka_t *producer = h_producer_new(broker);
    h_produce(producer, "eos_bad", 0, "k1", "v1", NULL);
    h_producer_flush(producer);
    h_producer_destroy(producer);
    char *text = NULL;
    if (asprintf(&text,
                 "name=eos_bad\nconnector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                 "topics=eos_bad\nredis.uri=%s\nkafka.bootstrap.servers=%s\n"
                 "kafka.session.timeout.ms=6000\nredis.type=STRING\n"
                 "redis.delivery=exactly-once\n",
                 h_redis_uri(cluster->nodes[0]), broker->bootstrap) < 0)
        abort();
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    assert_true(H_WAIT_FOR(output_has(proc, "{${topic}:${partition}}"), 60000));
    char *out = h_proc_output(proc);
    assert_non_null(strstr(out, "redis.key.template"));
    assert_non_null(strstr(out, "eos_bad[0]@0"));
    free(out);
    assert_true(h_committed(broker, "connect-eos_bad", "eos_bad", 0) < 0); /* none */
    h_proc_free(proc);
}

/* The text of field of hash key on the cluster (NULL: none), malloc'd. */
static char *cluster_hget(const char *key, const char *field) {
    h_redis_t *master = h_cluster_master_of(cluster, key);
    assert_non_null(master);
    return h_redis_str(master, "HGET %s %s", key, field);
}

/* Windows on a cluster: with the partition's hash tag in window.key.prefix every window key is
 * in its partition's slot, and the windows move in one step with the offsets (W-1's shape on
 * two partitions); without it the task stops, naming window.key.prefix (E-8). */
static void test_window_on_cluster(void **state) {
    (void)state;
    rd_kafka_t *producer = h_producer_new(broker);
    const int64_t ts[] = {1000, 5000, 12000};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < 3; i++) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC("win_in"), RD_KAFKA_V_PARTITION(p),
                RD_KAFKA_V_KEY("u1", 2), RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_TIMESTAMP(ts[i]),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            assert_int_equal(err, 0);
        }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC("win_bad"), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_KEY("u1", 2),
        RD_KAFKA_V_VALUE("x", 1), RD_KAFKA_V_TIMESTAMP(1000), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_END);
    assert_int_equal(err, 0);
    h_producer_flush(producer);
    h_producer_destroy(producer);

    const char *settings = "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                           "redis.type=WINDOW\nwindow.size.ms=10000\nkafka.session.timeout.ms=6000\n";
    char *text = NULL;
    if (asprintf(&text,
                 "name=win_ok\ntopics=win_in\nredis.uri=%s\nkafka.bootstrap.servers=%s\n%s"
                 "window.key.prefix=win:{${topic}:${partition}}:\n",
                 running_node_uri(), broker->bootstrap, settings) < 0)
        abort();
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    bool done = H_WAIT_FOR(h_committed(broker, "connect-win_ok", "win_in", 0) == 3 &&
                               h_committed(broker, "connect-win_ok", "win_in", 1) == 3,
                           60000);
    if (!done)
        sink_dump_output(proc);
    assert_true(done);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    for (int p = 0; p < 2; p++) {
        char key[64];
        snprintf(key, sizeof(key), "win:{win_in:%d}:u1:0", p);
        char *count = cluster_hget(key, "count"), *final = cluster_hget(key, "final");
        assert_string_equal(count, "2");
        assert_string_equal(final, "1"); /* closed by 12000 */
        free(count);
        free(final);
        snprintf(key, sizeof(key), "win:{win_in:%d}:u1:10000", p);
        count = cluster_hget(key, "count");
        assert_string_equal(count, "1");
        free(count);
    }

    if (asprintf(&text, "name=win_bad\ntopics=win_bad\nredis.uri=%s\nkafka.bootstrap.servers=%s\n%s",
                 running_node_uri(), broker->bootstrap, settings) < 0)
        abort();
    proc = h_rkbridge_run(text, NULL);
    free(text);
    assert_true(H_WAIT_FOR(output_has(proc, "window.key.prefix=win:{"), 60000));
    assert_true(h_committed(broker, "connect-win_bad", "win_bad", 0) < 0); /* none */
    h_proc_free(proc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eos_key_outside_slot),
        cmocka_unit_test(test_window_on_cluster),
        cmocka_unit_test(test_cluster_failover_both_modes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
