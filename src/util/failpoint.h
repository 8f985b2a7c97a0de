/*
 * failpoint.h — deterministic crash points for crash-consistency tests.
 *
 * RKB_FAILPOINT="name[@N][,name2[@M]]" in the environment arms failpoints. A failpoint fires when
 * the code reaches rkb_failpoint(name, value) with value >= N (N defaults to 0), and then the
 * process dies at once with SIGKILL, as a crash would: no flush, no commit, no cleanup.
 * Failpoints in the code (see SEMANTICS.md §9):
 *   crash_after_redis_apply   sink: Redis acknowledged a batch, before its offsets are stored;
 *                             value = the highest offset in the batch
 *   crash_mid_batch           sink: only the first half of a batch's pipeline was sent and
 *                             acknowledged; value = the highest offset in the batch
 *   crash_after_dlq_produce   sink: the dead-letter topic acknowledged a record, before its
 *                             offset is stored; value = that record's offset
 *   crash_after_window_emit   window results (process/window.c): Kafka acknowledged a round of
 *                             results, before they are removed from Redis; value = results
 *                             delivered so far by the task
 *   crash_before_xack         stream source: the delivery report said the broker has the
 *                             record, before its XACK (everything delivered before it is
 *                             acknowledged first); value = count of records delivered so far
 * Unset, it costs one branch on a cached flag.
 */
#ifndef RKB_UTIL_FAILPOINT_H
#define RKB_UTIL_FAILPOINT_H

#include <stdbool.h>
#include <stdint.h>

void rkb_failpoint(const char *name, int64_t value);
/* True if rkb_failpoint(name, value) would fire (for failpoints that must prepare first). */
bool rkb_failpoint_armed(const char *name, int64_t value);

#endif
