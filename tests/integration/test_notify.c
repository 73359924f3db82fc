/*
 * The daemons under a service manager: with NOTIFY_SOCKET pointing at a
 * datagram socket of the test, a master says READY=1 only once its sync
 * listener and admin socket take connections, pings the watchdog, sends
 * RELOADING=1 then READY=1 around a SIGHUP (valid file or not) and
 * STOPPING=1 at SIGTERM. A slave with push workers: every message comes
 * from the main process, never from a worker (NotifyAccess=main).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_pg.h"
#include "harness_proc.h"

static struct hnode master, slave;

struct msg {
	char text[2048];
	pid_t pid; /* the sender, from SCM_CREDENTIALS */
};

/* A datagram socket at ROOT/name that receives its senders' credentials. */
static int notify_socket(const char *name, char *path, size_t pathlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int one = 1;
	snprintf(path, pathlen, "%s/%s", hp_root(), name);
	if (strlen(path) >= sizeof(sun.sun_path))
		return -1;
	strcpy(sun.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The next message within timeout_ms; false when none came. */
static bool next_msg(int fd, struct msg *m, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} control;
	struct iovec iov = { m->text, sizeof(m->text) - 1 };
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = control.buf,
			     .msg_controllen = sizeof(control.buf) };
	m->text[0] = '\0';
	m->pid = 0;
	if (poll(&p, 1, timeout_ms) != 1)
		return false;
	ssize_t n = recvmsg(fd, &mh, 0);
	if (n < 0)
		return false;
	m->text[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cred;
			memcpy(&cred, CMSG_DATA(c), sizeof(cred));
			m->pid = cred.pid;
		}
	return true;
}

static bool starts(const struct msg *m, const char *prefix)
{
	return strncmp(m->text, prefix, strlen(prefix)) == 0;
}

/*
 * Waits (up to timeout_s) for a message starting with prefix; the ones
 * before it are checked to come from pid and, when seen is not NULL,
 * searched for the text seen (*found set when there).
 */
static bool wait_msg(int fd, pid_t pid, const char *prefix, struct msg *m, int timeout_s,
		     const char *seen, bool *found)
{
	for (int waited = 0; waited < timeout_s * 10; waited++) {
		if (!next_msg(fd, m, 100))
			continue;
		CU_ASSERT_EQUAL(m->pid, pid);
		if (seen && strstr(m->text, seen))
			*found = true;
		if (starts(m, prefix))
			return true;
	}
	return false;
}

/* Starts bin -c cfg with NOTIFY_SOCKET=path (and WATCHDOG_USEC when given). */
static pid_t spawn_notified(struct hnode *n, const char *bin, const char *path,
			    const char *watchdog_usec)
{
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(n->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, 1);
		dup2(fd, 2);
		close(fd);
		setenv("NOTIFY_SOCKET", path, 1);
		if (watchdog_usec)
			setenv("WATCHDOG_USEC", watchdog_usec, 1);
		execl(bin, bin, "-c", n->cfg, (char *)NULL);
		_exit(127);
	}
	n->pid = pid;
	return pid;
}

static bool tcp_accepts(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Both push workers logged that they listen. */
static bool two_listening(void *arg)
{
	struct hnode *n = arg;
	char line[4096];
	int count = 0;
	FILE *f = fopen(n->log, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "push worker") && strstr(line, "listening for agents"))
			count++;
	fclose(f);
	return count >= 2;
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "notified", NULL) != 0)
		return -1;
	if (hp_slave_init(&slave, "notified-workers", hp_free_port(), 1800,
			  "  <push workers=\"2\"/>") != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	hp_cleanup(&master);
	hp_cleanup(&slave);
	return 0;
}

