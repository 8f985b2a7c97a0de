/*
 * cli.c — `rkbridge run` and `rkbridge validate`: load the worker config and connector files,
 * validate them all before anything starts, then run the worker (connect/worker.h) and its REST
 * API (http/) in the foreground until SIGINT/SIGTERM, with a live status line on a terminal.
 */
#include "cli/cli.h"

#include "config/config.h"
#include "connect/connector.h"
#include "connect/task.h"
#include "connect/worker.h"
#include "http/http.h"
#include "util/log.h"
#include "util/util.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void rkb_cli_usage(FILE *fp) {
    fprintf(fp,
            "usage: rkbridge <command> [options]\n"
            "\n"
            "Commands:\n"
            "  run [--worker FILE] [--listen HOST:PORT] [--kafka-bootstrap SERVERS]\n"
            "      [FILE.properties ...]\n"
            "        Run a worker in the foreground, as Kafka Connect's: one connector per\n"
            "        file, plus the connectors created over its REST API (kept in the\n"
            "        config topic and started again at the next run). Without files it\n"
            "        runs until stopped; with files, until none of their tasks is left.\n"
            "        SIGINT/SIGTERM stop in order: intake stops, Redis is flushed,\n"
            "        offsets are committed.\n"
            "        --worker FILE        worker properties (listeners, rest.auth.token,\n"
            "                             config.storage.topic, kafka.*: see below)\n"
            "        --listen HOST:PORT   where the REST API listens (listeners; default\n"
            "                             127.0.0.1:8083, port 0: any free port)\n"
            "        --kafka-bootstrap S  kafka.bootstrap.servers of the worker, inherited\n"
            "                             by connectors that do not set it\n"
            "        REST API (Kafka Connect's): GET/POST /connectors, GET/PUT\n"
            "        /connectors/NAME/config, GET .../status, PUT .../pause|resume|stop,\n"
            "        POST .../restart, DELETE /connectors/NAME, PUT\n"
            "        /connector-plugins/CLASS/config/validate; GET /metrics (Prometheus),\n"
            "        GET /health. On a terminal, a status line shows records/s, lag, errors.\n"
            "        --log-format text|json  json: one JSON object per line (ts, level,\n"
            "                             connector, task, msg); text is the default\n"
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
    if (conf && print)
        rkb_config_print(conf, stdout);
    rkb_errors_print(&errs, stderr);
    int rc = errs.cnt ? 2 : 0;
    rkb_errors_clear(&errs);
    rkb_config_destroy(conf);
    return rc;
}

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig; /* only a flag: the main loop does the work */
}

/* "--name VALUE" or "--name=VALUE" at argv[*i]: sets *value and advances *i. */
static bool take_option(int argc, char **argv, int *i, const char *name, const char **value) {
    size_t len = strlen(name);
    if (!strcmp(argv[*i], name) && *i + 1 < argc) {
        *value = argv[*i + 1];
        *i += 2;
        return true;
    }
    if (!strncmp(argv[*i], name, len) && argv[*i][len] == '=') {
        *value = argv[*i] + len + 1;
        *i += 1;
        return true;
    }
    return false;
}

/* The worker config: the --worker file, then the flags over it. NULL after printing problems. */
static rkb_config_t *load_worker(const char *path, const char *listen, const char *bootstrap) {
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = rkb_config_new();
    if (path)
        rkb_config_load_file(conf, path, &errs);
    if (listen)
        rkb_config_set(conf, "listeners", listen, "--listen", &errs);
    if (bootstrap)
        rkb_config_set(conf, "kafka.bootstrap.servers", bootstrap, "--kafka-bootstrap", &errs);
    if (!errs.cnt)
        rkb_config_validate_worker(conf, &errs);
    if (errs.cnt) {
        rkb_errors_print(&errs, stderr);
        rkb_config_destroy(conf);
        conf = NULL;
    }
    rkb_errors_clear(&errs);
    return conf;
}

/* The live status line: about once a second, only on a terminal (log.h keeps it below the log
 * lines). */
typedef struct status_line_s {
    bool on;
    int64_t last_ms;
    uint64_t last_written;
} status_line_t;

static void status_line_update(status_line_t *sl, rkb_worker_t *w) {
    int64_t now = rkb_now_ms();
    if (!sl->on || now - sl->last_ms < 1000)
        return;
    rkb_worker_summary_t sum;
    rkb_worker_summary(w, &sum);
    double rate = sl->last_ms ? (double)(sum.records_written - sl->last_written) * 1000.0 /
                                    (double)(now - sl->last_ms)
                              : 0;
    char text[256];
    snprintf(text, sizeof(text),
             "rkbridge: %zu connector%s, %zu task%s running%s | %.0f records/s | lag %lld | "
             "errors %llu%s",
             sum.connectors, sum.connectors == 1 ? "" : "s", sum.tasks_running,
             sum.tasks_running == 1 ? "" : "s", sum.tasks_paused ? " (some paused)" : "", rate,
             (long long)sum.backlog, (unsigned long long)sum.records_failed,
             sum.tasks_failed ? ", tasks FAILED" : "");
    rkb_log_status_line(text);
    sl->last_ms = now;
    sl->last_written = sum.records_written;
}

