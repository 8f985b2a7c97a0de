/*
 * test_redis.c — the Redis I/O module (src/redis/) against a real redis-server: URI parsing,
 * the command arena, pipelines, error replies, SELECT, ACL users, a server killed and
 * restarted, and command timeouts. One server serves the whole file; the tests that kill it
 * come last.
 */
#include "harness.h"
#include "redis/redis.h"
#include "util/util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static h_redis_t *server;

static int group_setup(void **state) {
    (void)state;
    /* DEBUG (for DEBUG SLEEP) is refused by default since Redis 7. */
    server = h_redis_start("--enable-debug-command local");
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    h_redis_stop(server);
    server = NULL;
    return 0;
}

/* A handle on the shared server, connected; uri_suffix is appended to its URI ("/2"). */
static rkb_redis_t *connect_to(const char *uri_suffix, const char *username, const char *password,
                               int command_timeout_ms) {
    rkb_redis_conf_t conf;
    char uri[128], errstr[512];
    rkb_redis_conf_init(&conf);
    snprintf(uri, sizeof(uri), "%s%s", h_redis_uri(server), uri_suffix ? uri_suffix : "");
    assert_int_equal(rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)), 0);
    if (username)
        conf.username = rkb_strdup(username);
    if (password)
        conf.password = rkb_strdup(password);
    if (command_timeout_ms)
        conf.command_timeout_ms = command_timeout_ms;
    rkb_redis_t *r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    int err = rkb_redis_connect(r, errstr, sizeof(errstr));
    if (err)
        fail_msg("connect: %s", errstr);
    assert_true(rkb_redis_is_connected(r));
    return r;
}

/* Builds one command from NUL-terminated words. */
static void add_cmd(rkb_cmds_t *cmds, const char *first, ...) {
    va_list ap;
    va_start(ap, first);
    rkb_cmds_begin(cmds);
    for (const char *word = first; word; word = va_arg(ap, const char *))
        rkb_cmds_args(cmds, word);
    rkb_cmds_end(cmds);
    va_end(ap);
}

/* ---- URIs --------------------------------------------------------------------------------- */

static void test_uri_good(void **state) {
    (void)state;
    static const struct {
        const char *uri;
        const char *host;
        int port;
        const char *username, *password;
        int db;
        bool tls;
    } cases[] = {
        {"redis://localhost", "localhost", 6379, NULL, NULL, 0, false},
        {"rediss://bridge:pw@h:6380/1", "h", 6380, "bridge", "pw", 1, true},
        {"REDISS://h", "h", 6379, NULL, NULL, 0, true},
        {"redis://10.1.2.3:6380", "10.1.2.3", 6380, NULL, NULL, 0, false},
        {"REDIS://h:1/", "h", 1, NULL, NULL, 0, false},
        {"redis://h/15", "h", 6379, NULL, NULL, 15, false},
        {"redis://:secret@h:7000/2", "h", 7000, NULL, "secret", 2, false},
        {"redis://secret@h", "h", 6379, NULL, "secret", 0, false}, /* as redis-cli reads it */
        {"redis://bridge:pw@h", "h", 6379, "bridge", "pw", 0, false},
        {"redis://us%40er:p%3Aa%2Fss%25@h", "h", 6379, "us@er", "p:a/ss%", 0, false},
        {"redis://u:p@ss/x@h:9/3", "h", 9, "u", "p@ss/x", 3,
         false}, /* the last '@' ends userinfo */
        {"redis://[::1]:7001/1", "::1", 7001, NULL, NULL, 1, false},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(cases); i++) {
        rkb_redis_conf_t conf;
        char errstr[256] = "";
        rkb_redis_conf_init(&conf);
        conf.username = rkb_strdup("old-user"); /* replaced: the URI says everything */
        conf.db = 9;
        conf.command_timeout_ms = 1234; /* kept: not in the URI */
        if (rkb_redis_conf_from_uri(&conf, cases[i].uri, errstr, sizeof(errstr)) != 0)
            fail_msg("%s: %s", cases[i].uri, errstr);
        assert_string_equal(conf.host, cases[i].host);
        assert_int_equal(conf.port, cases[i].port);
        assert_int_equal(conf.db, cases[i].db);
        assert_int_equal(conf.command_timeout_ms, 1234);
        assert_int_equal(conf.tls.enabled, cases[i].tls);
        if (cases[i].username)
            assert_string_equal(conf.username, cases[i].username);
        else
            assert_null(conf.username);
        if (cases[i].password)
            assert_string_equal(conf.password, cases[i].password);
        else
            assert_null(conf.password);
        rkb_redis_conf_clear(&conf);
    }
}

