/*
 * redis.c — the connection to one Redis server: URI parsing, connect and session setup
 * (TLS, AUTH, SELECT, CLIENT SETNAME), pipelined batches and error classification (see
 * redis.h).
 *
 * Data path: the sink's writer fills an rkb_cmds_t; rkb_redis_pipeline formats it as RESP in
 * one buffer, writes it to the transport (plain TCP or TLS, transport.h) in one piece and reads
 * one reply per command, in order, through hiredis's reader. Single commands are formatted by
 * hiredis (redisFormatCommandArgv). The caller decides what a reply means for its records
 * (commit, retry, dead-letter).
 *
 * Threads: a rkb_redis_t belongs to one thread at a time (the task that owns it); nothing here
 * takes a lock. The URI and error helpers are pure and callable from any thread.
 */
#include "redis/redis.h"
#include "redis/redis_int.h"
#include "redis/sentinel.h"
#include "redis/transport.h"

#include "metrics/metrics.h"

#include "util/log.h"
#include "util/util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_HOST       "localhost"
#define DEFAULT_PORT       6379
#define DEFAULT_TIMEOUT_MS 10000

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
    case RKB_REDIS_ERR_TLS:
        return "TLS error";
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
    free(conf->tls.ca_file);
    free(conf->tls.ca_dir);
    free(conf->tls.cert_file);
    free(conf->tls.key_file);
    free_secret(conf->tls.key_password);
    free(conf->tls.server_name);
    rkb_sentinel_conf_clear(conf);
    memset(conf, 0, sizeof(*conf));
}

static char *strdup_or_null(const char *s) {
    return s ? rkb_strdup(s) : NULL;
}

void rkb_redis_conf_copy(rkb_redis_conf_t *dst, const rkb_redis_conf_t *src) {
    *dst = *src;
    dst->host = rkb_strdup(src->host ? src->host : DEFAULT_HOST);
    dst->username = strdup_or_null(src->username);
    dst->password = strdup_or_null(src->password);
    dst->client_name = strdup_or_null(src->client_name);
    dst->tls.ca_file = strdup_or_null(src->tls.ca_file);
    dst->tls.ca_dir = strdup_or_null(src->tls.ca_dir);
    dst->tls.cert_file = strdup_or_null(src->tls.cert_file);
    dst->tls.key_file = strdup_or_null(src->tls.key_file);
    dst->tls.key_password = strdup_or_null(src->tls.key_password);
    dst->tls.server_name = strdup_or_null(src->tls.server_name);
    rkb_sentinel_conf_copy(dst, src);
}

