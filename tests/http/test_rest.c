/*
 * test_rest.c — the REST API against a running rkbridge worker, one redis-server and one dev
 * broker: the seed's curl payload creates a stream source; status; pause really stops records
 * (a second, unpaused connector moving its records is the clock) and resume moves them with
 * nothing lost; a paused sink stays in its group and commits nothing; restart (connector, tasks,
 * one task); config update; stop; delete; validate with errors per key; Kafka Connect's error
 * shape for 400/404/405/409; the bearer token (401) and the body limit (413); connectors created
 * over the API come back after rkbridge restarts, paused ones paused.
 */
#include "http_test_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 60000

static h_redis_t *redis;
static h_broker_t *broker;

static int group_setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, "sinkin:2");
    return 0;
}

static int group_teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* A worker file: the test broker, its own config topic, plus extra lines. */
static char *worker_text(const char *config_topic, const char *extra) {
    char *text = NULL;
    if (asprintf(&text, "kafka.bootstrap.servers=%s\nconfig.storage.topic=%s\n%s",
                 broker->bootstrap, config_topic, extra ? extra : "") < 0)
        abort();
    return text;
}

/* XINFO GROUPS' entries-read of the stream's only group: what the source has taken. */
static long long entries_read(const char *stream) {
    redisReply *reply = h_redis_cmd(redis, "XINFO GROUPS %s", stream);
    long long read = -1;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1) {
        redisReply *group = reply->element[0];
        for (size_t i = 0; i + 1 < group->elements; i += 2)
            if (!strcmp(group->element[i]->str, "entries-read"))
                read = group->element[i + 1]->integer;
    }
    freeReplyObject(reply);
    return read;
}

/* ---- The seed's connector through its whole life -------------------------------------------- */

