//! Logging in: naming rules, throttling after failures, the authenticator, the directory.

use std::sync::Arc;

use bytes::BytesMut;
use suda_protocol::{Packet, PacketType, ResultCode, WireStr};
use tokio::time::Instant;

use super::{Identity, Session};
use crate::auth::{AuthDecision, is_valid_username};
use crate::config::OfflineWhispers;
use crate::directory::DirectoryEntry;
use crate::limits::ThrottleKey;
use crate::outbox::Pushed;
use crate::shard::Fanout;

impl Session {
    pub(super) async fn login(
        &mut self,
        username: &WireStr,
        password: &WireStr,
    ) -> Option<super::close::CloseReason> {
        if self.identity.is_none() {
            if let Some(ban) = self.ban_on_login(username) {
                session_event!(self, INFO, %ban, "banned login refused");
                self.shard.stats.login(ResultCode::BANNED);
                self.reply(&Packet::LoginRes {
                    result: ResultCode::BANNED,
                    session_id: 0,
                });
                return Some(super::close::CloseReason::Moderated {
                    code: suda_protocol::ErrorCode::BANNED,
                    reason: ban,
                });
            }
        }
        let result = self.authenticate(username, password).await;
        match result {
            Ok(identity) => {
                self.reply(&Packet::LoginRes {
                    result: ResultCode::OK,
                    session_id: self.me.id.0,
                });
                // After the response, so nothing sent to the new name can overtake it.
                self.shard.join(&self.me);
                let (folded, name) = (identity.folded(), identity.name.clone());
                self.identity = Some(identity);
                session_event!(self, INFO, "logged in");
                self.shard.stats.login(ResultCode::OK);
                self.deliver_offline_whispers().await;
                self.notify_watchers(&folded, &name, crate::presence::ONLINE, "")
                    .await;
            }
            Err(result) => {
                session_event!(self, DEBUG, %result, "login refused");
                self.shard.stats.login(result);
                self.reply(&Packet::LoginRes {
                    result,
                    session_id: 0,
                });
            }
        }
        None
    }

    /// Whispers kept while the user was offline, in the order they were sent, right after the
    /// login response.
    async fn deliver_offline_whispers(&mut self) {
        let shared = self.shard.shared.clone();
        let (Some(storage), Some(identity)) = (shared.storage(), &self.identity) else {
            return;
        };
        if shared.config.offline_whispers != OfflineWhispers::Store {
            return;
        }
        let pending = match storage.store.take_offline_whispers(&identity.name).await {
            Ok(pending) => pending,
            Err(err) => {
                session_event!(self, WARN, %err, "cannot fetch offline whispers");
                return;
            }
        };
        for whisper in pending {
            let mut packet = BytesMut::new();
            let _ = suda_protocol::encode(
                &Packet::WhisperNotify {
                    message_id: u64::try_from(whisper.message_id).unwrap_or(0),
                    sent_at_ms: u64::try_from(whisper.sent_at_ms).unwrap_or(0),
                    from: whisper.sender.into(),
                    text: whisper.text.into(),
                },
                &mut packet,
            );
            let fanout = Fanout::new(
                packet.freeze(),
                1,
                PacketType::WhisperNotify,
                Instant::now(),
            );
            if self.me.deliver(&fanout) == Pushed::Queued {
                self.shard.count_deliveries(&fanout, 1);
            }
        }
    }

    pub(super) async fn authenticate(
        &self,
        username: &WireStr,
        password: &WireStr,
    ) -> Result<Identity, ResultCode> {
        if self.identity.is_some() {
            return Err(ResultCode::ALREADY_AUTHENTICATED);
        }
        let name = match username.to_str() {
            Ok(name) if is_valid_username(name.as_bytes()) => name,
            _ => return Err(ResultCode::INVALID_USERNAME),
        };
        let shared = self.shard.shared.clone();
        let account = ThrottleKey::Account(name.to_ascii_lowercase().into());
        let mut keys = vec![account.clone()];
        if !shared.ip_limits.is_exempt(self.me.ip()) {
            keys.push(ThrottleKey::Ip(self.me.ip()));
        }
        let delay = shared.login_throttle.delay(&keys, Instant::now());
        if !delay.is_zero() {
            session_event!(
                self,
                DEBUG,
                ?delay,
                "login throttled after earlier failures"
            );
            tokio::time::sleep(delay).await;
        }
        let proven = match shared.auth().authenticate(name, password.as_bytes()).await {
            AuthDecision::Accept => false,
            AuthDecision::Proven => {
                shared.login_throttle.succeeded(&account);
                true
            }
            AuthDecision::Reject(code) => {
                if code == ResultCode::INVALID_CREDENTIALS {
                    shared.login_throttle.failed(&keys, Instant::now());
                }
                return Err(code);
            }
        };
        let name: Arc<str> = name.into();
        let entry = DirectoryEntry {
            session_id: self.me.id,
            shard: self.shard.index,
            display_name: name.clone(),
        };
        if shared.directory.claim(entry.clone()).is_err() {
            // A login that proves the identity takes over the user's *detached* session (one
            // waiting for a resume); an online one keeps its name.
            let holder = shared.directory.lookup(&name);
            match holder {
                Some(holder) if proven && shared.resume.evict(holder.session_id) => {
                    shared.directory.release(&name, holder.session_id);
                    session_event!(self, INFO, "took over the detached session");
                    shared
                        .directory
                        .claim(entry)
                        .map_err(|_| ResultCode::NAME_IN_USE)?;
                }
                _ => return Err(ResultCode::NAME_IN_USE),
            }
        }
        // A copy: `username` is a slice of the shared read buffer, which a long-lived session
        // must not pin (it would keep the whole buffer alive per session).
        let wire_name = WireStr::from(&*name);
        let folded = name.to_ascii_lowercase();
        let operator = proven && shared.config.operators.iter().any(|op| **op == *folded);
        Ok(Identity {
            name,
            wire_name,
            proven,
            operator,
        })
    }
}
