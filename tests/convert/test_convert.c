/*
 * test_convert.c — unit tests of convert/: converter names, JSON parsing of keys and values,
 * Connect's schema envelope rules, whole-value bytes and the text Redis stores for JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "convert/convert.h"
#include "util/util.h"

#include <string.h>

static const rkb_converter_t string_conv = {RKB_CONV_STRING, -1};
static const rkb_converter_t json_auto = {RKB_CONV_JSON, -1};
static const rkb_converter_t json_schemas = {RKB_CONV_JSON, 1};
static const rkb_converter_t json_plain = {RKB_CONV_JSON, 0};

static void set_value(rkb_record_t *rec, const char *value) {
    rec->value = value;
    rec->value_len = value ? strlen(value) : 0;
}

static void set_key(rkb_record_t *rec, const char *key) {
    rec->key = key;
    rec->key_len = key ? strlen(key) : 0;
}

/* The whole-value bytes of rec must be exactly want. */
static void assert_value_bytes(rkb_record_t *rec, const char *want) {
    size_t len;
    const char *bytes = rkb_record_value_bytes(rec, &len);
    assert_non_null(bytes);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(bytes, want, len);
}

/* rkb_json_to_text of the JSON text src must be exactly want. */
static void assert_text(const char *src, const char *want) {
    json_error_t error;
    json_t *json = json_loads(src, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    assert_non_null(json);
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_json_to_text(json, &out);
    assert_non_null(out.data);
    assert_int_equal(out.len, strlen(want));
    assert_string_equal(out.data, want);
    rkb_buf_free(&out);
    json_decref(json);
}

static void test_converter_parse(void **state) {
    rkb_converter_type_t type;
    assert_int_equal(rkb_converter_parse("string", &type), 0);
    assert_int_equal(type, RKB_CONV_STRING);
    assert_int_equal(rkb_converter_parse("JSON", &type), 0);
    assert_int_equal(type, RKB_CONV_JSON);
    assert_int_equal(rkb_converter_parse("org.apache.kafka.connect.storage.StringConverter", &type),
                     0);
    assert_int_equal(type, RKB_CONV_STRING);
    assert_int_equal(
        rkb_converter_parse("org.apache.kafka.connect.converters.ByteArrayConverter", &type), 0);
    assert_int_equal(type, RKB_CONV_BYTES);
    assert_int_equal(rkb_converter_parse("org.apache.kafka.connect.json.JsonConverter", &type), 0);
    assert_int_equal(type, RKB_CONV_JSON);
    assert_int_equal(rkb_converter_parse("avro", &type), -1);
    assert_int_equal(rkb_converter_parse("", &type), -1);
}

static void test_json_value_parsed_up_front(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "{\"a\":1,\"b\":{\"c\":\"x\"}}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_int_equal(rec.value_json_state, 1);
    assert_true(json_is_object(rec.value_json));
    assert_int_equal(rec.value_unwrapped, 0);
    /* Not unwrapped: the original bytes, spacing and all. */
    assert_value_bytes(&rec, "{\"a\":1,\"b\":{\"c\":\"x\"}}");
    assert_ptr_equal(rkb_record_value_json(&rec, errstr, sizeof(errstr)), rec.value_json);
    rkb_record_clear(&rec);
    assert_null(rec.value_json);
    assert_null(rec.value);

    /* A flat object is checked by the fast scan (rkb_json_flat_scan) and its tree made only
     * when something asks for it. */
    set_value(&rec, "{\"a\":1,\"b\":\"x\"}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_int_equal(rec.value_json_state, 0);
    json_t *tree = rkb_record_value_json(&rec, errstr, sizeof(errstr));
    assert_true(json_is_object(tree));
    assert_int_equal(json_object_size(tree), 2);
    assert_int_equal(rec.value_json_state, 1);
    rkb_record_clear(&rec);
}

static void test_json_value_not_json(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "abc");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "value is not JSON: invalid token near 'abc' at position 3");
    assert_int_equal(rec.value_json_state, -1);
    /* Asking again gives the same reason. */
    errstr[0] = '\0';
    assert_null(rkb_record_value_json(&rec, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "value is not JSON: invalid token near 'abc' at position 3");

    set_value(&rec, "{\"a\":1");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "value is not JSON: '}' expected near end of file at position 6");

    set_value(&rec, "12345678901234567890");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(
        errstr, "value is not JSON: too big integer near '12345678901234567890' at position 20");
    rkb_record_clear(&rec);
}

