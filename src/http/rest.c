/*
 * rest.c — the routes of the REST API: Kafka Connect's paths, statuses and JSON shapes over the
 * worker (connect/worker.h), plus GET /metrics (Prometheus text) and GET /health.
 *
 * Statuses as Kafka Connect answers them: 201 for a new connector, 202 for pause, resume, stop
 * and a restart with includeTasks/onlyFailed (with the status to be), 204 for a plain restart and
 * a delete, 404 for an unknown connector or task, 409 for a name taken, 400 for an invalid
 * request or config, 500 when the config topic cannot be written, 503 when it could not be read
 * at start.
 */
#include "http/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A worker outcome other than OK/CREATED as an error answer. */
static void worker_error(rkb_http_req_t *req, rkb_worker_rc_t rc, const char *name,
                         const char *errstr) {
    const char *why = errstr && *errstr ? errstr : "internal error";
    switch (rc) {
    case RKB_WORKER_NOT_FOUND:
        rkb_http_error(req, 404, "Connector %s not found", name);
        break;
    case RKB_WORKER_CONFLICT:
        rkb_http_error(req, 409, "%s", why);
        break;
    case RKB_WORKER_INVALID:
        rkb_http_error(req, 400, "%s", why);
        break;
    case RKB_WORKER_UNAVAILABLE:
        rkb_http_error(req, 503, "%s", why);
        break;
    default:
        rkb_http_error(req, 500, "%s", why);
        break;
    }
}

/* The request body as JSON, or NULL after answering 400. */
static json_t *body_json(rkb_http_req_t *req) {
    json_error_t error;
    json_t *body = json_loadb(req->body, req->body_len, 0, &error);
    if (!body)
        rkb_http_error(req, 400, "The request body is not valid JSON: %s (line %d, column %d)",
                       error.text, error.line, error.column);
    return body;
}

/* A true/false query argument (absent: false). Returns -1 after answering 400. */
static int bool_arg(rkb_http_req_t *req, const char *name) {
    const char *value = rkb_http_arg(req, name);
    if (!value)
        return 0;
    if (!strcasecmp(value, "true") || !*value)
        return 1;
    if (!strcasecmp(value, "false"))
        return 0;
    rkb_http_error(req, 400, "%s must be true or false, got '%s'", name, value);
    return -1;
}

/* A task id from the path, or -1 (then no task has it). */
static int task_id(const char *text) {
    int64_t id;
    return rkb_parse_int64(text, 0, 100000, &id) ? -1 : (int)id;
}

/* ---- Handlers --------------------------------------------------------------------------------- */

static void get_root(rkb_http_req_t *req, char **params) {
    rkb_http_json(req, 200, rkb_worker_root(req->worker));
}

static void list_connectors(rkb_http_req_t *req, char **params) {
    bool status = rkb_http_arg_has(req, "expand", "status");
    bool info = rkb_http_arg_has(req, "expand", "info");
    rkb_http_json(req, 200, rkb_worker_list(req->worker, status, info));
}

static void put_config_as(rkb_http_req_t *req, const char *name, json_t *config,
                          bool create_only) {
    char errstr[8192] = "";
    json_t *info = NULL;
    rkb_worker_rc_t rc =
        rkb_worker_put(req->worker, name, config, create_only, &info, errstr, sizeof(errstr));
    if (rc != RKB_WORKER_OK && rc != RKB_WORKER_CREATED) {
        worker_error(req, rc, name, errstr);
        return;
    }
    if (rc == RKB_WORKER_CREATED) {
        rkb_buf_t location;
        rkb_buf_init(&location);
        rkb_buf_appendf(&location, "/connectors/%s", name);
        req->location = location.data;
    }
    rkb_http_json(req, rc == RKB_WORKER_CREATED ? 201 : 200, info);
}

