-- Change capture for every table the slave replicates to its master.
--
-- Each replicated row carries a version taken from one sequence, stamped by
-- trigger on insert and update; a delete leaves a tombstone with a version
-- of its own. The sync client ships rows whose version is above the
-- master's watermark and then moves the watermark to the highest version
-- shipped.
--
-- That only works if no row can become visible with a version below one
-- that was already shipped. A bare sequence does not give this: transaction
-- A takes version 10, transaction B takes 11 and commits, the client ships
-- 11, then A commits and 10 is never shipped. So every writer first takes
-- one transaction-scoped advisory lock and only then takes versions. The
-- lock is held until commit, so while a transaction holds versions nobody
-- else can take a higher one: version order equals commit order across all
-- replicated tables. The price is that writers to replicated tables are
-- serialised; keep those transactions short.
--
-- Lock keys: 7073000 is the schema migration lock, 7073001 this one.

CREATE SEQUENCE repl_version_seq AS bigint;

-- The one place that names the key. A transaction that will write several
-- replicated tables, or that locks rows before writing them, calls this
-- first so it never waits for the lock while holding row locks that the
-- lock holder needs (which would deadlock).
CREATE FUNCTION repl_lock() RETURNS void
LANGUAGE sql AS $$ SELECT pg_advisory_xact_lock(7073001) $$;

-- BEFORE INSERT OR UPDATE FOR EACH ROW on every replicated table, which
-- must have a "version bigint" column.
CREATE FUNCTION repl_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	-- Lock before nextval: taking the version first would reopen the hole.
	PERFORM repl_lock();
	NEW.version := nextval('repl_version_seq');
	RETURN NEW;
END
$$;

-- Deleted rows of every stream; the version (from the same sequence) is
-- both the shipping order and the primary key the sync client scans.
CREATE TABLE repl_tombstones (
	version bigint PRIMARY KEY,
	stream text NOT NULL,
	key text NOT NULL,
	deleted_at timestamptz NOT NULL DEFAULT now()
);

-- AFTER DELETE FOR EACH ROW. TG_ARGV[0] is the stream name, TG_ARGV[1..]
-- the key columns; the key is their text values joined with ':' (so key
-- values must not themselves contain ':'). to_jsonb(OLD) reads a column by
-- a name only known at run time without building SQL text.
CREATE FUNCTION repl_tombstone() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	old_row jsonb := to_jsonb(OLD);
	parts text[] := '{}';
	part text;
BEGIN
	IF TG_NARGS < 2 THEN
		RAISE EXCEPTION 'repl_tombstone on %: needs a stream name and key columns',
			TG_TABLE_NAME;
	END IF;
	FOR i IN 1 .. TG_NARGS - 1 LOOP
		part := old_row ->> TG_ARGV[i];
		IF part IS NULL THEN
			RAISE EXCEPTION 'repl_tombstone on %: key column % is missing or NULL',
				TG_TABLE_NAME, TG_ARGV[i];
		END IF;
		parts := parts || part;
	END LOOP;
	PERFORM repl_lock();
	INSERT INTO repl_tombstones (version, stream, key)
	VALUES (nextval('repl_version_seq'), TG_ARGV[0], array_to_string(parts, ':'));
	RETURN OLD;
END
$$;
