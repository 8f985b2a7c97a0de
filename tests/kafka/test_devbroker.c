/*
 * test_devbroker.c — `rkbridge dev-broker` driven through the test harness: records round-trip
 * with keys and headers, brokers going down and up, injected request errors (SEMANTICS.md P-1),
 * the control channel's commands and errors, topic creation, the bootstrap file, command-line
 * checks, SIGTERM, and consumer-group offsets read back by h_committed.
 */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* Bounds for waiting, never measured: a test fails only if the behaviour never happens. */
#define WAIT_MS 30000

/* ---- Helpers -----------------------------------------------------------------------------------
 */

/* Delivery outcome of a test-built producer (the harness producer aborts on failure; these
 * tests need to see failures). */
typedef struct delivery_count_s {
    int ok_cnt;
    int failed_cnt;
    rd_kafka_resp_err_t last_err;
} delivery_count_t;

static void count_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    delivery_count_t *count = opaque;
    if (msg->err) {
        count->failed_cnt++;
        count->last_err = msg->err;
    } else {
        count->ok_cnt++;
    }
}

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char errstr[512];
    assert_int_equal(rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)),
                     RD_KAFKA_CONF_OK);
}

/* A producer whose delivery reports land in count. Extra properties as name/value pairs,
 * NULL-terminated. */
static rd_kafka_t *counting_producer_new(const char *bootstrap, delivery_count_t *count, ...) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", bootstrap);
    va_list ap;
    va_start(ap, count);
    const char *name;
    while ((name = va_arg(ap, const char *)))
        conf_set(conf, name, va_arg(ap, const char *));
    va_end(ap);
    rd_kafka_conf_set_dr_msg_cb(conf, count_delivery);
    rd_kafka_conf_set_opaque(conf, count);
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    assert_non_null(rk);
    return rk;
}

/* Produces one value to partition 0 and waits (bounded) for its delivery report. */
static void produce_one(rd_kafka_t *rk, const char *topic, const char *value) {
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_flush(rk, WAIT_MS);
}

/* Partition count of topic as metadata reports it (0: unknown topic). */
static int metadata_partition_cnt(const char *bootstrap, const char *topic) {
    delivery_count_t unused = {0};
    rd_kafka_t *rk = counting_producer_new(bootstrap, &unused, NULL);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *metadata;
    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &metadata, WAIT_MS), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(metadata->topic_cnt, 1);
    int partition_cnt = metadata->topics[0].err ? 0 : metadata->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(metadata);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return partition_cnt;
}

