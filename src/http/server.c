/*
 * server.c — libmicrohttpd glue for the REST API (see http.h): binding, the authentication and
 * body-size gate, percent-decoding, routing, answers and the error family.
 *
 * A request's life: first call (headers only) → the gate (401, 413 by Content-Length: answered
 * at once, the body is never read); body chunks → collected up to rest.request.max.bytes (past
 * it only counted, then 413); last call → decode the path and query, route (rest.c), send.
 */
#include "http/http_int.h"

#include "util/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define COMPONENT          "rest"
#define CONNECTION_LIMIT   64
#define CONNECTION_TIMEOUT 60 /* seconds an idle connection stays open */

struct rkb_http_s {
    struct MHD_Daemon *daemon;
    rkb_worker_t *worker;
    char *auth_token; /* NULL: none */
    size_t max_body;
    char address[300];
    _Atomic uint64_t requests;
    _Atomic uint64_t errors[600]; /* by status */
};

/* What one request collects across the access handler's calls. */
typedef struct pending_s {
    rkb_buf_t body;
    bool too_large;
} pending_t;

/* ---- Answers and the error family ------------------------------------------------------------- */

static void answer(rkb_http_req_t *req, int status, const char *content_type) {
    req->status = status;
    req->content_type = content_type;
    req->answered = true;
}

void rkb_http_json(rkb_http_req_t *req, int status, json_t *body) {
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    rkb_buf_reset(&req->out);
    rkb_buf_appends(&req->out, text ? text : "null");
    free(text);
    json_decref(body);
    answer(req, status, "application/json");
}

void rkb_http_text(rkb_http_req_t *req, int status, const char *content_type, const char *text,
                   size_t len) {
    rkb_buf_reset(&req->out);
    rkb_buf_append(&req->out, text, len);
    answer(req, status, content_type);
}

void rkb_http_empty(rkb_http_req_t *req, int status) {
    rkb_buf_reset(&req->out);
    answer(req, status, NULL);
}

/* Counts an error answer; the one place that does, so that GET /metrics sees every error a
 * client saw (the gate's included). */
static void count_error(rkb_http_t *server, int status) {
    if (status >= 400 && status < 600)
        atomic_fetch_add(&server->errors[status], 1);
}

static void error_answer(rkb_http_req_t *req, int status, json_t *fields, const char *fmt,
                         va_list ap) {
    char message[8192];
    vsnprintf(message, sizeof(message), fmt, ap);
    json_t *body = fields ? fields : json_object();
    json_object_set_new(body, "error_code", json_integer(status));
    json_object_set_new(body, "message", json_string(message));
    rkb_http_json(req, status, body);
    count_error(req->server, status);
    if (status >= 500 && status != 503)
        rkb_log_warn(COMPONENT, "%s: %d %s", req->method, status, message);
}

void rkb_http_error(rkb_http_req_t *req, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_answer(req, status, NULL, fmt, ap);
    va_end(ap);
}

void rkb_http_error_with(rkb_http_req_t *req, int status, json_t *fields, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_answer(req, status, fields, fmt, ap);
    va_end(ap);
}

static const rkb_metric_family_t fam_requests = {"rkbridge_rest_requests_total",
                                                 RKB_METRIC_COUNTER,
                                                 "REST API requests answered"};
static const rkb_metric_family_t fam_errors = {
    "rkbridge_rest_errors_total", RKB_METRIC_COUNTER,
    "REST API requests answered with an error, by HTTP status"};

void rkb_http_scrape(rkb_http_t *server, rkb_scrape_t *s) {
    rkb_scrape_add(s, &fam_requests, NULL, (double)atomic_load(&server->requests));
    for (int status = 400; status < 600; status++) {
        uint64_t cnt = atomic_load(&server->errors[status]);
        if (!cnt)
            continue;
        char code[8];
        snprintf(code, sizeof(code), "%d", status);
        const char *labels[] = {"code", code, NULL};
        rkb_scrape_add(s, &fam_errors, labels, (double)cnt);
    }
}

/* ---- Requests --------------------------------------------------------------------------------- */

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes len bytes of s ('+' as a space in query strings); a '%' not followed by two
 * hex digits stays as it is. Returns a malloc'd string. */
static char *decode(const char *s, size_t len, bool plus_is_space) {
    char *out = rkb_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
            out[n++] = (char)(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else if (plus_is_space && s[i] == '+') {
            out[n++] = ' ';
        } else {
            out[n++] = s[i];
        }
    }
    out[n] = '\0';
    return out;
}

