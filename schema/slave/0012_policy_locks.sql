-- The group path a policy applies to (NULL: the root, every endpoint) and,
-- for a master-owned policy, the settings it locks, as they arrived with
-- the download.
ALTER TABLE policies ADD COLUMN target_group text;
ALTER TABLE policies ADD COLUMN locked text[] NOT NULL DEFAULT '{}';
