/*
 * test_eos.c — the exactly-once apply script (sink/eos) against a real redis-server: calls built
 * from hand-made commands, sent the way the sink sends them (rkb_redis_pipeline). Replays and
 * zombie writers (SEMANTICS.md §2.5 E-2 and the §2.4 observed sequence), a bad record inside a
 * batch (E-7), every check of the script leaving the record unwritten, records without
 * commands, namespaces, offsets read back at assignment, reply parsing, NOSCRIPT after SCRIPT
 * FLUSH, offsets past 2^50, and a 1000-record batch with TTLs as the writer encodes it.
 *
 * One server serves the whole file; every test uses its own keys. The first test runs before
 * any SCRIPT LOAD (the EVAL fallback), the others after.
 */
#include "harness.h"
#include "sink/eos.h"
#include "sink/writer.h"
#include "util/util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static h_redis_t *server;
static rkb_redis_t *redis; /* the module's own connection, as the sink has it */

static int group_setup(void **state) {
    (void)state;
    server = h_redis_start(NULL);
    rkb_redis_conf_t conf;
    char errstr[512];
    rkb_redis_conf_init(&conf);
    if (rkb_redis_conf_from_uri(&conf, h_redis_uri(server), errstr, sizeof(errstr)))
        fail_msg("uri: %s", errstr);
    redis = rkb_redis_new(&conf, "test");
    rkb_redis_conf_clear(&conf);
    if (rkb_redis_connect(redis, errstr, sizeof(errstr)))
        fail_msg("connect: %s", errstr);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    rkb_redis_destroy(redis);
    h_redis_stop(server);
    return 0;
}

/* Runs a command on the harness's client and drops the reply. */
#define CMD(...) freeReplyObject(h_redis_cmd(server, __VA_ARGS__))

static void load(void) {
    char errstr[512] = "";
    if (rkb_eos_load(redis, errstr, sizeof(errstr)))
        fail_msg("rkb_eos_load: %s", errstr);
}

/* Checks a string from h_redis_str (NULL: nil) and frees it. */
static void expect_str(char *got, const char *want) {
    if (!want) {
        if (got)
            fail_msg("got '%s', want nil", got);
        return;
    }
    if (!got)
        fail_msg("got nil, want '%s'", want);
    assert_string_equal(got, want);
    free(got);
}

/* ---- calls from hand-made commands -------------------------------------------------------- */

/* The records of one call: their commands in cmds, as the writer would have left them. */
typedef struct {
    rkb_cmds_t *cmds;
    rkb_eos_call_t *call;
} batch_t;

static void batch_init(batch_t *batch, const char *offset_key) {
    batch->cmds = rkb_cmds_new();
    batch->call = rkb_eos_call_new();
    rkb_eos_call_begin(batch->call, offset_key);
}

static void batch_free(batch_t *batch) {
    rkb_cmds_destroy(batch->cmds);
    rkb_eos_call_destroy(batch->call);
}

/* Adds a record at offset whose commands are the NULL-terminated list of space-separated
 * words ("HINCRBY cnt u1 1"); no command at all is a record with nothing to write. */
static void batch_record(batch_t *batch, int64_t offset, ...) {
    size_t first = rkb_cmds_count(batch->cmds);
    va_list ap;
    va_start(ap, offset);
    const char *command;
    while ((command = va_arg(ap, const char *))) {
        rkb_cmds_begin(batch->cmds);
        for (const char *word = command; *word;) {
            size_t len = strcspn(word, " ");
            rkb_cmds_arg(batch->cmds, word, len);
            word += len + (word[len] == ' ');
        }
        rkb_cmds_end(batch->cmds);
    }
    va_end(ap);
    rkb_eos_call_add(batch->call, offset, batch->cmds, first,
                     (int)(rkb_cmds_count(batch->cmds) - first));
}

/* Ends the call, sends it, and returns rkb_eos_parse_reply's result (errstr filled on -1). */
static int batch_send(batch_t *batch, rkb_eos_result_t *result, char *errstr, size_t errstr_size) {
    rkb_cmds_t *out = rkb_cmds_new();
    rkb_eos_call_end(batch->call, out);
    assert_int_equal(rkb_cmds_count(out), 1);
    redisReply *reply = NULL;
    if (rkb_redis_pipeline(redis, out, &reply, errstr, errstr_size))
        fail_msg("pipeline: %s", errstr);
    int rc = rkb_eos_parse_reply(reply, result, errstr, errstr_size);
    rkb_redis_replies_free(&reply, 1);
    rkb_cmds_destroy(out);
    return rc;
}

/* Sends the batch, which must get a well-formed reply, and frees it. */
static rkb_eos_result_t batch_apply(batch_t *batch) {
    rkb_eos_result_t result;
    char errstr[512] = "";
    if (batch_send(batch, &result, errstr, sizeof(errstr)))
        fail_msg("apply: %s", errstr);
    batch_free(batch);
    return result;
}

