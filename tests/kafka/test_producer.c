/*
 * test_producer.c — src/kafka/producer.c against the dev broker (librdkafka's mock cluster):
 * records round-trip byte for byte with keys, headers and timestamps; SEMANTICS.md P-1..P-4
 * (injected retriable errors, broker down then up, message timeout, a permanent error); a
 * fatal idempotence error; a full local queue; destroy reporting what it could not deliver;
 * ensure_topic on a broker without CreateTopics; properties librdkafka rejects.
 */
#include "harness.h"

#include "kafka/producer.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Bounds for waiting, never measured: a test fails only if the behaviour never happens. */
#define WAIT_MS     60000
#define MAX_RECORDS 200
#define MAX_PROPS   16 /* name/value pairs a test producer gets */

/* ---- Helpers --------------------------------------------------------------------------------- */

/* What on_delivery saw. msg_opaque of record i is (void *)(intptr_t)i. */
typedef struct deliveries_s {
    int report_cnt;         /* reports so far */
    int ok_cnt;             /* of which without error */
    int order[MAX_RECORDS]; /* record index of each report, in arrival order */
    int report_cnt_of[MAX_RECORDS];
    int err_of[MAX_RECORDS];
    char last_errstr[256];
} deliveries_t;

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    deliveries_t *deliveries = opaque;
    intptr_t i = (intptr_t)msg_opaque;
    assert_true(i >= 0 && i < MAX_RECORDS);
    assert_non_null(errstr);
    deliveries->order[deliveries->report_cnt++] = (int)i;
    deliveries->report_cnt_of[i]++;
    deliveries->err_of[i] = err;
    if (!err)
        deliveries->ok_cnt++;
    snprintf(deliveries->last_errstr, sizeof(deliveries->last_errstr), "%s", errstr);
}

/* A producer on broker reporting to deliveries. Extra kafka properties as name/value pairs,
 * NULL-terminated. */
static rkb_producer_t *producer_new(const h_broker_t *broker, deliveries_t *deliveries, ...) {
    const char *props[2 * MAX_PROPS] = {"bootstrap.servers", broker->bootstrap};
    size_t prop_cnt = 1;
    va_list ap;
    va_start(ap, deliveries);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        assert_true(prop_cnt < MAX_PROPS);
        props[2 * prop_cnt] = name;
        props[2 * prop_cnt + 1] = va_arg(ap, const char *);
        prop_cnt++;
    }
    va_end(ap);
    rkb_producer_conf_t conf = {.component = "test-producer",
                                .client_id = "test-producer",
                                .props = props,
                                .prop_cnt = prop_cnt,
                                .on_delivery = on_delivery,
                                .opaque = deliveries};
    char errstr[512];
    rkb_producer_t *p = rkb_producer_new(&conf, errstr, sizeof(errstr));
    if (!p)
        fail_msg("rkb_producer_new: %s", errstr);
    return p;
}

/* Sends record i with value "value-<i>" (no key, no headers); asserts it was queued. */
static void send_value(rkb_producer_t *p, const char *topic, int32_t partition, int i) {
    char value[32], errstr[512];
    snprintf(value, sizeof(value), "value-%d", i);
    if (rkb_producer_send(p, topic, partition, NULL, 0, value, strlen(value), NULL, 0, -1,
                          (void *)(intptr_t)i, errstr, sizeof(errstr)))
        fail_msg("rkb_producer_send: %s", errstr);
}

/* Every record 0..cnt-1 reported exactly once, all without error, in the order sent. */
static void assert_all_delivered_in_order(const deliveries_t *deliveries, int cnt) {
    assert_int_equal(deliveries->report_cnt, cnt);
    assert_int_equal(deliveries->ok_cnt, cnt);
    for (int i = 0; i < cnt; i++) {
        assert_int_equal(deliveries->report_cnt_of[i], 1);
        assert_int_equal(deliveries->order[i], i);
    }
}

/* The topic holds exactly "value-<first>" .. "value-<first+cnt-1>" at offsets 0.., in order:
 * nothing lost, nothing written twice. One partition. */
static void assert_topic_values(const h_broker_t *broker, const char *topic, int first, int cnt) {
    rd_kafka_message_t **msgs;
    size_t msg_cnt = h_consume_all(broker, topic, &msgs);
    assert_int_equal(msg_cnt, (size_t)cnt);
    for (size_t m = 0; m < msg_cnt; m++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "value-%d", first + (int)m);
        assert_int_equal(msgs[m]->offset, (int64_t)m);
        assert_int_equal(msgs[m]->len, strlen(expected));
        assert_memory_equal(msgs[m]->payload, expected, msgs[m]->len);
    }
    h_messages_free(msgs, msg_cnt);
}

