/*
 * workers: the push server as N worker processes (<push workers="N">,
 * N >= 2), supervised by the slave's main process.
 *
 * Each worker is this same binary started again with "-W INDEX" (fork,
 * then exec of /proc/self/exe): a fresh process that reads server.xml,
 * opens its own database connections (main and LISTEN) and its own event
 * loop, and runs the push server on the shared port with SO_REUSEPORT.
 * Nothing of the main process survives the exec except stdin, stdout and
 * stderr, so the workers cannot disturb its libpq connection, its admin
 * socket, its link to the master or its libevent state (see
 * docs/ARCHITECTURE.md, "Push workers").
 *
 * The supervisor watches SIGCHLD on the main loop: a worker that dies is
 * logged and started again after a delay (1 s, doubling up to 60 s while
 * it keeps dying within 10 s of its start). Workers get SIGTERM when the
 * main process dies (PR_SET_PDEATHSIG), so none is left orphaned.
 */
#ifndef STRATA_SLAVE_WORKERS_H
#define STRATA_SLAVE_WORKERS_H

#include <stddef.h>
#include <sys/types.h>

#include "daemon.h"

struct push_workers;

/* Starts n workers; d must outlive them. NULL with err when none could start. */
struct push_workers *workers_start(struct daemon *d, int n, char *err, size_t errlen);
/* Sends sig (SIGHUP: re-read server.xml) to every running worker. */
void workers_signal(struct push_workers *w, int sig);
/* The pid of worker index (1..n), 0 while it is not running. */
pid_t workers_pid(const struct push_workers *w, int index);
/*
 * SIGTERM to every worker, waits for them (up to 10 s, then SIGKILL) and
 * frees w. Blocking: called after the event loop has ended. NULL is fine.
 */
void workers_stop(struct push_workers *w);

#endif
