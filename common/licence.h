/*
 * licence: signed licence documents (parse, verify, sign).
 *
 * A licence file is one JSON object
 *   {"payload": "<base64 of the licence JSON>", "signature": "<hex>"}
 * where the signature is Ed25519 over exactly the bytes the base64 payload
 * decodes to, so nothing is ever canonicalised. The payload is
 *   {"id": "...", "holder": "...", "seats": N,
 *    "valid_from": "YYYY-MM-DDTHH:MM:SSZ", "valid_until": "...",
 *    "features": ["...", ...]}
 * Pure functions apart from the key files; every failure writes a reason
 * naming what is wrong into err.
 */
#ifndef STRATA_LICENCE_H
#define STRATA_LICENCE_H

#include <stddef.h>
#include <time.h>

#include <openssl/evp.h>

#define LICENCE_TEXT_MAX     65536 /* bytes of a licence file */
#define LICENCE_ID_MAX	     128   /* bytes of the id, with the NUL */
#define LICENCE_HOLDER_MAX   256   /* bytes of the holder, with the NUL */
#define LICENCE_FEATURES_MAX 32	   /* features per licence */
#define LICENCE_FEATURE_MAX  64	   /* bytes of one feature, with the NUL */
#define LICENCE_SEATS_MAX    10000000

struct licence {
	char id[LICENCE_ID_MAX];
	char holder[LICENCE_HOLDER_MAX];
	long long seats; /* 1..LICENCE_SEATS_MAX */
	time_t valid_from;
	time_t valid_until; /* after valid_from */
	size_t n_features;
	char features[LICENCE_FEATURES_MAX][LICENCE_FEATURE_MAX];
};

#define LICENCE_WUR __attribute__((warn_unused_result))

/*
 * Parses the file text (len bytes, need not be NUL-terminated), checks
 * the signature against pub, then the payload's fields. 0 with *out
 * filled, or -1. Validity in time is not checked here.
 */
LICENCE_WUR int licence_parse(const char *text, size_t len, EVP_PKEY *pub, struct licence *out,
			      char *err, size_t errlen);

/* 0 when now lies in [valid_from, valid_until); -1 "not valid before ..." or "expired ...". */
LICENCE_WUR int licence_check_time(const struct licence *l, time_t now, char *err, size_t errlen);

/* Checks the fields of l (as licence_parse would); 0 or -1. */
LICENCE_WUR int licence_check_fields(const struct licence *l, char *err, size_t errlen);

/* The licence file text for l signed with key (malloc'd, ends in a newline), or NULL. */
LICENCE_WUR char *licence_sign(const struct licence *l, EVP_PKEY *key, char *err, size_t errlen);

/* "YYYY-MM-DD" (00:00:00 UTC) or "YYYY-MM-DDTHH:MM:SSZ" to a time; 0 or -1. */
LICENCE_WUR int licence_parse_time(const char *s, time_t *out);
/* The payload form, "YYYY-MM-DDTHH:MM:SSZ", into out (at least 21 bytes). */
void licence_format_time(time_t t, char *out, size_t outlen);

/* Ed25519 public key as PEM (SubjectPublicKeyInfo) files. */
LICENCE_WUR EVP_PKEY *licence_pubkey_load(const char *path, char *err, size_t errlen);
LICENCE_WUR int licence_pubkey_save(EVP_PKEY *key, const char *path, char *err, size_t errlen);

#endif
