/*
 * convert.c — Kafka Connect-style converters: the step between a consumed record (kafka/) and
 * the data mapping (tmpl/, sink/writer). Parses keys and values as JSON (up front for the
 * "json" converter, on demand for "string"/"bytes"), unwraps Connect's schema envelope, and
 * renders JSON as the text Redis stores.
 *
 * Numbers: jansson keeps integers as json_int_t (long long; a larger integer is a parse error,
 * "too big integer") and reals as double. Integers print exactly as received. Reals print in
 * the shortest form that reads back as the same double ("0.1", not jansson's %.17g
 * "0.10000000000000001"), which is the received text for any real written in its shortest
 * form; other spellings ("1.50", "1E2") come back normalized ("1.5", "100.0").
 * snprintf/strtod are used in the C locale (rkbridge never calls setlocale).
 */
#include "convert/convert.h"

#include "util/util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENVELOPE_ERROR                                                                             \
    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not "    \
    "contain additional fields"

int rkb_converter_parse(const char *name, rkb_converter_type_t *type) {
    static const struct {
        const char *short_name;
        const char *class_name;
        rkb_converter_type_t type;
    } converters[] = {
        {"string", "org.apache.kafka.connect.storage.StringConverter", RKB_CONV_STRING},
        {"bytes", "org.apache.kafka.connect.converters.ByteArrayConverter", RKB_CONV_BYTES},
        {"json", "org.apache.kafka.connect.json.JsonConverter", RKB_CONV_JSON},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(converters); i++) {
        if (!strcasecmp(name, converters[i].short_name) ||
            !strcmp(name, converters[i].class_name)) {
            *type = converters[i].type;
            return 0;
        }
    }
    return -1;
}

/* Connect's envelope: an object whose only members are "schema" and "payload". */
static bool is_envelope(const json_t *json) {
    return json_is_object(json) && json_object_size(json) == 2 && json_object_get(json, "schema") &&
           json_object_get(json, "payload");
}

/* Parses data as JSON and applies the envelope rule. what is "key" or "value" (for messages).
 * Returns the JSON (a new reference) and sets *unwrapped, or NULL with errstr. */
