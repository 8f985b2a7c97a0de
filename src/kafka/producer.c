/*
 * producer.c — the idempotent librdkafka producer rkbridge writes to Kafka with (see producer.h).
 *
 * Records go in through rkb_producer_send (copied into librdkafka's queue); librdkafka's threads
 * batch and send them, retrying on their own; each record's outcome comes back once, as a
 * delivery report served by rkb_producer_poll/flush/destroy on the owner's thread and passed to
 * the owner's on_delivery. SEMANTICS.md §3.1.
 */
#include "kafka/producer.h"

#include "kafka/kafka_int.h"

#include "util/log.h"
#include "util/util.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How long rkb_producer_send waits out a full local queue by serving delivery reports. */
#define QUEUE_FULL_WAIT_MS 10000
/* How long destroy waits for the delivery reports of purged records. Purging fails them at
 * once (rd_kafka_purge waits for the broker threads), so this only bounds the unexpected. */
#define PURGE_DRAIN_MS 5000

/* A topic this producer has sent to, with librdkafka's handle for it: kept for the producer's
 * life, so that a record names its topic by handle rather than by a name librdkafka looks up
 * (under its handle lock) for every record. */
typedef struct topic_ref_s {
    char *name;
    rd_kafka_topic_t *rkt;
} topic_ref_t;

struct rkb_producer_s {
    rd_kafka_t *rk;
    char *component;
    rkb_delivery_cb_t *on_delivery;
    void *opaque;
    topic_ref_t *topics;
    size_t topic_cnt;
    size_t last_topic; /* where the previous lookup found its topic */
};

/* @locality any librdkafka thread: reads only the immutable component. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const rkb_producer_t *owner = rd_kafka_opaque(rk);
    rkb_kafka_log(owner ? owner->component : NULL, level, fac, buf);
}

/*
 * @locality the owner's thread, from rd_kafka_poll/flush.
 * Transport and all-brokers-down errors are retried by librdkafka within message.timeout.ms;
 * records that cannot make it get a failed delivery report, so these are only logged. A fatal
 * error (idempotence state lost, e.g. a broker dropped the producer id) ends the producer:
 * librdkafka fails the queued records and refuses new ones, and rkb_producer_send reports it.
 */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    rkb_producer_t *p = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[512];
        rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(rk, why, sizeof(why));
        rkb_log_error(p->component,
                      "kafka producer: fatal error %s: %s; no more records can be sent",
                      rd_kafka_err2name(fatal_err), why);
        return;
    }
    rkb_log_warn(p->component, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* @locality the owner's thread, from rd_kafka_poll/flush (and purge in destroy). */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    rkb_producer_t *p = opaque;
    if (msg->err)
        rkb_log_debug(p->component, "delivery to %s [%d] failed: %s", rd_kafka_topic_name(msg->rkt),
                      (int)msg->partition, rd_kafka_err2str(msg->err));
    if (p->on_delivery)
        p->on_delivery(msg->_private, msg->err, rd_kafka_err2str(msg->err), p->opaque);
}

/*
 * rd_kafka_new checks how properties fit together (acks=1 with idempotence, linger.ms above
 * message.timeout.ms, ...) and names the first property at fault in backquotes:
 * "`acks` must be set to `all` when `enable.idempotence` is true". That name becomes the
 * "kafka.<prop>" prefix, so the user sees which setting to change.
 */
static void new_error(const char *why, char *errstr, size_t errstr_size) {
    const char *start = strchr(why, '`');
    const char *end = start ? strchr(start + 1, '`') : NULL;
    const char *hint =
        strstr(why, "enable.idempotence") ? " (rkbridge's producer is always idempotent)" : "";
    if (start && end && end > start + 1)
        snprintf(errstr, errstr_size, "kafka.%.*s: %s%s", (int)(end - start - 1), start + 1, why,
                 hint);
    else
        snprintf(errstr, errstr_size, "kafka producer: %s%s", why, hint);
}

