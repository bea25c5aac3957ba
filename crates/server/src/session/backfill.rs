//! What a resume replays: the replay log, and, where the log no longer reaches back to the
//! client's position, the messages history holds.
//!
//! The log knows the ids of the messages it evicted, in delivery order (see
//! [`crate::resume::ReplayLog`]), so history is asked for exactly those: the replay is the
//! session's delivery sequence from the client's position, each message once, and the log's
//! packets follow the last evicted one. When history lacks any of them (pruned by retention, a
//! failed commit, a kind it does not hold) the answer is a gap, never a partial replay
//! presented as complete.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use suda_protocol::{Packet, WireStr};
use suda_store::history::{HistoryMessage, Target};

use super::Session;
use crate::resume::Replay;
use crate::storage::Storage;

/// Longest a resume waits for history (the writer's flush and the query) before it settles for
/// the gap answer: a slow database must not hold a reconnecting client for long.
const HISTORY_TIMEOUT: Duration = Duration::from_secs(5);

/// History fetches per resume. The log holds what arrives during a fetch, so one is enough
/// unless that hold overflows (see `ReplayLog::hold`); then the next fetches what it evicted.
const FETCHES: usize = 3;

/// Rows a fetch may return beyond the ones it needs: the range between the lowest and highest
/// missing id also holds messages of the user that are not missing (delivered out of id order
/// near the client's position or the log's start, so already seen or still in the log). Should
/// they ever crowd out a needed one, it stays missing and the answer is a gap, never wrong.
const FETCH_SLACK: usize = 256;

impl Session {
    /// What a resume after `last_message_id` replays, at most `max_replay` packets.
    ///
    /// Deliveries that arrive meanwhile go on being recorded in the log (the session is
    /// detached), held there until the replay is planned again from the log after the fetch,
    /// so they are neither lost nor doubled. No borrow of the log is held across an await.
    pub(super) async fn replay(&self, last_message_id: u64) -> Replay {
        let replay = self.replay_with_history(last_message_id).await;
        if let Some(log) = self.me.replay.borrow_mut().as_mut() {
            log.release();
        }
        replay
    }

    async fn replay_with_history(&self, last_message_id: u64) -> Replay {
        let shared = self.shard.shared.clone();
        let max = shared.config.max_replay;
        let mut fetched: HashMap<u64, Bytes> = HashMap::new();
        let mut fetches = 0;
        loop {
            let planned = match self.me.replay.borrow_mut().as_mut() {
                Some(log) => {
                    let planned = log.replay_from(last_message_id, max, &fetched);
                    if !planned.missing.is_empty() {
                        log.hold(max);
                    }
                    planned
                }
                None => {
                    return Replay {
                        packets: Vec::new(),
                        gap: true,
                    };
                }
            };
            if planned.missing.is_empty() || fetches == FETCHES {
                return planned.replay;
            }
            let (Some(storage), Some(identity)) = (shared.storage(), &self.identity) else {
                return planned.replay;
            };
            fetches += 1;
            let user = identity.name.to_ascii_lowercase();
            // The rooms the session is in now: a room it was kicked from while detached is not
            // asked for, so its messages stay missing and the answer is a gap.
            let rooms: HashMap<Box<str>, WireStr> = self
                .me
                .rooms
                .borrow()
                .iter()
                .map(|room| (room.key.clone(), room.name.clone()))
                .collect();
            let found = tokio::time::timeout(
                HISTORY_TIMEOUT,
                from_history(storage, &user, &rooms, &planned.missing),
            )
            .await;
            match found {
                Ok(Ok(packets)) => fetched.extend(packets),
                Ok(Err(err)) => {
                    session_event!(self, WARN, %err, "history query for a resume failed; answering with a gap");
                    return planned.replay;
                }
                Err(_) => {
                    session_event!(
                        self,
                        WARN,
                        "history too slow for a resume; answering with a gap"
                    );
                    return planned.replay;
                }
            }
        }
    }
}

/// The notifications for the messages `ids` (any order) that history holds for `user`
/// (folded), with the messages of `rooms` (keys, with the names notifications show), by
/// message id.
async fn from_history(
    storage: &Storage,
    user: &str,
    rooms: &HashMap<Box<str>, WireStr>,
    ids: &[u64],
) -> Result<HashMap<u64, Bytes>, suda_store::Error> {
    // In batched durability a message can be delivered (and even evicted from the log) before
    // its batch is committed. Everything the session received was handed to the writer before
    // it was delivered, or (a whisper on the same worker) is queued ahead of this flush, so
    // after it history holds every message it ever will. A failed batch shows as missing ids.
    if let Err(err) = storage.writer.flush().await {
        tracing::debug!(%err, "history flush before a resume");
    }
    let as_i64 = |id: u64| i64::try_from(id).unwrap_or(i64::MAX);
    let first = ids.iter().copied().min().map_or(0, as_i64);
    let last = ids.iter().copied().max().map_or(0, as_i64);
    let limit = u32::try_from(ids.len() + FETCH_SLACK).unwrap_or(u32::MAX);
    let room_keys: Vec<String> = rooms.keys().map(|key| key.to_string()).collect();
    let messages = storage
        .store
        .received(user, &room_keys, first..=last, limit)
        .await?;
    let mut buf = BytesMut::new();
    let mut packets = HashMap::with_capacity(ids.len());
    for message in messages {
        let Some((id, packet)) = notification(message, rooms) else {
            continue;
        };
        // Cannot fail: the name and text were validated against the protocol when accepted.
        if suda_protocol::encode(&packet, &mut buf).is_ok() {
            packets.insert(id, buf.split().freeze());
        }
    }
    Ok(packets)
}

/// The notification a stored message was delivered as, with its id; `None` for kinds this
/// version does not replay from history (they stay missing, so the answer is a gap).
fn notification(
    message: HistoryMessage,
    rooms: &HashMap<Box<str>, WireStr>,
) -> Option<(u64, Packet)> {
    let message_id = u64::try_from(message.message_id).ok()?;
    let sent_at_ms = u64::try_from(message.sent_at_ms).unwrap_or(0);
    let from = message.sender.into();
    let text = message.text.into();
    let packet = match message.target {
        Target::Broadcast => Packet::BroadcastNotify {
            message_id,
            sent_at_ms,
            from,
            text,
        },
        Target::Whisper { .. } => Packet::WhisperNotify {
            message_id,
            sent_at_ms,
            from,
            text,
        },
        Target::Room { room } => Packet::RoomChatNotify {
            message_id,
            sent_at_ms,
            room: rooms.get(&*room).cloned().unwrap_or_else(|| room.into()),
            from,
            text,
        },
        _ => return None,
    };
    Some((message_id, packet))
}
