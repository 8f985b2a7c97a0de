/*
 * cli.c — `rkbridge run` and `rkbridge validate`: load connector files, validate them all
 * before anything starts, run the connectors in the foreground until SIGINT/SIGTERM.
 */
#include "cli/cli.h"

#include "config/config.h"
#include "connect/connector.h"
#include "connect/task.h"
#include "util/log.h"
#include "util/util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

void rkb_cli_usage(FILE *fp) {
    fprintf(fp,
            "usage: rkbridge <command> [options]\n"
            "\n"
            "Commands:\n"
            "  run [--kafka-bootstrap SERVERS] [--log-format text|json] FILE.properties ...\n"
            "        Run one connector per file in the foreground (like Kafka's\n"
            "        connect-standalone). SIGINT/SIGTERM stop them in order: intake stops,\n"
            "        Redis is flushed, offsets are committed. --kafka-bootstrap sets\n"
            "        kafka.bootstrap.servers for files that do not set it. --log-format json\n"
            "        writes one JSON object per line (ts, level, connector, task, msg).\n"
            "  validate [--print] FILE.properties\n"
            "        Check a connector file: one line per problem (FILE:LINE: key: why), exit 2\n"
            "        if there is any, exit 0 and print nothing if the file is valid. --print\n"
            "        then prints the effective configuration (key=value  # origin; secrets\n"
            "        as [hidden], config provider references as written).\n"
            "  dev-broker [--brokers N] [--topic NAME:PARTITIONS]... [--bootstrap-file PATH]\n"
            "        A Kafka broker for development and tests (librdkafka's mock cluster).\n"
            "        Prints its bootstrap address first; control commands on stdin.\n"
            "  config-doc\n"
            "        Print the configuration reference (docs/configuration.md).\n"
            "  cache-script\n"
            "        Print the cache compare-and-set Lua script (redis.type=CACHE) that\n"
            "        applications' cache-aside fills call with SCRIPT LOAD + EVALSHA.\n"
            "  --help, --version\n"
            "\n"
            "Environment: RKB_LOG_LEVEL=error|warn|info|debug (default info),\n"
            "  RKB_LOG_FORMAT=text|json (default text; run --log-format overrides it).\n"
            "  Property values may read secrets at load time: ${env:NAME} (an environment\n"
            "  variable), ${file:PATH:KEY} (KEY of the properties file PATH).\n"
            "\n");
}

/* Loads and fully validates one connector file. Returns the config, or NULL with the problems
 * in errs. */
static rkb_config_t *load_connector(const char *path, rkb_errors_t *errs) {
    rkb_config_t *conf = rkb_config_new();
    size_t before = errs->cnt;
    rkb_config_load_file(conf, path, errs);
    if (errs->cnt == before)
        rkb_config_validate(conf, errs);
    const rkb_task_ops_t *ops = rkb_task_ops(rkb_config_connector_kind(conf));
    if (errs->cnt == before && ops)
        ops->validate(conf, errs);
    if (errs->cnt != before) {
        rkb_config_destroy(conf);
        return NULL;
    }
    return conf;
}

int rkb_cli_validate(int argc, char **argv) {
    bool print = argc == 3 && !strcmp(argv[1], "--print");
    if (argc != 2 + print) {
        fprintf(stderr, "usage: rkbridge validate [--print] FILE.properties\n");
        return 2;
    }
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = load_connector(argv[1 + print], &errs);
    rkb_errors_print(&errs, stderr);
    int rc = errs.cnt ? 2 : 0;
    if (conf && print)
        rkb_config_print(conf, stdout);
    rkb_errors_clear(&errs);
    rkb_config_destroy(conf);
    return rc;
}

static void find_kafka_prop(const char *name, const char *value, const char *origin, void *opaque) {
    const char **wanted = opaque;
    if (!strcmp(name, wanted[0]))
        wanted[1] = value;
}

/* True if the file sets kafka.NAME itself. */
static bool kafka_prop_is_set(const rkb_config_t *conf, const char *name) {
    const char *wanted[2] = {name, NULL};
    rkb_config_foreach_kafka(conf, find_kafka_prop, wanted);
    return wanted[1] != NULL;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig; /* only a flag: the main loop does the work */
}

