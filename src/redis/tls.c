/*
 * tls.c — TLS for Redis connections on OpenSSL (see transport.h): the settings of one
 * connector's Redis (CA certificates, client certificate and key, verification) loaded into an
 * SSL_CTX once, and one SSL session per connection over transport.c's non-blocking socket.
 *
 * Verification is on unless redis.insecure: the server's chain must lead to a trusted CA and
 * the certificate must be for the name we connect to (DNS name or IP address, or redis.sni).
 * What cannot pass by itself (an untrusted or mismatched certificate, files that do not load,
 * a server that refuses our certificate, a port that does not speak TLS) is
 * RKB_REDIS_ERR_TLS, so that the task fails with the reason instead of retrying forever; a
 * connection that drops or times out during the handshake is RKB_REDIS_ERR_IO as any other.
 */
#include "redis/transport.h"

#include "util/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct rkb_tls_ctx_s {
    SSL_CTX *ctx;
    bool insecure;
    char trust[600]; /* where trusted CAs come from, for messages */
};

struct rkb_tls_conn_s {
    SSL *ssl;
    int fd;
    bool broken; /* a fatal error happened: no close_notify */
    const rkb_tls_ctx_t *tls;
    bool name_is_ip;
    char server_name[256];
    /* What the server said after our certificate, to tell a refused client certificate from a
     * dropped connection (see refused_after_handshake). */
    bool cert_requested; /* the server sent a CertificateRequest */
    bool ticket_seen;    /* ... and a NewSessionTicket after the handshake: it accepted us */
    bool data_seen;      /* ... and application data */
};

/*
 * OpenSSL writes to the socket with write(2), so a write to a connection the server has reset
 * raises SIGPIPE, which kills the process unless it is ignored. Rather than depend on every
 * program that links this module to ignore it, each TLS call blocks SIGPIPE in the calling
 * thread (a write's SIGPIPE goes to the thread that wrote) and swallows one it caused, the way
 * libpq does. The write itself then fails with EPIPE, an ordinary I/O error. (Plain TCP sends
 * with MSG_NOSIGNAL instead.)
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

/* Leaves errno as the I/O call set it. */
static void sigpipe_unblock(sigpipe_guard_t *guard) {
    int saved_errno = errno;
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (!guard->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        const struct timespec no_wait = {0, 0};
        sigtimedwait(&pipe_set, NULL, &no_wait);
    }
    pthread_sigmask(SIG_SETMASK, &guard->old_mask, NULL);
    errno = saved_errno;
}

/* The first error in this thread's OpenSSL error queue as text (its reason, e.g. "certificate
 * verify failed"), and its code; the queue is emptied. */
static unsigned long openssl_error(char *buf, size_t size) {
    unsigned long first = ERR_get_error();
    if (!first) {
        snprintf(buf, size, "unknown TLS error");
        return 0;
    }
    const char *reason = ERR_reason_error_string(first);
    if (reason)
        snprintf(buf, size, "%s", reason);
    else
        ERR_error_string_n(first, buf, size);
    while (ERR_get_error())
        ;
    return first;
}

/* ---- Settings ----------------------------------------------------------------------------- */

/* The key password, given to OpenSSL only while the key is read. Returning 0 without one keeps
 * OpenSSL from prompting on the terminal for an encrypted key. */
static int key_password_cb(char *buf, int size, int rwflag, void *userdata) {
    const char *password = userdata;
    if (!password || size <= 0)
        return 0;
    size_t len = strlen(password);
    if (len > (size_t)size)
        len = (size_t)size;
    memcpy(buf, password, len);
    return (int)len;
}

/* "KEY PATH: cannot load WHAT: why" (from the OpenSSL error queue). */
static int load_error(const char *key, const char *path, const char *what, const char *hint,
                      char *errstr, size_t errstr_size) {
    char why[256];
    openssl_error(why, sizeof(why));
    snprintf(errstr, errstr_size, "TLS: %s %s: cannot load %s: %s%s", key, path, what, why,
             hint ? hint : "");
    return RKB_REDIS_ERR_TLS;
}

