#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <jansson.h>

#include "agentproto.h"
#include "chan.h"
#include "clk.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "route.h"
#include "state.h"
#include "tls.h"

#define SIM_RETRIES	   8	 /* enrolment attempts per identity */
#define SIM_BACKOFF_MAX	   30	 /* seconds between reconnects at most */
#define SIM_TICK_MS	   10	 /* the connect pacer's period */
#define SIM_HIST_MS	   60000 /* handshake latencies are counted per ms up to this */
#define SIM_STOP_GRACE_SEC 3	 /* time given to closing connections at stop */
#define SIM_HANDSHAKE_TIMEOUT 30 /* s: a loaded slave may answer thousands of handshakes late */
#define SIM_TARGETS_MAX	   64	 /* distinct push servers agents are redirected to, per process */

/* ---- pure parts ---- */

int sim_sources_parse(const char *text, struct sim_sources *out, char *err, size_t errlen)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
	struct in_addr ia, ib;
	const char *dash = strchr(text, '-');
	size_t la = dash ? (size_t)(dash - text) : strlen(text);
	size_t lb = dash ? strlen(dash + 1) : la;
	if (la == 0 || la >= sizeof(a) || lb == 0 || lb >= sizeof(b))
		goto bad;
	memcpy(a, text, la);
	a[la] = '\0';
	snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
	if (inet_pton(AF_INET, a, &ia) != 1 || inet_pton(AF_INET, b, &ib) != 1)
		goto bad;
	uint32_t first = ntohl(ia.s_addr), last = ntohl(ib.s_addr);
	if (last < first) {
		snprintf(err, errlen, "--sources %s: the range ends before it starts", text);
		return -1;
	}
	if ((uint64_t)last - first + 1 > SIM_SOURCES_MAX) {
		snprintf(err, errlen, "--sources %s: more than %d addresses", text,
			 SIM_SOURCES_MAX);
		return -1;
	}
	out->first = first;
	out->count = last - first + 1;
	return 0;
bad:
	snprintf(err, errlen, "--sources %s: expected an IPv4 address or A-B", text);
	return -1;
}

uint32_t sim_sources_at(const struct sim_sources *s, uint64_t i)
{
	return s->first + (uint32_t)(i % s->count);
}

int sim_default_procs(int n)
{
	int p = (n + SIM_PER_PROC - 1) / SIM_PER_PROC;
	return p < 1 ? 1 : p;
}

void sim_share(int n, int procs, int index, int *start, int *count)
{
	int64_t s = (int64_t)n * index / procs, e = (int64_t)n * (index + 1) / procs;
	*start = (int)s;
	*count = (int)(e - s);
}

uint32_t sim_evseq_next(struct sim_evseq *s)
{
	if (s->sent - s->acked >= SIM_EV_WINDOW)
		return 0;
	return ++s->sent;
}

int sim_evseq_ack(struct sim_evseq *s, int64_t seq)
{
	if (s->acked >= s->sent || seq != (int64_t)s->acked + 1)
		return -1;
	s->acked++;
	return 0;
}

uint32_t sim_evseq_pending(const struct sim_evseq *s, uint32_t *from, uint32_t *to)
{
	uint32_t n = s->sent - s->acked;
	if (n > 0) {
		*from = s->acked + 1;
		*to = s->sent;
	}
	return n;
}

int sim_event_time(int64_t base_ms, int per_min, uint32_t seq, char *out, size_t outlen)
{
	int64_t ms =
	    base_ms + (seq > 0 ? (int64_t)(seq - 1) * 60000 / (per_min > 0 ? per_min : 1) : 0);
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char sec[24];
	if (!gmtime_r(&t, &tm) || strftime(sec, sizeof(sec), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		return -1;
	int n = snprintf(out, outlen, "%s.%03dZ", sec, (int)(ms % 1000));
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

int sim_events_due(double *credit, int count, int per_min, int tick_ms)
{
	*credit += (double)count * per_min * tick_ms / 60000.0;
	int n = (int)*credit;
	*credit -= n;
	return n;
}

/* ---- shared by both commands ---- */

/* One process holds up to SIM_PER_PROC sockets: the soft limit must allow them. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * A TLS client chan to dst from source address src (host order, 0: any).
 * The socket is bound and its connect started before the bufferevent
 * takes it, so the TLS handshake begins once the TCP connect completes.
 * IP_BIND_ADDRESS_NO_PORT lets the kernel pick the port at connect time,
 * per destination, instead of reserving one per source address at bind.
 */
static struct chan *sim_dial(struct event_base *base, SSL_CTX *ctx, const char *host,
			     const struct sockaddr_in *dst, uint32_t src,
			     const struct chan_cbs *cbs, void *arg)
{
	int one = 1;
	SSL *ssl = SSL_new(ctx);
	if (!ssl)
		return NULL;
	SSL_set_tlsext_host_name(ssl, host);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		SSL_free(ssl);
		return NULL;
	}
	if (src) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(src) };
		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			goto fail;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) != 0 && errno != EINPROGRESS)
		goto fail;
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev)
		goto fail;
	struct chan *ch = chan_new(base, bev, host, ACONN_FRAME_PREAUTH, cbs, arg);
	if (ch)
		chan_set_timeout(ch, SIM_HANDSHAKE_TIMEOUT);
	return ch;
fail:
	close(fd);
	SSL_free(ssl);
	return NULL;
}

static int resolve(const char *host, int port, struct sockaddr_in *out, char *err, size_t errlen)
{
	struct evutil_addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	char p[8];
	snprintf(p, sizeof(p), "%d", port);
	int rc = evutil_getaddrinfo(host, p, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", host, evutil_gai_strerror(rc));
		return -1;
	}
	memcpy(out, ai->ai_addr, sizeof(*out));
	evutil_freeaddrinfo(ai);
	return 0;
}

static int path_in(const char *dir, const char *name, char *out, size_t outlen, char *err,
		   size_t errlen)
{
	if (astate_path(dir, name, out, outlen) != 0) {
		snprintf(err, errlen, "%s/%s: path too long", dir, name);
		return -1;
	}
	return 0;
}