static void test_uri_bad(void **state) {
    (void)state;
    static const struct {
        const char *uri;
        const char *error; /* a part of the message */
    } cases[] = {
        {"redis://u:topsecret@h:0", "bad port '0'"},
        {"redis://u:topsecret@h:65536", "bad port '65536'"},
        {"redis://u:topsecret@h:63a", "bad port '63a'"},
        {"redis://u:topsecret@h:", "bad port ''"},
        {"redis://u:topsecret@h/x", "bad database 'x'"},
        {"redis://u:topsecret@h/-1", "bad database '-1'"},
        {"redis://u:topsecret@h/1?timeout=3", "query parameters are not supported"},
        {"redis://u:topsecret@:6379", "missing host"},
        {"redis://u:top%zzsecret@h", "bad percent-encoding in the password"},
        {"redis://u:topsecret%0@h", "bad percent-encoding in the password"},
        {"redis://u:topsecret%00@h", "bad percent-encoding in the password"},
        {"redis://%g1:topsecret@h", "bad percent-encoding in the user name"},
        {"redis://u:topsecret@[::1", "missing ']'"},
        {"rediss://u:topsecret@h:6380/x", "bad database 'x'"},
        {"http://h:6379", "unsupported scheme 'http://' (expected redis:// or rediss://)"},
        {"redisss://u:topsecret@h", "unsupported scheme 'redisss://'"},
        {"u:topsecret@h:6379", "must start with redis:// or rediss://"},
        {"localhost:6379", "must start with redis://"},
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
        assert_string_equal(conf.host, "localhost");
        assert_int_equal(conf.port, 6379);
        assert_null(conf.password);
        rkb_redis_conf_clear(&conf);
    }
    rkb_redis_conf_clear(NULL);
}

static void test_conf_describe(void **state) {
    (void)state;
    rkb_redis_conf_t conf;
    char errstr[256], where[128];
    rkb_redis_conf_init(&conf);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)), "localhost:6379/0");
    assert_int_equal(
        rkb_redis_conf_from_uri(&conf, "redis://u:topsecret@h:1/2", errstr, sizeof(errstr)), 0);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)), "h:1/2");
    assert_int_equal(rkb_redis_conf_from_uri(&conf, "redis://[::1]:7000", errstr, sizeof(errstr)),
                     0);
    assert_string_equal(rkb_redis_conf_describe(&conf, where, sizeof(where)), "[::1]:7000/0");
    rkb_redis_conf_clear(&conf);
}

/* ---- The command arena -------------------------------------------------------------------- */

static void test_cmds_build_and_truncate(void **state) {
    (void)state;
    rkb_cmds_t *cmds = rkb_cmds_new();
    size_t len;
    for (int round = 0; round < 2; round++) { /* the second round reuses the memory */
        for (int i = 0; i < 1000; i++) {
            rkb_cmds_begin(cmds);
            rkb_cmds_args(cmds, "HSET");
            rkb_cmds_argf(cmds, "key:%d", i);
            rkb_cmds_args(cmds, "field");
            rkb_cmds_arg_int(cmds, -(int64_t)i * 1000000007);
            assert_int_equal(rkb_cmds_end(cmds), i);
        }
        assert_int_equal(rkb_cmds_count(cmds), 1000);
        assert_int_equal(rkb_cmds_argc(cmds, 999), 4);
        assert_string_equal(rkb_cmds_argv(cmds, 999, 1, &len), "key:999");
        assert_int_equal(len, 7);
        assert_string_equal(rkb_cmds_argv(cmds, 7, 3, NULL), "-7000000049");

        rkb_cmds_truncate(cmds, 10);
        assert_int_equal(rkb_cmds_count(cmds), 10);
        /* After a truncate the arena continues right behind command 9. */
        add_cmd(cmds, "GET", "after", NULL);
        assert_int_equal(rkb_cmds_count(cmds), 11);
        assert_string_equal(rkb_cmds_argv(cmds, 10, 1, NULL), "after");
        assert_string_equal(rkb_cmds_argv(cmds, 9, 1, NULL), "key:9");

        /* A command begun but not ended is dropped by a truncate too. */
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "HALF");
        rkb_cmds_truncate(cmds, 11);
        add_cmd(cmds, "PING", NULL);
        assert_int_equal(rkb_cmds_count(cmds), 12);
        assert_int_equal(rkb_cmds_argc(cmds, 11), 1);
        assert_string_equal(rkb_cmds_argv(cmds, 11, 0, NULL), "PING");

        rkb_cmds_truncate(cmds, 100); /* beyond the end: nothing to drop */
        assert_int_equal(rkb_cmds_count(cmds), 12);
        rkb_cmds_truncate(cmds, 0);
        assert_int_equal(rkb_cmds_count(cmds), 0);
        rkb_cmds_reset(cmds);
    }
    rkb_cmds_destroy(cmds);
    rkb_cmds_destroy(NULL);
}

