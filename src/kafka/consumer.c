/*
 * consumer.c — librdkafka high-level consumer with manual offset store (see consumer.h).
 */
#include "kafka/consumer.h"

#include "kafka/kafka_int.h"

#include "metrics/metrics.h"
#include "util/log.h"
#include "util/util.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rkb_consumer_s {
    rd_kafka_t *rk;
    char *component;
    rkb_consumer_handlers_t handlers;
    bool paused; /* rkb_consumer_pause_all */
    bool held;   /* rkb_consumer_hold */
    bool cooperative;
    bool assigned_once; /* a first assignment came (even an empty one): see rkb_consumer_close */
    rkb_task_metrics_t *metrics; /* of the task that created it, or NULL */

    /* Fetch wake-up (see kick_fetcher). */
    rd_kafka_queue_t *queue;   /* the consumer queue, to read its length */
    int64_t queued_min_msgs;   /* effective queued.min.messages */
    int64_t queued_max_bytes;  /* effective queued.max.messages.kbytes, in bytes */
    size_t queued_high;        /* most messages seen queued since the last kick */
    double avg_msg_bytes;      /* running mean of key + value bytes per message */
    /* The waker thread (see kick_fetcher); wake and wake_cnt are its own. */
    pthread_t waker;
    bool waker_started;
    pthread_mutex_t wake_lock;
    pthread_cond_t wake_cond;
    bool wake_requested; /* under wake_lock */
    bool wake_stale;     /* under wake_lock: the assignment changed since wake was made */
    bool waker_stop;     /* under wake_lock */
    struct {
        char *topic;
        int32_t partition;
    } *wake; /* one assigned partition per leader broker */
    size_t wake_cnt;
    int64_t wake_refreshed_ms;
};

/* Statistics (statistics.interval.ms) come from rd_kafka_consumer_poll on the owner's thread;
 * the consumer lag of the assigned partitions goes to the task's metrics. Returns 0: librdkafka
 * frees json. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t json_len, void *opaque) {
    rkb_consumer_t *c = opaque;
    rkb_task_metrics_consumer_stats(c->metrics, json);
    return 0;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    const rkb_consumer_t *owner = rd_kafka_opaque(rk);
    rkb_kafka_log(owner ? owner->component : NULL, level, fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    rkb_consumer_t *c = opaque;
    /* Transport and all-brokers-down errors are retried by librdkafka itself; the sink just
     * keeps polling. A fatal error cannot happen for a plain consumer. */
    rkb_log_warn(c->component, "kafka: %s: %s", rd_kafka_err2name(err), reason);
}

/* Converts a librdkafka list into our array (pointers into the list stay valid while it
 * lives). Returns a malloc'd array. */
static rkb_toppar_t *toppars_from_list(const rd_kafka_topic_partition_list_t *list) {
    rkb_toppar_t *parts = rkb_calloc((size_t)list->cnt, sizeof(*parts));
    for (int i = 0; i < list->cnt; i++) {
        parts[i].topic = list->elems[i].topic;
        parts[i].partition = list->elems[i].partition;
        parts[i].offset = list->elems[i].offset;
    }
    return parts;
}

static void describe_list(const rd_kafka_topic_partition_list_t *list, rkb_buf_t *out) {
    for (int i = 0; i < list->cnt; i++)
        rkb_buf_appendf(out, "%s%s[%d]", i ? " " : "", list->elems[i].topic,
                        list->elems[i].partition);
    if (!list->cnt)
        rkb_buf_appends(out, "(none)");
}