int rkb_tls_ctx_new(const rkb_redis_tls_conf_t *conf, rkb_tls_ctx_t **out, char *errstr,
                    size_t errstr_size) {
    *out = NULL;
    ERR_clear_error();
    rkb_tls_ctx_t *tls = rkb_calloc(1, sizeof(*tls));
    tls->insecure = conf->insecure;
    tls->ctx = SSL_CTX_new(TLS_client_method());
    int err = RKB_REDIS_OK;
    if (!tls->ctx) {
        char why[256];
        openssl_error(why, sizeof(why));
        snprintf(errstr, errstr_size, "TLS: cannot create a context: %s", why);
        err = RKB_REDIS_ERR_TLS;
        goto done;
    }
    /* Redis speaks TLS 1.2 and 1.3; nothing older is safe. Partial writes let a large pipeline
     * go out as the socket takes it (rkb_tls_conn_write loops). */
    SSL_CTX_set_min_proto_version(tls->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(tls->ctx, conf->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);

    if (conf->ca_file || conf->ca_dir) {
        if (conf->ca_file && !SSL_CTX_load_verify_locations(tls->ctx, conf->ca_file, NULL)) {
            err = load_error("redis.cacert", conf->ca_file, "the CA certificates", NULL, errstr,
                             errstr_size);
            goto done;
        }
        if (conf->ca_dir && !SSL_CTX_load_verify_locations(tls->ctx, NULL, conf->ca_dir)) {
            err = load_error("redis.cacert.dir", conf->ca_dir, "the CA directory", NULL, errstr,
                             errstr_size);
            goto done;
        }
        snprintf(tls->trust, sizeof(tls->trust), "%s%.250s%s%s%.250s",
                 conf->ca_file ? "redis.cacert " : "", conf->ca_file ? conf->ca_file : "",
                 conf->ca_file && conf->ca_dir ? " or " : "",
                 conf->ca_dir ? "redis.cacert.dir " : "", conf->ca_dir ? conf->ca_dir : "");
    } else {
        if (!SSL_CTX_set_default_verify_paths(tls->ctx)) {
            err = load_error("the system's", "trust store", "the CA certificates", NULL, errstr,
                             errstr_size);
            goto done;
        }
        snprintf(tls->trust, sizeof(tls->trust), "the system's trust store (set redis.cacert)");
    }

    if (conf->cert_file && SSL_CTX_use_certificate_chain_file(tls->ctx, conf->cert_file) != 1) {
        err = load_error("redis.key.cert", conf->cert_file, "the client certificate", NULL, errstr,
                         errstr_size);
        goto done;
    }
    if (conf->key_file) {
        SSL_CTX_set_default_passwd_cb(tls->ctx, key_password_cb);
        SSL_CTX_set_default_passwd_cb_userdata(tls->ctx, conf->key_password);
        int loaded = SSL_CTX_use_PrivateKey_file(tls->ctx, conf->key_file, SSL_FILETYPE_PEM);
        /* The password is needed only now: OpenSSL must not keep a pointer to it. */
        SSL_CTX_set_default_passwd_cb_userdata(tls->ctx, NULL);
        /* OpenSSL checks a key against the certificate already loaded as it loads it. */
        unsigned long code = ERR_peek_error();
        if (loaded == 1 && conf->cert_file && SSL_CTX_check_private_key(tls->ctx) != 1) {
            code = ERR_peek_error();
            loaded = 0;
        }
        if (loaded != 1 && ERR_GET_REASON(code) == X509_R_KEY_VALUES_MISMATCH) {
            char why[256];
            openssl_error(why, sizeof(why));
            snprintf(errstr, errstr_size,
                     "TLS: redis.key.file %s does not belong to the certificate in redis.key.cert "
                     "%s: %s",
                     conf->key_file, conf->cert_file ? conf->cert_file : "", why);
            err = RKB_REDIS_ERR_TLS;
            goto done;
        }
        if (loaded != 1) {
            err = load_error("redis.key.file", conf->key_file, "the private key",
                             conf->key_password ? " (is redis.key.password right?)"
                                                : " (if it is encrypted, set redis.key.password)",
                             errstr, errstr_size);
            goto done;
        }
    }

done:
    if (err) {
        rkb_tls_ctx_destroy(tls);
        return err;
    }
    *out = tls;
    return RKB_REDIS_OK;
}

void rkb_tls_ctx_destroy(rkb_tls_ctx_t *tls) {
    if (!tls)
        return;
    SSL_CTX_free(tls->ctx);
    free(tls);
}

/* ---- Sessions ------------------------------------------------------------------------------ */

static bool is_ip_address(const char *name) {
    unsigned char addr[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

/* Alerts by which a server says it will not take our certificate (or our lack of one). */
static bool is_client_cert_refusal(unsigned long code) {
    if (ERR_GET_LIB(code) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(code)) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return true;
    default:
        return false;
    }
}

/* The server closed the connection in the middle of TLS: the same as any dropped connection. */
static bool is_unexpected_eof(unsigned long code) {
    return ERR_GET_LIB(code) == ERR_LIB_SSL &&
           ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/* Watches the handshake messages the server sends (@locality the thread in an SSL call). */
static void on_tls_message(int write_p, int version, int content_type, const void *buf, size_t len,
                           SSL *ssl, void *arg) {
    rkb_tls_conn_t *conn = arg;
    if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 1)
        return;
    unsigned char type = *(const unsigned char *)buf;
    if (type == SSL3_MT_CERTIFICATE_REQUEST)
        conn->cert_requested = true;
    else if (type == SSL3_MT_NEWSESSION_TICKET)
        conn->ticket_seen = true;
}

/*
 * Over TLS 1.3 a server checks our certificate only after our side of the handshake is done:
 * SSL_connect has returned and the first command is on its way when the server answers with an
 * alert and closes. With our command unread in its buffer, that close is a reset, which can
 * overtake the alert. So a connection that drops after the server asked for our certificate,
 * before it sent anything else (Redis sends session tickets to a client it accepted), is taken
 * as the refusal it almost certainly is: retrying cannot help. (A server without session
 * tickets that drops an accepted client at once, e.g. at maxclients, would be misread.)
 */
static bool refused_after_handshake(const rkb_tls_conn_t *conn, int ssl_error, unsigned long code) {
    bool dropped = ssl_error == SSL_ERROR_SYSCALL || ssl_error == SSL_ERROR_ZERO_RETURN ||
                   (ssl_error == SSL_ERROR_SSL && is_unexpected_eof(code));
    return dropped && conn->cert_requested && !conn->ticket_seen && !conn->data_seen &&
           SSL_version(conn->ssl) >= TLS1_3_VERSION;
}

/* What to do about a refused client certificate, whether we sent one or not. */
static const char *client_cert_hint(const rkb_tls_conn_t *conn) {
    if (SSL_get_certificate(conn->ssl))
        return " (the server refused our client certificate from redis.key.cert: is it signed by "
               "a CA in the server's tls-ca-cert-file?)";
    return " (the server requires a client certificate (tls-auth-clients): set redis.key.cert "
           "and redis.key.file)";
}

/* Why a certificate did not verify, with what to do about it. */
static void verify_failure(const rkb_tls_conn_t *conn, long result, char *errstr,
                           size_t errstr_size) {
    const char *hint = "";
    char hint_buf[900];
    switch (result) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        snprintf(hint_buf, sizeof(hint_buf),
                 " (the server's certificate is not signed by a CA in %s)", conn->tls->trust);
        hint = hint_buf;
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        snprintf(hint_buf, sizeof(hint_buf),
                 " (the server's certificate is not for %s '%s': connect with a name the "
                 "certificate holds, or set redis.sni)",
                 conn->name_is_ip ? "the address" : "the name", conn->server_name);
        hint = hint_buf;
        break;
    default:
        break;
    }
    snprintf(errstr, errstr_size, "TLS certificate verify failed: %s%s",
             X509_verify_cert_error_string(result), hint);
}

/* Maps a failed SSL_connect (handshake) or SSL_read/SSL_write (ssl_error from SSL_get_error)
 * to a code and errstr; the session is unusable afterwards. */
static int session_error(rkb_tls_conn_t *conn, int ssl_error, bool handshake, char *errstr,
                         size_t errstr_size) {
    int saved_errno = errno;
    conn->broken = true;
    char why[256];
    unsigned long code = ssl_error == SSL_ERROR_SSL ? openssl_error(why, sizeof(why)) : 0;
    const char *step = handshake ? "TLS handshake" : "TLS session";
    if (handshake && !conn->tls->insecure) {
        long result = SSL_get_verify_result(conn->ssl);
        if (result != X509_V_OK) {
            verify_failure(conn, result, errstr, errstr_size);
            return RKB_REDIS_ERR_TLS;
        }
    }
    if (!handshake && refused_after_handshake(conn, ssl_error, code)) {
        snprintf(errstr, errstr_size, "the server closed the TLS session after the handshake%s",
                 client_cert_hint(conn));
        ERR_clear_error();
        return RKB_REDIS_ERR_TLS;
    }
    switch (ssl_error) {
    case SSL_ERROR_SSL:
        if (is_unexpected_eof(code)) {
            snprintf(errstr, errstr_size, "connection closed by the server%s",
                     handshake ? " during the TLS handshake" : "");
            return RKB_REDIS_ERR_IO;
        }
        if (is_client_cert_refusal(code)) {
            snprintf(errstr, errstr_size, "%s refused by the server: %s%s", step, why,
                     client_cert_hint(conn));
            return RKB_REDIS_ERR_TLS;
        }
        if (handshake) {
            /* A protocol failure in the handshake (no common version or cipher, or what came
             * back was not TLS at all) repeats on every attempt. */
            snprintf(errstr, errstr_size, "%s failed: %s (does this port speak TLS?)", step, why);
            return RKB_REDIS_ERR_TLS;
        }
        snprintf(errstr, errstr_size, "%s: %s", step, why);
        return RKB_REDIS_ERR_IO;
    case SSL_ERROR_ZERO_RETURN:
        snprintf(errstr, errstr_size, "connection closed by the server");
        return RKB_REDIS_ERR_IO;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved_errno)
            snprintf(errstr, errstr_size, "%s%s%s", handshake ? step : "", handshake ? ": " : "",
                     strerror(saved_errno));
        else
            snprintf(errstr, errstr_size, "connection closed by the server%s",
                     handshake ? " during the TLS handshake" : "");
        return RKB_REDIS_ERR_IO;
    default:
        snprintf(errstr, errstr_size, "%s: unexpected OpenSSL error %d", step, ssl_error);
        return RKB_REDIS_ERR_IO;
    }
}