static void test_connector_lifecycle(void **state) {
    char *wt = worker_text("rest-configs-lifecycle", NULL);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    int status;

    /* Create from the seed's payload: 201, Location, ConnectorInfo. */
    char *seed = seed_payload(redis, "redis-source", "mystream");
    h_http_resp_t resp;
    assert_int_equal(h_http(address, "POST", "/connectors", NULL, seed, &resp), 201);
    char *location = h_http_header(&resp, "Location");
    assert_string_equal(location, "/connectors/redis-source");
    free(location);
    json_t *info = json_loads(resp.body, 0, NULL);
    h_http_resp_free(&resp);
    assert_string_equal(json_string_value(json_object_get(info, "name")), "redis-source");
    assert_string_equal(json_string_value(json_object_get(info, "type")), "source");
    json_t *config = json_object_get(info, "config");
    assert_string_equal(json_string_value(json_object_get(config, "redis.stream.name")),
                        "mystream");
    assert_string_equal(json_string_value(json_object_get(config, "name")), "redis-source");
    json_decref(info);

    /* The same name again: 409 in Connect's error shape. */
    json_t *err = http_json(address, "POST", "/connectors", seed, NULL, &status);
    assert_int_equal(status, 409);
    assert_connect_error(err, 409);
    json_decref(err);

    json_t *names = http_json(address, "GET", "/connectors", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(names), 1);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "redis-source");
    json_decref(names);

    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    stream_add(redis, "mystream", 0, 10);
    assert_true(H_WAIT_FOR(topic_count(broker, "mystream") == 10, WAIT_MS));

    /* A second connector, never paused: its records moving is the clock for the paused one. */
    char *control = seed_payload(redis, "control", "controlstream");
    assert_int_equal(http_status(address, "POST", "/connectors", control), 201);
    free(control);
    assert_true(H_WAIT_FOR(http_states_are(address, "control", "RUNNING", "RUNNING", 1), WAIT_MS));

    /* Pause: 202, then PAUSED once the task holds nothing; no entry is read while paused. */
    assert_int_equal(http_status(address, "PUT", "/connectors/redis-source/pause", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "PAUSED", "PAUSED", 1),
                           WAIT_MS));
    long long read_before = entries_read("mystream");
    assert_int_equal(read_before, 10);
    stream_add(redis, "mystream", 10, 10);
    for (int round = 0; round < 3; round++) {
        /* Three times the control connector takes a batch through Redis and Kafka ... */
        stream_add(redis, "controlstream", round * 5, 5);
        assert_true(H_WAIT_FOR(topic_count(broker, "controlstream") == (size_t)(round + 1) * 5,
                               WAIT_MS));
        /* ... while the paused one takes nothing from Redis and sends nothing to Kafka. */
        assert_int_equal(entries_read("mystream"), 10);
        assert_int_equal(topic_count(broker, "mystream"), 10);
    }
    assert_true(http_states_are(address, "redis-source", "PAUSED", "PAUSED", 1));

    /* Resume: the entries added meanwhile move, each once. */
    assert_int_equal(http_status(address, "PUT", "/connectors/redis-source/resume", NULL), 202);
    assert_true(H_WAIT_FOR(topic_count(broker, "mystream") == 20, WAIT_MS));
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));

    /* Restart: the connector alone (204), with its tasks (202 + status showing RESTARTING). */
    assert_int_equal(http_status(address, "POST", "/connectors/redis-source/restart", NULL), 204);
    json_t *restarting = http_json(address, "POST", "/connectors/redis-source/restart?includeTasks=true",
                                   NULL, NULL, &status);
    assert_int_equal(status, 202);
    assert_string_equal(
        json_string_value(json_object_get(
            json_array_get(json_object_get(restarting, "tasks"), 0), "state")),
        "RESTARTING");
    json_decref(restarting);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    stream_add(redis, "mystream", 20, 1);
    assert_true(H_WAIT_FOR(topic_count(broker, "mystream") == 21, WAIT_MS));
    assert_int_equal(http_status(address, "POST",
                                 "/connectors/redis-source/restart?includeTasks=yes", NULL),
                     400);

    /* One task: 204; a task that does not exist: 404. */
    assert_int_equal(http_status(address, "POST", "/connectors/redis-source/tasks/0/restart",
                                 NULL),
                     204);
    err = http_json(address, "POST", "/connectors/redis-source/tasks/7/restart", NULL, NULL,
                    &status);
    assert_int_equal(status, 404);
    assert_connect_error(err, 404);
    json_decref(err);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));

    /* Tasks and one task's status. */
    json_t *tasks = http_json(address, "GET", "/connectors/redis-source/tasks", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(tasks), 1);
    json_t *id = json_object_get(json_array_get(tasks, 0), "id");
    assert_string_equal(json_string_value(json_object_get(id, "connector")), "redis-source");
    assert_int_equal(json_integer_value(json_object_get(id, "task")), 0);
    json_decref(tasks);
    json_t *task = http_json(address, "GET", "/connectors/redis-source/tasks/0/status", NULL, NULL,
                             &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(task, "id")), 0);
    assert_string_equal(json_string_value(json_object_get(task, "state")), "RUNNING");
    assert_string_equal(json_string_value(json_object_get(task, "worker_id")), address);
    json_decref(task);

    /* Config: as submitted; an update answers 200 and is what GET shows next. */
    config = http_json(address, "GET", "/connectors/redis-source/config", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(config, "topic")), "mystream");
    assert_null(json_object_get(config, "kafka.bootstrap.servers")); /* inherited, not shown */
    json_object_set_new(config, "redis.stream.block", json_string("200"));
    char *updated = json_dumps(config, JSON_COMPACT);
    json_decref(config);
    assert_int_equal(http_status(address, "PUT", "/connectors/redis-source/config", updated), 200);
    free(updated);
    config = http_json(address, "GET", "/connectors/redis-source/config", NULL, NULL, &status);
    assert_string_equal(json_string_value(json_object_get(config, "redis.stream.block")), "200");
    json_decref(config);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    stream_add(redis, "mystream", 21, 1);
    assert_true(H_WAIT_FOR(topic_count(broker, "mystream") == 22, WAIT_MS));

    /* Stop: STOPPED, no tasks; resume starts them again. */
    assert_int_equal(http_status(address, "PUT", "/connectors/redis-source/stop", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "STOPPED", NULL, 0), WAIT_MS));
    assert_int_equal(http_status(address, "PUT", "/connectors/redis-source/resume", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "redis-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));

    /* Delete: 204, then 404 in Connect's shape. */
    assert_int_equal(http_status(address, "DELETE", "/connectors/redis-source", NULL), 204);
    err = http_json(address, "GET", "/connectors/redis-source", NULL, NULL, &status);
    assert_int_equal(status, 404);
    assert_connect_error(err, 404);
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "Connector redis-source not found");
    json_decref(err);
    names = http_json(address, "GET", "/connectors", NULL, NULL, &status);
    assert_int_equal(json_array_size(names), 1); /* control */
    json_decref(names);

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(seed);
    free(wt);
}

