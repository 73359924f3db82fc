#include "licence.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#define ED25519_SIG_LEN 64

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int licence_parse_time(const char *s, time_t *out)
{
	struct tm tm = { 0 };
	const char *end;
	size_t n = strlen(s);
	if (n == 10)
		end = strptime(s, "%Y-%m-%d", &tm);
	else if (n == 20 && s[10] == 'T' && s[19] == 'Z')
		end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	else
		return -1;
	if (!end || *end != '\0' || !isdigit((unsigned char)s[0]))
		return -1;
	struct tm check = tm;
	time_t t = timegm(&tm);
	/* timegm normalises 2025-02-30 into March: refuse what it had to move. */
	if (t == (time_t)-1 || tm.tm_mday != check.tm_mday || tm.tm_mon != check.tm_mon ||
	    tm.tm_hour != check.tm_hour || tm.tm_min != check.tm_min || tm.tm_sec != check.tm_sec)
		return -1;
	*out = t;
	return 0;
}

void licence_format_time(time_t t, char *out, size_t outlen)
{
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "?");
}

int licence_check_fields(const struct licence *l, char *err, size_t errlen)
{
	if (l->id[0] == '\0') {
		set_err(err, errlen, "licence field 'id' is empty");
		return -1;
	}
	for (const char *p = l->id; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._:-", *p)) {
			set_err(err, errlen,
				"licence field 'id' may hold only letters, digits and . _ : -");
			return -1;
		}
	if (l->holder[0] == '\0') {
		set_err(err, errlen, "licence field 'holder' is empty");
		return -1;
	}
	if (l->seats < 1 || l->seats > LICENCE_SEATS_MAX) {
		set_err(err, errlen, "licence field 'seats' must be 1..%d, not %lld",
			LICENCE_SEATS_MAX, l->seats);
		return -1;
	}
	if (l->valid_until <= l->valid_from) {
		set_err(err, errlen, "licence field 'valid_until' is not after 'valid_from'");
		return -1;
	}
	for (size_t i = 0; i < l->n_features; i++)
		if (l->features[i][0] == '\0') {
			set_err(err, errlen, "licence field 'features' holds an empty name");
			return -1;
		}
	return 0;
}

int licence_check_time(const struct licence *l, time_t now, char *err, size_t errlen)
{
	char t[32];
	if (now < l->valid_from) {
		licence_format_time(l->valid_from, t, sizeof(t));
		set_err(err, errlen, "licence %s is not valid before %s", l->id, t);
		return -1;
	}
	if (now >= l->valid_until) {
		licence_format_time(l->valid_until, t, sizeof(t));
		set_err(err, errlen, "licence %s expired at %s", l->id, t);
		return -1;
	}
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Strict base64 (RFC 4648, padded); returns the decoded length or -1. */
static long base64_decode(const char *in, size_t len, unsigned char **out)
{
	if (len == 0 || len % 4 != 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		bool pad = c == '=' && i >= len - 2 && (i == len - 1 || in[len - 1] == '=');
		if (!isalnum((unsigned char)c) && c != '+' && c != '/' && !pad)
			return -1;
	}
	unsigned char *buf = malloc(len / 4 * 3 + 1);
	if (!buf)
		return -1;
	int n = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)len);
	if (n < 0) {
		free(buf);
		return -1;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	n -= (in[len - 1] == '=') + (in[len - 2] == '=');
	*out = buf;
	return n;
}

static int get_string(json_t *o, const char *key, char *out, size_t outlen, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v) {
		set_err(err, errlen, "licence field '%s' is missing", key);
		return -1;
	}
	if (!json_is_string(v)) {
		set_err(err, errlen, "licence field '%s' must be a string", key);
		return -1;
	}
	if (json_string_length(v) >= outlen ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		set_err(err, errlen, "licence field '%s' is longer than %zu bytes or holds NUL",
			key, outlen - 1);
		return -1;
	}
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int get_time(json_t *o, const char *key, time_t *out, char *err, size_t errlen)
{
	char s[32];
	if (get_string(o, key, s, sizeof(s), err, errlen) != 0)
		return -1;
	if (licence_parse_time(s, out) != 0) {
		set_err(err, errlen, "licence field '%s' is not a time YYYY-MM-DDTHH:MM:SSZ", key);
		return -1;
	}
	return 0;
}

