-- Each slave's installed licence and seats in use, replicated by the
-- "licence" upload stream. One row per slave at most, so the table is not
-- partitioned: it is keyed by slave_id, which (as in 0002) defaults to the
-- session setting strata.slave_id and never comes from the payload.
-- Unregistering a slave without --keep-data deletes its row.
CREATE TABLE slave_licences (
	slave_id int NOT NULL DEFAULT current_setting('strata.slave_id')::int
		REFERENCES slaves (id) ON DELETE CASCADE,
	licence_id text NOT NULL,
	holder text NOT NULL,
	seats bigint NOT NULL,
	valid_from timestamptz NOT NULL,
	valid_until timestamptz NOT NULL,
	features jsonb NOT NULL,
	installed_at timestamptz NOT NULL,
	seats_used bigint NOT NULL,
	version bigint NOT NULL,
	PRIMARY KEY (slave_id)
);

-- Slaves registered before this stream existed start it at 0.
INSERT INTO watermarks (slave_id, stream)
SELECT slave_id, 'licence' FROM watermarks GROUP BY slave_id
ON CONFLICT DO NOTHING;
