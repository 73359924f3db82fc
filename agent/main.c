#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "conn.h"
#include "enrol.h"
#include "log.h"
#include "sim.h"
#include "state.h"

static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	log_notice("agent: signal %d, stopping", (int)sig);
	aconn_stop(arg);
}

/* --simulate N: the simulator forks its own processes, each with its own event loop. */
static int simulate(const struct acli *cli)
{
	char err[1024];
	struct sim_opts o = { .dir = cli->state_dir,
			      .n = cli->simulate,
			      .procs = cli->procs,
			      .host = cli->host,
			      .port = cli->port,
			      .token = cli->token,
			      .sources = cli->sources,
			      .rate = cli->rate,
			      .inflight = cli->inflight,
			      .duration = cli->duration,
			      .events_per_min = cli->events_per_min,
			      .fast_heartbeat =
				  cli->fast_heartbeat ? cli->fast_heartbeat : SIM_FAST_HEARTBEAT };
	int rc = cli->cmd == ACLI_ENROL ? sim_enrol(&o, err, sizeof(err))
					: sim_run(&o, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "strata-agent: simulator: %s\n", err);
	return rc == 0 ? 0 : 1;
}

static int run(struct event_base *base, const struct acli *cli)
{
	char err[1024];
	if (!astate_enrolled(cli->state_dir)) {
		fprintf(stderr,
			"strata-agent: %s holds no identity; run 'strata-agent -s %s enrol' "
			"first\n",
			cli->state_dir, cli->state_dir);
		return 1;
	}
	struct aconn_opts o = { .state_dir = cli->state_dir,
				.poll_interval = cli->poll_interval,
				.scan_root = cli->scan_root };
	struct aconn *c = aconn_new(base, &o, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "strata-agent: %s\n", err);
		return 1;
	}
	struct event *sigterm = evsignal_new(base, SIGTERM, on_stop_signal, c);
	struct event *sigint = evsignal_new(base, SIGINT, on_stop_signal, c);
	event_add(sigterm, NULL);
	event_add(sigint, NULL);
	aconn_start(c);
	event_base_dispatch(base);
	event_free(sigterm);
	event_free(sigint);
	aconn_free(c);
	log_notice("agent: stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct acli cli;
	char err[1024];
	if (acli_parse(argc, argv, &cli, err, sizeof(err)) != 0) {
		fprintf(stderr, "strata-agent: %s\n%s", err, ACLI_USAGE);
		return 2;
	}
	if (cli.help) {
		fputs(ACLI_USAGE, stdout);
		return 0;
	}
	log_init("strata-agent", false, cli.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
	/* A write to a closed connection is an error to handle, not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	if (cli.simulate)
		return simulate(&cli);
	struct event_base *base = event_base_new();
	if (!base) {
		fprintf(stderr, "strata-agent: cannot create the event loop\n");
		return 1;
	}
	int rc;
	if (cli.cmd == ACLI_ENROL) {
		struct aenrol_opts o = { .state_dir = cli.state_dir,
					 .host = cli.host,
					 .port = cli.port,
					 .token = cli.token,
					 .mode = cli.mode,
					 .hostname = cli.hostname };
		rc = aenrol_run(base, &o, err, sizeof(err)) == 0 ? 0 : 1;
		if (rc == 0)
			printf("enrolled; start the agent with: strata-agent -s %s run\n",
			       cli.state_dir);
		else
			fprintf(stderr, "strata-agent: enrolment failed: %s\n", err);
	} else {
		rc = run(base, &cli);
	}
	event_base_free(base);
	return rc;
}