/* ---- A paused sink ------------------------------------------------------------------------- */

static long long keys_written(void) {
    return h_redis_int(redis, "EVAL %s 0", "return #redis.call('KEYS', 'sinkin:*')");
}

/* POST /connectors for a sink of topic with the group timeouts the dev broker needs and extra
 * JSON members (",\"key\":\"value\"..."). */
static int create_sink(const char *address, const char *name, const char *topic,
                       const char *extra) {
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"name\":\"%s\",\"config\":{\"connector.class\":"
                         "\"com.redis.kafka.connect.RedisSinkConnector\",\"topics\":\"%s\","
                         "\"redis.uri\":\"%s\",\"kafka.session.timeout.ms\":\"6000\","
                         "\"kafka.heartbeat.interval.ms\":\"500\"%s}}",
                         name, topic, h_redis_uri(redis), extra) > 0);
    int status = http_status(address, "POST", "/connectors", body);
    free(body);
    return status;
}

/* Records k<first> .. k<first+cnt-1> to sinkin's two partitions. */
static void produce_keys(rd_kafka_t *producer, int first, int cnt) {
    char key[32];
    for (int i = first; i < first + cnt; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        h_produce(producer, "sinkin", i % 2, key, "v", NULL);
    }
    h_producer_flush(producer);
}

static int64_t sink_committed(void) {
    return h_committed(broker, "connect-paused-sink", "sinkin", 0) +
           h_committed(broker, "connect-paused-sink", "sinkin", 1);
}

/* Paused, the sink takes nothing from Kafka and commits nothing more, yet stays in its group
 * (no rebalance when it resumes: it goes on from its position, nothing lost or repeated). */
static void test_sink_pause_stays_in_group(void **state) {
    char *wt = worker_text("rest-configs-sink", NULL);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    assert_int_equal(create_sink(address, "paused-sink", "sinkin", ",\"redis.type\":\"STRING\""),
                     201);
    rd_kafka_t *producer = h_producer_new(broker);
    produce_keys(producer, 0, 20);
    assert_true(H_WAIT_FOR(keys_written() == 20, WAIT_MS));
    assert_true(H_WAIT_FOR(sink_committed() == 20, WAIT_MS));

    assert_int_equal(http_status(address, "PUT", "/connectors/paused-sink/pause", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "paused-sink", "PAUSED", "PAUSED", 1),
                           WAIT_MS));
    produce_keys(producer, 20, 20);
    /* The clock: a stream source moving three batches end to end. */
    char *control = seed_payload(redis, "sink-clock", "clockstream");
    assert_int_equal(http_status(address, "POST", "/connectors", control), 201);
    free(control);
    for (int round = 0; round < 3; round++) {
        stream_add(redis, "clockstream", round * 5, 5);
        assert_true(H_WAIT_FOR(topic_count(broker, "clockstream") == (size_t)(round + 1) * 5,
                               WAIT_MS));
        assert_int_equal(keys_written(), 20);
        assert_int_equal(sink_committed(), 20);
    }
    assert_true(http_states_are(address, "paused-sink", "PAUSED", "PAUSED", 1));

    assert_int_equal(http_status(address, "PUT", "/connectors/paused-sink/resume", NULL), 202);
    assert_true(H_WAIT_FOR(keys_written() == 40, WAIT_MS));
    assert_true(H_WAIT_FOR(sink_committed() == 40, WAIT_MS));
    /* One member all along: the pause did not make it leave the group (one assignment). */
    char *out = h_proc_output(proc);
    size_t assignments = 0;
    for (const char *p = out; (p = strstr(p, "[paused-sink/0] assigned ")); p++)
        assignments++;
    free(out);
    assert_int_equal(assignments, 1);

    h_producer_destroy(producer);
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* ---- A FAILED task ------------------------------------------------------------------------- */

