#include "sdnotify.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* The errno of the last failure that was logged: the same one is not repeated. */
static int last_logged;

static void fail(int err, const char *what, const char *path)
{
	if (err == last_logged)
		return;
	last_logged = err;
	log_warnx("sd_notify: %s %s: %s", what, path, strerror(err));
}

int sdnotify_send(const char *msg)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;

	if (!path || !*path)
		return 0;
	size_t plen = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sun.sun_path)) {
		fail(EINVAL, "unusable NOTIFY_SOCKET", path);
		return -1;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, plen);
	if (path[0] == '@') {
		/* Abstract: a leading NUL, and the length counts the name exactly. */
		sun.sun_path[0] = '\0';
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
	} else {
		len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
	}

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fail(errno, "cannot make a socket for", path);
		return -1;
	}
	ssize_t n = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sun, len);
	int err = errno;
	close(fd);
	if (n < 0) {
		fail(err, "cannot send to", path);
		return -1;
	}
	last_logged = 0;
	return 1;
}

int sdnotify_sendf(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return sdnotify_send(buf);
}

/* A STATUS value is one line: anything after a newline would be another key. */
static void one_line(char *out, size_t outlen, const char *s)
{
	snprintf(out, outlen, "%s", s ? s : "");
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int sdnotify_ready(const char *status)
{
	char line[512];
	one_line(line, sizeof(line), status);
	return sdnotify_sendf("READY=1\nSTATUS=%s", line);
}

int sdnotify_reloading(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t usec = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	return sdnotify_sendf("RELOADING=1\nMONOTONIC_USEC=%" PRIu64 "\nSTATUS=reloading", usec);
}

int sdnotify_stopping(void)
{
	return sdnotify_send("STOPPING=1\nSTATUS=stopping");
}

int sdnotify_status(const char *status)
{
	char line[512];
	one_line(line, sizeof(line), status);
	return sdnotify_sendf("STATUS=%s", line);
}

void sdnotify_disable(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

uint64_t sdnotify_watchdog_usec(void)
{
	const char *s = getenv("WATCHDOG_USEC");
	const char *pid = getenv("WATCHDOG_PID");
	char *end;

	if (!s || !*s)
		return 0;
	if (pid && *pid) {
		errno = 0;
		long long p = strtoll(pid, &end, 10);
		if (errno != 0 || *end != '\0' || p != (long long)getpid())
			return 0; /* meant for another process */
	}
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || s[0] == '-') {
		log_warnx("sd_notify: WATCHDOG_USEC='%s' is not a positive number; no watchdog", s);
		return 0;
	}
	return (uint64_t)v;
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sdnotify_send("WATCHDOG=1");
}

struct event *sdnotify_watchdog_start(struct event_base *base)
{
	uint64_t usec = sdnotify_watchdog_usec();
	if (usec == 0 || !getenv("NOTIFY_SOCKET"))
		return NULL;
	uint64_t half = usec / 2 > 0 ? usec / 2 : 1;
	struct timeval tv = { (time_t)(half / 1000000u), (suseconds_t)(half % 1000000u) };
	struct event *ev = event_new(base, -1, EV_PERSIST, on_watchdog, NULL);
	if (!ev || event_add(ev, &tv) != 0) {
		log_warnx("sd_notify: cannot start the watchdog timer");
		if (ev)
			event_free(ev);
		return NULL;
	}
	sdnotify_send("WATCHDOG=1");
	log_info("sd_notify: watchdog ping every %" PRIu64 " ms", half / 1000u);
	return ev;
}
