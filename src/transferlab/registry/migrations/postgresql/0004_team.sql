-- transferlab registry schema, version 4, for PostgreSQL: users, API tokens and promotion
-- requests (see ../0004_team.sql).

CREATE TABLE users (
    name         TEXT COLLATE "C" PRIMARY KEY,
    role         TEXT COLLATE "C" NOT NULL
                 CHECK (role IN ('reader', 'contributor', 'approver', 'admin')),
    created_at   TIMESTAMP NOT NULL,
    created_by   TEXT COLLATE "C" NOT NULL,
    disabled     BOOLEAN NOT NULL DEFAULT false,
    disabled_at  TIMESTAMP,
    disabled_by  TEXT COLLATE "C"
);

CREATE TABLE api_tokens (
    token_id      TEXT COLLATE "C" PRIMARY KEY,
    user_name     TEXT COLLATE "C" NOT NULL,
    secret_sha256 TEXT COLLATE "C" NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    created_by    TEXT COLLATE "C" NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    revoked_by    TEXT COLLATE "C",
    last_used_at  TIMESTAMP,
    description   TEXT COLLATE "C"
);

CREATE SEQUENCE promotion_requests_seq;
CREATE TABLE promotion_requests (
    request_id       BIGINT PRIMARY KEY DEFAULT nextval('promotion_requests_seq'),
    model_name       TEXT COLLATE "C" NOT NULL,
    alias            TEXT COLLATE "C" NOT NULL,
    version_id       TEXT COLLATE "C" NOT NULL,
    from_version     TEXT COLLATE "C",
    requester        TEXT COLLATE "C" NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    reason           TEXT COLLATE "C" NOT NULL,
    status           TEXT COLLATE "C" NOT NULL
                     CHECK (status IN ('open', 'approved', 'rejected', 'withdrawn')),
    decided_by       TEXT COLLATE "C",
    decided_at       TIMESTAMP,
    decision_reason  TEXT COLLATE "C",
    evidence         JSON
);