static void test_cmds_binary_and_describe(void **state) {
    (void)state;
    rkb_cmds_t *cmds = rkb_cmds_new();
    rkb_buf_t out;
    rkb_buf_init(&out);
    const char binary[] = {'a', '\0', 'b', '\r', '\n', (char)0xff};
    char long_arg[100];
    memset(long_arg, 'x', sizeof(long_arg));

    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "SET");
    rkb_cmds_arg(cmds, binary, sizeof(binary));
    rkb_cmds_arg(cmds, long_arg, sizeof(long_arg));
    rkb_cmds_arg(cmds, "", 0);
    rkb_cmds_end(cmds);

    size_t len;
    const char *arg = rkb_cmds_argv(cmds, 0, 1, &len);
    assert_int_equal(len, sizeof(binary));
    assert_memory_equal(arg, binary, sizeof(binary));
    assert_string_equal(rkb_cmds_argv(cmds, 0, 3, &len), "");
    assert_int_equal(len, 0);

    rkb_cmds_describe(cmds, 0, &out);
    char expected[256];
    snprintf(expected, sizeof(expected), "SET a\\x00b\\x0d\\x0a\\xff %.64s... ", long_arg);
    assert_string_equal(out.data, expected);

    /* Exactly 64 bytes are not cut. */
    rkb_buf_reset(&out);
    rkb_cmds_begin(cmds);
    rkb_cmds_arg(cmds, long_arg, 64);
    rkb_cmds_end(cmds);
    rkb_cmds_describe(cmds, 1, &out);
    snprintf(expected, sizeof(expected), "%.64s", long_arg);
    assert_string_equal(out.data, expected);

    rkb_buf_free(&out);
    rkb_cmds_destroy(cmds);
}

/* A 1 MB argument, and binary bytes, survive the trip to Redis and back. */
static void test_cmds_large_binary_roundtrip(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    rkb_cmds_t *cmds = rkb_cmds_new();
    size_t big_len = 1024 * 1024;
    char *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (char)(i * 7 + 3);
    char errstr[256];
    redisReply *replies[3];

    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "SET");
    rkb_cmds_args(cmds, "big");
    rkb_cmds_arg(cmds, big, big_len);
    rkb_cmds_end(cmds);
    add_cmd(cmds, "STRLEN", "big", NULL);
    add_cmd(cmds, "GET", "big", NULL);
    if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("pipeline: %s", errstr);
    assert_int_equal(replies[0]->type, REDIS_REPLY_STATUS);
    assert_int_equal(replies[1]->integer, (long long)big_len);
    assert_int_equal(replies[2]->type, REDIS_REPLY_STRING);
    assert_int_equal(replies[2]->len, big_len);
    assert_memory_equal(replies[2]->str, big, big_len);
    rkb_redis_replies_free(replies, 3);
    assert_null(replies[0]);

    free(big);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* ---- Pipelines ---------------------------------------------------------------------------- */

/* Runs of SET and DEL merge, in order, and nothing else does (a SET with options stays alone);
 * the map says which command now carries each old one; a run stops at max_keys. Redis, given the
 * merged batch, ends as the unmerged batch would leave it. */
static void test_cmds_coalesce(void **state) {
    (void)state;
    rkb_cmds_t *cmds = rkb_cmds_new();
    size_t map[16];
    add_cmd(cmds, "SET", "co:a", "1", NULL);
    add_cmd(cmds, "set", "co:b", "2", NULL);
    add_cmd(cmds, "SET", "co:d", "4", "EX", "100", NULL);
    add_cmd(cmds, "DEL", "co:a", NULL);
    add_cmd(cmds, "DEL", "co:b", NULL);
    add_cmd(cmds, "SET", "co:a", "5", NULL);
    add_cmd(cmds, "SET", "co:e", "6", NULL);
    add_cmd(cmds, "SET", "co:f", "7", NULL);
    add_cmd(cmds, "HSET", "co:h", "f", "v", NULL);
    assert_int_equal(rkb_cmds_coalesce(cmds, 2, false, map), 6);
    const size_t expect_map[] = {0, 0, 1, 2, 2, 3, 3, 4, 5};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(expect_map); i++)
        assert_int_equal(map[i], expect_map[i]);
    rkb_buf_t out;
    rkb_buf_init(&out);
    const char *const expect[] = {"MSET co:a 1 co:b 2", "SET co:d 4 EX 100", "DEL co:a co:b",
                                  "MSET co:a 5 co:e 6", "SET co:f 7",        "HSET co:h f v"};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(expect); i++) {
        rkb_buf_reset(&out);
        rkb_cmds_describe(cmds, i, &out);
        assert_string_equal(out.data, expect[i]);
    }
    rkb_buf_free(&out);

    /* Appending after a merge works as after any command. */
    add_cmd(cmds, "GET", "co:e", NULL);
    assert_int_equal(rkb_cmds_count(cmds), 7);

    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    redisReply *replies[7];
    char errstr[256];
    if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("pipeline: %s", errstr);
    assert_string_equal(replies[6]->str, "6");
    rkb_redis_replies_free(replies, 7);
    assert_int_equal(h_redis_int(server, "EXISTS co:a co:b co:d co:e co:f co:h"), 5);
    rkb_redis_destroy(r);
    rkb_cmds_destroy(cmds);
}

