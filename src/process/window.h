/*
 * window.h — windowed aggregation on event time (redis.type=WINDOW; SEMANTICS.md §6.3, §7.2):
 * tumbling, hopping and session windows per group, with count, sum, min, max, avg and distinct
 * (HyperLogLog), whose results are kept in Redis and produced to a Kafka topic.
 *
 * Where it sits: a WINDOW connector is a sink (sink/sink.c) that always runs exactly-once. For
 * each record this module encodes one pseudo-command, RKB.WINDOW, that the partition's apply
 * script (sink/eos.c, sink/apply.lua) runs through src/process/window.lua, atomically with the
 * partition's offset: a window's state changes exactly once per record, across crashes and
 * replays. After the scripts of a batch, this module produces the results they left pending in
 * Redis to window.output.topic and removes them once Kafka has them.
 *
 * Semantics (Kafka Streams' rules, SEMANTICS.md §6.1):
 * - Event time: window.time rendered per record: ms since the epoch, or a Redis stream entry ID
 *   "ms-seq" (its ms). Missing, negative or unparsable: the record is dropped and counted
 *   (dropped_invalid_ts). A null value (tombstone) is ignored, as Kafka Streams does.
 * - Clock: per input partition, the largest event time seen (persisted with the windows, so a
 *   restart or a rebalance never reopens a closed window). It moves only when records arrive:
 *   there is no wall-clock punctuator, so the windows of an idle partition stay open until its
 *   next record. Keep window.group the Kafka key (or coarser per partition): a group spread over
 *   partitions would be closed by each partition's clock separately.
 * - Tumbling/hopping: windows [start, start + size), epoch-aligned, every advance ms, never
 *   starting below 0; closed once clock >= end + grace. Sessions: [first, last] event time,
 *   inclusive; a record merges every session of its group with end >= ts - gap and start <= ts
 *   + gap (open ones, and closed ones whose result is still kept); a session is closed once
 *   clock > last + gap + grace. Closedness comes from the clock, never from whether a key exists.
 * - Late: a record all of whose windows are closed (a session: whose merged session is closed)
 *   is not applied and is counted (dropped_late_records); with window.late=dead-letter it is
 *   also produced to errors.deadletterqueue.topic.name with header x-late-reason=window-closed.
 *   A hopping record with some windows still open is applied to those and the closed ones it
 *   missed are counted in dropped_late_windows (not in dropped_late_records).
 * - Emission: final = one result per window, when it closes; update = also the current result
 *   of every window a batch changed (once per window per batch), then the final one at close.
 *   A session merged away gets a tombstone (null value): in update mode always, in final mode
 *   when it had already closed (its final result was emitted and the new session covers it).
 *
 * Redis, per input partition (the hash tag of the partition's offset key):
 *   rkbridge:window:{TOPIC:PARTITION}:NS           hash: clock, seq, dropped_late_records,
 *                                                  dropped_late_windows, dropped_invalid_ts
 *   rkbridge:window:{TOPIC:PARTITION}:NS:open      zset: open window keys by closing clock
 *   rkbridge:window:{TOPIC:PARTITION}:NS:pending   hash: results not yet acknowledged by Kafka
 * and per window (PREFIX = window.key.prefix, default "win:<connector name>:"):
 *   PREFIX<group>:<start>                  tumbling/hopping: hash g, start, end, count[, sum,
 *                                          min, max]; at close also final=1[, avg, distinct]
 *   PREFIX<group>:<start>:open             an open session (its start moves on merges)
 *   PREFIX<group>:<start>:<last>           a closed session
 *   <window key>:distinct                  its HyperLogLog
 *   PREFIX<group>:sessions                 zset of the group's sessions by last event time
 * Open state expires after window.state.ttl.ms without records (a wall-clock safety net),
 * closed results after window.result.ttl.ms. Sums use HINCRBYFLOAT (exact under replay: the
 * script never applies a record twice). On a Redis Cluster the window keys must share the
 * partition's slot: window.key.prefix takes ${topic} and ${partition}, e.g.
 * win:{${topic}:${partition}}: (the sink checks it, SEMANTICS.md E-8).
 *
 * Kafka result record (window.output.topic): key = the group; value = JSON
 *   {"key":"u1","window_start":0,"window_end":10000,"type":"tumbling","value":3,"final":true}
 * where value is the number when one aggregate is configured, else an object {"count":..,...}
 * in the configured order; "approx":true when distinct is included; a session has window_end
 * = its last event time and "end_inclusive":true. Timestamp = window_end - 1 (a session:
 * window_end). Headers x-window-start and x-window-end (decimal ms). Emission is at-least-once
 * (produce, wait for the delivery report, then remove the pending entry): after a crash a
 * result may come again, byte-identical; consumers de-duplicate by (key, window_start,
 * window_end). Results of one input partition are produced in the order they were made.
 *
 * @locality a window belongs to one sink task thread (its producer's delivery reports are
 * served on that thread too).
 */
