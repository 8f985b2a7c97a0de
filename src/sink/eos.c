/*
 * eos.c — exactly-once into Redis (eos.h): the Lua script that applies a partition's records and
 * advances its offset in one atomic step, the EVALSHA calls that carry the records to it, and
 * the reads of the stored offsets at assignment.
 *
 * Data path: the sink's writer encodes each record into commands (in_transaction mode: no
 * MULTI/EXEC of its own); a call copies them, record by record, into the arguments of one
 * EVALSHA; redis/ sends it; the script skips what is already applied, checks and runs the rest
 * and stores the next offset; rkb_eos_parse_reply tells the sink what happened.
 *
 * The call, as the script reads it:
 *
 *     EVALSHA sha numkeys  offset_key data_key...  record_count  record...
 *
 *     KEYS[1]    the partition's offset key (a string holding the next offset, decimal)
 *     KEYS[2..]  every distinct data key the commands touch: argv[1] of each command but
 *                PUBLISH (whose argv[1] is a channel). Declared for Redis Cluster; the script
 *                itself reads the keys from the commands.
 *     ARGV       record_count, then per record, in ascending offset order:
 *                    offset  command_count  (argc  arg_1 .. arg_argc) x command_count
 *                e.g. two records, the second with no command:
 *                    2  7 2  4 HINCRBY cnt u1 1  3 EXPIRE cnt 60  8 0
 *
 * The reply is {applied, next_offset, bad_offset, reason}: bad_offset -1 and reason "" when every
 * record was applied or skipped.
 *
 * @locality a call belongs to one sink task thread. The script's SHA is process-wide (every
 * server gives the same text the same SHA) and guarded by sha_lock.
 */
#include "sink/eos.h"

#include "util/lua.h"
#include "util/util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The offset key; the partition is the hash tag (see eos.h). */
#define OFFSET_KEY_FORMAT "rkbridge:offset:{%s:%" PRId32 "}:%s"

/* User text quoted in a message is cut to this many bytes. */
#define QUOTE_MAX 64

/*
 * The apply script (SEMANTICS.md §2.4), src/sink/apply.lua, sent after the libraries whose
 * pseudo-commands it runs (RKB.CACHE: src/process/cache.lua; RKB.WINDOW: src/process/window.lua). Redis runs it atomically, but does not undo the writes
 * made before an error inside it (§2.3): so every command of a record is checked against the
 * current types and values before the first of them runs, and commands run with redis.pcall, so
 * that even a failure the checks cannot foresee (OOM, an INCRBY overflow, a module command that
 * refuses its arguments) stops the script with the offset stored next to what was written,
 * instead of raising with earlier records applied and the offset not advanced — a replay would
 * then apply them twice. Such a failure is the one case where the earlier commands of the same
 * record stay applied: the writer puts the command that can fail first in every record (the
 * write, then EXPIRE), so in practice nothing of the record is written.
 *
 * Numbers: Lua's are doubles, exact for offsets up to 2^53; offsets are formatted with '%d'
 * (never "1e+15") and returned as integer replies.
 */
static const char script_head[] =
    "-- Pseudo-commands by name: {check = fn(argv) -> reason|nil, run = fn(argv) -> reason|nil}\n"
    "local pseudo = {}\n"
    "-- What pseudo-commands counted in this call: {name = n}\n"
    "local counters = {}\n";

static pthread_once_t script_once = PTHREAD_ONCE_INIT;
static char *apply_script; /* built once: head, libraries, apply.lua */
static size_t apply_script_len;

static void build_script(void) {
    rkb_buf_t buf;
    rkb_buf_init(&buf);
    rkb_buf_appends(&buf, script_head);
    rkb_buf_append(&buf, rkb_lua_cache, rkb_lua_cache_len);
    rkb_buf_append(&buf, rkb_lua_window, rkb_lua_window_len);
    rkb_buf_append(&buf, rkb_lua_apply, rkb_lua_apply_len);
    apply_script = buf.data; /* lives as long as the process */
    apply_script_len = buf.len;
}

static const char *script_text(size_t *len) {
    pthread_once(&script_once, build_script);
    *len = apply_script_len;
    return apply_script;
}

