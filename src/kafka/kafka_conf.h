/*
 * kafka_conf.h — checks librdkafka properties for the config module.
 *
 * config/ stores "kafka.X" settings verbatim and must not depend on librdkafka itself; it asks
 * this module whether librdkafka accepts a property, at the moment the user sets it, so that a
 * typo is reported with its file and line instead of when the consumer is created.
 */
#ifndef RKB_KAFKA_KAFKA_CONF_H
#define RKB_KAFKA_KAFKA_CONF_H

#include <stddef.h>

/* Sets name=value on a scratch rd_kafka_conf_t (rd_kafka_conf_set) and throws it away.
 * Returns 0, or -1 with librdkafka's message in errstr (no trailing newline), e.g.
 * 'No such configuration property: "no.such.prop"'. Some properties act when set (for example
 * plugin.library.paths loads the plugins), exactly as they will when the client is created.
 * @locality any thread */
int rkb_kafka_conf_check(const char *name, const char *value, char *errstr, size_t errstr_size);

#endif
