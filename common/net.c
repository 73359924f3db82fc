#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/util.h>

#include "clk.h"
#include "log.h"

/*
 * Out of descriptors, accept() fails and the connection stays queued: the
 * listening socket stays readable and the loop would call the listener
 * again at once, forever. One descriptor is held back for that case: it is
 * given up to take the queued connections off and close them (their peers
 * see the connection closed and retry later), then taken again. Process
 * state, not a listener's: every listener of the process shares the limit.
 */
static int reserve_fd = -1;
/* Connections refused for want of descriptors since the last log line;
 * the timer logs what a burst refused after its first line. */
static unsigned long refused;
static int64_t refused_logged_ms;
static struct event *refused_timer;

#define NET_REFUSED_LOG_MS 10000

static void net_reserve(void)
{
	if (reserve_fd < 0)
		reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void refused_log(int err)
{
	struct rlimit rl = { 0 };

	getrlimit(RLIMIT_NOFILE, &rl);
	log_warnx("accept failed: %s (open files limit %llu); %lu connections refused since the "
		  "last such line",
		  evutil_socket_error_to_string(err), (unsigned long long)rl.rlim_cur, refused);
	refused = 0;
	refused_logged_ms = clk_mono_ms();
}

static void refused_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (refused > 0)
		refused_log(EMFILE);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();
	(void)arg;

	if ((err == EMFILE || err == ENFILE) && reserve_fd >= 0) {
		close(reserve_fd);
		reserve_fd = -1;
		int fd;
		while ((fd = accept4(evconnlistener_get_fd(l), NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			close(fd);
			refused++;
		}
		net_reserve();
		int64_t since = clk_mono_ms() - refused_logged_ms;
		if (refused_logged_ms == 0 || since >= NET_REFUSED_LOG_MS) {
			refused_log(err);
			return;
		}
		if (!refused_timer)
			refused_timer =
			    evtimer_new(evconnlistener_get_base(l), refused_timer_cb, NULL);
		if (refused_timer && !evtimer_pending(refused_timer, NULL)) {
			int64_t left = NET_REFUSED_LOG_MS - since;
			struct timeval tv = { (time_t)(left / 1000),
					      (suseconds_t)(left % 1000) * 1000 };
			evtimer_add(refused_timer, &tv);
		}
		return;
	}
	log_warnx("accept failed: %s", evutil_socket_error_to_string(err));
}

struct evconnlistener *net_listen(struct event_base *base, const char *what, const char *address,
				  int port, bool share_port, int backlog, evconnlistener_cb cb,
				  void *arg, char *err, size_t errlen)
{
	struct evutil_addrinfo hints = { 0 }, *ai = NULL;
	char ports[8];
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = EVUTIL_AI_PASSIVE | EVUTIL_AI_NUMERICHOST;
	snprintf(ports, sizeof(ports), "%d", port);
	int rc = evutil_getaddrinfo(address, ports, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s address '%s': %s", what, address,
			 evutil_gai_strerror(rc));
		return NULL;
	}
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	if (share_port)
		flags |= LEV_OPT_REUSEABLE_PORT;
	struct evconnlistener *l = evconnlistener_new_bind(base, cb, arg, flags, backlog,
							   ai->ai_addr, (int)ai->ai_addrlen);
	evutil_freeaddrinfo(ai);
	if (!l) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", address, port,
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		return NULL;
	}
	net_listener_guard(l);
	return l;
}

void net_listener_guard(struct evconnlistener *l)
{
	net_reserve();
	evconnlistener_set_error_cb(l, on_accept_error);
}

void net_peer(const struct sockaddr *sa, char *ip, size_t iplen, int *port)
{
	snprintf(ip, iplen, "?");
	*port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, (socklen_t)iplen);
		*port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, (socklen_t)iplen);
		*port = ntohs(in6->sin6_port);
	}
}
