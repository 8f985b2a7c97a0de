/*
 * redis.h — every byte rkbridge exchanges with Redis goes through this module.
 *
 * It owns the connection (URI parsing, connect with timeouts, TLS, AUTH with an ACL user,
 * SELECT, CLIENT SETNAME), pipelining (a batch of commands written in one go, replies read in
 * order) and reconnection. The reply parser, command formatter and reply types are hiredis's
 * (redisReader, redisFormatCommandArgv, redisReply); the bytes travel over our own transport,
 * plain TCP or TLS (OpenSSL), which hiredis 0.14 cannot do (transport.h). Redis Cluster routing
 * live here too, not in the callers: a handle connected to a cluster node learns the slots and
 * sends each command to the master of its key's slot, following MOVED and ASK (cluster.c).
 *
 * Redis Cluster, for callers: every call below works on a cluster handle as on a single server.
 * A batch is split by node and sent to all of them before any reply is read; replies come back
 * in the batch's order. Commands of one key keep their order (one slot, one node). A MULTI ...
 * EXEC block goes whole to the node of its first key; a multi-key command or a script must have
 * all its keys in one slot (hash tags), else Redis answers CROSSSLOT. WAIT goes to every node
 * the batch wrote to and answers the smallest count. A node that fails makes the whole batch
 * fail with RKB_REDIS_ERR_IO (the caller sends it again, as with a single server); the next
 * connect learns the slots again from any node that answers, which is how a failover (a
 * replica promoted) is followed.
 *
 * A handle made on a task's thread reports its connection state and the time of each round
 * trip to that task's metrics (metrics/metrics.h).
 *
 * A rkb_redis_t is used by one thread at a time.
 */
#ifndef RKB_REDIS_REDIS_H
#define RKB_REDIS_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Result codes. */
typedef enum {
    RKB_REDIS_OK = 0,
    RKB_REDIS_ERR_IO = -1, /* refused, reset, timeout, closed: transient, reconnect and retry */
    RKB_REDIS_ERR_AUTH =
        -2, /* WRONGPASS/NOAUTH/NOPERM at connect: permanent until config changes */
    RKB_REDIS_ERR_PROTO = -3, /* protocol or unexpected reply at connect */
    RKB_REDIS_ERR_TLS = -4,   /* TLS settings, handshake or certificate verification failed:
                                 permanent until config changes */
} rkb_redis_err_t;

const char *rkb_redis_err2str(rkb_redis_err_t err);

/* TLS settings (redis.tls, redis.cacert ...). Strings are owned (rkb_redis_conf_clear). */
typedef struct rkb_redis_tls_conf_s {
    bool enabled;       /* rediss:// or redis.tls=true */
    bool insecure;      /* no certificate or name verification (redis.insecure) */
    char *ca_file;      /* PEM CA certificates; with ca_dir NULL too: the system's store */
    char *ca_dir;       /* OpenSSL hashed CA directory, or NULL */
    char *cert_file;    /* client certificate chain (PEM), or NULL */
    char *key_file;     /* client private key (PEM), or NULL */
    char *key_password; /* for an encrypted key_file, or NULL */
    char *server_name;  /* SNI and the name checked in the certificate; NULL: host */
} rkb_redis_tls_conf_t;

/* Whether the server may be a Redis Cluster node (redis.cluster). */
typedef enum {
    RKB_REDIS_CLUSTER_AUTO = 0, /* ask at connect (CLUSTER SLOTS): a cluster if it says so */
    RKB_REDIS_CLUSTER_ON,       /* must be a cluster: a single server is a setup error */
    RKB_REDIS_CLUSTER_OFF,      /* a single server: never ask */
} rkb_redis_cluster_mode_t;

/* A server's address: one Redis Sentinel of a redis-sentinel:// URI. host is owned. */
typedef struct rkb_redis_addr_s {
    char *host;
    int port;
} rkb_redis_addr_t;

/* Where and how to connect. Strings are owned by the struct (rkb_redis_conf_clear). */
typedef struct rkb_redis_conf_s {
    char *host;     /* default "localhost"; unused with sentinel_master */
    int port;       /* default 6379; unused with sentinel_master */
    char *username; /* ACL user, or NULL */
    char *password; /* or NULL */
    int db;         /* SELECT db when > 0 */
    int connect_timeout_ms;
    int command_timeout_ms; /* socket read/write timeout */
    char *client_name;      /* CLIENT SETNAME, or NULL */
    rkb_redis_cluster_mode_t cluster;
    rkb_redis_tls_conf_t tls;
    /* Redis Sentinel (redis-sentinel://, sentinel.c): when sentinel_master is set, every
     * connect asks sentinels[0..sentinel_cnt) in turn for the address of the master of that
     * name, and connects there (username, password, db, TLS apply to the master; the sentinels
     * are asked without AUTH nor TLS). Owned: NULL and 0 when not used. */
    char *sentinel_master;
    rkb_redis_addr_t *sentinels;
    size_t sentinel_cnt;
} rkb_redis_conf_t;

