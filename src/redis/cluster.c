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
#include "redis/sentinel.h"

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

#define FLIGHTS 4 /* batches in flight at once (the sink has two) */

/* A reply a node owes: to command `what` of flight `flight`, or (what < 0) to the ASKING sent
 * before command ~what (its +OK is dropped). */
typedef struct {
    int flight;
    long what;
} expect_t;

typedef struct {
    char *host;
    int port;
    rkb_redis_t *conn; /* a single-server handle to this node */
    rkb_buf_t out;     /* the RESP being written to the node now */
    /* The replies it owes, oldest first, over every flight; and how many per flight. */
    expect_t *expect;
    size_t expect_head, expect_tail, expect_cap;
    size_t owed[FLIGHTS];
} cnode_t;

/* One batch between rkb_redis_pipeline_send and _recv: its RESP (with where each command
 * starts, to send one again), where each command went, and the replies read so far. */
typedef struct {
    bool used;
    const rkb_cmds_t *cmds; /* the caller's, unchanged until the batch is received */
    size_t count;
    rkb_buf_t resp;
    size_t *start; /* start[count] is the end */
    int *target;
    bool *asking;
    redisReply **replies;
    size_t *pending, *next;
    size_t cap;
    int64_t started_us;
} flight_t;

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

    flight_t flights[FLIGHTS];
    /* rkb_redis_pipeline_send/recv: the flights sent and not yet received, oldest first. */
    int queued[FLIGHTS];
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
    rkb_sentinel_conf_clear(&conf); /* a node is reached directly */
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

/* Which nodes master some slot now (masters[n], for the node_cnt nodes; caller frees);
 * returns how many. The node list also holds the seed and nodes since demoted. */
