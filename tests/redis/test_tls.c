/*
 * test_tls.c — Redis over TLS through the redis module (src/redis/: transport.c, tls.c) against
 * a real redis-server that takes TLS only and authenticates clients by certificate: verified
 * connections by IP and by name, large pipelines and subscriber reads through OpenSSL's
 * buffering, ACL users, an encrypted client key, a CA directory; and every way it must refuse,
 * each with its own clear error and the code that says "do not retry" (RKB_REDIS_ERR_TLS,
 * RKB_REDIS_ERR_AUTH) or "retry" (RKB_REDIS_ERR_IO: the server down, a timeout).
 *
 * The certificates come from the harness (h_tls_files: a test CA, a server certificate for
 * localhost and 127.0.0.1, a client certificate, and an unrelated CA). The harness checks the
 * server over a plain unix socket, never through the code under test.
 */
#include "harness.h"
#include "redis/redis.h"
#include "util/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_redis_t *server;       /* TLS only, client certificates required */
static h_redis_t *plain_server; /* no TLS at all */
static const h_tls_files_t *files;

static int group_setup(void **state) {
    (void)state;
    files = h_tls_files();
    /* DEBUG (for DEBUG SLEEP) is refused by default since Redis 7. */
    server = h_redis_start_tls("--enable-debug-command local");
    plain_server = h_redis_start(NULL);
    freeReplyObject(h_redis_cmd(server, "ACL SETUSER bridge on >bridge-pw-3141 ~* &* +@all"));
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    h_redis_stop(server);
    h_redis_stop(plain_server);
    return 0;
}

/* Settings for srv at host (its port), verified against the test CA, with the client
 * certificate (unencrypted key). */
static void tls_conf(rkb_redis_conf_t *conf, const h_redis_t *srv, const char *host) {
    char uri[128], errstr[256];
    rkb_redis_conf_init(conf);
    snprintf(uri, sizeof(uri), "rediss://%s:%d", host, srv->port);
    if (rkb_redis_conf_from_uri(conf, uri, errstr, sizeof(errstr)))
        fail_msg("%s: %s", uri, errstr);
    conf->tls.ca_file = rkb_strdup(files->ca_cert);
    conf->tls.cert_file = rkb_strdup(files->client_cert);
    conf->tls.key_file = rkb_strdup(files->client_key);
}

/* Replaces a string setting of conf. */
static void set(char **field, const char *value) {
    free(*field);
    *field = value ? rkb_strdup(value) : NULL;
}

/* Connects a new handle with conf (cleared here). Returns the code; *out the handle. */
static int try_connect(rkb_redis_conf_t *conf, rkb_redis_t **out, char *errstr,
                       size_t errstr_size) {
    *out = rkb_redis_new(conf, "test");
    rkb_redis_conf_clear(conf);
    errstr[0] = '\0';
    return rkb_redis_connect(*out, errstr, errstr_size);
}

/* Expects conf to fail with err and an errstr holding every needle (NULL-terminated). */
static void expect_refusal(rkb_redis_conf_t *conf, int err, ...) {
    rkb_redis_t *r;
    char errstr[1024];
    int got = try_connect(conf, &r, errstr, sizeof(errstr));
    if (got != err)
        fail_msg("expected %s (%d), got %d: %s", rkb_redis_err2str(err), err, got, errstr);
    assert_false(rkb_redis_is_connected(r));
    va_list ap;
    va_start(ap, err);
    for (const char *needle; (needle = va_arg(ap, const char *));)
        if (!strstr(errstr, needle))
            fail_msg("error '%s' does not say '%s'", errstr, needle);
    va_end(ap);
    rkb_redis_destroy(r);
}

static redisReply *command(rkb_redis_t *r, const char *a, const char *b) {
    const char *argv[] = {a, b};
    char errstr[512];
    redisReply *reply = rkb_redis_command(r, b ? 2 : 1, argv, NULL, errstr, sizeof(errstr));
    if (!reply)
        fail_msg("%s: %s", a, errstr);
    return reply;
}

/* ---- What works ------------------------------------------------------------------------- */

/* By IP address and by name (both in the certificate); a pipeline of 8 MB goes out and comes
 * back through TLS records, in order. */
