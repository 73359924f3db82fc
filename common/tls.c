#include "tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#define TLS_CA_DAYS 3650
/* Tolerates clocks a little behind the CA's when a certificate is used at once. */
#define TLS_BACKDATE_SECONDS 300
#define TLS_SERIAL_BYTES 16

#define TOKEN_PREFIX "stk1"
#define TOKEN_ID_BYTES 4
#define TOKEN_SECRET_BYTES 16

static const char hex_digits[] = "0123456789abcdef";

/* Appends to err at *off, never past errlen, always NUL-terminated. */
static void err_append(char *err, size_t errlen, size_t *off, const char *s)
{
	if (*off >= errlen)
		return;
	int n = snprintf(err + *off, errlen - *off, "%s", s);
	if (n < 0)
		return;
	*off += (size_t)n;
	if (*off >= errlen)
		*off = errlen - 1;
}

void tls_error(char *err, size_t errlen, const char *prefix)
{
	size_t off = 0;
	const char *sep = ": ";
	const char *data;
	int flags;
	unsigned long e;

	if (err && errlen)
		err[0] = '\0';
	else
		errlen = 0;
	if (errlen)
		err_append(err, errlen, &off, prefix ? prefix : "openssl");
	/* libssl's reason strings load with libssl; an error raised before any
	 * SSL_CTX exists would otherwise print as "reason(134)". */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS, NULL);
	/* The whole queue is drained even when err is full, so stale entries
	 * never end up in the next caller's message. */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
		char buf[256];
		if (!errlen)
			continue;
		ERR_error_string_n(e, buf, sizeof(buf));
		err_append(err, errlen, &off, sep);
		err_append(err, errlen, &off, buf);
		if ((flags & ERR_TXT_STRING) && data && *data) {
			err_append(err, errlen, &off, " (");
			err_append(err, errlen, &off, data);
			err_append(err, errlen, &off, ")");
		}
		sep = "; ";
	}
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void to_hex(const unsigned char *in, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex_digits[in[i] >> 4];
		out[2 * i + 1] = hex_digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int is_lower_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	}
	return 1;
}

int tls_random_hex(char *out, size_t nbytes)
{
	unsigned char buf[64];
	size_t done = 0;

	while (done < nbytes) {
		size_t n = nbytes - done < sizeof(buf) ? nbytes - done : sizeof(buf);
		if (RAND_bytes(buf, (int)n) != 1) {
			OPENSSL_cleanse(buf, sizeof(buf));
			return -1;
		}
		to_hex(buf, n, out + 2 * done);
		done += n;
	}
	out[2 * nbytes] = '\0';
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

void tls_sha256_hex(const void *data, size_t len, char out[TLS_PIN_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
		out[0] = '\0';
		ERR_clear_error();
		return;
	}
	to_hex(md, mdlen, out);
}

/* ---- files ---- */

static int fsync_parent_dir(const char *path)
{
	char *dir = strdup(path);
	if (!dir)
		return -1;
	char *slash = strrchr(dir, '/');
	const char *name = dir;
	if (!slash)
		name = ".";
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	int fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

/*
 * Writes data to path through a temporary file in the same directory, so a
 * crash leaves either the old file or the new one, never a torn key.
 */
static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, char *err,
			     size_t errlen)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + sizeof(".XXXXXX"));
	if (!tmp) {
		set_err(err, errlen, "%s: out of memory", path);
		return -1;
	}
	memcpy(tmp, path, plen);
	memcpy(tmp + plen, ".XXXXXX", sizeof(".XXXXXX"));

	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "%s: cannot create temporary file: %s", path, strerror(errno));
		free(tmp);
		return -1;
	}
	const char *what = "fchmod";
	if (fchmod(fd, mode) != 0)
		goto fail;
	what = "write";
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		off += (size_t)n;
	}
	what = "fsync";
	if (fsync(fd) != 0)
		goto fail;
	what = "close";
	int rc = close(fd);
	fd = -1;
	if (rc != 0)
		goto fail;
	what = "rename";
	if (rename(tmp, path) != 0)
		goto fail;
	free(tmp);
	/* The rename itself is only durable once the directory is synced. */
	if (fsync_parent_dir(path) != 0) {
		set_err(err, errlen, "%s: fsync of directory: %s", path, strerror(errno));
		return -1;
	}
	return 0;
