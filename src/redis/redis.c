/*
 * redis.c — the connection to one Redis server: URI parsing, connect and session setup
 * (AUTH, SELECT, CLIENT SETNAME), pipelined batches and error classification (see redis.h).
 *
 * Data path: the sink's writer fills an rkb_cmds_t; rkb_redis_pipeline formats it as RESP in
 * one buffer, hands it to hiredis in one piece and reads one reply per command, in order. The
 * caller decides what a reply means for its records (commit, retry, dead-letter).
 *
 * Threads: a rkb_redis_t belongs to one thread at a time (the task that owns it); nothing here
 * takes a lock. The URI and error helpers are pure and callable from any thread.
 */
#include "redis/redis.h"

#include "metrics/metrics.h"

#include "util/log.h"
#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#define DEFAULT_HOST       "localhost"
#define DEFAULT_PORT       6379
#define DEFAULT_TIMEOUT_MS 10000

struct rkb_redis_s {
    rkb_redis_conf_t conf; /* our own copy */
    char *component;       /* who speaks in log lines */
    char addr[320];        /* "host:port", the prefix of every errstr */
    redisContext *ctx;     /* NULL when not connected */
    rkb_buf_t resp;        /* the RESP text of the last batch, reused */
    rkb_task_metrics_t *metrics; /* of the task that made the handle, or NULL */
    rkb_conn_state_t state;      /* as reported to metrics */
};

/* Connection state and round trips go to the owning task's metrics (metrics/metrics.h). */
static void set_state(rkb_redis_t *r, rkb_conn_state_t state) {
    rkb_task_metrics_redis_conn(r->metrics, r->state, state);
    r->state = state;
}

const char *rkb_redis_err2str(rkb_redis_err_t err) {
    switch (err) {
    case RKB_REDIS_OK:
        return "success";
    case RKB_REDIS_ERR_IO:
        return "connection error";
    case RKB_REDIS_ERR_AUTH:
        return "authentication failed";
    case RKB_REDIS_ERR_PROTO:
        return "protocol error";
    }
    return "unknown error";
}

/* ---- Configuration ------------------------------------------------------------------------ */

void rkb_redis_conf_init(rkb_redis_conf_t *conf) {
    memset(conf, 0, sizeof(*conf));
    conf->host = rkb_strdup(DEFAULT_HOST);
    conf->port = DEFAULT_PORT;
    conf->connect_timeout_ms = DEFAULT_TIMEOUT_MS;
    conf->command_timeout_ms = DEFAULT_TIMEOUT_MS;
}

/* Frees a secret after wiping it, so that it does not linger in freed heap memory. */
static void free_secret(char *secret) {
    if (secret) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
}

void rkb_redis_conf_clear(rkb_redis_conf_t *conf) {
    if (!conf)
        return;
    free(conf->host);
    free(conf->username);
    free_secret(conf->password);
    free(conf->client_name);
    memset(conf, 0, sizeof(*conf));
}

