/*
 * harness_common.c — temp dir, files, clock, waiting and the at-exit cleanup registry that
 * stops every server and process a test started, also when the test fails.
 */
#include "harness.h"
#include "harness_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_CLEANUPS 256

static struct {
    void (*fn)(void *);
    void *arg;
} cleanups[H_MAX_CLEANUPS];
static int cleanup_cnt;
static bool cleanup_installed;
static char tmpdir[PATH_MAX];

static void run_cleanups(void) {
    for (int i = cleanup_cnt - 1; i >= 0; i--) {
        if (cleanups[i].fn) {
            void (*fn)(void *) = cleanups[i].fn;
            cleanups[i].fn = NULL;
            fn(cleanups[i].arg);
        }
    }
    cleanup_cnt = 0;
    if (tmpdir[0] && !getenv("RKB_KEEP_TMP")) {
        char cmd[PATH_MAX + 16];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        int ignored = system(cmd);
        (void)ignored;
        tmpdir[0] = '\0';
    }
}

static void on_fatal_signal(int sig) {
    /* cmocka catches SIGSEGV itself; here we only make sure children do not outlive an
     * interrupted or timed-out test program. */
    run_cleanups();
    signal(sig, SIG_DFL);
    raise(sig);
}

int h_cleanup_register(void (*fn)(void *arg), void *arg) {
    if (!cleanup_installed) {
        atexit(run_cleanups);
        signal(SIGTERM, on_fatal_signal);
        signal(SIGINT, on_fatal_signal);
        signal(SIGPIPE, SIG_IGN); /* a dead child's pipe must not kill the test */
        cleanup_installed = true;
    }
    if (cleanup_cnt == H_MAX_CLEANUPS)
        h_fatal("too many cleanups registered");
    cleanups[cleanup_cnt].fn = fn;
    cleanups[cleanup_cnt].arg = arg;
    return cleanup_cnt++;
}

void h_cleanup_cancel(int handle) {
    if (handle >= 0 && handle < cleanup_cnt)
        cleanups[handle].fn = NULL;
}

void h_fatal(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "harness: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void noop(void *arg) {
    (void)arg;
}

const char *h_tmpdir(void) {
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof(tmpdir), "%s/rkb-test-XXXXXX", base ? base : "/tmp");
        if (!mkdtemp(tmpdir))
            h_fatal("mkdtemp %s: %s", tmpdir, strerror(errno));
        h_cleanup_register(noop, NULL); /* installs the at-exit hook that removes the dir */
    }
    return tmpdir;
}

const char *h_write_file(const char *name, const char *text) {
    size_t len = strlen(h_tmpdir()) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path)
        h_fatal("out of memory");
    snprintf(path, len, "%s/%s", h_tmpdir(), name);
    FILE *fp = fopen(path, "w");
    if (!fp)
        h_fatal("cannot write %s: %s", path, strerror(errno));
    fputs(text, fp);
    fclose(fp);
    h_cleanup_register(free, path);
    return path;
}

const char *h_rkbridge_bin(void) {
    const char *env = getenv("RKBRIDGE");
    return env && *env ? env : RKB_BINARY;
}

int64_t h_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

bool h_wait_until(bool (*cond)(void *arg), void *arg, int timeout_ms) {
    int64_t until = h_now_ms() + timeout_ms;
    bool ok;
    while (!(ok = cond(arg)) && h_now_ms() < until)
        h_sleep_ms(20);
    return ok;
}
