/*
 * sentinel.c — Redis Sentinel: the redis-sentinel:// URI, and finding the current master
 * (see sentinel.h).
 *
 * Where it sits: rkb_redis_connect (redis.c) calls rkb_sentinel_resolve before it connects,
 * when the conf names a sentinel master, and rkb_sentinel_check_master once the session is set
 * up. The sentinels are asked over short-lived plain connections of their own (a transport and
 * a hiredis reader, no rkb_redis_t: they are not the task's connection and must not show in
 * its metrics). Every connect asks again, so a failover is followed by the next reconnect: the
 * callers already reconnect after any connection failure, and redis.c closes a connection that
 * answered READONLY.
 *
 * Sentinels are asked without AUTH (a sentinel with requirepass is not supported yet) and
 * without TLS; the password, user, db and TLS settings are the master's.
 *
 * Threads: the thread that owns the rkb_redis_t being connected; nothing is shared.
 */
#include "redis/sentinel.h"
#include "redis/transport.h"

#include "util/log.h"
#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SENTINEL_DEFAULT_PORT 26379
/* The most a sentinel may take to connect and answer: a sentinel that is down or hung must not
 * hold the connect for redis.timeout when another could answer at once. */
#define SENTINEL_TIMEOUT_MS 2000

static const char scheme[] = "redis-sentinel://";
static const char tls_scheme[] = "rediss-sentinel://";

bool rkb_sentinel_uri_matches(const char *uri) {
    return !strncasecmp(uri, scheme, sizeof(scheme) - 1) ||
           !strncasecmp(uri, tls_scheme, sizeof(tls_scheme) - 1);
}

/* The last occurrence of c in [s, end), or NULL. */
static const char *last_in(const char *s, const char *end, char c) {
    const char *found = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == c)
            found = p;
    return found;
}

/* Parses one "host[:port]" of the sentinel list (len bytes at s) with redis.c's own URI parser,
 * so that hosts, IPv6 brackets and ports follow the same rules; no port: 26379. */
static int parse_sentinel(const char *s, size_t len, rkb_redis_addr_t *addr, char *errstr,
                          size_t errstr_size) {
    if (len == 0) {
        snprintf(errstr, errstr_size,
                 "Redis URI: empty sentinel address in the list (host[:port],host[:port]...)");
        return -1;
    }
    bool has_port = *s == '[' ? memmem(s, len, "]:", 2) != NULL : memchr(s, ':', len) != NULL;
    char *text = NULL;
    if (asprintf(&text, "redis://%.*s", (int)len, s) < 0) {
        fprintf(stderr, "rkbridge: out of memory parsing a Redis URI\n");
        abort();
    }
    rkb_redis_conf_t one;
    rkb_redis_conf_init(&one);
    int rc = rkb_redis_conf_from_uri(&one, text, errstr, errstr_size);
    free(text);
    if (rc == 0) {
        addr->host = one.host;
        addr->port = has_port ? one.port : SENTINEL_DEFAULT_PORT;
        one.host = NULL;
    }
    rkb_redis_conf_clear(&one);
    return rc;
}

/*
 * The '#' that starts the master's name is the last one, and the userinfo ends at the last '@'
 * before it: a password may hold '#', '@', ',' or '/' (as in redis://, where the last '@' ends
 * it), a master name may not hold '#'. The userinfo and the db are parsed by redis.c as the
 * URI "redis://USERINFO@sentinel/DB", so they follow the redis:// rules exactly.
 */
