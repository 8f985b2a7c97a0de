/*
 * task_ctl.h — how the connect layer steers a running task: stop it, pause and resume it (the
 * REST API's PUT .../pause and .../resume). One per task, owned by connect/connector.c and
 * handed to the kind's run function (task.h), whose loop reads it.
 *
 * Pause, as the task loop sees it: where the loop is about to take records in (poll Kafka, read
 * Redis) it calls rkb_task_ctl_hold(). While that returns true the loop takes nothing in, but
 * keeps finishing what it holds and serving what keeps it healthy (delivery reports, XACKs, the
 * consumer's heartbeats and rebalances, so a sink stays in its group). The pause is reported
 * (state PAUSED) only once the loop says it holds nothing any more (idle): PAUSED means no
 * record moves until resume. After resume the next hold() returns false and the task reports
 * RUNNING again, going on from where it stopped: nothing was taken in meanwhile, so nothing is
 * lost.
 *
 * @locality stop and pause are written by the worker's threads, read by the task thread;
 * paused is written by the task thread. All are atomics (stop is the volatile flag the kinds
 * have always polled).
 */
#ifndef RKB_CONNECT_TASK_CTL_H
#define RKB_CONNECT_TASK_CTL_H

#include <stdatomic.h>
#include <stdbool.h>

typedef struct rkb_task_ctl_s {
    volatile int stop;   /* set once: stop intake, finish in order, return */
    _Atomic bool pause;  /* requested */
    _Atomic bool paused; /* reported by the task: it holds nothing and takes nothing in */
} rkb_task_ctl_t;

/* The stop flag in the form the kinds' loops and helpers take it. */
static inline const volatile int *rkb_task_ctl_stop(const rkb_task_ctl_t *ctl) {
    return &ctl->stop;
}

/* Called by the task loop before it takes records in; idle: it holds no records and has none in
 * flight. Returns true while a pause is requested (take nothing in), reporting PAUSED once idle;
 * false otherwise, reporting RUNNING again after a pause. @locality the task thread */
bool rkb_task_ctl_hold(rkb_task_ctl_t *ctl, bool idle);

/* Requests a pause (true) or a resume (false). @locality any thread */
void rkb_task_ctl_pause(rkb_task_ctl_t *ctl, bool pause);
/* True while the task reports itself paused. @locality any thread */
bool rkb_task_ctl_paused(const rkb_task_ctl_t *ctl);

#endif
