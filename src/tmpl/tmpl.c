/*
 * tmpl.c — key, member and score templates: parsed once into a token list when the config is
 * loaded, expanded per record by sink/writer without parsing again.
 *
 * A template is read-only after rkb_tmpl_parse, so any number of threads may expand it at once;
 * the record (and its lazily parsed JSON, see convert.h) belongs to the expanding thread.
 */
#include "tmpl/tmpl.h"

#include "convert/convert.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if JANSSON_VERSION_HEX < 0x020e00 /* jansson < 2.14: keys cannot hold NUL bytes */
#define json_object_getn(object, key, key_len) json_object_get(object, key)
#endif

typedef enum {
    TOK_LITERAL,
    TOK_TOPIC,
    TOK_PARTITION,
    TOK_OFFSET,
    TOK_TIMESTAMP,
    TOK_KEY,         /* ${key} */
    TOK_KEY_FIELD,   /* ${key.a.b} */
    TOK_VALUE,       /* ${value} */
    TOK_VALUE_FIELD, /* ${value.a.b} */
    TOK_HEADER,      /* ${header.NAME} */
} tok_kind_t;

/* One step of a field path: an object member name, or an array index when it is decimal. */
typedef struct {
    char *name;
    size_t name_len;
    int64_t index; /* -1: not an array index */
} path_step_t;

typedef struct {
    tok_kind_t kind;
    char *text; /* TOK_LITERAL: the bytes to emit ("$$" already made "$"); else the token as
                 * written ("${value.a}"), for messages */
    size_t text_len;
    path_step_t *steps; /* *_FIELD */
    size_t step_cnt;
    char *header_name; /* TOK_HEADER */
} tok_t;

struct rkb_tmpl_s {
    char *text; /* as parsed */
    tok_t *toks;
    size_t tok_cnt;
};

static void tok_free(tok_t *tok) {
    free(tok->text);
    for (size_t i = 0; i < tok->step_cnt; i++)
        free(tok->steps[i].name);
    free(tok->steps);
    free(tok->header_name);
}

void rkb_tmpl_destroy(rkb_tmpl_t *tmpl) {
    if (!tmpl)
        return;
    for (size_t i = 0; i < tmpl->tok_cnt; i++)
        tok_free(&tmpl->toks[i]);
    free(tmpl->toks);
    free(tmpl->text);
    free(tmpl);
}

static tok_t *tok_add(rkb_tmpl_t *tmpl, tok_kind_t kind, const char *text, size_t text_len) {
    tmpl->toks = rkb_realloc(tmpl->toks, (tmpl->tok_cnt + 1) * sizeof(*tmpl->toks));
    tok_t *tok = &tmpl->toks[tmpl->tok_cnt++];
    memset(tok, 0, sizeof(*tok));
    tok->kind = kind;
    tok->text = rkb_strndup(text, text_len);
    tok->text_len = text_len;
    return tok;
}

/* Splits path ("a.b.0") into tok's steps. Returns 0, or -1 if a step is empty. */
static int parse_path(tok_t *tok, const char *path, size_t len) {
    const char *end = path + len;
    const char *step = path;
    for (;;) {
        const char *dot = memchr(step, '.', (size_t)(end - step));
        const char *step_end = dot ? dot : end;
        if (step_end == step)
            return -1;
        tok->steps = rkb_realloc(tok->steps, (tok->step_cnt + 1) * sizeof(*tok->steps));
        path_step_t *ps = &tok->steps[tok->step_cnt++];
        ps->name_len = (size_t)(step_end - step);
        ps->name = rkb_strndup(step, ps->name_len);
        /* Digits only: strtoll's leniencies (" 1", "+1") are not array indexes. */
        if (!isdigit((unsigned char)ps->name[0]) ||
            rkb_parse_int64(ps->name, 0, INT64_MAX, &ps->index))
            ps->index = -1;
        if (!dot)
            return 0;
        step = dot + 1;
    }
}

