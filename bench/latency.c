/*
 * latency.c — bench/run's end-to-end latency probe: produce → visible in Redis.
 *
 * One process holds both ends, so every timestamp comes from one CLOCK_MONOTONIC: a producer
 * (librdkafka) writes N records to TOPIC at a steady RATE per second, keyed 0 .. N-1, and a
 * hiredis connection subscribed to Redis's keyspace event channel for SET
 * (`__keyevent@0__:set`, enabled here with CONFIG SET notify-keyspace-events E$) sees each key
 * the moment Redis has executed the write a sink made of that record. The sink under test runs
 * elsewhere (bench/run starts rkbridge before this tool) and must write record key K as
 * PREFIX + K, e.g. rkbridge's default `${topic}:${key}`.
 *
 * Per record, two figures:
 *   total  = the time its SET was announced − the time just before it was handed to
 *            rd_kafka_producev (the producer's linger and the broker's append are part of it);
 *   after_dr = the time its SET was announced − the time its delivery report (the broker's
 *            acknowledgement) reached the producer: roughly the consumer's and the sink's share
 *            (it can be below zero when the sink is faster than the acknowledgement's way back).
 * Prints, on stdout, one line per figure:
 *   total sent N seen M p50_ms P p90_ms P p99_ms P max_ms P
 *   after_dr sent N seen M p50_ms P p90_ms P p99_ms P max_ms P
 * (M < N when some never showed up within 10 s of the last produce); errors on stderr, exit 1.
 * Measures, asserts nothing.
 *
 *   latency BOOTSTRAP TOPIC REDIS_PORT PREFIX [RECORDS [RATE [LINGER_MS]]]
 *   defaults: 100000 records at 10000/s, linger.ms 5 (librdkafka's default); acks=all
 *
 * Built by bench/run with a plain cc line (not part of the CMake build).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

/* How long to wait for the last records to show up after the last was produced. */
#define WAIT_AFTER_LAST_NS (10LL * 1000 * 1000 * 1000)
/* A message here ends the receiver (it blocks in a read without a timeout). */
#define STOP_CHANNEL "rkb-latency:stop"

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {.tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Parses a whole number in [min, max] or exits. */
static long long parse_num(const char *arg, const char *what, long long min, long long max) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < min || v > max) {
        fprintf(stderr, "latency: %s: expected a whole number in %lld .. %lld, got '%s'\n", what,
                min, max, arg);
        exit(2);
    }
    return v;
}

typedef struct {
    redisContext *redis; /* subscribed; owned by the receiver thread once it runs */
    const char *prefix;
    size_t prefix_len;
    long long records;
    _Atomic int64_t *seen_ns; /* per record: when its SET was announced, 0 not yet */
    atomic_llong seen;
    atomic_bool stopped; /* the receiver has ended */
} probe_t;

/* The receiver thread: reads keyspace events until a message on STOP_CHANNEL (or an error)
 * and stamps the first announcement of each record's key. */
static void *receive(void *arg) {
    probe_t *p = arg;
    for (;;) {
        redisReply *reply = NULL;
        if (redisGetReply(p->redis, (void **)&reply) != REDIS_OK) {
            fprintf(stderr, "latency: redis: %s\n", p->redis->errstr);
            break;
        }
        int64_t t = now_ns();
        /* ["message", channel, key] */
        bool message = reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 &&
                       reply->element[1]->type == REDIS_REPLY_STRING &&
                       reply->element[2]->type == REDIS_REPLY_STRING;
        if (message && !strcmp(reply->element[1]->str, STOP_CHANNEL)) {
            freeReplyObject(reply);
            break;
        }
        if (message && reply->element[2]->len > p->prefix_len &&
            !memcmp(reply->element[2]->str, p->prefix, p->prefix_len)) {
            char *end;
            long long seq = strtoll(reply->element[2]->str + p->prefix_len, &end, 10);
            int64_t zero = 0;
            if (end == reply->element[2]->str + reply->element[2]->len && seq >= 0 &&
                seq < p->records && atomic_compare_exchange_strong(&p->seen_ns[seq], &zero, t))
                atomic_fetch_add(&p->seen, 1);
        }
        freeReplyObject(reply);
    }
    atomic_store(&p->stopped, true);
    return NULL;
}

