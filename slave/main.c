/* strata-slave: wires the slave's modules together. */
#include <signal.h>
#include <stdlib.h>

#include "commands.h"
#include "dps.h"
#include "httpapi.h"
#include "link.h"
#include "log.h"
#include "push.h"
#include "slave.h"
#include "workers.h"

static void on_reload(struct daemon *d, void *arg)
{
	struct slave *sl = arg;
	link_reload(sl->link);
	workers_signal(sl->workers, SIGHUP);
}

/* A push worker (-W N): the push server alone, in its own process. */
static int run_worker(struct slave *sl)
{
	char err[1024];
	if (agentpki_init(&sl->agent_pki, sl->d.cfg.data_dir, sl->d.cfg.name, sl->d.cfg.push_hosts,
			  err, sizeof(err)) != 0)
		log_fatalx("agent PKI in %s: %s", sl->d.cfg.data_dir, err);
	sl->push = push_start(&sl->d, &sl->agent_pki, err, sizeof(err));
	if (!sl->push)
		log_fatalx("push server: %s", err);
	daemon_run(&sl->d);
	push_shutdown(sl->push);
	event_base_loop(sl->d.base, EVLOOP_NONBLOCK);
	push_free(sl->push);
	agentpki_free(&sl->agent_pki);
	daemon_free(&sl->d);
	return 0;
}

int main(int argc, char **argv)
{
	static struct slave sl;
	char err[1024];

	daemon_init(&sl.d, argc, argv, CFG_ROLE_SLAVE, schema_slave);
	sl.d.arg = &sl;
	if (sl.d.worker > 0)
		return run_worker(&sl);
	sl.d.on_reload = on_reload;
	sl.link = link_new(&sl);
	if (!sl.link)
		log_fatalx("out of memory");
	/* Before the workers start: they load the agent CA and push certificate made here. */
	if (agentpki_init(&sl.agent_pki, sl.d.cfg.data_dir, sl.d.cfg.name, sl.d.cfg.push_hosts, err,
			  sizeof(err)) != 0)
		log_fatalx("agent PKI in %s: %s", sl.d.cfg.data_dir, err);
	/* No distribution point is linked before a push server of this start takes it. */
	if (dps_reset(sl.d.db, err, sizeof(err)) != 0)
		log_warnx("cannot reset the distribution points' link status: %s", err);
	if (sl.d.cfg.push_port != 0 && sl.d.cfg.push_workers >= 2) {
		sl.workers = workers_start(&sl.d, sl.d.cfg.push_workers, err, sizeof(err));
		if (!sl.workers)
			log_fatalx("push workers: %s", err);
	} else if (sl.d.cfg.push_port != 0) {
		sl.push = push_start(&sl.d, &sl.agent_pki, err, sizeof(err));
		if (!sl.push)
			log_fatalx("push server: %s", err);
	}
	daemon_admin(&sl.d, commands_handle, &sl);
	httpapi_start(&sl);
	link_start(sl.link);
	daemon_ready(&sl.d, "slave '%s' ready", sl.d.cfg.name);
	daemon_run(&sl.d);
	workers_stop(sl.workers);
	push_shutdown(sl.push);
	link_free(sl.link);
	event_base_loop(sl.d.base, EVLOOP_NONBLOCK);
	push_free(sl.push);
	agentpki_free(&sl.agent_pki);
	daemon_free(&sl.d);
	return 0;
}
