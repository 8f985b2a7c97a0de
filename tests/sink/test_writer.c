/*
 * test_writer.c — unit tests of sink/writer: the exact commands (argv) each redis.type builds
 * for hand-made records, tombstones, TTLs from the config and the header, key templates, the
 * empty keyspace, envelopes, and records the writer refuses (exact message, batch unchanged).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "convert/convert.h"
#include "sink/writer.h"
#include "util/util.h"
#include "record_fixture.h"

#include <stdio.h>
#include <string.h>

/* ---- writers and commands --------------------------------------------------------------- */

/* The config the sink passes by default (config_props.c defaults). */
static rkb_writer_conf_t default_conf(rkb_redis_type_t type) {
    rkb_writer_conf_t wc = {
        .type = type,
        .keyspace = "${topic}",
        .separator = ":",
        .key_template = "",
        .member = "${key}",
        .score = "${value}",
        .ts_timestamp = "${key}",
    };
    return wc;
}

static rkb_writer_t *new_writer(const rkb_writer_conf_t *wc) {
    char errstr[256] = "";
    rkb_writer_t *w = rkb_writer_new(wc, errstr, sizeof(errstr));
    if (!w)
        fail_msg("rkb_writer_new: %s", errstr);
    return w;
}

static void assert_writer_error(const rkb_writer_conf_t *wc, const char *want) {
    char errstr[256] = "";
    rkb_writer_t *w = rkb_writer_new(wc, errstr, sizeof(errstr));
    if (w)
        fail_msg("rkb_writer_new succeeded, expected: %s", want);
    assert_string_equal(errstr, want);
}

/* A batch that already holds one command, so tests also see that a record appends after it
 * and that a refused record leaves it alone. */
static rkb_cmds_t *new_batch(void) {
    rkb_cmds_t *cmds = rkb_cmds_new();
    rkb_cmds_begin(cmds);
    rkb_cmds_args(cmds, "PING");
    rkb_cmds_end(cmds);
    return cmds;
}

/* Encodes rec, which must succeed with want_cnt commands. */
static void encode(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, int want_cnt) {
    char errstr[256] = "";
    size_t before = rkb_cmds_count(cmds);
    int n = rkb_writer_encode(w, rec, cmds, errstr, sizeof(errstr));
    if (n < 0)
        fail_msg("rkb_writer_encode: %s", errstr);
    assert_int_equal(n, want_cnt);
    assert_int_equal(rkb_cmds_count(cmds), before + (size_t)want_cnt);
}

