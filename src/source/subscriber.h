/*
 * subscriber.h — a Redis pub/sub subscriber connection, shared by the keys source (keyspace
 * notifications) and the pub/sub source: connect, SUBSCRIBE/PSUBSCRIBE, wait until Redis has
 * confirmed every subscription, then hand each pushed message to a callback.
 *
 * Redis keeps nothing for a subscriber that is away (SEMANTICS.md §5.1): after any error the
 * caller must count what was published in between as lost, and subscribe again.
 *
 * @locality: one thread owns a subscriber; callbacks run on it, inside the calls below.
 */
#ifndef RKB_SOURCE_SUBSCRIBER_H
#define RKB_SOURCE_SUBSCRIBER_H

#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>

/* One pushed message; the bytes belong to the reply and are valid during the callback. */
typedef struct rkb_sub_message_s {
    const char *pattern; /* the PSUBSCRIBE pattern it matched, or NULL (a channel subscription) */
    size_t pattern_len;
    const char *channel;
    size_t channel_len;
    const char *payload;
    size_t payload_len;
} rkb_sub_message_t;

typedef void(rkb_sub_message_cb_t)(const rkb_sub_message_t *msg, void *opaque);

typedef struct rkb_subscriber_s rkb_subscriber_t;

/* A handle; copies conf. No I/O. component names the owner in log lines. */
rkb_subscriber_t *rkb_subscriber_new(const rkb_redis_conf_t *conf, const char *component);
void rkb_subscriber_destroy(rkb_subscriber_t *sub); /* closes; NULL is safe */

/* (Re)connects and subscribes to the channels and patterns (either list may be empty, not
 * both), waiting up to the command timeout for each confirmation; messages that arrive
 * meanwhile already go to on_message. Returns RKB_REDIS_OK; RKB_REDIS_ERR_IO when Redis could
 * not be reached or did not confirm in time (transient); RKB_REDIS_ERR_AUTH or
 * RKB_REDIS_ERR_PROTO when Redis refused the session or a subscription (an ACL user without
 * access to a channel: NOPERM). errstr says why; the connection is closed on any error. */
int rkb_subscriber_subscribe(rkb_subscriber_t *sub, const char *const *channels, size_t channel_cnt,
                             const char *const *patterns, size_t pattern_cnt,
                             rkb_sub_message_cb_t *on_message, void *opaque, char *errstr,
                             size_t errstr_size);

/* Waits up to timeout_ms for a message, then also takes those already received, up to max in
 * all, handing each to on_message. Replies that are not messages (confirmations) are skipped.
 * Returns the number of messages handed over, or -1 with errstr when the connection failed or
 * Redis closed it (then it is closed: subscribe again). */
int rkb_subscriber_poll(rkb_subscriber_t *sub, int timeout_ms, size_t max,
                        rkb_sub_message_cb_t *on_message, void *opaque, char *errstr,
                        size_t errstr_size);

bool rkb_subscriber_is_connected(const rkb_subscriber_t *sub);
void rkb_subscriber_close(rkb_subscriber_t *sub);

#endif