static void split_path(rkb_http_req_t *req, const char *url) {
    for (const char *p = url; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        req->segments = rkb_realloc(req->segments, (req->segment_cnt + 1) * sizeof(char *));
        req->segments[req->segment_cnt++] = decode(p, len, false);
        p += len;
    }
}

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    rkb_http_req_t *req = cls;
    req->args = rkb_realloc(req->args, (req->arg_cnt + 1) * 2 * sizeof(char *));
    req->args[2 * req->arg_cnt] = decode(key, strlen(key), true);
    req->args[2 * req->arg_cnt + 1] = decode(value ? value : "", value ? strlen(value) : 0, true);
    req->arg_cnt++;
    return MHD_YES;
}

const char *rkb_http_arg(const rkb_http_req_t *req, const char *name) {
    for (size_t i = 0; i < req->arg_cnt; i++)
        if (!strcmp(req->args[2 * i], name))
            return req->args[2 * i + 1];
    return NULL;
}

bool rkb_http_arg_has(const rkb_http_req_t *req, const char *name, const char *value) {
    for (size_t i = 0; i < req->arg_cnt; i++)
        if (!strcmp(req->args[2 * i], name) && !strcmp(req->args[2 * i + 1], value))
            return true;
    return false;
}

static void req_free(rkb_http_req_t *req) {
    for (size_t i = 0; i < req->segment_cnt; i++)
        free(req->segments[i]);
    free(req->segments);
    for (size_t i = 0; i < 2 * req->arg_cnt; i++)
        free(req->args[i]);
    free(req->args);
    free(req->location);
    rkb_buf_free(&req->out);
}

/* ---- Routing ---------------------------------------------------------------------------------- */

/* Fills params with the segments the pattern's "*" stand for; true when the path matches. */
static bool route_matches(const rkb_http_req_t *req, const char *pattern, char **params) {
    size_t seg = 0, param = 0;
    for (const char *p = pattern; *p;) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, "/");
        if (seg == req->segment_cnt)
            return false;
        if (len == 1 && *p == '*')
            params[param++] = req->segments[seg];
        else if (strlen(req->segments[seg]) != len || strncmp(req->segments[seg], p, len))
            return false;
        seg++;
        p += len;
    }
    return seg == req->segment_cnt;
}

void rkb_http_route(rkb_http_req_t *req, const rkb_http_route_t *routes, size_t route_cnt) {
    bool path_known = false;
    char *params[8];
    rkb_buf_t methods;
    rkb_buf_init(&methods);
    rkb_buf_appends(&methods, "");
    for (size_t i = 0; i < route_cnt; i++) {
        if (!route_matches(req, routes[i].pattern, params))
            continue;
        if (!strcmp(routes[i].method, req->method)) {
            rkb_buf_free(&methods);
            routes[i].handler(req, params);
            return;
        }
        path_known = true;
        rkb_buf_appendf(&methods, "%s%s", methods.len ? ", " : "", routes[i].method);
    }
    if (path_known) {
        snprintf(req->allow, sizeof(req->allow), "%s", methods.data);
        rkb_http_error(req, 405, "HTTP 405 Method Not Allowed");
    } else {
        rkb_http_error(req, 404, "HTTP 404 Not Found");
    }
    rkb_buf_free(&methods);
}

/* ---- libmicrohttpd ---------------------------------------------------------------------------- */

static enum MHD_Result send_answer(struct MHD_Connection *connection, rkb_http_req_t *req) {
    struct MHD_Response *response =
        MHD_create_response_from_buffer(req->out.len, req->out.data, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    if (req->content_type)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, req->content_type);
    if (req->status == 401)
        MHD_add_response_header(response, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (req->allow[0])
        MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, req->allow);
    if (req->location)
        MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, req->location);
    enum MHD_Result rc = MHD_queue_response(connection, (unsigned)req->status, response);
    MHD_destroy_response(response);
    atomic_fetch_add(&req->server->requests, 1);
    return rc;
}

/* Compares in time independent of where the first difference is. */
static bool same_secret(const char *a, const char *b) {
    size_t a_len = strlen(a), b_len = strlen(b);
    unsigned char diff = a_len != b_len;
    for (size_t i = 0; i < a_len; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (b_len ? b_len : 1)]);
    return diff == 0;
}

/* The gate, on the first call: a missing or wrong token (401), or a body announced too large
 * (413). Returns the status to answer at once, or 0. */