/* Waits for what SSL_get_error asked for (WANT_READ/WANT_WRITE) until deadline_ms. Returns 1
 * ready, 0 timed out, -1 error. */
static int wait_for(const rkb_tls_conn_t *conn, int ssl_error, int64_t deadline_ms) {
    return rkb_transport_wait(conn->fd, ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN,
                              deadline_ms);
}

int rkb_tls_conn_new(rkb_tls_ctx_t *tls, int fd, const char *server_name, int64_t deadline_ms,
                     rkb_tls_conn_t **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    ERR_clear_error();
    rkb_tls_conn_t *conn = rkb_calloc(1, sizeof(*conn));
    conn->fd = fd;
    conn->tls = tls;
    conn->broken = true; /* until the handshake is done */
    snprintf(conn->server_name, sizeof(conn->server_name), "%s", server_name);
    conn->name_is_ip = is_ip_address(conn->server_name);
    conn->ssl = SSL_new(tls->ctx);
    if (conn->ssl) {
        SSL_set_msg_callback(conn->ssl, on_tls_message);
        SSL_set_msg_callback_arg(conn->ssl, conn);
    }
    if (!conn->ssl || SSL_set_fd(conn->ssl, fd) != 1) {
        char why[256];
        openssl_error(why, sizeof(why));
        snprintf(errstr, errstr_size, "TLS: cannot create a session: %s", why);
        rkb_tls_conn_free(conn);
        return RKB_REDIS_ERR_TLS;
    }
    /* SNI carries host names only (RFC 6066); the certificate check takes either. */
    bool named = conn->name_is_ip || SSL_set_tlsext_host_name(conn->ssl, conn->server_name) == 1;
    if (named && !tls->insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(conn->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        named = conn->name_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, conn->server_name) == 1
                                 : X509_VERIFY_PARAM_set1_host(param, conn->server_name, 0) == 1;
    }
    if (!named) {
        snprintf(errstr, errstr_size, "TLS: '%s' cannot be used as the server name",
                 conn->server_name);
        rkb_tls_conn_free(conn);
        return RKB_REDIS_ERR_TLS;
    }

    for (;;) {
        sigpipe_guard_t guard;
        ERR_clear_error();
        sigpipe_block(&guard);
        int rc = SSL_connect(conn->ssl);
        int ssl_error = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(conn->ssl, rc);
        sigpipe_unblock(&guard);
        if (rc == 1)
            break;
        if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
            int ready = wait_for(conn, ssl_error, deadline_ms);
            if (ready > 0)
                continue;
            snprintf(errstr, errstr_size, "TLS handshake: %s",
                     ready == 0 ? "no answer in time (connect timeout; does this port speak "
                                  "TLS?)"
                                : strerror(errno));
            rkb_tls_conn_free(conn);
            return RKB_REDIS_ERR_IO;
        }
        int err = session_error(conn, ssl_error, true, errstr, errstr_size);
        rkb_tls_conn_free(conn);
        return err;
    }
    conn->broken = false;
    *out = conn;
    return RKB_REDIS_OK;
}