/* The value of header name in msg; *found tells a null value from a missing header. */
static const char *header_value(const rd_kafka_message_t *msg, const char *name, size_t *size,
                                bool *found) {
    rd_kafka_headers_t *headers;
    const void *value = NULL;
    *found = false;
    *size = 0;
    if (rd_kafka_message_headers(msg, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(headers, name, &value, size) == RD_KAFKA_RESP_ERR_NO_ERROR)
        *found = true;
    return value;
}

static bool file_exists(void *arg) {
    return access((const char *)arg, F_OK) == 0;
}

/* ---- Tests --------------------------------------------------------------------------------- */

/* 1000 records with keys, values and headers (one null) across 4 partitions come back intact,
 * in order within each partition. */
static void test_records_round_trip(void **state) {
    enum { RECORD_CNT = 1000, PARTITION_CNT = 4 };
    h_broker_t *broker = h_broker_start(3, "roundtrip:4");
    rd_kafka_t *producer = h_producer_new(broker);
    for (int i = 0; i < RECORD_CNT; i++) {
        char key[32], value[32], seq[32];
        snprintf(key, sizeof(key), "key-%d", i);
        snprintf(value, sizeof(value), "value-%d", i);
        snprintf(seq, sizeof(seq), "%d", i);
        h_produce(producer, "roundtrip", i % PARTITION_CNT, key, value, "seq", seq, "empty", NULL,
                  NULL);
    }
    h_producer_flush(producer);
    h_producer_destroy(producer);

    rd_kafka_message_t **msgs;
    size_t msg_cnt = h_consume_all(broker, "roundtrip", &msgs);
    assert_int_equal(msg_cnt, RECORD_CNT);

    bool seen[RECORD_CNT] = {false};
    int64_t last_offset[PARTITION_CNT] = {-1, -1, -1, -1};
    int last_seq[PARTITION_CNT] = {-1, -1, -1, -1};
    for (size_t m = 0; m < msg_cnt; m++) {
        const rd_kafka_message_t *msg = msgs[m];
        char key[32], expected_value[32];
        assert_true(msg->key_len < sizeof(key));
        memcpy(key, msg->key, msg->key_len);
        key[msg->key_len] = '\0';
        int i = -1;
        assert_int_equal(sscanf(key, "key-%d", &i), 1);
        assert_true(i >= 0 && i < RECORD_CNT);
        assert_false(seen[i]);
        seen[i] = true;
        assert_int_equal(msg->partition, i % PARTITION_CNT);

        snprintf(expected_value, sizeof(expected_value), "value-%d", i);
        assert_int_equal(msg->len, strlen(expected_value));
        assert_memory_equal(msg->payload, expected_value, msg->len);

        size_t size;
        bool found;
        char seq[32];
        const char *value = header_value(msg, "seq", &size, &found);
        snprintf(seq, sizeof(seq), "%d", i);
        assert_true(found);
        assert_int_equal(size, strlen(seq));
        assert_memory_equal(value, seq, size);
        value = header_value(msg, "empty", &size, &found);
        assert_true(found);
        assert_null(value);

        /* ascending offsets and production order within the partition */
        assert_true(msg->offset > last_offset[msg->partition]);
        assert_true(i > last_seq[msg->partition]);
        last_offset[msg->partition] = msg->offset;
        last_seq[msg->partition] = i;
    }
    h_messages_free(msgs, msg_cnt);
    h_broker_stop(broker);
}

/* `down all`: a record cannot be delivered (it times out); `up all`: the next one is. */
static void test_down_and_up(void **state) {
    h_broker_t *broker = h_broker_start(1, "updown:1");
    delivery_count_t count = {0};
    rd_kafka_t *rk =
        counting_producer_new(broker->bootstrap, &count, "message.timeout.ms", "2000", NULL);

    produce_one(rk, "updown", "before"); /* the producer knows the topic's leader */
    assert_int_equal(count.ok_cnt, 1);

    assert_int_equal(h_broker_ctl(broker, "down all"), 0);
    produce_one(rk, "updown", "while down");
    assert_int_equal(count.ok_cnt, 1); /* failed or still stalled: not delivered */
    assert_int_equal(count.failed_cnt + rd_kafka_outq_len(rk), 1);

    assert_int_equal(h_broker_ctl(broker, "up all"), 0);
    /* The producer reconnects after its own backoff, which may outlast one message timeout:
     * try until a record gets through. */
    int64_t until = h_now_ms() + WAIT_MS;
    while (count.ok_cnt == 1 && h_now_ms() < until)
        produce_one(rk, "updown", "after");
    assert_int_equal(count.ok_cnt, 2);
    rd_kafka_destroy(rk);
    h_broker_stop(broker);
}

/* SEMANTICS.md P-1: retriable Produce errors are retried by the idempotent producer; every
 * record is delivered once and in order. */
static void test_injected_errors_idempotent_producer(void **state) {
    enum { RECORD_CNT = 100 };
    h_broker_t *broker = h_broker_start(3, "p1:1");
    assert_int_equal(
        h_broker_ctl(broker, "error Produce 2 NOT_LEADER_FOR_PARTITION REQUEST_TIMED_OUT"), 0);
    rd_kafka_t *producer = h_producer_new(broker);
    for (int i = 0; i < RECORD_CNT; i++) {
        char value[32];
        snprintf(value, sizeof(value), "%d", i);
        h_produce(producer, "p1", 0, NULL, value, NULL);
    }
    h_producer_flush(producer); /* aborts if any delivery failed */
    h_producer_destroy(producer);

    rd_kafka_message_t **msgs;
    size_t msg_cnt = h_consume_all(broker, "p1", &msgs);
    assert_int_equal(msg_cnt, RECORD_CNT);
    for (size_t m = 0; m < msg_cnt; m++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "%zu", m);
        assert_int_equal(msgs[m]->offset, (int64_t)m);
        assert_int_equal(msgs[m]->len, strlen(expected));
        assert_memory_equal(msgs[m]->payload, expected, msgs[m]->len);
    }
    h_messages_free(msgs, msg_cnt);
    h_broker_stop(broker);
}

/* The injected error reaches the client as given (by number, API in any case), and `clear`
 * drops errors not yet used. A producer without retries shows both. */