const char *rkb_redis_conf_describe(const rkb_redis_conf_t *conf, char *buf, size_t size) {
    const char *host = conf->host ? conf->host : DEFAULT_HOST;
    bool ipv6 = strchr(host, ':') != NULL;
    snprintf(buf, size, "%s%s%s:%d/%d", ipv6 ? "[" : "", host, ipv6 ? "]" : "", conf->port,
             conf->db);
    return buf;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new string. Returns NULL on a malformed escape or an
 * escaped NUL (neither can be sent in AUTH). */
static char *percent_decode(const char *s, size_t len) {
    char *out = rkb_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '%') {
            out[n++] = s[i];
            continue;
        }
        int hi = i + 2 < len ? hex_value(s[i + 1]) : -1;
        int lo = hi >= 0 ? hex_value(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) {
            explicit_bzero(out, n);
            free(out);
            return NULL;
        }
        out[n++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[n] = '\0';
    return out;
}

/* Splits "host[:port]" (host possibly "[ipv6]") of length len. */
static int parse_host_port(const char *s, size_t len, char **host, int *port, char *errstr,
                           size_t errstr_size) {
    const char *host_start = s, *host_end, *rest;
    const char *end = s + len;
    if (len > 0 && *s == '[') {
        host_start = s + 1;
        host_end = memchr(host_start, ']', (size_t)(end - host_start));
        if (!host_end) {
            snprintf(errstr, errstr_size, "Redis URI: missing ']' after IPv6 address");
            return -1;
        }
        rest = host_end + 1;
        if (rest < end && *rest != ':') {
            snprintf(errstr, errstr_size, "Redis URI: unexpected text after ']'");
            return -1;
        }
    } else {
        host_end = memchr(s, ':', len);
        if (!host_end)
            host_end = end;
        rest = host_end;
    }
    if (host_end == host_start) {
        snprintf(errstr, errstr_size, "Redis URI: missing host");
        return -1;
    }
    *port = DEFAULT_PORT;
    if (rest < end) { /* rest points at ':' */
        char digits[16];
        size_t digits_len = (size_t)(end - rest - 1);
        int64_t value;
        if (digits_len >= sizeof(digits)) {
            snprintf(errstr, errstr_size, "Redis URI: bad port (expected 1-65535)");
            return -1;
        }
        memcpy(digits, rest + 1, digits_len);
        digits[digits_len] = '\0';
        if (rkb_parse_int64(digits, 1, 65535, &value) != 0) {
            snprintf(errstr, errstr_size, "Redis URI: bad port '%s' (expected 1-65535)", digits);
            return -1;
        }
        *port = (int)value;
    }
    *host = rkb_strndup(host_start, (size_t)(host_end - host_start));
    return 0;
}

/*
 * redis://[[user]:password@]host[:port][/db], the form redis-cli takes: userinfo without ':'
 * is a password alone. The last '@' ends the userinfo, so that a password with an unescaped
 * '@' or '/' still works. Error messages quote the host, port or db at fault but never the
 * userinfo, so they are safe to log.
 */
int rkb_redis_conf_from_uri(rkb_redis_conf_t *conf, const char *uri, char *errstr,
                            size_t errstr_size) {
    static const char scheme[] = "redis://";
    const size_t scheme_len = sizeof(scheme) - 1;
    char *host = NULL, *username = NULL, *password = NULL;
    int port = DEFAULT_PORT;
    int64_t db = 0;

    if (strncasecmp(uri, scheme, scheme_len) != 0) {
        /* Quote a scheme only when it looks like one: what precedes "://" could be a
         * password in a malformed URI. */
        size_t other_len = strspn(uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789+-.");
        bool has_scheme = other_len > 0 && other_len < 32 && !strncmp(uri + other_len, "://", 3);
        if (has_scheme && other_len == 6 && !strncasecmp(uri, "rediss", 6))
            snprintf(errstr, errstr_size, "rediss://: TLS is not supported yet");
        else if (has_scheme)
            snprintf(errstr, errstr_size, "Redis URI: unsupported scheme '%.*s://' (expected %s)",
                     (int)other_len, uri, scheme);
        else
            snprintf(errstr, errstr_size, "Redis URI: must start with %s", scheme);
        return -1;
    }

    const char *authority = uri + scheme_len;
    const char *at = strrchr(authority, '@');
    const char *hostport = at ? at + 1 : authority;
    const char *path = strchr(hostport, '/');
    size_t hostport_len = path ? (size_t)(path - hostport) : strlen(hostport);

    if (strchr(hostport, '?') || strchr(hostport, '#')) {
        snprintf(errstr, errstr_size, "Redis URI: query parameters are not supported");
        return -1;
    }
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        const char *password_start = colon ? colon + 1 : authority;
        if (colon && colon > authority) {
            username = percent_decode(authority, (size_t)(colon - authority));
            if (!username) {
                snprintf(errstr, errstr_size, "Redis URI: bad percent-encoding in the user name");
                goto fail;
            }
        }
        password = percent_decode(password_start, (size_t)(at - password_start));
        if (!password) {
            snprintf(errstr, errstr_size, "Redis URI: bad percent-encoding in the password");
            goto fail;
        }
    }
    if (parse_host_port(hostport, hostport_len, &host, &port, errstr, errstr_size) != 0)
        goto fail;
    if (path && path[1] && rkb_parse_int64(path + 1, 0, INT_MAX, &db) != 0) {
        snprintf(errstr, errstr_size, "Redis URI: bad database '%.32s' (expected an integer >= 0)",
                 path + 1);
        goto fail;
    }

    free(conf->host);
    free(conf->username);
    free_secret(conf->password);
    conf->host = host;
    conf->port = port;
    conf->username = username;
    conf->password = password;
    conf->db = (int)db;
    return 0;

fail:
    free(host);
    free(username);
    free_secret(password);
    return -1;
}

/* ---- Signals ------------------------------------------------------------------------------ */

/*
 * hiredis writes with write(2), so a write to a connection Redis has reset raises SIGPIPE,
 * which kills the process unless it is ignored. Rather than depend on every program that links
 * this module to ignore it, each I/O call blocks SIGPIPE in the calling thread (a write's
 * SIGPIPE goes to the thread that wrote) and swallows one it caused, the way libpq does. The
 * write itself then fails with EPIPE, which is an ordinary I/O error here.
 */
typedef struct {
    sigset_t old_mask;
    bool was_pending;
} sigpipe_guard_t;

static void sigpipe_block(sigpipe_guard_t *guard) {
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    guard->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &guard->old_mask);
}

