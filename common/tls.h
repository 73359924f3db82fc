/*
 * tls: OpenSSL contexts and the hierarchy's small PKI.
 *
 * The master is the certificate authority. All keys are Ed25519. TLS is
 * 1.3 only. The master's server certificate carries serverAuth and the
 * SANs from its configuration; slave certificates carry clientAuth and
 * CN = slave name, so a slave certificate can never act as the master.
 * Pins are the lowercase hex SHA-256 of a certificate's DER encoding.
 * Every function that can fail returns 0 / -1 (or NULL) and writes the
 * reason to err (OpenSSL's error queue is drained into it).
 */
#ifndef STRATA_TLS_H
#define STRATA_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TLS_PIN_HEX_LEN 64

#define WUR __attribute__((warn_unused_result))

/* Keys and certificates as files. Private keys are written 0600 and
 * refused on load when group- or world-accessible. */
WUR EVP_PKEY *tls_key_generate(char *err, size_t errlen);
WUR int tls_key_save(EVP_PKEY *key, const char *path, char *err, size_t errlen);
WUR EVP_PKEY *tls_key_load(const char *path, char *err, size_t errlen);
WUR int tls_cert_save(X509 *cert, const char *path, char *err, size_t errlen);
WUR X509 *tls_cert_load(const char *path, char *err, size_t errlen);
/* PEM text <-> X509 / X509_REQ. Strings are malloc'd; caller frees. */
char *tls_cert_to_pem(X509 *cert);
WUR X509 *tls_cert_from_pem(const char *pem, char *err, size_t errlen);
char *tls_csr_to_pem(X509_REQ *req);
WUR X509_REQ *tls_csr_from_pem(const char *pem, char *err, size_t errlen);

/* SHA-256 of the DER encoding as 64 hex chars + NUL. */
void tls_cert_pin(X509 *cert, char out[TLS_PIN_HEX_LEN + 1]);
/* Certificate serial as lowercase hex (malloc'd). */
char *tls_cert_serial_hex(X509 *cert);
/* CN of the subject into out; 0 or -1. */
int tls_cert_common_name(X509 *cert, char *out, size_t outlen);

/* Makes a self-signed CA (10 years). */
WUR X509 *tls_ca_create(EVP_PKEY *ca_key, const char *cn, char *err, size_t errlen);
/* Makes a CSR for cn signed by key. */
WUR X509_REQ *tls_csr_create(EVP_PKEY *key, const char *cn, char *err, size_t errlen);
/*
 * Signs a leaf certificate for the CSR's key with a random 128-bit serial.
 * server: serverAuth with SANs from the comma-separated hosts (DNS names
 * or IP addresses); else clientAuth and the CN given (the CSR's own
 * subject is ignored). The CSR's self-signature is checked.
 */
WUR X509 *tls_sign_csr(X509 *ca, EVP_PKEY *ca_key, X509_REQ *req, const char *cn, int server,
		       const char *hosts, int valid_days, char *err, size_t errlen);

/* TLS 1.3 server context with key + cert (+ CA in the chain). When
 * verify_ca is non-NULL, client certificates signed by it are requested
 * (SSL_VERIFY_PEER, not FAIL_IF_NO_PEER_CERT: enrolment comes without one)
 * and verified for clientAuth. */
WUR SSL_CTX *tls_server_ctx(EVP_PKEY *key, X509 *cert, X509 *verify_ca, char *err, size_t errlen);
/*
 * TLS 1.3 client context. With ca: the peer must chain to it and carry
 * serverAuth. With key + cert: presented as client certificate. With
 * neither ca nor pin_hex... (enrolment) use tls_client_ctx_pinned.
 */
WUR SSL_CTX *tls_client_ctx(EVP_PKEY *key, X509 *cert, X509 *ca, char *err, size_t errlen);
/*
 * Enrolment: no CA yet. The handshake accepts any chain; after it, call
 * tls_check_pin() which finds the self-signed CA the server sent in its
 * chain, compares its pin, and verifies the leaf against it (serverAuth).
 * On success *ca_out gets a reference to that CA certificate.
 */
WUR SSL_CTX *tls_client_ctx_pinned(char *err, size_t errlen);
WUR int tls_check_pin(SSL *ssl, const char *pin_hex, X509 **ca_out, char *err, size_t errlen);

/* Peer certificate of an established session (reference owned by the
 * caller: X509_free it), or NULL when none was presented or it failed
 * verification. */
X509 *tls_peer_cert(SSL *ssl);

/* Drains OpenSSL's error queue into err (prefix first). */
void tls_error(char *err, size_t errlen, const char *prefix);

/* nbytes random bytes as 2 * nbytes lowercase hex chars + NUL into out; 0 or -1. */
WUR int tls_random_hex(char *out, size_t nbytes);
/* SHA-256 of data as hex. */
void tls_sha256_hex(const void *data, size_t len, char out[TLS_PIN_HEX_LEN + 1]);

/*
 * Enrolment token: "stk1.<id>.<secret>.<ca-pin>" where id is 8 hex, secret
 * 32 hex, pin 64 hex. tls_token_parse() checks the shape, not the values.
 */
struct enrol_token {
	char id[17];
	char secret[65];
	char pin[TLS_PIN_HEX_LEN + 1];
};
WUR int tls_token_make(const char *ca_pin, struct enrol_token *tok, char *out, size_t outlen);
WUR int tls_token_parse(const char *text, struct enrol_token *tok, char *err, size_t errlen);

#endif
