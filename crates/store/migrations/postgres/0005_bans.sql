-- Server-wide sanctions: 1 user ban, 2 IP ban, 3 mute. `target` is a folded username or an IP
-- address in its canonical text form. `expires_at_ms` NULL: until lifted.
CREATE TABLE bans (
    kind          SMALLINT NOT NULL CHECK (kind IN (1, 2, 3)),
    target        TEXT     COLLATE "C" NOT NULL,
    expires_at_ms BIGINT,
    reason        TEXT     NOT NULL,
    actor         TEXT     NOT NULL,
    created_at_ms BIGINT   NOT NULL,
    PRIMARY KEY (kind, target)
);

-- Every moderation action, append-only: who did what to whom, and why.
CREATE TABLE moderation_log (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms  BIGINT NOT NULL,
    actor  TEXT   NOT NULL,
    action TEXT   NOT NULL,
    target TEXT   NOT NULL,
    room   TEXT,
    reason TEXT   NOT NULL
);
