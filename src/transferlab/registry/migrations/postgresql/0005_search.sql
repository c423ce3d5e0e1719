-- transferlab registry schema, version 5, for PostgreSQL: sweep search with early stopping
-- (see ../0005_search.sql). PostgreSQL alters the constraint in place.

ALTER TABLE runs DROP CONSTRAINT runs_status_check;
ALTER TABLE runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'pruned'));
ALTER TABLE runs ADD COLUMN pruned_step INTEGER;

CREATE TABLE training_scores (
    run_id       TEXT COLLATE "C" NOT NULL,
    step         INTEGER NOT NULL,
    metric       TEXT COLLATE "C" NOT NULL,
    value        DOUBLE PRECISION NOT NULL,
    recorded_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (run_id, step, metric)
);
