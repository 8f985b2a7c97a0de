/*
 * test_sentinel.c — Redis Sentinel (src/redis/sentinel.c): the redis-sentinel:// URI, connects
 * that go where the sentinels say (skipping a sentinel that is down, refusing a master that is
 * a replica now), a connection closed on READONLY, and a sink run through a failover: the
 * master SIGKILLed mid-run, the replica promoted, and every record on the new master at the
 * end (at-least-once with redis.wait.replicas=1). Real redis-server and sentinel processes
 * (harness_sentinel.h); each test that needs servers starts its own.
 */
#include "harness.h"
#include "harness_sentinel.h"
#include "redis/redis.h"
#include "util/util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- URI ---------------------------------------------------------------------------------- */

static void test_uri_good(void **state) {
    (void)state;
    rkb_redis_conf_t conf, copy;
    char errstr[256], where[256];
    rkb_redis_conf_init(&conf);

    assert_int_equal(rkb_redis_conf_from_uri(&conf,
                                             "redis-sentinel://h1,h2:26380,[::1]:7000/3#mymaster",
                                             errstr, sizeof(errstr)),
                     0);
    assert_string_equal(conf.sentinel_master, "mymaster");
    assert_int_equal(conf.sentinel_cnt, 3);
    assert_string_equal(conf.sentinels[0].host, "h1");
    assert_int_equal(conf.sentinels[0].port, 26379);
    assert_string_equal(conf.sentinels[1].host, "h2");
    assert_int_equal(conf.sentinels[1].port, 26380);
    assert_string_equal(conf.sentinels[2].host, "::1");
    assert_int_equal(conf.sentinels[2].port, 7000);
    assert_int_equal(conf.db, 3);
    assert_null(conf.username);
    assert_null(conf.password);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)),
                        "sentinel mymaster via h1:26379,h2:26380,[::1]:7000/3");

    /* The password is the master's; it may hold '#', ',' and '@' (the last '@' ends it). */
    assert_int_equal(
        rkb_redis_conf_from_uri(&conf, "redis-sentinel://u:p%40ss#,@x@h#m", errstr, sizeof(errstr)),
        0);
    assert_string_equal(conf.username, "u");
    assert_string_equal(conf.password, "p@ss#,@x");
    assert_string_equal(conf.sentinel_master, "m");
    assert_int_equal(conf.sentinel_cnt, 1);
    assert_string_equal(conf.sentinels[0].host, "h");
    assert_int_equal(conf.sentinels[0].port, 26379);
    assert_int_equal(conf.db, 0);
    assert_false(conf.tls.enabled);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)),
                        "sentinel m via h:26379/0");

    /* A copy owns its own sentinel list (ASan sees a double free otherwise). */
    rkb_redis_conf_copy(&copy, &conf);
    assert_string_equal(copy.sentinel_master, "m");
    assert_ptr_not_equal(copy.sentinels, conf.sentinels);
    assert_string_equal(copy.sentinels[0].host, "h");
    rkb_redis_conf_clear(&copy);

    assert_int_equal(rkb_redis_conf_from_uri(&conf, "REDIS-SENTINEL://:pw@127.0.0.1:5000#m-1",
                                             errstr, sizeof(errstr)),
                     0);
    assert_null(conf.username);
    assert_string_equal(conf.password, "pw");
    assert_string_equal(conf.sentinel_master, "m-1");
    assert_int_equal(conf.sentinels[0].port, 5000);

    /* A plain URI afterwards is no longer a sentinel conf. */
    assert_int_equal(rkb_redis_conf_from_uri(&conf, "redis://h:1/2", errstr, sizeof(errstr)), 0);
    assert_null(conf.sentinel_master);
    assert_null(conf.sentinels);
    assert_int_equal(conf.sentinel_cnt, 0);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)), "h:1/2");
    rkb_redis_conf_clear(&conf);
}

