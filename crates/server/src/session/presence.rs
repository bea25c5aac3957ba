//! Presence requests: the online list, away statuses, and watch lists.

use std::sync::Arc;

use bytes::BytesMut;
use suda_protocol::{Packet, PacketType, ResultCode, WireStr};
use tokio::time::Instant;

use super::Session;
use super::chat::clean_text;
use super::rooms::MAX_PAGE;
use crate::auth::is_valid_username;
use crate::directory::Route;
use crate::presence::{AWAY, MAX_STATUS_TEXT, OFFLINE, ONLINE};
use crate::shard::Fanout;

impl Session {
    pub(super) fn user_list(&mut self, after: &WireStr, limit: u8) {
        let refuse = |session: &Self, result| {
            session.reply(&Packet::UserListRes { result, count: 0 });
        };
        if let Err(code) = self.sender() {
            return refuse(self, code);
        }
        if limit == 0 || limit > MAX_PAGE {
            return refuse(self, ResultCode::INVALID_REQUEST);
        }
        if let Err(code) = self.charge(0) {
            return refuse(self, code);
        }
        let shared = self.shard.shared.clone();
        let after = after.to_string_lossy();
        let page = shared.directory.page(&after, usize::from(limit));
        self.reply(&Packet::UserListRes {
            result: ResultCode::OK,
            count: u16::try_from(page.len()).unwrap_or(u16::MAX),
        });
        for entry in page {
            let (status, text) = shared
                .presence
                .status(&entry.display_name.to_ascii_lowercase());
            self.reply(&Packet::UserItem {
                user: (*entry.display_name).into(),
                status,
                role: 0,
                text: (*text).into(),
            });
        }
    }

    pub(super) async fn set_status(&mut self, status: u8, text: &WireStr) -> ResultCode {
        let (me, name) = match self.sender() {
            Ok(identity) => (identity.folded(), identity.name.clone()),
            Err(code) => return code,
        };
        let text = match status {
            ONLINE => "",
            AWAY => match clean_text(text, MAX_STATUS_TEXT) {
                Ok(text) => text,
                Err(code) => return code,
            },
            _ => return ResultCode::INVALID_REQUEST,
        };
        if let Err(code) = self.charge(text.len()) {
            return code;
        }
        let shared = self.shard.shared.clone();
        let (old, old_text) = shared.presence.status(&me);
        shared.presence.set(&me, status, text);
        // Saying "online" when already online tells nobody anything.
        if old != status || *old_text != *text {
            self.notify_watchers(&me, &name, status, text).await;
        }
        ResultCode::OK
    }

    pub(super) async fn watch(&mut self, watch: u8, user: &WireStr) -> Packet {
        let answer = |result, status, text: Arc<str>| Packet::WatchRes {
            result,
            user: user.clone(),
            status,
            text: (*text).into(),
        };
        let refused = |result| answer(result, OFFLINE, Arc::from(""));
        if let Err(code) = self.sender() {
            return refused(code);
        }
        let target = match user.to_str() {
            Ok(user) if is_valid_username(user.as_bytes()) => user.to_ascii_lowercase(),
            _ => return refused(ResultCode::INVALID_USERNAME),
        };
        if let Err(code) = self.charge(0) {
            return refused(code);
        }
        let shared = self.shard.shared.clone();
        match watch {
            1 => {
                if !self.watching.iter().any(|w| **w == *target) {
                    if self.watching.len() >= shared.config.max_watch {
                        return refused(ResultCode::NOT_AVAILABLE);
                    }
                    // Rebuilt per change (a rare request) so the list needs no spare capacity,
                    // nor a capacity field in every session.
                    let mut watching = std::mem::take(&mut self.watching).into_vec();
                    watching.push(target.clone().into());
                    self.watching = watching.into_boxed_slice();
                }
                shared.presence.watch(
                    &target,
                    Route {
                        session_id: self.me.id,
                        shard: self.shard.index,
                    },
                );
            }
            0 => {
                let mut watching = std::mem::take(&mut self.watching).into_vec();
                watching.retain(|w| **w != *target);
                self.watching = watching.into_boxed_slice();
                shared.presence.unwatch(&target, self.me.id);
            }
            _ => return refused(ResultCode::INVALID_REQUEST),
        }
        match shared.directory.lookup(&target) {
            Some(_) => {
                let (status, text) = shared.presence.status(&target);
                answer(ResultCode::OK, status, text)
            }
            None => answer(ResultCode::OK, OFFLINE, Arc::from("")),
        }
    }

    /// Tells the sessions watching `user` (folded; shown as `name`) its new presence.
    pub(super) async fn notify_watchers(&mut self, user: &str, name: &str, status: u8, text: &str) {
        let shared = self.shard.shared.clone();
        let watchers = shared.presence.watchers_of(user);
        if watchers.is_empty() {
            return;
        }
        let mut buf = BytesMut::new();
        let _ = suda_protocol::encode(
            &Packet::PresenceNotify {
                user: name.into(),
                status,
                text: text.into(),
            },
            &mut buf,
        );
        let fanout = Fanout::new(buf.freeze(), 1, PacketType::PresenceNotify, Instant::now());
        self.shard
            .deliver_many(
                watchers
                    .into_iter()
                    .map(|route| (route, fanout.clone()))
                    .collect(),
            )
            .await;
    }

    /// As the session ends: watchers hear it went offline; its own watches end.
    pub(super) async fn leave_presence(&mut self, announce: bool) {
        let shared = self.shard.shared.clone();
        for watched in std::mem::take(&mut self.watching).into_vec() {
            shared.presence.unwatch(&watched, self.me.id);
        }
        let Some(identity) = &self.identity else {
            return;
        };
        let (me, name) = (identity.folded(), identity.name.clone());
        shared.presence.clear(&me);
        if announce {
            self.notify_watchers(&me, &name, OFFLINE, "").await;
        }
    }
}