static int gate(rkb_http_t *server, struct MHD_Connection *connection) {
    if (server->auth_token) {
        const char *auth =
            MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (!auth || strncasecmp(auth, "Bearer ", 7) || !same_secret(auth + 7, server->auth_token))
            return 401;
    }
    const char *length =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t announced;
    if (length && rkb_parse_int64(length, 0, INT64_MAX, &announced) == 0 &&
        (uint64_t)announced > server->max_body)
        return 413;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    rkb_http_t *server = cls;
    rkb_http_req_t req = {.server = server, .worker = server->worker, .method = method};
    rkb_buf_init(&req.out);
    pending_t *pending = *con_cls;
    if (!pending) {
        pending = rkb_calloc(1, sizeof(*pending));
        rkb_buf_init(&pending->body);
        *con_cls = pending;
        int status = gate(server, connection);
        if (!status)
            return MHD_YES; /* the body, if any, comes next */
        if (status == 401)
            rkb_http_error(&req, 401, "Authorization: Bearer TOKEN is required, with the token "
                                      "of the worker's rest.auth.token");
        else
            rkb_http_error(&req, 413, "The request body is larger than rest.request.max.bytes "
                                      "(%zu bytes)",
                           server->max_body);
        enum MHD_Result rc = send_answer(connection, &req); /* the body is never read */
        req_free(&req);
        return rc;
    }
    if (*upload_data_size) {
        if (pending->body.len + *upload_data_size > server->max_body)
            pending->too_large = true; /* chunked or lying about its length: stop keeping it */
        else
            rkb_buf_append(&pending->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }

    rkb_buf_appends(&pending->body, ""); /* NUL-terminated, also when empty */
    req.body = pending->body.data;
    req.body_len = pending->body.len;
    if (pending->too_large) {
        rkb_http_error(&req, 413, "The request body is larger than rest.request.max.bytes (%zu "
                                  "bytes)",
                       server->max_body);
    } else {
        split_path(&req, url);
        MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_arg, &req);
        rkb_rest_handle(&req);
        if (!req.answered)
            rkb_http_error(&req, 500, "no answer");
    }
    enum MHD_Result rc = send_answer(connection, &req);
    req_free(&req);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    pending_t *pending = *con_cls;
    if (!pending)
        return;
    rkb_buf_free(&pending->body);
    free(pending);
    *con_cls = NULL;
}

/* Keeps the path and query as they came: rest.c splits the path at '/' first and decodes each
 * segment after, so that a connector name may hold an encoded '/'. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s) {
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    char line[1024];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    rkb_log_warn(COMPONENT, "libmicrohttpd: %s", line);
}

rkb_http_t *rkb_http_start(const rkb_http_conf_t *conf, char *errstr, size_t errstr_size) {
    char *host = NULL;
    int port = 0;
    char why[256];
    if (rkb_config_listener(conf->listener, &host, &port, why, sizeof(why))) {
        snprintf(errstr, errstr_size, "listeners %s: %s", conf->listener, why);
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *addrs = NULL;
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%d", port);
    int gai = getaddrinfo(host, port_text, &hints, &addrs);
    if (gai || !addrs) {
        snprintf(errstr, errstr_size, "listeners %s: cannot resolve %s: %s", conf->listener,
                 host, gai ? gai_strerror(gai) : "no address");
        free(host);
        return NULL;
    }

    rkb_http_t *server = rkb_calloc(1, sizeof(*server));
    server->worker = conf->worker;
    server->max_body = conf->max_body;
    server->auth_token =
        conf->auth_token && *conf->auth_token ? rkb_strdup(conf->auth_token) : NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (addrs->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    server->daemon = MHD_start_daemon(
        flags, (uint16_t)port, NULL, NULL, on_request, server, MHD_OPTION_EXTERNAL_LOGGER,
        mhd_log, NULL, MHD_OPTION_SOCK_ADDR, addrs->ai_addr, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK,
        keep_escaped, NULL, MHD_OPTION_END);
    freeaddrinfo(addrs);
    if (!server->daemon) {
        snprintf(errstr, errstr_size, "cannot listen on %s (in use, or not an address of this "
                                      "host)",
                 conf->listener);
        free(host);
        rkb_http_stop(server);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(server->daemon,
                                                           MHD_DAEMON_INFO_BIND_PORT);
    bool ipv6 = strchr(host, ':') != NULL;
    snprintf(server->address, sizeof(server->address), "%s%s%s:%u", ipv6 ? "[" : "", host,
             ipv6 ? "]" : "", info ? (unsigned)info->port : (unsigned)port);
    free(host);
    return server;
}

const char *rkb_http_address(const rkb_http_t *server) {
    return server->address;
}

void rkb_http_stop(rkb_http_t *server) {
    if (!server)
        return;
    if (server->daemon)
        MHD_stop_daemon(server->daemon);
    free(server->auth_token);
    free(server);
}
