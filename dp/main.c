/* strata-dp: a distribution point, a push server that relays its agents to a slave. */
#include "log.h"
#include "relay.h"

int main(int argc, char **argv)
{
	static struct daemon d;
	char err[1024];

	daemon_init(&d, argc, argv, CFG_ROLE_DP, NULL);
	struct relay *r = relay_start(&d, err, sizeof(err));
	if (!r)
		log_fatalx("%s", err);
	daemon_ready(&d, "distribution point '%s' ready", d.cfg.name);
	daemon_run(&d);
	relay_shutdown(r);
	event_base_loop(d.base, EVLOOP_NONBLOCK);
	relay_free(r);
	daemon_free(&d);
	return 0;
}