/* Classifies the token text (a whole "${...}") starting at column. Returns 0 or -1 with errstr. */
static int add_token(rkb_tmpl_t *tmpl, const char *text, size_t len, size_t column, char *errstr,
                     size_t errstr_size) {
    static const struct {
        const char *name;
        tok_kind_t kind;
    } simple[] = {
        {"topic", TOK_TOPIC},   {"partition", TOK_PARTITION},
        {"offset", TOK_OFFSET}, {"timestamp", TOK_TIMESTAMP},
        {"key", TOK_KEY},       {"value", TOK_VALUE},
    };
    const char *inner = text + 2; /* after "${" */
    size_t inner_len = len - 3;   /* without "${" and "}" */
    for (size_t i = 0; i < RKB_ARRAY_SIZE(simple); i++) {
        if (inner_len == strlen(simple[i].name) && !memcmp(inner, simple[i].name, inner_len)) {
            tok_add(tmpl, simple[i].kind, text, len);
            return 0;
        }
    }
    static const struct {
        const char *prefix;
        tok_kind_t kind;
    } prefixed[] = {
        {"value.", TOK_VALUE_FIELD},
        {"key.", TOK_KEY_FIELD},
        {"header.", TOK_HEADER},
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(prefixed); i++) {
        size_t prefix_len = strlen(prefixed[i].prefix);
        if (inner_len < prefix_len || memcmp(inner, prefixed[i].prefix, prefix_len))
            continue;
        const char *rest = inner + prefix_len;
        size_t rest_len = inner_len - prefix_len;
        tok_t *tok = tok_add(tmpl, prefixed[i].kind, text, len);
        if (prefixed[i].kind == TOK_HEADER) {
            if (!rest_len) {
                snprintf(errstr, errstr_size, "empty header name in '%.*s' at column %zu", (int)len,
                         text, column);
                return -1;
            }
            tok->header_name = rkb_strndup(rest, rest_len);
            return 0;
        }
        if (!rest_len) {
            snprintf(errstr, errstr_size, "empty field path in '%.*s'", (int)len, text);
            return -1;
        }
        if (parse_path(tok, rest, rest_len)) {
            snprintf(errstr, errstr_size, "empty field name in '%.*s' at column %zu", (int)len,
                     text, column);
            return -1;
        }
        return 0;
    }
    snprintf(errstr, errstr_size, "unknown token '%.*s' at column %zu", (int)len, text, column);
    return -1;
}

rkb_tmpl_t *rkb_tmpl_parse(const char *text, char *errstr, size_t errstr_size) {
    rkb_tmpl_t *tmpl = rkb_calloc(1, sizeof(*tmpl));
    tmpl->text = rkb_strdup(text);
    rkb_buf_t literal;
    rkb_buf_init(&literal);
    const char *p = text;
    while (*p) {
        if (*p != '$') {
            const char *dollar = strchr(p, '$');
            size_t run = dollar ? (size_t)(dollar - p) : strlen(p);
            rkb_buf_append(&literal, p, run);
            p += run;
            continue;
        }
        size_t column = (size_t)(p - text) + 1;
        if (p[1] == '$') {
            rkb_buf_append(&literal, "$", 1);
            p += 2;
            continue;
        }
        if (p[1] != '{') {
            snprintf(errstr, errstr_size,
                     "'$' at column %zu must start a '${...}' token (write '$$' for a '$')",
                     column);
            goto fail;
        }
        const char *close = strchr(p + 2, '}');
        if (!close) {
            snprintf(errstr, errstr_size, "unterminated '${' at column %zu", column);
            goto fail;
        }
        if (literal.len) {
            tok_add(tmpl, TOK_LITERAL, literal.data, literal.len);
            rkb_buf_reset(&literal);
        }
        if (add_token(tmpl, p, (size_t)(close - p) + 1, column, errstr, errstr_size))
            goto fail;
        p = close + 1;
    }
    if (literal.len)
        tok_add(tmpl, TOK_LITERAL, literal.data, literal.len);
    rkb_buf_free(&literal);
    return tmpl;

fail:
    rkb_buf_free(&literal);
    rkb_tmpl_destroy(tmpl);
    return NULL;
}

const char *rkb_tmpl_text(const rkb_tmpl_t *tmpl) {
    return tmpl->text;
}

bool rkb_tmpl_is_constant(const rkb_tmpl_t *tmpl) {
    for (size_t i = 0; i < tmpl->tok_cnt; i++) {
        if (tmpl->toks[i].kind != TOK_LITERAL)
            return false;
    }
    return true;
}

bool rkb_tmpl_uses(const rkb_tmpl_t *tmpl, const char *kind) {
    for (size_t i = 0; i < tmpl->tok_cnt; i++) {
        const char *tok_kind = NULL;
        switch (tmpl->toks[i].kind) {
        case TOK_LITERAL:
            continue;
        case TOK_TOPIC:
            tok_kind = "topic";
            break;
        case TOK_PARTITION:
            tok_kind = "partition";
            break;
        case TOK_OFFSET:
            tok_kind = "offset";
            break;
        case TOK_TIMESTAMP:
            tok_kind = "timestamp";
            break;
        case TOK_KEY:
        case TOK_KEY_FIELD:
            tok_kind = "key";
            break;
        case TOK_VALUE:
        case TOK_VALUE_FIELD:
            tok_kind = "value";
            break;
        case TOK_HEADER:
            tok_kind = "header";
            break;
        }
        if (!strcmp(tok_kind, kind))
            return true;
    }
    return false;
}