fail:
	set_err(err, errlen, "%s: %s: %s", path, what, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	free(tmp);
	return -1;
}

static int write_bio_atomic(BIO *bio, const char *path, mode_t mode, char *err, size_t errlen)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data) {
		set_err(err, errlen, "%s: nothing to write", path);
		return -1;
	}
	return write_file_atomic(path, data, (size_t)len, mode, err, errlen);
}

int tls_key_save(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
	/* A secure-memory BIO wipes the PEM text of the key when freed. */
	BIO *bio = BIO_new(BIO_s_secmem());
	if (!bio) {
		tls_error(err, errlen, path);
		return -1;
	}
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1) {
		tls_error(err, errlen, path);
		BIO_free(bio);
		return -1;
	}
	int rc = write_bio_atomic(bio, path, 0600, err, errlen);
	BIO_free(bio);
	return rc;
}

int tls_cert_save(X509 *cert, const char *path, char *err, size_t errlen)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio) {
		tls_error(err, errlen, path);
		return -1;
	}
	if (PEM_write_bio_X509(bio, cert) != 1) {
		tls_error(err, errlen, path);
		BIO_free(bio);
		return -1;
	}
	int rc = write_bio_atomic(bio, path, 0644, err, errlen);
	BIO_free(bio);
	return rc;
}

/* Keys are never encrypted here; refusing a passphrase keeps a daemon from
 * ever stopping at a terminal prompt. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

EVP_PKEY *tls_key_generate(char *err, size_t errlen)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	if (!key)
		tls_error(err, errlen, "Ed25519 key generation");
	return key;
}

EVP_PKEY *tls_key_load(const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	/* fstat on the opened file: the mode checked is the mode of what is read. */
	if (fstat(fd, &st) != 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		set_err(err, errlen, "%s: not a regular file", path);
		close(fd);
		return NULL;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		set_err(err, errlen,
			"%s: private key is accessible by group or others (mode %04o); chmod 600",
			path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return NULL;
	}
	BIO *bio = BIO_new_fd(fd, BIO_CLOSE);
	if (!bio) {
		close(fd);
		tls_error(err, errlen, path);
		return NULL;
	}
	EVP_PKEY *key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	if (!key)
		tls_error(err, errlen, path);
	return key;
}

X509 *tls_cert_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	BIO *bio = BIO_new_fd(fd, BIO_CLOSE);
	if (!bio) {
		close(fd);
		tls_error(err, errlen, path);
		return NULL;
	}
	X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	if (!cert)
		tls_error(err, errlen, path);
	return cert;
}

/* ---- PEM text ---- */

static char *bio_to_string(BIO *bio)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	if (len <= 0 || !data)
		return NULL;
	char *out = malloc((size_t)len + 1);
	if (!out)
		return NULL;
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	return out;
}

char *tls_cert_to_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (bio && PEM_write_bio_X509(bio, cert) == 1)
		out = bio_to_string(bio);
	BIO_free(bio);
	return out;
}

X509 *tls_cert_from_pem(const char *pem, char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!cert)
		tls_error(err, errlen, "certificate PEM");
	return cert;
}

char *tls_csr_to_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = NULL;
	if (bio && PEM_write_bio_X509_REQ(bio, req) == 1)
		out = bio_to_string(bio);
	BIO_free(bio);
	return out;
}

X509_REQ *tls_csr_from_pem(const char *pem, char *err, size_t errlen)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!req)
		tls_error(err, errlen, "CSR PEM");
	return req;
}

/* ---- certificate fields ---- */

void tls_cert_pin(X509 *cert, char out[TLS_PIN_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
		out[0] = '\0';
		ERR_clear_error();
		return;
	}
	to_hex(md, mdlen, out);
}

char *tls_cert_serial_hex(X509 *cert)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	if (!bn)
		return NULL;
	char *hex = BN_bn2hex(bn);
	BN_free(bn);
	if (!hex)
		return NULL;
	char *out = strdup(hex);
	OPENSSL_free(hex);
	if (!out)
		return NULL;
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return out;
}

