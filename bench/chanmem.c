/*
 * chanmem: resident memory per idle TLS 1.3 connection on the server side,
 * with and without a chan on top of the bufferevent.
 *
 *   chanmem MODE N [CLIENT_CERT [FRAMES]]
 *
 * MODE is "bare" (bufferevent_openssl over the socket, nothing else),
 * "chan" (the same wrapped in a chan with a read timeout, as the push
 * server does) or "ssl" (the SSL object alone, handshaken by hand, no
 * bufferevent). CLIENT_CERT 1 (default) makes the clients present a
 * certificate, as authenticated agents do; FRAMES (default 0) small frames
 * each client sends once connected. The clients run in a child
 * process so that only the server's memory is measured. Figures are the
 * growth between N/4 and N connections divided by 3N/4, so one-time costs
 * (the first chain of a buffer pool, OpenSSL's lazily loaded tables) drop
 * out. Prints one line of JSON.
 */
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "chan.h"
#include "frame.h"
#include "tls.h"

enum mode { MODE_BARE, MODE_CHAN, MODE_SSL };

struct server {
	struct event_base *base;
	SSL_CTX *ctx;
	enum mode mode;
	int ready;
	int want;
	int up; /* the clients write a byte here after each batch */
};

/* Bytes OpenSSL holds, counted through its allocator hooks. With
 * CHANMEM_SITES set, the allocations still live at the end that were made
 * after the first sample are also listed by OpenSSL source line. */
static size_t ossl_live;
static bool track_sites;
static int generation;

#define SITE_SLOTS (1 << 22)
struct site_rec {
	void *p;
	const char *file;
	int line;
	int gen;
	size_t size;
};
static struct site_rec *sites;

static size_t site_slot(void *p)
{
	size_t h = ((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull;
	return h >> (64 - 22);
}

static void site_add(void *p, const char *file, int line, size_t size)
{
	if (!sites)
		return;
	size_t i = site_slot(p);
	while (sites[i].p && sites[i].p != (void *)1)
		i = (i + 1) & (SITE_SLOTS - 1);
	sites[i] = (struct site_rec){ p, file, line, generation, size };
}

static void site_del(void *p)
{
	if (!sites)
		return;
	size_t i = site_slot(p);
	while (sites[i].p) {
		if (sites[i].p == p) {
			sites[i].p = (void *)1;
			return;
		}
		i = (i + 1) & (SITE_SLOTS - 1);
	}
}

static void *count_malloc(size_t n, const char *file, int line)
{
	void *p = malloc(n);
	if (p) {
		ossl_live += malloc_usable_size(p);
		site_add(p, file, line, malloc_usable_size(p));
	}
	return p;
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
	size_t old = p ? malloc_usable_size(p) : 0;
	if (p)
		site_del(p);
	void *q = realloc(p, n);
	if (q || n == 0)
		ossl_live -= old;
	if (q) {
		ossl_live += malloc_usable_size(q);
		site_add(q, file, line, malloc_usable_size(q));
	}
	return q;
}

static void count_free(void *p, const char *file, int line)
{
	if (p) {
		ossl_live -= malloc_usable_size(p);
		site_del(p);
	}
	free(p);
}

static int site_cmp(const void *a, const void *b)
{
	const struct site_rec *x = a, *y = b;
	int c = strcmp(x->file ? x->file : "", y->file ? y->file : "");
	return c ? c : x->line - y->line;
}

/* Live allocations of the second generation, summed per source line, per connection. */
static void sites_report(int conns)
{
	size_t n = 0;
	for (size_t i = 0; i < SITE_SLOTS; i++)
		if (sites[i].p && sites[i].p != (void *)1 && sites[i].gen == 1)
			sites[n++] = sites[i];
	qsort(sites, n, sizeof(*sites), site_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i, bytes = 0;
		while (j < n && site_cmp(&sites[i], &sites[j]) == 0)
			bytes += sites[j++].size;
		fprintf(stderr, "%8.1f allocs %8.0f B  %s:%d\n", (double)(j - i) / conns,
			(double)bytes / conns, sites[i].file, sites[i].line);
		i = j;
	}
}

struct sample {
	long rss_kib;
	size_t heap;
	size_t ossl;
};

static struct sample sample_now(void)
{
	struct sample s = { 0, 0, 0 };
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	s.rss_kib = res * (sysconf(_SC_PAGESIZE) / 1024);
	struct mallinfo2 mi = mallinfo2();
	s.heap = mi.uordblks + mi.hblkhd;
	s.ossl = ossl_live;
	return s;
}

static void srv_message(struct chan *ch, uint16_t type, const uint8_t *p, size_t len, void *arg) {}

static void srv_connected(struct chan *ch, void *arg)
{
	struct server *s = arg;
	s->ready++;
}

static void srv_close(struct chan *ch, const char *reason, void *arg)
{
	fprintf(stderr, "chanmem: a server chan closed: %s\n", reason);
}

static const struct chan_cbs srv_cbs = { srv_message, srv_connected, NULL, srv_close };

static void bare_read(struct bufferevent *bev, void *arg) {}

static void bare_event(struct bufferevent *bev, short what, void *arg)
{
	struct server *s = arg;
	if (what & BEV_EVENT_CONNECTED)
		s->ready++;
	else
		fprintf(stderr, "chanmem: a server connection failed (0x%x)\n", what);
}

/* The SSL-only server: a blocking handshake per connection, then the fd
 * and the SSL object are kept and never touched again. */
static int ssl_accept_blocking(SSL_CTX *ctx, int fd)
{
	SSL *ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_accept(ssl) != 1) {
		ERR_print_errors_fp(stderr);
		return -1;
	}
	return 0;
}

/* Accepts and handshakes by hand until s->ready reaches want, then waits
 * for the clients' word that they all connected. */
static void accept_blocking(struct server *s, int lfd, int want)
{
	while (s->ready < want) {
		struct pollfd pfd = { .fd = lfd, .events = POLLIN };
		if (poll(&pfd, 1, -1) != 1)
			exit(1);
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0 && errno == EAGAIN)
			continue;
		if (fd < 0 || ssl_accept_blocking(s->ctx, fd) != 0)
			exit(1);
		s->ready++;
	}
	char c;
	if (read(s->up, &c, 1) != 1)
		exit(1);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct server *s = arg;
	evutil_make_socket_nonblocking(fd);
	SSL *ssl = SSL_new(s->ctx);
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		fprintf(stderr, "chanmem: bufferevent_openssl_socket_new failed\n");
		exit(1);
	}
	if (s->mode == MODE_BARE) {
		struct timeval tv = { 3600, 0 };
		bufferevent_setcb(bev, bare_read, NULL, bare_event, s);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		bufferevent_set_timeouts(bev, &tv, NULL);
		return;
	}
	struct chan *ch = chan_new(s->base, bev, "127.0.0.1:65535", 65536, &srv_cbs, s);
	if (!ch) {
		fprintf(stderr, "chanmem: chan_new failed\n");
		exit(1);
	}
	chan_set_timeout(ch, 3600);
}

