-- The installed licence: at most one row, replaced by each install. It is
-- replicated to the master (stream "licence") with the seats in use, so the
-- master can show every slave's licence without one of its own.
--
-- seats_used follows agent_seats (a trigger below); alert_level is the
-- highest seat threshold (90, 100, 110 percent) currently reached. Each
-- upward crossing of a threshold writes one 'licence' event; falling back
-- below re-arms it. The level is kept across a replacement, so a licence
-- with fewer seats raises only the thresholds newly crossed.
CREATE TABLE licence (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	licence_id text NOT NULL,
	holder text NOT NULL,
	seats bigint NOT NULL CHECK (seats > 0),
	valid_from timestamptz NOT NULL,
	valid_until timestamptz NOT NULL,
	features jsonb NOT NULL DEFAULT '[]',
	document text NOT NULL,
	installed_at timestamptz NOT NULL DEFAULT now(),
	seats_used bigint NOT NULL DEFAULT 0,
	alert_level int NOT NULL DEFAULT 0,
	version bigint NOT NULL DEFAULT 0
);
CREATE TRIGGER licence_stamp BEFORE INSERT OR UPDATE ON licence
	FOR EACH ROW EXECUTE FUNCTION repl_stamp();

CREATE FUNCTION licence_alert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
	old_level int := 0;
	new_level int := 0;
	t int;
BEGIN
	IF TG_OP = 'UPDATE' THEN
		old_level := OLD.alert_level;
	END IF;
	FOREACH t IN ARRAY ARRAY[90, 100, 110] LOOP
		IF NEW.seats_used * 100 >= NEW.seats * t THEN
			new_level := t;
		END IF;
	END LOOP;
	FOREACH t IN ARRAY ARRAY[90, 100, 110] LOOP
		IF t > old_level AND t <= new_level THEN
			INSERT INTO events (kind, severity, details)
			VALUES ('licence',
				CASE t WHEN 90 THEN 'medium' WHEN 100 THEN 'high' ELSE 'critical' END,
				jsonb_build_object('licence', NEW.licence_id, 'threshold', t,
						   'seats', NEW.seats, 'seats_used', NEW.seats_used,
						   'message', format('licence %s: %s of %s seats in use (%s %% reached)',
								     NEW.licence_id, NEW.seats_used, NEW.seats, t)));
		END IF;
	END LOOP;
	NEW.alert_level := new_level;
	RETURN NEW;
END $$;
CREATE TRIGGER licence_alert BEFORE INSERT OR UPDATE ON licence
	FOR EACH ROW EXECUTE FUNCTION licence_alert();

CREATE FUNCTION licence_seats_follow() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	UPDATE licence SET seats_used = NEW.used WHERE seats_used IS DISTINCT FROM NEW.used;
	RETURN NULL;
END $$;
CREATE TRIGGER licence_seats_follow AFTER UPDATE OF used ON agent_seats
	FOR EACH ROW EXECUTE FUNCTION licence_seats_follow();
