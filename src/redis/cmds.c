/*
 * cmds.c — the command batch (rkb_cmds_t) that writers fill and rkb_redis_pipeline sends.
 *
 * Data path: a record is encoded by the sink's writer into commands here (begin, arg..., end);
 * redis.c then formats the whole batch as RESP in one buffer and writes it in one go.
 *
 * Layout: one arena holds the bytes of every argument back to back (each followed by a NUL so
 * that an argument can be read as a C string in tests and logs); an array of (offset, len) says
 * where each argument is; an array of (first argument, argc) says which arguments make each
 * command. All three grow geometrically and are kept by rkb_cmds_reset, so a warmed-up batch
 * allocates nothing per command.
 *
 * A rkb_cmds_t is used by one thread at a time; it holds no locks.
 */
#include "redis/redis.h"

#include "util/util.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    size_t offset; /* into bytes */
    size_t len;    /* without the trailing NUL */
} cmd_arg_t;

typedef struct {
    size_t first_arg; /* into args */
    int argc;
} cmd_t;

struct rkb_cmds_s {
    char *bytes; /* every argument, each NUL-terminated */
    size_t bytes_len;
    size_t bytes_cap;

    cmd_arg_t *args;
    size_t args_cnt;
    size_t args_cap;

    cmd_t *cmds; /* finished commands */
    size_t cmds_cnt;
    size_t cmds_cap;

    bool building;             /* between begin and end */
    size_t building_first_arg; /* the first argument of the command being built */
};

rkb_cmds_t *rkb_cmds_new(void) {
    return rkb_calloc(1, sizeof(rkb_cmds_t));
}

void rkb_cmds_destroy(rkb_cmds_t *cmds) {
    if (!cmds)
        return;
    free(cmds->bytes);
    free(cmds->args);
    free(cmds->cmds);
    free(cmds);
}

void rkb_cmds_reset(rkb_cmds_t *cmds) {
    cmds->bytes_len = 0;
    cmds->args_cnt = 0;
    cmds->cmds_cnt = 0;
    cmds->building = false;
}

/* Makes room for `more` bytes in the arena, doubling its size as often as needed. */
static void bytes_reserve(rkb_cmds_t *cmds, size_t more) {
    size_t need = cmds->bytes_len + more;
    if (need <= cmds->bytes_cap)
        return;
    size_t cap = cmds->bytes_cap ? cmds->bytes_cap : 4096;
    while (cap < need)
        cap *= 2;
    cmds->bytes = rkb_realloc(cmds->bytes, cap);
    cmds->bytes_cap = cap;
}

/* Records an argument of len bytes that starts at offset in the arena and is already
 * NUL-terminated there. */
static void arg_push(rkb_cmds_t *cmds, size_t offset, size_t len) {
    assert(cmds->building);
    if (cmds->args_cnt == cmds->args_cap) {
        cmds->args_cap = cmds->args_cap ? cmds->args_cap * 2 : 256;
        cmds->args = rkb_realloc(cmds->args, cmds->args_cap * sizeof(*cmds->args));
    }
    cmds->args[cmds->args_cnt].offset = offset;
    cmds->args[cmds->args_cnt].len = len;
    cmds->args_cnt++;
}

void rkb_cmds_begin(rkb_cmds_t *cmds) {
    assert(!cmds->building);
    cmds->building = true;
    cmds->building_first_arg = cmds->args_cnt;
}

void rkb_cmds_arg(rkb_cmds_t *cmds, const void *data, size_t len) {
    bytes_reserve(cmds, len + 1);
    size_t offset = cmds->bytes_len;
    if (len)
        memcpy(cmds->bytes + offset, data, len);
    cmds->bytes[offset + len] = '\0';
    cmds->bytes_len += len + 1;
    arg_push(cmds, offset, len);
}

void rkb_cmds_args(rkb_cmds_t *cmds, const char *str) {
    rkb_cmds_arg(cmds, str, strlen(str));
}

