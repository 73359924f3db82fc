/*
 * Who may connect: one table, one row per way of knocking on the wrong
 * door. The master's sync port is offered an expired, a revoked, a
 * self-signed and a foreign certificate, an agent's certificate and an
 * agent's A_AUTH, a replayed capture of a real slave's session, frames
 * the slave's role or state does not allow, and reused, expired and
 * forged enrolment tokens. The slave's agent port is offered a slave's
 * certificate and HELLO, reused, expired and forged tokens, an unknown
 * agent, a stolen agent id without its key, and frames an agent may not
 * send. Every row asserts (a) how the attempt was refused on the wire,
 * (b) a new line in the refusing daemon's log naming the reason, and
 * (c) that neither database changed: a checksum of every table of the
 * master's and the slave's database, taken before and after the attempt.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "agentproto.h"
#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"
#include "proto.h"
#include "tls.h"

/*
 * master: the hierarchy's master. slave: registered, synced, runs the push
 * server the agent rows attack. gone: registered, then unregistered (its
 * old certificate is kept). relayed: a slave that reaches the master only
 * through the recording relay below.
 */
static struct hnode master, slave, gone, relayed;
static struct hagent good; /* an enrolled agent of slave */
static char *agent_token;  /* the token good enrolled with */
static char *slave_token;  /* the token slave registered with (used) */
static char *pend_token;   /* a pending slave's token, still valid */
static char dir[600];	   /* generated keys and certificates */

/* ---- a TCP relay that records what a real slave sends ---- */

struct relay {
	int lfd;
	int port;
	int target; /* the port it forwards to */
	int stop[2];
	pthread_t thread;
	pthread_mutex_t mu;
	unsigned char *rec; /* slave -> master bytes of the latest connection */
	size_t reclen;
	int conns;
};
/* relay: to the master's sync port; agent_relay: to the slave's agent port. */
static struct relay relay = { .lfd = -1, .stop = { -1, -1 } };
static struct relay agent_relay = { .lfd = -1, .stop = { -1, -1 } };

