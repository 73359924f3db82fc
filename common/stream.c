#include "stream.h"

#include <string.h>

#define SLAVE_RANGE                                                                                \
	" WHERE version > current_setting('strata.from')::bigint"                                  \
	" ORDER BY version LIMIT current_setting('strata.limit')::int"
#define SLAVE_RANGE_LOCAL                                                                          \
	" WHERE owner = 'local' AND version > current_setting('strata.from')::bigint"              \
	" ORDER BY version LIMIT current_setting('strata.limit')::int"

#define GROUP_COLS "id, parent_id, name, path, created_at, version"
#define ENDPOINT_COLS                                                                              \
	"id, uid, hostname, group_id, os, agent_version, address, mode, status, last_seen, "       \
	"enrolled_at, policy_version, policy_target, version"
#define EVENT_COLS "id, endpoint_id, kind, severity, occurred_at, details, version"
#define POLICY_COLS "id, name, settings, updated_at, version"
#define TASK_COLS "id, name, kind, params, updated_at, version"
/* version stays last: the slave reads a batch's watermark from the last field. */
#define RESULT_COLS "task_id, endpoint_id, status, result, updated_at, master_task_id, version"
#define TOMBSTONE_COLS "stream, key, version"
#define LICENCE_COLS                                                                               \
	"licence_id, holder, seats, valid_from, valid_until, features, installed_at, seats_used, " \
	"version"

const char *const stream_master_stage_setup[] = {
	"CREATE TEMP TABLE IF NOT EXISTS stage_groups (LIKE groups INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_endpoints (LIKE endpoints INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_events (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_slave_policies (LIKE slave_policies INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_slave_tasks (LIKE slave_tasks INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_task_results (LIKE task_results INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_slave_licences (LIKE slave_licences INCLUDING DEFAULTS) ON COMMIT DELETE ROWS",
	"CREATE TEMP TABLE IF NOT EXISTS stage_tombstones (stream text NOT NULL, key text NOT NULL, version bigint NOT NULL) ON COMMIT DELETE ROWS",
	NULL,
};