/*
 * Rebalance: called by librdkafka from inside rd_kafka_consumer_poll on the owner's thread.
 * Order matters on revocation: the owner drains and stores first, then we commit, and only
 * then the partitions are given up, so the next owner starts exactly at what Redis has.
 */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque) {
    rkb_consumer_t *c = opaque;
    c->cooperative = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
    rkb_buf_t desc;
    rkb_buf_init(&desc);
    describe_list(list, &desc);
    pthread_mutex_lock(&c->wake_lock);
    c->wake_stale = true;
    pthread_mutex_unlock(&c->wake_lock);

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->assigned_once = true;
        rkb_log_info(c->component, "assigned %s", desc.data);
        rkb_task_metrics_rebalance(c->metrics);
        if (c->handlers.on_assign && list->cnt) {
            rkb_toppar_t *parts = toppars_from_list(list);
            c->handlers.on_assign(parts, (size_t)list->cnt, c->handlers.opaque);
            for (int i = 0; i < list->cnt; i++)
                list->elems[i].offset = parts[i].offset;
            free(parts);
        }
        rd_kafka_error_t *error = NULL;
        rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (c->cooperative)
            error = rd_kafka_incremental_assign(rk, list);
        else
            aerr = rd_kafka_assign(rk, list);
        if (error) {
            rkb_log_error(c->component, "assign failed: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        } else if (aerr) {
            rkb_log_error(c->component, "assign failed: %s", rd_kafka_err2str(aerr));
        }
        if ((c->paused || c->held) && list->cnt) /* a pause covers later partitions too */
            rd_kafka_pause_partitions(rk, list);
        /* An absolute start offset on_assign chose (exactly-once: the one Redis holds) is
         * stored too, so the committed offset catches up with what is already applied even
         * when no record follows (lag and a later at-least-once run would see it). */
        if (!error && !aerr) {
            rd_kafka_topic_partition_list_t *start = rd_kafka_topic_partition_list_new(list->cnt);
            for (int i = 0; i < list->cnt; i++)
                if (list->elems[i].offset >= 0)
                    rd_kafka_topic_partition_list_add(start, list->elems[i].topic,
                                                      list->elems[i].partition)
                        ->offset = list->elems[i].offset;
            if (start->cnt)
                rd_kafka_offsets_store(rk, start);
            rd_kafka_topic_partition_list_destroy(start);
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        bool lost = rd_kafka_assignment_lost(rk);
        rkb_log_info(c->component, "%s %s", lost ? "lost" : "revoked", desc.data);
        if (c->handlers.on_revoke && list->cnt) {
            rkb_toppar_t *parts = toppars_from_list(list);
            c->handlers.on_revoke(parts, (size_t)list->cnt, lost, c->handlers.opaque);
            free(parts);
        }
        if (!lost) {
            /* Commit what the owner stored for these partitions before giving them up. */
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                rkb_log_warn(c->component, "commit on revocation failed: %s",
                             rd_kafka_err2str(cerr));
        }
        if (c->cooperative) {
            rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, list);
            if (error) {
                rkb_log_error(c->component, "unassign failed: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
        } else {
            rd_kafka_assign(rk, NULL);
        }
    } else {
        rkb_log_error(c->component, "rebalance error: %s", rd_kafka_err2str(err));
        rd_kafka_assign(rk, NULL);
    }
    rkb_buf_free(&desc);
}

/* An integer property of kconf as librdkafka will use it, or dflt if it cannot be read. */
static int64_t conf_int(const rd_kafka_conf_t *kconf, const char *name, int64_t dflt) {
    char buf[32];
    size_t size = sizeof(buf);
    int64_t value;
    if (rd_kafka_conf_get(kconf, name, buf, &size) != RD_KAFKA_CONF_OK ||
        rkb_parse_int64(buf, 1, INT64_MAX, &value))
        return dflt;
    return value;
}

/*
 * librdkafka 2.0 stops fetching while the consumer queue holds queued.min.messages messages or
 * queued.max.messages.kbytes, and a broker thread looks at its partitions again only when
 * something wakes it, at the latest after one second (later librdkafka versions added
 * fetch.queue.backoff.ms for it). A sink that drains a full queue faster than that sits idle
 * for the rest of the second: it halved the sink's throughput. So when the queue was near a
 * bound and has drained to half of it, each broker thread that leads an assigned partition is
 * woken by a request for that partition's watermarks (ListOffsets: cheap, and it changes
 * nothing); the thread then decides again and fetches. Partition operations (resume, seek)
 * would not do: they go to librdkafka's main thread and reset the fetch position.
 *
 * The requests are made by a thread of their own: on its connection a ListOffsets waits behind
 * a Fetch the broker holds for fetch.wait.max.ms, and the task must not wait with it.
 */
static void refresh_wake_targets(rkb_consumer_t *c) {
    for (size_t i = 0; i < c->wake_cnt; i++)
        free(c->wake[i].topic);
    c->wake_cnt = 0;
    c->wake_refreshed_ms = rkb_now_ms();
    rd_kafka_topic_partition_list_t *assignment = NULL;
    if (rd_kafka_assignment(c->rk, &assignment) || !assignment)
        return;
    size_t room = assignment->cnt ? (size_t)assignment->cnt : 1;
    c->wake = rkb_realloc(c->wake, room * sizeof(*c->wake));
    int32_t *leaders = rkb_calloc(room, sizeof(*leaders));
    /* One metadata request for the topics this client knows (its assigned ones among them). */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(c->rk, 0, NULL, &md, 1000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        md = NULL;
    for (int i = 0; i < assignment->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &assignment->elems[i];
        int32_t leader = -1;
        for (int t = 0; md && t < md->topic_cnt; t++) {
            if (strcmp(md->topics[t].topic, tp->topic))
                continue;
            for (int p = 0; p < md->topics[t].partition_cnt; p++)
                if (md->topics[t].partitions[p].id == tp->partition)
                    leader = md->topics[t].partitions[p].leader;
        }
        bool known = false;
        for (size_t w = 0; w < c->wake_cnt && !known; w++)
            known = leaders[w] == leader;
        if (known)
            continue;
        leaders[c->wake_cnt] = leader;
        c->wake[c->wake_cnt].topic = rkb_strdup(tp->topic);
        c->wake[c->wake_cnt].partition = tp->partition;
        c->wake_cnt++;
    }
    free(leaders);
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_destroy(assignment);
}

static void *waker_main(void *arg) {
    rkb_consumer_t *c = arg;
    pthread_mutex_lock(&c->wake_lock);
    for (;;) {
        while (!c->wake_requested && !c->waker_stop)
            pthread_cond_wait(&c->wake_cond, &c->wake_lock);
        if (c->waker_stop)
            break;
        c->wake_requested = false;
        bool stale = c->wake_stale;
        c->wake_stale = false;
        pthread_mutex_unlock(&c->wake_lock);

        if (stale || rkb_now_ms() - c->wake_refreshed_ms > 30000)
            refresh_wake_targets(c);
        for (size_t i = 0; i < c->wake_cnt; i++) {
            int64_t low, high;
            rd_kafka_query_watermark_offsets(c->rk, c->wake[i].topic, c->wake[i].partition, &low,
                                             &high, 500);
        }
        pthread_mutex_lock(&c->wake_lock);
    }
    pthread_mutex_unlock(&c->wake_lock);
    return NULL;
}

/* After a poll: asks the waker to wake the fetchers when the queue was near a bound and has
 * drained to half of it. */
static void kick_fetcher(rkb_consumer_t *c) {
    size_t queued = rd_kafka_queue_length(c->queue);
    if (queued > c->queued_high)
        c->queued_high = queued;
    double high_bytes = (double)c->queued_high * c->avg_msg_bytes;
    bool was_full = c->queued_high * 10 >= (size_t)c->queued_min_msgs * 8 ||
                    high_bytes * 10 >= (double)c->queued_max_bytes * 8;
    bool drained = queued * 2 <= (size_t)c->queued_min_msgs &&
                   (double)queued * c->avg_msg_bytes * 2 <= (double)c->queued_max_bytes;
    if (!was_full || !drained || c->paused || c->held)
        return;
    c->queued_high = queued;
    if (!c->waker_started) {
        if (pthread_create(&c->waker, NULL, waker_main, c)) {
            rkb_log_warn(c->component, "cannot start the fetch waker thread; fetching may pause "
                                       "up to a second when the queue fills");
            c->queued_min_msgs = INT64_MAX / 16; /* do not try again */
            c->queued_max_bytes = INT64_MAX / 16;
            return;
        }
        c->waker_started = true;
    }
    pthread_mutex_lock(&c->wake_lock);
    c->wake_requested = true;
    pthread_cond_signal(&c->wake_cond);
    pthread_mutex_unlock(&c->wake_lock);
}

rkb_consumer_t *rkb_consumer_new(const rkb_consumer_conf_t *conf, char *errstr,
                                 size_t errstr_size) {
    rkb_consumer_t *c = rkb_calloc(1, sizeof(*c));
    c->component = rkb_strdup(conf->component ? conf->component : "consumer");
    pthread_mutex_init(&c->wake_lock, NULL);
    pthread_cond_init(&c->wake_cond, NULL);
    c->handlers = conf->handlers;
    c->metrics = rkb_task_metrics_current();

    rd_kafka_conf_t *kconf = rd_kafka_conf_new();
    /* rkbridge's defaults, as Kafka Connect's sink: start from the beginning when the group
     * has no committed offset; cooperative rebalancing so that adding a member does not stop
     * the others. The user's kafka.* settings below override these. */
    static const char *const defaults[] = {
        "auto.offset.reset",    "earliest", "partition.assignment.strategy", "cooperative-sticky",
        "enable.auto.commit",   "true",     "auto.commit.interval.ms",       "1000",
        "enable.partition.eof", "false",    "fetch.max.bytes",               "8388608",
    };
    for (size_t i = 0; i < RKB_ARRAY_SIZE(defaults); i += 2)
        if (rkb_kafka_conf_set(kconf, defaults[i], defaults[i + 1], errstr, errstr_size))
            goto fail;
    /* Bounded prefetch (peak RSS), shared among the consumers of prefetch_share: with the
     * fetch waker (kick_fetcher) a small queue does not stall the sink; one fetch response
     * (fetch.max.bytes above) at most on top. */
    static const struct {
        const char *name;
        int whole, least;
    } prefetch[] = {{"queued.min.messages", 20000, 2000},
                    {"queued.max.messages.kbytes", 16384, 2048}};
    for (size_t i = 0; i < RKB_ARRAY_SIZE(prefetch); i++) {
        int share = prefetch[i].whole / (conf->prefetch_share > 1 ? conf->prefetch_share : 1);
        char value[32];
        snprintf(value, sizeof(value), "%d", share > prefetch[i].least ? share : prefetch[i].least);
        if (rkb_kafka_conf_set(kconf, prefetch[i].name, value, errstr, errstr_size))
            goto fail;
    }
    /* Consumer lag for GET /metrics; the user's kafka.statistics.interval.ms (0: off) wins. */
    if (c->metrics &&
        rkb_kafka_conf_set(kconf, "statistics.interval.ms", "5000", errstr, errstr_size))
        goto fail;
    if (conf->group_id &&
        rkb_kafka_conf_set(kconf, "group.id", conf->group_id, errstr, errstr_size))
        goto fail;
    if (conf->client_id &&
        rkb_kafka_conf_set(kconf, "client.id", conf->client_id, errstr, errstr_size))
        goto fail;
    for (size_t i = 0; i < conf->prop_cnt; i++)
        if (rkb_kafka_conf_set(kconf, conf->props[2 * i], conf->props[2 * i + 1], errstr,
                               errstr_size))
            goto fail;
    /* Not overridable: an offset is stored only after Redis acknowledged the record
     * (SEMANTICS.md §1.2); librdkafka's automatic store would commit before the write. */
    if (rkb_kafka_conf_set(kconf, "enable.auto.offset.store", "false", errstr, errstr_size))
        goto fail;

    c->queued_min_msgs = conf_int(kconf, "queued.min.messages", 100000);
    c->queued_max_bytes = conf_int(kconf, "queued.max.messages.kbytes", 65536) * 1024;

    rd_kafka_conf_set_opaque(kconf, c);
    rd_kafka_conf_set_log_cb(kconf, log_cb);
    rd_kafka_conf_set_error_cb(kconf, error_cb);
    rd_kafka_conf_set_rebalance_cb(kconf, rebalance_cb);
    if (c->metrics)
        rd_kafka_conf_set_stats_cb(kconf, stats_cb);

    char why[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, why, sizeof(why));
    if (!c->rk) {
        snprintf(errstr, errstr_size, "kafka consumer: %s", why);
        goto fail; /* kconf is not consumed on failure */
    }
    kconf = NULL; /* consumed */
    rd_kafka_poll_set_consumer(c->rk);
    c->queue = rd_kafka_queue_get_consumer(c->rk);

    rd_kafka_topic_partition_list_t *subscription =
        rd_kafka_topic_partition_list_new(conf->topic_cnt ? (int)conf->topic_cnt : 1);
    if (conf->topics_regex) {
        /* librdkafka treats a subscription starting with '^' as a regex; "^(...)" anchors every
         * alternative of "a|b", where a bare '^' prefix would anchor only the first. */
        char *regex = rkb_malloc(strlen(conf->topics_regex) + 4);
        sprintf(regex, "^(%s)", conf->topics_regex);
        rd_kafka_topic_partition_list_add(subscription, regex, RD_KAFKA_PARTITION_UA);
        free(regex);
    } else {
        for (size_t i = 0; i < conf->topic_cnt; i++)
            rd_kafka_topic_partition_list_add(subscription, conf->topics[i], RD_KAFKA_PARTITION_UA);
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, subscription);
    rd_kafka_topic_partition_list_destroy(subscription);
    if (err) {
        snprintf(errstr, errstr_size, "subscribe: %s", rd_kafka_err2str(err));
        rd_kafka_queue_destroy(c->queue);
        rd_kafka_destroy(c->rk);
        c->rk = NULL;
        goto fail;
    }
    return c;

fail:
    if (kconf)
        rd_kafka_conf_destroy(kconf);
    pthread_mutex_destroy(&c->wake_lock);
    pthread_cond_destroy(&c->wake_cond);
    free(c->component);
    free(c);
    return NULL;
}

static int header_get(const rkb_record_t *rec, const char *name, const void **val, size_t *len) {
    rd_kafka_headers_t *hdrs;
    if (rd_kafka_message_headers(rec->source, &hdrs))
        return -1;
    if (rd_kafka_header_get_last(hdrs, name, val, len))
        return -1;
    return 0;
}

static void record_from_message(rkb_record_t *rec, rd_kafka_message_t *msg) {
    rkb_record_init(rec);
    rec->source = msg;
    rec->topic = rd_kafka_topic_name(msg->rkt);
    rec->partition = msg->partition;
    rec->offset = msg->offset;
    rec->timestamp = rd_kafka_message_timestamp(msg, NULL);
    rec->key = msg->key;
    rec->key_len = msg->key_len;
    rec->value = msg->payload;
    rec->value_len = msg->len;
    rec->header_get = header_get;
}

size_t rkb_consumer_poll(rkb_consumer_t *c, rkb_record_t *recs, size_t *cnt, size_t max,
                         int timeout_ms) {
    size_t taken = 0;
    for (;;) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, taken ? 0 : timeout_ms);
        if (!msg)
            break;
        if (msg->err) {
            if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                rkb_log_warn(c->component, "consumer: %s%s%s",
                             msg->rkt ? rd_kafka_topic_name(msg->rkt) : "", msg->rkt ? ": " : "",
                             rd_kafka_message_errstr(msg));
            rd_kafka_message_destroy(msg);
            break;
        }
        if (taken == max) {
            /* Only reachable with max == 0 (serve events only) while something was still
             * queued: it must not be lost, so seek back to it before dropping it. */
            rd_kafka_topic_partition_list_t *pos = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(pos, rd_kafka_topic_name(msg->rkt), msg->partition)
                ->offset = msg->offset;
            rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, pos, 5000);
            if (error) {
                rkb_log_error(c->component, "seek back failed: %s", rd_kafka_error_string(error));
                rd_kafka_error_destroy(error);
            }
            rd_kafka_topic_partition_list_destroy(pos);
            rd_kafka_message_destroy(msg);
            break;
        }
        record_from_message(&recs[(*cnt)++], msg);
        /* A mean over about the last thousand messages. */
        c->avg_msg_bytes += ((double)(msg->len + msg->key_len) - c->avg_msg_bytes) / 1024;
        if (++taken == max)
            break;
    }
    if (taken)
        kick_fetcher(c);
    return taken;
}

