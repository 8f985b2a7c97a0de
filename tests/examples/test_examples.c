/*
 * test_examples.c — every example of examples/ runs end to end (`examples/run NAME`: its own
 * redis-server and dev broker, its sample data, its connector files) and shows the result it
 * documents. Keeps the examples true as the configuration evolves.
 */
#include "harness.h"
#include "util/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs examples/run name with this build's binary; returns its output (caller frees). */
static char *run_example(const char *name) {
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "cd %s && RKBRIDGE=%s timeout 300 examples/run %s 2>&1",
             RKB_SOURCE_DIR, h_rkbridge_bin(), name);
    FILE *pipe = popen(cmd, "r");
    assert_non_null(pipe);
    rkb_buf_t out;
    rkb_buf_init(&out);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), pipe)) > 0)
        rkb_buf_append(&out, chunk, n);
    int status = pclose(pipe);
    if (status != 0)
        fprintf(stderr, "examples/run %s exited with %d:\n%s\n", name, status, out.data);
    assert_int_equal(status, 0);
    return out.data;
}

static void assert_contains(const char *out, const char *needle) {
    if (!strstr(out, needle))
        fprintf(stderr, "missing '%s' in:\n%s\n", needle, out);
    assert_non_null(strstr(out, needle));
}

/* 1000 transactions, every 10th from an unknown user: all enriched, 100 with the default. */
static void test_fraud_enrichment(void **state) {
    char *out = run_example("fraud-enrichment");
    assert_contains(out, "fraud-enrichment: 1000 enriched, 100 with the default profile");
    assert_contains(out, "\"profile\":{");
    free(out);
}

/* Final unique-user counts per site and minute on the output topic and in Redis. */
static void test_unique_users(void **state) {
    char *out = run_example("unique-users");
    assert_contains(out, "\"key\":\"shop\"");
    assert_contains(out, "\"window_start\":1700000040000");
    assert_contains(out, "\"final\":true");
    assert_contains(out, "distinct");
    free(out);
}

/* The replayed old version and the stale fill are refused; the delete left a tombstone. */
static void test_user_cache(void **state) {
    char *out = run_example("user-cache");
    assert_contains(out, "Ada Lovelace");
    assert_contains(out, "_deleted");
    assert_contains(out, "email ada@example.com\n0\n");
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fraud_enrichment),
        cmocka_unit_test(test_unique_users),
        cmocka_unit_test(test_user_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
