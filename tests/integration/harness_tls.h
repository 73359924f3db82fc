/*
 * harness_tls: a raw TLS 1.3 client for the sync port, so tests can send
 * frames the real slave never would (malformed, oversized, out of order,
 * replayed). Blocking sockets with a receive timeout; no server
 * verification, because the tests attack the server, not the client.
 */
#ifndef STRATA_HARNESS_TLS_H
#define STRATA_HARNESS_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/*
 * Connects to 127.0.0.1:port and completes the TLS handshake. key and
 * cert (PEM files, both or neither) make it a mutual TLS session; without
 * them the master sees an unauthenticated peer. NULL on failure.
 */
SSL *ht_connect(int port, const char *key, const char *cert);
/* Closes the connection and frees everything. */
void ht_close(SSL *ssl);

/* Writes bytes as they are; 0 when all were written. */
int ht_write(SSL *ssl, const void *buf, size_t len);
/* Writes one frame: 4-byte length, 2-byte type, payload. */
int ht_send(SSL *ssl, uint16_t type, const void *payload, size_t len);
/* Same with a NUL-terminated payload. */
int ht_send_str(SSL *ssl, uint16_t type, const char *payload);

/*
 * Reads one frame. 0 with *payload malloc'd and NUL-terminated (caller
 * frees); -1 when the peer closed or the connection failed; -2 when
 * nothing came for 20 s.
 */
int ht_recv(SSL *ssl, uint16_t *type, char **payload, size_t *len);

/*
 * Reads and discards frames until the peer closes. true when it closed
 * within 20 s; *saw_error (may be NULL) tells whether an ERROR frame came
 * before the close.
 */
bool ht_wait_closed(SSL *ssl, bool *saw_error);

/* Plain TCP: connect, write, and report whether the peer closed (20 s). */
bool ht_plain_closed_after(int port, const void *buf, size_t len);

#endif
