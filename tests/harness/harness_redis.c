/*
 * harness_redis.c — throwaway redis-server instances for tests (see harness.h).
 *
 * Each server runs as our child on 127.0.0.1 and a free port, in its own dir under h_tmpdir(),
 * logging to redis.log there. A TLS server takes TLS only on that port and plain commands on a
 * unix socket in its dir, which is what the harness's own client uses. It is SIGKILLed and reaped
 * at exit unless the test stopped it; PR_SET_PDEATHSIG takes it down too if the test program itself
 * is killed.
 *
 * Threads: the test's main thread only.
 */
#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS   10000
#define STOP_TIMEOUT_MS    10000
#define CMD_UNREACHABLE_MS 5000
#define PORT_ATTEMPTS      10
#define MAX_EXTRA_ARGS     32

/* What the test sees (h_redis_t) plus what only the harness needs; pub comes first so that
 * the two pointers are the same. */
typedef struct {
    h_redis_t pub;
    int cleanup; /* handle from h_cleanup_register */
    char uri[64];
    char tls_args[4096]; /* the TLS options, for a TLS server */
} redis_server_t;

typedef enum { SPAWN_OK, SPAWN_PORT_TAKEN } spawn_result_t;

/* A port the kernel just considered free on 127.0.0.1. Someone may take it before
 * redis-server binds it; spawn() notices and the caller picks another. */
int h_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        h_fatal("socket: %s", strerror(errno));
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        h_fatal("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(addr.sin_port);
}

static void log_path(const h_redis_t *redis, char *path, size_t size) {
    snprintf(path, size, "%s/redis.log", redis->dir);
}

static long log_size(const h_redis_t *redis) {
    char path[600];
    struct stat st;
    log_path(redis, path, sizeof(path));
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* The end of what the server logged after offset `since`, for failure messages (static
 * storage). Earlier runs in the same dir (restarts) log to the same file. */
static const char *log_tail(const h_redis_t *redis, long since) {
    static char tail[2048];
    char path[600];
    log_path(redis, path, sizeof(path));
    tail[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp)
        return tail;
    if (fseek(fp, 0, SEEK_END) == 0) {
        long start = ftell(fp) - (long)sizeof(tail) + 1;
        fseek(fp, start > since ? start : since, SEEK_SET);
    }
    size_t n = fread(tail, 1, sizeof(tail) - 1, fp);
    tail[n] = '\0';
    fclose(fp);
    return tail;
}

/* Starts redis-server for redis (its port, dir and extra args) with stdout and stderr appended to
 * redis.log in its dir; returns its pid. PR_SET_PDEATHSIG takes it down with the test program.
 * SIGPIPE stays ignored across the exec (harness_common.c ignores it in the test program), which
 * redis-server does not notice: it ignores SIGPIPE itself as it starts. */
static pid_t start_server(const h_redis_t *redis) {
    const redis_server_t *server = (const redis_server_t *)redis;
    char port[16], path[600], extra[sizeof(redis->extra)], tls_args[sizeof(server->tls_args)];
    const char *argv[32 + MAX_EXTRA_ARGS] = {
        "redis-server", "--port", port,    "--bind",   "127.0.0.1",   "--save", "",
        "--appendonly", "no",     "--dir", redis->dir, "--daemonize", "no"};
    int argc = 13;

    snprintf(port, sizeof(port), "%d", redis->tls ? 0 : redis->port);
    /* TLS options, then extra arguments, come last: redis-server lets a later option override
     * an earlier one. */
    snprintf(tls_args, sizeof(tls_args), "%s", server->tls_args);
    snprintf(extra, sizeof(extra), "%s", redis->extra);
    char *lists[] = {tls_args, extra};
    for (size_t l = 0; l < 2; l++) {
        for (char *save, *word = strtok_r(lists[l], " ", &save); word;
             word = strtok_r(NULL, " ", &save)) {
            if (argc == (int)(sizeof(argv) / sizeof(argv[0])) - 1)
                break;
            argv[argc++] = word;
        }
    }
    argv[argc] = NULL;

    log_path(redis, path, sizeof(path));
    int log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        h_fatal("cannot open %s: %s", path, strerror(errno));
    pid_t pid = h_spawn(&(h_spawn_opts_t){.path = argv[0],
                                          .argv = argv,
                                          .search_path = true,
                                          .stdin_fd = -1,
                                          .stdout_fd = log_fd,
                                          .stderr_fd = log_fd,
                                          .die_with_parent = true});
    close(log_fd);
    return pid;
}

/* True when the server on redis->port is ours (INFO's process_id is our child's pid): a PONG
 * alone could come from another test's server that took the port first. */
/* The harness's plain connection: TCP, or the unix socket of a TLS server. */
static redisContext *connect_plain(const h_redis_t *redis, struct timeval tv) {
    if (redis->tls)
        return redisConnectUnixWithTimeout(redis->unix_socket, tv);
    return redisConnectWithTimeout("127.0.0.1", redis->port, tv);
}

static bool answers_as_ours(const h_redis_t *redis) {
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *ctx = connect_plain(redis, tv);
    bool ours = false;
    if (ctx && !ctx->err && redisSetTimeout(ctx, tv) == REDIS_OK) {
        redisReply *reply = redisCommand(ctx, "INFO server");
        if (reply && reply->type == REDIS_REPLY_STRING) {
            const char *line = strstr(reply->str, "process_id:");
            ours = line && atol(line + strlen("process_id:")) == (long)redis->pid;
        }
        if (reply)
            freeReplyObject(reply);
    }
    if (ctx)
        redisFree(ctx);
    return ours;
}

/* Starts redis-server on redis->port and waits until it answers. Returns SPAWN_PORT_TAKEN if it
 * exited because the port was in use; any other failure is fatal. */
static spawn_result_t spawn(h_redis_t *redis) {
    long log_start = log_size(redis);
    pid_t pid = start_server(redis);
    redis->pid = pid;

    int64_t until = h_now_ms() + START_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            redis->pid = 0;
            const char *tail = log_tail(redis, log_start);
            if (strstr(tail, "Address already in use"))
                return SPAWN_PORT_TAKEN;
            h_fatal("redis-server on port %d exited at start (status %d); its log:\n%s",
                    redis->port, status, tail);
        }
        if (answers_as_ours(redis))
            return SPAWN_OK;
        if (h_now_ms() > until) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            redis->pid = 0;
            h_fatal("redis-server on port %d did not answer within %d ms; its log:\n%s",
                    redis->port, START_TIMEOUT_MS, log_tail(redis, log_start));
        }
        h_sleep_ms(20);
    }
}