static json_t *parse_json(const char *data, size_t len, int schemas_enable, const char *what,
                          int *unwrapped, char *errstr, size_t errstr_size) {
    json_error_t error;
    json_t *json = json_loadb(data, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
    if (!json) {
        snprintf(errstr, errstr_size, "%s is not JSON: %s at position %d", what, error.text,
                 error.position);
        return NULL;
    }
    *unwrapped = 0;
    if (schemas_enable == 0)
        return json;
    if (!is_envelope(json)) {
        if (schemas_enable < 0)
            return json;
        snprintf(errstr, errstr_size,
                 "%s: " ENVELOPE_ERROR " (set %s.converter.schemas.enable=false for plain JSON)",
                 what, what);
        json_decref(json);
        return NULL;
    }
    json_t *payload = json_incref(json_object_get(json, "payload"));
    json_decref(json);
    *unwrapped = 1;
    return payload;
}

/* A value rkb_json_flat_scan accepts is valid JSON: the tree is left to whoever needs it (a
 * HASH write reads such a value without one). */
static bool is_flat_object(const rkb_record_t *rec) {
    rkb_json_field_t fields[64];
    return rec->value_json_state == 0 &&
           rkb_json_flat_scan(rec->value, rec->value_len, rec->value_schemas_enable, fields,
                              RKB_ARRAY_SIZE(fields)) >= 0;
}

int rkb_convert_record(const rkb_converter_t *key_conv, const rkb_converter_t *value_conv,
                       rkb_record_t *rec, char *errstr, size_t errstr_size) {
    rec->key_conv_type = key_conv->type;
    rec->key_schemas_enable = key_conv->schemas_enable;
    rec->value_conv_type = value_conv->type;
    rec->value_schemas_enable = value_conv->schemas_enable;

    /* The json converter rejects what is not JSON now, so that a bad record fails as a whole
     * before any command is built for it. A null key or a tombstone is valid for it. */
    if (key_conv->type == RKB_CONV_JSON && rec->key &&
        !rkb_record_key_json(rec, errstr, errstr_size))
        return -1;
    if (value_conv->type == RKB_CONV_JSON && rec->value && !is_flat_object(rec) &&
        !rkb_record_value_json(rec, errstr, errstr_size))
        return -1;
    return 0;
}

json_t *rkb_record_value_json(rkb_record_t *rec, char *errstr, size_t errstr_size) {
    if (rec->value_json_state == 1)
        return rec->value_json;
    if (!rec->value) {
        snprintf(errstr, errstr_size, "the record is a tombstone (null value)");
        return NULL;
    }
    /* A failed parse is not cached: parsing again is the cheapest way to give the same
     * message to every caller, and failures are rare. */
    int unwrapped;
    json_t *json = parse_json(rec->value, rec->value_len, rec->value_schemas_enable, "value",
                              &unwrapped, errstr, errstr_size);
    if (!json) {
        rec->value_json_state = -1;
        return NULL;
    }
    rec->value_json = json;
    rec->value_json_state = 1;
    rec->value_unwrapped = unwrapped;
    return json;
}

json_t *rkb_record_key_json(rkb_record_t *rec, char *errstr, size_t errstr_size) {
    if (rec->key_json_state == 1)
        return rec->key_json;
    if (!rec->key) {
        snprintf(errstr, errstr_size, "the record key is null");
        return NULL;
    }
    int unwrapped;
    json_t *json = parse_json(rec->key, rec->key_len, rec->key_schemas_enable, "key", &unwrapped,
                              errstr, errstr_size);
    if (!json) {
        rec->key_json_state = -1;
        return NULL;
    }
    rec->key_json = json;
    rec->key_json_state = 1;
    return json;
}

static void dump_compact(const json_t *json, rkb_buf_t *out);

const char *rkb_record_value_bytes(rkb_record_t *rec, size_t *len) {
    if (rec->value_replaced) {
        *len = rec->value_text_len;
        return rec->value_text;
    }
    if (!rec->value) {
        *len = 0;
        return NULL;
    }
    /* Only the json converter changes what the value is; string and bytes pass the bytes
     * through even when a template looked inside an envelope. */
    if (rec->value_conv_type != RKB_CONV_JSON || rec->value_json_state != 1 ||
        !rec->value_unwrapped) {
        *len = rec->value_len;
        return rec->value;
    }
    if (!rec->value_text) {
        rkb_buf_t text;
        rkb_buf_init(&text);
        dump_compact(rec->value_json, &text);
        rec->value_text = text.data; /* the record takes the buffer's memory */
        rec->value_text_len = text.len;
    }
    *len = rec->value_text_len;
    return rec->value_text;
}

void rkb_record_set_value_json(rkb_record_t *rec, json_t *json) {
    json_decref(rec->value_json); /* after the caller's new reference: json may be this one */
    rec->value_json = json;
    rec->value_json_state = 1;
    rec->value_replaced = 1;
    rkb_buf_t text;
    rkb_buf_init(&text);
    dump_compact(json, &text);
    free(rec->value_text);
    rec->value_text = text.data; /* the record takes the buffer's memory */
    rec->value_text_len = text.len;
}

void rkb_double_to_text(double value, rkb_buf_t *out) {
    char text[40];
    int digits = 17; /* 17 significant digits always read back as the same double */
    for (int precision = 1; precision < 17; precision++) {
        snprintf(text, sizeof(text), "%.*e", precision - 1, value);
        if (strtod(text, NULL) == value) {
            digits = precision;
            break;
        }
    }
    /* Lay the digits out as %.17g would (jansson's choice): plain notation for exponents in
     * [-4, 17), else scientific. %.*g with the short precision would switch to scientific
     * sooner (100 as "1e+02"). */
    snprintf(text, sizeof(text), "%.*e", digits - 1, value);
    int exponent = atoi(strchr(text, 'e') + 1);
    if (exponent >= -4 && exponent < 17) {
        int decimals = digits - 1 - exponent;
        snprintf(text, sizeof(text), "%.*f", decimals > 0 ? decimals : 0, value);
    }
    rkb_buf_appends(out, text);
}

/* A JSON real: rkb_double_to_text, then jansson's spelling (".0" on integral values so the
 * number stays a real, no '+' or leading zeros in the exponent). */
static void append_real(double value, rkb_buf_t *out) {
    size_t start = out->len;
    rkb_double_to_text(value, out);
    char *text = out->data + start;
    char *exponent = strchr(text, 'e');
    if (!exponent) {
        if (!strchr(text, '.') && !strchr(text, 'n') && !strchr(text, 'i'))
            rkb_buf_appends(out, ".0");
        return;
    }
    char *digits = exponent + 1;
    if (*digits == '-')
        digits++;
    char *first = digits;
    while (*first == '+' || (*first == '0' && first[1]))
        first++;
    if (digits != first) {
        memmove(digits, first, strlen(first) + 1);
        out->len = (size_t)(digits - out->data) + strlen(digits);
    }
}

/* A JSON string literal, escaped as jansson does without flags (UTF-8 kept as is). */
static void append_string_literal(const char *str, size_t len, rkb_buf_t *out) {
    rkb_buf_append(out, "\"", 1);
    size_t run = 0; /* start of the bytes not yet copied */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)str[i];
        if (c != '"' && c != '\\' && c >= 0x20)
            continue;
        rkb_buf_append(out, str + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            rkb_buf_appends(out, "\\\"");
            break;
        case '\\':
            rkb_buf_appends(out, "\\\\");
            break;
        case '\b':
            rkb_buf_appends(out, "\\b");
            break;
        case '\f':
            rkb_buf_appends(out, "\\f");
            break;
        case '\n':
            rkb_buf_appends(out, "\\n");
            break;
        case '\r':
            rkb_buf_appends(out, "\\r");
            break;
        case '\t':
            rkb_buf_appends(out, "\\t");
            break;
        default:
            rkb_buf_appendf(out, "\\u%04x", c);
        }
    }
    rkb_buf_append(out, str + run, len - run);
    rkb_buf_append(out, "\"", 1);
}