static void expect_result(const rkb_eos_result_t *result, int64_t applied, int64_t next_offset,
                          int64_t bad_offset, const char *bad_reason) {
    assert_int_equal(result->applied, applied);
    assert_int_equal(result->next_offset, next_offset);
    assert_int_equal(result->bad_offset, bad_offset);
    assert_string_equal(result->bad_reason, bad_reason);
}

/* One call of the counter records [from, to] on offset key. */
static rkb_eos_result_t apply_counter(const char *offset_key, int64_t from, int64_t to) {
    batch_t batch;
    batch_init(&batch, offset_key);
    for (int64_t offset = from; offset <= to; offset++)
        batch_record(&batch, offset, "HINCRBY cnt:{t0} u1 1", NULL);
    return batch_apply(&batch);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* Before any SCRIPT LOAD the call carries the script (EVAL) and works the same. */
static void test_eval_before_load(void **state) {
    batch_t batch;
    batch_init(&batch, "rkbridge:offset:{early:0}:n");
    batch_record(&batch, 0, "SET early:{early:0} 1", NULL);
    rkb_cmds_t *out = rkb_cmds_new();
    rkb_eos_call_end(batch.call, out);
    assert_string_equal(rkb_cmds_argv(out, 0, 0, NULL), "EVAL");
    rkb_cmds_destroy(out);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 1, 1, -1, "");
    expect_str(h_redis_str(server, "GET early:{early:0}"), "1");

    load();
    batch_init(&batch, "x");
    out = rkb_cmds_new();
    rkb_eos_call_end(batch.call, out);
    assert_string_equal(rkb_cmds_argv(out, 0, 0, NULL), "EVALSHA");
    assert_int_equal(strlen(rkb_cmds_argv(out, 0, 1, NULL)), 40);
    rkb_cmds_destroy(out);
    batch_free(&batch);
}

static void test_offset_key(void **state) {
    char key[128];
    assert_string_equal(rkb_eos_offset_key("conn1", "orders", 3, key, sizeof(key)),
                        "rkbridge:offset:{orders:3}:conn1");
    char small[20];
    assert_string_equal(rkb_eos_offset_key("conn1", "orders", 3, small, sizeof(small)),
                        "rkbridge:offset:{or");
}

/* The EVALSHA a call becomes: KEYS = offset key + distinct data keys (not PUBLISH's channel),
 * ARGV = record count, then offset, command count, argc and arguments per command. */
static void test_call_layout(void **state) {
    batch_t batch;
    batch_init(&batch, "OK");
    batch_record(&batch, 7, "HINCRBY cnt u1 1", "EXPIRE cnt 60", NULL);
    batch_record(&batch, 8, NULL);
    batch_record(&batch, 9, "PUBLISH chan hello", "set Other v", "hset cnt f v", NULL);
    rkb_cmds_t *out = rkb_cmds_new();
    rkb_eos_call_end(batch.call, out);
    static const char *const want[] = {
        "EVALSHA", NULL,  "3", "OK",      "cnt",  "Other", "3",                               /* */
        "7",       "2",   "4", "HINCRBY", "cnt",  "u1",    "1", "3",   "EXPIRE", "cnt", "60", /* */
        "8",       "0",                                                                       /* */
        "9",       "3",   "3", "PUBLISH", "chan", "hello", "3", "set", "Other",  "v",   "4",
        "hset",    "cnt", "f", "v"};
    assert_int_equal(rkb_cmds_argc(out, 0), (int)RKB_ARRAY_SIZE(want));
    for (size_t j = 0; j < RKB_ARRAY_SIZE(want); j++) {
        if (want[j])
            assert_string_equal(rkb_cmds_argv(out, 0, (int)j, NULL), want[j]);
    }
    rkb_cmds_destroy(out);

    /* Begin starts over; many distinct keys (the table grows) stay distinct and in order. */
    rkb_eos_call_begin(batch.call, "OK2");
    for (int i = 0; i < 300; i++) {
        char command[64];
        snprintf(command, sizeof(command), "SET key%d v", i % 150);
        batch_record(&batch, i, command, NULL);
    }
    out = rkb_cmds_new();
    rkb_eos_call_end(batch.call, out);
    assert_string_equal(rkb_cmds_argv(out, 0, 2, NULL), "151");
    assert_string_equal(rkb_cmds_argv(out, 0, 3, NULL), "OK2");
    for (int i = 0; i < 150; i++) {
        char key[16];
        snprintf(key, sizeof(key), "key%d", i);
        assert_string_equal(rkb_cmds_argv(out, 0, 4 + i, NULL), key);
    }
    assert_string_equal(rkb_cmds_argv(out, 0, 154, NULL), "300");
    rkb_cmds_destroy(out);
    batch_free(&batch);
}

