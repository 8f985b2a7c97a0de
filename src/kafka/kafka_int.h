/*
 * kafka_int.h — shared by the kafka/ module's clients (consumer.c, producer.c); not for other
 * modules, which see librdkafka only through kafka/'s headers.
 */
#ifndef RKB_KAFKA_KAFKA_INT_H
#define RKB_KAFKA_KAFKA_INT_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

/* Sets one librdkafka property; on failure errstr reads "kafka.NAME: why". Returns 0 or -1. */
int rkb_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char *errstr,
                       size_t errstr_size);

/* Routes one librdkafka log line (syslog level) to rkbridge's logger under component
 * ("CONNECTOR/TASK" of the client's owner): every client's log callback calls this. */
void rkb_kafka_log(const char *component, int level, const char *fac, const char *buf);

#endif