void rkb_tls_conn_free(rkb_tls_conn_t *conn) {
    if (!conn)
        return;
    if (conn->ssl) {
        if (!conn->broken) {
            /* One close_notify, without waiting for the server's (the socket is
             * non-blocking, and the connection is going away either way). */
            sigpipe_guard_t guard;
            sigpipe_block(&guard);
            SSL_shutdown(conn->ssl);
            sigpipe_unblock(&guard);
        }
        SSL_free(conn->ssl);
    }
    ERR_clear_error();
    free(conn);
}

int rkb_tls_conn_write(rkb_tls_conn_t *conn, const char *buf, size_t len, int timeout_ms,
                       char *errstr, size_t errstr_size) {
    size_t done = 0;
    while (done < len) {
        size_t chunk = len - done > INT_MAX ? INT_MAX : len - done;
        sigpipe_guard_t guard;
        ERR_clear_error();
        sigpipe_block(&guard);
        int n = SSL_write(conn->ssl, buf + done, (int)chunk);
        int ssl_error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(conn->ssl, n);
        sigpipe_unblock(&guard);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
            int ready = wait_for(conn, ssl_error, timeout_ms > 0 ? rkb_now_ms() + timeout_ms : -1);
            if (ready > 0)
                continue;
            conn->broken = true;
            if (ready == 0)
                snprintf(errstr, errstr_size, "the server took nothing for %d ms (command timeout)",
                         timeout_ms);
            else
                snprintf(errstr, errstr_size, "poll: %s", strerror(errno));
            return RKB_REDIS_ERR_IO;
        }
        return session_error(conn, ssl_error, false, errstr, errstr_size);
    }
    return RKB_REDIS_OK;
}

