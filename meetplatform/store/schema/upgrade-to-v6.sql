-- Version 6: recordings (the catalogue of getRecordings) and the durable queue of their
-- processing and deletion jobs. Only new tables.

CREATE TABLE recordings
(
  record_id TEXT PRIMARY KEY,           -- sha1(meetingID)-<createTime>: BBB's form
  meeting_id TEXT NOT NULL,             -- the external meeting id
  internal_meeting_id TEXT NOT NULL,
  name TEXT NOT NULL,
  is_breakout INTEGER NOT NULL CHECK (is_breakout IN (0, 1)),
  -- BBB's states, plus 'failed' (processing gave up; the reason is in failure)
  state TEXT NOT NULL CHECK (state IN ('processing', 'processed', 'published',
                                       'unpublished', 'deleted', 'failed')),
  publish INTEGER NOT NULL CHECK (publish IN (0, 1)), -- published once processed?
  start_time INTEGER NOT NULL,          -- ms: the first segment's start
  end_time INTEGER NOT NULL,            -- ms: the last segment's end
  participants INTEGER NOT NULL,
  metadata TEXT NOT NULL,               -- JSON object (lower-case names, as meta_*)
  node TEXT,                            -- the media node that recorded it (NULL: none)
  source_dir TEXT,                      -- where that node wrote the meeting's .mjr files
  room TEXT,                            -- the meeting's VideoRoom room id on that node
  segments TEXT NOT NULL,               -- JSON [[start_ms, end_ms], ...] in order
  screens TEXT NOT NULL,                -- JSON [publisher id, ...] whose video is a screen
  length_ms INTEGER,                    -- of the composed video
  size INTEGER,                         -- bytes of the composed video
  processing_ms INTEGER,
  failure TEXT,                         -- why processing failed (state 'failed')
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE INDEX recordings_by_meeting ON recordings (meeting_id, start_time);
CREATE INDEX recordings_by_start ON recordings (start_time, record_id);

CREATE TABLE recording_jobs
(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  record_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('process', 'delete')),
  attempts INTEGER NOT NULL,            -- attempts that failed so far
  due_at INTEGER NOT NULL,              -- ms: not before (retry backoff)
  last_error TEXT,
  created_at INTEGER NOT NULL
);

CREATE INDEX recording_jobs_due ON recording_jobs (due_at, id);
