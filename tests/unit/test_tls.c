#include <CUnit/Basic.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls.h"

#define MASTER_HOSTS "master.example.org, 192.0.2.10,2001:db8::7"

/* Built once by the suite: a CA, the master's server certificate, a
 * slave's client certificate and a certificate from an unrelated CA. */
static struct {
	EVP_PKEY *ca_key, *master_key, *slave_key, *other_ca_key, *stranger_key;
	X509 *ca, *master, *slave, *other_ca, *stranger;
	char dir[64];
} fx;

static X509 *issue(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *key, const char *cn, int server,
		   const char *hosts)
{
	char err[512];
	X509_REQ *req = tls_csr_create(key, "ignored-subject", err, sizeof(err));
	if (!req)
		return NULL;
	X509 *cert = tls_sign_csr(ca, ca_key, req, cn, server, hosts, 30, err, sizeof(err));
	X509_REQ_free(req);
	return cert;
}

static int suite_init(void)
{
	char err[512];
	fx.ca_key = tls_key_generate(err, sizeof(err));
	fx.master_key = tls_key_generate(err, sizeof(err));
	fx.slave_key = tls_key_generate(err, sizeof(err));
	fx.other_ca_key = tls_key_generate(err, sizeof(err));
	fx.stranger_key = tls_key_generate(err, sizeof(err));
	if (!fx.ca_key || !fx.master_key || !fx.slave_key || !fx.other_ca_key || !fx.stranger_key)
		return -1;
	fx.ca = tls_ca_create(fx.ca_key, "Strata CA", err, sizeof(err));
	fx.other_ca = tls_ca_create(fx.other_ca_key, "Other CA", err, sizeof(err));
	if (!fx.ca || !fx.other_ca)
		return -1;
	fx.master = issue(fx.ca, fx.ca_key, fx.master_key, "master", 1, MASTER_HOSTS);
	fx.slave = issue(fx.ca, fx.ca_key, fx.slave_key, "slave-1", 0, NULL);
	fx.stranger = issue(fx.other_ca, fx.other_ca_key, fx.stranger_key, "slave-1", 0, NULL);
	if (!fx.master || !fx.slave || !fx.stranger)
		return -1;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/strata-tls-XXXXXX");
	return mkdtemp(fx.dir) ? 0 : -1;
}

static int suite_clean(void)
{
	X509_free(fx.ca);
	X509_free(fx.master);
	X509_free(fx.slave);
	X509_free(fx.other_ca);
	X509_free(fx.stranger);
	EVP_PKEY_free(fx.ca_key);
	EVP_PKEY_free(fx.master_key);
	EVP_PKEY_free(fx.slave_key);
	EVP_PKEY_free(fx.other_ca_key);
	EVP_PKEY_free(fx.stranger_key);
	if (fx.dir[0])
		rmdir(fx.dir);
	return 0;
}

/* ---- in-memory handshakes ---- */

struct session {
	SSL *server, *client;
	int server_ok, client_ok;
};

/* Connects a server and a client through a BIO pair and pumps both until
 * each has finished or failed. Returns 0 when both finished. */
static int handshake(SSL_CTX *sctx, SSL_CTX *cctx, struct session *s)
{
	BIO *sbio = NULL, *cbio = NULL;
	int sfail = 0, cfail = 0;

	memset(s, 0, sizeof(*s));
	s->server = SSL_new(sctx);
	s->client = SSL_new(cctx);
	if (!s->server || !s->client || BIO_new_bio_pair(&sbio, 0, &cbio, 0) != 1)
		return -1;
	SSL_set_bio(s->server, sbio, sbio);
	SSL_set_bio(s->client, cbio, cbio);
	SSL_set_accept_state(s->server);
	SSL_set_connect_state(s->client);
	for (int round = 0; round < 50 && !sfail && !cfail; round++) {
		if (s->client_ok && s->server_ok)
			break;
		if (!s->client_ok) {
			int r = SSL_do_handshake(s->client);
			int e = SSL_get_error(s->client, r);
			if (r == 1)
				s->client_ok = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				cfail = 1;
		}
		if (!s->server_ok) {
			int r = SSL_do_handshake(s->server);
			int e = SSL_get_error(s->server, r);
			if (r == 1)
				s->server_ok = 1;
			else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
				sfail = 1;
		}
	}
	ERR_clear_error();
	return s->client_ok && s->server_ok ? 0 : -1;
}

