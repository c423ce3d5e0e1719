-- transferlab registry schema, version 4: users, API tokens and promotion requests (a team
-- registry; transferlab.registry.identity and .approvals). A registry with no user behaves as
-- before (one person, the actor from the environment); the first admin turns team mode on.
-- Timestamps are written by transferlab in naive UTC. No foreign keys: DuckDB runs an UPDATE
-- of a referenced row as delete + insert, which they would refuse; the code checks the names.

CREATE TABLE users (
    name         VARCHAR PRIMARY KEY,
    role         VARCHAR NOT NULL CHECK (role IN ('reader', 'contributor', 'approver', 'admin')),
    created_at   TIMESTAMP NOT NULL,
    created_by   VARCHAR NOT NULL,
    disabled     BOOLEAN NOT NULL DEFAULT false,
    disabled_at  TIMESTAMP,
    disabled_by  VARCHAR
);

-- Only the SHA-256 of the whole token is kept (the token itself is shown once, when created).
CREATE TABLE api_tokens (
    token_id      VARCHAR PRIMARY KEY,
    user_name     VARCHAR NOT NULL,
    secret_sha256 VARCHAR NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    created_by    VARCHAR NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    revoked_at    TIMESTAMP,
    revoked_by    VARCHAR,
    last_used_at  TIMESTAMP,
    description   VARCHAR
);

CREATE SEQUENCE promotion_requests_seq;
CREATE TABLE promotion_requests (
    request_id       BIGINT PRIMARY KEY DEFAULT nextval('promotion_requests_seq'),
    model_name       VARCHAR NOT NULL,
    alias            VARCHAR NOT NULL,
    version_id       VARCHAR NOT NULL,
    from_version     VARCHAR,              -- the holder when it was requested
    requester        VARCHAR NOT NULL,
    created_at       TIMESTAMP NOT NULL,
    reason           VARCHAR NOT NULL,
    status           VARCHAR NOT NULL
                     CHECK (status IN ('open', 'approved', 'rejected', 'withdrawn')),
    decided_by       VARCHAR,
    decided_at       TIMESTAMP,
    decision_reason  VARCHAR,
    evidence         JSON                  -- the gates' verdicts when requested (and approved)
);