static int parse_payload(const unsigned char *p, size_t len, struct licence *out, char *err,
			 size_t errlen)
{
	static const char *const known[] = { "id",	    "holder",	"seats", "valid_from",
					     "valid_until", "features", NULL };
	json_error_t je;
	json_t *o = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &je);
	int rc = -1;
	if (!o || !json_is_object(o)) {
		set_err(err, errlen, "licence payload is not a JSON object");
		goto out;
	}
	const char *key;
	json_t *v;
	json_object_foreach (o, key, v) {
		size_t i = 0;
		while (known[i] && strcmp(known[i], key) != 0)
			i++;
		if (!known[i]) {
			set_err(err, errlen, "licence payload has an unknown field '%.64s'", key);
			goto out;
		}
	}
	memset(out, 0, sizeof(*out));
	if (get_string(o, "id", out->id, sizeof(out->id), err, errlen) != 0 ||
	    get_string(o, "holder", out->holder, sizeof(out->holder), err, errlen) != 0)
		goto out;
	v = json_object_get(o, "seats");
	if (!v) {
		set_err(err, errlen, "licence field 'seats' is missing");
		goto out;
	}
	if (!json_is_integer(v)) {
		set_err(err, errlen, "licence field 'seats' must be an integer");
		goto out;
	}
	out->seats = json_integer_value(v);
	if (get_time(o, "valid_from", &out->valid_from, err, errlen) != 0 ||
	    get_time(o, "valid_until", &out->valid_until, err, errlen) != 0)
		goto out;
	v = json_object_get(o, "features");
	if (v && !json_is_array(v)) {
		set_err(err, errlen, "licence field 'features' must be a list of strings");
		goto out;
	}
	if (json_array_size(v) > LICENCE_FEATURES_MAX) {
		set_err(err, errlen, "licence field 'features' has more than %d entries",
			LICENCE_FEATURES_MAX);
		goto out;
	}
	size_t i;
	json_t *f;
	json_array_foreach (v, i, f) {
		if (!json_is_string(f) || json_string_length(f) >= LICENCE_FEATURE_MAX ||
		    strlen(json_string_value(f)) != json_string_length(f)) {
			set_err(err, errlen,
				"licence field 'features' must be a list of strings of at most %d "
				"bytes",
				LICENCE_FEATURE_MAX - 1);
			goto out;
		}
		memcpy(out->features[i], json_string_value(f), json_string_length(f) + 1);
		out->n_features = i + 1;
	}
	rc = licence_check_fields(out, err, errlen);
out:
	json_decref(o);
	return rc;
}

int licence_parse(const char *text, size_t len, EVP_PKEY *pub, struct licence *out, char *err,
		  size_t errlen)
{
	if (len > LICENCE_TEXT_MAX) {
		set_err(err, errlen, "licence file is larger than %d bytes", LICENCE_TEXT_MAX);
		return -1;
	}
	json_error_t je;
	json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	unsigned char *payload = NULL;
	int rc = -1;
	if (!o || !json_is_object(o)) {
		set_err(err, errlen, "licence file is not a JSON object%s%s", o ? "" : ": ",
			o ? "" : je.text);
		goto out;
	}
	json_t *p = json_object_get(o, "payload"), *s = json_object_get(o, "signature");
	if (!json_is_string(p)) {
		set_err(err, errlen, "licence file field 'payload' is %s",
			p ? "not a string" : "missing");
		goto out;
	}
	if (!json_is_string(s)) {
		set_err(err, errlen, "licence file field 'signature' is %s",
			s ? "not a string" : "missing");
		goto out;
	}
	if (json_object_size(o) != 2) {
		set_err(err, errlen,
			"licence file has fields other than 'payload' and 'signature'");
		goto out;
	}
	const char *hex = json_string_value(s);
	unsigned char sig[ED25519_SIG_LEN];
	if (json_string_length(s) != 2 * ED25519_SIG_LEN) {
		set_err(err, errlen, "licence file field 'signature' is not %d hex digits",
			2 * ED25519_SIG_LEN);
		goto out;
	}
	for (size_t i = 0; i < ED25519_SIG_LEN; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			set_err(err, errlen, "licence file field 'signature' is not hex");
			goto out;
		}
		sig[i] = (unsigned char)(hi << 4 | lo);
	}
	long plen = base64_decode(json_string_value(p), json_string_length(p), &payload);
	if (plen < 0) {
		set_err(err, errlen, "licence file field 'payload' is not base64");
		goto out;
	}
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pub) == 1 &&
		 EVP_DigestVerify(md, sig, sizeof(sig), payload, (size_t)plen) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	if (!ok) {
		set_err(err, errlen,
			"licence signature does not verify against the configured public key");
		goto out;
	}
	rc = parse_payload(payload, (size_t)plen, out, err, errlen);