/* Delivery reports: the record's sequence number is its opaque.
 * @locality the main thread, from rd_kafka_poll/flush */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    int64_t *acked_ns = opaque;
    if (!msg->err)
        acked_ns[(intptr_t)msg->_private] = now_ns();
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The value at quantile q of sorted[0 .. n-1] (nearest rank), in milliseconds. */
static double quantile_ms(const int64_t *sorted, long long n, double q) {
    long long rank = (long long)(q * (double)n + 0.999999);
    if (rank < 1)
        rank = 1;
    return (double)sorted[rank - 1] / 1e6;
}

/* Prints "NAME sent N seen M p50_ms .. p90_ms .. p99_ms .. max_ms .." of seen_ns[i] − from_ns[i]
 * over the records both have; scratch holds N values. */
static void print_quantiles(const char *name, long long records, _Atomic int64_t *seen_ns,
                            const int64_t *from_ns, int64_t *scratch) {
    long long seen = 0;
    for (long long i = 0; i < records; i++)
        if (seen_ns[i] && from_ns[i])
            scratch[seen++] = seen_ns[i] - from_ns[i];
    printf("%s sent %lld seen %lld", name, records, seen);
    if (seen) {
        qsort(scratch, (size_t)seen, sizeof *scratch, cmp_i64);
        printf(" p50_ms %.2f p90_ms %.2f p99_ms %.2f max_ms %.2f", quantile_ms(scratch, seen, 0.50),
               quantile_ms(scratch, seen, 0.90), quantile_ms(scratch, seen, 0.99),
               quantile_ms(scratch, seen, 1.0));
    }
    printf("\n");
}

static redisContext *redis_connect(int port) {
    redisContext *c = redisConnect("127.0.0.1", port);
    if (!c || c->err) {
        fprintf(stderr, "latency: redis 127.0.0.1:%d: %s\n", port, c ? c->errstr : "out of memory");
        exit(1);
    }
    return c;
}