/* E-2: offsets 0..9 applied, then a zombie call with 5..12 applies only 10, 11, 12. */
static void test_e2_zombie_replay(void **state) {
    const char *offset_key = "rkbridge:offset:{t0:0}:e2";
    CMD("DEL cnt:{t0}");
    rkb_eos_result_t result = apply_counter(offset_key, 0, 9);
    expect_result(&result, 10, 10, -1, "");
    expect_str(h_redis_str(server, "HGET cnt:{t0} u1"), "10");

    result = apply_counter(offset_key, 5, 12);
    expect_result(&result, 3, 13, -1, "");
    expect_str(h_redis_str(server, "HGET cnt:{t0} u1"), "13");
    expect_str(h_redis_str(server, "GET %s", offset_key), "13");

    /* All of it again: nothing applied, nothing stored. */
    result = apply_counter(offset_key, 0, 12);
    expect_result(&result, 0, 13, -1, "");
    expect_str(h_redis_str(server, "HGET cnt:{t0} u1"), "13");
}

/* SEMANTICS §2.4 observed: offsets 0,1,2,1,2,3 one per call apply 1,1,1,0,0,1. */
static void test_observed_sequence(void **state) {
    const char *offset_key = "rkbridge:offset:{t0:0}:observed";
    static const int64_t offsets[] = {0, 1, 2, 1, 2, 3};
    static const int64_t applied[] = {1, 1, 1, 0, 0, 1};
    CMD("DEL cnt:{t0}");
    for (size_t i = 0; i < RKB_ARRAY_SIZE(offsets); i++) {
        rkb_eos_result_t result = apply_counter(offset_key, offsets[i], offsets[i]);
        assert_int_equal(result.applied, applied[i]);
    }
    expect_str(h_redis_str(server, "HGET cnt:{t0} u1"), "4");
    expect_str(h_redis_str(server, "GET %s", offset_key), "4");
}

/* E-7: record 2 of 0..4 targets a list with HSET. 0 and 1 are applied, nothing of 2, 3 or 4,
 * and the stored offset is 2; once the key is fixed the retry from 2 applies the rest. */
static void test_e7_bad_record_in_batch(void **state) {
    const char *offset_key = "rkbridge:offset:{e7:0}:n";
    CMD("RPUSH e7:{e7:0}:list x");
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "HSET e7:{e7:0}:h0 f v", NULL);
    batch_record(&batch, 1, "HSET e7:{e7:0}:h1 f v", NULL);
    batch_record(&batch, 2, "SET e7:{e7:0}:mark2 x", "HSET e7:{e7:0}:list f v", NULL);
    batch_record(&batch, 3, "HSET e7:{e7:0}:h3 f v", NULL);
    batch_record(&batch, 4, "HSET e7:{e7:0}:h4 f v", NULL);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 2, 2, 2,
                  "WRONGTYPE key 'e7:{e7:0}:list' holds a list, HSET needs a hash");
    assert_int_equal(h_redis_int(server, "EXISTS e7:{e7:0}:h0 e7:{e7:0}:h1"), 2);
    assert_int_equal(h_redis_int(server, "EXISTS e7:{e7:0}:mark2 e7:{e7:0}:h3 e7:{e7:0}:h4"), 0);
    expect_str(h_redis_str(server, "GET %s", offset_key), "2");
    assert_int_equal(h_redis_int(server, "LLEN e7:{e7:0}:list"), 1);

    /* The sink dead-letters record 2 (an empty record in its place) and retries 2..4. */
    batch_init(&batch, offset_key);
    batch_record(&batch, 1, "HSET e7:{e7:0}:h1 g v", NULL); /* below next: skipped */
    batch_record(&batch, 2, NULL);
    batch_record(&batch, 3, "HSET e7:{e7:0}:h3 f v", NULL);
    batch_record(&batch, 4, "HSET e7:{e7:0}:h4 f v", NULL);
    result = batch_apply(&batch);
    expect_result(&result, 3, 5, -1, "");
    assert_int_equal(h_redis_int(server, "EXISTS e7:{e7:0}:h3 e7:{e7:0}:h4"), 2);
    assert_int_equal(h_redis_int(server, "HEXISTS e7:{e7:0}:h1 g"), 0);
    assert_int_equal(h_redis_int(server, "EXISTS e7:{e7:0}:mark2"), 0);
}

/* One check of the script: setup commands put the key in place, then a record
 * [SET marker, command] must fail with reason and write nothing. */
typedef struct {
    const char *setup[2];
    const char *command;
    const char *reason;
} check_case_t;