static void test_json_key(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_key(&rec, "not json");
    set_value(&rec, "1");
    assert_int_equal(rkb_convert_record(&json_auto, &json_auto, &rec, errstr, sizeof(errstr)), -1);
    assert_string_equal(errstr, "key is not JSON: invalid token near 'not' at position 3");

    /* A null key and a tombstone are fine for the json converter. */
    set_key(&rec, NULL);
    set_value(&rec, NULL);
    assert_int_equal(rkb_convert_record(&json_auto, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_null(rkb_record_key_json(&rec, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "the record key is null");
    assert_null(rkb_record_value_json(&rec, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "the record is a tombstone (null value)");
    size_t len = 99;
    assert_null(rkb_record_value_bytes(&rec, &len));
    assert_int_equal(len, 0);

    set_key(&rec, "{\"schema\":{\"type\":\"int64\"},\"payload\":42}");
    assert_int_equal(rkb_convert_record(&json_auto, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_true(json_is_integer(rec.key_json));
    assert_int_equal(json_integer_value(rec.key_json), 42);
    rkb_record_clear(&rec);
}

static void test_envelope_schemas_enabled(void **state) {
    rkb_record_t rec;
    char errstr[512];
    rkb_record_init(&rec);
    set_value(&rec, "{ \"schema\": {\"type\":\"struct\"}, \"payload\": {\"id\": 7, \"n\": 0.1} }");
    assert_int_equal(rkb_convert_record(&string_conv, &json_schemas, &rec, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(rec.value_unwrapped, 1);
    assert_int_equal(json_integer_value(json_object_get(rec.value_json, "id")), 7);
    assert_value_bytes(&rec, "{\"id\":7,\"n\":0.1}");
    rkb_record_clear(&rec);

    /* Plain JSON, or an envelope with more members, is refused. */
    static const char *const bad[] = {
        "{\"id\":7}", "{\"payload\":1}", "{\"schema\":null,\"payload\":1,\"extra\":2}",
        "[1]",        "\"text\"",
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(bad); i++) {
        rkb_record_init(&rec);
        set_value(&rec, bad[i]);
        assert_int_equal(
            rkb_convert_record(&string_conv, &json_schemas, &rec, errstr, sizeof(errstr)), -1);
        assert_string_equal(errstr,
                            "value: JsonConverter with schemas.enable requires \"schema\" and "
                            "\"payload\" fields and may not contain additional fields (set "
                            "value.converter.schemas.enable=false for plain JSON)");
        assert_null(rec.value_json);
        rkb_record_clear(&rec);
    }
    rkb_record_init(&rec);
    set_key(&rec, "7");
    set_value(&rec, "{\"schema\":null,\"payload\":1}");
    assert_int_equal(rkb_convert_record(&json_schemas, &json_schemas, &rec, errstr, sizeof(errstr)),
                     -1);
    assert_string_equal(errstr, "key: JsonConverter with schemas.enable requires \"schema\" and "
                                "\"payload\" fields and may not contain additional fields (set "
                                "key.converter.schemas.enable=false for plain JSON)");
    rkb_record_clear(&rec);
}

static void test_envelope_auto(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":{\"type\":\"string\"},\"payload\":\"abc\"}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_int_equal(rec.value_unwrapped, 1);
    assert_true(json_is_string(rec.value_json));
    /* A string payload keeps its quotes in the value bytes (JSON text, for JSON.SET) ... */
    assert_value_bytes(&rec, "\"abc\"");
    assert_int_equal(rec.value_text_len, 5);
    /* ... and is its content as text. */
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_json_to_text(rec.value_json, &out);
    assert_string_equal(out.data, "abc");
    rkb_buf_free(&out);
    rkb_record_clear(&rec);

    /* Only exactly {schema, payload} is an envelope. */
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":1,\"payload\":2,\"x\":3}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_int_equal(rec.value_unwrapped, 0);
    assert_int_equal(json_object_size(rec.value_json), 3);
    assert_value_bytes(&rec, "{\"schema\":1,\"payload\":2,\"x\":3}");
    rkb_record_clear(&rec);

    rkb_record_init(&rec);
    set_value(&rec, "{\"payload\":2}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_int_equal(rec.value_unwrapped, 0);
    rkb_record_clear(&rec);
}

static void test_envelope_never(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":{},\"payload\":{\"a\":1}}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_plain, &rec, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(rec.value_unwrapped, 0);
    assert_non_null(json_object_get(rec.value_json, "schema"));
    assert_value_bytes(&rec, "{\"schema\":{},\"payload\":{\"a\":1}}");
    rkb_record_clear(&rec);
}

/* "string"/"bytes" parse on demand with the envelope rule, but their bytes pass through. */
static void test_string_converter_on_demand(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":{},\"payload\":{\"a\":1}}");
    assert_int_equal(rkb_convert_record(&string_conv, &string_conv, &rec, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(rec.value_json_state, 0); /* not parsed yet */
    json_t *json = rkb_record_value_json(&rec, errstr, sizeof(errstr));
    assert_non_null(json);
    assert_int_equal(json_integer_value(json_object_get(json, "a")), 1);
    assert_value_bytes(&rec, "{\"schema\":{},\"payload\":{\"a\":1}}");
    assert_null(rec.value_text);
    rkb_record_clear(&rec);

    /* Not JSON is only an error when asked for JSON. */
    static const rkb_converter_t bytes_conv = {RKB_CONV_BYTES, 1};
    rkb_record_init(&rec);
    set_value(&rec, "plain text");
    assert_int_equal(rkb_convert_record(&bytes_conv, &bytes_conv, &rec, errstr, sizeof(errstr)), 0);
    assert_value_bytes(&rec, "plain text");
    assert_null(rkb_record_value_json(&rec, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "value is not JSON: invalid token near 'plain' at position 5");
    rkb_record_clear(&rec);

    /* Without rkb_convert_record: "string" with schemas auto. */
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":{},\"payload\":[1,2]}");
    json = rkb_record_value_json(&rec, errstr, sizeof(errstr));
    assert_true(json_is_array(json));
    assert_int_equal(rec.value_unwrapped, 1);
    assert_value_bytes(&rec, "{\"schema\":{},\"payload\":[1,2]}");
    rkb_record_clear(&rec);
}

/* JSON_ALLOW_NUL: strings may hold NUL bytes, and keep them. */
static void test_nul_in_strings(void **state) {
    rkb_record_t rec;
    char errstr[256];
    rkb_record_init(&rec);
    set_value(&rec, "{\"schema\":{},\"payload\":\"a\\u0000b\"}");
    assert_int_equal(rkb_convert_record(&string_conv, &json_auto, &rec, errstr, sizeof(errstr)), 0);
    assert_value_bytes(&rec, "\"a\\u0000b\"");
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_json_to_text(rec.value_json, &out);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "a\0b", 3);
    rkb_buf_free(&out);
    rkb_record_clear(&rec);
}

static void test_json_to_text_scalars(void **state) {
    assert_text("\"plain\"", "plain");
    assert_text("\"quote \\\" and \\\\\"", "quote \" and \\");
    assert_text("\"caf\\u00e9\"", "caf\xc3\xa9");
    assert_text("42", "42");
    assert_text("-7", "-7");
    assert_text("9223372036854775807", "9223372036854775807");
    assert_text("-9223372036854775808", "-9223372036854775808");
    assert_text("0.1", "0.1");
    assert_text("1.5", "1.5");
    assert_text("-2.25", "-2.25");
    assert_text("1.0", "1.0");
    assert_text("100.0", "100.0");
    assert_text("1E2", "100.0");
    assert_text("1e300", "1e300");
    assert_text("1e-7", "1e-7");
    assert_text("2.5e-10", "2.5e-10");
    assert_text("0.30000000000000004", "0.30000000000000004");
    assert_text("3.141592653589793", "3.141592653589793");
    assert_text("-0.0", "-0.0");
    assert_text("true", "true");
    assert_text("false", "false");
    assert_text("null", "");
}

static void test_json_to_text_structures(void **state) {
    /* Compact, members in their order, nested values as JSON. */
    assert_text("{ \"b\" : 1, \"a\" : [1, 2.5, \"x\", null, true, {}], \"c\": {\"d\": \"e\"} }",
                "{\"b\":1,\"a\":[1,2.5,\"x\",null,true,{}],\"c\":{\"d\":\"e\"}}");
    assert_text("[]", "[]");
    assert_text("{}", "{}");
    /* Escaping as jansson does: controls escaped, UTF-8 and '/' kept. */
    assert_text("[\"a\\nb\\tc\\u0001/\\u00e9\\\"\"]", "[\"a\\nb\\tc\\u0001/\xc3\xa9\\\"\"]");

    /* jansson refuses NUL in keys when parsing, but an object built in code may have one. */
    json_t *object = json_object();
    json_object_setn_new(object, "k\0ey", 4, json_integer(1));
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_json_to_text(object, &out);
    assert_string_equal(out.data, "{\"k\\u0000ey\":1}");
    assert_int_equal(rkb_json_object_key_len(json_object_iter_key(json_object_iter(object))), 4);
    rkb_buf_free(&out);
    json_decref(object);
}

static void test_double_to_text(void **state) {
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {3, "3"},
        {0.1, "0.1"},
        {-1.5, "-1.5"},
        {100, "100"},
        {1e16, "10000000000000000"},
        {1e17, "1e+17"},
        {0.0001, "0.0001"},
        {0.00001, "1e-05"},
        {1e300, "1e+300"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789012.0, "123456789012"},
        {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(cases); i++) {
        rkb_buf_t out;
        rkb_buf_init(&out);
        rkb_double_to_text(cases[i].value, &out);
        assert_string_equal(out.data, cases[i].text);
        rkb_buf_free(&out);
    }
}

static void test_type_names(void **state) {
    json_t *json = json_pack("{s:[]}", "a");
    assert_string_equal(rkb_json_type_name(json), "an object");
    assert_string_equal(rkb_json_type_name(json_object_get(json, "a")), "an array");
    json_decref(json);
    json = json_string("x");
    assert_string_equal(rkb_json_type_name(json), "a string");
    json_decref(json);
    json = json_real(1.5);
    assert_string_equal(rkb_json_type_name(json), "a number");
    json_decref(json);
    assert_string_equal(rkb_json_type_name(json_true()), "a boolean");
    assert_string_equal(rkb_json_type_name(json_null()), "null");
}

/* The flat-object fast path (rkb_json_flat_scan) accepts only what it renders exactly as the
 * JSON tree does: for every accepted value, its members, unescaped, are what jansson's parse and
 * rkb_json_to_text give, in the same order; everything else is refused, for the tree path. */
static void test_flat_scan_matches_tree(void **state) {
    (void)state;
    static const char *const accepted[] = {
        "{}",
        " { \"a\" : \"x\" , \"b\":1,\"c\":-25, \"d\":true,\"e\":false,\"f\":null } \n",
        "{\"s\":\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"}",
        "{\"zero\":0,\"neg\":-7,\"big\":123456789012345678,\"empty\":\"\"}",
        "{\"viewtime\":1,\"userid\":\"User_1\",\"pageid\":\"Page_1\",\"pad\":\"xxx\"}",
    };
    static const char *const refused[] = {
        "",         "[]",           "\"s\"",         "{\"a\":1.5}",     "{\"a\":1e3}",
        "{\"a\":-0}", "{\"a\":01}",  "{\"a\":{}}",     "{\"a\":[1]}",     "{\"a\":\"\\u0041\"}",
        "{\"a\":\"\xc3\xa9\"}", "{\"a\":1,\"a\":2}", "{\"a\":1,}", "{\"a\" 1}",  "{\"a\":tru}",
        "{\"a\":truex}", "{\"a\":1}x", "{\"a\":\"\x01\"}", "{\"a\\\"b\":1}",
        "{\"a\":1234567890123456789}", "{\"schema\":{},\"payload\":1}", "{\"schema\":1}",
        "{\"a\":1", "{\"a\":\"x}",
    };
    rkb_json_field_t fields[8];
    rkb_buf_t got, want;
    rkb_buf_init(&got);
    rkb_buf_init(&want);
    for (size_t i = 0; i < RKB_ARRAY_SIZE(accepted); i++) {
        const char *text = accepted[i];
        int cnt = rkb_json_flat_scan(text, strlen(text), -1, fields, RKB_ARRAY_SIZE(fields));
        if (cnt < 0)
            fail_msg("refused %s", text);
        json_t *tree = json_loads(text, 0, NULL);
        assert_non_null(tree);
        assert_int_equal((size_t)cnt, json_object_size(tree));
        int k = 0;
        const char *name;
        json_t *member;
        json_object_foreach(tree, name, member) {
            assert_int_equal(fields[k].name_len, strlen(name));
            assert_memory_equal(fields[k].name, name, strlen(name));
            assert_int_equal(fields[k].is_null, json_is_null(member));
            rkb_buf_reset(&got);
            rkb_buf_reset(&want);
            if (fields[k].escaped_value)
                rkb_json_unescape(fields[k].value, fields[k].value_len, &got);
            else
                rkb_buf_append(&got, fields[k].value, fields[k].value_len);
            rkb_json_to_text(member, &want);
            if (!json_is_null(member)) {
                assert_int_equal(got.len, want.len);
                assert_memory_equal(got.data, want.data, got.len);
            }
            k++;
        }
        json_decref(tree);
    }
    for (size_t i = 0; i < RKB_ARRAY_SIZE(refused); i++)
        if (rkb_json_flat_scan(refused[i], strlen(refused[i]), -1, fields,
                               RKB_ARRAY_SIZE(fields)) >= 0)
            fail_msg("accepted %s", refused[i]);
    /* Envelope names are plain members when schemas are off; an envelope is required when on. */
    const char *envelope = "{\"schema\":1,\"payload\":2}";
    assert_int_equal(rkb_json_flat_scan(envelope, strlen(envelope), 0, fields, 8), 2);
    assert_int_equal(rkb_json_flat_scan("{\"a\":1}", 7, 1, fields, 8), -1);
    /* More members than there is room for. */
    assert_int_equal(rkb_json_flat_scan("{\"a\":1,\"b\":2}", 13, -1, fields, 1), -1);
    rkb_buf_free(&got);
    rkb_buf_free(&want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converter_parse),
        cmocka_unit_test(test_json_value_parsed_up_front),
        cmocka_unit_test(test_json_value_not_json),
        cmocka_unit_test(test_json_key),
        cmocka_unit_test(test_envelope_schemas_enabled),
        cmocka_unit_test(test_envelope_auto),
        cmocka_unit_test(test_envelope_never),
        cmocka_unit_test(test_string_converter_on_demand),
        cmocka_unit_test(test_nul_in_strings),
        cmocka_unit_test(test_json_to_text_scalars),
        cmocka_unit_test(test_json_to_text_structures),
        cmocka_unit_test(test_double_to_text),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_flat_scan_matches_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
