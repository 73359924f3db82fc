/*
 * daemon: what both daemons do around their own work. Parses the command
 * line (-c FILE, -T, -V, -h), loads server.xml, sets up logging, makes the
 * data directory, connects to PostgreSQL (retrying with a log line per
 * attempt), applies the role's schema migrations, opens the admin socket
 * and turns SIGHUP / SIGTERM / SIGINT into libevent events.
 *
 * SIGHUP re-reads the file: a valid file replaces the reloadable settings
 * and on_reload is called; an invalid one is logged and nothing changes.
 */
#ifndef STRATA_DAEMON_H
#define STRATA_DAEMON_H

#include <event2/event.h>

#include "admin.h"
#include "cfg.h"
#include "db.h"
#include "http.h"
#include "migrate.h"

struct daemon {
	enum cfg_role role;
	const char *progname;
	char cfg_path[PATH_MAX];
	struct cfg cfg;
	struct event_base *base;
	struct db *db;
	struct admin_server *admin;
	struct event *sig_hup, *sig_term, *sig_int;
	struct event *watchdog; /* WATCHDOG=1 timer (sdnotify.h), NULL when off */
	char ready_status[256]; /* the STATUS line sent with READY=1 */
	void (*on_reload)(struct daemon *d, void *arg);
	void *arg;
	/*
	 * 0 in the main process; N in push worker N, which the slave starts as
	 * its own binary with the internal option -W N (see slave/workers.h).
	 * A worker skips the migrations (the main process ran them before it
	 * started the worker) and prefixes its log lines with "push worker N".
	 */
	int worker;
	/* The HTTP API (NULL without <http> or when it could not start) and
	 * the schema this binary expects, for its readiness check. */
	struct http_server *http;
	const struct migration *schema;
};

/*
 * Everything up to (not including) the admin socket. Exits with status 0
 * after -T on a valid file, 1 on any start-up failure (after logging the
 * reason), 2 on a usage error.
 */
void daemon_init(struct daemon *d, int argc, char **argv, enum cfg_role role,
		 const struct migration *schema);
/* Opens the admin socket with handler; exits 1 with the reason on failure. */
void daemon_admin(struct daemon *d, admin_handler handler, void *arg);
/*
 * Starts the HTTP API when <http> is configured, after daemon_admin(),
 * with the daemon's server certificate (key, cert, chain_ca). A failure
 * is logged and the daemon runs on without the API.
 */
void daemon_http(struct daemon *d, EVP_PKEY *key, X509 *cert, X509 *chain_ca,
		 const struct http_hooks *hooks);
/* Readiness common to both daemons: database reachable, schema at this
 * binary's version, admin socket open; appends what is not to not_ready. */
void daemon_readiness(struct daemon *d, json_t *not_ready);
/*
 * The daemon serves: logs msg (printf-style) at notice level and tells the
 * service manager READY=1 with msg as its STATUS (sdnotify.h), then starts
 * the watchdog pings when the manager asked for them. Call it once the
 * listeners and the admin socket are open. A SIGHUP reload afterwards sends
 * RELOADING=1, then READY=1 again; SIGTERM/SIGINT send STOPPING=1.
 */
void daemon_ready(struct daemon *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Runs the event loop until SIGTERM/SIGINT. */
void daemon_run(struct daemon *d);
void daemon_free(struct daemon *d);

/*
 * Reconnects when the database connection was lost (a restarted or
 * failed-over PostgreSQL). 0 when the connection is usable, else -1 after
 * logging the reason; the next call tries again.
 */
int daemon_db_ensure(struct daemon *d);

/* Makes dir (and parents) with the given mode if missing; 0 or -1 with err. */
int daemon_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen);

#endif
