/*
 * test_config.c — unit tests of config/: properties files, set/get, folding of redis.command,
 * validation messages, the librdkafka passthrough, and the printed help and Markdown.
 *
 * Every error test checks the exact start of the message ("FILE:LINE: key: why"), since that
 * text is what users see.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config/config.h"
#include "harness.h"
#include "util/util.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Helpers ------------------------------------------------------------------------------ */

/* Fails unless errs holds exactly cnt messages. */
static void expect_count(const rkb_errors_t *errs, size_t cnt) {
    if (errs->cnt != cnt) {
        rkb_errors_print(errs, stderr);
        fail_msg("expected %zu error(s), got %zu", cnt, errs->cnt);
    }
}

/* Fails unless message i starts with prefix. */
static void expect_msg(const rkb_errors_t *errs, size_t i, const char *prefix) {
    if (i >= errs->cnt)
        fail_msg("expected an error #%zu starting with '%s', got %zu error(s)", i, prefix,
                 errs->cnt);
    if (strncmp(errs->msgs[i], prefix, strlen(prefix)))
        fail_msg("error #%zu is '%s'; expected it to start with '%s'", i, errs->msgs[i], prefix);
}

/* A config loaded from text written to a temp file; *path gets the file's path. */
static rkb_config_t *load(const char *name, const char *text, const char **path,
                          rkb_errors_t *errs) {
    const char *file = h_write_file(name, text);
    if (path)
        *path = file;
    rkb_config_t *conf = rkb_config_new();
    rkb_config_load_file(conf, file, errs);
    return conf;
}

/* "PATH:LINE" */
static char *at(const char *path, int line) {
    static char buf[4][1024];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "%s:%d", path, line);
    return out;
}

/* "PATH:LINE: rest" */
static char *at_msg(const char *path, int line, const char *rest) {
    static char buf[4][1024];
    static int next;
    char *out = buf[next++ % 4];
    snprintf(out, sizeof(buf[0]), "%s:%d: %s", path, line, rest);
    return out;
}

/* What fn printed to a FILE (malloc'd). */
static char *capture(void (*fn)(const void *arg, FILE *fp), const void *arg) {
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    fn(arg, fp);
    fclose(fp);
    return text;
}

static void print_help(const void *arg, FILE *fp) {
    rkb_config_print_help(fp);
}

static void print_markdown(const void *arg, FILE *fp) {
    rkb_config_print_markdown(fp);
}

static void print_conf(const void *arg, FILE *fp) {
    rkb_config_print(arg, fp);
}

static void print_errors(const void *arg, FILE *fp) {
    rkb_errors_print(arg, fp);
}

#define SINK_BASE                                                                                  \
    "name=orders\n"                                                                                \
    "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"

/* ---- Properties files --------------------------------------------------------------------- */