/* Two batches in flight on one connection: each receive gets its own batch's replies, in order,
 * and a lost connection loses both. */
static void test_pipeline_two_in_flight(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    rkb_cmds_t *first = rkb_cmds_new(), *second = rkb_cmds_new();
    redisReply *replies[3];
    char errstr[256];
    add_cmd(first, "SET", "fl:x", "1", NULL);
    add_cmd(first, "INCR", "fl:x", NULL);
    add_cmd(second, "INCR", "fl:x", NULL);
    add_cmd(second, "GET", "fl:x", NULL);
    add_cmd(second, "PING", NULL);
    assert_int_equal(rkb_redis_pipeline_send(r, first, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_pipeline_send(r, second, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_pipeline_recv(r, 2, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_string_equal(replies[0]->str, "OK");
    assert_int_equal(replies[1]->integer, 2);
    rkb_redis_replies_free(replies, 2);
    assert_int_equal(rkb_redis_pipeline_recv(r, 3, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_int_equal(replies[0]->integer, 3);
    assert_string_equal(replies[1]->str, "3");
    assert_string_equal(replies[2]->str, "PONG");
    rkb_redis_replies_free(replies, 3);

    /* Nothing sent after a close: a receive fails and leaves no reply behind. */
    assert_int_equal(rkb_redis_pipeline_send(r, first, errstr, sizeof(errstr)), RKB_REDIS_OK);
    rkb_redis_close(r);
    assert_int_equal(rkb_redis_pipeline_recv(r, 2, replies, errstr, sizeof(errstr)),
                     RKB_REDIS_ERR_IO);
    assert_null(replies[0]);
    assert_null(replies[1]);
    rkb_cmds_destroy(first);
    rkb_cmds_destroy(second);
    rkb_redis_destroy(r);
}

static void test_pipeline_10k_in_order(void **state) {
    (void)state;
    enum { N = 10000 };
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    rkb_cmds_t *cmds = rkb_cmds_new();
    redisReply **replies = calloc(N, sizeof(*replies));
    char errstr[256];

    for (int i = 0; i < N; i++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "SET");
        rkb_cmds_argf(cmds, "order:%d", i);
        rkb_cmds_argf(cmds, "value-%d", i);
        rkb_cmds_end(cmds);
    }
    if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("SET pipeline: %s", errstr);
    for (int i = 0; i < N; i++) {
        assert_int_equal(replies[i]->type, REDIS_REPLY_STATUS);
        assert_string_equal(replies[i]->str, "OK");
    }
    rkb_redis_replies_free(replies, N);

    /* Reading back in reverse order shows that reply i belongs to command i. */
    rkb_cmds_reset(cmds);
    for (int i = N - 1; i >= 0; i--) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "GET");
        rkb_cmds_argf(cmds, "order:%d", i);
        rkb_cmds_end(cmds);
    }
    if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("GET pipeline: %s", errstr);
    for (int i = 0; i < N; i++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "value-%d", N - 1 - i);
        assert_int_equal(replies[i]->type, REDIS_REPLY_STRING);
        assert_string_equal(replies[i]->str, expected);
    }
    rkb_redis_replies_free(replies, N);
    assert_int_equal(h_redis_int(server, "EXISTS order:0 order:9999"), 2);

    /* An empty batch is a no-op. */
    rkb_cmds_reset(cmds);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);

    free(replies);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

static void test_pipeline_error_replies(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    rkb_cmds_t *cmds = rkb_cmds_new();
    redisReply *replies[9];
    char errstr[256];

    add_cmd(cmds, "SET", "plain", "x", NULL);
    add_cmd(cmds, "LPUSH", "plain", "y", NULL); /* WRONGTYPE */
    add_cmd(cmds, "GET", "plain", NULL);
    add_cmd(cmds, "MULTI", NULL);
    add_cmd(cmds, "SET", "in-tx", "1", NULL);
    add_cmd(cmds, "INCR", "plain", NULL); /* queued, fails at EXEC time */
    add_cmd(cmds, "SET", "in-tx-2", "2", NULL);
    add_cmd(cmds, "EXEC", NULL);
    add_cmd(cmds, "NOSUCHCOMMAND", NULL);
    assert_int_equal(rkb_cmds_count(cmds), 9);
    if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("pipeline: %s", errstr);
    assert_true(rkb_redis_is_connected(r));

    assert_null(rkb_redis_reply_error(replies[0]));
    assert_int_equal(replies[1]->type, REDIS_REPLY_ERROR);
    assert_true(!strncmp(rkb_redis_reply_error(replies[1]), "WRONGTYPE", 9));
    assert_string_equal(replies[2]->str, "x"); /* the batch went on after the error */
    assert_string_equal(replies[4]->str, "QUEUED");

    redisReply *exec = replies[7];
    assert_int_equal(exec->type, REDIS_REPLY_ARRAY);
    assert_int_equal(exec->elements, 3);
    assert_int_equal(exec->element[1]->type, REDIS_REPLY_ERROR);
    assert_ptr_equal(rkb_redis_reply_error(exec), exec->element[1]->str);
    assert_true(!strncmp(rkb_redis_reply_error(exec), "ERR value is not an integer", 27));
    assert_int_equal(h_redis_int(server, "EXISTS in-tx in-tx-2"), 2); /* EXEC is not atomic */

    assert_non_null(rkb_redis_reply_error(replies[8]));
    assert_false(rkb_redis_error_is_transient(rkb_redis_reply_error(replies[8])));
    assert_null(rkb_redis_reply_error(NULL));
    rkb_redis_replies_free(replies, 9);

    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

static void test_command_and_not_connected(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    char errstr[256];
    const char *argv[] = {"ECHO", "a\0b"};
    const size_t argvlen[] = {4, 3};
    redisReply *reply = rkb_redis_command(r, 2, argv, argvlen, errstr, sizeof(errstr));
    assert_non_null(reply);
    assert_int_equal(reply->len, 3);
    assert_memory_equal(reply->str, "a\0b", 3);
    freeReplyObject(reply);

    rkb_redis_close(r);
    assert_false(rkb_redis_is_connected(r));
    rkb_redis_close(r); /* twice is fine */
    assert_null(rkb_redis_command(r, 2, argv, argvlen, errstr, sizeof(errstr)));
    assert_non_null(strstr(errstr, "not connected"));

    rkb_cmds_t *cmds = rkb_cmds_new();
    redisReply *replies[1] = {(redisReply *)1};
    add_cmd(cmds, "PING", NULL);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)),
                     RKB_REDIS_ERR_IO);
    assert_null(replies[0]);
    assert_non_null(strstr(errstr, "not connected"));
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
    rkb_redis_destroy(NULL);
}

