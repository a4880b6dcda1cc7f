-- Room events: the outbox. Same names and meaning as the MySQL migration: every change to a
-- room's membership writes one row here in the same transaction as the change.

-- The last `seq` given to one of the room's events (0: none yet), incremented by the statement
-- that already updates the room row for a join or a leave; the event's INSERT copies it.
ALTER TABLE rooms ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;

-- WITHOUT ROWID: the table is its primary key's B-tree, so an event is one B-tree insert plus
-- the relay index, not a rowid table plus a separate primary-key index.
CREATE TABLE room_events (
    room_id    TEXT      NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT    NOT NULL,
    kind       TEXT      NOT NULL,
    user_id    TEXT      NOT NULL,
    attending  INTEGER   NOT NULL,
    reason     TEXT      NULL,
    at         TIMESTAMP NOT NULL,
    relayed_at TIMESTAMP NULL,
    PRIMARY KEY (room_id, seq),
    CONSTRAINT room_events_seq_positive CHECK (seq > 0),
    CONSTRAINT room_events_attending_non_negative CHECK (attending >= 0),
    CONSTRAINT room_events_kind CHECK (kind IN ('room_opened', 'member_joined', 'member_left')),
    CONSTRAINT room_events_reason CHECK (
        (kind = 'member_left' AND reason IS NOT NULL
            AND reason IN ('left', 'disconnected', 'timed_out', 'reclaimed', 'shutdown'))
        OR (kind <> 'member_left' AND reason IS NULL)
    )
) WITHOUT ROWID;
-- The relay reads `relayed_at IS NULL ORDER BY room_id, seq`, and pruning the range
-- `relayed_at < cutoff`, both along this index.
CREATE INDEX room_events_unrelayed ON room_events (relayed_at, room_id, seq);
