-- The heartbeat interval each endpoint's agent was last given (A_AUTH_OK,
-- or the policy it fetched), so the offline sweep waits 3 of that
-- endpoint's own intervals. NULL until the agent next authenticates: the
-- sweep then uses server.xml's interval. Not replicated (the master's
-- streams name their columns).
ALTER TABLE endpoints ADD COLUMN heartbeat int CHECK (heartbeat BETWEEN 5 AND 86400);
