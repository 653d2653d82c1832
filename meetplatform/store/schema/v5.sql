-- meetplatform store, schema version 5: clients, their spaces and rooms, access tokens,
-- invitations (user tokens), meeting history (with the classroom's), webhooks and their
-- outbox, media nodes.
-- Times are integer milliseconds since the epoch (UTC). Secrets are never stored: only
-- SHA-256 hashes of them, and request-signing keys encrypted with the data directory's key.

CREATE TABLE version
(
  version INTEGER NOT NULL -- contains one row
);

CREATE TABLE clients
(
  id TEXT PRIMARY KEY,                  -- public client id, "mpc_..."
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,            -- hex SHA-256 of the client secret
  signing_key_box BLOB NOT NULL,        -- AES-GCM(nonce || ciphertext) of the HMAC signing key
  created_at INTEGER NOT NULL,
  rotated_at INTEGER,
  revoked_at INTEGER
);

CREATE TABLE spaces
(
  id TEXT PRIMARY KEY,                  -- "sp_..."
  client_id TEXT NOT NULL UNIQUE REFERENCES clients(id),
  name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
  embed_origins TEXT NOT NULL DEFAULT '[]', -- JSON array of origins
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

CREATE TABLE rooms
(
  id TEXT PRIMARY KEY,                  -- "rm_..."
  space_id TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
  alias TEXT NOT NULL UNIQUE,           -- used in URLs (/embed/<alias>)
  name TEXT NOT NULL,
  type TEXT NOT NULL CHECK (type IN ('conference', 'webinar')),
  visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
  lobby INTEGER NOT NULL CHECK (lobby IN (0, 1)),
  max_participants INTEGER NOT NULL CHECK (max_participants >= 0),
  camera INTEGER NOT NULL CHECK (camera IN (0, 1)),
  microphone INTEGER NOT NULL CHECK (microphone IN (0, 1)),
  screenshare INTEGER NOT NULL CHECK (screenshare IN (0, 1)),
  not_before INTEGER,
  expires_at INTEGER,
  metadata TEXT NOT NULL DEFAULT '{}',  -- JSON object of strings
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);
CREATE INDEX rooms_by_space ON rooms (space_id, created_at, id);

CREATE TABLE access_tokens
(
  id TEXT PRIMARY KEY,                  -- "at_...", shown by introspection as jti
  token_hash TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the bearer token
  client_id TEXT NOT NULL REFERENCES clients(id),
  kind TEXT NOT NULL CHECK (kind IN ('client', 'user')),
  scope TEXT NOT NULL,                  -- space-separated scopes
  space_id TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at INTEGER,
  room_id TEXT REFERENCES rooms(id) ON DELETE CASCADE, -- user tokens scoped to one room
  role TEXT CHECK (role IS NULL OR role IN ('moderator', 'participant', 'viewer')),
  user_token_id TEXT REFERENCES user_tokens(id) ON DELETE CASCADE -- the invitation it came from
);
CREATE INDEX access_tokens_by_client ON access_tokens (client_id, expires_at);

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

-- Version 3: meeting history, BigBlueButton hooks, per-space webhook endpoints and the
-- webhook outbox (what is still to be delivered, and each receiver's delivery state).

CREATE TABLE meeting_history
(
  internal_id TEXT PRIMARY KEY,         -- BBB internalMeetingID: sha1(meetingID)-createTime
  meeting_id TEXT NOT NULL,             -- the meetingID of create ("<spaceId>/<id>" for spaces)
  name TEXT NOT NULL,
  space_id TEXT,                        -- the space of a client's meeting or room (else NULL)
  room_id TEXT,                         -- the room, for a room's meeting
  node_name TEXT NOT NULL,              -- the server the meeting ran on
  node_url TEXT NOT NULL,
  create_time INTEGER NOT NULL,
  start_time INTEGER,                   -- the first participant connected
  end_time INTEGER,                     -- NULL while it runs
  end_reason TEXT,
  forcibly_ended INTEGER NOT NULL DEFAULT 0 CHECK (forcibly_ended IN (0, 1)),
  is_breakout INTEGER NOT NULL DEFAULT 0 CHECK (is_breakout IN (0, 1)),
  parent_id TEXT,
  record INTEGER NOT NULL DEFAULT 0 CHECK (record IN (0, 1)),
  query TEXT NOT NULL DEFAULT '{}',     -- JSON object: the create parameters, passwords removed
  metadata TEXT NOT NULL DEFAULT '{}',  -- JSON object: meta_* names (lower case) and values
  users INTEGER NOT NULL DEFAULT 0,     -- distinct users (external ids) that connected
  joins INTEGER NOT NULL DEFAULT 0      -- attendance rows (a user joining twice counts twice)
);
CREATE INDEX meeting_history_by_create ON meeting_history (create_time, internal_id);
CREATE INDEX meeting_history_by_meeting ON meeting_history (meeting_id, create_time);
CREATE INDEX meeting_history_by_space ON meeting_history (space_id, create_time, internal_id);
CREATE INDEX meeting_history_by_room ON meeting_history (room_id, create_time, internal_id);
CREATE INDEX meeting_history_by_end ON meeting_history (end_time);

CREATE TABLE attendance_history
(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  internal_meeting_id TEXT NOT NULL REFERENCES meeting_history(internal_id) ON DELETE CASCADE,
  user_id TEXT NOT NULL,                -- internal user id ("w_...")
  external_user_id TEXT NOT NULL,
  full_name TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('MODERATOR', 'VIEWER')),
  guest INTEGER NOT NULL DEFAULT 0 CHECK (guest IN (0, 1)),
  join_time INTEGER NOT NULL,
  left_time INTEGER,                    -- NULL while connected
  left_reason TEXT                      -- left, disconnected, removed, ended
);
CREATE INDEX attendance_history_by_meeting
  ON attendance_history (internal_meeting_id, join_time, id);
CREATE INDEX attendance_history_by_user
  ON attendance_history (internal_meeting_id, user_id, left_time);
CREATE INDEX attendance_history_by_external
  ON attendance_history (internal_meeting_id, external_user_id);

CREATE TABLE bbb_hooks
(
  id TEXT PRIMARY KEY,                  -- UUID, as bbb-webhooks
  callback_url TEXT NOT NULL UNIQUE,
  meeting_id TEXT,                      -- external meetingID; NULL: every meeting
  event_ids TEXT,                       -- comma list of event names (lower case); NULL: all
  get_raw INTEGER NOT NULL DEFAULT 0 CHECK (get_raw IN (0, 1)),
  checksum_algorithm TEXT NOT NULL DEFAULT 'sha1'
    CHECK (checksum_algorithm IN ('sha1', 'sha256', 'sha384', 'sha512')),
  created_at INTEGER NOT NULL
);

CREATE TABLE webhook_endpoints
(
  id TEXT PRIMARY KEY,                  -- "we_..."
  space_id TEXT NOT NULL REFERENCES spaces(id) ON DELETE CASCADE,
  url TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '',
  event_types TEXT NOT NULL DEFAULT '[]', -- JSON array of event types; empty: every type
  secret_box BLOB NOT NULL,             -- AES-GCM sealed signing secret (store.key)
  previous_secret_box BLOB,             -- the secret before the last rotation ...
  previous_secret_expires_at INTEGER,   -- ... still signed with until then
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  secret_rotated_at INTEGER,
  disabled_at INTEGER,                  -- NULL: enabled
  disabled_reason TEXT
);
CREATE INDEX webhook_endpoints_by_space ON webhook_endpoints (space_id, created_at, id);

CREATE TABLE webhook_outbox
(
  seq INTEGER PRIMARY KEY AUTOINCREMENT, -- delivery order
  event_id TEXT NOT NULL,               -- the same on every attempt: receivers deduplicate by it
  event_type TEXT NOT NULL,
  target_kind TEXT NOT NULL CHECK (target_kind IN ('hook', 'endpoint', 'callback')),
  target_id TEXT NOT NULL,              -- bbb_hooks.id, webhook_endpoints.id, or the callback's id
  ordering_key TEXT NOT NULL DEFAULT '', -- events with the same key reach a target in order
  method TEXT NOT NULL DEFAULT 'POST' CHECK (method IN ('GET', 'POST')),
  url TEXT,                             -- callbacks only (hooks and endpoints: their own URL)
  payload TEXT NOT NULL DEFAULT '',     -- JSON
  created_at INTEGER NOT NULL,          -- when the event happened
  attempts INTEGER NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE INDEX webhook_outbox_by_target ON webhook_outbox (target_kind, target_id, seq);
CREATE INDEX webhook_outbox_by_time ON webhook_outbox (created_at);

CREATE TABLE webhook_delivery_state
(
  target_kind TEXT NOT NULL,
  target_id TEXT NOT NULL,
  consecutive_failures INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER,              -- no attempt before this (backoff)
  last_success_at INTEGER,
  last_failure_at INTEGER,
  last_error TEXT,
  PRIMARY KEY (target_kind, target_id)
);

CREATE TABLE media_nodes
(
  name TEXT PRIMARY KEY,                -- the operator's name for it ("local", "sfu-1", ...)
  admin_url TEXT NOT NULL,              -- Janus Admin API: http://host:7088/admin
  ws_url TEXT NOT NULL,                 -- Janus API over WebSocket: ws://host:8188
  secrets_box BLOB NOT NULL,            -- AES-GCM sealed JSON of the node's secrets (store.key)
  capacity INTEGER NOT NULL CHECK (capacity >= 1), -- streams (publishers + subscriptions)
  state TEXT NOT NULL DEFAULT 'enabled' CHECK (state IN ('enabled', 'disabled', 'draining')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

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
