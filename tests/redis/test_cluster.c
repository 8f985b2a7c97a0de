/*
 * test_cluster.c — rkb_redis_t on a local Redis Cluster (3 masters, 3 replicas): slots, routing
 * of batches by key, MULTI blocks, WAIT, scripts, MOVED after a failover, detection.
 */
#include "harness.h"
#include "harness_cluster.h"

#include "redis/redis.h"
#include "util/util.h"

#include <stdarg.h>
#include <setjmp.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static h_cluster_t *cluster;

static int setup(void **state) {
    (void)state;
    cluster = h_cluster_start(3, 1);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    h_cluster_stop(cluster);
    return 0;
}

static rkb_redis_t *connect_to(h_redis_t *node, rkb_redis_cluster_mode_t mode) {
    rkb_redis_conf_t conf;
    rkb_redis_conf_init(&conf);
    char why[512];
    assert_int_equal(rkb_redis_conf_from_uri(&conf, h_redis_uri(node), why, sizeof(why)), 0);
    conf.cluster = mode;
    conf.command_timeout_ms = 3000;
    conf.connect_timeout_ms = 3000;
    rkb_redis_t *r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    return r;
}

/* Values from the cluster specification (Redis Cluster spec, "Keys distribution model"). */
static void test_key_slot(void **state) {
    (void)state;
    assert_int_equal(rkb_redis_key_slot("123456789", 9), 12739);
    assert_int_equal(rkb_redis_key_slot("foo", 3), 12182);
    /* Hash tags: the text between the first '{' and the next '}'. */
    assert_int_equal(rkb_redis_key_slot("{user1000}.following", 20),
                     rkb_redis_key_slot("{user1000}.followers", 20));
    assert_int_equal(rkb_redis_key_slot("{user1000}.following", 20),
                     rkb_redis_key_slot("user1000", 8));
    /* An empty tag is no tag: the whole key is hashed. */
    assert_int_equal(rkb_redis_key_slot("foo{}{bar}", 10) == rkb_redis_key_slot("bar", 3), 0);
    assert_int_equal(rkb_redis_key_slot("foo{{bar}}zap", 13), rkb_redis_key_slot("{bar", 4));
}

/* A batch over keys of every master: each SET lands on the master of its slot, replies come
 * back in the batch's order, and GETs in the same batch see the SETs before them. */
static void test_batch_routed_by_slot(void **state) {
    (void)state;
    char why[512];
    rkb_redis_t *r = connect_to(cluster->nodes[0], RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    assert_true(rkb_redis_is_cluster(r));

    enum { N = 600 };
    rkb_cmds_t *cmds = rkb_cmds_new();
    for (int i = 0; i < N; i++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "SET");
        rkb_cmds_argf(cmds, "route:%d", i);
        rkb_cmds_argf(cmds, "v%d", i);
        rkb_cmds_end(cmds);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "GET");
        rkb_cmds_argf(cmds, "route:%d", i);
        rkb_cmds_end(cmds);
    }
    redisReply *replies[2 * N];
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    for (int i = 0; i < N; i++) {
        assert_int_equal(replies[2 * i]->type, REDIS_REPLY_STATUS);
        char want[32];
        snprintf(want, sizeof(want), "v%d", i);
        assert_int_equal(replies[2 * i + 1]->type, REDIS_REPLY_STRING);
        assert_string_equal(replies[2 * i + 1]->str, want);
    }
    rkb_redis_replies_free(replies, 2 * N);

    /* Each key is on the master of its slot, and the keys are spread over all three. */
    int per_master[H_CLUSTER_MAX_NODES] = {0};
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof(key), "route:%d", i);
        h_redis_t *master = h_cluster_master_of(cluster, key);
        assert_non_null(master);
        char *value = h_redis_str(master, "GET %s", key);
        assert_non_null(value);
        free(value);
        for (int n = 0; n < cluster->node_cnt; n++)
            per_master[n] += cluster->nodes[n] == master;
    }
    int used = 0;
    for (int n = 0; n < cluster->node_cnt; n++)
        used += per_master[n] > 0;
    assert_int_equal(used, 3);

    /* Single commands are routed too. */
    const char *argv[] = {"GET", "route:7"};
    redisReply *reply = rkb_redis_command(r, 2, argv, NULL, why, sizeof(why));
    assert_non_null(reply);
    assert_string_equal(reply->str, "v7");
    freeReplyObject(reply);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* A MULTI block goes whole to the node of its first key; WAIT answers for every node the batch
 * wrote to; a script loaded through the handle runs on any master. */
