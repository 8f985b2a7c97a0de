/*
 * test_tls_connectors.c — rkbridge processes against a redis-server that takes TLS only,
 * authenticates clients by certificate (tls-auth-clients, Redis's default) and has an ACL user,
 * with the secrets (the ACL password, the client key's password, a Kafka SASL password) given
 * through the config providers (${file:...}, ${env:...}):
 *   - a sink and a stream source move data both ways over it;
 *   - a wrong password, an untrusted server certificate, a name the certificate does not hold
 *     and a missing client certificate each fail the task at once (exit 1 on its own, where a
 *     retry loop would run until killed) with one line that says why;
 *   - no secret appears in the process's output (JSON lines, librdkafka's configuration dump
 *     included), in `rkbridge validate`, or in the printed configuration.
 */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define REDIS_PASSWORD "redis-secret-9d2f"
#define KAFKA_PASSWORD "kafka-secret-77ab"
#define WRONG_PASSWORD "wrong-secret-4242"
#define WAIT_MS        60000

static h_redis_t *redis;
static h_broker_t *broker;
static const h_tls_files_t *files;
static const char *secrets_path;

/* Every secret a test puts anywhere: none may be printed. */
static const char *const secrets[] = {REDIS_PASSWORD, KAFKA_PASSWORD, WRONG_PASSWORD,
                                      H_TLS_KEY_PASSWORD};
/* rkbridge logs JSON lines here. */
static const char *const json_env[] = {"RKB_LOG_FORMAT=json", NULL};

static int setup(void **state) {
    files = h_tls_files();
    redis = h_redis_start_tls(NULL);
    freeReplyObject(h_redis_cmd(redis, "ACL SETUSER bridge on >%s ~* &* +@all", REDIS_PASSWORD));
    broker = h_broker_start(1, "tls_sink:2,tls_src:1");
    secrets_path = h_write_file("secrets.properties", "# what a secret store would mount\n"
                                                      "redis.password=" REDIS_PASSWORD "\n"
                                                      "kafka.password=" KAFKA_PASSWORD "\n");
    /* ${env:...} is read by `rkbridge run` and `rkbridge validate`: they inherit it. */
    setenv("RKB_TEST_KEY_PASSWORD", H_TLS_KEY_PASSWORD, 1);
    return 0;
}

static int teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* A connector file: name, the lines of its kind, the TLS + ACL connection (by name, the
 * client certificate with its encrypted key), a Kafka SASL password librdkafka holds but does
 * not use on the dev broker, and overrides (a key given again wins). Malloc'd. */
static char *config_text(const char *name, const char *kind_lines, const char *overrides) {
    char *text = NULL;
    if (asprintf(&text,
                 "name=%s\n"
                 "%s"
                 "redis.uri=rediss://localhost:%d\n"
                 "redis.username=bridge\n"
                 "redis.password=${file:%s:redis.password}\n"
                 "redis.cacert=%s\n"
                 "redis.key.cert=%s\n"
                 "redis.key.file=%s\n"
                 "redis.key.password=${env:RKB_TEST_KEY_PASSWORD}\n"
                 "kafka.bootstrap.servers=%s\n"
                 "kafka.sasl.username=bridge\n"
                 "kafka.sasl.password=${file:%s:kafka.password}\n"
                 "%s",
                 name, kind_lines, redis->port, secrets_path, files->ca_cert, files->client_cert,
                 files->client_key_encrypted, broker->bootstrap, secrets_path,
                 overrides ? overrides : "") < 0)
        abort();
    return text;
}

#define SINK_LINES                                                                                 \
    "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"                                 \
    "topics=tls_sink\n"                                                                            \
    "redis.type=STRING\n"                                                                          \
    "kafka.session.timeout.ms=6000\n"                                                              \
    "kafka.heartbeat.interval.ms=500\n"

#define SOURCE_LINES                                                                               \
    "connector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"                         \
    "redis.stream.name=tls_stream\n"                                                               \
    "topic=tls_src\n"

static void dump(const char *what, const char *text) {
    fprintf(stderr, "---- %s ----\n%s\n--------\n", what, text);
}

