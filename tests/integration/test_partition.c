/*
 * Partitions and slow links: the master and the slave each in a network
 * namespace of their own, joined by a veth pair on a random 10.x.y.0/30.
 * The link is slowed, made lossy and cut while rows go up; after it heals
 * both sides hold the same rows (count + checksum per stream) within two
 * sync attempts. A slave cut off for longer than its interval keeps
 * serving a real agent, shows its backlog growing (size and age) in
 * `sync status` and /metrics, and drains it to 0 with a rate once the link
 * is back.
 *
 * Needs root and `ip netns`. Delay and loss use tc netem when the kernel
 * has sch_netem. Without it the loss comes from an nftables rule dropping
 * at random, and the delay from a TCP relay (harness_relay.c) in the
 * master's namespace: the slave's <master> points at the relay, which
 * listens on the veth address, connects to the master for each connection
 * and holds every chunk of bytes, each way, for delay ± jitter before
 * passing it on (0 outside the delay case), so a sync session sees a real
 * round trip of twice the delay. The relay counts what it held back, which
 * shows the delay was applied.
 *
 * The test process itself enters the slave's namespace: the slave, the
 * agent, strata-ctl and curl then all share it, and only the master is
 * started in the other one. PostgreSQL and the admin sockets are unix
 * sockets, which do not depend on the network namespace.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_relay.h"
#include "tls.h"

#define NS_PREFIX "strata-pt"
#define IP	  "/usr/sbin/ip"
#define TC	  "/usr/sbin/tc"
#define CURL	  "/usr/bin/curl"
#define TOKEN	  "partition-test-token-0123456789"
/* The slave's settings: short enough that an outage outlives the interval. */
#define INTERVAL	10
#define SESSION_TIMEOUT 8

static struct hnode master, slave;
static char ns_m[64], ns_s[64], veth_m[16], veth_s[16];
static char addr_m[32], addr_s[32];
static bool netns_made, have_netem;
static int http_port;
static char token_path[700], agent_dir[700], agent_log[700], scan_dir[700];
static pid_t agent_pid;
/* Without netem: the delaying relay the slave reaches the master through. */
static struct hrelay *relay;
static char agent_uid[80];

/* ---- commands ---- */

static int run(const char *what, char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0 && !what) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	int st = 0;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (rc != 0 && what)
		fprintf(stderr, "partition: %s failed (exit %d)\n", what, rc);
	return rc;
}

#define RUN(what, ...) run(what, (char *const[]){ __VA_ARGS__, NULL })
/* Same, its failure expected or harmless (cleanup): no output. */
#define RUNQ(...) run(NULL, (char *const[]){ __VA_ARGS__, NULL })

/* ---- namespaces ---- */

static void netns_cleanup(void)
{
	if (!netns_made)
		return;
	netns_made = false;
	RUNQ(IP, "netns", "del", ns_m);
	RUNQ(IP, "netns", "del", ns_s);
	RUNQ(IP, "link", "del", veth_m);
}

/* Namespaces of earlier runs whose test process is gone (a crash, a kill). */
static void remove_leftovers(void)
{
	DIR *d = opendir("/run/netns");
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
			continue;
		long pid = strtol(de->d_name + strlen(NS_PREFIX), NULL, 10);
		if (pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0)
			continue; /* a run going on now */
		fprintf(stderr, "partition: removing leftover namespace %s\n", de->d_name);
		RUNQ(IP, "netns", "del", de->d_name);
	}
	closedir(d);
}

