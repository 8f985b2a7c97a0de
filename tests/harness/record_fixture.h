/*
 * record_fixture.h — hand-made records for unit tests of the modules that read an rkb_record_t
 * (tmpl/, sink/writer): the fixed topic/partition/offset/timestamp they expect in their
 * messages, and headers given as a static name/value table instead of a Kafka message.
 */
#ifndef RKB_TESTS_RECORD_FIXTURE_H
#define RKB_TESTS_RECORD_FIXTURE_H

#include "record/record.h"

#include <stddef.h>

/* One header of a test record. A table of them ends with a NULL name; a NULL value is a header
 * with a null value. */
typedef struct h_record_header_s {
    const char *name;
    const char *value;
} h_record_header_t;

/* Inits rec as topic "orders", partition 3, offset 42, timestamp 1700000000123, with key and
 * value (NULL: null key, tombstone) and no headers. key and value are borrowed. Free what the
 * record converts with rkb_record_clear. */
void h_record_make(rkb_record_t *rec, const char *key, const char *value);

/* An rkb_record_t header_get over the h_record_header_t table in rec->source: the last header
 * named name wins. */
int h_record_header_get(const rkb_record_t *rec, const char *name, const void **val, size_t *len);

/* Gives rec the headers of the NULL-name-terminated table headers (borrowed: it must outlive
 * rec's use). */
void h_record_set_headers(rkb_record_t *rec, const h_record_header_t *headers);

#endif
