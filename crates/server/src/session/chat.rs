//! Chat requests: broadcast and whisper, with text validation and rate limits.

use suda_protocol::{Packet, PacketType, ResultCode, WireStr};

use super::{Identity, Session};
use crate::auth::is_valid_username;
use suda_store::history::HistoryMessage;
use suda_store::offline::PendingWhisper;
use suda_store::writer::{Durability as WriterDurability, Ticket};

use crate::config::OfflineWhispers;
use crate::shard::Fanout;
use crate::storage::MAX_PENDING_WHISPERS;

/// An accepted chat message: its id, and the commit its acknowledgement waits for (strict
/// durability).
pub(super) struct Accepted {
    pub(super) message_id: u64,
    pub(super) commit: Option<Ticket>,
}

/// A whisper's recipient, once the sender may whisper to it.
struct WhisperTarget<'a> {
    /// The recipient's name as the sender wrote it, a valid username.
    name: &'a str,
    /// Where the recipient is online; `None` when it is not.
    route: Option<crate::directory::Route>,
    /// The sender's name as notifications show it.
    from: WireStr,
}

/// Server ids and times fit in 63 bits (see `ids`), so they are valid SQL integers.
pub(super) fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
use crate::stats::bump;

/// A text that is valid UTF-8 of at most `max` bytes with no control characters but newline
/// and tab: chat texts, topics, reasons, away messages. Control characters could rewrite other
/// users' terminals or forge lines in logs; newline and tab are the only ones chat needs.
pub(super) fn clean_text(text: &WireStr, max: usize) -> Result<&str, ResultCode> {
    let text = text.to_str().map_err(|_| ResultCode::INVALID_MESSAGE)?;
    if text.len() > max || has_forbidden_control(text) {
        return Err(ResultCode::INVALID_MESSAGE);
    }
    Ok(text)
}

/// Whether `text` holds a control character (`char::is_control`) other than newline and tab.
///
/// Read byte by byte rather than char by char, since every chat text passes here: the C0 controls
/// and DEL are single bytes that never occur inside a multi-byte UTF-8 sequence, and the C1
/// controls (U+0080–U+009F) are the two-byte sequences `C2 80`–`C2 9F`.
fn has_forbidden_control(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Printable ASCII, the common case, settled in one pass without an early exit, which the
    // compiler turns into vector compares.
    let beyond_printable_ascii = bytes
        .iter()
        .fold(false, |seen, &b| seen | (b.wrapping_sub(0x20) >= 0x5f));
    if !beyond_printable_ascii {
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        (b < 0x20 && b != b'\n' && b != b'\t')
            || b == 0x7f
            || (b == 0xc2
                && bytes
                    .get(i + 1)
                    .is_some_and(|next| (0x80..=0x9f).contains(next)))
    })
}

impl Session {
    pub(super) fn sender(&self) -> Result<&Identity, ResultCode> {
        self.identity.as_ref().ok_or(ResultCode::NOT_AUTHENTICATED)
    }

    /// Validates a chat text, then charges it to the session's rate limits.
    pub(super) fn accept_text(&mut self, text: &WireStr) -> Result<(), ResultCode> {
        if text.is_empty() {
            return Err(ResultCode::INVALID_MESSAGE);
        }
        clean_text(text, self.shard.shared.config.max_text)?;
        self.charge(text.len())
    }

    /// Takes one message and `bytes` bytes from the session's buckets, or refuses as rate
    /// limited (and counts a strike towards a flooding disconnect).
    pub(super) fn charge(&mut self, bytes: usize) -> Result<(), ResultCode> {
        // The packets of one read arrived together: the read's time stands for each of them,
        // and spares a clock read per message.
        let now = self.last_activity;
        let bytes = bytes as f64;
        let rates = &self.shard.shared.chat_rates;
        if self.message_tokens.available(rates.messages, now) >= 1.0
            && self.byte_tokens.available(rates.bytes, now) >= bytes
        {
            self.message_tokens.take(rates.messages, 1.0);
            self.byte_tokens.take(rates.bytes, bytes);
            return Ok(());
        }
        bump(&self.shard.stats.rate_limited, 1);
        if !self.strikes.try_take(rates.strikes, 1.0, now) {
            self.flooding = true;
        }
        Err(ResultCode::RATE_LIMITED)
    }