static void test_load_file_syntax(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("syntax.properties",
                              "# a comment\n"                         /* 1 */
                              "! another comment\n"                   /* 2 */
                              "\n"                                    /* 3 */
                              "   name = orders  \n"                  /* 4 */
                              "connector.class: RedisSinkConnector\n" /* 5 */
                              "topics = a, \\\n"                      /* 6 */
                              "         b ,\\\n"                      /* 7 */
                              "   c\n"                                /* 8 */
                              "\t# indented comment\n"                /* 9 */
                              "redis.uri=redis://h:1/0\r\n"           /* 10: CRLF */
                              "redis.separator=#\n"                   /* 11: '#' inside a value */
                              "tasks.max=3\n"                         /* 12 */
                              "tasks.max=4\n"                         /* 13: last one wins */
                              "redis.key.template=k:${key}\\\n"       /* 14: continued at EOF */
                              ,
                              &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "name"), "orders");
    assert_string_equal(rkb_config_origin(conf, "name"), at(path, 4));
    assert_string_equal(rkb_config_get(conf, "connector.class"), "RedisSinkConnector");
    assert_int_equal(rkb_config_connector_kind(conf), RKB_CONNECTOR_SINK);
    assert_string_equal(rkb_config_get(conf, "topics"), "a,b,c");
    assert_string_equal(rkb_config_origin(conf, "topics"), at(path, 6));
    assert_string_equal(rkb_config_get(conf, "redis.uri"), "redis://h:1/0");
    assert_string_equal(rkb_config_get(conf, "redis.separator"), "#");
    assert_int_equal(rkb_config_get_int(conf, "tasks.max"), 4);
    assert_string_equal(rkb_config_origin(conf, "tasks.max"), at(path, 13));
    assert_string_equal(rkb_config_get(conf, "redis.key.template"), "k:${key}");
    assert_string_equal(rkb_config_origin(conf, "redis.key.template"), at(path, 14));
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_load_file_defaults_and_types(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = load("types.properties",
                              SINK_BASE "topics=t\n"
                                        "redis.multiexec=TRUE\n"
                                        "redis.type=hash\n"
                                        "redis.stream.maxlen=9223372036854775807\n"
                                        "redis.key.ttl=-1\n"
                                        "redis.keyspace=\n",
                              NULL, &errs);
    expect_count(&errs, 0);
    assert_true(rkb_config_get_bool(conf, "redis.multiexec"));
    assert_string_equal(rkb_config_get(conf, "redis.multiexec"), "true");
    assert_string_equal(rkb_config_get(conf, "redis.type"), "HASH");
    assert_int_equal(rkb_config_get_int(conf, "redis.stream.maxlen"), INT64_MAX);
    assert_int_equal(rkb_config_get_int(conf, "redis.key.ttl"), -1);
    assert_string_equal(rkb_config_get(conf, "redis.keyspace"), "");
    assert_true(rkb_config_is_set(conf, "redis.keyspace"));
    /* Defaults */
    assert_int_equal(rkb_config_get_int(conf, "redis.port"), 6379);
    assert_string_equal(rkb_config_get(conf, "redis.host"), "localhost");
    assert_string_equal(rkb_config_get(conf, "redis.member"), "${key}");
    assert_string_equal(rkb_config_get(conf, "redis.push.direction"), "RIGHT");
    assert_string_equal(rkb_config_origin(conf, "redis.port"), "default");
    assert_false(rkb_config_is_set(conf, "redis.port"));
    /* Unset without default: the converters' auto-detection */
    assert_null(rkb_config_get(conf, "value.converter.schemas.enable"));
    assert_false(rkb_config_is_set(conf, "value.converter.schemas.enable"));
    assert_false(rkb_config_get_bool(conf, "value.converter.schemas.enable"));
    assert_null(rkb_config_get(conf, "topics.regex"));
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_load_file_problems(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("bad-lines.properties",
                              "redis.password s3cr3t-line\n" /* 1: no separator */
                              "=value\n"                     /* 2: no key */
                              "name=ok\n",                   /* 3 */
                              &path, &errs);
    expect_count(&errs, 2);
    expect_msg(&errs, 0, at_msg(path, 1, "expected 'key=value' or 'key: value'"));
    expect_msg(&errs, 1, at_msg(path, 2, "missing key before '='"));
    /* The line is not quoted back: it may hold a secret. */
    assert_null(strstr(errs.msgs[0], "s3cr3t-line"));
    assert_string_equal(rkb_config_get(conf, "name"), "ok");
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* A missing file is one problem. */
    conf = rkb_config_new();
    char missing[1024];
    snprintf(missing, sizeof(missing), "%s/no-such.properties", h_tmpdir());
    assert_int_equal(rkb_config_load_file(conf, missing, &errs), 1);
    expect_count(&errs, 1);
    char want[1100];
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", missing);
    assert_string_equal(errs.msgs[0], want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_load_file_returns_problem_count(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *file = h_write_file("count.properties", "tasks.max=0\nnope=1\nname=x\n");
    rkb_config_t *conf = rkb_config_new();
    assert_int_equal(rkb_config_load_file(conf, file, &errs), 2);
    expect_count(&errs, 2);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* ---- Names and values --------------------------------------------------------------------- */

static void test_alias(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("alias.properties", "redis.key=orders:${topic}\n", &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "redis.keyspace"), "orders:${topic}");
    assert_string_equal(rkb_config_origin(conf, "redis.keyspace"), at(path, 1));
    assert_ptr_equal(rkb_config_property_find("redis.key"),
                     rkb_config_property_find("redis.keyspace"));
    rkb_config_destroy(conf);
}

static void test_unknown_key(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("unknown.properties",
                              "redis.keyspac=x\n"          /* 1: typo */
                              "Redis.Type=HASH\n"          /* 2: case */
                              "transforms=unwrap\n"        /* 3: nothing close */
                              "bootstrap.servers=b:9092\n" /* 4: librdkafka's, unprefixed */
                              "tasks.maxx=3\n",            /* 5: one letter too many */
                              &path, &errs);
    expect_count(&errs, 5);
    assert_string_equal(errs.msgs[0], at_msg(path, 1,
                                             "redis.keyspac: unknown property (did you mean "
                                             "'redis.keyspace'?)"));
    assert_string_equal(
        errs.msgs[1], at_msg(path, 2, "Redis.Type: unknown property (did you mean 'redis.type'?)"));
    assert_string_equal(errs.msgs[2], at_msg(path, 3, "transforms: unknown property"));
    assert_string_equal(errs.msgs[3], at_msg(path, 4,
                                             "bootstrap.servers: unknown property (did you mean "
                                             "'kafka.bootstrap.servers'?)"));
    assert_string_equal(
        errs.msgs[4], at_msg(path, 5, "tasks.maxx: unknown property (did you mean 'tasks.max'?)"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_bad_values(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("values.properties",
                              "tasks.max=abc\n"                           /* 1 */
                              "tasks.max=257\n"                           /* 2 */
                              "redis.port=80x\n"                          /* 3 */
                              "redis.multiexec=yes\n"                     /* 4 */
                              "redis.type=HASHES\n"                       /* 5 */
                              "redis.command=DEL\n"                       /* 6 */
                              "topics=a,,b\n"                             /* 7 */
                              "redis.key.ttl=-2\n"                        /* 8 */
                              "redis.stream.maxlen=9223372036854775808\n" /* 9 */
                              "tasks.max=\n",                             /* 10 */
                              &path, &errs);
    expect_count(&errs, 10);
    assert_string_equal(
        errs.msgs[0],
        at_msg(path, 1, "tasks.max: must be an integer between 1 and 256, got 'abc'"));
    assert_string_equal(
        errs.msgs[1],
        at_msg(path, 2, "tasks.max: must be an integer between 1 and 256, got '257'"));
    expect_msg(&errs, 2, at_msg(path, 3, "redis.port: must be an integer between 1 and 65535"));
    assert_string_equal(errs.msgs[3],
                        at_msg(path, 4, "redis.multiexec: must be true or false, got 'yes'"));
    assert_string_equal(errs.msgs[4],
                        at_msg(path, 5,
                               "redis.type: must be one of STRING, HASH, JSON, STREAM, LIST, "
                               "SET, ZSET, TIMESERIES, PUBSUB, COUNTER, CACHE, WINDOW, NONE, got "
                               "'HASHES'"));
    expect_msg(&errs, 5, at_msg(path, 6, "redis.command: must be one of HSET, JSONSET, TSADD"));
    assert_string_equal(errs.msgs[6],
                        at_msg(path, 7, "topics: empty item in the comma-separated list"));
    expect_msg(&errs, 7,
               at_msg(path, 8, "redis.key.ttl: must be an integer between -1 and 2147483647"));
    expect_msg(&errs, 8,
               at_msg(path, 9,
                      "redis.stream.maxlen: must be an integer between 0 and "
                      "9223372036854775807"));
    expect_msg(&errs, 9, at_msg(path, 10, "tasks.max: must be an integer between 1 and 256"));
    /* Nothing bad was stored. */
    assert_int_equal(rkb_config_get_int(conf, "tasks.max"), 1);
    assert_false(rkb_config_is_set(conf, "redis.type"));
    assert_null(rkb_config_get(conf, "topics"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_converters(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("conv.properties",
                              "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
                              "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
                              "value.converter.schemas.enable=false\n"
                              "key.converter.schemas.enable=True\n",
                              &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "key.converter"), "string");
    assert_string_equal(rkb_config_get(conf, "value.converter"), "json");
    assert_true(rkb_config_is_set(conf, "value.converter.schemas.enable"));
    assert_false(rkb_config_get_bool(conf, "value.converter.schemas.enable"));
    assert_true(rkb_config_get_bool(conf, "key.converter.schemas.enable"));

    assert_int_equal(rkb_config_set(conf, "value.converter",
                                    "org.apache.kafka.connect.converters.ByteArrayConverter", "t:1",
                                    &errs),
                     0);
    assert_string_equal(rkb_config_get(conf, "value.converter"), "bytes");
    assert_int_equal(rkb_config_set(conf, "key.converter", "JSON", "t:2", &errs), 0);
    assert_string_equal(rkb_config_get(conf, "key.converter"), "json");

    assert_int_equal(rkb_config_set(conf, "value.converter",
                                    "io.confluent.connect.avro.AvroConverter", "t:3", &errs),
                     -1);
    expect_count(&errs, 1);
    assert_string_equal(errs.msgs[0], "t:3: value.converter: must be one of string, bytes, json, "
                                      "org.apache.kafka.connect.storage.StringConverter, "
                                      "org.apache.kafka.connect.converters.ByteArrayConverter, "
                                      "org.apache.kafka.connect.json.JsonConverter, got "
                                      "'io.confluent.connect.avro.AvroConverter'");
    assert_string_equal(rkb_config_get(conf, "value.converter"), "bytes");
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* ---- redis.command ------------------------------------------------------------------------ */

static void test_command_folding(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf =
        load("cmd.properties", SINK_BASE "topics=t\nredis.command=hset\n", &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "redis.command"), "HSET");
    assert_string_equal(rkb_config_get(conf, "redis.type"), "HASH");
    assert_string_equal(rkb_config_origin(conf, "redis.type"), at(path, 4));
    assert_true(rkb_config_is_set(conf, "redis.type"));
    assert_string_equal(rkb_config_get(conf, "redis.push.direction"), "RIGHT");
    assert_false(rkb_config_is_set(conf, "redis.push.direction"));
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    rkb_config_destroy(conf);

    /* LPUSH: LIST, pushed LEFT */
    conf = load("lpush.properties", SINK_BASE "topics=t\nredis.command=LPUSH\n", &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "redis.type"), "LIST");
    assert_string_equal(rkb_config_get(conf, "redis.push.direction"), "LEFT");
    assert_string_equal(rkb_config_origin(conf, "redis.push.direction"), at(path, 4));
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    rkb_config_destroy(conf);

    /* Agreeing explicit keys are fine. */
    conf = load("agree.properties",
                SINK_BASE "topics=t\nredis.command=LPUSH\nredis.type=LIST\n"
                          "redis.push.direction=left\n",
                &path, &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    assert_string_equal(rkb_config_origin(conf, "redis.type"), at(path, 5));
    rkb_config_destroy(conf);

    /* Every command maps to a redis.type the table knows. */
    const rkb_property_t *command = rkb_config_property_find("redis.command");
    const rkb_property_t *type = rkb_config_property_find("redis.type");
    char *commands = strdup(command->enum_values);
    char *save = NULL;
    for (char *c = strtok_r(commands, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        const char *mapped = rkb_config_command_type(c, NULL);
        assert_non_null(mapped);
        assert_non_null(strstr(type->enum_values, mapped));
    }
    free(commands);
    assert_null(rkb_config_command_type("DEL", NULL));
    rkb_errors_clear(&errs);
}

static void test_command_conflict(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("conflict.properties",
                              SINK_BASE "topics=t\n"
                                        "redis.command=HSET\n" /* 4 */
                                        "redis.type=STREAM\n", /* 5 */
                              &path, &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    char want[2048];
    snprintf(want, sizeof(want),
             "%s:4: redis.command: HSET writes redis.type HASH, but redis.type is STREAM "
             "(%s:5); set only one of them",
             path, path);
    assert_string_equal(errs.msgs[0], want);
    /* The explicit key wins for get. */
    assert_string_equal(rkb_config_get(conf, "redis.type"), "STREAM");
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    conf = load("conflict-dir.properties",
                SINK_BASE "topics=t\n"
                          "redis.command=LPUSH\n"         /* 4 */
                          "redis.push.direction=RIGHT\n", /* 5 */
                &path, &errs);
    expect_count(&errs, 0);
    assert_string_equal(rkb_config_get(conf, "redis.push.direction"), "RIGHT");
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    expect_msg(&errs, 0, at_msg(path, 4, "redis.command: LPUSH pushes LEFT, but "));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* ---- Validation --------------------------------------------------------------------------- */

static void test_required(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("required.properties", "topics=t\n", &path, &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 2);
    char want[1100];
    snprintf(want, sizeof(want), "%s: name: required property is missing", path);
    assert_string_equal(errs.msgs[0], want);
    snprintf(want, sizeof(want), "%s: connector.class: required property is missing", path);
    assert_string_equal(errs.msgs[1], want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* Not loaded from a file */
    conf = rkb_config_new();
    assert_int_equal(rkb_config_set(conf, "name", "", "cli", &errs), 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 2);
    assert_string_equal(errs.msgs[0], "cli: name: must not be empty");
    assert_string_equal(errs.msgs[1], "config: connector.class: required property is missing");
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_connector_class(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf =
        load("class.properties", "name=n\nconnector.class=com.example.OtherConnector\ntopics=t\n",
             &path, &errs);
    assert_int_equal(rkb_config_connector_kind(conf), RKB_CONNECTOR_UNKNOWN);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    assert_string_equal(errs.msgs[0],
                        at_msg(path, 2,
                               "connector.class: unknown connector class "
                               "'com.example.OtherConnector' (accepted: "
                               "com.redis.kafka.connect.RedisSinkConnector, "
                               "com.redis.kafka.connect.RedisStreamSourceConnector, "
                               "com.redis.kafka.connect.RedisKeysSourceConnector, "
                               "rkbridge.RedisPubSubSourceConnector, RedisSinkConnector, "
                               "RedisStreamSourceConnector, RedisKeysSourceConnector, "
                               "RedisPubSubSourceConnector)"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* Each class is its kind, and a property of another kind is refused. */
    conf = load("source.properties",
                "name=s\nconnector.class=RedisStreamSourceConnector\nredis.stream.name=s\n"
                "topics=t\nredis.keys.pattern=x\n",
                &path, &errs);
    assert_int_equal(rkb_config_connector_kind(conf), RKB_CONNECTOR_STREAM_SOURCE);
    assert_int_equal(rkb_config_validate(conf, &errs), 2);
    assert_string_equal(errs.msgs[0],
                        at_msg(path, 4, "topics: does not apply to a stream source connector"));
    assert_string_equal(errs.msgs[1],
                        at_msg(path, 5,
                               "redis.keys.pattern: does not apply to a stream source "
                               "connector"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_topics_xor_regex(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("neither.properties", SINK_BASE, &path, &errs);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    char want[1100];
    snprintf(want, sizeof(want), "%s: topics: a sink needs topics or topics.regex", path);
    assert_string_equal(errs.msgs[0], want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    conf = load("both.properties", SINK_BASE "topics=a\ntopics.regex=a.*\n", &path, &errs);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    snprintf(want, sizeof(want),
             "%s:4: topics.regex: set together with topics (%s:3); set only one", path, path);
    assert_string_equal(errs.msgs[0], want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    /* An empty topics (as Connect writes it beside topics.regex) does not count. */
    conf = load("regex.properties", SINK_BASE "topics=\ntopics.regex=orders-.*\n", &path, &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    assert_string_equal(rkb_config_get(conf, "topics.regex"), "orders-.*");
    rkb_config_destroy(conf);
}

static void test_bad_regex(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf =
        load("regex-bad.properties", SINK_BASE "topics.regex=orders-(a\n", &path, &errs);
    expect_count(&errs, 1);
    expect_msg(&errs, 0, at_msg(path, 3, "topics.regex: invalid regular expression: "));
    assert_null(rkb_config_get(conf, "topics.regex"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_redis_uri(void **state) {
    static const struct {
        const char *uri;
        const char *why; /* NULL: fine */
    } cases[] = {
        {"redis://localhost", NULL},
        {"redis://h:6380/2", NULL},
        {"REDIS://:p@ss@h:1", NULL},
        {"redis://user:pw@h", NULL},
        {"redis://[::1]:6379/0", NULL},
        {"rediss://u:secret@h:6380/1", NULL},
        {"rediss://h:port", "redis.uri: the port must be a number between 1 and 65535"},
        {"http://h", "redis.uri: must start with redis:// or rediss://"},
        {"h:6379", "redis.uri: must start with redis://"},
        {"redis://h:port", "redis.uri: the port must be a number between 1 and 65535"},
        {"redis://h:0", "redis.uri: the port must be a number between 1 and 65535"},
        {"redis://h:", "redis.uri: the port must be a number between 1 and 65535"},
        {"redis://", "redis.uri: missing host"},
        {"redis://u:secret@:1", "redis.uri: missing host"},
        {"redis://h/db1", "redis.uri: the database after '/' must be a number"},
        {"redis://[::1", "redis.uri: missing ']' after an IPv6 address"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rkb_errors_t errs;
        rkb_errors_init(&errs);
        rkb_config_t *conf = rkb_config_new();
        assert_int_equal(rkb_config_set(conf, "name", "n", "f:1", &errs), 0);
        assert_int_equal(
            rkb_config_set(conf, "connector.class", "RedisSinkConnector", "f:2", &errs), 0);
        assert_int_equal(rkb_config_set(conf, "topics", "t", "f:3", &errs), 0);
        assert_int_equal(rkb_config_set(conf, "redis.uri", cases[i].uri, "f:4", &errs), 0);
        int problems = rkb_config_validate(conf, &errs);
        if (!cases[i].why) {
            if (problems)
                fail_msg("%s: unexpected '%s'", cases[i].uri, errs.msgs[0]);
        } else {
            assert_int_equal(problems, 1);
            char want[256];
            snprintf(want, sizeof(want), "f:4: %s", cases[i].why);
            expect_msg(&errs, 0, want);
            assert_null(strstr(errs.msgs[0], "secret"));
        }
        rkb_config_destroy(conf);
        rkb_errors_clear(&errs);
    }
}

/* ---- kafka.* ------------------------------------------------------------------------------ */

typedef struct kafka_seen_s {
    char text[1024];
} kafka_seen_t;

static void collect_kafka(const char *name, const char *value, const char *origin, void *opaque) {
    kafka_seen_t *seen = opaque;
    size_t len = strlen(seen->text);
    snprintf(seen->text + len, sizeof(seen->text) - len, "%s=%s@%s;", name, value, origin);
}

static void test_kafka_passthrough(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("kafka.properties",
                              "kafka.bootstrap.servers=b1:9092\n"              /* 1 */
                              "consumer.override.session.timeout.ms=10000\n"   /* 2 */
                              "producer.override.acks=all\n"                   /* 3 */
                              "kafka.bootstrap.servers=b2:9092\n"              /* 4: last wins */
                              "kafka.acks=bogus\n"                             /* 5 */
                              "kafka.no.such.prop=1\n"                         /* 6 */
                              "consumer.override.auto.offset.reset=sometime\n" /* 7 */
                              "kafka.=1\n",                                    /* 8 */
                              &path, &errs);
    expect_count(&errs, 4);
    assert_string_equal(errs.msgs[0], at_msg(path, 5,
                                             "kafka.acks: Invalid value for configuration property "
                                             "\"request.required.acks\""));
    assert_string_equal(errs.msgs[1], at_msg(path, 6,
                                             "kafka.no.such.prop: No such configuration property: "
                                             "\"no.such.prop\""));
    expect_msg(&errs, 2, at_msg(path, 7, "consumer.override.auto.offset.reset: Invalid value"));
    expect_msg(&errs, 3, at_msg(path, 8, "kafka.: missing librdkafka property name"));

    kafka_seen_t seen = {""};
    rkb_config_foreach_kafka(conf, collect_kafka, &seen);
    char want[2048];
    snprintf(want, sizeof(want),
             "bootstrap.servers=b2:9092@%s:4;session.timeout.ms=10000@%s:2;acks=all@%s:3;", path,
             path, path);
    assert_string_equal(seen.text, want);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_kafka_offset_store_must_stay_off(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf =
        load("store.properties", SINK_BASE "topics=t\nkafka.enable.auto.offset.store=true\n", &path,
             &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    expect_msg(&errs, 0, at_msg(path, 4, "kafka.enable.auto.offset.store: must stay false"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    conf = load("store-off.properties",
                SINK_BASE "topics=t\nkafka.enable.auto.offset.store=false\n", &path, &errs);
    assert_int_equal(rkb_config_validate(conf, &errs), 0);
    rkb_config_destroy(conf);
}

/* ---- Secrets ------------------------------------------------------------------------------ */

static void test_password_never_printed(void **state) {
    static const char secret[] = "pw-7f3a9c";
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    char text[1024];
    snprintf(text, sizeof(text),
             SINK_BASE "topics=t\n"
                       "redis.password=%s\n"
                       "redis.uri=redis://app:%s@h:6379/1\n"
                       "kafka.sasl.password=%s\n"
                       "redis.pasword=%s\n"  /* unknown key: the error must not quote it */
                       "redis.password %s\n" /* no separator */
                       "tasks.max=%s\n",     /* the one place a value is quoted back */
             secret, secret, secret, secret, secret, "x");
    const char *path;
    rkb_config_t *conf = load("secret.properties", text, &path, &errs);
    expect_count(&errs, 3);
    expect_msg(&errs, 0,
               at_msg(path, 7, "redis.pasword: unknown property (did you mean 'redis.password'?)"));
    rkb_config_validate(conf, &errs);
    assert_string_equal(rkb_config_get(conf, "redis.password"), secret);

    char *outputs[4] = {
        capture(print_help, NULL),
        capture(print_markdown, NULL),
        capture(print_conf, conf),
        capture(print_errors, &errs),
    };
    for (size_t i = 0; i < 4; i++) {
        if (strstr(outputs[i], secret))
            fail_msg("output %zu shows the password:\n%s", i, outputs[i]);
    }
    assert_non_null(strstr(outputs[2], "redis.password=[hidden]  # "));
    assert_non_null(strstr(outputs[2], "redis.uri=redis://app:[hidden]@h:6379/1  # "));
    assert_non_null(strstr(outputs[2], "kafka.sasl.password=[hidden]  # "));
    assert_non_null(strstr(outputs[2], "redis.type=STREAM  # default\n"));
    for (size_t i = 0; i < 4; i++)
        free(outputs[i]);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* ---- Worker configs ------------------------------------------------------------------------- */

/* A worker file takes worker properties and kafka.*, and refuses connector properties; a
 * connector refuses worker properties, naming the worker file. */
static void test_worker_config(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    const char *path;
    rkb_config_t *conf = load("worker.properties",
                              "listeners=http://127.0.0.1:0\n"                /* 1 */
                              "rest.auth.token=s3cret\n"                      /* 2 */
                              "config.storage.topic=my-configs\n"             /* 3 */
                              "kafka.bootstrap.servers=b:9092\n"              /* 4 */
                              "redis.type=HASH\n",                            /* 5 */
                              &path, &errs);
    expect_count(&errs, 0);
    assert_int_equal(rkb_config_validate_worker(conf, &errs), 1);
    assert_string_equal(errs.msgs[0],
                        at_msg(path, 5,
                               "redis.type: not a worker property (connector properties belong "
                               "in a connector file or the REST API)"));
    assert_string_equal(rkb_config_get(conf, "config.storage.topic"), "my-configs");
    assert_int_equal(rkb_config_get_int(conf, "rest.request.max.bytes"), 1048576);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    conf = load("badlistener.properties", "listeners=somewhere\n", &path, &errs);
    assert_int_equal(rkb_config_validate_worker(conf, &errs), 1);
    expect_msg(&errs, 0, at_msg(path, 1, "listeners: expected HOST:PORT"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);

    conf = load("sink-with-worker-key.properties",
                "name=s\n"
                "connector.class=RedisSinkConnector\n"
                "topics=t\n"
                "listeners=127.0.0.1:9999\n", /* 4 */
                &path, &errs);
    assert_int_equal(rkb_config_validate(conf, &errs), 1);
    expect_msg(&errs, 0, at_msg(path, 4, "listeners: a worker property"));
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

static void test_listener_syntax(void **state) {
    static const struct {
        const char *text;
        const char *host;
        int port;
    } good[] = {{"http://127.0.0.1:8083", "127.0.0.1", 8083}, {"localhost:0", "localhost", 0},
                {"[::1]:8083", "::1", 8083},                  {"http://0.0.0.0:80/", "0.0.0.0", 80}};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *host = NULL, why[256];
        int port = -1;
        if (rkb_config_listener(good[i].text, &host, &port, why, sizeof(why)))
            fail_msg("%s: %s", good[i].text, why);
        assert_string_equal(host, good[i].host);
        assert_int_equal(port, good[i].port);
        free(host);
    }
    static const char *const bad[] = {"8083", ":8083", "https://h:1", "h:65536", "h:x", "[::1:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *host = NULL, why[256];
        int port;
        if (!rkb_config_listener(bad[i], &host, &port, why, sizeof(why)))
            fail_msg("%s accepted", bad[i]);
        assert_null(host);
    }
}

static void collect_set(const char *key, const char *value, const char *origin, void *opaque) {
    rkb_buf_appendf(opaque, "%s=%s@%s;", key, value, origin);
}

/* What the user set, and only that, in table order then kafka.* (what GET .../config shows). */
static void test_foreach_set(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = rkb_config_new();
    assert_int_equal(rkb_config_set(conf, "kafka.acks", "all", "o1", &errs), 0);
    assert_int_equal(rkb_config_set(conf, "redis.type", "hash", "o2", &errs), 0);
    assert_int_equal(rkb_config_set(conf, "name", "n", "o3", &errs), 0);
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_config_foreach_set(conf, collect_set, &out);
    assert_string_equal(out.data, "name=n@o3;redis.type=HASH@o2;kafka.acks=all@o1;");
    rkb_buf_free(&out);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
}

/* ---- The table and its printouts ---------------------------------------------------------- */

static void test_table_is_consistent(void **state) {
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    assert_true(cnt > 20);
    for (size_t i = 0; i < cnt; i++) {
        const rkb_property_t *prop = &props[i];
        assert_ptr_equal(rkb_config_property_find(prop->name), prop);
        assert_non_null(prop->doc);
        assert_null(strchr(prop->doc, '|'));
        assert_null(strchr(prop->doc, '\n'));
        /* A connector property, or a worker one: never both. */
        assert_true(prop->scope == RKB_SCOPE_WORKER ||
                    (prop->scope != 0 && (prop->scope & ~RKB_SCOPE_ALL) == 0));
        if (prop->flags & RKB_PROP_F_REQUIRED)
            assert_null(prop->default_value);
        if (prop->type == RKB_PROP_ENUM)
            assert_non_null(prop->enum_values);
        /* Each default is a value the property accepts, in its canonical spelling. */
        if (prop->default_value) {
            rkb_errors_t errs;
            rkb_errors_init(&errs);
            rkb_config_t *conf = rkb_config_new();
            if (rkb_config_set(conf, prop->name, prop->default_value, "t", &errs))
                fail_msg("default of %s: %s", prop->name, errs.msgs[0]);
            assert_string_equal(rkb_config_get(conf, prop->name), prop->default_value);
            rkb_config_destroy(conf);
        }
    }
    assert_null(rkb_config_property_find("no.such.property"));
}

static void test_get_unknown_name_aborts(void **state) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        rkb_config_t *conf = rkb_config_new();
        rkb_config_get(conf, "redis.typo");
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_help_and_markdown(void **state) {
    char *help = capture(print_help, NULL);
    assert_non_null(strstr(help, "\nCommon:\n"));
    assert_non_null(strstr(help, "\nSink:\n"));
    assert_non_null(strstr(help, "  redis.keyspace (alias redis.key)\n"));
    assert_non_null(strstr(help, "kafka.<property>"));
    assert_true(strstr(help, "  tasks.max\n") < strstr(help, "\nSink:\n"));
    assert_true(strstr(help, "  redis.type\n") > strstr(help, "\nSink:\n"));

    char *md = capture(print_markdown, NULL);
    char *again = capture(print_markdown, NULL);
    assert_string_equal(md, again); /* deterministic */
    assert_true(!strncmp(md, "# rkbridge configuration\n", 25));
    assert_non_null(strstr(md, "## Common properties\n"));
    assert_non_null(strstr(md, "## Sink properties\n"));
    assert_non_null(
        strstr(md, "| Property | Type | Default | Values/range | Aliases | Description |"));
    assert_non_null(strstr(md, "| `tasks.max` | int | `1` | 1 .. 256 |  | "));
    assert_non_null(strstr(md, "| `redis.keyspace` | template | `${topic}` |  | `redis.key` | "));
    assert_non_null(strstr(md, "`enable.auto.offset.store` | `false`"));
    assert_non_null(strstr(md, "consumer.override."));
    assert_non_null(strstr(md, "## Worker properties\n\nThe worker file"));
    assert_non_null(strstr(md, "| `listeners` | string | `http://127.0.0.1:8083` |"));
    assert_non_null(strstr(help, "\nWorker:\n  listeners\n"));

#ifdef RKB_SOURCE_DIR
    /* The committed reference must be this output. */
    FILE *fp = fopen(RKB_SOURCE_DIR "/docs/configuration.md", "r");
    if (fp) {
        char *committed = NULL;
        size_t len = 0;
        assert_true(getdelim(&committed, &len, '\0', fp) >= 0);
        fclose(fp);
        if (strcmp(committed, md))
            fail_msg("docs/configuration.md is out of date: regenerate it from "
                     "rkb_config_print_markdown");
        free(committed);
    }
#endif
    free(help);
    free(md);
    free(again);
}

static void test_errors_list(void **state) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    for (int i = 0; i < 20; i++)
        rkb_errors_add(&errs, "e%d", i);
    assert_int_equal(errs.cnt, 20);
    assert_string_equal(errs.msgs[19], "e19");
    char *long_value = malloc(5000);
    memset(long_value, 'x', 4999);
    long_value[4999] = '\0';
    rkb_errors_add(&errs, "%s", long_value); /* no truncation */
    assert_string_equal(errs.msgs[20], long_value);
    free(long_value);
    rkb_errors_clear(&errs);
    assert_int_equal(errs.cnt, 0);
    rkb_errors_clear(&errs); /* twice is fine */
    rkb_errors_add(NULL, "ignored");
    rkb_config_destroy(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_file_syntax),
        cmocka_unit_test(test_load_file_defaults_and_types),
        cmocka_unit_test(test_load_file_problems),
        cmocka_unit_test(test_load_file_returns_problem_count),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_converters),
        cmocka_unit_test(test_command_folding),
        cmocka_unit_test(test_command_conflict),
        cmocka_unit_test(test_required),
        cmocka_unit_test(test_connector_class),
        cmocka_unit_test(test_topics_xor_regex),
        cmocka_unit_test(test_bad_regex),
        cmocka_unit_test(test_redis_uri),
        cmocka_unit_test(test_kafka_passthrough),
        cmocka_unit_test(test_kafka_offset_store_must_stay_off),
        cmocka_unit_test(test_password_never_printed),
        cmocka_unit_test(test_worker_config),
        cmocka_unit_test(test_listener_syntax),
        cmocka_unit_test(test_foreach_set),
        cmocka_unit_test(test_table_is_consistent),
        cmocka_unit_test(test_get_unknown_name_aborts),
        cmocka_unit_test(test_help_and_markdown),
        cmocka_unit_test(test_errors_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
