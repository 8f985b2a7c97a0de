/*
 * kafka_conf.c — librdkafka property checks for config/ (see kafka_conf.h).
 */
#include "kafka/kafka_conf.h"
#include "kafka/kafka_int.h"
#include "util/log.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <string.h>

int rkb_kafka_conf_check(const char *name, const char *value, char *errstr, size_t errstr_size) {
    if (errstr_size > 0)
        errstr[0] = '\0';
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_res_t res = rd_kafka_conf_set(conf, name, value, errstr, errstr_size);
    rd_kafka_conf_destroy(conf);
    if (res == RD_KAFKA_CONF_OK)
        return 0;
    /* Some librdkafka messages end with a newline; ours are one line each. */
    size_t len = errstr_size > 0 ? strlen(errstr) : 0;
    while (len > 0 && (errstr[len - 1] == '\n' || errstr[len - 1] == ' '))
        errstr[--len] = '\0';
    return -1;
}

int rkb_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                       size_t errstr_size) {
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errstr_size, "kafka.%s: %s", name, why);
        return -1;
    }
    return 0;
}

/*
 * Every librdkafka client rkbridge creates (consumers, producers, readers, the dev broker) sets
 * a log callback that ends here, with the component of its owner ("pageviews/0"), so that its
 * lines carry the connector and task like ours. librdkafka emits debug lines (syslog level 7)
 * only when kafka.debug (or kafka.log_level=7) asked for them, so those are written whatever
 * RKB_LOG_LEVEL says.
 *
 * @locality any librdkafka thread: component must outlive the client (owners free it after
 * rd_kafka_destroy).
 */
void rkb_kafka_log(const char *component, int level, const char *fac, const char *buf) {
    if (!component)
        component = "kafka";
    if (level >= 7) {
        rkb_log_always(RKB_LOG_DEBUG, component, "librdkafka %s: %s", fac, buf);
        return;
    }
    rkb_log_level_t lvl = level <= 3 ? RKB_LOG_ERROR : level <= 4 ? RKB_LOG_WARN : RKB_LOG_INFO;
    rkb_log(lvl, component, "librdkafka %s: %s", fac, buf);
}
