/*
 * worker.c — the connector registry and its lifecycle (see worker.h).
 *
 * Where it sits: above connect/connector.c (one connector's task threads) and below the REST
 * API (http/rest.c) and the command line (cli/cli.c). Requests change entries under the lock
 * and wake the main thread; rkb_worker_tick, on the main thread, does the slow part (start,
 * stop, restart) with the lock released, so that reads never wait for a task to shut down.
 */
#include "connect/worker.h"

#include "connect/connector.h"
#include "connect/store.h"
#include "connect/task.h"
#include "util/log.h"
#include "util/util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COMPONENT "worker"
/* Origin of the values of configs that came as JSON (the REST API, the config topic): their
 * problems read "config: key: why", as for any config without a file. */
#define JSON_ORIGIN "config"

typedef struct entry_s {
    char *name;
    json_t *config;   /* as submitted, or as set in the file; "name" included */
    char *file;       /* the connector file it came from; NULL: REST, kept in the store */
    rkb_connector_kind_t kind;
    rkb_target_t target;
    rkb_connector_t *conn; /* its tasks, or NULL (stopped, failed, not started yet) */
    char *trace;           /* the connector FAILED: why it could not start */
    bool start;            /* pending: (re)start with the current config */
    bool started_once;
    bool *task_restart; /* pending: restart task i of conn */
    bool deleted;       /* pending: stop and forget */
} entry_t;

struct rkb_worker_s {
    rkb_config_t *conf;
    rkb_store_t *store;
    char *store_error; /* the config topic could not be read at start: changes are refused */
    char *worker_id;
    char *worker_name; /* ${worker} of the connectors it starts: worker.id or its default */
    pthread_mutex_t lock; /* entries, their fields, pending, worker_id */
    pthread_cond_t wake;
    bool pending; /* a request left work for the main thread */
    pthread_mutex_t change_lock; /* one change at a time, store write included */
    entry_t **entries;
    size_t cnt, cap;
};

/* ---- Entries ---------------------------------------------------------------------------------- */

static entry_t *find(rkb_worker_t *w, const char *name) {
    for (size_t i = 0; i < w->cnt; i++)
        if (!w->entries[i]->deleted && !strcmp(w->entries[i]->name, name))
            return w->entries[i];
    return NULL;
}

static entry_t *add_entry(rkb_worker_t *w, const char *name) {
    if (w->cnt == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 8;
        w->entries = rkb_realloc(w->entries, w->cap * sizeof(*w->entries));
    }
    entry_t *e = rkb_calloc(1, sizeof(*e));
    e->name = rkb_strdup(name);
    e->target = RKB_TARGET_STARTED;
    e->start = true;
    w->entries[w->cnt++] = e;
    return e;
}

static void entry_free(entry_t *e) {
    if (!e)
        return;
    free(e->name);
    json_decref(e->config);
    free(e->file);
    free(e->trace);
    free(e->task_restart);
    free(e);
}

/* Wakes the main thread. @locks w->lock held */
static void wake_main(rkb_worker_t *w) {
    w->pending = true;
    pthread_cond_signal(&w->wake);
}

static const char *target_name(rkb_target_t target) {
    return target == RKB_TARGET_PAUSED    ? "PAUSED"
           : target == RKB_TARGET_STOPPED ? "STOPPED"
                                          : "STARTED";
}

/* ---- Configs ---------------------------------------------------------------------------------- */

typedef struct inherit_s {
    rkb_config_t *conf;
    rkb_errors_t *errs;
} inherit_t;

static void find_kafka(const char *name, const char *value, const char *origin, void *opaque) {
    const char **wanted = opaque;
    if (!strcmp(name, wanted[0]))
        wanted[1] = value;
}

static void inherit_one(const char *name, const char *value, const char *origin, void *opaque) {
    inherit_t *in = opaque;
    const char *wanted[2] = {name, NULL};
    rkb_config_foreach_kafka(in->conf, find_kafka, wanted);
    if (wanted[1])
        return; /* the connector sets it itself */
    rkb_buf_t key;
    rkb_buf_init(&key);
    rkb_buf_appendf(&key, "kafka.%s", name);
    rkb_config_set(in->conf, key.data, value, origin, in->errs);
    rkb_buf_free(&key);
}

/* The worker's kafka.* settings go to every connector that does not set them itself (Kafka
 * Connect's workers pass their client settings to the connectors' clients the same way). */
static void inherit(rkb_worker_t *w, rkb_config_t *conf, rkb_errors_t *errs) {
    inherit_t in = {.conf = conf, .errs = errs};
    rkb_config_foreach_kafka(w->conf, inherit_one, &in);
}

/* The whole validation of a connector config, after its values were set (errs holds what
 * setting them found): the table's cross-key checks always, then the kind's own, which rely on
 * a clean config (as `rkbridge validate` does). Returns the number of problems in errs. */
static size_t validate_conf(const rkb_config_t *conf, rkb_errors_t *errs) {
    size_t before = errs->cnt;
    rkb_config_validate(conf, errs);
    const rkb_task_ops_t *ops = rkb_task_ops(rkb_config_connector_kind(conf));
    if (errs->cnt == 0 && before == 0 && ops)
        ops->validate(conf, errs);
    return errs->cnt;
}

/* A connector config from a JSON object of strings, with the worker's kafka.* inherited. */
static rkb_config_t *conf_from_json(rkb_worker_t *w, const json_t *config, rkb_errors_t *errs) {
    rkb_config_t *conf = rkb_config_new();
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)config, key, value)
        rkb_config_set(conf, key, json_string_value(value), JSON_ORIGIN, errs);
    inherit(w, conf, errs);
    return conf;
}

/* A copy of a submitted config with every value as a string (Kafka Connect's configs are
 * string maps; numbers and booleans are taken as their text) and "name" set. NULL with errstr
 * when a value is something else or names another connector. */