/* Encoding rec must fail with exactly want and leave cmds as it was. */
static void encode_error(rkb_writer_t *w, rkb_record_t *rec, rkb_cmds_t *cmds, const char *want) {
    char errstr[256] = "";
    size_t before = rkb_cmds_count(cmds);
    assert_int_equal(rkb_writer_encode(w, rec, cmds, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, want);
    assert_int_equal(rkb_cmds_count(cmds), before);
    assert_int_equal(rkb_cmds_argc(cmds, 0), 1); /* the PING is intact */
}

/* Command i must be exactly the NULL-terminated argument list (NUL-free arguments). */
static void expect_cmd(const rkb_cmds_t *cmds, size_t i, ...) {
    assert_true(i < rkb_cmds_count(cmds));
    rkb_buf_t described;
    rkb_buf_init(&described);
    rkb_cmds_describe(cmds, i, &described);
    va_list ap;
    va_start(ap, i);
    int j = 0;
    const char *want;
    while ((want = va_arg(ap, const char *))) {
        if (j >= rkb_cmds_argc(cmds, i))
            fail_msg("command %zu (%s): missing argument %d '%s'", i, described.data, j, want);
        size_t len;
        const char *got = rkb_cmds_argv(cmds, i, j, &len);
        if (len != strlen(want) || memcmp(got, want, len))
            fail_msg("command %zu (%s): argument %d is '%.*s', want '%s'", i, described.data, j,
                     (int)len, got, want);
        j++;
    }
    va_end(ap);
    if (rkb_cmds_argc(cmds, i) != j)
        fail_msg("command %zu (%s): %d arguments, want %d", i, described.data,
                 rkb_cmds_argc(cmds, i), j);
    rkb_buf_free(&described);
}

/* ---- types ------------------------------------------------------------------------------ */

static void test_type_names(void **state) {
    rkb_redis_type_t type;
    assert_int_equal(rkb_redis_type_parse("hash", &type), 0);
    assert_int_equal(type, RKB_TYPE_HASH);
    assert_int_equal(rkb_redis_type_parse("TimeSeries", &type), 0);
    assert_int_equal(type, RKB_TYPE_TIMESERIES);
    assert_int_equal(rkb_redis_type_parse("PUBSUB", &type), 0);
    assert_int_equal(type, RKB_TYPE_PUBSUB);
    assert_int_equal(rkb_redis_type_parse("counter", &type), 0);
    assert_int_equal(type, RKB_TYPE_COUNTER);
    assert_int_equal(rkb_redis_type_parse("HSET", &type), -1);
    assert_int_equal(rkb_redis_type_parse("", &type), -1);
    assert_string_equal(rkb_redis_type_name(RKB_TYPE_STRING), "STRING");
    assert_string_equal(rkb_redis_type_name(RKB_TYPE_ZSET), "ZSET");
    assert_string_equal(rkb_redis_type_name(RKB_TYPE_PUBSUB), "PUBSUB");
    assert_string_equal(rkb_redis_type_name(RKB_TYPE_COUNTER), "COUNTER");
}

static void test_string(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "k1", "v1");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "SET", "orders:k1", "v1", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "k1", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "DEL", "orders:k1", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, NULL, "v1");
    encode_error(w, &rec, cmds,
                 "the record key is null; STRING/HASH/JSON keys need one (or set "
                 "redis.key.template)");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, NULL);
    encode_error(w, &rec, cmds,
                 "the record key is null; STRING/HASH/JSON keys need one (or set "
                 "redis.key.template)");
    rkb_record_clear(&rec);

    /* Binary keys and values go through untouched. */
    h_record_make(&rec, NULL, NULL);
    rec.key = "a\0b";
    rec.key_len = 3;
    rec.value = "\x01\0\xff";
    rec.value_len = 3;
    encode(w, &rec, cmds, 1);
    size_t len;
    const char *arg = rkb_cmds_argv(cmds, 3, 1, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(arg, "orders:a\0b", 10);
    arg = rkb_cmds_argv(cmds, 3, 2, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(arg, "\x01\0\xff", 3);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_keyspace_and_separator(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    wc.keyspace = "cache:${partition}";
    wc.separator = "/";
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;
    h_record_make(&rec, "k1", "v1");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "SET", "cache:3/k1", "v1", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* NULL keyspace and separator: the defaults. */
    wc.keyspace = NULL;
    wc.separator = NULL;
    w = new_writer(&wc);
    h_record_make(&rec, "k1", "v1");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "SET", "orders:k1", "v1", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* Empty keyspace: the record key alone, no separator. */
    wc.keyspace = "";
    wc.separator = ":";
    w = new_writer(&wc);
    h_record_make(&rec, "a\tb c", "v");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "SET", "a\tb c", "v", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "v");
    encode_error(w, &rec, cmds,
                 "the record key is null; STRING/HASH/JSON keys need one (or set "
                 "redis.key.template)");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    rkb_cmds_destroy(cmds);
}

/* With the json key converter the key's text is used: no quotes, envelope unwrapped. */
static void test_json_key(void **state) {
    static const rkb_converter_t json_conv = {RKB_CONV_JSON, -1};
    static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
    char errstr[256];
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "\"abc\"", "v");
    assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)), 0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "SET", "orders:abc", "v", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "{\"schema\":{\"type\":\"int32\"},\"payload\":7}", "v");
    assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)), 0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "SET", "orders:7", "v", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "null", "v");
    assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)), 0);
    encode_error(w, &rec, cmds,
                 "the record key is null; STRING/HASH/JSON keys need one (or set "
                 "redis.key.template)");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.keyspace = "";
    w = new_writer(&wc);
    h_record_make(&rec, "\"abc\"", "v");
    assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)), 0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "SET", "abc", "v", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    rkb_cmds_destroy(cmds);
}

