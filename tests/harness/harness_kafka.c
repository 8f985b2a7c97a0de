/*
 * harness_kafka.c — the Kafka side of the test harness: the dev broker (`rkbridge dev-broker`,
 * librdkafka's mock cluster) as a child process with its stdin/stdout control channel, and
 * test-side clients that put records in (idempotent producer) and read back what rkbridge
 * wrote or committed (h_consume_all, h_committed).
 *
 * Everything here runs on the test's main thread; librdkafka's delivery-report callback runs
 * from rd_kafka_poll()/rd_kafka_flush() on that thread too.
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define H_BROKER_REPLY_TIMEOUT_MS 10000
#define H_BROKER_STOP_TIMEOUT_MS  5000
#define H_CLIENT_TIMEOUT_MS       10000
#define H_FLUSH_TIMEOUT_MS        60000
#define H_CONSUME_TIMEOUT_MS      30000

/* ---- Dev broker ------------------------------------------------------------------------------ */

/* The public struct first, so that an h_broker_t * is also a broker_priv_t *. */
typedef struct broker_priv_s {
    h_broker_t broker;
    int cleanup;
    char log_path[512]; /* its stderr */
} broker_priv_t;

static int broker_counter;

/* Reads one line (without the newline) from fd into line, waiting up to timeout_ms in total.
 * Byte by byte: the broker writes nothing but reply lines, so nothing is read ahead and lost.
 * Returns 0, or -1 on timeout, EOF or error (line holds what arrived). */
static int read_line(int fd, char *line, size_t line_size, int timeout_ms) {
    int64_t until = h_now_ms() + timeout_ms;
    size_t len = 0;
    line[0] = '\0';
    for (;;) {
        int left_ms = (int)(until - h_now_ms());
        if (left_ms <= 0)
            return -1;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, left_ms);
        if (ready == -1 && errno == EINTR)
            continue;
        if (ready <= 0)
            return -1;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        if (c == '\n')
            return 0;
        if (len + 1 < line_size) {
            line[len++] = c;
            line[len] = '\0';
        }
    }
}

/* SIGTERM, then SIGKILL if it has not exited after H_BROKER_STOP_TIMEOUT_MS; reap; free. */
static void broker_cleanup(void *arg) {
    broker_priv_t *priv = arg;
    h_broker_t *broker = &priv->broker;
    if (broker->ctl_fd >= 0)
        close(broker->ctl_fd);
    if (broker->out_fd >= 0)
        close(broker->out_fd);
    if (broker->pid > 0) {
        kill(broker->pid, SIGTERM);
        int64_t until = h_now_ms() + H_BROKER_STOP_TIMEOUT_MS;
        int wait_status;
        pid_t pid;
        while ((pid = waitpid(broker->pid, &wait_status, WNOHANG)) == 0 && h_now_ms() < until)
            h_sleep_ms(20);
        if (pid == 0) {
            fprintf(stderr, "harness: dev broker pid %ld ignored SIGTERM; SIGKILL\n",
                    (long)broker->pid);
            kill(broker->pid, SIGKILL);
            while (waitpid(broker->pid, &wait_status, 0) == -1 && errno == EINTR)
                ;
        }
    }
    free(priv);
}

/* Appends "--topic NAME:PARTITIONS" pairs for "a:3,b:1" to argv; returns the new argc. The
 * strings are strdup'd into topics_copy (one buffer the caller frees). */
static int add_topic_args(const char **argv, int argc, int max_argc, const char *topics,
                          char **topics_copy) {
    *topics_copy = NULL;
    if (!topics || !*topics)
        return argc;
    *topics_copy = strdup(topics);
    if (!*topics_copy)
        h_fatal("out of memory");
    char *save = NULL;
    for (char *topic = strtok_r(*topics_copy, ",", &save); topic;
         topic = strtok_r(NULL, ",", &save)) {
        if (argc + 2 >= max_argc)
            h_fatal("h_broker_start: too many topics in '%s'", topics);
        argv[argc++] = "--topic";
        argv[argc++] = topic;
    }
    return argc;
}