static json_t *normalize_config(const json_t *config, const char *name, char *errstr,
                                size_t errstr_size) {
    if (!json_is_object(config)) {
        snprintf(errstr, errstr_size, "the connector config must be a JSON object");
        return NULL;
    }
    json_t *out = json_object();
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)config, key, value) {
        char text[64];
        if (json_is_string(value)) {
            json_object_set(out, key, value);
            continue;
        }
        if (json_is_integer(value))
            snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(value));
        else if (json_is_real(value))
            snprintf(text, sizeof(text), "%.17g", json_real_value(value));
        else if (json_is_boolean(value))
            snprintf(text, sizeof(text), "%s", json_is_true(value) ? "true" : "false");
        else {
            snprintf(errstr, errstr_size, "config %s: the value must be a string", key);
            json_decref(out);
            return NULL;
        }
        json_object_set_new(out, key, json_string(text));
    }
    const char *named = json_string_value(json_object_get(out, "name"));
    if (named && strcmp(named, name)) {
        snprintf(errstr, errstr_size,
                 "Connector name configuration (%s) doesn't match connector name in the URL (%s)",
                 named, name);
        json_decref(out);
        return NULL;
    }
    json_object_set_new(out, "name", json_string(name));
    return out;
}

/* A problem line without its origin ("config: key: why" → "key: why"). */
static const char *without_origin(const char *msg) {
    const char *sep = strstr(msg, ": ");
    return sep && strstr(sep + 2, ": ") ? sep + 2 : msg;
}

/* Kafka Connect's message for an invalid config, one problem per line. */
static void invalid_message(const rkb_errors_t *errs, char *errstr, size_t errstr_size) {
    rkb_buf_t msg;
    rkb_buf_init(&msg);
    rkb_buf_appendf(&msg, "Connector configuration is invalid and contains the following %zu "
                          "error(s):",
                    errs->cnt);
    for (size_t i = 0; i < errs->cnt; i++)
        rkb_buf_appendf(&msg, "\n%s", without_origin(errs->msgs[i]));
    rkb_buf_appends(&msg, "\nYou can also find the above list of errors at the endpoint "
                          "`/connector-plugins/{connectorType}/config/validate`");
    snprintf(errstr, errstr_size, "%s", msg.data);
    rkb_buf_free(&msg);
}

static bool name_ok(const char *name, char *errstr, size_t errstr_size) {
    if (!name || !*name) {
        snprintf(errstr, errstr_size, "Connector name is required");
        return false;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            snprintf(errstr, errstr_size, "Connector name must not contain control characters");
            return false;
        }
    }
    return true;
}

/* ---- Life cycle ------------------------------------------------------------------------------- */

/* worker.id, or HOSTNAME:PORT with the port of listeners (HOSTNAME:pPID when it is 0), as
 * config_props.c documents it. Known before the REST API listens: the connectors of files start
 * first. */
static char *worker_name(const rkb_config_t *conf) {
    const char *id = rkb_config_get(conf, "worker.id");
    if (id && *id)
        return rkb_strdup(id);
    char host[256] = "";
    if (gethostname(host, sizeof(host) - 1) || !host[0])
        snprintf(host, sizeof(host), "localhost");
    const char *listener = rkb_config_get(conf, "listeners");
    const char *colon = listener ? strrchr(listener, ':') : NULL;
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    rkb_buf_t out;
    rkb_buf_init(&out);
    if (port > 0)
        rkb_buf_appendf(&out, "%s:%ld", host, port);
    else
        rkb_buf_appendf(&out, "%s:p%ld", host, (long)getpid());
    return out.data;
}

