/*
 * tmpl.h — key, member and score templates.
 *
 * A template is text with tokens:
 *   ${topic} ${partition} ${offset} ${timestamp}   the record's position and timestamp (ms)
 *   ${key}                                         the record key (as text, see rkb_json_to_text
 *                                                  for JSON keys)
 *   ${value}                                       the whole value
 *   ${value.a.b} ${key.a.b}                        a field of the JSON value/key (dotted path;
 *                                                  array elements by index: ${value.items.0})
 *   ${header.NAME}                                 the last header NAME's bytes
 * "$$" is a literal "$". Anything else after "$" is a parse error.
 * A template is parsed once (config time) and expanded per record without parsing again.
 */
#ifndef RKB_TMPL_TMPL_H
#define RKB_TMPL_TMPL_H

#include "record/record.h"
#include "util/util.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct rkb_tmpl_s rkb_tmpl_t;

/* Parses text. Returns NULL with errstr ("unknown token '${foo}' at column 5") on error.
 * The result is owned by the caller (rkb_tmpl_destroy). */
rkb_tmpl_t *rkb_tmpl_parse(const char *text, char *errstr, size_t errstr_size);
void rkb_tmpl_destroy(rkb_tmpl_t *tmpl); /* NULL is safe */

/* The text the template was parsed from. */
const char *rkb_tmpl_text(const rkb_tmpl_t *tmpl);
/* True if the template has no tokens (its expansion is always its text). */
bool rkb_tmpl_is_constant(const rkb_tmpl_t *tmpl);
/* True if the template uses the token kind: "key", "value" (whole or fields), "header". */
bool rkb_tmpl_uses(const rkb_tmpl_t *tmpl, const char *kind);

/* Appends the expansion for rec to out. A missing field or header, a null key for ${key}, or a
 * value that is not JSON for ${value.x} is an error: returns -1 with errstr naming the token
 * ("${value.userid}: no such field"); out may hold a partial expansion then. Returns 0 on
 * success. Thread-safe for concurrent expansions of one template. */
int rkb_tmpl_expand(const rkb_tmpl_t *tmpl, rkb_record_t *rec, rkb_buf_t *out, char *errstr,
                    size_t errstr_size);

#endif