static void on_signal(int sig)
{
	hp_kill9(&master);
	hp_kill9(&slave);
	netns_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static int enter_netns(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		fprintf(stderr, "partition: cannot enter %s: %s\n", name, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int netns_setup(void)
{
	if (geteuid() != 0) {
		fprintf(stderr, "partition: this suite needs root (network namespaces, veth, tc); "
				"run it as root, as CI does\n");
		return -1;
	}
	if (access(IP, X_OK) != 0 || access(TC, X_OK) != 0 || RUNQ(IP, "netns", "list") != 0) {
		fprintf(stderr, "partition: `ip netns` and tc (iproute2) are needed; "
				"scripts/setup.sh installs them\n");
		return -1;
	}
	remove_leftovers();
	unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL);
	int a = 100 + (int)(r % 100), b = (int)((r >> 8) % 64) * 4;
	snprintf(ns_m, sizeof(ns_m), NS_PREFIX "%d-m", (int)getpid());
	snprintf(ns_s, sizeof(ns_s), NS_PREFIX "%d-s", (int)getpid());
	snprintf(veth_m, sizeof(veth_m), "spt%dm", (int)getpid() % 10000000);
	snprintf(veth_s, sizeof(veth_s), "spt%ds", (int)getpid() % 10000000);
	snprintf(addr_m, sizeof(addr_m), "10.%d.%d.1", a, b);
	snprintf(addr_s, sizeof(addr_s), "10.%d.%d.2", a, b);
	char cidr_m[40], cidr_s[40];
	snprintf(cidr_m, sizeof(cidr_m), "%s/30", addr_m);
	snprintf(cidr_s, sizeof(cidr_s), "%s/30", addr_s);
	netns_made = true;
	atexit(netns_cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	RUNQ(IP, "link", "del", veth_m);
	if (RUN("ip netns add", IP, "netns", "add", ns_m) != 0 ||
	    RUN("ip netns add", IP, "netns", "add", ns_s) != 0 ||
	    RUN("ip link add veth", IP, "link", "add", veth_m, "type", "veth", "peer", "name",
		veth_s) != 0 ||
	    RUN("ip link set netns", IP, "link", "set", veth_m, "netns", ns_m) != 0 ||
	    RUN("ip link set netns", IP, "link", "set", veth_s, "netns", ns_s) != 0 ||
	    RUN("ip addr add", IP, "-n", ns_m, "addr", "add", cidr_m, "dev", veth_m) != 0 ||
	    RUN("ip addr add", IP, "-n", ns_s, "addr", "add", cidr_s, "dev", veth_s) != 0 ||
	    RUN("ip link up", IP, "-n", ns_m, "link", "set", veth_m, "up") != 0 ||
	    RUN("ip link up", IP, "-n", ns_s, "link", "set", veth_s, "up") != 0 ||
	    RUN("ip link up lo", IP, "-n", ns_m, "link", "set", "lo", "up") != 0 ||
	    RUN("ip link up lo", IP, "-n", ns_s, "link", "set", "lo", "up") != 0)
		return -1;
	/* sch_netem is a module some kernels lack; say so once. */
	have_netem = RUNQ(TC, "-n", ns_m, "qdisc", "add", "dev", veth_m, "root", "netem", "delay",
			  "1ms") == 0;
	RUNQ(TC, "-n", ns_m, "qdisc", "del", "dev", veth_m, "root");
	if (!have_netem)
		fprintf(stderr, "partition: this kernel has no sch_netem (tc netem): delay comes "
				"from a delaying TCP relay, loss from nftables\n");
	fprintf(stderr, "partition: master %s in %s, slave %s in %s\n", addr_m, ns_m, addr_s, ns_s);
	return enter_netns(ns_s);
}

/* ---- link impairments, on both ends ---- */

static char *ns_of(int end)
{
	return end == 0 ? ns_m : ns_s;
}

static char *dev_of(int end)
{
	return end == 0 ? veth_m : veth_s;
}

static void link_clear(void)
{
	for (int e = 0; e < 2; e++) {
		RUNQ(TC, "-n", ns_of(e), "qdisc", "del", "dev", dev_of(e), "root");
		RUNQ(IP, "netns", "exec", ns_of(e), "nft", "delete", "table", "inet",
		     "strata_partition");
	}
}

/* delay ± jitter ms each way: netem on both ends, else the relay. */
static int link_delay(int delay_ms, int jitter_ms)
{
	char delay[16], jitter[16];
	if (!have_netem) {
		hrelay_set_delay(relay, delay_ms, jitter_ms);
		return 0;
	}
	if (delay_ms == 0 && jitter_ms == 0)
		return 0;
	snprintf(delay, sizeof(delay), "%dms", delay_ms);
	snprintf(jitter, sizeof(jitter), "%dms", jitter_ms);
	for (int e = 0; e < 2; e++)
		if (RUN("tc netem delay", TC, "-n", ns_of(e), "qdisc", "add", "dev", dev_of(e),
			"root", "netem", "delay", delay, jitter) != 0)
			return -1;
	return 0;
}

static int link_loss(int percent)
{
	char pct[16], rule[256];
	snprintf(pct, sizeof(pct), "%d%%", percent);
	snprintf(rule, sizeof(rule),
		 "add table inet strata_partition; add chain inet strata_partition out "
		 "{ type filter hook output priority 0; }; add rule inet strata_partition out "
		 "numgen random mod 100 < %d drop",
		 percent);
	for (int e = 0; e < 2; e++) {
		int rc = have_netem ? RUN("tc netem loss", TC, "-n", ns_of(e), "qdisc", "add",
					  "dev", dev_of(e), "root", "netem", "loss", pct)
				    : RUN("nft loss", IP, "netns", "exec", ns_of(e), "nft", rule);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/* A slow link, so a large upload takes seconds: tbf exists where netem may not. */
static int link_slow(const char *rate)
{
	for (int e = 0; e < 2; e++)
		if (RUN("tc tbf", TC, "-n", ns_of(e), "qdisc", "add", "dev", dev_of(e), "root",
			"tbf", "rate", (char *)rate, "burst", "32kb", "latency", "5s") != 0)
			return -1;
	return 0;
}

static int link_set(const char *state)
{
	return RUN("ip link set", IP, "-n", ns_s, "link", "set", veth_s, (char *)state);
}

/* ---- database helpers ---- */

static long long slave_id(void)
{
	return hp_query_ll(&master, "SELECT id FROM slaves WHERE name = 'edge'");
}

struct stream_check {
	const char *slave_table, *master_table, *cols, *slave_where;
};

static const struct stream_check checks[] = {
	{ "groups", "groups", "id::text || name || path || version", "" },
	{ "endpoints", "endpoints",
	  "id::text || uid || hostname || status || coalesce(group_id::text, '') || version", "" },
	{ "events", "events", "id::text || kind || severity || details::text || version", "" },
	{ "task_results", "task_results",
	  "task_id::text || ':' || endpoint_id::text || status || coalesce(result::text, '') || "
	  "version",
	  "" },
	{ "policies", "slave_policies", "id::text || name || settings::text || version",
	  " WHERE owner = 'local'" },
	{ "tasks", "slave_tasks", "id::text || name || kind || params::text || version",
	  " WHERE owner = 'local'" },
};

static char *fingerprint(struct hnode *n, const struct stream_check *c, bool on_master)
{
	char sql[1024], where[64];
	if (on_master)
		snprintf(where, sizeof(where), " WHERE slave_id = %lld", slave_id());
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) || '/' || coalesce(sum(hashtext(%s)::bigint), 0) FROM %s%s",
		 c->cols, on_master ? c->master_table : c->slave_table,
		 on_master ? where : c->slave_where);
	return hp_query1(n, sql);
}

/* Per stream count + checksum equal on both sides; print=true says what differs. */
static bool converged(bool print)
{
	bool same = true;
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char *a = fingerprint(&slave, &checks[i], false);
		char *b = fingerprint(&master, &checks[i], true);
		if (!a || !b || strcmp(a, b) != 0) {
			same = false;
			if (print)
				fprintf(stderr, "partition: %s: slave %s, master %s\n",
					checks[i].slave_table, a ? a : "?", b ? b : "?");
		}
		free(a);
		free(b);
	}
	return same;
}

/* ---- sync status and /metrics ---- */

struct backlog {
	long long rows; /* -1: not found */
	double age_s;	/* NAN: null */
	double rate;	/* fields.upload_rate_rows_s, NAN: null */
};

static struct backlog status_backlog(const char *stream)
{
	struct backlog b = { -1, NAN, NAN };
	char *out = NULL;
	if (hp_ctl(&slave, &out, "--json", "sync", "status", NULL) != 0) {
		fprintf(stderr, "partition: sync status: %s\n", out ? out : "");
		free(out);
		return b;
	}
	json_t *j = json_loads(out, 0, NULL);
	free(out);
	json_t *cols = json_object_get(j, "columns"), *rows = json_object_get(j, "rows");
	json_t *rate = json_object_get(json_object_get(j, "fields"), "upload_rate_rows_s");
	if (json_is_number(rate))
		b.rate = json_number_value(rate);
	size_t ci_rows = 99, ci_age = 99, i, r;
	json_t *v, *row;
	json_array_foreach (cols, i, v) {
		if (strcmp(json_string_value(v), "backlog_rows") == 0)
			ci_rows = i;
		if (strcmp(json_string_value(v), "backlog_age_s") == 0)
			ci_age = i;
	}
	json_array_foreach (rows, r, row) {
		if (strcmp(json_string_value(json_array_get(row, 0)), stream) != 0)
			continue;
		json_t *n = json_array_get(row, ci_rows), *age = json_array_get(row, ci_age);
		b.rows = json_is_integer(n) ? json_integer_value(n) : -1;
		if (json_is_number(age))
			b.age_s = json_number_value(age);
	}
	json_decref(j);
	return b;
}

/* The slave's /metrics, fetched with curl from the slave's namespace. */
static char *metrics(void)
{
	char url[64], ca[700], *out = NULL;
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/metrics", http_port);
	snprintf(ca, sizeof(ca), "%s/agent-ca.crt", slave.dir);
	if (hp_run(&out, CURL, "-sS", "--max-time", "10", "--cacert", ca, "-H",
		   "Authorization: Bearer " TOKEN, url, NULL) != 0) {
		fprintf(stderr, "partition: GET /metrics: %s\n", out ? out : "");
		free(out);
		return NULL;
	}
	return out;
}

/* A sample's value, NAN when absent. */
static double sample(const char *text, const char *name)
{
	size_t n = strlen(name);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	return NAN;
}

static double metric(const char *name)
{
	char *m = metrics();
	double v = m ? sample(m, name) : NAN;
	free(m);
	return v;
}

/* ---- suite ---- */

static int write_token(void)
{
	snprintf(token_path, sizeof(token_path), "%s/api.token", hp_root());
	FILE *f = fopen(token_path, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", TOKEN);
	if (fclose(f) != 0)
		return -1;
	return chmod(token_path, 0600);
}

static int suite_init(void)
{
	char xml[2048];
	signal(SIGPIPE, SIG_IGN);
	if (hpg_require() != 0 || netns_setup() != 0 || write_token() != 0)
		return -1;
	snprintf(xml, sizeof(xml), "  <limits session-timeout=\"%d\"/>", SESSION_TIMEOUT);
	if (hp_master_init(&master, "hq", xml) != 0)
		return -1;
	snprintf(master.netns, sizeof(master.netns), "%s", ns_m);
	snprintf(master.sync_addr, sizeof(master.sync_addr), "%s", addr_m);
	if (hp_write_config(&master, xml) != 0 || hp_start(&master) != 0)
		return -1;
	int master_port = master.port;
	if (!have_netem) {
		if (hrelay_start(&relay, ns_m, addr_m, addr_m, master.port) != 0)
			return -1;
		master_port = hrelay_port(relay);
		fprintf(stderr,
			"partition: the slave reaches the master through a relay on %s:%d\n",
			addr_m, master_port);
	}
	if (hp_slave_init(&slave, "edge", master_port, INTERVAL, NULL) != 0)
		return -1;
	http_port = hp_free_port();
	/* Every timeout covers a few round trips of the slowest link here. */
	snprintf(xml, sizeof(xml),
		 "  <limits handshake-timeout=\"20\" session-timeout=\"%d\"/>\n"
		 "  <master host=\"%s\" port=\"%d\"/>\n"
		 "  <replication interval=\"%d\" jitter=\"0\" batch-rows=\"500\" retry-min=\"1\" "
		 "retry-max=\"2\"/>\n"
		 "  <push heartbeat=\"5\"/>\n"
		 "  <http address=\"127.0.0.1\" port=\"%d\" token-file=\"%s\"/>",
		 SESSION_TIMEOUT, addr_m, master_port, INTERVAL, http_port, token_path);
	if (hp_write_config(&slave, xml) != 0 || hp_start(&slave) != 0)
		return -1;
	if (hp_enrol(&master, &slave) != 0)
		return -1;
	if (hf_script(&slave, "INSERT INTO groups (name, path) VALUES ('branch', '/branch')") != 0)
		return -1;
	return hf_script(&slave, "INSERT INTO endpoints (uid, hostname, group_id, os, status) "
				"SELECT 'pt-' || g, 'pt-h' || g, 1, 'Debian 12', 'offline' "
				"FROM generate_series(1, 200) g");
}

static int suite_clean(void)
{
	hp_stop_checked(&agent_pid, agent_log);
	link_clear();
	hp_cleanup(&slave);
	hp_cleanup(&master);
	hrelay_stop(&relay);
	netns_cleanup();
	return 0;
}

static int add_events(int n, const char *tag)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO events (endpoint_id, kind, severity, details) "
		 "SELECT 1 + g %% 200, 'detection', 'high', jsonb_build_object('n', g, 't', '%s') "
		 "FROM generate_series(1, %d) g",
		 tag, n);
	return hf_script(&slave, sql);
}

/* Runs `sync now` until one succeeds (at most tries); the number it took, or -1. */
static int sync_until_ok(int tries)
{
	for (int i = 1; i <= tries; i++) {
		char *out = NULL;
		int rc = hp_ctl(&slave, &out, "--timeout", "120", "sync", "now", NULL);
		if (rc != 0)
			fprintf(stderr, "partition: sync now %d: %s", i, out ? out : "");
		free(out);
		if (rc == 0)
			return i;
	}
	return -1;
}

static void test_baseline(void)
{
	CU_ASSERT_FATAL(sync_until_ok(3) > 0);
	CU_ASSERT_TRUE(converged(true));
	struct backlog b = status_backlog("endpoints");
	CU_ASSERT_EQUAL(b.rows, 0);
	CU_ASSERT_DOUBLE_EQUAL(b.age_s, 0, 1e-9);
	CU_ASSERT_FALSE(isnan(b.rate));
}

struct delay_case {
	const char *name;
	int delay_ms, jitter_ms; /* each way */
	int events;		 /* new rows to send; fewer where a round trip is long */
};

static const struct delay_case delay_cases[] = {
	{ "no delay", 0, 0, 2000 },
	{ "0.5 s +- 0.25 s", 500, 250, 3000 },
	{ "2 s", 2000, 0, 300 },
};

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * (a) a sync with no delay, with 0.5 s +- 0.25 s and with 2 s each way:
 * each completes and converges. The relay's counters (without netem) show
 * the delay was applied; a `sync now` waits for the master's answers, so
 * it lasts at least one round trip either way.
 */
static void test_delay(void)
{
	for (size_t i = 0; i < sizeof(delay_cases) / sizeof(delay_cases[0]); i++) {
		const struct delay_case *dc = &delay_cases[i];
		char tag[32], sql[128];
		snprintf(tag, sizeof(tag), "delay-%zu", i);
		snprintf(sql, sizeof(sql),
			 "UPDATE endpoints SET status = 'online' WHERE id %% 7 = %zu", i);
		CU_ASSERT_FATAL(add_events(dc->events, tag) == 0);
		CU_ASSERT_FATAL(hf_script(&slave, sql) == 0);
		CU_ASSERT_FATAL(link_delay(dc->delay_ms, dc->jitter_ms) == 0);
		if (relay)
			hrelay_reset_stats(relay);
		double t0 = mono_s();
		int took = sync_until_ok(3);
		double elapsed = mono_s() - t0;
		struct hrelay_stats st = { 0 };
		if (relay)
			hrelay_stats(relay, &st);
		link_delay(0, 0);
		link_clear();
		fprintf(stderr,
			"partition: delay %s: sync now took %.1f s (%d attempt(s)); relay: %llu "
			"new connection(s), %llu chunks, %llu held back, longest %llu ms\n",
			dc->name, elapsed, took, (unsigned long long)st.conns,
			(unsigned long long)st.chunks, (unsigned long long)st.delayed,
			(unsigned long long)st.max_delay_ms);
		CU_ASSERT(took > 0);
		CU_ASSERT_TRUE(converged(true));
		/* A check of the emulation, not of the product. */
		CU_ASSERT(elapsed >= 2.0 * (dc->delay_ms - dc->jitter_ms) / 1000.0);
		if (relay) {
			CU_ASSERT(st.chunks > 0);
			if (dc->delay_ms > 0) {
				CU_ASSERT(st.delayed > 0);
				CU_ASSERT(st.max_delay_ms >= (uint64_t)dc->delay_ms);
			}
		}
	}
}

/* (b) 20 % loss each way: converges. */
static void test_loss(void)
{
	CU_ASSERT_FATAL(add_events(3000, "loss") == 0);
	CU_ASSERT_FATAL(hf_script(&slave, "DELETE FROM events WHERE id % 11 = 0") == 0);
	CU_ASSERT_FATAL(link_loss(20) == 0);
	int took = sync_until_ok(5);
	link_clear();
	CU_ASSERT(took > 0);
	CU_ASSERT_TRUE(converged(true));
}

static bool some_events_acked(void *arg)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM sync_stream_stats WHERE stream = 'events' AND "
		 "acked_version > %lld",
		 *(long long *)arg);
	return hp_query_ll(&slave, sql) == 1;
}