static int client_connected;

/* Frames each client sends once connected, as an agent's AUTH and first heartbeat. */
static int client_frames;

static void cli_event(struct bufferevent *bev, short what, void *arg)
{
	if (what & BEV_EVENT_CONNECTED) {
		client_connected++;
		for (int i = 0; i < client_frames; i++) {
			uint8_t frame[FRAME_HEADER_LEN + 2];
			frame_header_encode(frame, 1, 2);
			memcpy(frame + FRAME_HEADER_LEN, "{}", 2);
			bufferevent_write(bev, frame, sizeof(frame));
		}
	} else
		fprintf(stderr, "chanmem: a client connection failed (0x%x)\n", what);
}

/* Opens n connections, reports on the pipe after each batch, waits to be told to go on. */
static void run_clients(SSL_CTX *cctx, int port, int n1, int n, int up, int down)
{
	struct event_base *base = event_base_new();
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int opened = 0;
	const int batch[2] = { n1, n };
	for (int b = 0; b < 2; b++) {
		while (opened < batch[b]) {
			SSL *ssl = SSL_new(cctx);
			struct bufferevent *bev = bufferevent_openssl_socket_new(
			    base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
			bufferevent_setcb(bev, NULL, NULL, cli_event, NULL);
			bufferevent_enable(bev, EV_READ);
			if (bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)) !=
			    0)
				exit(1);
			opened++;
			/* A few at a time keeps the listen backlog from overflowing. */
			while (opened - client_connected > 32)
				event_base_loop(base, EVLOOP_ONCE);
		}
		while (client_connected < opened)
			event_base_loop(base, EVLOOP_ONCE);
		char c = 'x';
		if (write(up, &c, 1) != 1 || read(down, &c, 1) != 1)
			exit(1);
	}
	_exit(0);
}

/* Runs the server loop until want connections completed their handshake
 * and the clients said they have all connected. */
