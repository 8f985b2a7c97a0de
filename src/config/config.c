/*
 * config.c — connector configuration: properties files, set/get, validation and printing.
 *
 * The first stop of a run: `rkbridge run FILE` loads the file here and validates it, then the
 * sink, redis and convert modules read effective values by name and kafka/ hands the kafka.*
 * settings to librdkafka. Every property comes from the table in config_props.c; this file has
 * the logic only. Values are checked when they are set, so that errors carry the file and line.
 */
#include "config/config.h"
#include "kafka/kafka_conf.h"
#include "redis/redis.h"
#include "util/util.h"

#include <errno.h>
#include <regex.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* "kafka.X" is passed to librdkafka as X; Connect's per-connector client overrides are
 * accepted as the same thing. The sink is a consumer: librdkafka ignores producer-only
 * properties there (with a warning); they matter for the producers rkbridge creates. */
static const char *const kafka_prefixes[] = {"kafka.", "consumer.override.", "producer.override."};

/* What the user set for one table property: canonical text and where it came from. */
typedef struct config_value_s {
    char *value; /* NULL: not set */
    char *origin;
    char *reference; /* the text as written when it used a config provider (${env:...},
                        ${file:...}), else NULL: printed instead of the value */
} config_value_t;

/* One kafka.* setting, its name without the prefix. */
typedef struct kafka_setting_s {
    char *name;
    char *value;
    char *origin;
    char *reference; /* as in config_value_t */
} kafka_setting_t;

struct rkb_config_s {
    config_value_t *values; /* one per table property, same index */
    kafka_setting_t *kafka; /* in the order first set */
    size_t kafka_cnt;
    size_t kafka_cap;
    char *path; /* the file loaded last: named by errors that have no line ("name" missing) */
};

/* ---- Errors ---------------------------------------------------------------------------- */

void rkb_errors_init(rkb_errors_t *errs) {
    errs->msgs = NULL;
    errs->cnt = 0;
    errs->cap = 0;
}

void rkb_errors_add(rkb_errors_t *errs, const char *fmt, ...) {
    if (!errs)
        return;
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    char *msg = rkb_malloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(msg, (size_t)len + 1, fmt, ap);
    va_end(ap);
    if (errs->cnt == errs->cap) {
        errs->cap = errs->cap ? errs->cap * 2 : 8;
        errs->msgs = rkb_realloc(errs->msgs, errs->cap * sizeof(*errs->msgs));
    }
    errs->msgs[errs->cnt++] = msg;
}

void rkb_errors_print(const rkb_errors_t *errs, FILE *fp) {
    for (size_t i = 0; i < errs->cnt; i++)
        fprintf(fp, "%s\n", errs->msgs[i]);
}

void rkb_errors_clear(rkb_errors_t *errs) {
    for (size_t i = 0; i < errs->cnt; i++)
        free(errs->msgs[i]);
    free(errs->msgs);
    rkb_errors_init(errs);
}

/* ---- Lists in the table ("A,B,C" and "SPELLING=VALUE,...") ------------------------------- */

/* Calls cb on each item of a comma-separated list until it returns true; returns that. */
typedef bool (*item_cb_t)(const char *item, size_t len, void *opaque);

static bool list_each(const char *list, item_cb_t cb, void *opaque) {
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (cb(p, len, opaque))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* A value being matched against enum_values / value_aliases. */
typedef struct value_match_s {
    const char *value;
    const char *canonical; /* result: points into the table */
    size_t canonical_len;
} value_match_t;

static bool match_enum_item(const char *item, size_t len, void *opaque) {
    value_match_t *m = opaque;
    if (strlen(m->value) != len || strncasecmp(item, m->value, len))
        return false;
    m->canonical = item;
    m->canonical_len = len;
    return true;
}

static bool match_alias_item(const char *item, size_t len, void *opaque) {
    value_match_t *m = opaque;
    const char *eq = memchr(item, '=', len);
    if (!eq)
        return false;
    size_t spelling_len = (size_t)(eq - item);
    if (strlen(m->value) != spelling_len || strncasecmp(item, m->value, spelling_len))
        return false;
    m->canonical = eq + 1;
    m->canonical_len = len - spelling_len - 1;
    return true;
}

/* The canonical spelling of value among prop's enum_values and value_aliases (malloc'd,
 * caller frees), or NULL if it is none of them. */
static char *match_value(const rkb_property_t *prop, const char *value) {
    value_match_t m = {.value = value};
    if (list_each(prop->enum_values, match_enum_item, &m) ||
        list_each(prop->value_aliases, match_alias_item, &m))
        return rkb_strndup(m.canonical, m.canonical_len);
    return NULL;
}

/* Where value lists are written: plain (messages, --help) or each value as `code`. */
typedef struct values_out_s {
    rkb_buf_t *buf;
    const char *quote; /* "" or "`" */
} values_out_t;

static void append_value(values_out_t *out, const char *value, size_t len) {
    if (out->buf->len)
        rkb_buf_appends(out->buf, ", ");
    rkb_buf_appendf(out->buf, "%s%.*s%s", out->quote, (int)len, value, out->quote);
}

static bool append_enum_item(const char *item, size_t len, void *opaque) {
    append_value(opaque, item, len);
    return false;
}

static bool append_alias_spelling(const char *item, size_t len, void *opaque) {
    const char *eq = memchr(item, '=', len);
    append_value(opaque, item, eq ? (size_t)(eq - item) : len);
    return false;
}

/* "A, B, C[, SPELLING...]": every value a user may write for prop. */
static void append_accepted_values(const rkb_property_t *prop, values_out_t *out) {
    list_each(prop->enum_values, append_enum_item, out);
    list_each(prop->value_aliases, append_alias_spelling, out);
}

/* ---- Config object ---------------------------------------------------------------------- */

/* Frees a value after wiping it: values may be secrets, which should not linger in freed heap
 * memory. */
static void free_value(char *value) {
    if (value) {
        explicit_bzero(value, strlen(value));
        free(value);
    }
}

rkb_config_t *rkb_config_new(void) {
    size_t cnt;
    rkb_config_properties(&cnt);
    rkb_config_t *conf = rkb_calloc(1, sizeof(*conf));
    conf->values = rkb_calloc(cnt, sizeof(*conf->values));
    return conf;
}

void rkb_config_destroy(rkb_config_t *conf) {
    if (!conf)
        return;
    size_t cnt;
    rkb_config_properties(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        free_value(conf->values[i].value);
        free(conf->values[i].origin);
        free(conf->values[i].reference);
    }
    free(conf->values);
    for (size_t i = 0; i < conf->kafka_cnt; i++) {
        free(conf->kafka[i].name);
        free_value(conf->kafka[i].value);
        free(conf->kafka[i].origin);
        free(conf->kafka[i].reference);
    }
    free(conf->kafka);
    free(conf->path);
    free(conf);
}

static size_t property_index(const rkb_property_t *prop) {
    size_t cnt;
    return (size_t)(prop - rkb_config_properties(&cnt));
}

/* ---- Setting values --------------------------------------------------------------------- */

/* Items trimmed and joined with ','; "" for a blank value. NULL after an error. */
static char *normalize_list(const char *key, const char *value, const char *origin,
                            rkb_errors_t *errs) {
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "");
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return out.data;
    for (;;) {
        const char *end = strchr(p, ',');
        const char *item_end = end ? end : p + strlen(p);
        while (p < item_end && (*p == ' ' || *p == '\t'))
            p++;
        while (item_end > p && (item_end[-1] == ' ' || item_end[-1] == '\t'))
            item_end--;
        if (item_end == p) {
            rkb_errors_add(errs, "%s: %s: empty item in the comma-separated list", origin, key);
            rkb_buf_free(&out);
            return NULL;
        }
        if (out.len)
            rkb_buf_appends(&out, ",");
        rkb_buf_append(&out, p, (size_t)(item_end - p));
        if (!end)
            break;
        p = end + 1;
    }
    return out.data;
}

