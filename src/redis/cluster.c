/*
 * cluster.c — Redis Cluster under the calls of redis.h: which node holds each slot, one
 * connection per node, batches split by node, MOVED and ASK followed, the slots learned again
 * after a node fails (a failover promotes a replica; the next connect finds it).
 *
 * Data path: rkb_redis_pipeline on a cluster handle formats every command of the batch as RESP
 * once (with where each one starts), picks a node for each (the master of its key's slot: the
 * key's position depends on the command), writes each node's commands to it in one piece, then
 * reads each node's replies into the batch's order. A reply MOVED (the slot has another master
 * now) or ASK (the key is being migrated) sends that command again, to the node named, in a
 * further round; MOVED also makes the handle learn every slot again (CLUSTER SLOTS), since a
 * failover moves a whole range. NOSCRIPT (a new master that never saw our script) loads the
 * script there and runs the command again.
 *
 * Threads: the owner of the handle, like redis.c.
 */
#include "redis/redis_int.h"

#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SLOTS      16384
#define MAX_ROUNDS 5 /* redirections followed for one batch before the caller retries */

/* Where command i goes: a node index, or one of these. */
#define TARGET_ANY (-1) /* no key: any node */
#define TARGET_ALL (-2) /* WAIT: every node the batch wrote to */

typedef struct {
    char *host;
    int port;
    rkb_redis_t *conn; /* a single-server handle to this node */
    rkb_buf_t out;     /* this round's RESP for the node */
    /* This round's replies to expect, in order: a command index, or ~index for an ASKING
     * sent before command index (its +OK is dropped). */
    long *expect;
    size_t expect_cnt, expect_cap;
} cnode_t;

typedef struct {
    char sha[41];
    char *text;
    size_t len;
} script_t;

struct rkb_cluster_s {
    cnode_t *nodes;
    size_t node_cnt;
    int slot_node[SLOTS]; /* master of each slot, an index into nodes, or -1 */
    bool ready;           /* the slots are known and no node failed since */

    /* The batch being routed (grown, kept). */
    size_t *start; /* where command i starts in resp; start[count] is the end */
    int *target;
    bool *asking;
    size_t *pending, *next;
    size_t cap;
    rkb_buf_t resp;

    /* rkb_redis_pipeline_send/recv: batches sent but not yet run, in order (see send). */
    const rkb_cmds_t *queued[8];
    size_t queued_head, queued_tail;

    /* rkb_redis_send/read: the node each command sent went to, oldest first. */
    int sent_node[64];
    size_t sent_head, sent_tail;
    int last_node;

    script_t *scripts; /* loaded by rkb_redis_script_load: loaded again where missing */
    size_t script_cnt;
};

/* ---- Slots -------------------------------------------------------------------------------- */