static void test_uri_bad(void **state) {
    (void)state;
    static const struct {
        const char *uri, *error;
    } cases[] = {
        {"redis-sentinel://u:topsecret@h1:26379", "needs the master's name after '#'"},
        {"redis-sentinel://h1:26379#", "needs the master's name after '#'"},
        {"redis-sentinel://u:topsecret@h1:99999#m", "bad port '99999'"},
        {"redis-sentinel://h1:0#m", "bad port '0'"},
        {"redis-sentinel://h1,,h2#m", "empty sentinel address"},
        {"redis-sentinel://h1,#m", "empty sentinel address"},
        {"redis-sentinel://u:topsecret@#m", "empty sentinel address"},
        {"redis-sentinel://u:topsecret@h/x#m", "bad database 'x'"},
        {"redis-sentinel://h#my master", "bad master name"},
        {"redis-sentinel://h#a/b", "bad master name"},
        {"redis-sentinel://u:top%zzsecret@h#m", "bad percent-encoding in the password"},
        {"redis-sentinel://h?timeout=5#m", "query parameters are not supported"},
        {"redis-sentinel://[::1#m", "missing ']'"},
        {"rediss-sentinel://u:topsecret@h#m", "rediss-sentinel:// (TLS to the sentinels) is not "
                                              "supported"},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(cases); i++) {
        rkb_redis_conf_t conf;
        char errstr[256] = "";
        rkb_redis_conf_init(&conf);
        if (rkb_redis_conf_from_uri(&conf, cases[i].uri, errstr, sizeof(errstr)) == 0)
            fail_msg("%s: accepted", cases[i].uri);
        if (!strstr(errstr, cases[i].error))
            fail_msg("%s: error '%s' does not say '%s'", cases[i].uri, errstr, cases[i].error);
        if (strstr(errstr, "topsecret"))
            fail_msg("%s: error '%s' shows the password", cases[i].uri, errstr);
        /* A refused URI leaves conf as it was. */
        assert_null(conf.sentinel_master);
        assert_null(conf.password);
        assert_string_equal(conf.host, "localhost");
        rkb_redis_conf_clear(&conf);
    }
}

/* ---- Connecting through the sentinels ------------------------------------------------------ */

/* A handle for uri, not connected yet. */
static rkb_redis_t *handle_for(const char *uri) {
    rkb_redis_conf_t conf;
    char errstr[512];
    rkb_redis_conf_init(&conf);
    if (rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)))
        fail_msg("%s: %s", uri, errstr);
    conf.connect_timeout_ms = 2000;
    conf.command_timeout_ms = 5000;
    rkb_redis_t *r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    return r;
}

/* SET key value in a pipeline of one; returns the reply (caller frees) or NULL. */
static redisReply *pipeline_set(rkb_redis_t *r, const char *key, const char *value) {
    rkb_cmds_t *cmds = rkb_cmds_new();
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "SET");
    rkb_cmds_args(cmds, key);
    rkb_cmds_args(cmds, value);
    rkb_cmds_end(cmds);
    redisReply *reply = NULL;
    char errstr[512];
    int err = rkb_redis_pipeline(r, cmds, &reply, errstr, sizeof(errstr));
    rkb_cmds_destroy(cmds);
    if (err)
        fail_msg("pipeline: %s", errstr);
    return reply;
}

/* A free port nobody listens on: a sentinel that is down. */
static int dead_port(void) {
    h_redis_t *gone = h_redis_start(NULL);
    int port = gone->port;
    h_redis_stop(gone);
    return port;
}

