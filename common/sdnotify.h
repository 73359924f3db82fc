/*
 * sdnotify: the service manager's readiness protocol (sd_notify(3))
 * without libsystemd. When NOTIFY_SOCKET names an AF_UNIX datagram socket
 * (a path, or an abstract name written with a leading '@'), each call
 * sends one datagram of "KEY=VALUE" lines to it; without NOTIFY_SOCKET
 * every call does nothing. A failure to send is logged (once per kind of
 * failure) and never ends the daemon.
 *
 * The watchdog: when WATCHDOG_USEC is set (and WATCHDOG_PID, if set, is
 * this process), sdnotify_watchdog_start adds an event-loop timer that
 * sends WATCHDOG=1 every WATCHDOG_USEC / 2, so a loop that stops turning
 * stops the pings and the service manager restarts the daemon.
 */
#ifndef STRATA_SDNOTIFY_H
#define STRATA_SDNOTIFY_H

#include <stdint.h>

#include <event2/event.h>

/* 1 sent, 0 no NOTIFY_SOCKET (nothing to do), -1 failed (logged). */
int sdnotify_send(const char *msg);
int sdnotify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Shorthands: READY=1 with a STATUS line, RELOADING=1, STOPPING=1, STATUS. */
int sdnotify_ready(const char *status);
int sdnotify_reloading(void);
int sdnotify_stopping(void);
int sdnotify_status(const char *status);

/*
 * Forget NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID for this process
 * and its children (a push worker is not the service's main process).
 */
void sdnotify_disable(void);

/* The watchdog period from the environment in microseconds, 0 when off. */
uint64_t sdnotify_watchdog_usec(void);

/*
 * Starts the WATCHDOG=1 timer on base (and sends one ping at once);
 * NULL when the watchdog is off or the timer cannot be made.
 */
struct event *sdnotify_watchdog_start(struct event_base *base);

#endif
