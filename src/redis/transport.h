/*
 * transport.h — the byte stream under one Redis connection, plain TCP or TLS; private to the
 * redis/ module (redis.c is its only user, the way kafka_int.h serves kafka/).
 *
 * redis.c speaks RESP through hiredis's formatter and reader and never touches a socket: it
 * connects a transport, writes whole buffers and reads whatever has arrived. The two kinds
 * differ only inside this module (transport.c: TCP; tls.c: OpenSSL over that TCP socket).
 *
 * Every call blocks at most for the timeout it is given (the socket itself is non-blocking and
 * waited on with poll). Errors come back as rkb_redis_err_t codes with a reason in errstr that
 * does not name the server (the caller prefixes "redis HOST:PORT: "):
 *   RKB_REDIS_ERR_IO   refused, reset, closed, timed out: may pass by itself
 *   RKB_REDIS_ERR_TLS  the TLS settings or the peer's certificate are wrong: will not pass
 *                      until the configuration changes
 *
 * A transport is used by one thread at a time. SIGPIPE never fires: writes that hit a reset
 * connection fail with EPIPE instead.
 */
#ifndef RKB_REDIS_TRANSPORT_H
#define RKB_REDIS_TRANSPORT_H

#include "redis/redis.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- TLS settings, loaded once per rkb_redis_t (tls.c) -------------------------------------- */

typedef struct rkb_tls_ctx_s rkb_tls_ctx_t;

/* Loads the CA certificates, the client certificate and key of conf (files are read now).
 * Returns RKB_REDIS_OK with *out, or RKB_REDIS_ERR_TLS with errstr naming the setting and file
 * at fault (never the key password). */
int rkb_tls_ctx_new(const rkb_redis_tls_conf_t *conf, rkb_tls_ctx_t **out, char *errstr,
                    size_t errstr_size);
void rkb_tls_ctx_destroy(rkb_tls_ctx_t *tls); /* NULL is safe */

/* ---- Connections ------------------------------------------------------------------------ */

typedef struct rkb_transport_s rkb_transport_t;

/* Connects to host:port within timeout_ms (every address of host in turn), with TCP_NODELAY
 * and keepalive. With tls, then does the TLS handshake within what is left of timeout_ms,
 * sending server_name as SNI (unless it is an IP address) and checking the certificate against
 * it, as tls says. Returns RKB_REDIS_OK with *out, or an error code with errstr. */
int rkb_transport_connect(const char *host, int port, int timeout_ms, rkb_tls_ctx_t *tls,
                          const char *server_name, rkb_transport_t **out, char *errstr,
                          size_t errstr_size);
/* Closes the connection (TLS: after a close_notify, without waiting) and frees it. NULL is
 * safe. */
void rkb_transport_close(rkb_transport_t *t);

/* Writes all len bytes, waiting up to timeout_ms each time the peer does not take more
 * (timeout_ms <= 0: no limit). RKB_REDIS_OK, or an error code with errstr. */
int rkb_transport_write(rkb_transport_t *t, const char *buf, size_t len, int timeout_ms,
                        char *errstr, size_t errstr_size);
/* Reads what has arrived, up to cap bytes, waiting up to timeout_ms for the first byte
 * (0: no wait; < 0: no limit). RKB_REDIS_OK with *got > 0, or RKB_REDIS_OK with *got == 0 when
 * nothing arrived in time (the connection stays usable), or an error code with errstr
 * (the peer closed the connection: RKB_REDIS_ERR_IO "connection closed by the server"). */
int rkb_transport_read(rkb_transport_t *t, char *buf, size_t cap, int timeout_ms, size_t *got,
                       char *errstr, size_t errstr_size);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384" for a TLS connection, NULL for plain TCP (for logs). */
const char *rkb_transport_describe(const rkb_transport_t *t, char *buf, size_t size);

/* ---- Between transport.c and tls.c ------------------------------------------------------- */

/* Waits until fd is readable (events POLLIN) or writable (POLLOUT) or until the deadline
 * (rkb_now_ms() based; < 0: none). Returns 1 ready, 0 timed out, -1 error (errno). */
int rkb_transport_wait(int fd, short events, int64_t deadline_ms);

typedef struct rkb_tls_conn_s rkb_tls_conn_t;

/* The TLS session over a connected socket: handshake until deadline_ms. */
int rkb_tls_conn_new(rkb_tls_ctx_t *tls, int fd, const char *server_name, int64_t deadline_ms,
                     rkb_tls_conn_t **out, char *errstr, size_t errstr_size);
void rkb_tls_conn_free(rkb_tls_conn_t *conn); /* sends close_notify if it can; NULL is safe */
int rkb_tls_conn_write(rkb_tls_conn_t *conn, const char *buf, size_t len, int timeout_ms,
                       char *errstr, size_t errstr_size);
int rkb_tls_conn_read(rkb_tls_conn_t *conn, char *buf, size_t cap, int timeout_ms, size_t *got,
                      char *errstr, size_t errstr_size);
const char *rkb_tls_conn_describe(const rkb_tls_conn_t *conn, char *buf, size_t size);

#endif