static void test_injected_error_reaches_client_and_clear(void **state) {
    h_broker_t *broker = h_broker_start(1, "inject:1");
    delivery_count_t count = {0};
    rd_kafka_t *rk = counting_producer_new(broker->bootstrap, &count, "retries", "0", NULL);
    produce_one(rk, "inject", "warm-up"); /* metadata and connection in place */
    assert_int_equal(count.ok_cnt, 1);

    /* 10 = MSG_SIZE_TOO_LARGE: not retriable, and unlike an authorization error it does not
     * make the client refuse further records for the topic */
    assert_int_equal(h_broker_ctl(broker, "error produce 1 10"), 0);
    produce_one(rk, "inject", "rejected");
    assert_int_equal(count.failed_cnt, 1);
    assert_int_equal(count.last_err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);

    assert_int_equal(h_broker_ctl(broker, "error Produce 3 MSG_SIZE_TOO_LARGE"), 0);
    assert_int_equal(h_broker_ctl(broker, "clear Produce"), 0);
    produce_one(rk, "inject", "accepted");
    assert_int_equal(count.ok_cnt, 2);
    assert_int_equal(count.failed_cnt, 1);
    rd_kafka_destroy(rk);
    h_broker_stop(broker);
}

/* Bad commands get an "error:" reply and the channel keeps working. */
static void test_control_errors(void **state) {
    h_broker_t *broker = h_broker_start(2, NULL);
    assert_int_equal(h_broker_ctl(broker, "frobnicate"), -1);
    assert_int_equal(h_broker_ctl(broker, "down"), -1);         /* missing broker */
    assert_int_equal(h_broker_ctl(broker, "down 3"), -1);       /* only brokers 1..2 */
    assert_int_equal(h_broker_ctl(broker, "rtt all soon"), -1); /* not a number */
    assert_int_equal(h_broker_ctl(broker, "error Bogus 1 REQUEST_TIMED_OUT"), -1);
    assert_int_equal(h_broker_ctl(broker, "error Produce 1 NO_SUCH_ERROR"), -1);
    assert_int_equal(h_broker_ctl(broker, "error Produce 1 _TRANSPORT _TRANSPORT"), -1);
    assert_int_equal(h_broker_ctl(broker, "topic t 0"), -1);
    assert_int_equal(h_broker_ctl(broker, "help"), 0);
    assert_int_equal(h_broker_ctl(broker, "rtt 2 5"), 0);
    assert_int_equal(h_broker_ctl(broker, "rtt all 0"), 0);
    assert_int_equal(h_broker_ctl(broker, "down 2"), 0);
    assert_int_equal(h_broker_ctl(broker, "up 2"), 0);
    h_broker_stop(broker);
}

/* `topic` creates a topic with the given partitions; a second create of it fails; `leader`
 * accepts an existing partition and refuses one beyond the count. */
static void test_topic_command(void **state) {
    h_broker_t *broker = h_broker_start(3, NULL);
    assert_int_equal(h_broker_ctl(broker, "topic created 5"), 0);
    assert_int_equal(metadata_partition_cnt(broker->bootstrap, "created"), 5);
    assert_int_equal(h_broker_ctl(broker, "topic created 5"), -1);
    assert_int_equal(h_broker_ctl(broker, "leader created 4 2"), 0);
    assert_int_equal(h_broker_ctl(broker, "leader created 5 2"), -1);
    h_broker_stop(broker);
}

/* Started by hand (stdin at EOF from the start): the bootstrap file appears and names a
 * reachable cluster with the --topic, the broker outlives its stdin, SIGTERM exits with 0. */
static void test_bootstrap_file_and_sigterm(void **state) {
    char bootstrap_path[512];
    snprintf(bootstrap_path, sizeof(bootstrap_path), "%s/bootstrap-%ld", h_tmpdir(),
             (long)getpid());
    const char *argv[] = {"rkbridge", "dev-broker",       "--brokers",    "2", "--topic",
                          "filed:2",  "--bootstrap-file", bootstrap_path, NULL};
    h_proc_t *proc = h_rkbridge_spawn(argv, NULL);
    assert_true(h_wait_until(file_exists, bootstrap_path, WAIT_MS));

    char bootstrap[256] = "";
    FILE *fp = fopen(bootstrap_path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(bootstrap, sizeof(bootstrap), fp));
    fclose(fp);
    size_t len = strlen(bootstrap);
    assert_true(len > 1 && bootstrap[len - 1] == '\n');
    bootstrap[len - 1] = '\0';
    assert_non_null(strchr(bootstrap, ',')); /* two brokers */

    assert_int_equal(metadata_partition_cnt(bootstrap, "filed"), 2);
    assert_true(h_proc_alive(proc));

    char *output = h_proc_output(proc);
    assert_non_null(strstr(output, bootstrap)); /* also the first line of stdout */
    free(output);

    assert_int_equal(h_proc_stop(proc, SIGTERM, WAIT_MS), 0);
    output = h_proc_output(proc);
    assert_non_null(strstr(output, "[dev-broker] stopped"));
    free(output);
    h_proc_free(proc);
}