/* Fills conf with defaults (localhost:6379, db 0, 10 s timeouts). */
void rkb_redis_conf_init(rkb_redis_conf_t *conf);
/* Parses "redis://[[user]:password@]host[:port][/db]" (user and password percent-decoded) into
 * conf (over whatever it held); "rediss://" is the same with conf->tls.enabled set;
 * "redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#MASTER" names the
 * sentinels (default port 26379) to ask for the master MASTER (redis-kafka-connect's and
 * Lettuce's form). Returns 0, or -1 with errstr (conf unchanged); errstr never contains the
 * password. */
int rkb_redis_conf_from_uri(rkb_redis_conf_t *conf, const char *uri, char *errstr,
                            size_t errstr_size);
void rkb_redis_conf_clear(rkb_redis_conf_t *conf);
/* Copies src into dst (dst is overwritten, not freed: initialize or clear it first). */
void rkb_redis_conf_copy(rkb_redis_conf_t *dst, const rkb_redis_conf_t *src);
/* "host:port/db" for logs, or "sentinel MASTER via h1:26379,h2:26379/db": never the password.
 * Writes into buf, returns buf. */
const char *rkb_redis_conf_describe(const rkb_redis_conf_t *conf, char *buf, size_t size);

/*
 * A batch of commands built in one arena (no allocation per command once warmed up) and sent
 * as one pipeline. Build a command with begin, arg..., end.
 */
typedef struct rkb_cmds_s rkb_cmds_t;

