-- One NOTIFY strata_commands per INSERT statement instead of one per row:
-- a push worker that hears it takes every undelivered command of the
-- endpoints it holds in one statement, so the payload names nobody.
DROP TRIGGER agent_commands_notify ON agent_commands;
DROP FUNCTION agent_commands_notify();

CREATE FUNCTION agent_commands_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('strata_commands', '');
	RETURN NULL;
END $$;
CREATE TRIGGER agent_commands_notify AFTER INSERT ON agent_commands
	FOR EACH STATEMENT EXECUTE FUNCTION agent_commands_notify();

-- Undelivered commands, for the lookup that follows each notification.
CREATE INDEX agent_commands_undelivered ON agent_commands (endpoint_id)
	WHERE delivered_at IS NULL AND acked_at IS NULL;
