/*
 * pubsub.c — the Redis pub/sub → Kafka source task (see pubsub.h).
 *
 * Data path: SUBSCRIBE/PSUBSCRIBE on one subscriber connection (source/subscriber.c) → one
 * Kafka record per message received (kafka/producer.c).
 *
 * Records: key null (Redis gives a message no key; with the default topic ${channel} each
 * channel has its topic, and librdkafka spreads null-keyed records over its partitions, so a
 * channel's order holds only in a one-partition topic); value = the message bytes; headers
 * redis-channel and, for a pattern subscription, redis-pattern; timestamp = when it was
 * produced. Topic = the topic template with ${channel} replaced by the channel name, in which
 * every character Kafka does not allow in a topic name (anything but letters, digits, '.', '_'
 * and '-') becomes '_'; a message whose topic would be longer than 249 characters is dropped
 * (counted and logged).
 *
 * Delivery is at-most-once by nature: Redis keeps nothing for a subscriber that is away, so
 * what is published while the task reconnects (with backoff; the log says how long it was
 * away) is lost, as are records still queued when the process dies. A message that matches a
 * channel subscription and a pattern, or two patterns, arrives once per match (Redis's rule)
 * and is produced each time.
 *
 * Tasks: the channels and patterns are dealt out among the tasks (task i takes items i,
 * i + tasks.max, ... of the channels followed by the patterns), since every subscriber of a
 * channel receives every message: two tasks on one channel would produce it twice.
 */
#include "source/pubsub.h"

#include "connect/clients.h"
#include "kafka/producer.h"
#include "redis/redis.h"
#include "source/source_util.h"
#include "source/subscriber.h"
#include "util/log.h"
#include "util/util.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOPIC     "${channel}"
#define CHANNEL_TOKEN     "${channel}"
#define TOPIC_MAX         249
#define SHUTDOWN_FLUSH_MS 30000
#define BACKOFF_MAX_MS    10000


struct rkb_pubsub_source_s {
    const rkb_config_t *conf;
    int task_id;
    char component[256];

    char *topic_template;
    char **channels; /* this task's share */
    size_t channel_cnt;
    char **patterns;
    size_t pattern_cnt;
    size_t batch_size;

    rkb_redis_conf_t redis_conf;
    rkb_subscriber_t *sub;
    rkb_producer_t *producer;
    rkb_buf_t topic; /* the topic being built */

    int64_t away_since; /* when the subscription was lost; 0 while subscribed */
    int attempt;
    bool failed;
    char failure[1024];
    rkb_pubsub_source_stats_t stats;
};

/* ---- configuration --------------------------------------------------------------------------- */

static const char *template_of(const rkb_config_t *conf) {
    const char *topic = rkb_config_get(conf, "topic");
    return topic && *topic ? topic : DEFAULT_TOPIC;
}

/* Checks the topic template: literal text a topic name may hold, and ${channel}. Returns NULL
 * or why not (static storage). */
static const char *template_problem(const char *tmpl) {
    static char why[256];
    for (const char *p = tmpl; *p;) {
        if (!strncmp(p, CHANNEL_TOKEN, strlen(CHANNEL_TOKEN))) {
            p += strlen(CHANNEL_TOKEN);
        } else if (*p == '$') {
            size_t len = strncmp(p, "${", 2) ? 1 : strcspn(p, "}") + 1;
            snprintf(why, sizeof(why), "unknown token '%.*s' (the only one is %s)",
                     (int)(len < 64 ? len : 64), p, CHANNEL_TOKEN);
            return why;
        } else if (!rkb_source_is_topic_char(*p)) {
            snprintf(why, sizeof(why),
                     "'%c' cannot be part of a Kafka topic name (letters, digits, '.', '_' and "
                     "'-')",
                     *p);
            return why;
        } else {
            p++;
        }
    }
    return NULL;
}

/* Splits a comma-separated list (items trimmed, empty ones dropped). */
static size_t split_list(const char *list, char ***items) {
    size_t cnt = 0;
    *items = NULL;
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *item = p;
        while (len && (*item == ' ' || *item == '\t'))
            item++, len--;
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            len--;
        if (len) {
            *items = rkb_realloc(*items, (cnt + 1) * sizeof(**items));
            (*items)[cnt++] = rkb_strndup(item, len);
        }
        p = end ? end + 1 : NULL;
    }
    return cnt;
}

static void free_list(char **items, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        free(items[i]);
    free(items);
}

