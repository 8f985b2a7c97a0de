/*
 * test_tmpl.c — unit tests of tmpl/: parse errors with their columns, token kinds, and the
 * expansion of every token against hand-built records (raw and JSON keys, JSON fields, arrays,
 * envelopes, tombstones, headers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "convert/convert.h"
#include "tmpl/tmpl.h"
#include "record_fixture.h"

#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

static void assert_parse_error(const char *text, const char *want) {
    char errstr[256] = "";
    rkb_tmpl_t *tmpl = rkb_tmpl_parse(text, errstr, sizeof(errstr));
    if (tmpl)
        fail_msg("'%s' parsed, expected: %s", text, want);
    assert_string_equal(errstr, want);
}

static rkb_tmpl_t *parse(const char *text) {
    char errstr[256] = "";
    rkb_tmpl_t *tmpl = rkb_tmpl_parse(text, errstr, sizeof(errstr));
    if (!tmpl)
        fail_msg("'%s': %s", text, errstr);
    return tmpl;
}

/* Expanding text for rec gives exactly want (want_len bytes). */
static void assert_expands_n(const char *text, rkb_record_t *rec, const char *want,
                             size_t want_len) {
    rkb_tmpl_t *tmpl = parse(text);
    rkb_buf_t out;
    rkb_buf_init(&out);
    char errstr[256] = "";
    if (rkb_tmpl_expand(tmpl, rec, &out, errstr, sizeof(errstr)))
        fail_msg("'%s': %s", text, errstr);
    assert_non_null(out.data);
    assert_int_equal(out.len, want_len);
    assert_memory_equal(out.data, want, want_len);
    assert_int_equal(out.data[out.len], '\0');
    rkb_buf_free(&out);
    rkb_tmpl_destroy(tmpl);
}

static void assert_expands(const char *text, rkb_record_t *rec, const char *want) {
    assert_expands_n(text, rec, want, strlen(want));
}

static void assert_expand_error(const char *text, rkb_record_t *rec, const char *want) {
    rkb_tmpl_t *tmpl = parse(text);
    rkb_buf_t out;
    rkb_buf_init(&out);
    char errstr[256] = "";
    assert_int_equal(rkb_tmpl_expand(tmpl, rec, &out, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, want);
    rkb_buf_free(&out);
    rkb_tmpl_destroy(tmpl);
}

/* ---- parsing ---------------------------------------------------------------------------- */

static void test_parse_errors(void **state) {
    assert_parse_error("${tpoic}", "unknown token '${tpoic}' at column 1");
    assert_parse_error("ab${tpoic}", "unknown token '${tpoic}' at column 3");
    assert_parse_error("${}", "unknown token '${}' at column 1");
    assert_parse_error("${ topic }", "unknown token '${ topic }' at column 1");
    assert_parse_error("${Topic}", "unknown token '${Topic}' at column 1");
    assert_parse_error("${values.a}", "unknown token '${values.a}' at column 1");
    assert_parse_error("abcd${topic", "unterminated '${' at column 5");
    assert_parse_error("${topic}:${", "unterminated '${' at column 10");
    assert_parse_error("${value.}", "empty field path in '${value.}'");
    assert_parse_error("k:${key.}", "empty field path in '${key.}'");
    assert_parse_error("x:${value.a..b}", "empty field name in '${value.a..b}' at column 3");
    assert_parse_error("${value.a.}", "empty field name in '${value.a.}' at column 1");
    assert_parse_error("${value..a}", "empty field name in '${value..a}' at column 1");
    assert_parse_error("${header.}", "empty header name in '${header.}' at column 1");
    assert_parse_error("a$b", "'$' at column 2 must start a '${...}' token (write '$$' for a '$')");
    assert_parse_error("price$", "'$' at column 6 must start a '${...}' token (write '$$' for a "
                                 "'$')");
    /* The first problem is the one reported. */
    assert_parse_error("${tpoic}${value.}", "unknown token '${tpoic}' at column 1");
}

static void test_parse_kinds(void **state) {
    rkb_tmpl_t *tmpl = parse("${topic}:${header.tenant}:${value.a.b}");
    assert_string_equal(rkb_tmpl_text(tmpl), "${topic}:${header.tenant}:${value.a.b}");
    assert_false(rkb_tmpl_is_constant(tmpl));
    assert_true(rkb_tmpl_uses(tmpl, "topic"));
    assert_true(rkb_tmpl_uses(tmpl, "header"));
    assert_true(rkb_tmpl_uses(tmpl, "value"));
    assert_false(rkb_tmpl_uses(tmpl, "key"));
    assert_false(rkb_tmpl_uses(tmpl, "offset"));
    rkb_tmpl_destroy(tmpl);

    tmpl = parse("${key.id}/${partition}/${offset}/${timestamp}/${value}");
    assert_true(rkb_tmpl_uses(tmpl, "key"));
    assert_true(rkb_tmpl_uses(tmpl, "partition"));
    assert_true(rkb_tmpl_uses(tmpl, "offset"));
    assert_true(rkb_tmpl_uses(tmpl, "timestamp"));
    assert_true(rkb_tmpl_uses(tmpl, "value"));
    assert_false(rkb_tmpl_uses(tmpl, "topic"));
    assert_false(rkb_tmpl_uses(tmpl, "header"));
    rkb_tmpl_destroy(tmpl);

    tmpl = parse("prices$$usd");
    assert_true(rkb_tmpl_is_constant(tmpl));
    assert_string_equal(rkb_tmpl_text(tmpl), "prices$$usd");
    rkb_tmpl_destroy(tmpl);

    tmpl = parse("");
    assert_true(rkb_tmpl_is_constant(tmpl));
    assert_string_equal(rkb_tmpl_text(tmpl), "");
    rkb_tmpl_destroy(tmpl);

    rkb_tmpl_destroy(NULL);
}

/* ---- expansion -------------------------------------------------------------------------- */

static void test_expand_position(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, "k", "v");
    assert_expands("${topic}:${partition}:${offset}:${timestamp}", &rec,
                   "orders:3:42:1700000000123");
    assert_expands("prices$$usd", &rec, "prices$usd");
    assert_expands("$$${topic}$$", &rec, "$orders$");
    assert_expands("", &rec, "");
    assert_expands("} {} plain", &rec, "} {} plain");

    rec.timestamp = -1;
    assert_expand_error("t:${timestamp}", &rec, "${timestamp}: the record has no timestamp");
    rec.timestamp = 0;
    assert_expands("${timestamp}", &rec, "0");
    rkb_record_clear(&rec);
}

