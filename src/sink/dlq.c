/*
 * dlq.c — producing failed records to the dead-letter topic (see dlq.h).
 */
#include "sink/dlq.h"

#include "connect/clients.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"
#include "util/log.h"
#include "util/util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kafka Connect's context header names (DeadLetterQueueReporter). */
#define ERRORS_PREFIX "__connect.errors."

struct rkb_dlq_s {
    rkb_dlq_conf_t conf;
    char *topic;
    char *component;
    char *connector_name;
    char *connector_class;
    rkb_producer_t *producer;
    rkb_header_t *headers; /* scratch: original + context headers of one record */
    size_t headers_cap;
};

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_dlq_t *dlq = opaque;
    uint64_t seq = (uint64_t)(uintptr_t)msg_opaque;
    if (err)
        rkb_log_warn(dlq->component, "dead-letter topic %s: delivery failed: %s", dlq->topic,
                     errstr);
    dlq->conf.on_result(seq, err == 0, errstr, dlq->conf.opaque);
}

rkb_dlq_t *rkb_dlq_new(const rkb_dlq_conf_t *conf, char *errstr, size_t errstr_size) {
    rkb_dlq_t *dlq = rkb_calloc(1, sizeof(*dlq));
    dlq->conf = *conf;
    dlq->topic = rkb_strdup(conf->topic);
    dlq->component = rkb_strdup(conf->component);
    dlq->connector_name = rkb_strdup(rkb_config_get(conf->conf, "name"));
    dlq->connector_class = rkb_strdup(rkb_config_get(conf->conf, "connector.class"));
    dlq->producer = rkb_connect_producer_new(conf->conf, conf->task_id, "-dlq", dlq->component,
                                             on_delivery, dlq, errstr, errstr_size);
    if (!dlq->producer) {
        rkb_dlq_destroy(dlq);
        return NULL;
    }
    /* Kafka Connect creates a missing dead-letter topic with one partition. A broker without
     * the Admin API (the dev broker) creates it on the first produce instead. */
    char why[512];
    if (rkb_producer_ensure_topic(dlq->producer, dlq->topic, 1, conf->replication_factor, 2000, why,
                                  sizeof(why)))
        rkb_log_info(dlq->component,
                     "dead-letter topic %s not created (%s); relying on the "
                     "broker to create it",
                     dlq->topic, why);
    return dlq;
}

static rkb_header_t *header_slot(rkb_dlq_t *dlq, size_t i) {
    if (i >= dlq->headers_cap) {
        dlq->headers_cap = dlq->headers_cap ? dlq->headers_cap * 2 : 32;
        while (dlq->headers_cap <= i)
            dlq->headers_cap *= 2;
        dlq->headers = rkb_realloc(dlq->headers, dlq->headers_cap * sizeof(*dlq->headers));
    }
    return &dlq->headers[i];
}

int rkb_dlq_send(rkb_dlq_t *dlq, const rkb_record_t *rec, const char *stage, const char *reason,
                 uint64_t seq, char *errstr, size_t errstr_size) {
    return rkb_dlq_send_with_headers(dlq, rec, NULL, 0, stage, reason, seq, errstr, errstr_size);
}

int rkb_dlq_send_with_headers(rkb_dlq_t *dlq, const rkb_record_t *rec, const rkb_header_t *extra,
                              size_t extra_cnt, const char *stage, const char *reason,
                              uint64_t seq, char *errstr, size_t errstr_size) {
    size_t cnt = rkb_consumer_record_headers(rec, dlq->headers, dlq->headers_cap);
    if (cnt > dlq->headers_cap) {
        header_slot(dlq, cnt + 16);
        cnt = rkb_consumer_record_headers(rec, dlq->headers, dlq->headers_cap);
    }
    for (size_t i = 0; i < extra_cnt; i++)
        *header_slot(dlq, cnt++) = extra[i];

    char partition[16], offset[32], task_id[16];
    if (dlq->conf.context_headers) {
        snprintf(partition, sizeof(partition), "%d", rec->partition);
        snprintf(offset, sizeof(offset), "%lld", (long long)rec->offset);
        snprintf(task_id, sizeof(task_id), "%d", dlq->conf.task_id);
        const char *const context[][2] = {
            {ERRORS_PREFIX "topic", rec->topic},
            {ERRORS_PREFIX "partition", partition},
            {ERRORS_PREFIX "offset", offset},
            {ERRORS_PREFIX "connector.name", dlq->connector_name},
            {ERRORS_PREFIX "task.id", task_id},
            {ERRORS_PREFIX "stage", stage},
            {ERRORS_PREFIX "class.name", dlq->connector_class},
            {ERRORS_PREFIX "exception.class.name", "org.apache.kafka.connect.errors.DataException"},
            {ERRORS_PREFIX "exception.message", reason},
        };
        for (size_t i = 0; i < RKB_ARRAY_SIZE(context); i++) {
            rkb_header_t *h = header_slot(dlq, cnt++);
            h->name = context[i][0];
            h->value = context[i][1];
            h->len = strlen(context[i][1]);
        }
    }
    return rkb_producer_send(dlq->producer, dlq->topic, -1, rec->key, rec->key_len, rec->value,
                             rec->value_len, dlq->headers, cnt, rec->timestamp,
                             (void *)(uintptr_t)seq, errstr, errstr_size);
}

int rkb_dlq_flush(rkb_dlq_t *dlq, int timeout_ms) {
    return rkb_producer_flush(dlq->producer, timeout_ms);
}

void rkb_dlq_destroy(rkb_dlq_t *dlq) {
    if (!dlq)
        return;
    rkb_producer_destroy(dlq->producer, 10000);
    free(dlq->topic);
    free(dlq->component);
    free(dlq->connector_name);
    free(dlq->connector_class);
    free(dlq->headers);
    free(dlq);
}
