/*
 * reader.c — one pass over a topic without a consumer group (see reader.h).
 *
 * librdkafka's high-level consumer calls (assign, consumer_poll) need a group.id and, with one,
 * look for a group coordinator; this reader needs neither, so it uses the partition-level API:
 * each partition is started at its low watermark on one queue and read until the high
 * watermark queried at the start (records produced meanwhile are not part of the pass). A tail
 * uses the same API on one partition, without an end.
 */
#include "kafka/reader.h"

#include "kafka/kafka_int.h"

#include "util/log.h"
#include "util/util.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* @locality any librdkafka thread: reads only the component string. The reader is given the
 * connector's kafka.* settings, which are mostly the producer's: librdkafka's warning that it
 * ignores those is expected here and only worth a debug line. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (!strcmp(fac, "CONFWARN") && strstr(buf, "is a producer property")) {
        if (rkb_log_get_level() < RKB_LOG_DEBUG)
            return;
        level = 7; /* syslog's LOG_DEBUG */
    }
    rkb_kafka_log(rd_kafka_opaque(rk), level, fac, buf);
}

static rd_kafka_t *reader_new(const rkb_reader_conf_t *conf, char *errstr, size_t errstr_size) {
    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    if (conf->client_id &&
        rkb_kafka_conf_set(kconf, "client.id", conf->client_id, errstr, errstr_size))
        goto fail;
    for (size_t i = 0; i < conf->prop_cnt; i++)
        if (rkb_kafka_conf_set(kconf, conf->props[2 * i], conf->props[2 * i + 1], errstr,
                               errstr_size))
            goto fail;
    /* Not overridable: the end of each partition must be reported, and a pass that belongs to
     * no group has no offsets to store or commit. */
    static const char *const fixed[] = {"enable.partition.eof",     "true",
                                        "enable.auto.commit",       "false",
                                        "enable.auto.offset.store", "false"};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(fixed); i += 2)
        if (rkb_kafka_conf_set(kconf, fixed[i], fixed[i + 1], errstr, errstr_size))
            goto fail;
    rd_kafka_conf_set_opaque(kconf, (void *)(conf->component ? conf->component : "reader"));
    rd_kafka_conf_set_log_cb(kconf, log_cb);

    char why[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, errstr_size, "kafka reader: %s", why);
        goto fail;
    }
    return rk;

fail:
    rd_kafka_conf_destroy(kconf);
    return NULL;
}

