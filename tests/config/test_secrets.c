/*
 * test_secrets.c — secrets in connector configs: the config providers (${env:NAME},
 * ${file:PATH:KEY}) resolved at load time with errors that name the key and the provider, the
 * Redis TLS keys' validation, Kafka's sasl.jaas.config, and that no printout (errors, the
 * effective config, --help, the docs) ever shows a secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config/config.h"
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SINK_BASE                                                                                  \
    "name=orders\n"                                                                                \
    "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"                                 \
    "topics=t\n"

/* Fails with the messages unless errs holds exactly cnt. */
static void expect_count(const rkb_errors_t *errs, size_t cnt) {
    if (errs->cnt != cnt) {
        rkb_errors_print(errs, stderr);
        fail_msg("expected %zu error(s), got %zu", cnt, errs->cnt);
    }
}

/* Fails unless some message starts with prefix. */
static void expect_msg(const rkb_errors_t *errs, const char *prefix) {
    for (size_t i = 0; i < errs->cnt; i++)
        if (!strncmp(errs->msgs[i], prefix, strlen(prefix)))
            return;
    rkb_errors_print(errs, stderr);
    fail_msg("no error starting with '%s'", prefix);
}

/* A config loaded from text (a temp file named name) and validated; *path its path. */
static rkb_config_t *load(const char *name, const char *text, const char **path,
                          rkb_errors_t *errs) {
    const char *file = h_write_file(name, text);
    if (path)
        *path = file;
    rkb_config_t *conf = rkb_config_new();
    if (rkb_config_load_file(conf, file, errs) == 0)
        rkb_config_validate(conf, errs);
    return conf;
}

/* What fn printed to a FILE (malloc'd). */
static char *capture(void (*fn)(const void *arg, FILE *fp), const void *arg) {
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    fn(arg, fp);
    fclose(fp);
    return text;
}

static void print_conf(const void *arg, FILE *fp) {
    rkb_config_print(arg, fp);
}

static void print_errors(const void *arg, FILE *fp) {
    rkb_errors_print(arg, fp);
}

static char *printed(const rkb_config_t *conf) {
    return capture(print_conf, conf);
}

static char *errors_text(const rkb_errors_t *errs) {
    return capture(print_errors, errs);
}

/* ---- Config providers ------------------------------------------------------------------- */

static void test_env_and_file_providers_resolve(void **state) {
    setenv("RKB_TEST_REDIS_PW", "env-secret-4711", 1);
    setenv("RKB_TEST_TASKS", "3", 1);
    const char *secrets = h_write_file("secrets.properties", "# secrets for the test\n"
                                                             "redis.password = file-secret-0815\n"
                                                             "sasl: sasl-secret-9911\n"
                                                             "user=first\n"
                                                             "user=app\n" /* the last one wins */
                                                             "long=a\\\n"
                                                             "  b\n");
    char text[2048];
    snprintf(text, sizeof(text),
             SINK_BASE "redis.password=${env:RKB_TEST_REDIS_PW}\n"
                       "tasks.max=${env:RKB_TEST_TASKS}\n"
                       "redis.key.password=${file:%s:redis.password}\n"
                       "redis.username=${file:%s:user}\n"
                       "redis.keyspace=k:${file:%s:long}:${topic}\n"
                       "kafka.sasl.password=${file:%s:sasl}\n"
                       "kafka.sasl.username=u-${env:RKB_TEST_TASKS}\n",
             secrets, secrets, secrets, secrets);
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    /* Loaded, not validated: redis.key.password without TLS is a problem of its own. */
    rkb_config_t *conf = rkb_config_new();
    assert_int_equal(rkb_config_load_file(conf, h_write_file("providers.properties", text), &errs),
                     0);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "redis.password"), "env-secret-4711");
    assert_int_equal(rkb_config_get_int(conf, "tasks.max"), 3);
    assert_string_equal(rkb_config_get(conf, "redis.key.password"), "file-secret-0815");
    assert_string_equal(rkb_config_get(conf, "redis.username"), "app");
    assert_string_equal(rkb_config_get(conf, "redis.keyspace"), "k:ab:${topic}");

    /* Printed: secrets hidden, other resolved values as the reference written. */
    char *out = printed(conf);
    assert_null(strstr(out, "env-secret-4711"));
    assert_null(strstr(out, "file-secret-0815"));
    assert_null(strstr(out, "sasl-secret-9911"));
    assert_non_null(strstr(out, "redis.password=[hidden]  # "));
    assert_non_null(strstr(out, "redis.key.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.sasl.password=[hidden]  # "));
    assert_non_null(strstr(out, "tasks.max=${env:RKB_TEST_TASKS}  # "));
    assert_non_null(strstr(out, "kafka.sasl.username=u-${env:RKB_TEST_TASKS}  # "));
    free(out);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_provider_errors_name_key_and_provider(void **state) {
    unsetenv("RKB_TEST_UNSET");
    setenv("RKB_TEST_BAD_TASKS", "many-secret-tasks", 1);
    const char *secrets = h_write_file("few.properties", "present=yes\n");
    char missing_file[1024];
    snprintf(missing_file, sizeof(missing_file), "%s/no-such-dir/secrets.properties", h_tmpdir());
    char text[4096];
    snprintf(text, sizeof(text),
             SINK_BASE "redis.password=${env:RKB_TEST_UNSET}\n"   /* 4 */
                       "redis.username=${file:%s:absent}\n"       /* 5 */
                       "kafka.sasl.password=${file:%s:present}\n" /* 6 */
                       "redis.host=${file:%s}\n"                  /* 7 */
                       "redis.sni=${env:}\n"                      /* 8 */
                       "redis.cacert=${env:RKB_TEST_UNSET\n"      /* 9 */
                       "tasks.max=${env:RKB_TEST_BAD_TASKS}\n"    /* 10 */
                       "redis.keyspace=$${env:RKB_TEST_UNSET}\n", /* 11: escaped, fine */
             secrets, missing_file, secrets);
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path = h_write_file("bad-providers.properties", text);
    rkb_config_t *conf = rkb_config_new();
    assert_int_equal(rkb_config_load_file(conf, path, &errs), 7);
    char want[4096];
    snprintf(want, sizeof(want),
             "%s:4: redis.password: ${env:RKB_TEST_UNSET}: config provider env: environment "
             "variable RKB_TEST_UNSET is not set",
             path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want),
             "%s:5: redis.username: ${file:%s:absent}: config provider file: %s has no key "
             "'absent'",
             path, secrets, secrets);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want),
             "%s:6: kafka.sasl.password: ${file:%s:present}: config provider file: cannot read "
             "%s: No such file or directory",
             path, missing_file, missing_file);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:7: redis.host: ${file:%s}: config provider file: expected",
             path, secrets);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:8: redis.sni: ${env:}: config provider env: expected", path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want),
             "%s:9: redis.cacert: ${env:RKB_TEST_UNSET: config provider env: missing '}'", path);
    expect_msg(&errs, want);
    /* A resolved value that does not fit is quoted as written, not as resolved. */
    snprintf(want, sizeof(want),
             "%s:10: tasks.max: must be an integer between 1 and 256, got "
             "'${env:RKB_TEST_BAD_TASKS}'",
             path);
    expect_msg(&errs, want);
    char *all = errors_text(&errs);
    assert_null(strstr(all, "many-secret-tasks"));
    free(all);
    assert_string_equal(rkb_config_get(conf, "redis.keyspace"), "$${env:RKB_TEST_UNSET}");
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* `rkbridge validate` reports an unresolved reference like any other problem, and never shows
 * what a reference resolved to. */