rkb_worker_t *rkb_worker_new(rkb_config_t *conf) {
    rkb_worker_t *w = rkb_calloc(1, sizeof(*w));
    w->conf = conf;
    w->worker_id = rkb_strdup("rkbridge");
    w->worker_name = worker_name(conf);
    pthread_mutex_init(&w->lock, NULL);
    pthread_mutex_init(&w->change_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    return w;
}

const rkb_config_t *rkb_worker_config(const rkb_worker_t *w) {
    return w->conf;
}

void rkb_worker_set_id(rkb_worker_t *w, const char *worker_id) {
    pthread_mutex_lock(&w->lock);
    free(w->worker_id);
    w->worker_id = rkb_strdup(worker_id);
    pthread_mutex_unlock(&w->lock);
}

static void snapshot_one(const char *key, const char *value, const char *origin, void *opaque) {
    json_object_set_new(opaque, key, json_string(value));
}

bool rkb_worker_add_file(rkb_worker_t *w, const char *path, rkb_errors_t *errs) {
    rkb_config_t *conf = rkb_config_new();
    size_t before = errs->cnt;
    rkb_config_load_file(conf, path, errs);
    /* What GET .../config shows: the file's own settings, before inheritance. */
    json_t *config = json_object();
    rkb_config_foreach_set(conf, snapshot_one, config);
    if (errs->cnt == before) {
        inherit(w, conf, errs);
        if (errs->cnt == before) {
            rkb_errors_t found;
            rkb_errors_init(&found);
            validate_conf(conf, &found);
            for (size_t i = 0; i < found.cnt; i++)
                rkb_errors_add(errs, "%s", found.msgs[i]);
            rkb_errors_clear(&found);
        }
    }
    const char *name = rkb_config_get(conf, "name");
    if (errs->cnt == before && find(w, name))
        rkb_errors_add(errs, "%s: name: connector '%s' is defined twice", path, name);
    if (errs->cnt != before) {
        json_decref(config);
        rkb_config_destroy(conf);
        return false;
    }
    entry_t *e = add_entry(w, name);
    e->config = config;
    e->file = rkb_strdup(path);
    e->kind = rkb_config_connector_kind(conf);
    rkb_config_destroy(conf);
    return true;
}

static rkb_target_t target_of(const char *target_state) {
    if (target_state && !strcmp(target_state, "PAUSED"))
        return RKB_TARGET_PAUSED;
    if (target_state && !strcmp(target_state, "STOPPED"))
        return RKB_TARGET_STOPPED;
    return RKB_TARGET_STARTED;
}

/* The config of a stored connector, normalized, and its kind; NULL (with a warning) when the
 * record cannot be a connector. An invalid config is still taken: it FAILs at start, visibly. */
static json_t *stored_config(rkb_worker_t *w, const char *name, json_t *config,
                             rkb_connector_kind_t *kind) {
    char why[512];
    json_t *normalized = normalize_config(config, name, why, sizeof(why));
    if (!normalized) {
        rkb_log_warn(COMPONENT, "connector '%s' in topic %s skipped: %s", name,
                     rkb_store_topic(w->store), why);
        return NULL;
    }
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = conf_from_json(w, normalized, &errs);
    *kind = rkb_config_connector_kind(conf);
    rkb_config_destroy(conf);
    rkb_errors_clear(&errs);
    return normalized;
}

/* True (with a warning) when the file connector e shadows a stored one of its name. */
static bool file_wins(rkb_worker_t *w, entry_t *e) {
    if (!e || !e->file)
        return false;
    rkb_log_warn(COMPONENT,
                 "connector '%s' from %s is also kept in topic %s: the file wins (delete the "
                 "stored one over the REST API, or rename one)",
                 e->name, e->file, rkb_store_topic(w->store));
    return true;
}

/* A connector from the config topic. @locality main thread, at start */
static void on_stored(const char *name, json_t *config, const char *target_state, void *opaque) {
    rkb_worker_t *w = opaque;
    entry_t *e = find(w, name);
    if (file_wins(w, e))
        return;
    rkb_connector_kind_t kind;
    json_t *normalized = stored_config(w, name, config, &kind);
    if (!normalized)
        return;
    e = add_entry(w, name);
    e->config = normalized;
    e->kind = kind;
    e->target = target_of(target_state);
}

/* Sets e's target state: pauses or resumes its tasks, or asks the main thread to start or stop
 * them. @locks w->lock held */
static void apply_target(rkb_worker_t *w, entry_t *e, rkb_target_t target) {
    rkb_target_t before = e->target;
    e->target = target;
    if (e->conn && target != RKB_TARGET_STOPPED && target != before)
        rkb_connector_pause(e->conn, target == RKB_TARGET_PAUSED);
    /* From STOPPED the tasks start again (paused, for a pause); a FAILED connector needs a
     * restart, as in Kafka Connect. */
    if (!e->conn && before == RKB_TARGET_STOPPED && target != RKB_TARGET_STOPPED && !e->trace)
        e->start = true;
    wake_main(w);
}

/* A change another worker wrote to the config topic (or one of this worker's that failed to
 * be acknowledged but was stored after all): applied like the request that wrote it, and only
 * when it changes something, so that the tasks of a connector whose config or state is already
 * the stored one keep running. @locality main thread @locks w->change_lock held */
static void on_change(const char *name, rkb_store_change_t what, json_t *config,
                      const char *target_state, void *opaque) {
    rkb_worker_t *w = opaque;
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    if (e && e->file) {
        if (what == RKB_STORE_CONFIG && config)
            file_wins(w, e);
    } else if (what == RKB_STORE_TARGET) {
        /* A removed target state (the first half of a delete) keeps the current one. */
        if (e && target_state && target_of(target_state) != e->target) {
            apply_target(w, e, target_of(target_state));
            rkb_log_info(name, "target state %s (from topic %s)", target_state,
                         rkb_store_topic(w->store));
        }
    } else if (!config) {
        if (e) {
            e->deleted = true;
            wake_main(w);
            rkb_log_info(name, "connector deleted in topic %s", rkb_store_topic(w->store));
        }
    } else {
        rkb_connector_kind_t kind;
        json_t *normalized = stored_config(w, name, config, &kind);
        if (normalized && (!e || !json_equal(e->config, normalized))) {
            bool created = !e;
            if (created) {
                e = add_entry(w, name);
                e->target = target_of(target_state);
            }
            json_decref(e->config);
            e->config = json_incref(normalized);
            e->kind = kind;
            free(e->trace);
            e->trace = NULL;
            e->start = true;
            wake_main(w);
            rkb_log_info(name, "connector %s in topic %s", created ? "created" : "updated",
                         rkb_store_topic(w->store));
        }
        json_decref(normalized);
    }
    pthread_mutex_unlock(&w->lock);
}

int rkb_worker_start(rkb_worker_t *w, bool required, char *errstr, size_t errstr_size) {
    w->store = rkb_store_open(w->conf, errstr, errstr_size);
    if (!w->store) {
        if (*errstr)
            return -1;
        rkb_log_info(COMPONENT, "no config topic (config.storage.topic, and kafka.bootstrap.servers "
                                "in the worker): connectors created over the REST API last until "
                                "the process ends");
        return 0;
    }
    pthread_mutex_lock(&w->lock);
    int rc = rkb_store_load(w->store, on_stored, w, errstr, errstr_size);
    if (rc && !required)
        w->store_error = rkb_strdup(errstr);
    pthread_mutex_unlock(&w->lock);
    return rc;
}

/* True (with errstr) when changes must be refused: the config topic was not read at start, so
 * a change stored now could shadow or be shadowed by what it holds. */
static bool store_unavailable(rkb_worker_t *w, char *errstr, size_t errstr_size) {
    if (!w->store_error)
        return false;
    snprintf(errstr, errstr_size,
             "connectors cannot be created or changed: the worker could not read its config "
             "topic at start (%s); restart it once the brokers answer",
             w->store_error);
    return true;
}

/* Starts entry e's connector from its config (the main thread, without the lock: config and
 * target are only changed by requests under the lock, so they are copied first). */
static void start_entry(rkb_worker_t *w, entry_t *e) {
    pthread_mutex_lock(&w->lock);
    json_t *config = json_deep_copy(e->config);
    bool paused = e->target == RKB_TARGET_PAUSED;
    char *file = e->file ? rkb_strdup(e->file) : NULL;
    pthread_mutex_unlock(&w->lock);

    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = conf_from_json(w, config, &errs);
    json_decref(config);
    char why[2048] = "";
    rkb_connector_t *conn = NULL;
    if (validate_conf(conf, &errs)) {
        invalid_message(&errs, why, sizeof(why));
        rkb_config_destroy(conf);
    } else {
        /* After validation, which refuses worker keys in a connector's config: ${worker}. */
        rkb_config_set(conf, "worker.id", w->worker_name, "worker", NULL);
        conn = rkb_connector_start(conf, paused, why, sizeof(why)); /* takes conf */
    }
    rkb_errors_clear(&errs);
    if (!conn)
        rkb_log_error(e->name, "%s%scannot start connector: %s", file ? file : "", file ? ": " : "",
                      why);
    free(file);

    pthread_mutex_lock(&w->lock);
    e->conn = conn;
    e->started_once = true;
    free(e->trace);
    e->trace = conn ? NULL : rkb_strdup(why);
    free(e->task_restart);
    e->task_restart =
        conn ? rkb_calloc(rkb_connector_task_count(conn) + 1, sizeof(*e->task_restart)) : NULL;
    pthread_mutex_unlock(&w->lock);
}

/* Stops connectors in order, all at once, then frees them. */
static void destroy_all(rkb_connector_t **conns, size_t cnt) {
    for (size_t i = 0; i < cnt; i++)
        rkb_connector_stop(conns[i]);
    for (size_t i = 0; i < cnt; i++)
        rkb_connector_destroy(conns[i]);
}

typedef struct task_ref_s {
    entry_t *e;
    size_t task_id;
} task_ref_t;

void rkb_worker_tick(rkb_worker_t *w, int wait_ms) {
    rkb_connector_t **stopping = NULL;
    entry_t **starting = NULL, **gone = NULL;
    task_ref_t *restarts = NULL;
    size_t stop_cnt = 0, start_cnt = 0, gone_cnt = 0, restart_cnt = 0;

    /* 0. What other workers changed in the config topic. Not when a request holds the change
     * lock (it may be waiting for the broker): the records wait in the tail until next time. */
    if (w->store && pthread_mutex_trylock(&w->change_lock) == 0) {
        rkb_store_poll(w->store, on_change, w);
        pthread_mutex_unlock(&w->change_lock);
    }

    /* 1. Pick up the work under the lock; connectors to stop leave their entries here. */
    pthread_mutex_lock(&w->lock);
    w->pending = false;
    stopping = rkb_calloc(w->cnt + 1, sizeof(*stopping));
    starting = rkb_calloc(w->cnt + 1, sizeof(*starting));
    gone = rkb_calloc(w->cnt + 1, sizeof(*gone));
    size_t kept = 0;
    for (size_t i = 0; i < w->cnt; i++) {
        entry_t *e = w->entries[i];
        bool restart = e->start || e->deleted || e->target == RKB_TARGET_STOPPED;
        if (e->conn && restart) {
            stopping[stop_cnt++] = e->conn;
            e->conn = NULL;
        }
        if (e->deleted) {
            gone[gone_cnt++] = e;
            continue;
        }
        w->entries[kept++] = e;
        if (e->start) {
            e->start = false;
            if (e->target != RKB_TARGET_STOPPED)
                starting[start_cnt++] = e;
            else
                e->started_once = true; /* created stopped: nothing to start */
        }
        for (size_t t = 0; e->conn && t < rkb_connector_task_count(e->conn); t++) {
            if (!e->task_restart[t])
                continue;
            restarts = rkb_realloc(restarts, (restart_cnt + 1) * sizeof(*restarts));
            restarts[restart_cnt++] = (task_ref_t){e, t};
        }
    }
    w->cnt = kept;
    pthread_mutex_unlock(&w->lock);

    /* 2. The slow part, without the lock. */
    destroy_all(stopping, stop_cnt);
    for (size_t i = 0; i < start_cnt; i++)
        start_entry(w, starting[i]);
    for (size_t i = 0; i < restart_cnt; i++) {
        char why[1024];
        /* e->conn is only replaced by this thread, so it is the one the flag was set on. */
        rkb_connector_restart_task(restarts[i].e->conn, restarts[i].task_id, why, sizeof(why));
        pthread_mutex_lock(&w->lock);
        restarts[i].e->task_restart[restarts[i].task_id] = false;
        pthread_mutex_unlock(&w->lock);
    }
    for (size_t i = 0; i < gone_cnt; i++) {
        rkb_log_info(gone[i]->name, "connector deleted");
        entry_free(gone[i]);
    }
    free(stopping);
    free(starting);
    free(gone);
    free(restarts);

    /* 3. Wait for the next request. */
    if (wait_ms <= 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->pending && pthread_cond_timedwait(&w->wake, &w->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&w->lock);
}

bool rkb_worker_idle(rkb_worker_t *w) {
    bool idle = true;
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->cnt && idle; i++) {
        entry_t *e = w->entries[i];
        if (e->start || e->deleted || e->target != RKB_TARGET_STARTED)
            idle = false;
        else if (e->conn && rkb_connector_running(e->conn))
            idle = false;
        for (size_t t = 0; idle && e->conn && t < rkb_connector_task_count(e->conn); t++)
            idle = !e->task_restart[t];
    }
    pthread_mutex_unlock(&w->lock);
    return idle;
}

int rkb_worker_shutdown(rkb_worker_t *w) {
    pthread_mutex_lock(&w->lock);
    rkb_connector_t **conns = rkb_calloc(w->cnt + 1, sizeof(*conns));
    bool *counted = rkb_calloc(w->cnt + 1, sizeof(*counted));
    size_t cnt = 0;
    int rc = 0;
    for (size_t i = 0; i < w->cnt; i++) {
        entry_t *e = w->entries[i];
        /* A connector deleted before the tick that would have removed it does not count. */
        if (e->trace && !e->deleted)
            rc = 1;
        if (e->conn) {
            counted[cnt] = !e->deleted;
            conns[cnt++] = e->conn;
            e->conn = NULL;
        }
    }
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < cnt; i++)
        rkb_connector_stop(conns[i]);
    for (size_t i = 0; i < cnt; i++) {
        /* Once its threads ended a task's state is final: one that FAILED, before or while
         * stopping, makes the exit code 1. */
        rkb_connector_wait(conns[i]);
        for (size_t t = 0; counted[i] && t < rkb_connector_task_count(conns[i]); t++)
            if (rkb_connector_task_state(conns[i], t) == RKB_TASK_FAILED)
                rc = 1;
        rkb_connector_destroy(conns[i]);
    }
    free(counted);
    free(conns);
    return rc;
}