void rkb_consumer_release(rkb_record_t *rec) {
    if (rec->source)
        rd_kafka_message_destroy(rec->source);
    rkb_record_clear(rec);
}

size_t rkb_consumer_record_headers(const rkb_record_t *rec, rkb_header_t *out, size_t max) {
    rd_kafka_headers_t *hdrs;
    if (!rec->source || rd_kafka_message_headers(rec->source, &hdrs))
        return 0;
    size_t cnt = rd_kafka_header_cnt(hdrs);
    for (size_t i = 0; i < cnt && i < max; i++) {
        const char *name;
        const void *value;
        size_t len;
        if (rd_kafka_header_get_all(hdrs, i, &name, &value, &len))
            break;
        out[i].name = name;
        out[i].value = value;
        out[i].len = len;
    }
    return cnt;
}

int rkb_consumer_seek(rkb_consumer_t *c, const rkb_toppar_t *parts, size_t cnt) {
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)cnt);
    for (size_t i = 0; i < cnt; i++)
        if (parts[i].offset >= 0)
            rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
                parts[i].offset;
    int rc = 0;
    if (list->cnt) {
        rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, list, 10000);
        if (error) {
            rkb_log_error(c->component, "seek failed: %s", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            rc = -1;
        }
        for (int i = 0; i < list->cnt; i++) {
            if (list->elems[i].err) {
                rkb_log_error(c->component, "seek %s[%d] to %lld: %s", list->elems[i].topic,
                              list->elems[i].partition, (long long)list->elems[i].offset,
                              rd_kafka_err2str(list->elems[i].err));
                rc = -1;
            }
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
    return rc;
}

void rkb_consumer_store(rkb_consumer_t *c, const rkb_toppar_t *parts, size_t cnt) {
    if (!cnt)
        return;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)cnt);
    for (size_t i = 0; i < cnt; i++)
        rd_kafka_topic_partition_list_add(list, parts[i].topic, parts[i].partition)->offset =
            parts[i].offset;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, list);
    if (err && err != RD_KAFKA_RESP_ERR__STATE)
        rkb_log_warn(c->component, "offset store failed: %s", rd_kafka_err2str(err));
    for (int i = 0; i < list->cnt; i++) {
        if (list->elems[i].err && list->elems[i].err != RD_KAFKA_RESP_ERR__STATE)
            rkb_log_warn(c->component, "offset store %s[%d]: %s", list->elems[i].topic,
                         list->elems[i].partition, rd_kafka_err2str(list->elems[i].err));
    }
    rd_kafka_topic_partition_list_destroy(list);
}

