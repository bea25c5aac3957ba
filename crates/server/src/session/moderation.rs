//! Server operators' requests — kick, ban, mute, system notice — and the checks every login and
//! message makes against the sanctions in force.

use std::net::IpAddr;

use bytes::BytesMut;
use suda_protocol::codes::moderation_action as action;
use suda_protocol::{ErrorCode, Packet, PacketType, ResultCode, WireStr};
use suda_store::moderation::SanctionKind;
use tokio::time::Instant;

use super::Session;
use super::chat::clean_text;
use super::close::CloseReason;
use crate::auth::is_valid_username;
use crate::ids::unix_time_ms;
use crate::moderation::{InForce, ip_key, log_action};
use crate::shard::{Ejected, Fanout};

/// Longest moderation reason, in bytes.
const MAX_REASON: usize = 512;

/// What an older client sees as the sender of a system notice: no username can contain `*`.
const NOTICE_SENDER: &str = "*notice*";

impl Session {
    /// `MUTED` when the logged-in user is muted server-wide.
    pub(super) fn check_not_muted(&self) -> Result<(), ResultCode> {
        let sanctions = &self.shard.shared.sanctions;
        if sanctions.is_empty() {
            return Ok(());
        }
        let identity = self.sender()?;
        match sanctions.check_name(SanctionKind::Mute, &identity.name) {
            Some(_) => Err(ResultCode::MUTED),
            None => Ok(()),
        }
    }

    /// The ban that keeps this connection (by address) or `username` from logging in, as the
    /// text of its `ERROR_NOTIFY`.
    pub(super) fn ban_on_login(&self, username: &WireStr) -> Option<String> {
        let sanctions = &self.shard.shared.sanctions;
        if sanctions.is_empty() {
            return None;
        }
        if let Some(ban) = sanctions.check(SanctionKind::IpBan, &ip_key(self.me.ip())) {
            return Some(ban.describe("this address is banned"));
        }
        let name = username.to_str().ok()?;
        if !is_valid_username(name.as_bytes()) {
            return None;
        }
        sanctions
            .check_name(SanctionKind::UserBan, name)
            .map(|ban| ban.describe("banned"))
    }

    /// Why the session was told to end by another task: a moderator's reason, or, with none
    /// given, the server shutting down (see `Shard::shut_down_sessions`).
    pub(super) fn ejection(&self) -> CloseReason {
        match self.me.ejection.borrow_mut().take() {
            Some(ejection) => {
                let (code, reason) = *ejection;
                CloseReason::Moderated {
                    code,
                    reason: reason.to_string(),
                }
            }
            None => CloseReason::Shutdown,
        }
    }

    pub(super) async fn moderate(
        &mut self,
        action: u8,
        target: &WireStr,
        duration_s: u32,
        reason: &WireStr,
    ) -> ResultCode {
        match self.try_moderate(action, target, duration_s, reason).await {
            Ok(()) => ResultCode::OK,
            Err(code) => code,
        }
    }