#ifndef RKB_PROCESS_WINDOW_H
#define RKB_PROCESS_WINDOW_H

#include "config/config.h"
#include "kafka/producer.h"
#include "record/record.h"
#include "redis/redis.h"
#include "sink/eos.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Checks the window.* keys of a WINDOW connector (aggregate names, the templates they need,
 * hopping advance, window.late=dead-letter needs a dead-letter topic and errors.tolerance=all).
 * Adds "ORIGIN: key: why" lines to errs; returns their number. */
int rkb_window_validate(const rkb_config_t *conf, rkb_errors_t *errs);

typedef struct rkb_window_s rkb_window_t;

/* Builds the window of sink task task_id from a validated conf; offset_ns is the partition
 * offsets' namespace (copied). Creates the result producer when window.output.topic is set.
 * Returns NULL with errstr. */
rkb_window_t *rkb_window_new(const rkb_config_t *conf, int task_id, const char *component,
                             const char *offset_ns, char *errstr, size_t errstr_size);
/* Flushes the producer (undelivered results stay pending in Redis), frees. NULL is safe. */
void rkb_window_destroy(rkb_window_t *win);

/* Appends the command that applies rec (converted, see convert.h) to cmds: returns 1, or 0 for
 * a tombstone (nothing to do), or -1 with errstr naming the config key when the record cannot
 * be aggregated (a missing group, value or element; a value that is not a number): a data
 * error. A missing or bad event time is not an error: the script counts it. */
int rkb_window_encode(rkb_window_t *win, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                      size_t errstr_size);

/* True when reason (a script's bad_reason, eos.h) says the record was late with
 * window.late=dead-letter. */
/* The prefix of the window keys named by spec, the argument an RKB.WINDOW command carries
 * after the state key (its keys are PREFIX<group>...: window.h above). */
const char *rkb_window_spec_prefix(const char *spec);
bool rkb_window_is_late(const char *reason);
/* The headers a late record carries to the dead-letter topic (static storage). */
size_t rkb_window_late_headers(const rkb_header_t **headers);
/* Appends the command for the pass that moves the offset past a late record the dead-letter
 * topic acknowledged: it counts the record in dropped_late_records (there, so that a retried
 * dead-letter produce still counts it once). Returns 1. */
int rkb_window_encode_late(rkb_window_t *win, const rkb_record_t *rec, rkb_cmds_t *cmds);

/* What the script call of topic/partition reported (its counters): adds to the stats, and
 * marks the partition for emission when results were left pending. */
void rkb_window_account(rkb_window_t *win, const char *topic, int32_t partition,
                        const rkb_eos_result_t *result);
/* A partition was assigned: results an earlier owner (or a crash) left pending are emitted.
 * The topic is copied. */
void rkb_window_watch(rkb_window_t *win, const char *topic, int32_t partition);
/* A partition went: its pending results are the next owner's. */
void rkb_window_forget(rkb_window_t *win, const char *topic, int32_t partition);

/* True when some partition has results to emit. */
bool rkb_window_emit_due(const rkb_window_t *win);
/* Emits the pending results of the marked partitions: reads them from Redis, produces them in
 * order, waits for the delivery reports, removes the delivered ones. Returns 0 when nothing is
 * left to emit, 1 when something must be tried again later (Redis or Kafka unavailable: the
 * results stay pending), -1 when the producer failed fatally (errstr). */
int rkb_window_emit(rkb_window_t *win, rkb_redis_t *redis, char *errstr, size_t errstr_size);

/* Counters of one task, from the script replies and the emission. */
typedef struct rkb_window_stats_s {
    uint64_t dropped_late_records;
    uint64_t dropped_late_windows;
    uint64_t dropped_invalid_ts;
    uint64_t windows_closed;
    uint64_t results_emitted; /* delivery reports without error */
} rkb_window_stats_t;

const rkb_window_stats_t *rkb_window_stats(const rkb_window_t *win);

#endif