static void sigpipe_unblock(sigpipe_guard_t *guard) {
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (!guard->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const struct timespec no_wait = {0, 0};
        sigtimedwait(&pipe_set, NULL, &no_wait);
    }
    pthread_sigmask(SIG_SETMASK, &guard->old_mask, NULL);
}

/* ---- Connection --------------------------------------------------------------------------- */

rkb_redis_t *rkb_redis_new(const rkb_redis_conf_t *conf, const char *component) {
    rkb_redis_t *r = rkb_calloc(1, sizeof(*r));
    r->conf = *conf;
    r->conf.host = rkb_strdup(conf->host ? conf->host : DEFAULT_HOST);
    r->conf.username = conf->username ? rkb_strdup(conf->username) : NULL;
    r->conf.password = conf->password ? rkb_strdup(conf->password) : NULL;
    r->conf.client_name = conf->client_name ? rkb_strdup(conf->client_name) : NULL;
    r->component = rkb_strdup(component ? component : "redis");
    bool ipv6 = strchr(r->conf.host, ':') != NULL;
    snprintf(r->addr, sizeof(r->addr), "%s%s%s:%d", ipv6 ? "[" : "", r->conf.host, ipv6 ? "]" : "",
             r->conf.port);
    rkb_buf_init(&r->resp);
    r->metrics = rkb_task_metrics_current();
    return r;
}

void rkb_redis_destroy(rkb_redis_t *r) {
    if (!r)
        return;
    rkb_redis_close(r);
    set_state(r, RKB_CONN_UNKNOWN);
    rkb_redis_conf_clear(&r->conf);
    free(r->component);
    rkb_buf_free(&r->resp);
    free(r);
}

bool rkb_redis_is_connected(const rkb_redis_t *r) {
    return r->ctx != NULL;
}

void rkb_redis_close(rkb_redis_t *r) {
    if (!r->ctx)
        return;
    redisFree(r->ctx);
    r->ctx = NULL;
    set_state(r, RKB_CONN_UNKNOWN);
    rkb_log_info(r->component, "closed the connection to redis %s", r->addr);
}

static struct timeval ms_to_timeval(int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    return tv;
}

/* Describes the connection's failure in errstr, then drops the connection: after an I/O
 * error hiredis's context is unusable. */
static void connection_lost(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    const char *reason = r->ctx->errstr[0] ? r->ctx->errstr : "unknown I/O error";
    /* A socket timeout (SO_RCVTIMEO/SO_SNDTIMEO) surfaces as EAGAIN from read or write. */
    if (r->ctx->err == REDIS_ERR_IO && !strcmp(reason, strerror(EAGAIN)))
        snprintf(errstr, errstr_size, "redis %s: no reply within %d ms (command timeout)", r->addr,
                 r->conf.command_timeout_ms);
    else
        snprintf(errstr, errstr_size, "redis %s: %s", r->addr, reason);
    redisFree(r->ctx);
    r->ctx = NULL;
    set_state(r, RKB_CONN_DOWN);
    rkb_log_info(r->component, "disconnected: %s", errstr);
}

static bool starts_with_word(const char *msg, const char *word) {
    size_t len = strlen(word);
    return !strncmp(msg, word, len) && (msg[len] == ' ' || msg[len] == '\0');
}

static bool is_auth_error(const char *msg) {
    return starts_with_word(msg, "WRONGPASS") || starts_with_word(msg, "NOAUTH") ||
           starts_with_word(msg, "NOPERM") || strstr(msg, "invalid password") ||
           strstr(msg, "invalid username-password pair");
}

