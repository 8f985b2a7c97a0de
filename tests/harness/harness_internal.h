/*
 * harness_internal.h — shared by the harness's own files, not by tests.
 */
#ifndef RKB_TESTS_HARNESS_INTERNAL_H
#define RKB_TESTS_HARNESS_INTERNAL_H

#include <stdbool.h>
#include <sys/types.h>

/* Registers fn(arg) to run at exit (last registered runs first). Returns a handle for
 * h_cleanup_cancel, so that an object stopped by hand is not stopped twice. */
int h_cleanup_register(void (*fn)(void *arg), void *arg);
void h_cleanup_cancel(int handle);

/* A port the kernel just considered free on 127.0.0.1. Someone may take it before the caller
 * binds it: callers that start a server notice and pick another. */
int h_free_port(void);

/* Prints "harness: <message>" to stderr and exits the test program with status 1. */
void h_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* How h_spawn starts a child. The fds stay the caller's to close; open them O_CLOEXEC, so that
 * the child holds them only as its stdin/stdout/stderr. */
typedef struct h_spawn_opts_s {
    const char *path;        /* the program; with search_path and no '/' in it, found in $PATH */
    const char *const *argv; /* NULL-terminated, argv[0] included */
    bool search_path;        /* execvp's lookup (done in the parent, see h_spawn) */
    const char *const *env;  /* "NAME=value" entries added to, or replacing in, our environment;
                                NULL-terminated, may be NULL */
    int stdin_fd;            /* -1: /dev/null (0 is a real fd: the test program's stdin) */
    int stdout_fd;           /* -1: /dev/null */
    int stderr_fd;           /* -1: /dev/null */
    bool die_with_parent;    /* PR_SET_PDEATHSIG SIGKILL: killed when the test program dies */
} h_spawn_opts_t;

/* Forks and execs opts->path; returns the child's pid (the caller reaps it). Fatal if it cannot
 * fork. Test programs have librdkafka threads running when they fork, so the child calls
 * nothing but async-signal-safe functions (prctl, dup2, execve, write, _exit): the PATH lookup,
 * the environment and the exec-failure message are all prepared in the parent. If the exec
 * fails, the child writes "harness: cannot exec PATH (errno N)" to its stderr and exits 127. */
pid_t h_spawn(const h_spawn_opts_t *opts);

#endif