int rkb_consumer_commit(rkb_consumer_t *c) {
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        rkb_log_warn(c->component, "commit failed: %s", rd_kafka_err2str(err));
        return -1;
    }
    return 0;
}

/* Pauses or resumes fetching of the whole assignment when the effective state (paused or held)
 * changes. */
static void apply_pause(rkb_consumer_t *c, bool was_stopped) {
    bool stopped = c->paused || c->held;
    if (stopped == was_stopped)
        return;
    rd_kafka_topic_partition_list_t *assignment = NULL;
    if (!rd_kafka_assignment(c->rk, &assignment) && assignment) {
        if (stopped)
            rd_kafka_pause_partitions(c->rk, assignment);
        else
            rd_kafka_resume_partitions(c->rk, assignment);
        rd_kafka_topic_partition_list_destroy(assignment);
    }
}

void rkb_consumer_pause_all(rkb_consumer_t *c, bool pause) {
    bool was_stopped = c->paused || c->held;
    c->paused = pause;
    apply_pause(c, was_stopped);
}

bool rkb_consumer_hold(rkb_consumer_t *c, bool hold) {
    bool was_stopped = c->paused || c->held;
    c->held = hold;
    apply_pause(c, was_stopped);
    return hold;
}

bool rkb_consumer_paused(const rkb_consumer_t *c) {
    return c->paused;
}

