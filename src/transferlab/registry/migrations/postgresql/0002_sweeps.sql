-- transferlab registry schema, version 2, for PostgreSQL: sweeps (see ../0002_sweeps.sql).
-- sweep_runs.run_id has no foreign key: the sweep links a run id before the worker process
-- starts that run, and a run that never started simply has no `runs` row.

CREATE TABLE sweeps (
    sweep_id     TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL,
    template     TEXT COLLATE "C",
    spec         JSON,                     -- the sweep file as validated (fixed, grid, runs)
    file_path    TEXT COLLATE "C",
    status       TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    created_at   TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    finished_at  TIMESTAMP,
    workers      INTEGER,
    summary      JSON,                     -- counts per status, wall time
    host         TEXT COLLATE "C",
    pid          INTEGER
);
CREATE INDEX sweeps_name_idx ON sweeps (name);

CREATE TABLE sweep_runs (
    sweep_id  TEXT COLLATE "C" NOT NULL REFERENCES sweeps (sweep_id),
    run_key   TEXT COLLATE "C" NOT NULL,
    run_id    TEXT COLLATE "C" NOT NULL,
    reused    BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (sweep_id, run_key)
);
CREATE INDEX sweep_runs_run_idx ON sweep_runs (run_id);
