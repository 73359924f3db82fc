-- An agent resends an event until it holds the acknowledgement; a push
-- worker killed between the INSERT's commit and the A_EVENT_ACK would
-- otherwise store it twice. The agent's own seq makes the resend a no-op.
-- Rows that did not come from an agent (status changes, licence events)
-- carry none.
ALTER TABLE events ADD COLUMN agent_seq bigint;
CREATE UNIQUE INDEX events_agent_seq ON events (endpoint_id, agent_seq)
	WHERE agent_seq IS NOT NULL;