int tls_cert_common_name(X509 *cert, char *out, size_t outlen)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	if (idx < 0 || outlen == 0)
		return -1;
	ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
	unsigned char *utf8 = NULL;
	int len = ASN1_STRING_to_UTF8(&utf8, data);
	if (len < 0)
		return -1;
	/* An embedded NUL would let "a\0b" pass for "a". */
	int ok = (size_t)len < outlen && strlen((char *)utf8) == (size_t)len;
	if (ok)
		memcpy(out, utf8, (size_t)len + 1);
	OPENSSL_free(utf8);
	return ok ? 0 : -1;
}

/* ---- issuing ---- */

static int set_random_serial(X509 *cert)
{
	unsigned char buf[TLS_SERIAL_BYTES];
	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return -1;
	/* Positive as DER requires, and never zero. */
	buf[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(buf, sizeof(buf), NULL);
	if (!bn)
		return -1;
	if (BN_is_zero(bn) && !BN_one(bn)) {
		BN_free(bn);
		return -1;
	}
	ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));
	BN_free(bn);
	return serial ? 0 : -1;
}

static X509_NAME *name_from_cn(const char *cn)
{
	X509_NAME *name = X509_NAME_new();
	if (name && X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					       -1, -1, 0) != 1) {
		X509_NAME_free(name);
		return NULL;
	}
	return name;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : -1;
}

/* Everything but the extensions and the signature: a self-signed
 * certificate when issuer is NULL. */
static X509 *cert_skeleton(X509 *issuer, const char *cn, EVP_PKEY *pub, int days)
{
	X509 *cert = X509_new();
	X509_NAME *subject = name_from_cn(cn);
	if (!cert || !subject)
		goto fail;
	if (X509_set_version(cert, X509_VERSION_3) != 1 || set_random_serial(cert) != 0 ||
	    X509_set_subject_name(cert, subject) != 1 ||
	    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : subject) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(cert), -TLS_BACKDATE_SECONDS) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL) ||
	    X509_set_pubkey(cert, pub) != 1)
		goto fail;
	X509_NAME_free(subject);
	return cert;
fail:
	X509_NAME_free(subject);
	X509_free(cert);
	return NULL;
}

X509 *tls_ca_create(EVP_PKEY *ca_key, const char *cn, char *err, size_t errlen)
{
	if (!cn || !*cn) {
		set_err(err, errlen, "CA: empty common name");
		return NULL;
	}
	X509 *ca = cert_skeleton(NULL, cn, ca_key, TLS_CA_DAYS);
	if (!ca || add_ext(ca, ca, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
	    add_ext(ca, ca, NID_key_usage, "critical,keyCertSign,cRLSign") != 0 ||
	    add_ext(ca, ca, NID_subject_key_identifier, "hash") != 0 ||
	    X509_sign(ca, ca_key, NULL) <= 0) {
		tls_error(err, errlen, "CA certificate");
		X509_free(ca);
		return NULL;
	}
	return ca;
}

X509_REQ *tls_csr_create(EVP_PKEY *key, const char *cn, char *err, size_t errlen)
{
	if (!cn || !*cn) {
		set_err(err, errlen, "CSR: empty common name");
		return NULL;
	}
	X509_REQ *req = X509_REQ_new();
	X509_NAME *subject = name_from_cn(cn);
	if (!req || !subject || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
	    X509_REQ_set_subject_name(req, subject) != 1 || X509_REQ_set_pubkey(req, key) != 1 ||
	    X509_REQ_sign(req, key, NULL) <= 0) {
		tls_error(err, errlen, "CSR");
		X509_NAME_free(subject);
		X509_REQ_free(req);
		return NULL;
	}
	X509_NAME_free(subject);
	return req;
}

static int is_dns_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253)
		return 0;
	/* A wildcard only as the whole leftmost label. */
	if (strncmp(s, "*.", 2) == 0)
		s += 2;
	for (; *s; s++) {
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
			return 0;
	}
	return 1;
}