void rkb_worker_destroy(rkb_worker_t *w) {
    if (!w)
        return;
    rkb_worker_shutdown(w);
    for (size_t i = 0; i < w->cnt; i++)
        entry_free(w->entries[i]);
    free(w->entries);
    rkb_store_destroy(w->store);
    free(w->store_error);
    rkb_config_destroy(w->conf);
    free(w->worker_id);
    free(w->worker_name);
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->change_lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}

/* ---- Kafka Connect's JSON shapes (@locks w->lock held) ---------------------------------------- */

static const char *kind_type(rkb_connector_kind_t kind) {
    return kind == RKB_CONNECTOR_SINK ? "sink" : kind == RKB_CONNECTOR_UNKNOWN ? "unknown" : "source";
}

/* The connector's own state (not its tasks'). */
static const char *connector_state(const entry_t *e) {
    if (e->trace)
        return "FAILED";
    if (e->target == RKB_TARGET_STOPPED)
        return "STOPPED";
    if (!e->conn)
        return e->started_once ? "RESTARTING" : "UNASSIGNED";
    return e->target == RKB_TARGET_PAUSED ? "PAUSED" : "RUNNING";
}

static rkb_task_state_t task_state(const entry_t *e, size_t t) {
    if (e->task_restart[t])
        return RKB_TASK_RESTARTING;
    return rkb_connector_task_state(e->conn, t);
}

