-- The group path a master-owned task targets on this slave (NULL: every
-- endpoint), as it arrived with the download.
ALTER TABLE tasks ADD COLUMN target_group text;

-- Finding the queued run_task commands of a task when it is withdrawn.
CREATE INDEX agent_commands_run_task ON agent_commands (((args->>'task_id')::bigint))
	WHERE kind = 'run_task' AND acked_at IS NULL;
