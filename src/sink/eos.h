/*
 * eos.h — exactly-once into Redis: the sink's offsets live in Redis and every batch of a
 * partition is applied by one Lua script that also advances them (SEMANTICS.md §2.4).
 *
 * Offset key of a partition (a string holding the next offset to apply):
 *     rkbridge:offset:{TOPIC:PARTITION}:NAMESPACE
 * The hash tag is the partition, so data keys tagged {${topic}:${partition}} share its Redis
 * Cluster slot; NAMESPACE (redis.offset.namespace, default the connector name) keeps two
 * connectors on one topic apart.
 *
 * The script, for one partition: reads the stored next offset; for each record in offset order,
 * skips it when its offset is below (a replay, or a zombie writer), otherwise checks every
 * command of the record against the current types and values (WRONGTYPE, a counter that is not
 * a number, ...) BEFORE writing anything of that record, then runs them and advances. The first
 * record that fails its checks stops the script: the records before it are applied, the stored
 * offset is that record's offset, and the reply names it. A record with no commands (dead-
 * lettered, or nothing to write) just advances the offset. Atomic: a crash leaves either all or
 * none of one call.
 */
#ifndef RKB_SINK_EOS_H
#define RKB_SINK_EOS_H

#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writes the offset key of topic/partition for namespace into out (NUL-terminated, cut to
 * size). Returns out. */
const char *rkb_eos_offset_key(const char *ns, const char *topic, int32_t partition, char *out,
                               size_t size);

/* SCRIPT LOADs the apply script on a connection (after every connect: a restarted Redis has
 * forgotten it). Returns RKB_REDIS_OK or an error code with errstr. */
int rkb_eos_load(rkb_redis_t *redis, char *errstr, size_t errstr_size);

/*
 * Builds one script call (EVALSHA) for one partition into out, from the records' commands as the
 * writer encoded them into `from` (with in_transaction set: no MULTI/EXEC of their own).
 * A call is begun, fed records in ascending offset order, and ended.
 */
typedef struct rkb_eos_call_s rkb_eos_call_t;

rkb_eos_call_t *rkb_eos_call_new(void);
void rkb_eos_call_destroy(rkb_eos_call_t *call); /* NULL is safe */
void rkb_eos_call_begin(rkb_eos_call_t *call, const char *offset_key);
/* Adds a record: its offset and the commands [first, first + cnt) of from (cnt may be 0). */
void rkb_eos_call_add(rkb_eos_call_t *call, int64_t offset, const rkb_cmds_t *from, size_t first,
                      int cnt);
/* Appends the EVALSHA command to out (EVAL with the script text if no rkb_eos_load has
 * succeeded yet in this process). */
void rkb_eos_call_end(rkb_eos_call_t *call, rkb_cmds_t *out);

/* What one call did, from its reply. */
typedef struct rkb_eos_result_s {
    int64_t applied;      /* records applied (not skipped) */
    int64_t next_offset;  /* the stored next offset after the call */
    int64_t bad_offset;   /* offset of the record that failed its checks, or -1 */
    char bad_reason[512]; /* why, e.g. "WRONGTYPE key 'x' holds a list, HSET needs a hash" */
    /* What the pseudo-commands counted during the call (e.g. "stale" events a cache entry
     * refused), by name; names not listed are 0. */
    struct {
        char name[32];
        int64_t n;
    } counters[8];
    size_t counter_cnt;
} rkb_eos_result_t;

/* The counter called name in result, or 0. */
int64_t rkb_eos_result_counter(const rkb_eos_result_t *result, const char *name);
/* bad_reason is either a check of the script ("WRONGTYPE key ...", "key 'k' holds 'abc', not an
 * integer (INCRBY)": a data error) or, for a command that failed when run, Redis's own error
 * message first ("OOM command not allowed ... (HSET 'k')"), so rkb_redis_error_is_transient
 * (bad_reason) tells a retry from a data error. In the second case only, earlier commands of that
 * same record stay applied (the writer puts the command that can fail first). */

/* Parses a call's reply. Returns 0, or -1 with errstr for an error reply (NOSCRIPT, BUSY,
 * LOADING, ...: see rkb_redis_error_is_transient) or a reply of the wrong shape. */
int rkb_eos_parse_reply(const redisReply *reply, rkb_eos_result_t *result, char *errstr,
                        size_t errstr_size);

/* True when msg (rkb_eos_parse_reply's errstr) says the server does not know the script (a
 * restarted or flushed Redis): rkb_eos_load, then send the same call again. */
bool rkb_eos_error_is_noscript(const char *msg);

/* The offset one GET (or MGET element) of key's offset key replied: -1 for none. Returns
 * RKB_REDIS_OK, or an error code with errstr (an error reply, or a value that is not an
 * offset, quoted). */
int rkb_eos_parse_offset(const redisReply *reply, const char *key, int64_t *offset, char *errstr,
                         size_t errstr_size);

/* Reads the stored next offsets of partitions (pipelined GETs, one per partition, so keys in
 * different Redis Cluster slots are fine). offsets[i] = -1 where none is
 * stored. Returns RKB_REDIS_OK or an error code with errstr. */
int rkb_eos_read_offsets(rkb_redis_t *redis, const char *ns, const char *const *topics,
                         const int32_t *partitions, size_t cnt, int64_t *offsets, char *errstr,
                         size_t errstr_size);

#endif