static const check_case_t check_cases[] = {
    {{"RPUSH ck:{c}:k x"},
     "HSET ck:{c}:k f v",
     "WRONGTYPE key 'ck:{c}:k' holds a list, HSET needs a hash"},
    {{"RPUSH ck:{c}:k x"},
     "hset ck:{c}:k f v",
     "WRONGTYPE key 'ck:{c}:k' holds a list, HSET needs a hash"},
    {{"SET ck:{c}:k 1"},
     "HINCRBY ck:{c}:k f 1",
     "WRONGTYPE key 'ck:{c}:k' holds a string, HINCRBY needs a hash"},
    {{"HSET ck:{c}:k f abc"},
     "HINCRBY ck:{c}:k f 1",
     "field 'f' of key 'ck:{c}:k' holds 'abc', not an integer (HINCRBY)"},
    {{"HSET ck:{c}:k f 1.5"},
     "HINCRBY ck:{c}:k f 1",
     "field 'f' of key 'ck:{c}:k' holds '1.5', not an integer (HINCRBY)"},
    {{"HSET ck:{c}:k f 1"},
     "HINCRBY ck:{c}:k f 1.5",
     "increment '1.5' is not an integer (HINCRBY)"},
    {{"SADD ck:{c}:k m"},
     "HINCRBYFLOAT ck:{c}:k f 1.5",
     "WRONGTYPE key 'ck:{c}:k' holds a set, HINCRBYFLOAT needs a hash"},
    {{"HSET ck:{c}:k f abc"},
     "HINCRBYFLOAT ck:{c}:k f 1.5",
     "field 'f' of key 'ck:{c}:k' holds 'abc', not a number (HINCRBYFLOAT)"},
    {{"HSET ck:{c}:k f 1"},
     "HINCRBYFLOAT ck:{c}:k f x1",
     "increment 'x1' is not a number (HINCRBYFLOAT)"},
    {{"RPUSH ck:{c}:k x"},
     "INCRBY ck:{c}:k 1",
     "WRONGTYPE key 'ck:{c}:k' holds a list, INCRBY needs a string"},
    {{"SET ck:{c}:k abc"},
     "INCRBY ck:{c}:k 1",
     "key 'ck:{c}:k' holds 'abc', not an integer (INCRBY)"},
    /* Redis's integer rule, not Lua's: no leading zero, 64 bits. */
    {{"SET ck:{c}:k 01"},
     "INCRBY ck:{c}:k 1",
     "key 'ck:{c}:k' holds '01', not an integer (INCRBY)"},
    {{"SET ck:{c}:k 9223372036854775808"},
     "INCRBY ck:{c}:k 1",
     "key 'ck:{c}:k' holds '9223372036854775808', not an integer (INCRBY)"},
    {{"SET ck:{c}:k 1"}, "INCRBY ck:{c}:k 1e3", "increment '1e3' is not an integer (INCRBY)"},
    {{"SET ck:{c}:k abc"},
     "INCRBYFLOAT ck:{c}:k 1.5",
     "key 'ck:{c}:k' holds 'abc', not a number (INCRBYFLOAT)"},
    {{"SET ck:{c}:k inf"},
     "INCRBYFLOAT ck:{c}:k 1.5",
     "key 'ck:{c}:k' holds 'inf', not a number (INCRBYFLOAT)"},
    {{"HSET ck:{c}:k f v"},
     "INCRBYFLOAT ck:{c}:k 1.5",
     "WRONGTYPE key 'ck:{c}:k' holds a hash, INCRBYFLOAT needs a string"},
    {{"HSET ck:{c}:k f v"},
     "RPUSH ck:{c}:k m",
     "WRONGTYPE key 'ck:{c}:k' holds a hash, RPUSH needs a list"},
    {{"SET ck:{c}:k v"},
     "LPUSH ck:{c}:k m",
     "WRONGTYPE key 'ck:{c}:k' holds a string, LPUSH needs a list"},
    {{"SADD ck:{c}:k m"},
     "LREM ck:{c}:k 0 m",
     "WRONGTYPE key 'ck:{c}:k' holds a set, LREM needs a list"},
    {{"SET ck:{c}:k v"},
     "SADD ck:{c}:k m",
     "WRONGTYPE key 'ck:{c}:k' holds a string, SADD needs a set"},
    {{"ZADD ck:{c}:k 1 m"},
     "SREM ck:{c}:k m",
     "WRONGTYPE key 'ck:{c}:k' holds a sorted set, SREM needs a set"},
    {{"SADD ck:{c}:k m"},
     "ZADD ck:{c}:k 1 m",
     "WRONGTYPE key 'ck:{c}:k' holds a set, ZADD needs a sorted set"},
    {{NULL}, "ZADD ck:{c}:k abc m", "score 'abc' is not a number (ZADD)"},
    {{NULL}, "ZADD ck:{c}:k 1 m nan n", "score 'nan' is not a number (ZADD)"},
    {{"XADD ck:{c}:k * f v"},
     "ZREM ck:{c}:k m",
     "WRONGTYPE key 'ck:{c}:k' holds a stream, ZREM needs a sorted set"},
    {{"SET ck:{c}:k v"},
     "XADD ck:{c}:k * f v",
     "WRONGTYPE key 'ck:{c}:k' holds a string, XADD needs a stream"},
};

