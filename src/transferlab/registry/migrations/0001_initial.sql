-- transferlab registry schema, version 1.
-- Applied in one transaction by transferlab.registry.migrate; never edit a released
-- migration: add a new numbered file instead.
--
-- No foreign key points at `models`: DuckDB runs an UPDATE of a list column (tags, languages)
-- as delete + insert, which a referencing key refuses. The Registry API checks that a model
-- exists before it adds a version or an alias.

CREATE TABLE models (
    name              VARCHAR PRIMARY KEY,
    source            VARCHAR NOT NULL CHECK (source IN ('hf', 'local', 'torchhub', 'tfhub')),
    source_ref        VARCHAR NOT NULL,
    task              VARCHAR NOT NULL,
    architecture      VARCHAR,
    model_type        VARCHAR,
    library           VARCHAR,
    license           VARCHAR,
    commercial_use    BOOLEAN,
    parameters        BIGINT,
    size_bytes        BIGINT,
    languages         VARCHAR[],
    description       VARCHAR,
    card_text         VARCHAR,
    tags              VARCHAR[],
    finetune          JSON,
    origin            VARCHAR NOT NULL DEFAULT 'import',  -- catalog | import | derived
    content_hash      VARCHAR,                            -- makes catalog reloads idempotent
    created_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    updated_at        TIMESTAMP NOT NULL DEFAULT current_timestamp
);

CREATE TABLE model_embeddings (
    name       VARCHAR PRIMARY KEY,
    embedder   VARCHAR NOT NULL,
    text_hash  VARCHAR NOT NULL,
    embedding  FLOAT[384] NOT NULL
);

CREATE TABLE runs (
    run_id            VARCHAR PRIMARY KEY,
    kind              VARCHAR NOT NULL,        -- finetune | benchmark | discover | profile | import | sweep
    template          VARCHAR,
    requested         JSON,                    -- the parameters as the user gave them
    parameters        JSON,                    -- as resolved (defaults filled in) by the run
    status            VARCHAR NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at        TIMESTAMP NOT NULL DEFAULT current_timestamp,
    finished_at       TIMESTAMP,
    output_notebook   VARCHAR,
    error             VARCHAR,
    data_fingerprint  VARCHAR,
    package_versions  JSON,
    metrics           JSON,
    sweep_id          VARCHAR,
    host              VARCHAR,
    pid               INTEGER
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

CREATE SEQUENCE results_seq;
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

CREATE SEQUENCE audit_seq;
CREATE TABLE audit_log (
    event_id      BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
    occurred_at   TIMESTAMP NOT NULL DEFAULT current_timestamp,
    actor         VARCHAR NOT NULL,
    action        VARCHAR NOT NULL,       -- alias.set | alias.remove | promote
    model_name    VARCHAR NOT NULL,
    alias         VARCHAR,
    from_version  VARCHAR,
    to_version    VARCHAR,
    reason        VARCHAR,
    forced        BOOLEAN NOT NULL DEFAULT false,
    details       JSON
);
