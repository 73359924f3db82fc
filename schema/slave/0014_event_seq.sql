-- An agent resends an event until it holds the acknowledgement; a push
-- worker killed between the INSERT's commit and the A_EVENT_ACK would
-- otherwise store it twice. A resend carries the same seq and the same
-- occurred_at, so it is a no-op; a seq that comes again with another time
-- (an agent whose state was restored from a backup, a simulator started
-- again) is a new event and kept. Rows that did not come from an agent
-- (status changes, licence events) carry no seq.
ALTER TABLE events ADD COLUMN agent_seq bigint;
CREATE UNIQUE INDEX events_agent_seq ON events (endpoint_id, agent_seq, occurred_at)
	WHERE agent_seq IS NOT NULL;