static void test_checks(void **state) {
    const char *offset_key = "rkbridge:offset:{c:0}:checks";
    CMD("SET %s 10", offset_key);
    for (size_t i = 0; i < RKB_ARRAY_SIZE(check_cases); i++) {
        const check_case_t *check = &check_cases[i];
        CMD("DEL ck:{c}:k ck:{c}:marker");
        for (size_t j = 0; j < RKB_ARRAY_SIZE(check->setup) && check->setup[j]; j++)
            CMD(check->setup[j]);
        redisReply *before = h_redis_cmd(server, "DUMP ck:{c}:k");

        batch_t batch;
        batch_init(&batch, offset_key);
        batch_record(&batch, 10, "SET ck:{c}:marker x", check->command, NULL);
        rkb_eos_result_t result = batch_apply(&batch);
        if (strcmp(result.bad_reason, check->reason))
            fail_msg("case %zu (%s): reason '%s', want '%s'", i, check->command, result.bad_reason,
                     check->reason);
        expect_result(&result, 0, 10, 10, check->reason);
        assert_int_equal(h_redis_int(server, "EXISTS ck:{c}:marker"), 0);
        redisReply *after = h_redis_cmd(server, "DUMP ck:{c}:k");
        assert_int_equal(after->type, before->type);
        assert_int_equal(after->len, before->len);
        if (after->len)
            assert_memory_equal(after->str, before->str, after->len);
        freeReplyObject(before);
        freeReplyObject(after);
    }
    expect_str(h_redis_str(server, "GET %s", offset_key), "10");
}

/* What the checks accept runs: a counter at the edges of Redis's rules, a fresh key. */
static void test_checks_pass(void **state) {
    const char *offset_key = "rkbridge:offset:{c:0}:pass";
    CMD("DEL ck:{c}:i ck:{c}:f ck:{c}:h ck:{c}:z");
    CMD("SET ck:{c}:i 9223372036854775806");
    CMD("SET ck:{c}:f 0.5");
    CMD("HSET ck:{c}:h n -5 x 1e2");
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "INCRBY ck:{c}:i 1", "HINCRBY ck:{c}:h n -10",
                 "HINCRBYFLOAT ck:{c}:h x 0.5", "INCRBYFLOAT ck:{c}:f 1e1", NULL);
    batch_record(&batch, 1, "ZADD ck:{c}:z inf m -2.5 n", "HINCRBY ck:{c}:h new 0", NULL);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 2, 2, -1, "");
    expect_str(h_redis_str(server, "GET ck:{c}:i"), "9223372036854775807");
    expect_str(h_redis_str(server, "HGET ck:{c}:h n"), "-15");
    expect_str(h_redis_str(server, "HGET ck:{c}:h x"), "100.5");
    expect_str(h_redis_str(server, "GET ck:{c}:f"), "10.5");
    expect_str(h_redis_str(server, "ZSCORE ck:{c}:z m"), "inf");
    expect_str(h_redis_str(server, "HGET ck:{c}:h new"), "0");
}

/* Failures the checks cannot see are caught when the command runs: the reason is Redis's error
 * first, and only then do earlier commands of that record stay applied (documented in eos.h).
 * The offset stays with the data. */
static void test_run_failures(void **state) {
    const char *offset_key = "rkbridge:offset:{r:0}:run";
    CMD("SET ru:{r}:max 9223372036854775807");
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "SET ru:{r}:a 1", NULL);
    batch_record(&batch, 1, "INCRBY ru:{r}:max 1", "SET ru:{r}:b 1", NULL);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 1, 1, 1,
                  "ERR increment or decrement would overflow (INCRBY 'ru:{r}:max')");
    assert_int_equal(h_redis_int(server, "EXISTS ru:{r}:a ru:{r}:b"), 1);
    assert_false(rkb_redis_error_is_transient(result.bad_reason));

    /* No RedisJSON in this server: JSON.SET fails when run, after the record's SET. */
    batch_init(&batch, offset_key);
    batch_record(&batch, 1, "SET ru:{r}:c 1", "JSON.SET ru:{r}:j $ {}", NULL);
    result = batch_apply(&batch);
    expect_result(&result, 0, 1, 1,
                  "ERR Unknown Redis command called from script (JSON.SET 'ru:{r}:j')");
    assert_int_equal(h_redis_int(server, "EXISTS ru:{r}:c"), 1);

    /* What scripts may not run at all, and a command without arguments. */
    batch_init(&batch, offset_key);
    batch_record(&batch, 1, "MULTI", NULL);
    result = batch_apply(&batch);
    expect_result(&result, 0, 1, 1, "ERR This Redis command is not allowed from script (MULTI)");
    expect_str(h_redis_str(server, "GET %s", offset_key), "1");
}

