/*
 * migrate: numbered schema files, compiled in (schema/master/NNNN_*.sql,
 * schema/slave/NNNN_*.sql), applied in order. The schema_version table
 * records each applied version with its name and time. Each file runs in
 * its own transaction, under a transaction-scoped advisory lock, so two
 * daemons starting at once never apply a file twice. A database whose
 * version is newer than the binary knows is refused.
 */
#ifndef STRATA_MIGRATE_H
#define STRATA_MIGRATE_H

#include <stddef.h>

struct db;

struct migration {
	int version;
	const char *name;
	const char *sql;
};

/* Terminated by an entry with name == NULL. Generated at build time. */
extern const struct migration schema_master[];
extern const struct migration schema_slave[];

/* Highest version in the list. */
int migrate_latest(const struct migration *list);
/* Applies every missing migration. Returns 0 or -1 with err. */
__attribute__((warn_unused_result)) int migrate_run(struct db *db, const struct migration *list,
						    char *err, size_t errlen);
/* Current version in the database (0 when none); 0 or -1. */
__attribute__((warn_unused_result)) int migrate_current(struct db *db, int *version, char *err,
							size_t errlen);

#endif