/* A record the sink cannot write (not JSON for a HASH, errors.tolerance=none) fails its task:
 * FAILED with the reason as trace, /health 503; restart?includeTasks&onlyFailed restarts that
 * task only, and it fails again on the same record. */
static void test_failed_task(void **state) {
    char *wt = worker_text("rest-configs-failed", NULL);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    assert_int_equal(create_sink(address, "failing", "badin",
                                 ",\"redis.type\":\"HASH\",\"value.converter\":\"json\","
                                 "\"value.converter.schemas.enable\":\"false\""),
                     201);
    rd_kafka_t *producer = h_producer_new(broker);
    h_produce(producer, "badin", 0, "k", "not json", NULL);
    h_producer_flush(producer);
    h_producer_destroy(producer);

    if (!H_WAIT_FOR(http_states_are(address, "failing", "RUNNING", "FAILED", 1), WAIT_MS)) {
        dump_output(proc);
        fail_msg("the task did not fail");
    }
    int status;
    json_t *task = http_json(address, "GET", "/connectors/failing/tasks/0/status", NULL, NULL,
                             &status);
    const char *trace = json_string_value(json_object_get(task, "trace"));
    assert_non_null(trace);
    assert_non_null(strstr(trace, "badin"));
    json_decref(task);
    assert_int_equal(http_status(address, "GET", "/health", NULL), 503);

    json_t *restarting = http_json(
        address, "POST", "/connectors/failing/restart?includeTasks=true&onlyFailed=true", NULL,
        NULL, &status);
    assert_int_equal(status, 202);
    assert_string_equal(json_string_value(json_object_get(json_object_get(restarting, "connector"),
                                                          "state")),
                        "RUNNING");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(restarting, "tasks"), 0), "state")),
                        "RESTARTING");
    json_decref(restarting);
    /* Restarted: it reads the record again (nothing was committed past it) and fails again. */
    char *out = NULL;
    assert_true(H_WAIT_FOR((free(out), out = h_proc_output(proc),
                            strstr(out, "restarting task 0") != NULL),
                           WAIT_MS));
    free(out);
    assert_true(H_WAIT_FOR(http_states_are(address, "failing", "RUNNING", "FAILED", 1), WAIT_MS));
    assert_int_equal(h_committed(broker, "connect-failing", "badin", 0), -1001);

    /* onlyFailed without includeTasks: the connector did not fail, nothing restarts (202). */
    assert_int_equal(http_status(address, "POST", "/connectors/failing/restart?onlyFailed=true",
                                 NULL),
                     202);
    assert_int_equal(http_status(address, "DELETE", "/connectors/failing", NULL), 204);
    /* Exit code 1 is for tasks FAILED at the end: this one was deleted. */
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* ---- Validation and errors ----------------------------------------------------------------- */

/* The config's entry in a ConfigInfos answer. */
static json_t *config_entry(json_t *infos, const char *key) {
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(infos, "configs"), i, item) {
        if (!strcmp(json_string_value(json_object_get(json_object_get(item, "value"), "name")),
                    key))
            return item;
    }
    return NULL;
}

static size_t entry_errors(json_t *infos, const char *key) {
    json_t *entry = config_entry(infos, key);
    return entry ? json_array_size(json_object_get(json_object_get(entry, "value"), "errors")) : 0;
}