static GENERAL_NAME *general_name_for(const char *host)
{
	unsigned char addr[16];
	GENERAL_NAME *gn = GENERAL_NAME_new();
	if (!gn)
		return NULL;
	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1) {
		ASN1_OCTET_STRING *ip = a2i_IPADDRESS(host);
		if (!ip)
			goto fail;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		return gn;
	}
	ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
	if (!dns || ASN1_STRING_set(dns, host, -1) != 1) {
		ASN1_IA5STRING_free(dns);
		goto fail;
	}
	GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	return gn;
fail:
	GENERAL_NAME_free(gn);
	return NULL;
}

/* Built as GENERAL_NAMEs rather than a config string, so no host text is
 * ever parsed as extension syntax. */
static int add_san(X509 *cert, const char *hosts, char *err, size_t errlen)
{
	GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
	char *copy = strdup(hosts ? hosts : "");
	char *save = NULL;
	int rc = -1;

	if (!gens || !copy) {
		set_err(err, errlen, "subjectAltName: out of memory");
		goto out;
	}
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*tok))
			tok++;
		char *end = tok + strlen(tok);
		while (end > tok && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (!*tok)
			continue;
		unsigned char addr[16];
		if (inet_pton(AF_INET, tok, addr) != 1 && inet_pton(AF_INET6, tok, addr) != 1 &&
		    !is_dns_name(tok)) {
			set_err(err, errlen,
				"hosts: \"%s\" is neither an IP address nor a DNS name", tok);
			goto out;
		}
		GENERAL_NAME *gn = general_name_for(tok);
		if (!gn || !sk_GENERAL_NAME_push(gens, gn)) {
			GENERAL_NAME_free(gn);
			tls_error(err, errlen, "subjectAltName");
			goto out;
		}
	}
	if (sk_GENERAL_NAME_num(gens) == 0) {
		set_err(err, errlen,
			"a server certificate needs at least one host name or address");
		goto out;
	}
	if (X509_add1_ext_i2d(cert, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT) != 1) {
		tls_error(err, errlen, "subjectAltName");
		goto out;
	}
	rc = 0;
out:
	GENERAL_NAMES_free(gens);
	free(copy);
	return rc;
}

