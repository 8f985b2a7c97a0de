/*
 * record.c — life cycle of rkb_record_t, the sink's view of one consumed Kafka record.
 *
 * kafka/ fills a record from a message, convert/ attaches the parsed JSON forms, tmpl/ and
 * sink/writer read it; this file only resets it and frees what the record owns.
 */
#include "record/record.h"

#include "convert/convert.h"

#include <stdlib.h>
#include <string.h>

void rkb_record_init(rkb_record_t *rec) {
    memset(rec, 0, sizeof(*rec));
    rec->partition = -1;
    rec->offset = -1;
    rec->timestamp = -1;
    rec->key_conv_type = RKB_CONV_STRING;
    rec->key_schemas_enable = -1;
    rec->value_conv_type = RKB_CONV_STRING;
    rec->value_schemas_enable = -1;
}

void rkb_record_clear(rkb_record_t *rec) {
    json_decref(rec->key_json);
    json_decref(rec->value_json);
    free(rec->value_text);
    rkb_record_init(rec);
}