static void test_multi_wait_script(void **state) {
    (void)state;
    char why[512], sha[41];
    rkb_redis_t *r = connect_to(cluster->nodes[1], RKB_REDIS_CLUSTER_ON);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    static const char script[] = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    assert_int_equal(rkb_redis_script_load(r, "test script", script, strlen(script), sha, why,
                                           sizeof(why)),
                     RKB_REDIS_OK);

    rkb_cmds_t *cmds = rkb_cmds_new();
    const char *const tags[] = {"{a}", "{b}", "{c}", "{d}"};
    for (size_t t = 0; t < 4; t++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "MULTI");
        rkb_cmds_end(cmds);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "SET");
        rkb_cmds_argf(cmds, "%s:x", tags[t]);
        rkb_cmds_args(cmds, "1");
        rkb_cmds_end(cmds);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EXPIRE");
        rkb_cmds_argf(cmds, "%s:x", tags[t]);
        rkb_cmds_args(cmds, "100");
        rkb_cmds_end(cmds);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EXEC");
        rkb_cmds_end(cmds);
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EVALSHA");
        rkb_cmds_args(cmds, sha);
        rkb_cmds_args(cmds, "1");
        rkb_cmds_argf(cmds, "%s:n", tags[t]);
        rkb_cmds_args(cmds, "5");
        rkb_cmds_end(cmds);
    }
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "WAIT");
    rkb_cmds_args(cmds, "1");
    rkb_cmds_args(cmds, "5000");
    size_t wait = rkb_cmds_end(cmds);
    size_t n = rkb_cmds_count(cmds);
    redisReply *replies[32];
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    for (size_t t = 0; t < 4; t++) {
        redisReply *exec = replies[t * 5 + 3];
        assert_int_equal(exec->type, REDIS_REPLY_ARRAY);
        assert_null(rkb_redis_reply_error(exec));
        assert_int_equal(replies[t * 5 + 4]->type, REDIS_REPLY_INTEGER);
        assert_int_equal(replies[t * 5 + 4]->integer, 5);
    }
    /* Every master has its replica: the smallest count over the nodes written is 1. */
    assert_int_equal(replies[wait]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(replies[wait]->integer, 1);
    rkb_redis_replies_free(replies, n);
    for (size_t t = 0; t < 4; t++) {
        char key[16];
        snprintf(key, sizeof(key), "%s:x", tags[t]);
        redisReply *ttl = h_redis_cmd(h_cluster_master_of(cluster, key), "TTL %s", key);
        assert_true(ttl->integer > 0);
        freeReplyObject(ttl);
    }
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* redis.cluster=false on a cluster node: commands for other nodes' slots come back MOVED (an
 * error the callers retry, not a data error); redis.cluster=true on a single server is a setup
 * error naming the key. */
static void test_mode_settings(void **state) {
    (void)state;
    char why[512];
    rkb_redis_t *r = connect_to(cluster->nodes[0], RKB_REDIS_CLUSTER_OFF);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    assert_false(rkb_redis_is_cluster(r));
    bool moved = false;
    for (int i = 0; i < 50 && !moved; i++) {
        char key[16];
        snprintf(key, sizeof(key), "off:%d", i);
        const char *argv[] = {"SET", key, "x"};
        redisReply *reply = rkb_redis_command(r, 3, argv, NULL, why, sizeof(why));
        assert_non_null(reply);
        if (reply->type == REDIS_REPLY_ERROR) {
            assert_true(rkb_redis_error_is_transient(reply->str));
            moved = !strncmp(reply->str, "MOVED", 5);
        }
        freeReplyObject(reply);
    }
    assert_true(moved);
    rkb_redis_destroy(r);

    h_redis_t *single = h_redis_start(NULL);
    r = connect_to(single, RKB_REDIS_CLUSTER_ON);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_ERR_PROTO);
    assert_non_null(strstr(why, "redis.cluster=true"));
    rkb_redis_destroy(r);
    /* auto on a single server: a single server. */
    r = connect_to(single, RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    assert_false(rkb_redis_is_cluster(r));
    rkb_redis_destroy(r);
    h_redis_stop(single);
}

