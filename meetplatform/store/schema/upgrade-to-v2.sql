-- Version 2: invitations (user tokens), and access tokens issued to invited users.

CREATE TABLE user_tokens
(
  id TEXT PRIMARY KEY,                  -- "ut_..."
  token_hash TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the invitation secret
  space_id TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
  room_id TEXT REFERENCES rooms(id) ON DELETE CASCADE, -- NULL: the whole space
  role TEXT NOT NULL CHECK (role IN ('moderator', 'participant', 'viewer')),
  display_name TEXT NOT NULL DEFAULT '',
  external_user_id TEXT NOT NULL DEFAULT '',
  permissions TEXT NOT NULL DEFAULT '{}', -- JSON {camera, microphone, screenshare}: narrowing only
  max_uses INTEGER NOT NULL CHECK (max_uses >= 1),
  uses INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0),
  not_before INTEGER,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  last_activated_at INTEGER,
  revoked_at INTEGER
);
CREATE INDEX user_tokens_by_space ON user_tokens (space_id, created_at, id);
CREATE INDEX user_tokens_by_room ON user_tokens (room_id, created_at, id);

ALTER TABLE access_tokens ADD COLUMN room_id TEXT REFERENCES rooms(id) ON DELETE CASCADE;
ALTER TABLE access_tokens ADD COLUMN role TEXT CHECK (role IS NULL OR role IN ('moderator', 'participant', 'viewer'));
ALTER TABLE access_tokens ADD COLUMN user_token_id TEXT REFERENCES user_tokens(id) ON DELETE CASCADE;
