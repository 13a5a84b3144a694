/*
 * isolates/server_audit.c: a listening shared server looks, about once a
 * second, for sockets in its SO_REUSEPORT group that its runtime did not
 * open: another process of the same user can join the group at any time.
 * Steering gives such a socket nothing, but the operator must know: the
 * server counts them (atoll_server_stats.foreign_members) and the first
 * server of the group to see a new one logs it once.
 */
#include "isolates/net_private.h"

#define ATOLL_AUDIT_PERIOD_MS 1000u

static void atoll_server_audit(struct atoll_server *s, uint64_t min_interval_ns)
{
    if (!s->member)
        return;
    atoll_listen_audit a;
    int rc = atoll__listen_audit(s->member, s->iso->now_ns, min_interval_ns, &a);
    s->stats->foreign_members = a.present;
    if (rc < 0 && !s->audit_failed) {
        /* Without inet_diag (a kernel built without it, a seccomp filter)
         * nothing can be seen; said once per server. */
        s->audit_failed = true;
        atoll__log(s->iso, ATOLL_LOG_WARNING, "atoll: server %s:%u: cannot list the listeners of its group (%s)",
                   s->address.text, s->port, atoll_strerror(rc));
    }
    if (a.newly)
        atoll__log(s->iso, ATOLL_LOG_WARNING,
                   "atoll: server %s:%u: %u socket(s) not opened by this runtime joined its SO_REUSEPORT group "
                   "(inode %llu%s); they get no connections, but remove them: steering counts on knowing "
                   "every member",
                   s->address.text, s->port, a.newly, (unsigned long long)a.first_new, a.newly > 1 ? ", ..." : "");
}

static void atoll_server_audit_fire(atoll_timer *t, void *user)
{
    (void)t;
    atoll_server_audit(user, (uint64_t)ATOLL_AUDIT_PERIOD_MS * 1000000u / 2);
}

void atoll__server_audit_start(struct atoll_server *s)
{
    if (!s->opts.shared || s->audit_timer)
        return;
    atoll_server_audit(s, 0); /* at once: the group just changed */
    /* Without the timer (out of memory) only group changes look; counted. */
    if (atoll_timer_start(s->iso, ATOLL_AUDIT_PERIOD_MS, ATOLL_AUDIT_PERIOD_MS, atoll_server_audit_fire, s,
                          &s->audit_timer) < 0)
        atoll_stat_add(&s->iso->stats.cqe_errors, 1);
}

void atoll__server_audit_stop(struct atoll_server *s)
{
    if (s->audit_timer) {
        atoll_timer_cancel(s->audit_timer);
        s->audit_timer = NULL;
    }
}
