#include "keystore.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

static void paths(const char *dir, const char *base, char kpath[PATH_MAX], char cpath[PATH_MAX])
{
	snprintf(kpath, PATH_MAX, "%s/%s.key", dir, base);
	snprintf(cpath, PATH_MAX, "%s/%s.crt", dir, base);
}

/* Loads a key and certificate that must belong together. */
static int load_pair(const char *kpath, const char *cpath, EVP_PKEY **key, X509 **cert, char *err,
		     size_t errlen)
{
	*key = tls_key_load(kpath, err, errlen);
	if (!*key)
		return -1;
	*cert = tls_cert_load(cpath, err, errlen);
	if (!*cert)
		goto fail;
	if (X509_check_private_key(*cert, *key) != 1) {
		snprintf(err, errlen, "%s does not belong to %s", kpath, cpath);
		goto fail;
	}
	return 0;
fail:
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return -1;
}

static int save_pair(EVP_PKEY *key, X509 *cert, const char *kpath, const char *cpath, char *err,
		     size_t errlen)
{
	if (tls_key_save(key, kpath, err, errlen) != 0 ||
	    tls_cert_save(cert, cpath, err, errlen) != 0)
		return -1;
	return 0;
}

int keystore_ca(const char *dir, const char *base, const char *cn, EVP_PKEY **key, X509 **cert,
		char *err, size_t errlen)
{
	char kpath[PATH_MAX], cpath[PATH_MAX];
	paths(dir, base, kpath, cpath);
	*key = NULL;
	*cert = NULL;
	if (access(kpath, F_OK) == 0 || access(cpath, F_OK) == 0)
		return load_pair(kpath, cpath, key, cert, err, errlen);
	*key = tls_key_generate(err, errlen);
	if (!*key)
		return -1;
	*cert = tls_ca_create(*key, cn, err, errlen);
	if (!*cert || save_pair(*key, *cert, kpath, cpath, err, errlen) != 0)
		goto fail;
	return 1;
fail:
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return -1;
}

static int hosts_current(const char *hpath, const char *hosts)
{
	char buf[600] = "";
	FILE *f = fopen(hpath, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strcmp(buf, hosts) == 0;
}

static int write_hosts(const char *hpath, const char *hosts, char *err, size_t errlen)
{
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
	return 0;
}

int keystore_server_cert(const char *dir, const char *base, EVP_PKEY *ca_key, X509 *ca,
			 const char *cn, const char *hosts, int valid_days, EVP_PKEY **key,
			 X509 **cert, char *err, size_t errlen)
{
	char kpath[PATH_MAX], cpath[PATH_MAX], hpath[PATH_MAX];
	paths(dir, base, kpath, cpath);
	snprintf(hpath, sizeof(hpath), "%s/%s.hosts", dir, base);
	*key = NULL;
	*cert = NULL;
	if (access(kpath, F_OK) == 0 && access(cpath, F_OK) == 0 && hosts_current(hpath, hosts))
		return load_pair(kpath, cpath, key, cert, err, errlen);
	*key = tls_key_generate(err, errlen);
	if (!*key)
		return -1;
	X509_REQ *req = tls_csr_create(*key, cn, err, errlen);
	if (!req)
		goto fail;
	*cert = tls_sign_csr(ca, ca_key, req, cn, 1, hosts, valid_days, err, errlen);
	X509_REQ_free(req);
	if (!*cert || save_pair(*key, *cert, kpath, cpath, err, errlen) != 0 ||
	    write_hosts(hpath, hosts, err, errlen) != 0)
		goto fail;
	return 1;
fail:
	X509_free(*cert);
	EVP_PKEY_free(*key);
	*cert = NULL;
	*key = NULL;
	return -1;
}