typedef int (*sim_child_fn)(const struct sim_opts *o, int index, int procs);

/*
 * Forks procs children running fn(o, i, procs) and waits for them all.
 * The parent passes SIGTERM, SIGINT and SIGUSR1 on to its children.
 * 0 when every child exited 0.
 */
static int run_children(const struct sim_opts *o, int procs, sim_child_fn fn, char *err,
			size_t errlen)
{
	sigset_t set, old;
	pid_t *pids = calloc((size_t)procs, sizeof(*pids));
	int failed = 0, alive = 0;
	if (!pids) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &old);
	fflush(NULL);
	for (int i = 0; i < procs; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			free(pids);
			_exit(fn(o, i, procs));
		}
		if (pid < 0) {
			snprintf(err, errlen, "fork: %s", strerror(errno));
			failed = 1;
			break;
		}
		pids[i] = pid;
		alive++;
	}
	if (failed)
		for (int i = 0; i < procs; i++)
			if (pids[i] > 0)
				kill(pids[i], SIGTERM);
	while (alive > 0) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si);
		if (sig == SIGCHLD) {
			int status;
			pid_t pid;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				alive--;
				if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
					failed = 1;
			}
		} else if (sig > 0) {
			for (int i = 0; i < procs; i++)
				if (pids[i] > 0)
					kill(pids[i], sig);
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(pids);
	if (failed && !err[0])
		snprintf(err, errlen, "a simulator process failed (see its messages above)");
	return failed ? -1 : 0;
}

static int check_n(const struct sim_opts *o, int *procs, char *err, size_t errlen)
{
	if (o->n < 1) {
		snprintf(err, errlen, "--simulate needs at least one agent");
		return -1;
	}
	*procs = o->procs > 0 ? o->procs : sim_default_procs(o->n);
	if (*procs > o->n)
		*procs = o->n;
	return 0;
}

/* ---- enrol ---- */

struct enrol_slot {
	struct enrol_proc *ep;
	int index; /* within this process's share, -1 when idle */
	EVP_PKEY *key;
	struct chan *ch;
	bool ok;
};

struct enrol_proc {
	const struct sim_opts *o;
	struct event_base *base;
	SSL_CTX *ctx;
	struct enrol_token tok;
	struct sockaddr_in dst;
	struct sim_sources src;
	int proc, start, count;
	int next, done, attempts_failed;
	unsigned char *tries, *busy; /* per identity: attempts so far, attempt in progress */
	char **lines;		     /* per identity: the {id, key} line, NULL until enrolled */
	char *ca_pem;
	bool fatal;
	char err[1536];
	uint64_t dials;
};

static void enrol_next(struct enrol_slot *sl);

static void enrol_on_connected(struct chan *ch, void *arg)
{
	struct enrol_slot *sl = arg;
	struct enrol_proc *ep = sl->ep;
	char err[1536], pub[65], host[32];
	X509 *ca = NULL;
	if (tls_check_pin(chan_ssl(ch), ep->tok.pin, &ca, err, sizeof(err)) != 0) {
		snprintf(ep->err, sizeof(ep->err), "%s", err);
		ep->fatal = true;
		chan_close(ch, "CA pin mismatch");
		return;
	}
	X509_free(ca);
	if (agentproto_pubkey_hex(sl->key, pub) != 0) {
		chan_close(ch, "key");
		return;
	}
	snprintf(host, sizeof(host), "sim-%07d", ep->start + sl->index);
	json_t *m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION,
			      "token", ep->o->token, "key", pub, "hostname", host, "os",
			      "simulated", "agent_version", STRATA_VERSION, "mode", "push");
	chan_send_json(ch, A_ENROL, m);
	json_decref(m);
}

static void enrol_store(struct enrol_slot *sl, json_t *o)
{
	struct enrol_proc *ep = sl->ep;
	struct amsg_enrol_ok m;
	char err[1536], hex[65];
	unsigned char raw[32];
	size_t rawlen = sizeof(raw);
	if (agentproto_decode_enrol_ok(o, &m, err, sizeof(err)) != 0 ||
	    EVP_PKEY_get_raw_private_key(sl->key, raw, &rawlen) != 1 || rawlen != sizeof(raw))
		return;
	for (size_t i = 0; i < rawlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	json_t *line = json_pack("{s:s, s:s}", "id", m.agent_id, "key", hex);
	ep->lines[sl->index] = json_dumps(line, JSON_COMPACT);
	json_decref(line);
	if (!ep->ca_pem)
		ep->ca_pem = strdup(m.ca);
	sl->ok = ep->lines[sl->index] != NULL;
}

static void enrol_on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			     void *arg)
{
	struct enrol_slot *sl = arg;
	char err[1536];
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (o && type == A_ENROL_OK) {
		enrol_store(sl, o);
	} else if (o && type == MSG_ERROR) {
		struct msg_error e;
		/* A refused token or full licence will refuse every other identity too. */
		if (proto_decode_error(o, &e, err, sizeof(err)) == 0 &&
		    (strcmp(e.code, "token") == 0 || strcmp(e.code, "seats") == 0 ||
		     strcmp(e.code, "licence") == 0)) {
			snprintf(sl->ep->err, sizeof(sl->ep->err), "the server refused: %s: %s",
				 e.code, e.message);
			sl->ep->fatal = true;
		}
	}
	json_decref(o);
	chan_close(ch, "enrolment over");
}

static void enrol_on_close(struct chan *ch, const char *reason, void *arg)
{
	struct enrol_slot *sl = arg;
	struct enrol_proc *ep = sl->ep;
	sl->ch = NULL;
	EVP_PKEY_free(sl->key);
	sl->key = NULL;
	ep->busy[sl->index] = 0;
	if (sl->ok) {
		ep->done++;
	} else if (++ep->tries[sl->index] >= SIM_RETRIES) {
		snprintf(ep->err, sizeof(ep->err), "identity %d: %s", ep->start + sl->index,
			 reason);
		ep->fatal = true;
	} else {
		/* The failed identity is the lowest one not taken: it goes again next. */
		ep->attempts_failed++;
		if (sl->index < ep->next)
			ep->next = sl->index;
	}
	sl->index = -1;
	sl->ok = false;
	enrol_next(sl);
}