static void serve_until(struct server *s, int want, int up)
{
	s->want = want;
	struct pollfd pfd = { .fd = up, .events = POLLIN };
	bool told = false;
	while (s->ready < want || !told) {
		event_base_loop(s->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (!told && poll(&pfd, 1, 1) == 1) {
			char c;
			if (read(up, &c, 1) != 1)
				exit(1);
			told = true;
		}
	}
	/* A last pass for the bytes that follow the handshake (none in TLS 1.3
	 * without tickets, but cheap to be sure of). */
	for (int i = 0; i < 50; i++) {
		event_base_loop(s->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
}

static X509 *issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *cn, int server)
{
	char err[512];
	X509_REQ *req = tls_csr_create(key, cn, err, sizeof(err));
	X509 *cert =
	    req ? tls_sign_csr(ca, ca_key, req, cn, server, "127.0.0.1", 30, err, sizeof(err))
		: NULL;
	X509_REQ_free(req);
	if (!cert) {
		fprintf(stderr, "chanmem: %s\n", err);
		exit(1);
	}
	return cert;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: chanmem bare|chan|ssl N [CLIENT_CERT]\n");
		return 2;
	}
	track_sites = getenv("CHANMEM_SITES") != NULL;
	if (track_sites)
		sites = calloc(SITE_SLOTS, sizeof(*sites));
	CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free);
	struct server s = { 0 };
	if (strcmp(argv[1], "bare") == 0)
		s.mode = MODE_BARE;
	else if (strcmp(argv[1], "chan") == 0)
		s.mode = MODE_CHAN;
	else if (strcmp(argv[1], "ssl") == 0)
		s.mode = MODE_SSL;
	else
		return 2;
	int n = atoi(argv[2]);
	int client_cert = argc > 3 ? atoi(argv[3]) : 1;
	client_frames = argc > 4 ? atoi(argv[4]) : 0;
	int n1 = n / 4;
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	char err[512];
	EVP_PKEY *ca_key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *srv_key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *cli_key = tls_key_generate(err, sizeof(err));
	X509 *ca = tls_ca_create(ca_key, "chanmem CA", err, sizeof(err));
	if (!ca_key || !srv_key || !cli_key || !ca) {
		fprintf(stderr, "chanmem: %s\n", err);
		return 1;
	}
	X509 *srv_cert = issue(ca, ca_key, srv_key, "server", 1);
	X509 *cli_cert = issue(ca, ca_key, cli_key, "agent", 0);
	s.ctx = tls_server_ctx(srv_key, srv_cert, ca, err, sizeof(err));
	SSL_CTX *cctx = client_cert ? tls_client_ctx(cli_key, cli_cert, ca, err, sizeof(err))
				    : tls_client_ctx(NULL, NULL, ca, err, sizeof(err));
	if (!s.ctx || !cctx) {
		fprintf(stderr, "chanmem: %s\n", err);
		return 1;
	}

	s.base = event_base_new();
	struct sockaddr_in sin = { .sin_family = AF_INET };
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct evconnlistener *l =
	    evconnlistener_new_bind(s.base, on_accept, &s, LEV_OPT_CLOSE_ON_FREE, 1024,
				    (struct sockaddr *)&sin, sizeof(sin));
	if (!l)
		return 1;
	socklen_t slen = sizeof(sin);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sin, &slen);
	if (s.mode == MODE_SSL)
		evconnlistener_disable(l);

	int up[2], down[2];
	if (pipe(up) != 0 || pipe(down) != 0)
		return 1;
	s.up = up[0];
	pid_t pid = fork();
	if (pid == 0) {
		event_reinit(s.base);
		run_clients(cctx, ntohs(sin.sin_port), n1, n, up[1], down[0]);
	}
	struct sample at_n1 = { 0 }, at_n = { 0 };
	if (s.mode == MODE_SSL) {
		accept_blocking(&s, evconnlistener_get_fd(l), n1);
		at_n1 = sample_now();
		generation = 1;
		if (write(down[1], "x", 1) != 1)
			return 1;
		accept_blocking(&s, evconnlistener_get_fd(l), n);
		at_n = sample_now();
	} else {
		serve_until(&s, n1, up[0]);
		at_n1 = sample_now();
		generation = 1;
		if (write(down[1], "x", 1) != 1)
			return 1;
		serve_until(&s, n, up[0]);
		at_n = sample_now();
	}
	double per = (double)(n - n1);
	printf("{\"mode\":\"%s\",\"connections\":%d,\"client_cert\":%d,\"frames\":%d,"
	       "\"rss_per_conn\":%.0f,\"heap_per_conn\":%.0f,\"openssl_per_conn\":%.0f}\n",
	       argv[1], n, client_cert, client_frames,
	       (double)(at_n.rss_kib - at_n1.rss_kib) * 1024.0 / per,
	       (double)(at_n.heap - at_n1.heap) / per, (double)(at_n.ossl - at_n1.ossl) / per);
	if (track_sites)
		sites_report(n - n1);
	if (write(down[1], "x", 1) != 1)
		return 1;
	waitpid(pid, NULL, 0);
	return 0;
}