static int tcp_to(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Forwards one connection both ways until either side closes; false when told to stop. */
static bool relay_one(struct relay *r, int cfd)
{
	unsigned char buf[16384];
	int mfd = tcp_to(r->target);
	if (mfd < 0)
		return true;
	pthread_mutex_lock(&r->mu);
	free(r->rec);
	r->rec = NULL;
	r->reclen = 0;
	r->conns++;
	pthread_mutex_unlock(&r->mu);
	for (;;) {
		struct pollfd p[3] = { { cfd, POLLIN, 0 },
				       { mfd, POLLIN, 0 },
				       { r->stop[0], POLLIN, 0 } };
		if (poll(p, 3, -1) < 0 && errno != EINTR)
			break;
		if (p[2].revents) {
			close(mfd);
			return false;
		}
		if (p[0].revents) {
			ssize_t n = read(cfd, buf, sizeof(buf));
			if (n <= 0 || !write_all(mfd, buf, (size_t)n))
				break;
			pthread_mutex_lock(&r->mu);
			unsigned char *grown = realloc(r->rec, r->reclen + (size_t)n);
			if (grown) {
				memcpy(grown + r->reclen, buf, (size_t)n);
				r->rec = grown;
				r->reclen += (size_t)n;
			}
			pthread_mutex_unlock(&r->mu);
		}
		if (p[1].revents) {
			ssize_t n = read(mfd, buf, sizeof(buf));
			if (n <= 0 || !write_all(cfd, buf, (size_t)n))
				break;
		}
	}
	close(mfd);
	return true;
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;
	for (;;) {
		struct pollfd p[2] = { { r->lfd, POLLIN, 0 }, { r->stop[0], POLLIN, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		int cfd = accept(r->lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		bool go_on = relay_one(r, cfd);
		close(cfd);
		if (!go_on)
			break;
	}
	return NULL;
}

static int relay_start(struct relay *r, int target)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->target = target;
	pthread_mutex_init(&r->mu, NULL);
	r->lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    listen(r->lfd, 4) != 0 || getsockname(r->lfd, (struct sockaddr *)&a, &alen) != 0 ||
	    pipe(r->stop) != 0)
		return -1;
	r->port = ntohs(a.sin_port);
	return pthread_create(&r->thread, NULL, relay_main, r) == 0 ? 0 : -1;
}

static void relay_stop(struct relay *r)
{
	if (r->stop[1] < 0)
		return;
	if (write(r->stop[1], "x", 1) == 1)
		pthread_join(r->thread, NULL);
	close(r->stop[0]);
	close(r->stop[1]);
	close(r->lfd);
	r->stop[1] = -1;
	free(r->rec);
	r->rec = NULL;
	pthread_mutex_destroy(&r->mu);
}

/* ---- certificates the rows present ---- */

static void path_in(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static int save_pair(const char *base, EVP_PKEY *key, X509 *cert)
{
	char k[700], c[700], err[512];
	snprintf(k, sizeof(k), "%s/%s.key", dir, base);
	snprintf(c, sizeof(c), "%s/%s.crt", dir, base);
	if (tls_key_save(key, k, err, sizeof(err)) != 0 ||
	    tls_cert_save(cert, c, err, sizeof(err)) != 0) {
		fprintf(stderr, "auth matrix: cannot save %s: %s\n", base, err);
		return -1;
	}
	return 0;
}

/* A client certificate for cn signed by ca / ca_key; saved as base.key / base.crt. */
static int make_client_cert(const char *base, X509 *ca, EVP_PKEY *ca_key, const char *cn)
{
	char err[512];
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	X509_REQ *req = key ? tls_csr_create(key, cn, err, sizeof(err)) : NULL;
	X509 *cert = req ? tls_sign_csr(ca, ca_key, req, cn, 0, NULL, 30, err, sizeof(err)) : NULL;
	int rc = cert ? save_pair(base, key, cert) : -1;
	if (!cert)
		fprintf(stderr, "auth matrix: cannot make %s: %s\n", base, err);
	X509_free(cert);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}

/* Loads a node's key pair base.key / base.crt from its data directory. */
static int load_node_pair(struct hnode *n, const char *base, EVP_PKEY **key, X509 **cert)
{
	char k[700], c[700], err[512];
	snprintf(k, sizeof(k), "%s/%s.key", n->dir, base);
	snprintf(c, sizeof(c), "%s/%s.crt", n->dir, base);
	*key = tls_key_load(k, err, sizeof(err));
	*cert = *key ? tls_cert_load(c, err, sizeof(err)) : NULL;
	if (!*cert) {
		fprintf(stderr, "auth matrix: cannot load %s: %s\n", k, err);
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}

/*
 * expired: the registered slave's own certificate (same serial, same
 * key), re-signed by the master's CA with a validity that ended
 * yesterday, so expiry is the only thing wrong with it.
 * selfsigned: a self-signed certificate with the slave's name.
 * foreign: a client certificate with the slave's name from another CA.
 * agentcert: a client certificate for the agent's id from the slave's
 * agent CA (the credentials that agents and distribution points trust).
 */
static int make_certs(void)
{
	char err[512];
	EVP_PKEY *ca_key = NULL, *skey = NULL, *akey = NULL, *fkey = NULL;
	X509 *ca = NULL, *scert = NULL, *acert = NULL, *fca = NULL, *expired = NULL;
	int rc = -1;
	if (load_node_pair(&master, "ca", &ca_key, &ca) != 0 ||
	    load_node_pair(&slave, "slave", &skey, &scert) != 0 ||
	    load_node_pair(&slave, "agent-ca", &akey, &acert) != 0)
		goto out;
	expired = X509_dup(scert);
	if (!expired || !X509_gmtime_adj(X509_getm_notBefore(expired), -10 * 86400) ||
	    !X509_gmtime_adj(X509_getm_notAfter(expired), -86400) ||
	    X509_sign(expired, ca_key, NULL) <= 0 || save_pair("expired", skey, expired) != 0)
		goto out;
	fkey = tls_key_generate(err, sizeof(err));
	fca = fkey ? tls_ca_create(fkey, slave.name, err, sizeof(err)) : NULL;
	if (!fca || save_pair("selfsigned", fkey, fca) != 0)
		goto out;
	X509_free(fca);
	EVP_PKEY_free(fkey);
	fkey = tls_key_generate(err, sizeof(err));
	fca = fkey ? tls_ca_create(fkey, "Foreign CA", err, sizeof(err)) : NULL;
	if (!fca || make_client_cert("foreign", fca, fkey, slave.name) != 0 ||
	    make_client_cert("agentcert", acert, akey, good.id) != 0)
		goto out;
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "auth matrix: cannot make the certificates: %s\n", err);
	X509_free(expired);
	X509_free(fca);
	EVP_PKEY_free(fkey);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	X509_free(scert);
	EVP_PKEY_free(skey);
	X509_free(acert);
	EVP_PKEY_free(akey);
	return rc;
}

/* ---- database snapshots ---- */

/*
 * count(*) and the sum of hashtext over every row of every table in the
 * public schema (partitions and their parents alike), one "table=n/sum"
 * per table. Left out, because they change without any attempt:
 * endpoints.last_seen (the push server writes it in batches after an
 * agent's traffic, so the authenticated agent of the last rows moves it on
 * its own schedule). Nothing else is excluded: no sync runs during the
 * matrix (interval 1800 s, the relayed slave is stopped), no agent stays
 * connected between rows, and the offline sweep turns an agent that
 * authenticated in the setup offline only after 3 missed heartbeats
 * (180 s), far longer than the matrix takes.
 */
static const char snapshot_sql[] =
    "SELECT string_agg(c.relname || '=' || (xpath('/row/s/text()', query_to_xml(format("
    "'SELECT count(*) || ''/'' || coalesce(sum(hashtext((to_jsonb(t) - %L::text[])::text)), 0) "
    "AS s FROM public.%I t', CASE c.relname WHEN 'endpoints' THEN '{last_seen}' ELSE '{}' END, "
    "c.relname), false, true, '')))[1]::text, ' ' ORDER BY c.relname) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')";

struct snapshot {
	char *master;
	char *slave;
};

static void snapshot_take(struct snapshot *s)
{
	s->master = hp_query1(&master, snapshot_sql);
	s->slave = hp_query1(&slave, snapshot_sql);
}

static void snapshot_free(struct snapshot *s)
{
	free(s->master);
	free(s->slave);
}

/* Prints the tables whose checksum differs; true when none does. */
static bool snapshot_same(const char *who, const char *before, const char *after)
{
	if (!before || !after) {
		fprintf(stderr, "  %s: no snapshot\n", who);
		return false;
	}
	if (strcmp(before, after) == 0)
		return true;
	char *b = strdup(before), *a = strdup(after), *sb, *sa;
	char *tb = strtok_r(b, " ", &sb), *ta = strtok_r(a, " ", &sa);
	while (tb || ta) {
		if (!tb || !ta || strcmp(tb, ta) != 0)
			fprintf(stderr, "  %s changed: %s -> %s\n", who, tb ? tb : "-",
				ta ? ta : "-");
		tb = tb ? strtok_r(NULL, " ", &sb) : NULL;
		ta = ta ? strtok_r(NULL, " ", &sa) : NULL;
	}
	free(b);
	free(a);
	return false;
}

/* ---- how a connection ended ---- */

/*
 * Reads until the peer closes (20 s at most) and describes the refusal:
 * "ERROR code" when an ERROR frame came, "TLS alert: reason" when the
 * handshake failed on the peer's side, "closed" when it just closed, and
 * "open" when nothing happened (not refused).
 */
static void outcome(SSL *ssl, char *out, size_t len)
{
	uint16_t type;
	char *payload;
	size_t plen;
	int rc;
	snprintf(out, len, "closed");
	ERR_clear_error();
	while ((rc = ht_recv(ssl, &type, &payload, &plen)) == 0) {
		if (type == MSG_ERROR) {
			json_t *o = json_loads(payload, 0, NULL);
			snprintf(out, len, "ERROR %s",
				 json_string_value(json_object_get(o, "code")) ?: "?");
			json_decref(o);
		} else if (strncmp(out, "ERROR", 5) != 0) {
			snprintf(out, len, "answered with type %u", type);
		}
		free(payload);
	}
	unsigned long e = ERR_peek_last_error();
	if (rc == -2)
		snprintf(out, len, "open");
	else if (e != 0 && strcmp(out, "closed") == 0)
		snprintf(out, len, "TLS alert: %s", ERR_reason_error_string(e) ?: "?");
	ERR_clear_error();
}

/* TLS with key pair base (from dir, or NULL for none), one frame, and the outcome. */
static void sync_frame(const char *base, uint16_t type, const char *payload, char *out, size_t len)
{
	char k[700], c[700];
	snprintf(k, sizeof(k), "%s/%s.key", dir, base ? base : "");
	snprintf(c, sizeof(c), "%s/%s.crt", dir, base ? base : "");
	SSL *ssl = ht_connect(master.port, base ? k : NULL, base ? c : NULL);
	if (!ssl) {
		snprintf(out, len, "TLS handshake refused");
		return;
	}
	/* TLS 1.3: the server checks the client certificate after the client's Finished. */
	ERR_clear_error();
	if (ht_send_str(ssl, type, payload) != 0) {
		/* The alert came first and failed the write. */
		unsigned long e = ERR_peek_last_error();
		snprintf(out, len, "TLS alert: %s",
			 e ? ERR_reason_error_string(e) : "reset before it was read");
		ERR_clear_error();
	} else {
		outcome(ssl, out, len);
	}
	ht_close(ssl);
}

static char hello[256];
static void enrol_with(const char *token, const char *name, char *out, size_t len);

static void make_hello(const char *name)
{
	long long schema = hp_query_ll(&slave, "SELECT max(version) FROM schema_version");
	snprintf(hello, sizeof(hello),
		 "{\"proto\":1,\"slave\":\"%s\",\"schema\":%lld,\"publication\":0,"
		 "\"interval\":1800}",
		 name, schema);
}

/* ---- sync port rows ---- */

static void at_expired_cert(char *out, size_t len)
{
	make_hello(slave.name);
	sync_frame("expired", MSG_HELLO, hello, out, len);
}

static void at_revoked_cert(char *out, size_t len)
{
	make_hello(gone.name);
	sync_frame("gone", MSG_HELLO, hello, out, len);
}

static void at_selfsigned_cert(char *out, size_t len)
{
	make_hello(slave.name);
	sync_frame("selfsigned", MSG_HELLO, hello, out, len);
}

static void at_foreign_cert(char *out, size_t len)
{
	make_hello(slave.name);
	sync_frame("foreign", MSG_HELLO, hello, out, len);
}

static void at_agent_cert(char *out, size_t len)
{
	make_hello(slave.name);
	sync_frame("agentcert", MSG_HELLO, hello, out, len);
}

static void at_agent_auth_on_sync(char *out, size_t len)
{
	/* A well-formed A_AUTH of the enrolled agent; the sync port has no agents. */
	char msg[512];
	snprintf(msg, sizeof(msg),
		 "{\"proto\":%d,\"agent_id\":\"%s\",\"sig\":\"%0128d\",\"mode\":\"push\"}",
		 AGENT_PROTO_VERSION, good.id, 0);
	sync_frame(NULL, A_AUTH, msg, out, len);
}

/* Sends what r recorded to its target again, as it was. */
static void replay(struct relay *r, char *out, size_t len)
{
	unsigned char junk[4096];
	pthread_mutex_lock(&r->mu);
	size_t n = r->reclen;
	unsigned char *bytes = n ? malloc(n) : NULL;
	if (bytes)
		memcpy(bytes, r->rec, n);
	pthread_mutex_unlock(&r->mu);
	if (!bytes) {
		snprintf(out, len, "nothing captured");
		return;
	}
	int fd = tcp_to(r->target);
	struct timeval tv = { .tv_sec = 20 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* The server may cut the connection before it has read everything. */
	(void)write_all(fd, bytes, n);
	ssize_t got;
	while ((got = read(fd, junk, sizeof(junk))) > 0)
		;
	snprintf(out, len, got == 0 || errno == ECONNRESET ? "closed" : "open");
	fprintf(stderr, "  replayed %zu captured bytes\n", n);
	close(fd);
	free(bytes);
}

static void at_replay(char *out, size_t len)
{
	replay(&relay, out, len);
}

static void at_agent_replay(char *out, size_t len)
{
	replay(&agent_relay, out, len);
}

static void at_hello_other_slave(char *out, size_t len)
{
	make_hello("am-relay");
	sync_frame("slave", MSG_HELLO, hello, out, len);
}

static void at_agent_token_on_sync(char *out, size_t len)
{
	enrol_with(agent_token, "am-pend", out, len);
}

static void at_batch_before_hello(char *out, size_t len)
{
	static const char batch[] = "{\"stream\":\"events\",\"from\":0,\"to\":1,\"rows\":0}\n";
	sync_frame("slave", MSG_UPLOAD_BATCH, batch, out, len);
}

static void at_welcome_from_slave(char *out, size_t len)
{
	sync_frame("slave", MSG_WELCOME, "{\"watermarks\":{},\"publication\":0}", out, len);
}

static void at_sync_request_from_slave(char *out, size_t len)
{
	sync_frame("slave", MSG_SYNC_REQUEST, "{}", out, len);
}

static void enrol_with(const char *token, const char *name, char *out, size_t len)
{
	char err[512];
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	X509_REQ *req = key ? tls_csr_create(key, name, err, sizeof(err)) : NULL;
	char *csr = req ? tls_csr_to_pem(req) : NULL;
	json_t *m = json_pack("{s:s, s:s, s:s}", "token", token, "name", name, "csr", csr ?: "");
	char *s = json_dumps(m, JSON_COMPACT);
	sync_frame(NULL, MSG_ENROL, s, out, len);
	free(s);
	json_decref(m);
	free(csr);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
}

static void at_slave_token_reused(char *out, size_t len)
{
	enrol_with(slave_token, slave.name, out, len);
}

static void at_slave_token_expired(char *out, size_t len)
{
	enrol_with(pend_token, "am-pend", out, len);
}

/* The same shape with every character of the secret changed. */
static char *forge(const char *token)
{
	char *t = strdup(token);
	char *secret = strchr(strchr(t, '.') + 1, '.') + 1;
	for (char *c = secret; *c != '.'; c++)
		*c = *c == 'a' ? 'b' : 'a';
	return t;
}

static void at_slave_token_forged(char *out, size_t len)
{
	char *t = forge(pend_token);
	enrol_with(t, "am-pend", out, len);
	free(t);
}

/* ---- agent port rows ---- */

/* The agent's view of a refusal on an open pinned connection. */
static void agent_frame(SSL *ssl, uint16_t type, json_t *m, char *out, size_t len)
{
	if (!ssl) {
		json_decref(m);
		snprintf(out, len, "TLS handshake refused");
		return;
	}
	if (ha_send_json(ssl, type, m) != 0)
		snprintf(out, len, "write failed");
	else
		outcome(ssl, out, len);
	ht_close(ssl);
}

static void at_slave_on_push(char *out, size_t len)
{
	char k[700], c[700];
	snprintf(k, sizeof(k), "%s/slave.key", dir);
	snprintf(c, sizeof(c), "%s/slave.crt", dir);
	make_hello(slave.name);
	SSL *ssl = ht_connect(slave.push_port, k, c);
	agent_frame(ssl, MSG_HELLO, json_loads(hello, 0, NULL), out, len);
}

static void at_slave_cert_auth(char *out, size_t len)
{
	/* A slave certificate on the handshake and the enrolled agent's id: no key proof. */
	char k[700], c[700], sig[129];
	snprintf(k, sizeof(k), "%s/slave.key", dir);
	snprintf(c, sizeof(c), "%s/slave.crt", dir);
	memset(sig, 'a', 128);
	sig[128] = '\0';
	SSL *ssl = ht_connect(slave.push_port, k, c);
	agent_frame(ssl, A_AUTH,
		    json_pack("{s:i, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION, "agent_id",
			      good.id, "sig", sig, "mode", "push"),
		    out, len);
}

static char *expired_agent_token;

static void at_slave_token_on_push(char *out, size_t len)
{
	/* Not pinned: the token's pin is the master's CA, not the slave's agent CA. */
	struct hagent a;
	if (!ha_new(&a)) {
		snprintf(out, len, "no key");
		return;
	}
	agent_frame(ht_connect(slave.push_port, NULL, NULL), A_ENROL, ha_enrol_msg(&a, pend_token),
		    out, len);
	EVP_PKEY_free(a.key);
}

static struct hagent revoked;

/* Outside the snapshot: an agent enrols, then the operator revokes it. */
static bool prep_revoked(void)
{
	return ha_new(&revoked) && ha_enrol(&slave, &revoked, agent_token) &&
	       hp_ctl(&slave, NULL, "endpoint", "revoke", revoked.id, NULL) == 0;
}

static void at_revoked_agent(char *out, size_t len)
{
	SSL *ssl = ha_connect_pinned(&slave, agent_token);
	agent_frame(ssl, A_AUTH, ssl ? ha_auth_msg(ssl, &revoked) : NULL, out, len);
}
static char *dp_token;

static void at_agent_token_expired(char *out, size_t len)
{
	struct hagent a;
	if (!ha_new(&a)) {
		snprintf(out, len, "no key");
		return;
	}
	agent_frame(ha_connect_pinned(&slave, expired_agent_token), A_ENROL,
		    ha_enrol_msg(&a, expired_agent_token), out, len);
	EVP_PKEY_free(a.key);
}

static void at_agent_token_forged(char *out, size_t len)
{
	struct hagent a;
	char *t = forge(agent_token);
	if (!ha_new(&a)) {
		snprintf(out, len, "no key");
		free(t);
		return;
	}
	agent_frame(ha_connect_pinned(&slave, t), A_ENROL, ha_enrol_msg(&a, t), out, len);
	EVP_PKEY_free(a.key);
	free(t);
}

static json_t *dp_enrol_msg(const char *token, const char *name)
{
	char err[512];
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	X509_REQ *req = key ? tls_csr_create(key, name, err, sizeof(err)) : NULL;
	char *csr = req ? tls_csr_to_pem(req) : NULL;
	json_t *m =
	    json_pack("{s:i, s:s, s:s, s:s, s:s, s:i}", "proto", AGENT_PROTO_VERSION, "token",
		      token, "name", name, "csr", csr ?: "", "address", "127.0.0.1", "port", 7443);
	free(csr);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return m;
}

/* Outside the snapshot: the one use a distribution point's token allows. */
static bool prep_dp_token(void)
{
	char *out = NULL, tout[128];
	if (hp_ctl(&slave, &out, "dp-token", "create", NULL) == 0 && out && strstr(out, "stk1.")) {
		char *p = strstr(out, "stk1.");
		dp_token = strndup(p, strcspn(p, " \t\r\n\",|"));
	}
	free(out);
	if (!dp_token)
		return false;
	uint16_t type;
	SSL *ssl = ha_connect_pinned(&slave, dp_token);
	if (!ssl || ha_send_json(ssl, A_DP_ENROL, dp_enrol_msg(dp_token, "am-dp1")) != 0) {
		ht_close(ssl);
		return false;
	}
	json_t *o = ha_recv_json(ssl, &type);
	json_decref(o);
	outcome(ssl, tout, sizeof(tout));
	ht_close(ssl);
	if (type != A_DP_ENROL_OK)
		fprintf(stderr, "auth matrix: the first use of a dp token gave type %u\n", type);
	return type == A_DP_ENROL_OK;
}

static void at_dp_token_reused(char *out, size_t len)
{
	agent_frame(ha_connect_pinned(&slave, dp_token), A_DP_ENROL,
		    dp_enrol_msg(dp_token, "am-dp2"), out, len);
}

static void at_unknown_agent(char *out, size_t len)
{
	struct hagent ghost;
	if (!ha_new(&ghost)) {
		snprintf(out, len, "no key");
		return;
	}
	snprintf(ghost.id, sizeof(ghost.id), "0123456789abcdef0123456789abcdef");
	SSL *ssl = ha_connect_pinned(&slave, agent_token);
	agent_frame(ssl, A_AUTH, ssl ? ha_auth_msg(ssl, &ghost) : NULL, out, len);
	EVP_PKEY_free(ghost.key);
}

static void at_stolen_agent_id(char *out, size_t len)
{
	/* The enrolled agent's id with a proof made by another key. */
	struct hagent thief;
	if (!ha_new(&thief)) {
		snprintf(out, len, "no key");
		return;
	}
	memcpy(thief.id, good.id, sizeof(thief.id));
	SSL *ssl = ha_connect_pinned(&slave, agent_token);
	agent_frame(ssl, A_AUTH, ssl ? ha_auth_msg(ssl, &thief) : NULL, out, len);
	EVP_PKEY_free(thief.key);
}

static void at_heartbeat_preauth(char *out, size_t len)
{
	agent_frame(ha_connect_pinned(&slave, agent_token), A_HEARTBEAT, json_object(), out, len);
}

static void at_policy_preauth(char *out, size_t len)
{
	agent_frame(ha_connect_pinned(&slave, agent_token), A_POLICY_GET, json_object(), out, len);
}

static SSL *authed; /* the enrolled agent, authenticated outside the snapshot */

static bool prep_authed(void)
{
	authed = ha_auth(&slave, &good, agent_token, NULL);
	if (!authed)
		return false;
	/* The round trip makes sure the authentication's writes are done. */
	uint16_t type;
	if (ha_send_json(authed, A_POLICY_GET, json_object()) != 0)
		return false;
	json_decref(ha_recv_json(authed, &type));
	return type == A_POLICY;
}

static void at_command_from_agent(char *out, size_t len)
{
	agent_frame(authed, A_COMMAND,
		    json_pack("{s:i, s:s, s:{}}", "id", 1, "kind", "uninstall", "args"), out, len);
	authed = NULL;
}

static void at_enrol_after_auth(char *out, size_t len)
{
	SSL *ssl = authed;
	authed = NULL;
	agent_frame(ssl, A_ENROL, ssl ? ha_enrol_msg(&good, agent_token) : NULL, out, len);
}

static char *add_slave(const char *name);

/* ---- the matrix ---- */

struct row {
	const char *port;		    /* "sync" (master) or "agent" (slave) */
	const char *attempt;		    /* what is tried */
	bool (*prepare)(void);		    /* outside the snapshot; may be NULL */
	void (*run)(char *out, size_t len); /* the attempt; describes the outcome */
	const char *refusal;		    /* expected outcome (a prefix) */
	bool on_master;			    /* which daemon refuses and logs */
	const char *log;		    /* the reason in its log */
};

static const struct row matrix[] = {
	{ "sync", "expired slave certificate", NULL, at_expired_cert, "TLS alert", true,
	  "certificate verify failed: certificate has expired" },
	{ "sync", "revoked slave certificate", NULL, at_revoked_cert, "ERROR unregistered", true,
	  "was revoked at" },
	{ "sync", "self-signed certificate", NULL, at_selfsigned_cert, "TLS alert", true,
	  "certificate verify failed: self-signed certificate" },
	{ "sync", "certificate from a foreign CA", NULL, at_foreign_cert, "TLS alert", true,
	  "certificate verify failed: unable to get local issuer certificate" },
	{ "sync", "agent certificate (slave's agent CA)", NULL, at_agent_cert, "TLS alert", true,
	  "certificate verify failed: unable to get local issuer certificate" },
	{ "sync", "agent A_AUTH on the sync port", NULL, at_agent_auth_on_sync, "ERROR protocol",
	  true, "A_AUTH (type 102) is not allowed in state master_preauth" },
	{ "sync", "replayed capture of a slave's session", NULL, at_replay, "closed", true,
	  "decryption failed or bad record mac" },
	{ "sync", "HELLO naming another slave", NULL, at_hello_other_slave, "ERROR protocol", true,
	  "HELLO names slave 'am-relay' but the certificate" },
	{ "sync", "UPLOAD_BATCH before HELLO", NULL, at_batch_before_hello, "ERROR protocol", true,
	  "UPLOAD_BATCH (type 20) is not allowed in state master_authed" },
	{ "sync", "WELCOME sent by a slave", NULL, at_welcome_from_slave, "ERROR protocol", true,
	  "WELCOME (type 11) is not allowed in state master_authed" },
	{ "sync", "SYNC_REQUEST sent by a slave", NULL, at_sync_request_from_slave,
	  "ERROR protocol", true, "SYNC_REQUEST (type 42) is not allowed in state master_authed" },
	{ "sync", "reused enrolment token", NULL, at_slave_token_reused, "ERROR token", true,
	  "already used" },
	{ "sync", "expired enrolment token", NULL, at_slave_token_expired, "ERROR token", true,
	  "expired" },
	{ "sync", "forged enrolment token (wrong secret)", NULL, at_slave_token_forged,
	  "ERROR token", true, "unknown enrolment token" },
	{ "sync", "agent token as an enrolment token", NULL, at_agent_token_on_sync, "ERROR token",
	  true, "token was not issued by this master (CA pin differs)" },
	{ "agent", "slave certificate and HELLO", NULL, at_slave_on_push, "ERROR protocol", false,
	  "HELLO (type 10) is not allowed in state PREAUTH" },
	{ "agent", "slave certificate with an agent's id", NULL, at_slave_cert_auth, "ERROR auth",
	  false, "key proof failed for agent id" },
	{ "agent", "expired agent token", NULL, at_agent_token_expired, "ERROR token", false,
	  "token expired at" },
	{ "agent", "forged agent token (wrong secret)", NULL, at_agent_token_forged, "ERROR token",
	  false, "unknown agent token" },
	{ "agent", "slave enrolment token as an agent token", NULL, at_slave_token_on_push,
	  "ERROR token", false, "the token was not issued by this slave (CA pin differs)" },
	{ "agent", "unknown agent key", NULL, at_unknown_agent, "ERROR unregistered", false,
	  "is unknown or revoked" },
	{ "agent", "enrolled agent's id, another key", NULL, at_stolen_agent_id, "ERROR auth",
	  false, "key proof failed for agent id" },
	{ "agent", "revoked agent", prep_revoked, at_revoked_agent, "ERROR unregistered", false,
	  "is unknown or revoked" },
	{ "agent", "replayed capture of an agent's session", NULL, at_agent_replay, "closed", false,
	  "decryption failed or bad record mac" },
	{ "agent", "A_HEARTBEAT before A_AUTH", NULL, at_heartbeat_preauth, "ERROR protocol", false,
	  "A_HEARTBEAT (type 110) is not allowed in state PREAUTH" },
	{ "agent", "A_POLICY_GET before A_AUTH", NULL, at_policy_preauth, "ERROR protocol", false,
	  "A_POLICY_GET (type 124) is not allowed in state PREAUTH" },
	{ "agent", "A_COMMAND sent by an agent", prep_authed, at_command_from_agent,
	  "ERROR protocol", false, "A_COMMAND (type 120) is not allowed in state AUTHED" },
	{ "agent", "A_ENROL after A_AUTH", prep_authed, at_enrol_after_auth, "ERROR protocol",
	  false, "A_ENROL (type 100) is not allowed in state AUTHED" },
	{ "agent", "reused distribution point token", prep_dp_token, at_dp_token_reused,
	  "ERROR token", false, "has been used up" },
};

#define NROWS (sizeof(matrix) / sizeof(matrix[0]))

/* What each row came to, for the assertions and the summary. */
static struct result {
	char got[160];
	bool log_ok, db_ok;
} results[NROWS];

struct log_wait {
	const char *path;
	const char *needle;
	int want;
};

static bool log_reached(void *arg)
{
	struct log_wait *w = arg;
	return hf_file_count(w->path, w->needle) >= w->want;
}

static void run_row(const struct row *r, struct result *res)
{
	struct hnode *n = r->on_master ? &master : &slave;
	struct snapshot before, after;
	fprintf(stderr, "auth matrix: %s port: %s\n", r->port, r->attempt);
	if (r->prepare && !r->prepare()) {
		snprintf(res->got, sizeof(res->got), "preparation failed");
		CU_FAIL("preparation failed");
		return;
	}
	int lines = hf_file_count(n->log, r->log);
	snapshot_take(&before);
	r->run(res->got, sizeof(res->got));
	struct log_wait w = { n->log, r->log, lines + 1 };
	res->log_ok = hp_wait(log_reached, &w, 10);
	snapshot_take(&after);
	bool refused = strncmp(res->got, r->refusal, strlen(r->refusal)) == 0;
	res->db_ok = snapshot_same("master", before.master, after.master) &
		     snapshot_same("slave", before.slave, after.slave);
	if (!refused)
		fprintf(stderr, "  expected %s, got %s\n", r->refusal, res->got);
	if (!res->log_ok)
		fprintf(stderr, "  no new line with '%s' in %s\n", r->log, n->log);
	CU_ASSERT(refused);
	CU_ASSERT(res->log_ok);
	CU_ASSERT(res->db_ok);
	snapshot_free(&before);
	snapshot_free(&after);
}

static void print_summary(void)
{
	printf("\n%-5s | %-40s | %-44s | %-3s | %s\n", "port", "attempt", "refused how", "db",
	       "log reason");
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &matrix[i];
		const struct result *res = &results[i];
		printf("%-5s | %-40s | %-44.44s | %-3s | %s%s\n", r->port, r->attempt, res->got,
		       res->db_ok ? "=" : "CHG",
		       r->on_master ? "master: " : "slave: ", res->log_ok ? r->log : "(none)");
	}
	printf("\n");
}

static void test_matrix(void)
{
	for (size_t i = 0; i < NROWS; i++)
		run_row(&matrix[i], &results[i]);
	print_summary();

	/* The checksums see a change when there is one: a legitimate agent enrolment on the
	 * slave and a new pending slave on the master. */
	struct snapshot before, after;
	struct hagent control;
	snapshot_take(&before);
	CU_ASSERT_PTR_NOT_NULL(strstr(before.master ? before.master : "", "slaves="));
	CU_ASSERT_PTR_NOT_NULL(strstr(before.slave ? before.slave : "", "endpoints="));
	CU_ASSERT_FATAL(ha_new(&control));
	CU_ASSERT(ha_enrol(&slave, &control, agent_token));
	EVP_PKEY_free(control.key);
	free(add_slave("am-control"));
	snapshot_take(&after);
	CU_ASSERT_STRING_NOT_EQUAL(after.master ? after.master : "",
				   before.master ? before.master : "");
	CU_ASSERT_STRING_NOT_EQUAL(after.slave ? after.slave : "",
				   before.slave ? before.slave : "");
	snapshot_free(&before);
	snapshot_free(&after);

	/* After every refusal both daemons still serve the real peers. */
	CU_ASSERT_EQUAL(hf_sync_retry(&slave, 30), 0);
	SSL *ssl = ha_auth(&slave, &good, agent_token, NULL);
	CU_ASSERT_PTR_NOT_NULL(ssl);
	ht_close(ssl);
}

/* ---- setup ---- */

static char *token_of(const char *out)
{
	const char *t = out ? strstr(out, "stk1.") : NULL;
	return t ? strndup(t, strcspn(t, " \t\r\n\",|")) : NULL;
}

/* slave add on the master; the token, malloc'd. */
static char *add_slave(const char *name)
{
	char *out = NULL;
	if (hp_ctl(&master, &out, "--json", "slave", "add", name, NULL) != 0) {
		fprintf(stderr, "auth matrix: slave add %s: %s\n", name, out ? out : "");
		free(out);
		return NULL;
	}
	char *t = token_of(out);
	free(out);
	return t;
}

static int register_at(struct hnode *n, int port, const char *token)
{
	char addr[64], *out = NULL;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	int rc = hp_ctl(n, &out, "register", "--master", addr, "--token", token, NULL);
	if (rc != 0)
		fprintf(stderr, "auth matrix: register %s: %s\n", n->name, out ? out : "");
	free(out);
	return rc;
}

static int copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(from, "r"), *out = fopen(to, "w");
	size_t n;
	int rc = in && out ? 0 : -1;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out)
		fclose(out);
	return rc;
}

static int copy_pair(struct hnode *n, const char *base)
{
	char f[700], t[700];
	snprintf(f, sizeof(f), "%s/slave.key", n->dir);
	snprintf(t, sizeof(t), "%s/%s.key", dir, base);
	if (copy_file(f, t) != 0 || chmod(t, 0600) != 0)
		return -1;
	snprintf(f, sizeof(f), "%s/slave.crt", n->dir);
	snprintf(t, sizeof(t), "%s/%s.crt", dir, base);
	return copy_file(f, t);
}

static bool relayed_synced(void *arg)
{
	(void)arg;
	return hp_log_contains(&master, "slave 'am-relay' sync done");
}

/* A real agent session (authentication and a policy round trip) through agent_relay. */
static int record_agent_session(void)
{
	uint16_t type;
	struct hnode via = slave;
	if (relay_start(&agent_relay, slave.push_port) != 0)
		return -1;
	via.push_port = agent_relay.port;
	SSL *ssl = ha_auth(&via, &good, agent_token, NULL);
	if (!ssl || ha_send_json(ssl, A_POLICY_GET, json_object()) != 0) {
		ht_close(ssl);
		return -1;
	}
	json_decref(ha_recv_json(ssl, &type));
	ht_close(ssl);
	return type == A_POLICY ? 0 : -1;
}

static int suite_setup(void)
{
	static const char seed_sql[] =
	    "INSERT INTO groups (name, path) VALUES ('servers', '/servers');"
	    "INSERT INTO endpoints (uid, hostname, group_id) "
	    "SELECT 'uid-' || g, 'host-' || g, 1 FROM generate_series(1, 20) g;"
	    "INSERT INTO events (endpoint_id, kind, details) "
	    "SELECT g % 20 + 1, 'detection', jsonb_build_object('n', g) "
	    "FROM generate_series(1, 100) g";
	if (hpg_require() != 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	snprintf(dir, sizeof(dir), "%s/creds", hp_root());
	if (mkdir(dir, 0700) != 0)
		return -1;
	if (hp_master_init(&master, "am-hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "am-a", master.port, 1800, NULL) != 0 || hp_start(&slave) != 0)
		return -1;
	slave_token = add_slave(slave.name);
	if (!slave_token || hf_script(&slave, seed_sql) != 0 ||
	    register_at(&slave, master.port, slave_token) != 0 || hf_sync_retry(&slave, 30) != 0)
		return -1;

	/* A slave that unregisters: the master revokes its certificate. */
	if (hp_slave_init(&gone, "am-gone", master.port, 1800, NULL) != 0 || hp_start(&gone) != 0 ||
	    hp_enrol(&master, &gone) != 0 || copy_pair(&gone, "gone") != 0)
		return -1;
	char *out = NULL;
	int rc = hp_ctl(&gone, &out, "unregister", NULL);
	if (rc != 0)
		fprintf(stderr, "auth matrix: unregister: %s\n", out ? out : "");
	free(out);
	if (rc != 0)
		return -1;

	/* A slave whose whole traffic to the master goes through the recording relay. */
	if (relay_start(&relay, master.port) != 0 ||
	    hp_slave_init(&relayed, "am-relay", relay.port, 1800, NULL) != 0 ||
	    hp_start(&relayed) != 0)
		return -1;
	char *rt = add_slave(relayed.name);
	rc = rt ? register_at(&relayed, relay.port, rt) : -1;
	free(rt);
	if (rc != 0 || hf_sync_retry(&relayed, 30) != 0 || !hp_wait(relayed_synced, NULL, 30))
		return -1;
	/* Stopped, so that nothing it does changes the master during the matrix. */
	if (hp_stop(&relayed) != 0)
		return -1;

	/* A pending slave whose token is out of date. */
	pend_token = add_slave("am-pend");
	if (!pend_token || hf_script(&master, "UPDATE enrol_tokens SET expires_at = now() - "
					      "interval '1 hour' WHERE used_at IS NULL") != 0)
		return -1;

	agent_token = ha_make_token(&slave, "/matrix");
	expired_agent_token = ha_make_token(&slave, "/matrix");
	if (!agent_token || !expired_agent_token || !ha_new(&good) ||
	    !ha_enrol(&slave, &good, agent_token))
		return -1;
	char id[32];
	snprintf(id, sizeof(id), "%.*s", (int)strcspn(expired_agent_token + 5, "."),
		 expired_agent_token + 5);
	const char *p[] = { id };
	if (hf_exec(&slave,
		    "UPDATE agent_tokens SET expires_at = now() - interval '1 hour' WHERE id = $1",
		    1, p) != 0)
		return -1;
	if (make_certs() != 0 || record_agent_session() != 0)
		return -1;
	char f[700], t[700];
	snprintf(f, sizeof(f), "%s/slave.key", slave.dir);
	path_in(t, sizeof(t), "slave.key");
	if (copy_file(f, t) != 0 || chmod(t, 0600) != 0)
		return -1;
	snprintf(f, sizeof(f), "%s/slave.crt", slave.dir);
	path_in(t, sizeof(t), "slave.crt");
	return copy_file(f, t);
}

static int suite_clean(void)
{
	relay_stop(&relay);
	relay_stop(&agent_relay);
	hp_cleanup(&relayed);
	hp_cleanup(&gone);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	EVP_PKEY_free(good.key);
	EVP_PKEY_free(revoked.key);
	free(agent_token);
	free(expired_agent_token);
	free(dp_token);
	free(slave_token);
	free(pend_token);
	return 0;
}

/* CUnit skips the cleanup when the init fails: stop what did start. */
static int suite_init(void)
{
	if (suite_setup() == 0)
		return 0;
	suite_clean();
	return -1;
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("auth matrix", suite_init, suite_clean);
	CU_add_test(s, "every way in without the right to is refused, logged, changes nothing",
		    test_matrix);
	return hp_run_suite();
}
