//! Persistent rooms: their settings and the roles users hold in them.
//!
//! Only *persistent* rooms are stored; temporary rooms live in the server's memory. Who is in a
//! room is not stored either: members are sessions, which end with the server. What survives a
//! restart is what the owner set up — topic, password, invite-only, operators and invitations.

use crate::accounts::{fold, found};
use crate::db::with_pool;
use crate::error::{Error, Result};
use crate::history::without_nul;
use crate::store::Store;

/// A persistent room as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredRoom {
    /// The name as created.
    pub name: String,
    /// The owner's folded name.
    pub owner: String,
    /// The topic ('' for none).
    pub topic: String,
    /// The join password ('' for none).
    pub password: String,
    /// Whether joining needs an invitation.
    pub invite_only: bool,
    /// When it was created, Unix ms.
    pub created_at_ms: i64,
    /// Folded names of its operators.
    pub operators: Vec<String>,
    /// Folded names of the users invited to it.
    pub invited: Vec<String>,
}

/// A role a user holds in a persistent room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomRole {
    /// A room operator.
    Operator,
    /// Invited to an invite-only room.
    Invited,
}

impl RoomRole {
    fn code(self) -> i16 {
        match self {
            RoomRole::Operator => 1,
            RoomRole::Invited => 2,
        }
    }
}

type RoomRow = (String, String, String, String, i16, i64);

impl Store {
    /// Stores a new persistent room (its `operators` and `invited` are ignored: a new room has
    /// none). [`Error::NameTaken`] if a room of that folded name exists.
    pub async fn create_room(&self, room: &StoredRoom) -> Result<()> {
        let room = room.clone();
        self.run(move |db| async move {
            let inserted = with_pool!(&db, |pool| {
                sqlx::query(
                    "INSERT INTO rooms (name_folded, name, owner, topic, password, invite_only, \
                     created_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (name_folded) DO NOTHING",
                )
                .bind(fold(&room.name))
                .bind(&room.name)
                .bind(fold(&room.owner))
                .bind(without_nul(&room.topic))
                .bind(without_nul(&room.password))
                .bind(i16::from(room.invite_only))
                .bind(room.created_at_ms)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })?;
            if inserted == 0 {
                Err(Error::NameTaken)
            } else {
                Ok(())
            }
        })
        .await
    }

    /// Every persistent room, with its roles, in folded-name order.
    pub async fn load_rooms(&self) -> Result<Vec<StoredRoom>> {
        self.run(move |db| async move {
            let rows: Vec<RoomRow> = with_pool!(&db, |pool| {
                sqlx::query_as(
                    "SELECT name, owner, topic, password, invite_only, created_at_ms FROM rooms \
                     ORDER BY name_folded",
                )
                .fetch_all(pool)
                .await
            })?;
            let roles: Vec<(String, String, i16)> = with_pool!(&db, |pool| {
                sqlx::query_as("SELECT room, username_folded, role FROM room_members")
                    .fetch_all(pool)
                    .await
            })?;
            let mut rooms: Vec<StoredRoom> = rows
                .into_iter()
                .map(
                    |(name, owner, topic, password, invite_only, created_at_ms)| StoredRoom {
                        name,
                        owner,
                        topic,
                        password,
                        invite_only: invite_only != 0,
                        created_at_ms,
                        operators: Vec::new(),
                        invited: Vec::new(),
                    },
                )
                .collect();
            for (room, user, role) in roles {
                let Ok(index) = rooms.binary_search_by(|r| fold(&r.name).cmp(&room)) else {
                    continue;
                };
                match role {
                    1 => rooms[index].operators.push(user),
                    2 => rooms[index].invited.push(user),
                    _ => {}
                }
            }
            Ok(rooms)
        })
        .await
    }

    /// Sets the topic of the persistent room `room`. [`Error::NotFound`] if there is none.
    pub async fn set_room_topic(&self, room: &str, topic: &str) -> Result<()> {
        let (room, topic) = (fold(room), without_nul(topic).into_owned());
        self.run(move |db| async move {
            let done = with_pool!(&db, |pool| {
                sqlx::query("UPDATE rooms SET topic = $1 WHERE name_folded = $2")
                    .bind(&topic)
                    .bind(&room)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            found(done)
        })
        .await
    }

    /// Gives (`held`) or takes away `user`'s `role` in the persistent room `room`. Idempotent.
    pub async fn set_room_role(
        &self,
        room: &str,
        user: &str,
        role: RoomRole,
        held: bool,
    ) -> Result<()> {
        let (room, user) = (fold(room), fold(user));
        self.run(move |db| async move {
            with_pool!(&db, |pool| {
                let query = if held {
                    sqlx::query(
                        "INSERT INTO room_members (room, username_folded, role) \
                         VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    )
                } else {
                    sqlx::query(
                        "DELETE FROM room_members \
                         WHERE room = $1 AND username_folded = $2 AND role = $3",
                    )
                };
                query
                    .bind(&room)
                    .bind(&user)
                    .bind(role.code())
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            Ok(())
        })
        .await
    }

    /// Deletes the persistent room `room` and its roles. [`Error::NotFound`] if there is none.
    pub async fn delete_room(&self, room: &str) -> Result<()> {
        let room = fold(room);
        self.run(move |db| async move {
            let done = with_pool!(&db, |pool| {
                sqlx::query("DELETE FROM rooms WHERE name_folded = $1")
                    .bind(&room)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            })?;
            found(done)
        })
        .await
    }
}