static json_t *task_status_json(rkb_worker_t *w, entry_t *e, size_t t) {
    json_t *task = json_pack("{sI ss ss}", "id", (json_int_t)t, "state",
                             rkb_task_state_name(task_state(e, t)), "worker_id", w->worker_id);
    char trace[1024];
    if (rkb_connector_task_trace(e->conn, t, trace, sizeof(trace)) && trace[0])
        json_object_set_new(task, "trace", json_string(trace));
    return task;
}

/* ConnectorStateInfo. */
static json_t *status_json(rkb_worker_t *w, entry_t *e) {
    json_t *connector =
        json_pack("{ss ss}", "state", connector_state(e), "worker_id", w->worker_id);
    if (e->trace)
        json_object_set_new(connector, "trace", json_string(e->trace));
    json_t *tasks = json_array();
    for (size_t t = 0; e->conn && t < rkb_connector_task_count(e->conn); t++)
        json_array_append_new(tasks, task_status_json(w, e, t));
    return json_pack("{ss so so ss}", "name", e->name, "connector", connector, "tasks", tasks,
                     "type", kind_type(e->kind));
}

/* ConnectorInfo. */
static json_t *info_json(entry_t *e) {
    json_t *tasks = json_array();
    for (size_t t = 0; e->conn && t < rkb_connector_task_count(e->conn); t++)
        json_array_append_new(tasks, json_pack("{ss sI}", "connector", e->name, "task",
                                               (json_int_t)t));
    return json_pack("{ss sO so ss}", "name", e->name, "config", e->config, "tasks", tasks, "type",
                     kind_type(e->kind));
}

static int compare_names(const void *a, const void *b) {
    return strcmp((*(entry_t *const *)a)->name, (*(entry_t *const *)b)->name);
}

/* The entries not deleted, sorted by name (malloc'd; caller frees). @locks w->lock held */
static entry_t **sorted_entries(rkb_worker_t *w, size_t *cnt) {
    entry_t **sorted = rkb_calloc(w->cnt + 1, sizeof(*sorted));
    *cnt = 0;
    for (size_t i = 0; i < w->cnt; i++)
        if (!w->entries[i]->deleted)
            sorted[(*cnt)++] = w->entries[i];
    qsort(sorted, *cnt, sizeof(*sorted), compare_names);
    return sorted;
}

/* ---- Requests --------------------------------------------------------------------------------- */

json_t *rkb_worker_root(rkb_worker_t *w) {
    const char *cluster_id = w->store ? rkb_store_cluster_id(w->store) : NULL;
    return json_pack("{ss ss so}", "version", RKB_VERSION, "commit", "unknown",
                     "kafka_cluster_id", cluster_id ? json_string(cluster_id) : json_null());
}

json_t *rkb_worker_list(rkb_worker_t *w, bool expand_status, bool expand_info) {
    pthread_mutex_lock(&w->lock);
    size_t cnt;
    entry_t **sorted = sorted_entries(w, &cnt);
    json_t *out = expand_status || expand_info ? json_object() : json_array();
    for (size_t i = 0; i < cnt; i++) {
        entry_t *e = sorted[i];
        if (!json_is_object(out)) {
            json_array_append_new(out, json_string(e->name));
            continue;
        }
        json_t *item = json_object();
        if (expand_status)
            json_object_set_new(item, "status", status_json(w, e));
        if (expand_info)
            json_object_set_new(item, "info", info_json(e));
        json_object_set_new(out, e->name, item);
    }
    pthread_mutex_unlock(&w->lock);
    free(sorted);
    return out;
}

/* Runs fn on entry name under the lock. */
static rkb_worker_rc_t with_entry(rkb_worker_t *w, const char *name,
                                  json_t *(*fn)(rkb_worker_t *w, entry_t *e), json_t **out) {
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    *out = e ? fn(w, e) : NULL;
    pthread_mutex_unlock(&w->lock);
    return e ? RKB_WORKER_OK : RKB_WORKER_NOT_FOUND;
}

static json_t *info_of(rkb_worker_t *w, entry_t *e) {
    return info_json(e);
}

static json_t *config_of(rkb_worker_t *w, entry_t *e) {
    return json_deep_copy(e->config);
}

static json_t *tasks_of(rkb_worker_t *w, entry_t *e) {
    json_t *tasks = json_array();
    for (size_t t = 0; e->conn && t < rkb_connector_task_count(e->conn); t++)
        json_array_append_new(tasks, json_pack("{s{ss sI} sO}", "id", "connector", e->name, "task",
                                               (json_int_t)t, "config", e->config));
    return tasks;
}

rkb_worker_rc_t rkb_worker_info(rkb_worker_t *w, const char *name, json_t **out) {
    return with_entry(w, name, info_of, out);
}

rkb_worker_rc_t rkb_worker_get_config(rkb_worker_t *w, const char *name, json_t **out) {
    return with_entry(w, name, config_of, out);
}

rkb_worker_rc_t rkb_worker_status(rkb_worker_t *w, const char *name, json_t **out) {
    return with_entry(w, name, status_json, out);
}

rkb_worker_rc_t rkb_worker_tasks(rkb_worker_t *w, const char *name, json_t **out) {
    return with_entry(w, name, tasks_of, out);
}

rkb_worker_rc_t rkb_worker_task_status(rkb_worker_t *w, const char *name, int task_id,
                                       json_t **out) {
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    bool found = e && e->conn && task_id >= 0 &&
                 (size_t)task_id < rkb_connector_task_count(e->conn);
    *out = found ? task_status_json(w, e, (size_t)task_id) : NULL;
    pthread_mutex_unlock(&w->lock);
    return found ? RKB_WORKER_OK : RKB_WORKER_NOT_FOUND;
}

