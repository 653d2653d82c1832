-- Version 5: the classroom's history (pages shown, the annotation log, polls) of each
-- meeting. Only a new table: nothing existing changes.

CREATE TABLE classroom_history
(
  id INTEGER PRIMARY KEY AUTOINCREMENT, -- the order things happened in
  internal_meeting_id TEXT NOT NULL REFERENCES meeting_history(internal_id) ON DELETE CASCADE,
  at INTEGER NOT NULL,
  kind TEXT NOT NULL,                   -- page, shape, shapes-removed, multi-user, document,
                                        -- poll-started, poll-answered, poll-stopped, poll-published
  user_id TEXT,                         -- who did it; NULL for the server and for the answers
                                        -- of anonymous polls (who answered what is never kept)
  data TEXT NOT NULL DEFAULT '{}'       -- JSON object, by kind (docs/conference.md)
);
CREATE INDEX classroom_history_by_meeting ON classroom_history (internal_meeting_id, id);
