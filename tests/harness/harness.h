/*
 * harness.h — what tests use to drive rkbridge against real servers.
 *
 * A throwaway redis-server on a free loopback port in a temp dir, the dev broker
 * (`rkbridge dev-broker`, librdkafka's mock cluster) as a child process with its control
 * channel, test-side Kafka producer/offset helpers, and rkbridge processes started from a
 * properties text. Everything started is stopped at exit (atexit), also when a test fails.
 * Functions abort the test program with a message when the environment itself fails (cannot
 * fork, server never came up): that is a failed test, not a skipped one.
 */
#ifndef RKB_TESTS_HARNESS_H
#define RKB_TESTS_HARNESS_H

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The rkbridge binary under test (RKB_BINARY from the build, overridable by $RKBRIDGE). */
const char *h_rkbridge_bin(void);
/* A private temp dir for this test process, created on first use, removed at exit. */
const char *h_tmpdir(void);
/* Writes text to a new file in h_tmpdir() named name; returns its path (static storage
 * per call is not shared: the returned string is malloc'd and owned by the harness). */
const char *h_write_file(const char *name, const char *text);

/* ---- Redis ---------------------------------------------------------------------------- */
typedef struct h_redis_s {
    int port;              /* its TCP port (the TLS port for h_redis_start_tls) */
    pid_t pid;             /* 0 when not running */
    char dir[512];         /* its working dir */
    char extra[512];       /* extra args it was started with */
    redisContext *client;  /* the harness's own client, (re)connected on demand */
    bool tls;              /* TCP speaks TLS only; the harness's client uses unix_socket */
    char unix_socket[600]; /* "" unless tls */
} h_redis_t;

/* Starts redis-server on 127.0.0.1 and a free port, with --save "" --appendonly no unless
 * extra_args (space-separated, may be NULL) says otherwise; waits until it answers PING. */
h_redis_t *h_redis_start(const char *extra_args);
/* The same with TCP for TLS only (--port 0 --tls-port PORT), h_tls_files()'s server
 * certificate and CA, clients authenticated by certificate unless extra_args says
 * "--tls-auth-clients no". The harness's own client talks plain over a unix socket in the
 * server's dir, so that checking the server never depends on rkbridge's TLS. */
h_redis_t *h_redis_start_tls(const char *extra_args);
/* SIGKILL (the process is gone at once); the struct stays for h_redis_restart. */
void h_redis_kill(h_redis_t *redis);
/* Starts it again on the same port and dir; waits for PING. */
void h_redis_restart(h_redis_t *redis);
/* SIGTERM, wait, free. NULL is safe. */
void h_redis_stop(h_redis_t *redis);
/* Runs a command on the harness's client (printf-style as hiredis's redisCommand); aborts the
 * test if the server cannot be reached. Caller frees the reply with freeReplyObject. */
redisReply *h_redis_cmd(h_redis_t *redis, const char *fmt, ...);
/* Convenience: the integer reply (aborts if the reply is not an integer). */
long long h_redis_int(h_redis_t *redis, const char *fmt, ...);
/* Convenience: a string/status reply as a malloc'd string (caller frees), NULL for nil. */
char *h_redis_str(h_redis_t *redis, const char *fmt, ...);
/* "redis://127.0.0.1:PORT" ("rediss://" for a TLS server) in static storage per h_redis_t. */
const char *h_redis_uri(h_redis_t *redis);

/* ---- TLS certificates ------------------------------------------------------------------- */
/* PEM files made once per test program with openssl(1) in h_tmpdir(): a CA, a server
 * certificate from it for DNS:localhost and IP:127.0.0.1, a client certificate from it (its key
 * also encrypted with H_TLS_KEY_PASSWORD), a directory holding the CA in OpenSSL's hashed
 * layout, and a second CA: a server checked against it is untrusted, and so is the client
 * certificate it signed. */
#define H_TLS_KEY_PASSWORD "key-pass-5813"
typedef struct h_tls_files_s {
    char ca_cert[600];
    char ca_dir[600];
    char server_cert[600], server_key[600];
    char client_cert[600], client_key[600];
    char client_key_encrypted[600];
    char other_ca_cert[600];
    char other_client_cert[600], other_client_key[600]; /* signed by the other CA */
} h_tls_files_t;
const h_tls_files_t *h_tls_files(void);

/* ---- Dev broker --------------------------------------------------------------------------- */
typedef struct h_broker_s {
    pid_t pid;
    char bootstrap[256];
    int ctl_fd; /* its stdin */
    int out_fd; /* its stdout */
} h_broker_t;

/* Starts `rkbridge dev-broker --brokers N` with topics "name:partitions,name2:partitions"
 * (may be NULL) and reads its bootstrap address. */
h_broker_t *h_broker_start(int brokers, const char *topics);
/* Sends one control line (printf-style) and waits for its reply. Returns 0 on "ok", -1
 * otherwise (the reply is logged to stderr). */
int h_broker_ctl(h_broker_t *broker, const char *fmt, ...);
void h_broker_stop(h_broker_t *broker); /* NULL is safe */