rkb_worker_rc_t rkb_worker_put(rkb_worker_t *w, const char *name, json_t *config,
                               bool create_only, json_t **out, char *errstr,
                               size_t errstr_size) {
    *out = NULL;
    if (!name_ok(name, errstr, errstr_size))
        return RKB_WORKER_INVALID;
    json_t *normalized = normalize_config(config, name, errstr, errstr_size);
    if (!normalized)
        return RKB_WORKER_INVALID;

    pthread_mutex_lock(&w->change_lock);
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    bool exists = e != NULL;
    char *file = e && e->file ? rkb_strdup(e->file) : NULL;
    pthread_mutex_unlock(&w->lock);

    rkb_worker_rc_t rc = RKB_WORKER_OK;
    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = NULL;
    if (!file && store_unavailable(w, errstr, errstr_size)) {
        rc = RKB_WORKER_UNAVAILABLE;
        goto done;
    }
    if (exists && create_only) {
        snprintf(errstr, errstr_size, "Connector %s already exists", name);
        rc = RKB_WORKER_CONFLICT;
        goto done;
    }
    conf = conf_from_json(w, normalized, &errs);
    if (validate_conf(conf, &errs)) {
        invalid_message(&errs, errstr, errstr_size);
        rc = RKB_WORKER_INVALID;
        goto done;
    }
    /* Stored before anything changes: a 2xx answer means the connector comes back after a
     * restart. A connector from a file is run from its file at every start instead. */
    char why[1024];
    if (w->store && !file && rkb_store_put_config(w->store, name, normalized, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "could not store the connector configuration: %s", why);
        rc = RKB_WORKER_STORE_FAILED;
        goto done;
    }
    if (file)
        rkb_log_warn(name, "configuration changed over the REST API; %s still holds the old one, "
                           "which is used again at the next start",
                     file);
    else if (!w->store)
        rkb_log_warn(name, "the worker has no config topic: this connector is not kept across "
                           "restarts");

    pthread_mutex_lock(&w->lock);
    e = find(w, name);
    if (!e)
        e = add_entry(w, name);
    json_decref(e->config);
    e->config = json_incref(normalized);
    e->kind = rkb_config_connector_kind(conf);
    free(e->trace);
    e->trace = NULL;
    e->start = true;
    *out = info_json(e);
    wake_main(w);
    pthread_mutex_unlock(&w->lock);
    rkb_log_info(name, "connector %s over the REST API", exists ? "updated" : "created");
    rc = exists ? RKB_WORKER_OK : RKB_WORKER_CREATED;

done:
    pthread_mutex_unlock(&w->change_lock);
    rkb_errors_clear(&errs);
    rkb_config_destroy(conf);
    json_decref(normalized);
    free(file);
    return rc;
}

rkb_worker_rc_t rkb_worker_set_target(rkb_worker_t *w, const char *name, rkb_target_t target,
                                      char *errstr, size_t errstr_size) {
    pthread_mutex_lock(&w->change_lock);
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    bool store = e && !e->file && w->store;
    pthread_mutex_unlock(&w->lock);
    rkb_worker_rc_t rc = RKB_WORKER_OK;
    char why[1024];
    if (!e) {
        rc = RKB_WORKER_NOT_FOUND;
    } else if (!e->file && store_unavailable(w, errstr, errstr_size)) {
        rc = RKB_WORKER_UNAVAILABLE;
    } else if (store && rkb_store_put_target(w->store, name, target_name(target), why,
                                             sizeof(why))) {
        snprintf(errstr, errstr_size, "could not store the connector's target state: %s", why);
        rc = RKB_WORKER_STORE_FAILED;
    } else {
        pthread_mutex_lock(&w->lock); /* e is still there: deletes take change_lock too */
        rkb_target_t before = e->target;
        apply_target(w, e, target);
        pthread_mutex_unlock(&w->lock);
        if (target != before)
            rkb_log_info(name, "target state %s", target_name(target));
    }
    pthread_mutex_unlock(&w->change_lock);
    return rc;
}

rkb_worker_rc_t rkb_worker_restart(rkb_worker_t *w, const char *name, bool include_tasks,
                                   bool only_failed, json_t **out) {
    if (out)
        *out = NULL;
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    if (!e) {
        pthread_mutex_unlock(&w->lock);
        return RKB_WORKER_NOT_FOUND;
    }
    /* rkbridge's connector object has nothing running beside its tasks: restarting it means
     * starting it again when it FAILED to start, and nothing otherwise. */
    bool connector_restarts = e->trace != NULL;
    if (connector_restarts) {
        free(e->trace);
        e->trace = NULL;
        e->start = true;
    }
    for (size_t t = 0; include_tasks && e->conn && t < rkb_connector_task_count(e->conn); t++)
        if (!only_failed || rkb_connector_task_state(e->conn, t) == RKB_TASK_FAILED)
            e->task_restart[t] = true;
    if (out && (include_tasks || only_failed)) {
        *out = status_json(w, e);
        if (connector_restarts)
            json_object_set_new(json_object_get(*out, "connector"), "state",
                                json_string("RESTARTING"));
    }
    wake_main(w);
    pthread_mutex_unlock(&w->lock);
    return RKB_WORKER_OK;
}

rkb_worker_rc_t rkb_worker_restart_task(rkb_worker_t *w, const char *name, int task_id) {
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    bool found = e && e->conn && task_id >= 0 &&
                 (size_t)task_id < rkb_connector_task_count(e->conn);
    if (found) {
        e->task_restart[task_id] = true;
        wake_main(w);
    }
    pthread_mutex_unlock(&w->lock);
    return found ? RKB_WORKER_OK : RKB_WORKER_NOT_FOUND;
}

