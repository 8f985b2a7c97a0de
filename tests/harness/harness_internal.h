/*
 * harness_internal.h — shared by the harness's own files, not by tests.
 */
#ifndef RKB_TESTS_HARNESS_INTERNAL_H
#define RKB_TESTS_HARNESS_INTERNAL_H

/* Registers fn(arg) to run at exit (last registered runs first). Returns a handle for
 * h_cleanup_cancel, so that an object stopped by hand is not stopped twice. */
int h_cleanup_register(void (*fn)(void *arg), void *arg);
void h_cleanup_cancel(int handle);

/* Prints "harness: <message>" to stderr and exits the test program with status 1. */
void h_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