static void test_master(void)
{
	char path[700];
	struct msg m;
	bool migrations = false;
	int fd = notify_socket("master-notify.sock", path, sizeof(path));
	CU_ASSERT_FATAL(fd >= 0);
	pid_t pid = spawn_notified(&master, STRATA_BINARY_DIR "/strata-master", path, "1000000");

	/* Start-up: STATUS lines, then READY=1 once it serves. */
	CU_ASSERT_FATAL(wait_msg(fd, pid, "READY=1", &m, 60, "schema migrations", &migrations));
	CU_ASSERT_TRUE(tcp_accepts(master.port));
	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "status", NULL), 0);
	CU_ASSERT_TRUE(migrations);
	CU_ASSERT_PTR_NOT_NULL(strstr(m.text, "STATUS=master 'notified' ready"));

	/* WATCHDOG_USEC=1 s: a ping every 0.5 s from the event loop. */
	CU_ASSERT_TRUE(wait_msg(fd, pid, "WATCHDOG=1", &m, 10, NULL, NULL));

	/* A valid file: RELOADING=1, then READY=1 with the usual status. */
	CU_ASSERT_EQUAL_FATAL(hp_write_config(&master, "  <enrolment token-ttl=\"600\"/>"), 0);
	kill(pid, SIGHUP);
	CU_ASSERT_TRUE(wait_msg(fd, pid, "RELOADING=1", &m, 10, NULL, NULL));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.text, "MONOTONIC_USEC="));
	CU_ASSERT_TRUE(wait_msg(fd, pid, "READY=1", &m, 10, NULL, NULL));
	CU_ASSERT_PTR_NULL(strstr(m.text, "reload failed"));
	CU_ASSERT_TRUE(hp_wait_log(&master, "applied", 10));

	/* An invalid one: still READY=1 (the old settings serve), and why. */
	FILE *f = fopen(master.cfg, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("<server role=\"master\" name=\"notified\"><limits max-sessions=\"0\"/></server>\n",
	      f);
	fclose(f);
	kill(pid, SIGHUP);
	CU_ASSERT_TRUE(wait_msg(fd, pid, "RELOADING=1", &m, 10, NULL, NULL));
	CU_ASSERT_TRUE(wait_msg(fd, pid, "READY=1", &m, 10, NULL, NULL));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.text, "reload failed, current settings kept"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m.text, "max-sessions"));
	CU_ASSERT_TRUE(hp_wait_log(&master, "keeping the current settings", 10));
	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "status", NULL), 0);
	CU_ASSERT_TRUE(tcp_accepts(master.port));
	CU_ASSERT_EQUAL(hp_write_config(&master, NULL), 0);

	/* SIGTERM: STOPPING=1, then a clean exit. */
	kill(pid, SIGTERM);
	CU_ASSERT_TRUE(wait_msg(fd, pid, "STOPPING=1", &m, 10, NULL, NULL));
	int st = 0;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	master.pid = 0;
	hp_check_log(master.log);
	close(fd);
}

static void test_slave_workers_silent(void)
{
	char path[700];
	struct msg m;
	int fd = notify_socket("slave-notify.sock", path, sizeof(path));
	CU_ASSERT_FATAL(fd >= 0);
	pid_t pid = spawn_notified(&slave, STRATA_BINARY_DIR "/strata-slave", path, "2000000");

	CU_ASSERT_FATAL(wait_msg(fd, pid, "READY=1", &m, 60, NULL, NULL));
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "status", NULL), 0);
	/* Both workers through their own start-up (same environment otherwise). */
	CU_ASSERT_TRUE(hp_wait(two_listening, &slave, 30));
	/* The reload reaches the workers too; only the main process reports it. */
	kill(pid, SIGHUP);
	CU_ASSERT_TRUE(wait_msg(fd, pid, "RELOADING=1", &m, 10, NULL, NULL));
	CU_ASSERT_TRUE(wait_msg(fd, pid, "READY=1", &m, 10, NULL, NULL));
	kill(pid, SIGTERM);
	CU_ASSERT_TRUE(wait_msg(fd, pid, "STOPPING=1", &m, 10, NULL, NULL));
	int st = 0;
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	slave.pid = 0;
	/* Whatever else arrived, the workers' lifetimes included, came from the main process. */
	while (next_msg(fd, &m, 0))
		CU_ASSERT_EQUAL(m.pid, pid);
	hp_check_log(slave.log);
	close(fd);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("notify", suite_init, suite_clean);
	CU_add_test(s, "master: READY once serving, watchdog, reload, stop", test_master);
	CU_add_test(s, "slave: push workers never notify", test_slave_workers_silent);
	return hp_run_suite();
}