/* Checks value against prop's type and returns the text to store (malloc'd: canonical
 * spelling for INT, BOOL, ENUM and LIST), or NULL after adding an error naming key (the
 * name the user wrote). Messages quote shown, the value as written (a config provider's
 * reference, not what it resolved to); values of PASSWORD properties never appear in them. */
static char *check_value(const rkb_property_t *prop, const char *key, const char *value,
                         const char *shown, const char *origin, rkb_errors_t *errs) {
    switch (prop->type) {
    case RKB_PROP_INT: {
        int64_t v;
        if (rkb_parse_int64(value, prop->min, prop->max, &v) == -1) {
            rkb_errors_add(errs, "%s: %s: must be an integer between %lld and %lld, got '%s'",
                           origin, key, (long long)prop->min, (long long)prop->max, shown);
            return NULL;
        }
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)v);
        return rkb_strdup(num);
    }
    case RKB_PROP_BOOL: {
        bool b;
        if (rkb_parse_bool(value, &b) == -1) {
            rkb_errors_add(errs, "%s: %s: must be true or false, got '%s'", origin, key, shown);
            return NULL;
        }
        return rkb_strdup(b ? "true" : "false");
    }
    case RKB_PROP_ENUM: {
        char *canonical = match_value(prop, value);
        if (!canonical) {
            rkb_buf_t accepted;
            rkb_buf_init(&accepted);
            append_accepted_values(prop, &(values_out_t){.buf = &accepted, .quote = ""});
            rkb_errors_add(errs, "%s: %s: must be one of %s, got '%s'", origin, key, accepted.data,
                           shown);
            rkb_buf_free(&accepted);
        }
        return canonical;
    }
    case RKB_PROP_LIST:
        return normalize_list(key, value, origin, errs);
    case RKB_PROP_STRING:
        if (!strcmp(prop->name, "topics.regex") && *value) {
            /* librdkafka matches subscription patterns with POSIX regexec on Linux, so
             * regcomp is the check it will do itself when the sink subscribes. */
            regex_t re;
            int rc = regcomp(&re, value, REG_EXTENDED | REG_NOSUB);
            if (rc) {
                char why[256];
                regerror(rc, &re, why, sizeof(why));
                rkb_errors_add(errs, "%s: %s: invalid regular expression: %s", origin, key, why);
                return NULL;
            }
            regfree(&re);
        }
        return rkb_strdup(value);
    case RKB_PROP_PASSWORD:
    case RKB_PROP_TEMPLATE:
        return rkb_strdup(value);
    }
    abort(); /* not reached: every type is handled above */
}

/* The librdkafka name inside key if it is a kafka.* (or *.override.*) key, else NULL. */
static const char *kafka_name_of(const char *key) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(kafka_prefixes); i++) {
        size_t len = strlen(kafka_prefixes[i]);
        if (!strncmp(key, kafka_prefixes[i], len))
            return key + len;
    }
    return NULL;
}

/* kafka.* properties whose values are secrets (librdkafka marks them sensitive but offers no
 * way to ask). */
static bool kafka_is_secret(const char *name) {
    return strstr(name, "password") || strstr(name, "secret") || !strcmp(name, "ssl.key.pem") ||
           !strcmp(name, "sasl.oauthbearer.config") || !strcmp(name, "sasl.jaas.config");
}

bool rkb_config_is_secret(const char *key) {
    const char *kafka_name = kafka_name_of(key);
    if (kafka_name)
        return kafka_is_secret(kafka_name);
    const rkb_property_t *prop = rkb_config_property_find(key);
    return prop && prop->type == RKB_PROP_PASSWORD;
}

/* text with every occurrence of secret replaced by [hidden], into out. */
static void append_scrubbed(rkb_buf_t *out, const char *text, const char *secret) {
    size_t secret_len = strlen(secret);
    for (const char *hit; secret_len && (hit = strstr(text, secret)); text = hit + secret_len) {
        rkb_buf_append(out, text, (size_t)(hit - text));
        rkb_buf_appends(out, "[hidden]");
    }
    rkb_buf_appends(out, text);
}

static int set_kafka(rkb_config_t *conf, const char *key, const char *name, const char *value,
                     const char *reference, const char *origin, rkb_errors_t *errs);

/* One option of a JAAS line: name=value, the value bare or in double quotes (\" and \\
 * escaped). Moves *p past it. Returns 0, or -1 when the text is not an option. */
static int jaas_option(const char **p, char **name, char **value) {
    const char *s = *p;
    size_t name_len = strcspn(s, "= \t\r\n;");
    if (!name_len || s[name_len] != '=')
        return -1;
    *name = rkb_strndup(s, name_len);
    s += name_len + 1;
    rkb_buf_t text;
    rkb_buf_init(&text);
    rkb_buf_appends(&text, "");
    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
                s++;
            rkb_buf_append(&text, s, 1);
        }
        if (*s != '"') {
            free(*name);
            free_value(text.data);
            return -1;
        }
        s++;
    } else {
        size_t len = strcspn(s, " \t\r\n;");
        rkb_buf_append(&text, s, len);
        s += len;
    }
    *value = text.data;
    *p = s;
    return 0;
}

/*
 * Kafka's sasl.jaas.config for PLAIN and SCRAM, as Connect users write it:
 *   org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="p";
 * librdkafka has no such property: its user name and password become sasl.username and
 * sasl.password (the mechanism stays kafka.sasl.mechanism's). Other login modules are refused
 * with what to set instead. The value is never quoted back: it holds the password.
 */
static int set_jaas(rkb_config_t *conf, const char *key, const char *value, const char *origin,
                    rkb_errors_t *errs) {
    static const char *const modules[] = {
        "org.apache.kafka.common.security.plain.PlainLoginModule",
        "org.apache.kafka.common.security.scram.ScramLoginModule"};
    const char *p = value + strspn(value, " \t\r\n");
    size_t module_len = strcspn(p, " \t\r\n");
    bool known = false;
    for (size_t i = 0; i < RKB_ARRAY_SIZE(modules); i++)
        known |= strlen(modules[i]) == module_len && !strncmp(p, modules[i], module_len);
    if (!known) {
        rkb_errors_add(errs,
                       "%s: %s: only PlainLoginModule and ScramLoginModule are understood; for "
                       "other mechanisms set librdkafka's kafka.sasl.* properties",
                       origin, key);
        return -1;
    }
    p += module_len;
    p += strspn(p, " \t\r\n");
    size_t flag_len = strcspn(p, " \t\r\n;");
    char *username = NULL, *password = NULL;
    bool bad = flag_len == 0;
    for (p += flag_len; !bad;) {
        p += strspn(p, " \t\r\n");
        if (*p == ';' || !*p)
            break;
        char *name, *option;
        if (jaas_option(&p, &name, &option)) {
            bad = true;
            break;
        }
        char **slot = !strcmp(name, "username")   ? &username
                      : !strcmp(name, "password") ? &password
                                                  : NULL;
        if (slot) {
            free_value(*slot);
            *slot = option;
        } else {
            free_value(option);
        }
        free(name);
    }
    int rc = -1;
    if (bad || !username || !password)
        rkb_errors_add(errs,
                       "%s: %s: expected 'LoginModule required username=\"...\" password=\"...\";'",
                       origin, key);
    else if (!set_kafka(conf, key, "sasl.username", username, NULL, origin, errs) &&
             !set_kafka(conf, key, "sasl.password", password, NULL, origin, errs))
        rc = 0;
    free_value(username);
    free_value(password);
    return rc;
}

