/*
 * failpoint.h — deterministic crash points for crash-consistency tests.
 *
 * RKB_FAILPOINT="name[@N][,name2[@M]]" in the environment arms failpoints. A failpoint fires when
 * the code reaches rkb_failpoint(name, value) with value >= N (N defaults to 0), and then the
 * process dies at once with SIGKILL, as a crash would: no flush, no commit, no cleanup.
 * Failpoints in the code (see SEMANTICS.md §9):
 *   crash_after_redis_apply   sink: Redis acknowledged a batch, before its offsets are stored;
 *                             value = the highest offset in the batch
 * Unset, it costs one branch on a cached flag.
 */
#ifndef RKB_UTIL_FAILPOINT_H
#define RKB_UTIL_FAILPOINT_H

#include <stdint.h>

void rkb_failpoint(const char *name, int64_t value);

#endif