static bool session_failed_since(void *arg)
{
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM sync_history WHERE NOT ok AND id > %lld",
		 *(long long *)arg);
	return hp_query_ll(&slave, sql) > 0;
}

struct healed {
	char at[64];	 /* slave's clock when the link came back */
	long long first; /* sync_history id of the first successful session since, 0 none */
};

static bool ok_since_heal(void *arg)
{
	struct healed *h = arg;
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT coalesce(min(id), 0) FROM sync_history WHERE ok AND finished_at >= '%s'",
		 h->at);
	h->first = hp_query_ll(&slave, sql);
	return h->first > 0;
}

/* Sessions that ended after the heal, up to and including the first successful one. */
static long long attempts_since_heal(const struct healed *h)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM sync_history WHERE finished_at >= '%s' AND id <= %lld",
		 h->at, h->first);
	return hp_query_ll(&slave, sql);
}

static void heal(struct healed *h)
{
	char *now = hp_query1(&slave, "SELECT now()::text");
	snprintf(h->at, sizeof(h->at), "%s", now ? now : "infinity");
	free(now);
	h->first = 0;
	CU_ASSERT(link_set("up") == 0);
	link_clear();
}

/* (c) the link cut while a large backlog goes up, then healed. */
static void test_cut_mid_transfer(void)
{
	long long acked = hp_query_ll(
	    &slave, "SELECT acked_version FROM sync_stream_stats WHERE stream = 'events'");
	long long last_id = hp_query_ll(&slave, "SELECT coalesce(max(id), 0) FROM sync_history");
	CU_ASSERT_FATAL(add_events(60000, "cut") == 0);
	CU_ASSERT_FATAL(link_slow("4mbit") == 0);
	/* The next attempt is the timer's (at most INTERVAL s): no waiting command in the way. */
	CU_ASSERT_TRUE_FATAL(hp_wait(some_events_acked, &acked, INTERVAL + 20));
	struct backlog during = status_backlog("events");
	CU_ASSERT_TRUE(link_set("down") == 0);
	fprintf(stderr, "partition: link cut with %lld events unsent\n", during.rows);
	CU_ASSERT(during.rows > 0);
	/* The master acknowledged part of it: the rest is the backlog. */
	CU_ASSERT(during.rows < 60000 + 3000);
	CU_ASSERT_TRUE(hp_wait(session_failed_since, &last_id, SESSION_TIMEOUT + 20));
	struct backlog cut = status_backlog("events");
	CU_ASSERT(cut.rows > 0);
	CU_ASSERT_FALSE(isnan(cut.rate));
	CU_ASSERT_FALSE(converged(false));

	struct healed h;
	heal(&h);
	CU_ASSERT_TRUE(hp_wait(ok_since_heal, &h, 60));
	long long attempts = attempts_since_heal(&h);
	fprintf(stderr, "partition: converged %lld attempt(s) after the link came back\n",
		attempts);
	CU_ASSERT(attempts >= 1 && attempts <= 2);
	CU_ASSERT_TRUE(converged(true));
	CU_ASSERT_EQUAL(status_backlog("events").rows, 0);
}

