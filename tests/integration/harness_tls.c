#include "harness_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#define HT_TIMEOUT_S 20

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = HT_TIMEOUT_S };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

SSL *ht_connect(int port, const char *key, const char *cert)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	int fd = -1;
	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (key && cert &&
	    (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
		fprintf(stderr, "harness_tls: cannot load %s / %s\n", cert, key);
		goto fail;
	}
	fd = tcp_connect(port);
	if (fd < 0)
		goto fail;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1) {
		fprintf(stderr, "harness_tls: TLS handshake with port %d failed\n", port);
		ERR_print_errors_fp(stderr);
		goto fail;
	}
	SSL_CTX_free(ctx); /* the SSL holds its own reference */
	return ssl;
fail:
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	return NULL;
}

void ht_close(SSL *ssl)
{
	if (!ssl)
		return;
	int fd = SSL_get_fd(ssl);
	SSL_free(ssl);
	if (fd >= 0)
		close(fd);
}

int ht_write(SSL *ssl, const void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		int n = SSL_write(ssl, (const char *)buf + done, (int)(len - done));
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int ht_send(SSL *ssl, uint16_t type, const void *payload, size_t len)
{
	uint8_t hdr[6];
	uint32_t l = (uint32_t)len;
	hdr[0] = (uint8_t)(l >> 24);
	hdr[1] = (uint8_t)(l >> 16);
	hdr[2] = (uint8_t)(l >> 8);
	hdr[3] = (uint8_t)l;
	hdr[4] = (uint8_t)(type >> 8);
	hdr[5] = (uint8_t)type;
	/* One write, one TLS record: a header sent alone waits for a delayed ACK (Nagle). */
	uint8_t *buf = malloc(sizeof(hdr) + len);
	if (!buf)
		return -1;
	memcpy(buf, hdr, sizeof(hdr));
	if (len)
		memcpy(buf + sizeof(hdr), payload, len);
	int rc = ht_write(ssl, buf, sizeof(hdr) + len);
	free(buf);
	return rc;
}

int ht_send_str(SSL *ssl, uint16_t type, const char *payload)
{
	return ht_send(ssl, type, payload, strlen(payload));
}

/* -1: closed or failed; -2: nothing came within the receive timeout. */
static int read_full(SSL *ssl, void *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		errno = 0;
		int n = SSL_read(ssl, (char *)buf + done, (int)(len - done));
		if (n <= 0) {
			int e = SSL_get_error(ssl, n);
			if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
				return -2;
			if (e == SSL_ERROR_WANT_READ)
				return -2;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int ht_recv(SSL *ssl, uint16_t *type, char **payload, size_t *len)
{
	uint8_t hdr[6];
	*payload = NULL;
	int rc = read_full(ssl, hdr, sizeof(hdr));
	if (rc != 0)
		return rc;
	uint32_t l =
		(uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	*type = (uint16_t)(hdr[4] << 8 | hdr[5]);
	char *p = malloc((size_t)l + 1);
	rc = p ? read_full(ssl, p, l) : -1;
	if (rc != 0) {
		free(p);
		return rc;
	}
	p[l] = '\0';
	*payload = p;
	*len = l;
	return 0;
}

bool ht_wait_closed(SSL *ssl, bool *saw_error)
{
	uint16_t type;
	char *payload;
	size_t len;
	if (saw_error)
		*saw_error = false;
	int rc;
	while ((rc = ht_recv(ssl, &type, &payload, &len)) == 0) {
		if (type == 1 && saw_error)
			*saw_error = true;
		free(payload);
	}
	return rc == -1; /* a receive timeout is not a close */
}

bool ht_plain_closed_after(int port, const void *buf, size_t len)
{
	char junk[512];
	ssize_t n;
	int fd = tcp_connect(port);
	if (fd < 0)
		return false;
	if (write(fd, buf, len) != (ssize_t)len) {
		close(fd);
		return false;
	}
	/* The server may answer with a TLS alert before it closes: drain it. */
	while ((n = read(fd, junk, sizeof(junk))) > 0)
		;
	bool closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
	close(fd);
	return closed;
}
