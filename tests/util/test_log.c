/*
 * test_log.c — the logger (src/util/log.c): one line per event in both formats, the connector
 * and task on every JSON line, escaping (quotes, newlines, control characters, invalid UTF-8),
 * long messages cut without breaking the JSON, lines from many threads never interleaved, the
 * environment switches; and, through a real `rkbridge run`, librdkafka's own lines arriving as
 * the task's JSON lines (a broker that refuses connections, kafka.debug).
 */
#include "harness.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- Capturing stderr ---------------------------------------------------------------------- */

static int saved_stderr = -1;
static char capture_path[600];

static void capture_start(void) {
    snprintf(capture_path, sizeof(capture_path), "%s/log-capture.txt", h_tmpdir());
    int fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Restores stderr; returns what was logged (malloc'd). */
static char *capture_end(void) {
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    FILE *fp = fopen(capture_path, "r");
    assert_non_null(fp);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', fp);
    fclose(fp);
    if (n < 0) {
        free(text);
        text = strdup("");
    }
    return text;
}

static size_t count_lines(const char *text) {
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    return n;
}

/* Line i (0-based) of text, parsed; fails unless it is a JSON object. */
static json_t *json_line(const char *text, size_t i) {
    const char *line = text;
    for (size_t k = 0; k < i; k++) {
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    const char *eol = strchr(line, '\n');
    assert_non_null(eol); /* every line ends with a newline */
    json_error_t error;
    json_t *obj = json_loadb(line, (size_t)(eol - line), 0, &error);
    if (!obj || !json_is_object(obj))
        fail_msg("line %zu is not a JSON object (%s): %.*s", i, error.text, (int)(eol - line),
                 line);
    return obj;
}

static const char *str_field(json_t *obj, const char *name) {
    return json_string_value(json_object_get(obj, name));
}

static void teardown_defaults(void) {
    rkb_log_set_level(RKB_LOG_INFO);
    rkb_log_set_format(RKB_LOG_FORMAT_TEXT);
}

/* ---- Text ---------------------------------------------------------------------------------- */

static void test_text_lines(void **state) {
    teardown_defaults();
    capture_start();
    rkb_log_info("pageviews/0", "connected to %s", "redis");
    rkb_log_debug("pageviews/0", "dropped at info"); /* below the level */
    rkb_log_warn(NULL, "two\nlines\r and a \x01 bell");
    rkb_log_connector(RKB_LOG_INFO, "pageviews", "connector started");
    rkb_log_error("dev-broker", "tab\tkept");
    char *out = capture_end();
    assert_int_equal(count_lines(out), 4);
    /* "2024-05-01T12:00:00.123Z INFO  [pageviews/0] connected to redis" */
    assert_int_equal(strlen(out) > 25 && out[4] == '-' && out[10] == 'T' && out[23] == 'Z', 1);
    assert_non_null(strstr(out, "Z INFO  [pageviews/0] connected to redis\n"));
    assert_non_null(strstr(out, "Z WARN  [rkbridge] two\\nlines\\r and a \\x01 bell\n"));
    assert_non_null(strstr(out, "Z INFO  [pageviews] connector started\n"));
    assert_non_null(strstr(out, "Z ERROR [dev-broker] tab\tkept\n"));
    assert_null(strstr(out, "dropped"));
    free(out);
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static void test_json_fields(void **state) {
    teardown_defaults();
    rkb_log_set_format(RKB_LOG_FORMAT_JSON);
    capture_start();
    rkb_log_info("pageviews/3", "task line");
    rkb_log_connector(RKB_LOG_WARN, "pageviews", "connector line");
    rkb_log_error("dev-broker", "module line");
    rkb_log_info(NULL, "process line");
    rkb_log_info("a/b/7", "slash in the name");
    rkb_log_info("x/y", "not a task number");
    rkb_log_always(RKB_LOG_DEBUG, "c/0", "asked for by name");
    rkb_log_debug("c/0", "not asked for");
    char *out = capture_end();
    teardown_defaults();
    assert_int_equal(count_lines(out), 7);

    static const struct {
        const char *level, *connector; /* connector NULL: null */
        int task;                      /* -1: null */
        const char *component;         /* NULL: absent */
        const char *msg;
    } want[] = {
        {"INFO", "pageviews", 3, NULL, "task line"},
        {"WARN", "pageviews", -1, NULL, "connector line"},
        {"ERROR", NULL, -1, "dev-broker", "module line"},
        {"INFO", NULL, -1, "rkbridge", "process line"},
        {"INFO", "a/b", 7, NULL, "slash in the name"},
        {"INFO", NULL, -1, "x/y", "not a task number"},
        {"DEBUG", "c", 0, NULL, "asked for by name"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        json_t *obj = json_line(out, i);
        const char *ts = str_field(obj, "ts");
        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24); /* 2024-05-01T12:00:00.123Z */
        assert_string_equal(str_field(obj, "level"), want[i].level);
        json_t *connector = json_object_get(obj, "connector"), *task = json_object_get(obj, "task");
        assert_non_null(connector);
        assert_non_null(task);
        if (want[i].connector)
            assert_string_equal(json_string_value(connector), want[i].connector);
        else
            assert_true(json_is_null(connector));
        if (want[i].task >= 0)
            assert_int_equal(json_integer_value(task), want[i].task);
        else
            assert_true(json_is_null(task));
        if (want[i].component)
            assert_string_equal(str_field(obj, "component"), want[i].component);
        else
            assert_null(json_object_get(obj, "component"));
        assert_string_equal(str_field(obj, "msg"), want[i].msg);
        json_decref(obj);
    }
    free(out);
}

static void test_json_escaping_and_long_messages(void **state) {
    teardown_defaults();
    rkb_log_set_format(RKB_LOG_FORMAT_JSON);
    char *huge = malloc(20001);
    memset(huge, '"', 20000); /* each one escaped: the escaped text is twice as long */
    huge[20000] = '\0';
    capture_start();
    rkb_log_info("t/0", "quote \" backslash \\ newline \n tab \t bell \x07 del \x7f");
    rkb_log_info("t/0", "utf-8 \xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80 ok");
    rkb_log_info("t/0", "bad \xff \xc3 \xed\xa0\x80 \xc0\xaf end");
    rkb_log_info("t/0", "%s", huge);
    rkb_log_info("t\"/0", "a quote in the connector name");
    char *out = capture_end();
    teardown_defaults();
    free(huge);
    assert_int_equal(count_lines(out), 5);

    json_t *obj = json_line(out, 0);
    assert_string_equal(str_field(obj, "msg"),
                        "quote \" backslash \\ newline \n tab \t bell \x07 del \x7f");
    json_decref(obj);
    obj = json_line(out, 1);
    assert_string_equal(str_field(obj, "msg"), "utf-8 \xc3\xa9 \xe2\x86\x92 \xf0\x9f\x98\x80 ok");
    json_decref(obj);
    /* Invalid sequences (a stray byte, a cut sequence, a surrogate, an overlong form) become
     * U+FFFD, byte by byte; the rest is kept. */
    obj = json_line(out, 2);
    const char *msg = str_field(obj, "msg");
    assert_non_null(msg);
    assert_int_equal(strncmp(msg, "bad \xef\xbf\xbd \xef\xbf\xbd ", 12), 0);
    assert_non_null(strstr(msg, " end"));
    json_decref(obj);
    /* Cut, marked, still one valid line. */
    obj = json_line(out, 3);
    msg = str_field(obj, "msg");
    assert_true(strlen(msg) > 1000 && strlen(msg) < 20000);
    assert_string_equal(msg + strlen(msg) - 3, "...");
    json_decref(obj);
    obj = json_line(out, 4);
    assert_string_equal(str_field(obj, "connector"), "t\"");
    json_decref(obj);
    free(out);
}

typedef struct {
    int id;
} worker_t;

static void *worker(void *arg) {
    const worker_t *w = arg;
    char component[32];
    snprintf(component, sizeof(component), "conn/%d", w->id);
    for (int i = 0; i < 500; i++)
        rkb_log_info(component, "line %d of worker %d %s", i, w->id,
                     "padding padding padding padding padding padding padding padding");
    return NULL;
}

/* 8 threads logging at once: every line whole, none lost. */
static void test_threads_never_interleave(void **state) {
    teardown_defaults();
    rkb_log_set_format(RKB_LOG_FORMAT_JSON);
    capture_start();
    pthread_t threads[8];
    worker_t workers[8];
    for (int i = 0; i < 8; i++) {
        workers[i].id = i;
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &workers[i]), 0);
    }
    for (int i = 0; i < 8; i++)
        pthread_join(threads[i], NULL);
    char *out = capture_end();
    teardown_defaults();
    assert_int_equal(count_lines(out), 4000);
    int per_task[8] = {0};
    for (size_t i = 0; i < 4000; i++) {
        json_t *obj = json_line(out, i);
        json_int_t task = json_integer_value(json_object_get(obj, "task"));
        assert_true(task >= 0 && task < 8);
        per_task[task]++;
        json_decref(obj);
    }
    for (int i = 0; i < 8; i++)
        assert_int_equal(per_task[i], 500);
    free(out);
}

static void test_environment(void **state) {
    teardown_defaults();
    setenv("RKB_LOG_FORMAT", "JSON", 1);
    setenv("RKB_LOG_LEVEL", "debug", 1);
    rkb_log_init_from_env();
    assert_int_equal(rkb_log_get_format(), RKB_LOG_FORMAT_JSON);
    assert_int_equal(rkb_log_get_level(), RKB_LOG_DEBUG);

    /* A value that means nothing is said, once, and ignored. */
    teardown_defaults();
    setenv("RKB_LOG_FORMAT", "xml", 1);
    setenv("RKB_LOG_LEVEL", "loud", 1);
    capture_start();
    rkb_log_init_from_env();
    char *out = capture_end();
    assert_int_equal(rkb_log_get_format(), RKB_LOG_FORMAT_TEXT);
    assert_int_equal(rkb_log_get_level(), RKB_LOG_INFO);
    assert_non_null(strstr(out, "RKB_LOG_FORMAT=xml: expected text or json"));
    assert_non_null(strstr(out, "RKB_LOG_LEVEL=loud: expected error, warn, info or debug"));
    assert_int_equal(count_lines(out), 2);
    free(out);
    unsetenv("RKB_LOG_FORMAT");
    unsetenv("RKB_LOG_LEVEL");

    rkb_log_format_t format;
    assert_int_equal(rkb_log_format_parse("text", &format), 0);
    assert_int_equal(format, RKB_LOG_FORMAT_TEXT);
    assert_int_equal(rkb_log_format_parse("yaml", &format), -1);
    teardown_defaults();
}

/* ---- librdkafka through the logger, in a real process ------------------------------------- */

/* A port nothing listens on: bound, never listening. */
static int closed_port(int *fd_out) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    *fd_out = fd;
    return ntohs(addr.sin_port);
}

/* A line of out (JSON) from connector's task 0 whose msg starts with prefix and whose level is
 * level. */
static bool has_task_line(const char *out, const char *connector, const char *level,
                          const char *prefix) {
    bool found = false;
    for (const char *line = out; line && *line && !found;) {
        const char *eol = strchr(line, '\n');
        if (!eol)
            break;
        json_t *obj = json_loadb(line, (size_t)(eol - line), 0, NULL);
        const char *conn = obj ? str_field(obj, "connector") : NULL;
        const char *msg = obj ? str_field(obj, "msg") : NULL;
        found = conn && !strcmp(conn, connector) &&
                json_integer_value(json_object_get(obj, "task")) == 0 &&
                json_is_integer(json_object_get(obj, "task")) && msg &&
                !strncmp(msg, prefix, strlen(prefix)) && !strcmp(str_field(obj, "level"), level);
        json_decref(obj);
        line = eol + 1;
    }
    return found;
}

static bool output_has_task_line(h_proc_t *proc, const char *connector, const char *level,
                                 const char *prefix) {
    char *out = h_proc_output(proc);
    bool found = has_task_line(out, connector, level, prefix);
    free(out);
    return found;
}

static void test_librdkafka_lines_through_the_logger(void **state) {
    int kafka_fd, redis_fd;
    int kafka_port = closed_port(&kafka_fd), redis_port = closed_port(&redis_fd);
    char text[1024];
    snprintf(text, sizeof(text),
             "name=logs\n"
             "connector.class=com.redis.kafka.connect.RedisSinkConnector\n"
             "topics=t\n"
             "redis.uri=redis://127.0.0.1:%d\n"
             "kafka.bootstrap.servers=127.0.0.1:%d\n"
             "kafka.debug=broker\n",
             redis_port, kafka_port);
    /* RKB_LOG_FORMAT=text is overridden by the flag; the level stays info, yet the debug lines
     * kafka.debug asked for are written. */
    const char *path = h_write_file("logs.properties", text);
    const char *argv[] = {"rkbridge", "run", "--log-format", "json", path, NULL};
    const char *env[] = {"RKB_LOG_FORMAT=text", "RKB_LOG_LEVEL=info", NULL};
    h_proc_t *proc = h_rkbridge_spawn(argv, env);
    bool refused =
        H_WAIT_FOR(output_has_task_line(proc, "logs", "ERROR", "librdkafka FAIL: "), 30000);
    bool debug = output_has_task_line(proc, "logs", "DEBUG", "librdkafka BROKER: ");
    assert_int_equal(h_proc_stop(proc, SIGTERM, 30000), 0);
    char *out = h_proc_output(proc);
    if (!refused || !debug)
        fprintf(stderr, "---- rkbridge output ----\n%s\n----\n", out);
    assert_true(refused);
    assert_true(debug);
    /* Every line, ours and librdkafka's, is one JSON object with connector and task. */
    size_t lines = count_lines(out);
    assert_true(lines > 3);
    for (size_t i = 0; i < lines; i++) {
        json_t *obj = json_line(out, i);
        assert_non_null(json_object_get(obj, "connector"));
        assert_non_null(json_object_get(obj, "task"));
        json_decref(obj);
    }
    free(out);
    h_proc_free(proc);
    close(kafka_fd);
    close(redis_fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_json_fields),
        cmocka_unit_test(test_json_escaping_and_long_messages),
        cmocka_unit_test(test_threads_never_interleave),
        cmocka_unit_test(test_environment),
        cmocka_unit_test(test_librdkafka_lines_through_the_logger),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