static void test_expand_appends(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, "k", "v");
    rkb_tmpl_t *tmpl = parse("${key}-${value}");
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "before|");
    char errstr[128];
    assert_int_equal(rkb_tmpl_expand(tmpl, &rec, &out, errstr, sizeof(errstr)), 0);
    assert_string_equal(out.data, "before|k-v");
    /* The same template, expanded again for another record. */
    rkb_record_t other;
    h_record_make(&other, "k2", "v2");
    rkb_buf_reset(&out);
    assert_int_equal(rkb_tmpl_expand(tmpl, &other, &out, errstr, sizeof(errstr)), 0);
    assert_string_equal(out.data, "k2-v2");
    rkb_buf_free(&out);
    rkb_tmpl_destroy(tmpl);
    rkb_record_clear(&rec);
    rkb_record_clear(&other);
}

static void test_expand_key(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, NULL, "v");
    /* Raw key bytes, NUL included. */
    rec.key = "a\0b";
    rec.key_len = 3;
    assert_expands_n("<${key}>", &rec, "<a\0b>", 5);
    rkb_record_clear(&rec);

    h_record_make(&rec, NULL, "v");
    assert_expand_error("${key}", &rec, "${key}: the record key is null");
    assert_expand_error("user:${key.id}", &rec, "${key.id}: the record key is null");
    rkb_record_clear(&rec);

    /* A string key with a field token is parsed on demand. */
    h_record_make(&rec, "{\"id\":5,\"region\":{\"name\":\"eu\"}}", "v");
    assert_expands("${key.id}/${key.region.name}", &rec, "5/eu");
    assert_expands("${key}", &rec, "{\"id\":5,\"region\":{\"name\":\"eu\"}}");
    assert_expand_error("${key.user}", &rec, "${key.user}: no such field in the key");
    rkb_record_clear(&rec);

    h_record_make(&rec, "abc", "v");
    assert_expand_error("${key.id}", &rec,
                        "${key.id}: key is not JSON: invalid token near 'abc' at position 3");
    rkb_record_clear(&rec);
}

/* With the json key converter, ${key} is the key's text: no quotes on a string. */
static void test_expand_json_key(void **state) {
    static const rkb_converter_t json_conv = {RKB_CONV_JSON, -1};
    static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
    static const struct {
        const char *key;
        const char *text;
    } cases[] = {
        {"\"abc\"", "abc"},
        {"42", "42"},
        {"1.5", "1.5"},
        {"{\"schema\":{\"type\":\"string\"},\"payload\":\"k1\"}", "k1"},
        {"{\"a\":[1,2]}", "{\"a\":[1,2]}"},
    };
    char errstr[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rkb_record_t rec;
        h_record_make(&rec, cases[i].key, "v");
        assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)),
                         0);
        assert_expands("${key}", &rec, cases[i].text);
        rkb_record_clear(&rec);
    }
    rkb_record_t rec;
    h_record_make(&rec, "null", "v");
    assert_int_equal(rkb_convert_record(&json_conv, &string_conv, &rec, errstr, sizeof(errstr)), 0);
    assert_expand_error("${key}", &rec, "${key}: the record key is null");
    rkb_record_clear(&rec);
}

