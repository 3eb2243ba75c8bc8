-- 0001_init: Conveyor's SQLite schema. Every timestamp is INTEGER unix
-- milliseconds, UTC. See data/schema.md for what each column means.

-- Job failures (the seed's BackgroundJobFailure). Narrow, filterable columns
-- first; the wide ones (args, backtrace) last, so that reading the filter
-- columns of a row does not touch its overflow pages.
CREATE TABLE failures (
    id              INTEGER PRIMARY KEY,
    job_id          INTEGER NOT NULL DEFAULT 0,
    class           TEXT    NOT NULL,
    queue           TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('authentication', 'transient', 'runtime')),
    retryable       INTEGER NOT NULL DEFAULT 0 CHECK (retryable IN (0, 1)),
    error_class     TEXT    NOT NULL DEFAULT '',
    account_id      INTEGER,
    profile_id      INTEGER,
    pipeline_id     INTEGER,
    step            TEXT    NOT NULL DEFAULT '',
    attempt         INTEGER NOT NULL DEFAULT 0,
    occurred_at     INTEGER NOT NULL,
    fingerprint     TEXT    NOT NULL DEFAULT '',
    retry_status    TEXT    NOT NULL DEFAULT 'none'
                    CHECK (retry_status IN ('none', 'queued', 'refused', 'succeeded', 'superseded')),
    retry_attempts  INTEGER NOT NULL DEFAULT 0,
    last_retried_at INTEGER,
    retry_job_id    INTEGER,
    retry_reason    TEXT    NOT NULL DEFAULT '',
    error_message   TEXT    NOT NULL DEFAULT '',
    args            TEXT,
    backtrace       TEXT    NOT NULL DEFAULT ''
);

-- One index per filterable field, each ending in occurred_at: an equality
-- filter on the field sorted by time reads the first page straight off the
-- index, a count of one field is an index-only scan, and a sort on the field
-- uses the same index (ties broken by occurred_at, then id). retryable has
-- none: a boolean splits the table in two large halves, which a scan in time
-- order filters as fast, and its counts come from the roll-ups.
CREATE INDEX failures_occurred_at  ON failures (occurred_at);
CREATE INDEX failures_kind         ON failures (kind, occurred_at);
CREATE INDEX failures_queue        ON failures (queue, occurred_at);
CREATE INDEX failures_class        ON failures (class, occurred_at);
CREATE INDEX failures_error_class  ON failures (error_class, occurred_at);
CREATE INDEX failures_retry_status ON failures (retry_status, occurred_at);
CREATE INDEX failures_account      ON failures (account_id, occurred_at);
CREATE INDEX failures_profile      ON failures (profile_id, occurred_at);
CREATE INDEX failures_attempt      ON failures (attempt, occurred_at);
CREATE INDEX failures_job          ON failures (job_id, occurred_at);
CREATE INDEX failures_fingerprint  ON failures (fingerprint, occurred_at);

-- Roll-ups of failures by their low-cardinality columns: failure_counts over
-- all time, failure_hours per hour of occurred_at. A count whose conditions
-- touch only these columns (and a time range) sums roll-up rows instead of
-- counting up to a million failures; the partial hours at the ends of a range
-- are counted from the table. Inserts are rolled up by InsertFailures, once
-- per batch (a per-row trigger cost a fifth of the insert rate); updates and
-- deletes by the triggers below. IntegrityCheck verifies both.
CREATE TABLE failure_counts (
    kind         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    class        TEXT    NOT NULL,
    error_class  TEXT    NOT NULL,
    retry_status TEXT    NOT NULL,
    retryable    INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (kind, queue, class, error_class, retry_status, retryable)
) WITHOUT ROWID;

CREATE TABLE failure_hours (
    hour         INTEGER NOT NULL, -- occurred_at truncated to the hour (unix ms)
    kind         TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    class        TEXT    NOT NULL,
    error_class  TEXT    NOT NULL,
    retry_status TEXT    NOT NULL,
    retryable    INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (hour, kind, queue, class, error_class, retry_status, retryable)
) WITHOUT ROWID;