static void test_verified_connection_and_pipeline(void **state) {
    static const char *const hosts[] = {"127.0.0.1", "localhost"};
    for (size_t h = 0; h < RKB_ARRAY_SIZE(hosts); h++) {
        rkb_redis_conf_t conf;
        rkb_redis_t *r;
        char errstr[1024];
        tls_conf(&conf, server, hosts[h]);
        if (try_connect(&conf, &r, errstr, sizeof(errstr)))
            fail_msg("%s: %s", hosts[h], errstr);
        redisReply *reply = command(r, "PING", NULL);
        assert_string_equal(reply->str, "PONG");
        freeReplyObject(reply);

        enum { N = 2000, SIZE = 4096 };
        char *value = malloc(SIZE);
        rkb_cmds_t *cmds = rkb_cmds_new();
        redisReply **replies = calloc(N, sizeof(*replies));
        for (int i = 0; i < N; i++) {
            memset(value, 'a' + i % 26, SIZE);
            rkb_cmds_begin(cmds);
            rkb_cmds_args(cmds, "SET");
            rkb_cmds_argf(cmds, "tls:%zu:%d", h, i);
            rkb_cmds_arg(cmds, value, SIZE);
            rkb_cmds_end(cmds);
        }
        if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)))
            fail_msg("pipeline: %s", errstr);
        for (int i = 0; i < N; i++)
            assert_string_equal(replies[i]->str, "OK");
        rkb_redis_replies_free(replies, N);

        /* And back: N values in one pipeline of GETs. */
        rkb_cmds_reset(cmds);
        for (int i = 0; i < N; i++) {
            rkb_cmds_begin(cmds);
            rkb_cmds_args(cmds, "GET");
            rkb_cmds_argf(cmds, "tls:%zu:%d", h, i);
            rkb_cmds_end(cmds);
        }
        if (rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)))
            fail_msg("pipeline: %s", errstr);
        for (int i = 0; i < N; i++) {
            memset(value, 'a' + i % 26, SIZE);
            assert_int_equal(replies[i]->len, SIZE);
            assert_memory_equal(replies[i]->str, value, SIZE);
        }
        rkb_redis_replies_free(replies, N);
        free(replies);
        free(value);
        rkb_cmds_destroy(cmds);
        rkb_redis_destroy(r);
    }
    assert_int_equal(h_redis_int(server, "DBSIZE"), 4000);
    freeReplyObject(h_redis_cmd(server, "FLUSHALL"));
}

static void test_acl_user_over_tls(void **state) {
    rkb_redis_conf_t conf;
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "localhost");
    set(&conf.username, "bridge");
    set(&conf.password, "bridge-pw-3141");
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    redisReply *reply = command(r, "ACL", "WHOAMI");
    assert_string_equal(reply->str, "bridge");
    freeReplyObject(reply);
    rkb_redis_destroy(r);

    tls_conf(&conf, server, "localhost");
    set(&conf.username, "bridge");
    set(&conf.password, "wrong-pw-2718");
    expect_refusal(&conf, RKB_REDIS_ERR_AUTH, "authentication failed", "AUTH as user 'bridge'",
                   "WRONGPASS", NULL);
}

/* Pushed messages of every size through rkb_redis_read: what OpenSSL has already decrypted must
 * be handed out without waiting for the socket. */