/* reference: value as written when a config provider resolved it, else NULL. */
static int set_kafka(rkb_config_t *conf, const char *key, const char *name, const char *value,
                     const char *reference, const char *origin, rkb_errors_t *errs) {
    if (!*name) {
        rkb_errors_add(errs, "%s: %s: missing librdkafka property name after the prefix", origin,
                       key);
        return -1;
    }
    if (!strcmp(name, "sasl.jaas.config"))
        return set_jaas(conf, key, value, origin, errs);
    /* librdkafka may quote the value in its message: size the buffer for it. */
    size_t errstr_size = 256 + strlen(name) + strlen(value);
    char *errstr = rkb_malloc(errstr_size);
    if (rkb_kafka_conf_check(name, value, errstr, errstr_size) == -1) {
        /* A secret, or what a provider resolved to, is not quoted back (too short a value
         * could be any word of the message). */
        rkb_buf_t why;
        rkb_buf_init(&why);
        if ((reference || kafka_is_secret(name)) && strlen(value) >= 3)
            append_scrubbed(&why, errstr, value);
        else
            rkb_buf_appends(&why, errstr);
        rkb_errors_add(errs, "%s: %s: %s", origin, key, why.data);
        rkb_buf_free(&why);
        free(errstr);
        return -1;
    }
    free(errstr);

    kafka_setting_t *setting = NULL;
    for (size_t i = 0; i < conf->kafka_cnt && !setting; i++) {
        if (!strcmp(conf->kafka[i].name, name))
            setting = &conf->kafka[i];
    }
    if (setting) { /* set twice: the last one wins, in the place of the first */
        free_value(setting->value);
        free(setting->origin);
        free(setting->reference);
    } else {
        if (conf->kafka_cnt == conf->kafka_cap) {
            conf->kafka_cap = conf->kafka_cap ? conf->kafka_cap * 2 : 8;
            conf->kafka = rkb_realloc(conf->kafka, conf->kafka_cap * sizeof(*conf->kafka));
        }
        setting = &conf->kafka[conf->kafka_cnt++];
        setting->name = rkb_strdup(name);
    }
    setting->value = rkb_strdup(value);
    setting->origin = rkb_strdup(origin);
    setting->reference = reference ? rkb_strdup(reference) : NULL;
    return 0;
}

/* The search for the known name closest to an unknown key. */
typedef struct suggestion_s {
    const char *key;       /* the unknown key */
    const char *canonical; /* the property whose names are being tried */
    const char *best;      /* canonical name of the closest so far */
    size_t best_distance;
} suggestion_t;

static bool consider_name(const char *name, size_t len, void *opaque) {
    suggestion_t *s = opaque;
    char *candidate = rkb_strndup(name, len);
    /* A match but for case counts as an exact one: "Redis.Type" means redis.type. */
    size_t distance = strcasecmp(candidate, s->key) ? rkb_edit_distance(candidate, s->key) : 0;
    free(candidate);
    if (distance < s->best_distance) {
        s->best_distance = distance;
        s->best = s->canonical;
    }
    return false;
}

/* The canonical name closest to an unknown key (aliases count, the canonical name is what is
 * suggested), if close enough to be a likely typo; else NULL. */
static const char *suggest_name(const char *key) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    suggestion_t s = {.key = key, .best_distance = SIZE_MAX};
    for (size_t i = 0; i < cnt; i++) {
        s.canonical = props[i].name;
        consider_name(props[i].name, strlen(props[i].name), &s);
        list_each(props[i].aliases, consider_name, &s);
    }
    size_t limit = strlen(key) / 4;
    if (limit < 2)
        limit = 2;
    return s.best_distance <= limit ? s.best : NULL;
}

static void add_unknown_key(const char *key, const char *value, const char *origin,
                            rkb_errors_t *errs) {
    const char *suggestion = suggest_name(key);
    if (suggestion) {
        rkb_errors_add(errs, "%s: %s: unknown property (did you mean '%s'?)", origin, key,
                       suggestion);
        return;
    }
    /* A librdkafka property written without its prefix (bootstrap.servers from a Connect
     * worker file) is a common slip. */
    char errstr[512];
    if (*key && rkb_kafka_conf_check(key, value, errstr, sizeof(errstr)) == 0) {
        rkb_errors_add(errs, "%s: %s: unknown property (did you mean 'kafka.%s'?)", origin, key,
                       key);
        return;
    }
    rkb_errors_add(errs, "%s: %s: unknown property", origin, key);
}

static int resolve_references(const char *key, const char *value, const char *origin,
                              rkb_errors_t *errs, char **resolved);

int rkb_config_set(rkb_config_t *conf, const char *key, const char *value, const char *origin,
                   rkb_errors_t *errs) {
    if (!value)
        value = "";
    if (!origin)
        origin = "config";
    /* Config providers first: what is checked and stored is what they resolve to; what was
     * written (the reference) is what messages and printouts show. */
    char *resolved = NULL;
    if (resolve_references(key, value, origin, errs, &resolved))
        return -1;
    const char *reference = resolved ? value : NULL;
    const char *effective = resolved ? resolved : value;
    int rc = -1;

    const char *kafka_name = kafka_name_of(key);
    const rkb_property_t *prop = kafka_name ? NULL : rkb_config_property_find(key);
    if (kafka_name) {
        rc = set_kafka(conf, key, kafka_name, effective, reference, origin, errs);
    } else if (!prop) {
        add_unknown_key(key, effective, origin, errs);
    } else {
        char *stored = check_value(prop, key, effective, value, origin, errs);
        if (stored) {
            config_value_t *slot = &conf->values[property_index(prop)];
            free_value(slot->value);
            free(slot->origin);
            free(slot->reference);
            slot->value = stored;
            slot->origin = rkb_strdup(origin);
            slot->reference = reference ? rkb_strdup(reference) : NULL;
            rc = 0;
        }
    }
    free_value(resolved);
    return rc;
}

/* ---- Properties files ------------------------------------------------------------------- */

static bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == '\n';
}