X509 *tls_sign_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *req, const char *cn, int server,
		   const char *hosts, int valid_days, char *err, size_t errlen)
{
	if (!cn || !*cn) {
		set_err(err, errlen, "certificate: empty common name");
		return NULL;
	}
	if (valid_days <= 0) {
		set_err(err, errlen, "certificate: validity must be at least one day (got %d)",
			valid_days);
		return NULL;
	}
	if (X509_check_private_key(ca, ca_key) != 1) {
		tls_error(err, errlen, "the CA key does not match the CA certificate");
		return NULL;
	}
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	if (!pub || X509_REQ_verify(req, pub) != 1) {
		ERR_clear_error();
		set_err(err, errlen, "CSR signature does not verify");
		return NULL;
	}
	X509 *cert = cert_skeleton(ca, cn, pub, valid_days);
	if (!cert || add_ext(cert, ca, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
	    add_ext(cert, ca, NID_key_usage, "critical,digitalSignature") != 0 ||
	    add_ext(cert, ca, NID_ext_key_usage, server ? "serverAuth" : "clientAuth") != 0 ||
	    add_ext(cert, ca, NID_subject_key_identifier, "hash") != 0 ||
	    add_ext(cert, ca, NID_authority_key_identifier, "keyid:always") != 0) {
		tls_error(err, errlen, "certificate");
		X509_free(cert);
		return NULL;
	}
	if (server && add_san(cert, hosts, err, errlen) != 0) {
		X509_free(cert);
		return NULL;
	}
	if (X509_sign(cert, ca_key, NULL) <= 0) {
		tls_error(err, errlen, "certificate signature");
		X509_free(cert);
		return NULL;
	}
	return cert;
}

/* ---- contexts ---- */

static SSL_CTX *ctx_new(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);
	if (!ctx) {
		tls_error(err, errlen, "SSL_CTX_new");
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
		tls_error(err, errlen, "TLS 1.3");
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* Idle connections are many on the agent channel: no read/write
	 * buffers kept while idle, no resumption state. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

static int ctx_use_identity(SSL_CTX *ctx, EVP_PKEY *key, X509 *cert, char *err, size_t errlen)
{
	if (SSL_CTX_use_certificate(ctx, cert) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		tls_error(err, errlen, "key and certificate");
		return -1;
	}
	return 0;
}

/* A store trusting exactly one CA; the context takes ownership. */
static int ctx_trust_ca(SSL_CTX *ctx, X509 *ca, int purpose, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	if (!store || X509_STORE_add_cert(store, ca) != 1) {
		tls_error(err, errlen, "trust store");
		X509_STORE_free(store);
		return -1;
	}
	SSL_CTX_set_cert_store(ctx, store);
	if (SSL_CTX_set_purpose(ctx, purpose) != 1) {
		tls_error(err, errlen, "certificate purpose");
		return -1;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return 0;
}

SSL_CTX *tls_server_ctx(EVP_PKEY *key, X509 *cert, X509 *verify_ca, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "strata";

	if (!key || !cert) {
		set_err(err, errlen, "server context needs a key and a certificate");
		return NULL;
	}
	SSL_CTX *ctx = ctx_new(TLS_server_method(), err, errlen);
	if (!ctx)
		return NULL;
	/* TLS 1.3 servers send tickets even with SSL_OP_NO_TICKET (stateful
	 * ones); nothing would ever use them. */
	if (SSL_CTX_set_num_tickets(ctx, 0) != 1 ||
	    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1) != 1) {
		tls_error(err, errlen, "server context");
		goto fail;
	}
	if (ctx_use_identity(ctx, key, cert, err, errlen) != 0)
		goto fail;
	if (verify_ca) {
		/* The CA goes in the chain so an enrolling peer can pin it. */
		if (SSL_CTX_add1_chain_cert(ctx, verify_ca) != 1 ||
		    SSL_CTX_add_client_CA(ctx, verify_ca) != 1) {
			tls_error(err, errlen, "CA chain");
			goto fail;
		}
		if (ctx_trust_ca(ctx, verify_ca, X509_PURPOSE_SSL_CLIENT, err, errlen) != 0)
			goto fail;
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx(EVP_PKEY *key, X509 *cert, X509 *ca, char *err, size_t errlen)
{
	if (!ca) {
		set_err(err, errlen,
			"client context needs a CA (enrolment uses the pinned context)");
		return NULL;
	}
	if (!key != !cert) {
		set_err(err, errlen, "client certificate needs both a key and a certificate");
		return NULL;
	}
	SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);
	if (!ctx)
		return NULL;
	if (key && ctx_use_identity(ctx, key, cert, err, errlen) != 0)
		goto fail;
	/* Purpose sslserver: a slave's clientAuth certificate cannot pose as the master. */
	if (ctx_trust_ca(ctx, ca, X509_PURPOSE_SSL_SERVER, err, errlen) != 0)
		goto fail;
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

SSL_CTX *tls_client_ctx_pinned(char *err, size_t errlen)
{
	SSL_CTX *ctx = ctx_new(TLS_client_method(), err, errlen);
	if (!ctx)
		return NULL;
	/* Nothing is trusted yet: tls_check_pin() decides after the handshake. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

int tls_check_pin(SSL *ssl, const char *pin_hex, X509 **ca_out, char *err, size_t errlen)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
	X509 *ca = NULL;
	char got[3 * (TLS_PIN_HEX_LEN + 2)] = "";
	size_t got_off = 0;

	*ca_out = NULL;
	if (!leaf || !chain) {
		set_err(err, errlen, "the master sent no certificate");
		return -1;
	}
	for (int i = 0; i < sk_X509_num(chain) && !ca; i++) {
		X509 *c = sk_X509_value(chain, i);
		char pin[TLS_PIN_HEX_LEN + 1];
		if (X509_self_signed(c, 1) != 1)
			continue;
		tls_cert_pin(c, pin);
		if (strcmp(pin, pin_hex) == 0)
			ca = c;
		else {
			err_append(got, sizeof(got), &got_off, got_off ? ", " : "");
			err_append(got, sizeof(got), &got_off, pin);
		}
	}
	ERR_clear_error();
	if (!ca) {
		set_err(err, errlen, "the master's CA does not match the token's pin (got %s)",
			got_off ? got : "no self-signed certificate");
		return -1;
	}

	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *sctx = X509_STORE_CTX_new();
	int rc = -1;
	if (!store || !sctx || X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(sctx, store, leaf, chain) != 1 ||
	    X509_STORE_CTX_set_default(sctx, "ssl_server") != 1) {
		tls_error(err, errlen, "pinned verification");
		goto out;
	}
	if (X509_verify_cert(sctx) != 1) {
		set_err(err, errlen, "the master's certificate does not verify against its CA: %s",
			X509_verify_cert_error_string(X509_STORE_CTX_get_error(sctx)));
		ERR_clear_error();
		goto out;
	}
	if (X509_up_ref(ca) != 1) {
		tls_error(err, errlen, "pinned CA");
		goto out;
	}
	*ca_out = ca;
	rc = 0;
out:
	X509_STORE_CTX_free(sctx);
	X509_STORE_free(store);
	return rc;
}

X509 *tls_peer_cert(SSL *ssl)
{
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	return SSL_get1_peer_certificate(ssl);
}

/* ---- enrolment tokens ---- */

int tls_token_make(const char *ca_pin, struct enrol_token *tok, char *out, size_t outlen)
{
	if (!ca_pin || strlen(ca_pin) != TLS_PIN_HEX_LEN || !is_lower_hex(ca_pin, TLS_PIN_HEX_LEN))
		return -1;
	memset(tok, 0, sizeof(*tok));
	if (tls_random_hex(tok->id, TOKEN_ID_BYTES) != 0 ||
	    tls_random_hex(tok->secret, TOKEN_SECRET_BYTES) != 0)
		return -1;
	memcpy(tok->pin, ca_pin, TLS_PIN_HEX_LEN + 1);
	int n = snprintf(out, outlen, TOKEN_PREFIX ".%s.%s.%s", tok->id, tok->secret, tok->pin);
	if (n < 0 || (size_t)n >= outlen) {
		OPENSSL_cleanse(tok, sizeof(*tok));
		if (outlen)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

/*
 * Surrounding whitespace is ignored (tokens are pasted and read from files);
 * anything else off the exact shape is refused. Messages never echo the
 * token, which carries a secret.
 */
int tls_token_parse(const char *text, struct enrol_token *tok, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t len;
	} fields[] = { { "id", 2 * (size_t)TOKEN_ID_BYTES },
		       { "secret", 2 * (size_t)TOKEN_SECRET_BYTES },
		       { "CA pin", TLS_PIN_HEX_LEN } };
	const char *start[4];
	size_t len[4];
	size_t nfields = 0;

	if (!text) {
		set_err(err, errlen, "token: empty");
		return -1;
	}
	while (isspace((unsigned char)*text))
		text++;
	size_t total = strlen(text);
	while (total > 0 && isspace((unsigned char)text[total - 1]))
		total--;
	if (total == 0) {
		set_err(err, errlen, "token: empty");
		return -1;
	}
	const char *end = text + total;
	size_t dots = 0;
	for (const char *q = text; q < end; q++)
		dots += *q == '.';
	if (dots != 3) {
		set_err(err, errlen, "token: expected 4 dot-separated fields");
		return -1;
	}
	for (const char *p = text; nfields < 4; nfields++) {
		const char *dot = memchr(p, '.', (size_t)(end - p));
		start[nfields] = p;
		len[nfields] = (size_t)((dot ? dot : end) - p);
		p = dot ? dot + 1 : end;
	}
	if (len[0] != strlen(TOKEN_PREFIX) || memcmp(start[0], TOKEN_PREFIX, len[0]) != 0) {
		set_err(err, errlen, "token: unknown format (expected it to start with \"%s.\")",
			TOKEN_PREFIX);
		return -1;
	}
	for (size_t i = 0; i < 3; i++) {
		if (len[i + 1] != fields[i].len || !is_lower_hex(start[i + 1], len[i + 1])) {
			set_err(err, errlen, "token: %s must be %zu hex characters", fields[i].name,
				fields[i].len);
			return -1;
		}
	}
	memset(tok, 0, sizeof(*tok));
	memcpy(tok->id, start[1], len[1]);
	memcpy(tok->secret, start[2], len[2]);
	memcpy(tok->pin, start[3], len[3]);
	return 0;
}
