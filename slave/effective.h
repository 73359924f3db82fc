/*
 * effective: the slave's policies as the merge of common/policy.h sees
 * them, loaded in one statement, and the effective policy of an endpoint
 * (strata-ctl policy show --effective UID).
 */
#ifndef STRATA_SLAVE_EFFECTIVE_H
#define STRATA_SLAVE_EFFECTIVE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"
#include "policy.h"

/* Every policy of the slave; the caller owns it and frees it with effective_free. */
struct effective_set {
	size_t n;
	struct policy_src *p;
	int64_t version, count; /* the policies' highest row version and their number */
};

/*
 * What a caller saw last: the set is checked for stored settings that
 * the schema refuses (rows older than the schema) and those are logged
 * only when the policies changed since. Zero it before the first call.
 */
struct effective_seen {
	bool known;
	int64_t version, count;
};

/*
 * Loads every policy in one statement. A stored setting the schema
 * refuses is dropped from the set, with a warning naming its policy when
 * seen is NULL or the policies changed since seen. 0 or -1 with err.
 */
__attribute__((warn_unused_result)) int effective_load(struct db *db, struct effective_set *set,
						       struct effective_seen *seen, char *err,
						       size_t errlen);
void effective_free(struct effective_set *set);

/* The effective heartbeat of an effective policy, else dflt. */
int effective_heartbeat(json_t *effective, int dflt);

/* policy show --effective UID: a table; NULL with err. */
json_t *effective_show(struct db *db, json_t *args, char *err, size_t errlen);

/*
 * After a download: logs each local (or deeper) policy setting that a
 * master lock now holds off, once per locking policy named in changed
 * (policy names as they arrived). 0 or -1 with err.
 */
int effective_log_locked(struct db *db, json_t *changed, char *err, size_t errlen);

/*
 * Brings every endpoint's policy_target (the effective version it should
 * run) up to date with the policies, and queues an apply_policy for each
 * endpoint whose target moved (one at most while unacknowledged), so a
 * connected agent fetches its new policy at once. The targets of the
 * groups are kept in policy_targets: only the endpoints of a group whose
 * target moved (or that is new there) are visited. *changed gets the
 * number of endpoints whose target moved. 0 or -1 with err.
 */
__attribute__((warn_unused_result)) int effective_targets(struct db *db, long long *changed,
							  char *err, size_t errlen);

#endif
