-- Whispers to registered users who were offline, waiting for their next login. Deleted when
-- fetched, or with the account.
CREATE TABLE pending_whispers (
    recipient  TEXT    NOT NULL REFERENCES accounts (username_folded) ON DELETE CASCADE,
    message_id INTEGER NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    sender     TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    PRIMARY KEY (recipient, message_id)
) WITHOUT ROWID;
