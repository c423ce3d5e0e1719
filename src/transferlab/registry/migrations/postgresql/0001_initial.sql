-- transferlab registry schema, version 1, for PostgreSQL: the tables of ../0001_initial.sql
-- (DuckDB) with their types mapped: VARCHAR -> TEXT COLLATE "C" (byte order, as DuckDB sorts),
-- VARCHAR[] -> TEXT[], FLOAT[384] -> BYTEA (384 float32, little-endian), DOUBLE -> DOUBLE
-- PRECISION, JSON kept as JSON text. Timestamps are naive UTC, as the DuckDB registry writes them.
-- Applied in one transaction under an advisory lock by transferlab.registry.postgres_migrate;
-- never edit a released migration: add a new numbered file (in both folders) instead.
--
-- As in DuckDB, no foreign key points at `models`; the Registry API checks that a model exists
-- before it adds a version or an alias.

CREATE TABLE models (
    name              TEXT COLLATE "C" PRIMARY KEY,
    source            TEXT COLLATE "C" NOT NULL CHECK (source IN ('hf', 'local', 'torchhub', 'tfhub')),
    source_ref        TEXT COLLATE "C" NOT NULL,
    task              TEXT COLLATE "C" NOT NULL,
    architecture      TEXT COLLATE "C",
    model_type        TEXT COLLATE "C",
    library           TEXT COLLATE "C",
    license           TEXT COLLATE "C",
    commercial_use    BOOLEAN,
    parameters        BIGINT,
    size_bytes        BIGINT,
    languages         TEXT[],
    description       TEXT COLLATE "C",
    card_text         TEXT COLLATE "C",
    tags              TEXT[],
    finetune          JSON,
    origin            TEXT COLLATE "C" NOT NULL DEFAULT 'import',  -- catalog | import | derived
    content_hash      TEXT COLLATE "C",                            -- makes catalog reloads idempotent
    created_at        TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    updated_at        TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);

-- DuckDB keeps FLOAT[384]; here the 384 float32 values as little-endian bytes (1536 bytes).
-- Semantic search ranks in the client (numpy) over a cached copy of this table, reloaded when
-- model_embedding_changes says it changed (transferlab.registry.postgres_vectors); bytes load
-- about 5x faster than a REAL[] (measured at 12k rows: 65 ms against 320 ms).
CREATE TABLE model_embeddings (
    name       TEXT COLLATE "C" PRIMARY KEY,
    embedder   TEXT COLLATE "C" NOT NULL,
    text_hash  TEXT COLLATE "C" NOT NULL,
    embedding  BYTEA NOT NULL CHECK (octet_length(embedding) = 384 * 4)
);