/* OOM (Redis refuses a script's first write) is transient either way, and nothing is written:
 * when the record's command is refused and the offset need not move, the reason starts with
 * OOM; when storing the offset is the first write, the script fails with OOM. */
static void test_run_oom(void **state) {
    const char *offset_key = "rkbridge:offset:{o:0}:oom";
    rkb_eos_result_t result;
    char errstr[512] = "";
    batch_t batch;

    CMD("SET %s 0", offset_key);
    CMD("CONFIG SET maxmemory 1");
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "SET oom:{o}:a 1", NULL);
    int rc = batch_send(&batch, &result, errstr, sizeof(errstr));
    batch_free(&batch);
    CMD("CONFIG SET maxmemory 0");
    if (rc)
        fail_msg("apply: %s", errstr);
    expect_result(&result, 0, 0, 0,
                  "OOM command not allowed when used memory > 'maxmemory'. (SET 'oom:{o}:a')");
    assert_true(rkb_redis_error_is_transient(result.bad_reason));

    CMD("DEL %s", offset_key);
    CMD("CONFIG SET maxmemory 1");
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "SET oom:{o}:a 1", NULL);
    rc = batch_send(&batch, &result, errstr, sizeof(errstr));
    batch_free(&batch);
    CMD("CONFIG SET maxmemory 0");
    assert_int_equal(rc, -1);
    assert_true(rkb_redis_error_is_transient(errstr));
    assert_int_equal(h_redis_int(server, "EXISTS oom:{o}:a %s", offset_key), 0);
}

/* A record with nothing to write (dead-lettered, a tombstone on a STREAM) still advances. */
static void test_empty_records(void **state) {
    const char *offset_key = "rkbridge:offset:{m:0}:empty";
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, NULL);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 1, 1, -1, "");
    expect_str(h_redis_str(server, "GET %s", offset_key), "1");

    batch_init(&batch, offset_key);
    batch_record(&batch, 1, NULL);
    batch_record(&batch, 2, "SET em:{m}:a 1", NULL);
    batch_record(&batch, 5, NULL); /* gaps: compaction, transaction markers */
    result = batch_apply(&batch);
    expect_result(&result, 3, 6, -1, "");

    /* A call without records changes nothing. */
    batch_init(&batch, offset_key);
    result = batch_apply(&batch);
    expect_result(&result, 0, 6, -1, "");
    batch_init(&batch, "rkbridge:offset:{m:0}:never");
    result = batch_apply(&batch);
    expect_result(&result, 0, -1, -1, "");
    assert_int_equal(h_redis_int(server, "EXISTS rkbridge:offset:{m:0}:never"), 0);
}

/* Two connectors on one topic: their offsets are apart, so both apply the same offsets. */
static void test_namespaces(void **state) {
    char key_a[128], key_b[128];
    rkb_eos_offset_key("conn-a", "shared", 0, key_a, sizeof(key_a));
    rkb_eos_offset_key("conn-b", "shared", 0, key_b, sizeof(key_b));
    CMD("DEL cnt:{t0}");
    rkb_eos_result_t result = apply_counter(key_a, 0, 2);
    expect_result(&result, 3, 3, -1, "");
    result = apply_counter(key_b, 0, 2);
    expect_result(&result, 3, 3, -1, "");
    result = apply_counter(key_a, 0, 2);
    expect_result(&result, 0, 3, -1, "");
    expect_str(h_redis_str(server, "HGET cnt:{t0} u1"), "6");
    expect_str(h_redis_str(server, "GET rkbridge:offset:{shared:0}:conn-a"), "3");
    expect_str(h_redis_str(server, "GET rkbridge:offset:{shared:0}:conn-b"), "3");
}

/* Offsets beyond 2^32 and up to 2^53 are stored as plain decimal integers. */
static void test_large_offsets(void **state) {
    const char *offset_key = "rkbridge:offset:{big:0}:n";
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 999999999999999, NULL);
    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 1, 1000000000000000, -1, "");
    expect_str(h_redis_str(server, "GET %s", offset_key), "1000000000000000");

    batch_init(&batch, offset_key);
    batch_record(&batch, 9007199254740990, NULL); /* 2^53 - 2 */
    result = batch_apply(&batch);
    expect_result(&result, 1, 9007199254740991, -1, "");
    expect_str(h_redis_str(server, "GET %s", offset_key), "9007199254740991");
}

