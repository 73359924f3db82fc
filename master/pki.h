/*
 * pki: the master's certificate authority and its own server certificate,
 * kept in the data directory (ca.key, ca.crt, server.key, server.crt) and
 * created on first start. The server certificate is re-issued when the
 * configured host names change.
 */
#ifndef STRATA_MASTER_PKI_H
#define STRATA_MASTER_PKI_H

#include <openssl/ssl.h>

#include "tls.h"

struct master_pki {
	EVP_PKEY *ca_key;
	X509 *ca;
	EVP_PKEY *key;
	X509 *cert;
	char pin[TLS_PIN_HEX_LEN + 1]; /* SHA-256 of the CA certificate */
	SSL_CTX *ctx;		       /* TLS 1.3 server, client certs optional */
};

__attribute__((warn_unused_result)) int pki_init(struct master_pki *pki, const char *data_dir,
						 const char *name, const char *hosts, char *err,
						 size_t errlen);
void pki_free(struct master_pki *pki);

#endif
