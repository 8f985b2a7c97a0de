/*
 * output.c — producing processed records to their output topic (see output.h). The sink calls
 * it between enrichment (process/enrich.c) and the Redis write.
 */
#include "process/output.h"

#include "connect/clients.h"
#include "convert/convert.h"
#include "kafka/consumer.h"
#include "kafka/producer.h"
#include "util/log.h"
#include "util/util.h"

#include <stdint.h>
#include <stdlib.h>

struct rkb_output_s {
    rkb_output_conf_t conf;
    char *topic;
    char *component;
    rkb_producer_t *producer;
    rkb_header_t *headers; /* scratch: the headers of one record */
    size_t headers_cap;
};

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_output_t *out = opaque;
    if (err)
        rkb_log_warn(out->component, "output topic %s: delivery failed: %s", out->topic,
                     errstr);
    out->conf.on_result((uint64_t)(uintptr_t)msg_opaque, err == 0, errstr, out->conf.opaque);
}

rkb_output_t *rkb_output_new(const rkb_output_conf_t *conf, char *errstr, size_t errstr_size) {
    rkb_output_t *out = rkb_calloc(1, sizeof(*out));
    out->conf = *conf;
    out->topic = rkb_strdup(conf->topic);
    out->component = rkb_strdup(conf->component);
    /* The topic is not created here: an output topic is the user's (auto-created by a broker
     * that allows it). */
    out->producer = rkb_connect_producer_new(conf->conf, conf->task_id, "-output",
                                             out->component, on_delivery, out, errstr,
                                             errstr_size);
    if (!out->producer) {
        rkb_output_destroy(out);
        return NULL;
    }
    return out;
}

int rkb_output_send(rkb_output_t *out, rkb_record_t *rec, uint64_t seq, char *errstr,
                    size_t errstr_size) {
    size_t cnt = rkb_consumer_record_headers(rec, out->headers, out->headers_cap);
    if (cnt > out->headers_cap) {
        out->headers_cap = cnt * 2;
        out->headers = rkb_realloc(out->headers, out->headers_cap * sizeof(*out->headers));
        cnt = rkb_consumer_record_headers(rec, out->headers, out->headers_cap);
    }
    size_t value_len;
    const char *value = rkb_record_value_bytes(rec, &value_len);
    return rkb_producer_send(out->producer, out->topic, -1, rec->key, rec->key_len, value,
                             value_len, out->headers, cnt, rec->timestamp,
                             (void *)(uintptr_t)seq, errstr, errstr_size);
}

int rkb_output_flush(rkb_output_t *out, int timeout_ms) {
    return rkb_producer_flush(out->producer, timeout_ms);
}

void rkb_output_destroy(rkb_output_t *out) {
    if (!out)
        return;
    rkb_producer_destroy(out->producer, 10000);
    free(out->topic);
    free(out->component);
    free(out->headers);
    free(out);
}
