DROP TABLE nodes;
DROP TABLE messages;
DROP TABLE participants;
DROP TABLE rooms;
