/* strata-slave: wires the slave's modules together. */
#include <stdlib.h>

#include "commands.h"
#include "link.h"
#include "log.h"
#include "slave.h"

static void on_reload(struct daemon *d, void *arg)
{
	struct slave *sl = arg;
	link_reload(sl->link);
}

int main(int argc, char **argv)
{
	static struct slave sl;

	daemon_init(&sl.d, argc, argv, CFG_ROLE_SLAVE, schema_slave);
	sl.d.arg = &sl;
	sl.d.on_reload = on_reload;
	sl.link = link_new(&sl);
	if (!sl.link)
		log_fatalx("out of memory");
	daemon_admin(&sl.d, commands_handle, &sl);
	link_start(sl.link);
	log_notice("slave '%s' ready", sl.d.cfg.name);
	daemon_run(&sl.d);
	link_free(sl.link);
	event_base_loop(sl.d.base, EVLOOP_NONBLOCK);
	daemon_free(&sl.d);
	return 0;
}
