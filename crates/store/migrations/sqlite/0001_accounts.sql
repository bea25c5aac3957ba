-- Accounts. `username` is the name as the user typed it at registration; `username_folded` is
-- its ASCII lowercase form, the key that makes names unique case-insensitively.
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    username        TEXT    NOT NULL,
    username_folded TEXT    NOT NULL UNIQUE,
    password_hash   TEXT    NOT NULL,
    created_at_ms   INTEGER NOT NULL
);
