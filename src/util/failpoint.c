/*
 * failpoint.c — RKB_FAILPOINT parsing and firing (see failpoint.h).
 */
#include "util/failpoint.h"

#include "util/log.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const char *spec; /* NULL: no failpoints armed */

static void load(void) {
    const char *env = getenv("RKB_FAILPOINT");
    spec = env && *env ? env : NULL;
}

/* True if spec arms name with a threshold <= value. */
static bool armed(const char *name, int64_t value) {
    size_t name_len = strlen(name);
    const char *p = spec;
    while (p && *p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= name_len && !strncmp(p, name, name_len) &&
            (len == name_len || p[name_len] == '@')) {
            int64_t threshold = len > name_len ? strtoll(p + name_len + 1, NULL, 10) : 0;
            if (value >= threshold)
                return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

bool rkb_failpoint_armed(const char *name, int64_t value) {
    pthread_once(&once, load);
    return spec && armed(name, value);
}

void rkb_failpoint(const char *name, int64_t value) {
    pthread_once(&once, load);
    if (!spec || !armed(name, value))
        return;
    rkb_log_warn("failpoint", "%s fired at %lld: killing the process", name, (long long)value);
    kill(getpid(), SIGKILL);
    pause();
}