-- One row counting the statements that changed model_embeddings (a trigger bumps it, in the
-- writing transaction): a reader compares it (and the row's xmin) with its cache's.
CREATE TABLE model_embedding_changes (
    changes  BIGINT NOT NULL
);
INSERT INTO model_embedding_changes VALUES (0);

CREATE FUNCTION count_model_embedding_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE model_embedding_changes SET changes = changes + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER model_embeddings_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON model_embeddings
    FOR EACH STATEMENT EXECUTE FUNCTION count_model_embedding_change();

CREATE TABLE runs (
    run_id            TEXT COLLATE "C" PRIMARY KEY,
    kind              TEXT COLLATE "C" NOT NULL,        -- finetune | benchmark | discover | profile | import | sweep
    template          TEXT COLLATE "C",
    requested         JSON,                    -- the parameters as the user gave them
    parameters        JSON,                    -- as resolved (defaults filled in) by the run
    status            TEXT COLLATE "C" NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_at        TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    finished_at       TIMESTAMP,
    output_notebook   TEXT COLLATE "C",
    error             TEXT COLLATE "C",
    data_fingerprint  TEXT COLLATE "C",
    package_versions  JSON,
    metrics           JSON,
    sweep_id          TEXT COLLATE "C",
    host              TEXT COLLATE "C",
    pid               INTEGER
);
-- PostgreSQL can index the status (DuckDB cannot, see ../0003_run_processes.sql): every open
-- looks for this host's running runs.
CREATE INDEX runs_status_host_idx ON runs (status, host);

CREATE TABLE model_versions (
    version_id         TEXT COLLATE "C" PRIMARY KEY,   -- '<model name>:<version number>'
    model_name         TEXT COLLATE "C" NOT NULL,
    version            INTEGER NOT NULL,
    kind               TEXT COLLATE "C" NOT NULL CHECK (kind IN ('base', 'adapter', 'merged', 'full')),
    uri                TEXT COLLATE "C",
    parent_version_id  TEXT COLLATE "C" REFERENCES model_versions (version_id),
    run_id             TEXT COLLATE "C" REFERENCES runs (run_id),
    label_names        JSON,
    metadata           JSON,
    created_at         TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    UNIQUE (model_name, version)
);
CREATE INDEX model_versions_run_idx ON model_versions (run_id);
CREATE INDEX model_versions_uri_idx ON model_versions (uri);

CREATE TABLE aliases (
    model_name  TEXT COLLATE "C" NOT NULL,
    alias       TEXT COLLATE "C" NOT NULL,
    version_id  TEXT COLLATE "C" NOT NULL REFERENCES model_versions (version_id),
    updated_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    PRIMARY KEY (model_name, alias)
);

CREATE SEQUENCE results_seq;
CREATE TABLE results (
    result_id   BIGINT PRIMARY KEY DEFAULT nextval('results_seq'),
    run_id      TEXT COLLATE "C" NOT NULL REFERENCES runs (run_id),
    version_id  TEXT COLLATE "C" REFERENCES model_versions (version_id),
    suite       TEXT COLLATE "C",
    task        TEXT COLLATE "C",
    dataset     TEXT COLLATE "C" NOT NULL,
    split       TEXT COLLATE "C" NOT NULL,
    metric      TEXT COLLATE "C" NOT NULL,
    value       DOUBLE PRECISION NOT NULL,
    n_train     INTEGER,
    seed        INTEGER,
    created_at  TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')
);
CREATE INDEX results_version_idx ON results (version_id);
CREATE INDEX results_suite_metric_idx ON results (suite, metric);
CREATE INDEX results_run_idx ON results (run_id);

CREATE TABLE profiles (
    version_id         TEXT COLLATE "C" NOT NULL REFERENCES model_versions (version_id),
    measured_at        TIMESTAMP NOT NULL,
    device             TEXT COLLATE "C" NOT NULL,
    parameters         BIGINT,
    size_bytes         BIGINT,
    load_seconds       DOUBLE PRECISION,
    latency_ms_p50     DOUBLE PRECISION,
    latency_ms_p95     DOUBLE PRECISION,
    throughput_per_s   DOUBLE PRECISION,
    peak_memory_mb     DOUBLE PRECISION,
    details            JSON,
    PRIMARY KEY (version_id, device)
);

CREATE SEQUENCE audit_seq;
CREATE TABLE audit_log (
    event_id      BIGINT PRIMARY KEY DEFAULT nextval('audit_seq'),
    occurred_at   TIMESTAMP NOT NULL DEFAULT (now() AT TIME ZONE 'UTC'),
    actor         TEXT COLLATE "C" NOT NULL,
    action        TEXT COLLATE "C" NOT NULL,       -- alias.set | alias.remove | promote
    model_name    TEXT COLLATE "C" NOT NULL,
    alias         TEXT COLLATE "C",
    from_version  TEXT COLLATE "C",
    to_version    TEXT COLLATE "C",
    reason        TEXT COLLATE "C",
    forced        BOOLEAN NOT NULL DEFAULT false,
    details       JSON
);
CREATE INDEX audit_log_model_idx ON audit_log (model_name);
