-- The slave's own data. Every table that replicates to the master carries a
-- version stamped by repl_stamp() (see 0001) and leaves a tombstone on
-- delete, so the sync client can ship "everything above the master's
-- watermark" per stream.

CREATE TABLE groups (
	id bigserial PRIMARY KEY,
	parent_id bigint REFERENCES groups (id) ON DELETE RESTRICT,
	name text NOT NULL,
	path text NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0
);

CREATE TABLE endpoints (
	id bigserial PRIMARY KEY,
	uid text NOT NULL UNIQUE,
	hostname text NOT NULL,
	group_id bigint REFERENCES groups (id) ON DELETE SET NULL,
	os text NOT NULL DEFAULT '',
	agent_version text NOT NULL DEFAULT '',
	address text NOT NULL DEFAULT '',
	mode text NOT NULL DEFAULT 'push' CHECK (mode IN ('push', 'poll')),
	status text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline', 'unreachable')),
	last_seen timestamptz,
	enrolled_at timestamptz NOT NULL DEFAULT now(),
	policy_version bigint NOT NULL DEFAULT 0,
	version bigint NOT NULL DEFAULT 0
);

CREATE TABLE events (
	id bigserial PRIMARY KEY,
	endpoint_id bigint,
	kind text NOT NULL,
	severity text NOT NULL DEFAULT 'info'
		CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
	occurred_at timestamptz NOT NULL DEFAULT now(),
	details jsonb NOT NULL DEFAULT '{}',
	version bigint NOT NULL DEFAULT 0
);

-- owner is 'local' or 'master:NAME'. Master-owned rows arrive by download,
-- are read-only here, and are not uploaded (the master has them already).
CREATE TABLE policies (
	id bigserial PRIMARY KEY,
	owner text NOT NULL DEFAULT 'local',
	master_id bigint UNIQUE,
	name text NOT NULL,
	settings jsonb NOT NULL DEFAULT '{}',
	updated_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0,
	UNIQUE (owner, name)
);

CREATE TABLE tasks (
	id bigserial PRIMARY KEY,
	owner text NOT NULL DEFAULT 'local',
	master_id bigint UNIQUE,
	name text NOT NULL,
	kind text NOT NULL,
	params jsonb NOT NULL DEFAULT '{}',
	updated_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0,
	UNIQUE (owner, name)
);

CREATE TABLE task_results (
	task_id bigint NOT NULL,
	endpoint_id bigint NOT NULL,
	status text NOT NULL DEFAULT 'pending'
		CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
	result jsonb NOT NULL DEFAULT '{}',
	updated_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (task_id, endpoint_id)
);

CREATE INDEX groups_version ON groups (version);
CREATE INDEX endpoints_version ON endpoints (version);
CREATE INDEX events_version ON events (version);
CREATE INDEX policies_version ON policies (version);
CREATE INDEX tasks_version ON tasks (version);
CREATE INDEX task_results_version ON task_results (version);

CREATE TRIGGER groups_stamp BEFORE INSERT OR UPDATE ON groups
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();
CREATE TRIGGER endpoints_stamp BEFORE INSERT OR UPDATE ON endpoints
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();
CREATE TRIGGER events_stamp BEFORE INSERT OR UPDATE ON events
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();
CREATE TRIGGER policies_stamp BEFORE INSERT OR UPDATE ON policies
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();
CREATE TRIGGER tasks_stamp BEFORE INSERT OR UPDATE ON tasks
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();
CREATE TRIGGER task_results_stamp BEFORE INSERT OR UPDATE ON task_results
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();

CREATE TRIGGER groups_tombstone AFTER DELETE ON groups
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('groups', 'id');
CREATE TRIGGER endpoints_tombstone AFTER DELETE ON endpoints
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('endpoints', 'id');
CREATE TRIGGER events_tombstone AFTER DELETE ON events
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('events', 'id');
CREATE TRIGGER policies_tombstone AFTER DELETE ON policies
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('policies', 'id');
CREATE TRIGGER tasks_tombstone AFTER DELETE ON tasks
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('tasks', 'id');
CREATE TRIGGER task_results_tombstone AFTER DELETE ON task_results
	FOR EACH ROW EXECUTE FUNCTION repl_tombstone('task_results', 'task_id', 'endpoint_id');

-- Sync client state: one row. registration: none, registered, unregistered.
CREATE TABLE sync_state (
	id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
	registration text NOT NULL DEFAULT 'none'
		CHECK (registration IN ('none', 'registered', 'unregistered')),
	master_host text,
	master_port int,
	master_name text,
	registered_at timestamptz,
	publication_version bigint NOT NULL DEFAULT 0,
	last_attempt timestamptz,
	last_success timestamptz,
	last_error text,
	next_due timestamptz
);
INSERT INTO sync_state DEFAULT VALUES;

CREATE TABLE sync_stream_stats (
	stream text PRIMARY KEY,
	rows_last bigint NOT NULL DEFAULT 0,
	rows_total bigint NOT NULL DEFAULT 0,
	acked_version bigint NOT NULL DEFAULT 0
);

CREATE TABLE sync_history (
	id bigserial PRIMARY KEY,
	started_at timestamptz NOT NULL,
	finished_at timestamptz NOT NULL DEFAULT now(),
	ok boolean NOT NULL,
	error text,
	rows_sent jsonb NOT NULL DEFAULT '{}',
	items_received int NOT NULL DEFAULT 0
);
