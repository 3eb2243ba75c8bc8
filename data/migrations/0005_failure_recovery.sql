-- failure_recovery: a failure row rebuilt from the queue's record of the
-- attempt (the reconciliation of failures.Reconciler: a row lost to a crash
-- or dropped by a full writer, or an attempt the capture never saw, such as
-- a crash strike) is marked recovered. See data/schema.md.

ALTER TABLE failures ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1));