static void test_connect_through_sentinel(void **state) {
    (void)state;
    h_sentinel_group_t *group = h_sentinel_group_start(1, "m");
    char uri[600], errstr[1024];

    /* The first sentinel listed is down: the next one answers. */
    int down = dead_port();
    snprintf(uri, sizeof(uri), "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d/2#m", down,
             group->sentinel_port[0]);
    rkb_redis_t *r = handle_for(uri);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("connect: %s", errstr);
    redisReply *reply = pipeline_set(r, "sentinel:k", "v1");
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    /* Written on the master, in db 2. */
    freeReplyObject(h_redis_cmd(group->master, "SELECT 2"));
    char *value = h_redis_str(group->master, "GET sentinel:k");
    assert_non_null(value);
    assert_string_equal(value, "v1");
    free(value);
    rkb_redis_destroy(r);

    /* A master name no sentinel monitors will not pass by itself: a permanent error. */
    snprintf(uri, sizeof(uri), "redis-sentinel://127.0.0.1:%d#nosuch", group->sentinel_port[0]);
    r = handle_for(uri);
    assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_PROTO);
    assert_non_null(strstr(errstr, "monitors no master named 'nosuch'"));
    assert_non_null(strstr(errstr, "redis.uri"));
    assert_false(rkb_redis_is_connected(r));
    rkb_redis_destroy(r);

    /* Every sentinel down: transient, and the error names each one. */
    snprintf(uri, sizeof(uri), "redis-sentinel://127.0.0.1:%d#m", down);
    r = handle_for(uri);
    assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    char where[64];
    snprintf(where, sizeof(where), "127.0.0.1:%d", down);
    assert_non_null(strstr(errstr, where));
    rkb_redis_destroy(r);

    h_sentinel_group_stop(group);
}

/* The master is demoted while we are connected (the replica promoted by hand, as a failover
 * does): a write answers READONLY and the connection is closed; connecting again, the sentinel
 * (which has not noticed yet) still names the old master, and ROLE refuses it: transient. */
static void test_demoted_master(void **state) {
    (void)state;
    h_sentinel_group_t *group = h_sentinel_group_start(1, "m");
    char errstr[1024];
    rkb_redis_t *r = handle_for(group->uri);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("connect: %s", errstr);
    redisReply *reply = pipeline_set(r, "before", "1");
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);

    freeReplyObject(h_redis_cmd(group->replica, "REPLICAOF NO ONE"));
    freeReplyObject(h_redis_cmd(group->master, "REPLICAOF 127.0.0.1 %d", group->replica->port));

    reply = pipeline_set(r, "after", "2");
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_true(rkb_redis_error_is_transient(reply->str));
    assert_non_null(strstr(reply->str, "READONLY"));
    freeReplyObject(reply);
    assert_false(rkb_redis_is_connected(r));

    int err = rkb_redis_connect(r, errstr, sizeof(errstr));
    if (err == RKB_REDIS_OK && h_sentinel_master_port(group, 0) == group->replica->port) {
        /* The sentinel noticed and moved on in between (it reconfigures a master that says it
         * is a replica): then the new master must be where we are. */
        reply = pipeline_set(r, "after", "2");
        assert_int_equal(reply->type, REDIS_REPLY_STATUS);
        freeReplyObject(reply);
    } else {
        assert_int_equal(err, RKB_REDIS_ERR_IO);
        assert_non_null(strstr(errstr, "is a slave now"));
        assert_false(rkb_redis_is_connected(r));
    }
    rkb_redis_destroy(r);
    h_sentinel_group_stop(group);
}

/* ---- A sink run through a failover -------------------------------------------------------- */

static void produce_range(rd_kafka_t *producer, int from, int to) {
    char key[32], value[32];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        h_produce(producer, "failover", i % 4, key, value, NULL);
    }
    h_producer_flush(producer);
}

static int64_t committed_sum(h_broker_t *broker) {
    int64_t sum = 0;
    for (int p = 0; p < 4; p++) {
        int64_t off = h_committed(broker, "connect-failover", "failover", p);
        sum += off < 0 ? 0 : off;
    }
    return sum;
}

static void dump_output(h_proc_t *proc) {
    char *out = h_proc_output(proc);
    fprintf(stderr, "---- rkbridge output ----\n%s\n-------------------------\n", out);
    free(out);
}

