/*
 * record.h — one Kafka record as the sink sees it, and its converted forms.
 *
 * A record views the bytes of a consumed message (it does not copy them): kafka/ fills the
 * fields from an rd_kafka_message_t, convert/ adds the parsed JSON forms, tmpl/ and
 * sink/encode read them. The JSON forms are owned by the record and freed by rkb_record_clear.
 * A record is used by one thread at a time.
 */
#ifndef RKB_RECORD_RECORD_H
#define RKB_RECORD_RECORD_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rkb_record_s rkb_record_t;

struct rkb_record_s {
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* ms since the epoch, -1 if the record has none */

    const char *key; /* NULL: null key */
    size_t key_len;
    const char *value; /* NULL: tombstone */
    size_t value_len;

    /* Header lookup, set by whoever fills the record (NULL: no headers). Finds the last
     * header named name; returns 0 and sets *val (NULL for a null header value) and *len,
     * or -1 if there is none. */
    int (*header_get)(const rkb_record_t *rec, const char *name, const void **val, size_t *len);
    void *source; /* what the record views (an rd_kafka_message_t for kafka/) */

    /* Converted forms: see convert.h. */
    json_t *key_json;      /* owned; NULL until parsed */
    json_t *value_json;    /* owned; NULL until parsed (the payload when an envelope was unwrapped) */
    int value_json_state;  /* 0 not tried, 1 parsed, -1 not JSON */
    int key_json_state;    /* 0 not tried, 1 parsed, -1 not JSON */
    int value_unwrapped;   /* 1: value_json is a Connect envelope's payload, value bytes are not it */
    char *value_text;      /* owned; serialized value_json when value_unwrapped or replaced */
    size_t value_text_len;
    int value_replaced;    /* 1: value_json was set by a processing step (enrichment) and
                            * value_text is its serialization: it is what the record's value now
                            * is; value/value_len keep the consumed bytes (dead-letter topic) */

    /* The converters that apply, copied by rkb_convert_record (rkb_record_init sets "string"
     * with schemas auto). On-demand parsing follows them, and they decide what ${key} and the
     * whole-value bytes mean (see convert.h). */
    int key_conv_type;        /* an rkb_converter_type_t */
    int key_schemas_enable;   /* 1, 0, or -1 = auto */
    int value_conv_type;      /* an rkb_converter_type_t */
    int value_schemas_enable; /* 1, 0, or -1 = auto */
};

/* Sets every field to "empty" (no key, tombstone, no JSON). */
void rkb_record_init(rkb_record_t *rec);
/* Frees the converted forms and re-inits. Safe on an inited record. */
void rkb_record_clear(rkb_record_t *rec);

#endif
