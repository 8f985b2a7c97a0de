/*
 * harness_http.c — a tiny HTTP/1.1 client for the REST API tests (plain sockets, one request
 * per connection, "Connection: close"), and rkbridge workers started on a free port.
 */
#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define H_HTTP_TIMEOUT_MS 30000

/* "HOST:PORT" (IPv4) → a connected socket, or -1. */
static int connect_to(const char *address) {
    char host[256];
    const char *colon = strrchr(address, ':');
    if (!colon || (size_t)(colon - address) >= sizeof(host))
        h_fatal("h_http: bad address '%s'", address);
    memcpy(host, address, (size_t)(colon - address));
    host[colon - address] = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        h_fatal("h_http: '%s' is not an IPv4 address", host);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        h_fatal("socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends everything it can; a server that answered early and closed makes the rest fail, which
 * is fine: its answer is read next. */
static void send_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

/* Reads until the server closes (or the timeout). */
static char *read_all(int fd, size_t *len) {
    char *data = NULL;
    size_t cap = 0;
    *len = 0;
    int64_t until = h_now_ms() + H_HTTP_TIMEOUT_MS;
    for (;;) {
        int64_t left = until - h_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int ready = poll(&pfd, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        if (*len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 16384;
            data = realloc(data, cap);
            if (!data)
                h_fatal("out of memory");
        }
        ssize_t n = recv(fd, data + *len, cap - *len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    if (!data && !(data = malloc(1)))
        h_fatal("out of memory");
    data[*len] = '\0';
    return data;
}

/* Decodes a chunked body in place; returns its length. */
static size_t dechunk(char *body, size_t len) {
    size_t in = 0, out = 0;
    while (in < len) {
        char *end;
        unsigned long size = strtoul(body + in, &end, 16);
        char *line_end = strstr(end, "\r\n");
        if (!line_end || size == 0)
            break;
        in = (size_t)(line_end + 2 - body);
        if (in + size > len)
            size = len - in;
        memmove(body + out, body + in, size);
        out += size;
        in += size + 2;
    }
    body[out] = '\0';
    return out;
}

static int parse_response(char *raw, size_t len, h_http_resp_t *resp) {
    memset(resp, 0, sizeof(*resp));
    char *head_end = strstr(raw, "\r\n\r\n");
    if (strncmp(raw, "HTTP/1.", 7) || !head_end) {
        free(raw);
        return 0;
    }
    resp->status = atoi(raw + 9);
    resp->headers = strndup(raw, (size_t)(head_end - raw) + 2);
    size_t body_len = len - (size_t)(head_end + 4 - raw);
    resp->body = malloc(body_len + 1);
    if (!resp->headers || !resp->body)
        h_fatal("out of memory");
    memcpy(resp->body, head_end + 4, body_len);
    resp->body[body_len] = '\0';
    char *te = h_http_header(resp, "Transfer-Encoding");
    if (te && !strcasecmp(te, "chunked"))
        body_len = dechunk(resp->body, body_len);
    free(te);
    resp->body_len = body_len;
    free(raw);
    return resp->status;
}

int h_http_raw(const char *address, const void *request, size_t len, h_http_resp_t *resp) {
    memset(resp, 0, sizeof(*resp));
    int fd = connect_to(address);
    if (fd == -1)
        return 0;
    send_all(fd, request, len);
    shutdown(fd, SHUT_WR);
    size_t raw_len;
    char *raw = read_all(fd, &raw_len);
    close(fd);
    return parse_response(raw, raw_len, resp);
}

int h_http(const char *address, const char *method, const char *path, const char *const *headers,
           const char *body, h_http_resp_t *resp) {
    char *request = NULL;
    size_t request_len = 0;
    FILE *fp = open_memstream(&request, &request_len);
    if (!fp)
        h_fatal("open_memstream: %s", strerror(errno));
    fprintf(fp, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, path, address);
    for (size_t i = 0; headers && headers[i]; i++)
        fprintf(fp, "%s\r\n", headers[i]);
    if (body)
        fprintf(fp, "Content-Type: application/json\r\nContent-Length: %zu\r\n", strlen(body));
    fprintf(fp, "\r\n%s", body ? body : "");
    fclose(fp);
    int status = h_http_raw(address, request, request_len, resp);
    free(request);
    return status;
}

char *h_http_header(const h_http_resp_t *resp, const char *name) {
    size_t name_len = strlen(name);
    for (const char *line = resp->headers ? strstr(resp->headers, "\r\n") : NULL; line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *start = line + 2;
        if (!strncasecmp(start, name, name_len) && start[name_len] == ':') {
            const char *value = start + name_len + 1;
            while (*value == ' ')
                value++;
            return strndup(value, strcspn(value, "\r\n"));
        }
    }
    return NULL;
}

void h_http_resp_free(h_http_resp_t *resp) {
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

/* ---- Workers ---------------------------------------------------------------------------------- */

/* The address in "REST API listening on http://ADDRESS", once the process logged it. */
static bool find_address(h_proc_t *proc, char *address, size_t size) {
    char *out = h_proc_output(proc);
    const char *mark = "REST API listening on http://";
    const char *p = strstr(out, mark);
    bool found = false;
    if (p) {
        p += strlen(mark);
        size_t len = strcspn(p, " \n");
        if (len < size) {
            memcpy(address, p, len);
            address[len] = '\0';
            found = true;
        }
    }
    free(out);
    return found;
}

h_proc_t *h_worker_start(const char *worker_text, const char *const *files, char *address,
                         size_t address_size) {
    const char *argv[64] = {"rkbridge", "run", "--listen", "127.0.0.1:0"};
    size_t argc = 4;
    char name[64];
    static int worker_counter;
    if (worker_text) {
        snprintf(name, sizeof(name), "worker-%ld-%d.properties", (long)getpid(), ++worker_counter);
        argv[argc++] = "--worker";
        argv[argc++] = h_write_file(name, worker_text);
    }
    for (size_t i = 0; files && files[i] && argc < 62; i++)
        argv[argc++] = files[i];
    argv[argc] = NULL;
    h_proc_t *proc = h_rkbridge_spawn(argv, NULL);
    if (!H_WAIT_FOR(find_address(proc, address, address_size) || !h_proc_alive(proc), 60000) ||
        !find_address(proc, address, address_size)) {
        char *out = h_proc_output(proc);
        fprintf(stderr, "---- rkbridge output ----\n%s\n", out);
        free(out);
        h_fatal("rkbridge did not start its REST API");
    }
    return proc;
}
