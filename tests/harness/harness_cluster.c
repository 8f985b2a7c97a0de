/*
 * harness_cluster.c — a local Redis Cluster of redis-server processes (see harness_cluster.h).
 */
#include "harness_cluster.h"
#include "harness_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CLUSTER_TIMEOUT_MS 30000

/* CRC16 (XMODEM) of the key or its hash tag: the cluster's slot, computed here independently of
 * rkbridge's own so that a test does not check the code with itself. */
static unsigned slot_of(const char *key) {
    size_t len = strlen(key);
    const char *open = strchr(key, '{');
    if (open) {
        const char *close = strchr(open + 1, '}');
        if (close && close > open + 1) {
            key = open + 1;
            len = (size_t)(close - open - 1);
        }
    }
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)key[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
    return crc % 16384;
}

static bool running(const h_redis_t *node) {
    return node && node->pid > 0;
}

/* INFO section, or CLUSTER INFO for section "cluster". */
static bool info_has(h_redis_t *node, const char *section, const char *needle) {
    redisReply *reply = strcmp(section, "cluster") ? h_redis_cmd(node, "INFO %s", section)
                                                   : h_redis_cmd(node, "CLUSTER INFO");
    bool has = reply->type == REDIS_REPLY_STRING && strstr(reply->str, needle);
    freeReplyObject(reply);
    return has;
}

static bool all_ok(h_cluster_t *cluster) {
    for (int n = 0; n < cluster->node_cnt; n++) {
        h_redis_t *node = cluster->nodes[n];
        if (!running(node))
            continue;
        if (!info_has(node, "cluster", "cluster_state:ok"))
            return false;
        /* A replica counts once it has the master's data. */
        if (info_has(node, "replication", "role:slave") &&
            !info_has(node, "replication", "master_link_status:up"))
            return false;
    }
    return true;
}

h_cluster_t *h_cluster_start(int masters, int replicas) {
    h_cluster_t *cluster = calloc(1, sizeof(*cluster));
    if (!cluster)
        h_fatal("out of memory");
    cluster->node_cnt = masters * (1 + replicas);
    if (cluster->node_cnt > H_CLUSTER_MAX_NODES)
        h_fatal("h_cluster_start: at most %d nodes", H_CLUSTER_MAX_NODES);
    const char *argv[8 + H_CLUSTER_MAX_NODES] = {"redis-cli", "--cluster", "create"};
    int argc = 3;
    char addrs[H_CLUSTER_MAX_NODES][64], replicas_arg[16];
    for (int n = 0; n < cluster->node_cnt; n++) {
        char args[256];
        snprintf(args, sizeof(args),
                 "--cluster-enabled yes --cluster-node-timeout 1000 "
                 "--cluster-replica-validity-factor 0 --cluster-port %d",
                 /* by default the bus is the client port + 10000, which fails for the high
                  * ports the kernel hands out */
                 h_free_port());
        cluster->nodes[n] = h_redis_start(args);
        snprintf(addrs[n], sizeof(addrs[n]), "127.0.0.1:%d", cluster->nodes[n]->port);
        argv[argc++] = addrs[n];
    }
    snprintf(replicas_arg, sizeof(replicas_arg), "%d", replicas);
    argv[argc++] = "--cluster-replicas";
    argv[argc++] = replicas_arg;
    argv[argc++] = "--cluster-yes";
    argv[argc] = NULL;
    char *out = NULL, *err = NULL;
    int rc = h_run(argv, &out, &err);
    if (rc != 0)
        h_fatal("redis-cli --cluster create failed (%d): %s %s", rc, out ? out : "",
                err ? err : "");
    free(out);
    free(err);
    if (!H_WAIT_FOR(all_ok(cluster), CLUSTER_TIMEOUT_MS)) {
        for (int n = 0; n < cluster->node_cnt; n++) {
            redisReply *info = h_redis_cmd(cluster->nodes[n], "INFO");
            fprintf(stderr, "node %d (port %d):\n%s\n", n, cluster->nodes[n]->port,
                    info->str ? info->str : "?");
            freeReplyObject(info);
        }
        h_fatal("the cluster did not reach cluster_state:ok in %d ms", CLUSTER_TIMEOUT_MS);
    }
    return cluster;
}

