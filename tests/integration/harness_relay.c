#include "harness_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Connections at once; a sync session uses one. */
#define RELAY_PAIRS 16
/* Bytes held back per direction before the relay stops reading from that side. */
#define RELAY_QUEUE_MAX (4u << 20)
#define RELAY_CHUNK	(16u << 10)

/* Shared between the test process and the relay child (MAP_SHARED). */
struct relay_shared {
	_Atomic int port; /* 0 until listening, -1 when the child failed */
	_Atomic int delay_ms, jitter_ms;
	_Atomic uint64_t conns, chunks, delayed, max_delay_ms;
};

struct hrelay {
	pid_t pid;
	struct relay_shared *sh;
};

struct chunk {
	struct chunk *next;
	int64_t arrived, due;
	size_t len, off;
	char data[];
};

/* One direction of a connection: bytes read from one socket, held, written to the other. */
struct flow {
	struct chunk *head, *tail;
	size_t queued;
	bool eof;
};

struct pair {
	int fd[2];	     /* accepted, to the target; -1: slot free */
	struct flow flow[2]; /* flow[k]: read from fd[k], written to fd[1 - k] */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pair_close(struct pair *p)
{
	for (int k = 0; k < 2; k++) {
		if (p->fd[k] >= 0)
			close(p->fd[k]);
		p->fd[k] = -1;
		struct chunk *c = p->flow[k].head;
		while (c) {
			struct chunk *next = c->next;
			free(c);
			c = next;
		}
		memset(&p->flow[k], 0, sizeof(p->flow[k]));
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int connect_target(const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0 || set_nonblock(fd) != 0) {
		fprintf(stderr, "relay: connect to the target: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void relay_accept(int lfd, struct pair *pairs, const struct sockaddr_in *to,
			 struct relay_shared *sh)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	struct pair *p = NULL;
	for (int i = 0; i < RELAY_PAIRS && !p; i++)
		if (pairs[i].fd[0] < 0)
			p = &pairs[i];
	int tfd = p ? connect_target(to) : -1;
	if (tfd < 0) {
		close(fd);
		return;
	}
	p->fd[0] = fd;
	p->fd[1] = tfd;
	atomic_fetch_add(&sh->conns, 1);
}

/* Reads what fd[k] has into a chunk due after the current delay; false: close the pair. */
static bool flow_read(struct pair *p, int k, struct relay_shared *sh)
{
	char buf[RELAY_CHUNK];
	ssize_t n = read(p->fd[k], buf, sizeof(buf));
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	struct flow *f = &p->flow[k];
	if (n == 0) {
		f->eof = true;
		return true;
	}
	struct chunk *c = malloc(sizeof(*c) + (size_t)n);
	if (!c)
		return false;
	int delay = atomic_load(&sh->delay_ms), jitter = atomic_load(&sh->jitter_ms);
	if (jitter > 0)
		delay += (int)(random() % (2 * jitter + 1)) - jitter;
	c->next = NULL;
	c->arrived = now_ms();
	c->due = c->arrived + (delay > 0 ? delay : 0);
	/* Never before the chunk ahead of it: the byte stream keeps its order. */
	if (f->tail && c->due < f->tail->due)
		c->due = f->tail->due;
	c->len = (size_t)n;
	c->off = 0;
	memcpy(c->data, buf, (size_t)n);
	if (f->tail)
		f->tail->next = c;
	else
		f->head = c;
	f->tail = c;
	f->queued += (size_t)n;
	return true;
}

/* Writes the chunks of flow k that are due to fd[1 - k]; false: close the pair. */
static bool flow_write(struct pair *p, int k, struct relay_shared *sh)
{
	struct flow *f = &p->flow[k];
	int64_t now = now_ms();
	while (f->head && f->head->due <= now) {
		struct chunk *c = f->head;
		if (c->off == 0) {
			uint64_t held = (uint64_t)(now - c->arrived);
			atomic_fetch_add(&sh->chunks, 1);
			if (held >= 1)
				atomic_fetch_add(&sh->delayed, 1);
			if (held > atomic_load(&sh->max_delay_ms))
				atomic_store(&sh->max_delay_ms, held);
		}
		ssize_t n = write(p->fd[1 - k], c->data + c->off, c->len - c->off);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->off += (size_t)n;
		f->queued -= (size_t)n;
		if (c->off < c->len)
			return true;
		f->head = c->next;
		if (!f->head)
			f->tail = NULL;
		free(c);
	}
	return true;
}

static void relay_loop(int lfd, const struct sockaddr_in *to, struct relay_shared *sh)
{
	static struct pair pairs[RELAY_PAIRS];
	struct pollfd pfd[1 + 2 * RELAY_PAIRS];
	for (int i = 0; i < RELAY_PAIRS; i++)
		pairs[i].fd[0] = pairs[i].fd[1] = -1;
	for (;;) {
		int64_t now = now_ms(), wait = -1;
		pfd[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
		for (int i = 0; i < RELAY_PAIRS; i++) {
			struct pair *p = &pairs[i];
			for (int k = 0; k < 2; k++) {
				struct pollfd *q = &pfd[1 + 2 * i + k];
				*q = (struct pollfd){ .fd = p->fd[k] };
				if (p->fd[k] < 0)
					continue;
				if (!p->flow[k].eof && p->flow[k].queued < RELAY_QUEUE_MAX)
					q->events |= POLLIN;
				/* fd[k] is written by flow 1 - k. */
				struct chunk *h = p->flow[1 - k].head;
				if (h && h->due <= now)
					q->events |= POLLOUT;
				else if (h && (wait < 0 || h->due - now < wait))
					wait = h->due - now;
			}
		}
		if (poll(pfd, 1 + 2 * RELAY_PAIRS, (int)wait) < 0 && errno != EINTR)
			_exit(1);
		if (pfd[0].revents & POLLIN)
			relay_accept(lfd, pairs, to, sh);
		for (int i = 0; i < RELAY_PAIRS; i++) {
			struct pair *p = &pairs[i];
			bool ok = true;
			for (int k = 0; k < 2 && ok && p->fd[k] >= 0; k++) {
				short ev = pfd[1 + 2 * i + k].revents;
				if (ev & (POLLIN | POLLHUP | POLLERR))
					ok = flow_read(p, k, sh);
			}
			for (int k = 0; k < 2 && ok && p->fd[0] >= 0; k++)
				ok = flow_write(p, k, sh);
			/* One side closed and what it sent is delivered: close both. */
			for (int k = 0; k < 2 && ok && p->fd[0] >= 0; k++)
				if (p->flow[k].eof && !p->flow[k].head)
					ok = false;
			if (!ok && p->fd[0] >= 0)
				pair_close(p);
		}
	}
}

static int enter_netns(const char *name)
{
	char path[128];
	snprintf(path, sizeof(path), "/run/netns/%s", name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = setns(fd, CLONE_NEWNET);
	close(fd);
	return rc;
}

static int parse_addr(struct sockaddr_in *sa, const char *addr, int port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, addr, &sa->sin_addr) == 1 ? 0 : -1;
}

static void relay_child(pid_t parent, const char *netns, const struct sockaddr_in *listen_sa,
			const struct sockaddr_in *to, struct relay_shared *sh)
{
	/* The test's own handlers and atexit functions are not the relay's. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(0);
	srandom((unsigned)getpid());
	if (netns && enter_netns(netns) != 0) {
		fprintf(stderr, "relay: cannot enter %s: %s\n", netns, strerror(errno));
		atomic_store(&sh->port, -1);
		_exit(1);
	}
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in bound;
	socklen_t len = sizeof(bound);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (const struct sockaddr *)listen_sa, sizeof(*listen_sa)) != 0 ||
	    listen(lfd, 16) != 0 || getsockname(lfd, (struct sockaddr *)&bound, &len) != 0) {
		fprintf(stderr, "relay: cannot listen: %s\n", strerror(errno));
		atomic_store(&sh->port, -1);
		_exit(1);
	}
	atomic_store(&sh->port, (int)ntohs(bound.sin_port));
	relay_loop(lfd, to, sh);
}

int hrelay_start(struct hrelay **out, const char *netns, const char *listen_addr,
		 const char *to_addr, int to_port)
{
	struct sockaddr_in listen_sa, to;
	*out = NULL;
	if (parse_addr(&listen_sa, listen_addr, 0) != 0 || parse_addr(&to, to_addr, to_port) != 0) {
		fprintf(stderr, "relay: not an IPv4 address: %s or %s\n", listen_addr, to_addr);
		return -1;
	}
	struct hrelay *r = calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->sh =
	    mmap(NULL, sizeof(*r->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (r->sh == MAP_FAILED) {
		free(r);
		return -1;
	}
	memset(r->sh, 0, sizeof(*r->sh));
	pid_t parent = getpid();
	fflush(NULL);
	r->pid = fork();
	if (r->pid < 0) {
		munmap(r->sh, sizeof(*r->sh));
		free(r);
		return -1;
	}
	if (r->pid == 0) {
		relay_child(parent, netns, &listen_sa, &to, r->sh);
		_exit(1);
	}
	for (int i = 0; i < 500 && atomic_load(&r->sh->port) == 0; i++)
		usleep(10000);
	if (atomic_load(&r->sh->port) <= 0) {
		fprintf(stderr, "relay: did not start\n");
		hrelay_stop(&r);
		return -1;
	}
	*out = r;
	return 0;
}

int hrelay_port(const struct hrelay *r)
{
	return atomic_load(&r->sh->port);
}

void hrelay_set_delay(struct hrelay *r, int delay_ms, int jitter_ms)
{
	atomic_store(&r->sh->delay_ms, delay_ms);
	atomic_store(&r->sh->jitter_ms, jitter_ms);
}

void hrelay_stats(const struct hrelay *r, struct hrelay_stats *out)
{
	out->conns = atomic_load(&r->sh->conns);
	out->chunks = atomic_load(&r->sh->chunks);
	out->delayed = atomic_load(&r->sh->delayed);
	out->max_delay_ms = atomic_load(&r->sh->max_delay_ms);
}

void hrelay_reset_stats(struct hrelay *r)
{
	atomic_store(&r->sh->conns, 0);
	atomic_store(&r->sh->chunks, 0);
	atomic_store(&r->sh->delayed, 0);
	atomic_store(&r->sh->max_delay_ms, 0);
}

void hrelay_stop(struct hrelay **rp)
{
	struct hrelay *r = *rp;
	if (!r)
		return;
	*rp = NULL;
	kill(r->pid, SIGKILL);
	waitpid(r->pid, NULL, 0);
	munmap(r->sh, sizeof(*r->sh));
	free(r);
}
