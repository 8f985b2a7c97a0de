/*
 * devbroker.c — `rkbridge dev-broker`: librdkafka's mock cluster as a standalone process with a
 * line-based control channel on stdin (see devbroker.h for the contract).
 *
 * It sits outside the data path: tests and developers point rkbridge (and their own clients) at
 * the bootstrap address it prints, and steer faults (brokers down, latency, request errors,
 * leader moves) through stdin while rkbridge runs against it.
 *
 * Threads: everything here runs on the main thread. The mock cluster runs on its own librdkafka
 * thread; every rd_kafka_mock_*() call below hands it an op and waits for the answer, so no lock
 * is needed on our side.
 */
#include "kafka/devbroker.h"
#include "kafka/kafka_int.h"

#include "util/log.h"
#include "util/util.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LOG_COMPONENT       "dev-broker"
#define MAX_BROKERS         9
#define MAX_CTL_LINE        4096
#define MAX_CTL_ARGS        64
#define POLL_INTERVAL_MS    200
#define EXIT_USAGE          2
#define EXIT_STARTUP_FAILED 1

/* Set by the signal handler only; the main loop notices it within POLL_INTERVAL_MS. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

typedef struct devbroker_s {
    rd_kafka_t *rk; /* hosts the mock cluster; never used as a client */
    rd_kafka_mock_cluster_t *mcluster;
    int broker_cnt;
} devbroker_t;

/* ---- Names of Kafka APIs and errors ---------------------------------------------------------- */

/* The ApiKeys the 2.0.2 mock handles (SEMANTICS.md 3.3); any other number is accepted as is. */
static const struct {
    const char *name;
    int16_t api_key;
} api_names[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"InitProducerId", 22},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};

/* "Produce" (any case) or a number 0..32767. Returns 0 or -1. */
static int parse_api(const char *arg, int16_t *api_key) {
    for (size_t i = 0; i < RKB_ARRAY_SIZE(api_names); i++) {
        if (!strcasecmp(arg, api_names[i].name)) {
            *api_key = api_names[i].api_key;
            return 0;
        }
    }
    int64_t number;
    if (rkb_parse_int64(arg, 0, INT16_MAX, &number) == 0) {
        *api_key = (int16_t)number;
        return 0;
    }
    return -1;
}

/* A name as rd_kafka_err2name() prints it ("REQUEST_TIMED_OUT", "_TRANSPORT"; any case, an
 * optional "ERR_" or "RD_KAFKA_RESP_ERR_" prefix) or a number. Numbers are not checked against
 * the table: the mock sends whatever code it is given, which is the point of a fault injector. */
static int parse_error(const char *arg, rd_kafka_resp_err_t *err) {
    if (!strncasecmp(arg, "RD_KAFKA_RESP_ERR_", 18))
        arg += 18;
    else if (!strncasecmp(arg, "ERR_", 4))
        arg += 4;

    const struct rd_kafka_err_desc *descs;
    size_t desc_cnt;
    rd_kafka_get_err_descs(&descs, &desc_cnt);
    for (size_t i = 0; i < desc_cnt; i++) {
        if (descs[i].name && !strcasecmp(arg, descs[i].name)) {
            *err = descs[i].code;
            return 0;
        }
    }
    int64_t number;
    if (rkb_parse_int64(arg, RD_KAFKA_RESP_ERR__BEGIN, INT16_MAX, &number) == 0) {
        *err = (rd_kafka_resp_err_t)number;
        return 0;
    }
    return -1;
}

/* "all" -> -1, else a broker id 1..broker_cnt (the mock numbers its brokers from 1). */
static int parse_broker(const devbroker_t *db, const char *arg, bool allow_all, int32_t *broker_id,
                        char *errstr, size_t errstr_size) {
    int64_t number;
    if (allow_all && !strcasecmp(arg, "all")) {
        *broker_id = -1;
        return 0;
    }
    if (rkb_parse_int64(arg, 1, db->broker_cnt, &number) == 0) {
        *broker_id = (int32_t)number;
        return 0;
    }
    snprintf(errstr, errstr_size, "broker '%s': expected %s1..%d", arg, allow_all ? "all or " : "",
             db->broker_cnt);
    return -1;
}