h_broker_t *h_broker_start(int brokers, const char *topics) {
    broker_priv_t *priv = calloc(1, sizeof(*priv));
    if (!priv)
        h_fatal("out of memory");
    h_broker_t *broker = &priv->broker;

    char brokers_arg[16];
    snprintf(brokers_arg, sizeof(brokers_arg), "%d", brokers);
    const char *argv[64] = {h_rkbridge_bin(), "dev-broker", "--brokers", brokers_arg};
    char *topics_copy;
    int argc = add_topic_args(argv, 4, (int)(sizeof(argv) / sizeof(argv[0])), topics, &topics_copy);
    argv[argc] = NULL;

    snprintf(priv->log_path, sizeof(priv->log_path), "%s/dev-broker-%ld-%d.log", h_tmpdir(),
             (long)getpid(), ++broker_counter);
    int log_fd = open(priv->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int ctl_pipe[2], out_pipe[2];
    if (log_fd == -1)
        h_fatal("cannot create %s: %s", priv->log_path, strerror(errno));
    /* O_CLOEXEC: processes started later must not hold the broker's stdin open. */
    if (pipe2(ctl_pipe, O_CLOEXEC) == -1 || pipe2(out_pipe, O_CLOEXEC) == -1)
        h_fatal("pipe: %s", strerror(errno));

    pid_t pid = h_spawn(&(h_spawn_opts_t){.path = argv[0],
                                          .argv = argv,
                                          .stdin_fd = ctl_pipe[0],
                                          .stdout_fd = out_pipe[1],
                                          .stderr_fd = log_fd});
    close(log_fd);
    close(ctl_pipe[0]);
    close(out_pipe[1]);
    free(topics_copy);
    broker->pid = pid;
    broker->ctl_fd = ctl_pipe[1];
    broker->out_fd = out_pipe[0];
    priv->cleanup = h_cleanup_register(broker_cleanup, priv);

    if (read_line(broker->out_fd, broker->bootstrap, sizeof(broker->bootstrap),
                  H_BROKER_REPLY_TIMEOUT_MS) == -1 ||
        !broker->bootstrap[0])
        h_fatal("dev broker did not print its bootstrap address (log: %s)", priv->log_path);
    return broker;
}

int h_broker_ctl(h_broker_t *broker, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(line) - 1)
        h_fatal("h_broker_ctl: command too long");
    line[len++] = '\n';

    for (int written = 0; written < len;) {
        ssize_t n = write(broker->ctl_fd, line + written, (size_t)(len - written));
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            h_fatal("dev broker control channel: %s", strerror(errno));
        written += (int)n;
    }
    line[len - 1] = '\0';

    char reply[1024];
    if (read_line(broker->out_fd, reply, sizeof(reply), H_BROKER_REPLY_TIMEOUT_MS) == -1)
        h_fatal("dev broker did not reply to '%s' (log: %s)", line,
                ((broker_priv_t *)broker)->log_path);
    if (!strcmp(reply, "ok") || !strncmp(reply, "ok ", 3))
        return 0;
    fprintf(stderr, "harness: dev broker: '%s' -> %s\n", line, reply);
    return -1;
}

void h_broker_stop(h_broker_t *broker) {
    if (!broker)
        return;
    broker_priv_t *priv = (broker_priv_t *)broker;
    h_cleanup_cancel(priv->cleanup);
    broker_cleanup(priv);
}

/* ---- Clients ------------------------------------------------------------------------------------
 */

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
        h_fatal("librdkafka config %s=%s: %s", name, value, errstr);
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf) {
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk)
        h_fatal("rd_kafka_new: %s", errstr);
    return rk;
}

/* The producer's opaque: what h_producer_flush checks. Written by the delivery-report
 * callback, which runs on the test thread inside rd_kafka_poll()/rd_kafka_flush(). */
typedef struct producer_state_s {
    long failed_cnt;
    rd_kafka_resp_err_t first_err;
} producer_state_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    producer_state_t *state = opaque;
    if (!msg->err)
        return;
    if (state->failed_cnt++ == 0)
        state->first_err = msg->err;
    fprintf(stderr, "harness: delivery to %s [%d] failed: %s\n", rd_kafka_topic_name(msg->rkt),
            (int)msg->partition, rd_kafka_err2str(msg->err));
}

rd_kafka_t *h_producer_new(const h_broker_t *broker) {
    producer_state_t *state = calloc(1, sizeof(*state));
    if (!state)
        h_fatal("out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", broker->bootstrap);
    conf_set(conf, "enable.idempotence", "true");
    conf_set(conf, "linger.ms", "5");
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, state);
    return client_new(RD_KAFKA_PRODUCER, conf);
}