static void session_free(struct session *s)
{
	SSL_free(s->server);
	SSL_free(s->client);
}

static void assert_cn(X509 *cert, const char *want)
{
	char cn[128];
	CU_ASSERT_PTR_NOT_NULL_FATAL(cert);
	CU_ASSERT_EQUAL_FATAL(tls_cert_common_name(cert, cn, sizeof(cn)), 0);
	CU_ASSERT_STRING_EQUAL(cn, want);
}

static void test_mutual_tls(void)
{
	char err[512];
	SSL_CTX *sctx = tls_server_ctx(fx.master_key, fx.master, fx.ca, err, sizeof(err));
	SSL_CTX *cctx = tls_client_ctx(fx.slave_key, fx.slave, fx.ca, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
	struct session s;
	CU_ASSERT_EQUAL(handshake(sctx, cctx, &s), 0);
	CU_ASSERT_EQUAL(SSL_version(s.client), TLS1_3_VERSION);

	X509 *peer = tls_peer_cert(s.server);
	assert_cn(peer, "slave-1");
	CU_ASSERT_EQUAL(X509_cmp(peer, fx.slave), 0);
	X509_free(peer);
	peer = tls_peer_cert(s.client);
	assert_cn(peer, "master");
	X509_free(peer);

	session_free(&s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* Enrolment connects without a client certificate; the server lets it in
 * but tls_peer_cert has nothing to report. */
static void test_no_client_cert(void)
{
	char err[512];
	SSL_CTX *sctx = tls_server_ctx(fx.master_key, fx.master, fx.ca, err, sizeof(err));
	SSL_CTX *cctx = tls_client_ctx(NULL, NULL, fx.ca, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
	struct session s;
	CU_ASSERT_EQUAL(handshake(sctx, cctx, &s), 0);
	CU_ASSERT_PTR_NULL(tls_peer_cert(s.server));
	session_free(&s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_foreign_client_cert(void)
{
	char err[512];
	SSL_CTX *sctx = tls_server_ctx(fx.master_key, fx.master, fx.ca, err, sizeof(err));
	/* The client trusts the right CA but presents a certificate from another one. */
	SSL_CTX *cctx = tls_client_ctx(fx.stranger_key, fx.stranger, fx.ca, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
	struct session s;
	CU_ASSERT_NOT_EQUAL(handshake(sctx, cctx, &s), 0);
	CU_ASSERT_FALSE(s.server_ok);
	CU_ASSERT_NOT_EQUAL(SSL_get_verify_result(s.server), X509_V_OK);
	CU_ASSERT_PTR_NULL(tls_peer_cert(s.server));
	session_free(&s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

/* A slave's certificate is clientAuth only: a slave cannot pose as the master. */
static void test_client_cert_as_server(void)
{
	char err[512];
	SSL_CTX *sctx = tls_server_ctx(fx.slave_key, fx.slave, fx.ca, err, sizeof(err));
	SSL_CTX *cctx = tls_client_ctx(NULL, NULL, fx.ca, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
	CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
	struct session s;
	CU_ASSERT_NOT_EQUAL(handshake(sctx, cctx, &s), 0);
	CU_ASSERT_FALSE(s.client_ok);
	CU_ASSERT_EQUAL(SSL_get_verify_result(s.client), X509_V_ERR_INVALID_PURPOSE);
	session_free(&s);
	SSL_CTX_free(cctx);
	SSL_CTX_free(sctx);
}

static void test_pinned_enrolment(void)
{
	char ca_pin[TLS_PIN_HEX_LEN + 1], other_pin[TLS_PIN_HEX_LEN + 1];
	tls_cert_pin(fx.ca, ca_pin);
	tls_cert_pin(fx.other_ca, other_pin);
	static const struct {
		const char *name;
		int server_is_slave; /* serve the clientAuth slave certificate */
		int send_ca;	     /* CA in the server's chain */
		int right_pin;
		int ok;
		const char *msg;
	} cases[] = {
		{ "right pin", 0, 1, 1, 0, NULL },
		{ "wrong pin", 0, 1, 0, -1,
		  "the master's CA does not match the token's pin (got " },
		{ "no CA in chain", 0, 0, 1, -1,
		  "the master's CA does not match the token's pin (got no self-signed "
		  "certificate)" },
		{ "clientAuth leaf", 1, 1, 1, -1,
		  "the master's certificate does not verify against its CA: " },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";
		EVP_PKEY *key = cases[i].server_is_slave ? fx.slave_key : fx.master_key;
		X509 *cert = cases[i].server_is_slave ? fx.slave : fx.master;
		SSL_CTX *sctx = tls_server_ctx(key, cert, cases[i].send_ca ? fx.ca : NULL, err,
					       sizeof(err));
		SSL_CTX *cctx = tls_client_ctx_pinned(err, sizeof(err));
		CU_ASSERT_PTR_NOT_NULL_FATAL(sctx);
		CU_ASSERT_PTR_NOT_NULL_FATAL(cctx);
		struct session s;
		CU_ASSERT_EQUAL(handshake(sctx, cctx, &s), 0);
		X509 *got = (X509 *)1;
		int rc = tls_check_pin(s.client, cases[i].right_pin ? ca_pin : other_pin, &got, err,
				       sizeof(err));
		CU_ASSERT_EQUAL(rc, cases[i].ok);
		if (cases[i].ok == 0) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(got);
			CU_ASSERT_EQUAL(X509_cmp(got, fx.ca), 0);
			X509_free(got);
		} else {
			CU_ASSERT_PTR_NULL(got);
			if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0)
				fprintf(stderr, "%s: unexpected error: %s\n", cases[i].name, err);
			CU_ASSERT_EQUAL(strncmp(err, cases[i].msg, strlen(cases[i].msg)), 0);
		}
		/* The wrong pin names the pin actually seen, for the operator. */
		if (!cases[i].right_pin)
			CU_ASSERT_PTR_NOT_NULL(strstr(err, ca_pin));
		CU_ASSERT_EQUAL(ERR_peek_error(), 0);
		session_free(&s);
		SSL_CTX_free(cctx);
		SSL_CTX_free(sctx);
	}
}

static void test_context_arguments(void)
{
	char err[512] = "";
	CU_ASSERT_PTR_NULL(tls_client_ctx(NULL, NULL, NULL, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs a CA"));
	CU_ASSERT_PTR_NULL(tls_client_ctx(fx.slave_key, NULL, fx.ca, err, sizeof(err)));
	CU_ASSERT_PTR_NULL(tls_server_ctx(NULL, fx.master, NULL, err, sizeof(err)));
	/* A key that does not belong to the certificate. */
	CU_ASSERT_PTR_NULL(tls_server_ctx(fx.slave_key, fx.master, NULL, err, sizeof(err)));
	CU_ASSERT_EQUAL(strncmp(err, "key and certificate: error:", 27), 0);
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);
}

/* ---- certificates ---- */

static int has_san(X509 *cert, int type, const char *text)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	int found = 0;
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(gens, i);
		if (gn->type != type)
			continue;
		if (type == GEN_DNS) {
			const char *dns = (const char *)ASN1_STRING_get0_data(gn->d.dNSName);
			found |= strcmp(dns, text) == 0;
		} else {
			ASN1_OCTET_STRING *want = a2i_IPADDRESS(text);
			found |= want && ASN1_STRING_cmp(want, gn->d.iPAddress) == 0;
			ASN1_OCTET_STRING_free(want);
		}
	}
	GENERAL_NAMES_free(gens);
	return found;
}

static void test_certificate_fields(void)
{
	/* CA */
	CU_ASSERT_EQUAL(X509_check_ca(fx.ca), 1);
	CU_ASSERT_EQUAL(X509_self_signed(fx.ca, 1), 1);
	CU_ASSERT_TRUE(X509_get_key_usage(fx.ca) & KU_KEY_CERT_SIGN);
	CU_ASSERT_PTR_NOT_NULL(X509_get0_subject_key_id(fx.ca));
	assert_cn(fx.ca, "Strata CA");
	time_t in_9y = time(NULL) + 9L * 365 * 86400;
	CU_ASSERT_TRUE(X509_cmp_time(X509_get0_notAfter(fx.ca), &in_9y) > 0);

	/* Server leaf: serverAuth only, SANs, the CN given rather than the CSR's. */
	CU_ASSERT_EQUAL(X509_check_ca(fx.master), 0);
	CU_ASSERT_EQUAL(X509_get_extended_key_usage(fx.master), XKU_SSL_SERVER);
	CU_ASSERT_TRUE(has_san(fx.master, GEN_DNS, "master.example.org"));
	CU_ASSERT_TRUE(has_san(fx.master, GEN_IPADD, "192.0.2.10"));
	CU_ASSERT_TRUE(has_san(fx.master, GEN_IPADD, "2001:db8::7"));
	CU_ASSERT_FALSE(has_san(fx.master, GEN_DNS, "192.0.2.10"));
	assert_cn(fx.master, "master");
	CU_ASSERT_EQUAL(X509_verify(fx.master, fx.ca_key), 1);
	CU_ASSERT_PTR_NOT_NULL(X509_get0_authority_key_id(fx.master));
	CU_ASSERT_EQUAL(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(fx.master),
					      X509_get0_subject_key_id(fx.ca)),
			0);
	/* Backdated so a peer with a slightly slow clock accepts it at once. */
	time_t four_min_ago = time(NULL) - 240;
	CU_ASSERT_TRUE(X509_cmp_time(X509_get0_notBefore(fx.master), &four_min_ago) < 0);

	/* Client leaf: clientAuth only, no SAN. */
	CU_ASSERT_EQUAL(X509_get_extended_key_usage(fx.slave), XKU_SSL_CLIENT);
	CU_ASSERT_EQUAL(X509_get_ext_by_NID(fx.slave, NID_subject_alt_name, -1), -1);
	assert_cn(fx.slave, "slave-1");
	CU_ASSERT_EQUAL(X509_verify(fx.slave, fx.other_ca_key), 0);
	ERR_clear_error();
}

static void test_serials(void)
{
	char *a = tls_cert_serial_hex(fx.master);
	char *b = tls_cert_serial_hex(fx.slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_TRUE(strlen(a) >= 1 && strlen(a) <= 32);
	CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), strlen(a));
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	/* Positive: the top bit of 128 bits is clear. */
	CU_ASSERT_TRUE(strlen(a) < 32 || a[0] <= '7');
	CU_ASSERT_EQUAL(ASN1_STRING_type(X509_get0_serialNumber(fx.master)), V_ASN1_INTEGER);
	free(a);
	free(b);
}

static void test_sign_refusals(void)
{
	char err[512];
	X509_REQ *req = tls_csr_create(fx.slave_key, "slave-2", err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(req);
	static const struct {
		const char *cn;
		int server;
		const char *hosts;
		int days;
		const char *msg;
	} cases[] = {
		{ "m", 1, "", 30, "a server certificate needs at least one host name or address" },
		{ "m", 1, NULL, 30,
		  "a server certificate needs at least one host name or address" },
		{ "m", 1, " , ,", 30,
		  "a server certificate needs at least one host name or address" },
		{ "m", 1, "ok.example,bad host!", 30,
		  "hosts: \"bad host!\" is neither an IP address nor a DNS name" },
		{ "m", 1, "a.example,DNS:evil", 30,
		  "hosts: \"DNS:evil\" is neither an IP address nor a DNS name" },
		{ "", 0, NULL, 30, "certificate: empty common name" },
		{ "s", 0, NULL, 0, "certificate: validity must be at least one day (got 0)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		X509 *cert = tls_sign_csr(fx.ca, fx.ca_key, req, cases[i].cn, cases[i].server,
					  cases[i].hosts, cases[i].days, err, sizeof(err));
		CU_ASSERT_PTR_NULL(cert);
		X509_free(cert);
		CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
	}
	/* A CA key that is not the CA certificate's. */
	CU_ASSERT_PTR_NULL(
		tls_sign_csr(fx.ca, fx.other_ca_key, req, "s", 0, NULL, 30, err, sizeof(err)));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "the CA key does not match the CA certificate"));
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);
	X509_REQ_free(req);
}

static void test_csr_tampered(void)
{
	char err[512];
	for (int variant = 0; variant < 2; variant++) {
		X509_REQ *req = tls_csr_create(fx.slave_key, "slave-2", err, sizeof(err));
		CU_ASSERT_PTR_NOT_NULL_FATAL(req);
		if (variant == 0) {
			/* Flip a bit of the signature, the last bytes of the DER. */
			unsigned char *der = NULL;
			int len = i2d_X509_REQ(req, &der);
			CU_ASSERT_FATAL(len > 64);
			der[len - 1] ^= 0x01;
			const unsigned char *p = der;
			X509_REQ_free(req);
			req = d2i_X509_REQ(NULL, &p, len);
			OPENSSL_free(der);
			CU_ASSERT_PTR_NOT_NULL_FATAL(req);
		} else {
			/* Someone else's public key under the slave's signature. */
			CU_ASSERT_EQUAL(X509_REQ_set_pubkey(req, fx.stranger_key), 1);
		}
		err[0] = '\0';
		X509 *cert = tls_sign_csr(fx.ca, fx.ca_key, req, "slave-2", 0, NULL, 30, err,
					  sizeof(err));
		CU_ASSERT_PTR_NULL(cert);
		X509_free(cert);
		CU_ASSERT_STRING_EQUAL(err, "CSR signature does not verify");
		CU_ASSERT_EQUAL(ERR_peek_error(), 0);
		X509_REQ_free(req);
	}
}

static void test_pem_round_trips(void)
{
	char err[512];
	char *pem = tls_cert_to_pem(fx.master);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
	CU_ASSERT_EQUAL(strncmp(pem, "-----BEGIN CERTIFICATE-----", 27), 0);
	X509 *back = tls_cert_from_pem(pem, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL(X509_cmp(back, fx.master), 0);
	char p1[TLS_PIN_HEX_LEN + 1], p2[TLS_PIN_HEX_LEN + 1];
	tls_cert_pin(back, p1);
	tls_cert_pin(fx.master, p2);
	CU_ASSERT_STRING_EQUAL(p1, p2);
	CU_ASSERT_EQUAL(strlen(p1), TLS_PIN_HEX_LEN);
	X509_free(back);
	free(pem);

	X509_REQ *req = tls_csr_create(fx.slave_key, "slave-9", err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(req);
	pem = tls_csr_to_pem(req);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pem);
	X509_REQ *req2 = tls_csr_from_pem(pem, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(req2);
	CU_ASSERT_EQUAL(
		X509_NAME_cmp(X509_REQ_get_subject_name(req), X509_REQ_get_subject_name(req2)), 0);
	CU_ASSERT_EQUAL(EVP_PKEY_eq(X509_REQ_get0_pubkey(req2), fx.slave_key), 1);
	X509 *cert = tls_sign_csr(fx.ca, fx.ca_key, req2, "slave-9", 0, NULL, 30, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL(cert);
	X509_free(cert);
	X509_REQ_free(req2);
	X509_REQ_free(req);
	free(pem);

	/* Garbage is refused and OpenSSL's queue is drained into err. */
	CU_ASSERT_PTR_NULL(tls_cert_from_pem("not a certificate", err, sizeof(err)));
	CU_ASSERT_EQUAL(strncmp(err, "certificate PEM: error:", 23), 0);
	CU_ASSERT_PTR_NULL(
		tls_csr_from_pem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", err, sizeof(err)));
	CU_ASSERT_EQUAL(strncmp(err, "CSR PEM: error:", 15), 0);
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);
}

static int count_dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int n = 0;
	if (!d)
		return -1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static void test_key_and_cert_files(void)
{
	char err[512], key_path[128], cert_path[128], expect[256];
	struct stat st;
	snprintf(key_path, sizeof(key_path), "%s/node.key", fx.dir);
	snprintf(cert_path, sizeof(cert_path), "%s/node.crt", fx.dir);

	CU_ASSERT_EQUAL_FATAL(tls_key_save(fx.slave_key, key_path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(stat(key_path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0600);
	EVP_PKEY *key = tls_key_load(key_path, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	CU_ASSERT_EQUAL(EVP_PKEY_eq(key, fx.slave_key), 1);
	CU_ASSERT_EQUAL(EVP_PKEY_get_id(key), EVP_PKEY_ED25519);
	EVP_PKEY_free(key);

	/* Overwriting replaces the file (rename) and keeps 0600. */
	CU_ASSERT_EQUAL(tls_key_save(fx.master_key, key_path, err, sizeof(err)), 0);
	key = tls_key_load(key_path, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(key);
	CU_ASSERT_EQUAL(EVP_PKEY_eq(key, fx.master_key), 1);
	EVP_PKEY_free(key);

	static const mode_t bad_modes[] = { 0644, 0640, 0604, 0610, 0601 };
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		CU_ASSERT_EQUAL_FATAL(chmod(key_path, bad_modes[i]), 0);
		err[0] = '\0';
		CU_ASSERT_PTR_NULL(tls_key_load(key_path, err, sizeof(err)));
		snprintf(expect, sizeof(expect),
			 "%s: private key is accessible by group or others (mode %04o); chmod 600",
			 key_path, (unsigned)bad_modes[i]);
		CU_ASSERT_STRING_EQUAL(err, expect);
	}
	CU_ASSERT_EQUAL(chmod(key_path, 0400), 0);
	key = tls_key_load(key_path, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL(key);
	EVP_PKEY_free(key);

	CU_ASSERT_EQUAL_FATAL(tls_cert_save(fx.slave, cert_path, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(stat(cert_path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 07777, 0644);
	X509 *cert = tls_cert_load(cert_path, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cert);
	CU_ASSERT_EQUAL(X509_cmp(cert, fx.slave), 0);
	X509_free(cert);

	/* A certificate is not a key. */
	CU_ASSERT_EQUAL(chmod(cert_path, 0600), 0);
	CU_ASSERT_PTR_NULL(tls_key_load(cert_path, err, sizeof(err)));
	CU_ASSERT_EQUAL(strncmp(err, cert_path, strlen(cert_path)), 0);
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);

	/* No temporary files are left behind. */
	CU_ASSERT_EQUAL(count_dir_entries(fx.dir), 2);

	snprintf(expect, sizeof(expect), "%s/missing.key: No such file or directory", fx.dir);
	snprintf(key_path, sizeof(key_path), "%s/missing.key", fx.dir);
	CU_ASSERT_PTR_NULL(tls_key_load(key_path, err, sizeof(err)));
	CU_ASSERT_STRING_EQUAL(err, expect);
	snprintf(key_path, sizeof(key_path), "%s/no/such/dir.key", fx.dir);
	CU_ASSERT_NOT_EQUAL(tls_key_save(fx.slave_key, key_path, err, sizeof(err)), 0);

	snprintf(key_path, sizeof(key_path), "%s/node.key", fx.dir);
	unlink(key_path);
	unlink(cert_path);
}

/* ---- small helpers ---- */

static void test_sha256_vector(void)
{
	char out[TLS_PIN_HEX_LEN + 1];
	tls_sha256_hex("abc", 3, out);
	CU_ASSERT_STRING_EQUAL(out,
			       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	tls_sha256_hex("", 0, out);
	CU_ASSERT_STRING_EQUAL(out,
			       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_random_hex(void)
{
	char a[201], b[201];
	memset(a, 'x', sizeof(a));
	CU_ASSERT_EQUAL_FATAL(tls_random_hex(a, 100), 0);
	CU_ASSERT_EQUAL_FATAL(tls_random_hex(b, 100), 0);
	CU_ASSERT_EQUAL(strlen(a), 200);
	CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), 200);
	CU_ASSERT_STRING_NOT_EQUAL(a, b);
	CU_ASSERT_EQUAL(tls_random_hex(a, 0), 0);
	CU_ASSERT_STRING_EQUAL(a, "");
}

static void test_token_round_trip(void)
{
	char pin[TLS_PIN_HEX_LEN + 1], text[160], err[256];
	struct enrol_token made, parsed, again;
	tls_cert_pin(fx.ca, pin);
	CU_ASSERT_EQUAL_FATAL(tls_token_make(pin, &made, text, sizeof(text)), 0);
	CU_ASSERT_EQUAL(strlen(text), 5 + 8 + 1 + 32 + 1 + 64);
	CU_ASSERT_EQUAL(strncmp(text, "stk1.", 5), 0);
	CU_ASSERT_EQUAL(strlen(made.id), 8);
	CU_ASSERT_EQUAL(strlen(made.secret), 32);
	CU_ASSERT_EQUAL_FATAL(tls_token_parse(text, &parsed, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(parsed.id, made.id);
	CU_ASSERT_STRING_EQUAL(parsed.secret, made.secret);
	CU_ASSERT_STRING_EQUAL(parsed.pin, pin);

	/* Two tokens never share a secret. */
	char text2[160];
	CU_ASSERT_EQUAL(tls_token_make(pin, &again, text2, sizeof(text2)), 0);
	CU_ASSERT_STRING_NOT_EQUAL(again.secret, made.secret);

	/* Pasted with a newline around it. */
	char padded[200];
	snprintf(padded, sizeof(padded), "  %s\n", text);
	CU_ASSERT_EQUAL(tls_token_parse(padded, &parsed, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(parsed.secret, made.secret);

	/* The output buffer must hold the whole token; the pin must be a pin. */
	CU_ASSERT_NOT_EQUAL(tls_token_make(pin, &again, text2, 110), 0);
	CU_ASSERT_NOT_EQUAL(tls_token_make("ABC", &again, text2, sizeof(text2)), 0);
}

static void test_token_malformed(void)
{
#define ID "0123abcd"
#define SECRET "00112233445566778899aabbccddeeff"
#define PIN "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	static const struct {
		const char *text;
		const char *msg;
	} cases[] = {
		{ "", "token: empty" },
		{ " \n", "token: empty" },
		{ "stk1", "token: expected 4 dot-separated fields" },
		{ "stk1." ID "." SECRET, "token: expected 4 dot-separated fields" },
		{ "stk1." ID "." SECRET "." PIN ".x", "token: expected 4 dot-separated fields" },
		{ "stk1." ID "." SECRET "." PIN ".", "token: expected 4 dot-separated fields" },
		{ "stk2." ID "." SECRET "." PIN,
		  "token: unknown format (expected it to start with \"stk1.\")" },
		{ "STK1." ID "." SECRET "." PIN,
		  "token: unknown format (expected it to start with \"stk1.\")" },
		{ "stk1.0123abc." SECRET "." PIN, "token: id must be 8 hex characters" },
		{ "stk1.0123ABCD." SECRET "." PIN, "token: id must be 8 hex characters" },
		{ "stk1.0123abcg." SECRET "." PIN, "token: id must be 8 hex characters" },
		{ "stk1.." SECRET "." PIN, "token: id must be 8 hex characters" },
		{ "stk1." ID ".00112233445566778899aabbccddeef." PIN,
		  "token: secret must be 32 hex characters" },
		{ "stk1." ID ".00112233445566778899aabbccddeeff0." PIN,
		  "token: secret must be 32 hex characters" },
		{ "stk1." ID ".00112233445566778899aabbccddeefF." PIN,
		  "token: secret must be 32 hex characters" },
		{ "stk1." ID ".00112233445566778899aabb ccddeef." PIN,
		  "token: secret must be 32 hex characters" },
		{ "stk1." ID "." SECRET ".ba7816bf", "token: CA pin must be 64 hex characters" },
		{ "stk1." ID "." SECRET ".", "token: CA pin must be 64 hex characters" },
		{ "stk1." ID "." SECRET "." PIN "0", "token: CA pin must be 64 hex characters" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct enrol_token tok;
		char err[256] = "";
		CU_ASSERT_EQUAL(tls_token_parse(cases[i].text, &tok, err, sizeof(err)), -1);
		if (strcmp(err, cases[i].msg) != 0)
			fprintf(stderr, "case %zu: got \"%s\"\n", i, err);
		CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
	}
	struct enrol_token tok;
	char err[256];
	CU_ASSERT_EQUAL(tls_token_parse("stk1." ID "." SECRET "." PIN, &tok, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(tls_token_parse(NULL, &tok, err, sizeof(err)), -1);
#undef ID
#undef SECRET
#undef PIN
}

static void test_error_drain(void)
{
	char err[64];
	/* Two errors, a buffer too small for both: truncated, terminated, queue empty. */
	ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, "first detail");
	ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
	tls_error(err, sizeof(err), "ctx");
	CU_ASSERT_EQUAL(strncmp(err, "ctx: error:", 11), 0);
	CU_ASSERT_EQUAL(strlen(err), sizeof(err) - 1);
	CU_ASSERT_EQUAL(ERR_peek_error(), 0);

	char big[512];
	ERR_raise_data(ERR_LIB_SSL, SSL_R_CERTIFICATE_VERIFY_FAILED, "first detail");
	ERR_raise(ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH);
	tls_error(big, sizeof(big), "ctx");
	CU_ASSERT_PTR_NOT_NULL(strstr(big, "certificate verify failed (first detail); error:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(big, "key values mismatch"));

	tls_error(big, sizeof(big), "nothing queued");
	CU_ASSERT_STRING_EQUAL(big, "nothing queued");
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("tls", suite_init, suite_clean);
	CU_add_test(s, "sha256 known vector", test_sha256_vector);
	CU_add_test(s, "random hex", test_random_hex);
	CU_add_test(s, "error queue drained into err", test_error_drain);
	CU_add_test(s, "CA and leaf certificate fields", test_certificate_fields);
	CU_add_test(s, "random positive serials", test_serials);
	CU_add_test(s, "signing refusals", test_sign_refusals);
	CU_add_test(s, "tampered CSR refused", test_csr_tampered);
	CU_add_test(s, "PEM round trips", test_pem_round_trips);
	CU_add_test(s, "key and certificate files", test_key_and_cert_files);
	CU_add_test(s, "mutual TLS handshake", test_mutual_tls);
	CU_add_test(s, "no client certificate", test_no_client_cert);
	CU_add_test(s, "client certificate from another CA", test_foreign_client_cert);
	CU_add_test(s, "clientAuth certificate cannot serve", test_client_cert_as_server);
	CU_add_test(s, "pinned enrolment", test_pinned_enrolment);
	CU_add_test(s, "context arguments", test_context_arguments);
	CU_add_test(s, "token round trip", test_token_round_trip);
	CU_add_test(s, "malformed tokens", test_token_malformed);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
