#include "harness_proc.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_pg.h"

static char root[256];
/* Daemons that ended badly: a non-zero exit at SIGTERM or a sanitizer report. */
static int daemon_failures;

const char *hp_root(void)
{
	if (!root[0]) {
		snprintf(root, sizeof(root), "/tmp/strata-it.XXXXXX");
		if (!mkdtemp(root)) {
			perror("mkdtemp");
			exit(1);
		}
	}
	return root;
}

int hp_free_port(void)
{
	for (int tries = 0; tries < 200; tries++) {
		/* Below the kernel's ephemeral range (32768-60999), so that no
		 * outgoing connection takes the port between this check and the
		 * daemon's bind. */
		int port = 12000 + (int)(((unsigned)rand() ^ (unsigned)getpid() * 7919u) % 20000u);
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return port;
	}
	return -1;
}

static int node_init(struct hnode *n, const char *name, bool master)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->name, sizeof(n->name), "%s", name);
	n->master = master;
	snprintf(n->dir, sizeof(n->dir), "%s/%s", hp_root(), name);
	if (mkdir(n->dir, 0700) != 0 && errno != EEXIST)
		return -1;
	snprintf(n->cfg, sizeof(n->cfg), "%s/server.xml", n->dir);
	snprintf(n->sock, sizeof(n->sock), "%s/admin.sock", n->dir);
	snprintf(n->log, sizeof(n->log), "%s/daemon.log", n->dir);
	n->dbname = hpg_create_db(master ? "it_master" : "it_slave");
	return n->dbname ? 0 : -1;
}

int hp_write_config(struct hnode *n, const char *extra_xml)
{
	char *ci = hpg_conninfo(n->dbname);
	FILE *f = fopen(n->cfg, "w");
	if (!f) {
		free(ci);
		return -1;
	}
	fprintf(f, "<?xml version=\"1.0\"?>\n<server role=\"%s\" name=\"%s\">\n",
		n->master ? "master" : "slave", n->name);
	fprintf(f, "  <data-dir>%s</data-dir>\n", n->dir);
	fprintf(f, "  <log level=\"debug\"/>\n");
	fprintf(f, "  <database conninfo=\"%s\" retry-interval=\"1\"/>\n", ci);
	fprintf(f, "  <admin socket=\"%s\"/>\n", n->sock);
	if (n->master && n->sync_addr[0])
		fprintf(f,
			"  <sync-listen address=\"%s\" port=\"%d\" "
			"hosts=\"%s,127.0.0.1,localhost\"/>\n",
			n->sync_addr, n->port, n->sync_addr);
	else if (n->master)
		fprintf(f, "  <sync-listen address=\"127.0.0.1\" port=\"%d\" hosts=\"127.0.0.1,localhost\"/>\n",
			n->port);
	const char *extra = extra_xml ? extra_xml : "";
	const char *push = strstr(extra, "<push ");
	if (!n->master && n->push_port == 0)
		n->push_port = hp_free_port();
	if (n->master)
		fprintf(f, "%s\n</server>\n", extra);
	else if (push)
		fprintf(f, "%.*s<push address=\"127.0.0.1\" port=\"%d\" %s\n</server>\n",
			(int)(push - extra), extra, n->push_port, push + strlen("<push "));
	else
		fprintf(f, "  <push address=\"127.0.0.1\" port=\"%d\"/>\n%s\n</server>\n",
			n->push_port, extra);
	free(ci);
	return fclose(f) == 0 ? 0 : -1;
}

int hp_master_init(struct hnode *n, const char *name, const char *extra_xml)
{
	if (node_init(n, name, true) != 0)
		return -1;
	n->port = hp_free_port();
	return hp_write_config(n, extra_xml);
}

int hp_slave_init(struct hnode *n, const char *name, int master_port, int interval,
		  const char *extra_xml)
{
	char xml[2048];
	if (node_init(n, name, false) != 0)
		return -1;
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"%d\" retry-min=\"1\" retry-max=\"5\"/>\n%s",
		 master_port, interval, extra_xml ? extra_xml : "");
	return hp_write_config(n, xml);
}