int rkb_pubsub_source_validate(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    char **channels, **patterns;
    size_t channel_cnt = split_list(rkb_config_get(conf, "redis.pubsub.channels"), &channels);
    size_t pattern_cnt = split_list(rkb_config_get(conf, "redis.pubsub.patterns"), &patterns);
    free_list(channels, channel_cnt);
    free_list(patterns, pattern_cnt);
    if (!channel_cnt && !pattern_cnt)
        rkb_errors_add(errs,
                       "%s: redis.pubsub.channels: set it, redis.pubsub.patterns, or both "
                       "(the pub/sub source has nothing to subscribe to)",
                       rkb_config_origin(conf, "redis.pubsub.channels"));
    int64_t tasks = rkb_config_get_int(conf, "tasks.max");
    if (channel_cnt + pattern_cnt && (size_t)tasks > channel_cnt + pattern_cnt)
        rkb_errors_add(errs,
                       "%s: tasks.max: %lld tasks for %zu channels and patterns: each is "
                       "subscribed by one task (every subscriber receives every message), so "
                       "at most %zu tasks",
                       rkb_config_origin(conf, "tasks.max"), (long long)tasks,
                       channel_cnt + pattern_cnt, channel_cnt + pattern_cnt);
    const char *why = template_problem(template_of(conf));
    if (why)
        rkb_errors_add(errs, "%s: topic: %s", rkb_config_origin(conf, "topic"), why);
    return (int)(errs->cnt - before);
}

/* Keeps the items of all whose position (counting from offset) falls to task_id. */
static size_t take_share(char **all, size_t cnt, size_t offset, int task_id, int64_t tasks,
                         char ***share) {
    size_t kept = 0;
    *share = rkb_calloc(cnt ? cnt : 1, sizeof(**share));
    for (size_t i = 0; i < cnt; i++) {
        if ((int64_t)((offset + i) % (size_t)tasks) == task_id)
            (*share)[kept++] = all[i];
        else
            free(all[i]);
    }
    free(all);
    return kept;
}

rkb_pubsub_source_t *rkb_pubsub_source_new(const rkb_config_t *conf, int task_id, char *errstr,
                                           size_t errstr_size) {
    rkb_pubsub_source_t *src = rkb_calloc(1, sizeof(*src));
    src->conf = conf;
    src->task_id = task_id;
    snprintf(src->component, sizeof(src->component), "%s/%d", rkb_config_get(conf, "name"),
             task_id);
    src->topic_template = rkb_strdup(template_of(conf));
    src->batch_size = (size_t)rkb_config_get_int(conf, "batch.size");
    rkb_buf_init(&src->topic);

    char **channels, **patterns;
    size_t channel_cnt = split_list(rkb_config_get(conf, "redis.pubsub.channels"), &channels);
    size_t pattern_cnt = split_list(rkb_config_get(conf, "redis.pubsub.patterns"), &patterns);
    int64_t tasks = rkb_config_get_int(conf, "tasks.max");
    src->channel_cnt = take_share(channels, channel_cnt, 0, task_id, tasks, &src->channels);
    src->pattern_cnt =
        take_share(patterns, pattern_cnt, channel_cnt, task_id, tasks, &src->patterns);
    if (!src->channel_cnt && !src->pattern_cnt) {
        snprintf(errstr, errstr_size, "task %d has no channel or pattern to subscribe to", task_id);
        rkb_pubsub_source_destroy(src);
        return NULL;
    }

    if (rkb_connect_redis_conf(conf, task_id, &src->redis_conf, errstr, errstr_size)) {
        rkb_pubsub_source_destroy(src);
        return NULL;
    }
    src->sub = rkb_subscriber_new(&src->redis_conf, src->component);
    return src;
}

void rkb_pubsub_source_destroy(rkb_pubsub_source_t *src) {
    if (!src)
        return;
    rkb_producer_destroy(src->producer, 0);
    rkb_subscriber_destroy(src->sub);
    rkb_redis_conf_clear(&src->redis_conf);
    free_list(src->channels, src->channel_cnt);
    free_list(src->patterns, src->pattern_cnt);
    free(src->topic_template);
    rkb_buf_free(&src->topic);
    free(src);
}

/* ---- records --------------------------------------------------------------------------------- */

static void on_delivery(void *msg_opaque, int err, const char *errstr, void *opaque) {
    rkb_pubsub_source_t *src = opaque;
    if (!err) {
        src->stats.delivered++;
        return;
    }
    if (!src->stats.delivery_failed)
        rkb_log_warn(src->component, "delivery failed: %s; the message is lost (at-most-once)",
                     errstr);
    src->stats.delivery_failed++;
}

/* The topic for a channel: the template with ${channel} replaced, characters a topic name
 * cannot hold turned into '_'. Returns 0, or -1 when it would be too long. */
static int expand_topic(rkb_pubsub_source_t *src, const char *channel, size_t len) {
    rkb_buf_reset(&src->topic);
    const size_t token_len = strlen(CHANNEL_TOKEN);
    for (const char *p = src->topic_template; *p;) {
        if (!strncmp(p, CHANNEL_TOKEN, token_len)) {
            for (size_t i = 0; i < len; i++) {
                char c = rkb_source_is_topic_char(channel[i]) ? channel[i] : '_';
                rkb_buf_append(&src->topic, &c, 1);
            }
            p += token_len;
        } else {
            rkb_buf_append(&src->topic, p++, 1);
        }
    }
    return src->topic.len <= TOPIC_MAX ? 0 : -1;
}