/* Turns a mock API result into the command's result. */
static int mock_result(rd_kafka_resp_err_t err, const char *what, char *errstr,
                       size_t errstr_size) {
    if (!err)
        return 0;
    snprintf(errstr, errstr_size, "%s: %s (%s)", what, rd_kafka_err2str(err),
             rd_kafka_err2name(err));
    return -1;
}

/* ---- Control commands -------------------------------------------------------------------------
 */

/* A command gets its arguments without the command word; on failure it fills errstr. */
typedef int(ctl_fn_t)(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size);

static int create_topic(devbroker_t *db, const char *topic, int64_t partitions, char *errstr,
                        size_t errstr_size) {
    int replication_factor = db->broker_cnt < 3 ? db->broker_cnt : 3;
    rd_kafka_resp_err_t err =
        rd_kafka_mock_topic_create(db->mcluster, topic, (int)partitions, replication_factor);
    char what[300];
    snprintf(what, sizeof(what), "topic %s", topic);
    return mock_result(err, what, errstr, errstr_size);
}

static int ctl_topic(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int64_t partitions;
    if (rkb_parse_int64(argv[1], 1, 100000, &partitions) == -1) {
        snprintf(errstr, errstr_size, "partitions '%s': expected 1..100000", argv[1]);
        return -1;
    }
    return create_topic(db, argv[0], partitions, errstr, errstr_size);
}

static int ctl_down(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int32_t broker_id;
    if (parse_broker(db, argv[0], true, &broker_id, errstr, errstr_size) == -1)
        return -1;
    return mock_result(rd_kafka_mock_broker_set_down(db->mcluster, broker_id), "down", errstr,
                       errstr_size);
}

static int ctl_up(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int32_t broker_id;
    if (parse_broker(db, argv[0], true, &broker_id, errstr, errstr_size) == -1)
        return -1;
    return mock_result(rd_kafka_mock_broker_set_up(db->mcluster, broker_id), "up", errstr,
                       errstr_size);
}

static int ctl_rtt(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int32_t broker_id;
    int64_t rtt_ms;
    if (parse_broker(db, argv[0], true, &broker_id, errstr, errstr_size) == -1)
        return -1;
    if (rkb_parse_int64(argv[1], 0, 3600000, &rtt_ms) == -1) {
        snprintf(errstr, errstr_size, "rtt '%s': expected milliseconds 0..3600000", argv[1]);
        return -1;
    }
    return mock_result(rd_kafka_mock_broker_set_rtt(db->mcluster, broker_id, (int)rtt_ms), "rtt",
                       errstr, errstr_size);
}

/* `error API COUNT ERR...`: the next COUNT requests of API fail with the ERRs in order. Fewer
 * ERRs than COUNT repeat the last one ("error Fetch 5 _TRANSPORT" drops five Fetches). */
static int ctl_error(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int16_t api_key;
    int64_t count;
    if (parse_api(argv[0], &api_key) == -1) {
        snprintf(errstr, errstr_size, "unknown API '%s' (Produce, Fetch, ... or a number)",
                 argv[0]);
        return -1;
    }
    if (rkb_parse_int64(argv[1], 1, 100000, &count) == -1) {
        snprintf(errstr, errstr_size, "count '%s': expected 1..100000", argv[1]);
        return -1;
    }
    int err_cnt = argc - 2;
    if (err_cnt > count) {
        snprintf(errstr, errstr_size, "%d errors given for a count of %lld", err_cnt,
                 (long long)count);
        return -1;
    }
    rd_kafka_resp_err_t *errs = rkb_calloc((size_t)count, sizeof(*errs));
    for (int i = 0; i < err_cnt; i++) {
        if (parse_error(argv[2 + i], &errs[i]) == -1) {
            snprintf(errstr, errstr_size,
                     "unknown error '%s' (a name like REQUEST_TIMED_OUT or "
                     "a number)",
                     argv[2 + i]);
            free(errs);
            return -1;
        }
    }
    for (int64_t i = err_cnt; i < count; i++)
        errs[i] = errs[err_cnt - 1];
    rd_kafka_mock_push_request_errors_array(db->mcluster, api_key, (size_t)count, errs);
    free(errs);
    return 0;
}