void h_cluster_stop(h_cluster_t *cluster) {
    if (!cluster)
        return;
    for (int n = 0; n < cluster->node_cnt; n++)
        h_redis_stop(cluster->nodes[n]);
    free(cluster);
}

/* The running node whose CLUSTER SLOTS says it masters slot, asked of any running node that
 * agrees with the others' view being settled (cluster_state:ok). */
static h_redis_t *master_of_slot(h_cluster_t *cluster, unsigned slot) {
    for (int n = 0; n < cluster->node_cnt; n++) {
        h_redis_t *node = cluster->nodes[n];
        if (!running(node))
            continue;
        redisReply *reply = h_redis_cmd(node, "CLUSTER SLOTS");
        int port = -1;
        for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
            redisReply *range = reply->element[i];
            if ((unsigned)range->element[0]->integer <= slot &&
                slot <= (unsigned)range->element[1]->integer)
                port = (int)range->element[2]->element[1]->integer;
        }
        freeReplyObject(reply);
        for (int m = 0; m < cluster->node_cnt; m++)
            if (running(cluster->nodes[m]) && cluster->nodes[m]->port == port &&
                info_has(cluster->nodes[m], "replication", "role:master"))
                return cluster->nodes[m];
        return NULL;
    }
    return NULL;
}

h_redis_t *h_cluster_master_of(h_cluster_t *cluster, const char *key) {
    return master_of_slot(cluster, slot_of(key));
}

static bool taken_over(h_cluster_t *cluster, h_redis_t *dead, unsigned slot) {
    h_redis_t *now = master_of_slot(cluster, slot);
    return now && now != dead && all_ok(cluster);
}

bool h_cluster_wait_failover(h_cluster_t *cluster, h_redis_t *dead, int timeout_ms) {
    /* A slot the dead node served: the first of its ranges, read from a live node. */
    int64_t until = h_now_ms() + timeout_ms;
    unsigned slot = 0;
    bool found = false;
    for (int n = 0; n < cluster->node_cnt && !found; n++) {
        h_redis_t *node = cluster->nodes[n];
        if (!running(node))
            continue;
        redisReply *reply = h_redis_cmd(node, "CLUSTER SLOTS");
        for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
            redisReply *range = reply->element[i];
            if ((int)range->element[2]->element[1]->integer == dead->port) {
                slot = (unsigned)range->element[0]->integer;
                found = true;
            }
        }
        freeReplyObject(reply);
    }
    if (!found)
        return false;
    while (h_now_ms() < until) {
        if (taken_over(cluster, dead, slot))
            return true;
        h_sleep_ms(100);
    }
    return false;
}

/* ---- Dump --------------------------------------------------------------------------------- */

typedef struct {
    char **lines;
    size_t cnt, cap;
} lines_t;

static void add_line(lines_t *lines, char *line) {
    if (lines->cnt == lines->cap) {
        lines->cap = lines->cap ? lines->cap * 2 : 1024;
        lines->lines = realloc(lines->lines, lines->cap * sizeof(*lines->lines));
        if (!lines->lines)
            h_fatal("out of memory");
    }
    lines->lines[lines->cnt++] = line;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines joined with sep (each freed, and the array), as one malloc'd string. */
static char *concat(lines_t *parts, const char *sep) {
    size_t len = 1;
    for (size_t i = 0; i < parts->cnt; i++)
        len += strlen(parts->lines[i]) + strlen(sep);
    char *out = calloc(1, len), *p = out;
    for (size_t i = 0; i < parts->cnt; i++) {
        p = stpcpy(p, parts->lines[i]);
        if (i + 1 < parts->cnt)
            p = stpcpy(p, sep);
        free(parts->lines[i]);
    }
    free(parts->lines);
    return out;
}

/* The elements of an array reply joined with ' ' (nested arrays too), sorted first when sort. */
static char *join(const redisReply *reply, bool sort) {
    lines_t parts = {0};
    for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        add_line(&parts, e->type == REDIS_REPLY_ARRAY ? join(e, false)
                                                      : strndup(e->str ? e->str : "", e->len));
    }
    if (sort)
        qsort(parts.lines, parts.cnt, sizeof(*parts.lines), cmp_str);
    return concat(&parts, " ");
}

