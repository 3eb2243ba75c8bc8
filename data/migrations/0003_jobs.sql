-- 0003_jobs: what the job catalog (package jobs) keeps: the switches and
-- continuous-processing state accounts lacked, captured posts and their
-- stored media, and every outside call and account action a job made. See
-- data/schema.md.

-- An account is fanned out only while enabled, and each orchestrator only
-- to accounts whose switch for it is on (the 0001 switches cover
-- continuous processing, story auto-replies, feed auto-engagement and
-- profile scans).
ALTER TABLE accounts ADD COLUMN enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1));
ALTER TABLE accounts ADD COLUMN follow_graph_sync INTEGER NOT NULL DEFAULT 0 CHECK (follow_graph_sync IN (0, 1));
ALTER TABLE accounts ADD COLUMN avatar_sync       INTEGER NOT NULL DEFAULT 0 CHECK (avatar_sync IN (0, 1));
ALTER TABLE accounts ADD COLUMN profile_refresh   INTEGER NOT NULL DEFAULT 0 CHECK (profile_refresh IN (0, 1));
-- When the coordinator last enqueued a home-feed capture (NULL: never).
ALTER TABLE accounts ADD COLUMN last_feed_capture_at INTEGER;

-- Posts captured from an account's home feed or a profile scan, one row per
-- (account, outside post id): a post seen again is not stored again.
CREATE TABLE posts (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    post_id      TEXT    NOT NULL,
    profile_id   INTEGER REFERENCES profiles (id) ON DELETE SET NULL,
    author       TEXT    NOT NULL DEFAULT '',
    caption      TEXT    NOT NULL DEFAULT '',
    media_url    TEXT    NOT NULL DEFAULT '',
    taken_at     INTEGER,
    captured_at  INTEGER NOT NULL,
    analyzed_at  INTEGER,
    analysis     TEXT,
    UNIQUE (account_id, post_id)
);
CREATE INDEX posts_captured_at ON posts (captured_at);

-- Media files stored for posts, under the data directory's media folder;
-- PurgeExpiredInstagramPostMediaJob deletes the file and the row once
-- stored_at is past the retention.
CREATE TABLE post_media (
    id        INTEGER PRIMARY KEY,
    post_id   INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    path      TEXT    NOT NULL UNIQUE,
    bytes     INTEGER NOT NULL DEFAULT 0,
    stored_at INTEGER NOT NULL
);
CREATE INDEX post_media_stored_at ON post_media (stored_at);

-- Every call a job made to an outside service (the connector, the local AI
-- service, a declared class's URL or command) with what it answered or
-- printed (capped), capped per job and trimmed by age.
CREATE TABLE job_calls (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL,
    account_id INTEGER,
    endpoint   TEXT    NOT NULL,
    status     INTEGER NOT NULL DEFAULT 0,
    latency_ms INTEGER NOT NULL DEFAULT 0,
    error      TEXT    NOT NULL DEFAULT '',
    output     TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
);
CREATE INDEX job_calls_job ON job_calls (job_id, id);
CREATE INDEX job_calls_at  ON job_calls (at);

-- Every action a job took on an account (a reply sent, an engagement, a
-- download), capped per job and trimmed by age.
CREATE TABLE account_actions (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    action     TEXT    NOT NULL,
    target     TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT '',
    at         INTEGER NOT NULL
);
CREATE INDEX account_actions_job     ON account_actions (job_id, id);
CREATE INDEX account_actions_at      ON account_actions (at);
CREATE INDEX account_actions_account ON account_actions (account_id, at);
