#include "tasks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fts.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"

void tasks_os_name(char *out, size_t outlen)
{
	struct utsname u;
	char line[512];
	FILE *f = fopen("/etc/os-release", "re");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (strncmp(line, "PRETTY_NAME=", 12) != 0)
				continue;
			char *v = line + 12;
			v[strcspn(v, "\n")] = '\0';
			size_t n = strlen(v);
			if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
				v[n - 1] = '\0';
				v++;
			}
			if (*v) {
				snprintf(out, outlen, "%s", v);
				fclose(f);
				return;
			}
		}
		fclose(f);
	}
	if (uname(&u) == 0)
		snprintf(out, outlen, "%s %s", u.sysname, u.release);
	else
		snprintf(out, outlen, "unknown");
}

static json_t *addresses(void)
{
	struct ifaddrs *ifa, *i;
	json_t *a = json_array();
	if (getifaddrs(&ifa) != 0) {
		log_warn("inventory: getifaddrs");
		return a;
	}
	for (i = ifa; i; i = i->ifa_next) {
		char buf[INET6_ADDRSTRLEN];
		const void *src;
		if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
			continue;
		int fam = i->ifa_addr->sa_family;
		if (fam == AF_INET)
			src = &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr;
		else if (fam == AF_INET6)
			src = &((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr;
		else
			continue;
		if (inet_ntop(fam, src, buf, sizeof(buf)))
			json_array_append_new(a, json_string(buf));
	}
	freeifaddrs(ifa);
	return a;
}

json_t *tasks_inventory(const char *hostname, char *err, size_t errlen)
{
	char host[256] = "", os[256];
	if (hostname && *hostname)
		snprintf(host, sizeof(host), "%s", hostname);
	else if (gethostname(host, sizeof(host) - 1) != 0) {
		snprintf(err, errlen, "gethostname: %s", strerror(errno));
		return NULL;
	}
	tasks_os_name(os, sizeof(os));
	json_t *r = json_pack("{s:s, s:s, s:o, s:s}", "hostname", host, "os", os, "addresses",
			      addresses(), "agent_version", STRATA_VERSION);
	if (!r)
		snprintf(err, errlen, "inventory: out of memory");
	return r;
}

static int sha256_file(const char *path, char out[65], long long *bytes, char *err, size_t errlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	FILE *f = fopen(path, "rbe");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;
	size_t n;
	*bytes = 0;
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		rc = 0;
		while (rc == 0 && (n = fread(buf, 1, sizeof(buf), f)) > 0) {
			*bytes += (long long)n;
			if (EVP_DigestUpdate(ctx, buf, n) != 1)
				rc = -1;
		}
		if (rc == 0 && (ferror(f) || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1))
			rc = -1;
	}
	if (rc == 0) {
		for (unsigned int i = 0; i < mdlen; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 15];
		}
		out[2 * mdlen] = '\0';
	} else {
		snprintf(err, errlen, "%s: cannot read or hash", path);
	}
	EVP_MD_CTX_free(ctx);
	fclose(f);
	return rc;
}

static int blocked(json_t *block, const char *sha)
{
	size_t i;
	json_t *v;
	json_array_foreach (block, i, v) {
		if (json_is_string(v) && strcasecmp(json_string_value(v), sha) == 0)
			return 1;
	}
	return 0;
}

json_t *tasks_scan(const char *path, json_t *block_sha256, json_t **detections, char *err,
		   size_t errlen)
{
	char *roots[] = { (char *)path, NULL };
	long long files = 0, bytes = 0;
	*detections = json_array();
	/* fts rather than nftw: the walk's state stays in locals, not in globals. */
	FTS *fts = fts_open(roots, FTS_PHYSICAL | FTS_NOCHDIR, NULL);
	if (!fts) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	FTSENT *e;
	int failed = 0;
	while (!failed && (e = fts_read(fts))) {
		char sha[65], why[512];
		long long n;
		switch (e->fts_info) {
		case FTS_F:
			if (sha256_file(e->fts_accpath, sha, &n, why, sizeof(why)) != 0) {
				log_warnx("scan: %s", why);
				break;
			}
			files++;
			bytes += n;
			if (block_sha256 && blocked(block_sha256, sha))
				json_array_append_new(
				    *detections,
				    json_pack("{s:s, s:s}", "path", e->fts_path, "sha256", sha));
			break;
		case FTS_NS:
		case FTS_DNR:
		case FTS_ERR:
			/* The root itself missing fails the task; a file vanishing mid-walk does
			 * not. */
			if (e->fts_level == FTS_ROOTLEVEL) {
				snprintf(err, errlen, "%s: %s", path, strerror(e->fts_errno));
				failed = 1;
			} else {
				log_warnx("scan: %s: %s", e->fts_path, strerror(e->fts_errno));
			}
			break;
		default:
			break;
		}
	}
	fts_close(fts);
	if (failed)
		return NULL;
	return json_pack("{s:I, s:I, s:I}", "files", (json_int_t)files, "bytes", (json_int_t)bytes,
			 "detections", (json_int_t)json_array_size(*detections));
}