static int ctl_clear(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int16_t api_key;
    if (parse_api(argv[0], &api_key) == -1) {
        snprintf(errstr, errstr_size, "unknown API '%s' (Produce, Fetch, ... or a number)",
                 argv[0]);
        return -1;
    }
    rd_kafka_mock_clear_request_errors(db->mcluster, api_key);
    return 0;
}

/* The mock looks the partition up with auto-creation, so `leader nosuch 0 1` creates topic
 * "nosuch" (default partition count) instead of failing; a partition beyond an existing topic's
 * count fails with UNKNOWN_TOPIC_OR_PART. There is no mock API to test for a topic first. */
static int ctl_leader(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    int64_t partition;
    int32_t broker_id = -1;
    if (rkb_parse_int64(argv[1], 0, INT32_MAX, &partition) == -1) {
        snprintf(errstr, errstr_size, "partition '%s': expected a number >= 0", argv[1]);
        return -1;
    }
    if (strcmp(argv[2], "-1") != 0 &&
        parse_broker(db, argv[2], false, &broker_id, errstr, errstr_size) == -1)
        return -1;
    char what[300];
    snprintf(what, sizeof(what), "leader %s [%lld]", argv[0], (long long)partition);
    return mock_result(
        rd_kafka_mock_partition_set_leader(db->mcluster, argv[0], (int32_t)partition, broker_id),
        what, errstr, errstr_size);
}

static int ctl_help(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size);

/* Every control command: parsing, dispatch and `help` come from this table. */
static const struct {
    const char *name;
    int min_args, max_args;
    ctl_fn_t *fn;
    const char *usage;
    const char *doc;
} ctl_commands[] = {
    {"topic", 2, 2, ctl_topic, "topic NAME PARTITIONS", "create a topic"},
    {"down", 1, 1, ctl_down, "down BROKER|all",
     "broker stops answering (connections closed/refused)"},
    {"up", 1, 1, ctl_up, "up BROKER|all", "broker answers again"},
    {"rtt", 2, 2, ctl_rtt, "rtt BROKER|all MS", "add MS of latency to every response"},
    {"error", 3, MAX_CTL_ARGS - 1, ctl_error, "error API COUNT ERR [ERR...]",
     "the next COUNT requests of API fail with the ERRs in order (the last ERR repeats)"},
    {"clear", 1, 1, ctl_clear, "clear API", "drop errors still queued for API"},
    {"leader", 3, 3, ctl_leader, "leader TOPIC PARTITION BROKER",
     "move a partition's leader (-1: none); an unknown TOPIC is auto-created first"},
    {"help", 0, 0, ctl_help, "help", "list the commands (on stderr)"},
};

/* The list goes to stderr so that stdout keeps exactly one reply line per command. */
static int ctl_help(devbroker_t *db, int argc, char **argv, char *errstr, size_t errstr_size) {
    fprintf(stderr, "dev-broker control commands (one per line on stdin):\n");
    for (size_t i = 0; i < RKB_ARRAY_SIZE(ctl_commands); i++)
        fprintf(stderr, "  %-32s %s\n", ctl_commands[i].usage, ctl_commands[i].doc);
    fprintf(stderr, "  API: Produce, Fetch, ListOffsets, Metadata, OffsetCommit, OffsetFetch,\n"
                    "       FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup,\n"
                    "       InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,\n"
                    "       TxnOffsetCommit, or a number\n"
                    "  ERR: a Kafka error name (REQUEST_TIMED_OUT, NOT_LEADER_FOR_PARTITION,\n"
                    "       _TRANSPORT closes the connection) or a number\n");
    fflush(stderr);
    return 0;
}