size_t rkb_json_object_key_len(const char *key) {
#if JANSSON_VERSION_HEX >= 0x020e00
    return json_object_iter_key_len(json_object_key_to_iter(key));
#else
    return strlen(key); /* older jansson: keys have no NUL bytes */
#endif
}

/* Compact JSON (no spaces), object members in their order, as json_dumps(JSON_COMPACT |
 * JSON_ENCODE_ANY) writes it except for reals (see append_real). Appends to out: no allocation
 * once out is large enough. */
static void dump_compact(const json_t *json, rkb_buf_t *out) {
    switch (json_typeof(json)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        bool first = true;
        rkb_buf_append(out, "{", 1);
        json_object_foreach((json_t *)json, key, member) {
            if (!first)
                rkb_buf_append(out, ",", 1);
            first = false;
            append_string_literal(key, rkb_json_object_key_len(key), out);
            rkb_buf_append(out, ":", 1);
            dump_compact(member, out);
        }
        rkb_buf_append(out, "}", 1);
        break;
    }
    case JSON_ARRAY: {
        size_t index;
        json_t *element;
        rkb_buf_append(out, "[", 1);
        json_array_foreach(json, index, element) {
            if (index)
                rkb_buf_append(out, ",", 1);
            dump_compact(element, out);
        }
        rkb_buf_append(out, "]", 1);
        break;
    }
    case JSON_STRING:
        append_string_literal(json_string_value(json), json_string_length(json), out);
        break;
    case JSON_INTEGER:
        rkb_buf_appendf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(json));
        break;
    case JSON_REAL:
        append_real(json_real_value(json), out);
        break;
    case JSON_TRUE:
        rkb_buf_appends(out, "true");
        break;
    case JSON_FALSE:
        rkb_buf_appends(out, "false");
        break;
    case JSON_NULL:
        rkb_buf_appends(out, "null");
        break;
    }
}

void rkb_json_to_text(const json_t *json, rkb_buf_t *out) {
    if (json_is_string(json))
        rkb_buf_append(out, json_string_value(json), json_string_length(json));
    else if (json_is_null(json))
        rkb_buf_append(out, "", 0); /* keeps out NUL-terminated even when it was empty */
    else
        dump_compact(json, out);
}