static int run_argv(char **out, char *const argv[])
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		close(pipefd[1]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pipefd[1]);
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	ssize_t r;
	while ((r = read(pipefd[0], buf + len, cap - len - 1)) > 0) {
		len += (size_t)r;
		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	close(pipefd[0]);
	buf[len] = '\0';
	int st = 0;
	waitpid(pid, &st, 0);
	if (out)
		*out = buf;
	else
		free(buf);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int hp_run(char **out, const char *bin, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)bin;
	va_start(ap, bin);
	char *a;
	while ((a = va_arg(ap, char *)) && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return run_argv(out, argv);
}

int hp_ctl(struct hnode *n, char **out, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;
	argv[argc++] = STRATA_BINARY_DIR "/strata-ctl";
	argv[argc++] = "-s";
	argv[argc++] = n->sock;
	va_start(ap, out);
	char *a;
	while ((a = va_arg(ap, char *)) && argc < 63)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return run_argv(out, argv);
}

static bool sock_answers(void *arg)
{
	struct hnode *n = arg;
	int st;
	if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
		n->pid = 0;
		return true; /* died: stop waiting */
	}
	return hp_ctl(n, NULL, "status", NULL) == 0;
}

int hp_start(struct hnode *n)
{
	const char *bin = n->master ? STRATA_BINARY_DIR "/strata-master"
				    : STRATA_BINARY_DIR "/strata-slave";
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		if (n->netns[0]) {
			char path[128];
			snprintf(path, sizeof(path), "/run/netns/%s", n->netns);
			int ns = open(path, O_RDONLY | O_CLOEXEC);
			if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
				fprintf(stderr, "harness: cannot enter network namespace %s: %s\n",
					n->netns, strerror(errno));
				_exit(127);
			}
			close(ns);
		}
		execl(bin, bin, "-c", n->cfg, (char *)NULL);
		_exit(127);
	}
	n->pid = pid;
	if (!hp_wait(sock_answers, n, 30) || n->pid == 0) {
		fprintf(stderr, "harness: %s did not start; see %s\n", n->name, n->log);
		return -1;
	}
	return 0;
}

int hp_stop(struct hnode *n)
{
	int st = 0;
	if (n->pid <= 0)
		return -1;
	kill(n->pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(n->pid, &st, WNOHANG) == n->pid) {
			n->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(100000);
	}
	kill(n->pid, SIGKILL);
	waitpid(n->pid, &st, 0);
	n->pid = 0;
	return -1;
}

void hp_kill9(struct hnode *n)
{
	if (n->pid <= 0)
		return;
	kill(n->pid, SIGKILL);
	waitpid(n->pid, NULL, 0);
	n->pid = 0;
}

void hp_cleanup(struct hnode *n)
{
	if (n->pid > 0) {
		int st = hp_stop(n);
		if (st != 0) {
			fprintf(stderr, "harness: %s exited with status %d at shutdown; see %s\n",
				n->name, st, n->log);
			daemon_failures++;
		}
	}
	if (n->log[0] && (hp_log_contains(n, "Sanitizer") || hp_log_contains(n, "runtime error:"))) {
		fprintf(stderr, "harness: sanitizer report in %s\n", n->log);
		daemon_failures++;
	}
	if (n->dbname) {
		hpg_drop_db(n->dbname);
		free(n->dbname);
		n->dbname = NULL;
	}
}

void hp_check_log(const char *log)
{
	if (hp_file_contains(log, "Sanitizer") || hp_file_contains(log, "runtime error:")) {
		fprintf(stderr, "harness: sanitizer report in %s\n", log);
		daemon_failures++;
	}
}

void hp_stop_checked(pid_t *pid, const char *log)
{
	int st = 0;
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		if (waitpid(*pid, &st, 0) == *pid && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			fprintf(stderr, "harness: process %d (%s) ended with status 0x%x\n", (int)*pid,
				log, st);
			daemon_failures++;
		}
	}
	*pid = 0;
	hp_check_log(log);
}