static size_t masters_of(const rkb_cluster_t *c, bool **masters) {
    *masters = rkb_calloc(c->node_cnt ? c->node_cnt : 1, sizeof(**masters));
    size_t cnt = 0;
    for (size_t s = 0; s < SLOTS; s++) {
        int n = c->slot_node[s];
        if (n >= 0 && !(*masters)[n]) {
            (*masters)[n] = true;
            cnt++;
        }
    }
    return cnt;
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
            if (c->nodes[n].expect_head != c->nodes[n].expect_tail)
                continue; /* its connection carries replies a batch still owes */
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
    for (size_t f = 0; f < FLIGHTS; f++)
        rkb_buf_init(&c->flights[f].resp);
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
    bool *masters;
    rkb_log_info(r->component, "redis %s is a cluster node: %zu masters serve the slots", r->addr,
                 masters_of(c, &masters));
    free(masters);
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
    for (size_t f = 0; f < FLIGHTS; f++) {
        flight_t *fl = &c->flights[f];
        if (fl->used)
            rkb_redis_replies_free(fl->replies, fl->count);
        rkb_buf_free(&fl->resp);
        free(fl->start);
        free(fl->target);
        free(fl->asking);
        free(fl->replies);
        free(fl->pending);
        free(fl->next);
    }
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

static void lose_flights(rkb_cluster_t *c);

void rkb_cluster_close(rkb_redis_t *r) {
    rkb_cluster_t *c = r->cluster;
    for (size_t n = 0; n < c->node_cnt; n++)
        rkb_redis_close(c->nodes[n].conn);
    lose_flights(c);
    c->ready = false;
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

static void flight_grow(flight_t *fl, size_t count) {
    if (count + 1 <= fl->cap)
        return;
    fl->cap = (count + 1) * 2;
    fl->start = rkb_realloc(fl->start, fl->cap * sizeof(*fl->start));
    fl->target = rkb_realloc(fl->target, fl->cap * sizeof(*fl->target));
    fl->asking = rkb_realloc(fl->asking, fl->cap * sizeof(*fl->asking));
    fl->replies = rkb_realloc(fl->replies, fl->cap * sizeof(*fl->replies));
    fl->pending = rkb_realloc(fl->pending, fl->cap * sizeof(*fl->pending));
    fl->next = rkb_realloc(fl->next, fl->cap * sizeof(*fl->next));
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
static void route(const rkb_cluster_t *c, flight_t *fl) {
    const rkb_cmds_t *cmds = fl->cmds;
    for (size_t i = 0; i < fl->count; i++) {
        const char *name = rkb_cmds_argv(cmds, i, 0, NULL);
        fl->asking[i] = false;
        if (is(name, "WAIT")) {
            fl->target[i] = TARGET_ALL;
        } else if (is(name, "MULTI")) {
            size_t end = block_end(cmds, i, fl->count);
            int slot = -1;
            for (size_t j = i + 1; j < end && slot < 0; j++)
                slot = cmd_slot(cmds, j);
            for (size_t j = i; j <= end; j++) {
                fl->target[j] = slot_target(c, slot);
                fl->asking[j] = false;
            }
            i = end;
        } else {
            fl->target[i] = slot_target(c, cmd_slot(cmds, i));
        }
    }
}

/* A free flight for cmds, formatted and routed; -1 when FLIGHTS are in flight already. */
static int flight_open(rkb_cluster_t *c, const rkb_cmds_t *cmds) {
    int f = 0;
    while (f < FLIGHTS && c->flights[f].used)
        f++;
    if (f == FLIGHTS)
        return -1;
    flight_t *fl = &c->flights[f];
    fl->used = true;
    fl->cmds = cmds;
    fl->count = rkb_cmds_count(cmds);
    fl->started_us = rkb_now_us();
    flight_grow(fl, fl->count);
    rkb_buf_reset(&fl->resp);
    for (size_t i = 0; i < fl->count; i++) {
        fl->start[i] = fl->resp.len;
        fl->replies[i] = NULL;
        rkb_redis_resp_command(&fl->resp, cmds, i);
    }
    fl->start[fl->count] = fl->resp.len;
    route(c, fl);
    return f;
}

static void flight_close(rkb_cluster_t *c, int f) {
    flight_t *fl = &c->flights[f];
    rkb_redis_replies_free(fl->replies, fl->count);
    fl->used = false;
}

/* Every flight is gone with the connections: their replies will never come. */
static void lose_flights(rkb_cluster_t *c) {
    for (int f = 0; f < FLIGHTS; f++)
        if (c->flights[f].used)
            flight_close(c, f);
    c->queued_head = c->queued_tail;
    for (size_t n = 0; n < c->node_cnt; n++) {
        cnode_t *node = &c->nodes[n];
        node->expect_head = node->expect_tail = 0;
        memset(node->owed, 0, sizeof(node->owed));
    }
}

/* A node failed: the others may owe replies that nobody will read now, so every connection is
 * closed, every flight lost, and the handle must connect again (learning the slots again). */
static int all_failed(rkb_redis_t *r) {
    rkb_cluster_t *c = r->cluster;
    for (size_t n = 0; n < c->node_cnt; n++)
        rkb_redis_close(c->nodes[n].conn);
    lose_flights(c);
    c->ready = false;
    return RKB_REDIS_ERR_IO;
}

static void expect_push(cnode_t *node, int f, long what) {
    if (node->expect_tail == node->expect_cap) {
        node->expect_cap = node->expect_cap ? node->expect_cap * 2 : 256;
        node->expect = rkb_realloc(node->expect, node->expect_cap * sizeof(*node->expect));
    }
    node->expect[node->expect_tail++] = (expect_t){.flight = f, .what = what};
    node->owed[f]++;
}

/* Writes commands idx[0..cnt) of flight f to their nodes, each node's in one piece (all nodes
 * before any reply is read). */
static int dispatch(rkb_redis_t *r, int f, const size_t *idx, size_t cnt, char *errstr,
                    size_t errstr_size) {
    static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
    rkb_cluster_t *c = r->cluster;
    flight_t *fl = &c->flights[f];
    for (size_t n = 0; n < c->node_cnt; n++)
        rkb_buf_reset(&c->nodes[n].out);
    for (size_t p = 0; p < cnt; p++) {
        size_t i = idx[p];
        const char *bytes = fl->resp.data + fl->start[i];
        size_t len = fl->start[i + 1] - fl->start[i];
        if (fl->target[i] == TARGET_ALL) {
            /* WAIT: after the writes of this round on every node that has some. */
            bool any = false;
            for (size_t n = 0; n < c->node_cnt; n++) {
                if (!c->nodes[n].out.len)
                    continue;
                rkb_buf_append(&c->nodes[n].out, bytes, len);
                expect_push(&c->nodes[n], f, (long)i);
                any = true;
            }
            if (any)
                continue;
        }
        cnode_t *node = &c->nodes[fl->target[i] >= 0 ? fl->target[i] : any_node(c)];
        if (fl->asking[i]) {
            rkb_buf_append(&node->out, asking, sizeof(asking) - 1);
            expect_push(node, f, ~(long)i);
        }
        rkb_buf_append(&node->out, bytes, len);
        expect_push(node, f, (long)i);
    }
    for (size_t n = 0; n < c->node_cnt; n++) {
        cnode_t *node = &c->nodes[n];
        if (!node->out.len)
            continue;
        if (node_connect(r, node, errstr, errstr_size) ||
            rkb_redis_write(node->conn, node->out.data, node->out.len, errstr, errstr_size))
            return all_failed(r);
    }
    return RKB_REDIS_OK;
}

/* Reads the oldest reply node owes into its flight. */
static int read_one(rkb_redis_t *r, cnode_t *node, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    redisReply *reply;
    if (rkb_redis_await(node->conn, &reply, errstr, errstr_size))
        return all_failed(r);
    expect_t e = node->expect[node->expect_head++];
    if (node->expect_head == node->expect_tail)
        node->expect_head = node->expect_tail = 0;
    node->owed[e.flight]--;
    flight_t *fl = &c->flights[e.flight];
    size_t i = (size_t)(e.what < 0 ? ~e.what : e.what);
    if (e.what < 0) {
        freeReplyObject(reply); /* ASKING's +OK */
    } else if (fl->replies[i] && fl->target[i] == TARGET_ALL) {
        /* WAIT: the smallest count of replicas over the nodes. */
        if (reply->type != REDIS_REPLY_INTEGER ||
            (fl->replies[i]->type == REDIS_REPLY_INTEGER &&
             reply->integer < fl->replies[i]->integer)) {
            freeReplyObject(fl->replies[i]);
            fl->replies[i] = reply;
        } else {
            freeReplyObject(reply);
        }
    } else {
        if (fl->replies[i])
            freeReplyObject(fl->replies[i]);
        fl->replies[i] = reply;
    }
    return RKB_REDIS_OK;
}

/* Reads until flight f has every reply it is owed; replies of later flights that come first
 * on a connection are read into those flights on the way. */
static int collect(rkb_redis_t *r, int f, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    for (size_t n = 0; n < c->node_cnt; n++)
        while (c->nodes[n].owed[f])
            if (read_one(r, &c->nodes[n], errstr, errstr_size))
                return RKB_REDIS_ERR_IO;
    return RKB_REDIS_OK;
}

/* Reads every reply every node owes, so that a connection can carry a command of our own
 * (CLUSTER SLOTS, SCRIPT LOAD) without its reply being taken for a batch's. */
static int drain(rkb_redis_t *r, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    for (size_t n = 0; n < c->node_cnt; n++)
        while (c->nodes[n].expect_head != c->nodes[n].expect_tail)
            if (read_one(r, &c->nodes[n], errstr, errstr_size))
                return RKB_REDIS_ERR_IO;
    return RKB_REDIS_OK;
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
 * The replies of flight f: what it was owed first, then rounds for what was redirected (MOVED:
 * the slot has another master; ASK: the key is being migrated) or what a node lacked the script
 * for (NOSCRIPT), each to the node named. The redirected commands of one key were all
 * redirected together (one slot), and go again in the batch's order, so they keep their order;
 * a later flight's commands of that key, routed the same way, are redirected in their own turn,
 * after these.
 */
static int finish(rkb_redis_t *r, int f, redisReply **replies, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    flight_t *fl = &c->flights[f];
    const rkb_cmds_t *cmds = fl->cmds;
    size_t count = fl->count;
    if (collect(r, f, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    size_t pending_cnt = count;
    for (size_t i = 0; i < count; i++)
        fl->pending[i] = i;
    for (int round = 0; pending_cnt && round < MAX_ROUNDS; round++) {
        /* What comes again: redirected commands (a MULTI block whole), scripts a node lacked,
         * and WAIT after any of those. */
        size_t next_cnt = 0;
        bool moved = false, again = false;
        for (size_t p = 0; p < pending_cnt; p++) {
            size_t i = fl->pending[p];
            const redisReply *reply = fl->replies[i];
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
                int at = fl->target[i] >= 0 ? fl->target[i] : any_node(c);
                char why[512];
                if (!script)
                    continue;
                if (drain(r, errstr, errstr_size))
                    return RKB_REDIS_ERR_IO;
                if (load_on(r, &c->nodes[at], script, why, sizeof(why))) {
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
            fl->target[i] = n;
            fl->asking[i] = is_ask;
            fl->next[next_cnt++] = i;
            again = true;
        }
        /* A block goes again whole (its MULTI came back +OK, its EXEC EXECABORT). */
        for (size_t p = 0; p < pending_cnt && again; p++) {
            size_t i = fl->pending[p];
            if (!is(rkb_cmds_argv(cmds, i, 0, NULL), "MULTI"))
                continue;
            size_t end = block_end(cmds, i, count);
            int to = -1;
            for (size_t q = 0; q < next_cnt && to < 0; q++)
                if (fl->next[q] > i && fl->next[q] <= end)
                    to = fl->target[fl->next[q]];
            if (to < 0)
                continue;
            size_t kept = 0;
            for (size_t q = 0; q < next_cnt; q++)
                if (fl->next[q] < i || fl->next[q] > end)
                    fl->next[kept++] = fl->next[q];
            next_cnt = kept;
            for (size_t j = i; j <= end; j++) {
                fl->target[j] = to;
                fl->asking[j] = false;
                fl->next[next_cnt++] = j;
            }
        }
        for (size_t p = 0; p < pending_cnt && again; p++)
            if (fl->target[fl->pending[p]] == TARGET_ALL)
                fl->next[next_cnt++] = fl->pending[p];
        if (!next_cnt)
            break;
        if (moved) {
            /* A failover or a resharding moved more than this slot: learn them all. */
            char why[512];
            if (drain(r, errstr, errstr_size))
                return RKB_REDIS_ERR_IO;
            if (refresh(r, why, sizeof(why)))
                rkb_log_warn(r->component, "%s", why);
        }
        /* In the batch's order, which the node needs for the commands of one key. */
        for (size_t x = 1; x < next_cnt; x++) {
            size_t v = fl->next[x], y = x;
            for (; y > 0 && fl->next[y - 1] > v; y--)
                fl->next[y] = fl->next[y - 1];
            fl->next[y] = v;
        }
        if (round == MAX_ROUNDS - 1) {
            pending_cnt = 0; /* still redirected: their last replies (transient) stand */
            break;
        }
        for (size_t q = 0; q < next_cnt; q++) {
            size_t i = fl->next[q];
            if (fl->replies[i])
                freeReplyObject(fl->replies[i]);
            fl->replies[i] = NULL;
        }
        if (dispatch(r, f, fl->next, next_cnt, errstr, errstr_size) ||
            collect(r, f, errstr, errstr_size))
            return RKB_REDIS_ERR_IO;
        memcpy(fl->pending, fl->next, next_cnt * sizeof(*fl->pending));
        pending_cnt = next_cnt;
    }
    memcpy(replies, fl->replies, count * sizeof(*replies));
    for (size_t i = 0; i < count; i++)
        fl->replies[i] = NULL;
    rkb_task_metrics_redis_round_trip(r->metrics, rkb_now_us() - fl->started_us, count);
    flight_close(c, f);
    return RKB_REDIS_OK;
}

/* Opens a flight for cmds (count > 0) and writes it to its nodes: the flight, or -1 with
 * errstr. */
static int flight_start(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    int f = flight_open(c, cmds);
    if (f < 0) {
        snprintf(errstr, errstr_size, "redis cluster: too many batches in flight");
        return -1;
    }
    flight_t *fl = &c->flights[f];
    for (size_t i = 0; i < fl->count; i++)
        fl->pending[i] = i;
    return dispatch(r, f, fl->pending, fl->count, errstr, errstr_size) ? -1 : f;
}

/* One batch, and its replies. Other batches may be in flight meanwhile: the nodes answer in
 * order, and what they owe those is read into them on the way. */
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
    int f = flight_start(r, cmds, errstr, errstr_size);
    return f < 0 ? RKB_REDIS_ERR_IO : finish(r, f, replies, errstr, errstr_size);
}

/* As on one connection: send writes the batch to its nodes at once; recv reads the replies of
 * the oldest batch sent (following its redirections then). */
int rkb_cluster_pipeline_send(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr,
                              size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    if (check_ready(c, errstr, errstr_size))
        return RKB_REDIS_ERR_IO;
    if (!rkb_cmds_count(cmds))
        return RKB_REDIS_OK;
    int f = flight_start(r, cmds, errstr, errstr_size);
    if (f < 0)
        return RKB_REDIS_ERR_IO;
    c->queued[c->queued_tail++ % FLIGHTS] = f;
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
    int f = c->queued[c->queued_head++ % FLIGHTS];
    return finish(r, f, replies, errstr, errstr_size);
}

/* Loaded on every master, and kept, so that a master that appears later (a promoted replica)
 * gets it when it answers NOSCRIPT. */
int rkb_cluster_script_load(rkb_redis_t *r, const char *what, const char *text, size_t len,
                            char sha[41], char *errstr, size_t errstr_size) {
    rkb_cluster_t *c = r->cluster;
    int err = RKB_REDIS_ERR_PROTO;
    bool *masters;
    masters_of(c, &masters);
    for (size_t n = 0; n < c->node_cnt; n++) {
        if (!masters[n])
            continue;
        cnode_t *node = &c->nodes[n];
        if ((err = node_connect(r, node, errstr, errstr_size)))
            break;
        if ((err = rkb_redis_script_load(node->conn, what, text, len, sha, errstr, errstr_size))) {
            if (err == RKB_REDIS_ERR_IO)
                c->ready = false;
            break;
        }
    }
    free(masters);
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