static pthread_mutex_t sha_lock = PTHREAD_MUTEX_INITIALIZER;
static char script_sha[41]; /* "" until the first SCRIPT LOAD answered */

const char *rkb_eos_offset_key(const char *ns, const char *topic, int32_t partition, char *out,
                               size_t size) {
    snprintf(out, size, OFFSET_KEY_FORMAT, topic, partition, ns);
    return out;
}

bool rkb_eos_error_is_noscript(const char *msg) {
    return msg && !strncmp(msg, "NOSCRIPT", 8) && (msg[8] == ' ' || msg[8] == '\0');
}

int rkb_eos_load(rkb_redis_t *redis, char *errstr, size_t errstr_size) {
    size_t script_len;
    const char *script = script_text(&script_len);
    char sha[41];
    int err = rkb_redis_script_load(redis, "the exactly-once script", script, script_len, sha,
                                    errstr, errstr_size);
    if (err == RKB_REDIS_OK) {
        pthread_mutex_lock(&sha_lock);
        memcpy(script_sha, sha, sizeof(script_sha));
        pthread_mutex_unlock(&sha_lock);
    }
    return err;
}

/* ---- Calls -------------------------------------------------------------------------------- */

struct rkb_eos_call_s {
    rkb_buf_t offset_key;
    /* One entry per record: its ARGV words (offset, command count, then argc and the
     * arguments of each command). Entries, not one long command, so that the arena's own
     * arrays say where each word is. */
    rkb_cmds_t *records;
    /* One entry per distinct data key, in the order first seen. */
    rkb_cmds_t *keys;
    /* Open addressing over keys: slot = entry index + 1, 0 = empty. Power-of-two size, kept
     * at most half full. */
    size_t *key_slots;
    size_t key_slots_cnt;
};

rkb_eos_call_t *rkb_eos_call_new(void) {
    rkb_eos_call_t *call = rkb_calloc(1, sizeof(*call));
    rkb_buf_init(&call->offset_key);
    call->records = rkb_cmds_new();
    call->keys = rkb_cmds_new();
    call->key_slots_cnt = 64;
    call->key_slots = rkb_calloc(call->key_slots_cnt, sizeof(*call->key_slots));
    return call;
}

void rkb_eos_call_destroy(rkb_eos_call_t *call) {
    if (!call)
        return;
    rkb_buf_free(&call->offset_key);
    rkb_cmds_destroy(call->records);
    rkb_cmds_destroy(call->keys);
    free(call->key_slots);
    free(call);
}

void rkb_eos_call_begin(rkb_eos_call_t *call, const char *offset_key) {
    rkb_buf_reset(&call->offset_key);
    rkb_buf_appends(&call->offset_key, offset_key);
    rkb_cmds_reset(call->records);
    rkb_cmds_reset(call->keys);
    memset(call->key_slots, 0, call->key_slots_cnt * sizeof(*call->key_slots));
}

/* FNV-1a. */
static uint64_t key_hash(const char *data, size_t len) {
    uint64_t hash = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        hash ^= (unsigned char)data[i];
        hash *= 1099511628211ULL;
    }
    return hash;
}

/* The slot that holds key, or the empty slot where it belongs. */
static size_t key_slot(const rkb_eos_call_t *call, const char *data, size_t len) {
    size_t mask = call->key_slots_cnt - 1;
    for (size_t slot = key_hash(data, len) & mask;; slot = (slot + 1) & mask) {
        size_t entry = call->key_slots[slot];
        if (!entry)
            return slot;
        size_t entry_len;
        const char *entry_data = rkb_cmds_argv(call->keys, entry - 1, 0, &entry_len);
        if (entry_len == len && !memcmp(entry_data, data, len))
            return slot;
    }
}

static void keys_grow(rkb_eos_call_t *call) {
    free(call->key_slots);
    call->key_slots_cnt *= 2;
    call->key_slots = rkb_calloc(call->key_slots_cnt, sizeof(*call->key_slots));
    size_t cnt = rkb_cmds_count(call->keys);
    for (size_t i = 0; i < cnt; i++) {
        size_t len;
        const char *data = rkb_cmds_argv(call->keys, i, 0, &len);
        call->key_slots[key_slot(call, data, len)] = i + 1;
    }
}