/* A replica takes over by CLUSTER FAILOVER (its old master becomes a replica and answers
 * MOVED): the next batch is redirected and learns the new slots without an error; a script it
 * had loaded is loaded on the new master when that one answers NOSCRIPT. */
static void test_moved_after_failover(void **state) {
    (void)state;
    char why[512], sha[41];
    rkb_redis_t *r = connect_to(cluster->nodes[2], RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    static const char script[] = "return redis.call('SET', KEYS[1], ARGV[1])";
    assert_int_equal(rkb_redis_script_load(r, "test", script, strlen(script), sha, why,
                                           sizeof(why)),
                     RKB_REDIS_OK);

    h_redis_t *old_master = h_cluster_master_of(cluster, "{moved}");
    /* The replica of that master. */
    h_redis_t *replica = NULL;
    for (int n = 0; n < cluster->node_cnt && !replica; n++) {
        h_redis_t *node = cluster->nodes[n];
        if (node == old_master || node->pid <= 0)
            continue;
        char *info = NULL;
        redisReply *reply = h_redis_cmd(node, "INFO replication");
        char port[32];
        snprintf(port, sizeof(port), "master_port:%d\r", old_master->port);
        if (strstr(reply->str, port))
            replica = node;
        freeReplyObject(reply);
        free(info);
    }
    assert_non_null(replica);
    redisReply *fo = h_redis_cmd(replica, "CLUSTER FAILOVER");
    assert_int_equal(fo->type, REDIS_REPLY_STATUS);
    freeReplyObject(fo);
    assert_true(H_WAIT_FOR(h_cluster_master_of(cluster, "{moved}") == replica, 20000));
    /* The new master forgets scripts it got by replication? Make sure: flush its cache. */
    redisReply *flush = h_redis_cmd(replica, "SCRIPT FLUSH");
    freeReplyObject(flush);

    rkb_cmds_t *cmds = rkb_cmds_new();
    for (int i = 0; i < 20; i++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "EVALSHA");
        rkb_cmds_args(cmds, sha);
        rkb_cmds_args(cmds, "1");
        rkb_cmds_argf(cmds, "{moved}:%d", i);
        rkb_cmds_argf(cmds, "%d", i);
        rkb_cmds_end(cmds);
    }
    redisReply *replies[20];
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    for (int i = 0; i < 20; i++) {
        assert_null(rkb_redis_reply_error(replies[i]));
        char key[32];
        snprintf(key, sizeof(key), "{moved}:%d", i);
        char *value = h_redis_str(replica, "GET %s", key);
        assert_int_equal(atoi(value), i);
        free(value);
    }
    rkb_redis_replies_free(replies, 20);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* Coalescing for a cluster: runs of SET/DEL merge only while the key's slot stays the same, and
 * the merged batch runs on the cluster without CROSSSLOT. */
static void test_coalesce_by_slot(void **state) {
    (void)state;
    char why[512];
    rkb_cmds_t *cmds = rkb_cmds_new();
    const char *const keys[] = {"{p0}:a", "{p0}:b", "{p1}:a", "{p0}:c", "{p0}:d"};
    for (size_t k = 0; k < 5; k++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "SET");
        rkb_cmds_args(cmds, keys[k]);
        rkb_cmds_argf(cmds, "v%zu", k);
        rkb_cmds_end(cmds);
    }
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "DEL");
    rkb_cmds_args(cmds, "{p0}:d");
    rkb_cmds_end(cmds);
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "DEL");
    rkb_cmds_args(cmds, "{p1}:zz");
    rkb_cmds_end(cmds);
    size_t map[8];
    assert_int_equal(rkb_cmds_coalesce(cmds, 100, true, map), 5);
    const size_t expect_map[] = {0, 0, 1, 2, 2, 3, 4};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(expect_map); i++)
        assert_int_equal(map[i], expect_map[i]);
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_cmds_describe(cmds, 0, &out);
    assert_string_equal(out.data, "MSET {p0}:a v0 {p0}:b v1");
    rkb_buf_free(&out);

    rkb_redis_t *r = connect_to(cluster->nodes[0], RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    redisReply *replies[5];
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    for (size_t i = 0; i < 5; i++)
        assert_null(rkb_redis_reply_error(replies[i]));
    rkb_redis_replies_free(replies, 5);
    char *value = h_redis_str(h_cluster_master_of(cluster, "{p0}:c"), "GET {p0}:c");
    assert_string_equal(value, "v3");
    free(value);
    assert_null(h_redis_str(h_cluster_master_of(cluster, "{p0}:d"), "GET {p0}:d"));
    rkb_redis_destroy(r);
    rkb_cmds_destroy(cmds);
}