static const struct chan_cbs enrol_cbs = {
	.on_message = enrol_on_message,
	.on_connected = enrol_on_connected,
	.on_close = enrol_on_close,
};

/* Gives the slot the lowest identity that is neither enrolled nor in progress. */
static void enrol_next(struct enrol_slot *sl)
{
	struct enrol_proc *ep = sl->ep;
	char err[1536];
	if (ep->fatal || ep->done == ep->count) {
		event_base_loopexit(ep->base, NULL);
		return;
	}
	while (ep->next < ep->count && (ep->lines[ep->next] || ep->busy[ep->next]))
		ep->next++;
	if (ep->next >= ep->count)
		return; /* the others are in progress */
	sl->index = ep->next++;
	ep->busy[sl->index] = 1;
	if (!(sl->key = tls_key_generate(err, sizeof(err)))) {
		snprintf(ep->err, sizeof(ep->err), "%s", err);
		ep->fatal = true;
		event_base_loopexit(ep->base, NULL);
		return;
	}
	uint32_t src = ep->src.count ? sim_sources_at(&ep->src, ep->dials) : 0;
	ep->dials++;
	sl->ch = sim_dial(ep->base, ep->ctx, ep->o->host, &ep->dst, src, &enrol_cbs, sl);
	if (!sl->ch) {
		snprintf(ep->err, sizeof(ep->err), "cannot open a connection: %s", strerror(errno));
		ep->fatal = true;
		EVP_PKEY_free(sl->key);
		sl->key = NULL;
		event_base_loopexit(ep->base, NULL);
	}
}

static int write_lines(const char *path, const char *header, char **lines, int n, char *err,
		       size_t errlen)
{
	FILE *f = NULL;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (header)
		fprintf(f, "%s\n", header);
	for (int i = 0; i < n; i++)
		if (lines[i])
			fprintf(f, "%s\n", lines[i]);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "%.900s: %s", path, strerror(errno));
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int enrol_child(const struct sim_opts *o, int index, int procs)
{
	struct enrol_proc ep = { .o = o, .proc = index };
	char err[1024], part[4096], name[64];
	int rc = 1, inflight = o->inflight > 0 ? o->inflight : 64;
	struct enrol_slot *slots = NULL;
	raise_nofile();
	sim_share(o->n, procs, index, &ep.start, &ep.count);
	ep.tries = calloc((size_t)ep.count + 1, sizeof(*ep.tries));
	ep.busy = calloc((size_t)ep.count + 1, sizeof(*ep.busy));
	ep.lines = calloc((size_t)ep.count, sizeof(*ep.lines));
	slots = calloc((size_t)inflight, sizeof(*slots));
	ep.base = event_base_new();
	if (!ep.tries || !ep.busy || !ep.lines || !slots || !ep.base) {
		fprintf(stderr, "strata-agent: simulator %d: out of memory\n", index);
		goto out;
	}
	if (tls_token_parse(o->token, &ep.tok, err, sizeof(err)) != 0 ||
	    resolve(o->host, o->port, &ep.dst, err, sizeof(err)) != 0 ||
	    (o->sources && sim_sources_parse(o->sources, &ep.src, err, sizeof(err)) != 0) ||
	    !(ep.ctx = tls_client_ctx_pinned(err, sizeof(err)))) {
		fprintf(stderr, "strata-agent: simulator %d: %s\n", index, err);
		goto out;
	}
	int64_t t0 = clk_mono_ms();
	for (int i = 0; i < inflight && i < ep.count; i++) {
		slots[i] = (struct enrol_slot){ .ep = &ep, .index = -1 };
		enrol_next(&slots[i]);
	}
	if (ep.count > 0 && !ep.fatal)
		event_base_dispatch(ep.base);
	/* Let the slots still open close before the loop and its base go. */
	for (int i = 0; i < inflight && i < ep.count; i++)
		if (slots[i].ch)
			chan_close(slots[i].ch, "stopping");
	ep.fatal = true;
	event_base_loop(ep.base, EVLOOP_NONBLOCK);
	event_base_dispatch(ep.base);
	if (ep.done != ep.count) {
		fprintf(stderr, "strata-agent: simulator %d: enrolled %d of %d: %s\n", index,
			ep.done, ep.count, ep.err[0] ? ep.err : "stopped");
		goto out;
	}
	json_t *hdr = json_pack("{s:s, s:i, s:s}", "host", o->host, "port", o->port, "ca",
				ep.ca_pem ? ep.ca_pem : "");
	char *h = json_dumps(hdr, JSON_COMPACT);
	json_decref(hdr);
	snprintf(name, sizeof(name), SIM_FILE ".part%d", index);
	if (path_in(o->dir, name, part, sizeof(part), err, sizeof(err)) == 0 &&
	    write_lines(part, h, ep.lines, ep.count, err, sizeof(err)) == 0)
		rc = 0;
	else
		fprintf(stderr, "strata-agent: simulator %d: %s\n", index, err);
	free(h);
	fprintf(stderr,
		"strata-agent: simulator %d: enrolled %d identities in %.2f s (%d retried "
		"attempts)\n",
		index, ep.count, (double)(clk_mono_ms() - t0) / 1000.0, ep.attempts_failed);
out:
	for (int i = 0; ep.lines && i < ep.count; i++)
		free(ep.lines[i]);
	free(ep.lines);
	free(ep.tries);
	free(ep.busy);
	free(slots);
	free(ep.ca_pem);
	SSL_CTX_free(ep.ctx);
	if (ep.base)
		event_base_free(ep.base);
	return rc;
}