int rkb_sentinel_conf_from_uri(rkb_redis_conf_t *conf, const char *uri, char *errstr,
                               size_t errstr_size) {
    if (!strncasecmp(uri, tls_scheme, sizeof(tls_scheme) - 1)) {
        snprintf(errstr, errstr_size,
                 "Redis URI: rediss-sentinel:// (TLS to the sentinels) is not supported; use "
                 "redis-sentinel:// (with redis.tls=true for TLS to the master)");
        return -1;
    }
    const char *authority = uri + sizeof(scheme) - 1;
    const char *end = authority + strlen(authority);
    const char *hash = last_in(authority, end, '#');
    if (!hash || hash + 1 == end) {
        snprintf(errstr, errstr_size,
                 "Redis URI: redis-sentinel:// needs the master's name after '#' "
                 "(redis-sentinel://host:26379#mymaster)");
        return -1;
    }
    const char *master = hash + 1;
    for (const char *p = master; p < end; p++) {
        if ((unsigned char)*p <= ' ' || *p == '/' || *p == '?') {
            snprintf(errstr, errstr_size,
                     "Redis URI: bad master name after '#' (no spaces, '/' or '?')");
            return -1;
        }
    }
    const char *at = last_in(authority, hash, '@');
    const char *hosts = at ? at + 1 : authority;
    size_t hosts_len = hash > hosts ? (size_t)(hash - hosts) : 0; /* '@' is before '#' */
    const char *hosts_end = memchr(hosts, '/', hosts_len);
    const char *path = hosts_end; /* "/db" up to hash, or NULL */
    if (!hosts_end)
        hosts_end = hash;

    /* User, password and db: "redis://USERINFO@sentinel/DB". */
    rkb_redis_conf_t session;
    rkb_redis_conf_init(&session);
    rkb_buf_t text;
    rkb_buf_init(&text);
    rkb_buf_appends(&text, "redis://");
    if (at)
        rkb_buf_append(&text, authority, (size_t)(at + 1 - authority));
    rkb_buf_appends(&text, "sentinel");
    if (path)
        rkb_buf_append(&text, path, (size_t)(hash - path));
    int rc = rkb_redis_conf_from_uri(&session, text.data, errstr, errstr_size);
    explicit_bzero(text.data, text.len); /* it holds the password */
    rkb_buf_free(&text);
    if (rc) {
        rkb_redis_conf_clear(&session);
        return -1;
    }

    size_t cnt = 1;
    for (const char *p = hosts; p < hosts_end; p++)
        cnt += *p == ',';
    rkb_redis_addr_t *sentinels = rkb_calloc(cnt, sizeof(*sentinels));
    const char *item = hosts;
    for (size_t i = 0; i < cnt; i++) {
        const char *comma = memchr(item, ',', (size_t)(hosts_end - item));
        const char *item_end = comma ? comma : hosts_end;
        if (parse_sentinel(item, (size_t)(item_end - item), &sentinels[i], errstr, errstr_size)) {
            for (size_t j = 0; j < i; j++)
                free(sentinels[j].host);
            free(sentinels);
            rkb_redis_conf_clear(&session);
            return -1;
        }
        item = item_end + 1;
    }

    /* Success: conf takes the session's user, password and db, and the sentinels. */
    rkb_sentinel_conf_clear(conf);
    free(conf->username);
    if (conf->password) {
        explicit_bzero(conf->password, strlen(conf->password));
        free(conf->password);
    }
    conf->username = session.username;
    conf->password = session.password;
    session.username = session.password = NULL;
    conf->db = session.db;
    conf->tls.enabled = false;
    conf->sentinel_master = rkb_strndup(master, (size_t)(end - master));
    conf->sentinels = sentinels;
    conf->sentinel_cnt = cnt;
    rkb_redis_conf_clear(&session);
    return 0;
}

void rkb_sentinel_conf_clear(rkb_redis_conf_t *conf) {
    for (size_t i = 0; i < conf->sentinel_cnt; i++)
        free(conf->sentinels[i].host);
    free(conf->sentinels);
    free(conf->sentinel_master);
    conf->sentinels = NULL;
    conf->sentinel_cnt = 0;
    conf->sentinel_master = NULL;
}

void rkb_sentinel_conf_copy(rkb_redis_conf_t *dst, const rkb_redis_conf_t *src) {
    dst->sentinel_master = src->sentinel_master ? rkb_strdup(src->sentinel_master) : NULL;
    dst->sentinel_cnt = src->sentinel_cnt;
    dst->sentinels = NULL;
    if (src->sentinel_cnt) {
        dst->sentinels = rkb_calloc(src->sentinel_cnt, sizeof(*dst->sentinels));
        for (size_t i = 0; i < src->sentinel_cnt; i++) {
            dst->sentinels[i].host = rkb_strdup(src->sentinels[i].host);
            dst->sentinels[i].port = src->sentinels[i].port;
        }
    }
}

