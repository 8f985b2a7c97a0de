/*
 * convert.h — Kafka Connect-style converters for record keys and values.
 *
 * Converters: "string" (org.apache.kafka.connect.storage.StringConverter), "bytes"
 * (org.apache.kafka.connect.converters.ByteArrayConverter) and "json"
 * (org.apache.kafka.connect.json.JsonConverter). Redis stores bytes, so string and bytes both
 * pass the bytes through; the difference is that a type or template that needs fields (HASH,
 * STREAM, ${value.a.b}) parses string/bytes data as schemaless JSON on demand, while "json"
 * parses every record up front and rejects what is not JSON.
 * JSON schemas: schemas_enable 1 requires Connect's {"schema":...,"payload":...} envelope and
 * unwraps it; 0 never unwraps; -1 (auto, the default) unwraps an object whose only members are
 * "schema" and "payload".
 */
#ifndef RKB_CONVERT_CONVERT_H
#define RKB_CONVERT_CONVERT_H

#include "record/record.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    RKB_CONV_STRING = 0,
    RKB_CONV_BYTES,
    RKB_CONV_JSON,
} rkb_converter_type_t;

typedef struct rkb_converter_s {
    rkb_converter_type_t type;
    int schemas_enable; /* 1, 0, or -1 = auto */
} rkb_converter_t;

/* Parses a converter name: "string", "bytes", "json" or the Connect class names above.
 * Returns 0 or -1. */
int rkb_converter_parse(const char *name, rkb_converter_type_t *type);

/* Applies the key and value converters to rec. For "json" this parses (and unwraps) now.
 * Returns 0, or -1 with a reason in errstr (the caller adds topic/partition/offset). */
int rkb_convert_record(const rkb_converter_t *key_conv, const rkb_converter_t *value_conv,
                       rkb_record_t *rec, char *errstr, size_t errstr_size);

/* The value as JSON, parsing it on first use (schemaless, with the value converter's envelope
 * rule). Returns a borrowed reference (owned by rec), or NULL with errstr set for a tombstone
 * or a value that is not JSON. */
json_t *rkb_record_value_json(rkb_record_t *rec, char *errstr, size_t errstr_size);
/* The key as JSON (same rules, key converter); NULL with errstr for a null or non-JSON key. */
json_t *rkb_record_key_json(rkb_record_t *rec, char *errstr, size_t errstr_size);

/* The value's bytes as they should be written for a whole-value write (SET, PUBLISH, JSON.SET):
 * the value set by rkb_record_set_value_json if any, else the original bytes, or, for the
 * "json" converter, the compact serialization of an unwrapped
 * payload (a string payload keeps its quotes: it is JSON text). "string"/"bytes" always give the
 * original bytes. NULL for a tombstone. Borrowed (owned by rec). */
const char *rkb_record_value_bytes(rkb_record_t *rec, size_t *len);

/* Replaces the record's value with json, as a processing step's result (enrichment): from now
 * on rkb_record_value_json returns json and rkb_record_value_bytes its compact serialization,
 * whatever the value converter; rec->value/value_len still hold the consumed bytes (what a
 * dead-letter topic gets). json is consumed (the record owns the reference); it may be the
 * record's current value_json. Not for tombstones. */
void rkb_record_set_value_json(rkb_record_t *rec, json_t *json);

/* The text of a JSON scalar or structure as Redis should store it: strings as their content
 * (no quotes), numbers/booleans as their JSON text, null as "", objects and arrays as compact
 * JSON. Appends to out. */
struct rkb_buf_s;
void rkb_json_to_text(const json_t *json, struct rkb_buf_s *out);

/* The shortest decimal text that reads back as the same double ("0.1", "1e+300", "3"), at most
 * 17 significant digits. Appends to out. */
void rkb_double_to_text(double value, struct rkb_buf_s *out);
/* "an object", "an array", "a string", "a number", "a boolean" or "null", for messages. */
const char *rkb_json_type_name(const json_t *json);
/* The length of an object member's key as returned by json_object_foreach (keys may hold NUL
 * bytes). */
size_t rkb_json_object_key_len(const char *key);

/*
 * The fast path for the common value, a flat JSON object such as {"user":"u1","n":3}: scans
 * the bytes without building a JSON tree. Accepts only what it can render exactly as the tree
 * would (rkb_json_to_text): an object whose members are strings (escapes but \u, ASCII only),
 * integers in canonical form, true, false or null, with distinct names; anything else (nesting,
 * reals, \u escapes, bytes >= 0x80, a member named "schema" or "payload" when an envelope may
 * apply, more than max members) returns -1 and the caller takes the jansson path, which also
 * gives the error message for bad JSON. Returns the number of members, each in fields.
 */
typedef struct rkb_json_field_s {
    const char *name;  /* inside the scanned bytes, quotes excluded, escapes not undone */
    size_t name_len;
    const char *value; /* string: the raw content between the quotes; else the literal */
    size_t value_len;
    bool escaped_name, escaped_value; /* undo escapes with rkb_json_unescape */
    bool is_string, is_null;
} rkb_json_field_t;
int rkb_json_flat_scan(const char *data, size_t len, int schemas_enable, rkb_json_field_t *fields,
                       size_t max);
/* Appends the unescaped form of a scanned string to out. */
void rkb_json_unescape(const char *text, size_t len, struct rkb_buf_s *out);

#endif