/* Trims blanks at both ends in place; returns the new start. */
static char *trim(char *s) {
    while (is_blank(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* Splits a logical line "key=value" or "key: value" at its first '=' or ':', in place; key
 * and value are trimmed. Returns the separator, or '\0' when the line has none. */
static char split_line(char *line, char **key, char **value) {
    char *sep = line + strcspn(line, "=:");
    char separator = *sep;
    if (separator) {
        *sep = '\0';
        *key = trim(line);
        *value = trim(sep + 1);
    }
    return separator;
}

/* Called with each logical line of a properties file and the number of its first line. */
typedef void line_cb_t(char *line, int line_no, void *opaque);

/* Reads a properties file: comments ('#', '!') and blank lines skipped, surrounding blanks
 * trimmed, a line ending in a backslash joined with the next. Returns 0, or -1 with errno when
 * reading failed (the lines read before were handed to cb). The raw lines are wiped: a file
 * may hold secrets. */
static int read_properties(FILE *fp, line_cb_t *cb, void *opaque) {
    char *raw = NULL;
    size_t raw_cap = 0;
    int line_no = 0;
    int start_line = 0; /* where the logical line being joined started */
    rkb_buf_t logical;
    rkb_buf_init(&logical);
    bool continued = false;
    ssize_t raw_len;
    while ((raw_len = getline(&raw, &raw_cap, fp)) != -1) {
        line_no++;
        char *line = raw;
        if (line_no == 1 && !strncmp(line, "\xEF\xBB\xBF", 3))
            line += 3; /* UTF-8 byte order mark */
        line = trim(line);
        if (!continued) {
            if (!*line || *line == '#' || *line == '!')
                continue;
            rkb_buf_reset(&logical);
            rkb_buf_appends(&logical, "");
            start_line = line_no;
        }
        size_t len = strlen(line);
        continued = len > 0 && line[len - 1] == '\\';
        rkb_buf_append(&logical, line, continued ? len - 1 : len);
        if (!continued)
            cb(logical.data, start_line, opaque);
    }
    int rc = ferror(fp) ? -1 : 0;
    int saved_errno = errno;
    if (!rc && continued)
        cb(logical.data, start_line, opaque); /* the file ended in a backslash */
    if (raw)
        explicit_bzero(raw, raw_cap);
    free(raw);
    if (logical.data)
        explicit_bzero(logical.data, logical.cap);
    rkb_buf_free(&logical);
    errno = saved_errno;
    return rc;
}

typedef struct load_state_s {
    rkb_config_t *conf;
    const char *path;
    rkb_errors_t *errs;
    int problems;
} load_state_t;

/* One logical line of a connector file: "key=value" or "key: value". */
static void load_line(char *line, int line_no, void *opaque) {
    load_state_t *state = opaque;
    rkb_buf_t origin;
    rkb_buf_init(&origin);
    rkb_buf_appendf(&origin, "%s:%d", state->path, line_no);
    int rc = -1;
    /* The line itself is not quoted back: it may hold a password. */
    char *key, *value;
    char separator = split_line(line, &key, &value);
    if (!separator)
        rkb_errors_add(state->errs, "%s: expected 'key=value' or 'key: value'", origin.data);
    else if (!*key)
        rkb_errors_add(state->errs, "%s: missing key before '%c'", origin.data, separator);
    else
        rc = rkb_config_set(state->conf, key, value, origin.data, state->errs);
    if (rc)
        state->problems++;
    rkb_buf_free(&origin);
}

int rkb_config_load_file(rkb_config_t *conf, const char *path, rkb_errors_t *errs) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        rkb_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        return 1;
    }
    free(conf->path);
    conf->path = rkb_strdup(path);
    load_state_t state = {.conf = conf, .path = path, .errs = errs};
    if (read_properties(fp, load_line, &state)) {
        rkb_errors_add(errs, "%s: cannot read: %s", path, strerror(errno));
        state.problems++;
    }
    fclose(fp);
    return state.problems;
}

/* ---- Config providers --------------------------------------------------------------------- */

/* Kafka Connect's config provider syntax, with the two providers every Connect install has:
 *   ${env:NAME}        the environment variable NAME (EnvVarConfigProvider)
 *   ${file:PATH:KEY}   KEY of the properties file PATH (FileConfigProvider; PATH may hold ':',
 *                      the last one ends it)
 * Resolved once, when the file is loaded. Other ${...} text is left alone (templates use it),
 * and "$$" is kept as written, so "$${env:X}" stays literal text. */

typedef struct lookup_s {
    const char *key;
    char *value; /* the last line with key wins, as when a connector file is loaded */
} lookup_t;

static void lookup_line(char *line, int line_no, void *opaque) {
    lookup_t *lookup = opaque;
    char *key, *value;
    if (split_line(line, &key, &value) && !strcmp(key, lookup->key)) {
        free_value(lookup->value);
        lookup->value = rkb_strdup(value);
    }
}

/* KEY of the properties file path, or NULL with why. */
static char *file_provider(const char *path, const char *key, char *why, size_t why_size) {
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    lookup_t lookup = {.key = key};
    int rc = read_properties(fp, lookup_line, &lookup);
    int saved_errno = errno;
    fclose(fp);
    if (rc) {
        free_value(lookup.value);
        snprintf(why, why_size, "cannot read %s: %s", path, strerror(saved_errno));
        return NULL;
    }
    if (!lookup.value)
        snprintf(why, why_size, "%s has no key '%s'", path, key);
    return lookup.value;
}

/* What one reference (body: the text between "${PROVIDER:" and '}') resolves to, or NULL with
 * why. */
static char *resolve_one(bool is_env, const char *body, size_t body_len, char *why,
                         size_t why_size) {
    if (is_env) {
        char *name = rkb_strndup(body, body_len);
        const char *found = *name ? getenv(name) : NULL;
        if (!*name)
            snprintf(why, why_size, "expected ${env:NAME}");
        else if (!found)
            snprintf(why, why_size, "environment variable %s is not set", name);
        free(name);
        return found ? rkb_strdup(found) : NULL;
    }
    const char *colon = memrchr(body, ':', body_len);
    if (!colon || colon == body || colon == body + body_len - 1) {
        snprintf(why, why_size, "expected ${file:PATH:KEY}");
        return NULL;
    }
    char *path = rkb_strndup(body, (size_t)(colon - body));
    char *key = rkb_strndup(colon + 1, body_len - (size_t)(colon - body) - 1);
    char *found = file_provider(path, key, why, why_size);
    free(path);
    free(key);
    return found;
}

/* value with its ${env:...} and ${file:...} references resolved. Returns 0 with *resolved
 * (malloc'd, NULL when value has none), or -1 after adding "ORIGIN: KEY: REFERENCE: config
 * provider P: why" to errs. */
static int resolve_references(const char *key, const char *value, const char *origin,
                              rkb_errors_t *errs, char **resolved) {
    *resolved = NULL;
    if (!strstr(value, "${env:") && !strstr(value, "${file:"))
        return 0;
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appends(&out, "");
    for (const char *p = value; *p;) {
        bool is_env = !strncmp(p, "${env:", 6), is_file = !strncmp(p, "${file:", 7);
        if (!is_env && !is_file) {
            size_t n = p[0] == '$' && p[1] == '$' ? 2 : 1;
            rkb_buf_append(&out, p, n);
            p += n;
            continue;
        }
        const char *provider = is_env ? "env" : "file";
        const char *body = p + (is_env ? 6 : 7);
        const char *close = strchr(body, '}');
        char why[700];
        char *found = NULL;
        if (!close)
            snprintf(why, sizeof(why), "missing '}'");
        else
            found = resolve_one(is_env, body, (size_t)(close - body), why, sizeof(why));
        if (!found) {
            int ref_len = close ? (int)(close - p + 1) : (int)strlen(p);
            rkb_errors_add(errs, "%s: %s: %.*s: config provider %s: %s", origin, key, ref_len, p,
                           provider, why);
            free_value(out.data);
            return -1;
        }
        rkb_buf_appends(&out, found);
        free_value(found);
        p = close + 1;
    }
    *resolved = out.data;
    return 0;
}

/* ---- Reading values --------------------------------------------------------------------- */

static const rkb_property_t *property_or_abort(const char *name) {
    const rkb_property_t *prop = rkb_config_property_find(name);
    if (!prop) {
        fprintf(stderr, "rkbridge: BUG: config property '%s' is not in the table\n", name);
        abort();
    }
    return prop;
}

/* The effective value of prop and its origin (NULL: the default). redis.command stands in
 * for redis.type and redis.push.direction when they are not set themselves. */
static const char *effective_value(const rkb_config_t *conf, const rkb_property_t *prop,
                                   const char **origin) {
    const config_value_t *slot = &conf->values[property_index(prop)];
    if (slot->value) {
        *origin = slot->origin;
        return slot->value;
    }
    bool is_type = !strcmp(prop->name, "redis.type");
    if (is_type || !strcmp(prop->name, "redis.push.direction")) {
        const config_value_t *command =
            &conf->values[property_index(rkb_config_property_find("redis.command"))];
        if (command->value) {
            const char *direction;
            const char *type = rkb_config_command_type(command->value, &direction);
            const char *folded = is_type ? type : direction;
            if (folded) {
                *origin = command->origin;
                return folded;
            }
        }
    }
    *origin = NULL;
    return prop->default_value;
}

const char *rkb_config_get(const rkb_config_t *conf, const char *name) {
    const char *origin;
    return effective_value(conf, property_or_abort(name), &origin);
}

int64_t rkb_config_get_int(const rkb_config_t *conf, const char *name) {
    const rkb_property_t *prop = property_or_abort(name);
    if (prop->type != RKB_PROP_INT) {
        fprintf(stderr, "rkbridge: BUG: config property '%s' is not an integer\n", name);
        abort();
    }
    const char *origin;
    const char *value = effective_value(conf, prop, &origin);
    int64_t v = 0;
    if (value && rkb_parse_int64(value, prop->min, prop->max, &v) == -1)
        abort(); /* not reached: checked when set, and the table defaults are tested */
    return v;
}

bool rkb_config_get_bool(const rkb_config_t *conf, const char *name) {
    const rkb_property_t *prop = property_or_abort(name);
    if (prop->type != RKB_PROP_BOOL) {
        fprintf(stderr, "rkbridge: BUG: config property '%s' is not a boolean\n", name);
        abort();
    }
    const char *origin;
    const char *value = effective_value(conf, prop, &origin);
    bool b = false;
    if (value && rkb_parse_bool(value, &b) == -1)
        abort(); /* not reached: checked when set */
    return b;
}

bool rkb_config_is_set(const rkb_config_t *conf, const char *name) {
    const char *origin;
    effective_value(conf, property_or_abort(name), &origin);
    return origin != NULL;
}

const char *rkb_config_origin(const rkb_config_t *conf, const char *name) {
    const char *origin;
    effective_value(conf, property_or_abort(name), &origin);
    return origin ? origin : "default";
}

void rkb_config_foreach_kafka(const rkb_config_t *conf,
                              void (*cb)(const char *name, const char *value, const char *origin,
                                         void *opaque),
                              void *opaque) {
    for (size_t i = 0; i < conf->kafka_cnt; i++)
        cb(conf->kafka[i].name, conf->kafka[i].value, conf->kafka[i].origin, opaque);
}

/* Connector classes (canonical names, as in connector.class's enum_values) and their kinds. */
static const struct {
    const char *class_name;
    rkb_connector_kind_t kind;
    unsigned scope;
    const char *name;
} connector_kinds[] = {
    {"com.redis.kafka.connect.RedisSinkConnector", RKB_CONNECTOR_SINK, RKB_SCOPE_SINK, "sink"},
    {"com.redis.kafka.connect.RedisStreamSourceConnector", RKB_CONNECTOR_STREAM_SOURCE,
     RKB_SCOPE_STREAM_SOURCE, "stream source"},
    {"com.redis.kafka.connect.RedisKeysSourceConnector", RKB_CONNECTOR_KEYS_SOURCE,
     RKB_SCOPE_KEYS_SOURCE, "keys source"},
    {"rkbridge.RedisPubSubSourceConnector", RKB_CONNECTOR_PUBSUB_SOURCE, RKB_SCOPE_PUBSUB_SOURCE,
     "pub/sub source"},
};

const char *rkb_connector_kind_name(rkb_connector_kind_t kind) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(connector_kinds); i++)
        if (connector_kinds[i].kind == kind)
            return connector_kinds[i].name;
    return "unknown";
}

