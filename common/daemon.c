#include "daemon.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faultpoint.h"
#include "log.h"
#include "sdnotify.h"

static void usage(const char *prog, enum cfg_role role, FILE *out)
{
	fprintf(out,
		"usage: %s [-c server.xml] [-T] [-V]\n"
		"  -c FILE  configuration file (default /etc/strata/server.xml)\n"
		"  -T       check the configuration file and exit\n"
		"  -V       print the version and exit\n",
		prog);
	if (role == CFG_ROLE_SLAVE)
		fprintf(out, "  -W N     (internal) run as push worker N; started by strata-slave "
			     "itself\n");
}

int daemon_mkdirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	struct stat st;
	if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", tmp);
		return -1;
	}
	return 0;
}

/*
 * One connection is one descriptor: a daemon holding thousands of agents or
 * slaves needs the hard limit, not the soft default (often 1024). Raising
 * the soft limit needs no privilege.
 */
static void daemon_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("getrlimit(RLIMIT_NOFILE)");
		return;
	}
	if (rl.rlim_cur == rl.rlim_max) {
		log_info("open files limit %llu", (unsigned long long)rl.rlim_cur);
		return;
	}
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		log_warn("cannot raise the open files limit from %llu to %llu",
			 (unsigned long long)was, (unsigned long long)rl.rlim_max);
		return;
	}
	log_info("open files limit %llu (raised from %llu)", (unsigned long long)rl.rlim_cur,
		 (unsigned long long)was);
}

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct cfg next;
	char err[1024], status[1400];
	sdnotify_reloading();
	if (cfg_load(d->cfg_path, d->role, &next, err, sizeof(err)) != 0) {
		log_error("reload: %s; keeping the current settings", err);
		/* Still serving, with the old settings: say so, and why. */
		snprintf(status, sizeof(status), "%s; reload failed, current settings kept: %s",
			 d->ready_status, err);
		sdnotify_ready(status);
		return;
	}
	cfg_reload(&d->cfg, &next);
	log_set_level(d->cfg.log_level);
	log_notice("reload: %s applied", d->cfg_path);
	if (d->on_reload)
		d->on_reload(d, d->arg);
	sdnotify_ready(d->ready_status);
}

static void on_term(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	log_notice("signal %d: shutting down", (int)fd);
	sdnotify_stopping();
	event_base_loopexit(d->base, NULL);
}

void daemon_init(struct daemon *d, int argc, char **argv, enum cfg_role role,
		 const struct migration *schema)
{
	char err[1024];
	bool check_only = false;
	int c;

	memset(d, 0, sizeof(*d));
	d->role = role;
	d->schema = schema;
	d->progname = role == CFG_ROLE_MASTER  ? "strata-master"
		      : role == CFG_ROLE_SLAVE ? "strata-slave"
					       : "strata-dp";
	snprintf(d->cfg_path, sizeof(d->cfg_path), "/etc/strata/server.xml");
	log_init(d->progname, false, LOG_LVL_INFO);

	while ((c = getopt(argc, argv, "c:TVhW:")) != -1) {
		switch (c) {
		case 'c':
			if (snprintf(d->cfg_path, sizeof(d->cfg_path), "%s", optarg) >=
			    (int)sizeof(d->cfg_path)) {
				fprintf(stderr, "%s: -c: path too long\n", d->progname);
				exit(2);
			}
			break;
		case 'T':
			check_only = true;
			break;
		case 'V':
			printf("%s %s\n", d->progname, STRATA_VERSION);
			exit(0);
		case 'W': {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (role != CFG_ROLE_SLAVE || *end != '\0' || n < 1 || n > 64) {
				fprintf(stderr, "%s: -W: only strata-slave runs push workers, 1..64\n",
					d->progname);
				exit(2);
			}
			d->worker = (int)n;
			break;
		}
		case 'h':
			usage(d->progname, role, stdout);
			exit(0);
		default:
			usage(d->progname, role, stderr);
			exit(2);
		}
	}
	/* A push worker is not the service's main process: the manager
	 * hears from the main process only (NotifyAccess=main). */
	if (d->worker > 0)
		sdnotify_disable();
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", d->progname, argv[optind]);
		usage(d->progname, role, stderr);
		exit(2);
	}

	if (cfg_load(d->cfg_path, role, &d->cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", d->progname, err);
		exit(1);
	}
	if (check_only) {
		printf("%s: configuration file %s is valid (role %s, name %s)\n", d->progname,
		       d->cfg_path, cfg_role_name(d->cfg.role), d->cfg.name);
		exit(0);
	}

	log_init(d->progname, d->cfg.log_syslog, d->cfg.log_level);
	if (d->worker > 0) {
		char ctx[32];
		snprintf(ctx, sizeof(ctx), "push worker %d", d->worker);
		log_set_context(ctx);
		log_notice("starting (pid %d)", (int)getpid());
	} else {
		log_notice("starting %s %s as %s '%s' (config %s)", d->progname, STRATA_VERSION,
			   cfg_role_name(role), d->cfg.name, d->cfg_path);
	}

	if (faultpoint_init(err, sizeof(err)) != 0)
		log_fatalx("%s", err);
	if (faultpoint_armed)
		log_warnx("test hook armed: %s", getenv("STRATA_FAULTPOINT"));

	daemon_raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	if (daemon_mkdirs(d->cfg.data_dir, 0700, err, sizeof(err)) != 0)
		log_fatalx("data directory: %s", err);

	d->base = event_base_new();
	if (!d->base)
		log_fatalx("cannot create the event loop");

	/* A distribution point keeps no database: the slave holds its agents' data. */
	if (role != CFG_ROLE_DP) {
		if (d->worker == 0)
			sdnotify_status("connecting to the database");
		d->db = db_connect(d->cfg.db_conninfo, d->cfg.db_connect_attempts,
				   d->cfg.db_retry_interval, err, sizeof(err));
		if (!d->db)
			log_fatalx("%s", err);
		if (d->worker == 0)
			sdnotify_status("applying the database schema migrations");
		if (d->worker == 0 && migrate_run(d->db, schema, err, sizeof(err)) != 0)
			log_fatalx("database schema: %s", err);
	}

	d->sig_hup = evsignal_new(d->base, SIGHUP, on_hup, d);
	d->sig_term = evsignal_new(d->base, SIGTERM, on_term, d);
	d->sig_int = evsignal_new(d->base, SIGINT, on_term, d);
	event_add(d->sig_hup, NULL);
	event_add(d->sig_term, NULL);
	event_add(d->sig_int, NULL);
}