static void test_subscriber_over_tls(void **state) {
    rkb_redis_conf_t conf;
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "127.0.0.1");
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    const char *subscribe[] = {"SUBSCRIBE", "tls-ch"};
    assert_int_equal(rkb_redis_send(r, 2, subscribe, NULL, errstr, sizeof(errstr)), RKB_REDIS_OK);
    redisReply *reply = NULL;
    assert_int_equal(rkb_redis_read(r, 10000, &reply, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_non_null(reply);
    assert_string_equal(reply->element[0]->str, "subscribe");
    freeReplyObject(reply);

    enum { N = 300 };
    char *payload = malloc(70000);
    for (int i = 0; i < N; i++) {
        size_t len = i % 50 == 49 ? 65536 + (size_t)i : (size_t)(i % 7) * 10 + 1;
        memset(payload, 'p', len);
        payload[len] = '\0';
        freeReplyObject(h_redis_cmd(server, "PUBLISH tls-ch %d:%s", i, payload));
    }
    for (int i = 0; i < N; i++) {
        if (rkb_redis_read(r, 10000, &reply, errstr, sizeof(errstr)) != RKB_REDIS_OK)
            fail_msg("read %d: %s", i, errstr);
        if (!reply)
            fail_msg("message %d did not arrive within 10 s", i);
        char prefix[16];
        int n = snprintf(prefix, sizeof(prefix), "%d:", i);
        assert_string_equal(reply->element[0]->str, "message");
        size_t len = i % 50 == 49 ? 65536 + (size_t)i : (size_t)(i % 7) * 10 + 1;
        assert_int_equal(reply->element[2]->len, (size_t)n + len);
        assert_memory_equal(reply->element[2]->str, prefix, (size_t)n);
        freeReplyObject(reply);
    }
    /* Nothing more: a zero wait and a short one both come back empty, still connected. */
    assert_int_equal(rkb_redis_read(r, 0, &reply, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_null(reply);
    assert_int_equal(rkb_redis_read(r, 50, &reply, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_null(reply);
    assert_true(rkb_redis_is_connected(r));
    free(payload);
    rkb_redis_destroy(r);
}

static void test_encrypted_key_and_ca_dir(void **state) {
    rkb_redis_conf_t conf;
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.key_file, files->client_key_encrypted);
    set(&conf.tls.key_password, H_TLS_KEY_PASSWORD);
    set(&conf.tls.ca_file, NULL);
    set(&conf.tls.ca_dir, files->ca_dir);
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);
    rkb_redis_destroy(r);

    tls_conf(&conf, server, "localhost");
    set(&conf.tls.key_file, files->client_key_encrypted);
    set(&conf.tls.key_password, "not-the-key-pass");
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "redis.key.file", files->client_key_encrypted,
                   "cannot load the private key", "is redis.key.password right?", NULL);

    /* No password for an encrypted key: refused, never a prompt on the terminal. */
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.key_file, files->client_key_encrypted);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "redis.key.file", "set redis.key.password", NULL);
}

/* ---- What must be refused, and not retried ------------------------------------------------ */

static void test_untrusted_server_certificate(void **state) {
    rkb_redis_conf_t conf;
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.ca_file, files->other_ca_cert);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "TLS certificate verify failed",
                   "not signed by a CA in redis.cacert", files->other_ca_cert, NULL);

    /* Without redis.cacert the system's store decides, and it does not know our test CA. */
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.ca_file, NULL);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "TLS certificate verify failed",
                   "the system's trust store", NULL);

    /* redis.insecure takes it anyway (and says so in its log line). */
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.ca_file, files->other_ca_cert);
    conf.tls.insecure = true;
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("insecure: %s", errstr);
    rkb_redis_destroy(r);
}

static void test_name_mismatch(void **state) {
    rkb_redis_conf_t conf;
    tls_conf(&conf, server, "127.0.0.1");
    set(&conf.tls.server_name, "redis.wrong.example");
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "TLS certificate verify failed", "hostname mismatch",
                   "not for the name 'redis.wrong.example'", "redis.sni", NULL);

    /* The name the certificate holds, by redis.sni, while connecting by address. */
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "127.0.0.1");
    set(&conf.tls.server_name, "localhost");
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("sni localhost: %s", errstr);
    rkb_redis_destroy(r);

    /* An address the certificate does not hold. */
    tls_conf(&conf, server, "127.0.0.1");
    set(&conf.tls.server_name, "127.0.0.9");
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "IP address mismatch", "the address '127.0.0.9'",
                   NULL);
}

/* With tls-auth-clients (Redis's default) a client without a certificate is turned away; over
 * TLS 1.3 the server says so after the handshake, on the first command. Every attempt must be
 * classified the same way, whichever moment the refusal is noticed. */
static void test_client_certificate_required(void **state) {
    for (int attempt = 0; attempt < 10; attempt++) {
        rkb_redis_conf_t conf;
        tls_conf(&conf, server, "localhost");
        set(&conf.tls.cert_file, NULL);
        set(&conf.tls.key_file, NULL);
        expect_refusal(&conf, RKB_REDIS_ERR_TLS,
                       "the server requires a client certificate (tls-auth-clients): set "
                       "redis.key.cert and redis.key.file",
                       NULL);
    }
    /* A certificate the server does not trust. */
    for (int attempt = 0; attempt < 10; attempt++) {
        rkb_redis_conf_t conf;
        tls_conf(&conf, server, "localhost");
        set(&conf.tls.cert_file, files->other_client_cert);
        set(&conf.tls.key_file, files->other_client_key);
        expect_refusal(&conf, RKB_REDIS_ERR_TLS,
                       "the server refused our client certificate from redis.key.cert", NULL);
    }
    /* A certificate whose key does not match. */
    rkb_redis_conf_t conf;
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.key_file, files->server_key);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "redis.key.file", "does not belong to", NULL);
}