/* POST /connectors {"name": ..., "config": {...}} */
static void create_connector(rkb_http_req_t *req, char **params) {
    json_t *body = body_json(req);
    if (!body)
        return;
    json_t *config = json_object_get(body, "config");
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name)
        name = json_string_value(json_object_get(config, "name"));
    if (!json_is_object(body) || !json_is_object(config))
        rkb_http_error(req, 400, "The request body must be {\"name\": ..., \"config\": {...}}");
    else if (!name || !*name)
        rkb_http_error(req, 400, "Connector name is required");
    else
        put_config_as(req, name, config, true);
    json_decref(body);
}

static void get_connector(rkb_http_req_t *req, char **params) {
    json_t *out;
    rkb_worker_rc_t rc = rkb_worker_info(req->worker, params[0], &out);
    if (rc)
        worker_error(req, rc, params[0], NULL);
    else
        rkb_http_json(req, 200, out);
}

static void delete_connector(rkb_http_req_t *req, char **params) {
    char errstr[2048] = "";
    rkb_worker_rc_t rc = rkb_worker_delete(req->worker, params[0], errstr, sizeof(errstr));
    if (rc)
        worker_error(req, rc, params[0], errstr);
    else
        rkb_http_empty(req, 204);
}

static void get_config(rkb_http_req_t *req, char **params) {
    json_t *out;
    rkb_worker_rc_t rc = rkb_worker_get_config(req->worker, params[0], &out);
    if (rc)
        worker_error(req, rc, params[0], NULL);
    else
        rkb_http_json(req, 200, out);
}

/* PUT /connectors/NAME/config {...}: creates or updates. */
static void put_config(rkb_http_req_t *req, char **params) {
    json_t *config = body_json(req);
    if (!config)
        return;
    if (!json_is_object(config))
        rkb_http_error(req, 400, "The request body must be the connector config, a JSON object");
    else
        put_config_as(req, params[0], config, false);
    json_decref(config);
}

static void get_status(rkb_http_req_t *req, char **params) {
    json_t *out;
    rkb_worker_rc_t rc = rkb_worker_status(req->worker, params[0], &out);
    if (rc)
        worker_error(req, rc, params[0], NULL);
    else
        rkb_http_json(req, 200, out);
}

static void set_target(rkb_http_req_t *req, const char *name, rkb_target_t target) {
    char errstr[2048] = "";
    rkb_worker_rc_t rc = rkb_worker_set_target(req->worker, name, target, errstr, sizeof(errstr));
    if (rc)
        worker_error(req, rc, name, errstr);
    else
        rkb_http_empty(req, 202);
}

static void pause_connector(rkb_http_req_t *req, char **params) {
    set_target(req, params[0], RKB_TARGET_PAUSED);
}

static void resume_connector(rkb_http_req_t *req, char **params) {
    set_target(req, params[0], RKB_TARGET_STARTED);
}

static void stop_connector(rkb_http_req_t *req, char **params) {
    set_target(req, params[0], RKB_TARGET_STOPPED);
}

/* POST /connectors/NAME/restart?includeTasks=&onlyFailed= (KIP-745). */
static void restart_connector(rkb_http_req_t *req, char **params) {
    int include_tasks = bool_arg(req, "includeTasks");
    if (include_tasks < 0)
        return;
    int only_failed = bool_arg(req, "onlyFailed");
    if (only_failed < 0)
        return;
    json_t *status = NULL;
    rkb_worker_rc_t rc =
        rkb_worker_restart(req->worker, params[0], include_tasks, only_failed, &status);
    if (rc)
        worker_error(req, rc, params[0], NULL);
    else if (status)
        rkb_http_json(req, 202, status);
    else
        rkb_http_empty(req, 204);
}

static void get_tasks(rkb_http_req_t *req, char **params) {
    json_t *out;
    rkb_worker_rc_t rc = rkb_worker_tasks(req->worker, params[0], &out);
    if (rc)
        worker_error(req, rc, params[0], NULL);
    else
        rkb_http_json(req, 200, out);
}

static void task_not_found(rkb_http_req_t *req, const char *name, const char *id) {
    json_t *ignored;
    if (rkb_worker_info(req->worker, name, &ignored) == RKB_WORKER_NOT_FOUND) {
        rkb_http_error(req, 404, "Connector %s not found", name);
        return;
    }
    json_decref(ignored);
    rkb_http_error(req, 404, "Task %s of connector %s not found", id, name);
}

