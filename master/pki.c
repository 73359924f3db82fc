#include "pki.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define SERVER_CERT_DAYS 825

static int load_or_create_ca(struct master_pki *pki, const char *dir, const char *name, char *err,
			     size_t errlen)
{
	char kpath[PATH_MAX], cpath[PATH_MAX], cn[128];
	snprintf(kpath, sizeof(kpath), "%s/ca.key", dir);
	snprintf(cpath, sizeof(cpath), "%s/ca.crt", dir);
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0) {
		pki->ca_key = tls_key_load(kpath, err, errlen);
		if (!pki->ca_key)
			return -1;
		pki->ca = tls_cert_load(cpath, err, errlen);
		if (!pki->ca)
			return -1;
		if (X509_check_private_key(pki->ca, pki->ca_key) != 1) {
			snprintf(err, errlen, "%s does not belong to %s", kpath, cpath);
			return -1;
		}
		return 0;
	}
	snprintf(cn, sizeof(cn), "Strata CA %s", name);
	pki->ca_key = tls_key_generate(err, errlen);
	if (!pki->ca_key)
		return -1;
	pki->ca = tls_ca_create(pki->ca_key, cn, err, errlen);
	if (!pki->ca)
		return -1;
	if (tls_key_save(pki->ca_key, kpath, err, errlen) != 0 ||
	    tls_cert_save(pki->ca, cpath, err, errlen) != 0)
		return -1;
	log_notice("pki: created the hierarchy's certificate authority in %s", cpath);
	return 0;
}

/* The hosts are kept beside the certificate so a change re-issues it. */
static int server_cert_current(const char *dir, const char *hosts)
{
	char path[PATH_MAX], buf[600] = "";
	snprintf(path, sizeof(path), "%s/server.hosts", dir);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, hosts) == 0;
}

static int issue_server_cert(struct master_pki *pki, const char *dir, const char *name,
			     const char *hosts, char *err, size_t errlen)
{
	char kpath[PATH_MAX], cpath[PATH_MAX], hpath[PATH_MAX];
	snprintf(kpath, sizeof(kpath), "%s/server.key", dir);
	snprintf(cpath, sizeof(cpath), "%s/server.crt", dir);
	snprintf(hpath, sizeof(hpath), "%s/server.hosts", dir);

	if (access(kpath, F_OK) == 0 && access(cpath, F_OK) == 0 && server_cert_current(dir, hosts)) {
		pki->key = tls_key_load(kpath, err, errlen);
		if (!pki->key)
			return -1;
		pki->cert = tls_cert_load(cpath, err, errlen);
		if (!pki->cert)
			return -1;
		return 0;
	}
	pki->key = tls_key_generate(err, errlen);
	if (!pki->key)
		return -1;
	X509_REQ *req = tls_csr_create(pki->key, name, err, errlen);
	if (!req)
		return -1;
	pki->cert = tls_sign_csr(pki->ca, pki->ca_key, req, name, 1, hosts, SERVER_CERT_DAYS, err,
				 errlen);
	X509_REQ_free(req);
	if (!pki->cert)
		return -1;
	if (tls_key_save(pki->key, kpath, err, errlen) != 0 ||
	    tls_cert_save(pki->cert, cpath, err, errlen) != 0)
		return -1;
	FILE *f = fopen(hpath, "w");
	if (!f) {
		snprintf(err, errlen, "cannot write %s", hpath);
		return -1;
	}
	int bad = fputs(hosts, f) < 0;
	if (fclose(f) != 0 || bad) {
		snprintf(err, errlen, "cannot write %s", hpath);
		return -1;
	}
	log_notice("pki: issued the master's server certificate for %s", hosts);
	return 0;
}

int pki_init(struct master_pki *pki, const char *data_dir, const char *name, const char *hosts,
	     char *err, size_t errlen)
{
	memset(pki, 0, sizeof(*pki));
	if (load_or_create_ca(pki, data_dir, name, err, errlen) != 0)
		return -1;
	if (issue_server_cert(pki, data_dir, name, hosts, err, errlen) != 0)
		return -1;
	tls_cert_pin(pki->ca, pki->pin);
	pki->ctx = tls_server_ctx(pki->key, pki->cert, pki->ca, err, errlen);
	if (!pki->ctx)
		return -1;
	log_info("pki: CA pin sha256:%s", pki->pin);
	return 0;
}

void pki_free(struct master_pki *pki)
{
	SSL_CTX_free(pki->ctx);
	X509_free(pki->cert);
	EVP_PKEY_free(pki->key);
	X509_free(pki->ca);
	EVP_PKEY_free(pki->ca_key);
	memset(pki, 0, sizeof(*pki));
}
