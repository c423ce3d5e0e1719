-- transferlab registry schema, version 3: the process that runs a run.
-- `host` and `pid` (schema 1) say which process started a run; `process_start` is that
-- process's start as `<boot id>/<pid namespace>/<start ticks>` (Linux; NULL elsewhere), so
-- that a pid the kernel has since given to another process is not taken for the run's own
-- (transferlab.registry.processes). A run still
-- `running` whose process is gone from its host is marked `interrupted` by the next command
-- that opens the registry there (transferlab.registry.runs).
-- No index on runs.status: DuckDB runs an UPDATE of an indexed column as delete + insert,
-- which the foreign keys from results and model_versions refuse.

ALTER TABLE runs ADD COLUMN process_start VARCHAR;