int main(int argc, char **argv) {
    if (argc < 5 || argc > 8) {
        fprintf(stderr, "usage: latency BOOTSTRAP TOPIC REDIS_PORT PREFIX [RECORDS [RATE "
                        "[LINGER_MS]]]\n");
        return 2;
    }
    const char *bootstrap = argv[1], *topic = argv[2];
    int port = (int)parse_num(argv[3], "REDIS_PORT", 1, 65535);
    probe_t p = {.prefix = argv[4], .prefix_len = strlen(argv[4])};
    p.records = argc > 5 ? parse_num(argv[5], "RECORDS", 1, 100000000) : 100000;
    long long rate = argc > 6 ? parse_num(argv[6], "RATE", 1, 10000000) : 10000;
    const char *linger_ms = argc > 7 ? argv[7] : "5";
    parse_num(linger_ms, "LINGER_MS", 0, 10000);

    int64_t *sent_ns = calloc((size_t)p.records, sizeof *sent_ns);
    int64_t *acked_ns = calloc((size_t)p.records, sizeof *acked_ns);
    int64_t *latency_ns = calloc((size_t)p.records, sizeof *latency_ns);
    p.seen_ns = calloc((size_t)p.records, sizeof *p.seen_ns);
    if (!sent_ns || !acked_ns || !latency_ns || !p.seen_ns) {
        fprintf(stderr, "latency: out of memory\n");
        return 1;
    }

    /* Subscribe first: an event sent before SUBSCRIBE is answered is lost for good. */
    redisContext *ctl = redis_connect(port);
    redisReply *reply = redisCommand(ctl, "CONFIG SET notify-keyspace-events E$");
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "latency: CONFIG SET notify-keyspace-events: %s\n",
                reply ? reply->str : ctl->errstr);
        return 1;
    }
    freeReplyObject(reply);
    p.redis = redis_connect(port);
    reply = redisCommand(p.redis, "SUBSCRIBE __keyevent@0__:set " STOP_CHANNEL);
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "latency: SUBSCRIBE: %s\n", reply ? "unexpected reply" : p.redis->errstr);
        return 1;
    }
    freeReplyObject(reply);
    if (redisGetReply(p.redis, (void **)&reply) != REDIS_OK) { /* the second channel's */
        fprintf(stderr, "latency: SUBSCRIBE: %s\n", p.redis->errstr);
        return 1;
    }
    freeReplyObject(reply);
    pthread_t receiver;
    if (pthread_create(&receiver, NULL, receive, &p)) {
        fprintf(stderr, "latency: cannot start the receiver thread\n");
        return 1;
    }

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "linger.ms", linger_ms, errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "acks", "all", errstr, sizeof errstr)) {
        fprintf(stderr, "latency: %s\n", errstr);
        return 1;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, acked_ns);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "latency: %s\n", errstr);
        return 1;
    }
    /* Connected and the topic's leaders known before the clock starts: the first records
     * should not carry the producer's own start-up. */
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    if (err) {
        fprintf(stderr, "latency: metadata of %s: %s\n", topic, rd_kafka_err2str(err));
        return 1;
    }
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);

    /* Steady rate: every 100 µs, produce the records due by now. */
    int64_t start = now_ns();
    for (long long seq = 0; seq < p.records;) {
        long long due = (long long)((now_ns() - start) * (double)rate / 1e9) + 1;
        if (due > p.records)
            due = p.records;
        for (; seq < due; seq++) {
            char key[24], value[64];
            int key_len = snprintf(key, sizeof key, "%lld", seq);
            int value_len = snprintf(value, sizeof value, "{\"seq\":%lld}", seq);
            sent_ns[seq] = now_ns();
            while ((err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                            RD_KAFKA_V_KEY(key, (size_t)key_len),
                                            RD_KAFKA_V_VALUE(value, (size_t)value_len),
                                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                            RD_KAFKA_V_OPAQUE((void *)(intptr_t)seq),
                                            RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                rd_kafka_poll(rk, 1);
            if (err) {
                fprintf(stderr, "latency: produce: %s\n", rd_kafka_err2str(err));
                return 1;
            }
        }
        rd_kafka_poll(rk, 0);
        sleep_ns(100 * 1000);
    }
    int64_t produced_by = now_ns();
    if (rd_kafka_flush(rk, 10000))
        fprintf(stderr, "latency: some records were not delivered within 10 s\n");

    while (atomic_load(&p.seen) < p.records && !atomic_load(&p.stopped) &&
           now_ns() - produced_by < WAIT_AFTER_LAST_NS)
        sleep_ns(10 * 1000 * 1000);
    if ((reply = redisCommand(ctl, "PUBLISH " STOP_CHANNEL " stop")))
        freeReplyObject(reply);
    pthread_join(receiver, NULL);
    rd_kafka_destroy(rk);
    reply = redisCommand(ctl, "CONFIG SET notify-keyspace-events %s", "");
    if (reply)
        freeReplyObject(reply);
    redisFree(ctl);
    redisFree(p.redis);

    print_quantiles("total", p.records, p.seen_ns, sent_ns, latency_ns);
    print_quantiles("after_dr", p.records, p.seen_ns, acked_ns, latency_ns);
    printf("produce_s %.2f\n", (double)(produced_by - start) / 1e9);
    free(sent_ns);
    free(acked_ns);
    free(latency_ns);
    free((void *)p.seen_ns);
    return 0;
}
