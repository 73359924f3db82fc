#include "lictool.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "licence.h"
#include "tls.h"

static const char *str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

int lictool_keygen(json_t *args, FILE *out, char *err, size_t errlen)
{
	const char *dir = str(args, "out");
	char kpath[PATH_MAX], ppath[PATH_MAX];
	struct stat st;
	if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "--out %s: not a directory", dir ? dir : "(none)");
		return -1;
	}
	snprintf(kpath, sizeof(kpath), "%s/licence.key", dir);
	snprintf(ppath, sizeof(ppath), "%s/licence.pub", dir);
	if (access(kpath, F_OK) == 0) {
		snprintf(err, errlen, "%s exists; not overwriting a signing key", kpath);
		return -1;
	}
	EVP_PKEY *key = tls_key_generate(err, errlen);
	if (!key)
		return -1;
	int rc = tls_key_save(key, kpath, err, errlen);
	if (rc == 0)
		rc = licence_pubkey_save(key, ppath, err, errlen);
	EVP_PKEY_free(key);
	if (rc == 0)
		fprintf(out, "signing key: %s\npublic key:  %s\n", kpath, ppath);
	return rc;
}

int lictool_sign(json_t *args, FILE *out, char *err, size_t errlen)
{
	struct licence l = { 0 };
	const char *id = str(args, "id"), *holder = str(args, "holder");
	const char *from = str(args, "valid_from"), *until = str(args, "valid_until");
	const char *keyp = str(args, "key"), *outp = str(args, "out");
	json_t *seats = json_object_get(args, "seats"),
	       *features = json_object_get(args, "features");
	if (!id || !holder || !from || !until || !keyp || !json_is_integer(seats)) {
		snprintf(err, errlen,
			 "license sign needs --key --id --holder --seats "
			 "--valid-from --valid-until");
		return -1;
	}
	if (strlen(id) >= sizeof(l.id) || strlen(holder) >= sizeof(l.holder)) {
		snprintf(err, errlen, "--id is at most %zu and --holder %zu bytes",
			 sizeof(l.id) - 1, sizeof(l.holder) - 1);
		return -1;
	}
	snprintf(l.id, sizeof(l.id), "%s", id);
	snprintf(l.holder, sizeof(l.holder), "%s", holder);
	l.seats = json_integer_value(seats);
	if (licence_parse_time(from, &l.valid_from) != 0 ||
	    licence_parse_time(until, &l.valid_until) != 0) {
		snprintf(err, errlen,
			 "--valid-from and --valid-until must be YYYY-MM-DD or "
			 "YYYY-MM-DDTHH:MM:SSZ");
		return -1;
	}
	if (json_array_size(features) > LICENCE_FEATURES_MAX) {
		snprintf(err, errlen, "at most %d features", LICENCE_FEATURES_MAX);
		return -1;
	}
	size_t i;
	json_t *f;
	json_array_foreach (features, i, f) {
		if (json_string_length(f) >= LICENCE_FEATURE_MAX) {
			snprintf(err, errlen, "feature names are at most %d bytes",
				 LICENCE_FEATURE_MAX - 1);
			return -1;
		}
		snprintf(l.features[i], LICENCE_FEATURE_MAX, "%s", json_string_value(f));
		l.n_features = i + 1;
	}
	EVP_PKEY *key = tls_key_load(keyp, err, errlen);
	if (!key)
		return -1;
	char *text = licence_sign(&l, key, err, errlen);
	EVP_PKEY_free(key);
	if (!text)
		return -1;
	int rc = 0;
	if (outp) {
		FILE *o = fopen(outp, "we");
		if (!o || fputs(text, o) == EOF || fclose(o) != 0) {
			snprintf(err, errlen, "%s: %s", outp, strerror(errno));
			rc = -1;
		}
	} else if (fputs(text, out) == EOF) {
		snprintf(err, errlen, "cannot write the licence");
		rc = -1;
	}
	free(text);
	return rc;
}

int lictool_read_document(json_t *args, char *err, size_t errlen)
{
	const char *path = str(args, "file");
	FILE *f = path ? fopen(path, "re") : NULL;
	if (!f) {
		snprintf(err, errlen, "%s: %s", path ? path : "(no file)", strerror(errno));
		return -1;
	}
	char *buf = malloc(LICENCE_TEXT_MAX + 1);
	size_t n = buf ? fread(buf, 1, LICENCE_TEXT_MAX + 1, f) : 0;
	int bad = ferror(f);
	fclose(f);
	if (!buf || bad || n > LICENCE_TEXT_MAX) {
		snprintf(err, errlen, "%s: %s", path,
			 !buf  ? "out of memory"
			 : bad ? "read error"
			       : "larger than a licence file");
		free(buf);
		return -1;
	}
	json_t *doc = json_stringn(buf, n);
	free(buf);
	if (!doc) {
		snprintf(err, errlen, "%s: not UTF-8 text", path);
		return -1;
	}
	json_object_set_new(args, "document", doc);
	json_object_del(args, "file");
	return 0;
}
