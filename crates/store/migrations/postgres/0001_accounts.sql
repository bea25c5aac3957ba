-- Accounts. `username` is the name as the user typed it at registration; `username_folded` is
-- its ASCII lowercase form, the key that makes names unique case-insensitively. COLLATE "C":
-- byte order, the same as SQLite's, whatever the database's locale.
CREATE TABLE accounts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username        TEXT   NOT NULL,
    username_folded TEXT   COLLATE "C" NOT NULL UNIQUE,
    password_hash   TEXT   NOT NULL,
    created_at_ms   BIGINT NOT NULL
);
