/*
 * record_fixture.c — hand-made records for unit tests (see record_fixture.h): what a Kafka
 * message would give the sink, without a broker.
 */
#include "record_fixture.h"

#include <string.h>

void h_record_make(rkb_record_t *rec, const char *key, const char *value) {
    rkb_record_init(rec);
    rec->topic = "orders";
    rec->partition = 3;
    rec->offset = 42;
    rec->timestamp = 1700000000123;
    rec->key = key;
    rec->key_len = key ? strlen(key) : 0;
    rec->value = value;
    rec->value_len = value ? strlen(value) : 0;
}

int h_record_header_get(const rkb_record_t *rec, const char *name, const void **val, size_t *len) {
    const h_record_header_t *headers = rec->source;
    int found = -1;
    for (size_t i = 0; headers[i].name; i++) { /* the last one named name wins */
        if (!strcmp(headers[i].name, name)) {
            *val = headers[i].value;
            *len = headers[i].value ? strlen(headers[i].value) : 0;
            found = 0;
        }
    }
    return found;
}

void h_record_set_headers(rkb_record_t *rec, const h_record_header_t *headers) {
    rec->header_get = h_record_header_get;
    rec->source = (void *)headers; /* rkb_record_t's source is not const; header_get only reads */
}
