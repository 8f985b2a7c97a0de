/*
 * test_status_line.c — `rkbridge run`'s live status line: drawn on stderr when it is a terminal
 * (a pseudo-terminal here), refreshed with the records moved, kept below the log lines; never
 * written when stderr is not a terminal. One redis-server and one dev broker.
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 60000

static h_redis_t *redis;
static h_broker_t *broker;

static int group_setup(void **state) {
    redis = h_redis_start(NULL);
    broker = h_broker_start(1, NULL);
    return 0;
}

static int group_teardown(void **state) {
    h_broker_stop(broker);
    h_redis_stop(redis);
    return 0;
}

/* Appends what the terminal has for us now to screen. */
static void read_tty(int fd, char **screen, size_t *len) {
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 0) <= 0)
            return;
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n <= 0)
            return;
        *screen = realloc(*screen, *len + (size_t)n + 1);
        memcpy(*screen + *len, chunk, (size_t)n);
        *len += (size_t)n;
        (*screen)[*len] = '\0';
    }
}

/* The text of the last status line drawn ("\r\033[K" then the line), copied into out. */
static bool last_status(const char *screen, char *out, size_t size) {
    const char *last = NULL;
    for (const char *p = screen; p && (p = strstr(p, "\r\033[Krkbridge: ")); p++)
        last = p;
    if (!last)
        return false;
    last += 4;
    size_t n = strcspn(last, "\r\n");
    snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), last);
    return true;
}

static char *stream_file(const char *name, const char *stream) {
    char *text = NULL;
    if (asprintf(&text,
                 "name=%s\nconnector.class=com.redis.kafka.connect.RedisStreamSourceConnector\n"
                 "redis.uri=%s\nredis.stream.name=%s\nkafka.bootstrap.servers=%s\n",
                 name, h_redis_uri(redis), stream, broker->bootstrap) < 0)
        abort();
    return text;
}

/* True when some status line drawn so far shows records moving (a rate above 0). */
static bool rate_seen(const char *screen) {
    for (const char *p = screen; p && (p = strstr(p, "\r\033[Krkbridge: ")); p++) {
        const char *rate = strstr(p, "running | ");
        if (rate && strtol(rate + 10, NULL, 10) > 0)
            return true;
    }
    return false;
}

static void test_status_line_on_a_terminal(void **state) {
    char *text = stream_file("tty-source", "ttystream");
    const char *file = h_write_file("tty-source.properties", text);
    free(text);
    const char *argv[] = {"rkbridge", "run", "--listen", "127.0.0.1:0", file, NULL};
    int tty;
    h_proc_t *proc = h_rkbridge_spawn_tty(argv, &tty);
    char *screen = calloc(1, 1);
    size_t len = 0;
    char line[512] = "";

    /* Drawn, with the task running and nothing moved yet. */
    assert_true(H_WAIT_FOR((read_tty(tty, &screen, &len),
                            last_status(screen, line, sizeof(line)) &&
                                strstr(line, "1 task running")),
                           WAIT_MS));
    assert_non_null(strstr(line, "rkbridge: 1 connector, 1 task running | "));
    assert_non_null(strstr(line, " records/s | lag "));
    assert_non_null(strstr(line, " | errors 0"));
    assert_false(rate_seen(screen));

    /* Records moving show in a refresh (about once a second) as a rate above 0. */
    for (int i = 0; i < 2000; i++) {
        redisReply *reply = h_redis_cmd(redis, "XADD ttystream * n %d", i);
        freeReplyObject(reply);
    }
    assert_true(H_WAIT_FOR((read_tty(tty, &screen, &len), rate_seen(screen)), WAIT_MS));

    /* A log line (the pause asked over the API) is drawn over the status line, which comes
     * back right after it. */
    const char *mark = strstr(screen, "REST API listening on http://");
    assert_non_null(mark);
    char address[128];
    snprintf(address, sizeof(address), "%.*s", (int)strcspn(mark + 29, " \r\n"), mark + 29);
    h_http_resp_t resp;
    assert_int_equal(h_http(address, "PUT", "/connectors/tty-source/pause", NULL, NULL, &resp),
                     202);
    h_http_resp_free(&resp);
    assert_true(H_WAIT_FOR((read_tty(tty, &screen, &len), strstr(screen, "] pausing\r\n") &&
                                                              strstr(strstr(screen, "] pausing"),
                                                                     "\r\nrkbridge: ")),
                           WAIT_MS));
    const char *after = strstr(screen, "] pausing\r\n") + strlen("] pausing\r\n");
    assert_int_equal(strncmp(after, "rkbridge: ", 10), 0); /* at once: the same write */

    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    /* Erased at exit: the last thing on the terminal after the status line is its erasure. */
    read_tty(tty, &screen, &len);
    const char *last_erase = NULL;
    for (const char *p = screen; (p = strstr(p, "\r\033[K")); p++)
        last_erase = p;
    assert_non_null(last_erase);
    assert_null(strstr(last_erase, "rkbridge: "));
    /* stdout never had it. */
    char *out = h_proc_output(proc);
    assert_null(strstr(out, "records/s"));
    free(out);
    h_proc_free(proc);
    close(tty);
    free(screen);
}

/* Not a terminal: never drawn. A terminal gets the first line as soon as the run loop turns
 * once, so a run that moved records would have drawn it already. */
static void test_no_status_line_otherwise(void **state) {
    char *text = stream_file("plain-source", "plainstream");
    h_proc_t *proc = h_rkbridge_run(text, NULL);
    free(text);
    for (int i = 0; i < 10; i++) {
        redisReply *reply = h_redis_cmd(redis, "XADD plainstream * n %d", i);
        freeReplyObject(reply);
    }
    assert_true(H_WAIT_FOR(({
                               rd_kafka_message_t **msgs = NULL;
                               size_t cnt = h_consume_all(broker, "plainstream", &msgs);
                               h_messages_free(msgs, cnt);
                               cnt == 10;
                           }),
                           WAIT_MS));
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    char *out = h_proc_output(proc);
    assert_non_null(strstr(out, "stream source started"));
    assert_null(strstr(out, "records/s"));
    assert_null(strstr(out, "\033[K"));
    free(out);
    h_proc_free(proc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_line_on_a_terminal),
        cmocka_unit_test(test_no_status_line_otherwise),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