rkb_producer_t *rkb_producer_new(const rkb_producer_conf_t *conf, char *errstr,
                                 size_t errstr_size) {
    rkb_producer_t *p = rkb_calloc(1, sizeof(*p));
    p->component = rkb_strdup(conf->component ? conf->component : "producer");
    p->on_delivery = conf->on_delivery;
    p->opaque = conf->opaque;

    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    /* rkbridge's default: a few ms of batching. message.timeout.ms stays at librdkafka's
     * 300000 unless the user sets it. The user's kafka.* settings below override these. */
    static const char *const defaults[] = {"linger.ms", "5"};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(defaults); i += 2)
        if (rkb_kafka_conf_set(kconf, defaults[i], defaults[i + 1], errstr, errstr_size))
            goto fail;
    if (conf->client_id &&
        rkb_kafka_conf_set(kconf, "client.id", conf->client_id, errstr, errstr_size))
        goto fail;
    for (size_t i = 0; i < conf->prop_cnt; i++) {
        const char *name = conf->props[2 * i], *value = conf->props[2 * i + 1];
        if (!strcmp(name, "enable.idempotence") && strcasecmp(value, "true"))
            rkb_log_warn(p->component,
                         "kafka.enable.idempotence=%s ignored: the producer is always idempotent",
                         value);
        if (rkb_kafka_conf_set(kconf, name, value, errstr, errstr_size))
            goto fail;
    }
    /* Not overridable: a delivered record must be written once and in order even when
     * librdkafka retried it (SEMANTICS.md §3.1). This also forces acks=all. */
    if (rkb_kafka_conf_set(kconf, "enable.idempotence", "true", errstr, errstr_size))
        goto fail;

    rd_kafka_conf_set_opaque(kconf, p);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_dr_msg_cb(kconf, dr_msg_cb);

    char why[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, why, sizeof(why));
    if (!p->rk) {
        new_error(why, errstr, errstr_size);
        goto fail; /* kconf is not consumed on failure */
    }
    return p;

fail:
    rd_kafka_conf_destroy(kconf);
    free(p->component);
    free(p);
    return NULL;
}

/* The handle of topic, created on first use (which also starts librdkafka's asynchronous
 * metadata query for it). NULL when librdkafka refuses the name (errstr). */
static rd_kafka_topic_t *topic_handle(rkb_producer_t *p, const char *topic, char *errstr,
                                      size_t errstr_size) {
    if (p->last_topic < p->topic_cnt && !strcmp(p->topics[p->last_topic].name, topic))
        return p->topics[p->last_topic].rkt;
    for (size_t i = 0; i < p->topic_cnt; i++) {
        if (!strcmp(p->topics[i].name, topic)) {
            p->last_topic = i;
            return p->topics[i].rkt;
        }
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!rkt) {
        snprintf(errstr, errstr_size, "produce to %s: %s", topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return NULL;
    }
    p->topics = rkb_realloc(p->topics, (p->topic_cnt + 1) * sizeof(*p->topics));
    p->topics[p->topic_cnt] = (topic_ref_t){.name = rkb_strdup(topic), .rkt = rkt};
    p->last_topic = p->topic_cnt++;
    return rkt;
}

int rkb_producer_prepare_topic(rkb_producer_t *p, const char *topic, int timeout_ms, char *errstr,
                               size_t errstr_size) {
    rd_kafka_topic_t *rkt = topic_handle(p, topic, errstr, errstr_size);
    if (!rkt)
        return -1;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    if (err) {
        snprintf(errstr, errstr_size, "metadata of topic %s: %s", topic, rd_kafka_err2str(err));
        return -1;
    }
    int rc = 0;
    if (md->topic_cnt != 1 || md->topics[0].err) {
        snprintf(errstr, errstr_size, "metadata of topic %s: %s", topic,
                 md->topic_cnt == 1 ? rd_kafka_err2str(md->topics[0].err) : "not in the answer");
        rc = -1;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

/* A librdkafka header list for the record (owned by the caller until producev succeeds). */
static rd_kafka_headers_t *headers_new(const rkb_header_t *headers, size_t header_cnt) {
    if (!header_cnt)
        return NULL;
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(header_cnt);
    for (size_t i = 0; i < header_cnt; i++)
        rd_kafka_header_add(hdrs, headers[i].name, -1, headers[i].value,
                            headers[i].value ? (ssize_t)headers[i].len : 0);
    return hdrs;
}

/* Fills errstr and returns the error when the producer has failed fatally, else returns 0. */
static rd_kafka_resp_err_t fatal_error(rkb_producer_t *p, const char *topic, char *errstr,
                                       size_t errstr_size) {
    char why[512];
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(p->rk, why, sizeof(why));
    if (fatal_err)
        snprintf(errstr, errstr_size, "produce to %s: the producer failed fatally: %s: %s", topic,
                 rd_kafka_err2name(fatal_err), why);
    return fatal_err;
}

int rkb_producer_send(rkb_producer_t *p, const char *topic, int32_t partition, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      const rkb_header_t *headers, size_t header_cnt, int64_t timestamp,
                      void *msg_opaque, char *errstr, size_t errstr_size) {
    if (fatal_error(p, topic, errstr, errstr_size))
        return -1;
    rd_kafka_topic_t *rkt = topic_handle(p, topic, errstr, errstr_size);
    if (!rkt)
        return -1;

    rd_kafka_headers_t *hdrs = headers_new(headers, header_cnt);
    int64_t until = rkb_now_ms() + QUEUE_FULL_WAIT_MS;
    rd_kafka_resp_err_t err;
    for (;;) {
        /* librdkafka reads timestamp 0 as "now", so -1 (and 0) both mean now. */
        err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_RKT(rkt),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? key_len : 0),
            RD_KAFKA_V_VALUE((void *)value, value ? value_len : 0),
            RD_KAFKA_V_TIMESTAMP(timestamp > 0 ? timestamp : 0), RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE(msg_opaque), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || rkb_now_ms() >= until)
            break;
        /* Serving delivery reports frees queue space (and runs on_delivery from here). */
        rd_kafka_poll(p->rk, 100);
    }
    if (!err)
        return 0; /* the message owns hdrs now */

    if (hdrs)
        rd_kafka_headers_destroy(hdrs);
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        fatal_error(p, topic, errstr, errstr_size);
    } else if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        snprintf(errstr, errstr_size,
                 "produce to %s: local queue still full after %d ms (%d records outstanding)",
                 topic, QUEUE_FULL_WAIT_MS, rd_kafka_outq_len(p->rk));
    } else if (partition >= 0) {
        snprintf(errstr, errstr_size, "produce to %s [%d]: %s", topic, (int)partition,
                 rd_kafka_err2str(err));
    } else {
        snprintf(errstr, errstr_size, "produce to %s: %s", topic, rd_kafka_err2str(err));
    }
    return -1;
}

