/*
 * harness_sentinel.c — a master, its replica and Redis Sentinels for tests (see
 * harness_sentinel.h).
 *
 * The master and the replica are ordinary harness servers (h_redis_start, the replica with
 * --replicaof). Each sentinel is `redis-server sentinel.conf --sentinel` as our child, in its
 * own dir under h_tmpdir() (a sentinel rewrites its config file), logging to sentinel.log
 * there; PR_SET_PDEATHSIG takes it down with the test program, and an at-exit cleanup kills
 * what the test did not stop.
 *
 * Threads: the test's main thread only.
 */
#include "harness_sentinel.h"
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
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 10000
/* Sentinels learn replicas from the master's INFO and each other from hello messages (every
 * 2 s): generous, it is only an upper bound. */
#define READY_TIMEOUT_MS 30000
#define PORT_ATTEMPTS    10

typedef struct {
    h_sentinel_group_t pub; /* first, so that the two pointers are the same */
    int cleanup;
} group_t;


/* One command to 127.0.0.1:port on a short-lived connection; NULL when it does not answer. */
static redisReply *command_at(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static redisReply *command_at(int port, const char *fmt, ...) {
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    redisContext *ctx = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *reply = NULL;
    if (ctx && !ctx->err && redisSetTimeout(ctx, tv) == REDIS_OK) {
        va_list ap;
        va_start(ap, fmt);
        reply = redisvCommand(ctx, fmt, ap);
        va_end(ap);
    }
    if (ctx)
        redisFree(ctx);
    return reply;
}

static void kill_sentinel(h_sentinel_group_t *group, int i) {
    if (group->sentinel_pid[i] > 0) {
        kill(group->sentinel_pid[i], SIGKILL);
        while (waitpid(group->sentinel_pid[i], NULL, 0) < 0 && errno == EINTR)
            ;
        group->sentinel_pid[i] = 0;
    }
}

static void cleanup_group(void *arg) {
    h_sentinel_group_t *group = arg;
    for (int i = 0; i < group->sentinel_cnt; i++)
        kill_sentinel(group, i);
    free(group); /* the servers have cleanups of their own */
}

/* True when the sentinel on port is our child pid (INFO's process_id). */
static bool answers_as_ours(int port, pid_t pid) {
    redisReply *reply = command_at(port, "INFO server");
    bool ours = false;
    if (reply && reply->type == REDIS_REPLY_STRING) {
        const char *line = strstr(reply->str, "process_id:");
        ours = line && atol(line + strlen("process_id:")) == (long)pid;
    }
    if (reply)
        freeReplyObject(reply);
    return ours;
}

/* Starts sentinel i on a free port; retries another port when the chosen one was taken. */
static void start_sentinel(h_sentinel_group_t *group, int i, int master_port) {
    static int started;
    char *dir = group->sentinel_dir[i];
    snprintf(dir, sizeof(group->sentinel_dir[i]), "%s/sentinel-%d", h_tmpdir(), ++started);
    if (mkdir(dir, 0755) != 0)
        h_fatal("mkdir %s: %s", dir, strerror(errno));
    char conf_path[600], log_path[600];
    snprintf(conf_path, sizeof(conf_path), "%s/sentinel.conf", dir);
    snprintf(log_path, sizeof(log_path), "%s/sentinel.log", dir);

    for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
        int port = h_free_port();
        FILE *fp = fopen(conf_path, "w");
        if (!fp)
            h_fatal("cannot write %s: %s", conf_path, strerror(errno));
        fprintf(fp,
                "port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\n"
                "sentinel monitor %s 127.0.0.1 %d 1\n"
                "sentinel down-after-milliseconds %s 1000\n"
                "sentinel failover-timeout %s 3000\n"
                "sentinel parallel-syncs %s 1\n",
                port, dir, group->master_name, master_port, group->master_name, group->master_name,
                group->master_name);
        fclose(fp);
        int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (log_fd < 0)
            h_fatal("cannot open %s: %s", log_path, strerror(errno));
        const char *argv[] = {"redis-server", conf_path, "--sentinel", NULL};
        pid_t pid = h_spawn(&(h_spawn_opts_t){.path = argv[0],
                                              .argv = argv,
                                              .search_path = true,
                                              .stdin_fd = -1,
                                              .stdout_fd = log_fd,
                                              .stderr_fd = log_fd,
                                              .die_with_parent = true});
        close(log_fd);
        group->sentinel_pid[i] = pid;
        group->sentinel_port[i] = port;
        int64_t until = h_now_ms() + START_TIMEOUT_MS;
        for (;;) {
            int status;
            if (waitpid(pid, &status, WNOHANG) == pid) {
                group->sentinel_pid[i] = 0;
                break; /* exited: most likely the port was taken; try another */
            }
            if (answers_as_ours(port, pid))
                return;
            if (h_now_ms() > until) {
                kill_sentinel(group, i);
                h_fatal("redis sentinel on port %d did not answer within %d ms (see %s)", port,
                        START_TIMEOUT_MS, log_path);
            }
            h_sleep_ms(20);
        }
    }
    h_fatal("redis sentinel: could not start after %d attempts (see %s)", PORT_ATTEMPTS, log_path);
}

