-- Rows replicated from slaves. Every table is keyed by (slave_id, id) and
-- partitioned by slave: a first sync copies straight into an empty
-- partition, unregistering a slave drops its partitions, and the keys let
-- the tables be distributed by slave_id when one node no longer holds them.
--
-- slave_id defaults to the session setting strata.slave_id, which the sync
-- server sets (as a parameter) from the authenticated certificate before
-- it copies a batch: the COPY column list never contains slave_id, so the
-- id can never come from the payload.

CREATE TABLE groups (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	id bigint NOT NULL,
	parent_id bigint,
	name text NOT NULL,
	path text NOT NULL,
	created_at timestamptz NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, id)
) PARTITION BY LIST (slave_id);

CREATE TABLE endpoints (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	id bigint NOT NULL,
	uid text NOT NULL,
	hostname text NOT NULL,
	group_id bigint,
	os text NOT NULL,
	agent_version text NOT NULL,
	address text NOT NULL,
	mode text NOT NULL,
	status text NOT NULL,
	last_seen timestamptz,
	enrolled_at timestamptz NOT NULL,
	policy_version bigint NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, id)
) PARTITION BY LIST (slave_id);

CREATE TABLE events (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	id bigint NOT NULL,
	endpoint_id bigint,
	kind text NOT NULL,
	severity text NOT NULL,
	occurred_at timestamptz NOT NULL,
	details jsonb NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, id)
) PARTITION BY LIST (slave_id);

CREATE TABLE slave_policies (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	id bigint NOT NULL,
	name text NOT NULL,
	settings jsonb NOT NULL,
	updated_at timestamptz NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, id)
) PARTITION BY LIST (slave_id);

CREATE TABLE slave_tasks (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	id bigint NOT NULL,
	name text NOT NULL,
	kind text NOT NULL,
	params jsonb NOT NULL,
	updated_at timestamptz NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, id)
) PARTITION BY LIST (slave_id);

CREATE TABLE task_results (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int,
	task_id bigint NOT NULL,
	endpoint_id bigint NOT NULL,
	status text NOT NULL,
	result jsonb NOT NULL,
	updated_at timestamptz NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id, task_id, endpoint_id)
) PARTITION BY LIST (slave_id);

-- Partition names are derived from the integer slave id only.
CREATE FUNCTION strata_partitions_create(sid int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['groups', 'endpoints', 'events', 'slave_policies',
				 'slave_tasks', 'task_results'] LOOP
		EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES IN (%s)',
			       t || '_s' || sid, t, sid);
	END LOOP;
END $$;

CREATE FUNCTION strata_partitions_drop(sid int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['groups', 'endpoints', 'events', 'slave_policies',
				 'slave_tasks', 'task_results'] LOOP
		EXECUTE format('DROP TABLE IF EXISTS %I', t || '_s' || sid);
	END LOOP;
END $$;
