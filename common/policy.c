#include "policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

/* The most digests one block_sha256 list may hold. */
#define POLICY_BLOCK_MAX 10000

enum setting_type {
	SET_SECONDS,	/* a JSON integer within [min, max] */
	SET_SHA256_LIST /* an array of 64 lowercase hex digits each */
};

static const struct setting {
	const char *name;
	enum setting_type type;
	long long min, max;
} settings_table[] = {
	{ "heartbeat", SET_SECONDS, POLICY_HEARTBEAT_MIN, POLICY_HEARTBEAT_MAX },
	{ "block_sha256", SET_SHA256_LIST, 0, POLICY_BLOCK_MAX },
};

static const struct setting *setting_find(const char *name)
{
	for (size_t i = 0; i < sizeof(settings_table) / sizeof(settings_table[0]); i++)
		if (strcmp(settings_table[i].name, name) == 0)
			return &settings_table[i];
	return NULL;
}

bool policy_setting_known(const char *name)
{
	return setting_find(name) != NULL;
}

static bool sha256_hex(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return false;
	return true;
}

int policy_setting_check(const char *name, json_t *value, char *err, size_t errlen)
{
	const struct setting *s = setting_find(name);
	if (!s) {
		snprintf(err, errlen, "unknown setting '%s'", name);
		return -1;
	}
	switch (s->type) {
	case SET_SECONDS:
		/* A JSON real such as 30.0 is refused too: the value is whole seconds. */
		if (!json_is_integer(value) || json_integer_value(value) < s->min ||
		    json_integer_value(value) > s->max) {
			snprintf(
			    err, errlen,
			    "setting '%s': must be a whole number of seconds from %lld to %lld",
			    name, s->min, s->max);
			return -1;
		}
		return 0;
	case SET_SHA256_LIST: {
		size_t i;
		json_t *v;
		if (!json_is_array(value) || json_array_size(value) > (size_t)s->max) {
			snprintf(err, errlen,
				 "setting '%s': must be an array of at most %lld SHA-256 digests",
				 name, s->max);
			return -1;
		}
		json_array_foreach (value, i, v) {
			if (!json_is_string(v) || !sha256_hex(json_string_value(v))) {
				snprintf(err, errlen,
					 "setting '%s': item %zu must be a SHA-256 digest: 64 "
					 "lowercase hex digits",
					 name, i + 1);
				return -1;
			}
		}
		return 0;
	}
	}
	snprintf(err, errlen, "setting '%s': unsupported type", name);
	return -1;
}

