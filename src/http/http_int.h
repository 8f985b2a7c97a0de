/*
 * http_int.h — between the server (server.c) and the API's routes (rest.c); not for other
 * modules.
 *
 * A request arrives decoded (path segments and query arguments percent-decoded) with its whole
 * body; a handler answers with exactly one of rkb_http_json, rkb_http_text, rkb_http_empty or
 * rkb_http_error. rkb_http_error is the only way an error reaches a client, and counts it.
 */
#ifndef RKB_HTTP_HTTP_INT_H
#define RKB_HTTP_HTTP_INT_H

#include "connect/worker.h"
#include "http/http.h"
#include "metrics/metrics.h"
#include "util/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct rkb_http_req_s {
    rkb_http_t *server;
    rkb_worker_t *worker;
    const char *method;
    char **segments; /* the path, split at '/', decoded; no empty segments */
    size_t segment_cnt;
    char **args; /* query arguments: name, value (value "" when absent), decoded */
    size_t arg_cnt;
    const char *body; /* NUL-terminated */
    size_t body_len;
    /* The answer. */
    int status;
    const char *content_type;
    rkb_buf_t out;
    char allow[128];      /* 405: the methods the path takes ("" otherwise) */
    char *location;       /* 201: where the new resource is */
    bool answered;
} rkb_http_req_t;

/* Answers with a JSON body (consumed). */
void rkb_http_json(rkb_http_req_t *req, int status, json_t *body);
/* Answers with a text body (copied). */
void rkb_http_text(rkb_http_req_t *req, int status, const char *content_type, const char *text,
                   size_t len);
/* Answers without a body (202, 204). */
void rkb_http_empty(rkb_http_req_t *req, int status);
/* Answers {"error_code": status, "message": ...} and counts it (rkbridge_rest_errors_total). */
void rkb_http_error(rkb_http_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with more members in the body (fields: a JSON object, consumed; its own
 * error_code and message are replaced). */
void rkb_http_error_with(rkb_http_req_t *req, int status, json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first value of query argument name, or NULL. */
const char *rkb_http_arg(const rkb_http_req_t *req, const char *name);
/* True when some value of query argument name equals value. */
bool rkb_http_arg_has(const rkb_http_req_t *req, const char *name, const char *value);

/* The server's own series (requests, errors by status). */
void rkb_http_scrape(rkb_http_t *server, rkb_scrape_t *s);

/* One route: a method and a path pattern whose "*" segments match any one segment, passed to
 * the handler in order. */
typedef void(rkb_http_handler_t)(rkb_http_req_t *req, char **params);
typedef struct rkb_http_route_s {
    const char *method;
    const char *pattern; /* "/connectors/STAR/status" with STAR = "*" */
    rkb_http_handler_t *handler;
} rkb_http_route_t;

/* Finds the route of req and runs it: 404 when no pattern matches the path, 405 when one does
 * but not with this method. */
void rkb_http_route(rkb_http_req_t *req, const rkb_http_route_t *routes, size_t route_cnt);

/* The REST API (rest.c): routes req. */
void rkb_rest_handle(rkb_http_req_t *req);

#endif