int rkb_cli_run(int argc, char **argv) {
    const char *bootstrap = NULL, *listen = NULL, *worker_file = NULL, *log_format = NULL;
    int first_file = 1;
    while (first_file < argc && argv[first_file][0] == '-') {
        if (!take_option(argc, argv, &first_file, "--kafka-bootstrap", &bootstrap) &&
            !take_option(argc, argv, &first_file, "--listen", &listen) &&
            !take_option(argc, argv, &first_file, "--worker", &worker_file) &&
            !take_option(argc, argv, &first_file, "--log-format", &log_format)) {
            fprintf(stderr, "rkbridge run: unknown option '%s'\n", argv[first_file]);
            fprintf(stderr, "usage: rkbridge run [--worker FILE] [--listen HOST:PORT] "
                            "[--kafka-bootstrap SERVERS] [--log-format text|json] "
                            "[FILE.properties ...]\n");
            return 2;
        }
    }
    if (log_format) {
        rkb_log_format_t format;
        if (rkb_log_format_parse(log_format, &format)) {
            fprintf(stderr, "rkbridge run: --log-format: expected text or json\n");
            return 2;
        }
        rkb_log_set_format(format);
    }
    bool files = first_file < argc;

    /* Validate the worker and every file before starting anything: a broken file never starts
     * a connector. */
    rkb_config_t *worker_conf = load_worker(worker_file, listen, bootstrap);
    if (!worker_conf)
        return 2;
    bool listener_asked = rkb_config_is_set(worker_conf, "listeners");
    rkb_worker_t *w = rkb_worker_new(worker_conf);
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    for (int i = first_file; i < argc; i++)
        rkb_worker_add_file(w, argv[i], &errs);
    if (errs.cnt) {
        rkb_errors_print(&errs, stderr);
        rkb_errors_clear(&errs);
        rkb_worker_destroy(w);
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The files' connectors first: they do not wait for the config topic. */
    rkb_worker_tick(w, 0);
    /* Without files the worker is only its stored connectors and its API: it cannot go on
     * without the config topic. With files, those run, and the API refuses changes. */
    char why[1024];
    if (rkb_worker_start(w, !files, why, sizeof(why))) {
        if (!files) {
            rkb_log_error(NULL, "cannot start the worker: %s", why);
            rkb_worker_destroy(w);
            return 1;
        }
        rkb_log_warn(NULL, "%s: the connectors of the files run; the REST API refuses changes", why);
    }
    /* The REST API. Several `rkbridge run FILE` on one host all try the default port: for them
     * (files, no listener asked for) a port in use only costs the API, as before it existed. */
    const rkb_config_t *wc = rkb_worker_config(w);
    rkb_http_conf_t hc = {
        .listener = rkb_config_get(wc, "listeners"),
        .auth_token = rkb_config_get(wc, "rest.auth.token"),
        .max_body = (size_t)rkb_config_get_int(wc, "rest.request.max.bytes"),
        .worker = w,
    };
    rkb_http_t *http = rkb_http_start(&hc, why, sizeof(why));
    if (http) {
        rkb_worker_set_id(w, rkb_http_address(http));
        rkb_log_info(NULL, "REST API listening on http://%s%s", rkb_http_address(http),
                     hc.auth_token && *hc.auth_token ? " (bearer token required)" : "");
    } else if (listener_asked || !files) {
        rkb_log_error(NULL, "REST API: %s", why);
        rkb_worker_destroy(w);
        return 1;
    } else {
        rkb_log_warn(NULL, "REST API not started: %s; the connectors run without it (set "
                           "--listen to choose another address)",
                     why);
    }

    /* Foreground until a signal, or (with files) until no task is left running. */
    status_line_t status = {.on = isatty(STDERR_FILENO) == 1};
    for (;;) {
        rkb_worker_tick(w, 100);
        if (stop_signal) {
            rkb_log_info(NULL, "signal %d: stopping", (int)stop_signal);
            break;
        }
        if (files && rkb_worker_idle(w))
            break;
        status_line_update(&status, w);
    }
    if (status.on)
        rkb_log_status_line(NULL);

    /* Orderly shutdown: no more requests, then every connector's tasks stop intake, flush and
     * commit. */
    rkb_http_stop(http);
    int rc = rkb_worker_shutdown(w);
    rkb_worker_destroy(w);
    rkb_errors_clear(&errs);
    return rc;
}
