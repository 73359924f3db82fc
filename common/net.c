#include "net.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <event2/util.h>

#include "log.h"

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	log_warnx("accept failed: %s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
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
	evconnlistener_set_error_cb(l, on_accept_error);
	return l;
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