rkb_worker_rc_t rkb_worker_delete(rkb_worker_t *w, const char *name, char *errstr,
                                  size_t errstr_size) {
    pthread_mutex_lock(&w->change_lock);
    pthread_mutex_lock(&w->lock);
    entry_t *e = find(w, name);
    bool store = e && !e->file && w->store;
    char *file = e && e->file ? rkb_strdup(e->file) : NULL;
    pthread_mutex_unlock(&w->lock);
    rkb_worker_rc_t rc = RKB_WORKER_OK;
    char why[1024];
    if (!e) {
        rc = RKB_WORKER_NOT_FOUND;
    } else if (!file && store_unavailable(w, errstr, errstr_size)) {
        rc = RKB_WORKER_UNAVAILABLE;
    } else if (store && rkb_store_delete(w->store, name, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "could not delete the stored connector: %s", why);
        rc = RKB_WORKER_STORE_FAILED;
    } else {
        if (file)
            rkb_log_warn(name, "deleted over the REST API; %s brings it back at the next start",
                         file);
        pthread_mutex_lock(&w->lock);
        e->deleted = true;
        wake_main(w);
        pthread_mutex_unlock(&w->lock);
    }
    free(file);
    pthread_mutex_unlock(&w->change_lock);
    return rc;
}

/* ---- Plugins and validation ------------------------------------------------------------------- */

json_t *rkb_worker_plugins(void) {
    size_t cnt;
    rkb_config_properties(&cnt);
    const rkb_property_t *prop = rkb_config_property_find("connector.class");
    json_t *out = json_array();
    for (const char *p = prop->enum_values; p && *p;) {
        const char *end = strchr(p, ',');
        char *class_name = end ? rkb_strndup(p, (size_t)(end - p)) : rkb_strdup(p);
        rkb_config_t *conf = rkb_config_new();
        rkb_config_set(conf, "connector.class", class_name, JSON_ORIGIN, NULL);
        json_array_append_new(out, json_pack("{ss ss ss}", "class", class_name, "type",
                                             kind_type(rkb_config_connector_kind(conf)),
                                             "version", RKB_VERSION));
        rkb_config_destroy(conf);
        free(class_name);
        p = end ? end + 1 : NULL;
    }
    return out;
}

static const char *definition_type(rkb_prop_type_t type) {
    switch (type) {
    case RKB_PROP_INT:
        return "LONG";
    case RKB_PROP_BOOL:
        return "BOOLEAN";
    case RKB_PROP_LIST:
        return "LIST";
    case RKB_PROP_PASSWORD:
        return "PASSWORD";
    default:
        return "STRING";
    }
}

static const char *group_of(unsigned scope) {
    if (scope == RKB_SCOPE_ALL)
        return "Common";
    if (scope == RKB_SCOPE_SINK)
        return "Sink";
    if (scope == RKB_SCOPE_SOURCE)
        return "Sources";
    if (scope == RKB_SCOPE_STREAM_SOURCE)
        return "Stream source";
    if (scope == RKB_SCOPE_KEYS_SOURCE)
        return "Keys source";
    return "Pub/sub source";
}

/* The ConfigInfo entry of key in configs, made on first use. */
static json_t *config_info(json_t *configs, json_t *groups, const char *key,
                           const rkb_property_t *prop, const json_t *submitted) {
    size_t i;
    json_t *item;
    json_array_foreach(configs, i, item) {
        if (!strcmp(json_string_value(json_object_get(json_object_get(item, "value"), "name")),
                    key))
            return item;
    }
    const char *group = prop ? group_of(prop->scope) : "Other";
    bool listed = false;
    json_t *g;
    json_array_foreach(groups, i, g) listed |= !strcmp(json_string_value(g), group);
    if (!listed)
        json_array_append_new(groups, json_string(group));

    json_t *value_json = json_null();
    const char *value = json_string_value(json_object_get(submitted, key));
    if (!value && prop)
        value = prop->default_value;
    if (value)
        value_json = json_string(prop && prop->type == RKB_PROP_PASSWORD && *value ? "[hidden]"
                                                                                   : value);
    bool required = prop && (prop->flags & RKB_PROP_F_REQUIRED);
    json_t *definition = json_pack(
        "{ss ss sb so ss ss ss sI ss ss s[]}", "name", key, "type",
        prop ? definition_type(prop->type) : "STRING", "required", required, "default_value",
        prop && prop->default_value ? json_string(prop->default_value) : json_null(), "importance",
        required ? "HIGH" : "MEDIUM", "documentation", prop ? prop->doc : "", "group", group,
        "order_in_group", (json_int_t)json_array_size(configs), "width", "NONE", "display_name",
        key, "dependents");
    json_t *value_info = json_pack("{ss so s[] s[] sb}", "name", key, "value", value_json,
                                   "recommended_values", "errors", "visible", 1);
    item = json_pack("{so so}", "definition", definition, "value", value_info);
    json_array_append_new(configs, item);
    return item;
}

/* "ORIGIN: KEY: why" → KEY (malloc'd), or NULL when the line has no key. */
static char *key_of(const char *msg) {
    const char *start = strstr(msg, ": ");
    if (!start)
        return NULL;
    start += 2;
    const char *end = strstr(start, ": ");
    return end ? rkb_strndup(start, (size_t)(end - start)) : NULL;
}

