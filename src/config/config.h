/*
 * config.h — connector configuration: the property table, properties files, validation.
 *
 * One table (config_props.c) defines every property rkbridge knows: name, type, default, range,
 * aliases and a one-line doc. Parsing, validation, `rkbridge --help` and docs/configuration.md
 * all come from it. Keys are Kafka Connect / redis-kafka-connect compatible where that is sane.
 * librdkafka settings pass through under the prefix "kafka." (and Connect's
 * "consumer.override." / "producer.override.", mapped onto it) and are checked by librdkafka.
 *
 * Errors a user sees name the place: "FILE:LINE: key: why".
 * Not thread-safe for writing; a loaded config may be read from many threads.
 */
#ifndef RKB_CONFIG_CONFIG_H
#define RKB_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    RKB_PROP_STRING,
    RKB_PROP_INT,  /* 64-bit signed, checked against [min, max] */
    RKB_PROP_BOOL, /* true | false */
    RKB_PROP_ENUM, /* one of enum_values, case-insensitive; stored upper/lower as in the table */
    RKB_PROP_LIST, /* comma-separated, items trimmed */
    RKB_PROP_PASSWORD, /* a string never printed (masked as "[hidden]") */
    RKB_PROP_TEMPLATE, /* a string with ${...} tokens, checked by the module that uses it */
} rkb_prop_type_t;

/* Which connectors a property applies to. */
#define RKB_SCOPE_SINK          0x1
#define RKB_SCOPE_STREAM_SOURCE 0x2 /* Redis Streams → Kafka */
#define RKB_SCOPE_KEYS_SOURCE   0x4 /* key changes → Kafka */
#define RKB_SCOPE_PUBSUB_SOURCE 0x8 /* pub/sub → Kafka */
#define RKB_SCOPE_SOURCE (RKB_SCOPE_STREAM_SOURCE | RKB_SCOPE_KEYS_SOURCE | RKB_SCOPE_PUBSUB_SOURCE)
#define RKB_SCOPE_ALL    (RKB_SCOPE_SINK | RKB_SCOPE_SOURCE) /* every connector */
/* The worker (`rkbridge run --worker FILE`): its REST API and config topic, and the kafka.*
 * settings connectors inherit. Never part of a connector's config. */
#define RKB_SCOPE_WORKER 0x10

#define RKB_PROP_F_REQUIRED 0x1 /* must be set (no default) */

typedef struct rkb_property_s {
    const char *name; /* canonical name */
    rkb_prop_type_t type;
    const char *default_value; /* NULL: unset by default */
    int64_t min, max;          /* RKB_PROP_INT range */
    const char *enum_values;   /* RKB_PROP_ENUM: "STRING,HASH,..."; STRING: checked by validate */
    const char *aliases;       /* comma-separated other accepted names, or NULL */
    unsigned scope;            /* RKB_SCOPE_* */
    unsigned flags;            /* RKB_PROP_F_* */
    const char *doc;           /* one line */
    const char *value_aliases; /* other spellings of enum_values: "SPELLING=VALUE,...", or NULL */
} rkb_property_t;

/* The property table. */
const rkb_property_t *rkb_config_properties(size_t *cnt);
/* Looks a property up by canonical name or alias; NULL if unknown. */
const rkb_property_t *rkb_config_property_find(const char *name);
/* The redis.type a redis.command value stands for (HSET → HASH, ...), NULL if command is not
 * one; *push_direction (may be NULL) gets "LEFT"/"RIGHT" for LPUSH/RPUSH, else NULL. */
const char *rkb_config_command_type(const char *command, const char **push_direction);

/* A list of user-facing problems, one line each ("FILE:LINE: key: why"). */
typedef struct rkb_errors_s {
    char **msgs;
    size_t cnt;
    size_t cap;
} rkb_errors_t;