void rkb_cmds_arg_int(rkb_cmds_t *cmds, int64_t value) {
    char num[24];
    int len = snprintf(num, sizeof(num), "%" PRId64, value);
    rkb_cmds_arg(cmds, num, (size_t)len);
}

/* Formats straight into the arena: one vsnprintf when the space left is enough (the usual
 * case once warmed up), a second after growing when it was not. */
void rkb_cmds_argf(rkb_cmds_t *cmds, const char *fmt, ...) {
    va_list ap;
    bytes_reserve(cmds, 64);
    size_t offset = cmds->bytes_len;
    size_t room = cmds->bytes_cap - offset;

    va_start(ap, fmt);
    int len = vsnprintf(cmds->bytes + offset, room, fmt, ap);
    va_end(ap);
    assert(len >= 0);
    if ((size_t)len >= room) {
        bytes_reserve(cmds, (size_t)len + 1);
        va_start(ap, fmt);
        vsnprintf(cmds->bytes + offset, (size_t)len + 1, fmt, ap);
        va_end(ap);
    }
    cmds->bytes_len += (size_t)len + 1;
    arg_push(cmds, offset, (size_t)len);
}

size_t rkb_cmds_end(rkb_cmds_t *cmds) {
    assert(cmds->building);
    assert(cmds->args_cnt > cmds->building_first_arg); /* Redis has no empty command */
    if (cmds->cmds_cnt == cmds->cmds_cap) {
        cmds->cmds_cap = cmds->cmds_cap ? cmds->cmds_cap * 2 : 64;
        cmds->cmds = rkb_realloc(cmds->cmds, cmds->cmds_cap * sizeof(*cmds->cmds));
    }
    cmd_t *cmd = &cmds->cmds[cmds->cmds_cnt];
    cmd->first_arg = cmds->building_first_arg;
    cmd->argc = (int)(cmds->args_cnt - cmds->building_first_arg);
    cmds->building = false;
    return cmds->cmds_cnt++;
}

/* Also abandons a command begun but not ended: the undo of a record that failed half-way
 * through its encoding must leave nothing of it behind. */
void rkb_cmds_truncate(rkb_cmds_t *cmds, size_t n) {
    size_t first_arg;
    if (n < cmds->cmds_cnt) {
        first_arg = cmds->cmds[n].first_arg;
        cmds->cmds_cnt = n;
    } else if (cmds->building) {
        first_arg = cmds->building_first_arg;
    } else {
        return;
    }
    cmds->building = false;
    cmds->bytes_len = first_arg < cmds->args_cnt ? cmds->args[first_arg].offset : cmds->bytes_len;
    cmds->args_cnt = first_arg;
}

typedef enum { RUN_NONE, RUN_SET, RUN_DEL } run_kind_t;

static run_kind_t run_kind(const rkb_cmds_t *cmds, const cmd_t *cmd) {
    const cmd_arg_t *name = &cmds->args[cmd->first_arg];
    const char *text = cmds->bytes + name->offset;
    if (cmd->argc == 3 && name->len == 3 && !strcasecmp(text, "SET"))
        return RUN_SET;
    if (cmd->argc == 2 && name->len == 3 && !strcasecmp(text, "DEL"))
        return RUN_DEL;
    return RUN_NONE;
}

/* The Redis Cluster slot of a SET's or DEL's key (argument 1). */
static unsigned key_slot(const rkb_cmds_t *cmds, const cmd_t *cmd) {
    const cmd_arg_t *key = &cmds->args[cmd->first_arg + 1];
    return rkb_redis_key_slot(cmds->bytes + key->offset, key->len);
}

