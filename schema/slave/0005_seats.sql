-- The licence seats in use (endpoints not revoked), kept by a trigger so
-- the seat check of an enrolment reads one row instead of counting every
-- endpoint. Writers of endpoints hold the replication lock, which
-- serialises the updates of this row as it serialises theirs.
CREATE TABLE agent_seats (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	used bigint NOT NULL
);
INSERT INTO agent_seats (used) SELECT count(*) FROM endpoints WHERE NOT revoked;

CREATE FUNCTION agent_seats_count() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	delta bigint := 0;
BEGIN
	IF TG_OP IN ('INSERT', 'UPDATE') AND NOT NEW.revoked THEN
		delta := delta + 1;
	END IF;
	IF TG_OP IN ('UPDATE', 'DELETE') AND NOT OLD.revoked THEN
		delta := delta - 1;
	END IF;
	IF delta <> 0 THEN
		UPDATE agent_seats SET used = used + delta;
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER agent_seats_insert AFTER INSERT OR DELETE ON endpoints
	FOR EACH ROW EXECUTE FUNCTION agent_seats_count();
CREATE TRIGGER agent_seats_revoke AFTER UPDATE OF revoked ON endpoints
	FOR EACH ROW WHEN (OLD.revoked IS DISTINCT FROM NEW.revoked)
	EXECUTE FUNCTION agent_seats_count();