/* Sends record 0 and waits for its report, so that the producer has its metadata, connection
 * and producer id before the broker is disturbed. */
static void warm_up(rkb_producer_t *p, deliveries_t *deliveries, const char *topic) {
    send_value(p, topic, 0, 0);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(deliveries->ok_cnt, 1);
}

/* ---- Tests --------------------------------------------------------------------------------- */

enum { ROUND_TRIP_CNT = 100, HEADER_CNT = 4 };

/* The bytes of record i: key and value hold every byte value (NUL included). */
static void round_trip_bytes(int i, unsigned char *key, size_t *key_len, unsigned char *value,
                             size_t *value_len) {
    *key_len = 8;
    for (size_t b = 0; b < *key_len; b++)
        key[b] = (unsigned char)(i * 8 + (int)b); /* 0..255, then again from 32 */
    *value_len = (size_t)(i % 7) * 40 + 1;
    for (size_t b = 0; b < *value_len; b++)
        value[b] = (unsigned char)(255 - (i + (int)b) % 256);
}

/* 100 records with keys, binary values, headers (a null one, an empty one, binary bytes, a
 * repeated name) and timestamps: every report is OK, and a consumer reads back the same bytes,
 * headers in the order given, in the order sent. */
static void test_round_trip(void **state) {
    h_broker_t *broker = h_broker_start(3, "roundtrip:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    static const unsigned char binary[] = {0x00, 0xff, 0x0a, 0x00, 0x80};
    const int64_t base_timestamp = 1700000000000;

    for (int i = 0; i < ROUND_TRIP_CNT; i++) {
        unsigned char key[8], value[512];
        size_t key_len, value_len;
        round_trip_bytes(i, key, &key_len, value, &value_len);
        char seq[16];
        snprintf(seq, sizeof(seq), "%d", i);
        const rkb_header_t headers[HEADER_CNT] = {
            {.name = "seq", .value = seq, .len = strlen(seq)},
            {.name = "null", .value = NULL, .len = 0},
            {.name = "binary", .value = binary, .len = sizeof(binary)},
            {.name = "seq", .value = "", .len = 0}, /* repeated name, empty (not null) value */
        };
        char errstr[512];
        /* even records by key hash (one partition: still 0), odd ones to partition 0 */
        int rc = rkb_producer_send(p, "roundtrip", i % 2 ? 0 : -1, key, key_len, value, value_len,
                                   headers, HEADER_CNT, base_timestamp + i, (void *)(intptr_t)i,
                                   errstr, sizeof(errstr));
        if (rc)
            fail_msg("send %d: %s", i, errstr);
    }
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(rkb_producer_outstanding(p), 0);
    assert_all_delivered_in_order(&deliveries, ROUND_TRIP_CNT);
    assert_string_equal(deliveries.last_errstr, rd_kafka_err2str(RD_KAFKA_RESP_ERR_NO_ERROR));
    rkb_producer_destroy(p, WAIT_MS);
    assert_int_equal(deliveries.report_cnt, ROUND_TRIP_CNT); /* nothing more at destroy */

    rd_kafka_message_t **msgs;
    size_t msg_cnt = h_consume_all(broker, "roundtrip", &msgs);
    assert_int_equal(msg_cnt, ROUND_TRIP_CNT);
    for (int i = 0; i < ROUND_TRIP_CNT; i++) {
        const rd_kafka_message_t *msg = msgs[i];
        unsigned char key[8], value[512];
        size_t key_len, value_len;
        round_trip_bytes(i, key, &key_len, value, &value_len);
        assert_int_equal(msg->offset, i);
        assert_int_equal(msg->key_len, key_len);
        assert_memory_equal(msg->key, key, key_len);
        assert_int_equal(msg->len, value_len);
        assert_memory_equal(msg->payload, value, value_len);
        rd_kafka_timestamp_type_t timestamp_type;
        assert_int_equal(rd_kafka_message_timestamp(msg, &timestamp_type), base_timestamp + i);
        assert_int_equal(timestamp_type, RD_KAFKA_TIMESTAMP_CREATE_TIME);

        rd_kafka_headers_t *hdrs;
        assert_int_equal(rd_kafka_message_headers(msg, &hdrs), RD_KAFKA_RESP_ERR_NO_ERROR);
        assert_int_equal(rd_kafka_header_cnt(hdrs), HEADER_CNT);
        char seq[16];
        snprintf(seq, sizeof(seq), "%d", i);
        const char *expected_names[HEADER_CNT] = {"seq", "null", "binary", "seq"};
        const void *expected_values[HEADER_CNT] = {seq, NULL, binary, ""};
        size_t expected_sizes[HEADER_CNT] = {strlen(seq), 0, sizeof(binary), 0};
        for (size_t h = 0; h < HEADER_CNT; h++) {
            const char *name;
            const void *header_value;
            size_t size;
            assert_int_equal(rd_kafka_header_get_all(hdrs, h, &name, &header_value, &size),
                             RD_KAFKA_RESP_ERR_NO_ERROR);
            assert_string_equal(name, expected_names[h]);
            assert_int_equal(size, expected_sizes[h]);
            if (!expected_values[h]) {
                assert_null(header_value);
            } else {
                assert_non_null(header_value); /* empty is not null */
                assert_memory_equal(header_value, expected_values[h], size);
            }
        }
    }
    h_messages_free(msgs, msg_cnt);
    h_broker_stop(broker);
}

/* P-1: retriable Produce errors are retried inside librdkafka: every report is OK, in order,
 * and the topic holds each record once, at offsets 0..9. */
static void test_p1_idempotent_retries(void **state) {
    enum { RECORD_CNT = 10 };
    h_broker_t *broker = h_broker_start(3, "p1:1");
    assert_int_equal(
        h_broker_ctl(broker, "error Produce 2 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT"), 0);
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    for (int i = 0; i < RECORD_CNT; i++)
        send_value(p, "p1", 0, i);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_all_delivered_in_order(&deliveries, RECORD_CNT);
    rkb_producer_destroy(p, WAIT_MS);
    assert_topic_values(broker, "p1", 0, RECORD_CNT);
    h_broker_stop(broker);
}

/* P-2: records sent while every broker is down wait in the producer and are all delivered,
 * in order and once, when the broker comes back within message.timeout.ms. */
static void test_p2_broker_down_then_up(void **state) {
    enum { RECORD_CNT = 10 };
    h_broker_t *broker = h_broker_start(1, "p2:1");
    deliveries_t deliveries = {0};
    /* The mock refuses connections while down; a short reconnect backoff lets the producer
     * notice it is back soon after. */
    rkb_producer_t *p = producer_new(broker, &deliveries, "reconnect.backoff.ms", "100",
                                     "reconnect.backoff.max.ms", "500", NULL);
    warm_up(p, &deliveries, "p2");

    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 1; i <= RECORD_CNT; i++)
        send_value(p, "p2", 0, i);
    rkb_producer_poll(p, 1000);
    assert_int_equal(deliveries.ok_cnt, 1); /* nothing can be delivered while down */
    assert_int_equal(deliveries.report_cnt, 1);
    assert_int_equal(rkb_producer_outstanding(p), RECORD_CNT);

    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_all_delivered_in_order(&deliveries, RECORD_CNT + 1);
    rkb_producer_destroy(p, WAIT_MS);
    assert_topic_values(broker, "p2", 0, RECORD_CNT + 1);
    h_broker_stop(broker);
}

