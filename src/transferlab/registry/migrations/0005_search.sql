-- transferlab registry schema, version 5: sweep search with early stopping.
-- A run may end `pruned` (stopped early by its sweep's pruning rule, no version registered),
-- at the step recorded in `pruned_step`; `training_scores` holds every validation score a
-- run reported while training (what the pruning rule and a resumed study read).
--
-- DuckDB cannot alter a CHECK constraint, nor drop or rename a table other tables refer to,
-- so `runs` is rebuilt with the tables that refer to it (model_versions, aliases, results,
-- profiles): each copied aside, dropped (referring tables first), created again as schema
-- 1-4 made it (every column, default, key and index) and filled back. One transaction.

CREATE TABLE _m5_runs AS SELECT * FROM runs;
CREATE TABLE _m5_model_versions AS SELECT * FROM model_versions;
CREATE TABLE _m5_aliases AS SELECT * FROM aliases;
CREATE TABLE _m5_results AS SELECT * FROM results;
CREATE TABLE _m5_profiles AS SELECT * FROM profiles;

DROP TABLE profiles;
DROP TABLE aliases;
DROP TABLE results;
DROP TABLE model_versions;
DROP TABLE runs;

CREATE TABLE runs (
    run_id            VARCHAR PRIMARY KEY,
    kind              VARCHAR NOT NULL,        -- finetune | benchmark | discover | profile | import | sweep
    template          VARCHAR,
    requested         JSON,                    -- the parameters as the user gave them
    parameters        JSON,                    -- as resolved (defaults filled in) by the run
    status            VARCHAR NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted', 'pruned')),
    started_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at       TIMESTAMP,
    output_notebook   VARCHAR,
    error             VARCHAR,
    data_fingerprint  VARCHAR,
    package_versions  JSON,
    metrics           JSON,
    sweep_id          VARCHAR,
    host              VARCHAR,
    pid               INTEGER,
    process_start     VARCHAR,
    pruned_step       INTEGER                  -- the training step a pruned run stopped at
);

CREATE TABLE model_versions (
    version_id         VARCHAR PRIMARY KEY,   -- '<model name>:<version number>'
    model_name         VARCHAR NOT NULL,
    version            INTEGER NOT NULL,
    kind               VARCHAR NOT NULL CHECK (kind IN ('base', 'adapter', 'merged', 'full')),
    uri                VARCHAR,
    parent_version_id  VARCHAR REFERENCES model_versions (version_id),
    run_id             VARCHAR REFERENCES runs (run_id),
    label_names        JSON,
    metadata           JSON,
    created_at         TIMESTAMP NOT NULL DEFAULT current_timestamp,
    UNIQUE (model_name, version)
);

CREATE TABLE aliases (
    model_name  VARCHAR NOT NULL,
    alias       VARCHAR NOT NULL,
    version_id  VARCHAR NOT NULL REFERENCES model_versions (version_id),
    updated_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (model_name, alias)
);

CREATE TABLE results (
    result_id   BIGINT PRIMARY KEY DEFAULT nextval('results_seq'),
    run_id      VARCHAR NOT NULL REFERENCES runs (run_id),
    version_id  VARCHAR REFERENCES model_versions (version_id),
    suite       VARCHAR,
    task        VARCHAR,
    dataset     VARCHAR NOT NULL,
    split       VARCHAR NOT NULL,
    metric      VARCHAR NOT NULL,
    value       DOUBLE NOT NULL,
    n_train     INTEGER,
    seed        INTEGER,
    created_at  TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE INDEX results_version_idx ON results (version_id);
CREATE INDEX results_suite_metric_idx ON results (suite, metric);

CREATE TABLE profiles (
    version_id         VARCHAR NOT NULL REFERENCES model_versions (version_id),
    measured_at        TIMESTAMP NOT NULL,
    device             VARCHAR NOT NULL,
    parameters         BIGINT,
    size_bytes         BIGINT,
    load_seconds       DOUBLE,
    latency_ms_p50     DOUBLE,
    latency_ms_p95     DOUBLE,
    throughput_per_s   DOUBLE,
    peak_memory_mb     DOUBLE,
    details            JSON,
    PRIMARY KEY (version_id, device)
);

INSERT INTO runs BY NAME SELECT * FROM _m5_runs;
-- DuckDB checks a version's parent against the rows there before the statement, so the
-- versions go back one generation of lineage at a time (bases first); 16 generations,
-- and the migration fails (and changes nothing) rather than lose a deeper one.
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
INSERT INTO model_versions BY NAME SELECT * FROM _m5_model_versions
    WHERE version_id NOT IN (SELECT version_id FROM model_versions)
    AND (parent_version_id IS NULL
         OR parent_version_id IN (SELECT version_id FROM model_versions));
SELECT error('transferlab migration 5: lineage deeper than 16 versions; nothing was changed')
    WHERE (SELECT count(*) FROM model_versions) <> (SELECT count(*) FROM _m5_model_versions);
INSERT INTO aliases BY NAME SELECT * FROM _m5_aliases;
INSERT INTO results BY NAME SELECT * FROM _m5_results;
INSERT INTO profiles BY NAME SELECT * FROM _m5_profiles;

DROP TABLE _m5_runs;
DROP TABLE _m5_model_versions;
DROP TABLE _m5_aliases;
DROP TABLE _m5_results;
DROP TABLE _m5_profiles;

-- No foreign key (as in schema 4): scores are written while the run is `running`, and
-- DuckDB runs the run's later UPDATEs as delete + insert, which a referencing key refuses.
CREATE TABLE training_scores (
    run_id       VARCHAR NOT NULL,
    step         INTEGER NOT NULL,
    metric       VARCHAR NOT NULL,        -- as the template reports it: validation_loss, ...
    value        DOUBLE NOT NULL,
    recorded_at  TIMESTAMP NOT NULL DEFAULT current_timestamp,
    PRIMARY KEY (run_id, step, metric)
);