int daemon_db_ensure(struct daemon *d)
{
	char err[1024];
	if (db_alive(d->db))
		return 0;
	if (db_reconnect(d->db, err, sizeof(err)) != 0) {
		log_warnx("database: connection lost and not back yet: %s", err);
		return -1;
	}
	log_notice("database: reconnected");
	return 0;
}

void daemon_admin(struct daemon *d, admin_handler handler, void *arg)
{
	char err[1024], dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", d->cfg.admin_socket);
	if (daemon_mkdirs(dirname(dir), 0755, err, sizeof(err)) != 0)
		log_fatalx("admin socket: %s", err);
	d->admin = admin_server_new(d->base, d->cfg.admin_socket, handler, arg, err, sizeof(err));
	if (!d->admin)
		log_fatalx("admin socket: %s", err);
}

void daemon_http(struct daemon *d, EVP_PKEY *key, X509 *cert, X509 *chain_ca,
		 const struct http_hooks *hooks)
{
	char err[1024];

	if (!d->cfg.http_enabled)
		return;
	d->http = http_start(d->base, &d->cfg, key, cert, chain_ca, hooks, err, sizeof(err));
	if (!d->http)
		log_error("http: API not started: %s", err);
}

void daemon_readiness(struct daemon *d, json_t *not_ready)
{
	char err[512];
	int version = 0;

	if (daemon_db_ensure(d) != 0) {
		json_array_append_new(not_ready, json_string("database"));
	} else if (migrate_current(d->db, &version, err, sizeof(err)) != 0) {
		log_warnx("readyz: %s", err);
		json_array_append_new(not_ready, json_string("database"));
	} else if (version != migrate_latest(d->schema)) {
		json_array_append_new(not_ready, json_string("schema"));
	}
	if (!d->admin)
		json_array_append_new(not_ready, json_string("admin socket"));
}

void daemon_ready(struct daemon *d, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->ready_status, sizeof(d->ready_status), fmt, ap);
	va_end(ap);
	log_notice("%s", d->ready_status);
	if (d->worker > 0)
		return;
	sdnotify_ready(d->ready_status);
	if (!d->watchdog)
		d->watchdog = sdnotify_watchdog_start(d->base);
}

void daemon_run(struct daemon *d)
{
	event_base_dispatch(d->base);
}

void daemon_free(struct daemon *d)
{
	if (d->admin)
		admin_server_free(d->admin);
	/* After the admin server, which answers the API's pending commands. */
	http_free(d->http);
	if (d->sig_hup)
		event_free(d->sig_hup);
	if (d->sig_term)
		event_free(d->sig_term);
	if (d->sig_int)
		event_free(d->sig_int);
	if (d->watchdog)
		event_free(d->watchdog);
	if (d->db)
		db_close(d->db);
	if (d->base)
		event_base_free(d->base);
	log_notice("stopped");
}