    async fn try_moderate(
        &mut self,
        action: u8,
        target: &WireStr,
        duration_s: u32,
        reason: &WireStr,
    ) -> Result<(), ResultCode> {
        let identity = self.sender()?;
        if !identity.operator {
            return Err(ResultCode::NOT_PERMITTED);
        }
        let (me, my_name) = (identity.folded(), identity.name.clone());
        if !(action::KICK..=action::UNMUTE).contains(&action) {
            return Err(ResultCode::INVALID_REQUEST);
        }
        let reason = clean_text(reason, MAX_REASON)?.to_owned();
        self.charge(reason.len())?;
        let shared = self.shard.shared.clone();
        let storage = shared.storage().cloned();
        let expires_at_ms = (duration_s > 0).then(|| unix_time_ms() + u64::from(duration_s) * 1000);
        let sanction = InForce {
            expires_at_ms,
            reason: reason.as_str().into(),
            actor: my_name.clone(),
        };
        if matches!(action, action::BAN_IP | action::UNBAN_IP) {
            let ip: IpAddr = target
                .to_str()
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .ok_or(ResultCode::INVALID_REQUEST)?;
            let key = ip_key(ip);
            if action == action::UNBAN_IP {
                lift(&shared, storage.as_ref(), SanctionKind::IpBan, &key).await?;
                log_action(storage.as_ref(), &my_name, "unban-ip", &key, None, &reason).await;
                return Ok(());
            }
            let text = sanction.describe("this address is banned");
            stored(
                shared
                    .sanctions
                    .impose(storage.as_ref(), SanctionKind::IpBan, &key, sanction)
                    .await,
            )?;
            log_action(storage.as_ref(), &my_name, "ban-ip", &key, None, &reason).await;
            self.shard
                .eject(Ejected::Address(ip), ErrorCode::BANNED, text.into())
                .await;
            return Ok(());
        }
        let target_key = match target.to_str() {
            Ok(t) if is_valid_username(t.as_bytes()) => t.to_ascii_lowercase(),
            _ => return Err(ResultCode::USER_NOT_FOUND),
        };
        // Operators do not act on themselves or on each other.
        if target_key == *me || shared.config.operators.contains(&target_key) {
            return Err(ResultCode::NOT_PERMITTED);
        }
        let online = shared.directory.lookup(&target_key);
        match action {
            action::KICK => {
                let entry = online.ok_or(ResultCode::USER_NOT_FOUND)?;
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "kick",
                    &target_key,
                    None,
                    &reason,
                )
                .await;
                self.end_session_of(&entry, ErrorCode::KICKED, sanction.describe("kicked"))
                    .await;
            }
            action::BAN_USER => {
                let text = sanction.describe("banned");
                stored(
                    shared
                        .sanctions
                        .impose(
                            storage.as_ref(),
                            SanctionKind::UserBan,
                            &target_key,
                            sanction,
                        )
                        .await,
                )?;
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "ban",
                    &target_key,
                    None,
                    &reason,
                )
                .await;
                if let Some(entry) = online {
                    self.end_session_of(&entry, ErrorCode::BANNED, text).await;
                }
            }
            action::UNBAN_USER => {
                lift(
                    &shared,
                    storage.as_ref(),
                    SanctionKind::UserBan,
                    &target_key,
                )
                .await?;
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "unban",
                    &target_key,
                    None,
                    &reason,
                )
                .await;
            }
            action::MUTE => {
                stored(
                    shared
                        .sanctions
                        .impose(storage.as_ref(), SanctionKind::Mute, &target_key, sanction)
                        .await,
                )?;
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "mute",
                    &target_key,
                    None,
                    &reason,
                )
                .await;
                if let Some(entry) = online {
                    let notice = moderation_notify(action, &my_name, expires_at_ms, &reason);
                    self.shard.deliver_modern(entry.route(), notice).await;
                }
            }
            _ => {
                lift(&shared, storage.as_ref(), SanctionKind::Mute, &target_key).await?;
                log_action(
                    storage.as_ref(),
                    &my_name,
                    "unmute",
                    &target_key,
                    None,
                    &reason,
                )
                .await;
                if let Some(entry) = online {
                    let notice = moderation_notify(action, &my_name, None, &reason);
                    self.shard.deliver_modern(entry.route(), notice).await;
                }
            }
        }
        Ok(())
    }

    /// Ends the session of an online (or detached) user, telling it why.
    async fn end_session_of(
        &mut self,
        entry: &crate::directory::DirectoryEntry,
        code: ErrorCode,
        text: String,
    ) {
        let shared = self.shard.shared.clone();
        // A detached session has no connection to tell; it just ends.
        if shared.resume.evict(entry.session_id) {
            return;
        }
        self.shard
            .eject(Ejected::Session(entry.session_id), code, text.into())
            .await;
    }

    pub(super) async fn system_notice(&mut self, text: WireStr) -> Packet {
        let refused = |result| Packet::SystemNoticeRes {
            result,
            message_id: 0,
        };
        let identity = match self.sender() {
            Ok(identity) => identity,
            Err(code) => return refused(code),
        };
        if !identity.operator {
            return refused(ResultCode::NOT_PERMITTED);
        }
        let from = identity.wire_name.clone();
        let my_name = identity.name.clone();
        if let Err(code) = self.accept_text(&text) {
            return refused(code);
        }
        let now_ms = unix_time_ms();
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let encode = |packet: &Packet, kind| {
            let mut buf = BytesMut::new();
            let _ = suda_protocol::encode(packet, &mut buf);
            Fanout::new(buf.freeze(), 1, kind, Instant::now())
        };
        let modern = encode(
            &Packet::SystemNoticeNotify {
                message_id,
                sent_at_ms: now_ms,
                from,
                text: text.clone(),
            },
            PacketType::SystemNoticeNotify,
        );
        let legacy = encode(
            &Packet::BroadcastNotify {
                message_id,
                sent_at_ms: now_ms,
                from: NOTICE_SENDER.into(),
                text: text.clone(),
            },
            PacketType::BroadcastNotify,
        );
        self.flush_batched().await;
        let storage = self.shard.shared.storage().cloned();
        log_action(
            storage.as_ref(),
            &my_name,
            "notice",
            "*",
            None,
            &text.to_string_lossy(),
        )
        .await;
        self.shard.notice(modern, legacy).await;
        Packet::SystemNoticeRes {
            result: ResultCode::OK,
            message_id,
        }
    }
}

/// Lifts the sanction of `kind` on `target`; `USER_NOT_FOUND` when none was in force.
async fn lift(
    shared: &crate::server::Shared,
    storage: Option<&std::sync::Arc<crate::storage::Storage>>,
    kind: SanctionKind,
    target: &str,
) -> Result<(), ResultCode> {
    if stored(shared.sanctions.lift(storage, kind, target).await)? {
        Ok(())
    } else {
        Err(ResultCode::USER_NOT_FOUND)
    }
}

/// A store failure, as the operator sees it.
fn stored<T>(result: Result<T, suda_store::Error>) -> Result<T, ResultCode> {
    result.map_err(|err| {
        tracing::warn!(%err, "cannot store a sanction");
        ResultCode::SERVER_BUSY
    })
}

/// An encoded `MODERATION_NOTIFY`.
fn moderation_notify(action: u8, actor: &str, expires_at_ms: Option<u64>, reason: &str) -> Fanout {
    let mut buf = BytesMut::new();
    let _ = suda_protocol::encode(
        &Packet::ModerationNotify {
            action,
            actor: actor.into(),
            expires_at_ms: expires_at_ms.unwrap_or(0),
            reason: reason.into(),
        },
        &mut buf,
    );
    Fanout::new(
        buf.freeze(),
        1,
        PacketType::ModerationNotify,
        Instant::now(),
    )
}