static void test_string_ttl(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    wc.ttl_seconds = 60;
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "k1", "v1");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "SET", "orders:k1", "v1", "EX", "60", NULL);
    rkb_record_clear(&rec);

    /* The header wins over the config, also to switch the TTL off. */
    static const h_record_header_t ttl30[] = {{"redis.key.ttl", "30"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl30);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "SET", "orders:k1", "v1", "EX", "30", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl0[] = {{"redis.key.ttl", "0"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "SET", "orders:k1", "v1", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl_negative[] = {{"redis.key.ttl", "-5"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl_negative);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "SET", "orders:k1", "v1", NULL);
    rkb_record_clear(&rec);

    /* A null header value is no header: the config applies. */
    static const h_record_header_t ttl_null[] = {{"redis.key.ttl", NULL}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl_null);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 5, "SET", "orders:k1", "v1", "EX", "60", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl_bad[] = {{"redis.key.ttl", "x"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl_bad);
    encode_error(w, &rec, cmds, "header redis.key.ttl: 'x' is not an integer");
    rkb_record_clear(&rec);
    static const h_record_header_t ttl_float[] = {{"redis.key.ttl", "1.5"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl_float);
    encode_error(w, &rec, cmds, "header redis.key.ttl: '1.5' is not an integer");
    rkb_record_clear(&rec);
    static const h_record_header_t ttl_long[] = {
        {"redis.key.ttl", "1234567890123456789012345678901234567890"}, {NULL, NULL}};
    h_record_make(&rec, "k1", "v1");
    h_record_set_headers(&rec, ttl_long);
    encode_error(w, &rec, cmds,
                 "header redis.key.ttl: '1234567890123456789012345678901234567890' is not an "
                 "integer");
    rkb_record_clear(&rec);

    /* No TTL on a tombstone. */
    h_record_make(&rec, "k1", NULL);
    h_record_set_headers(&rec, ttl30);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 6, "DEL", "orders:k1", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static const char pageview[] =
    "{\"viewtime\":1451,\"userid\":\"User_6\",\"pageid\":\"Page_35\",\"nested\":{\"a\": 1},"
    "\"list\":[1, 2],\"gone\":null,\"flag\":true,\"ratio\":0.1}";

static void expect_pageview_hset(const rkb_cmds_t *cmds, size_t i, const char *key) {
    expect_cmd(cmds, i, "HSET", key, "viewtime", "1451", "userid", "User_6", "pageid", "Page_35",
               "nested", "{\"a\":1}", "list", "[1,2]", "flag", "true", "ratio", "0.1", NULL);
}

static void test_hash(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_HASH);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "1451", pageview);
    encode(w, &rec, cmds, 1);
    expect_pageview_hset(cmds, 1, "orders:1451");
    rkb_record_clear(&rec);

    h_record_make(&rec, "1451", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "DEL", "orders:1451", NULL);
    rkb_record_clear(&rec);

    /* Nothing but nulls: nothing to write. */
    h_record_make(&rec, "1451", "{\"a\":null}");
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);
    h_record_make(&rec, "1451", "{}");
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);

    h_record_make(&rec, "1451", "[1,2]");
    encode_error(w, &rec, cmds, "HASH needs a JSON object value, got an array");
    rkb_record_clear(&rec);
    h_record_make(&rec, "1451", "\"text\"");
    encode_error(w, &rec, cmds, "HASH needs a JSON object value, got a string");
    rkb_record_clear(&rec);
    h_record_make(&rec, "1451", "plain text");
    encode_error(w, &rec, cmds,
                 "HASH needs a JSON object value: value is not JSON: invalid token near 'plain' "
                 "at position 5");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"a\":1}");
    encode_error(w, &rec, cmds,
                 "the record key is null; STRING/HASH/JSON keys need one (or set "
                 "redis.key.template)");
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_hash_envelope(void **state) {
    static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
    static const rkb_converter_t json_schemas = {RKB_CONV_JSON, 1};
    char errstr[256];
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_HASH);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "e1",
                  "{\"schema\":{\"type\":\"struct\",\"fields\":[]},"
                  "\"payload\":{\"a\":1,\"b\":\"two\"}}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_schemas, &rec, errstr, sizeof(errstr)),
                     0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "HSET", "orders:e1", "a", "1", "b", "two", NULL);
    rkb_record_clear(&rec);

    /* The string converter looks inside an envelope on demand too (schemas auto). */
    h_record_make(&rec, "e2", "{\"schema\":{},\"payload\":{\"c\":3}}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "HSET", "orders:e2", "c", "3", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

/* Non-STRING types with a TTL: MULTI, write, EXPIRE, EXEC; inside the caller's transaction
 * just write and EXPIRE. */
static void test_hash_ttl(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_HASH);
    wc.ttl_seconds = 60;
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "1451", pageview);
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 1, "MULTI", NULL);
    expect_pageview_hset(cmds, 2, "orders:1451");
    expect_cmd(cmds, 3, "EXPIRE", "orders:1451", "60", NULL);
    expect_cmd(cmds, 4, "EXEC", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl500[] = {
        {"other", "1"}, {"redis.key.ttl", "500"}, {NULL, NULL}};
    h_record_make(&rec, "1453", "{\"viewtime\":1453}");
    h_record_set_headers(&rec, ttl500);
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 5, "MULTI", NULL);
    expect_cmd(cmds, 6, "HSET", "orders:1453", "viewtime", "1453", NULL);
    expect_cmd(cmds, 7, "EXPIRE", "orders:1453", "500", NULL);
    expect_cmd(cmds, 8, "EXEC", NULL);
    rkb_record_clear(&rec);

    /* A bad header after a good key: nothing of the record stays. */
    static const h_record_header_t ttl_bad[] = {{"redis.key.ttl", "soon"}, {NULL, NULL}};
    h_record_make(&rec, "1453", "{\"viewtime\":1453}");
    h_record_set_headers(&rec, ttl_bad);
    encode_error(w, &rec, cmds, "header redis.key.ttl: 'soon' is not an integer");
    rkb_record_clear(&rec);

    /* Nothing written, nothing to expire. */
    h_record_make(&rec, "1451", "{\"a\":null}");
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);

    h_record_make(&rec, "1451", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 9, "DEL", "orders:1451", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.in_transaction = true;
    w = new_writer(&wc);
    h_record_make(&rec, "1453", "{\"viewtime\":1453}");
    encode(w, &rec, cmds, 2);
    expect_cmd(cmds, 10, "HSET", "orders:1453", "viewtime", "1453", NULL);
    expect_cmd(cmds, 11, "EXPIRE", "orders:1453", "60", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_json(void **state) {
    static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
    static const rkb_converter_t json_conv = {RKB_CONV_JSON, -1};
    char errstr[256];
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_JSON);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "k", "{ \"a\" : [1, 2] }");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "JSON.SET", "orders:k", "$", "{ \"a\" : [1, 2] }", NULL);
    rkb_record_clear(&rec);

    /* An unwrapped payload is written compact; a string payload stays a JSON string. */
    h_record_make(&rec, "k", "{\"schema\":{},\"payload\":{ \"a\" : 0.1 }}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_conv, &rec, errstr, sizeof(errstr)), 0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "JSON.SET", "orders:k", "$", "{\"a\":0.1}", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "k", "{\"schema\":{\"type\":\"string\"},\"payload\":\"abc\"}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_conv, &rec, errstr, sizeof(errstr)), 0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "JSON.SET", "orders:k", "$", "\"abc\"", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "k", "plain text");
    encode_error(w, &rec, cmds,
                 "JSON needs a JSON value: value is not JSON: invalid token near 'plain' at "
                 "position 5");
    rkb_record_clear(&rec);

    h_record_make(&rec, "k", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "DEL", "orders:k", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.ttl_seconds = 5;
    w = new_writer(&wc);
    h_record_make(&rec, "k", "[]");
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 5, "MULTI", NULL);
    expect_cmd(cmds, 6, "JSON.SET", "orders:k", "$", "[]", NULL);
    expect_cmd(cmds, 7, "EXPIRE", "orders:k", "5", NULL);
    expect_cmd(cmds, 8, "EXEC", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_stream(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STREAM);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "a", "{\"f\":\"1\",\"g\":2,\"h\":null,\"i\":{\"j\":[true]}}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "XADD", "orders", "*", "f", "1", "g", "2", "i", "{\"j\":[true]}", NULL);
    rkb_record_clear(&rec);

    /* Not JSON, or not an object: one field "value" with the bytes. */
    h_record_make(&rec, "b", "plain text");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "XADD", "orders", "*", "value", "plain text", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "b", "[1, 2]");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "XADD", "orders", "*", "value", "[1, 2]", NULL);
    rkb_record_clear(&rec);
    /* The record key is not needed. */
    h_record_make(&rec, NULL, "42");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "XADD", "orders", "*", "value", "42", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "c", "{\"h\":null}");
    encode_error(w, &rec, cmds, "STREAM entry has no fields (every member is null)");
    rkb_record_clear(&rec);

    /* Append-only: a tombstone writes nothing. */
    h_record_make(&rec, "c", NULL);
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.stream_maxlen = 10;
    wc.ttl_seconds = 60;
    w = new_writer(&wc);
    h_record_make(&rec, "a", "{\"f\":\"1\"}");
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 5, "MULTI", NULL);
    expect_cmd(cmds, 6, "XADD", "orders", "MAXLEN", "~", "10", "*", "f", "1", NULL);
    expect_cmd(cmds, 7, "EXPIRE", "orders", "60", NULL);
    expect_cmd(cmds, 8, "EXEC", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "c", NULL);
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_list_set(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_LIST);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "a", "x");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "RPUSH", "orders", "a", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "a", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "LREM", "orders", "0", "a", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "x");
    encode_error(w, &rec, cmds, "redis.member: ${key}: the record key is null");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.push_left = true;
    w = new_writer(&wc);
    h_record_make(&rec, "b", "x");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "LPUSH", "orders", "b", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc = default_conf(RKB_TYPE_SET);
    w = new_writer(&wc);
    h_record_make(&rec, "m1", "x");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "SADD", "orders", "m1", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "m1", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 5, "SREM", "orders", "m1", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* A member template, and a TTL on the set. */
    wc.member = "${partition}/${offset}/${value}";
    wc.ttl_seconds = 9;
    w = new_writer(&wc);
    h_record_make(&rec, NULL, "x");
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 6, "MULTI", NULL);
    expect_cmd(cmds, 7, "SADD", "orders", "3/42/x", NULL);
    expect_cmd(cmds, 8, "EXPIRE", "orders", "9", NULL);
    expect_cmd(cmds, 9, "EXEC", NULL);
    rkb_record_clear(&rec);
    /* The member of a tombstone cannot come from its value. */
    h_record_make(&rec, "k", NULL);
    encode_error(w, &rec, cmds, "redis.member: ${value}: the record is a tombstone");
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_zset(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_ZSET);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "alice", "9.5");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "ZADD", "orders", "9.5", "alice", NULL);
    rkb_record_clear(&rec);
    /* The score is the parsed number, written back in its shortest exact form. */
    h_record_make(&rec, "bob", "1e3");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "ZADD", "orders", "1000", "bob", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "carol", "-0.30000000000000004");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "ZADD", "orders", "-0.30000000000000004", "carol", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "dave", "abc");
    encode_error(w, &rec, cmds, "redis.score: 'abc' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, "dave", "");
    encode_error(w, &rec, cmds, "redis.score: '' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, "dave", "1e999");
    encode_error(w, &rec, cmds, "redis.score: '1e999' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, "dave", NULL);
    rec.value = "1\0002";
    rec.value_len = 3;
    encode_error(w, &rec, cmds, "redis.score: '1' is not a number");
    rkb_record_clear(&rec);

    /* A tombstone needs no score. */
    h_record_make(&rec, "alice", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "ZREM", "orders", "alice", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.keyspace = "prices";
    wc.score = "${value.price}";
    wc.member = "${value.sku}";
    w = new_writer(&wc);
    h_record_make(&rec, NULL, "{\"sku\":\"A1\",\"price\":0.1}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 5, "ZADD", "prices", "0.1", "A1", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"sku\":\"A1\",\"price\":\"12\"}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 6, "ZADD", "prices", "12", "A1", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"sku\":\"A1\"}");
    encode_error(w, &rec, cmds, "redis.score: ${value.price}: no such field in the value");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"sku\":\"A1\",\"price\":null}");
    encode_error(w, &rec, cmds, "redis.score: ${value.price}: the field is null");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"price\":1}");
    encode_error(w, &rec, cmds, "redis.member: ${value.sku}: no such field in the value");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"sku\":\"A1\",\"price\":\"cheap\"}");
    encode_error(w, &rec, cmds, "redis.score: 'cheap' is not a number");
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_timeseries(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_TIMESERIES);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "1700000000000", "21.5");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "TS.ADD", "orders", "1700000000000", "21.5", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "1700000000000", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "TS.DEL", "orders", "1700000000000", "1700000000000", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, "yesterday", "21.5");
    encode_error(w, &rec, cmds,
                 "redis.timeseries.timestamp: 'yesterday' is not a timestamp (milliseconds >= 0, "
                 "or '*')");
    rkb_record_clear(&rec);
    h_record_make(&rec, "-5", "21.5");
    encode_error(w, &rec, cmds,
                 "redis.timeseries.timestamp: '-5' is not a timestamp (milliseconds >= 0, or "
                 "'*')");
    rkb_record_clear(&rec);
    h_record_make(&rec, "1700000000000", "warm");
    encode_error(w, &rec, cmds, "redis.score: 'warm' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "21.5");
    encode_error(w, &rec, cmds, "redis.timeseries.timestamp: ${key}: the record key is null");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* The record timestamp, a value field, and Redis's clock. */
    wc.keyspace = "temp:${key}";
    wc.ts_timestamp = "${timestamp}";
    wc.score = "${value.celsius}";
    w = new_writer(&wc);
    h_record_make(&rec, "oslo", "{\"celsius\":-3}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "TS.ADD", "temp:oslo", "1700000000123", "-3", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "oslo", "{\"celsius\":-3}");
    rec.timestamp = -1;
    encode_error(w, &rec, cmds,
                 "redis.timeseries.timestamp: ${timestamp}: the record has no "
                 "timestamp");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.ts_timestamp = "*";
    w = new_writer(&wc);
    h_record_make(&rec, "oslo", "{\"celsius\":4.25}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "TS.ADD", "temp:oslo", "*", "4.25", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "oslo", NULL);
    encode_error(w, &rec, cmds,
                 "redis.timeseries.timestamp: '*' names no sample, a tombstone cannot delete one");
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_pubsub(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_PUBSUB);
    wc.ttl_seconds = 60; /* a channel has nothing to expire */
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    static const h_record_header_t ttl_bogus[] = {{"redis.key.ttl", "bogus"}, {NULL, NULL}};
    h_record_make(&rec, NULL, "hello");
    h_record_set_headers(&rec, ttl_bogus);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "PUBLISH", "orders", "hello", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "k", NULL);
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

/* COUNTER: the increment (the whole value by default) picks INCRBY for an integer and
 * INCRBYFLOAT for a decimal, in its shortest round-trip spelling. */
static void test_counter(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_COUNTER);
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    static const struct {
        const char *value;
        const char *command;
        const char *increment;
    } increments[] = {
        {"5", "INCRBY", "5"},
        {"-3", "INCRBY", "-3"},
        {"+7", "INCRBY", "7"},
        {"0", "INCRBY", "0"},
        {"9223372036854775807", "INCRBY", "9223372036854775807"},
        {"2.5", "INCRBYFLOAT", "2.5"},
        {"0.1", "INCRBYFLOAT", "0.1"},
        {"-0.000125", "INCRBYFLOAT", "-0.000125"},
        {"1e3", "INCRBYFLOAT", "1000"},
        {"1.0", "INCRBYFLOAT", "1"},
        /* Past 64 bits an integer is only a decimal any more. */
        {"99999999999999999999", "INCRBYFLOAT", "1e+20"},
    };
    size_t i = 1;
    for (size_t j = 0; j < RKB_ARRAY_SIZE(increments); j++, i++) {
        h_record_make(&rec, "k1", increments[j].value);
        encode(w, &rec, cmds, 1);
        expect_cmd(cmds, i, increments[j].command, "orders", increments[j].increment, NULL);
        rkb_record_clear(&rec);
    }

    /* The key is the keyspace, so a null key is fine. */
    h_record_make(&rec, NULL, "1");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, i++, "INCRBY", "orders", "1", NULL);
    rkb_record_clear(&rec);

    /* A tombstone has nothing to take back. */
    h_record_make(&rec, "k1", NULL);
    encode(w, &rec, cmds, 0);
    rkb_record_clear(&rec);

    static const char *const not_numbers[] = {"abc", "", "1.5x", "inf", "nan", "1e999", " "};
    for (size_t j = 0; j < RKB_ARRAY_SIZE(not_numbers); j++) {
        char want[128];
        snprintf(want, sizeof(want), "redis.increment: '%s' is not a number", not_numbers[j]);
        h_record_make(&rec, "k1", not_numbers[j]);
        encode_error(w, &rec, cmds, want);
        rkb_record_clear(&rec);
    }
    h_record_make(&rec, "k1", "{\"n\":1}");
    encode_error(w, &rec, cmds, "redis.increment: '{\"n\":1}' is not a number");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* A keyspace template names the counter. */
    wc.keyspace = "clicks:${key}";
    w = new_writer(&wc);
    h_record_make(&rec, "page7", "2");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, i++, "INCRBY", "clicks:page7", "2", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

/* COUNTER with redis.hash.field: HINCRBY/HINCRBYFLOAT; templates for key, field and increment,
 * and their errors named by config key. */
static void test_counter_hash_field(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_COUNTER);
    wc.key_template = "views:${value.user}";
    wc.hash_field = "${value.page}";
    wc.increment = "${value.n}";
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"page\":\"/home\",\"n\":2}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "HINCRBY", "views:u1", "/home", "2", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"page\":\"/home\",\"n\":0.25}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "HINCRBYFLOAT", "views:u1", "/home", "0.25", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"page\":\"\",\"n\":\"-4\"}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 3, "HINCRBY", "views:u1", "", "-4", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"n\":2}");
    encode_error(w, &rec, cmds, "redis.hash.field: ${value.page}: no such field in the value");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"page\":\"/\"}");
    encode_error(w, &rec, cmds, "redis.increment: ${value.n}: no such field in the value");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"user\":\"u1\",\"page\":\"/\",\"n\":true}");
    encode_error(w, &rec, cmds, "redis.increment: 'true' is not a number");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"page\":\"/\",\"n\":1}");
    encode_error(w, &rec, cmds, "redis.key.template: ${value.user}: no such field in the value");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* A constant increment counts records, here one field per record key. */
    wc = default_conf(RKB_TYPE_COUNTER);
    wc.increment = "1";
    wc.hash_field = "${key}";
    w = new_writer(&wc);
    h_record_make(&rec, "alice", "not a number, not used");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 4, "HINCRBY", "orders", "alice", "1", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

