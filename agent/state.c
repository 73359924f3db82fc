#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentproto.h"
#include "tls.h"

int astate_path(const char *dir, const char *name, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s/%s", dir, name);
	return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int astate_prepare_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return -1;
	}
	/* The directory holds the private key: nobody else may even list it. */
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen, "%s is accessible by group or others (mode %04o); chmod 700",
			 dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int astate_enrolled(const char *dir)
{
	char p[4096];
	if (astate_path(dir, "agent.key", p, sizeof(p)) == 0 && access(p, F_OK) == 0)
		return 1;
	return astate_path(dir, "agent.json", p, sizeof(p)) == 0 && access(p, F_OK) == 0;
}

int astate_write_atomic(const char *path, const char *data, size_t len, int mode, char *err,
			size_t errlen)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	size_t off = 0;
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
			close(fd);
			unlink(tmp);
			return -1;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0 || close(fd) != 0) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int write_json(const char *dir, const char *name, json_t *o, char *err, size_t errlen)
{
	char p[4096];
	if (astate_path(dir, name, p, sizeof(p)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	char *s = json_dumps(o, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!s) {
		snprintf(err, errlen, "%s: out of memory", p);
		return -1;
	}
	size_t n = strlen(s);
	s[n] = '\n';
	int rc = astate_write_atomic(p, s, n + 1, 0600, err, errlen);
	free(s);
	return rc;
}

static json_t *read_json(const char *dir, const char *name, char *err, size_t errlen)
{
	char p[4096];
	json_error_t e;
	if (astate_path(dir, name, p, sizeof(p)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return NULL;
	}
	json_t *o = json_load_file(p, JSON_REJECT_DUPLICATES, &e);
	if (!o)
		snprintf(err, errlen, "%s: %s", p, e.text);
	else if (!json_is_object(o)) {
		snprintf(err, errlen, "%s: not a JSON object", p);
		json_decref(o);
		o = NULL;
	}
	return o;
}

int astate_save_identity(const char *dir, const struct astate_identity *id, EVP_PKEY *key,
			 const char *ca_pem, char *err, size_t errlen)
{
	char p[4096];
	if (astate_prepare_dir(dir, err, errlen) != 0)
		return -1;
	if (astate_path(dir, "agent.key", p, sizeof(p)) != 0 ||
	    tls_key_save(key, p, err, errlen) != 0)
		return -1;
	if (astate_path(dir, "ca.crt", p, sizeof(p)) != 0 ||
	    astate_write_atomic(p, ca_pem, strlen(ca_pem), 0644, err, errlen) != 0)
		return -1;
	json_t *o =
	    json_pack("{s:s, s:s, s:i, s:s, s:s}", "agent_id", id->agent_id, "host", id->host,
		      "port", id->port, "mode", id->mode, "hostname", id->hostname);
	/* agent.json last: its presence is what marks the enrolment as complete. */
	int rc = o ? write_json(dir, "agent.json", o, err, errlen) : -1;
	json_decref(o);
	return rc;
}

int astate_load_identity(const char *dir, struct astate_identity *id, EVP_PKEY **key, X509 **ca,
			 char *err, size_t errlen)
{
	char p[4096];
	const char *agent_id, *host, *mode, *hostname;
	json_error_t e;
	*key = NULL;
	*ca = NULL;
	json_t *o = read_json(dir, "agent.json", err, errlen);
	if (!o)
		return -1;
	if (json_unpack_ex(o, &e, 0, "{s:s, s:s, s:i, s:s, s:s}", "agent_id", &agent_id, "host",
			   &host, "port", &id->port, "mode", &mode, "hostname", &hostname) != 0 ||
	    (strcmp(mode, "push") != 0 && strcmp(mode, "poll") != 0)) {
		snprintf(err, errlen, "%s/agent.json: %s", dir,
			 e.text[0] ? e.text : "mode must be push or poll");
		json_decref(o);
		return -1;
	}
	snprintf(id->agent_id, sizeof(id->agent_id), "%s", agent_id);
	snprintf(id->host, sizeof(id->host), "%s", host);
	snprintf(id->mode, sizeof(id->mode), "%s", mode);
	snprintf(id->hostname, sizeof(id->hostname), "%s", hostname);
	json_decref(o);
	if (astate_path(dir, "agent.key", p, sizeof(p)) != 0 ||
	    !(*key = tls_key_load(p, err, errlen)))
		return -1;
	if (astate_path(dir, "ca.crt", p, sizeof(p)) != 0 ||
	    !(*ca = tls_cert_load(p, err, errlen))) {
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}

int astate_save_policy(const char *dir, int64_t version, json_t *settings, char *err, size_t errlen)
{
	json_t *o = json_pack("{s:I, s:O}", "version", (json_int_t)version, "settings", settings);
	int rc = o ? write_json(dir, "policy.json", o, err, errlen) : -1;
	json_decref(o);
	return rc;
}

json_t *astate_load_policy(const char *dir)
{
	char err[512], p[4096];
	if (astate_path(dir, "policy.json", p, sizeof(p)) != 0 || access(p, F_OK) != 0)
		return NULL;
	json_t *o = read_json(dir, "policy.json", err, sizeof(err));
	if (o && (!json_is_integer(json_object_get(o, "version")) ||
		  !json_is_object(json_object_get(o, "settings")))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int64_t astate_policy_version(const char *dir)
{
	json_t *o = astate_load_policy(dir);
	int64_t v = o ? (int64_t)json_integer_value(json_object_get(o, "version")) : -1;
	json_decref(o);
	return v;
}

int astate_save_push(const char *dir, const char *host, int port, char *err, size_t errlen)
{
	json_t *o = json_pack("{s:s, s:i}", "host", host, "port", port);
	int rc = o ? write_json(dir, "push.json", o, err, errlen) : -1;
	if (!o)
		snprintf(err, errlen, "%s/push.json: out of memory", dir);
	json_decref(o);
	return rc;
}

int astate_load_push(const char *dir, char *host, size_t hostlen, int *port, char *err,
		     size_t errlen)
{
	char p[4096];
	const char *h;
	json_error_t e;
	if (astate_path(dir, "push.json", p, sizeof(p)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (access(p, F_OK) != 0)
		return 0;
	json_t *o = read_json(dir, "push.json", err, errlen);
	if (!o)
		return -1;
	int rc = -1;
	if (json_unpack_ex(o, &e, JSON_STRICT, "{s:s, s:i}", "host", &h, "port", port) != 0)
		snprintf(err, errlen, "%s: %s", p, e.text);
	else if (!agentproto_host_ok(h) || strlen(h) >= hostlen)
		snprintf(err, errlen, "%s: host must be a host name or address", p);
	else if (*port < 1 || *port > 65535)
		snprintf(err, errlen, "%s: port must be 1 to 65535", p);
	else
		rc = 1;
	if (rc == 1)
		snprintf(host, hostlen, "%s", h);
	json_decref(o);
	return rc;
}

int astate_forget_push(const char *dir, char *err, size_t errlen)
{
	char p[4096];
	if (astate_path(dir, "push.json", p, sizeof(p)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	if (unlink(p) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		return -1;
	}
	return 0;
}

int astate_next_seq(const char *dir, int64_t *seq, char *err, size_t errlen)
{
	char p[4096], buf[32] = "";
	if (astate_path(dir, "seq", p, sizeof(p)) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	int64_t last = 0;
	FILE *f = fopen(p, "re");
	if (f) {
		if (fgets(buf, sizeof(buf), f))
			last = strtoll(buf, NULL, 10);
		fclose(f);
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		return -1;
	}
	if (last < 0)
		last = 0;
	int n = snprintf(buf, sizeof(buf), "%" PRId64 "\n", last + 1);
	if (astate_write_atomic(p, buf, (size_t)n, 0600, err, errlen) != 0)
		return -1;
	*seq = last + 1;
	return 0;
}

/* The ids stored in tasks.done (at most ASTATE_TASKS_KEPT); their count, -1 on error. */
static int tasks_load(const char *dir, int64_t *ids, char *p, size_t plen, char *err, size_t errlen)
{
	char line[32];
	int n = 0;
	if (astate_path(dir, "tasks.done", p, plen) != 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	FILE *f = fopen(p, "re");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", p, strerror(errno));
		return -1;
	}
	while (n < ASTATE_TASKS_KEPT && fgets(line, sizeof(line), f)) {
		char *end;
		long long v = strtoll(line, &end, 10);
		if (end != line && v > 0)
			ids[n++] = v;
	}
	fclose(f);
	return n;
}

int astate_task_ran(const char *dir, int64_t command_id)
{
	int64_t ids[ASTATE_TASKS_KEPT];
	char p[4096], err[256];
	int n = tasks_load(dir, ids, p, sizeof(p), err, sizeof(err));
	for (int i = 0; i < n; i++)
		if (ids[i] == command_id)
			return 1;
	return 0;
}

int astate_task_record(const char *dir, int64_t command_id, char *err, size_t errlen)
{
	int64_t ids[ASTATE_TASKS_KEPT];
	char p[4096];
	int n = tasks_load(dir, ids, p, sizeof(p), err, errlen);
	if (n < 0)
		return -1;
	/* The oldest ids make room: a command that old has long been acknowledged. */
	int from = n == ASTATE_TASKS_KEPT ? 1 : 0;
	size_t cap = (size_t)(n + 1) * 24, len = 0;
	char *buf = malloc(cap);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int i = from; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%" PRId64 "\n", ids[i]);
	len += (size_t)snprintf(buf + len, cap - len, "%" PRId64 "\n", command_id);
	int rc = astate_write_atomic(p, buf, len, 0600, err, errlen);
	free(buf);
	return rc;
}