void h_produce(rd_kafka_t *producer, const char *topic, int32_t partition, const char *key,
               const char *value, ...) {
    /* RD_KAFKA_V_HEADER can only spell a fixed number of headers, so the variadic pairs become
     * one headers list; it belongs to the message once producev succeeds. */
    rd_kafka_headers_t *headers = NULL;
    va_list ap;
    va_start(ap, value);
    const char *name;
    while ((name = va_arg(ap, const char *))) {
        const char *header_value = va_arg(ap, const char *);
        if (!headers)
            headers = rd_kafka_headers_new(4);
        rd_kafka_header_add(headers, name, -1, header_value,
                            header_value ? (ssize_t)strlen(header_value) : 0);
    }
    va_end(ap);

    rd_kafka_resp_err_t err;
    for (;;) {
        err = rd_kafka_producev(
            producer, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, value ? strlen(value) : 0), RD_KAFKA_V_HEADERS(headers),
            RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(producer, 100); /* delivery reports free queue space */
    }
    if (err) {
        if (headers)
            rd_kafka_headers_destroy(headers);
        h_fatal("produce to %s [%d]: %s", topic, (int)partition, rd_kafka_err2str(err));
    }
    rd_kafka_poll(producer, 0);
}

void h_producer_flush(rd_kafka_t *producer) {
    rd_kafka_resp_err_t err = rd_kafka_flush(producer, H_FLUSH_TIMEOUT_MS);
    if (err)
        h_fatal("producer flush: %s (%d messages undelivered)", rd_kafka_err2str(err),
                rd_kafka_outq_len(producer));
    producer_state_t *state = rd_kafka_opaque(producer);
    if (state->failed_cnt)
        h_fatal("%ld deliveries failed, the first with %s", state->failed_cnt,
                rd_kafka_err2name(state->first_err));
}

void h_producer_destroy(rd_kafka_t *producer) {
    if (!producer)
        return;
    producer_state_t *state = rd_kafka_opaque(producer);
    rd_kafka_destroy(producer);
    free(state);
}

/* A consumer that joins no group by itself: group.id is needed for rd_kafka_committed() and
 * for the high-level consumer calls (assign, consumer_poll), but without subscribe() no join
 * happens. */
static rd_kafka_t *consumer_new(const h_broker_t *broker, const char *group) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    conf_set(conf, "bootstrap.servers", broker->bootstrap);
    conf_set(conf, "group.id", group);
    conf_set(conf, "enable.auto.commit", "false");
    conf_set(conf, "enable.auto.offset.store", "false");
    return client_new(RD_KAFKA_CONSUMER, conf);
}

int64_t h_committed(const h_broker_t *broker, const char *group, const char *topic,
                    int32_t partition) {
    rd_kafka_t *rk = consumer_new(broker, group);
    rd_kafka_topic_partition_list_t *partitions = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_t *rktpar =
        rd_kafka_topic_partition_list_add(partitions, topic, partition);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, partitions, H_CLIENT_TIMEOUT_MS);
    if (!err)
        err = rktpar->err;
    if (err)
        h_fatal("committed offset of group %s for %s [%d]: %s", group, topic, (int)partition,
                rd_kafka_err2str(err));
    int64_t committed_offset = rktpar->offset;
    rd_kafka_topic_partition_list_destroy(partitions);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return committed_offset;
}

/* The partition count of topic, or 0 if the broker does not know it. */
static int partition_count(rd_kafka_t *rk, const char *topic) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    const rd_kafka_metadata_t *metadata;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &metadata, H_CLIENT_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (err)
        h_fatal("metadata for %s: %s", topic, rd_kafka_err2str(err));
    int partition_cnt = 0;
    if (metadata->topic_cnt == 1 && !metadata->topics[0].err)
        partition_cnt = metadata->topics[0].partition_cnt;
    else if (metadata->topic_cnt == 1 &&
             metadata->topics[0].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        h_fatal("metadata for %s: %s", topic, rd_kafka_err2str(metadata->topics[0].err));
    rd_kafka_metadata_destroy(metadata);
    return partition_cnt;
}

/* The messages handed to the test keep their consumer alive: librdkafka messages refer to
 * their handle's partitions and buffers, so the handle is destroyed in h_messages_free, after
 * them. */
