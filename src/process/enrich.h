/*
 * enrich.h — enrichment: each record joined with reference data read from Redis (e.g. a
 * transaction with its user's profile before a fraud check). A step of the sink, between
 * conversion (convert/) and writing (sink/writer.c); see sink.c's enrich_batch.
 *
 * For each record (its value must be a JSON object):
 *   1. the reference key is enrich.key expanded for the record (a template, tmpl.h);
 *   2. the reference data is read with HGETALL (HASH: an object of string fields), GET (STRING:
 *      JSON text is parsed, any other text becomes a JSON string) or JSON.GET (JSON, RedisJSON);
 *   3. it is merged into the value: with enrich.field, as that one member (replacing a member
 *      of that name); without, its members at the top level (replacing members of the same
 *      name), which needs the reference data to be a JSON object;
 *   4. the merged object becomes the record's value (rkb_record_set_value_json): whatever is
 *      written to Redis or produced after this step, whole-value writes included, is the
 *      enriched record, as compact JSON (a Connect envelope's payload, without the envelope).
 * A reference key that does not exist is a miss: the record passes unchanged (pass), gets
 * enrich.default merged the same way (default), or is an error (dead-letter: the sink treats it
 * as a record that cannot be written, per errors.tolerance). Tombstones pass unchanged with no
 * lookup. Errors that belong to one record (a value that is not a JSON object, a template that
 * cannot be expanded, a reference key of the wrong type, a top-level merge of something that is
 * not an object, a dead-letter miss) are reported per record; the rest of the batch goes on.
 *
 * Round trips: one pipeline per batch reads every distinct reference key that the cache cannot
 * answer (records sharing a key share one read). The cache (enrich.cache.max.entries > 0) is
 * per handle: up to that many keys, hits and misses alike, each used for enrich.cache.ttl.ms
 * after it was read, least recently used evicted first. A change in Redis is seen after at most
 * the TTL.
 *
 * @locality: one thread owns a handle (a sink task's), with the records and the Redis
 * connection it is given.
 */
#ifndef RKB_PROCESS_ENRICH_H
#define RKB_PROCESS_ENRICH_H

#include "config/config.h"
#include "record/record.h"
#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    RKB_ENRICH_HASH = 0, /* HGETALL */
    RKB_ENRICH_STRING,   /* GET */
    RKB_ENRICH_JSON,     /* JSON.GET (RedisJSON) */
} rkb_enrich_lookup_t;

typedef enum {
    RKB_ENRICH_MISS_PASS = 0,    /* the record goes on unchanged */
    RKB_ENRICH_MISS_DEFAULT,     /* default_json is merged instead */
    RKB_ENRICH_MISS_DEAD_LETTER, /* the record is an error (the sink's errors.* path) */
} rkb_enrich_miss_t;

typedef struct rkb_enrich_conf_s {
    const char *key_template; /* enrich.key; NULL or "": no enrichment */
    rkb_enrich_lookup_t lookup;
    const char *field;        /* enrich.field; NULL or "": merge at the top level */
    rkb_enrich_miss_t on_miss;
    const char *default_json; /* enrich.default: JSON text */
    int64_t cache_max_entries; /* 0: no cache */
    int64_t cache_ttl_ms;
} rkb_enrich_conf_t;

/* Fills ec from a connector config (strings borrowed from conf). */
void rkb_enrich_conf_from_config(const rkb_config_t *conf, rkb_enrich_conf_t *ec);

/* Checks the enrich.* keys and how they fit with the rest of a sink config: enrich.key must
 * parse, enrich.default must be JSON (an object when merged at the top level),
 * enrich.on.miss=dead-letter needs errors.tolerance=all and a dead-letter topic,
 * enrich.output.topic needs enrich.key, redis.type=NONE needs enrich.output.topic. Adds one
 * "ORIGIN: key: why" line per problem to errs; returns how many. */
int rkb_enrich_validate(const rkb_config_t *conf, rkb_errors_t *errs);

typedef struct rkb_enrich_s rkb_enrich_t;

/* Compiles ec (the template parsed, the default parsed). Returns NULL with errstr naming the
 * config key. Copies what it needs. */
rkb_enrich_t *rkb_enrich_new(const rkb_enrich_conf_t *ec, char *errstr, size_t errstr_size);
void rkb_enrich_destroy(rkb_enrich_t *e); /* NULL is safe */

/* The module command the lookups need ("JSON.GET"), or NULL when they use core commands: the
 * sink checks at connect that Redis knows it. */
const char *rkb_enrich_module_command(const rkb_enrich_t *e);

/* Called for each record of a batch that cannot be enriched, with why (the caller adds the
 * record's topic, partition and offset). */
typedef void(rkb_enrich_error_cb_t)(rkb_record_t *rec, const char *why, void *opaque);

/*
 * Enriches recs[0..cnt-1] (converted records, in the batch's order): cache first, then one
 * pipeline on redis for the distinct keys left. now_ms is the clock the cache TTL runs on.
 * Returns RKB_REDIS_OK when every record is enriched or was given to on_error; or, with errstr
 * and no record changed and no error reported, RKB_REDIS_ERR_IO when Redis could not answer
 * (connection failure, or a transient error reply such as LOADING: retry the batch later).
 */
int rkb_enrich_batch(rkb_enrich_t *e, rkb_redis_t *redis, rkb_record_t *const *recs, size_t cnt,
                     int64_t now_ms, rkb_enrich_error_cb_t *on_error, void *opaque, char *errstr,
                     size_t errstr_size);

/* Counters since creation; updated by rkb_enrich_batch. */
typedef struct rkb_enrich_stats_s {
    uint64_t lookups;    /* reference keys read from Redis */
    uint64_t cache_hits; /* records answered by the cache */
    uint64_t misses;     /* records whose reference key did not exist */
} rkb_enrich_stats_t;

const rkb_enrich_stats_t *rkb_enrich_stats(const rkb_enrich_t *e);

#endif