static void get_task_status(rkb_http_req_t *req, char **params) {
    json_t *out;
    if (rkb_worker_task_status(req->worker, params[0], task_id(params[1]), &out))
        task_not_found(req, params[0], params[1]);
    else
        rkb_http_json(req, 200, out);
}

static void restart_task(rkb_http_req_t *req, char **params) {
    if (rkb_worker_restart_task(req->worker, params[0], task_id(params[1])))
        task_not_found(req, params[0], params[1]);
    else
        rkb_http_empty(req, 204);
}

static void list_plugins(rkb_http_req_t *req, char **params) {
    rkb_http_json(req, 200, rkb_worker_plugins());
}

/* PUT /connector-plugins/CLASS/config/validate {...} */
static void validate_config(rkb_http_req_t *req, char **params) {
    json_t *config = body_json(req);
    if (!config)
        return;
    char errstr[2048] = "";
    json_t *out = NULL;
    rkb_worker_rc_t rc =
        rkb_worker_validate(req->worker, params[0], config, &out, errstr, sizeof(errstr));
    json_decref(config);
    if (rc)
        worker_error(req, rc, params[0], errstr);
    else
        rkb_http_json(req, 200, out);
}

static void get_metrics(rkb_http_req_t *req, char **params) {
    rkb_scrape_t *scrape = rkb_scrape_new();
    rkb_worker_scrape(req->worker, scrape);
    rkb_http_scrape(req->server, scrape);
    rkb_buf_t text;
    rkb_buf_init(&text);
    rkb_buf_appends(&text, "");
    rkb_scrape_render(scrape, &text);
    rkb_scrape_destroy(scrape);
    rkb_http_text(req, 200, "text/plain; version=0.0.4; charset=utf-8", text.data, text.len);
    rkb_buf_free(&text);
}

/* Readiness: 200 when every connector and task is RUNNING or PAUSED with its Redis connections
 * up, else 503 saying what is not. */
static void get_health(rkb_http_req_t *req, char **params) {
    bool ready;
    json_t *health = rkb_worker_health(req->worker, &ready);
    if (ready) {
        rkb_http_json(req, 200, health);
        return;
    }
    /* Not ready is an error answer like any other (and counted), with the details kept. */
    char *message = rkb_strdup(json_string_value(json_object_get(health, "message")));
    rkb_http_error_with(req, 503, health, "%s", message);
    free(message);
}

/* Liveness: the process answers. */
static void get_live(rkb_http_req_t *req, char **params) {
    rkb_http_json(req, 200,
                  json_pack("{ss ss}", "status", "healthy", "message", "rkbridge is running"));
}

static const rkb_http_route_t routes[] = {
    {"GET", "/", get_root},
    {"GET", "/connectors", list_connectors},
    {"POST", "/connectors", create_connector},
    {"GET", "/connectors/*", get_connector},
    {"DELETE", "/connectors/*", delete_connector},
    {"GET", "/connectors/*/config", get_config},
    {"PUT", "/connectors/*/config", put_config},
    {"GET", "/connectors/*/status", get_status},
    {"POST", "/connectors/*/restart", restart_connector},
    {"PUT", "/connectors/*/pause", pause_connector},
    {"PUT", "/connectors/*/resume", resume_connector},
    {"PUT", "/connectors/*/stop", stop_connector},
    {"GET", "/connectors/*/tasks", get_tasks},
    {"GET", "/connectors/*/tasks/*/status", get_task_status},
    {"POST", "/connectors/*/tasks/*/restart", restart_task},
    {"GET", "/connector-plugins", list_plugins},
    {"PUT", "/connector-plugins/*/config/validate", validate_config},
    {"GET", "/metrics", get_metrics},
    {"GET", "/health", get_health},
    {"GET", "/health/live", get_live},
};

void rkb_rest_handle(rkb_http_req_t *req) {
    rkb_http_route(req, routes, sizeof(routes) / sizeof(routes[0]));
}