/* COUNTER with a TTL: the EXPIRE lands with the increment, as for the other types. */
static void test_counter_ttl(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_COUNTER);
    wc.ttl_seconds = 60;
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "k", "5");
    encode(w, &rec, cmds, 4);
    expect_cmd(cmds, 1, "MULTI", NULL);
    expect_cmd(cmds, 2, "INCRBY", "orders", "5", NULL);
    expect_cmd(cmds, 3, "EXPIRE", "orders", "60", NULL);
    expect_cmd(cmds, 4, "EXEC", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl0[] = {{"redis.key.ttl", "0"}, {NULL, NULL}};
    h_record_make(&rec, "k", "0.5");
    h_record_set_headers(&rec, ttl0);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 5, "INCRBYFLOAT", "orders", "0.5", NULL);
    rkb_record_clear(&rec);

    static const h_record_header_t ttl_bad[] = {{"redis.key.ttl", "later"}, {NULL, NULL}};
    h_record_make(&rec, "k", "5");
    h_record_set_headers(&rec, ttl_bad);
    encode_error(w, &rec, cmds, "header redis.key.ttl: 'later' is not an integer");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.in_transaction = true;
    wc.hash_field = "f";
    w = new_writer(&wc);
    static const h_record_header_t ttl30[] = {{"redis.key.ttl", "30"}, {NULL, NULL}};
    h_record_make(&rec, "k", "7");
    h_record_set_headers(&rec, ttl30);
    encode(w, &rec, cmds, 2);
    expect_cmd(cmds, 6, "HINCRBY", "orders", "f", "7", NULL);
    expect_cmd(cmds, 7, "EXPIRE", "orders", "30", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

/* redis.value.max.bytes: a larger value is refused before anything else is looked at. */
static void test_value_max_bytes(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    wc.value_max_bytes = 4;
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, "k", "abcd");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "SET", "orders:k", "abcd", NULL);
    rkb_record_clear(&rec);
    h_record_make(&rec, "k", "abcde");
    encode_error(w, &rec, cmds, "value is 5 bytes, more than redis.value.max.bytes (4)");
    rkb_record_clear(&rec);
    /* Before the null key. */
    h_record_make(&rec, NULL, "abcde");
    encode_error(w, &rec, cmds, "value is 5 bytes, more than redis.value.max.bytes (4)");
    rkb_record_clear(&rec);
    /* A tombstone has no value to measure. */
    h_record_make(&rec, "k", NULL);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "DEL", "orders:k", NULL);
    rkb_record_clear(&rec);
    /* Bytes, not characters: the limit is on what Kafka delivered. */
    h_record_make(&rec, "k", "\xc3\xa9\xc3\xa9\xc3\xa9");
    encode_error(w, &rec, cmds, "value is 6 bytes, more than redis.value.max.bytes (4)");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* Before parsing: an oversized non-JSON value for HASH is a size error. */
    wc = default_conf(RKB_TYPE_HASH);
    wc.value_max_bytes = 10;
    w = new_writer(&wc);
    h_record_make(&rec, "k", "plain text, not JSON");
    encode_error(w, &rec, cmds, "value is 20 bytes, more than redis.value.max.bytes (10)");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* 0 and negative: no limit. */
    wc = default_conf(RKB_TYPE_STRING);
    wc.value_max_bytes = 0;
    w = new_writer(&wc);
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    h_record_make(&rec, "k", big);
    encode(w, &rec, cmds, 1);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);
    wc.value_max_bytes = -1;
    w = new_writer(&wc);
    h_record_make(&rec, "k", big);
    encode(w, &rec, cmds, 1);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);
    rkb_cmds_destroy(cmds);
}

