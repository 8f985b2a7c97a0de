/*
 * http_test_util.h — shared by the REST API tests: JSON requests against a running worker,
 * waiting for a connector's states, and counting what reached Kafka and Redis.
 */
#ifndef RKB_TESTS_HTTP_TEST_UTIL_H
#define RKB_TESTS_HTTP_TEST_UTIL_H

#include "harness.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A request whose answer is JSON: returns the parsed body (NULL when empty or not JSON) and
 * the status in *status. headers may be NULL. */
static inline json_t *http_json(const char *address, const char *method, const char *path,
                                const char *body, const char *const *headers, int *status) {
    h_http_resp_t resp;
    *status = h_http(address, method, path, headers, body, &resp);
    json_t *out = resp.body_len ? json_loadb(resp.body, resp.body_len, 0, NULL) : NULL;
    if (resp.body_len && !out)
        fprintf(stderr, "not JSON (%d): %s\n", *status, resp.body);
    h_http_resp_free(&resp);
    return out;
}

/* The status of a request, its body dropped. */
static inline int http_status(const char *address, const char *method, const char *path,
                              const char *body) {
    int status;
    json_decref(http_json(address, method, path, body, NULL, &status));
    return status;
}

/* Asserts (cmocka) an error body of Kafka Connect's shape: exactly error_code and message. */
#define assert_connect_error(json, code)                                                          \
    do {                                                                                          \
        json_t *e__ = (json);                                                                     \
        assert_non_null(e__);                                                                     \
        assert_int_equal(json_object_size(e__), 2);                                               \
        assert_int_equal(json_integer_value(json_object_get(e__, "error_code")), (code));         \
        assert_true(json_is_string(json_object_get(e__, "message")));                             \
    } while (0)

/* True when GET /connectors/NAME/status says the connector is in connector_state and every
 * task in task_state (task_state NULL: no tasks at all; task_cnt: how many are expected). */
static inline bool http_states_are(const char *address, const char *name,
                                   const char *connector_state, const char *task_state,
                                   size_t task_cnt) {
    char path[512];
    snprintf(path, sizeof(path), "/connectors/%s/status", name);
    int status;
    json_t *st = http_json(address, "GET", path, NULL, NULL, &status);
    bool ok = status == 200 && st &&
              !strcmp(json_string_value(json_object_get(json_object_get(st, "connector"),
                                                        "state")) ?: "",
                      connector_state);
    json_t *tasks = json_object_get(st, "tasks");
    ok = ok && json_array_size(tasks) == (task_state ? task_cnt : 0);
    size_t i;
    json_t *task;
    json_array_foreach(tasks, i, task) {
        ok = ok && task_state && !strcmp(json_string_value(json_object_get(task, "state")) ?: "",
                                         task_state);
    }
    json_decref(st);
    return ok;
}

/* Records in a topic now (every partition). */
static inline size_t topic_count(h_broker_t *broker, const char *topic) {
    rd_kafka_message_t **msgs = NULL;
    size_t cnt = h_consume_all(broker, topic, &msgs);
    h_messages_free(msgs, cnt);
    return cnt;
}

/* XADD cnt entries "n" = first .. first+cnt-1 to stream. */
static inline void stream_add(h_redis_t *redis, const char *stream, int first, int cnt) {
    for (int i = first; i < first + cnt; i++) {
        redisReply *reply = h_redis_cmd(redis, "XADD %s * n %d", stream, i);
        freeReplyObject(reply);
    }
}

/* The seed's connector (README, issue): a stream source, with the test's Redis and stream. */
static inline char *seed_payload(h_redis_t *redis, const char *name, const char *stream) {
    char *text = NULL;
    if (asprintf(&text,
                 "{\"name\":\"%s\",\"config\":{\"tasks.max\":\"1\",\"connector.class\":"
                 "\"com.redis.kafka.connect.RedisStreamSourceConnector\",\"redis.uri\":\"%s\","
                 "\"redis.stream.name\":\"%s\",\"topic\":\"%s\"}}",
                 name, h_redis_uri(redis), stream, stream) < 0)
        abort();
    return text;
}

static inline void dump_output(h_proc_t *proc) {
    char *out = h_proc_output(proc);
    fprintf(stderr, "---- rkbridge output ----\n%s\n-------------------------\n", out);
    free(out);
}

#endif
