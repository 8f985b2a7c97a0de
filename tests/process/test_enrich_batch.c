/*
 * test_enrich_batch.c — process/enrich.h driven directly against a real redis-server: the
 * cache's bookkeeping under heavy eviction compared with a reference LRU model (every record
 * gets its own key's data, lookups and hits counted exactly, duplicate keys of a batch read
 * once), and a batch whose lookups fail (Redis gone) leaves every record as it was.
 */
#include "harness.h"
#include "record_fixture.h"

#include "convert/convert.h"
#include "process/enrich.h"
#include "redis/redis.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static h_redis_t *redis;

static int setup(void **state) {
    redis = h_redis_start(NULL);
    return 0;
}

static int teardown(void **state) {
    h_redis_stop(redis);
    return 0;
}

static rkb_redis_t *connect_redis(void) {
    rkb_redis_conf_t rc;
    char why[256];
    rkb_redis_conf_init(&rc);
    assert_int_equal(rkb_redis_conf_from_uri(&rc, h_redis_uri(redis), why, sizeof(why)), 0);
    rkb_redis_t *r = rkb_redis_new(&rc, "test");
    rkb_redis_conf_clear(&rc);
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    return r;
}

static int errors_seen;
static void on_error(rkb_record_t *rec, const char *why, void *opaque) {
    errors_seen++;
    fprintf(stderr, "error for offset %lld: %s\n", (long long)rec->offset, why);
}

/* A reference LRU (most recent first) over key numbers. */
typedef struct {
    int keys[64];
    int cnt, max;
} model_t;

static int model_find(const model_t *m, int key) {
    for (int i = 0; i < m->cnt; i++)
        if (m->keys[i] == key)
            return i;
    return -1;
}

static void model_front(model_t *m, int at, int key) {
    memmove(&m->keys[1], &m->keys[0], (size_t)at * sizeof(int));
    m->keys[0] = key;
}

static void model_put(model_t *m, int key) {
    if (m->cnt < m->max)
        m->cnt++;
    model_front(m, m->cnt - 1, key); /* the last one (LRU) falls off when full */
}

enum { KEYS = 3000, BATCHES = 300, PER_BATCH = 100, CACHE = 48 };