/* "host:port", with brackets around an IPv6 address. */
static void append_addr(rkb_buf_t *out, const rkb_redis_addr_t *addr) {
    bool ipv6 = strchr(addr->host, ':') != NULL;
    rkb_buf_appendf(out, "%s%s%s:%d", ipv6 ? "[" : "", addr->host, ipv6 ? "]" : "", addr->port);
}

const char *rkb_sentinel_describe(const rkb_redis_conf_t *conf, char *buf, size_t size) {
    rkb_buf_t out;
    rkb_buf_init(&out);
    rkb_buf_appendf(&out, "sentinel %s via ", conf->sentinel_master);
    for (size_t i = 0; i < conf->sentinel_cnt; i++) {
        if (i)
            rkb_buf_appends(&out, ",");
        append_addr(&out, &conf->sentinels[i]);
    }
    rkb_buf_appendf(&out, "/%d", conf->db);
    snprintf(buf, size, "%s", out.data);
    rkb_buf_free(&out);
    return buf;
}

/* One command to one sentinel on a connection of its own, closed after the reply; the whole
 * exchange within timeout_ms. RKB_REDIS_OK with *reply (caller frees), or an error code with
 * why (without the sentinel's address). */
static int ask_sentinel(const rkb_redis_addr_t *sentinel, int argc, const char **argv,
                        int timeout_ms, redisReply **reply, char *why, size_t why_size) {
    *reply = NULL;
    int64_t until = rkb_now_ms() + timeout_ms;
    rkb_transport_t *conn;
    int err = rkb_transport_connect(sentinel->host, sentinel->port, timeout_ms, NULL, NULL, &conn,
                                    why, why_size);
    if (err)
        return err;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    redisReader *reader = redisReaderCreate();
    if (len < 0 || !reader) {
        fprintf(stderr, "rkbridge: out of memory asking a Redis sentinel\n");
        abort();
    }
    err = rkb_transport_write(conn, cmd, (size_t)len, timeout_ms, why, why_size);
    redisFreeCommand(cmd);
    void *parsed = NULL;
    while (!err && !parsed) {
        if (redisReaderGetReply(reader, &parsed) != REDIS_OK) {
            snprintf(why, why_size, "protocol error: %s", reader->errstr);
            err = RKB_REDIS_ERR_PROTO;
            break;
        }
        if (parsed)
            break;
        int64_t left = until - rkb_now_ms();
        if (left <= 0) {
            snprintf(why, why_size, "no reply within %d ms", timeout_ms);
            err = RKB_REDIS_ERR_IO;
            break;
        }
        char chunk[4096];
        size_t got = 0;
        err = rkb_transport_read(conn, chunk, sizeof(chunk), (int)left, &got, why, why_size);
        if (!err && got && redisReaderFeed(reader, chunk, got) != REDIS_OK) {
            snprintf(why, why_size, "protocol error: %s", reader->errstr);
            err = RKB_REDIS_ERR_PROTO;
        }
    }
    redisReaderFree(reader);
    rkb_transport_close(conn);
    if (err) {
        if (parsed)
            freeReplyObject(parsed);
        return err;
    }
    *reply = parsed;
    return RKB_REDIS_OK;
}

/* The address in a get-master-addr-by-name reply (["host", "port"]). Returns 0, or -1 with
 * why. */
static int master_addr(const redisReply *reply, char **host, int *port, char *why,
                       size_t why_size) {
    int64_t value;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING || reply->element[0]->len == 0 ||
        rkb_parse_int64(reply->element[1]->str, 1, 65535, &value) != 0) {
        snprintf(why, why_size, "unexpected reply to SENTINEL get-master-addr-by-name (type %d)",
                 reply->type);
        return -1;
    }
    *host = rkb_strndup(reply->element[0]->str, reply->element[0]->len);
    *port = (int)value;
    return 0;
}

