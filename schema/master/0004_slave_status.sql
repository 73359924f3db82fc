-- A slave's health is derived when read, from its last sync and interval:
-- degraded after 2 missed intervals, failed after 4 or when the last
-- attempt ended in an error.
CREATE VIEW slave_status AS
SELECT s.*,
	CASE
		WHEN s.state IN ('pending', 'unregistered') THEN s.state
		WHEN s.last_error IS NOT NULL
		     AND s.last_attempt_at >= coalesce(s.last_sync_at, '-infinity') THEN 'failed'
		WHEN s.last_sync_at IS NULL THEN 'active'
		WHEN now() - s.last_sync_at > make_interval(secs => 4 * coalesce(s.sync_interval, 1800))
			THEN 'failed'
		WHEN now() - s.last_sync_at > make_interval(secs => 2 * coalesce(s.sync_interval, 1800))
			THEN 'degraded'
		ELSE 'active'
	END AS health,
	extract(epoch FROM now() - s.last_sync_at)::bigint AS data_age_s
FROM slaves s;
