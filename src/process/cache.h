/*
 * cache.h — cache maintenance from change events (redis.type=CACHE): each event upserts or
 * deletes one cache entry through a versioned compare-and-set, so that an older event never
 * overwrites a newer one and a delete is not undone by a late upsert (SEMANTICS.md §8.2).
 *
 * The compare-and-set is src/process/cache.lua. The sink's writer builds the entry's key and
 * asks this module for the command that applies a record:
 *   at-least-once   EVALSHA <sha> 1 key version op ttl tombstone_ttl field value ...
 *                   (the script of its own; EVAL with the text until rkb_cache_load succeeded)
 *   exactly-once    RKB.CACHE key version op ttl tombstone_ttl field value ...
 *                   (a pseudo-command of the exactly-once script, sink/eos.h)
 * Both reply 1 (applied) or 0 (stale: not newer than the entry; counted, not an error).
 *
 * What an event means, from its JSON value:
 *   version    redis.cache.version (a template, e.g. ${value.source.lsn}): integers joined by ':'
 *   op         the field at redis.cache.op.field; one of redis.cache.delete.ops deletes,
 *              anything else (or no such field) upserts; redis.cache.mode=invalidate makes
 *              every event a delete
 *   state      the field at redis.cache.value.field (Debezium: after), or the whole value;
 *              layout fields: a JSON object's members become hash fields (others: field val);
 *              layout value: the state's JSON text in field val
 * A Kafka tombstone (null value) carries no version and changes nothing (Debezium sends the
 * delete event, which does, before it).
 *
 * Applications' cache-aside fills go through the same script (rkb_cache_script, printed by
 * `rkbridge cache-script`) with the version read from the database, so a fill that read the
 * database before a change loses to that change's entry or tombstone (SEMANTICS.md §8.1).
 */
#ifndef RKB_PROCESS_CACHE_H
#define RKB_PROCESS_CACHE_H

#include "record/record.h"
#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_cache_conf_s {
    const char *version;       /* redis.cache.version template */
    const char *op_field;      /* redis.cache.op.field: dotted path, "" for none */
    const char *delete_ops;    /* redis.cache.delete.ops: comma-separated */
    const char *value_field;   /* redis.cache.value.field: dotted path, "" for the whole value */
    bool layout_value;         /* redis.cache.layout=value */
    bool invalidate;           /* redis.cache.mode=invalidate */
    int64_t ttl_seconds;       /* redis.key.ttl of a live entry; 0 none */
    int64_t tombstone_ttl_seconds;
    bool exactly_once;         /* encode RKB.CACHE for the exactly-once script */
} rkb_cache_conf_t;

typedef struct rkb_cache_s rkb_cache_t;

/* Compiles cc (copied). Returns NULL with errstr naming the config key. */
rkb_cache_t *rkb_cache_new(const rkb_cache_conf_t *cc, char *errstr, size_t errstr_size);
void rkb_cache_destroy(rkb_cache_t *cache); /* NULL is safe */

/* Appends the command that applies rec to the entry at key (one command; returns 1), or nothing
 * for a Kafka tombstone (returns 0). A record that cannot be applied (value not JSON, version
 * missing or not a version, state not found) returns -1 with errstr. */
int rkb_cache_encode(rkb_cache_t *cache, rkb_record_t *rec, const char *key, size_t key_len,
                     rkb_cmds_t *cmds, char *errstr, size_t errstr_size);

/* The standalone script's text (NUL-terminated; static). */
const char *rkb_cache_script(size_t *len);

/* SCRIPT LOADs the standalone script (after every connect). Returns RKB_REDIS_OK or an error
 * code with errstr. @locality any thread; the SHA is process-wide. */
int rkb_cache_load(rkb_redis_t *redis, char *errstr, size_t errstr_size);

/* True when reply is a cache command's "stale" answer (integer 0). */
bool rkb_cache_reply_is_stale(const redisReply *reply);

#endif