const char *rkb_redis_conf_describe(const rkb_redis_conf_t *conf, char *buf, size_t size) {
    if (conf->sentinel_master)
        return rkb_sentinel_describe(conf, buf, size);
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
 * is a password alone; rediss:// is the same over TLS. The last '@' ends the userinfo, so that
 * a password with an unescaped '@' or '/' still works. Error messages quote the host, port or
 * db at fault but never the userinfo, so they are safe to log.
 */
int rkb_redis_conf_from_uri(rkb_redis_conf_t *conf, const char *uri, char *errstr,
                            size_t errstr_size) {
    static const char scheme[] = "redis://", tls_scheme[] = "rediss://";
    size_t scheme_len;
    bool tls = false;
    char *host = NULL, *username = NULL, *password = NULL;
    int port = DEFAULT_PORT;
    int64_t db = 0;

    if (rkb_sentinel_uri_matches(uri))
        return rkb_sentinel_conf_from_uri(conf, uri, errstr, errstr_size);
    if (!strncasecmp(uri, scheme, sizeof(scheme) - 1)) {
        scheme_len = sizeof(scheme) - 1;
    } else if (!strncasecmp(uri, tls_scheme, sizeof(tls_scheme) - 1)) {
        scheme_len = sizeof(tls_scheme) - 1;
        tls = true;
    } else {
        /* Quote a scheme only when it looks like one: what precedes "://" could be a
         * password in a malformed URI. */
        size_t other_len = strspn(uri, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789+-.");
        bool has_scheme = other_len > 0 && other_len < 32 && !strncmp(uri + other_len, "://", 3);
        if (has_scheme)
            snprintf(errstr, errstr_size,
                     "Redis URI: unsupported scheme '%.*s://' (expected %s or %s)", (int)other_len,
                     uri, scheme, tls_scheme);
        else
            snprintf(errstr, errstr_size, "Redis URI: must start with %s or %s", scheme,
                     tls_scheme);
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
    conf->tls.enabled = tls;
    rkb_sentinel_conf_clear(conf);
    return 0;

fail:
    free(host);
    free(username);
    free_secret(password);
    return -1;
}

/* ---- Connection --------------------------------------------------------------------------- */

/* r->addr from r->conf's host and port. */
static void set_addr(rkb_redis_t *r) {
    bool ipv6 = strchr(r->conf.host, ':') != NULL;
    snprintf(r->addr, sizeof(r->addr), "%s%s%s:%d", ipv6 ? "[" : "", r->conf.host, ipv6 ? "]" : "",
             r->conf.port);
}

rkb_redis_t *rkb_redis_new(const rkb_redis_conf_t *conf, const char *component) {
    rkb_redis_t *r = rkb_calloc(1, sizeof(*r));
    rkb_redis_conf_copy(&r->conf, conf);
    r->component = rkb_strdup(component ? component : "redis");
    if (r->conf.sentinel_master) /* until a sentinel gives the master's address */
        snprintf(r->addr, sizeof(r->addr), "sentinel master '%.200s'", r->conf.sentinel_master);
    else
        set_addr(r);
    rkb_buf_init(&r->resp);
    r->metrics = rkb_task_metrics_current();
    return r;
}

void rkb_redis_destroy(rkb_redis_t *r) {
    if (!r)
        return;
    rkb_redis_close(r);
    rkb_cluster_destroy(r->cluster);
    set_state(r, RKB_CONN_UNKNOWN);
    rkb_tls_ctx_destroy(r->tls);
    rkb_redis_conf_clear(&r->conf);
    free(r->component);
    rkb_buf_free(&r->resp);
    free(r);
}

bool rkb_redis_is_connected(const rkb_redis_t *r) {
    return r->cluster ? rkb_cluster_ready(r) : r->conn != NULL;
}

bool rkb_redis_is_cluster(const rkb_redis_t *r) {
    return r->cluster != NULL;
}

/* Forgets the connection and whatever part of a reply it had delivered. */
static void drop_connection(rkb_redis_t *r) {
    rkb_transport_close(r->conn);
    r->conn = NULL;
    r->up = false;
    r->sent_head = r->sent_tail; /* nothing will answer them now */
    if (r->reader) {
        redisReaderFree(r->reader);
        r->reader = NULL;
    }
}

void rkb_redis_close(rkb_redis_t *r) {
    if (r->cluster)
        rkb_cluster_close(r);
    rkb_redis_close_one(r);
}

void rkb_redis_close_one(rkb_redis_t *r) {
    if (!r->conn)
        return;
    drop_connection(r);
    set_state(r, RKB_CONN_UNKNOWN);
    rkb_log_info(r->component, "closed the connection to redis %s", r->addr);
}

/* True, with errstr, when r has no connection: the calls below fail with RKB_REDIS_ERR_IO. */
static bool not_connected(const rkb_redis_t *r, char *errstr, size_t errstr_size) {
    if (r->conn)
        return false;
    snprintf(errstr, errstr_size, "redis %s: not connected", r->addr);
    return true;
}

/* The connection failed (why, from the transport or the reader): errstr says so with the
 * server's address, the connection is dropped (it is unusable after a partial exchange), and
 * err is returned. */
static int connection_lost(rkb_redis_t *r, int err, const char *why, char *errstr,
                           size_t errstr_size) {
    snprintf(errstr, errstr_size, "redis %s: %s", r->addr, why);
    /* During rkb_redis_connect the caller reports the failure itself. */
    if (r->up)
        rkb_log_info(r->component, "disconnected: %s", errstr);
    drop_connection(r);
    set_state(r, RKB_CONN_DOWN);
    return err;
}

/* How long one read may wait for the server: the command timeout, or without limit. */
static int read_timeout_ms(const rkb_redis_t *r) {
    return r->conf.command_timeout_ms > 0 ? r->conf.command_timeout_ms : -1;
}

/* Writes buf whole (each wait bounded by the command timeout). */
static int send_bytes(rkb_redis_t *r, const char *buf, size_t len, char *errstr,
                      size_t errstr_size) {
    char why[512];
    int err = rkb_transport_write(r->conn, buf, len, r->conf.command_timeout_ms, why, sizeof(why));
    return err ? connection_lost(r, err, why, errstr, errstr_size) : RKB_REDIS_OK;
}

int rkb_redis_write(rkb_redis_t *r, const char *buf, size_t len, char *errstr, size_t errstr_size) {
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    return send_bytes(r, buf, len, errstr, errstr_size);
}

/* One command in argv form, formatted by hiredis; wipe: the arguments hold a secret (AUTH),
 * so the formatted copy is cleared before it is freed. */
static int send_argv(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen, bool wipe,
                     char *errstr, size_t errstr_size) {
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (len < 0) {
        fprintf(stderr, "rkbridge: out of memory formatting a Redis command\n");
        abort();
    }
    int err = send_bytes(r, cmd, (size_t)len, errstr, errstr_size);
    if (wipe)
        explicit_bzero(cmd, (size_t)len);
    redisFreeCommand(cmd);
    return err;
}

/*
 * The next complete reply: one the reader already holds, else what the connection delivers
 * fed to the reader until a reply is complete. timeout_ms bounds each wait for bytes (0: only
 * what has arrived; < 0: no limit), or with total, the whole call. RKB_REDIS_OK with *reply, or
 * with *reply NULL when none was complete in time (a partial reply stays in the reader);
 * otherwise an error code with errstr, and the connection is dropped.
 */
static int next_reply(rkb_redis_t *r, int timeout_ms, bool total, redisReply **reply, char *errstr,
                      size_t errstr_size) {
    *reply = NULL;
    int64_t until = timeout_ms > 0 ? rkb_now_ms() + timeout_ms : 0;
    for (;;) {
        void *parsed = NULL;
        if (redisReaderGetReply(r->reader, &parsed) != REDIS_OK) {
            char why[160];
            snprintf(why, sizeof(why), "protocol error: %s", r->reader->errstr);
            return connection_lost(r, RKB_REDIS_ERR_IO, why, errstr, errstr_size);
        }
        if (parsed) {
            *reply = parsed;
            return RKB_REDIS_OK;
        }
        int wait_ms = timeout_ms;
        if (total && timeout_ms > 0) {
            int64_t left = until - rkb_now_ms();
            wait_ms = left > 0 ? (int)left : 0;
        }
        char chunk[READ_CHUNK], why[512];
        size_t got = 0;
        int err =
            rkb_transport_read(r->conn, chunk, sizeof(chunk), wait_ms, &got, why, sizeof(why));
        if (err)
            return connection_lost(r, err, why, errstr, errstr_size);
        if (got == 0)
            return RKB_REDIS_OK; /* nothing complete in time */
        if (redisReaderFeed(r->reader, chunk, got) != REDIS_OK) {
            snprintf(why, sizeof(why), "protocol error: %s", r->reader->errstr);
            return connection_lost(r, RKB_REDIS_ERR_IO, why, errstr, errstr_size);
        }
    }
}

/* The reply to a command sent: waits as the command timeout allows; no reply is a failure. */
static int await_reply(rkb_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size) {
    int err = next_reply(r, read_timeout_ms(r), false, reply, errstr, errstr_size);
    if (err == RKB_REDIS_OK && !*reply) {
        char why[96];
        snprintf(why, sizeof(why), "no reply within %d ms (command timeout)",
                 r->conf.command_timeout_ms);
        return connection_lost(r, RKB_REDIS_ERR_IO, why, errstr, errstr_size);
    }
    return err;
}

int rkb_redis_await(rkb_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size) {
    *reply = NULL;
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    return await_reply(r, reply, errstr, errstr_size);
}

/* One command and its reply. The error code tells a TLS refusal from a dropped connection. */
static int roundtrip(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen, bool wipe,
                     redisReply **reply, char *errstr, size_t errstr_size) {
    *reply = NULL;
    int err = send_argv(r, argc, argv, argvlen, wipe, errstr, errstr_size);
    return err ? err : await_reply(r, reply, errstr, errstr_size);
}

static bool starts_with_word(const char *msg, const char *word) {
    size_t len = strlen(word);
    return !strncmp(msg, word, len) && (msg[len] == ' ' || msg[len] == '\0');
}

static bool is_auth_error(const char *msg) {
    return starts_with_word(msg, "WRONGPASS") || starts_with_word(msg, "NOAUTH") ||
           strstr(msg, "invalid password") || strstr(msg, "invalid username-password pair");
}

/*
 * Runs one command of the session setup and checks that it answered with a status reply
 * (+OK, +PONG). what names the step in errors ("AUTH as user 'bridge'"); the arguments are
 * never printed since AUTH's hold the password. An error reply maps to: ERR_IO when it will
 * pass by itself (LOADING...), ERR_AUTH when it is about credentials or permissions or when
 * the step is AUTH, ERR_PROTO otherwise (SELECT of a database the server does not have). A
 * failed connection keeps the transport's code: ERR_TLS when the server refused our
 * certificate, ERR_IO otherwise.
 */
static int setup_step(rkb_redis_t *r, const char *what, bool is_auth, int argc, const char **argv,
                      char *errstr, size_t errstr_size) {
    redisReply *reply;
    char reason[768];
    int err = roundtrip(r, argc, argv, NULL, is_auth, &reply, reason, sizeof(reason));
    if (err) {
        /* A server that only speaks TLS drops a plain client at its first bytes. */
        bool dropped = strstr(reason, "closed by the server") || strstr(reason, "reset by peer");
        snprintf(errstr, errstr_size, "%s (during %s)%s", reason, what,
                 err == RKB_REDIS_ERR_IO && dropped && !r->conf.tls.enabled
                     ? "; if this port only takes TLS, use rediss:// or redis.tls=true"
                     : "");
        return err;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        if (rkb_redis_error_is_transient(reply->str)) {
            err = RKB_REDIS_ERR_IO;
            snprintf(errstr, errstr_size, "redis %s: %s failed: %s", r->addr, what, reply->str);
        } else if (is_auth || is_auth_error(reply->str)) {
            err = RKB_REDIS_ERR_AUTH;
            snprintf(errstr, errstr_size,
                     "redis %s: authentication failed: %s: %s (check redis.username and "
                     "redis.password, or the user:password of redis.uri)",
                     r->addr, what, reply->str);
        } else if (starts_with_word(reply->str, "NOPERM")) {
            err = RKB_REDIS_ERR_AUTH;
            snprintf(errstr, errstr_size,
                     "redis %s: permission denied: %s: %s (the ACL user needs this command)",
                     r->addr, what, reply->str);
        } else {
            err = RKB_REDIS_ERR_PROTO;
            snprintf(errstr, errstr_size, "redis %s: %s failed: %s", r->addr, what, reply->str);
        }
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
 * here, by NOAUTH, rather than in the first batch; and over TLS 1.3 a server that refuses our
 * certificate says so only once the handshake is over, in answer to the first command). */
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

/* @locality: the thread that owns r (blocks for up to the connect timeout, which covers the
 * TLS handshake, plus one command timeout per setup command). */
static int connect_once(rkb_redis_t *r, char *errstr, size_t errstr_size);

/* Redis Sentinel (sentinel.c): the master's address as the sentinels give it now, the usual
 * connect there, then ROLE, so that a server demoted since the sentinel last looked is not
 * written to. r->conf.host and port hold the last address given. */
static int connect_via_sentinel(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    char *host;
    int port;
    if (r->conn)
        rkb_redis_close(r);
    int err = rkb_sentinel_resolve(&r->conf, r->component, &host, &port, errstr, errstr_size);
    if (err)
        return err;
    free(r->conf.host);
    r->conf.host = host;
    r->conf.port = port;
    set_addr(r);
    if (!(err = connect_once(r, errstr, errstr_size)) &&
        (err = rkb_sentinel_check_master(r, r->addr, errstr, errstr_size)))
        rkb_redis_close(r);
    return err;
}

int rkb_redis_connect_one(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    int err = r->conf.sentinel_master ? connect_via_sentinel(r, errstr, errstr_size)
                                      : connect_once(r, errstr, errstr_size);
    set_state(r, err == RKB_REDIS_OK ? RKB_CONN_UP : RKB_CONN_DOWN);
    return err;
}

/* A single server, or the seed of a cluster: once connected, a handle that may talk to a
 * cluster asks whether it is one (redis.cluster: auto or true). A cluster handle reconnects
 * through any node it knows (cluster.c). */
int rkb_redis_connect(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    bool was_cluster = r->cluster != NULL;
    int err = was_cluster ? rkb_cluster_connect(r, errstr, errstr_size)
                          : rkb_redis_connect_one(r, errstr, errstr_size);
    if (!err && !was_cluster && r->conf.cluster != RKB_REDIS_CLUSTER_OFF &&
        !r->conf.sentinel_master && (err = rkb_cluster_detect(r, errstr, errstr_size)))
        rkb_redis_close(r);
    set_state(r, err == RKB_REDIS_OK ? RKB_CONN_UP : RKB_CONN_DOWN);
    return err;
}

static int connect_once(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    const rkb_redis_conf_t *conf = &r->conf;
    if (r->conn)
        rkb_redis_close_one(r);

    char why[1024];
    int err;
    if (conf->tls.enabled && !r->tls &&
        (err = rkb_tls_ctx_new(&conf->tls, &r->tls, why, sizeof(why)))) {
        snprintf(errstr, errstr_size, "redis %s: %s", r->addr, why);
        return err;
    }
    err = rkb_transport_connect(conf->host, conf->port, conf->connect_timeout_ms,
                                conf->tls.enabled ? r->tls : NULL, conf->tls.server_name, &r->conn,
                                why, sizeof(why));
    if (err) {
        snprintf(errstr, errstr_size, "redis %s: %s", r->addr, why);
        return err;
    }
    r->reader = redisReaderCreate();
    if (!r->reader) {
        fprintf(stderr, "rkbridge: out of memory creating a Redis reply reader\n");
        abort();
    }

    if ((err = session_setup(r, errstr, errstr_size))) {
        drop_connection(r); /* still open after an error reply: the session is not usable */
        return err;
    }
    r->up = true;
    char where[400], tls[160];
    const char *over = rkb_transport_describe(r->conn, tls, sizeof(tls));
    rkb_log(conf->tls.enabled && conf->tls.insecure ? RKB_LOG_WARN : RKB_LOG_INFO, r->component,
            "connected to redis %s%s%s%s%s%s%s",
            rkb_redis_conf_describe(conf, where, sizeof(where)), conf->username ? " as user '" : "",
            conf->username ? conf->username : "", conf->username ? "'" : "", over ? " over " : "",
            over ? over : "",
            conf->tls.enabled && conf->tls.insecure
                ? " WITHOUT verifying the server's certificate (redis.insecure=true)"
                : "");
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

void rkb_redis_resp_command(rkb_buf_t *out, const rkb_cmds_t *cmds, size_t i) {
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

static void resp_format(rkb_buf_t *out, const rkb_cmds_t *cmds) {
    size_t count = rkb_cmds_count(cmds);
    rkb_buf_reset(out);
    for (size_t i = 0; i < count; i++)
        rkb_redis_resp_command(out, cmds, i);
}

/*
 * One batch, one buffer: the whole batch is formatted as RESP and written in one piece before
 * any reply is read. Redis answers in order, so replies[i] belongs to command i. Redis buffers
 * its replies while we are still writing (no output limit for normal clients by default), so a
 * large batch cannot deadlock; the command timeout bounds each wait for the server.
 *
 * @locality: the thread that owns r. Blocks until every reply is in or the connection failed.
 */
int rkb_redis_pipeline_send(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr,
                            size_t errstr_size) {
    if (r->cluster)
        return rkb_cluster_pipeline_send(r, cmds, errstr, errstr_size);
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (rkb_cmds_count(cmds) == 0)
        return RKB_REDIS_OK;
    int64_t started_us = rkb_now_us();
    resp_format(&r->resp, cmds);
    if (send_bytes(r, r->resp.data, r->resp.len, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    r->sent_us[r->sent_tail++ % RKB_ARRAY_SIZE(r->sent_us)] = started_us;
    return RKB_REDIS_OK;
}

int rkb_redis_pipeline_recv(rkb_redis_t *r, size_t count, redisReply **replies, char *errstr,
                            size_t errstr_size) {
    if (r->cluster)
        return rkb_cluster_pipeline_recv(r, count, replies, errstr, errstr_size);
    for (size_t i = 0; i < count; i++)
        replies[i] = NULL;
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (count == 0)
        return RKB_REDIS_OK;
    bool demoted = false;
    for (size_t got = 0; got < count; got++) {
        if (await_reply(r, &replies[got], errstr, errstr_size)) {
            /* A batch is all or nothing for the caller: it sends the whole batch again. */
            rkb_redis_replies_free(replies, got);
            return RKB_REDIS_ERR_IO;
        }
        const char *error = rkb_redis_reply_error(replies[got]);
        demoted = demoted || (error && starts_with_word(error, "READONLY"));
    }
    if (r->sent_head != r->sent_tail) {
        int64_t started_us = r->sent_us[r->sent_head++ % RKB_ARRAY_SIZE(r->sent_us)];
        rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - started_us, count);
    }
    /* READONLY: this server is a replica now (a failover demoted it). The caller retries those
     * commands (a transient error); closing makes that retry connect again, through the
     * sentinels to the new master, instead of writing to this replica forever. A batch sent
     * behind this one is lost with the connection, and resent, as after any disconnect. */
    if (demoted) {
        rkb_log_warn(r->component, "redis %s answered READONLY (a replica now): reconnecting",
                     r->addr);
        drop_connection(r);
        set_state(r, RKB_CONN_DOWN);
    }
    return RKB_REDIS_OK;
}

int rkb_redis_pipeline(rkb_redis_t *r, const rkb_cmds_t *cmds, redisReply **replies, char *errstr,
                       size_t errstr_size) {
    if (r->cluster)
        return rkb_cluster_pipeline(r, cmds, replies, errstr, errstr_size);
    size_t count = rkb_cmds_count(cmds);
    int err = rkb_redis_pipeline_send(r, cmds, errstr, errstr_size);
    if (err) {
        for (size_t i = 0; i < count; i++)
            replies[i] = NULL;
        return err;
    }
    return rkb_redis_pipeline_recv(r, count, replies, errstr, errstr_size);
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
    if (r->cluster)
        return rkb_cluster_command(r, argc, argv, argvlen, errstr, errstr_size);
    if (not_connected(r, errstr, errstr_size))
        return NULL;
    int64_t started_us = rkb_now_us();
    redisReply *reply;
    roundtrip(r, argc, argv, argvlen, false, &reply, errstr, errstr_size);
    if (reply)
        rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - started_us, 1);
    return reply;
}

/* ---- Subscriber connections --------------------------------------------------------------- */

int rkb_redis_send(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen, char *errstr,
                   size_t errstr_size) {
    if (r->cluster)
        return rkb_cluster_send(r, argc, argv, argvlen, errstr, errstr_size);
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    return send_argv(r, argc, argv, argvlen, false, errstr, errstr_size) ? RKB_REDIS_ERR_IO
                                                                         : RKB_REDIS_OK;
}

/*
 * Takes a reply the reader has already parsed, else waits for what is left of timeout_ms and
 * feeds whatever arrived to the reader, until a reply is complete or the time is up. A partly
 * received reply stays in the reader for the next call, and the connection stays open.
 *
 * @locality: the thread that owns r.
 */
int rkb_redis_read(rkb_redis_t *r, int timeout_ms, redisReply **reply, char *errstr,
                   size_t errstr_size) {
    *reply = NULL;
    if (r->cluster)
        return rkb_cluster_read(r, timeout_ms, reply, errstr, errstr_size);
    if (not_connected(r, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    return next_reply(r, timeout_ms > 0 ? timeout_ms : 0, true, reply, errstr, errstr_size)
               ? RKB_REDIS_ERR_IO
               : RKB_REDIS_OK;
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
    /* MOVED and ASK reach a caller only when the cluster's slots kept moving while a batch was
     * redirected (cluster.c follows them): the next try goes where the slot is then. */
    static const char *const transient[] = {"LOADING",     "BUSY",     "MASTERDOWN", "OOM",
                                            "TRYAGAIN",    "CLUSTERDOWN", "READONLY", "NOREPLICAS",
                                            "MOVED",       "ASK"};
    if (!msg)
        return false;
    for (size_t i = 0; i < RKB_ARRAY_SIZE(transient); i++) {
        if (starts_with_word(msg, transient[i]))
            return true;
    }
    return false;
}

int rkb_redis_error_code(const char *msg) {
    if (rkb_redis_error_is_transient(msg))
        return RKB_REDIS_ERR_IO;
    if (!strncmp(msg, "NOPERM", 6) || !strncmp(msg, "NOAUTH", 6))
        return RKB_REDIS_ERR_AUTH;
    return RKB_REDIS_ERR_PROTO;
}

int rkb_redis_script_load(rkb_redis_t *r, const char *what, const char *text, size_t len,
                          char sha[41], char *errstr, size_t errstr_size) {
    if (r->cluster)
        return rkb_cluster_script_load(r, what, text, len, sha, errstr, errstr_size);
    const char *argv[] = {"SCRIPT", "LOAD", text};
    const size_t argvlen[] = {6, 4, len};
    redisReply *reply = rkb_redis_command(r, 3, argv, argvlen, errstr, errstr_size);
    if (!reply)
        return RKB_REDIS_ERR_IO;
    int err = RKB_REDIS_OK;
    if (reply->type == REDIS_REPLY_ERROR) {
        err = rkb_redis_error_code(reply->str);
        snprintf(errstr, errstr_size, "SCRIPT LOAD of %s failed: %s", what, reply->str);
    } else if (reply->type != REDIS_REPLY_STRING || reply->len != 40) {
        err = RKB_REDIS_ERR_PROTO;
        snprintf(errstr, errstr_size, "SCRIPT LOAD of %s: unexpected reply (type %d)", what,
                 reply->type);
    } else {
        memcpy(sha, reply->str, 40);
        sha[40] = '\0';
    }
    freeReplyObject(reply);
    return err;
}