/* Joins the children's part files into dir/sim.jsonl (one header, every identity). */
static int enrol_merge(const char *dir, int procs, char *err, size_t errlen)
{
	char out[4096], tmp[4096], part[4096], name[64];
	if (path_in(dir, SIM_FILE, out, sizeof(out), err, errlen) != 0 ||
	    path_in(dir, SIM_FILE ".tmp", tmp, sizeof(tmp), err, errlen) != 0)
		return -1;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		snprintf(err, errlen, "%.900s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	int rc = 0;
	for (int i = 0; i < procs && rc == 0; i++) {
		snprintf(name, sizeof(name), SIM_FILE ".part%d", i);
		if (path_in(dir, name, part, sizeof(part), err, errlen) != 0) {
			rc = -1;
			break;
		}
		FILE *in = fopen(part, "r");
		if (!in) {
			snprintf(err, errlen, "%.900s: %s", part, strerror(errno));
			rc = -1;
			break;
		}
		for (int n = 0; getline(&line, &cap, in) > 0; n++)
			if (n > 0 || i == 0)
				fputs(line, f);
		fclose(in);
		unlink(part);
	}
	free(line);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		snprintf(err, errlen, "%.900s: %s", tmp, strerror(errno));
		rc = -1;
	}
	fclose(f);
	if (rc == 0 && rename(tmp, out) != 0) {
		snprintf(err, errlen, "%.900s: %s", out, strerror(errno));
		rc = -1;
	}
	if (rc != 0)
		unlink(tmp);
	return rc;
}

int sim_enrol(const struct sim_opts *o, char *err, size_t errlen)
{
	char path[4096];
	struct sim_sources src;
	struct enrol_token tok;
	int procs;
	err[0] = '\0';
	if (check_n(o, &procs, err, errlen) != 0 ||
	    tls_token_parse(o->token, &tok, err, errlen) != 0 ||
	    (o->sources && sim_sources_parse(o->sources, &src, err, errlen) != 0) ||
	    astate_prepare_dir(o->dir, err, errlen) != 0 ||
	    path_in(o->dir, SIM_FILE, path, sizeof(path), err, errlen) != 0)
		return -1;
	if (access(path, F_OK) == 0) {
		snprintf(err, errlen, "%.900s exists; remove it to enrol again", path);
		return -1;
	}
	int64_t t0 = clk_mono_ms();
	if (run_children(o, procs, enrol_child, err, errlen) != 0 ||
	    enrol_merge(o->dir, procs, err, errlen) != 0)
		return -1;
	double s = (double)(clk_mono_ms() - t0) / 1000.0;
	printf("{\"enrolled\":%d,\"seconds\":%.3f,\"per_second\":%.0f}\n", o->n, s,
	       s > 0 ? o->n / s : 0.0);
	return 0;
}

/* ---- run ---- */

enum sim_state {
	SA_IDLE,       /* waiting for its reconnect time */
	SA_QUEUED,     /* waiting for the pacer */
	SA_CONNECTING, /* TCP + TLS */
	SA_AUTH_WAIT,  /* A_AUTH sent */
	SA_AUTHED,
};

struct sim_agent {
	struct run_proc *rp;
	struct chan *ch;
	EVP_PKEY *key;
	struct event *timer; /* reconnect, then heartbeat */
	int64_t dial_ms;
	int64_t seq;
	uint16_t heartbeat; /* seconds, from A_AUTH_OK */
	uint8_t backoff;    /* seconds before the next reconnect */
	uint8_t state;
	struct aroute route; /* as the daemon's agent does, in memory only */
	uint8_t push;	     /* index in run_proc.targets of the assigned push server */
	uint8_t at;	     /* enum aroute_target of the attempt in progress */
	bool redirected;     /* this connection ended with A_REDIRECT */
	struct sim_evseq ev; /* --events-per-min */
	char id[65];
};

struct run_stats {
	uint64_t handshakes, failures, redirects, acked, results, heartbeats, commands;
	uint64_t events_sent, events_acked, events_unacked, events_bad_acks;
	uint64_t events_resent, events_window_full;
	double first_command, last_command, first_online, all_online;
};

/* A push server agents were redirected to. */
struct sim_target {
	char host[256];
	int port;
	struct sockaddr_in dst;
};

struct run_proc {
	const struct sim_opts *o;
	struct event_base *base;
	SSL_CTX *ctx;
	char host[256]; /* the origin: the push server of sim.jsonl's header */
	struct sockaddr_in dst;
	struct sim_target targets[SIM_TARGETS_MAX];
	int ntargets;
	struct sim_sources src;
	int proc, start, count;
	struct sim_agent *agents;
	int *queue; /* ring of agents waiting for the pacer */
	int qhead, qlen;
	int inflight, connected, open;
	double tokens;
	bool stopping;
	bool fast; /* SIGUSR2: heartbeat every o->fast_heartbeat s instead of the server's interval
		    */
	uint64_t dials;
	double ev_credit;   /* --events-per-min: events due, carried between ticks */
	int ev_next;	    /* the next agent to send one */
	int64_t ev_base_ms; /* epoch ms at start: occurred_at of seq 1 (sim_event_time) */
	struct run_stats st;
	uint32_t *hist; /* handshake latency, one slot per ms */
	uint32_t hist_over;
	struct event *pacer, *stats, *usr1, *usr2, *term, *intr, *deadline, *grace;
};

static void agent_resend_events(struct sim_agent *a);

static void agent_enqueue(struct sim_agent *a)
{
	struct run_proc *rp = a->rp;
	a->state = SA_QUEUED;
	rp->queue[(rp->qhead + rp->qlen++) % rp->count] = (int)(a - rp->agents);
}

static void on_agent_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sim_agent *a = arg;
	struct timeval tv;
	if (a->state == SA_IDLE) {
		agent_enqueue(a);
	} else if (a->state == SA_AUTHED && a->ch) {
		json_t *e = json_object();
		chan_send_json(a->ch, A_HEARTBEAT, e);
		json_decref(e);
		a->rp->st.heartbeats++;
		tv.tv_sec = a->rp->fast ? a->rp->o->fast_heartbeat : a->heartbeat;
		tv.tv_usec = 0;
		evtimer_add(a->timer, &tv);
	}
}

static void agent_send(struct sim_agent *a, uint16_t type, json_t *m)
{
	chan_send_json(a->ch, type, m);
	json_decref(m);
}