unsigned rkb_connector_kind_scope(rkb_connector_kind_t kind) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(connector_kinds); i++)
        if (connector_kinds[i].kind == kind)
            return connector_kinds[i].scope;
    return 0;
}

rkb_connector_kind_t rkb_config_connector_kind(const rkb_config_t *conf) {
    const char *class_name = rkb_config_get(conf, "connector.class");
    if (!class_name)
        return RKB_CONNECTOR_UNKNOWN;
    char *canonical = match_value(rkb_config_property_find("connector.class"), class_name);
    rkb_connector_kind_t kind = RKB_CONNECTOR_UNKNOWN;
    for (size_t i = 0; canonical && i < RKB_ARRAY_SIZE(connector_kinds); i++)
        if (!strcmp(canonical, connector_kinds[i].class_name))
            kind = connector_kinds[i].kind;
    free(canonical);
    return kind;
}

/* ---- Validation ------------------------------------------------------------------------- */

/* Why a redis.uri is not usable, or NULL. Deliberately small (scheme, host, port, db): the
 * redis module does the real parsing. Never quotes the URI, which may hold a password. */
static const char *redis_uri_problem(const char *uri) {
    bool tls = !strncasecmp(uri, "rediss://", 9);
    if (!tls && strncasecmp(uri, "redis://", 8))
        return "must start with redis:// or rediss:// (redis://[[user]:password@]host[:port][/db]), "
               "or redis-sentinel:// (redis-sentinel://host[:port][,host[:port]...][/db]#MASTER)";
    const char *authority = uri + (tls ? 9 : 8);
    size_t authority_len = strcspn(authority, "/");
    const char *host = authority;
    for (const char *p = authority; p < authority + authority_len; p++) {
        if (*p == '@')
            host = p + 1; /* the last '@': passwords may contain '@' */
    }
    const char *host_end = authority + authority_len;
    const char *port = NULL;
    if (*host == '[') { /* [IPv6]:port */
        const char *close = memchr(host, ']', (size_t)(host_end - host));
        if (!close)
            return "missing ']' after an IPv6 address";
        if (close + 1 < host_end) {
            if (close[1] != ':')
                return "unexpected text after the IPv6 address";
            port = close + 2;
        }
        if (close == host + 1)
            return "missing host";
    } else {
        const char *colon = memchr(host, ':', (size_t)(host_end - host));
        if (colon)
            port = colon + 1;
        if ((colon ? colon : host_end) == host)
            return "missing host";
    }
    if (port) {
        char *text = rkb_strndup(port, (size_t)(host_end - port));
        int64_t n;
        int rc = rkb_parse_int64(text, 1, 65535, &n);
        free(text);
        if (rc == -1)
            return "the port must be a number between 1 and 65535";
    }
    if (*host_end == '/' && host_end[1]) {
        int64_t db;
        if (rkb_parse_int64(host_end + 1, 0, INT32_MAX, &db) == -1)
            return "the database after '/' must be a number";
    }
    return NULL;
}

/* The TLS keys: only with TLS on, a client certificate with its key, files that can be read.
 * Returns the number of problems added. */
static int validate_redis_tls(const rkb_config_t *conf, rkb_errors_t *errs) {
    static const struct {
        const char *name;
        bool is_dir;
    } files[] = {{"redis.cacert", false},
                 {"redis.cacert.dir", true},
                 {"redis.key.cert", false},
                 {"redis.key.file", false}};
    static const char *const tls_only[] = {"redis.insecure", "redis.cacert",   "redis.cacert.dir",
                                           "redis.key.cert", "redis.key.file", "redis.key.password",
                                           "redis.sni"};
    int problems = 0;
    const char *uri = rkb_config_get(conf, "redis.uri");
    bool tls = rkb_config_get_bool(conf, "redis.tls") || (uri && !strncasecmp(uri, "rediss://", 9));
    for (size_t i = 0; i < RKB_ARRAY_SIZE(tls_only) && !tls; i++) {
        const char *value = rkb_config_get(conf, tls_only[i]);
        /* redis.insecure=false says nothing; any other value set means TLS was expected. */
        if (rkb_config_is_set(conf, tls_only[i]) && *value && strcmp(value, "false")) {
            rkb_errors_add(errs,
                           "%s: %s: TLS is off: set redis.tls=true or use rediss:// in redis.uri",
                           rkb_config_origin(conf, tls_only[i]), tls_only[i]);
            problems++;
        }
    }
    const char *cert = rkb_config_get(conf, "redis.key.cert");
    const char *key = rkb_config_get(conf, "redis.key.file");
    const char *key_password = rkb_config_get(conf, "redis.key.password");
    if (*cert && !*key) {
        rkb_errors_add(errs, "%s: redis.key.cert: needs redis.key.file, its private key",
                       rkb_config_origin(conf, "redis.key.cert"));
        problems++;
    } else if (*key && !*cert) {
        rkb_errors_add(errs, "%s: redis.key.file: needs redis.key.cert, the client certificate",
                       rkb_config_origin(conf, "redis.key.file"));
        problems++;
    }
    if (*key_password && !*key) {
        rkb_errors_add(errs, "%s: redis.key.password: set without redis.key.file",
                       rkb_config_origin(conf, "redis.key.password"));
        problems++;
    }
    for (size_t i = 0; i < RKB_ARRAY_SIZE(files); i++) {
        const char *path = rkb_config_get(conf, files[i].name);
        struct stat st;
        const char *why = NULL;
        if (!*path)
            continue;
        if (stat(path, &st) != 0 || access(path, R_OK) != 0)
            why = strerror(errno);
        else if (files[i].is_dir && !S_ISDIR(st.st_mode))
            why = "not a directory";
        else if (!files[i].is_dir && S_ISDIR(st.st_mode))
            why = "a directory, not a file";
        if (why) {
            rkb_errors_add(errs, "%s: %s: cannot read %s: %s",
                           rkb_config_origin(conf, files[i].name), files[i].name, path, why);
            problems++;
        }
    }
    return problems;
}