static bool agent_online(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM endpoints WHERE hostname = 'pt-agent' "
				   "AND status = 'online'") == 1;
}

static bool heartbeat_after(void *arg)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM endpoints WHERE hostname = 'pt-agent' AND last_seen > '%s'",
		 (const char *)arg);
	return hp_query_ll(&slave, sql) == 1;
}

static bool result_in(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM task_results r JOIN tasks t ON "
				   "t.id = r.task_id WHERE t.name = 'inv-outage' AND "
				   "r.status = 'succeeded'") == 1;
}

static bool detected(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM events v JOIN endpoints e ON "
				   "e.id = v.endpoint_id WHERE e.hostname = 'pt-agent' AND "
				   "v.kind = 'detection'") >= 1;
}

/* A file on the agent's block list, and the policy that lists it. */
static int block_list(void)
{
	static const char bad[] = "partition test: this file is on the block list";
	char path[800], sha[TLS_PIN_HEX_LEN + 1], settings[256], *out = NULL;
	snprintf(scan_dir, sizeof(scan_dir), "%s/scan", hp_root());
	snprintf(path, sizeof(path), "%s/bad.bin", scan_dir);
	if (mkdir(scan_dir, 0755) != 0)
		return -1;
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(bad, f);
	if (fclose(f) != 0)
		return -1;
	tls_sha256_hex(bad, strlen(bad), sha);
	snprintf(settings, sizeof(settings), "{\"block_sha256\": [\"%s\"]}", sha);
	int rc =
	    hp_ctl(&slave, &out, "policy", "create", "blocklist", "--settings", settings, NULL);
	free(out);
	return rc;
}

