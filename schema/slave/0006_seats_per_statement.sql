-- The seat counter of 0005 moved one row per inserted or deleted endpoint:
-- a bulk INSERT of n endpoints updated the same counter row n times in one
-- transaction, which grows quadratically. Insert and delete now adjust it
-- once per statement from the transition table. Revocation stays a row
-- trigger (one endpoint at a time; and a statement-level UPDATE trigger
-- would capture every row of each heartbeat flush).
DROP TRIGGER agent_seats_insert ON endpoints;

CREATE FUNCTION agent_seats_added() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	SELECT count(*) INTO n FROM added WHERE NOT revoked;
	IF n <> 0 THEN
		UPDATE agent_seats SET used = used + n;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION agent_seats_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	SELECT count(*) INTO n FROM removed WHERE NOT revoked;
	IF n <> 0 THEN
		UPDATE agent_seats SET used = used - n;
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER agent_seats_insert AFTER INSERT ON endpoints
	REFERENCING NEW TABLE AS added
	FOR EACH STATEMENT EXECUTE FUNCTION agent_seats_added();
CREATE TRIGGER agent_seats_delete AFTER DELETE ON endpoints
	REFERENCING OLD TABLE AS removed
	FOR EACH STATEMENT EXECUTE FUNCTION agent_seats_removed();
