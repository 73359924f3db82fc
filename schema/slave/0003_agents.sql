-- The agent channel: enrolment tokens, each endpoint's registered key, and
-- commands that wait in the database until the agent acknowledges them.

CREATE TABLE agent_tokens (
	id text PRIMARY KEY,
	secret_sha256 text NOT NULL,
	group_path text,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	uses int NOT NULL DEFAULT 0,
	max_uses int NOT NULL DEFAULT 1000000
);

-- The agent's Ed25519 public key (hex), proven on every connection by a
-- signature over the TLS session's exported keying material.
ALTER TABLE endpoints ADD COLUMN agent_key text;
ALTER TABLE endpoints ADD COLUMN revoked boolean NOT NULL DEFAULT false;

CREATE TABLE agent_commands (
	id bigserial PRIMARY KEY,
	endpoint_id bigint NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
	kind text NOT NULL CHECK (kind IN ('apply_policy', 'run_task', 'sync_now')),
	args jsonb NOT NULL DEFAULT '{}',
	created_at timestamptz NOT NULL DEFAULT now(),
	delivered_at timestamptz,
	acked_at timestamptz
);
CREATE INDEX agent_commands_pending ON agent_commands (endpoint_id) WHERE acked_at IS NULL;

-- Push servers announce new commands with NOTIFY strata_commands.
CREATE FUNCTION agent_commands_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('strata_commands', NEW.endpoint_id::text);
	RETURN NEW;
END $$;
CREATE TRIGGER agent_commands_notify AFTER INSERT ON agent_commands
	FOR EACH ROW EXECUTE FUNCTION agent_commands_notify();
