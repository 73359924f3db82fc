/*
 * net: the listening sockets of the TLS servers (the master's sync port,
 * the slave's and the distribution point's push ports) and the text of a
 * peer's address, the same way for all three.
 */
#ifndef STRATA_NET_H
#define STRATA_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/listener.h>

/*
 * Listens on a numeric address and port; share_port adds SO_REUSEPORT
 * (push workers). Accept errors are logged, not fatal; out of descriptors,
 * queued connections are closed at once (one warning per 10 s with their
 * count) rather than left to make the listener spin.
 * NULL with err ("push address 'x': ...", "cannot listen on ...") naming
 * what, the setting's name.
 */
struct evconnlistener *net_listen(struct event_base *base, const char *what, const char *address,
				  int port, bool share_port, int backlog, evconnlistener_cb cb,
				  void *arg, char *err, size_t errlen);
/*
 * The same handling of accept errors for a listener made elsewhere (the
 * admin socket); replaces its error callback.
 */
void net_listener_guard(struct evconnlistener *l);
/* The peer's address ("?" when not IPv4/IPv6) and port (0 then). */
void net_peer(const struct sockaddr *sa, char *ip, size_t iplen, int *port);

#endif