/* Fails if text shows any secret. */
static void expect_no_secret(const char *what, const char *text) {
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        if (strstr(text, secrets[i])) {
            dump(what, text);
            fail_msg("%s shows the secret '%s'", what, secrets[i]);
        }
    }
}

static size_t count_lines_with(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char *copy = strndup(line, len);
        n += strstr(copy, needle) != NULL;
        free(copy);
        line = eol ? eol + 1 : NULL;
    }
    return n;
}

/* Every line of out is one JSON object with ts, level, msg, connector and task; returns how many
 * lines of connector's task came from librdkafka. */
static size_t expect_json_lines(const char *out, const char *connector) {
    size_t from_librdkafka = 0, lines = 0;
    for (const char *line = out; line && *line;) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        json_error_t error;
        json_t *obj = json_loadb(line, len, 0, &error);
        if (!obj || !json_is_object(obj)) {
            dump("rkbridge output", out);
            fail_msg("not a JSON object: %.*s (%s)", (int)len, line, error.text);
        }
        json_t *conn = json_object_get(obj, "connector"), *task = json_object_get(obj, "task");
        const char *msg = json_string_value(json_object_get(obj, "msg"));
        if (!json_is_string(json_object_get(obj, "ts")) ||
            !json_is_string(json_object_get(obj, "level")) || !msg || !conn || !task ||
            !(json_is_string(conn) || json_is_null(conn)) ||
            !(json_is_integer(task) || json_is_null(task)))
            fail_msg("missing or mistyped fields: %.*s", (int)len, line);
        if (json_is_string(conn) && !strcmp(json_string_value(conn), connector) &&
            json_is_integer(task) && !strncmp(msg, "librdkafka ", 11))
            from_librdkafka++;
        json_decref(obj);
        lines++;
        line = eol ? eol + 1 : NULL;
    }
    assert_true(lines > 0);
    return from_librdkafka;
}

/* `rkbridge validate --print` on text: valid, and what it prints hides every secret. */
static void expect_valid_and_masked(const char *text) {
    const char *path = h_write_file("tls-validate.properties", text);
    char *out = NULL, *err = NULL;
    const char *argv[] = {h_rkbridge_bin(), "validate", "--print", path, NULL};
    int status = h_run(argv, &out, &err);
    if (status != 0 || *err)
        dump("validate", err);
    assert_int_equal(status, 0);
    expect_no_secret("rkbridge validate --print", out);
    assert_non_null(strstr(out, "redis.password=[hidden]  # "));
    assert_non_null(strstr(out, "redis.key.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.sasl.password=[hidden]  # "));
    assert_non_null(strstr(out, "redis.uri=rediss://localhost:"));
    free(out);
    free(err);
}

static int dbsize(void) {
    return (int)h_redis_int(redis, "DBSIZE");
}

/* ---- Working both ways ---------------------------------------------------------------------- */

static void test_sink_over_tls_acl_and_client_certificate(void **state) {
    /* kafka.debug=conf: librdkafka dumps its configuration (through our logger) at start. */
    char *text = config_text("tls-sink", SINK_LINES, "kafka.debug=conf\n");
    expect_valid_and_masked(text);
    h_proc_t *proc = h_rkbridge_run(text, json_env);
    free(text);

    rd_kafka_t *producer = h_producer_new(broker);
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char key[16], value[16];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "v%d", i);
        h_produce(producer, "tls_sink", -1, key, value, NULL);
    }
    h_producer_flush(producer);
    h_producer_destroy(producer);
    if (!H_WAIT_FOR(dbsize() == N, WAIT_MS)) {
        char *out = h_proc_output(proc);
        dump("rkbridge output", out);
        free(out);
        fail_msg("%d of %d records in Redis", dbsize(), N);
    }
    char *value = h_redis_str(redis, "GET tls_sink:k7");
    assert_string_equal(value, "v7");
    free(value);
    assert_int_equal(h_proc_stop(proc, SIGTERM, WAIT_MS), 0);

    char *out = h_proc_output(proc);
    char connected[128];
    snprintf(connected, sizeof(connected),
             "connected to redis localhost:%d/0 as user 'bridge' over TLSv1.3", redis->port);
    if (!strstr(out, connected))
        dump("rkbridge output", out);
    assert_non_null(strstr(out, connected));
    expect_no_secret("rkbridge output", out);
    /* librdkafka's lines arrive through the logger, as the task's. */
    assert_true(expect_json_lines(out, "tls-sink") > 0);
    free(out);
    h_proc_free(proc);
}