static void key_add(rkb_eos_call_t *call, const char *data, size_t len) {
    size_t slot = key_slot(call, data, len);
    if (call->key_slots[slot])
        return;
    rkb_cmds_begin(call->keys);
    rkb_cmds_arg(call->keys, data, len);
    size_t entry = rkb_cmds_end(call->keys);
    call->key_slots[slot] = entry + 1;
    if ((entry + 1) * 2 > call->key_slots_cnt)
        keys_grow(call);
}

/* PUBLISH's argv[1] is a channel; every other command the writer emits has its key there. */
static bool has_key(const char *name, size_t len) {
    return !(len == 7 && !strncasecmp(name, "PUBLISH", 7));
}

void rkb_eos_call_add(rkb_eos_call_t *call, int64_t offset, const rkb_cmds_t *from, size_t first,
                      int cnt) {
    rkb_cmds_t *records = call->records;
    rkb_cmds_begin(records);
    rkb_cmds_arg_int(records, offset);
    rkb_cmds_arg_int(records, cnt);
    for (size_t i = first; i < first + (size_t)cnt; i++) {
        int argc = rkb_cmds_argc(from, i);
        rkb_cmds_arg_int(records, argc);
        for (int j = 0; j < argc; j++) {
            size_t len;
            const char *data = rkb_cmds_argv(from, i, j, &len);
            rkb_cmds_arg(records, data, len);
        }
        size_t name_len, key_len;
        const char *name = rkb_cmds_argv(from, i, 0, &name_len);
        if (argc > 1 && has_key(name, name_len)) {
            const char *key = rkb_cmds_argv(from, i, 1, &key_len);
            key_add(call, key, key_len);
        }
    }
    rkb_cmds_end(records);
}

/* Without a loaded SHA (no rkb_eos_load yet) the call carries the script itself: EVAL also
 * caches it, and the result is the same. */
void rkb_eos_call_end(rkb_eos_call_t *call, rkb_cmds_t *out) {
    char sha[sizeof(script_sha)];
    pthread_mutex_lock(&sha_lock);
    memcpy(sha, script_sha, sizeof(sha));
    pthread_mutex_unlock(&sha_lock);

    size_t key_cnt = rkb_cmds_count(call->keys);
    size_t record_cnt = rkb_cmds_count(call->records);
    rkb_cmds_begin(out);
    if (*sha) {
        rkb_cmds_args(out, "EVALSHA");
        rkb_cmds_args(out, sha);
    } else {
        size_t script_len;
        const char *script = script_text(&script_len);
        rkb_cmds_args(out, "EVAL");
        rkb_cmds_arg(out, script, script_len);
    }
    rkb_cmds_arg_int(out, (int64_t)(1 + key_cnt));
    rkb_cmds_arg(out, call->offset_key.data, call->offset_key.len);
    for (size_t i = 0; i < key_cnt; i++) {
        size_t len;
        const char *data = rkb_cmds_argv(call->keys, i, 0, &len);
        rkb_cmds_arg(out, data, len);
    }
    rkb_cmds_arg_int(out, (int64_t)record_cnt);
    for (size_t i = 0; i < record_cnt; i++) {
        int argc = rkb_cmds_argc(call->records, i);
        for (int j = 0; j < argc; j++) {
            size_t len;
            const char *data = rkb_cmds_argv(call->records, i, j, &len);
            rkb_cmds_arg(out, data, len);
        }
    }
    rkb_cmds_end(out);
}