size_t rkb_consumer_assignment_size(rkb_consumer_t *c) {
    rd_kafka_topic_partition_list_t *assignment = NULL;
    size_t cnt = 0;
    if (!rd_kafka_assignment(c->rk, &assignment) && assignment) {
        cnt = (size_t)assignment->cnt;
        rd_kafka_topic_partition_list_destroy(assignment);
    }
    return cnt;
}

size_t rkb_consumer_assignment(rkb_consumer_t *c, rkb_toppar_t **parts) {
    rd_kafka_topic_partition_list_t *assignment = NULL;
    size_t cnt = 0;
    *parts = NULL;
    if (!rd_kafka_assignment(c->rk, &assignment) && assignment) {
        cnt = (size_t)assignment->cnt;
        *parts = rkb_calloc(cnt ? cnt : 1, sizeof(**parts));
        bool positioned = rd_kafka_position(c->rk, assignment) == RD_KAFKA_RESP_ERR_NO_ERROR;
        for (size_t i = 0; i < cnt; i++) {
            (*parts)[i].topic = rkb_strdup(assignment->elems[i].topic);
            (*parts)[i].partition = assignment->elems[i].partition;
            int64_t position = positioned ? assignment->elems[i].offset : RKB_OFFSET_INVALID;
            (*parts)[i].offset = position >= 0 ? position : RKB_OFFSET_INVALID;
        }
        rd_kafka_topic_partition_list_destroy(assignment);
    }
    return cnt;
}