rkb_cmds_t *rkb_cmds_new(void);
void rkb_cmds_destroy(rkb_cmds_t *cmds); /* NULL is safe */
void rkb_cmds_reset(rkb_cmds_t *cmds);   /* empties, keeps memory */
void rkb_cmds_begin(rkb_cmds_t *cmds);
void rkb_cmds_arg(rkb_cmds_t *cmds, const void *data, size_t len);
void rkb_cmds_args(rkb_cmds_t *cmds, const char *str); /* NUL-terminated */
void rkb_cmds_arg_int(rkb_cmds_t *cmds, int64_t value);
void rkb_cmds_argf(rkb_cmds_t *cmds, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends the command being built; returns its index. */
size_t rkb_cmds_end(rkb_cmds_t *cmds);
/* Drops every command after the first n (undo of a partly encoded record). */
void rkb_cmds_truncate(rkb_cmds_t *cmds, size_t n);
size_t rkb_cmds_count(const rkb_cmds_t *cmds);
/* Merges, in place, each run of adjacent "SET key value" commands (exactly three arguments: no
 * options) into one "MSET key value key value ...", and each run of adjacent "DEL key" into one
 * "DEL key key ...", at most max_keys keys per merged command. Redis ends in the same state
 * either way (a run keeps its order, and neither command fails for one key alone), with one
 * command to parse and one reply instead of one per key. same_slot: a run also stops where the
 * Redis Cluster slot of the key changes (a cluster takes a multi-key command only within one
 * slot; keys with a hash tag, e.g. one per partition, still merge). map[i] (map has room for the
 * count before the call) receives the index of the command that now carries command i. Returns
 * the new count. */
size_t rkb_cmds_coalesce(rkb_cmds_t *cmds, size_t max_keys, bool same_slot, size_t *map);
/* Inspection (tests, logs): argc of command i, and argument j's bytes. */
int rkb_cmds_argc(const rkb_cmds_t *cmds, size_t i);
const char *rkb_cmds_argv(const rkb_cmds_t *cmds, size_t i, int j, size_t *len);
/* Command i rendered for humans: arguments space-separated, each cut at 64 bytes, binary
 * bytes escaped. Appends to out (an rkb_buf_t). */
struct rkb_buf_s;
void rkb_cmds_describe(const rkb_cmds_t *cmds, size_t i, struct rkb_buf_s *out);

typedef struct rkb_redis_s rkb_redis_t;

/* A handle; copies conf. No I/O. component names the owner in log lines ("sink/0"). */
rkb_redis_t *rkb_redis_new(const rkb_redis_conf_t *conf, const char *component);
void rkb_redis_destroy(rkb_redis_t *r); /* closes; NULL is safe */

/* Connects (closing any old connection), with TLS as configured, then AUTH, SELECT and CLIENT
 * SETNAME as configured, then PING. With a sentinel master, first asks the sentinels where the
 * master is, and after the setup checks with ROLE that the server is a master (a sentinel that
 * has not seen a failover yet, or a master just demoted: RKB_REDIS_ERR_IO). Returns RKB_REDIS_OK or an error code with errstr (no
 * password in it): RKB_REDIS_ERR_IO may pass by itself (retry with backoff); RKB_REDIS_ERR_AUTH
 * (wrong user or password), RKB_REDIS_ERR_TLS (certificate not trusted, name mismatch, TLS
 * settings or files unusable, the server refused our certificate) and RKB_REDIS_ERR_PROTO do
 * not, so callers fail instead of retrying. */
int rkb_redis_connect(rkb_redis_t *r, char *errstr, size_t errstr_size);
bool rkb_redis_is_connected(const rkb_redis_t *r);
/* True once the handle found (or was told) that it talks to a Redis Cluster. */
bool rkb_redis_is_cluster(const rkb_redis_t *r);
/* The Redis Cluster slot of a key: CRC16 of the key, or of its hash tag (the text between the
 * first '{' and the next '}', when not empty), modulo 16384. */
unsigned rkb_redis_key_slot(const char *key, size_t len);
void rkb_redis_close(rkb_redis_t *r);

/* Sends every command in cmds in one write and reads one reply per command, in order, into
 * replies[0..count-1] (caller frees them with rkb_redis_replies_free). Error replies
 * (REDIS_REPLY_ERROR) are replies, not failures; but a READONLY reply (the server is a replica
 * now: a failover demoted it) closes the connection once the batch is read, so that the next
 * connect finds the new master (through the sentinels). Returns RKB_REDIS_OK, or RKB_REDIS_ERR_IO with
 * errstr when the connection failed (not connected, write or read error, timeout): then the
 * connection is closed, replies[] is all NULL, and the caller may reconnect and send the whole
 * batch again. */
int rkb_redis_pipeline(rkb_redis_t *r, const rkb_cmds_t *cmds, redisReply **replies, char *errstr,
                       size_t errstr_size);
/* The two halves of rkb_redis_pipeline, so that a caller can have several batches in flight on
 * one connection: send writes cmds (their replies come back in order, after those of every batch
 * sent before); recv reads the replies of the oldest batch not yet read, count of them (the
 * count of commands it had). The same failures and rules as rkb_redis_pipeline: after
 * RKB_REDIS_ERR_IO the connection is closed and every batch in flight is lost. */
int rkb_redis_pipeline_send(rkb_redis_t *r, const rkb_cmds_t *cmds, char *errstr,
                            size_t errstr_size);
int rkb_redis_pipeline_recv(rkb_redis_t *r, size_t count, redisReply **replies, char *errstr,
                            size_t errstr_size);
void rkb_redis_replies_free(redisReply **replies, size_t count);

/* One command (argv form), blocking. Returns the reply (caller frees with freeReplyObject) or
 * NULL with errstr on a connection failure (the connection is then closed). */
redisReply *rkb_redis_command(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen,
                              char *errstr, size_t errstr_size);

/* The code an error reply stands for: RKB_REDIS_ERR_IO when retrying helps (LOADING, BUSY,
 * ...: rkb_redis_error_is_transient), RKB_REDIS_ERR_AUTH for NOPERM/NOAUTH (an ACL user without
 * the command), else RKB_REDIS_ERR_PROTO. */
int rkb_redis_error_code(const char *msg);

/* SCRIPT LOADs text (len bytes) and writes its SHA (40 hex digits and a NUL) to sha. what
 * names the script in errstr ("the exactly-once script"). Returns RKB_REDIS_OK; RKB_REDIS_ERR_IO
 * when the connection failed or Redis is busy/loading (retry later); RKB_REDIS_ERR_AUTH for an
 * ACL user without SCRIPT/EVALSHA (NOPERM); RKB_REDIS_ERR_PROTO for anything else. */
int rkb_redis_script_load(rkb_redis_t *r, const char *what, const char *text, size_t len,
                          char sha[41], char *errstr, size_t errstr_size);

/*
 * Subscriber connections (SUBSCRIBE, PSUBSCRIBE): Redis pushes messages whenever it has them,
 * so the command and its replies are decoupled. rkb_redis_send writes one command without
 * waiting for anything; rkb_redis_read then takes replies and pushed messages one at a time, in
 * the order Redis sent them, and can wait with a timeout without giving the connection up.
 */

/* Writes one command (argv form; argvlen NULL: NUL-terminated strings) and returns without
 * reading a reply. RKB_REDIS_OK, or RKB_REDIS_ERR_IO with errstr when the connection failed
 * (it is then closed). */
int rkb_redis_send(rkb_redis_t *r, int argc, const char **argv, const size_t *argvlen, char *errstr,
                   size_t errstr_size);
/* Waits up to timeout_ms (0: only what has already arrived) for the next complete reply or
 * pushed message. RKB_REDIS_OK with *reply set (caller frees with freeReplyObject), or with
 * *reply NULL when none was complete in time: the connection stays open. RKB_REDIS_ERR_IO with
 * errstr when the connection failed or Redis closed it (it is then closed). */
int rkb_redis_read(rkb_redis_t *r, int timeout_ms, redisReply **reply, char *errstr,
                   size_t errstr_size);

/* The first error message in a reply, looking inside arrays (an EXEC reply holds one reply per
 * queued command), or NULL if there is none. */
const char *rkb_redis_reply_error(const redisReply *reply);
/* True for errors that go away by themselves: LOADING, BUSY, MASTERDOWN, OOM, TRYAGAIN,
 * CLUSTERDOWN, READONLY, NOREPLICAS, EXECABORT caused by one of those is not included.
 * msg is an error message as returned by rkb_redis_reply_error. */
bool rkb_redis_error_is_transient(const char *msg);

#endif