/* Hash fields are pairs: sorted "field=value" items. */
static char *join_pairs(const redisReply *reply) {
    lines_t parts = {0};
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        char *item = NULL;
        if (asprintf(&item, "%s=%s", reply->element[i]->str, reply->element[i + 1]->str) < 0)
            h_fatal("out of memory");
        add_line(&parts, item);
    }
    qsort(parts.lines, parts.cnt, sizeof(*parts.lines), cmp_str);
    return concat(&parts, " ");
}

/* A stream's entries without their IDs (made from the clock at XADD: two runs differ there). */
static char *join_stream(const redisReply *reply) {
    lines_t parts = {0};
    for (size_t i = 0; i < reply->elements; i++)
        add_line(&parts, join(reply->element[i]->element[1], false));
    return concat(&parts, " | ");
}

static void dump_node(h_redis_t *node, lines_t *lines) {
    char cursor[32] = "0";
    do {
        redisReply *scan = h_redis_cmd(node, "SCAN %s COUNT 1000", cursor);
        snprintf(cursor, sizeof(cursor), "%s", scan->element[0]->str);
        redisReply *keys = scan->element[1];
        for (size_t k = 0; k < keys->elements; k++) {
            const char *key = keys->element[k]->str;
            char *type = h_redis_str(node, "TYPE %b", key, keys->element[k]->len);
            redisReply *value;
            char *text;
            if (!strcmp(type, "string")) {
                value = h_redis_cmd(node, "GET %b", key, keys->element[k]->len);
                text = strndup(value->str ? value->str : "", value->len);
            } else if (!strcmp(type, "hash")) {
                value = h_redis_cmd(node, "HGETALL %b", key, keys->element[k]->len);
                text = join_pairs(value);
            } else if (!strcmp(type, "list")) {
                value = h_redis_cmd(node, "LRANGE %b 0 -1", key, keys->element[k]->len);
                text = join(value, false);
            } else if (!strcmp(type, "set")) {
                value = h_redis_cmd(node, "SMEMBERS %b", key, keys->element[k]->len);
                text = join(value, true);
            } else if (!strcmp(type, "zset")) {
                value = h_redis_cmd(node, "ZRANGE %b 0 -1 WITHSCORES", key, keys->element[k]->len);
                text = join(value, false);
            } else if (!strcmp(type, "stream")) {
                value = h_redis_cmd(node, "XRANGE %b - +", key, keys->element[k]->len);
                text = join_stream(value);
            } else {
                value = h_redis_cmd(node, "TTL %b", key, keys->element[k]->len);
                text = strdup("?");
            }
            freeReplyObject(value);
            char *line = NULL;
            if (asprintf(&line, "%s %s %s", key, type, text) < 0)
                h_fatal("out of memory");
            add_line(lines, line);
            free(type);
            free(text);
        }
        freeReplyObject(scan);
    } while (strcmp(cursor, "0"));
}

char *h_dump_nodes(h_redis_t *const *nodes, int cnt) {
    lines_t lines = {0};
    for (int n = 0; n < cnt; n++)
        if (running(nodes[n]) && info_has(nodes[n], "replication", "role:master"))
            dump_node(nodes[n], &lines);
    qsort(lines.lines, lines.cnt, sizeof(*lines.lines), cmp_str);
    add_line(&lines, strdup("")); /* so that the text ends with a newline */
    return concat(&lines, "\n");
}

char *h_cluster_dump(h_cluster_t *cluster) {
    return h_dump_nodes(cluster->nodes, cluster->node_cnt);
}
