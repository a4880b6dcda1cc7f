-- Roomgate's tables on SQLite, the embedded default. Same names and meaning as the MySQL
-- migrations; SQLite's default BINARY collation already compares identifiers byte by byte.
-- Foreign keys are enforced because every connection runs `PRAGMA foreign_keys = ON`.

CREATE TABLE rooms (
    id            TEXT      NOT NULL PRIMARY KEY,
    title         TEXT      NOT NULL,
    capacity      INTEGER   NOT NULL,
    attending     INTEGER   NOT NULL DEFAULT 0,
    password_hash TEXT      NULL,
    created_by    TEXT      NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    -- Bumped by every seat taken, so the optimistic join guard detects a concurrent join.
    -- Leaves do not bump it: freeing a seat cannot make a join's "a seat is free" wrong.
    version       BIGINT    NOT NULL DEFAULT 0,
    -- The last line of defence: the database never stores more members than seats.
    CONSTRAINT rooms_capacity_positive CHECK (capacity > 0),
    CONSTRAINT rooms_attending_within_capacity CHECK (attending >= 0 AND attending <= capacity)
);

CREATE TABLE participants (
    room_id   TEXT      NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT      NOT NULL,
    -- The node whose WebSocket session holds this seat; reaping a dead node frees its seats.
    node_id   BIGINT    NOT NULL,
    joined_at TIMESTAMP NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX participants_node_id ON participants (node_id);

CREATE TABLE messages (
    -- AUTOINCREMENT: ids are never reused, so a client's "last seen id" stays meaningful.
    id      INTEGER   NOT NULL PRIMARY KEY AUTOINCREMENT,
    room_id TEXT      NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id TEXT      NOT NULL,
    body    TEXT      NOT NULL,
    sent_at TIMESTAMP NOT NULL
);
-- History reads "the last N messages of a room" by walking this index backwards.
CREATE INDEX messages_room_id_id ON messages (room_id, id);

CREATE TABLE nodes (
    id           BIGINT    NOT NULL PRIMARY KEY,
    started_at   TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL
);
