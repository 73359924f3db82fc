-- The effective policy version each endpoint should have applied
-- (effective_targets() keeps it): equal to policy_version when the agent
-- runs its latest effective policy. Replicated, so the master can report
-- compliance.
ALTER TABLE endpoints ADD COLUMN policy_target bigint NOT NULL DEFAULT 0;
