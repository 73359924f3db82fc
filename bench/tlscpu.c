/*
 * tlscpu: the server CPU of one agent connection's cryptography, with
 * nothing else around it: no sockets, no event loop, no database.
 *
 *   tlscpu N ROUNDS
 *
 * A client and a server SSL object talk through an in-memory BIO pair, so
 * the server's figure is only OpenSSL's work. The server context is the
 * push server's (tls_server_ctx with an Ed25519 key and certificate from
 * an agent CA, client certificates not asked for). Measured per operation,
 * as the server's own thread CPU time:
 *
 *   full      a full TLS 1.3 handshake (SSL_new to SSL_free included)
 *   resumed   a handshake resumed from a stateless ticket, the identity
 *             carried in the ticket: what a reconnect could cost at best
 *   proof     the check of an agent's A_AUTH proof (agentproto_verify:
 *             the exporter and an Ed25519 verification)
 *   x25519    one X25519 derivation (the cheapest possible key proof)
 *   ecdsa     one ECDSA P-256 verification
 *
 * Each figure is the median over ROUNDS rounds of N operations (the
 * minimum is printed too: this machine's timings wander by a third from
 * one round to the next). Prints one line of JSON.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "agentproto.h"
#include "tls.h"

static double thread_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void die(const char *what)
{
	fprintf(stderr, "tlscpu: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static SSL_SESSION *ticket; /* the client's last session, for "resumed" */

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	(void)ssl;
	SSL_SESSION_free(ticket);
	ticket = sess;
	return 1;
}

static int on_ticket_gen(SSL *ssl, void *arg)
{
	(void)arg;
	static const char who[] = "endpoint 4242";
	return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), who, sizeof(who) - 1);
}

static SSL_TICKET_RETURN on_ticket_dec(SSL *ssl, SSL_SESSION *ss, const unsigned char *name,
				       size_t namelen, SSL_TICKET_STATUS st, void *arg)
{
	(void)ssl, (void)ss, (void)name, (void)namelen, (void)arg;
	return st == SSL_TICKET_SUCCESS || st == SSL_TICKET_SUCCESS_RENEW
		   ? SSL_TICKET_RETURN_USE
		   : SSL_TICKET_RETURN_IGNORE_RENEW;
}

struct pair {
	SSL *c, *s;
};

