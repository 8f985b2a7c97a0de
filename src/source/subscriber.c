/*
 * subscriber.c — a pub/sub subscriber connection (see subscriber.h). Sits between Redis and the
 * keys and pub/sub sources: it turns RESP pushes ("message", "pmessage") into callbacks.
 */
#include "source/subscriber.h"

#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct rkb_subscriber_s {
    rkb_redis_t *redis;
    int timeout_ms; /* how long to wait for each confirmation */
};

rkb_subscriber_t *rkb_subscriber_new(const rkb_redis_conf_t *conf, const char *component) {
    rkb_subscriber_t *sub = rkb_calloc(1, sizeof(*sub));
    sub->redis = rkb_redis_new(conf, component);
    sub->timeout_ms = conf->command_timeout_ms > 0 ? conf->command_timeout_ms : 10000;
    return sub;
}

void rkb_subscriber_destroy(rkb_subscriber_t *sub) {
    if (!sub)
        return;
    rkb_redis_destroy(sub->redis);
    free(sub);
}

bool rkb_subscriber_is_connected(const rkb_subscriber_t *sub) {
    return rkb_redis_is_connected(sub->redis);
}

void rkb_subscriber_close(rkb_subscriber_t *sub) {
    rkb_redis_close(sub->redis);
}

static bool is_word(const redisReply *reply, const char *word) {
    return reply->type == REDIS_REPLY_STRING && reply->len == strlen(word) &&
           !memcmp(reply->str, word, reply->len);
}

static bool all_strings(const redisReply *reply, size_t from) {
    for (size_t i = from; i < reply->elements; i++)
        if (reply->element[i]->type != REDIS_REPLY_STRING)
            return false;
    return true;
}

/* What one reply on a subscriber connection is. */
typedef enum { PUSH_OTHER, PUSH_MESSAGE, PUSH_CONFIRMATION } push_kind_t;

/* Hands a "message"/"pmessage" push to on_message; recognizes (p)subscribe confirmations. */
static push_kind_t dispatch(const redisReply *reply, rkb_sub_message_cb_t *on_message,
                            void *opaque) {
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return PUSH_OTHER;
    const redisReply *kind = reply->element[0];
    rkb_sub_message_t msg = {0};
    if (is_word(kind, "message") && reply->elements == 3 && all_strings(reply, 1)) {
        msg.channel = reply->element[1]->str;
        msg.channel_len = reply->element[1]->len;
        msg.payload = reply->element[2]->str;
        msg.payload_len = reply->element[2]->len;
    } else if (is_word(kind, "pmessage") && reply->elements == 4 && all_strings(reply, 1)) {
        msg.pattern = reply->element[1]->str;
        msg.pattern_len = reply->element[1]->len;
        msg.channel = reply->element[2]->str;
        msg.channel_len = reply->element[2]->len;
        msg.payload = reply->element[3]->str;
        msg.payload_len = reply->element[3]->len;
    } else if (is_word(kind, "subscribe") || is_word(kind, "psubscribe")) {
        return PUSH_CONFIRMATION;
    } else {
        return PUSH_OTHER;
    }
    on_message(&msg, opaque);
    return PUSH_MESSAGE;
}

/* Sends "COMMAND item..." for a non-empty list. */
static int send_list(rkb_subscriber_t *sub, const char *command, const char *const *items,
                     size_t cnt, char *errstr, size_t errstr_size) {
    if (!cnt)
        return RKB_REDIS_OK;
    const char **argv = rkb_calloc(cnt + 1, sizeof(*argv));
    argv[0] = command;
    for (size_t i = 0; i < cnt; i++)
        argv[i + 1] = items[i];
    int err = rkb_redis_send(sub->redis, (int)cnt + 1, argv, NULL, errstr, errstr_size);
    free(argv);
    return err;
}

int rkb_subscriber_subscribe(rkb_subscriber_t *sub, const char *const *channels, size_t channel_cnt,
                             const char *const *patterns, size_t pattern_cnt,
                             rkb_sub_message_cb_t *on_message, void *opaque, char *errstr,
                             size_t errstr_size) {
    int err = rkb_redis_connect(sub->redis, errstr, errstr_size);
    if (err)
        return err;
    if ((err = send_list(sub, "SUBSCRIBE", channels, channel_cnt, errstr, errstr_size)) ||
        (err = send_list(sub, "PSUBSCRIBE", patterns, pattern_cnt, errstr, errstr_size)))
        return err;

    /* Redis confirms each channel and pattern on its own, in order; a message on a channel
     * confirmed first may come before the later confirmations. */
    size_t confirmed = 0;
    while (confirmed < channel_cnt + pattern_cnt) {
        redisReply *reply;
        err = rkb_redis_read(sub->redis, sub->timeout_ms, &reply, errstr, errstr_size);
        if (err)
            return err;
        if (!reply) {
            snprintf(errstr, errstr_size, "no subscription confirmation within %d ms",
                     sub->timeout_ms);
            rkb_redis_close(sub->redis);
            return RKB_REDIS_ERR_IO;
        }
        if (reply->type == REDIS_REPLY_ERROR) {
            snprintf(errstr, errstr_size, "subscribing: %s", reply->str);
            err = rkb_redis_error_is_transient(reply->str) ? RKB_REDIS_ERR_IO : RKB_REDIS_ERR_PROTO;
            freeReplyObject(reply);
            rkb_redis_close(sub->redis);
            return err;
        }
        confirmed += dispatch(reply, on_message, opaque) == PUSH_CONFIRMATION;
        freeReplyObject(reply);
    }
    return RKB_REDIS_OK;
}

int rkb_subscriber_poll(rkb_subscriber_t *sub, int timeout_ms, size_t max,
                        rkb_sub_message_cb_t *on_message, void *opaque, char *errstr,
                        size_t errstr_size) {
    int handed = 0;
    for (size_t i = 0; i < max; i++) {
        redisReply *reply;
        if (rkb_redis_read(sub->redis, i == 0 ? timeout_ms : 0, &reply, errstr, errstr_size))
            return -1;
        if (!reply)
            break;
        handed += dispatch(reply, on_message, opaque) == PUSH_MESSAGE;
        freeReplyObject(reply);
    }
    return handed;
}