/*
 * Runs one command of the session setup and checks that it answered with a status reply
 * (+OK, +PONG). what names the step in errors ("AUTH as user 'bridge'"); the arguments are
 * never printed since AUTH's hold the password. An error reply maps to: ERR_IO when it will
 * pass by itself (LOADING...), ERR_AUTH when it is about credentials or when the step is AUTH,
 * ERR_PROTO otherwise (SELECT of a database the server does not have).
 */
static int setup_step(rkb_redis_t *r, const char *what, bool is_auth, int argc, const char **argv,
                      char *errstr, size_t errstr_size) {
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, NULL);
    sigpipe_unblock(&guard);
    if (!reply) {
        char reason[256];
        connection_lost(r, reason, sizeof(reason));
        snprintf(errstr, errstr_size, "%s (during %s)", reason, what);
        return RKB_REDIS_ERR_IO;
    }
    int err = RKB_REDIS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        if (rkb_redis_error_is_transient(reply->str))
            err = RKB_REDIS_ERR_IO;
        else if (is_auth || is_auth_error(reply->str))
            err = RKB_REDIS_ERR_AUTH;
        else
            err = RKB_REDIS_ERR_PROTO;
        snprintf(errstr, errstr_size, "redis %s: %s failed: %s", r->addr, what, reply->str);
    } else if (reply->type != REDIS_REPLY_STATUS) {
        err = RKB_REDIS_ERR_PROTO;
        snprintf(errstr, errstr_size, "redis %s: %s: unexpected reply (type %d)", r->addr, what,
                 reply->type);
    }
    freeReplyObject(reply);
    return err;
}

/* AUTH, SELECT and CLIENT SETNAME as configured, then PING, so that a connection reported
 * as up has answered a command (a server that requires a password we do not have is found
 * here, by NOAUTH, rather than in the first batch). */
static int session_setup(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    const rkb_redis_conf_t *conf = &r->conf;
    int err;
    if (conf->username || conf->password) {
        /* An ACL user without a password is a "nopass" user: any password is accepted. */
        const char *password = conf->password ? conf->password : "";
        char what[160];
        if (conf->username) {
            const char *argv[] = {"AUTH", conf->username, password};
            snprintf(what, sizeof(what), "AUTH as user '%.100s'", conf->username);
            err = setup_step(r, what, true, 3, argv, errstr, errstr_size);
        } else {
            const char *argv[] = {"AUTH", password};
            err = setup_step(r, "AUTH", true, 2, argv, errstr, errstr_size);
        }
        if (err)
            return err;
    }
    if (conf->db > 0) {
        char db[16], what[32];
        snprintf(db, sizeof(db), "%d", conf->db);
        snprintf(what, sizeof(what), "SELECT %d", conf->db);
        const char *argv[] = {"SELECT", db};
        if ((err = setup_step(r, what, false, 2, argv, errstr, errstr_size)))
            return err;
    }
    if (conf->client_name) {
        const char *argv[] = {"CLIENT", "SETNAME", conf->client_name};
        if ((err = setup_step(r, "CLIENT SETNAME", false, 3, argv, errstr, errstr_size)))
            return err;
    }
    const char *argv[] = {"PING"};
    return setup_step(r, "PING", false, 1, argv, errstr, errstr_size);
}

static int connect_once(rkb_redis_t *r, char *errstr, size_t errstr_size);

/* @locality: the thread that owns r (blocks for up to the connect timeout plus one command
 * timeout per setup command). */
int rkb_redis_connect(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    int err = connect_once(r, errstr, errstr_size);
    set_state(r, err == RKB_REDIS_OK ? RKB_CONN_UP : RKB_CONN_DOWN);
    return err;
}

