/*
 * Blocking client half of the admin socket, for building strata-ctl until
 * the full admin module (server and client) lands in common/admin.c.
 */
#include "admin.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_STUB_MAX_REPLY (1024 * 1024)

static long stub_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

static int stub_wait(int fd, short events, const struct timespec *deadline)
{
	for (;;) {
		long left = stub_ms_left(deadline);
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			return -1;
	}
}

json_t *admin_call(const char *path, const char *cmd, json_t *args, int timeout_s, char *err,
		   size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);

	json_t *req = json_pack("{s:s, s:O?}", "cmd", cmd, "args", args);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text) {
		snprintf(err, errlen, "cannot encode the request");
		return NULL;
	}

	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_s;

	json_t *reply = NULL;
	char *buf = NULL;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 && errno != EINPROGRESS &&
	    errno != EAGAIN) {
		snprintf(err, errlen, "cannot connect to %s: %s", path, strerror(errno));
		goto out;
	}

	size_t len = strlen(text);
	text[len++] = '\n'; /* replaces the terminating NUL; len counts it */
	for (size_t off = 0; off < len;) {
		if (stub_wait(fd, POLLOUT, &deadline) <= 0) {
			snprintf(err, errlen, "%s: timed out sending the request", path);
			goto out;
		}
		ssize_t n = send(fd, text + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(err, errlen, "cannot send to %s: %s", path, strerror(errno));
			goto out;
		}
		if (n > 0)
			off += (size_t)n;
	}

	buf = malloc(ADMIN_STUB_MAX_REPLY + 1);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	size_t got = 0;
	for (;;) {
		if (got == ADMIN_STUB_MAX_REPLY) {
			snprintf(err, errlen, "%s: reply longer than 1 MiB", path);
			goto out;
		}
		int w = stub_wait(fd, POLLIN, &deadline);
		if (w <= 0) {
			snprintf(err, errlen, "%s: no reply within %d s", path, timeout_s);
			goto out;
		}
		ssize_t n = recv(fd, buf + got, ADMIN_STUB_MAX_REPLY - got, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read from %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0 || memchr(buf + got, '\n', (size_t)n)) {
			got += (size_t)n;
			break;
		}
		got += (size_t)n;
	}
	json_error_t jerr;
	reply = json_loadb(buf, got, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!reply)
		snprintf(err, errlen, "%s: unreadable reply: %s", path, jerr.text);
	else if (!json_is_object(reply)) {
		snprintf(err, errlen, "%s: reply is not a JSON object", path);
		json_decref(reply);
		reply = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(text);
	return reply;
}