/* CRC16-CCITT (XMODEM), the cluster's key hash (Redis cluster spec, appendix A). */
static uint16_t crc16(const char *buf, size_t len) {
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

unsigned rkb_redis_key_slot(const char *key, size_t len) {
    const char *open = memchr(key, '{', len);
    if (open) {
        size_t rest = len - (size_t)(open - key) - 1;
        const char *close = memchr(open + 1, '}', rest);
        if (close && close > open + 1)
            return crc16(open + 1, (size_t)(close - open - 1)) & (SLOTS - 1);
    }
    return crc16(key, len) & (SLOTS - 1);
}

static bool is(const char *name, const char *want) {
    return !strcasecmp(name, want);
}

/* The argument that decides where command i goes, or -1 when it has no key. */
static int key_arg(const rkb_cmds_t *cmds, size_t i) {
    int argc = rkb_cmds_argc(cmds, i);
    const char *name = rkb_cmds_argv(cmds, i, 0, NULL);
    if (is(name, "EVALSHA") || is(name, "EVAL") || is(name, "FCALL")) {
        const char *numkeys = argc > 2 ? rkb_cmds_argv(cmds, i, 2, NULL) : "0";
        return argc > 3 && strcmp(numkeys, "0") ? 3 : -1;
    }
    if (is(name, "XREADGROUP") || is(name, "XREAD")) {
        for (int j = 1; j + 1 < argc; j++)
            if (is(rkb_cmds_argv(cmds, i, j, NULL), "STREAMS"))
                return j + 1;
        return -1;
    }
    if (is(name, "XGROUP") || is(name, "XINFO") || is(name, "OBJECT") || is(name, "MEMORY"))
        return argc > 2 ? 2 : -1;
    static const char *const keyless[] = {"PING",    "SCRIPT",  "INFO",     "CLIENT", "WAIT",
                                          "MULTI",   "EXEC",    "DISCARD",  "SCAN",   "CONFIG",
                                          "COMMAND", "DBSIZE",  "FUNCTION", "ACL",    "SUBSCRIBE",
                                          "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "CLUSTER"};
    for (size_t k = 0; k < RKB_ARRAY_SIZE(keyless); k++)
        if (is(name, keyless[k]))
            return -1;
    return argc > 1 ? 1 : -1;
}

static int cmd_slot(const rkb_cmds_t *cmds, size_t i) {
    int arg = key_arg(cmds, i);
    if (arg < 0)
        return -1;
    size_t len;
    const char *key = rkb_cmds_argv(cmds, i, arg, &len);
    return (int)rkb_redis_key_slot(key, len);
}

/* ---- Nodes -------------------------------------------------------------------------------- */

static int node_find(rkb_cluster_t *c, const char *host, int port) {
    for (size_t n = 0; n < c->node_cnt; n++)
        if (c->nodes[n].port == port && !strcmp(c->nodes[n].host, host))
            return (int)n;
    return -1;
}

/* The node at host:port, added (not connected) when new. */
static int node_get(rkb_redis_t *r, const char *host, int port) {
    rkb_cluster_t *c = r->cluster;
    int found = node_find(c, host, port);
    if (found >= 0)
        return found;
    c->nodes = rkb_realloc(c->nodes, (c->node_cnt + 1) * sizeof(*c->nodes));
    cnode_t *node = &c->nodes[c->node_cnt];
    memset(node, 0, sizeof(*node));
    node->host = rkb_strdup(host);
    node->port = port;
    rkb_redis_conf_t conf;
    rkb_redis_conf_copy(&conf, &r->conf);
    free(conf.host);
    conf.host = rkb_strdup(host);
    conf.port = port;
    conf.cluster = RKB_REDIS_CLUSTER_OFF;
    free(conf.sentinel_master); /* a node is reached directly */
    conf.sentinel_master = NULL;
    for (size_t i = 0; i < conf.sentinel_cnt; i++)
        free(conf.sentinels[i].host);
    free(conf.sentinels);
    conf.sentinels = NULL;
    conf.sentinel_cnt = 0;
    node->conn = rkb_redis_new(&conf, r->component);
    node->conn->metrics = NULL; /* the cluster handle reports for all of its nodes */
    rkb_redis_conf_clear(&conf);
    rkb_buf_init(&node->out);
    return (int)c->node_cnt++;
}

/* A node that cannot be reached makes the handle unready: the next rkb_redis_connect learns
 * the slots again (a failover may have moved them to a replica by then). */
static int node_connect(rkb_redis_t *r, cnode_t *node, char *errstr, size_t errstr_size) {
    if (node->conn->conn)
        return RKB_REDIS_OK;
    int err = rkb_redis_connect_one(node->conn, errstr, errstr_size);
    if (err)
        r->cluster->ready = false;
    return err;
}

/* The first node that masters a slot: where keyless commands go. */
static int any_node(const rkb_cluster_t *c) {
    for (size_t s = 0; s < SLOTS; s++)
        if (c->slot_node[s] >= 0)
            return c->slot_node[s];
    return c->node_cnt ? 0 : -1;
}

/* Learns the slots from a CLUSTER SLOTS reply: [[start, end, [host, port, id], replicas...]...].
 * A node that announces no host ("" or "?") is at the host we asked (asked_host). Returns 0, or
 * -1 when the reply is not that shape. */
static int learn_slots(rkb_redis_t *r, const redisReply *reply, const char *asked_host) {
    rkb_cluster_t *c = r->cluster;
    if (reply->type != REDIS_REPLY_ARRAY)
        return -1;
    int slot_node[SLOTS];
    for (size_t s = 0; s < SLOTS; s++)
        slot_node[s] = -1;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *range = reply->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER ||
            range->element[2]->type != REDIS_REPLY_ARRAY || range->element[2]->elements < 2 ||
            range->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long first = range->element[0]->integer, last = range->element[1]->integer;
        const char *host = range->element[2]->element[0]->str;
        int port = (int)range->element[2]->element[1]->integer;
        if (first < 0 || last >= SLOTS || first > last || port <= 0 || port > 65535)
            return -1;
        if (!*host || !strcmp(host, "?"))
            host = asked_host;
        int n = node_get(r, host, port);
        for (long long s = first; s <= last; s++)
            slot_node[s] = n;
    }
    memcpy(c->slot_node, slot_node, sizeof(slot_node));
    return 0;
}

/* CLUSTER SLOTS on a connected single-server handle. RKB_REDIS_OK with *reply, or an error. */
static int ask_slots(rkb_redis_t *conn, redisReply **reply, char *errstr, size_t errstr_size) {
    static const char *const argv[] = {"CLUSTER", "SLOTS"};
    *reply = rkb_redis_command(conn, 2, (const char **)argv, NULL, errstr, errstr_size);
    return *reply ? RKB_REDIS_OK : RKB_REDIS_ERR_IO;
}

/* Learns the slots again from the first node that answers: those connected first, then the
 * others (among them the seed, conf.host:conf.port, known as a node since the start). */
static int refresh(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    char why[512] = "no node known";
    for (int pass = 0; pass < 2; pass++) {
        for (size_t n = 0; n < c->node_cnt; n++) {
            rkb_redis_t *conn = c->nodes[n].conn;
            if ((pass == 0) != (conn->conn != NULL))
                continue;
            if (pass == 1 && node_connect(r, &c->nodes[n], why, sizeof(why)))
                continue;
            redisReply *reply;
            if (ask_slots(conn, &reply, why, sizeof(why)))
                continue;
            const char *host = conn->conf.host;
            int bad = reply->type == REDIS_REPLY_ERROR ? 1 : learn_slots(r, reply, host);
            if (bad)
                snprintf(why, sizeof(why), "redis %s: CLUSTER SLOTS: %s", conn->addr,
                         reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
            freeReplyObject(reply);
            if (!bad && any_node(c) >= 0)
                return RKB_REDIS_OK;
        }
    }
    snprintf(errstr, errstr_size, "redis cluster: no node told the slots (last: %s)", why);
    return RKB_REDIS_ERR_IO;
}

/* ---- Handle ------------------------------------------------------------------------------- */

int rkb_cluster_detect(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    redisReply *reply;
    int err = ask_slots(r, &reply, errstr, errstr_size);
    if (err)
        return err;
    if (reply->type == REDIS_REPLY_ERROR) {
        /* "ERR This instance has cluster support disabled", or an ACL user without CLUSTER. */
        if (r->conf.cluster == RKB_REDIS_CLUSTER_ON) {
            snprintf(errstr, errstr_size,
                     "redis %s: redis.cluster=true but CLUSTER SLOTS failed: %s", r->addr,
                     reply->str);
            err = RKB_REDIS_ERR_PROTO;
        }
        freeReplyObject(reply);
        return err;
    }
    rkb_cluster_t *c = rkb_calloc(1, sizeof(*c));
    for (size_t s = 0; s < SLOTS; s++)
        c->slot_node[s] = -1;
    c->last_node = -1;
    rkb_buf_init(&c->resp);
    r->cluster = c;
    node_get(r, r->conf.host, r->conf.port); /* the seed: asked again when all else fails */
    if (learn_slots(r, reply, r->conf.host) || any_node(c) < 0) {
        snprintf(errstr, errstr_size, "redis %s: CLUSTER SLOTS: %s", r->addr,
                 reply->elements ? "unexpected reply" : "no slot is served (cluster not set up?)");
        freeReplyObject(reply);
        rkb_cluster_destroy(c);
        r->cluster = NULL;
        return RKB_REDIS_ERR_IO;
    }
    freeReplyObject(reply);
    rkb_redis_close_one(r); /* the nodes' own connections carry everything from now on */
    c->ready = true;
    rkb_log_info(r->component, "redis %s is a cluster node: %zu masters serve the slots", r->addr,
                 c->node_cnt);
    return RKB_REDIS_OK;
}

void rkb_cluster_destroy(rkb_cluster_t *c) {
    if (!c)
        return;
    for (size_t n = 0; n < c->node_cnt; n++) {
        rkb_redis_destroy(c->nodes[n].conn);
        free(c->nodes[n].host);
        rkb_buf_free(&c->nodes[n].out);
        free(c->nodes[n].expect);
    }
    free(c->nodes);
    free(c->start);
    free(c->target);
    free(c->asking);
    free(c->pending);
    free(c->next);
    rkb_buf_free(&c->resp);
    for (size_t k = 0; k < c->script_cnt; k++)
        free(c->scripts[k].text);
    free(c->scripts);
    free(c);
}

int rkb_cluster_connect(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    int err = refresh(r, errstr, errstr_size);
    c->ready = err == RKB_REDIS_OK;
    return err;
}

bool rkb_cluster_ready(const rkb_redis_t *r) {
    return r->cluster->ready;
}

void rkb_cluster_close(rkb_redis_t *r) {
    rkb_cluster_t *c = r->cluster;
    for (size_t n = 0; n < c->node_cnt; n++)
        rkb_redis_close(c->nodes[n].conn);
    c->ready = false;
    c->queued_head = c->queued_tail;
    c->sent_head = c->sent_tail;
}

/* ---- Batches ------------------------------------------------------------------------------ */

/* RKB_REDIS_ERR_IO with errstr while the handle must connect (again) first. */
static int check_ready(const rkb_cluster_t *c, char *errstr, size_t errstr_size) {
    if (c->ready)
        return RKB_REDIS_OK;
    snprintf(errstr, errstr_size, "redis cluster: not connected");
    return RKB_REDIS_ERR_IO;
}

/* One command in argv form as a batch of one (argvlen NULL: NUL-terminated strings). */
static rkb_cmds_t *one_command(int argc, const char **argv, const size_t *argvlen) {
    rkb_cmds_t *one = rkb_cmds_new();
    rkb_cmds_begin(one);
    for (int i = 0; i < argc; i++)
        rkb_cmds_arg(one, argv[i], argvlen ? argvlen[i] : strlen(argv[i]));
    rkb_cmds_end(one);
    return one;
}

static void grow(rkb_cluster_t *c, size_t count) {
    if (count + 1 <= c->cap)
        return;
    c->cap = (count + 1) * 2;
    c->start = rkb_realloc(c->start, c->cap * sizeof(*c->start));
    c->target = rkb_realloc(c->target, c->cap * sizeof(*c->target));
    c->asking = rkb_realloc(c->asking, c->cap * sizeof(*c->asking));
    c->pending = rkb_realloc(c->pending, c->cap * sizeof(*c->pending));
    c->next = rkb_realloc(c->next, c->cap * sizeof(*c->next));
}

static int slot_target(const rkb_cluster_t *c, int slot) {
    int n = slot >= 0 ? c->slot_node[slot] : -1;
    return n >= 0 ? n : any_node(c);
}

/* The end (EXEC or DISCARD) of the MULTI block that starts at i, or count - 1. */
static size_t block_end(const rkb_cmds_t *cmds, size_t i, size_t count) {
    size_t j = i + 1;
    while (j < count && !is(rkb_cmds_argv(cmds, j, 0, NULL), "EXEC") &&
           !is(rkb_cmds_argv(cmds, j, 0, NULL), "DISCARD"))
        j++;
    return j < count ? j : count - 1;
}

/* Picks the node of every command: a MULTI block goes whole to the node of its first key. */
static void route(rkb_cluster_t *c, const rkb_cmds_t *cmds, size_t count) {
    for (size_t i = 0; i < count; i++) {
        const char *name = rkb_cmds_argv(cmds, i, 0, NULL);
        c->asking[i] = false;
        if (is(name, "WAIT")) {
            c->target[i] = TARGET_ALL;
        } else if (is(name, "MULTI")) {
            size_t end = block_end(cmds, i, count);
            int slot = -1;
            for (size_t j = i + 1; j < end && slot < 0; j++)
                slot = cmd_slot(cmds, j);
            for (size_t j = i; j <= end; j++) {
                c->target[j] = slot_target(c, slot);
                c->asking[j] = false;
            }
            i = end;
        } else {
            c->target[i] = slot_target(c, cmd_slot(cmds, i));
        }
    }
}

static void expect_push(cnode_t *node, long what) {
    if (node->expect_cnt == node->expect_cap) {
        node->expect_cap = node->expect_cap ? node->expect_cap * 2 : 64;
        node->expect = rkb_realloc(node->expect, node->expect_cap * sizeof(*node->expect));
    }
    node->expect[node->expect_cnt++] = what;
}

/* A node failed in the middle of a round: the other nodes of the round may still owe replies,
 * so every connection of the round is closed, and the handle must connect again (which learns
 * the slots again). */
static int round_failed(rkb_redis_t *r, redisReply **replies, size_t count) {
    rkb_cluster_t *c = r->cluster;
    rkb_redis_replies_free(replies, count);
    for (size_t n = 0; n < c->node_cnt; n++)
        if (c->nodes[n].expect_cnt)
            rkb_redis_close(c->nodes[n].conn);
    c->ready = false;
    c->queued_head = c->queued_tail; /* batches queued behind this one are lost with it */
    return RKB_REDIS_ERR_IO;
}

/* Loads a script on a node (known by its SHA from rkb_redis_script_load). */
static int load_on(rkb_redis_t *r, cnode_t *node, const script_t *script, char *errstr,
                   size_t errstr_size) {
    const char *argv[] = {"SCRIPT", "LOAD", script->text};
    const size_t argvlen[] = {6, 4, script->len};
    int err = node_connect(r, node, errstr, errstr_size);
    if (err)
        return err;
    redisReply *reply = rkb_redis_command(node->conn, 3, argv, argvlen, errstr, errstr_size);
    if (!reply)
        return RKB_REDIS_ERR_IO;
    err = reply->type == REDIS_REPLY_STRING ? RKB_REDIS_OK : RKB_REDIS_ERR_PROTO;
    if (err)
        snprintf(errstr, errstr_size, "redis %s: SCRIPT LOAD: %s", node->conn->addr,
                 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
    freeReplyObject(reply);
    return err;
}

static const script_t *script_find(const rkb_cluster_t *c, const char *sha, size_t len) {
    for (size_t k = 0; k < c->script_cnt; k++)
        if (len == 40 && !strncasecmp(c->scripts[k].sha, sha, 40))
            return &c->scripts[k];
    return NULL;
}

/* Parses "MOVED 3999 127.0.0.1:6381" / "ASK ..." into the node it names. -1 if malformed. */
static int redirect_node(rkb_redis_t *r, const char *msg, int *slot) {
    const char *sp = strchr(msg, ' ');
    if (!sp)
        return -1;
    char *end;
    long s = strtol(sp + 1, &end, 10);
    if (*end != ' ' || s < 0 || s >= SLOTS)
        return -1;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return -1;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    char host[256];
    size_t host_len = (size_t)(colon - addr);
    if (host_len >= sizeof(host))
        return -1;
    memcpy(host, addr, host_len);
    host[host_len] = '\0';
    *slot = (int)s;
    /* An empty host: the node we sent to does not know its own address; it is the seed's. */
    return node_get(r, host_len ? host : r->conf.host, (int)port);
}

/*
 * One batch over the cluster. Each round writes every node its share of the pending commands
 * (all nodes first, so they work at once), then reads them; what was redirected is pending for
 * the next round. The redirected commands of one key were all redirected together (one slot),
 * so they keep their order.
 */
int rkb_cluster_pipeline(rkb_redis_t *r, const rkb_cmds_t *cmds, redisReply **replies,
                         char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    size_t count = rkb_cmds_count(cmds);
    for (size_t i = 0; i < count; i++)
        replies[i] = NULL;
    if (check_ready(c, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (!count)
        return RKB_REDIS_OK;
    int64_t started_us = rkb_now_us();
    grow(c, count);
    rkb_buf_reset(&c->resp);
    for (size_t i = 0; i < count; i++) {
        c->start[i] = c->resp.len;
        rkb_redis_resp_command(&c->resp, cmds, i);
    }
    c->start[count] = c->resp.len;
    route(c, cmds, count);
    size_t pending_cnt = count;
    for (size_t i = 0; i < count; i++)
        c->pending[i] = i;

    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    for (int round = 0; pending_cnt && round < MAX_ROUNDS; round++) {
        for (size_t n = 0; n < c->node_cnt; n++) {
            rkb_buf_reset(&c->nodes[n].out);
            c->nodes[n].expect_cnt = 0;
        }
        for (size_t p = 0; p < pending_cnt; p++) {
            size_t i = c->pending[p];
            const char *bytes = c->resp.data + c->start[i];
            size_t len = c->start[i + 1] - c->start[i];
            if (c->target[i] == TARGET_ALL) {
                /* WAIT: after the writes of this round on every node that has some. */
                bool any = false;
                for (size_t n = 0; n < c->node_cnt; n++) {
                    if (!c->nodes[n].expect_cnt)
                        continue;
                    rkb_buf_append(&c->nodes[n].out, bytes, len);
                    expect_push(&c->nodes[n], (long)i);
                    any = true;
                }
                if (any)
                    continue;
            }
            int n = c->target[i] >= 0 ? c->target[i] : any_node(c);
            cnode_t *node = &c->nodes[n];
            if (c->asking[i]) {
                rkb_buf_append(&node->out, asking, sizeof(asking) - 1);
                expect_push(node, ~(long)i);
            }
            rkb_buf_append(&node->out, bytes, len);
            expect_push(node, (long)i);
        }
        for (size_t n = 0; n < c->node_cnt; n++) {
            cnode_t *node = &c->nodes[n];
            if (!node->expect_cnt)
                continue;
            if (node_connect(r, node, errstr, errstr_size) ||
                rkb_redis_write(node->conn, node->out.data, node->out.len, errstr, errstr_size))
                return round_failed(r, replies, count);
        }
        for (size_t n = 0; n < c->node_cnt; n++) {
            cnode_t *node = &c->nodes[n];
            for (size_t e = 0; e < node->expect_cnt; e++) {
                redisReply *reply;
                if (rkb_redis_await(node->conn, &reply, errstr, errstr_size))
                    return round_failed(r, replies, count);
                long what = node->expect[e];
                size_t i = (size_t)(what < 0 ? ~what : what);
                if (what < 0) {
                    freeReplyObject(reply); /* ASKING's +OK */
                } else if (replies[i] && c->target[i] == TARGET_ALL) {
                    /* WAIT: the smallest count of replicas over the nodes. */
                    if (reply->type != REDIS_REPLY_INTEGER ||
                        (replies[i]->type == REDIS_REPLY_INTEGER &&
                         reply->integer < replies[i]->integer)) {
                        freeReplyObject(replies[i]);
                        replies[i] = reply;
                    } else {
                        freeReplyObject(reply);
                    }
                } else {
                    if (replies[i])
                        freeReplyObject(replies[i]);
                    replies[i] = reply;
                }
            }
        }

        /* What comes again: redirected commands (a MULTI block whole), scripts a node lacked,
         * and WAIT after any of those. */
        size_t next_cnt = 0;
        bool moved = false, again = false;
        for (size_t p = 0; p < pending_cnt; p++) {
            size_t i = c->pending[p];
            const redisReply *reply = replies[i];
            const char *msg = reply && reply->type == REDIS_REPLY_ERROR ? reply->str : NULL;
            if (!msg)
                continue;
            int slot, n = -1;
            bool is_moved = !strncmp(msg, "MOVED ", 6), is_ask = !strncmp(msg, "ASK ", 4);
            if (is_moved || is_ask) {
                n = redirect_node(r, msg, &slot);
                if (n < 0)
                    continue;
            } else if (!strncmp(msg, "NOSCRIPT", 8) &&
                       is(rkb_cmds_argv(cmds, i, 0, NULL), "EVALSHA")) {
                size_t len;
                const char *sha = rkb_cmds_argv(cmds, i, 1, &len);
                const script_t *script = script_find(c, sha, len);
                int at = c->target[i] >= 0 ? c->target[i] : any_node(c);
                char why[512];
                if (!script || load_on(r, &c->nodes[at], script, why, sizeof(why))) {
                    if (script)
                        rkb_log_warn(r->component, "%s", why);
                    continue;
                }
                n = at;
            } else {
                continue;
            }
            if (is_moved) {
                c->slot_node[slot] = n;
                moved = true;
            }
            c->target[i] = n;
            c->asking[i] = is_ask;
            c->next[next_cnt++] = i;
            again = true;
        }
        /* A block goes again whole (its MULTI came back +OK, its EXEC EXECABORT). */
        for (size_t p = 0; p < pending_cnt && again; p++) {
            size_t i = c->pending[p];
            if (!is(rkb_cmds_argv(cmds, i, 0, NULL), "MULTI"))
                continue;
            size_t end = block_end(cmds, i, count);
            int to = -1;
            for (size_t q = 0; q < next_cnt && to < 0; q++)
                if (c->next[q] > i && c->next[q] <= end)
                    to = c->target[c->next[q]];
            if (to < 0)
                continue;
            size_t kept = 0;
            for (size_t q = 0; q < next_cnt; q++)
                if (c->next[q] < i || c->next[q] > end)
                    c->next[kept++] = c->next[q];
            next_cnt = kept;
            for (size_t j = i; j <= end; j++) {
                c->target[j] = to;
                c->asking[j] = false;
                c->next[next_cnt++] = j;
            }
        }
        for (size_t p = 0; p < pending_cnt && again; p++)
            if (c->target[c->pending[p]] == TARGET_ALL)
                c->next[next_cnt++] = c->pending[p];
        if (moved) {
            /* A failover or a resharding moved more than this slot: learn them all. */
            char why[512];
            if (refresh(r, why, sizeof(why)))
                rkb_log_warn(r->component, "%s", why);
        }
        /* In the batch's order, which the node needs for the commands of one key. */
        for (size_t a = 1; a < next_cnt; a++) {
            size_t v = c->next[a], b = a;
            for (; b > 0 && c->next[b - 1] > v; b--)
                c->next[b] = c->next[b - 1];
            c->next[b] = v;
        }
        for (size_t q = 0; q < next_cnt; q++) {
            size_t i = c->next[q];
            if (replies[i])
                freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
        memcpy(c->pending, c->next, next_cnt * sizeof(*c->pending));
        pending_cnt = next_cnt;
    }
    if (pending_cnt) {
        /* Still redirected after MAX_ROUNDS: the last replies (MOVED/ASK) stand; they are
         * transient (rkb_redis_error_is_transient), and the caller tries again later. This
         * round's replies were freed above, so rebuild them as the redirect errors. */
        for (size_t q = 0; q < pending_cnt; q++) {
            size_t i = c->pending[q];
            if (!replies[i]) {
                redisReply *fake = rkb_calloc(1, sizeof(*fake));
                fake->type = REDIS_REPLY_ERROR;
                fake->str = rkb_strdup("TRYAGAIN the cluster kept redirecting this command");
                fake->len = strlen(fake->str);
                replies[i] = fake;
            }
        }
    }
    rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - started_us, count);
    return RKB_REDIS_OK;
}

/*
 * Two batches in flight, as rkb_redis_pipeline_send/recv allow on one connection, would need
 * each node's redirections sorted out across both; on a cluster send only queues the batch
 * (the caller keeps cmds unchanged until its recv) and recv runs it whole. The nodes still
 * work in parallel within a batch.
 */
int rkb_cluster_pipeline_send(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr,
                              size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    if (check_ready(c, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (c->queued_tail - c->queued_head == RKB_ARRAY_SIZE(c->queued)) {
        snprintf(errstr, errstr_size, "redis cluster: too many batches in flight");
        return RKB_REDIS_ERR_IO;
    }
    if (rkb_cmds_count(cmds))
        c->queued[c->queued_tail++ % RKB_ARRAY_SIZE(c->queued)] = cmds;
    return RKB_REDIS_OK;
}

int rkb_cluster_pipeline_recv(rkb_redis_t *r, size_t count, redisReply **replies, char *errstr,
                              size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    for (size_t i = 0; i < count; i++)
        replies[i] = NULL;
    if (!count)
        return RKB_REDIS_OK;
    if (c->queued_head == c->queued_tail) {
        snprintf(errstr, errstr_size, "redis cluster: not connected");
        return RKB_REDIS_ERR_IO;
    }
    const rkb_cmds_t *cmds = c->queued[c->queued_head++ % RKB_ARRAY_SIZE(c->queued)];
    int err = rkb_cluster_pipeline(r, cmds, replies, errstr, errstr_size);
    if (err)
        c->queued_head = c->queued_tail; /* the connections are gone, and the batches with them */
    return err;
}

/* Loaded on every master, and kept, so that a master that appears later (a promoted replica)
 * gets it when it answers NOSCRIPT. */
int rkb_cluster_script_load(rkb_redis_t *r, const char *what, const char *text, size_t len,
                            char sha[41], char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    int err = RKB_REDIS_ERR_PROTO;
    bool done[64] = {false};
    for (size_t s = 0; s < SLOTS; s++) {
        int n = c->slot_node[s];
        if (n < 0 || ((size_t)n < RKB_ARRAY_SIZE(done) && done[n]))
            continue;
        if ((size_t)n < RKB_ARRAY_SIZE(done))
            done[n] = true;
        cnode_t *node = &c->nodes[n];
        if ((err = node_connect(r, node, errstr, errstr_size)))
            return err;
        if ((err = rkb_redis_script_load(node->conn, what, text, len, sha, errstr, errstr_size))) {
            if (err == RKB_REDIS_ERR_IO)
                c->ready = false;
            return err;
        }
    }
    if (!err && !script_find(c, sha, 40)) {
        c->scripts = rkb_realloc(c->scripts, (c->script_cnt + 1) * sizeof(*c->scripts));
        script_t *script = &c->scripts[c->script_cnt++];
        memcpy(script->sha, sha, 41);
        script->text = rkb_malloc(len + 1);
        memcpy(script->text, text, len);
        script->text[len] = '\0';
        script->len = len;
    }
    return err;
}

redisReply *rkb_cluster_command(rkb_redis_t *r, int argc, const char **argv,
                                const size_t *argvlen, char *errstr, size_t errstr_size) {
    rkb_cmds_t *one = one_command(argc, argv, argvlen);
    redisReply *reply = NULL;
    rkb_cluster_pipeline(r, one, &reply, errstr, errstr_size);
    rkb_cmds_destroy(one);
    return reply;
}

/* ---- Commands sent one at a time (a subscriber, the stream source's rounds) --------------- */

int rkb_cluster_send(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    if (check_ready(c, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (c->sent_tail - c->sent_head == RKB_ARRAY_SIZE(c->sent_node)) {
        snprintf(errstr, errstr_size, "redis cluster: too many commands awaiting replies");
        return RKB_REDIS_ERR_IO;
    }
    rkb_cmds_t *one = one_command(argc, argv, argvlen);
    int n = slot_target(c, cmd_slot(one, 0));
    rkb_cmds_destroy(one);
    cnode_t *node = &c->nodes[n];
    int err = node_connect(r, node, errstr, errstr_size);
    if (!err)
        err = rkb_redis_send(node->conn, argc, argv, argvlen, errstr, errstr_size);
    if (err) {
        rkb_cluster_close(r);
        return RKB_REDIS_ERR_IO;
    }
    c->sent_node[c->sent_tail++ % RKB_ARRAY_SIZE(c->sent_node)] = n;
    c->last_node = n;
    return RKB_REDIS_OK;
}

/* The reply to the oldest command sent that has none yet, from its node; when every command
 * sent has had its reply, what the last node pushes (a subscriber's messages). */
int rkb_cluster_read(rkb_redis_t *r, int timeout_ms, redisReply **reply, char *errstr,
                     size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    *reply = NULL;
    bool owed = c->sent_head != c->sent_tail;
    int n = owed ? c->sent_node[c->sent_head % RKB_ARRAY_SIZE(c->sent_node)] : c->last_node;
    if (!c->ready || n < 0) {
        snprintf(errstr, errstr_size, "redis cluster: not connected");
        return RKB_REDIS_ERR_IO;
    }
    int err = rkb_redis_read(c->nodes[n].conn, timeout_ms, reply, errstr, errstr_size);
    if (err) {
        rkb_cluster_close(r);
        return err;
    }
    if (*reply && owed)
        c->sent_head++;
    return RKB_REDIS_OK;
}
