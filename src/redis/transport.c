/*
 * transport.c — the byte stream under a Redis connection (see transport.h): TCP connect with a
 * timeout over every address of the host, plain reads and writes on a non-blocking socket
 * waited on with poll, and the hand-off to tls.c when the connection is TLS.
 *
 * Data path: redis.c formats commands (RESP) and calls rkb_transport_write; what
 * rkb_transport_read returns goes to hiredis's reader. Nothing here knows RESP.
 */
#include "redis/transport.h"

#include "util/util.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* TCP keepalive as hiredis sets it: probe after 15 s idle, give up after about 15 s more. */
#define KEEPALIVE_IDLE_S     15
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT      3

struct rkb_transport_s {
    int fd;
    rkb_tls_conn_t *tls; /* NULL: plain TCP */
};

int rkb_transport_wait(int fd, short events, int64_t deadline_ms) {
    for (;;) {
        int timeout = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - rkb_now_ms();
            timeout = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = events};
        int n = poll(&pfd, 1, timeout);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        /* POLLERR/POLLHUP count as ready: the read or write that follows reports them. */
        return n > 0 ? 1 : 0;
    }
}

static void set_socket_options(int fd) {
    int on = 1;
    /* Best effort, as hiredis: a socket without them still works. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    int idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S, count = KEEPALIVE_COUNT;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

/* One address: a non-blocking connect, waited for until deadline_ms. Returns the socket, or -1
 * with why. */
static int connect_address(const struct addrinfo *ai, int64_t deadline_ms, char *why,
                           size_t why_size) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(why, why_size, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = errno;
        if (err == EINPROGRESS) {
            int ready = rkb_transport_wait(fd, POLLOUT, deadline_ms);
            socklen_t len = sizeof(err);
            if (ready == 0)
                err = ETIMEDOUT;
            else if (ready < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
                err = errno;
        }
        if (err) {
            snprintf(why, why_size, "%s", strerror(err));
            close(fd);
            return -1;
        }
    }
    set_socket_options(fd);
    return fd;
}

/* @locality the thread that owns the connection (blocks up to timeout_ms, plus the name
 * lookup, which cannot be bounded). */
int rkb_transport_connect(const char *host, int port, int timeout_ms, rkb_tls_ctx_t *tls,
                          const char *server_name, rkb_transport_t **out, char *errstr,
                          size_t errstr_size) {
    *out = NULL;
    int64_t deadline_ms = timeout_ms > 0 ? rkb_now_ms() + timeout_ms : -1;
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *addrs = NULL;
    int rc = getaddrinfo(host, service, &hints, &addrs);
    if (rc) {
        snprintf(errstr, errstr_size, "cannot connect: cannot resolve '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return RKB_REDIS_ERR_IO;
    }
    char why[256] = "no address";
    int fd = -1;
    for (const struct addrinfo *ai = addrs; ai && fd < 0; ai = ai->ai_next)
        fd = connect_address(ai, deadline_ms, why, sizeof(why));
    freeaddrinfo(addrs);
    if (fd < 0) {
        snprintf(errstr, errstr_size, "cannot connect: %s", why);
        return RKB_REDIS_ERR_IO;
    }

    rkb_transport_t *t = rkb_calloc(1, sizeof(*t));
    t->fd = fd;
    if (tls) {
        int err = rkb_tls_conn_new(tls, fd, server_name ? server_name : host, deadline_ms, &t->tls,
                                   errstr, errstr_size);
        if (err) {
            rkb_transport_close(t);
            return err;
        }
    }
    *out = t;
    return RKB_REDIS_OK;
}

void rkb_transport_close(rkb_transport_t *t) {
    if (!t)
        return;
    rkb_tls_conn_free(t->tls);
    close(t->fd);
    free(t);
}

static int64_t deadline_after(int timeout_ms) {
    return timeout_ms > 0 ? rkb_now_ms() + timeout_ms : -1;
}

static int plain_write(int fd, const char *buf, size_t len, int timeout_ms, char *errstr,
                       size_t errstr_size) {
    size_t done = 0;
    while (done < len) {
        /* MSG_NOSIGNAL: a reset connection is EPIPE here, never SIGPIPE. */
        ssize_t n = send(fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int ready = rkb_transport_wait(fd, POLLOUT, deadline_after(timeout_ms));
            if (ready > 0)
                continue;
            if (ready == 0)
                snprintf(errstr, errstr_size, "the server took nothing for %d ms (command timeout)",
                         timeout_ms);
            else
                snprintf(errstr, errstr_size, "poll: %s", strerror(errno));
            return RKB_REDIS_ERR_IO;
        }
        snprintf(errstr, errstr_size, "%s", n == 0 ? "write returned 0" : strerror(errno));
        return RKB_REDIS_ERR_IO;
    }
    return RKB_REDIS_OK;
}

static int plain_read(int fd, char *buf, size_t cap, int timeout_ms, size_t *got, char *errstr,
                      size_t errstr_size) {
    int64_t deadline_ms = timeout_ms < 0 ? -1 : rkb_now_ms() + timeout_ms;
    *got = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n > 0) {
            *got = (size_t)n;
            return RKB_REDIS_OK;
        }
        if (n == 0) {
            snprintf(errstr, errstr_size, "connection closed by the server");
            return RKB_REDIS_ERR_IO;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            snprintf(errstr, errstr_size, "%s", strerror(errno));
            return RKB_REDIS_ERR_IO;
        }
        if (timeout_ms == 0)
            return RKB_REDIS_OK;
        int ready = rkb_transport_wait(fd, POLLIN, deadline_ms);
        if (ready == 0)
            return RKB_REDIS_OK; /* nothing in time */
        if (ready < 0) {
            snprintf(errstr, errstr_size, "poll: %s", strerror(errno));
            return RKB_REDIS_ERR_IO;
        }
    }
}

int rkb_transport_write(rkb_transport_t *t, const char *buf, size_t len, int timeout_ms,
                        char *errstr, size_t errstr_size) {
    if (t->tls)
        return rkb_tls_conn_write(t->tls, buf, len, timeout_ms, errstr, errstr_size);
    return plain_write(t->fd, buf, len, timeout_ms, errstr, errstr_size);
}

int rkb_transport_read(rkb_transport_t *t, char *buf, size_t cap, int timeout_ms, size_t *got,
                       char *errstr, size_t errstr_size) {
    if (t->tls)
        return rkb_tls_conn_read(t->tls, buf, cap, timeout_ms, got, errstr, errstr_size);
    return plain_read(t->fd, buf, cap, timeout_ms, got, errstr, errstr_size);
}

const char *rkb_transport_describe(const rkb_transport_t *t, char *buf, size_t size) {
    return t->tls ? rkb_tls_conn_describe(t->tls, buf, size) : NULL;
}
