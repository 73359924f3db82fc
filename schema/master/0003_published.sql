-- Master-owned policies and tasks, published to slaves. Every change takes
-- a version from publication_seq under one transaction-scoped advisory
-- lock, so version order equals commit order and a slave that has applied
-- version V has seen every change at or below V. Deletes are soft (the
-- row stays with deleted = true and a new version) so slaves learn of them.

CREATE SEQUENCE publication_seq;

CREATE FUNCTION pub_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(7073002);
	NEW.version := nextval('publication_seq');
	NEW.updated_at := now();
	RETURN NEW;
END $$;

CREATE TABLE policies (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	settings jsonb NOT NULL DEFAULT '{}',
	target_all boolean NOT NULL DEFAULT true,
	target_slaves text[] NOT NULL DEFAULT '{}',
	deleted boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX policies_live_name ON policies (name) WHERE NOT deleted;
CREATE INDEX policies_version ON policies (version);
CREATE TRIGGER policies_stamp BEFORE INSERT OR UPDATE ON policies
	FOR EACH ROW EXECUTE FUNCTION pub_stamp();

CREATE TABLE tasks (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	kind text NOT NULL,
	params jsonb NOT NULL DEFAULT '{}',
	target_all boolean NOT NULL DEFAULT true,
	target_slaves text[] NOT NULL DEFAULT '{}',
	deleted boolean NOT NULL DEFAULT false,
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now(),
	version bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX tasks_live_name ON tasks (name) WHERE NOT deleted;
CREATE INDEX tasks_version ON tasks (version);
CREATE TRIGGER tasks_stamp BEFORE INSERT OR UPDATE ON tasks
	FOR EACH ROW EXECUTE FUNCTION pub_stamp();