/* ---- Session setup ------------------------------------------------------------------------ */

static void test_select_db_from_uri(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to("/2", NULL, NULL, 0);
    rkb_cmds_t *cmds = rkb_cmds_new();
    redisReply *replies[1];
    char errstr[256];
    add_cmd(cmds, "SET", "in-db-2", "yes", NULL);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    rkb_redis_replies_free(replies, 1);

    assert_int_equal(h_redis_int(server, "EXISTS in-db-2"), 0);
    freeReplyObject(h_redis_cmd(server, "SELECT 2"));
    assert_int_equal(h_redis_int(server, "EXISTS in-db-2"), 1);
    freeReplyObject(h_redis_cmd(server, "SELECT 0"));
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);

    /* A database the server does not have is a setup error, not an I/O error. */
    rkb_redis_conf_t conf;
    rkb_redis_conf_init(&conf);
    char uri[128];
    snprintf(uri, sizeof(uri), "%s/999", h_redis_uri(server));
    assert_int_equal(rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)), 0);
    r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_PROTO);
    assert_non_null(strstr(errstr, "SELECT 999"));
    assert_false(rkb_redis_is_connected(r));
    rkb_redis_destroy(r);
}

static void test_acl_user_and_client_name(void **state) {
    (void)state;
    char errstr[512];
    freeReplyObject(h_redis_cmd(server, "ACL SETUSER u on >p ~* &* +@all"));
    freeReplyObject(h_redis_cmd(server, "ACL SETUSER u2 on >%s ~* &* +@all", "p@ss:w/rd"));

    rkb_redis_t *r = connect_to(NULL, "u", "p", 0);
    const char *whoami[] = {"ACL", "WHOAMI"};
    redisReply *reply = rkb_redis_command(r, 2, whoami, NULL, errstr, sizeof(errstr));
    assert_non_null(reply);
    assert_string_equal(reply->str, "u");
    freeReplyObject(reply);
    rkb_redis_destroy(r);

    /* Percent-encoded credentials in the URI, and CLIENT SETNAME. */
    rkb_redis_conf_t conf;
    char uri[160];
    rkb_redis_conf_init(&conf);
    snprintf(uri, sizeof(uri), "redis://u2:p%%40ss%%3Aw%%2Frd@127.0.0.1:%d", server->port);
    assert_int_equal(rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)), 0);
    conf.client_name = rkb_strdup("rkbridge-test");
    r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("connect as u2: %s", errstr);
    const char *getname[] = {"CLIENT", "GETNAME"};
    reply = rkb_redis_command(r, 2, getname, NULL, errstr, sizeof(errstr));
    assert_non_null(reply);
    assert_string_equal(reply->str, "rkbridge-test");
    freeReplyObject(reply);
    rkb_redis_destroy(r);

    /* Wrong password, unknown user, password-only AUTH when the default user has none. */
    static const struct {
        const char *username, *password;
    } wrong[] = {
        {"u", "wrong-secret-42"}, {"nobody", "wrong-secret-42"}, {NULL, "wrong-secret-42"}};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(wrong); i++) {
        rkb_redis_conf_init(&conf);
        snprintf(uri, sizeof(uri), "%s", h_redis_uri(server));
        assert_int_equal(rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)), 0);
        conf.username = wrong[i].username ? rkb_strdup(wrong[i].username) : NULL;
        conf.password = rkb_strdup(wrong[i].password);
        r = rkb_redis_new(&conf, "test");
        rkb_redis_conf_clear(&conf);
        int err = rkb_redis_connect(r, errstr, sizeof(errstr));
        if (err != RKB_REDIS_ERR_AUTH)
            fail_msg("case %zu: expected an auth error, got %d: %s", i, err, errstr);
        assert_non_null(strstr(errstr, "AUTH"));
        assert_non_null(strstr(errstr, "authentication failed"));
        if (strstr(errstr, "wrong-secret-42"))
            fail_msg("the password is in the error: %s", errstr);
        assert_false(rkb_redis_is_connected(r));
        rkb_redis_destroy(r);
    }
    assert_string_equal(rkb_redis_err2str(RKB_REDIS_ERR_AUTH), "authentication failed");
}

