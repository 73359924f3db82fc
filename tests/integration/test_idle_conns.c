/*
 * 10,000 connections that never authenticate, against the slave's push
 * port and then the master's sync port: half of them idle after the TCP
 * handshake, half send the first bytes of a TLS ClientHello and stop.
 * While they are held, the registered agent still runs a task and the
 * slave still completes a sync with the master; the daemon's memory grows
 * by a bounded amount per connection; after handshake-timeout the daemon
 * closes every one of them and says so in a few counted log lines, not
 * 10,000 single ones.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"

#define HOLD 10000
/* Long enough to hold the flood while a task runs and a sync completes. */
#define HANDSHAKE_S 20
/* Connections being set up at once: about the listeners' backlog (128). */
#define CONNECT_BATCH 100
/*
 * What one held connection may cost the daemon. A connection still in its
 * handshake is a socket, an OpenSSL SSL object with its handshake state
 * and its read buffer (about 17 KiB once a record has started to arrive),
 * a bufferevent with its two evbuffers and events, and the daemon's
 * connection record and chan (under 1 KiB). Measured here: about 45 KiB
 * per connection in a plain build, for the slave's push port and the
 * master's sync port alike. 64 KiB leaves room without hiding a buffer
 * that grows per connection (one more 16 KiB buffer each would fail it).
 * AddressSanitizer adds redzones around every block, shadow memory and
 * size-class rounding (about 65 KiB per connection measured in that
 * build), so a sanitized build is held to twice the bound.
 */
#ifdef __SANITIZE_ADDRESS__
#define PER_CONN_MAX_KIB 128
#else
#define PER_CONN_MAX_KIB 64
#endif

static struct hnode master, slave;
static char agent_dir[600], agent_log[700], agent_uid[80];
static pid_t agent_pid;
static int tasks_run;

/* A TLS 1.x record header announcing 512 bytes of handshake, then the start of a ClientHello. */
static const unsigned char partial_hello[] = {
	0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x5a, 0x5a, 0x5a,
	0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
};

static long proc_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	long v = -1;
	size_t flen = strlen(field);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, flen) == 0 && line[flen] == ':')
			v = strtol(line + flen + 1, NULL, 10);
	fclose(f);
	return v;
}

static int open_fds(pid_t pid)
{
	char path[64];
	int n = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The daemon and its push workers (its children, when it runs them). */
static int tree_pids(pid_t pid, pid_t *out, int max)
{
	char path[64];
	int n = 0;
	out[n++] = pid;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return n;
	int child;
	while (n < max && fscanf(f, "%d", &child) == 1)
		out[n++] = (pid_t)child;
	fclose(f);
	return n;
}

static int tree_fds(pid_t pid)
{
	pid_t pids[80];
	int n = tree_pids(pid, pids, 80), sum = 0;
	for (int i = 0; i < n; i++) {
		int fds = open_fds(pids[i]);
		if (fds < 0)
			return -1;
		sum += fds;
	}
	return sum;
}

static long tree_rss_kib(pid_t pid)
{
	pid_t pids[80];
	int n = tree_pids(pid, pids, 80);
	long sum = 0;
	for (int i = 0; i < n; i++) {
		long kib = proc_status_kib(pids[i], "VmRSS");
		if (kib < 0)
			return -1;
		sum += kib;
	}
	return sum;
}

/* The hard limit cannot be raised here; the soft one can, up to it. */
static int raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur < HOLD + 200) {
		fprintf(stderr, "open files hard limit %llu is below %d\n",
			(unsigned long long)rl.rlim_cur, HOLD + 200);
		return -1;
	}
	return 0;
}

/*
 * The daemons inherit this. AddressSanitizer keeps freed blocks in a
 * quarantine of up to 256 MiB, which a flood fills with the handshakes'
 * short-lived buffers; the bound is on what the daemon keeps, so the
 * quarantine is made small here.
 */
static int small_quarantine(void)
{
	static char opts[512];
	const char *cur = getenv("ASAN_OPTIONS");
	snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=4", cur ? cur : "",
		 cur && *cur ? ":" : "");
	return setenv("ASAN_OPTIONS", opts, 1);
}