typedef struct consumed_s {
    rd_kafka_t *rk;
    size_t cnt, cap;
    rd_kafka_message_t *msgs[];
} consumed_t;

static consumed_t *consumed_of(rd_kafka_message_t **msgs) {
    return (consumed_t *)((char *)msgs - offsetof(consumed_t, msgs));
}

size_t h_consume_all(const h_broker_t *broker, const char *topic, rd_kafka_message_t ***msgs) {
    static int consumer_counter;
    char group[128];
    snprintf(group, sizeof(group), "h-consume-all-%ld-%d", (long)getpid(), ++consumer_counter);
    rd_kafka_t *rk = consumer_new(broker, group);

    int partition_cnt = partition_count(rk, topic);
    int64_t *end_offsets = calloc((size_t)partition_cnt + 1, sizeof(*end_offsets));
    int64_t *next_offsets = calloc((size_t)partition_cnt + 1, sizeof(*next_offsets));
    if (!end_offsets || !next_offsets)
        h_fatal("out of memory");
    rd_kafka_topic_partition_list_t *assignment =
        rd_kafka_topic_partition_list_new(partition_cnt > 0 ? partition_cnt : 1);
    int64_t expected_cnt = 0;
    for (int32_t p = 0; p < partition_cnt; p++) {
        int64_t low, high;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, H_CLIENT_TIMEOUT_MS);
        if (err)
            h_fatal("watermarks of %s [%d]: %s", topic, (int)p, rd_kafka_err2str(err));
        next_offsets[p] = low;
        end_offsets[p] = high;
        if (high > low) {
            rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = low;
            expected_cnt += high - low;
        }
    }

    size_t cap = expected_cnt > 0 ? (size_t)expected_cnt : 1;
    consumed_t *consumed = calloc(1, sizeof(*consumed) + cap * sizeof(consumed->msgs[0]));
    if (!consumed)
        h_fatal("out of memory");
    consumed->rk = rk;
    consumed->cap = cap;

    if (assignment->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_assign(rk, assignment);
        if (err)
            h_fatal("assign %s: %s", topic, rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(assignment);

    int64_t until = h_now_ms() + H_CONSUME_TIMEOUT_MS;
    for (int32_t p = 0; p < partition_cnt; p++) {
        while (next_offsets[p] < end_offsets[p]) {
            if (h_now_ms() >= until)
                h_fatal("%s [%d]: read up to offset %lld of %lld within %d ms", topic, (int)p,
                        (long long)next_offsets[p], (long long)end_offsets[p],
                        H_CONSUME_TIMEOUT_MS);
            rd_kafka_message_t *msg = rd_kafka_consumer_poll(rk, 100);
            if (!msg)
                continue;
            if (msg->err) {
                /* Transient (broker down, transport): the consumer recovers by itself. */
                if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    fprintf(stderr, "harness: consuming %s: %s\n", topic,
                            rd_kafka_message_errstr(msg));
                rd_kafka_message_destroy(msg);
                continue;
            }
            int32_t msg_partition = msg->partition;
            /* Keep each offset once, and only up to the watermark queried at the start:
             * records produced since are not part of "everything so far". */
            if (msg_partition < 0 || msg_partition >= partition_cnt ||
                msg->offset < next_offsets[msg_partition] ||
                msg->offset >= end_offsets[msg_partition] || consumed->cnt == consumed->cap) {
                rd_kafka_message_destroy(msg);
                continue;
            }
            next_offsets[msg_partition] = msg->offset + 1;
            consumed->msgs[consumed->cnt++] = msg;
        }
    }
    rd_kafka_assign(rk, NULL); /* stop fetching; the messages stay valid */
    free(end_offsets);
    free(next_offsets);
    *msgs = consumed->msgs;
    return consumed->cnt;
}

void h_messages_free(rd_kafka_message_t **msgs, size_t cnt) {
    if (!msgs)
        return;
    consumed_t *consumed = consumed_of(msgs);
    (void)cnt; /* every message consumed is destroyed, however many the caller looked at */
    for (size_t i = 0; i < consumed->cnt; i++)
        rd_kafka_message_destroy(msgs[i]);
    rd_kafka_consumer_close(consumed->rk);
    rd_kafka_destroy(consumed->rk);
    free(consumed);
}
