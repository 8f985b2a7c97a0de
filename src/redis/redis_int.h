/*
 * redis_int.h — what redis.c (one connection) and cluster.c (Redis Cluster routing over one
 * connection per node) share: the handle's layout and the connection's I/O primitives. Not for
 * callers outside src/redis/: they use redis.h.
 */
#ifndef RKB_REDIS_REDIS_INT_H
#define RKB_REDIS_REDIS_INT_H

#include "redis/redis.h"
#include "redis/transport.h"

#include "metrics/metrics.h"
#include "util/util.h"

/* The most bytes taken from the connection per read, as hiredis does. */
#define READ_CHUNK 16384

typedef struct rkb_cluster_s rkb_cluster_t;

struct rkb_redis_s {
    rkb_redis_conf_t conf; /* our own copy */
    char *component;       /* who speaks in log lines */
    char addr[320];        /* "host:port", the prefix of every errstr */
    rkb_transport_t *conn; /* NULL when not connected */
    redisReader *reader;   /* parses what conn delivers; NULL when not connected */
    rkb_tls_ctx_t *tls;    /* the TLS settings, loaded at the first TLS connect and kept */
    bool up;               /* the session was set up: its loss is worth a log line */
    rkb_buf_t resp;        /* the RESP text of the last batch, reused */
    rkb_task_metrics_t *metrics; /* of the task that made the handle, or NULL */
    rkb_conn_state_t state;      /* as reported to metrics */
    /* When each pipeline not yet answered was sent (a ring: at most a few are in flight). */
    int64_t sent_us[8];
    size_t sent_head, sent_tail;
    /* Redis Cluster: the routing state and one handle per node (cluster.c), or NULL for a
     * single server. The handle's own connection is then only the seed's, used to learn the
     * slots, and closed once they are known. */
    rkb_cluster_t *cluster;
};

/* ---- redis.c: one connection ------------------------------------------------------------- */

/* Connects r's own connection (to conf.host:conf.port) and sets the session up, ignoring
 * r->cluster. Same results as rkb_redis_connect. */
int rkb_redis_connect_one(rkb_redis_t *r, char *errstr, size_t errstr_size);
/* Closes r's own connection only (not a cluster's nodes). */
void rkb_redis_close_one(rkb_redis_t *r);
/* Writes len bytes whole; on failure the connection is closed and RKB_REDIS_ERR_IO returned. */
int rkb_redis_write(rkb_redis_t *r, const char *buf, size_t len, char *errstr, size_t errstr_size);
/* The next reply, waiting up to the command timeout; none in time closes the connection. */
int rkb_redis_await(rkb_redis_t *r, redisReply **reply, char *errstr, size_t errstr_size);
/* Appends command i of cmds, as RESP, to out. */
void rkb_redis_resp_command(rkb_buf_t *out, const rkb_cmds_t *cmds, size_t i);

/* ---- cluster.c ---------------------------------------------------------------------------- */

/* Asks the server r just connected to for its slots (CLUSTER SLOTS). A cluster node: r
 * becomes a cluster handle (r->cluster set, r's own connection closed) and RKB_REDIS_OK. A
 * server without cluster support: RKB_REDIS_OK and nothing changes, unless conf.cluster is
 * RKB_REDIS_CLUSTER_ON (then RKB_REDIS_ERR_PROTO, naming redis.cluster). */
int rkb_cluster_detect(rkb_redis_t *r, char *errstr, size_t errstr_size);
void rkb_cluster_destroy(rkb_cluster_t *c); /* NULL is safe */

/* The cluster versions of the public calls of redis.h (r->cluster is set). */
int rkb_cluster_connect(rkb_redis_t *r, char *errstr, size_t errstr_size);
bool rkb_cluster_ready(const rkb_redis_t *r);
void rkb_cluster_close(rkb_redis_t *r);
int rkb_cluster_pipeline(rkb_redis_t *r, const rkb_cmds_t *cmds, redisReply **replies,
                         char *errstr, size_t errstr_size);
int rkb_cluster_pipeline_send(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr,
                              size_t errstr_size);
int rkb_cluster_pipeline_recv(rkb_redis_t *r, size_t count, redisReply **replies, char *errstr,
                              size_t errstr_size);
/* Routed like a batch of one (by its key, or to any node). */
redisReply *rkb_cluster_command(rkb_redis_t *r, int argc, const char **argv,
                                const size_t *argvlen, char *errstr, size_t errstr_size);
int rkb_cluster_script_load(rkb_redis_t *r, const char *what, const char *text, size_t len,
                            char sha[41], char *errstr, size_t errstr_size);
int rkb_cluster_send(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                     char *errstr, size_t errstr_size);
int rkb_cluster_read(rkb_redis_t *r, int timeout_ms, redisReply **reply, char *errstr,
                     size_t errstr_size);

#endif
