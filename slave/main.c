/* strata-slave: wires the slave's modules together. */
#include <stdlib.h>

#include "commands.h"
#include "link.h"
#include "log.h"
#include "push.h"
#include "slave.h"

static void on_reload(struct daemon *d, void *arg)
{
	struct slave *sl = arg;
	link_reload(sl->link);
}

int main(int argc, char **argv)
{
	static struct slave sl;
	char err[1024];

	daemon_init(&sl.d, argc, argv, CFG_ROLE_SLAVE, schema_slave);
	sl.d.arg = &sl;
	sl.d.on_reload = on_reload;
	sl.link = link_new(&sl);
	if (!sl.link)
		log_fatalx("out of memory");
	if (agentpki_init(&sl.agent_pki, sl.d.cfg.data_dir, sl.d.cfg.name, sl.d.cfg.push_hosts,
			  err, sizeof(err)) != 0)
		log_fatalx("agent PKI in %s: %s", sl.d.cfg.data_dir, err);
	if (sl.d.cfg.push_port != 0) {
		sl.push = push_start(&sl.d, &sl.agent_pki, err, sizeof(err));
		if (!sl.push)
			log_fatalx("push server: %s", err);
	}
	daemon_admin(&sl.d, commands_handle, &sl);
	link_start(sl.link);
	log_notice("slave '%s' ready", sl.d.cfg.name);
	daemon_run(&sl.d);
	push_shutdown(sl.push);
	link_free(sl.link);
	event_base_loop(sl.d.base, EVLOOP_NONBLOCK);
	push_free(sl.push);
	agentpki_free(&sl.agent_pki);
	daemon_free(&sl.d);
	return 0;
}
