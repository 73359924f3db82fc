-- A master policy may target a group path on the slaves it reaches (NULL:
-- every endpoint) and lock some of the settings it sets, so that no
-- deeper policy and no slave-local policy can change them.
ALTER TABLE policies ADD COLUMN target_group text;
ALTER TABLE policies ADD COLUMN locked text[] NOT NULL DEFAULT '{}';
