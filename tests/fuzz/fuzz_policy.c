/*
 * Policy documents as an operator or a master sends them (untrusted):
 * {"settings": {...}, "locked": [...], "group": "/a"} objects, one or an
 * array of several, through the schema, the lock check and the merge for
 * a group path. A merge of checked policies must be stable: the same
 * input gives the same effective version.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_POLICIES 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
	if (!doc)
		return 0;
	json_t *list = json_is_array(doc) ? doc : NULL;
	size_t n = list ? json_array_size(list) : 1;
	struct policy_src p[MAX_POLICIES];
	size_t np = 0;
	for (size_t i = 0; i < n && np < MAX_POLICIES; i++) {
		json_t *o = list ? json_array_get(list, i) : doc;
		json_t *settings = json_object_get(o, "settings");
		json_t *locked = json_object_get(o, "locked");
		if (!json_is_object(settings))
			continue;
		if (policy_settings_check(settings, err, sizeof(err)) != 0)
			continue;
		if (policy_locks_check(settings, locked, err, sizeof(err)) != 0)
			continue;
		const char *group = json_string_value(json_object_get(o, "group"));
		p[np] = (struct policy_src){ .id = (int64_t)i + 1,
					     .name = "p",
					     .owner = i % 2 ? "local" : "master:m",
					     .group = group,
					     .settings = settings,
					     .locked = i % 2 ? NULL : locked,
					     .version = (int64_t)i + 1 };
		np++;
	}
	const char *path = json_string_value(json_object_get(list ? json_array_get(list, 0) : doc,
							     "path"));
	json_t *blocked = NULL;
	json_t *eff = policy_effective(p, np, path, &blocked);
	json_t *again = policy_effective(p, np, path, NULL);
	if (!eff || !again || policy_effective_version(eff) != policy_effective_version(again))
		abort();
	if ((json_object_size(eff) == 0) != (policy_effective_version(eff) == 0))
		abort();
	json_t *plain = policy_effective_settings(eff);
	if (!plain || json_object_size(plain) != json_object_size(eff))
		abort();
	/* Every effective setting passes the schema. */
	if (policy_settings_check(plain, err, sizeof(err)) != 0)
		abort();
	(void)policy_local_check(p, np, path, json_object_get(doc, "settings"), err, sizeof(err));
	json_decref(plain);
	json_decref(blocked);
	json_decref(eff);
	json_decref(again);
	json_decref(doc);
	return 0;
}