CREATE TRIGGER failures_count_delete AFTER DELETE ON failures BEGIN
    UPDATE failure_counts SET n = n - 1
     WHERE kind = OLD.kind AND queue = OLD.queue AND class = OLD.class
       AND error_class = OLD.error_class AND retry_status = OLD.retry_status
       AND retryable = OLD.retryable;
    UPDATE failure_hours SET n = n - 1
     WHERE hour = OLD.occurred_at / 3600000 * 3600000
       AND kind = OLD.kind AND queue = OLD.queue AND class = OLD.class
       AND error_class = OLD.error_class AND retry_status = OLD.retry_status
       AND retryable = OLD.retryable;
END;

CREATE TRIGGER failures_count_update
AFTER UPDATE OF kind, queue, class, error_class, retry_status, retryable, occurred_at ON failures
WHEN OLD.kind IS NOT NEW.kind OR OLD.queue IS NOT NEW.queue OR OLD.class IS NOT NEW.class
  OR OLD.error_class IS NOT NEW.error_class OR OLD.retry_status IS NOT NEW.retry_status
  OR OLD.retryable IS NOT NEW.retryable OR OLD.occurred_at IS NOT NEW.occurred_at
BEGIN
    UPDATE failure_counts SET n = n - 1
     WHERE kind = OLD.kind AND queue = OLD.queue AND class = OLD.class
       AND error_class = OLD.error_class AND retry_status = OLD.retry_status
       AND retryable = OLD.retryable;
    INSERT INTO failure_counts (kind, queue, class, error_class, retry_status, retryable, n)
    VALUES (NEW.kind, NEW.queue, NEW.class, NEW.error_class, NEW.retry_status, NEW.retryable, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
    UPDATE failure_hours SET n = n - 1
     WHERE hour = OLD.occurred_at / 3600000 * 3600000
       AND kind = OLD.kind AND queue = OLD.queue AND class = OLD.class
       AND error_class = OLD.error_class AND retry_status = OLD.retry_status
       AND retryable = OLD.retryable;
    INSERT INTO failure_hours (hour, kind, queue, class, error_class, retry_status, retryable, n)
    VALUES (NEW.occurred_at / 3600000 * 3600000, NEW.kind, NEW.queue, NEW.class, NEW.error_class,
            NEW.retry_status, NEW.retryable, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;

-- Issues (the seed's AppIssue): one row per fingerprint.
CREATE TABLE issues (
    id             INTEGER PRIMARY KEY,
    fingerprint    TEXT    NOT NULL UNIQUE,
    source         TEXT    NOT NULL CHECK (source IN ('job_failure', 'queue_health', 'ai_outage', 'scheduler')),
    kind           TEXT    NOT NULL DEFAULT '',
    title          TEXT    NOT NULL,
    class          TEXT    NOT NULL DEFAULT '',
    queue          TEXT    NOT NULL DEFAULT '',
    occurrences    INTEGER NOT NULL DEFAULT 1,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    last_context   TEXT,
    status         TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolved_at    INTEGER,
    resolved_by    TEXT    CHECK (resolved_by IS NULL OR resolved_by IN ('operator', 'auto')),
    reopened_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX issues_last_seen        ON issues (last_seen);
CREATE INDEX issues_status_last_seen ON issues (status, last_seen);
CREATE INDEX issues_source_last_seen ON issues (source, last_seen);

-- Accounts whose jobs the schedules fan out over.
CREATE TABLE accounts (
    id                    INTEGER PRIMARY KEY,
    username              TEXT    NOT NULL UNIQUE,
    continuous_processing INTEGER NOT NULL DEFAULT 0 CHECK (continuous_processing IN (0, 1)),
    story_auto_reply      INTEGER NOT NULL DEFAULT 0 CHECK (story_auto_reply IN (0, 1)),
    feed_auto_engagement  INTEGER NOT NULL DEFAULT 0 CHECK (feed_auto_engagement IN (0, 1)),
    profile_scan          INTEGER NOT NULL DEFAULT 0 CHECK (profile_scan IN (0, 1)),
    settings              TEXT    NOT NULL DEFAULT '{}',
    next_feed_sync_at     INTEGER,
    last_sync_at          INTEGER,
    last_sync_result      TEXT    NOT NULL DEFAULT '',
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX accounts_next_feed_sync ON accounts (next_feed_sync_at) WHERE continuous_processing = 1;

-- Profiles an account sees (its follow graph and the people it engages with).
CREATE TABLE profiles (
    id                  INTEGER PRIMARY KEY,
    account_id          INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    username            TEXT    NOT NULL,
    display_name        TEXT    NOT NULL DEFAULT '',
    followers_count     INTEGER NOT NULL DEFAULT 0,
    following_count     INTEGER NOT NULL DEFAULT 0,
    following           INTEGER NOT NULL DEFAULT 0 CHECK (following IN (0, 1)),
    followed_by         INTEGER NOT NULL DEFAULT 0 CHECK (followed_by IN (0, 1)),
    following_seen_at   INTEGER,
    followed_by_seen_at INTEGER,
    avatar_url          TEXT    NOT NULL DEFAULT '',
    last_refreshed_at   INTEGER,
    updated_at          INTEGER NOT NULL,
    UNIQUE (account_id, username)
);
CREATE INDEX profiles_account_updated ON profiles (account_id, updated_at);
CREATE INDEX profiles_account_followers ON profiles (account_id, followers_count);

-- Follow-graph (and other paginated) sync cursors per account.
CREATE TABLE sync_cursors (
    account_id         INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind               TEXT    NOT NULL,
    cursor             TEXT    NOT NULL DEFAULT '',
    started_from_start INTEGER NOT NULL DEFAULT 0 CHECK (started_from_start IN (0, 1)),
    started_at         INTEGER,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (account_id, kind)
) WITHOUT ROWID;

-- Recurring schedule state per entry name.
CREATE TABLE cron_entries (
    name          TEXT    PRIMARY KEY,
    enabled       INTEGER CHECK (enabled IS NULL OR enabled IN (0, 1)),
    last_tick     INTEGER,
    last_fired_at INTEGER,
    last_job_id   INTEGER,
    updated_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- Every fire of a cron entry; UNIQUE (entry, tick) is what makes a tick fire
-- at most once across restarts.
CREATE TABLE cron_fires (
    id       INTEGER PRIMARY KEY,
    entry    TEXT    NOT NULL,
    tick     INTEGER NOT NULL,
    job_id   INTEGER NOT NULL,
    fired_at INTEGER NOT NULL,
    UNIQUE (entry, tick)
);
CREATE INDEX cron_fires_fired_at ON cron_fires (fired_at);

-- Multi-step pipelines (an account's processing run) and their steps.
CREATE TABLE pipelines (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    account_id  INTEGER,
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    started_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX pipelines_account ON pipelines (account_id, started_at);
CREATE INDEX pipelines_started ON pipelines (started_at);

CREATE TABLE pipeline_steps (
    id          INTEGER PRIMARY KEY,
    pipeline_id INTEGER NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    status      TEXT    NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled', 'skipped')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    job_id      INTEGER,
    updated_at  INTEGER NOT NULL,
    UNIQUE (pipeline_id, name)
);

-- Health probes of outside services and queues.
CREATE TABLE health_checks (
    id         INTEGER PRIMARY KEY,
    service    TEXT    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    status     TEXT    NOT NULL DEFAULT '',
    latency_ms INTEGER NOT NULL DEFAULT 0,
    error      TEXT    NOT NULL DEFAULT '',
    checked_at INTEGER NOT NULL
);
CREATE INDEX health_checks_service    ON health_checks (service, checked_at);
CREATE INDEX health_checks_checked_at ON health_checks (checked_at);