int rkb_eos_parse_reply(const redisReply *reply, rkb_eos_result_t *result, char *errstr,
                        size_t errstr_size) {
    if (!reply) {
        snprintf(errstr, errstr_size, "exactly-once script: no reply");
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        /* As Redis said it, so that the caller can classify it (NOSCRIPT, BUSY, ...). */
        snprintf(errstr, errstr_size, "%s", reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 4 || reply->elements > 5 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER ||
        reply->element[2]->type != REDIS_REPLY_INTEGER ||
        reply->element[3]->type != REDIS_REPLY_STRING) {
        snprintf(errstr, errstr_size,
                 "exactly-once script: unexpected reply (type %d, %zu elements), want "
                 "{applied, next offset, bad offset, reason}",
                 reply->type, reply->type == REDIS_REPLY_ARRAY ? reply->elements : (size_t)0);
        return -1;
    }
    result->applied = reply->element[0]->integer;
    result->next_offset = reply->element[1]->integer;
    result->bad_offset = reply->element[2]->integer;
    snprintf(result->bad_reason, sizeof(result->bad_reason), "%.*s", (int)reply->element[3]->len,
             reply->element[3]->str);
    result->counter_cnt = 0;
    const redisReply *counters = reply->elements == 5 ? reply->element[4] : NULL;
    for (size_t i = 0; counters && counters->type == REDIS_REPLY_ARRAY &&
                       i + 1 < counters->elements &&
                       result->counter_cnt < RKB_ARRAY_SIZE(result->counters);
         i += 2) {
        const redisReply *name = counters->element[i], *n = counters->element[i + 1];
        if (name->type != REDIS_REPLY_STRING || n->type != REDIS_REPLY_INTEGER)
            continue;
        snprintf(result->counters[result->counter_cnt].name,
                 sizeof(result->counters[0].name), "%.*s", (int)name->len, name->str);
        result->counters[result->counter_cnt].n = n->integer;
        result->counter_cnt++;
    }
    return 0;
}

/* ---- Offsets at assignment ---------------------------------------------------------------- */

int rkb_eos_parse_offset(const redisReply *reply, const char *key, int64_t *offset, char *errstr,
                         size_t errstr_size) {
    if (reply->type == REDIS_REPLY_NIL) {
        *offset = -1;
        return RKB_REDIS_OK;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errstr_size, "reading offset key '%s': %s", key, reply->str);
        return rkb_redis_error_code(reply->str);
    }
    if (reply->type == REDIS_REPLY_STRING && strlen(reply->str) == reply->len &&
        !rkb_parse_int64(reply->str, 0, INT64_MAX, offset))
        return RKB_REDIS_OK;
    if (reply->type == REDIS_REPLY_STRING)
        snprintf(errstr, errstr_size, "offset key '%s' holds '%.*s', not an offset", key,
                 (int)(reply->len < QUOTE_MAX ? reply->len : QUOTE_MAX), reply->str);
    else
        snprintf(errstr, errstr_size, "offset key '%s': unexpected reply (type %d)", key,
                 reply->type);
    return RKB_REDIS_ERR_PROTO;
}

int rkb_eos_read_offsets(rkb_redis_t *redis, const char *ns, const char *const *topics,
                         const int32_t *partitions, size_t cnt, int64_t *offsets, char *errstr,
                         size_t errstr_size) {
    if (!cnt)
        return RKB_REDIS_OK;
    rkb_cmds_t *cmds = rkb_cmds_new();
    for (size_t i = 0; i < cnt; i++) {
        rkb_cmds_begin(cmds);
        rkb_cmds_args(cmds, "GET");
        rkb_cmds_argf(cmds, OFFSET_KEY_FORMAT, topics[i], partitions[i], ns);
        rkb_cmds_end(cmds);
    }
    redisReply **replies = rkb_calloc(cnt, sizeof(*replies));
    int err = rkb_redis_pipeline(redis, cmds, replies, errstr, errstr_size);
    for (size_t i = 0; i < cnt && !err; i++)
        err = rkb_eos_parse_offset(replies[i], rkb_cmds_argv(cmds, i, 1, NULL), &offsets[i], errstr,
                           errstr_size);
    rkb_redis_replies_free(replies, cnt);
    free(replies);
    rkb_cmds_destroy(cmds);
    return err;
}

int64_t rkb_eos_result_counter(const rkb_eos_result_t *result, const char *name) {
    for (size_t i = 0; i < result->counter_cnt; i++)
        if (!strcmp(result->counters[i].name, name))
            return result->counters[i].n;
    return 0;
}