int policy_settings_check(json_t *settings, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	if (!json_is_object(settings)) {
		snprintf(err, errlen, "settings must be a JSON object");
		return -1;
	}
	json_object_foreach (settings, k, v) {
		if (policy_setting_check(k, v, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int policy_locks_check(json_t *settings, json_t *locked, char *err, size_t errlen)
{
	size_t i, j;
	json_t *v;
	if (!locked)
		return 0;
	if (!json_is_array(locked)) {
		snprintf(err, errlen, "locked must be a list of setting names");
		return -1;
	}
	json_array_foreach (locked, i, v) {
		const char *name = json_string_value(v);
		if (!name) {
			snprintf(err, errlen, "locked must be a list of setting names");
			return -1;
		}
		if (!policy_setting_known(name)) {
			snprintf(err, errlen, "cannot lock unknown setting '%s'", name);
			return -1;
		}
		if (!json_object_get(settings, name)) {
			snprintf(err, errlen,
				 "cannot lock setting '%s': the policy does not set it", name);
			return -1;
		}
		for (j = 0; j < i; j++)
			if (strcmp(json_string_value(json_array_get(locked, j)), name) == 0) {
				snprintf(err, errlen, "setting '%s' is locked twice", name);
				return -1;
			}
	}
	return 0;
}

static bool is_root(const char *group)
{
	return !group || !*group || strcmp(group, "/") == 0;
}

bool policy_group_covers(const char *group, const char *path)
{
	if (is_root(group))
		return true;
	if (is_root(path))
		return false;
	size_t n = strlen(group);
	return strncmp(group, path, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Levels below the root: the number of components of the path. */
static int depth(const char *group)
{
	int d = 0;
	if (is_root(group))
		return 0;
	for (const char *c = group; *c; c++)
		d += *c == '/';
	return d;
}

static bool is_master(const struct policy_src *p)
{
	return strcmp(p->owner, "local") != 0;
}

static bool locks(const struct policy_src *p, const char *name)
{
	size_t i;
	json_t *v;
	if (!is_master(p) || !json_is_array(p->locked))
		return false;
	json_array_foreach (p->locked, i, v) {
		if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
			return true;
	}
	return false;
}

/* Merge order: shallower level first, then master-owned before local, then id. */
static int merge_cmp(const void *a, const void *b)
{
	const struct policy_src *x = *(const struct policy_src *const *)a;
	const struct policy_src *y = *(const struct policy_src *const *)b;
	int dx = depth(x->group), dy = depth(y->group);
	if (dx != dy)
		return dx < dy ? -1 : 1;
	if (is_master(x) != is_master(y))
		return is_master(x) ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

json_t *policy_effective(const struct policy_src *p, size_t n, const char *path, json_t **blocked)
{
	json_t *eff = json_object();
	const struct policy_src **order = calloc(n ? n : 1, sizeof(*order));
	size_t m = 0;
	if (blocked)
		*blocked = json_array();
	if (!order)
		return eff;
	for (size_t i = 0; i < n; i++)
		if (json_is_object(p[i].settings) && policy_group_covers(p[i].group, path))
			order[m++] = &p[i];
	qsort(order, m, sizeof(*order), merge_cmp);
	for (size_t i = 0; i < m; i++) {
		const struct policy_src *s = order[i];
		const char *k;
		json_t *v;
		json_object_foreach (s->settings, k, v) {
			json_t *cur = json_object_get(eff, k);
			if (cur && json_is_true(json_object_get(cur, "locked"))) {
				if (blocked)
					json_array_append_new(
					    *blocked,
					    json_pack("{s:s, s:s, s:s, s:O, s:O}", "setting", k,
						      "policy", s->name, "owner", s->owner,
						      "locked_by", json_object_get(cur, "policy"),
						      "locked_by_owner",
						      json_object_get(cur, "owner")));
				continue;
			}
			json_object_set_new(eff, k,
					    json_pack("{s:O, s:s, s:s, s:s, s:b}", "value", v,
						      "policy", s->name, "owner", s->owner, "group",
						      is_root(s->group) ? "/" : s->group, "locked",
						      locks(s, k)));
		}
	}
	free(order);
	return eff;
}

json_t *policy_effective_settings(json_t *effective)
{
	json_t *out = json_object(), *v;
	const char *k;
	json_object_foreach (effective, k, v) {
		json_object_set(out, k, json_object_get(v, "value"));
	}
	return out;
}

int64_t policy_effective_version(json_t *effective)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	if (json_object_size(effective) == 0)
		return 0;
	char *text = json_dumps(effective, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return 1;
	int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
	free(text);
	if (!ok || mdlen < 8)
		return 1;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | md[i];
	/* A JSON number every peer reads exactly, never 0 (the empty policy). */
	v &= (UINT64_C(1) << 53) - 1;
	return v ? (int64_t)v : 1;
}

int policy_local_check(const struct policy_src *p, size_t n, const char *group, json_t *settings,
		       char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach (settings, k, v) {
		for (size_t i = 0; i < n; i++) {
			if (!is_master(&p[i]) || !policy_group_covers(p[i].group, group) ||
			    !locks(&p[i], k))
				continue;
			snprintf(err, errlen,
				 "setting '%s' is locked by policy '%s' (%s) at group %s; a local "
				 "policy at %s cannot change it",
				 k, p[i].name, p[i].owner, is_root(p[i].group) ? "/" : p[i].group,
				 is_root(group) ? "/" : group);
			return -1;
		}
	}
	return 0;
}
