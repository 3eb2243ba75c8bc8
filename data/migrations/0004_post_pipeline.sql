-- 0004_post_pipeline: what the post-analysis pipeline across the AI
-- capsules keeps (package jobs): each post's kind of media, the frames
-- generated from a video, and one result per post, capability and frame.
-- See data/schema.md.

-- A post's media is an image or a video: a video goes through video
-- processing and frame generation before visual analysis.
ALTER TABLE posts ADD COLUMN media_type TEXT NOT NULL DEFAULT 'image' CHECK (media_type IN ('image', 'video'));

-- 0 is the post's own media file; n >= 1 is frame n generated from the
-- post's video (stored like any media, and purged with it).
ALTER TABLE post_media ADD COLUMN frame INTEGER NOT NULL DEFAULT 0 CHECK (frame >= 0);
CREATE UNIQUE INDEX post_media_post_frame ON post_media (post_id, frame);

-- One result of the local AI service per post, capability (visual, faces,
-- ocr, metadata, video, frames) and frame (0: the post itself). The first
-- result stored is kept: a step run again reads it instead of asking again.
CREATE TABLE post_analyses (
    post_id     INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    capability  TEXT    NOT NULL,
    frame       INTEGER NOT NULL DEFAULT 0 CHECK (frame >= 0),
    job_id      INTEGER NOT NULL,
    result      TEXT    NOT NULL,
    analyzed_at INTEGER NOT NULL,
    PRIMARY KEY (post_id, capability, frame)
) WITHOUT ROWID;
