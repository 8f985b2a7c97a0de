/*
 * task_ctl.c — the per-task pause and stop flags (see task_ctl.h).
 */
#include "connect/task_ctl.h"

bool rkb_task_ctl_hold(rkb_task_ctl_t *ctl, bool idle) {
    if (!atomic_load(&ctl->pause)) {
        atomic_store(&ctl->paused, false);
        return false;
    }
    if (idle)
        atomic_store(&ctl->paused, true);
    return true;
}

void rkb_task_ctl_pause(rkb_task_ctl_t *ctl, bool pause) {
    atomic_store(&ctl->pause, pause);
}

bool rkb_task_ctl_paused(const rkb_task_ctl_t *ctl) {
    return atomic_load(&ctl->paused);
}