/* Bad command lines exit with 2 and say what is wrong; --help exits with 0. */
static void test_command_line(void **state) {
    const char *bad_brokers[] = {h_rkbridge_bin(), "dev-broker", "--brokers", "10", NULL};
    const char *bad_topic[] = {h_rkbridge_bin(), "dev-broker", "--topic", "nopartitions", NULL};
    const char *bad_option[] = {h_rkbridge_bin(), "dev-broker", "--nope", NULL};
    const char *help[] = {h_rkbridge_bin(), "dev-broker", "--help", NULL};
    char *out, *err;

    assert_int_equal(h_run(bad_brokers, NULL, &err), 2);
    assert_non_null(strstr(err, "--brokers"));
    free(err);
    assert_int_equal(h_run(bad_topic, NULL, &err), 2);
    assert_non_null(strstr(err, "nopartitions"));
    free(err);
    assert_int_equal(h_run(bad_option, NULL, &err), 2);
    assert_non_null(strstr(err, "--nope"));
    free(err);
    assert_int_equal(h_run(help, &out, NULL), 0);
    assert_non_null(strstr(out, "--bootstrap-file"));
    free(out);
}

/* A consumer group on the broker commits an offset and h_committed reads it back; a partition
 * it never committed reads as -1001. */
static void test_group_commit_read_back(void **state) {
    enum { RECORD_CNT = 10 };
    h_broker_t *broker = h_broker_start(1, "grouped:2");
    rd_kafka_t *producer = h_producer_new(broker);
    for (int i = 0; i < RECORD_CNT; i++)
        h_produce(producer, "grouped", 0, NULL, "v", NULL);
    h_producer_flush(producer);
    h_producer_destroy(producer);

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", broker->bootstrap);
    conf_set(conf, "group.id", "committers");
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "auto.offset.reset", "earliest");
    /* SEMANTICS.md M-1: the mock's first join takes ~3 s; keep later rebalances short. */
    conf_set(conf, "session.timeout.ms", "6000");
    conf_set(conf, "heartbeat.interval.ms", "500");
    char errstr[512];
    rd_kafka_t *consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    assert_non_null(consumer);
    rd_kafka_poll_set_consumer(consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, "grouped", RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(consumer, topics), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(topics);

    int consumed_cnt = 0;
    int64_t until = h_now_ms() + WAIT_MS;
    while (consumed_cnt < RECORD_CNT && h_now_ms() < until) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(consumer, 100);
        if (!msg)
            continue;
        if (!msg->err)
            consumed_cnt++;
        rd_kafka_message_destroy(msg);
    }
    assert_int_equal(consumed_cnt, RECORD_CNT);
    /* synchronous commit of the consumed position: partition 0 -> 10 */
    assert_int_equal(rd_kafka_commit(consumer, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);

    assert_int_equal(h_committed(broker, "committers", "grouped", 0), RECORD_CNT);
    assert_int_equal(h_committed(broker, "committers", "grouped", 1), RD_KAFKA_OFFSET_INVALID);
    assert_int_equal(h_committed(broker, "nobody", "grouped", 0), RD_KAFKA_OFFSET_INVALID);
    h_broker_stop(broker);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_round_trip),
        cmocka_unit_test(test_down_and_up),
        cmocka_unit_test(test_injected_errors_idempotent_producer),
        cmocka_unit_test(test_injected_error_reaches_client_and_clear),
        cmocka_unit_test(test_control_errors),
        cmocka_unit_test(test_topic_command),
        cmocka_unit_test(test_bootstrap_file_and_sigterm),
        cmocka_unit_test(test_command_line),
        cmocka_unit_test(test_group_commit_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