    /// Accepts a broadcast: its notification joins this read's batch, and its record the
    /// history writer's queue.
    pub(super) async fn broadcast(&mut self, text: WireStr) -> Result<Accepted, ResultCode> {
        let from = self.sender()?.wire_name.clone();
        self.check_not_muted()?;
        self.accept_text(&text)?;
        // The batch may hold one room's messages: they go first.
        if self.batched().is_some_and(|batch| batch.room.is_some()) {
            self.send_broadcasts().await;
        }
        let now_ms = self.shard.unix_ms_at(self.last_activity);
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let record = self.record(
            |sender, text_str| {
                HistoryMessage::broadcast(as_i64(message_id), as_i64(now_ms), sender, text_str)
            },
            &text,
        );
        let notify = Packet::BroadcastNotify {
            message_id,
            sent_at_ms: now_ms,
            from,
            text,
        };
        // Cannot fail: the name and text lengths were validated against the protocol's prefixes.
        let batch = self.batch();
        let _ = suda_protocol::encode(&notify, &mut batch.broadcasts);
        batch.broadcast_count += 1;
        bump(&self.shard.stats.broadcasts, 1);
        // Without history there is no record, and no future to build and poll per message.
        let commit = match record {
            Some(record) => self.store_record(record).await?,
            None => None,
        };
        Ok(Accepted { message_id, commit })
    }

    /// The history record of an accepted message, when the server keeps history.
    pub(super) fn record(
        &self,
        make: impl FnOnce(String, String) -> HistoryMessage,
        text: &WireStr,
    ) -> Option<HistoryMessage> {
        self.shard.shared.storage()?;
        let sender = self.identity.as_ref()?.name.to_string();
        Some(make(sender, text.to_string_lossy().into_owned()))
    }

    /// Queues `record` for the history. In strict durability the returned ticket resolves when
    /// it is committed, and the sender's acknowledgement waits for it.
    pub(super) async fn store_record(
        &self,
        record: HistoryMessage,
    ) -> Result<Option<Ticket>, ResultCode> {
        let Some(storage) = self.shard.shared.storage() else {
            return Ok(None);
        };
        match storage.writer.append(record).await {
            Ok(ticket) => {
                Ok((storage.writer.durability() == WriterDurability::Strict).then_some(ticket))
            }
            Err(err) => {
                session_event!(self, WARN, %err, "history writer unavailable");
                Err(ResultCode::SERVER_BUSY)
            }
        }
    }

    /// Sends this read's whispers to other workers, one inbox message per worker, in order.
    pub(super) async fn send_whispers(&mut self) {
        let Some(batch) = self
            .awake
            .as_deref_mut()
            .map(|awake| &mut awake.batch)
            .filter(|batch| !batch.whispers.is_empty())
        else {
            return;
        };
        let whispers = std::mem::take(&mut batch.whispers);
        // Taken, not split: an idle session should not hold the buffer's spare capacity.
        let packets = std::mem::take(&mut batch.whisper_packets).freeze();
        self.shard
            .send_whispers(packets, whispers, self.last_activity)
            .await;
    }

    /// Hands on everything this read has batched — whispers, then broadcasts or one room's
    /// messages — at the end of a read, or before something that must follow them (a room
    /// event, a notice). Whispers first: a whisper queued in this read preceded every broadcast
    /// still batched (a whisper hands earlier broadcasts on before it is queued).
    pub(super) async fn flush_batched(&mut self) {
        self.send_whispers().await;
        self.send_broadcasts().await;
    }