static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Runs one control line and writes its one reply line. Blank lines are not commands and get
 * no reply. */
static void run_ctl_line(devbroker_t *db, char *line) {
    char *argv[MAX_CTL_ARGS + 1];
    int argc = 0;
    char *save = NULL;
    for (char *word = strtok_r(line, " \t\r", &save); word; word = strtok_r(NULL, " \t\r", &save)) {
        if (argc == MAX_CTL_ARGS) {
            reply("error: too many words (at most %d)", MAX_CTL_ARGS);
            return;
        }
        argv[argc++] = word;
    }
    if (argc == 0)
        return;

    for (size_t i = 0; i < RKB_ARRAY_SIZE(ctl_commands); i++) {
        if (strcasecmp(argv[0], ctl_commands[i].name) != 0)
            continue;
        int arg_cnt = argc - 1;
        if (arg_cnt < ctl_commands[i].min_args || arg_cnt > ctl_commands[i].max_args) {
            rkb_log_warn(LOG_COMPONENT, "control: %s: usage: %s", argv[0], ctl_commands[i].usage);
            reply("error: usage: %s", ctl_commands[i].usage);
            return;
        }
        char errstr[512] = "";
        if (ctl_commands[i].fn(db, arg_cnt, argv + 1, errstr, sizeof(errstr)) == 0) {
            rkb_log_info(LOG_COMPONENT, "control: %s: ok", argv[0]);
            reply("ok");
        } else {
            rkb_log_warn(LOG_COMPONENT, "control: %s: %s", argv[0], errstr);
            reply("error: %s", errstr);
        }
        return;
    }
    rkb_log_warn(LOG_COMPONENT, "control: unknown command '%s'", argv[0]);
    reply("error: unknown command '%s' (try help)", argv[0]);
}

/* Serves the control channel until a stop signal. stdin is read with poll() + read() (not
 * stdio) so that the wait can time out and notice stop_requested. After EOF or a read error only
 * signals are waited for: closing stdin does not stop the broker. */
static void serve(devbroker_t *db) {
    char line[MAX_CTL_LINE];
    size_t line_len = 0;
    bool line_too_long = false;
    bool stdin_open = true;

    while (!stop_requested) {
        struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
        int ready = poll(&pfd, stdin_open ? 1 : 0, POLL_INTERVAL_MS);
        rd_kafka_poll(db->rk, 0); /* serves log and error events, if any */
        if (ready <= 0 || !stdin_open)
            continue; /* timeout, EINTR (a signal: the loop condition checks it) */

        char chunk[1024];
        ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            if (n < 0)
                rkb_log_warn(LOG_COMPONENT, "reading stdin: %s; control channel closed",
                             strerror(errno));
            else
                rkb_log_info(LOG_COMPONENT, "stdin closed; running until SIGTERM/SIGINT");
            stdin_open = false;
            continue;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (chunk[i] != '\n') {
                if (line_len + 1 < sizeof(line))
                    line[line_len++] = chunk[i];
                else
                    line_too_long = true;
                continue;
            }
            line[line_len] = '\0';
            if (line_too_long)
                reply("error: line longer than %d bytes", MAX_CTL_LINE - 1);
            else
                run_ctl_line(db, line);
            line_len = 0;
            line_too_long = false;
        }
    }
}