void rkb_producer_poll(rkb_producer_t *p, int timeout_ms) {
    rd_kafka_poll(p->rk, timeout_ms);
}

int rkb_producer_flush(rkb_producer_t *p, int timeout_ms) {
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

int rkb_producer_outstanding(rkb_producer_t *p) {
    return rd_kafka_outq_len(p->rk);
}

int rkb_producer_fatal_error(rkb_producer_t *p, char *errstr, size_t errstr_size) {
    char why[512];
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(p->rk, why, sizeof(why));
    if (fatal_err)
        snprintf(errstr, errstr_size, "%s: %s", rd_kafka_err2name(fatal_err), why);
    return fatal_err;
}

char *rkb_producer_cluster_id(rkb_producer_t *p, int timeout_ms) {
    char *id = rd_kafka_clusterid(p->rk, timeout_ms);
    char *copy = id ? rkb_strdup(id) : NULL;
    if (id)
        rd_kafka_mem_free(p->rk, id);
    return copy;
}

/* What a failed CreateTopics may mean, for the error message. librdkafka sends CreateTopics
 * to the controller only, so a broker that names no usable controller (the dev broker: its
 * metadata says ControllerId 0, and its brokers are 1..N) never gets the request, and the
 * call ends in a timeout rather than an "unsupported" error. */
static const char *create_topics_hint(rd_kafka_resp_err_t err) {
    if (err == RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE)
        return " (the broker has no CreateTopics API; create the topic there, or let the first "
               "record auto-create it)";
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        return " (no controller answered CreateTopics in time; a broker without it, such as the "
               "dev broker, never does: create the topic there, or let the first record "
               "auto-create it)";
    return "";
}

/* Reads the one topic result of a CreateTopics event. Returns 0 (created or already there)
 * or -1 with errstr. */
static int create_topics_result(rd_kafka_event_t *rkev, const char *topic, char *errstr,
                                size_t errstr_size) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(rkev);
    if (err) {
        snprintf(errstr, errstr_size, "create topic %s: %s%s", topic,
                 rd_kafka_event_error_string(rkev), create_topics_hint(err));
        return -1;
    }
    size_t result_cnt = 0;
    const rd_kafka_topic_result_t **results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(rkev), &result_cnt);
    if (result_cnt != 1) {
        snprintf(errstr, errstr_size, "create topic %s: %zu results in the answer", topic,
                 result_cnt);
        return -1;
    }
    err = rd_kafka_topic_result_error(results[0]);
    if (err && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char *why = rd_kafka_topic_result_error_string(results[0]);
        snprintf(errstr, errstr_size, "create topic %s: %s%s", topic,
                 why && *why ? why : rd_kafka_err2str(err), create_topics_hint(err));
        return -1;
    }
    return 0;
}