/* The integer field name of a flat field/value array reply (SENTINEL MASTER), or -1. */
static long long field_int(const redisReply *reply, const char *name) {
    if (!reply || reply->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        if (reply->element[i]->type == REDIS_REPLY_STRING && !strcmp(reply->element[i]->str, name))
            return reply->element[i + 1]->str ? atoll(reply->element[i + 1]->str) : -1;
    }
    return -1;
}

/* Sentinel i knows the replica and the other sentinels. */
static bool sentinel_ready(const h_sentinel_group_t *group, int i) {
    redisReply *reply =
        command_at(group->sentinel_port[i], "SENTINEL MASTER %s", group->master_name);
    bool ready = field_int(reply, "num-slaves") >= 1 &&
                 field_int(reply, "num-other-sentinels") >= group->sentinel_cnt - 1;
    if (reply)
        freeReplyObject(reply);
    return ready;
}

static bool replica_in_sync(h_redis_t *replica) {
    char *info = h_redis_str(replica, "INFO replication");
    bool up = info && strstr(info, "master_link_status:up");
    free(info);
    return up;
}

h_sentinel_group_t *h_sentinel_group_start(int sentinels, const char *master_name) {
    if (sentinels < 1 || sentinels > H_SENTINEL_MAX)
        h_fatal("h_sentinel_group_start: 1 to %d sentinels", H_SENTINEL_MAX);
    group_t *g = calloc(1, sizeof(*g));
    if (!g)
        h_fatal("out of memory");
    h_sentinel_group_t *group = &g->pub;
    snprintf(group->master_name, sizeof(group->master_name), "%s", master_name);
    group->master = h_redis_start(NULL);
    char args[64];
    snprintf(args, sizeof(args), "--replicaof 127.0.0.1 %d", group->master->port);
    group->replica = h_redis_start(args);
    if (!H_WAIT_FOR(replica_in_sync(group->replica), READY_TIMEOUT_MS))
        h_fatal("replica on port %d never synced with the master on port %d", group->replica->port,
                group->master->port);

    group->sentinel_cnt = sentinels;
    g->cleanup = h_cleanup_register(cleanup_group, group);
    int len = snprintf(group->uri, sizeof(group->uri), "redis-sentinel://");
    for (int i = 0; i < sentinels; i++) {
        start_sentinel(group, i, group->master->port);
        len += snprintf(group->uri + len, sizeof(group->uri) - (size_t)len, "%s127.0.0.1:%d",
                        i ? "," : "", group->sentinel_port[i]);
    }
    snprintf(group->uri + len, sizeof(group->uri) - (size_t)len, "#%s", master_name);
    for (int i = 0; i < sentinels; i++) {
        if (!H_WAIT_FOR(sentinel_ready(group, i), READY_TIMEOUT_MS))
            h_fatal("sentinel on port %d never saw the replica and the other sentinels (see "
                    "%s/sentinel.log)",
                    group->sentinel_port[i], group->sentinel_dir[i]);
    }
    return group;
}

int h_sentinel_master_port(const h_sentinel_group_t *group, int i) {
    redisReply *reply = command_at(group->sentinel_port[i], "SENTINEL get-master-addr-by-name %s",
                                   group->master_name);
    int port = 0;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING)
        port = atoi(reply->element[1]->str);
    if (reply)
        freeReplyObject(reply);
    return port;
}

static bool is_master_at(const h_sentinel_group_t *group, int port) {
    for (int i = 0; i < group->sentinel_cnt; i++) {
        if (group->sentinel_pid[i] > 0 && h_sentinel_master_port(group, i) != port)
            return false;
    }
    redisReply *reply = command_at(port, "ROLE");
    bool master = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                  reply->element[0]->type == REDIS_REPLY_STRING &&
                  !strcmp(reply->element[0]->str, "master");
    if (reply)
        freeReplyObject(reply);
    return master;
}

bool h_sentinel_wait_master(const h_sentinel_group_t *group, int port, int timeout_ms) {
    return H_WAIT_FOR(is_master_at(group, port), timeout_ms);
}

void h_sentinel_kill(h_sentinel_group_t *group, int i) {
    kill_sentinel(group, i);
}

void h_sentinel_group_stop(h_sentinel_group_t *group) {
    if (!group)
        return;
    group_t *g = (group_t *)group;
    for (int i = 0; i < group->sentinel_cnt; i++)
        kill_sentinel(group, i);
    h_redis_stop(group->replica);
    h_redis_stop(group->master);
    h_cleanup_cancel(g->cleanup);
    free(g);
}