    /// Hands this read's broadcasts (or one room's messages) to the fan-out as one shared
    /// buffer.
    pub(super) async fn send_broadcasts(&mut self) {
        if self
            .batched()
            .is_none_or(|batch| batch.broadcasts.is_empty())
        {
            return;
        }
        // Whispers queued before these broadcasts go first, so no recipient sees them reordered.
        self.send_whispers().await;
        let batch = self.batch();
        // Taken, not split: a split would keep the shared allocation alive in an idle session.
        let room = batch.room.take();
        let kind = if room.is_some() {
            PacketType::RoomChatNotify
        } else {
            PacketType::BroadcastNotify
        };
        let fanout = Fanout::new(
            std::mem::take(&mut batch.broadcasts).freeze(),
            std::mem::take(&mut batch.broadcast_count),
            kind,
            self.last_activity,
        );
        match room {
            Some(room) => {
                let shards = room.state().shards_with_members(self.shard.index);
                self.shard
                    .room_fanout(&room, fanout, Some(self.me.id), None, &shards)
                    .await;
            }
            None => self.shard.broadcast(fanout, self.me.id).await,
        }
    }

    pub(super) async fn whisper(
        &mut self,
        to: &WireStr,
        text: WireStr,
    ) -> Result<Accepted, ResultCode> {
        let target = self.whisper_target(to)?;
        let Some(route) = target.route else {
            return Box::pin(self.whisper_offline(target.name, text)).await;
        };
        self.accept_text(&text)?;
        // Earlier broadcasts of this read must not be overtaken by the whisper.
        self.send_broadcasts().await;
        let (message_id, record) = self.deliver_whisper(target.from, route, target.name, text)?;
        // Without history there is no record, and no future to build and poll per message.
        let commit = match record {
            Some(record) => self.store_record(record).await?,
            None => None,
        };
        Ok(Accepted { message_id, commit })
    }

    /// A whisper handled without awaiting anything, when nothing in it needs to: the recipient
    /// is online, no broadcast of this read waits to go first, and no history is kept. `None`
    /// leaves the request to [`Session::whisper`].
    ///
    /// Whispers are most of what a busy session handles, and the general path builds the
    /// request's future (over a kilobyte, moved into place) for each one.
    pub(super) fn whisper_now(
        &mut self,
        to: &WireStr,
        text: &WireStr,
    ) -> Option<Result<Accepted, ResultCode>> {
        let waits = self.shard.shared.storage().is_some()
            || self
                .batched()
                .is_some_and(|batch| !batch.broadcasts.is_empty());
        if waits {
            return None;
        }
        let target = match self.whisper_target(to) {
            Ok(target) => target,
            Err(code) => return Some(Err(code)),
        };
        let route = target.route?;
        if let Err(code) = self.accept_text(text) {
            return Some(Err(code));
        }
        Some(
            self.deliver_whisper(target.from, route, target.name, text.clone())
                .map(|(message_id, _)| Accepted {
                    message_id,
                    commit: None,
                }),
        )
    }