static void test_stream_source_over_tls_acl_and_client_certificate(void **state) {
    enum { N = 50 };
    for (int i = 0; i < N; i++)
        freeReplyObject(h_redis_cmd(redis, "XADD tls_stream * n %d", i));
    char *text = config_text("tls-source", SOURCE_LINES, NULL);
    expect_valid_and_masked(text);
    h_proc_t *proc = h_rkbridge_run(text, json_env);
    free(text);

    rd_kafka_message_t **msgs = NULL;
    size_t cnt = 0;
    bool all = H_WAIT_FOR(({
                              if (msgs)
                                  h_messages_free(msgs, cnt);
                              cnt = h_consume_all(broker, "tls_src", &msgs);
                              cnt == N;
                          }),
                          WAIT_MS);
    h_messages_free(msgs, cnt);
    char *out = h_proc_output(proc);
    if (!all)
        dump("rkbridge output", out);
    assert_true(all);
    free(out);
    assert_int_equal(h_proc_stop(proc, SIGTERM, WAIT_MS), 0);
    out = h_proc_output(proc);
    expect_no_secret("rkbridge output", out);
    expect_json_lines(out, "tls-source");
    free(out);
    h_proc_free(proc);
}

/* ---- Refusals: FAILED at once, one line, no retry loop ------------------------------------------
 */

static void test_refusals_fail_the_task_at_once(void **state) {
    char other_ca[700], sni[64];
    snprintf(other_ca, sizeof(other_ca), "redis.cacert=%s\n", files->other_ca_cert);
    snprintf(sni, sizeof(sni), "redis.sni=redis.wrong.example\n");
    const struct {
        const char *name;
        const char *kind_lines;
        const char *overrides;
        const char *reason; /* must be on exactly one line: the FAILED one */
    } cases[] = {
        {"tls-wrongpw-sink", SINK_LINES, "redis.password=" WRONG_PASSWORD "\n",
         "authentication failed: AUTH as user 'bridge'"},
        {"tls-wrongpw-source", SOURCE_LINES, "redis.password=" WRONG_PASSWORD "\n",
         "authentication failed: AUTH as user 'bridge'"},
        {"tls-untrusted-sink", SINK_LINES, other_ca, "TLS certificate verify failed"},
        {"tls-sni-sink", SINK_LINES, sni, "hostname mismatch"},
        {"tls-nocert-source", SOURCE_LINES,
         "redis.key.cert=\nredis.key.file=\nredis.key.password=\n",
         "the server requires a client certificate (tls-auth-clients)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = config_text(cases[i].name, cases[i].kind_lines, cases[i].overrides);
        h_proc_t *proc = h_rkbridge_run(text, NULL);
        free(text);
        /* A task that retried would keep the process running until this wait gave up. */
        int status = h_proc_wait(proc, WAIT_MS);
        char *out = h_proc_output(proc);
        char where[64];
        snprintf(where, sizeof(where), "redis localhost:%d: ", redis->port);
        if (status != 1 || count_lines_with(out, cases[i].reason) != 1 ||
            count_lines_with(out, "task FAILED") != 1 || !strstr(out, where)) {
            dump(cases[i].name, out);
            fail_msg("%s: exit %d; expected exit 1 and one line saying '%s'", cases[i].name, status,
                     cases[i].reason);
        }
        const char *failed = strstr(out, "task FAILED: ");
        assert_non_null(failed);
        assert_true(strstr(failed, cases[i].reason) < strchr(failed, '\n'));
        assert_null(strstr(out, "connected to redis"));
        expect_no_secret(cases[i].name, out);
        free(out);
        h_proc_free(proc);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sink_over_tls_acl_and_client_certificate),
        cmocka_unit_test(test_stream_source_over_tls_acl_and_client_certificate),
        cmocka_unit_test(test_refusals_fail_the_task_at_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
