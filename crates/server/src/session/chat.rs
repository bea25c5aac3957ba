//! Chat requests: broadcast and whisper, with text validation and rate limits.

use bytes::BytesMut;
use suda_protocol::{Packet, PacketType, ResultCode, WireStr};
use tokio::time::Instant;

use super::{Identity, Session};
use crate::auth::is_valid_username;
use crate::ids::unix_time_ms;
use crate::outbox::Pushed;
use crate::shard::Fanout;
use crate::stats::bump;

impl Session {
    pub(super) fn sender(&self) -> Result<&Identity, ResultCode> {
        self.identity.as_ref().ok_or(ResultCode::NOT_AUTHENTICATED)
    }

    /// Validates a chat text, then charges it to the session's rate limits.
    pub(super) fn accept_text(&mut self, text: &WireStr) -> Result<(), ResultCode> {
        let max = self.shard.shared.config.max_text;
        if text.is_empty() || text.len() > max {
            return Err(ResultCode::INVALID_MESSAGE);
        }
        let Ok(text_str) = text.to_str() else {
            return Err(ResultCode::INVALID_MESSAGE);
        };
        // Control characters could rewrite other users' terminals or forge lines in logs;
        // newline and tab are the only ones chat needs.
        if text_str
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(ResultCode::INVALID_MESSAGE);
        }
        self.charge(text.len())
    }

    /// Takes one message and `bytes` bytes from the session's buckets, or refuses as rate
    /// limited (and counts a strike towards a flooding disconnect).
    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), ResultCode> {
        let now = Instant::now();
        let bytes = bytes as f64;
        if self.message_tokens.available(now) >= 1.0 && self.byte_tokens.available(now) >= bytes {
            self.message_tokens.take(1.0);
            self.byte_tokens.take(bytes);
            return Ok(());
        }
        bump(&self.shard.stats.rate_limited, 1);
        if !self.strikes.try_take(1.0, now) {
            self.flooding = true;
        }
        Err(ResultCode::RATE_LIMITED)
    }

    /// Accepts a broadcast: its notification joins this read's batch.
    pub(super) fn broadcast(&mut self, text: WireStr) -> Result<u64, ResultCode> {
        let from = self.sender()?.wire_name.clone();
        self.accept_text(&text)?;
        let now_ms = unix_time_ms();
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let notify = Packet::BroadcastNotify {
            message_id,
            sent_at_ms: now_ms,
            from,
            text,
        };
        // Cannot fail: the name and text lengths were validated against the protocol's prefixes.
        let _ = suda_protocol::encode(&notify, &mut self.broadcasts);
        self.batched_broadcasts += 1;
        bump(&self.shard.stats.broadcasts, 1);
        Ok(message_id)
    }

    /// Hands this read's broadcasts to the fan-out as one shared buffer.
    pub(super) async fn send_broadcasts(&mut self) {
        if self.broadcasts.is_empty() {
            return;
        }
        // Taken, not split: a split would keep the shared allocation alive in an idle session.
        let fanout = Fanout {
            packets: std::mem::take(&mut self.broadcasts).freeze(),
            count: std::mem::take(&mut self.batched_broadcasts),
            kind: PacketType::BroadcastNotify,
            accepted_at: self.last_activity,
        };
        self.shard.broadcast(fanout, self.me.id).await;
    }

    pub(super) async fn whisper(&mut self, to: &WireStr, text: WireStr) -> Result<u64, ResultCode> {
        let from = self.sender()?.wire_name.clone();
        let to = match to.to_str() {
            Ok(to) if is_valid_username(to.as_bytes()) => to,
            _ => return Err(ResultCode::USER_NOT_FOUND),
        };
        let target = self
            .shard
            .shared
            .directory
            .lookup(to)
            .ok_or(ResultCode::USER_NOT_FOUND)?;
        self.accept_text(&text)?;
        // Earlier broadcasts of this read must not be overtaken by the whisper.
        self.send_broadcasts().await;
        let now_ms = unix_time_ms();
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let mut packet = BytesMut::new();
        let _ = suda_protocol::encode(
            &Packet::WhisperNotify {
                message_id,
                sent_at_ms: now_ms,
                from,
                text,
            },
            &mut packet,
        );
        let fanout = Fanout {
            packets: packet.freeze(),
            count: 1,
            kind: PacketType::WhisperNotify,
            accepted_at: self.last_activity,
        };
        if target.session_id == self.me.id {
            // An overflow here is noticed (and counted) by the read loop's next turn.
            if self.me.deliver(&fanout) == Pushed::Queued {
                self.shard.count_deliveries(&fanout, 1);
            }
        } else if !self.shard.deliver(&target, fanout).await {
            return Err(ResultCode::USER_NOT_FOUND);
        }
        bump(&self.shard.stats.whispers, 1);
        Ok(message_id)
    }
}
