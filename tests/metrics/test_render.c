/*
 * test_render.c — unit tests of metrics/: the exact Prometheus text of a scrape (one HELP/TYPE
 * per family, families in first-added order, escaped label values, cumulative histogram buckets
 * ending in +Inf, _count equal to it), and what task metrics make of librdkafka statistics and
 * Redis connection states.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "metrics/metrics.h"

#include <stdlib.h>
#include <string.h>

static const rkb_metric_family_t fam_a = {"t_records_total", RKB_METRIC_COUNTER, "Records."};
static const rkb_metric_family_t fam_g = {"t_up", RKB_METRIC_GAUGE, "Up."};
static const rkb_metric_family_t fam_h = {"t_seconds", RKB_METRIC_HISTOGRAM, "Time."};

static char *render(rkb_scrape_t *s) {
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "");
    rkb_scrape_render(s, &out);
    return out.data;
}

static void test_render_exact(void **state) {
    static const int64_t bounds[] = {1000, 500000};
    rkb_histogram_t h;
    rkb_histogram_init(&h, bounds, 2, 1e-6);
    rkb_histogram_observe(&h, 400);     /* <= 1 ms */
    rkb_histogram_observe(&h, 2000);    /* <= 0.5 s */
    rkb_histogram_observe(&h, 9000000); /* above */

    rkb_scrape_t *s = rkb_scrape_new();
    const char *a[] = {"connector", "we\"ird\\name\nx", "task", "0", NULL};
    const char *b[] = {"connector", "b", "task", "1", NULL};
    rkb_scrape_add(s, &fam_a, a, 3);
    rkb_scrape_add(s, &fam_g, NULL, 1);
    rkb_scrape_add_histogram(s, &fam_h, b, &h);
    rkb_scrape_add(s, &fam_a, b, 1.5); /* after another family: still rendered with its own */
    char *text = render(s);
    assert_string_equal(text,
                        "# HELP t_records_total Records.\n"
                        "# TYPE t_records_total counter\n"
                        "t_records_total{connector=\"we\\\"ird\\\\name\\nx\",task=\"0\"} 3\n"
                        "t_records_total{connector=\"b\",task=\"1\"} 1.5\n"
                        "# HELP t_up Up.\n"
                        "# TYPE t_up gauge\n"
                        "t_up 1\n"
                        "# HELP t_seconds Time.\n"
                        "# TYPE t_seconds histogram\n"
                        "t_seconds_bucket{connector=\"b\",task=\"1\",le=\"0.001\"} 1\n"
                        "t_seconds_bucket{connector=\"b\",task=\"1\",le=\"0.5\"} 2\n"
                        "t_seconds_bucket{connector=\"b\",task=\"1\",le=\"+Inf\"} 3\n"
                        "t_seconds_sum{connector=\"b\",task=\"1\"} 9.0024\n"
                        "t_seconds_count{connector=\"b\",task=\"1\"} 3\n");
    free(text);
    rkb_scrape_destroy(s);
    rkb_histogram_clear(&h);
}

/* Only assigned partitions with a known lag count; the internal partition -1 never does. */
static void test_consumer_lag_from_statistics(void **state) {
    const char *stats =
        "{\"name\":\"c\",\"topics\":{\"t\":{\"topic\":\"t\",\"partitions\":{"
        "\"0\":{\"partition\":0,\"desired\":true,\"consumer_lag\":7},"
        "\"1\":{\"partition\":1,\"desired\":false,\"consumer_lag\":100},"
        "\"2\":{\"partition\":2,\"desired\":true,\"consumer_lag\":-1},"
        "\"-1\":{\"partition\":-1,\"desired\":false,\"consumer_lag\":-1}}},"
        "\"u\":{\"topic\":\"u\",\"partitions\":{\"3\":{\"partition\":3,\"desired\":true,"
        "\"consumer_lag\":5}}}}}";
    rkb_task_metrics_t *tm = rkb_task_metrics_new();
    rkb_task_metrics_consumer_stats(tm, stats);
    rkb_task_metrics_stream_pending(tm, "s", 4);
    rkb_task_metrics_stream_pending(tm, "s", 2); /* replaced, not added */
    assert_int_equal(rkb_task_metrics_backlog(tm), 7 + 5 + 2);
    rkb_task_metrics_consumer_stats(tm, "not json"); /* ignored */
    assert_int_equal(rkb_task_metrics_backlog(tm), 7 + 5 + 2);

    rkb_scrape_t *s = rkb_scrape_new();
    const char *labels[] = {"connector", "c", "task", "0", NULL};
    rkb_task_metrics_scrape(tm, s, labels);
    char *text = render(s);
    assert_non_null(strstr(text, "rkbridge_consumer_lag{connector=\"c\",task=\"0\",topic=\"t\","
                                 "partition=\"0\"} 7\n"));
    assert_non_null(strstr(text, "partition=\"3\"} 5\n"));
    assert_null(strstr(text, "partition=\"1\""));
    assert_null(strstr(text, "partition=\"2\""));
    assert_null(strstr(text, "partition=\"-1\""));
    assert_non_null(strstr(text, "rkbridge_stream_pending_entries{connector=\"c\",task=\"0\","
                                 "stream=\"s\"} 2\n"));
    free(text);
    rkb_scrape_destroy(s);
    rkb_task_metrics_destroy(tm);
}

/* Connected only while every connection is up; down as soon as one is. */
static void test_redis_connection_states(void **state) {
    rkb_task_metrics_t *tm = rkb_task_metrics_new();
    assert_false(rkb_task_metrics_redis_down(tm));
    rkb_task_metrics_redis_conn(tm, RKB_CONN_UNKNOWN, RKB_CONN_UP);
    rkb_task_metrics_redis_conn(tm, RKB_CONN_UNKNOWN, RKB_CONN_DOWN);
    assert_true(rkb_task_metrics_redis_down(tm));
    rkb_task_metrics_redis_conn(tm, RKB_CONN_DOWN, RKB_CONN_UP);
    assert_false(rkb_task_metrics_redis_down(tm));
    rkb_scrape_t *s = rkb_scrape_new();
    rkb_task_metrics_scrape(tm, s, NULL);
    char *text = render(s);
    assert_non_null(strstr(text, "\nrkbridge_redis_connected 1\n"));
    free(text);
    rkb_scrape_destroy(s);
    rkb_task_metrics_redis_conn(tm, RKB_CONN_UP, RKB_CONN_UNKNOWN); /* closed in order */
    assert_false(rkb_task_metrics_redis_down(tm));
    rkb_task_metrics_redis_conn(NULL, RKB_CONN_UNKNOWN, RKB_CONN_DOWN); /* no task: no-op */
    rkb_task_metrics_destroy(tm);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_consumer_lag_from_statistics),
        cmocka_unit_test(test_redis_connection_states),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
