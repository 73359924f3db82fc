-- Distribution points: push servers of their own that relay their
-- agents to this slave (see slave/dps.h). The slave's built-in push
-- server has no row; an endpoint without an assignment belongs to it.

-- Tokens: 'agent' ones enrol agents, 'dp' ones enrol a distribution
-- point that serves group_path and its subgroups ('/' = every group).
ALTER TABLE agent_tokens ADD COLUMN kind text NOT NULL DEFAULT 'agent'
	CHECK (kind IN ('agent', 'dp'));

CREATE TABLE push_servers (
	id bigserial PRIMARY KEY,
	name text NOT NULL UNIQUE,
	group_path text NOT NULL,
	address text NOT NULL,
	port int NOT NULL CHECK (port BETWEEN 1 AND 65535),
	dp_key text NOT NULL,
	enrolled_at timestamptz NOT NULL DEFAULT now(),
	-- Its link to this slave is up (set by the push worker that holds it,
	-- whose pid is link_pid); connections: its agents, reported every few
	-- seconds; assigned: endpoints assigned to it (push_assignments).
	online boolean NOT NULL DEFAULT false,
	link_pid int,
	last_seen timestamptz,
	connections int NOT NULL DEFAULT 0,
	assigned int NOT NULL DEFAULT 0,
	revoked boolean NOT NULL DEFAULT false
);

-- Not replicated and not stamped: which push server an endpoint uses is
-- this slave's business, and it changes when push servers come and go.
CREATE TABLE push_assignments (
	endpoint_id bigint PRIMARY KEY REFERENCES endpoints (id) ON DELETE CASCADE,
	server_id bigint NOT NULL REFERENCES push_servers (id) ON DELETE CASCADE
);
CREATE INDEX push_assignments_server ON push_assignments (server_id);

-- push_servers.assigned follows push_assignments row by row, whatever
-- removes an assignment (a move, a revoked or deleted endpoint, a removed
-- point), so the least-loaded choice never reads a drifted count.
CREATE FUNCTION push_assignments_count() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('DELETE', 'UPDATE') THEN
		UPDATE push_servers SET assigned = assigned - 1 WHERE id = OLD.server_id;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		UPDATE push_servers SET assigned = assigned + 1 WHERE id = NEW.server_id;
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER push_assignments_count
	AFTER INSERT OR DELETE OR UPDATE OF server_id ON push_assignments
	FOR EACH ROW EXECUTE FUNCTION push_assignments_count();

-- Push servers learn that distribution points exist (or no longer do)
-- from this notification, not by asking every few seconds.
CREATE FUNCTION push_servers_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('strata_push_servers', '');
	RETURN NULL;
END $$;
CREATE TRIGGER push_servers_notify AFTER INSERT OR DELETE OR UPDATE OF revoked ON push_servers
	FOR EACH STATEMENT EXECUTE FUNCTION push_servers_notify();