/* The replica of the master of key (NULL if none). */
static h_redis_t *replica_of_master_of(const char *key) {
    h_redis_t *master = h_cluster_master_of(cluster, key);
    char port[32];
    snprintf(port, sizeof(port), "master_port:%d\r", master->port);
    for (int n = 0; n < cluster->node_cnt; n++) {
        h_redis_t *node = cluster->nodes[n];
        if (node == master || node->pid <= 0)
            continue;
        redisReply *reply = h_redis_cmd(node, "INFO replication");
        bool is_replica = strstr(reply->str, port) != NULL;
        freeReplyObject(reply);
        if (is_replica)
            return node;
    }
    return NULL;
}

/* Two batches in flight (rkb_redis_pipeline_send twice, then the receives) while their slot has
 * moved: both come back MOVED from the old master, and the second batch's commands of a key run
 * after the first's on the new master. */
static void test_two_in_flight_redirected(void **state) {
    (void)state;
    char why[512];
    rkb_redis_t *r = connect_to(cluster->nodes[0], RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    h_redis_t *replica = replica_of_master_of("{tif}");
    assert_non_null(replica);
    redisReply *fo = h_redis_cmd(replica, "CLUSTER FAILOVER");
    freeReplyObject(fo);
    assert_true(H_WAIT_FOR(h_cluster_master_of(cluster, "{tif}") == replica, 20000));

    rkb_cmds_t *first = rkb_cmds_new(), *second = rkb_cmds_new();
    const char *const set[] = {"SET", "{tif}:k", "1"}, *const set2[] = {"SET", "{tif}:j", "a"};
    const char *const incr[] = {"INCR", "{tif}:k"}, *const get[] = {"GET", "{tif}:k"};
    const char *const *cmds1[] = {set, set2}, *const *cmds2[] = {incr, get};
    const int argc1[] = {3, 3}, argc2[] = {2, 2};
    for (int i = 0; i < 2; i++) {
        rkb_cmds_begin(first);
        for (int j = 0; j < argc1[i]; j++)
            rkb_cmds_args(first, cmds1[i][j]);
        rkb_cmds_end(first);
        rkb_cmds_begin(second);
        for (int j = 0; j < argc2[i]; j++)
            rkb_cmds_args(second, cmds2[i][j]);
        rkb_cmds_end(second);
    }
    redisReply *replies[2];
    assert_int_equal(rkb_redis_pipeline_send(r, first, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_pipeline_send(r, second, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_pipeline_recv(r, 2, replies, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(replies[0]->type, REDIS_REPLY_STATUS);
    assert_int_equal(replies[1]->type, REDIS_REPLY_STATUS);
    rkb_redis_replies_free(replies, 2);
    assert_int_equal(rkb_redis_pipeline_recv(r, 2, replies, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(replies[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(replies[0]->integer, 2);
    assert_string_equal(replies[1]->str, "2");
    rkb_redis_replies_free(replies, 2);
    char *value = h_redis_str(replica, "GET {tif}:k");
    assert_string_equal(value, "2");
    free(value);
    rkb_cmds_destroy(first);
    rkb_cmds_destroy(second);
    rkb_redis_destroy(r);
}

/* The node id of a running node (CLUSTER MYID), malloc'd. */
static char *node_id(h_redis_t *node) {
    return h_redis_str(node, "CLUSTER MYID");
}

/* A slot being migrated (MIGRATING on its master, IMPORTING on another): a key already moved
 * answers ASK from the old master, and the handle asks the new one (ASKING first); a new key of
 * that slot is created on the new master the same way. Then the migration ends, and the next
 * batch follows MOVED. */
static void test_ask_during_migration(void **state) {
    (void)state;
    char why[512];
    h_redis_t *source = h_cluster_master_of(cluster, "{ask}");
    h_redis_t *target = h_cluster_master_of(cluster, "{moved}") != source
                            ? h_cluster_master_of(cluster, "{moved}")
                            : h_cluster_master_of(cluster, "{tif}");
    if (target == source) /* three masters: one of these two tags is elsewhere */
        target = h_cluster_master_of(cluster, "{b}") != source ? h_cluster_master_of(cluster, "{b}")
                                                              : h_cluster_master_of(cluster, "{a}");
    assert_true(target != source);
    long long slot = h_redis_int(source, "CLUSTER KEYSLOT {ask}");
    char *source_id = node_id(source), *target_id = node_id(target);
    redisReply *reply = h_redis_cmd(source, "SET {ask}:old v-old");
    freeReplyObject(reply);
    reply = h_redis_cmd(target, "CLUSTER SETSLOT %lld IMPORTING %s", slot, source_id);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = h_redis_cmd(source, "CLUSTER SETSLOT %lld MIGRATING %s", slot, target_id);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = h_redis_cmd(source, "MIGRATE 127.0.0.1 %d {ask}:old 0 5000", target->port);
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);

    rkb_redis_t *r = connect_to(cluster->nodes[0], RKB_REDIS_CLUSTER_AUTO);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    rkb_cmds_t *cmds = rkb_cmds_new();
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "GET");
    rkb_cmds_args(cmds, "{ask}:old");
    rkb_cmds_end(cmds);
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "SET");
    rkb_cmds_args(cmds, "{ask}:new");
    rkb_cmds_args(cmds, "v-new");
    rkb_cmds_end(cmds);
    redisReply *replies[2];
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(replies[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(replies[0]->str, "v-old");
    assert_int_equal(replies[1]->type, REDIS_REPLY_STATUS);
    rkb_redis_replies_free(replies, 2);
    /* The new key is on the importing node (ASKING + SET there), not on the old master. */
    reply = h_redis_cmd(target, "ASKING");
    freeReplyObject(reply);
    assert_int_equal(h_redis_int(target, "EXISTS {ask}:new"), 1);
    reply = h_redis_cmd(source, "EXISTS {ask}:new"); /* not there: it sends us on (ASK) */
    assert_int_equal(reply->type, REDIS_REPLY_ERROR);
    assert_int_equal(strncmp(reply->str, "ASK ", 4), 0);
    freeReplyObject(reply);

    /* The migration ends: the slot is the target's; the same batch now follows MOVED. */
    for (int n = 0; n < cluster->node_cnt; n++) {
        if (cluster->nodes[n]->pid <= 0)
            continue;
        reply = h_redis_cmd(cluster->nodes[n], "CLUSTER SETSLOT %lld NODE %s", slot, target_id);
        freeReplyObject(reply);
    }
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, why, sizeof(why)), RKB_REDIS_OK);
    assert_string_equal(replies[0]->str, "v-old");
    assert_null(rkb_redis_reply_error(replies[1]));
    rkb_redis_replies_free(replies, 2);
    assert_true(h_cluster_master_of(cluster, "{ask}") == target);
    free(source_id);
    free(target_id);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),
        cmocka_unit_test(test_batch_routed_by_slot),
        cmocka_unit_test(test_multi_wait_script),
        cmocka_unit_test(test_mode_settings),
        cmocka_unit_test(test_coalesce_by_slot),
        cmocka_unit_test(test_moved_after_failover),
        cmocka_unit_test(test_two_in_flight_redirected),
        cmocka_unit_test(test_ask_during_migration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
