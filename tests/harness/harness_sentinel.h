/*
 * harness_sentinel.h — a throwaway Redis Sentinel setup for tests: a master, one replica of it,
 * and sentinels monitoring it, all on free loopback ports in the test's temp dir (see
 * harness.h for the rest of the harness). Sentinels fail over quickly (down-after 1 s,
 * failover-timeout 3 s, quorum 1). Everything is stopped by h_sentinel_group_stop, or at exit.
 */
#ifndef RKB_TESTS_HARNESS_SENTINEL_H
#define RKB_TESTS_HARNESS_SENTINEL_H

#include "harness.h"

#include <stdbool.h>
#include <sys/types.h>

#define H_SENTINEL_MAX 3

typedef struct h_sentinel_group_s {
    h_redis_t *master;  /* the master at start (a test may kill it: h_redis_kill) */
    h_redis_t *replica; /* its replica at start, the one a failover promotes */
    int sentinel_cnt;
    int sentinel_port[H_SENTINEL_MAX];
    pid_t sentinel_pid[H_SENTINEL_MAX]; /* 0 once stopped */
    char sentinel_dir[H_SENTINEL_MAX][512];
    char master_name[64];
    char uri[512]; /* "redis-sentinel://127.0.0.1:P1[,127.0.0.1:P2...]#NAME" */
} h_sentinel_group_t;

/* Starts a master, a replica of it (in sync before this returns), and sentinels (1 to
 * H_SENTINEL_MAX) monitoring it as master_name; returns once every sentinel knows the replica
 * and the other sentinels, so that a failover can happen. */
h_sentinel_group_t *h_sentinel_group_start(int sentinels, const char *master_name);
/* The port of the master as sentinel i reports it now; 0 if it does not answer. */
int h_sentinel_master_port(const h_sentinel_group_t *group, int i);
/* Waits up to timeout_ms until every running sentinel reports the master at port and that
 * server says ROLE master. Returns whether it happened. */
bool h_sentinel_wait_master(const h_sentinel_group_t *group, int port, int timeout_ms);
/* SIGKILLs sentinel i (its port stays in the URI: a sentinel that is down). */
void h_sentinel_kill(h_sentinel_group_t *group, int i);
/* Stops the sentinels, the master and the replica; frees group. NULL is safe. */
void h_sentinel_group_stop(h_sentinel_group_t *group);

#endif