/* A plain Redis port does not answer a TLS handshake (it waits for the end of an inline
 * command), and a TLS port drops a plain client at once: both look like a server that is not
 * answering, so they are retried, with a hint at the likely cause. */
static void test_wrong_protocol(void **state) {
    rkb_redis_conf_t conf;
    tls_conf(&conf, plain_server, "127.0.0.1");
    conf.connect_timeout_ms = 300;
    expect_refusal(&conf, RKB_REDIS_ERR_IO, "TLS handshake", "does this port speak TLS?", NULL);

    char uri[128], errstr[256];
    rkb_redis_conf_init(&conf);
    snprintf(uri, sizeof(uri), "redis://127.0.0.1:%d", server->port);
    assert_int_equal(rkb_redis_conf_from_uri(&conf, uri, errstr, sizeof(errstr)), 0);
    expect_refusal(&conf, RKB_REDIS_ERR_IO, "use rediss:// or redis.tls=true", NULL);
}

static void test_unusable_files(void **state) {
    const char *junk = h_write_file("junk.pem", "this is no certificate\n");
    rkb_redis_conf_t conf;
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.ca_file, junk);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "redis.cacert", junk,
                   "cannot load the CA certificates", NULL);
    tls_conf(&conf, server, "localhost");
    set(&conf.tls.cert_file, junk);
    expect_refusal(&conf, RKB_REDIS_ERR_TLS, "redis.key.cert", junk,
                   "cannot load the client certificate", NULL);
    assert_string_equal(rkb_redis_err2str(RKB_REDIS_ERR_TLS), "TLS error");
}

/* ---- What passes by itself ---------------------------------------------------------------- */

/* A command timeout and a server killed and restarted are I/O errors, as over plain TCP, and
 * the same handle connects again afterwards. */
static void test_timeout_and_restart(void **state) {
    rkb_redis_conf_t conf;
    rkb_redis_t *r;
    char errstr[1024];
    tls_conf(&conf, server, "localhost");
    conf.command_timeout_ms = 300;
    if (try_connect(&conf, &r, errstr, sizeof(errstr)))
        fail_msg("%s", errstr);

    /* The harness's client (unix socket) makes the server sleep; our PING then times out. */
    freeReplyObject(h_redis_cmd(server, "PING"));
    assert_int_equal(redisAppendCommand(server->client, "DEBUG SLEEP 2"), REDIS_OK);
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(server->client, &done), REDIS_OK);
    rkb_cmds_t *cmds = rkb_cmds_new();
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "PING");
    rkb_cmds_end(cmds);
    redisReply *replies[1];
    int err = RKB_REDIS_OK;
    for (int attempt = 0; attempt < 50 && err == RKB_REDIS_OK; attempt++) {
        err = rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr));
        rkb_redis_replies_free(replies, err == RKB_REDIS_OK ? 1 : 0);
    }
    assert_int_equal(err, RKB_REDIS_ERR_IO);
    assert_non_null(strstr(errstr, "command timeout"));
    assert_false(rkb_redis_is_connected(r));
    void *sleep_reply = NULL;
    assert_int_equal(redisGetReply(server->client, &sleep_reply), REDIS_OK);
    freeReplyObject(sleep_reply);

    h_redis_kill(server);
    assert_int_equal(rkb_redis_connect(r, errstr, sizeof(errstr)), RKB_REDIS_ERR_IO);
    assert_non_null(strstr(errstr, "Connection refused"));
    h_redis_restart(server);
    if (rkb_redis_connect(r, errstr, sizeof(errstr)))
        fail_msg("reconnect: %s", errstr);
    assert_int_equal(rkb_redis_pipeline(r, cmds, replies, errstr, sizeof(errstr)), RKB_REDIS_OK);
    assert_string_equal(replies[0]->str, "PONG");
    rkb_redis_replies_free(replies, 1);
    rkb_cmds_destroy(cmds);
    rkb_redis_destroy(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verified_connection_and_pipeline),
        cmocka_unit_test(test_acl_user_over_tls),
        cmocka_unit_test(test_subscriber_over_tls),
        cmocka_unit_test(test_encrypted_key_and_ca_dir),
        cmocka_unit_test(test_untrusted_server_certificate),
        cmocka_unit_test(test_name_mismatch),
        cmocka_unit_test(test_client_certificate_required),
        cmocka_unit_test(test_wrong_protocol),
        cmocka_unit_test(test_unusable_files),
        /* Last: it restarts the server, which forgets the ACL user. */
        cmocka_unit_test(test_timeout_and_restart),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
