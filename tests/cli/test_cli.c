/*
 * test_cli.c — the command-line contract: --version, --help, config-doc (== the committed
 * docs/configuration.md), `validate` (FILE:LINE: key: why, exit 2; silent exit 0 when valid),
 * and `run` refusing to start anything when one file is broken.
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const valid_text = "# a valid sink\n"
                                      "name=pageviews\n"
                                      "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                                      "topics=pageviews\n"
                                      "redis.uri=redis://127.0.0.1:6379\n"
                                      "redis.type=HASH\n"
                                      "redis.key.template=page:${value.pageid}:${key}\n"
                                      "kafka.bootstrap.servers=127.0.0.1:9092\n";

/* Runs the rkbridge under test with argv[1..] (argv[0] is replaced by the binary). */
static int run_rkb(const char *const *argv, char **out, char **err) {
    const char *real[16];
    size_t n = 0;
    real[n++] = h_rkbridge_bin();
    for (size_t i = 1; argv[i] && n < 15; i++)
        real[n++] = argv[i];
    real[n] = NULL;
    return h_run(real, out, err);
}

static char *read_file(const char *path) {
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = calloc(1, (size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    return text;
}

static void test_version_and_help(void **state) {
    char *out = NULL;
    const char *const version[] = {"rkbridge", "--version", NULL};
    assert_int_equal(run_rkb(version, &out, NULL), 0);
    assert_string_equal(out, "rkbridge " RKB_TEST_VERSION "\n");
    free(out);
    const char *const help[] = {"rkbridge", "--help", NULL};
    assert_int_equal(run_rkb(help, &out, NULL), 0);
    assert_non_null(strstr(out, "validate [--print] FILE.properties"));
    assert_non_null(strstr(out, "redis.type"));
    assert_non_null(strstr(out, "redis.keyspace"));
    assert_non_null(strstr(out, "--log-format text|json"));
    assert_non_null(strstr(out, "RKB_LOG_FORMAT=text|json"));
    assert_non_null(strstr(out, "${file:PATH:KEY}"));
    free(out);
    const char *const bad[] = {"rkbridge", "frobnicate", NULL};
    assert_int_equal(run_rkb(bad, NULL, NULL), 2);
}

/* The configuration reference is generated from the property table: the committed file must
 * be exactly what the binary prints. */
static void test_config_doc_matches_docs(void **state) {
    char *out = NULL;
    const char *const doc[] = {"rkbridge", "config-doc", NULL};
    assert_int_equal(run_rkb(doc, &out, NULL), 0);
    char *committed = read_file(RKB_SOURCE_DIR "/docs/configuration.md");
    if (strcmp(out, committed))
        fail_msg("docs/configuration.md is stale: regenerate it with "
                 "`./build/rkbridge config-doc > docs/configuration.md`");
    free(out);
    free(committed);
}

static void test_validate_valid_file_is_silent(void **state) {
    const char *path = h_write_file("valid.properties", valid_text);
    char *out = NULL, *err = NULL;
    const char *const argv[] = {"rkbridge", "validate", path, NULL};
    assert_int_equal(run_rkb(argv, &out, &err), 0);
    assert_string_equal(out, "");
    assert_string_equal(err, "");
    free(out);
    free(err);
}

/* --print: the effective configuration, with secrets hidden; nothing for a broken file. */
static void test_validate_print(void **state) {
    char text[1024];
    snprintf(text, sizeof(text),
             "%sredis.password=cli-secret-1\nkafka.sasl.password=cli-secret-2\n", valid_text);
    const char *path = h_write_file("print.properties", text);
    char *out = NULL, *err = NULL;
    const char *const argv[] = {"rkbridge", "validate", "--print", path, NULL};
    assert_int_equal(run_rkb(argv, &out, &err), 0);
    assert_string_equal(err, "");
    assert_non_null(strstr(out, "redis.type=HASH  # "));
    assert_non_null(strstr(out, "redis.password=[hidden]  # "));
    assert_non_null(strstr(out, "kafka.sasl.password=[hidden]  # "));
    assert_null(strstr(out, "cli-secret"));
    free(out);
    free(err);
    const char *bad = h_write_file("print-bad.properties", "name=x\n");
    const char *const argv_bad[] = {"rkbridge", "validate", "--print", bad, NULL};
    assert_int_equal(run_rkb(argv_bad, &out, &err), 2);
    assert_string_equal(out, "");
    free(out);
    free(err);
}

/* Asserts that err has a line starting with "PATH:LINE: key:" and containing needle. */
static void assert_problem(const char *err, const char *path, int line, const char *key,
                           const char *needle) {
    char prefix[1024];
    snprintf(prefix, sizeof(prefix), "%s:%d: %s:", path, line, key);
    const char *p = err;
    while (p && *p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (!strncmp(p, prefix, strlen(prefix))) {
            char *row = strndup(p, len);
            bool has = strstr(row, needle) != NULL;
            free(row);
            if (has)
                return;
        }
        p = eol ? eol + 1 : NULL;
    }
    fail_msg("no problem line '%s ... %s' in:\n%s", prefix, needle, err);
}

static void test_validate_reports_each_problem(void **state) {
    const char *path = h_write_file("broken.properties",
                                    "name=broken\n" /* 1 */
                                    "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
                                    "topics=t\n"                   /* 3 */
                                    "redis.keyspce=users\n"        /* 4 */
                                    "tasks.max=zero\n"             /* 5 */
                                    "redis.type=HASHH\n"           /* 6 */
                                    "redis.multiexec=maybe\n"      /* 7 */
                                    "kafka.no.such.property=1\n"); /* 8 */
    char *err = NULL;
    const char *const argv[] = {"rkbridge", "validate", path, NULL};
    assert_int_equal(run_rkb(argv, NULL, &err), 2);
    assert_problem(err, path, 4, "redis.keyspce", "did you mean 'redis.keyspace'");
    assert_problem(err, path, 5, "tasks.max", "integer");
    assert_problem(err, path, 6, "redis.type", "HASH");
    assert_problem(err, path, 7, "redis.multiexec", "true");
    assert_problem(err, path, 8, "kafka.no.such.property", "");
    free(err);

    /* Templates are checked too, with the line of the key. */
    path = h_write_file("badtemplate.properties", "name=t\n"
                                                  "connector.class=RedisSinkConnector\n"
                                                  "topics=t\n"
                                                  "redis.type=HASH\n"
                                                  "redis.keyspace=user:${tpoic}\n");
    assert_int_equal(run_rkb((const char *const[]){"rkbridge", "validate", path, NULL}, NULL, &err),
                     2);
    assert_problem(err, path, 5, "redis.keyspace", "${tpoic}");
    free(err);
}

/* A broken file never starts a connector, even next to a good one. */
static void test_run_refuses_broken_file(void **state) {
    const char *good = h_write_file("good.properties", valid_text);
    const char *bad = h_write_file("bad.properties", "name=x\nconnector.class=Nope\n");
    char *out = NULL, *err = NULL;
    const char *const argv[] = {"rkbridge", "run", good, bad, NULL};
    assert_int_equal(run_rkb(argv, &out, &err), 2);
    assert_null(strstr(err, "connector started"));
    assert_non_null(strstr(err, bad));
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_config_doc_matches_docs),
        cmocka_unit_test(test_validate_valid_file_is_silent),
        cmocka_unit_test(test_validate_print),
        cmocka_unit_test(test_validate_reports_each_problem),
        cmocka_unit_test(test_run_refuses_broken_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