static void test_key_template(void **state) {
    static const h_record_header_t tenant[] = {{"tenant", "acme"}, {NULL, NULL}};
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_HASH);
    wc.key_template = "${header.tenant}:user:${value.userid}";
    wc.keyspace = "ignored:${tpoic}"; /* not used with a key template */
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;

    h_record_make(&rec, NULL, "{\"userid\":\"u7\",\"n\":1}");
    h_record_set_headers(&rec, tenant);
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "HSET", "acme:user:u7", "userid", "u7", "n", "1", NULL);
    rkb_record_clear(&rec);

    h_record_make(&rec, NULL, "{\"n\":1}");
    h_record_set_headers(&rec, tenant);
    encode_error(w, &rec, cmds, "redis.key.template: ${value.userid}: no such field in the value");
    rkb_record_clear(&rec);
    h_record_make(&rec, NULL, "{\"userid\":\"u7\"}");
    encode_error(w, &rec, cmds, "redis.key.template: ${header.tenant}: no such header");
    rkb_record_clear(&rec);
    /* The key of a tombstone cannot come from its value. */
    h_record_make(&rec, "k", NULL);
    h_record_set_headers(&rec, tenant);
    encode_error(w, &rec, cmds, "redis.key.template: ${value.userid}: the record is a tombstone");
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    /* Key templates work for the collection types too, with an empty keyspace. */
    wc = default_conf(RKB_TYPE_LIST);
    wc.keyspace = "";
    wc.key_template = "events:${value.userid}";
    wc.member = "${partition}/${offset}/${value}";
    w = new_writer(&wc);
    h_record_make(&rec, NULL, "{\"userid\":\"u7\"}");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "RPUSH", "events:u7", "3/42/{\"userid\":\"u7\"}", NULL);
    rkb_record_clear(&rec);

    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