static void test_expand_value_fields(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, "k",
                  "{\"userid\":\"User_6\",\"n\":0.1,\"count\":-3,\"ok\":true,\"gone\":null,"
                  "\"geo\":{\"city\":\"Oslo\",\"pos\":[59.9,10.7]},"
                  "\"items\":[{\"sku\":\"A1\"},{\"sku\":\"B2\"}],\"1\":\"one\"}");
    assert_expands("user:${value.userid}", &rec, "user:User_6");
    assert_expands("${value.n}|${value.count}|${value.ok}", &rec, "0.1|-3|true");
    assert_expands("${value.geo.city}", &rec, "Oslo");
    assert_expands("${value.geo}", &rec, "{\"city\":\"Oslo\",\"pos\":[59.9,10.7]}");
    assert_expands("${value.geo.pos.1}", &rec, "10.7");
    assert_expands("${value.items.1.sku}", &rec, "B2");
    assert_expands("${value.1}", &rec, "one"); /* a member name that looks like an index */
    assert_expand_error("${value.userid.x}", &rec, "${value.userid.x}: no such field in the value");
    assert_expand_error("${value.items.2}", &rec, "${value.items.2}: no such field in the value");
    assert_expand_error("${value.items.sku}", &rec,
                        "${value.items.sku}: no such field in the value");
    assert_expand_error("${value.items.+1}", &rec, "${value.items.+1}: no such field in the value");
    assert_expand_error("${value.items.-1}", &rec, "${value.items.-1}: no such field in the value");
    assert_expand_error("u:${value.user}", &rec, "${value.user}: no such field in the value");
    assert_expand_error("u:${value.gone}", &rec, "${value.gone}: the field is null");
    assert_expand_error("u:${value.gone.x}", &rec, "${value.gone.x}: no such field in the value");
    rkb_record_clear(&rec);

    /* Arrays at the top. */
    h_record_make(&rec, "k", "[\"a\",[\"b\",\"c\"]]");
    assert_expands("${value.0}-${value.1.1}", &rec, "a-c");
    rkb_record_clear(&rec);
}

static void test_expand_value_whole(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, "k", "{ \"a\" : 1 }");
    assert_expands("${value}", &rec, "{ \"a\" : 1 }"); /* the bytes as received */
    rkb_record_clear(&rec);

    /* json converter with an envelope: the payload, compact; the fields are the payload's. */
    static const rkb_converter_t json_conv = {RKB_CONV_JSON, -1};
    static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
    char errstr[256];
    h_record_make(&rec, "k", "{\"schema\":{\"type\":\"struct\"},\"payload\":{ \"a\" : 1 }}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_conv, &rec, errstr, sizeof(errstr)), 0);
    assert_expands("${value}", &rec, "{\"a\":1}");
    assert_expands("${value.a}", &rec, "1");
    assert_expand_error("${value.payload}", &rec, "${value.payload}: no such field in the value");
    rkb_record_clear(&rec);
}

static void test_expand_tombstone_and_not_json(void **state) {
    rkb_record_t rec;
    h_record_make(&rec, "k", NULL);
    assert_expand_error("${value}", &rec, "${value}: the record is a tombstone");
    assert_expand_error("x:${value.a}", &rec, "${value.a}: the record is a tombstone");
    assert_expands("${key}", &rec, "k");
    rkb_record_clear(&rec);

    h_record_make(&rec, "k", "plain text");
    assert_expands("${value}", &rec, "plain text");
    assert_expand_error("${value.a}", &rec,
                        "${value.a}: value is not JSON: invalid token near 'plain' at position 5");
    rkb_record_clear(&rec);
}

static void test_expand_headers(void **state) {
    static const h_record_header_t headers[] = {
        {"tenant", "old"}, {"tenant", "acme"}, {"empty", ""}, {"nothing", NULL}, {NULL, NULL},
    };
    rkb_record_t rec;
    h_record_make(&rec, "k", "v");
    assert_expand_error("${header.tenant}", &rec, "${header.tenant}: no such header");
    h_record_set_headers(&rec, headers);
    assert_expands("${header.tenant}:user", &rec, "acme:user");
    assert_expands("[${header.empty}]", &rec, "[]");
    assert_expand_error("${header.x}", &rec, "${header.x}: no such header");
    assert_expand_error("${header.nothing}", &rec, "${header.nothing}: the header value is null");
    rkb_record_clear(&rec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_kinds),
        cmocka_unit_test(test_expand_position),
        cmocka_unit_test(test_expand_appends),
        cmocka_unit_test(test_expand_key),
        cmocka_unit_test(test_expand_json_key),
        cmocka_unit_test(test_expand_value_fields),
        cmocka_unit_test(test_expand_value_whole),
        cmocka_unit_test(test_expand_tombstone_and_not_json),
        cmocka_unit_test(test_expand_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