    /// Checks that this session may whisper to `to`, and finds where `to` is online; refused
    /// when the session may not whisper or `to` cannot be a user.
    fn whisper_target<'a>(&self, to: &'a WireStr) -> Result<WhisperTarget<'a>, ResultCode> {
        let from = self.sender()?.wire_name.clone();
        self.check_not_muted()?;
        match to.to_str() {
            Ok(name) if is_valid_username(name.as_bytes()) => Ok(WhisperTarget {
                name,
                route: self.shard.shared.directory.route(name),
                from,
            }),
            _ => Err(ResultCode::USER_NOT_FOUND),
        }
    }

    /// Stamps an accepted whisper and queues it for `target`: straight into the recipient's
    /// outbox on this worker, or into this read's batch for another. Returns its message id and
    /// its history record, if history is kept.
    fn deliver_whisper(
        &mut self,
        from: WireStr,
        target: crate::directory::Route,
        to: &str,
        text: WireStr,
    ) -> Result<(u64, Option<HistoryMessage>), ResultCode> {
        let now_ms = self.shard.unix_ms_at(self.last_activity);
        let message_id = self.shard.shared.message_ids.next_at(now_ms);
        let record = self.record(
            |sender, text_str| {
                HistoryMessage::whisper(as_i64(message_id), as_i64(now_ms), sender, to, text_str)
            },
            &text,
        );
        let notify = Packet::WhisperNotify {
            message_id,
            sent_at_ms: now_ms,
            from,
            text,
        };
        if target.shard == self.shard.index {
            // Here (the sender itself included): straight into the recipient's outbox.
            if !self
                .shard
                .whisper_local(target.session_id, &notify, self.last_activity)
            {
                return Err(ResultCode::USER_NOT_FOUND);
            }
        } else {
            // Whispers to other workers are encoded back to back into one buffer and leave
            // together at the end of the read: one inbox message per worker, not one per
            // whisper.
            let batch = self.batch();
            let packets = &mut batch.whisper_packets;
            if packets.capacity() - packets.len() < 512 {
                packets.reserve(4096);
            }
            let start = packets.len();
            // Cannot fail: the name and text lengths were validated against the protocol's
            // prefixes.
            let _ = suda_protocol::encode(&notify, packets);
            let range = u32::try_from(start).unwrap_or(u32::MAX)
                ..u32::try_from(packets.len()).unwrap_or(u32::MAX);
            batch.whispers.push((target, range));
        }
        bump(&self.shard.stats.whispers, 1);
        Ok((message_id, record))
    }

    /// A whisper to someone not online: kept for them if the server stores offline whispers and
    /// they have an account; otherwise `USER_NOT_FOUND`, as the original server.
    async fn whisper_offline(&mut self, to: &str, text: WireStr) -> Result<Accepted, ResultCode> {
        let shared = self.shard.shared.clone();
        let Some(storage) = shared.storage() else {
            return Err(ResultCode::USER_NOT_FOUND);
        };
        if shared.config.offline_whispers != OfflineWhispers::Store {
            return Err(ResultCode::USER_NOT_FOUND);
        }
        match storage.store.account(to).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(ResultCode::USER_NOT_FOUND),
            Err(err) => {
                session_event!(self, WARN, %err, "account lookup failed");
                return Err(ResultCode::SERVER_BUSY);
            }
        }
        self.accept_text(&text)?;
        let sender = self.sender()?.name.to_string();
        let now_ms = self.shard.unix_ms_at(self.last_activity);
        let message_id = shared.message_ids.next_at(now_ms);
        let text = text.to_string_lossy().into_owned();
        let pending = PendingWhisper {
            message_id: as_i64(message_id),
            sent_at_ms: as_i64(now_ms),
            sender: sender.clone(),
            recipient: to.to_ascii_lowercase(),
            text: text.clone(),
        };
        match storage
            .store
            .store_offline_whisper(pending, MAX_PENDING_WHISPERS)
            .await
        {
            Ok(()) => {}
            Err(suda_store::Error::NotFound) => return Err(ResultCode::USER_NOT_FOUND),
            Err(suda_store::Error::MailboxFull) => return Err(ResultCode::NOT_AVAILABLE),
            Err(err) => {
                session_event!(self, WARN, %err, "storing an offline whisper failed");
                return Err(ResultCode::SERVER_BUSY);
            }
        }
        bump(&self.shard.stats.whispers, 1);
        let record = HistoryMessage::whisper(as_i64(message_id), as_i64(now_ms), sender, to, text);
        let commit = self.store_record(record).await?;
        Ok(Accepted { message_id, commit })
    }
}

#[cfg(test)]
mod tests {
    use super::has_forbidden_control;

    /// The definition the byte scan stands for.
    fn by_chars(text: &str) -> bool {
        text.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
    }

    #[test]
    fn the_byte_scan_finds_exactly_the_control_characters() {
        // Every code point up to U+07FF (the one- and two-byte sequences, where all controls
        // live) and a sample beyond, alone and between other text.
        let chars = (0u32..0x800)
            .chain((0x800..0x11_0000).step_by(97))
            .filter_map(char::from_u32);
        for c in chars {
            for text in [c.to_string(), format!("a{c}b"), format!("é{c}¡")] {
                assert_eq!(
                    has_forbidden_control(&text),
                    by_chars(&text),
                    "{text:?} (U+{:04X})",
                    u32::from(c)
                );
            }
        }
        assert!(!has_forbidden_control(
            "line one\n\tline two, ü, 한국어, 🙂"
        ));
    }
}
