/*
 * devbroker.h — `rkbridge dev-broker`: a Kafka broker for development and tests.
 *
 * It hosts librdkafka's mock cluster (librdkafka/rdkafka_mock.h): the real Kafka protocol,
 * consumer groups, idempotent producers, and fault injection. Limits of the mock (librdkafka
 * 2.0.2): ~5 MB kept per partition, the first group join takes 3 s, transactions accepted but
 * not enforced, no CreateTopics (topics come from --topic, the control channel, or
 * auto-creation with 4 partitions by any Metadata request that names the topic, a consumer's
 * with allow.auto.create.topics=false included).
 *
 * Usage: rkbridge dev-broker [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file PATH]
 * Prints the bootstrap address as the first line of stdout (and writes it to PATH), then runs
 * until SIGTERM/SIGINT. Control channel: one command per line on stdin, one reply line on
 * stdout ("ok", "ok <data>" or "error: why"):
 *   topic NAME PARTITIONS            create a topic
 *   down BROKER|all                  broker stops answering (connections closed/refused)
 *   up BROKER|all                    broker answers again
 *   rtt BROKER|all MS                add MS of latency to every response
 *   error API COUNT ERR [ERR...]     the next COUNT requests of API fail with the ERRs in
 *                                    order (API: Produce, Fetch, OffsetCommit, ... or a number;
 *                                    ERR: a Kafka error name like REQUEST_TIMED_OUT or a code)
 *   clear API                        drop errors still queued for API
 *   leader TOPIC PARTITION BROKER    move a partition's leader (-1: none)
 *   help                             list the commands
 * End of stdin does not stop the broker.
 */
#ifndef RKB_KAFKA_DEVBROKER_H
#define RKB_KAFKA_DEVBROKER_H

/* Runs the dev broker; argv[0] is "dev-broker". Returns the process exit code. */
int rkb_devbroker_main(int argc, char **argv);

#endif