/* Runs the handshake to its end; server time goes to *srv. */
static void handshake(SSL_CTX *sctx, SSL_CTX *cctx, bool resume, struct pair *p, double *srv)
{
	double t0 = thread_us();
	p->s = SSL_new(sctx);
	*srv += thread_us() - t0;
	p->c = SSL_new(cctx);
	BIO *bc, *bs;
	if (!p->s || !p->c || BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
		die("cannot make the connection");
	SSL_set_bio(p->c, bc, bc);
	SSL_set_bio(p->s, bs, bs);
	SSL_set_connect_state(p->c);
	SSL_set_accept_state(p->s);
	if (resume && ticket)
		SSL_set_session(p->c, ticket);
	bool cdone = false, sdone = false;
	for (int i = 0; i < 20 && !(cdone && sdone); i++) {
		if (!cdone && SSL_do_handshake(p->c) == 1)
			cdone = true;
		if (!sdone) {
			t0 = thread_us();
			int r = SSL_do_handshake(p->s);
			*srv += thread_us() - t0;
			if (r == 1)
				sdone = true;
		}
	}
	if (!cdone || !sdone)
		die("handshake did not complete");
	if (resume && ticket && !SSL_session_reused(p->s))
		die("the session was not resumed");
}

static void finish(struct pair *p, double *srv)
{
	/* A clean close keeps the client's session resumable. */
	SSL_set_shutdown(p->c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(p->c);
	double t0 = thread_us();
	SSL_free(p->s);
	*srv += thread_us() - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct figure {
	const char *name;
	double *round; /* µs per operation, one per round */
};

static void report(struct figure *f, int rounds, double *median, double *min)
{
	qsort(f->round, (size_t)rounds, sizeof(double), cmp_double);
	*min = f->round[0];
	*median = rounds % 2 ? f->round[rounds / 2]
			     : (f->round[rounds / 2 - 1] + f->round[rounds / 2]) / 2;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	int rounds = argc > 2 ? atoi(argv[2]) : 7;
	char err[512];
	if (n < 10 || rounds < 1)
		die("usage: tlscpu N ROUNDS (N >= 10)");

	EVP_PKEY *ca_key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *agent = tls_key_generate(err, sizeof(err));
	X509 *ca = ca_key ? tls_ca_create(ca_key, "tlscpu agent CA", err, sizeof(err)) : NULL;
	X509_REQ *req = key ? tls_csr_create(key, "push", err, sizeof(err)) : NULL;
	X509 *cert =
	    ca && req ? tls_sign_csr(ca, ca_key, req, "push", 1, "127.0.0.1", 30, err, sizeof(err))
		      : NULL;
	if (!agent || !cert)
		die(err);
	SSL_CTX *sctx = tls_server_ctx(key, cert, ca, err, sizeof(err));
	if (!sctx)
		die(err);
	SSL_CTX_set_verify(sctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	if (!cctx)
		die("no client context");
	SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(cctx,
				       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(cctx, on_new_session);

	/* The same server context with stateless tickets, for "resumed". */
	SSL_CTX *rctx = tls_server_ctx(key, cert, ca, err, sizeof(err));
	if (!rctx)
		die(err);
	SSL_CTX_set_verify(rctx, SSL_VERIFY_NONE, NULL);
	SSL_CTX_clear_options(rctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_timeout(rctx, 86400);
	SSL_CTX_set_session_ticket_cb(rctx, on_ticket_gen, on_ticket_dec, NULL);

	/* A real proof, made once over a real session, checked n times. */
	struct pair p;
	double ignored = 0;
	handshake(sctx, cctx, false, &p, &ignored);
	char sig[129], pub[65];
	unsigned char raw[32];
	size_t rawlen = sizeof(raw);
	if (agentproto_sign(p.c, agent, sig) != 0 ||
	    EVP_PKEY_get_raw_public_key(agent, raw, &rawlen) != 1)
		die("cannot sign");
	for (size_t i = 0; i < 32; i++)
		snprintf(pub + 2 * i, 3, "%02x", raw[i]);

	EVP_PKEY *xa = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY *xb = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	unsigned char ecsig[80], digest[32] = { 1 };
	size_t ecsiglen = sizeof(ecsig);
	EVP_PKEY_CTX *sctxp = ec ? EVP_PKEY_CTX_new(ec, NULL) : NULL;
	if (!xa || !xb || !sctxp || EVP_PKEY_sign_init(sctxp) != 1 ||
	    EVP_PKEY_sign(sctxp, ecsig, &ecsiglen, digest, sizeof(digest)) != 1)
		die("cannot make the reference keys");
	EVP_PKEY_CTX_free(sctxp);

	struct figure fig[] = { { "full", NULL },
				{ "resumed", NULL },
				{ "proof", NULL },
				{ "x25519", NULL },
				{ "ecdsa", NULL } };
	size_t nfig = sizeof(fig) / sizeof(fig[0]);
	for (size_t f = 0; f < nfig; f++)
		if (!(fig[f].round = calloc((size_t)rounds, sizeof(double))))
			die("out of memory");

	for (int r = 0; r < rounds; r++) {
		double srv = 0;
		for (int i = 0; i < n; i++) {
			struct pair q;
			handshake(sctx, cctx, false, &q, &srv);
			finish(&q, &srv);
		}
		fig[0].round[r] = srv / n;

		srv = 0;
		for (int i = 0; i <= n; i++) {
			struct pair q;
			double *into = i == 0 ? &ignored : &srv; /* the first one gets the ticket */
			handshake(rctx, cctx, true, &q, into);
			/* A new ticket for the next connection, as a reconnect would get. */
			double t0 = thread_us();
			if (SSL_new_session_ticket(q.s) != 1 || SSL_do_handshake(q.s) != 1)
				die("cannot issue a ticket");
			*into += thread_us() - t0;
			char b;
			(void)SSL_read(q.c, &b, 1); /* takes the ticket */
			finish(&q, into);
		}
		fig[1].round[r] = srv / n;

		double t0 = thread_us();
		for (int i = 0; i < n; i++)
			if (agentproto_verify(p.s, pub, sig) != 0)
				die("the proof did not verify");
		fig[2].round[r] = (thread_us() - t0) / n;

		t0 = thread_us();
		for (int i = 0; i < n; i++) {
			unsigned char secret[32];
			size_t slen = sizeof(secret);
			EVP_PKEY_CTX *d = EVP_PKEY_CTX_new(xa, NULL);
			if (!d || EVP_PKEY_derive_init(d) != 1 ||
			    EVP_PKEY_derive_set_peer(d, xb) != 1 ||
			    EVP_PKEY_derive(d, secret, &slen) != 1)
				die("x25519");
			EVP_PKEY_CTX_free(d);
		}
		fig[3].round[r] = (thread_us() - t0) / n;

		t0 = thread_us();
		for (int i = 0; i < n; i++) {
			EVP_PKEY_CTX *v = EVP_PKEY_CTX_new(ec, NULL);
			if (!v || EVP_PKEY_verify_init(v) != 1 ||
			    EVP_PKEY_verify(v, ecsig, ecsiglen, digest, sizeof(digest)) != 1)
				die("ecdsa");
			EVP_PKEY_CTX_free(v);
		}
		fig[4].round[r] = (thread_us() - t0) / n;
	}

	printf("{\"n\":%d,\"rounds\":%d,\"openssl\":\"%s\"", n, rounds,
	       OpenSSL_version(OPENSSL_VERSION));
	for (size_t f = 0; f < nfig; f++) {
		double med, min;
		report(&fig[f], rounds, &med, &min);
		printf(",\"%s_us\":%.1f,\"%s_min_us\":%.1f", fig[f].name, med, fig[f].name, min);
		free(fig[f].round);
	}
	printf("}\n");
	finish(&p, &ignored);
	SSL_SESSION_free(ticket);
	SSL_CTX_free(sctx);
	SSL_CTX_free(rctx);
	SSL_CTX_free(cctx);
	EVP_PKEY_free(xa);
	EVP_PKEY_free(xb);
	EVP_PKEY_free(ec);
	X509_REQ_free(req);
	X509_free(cert);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(agent);
	return 0;
}
