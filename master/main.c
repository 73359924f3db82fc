/* strata-master: wires the master's modules together. */
#include <stdlib.h>

#include "commands.h"
#include "httpapi.h"
#include "log.h"
#include "master.h"
#include "session.h"

int main(int argc, char **argv)
{
	static struct master m;
	char err[1024];

	daemon_init(&m.d, argc, argv, CFG_ROLE_MASTER, schema_master);
	m.d.arg = &m;
	if (pki_init(&m.pki, m.d.cfg.data_dir, m.d.cfg.name, m.d.cfg.cert_hosts, err,
		     sizeof(err)) != 0)
		log_fatalx("pki: %s", err);
	if (session_listen(&m, err, sizeof(err)) != 0)
		log_fatalx("%s", err);
	daemon_admin(&m.d, commands_handle, &m);
	httpapi_start(&m);
	daemon_ready(&m.d, "master '%s' ready", m.d.cfg.name);
	daemon_run(&m.d);
	session_shutdown(&m);
	/* Let the deferred closes run before the loop goes away. */
	event_base_loop(m.d.base, EVLOOP_NONBLOCK);
	pki_free(&m.pki);
	daemon_free(&m.d);
	return 0;
}
