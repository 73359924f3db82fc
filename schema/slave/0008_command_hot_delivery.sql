-- Marking a command delivered changes no indexed column once the
-- undelivered index is gone, so the row version it writes can stay on its
-- page without an entry in every index (a HOT update) when the page has
-- room, which the fill factor keeps for it. Looking for undelivered
-- commands uses agent_commands_pending: the unacknowledged commands of an
-- endpoint are few, and delivered_at is checked on them.
DROP INDEX agent_commands_undelivered;
ALTER TABLE agent_commands SET (fillfactor = 50);