static void test_connection_refused(void **state) {
    (void)state;
    /* A port bound but not listening refuses connections. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);

    rkb_redis_conf_t conf;
    rkb_redis_conf_init(&conf);
    free(conf.host);
    conf.host = rkb_strdup("127.0.0.1");
    conf.port = ntohs(addr.sin_port);
    conf.password = rkb_strdup("topsecret");
    rkb_redis_t *r = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    char errstr[256];
    assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    assert_non_null(strstr(errstr, "Connection refused"));
    assert_null(strstr(errstr, "topsecret"));
    rkb_redis_destroy(r);
    close(fd);
}

/* ---- Failures ----------------------------------------------------------------------------- */

static void test_command_timeout(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 300);
    rkb_cmds_t *cmds = rkb_cmds_new();
    redisReply *replies[1];
    char errstr[256];
    add_cmd(cmds, "PING", NULL);

    /* Make sure the harness client is connected, then send DEBUG SLEEP on it without waiting
     * for its reply. */
    freeReplyObject(h_redis_cmd(server, "PING"));
    redisContext *client = server->client;
    assert_int_equal(redisAppendCommand(client, "DEBUG SLEEP 2"), REDIS_OK);
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(client, &done), REDIS_OK);

    /* Our PING may still be served before the server reads DEBUG SLEEP; once it sleeps, the
     * PING gets no reply within the timeout. */
    int err = RKB_REDIS_OK;
    for (int attempt = 0; attempt < 50 && err == RKB_REDIS_OK; attempt++) {
        err = rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr));
        rkb_redis_replies_free(replies, err == RKB_REDIS_OK ? 1 : 0);
    }
    assert_int_equal(err, RKB_REDIS_ERR_IO);
    assert_null(replies[0]);
    assert_false(rkb_redis_is_connected(r));
    assert_non_null(strstr(errstr, "command timeout"));

    /* When the sleep is over, a new connection works. */
    void *sleep_reply = NULL;
    assert_int_equal(redisGetReply(client, &sleep_reply), REDIS_OK);
    freeReplyObject(sleep_reply);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("reconnect: %s", errstr);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_string_equal(replies[0]->str, "PONG");
    rkb_redis_replies_free(replies, 1);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* The server is killed under a connected handle, then restarted. The batch is large and
 * SIGPIPE is left at its default action: writing into the reset connection must be an I/O
 * error, not the death of the process. */