/* ---- Startup ----------------------------------------------------------------------------------
 */

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: rkbridge dev-broker [--brokers N] [--topic NAME:PARTITIONS]...\n"
            "                           [--bootstrap-file PATH]\n"
            "\n"
            "Runs a Kafka cluster for development and tests (librdkafka's mock cluster).\n"
            "Prints the bootstrap address as the first line of stdout, then runs until\n"
            "SIGTERM/SIGINT. Control commands, one per line on stdin (`help` lists them).\n"
            "\n"
            "  --brokers N               brokers in the cluster, 1..%d (default 1)\n"
            "  --topic NAME:PARTITIONS   create a topic (repeatable); others are auto-created\n"
            "                            with 4 partitions when a producer first writes them\n"
            "  --bootstrap-file PATH     also write the bootstrap address to PATH\n"
            "  --help                    this text\n",
            MAX_BROKERS);
}

typedef struct devbroker_args_s {
    int broker_cnt;
    const char *bootstrap_file;
    char **topics; /* "NAME:PARTITIONS" as given, checked by parse_args */
    int topic_cnt;
} devbroker_args_t;

static int parse_topic_arg(const char *arg, char **name, int64_t *partitions) {
    const char *colon = strrchr(arg, ':');
    if (!colon || colon == arg || rkb_parse_int64(colon + 1, 1, 100000, partitions) == -1)
        return -1;
    *name = rkb_strndup(arg, (size_t)(colon - arg));
    return 0;
}

/* Returns 0, 1 for --help (exit 0), or -1 after printing the problem (exit EXIT_USAGE). */
static int parse_args(int argc, char **argv, devbroker_args_t *args) {
    args->broker_cnt = 1;
    args->bootstrap_file = NULL;
    args->topics = rkb_calloc((size_t)argc, sizeof(*args->topics));
    args->topic_cnt = 0;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            usage(stdout);
            return 1;
        }
        if (strcmp(opt, "--brokers") && strcmp(opt, "--topic") && strcmp(opt, "--bootstrap-file")) {
            fprintf(stderr, "rkbridge dev-broker: unknown option '%s'\n", opt);
            usage(stderr);
            return -1;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "rkbridge dev-broker: %s needs a value\n", opt);
            return -1;
        }
        const char *value = argv[++i];
        if (!strcmp(opt, "--brokers")) {
            int64_t broker_cnt;
            if (rkb_parse_int64(value, 1, MAX_BROKERS, &broker_cnt) == -1) {
                fprintf(stderr, "rkbridge dev-broker: --brokers '%s': expected 1..%d\n", value,
                        MAX_BROKERS);
                return -1;
            }
            args->broker_cnt = (int)broker_cnt;
        } else if (!strcmp(opt, "--topic")) {
            char *name;
            int64_t partitions;
            if (parse_topic_arg(value, &name, &partitions) == -1) {
                fprintf(stderr,
                        "rkbridge dev-broker: --topic '%s': expected NAME:PARTITIONS with "
                        "PARTITIONS 1..100000\n",
                        value);
                return -1;
            }
            free(name);
            args->topics[args->topic_cnt++] = argv[i];
        } else {
            args->bootstrap_file = value;
        }
    }
    return 0;
}

/* Readers of the file (scripts waiting for it to appear) must never see half an address: write
 * a temp file next to it and rename it into place. */
static int write_bootstrap_file(const char *path, const char *bootstraps) {
    size_t tmp_size = strlen(path) + 32;
    char *tmp_path = rkb_malloc(tmp_size);
    snprintf(tmp_path, tmp_size, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp_path, "w");
    int ret = -1;
    if (!fp) {
        rkb_log_error(LOG_COMPONENT, "--bootstrap-file %s: %s", tmp_path, strerror(errno));
    } else if (fprintf(fp, "%s\n", bootstraps) < 0 || fclose(fp) != 0) {
        rkb_log_error(LOG_COMPONENT, "--bootstrap-file %s: write failed", tmp_path);
        unlink(tmp_path);
    } else if (rename(tmp_path, path) == -1) {
        rkb_log_error(LOG_COMPONENT, "--bootstrap-file %s: %s", path, strerror(errno));
        unlink(tmp_path);
    } else {
        ret = 0;
    }
    free(tmp_path);
    return ret;
}

