/*
 * registry: the master's slaves. Adding a slave issues a one-time
 * enrolment token; enrolment checks the token, signs the slave's CSR and
 * creates its partitions; every later session is authorised by the
 * certificate's serial; removal revokes the certificate and drops (or
 * keeps) the slave's replicated rows.
 */
#ifndef STRATA_MASTER_REGISTRY_H
#define STRATA_MASTER_REGISTRY_H

#include <stdbool.h>

#include <jansson.h>

#include "db.h"
#include "pki.h"

#define REG_WUR __attribute__((warn_unused_result))

struct slave_ref {
	int id;
	char name[64];
};

/* Returns 0 with the token text, or -1 with err. */
REG_WUR int reg_slave_add(struct db *db, const struct master_pki *pki, const char *name, int ttl,
			  char *token, size_t toklen, char *err, size_t errlen);

/*
 * Checks the token and signs the CSR. Returns 0 with *cert_pem (malloc'd),
 * -1 when the request is refused (err is safe to send to the peer), -2 on
 * an internal error (err for the log only).
 */
REG_WUR int reg_enrol(struct db *db, const struct master_pki *pki, const char *token_text,
		      const char *name, const char *csr_pem, const char *peer, char **cert_pem,
		      struct slave_ref *out, char *err, size_t errlen);

/* 0 authorised, -1 refused (err for the peer and the log), -2 internal. */
REG_WUR int reg_authorize(struct db *db, X509 *cert, struct slave_ref *out, char *err,
			  size_t errlen);

/* Revokes; drops the rows unless keep_data. 0 or -1 with err. */
REG_WUR int reg_slave_remove(struct db *db, const char *name, bool keep_data, int *slave_id,
			     char *err, size_t errlen);

/* Table for `slave list`. NULL with err on failure. */
json_t *reg_slave_list(struct db *db, char *err, size_t errlen);

/* Looks up a live slave by name; 0, or -1 with err. */
REG_WUR int reg_find(struct db *db, const char *name, struct slave_ref *out, char *err,
		     size_t errlen);

bool reg_name_valid(const char *name);

#endif