/* How long a close waits for the group's first assignment (see rkb_consumer_close). */
#define FIRST_ASSIGNMENT_WAIT_MS 6000

/*
 * librdkafka 2.0 aborts (rd_kafka_sticky_assignor_state_destroy: assertion 'assignor_state',
 * librdkafka issue #4312, fixed in 2.3.0) when a cooperative-sticky member is destroyed after
 * its group chose the protocol but before the first assignment reached it: a connector stopped
 * or changed seconds after it started (several workers make that common). So a member that never
 * had an assignment waits for it first, bounded, serving nothing of the task meanwhile (its
 * handlers are dropped: what comes is given back at once by the close).
 */
static void await_first_assignment(rkb_consumer_t *c) {
    if (c->assigned_once)
        return;
    memset(&c->handlers, 0, sizeof(c->handlers));
    int64_t until = rkb_now_ms() + FIRST_ASSIGNMENT_WAIT_MS;
    while (!c->assigned_once && rkb_now_ms() < until) {
        rd_kafka_message_t *msg = rd_kafka_consumer_poll(c->rk, 100);
        bool down = msg && msg->err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN;
        if (msg)
            rd_kafka_message_destroy(msg);
        if (down) /* no group can form: nothing to wait for */
            break;
    }
}

void rkb_consumer_close(rkb_consumer_t *c) {
    if (!c)
        return;
    if (c->rk) {
        await_first_assignment(c);
        rkb_consumer_commit(c);
        if (c->waker_started) {
            pthread_mutex_lock(&c->wake_lock);
            c->waker_stop = true;
            pthread_cond_signal(&c->wake_cond);
            pthread_mutex_unlock(&c->wake_lock);
            pthread_join(c->waker, NULL);
        }
        rd_kafka_queue_destroy(c->queue);
        rd_kafka_consumer_close(c->rk);
        rd_kafka_destroy(c->rk);
    }
    for (size_t i = 0; i < c->wake_cnt; i++)
        free(c->wake[i].topic);
    free(c->wake);
    pthread_mutex_destroy(&c->wake_lock);
    pthread_cond_destroy(&c->wake_cond);
    free(c->component);
    free(c);
}
