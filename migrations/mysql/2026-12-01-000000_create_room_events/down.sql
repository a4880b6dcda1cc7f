DROP TABLE room_events;
ALTER TABLE rooms DROP COLUMN last_event_seq;
