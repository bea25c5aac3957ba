-- Message history: every accepted broadcast and whisper.
-- kind: 1 broadcast, 2 whisper, 3 room message (reserved for the rooms migration).
-- conversation: the key a history query looks up: 'global' for broadcasts,
-- 'w:<a>:<b>' for a whisper between the folded names a <= b, 'r:<room>' for rooms (later).
CREATE TABLE messages (
    message_id   BIGINT   PRIMARY KEY,
    sent_at_ms   BIGINT   NOT NULL,
    kind         SMALLINT NOT NULL CHECK (kind IN (1, 2, 3)),
    sender       TEXT     NOT NULL,
    recipient    TEXT     COLLATE "C",
    channel      TEXT     COLLATE "C",
    conversation TEXT     COLLATE "C" NOT NULL,
    text         TEXT     NOT NULL
);
CREATE INDEX messages_by_conversation ON messages (conversation, message_id);
CREATE INDEX messages_by_age ON messages (sent_at_ms);