/* The WHERE on DO UPDATE keeps a re-sent older row from overwriting a newer one. */
const struct stream_def stream_defs[] = {
	{
		"groups",
		"COPY (SELECT " GROUP_COLS " FROM groups" SLAVE_RANGE ") TO STDOUT",
		"COPY groups (" GROUP_COLS ") FROM STDIN",
		"COPY stage_groups (" GROUP_COLS ") FROM STDIN",
		"INSERT INTO groups SELECT * FROM stage_groups WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, id) DO UPDATE SET parent_id = EXCLUDED.parent_id, "
		"name = EXCLUDED.name, path = EXCLUDED.path, created_at = EXCLUDED.created_at, "
		"version = EXCLUDED.version WHERE groups.version < EXCLUDED.version",
		false,
	},
	{
		"endpoints",
		"COPY (SELECT " ENDPOINT_COLS " FROM endpoints" SLAVE_RANGE ") TO STDOUT",
		"COPY endpoints (" ENDPOINT_COLS ") FROM STDIN",
		"COPY stage_endpoints (" ENDPOINT_COLS ") FROM STDIN",
		"INSERT INTO endpoints SELECT * FROM stage_endpoints WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, id) DO UPDATE SET uid = EXCLUDED.uid, "
		"hostname = EXCLUDED.hostname, group_id = EXCLUDED.group_id, os = EXCLUDED.os, "
		"agent_version = EXCLUDED.agent_version, address = EXCLUDED.address, "
		"mode = EXCLUDED.mode, status = EXCLUDED.status, last_seen = EXCLUDED.last_seen, "
		"enrolled_at = EXCLUDED.enrolled_at, policy_version = EXCLUDED.policy_version, "
		"policy_target = EXCLUDED.policy_target, "
		"version = EXCLUDED.version WHERE endpoints.version < EXCLUDED.version",
		false,
	},
	{
		"policies",
		"COPY (SELECT " POLICY_COLS " FROM policies" SLAVE_RANGE_LOCAL ") TO STDOUT",
		"COPY slave_policies (" POLICY_COLS ") FROM STDIN",
		"COPY stage_slave_policies (" POLICY_COLS ") FROM STDIN",
		"INSERT INTO slave_policies SELECT * FROM stage_slave_policies WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, id) DO UPDATE SET name = EXCLUDED.name, "
		"settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at, "
		"version = EXCLUDED.version WHERE slave_policies.version < EXCLUDED.version",
		false,
	},
	{
		"tasks",
		"COPY (SELECT " TASK_COLS " FROM tasks" SLAVE_RANGE_LOCAL ") TO STDOUT",
		"COPY slave_tasks (" TASK_COLS ") FROM STDIN",
		"COPY stage_slave_tasks (" TASK_COLS ") FROM STDIN",
		"INSERT INTO slave_tasks SELECT * FROM stage_slave_tasks WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, id) DO UPDATE SET name = EXCLUDED.name, "
		"kind = EXCLUDED.kind, params = EXCLUDED.params, updated_at = EXCLUDED.updated_at, "
		"version = EXCLUDED.version WHERE slave_tasks.version < EXCLUDED.version",
		false,
	},
	{
		"task_results",
		/* A master-owned task's result carries the master's id of the task. */
		"COPY (SELECT r.task_id, r.endpoint_id, r.status, r.result, r.updated_at, t.master_id, "
		"r.version FROM task_results r LEFT JOIN tasks t ON t.id = r.task_id "
		"WHERE r.version > current_setting('strata.from')::bigint "
		"ORDER BY r.version LIMIT current_setting('strata.limit')::int) TO STDOUT",
		"COPY task_results (" RESULT_COLS ") FROM STDIN",
		"COPY stage_task_results (" RESULT_COLS ") FROM STDIN",
		"INSERT INTO task_results SELECT * FROM stage_task_results WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, task_id, endpoint_id) DO UPDATE SET "
		"status = EXCLUDED.status, result = EXCLUDED.result, "
		"updated_at = EXCLUDED.updated_at, version = EXCLUDED.version, "
		"master_task_id = EXCLUDED.master_task_id "
		"WHERE task_results.version < EXCLUDED.version",
		false,
	},
	{
		"events",
		"COPY (SELECT " EVENT_COLS " FROM events" SLAVE_RANGE ") TO STDOUT",
		"COPY events (" EVENT_COLS ") FROM STDIN",
		"COPY stage_events (" EVENT_COLS ") FROM STDIN",
		"INSERT INTO events SELECT * FROM stage_events WHERE slave_id = $1 "
		"ON CONFLICT (slave_id, id) DO UPDATE SET endpoint_id = EXCLUDED.endpoint_id, "
		"kind = EXCLUDED.kind, severity = EXCLUDED.severity, "
		"occurred_at = EXCLUDED.occurred_at, details = EXCLUDED.details, "
		"version = EXCLUDED.version WHERE events.version < EXCLUDED.version",
		true,
	},
	{
		/* One row at most on either side: the installed licence. */
		"licence",
		"COPY (SELECT " LICENCE_COLS " FROM licence" SLAVE_RANGE ") TO STDOUT",
		"COPY slave_licences (" LICENCE_COLS ") FROM STDIN",
		"COPY stage_slave_licences (" LICENCE_COLS ") FROM STDIN",
		"INSERT INTO slave_licences SELECT * FROM stage_slave_licences WHERE slave_id = $1 "
		"ON CONFLICT (slave_id) DO UPDATE SET licence_id = EXCLUDED.licence_id, "
		"holder = EXCLUDED.holder, seats = EXCLUDED.seats, "
		"valid_from = EXCLUDED.valid_from, valid_until = EXCLUDED.valid_until, "
		"features = EXCLUDED.features, installed_at = EXCLUDED.installed_at, "
		"seats_used = EXCLUDED.seats_used, version = EXCLUDED.version "
		"WHERE slave_licences.version < EXCLUDED.version",
		false,
	},
	{
		STREAM_DELETIONS,
		"COPY (SELECT " TOMBSTONE_COLS " FROM repl_tombstones" SLAVE_RANGE ") TO STDOUT",
		NULL,
		"COPY stage_tombstones (" TOMBSTONE_COLS ") FROM STDIN",
		/* One statement per table, in a writable CTE chain; a tombstone
		 * only removes a row older than itself. */
		"WITH t AS (SELECT stream, key, version FROM stage_tombstones), "
		"dg AS (DELETE FROM groups g USING t WHERE t.stream = 'groups' AND g.slave_id = $1 "
		"AND g.id = t.key::bigint AND g.version < t.version RETURNING 1), "
		"de AS (DELETE FROM endpoints e USING t WHERE t.stream = 'endpoints' "
		"AND e.slave_id = $1 AND e.id = t.key::bigint AND e.version < t.version RETURNING 1), "
		"dv AS (DELETE FROM events v USING t WHERE t.stream = 'events' AND v.slave_id = $1 "
		"AND v.id = t.key::bigint AND v.version < t.version RETURNING 1), "
		"dp AS (DELETE FROM slave_policies p USING t WHERE t.stream = 'policies' "
		"AND p.slave_id = $1 AND p.id = t.key::bigint AND p.version < t.version RETURNING 1), "
		"dt AS (DELETE FROM slave_tasks k USING t WHERE t.stream = 'tasks' "
		"AND k.slave_id = $1 AND k.id = t.key::bigint AND k.version < t.version RETURNING 1), "
		"dr AS (DELETE FROM task_results r USING t WHERE t.stream = 'task_results' "
		"AND r.slave_id = $1 AND r.task_id = split_part(t.key, ':', 1)::bigint "
		"AND r.endpoint_id = split_part(t.key, ':', 2)::bigint AND r.version < t.version "
		"RETURNING 1) "
		"SELECT (SELECT count(*) FROM dg) + (SELECT count(*) FROM de) + "
		"(SELECT count(*) FROM dv) + (SELECT count(*) FROM dp) + "
		"(SELECT count(*) FROM dt) + (SELECT count(*) FROM dr)",
		false,
	},
};

const size_t stream_count = sizeof(stream_defs) / sizeof(stream_defs[0]);

const struct stream_def *stream_find(const char *name)
{
	for (size_t i = 0; i < stream_count; i++)
		if (strcmp(stream_defs[i].name, name) == 0)
			return &stream_defs[i];
	return NULL;
}
