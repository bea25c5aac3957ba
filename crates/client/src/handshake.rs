//! Getting the session back on a new connection: `RESUME_REQ`, or `LOGIN_REQ` with the same
//! credentials when the session cannot be resumed.
//!
//! Runs before the connection task takes the new socket over, on its own buffer: whatever
//! follows the response (the replayed notifications) stays in that buffer for the task to
//! decode like any other input.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use suda_protocol::{MAX_PACKET_LIMIT, Packet, PacketType, ResultCode, WireStr, decode, encode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use crate::error::{ClientError, ProtocolError};
use crate::reconnect::worth_retrying;
use crate::transport::Transport;

/// Bytes the buffer makes room for before each read.
const READ_CHUNK: usize = 4096;

/// How the session came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// `RESUME_RES` with `OK` (`gap` false) or `RESUMED_WITH_GAP`; `replayed` notifications
    /// follow.
    Resumed {
        gap: bool,
        /// The new token; the one sent is dead.
        token: WireStr,
        replayed: u32,
    },
    /// Resuming was not possible (or not tried, for lack of a token); logged in as a new
    /// session.
    LoggedIn { session_id: u64 },
}

/// Why an attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt after the backoff.
    Retry(ClientError),
    /// Not worth trying again.
    GiveUp(ClientError),
}

impl Failure {
    /// Classifies `reason` with [`worth_retrying`].
    pub(crate) fn of(reason: ClientError) -> Self {
        if worth_retrying(&reason) {
            Self::Retry(reason)
        } else {
            Self::GiveUp(reason)
        }
    }
}

/// Sends `resume` (if there is one) and then, if it is refused, `login`, all within `within`.
/// Sets `token_refused` when the server refused the resume: the token is worthless from then on,
/// whatever happens to the login.
pub(crate) async fn run<S: Transport>(
    stream: &mut S,
    buf: &mut BytesMut,
    resume: Option<Packet>,
    login: Packet,
    within: Duration,
    token_refused: &mut bool,
) -> Result<Outcome, Failure> {
    let deadline = Instant::now() + within;
    let (mut reader, mut writer) = stream.split();
    if let Some(resume) = resume {
        send(&mut writer, &resume, deadline, within).await?;
        match receive(&mut reader, buf, deadline, PacketType::ResumeReq, within).await? {
            Packet::ResumeRes {
                result,
                token,
                replayed,
                ..
            } if result == ResultCode::OK || result == ResultCode::RESUMED_WITH_GAP => {
                return Ok(Outcome::Resumed {
                    gap: result == ResultCode::RESUMED_WITH_GAP,
                    token,
                    replayed,
                });
            }
            // A brand-new connection cannot be logged in: the server is confused.
            Packet::ResumeRes { result, .. } if result == ResultCode::ALREADY_AUTHENTICATED => {
                return Err(Failure::GiveUp(ClientError::Rejected {
                    request: PacketType::ResumeReq,
                    result,
                }));
            }
            // INVALID_TOKEN (expired, or the server restarted), NOT_AVAILABLE, or a code this
            // client does not know: the session is gone, so start a new one.
            Packet::ResumeRes { result, .. } => {
                tracing::debug!(%result, "cannot resume the session; logging in again");
                *token_refused = true;
            }
            other => return Err(unexpected(PacketType::ResumeRes, &other)),
        }
    }
    send(&mut writer, &login, deadline, within).await?;
    match receive(&mut reader, buf, deadline, PacketType::LoginReq, within).await? {
        Packet::LoginRes {
            result: ResultCode::OK,
            session_id,
        } => Ok(Outcome::LoggedIn { session_id }),
        Packet::LoginRes { result, .. } => {
            let refused = ClientError::Rejected {
                request: PacketType::LoginReq,
                result,
            };
            // The name may still be held by this client's own old session, which the server
            // has not yet noticed is gone; a busy server may have room later. Other refusals
            // (credentials, username) will not change.
            if result == ResultCode::NAME_IN_USE || result == ResultCode::SERVER_BUSY {
                Err(Failure::Retry(refused))
            } else {
                Err(Failure::GiveUp(refused))
            }
        }
        other => Err(unexpected(PacketType::LoginRes, &other)),
    }
}

fn unexpected(expected: PacketType, got: &Packet) -> Failure {
    Failure::GiveUp(
        ProtocolError::UnexpectedResponse {
            expected,
            got: got.packet_type(),
        }
        .into(),
    )
}

async fn send<W: AsyncWrite + Unpin>(
    writer: &mut W,
    packet: &Packet,
    deadline: Instant,
    within: Duration,
) -> Result<(), Failure> {
    let request = packet.packet_type();
    let mut out = BytesMut::new();
    encode(packet, &mut out)
        .map_err(|source| Failure::GiveUp(ClientError::Encode { request, source }))?;
    let written = timeout_at(deadline, async {
        writer.write_all(&out).await?;
        // TLS holds written bytes in its session until flushed.
        writer.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::of(error.into())),
        Err(_elapsed) => Err(Failure::Retry(ClientError::Timeout {
            request,
            after: within,
        })),
    }
}

/// The next packet, which must come before `deadline`; an `ERROR_NOTIFY` is a failure.
async fn receive<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    deadline: Instant,
    request: PacketType,
    within: Duration,
) -> Result<Packet, Failure> {
    loop {
        let decoded = decode(buf, MAX_PACKET_LIMIT)
            .map_err(|error| Failure::GiveUp(ProtocolError::from(error).into()))?;
        match decoded {
            Some(Packet::ErrorNotify { code, reason }) => {
                return Err(Failure::of(ClientError::ServerClosed {
                    code,
                    reason: reason.to_string_lossy().into_owned(),
                }));
            }
            Some(packet) => return Ok(packet),
            None => {}
        }
        buf.reserve(READ_CHUNK);
        match timeout_at(deadline, reader.read_buf(buf)).await {
            Ok(Ok(0)) => return Err(Failure::Retry(ClientError::Eof)),
            Ok(Ok(_)) => {}
            Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(Failure::Retry(ClientError::Eof));
            }
            Ok(Err(error)) => return Err(Failure::of(error.into())),
            Err(_elapsed) => {
                return Err(Failure::Retry(ClientError::Timeout {
                    request,
                    after: within,
                }));
            }
        }
    }
}
