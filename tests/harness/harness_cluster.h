/*
 * harness_cluster.h — a local Redis Cluster for tests: masters with replicas, each a
 * redis-server from h_redis_start with --cluster-enabled, joined by `redis-cli --cluster create`.
 */
#ifndef RKB_TESTS_HARNESS_CLUSTER_H
#define RKB_TESTS_HARNESS_CLUSTER_H

#include "harness.h"

#define H_CLUSTER_MAX_NODES 12

typedef struct h_cluster_s {
    h_redis_t *nodes[H_CLUSTER_MAX_NODES];
    int node_cnt;
} h_cluster_t;

/* Starts masters * (1 + replicas) nodes (cluster-node-timeout 1000 ms, so that a killed master's
 * replica takes over within seconds), creates the cluster, and waits until every node says
 * cluster_state:ok and every replica is in sync. Fatal on failure. */
h_cluster_t *h_cluster_start(int masters, int replicas);
/* Stops every node. NULL is safe. */
void h_cluster_stop(h_cluster_t *cluster);
/* The node that is master of the key's slot now (asked of the nodes still running). */
h_redis_t *h_cluster_master_of(h_cluster_t *cluster, const char *key);
/* Waits until a running node other than `dead` masters the slots `dead` had and every running
 * node says cluster_state:ok. Returns false after timeout_ms. */
bool h_cluster_wait_failover(h_cluster_t *cluster, h_redis_t *dead, int timeout_ms);
/* Every key of the cluster's masters with its type and value rendered as text, one line each,
 * sorted ("key type value"): two clusters (or one before and after) compare as strings.
 * Caller frees. */
char *h_cluster_dump(h_cluster_t *cluster);
/* The same over any servers (a single one: cnt 1); only masters are read. */
char *h_dump_nodes(h_redis_t *const *nodes, int cnt);

#endif
