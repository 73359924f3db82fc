/*
 * policy: the settings a policy may carry (a declarative table with each
 * setting's type and range), the check of a settings object and of its
 * locks, and the effective policy of a group path: the policies on the
 * path from the root down to the group merged level by level, with the
 * locks of master-owned policies holding against everything below them
 * and against every local policy.
 *
 * Pure functions over jansson values; nothing here touches a database.
 */
#ifndef STRATA_POLICY_H
#define STRATA_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* The bounds of the "heartbeat" setting, seconds. */
#define POLICY_HEARTBEAT_MIN 5
#define POLICY_HEARTBEAT_MAX 86400

/* True when name is a setting of the table. */
bool policy_setting_known(const char *name);

/*
 * Checks one setting's value: 0, or -1 with "setting 'NAME': REASON" (or
 * "unknown setting 'NAME'") in err.
 */
__attribute__((warn_unused_result)) int policy_setting_check(const char *name, json_t *value,
							     char *err, size_t errlen);

/* Checks a whole settings object (every member as above): 0 or -1 with err. */
__attribute__((warn_unused_result)) int policy_settings_check(json_t *settings, char *err,
							      size_t errlen);

/*
 * Checks locks: locked is NULL or an array of setting names, each one
 * known, set by settings and named once. 0 or -1 with err.
 */
__attribute__((warn_unused_result)) int policy_locks_check(json_t *settings, json_t *locked,
							   char *err, size_t errlen);

/* One policy as the merge sees it; every pointer is borrowed. */
struct policy_src {
	int64_t id;
	const char *name;
	const char *owner; /* "local" or "master:NAME" */
	const char *group; /* NULL or "/": the root, every endpoint */
	json_t *settings;  /* an object */
	json_t *locked;	   /* NULL or an array of setting names (master-owned only) */
	int64_t version;
};

/* True when a policy of group applies to an endpoint of path (NULL: the root). */
bool policy_group_covers(const char *group, const char *path);

/*
 * The effective policy of an endpoint in group path (NULL or "/": the
 * root). Walks from the root down to path; at each level the
 * master-owned policies of that level, then the local ones, each kind in
 * id order (a later one wins). A deeper level overrides a shallower one,
 * except that a setting locked by a master-owned policy keeps the value
 * of the first lock in that order: nothing after it changes it.
 *
 * Returns a new object {NAME: {"value", "policy", "owner", "group",
 * "locked"}} in setting-name order. When blocked is not NULL it receives
 * a new array of the changes a lock held off:
 * {"setting", "policy", "owner", "locked_by", "locked_by_owner"}.
 */
json_t *policy_effective(const struct policy_src *p, size_t n, const char *path, json_t **blocked);

/* The plain settings {NAME: value} of an effective policy (new reference). */
json_t *policy_effective_settings(json_t *effective);

/*
 * The version of an effective policy: 0 when it is empty, else a number
 * from 1 to 2^53 - 1 derived from its content (values, sources, locks),
 * so it changes exactly when the effective policy does.
 */
int64_t policy_effective_version(json_t *effective);

/*
 * Before a local policy with settings is stored at group: -1 with err
 * naming the setting, the locking policy and its owner when a
 * master-owned policy at group or above locks a setting it sets; else 0.
 */
int policy_local_check(const struct policy_src *p, size_t n, const char *group, json_t *settings,
		       char *err, size_t errlen);

#endif