/*
 * Half the records are produced before the master is SIGKILLed while the sink writes them,
 * half after. The sentinel promotes the replica; the sink's next connects find it. WAIT 1 after
 * each batch means an offset is committed only once the replica had the batch, so nothing the
 * sink counted as done dies with the old master. The new master gets a replica of its own (a
 * new server), or WAIT 1 could never be met again.
 */
static void test_sink_failover_loses_nothing(void **state) {
    (void)state;
    enum { N = 20000 };
    h_sentinel_group_t *group = h_sentinel_group_start(1, "m");
    h_broker_t *broker = h_broker_start(1, "failover:4");
    rd_kafka_t *producer = h_producer_new(broker);
    produce_range(producer, 0, N / 2);

    char *text = NULL;
    if (asprintf(&text,
                 "name=failover\n"
                 "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                 "topics=failover\n"
                 "redis.uri=%s\n"
                 "kafka.bootstrap.servers=%s\n"
                 "kafka.session.timeout.ms=6000\n"
                 "kafka.heartbeat.interval.ms=500\n"
                 "redis.type=STRING\nredis.keyspace=\n"
                 "batch.size=100\n"
                 "redis.wait.replicas=1\nredis.wait.timeout=500\n"
                 "redis.timeout=2\nerrors.retry.delay.max.ms=500\n",
                 group->uri, broker->bootstrap) < 0)
        abort();
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);

    h_redis_t *old_master = group->master, *promoted = group->replica;
    bool writing = H_WAIT_FOR(h_redis_int(old_master, "DBSIZE") >= 1000, 60000);
    if (!writing)
        dump_output(proc);
    assert_true(writing);
    h_redis_kill(old_master);
    produce_range(producer, N / 2, N);
    h_producer_destroy(producer);

    assert_true(h_sentinel_wait_master(group, promoted->port, 60000));
    char args[64];
    snprintf(args, sizeof(args), "--replicaof 127.0.0.1 %d", promoted->port);
    h_redis_t *new_replica = h_redis_start(args);

    bool all = H_WAIT_FOR(committed_sum(broker) == N, 120000);
    if (!all) {
        fprintf(stderr, "committed %lld of %d\n", (long long)committed_sum(broker), N);
        dump_output(proc);
    }
    assert_true(all);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);

    /* The sink found the new master through the sentinel. */
    char *out = h_proc_output(proc);
    char line[128];
    snprintf(line, sizeof(line), "master 'm' is at 127.0.0.1:%d", promoted->port);
    if (!strstr(out, line) || getenv("RKB_TEST_VERBOSE"))
        dump_output(proc);
    assert_non_null(strstr(out, line));
    free(out);
    h_proc_free(proc);

    /* Every record is on the new master, with its value. */
    for (int i = 0; i < N; i += 500) {
        redisReply *reply = h_redis_cmd(promoted, "EVAL %s 0 %d",
                                        "local missing = 0 "
                                        "for i = tonumber(ARGV[1]), tonumber(ARGV[1]) + 499 do "
                                        "  if redis.call('GET', 'k' .. i) ~= 'v' .. i then "
                                        "    missing = missing + 1 "
                                        "  end "
                                        "end return missing",
                                        i);
        assert_int_equal(reply->type, REDIS_REPLY_INTEGER);
        if (reply->integer != 0)
            fail_msg("%lld of k%d..k%d missing or wrong on the new master", reply->integer, i,
                     i + 499);
        freeReplyObject(reply);
    }
    assert_int_equal(h_redis_int(promoted, "DBSIZE"), N);

    h_redis_stop(new_replica);
    h_broker_stop(broker);
    h_sentinel_group_stop(group);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_good),
        cmocka_unit_test(test_uri_bad),
        cmocka_unit_test(test_connect_through_sentinel),
        cmocka_unit_test(test_demoted_master),
        cmocka_unit_test(test_sink_failover_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