static void test_validate_command(void **state) {
    const char *secrets = h_write_file("v-secrets.properties", "pw=validate-secret-7\n");
    char text[1024];
    snprintf(text, sizeof(text),
             SINK_BASE "redis.password=${file:%s:pw}\n"
                       "kafka.sasl.password=${env:RKB_TEST_NOT_THERE}\n",
             secrets);
    const char *path = h_write_file("v.properties", text);
    char *out = NULL, *err = NULL;
    unsetenv("RKB_TEST_NOT_THERE");
    const char *argv[] = {h_rkbridge_bin(), "validate", path, NULL};
    assert_int_equal(h_run(argv, &out, &err), 2);
    char want[1024];
    snprintf(want, sizeof(want),
             "%s:5: kafka.sasl.password: ${env:RKB_TEST_NOT_THERE}: config provider env: "
             "environment variable RKB_TEST_NOT_THERE is not set\n",
             path);
    assert_string_equal(err, want);
    assert_null(strstr(out, "validate-secret-7"));
    free(out);
    free(err);
}

/* ---- Redis TLS keys --------------------------------------------------------------------- */

static void test_tls_keys_validation(void **state) {
    const char *ca = h_write_file("ca.pem", "not checked here\n");
    char text[2048];
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;

    /* TLS keys with TLS off: each one is a mistake worth stopping for. */
    snprintf(text, sizeof(text),
             SINK_BASE "redis.uri=redis://h:6379\n" /* 4 */
                       "redis.cacert=%s\n"          /* 5 */
                       "redis.insecure=true\n"      /* 6 */
                       "redis.sni=redis.example\n", /* 7 */
             ca);
    rkb_config_t *conf = load("tls-off.properties", text, &path, &errs);
    expect_count(&errs, 3);
    char want[4096];
    snprintf(want, sizeof(want),
             "%s:5: redis.cacert: TLS is off: set redis.tls=true or use rediss:// in redis.uri",
             path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:6: redis.insecure: TLS is off", path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:7: redis.sni: TLS is off", path);
    expect_msg(&errs, want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* rediss:// or redis.tls turn it on; files must be readable, cert and key go together. */
    char missing[1024];
    snprintf(missing, sizeof(missing), "%s/missing-key.pem", h_tmpdir());
    snprintf(text, sizeof(text),
             SINK_BASE "redis.uri=rediss://h:6380\n" /* 4 */
                       "redis.cacert=%s\n"           /* 5 */
                       "redis.key.file=%s\n"         /* 6 */
                       "redis.cacert.dir=%s\n"       /* 7: a file, not a directory */
                       "redis.key.password=kp-secret-31\n",
             ca, missing, ca);
    conf = load("tls-files.properties", text, &path, &errs);
    expect_count(&errs, 3);
    snprintf(want, sizeof(want), "%s:6: redis.key.file: needs redis.key.cert", path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:6: redis.key.file: cannot read %s: No such file or directory",
             path, missing);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:7: redis.cacert.dir: cannot read %s: not a directory", path,
             ca);
    expect_msg(&errs, want);
    char *all = errors_text(&errs);
    assert_null(strstr(all, "kp-secret-31"));
    free(all);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    snprintf(text, sizeof(text),
             SINK_BASE "redis.tls=true\n"
                       "redis.host=h\n"
                       "redis.cacert=%s\n"
                       "redis.cacert.dir=%s\n"
                       "redis.sni=redis.example\n"
                       "redis.insecure=false\n",
             ca, h_tmpdir());
    conf = load("tls-ok.properties", text, &path, &errs);
    expect_count(&errs, 0);
    rkb_config_destroy(conf);
}