static void test_server_killed_and_restarted(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    rkb_cmds_t *cmds = rkb_cmds_new();
    enum { N = 2000 };
    redisReply **replies = calloc(N, sizeof(*replies));
    char errstr[256], prefix[64];
    char value[4096];
    memset(value, 'v', sizeof(value));
    for (int i = 0; i < N; i++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "SET");
        rkb_cmds_argf(cmds, "killed:%d", i);
        rkb_cmds_arg(cmds, value, sizeof(value));
        rkb_cmds_end(cmds);
    }
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    rkb_redis_replies_free(replies, N);

    void (*old_handler)(int) = signal(SIGPIPE, SIG_DFL);
    h_redis_kill(server);
    for (int attempt = 0; attempt < 2; attempt++) {
        for (int i = 0; i < N; i++)
            replies[i] = (redisReply *)1;
        assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)),
                         RKB_REDIS_ERR_IO);
        for (int i = 0; i < N; i++)
            assert_null(replies[i]);
        assert_false(rkb_redis_is_connected(r));
        snprintf(prefix, sizeof(prefix), "redis 127.0.0.1:%d: ", server->port);
        if (strncmp(errstr, prefix, strlen(prefix)) != 0)
            fail_msg("error '%s' does not start with '%s'", errstr, prefix);
        /* While it is down, connecting fails as an I/O error. */
        assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    }
    signal(SIGPIPE, old_handler);

    h_redis_restart(server);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("reconnect: %s", errstr);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    rkb_redis_replies_free(replies, N);
    assert_int_equal(h_redis_int(server, "DBSIZE"), N);

    free(replies);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

/* ---- Subscriber connections (rkb_redis_send / rkb_redis_read) ---------------------------- */