static void test_writer_new_errors(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_STRING);
    wc.keyspace = "${tpoic}";
    assert_writer_error(&wc, "redis.keyspace: unknown token '${tpoic}' at column 1");
    wc = default_conf(RKB_TYPE_LIST);
    wc.keyspace = "ab${tpoic}";
    assert_writer_error(&wc, "redis.keyspace: unknown token '${tpoic}' at column 3");

    wc = default_conf(RKB_TYPE_HASH);
    wc.key_template = "u:${value";
    assert_writer_error(&wc, "redis.key.template: unterminated '${' at column 3");

    wc = default_conf(RKB_TYPE_SET);
    wc.member = "${value.}";
    assert_writer_error(&wc, "redis.member: empty field path in '${value.}'");

    wc = default_conf(RKB_TYPE_ZSET);
    wc.score = "${vaule}";
    assert_writer_error(&wc, "redis.score: unknown token '${vaule}' at column 1");

    wc = default_conf(RKB_TYPE_TIMESERIES);
    wc.ts_timestamp = "$ts";
    assert_writer_error(&wc, "redis.timeseries.timestamp: '$' at column 1 must start a '${...}' "
                             "token (write '$$' for a '$')");

    /* The keyspace is the whole key of the collection types. */
    wc = default_conf(RKB_TYPE_STREAM);
    wc.keyspace = "";
    assert_writer_error(&wc, "redis.keyspace: must not be empty for STREAM (the keyspace is the "
                             "key; or set redis.key.template)");

    wc = default_conf(RKB_TYPE_COUNTER);
    wc.increment = "${vaule}";
    assert_writer_error(&wc, "redis.increment: unknown token '${vaule}' at column 1");
    wc = default_conf(RKB_TYPE_COUNTER);
    wc.hash_field = "f:${value";
    assert_writer_error(&wc, "redis.hash.field: unterminated '${' at column 3");
    wc = default_conf(RKB_TYPE_COUNTER);
    wc.keyspace = "";
    assert_writer_error(&wc, "redis.keyspace: must not be empty for COUNTER (the keyspace is the "
                             "key; or set redis.key.template)");

    /* Templates a type does not use are not checked. */
    wc = default_conf(RKB_TYPE_STRING);
    wc.member = "${bogus}";
    wc.score = "${bogus}";
    wc.increment = "${bogus}";
    wc.hash_field = "${bogus}";
    rkb_writer_destroy(new_writer(&wc));
    rkb_writer_destroy(NULL);
}