rkb_worker_rc_t rkb_worker_validate(rkb_worker_t *w, const char *plugin, json_t *config,
                                    json_t **out, char *errstr, size_t errstr_size) {
    *out = NULL;
    if (!json_is_object(config)) {
        snprintf(errstr, errstr_size, "the connector config must be a JSON object");
        return RKB_WORKER_INVALID;
    }
    rkb_config_t *probe = rkb_config_new();
    rkb_config_set(probe, "connector.class", plugin, JSON_ORIGIN, NULL);
    rkb_connector_kind_t kind = rkb_config_connector_kind(probe);
    const char *plugin_class = kind ? rkb_config_get(probe, "connector.class") : NULL;
    char *canonical = plugin_class ? rkb_strdup(plugin_class) : NULL;
    rkb_config_destroy(probe);
    if (!kind) {
        snprintf(errstr, errstr_size,
                 "Failed to find any class that implements Connector and which name matches %s",
                 plugin);
        return RKB_WORKER_INVALID;
    }
    json_t *submitted = json_object();
    const char *key;
    json_t *value;
    json_object_foreach(config, key, value) {
        if (json_is_string(value))
            json_object_set(submitted, key, value);
        else if (!json_is_null(value)) {
            char *text = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
            json_object_set_new(submitted, key, json_string(text));
            free(text);
        }
    }
    const char *included = json_string_value(json_object_get(submitted, "connector.class"));
    if (included) {
        rkb_config_t *check = rkb_config_new();
        rkb_config_set(check, "connector.class", included, JSON_ORIGIN, NULL);
        bool same = rkb_config_connector_kind(check) == kind;
        rkb_config_destroy(check);
        if (!same) {
            snprintf(errstr, errstr_size,
                     "Included connector type %s does not match request type %s", included,
                     plugin);
            json_decref(submitted);
            free(canonical);
            return RKB_WORKER_INVALID;
        }
    } else {
        json_object_set_new(submitted, "connector.class", json_string(canonical));
    }

    rkb_errors_t errs;
    rkb_errors_init(&errs);
    rkb_config_t *conf = conf_from_json(w, submitted, &errs);
    validate_conf(conf, &errs);

    json_t *configs = json_array(), *groups = json_array();
    size_t cnt;
    const rkb_property_t *props = rkb_config_properties(&cnt);
    unsigned scope = rkb_connector_kind_scope(kind);
    for (size_t i = 0; i < cnt; i++)
        if (props[i].scope & scope)
            config_info(configs, groups, props[i].name, &props[i], submitted);
    json_object_foreach(submitted, key, value) {
        const rkb_property_t *prop = rkb_config_property_find(key);
        config_info(configs, groups, prop ? prop->name : key, prop, submitted);
    }
    for (size_t i = 0; i < errs.cnt; i++) {
        char *error_key = key_of(errs.msgs[i]);
        const rkb_property_t *prop = error_key ? rkb_config_property_find(error_key) : NULL;
        json_t *item = config_info(configs, groups,
                                   prop ? prop->name : error_key ? error_key : "connector.class",
                                   prop, submitted);
        json_array_append_new(json_object_get(json_object_get(item, "value"), "errors"),
                              json_string(without_origin(errs.msgs[i])));
        free(error_key);
    }
    *out = json_pack("{ss sI so so}", "name", canonical, "error_count", (json_int_t)errs.cnt,
                     "groups", groups, "configs", configs);
    rkb_errors_clear(&errs);
    rkb_config_destroy(conf);
    json_decref(submitted);
    free(canonical);
    return RKB_WORKER_OK;
}

/* ---- Metrics, health, summary ----------------------------------------------------------------- */

static const rkb_metric_family_t fam_connector_state = {
    "rkbridge_connector_state", RKB_METRIC_GAUGE,
    "1 for the connector's current state (Kafka Connect's connector states), 0 for the others"};

void rkb_worker_scrape(rkb_worker_t *w, rkb_scrape_t *s) {
    static const char *const states[] = {"UNASSIGNED", "RUNNING",    "PAUSED",
                                         "FAILED",     "RESTARTING", "STOPPED"};
    pthread_mutex_lock(&w->lock);
    size_t cnt;
    entry_t **sorted = sorted_entries(w, &cnt);
    for (size_t i = 0; i < cnt; i++) {
        const char *current = connector_state(sorted[i]);
        for (size_t j = 0; j < RKB_ARRAY_SIZE(states); j++) {
            const char *labels[] = {"connector", sorted[i]->name, "state", states[j], NULL};
            rkb_scrape_add(s, &fam_connector_state, labels, !strcmp(states[j], current));
        }
    }
    for (size_t i = 0; i < cnt; i++)
        if (sorted[i]->conn)
            rkb_connector_scrape(sorted[i]->conn, s);
    pthread_mutex_unlock(&w->lock);
    free(sorted);
}

json_t *rkb_worker_health(rkb_worker_t *w, bool *ready) {
    *ready = true;
    rkb_buf_t why;
    rkb_buf_init(&why);
    json_t *connectors = json_object();
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->cnt; i++) {
        entry_t *e = w->entries[i];
        if (e->deleted)
            continue;
        const char *state = connector_state(e);
        bool ok = !strcmp(state, "RUNNING") || !strcmp(state, "PAUSED");
        rkb_buf_t reason;
        rkb_buf_init(&reason);
        if (!ok)
            rkb_buf_appendf(&reason, "connector %s", state);
        for (size_t t = 0; ok && e->conn && t < rkb_connector_task_count(e->conn); t++) {
            rkb_task_state_t ts = task_state(e, t);
            rkb_task_summary_t sum;
            rkb_connector_task_summary(e->conn, t, &sum);
            if (ts != RKB_TASK_RUNNING && ts != RKB_TASK_PAUSED) {
                rkb_buf_appendf(&reason, "task %zu %s", t, rkb_task_state_name(ts));
                ok = false;
            } else if (sum.redis_down) {
                rkb_buf_appendf(&reason, "task %zu: Redis connection down", t);
                ok = false;
            }
        }
        json_t *item = json_pack("{ss sb}", "state", state, "ready", ok);
        if (!ok) {
            json_object_set_new(item, "reason", json_string(reason.data));
            rkb_buf_appendf(&why, "%s%s: %s", why.len ? "; " : "", e->name, reason.data);
            *ready = false;
        }
        rkb_buf_free(&reason);
        json_object_set_new(connectors, e->name, item);
    }
    pthread_mutex_unlock(&w->lock);
    json_t *out = json_pack("{ss ss so}", "status", *ready ? "healthy" : "unhealthy", "message",
                            *ready ? "Worker has completed startup and is ready to handle requests"
                                   : why.data,
                            "connectors", connectors);
    rkb_buf_free(&why);
    return out;
}

void rkb_worker_summary(rkb_worker_t *w, rkb_worker_summary_t *out) {
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < w->cnt; i++) {
        entry_t *e = w->entries[i];
        if (e->deleted)
            continue;
        out->connectors++;
        for (size_t t = 0; e->conn && t < rkb_connector_task_count(e->conn); t++) {
            rkb_task_state_t state = task_state(e, t);
            out->tasks_running += state == RKB_TASK_RUNNING;
            out->tasks_paused += state == RKB_TASK_PAUSED;
            out->tasks_failed += state == RKB_TASK_FAILED;
            rkb_task_summary_t sum;
            rkb_connector_task_summary(e->conn, t, &sum);
            out->records_written += sum.counts.records_written;
            out->records_failed += sum.counts.records_failed;
            out->backlog += sum.backlog;
        }
    }
    pthread_mutex_unlock(&w->lock);
}