static void test_read_offsets(void **state) {
    const char *topics[] = {"ro", "ro", "ro-other"};
    const int32_t partitions[] = {0, 1, 0};
    int64_t offsets[3] = {7, 7, 7};
    char errstr[512] = "";
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 3, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_OK);
    assert_int_equal(offsets[0], -1);
    assert_int_equal(offsets[1], -1);
    assert_int_equal(offsets[2], -1);

    char key[128];
    rkb_eos_result_t result =
        apply_counter(rkb_eos_offset_key("n", "ro", 1, key, sizeof(key)), 0, 41);
    assert_int_equal(result.next_offset, 42);
    CMD("SET rkbridge:offset:{ro-other:0}:n 0");
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 3, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_OK);
    assert_int_equal(offsets[0], -1);
    assert_int_equal(offsets[1], 42);
    assert_int_equal(offsets[2], 0);
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 0, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_OK);

    CMD("SET rkbridge:offset:{ro-other:0}:n abc");
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 3, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_ERR_PROTO);
    assert_string_equal(errstr,
                        "offset key 'rkbridge:offset:{ro-other:0}:n' holds 'abc', not an offset");
    CMD("SET rkbridge:offset:{ro-other:0}:n -3");
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 3, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_ERR_PROTO);
    assert_string_equal(errstr,
                        "offset key 'rkbridge:offset:{ro-other:0}:n' holds '-3', not an offset");
    CMD("DEL rkbridge:offset:{ro-other:0}:n");
    CMD("HSET rkbridge:offset:{ro-other:0}:n f v");
    assert_int_equal(
        rkb_eos_read_offsets(redis, "n", topics, partitions, 3, offsets, errstr, sizeof(errstr)),
        RKB_REDIS_ERR_PROTO);
    assert_string_equal(errstr, "reading offset key 'rkbridge:offset:{ro-other:0}:n': WRONGTYPE "
                                "Operation against a key holding the wrong kind of value");
}

/* The script refuses to run over an offset key it cannot read: nothing is written. */
static void test_bad_stored_offset(void **state) {
    const char *offset_key = "rkbridge:offset:{bad:0}:n";
    CMD("SET %s 1.5", offset_key);
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "SET bad:{bad:0}:a 1", NULL);
    rkb_eos_result_t result;
    char errstr[512] = "";
    assert_int_equal(batch_send(&batch, &result, errstr, sizeof(errstr)), -1);
    batch_free(&batch);
    assert_non_null(strstr(errstr, "rkbridge offset key 'rkbridge:offset:{bad:0}:n' holds '1.5', "
                                   "not an offset"));
    assert_int_equal(h_redis_int(server, "EXISTS bad:{bad:0}:a"), 0);
}

