/*
 * http.h — the REST API's HTTP server (libmicrohttpd): Kafka Connect's REST API for the worker's
 * connectors (http/rest.c), GET /metrics and GET /health, on one listener.
 *
 * Every request goes through the same gate before it reaches a route: the bearer token when the
 * worker sets rest.auth.token (401 otherwise), and the body size limit rest.request.max.bytes
 * (413; a Content-Length above it is refused before the body is read). Every error a client sees
 * is Kafka Connect's {"error_code": STATUS, "message": "..."}, made by one function family that
 * also counts it for GET /metrics (http_int.h).
 *
 * Threads: libmicrohttpd runs each connection on its own thread; handlers only ask the worker
 * (connect/worker.h), which is safe from any thread.
 */
#ifndef RKB_HTTP_HTTP_H
#define RKB_HTTP_HTTP_H

#include "connect/worker.h"

#include <stddef.h>

typedef struct rkb_http_s rkb_http_t;

typedef struct rkb_http_conf_s {
    const char *listener;   /* "http://HOST:PORT" or "HOST:PORT"; port 0: any free port */
    const char *auth_token; /* NULL or "": no authentication */
    size_t max_body;        /* bytes */
    rkb_worker_t *worker;   /* outlives the server */
} rkb_http_conf_t;

/* Binds and starts serving. Returns NULL with errstr (cannot resolve or bind the listener). */
rkb_http_t *rkb_http_start(const rkb_http_conf_t *conf, char *errstr, size_t errstr_size);
/* "HOST:PORT" actually bound (the port chosen when the listener said 0). */
const char *rkb_http_address(const rkb_http_t *server);
/* Stops accepting, waits for the requests being served, frees. NULL is safe. */
void rkb_http_stop(rkb_http_t *server);

#endif
