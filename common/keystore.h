/*
 * keystore: a certificate authority and a server certificate kept as
 * files in a daemon's data directory, created on first start. Both the
 * master (its hierarchy CA, the sync port's certificate) and a slave (its
 * agent CA, the push port's certificate) keep theirs this way.
 *
 * Files are named from a base: BASE.key, BASE.crt, and for server
 * certificates BASE.hosts, the host names it was issued for, so a change
 * of the configured names re-issues it. On success the caller owns the
 * returned key and certificate.
 */
#ifndef STRATA_KEYSTORE_H
#define STRATA_KEYSTORE_H

#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* Loads DIR/BASE.key + .crt, or makes a CA named cn. 0 loaded, 1 created, -1 with err. */
__attribute__((warn_unused_result)) int keystore_ca(const char *dir, const char *base,
						    const char *cn, EVP_PKEY **key, X509 **cert,
						    char *err, size_t errlen);
/*
 * Loads DIR/BASE.key + .crt when they were issued for hosts, else issues a
 * serverAuth certificate for them signed by the CA (valid_days).
 * 0 loaded, 1 issued, -1 with err.
 */
__attribute__((warn_unused_result)) int keystore_server_cert(const char *dir, const char *base,
							     EVP_PKEY *ca_key, X509 *ca,
							     const char *cn, const char *hosts,
							     int valid_days, EVP_PKEY **key,
							     X509 **cert, char *err, size_t errlen);

#endif
