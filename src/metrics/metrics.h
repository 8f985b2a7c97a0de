/*
 * metrics.h — what rkbridge counts, and its Prometheus text rendering (GET /metrics).
 *
 * Two halves:
 *
 * - A scrape (rkb_scrape_t) is what one GET /metrics answers. Collectors (connect/worker.c,
 *   http/) add samples of families they declare as static rkb_metric_family_t; rendering groups
 *   the samples by family (one # HELP and one # TYPE line each, families in the order they were
 *   first added) in Prometheus's text exposition format 0.0.4: label values escaped, histograms
 *   as cumulative NAME_bucket{le="..."} series ending with le="+Inf", then NAME_sum and
 *   NAME_count (the +Inf bucket's value). Nothing is kept between scrapes.
 *
 * - Task metrics (rkb_task_metrics_t) are the instruments of one running task that its data
 *   path records into: Redis round trips, batch sizes, rebalances, the state of its Redis
 *   connections, consumer lag (from librdkafka's statistics) and stream pending entries. The
 *   modules on a task's path (redis/, kafka/consumer.c, sink/, source/) find them with
 *   rkb_task_metrics_current(): connect/connector.c sets it on each task's thread (and around
 *   the task's construction), so no handle has to be threaded through them. Every recording
 *   function accepts NULL (a client that belongs to no task records nothing).
 *
 * @locality recording: the task's thread (histograms and counters are atomics); reading
 * (scrape, summaries): any thread, while the owner keeps the task metrics alive.
 */
#ifndef RKB_METRICS_METRICS_H
#define RKB_METRICS_METRICS_H

#include "util/util.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RKB_METRIC_COUNTER,
    RKB_METRIC_GAUGE,
    RKB_METRIC_HISTOGRAM,
} rkb_metric_type_t;

/* A family: declared once (static), shared by all its samples. name must be a legal metric name
 * ([a-zA-Z_:][a-zA-Z0-9_:]*), counters end in _total. help is one line. */
typedef struct rkb_metric_family_s {
    const char *name;
    rkb_metric_type_t type;
    const char *help;
} rkb_metric_family_t;

/* ---- Histograms ------------------------------------------------------------------------------ */

/* Observations are integers in the histogram's own unit (microseconds, records); bounds are in
 * that unit too, and scale turns them into the rendered unit (1e-6: microseconds as seconds).
 * The count is not kept apart: it is the sum of the buckets, so that _count always equals the
 * +Inf bucket even while another thread observes. */
typedef struct rkb_histogram_s {
    const int64_t *bounds; /* ascending upper bounds (static) */
    size_t bound_cnt;
    double scale;
    _Atomic uint64_t *buckets; /* bound_cnt + 1 (the last: above every bound), not cumulative */
    _Atomic uint64_t sum;      /* of the observations, in the histogram's unit */
} rkb_histogram_t;

void rkb_histogram_init(rkb_histogram_t *h, const int64_t *bounds, size_t bound_cnt, double scale);
void rkb_histogram_clear(rkb_histogram_t *h); /* frees the buckets */
void rkb_histogram_observe(rkb_histogram_t *h, int64_t value);

/* ---- Scrapes --------------------------------------------------------------------------------- */

typedef struct rkb_scrape_s rkb_scrape_t;

rkb_scrape_t *rkb_scrape_new(void);
void rkb_scrape_destroy(rkb_scrape_t *s); /* NULL is safe */

/* Labels are name/value pairs in one NULL-terminated array ({"connector", "x", "task", "0",
 * NULL}); values are copied and escaped here. The caller does not add the same family and label
 * set twice. */
void rkb_scrape_add(rkb_scrape_t *s, const rkb_metric_family_t *family, const char *const *labels,
                    double value);
/* Adds a snapshot of h (a family of type RKB_METRIC_HISTOGRAM). */
void rkb_scrape_add_histogram(rkb_scrape_t *s, const rkb_metric_family_t *family,
                              const char *const *labels, const rkb_histogram_t *h);
/* Appends the text exposition of everything added to out. */
void rkb_scrape_render(const rkb_scrape_t *s, rkb_buf_t *out);

/* ---- Task metrics ---------------------------------------------------------------------------- */

typedef struct rkb_task_metrics_s rkb_task_metrics_t;

/* State of one Redis connection, as redis/ reports it. */
typedef enum {
    RKB_CONN_UNKNOWN = 0, /* not tried yet, or closed in order */
    RKB_CONN_UP,
    RKB_CONN_DOWN, /* the last connect failed, or the connection was lost */
} rkb_conn_state_t;

rkb_task_metrics_t *rkb_task_metrics_new(void);
void rkb_task_metrics_destroy(rkb_task_metrics_t *tm); /* NULL is safe */

/* The task metrics of the calling thread (NULL outside a task). @locality the calling thread */
rkb_task_metrics_t *rkb_task_metrics_current(void);
void rkb_task_metrics_set_current(rkb_task_metrics_t *tm);

/* One Redis round trip of `commands` commands that took us microseconds. */
void rkb_task_metrics_redis_round_trip(rkb_task_metrics_t *tm, int64_t us, size_t commands);
/* One Redis connection of the task went from one state to another. */
void rkb_task_metrics_redis_conn(rkb_task_metrics_t *tm, rkb_conn_state_t from,
                                 rkb_conn_state_t to);
/* One batch of records handed to Redis (sink) or read from it (sources). */
void rkb_task_metrics_batch(rkb_task_metrics_t *tm, size_t records);
/* The consumer group was rebalanced (a new assignment reached the task). */
void rkb_task_metrics_rebalance(rkb_task_metrics_t *tm);
/* A librdkafka statistics JSON (STATISTICS.md) of the task's consumer: replaces the consumer
 * lag of every assigned partition (consumer_lag: high watermark - committed offset). */
void rkb_task_metrics_consumer_stats(rkb_task_metrics_t *tm, const char *json);
/* Entries pending in the stream's consumer group (XPENDING), as last counted. */
void rkb_task_metrics_stream_pending(rkb_task_metrics_t *tm, const char *stream, int64_t entries);

/* Adds the task's series to a scrape, each with labels (connector and task) first. */
void rkb_task_metrics_scrape(rkb_task_metrics_t *tm, rkb_scrape_t *s, const char *const *labels);
/* Consumer lag summed over the partitions plus the stream pending entries (0 when unknown). */
int64_t rkb_task_metrics_backlog(rkb_task_metrics_t *tm);
/* True when one of the task's Redis connections is known to be down. */
bool rkb_task_metrics_redis_down(const rkb_task_metrics_t *tm);

#endif