static void test_validate_and_errors(void **state) {
    char *wt = worker_text("rest-configs-validate", NULL);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    int status;

    /* A broken sink config: errors under the keys they are about. */
    const char *broken = "{\"connector.class\":\"com.redis.kafka.connect.RedisSinkConnector\","
                         "\"name\":\"b\",\"tasks.max\":\"many\",\"redis.tpye\":\"HASH\","
                         "\"redis.uri\":\"http://nowhere\",\"topics\":\"t\"}";
    json_t *infos = http_json(
        address, "PUT", "/connector-plugins/com.redis.kafka.connect.RedisSinkConnector/config/validate",
        broken, NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(infos, "name")),
                        "com.redis.kafka.connect.RedisSinkConnector");
    assert_int_equal(json_integer_value(json_object_get(infos, "error_count")), 3);
    assert_true(json_is_array(json_object_get(infos, "groups")));
    assert_int_equal(entry_errors(infos, "tasks.max"), 1);
    assert_int_equal(entry_errors(infos, "redis.tpye"), 1);
    assert_int_equal(entry_errors(infos, "redis.uri"), 1);
    assert_int_equal(entry_errors(infos, "topics"), 0);
    assert_int_equal(entry_errors(infos, "redis.type"), 0);
    json_t *entry = config_entry(infos, "tasks.max");
    assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "definition"),
                                                          "type")),
                        "LONG");
    assert_string_equal(json_string_value(json_object_get(json_object_get(entry, "value"),
                                                          "value")),
                        "many");
    const char *why = json_string_value(json_array_get(
        json_object_get(json_object_get(config_entry(infos, "redis.tpye"), "value"), "errors"),
        0));
    assert_non_null(strstr(why, "did you mean 'redis.type'"));
    json_decref(infos);

    /* A valid one: 0 errors; the short class name in the path is accepted. */
    infos = http_json(address, "PUT", "/connector-plugins/RedisSinkConnector/config/validate",
                      "{\"name\":\"ok\",\"topics\":\"t\",\"redis.type\":\"HASH\"}", NULL,
                      &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(infos, "error_count")), 0);
    json_decref(infos);

    /* A class in the body that is not the one in the path: 400. */
    json_t *err = http_json(address, "PUT",
                            "/connector-plugins/RedisSinkConnector/config/validate",
                            "{\"connector.class\":\"RedisStreamSourceConnector\"}", NULL, &status);
    assert_int_equal(status, 400);
    assert_connect_error(err, 400);
    json_decref(err);

    /* Creating the broken one: 400 listing the problems, nothing created. */
    char *create = NULL;
    assert_true(asprintf(&create, "{\"name\":\"b\",\"config\":%s}", broken) > 0);
    err = http_json(address, "POST", "/connectors", create, NULL, &status);
    free(create);
    assert_int_equal(status, 400);
    assert_connect_error(err, 400);
    const char *message = json_string_value(json_object_get(err, "message"));
    assert_non_null(strstr(message, "contains the following 3 error(s)"));
    assert_non_null(strstr(message, "tasks.max: must be an integer"));
    json_decref(err);
    assert_int_equal(http_status(address, "GET", "/connectors/b", NULL), 404);

    /* Not JSON, a config name that is not the URL's, a value that is an object. */
    err = http_json(address, "POST", "/connectors", "{not json", NULL, &status);
    assert_int_equal(status, 400);
    assert_connect_error(err, 400);
    json_decref(err);
    assert_int_equal(http_status(address, "PUT", "/connectors/x/config",
                                 "{\"name\":\"y\",\"connector.class\":\"RedisSinkConnector\"}"),
                     400);
    assert_int_equal(http_status(address, "PUT", "/connectors/x/config", "{\"topics\":{}}"), 400);

    /* Unknown connector, path and method. */
    static const char *const unknown[][2] = {
        {"GET", "/connectors/nope"},         {"GET", "/connectors/nope/status"},
        {"GET", "/connectors/nope/config"},  {"PUT", "/connectors/nope/pause"},
        {"POST", "/connectors/nope/restart"}, {"DELETE", "/connectors/nope"},
        {"GET", "/connectors/nope/tasks/0/status"}, {"GET", "/no/such/path"},
    };
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        err = http_json(address, unknown[i][0], unknown[i][1], NULL, NULL, &status);
        if (status != 404)
            fail_msg("%s %s: %d", unknown[i][0], unknown[i][1], status);
        assert_connect_error(err, 404);
        json_decref(err);
    }
    h_http_resp_t resp;
    assert_int_equal(h_http(address, "DELETE", "/connectors", NULL, NULL, &resp), 405);
    char *allow = h_http_header(&resp, "Allow");
    assert_non_null(allow);
    assert_non_null(strstr(allow, "POST"));
    free(allow);
    err = json_loads(resp.body, 0, NULL);
    assert_connect_error(err, 405);
    json_decref(err);
    h_http_resp_free(&resp);

    /* Plugins, root, and the list expanded. */
    json_t *plugins = http_json(address, "GET", "/connector-plugins", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(plugins), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(plugins, 0), "type")),
                        "sink");
    json_decref(plugins);
    json_t *root = http_json(address, "GET", "/", NULL, NULL, &status);
    assert_int_equal(status, 200);
    assert_true(json_is_string(json_object_get(root, "version")));
    assert_true(json_is_string(json_object_get(root, "kafka_cluster_id")));
    json_decref(root);
    char *seed = seed_payload(redis, "expanded", "expandstream");
    assert_int_equal(http_status(address, "POST", "/connectors", seed), 201);
    free(seed);
    json_t *list = http_json(address, "GET", "/connectors?expand=status&expand=info", NULL, NULL,
                             &status);
    assert_int_equal(status, 200);
    json_t *item = json_object_get(list, "expanded");
    assert_non_null(json_object_get(item, "status"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(item, "info"), "type")),
                        "source");
    json_decref(list);
    list = http_json(address, "GET", "/connectors?expand=status", NULL, NULL, &status);
    assert_null(json_object_get(json_object_get(list, "expanded"), "info"));
    json_decref(list);

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* ---- The gate: bearer token and body size -------------------------------------------------- */

