-- Version 4: media nodes (Janus instances meetings are placed on). Only a new table.

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