/* ---- Test-side Kafka clients ---------------------------------------------------------------- */
/* An idempotent producer on the broker (caller destroys with h_producer_destroy). */
rd_kafka_t *h_producer_new(const h_broker_t *broker);
/* Produces one record asynchronously. partition -1: by key hash. key/value NULL: null.
 * Optional headers as name/value pairs, NULL-terminated list (value NULL = null header). */
void h_produce(rd_kafka_t *producer, const char *topic, int32_t partition, const char *key,
               const char *value, ...);
/* Waits for all delivery reports; aborts if any failed. */
void h_producer_flush(rd_kafka_t *producer);
void h_producer_destroy(rd_kafka_t *producer);
/* The offset committed by group for topic/partition (next offset), or -1001 if none. */
int64_t h_committed(const h_broker_t *broker, const char *group, const char *topic,
                    int32_t partition);

/* Reads every record of topic (all partitions, from the start up to the current high
 * watermarks). Returns how many into *msgs (caller frees with h_messages_free). */
size_t h_consume_all(const h_broker_t *broker, const char *topic, rd_kafka_message_t ***msgs);
void h_messages_free(rd_kafka_message_t **msgs, size_t cnt);

/* ---- Processes ------------------------------------------------------------------------------ */
typedef struct h_proc_s {
    pid_t pid;
    char log_path[512]; /* its stdout+stderr */
    int status;         /* exit code once reaped: 0..255, or 128+signal */
    bool exited;
} h_proc_t;

/* Starts `rkbridge run FILE` on a file holding config_text. env: extra "NAME=value" entries,
 * NULL-terminated array, may be NULL. */
h_proc_t *h_rkbridge_run(const char *config_text, const char *const *env);
/* Starts rkbridge with argv (argv[0] is ignored and replaced by the binary). */
h_proc_t *h_rkbridge_spawn(const char *const *argv, const char *const *env);
/* Sends sig and waits up to timeout_ms; returns the exit code (128+signal if killed), or -1 if
 * it is still running (then SIGKILLed). Frees nothing: call h_proc_free. */
int h_proc_stop(h_proc_t *proc, int sig, int timeout_ms);
/* Waits up to timeout_ms for exit; returns the exit code or -1 if still running. */
int h_proc_wait(h_proc_t *proc, int timeout_ms);
bool h_proc_alive(h_proc_t *proc);
/* The process's output so far (malloc'd, caller frees). */
char *h_proc_output(const h_proc_t *proc);
void h_proc_free(h_proc_t *proc); /* kills it if still running; NULL is safe */

/* Runs argv to completion (up to 60 s), capturing stdout and stderr (malloc'd, may be NULL
 * args to discard). Returns the exit code. */
int h_run(const char *const *argv, char **out, char **err);

/* Starts rkbridge with its stderr on a new pseudo-terminal (so that isatty(2) is true) and its
 * stdout in the log; *tty_fd receives the terminal's master side, to read what rkbridge drew
 * there (the caller closes it). */
h_proc_t *h_rkbridge_spawn_tty(const char *const *argv, int *tty_fd);

/* ---- HTTP (the REST API) ------------------------------------------------------------------- */
typedef struct h_http_resp_s {
    int status;     /* 0: no answer */
    char *headers;  /* the status line and header lines, as received */
    char *body;     /* NUL-terminated (chunked bodies decoded) */
    size_t body_len;
} h_http_resp_t;

/* One HTTP/1.1 request to address ("127.0.0.1:PORT"), with Connection: close; headers: extra
 * "Name: value" lines, NULL-terminated, may be NULL; body (JSON) may be NULL. Returns the status,
 * 0 when the server could not be reached. Free resp with h_http_resp_free. */
int h_http(const char *address, const char *method, const char *path, const char *const *headers,
           const char *body, h_http_resp_t *resp);
/* Sends request bytes as they are and reads the answer (same return). */
int h_http_raw(const char *address, const void *request, size_t len, h_http_resp_t *resp);
/* A header's value (malloc'd, caller frees), or NULL. */
char *h_http_header(const h_http_resp_t *resp, const char *name);
void h_http_resp_free(h_http_resp_t *resp);

/* Starts `rkbridge run --listen 127.0.0.1:0 [--worker FILE] [files...]` (FILE holds
 * worker_text, may be NULL; files NULL-terminated, may be NULL) and waits until it logs its REST
 * address, copied into address. */
h_proc_t *h_worker_start(const char *worker_text, const char *const *files, char *address,
                         size_t address_size);

/* ---- Waiting ------------------------------------------------------------------------------- */
/* Polls cond every 20 ms until true or timeout_ms passed. Returns the last value of cond.
 * A timeout is a failure of the behaviour under test, never a measured figure. */
bool h_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms);
#define H_WAIT_FOR(expr, timeout_ms)                                                               \
    ({                                                                                             \
        int64_t h__until = h_now_ms() + (timeout_ms);                                              \
        bool h__ok;                                                                                \
        while (!(h__ok = (expr)) && h_now_ms() < h__until)                                         \
            h_sleep_ms(20);                                                                        \
        h__ok;                                                                                     \
    })
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

#endif
