-- The master's registry of slaves, enrolment tokens and sync bookkeeping.

CREATE TABLE slaves (
	id serial PRIMARY KEY,
	name text NOT NULL,
	state text NOT NULL DEFAULT 'pending'
		CHECK (state IN ('pending', 'active', 'degraded', 'failed', 'unregistered')),
	cert_serial text UNIQUE,
	address text,
	sync_interval int,
	created_at timestamptz NOT NULL DEFAULT now(),
	registered_at timestamptz,
	unregistered_at timestamptz,
	last_attempt_at timestamptz,
	last_sync_at timestamptz,
	last_error text,
	rows_received bigint NOT NULL DEFAULT 0,
	publication_version bigint NOT NULL DEFAULT 0
);
-- One live slave per name; an unregistered name may enrol again.
CREATE UNIQUE INDEX slaves_live_name ON slaves (name) WHERE state <> 'unregistered';

-- Only a hash of the token's secret is kept.
CREATE TABLE enrol_tokens (
	id text PRIMARY KEY,
	slave_id int NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
	secret_sha256 text NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	used_at timestamptz
);

CREATE TABLE revoked_certs (
	serial text PRIMARY KEY,
	slave_name text NOT NULL,
	revoked_at timestamptz NOT NULL DEFAULT now()
);

-- The master's last applied version per slave and upload stream.
CREATE TABLE watermarks (
	slave_id int NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
	stream text NOT NULL,
	version bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (slave_id, stream)
);

CREATE TABLE sync_history (
	id bigserial PRIMARY KEY,
	slave_id int NOT NULL REFERENCES slaves (id) ON DELETE CASCADE,
	started_at timestamptz NOT NULL,
	finished_at timestamptz NOT NULL DEFAULT now(),
	ok boolean NOT NULL,
	error text,
	rows_received jsonb NOT NULL DEFAULT '{}',
	items_sent int NOT NULL DEFAULT 0
);
CREATE INDEX sync_history_slave ON sync_history (slave_id, started_at DESC);
