-- The effective policy version each endpoint should have applied
-- (effective_targets() keeps it): equal to policy_version when the agent
-- runs its latest effective policy. Replicated, so the master can report
-- compliance.
ALTER TABLE endpoints ADD COLUMN policy_target bigint NOT NULL DEFAULT 0;

-- The target of every group as last computed (group_id 0: endpoints in no
-- group), so that only the endpoints of a group whose target moved are
-- visited, and an enrolment takes its group's target from here.
CREATE TABLE policy_targets (
	group_id bigint PRIMARY KEY,
	version bigint NOT NULL
);