/* The sink's checks across keys. Returns the number of problems added. */
static int validate_sink(const rkb_config_t *conf, const char *where, rkb_errors_t *errs) {
    int problems = 0;
    const char *topics = rkb_config_get(conf, "topics");
    const char *regex = rkb_config_get(conf, "topics.regex");
    bool has_topics = topics && *topics;
    bool has_regex = regex && *regex;
    if (!has_topics && !has_regex) {
        rkb_errors_add(errs, "%s: topics: a sink needs topics or topics.regex", where);
        problems++;
    } else if (has_topics && has_regex) {
        rkb_errors_add(errs, "%s: topics.regex: set together with topics (%s); set only one",
                       rkb_config_origin(conf, "topics.regex"), rkb_config_origin(conf, "topics"));
        problems++;
    }

    /* redis.command is folded into redis.type and redis.push.direction; when those are also
     * set they must say the same thing, or one of them would be silently ignored. */
    const rkb_property_t *command_prop = rkb_config_property_find("redis.command");
    const config_value_t *command = &conf->values[property_index(command_prop)];
    if (command->value) {
        const char *direction;
        const char *type = rkb_config_command_type(command->value, &direction);
        const config_value_t *set_type =
            &conf->values[property_index(rkb_config_property_find("redis.type"))];
        const config_value_t *set_direction =
            &conf->values[property_index(rkb_config_property_find("redis.push.direction"))];
        if (set_type->value && type && strcmp(set_type->value, type)) {
            rkb_errors_add(errs,
                           "%s: redis.command: %s writes redis.type %s, but redis.type is %s "
                           "(%s); set only one of them",
                           command->origin, command->value, type, set_type->value,
                           set_type->origin);
            problems++;
        }
        if (set_direction->value && direction && strcmp(set_direction->value, direction)) {
            rkb_errors_add(errs,
                           "%s: redis.command: %s pushes %s, but redis.push.direction is %s "
                           "(%s); set only one of them",
                           command->origin, command->value, direction, set_direction->value,
                           set_direction->origin);
            problems++;
        }
    }

    /* The sink stores each offset only after Redis has the record; letting librdkafka store
     * offsets on its own would commit records that were never written. */
    for (size_t i = 0; i < conf->kafka_cnt; i++) {
        const kafka_setting_t *setting = &conf->kafka[i];
        if (!strcmp(setting->name, "enable.auto.offset.store") &&
            strcasecmp(setting->value, "false")) {
            rkb_errors_add(errs,
                           "%s: kafka.enable.auto.offset.store: must stay false: the sink stores "
                           "an offset only after Redis has the record",
                           setting->origin);
            problems++;
        }
    }
    return problems;
}

int rkb_config_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    const char *where = conf->path ? conf->path : "config";
    int problems = 0;
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);

    for (size_t i = 0; i < cnt; i++) {
        if (!(props[i].flags & RKB_PROP_F_REQUIRED))
            continue;
        const config_value_t *slot = &conf->values[i];
        if (!slot->value) {
            rkb_errors_add(errs, "%s: %s: required property is missing", where, props[i].name);
            problems++;
        } else if (!*slot->value) {
            rkb_errors_add(errs, "%s: %s: must not be empty", slot->origin, props[i].name);
            problems++;
        }
    }

    rkb_connector_kind_t kind = rkb_config_connector_kind(conf);
    const char *class_name = rkb_config_get(conf, "connector.class");
    if (kind == RKB_CONNECTOR_UNKNOWN && class_name && *class_name) {
        rkb_buf_t accepted;
        rkb_buf_init(&accepted);
        append_accepted_values(rkb_config_property_find("connector.class"),
                               &(values_out_t){.buf = &accepted, .quote = ""});
        rkb_errors_add(errs, "%s: connector.class: unknown connector class '%s' (accepted: %s)",
                       rkb_config_origin(conf, "connector.class"), class_name, accepted.data);
        rkb_buf_free(&accepted);
        problems++;
    }

    if (kind != RKB_CONNECTOR_UNKNOWN) {
        unsigned scope = rkb_connector_kind_scope(kind);
        for (size_t i = 0; i < cnt; i++) {
            if (conf->values[i].value && (props[i].scope & RKB_SCOPE_WORKER)) {
                rkb_errors_add(errs,
                               "%s: %s: a worker property: set it in the worker file (rkbridge "
                               "run --worker FILE)",
                               conf->values[i].origin, props[i].name);
                problems++;
            } else if (conf->values[i].value && !(props[i].scope & scope)) {
                rkb_errors_add(errs, "%s: %s: does not apply to a %s connector",
                               conf->values[i].origin, props[i].name,
                               rkb_connector_kind_name(kind));
                problems++;
            }
        }
    }
    if (kind == RKB_CONNECTOR_SINK)
        problems += validate_sink(conf, where, errs);

    const char *uri = rkb_config_get(conf, "redis.uri");
    bool sentinel = uri && (!strncasecmp(uri, "redis-sentinel://", 17) ||
                            !strncasecmp(uri, "rediss-sentinel://", 18));
    const char *uri_problem = uri && *uri && !sentinel ? redis_uri_problem(uri) : NULL;
    char sentinel_problem[512];
    if (sentinel && kind != RKB_CONNECTOR_SINK) {
        /* The sentinel form is parsed by the redis module itself (for a sink, validate_sink
         * already did). */
        rkb_redis_conf_t parsed;
        rkb_redis_conf_init(&parsed);
        if (rkb_redis_conf_from_uri(&parsed, uri, sentinel_problem, sizeof(sentinel_problem)))
            uri_problem = sentinel_problem;
        rkb_redis_conf_clear(&parsed);
    }
    if (uri_problem) {
        rkb_errors_add(errs, "%s: redis.uri: %s", rkb_config_origin(conf, "redis.uri"),
                       uri_problem);
        problems++;
    }
    problems += validate_redis_tls(conf, errs);
    return problems;
}

int rkb_config_listener(const char *listener, char **host, int *port, char *why, size_t why_size) {
    const char *p = listener;
    if (!strncasecmp(p, "http://", 7))
        p += 7;
    else if (strstr(p, "://")) {
        snprintf(why, why_size, "only http:// listeners are supported");
        return -1;
    }
    const char *host_end, *colon;
    const char *host_start = p;
    if (*p == '[') { /* [IPv6]:port */
        host_start = p + 1;
        host_end = strchr(p, ']');
        if (!host_end) {
            snprintf(why, why_size, "missing ']' after an IPv6 address");
            return -1;
        }
        colon = host_end[1] == ':' ? host_end + 1 : NULL;
    } else {
        colon = strrchr(p, ':');
        host_end = colon;
    }
    if (!colon || host_end == host_start) {
        snprintf(why, why_size, "expected HOST:PORT or http://HOST:PORT");
        return -1;
    }
    char *port_text = rkb_strdup(colon + 1);
    size_t len = strlen(port_text);
    if (len && port_text[len - 1] == '/')
        port_text[len - 1] = '\0'; /* http://host:8083/ */
    int64_t number;
    int rc = rkb_parse_int64(port_text, 0, 65535, &number);
    free(port_text);
    if (rc == -1) {
        snprintf(why, why_size, "the port must be a number between 0 and 65535");
        return -1;
    }
    *host = rkb_strndup(host_start, (size_t)(host_end - host_start));
    *port = (int)number;
    return 0;
}