/* The topic's partition count: 0 when the broker does not know the topic, -1 on error. */
static int partition_count(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int timeout_ms, char *errstr,
                           size_t errstr_size) {
    const rd_kafka_metadata_t *metadata;
    const char *topic = rd_kafka_topic_name(rkt);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &metadata, timeout_ms);
    if (err) {
        snprintf(errstr, errstr_size, "metadata of %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    int cnt = -1;
    if (metadata->topic_cnt != 1)
        snprintf(errstr, errstr_size, "metadata of %s: %d topics in the answer", topic,
                 metadata->topic_cnt);
    else if (metadata->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        cnt = 0;
    else if (metadata->topics[0].err)
        snprintf(errstr, errstr_size, "metadata of %s: %s", topic,
                 rd_kafka_err2str(metadata->topics[0].err));
    else
        cnt = metadata->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(metadata);
    return cnt;
}

typedef struct part_pass_s {
    int64_t next; /* next offset expected */
    int64_t end;  /* high watermark at the start */
    bool started; /* consume_start succeeded: must be stopped */
} part_pass_t;

int rkb_reader_read_topic(const rkb_reader_conf_t *conf, const char *topic,
                          rkb_reader_record_cb_t *on_record, void *opaque, char *errstr,
                          size_t errstr_size) {
    rd_kafka_t *rk = reader_new(conf, errstr, errstr_size);
    if (!rk)
        return -1;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_queue_t *queue = rd_kafka_queue_new(rk);
    part_pass_t *parts = NULL;
    int rc = -1;

    int part_cnt = partition_count(rk, rkt, conf->timeout_ms, errstr, errstr_size);
    if (part_cnt < 0)
        goto done;
    if (conf->partition_cnt)
        *conf->partition_cnt = part_cnt;
    parts = rkb_calloc(part_cnt > 0 ? (size_t)part_cnt : 1, sizeof(*parts));
    int open_cnt = 0;
    for (int32_t p = 0; p < part_cnt; p++) {
        int64_t low, high;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(rk, topic, p, &low, &high, conf->timeout_ms);
        if (err) {
            snprintf(errstr, errstr_size, "end offsets of %s [%d]: %s", topic, (int)p,
                     rd_kafka_err2str(err));
            goto done;
        }
        parts[p].next = low;
        parts[p].end = high;
        if (high <= low)
            continue;
        if (rd_kafka_consume_start_queue(rkt, p, low, queue) == -1) {
            snprintf(errstr, errstr_size, "read %s [%d]: %s", topic, (int)p,
                     rd_kafka_err2str(rd_kafka_last_error()));
            goto done;
        }
        parts[p].started = true;
        open_cnt++;
    }

    int64_t progress_at = rkb_now_ms();
    while (open_cnt > 0) {
        if (rkb_now_ms() - progress_at > conf->timeout_ms) {
            snprintf(errstr, errstr_size, "read %s: no progress within %d ms", topic,
                     conf->timeout_ms);
            goto done;
        }
        rd_kafka_message_t *msg = rd_kafka_consume_queue(queue, 100);
        if (!msg)
            continue;
        int32_t p = msg->partition;
        if (p < 0 || p >= part_cnt || parts[p].next >= parts[p].end) {
            rd_kafka_message_destroy(msg); /* not ours, or that partition is done */
            continue;
        }
        if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            /* The end came before the watermark (records removed by compaction or
             * transaction markers at the end): this partition is done. */
            parts[p].next = parts[p].end;
        } else if (msg->err) {
            /* Transport errors and the like: librdkafka retries by itself. */
            rkb_log_debug(conf->component, "reading %s [%d]: %s", topic, (int)p,
                          rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            continue;
        } else if (msg->offset >= parts[p].next) {
            if (msg->offset < parts[p].end)
                on_record(p, msg->offset, msg->key, msg->key_len, msg->payload, msg->len, opaque);
            parts[p].next = msg->offset + 1;
        }
        if (parts[p].next >= parts[p].end)
            open_cnt--;
        progress_at = rkb_now_ms();
        rd_kafka_message_destroy(msg);
    }
    rc = 0;

done:
    for (int32_t p = 0; parts && p < part_cnt; p++)
        if (parts[p].started)
            rd_kafka_consume_stop(rkt, p);
    free(parts);
    rd_kafka_queue_destroy(queue);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    return rc;
}

/* ---- Following one partition ----------------------------------------------------------------- */

struct rkb_tail_s {
    const char *component;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    rd_kafka_queue_t *queue;
    int32_t partition;
    int64_t next; /* the next offset expected: older ones (a refetch) are dropped */
};

rkb_tail_t *rkb_tail_new(const rkb_reader_conf_t *conf, const char *topic, int32_t partition,
                         int64_t offset, char *errstr, size_t errstr_size) {
    rd_kafka_t *rk = reader_new(conf, errstr, errstr_size);
    if (!rk)
        return NULL;
    rkb_tail_t *tail = rkb_calloc(1, sizeof(*tail));
    tail->component = conf->component ? conf->component : "reader";
    tail->rk = rk;
    /* An offset that is gone (the topic was recreated, or compacted below it) starts over at
     * the beginning: a tail's reader applies what it reads idempotently. */
    rd_kafka_topic_conf_t *tconf = rd_kafka_topic_conf_new();
    char why[256];
    rd_kafka_topic_conf_set(tconf, "auto.offset.reset", "earliest", why, sizeof(why));
    tail->rkt = rd_kafka_topic_new(rk, topic, tconf);
    tail->queue = rd_kafka_queue_new(rk);
    tail->partition = partition;
    tail->next = offset < 0 ? 0 : offset;
    if (rd_kafka_consume_start_queue(tail->rkt, partition,
                                     offset < 0 ? RD_KAFKA_OFFSET_BEGINNING : offset,
                                     tail->queue) == -1) {
        snprintf(errstr, errstr_size, "read %s [%d]: %s", topic, (int)partition,
                 rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_queue_destroy(tail->queue);
        rd_kafka_topic_destroy(tail->rkt);
        rd_kafka_destroy(rk);
        free(tail);
        return NULL;
    }
    return tail;
}

size_t rkb_tail_poll(rkb_tail_t *tail, rkb_reader_record_cb_t *on_record, void *opaque,
                     size_t max) {
    size_t cnt = 0;
    rd_kafka_message_t *msg;
    while (cnt < max && (msg = rd_kafka_consume_queue(tail->queue, 0))) {
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rkb_log_debug(tail->component, "reading %s [%d]: %s",
                              rd_kafka_topic_name(tail->rkt), (int)tail->partition,
                              rd_kafka_message_errstr(msg));
        } else if (msg->partition == tail->partition && msg->offset >= tail->next) {
            on_record(msg->partition, msg->offset, msg->key, msg->key_len, msg->payload, msg->len,
                      opaque);
            tail->next = msg->offset + 1;
            cnt++;
        }
        rd_kafka_message_destroy(msg);
    }
    return cnt;
}

void rkb_tail_destroy(rkb_tail_t *tail) {
    if (!tail)
        return;
    rd_kafka_consume_stop(tail->rkt, tail->partition);
    rd_kafka_queue_destroy(tail->queue);
    rd_kafka_topic_destroy(tail->rkt);
    rd_kafka_destroy(tail->rk);
    free(tail);
}
