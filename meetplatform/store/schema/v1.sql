-- meetplatform store, schema version 1: clients, their spaces and rooms, access tokens.
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
  revoked_at INTEGER
);
CREATE INDEX access_tokens_by_client ON access_tokens (client_id, expires_at);