/* NULL or empty member/score/timestamp templates take redis-kafka-connect's defaults. */
static void test_template_defaults(void **state) {
    rkb_writer_conf_t wc = {.type = RKB_TYPE_ZSET};
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = new_batch();
    rkb_record_t rec;
    h_record_make(&rec, "alice", "2");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 1, "ZADD", "orders", "2", "alice", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);

    wc.type = RKB_TYPE_TIMESERIES;
    wc.member = "";
    wc.score = "";
    wc.ts_timestamp = "";
    w = new_writer(&wc);
    h_record_make(&rec, "1000", "2");
    encode(w, &rec, cmds, 1);
    expect_cmd(cmds, 2, "TS.ADD", "orders", "1000", "2", NULL);
    rkb_record_clear(&rec);
    rkb_writer_destroy(w);
    rkb_cmds_destroy(cmds);
}

/* One writer, many records of varying sizes: expansions reuse the scratch buffer and every
 * command still holds its own bytes. */
static void test_many_records(void **state) {
    rkb_writer_conf_t wc = default_conf(RKB_TYPE_ZSET);
    wc.key_template = "board:${value.board}";
    wc.member = "${value.player}";
    wc.score = "${value.points}";
    rkb_writer_t *w = new_writer(&wc);
    rkb_cmds_t *cmds = rkb_cmds_new();
    char values[200][160];
    rkb_record_t rec;
    for (int i = 0; i < 200; i++) {
        snprintf(values[i], sizeof(values[i]),
                 "{\"board\":\"b%d\",\"player\":\"%0*d\",\"points\":%d.5}", i % 7, 1 + i % 90, i,
                 i);
        h_record_make(&rec, NULL, values[i]);
        encode(w, &rec, cmds, 1);
        rkb_record_clear(&rec);
    }
    for (int i = 0; i < 200; i++) {
        char key[16], member[128], score[16];
        snprintf(key, sizeof(key), "board:b%d", i % 7);
        snprintf(member, sizeof(member), "%0*d", 1 + i % 90, i);
        snprintf(score, sizeof(score), "%d.5", i);
        expect_cmd(cmds, (size_t)i, "ZADD", key, score, member, NULL);
    }
    rkb_cmds_destroy(cmds);
    rkb_writer_destroy(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_string),
        cmocka_unit_test(test_keyspace_and_separator),
        cmocka_unit_test(test_json_key),
        cmocka_unit_test(test_string_ttl),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_hash_envelope),
        cmocka_unit_test(test_hash_ttl),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_list_set),
        cmocka_unit_test(test_zset),
        cmocka_unit_test(test_timeseries),
        cmocka_unit_test(test_pubsub),
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_counter_hash_field),
        cmocka_unit_test(test_counter_ttl),
        cmocka_unit_test(test_value_max_bytes),
        cmocka_unit_test(test_key_template),
        cmocka_unit_test(test_writer_new_errors),
        cmocka_unit_test(test_template_defaults),
        cmocka_unit_test(test_many_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
