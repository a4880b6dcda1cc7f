-- Room events: the outbox. Every change to a room's membership writes one row here in the same
-- transaction as the change, so an event exists exactly when its change committed.

-- The last `seq` given to one of the room's events (0: none yet). The statement that already
-- locks and updates the room row for a join or a leave also increments this, so the sequence is
-- gapless per room and costs no statement of its own: the event's INSERT copies it (and
-- `attending`) from the row it locked. Rooms created before this migration start at 1 with their
-- next change.
ALTER TABLE rooms ADD COLUMN last_event_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE room_events (
    room_id    VARCHAR(63) NOT NULL,
    -- 1, 2, 3, … within the room, in commit order.
    seq        BIGINT      NOT NULL,
    kind       VARCHAR(16) NOT NULL,
    user_id    VARCHAR(64) NOT NULL,
    -- The room's attendance right after the change (0 for `room_opened`, whose creator joins
    -- in the next event).
    attending  INTEGER     NOT NULL,
    -- Why a member left; NULL for every other kind.
    reason     VARCHAR(16) NULL,
    at         DATETIME(6) NOT NULL,
    -- When a relay handed the event on (a Redis Stream); NULL until then. Relayed rows are
    -- pruned after a while.
    relayed_at DATETIME(6) NULL,
    PRIMARY KEY (room_id, seq),
    -- The relay reads `relayed_at IS NULL ORDER BY room_id, seq`, and pruning the range
    -- `relayed_at < cutoff`, both along this index (NULLs sort first).
    KEY room_events_unrelayed (relayed_at, room_id, seq),
    CONSTRAINT room_events_room_id FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE CASCADE,
    CONSTRAINT room_events_seq_positive CHECK (seq > 0),
    CONSTRAINT room_events_attending_non_negative CHECK (attending >= 0),
    CONSTRAINT room_events_kind CHECK (kind IN ('room_opened', 'member_joined', 'member_left')),
    -- A reason exactly on `member_left` (written so that a NULL reason cannot pass as unknown).
    CONSTRAINT room_events_reason CHECK (
        (kind = 'member_left' AND reason IS NOT NULL
            AND reason IN ('left', 'disconnected', 'timed_out', 'reclaimed', 'shutdown'))
        OR (kind <> 'member_left' AND reason IS NULL)
    )
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