static bool events_backlog_above(void *arg)
{
	return status_backlog("events").rows > *(long long *)arg;
}

static bool failures_at_least(void *arg)
{
	long long *want = arg;
	return hp_query_ll(&slave, "SELECT count(*) FROM sync_history WHERE NOT ok") >= want[0];
}

/* (d) cut off for longer than the interval: agents are served, the backlog shows and drains. */
static void test_outage_longer_than_interval(void)
{
	char *out = NULL;
	snprintf(agent_dir, sizeof(agent_dir), "%s/agent", hp_root());
	snprintf(agent_log, sizeof(agent_log), "%s/agent.log", hp_root());
	CU_ASSERT_EQUAL_FATAL(block_list(), 0);
	char *tok = ha_make_token(&slave, "/branch");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL_FATAL(ha_agent_enrol(&slave, agent_dir, tok, "pt-agent", NULL), 0);
	free(tok);
	agent_pid =
	    hp_spawn_agent(agent_log, "-v", "-s", agent_dir, "run", "--scan-root", scan_dir, NULL);
	CU_ASSERT_TRUE_FATAL(hp_wait(agent_online, NULL, 20));
	CU_ASSERT_FATAL(sync_until_ok(3) > 0);
	CU_ASSERT_EQUAL(
	    hp_ctl(&slave, &out, "task", "create", "inv-outage", "--kind", "inventory", NULL), 0);
	free(out);

	long long failed_before =
	    hp_query_ll(&slave, "SELECT count(*) FROM sync_history WHERE NOT ok");
	CU_ASSERT_FATAL(link_set("down") == 0);
	char *cut_at = hp_query1(&slave, "SELECT now()::text");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cut_at);

	/* The agent is served while the master is out of reach. */
	char *uid = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'pt-agent'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	snprintf(agent_uid, sizeof(agent_uid), "%s", uid);
	free(uid);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"inv-outage\"}", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(result_in, NULL, 20));
	CU_ASSERT_TRUE(hp_wait(heartbeat_after, cut_at, 20));
	CU_ASSERT_TRUE(agent_online(NULL));
	/* A scan finds the blocked file: an event reported while the link is down. */
	char params[800];
	snprintf(params, sizeof(params), "{\"path\": \"%s\"}", scan_dir);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", "scan-outage", "--kind", "scan",
			       "--params", params, NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"scan-outage\"}", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(detected, NULL, 20));

	/* The backlog grows while the outage lasts. */
	struct backlog b1 = status_backlog("events");
	CU_ASSERT(b1.rows > 0);
	CU_ASSERT_FATAL(add_events(500, "outage") == 0);
	CU_ASSERT_TRUE(hp_wait(events_backlog_above, &b1.rows, 10));
	/* Longer than the interval: attempts failed, and the age shows it. */
	long long want = failed_before + 2;
	CU_ASSERT_TRUE(hp_wait(failures_at_least, &want, INTERVAL + 30));
	sleep(2);
	struct backlog b2 = status_backlog("events");
	fprintf(stderr, "partition: outage: events backlog %lld then %lld, age %.0f s\n", b1.rows,
		b2.rows, b2.age_s);
	CU_ASSERT(b2.rows >= b1.rows + 500);
	CU_ASSERT(b2.age_s > b1.age_s);
	CU_ASSERT(b2.age_s >= 1);
	char *m = metrics();
	CU_ASSERT_PTR_NOT_NULL(m);
	if (m) {
		double rows = sample(m, "strata_slave_sync_backlog_rows{stream=\"events\"}");
		double age = sample(m, "strata_slave_sync_backlog_age_seconds{stream=\"events\"}");
		CU_ASSERT(rows >= (double)b1.rows + 500);
		CU_ASSERT(age >= 1);
		CU_ASSERT_EQUAL(sample(m, "strata_slave_sync_failing"), 1);
		CU_ASSERT_FALSE(
		    isnan(sample(m, "strata_slave_sync_backlog_rows{stream=\"task_results\"}")));
		CU_ASSERT(sample(m, "strata_slave_sync_backlog_rows{stream=\"task_results\"}") >=
			  1);
	}
	free(m);
	free(cut_at);

	/* Healed: the backlog drains to 0 and the rate of the upload shows. */
	struct healed h;
	heal(&h);
	CU_ASSERT_TRUE(hp_wait(ok_since_heal, &h, 60));
	CU_ASSERT(attempts_since_heal(&h) <= 2);
	/* The session that drained it is the last one until the next interval. */
	struct backlog drained_now = status_backlog("events");
	double rate = metric("strata_slave_sync_upload_rate_rows_per_second");
	fprintf(stderr, "partition: upload rate after the outage %.1f rows/s (metric %.1f)\n",
		drained_now.rate, rate);
	CU_ASSERT(drained_now.rate > 0);
	CU_ASSERT(rate > 0);
	hp_stop_checked(&agent_pid, agent_log);
	/* The agent's goodbye is one more change; it goes up with one more session. */
	sleep(1);
	CU_ASSERT(sync_until_ok(3) > 0);
	CU_ASSERT_TRUE(converged(true));
	struct backlog after = status_backlog("events");
	CU_ASSERT_EQUAL(after.rows, 0);
	CU_ASSERT_DOUBLE_EQUAL(after.age_s, 0, 1e-9);
	CU_ASSERT_FALSE(isnan(after.rate));
	CU_ASSERT_EQUAL(metric("strata_slave_sync_backlog_rows{stream=\"events\"}"), 0);
	CU_ASSERT_EQUAL(metric("strata_slave_sync_backlog_age_seconds{stream=\"events\"}"), 0);
	CU_ASSERT_EQUAL(metric("strata_slave_sync_failing"), 0);
	/* The rate of the upload that drained the outage's backlog. */
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT (rows_sent->>'events')::bigint FROM sync_history WHERE id = %lld",
		 h.first);
	long long drained = hp_query_ll(&slave, sql);
	fprintf(stderr, "partition: drained %lld events after the outage\n", drained);
	CU_ASSERT(drained >= b2.rows);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("partition", suite_init, suite_clean);
	CU_add_test(s, "baseline: in step, no backlog", test_baseline);
	CU_add_test(s, "delay: none, 0.5 s with jitter, 2 s", test_delay);
	CU_add_test(s, "packet loss", test_loss);
	CU_add_test(s, "link cut mid-transfer, then healed", test_cut_mid_transfer);
	CU_add_test(s, "outage longer than the interval", test_outage_longer_than_interval);
	return hp_run_suite();
}
