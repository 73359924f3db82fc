-- Counts the reports read instead of the replicated rows: a report across
-- 100 slaves then reads a few thousand counters, not millions of rows.
-- Statement-level triggers on the partitioned tables keep them exact:
-- each sync statement (COPY, the staged INSERT ... ON CONFLICT DO UPDATE,
-- the deletions) adds its transition tables' rows once, grouped; a
-- session of one slave only touches that slave's counters.

CREATE TABLE endpoint_counts (
	slave_id int NOT NULL,
	status text NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (slave_id, status)
);

CREATE TABLE event_counts (
	slave_id int NOT NULL,
	day date NOT NULL, -- of occurred_at, in UTC
	kind text NOT NULL,
	severity text NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (day, kind, severity, slave_id)
);

CREATE TABLE task_result_counts (
	slave_id int NOT NULL,
	task_id bigint NOT NULL,
	status text NOT NULL,
	master_task_id bigint,
	n bigint NOT NULL,
	PRIMARY KEY (slave_id, task_id, status)
);
CREATE INDEX task_result_counts_master ON task_result_counts (master_task_id)
	WHERE master_task_id IS NOT NULL;

CREATE FUNCTION endpoint_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO endpoint_counts AS c (slave_id, status, n)
		SELECT slave_id, status, count(*) FROM new_rows GROUP BY 1, 2
		ON CONFLICT (slave_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO endpoint_counts AS c (slave_id, status, n)
		SELECT slave_id, status, -count(*) FROM old_rows GROUP BY 1, 2
		ON CONFLICT (slave_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSE
		INSERT INTO endpoint_counts AS c (slave_id, status, n)
		SELECT slave_id, status, sum(d) FROM (
			SELECT slave_id, status, 1 AS d FROM new_rows
			UNION ALL SELECT slave_id, status, -1 FROM old_rows) x
		GROUP BY 1, 2 HAVING sum(d) <> 0
		ON CONFLICT (slave_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION event_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO event_counts AS c (slave_id, day, kind, severity, n)
		SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date, kind, severity, count(*)
		FROM new_rows GROUP BY 1, 2, 3, 4
		ON CONFLICT (day, kind, severity, slave_id) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO event_counts AS c (slave_id, day, kind, severity, n)
		SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date, kind, severity, -count(*)
		FROM old_rows GROUP BY 1, 2, 3, 4
		ON CONFLICT (day, kind, severity, slave_id) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSE
		INSERT INTO event_counts AS c (slave_id, day, kind, severity, n)
		SELECT slave_id, day, kind, severity, sum(d) FROM (
			SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, kind, severity,
				1 AS d FROM new_rows
			UNION ALL SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date, kind, severity,
				-1 FROM old_rows) x
		GROUP BY 1, 2, 3, 4 HAVING sum(d) <> 0
		ON CONFLICT (day, kind, severity, slave_id) DO UPDATE SET n = c.n + EXCLUDED.n;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION task_result_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO task_result_counts AS c (slave_id, task_id, status, master_task_id, n)
		SELECT slave_id, task_id, status, max(master_task_id), count(*)
		FROM new_rows GROUP BY 1, 2, 3
		ON CONFLICT (slave_id, task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n,
			master_task_id = coalesce(EXCLUDED.master_task_id, c.master_task_id);
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO task_result_counts AS c (slave_id, task_id, status, master_task_id, n)
		SELECT slave_id, task_id, status, max(master_task_id), -count(*)
		FROM old_rows GROUP BY 1, 2, 3
		ON CONFLICT (slave_id, task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSE
		-- No HAVING here: a result whose status stays may still gain the
		-- master's task id, which the counter must take over.
		INSERT INTO task_result_counts AS c (slave_id, task_id, status, master_task_id, n)
		SELECT slave_id, task_id, status, max(master_task_id), sum(d) FROM (
			SELECT slave_id, task_id, status, master_task_id, 1 AS d FROM new_rows
			UNION ALL SELECT slave_id, task_id, status, master_task_id, -1 FROM old_rows) x
		GROUP BY 1, 2, 3
		ON CONFLICT (slave_id, task_id, status) DO UPDATE SET n = c.n + EXCLUDED.n,
			master_task_id = coalesce(EXCLUDED.master_task_id, c.master_task_id);
	END IF;
	RETURN NULL;
END $$;

-- Transition tables allow one event per trigger.
CREATE TRIGGER endpoint_counts_ins AFTER INSERT ON endpoints
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION endpoint_counts_apply();
CREATE TRIGGER endpoint_counts_upd AFTER UPDATE ON endpoints
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION endpoint_counts_apply();
CREATE TRIGGER endpoint_counts_del AFTER DELETE ON endpoints
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION endpoint_counts_apply();

CREATE TRIGGER event_counts_ins AFTER INSERT ON events
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();
CREATE TRIGGER event_counts_upd AFTER UPDATE ON events
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();
CREATE TRIGGER event_counts_del AFTER DELETE ON events
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();

CREATE TRIGGER task_result_counts_ins AFTER INSERT ON task_results
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION task_result_counts_apply();
CREATE TRIGGER task_result_counts_upd AFTER UPDATE ON task_results
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION task_result_counts_apply();
CREATE TRIGGER task_result_counts_del AFTER DELETE ON task_results
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION task_result_counts_apply();

-- Dropping a slave's partitions fires no DELETE: its counters go with them.
CREATE OR REPLACE FUNCTION strata_partitions_drop(sid int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['groups', 'endpoints', 'events', 'slave_policies',
				 'slave_tasks', 'task_results'] LOOP
		EXECUTE format('DROP TABLE IF EXISTS %I', t || '_s' || sid);
	END LOOP;
	DELETE FROM endpoint_counts WHERE slave_id = sid;
	DELETE FROM event_counts WHERE slave_id = sid;
	DELETE FROM task_result_counts WHERE slave_id = sid;
END $$;

-- Rows already held.
INSERT INTO endpoint_counts SELECT slave_id, status, count(*) FROM endpoints GROUP BY 1, 2;
INSERT INTO event_counts
	SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date, kind, severity, count(*)
	FROM events GROUP BY 1, 2, 3, 4;
INSERT INTO task_result_counts
	SELECT slave_id, task_id, status, max(master_task_id), count(*) FROM task_results
	GROUP BY 1, 2, 3;
