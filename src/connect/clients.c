/*
 * clients.c — client settings from a connector config (see clients.h).
 */
#include "connect/clients.h"

#include "util/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A copy of a string property's value, or NULL when it is empty. */
static char *nonempty_copy(const rkb_config_t *conf, const char *name) {
    const char *value = rkb_config_get(conf, name);
    return value && *value ? rkb_strdup(value) : NULL;
}

int rkb_connect_redis_conf(const rkb_config_t *conf, int task_id, rkb_redis_conf_t *out,
                           char *errstr, size_t errstr_size) {
    rkb_redis_conf_init(out);
    const char *uri = rkb_config_get(conf, "redis.uri");
    if (uri && *uri) {
        if (rkb_redis_conf_from_uri(out, uri, errstr, errstr_size))
            return -1;
    } else {
        free(out->host);
        out->host = rkb_strdup(rkb_config_get(conf, "redis.host"));
        out->port = (int)rkb_config_get_int(conf, "redis.port");
    }
    const char *user = rkb_config_get(conf, "redis.username");
    const char *password = rkb_config_get(conf, "redis.password");
    if (!out->username && user && *user)
        out->username = rkb_strdup(user);
    if (!out->password && password && *password)
        out->password = rkb_strdup(password);
    const char *cluster = rkb_config_get(conf, "redis.cluster");
    out->cluster = !strcasecmp(cluster, "true")    ? RKB_REDIS_CLUSTER_ON
                   : !strcasecmp(cluster, "false") ? RKB_REDIS_CLUSTER_OFF
                                                   : RKB_REDIS_CLUSTER_AUTO;
    /* TLS: rediss:// in redis.uri or redis.tls; the files are read when the task connects. */
    out->tls.enabled = out->tls.enabled || rkb_config_get_bool(conf, "redis.tls");
    out->tls.insecure = rkb_config_get_bool(conf, "redis.insecure");
    out->tls.ca_file = nonempty_copy(conf, "redis.cacert");
    out->tls.ca_dir = nonempty_copy(conf, "redis.cacert.dir");
    out->tls.cert_file = nonempty_copy(conf, "redis.key.cert");
    out->tls.key_file = nonempty_copy(conf, "redis.key.file");
    out->tls.key_password = nonempty_copy(conf, "redis.key.password");
    out->tls.server_name = nonempty_copy(conf, "redis.sni");
    int timeout_ms = (int)rkb_config_get_int(conf, "redis.timeout") * 1000;
    out->connect_timeout_ms = timeout_ms;
    out->command_timeout_ms = timeout_ms;

    /* CLIENT SETNAME takes no spaces. */
    char client_name[512];
    snprintf(client_name, sizeof(client_name), "rkbridge:%s:%d", rkb_config_get(conf, "name"),
             task_id);
    for (char *p = client_name; *p; p++)
        if (*p == ' ' || *p == '\n')
            *p = '_';
    free(out->client_name);
    out->client_name = rkb_strdup(client_name);
    return 0;
}

static void collect(const char *name, const char *value, const char *origin, void *opaque) {
    rkb_kafka_props_t *props = opaque;
    props->pairs = rkb_realloc(props->pairs, (props->cnt + 1) * 2 * sizeof(*props->pairs));
    props->pairs[2 * props->cnt] = rkb_strdup(name);
    props->pairs[2 * props->cnt + 1] = rkb_strdup(value);
    props->cnt++;
}

void rkb_connect_kafka_props(const rkb_config_t *conf, rkb_kafka_props_t *out) {
    out->pairs = NULL;
    out->cnt = 0;
    rkb_config_foreach_kafka(conf, collect, out);
}

void rkb_kafka_props_clear(rkb_kafka_props_t *props) {
    for (size_t i = 0; i < 2 * props->cnt; i++)
        free(props->pairs[i]);
    free(props->pairs);
    props->pairs = NULL;
    props->cnt = 0;
}

rkb_producer_t *rkb_connect_producer_new(const rkb_config_t *conf, int task_id, const char *suffix,
                                         const char *component, rkb_delivery_cb_t *on_delivery,
                                         void *opaque, char *errstr, size_t errstr_size) {
    rkb_kafka_props_t props;
    rkb_connect_kafka_props(conf, &props);
    char client_id[512];
    snprintf(client_id, sizeof(client_id), "rkbridge-%s-%d%s", rkb_config_get(conf, "name"),
             task_id, suffix ? suffix : "");
    rkb_producer_conf_t pc = {
        .component = component,
        .client_id = client_id,
        .props = (const char *const *)props.pairs,
        .prop_cnt = props.cnt,
        .on_delivery = on_delivery,
        .opaque = opaque,
    };
    rkb_producer_t *producer = rkb_producer_new(&pc, errstr, errstr_size);
    rkb_kafka_props_clear(&props);
    return producer;
}