int rkb_producer_ensure_topic(rkb_producer_t *p, const char *topic, int partitions,
                              int replication_factor, int timeout_ms, char *errstr,
                              size_t errstr_size) {
    return rkb_producer_ensure_topic_with(p, topic, partitions, replication_factor, NULL, 0,
                                          timeout_ms, errstr, errstr_size);
}

int rkb_producer_ensure_topic_with(rkb_producer_t *p, const char *topic, int partitions,
                                   int replication_factor, const char *const *configs,
                                   size_t config_cnt, int timeout_ms, char *errstr,
                                   size_t errstr_size) {
    char why[512];
    rd_kafka_NewTopic_t *new_topic = rd_kafka_NewTopic_new(topic, partitions > 0 ? partitions : 1,
                                                           replication_factor, why, sizeof(why));
    if (!new_topic) {
        snprintf(errstr, errstr_size, "create topic %s: %s", topic, why);
        return -1;
    }
    for (size_t i = 0; i < config_cnt; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_NewTopic_set_config(new_topic, configs[2 * i], configs[2 * i + 1]);
        if (err) {
            snprintf(errstr, errstr_size, "create topic %s: %s=%s: %s", topic, configs[2 * i],
                     configs[2 * i + 1], rd_kafka_err2str(err));
            rd_kafka_NewTopic_destroy(new_topic);
            return -1;
        }
    }
    rd_kafka_AdminOptions_t *options =
        rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* The whole call (finding the controller included) ends by timeout_ms: librdkafka then
     * answers with _TIMED_OUT. The operation timeout stays 0, so a real controller answers as
     * soon as it has started the creation instead of holding the request. */
    if (rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "create topic %s: %s", topic, why);
        rd_kafka_AdminOptions_destroy(options);
        rd_kafka_NewTopic_destroy(new_topic);
        return -1;
    }
    rd_kafka_queue_t *queue = rd_kafka_queue_new(p->rk);
    rd_kafka_CreateTopics(p->rk, &new_topic, 1, options, queue);
    rd_kafka_AdminOptions_destroy(options);
    rd_kafka_NewTopic_destroy(new_topic);

    /* The queue is ours alone, so the first event is the answer. Should librdkafka's own
     * timeout lose the race with this one, the request is abandoned: destroying the queue
     * makes librdkafka drop the late answer. */
    int rc = -1;
    rd_kafka_event_t *rkev = rd_kafka_queue_poll(queue, timeout_ms);
    if (rkev) {
        rc = create_topics_result(rkev, topic, errstr, errstr_size);
        rd_kafka_event_destroy(rkev);
    } else {
        snprintf(errstr, errstr_size, "create topic %s: no answer within %d ms%s", topic,
                 timeout_ms, create_topics_hint(RD_KAFKA_RESP_ERR__TIMED_OUT));
    }
    rd_kafka_queue_destroy(queue);
    return rc;
}

/*
 * Shutdown order (SEMANTICS.md §3.1): give outstanding records timeout_ms to be delivered,
 * then purge what is left, queued and in flight, and serve the purge's delivery reports, so
 * that the owner hears of every record (and, e.g., leaves its stream entry un-acknowledged)
 * before the handle is gone: rd_kafka_destroy would drop them without a report.
 */
void rkb_producer_destroy(rkb_producer_t *p, int timeout_ms) {
    if (!p)
        return;
    if (p->rk) {
        rd_kafka_flush(p->rk, timeout_ms);
        int left = rd_kafka_outq_len(p->rk);
        if (left > 0) {
            rkb_log_warn(p->component,
                         "%d records not delivered within %d ms; failing them before close", left,
                         timeout_ms);
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            int64_t until = rkb_now_ms() + PURGE_DRAIN_MS;
            rd_kafka_poll(p->rk, 0);
            while ((left = rd_kafka_outq_len(p->rk)) > 0 && rkb_now_ms() < until)
                rd_kafka_poll(p->rk, 10);
            if (left > 0)
                rkb_log_error(p->component, "%d records still without a delivery report at close",
                              left);
        }
        for (size_t i = 0; i < p->topic_cnt; i++)
            rd_kafka_topic_destroy(p->topics[i].rkt);
        rd_kafka_destroy(p->rk);
    }
    for (size_t i = 0; i < p->topic_cnt; i++)
        free(p->topics[i].name);
    free(p->topics);
    free(p->component);
    free(p);
}