/* librdkafka's log lines (from its own threads) go to our logger, as every client's do. */
static void rdkafka_log_cb(const rd_kafka_t *rk, int level, const char *facility,
                           const char *message) {
    /* The hosting handle has no bootstrap.servers on purpose; its warning about that would only
     * mislead someone reading the broker's log. */
    if (!strcmp(facility, "CONFWARN") && strstr(message, "bootstrap.servers"))
        return;
    rkb_kafka_log(LOG_COMPONENT, level, facility, message);
}

static int install_stop_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal; /* no SA_RESTART: poll() returns EINTR at once */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) == -1 || sigaction(SIGINT, &sa, NULL) == -1)
        return -1;
    /* A reader that closes our stdout must not kill the cluster: replies are then lost, and
     * only a signal stops the broker, as documented. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Creates the cluster and its topics. On failure everything created is destroyed again. */
static int devbroker_start(devbroker_t *db, const devbroker_args_t *args) {
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, rdkafka_log_cb);
    /* The handle only hosts the cluster: nothing network-related is configured on it. */
    db->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!db->rk) {
        rd_kafka_conf_destroy(conf);
        rkb_log_error(LOG_COMPONENT, "cannot create librdkafka handle: %s", errstr);
        return -1;
    }
    db->broker_cnt = args->broker_cnt;
    db->mcluster = rd_kafka_mock_cluster_new(db->rk, args->broker_cnt);
    if (!db->mcluster) {
        rkb_log_error(LOG_COMPONENT, "cannot create the mock cluster");
        rd_kafka_destroy(db->rk);
        return -1;
    }
    for (int i = 0; i < args->topic_cnt; i++) {
        char *name = NULL;
        int64_t partitions = 0;
        parse_topic_arg(args->topics[i], &name, &partitions); /* checked by parse_args */
        int ret = create_topic(db, name, partitions, errstr, sizeof(errstr));
        free(name);
        if (ret == -1) {
            rkb_log_error(LOG_COMPONENT, "--topic %s: %s", args->topics[i], errstr);
            rd_kafka_mock_cluster_destroy(db->mcluster);
            rd_kafka_destroy(db->rk);
            return -1;
        }
    }
    return 0;
}

int rkb_devbroker_main(int argc, char **argv) {
    devbroker_args_t args;
    int ret = parse_args(argc, argv, &args);
    if (ret != 0) {
        free(args.topics);
        return ret == 1 ? 0 : EXIT_USAGE;
    }
    rkb_log_init_from_env();

    /* Before rd_kafka_new(): librdkafka's threads block signals, so they reach this thread. */
    if (install_stop_handlers() == -1) {
        rkb_log_error(LOG_COMPONENT, "sigaction: %s", strerror(errno));
        free(args.topics);
        return EXIT_STARTUP_FAILED;
    }
    devbroker_t db;
    if (devbroker_start(&db, &args) == -1) {
        free(args.topics);
        return EXIT_STARTUP_FAILED;
    }

    /* The address is the first line of stdout: callers read it to know we are up. */
    const char *bootstraps = rd_kafka_mock_cluster_bootstraps(db.mcluster);
    reply("%s", bootstraps);
    ret = 0;
    if (args.bootstrap_file && write_bootstrap_file(args.bootstrap_file, bootstraps) == -1)
        ret = EXIT_STARTUP_FAILED;
    else {
        rkb_log_info(LOG_COMPONENT, "%d broker(s) at %s, %d topic(s) created", db.broker_cnt,
                     bootstraps, args.topic_cnt);
        serve(&db);
        rkb_log_info(LOG_COMPONENT, "stopping");
    }

    /* The cluster first: its brokers live on threads of rk. */
    rd_kafka_mock_cluster_destroy(db.mcluster);
    rd_kafka_destroy(db.rk);
    free(args.topics);
    if (ret == 0)
        rkb_log_info(LOG_COMPONENT, "stopped");
    return ret;
}