static void kill_and_reap(h_redis_t *redis) {
    if (redis->pid > 0) {
        kill(redis->pid, SIGKILL);
        while (waitpid(redis->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        redis->pid = 0;
    }
}

static void drop_client(h_redis_t *redis) {
    if (redis->client) {
        redisFree(redis->client);
        redis->client = NULL;
    }
}

/* At exit: the test did not stop this server. */
static void cleanup_server(void *arg) {
    h_redis_t *redis = arg;
    kill_and_reap(redis);
    drop_client(redis);
    free(redis);
}

static h_redis_t *start(const char *extra_args, bool tls) {
    static int started;
    redis_server_t *server = calloc(1, sizeof(*server));
    if (!server)
        h_fatal("out of memory");
    h_redis_t *redis = &server->pub;
    if (extra_args && strlen(extra_args) >= sizeof(redis->extra))
        h_fatal("h_redis_start: extra arguments too long");
    snprintf(redis->extra, sizeof(redis->extra), "%s", extra_args ? extra_args : "");
    snprintf(redis->dir, sizeof(redis->dir), "%s/redis-%d", h_tmpdir(), ++started);
    if (mkdir(redis->dir, 0755) != 0)
        h_fatal("mkdir %s: %s", redis->dir, strerror(errno));
    if (tls) {
        const h_tls_files_t *files = h_tls_files();
        redis->tls = true;
        snprintf(redis->unix_socket, sizeof(redis->unix_socket), "%s/redis.sock", redis->dir);
        snprintf(server->tls_args, sizeof(server->tls_args),
                 "--tls-cert-file %s --tls-key-file %s --tls-ca-cert-file %s "
                 "--unixsocket %s --unixsocketperm 700",
                 files->server_cert, files->server_key, files->ca_cert, redis->unix_socket);
    }
    server->cleanup = h_cleanup_register(cleanup_server, redis);

    for (int attempt = 0;; attempt++) {
        if (attempt == PORT_ATTEMPTS)
            h_fatal("redis-server: no free port after %d attempts", PORT_ATTEMPTS);
        redis->port = h_free_port();
        if (tls) {
            /* The TLS port is set here: --port stays 0 (no plain TCP). */
            char *port_arg = strstr(server->tls_args, " --tls-port ");
            if (port_arg)
                *port_arg = '\0';
            size_t len = strlen(server->tls_args);
            snprintf(server->tls_args + len, sizeof(server->tls_args) - len, " --tls-port %d",
                     redis->port);
        }
        if (spawn(redis) == SPAWN_OK)
            break;
    }
    snprintf(server->uri, sizeof(server->uri), "%s://127.0.0.1:%d", tls ? "rediss" : "redis",
             redis->port);
    return redis;
}

h_redis_t *h_redis_start(const char *extra_args) {
    return start(extra_args, false);
}

h_redis_t *h_redis_start_tls(const char *extra_args) {
    return start(extra_args, true);
}

void h_redis_kill(h_redis_t *redis) {
    drop_client(redis);
    kill_and_reap(redis);
}

/* The old server's port may still be held for a moment (another process grabbing it in the
 * meantime, or the kernel finishing the close): retry binding it for START_TIMEOUT_MS. */
void h_redis_restart(h_redis_t *redis) {
    drop_client(redis);
    kill_and_reap(redis);
    int64_t until = h_now_ms() + START_TIMEOUT_MS;
    while (spawn(redis) == SPAWN_PORT_TAKEN) {
        if (h_now_ms() > until)
            h_fatal("redis-server: port %d still in use after %d ms", redis->port,
                    START_TIMEOUT_MS);
        h_sleep_ms(100);
    }
}

void h_redis_stop(h_redis_t *redis) {
    if (!redis)
        return;
    redis_server_t *server = (redis_server_t *)redis;
    drop_client(redis);
    if (redis->pid > 0) {
        kill(redis->pid, SIGTERM);
        int64_t until = h_now_ms() + STOP_TIMEOUT_MS;
        while (waitpid(redis->pid, NULL, WNOHANG) == 0) {
            if (h_now_ms() > until) {
                fprintf(stderr, "harness: redis-server on port %d ignored SIGTERM, killing it\n",
                        redis->port);
                kill_and_reap(redis);
                break;
            }
            h_sleep_ms(20);
        }
        redis->pid = 0;
    }
    h_cleanup_cancel(server->cleanup);
    free(server);
}

/* Connects the harness client if it is not connected; h_fatal after CMD_UNREACHABLE_MS. */
static void client_connect(h_redis_t *redis, int64_t until) {
    struct timeval connect_tv = {.tv_sec = 1, .tv_usec = 0};
    /* Long enough for the slowest test command (DEBUG SLEEP), short enough that a hung server
     * fails the test instead of hanging it. */
    struct timeval command_tv = {.tv_sec = 30, .tv_usec = 0};
    while (!redis->client) {
        redisContext *ctx = connect_plain(redis, connect_tv);
        if (ctx && !ctx->err && redisSetTimeout(ctx, command_tv) == REDIS_OK) {
            redis->client = ctx;
            return;
        }
        char reason[128];
        snprintf(reason, sizeof(reason), "%s", ctx ? ctx->errstr : "out of memory");
        if (ctx)
            redisFree(ctx);
        if (h_now_ms() > until)
            h_fatal("redis-server on port %d unreachable for %d ms: %s", redis->port,
                    CMD_UNREACHABLE_MS, reason);
        h_sleep_ms(50);
    }
}

/* A command on the harness client. A reply lost to a dropped connection (the server was
 * restarted behind the client's back) is retried on a new connection. */
static redisReply *vcmd(h_redis_t *redis, const char *fmt, va_list ap) {
    int64_t until = h_now_ms() + CMD_UNREACHABLE_MS;
    for (;;) {
        client_connect(redis, until);
        va_list ap_copy;
        va_copy(ap_copy, ap);
        redisReply *reply = redisvCommand(redis->client, fmt, ap_copy);
        va_end(ap_copy);
        if (reply)
            return reply;
        char reason[128];
        snprintf(reason, sizeof(reason), "%s", redis->client->errstr);
        drop_client(redis);
        if (h_now_ms() > until)
            h_fatal("redis-server on port %d: '%s' failed: %s", redis->port, fmt, reason);
    }
}

redisReply *h_redis_cmd(h_redis_t *redis, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = vcmd(redis, fmt, ap);
    va_end(ap);
    return reply;
}

long long h_redis_int(h_redis_t *redis, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = vcmd(redis, fmt, ap);
    va_end(ap);
    if (reply->type != REDIS_REPLY_INTEGER)
        h_fatal("'%s': expected an integer reply, got type %d (%s)", fmt, reply->type,
                reply->str ? reply->str : "");
    long long value = reply->integer;
    freeReplyObject(reply);
    return value;
}

char *h_redis_str(h_redis_t *redis, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = vcmd(redis, fmt, ap);
    va_end(ap);
    char *value = NULL;
    if (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS) {
        value = malloc(reply->len + 1);
        if (!value)
            h_fatal("out of memory");
        memcpy(value, reply->str, reply->len);
        value[reply->len] = '\0';
    } else if (reply->type != REDIS_REPLY_NIL) {
        h_fatal("'%s': expected a string reply, got type %d (%s)", fmt, reply->type,
                reply->str ? reply->str : "");
    }
    freeReplyObject(reply);
    return value;
}

const char *h_redis_uri(h_redis_t *redis) {
    return ((redis_server_t *)redis)->uri;
}