int rkb_config_validate_worker(const rkb_config_t *conf, rkb_errors_t *errs) {
    int problems = 0;
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    for (size_t i = 0; i < cnt; i++) {
        if (conf->values[i].value && !(props[i].scope & RKB_SCOPE_WORKER)) {
            rkb_errors_add(errs,
                           "%s: %s: not a worker property (connector properties belong in a "
                           "connector file or the REST API)",
                           conf->values[i].origin, props[i].name);
            problems++;
        }
    }
    char *host = NULL;
    int port;
    char why[256];
    if (rkb_config_listener(rkb_config_get(conf, "listeners"), &host, &port, why, sizeof(why))) {
        rkb_errors_add(errs, "%s: listeners: %s", rkb_config_origin(conf, "listeners"), why);
        problems++;
    }
    free(host);
    return problems;
}

void rkb_config_foreach_set(const rkb_config_t *conf,
                            void (*cb)(const char *key, const char *value, const char *origin,
                                       void *opaque),
                            void *opaque) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    for (size_t i = 0; i < cnt; i++)
        if (conf->values[i].value)
            cb(props[i].name, conf->values[i].value, conf->values[i].origin, opaque);
    rkb_buf_t key;
    rkb_buf_init(&key);
    for (size_t i = 0; i < conf->kafka_cnt; i++) {
        rkb_buf_reset(&key);
        rkb_buf_appendf(&key, "kafka.%s", conf->kafka[i].name);
        cb(key.data, conf->kafka[i].value, conf->kafka[i].origin, opaque);
    }
    rkb_buf_free(&key);
}

/* ---- Printing --------------------------------------------------------------------------- */

static const char *type_name(rkb_prop_type_t type) {
    switch (type) {
    case RKB_PROP_STRING:
        return "string";
    case RKB_PROP_INT:
        return "int";
    case RKB_PROP_BOOL:
        return "bool";
    case RKB_PROP_ENUM:
        return "enum";
    case RKB_PROP_LIST:
        return "list";
    case RKB_PROP_PASSWORD:
        return "password";
    case RKB_PROP_TEMPLATE:
        return "template";
    }
    return "?";
}

/* Adds "HSET (HASH)" for one redis.command value: what it stands for. */
static bool append_command_item(const char *item, size_t len, void *opaque) {
    values_out_t *out = opaque;
    char *command = rkb_strndup(item, len);
    const char *direction;
    const char *type = rkb_config_command_type(command, &direction);
    append_value(out, item, len);
    rkb_buf_appendf(out->buf, " (%s%s%s)", type ? type : "?", direction ? " " : "",
                    direction ? direction : "");
    free(command);
    return false;
}

/* What a user may write for prop, in words: "1 .. 256", "true, false", the enum values. */
static void append_values_text(const rkb_property_t *prop, values_out_t *out) {
    switch (prop->type) {
    case RKB_PROP_INT:
        if (prop->max == INT64_MAX)
            rkb_buf_appendf(out->buf, ">= %lld", (long long)prop->min);
        else
            rkb_buf_appendf(out->buf, "%lld .. %lld", (long long)prop->min, (long long)prop->max);
        break;
    case RKB_PROP_BOOL:
        append_value(out, "true", 4);
        append_value(out, "false", 5);
        break;
    case RKB_PROP_LIST:
        rkb_buf_appends(out->buf, "comma-separated");
        break;
    default:
        if (!strcmp(prop->name, "redis.command"))
            list_each(prop->enum_values, append_command_item, out);
        else
            append_accepted_values(prop, out);
        break;
    }
}

/* The default as shown to users; passwords are never shown. */
static const char *default_text(const rkb_property_t *prop) {
    if (prop->flags & RKB_PROP_F_REQUIRED)
        return "required";
    if (!prop->default_value)
        return "no default";
    if (prop->type == RKB_PROP_PASSWORD && *prop->default_value)
        return "[hidden]";
    return NULL; /* the default itself */
}

static const struct {
    unsigned scope;
    const char *title;
    const char *intro; /* Markdown before the section's table, or NULL */
} scope_sections[] = {
    {RKB_SCOPE_ALL, "Common", NULL},
    {RKB_SCOPE_SINK, "Sink", NULL},
    {RKB_SCOPE_SOURCE, "Sources", NULL},
    {RKB_SCOPE_STREAM_SOURCE, "Stream source", NULL},
    {RKB_SCOPE_KEYS_SOURCE, "Keys source", NULL},
    {RKB_SCOPE_PUBSUB_SOURCE, "Pub/sub source", NULL},
    {RKB_SCOPE_WORKER, "Worker",
     "The worker file (`rkbridge run --worker worker.properties`) holds what Kafka Connect's worker "
     "config holds: the REST API's listener and authentication, the Kafka brokers, and the topic "
     "where connectors created over the REST API are kept. Its `kafka.<property>` settings are "
     "used by the worker's own Kafka clients and inherited by every connector that does not set "
     "the same property itself. Connector properties are refused in a worker file, and worker "
     "properties in a connector's config.\n"},
};

void rkb_config_print_help(FILE *fp) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    fprintf(fp, "Connector properties (one key=value per line; '#' starts a comment), and the\n"
                "worker properties of `run --worker FILE`:\n");
    rkb_buf_t values;
    rkb_buf_init(&values);
    for (size_t s = 0; s < RKB_ARRAY_SIZE(scope_sections); s++) {
        fprintf(fp, "\n%s:\n", scope_sections[s].title);
        for (size_t i = 0; i < cnt; i++) {
            if (props[i].scope != scope_sections[s].scope)
                continue;
            const char *shown = default_text(&props[i]);
            fprintf(fp, "  %s", props[i].name);
            if (props[i].aliases)
                fprintf(fp, " (alias %s)", props[i].aliases);
            fprintf(fp, "\n      %s, ", type_name(props[i].type));
            if (shown)
                fprintf(fp, "%s", shown);
            else
                fprintf(fp, "default %s",
                        *props[i].default_value ? props[i].default_value : "\"\"");
            rkb_buf_reset(&values);
            append_values_text(&props[i], &(values_out_t){.buf = &values, .quote = ""});
            if (values.len)
                fprintf(fp, "; %s", values.data);
            fprintf(fp, "\n      %s\n", props[i].doc);
        }
    }
    rkb_buf_free(&values);
    fprintf(fp, "\nKafka client (librdkafka):\n"
                "  kafka.<property>\n"
                "      Passed to librdkafka as <property> (see librdkafka's CONFIGURATION.md) and\n"
                "      checked by it when set. consumer.override.<property> and\n"
                "      producer.override.<property> mean the same (producer-only properties\n"
                "      apply to producers; the sink is a consumer). Sink defaults:\n"
                "      group.id=connect-${name}, auto.offset.reset=earliest,\n"
                "      enable.auto.offset.store=false (must stay false).\n");
}

/* Appends text for a Markdown table cell: '|' escaped, newlines as spaces. */
static void md_cell(rkb_buf_t *buf, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '|')
            rkb_buf_appends(buf, "\\|");
        else if (*p == '\n')
            rkb_buf_appends(buf, " ");
        else
            rkb_buf_append(buf, p, 1);
    }
}

/* Appends each comma-separated item as `code`, joined by ", ". */
static void md_code_list(rkb_buf_t *buf, const char *list) {
    char *copy = rkb_strdup(list);
    char *save = NULL;
    bool first = true;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        rkb_buf_appendf(buf, "%s`%s`", first ? "" : ", ", trim(item));
        first = false;
    }
    free(copy);
}

