/*
 * licstore: the slave's installed licence (the table licence, one row).
 *
 * An install verifies the document against the configured public key and
 * its validity in time before it replaces the row, so a refused document
 * leaves the old licence in force. The seat check of an enrolment reads
 * the row in agents_enrol.
 */
#ifndef STRATA_LICSTORE_H
#define STRATA_LICSTORE_H

#include <stddef.h>

#include <jansson.h>

#include "db.h"

/*
 * "license.install" {document: "<licence file text>"}: verifies with the
 * Ed25519 public key in pubkey_path ("" = none configured) and stores it.
 * A result table on success; NULL with the reason in err.
 */
json_t *licstore_install(struct db *db, const char *pubkey_path, json_t *args, char *err,
			 size_t errlen);

/* "license.show": the installed licence, seats used and expiry; NULL with err on failure. */
json_t *licstore_show(struct db *db, int cfg_seats, char *err, size_t errlen);

#endif
