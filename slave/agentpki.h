/*
 * agentpki: the slave's own certificate authority for its agents and the
 * push server's certificate, in the data directory (agent-ca.key,
 * agent-ca.crt, push.key, push.crt, push.hosts), created on first start.
 * The agent CA is separate from the hierarchy's CA: agents trust only
 * their slave, pinned by the agent token. Agents present no client
 * certificate; they prove a registered key instead (agentproto.h).
 */
#ifndef STRATA_SLAVE_AGENTPKI_H
#define STRATA_SLAVE_AGENTPKI_H

#include <openssl/ssl.h>

#include "tls.h"

struct agent_pki {
	EVP_PKEY *ca_key;
	X509 *ca;
	EVP_PKEY *key;
	X509 *cert;
	char *ca_pem;		       /* the CA certificate sent in A_ENROL_OK */
	char pin[TLS_PIN_HEX_LEN + 1]; /* SHA-256 of the CA certificate, in agent tokens */
	SSL_CTX *ctx;		       /* TLS 1.3 server, CA in the chain */
};

__attribute__((warn_unused_result)) int agentpki_init(struct agent_pki *pki,
						      const char *data_dir, const char *name,
						      const char *hosts, char *err, size_t errlen);
void agentpki_free(struct agent_pki *pki);

#endif
