-- A master task may name a group path: on every slave it targets, it runs
-- on the endpoints of that group and of its subgroups (NULL: every
-- endpoint of the slave).
ALTER TABLE tasks ADD COLUMN target_group text;

-- A result of a master-owned task names the master's task id, which the
-- slave sends with it (NULL for a slave's own tasks), so the results of
-- one master task can be counted per slave.
ALTER TABLE task_results ADD COLUMN master_task_id bigint;
CREATE INDEX task_results_master_task ON task_results (master_task_id, slave_id, status)
	WHERE master_task_id IS NOT NULL;