PGconn *hp_db(struct hnode *n)
{
	char *ci = hpg_conninfo(n->dbname);
	PGconn *c = PQconnectdb(ci);
	free(ci);
	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "harness: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

char *hp_query1(struct hnode *n, const char *sql)
{
	PGconn *c = hp_db(n);
	char *v = NULL;
	if (!c)
		return NULL;
	PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		fprintf(stderr, "harness: %s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

long long hp_query_ll(struct hnode *n, const char *sql)
{
	char *v = hp_query1(n, sql);
	long long r = v ? strtoll(v, NULL, 10) : -1;
	free(v);
	return r;
}

bool hp_wait(bool (*cond)(void *arg), void *arg, int timeout_s)
{
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (cond(arg))
			return true;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= timeout_s)
			return false;
		usleep(100000);
	}
}

bool hp_log_contains(struct hnode *n, const char *needle)
{
	return hp_file_contains(n->log, needle);
}

bool hp_file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	bool found = false;
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

struct file_wait {
	const char *path, *needle;
};

static bool file_cond(void *arg)
{
	struct file_wait *w = arg;
	return hp_file_contains(w->path, w->needle);
}

bool hp_wait_file_contains(const char *path, const char *needle, int timeout_s)
{
	struct file_wait w = { path, needle };
	return hp_wait(file_cond, &w, timeout_s);
}

bool hp_wait_log(struct hnode *n, const char *needle, int timeout_s)
{
	return hp_wait_file_contains(n->log, needle, timeout_s);
}

int hp_enrol(struct hnode *master, struct hnode *slave)
{
	char *out = NULL, master_addr[96];
	if (hp_ctl(master, &out, "--json", "slave", "add", slave->name, NULL) != 0) {
		fprintf(stderr, "harness: slave add: %s\n", out);
		free(out);
		return -1;
	}
	char *tok = strstr(out, "stk1.");
	if (!tok) {
		free(out);
		return -1;
	}
	char token[200];
	size_t n = strcspn(tok, "\"\n ");
	snprintf(token, sizeof(token), "%.*s", (int)n, tok);
	free(out);
	snprintf(master_addr, sizeof(master_addr), "%s:%d",
		 master->sync_addr[0] ? master->sync_addr : "127.0.0.1", master->port);
	int rc = hp_ctl(slave, &out, "register", "--master", master_addr, "--token", token, NULL);
	if (rc != 0)
		fprintf(stderr, "harness: register: %s\n", out);
	free(out);
	return rc;
}

int hp_sync(struct hnode *slave)
{
	char *out = NULL;
	int rc = hp_ctl(slave, &out, "sync", "now", NULL);
	if (rc != 0)
		fprintf(stderr, "harness: sync now on %s: %s\n", slave->name, out);
	free(out);
	return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Starts argv[0] with its output appended to log. */
static pid_t spawn_logged(const char *log, char *const argv[])
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

pid_t hp_spawn_agent(const char *log, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	argv[argc++] = HP_AGENT;
	va_start(ap, log);
	char *a;
	while ((a = va_arg(ap, char *)) && argc < 31)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	return spawn_logged(log, argv);
}

pid_t hp_spawn_dp(const char *log, const char *cfg)
{
	char *argv[] = { HP_DP, "-c", (char *)cfg, NULL };
	return spawn_logged(log, argv);
}

void hp_reap(pid_t *pid, int sig)
{
	if (*pid > 0) {
		kill(*pid, sig);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

int hp_run_suite(void)
{
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	/* A suite whose init failed ran no test: that is a failure, not a pass. */
	unsigned fails = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
			 CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	fails += (unsigned)daemon_failures;
	/* Keep the daemons' logs of a failed run for whoever reads the output. */
	if (root[0] && !fails)
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else if (root[0])
		fprintf(stderr, "harness: logs kept in %s\n", root);
	return fails ? 1 : 0;
}

int hp_worker_pids(pid_t parent, pid_t *pids, int n)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;
	memset(pids, 0, (size_t)n * sizeof(pids[0]));
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300], buf[1024];
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		char *rp = strrchr(buf, ')');
		char state;
		int ppid;
		if (!rp || sscanf(rp + 2, "%c %d", &state, &ppid) != 2 || ppid != parent ||
		    state == 'Z')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		/* argv: strata-slave -c FILE -W INDEX, NUL-separated. */
		const char *prev = NULL;
		for (const char *arg = buf; arg < buf + len; arg += strlen(arg) + 1) {
			if (prev && strcmp(prev, "-W") == 0) {
				int index = atoi(arg);
				if (index >= 1 && index <= n) {
					pids[index - 1] = (pid_t)atoi(de->d_name);
					found++;
				}
			}
			prev = arg;
		}
	}
	closedir(d);
	return found;
}
