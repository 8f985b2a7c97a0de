/*
 * config_props.c — the property table: every connector property rkbridge knows.
 *
 * This table is the single source of truth for configuration. config.c parses, checks and
 * prints from it (rkbridge --help, docs/configuration.md), so adding a property here is all it
 * takes to make it settable, validated and documented. Consumers (sink, redis, convert) read
 * effective values with rkb_config_get*() by canonical name.
 *
 * Doc strings are one user-facing line each: they appear as-is in --help and in the Markdown
 * table (so no '*' or '|', and no trailing period).
 */
#include "config/config.h"
#include "util/util.h"

#include <string.h>
#include <strings.h>

/* Connect's converter class names, accepted for the short names. */
#define CONVERTER_CLASSES                                                                          \
    "org.apache.kafka.connect.storage.StringConverter=string,"                                     \
    "org.apache.kafka.connect.converters.ByteArrayConverter=bytes,"                                \
    "org.apache.kafka.connect.json.JsonConverter=json"

static const rkb_property_t properties[] = {
    /* ---- Common: every connector ---------------------------------------------------------- */
    {.name = "name",
     .type = RKB_PROP_STRING,
     .scope = RKB_SCOPE_ALL,
     .flags = RKB_PROP_F_REQUIRED,
     .doc = "Unique connector name; the sink's consumer group is connect-${name}"},
    {.name = "connector.class",
     .type = RKB_PROP_STRING,
     .enum_values = "com.redis.kafka.connect.RedisSinkConnector,"
                    "com.redis.kafka.connect.RedisStreamSourceConnector,"
                    "com.redis.kafka.connect.RedisKeysSourceConnector,"
                    "rkbridge.RedisPubSubSourceConnector",
     .value_aliases =
         "RedisSinkConnector=com.redis.kafka.connect.RedisSinkConnector,"
         "RedisStreamSourceConnector=com.redis.kafka.connect.RedisStreamSourceConnector,"
         "RedisKeysSourceConnector=com.redis.kafka.connect.RedisKeysSourceConnector,"
         "RedisPubSubSourceConnector=rkbridge.RedisPubSubSourceConnector",
     .scope = RKB_SCOPE_ALL,
     .flags = RKB_PROP_F_REQUIRED,
     .doc = "Which connector to run: the sink (Kafka to Redis), or the stream, keys or pub/sub "
            "source (Redis to Kafka)"},
    {.name = "tasks.max",
     .type = RKB_PROP_INT,
     .default_value = "1",
     .min = 1,
     .max = 256,
     .scope = RKB_SCOPE_ALL,
     .doc = "Most tasks to run; the topic partitions are shared among them"},
    {.name = "redis.uri",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "Redis server as redis://[[user]:password@]host[:port][/db], or rediss://... for "
            "TLS; or a Redis Sentinel master as "
            "redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#MASTER "
            "(sentinels' default port 26379; asked in order, without AUTH, at every connect; "
            "the password is the master's; set redis.wait.replicas, or a failover can lose the "
            "last writes the old master acknowledged); when set it wins over redis.host and "
            "redis.port"},
    {.name = "redis.host",
     .type = RKB_PROP_STRING,
     .default_value = "localhost",
     .scope = RKB_SCOPE_ALL,
     .doc = "Redis host, used when redis.uri is empty"},
    {.name = "redis.port",
     .type = RKB_PROP_INT,
     .default_value = "6379",
     .min = 1,
     .max = 65535,
     .scope = RKB_SCOPE_ALL,
     .doc = "Redis port, used when redis.uri is empty"},
    {.name = "redis.username",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "ACL user for AUTH (the user in redis.uri wins); empty: the default user"},
    {.name = "redis.password",
     .type = RKB_PROP_PASSWORD,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "Password for AUTH (the password in redis.uri wins); empty: no AUTH; e.g. "
            "${file:/etc/rkbridge/secrets.properties:redis.password} or ${env:REDIS_PASSWORD}"},
    {.name = "redis.timeout",
     .type = RKB_PROP_INT,
     .default_value = "10",
     .min = 1,
     .max = 3600,
     .scope = RKB_SCOPE_ALL,
     .doc = "Redis connect and command timeout, in seconds"},
    {.name = "redis.cluster",
     .type = RKB_PROP_ENUM,
     .default_value = "auto",
     .enum_values = "auto,true,false",
     .scope = RKB_SCOPE_ALL,
     .doc = "Redis Cluster: true (redis-kafka-connect's key) requires the server to be a cluster "
            "node, false never asks, auto asks at connect (CLUSTER SLOTS). On a cluster every "
            "command goes to the master of its key's slot, MOVED/ASK are followed and a failover "
            "is found at the next connect; exactly-once needs the partition's hash tag "
            "{${topic}:${partition}} in the key (see docs)"},
    {.name = "redis.tls",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_ALL,
     .doc = "Connect to Redis over TLS (also on when redis.uri starts with rediss://); the "
            "server's certificate is verified unless redis.insecure"},
    {.name = "redis.insecure",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: do not verify the server's certificate nor its name (anyone on the path can "
            "then read and change the traffic); for tests only"},
    {.name = "redis.cacert",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: PEM file of the CA certificates that verify the server; empty (and no "
            "redis.cacert.dir): the system's trust store"},
    {.name = "redis.cacert.dir",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: directory of CA certificates in OpenSSL's hashed layout (openssl rehash DIR)"},
    {.name = "redis.key.cert",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: client certificate chain (PEM), for a server that authenticates clients "
            "(tls-auth-clients); set with redis.key.file"},
    {.name = "redis.key.file",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: private key (PEM) of the client certificate in redis.key.cert"},
    {.name = "redis.key.password",
     .type = RKB_PROP_PASSWORD,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: password of an encrypted redis.key.file"},
    {.name = "redis.sni",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_ALL,
     .doc = "TLS: server name sent as SNI and checked against the server's certificate; empty: "
            "the host of redis.uri or redis.host"},
    {.name = "batch.size",
     .type = RKB_PROP_INT,
     .default_value = "1000",
     .min = 1,
     .max = 100000,
     .scope = RKB_SCOPE_ALL,
     .doc = "Most records per batch: per Redis pipeline (sink), XREADGROUP COUNT (stream "
            "source), SCAN COUNT and reads per pipeline (keys source)"},
    {.name = "key.converter",
     .type = RKB_PROP_ENUM,
     .default_value = "string",
     .enum_values = "string,bytes,json",
     .value_aliases = CONVERTER_CLASSES,
     .scope = RKB_SCOPE_ALL,
     .doc = "How record keys are read: string, bytes or json (Connect class names accepted)"},
    {.name = "value.converter",
     .type = RKB_PROP_ENUM,
     .default_value = "string",
     .enum_values = "string,bytes,json",
     .value_aliases = CONVERTER_CLASSES,
     .scope = RKB_SCOPE_ALL,
     .doc = "How record values are read: string, bytes or json (Connect class names accepted)"},
    {.name = "key.converter.schemas.enable",
     .type = RKB_PROP_BOOL,
     .scope = RKB_SCOPE_ALL,
     .doc = "Keys in Connect's {\"schema\",\"payload\"} envelope: true requires and unwraps it, "
            "false never unwraps; unset: unwrapped when present"},
    {.name = "value.converter.schemas.enable",
     .type = RKB_PROP_BOOL,
     .scope = RKB_SCOPE_ALL,
     .doc = "Values in Connect's {\"schema\",\"payload\"} envelope: true requires and unwraps "
            "it, false never unwraps; unset: unwrapped when present"},

    /* ---- Sink ------------------------------------------------------------------------------ */
    {.name = "topics",
     .type = RKB_PROP_LIST,
     .scope = RKB_SCOPE_SINK,
     .doc = "Topics to consume, comma-separated; set this or topics.regex"},
    {.name = "topics.regex",
     .type = RKB_PROP_STRING,
     .scope = RKB_SCOPE_SINK,
     .doc = "POSIX extended regular expression of the topics to consume, matched from the start "
            "of the name; set this or topics"},
    {.name = "redis.type",
     .type = RKB_PROP_ENUM,
     .default_value = "STREAM",
     .enum_values = "STRING,HASH,JSON,STREAM,LIST,SET,ZSET,TIMESERIES,PUBSUB,COUNTER,CACHE,"
                    "WINDOW,NONE",
     .scope = RKB_SCOPE_SINK,
     .doc = "Redis data type each record is written to (COUNTER: INCRBY or HINCRBY by "
            "redis.increment; CACHE: a versioned cache entry, see redis.cache.*; WINDOW: a "
            "windowed aggregation, see window.*; NONE: nothing, with enrich.output.topic)"},
    {.name = "redis.command",
     .type = RKB_PROP_ENUM,
     .enum_values = "HSET,JSONSET,TSADD,SET,XADD,LPUSH,RPUSH,SADD,ZADD",
     .scope = RKB_SCOPE_SINK,
     .doc = "Older redis-kafka-connect spelling of redis.type (LPUSH also means "
            "redis.push.direction=LEFT); must agree with redis.type if both are set"},
    {.name = "redis.push.direction",
     .type = RKB_PROP_ENUM,
     .default_value = "RIGHT",
     .enum_values = "LEFT,RIGHT",
     .scope = RKB_SCOPE_SINK,
     .doc = "LIST: push with LPUSH (LEFT) or RPUSH (RIGHT)"},
    {.name = "redis.keyspace",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${topic}",
     .aliases = "redis.key",
     .scope = RKB_SCOPE_SINK,
     .doc = "Key prefix: STRING, HASH and JSON keys are keyspace + separator + record key, other "
            "types use the keyspace as the key; empty: the raw record key"},
    {.name = "redis.separator",
     .type = RKB_PROP_STRING,
     .default_value = ":",
     .scope = RKB_SCOPE_SINK,
     .doc = "Joins keyspace and record key for STRING, HASH and JSON"},
    {.name = "redis.key.template",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "Whole key template, e.g. user:${value.id}; when set, redis.keyspace and "
            "redis.separator are not used"},
    {.name = "redis.member",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${key}",
     .scope = RKB_SCOPE_SINK,
     .doc = "Member written for LIST, SET and ZSET"},
    {.name = "redis.score",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${value}",
     .scope = RKB_SCOPE_SINK,
     .doc = "ZSET score and TIMESERIES sample value; must expand to a number"},
    {.name = "redis.timeseries.timestamp",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${key}",
     .scope = RKB_SCOPE_SINK,
     .doc = "TIMESERIES sample timestamp in milliseconds; must expand to a number"},
    {.name = "redis.stream.maxlen",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "STREAM: when > 0, trim with XADD MAXLEN ~ n"},
    {.name = "redis.key.ttl",
     .type = RKB_PROP_INT,
     .default_value = "-1",
     .min = -1,
     .max = 2147483647,
     .scope = RKB_SCOPE_SINK,
     .doc = "TTL of written keys in seconds, <= 0: none; a record header redis.key.ttl "
            "overrides it"},
    {.name = "redis.multiexec",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_SINK,
     .doc = "Wrap each batch in MULTI/EXEC"},
    {.name = "redis.wait.replicas",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = 100,
     .scope = RKB_SCOPE_SINK,
     .doc = "After each batch, WAIT until this many replicas have it, else write it again; "
            "0: do not wait. With Redis Sentinel, 1 or more keeps a failover from losing "
            "records whose offsets were committed"},
    {.name = "redis.wait.timeout",
     .type = RKB_PROP_INT,
     .default_value = "1000",
     .min = 0,
     .max = 2147483647,
     .scope = RKB_SCOPE_SINK,
     .doc = "WAIT timeout in milliseconds; 0 blocks until the replicas have the batch; keep "
            "it below redis.timeout, which bounds every reply"},
    {.name = "redis.increment",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${value}",
     .scope = RKB_SCOPE_SINK,
     .doc = "COUNTER: the amount to add; an integer uses INCRBY/HINCRBY, a decimal "
            "INCRBYFLOAT/HINCRBYFLOAT"},
    {.name = "redis.hash.field",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "COUNTER: when set, the counter is this field of a hash at the key (HINCRBY) "
            "instead of a string key (INCRBY)"},
    {.name = "redis.value.max.bytes",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = 536870912,
     .scope = RKB_SCOPE_SINK,
     .doc = "A record whose value is larger is a data error (dead-lettered or fatal per "
            "errors.tolerance); 0: no limit"},
    {.name = "redis.delivery",
     .type = RKB_PROP_ENUM,
     .default_value = "at-least-once",
     .enum_values = "at-least-once,exactly-once",
     .scope = RKB_SCOPE_SINK,
     .doc = "exactly-once keeps each partition's offset in Redis and applies every batch with "
            "it in one Lua script, so a replay changes nothing"},
    {.name = "redis.offset.namespace",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "exactly-once: names this connector's offset keys in Redis, so that two connectors "
            "on one topic never collide; empty: the connector name"},
    {.name = "errors.tolerance",
     .type = RKB_PROP_ENUM,
     .default_value = "none",
     .enum_values = "none,all",
     .scope = RKB_SCOPE_SINK,
     .doc = "none: a record that cannot be written stops the task (FAILED) with nothing "
            "committed past it; all: it goes to the dead-letter topic (or is skipped) and the "
            "task goes on"},
    {.name = "errors.deadletterqueue.topic.name",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "With errors.tolerance=all: records that cannot be written are produced here with "
            "their original key, value and headers; empty: they are skipped"},
    {.name = "errors.deadletterqueue.topic.replication.factor",
     .type = RKB_PROP_INT,
     .default_value = "3",
     .min = -1,
     .max = 32767,
     .scope = RKB_SCOPE_SINK,
     .doc = "Replication factor used when rkbridge creates the dead-letter topic; -1: the "
            "broker's default"},
    {.name = "errors.deadletterqueue.context.headers.enable",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_SINK,
     .doc = "Add Kafka Connect's __connect.errors.* headers (topic, partition, offset, stage, "
            "exception message ...) to dead-lettered records"},
    {.name = "errors.retry.timeout",
     .type = RKB_PROP_INT,
     .default_value = "-1",
     .min = -1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "How long in milliseconds to keep retrying while Redis or the dead-letter topic is "
            "unavailable before the task fails; -1: forever (Kafka Connect's default is 0)"},
    {.name = "errors.retry.delay.max.ms",
     .type = RKB_PROP_INT,
     .default_value = "5000",
     .min = 1,
     .max = 86400000,
     .scope = RKB_SCOPE_SINK,
     .doc = "Longest wait between two retries; the wait starts at 100 ms and doubles (Kafka "
            "Connect's default is 60000)"},
    {.name = "errors.log.enable",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_SINK,
     .doc = "Log every record that cannot be written, with its topic, partition, offset and "
            "the reason"},
    {.name = "errors.log.include.messages",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_SINK,
     .doc = "With errors.log.enable: also log the record's key and value (cut at 256 bytes)"},

    /* ---- Sink: cache maintenance (redis.type=CACHE) ---------------------------------------- */
    {.name = "redis.cache.version",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${value.version}",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: the event's version, a non-negative integer or integers joined by ':' "
            "compared in order (e.g. ${value.source.lsn}); an event not newer than the cached "
            "one is dropped as stale"},
    {.name = "redis.cache.op.field",
     .type = RKB_PROP_STRING,
     .default_value = "op",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: dotted path of the field that says what the event does (Debezium's op); "
            "absent: an upsert"},
    {.name = "redis.cache.delete.ops",
     .type = RKB_PROP_LIST,
     .default_value = "d",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: values of redis.cache.op.field that delete the entry (comma-separated)"},
    {.name = "redis.cache.value.field",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: dotted path of the new state in the event (Debezium: after); empty: the "
            "whole value"},
    {.name = "redis.cache.layout",
     .type = RKB_PROP_ENUM,
     .default_value = "fields",
     .enum_values = "fields,value",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: fields keeps a JSON object's members as hash fields; value keeps the whole "
            "state as JSON text in hash field val; the version is in hash field _v either way"},
    {.name = "redis.cache.mode",
     .type = RKB_PROP_ENUM,
     .default_value = "upsert",
     .enum_values = "upsert,invalidate",
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: upsert writes each event's state; invalidate turns every event into a "
            "versioned tombstone, so the next read misses and refills through the cache script "
            "(rkbridge cache-script)"},
    {.name = "redis.cache.tombstone.ttl",
     .type = RKB_PROP_INT,
     .default_value = "86400",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "CACHE: seconds a delete's versioned tombstone is kept; it must outlast the longest "
            "delay of an older event (replay distance, consumer lag), or that event can bring "
            "the entry back"},

    /* ---- Sink: enrichment ---------------------------------------------------------------------
     */
    {.name = "enrich.key",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: key of the reference data to look up for each record (e.g. "
            "user:${value.user_id}); empty: no enrichment"},
    {.name = "enrich.lookup",
     .type = RKB_PROP_ENUM,
     .default_value = "HASH",
     .enum_values = "HASH,STRING,JSON",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: read the reference data with HGETALL (HASH), GET (STRING, JSON text or "
            "plain) or JSON.GET (JSON)"},
    {.name = "enrich.field",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: merge the reference data into the value under this field; empty: its "
            "members at the top level of the value"},
    {.name = "enrich.on.miss",
     .type = RKB_PROP_ENUM,
     .default_value = "pass",
     .enum_values = "pass,default,dead-letter",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: when the key does not exist, pass the record on unchanged, merge "
            "enrich.default instead, or treat the record as one that cannot be written "
            "(errors.tolerance)"},
    {.name = "enrich.default",
     .type = RKB_PROP_STRING,
     .default_value = "{}",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: JSON merged when the key does not exist and enrich.on.miss=default"},
    {.name = "enrich.cache.max.entries",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = 100000000,
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: keep up to this many looked-up keys (misses too) in a local cache per "
            "task, least recently used out first; 0: look up every record"},
    {.name = "enrich.cache.ttl.ms",
     .type = RKB_PROP_INT,
     .default_value = "60000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: how long a cached lookup is used before it is read again"},
    {.name = "enrich.output.topic",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "Enrichment: produce each enriched record (key and headers kept) to this Kafka "
            "topic, before any Redis write of it; empty: no Kafka output"},

    /* ---- Sink: windowed aggregation (redis.type=WINDOW) ------------------------------------- */
    {.name = "window.type",
     .type = RKB_PROP_ENUM,
     .default_value = "tumbling",
     .enum_values = "tumbling,hopping,session",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: tumbling [n*size, n*size+size), hopping (every window.advance.ms) or "
            "session (closed after window.gap.ms without records of the group)"},
    {.name = "window.size.ms",
     .type = RKB_PROP_INT,
     .default_value = "60000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: tumbling and hopping window length, aligned to the epoch"},
    {.name = "window.advance.ms",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: hopping windows start every this many ms (at most window.size.ms); 0: "
            "window.size.ms"},
    {.name = "window.gap.ms",
     .type = RKB_PROP_INT,
     .default_value = "300000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: session inactivity gap"},
    {.name = "window.grace.ms",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: how long after its end (in event time) a window still takes late records"},
    {.name = "window.time",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${timestamp}",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: event time in ms since the epoch, or a Redis stream entry ID (ms-seq); "
            "e.g. ${value.ts}; a record without one is dropped and counted"},
    {.name = "window.group",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "${key}",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: the group a record is aggregated in; keep it the Kafka key (or coarser per "
            "partition), since each partition has its own event-time clock"},
    {.name = "window.aggregates",
     .type = RKB_PROP_LIST,
     .default_value = "count",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: any of count, sum, min, max, avg (of window.value) and distinct (an "
            "estimate of the distinct window.distinct values, HyperLogLog)"},
    {.name = "window.value",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: the number that sum, min, max and avg aggregate (e.g. ${value.amount})"},
    {.name = "window.distinct",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: what distinct counts (e.g. ${value.user_id})"},
    {.name = "window.emit",
     .type = RKB_PROP_ENUM,
     .default_value = "final",
     .enum_values = "final,update",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: final emits one result when a window closes; update also emits the "
            "current result of every window a batch changed"},
    {.name = "window.late",
     .type = RKB_PROP_ENUM,
     .default_value = "drop",
     .enum_values = "drop,dead-letter",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: a record all of whose windows are closed is dropped, or also produced to "
            "errors.deadletterqueue.topic.name with header x-late-reason; counted either way"},
    {.name = "window.output.topic",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: Kafka topic the results are produced to (key: the group); empty: results "
            "are only kept in Redis"},
    {.name = "window.key.prefix",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: prefix of the window keys in Redis; empty: win:NAME: with the connector "
            "name. ${topic} and ${partition} stand for the record's; on a Redis Cluster the "
            "prefix must hold the partition's hash tag, e.g. win:{${topic}:${partition}}:, so "
            "that a window changes in one step with its partition's offset"},
    {.name = "window.result.ttl.ms",
     .type = RKB_PROP_INT,
     .default_value = "86400000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: how long a closed window's result stays queryable in Redis"},
    {.name = "window.state.ttl.ms",
     .type = RKB_PROP_INT,
     .default_value = "604800000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_SINK,
     .doc = "WINDOW: wall-clock safety expiry of an open window's state, renewed by every "
            "record; keep it above the longest expected lag plus window.grace.ms"},

    /* ---- Sources: Redis to Kafka ------------------------------------------------------------ */
    {.name = "topic",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "",
     .scope = RKB_SCOPE_SOURCE,
     .doc = "Kafka topic to write to; empty: ${stream} (stream source), rediskeys (keys "
            "source), ${channel} (pub/sub source)"},
    {.name = "redis.stream.name",
     .type = RKB_PROP_LIST,
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Streams to read (comma-separated); set this, redis.stream.pattern, or both"},
    {.name = "redis.stream.pattern",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Also read every stream whose key matches this glob (SCAN ... TYPE stream), "
            "including streams created while running"},
    {.name = "redis.stream.offset",
     .type = RKB_PROP_STRING,
     .default_value = "0-0",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Where a new consumer group starts (XGROUP CREATE ... MKSTREAM): an entry ID, "
            "0-0 for the whole stream, or $ for new entries only"},
    {.name = "redis.stream.block",
     .type = RKB_PROP_INT,
     .default_value = "100",
     .min = 1,
     .max = 60000,
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "XREADGROUP BLOCK in milliseconds"},
    {.name = "redis.stream.consumer.group",
     .type = RKB_PROP_STRING,
     .default_value = "kafka-consumer-group",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Redis consumer group; tasks and processes in one group share the entries"},
    {.name = "redis.stream.consumer.name",
     .type = RKB_PROP_TEMPLATE,
     .default_value = "consumer-${task}-${worker}",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Consumer name, ${task} = the task number, ${worker} = the process (the worker's "
            "worker.id); must be stable across restarts and unique per process in the group (its "
            "pending entries belong to it). redis-kafka-connect's consumer-${task} fits only one "
            "process per group: every process runs every task"},
    {.name = "redis.stream.delivery",
     .type = RKB_PROP_ENUM,
     .default_value = "at-least-once",
     .enum_values = "at-least-once,at-most-once",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "at-least-once: XACK only after Kafka acknowledged the record; at-most-once: XACK "
            "right after the read"},
    {.name = "redis.stream.key",
     .type = RKB_PROP_STRING,
     .default_value = "stream",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Kafka record key: stream (the stream name: one partition per stream keeps its "
            "order), id (the entry ID, as redis-kafka-connect), or field.NAME (a field of the "
            "entry)"},
    {.name = "redis.stream.value",
     .type = RKB_PROP_STRING,
     .default_value = "json",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Kafka record value: json (an object of the entry's fields) or field.NAME (that "
            "field's raw bytes)"},
    {.name = "redis.stream.claim.min.idle.ms",
     .type = RKB_PROP_INT,
     .default_value = "330000",
     .min = 1,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "Claim (XAUTOCLAIM) other consumers' entries pending longer than this; keep it "
            "above kafka.message.timeout.ms so that live consumers are not robbed"},
    {.name = "redis.stream.claim.interval.ms",
     .type = RKB_PROP_INT,
     .default_value = "10000",
     .min = 100,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "How often to look for entries to claim"},
    {.name = "redis.stream.discovery.interval.ms",
     .type = RKB_PROP_INT,
     .default_value = "10000",
     .min = 100,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "How often redis.stream.pattern is matched again to find new streams"},
    {.name = "redis.stream.trim.acked",
     .type = RKB_PROP_BOOL,
     .default_value = "false",
     .scope = RKB_SCOPE_STREAM_SOURCE,
     .doc = "After acknowledging, XTRIM MINID entries that every consumer group of the stream "
            "has delivered and acknowledged"},
    {.name = "redis.keys.pattern",
     .type = RKB_PROP_STRING,
     .default_value = "*",
     .scope = RKB_SCOPE_KEYS_SOURCE,
     .doc = "Glob of the keys whose changes are sent (keyspace notifications and SCAN MATCH)"},
    {.name = "mode",
     .type = RKB_PROP_ENUM,
     .default_value = "LIVE",
     .enum_values = "LIVE,LIVEONLY",
     .scope = RKB_SCOPE_KEYS_SOURCE,
     .doc = "LIVE: a snapshot of the matching keys first, then their changes; LIVEONLY: changes "
            "only"},
    {.name = "redis.keys.timeout",
     .type = RKB_PROP_INT,
     .default_value = "0",
     .min = 0,
     .max = INT64_MAX,
     .scope = RKB_SCOPE_KEYS_SOURCE,
     .doc = "Stop the task after this many milliseconds without a change; 0: never"},
    {.name = "redis.pubsub.channels",
     .type = RKB_PROP_LIST,
     .scope = RKB_SCOPE_PUBSUB_SOURCE,
     .doc = "Channels to SUBSCRIBE to (comma-separated)"},
    {.name = "redis.pubsub.patterns",
     .type = RKB_PROP_LIST,
     .scope = RKB_SCOPE_PUBSUB_SOURCE,
     .doc = "Channel globs to PSUBSCRIBE to (comma-separated)"},

    /* ---- Worker: rkbridge run --worker FILE (Kafka Connect's worker config) ----------------- */
    {.name = "listeners",
     .type = RKB_PROP_STRING,
     .default_value = "http://127.0.0.1:8083",
     .scope = RKB_SCOPE_WORKER,
     .doc = "Where the REST API listens, as http://HOST:PORT or HOST:PORT (one listener; port 0: "
            "any free port, logged at start); --listen sets it"},
    {.name = "worker.id",
     .type = RKB_PROP_STRING,
     .default_value = "",
     .scope = RKB_SCOPE_WORKER,
     .doc = "This process among the workers that share connectors: ${worker} in "
            "redis.stream.consumer.name, so unique per process and stable across restarts. Empty: "
            "HOSTNAME:PORT with the port of listeners (HOSTNAME:pPID when that port is 0, which "
            "is not stable: a restarted process leaves its pending entries to "
            "redis.stream.claim.min.idle.ms); set it when several processes on one host use the "
            "same port setting"},
    {.name = "rest.auth.token",
     .type = RKB_PROP_PASSWORD,
     .default_value = "",
     .scope = RKB_SCOPE_WORKER,
     .doc = "When set, every REST request must carry Authorization: Bearer TOKEN (else 401); "
            "empty: no authentication, so keep the API on a loopback address"},
    {.name = "rest.request.max.bytes",
     .type = RKB_PROP_INT,
     .default_value = "1048576",
     .min = 1024,
     .max = 67108864,
     .scope = RKB_SCOPE_WORKER,
     .doc = "Largest REST request body accepted; a larger one is answered 413"},
    {.name = "config.storage.topic",
     .type = RKB_PROP_STRING,
     .default_value = "rkbridge-configs",
     .scope = RKB_SCOPE_WORKER,
     .doc = "Compacted topic where connectors created over the REST API are kept (one record per "
            "connector, a tombstone on delete) and read back at start; empty, or no "
            "kafka.bootstrap.servers in the worker: they live until the process ends"},
    {.name = "config.storage.replication.factor",
     .type = RKB_PROP_INT,
     .default_value = "-1",
     .min = -1,
     .max = 32767,
     .scope = RKB_SCOPE_WORKER,
     .doc = "Replication factor used when rkbridge creates the config topic (one partition, "
            "cleanup.policy=compact); -1: the broker's default (Kafka Connect's default is 3)"},
};

/* redis.command → redis.type (and the LIST push direction). rkb_config_get folds a set
 * redis.command into redis.type and redis.push.direction when those are not set themselves. */
static const struct {
    const char *command;
    const char *type;
    const char *push_direction; /* NULL: the command says nothing about it */
} command_types[] = {
    {"HSET", "HASH", NULL},     {"JSONSET", "JSON", NULL}, {"TSADD", "TIMESERIES", NULL},
    {"SET", "STRING", NULL},    {"XADD", "STREAM", NULL},  {"LPUSH", "LIST", "LEFT"},
    {"RPUSH", "LIST", "RIGHT"}, {"SADD", "SET", NULL},     {"ZADD", "ZSET", NULL},
};

const rkb_property_t *rkb_config_properties(size_t *cnt) {
    *cnt = RKB_ARRAY_SIZE(properties);
    return properties;
}

/* True if name is one of the comma-separated items of list. */
static bool list_has(const char *list, const char *name) {
    size_t len = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t item_len = end ? (size_t)(end - p) : strlen(p);
        if (item_len == len && !strncmp(p, name, len))
            return true;
        p = end ? end + 1 : NULL;
    }
    return false;
}

const rkb_property_t *rkb_config_property_find(const char *name) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(properties); i++) {
        if (!strcmp(properties[i].name, name) || list_has(properties[i].aliases, name))
            return &properties[i];
    }
    return NULL;
}

const char *rkb_config_command_type(const char *command, const char **push_direction) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(command_types); i++) {
        if (!strcasecmp(command_types[i].command, command)) {
            if (push_direction)
                *push_direction = command_types[i].push_direction;
            return command_types[i].type;
        }
    }
    if (push_direction)
        *push_direction = NULL;
    return NULL;
}
