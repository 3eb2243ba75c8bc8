-- 0002_cron_history: what the recurring scheduler remembers about each entry
-- (the cron package's History: since, last fire, last missed tick), the
-- cron line and state it last ran the entry with, the last enqueue-now, and
-- the ranges of ticks it reported missed. See data/schema.md.

ALTER TABLE cron_entries ADD COLUMN line TEXT NOT NULL DEFAULT '';
ALTER TABLE cron_entries ADD COLUMN active INTEGER NOT NULL DEFAULT 0 CHECK (active IN (0, 1));
ALTER TABLE cron_entries ADD COLUMN since INTEGER;
ALTER TABLE cron_entries ADD COLUMN missed_last INTEGER;
ALTER TABLE cron_entries ADD COLUMN manual_job_id INTEGER;
ALTER TABLE cron_entries ADD COLUMN manual_at INTEGER;

-- Every range of ticks the scheduler reported missed (downtime, a clock
-- jump, a scheduler that woke too late): from first_tick to last_tick, every
-- tick of the entry in between was missed too. UNIQUE (entry, first_tick)
-- makes recording a report twice harmless.
CREATE TABLE cron_misses (
    id          INTEGER PRIMARY KEY,
    entry       TEXT    NOT NULL,
    first_tick  INTEGER NOT NULL,
    last_tick   INTEGER NOT NULL,
    reported_at INTEGER NOT NULL,
    UNIQUE (entry, first_tick)
);
CREATE INDEX cron_misses_reported_at ON cron_misses (reported_at);