static void test_token_and_body_limit(void **state) {
    char *wt = worker_text("rest-configs-gate", "rest.auth.token=s3cret-token\n"
                                                "rest.request.max.bytes=4096\n");
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    int status;

    /* No token, a wrong one, another scheme: 401 in Connect's shape, WWW-Authenticate. */
    const char *const wrong[] = {"Authorization: Bearer s3cret-tokeN", NULL};
    const char *const basic[] = {"Authorization: Basic czNjcmV0LXRva2Vu", NULL};
    const char *const *bad_headers[] = {NULL, wrong, basic};
    for (size_t i = 0; i < 3; i++) {
        h_http_resp_t resp;
        assert_int_equal(h_http(address, "GET", "/connectors", bad_headers[i], NULL, &resp), 401);
        char *challenge = h_http_header(&resp, "WWW-Authenticate");
        assert_non_null(challenge);
        free(challenge);
        json_t *err = json_loads(resp.body, 0, NULL);
        assert_connect_error(err, 401);
        json_decref(err);
        h_http_resp_free(&resp);
    }
    /* Every route is behind it, the creating ones included. */
    char *seed = seed_payload(redis, "guarded", "guardedstream");
    assert_int_equal(http_status(address, "POST", "/connectors", seed), 401);
    assert_int_equal(http_status(address, "GET", "/metrics", NULL), 401);

    const char *const good[] = {"Authorization: Bearer s3cret-token", NULL};
    json_t *names = http_json(address, "GET", "/connectors", NULL, good, &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_array_size(names), 0);
    json_decref(names);
    json_decref(http_json(address, "POST", "/connectors", seed, good, &status));
    assert_int_equal(status, 201);
    free(seed);

    /* Too large by Content-Length: 413 at once, before any of the body is sent. */
    const char *announced = "POST /connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                            "Authorization: Bearer s3cret-token\r\n"
                            "Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n";
    h_http_resp_t resp;
    assert_int_equal(h_http_raw(address, announced, strlen(announced), &resp), 413);
    json_t *err = json_loads(resp.body, 0, NULL);
    assert_connect_error(err, 413);
    json_decref(err);
    h_http_resp_free(&resp);

    /* Too large in chunks (no length announced): 413 too; just under the limit is parsed. */
    for (int over = 0; over < 2; over++) {
        size_t size = over ? 5000 : 4000;
        char *json = malloc(size + 1);
        memset(json, ' ', size);
        memcpy(json, "{\"name\":\"chunky\",\"config\":{}", 28);
        json[size - 1] = '}';
        json[size] = '\0';
        char *request = NULL;
        assert_true(asprintf(&request,
                             "POST /connectors HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                             "Authorization: Bearer s3cret-token\r\n"
                             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "%zx\r\n%.*s\r\n%zx\r\n%s\r\n0\r\n\r\n",
                             size / 2, (int)(size / 2), json, size - size / 2, json + size / 2) > 0);
        status = h_http_raw(address, request, strlen(request), &resp);
        err = json_loads(resp.body, 0, NULL);
        /* Under the limit the body reaches validation: 400 for its empty config. */
        assert_int_equal(status, over ? 413 : 400);
        assert_connect_error(err, status);
        json_decref(err);
        h_http_resp_free(&resp);
        free(request);
        free(json);
    }

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* ---- Connectors created over the API survive a restart ------------------------------------- */

static void test_restart_brings_connectors_back(void **state) {
    char *wt = worker_text("rest-configs-restart", NULL);
    char address[128];
    h_proc_t *proc = h_worker_start(wt, NULL, address, sizeof(address));
    char *kept = seed_payload(redis, "kept", "keptstream");
    char *held = seed_payload(redis, "held", "heldstream");
    char *dropped = seed_payload(redis, "dropped", "droppedstream");
    assert_int_equal(http_status(address, "POST", "/connectors", kept), 201);
    assert_int_equal(http_status(address, "POST", "/connectors", held), 201);
    assert_int_equal(http_status(address, "POST", "/connectors", dropped), 201);
    assert_int_equal(http_status(address, "PUT", "/connectors/held/pause", NULL), 202);
    assert_int_equal(http_status(address, "DELETE", "/connectors/dropped", NULL), 204);
    /* An update is what comes back; a refused one changes nothing. */
    char *update = NULL;
    assert_true(asprintf(&update,
                         "{\"connector.class\":\"com.redis.kafka.connect.RedisStreamSourceConnector\","
                         "\"redis.uri\":\"%s\",\"redis.stream.name\":\"keptstream\","
                         "\"topic\":\"keptstream\",\"redis.stream.block\":\"150\"}",
                         h_redis_uri(redis)) > 0);
    assert_int_equal(http_status(address, "PUT", "/connectors/kept/config", update), 200);
    free(update);
    assert_int_equal(
        http_status(address, "PUT", "/connectors/kept/config",
                    "{\"connector.class\":\"com.redis.kafka.connect.RedisStreamSourceConnector\","
                    "\"redis.uri\":\"REDIS\",\"redis.stream.name\":\"keptstream\"}"),
        400);
    assert_true(H_WAIT_FOR(http_states_are(address, "held", "PAUSED", "PAUSED", 1), WAIT_MS));
    stream_add(redis, "keptstream", 0, 5);
    assert_true(H_WAIT_FOR(topic_count(broker, "keptstream") == 5, WAIT_MS));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);

    /* While it is down, entries pile up in both streams. */
    stream_add(redis, "keptstream", 5, 5);
    stream_add(redis, "heldstream", 0, 5);

    proc = h_worker_start(wt, NULL, address, sizeof(address));
    json_t *names = http_json(address, "GET", "/connectors", NULL, NULL, &(int){0});
    assert_int_equal(json_array_size(names), 2);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "held");
    assert_string_equal(json_string_value(json_array_get(names, 1)), "kept");
    json_decref(names);
    assert_true(H_WAIT_FOR(http_states_are(address, "kept", "RUNNING", "RUNNING", 1), WAIT_MS));
    assert_true(H_WAIT_FOR(http_states_are(address, "held", "PAUSED", "PAUSED", 1), WAIT_MS));
    assert_true(H_WAIT_FOR(topic_count(broker, "keptstream") == 10, WAIT_MS));
    assert_int_equal(topic_count(broker, "heldstream"), 0);
    assert_int_equal(http_status(address, "GET", "/connectors/dropped", NULL), 404);
    json_t *config = http_json(address, "GET", "/connectors/kept/config", NULL, NULL, &(int){0});
    assert_string_equal(json_string_value(json_object_get(config, "redis.uri")), h_redis_uri(redis));
    assert_string_equal(json_string_value(json_object_get(config, "redis.stream.block")), "150");
    json_decref(config);
    assert_int_equal(http_status(address, "PUT", "/connectors/held/resume", NULL), 202);
    assert_true(H_WAIT_FOR(topic_count(broker, "heldstream") == 5, WAIT_MS));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);

    /* And resumed is what the topic says now. */
    proc = h_worker_start(wt, NULL, address, sizeof(address));
    assert_true(H_WAIT_FOR(http_states_are(address, "held", "RUNNING", "RUNNING", 1), WAIT_MS));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
    free(kept);
    free(held);
    free(dropped);
    free(wt);
}

