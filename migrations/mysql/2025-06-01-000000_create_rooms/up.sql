-- Roomgate's tables on MariaDB/MySQL (InnoDB).
-- Identifier columns use a binary collation: user ids are case-sensitive ("Alice" is not
-- "alice"), and byte order makes `ORDER BY id` agree with Rust's ordering of the same strings.

CREATE TABLE rooms (
    id            VARCHAR(63)  NOT NULL,
    title         VARCHAR(100) NOT NULL,
    capacity      INTEGER      NOT NULL,
    attending     INTEGER      NOT NULL DEFAULT 0,
    password_hash VARCHAR(255) NULL,
    created_by    VARCHAR(64)  NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    -- Bumped by every seat taken, so the optimistic join guard detects a concurrent join.
    -- Leaves do not bump it: freeing a seat cannot make a join's "a seat is free" wrong.
    version       BIGINT       NOT NULL DEFAULT 0,
    PRIMARY KEY (id),
    -- The last line of defence: whatever the application believes, the database never stores a
    -- room with more members than seats (MariaDB enforces CHECK constraints since 10.2).
    CONSTRAINT rooms_capacity_positive CHECK (capacity > 0),
    CONSTRAINT rooms_attending_within_capacity CHECK (attending >= 0 AND attending <= capacity)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE participants (
    room_id   VARCHAR(63) NOT NULL,
    user_id   VARCHAR(64) NOT NULL,
    -- The node whose WebSocket session holds this seat; reaping a dead node frees its seats.
    node_id   BIGINT      NOT NULL,
    joined_at DATETIME(6) NOT NULL,
    PRIMARY KEY (room_id, user_id),
    KEY participants_node_id (node_id),
    CONSTRAINT participants_room_id FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE messages (
    id      BIGINT      NOT NULL AUTO_INCREMENT,
    room_id VARCHAR(63) NOT NULL,
    user_id VARCHAR(64) NOT NULL,
    body    TEXT        NOT NULL,
    sent_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    -- History reads "the last N messages of a room" by walking this index backwards.
    KEY messages_room_id_id (room_id, id),
    CONSTRAINT messages_room_id FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE nodes (
    id           BIGINT      NOT NULL,
    started_at   DATETIME(6) NOT NULL,
    heartbeat_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
