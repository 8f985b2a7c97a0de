/*
 * sentinel.h — Redis Sentinel, for redis.c: the redis-sentinel:// URI and where its master is
 * now. Private to the redis/ module (redis.c is its only user, as of transport.h).
 *
 * A conf names a sentinel master when conf->sentinel_master is set (redis.h). rkb_redis_connect
 * then asks the sentinels for the master's address (rkb_sentinel_resolve), connects there as
 * to any server, and checks that it is a master (rkb_sentinel_check_master). Nothing is kept
 * between connects: after a failover, the next connect finds the new master.
 */
#ifndef RKB_REDIS_SENTINEL_H
#define RKB_REDIS_SENTINEL_H

#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>

/* True when uri starts with redis-sentinel:// or rediss-sentinel:// (any case). */
bool rkb_sentinel_uri_matches(const char *uri);

/* Parses "redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#MASTER" into
 * conf: the sentinels (default port 26379) and the master's name; user, password and db are
 * the master's. Returns 0, or -1 with errstr (never the password) and conf unchanged.
 * rediss-sentinel:// is refused with a reason. */
int rkb_sentinel_conf_from_uri(rkb_redis_conf_t *conf, const char *uri, char *errstr,
                               size_t errstr_size);
/* Frees the sentinel fields of conf and zeroes them (the rest of conf is untouched). */
void rkb_sentinel_conf_clear(rkb_redis_conf_t *conf);
/* Deep-copies src's sentinel fields into dst's (which are overwritten, not freed). */
void rkb_sentinel_conf_copy(rkb_redis_conf_t *dst, const rkb_redis_conf_t *src);
/* "sentinel MASTER via h1:26379,h2:26379/db" into buf; returns buf. */
const char *rkb_sentinel_describe(const rkb_redis_conf_t *conf, char *buf, size_t size);

/* Asks the sentinels of conf in order (SENTINEL get-master-addr-by-name, each within a short
 * timeout) for the master's address; the first that knows it answers. Returns RKB_REDIS_OK
 * with *host (caller frees) and *port; RKB_REDIS_ERR_IO with errstr (what each sentinel said)
 * when none could tell; RKB_REDIS_ERR_PROTO when every sentinel answered and none monitors a
 * master of that name (redis.uri is wrong). component names the caller in the log line.
 * @locality: the thread that owns the rkb_redis_t being connected (blocks). */
int rkb_sentinel_resolve(const rkb_redis_conf_t *conf, const char *component, char **host,
                         int *port, char *errstr, size_t errstr_size);

/* ROLE on r, just connected to the address a sentinel gave: RKB_REDIS_OK when r is a master;
 * RKB_REDIS_ERR_IO with errstr when it is a replica (demoted by a failover the sentinel asked
 * had not seen yet: ask again later) or the connection failed; the code of the error reply
 * (rkb_redis_error_code) otherwise. addr prefixes errstr. */
int rkb_sentinel_check_master(rkb_redis_t *r, const char *addr, char *errstr, size_t errstr_size);

#endif