int rkb_tls_conn_read(rkb_tls_conn_t *conn, char *buf, size_t cap, int timeout_ms, size_t *got,
                      char *errstr, size_t errstr_size) {
    int64_t deadline_ms = timeout_ms < 0 ? -1 : rkb_now_ms() + timeout_ms;
    *got = 0;
    for (;;) {
        sigpipe_guard_t guard;
        ERR_clear_error();
        sigpipe_block(&guard);
        int n = SSL_read(conn->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
        int ssl_error = n > 0 ? SSL_ERROR_NONE : SSL_get_error(conn->ssl, n);
        sigpipe_unblock(&guard);
        if (n > 0) {
            conn->data_seen = true;
            *got = (size_t)n;
            return RKB_REDIS_OK;
        }
        if (ssl_error == SSL_ERROR_WANT_READ || ssl_error == SSL_ERROR_WANT_WRITE) {
            /* SSL_read returns what OpenSSL already decrypted before it asks for the socket,
             * so waiting here never leaves a reply unread. */
            if (timeout_ms == 0)
                return RKB_REDIS_OK;
            int ready = wait_for(conn, ssl_error, deadline_ms);
            if (ready > 0)
                continue;
            if (ready == 0)
                return RKB_REDIS_OK; /* nothing in time */
            conn->broken = true;
            snprintf(errstr, errstr_size, "poll: %s", strerror(errno));
            return RKB_REDIS_ERR_IO;
        }
        return session_error(conn, ssl_error, false, errstr, errstr_size);
    }
}

const char *rkb_tls_conn_describe(const rkb_tls_conn_t *conn, char *buf, size_t size) {
    snprintf(buf, size, "%s %s", SSL_get_version(conn->ssl), SSL_get_cipher_name(conn->ssl));
    return buf;
}