static void on_message(const rkb_sub_message_t *msg, void *opaque) {
    rkb_pubsub_source_t *src = opaque;
    src->stats.received++;
    if (expand_topic(src, msg->channel, msg->channel_len)) {
        if (!src->stats.dropped)
            rkb_log_warn(src->component,
                         "channel '%.*s...': the topic name would be longer than %d "
                         "characters: message dropped (counted in the stop line)",
                         (int)(msg->channel_len < 64 ? msg->channel_len : 64), msg->channel,
                         TOPIC_MAX);
        src->stats.dropped++;
        return;
    }
    rkb_header_t headers[2] = {{"redis-channel", msg->channel, msg->channel_len}};
    size_t header_cnt = 1;
    if (msg->pattern)
        headers[header_cnt++] = (rkb_header_t){"redis-pattern", msg->pattern, msg->pattern_len};
    char why[512];
    if (rkb_producer_send(src->producer, src->topic.data, -1, NULL, 0, msg->payload,
                          msg->payload_len, headers, header_cnt, -1, NULL, why, sizeof(why))) {
        char fatal[512];
        if (rkb_producer_fatal_error(src->producer, fatal, sizeof(fatal))) {
            snprintf(src->failure, sizeof(src->failure), "kafka producer: %s", fatal);
            src->failed = true; /* no record can be sent any more */
        } else if (!src->stats.dropped)
            rkb_log_warn(src->component, "%s: message dropped (at-most-once)", why);
        src->stats.dropped++;
    }
}

/* ---- the loop -------------------------------------------------------------------------------- */

/* Returns 0, 1 (transient: try again later) or -1 (failed). */
static int subscribe(rkb_pubsub_source_t *src) {
    char why[512];
    int err = rkb_subscriber_subscribe(src->sub, (const char *const *)src->channels,
                                       src->channel_cnt, (const char *const *)src->patterns,
                                       src->pattern_cnt, on_message, src, why, sizeof(why));
    if (err == RKB_REDIS_ERR_IO) {
        rkb_log_warn(src->component, "%s", why);
        return 1;
    }
    if (err) {
        snprintf(src->failure, sizeof(src->failure), "%s", why);
        src->failed = true;
        return -1;
    }
    if (src->away_since) {
        rkb_log_warn(src->component,
                     "subscribed again after %lld ms away: messages published meanwhile are "
                     "lost (at-most-once)",
                     (long long)(rkb_now_ms() - src->away_since));
        src->stats.reconnects++;
        src->away_since = 0;
    } else {
        rkb_log_info(src->component, "subscribed to %zu channels and %zu patterns",
                     src->channel_cnt, src->pattern_cnt);
    }
    return 0;
}

int rkb_pubsub_source_run(rkb_pubsub_source_t *src, rkb_task_ctl_t *ctl, char *errstr,
                          size_t errstr_size) {
    const volatile int *stop = rkb_task_ctl_stop(ctl);
    src->producer = rkb_connect_producer_new(src->conf, src->task_id, NULL, src->component,
                                             on_delivery, src, errstr, errstr_size);
    if (!src->producer)
        return -1;
    char where[400];
    rkb_log_info(src->component, "pub/sub source started: redis %s → topic %s (at-most-once)",
                 rkb_redis_conf_describe(&src->redis_conf, where, sizeof(where)),
                 src->topic_template);

    while (!*stop && !src->failed) {
        /* Paused (connect/task_ctl.h): nothing is read from the subscription; what was taken
         * is delivered first, and only then is the pause reported. */
        if (rkb_task_ctl_hold(ctl, !rkb_producer_outstanding(src->producer))) {
            rkb_producer_poll(src->producer, 50);
            continue;
        }
        int rc = 0;
        if (!rkb_subscriber_is_connected(src->sub)) {
            rc = subscribe(src);
        } else {
            char why[512];
            if (rkb_subscriber_poll(src->sub, 100, src->batch_size, on_message, src, why,
                                    sizeof(why)) < 0) {
                rkb_log_warn(src->component, "lost the subscription: %s", why);
                src->away_since = rkb_now_ms();
                rc = 1;
            }
            rkb_producer_poll(src->producer, 0);
        }
        if (rc < 0)
            break;
        if (rc == 0) {
            src->attempt = 0;
            continue;
        }
        /* The first attempt after a loss comes at once, then with capped backoff. */
        src->stats.retries++;
        rkb_source_backoff(src->producer, src->attempt++, BACKOFF_MAX_MS, stop);
    }

    /* Orderly shutdown: stop intake, wait for the delivery reports, close. */
    rkb_subscriber_close(src->sub);
    rkb_source_flush(src->producer, src->component, SHUTDOWN_FLUSH_MS);
    rkb_log_info(src->component,
                 "pub/sub source stopped: %llu received, %llu delivered, %llu failed "
                 "deliveries, %llu dropped, %llu resubscriptions",
                 (unsigned long long)src->stats.received, (unsigned long long)src->stats.delivered,
                 (unsigned long long)src->stats.delivery_failed,
                 (unsigned long long)src->stats.dropped, (unsigned long long)src->stats.reconnects);
    if (src->failed) {
        snprintf(errstr, errstr_size, "%s", src->failure);
        return -1;
    }
    return 0;
}

const rkb_pubsub_source_stats_t *rkb_pubsub_source_stats(const rkb_pubsub_source_t *src) {
    return &src->stats;
}
