-- Persistent rooms. `name` is the name as created; `name_folded` its ASCII lowercase form, the
-- unique key. `owner` is a folded username; `password` is the room's join key ('' for none), a
-- shared secret of the room rather than an account credential.
CREATE TABLE rooms (
    name_folded   TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    owner         TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    password      TEXT    NOT NULL,
    invite_only   INTEGER NOT NULL CHECK (invite_only IN (0, 1)),
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- Roles of users in persistent rooms: 1 operator, 2 invited. Membership itself is not stored:
-- members are the sessions online in the room.
CREATE TABLE room_members (
    room            TEXT    NOT NULL REFERENCES rooms (name_folded) ON DELETE CASCADE,
    username_folded TEXT    NOT NULL,
    role            INTEGER NOT NULL CHECK (role IN (1, 2)),
    PRIMARY KEY (room, username_folded, role)
) WITHOUT ROWID;