static int connect_once(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    const rkb_redis_conf_t *conf = &r->conf;
    if (r->ctx)
        rkb_redis_close(r);

    redisContext *ctx = conf->connect_timeout_ms > 0
                            ? redisConnectWithTimeout(conf->host, conf->port,
                                                      ms_to_timeval(conf->connect_timeout_ms))
                            : redisConnect(conf->host, conf->port);
    if (!ctx) {
        snprintf(errstr, errstr_size, "redis %s: cannot allocate a connection", r->addr);
        return RKB_REDIS_ERR_IO;
    }
    if (ctx->err) {
        snprintf(errstr, errstr_size, "redis %s: cannot connect: %s", r->addr, ctx->errstr);
        redisFree(ctx);
        return RKB_REDIS_ERR_IO;
    }
    if ((conf->command_timeout_ms > 0 &&
         redisSetTimeout(ctx, ms_to_timeval(conf->command_timeout_ms)) != REDIS_OK) ||
        redisEnableKeepAlive(ctx) != REDIS_OK) {
        snprintf(errstr, errstr_size, "redis %s: cannot set socket options: %s", r->addr,
                 ctx->errstr);
        redisFree(ctx);
        return RKB_REDIS_ERR_IO;
    }
    r->ctx = ctx;

    int err = session_setup(r, errstr, errstr_size);
    if (err) {
        if (r->ctx) { /* still open after an error reply: the session is not usable */
            redisFree(r->ctx);
            r->ctx = NULL;
        }
        return err;
    }
    char where[400];
    rkb_log_info(r->component, "connected to redis %s%s%s%s",
                 rkb_redis_conf_describe(conf, where, sizeof(where)),
                 conf->username ? " as user '" : "", conf->username ? conf->username : "",
                 conf->username ? "'" : "");
    return RKB_REDIS_OK;
}

/* ---- Commands ----------------------------------------------------------------------------- */

/* Appends "<prefix><n>\r\n", the header of a RESP array or bulk string. */
static void resp_header(rkb_buf_t *out, char prefix, size_t n) {
    char text[32];
    char *p = text + sizeof(text);
    *--p = '\n';
    *--p = '\r';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    *--p = prefix;
    rkb_buf_append(out, p, (size_t)(text + sizeof(text) - p));
}

static void resp_format(rkb_buf_t *out, const rkb_cmds_t *cmds) {
    size_t count = rkb_cmds_count(cmds);
    rkb_buf_reset(out);
    for (size_t i = 0; i < count; i++) {
        int argc = rkb_cmds_argc(cmds, i);
        resp_header(out, '*', (size_t)argc);
        for (int j = 0; j < argc; j++) {
            size_t len;
            const char *arg = rkb_cmds_argv(cmds, i, j, &len);
            resp_header(out, '$', len);
            rkb_buf_append(out, arg, len);
            rkb_buf_append(out, "\r\n", 2);
        }
    }
}

/*
 * One batch, one buffer: the whole batch is formatted as RESP, appended to hiredis's output
 * buffer in one call, and the first redisGetReply writes all of it (blocking socket) before it
 * reads. Redis answers in order, so replies[i] belongs to command i. Redis buffers its replies
 * while we are still writing (no output limit for normal clients by default), so a large batch
 * cannot deadlock; the socket timeouts bound each write and read.
 *
 * @locality: the thread that owns r. Blocks until every reply is in or the connection failed.
 */
int rkb_redis_pipeline(rkb_redis_t *r, const rkb_cmds_t *cmds, redisReply **replies, char *errstr,
                       size_t errstr_size) {
    size_t count = rkb_cmds_count(cmds);
    for (size_t i = 0; i < count; i++)
        replies[i] = NULL;
    if (!r->ctx) {
        snprintf(errstr, errstr_size, "redis %s: not connected", r->addr);
        return RKB_REDIS_ERR_IO;
    }
    if (count == 0)
        return RKB_REDIS_OK;

    resp_format(&r->resp, cmds);
    if (redisAppendFormattedCommand(r->ctx, r->resp.data, r->resp.len) != REDIS_OK) {
        connection_lost(r, errstr, errstr_size);
        return RKB_REDIS_ERR_IO;
    }

    int64_t started_us = rkb_now_us();
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    size_t got = 0;
    while (got < count) {
        void *reply = NULL;
        if (redisGetReply(r->ctx, &reply) != REDIS_OK || !reply)
            break;
        replies[got++] = reply;
    }
    sigpipe_unblock(&guard);

    if (got < count) {
        /* A batch is all or nothing for the caller: it sends the whole batch again. */
        rkb_redis_replies_free(replies, got);
        connection_lost(r, errstr, errstr_size);
        return RKB_REDIS_ERR_IO;
    }
    rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - started_us, count);
    return RKB_REDIS_OK;
}

void rkb_redis_replies_free(redisReply **replies, size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
        replies[i] = NULL;
    }
}

redisReply *rkb_redis_command(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                              char *errstr, size_t errstr_size) {
    if (!r->ctx) {
        snprintf(errstr, errstr_size, "redis %s: not connected", r->addr);
        return NULL;
    }
    int64_t started_us = rkb_now_us();
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
    sigpipe_unblock(&guard);
    if (!reply)
        connection_lost(r, errstr, errstr_size);
    else
        rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - started_us, 1);
    return reply;
}