/*
 * A sentinel that is down, slow, or answers anything but an address is skipped: the next one
 * may know. The first address given wins; sentinels that disagree (one has not seen the last
 * failover yet) are sorted out by rkb_sentinel_check_master, which refuses a replica.
 */
int rkb_sentinel_resolve(const rkb_redis_conf_t *conf, const char *component, char **host,
                         int *port, char *errstr, size_t errstr_size) {
    int timeout_ms = conf->connect_timeout_ms > 0 && conf->connect_timeout_ms < SENTINEL_TIMEOUT_MS
                         ? conf->connect_timeout_ms
                         : SENTINEL_TIMEOUT_MS;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", conf->sentinel_master};
    rkb_buf_t reasons;
    rkb_buf_init(&reasons);
    size_t unknown = 0; /* sentinels that answered that they know no such master */
    int err = RKB_REDIS_ERR_IO;
    for (size_t i = 0; i < conf->sentinel_cnt && err != RKB_REDIS_OK; i++) {
        const rkb_redis_addr_t *sentinel = &conf->sentinels[i];
        redisReply *reply;
        char why[512];
        if (ask_sentinel(sentinel, 3, argv, timeout_ms, &reply, why, sizeof(why)) == RKB_REDIS_OK) {
            if (reply->type == REDIS_REPLY_NIL) {
                snprintf(why, sizeof(why), "monitors no master named '%s'", conf->sentinel_master);
                unknown++;
            } else if (reply->type == REDIS_REPLY_ERROR) {
                snprintf(why, sizeof(why), "%s", reply->str);
            } else if (master_addr(reply, host, port, why, sizeof(why)) == 0) {
                err = RKB_REDIS_OK;
                bool ipv6 = strchr(*host, ':') != NULL;
                rkb_log_info(component, "redis sentinel %s:%d: master '%s' is at %s%s%s:%d",
                             sentinel->host, sentinel->port, conf->sentinel_master, ipv6 ? "[" : "",
                             *host, ipv6 ? "]" : "", *port);
            }
            freeReplyObject(reply);
        }
        if (err != RKB_REDIS_OK) {
            rkb_buf_appends(&reasons, reasons.len ? "; " : "");
            append_addr(&reasons, sentinel);
            rkb_buf_appendf(&reasons, ": %s", why);
        }
    }
    if (err != RKB_REDIS_OK) {
        /* Every sentinel answered, and none monitors the name: redis.uri names the wrong
         * master (or the wrong sentinels), which retrying will not change. */
        bool misnamed = unknown == conf->sentinel_cnt;
        if (misnamed)
            err = RKB_REDIS_ERR_PROTO;
        snprintf(errstr, errstr_size, "redis sentinel master '%s': %s%s", conf->sentinel_master,
                 reasons.data, misnamed ? " (check the master name after '#' in redis.uri)" : "");
    }
    rkb_buf_free(&reasons);
    return err;
}

int rkb_sentinel_check_master(rkb_redis_t *r, const char *addr, char *errstr, size_t errstr_size) {
    const char *argv[] = {"ROLE"};
    redisReply *reply = rkb_redis_command(r, 1, argv, NULL, errstr, errstr_size);
    if (!reply)
        return RKB_REDIS_ERR_IO;
    int err = RKB_REDIS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        err = rkb_redis_error_code(reply->str);
        snprintf(errstr, errstr_size,
                 "redis %s: ROLE failed: %s (checking that the server the sentinel named is the "
                 "master; an ACL user needs ROLE)",
                 addr, reply->str);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
               reply->element[0]->type != REDIS_REPLY_STRING) {
        err = RKB_REDIS_ERR_PROTO;
        snprintf(errstr, errstr_size, "redis %s: ROLE: unexpected reply (type %d)", addr,
                 reply->type);
    } else if (strcmp(reply->element[0]->str, "master") != 0) {
        /* A sentinel that has not seen the failover yet, or a master demoted just now. */
        err = RKB_REDIS_ERR_IO;
        snprintf(errstr, errstr_size,
                 "redis %s: the sentinel named it the master, but it is a %s now (a failover in "
                 "progress?); asking the sentinels again later",
                 addr, reply->element[0]->str);
    }
    freeReplyObject(reply);
    return err;
}
