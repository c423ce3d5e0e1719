-- transferlab registry schema, version 3, for PostgreSQL: the process that runs a run
-- (see ../0003_run_processes.sql): `<boot id>/<pid namespace>/<start ticks>` on Linux, NULL
-- elsewhere (transferlab.registry.processes).

ALTER TABLE runs ADD COLUMN process_start TEXT COLLATE "C";