void rkb_errors_init(rkb_errors_t *errs);
void rkb_errors_add(rkb_errors_t *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rkb_errors_print(const rkb_errors_t *errs, FILE *fp); /* one per line */
void rkb_errors_clear(rkb_errors_t *errs);                 /* frees the messages */

typedef struct rkb_config_s rkb_config_t;

/* Which connector a config describes, from connector.class. */
typedef enum {
    RKB_CONNECTOR_UNKNOWN = 0,
    RKB_CONNECTOR_SINK,          /* com.redis.kafka.connect.RedisSinkConnector */
    RKB_CONNECTOR_STREAM_SOURCE, /* com.redis.kafka.connect.RedisStreamSourceConnector */
    RKB_CONNECTOR_KEYS_SOURCE,   /* com.redis.kafka.connect.RedisKeysSourceConnector */
    RKB_CONNECTOR_PUBSUB_SOURCE, /* rkbridge.RedisPubSubSourceConnector */
} rkb_connector_kind_t;

/* "sink", "stream source", "keys source", "pub/sub source" (for messages). */
const char *rkb_connector_kind_name(rkb_connector_kind_t kind);
/* The RKB_SCOPE_* bit of a kind (0 for RKB_CONNECTOR_UNKNOWN). */
unsigned rkb_connector_kind_scope(rkb_connector_kind_t kind);

rkb_config_t *rkb_config_new(void);
void rkb_config_destroy(rkb_config_t *conf); /* NULL is safe */

/* Reads a properties file: "key=value" or "key: value", '#' and '!' comments, blank lines,
 * surrounding white space trimmed, a trailing backslash continues the line. Every line is passed
 * to rkb_config_set with origin "PATH:LINE". Returns the number of problems added to errs
 * (a file that cannot be read is one problem "PATH: cannot read: why"). */
int rkb_config_load_file(rkb_config_t *conf, const char *path, rkb_errors_t *errs);

/* Sets one property. key may be canonical, an alias, or "kafka.X" (also "consumer.override.X"
 * and "producer.override.X", stored as "kafka.X"). Config provider references in the value are
 * resolved first, as Kafka Connect's: ${env:NAME} (an environment variable) and
 * ${file:PATH:KEY} (KEY of the properties file PATH); one that cannot be resolved is an error
 * naming the key, the reference and the provider. Checks the type and range of the value now.
 * An unknown key is an error with a "did you mean 'x'?" hint when a known name is close.
 * A key set twice: the last one wins (as in Java properties). origin is copied. Kafka's
 * kafka.sasl.jaas.config (PLAIN, SCRAM) becomes kafka.sasl.username and kafka.sasl.password.
 * Returns 0, or -1 after adding one line "ORIGIN: key: why" to errs. */
int rkb_config_set(rkb_config_t *conf, const char *key, const char *value, const char *origin,
                   rkb_errors_t *errs);

/* Whole-config checks: required keys, connector.class known, properties out of the connector's
 * scope, topics xor topics.regex (sink), redis.command vs redis.type agreement, kafka.* values
 * accepted by librdkafka, redis.uri well formed, TLS keys only with TLS on and their files
 * readable. Returns the number of problems added. */
int rkb_config_validate(const rkb_config_t *conf, rkb_errors_t *errs);
/* The same for a worker config: only worker properties (RKB_SCOPE_WORKER) and kafka.*, and a
 * listener rkb_config_listener can parse. Returns the number of problems added. */
int rkb_config_validate_worker(const rkb_config_t *conf, rkb_errors_t *errs);

/* Splits a listener, "HOST:PORT", "http://HOST:PORT" or "[IPv6]:PORT" (port 0: any free one),
 * into host (malloc'd, caller frees; brackets removed) and port. Returns 0, or -1 with why. */
int rkb_config_listener(const char *listener, char **host, int *port, char *why, size_t why_size);

rkb_connector_kind_t rkb_config_connector_kind(const rkb_config_t *conf);

/* Effective value by canonical name: the set value, else the default, else NULL.
 * Asking for a name not in the table is a programming error (abort). ENUM values come back
 * in the table's spelling; redis.command is folded into redis.type (see config_props.c).
 * The strings are owned by conf. get_int/get_bool on a property of another type abort; on an
 * unset property without default (the *.schemas.enable keys) they return 0/false, so check
 * rkb_config_is_set first where unset has a meaning of its own. is_set is true when the
 * effective value came from the user (also through redis.command), i.e. origin != "default". */
const char *rkb_config_get(const rkb_config_t *conf, const char *name);
int64_t rkb_config_get_int(const rkb_config_t *conf, const char *name);
bool rkb_config_get_bool(const rkb_config_t *conf, const char *name);
bool rkb_config_is_set(const rkb_config_t *conf, const char *name);
/* Where the effective value came from: "PATH:LINE", or "default". */
const char *rkb_config_origin(const rkb_config_t *conf, const char *name);

/* Calls cb for every property the user set (origin != "default"): table properties by canonical
 * name in table order, then kafka.* settings as "kafka.NAME" in the order they were set. */
void rkb_config_foreach_set(const rkb_config_t *conf,
                            void (*cb)(const char *key, const char *value, const char *origin,
                                       void *opaque),
                            void *opaque);

/* Calls cb for every kafka.* setting, with the prefix removed, in the order they were set. */
void rkb_config_foreach_kafka(const rkb_config_t *conf,
                              void (*cb)(const char *name, const char *value, const char *origin,
                                         void *opaque),
                              void *opaque);

/* The table as --help text, and as the Markdown of docs/configuration.md (deterministic: the
 * committed file must equal this output). */
void rkb_config_print_help(FILE *fp);
void rkb_config_print_markdown(FILE *fp);
/* The effective configuration, "key=value  # origin" per line (table order, then kafka.*);
 * passwords, the password in redis.uri and secret-looking kafka.* values print as "[hidden]",
 * values that came from a config provider as the reference written (${env:NAME}). */
void rkb_config_print(const rkb_config_t *conf, FILE *fp);
/* True if key's value is a secret that must never be shown (PASSWORD properties, and kafka.*
 * names with password or secret in them, ssl.key.pem, sasl.jaas.config, ...): the one rule
 * every printout of a config (validate, logs, status) follows. key as a user writes it
 * (canonical, alias, kafka.X, consumer.override.X). @locality any thread */
bool rkb_config_is_secret(const char *key);

#endif
