-- The version each endpoint should have applied, as its slave computed it
-- (slave migration 0013), and the endpoint counters split by whether the
-- endpoint runs it: the compliance report reads counters like the others.
ALTER TABLE endpoints ADD COLUMN policy_target bigint NOT NULL DEFAULT 0;

ALTER TABLE endpoint_counts ADD COLUMN compliant boolean NOT NULL DEFAULT true;
ALTER TABLE endpoint_counts DROP CONSTRAINT endpoint_counts_pkey;
ALTER TABLE endpoint_counts ADD PRIMARY KEY (slave_id, status, compliant);

CREATE OR REPLACE FUNCTION endpoint_counts_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO endpoint_counts AS c (slave_id, status, compliant, n)
		SELECT slave_id, status, policy_version = policy_target, count(*) FROM new_rows
		GROUP BY 1, 2, 3
		ON CONFLICT (slave_id, status, compliant) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSIF TG_OP = 'DELETE' THEN
		INSERT INTO endpoint_counts AS c (slave_id, status, compliant, n)
		SELECT slave_id, status, policy_version = policy_target, -count(*) FROM old_rows
		GROUP BY 1, 2, 3
		ON CONFLICT (slave_id, status, compliant) DO UPDATE SET n = c.n + EXCLUDED.n;
	ELSE
		INSERT INTO endpoint_counts AS c (slave_id, status, compliant, n)
		SELECT slave_id, status, compliant, sum(d) FROM (
			SELECT slave_id, status, policy_version = policy_target AS compliant, 1 AS d
			FROM new_rows
			UNION ALL SELECT slave_id, status, policy_version = policy_target, -1
			FROM old_rows) x
		GROUP BY 1, 2, 3 HAVING sum(d) <> 0
		ON CONFLICT (slave_id, status, compliant) DO UPDATE SET n = c.n + EXCLUDED.n;
	END IF;
	RETURN NULL;
END $$;

DELETE FROM endpoint_counts;
INSERT INTO endpoint_counts (slave_id, status, compliant, n)
	SELECT slave_id, status, policy_version = policy_target, count(*) FROM endpoints
	GROUP BY 1, 2, 3;
