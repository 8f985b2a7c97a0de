/*
 * writer.h — turns one record into the Redis commands that apply it (the sink's data mapping).
 *
 * Pure: no I/O. The sink builds one writer per task from the connector config, encodes each
 * record of a batch into a shared rkb_cmds_t, and sends the batch through redis/.
 *
 * redis.type → commands (value = the record value, member/score/key from templates):
 *   STRING      SET key value [EX ttl]                       tombstone: DEL key
 *   HASH        HSET key f v ... (JSON object fields)          tombstone: DEL key
 *   JSON        JSON.SET key $ value                           tombstone: DEL key
 *   STREAM      XADD key [MAXLEN ~ n] * f v ...                tombstone: nothing (append-only)
 *   LIST        RPUSH|LPUSH key member                         tombstone: LREM key 0 member
 *   SET         SADD key member                                tombstone: SREM key member
 *   ZSET        ZADD key score member                          tombstone: ZREM key member
 *   TIMESERIES  TS.ADD key timestamp value                     tombstone: TS.DEL key ts ts
 *   PUBSUB      PUBLISH channel value                          tombstone: nothing
 *   COUNTER     INCRBY key n | INCRBYFLOAT key x               tombstone: nothing
 *               (with redis.hash.field: HINCRBY / HINCRBYFLOAT key field n)
 *   CACHE       a versioned compare-and-set (process/cache.h)  tombstone: nothing
 *   NONE        nothing                                        tombstone: nothing
 * With a TTL (config or the record's "redis.key.ttl" header, header wins) the write is followed
 * by EXPIRE key ttl inside MULTI/EXEC so both land together (STRING uses SET ... EX instead).
 * Key: redis.key.template if set; else STRING/HASH/JSON use keyspace + separator + ${key}
 * (the raw key when keyspace is empty), the other types use the keyspace alone.
 */
#ifndef RKB_SINK_WRITER_H
#define RKB_SINK_WRITER_H

#include "record/record.h"
#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RKB_TYPE_STRING = 0,
    RKB_TYPE_HASH,
    RKB_TYPE_JSON,
    RKB_TYPE_STREAM,
    RKB_TYPE_LIST,
    RKB_TYPE_SET,
    RKB_TYPE_ZSET,
    RKB_TYPE_TIMESERIES,
    RKB_TYPE_PUBSUB,
    RKB_TYPE_COUNTER,
    RKB_TYPE_CACHE,  /* a versioned cache entry (process/cache.h) */
    RKB_TYPE_WINDOW, /* a windowed aggregation (process/window.h); the sink encodes it */
    RKB_TYPE_NONE,   /* nothing is written (enrichment to a Kafka topic only) */
} rkb_redis_type_t;

/* "STRING", "HASH", ... (case-insensitive). Returns 0 or -1. */
int rkb_redis_type_parse(const char *name, rkb_redis_type_t *type);
const char *rkb_redis_type_name(rkb_redis_type_t type);

/* The header that overrides redis.key.ttl per record (redis-kafka-connect's name). */
#define RKB_TTL_HEADER "redis.key.ttl"

typedef struct rkb_writer_conf_s {
    rkb_redis_type_t type;
    const char *keyspace;     /* redis.keyspace template; "" = the raw record key */
    const char *separator;    /* redis.separator */
    const char *key_template; /* redis.key.template; NULL or "" = the keyspace rule above */
    const char *member;       /* redis.member template (LIST/SET/ZSET), e.g. "${key}" */
    const char *score;        /* redis.score template (ZSET score, TIMESERIES value) */
    const char *ts_timestamp; /* redis.timeseries.timestamp template (TIMESERIES) */
    const char *increment;    /* redis.increment template (COUNTER) */
    const char *hash_field;   /* redis.hash.field template (COUNTER); NULL or "" = INCRBY */
    int64_t value_max_bytes;  /* a larger value is refused (data error); 0 = no limit */
    bool push_left;           /* LIST: LPUSH instead of RPUSH */
    int64_t stream_maxlen;    /* STREAM: MAXLEN ~ n when > 0 */
    int64_t ttl_seconds;      /* > 0: TTL; otherwise none */
    bool in_transaction;      /* the caller wraps the batch in MULTI/EXEC: no inner MULTI */
    const struct rkb_cache_conf_s *cache; /* CACHE: the entry's rules (process/cache.h); the
                                           * writer builds the key and sets ttl_seconds */
} rkb_writer_conf_t;

typedef struct rkb_writer_s rkb_writer_t;

/* Checks and compiles wc (templates parsed once). Returns NULL with errstr naming the config
 * key ("redis.keyspace: unknown token '${tpoic}' at column 3"). Copies what it needs. */
rkb_writer_t *rkb_writer_new(const rkb_writer_conf_t *wc, char *errstr, size_t errstr_size);
void rkb_writer_destroy(rkb_writer_t *w); /* NULL is safe */

/* Appends the commands that apply rec to cmds and returns how many (0: nothing to do, e.g. a
 * tombstone on a STREAM). A record that cannot be written (not JSON where JSON is needed,
 * missing template field, score not a number, null key where a key is needed, bad TTL header)
 * returns -1 with errstr saying why, and cmds is left as it was. */
int rkb_writer_encode(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, char *errstr,
                      size_t errstr_size);

#endif