static void agent_on_connected(struct chan *ch, void *arg)
{
	struct sim_agent *a = arg;
	char sig[129];
	if (agentproto_sign(chan_ssl(ch), a->key, sig) != 0) {
		chan_close(ch, "cannot sign the session");
		return;
	}
	agent_send(a, A_AUTH,
		   json_pack("{s:i, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION, "agent_id",
			     a->id, "sig", sig, "mode", "push"));
	a->state = SA_AUTH_WAIT;
}

static void agent_on_auth_ok(struct sim_agent *a, json_t *o)
{
	struct run_proc *rp = a->rp;
	struct amsg_auth_ok m;
	char err[256];
	if (agentproto_decode_auth_ok(o, &m, err, sizeof(err)) != 0) {
		chan_close(a->ch, err);
		return;
	}
	int64_t ms = clk_mono_ms() - a->dial_ms;
	if (ms < SIM_HIST_MS)
		rp->hist[ms]++;
	else
		rp->hist_over++;
	a->state = SA_AUTHED;
	rp->inflight--;
	rp->connected++;
	rp->st.handshakes++;
	if (rp->st.first_online == 0)
		rp->st.first_online = clk_epoch();
	if (rp->connected == rp->count)
		rp->st.all_online = clk_epoch();
	chan_set_max_frame(a->ch, ACONN_FRAME_MAX);
	chan_set_timeout(a->ch, 0);
	/* A random phase spreads the heartbeats of agents that connected together. */
	a->heartbeat = (uint16_t)(m.heartbeat > UINT16_MAX ? UINT16_MAX : m.heartbeat);
	a->backoff = 0;
	(void)aroute_authed(&a->route, (enum aroute_target)a->at);
	struct timeval tv = { random() % m.heartbeat, random() % 1000000 };
	evtimer_add(a->timer, &tv);
	agent_resend_events(a);
}

/*
 * The index of host:port in the process's push servers, added when new.
 * The name is resolved here, blocking the loop once per push server:
 * there are few of them, and agents are sent to them by address.
 */
static int target_find(struct run_proc *rp, const char *host, int port, char *err, size_t errlen)
{
	for (int i = 0; i < rp->ntargets; i++)
		if (rp->targets[i].port == port && strcmp(rp->targets[i].host, host) == 0)
			return i;
	if (rp->ntargets == SIM_TARGETS_MAX) {
		snprintf(err, errlen, "more than %d push servers", SIM_TARGETS_MAX);
		return -1;
	}
	struct sim_target *t = &rp->targets[rp->ntargets];
	if (resolve(host, port, &t->dst, err, errlen) != 0)
		return -1;
	snprintf(t->host, sizeof(t->host), "%s", host);
	t->port = port;
	return rp->ntargets++;
}

