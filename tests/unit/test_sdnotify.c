/* sdnotify: datagrams to a real AF_UNIX socket, by path and abstract name. */
#include <CUnit/Basic.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

static char dir[64];
static char path[128];

/* A datagram socket bound to name (a path, or '@' for an abstract name). */
static int listener(const char *name)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	socklen_t alen;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memcpy(sun.sun_path, name, len);
	if (name[0] == '@') {
		sun.sun_path[0] = '\0';
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	if (bind(fd, (struct sockaddr *)&sun, alen) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The next datagram (waits up to 5 s), or "" when none came. */
static const char *next_msg(int fd)
{
	static char buf[2048];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	buf[0] = '\0';
	if (poll(&p, 1, 5000) != 1)
		return buf;
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static bool pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

static void test_no_socket(void)
{
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "1000000", 1);
	CU_ASSERT_EQUAL(sdnotify_send("READY=1"), 0);
	CU_ASSERT_EQUAL(sdnotify_ready("serving"), 0);
	CU_ASSERT_EQUAL(sdnotify_stopping(), 0);
	/* No socket to ping: no watchdog timer either. */
	struct event_base *base = event_base_new();
	CU_ASSERT_PTR_NULL(sdnotify_watchdog_start(base));
	event_base_free(base);
	unsetenv("WATCHDOG_USEC");
}

static void exchange(const char *name)
{
	int fd = listener(name);
	CU_ASSERT_FATAL(fd >= 0);
	setenv("NOTIFY_SOCKET", name, 1);

	CU_ASSERT_EQUAL(sdnotify_status("connecting to the database"), 1);
	CU_ASSERT_STRING_EQUAL(next_msg(fd), "STATUS=connecting to the database");
	/* A STATUS value stays one line: a newline must not smuggle in a key. */
	CU_ASSERT_EQUAL(sdnotify_ready("master 'm' ready\nWATCHDOG=trigger"), 1);
	CU_ASSERT_STRING_EQUAL(next_msg(fd), "READY=1\nSTATUS=master 'm' ready WATCHDOG=trigger");
	CU_ASSERT_EQUAL(sdnotify_reloading(), 1);
	const char *m = next_msg(fd);
	CU_ASSERT_EQUAL(strncmp(m, "RELOADING=1\nMONOTONIC_USEC=", 27), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(m, "\nSTATUS=reloading"));
	CU_ASSERT_EQUAL(sdnotify_stopping(), 1);
	CU_ASSERT_STRING_EQUAL(next_msg(fd), "STOPPING=1\nSTATUS=stopping");
	CU_ASSERT_FALSE(pending(fd));

	sdnotify_disable();
	CU_ASSERT_PTR_NULL(getenv("NOTIFY_SOCKET"));
	CU_ASSERT_EQUAL(sdnotify_send("READY=1"), 0);
	CU_ASSERT_FALSE(pending(fd));
	close(fd);
}

static void test_path_socket(void)
{
	exchange(path);
	unlink(path);
}

static void test_abstract_socket(void)
{
	char name[64];
	snprintf(name, sizeof(name), "@strata-test-sdnotify-%d", (int)getpid());
	exchange(name);
}

static void test_errors_not_fatal(void)
{
	/* Nobody listens there; relative and over-long names are refused. */
	char longname[200];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[0] = '/';
	longname[sizeof(longname) - 1] = '\0';
	const char *bad[] = { "/nonexistent/strata-notify.sock", "relative.sock", longname };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		CU_ASSERT_EQUAL(sdnotify_send("READY=1"), -1);
		CU_ASSERT_EQUAL(sdnotify_ready("again"), -1);
	}
	unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_env(void)
{
	char pid[32];
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	CU_ASSERT_EQUAL(sdnotify_watchdog_usec(), 0);
	setenv("WATCHDOG_USEC", "30000000", 1);
	CU_ASSERT_EQUAL(sdnotify_watchdog_usec(), 30000000u);
	/* Meant for this process, or for another one. */
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	CU_ASSERT_EQUAL(sdnotify_watchdog_usec(), 30000000u);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	CU_ASSERT_EQUAL(sdnotify_watchdog_usec(), 0);
	unsetenv("WATCHDOG_PID");
	const char *bad[] = { "0", "-5", "abc", "12x", "" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("WATCHDOG_USEC", bad[i], 1);
		CU_ASSERT_EQUAL(sdnotify_watchdog_usec(), 0);
	}
	unsetenv("WATCHDOG_USEC");
}

static void test_watchdog_timer(void)
{
	int fd = listener(path);
	CU_ASSERT_FATAL(fd >= 0);
	setenv("NOTIFY_SOCKET", path, 1);
	setenv("WATCHDOG_USEC", "100000", 1);
	struct event_base *base = event_base_new();
	struct event *ev = sdnotify_watchdog_start(base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	/* One ping at once, then one each time the loop runs the timer. */
	CU_ASSERT_STRING_EQUAL(next_msg(fd), "WATCHDOG=1");
	CU_ASSERT_FALSE(pending(fd));
	for (int i = 0; i < 3; i++) {
		event_base_loop(base, EVLOOP_ONCE);
		CU_ASSERT_STRING_EQUAL(next_msg(fd), "WATCHDOG=1");
	}
	/* A loop that does not turn sends nothing. */
	CU_ASSERT_FALSE(pending(fd));
	event_free(ev);
	event_base_free(base);
	close(fd);
	unlink(path);
	unsetenv("WATCHDOG_USEC");
	unsetenv("NOTIFY_SOCKET");
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/strata-sdnotify.XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/notify.sock", dir);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("sdnotify", NULL, NULL);
	CU_add_test(s, "without NOTIFY_SOCKET nothing is sent", test_no_socket);
	CU_add_test(s, "messages to a socket path", test_path_socket);
	CU_add_test(s, "messages to an abstract socket", test_abstract_socket);
	CU_add_test(s, "send failures are reported, not fatal", test_errors_not_fatal);
	CU_add_test(s, "WATCHDOG_USEC and WATCHDOG_PID", test_watchdog_env);
	CU_add_test(s, "the watchdog timer pings from the event loop", test_watchdog_timer);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	rmdir(dir);
	return fails ? 1 : 0;
}