const char *rkb_json_type_name(const json_t *json) {
    switch (json_typeof(json)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* ---- flat objects without a tree --------------------------------------------------------- */

static const char *skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string from after its opening quote: ASCII, no control characters, escapes but \u. Sets
 * *escaped; returns what follows the closing quote, or NULL. */
static const char *scan_string(const char *p, const char *end, bool *escaped) {
    *escaped = false;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20 || c >= 0x80)
            return NULL;
        if (c == '\\') {
            if (p + 1 >= end || !strchr("\"\\/bfnrt", p[1]))
                return NULL;
            *escaped = true;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

/* An integer as jansson would print it again: -?(0|[1-9][0-9]*), not "-0", at most 18 digits
 * (inside int64). Returns what follows, or NULL. */
static const char *scan_integer(const char *p, const char *end) {
    const char *start = p;
    if (p < end && *p == '-')
        p++;
    const char *digits = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    size_t n = (size_t)(p - digits);
    if (!n || n > 18 || (n > 1 && *digits == '0') || (n == 1 && *digits == '0' && digits != start))
        return NULL;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return NULL; /* a real: its text comes back as %.17g */
    return p;
}

int rkb_json_flat_scan(const char *data, size_t len, int schemas_enable, rkb_json_field_t *fields,
                       size_t max) {
    if (schemas_enable == 1)
        return -1; /* an envelope is required: the tree path unwraps or refuses it */
    const char *p = data, *end = data + len;
    p = skip_ws(p, end);
    if (p == end || *p++ != '{')
        return -1;
    size_t cnt = 0;
    p = skip_ws(p, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p == end || *p++ != '"' || cnt == max)
                return -1;
            rkb_json_field_t *f = &fields[cnt];
            memset(f, 0, sizeof(*f));
            f->name = p;
            if (!(p = scan_string(p, end, &f->escaped_name)))
                return -1;
            f->name_len = (size_t)(p - 1 - f->name);
            p = skip_ws(p, end);
            if (p == end || *p++ != ':')
                return -1;
            p = skip_ws(p, end);
            if (p == end)
                return -1;
            if (*p == '"') {
                f->value = ++p;
                f->is_string = true;
                if (!(p = scan_string(p, end, &f->escaped_value)))
                    return -1;
                f->value_len = (size_t)(p - 1 - f->value);
            } else {
                f->value = p;
                static const char *const literals[] = {"true", "false", "null"};
                const char *after = NULL;
                for (size_t l = 0; l < 3 && !after; l++) {
                    size_t n = strlen(literals[l]);
                    if ((size_t)(end - p) >= n && !memcmp(p, literals[l], n)) {
                        after = p + n;
                        f->is_null = l == 2;
                    }
                }
                if (!after && !(after = scan_integer(p, end)))
                    return -1;
                p = after;
                f->value_len = (size_t)(p - f->value);
            }
            /* Names must be distinct (jansson keeps the last of duplicates), and an envelope's
             * names go the tree way. */
            if (f->escaped_name ||
                (schemas_enable < 0 && ((f->name_len == 6 && !memcmp(f->name, "schema", 6)) ||
                                        (f->name_len == 7 && !memcmp(f->name, "payload", 7)))))
                return -1;
            for (size_t k = 0; k < cnt; k++)
                if (fields[k].name_len == f->name_len &&
                    !memcmp(fields[k].name, f->name, f->name_len))
                    return -1;
            cnt++;
            p = skip_ws(p, end);
            if (p == end)
                return -1;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p++ != ',')
                return -1;
            p = skip_ws(p, end);
        }
    }
    p = skip_ws(p, end);
    return p == end ? (int)cnt : -1;
}

void rkb_json_unescape(const char *text, size_t len, rkb_buf_t *out) {
    const char *end = text + len;
    while (text < end) {
        const char *backslash = memchr(text, '\\', (size_t)(end - text));
        if (!backslash) {
            rkb_buf_append(out, text, (size_t)(end - text));
            return;
        }
        rkb_buf_append(out, text, (size_t)(backslash - text));
        char c = backslash[1];
        char plain = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
        rkb_buf_append(out, &plain, 1);
        text = backslash + 2;
    }
}
