#include "licstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dbjson.h"
#include "licence.h"
#include "log.h"

json_t *licstore_install(struct db *db, const char *pubkey_path, json_t *args, char *err,
			 size_t errlen)
{
	json_t *d = json_object_get(args, "document");
	if (!json_is_string(d)) {
		snprintf(err, errlen, "license install needs the licence file's text (document)");
		return NULL;
	}
	if (!pubkey_path || !pubkey_path[0]) {
		snprintf(err, errlen,
			 "no licence public key is configured (<licence public-key=\"FILE\"/>)");
		return NULL;
	}
	char why[512];
	EVP_PKEY *pub = licence_pubkey_load(pubkey_path, why, sizeof(why));
	if (!pub) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	struct licence l;
	int rc =
	    licence_parse(json_string_value(d), json_string_length(d), pub, &l, why, sizeof(why));
	EVP_PKEY_free(pub);
	if (rc == 0)
		rc = licence_check_time(&l, time(NULL), why, sizeof(why));
	if (rc != 0) {
		snprintf(err, errlen, "licence refused, the installed one stays: %s", why);
		log_warnx("licence: install refused: %s", why);
		return NULL;
	}
	char from[32], until[32], seats[24];
	licence_format_time(l.valid_from, from, sizeof(from));
	licence_format_time(l.valid_until, until, sizeof(until));
	snprintf(seats, sizeof(seats), "%lld", l.seats);
	json_t *f = json_array();
	for (size_t i = 0; f && i < l.n_features; i++)
		json_array_append_new(f, json_string(l.features[i]));
	char *features = f ? json_dumps(f, JSON_COMPACT) : NULL;
	json_decref(f);
	if (!features) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	const char *p[] = { l.id, l.holder, seats, from, until, features, json_string_value(d) };
	/* repl_lock() first: the row and any threshold event are replicated writes. */
	int dbrc = db_begin(db, err, errlen);
	if (dbrc == 0)
		dbrc = db_exec(db, "SELECT repl_lock()", 0, NULL, err, errlen);
	/* UPDATE, then INSERT when there was no row: an INSERT ... ON CONFLICT would
	 * fire the BEFORE INSERT trigger (and its threshold events) before it
	 * turned into an update. repl_lock() keeps two installs from racing. */
	char updated[8] = "";
	if (dbrc == 0)
		dbrc =
		    db_query_value(db,
				   "WITH u AS (UPDATE licence SET licence_id = $1, holder = $2, "
				   "seats = $3::bigint, valid_from = $4::timestamptz, "
				   "valid_until = $5::timestamptz, features = $6::jsonb, "
				   "document = $7, seats_used = (SELECT used FROM agent_seats), "
				   "installed_at = now() RETURNING 1) SELECT count(*)::text FROM u",
				   7, p, updated, sizeof(updated), err, errlen);
	if (dbrc == 0 && strcmp(updated, "0") == 0)
		dbrc = db_exec(db,
			       "INSERT INTO licence (licence_id, holder, seats, valid_from, "
			       "valid_until, features, document, seats_used) VALUES ($1, $2, "
			       "$3::bigint, $4::timestamptz, $5::timestamptz, $6::jsonb, $7, "
			       "(SELECT used FROM agent_seats))",
			       7, p, err, errlen);
	if (dbrc == 0)
		dbrc = db_commit(db, err, errlen);
	free(features);
	if (dbrc != 0) {
		db_rollback(db);
		return NULL;
	}
	log_notice("licence: %s for %s installed: %lld seats, valid until %s", l.id, l.holder,
		   l.seats, until);
	return licstore_show(db, 0, err, errlen);
}

json_t *licstore_show(struct db *db, int cfg_seats, char *err, size_t errlen)
{
	char cs[24];
	snprintf(cs, sizeof(cs), "%d", cfg_seats);
	const char *p[] = { cs };
	/* Without a licence the <licence seats> setting is the limit. */
	return dbjson_query(
	    db,
	    "SELECT coalesce(l.licence_id, '(none)') AS licence, l.holder, "
	    "coalesce(l.seats, $1::bigint) AS seats, s.used AS seats_used, "
	    "to_char(l.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS "
	    "valid_from, "
	    "to_char(l.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS "
	    "valid_until, "
	    "CASE WHEN l.one IS NULL THEN NULL WHEN l.valid_until <= now() THEN 'expired' "
	    "ELSE 'valid' END AS state, "
	    "CASE WHEN l.one IS NOT NULL THEN array_to_string(ARRAY(SELECT "
	    "jsonb_array_elements_text(l.features)), ',') END AS features "
	    "FROM agent_seats s LEFT JOIN licence l ON true",
	    1, p, err, errlen);
}