/* ---- Subscriber connections --------------------------------------------------------------- */

/* Writes hiredis's whole output buffer (blocking socket: each write waits up to the command
 * timeout). */
static int flush_output(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    sigpipe_guard_t guard;
    sigpipe_block(&guard);
    int done = 0, rc = REDIS_OK;
    while (!done && (rc = redisBufferWrite(r->ctx, &done)) == REDIS_OK)
        ;
    sigpipe_unblock(&guard);
    if (rc != REDIS_OK) {
        connection_lost(r, errstr, errstr_size);
        return RKB_REDIS_ERR_IO;
    }
    return RKB_REDIS_OK;
}

int rkb_redis_send(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen, char *errstr,
                   size_t errstr_size) {
    if (!r->ctx) {
        snprintf(errstr, errstr_size, "redis %s: not connected", r->addr);
        return RKB_REDIS_ERR_IO;
    }
    if (redisAppendCommandArgv(r->ctx, argc, argv, argvlen) != REDIS_OK) {
        connection_lost(r, errstr, errstr_size);
        return RKB_REDIS_ERR_IO;
    }
    return flush_output(r, errstr, errstr_size);
}

/*
 * hiredis's blocking redisGetReply would wait for a whole reply and, on the socket timeout,
 * leave the context in an error state. Instead: take a reply hiredis has already parsed, else
 * poll the socket for what is left of timeout_ms and feed whatever arrived to the parser, until
 * a reply is complete or the time is up. A partly received reply stays in hiredis's buffer for
 * the next call.
 *
 * @locality: the thread that owns r.
 */
int rkb_redis_read(rkb_redis_t *r, int timeout_ms, redisReply **reply, char *errstr,
                   size_t errstr_size) {
    *reply = NULL;
    if (!r->ctx) {
        snprintf(errstr, errstr_size, "redis %s: not connected", r->addr);
        return RKB_REDIS_ERR_IO;
    }
    int64_t until = rkb_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        void *parsed = NULL;
        if (redisGetReplyFromReader(r->ctx, &parsed) != REDIS_OK) {
            connection_lost(r, errstr, errstr_size);
            return RKB_REDIS_ERR_IO;
        }
        if (parsed) {
            *reply = parsed;
            return RKB_REDIS_OK;
        }
        int64_t left_ms = until - rkb_now_ms();
        struct pollfd pfd = {.fd = r->ctx->fd, .events = POLLIN};
        int ready = poll(&pfd, 1, left_ms > 0 ? (int)left_ms : 0);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready < 0) {
            snprintf(errstr, errstr_size, "redis %s: poll: %s", r->addr, strerror(errno));
            redisFree(r->ctx);
            r->ctx = NULL;
            set_state(r, RKB_CONN_DOWN);
            rkb_log_info(r->component, "disconnected: %s", errstr);
            return RKB_REDIS_ERR_IO;
        }
        if (ready == 0)
            return RKB_REDIS_OK; /* nothing complete in time */
        /* Readable (or hung up): this read does not block. EOF is an error here. */
        if (redisBufferRead(r->ctx) != REDIS_OK) {
            connection_lost(r, errstr, errstr_size);
            return RKB_REDIS_ERR_IO;
        }
    }
}

/* ---- Errors ------------------------------------------------------------------------------- */

const char *rkb_redis_reply_error(const redisReply *reply) {
    if (!reply)
        return NULL;
    if (reply->type == REDIS_REPLY_ERROR)
        return reply->str;
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const char *msg = rkb_redis_reply_error(reply->element[i]);
            if (msg)
                return msg;
        }
    }
    return NULL;
}

/* Matched on the error code, the first word, so that BUSYGROUP or BUSYKEY (permanent) are
 * not taken for BUSY (a script running). EXECABORT only says that an earlier command of the
 * transaction failed: the caller looks at that command's error instead. */
bool rkb_redis_error_is_transient(const char *msg) {
    static const char *const transient[] = {"LOADING",  "BUSY",        "MASTERDOWN", "OOM",
                                            "TRYAGAIN", "CLUSTERDOWN", "READONLY",   "NOREPLICAS"};
    if (!msg)
        return false;
    for (size_t i = 0; i < RKB_ARRAY_SIZE(transient); i++) {
        if (starts_with_word(msg, transient[i]))
            return true;
    }
    return false;
}
