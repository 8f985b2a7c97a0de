/*
 * source_util.c — helpers shared by the source tasks (see source_util.h).
 */
#include "source/source_util.h"

#include "util/log.h"
#include "util/util.h"

void rkb_source_backoff(rkb_producer_t *producer, int attempt, int64_t max_ms,
                        const volatile int *stop) {
    int64_t until = rkb_now_ms() + (attempt ? rkb_backoff_ms(attempt - 1, 100, max_ms) : 0);
    while (!*stop && rkb_now_ms() < until)
        rkb_producer_poll(producer, 50);
}

int rkb_source_flush(rkb_producer_t *producer, const char *component, int timeout_ms) {
    int left = rkb_producer_flush(producer, timeout_ms);
    if (left > 0)
        rkb_log_warn(component, "%d records not delivered within %d ms at shutdown", left,
                     timeout_ms);
    return left;
}

bool rkb_source_is_topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}