void rkb_config_print_markdown(FILE *fp) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    fputs("# rkbridge configuration\n"
          "\n"
          "<!-- Generated from src/config/config_props.c by `rkbridge config-doc`; "
          "do not edit. -->\n"
          "\n"
          "A connector is described by a properties file, as for Kafka Connect:\n"
          "\n"
          "```properties\n"
          "# orders.properties\n"
          "name=orders-to-redis\n"
          "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
          "topics=orders\n"
          "redis.uri=redis://localhost:6379\n"
          "redis.type=HASH\n"
          "kafka.bootstrap.servers=localhost:9092\n"
          "```\n"
          "\n"
          "- One `key=value` or `key: value` per line; white space around keys and values is "
          "ignored.\n"
          "- Lines starting with `#` or `!` are comments; blank lines are ignored.\n"
          "- A line ending in `\\` continues on the next line (whose leading white space is "
          "dropped). Other backslashes are kept as written: there are no Java escape "
          "sequences.\n"
          "- A key given twice: the last one wins.\n"
          "- Unknown keys are errors, with a hint when a known key is close. Errors name the "
          "file, line and key: `orders.properties:3: tasks.max: must be an integer between 1 "
          "and 256, got 'x'`.\n"
          "- Template properties hold text with tokens such as `${topic}`, `${key}`, "
          "`${value}`, `${value.field}` and `${header.NAME}`; `$$` is a literal `$`. They are "
          "checked when the connector starts.\n"
          "- Values may take secrets from outside the file when it is loaded, with Kafka "
          "Connect's config provider syntax: `${env:NAME}` is the environment variable `NAME`, "
          "`${file:PATH:KEY}` is `KEY` of the properties file `PATH` (e.g. "
          "`redis.password=${file:/etc/rkbridge/secrets.properties:redis.password}`). A "
          "reference that cannot be resolved is an error naming the key and the provider; "
          "`$${env:...}` is left as written (templates read `$$` as `$`).\n"
          "- rkbridge never prints the values of password properties, the password in "
          "`redis.uri`, secret `kafka.*` values (names with `password` or `secret`, "
          "`ssl.key.pem`, `sasl.jaas.config` ...) nor what a config provider resolved: "
          "printouts show `[hidden]` or the reference as written.\n"
          "\n"
          "## Kafka client properties\n"
          "\n"
          "`kafka.<property>` is passed to librdkafka as `<property>` (see librdkafka's "
          "[CONFIGURATION.md](https://github.com/confluentinc/librdkafka/blob/v2.0.2/"
          "CONFIGURATION.md)) and checked by librdkafka when the file is read. Kafka Connect's "
          "`consumer.override.<property>` is accepted as the same thing, and so is "
          "`producer.override.<property>`: producer properties apply to producers rkbridge "
          "creates; the sink itself is a consumer, where librdkafka ignores them with a "
          "warning. Kafka TLS and SASL are librdkafka's too (`kafka.security.protocol`, "
          "`kafka.ssl.ca.location`, `kafka.sasl.mechanism`, `kafka.sasl.username`, "
          "`kafka.sasl.password` ...); Kafka's `sasl.jaas.config` for `PlainLoginModule` or "
          "`ScramLoginModule` is accepted and becomes `sasl.username` and `sasl.password`.\n"
          "\n"
          "The sink sets these librdkafka defaults:\n"
          "\n"
          "| Property | Sink default | Why |\n"
          "|---|---|---|\n"
          "| `group.id` | `connect-${name}` | as Kafka Connect names a sink's group |\n"
          "| `auto.offset.reset` | `earliest` | a new group starts at the beginning of the "
          "topics |\n"
          "| `client.id` | `rkbridge-${name}-${task}` | names each task in broker logs |\n"
          "| `partition.assignment.strategy` | `cooperative-sticky` | a member joining or "
          "leaving does not stop the others (use `range` for eager rebalancing) |\n"
          "| `enable.auto.commit` | `true` | stored offsets are committed in the background, and "
          "synchronously on revocation and shutdown |\n"
          "| `auto.commit.interval.ms` | `1000` | how far a restart may replay (at-least-once) |\n"
          "| `queued.max.messages.kbytes` | `16384` | bounds what librdkafka prefetches per "
          "task |\n"
          "| `queued.min.messages` | `20000` | the same, in records: peak memory stays small, "
          "and the fetchers are woken as soon as half of it is consumed. With tasks.max > 1 "
          "each task gets its share of both bounds (at least 2000 records, 2 MB) |\n"
          "| `fetch.max.bytes` | `8388608` | one fetch response at most 8 MB on top |\n"
          "| `enable.auto.offset.store` | `false` | must not be changed: the sink stores an "
          "offset only after Redis has the record |\n",
          fp);

    rkb_buf_t row;
    rkb_buf_init(&row);
    for (size_t s = 0; s < RKB_ARRAY_SIZE(scope_sections); s++) {
        fprintf(fp, "\n## %s properties\n\n", scope_sections[s].title);
        if (scope_sections[s].intro)
            fprintf(fp, "%s\n", scope_sections[s].intro);
        fprintf(fp, "| Property | Type | Default | Values/range | Aliases | Description |\n"
                    "|---|---|---|---|---|---|\n");
        for (size_t i = 0; i < cnt; i++) {
            const rkb_property_t *prop = &props[i];
            if (prop->scope != scope_sections[s].scope)
                continue;
            rkb_buf_reset(&row);
            rkb_buf_appendf(&row, "| `%s` | %s | ", prop->name, type_name(prop->type));
            const char *shown = default_text(prop);
            if (shown) {
                rkb_buf_appends(&row, shown);
            } else if (!*prop->default_value) {
                rkb_buf_appends(&row, "`\"\"`");
            } else {
                rkb_buf_appends(&row, "`");
                md_cell(&row, prop->default_value);
                rkb_buf_appends(&row, "`");
            }
            rkb_buf_appends(&row, " | ");
            rkb_buf_t values;
            rkb_buf_init(&values);
            append_values_text(prop, &(values_out_t){.buf = &values, .quote = "`"});
            if (values.len)
                md_cell(&row, values.data);
            rkb_buf_free(&values);
            rkb_buf_appends(&row, " | ");
            if (prop->aliases)
                md_code_list(&row, prop->aliases);
            rkb_buf_appends(&row, " | ");
            md_cell(&row, prop->doc);
            rkb_buf_appends(&row, " |\n");
            fputs(row.data, fp);
        }
    }
    rkb_buf_free(&row);
}

/* redis.uri with the password part of user:password@ replaced by [hidden]. */
static void append_masked_uri(rkb_buf_t *buf, const char *uri) {
    const char *scheme_end = strstr(uri, "://");
    const char *authority = scheme_end ? scheme_end + 3 : uri;
    size_t authority_len = strcspn(authority, "/");
    const char *at = NULL;
    for (const char *p = authority; p < authority + authority_len; p++) {
        if (*p == '@')
            at = p;
    }
    if (!at) {
        rkb_buf_appends(buf, uri);
        return;
    }
    const char *colon = memchr(authority, ':', (size_t)(at - authority));
    const char *secret = colon ? colon + 1 : authority; /* "password@" alone is a password */
    rkb_buf_append(buf, uri, (size_t)(secret - uri));
    rkb_buf_appends(buf, "[hidden]");
    rkb_buf_appends(buf, at);
}

void rkb_config_print(const rkb_config_t *conf, FILE *fp) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    rkb_buf_t line;
    rkb_buf_init(&line);
    for (size_t i = 0; i < cnt; i++) {
        const char *origin;
        const char *value = effective_value(conf, &props[i], &origin);
        if (!value)
            continue;
        /* What a config provider resolved is shown as it was written, as Connect shows it. */
        const char *reference = conf->values[i].value ? conf->values[i].reference : NULL;
        rkb_buf_reset(&line);
        rkb_buf_appendf(&line, "%s=", props[i].name);
        if (props[i].type == RKB_PROP_PASSWORD && *value)
            rkb_buf_appends(&line, "[hidden]");
        else if (!strcmp(props[i].name, "redis.uri"))
            append_masked_uri(&line, reference ? reference : value);
        else
            rkb_buf_appends(&line, reference ? reference : value);
        fprintf(fp, "%s  # %s\n", line.data, origin ? origin : "default");
    }
    for (size_t i = 0; i < conf->kafka_cnt; i++) {
        const kafka_setting_t *setting = &conf->kafka[i];
        fprintf(fp, "kafka.%s=%s  # %s\n", setting->name,
                kafka_is_secret(setting->name) ? "[hidden]"
                : setting->reference           ? setting->reference
                                               : setting->value,
                setting->origin);
    }
    rkb_buf_free(&line);
}