/* ---- A file connector next to the API; without a file the worker runs alone ---------------- */

static void test_files_and_api(void **state) {
    char *file_text = NULL;
    assert_true(asprintf(&file_text,
                         "name=from-file\n"
                         "connector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"
                         "redis.uri=%s\nredis.stream.name=filestream\n",
                         h_redis_uri(redis)) > 0);
    const char *file = h_write_file("from-file.properties", file_text);
    free(file_text);
    char *wt = worker_text("rest-configs-files", NULL);
    char address[128];
    const char *const files[] = {file, NULL};
    h_proc_t *proc = h_worker_start(wt, files, address, sizeof(address));
    assert_true(H_WAIT_FOR(http_states_are(address, "from-file", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    /* The file's keys, not the inherited bootstrap servers. */
    json_t *config =
        http_json(address, "GET", "/connectors/from-file/config", NULL, NULL, &(int){0});
    assert_int_equal(json_object_size(config), 4);
    json_decref(config);
    /* Stopping its only connector over the API does not end a run of files... */
    assert_int_equal(http_status(address, "PUT", "/connectors/from-file/stop", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "from-file", "STOPPED", NULL, 0), WAIT_MS));
    assert_true(h_proc_alive(proc));
    /* ... deleting it does: nothing is left to run. */
    assert_int_equal(http_status(address, "DELETE", "/connectors/from-file", NULL), 204);
    assert_int_equal(h_proc_wait(proc, 30000), 0);
    h_proc_free(proc);
    free(wt);
}

/* Brokers unreachable at start: a worker without files cannot start; with files, they run and
 * the API refuses changes (503) rather than storing what it could not read back. */
static void test_config_topic_unreadable(void **state) {
    const char *wt = "kafka.bootstrap.servers=127.0.0.1:1\nconfig.storage.topic=unreachable\n";
    const char *path = h_write_file("unreachable-worker.properties", wt);
    const char *alone[] = {"rkbridge", "run", "--listen", "127.0.0.1:0", "--worker", path, NULL};
    h_proc_t *proc = h_rkbridge_spawn(alone, NULL);
    assert_int_equal(h_proc_wait(proc, WAIT_MS), 1);
    char *out = h_proc_output(proc);
    assert_non_null(strstr(out, "cannot start the worker: reading the connector configurations "
                                "from topic unreachable"));
    free(out);
    h_proc_free(proc);

    char *file_text = NULL;
    assert_true(asprintf(&file_text,
                         "name=file-source\n"
                         "connector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"
                         "redis.uri=%s\nredis.stream.name=unreachablestream\n",
                         h_redis_uri(redis)) > 0);
    const char *file = h_write_file("file-source.properties", file_text);
    free(file_text);
    char address[128];
    const char *const files[] = {file, NULL};
    proc = h_worker_start(wt, files, address, sizeof(address));
    assert_true(H_WAIT_FOR(http_states_are(address, "file-source", "RUNNING", "RUNNING", 1),
                           WAIT_MS));
    char *seed = seed_payload(redis, "refused", "refusedstream");
    int status;
    json_t *err = http_json(address, "POST", "/connectors", seed, NULL, &status);
    free(seed);
    assert_int_equal(status, 503);
    assert_connect_error(err, 503);
    json_decref(err);
    /* What concerns the file's connector alone still works. */
    assert_int_equal(http_status(address, "PUT", "/connectors/file-source/pause", NULL), 202);
    assert_true(H_WAIT_FOR(http_states_are(address, "file-source", "PAUSED", "PAUSED", 1),
                           WAIT_MS));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    h_proc_free(proc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connector_lifecycle),
        cmocka_unit_test(test_sink_pause_stays_in_group),
        cmocka_unit_test(test_failed_task),
        cmocka_unit_test(test_validate_and_errors),
        cmocka_unit_test(test_token_and_body_limit),
        cmocka_unit_test(test_restart_brings_connectors_back),
        cmocka_unit_test(test_files_and_api),
        cmocka_unit_test(test_config_topic_unreadable),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
