/*
 * source_util.h — small pieces the Redis → Kafka source tasks share: waiting out a backoff while
 * delivery reports keep being served, the shutdown flush, and what a Kafka topic name may hold.
 *
 * @locality: the task's thread (the one that owns the producer).
 */
#ifndef RKB_SOURCE_SOURCE_UTIL_H
#define RKB_SOURCE_SOURCE_UTIL_H

#include "kafka/producer.h"

#include <stdbool.h>
#include <stdint.h>

/* Waits out the backoff before retry number attempt (0: the first retry, at once; then capped
 * exponential backoff from 100 ms up to max_ms), serving the producer's delivery reports
 * meanwhile. Returns early when *stop becomes true. */
void rkb_source_backoff(rkb_producer_t *producer, int attempt, int64_t max_ms,
                        const volatile int *stop);

/* Shutdown: waits up to timeout_ms for every outstanding delivery report, and logs a warning
 * under component if some did not come. Returns how many did not. */
int rkb_source_flush(rkb_producer_t *producer, const char *component, int timeout_ms);

/* True for the characters Kafka allows in a topic name: letters, digits, '.', '_' and '-'. */
bool rkb_source_is_topic_char(char c);

#endif