/* P-3: with every broker down, records that outlive message.timeout.ms are reported failed
 * with _MSG_TIMED_OUT, each once; flush then has nothing outstanding. */
static void test_p3_message_timeout(void **state) {
    enum { RECORD_CNT = 5 };
    h_broker_t *broker = h_broker_start(1, "p3:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, "message.timeout.ms", "1000", NULL);
    warm_up(p, &deliveries, "p3");

    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 1; i <= RECORD_CNT; i++)
        send_value(p, "p3", 0, i);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(deliveries.report_cnt, RECORD_CNT + 1);
    assert_int_equal(deliveries.ok_cnt, 1);
    for (int i = 1; i <= RECORD_CNT; i++) {
        assert_int_equal(deliveries.report_cnt_of[i], 1);
        assert_int_equal(deliveries.err_of[i], RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    }
    assert_string_equal(deliveries.last_errstr, rd_kafka_err2str(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
    rkb_producer_destroy(p, 0);
    assert_int_equal(deliveries.report_cnt, RECORD_CNT + 1);
    h_broker_stop(broker);
}

/* P-4: a permanent Produce error (MSG_SIZE_TOO_LARGE, not retriable) fails the record's
 * report; the producer goes on and delivers the next record. */
static void test_p4_permanent_error(void **state) {
    h_broker_t *broker = h_broker_start(1, "p4:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    warm_up(p, &deliveries, "p4");

    assert_int_equal(h_broker_ctl(broker, "error Produce 1 MSG_SIZE_TOO_LARGE"), 0);
    send_value(p, "p4", 0, 1);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(deliveries.report_cnt, 2);
    assert_int_equal(deliveries.err_of[1], RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    assert_string_equal(deliveries.last_errstr,
                        rd_kafka_err2str(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));

    send_value(p, "p4", 0, 2);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(deliveries.report_cnt, 3);
    assert_int_equal(deliveries.err_of[2], 0);
    rkb_producer_destroy(p, WAIT_MS);

    /* record 1 was never written */
    rd_kafka_message_t **msgs;
    size_t msg_cnt = h_consume_all(broker, "p4", &msgs);
    assert_int_equal(msg_cnt, 2);
    assert_memory_equal(msgs[0]->payload, "value-0", msgs[0]->len);
    assert_memory_equal(msgs[1]->payload, "value-2", msgs[1]->len);
    h_messages_free(msgs, msg_cnt);
    h_broker_stop(broker);
}

/* A full local queue is waited out by serving reports: 50 records through a queue of 5. */
static void test_queue_full_waits(void **state) {
    enum { RECORD_CNT = 50 };
    h_broker_t *broker = h_broker_start(1, "full:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p =
        producer_new(broker, &deliveries, "queue.buffering.max.messages", "5", NULL);
    for (int i = 0; i < RECORD_CNT; i++)
        send_value(p, "full", 0, i);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_all_delivered_in_order(&deliveries, RECORD_CNT);
    rkb_producer_destroy(p, WAIT_MS);
    assert_topic_values(broker, "full", 0, RECORD_CNT);
    h_broker_stop(broker);
}

/* With the broker down a full queue stays full: send gives up (after its bounded wait) with
 * -1 and no report for that record. destroy then reports every queued record as failed
 * before it returns. */
static void test_queue_full_gives_up_and_destroy_reports(void **state) {
    enum { QUEUE_CNT = 5 };
    h_broker_t *broker = h_broker_start(1, "stuck:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p =
        producer_new(broker, &deliveries, "queue.buffering.max.messages", "5", NULL);
    warm_up(p, &deliveries, "stuck");

    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    for (int i = 1; i <= QUEUE_CNT; i++)
        send_value(p, "stuck", 0, i);
    char errstr[512];
    assert_int_equal(rkb_producer_send(p, "stuck", 0, NULL, 0, "x", 1, NULL, 0, -1,
                                       (void *)(intptr_t)(QUEUE_CNT + 1), errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "stuck"));
    assert_non_null(strstr(errstr, "queue"));
    assert_int_equal(deliveries.report_cnt, 1);
    assert_int_equal(rkb_producer_outstanding(p), QUEUE_CNT);

    rkb_producer_destroy(p, 100);
    assert_int_equal(deliveries.report_cnt, QUEUE_CNT + 1);
    for (int i = 1; i <= QUEUE_CNT; i++) {
        assert_int_equal(deliveries.report_cnt_of[i], 1);
        assert_int_equal(deliveries.err_of[i], RD_KAFKA_RESP_ERR__PURGE_QUEUE);
    }
    assert_int_equal(deliveries.report_cnt_of[QUEUE_CNT + 1], 0);
    h_broker_stop(broker);
}

/* Records whose requests are in flight (the broker answers only after 5 s) when destroy's
 * flush time runs out are reported failed before destroy returns. */
static void test_destroy_reports_in_flight(void **state) {
    enum { RECORD_CNT = 5 };
    h_broker_t *broker = h_broker_start(1, "inflight:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    warm_up(p, &deliveries, "inflight");

    assert_int_equal(h_broker_ctl(broker, "rtt all 5000"), 0);
    for (int i = 1; i <= RECORD_CNT; i++)
        send_value(p, "inflight", 0, i);
    rkb_producer_poll(p, 200); /* linger.ms passes: the records go out */
    rkb_producer_destroy(p, 100);
    assert_int_equal(deliveries.report_cnt, RECORD_CNT + 1);
    for (int i = 1; i <= RECORD_CNT; i++) {
        assert_int_equal(deliveries.report_cnt_of[i], 1);
        /* in flight, or still queued on a slow machine: failed either way */
        assert_true(deliveries.err_of[i] == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT ||
                    deliveries.err_of[i] == RD_KAFKA_RESP_ERR__PURGE_QUEUE);
    }
    h_broker_stop(broker);
}

/* A sequence error on the first batch in flight means the broker lost what the producer
 * wrote: librdkafka raises a fatal error, the record fails, and send refuses from then on. */
static void test_fatal_error_stops_sends(void **state) {
    h_broker_t *broker = h_broker_start(1, "fatal:1");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    warm_up(p, &deliveries, "fatal");
    char errstr[512];
    assert_int_equal(rkb_producer_fatal_error(p, errstr, sizeof(errstr)), 0);

    assert_int_equal(h_broker_ctl(broker, "error Produce 1 OUT_OF_ORDER_SEQUENCE_NUMBER"), 0);
    send_value(p, "fatal", 0, 1);
    assert_int_equal(rkb_producer_flush(p, WAIT_MS), 0);
    assert_int_equal(deliveries.report_cnt, 2);
    assert_int_equal(deliveries.err_of[1], RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_int_not_equal(rkb_producer_fatal_error(p, errstr, sizeof(errstr)), 0);
    assert_non_null(strstr(errstr, "OUT_OF_ORDER_SEQUENCE_NUMBER"));

    assert_int_equal(rkb_producer_send(p, "fatal", 0, NULL, 0, "x", 1, NULL, 0, -1,
                                       (void *)(intptr_t)2, errstr, sizeof(errstr)),
                     -1);
    assert_non_null(strstr(errstr, "fatal"));
    rkb_producer_destroy(p, WAIT_MS);
    assert_int_equal(deliveries.report_cnt, 2); /* none for the refused record */
    h_broker_stop(broker);
}

/* The dev broker has no CreateTopics (SEMANTICS.md §3.3): ensure_topic says so with -1 and a
 * message naming the topic, for a new and for an existing topic, and returns (bounded by its
 * timeout, not hanging). */
static void test_ensure_topic_on_dev_broker(void **state) {
    h_broker_t *broker = h_broker_start(1, "existing:2");
    deliveries_t deliveries = {0};
    rkb_producer_t *p = producer_new(broker, &deliveries, NULL);
    const char *topics[] = {"created-by-admin", "existing"};
    for (size_t t = 0; t < 2; t++) {
        char errstr[512] = "";
        int64_t start = h_now_ms();
        int rc = rkb_producer_ensure_topic(p, topics[t], 3, 1, 2000, errstr, sizeof(errstr));
        int64_t elapsed = h_now_ms() - start;
        print_message("ensure_topic(%s) -> %d after %lld ms: %s\n", topics[t], rc,
                      (long long)elapsed, errstr);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(errstr, topics[t]));
        assert_non_null(strstr(errstr, "CreateTopics")); /* says why */
        assert_true(elapsed < WAIT_MS); /* a bound against hanging, not a measured figure */
    }
    rkb_producer_destroy(p, WAIT_MS);
    h_broker_stop(broker);
}

/* Properties librdkafka rejects make rkb_producer_new fail naming kafka.<property>: an unknown
 * name, a bad value, and acks=1 which contradicts the forced idempotence. */
static void test_bad_properties(void **state) {
    static const struct {
        const char *name, *value, *expected;
    } cases[] = {
        {"no.such.property", "1", "kafka.no.such.property: "},
        {"linger.ms", "soon", "kafka.linger.ms: "},
        {"acks", "1", "kafka.acks: "},
        {"max.in.flight", "10", "kafka.max.in.flight: "},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const char *props[] = {"bootstrap.servers", "127.0.0.1:9", cases[c].name, cases[c].value};
        rkb_producer_conf_t conf = {.props = props, .prop_cnt = 2, .on_delivery = on_delivery};
        char errstr[512] = "";
        assert_null(rkb_producer_new(&conf, errstr, sizeof(errstr)));
        print_message("%s=%s -> %s\n", cases[c].name, cases[c].value, errstr);
        assert_non_null(strstr(errstr, cases[c].expected));
    }

    /* enable.idempotence=false is overridden (and warned about), not an error */
    const char *props[] = {"bootstrap.servers", "127.0.0.1:9", "enable.idempotence", "false"};
    rkb_producer_conf_t conf = {.props = props, .prop_cnt = 2, .on_delivery = on_delivery};
    char errstr[512];
    rkb_producer_t *p = rkb_producer_new(&conf, errstr, sizeof(errstr));
    assert_non_null(p);
    rkb_producer_destroy(p, 0);
    rkb_producer_destroy(NULL, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_p1_idempotent_retries),
        cmocka_unit_test(test_p2_broker_down_then_up),
        cmocka_unit_test(test_p3_message_timeout),
        cmocka_unit_test(test_p4_permanent_error),
        cmocka_unit_test(test_queue_full_waits),
        cmocka_unit_test(test_queue_full_gives_up_and_destroy_reports),
        cmocka_unit_test(test_destroy_reports_in_flight),
        cmocka_unit_test(test_fatal_error_stops_sends),
        cmocka_unit_test(test_ensure_topic_on_dev_broker),
        cmocka_unit_test(test_bad_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