/* Reads one reply, waiting up to 10 s; fails the test if none arrives. */
static redisReply *read_one(rkb_redis_t *r) {
    redisReply *reply = NULL;
    char errstr[256];
    if (rkb_redis_read(r, 10000, &reply, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("read: %s", errstr);
    if (!reply)
        fail_msg("no reply within 10 s");
    return reply;
}

/* Asserts that reply is the array of strings words (n of them; integers compared as text). */
static void assert_push(const redisReply *reply, size_t n, const char *const *words) {
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(reply->elements, n);
    for (size_t i = 0; i < n; i++) {
        const redisReply *el = reply->element[i];
        char text[64];
        if (el->type == REDIS_REPLY_INTEGER) {
            snprintf(text, sizeof(text), "%lld", el->integer);
            assert_string_equal(text, words[i]);
        } else {
            assert_int_equal(el->type, REDIS_REPLY_STRING);
            assert_int_equal(el->len, strlen(words[i]));
            assert_memory_equal(el->str, words[i], el->len);
        }
    }
}

/* Commands go out without waiting; replies come back one per read, in order. */
static void test_send_then_read(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    char errstr[256];
    const char *echo1[] = {"ECHO", "one"}, *echo2[] = {"ECHO", "two"};
    assert_int_equal(rkb_redis_send(r, 2, echo1, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_send(r, 2, echo2, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    redisReply *reply = read_one(r);
    assert_string_equal(reply->str, "one");
    freeReplyObject(reply);
    reply = read_one(r);
    assert_string_equal(reply->str, "two");
    freeReplyObject(reply);
    /* Nothing more: a timeout is not an error and keeps the connection. */
    assert_int_equal(rkb_redis_read(r, 50, &reply, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_null(reply);
    assert_int_equal(rkb_redis_read(r, 0, &reply, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_null(reply);
    assert_true(rkb_redis_is_connected(r));

    rkb_redis_close(r);
    reply = (redisReply *)1;
    assert_int_equal(rkb_redis_read(r, 0, &reply, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    assert_null(reply);
    assert_non_null(strstr(errstr, "not connected"));
    assert_int_equal(rkb_redis_send(r, 2, echo1, NULL, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    assert_non_null(strstr(errstr, "not connected"));
    rkb_redis_destroy(r);
}

/* SUBSCRIBE and PSUBSCRIBE: confirmations, then messages in publish order (binary payloads
 * intact); a message larger than one socket read is assembled across reads with timeout 0. */
static void test_subscriber_messages(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    char errstr[256];
    const char *subscribe[] = {"SUBSCRIBE", "news"};
    const char *psubscribe[] = {"PSUBSCRIBE", "log:*"};
    assert_int_equal(rkb_redis_send(r, 2, subscribe, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_int_equal(rkb_redis_send(r, 2, psubscribe, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    redisReply *reply = read_one(r);
    assert_push(reply, 3, (const char *[]){"subscribe", "news", "1"});
    freeReplyObject(reply);
    reply = read_one(r);
    assert_push(reply, 3, (const char *[]){"psubscribe", "log:*", "2"});
    freeReplyObject(reply);

    assert_int_equal(h_redis_int(server, "PUBLISH news %b", "a\0b", (size_t)3), 1);
    assert_int_equal(h_redis_int(server, "PUBLISH log:x second"), 1);
    reply = read_one(r);
    assert_int_equal(reply->type, REDIS_REPLY_ARRAY);
    assert_int_equal(reply->elements, 3);
    assert_string_equal(reply->element[0]->str, "message");
    assert_int_equal(reply->element[2]->len, 3);
    assert_memory_equal(reply->element[2]->str, "a\0b", 3);
    freeReplyObject(reply);
    reply = read_one(r);
    assert_push(reply, 4, (const char *[]){"pmessage", "log:*", "log:x", "second"});
    freeReplyObject(reply);

    enum { BIG = 4 << 20 };
    char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 7);
    assert_int_equal(h_redis_int(server, "PUBLISH news %b", big, (size_t)BIG), 1);
    reply = NULL;
    bool got = H_WAIT_FOR(({
                              assert_int_equal(rkb_redis_read(r, 0, &reply, errstr, sizeof(errstr)),
                                               RKB_REDIS_OK);
                              reply != NULL;
                          }),
                          30000);
    assert_true(got);
    assert_int_equal(reply->element[2]->len, BIG);
    assert_memory_equal(reply->element[2]->str, big, BIG);
    freeReplyObject(reply);
    free(big);
    rkb_redis_destroy(r);
}

/* Redis drops the subscriber (CLIENT KILL): the next read is an I/O error and the handle is
 * closed, ready to connect again. */
static void test_subscriber_killed(void **state) {
    (void)state;
    rkb_redis_t *r = connect_to(NULL, NULL, NULL, 0);
    char errstr[256], prefix[64];
    const char *subscribe[] = {"SUBSCRIBE", "killme"};
    assert_int_equal(rkb_redis_send(r, 2, subscribe, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    redisReply *reply = read_one(r);
    freeReplyObject(reply);
    assert_true(h_redis_int(server, "CLIENT KILL TYPE pubsub") >= 1);
    assert_int_equal(rkb_redis_read(r, 10000, &reply, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    assert_null(reply);
    assert_false(rkb_redis_is_connected(r));
    snprintf(prefix, sizeof(prefix), "redis 127.0.0.1:%d: ", server->port);
    if (strncmp(errstr, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", errstr, prefix);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)) != RKB_REDIS_OK)
        fail_msg("reconnect: %s", errstr);
    rkb_redis_destroy(r);
}

/* ---- Classification ----------------------------------------------------------------------- */

static void test_transient_errors(void **state) {
    (void)state;
    static const struct {
        const char *msg;
        bool transient;
    } cases[] = {
        {"LOADING Redis is loading the dataset in memory", true},
        {"BUSY Redis is busy running a script.", true},
        {"BUSY", true},
        {"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.", true},
        {"OOM command not allowed when used memory > 'maxmemory'.", true},
        {"TRYAGAIN Multiple keys request during rehashing of slot", true},
        {"CLUSTERDOWN The cluster is down", true},
        {"READONLY You can't write against a read only replica.", true},
        {"NOREPLICAS Not enough good replicas to write.", true},
        {"BUSYGROUP Consumer Group name already exists", false},
        {"BUSYKEY Target key name already exists.", false},
        {"EXECABORT Transaction discarded because of previous errors.", false},
        {"WRONGTYPE Operation against a key holding the wrong kind of value", false},
        {"ERR unknown command 'SETT'", false},
        {"NOAUTH Authentication required.", false},
        {"LOADINGX", false},
        {"loading", false},
        {"", false},
        {NULL, false},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(cases); i++) {
        if (rkb_redis_error_is_transient(cases[i].msg) != cases[i].transient)
            fail_msg("'%s': expected %s", cases[i].msg ? cases[i].msg : "(null)",
                     cases[i].transient ? "transient" : "permanent");
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uri_good),
        cmocka_unit_test(test_uri_bad),
        cmocka_unit_test(test_conf_describe),
        cmocka_unit_test(test_transient_errors),
        cmocka_unit_test(test_cmds_build_and_truncate),
        cmocka_unit_test(test_cmds_binary_and_describe),
        cmocka_unit_test(test_cmds_large_binary_roundtrip),
        cmocka_unit_test(test_cmds_coalesce),
        cmocka_unit_test(test_pipeline_two_in_flight),
        cmocka_unit_test(test_pipeline_10k_in_order),
        cmocka_unit_test(test_pipeline_error_replies),
        cmocka_unit_test(test_command_and_not_connected),
        cmocka_unit_test(test_select_db_from_uri),
        cmocka_unit_test(test_acl_user_and_client_name),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_send_then_read),
        cmocka_unit_test(test_subscriber_messages),
        cmocka_unit_test(test_subscriber_killed),
        /* These two stop the server for a while; the restart empties it. */
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_server_killed_and_restarted),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