/* A_REDIRECT: followed through the pacer once this connection has closed. */
static void agent_on_redirect(struct sim_agent *a, json_t *o)
{
	struct run_proc *rp = a->rp;
	struct amsg_redirect m;
	char err[256];
	if (agentproto_decode_redirect(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(a->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	int t = target_find(rp, m.address, m.port, err, sizeof(err));
	if (t < 0) {
		log_warnx("sim %s: cannot follow the redirect to %s:%d: %s", a->id, m.address,
			  m.port, err);
		chan_close(a->ch, "redirect not followed");
		return;
	}
	if (aroute_redirected(&a->route) == AROUTE_LOOP) {
		log_warnx("sim %s: more than %d redirects without authentication, the last to "
			  "%s:%d; counted as a failed attempt",
			  a->id, AROUTE_REDIRECTS_MAX, m.address, m.port);
		chan_close(a->ch, "redirect loop");
		return;
	}
	a->push = (uint8_t)t;
	a->redirected = true;
	rp->st.redirects++;
	chan_close(a->ch, "redirected");
}

static void agent_on_command(struct sim_agent *a, json_t *o)
{
	struct run_proc *rp = a->rp;
	struct amsg_command m;
	char err[256];
	if (agentproto_decode_command(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(a->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	double now = clk_epoch();
	if (rp->st.commands++ == 0)
		rp->st.first_command = now;
	rp->st.last_command = now;
	json_int_t task_id;
	if (strcmp(m.kind, "run_task") == 0 &&
	    json_unpack(m.args, "{s:I}", "task_id", &task_id) == 0 && task_id >= 1) {
		agent_send(a, A_RESULT,
			   json_pack("{s:I, s:I, s:s, s:{s:b}}", "seq", (json_int_t)++a->seq,
				     "task_id", task_id, "status", "succeeded", "result",
				     "simulated", 1));
		rp->st.results++;
	}
	agent_send(a, A_COMMAND_ACK, json_pack("{s:I}", "id", (json_int_t)m.id));
	rp->st.acked++;
}

static void agent_on_event_ack(struct sim_agent *a, json_t *o)
{
	json_int_t seq;
	if (json_unpack(o, "{s:I}", "seq", &seq) != 0 || sim_evseq_ack(&a->ev, seq) != 0) {
		a->rp->st.events_bad_acks++;
		log_warnx("sim %s: unexpected A_EVENT_ACK (expected seq %" PRIu32 ")", a->id,
			  a->ev.acked + 1);
		return;
	}
	a->rp->st.events_acked++;
}

/* At exit: the events still unacknowledged are counted and reported. */
static void agent_events_unacked(struct sim_agent *a)
{
	uint32_t from, to, n = sim_evseq_pending(&a->ev, &from, &to);
	char line[256];
	if (n == 0)
		return;
	a->rp->st.events_unacked += n;
	int len =
	    snprintf(line, sizeof(line),
		     "{\"unacked\":{\"agent\":\"%s\",\"from\":%" PRIu32 ",\"to\":%" PRIu32 "}}\n",
		     a->id, from, to);
	if (len > 0 && (size_t)len < sizeof(line) && write(STDOUT_FILENO, line, (size_t)len) < 0)
		log_warn("sim: stdout");
}

/* Event seq, the same message each time it is sent: its time and details follow from seq. */
static void agent_send_event(struct sim_agent *a, uint32_t seq)
{
	char when[40];
	if (sim_event_time(a->rp->ev_base_ms, a->rp->o->events_per_min, seq, when, sizeof(when)) !=
	    0)
		return;
	agent_send(a, A_EVENT,
		   json_pack("{s:I, s:s, s:s, s:s, s:{s:s, s:I}}", "seq", (json_int_t)seq, "kind",
			     "sim", "severity", "info", "occurred_at", when, "details", "agent",
			     a->id, "seq", (json_int_t)seq));
}

/* A new event, unless the agent's pending window is full. */
static void agent_new_event(struct sim_agent *a)
{
	uint32_t seq = sim_evseq_next(&a->ev);
	if (seq == 0) {
		a->rp->st.events_window_full++;
		return;
	}
	agent_send_event(a, seq);
	a->rp->st.events_sent++;
}

/* After A_AUTH_OK: the events pending from earlier connections go first, in order. */
static void agent_resend_events(struct sim_agent *a)
{
	uint32_t from = 1, to = 0, n = sim_evseq_pending(&a->ev, &from, &to);
	for (uint32_t seq = from; n > 0 && seq <= to; seq++)
		agent_send_event(a, seq);
	a->rp->st.events_resent += n;
}

static void agent_on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			     void *arg)
{
	struct sim_agent *a = arg;
	char err[256];
	enum agent_state ast = a->state == SA_AUTH_WAIT ? AST_AGENT_WAIT : AST_AGENT_AUTHED;
	if (!agentproto_allowed(ast, type) || a->state < SA_AUTH_WAIT) {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "message %s (type %u) is not allowed now",
				agentproto_msg_name(type), type);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	switch (type) {
	case MSG_ERROR: {
		struct msg_error e;
		if (proto_decode_error(o, &e, err, sizeof(err)) == 0)
			log_info("sim %s: the server refused: %s: %s", a->id, e.code, e.message);
		chan_close(ch, "server sent ERROR");
		break;
	}
	case A_AUTH_OK:
		agent_on_auth_ok(a, o);
		break;
	case A_REDIRECT:
		agent_on_redirect(a, o);
		break;
	case A_COMMAND:
		agent_on_command(a, o);
		break;
	case A_EVENT_ACK:
		agent_on_event_ack(a, o);
		break;
	default: /* other acks and policies: nothing is kept */
		break;
	}
	json_decref(o);
}

static void agent_on_close(struct chan *ch, const char *reason, void *arg)
{
	struct sim_agent *a = arg;
	if (!a)
		return; /* the process is exiting */
	struct run_proc *rp = a->rp;
	bool before_auth = a->state != SA_AUTHED;
	a->ch = NULL;
	rp->open--;
	evtimer_del(a->timer);
	if (a->state == SA_AUTHED)
		rp->connected--;
	else
		rp->inflight--;
	a->state = SA_IDLE;
	if (rp->stopping) {
		if (rp->open == 0)
			event_base_loopexit(rp->base, NULL);
		return;
	}
	if (a->redirected) {
		a->redirected = false;
		agent_enqueue(a);
		return;
	}
	if (before_auth)
		aroute_failed(&a->route, (enum aroute_target)a->at);
	rp->st.failures++;
	log_info("sim %s: closed: %s", a->id, reason);
	/* 1 s doubling to SIM_BACKOFF_MAX, with jitter so a server restart is not a stampede. */
	a->backoff = (uint8_t)(a->backoff ? a->backoff * 2 : 1);
	if (a->backoff > SIM_BACKOFF_MAX)
		a->backoff = SIM_BACKOFF_MAX;
	struct timeval tv = { a->backoff, random() % 1000000 };
	evtimer_add(a->timer, &tv);
}

static const struct chan_cbs agent_cbs = {
	.on_message = agent_on_message,
	.on_connected = agent_on_connected,
	.on_close = agent_on_close,
};

static void agent_dial(struct run_proc *rp, struct sim_agent *a)
{
	uint32_t src = rp->src.count ? sim_sources_at(&rp->src, rp->dials) : 0;
	enum aroute_target at = aroute_target(&a->route);
	const struct sim_target *t = at == AROUTE_ASSIGNED ? &rp->targets[a->push] : NULL;
	rp->dials++;
	a->dial_ms = clk_mono_ms();
	a->state = SA_CONNECTING;
	a->at = (uint8_t)at;
	rp->inflight++;
	a->ch = sim_dial(rp->base, rp->ctx, t ? t->host : rp->host, t ? &t->dst : &rp->dst, src,
			 &agent_cbs, a);
	if (!a->ch) {
		/* Out of sockets or memory: count it and retry like a refused connection. */
		rp->inflight--;
		rp->st.failures++;
		aroute_failed(&a->route, at);
		a->state = SA_IDLE;
		struct timeval tv = { 1 + random() % SIM_BACKOFF_MAX, 0 };
		evtimer_add(a->timer, &tv);
		return;
	}
	rp->open++;
}

static void on_pacer(evutil_socket_t fd, short what, void *arg)
{
	struct run_proc *rp = arg;
	int rate = rp->o->rate > 0 ? rp->o->rate : SIM_RATE_DEFAULT;
	int cap = rp->o->inflight > 0 ? rp->o->inflight : SIM_INFLIGHT_DEFAULT;
	rp->tokens += (double)rate * SIM_TICK_MS / 1000.0;
	if (rp->tokens > rate / 10.0 + 1)
		rp->tokens = rate / 10.0 + 1; /* no burst after a pause */
	while (rp->tokens >= 1 && rp->qlen > 0 && rp->inflight < cap && !rp->stopping) {
		struct sim_agent *a = &rp->agents[rp->queue[rp->qhead]];
		rp->qhead = (rp->qhead + 1) % rp->count;
		rp->qlen--;
		rp->tokens -= 1;
		agent_dial(rp, a);
	}
	if (rp->o->events_per_min > 0 && !rp->stopping && rp->count > 0) {
		/* Round robin over the agents; one not connected lets its turn pass. */
		int due =
		    sim_events_due(&rp->ev_credit, rp->count, rp->o->events_per_min, SIM_TICK_MS);
		for (int i = 0; i < due; i++) {
			struct sim_agent *a = &rp->agents[rp->ev_next];
			rp->ev_next = (rp->ev_next + 1) % rp->count;
			if (a->state == SA_AUTHED && a->ch)
				agent_new_event(a);
		}
	}
}

static uint32_t hist_pct(const struct run_proc *rp, double p)
{
	uint64_t total = rp->hist_over, seen = 0;
	for (int i = 0; i < SIM_HIST_MS; i++)
		total += rp->hist[i];
	if (total == 0)
		return 0;
	uint64_t want = (uint64_t)(p * (double)total + 0.5);
	if (want < 1)
		want = 1;
	for (int i = 0; i < SIM_HIST_MS; i++)
		if ((seen += rp->hist[i]) >= want)
			return (uint32_t)i;
	return SIM_HIST_MS;
}

static void print_json(struct run_proc *rp)
{
	char line[1536];
	int n = snprintf(
	    line, sizeof(line),
	    "{\"proc\":%d,\"pid\":%d,\"agents\":%d,\"connected\":%d,\"connecting\":%d,"
	    "\"handshakes\":%" PRIu64 ",\"failures\":%" PRIu64 ",\"redirects\":%" PRIu64
	    ",\"heartbeats\":%" PRIu64 ",\"commands\":%" PRIu64 ",\"commands_acked\":%" PRIu64
	    ",\"results_sent\":%" PRIu64
	    ",\"handshake_ms\":{\"p50\":%u,\"p99\":%u,\"max\":%u},\"first_online_at\":%.3f,"
	    "\"all_online_at\":%.3f,\"first_command_at\":%.3f,\"last_command_at\":%.3f,"
	    "\"events_sent\":%" PRIu64 ",\"events_acked\":%" PRIu64 ",\"events_unacked\":%" PRIu64
	    ",\"events_resent\":%" PRIu64 ",\"events_window_full\":%" PRIu64
	    ",\"events_bad_acks\":%" PRIu64 "}\n",
	    rp->proc, (int)getpid(), rp->count, rp->connected, rp->inflight, rp->st.handshakes,
	    rp->st.failures, rp->st.redirects, rp->st.heartbeats, rp->st.commands, rp->st.acked,
	    rp->st.results, hist_pct(rp, 0.5), hist_pct(rp, 0.99), hist_pct(rp, 1.0),
	    rp->st.first_online, rp->st.all_online, rp->st.first_command, rp->st.last_command,
	    rp->st.events_sent, rp->st.events_acked, rp->st.events_unacked, rp->st.events_resent,
	    rp->st.events_window_full, rp->st.events_bad_acks);
	/* One write per line: the processes share stdout, PIPE_BUF keeps lines whole. */
	if (n > 0 && write(STDOUT_FILENO, line, (size_t)n) < 0)
		log_warn("sim: stdout");
}

static void on_stats(evutil_socket_t fd, short what, void *arg)
{
	struct run_proc *rp = arg;
	fprintf(stderr,
		"sim %d: %d/%d connected, %d connecting, %" PRIu64 " handshakes, %" PRIu64
		" failures, %" PRIu64 " heartbeats, %" PRIu64 " commands acked, %" PRIu64
		" events sent, %" PRIu64 " acked, %" PRIu64 " resent\n",
		rp->proc, rp->connected, rp->count, rp->inflight, rp->st.handshakes,
		rp->st.failures, rp->st.heartbeats, rp->st.acked, rp->st.events_sent,
		rp->st.events_acked, rp->st.events_resent);
}

static void on_usr1(evutil_socket_t fd, short what, void *arg)
{
	print_json(arg);
}

/* Switches between the server's heartbeat interval and the fast one, with new random phases. */
static void on_usr2(evutil_socket_t fd, short what, void *arg)
{
	struct run_proc *rp = arg;
	rp->fast = !rp->fast;
	fprintf(stderr, "sim %d: heartbeat every %d s\n", rp->proc,
		rp->fast ? rp->o->fast_heartbeat : (rp->count ? rp->agents[0].heartbeat : 0));
	for (int i = 0; i < rp->count; i++) {
		struct sim_agent *a = &rp->agents[i];
		int every = rp->fast ? rp->o->fast_heartbeat : a->heartbeat;
		if (a->state != SA_AUTHED || every < 1)
			continue;
		struct timeval tv = { random() % every, random() % 1000000 };
		evtimer_add(a->timer, &tv);
	}
}

static void on_grace(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopexit(((struct run_proc *)arg)->base, NULL);
}

static void run_stop(struct run_proc *rp)
{
	struct timeval grace = { SIM_STOP_GRACE_SEC, 0 };
	if (rp->stopping)
		return;
	rp->stopping = true;
	for (int i = 0; i < rp->count; i++) {
		evtimer_del(rp->agents[i].timer);
		if (rp->agents[i].ch)
			chan_close(rp->agents[i].ch, "simulator stopping");
	}
	if (rp->open == 0)
		event_base_loopexit(rp->base, NULL);
	else
		evtimer_add(rp->grace, &grace);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	run_stop(arg);
}

static EVP_PKEY *key_from_hex(const char *hex)
{
	unsigned char raw[32];
	if (strlen(hex) != 64)
		return NULL;
	for (size_t i = 0; i < sizeof(raw); i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return NULL;
		raw[i] = (unsigned char)v;
	}
	EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	OPENSSL_cleanse(raw, sizeof(raw));
	return k;
}

/* Loads the header and this process's share of dir/sim.jsonl. */
static int run_load(struct run_proc *rp, X509 **ca, char *err, size_t errlen)
{
	char path[4096];
	if (path_in(rp->o->dir, SIM_FILE, path, sizeof(path), err, errlen) != 0)
		return -1;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%.900s: %s (enrol first)", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t cap = 0;
	int n = -1, loaded = 0, rc = -1;
	json_error_t je;
	while (getline(&line, &cap, f) > 0 && loaded < rp->count) {
		json_t *o = json_loads(line, 0, &je);
		const char *a, *b;
		json_int_t port;
		if (!o) {
			snprintf(err, errlen, "%.900s:%d: %s", path, n + 2, je.text);
			goto out;
		}
		if (n < 0) {
			if (json_unpack(o, "{s:s, s:I, s:s}", "host", &a, "port", &port, "ca",
					&b) != 0 ||
			    !(*ca = tls_cert_from_pem(b, err, errlen))) {
				json_decref(o);
				snprintf(err, errlen,
					 "%.900s: the header line is not {host, port, ca}", path);
				goto out;
			}
			snprintf(rp->host, sizeof(rp->host), "%s", a);
			if (resolve(a, (int)port, &rp->dst, err, errlen) != 0) {
				json_decref(o);
				goto out;
			}
		} else if (n >= rp->start) {
			struct sim_agent *ag = &rp->agents[loaded];
			if (json_unpack(o, "{s:s, s:s}", "id", &a, "key", &b) != 0 ||
			    strlen(a) >= sizeof(ag->id) || !(ag->key = key_from_hex(b))) {
				json_decref(o);
				snprintf(err, errlen, "%.900s:%d: not an {id, key} identity", path,
					 n + 2);
				goto out;
			}
			snprintf(ag->id, sizeof(ag->id), "%s", a);
			loaded++;
		}
		n++;
		json_decref(o);
	}
	if (loaded < rp->count)
		snprintf(err, errlen, "%.900s holds %d identities, fewer than the %d asked for",
			 path, n < 0 ? 0 : n, rp->o->n);
	else
		rc = 0;
out:
	free(line);
	fclose(f);
	return rc;
}

static int run_child(const struct sim_opts *o, int index, int procs)
{
	struct run_proc rp = { .o = o, .proc = index };
	char err[1536];
	X509 *ca = NULL;
	int rc = 1;
	struct timeval tick = { 0, SIM_TICK_MS * 1000 }, stats = { SIM_STATS_SEC, 0 };
	raise_nofile();
	srandom((unsigned)(getpid() ^ time(NULL)));
	rp.ev_base_ms = (int64_t)(clk_epoch() * 1000.0);
	signal(SIGPIPE, SIG_IGN);
	sim_share(o->n, procs, index, &rp.start, &rp.count);
	rp.agents = calloc((size_t)rp.count, sizeof(*rp.agents));
	rp.queue = calloc((size_t)rp.count, sizeof(*rp.queue));
	rp.hist = calloc(SIM_HIST_MS, sizeof(*rp.hist));
	rp.base = event_base_new();
	if (!rp.agents || !rp.queue || !rp.hist || !rp.base) {
		fprintf(stderr, "strata-agent: simulator %d: out of memory\n", index);
		goto out;
	}
	if ((o->sources && sim_sources_parse(o->sources, &rp.src, err, sizeof(err)) != 0) ||
	    run_load(&rp, &ca, err, sizeof(err)) != 0 ||
	    !(rp.ctx = tls_client_ctx(NULL, NULL, ca, err, sizeof(err)))) {
		fprintf(stderr, "strata-agent: simulator %d: %s\n", index, err);
		goto out;
	}
	/* Buffers of idle connections go back to the allocator between messages. */
	SSL_CTX_set_mode(rp.ctx, SSL_MODE_RELEASE_BUFFERS);
	rp.pacer = event_new(rp.base, -1, EV_PERSIST, on_pacer, &rp);
	rp.stats = event_new(rp.base, -1, EV_PERSIST, on_stats, &rp);
	rp.usr1 = evsignal_new(rp.base, SIGUSR1, on_usr1, &rp);
	rp.usr2 = evsignal_new(rp.base, SIGUSR2, on_usr2, &rp);
	rp.term = evsignal_new(rp.base, SIGTERM, on_stop, &rp);
	rp.intr = evsignal_new(rp.base, SIGINT, on_stop, &rp);
	rp.deadline = evtimer_new(rp.base, on_stop, &rp);
	rp.grace = evtimer_new(rp.base, on_grace, &rp);
	if (!rp.pacer || !rp.stats || !rp.usr1 || !rp.usr2 || !rp.term || !rp.intr ||
	    !rp.deadline || !rp.grace) {
		fprintf(stderr, "strata-agent: simulator %d: out of memory\n", index);
		goto out;
	}
	for (int i = 0; i < rp.count; i++) {
		struct sim_agent *a = &rp.agents[i];
		a->rp = &rp;
		if (!(a->timer = evtimer_new(rp.base, on_agent_timer, a))) {
			fprintf(stderr, "strata-agent: simulator %d: out of memory\n", index);
			goto out;
		}
		agent_enqueue(a);
	}
	event_add(rp.pacer, &tick);
	event_add(rp.stats, &stats);
	event_add(rp.usr1, NULL);
	event_add(rp.usr2, NULL);
	event_add(rp.term, NULL);
	event_add(rp.intr, NULL);
	if (o->duration > 0) {
		struct timeval d = { o->duration, 0 };
		evtimer_add(rp.deadline, &d);
	}
	event_base_dispatch(rp.base);
	/* What is still pending now stays unacknowledged: the server may or may not have it. */
	for (int i = 0; i < rp.count; i++)
		agent_events_unacked(&rp.agents[i]);
	on_stats(-1, 0, &rp);
	print_json(&rp);
	rc = 0;
out:
	for (int i = 0; rp.agents && i < rp.count; i++) {
		if (rp.agents[i].ch)
			chan_set_arg(rp.agents[i].ch, NULL);
		if (rp.agents[i].timer)
			event_free(rp.agents[i].timer);
		EVP_PKEY_free(rp.agents[i].key);
	}
	struct event *evs[] = { rp.pacer, rp.stats, rp.usr1,	 rp.usr2,
				rp.term,  rp.intr,  rp.deadline, rp.grace };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (evs[i])
			event_free(evs[i]);
	free(rp.agents);
	free(rp.queue);
	free(rp.hist);
	X509_free(ca);
	SSL_CTX_free(rp.ctx);
	if (rp.base)
		event_base_free(rp.base);
	return rc;
}

int sim_run(const struct sim_opts *o, char *err, size_t errlen)
{
	struct sim_sources src;
	int procs;
	err[0] = '\0';
	if (check_n(o, &procs, err, errlen) != 0 ||
	    (o->sources && sim_sources_parse(o->sources, &src, err, errlen) != 0))
		return -1;
	return run_children(o, procs, run_child, err, errlen);
}