/* ---- Kafka secrets ------------------------------------------------------------------------ */

/* Appends "name=value;" to opaque (a char[1024]). */
static void collect_kafka(const char *name, const char *value, const char *origin, void *opaque) {
    size_t len = strlen(opaque);
    snprintf((char *)opaque + len, 1024 - len, "%s=%s;", name, value);
}

static void test_kafka_secrets_masked_and_jaas(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load(
        "kafka-secrets.properties",
        SINK_BASE "kafka.security.protocol=SASL_SSL\n"
                  "kafka.sasl.mechanism=SCRAM-SHA-512\n"
                  "consumer.override.sasl.jaas.config=org.apache.kafka.common.security.scram."
                  "ScramLoginModule required username=\"alice\" password=\"ja\\\"as-secret\";\n"
                  "kafka.ssl.key.password=sslkey-secret-1\n"
                  "kafka.ssl.ca.location=/etc/ssl/certs/ca-certificates.crt\n"
                  "kafka.ssl.keystore.password=keystore-secret-2\n",
        &path, &errs);
    expect_count(&errs, 0);
    char *out = printed(conf);
    static const char *const secrets[] = {"as-secret", "sslkey-secret-1", "keystore-secret-2"};
    for (size_t i = 0; i < 3; i++)
        if (strstr(out, secrets[i]))
            fail_msg("'%s' printed:\n%s", secrets[i], out);
    assert_non_null(strstr(out, "kafka.sasl.username=alice  # "));
    assert_non_null(strstr(out, "kafka.sasl.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.ssl.key.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.ssl.keystore.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.ssl.ca.location=/etc/ssl/certs/ca-certificates.crt  # "));
    free(out);

    /* What librdkafka gets. */
    char seen[1024] = "";
    rkb_config_foreach_kafka(conf, collect_kafka, seen);
    assert_non_null(strstr(seen, "sasl.username=alice;sasl.password=ja\"as-secret;"));
    rkb_config_destroy(conf);

    /* A JAAS line rkbridge cannot translate is refused without quoting it. */
    conf = load("jaas-bad.properties",
                SINK_BASE "kafka.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer."
                          "OAuthBearerLoginModule required clientSecret=\"oauth-secret-3\";\n"
                          "kafka.sasl.jaas.config=org.apache.kafka.common.security.plain."
                          "PlainLoginModule required username=\"bob\";\n",
                &path, &errs);
    expect_count(&errs, 2);
    char want[1024];
    snprintf(want, sizeof(want),
             "%s:4: kafka.sasl.jaas.config: only PlainLoginModule and ScramLoginModule", path);
    expect_msg(&errs, want);
    snprintf(want, sizeof(want), "%s:5: kafka.sasl.jaas.config: expected 'LoginModule required",
             path);
    expect_msg(&errs, want);
    char *all = errors_text(&errs);
    assert_null(strstr(all, "oauth-secret-3"));
    free(all);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* The one rule for every printout. */
    assert_true(rkb_config_is_secret("redis.password"));
    assert_true(rkb_config_is_secret("redis.key.password"));
    assert_true(rkb_config_is_secret("kafka.sasl.password"));
    assert_true(rkb_config_is_secret("consumer.override.sasl.jaas.config"));
    assert_true(rkb_config_is_secret("producer.override.ssl.keystore.password"));
    assert_true(rkb_config_is_secret("kafka.ssl.key.pem"));
    assert_false(rkb_config_is_secret("kafka.sasl.username"));
    assert_false(rkb_config_is_secret("redis.uri")); /* printed with its password masked */
    assert_false(rkb_config_is_secret("no.such.key"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env_and_file_providers_resolve),
        cmocka_unit_test(test_provider_errors_name_key_and_provider),
        cmocka_unit_test(test_validate_command),
        cmocka_unit_test(test_tls_keys_validation),
        cmocka_unit_test(test_kafka_secrets_masked_and_jaas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
