#include "pki.h"

#include <stdio.h>
#include <string.h>

#include "keystore.h"
#include "log.h"

#define SERVER_CERT_DAYS 825

int pki_init(struct master_pki *pki, const char *data_dir, const char *name, const char *hosts,
	     char *err, size_t errlen)
{
	memset(pki, 0, sizeof(*pki));
	char cn[128];
	snprintf(cn, sizeof(cn), "Strata CA %s", name);
	int rc = keystore_ca(data_dir, "ca", cn, &pki->ca_key, &pki->ca, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1)
		log_notice("pki: created the hierarchy's certificate authority in %s/ca.crt",
			   data_dir);
	rc = keystore_server_cert(data_dir, "server", pki->ca_key, pki->ca, name, hosts,
				  SERVER_CERT_DAYS, &pki->key, &pki->cert, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1)
		log_notice("pki: issued the master's server certificate for %s", hosts);
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