/* Follows tok's path from root. Returns the JSON found (borrowed) or NULL. */
static const json_t *walk_path(const tok_t *tok, const json_t *root) {
    const json_t *json = root;
    for (size_t i = 0; json && i < tok->step_cnt; i++) {
        const path_step_t *ps = &tok->steps[i];
        if (json_is_object(json))
            json = json_object_getn(json, ps->name, ps->name_len);
        else if (json_is_array(json) && ps->index >= 0 && (size_t)ps->index < json_array_size(json))
            json = json_array_get(json, (size_t)ps->index);
        else
            json = NULL;
    }
    return json;
}

/* ${key.a} / ${value.a}: the field as text. what is "key" or "value". */
static int expand_field(const tok_t *tok, const json_t *root, const char *what, rkb_buf_t *out,
                        char *errstr, size_t errstr_size) {
    const json_t *json = walk_path(tok, root);
    if (!json) {
        snprintf(errstr, errstr_size, "%s: no such field in the %s", tok->text, what);
        return -1;
    }
    /* A null would expand to "" and silently build keys like "user:" for every record. */
    if (json_is_null(json)) {
        snprintf(errstr, errstr_size, "%s: the field is null", tok->text);
        return -1;
    }
    rkb_json_to_text(json, out);
    return 0;
}

static int expand_token(const tok_t *tok, rkb_record_t *rec, rkb_buf_t *out, char *errstr,
                        size_t errstr_size) {
    char reason[256];
    const json_t *json;
    switch (tok->kind) {
    case TOK_LITERAL:
        rkb_buf_append(out, tok->text, tok->text_len);
        return 0;
    case TOK_TOPIC:
        if (!rec->topic) {
            snprintf(errstr, errstr_size, "%s: the record has no topic", tok->text);
            return -1;
        }
        rkb_buf_appends(out, rec->topic);
        return 0;
    case TOK_PARTITION:
        rkb_buf_appendf(out, "%" PRId32, rec->partition);
        return 0;
    case TOK_OFFSET:
        rkb_buf_appendf(out, "%" PRId64, rec->offset);
        return 0;
    case TOK_TIMESTAMP:
        if (rec->timestamp < 0) {
            snprintf(errstr, errstr_size, "%s: the record has no timestamp", tok->text);
            return -1;
        }
        rkb_buf_appendf(out, "%" PRId64, rec->timestamp);
        return 0;
    case TOK_KEY:
    case TOK_KEY_FIELD:
        if (!rec->key) {
            snprintf(errstr, errstr_size, "%s: the record key is null", tok->text);
            return -1;
        }
        if (tok->kind == TOK_KEY && rec->key_conv_type != RKB_CONV_JSON) {
            rkb_buf_append(out, rec->key, rec->key_len);
            return 0;
        }
        if (!(json = rkb_record_key_json(rec, reason, sizeof(reason)))) {
            snprintf(errstr, errstr_size, "%s: %s", tok->text, reason);
            return -1;
        }
        if (tok->kind == TOK_KEY_FIELD)
            return expand_field(tok, json, "key", out, errstr, errstr_size);
        if (json_is_null(json)) { /* the json converter reads "null" as a null key */
            snprintf(errstr, errstr_size, "%s: the record key is null", tok->text);
            return -1;
        }
        rkb_json_to_text(json, out);
        return 0;
    case TOK_VALUE:
    case TOK_VALUE_FIELD:
        if (!rec->value) {
            snprintf(errstr, errstr_size, "%s: the record is a tombstone", tok->text);
            return -1;
        }
        if (tok->kind == TOK_VALUE) {
            size_t len;
            const char *bytes = rkb_record_value_bytes(rec, &len);
            rkb_buf_append(out, bytes, len);
            return 0;
        }
        if (!(json = rkb_record_value_json(rec, reason, sizeof(reason)))) {
            snprintf(errstr, errstr_size, "%s: %s", tok->text, reason);
            return -1;
        }
        return expand_field(tok, json, "value", out, errstr, errstr_size);
    case TOK_HEADER: {
        const void *val;
        size_t len;
        if (!rec->header_get || rec->header_get(rec, tok->header_name, &val, &len)) {
            snprintf(errstr, errstr_size, "%s: no such header", tok->text);
            return -1;
        }
        if (!val) {
            snprintf(errstr, errstr_size, "%s: the header value is null", tok->text);
            return -1;
        }
        rkb_buf_append(out, val, len);
        return 0;
    }
    }
    return 0;
}

int rkb_tmpl_expand(const rkb_tmpl_t *tmpl, rkb_record_t *rec, rkb_buf_t *out, char *errstr,
                    size_t errstr_size) {
    /* An empty template still leaves out NUL-terminated (rkb_buf_t's promise). */
    rkb_buf_append(out, "", 0);
    for (size_t i = 0; i < tmpl->tok_cnt; i++) {
        if (expand_token(&tmpl->toks[i], rec, out, errstr, errstr_size))
            return -1;
    }
    return 0;
}
