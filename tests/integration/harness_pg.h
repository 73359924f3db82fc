/*
 * harness_pg: databases for integration tests on the throwaway cluster
 * that scripts/test.sh starts (STRATA_TEST_PGHOST, STRATA_TEST_PGPORT).
 *
 * Every test creates its own database so suites can run in parallel and
 * never see each other's rows. Strings returned here are malloc'd; the
 * caller frees them.
 */
#ifndef STRATA_HARNESS_PG_H
#define STRATA_HARNESS_PG_H

/* 0 when the cluster is configured; otherwise says why on stderr and returns -1. */
int hpg_require(void);
/* "host=... port=... user=postgres dbname=<dbname>". */
char *hpg_conninfo(const char *dbname);
/* Creates an empty database named prefix_<pid>_<n>; NULL (after a message) on failure. */
char *hpg_create_db(const char *prefix);
/* Drops it, disconnecting whoever is still connected. */
void hpg_drop_db(const char *name);

/*
 * A database on another cluster than the test's (a suite that restarts
 * PostgreSQL starts clusters of its own): from now on hpg_conninfo and
 * hpg_drop_db name host and port for it. host is copied.
 */
int hpg_place(const char *dbname, const char *host, int port);

#endif