/* Random keys (skewed so the cache both hits and evicts), 1 in 7 of them missing in Redis. */
static void test_cache_against_model(void **state) {
    freeReplyObject(h_redis_cmd(redis, "EVAL %s 0",
                                "for k = 0, 2999 do if k % 7 ~= 0 then "
                                "redis.call('SET', 'ek:' .. k, 'v' .. k) end end return 1"));
    rkb_enrich_conf_t ec = {
        .key_template = "ek:${value.k}",
        .lookup = RKB_ENRICH_STRING,
        .field = "ref",
        .on_miss = RKB_ENRICH_MISS_PASS,
        .default_json = "{}",
        .cache_max_entries = CACHE,
        .cache_ttl_ms = 1000000,
    };
    char why[512];
    rkb_enrich_t *e = rkb_enrich_new(&ec, why, sizeof(why));
    assert_non_null(e);
    assert_null(rkb_enrich_module_command(e));
    rkb_redis_t *r = connect_redis();

    model_t model = {.max = CACHE};
    uint64_t lookups = 0, hits = 0, misses = 0;
    uint64_t rng = 88172645463325252ULL;
    static rkb_record_t recs[PER_BATCH];
    static char values[PER_BATCH][32];
    rkb_record_t *ptrs[PER_BATCH];
    int keys[PER_BATCH];
    for (int b = 0; b < BATCHES; b++) {
        int batch_lookups[PER_BATCH], batch_lookup_cnt = 0;
        for (int i = 0; i < PER_BATCH; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            /* Half of the records from 60 hot keys, half from all. */
            keys[i] = (int)(rng % 2 ? (rng >> 8) % 60 : (rng >> 8) % KEYS);
            snprintf(values[i], sizeof(values[i]), "{\"k\":%d}", keys[i]);
            h_record_make(&recs[i], "key", values[i]);
            recs[i].offset = b * PER_BATCH + i;
            ptrs[i] = &recs[i];
            /* The model: cache first, then one lookup per distinct key of the batch. */
            int at = model_find(&model, keys[i]);
            if (at >= 0) {
                hits++;
                model_front(&model, at, keys[i]);
            } else {
                bool pending = false;
                for (int j = 0; j < batch_lookup_cnt && !pending; j++)
                    pending = batch_lookups[j] == keys[i];
                if (!pending)
                    batch_lookups[batch_lookup_cnt++] = keys[i];
            }
            misses += keys[i] % 7 == 0;
        }
        lookups += (uint64_t)batch_lookup_cnt;
        for (int j = 0; j < batch_lookup_cnt; j++)
            model_put(&model, batch_lookups[j]);

        assert_int_equal(rkb_enrich_batch(e, r, ptrs, PER_BATCH, 0, on_error, NULL, why,
                                          sizeof(why)),
                         RKB_REDIS_OK);
        for (int i = 0; i < PER_BATCH; i++) {
            size_t len;
            const char *bytes = rkb_record_value_bytes(&recs[i], &len);
            char expected[64];
            if (keys[i] % 7 == 0)
                snprintf(expected, sizeof(expected), "{\"k\":%d}", keys[i]); /* unchanged */
            else
                snprintf(expected, sizeof(expected), "{\"k\":%d,\"ref\":\"v%d\"}", keys[i],
                         keys[i]);
            if (len != strlen(expected) || memcmp(bytes, expected, len))
                fail_msg("batch %d record %d: got %.*s, expected %s", b, i, (int)len, bytes,
                         expected);
            assert_int_equal(recs[i].value_replaced, keys[i] % 7 != 0);
            rkb_record_clear(&recs[i]);
        }
    }
    const rkb_enrich_stats_t *stats = rkb_enrich_stats(e);
    assert_int_equal(errors_seen, 0);
    assert_int_equal(stats->lookups, lookups);
    assert_int_equal(stats->cache_hits, hits);
    assert_int_equal(stats->misses, misses);
    assert_true(hits > 1000 && lookups > 1000); /* both paths taken many times */

    rkb_redis_destroy(r);
    rkb_enrich_destroy(e);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

/* Redis gone: RKB_REDIS_ERR_IO, no record changed, no error reported, nothing counted; the
 * same batch succeeds once Redis is back. */
static void test_failed_lookups_leave_batch_alone(void **state) {
    h_redis_int(redis, "HSET eh:1 a b");
    rkb_enrich_conf_t ec = {
        .key_template = "eh:${value.k}",
        .lookup = RKB_ENRICH_HASH,
        .on_miss = RKB_ENRICH_MISS_DEAD_LETTER,
        .default_json = "{}",
    };
    char why[512];
    rkb_enrich_t *e = rkb_enrich_new(&ec, why, sizeof(why));
    assert_non_null(e);
    rkb_redis_t *r = connect_redis();
    rkb_record_t recs[2];
    h_record_make(&recs[0], "a", "{\"k\":1}");
    h_record_make(&recs[1], "b", "{\"k\":2}"); /* a miss: dead-letter */
    rkb_record_t *ptrs[] = {&recs[0], &recs[1]};

    h_redis_kill(redis);
    errors_seen = 0;
    assert_int_equal(rkb_enrich_batch(e, r, ptrs, 2, 0, on_error, NULL, why, sizeof(why)),
                     RKB_REDIS_ERR_IO);
    assert_int_equal(errors_seen, 0);
    assert_int_equal(recs[0].value_replaced, 0);
    assert_int_equal(rkb_enrich_stats(e)->lookups, 0);
    assert_int_equal(rkb_enrich_stats(e)->misses, 0);

    h_redis_restart(redis);
    h_redis_int(redis, "HSET eh:1 a b");
    assert_int_equal(rkb_redis_connect(r, why, sizeof(why)), RKB_REDIS_OK);
    assert_int_equal(rkb_enrich_batch(e, r, ptrs, 2, 0, on_error, NULL, why, sizeof(why)),
                     RKB_REDIS_OK);
    assert_int_equal(errors_seen, 1); /* the dead-letter miss */
    size_t len;
    const char *bytes = rkb_record_value_bytes(&recs[0], &len);
    assert_int_equal(len, strlen("{\"k\":1,\"a\":\"b\"}"));
    assert_memory_equal(bytes, "{\"k\":1,\"a\":\"b\"}", len);
    assert_int_equal(rkb_enrich_stats(e)->lookups, 2);
    rkb_record_clear(&recs[0]);
    rkb_record_clear(&recs[1]);
    rkb_redis_destroy(r);
    rkb_enrich_destroy(e);
    freeReplyObject(h_redis_cmd(redis, "FLUSHALL"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_against_model),
        cmocka_unit_test(test_failed_lookups_leave_batch_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