/* If argv[*i] is option name, as "NAME VALUE" or "NAME=VALUE": sets *value, moves *i past it
 * and returns true. */
static bool take_option(int argc, char **argv, int *i, const char *name, const char **value) {
    size_t len = strlen(name);
    if (strncmp(argv[*i], name, len))
        return false;
    if (argv[*i][len] == '=') {
        *value = argv[*i] + len + 1;
        *i += 1;
        return true;
    }
    if (argv[*i][len] == '\0' && *i + 1 < argc) {
        *value = argv[*i + 1];
        *i += 2;
        return true;
    }
    return false;
}

int rkb_cli_run(int argc, char **argv) {
    const char *bootstrap = NULL, *log_format = NULL;
    int first_file = 1;
    while (first_file < argc && argv[first_file][0] == '-') {
        if (take_option(argc, argv, &first_file, "--kafka-bootstrap", &bootstrap))
            continue;
        if (take_option(argc, argv, &first_file, "--log-format", &log_format)) {
            rkb_log_format_t format;
            if (rkb_log_format_parse(log_format, &format)) {
                fprintf(stderr, "rkbridge run: --log-format: expected text or json\n");
                return 2;
            }
            rkb_log_set_format(format);
            continue;
        }
        fprintf(stderr, "rkbridge run: unknown option '%s'\n", argv[first_file]);
        return 2;
    }
    if (first_file >= argc) {
        fprintf(stderr, "usage: rkbridge run [--kafka-bootstrap SERVERS] [--log-format text|json] "
                        "FILE.properties ...\n");
        return 2;
    }

    /* Validate every file before starting anything: a broken file never starts a connector. */
    size_t conf_cnt = (size_t)(argc - first_file);
    rkb_config_t **confs = rkb_calloc(conf_cnt, sizeof(*confs));
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    for (size_t i = 0; i < conf_cnt; i++)
        confs[i] = load_connector(argv[first_file + (int)i], &errs);
    if (errs.cnt) {
        rkb_errors_print(&errs, stderr);
        rkb_errors_clear(&errs);
        for (size_t i = 0; i < conf_cnt; i++)
            rkb_config_destroy(confs[i]);
        free(confs);
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    rkb_connector_t **conns = rkb_calloc(conf_cnt, sizeof(*conns));
    int rc = 0;
    for (size_t i = 0; i < conf_cnt; i++) {
        char why[1024];
        if (bootstrap && !kafka_prop_is_set(confs[i], "bootstrap.servers")) {
            rkb_config_set(confs[i], "kafka.bootstrap.servers", bootstrap, "--kafka-bootstrap",
                           &errs);
        }
        conns[i] = rkb_connector_start(confs[i], why, sizeof(why));
        if (!conns[i]) {
            rkb_log_error(NULL, "%s: cannot start connector: %s", argv[first_file + (int)i], why);
            /* confs[i] was taken over, and freed, by the failed start */
            rc = 1;
        }
    }
    free(confs);

    /* Foreground until a signal, or until no task is left running. */
    for (;;) {
        if (stop_signal) {
            rkb_log_info(NULL, "signal %d: stopping", (int)stop_signal);
            break;
        }
        size_t running = 0;
        for (size_t i = 0; i < conf_cnt; i++)
            running += conns[i] ? rkb_connector_running(conns[i]) : 0;
        if (!running)
            break;
        rkb_sleep_ms(100, NULL);
    }

    /* Orderly shutdown of every connector: each task stops intake, flushes, commits. */
    for (size_t i = 0; i < conf_cnt; i++)
        if (conns[i])
            rkb_connector_stop(conns[i]);
    for (size_t i = 0; i < conf_cnt; i++) {
        if (!conns[i])
            continue;
        for (size_t t = 0; t < rkb_connector_task_count(conns[i]); t++)
            if (rkb_connector_task_state(conns[i], t) == RKB_TASK_FAILED)
                rc = 1;
        rkb_connector_destroy(conns[i]);
    }
    free(conns);
    rkb_errors_clear(&errs);
    return rc;
}
