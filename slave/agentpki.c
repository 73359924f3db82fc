#include "agentpki.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore.h"
#include "log.h"

#define PUSH_CERT_DAYS 825

int agentpki_init(struct agent_pki *pki, const char *data_dir, const char *name, const char *hosts,
		  char *err, size_t errlen)
{
	char cn[128];
	memset(pki, 0, sizeof(*pki));
	snprintf(cn, sizeof(cn), "Strata agent CA %s", name);
	int rc = keystore_ca(data_dir, "agent-ca", cn, &pki->ca_key, &pki->ca, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1)
		log_notice("agentpki: created the agent certificate authority in %s/agent-ca.crt",
			   data_dir);
	rc = keystore_server_cert(data_dir, "push", pki->ca_key, pki->ca, name, hosts,
				  PUSH_CERT_DAYS, &pki->key, &pki->cert, err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1)
		log_notice("agentpki: issued the push server's certificate for %s", hosts);
	tls_cert_pin(pki->ca, pki->pin);
	pki->ca_pem = tls_cert_to_pem(pki->ca);
	if (!pki->ca_pem) {
		snprintf(err, errlen, "cannot encode the agent CA certificate");
		return -1;
	}
	/* Passing the CA puts it in the chain agents pin. */
	pki->ctx = tls_server_ctx(pki->key, pki->cert, pki->ca, err, errlen);
	if (!pki->ctx)
		return -1;
	/* Agents prove their key with A_AUTH, never with a certificate: ask
	 * for none, so no client certificate is sent, verified or trusted. */
	SSL_CTX_set_verify(pki->ctx, SSL_VERIFY_NONE, NULL);
	log_info("agentpki: agent CA pin sha256:%s", pki->pin);
	return 0;
}

void agentpki_free(struct agent_pki *pki)
{
	SSL_CTX_free(pki->ctx);
	free(pki->ca_pem);
	X509_free(pki->cert);
	EVP_PKEY_free(pki->key);
	X509_free(pki->ca);
	EVP_PKEY_free(pki->ca_key);
	memset(pki, 0, sizeof(*pki));
}