static int suite_init(void)
{
	char xml[256];
	if (raise_nofile() != 0 || small_quarantine() != 0 || hpg_require() != 0)
		return -1;
	/* max-sessions above the flood, so the slave's own session is not refused as busy. */
	snprintf(xml, sizeof(xml), "  <limits max-sessions=\"%d\" handshake-timeout=\"%d\"/>",
		 2 * HOLD, HANDSHAKE_S);
	if (hp_master_init(&master, "hq", xml) != 0 || hp_start(&master) != 0)
		return -1;
	snprintf(xml, sizeof(xml), "  <limits handshake-timeout=\"%d\"/>", HANDSHAKE_S);
	if (hp_slave_init(&slave, "site-a", master.port, 1800, xml) != 0 || hp_start(&slave) != 0)
		return -1;
	if (hp_enrol(&master, &slave) != 0)
		return -1;
	snprintf(agent_dir, sizeof(agent_dir), "%s/agent1", hp_root());
	snprintf(agent_log, sizeof(agent_log), "%s/agent1.log", hp_root());
	return 0;
}

static int suite_clean(void)
{
	hp_reap(&agent_pid, SIGTERM);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

/* One number from a query with parameters $1 and $2 (p2 may be NULL). */
static long long q(const char *sql, const char *p1, const char *p2)
{
	PGconn *c = hp_db(&slave);
	long long v = -1;
	if (!c)
		return -1;
	const char *p[] = { p1, p2 };
	PGresult *r = PQexecParams(c, sql, p2 ? 2 : 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		fprintf(stderr, "q: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

static bool agent_online(void *arg)
{
	return q("SELECT count(*) FROM endpoints WHERE uid = $1 AND status = 'online'", agent_uid,
		 NULL) == 1;
}

static void test_agent_registered(void)
{
	char *tok = ha_make_token(&slave, "/idle");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL_FATAL(ha_agent_enrol(&slave, agent_dir, tok, "desk-idle", NULL), 0);
	free(tok);
	char *uid = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'desk-idle'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	snprintf(agent_uid, sizeof(agent_uid), "%s", uid);
	free(uid);
	agent_pid = hp_spawn_agent(agent_log, "-v", "-s", agent_dir, "run", NULL);
	CU_ASSERT_TRUE_FATAL(agent_pid > 0);
	CU_ASSERT_TRUE_FATAL(hp_wait(agent_online, NULL, 30));
}

struct flood {
	int fd[HOLD];
	int n;
};

static struct flood flood;

/* The accept queue may hold this many that the daemon has not taken yet. */
#define ACCEPT_SLACK 64

/*
 * Opens want connections to port of the daemon pid (which had fds0
 * descriptors); every other one sends a partial ClientHello. Each batch
 * waits for the daemon to accept the previous ones (pid 0: it does not): on a busy machine a
 * daemon a second late would otherwise see its backlog overflow, and the
 * dropped SYNs come back only after the kernel's retransmission delay.
 */
static int flood_open(struct flood *fl, int want, int port, pid_t pid, int fds0)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fl->n = 0;
	while (fl->n < want) {
		time_t accept_deadline = time(NULL) + 30;
		while (pid > 0 && tree_fds(pid) < fds0 + fl->n - ACCEPT_SLACK) {
			if (time(NULL) > accept_deadline) {
				fprintf(stderr,
					"the daemon did not accept %d connections within 30 s\n",
					fl->n);
				return -1;
			}
			usleep(5000);
		}
		int first = fl->n;
		int batch = want - first < CONNECT_BATCH ? want - first : CONNECT_BATCH;
		struct pollfd pfd[CONNECT_BATCH];
		for (int i = 0; i < batch; i++) {
			int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0) {
				fprintf(stderr, "socket %d: %s\n", fl->n, strerror(errno));
				return -1;
			}
			fl->fd[fl->n++] = fd;
			if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
			    errno != EINPROGRESS) {
				fprintf(stderr, "connect %d: %s\n", fl->n, strerror(errno));
				return -1;
			}
			pfd[i] = (struct pollfd){ .fd = fd, .events = POLLOUT };
		}
		/* Wait for the whole batch before the next, so the backlog is not overrun. */
		int left = batch;
		time_t deadline = time(NULL) + 30;
		while (left > 0 && time(NULL) < deadline) {
			if (poll(pfd, (nfds_t)batch, 1000) < 0 && errno != EINTR)
				return -1;
			for (int i = 0; i < batch; i++) {
				if (pfd[i].fd < 0 || !pfd[i].revents)
					continue;
				int soerr = 0;
				socklen_t len = sizeof(soerr);
				getsockopt(pfd[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
				/* A daemon out of descriptors closes at once: seen later as closed.
				 */
				bool cut = soerr == ECONNRESET || soerr == ECONNREFUSED;
				if (soerr != 0 && !cut) {
					fprintf(stderr, "connect: %s\n", strerror(soerr));
					return -1;
				}
				if (!cut && (first + i) % 2 == 1 &&
				    send(pfd[i].fd, partial_hello, sizeof(partial_hello),
					 MSG_NOSIGNAL) != (ssize_t)sizeof(partial_hello) &&
				    errno != EPIPE && errno != ECONNRESET) {
					fprintf(stderr, "send: %s\n", strerror(errno));
					return -1;
				}
				pfd[i].fd = -1;
				left--;
			}
		}
		if (left > 0) {
			fprintf(stderr, "%d connections not set up within 30 s\n", left);
			return -1;
		}
	}
	return 0;
}

/*
 * Waits until the daemon has closed every connection (EOF or a reset on
 * each), at most timeout_s; returns how many it closed.
 */
static int flood_wait_closed(struct flood *fl, int timeout_s)
{
	static struct pollfd pfd[HOLD];
	int closed = 0;
	time_t deadline = time(NULL) + timeout_s;
	for (int i = 0; i < fl->n; i++)
		pfd[i] = (struct pollfd){ .fd = fl->fd[i], .events = POLLIN };
	while (closed < fl->n && time(NULL) < deadline) {
		if (poll(pfd, (nfds_t)fl->n, 1000) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < fl->n; i++) {
			if (pfd[i].fd < 0 || !pfd[i].revents)
				continue;
			char buf[512];
			ssize_t r = recv(pfd[i].fd, buf, sizeof(buf), 0);
			/* A TLS alert may come first; the close is what counts. */
			if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
				continue;
			close(pfd[i].fd);
			pfd[i].fd = -1;
			fl->fd[i] = -1;
			closed++;
		}
	}
	return closed;
}

static void flood_close(struct flood *fl)
{
	for (int i = 0; i < fl->n; i++)
		if (fl->fd[i] >= 0)
			close(fl->fd[i]);
	fl->n = 0;
}

struct fds_arg {
	pid_t pid;
	int want;
};

static bool fds_at_least(void *arg)
{
	struct fds_arg *a = arg;
	return tree_fds(a->pid) >= a->want;
}

/* Sum of N over the log's "PREFIX: N WHAT" lines. */
static long log_tally(struct hnode *n, const char *what)
{
	FILE *f = fopen(n->log, "r");
	char line[1024];
	long sum = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *hit = strstr(line, what);
		if (!hit || hit == line)
			continue;
		char *p = hit;
		while (p > line && p[-1] >= '0' && p[-1] <= '9')
			p--;
		sum += strtol(p, NULL, 10);
	}
	fclose(f);
	return sum;
}

struct tally_arg {
	struct hnode *n;
	const char *what;
	long want;
};

static bool tally_reached(void *arg)
{
	struct tally_arg *a = arg;
	return log_tally(a->n, a->what) >= a->want;
}

static bool task_done(void *arg)
{
	return q("SELECT count(*) FROM task_results r JOIN endpoints e ON e.id = r.endpoint_id "
		 "JOIN tasks t ON t.id = r.task_id WHERE e.uid = $1 AND t.name = $2 AND "
		 "r.status = 'succeeded'",
		 agent_uid, arg) == 1;
}

/* The registered agent runs an inventory task through the push server. */
static void agent_runs_task(void)
{
	char name[32], args[96], *out = NULL;
	snprintf(name, sizeof(name), "inv-%d", ++tasks_run);
	snprintf(args, sizeof(args), "{\"task\": \"%s\"}", name);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", name, "--kind", "inventory", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       args, NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(task_done, name, 60));
}

/*
 * Floods port of daemon (whose log counts the cut connections as what),
 * checks service, memory and the cut, and reports the figures.
 */
static void flood_daemon(struct hnode *daemon, int port, const char *what)
{
	long before_tally = log_tally(daemon, what);
	int fds0 = tree_fds(daemon->pid);
	long rss0 = tree_rss_kib(daemon->pid);
	CU_ASSERT_TRUE_FATAL(fds0 > 0 && rss0 > 0);

	CU_ASSERT_EQUAL_FATAL(flood_open(&flood, HOLD, port, daemon->pid, fds0), 0);
	/* Every connection accepted: the daemon holds a descriptor for each. */
	struct fds_arg fa = { daemon->pid, fds0 + HOLD };
	CU_ASSERT_TRUE(hp_wait(fds_at_least, &fa, 60));
	struct timespec held;
	clock_gettime(CLOCK_MONOTONIC, &held);
	long rss1 = tree_rss_kib(daemon->pid);

	/* Registered peers are still served while the flood is held. */
	agent_runs_task();
	CU_ASSERT_EQUAL(hp_sync(&slave), 0);
	long rss2 = tree_rss_kib(daemon->pid);
	long peak = rss1 > rss2 ? rss1 : rss2;
	long per_conn = (peak - rss0) * 1024 / HOLD;
	CU_ASSERT(peak - rss0 <= (long)HOLD * PER_CONN_MAX_KIB);

	/* Every silent connection is closed by the daemon after handshake-timeout. */
	int closed = flood_wait_closed(&flood, HANDSHAKE_S + 90);
	struct timespec cut;
	clock_gettime(CLOCK_MONOTONIC, &cut);
	CU_ASSERT_EQUAL(closed, HOLD);
	flood_close(&flood);

	/* ... and counted in a few lines, not one per connection. */
	struct tally_arg ta = { daemon, what, before_tally + HOLD };
	CU_ASSERT_TRUE(hp_wait(tally_reached, &ta, 30));
	CU_ASSERT_EQUAL(log_tally(daemon, what) - before_tally, HOLD);

	/* The descriptors are given back. */
	int fds_after = tree_fds(daemon->pid);
	CU_ASSERT(fds_after <= fds0 + 20);

	fprintf(stderr,
		"\n  %s: fds %d -> %d -> %d; VmRSS %ld KiB before, %ld KiB held (%ld KiB after "
		"the task and sync), %ld bytes per connection; all %d closed %.1f s after the "
		"flood was held (handshake-timeout %d s)\n",
		daemon->name, fds0, fds0 + HOLD, fds_after, rss0, rss1, rss2, per_conn, closed,
		(double)(cut.tv_sec - held.tv_sec) + (cut.tv_nsec - held.tv_nsec) / 1e9,
		HANDSHAKE_S);
	/* The agent and the sync still work once the flood is gone. */
	CU_ASSERT_EQUAL(hp_sync(&slave), 0);
}

static void test_push_port_flood(void)
{
	flood_daemon(&slave, slave.push_port,
		     " connections closed by handshake-timeout before authenticating");
}

#define CUT_BEFORE_HELLO " connections closed by handshake-timeout before HELLO"
#define REFUSED_LINE	 " connections refused since the last such line"

static void test_sync_port_flood(void)
{
	flood_daemon(&master, master.port, CUT_BEFORE_HELLO);
}

/* User and system CPU time of pid, in clock ticks. */
static long long cpu_ticks(pid_t pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields 14 and 15, counted after the command name's closing parenthesis. */
	char *p = strrchr(buf, ')');
	unsigned long long ut = 0, st = 0;
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static long log_count(struct hnode *n, const char *needle)
{
	FILE *f = fopen(n->log, "r");
	char line[1024];
	long count = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			count++;
	fclose(f);
	return count;
}

#define AT_LIMIT_SPARE 50 /* descriptors left to the master above what it holds */
#define AT_LIMIT_FLOOD 400

/*
 * A master at its open-files limit: what it cannot accept is closed at
 * once instead of staying queued, so the loop does not spin on a
 * listener it cannot serve, and the master serves again once descriptors
 * are free.
 */
static void test_master_at_fd_limit(void)
{
	struct rlimit was, low;
	int fds0 = open_fds(master.pid);
	CU_ASSERT_EQUAL_FATAL(prlimit(master.pid, RLIMIT_NOFILE, NULL, &was), 0);
	/* The soft limit only: raising a hard limit back needs a privilege. */
	low.rlim_cur = (rlim_t)(fds0 + AT_LIMIT_SPARE);
	low.rlim_max = was.rlim_max;
	CU_ASSERT_EQUAL_FATAL(prlimit(master.pid, RLIMIT_NOFILE, &low, NULL), 0);
	long warned0 = log_count(&master, "accept failed: Too many open files");
	long refused0 = log_tally(&master, REFUSED_LINE);
	long cut0 = log_tally(&master, CUT_BEFORE_HELLO);
	long long cpu0 = cpu_ticks(master.pid);

	CU_ASSERT_EQUAL_FATAL(flood_open(&flood, AT_LIMIT_FLOOD, master.port, 0, 0), 0);
	/* The excess is closed at once, the rest after handshake-timeout. */
	CU_ASSERT_EQUAL(flood_wait_closed(&flood, HANDSHAKE_S + 90), AT_LIMIT_FLOOD);
	flood_close(&flood);
	long long cpu = cpu_ticks(master.pid) - cpu0;
	long warned = log_count(&master, "accept failed: Too many open files") - warned0;
	fprintf(stderr,
		"\n  hq at %d open files: %d connections closed, %.2f s of CPU meanwhile, %ld "
		"warnings\n",
		fds0 + AT_LIMIT_SPARE, AT_LIMIT_FLOOD, (double)cpu / (double)sysconf(_SC_CLK_TCK),
		warned);
	/* A loop spinning on the listener would burn the whole wait (over 20 s). */
	CU_ASSERT(cpu >= 0 && cpu < 5 * sysconf(_SC_CLK_TCK));
	/* Rate-limited: one line per 10 s at most. */
	CU_ASSERT(warned >= 1 && warned <= 1 + (HANDSHAKE_S + 90) / 10);
	/* Every connection is accounted for: refused at once, or held and cut. */
	struct tally_arg ta = { &master, REFUSED_LINE, refused0 + 1 };
	CU_ASSERT_TRUE(hp_wait(tally_reached, &ta, 30));
	ta = (struct tally_arg){ &master, CUT_BEFORE_HELLO, cut0 + 1 };
	CU_ASSERT_TRUE(hp_wait(tally_reached, &ta, 30));
	long refused = log_tally(&master, REFUSED_LINE) - refused0;
	long held = log_tally(&master, CUT_BEFORE_HELLO) - cut0;
	CU_ASSERT_EQUAL(refused + held, AT_LIMIT_FLOOD);
	fprintf(stderr, "  %ld refused at once, %ld held until handshake-timeout\n", refused, held);

	CU_ASSERT_EQUAL(prlimit(master.pid, RLIMIT_NOFILE, &was, NULL), 0);
	CU_ASSERT_EQUAL(hp_sync(&slave), 0);
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "slave", "list", NULL), 0);
	free(out);
}

/*
 * The same flood on a push server run as two worker processes: the kernel
 * spreads the connections over both, and the figures are the sums over
 * the main process and its workers.
 */
static void test_push_workers_flood(void)
{
	char xml[512];
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"1800\" retry-min=\"1\" retry-max=\"5\"/>\n"
		 "  <limits handshake-timeout=\"%d\"/>\n"
		 "  <push workers=\"2\"/>",
		 master.port, HANDSHAKE_S);
	CU_ASSERT_EQUAL_FATAL(hp_stop(&slave), 0);
	CU_ASSERT_EQUAL_FATAL(hp_write_config(&slave, xml), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&slave), 0);
	CU_ASSERT_TRUE_FATAL(hp_wait_log(&slave, "push worker 1: push: listening", 30));
	CU_ASSERT_TRUE_FATAL(hp_wait_log(&slave, "push worker 2: push: listening", 30));
	pid_t pids[8];
	CU_ASSERT_EQUAL_FATAL(tree_pids(slave.pid, pids, 8), 3);
	/* The agent reconnects to one of the workers by itself; the task the
	 * flood check sends waits in the database until it has. */
	flood_daemon(&slave, slave.push_port,
		     " connections closed by handshake-timeout before authenticating");
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("idle_conns", suite_init, suite_clean);
	CU_add_test(s, "a registered agent online", test_agent_registered);
	CU_add_test(s, "10,000 idle and half-open connections on the push port",
		    test_push_port_flood);
	CU_add_test(s, "10,000 idle and half-open connections on the sync port",
		    test_sync_port_flood);
	CU_add_test(s, "a master at its open-files limit keeps serving", test_master_at_fd_limit);
	CU_add_test(s, "10,000 on a push port served by two workers", test_push_workers_flood);
	return hp_run_suite();
}
