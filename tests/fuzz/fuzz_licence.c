/*
 * Licence files (untrusted): the first byte picks the mode. 0: the rest
 * is a whole file, checked against a key that signed none of them.
 * 1: the rest is a payload, signed here with the key, so the field checks
 * behind the signature are reached. A licence that parses must satisfy
 * its own field checks.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "licence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static EVP_PKEY *key;

/* {"payload": base64(payload), "signature": hex(Ed25519(payload))}, malloc'd. */
static char *signed_file(const uint8_t *payload, size_t len)
{
	unsigned char sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, payload, len) != 1)
		abort();
	EVP_MD_CTX_free(md);
	char *b64 = malloc(4 * ((len + 2) / 3) + 1);
	char *out = b64 ? malloc(4 * ((len + 2) / 3) + 200) : NULL;
	if (!out)
		abort();
	EVP_EncodeBlock((unsigned char *)b64, payload, (int)len);
	int n = sprintf(out, "{\"payload\": \"%s\", \"signature\": \"", b64);
	for (size_t i = 0; i < siglen; i++)
		n += sprintf(out + n, "%02x", sig[i]);
	sprintf(out + n, "\"}\n");
	free(b64);
	return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct licence l;
	if (!key && !(key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")))
		abort();
	if (size < 1 || size > LICENCE_TEXT_MAX)
		return 0;
	int rc;
	if (data[0] & 1) {
		char *text = signed_file(data + 1, size - 1);
		rc = licence_parse(text, strlen(text), key, &l, err, sizeof(err));
		free(text);
	} else {
		rc = licence_parse((const char *)data + 1, size - 1, key, &l, err, sizeof(err));
	}
	if (rc == 0 && licence_check_fields(&l, err, sizeof(err)) != 0)
		abort();
	return 0;
}
