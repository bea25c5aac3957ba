//! Account requests (register, change password) and the history request.

use suda_protocol::{Packet, ResultCode, WireStr};
use suda_store::history::{Channel, Target};

use super::Session;
use crate::auth::is_valid_username;
use crate::config::AuthMode;
use crate::ids::unix_time_ms;
use crate::storage::PASSWORD_LEN;

/// Most messages one `HISTORY_REQ` returns.
const MAX_HISTORY: u8 = 100;

impl Session {
    /// `REGISTER_REQ`: creates an account, if the server keeps accounts and lets clients make
    /// them.
    pub(super) async fn register(&mut self, username: &WireStr, password: &WireStr) -> ResultCode {
        let shared = self.shard.shared.clone();
        let Some(storage) = shared.storage() else {
            return ResultCode::NOT_AVAILABLE;
        };
        if shared.config.auth == AuthMode::Token {
            // Accounts belong to the application's own backend in token mode.
            return ResultCode::NOT_AVAILABLE;
        }
        if !shared.config.registration {
            return ResultCode::REGISTRATION_CLOSED;
        }
        let name = match username.to_str() {
            Ok(name) if is_valid_username(name.as_bytes()) => name,
            _ => return ResultCode::INVALID_USERNAME,
        };
        if !PASSWORD_LEN.contains(&password.len()) {
            return ResultCode::WEAK_PASSWORD;
        }
        // Each registration costs a deliberately slow hash: charge it like a message.
        if let Err(code) = self.charge(0) {
            return code;
        }
        // A taken name is refused before the hash, not after: the answer says it is taken
        // either way, and the hash would be load for nothing. (Two registrations of one free
        // name can still race past this; the store's uniqueness decides between them.)
        match storage.store.account(name).await {
            Ok(None) => {}
            Ok(Some(_)) => return ResultCode::USERNAME_TAKEN,
            Err(err) => {
                session_event!(self, WARN, %err, "account lookup failed");
                return ResultCode::SERVER_BUSY;
            }
        }
        let hash = match storage.hasher.hash(password.as_bytes()).await {
            Ok(hash) => hash,
            Err(err) => {
                session_event!(self, WARN, %err, "password hashing failed");
                return ResultCode::SERVER_BUSY;
            }
        };
        let now_ms = i64::try_from(unix_time_ms()).unwrap_or(i64::MAX);
        match storage.store.create_account(name, &hash, now_ms).await {
            Ok(_) => {
                session_event!(self, INFO, account = name, "account registered");
                ResultCode::OK
            }
            Err(suda_store::Error::NameTaken) => ResultCode::USERNAME_TAKEN,
            Err(err) => {
                session_event!(self, WARN, %err, "registration failed");
                ResultCode::SERVER_BUSY
            }
        }
    }

    /// `CHANGE_PASSWORD_REQ`: the logged-in user's account gets a new password, given the old.
    pub(super) async fn change_password(&mut self, old: &WireStr, new: &WireStr) -> ResultCode {
        let shared = self.shard.shared.clone();
        let Some(identity) = &self.identity else {
            return ResultCode::NOT_AUTHENTICATED;
        };
        let name = identity.name.clone();
        let Some(storage) = shared.storage() else {
            return ResultCode::NOT_AVAILABLE;
        };
        if shared.config.auth == AuthMode::Token {
            return ResultCode::NOT_AVAILABLE;
        }
        if !PASSWORD_LEN.contains(&new.len()) {
            return ResultCode::WEAK_PASSWORD;
        }
        let account = match storage.store.account(&name).await {
            Ok(Some(account)) => account,
            Ok(None) => return ResultCode::NOT_AVAILABLE,
            Err(err) => {
                session_event!(self, WARN, %err, "account lookup failed");
                return ResultCode::SERVER_BUSY;
            }
        };
        match storage
            .hasher
            .verify(old.as_bytes(), &account.password_hash)
            .await
        {
            Ok(true) => {}
            _ => return ResultCode::INVALID_CREDENTIALS,
        }
        let hash = match storage.hasher.hash(new.as_bytes()).await {
            Ok(hash) => hash,
            Err(err) => {
                session_event!(self, WARN, %err, "password hashing failed");
                return ResultCode::SERVER_BUSY;
            }
        };
        match storage.store.set_password_hash(&name, &hash).await {
            Ok(()) => {
                session_event!(self, INFO, "password changed");
                ResultCode::OK
            }
            Err(err) => {
                session_event!(self, WARN, %err, "password change failed");
                ResultCode::SERVER_BUSY
            }
        }
    }

    /// `HISTORY_REQ`: `HISTORY_RES`, then the messages, oldest first. Whispers only between the
    /// caller and `peer`.
    pub(super) async fn history(&mut self, channel: u8, peer: &WireStr, before_id: u64, limit: u8) {
        let refuse = |session: &Self, result| {
            session.reply(&Packet::HistoryRes { result, count: 0 });
        };
        let shared = self.shard.shared.clone();
        let Some(identity) = &self.identity else {
            return refuse(self, ResultCode::NOT_AUTHENTICATED);
        };
        let me = identity.name.to_ascii_lowercase();
        let Some(storage) = shared.storage() else {
            return refuse(self, ResultCode::NOT_AVAILABLE);
        };
        let peer_name = match (channel, peer.to_str()) {
            (0, _) => String::new(),
            (1, Ok(peer)) if is_valid_username(peer.as_bytes()) => peer.to_ascii_lowercase(),
            (1, _) => return refuse(self, ResultCode::USER_NOT_FOUND),
            (2, Ok(room)) if crate::rooms::is_valid_room_name(room.as_bytes()) => {
                let room = room.to_ascii_lowercase();
                // A room's history is its members' business only.
                if self.me.room(&room).is_none() {
                    let known = shared.rooms.get(&room).is_some();
                    let code = if known {
                        ResultCode::NOT_IN_ROOM
                    } else {
                        ResultCode::ROOM_NOT_FOUND
                    };
                    return refuse(self, code);
                }
                room
            }
            (2, _) => return refuse(self, ResultCode::INVALID_ROOM_NAME),
            _ => return refuse(self, ResultCode::INVALID_MESSAGE),
        };
        let query = match channel {
            0 => Channel::Global,
            1 => Channel::Whisper {
                me: &me,
                peer: &peer_name,
            },
            _ => Channel::Room { room: &peer_name },
        };
        let before = (before_id != 0).then(|| i64::try_from(before_id).unwrap_or(i64::MAX));
        let limit = u32::from(limit.clamp(1, MAX_HISTORY));
        let messages = match storage.store.history(query, before, limit).await {
            Ok(messages) => messages,
            Err(err) => {
                session_event!(self, WARN, %err, "history query failed");
                return refuse(self, ResultCode::SERVER_BUSY);
            }
        };
        self.reply(&Packet::HistoryRes {
            result: ResultCode::OK,
            count: u16::try_from(messages.len()).unwrap_or(u16::MAX),
        });
        for message in messages {
            let (kind, to) = match &message.target {
                Target::Whisper { recipient } => (2, WireStr::from(recipient.as_str())),
                Target::Room { room } => (3, WireStr::from(room.as_str())),
                // Broadcasts (and kinds a newer store may add) have no single recipient.
                _ => (1, WireStr::default()),
            };
            self.reply(&Packet::HistoryItem {
                message_id: u64::try_from(message.message_id).unwrap_or(0),
                sent_at_ms: u64::try_from(message.sent_at_ms).unwrap_or(0),
                kind,
                from: message.sender.into(),
                to,
                text: message.text.into(),
            });
        }
    }
}