static void test_parse_reply(void **state) {
    rkb_eos_result_t result;
    char errstr[256];

    redisReply integers[3] = {{.type = REDIS_REPLY_INTEGER, .integer = 2},
                              {.type = REDIS_REPLY_INTEGER, .integer = 9},
                              {.type = REDIS_REPLY_INTEGER, .integer = 9}};
    redisReply reason = {.type = REDIS_REPLY_STRING, .str = "why", .len = 3};
    redisReply *elements[4] = {&integers[0], &integers[1], &integers[2], &reason};
    redisReply array = {.type = REDIS_REPLY_ARRAY, .element = elements, .elements = 4};
    assert_int_equal(rkb_eos_parse_reply(&array, &result, errstr, sizeof(errstr)), 0);
    expect_result(&result, 2, 9, 9, "why");

    /* A reason longer than the result holds is cut, not overflowed. */
    char long_reason[1000];
    memset(long_reason, 'r', sizeof(long_reason));
    reason.str = long_reason;
    reason.len = sizeof(long_reason);
    assert_int_equal(rkb_eos_parse_reply(&array, &result, errstr, sizeof(errstr)), 0);
    assert_int_equal(strlen(result.bad_reason), sizeof(result.bad_reason) - 1);

    redisReply error = {.type = REDIS_REPLY_ERROR, .str = "BUSY Redis is busy", .len = 18};
    assert_int_equal(rkb_eos_parse_reply(&error, &result, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "BUSY Redis is busy");

    assert_int_equal(rkb_eos_parse_reply(NULL, &result, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "exactly-once script: no reply");

    array.elements = 3;
    assert_int_equal(rkb_eos_parse_reply(&array, &result, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "exactly-once script: unexpected reply (type 2, 3 elements), want "
                                "{applied, next offset, bad offset, reason}");
    array.elements = 4;
    elements[3] = &integers[0];
    assert_int_equal(rkb_eos_parse_reply(&array, &result, errstr, sizeof(errstr)), -1);
    elements[3] = &reason;
    elements[1] = &reason;
    assert_int_equal(rkb_eos_parse_reply(&array, &result, errstr, sizeof(errstr)), -1);
    assert_int_equal(rkb_eos_parse_reply(&integers[0], &result, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "exactly-once script: unexpected reply (type 3, 0 elements), want "
                                "{applied, next offset, bad offset, reason}");
}

/* A flushed (or restarted) server forgets the script: NOSCRIPT, detected; a load fixes it. */
static void test_noscript(void **state) {
    const char *offset_key = "rkbridge:offset:{ns:0}:n";
    CMD("SCRIPT FLUSH");
    batch_t batch;
    batch_init(&batch, offset_key);
    batch_record(&batch, 0, "SET ns:{ns:0}:a 1", NULL);
    rkb_eos_result_t result;
    char errstr[512] = "";
    assert_int_equal(batch_send(&batch, &result, errstr, sizeof(errstr)), -1);
    assert_true(rkb_eos_error_is_noscript(errstr));
    assert_false(rkb_redis_error_is_transient(errstr));
    assert_int_equal(h_redis_int(server, "EXISTS ns:{ns:0}:a"), 0);

    load();
    assert_int_equal(batch_send(&batch, &result, errstr, sizeof(errstr)), 0);
    expect_result(&result, 1, 1, -1, "");
    batch_free(&batch);

    assert_false(rkb_eos_error_is_noscript(NULL));
    assert_false(rkb_eos_error_is_noscript("ERR NOSCRIPT"));
    assert_false(rkb_eos_error_is_noscript("NOSCRIPTS"));
    assert_true(rkb_eos_error_is_noscript("NOSCRIPT"));
}

/* ---- with the writer ---------------------------------------------------------------------- */

static rkb_writer_t *new_writer(rkb_redis_type_t type, const char *keyspace) {
    rkb_writer_conf_t wc = {
        .type = type,
        .keyspace = keyspace,
        .separator = ":",
        .ttl_seconds = 60,
        .in_transaction = true, /* the script is the transaction */
    };
    char errstr[256];
    rkb_writer_t *w = rkb_writer_new(&wc, errstr, sizeof(errstr));
    if (!w)
        fail_msg("rkb_writer_new: %s", errstr);
    return w;
}

/* 1000 records with a TTL, STRING (SET ... EX) and HASH (HSET + EXPIRE) in turn, encoded by the
 * writer and applied by one call. */
static void test_writer_batch_with_ttl(void **state) {
    const char *offset_key = "rkbridge:offset:{bulk:0}:n";
    rkb_writer_t *strings = new_writer(RKB_TYPE_STRING, "s{bulk:0}");
    rkb_writer_t *hashes = new_writer(RKB_TYPE_HASH, "h{bulk:0}");
    batch_t batch;
    batch_init(&batch, offset_key);
    for (int i = 0; i < 1000; i++) {
        char key[32], value[64];
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(value, sizeof(value), "{\"n\":%d,\"name\":\"item %d\"}", i, i);
        rkb_record_t rec;
        rkb_record_init(&rec);
        rec.topic = "bulk";
        rec.offset = i;
        rec.key = key;
        rec.key_len = strlen(key);
        rec.value = value;
        rec.value_len = strlen(value);
        size_t first = rkb_cmds_count(batch.cmds);
        char errstr[256];
        int cnt =
            rkb_writer_encode(i % 2 ? hashes : strings, &rec, batch.cmds, errstr, sizeof(errstr));
        if (cnt < 0)
            fail_msg("encode: %s", errstr);
        assert_int_equal(cnt, i % 2 ? 2 : 1);
        rkb_eos_call_add(batch.call, i, batch.cmds, first, cnt);
        rkb_record_clear(&rec);
    }
    rkb_writer_destroy(strings);
    rkb_writer_destroy(hashes);

    rkb_cmds_t *out = rkb_cmds_new();
    rkb_eos_call_end(batch.call, out);
    assert_string_equal(rkb_cmds_argv(out, 0, 2, NULL), "1001"); /* offset key + 1000 data keys */
    rkb_cmds_destroy(out);

    rkb_eos_result_t result = batch_apply(&batch);
    expect_result(&result, 1000, 1000, -1, "");
    expect_str(h_redis_str(server, "GET s{bulk:0}:k998"), "{\"n\":998,\"name\":\"item 998\"}");
    expect_str(h_redis_str(server, "HGET h{bulk:0}:k999 name"), "item 999");
    expect_str(h_redis_str(server, "HGET h{bulk:0}:k1 n"), "1");
    for (int i = 0; i < 1000; i += 111) {
        long long ttl = h_redis_int(server, "TTL %s{bulk:0}:k%d", i % 2 ? "h" : "s", i);
        assert_true(ttl > 0 && ttl <= 60);
    }
    expect_str(h_redis_str(server, "GET %s", offset_key), "1000");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_before_load), /* first: nothing loaded yet */
        cmocka_unit_test(test_offset_key),
        cmocka_unit_test(test_call_layout),
        cmocka_unit_test(test_e2_zombie_replay),
        cmocka_unit_test(test_observed_sequence),
        cmocka_unit_test(test_e7_bad_record_in_batch),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_checks_pass),
        cmocka_unit_test(test_run_failures),
        cmocka_unit_test(test_run_oom),
        cmocka_unit_test(test_empty_records),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_large_offsets),
        cmocka_unit_test(test_read_offsets),
        cmocka_unit_test(test_bad_stored_offset),
        cmocka_unit_test(test_parse_reply),
        cmocka_unit_test(test_noscript),
        cmocka_unit_test(test_writer_batch_with_ttl),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
