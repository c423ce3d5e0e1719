-- transferlab registry schema, version 2: sweeps.
-- A sweep is one invocation of `transferlab sweep FILE`: many template runs planned from a
-- YAML file. `sweep_runs` maps each planned run (its stable key) to the run that holds its
-- result: a run started by this sweep, or an earlier succeeded run it reused.
-- sweep_runs.run_id has no foreign key: the sweep links a run id before the worker process
-- starts that run, and a run that never started simply has no `runs` row.

CREATE TABLE sweeps (
    sweep_id     VARCHAR PRIMARY KEY,
    name         VARCHAR NOT NULL,
    template     VARCHAR,
    spec         JSON,                     -- the sweep file as validated (fixed, grid, runs)
    file_path    VARCHAR,
    status       VARCHAR NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    created_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at  TIMESTAMP,
    workers      INTEGER,
    summary      JSON,                     -- counts per status, wall time
    host         VARCHAR,
    pid          INTEGER
);
CREATE INDEX sweeps_name_idx ON sweeps (name);

CREATE TABLE sweep_runs (
    sweep_id  VARCHAR NOT NULL REFERENCES sweeps (sweep_id),
    run_key   VARCHAR NOT NULL,
    run_id    VARCHAR NOT NULL,
    reused    BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (sweep_id, run_key)
);
CREATE INDEX sweep_runs_run_idx ON sweep_runs (run_id);