size_t rkb_cmds_coalesce(rkb_cmds_t *cmds, size_t max_keys, bool same_slot, size_t *map) {
    assert(!cmds->building);
    unsigned open_slot = 0; /* with same_slot: the slot of the run's keys */
    size_t mset_offset = SIZE_MAX; /* where "MSET" is in the arena, once needed */
    size_t w = 0, aw = 0;          /* the next command and argument written */
    run_kind_t open = RUN_NONE;    /* the kind of command w - 1, if it can take more keys */
    size_t open_keys = 0;
    for (size_t i = 0; i < cmds->cmds_cnt; i++) {
        cmd_t cmd = cmds->cmds[i]; /* a copy: command w may be the same slot */
        run_kind_t kind = run_kind(cmds, &cmd);
        unsigned slot = same_slot && kind != RUN_NONE ? key_slot(cmds, &cmd) : 0;
        if (kind != RUN_NONE && kind == open && open_keys < max_keys && slot == open_slot) {
            /* Join command w - 1: its arguments without the command name. */
            cmd_t *run = &cmds->cmds[w - 1];
            if (kind == RUN_SET && run->argc == 3) {
                if (mset_offset == SIZE_MAX) {
                    bytes_reserve(cmds, sizeof("MSET"));
                    mset_offset = cmds->bytes_len;
                    memcpy(cmds->bytes + mset_offset, "MSET", sizeof("MSET"));
                    cmds->bytes_len += sizeof("MSET");
                }
                cmds->args[run->first_arg].offset = mset_offset;
                cmds->args[run->first_arg].len = 4;
            }
            memmove(&cmds->args[aw], &cmds->args[cmd.first_arg + 1],
                    (size_t)(cmd.argc - 1) * sizeof(*cmds->args));
            aw += (size_t)cmd.argc - 1;
            run->argc += cmd.argc - 1;
            open_keys++;
            map[i] = w - 1;
            continue;
        }
        memmove(&cmds->args[aw], &cmds->args[cmd.first_arg], (size_t)cmd.argc * sizeof(*cmds->args));
        cmds->cmds[w].first_arg = aw;
        cmds->cmds[w].argc = cmd.argc;
        aw += (size_t)cmd.argc;
        map[i] = w++;
        open = kind;
        open_keys = 1;
        open_slot = slot;
    }
    cmds->cmds_cnt = w;
    cmds->args_cnt = aw;
    return w;
}

size_t rkb_cmds_count(const rkb_cmds_t *cmds) {
    return cmds->cmds_cnt;
}

int rkb_cmds_argc(const rkb_cmds_t *cmds, size_t i) {
    assert(i < cmds->cmds_cnt);
    return cmds->cmds[i].argc;
}

const char *rkb_cmds_argv(const rkb_cmds_t *cmds, size_t i, int j, size_t *len) {
    assert(i < cmds->cmds_cnt);
    assert(j >= 0 && j < cmds->cmds[i].argc);
    const cmd_arg_t *arg = &cmds->args[cmds->cmds[i].first_arg + (size_t)j];
    if (len)
        *len = arg->len;
    return cmds->bytes + arg->offset;
}

#define DESCRIBE_ARG_MAX 64

void rkb_cmds_describe(const rkb_cmds_t *cmds, size_t i, rkb_buf_t *out) {
    int argc = rkb_cmds_argc(cmds, i);
    for (int j = 0; j < argc; j++) {
        size_t len;
        const unsigned char *arg = (const unsigned char *)rkb_cmds_argv(cmds, i, j, &len);
        size_t shown = len > DESCRIBE_ARG_MAX ? DESCRIBE_ARG_MAX : len;
        if (j > 0)
            rkb_buf_append(out, " ", 1);
        for (size_t k = 0; k < shown; k++) {
            if (arg[k] >= 0x20 && arg[k] < 0x7f)
                rkb_buf_append(out, &arg[k], 1);
            else
                rkb_buf_appendf(out, "\\x%02x", arg[k]);
        }
        if (shown < len)
            rkb_buf_append(out, "...", 3);
    }
}