out:
	free(payload);
	json_decref(o);
	return rc;
}

char *licence_sign(const struct licence *l, EVP_PKEY *key, char *err, size_t errlen)
{
	if (licence_check_fields(l, err, errlen) != 0)
		return NULL;
	char from[32], until[32];
	licence_format_time(l->valid_from, from, sizeof(from));
	licence_format_time(l->valid_until, until, sizeof(until));
	json_t *features = json_array();
	for (size_t i = 0; features && i < l->n_features; i++)
		json_array_append_new(features, json_string(l->features[i]));
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", l->id, "holder", l->holder,
			      "seats", (json_int_t)l->seats, "valid_from", from, "valid_until",
			      until, "features", features);
	char *payload = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	char *text = NULL, *b64 = NULL;
	EVP_MD_CTX *md = NULL;
	if (!payload) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	size_t plen = strlen(payload);
	b64 = malloc((plen + 2) / 3 * 4 + 1);
	unsigned char sig[ED25519_SIG_LEN];
	size_t siglen = sizeof(sig);
	md = EVP_MD_CTX_new();
	if (!b64 || !md) {
		set_err(err, errlen, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)payload, (int)plen);
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, key) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)payload, plen) != 1 ||
	    siglen != ED25519_SIG_LEN) {
		set_err(err, errlen, "cannot sign the licence (is the key Ed25519?)");
		ERR_clear_error();
		goto out;
	}
	char hex[2 * ED25519_SIG_LEN + 1];
	for (size_t i = 0; i < ED25519_SIG_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", sig[i]);
	json_t *doc = json_pack("{s:s, s:s}", "payload", b64, "signature", hex);
	char *body = doc ? json_dumps(doc, JSON_PRESERVE_ORDER | JSON_INDENT(2)) : NULL;
	json_decref(doc);
	if (body && (text = malloc(strlen(body) + 2)) != NULL)
		sprintf(text, "%s\n", body);
	free(body);
	if (!text)
		set_err(err, errlen, "out of memory");
out:
	EVP_MD_CTX_free(md);
	free(b64);
	free(payload);
	return text;
}

EVP_PKEY *licence_pubkey_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		set_err(err, errlen, "licence public key %s: %s", path, strerror(errno));
		return NULL;
	}
	EVP_PKEY *k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	ERR_clear_error();
	if (!k) {
		set_err(err, errlen, "licence public key %s: not a PEM public key", path);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(k);
		set_err(err, errlen, "licence public key %s: not an Ed25519 key", path);
		return NULL;
	}
	return k;
}

int licence_pubkey_save(EVP_PKEY *key, const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!f) {
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int ok = PEM_write_PUBKEY(f, key) == 1;
	if (fclose(f) != 0)
		ok = 0;
	ERR_clear_error();
	if (!ok) {
		set_err(err, errlen, "%s: cannot write the public key", path);
		return -1;
	}
	return 0;
}
