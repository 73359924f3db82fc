#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dbjson.h"
#include "log.h"

#define SLAVE_CERT_DAYS 3650

bool reg_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int reg_slave_add(struct db *db, const struct master_pki *pki, const char *name, int ttl,
		  char *token, size_t toklen, char *err, size_t errlen)
{
	struct enrol_token tok;
	char secret_hash[TLS_PIN_HEX_LEN + 1], ttl_s[16], state[32];
	if (!reg_name_valid(name)) {
		snprintf(err, errlen,
			 "invalid slave name '%s': use 1 to 63 letters, digits, '.', '_' or '-'",
			 name);
		return -1;
	}
	if (tls_token_make(pki->pin, &tok, token, toklen) != 0) {
		snprintf(err, errlen, "cannot make a token");
		return -1;
	}
	tls_sha256_hex(tok.secret, strlen(tok.secret), secret_hash);
	snprintf(ttl_s, sizeof(ttl_s), "%d", ttl);

	if (db_begin(db, err, errlen) != 0)
		return -1;
	const char *p1[] = { name };
	int rc = db_query_value(db,
				"SELECT state FROM slaves WHERE name = $1 AND state <> 'unregistered' "
				"FOR UPDATE",
				1, p1, state, sizeof(state), err, errlen);
	if (rc < 0)
		goto fail;
	if (rc == 0 && strcmp(state, "pending") != 0) {
		snprintf(err, errlen,
			 "slave '%s' is already registered (state %s); remove it first with "
			 "'strata-ctl slave remove %s'",
			 name, state, name);
		goto fail;
	}
	if (rc == 1 && db_exec(db, "INSERT INTO slaves (name) VALUES ($1)", 1, p1, err, errlen) != 0)
		goto fail;
	/* A new token for a pending slave replaces its unused ones. */
	if (db_exec(db,
		    "DELETE FROM enrol_tokens t USING slaves s WHERE t.slave_id = s.id "
		    "AND s.name = $1 AND s.state = 'pending' AND t.used_at IS NULL",
		    1, p1, err, errlen) != 0)
		goto fail;
	const char *p2[] = { tok.id, name, secret_hash, ttl_s };
	if (db_exec(db,
		    "INSERT INTO enrol_tokens (id, slave_id, secret_sha256, expires_at) "
		    "SELECT $1, id, $3, now() + make_interval(secs => $4::int) FROM slaves "
		    "WHERE name = $2 AND state = 'pending'",
		    4, p2, err, errlen) != 0)
		goto fail;
	if (db_commit(db, err, errlen) != 0)
		return -1;
	log_notice("registry: enrolment token %s issued for slave '%s' (valid %d s)", tok.id, name,
		   ttl);
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int reg_enrol(struct db *db, const struct master_pki *pki, const char *token_text,
	      const char *name, const char *csr_pem, const char *peer, char **cert_pem,
	      struct slave_ref *out, char *err, size_t errlen)
{
	struct enrol_token tok;
	char hash[TLS_PIN_HEX_LEN + 1], dberr[512];
	PGresult *res = NULL;
	X509_REQ *req = NULL;
	X509 *cert = NULL;
	int rc = -1;

	*cert_pem = NULL;
	if (tls_token_parse(token_text, &tok, err, errlen) != 0)
		return -1;
	if (strcmp(tok.pin, pki->pin) != 0) {
		snprintf(err, errlen, "token was not issued by this master (CA pin differs)");
		return -1;
	}
	if (db_begin(db, dberr, sizeof(dberr)) != 0)
		goto internal;
	const char *p[] = { tok.id };
	res = db_query(db,
		       "SELECT t.secret_sha256, t.expires_at < now(), t.used_at IS NOT NULL, "
		       "s.id, s.name, s.state, t.expires_at::text, t.used_at::text "
		       "FROM enrol_tokens t JOIN slaves s ON s.id = t.slave_id "
		       "WHERE t.id = $1 FOR UPDATE OF t, s",
		       1, p, dberr, sizeof(dberr));
	if (!res)
		goto internal;
	tls_sha256_hex(tok.secret, strlen(tok.secret), hash);
	if (PQntuples(res) != 1 ||
	    CRYPTO_memcmp(hash, PQgetvalue(res, 0, 0), TLS_PIN_HEX_LEN) != 0) {
		snprintf(err, errlen, "unknown enrolment token");
		goto refused;
	}
	if (PQgetvalue(res, 0, 2)[0] == 't') {
		snprintf(err, errlen, "enrolment token was already used at %s",
			 PQgetvalue(res, 0, 7));
		goto refused;
	}
	if (PQgetvalue(res, 0, 1)[0] == 't') {
		snprintf(err, errlen, "enrolment token expired at %s", PQgetvalue(res, 0, 6));
		goto refused;
	}
	if (strcmp(PQgetvalue(res, 0, 5), "pending") != 0) {
		snprintf(err, errlen, "slave '%s' is no longer waiting for enrolment",
			 PQgetvalue(res, 0, 4));
		goto refused;
	}
	if (strcmp(PQgetvalue(res, 0, 4), name) != 0) {
		snprintf(err, errlen, "token was issued for slave '%s', not '%s'",
			 PQgetvalue(res, 0, 4), name);
		goto refused;
	}
	out->id = atoi(PQgetvalue(res, 0, 3));
	snprintf(out->name, sizeof(out->name), "%s", name);

	req = tls_csr_from_pem(csr_pem, err, errlen);
	if (!req)
		goto refused;
	cert = tls_sign_csr(pki->ca, pki->ca_key, req, name, 0, NULL, SLAVE_CERT_DAYS, err, errlen);
	if (!cert)
		goto refused;
	char *serial = tls_cert_serial_hex(cert);
	char sid[16];
	snprintf(sid, sizeof(sid), "%d", out->id);
	const char *p2[] = { sid, serial, peer, tok.id };
	int dbrc = db_exec(db,
			   "UPDATE slaves SET state = 'active', cert_serial = $2, address = $3, "
			   "registered_at = now() WHERE id = $1::int",
			   3, p2, dberr, sizeof(dberr));
	if (dbrc == 0)
		dbrc = db_exec(db, "UPDATE enrol_tokens SET used_at = now() WHERE id = $1",
			       1, &p2[3], dberr, sizeof(dberr));
	if (dbrc == 0)
		dbrc = db_exec(db, "SELECT strata_partitions_create($1::int)", 1, p2, dberr,
			       sizeof(dberr));
	if (dbrc == 0)
		dbrc = db_exec(db,
			       "INSERT INTO watermarks (slave_id, stream) SELECT $1::int, "
			       "unnest(ARRAY['groups','endpoints','policies','tasks','task_results',"
			       "'events','licence','deletions']) ON CONFLICT DO NOTHING",
			       1, p2, dberr, sizeof(dberr));
	if (dbrc == 0)
		dbrc = db_commit(db, dberr, sizeof(dberr));
	if (dbrc != 0) {
		free(serial);
		goto internal;
	}
	log_notice("registry: slave '%s' enrolled from %s, certificate serial %s", name, peer,
		   serial);
	free(serial);
	*cert_pem = tls_cert_to_pem(cert);
	rc = 0;
	goto done;
refused:
	db_rollback(db);
	log_warnx("registry: enrolment of '%s' from %s refused: %s", name, peer, err);
	rc = -1;
	goto done;
internal:
	db_rollback(db);
	snprintf(err, errlen, "%s", dberr);
	rc = -2;
done:
	PQclear(res);
	X509_REQ_free(req);
	X509_free(cert);
	return rc;
}

int reg_authorize(struct db *db, X509 *cert, struct slave_ref *out, char *err, size_t errlen)
{
	char *serial = tls_cert_serial_hex(cert);
	char cn[64] = "?";
	(void)tls_cert_common_name(cert, cn, sizeof(cn));
	const char *p[] = { serial };
	int rc = -1;
	PGresult *res = db_query(db, "SELECT id, name FROM slaves WHERE cert_serial = $1 "
				 "AND state <> 'unregistered'",
				 1, p, err, errlen);
	if (!res) {
		rc = -2;
		goto out;
	}
	if (PQntuples(res) == 1) {
		out->id = atoi(PQgetvalue(res, 0, 0));
		snprintf(out->name, sizeof(out->name), "%s", PQgetvalue(res, 0, 1));
		rc = 0;
		goto out;
	}
	PQclear(res);
	res = db_query(db, "SELECT slave_name, revoked_at::text FROM revoked_certs WHERE serial = $1",
		       1, p, err, errlen);
	if (!res) {
		rc = -2;
		goto out;
	}
	if (PQntuples(res) == 1)
		snprintf(err, errlen,
			 "certificate %s of slave '%s' was revoked at %s (slave unregistered)",
			 serial, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
	else
		snprintf(err, errlen, "certificate %s (CN '%s') belongs to no registered slave",
			 serial, cn);
out:
	PQclear(res);
	free(serial);
	return rc;
}

int reg_find(struct db *db, const char *name, struct slave_ref *out, char *err, size_t errlen)
{
	const char *p[] = { name };
	char id[16];
	int rc = db_query_value(db, "SELECT id FROM slaves WHERE name = $1 AND state <> 'unregistered'",
				1, p, id, sizeof(id), err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		snprintf(err, errlen, "no registered slave named '%s'", name);
		return -1;
	}
	out->id = atoi(id);
	snprintf(out->name, sizeof(out->name), "%s", name);
	return 0;
}

int reg_slave_remove(struct db *db, const char *name, bool keep_data, int *slave_id, char *err,
		     size_t errlen)
{
	struct slave_ref ref;
	char sid[16];
	if (db_begin(db, err, errlen) != 0)
		return -1;
	if (reg_find(db, name, &ref, err, errlen) != 0)
		goto fail;
	snprintf(sid, sizeof(sid), "%d", ref.id);
	const char *p[] = { sid };
	if (db_exec(db,
		    "INSERT INTO revoked_certs (serial, slave_name) SELECT cert_serial, name "
		    "FROM slaves WHERE id = $1::int AND cert_serial IS NOT NULL",
		    1, p, err, errlen) != 0)
		goto fail;
	if (db_exec(db,
		    "UPDATE slaves SET state = 'unregistered', cert_serial = NULL, "
		    "unregistered_at = now() WHERE id = $1::int",
		    1, p, err, errlen) != 0)
		goto fail;
	if (db_exec(db, "DELETE FROM enrol_tokens WHERE slave_id = $1::int AND used_at IS NULL", 1,
		    p, err, errlen) != 0)
		goto fail;
	if (!keep_data &&
	    db_exec(db, "SELECT strata_partitions_drop($1::int)", 1, p, err, errlen) != 0)
		goto fail;
	if (!keep_data && db_exec(db, "DELETE FROM slave_licences WHERE slave_id = $1::int", 1, p,
				  err, errlen) != 0)
		goto fail;
	if (db_commit(db, err, errlen) != 0)
		return -1;
	log_notice("registry: slave '%s' unregistered, certificate revoked, replicated rows %s",
		   name, keep_data ? "kept" : "dropped");
	*slave_id = ref.id;
	return 0;
fail:
	db_rollback(db);
	return -1;
}

json_t *reg_slave_list(struct db *db, char *err, size_t errlen)
{
	return dbjson_query(db,
				 "SELECT name, health AS state, address, "
				 "to_char(last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_sync, "
				 "data_age_s, last_error, rows_received, publication_version "
				 "FROM slave_status WHERE state <> 'unregistered' "
				 "OR unregistered_at > now() - interval '7 days' ORDER BY name, id",
				 0, NULL, err, errlen);
}
