use super::*;
use proptest::prelude::*;

fn enc(packet: &Packet) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, &mut buf).expect("encodable");
    buf.to_vec()
}

fn dec_all(bytes: &[u8]) -> Result<Vec<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(p) = decode(&mut buf, MAX_PACKET_LIMIT)? {
        out.push(p);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(out)
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

// The byte-exact examples of docs/PROTOCOL.md: if these change, the document is wrong.
#[test]
fn documented_examples_are_exact() {
    let cases = [
        (
            Packet::LoginReq {
                username: "alice".into(),
                password: "pw".into(),
            },
            "0d 00 01 00 05 61 6c 69 63 65 02 70 77",
        ),
        (
            Packet::LoginRes {
                result: ResultCode::OK,
                session_id: 7,
            },
            "0d 00 02 00 00 07 00 00 00 00 00 00 00",
        ),
        (
            Packet::BroadcastReq { text: "hi".into() },
            "08 00 03 00 02 00 68 69",
        ),
        (
            Packet::BroadcastRes {
                result: ResultCode::OK,
                message_id: 0x0102,
            },
            "0d 00 04 00 00 02 01 00 00 00 00 00 00",
        ),
        (
            Packet::WhisperReq {
                to: "bob".into(),
                text: "yo".into(),
            },
            "0c 00 05 00 03 62 6f 62 02 00 79 6f",
        ),
        (
            Packet::WhisperRes {
                result: ResultCode::USER_NOT_FOUND,
                message_id: 0,
            },
            "0d 00 06 00 05 00 00 00 00 00 00 00 00",
        ),
        (
            Packet::Ping { nonce: 42 },
            "0c 00 07 00 2a 00 00 00 00 00 00 00",
        ),
        (
            Packet::Pong { nonce: 42 },
            "0c 00 08 00 2a 00 00 00 00 00 00 00",
        ),
        (
            Packet::BroadcastNotify {
                message_id: 0x0102,
                sent_at_ms: 1_700_000_000_000,
                from: "alice".into(),
                text: "hi".into(),
            },
            "1e 00 01 01 02 01 00 00 00 00 00 00 00 68 e5 cf 8b 01 00 00 05 61 6c 69 63 65 02 00 68 69",
        ),
        (
            Packet::WhisperNotify {
                message_id: 3,
                sent_at_ms: 0,
                from: "bob".into(),
                text: "".into(),
            },
            "1a 00 02 01 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 03 62 6f 62 00 00",
        ),
        (
            Packet::ErrorNotify {
                code: ErrorCode::SERVER_SHUTDOWN,
                reason: "bye".into(),
            },
            "0a 00 ff 01 00 02 03 62 79 65",
        ),
        (
            Packet::RegisterReq {
                username: "bob".into(),
                password: "hunter22".into(),
            },
            "11 00 01 02 03 62 6f 62 08 68 75 6e 74 65 72 32 32",
        ),
        (
            Packet::RegisterRes {
                result: ResultCode::USERNAME_TAKEN,
            },
            "05 00 02 02 0d",
        ),
        (
            Packet::ChangePasswordReq {
                old_password: "a".into(),
                new_password: "bb".into(),
            },
            "09 00 03 02 01 61 02 62 62",
        ),
        (
            Packet::ChangePasswordRes {
                result: ResultCode::OK,
            },
            "05 00 04 02 00",
        ),
        (
            Packet::HistoryReq {
                channel: 1,
                peer: "bob".into(),
                before_id: 0,
                limit: 50,
            },
            "12 00 01 03 01 03 62 6f 62 00 00 00 00 00 00 00 00 32",
        ),
        (
            Packet::HistoryRes {
                result: ResultCode::OK,
                count: 2,
            },
            "07 00 02 03 00 02 00",
        ),
        (
            Packet::HistoryItem {
                message_id: 9,
                sent_at_ms: 1,
                kind: 2,
                from: "al".into(),
                to: "bo".into(),
                text: "hi".into(),
            },
            "1f 00 80 03 09 00 00 00 00 00 00 00 01 00 00 00 00 00 00 00 02 02 61 6c 02 62 6f 02 00 68 69",
        ),
        (Packet::SessionTokenReq, "04 00 01 07"),
        (
            Packet::SessionTokenRes {
                result: ResultCode::OK,
                token: "0123456789abcdef0123456789abcdef".into(),
                grace_ms: 60_000,
            },
            "2a 00 02 07 00 20 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31 32 33 34 35 36 37 38 39 61 62 63 64 65 66 60 ea 00 00",
        ),
        (
            Packet::ResumeReq {
                username: "alice".into(),
                token: "t0".into(),
                last_message_id: 0x0102,
            },
            "15 00 03 07 05 61 6c 69 63 65 02 74 30 02 01 00 00 00 00 00 00",
        ),
        (
            Packet::ResumeRes {
                result: ResultCode::RESUMED_WITH_GAP,
                session_id: 7,
                token: "t1".into(),
                replayed: 3,
            },
            "14 00 04 07 0b 07 00 00 00 00 00 00 00 02 74 31 03 00 00 00",
        ),
        (Packet::LogoutReq, "04 00 05 07"),
        (
            Packet::LogoutRes {
                result: ResultCode::OK,
            },
            "05 00 06 07 00",
        ),
        (
            Packet::JoinRoomReq {
                room: "lobby".into(),
                password: "".into(),
            },
            "0b 00 03 04 05 6c 6f 62 62 79 00",
        ),
        (
            Packet::RoomChatReq {
                room: "lobby".into(),
                text: "hi".into(),
            },
            "0e 00 0b 04 05 6c 6f 62 62 79 02 00 68 69",
        ),
        (
            Packet::RoomChatRes {
                result: ResultCode::MUTED,
                message_id: 0,
            },
            "0d 00 0c 04 13 00 00 00 00 00 00 00 00",
        ),
        (
            Packet::WatchReq {
                watch: 1,
                user: "bob".into(),
            },
            "09 00 05 05 01 03 62 6f 62",
        ),
        (
            Packet::ModerateReq {
                action: 1,
                target: "bob".into(),
                duration_s: 0,
                reason: "spam".into(),
            },
            "13 00 01 06 01 03 62 6f 62 00 00 00 00 04 00 73 70 61 6d",
        ),
    ];
    for (packet, wire) in cases {
        let bytes = hex(wire);
        assert_eq!(enc(&packet), bytes, "encoding {packet:?}");
        assert_eq!(dec_all(&bytes), Ok(vec![packet.clone()]), "decoding {wire}");
        assert_eq!(encoded_len(&packet), Ok(bytes.len()));
    }
}

#[test]
fn incomplete_is_not_an_error_and_consumes_nothing() {
    let full = enc(&Packet::BroadcastReq {
        text: "hello".into(),
    });
    for cut in 0..full.len() {
        let mut buf = BytesMut::from(&full[..cut]);
        assert_eq!(decode(&mut buf, 8192), Ok(None), "cut at {cut}");
        assert_eq!(buf.len(), cut);
    }
}

#[test]
fn declared_size_reserves_nothing_before_the_bytes_arrive() {
    // A header announcing 8 KiB, then silence: the buffer must not grow to the announced size.
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&[0x00, 0x20, 0x03, 0x00, 0x00]);
    let cap = buf.capacity();
    assert_eq!(decode(&mut buf, 8192), Ok(None));
    assert_eq!(buf.capacity(), cap);
}

#[test]
fn size_below_header_is_rejected() {
    for size in 0u16..4 {
        let mut buf = BytesMut::from(&[size as u8, 0, 7, 0][..]);
        assert_eq!(
            decode(&mut buf, 8192),
            Err(DecodeError::TooShort {
                size: usize::from(size)
            })
        );
    }
}

#[test]
fn oversize_is_rejected_from_the_header_alone() {
    let mut buf = BytesMut::from(&[0x01, 0x20, 0x03, 0x00][..]); // 8193 bytes declared
    let err = decode(&mut buf, 8192).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TooLarge {
            size: 8193,
            max: 8192
        }
    );
    assert_eq!(err.code(), ErrorCode::PACKET_TOO_LARGE);
    // Exactly the limit is fine.
    let mut buf = BytesMut::from(&[0x00, 0x20, 0x03, 0x00][..]);
    assert_eq!(decode(&mut buf, 8192), Ok(None));
}

#[test]
fn unknown_type_is_rejected_from_the_header_alone() {
    for raw in [0x0000u16, 0x0009, 0x0100, 0x0103, 0x01fe, 0xffff] {
        let [lo, hi] = raw.to_le_bytes();
        let mut buf = BytesMut::from(&[0x0c, 0x00, lo, hi][..]);
        let err = decode(&mut buf, 8192).unwrap_err();
        assert_eq!(err, DecodeError::UnknownType(raw));
        assert_eq!(err.code(), ErrorCode::UNKNOWN_PACKET_TYPE);
    }
}

#[test]
fn body_shorter_than_its_fields_is_rejected() {
    // PING with a 4-byte nonce.
    let err = dec_all(&hex("08 00 07 00 01 02 03 04")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            packet: PacketType::Ping,
            field: "nonce"
        }
    );
    assert_eq!(err.code(), ErrorCode::MALFORMED_BODY);
    // LOGIN_REQ whose username claims 10 bytes but has 3.
    assert_eq!(
        dec_all(&hex("08 00 01 00 0a 61 62 63")).unwrap_err(),
        DecodeError::Truncated {
            packet: PacketType::LoginReq,
            field: "username"
        }
    );
    // BROADCAST_REQ with no room for the length prefix.
    assert_eq!(
        dec_all(&hex("05 00 03 00 01")).unwrap_err(),
        DecodeError::Truncated {
            packet: PacketType::BroadcastReq,
            field: "text"
        }
    );
}

#[test]
fn trailing_bytes_are_rejected() {
    let err = dec_all(&hex("0d 00 07 00 2a 00 00 00 00 00 00 00 ff")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::TrailingBytes {
            packet: PacketType::Ping,
            extra: 1
        }
    );
    assert_eq!(err.code(), ErrorCode::MALFORMED_BODY);
}

#[test]
fn invalid_utf8_is_left_for_the_receiver_to_judge() {
    let packets = dec_all(&hex("07 00 03 00 01 00 ff")).expect("framing is fine");
    let Packet::BroadcastReq { text } = &packets[0] else {
        panic!("wrong packet {packets:?}");
    };
    assert!(text.to_str().is_err());
}

#[test]
fn many_packets_in_one_buffer_come_out_in_order() {
    let mut wire = Vec::new();
    for nonce in 0..50u64 {
        wire.extend(enc(&Packet::Ping { nonce }));
    }
    let packets = dec_all(&wire).expect("valid");
    let nonces: Vec<u64> = packets
        .iter()
        .map(|p| match p {
            Packet::Ping { nonce } => *nonce,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(nonces, (0..50).collect::<Vec<_>>());
}

#[test]
fn encoding_refuses_what_the_prefixes_cannot_say() {
    let long = "x".repeat(256);
    let mut buf = BytesMut::new();
    assert_eq!(
        encode(
            &Packet::LoginReq {
                username: long.as_str().into(),
                password: "".into()
            },
            &mut buf
        ),
        Err(EncodeError::FieldTooLong {
            field: "username",
            len: 256,
            max: 255
        })
    );
    let huge = "x".repeat(65_535);
    assert!(matches!(
        encode(
            &Packet::BroadcastReq {
                text: huge.as_str().into()
            },
            &mut buf
        ),
        Err(EncodeError::PacketTooLarge { size: 65_541 })
    ));
    assert!(buf.is_empty(), "nothing written on error");
}

fn wire_str(max: usize) -> impl Strategy<Value = WireStr> {
    prop::collection::vec(any::<u8>(), 0..=max).prop_map(|v| WireStr::from(&v[..]))
}

fn any_packet_up_to_1_2() -> impl Strategy<Value = Packet> {
    let result = any::<u8>().prop_map(ResultCode);
    prop_oneof![
        (wire_str(255), wire_str(255))
            .prop_map(|(username, password)| Packet::LoginReq { username, password }),
        (result.clone(), any::<u64>())
            .prop_map(|(result, session_id)| Packet::LoginRes { result, session_id }),
        wire_str(600).prop_map(|text| Packet::BroadcastReq { text }),
        (result.clone(), any::<u64>())
            .prop_map(|(result, message_id)| Packet::BroadcastRes { result, message_id }),
        (wire_str(255), wire_str(600)).prop_map(|(to, text)| Packet::WhisperReq { to, text }),
        (result, any::<u64>())
            .prop_map(|(result, message_id)| Packet::WhisperRes { result, message_id }),
        any::<u64>().prop_map(|nonce| Packet::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Packet::Pong { nonce }),
        (any::<u64>(), any::<u64>(), wire_str(255), wire_str(600)).prop_map(
            |(message_id, sent_at_ms, from, text)| Packet::BroadcastNotify {
                message_id,
                sent_at_ms,
                from,
                text
            }
        ),
        (any::<u64>(), any::<u64>(), wire_str(255), wire_str(600)).prop_map(
            |(message_id, sent_at_ms, from, text)| Packet::WhisperNotify {
                message_id,
                sent_at_ms,
                from,
                text
            }
        ),
        (any::<u16>(), wire_str(255)).prop_map(|(code, reason)| Packet::ErrorNotify {
            code: ErrorCode(code),
            reason
        }),
        (wire_str(255), wire_str(255))
            .prop_map(|(username, password)| Packet::RegisterReq { username, password }),
        any::<u8>().prop_map(|r| Packet::RegisterRes {
            result: ResultCode(r)
        }),
        (wire_str(255), wire_str(255)).prop_map(|(old_password, new_password)| {
            Packet::ChangePasswordReq {
                old_password,
                new_password,
            }
        }),
        any::<u8>().prop_map(|r| Packet::ChangePasswordRes {
            result: ResultCode(r)
        }),
        (any::<u8>(), wire_str(255), any::<u64>(), any::<u8>()).prop_map(
            |(channel, peer, before_id, limit)| Packet::HistoryReq {
                channel,
                peer,
                before_id,
                limit
            }
        ),
        (any::<u8>(), any::<u16>()).prop_map(|(r, count)| Packet::HistoryRes {
            result: ResultCode(r),
            count
        }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            wire_str(255),
            wire_str(255),
            wire_str(600)
        )
            .prop_map(|(message_id, sent_at_ms, kind, from, to, text)| {
                Packet::HistoryItem {
                    message_id,
                    sent_at_ms,
                    kind,
                    from,
                    to,
                    text,
                }
            }),
        Just(Packet::SessionTokenReq),
        (any::<u8>(), wire_str(255), any::<u32>()).prop_map(|(r, token, grace_ms)| {
            Packet::SessionTokenRes {
                result: ResultCode(r),
                token,
                grace_ms,
            }
        }),
        (wire_str(255), wire_str(255), any::<u64>()).prop_map(
            |(username, token, last_message_id)| Packet::ResumeReq {
                username,
                token,
                last_message_id
            }
        ),
        (any::<u8>(), any::<u64>(), wire_str(255), any::<u32>()).prop_map(
            |(r, session_id, token, replayed)| Packet::ResumeRes {
                result: ResultCode(r),
                session_id,
                token,
                replayed
            }
        ),
        Just(Packet::LogoutReq),
        any::<u8>().prop_map(|r| Packet::LogoutRes {
            result: ResultCode(r)
        }),
    ]
}

/// Every packet of every version.
fn any_packet() -> impl Strategy<Value = Packet> {
    prop_oneof![any_packet_up_to_1_2(), any_packet_1_3()]
}

/// Every packet of protocol 1.3 (rooms, presence, moderation).
fn any_packet_1_3() -> impl Strategy<Value = Packet> {
    proptest::strategy::Union::new(vec![
        (wire_str(255), any::<u8>(), wire_str(255), wire_str(600))
            .prop_map(|(room, flags, password, topic)| Packet::CreateRoomReq {
                room,
                flags,
                password,
                topic,
            })
            .boxed(),
        (any::<u8>(), wire_str(255))
            .prop_map(|(result, room)| Packet::CreateRoomRes {
                result: ResultCode(result),
                room,
            })
            .boxed(),
        (wire_str(255), wire_str(255))
            .prop_map(|(room, password)| Packet::JoinRoomReq { room, password })
            .boxed(),
        (
            any::<u8>(),
            wire_str(255),
            any::<u8>(),
            any::<u32>(),
            wire_str(600),
        )
            .prop_map(
                |(result, room, flags, members, topic)| Packet::JoinRoomRes {
                    result: ResultCode(result),
                    room,
                    flags,
                    members,
                    topic,
                },
            )
            .boxed(),
        wire_str(255)
            .prop_map(|room| Packet::LeaveRoomReq { room })
            .boxed(),
        (any::<u8>(), wire_str(255))
            .prop_map(|(result, room)| Packet::LeaveRoomRes {
                result: ResultCode(result),
                room,
            })
            .boxed(),
        (wire_str(255), any::<u8>())
            .prop_map(|(after, limit)| Packet::ListRoomsReq { after, limit })
            .boxed(),
        (any::<u8>(), any::<u16>())
            .prop_map(|(result, count)| Packet::ListRoomsRes {
                result: ResultCode(result),
                count,
            })
            .boxed(),
        (wire_str(255), wire_str(255), any::<u8>())
            .prop_map(|(room, after, limit)| Packet::RoomMembersReq { room, after, limit })
            .boxed(),
        (any::<u8>(), any::<u16>())
            .prop_map(|(result, count)| Packet::RoomMembersRes {
                result: ResultCode(result),
                count,
            })
            .boxed(),
        (wire_str(255), wire_str(600))
            .prop_map(|(room, text)| Packet::RoomChatReq { room, text })
            .boxed(),
        (any::<u8>(), any::<u64>())
            .prop_map(|(result, message_id)| Packet::RoomChatRes {
                result: ResultCode(result),
                message_id,
            })
            .boxed(),
        (
            wire_str(255),
            any::<u8>(),
            wire_str(255),
            any::<u32>(),
            wire_str(600),
        )
            .prop_map(
                |(room, action, user, duration_s, text)| Packet::RoomModerateReq {
                    room,
                    action,
                    user,
                    duration_s,
                    text,
                },
            )
            .boxed(),
        any::<u8>()
            .prop_map(|result| Packet::RoomModerateRes {
                result: ResultCode(result),
            })
            .boxed(),
        (wire_str(255), any::<u8>(), any::<u32>(), wire_str(600))
            .prop_map(|(room, flags, members, topic)| Packet::RoomItem {
                room,
                flags,
                members,
                topic,
            })
            .boxed(),
        (
            any::<u64>(),
            any::<u64>(),
            wire_str(255),
            wire_str(255),
            wire_str(600),
        )
            .prop_map(
                |(message_id, sent_at_ms, room, from, text)| Packet::RoomChatNotify {
                    message_id,
                    sent_at_ms,
                    room,
                    from,
                    text,
                },
            )
            .boxed(),
        (
            any::<u64>(),
            any::<u64>(),
            wire_str(255),
            any::<u8>(),
            wire_str(255),
            wire_str(255),
            wire_str(600),
        )
            .prop_map(|(event_id, sent_at_ms, room, kind, user, actor, text)| {
                Packet::RoomEventNotify {
                    event_id,
                    sent_at_ms,
                    room,
                    kind,
                    user,
                    actor,
                    text,
                }
            })
            .boxed(),
        (wire_str(255), any::<u8>())
            .prop_map(|(after, limit)| Packet::UserListReq { after, limit })
            .boxed(),
        (any::<u8>(), any::<u16>())
            .prop_map(|(result, count)| Packet::UserListRes {
                result: ResultCode(result),
                count,
            })
            .boxed(),
        (any::<u8>(), wire_str(255))
            .prop_map(|(status, text)| Packet::SetStatusReq { status, text })
            .boxed(),
        any::<u8>()
            .prop_map(|result| Packet::SetStatusRes {
                result: ResultCode(result),
            })
            .boxed(),
        (any::<u8>(), wire_str(255))
            .prop_map(|(watch, user)| Packet::WatchReq { watch, user })
            .boxed(),
        (any::<u8>(), wire_str(255), any::<u8>(), wire_str(255))
            .prop_map(|(result, user, status, text)| Packet::WatchRes {
                result: ResultCode(result),
                user,
                status,
                text,
            })
            .boxed(),
        (wire_str(255), any::<u8>(), any::<u8>(), wire_str(255))
            .prop_map(|(user, status, role, text)| Packet::UserItem {
                user,
                status,
                role,
                text,
            })
            .boxed(),
        (wire_str(255), any::<u8>(), wire_str(255))
            .prop_map(|(user, status, text)| Packet::PresenceNotify { user, status, text })
            .boxed(),
        (any::<u8>(), wire_str(255), any::<u32>(), wire_str(600))
            .prop_map(|(action, target, duration_s, reason)| Packet::ModerateReq {
                action,
                target,
                duration_s,
                reason,
            })
            .boxed(),
        any::<u8>()
            .prop_map(|result| Packet::ModerateRes {
                result: ResultCode(result),
            })
            .boxed(),
        wire_str(600)
            .prop_map(|text| Packet::SystemNoticeReq { text })
            .boxed(),
        (any::<u8>(), any::<u64>())
            .prop_map(|(result, message_id)| Packet::SystemNoticeRes {
                result: ResultCode(result),
                message_id,
            })
            .boxed(),
        (any::<u64>(), any::<u64>(), wire_str(255), wire_str(600))
            .prop_map(
                |(message_id, sent_at_ms, from, text)| Packet::SystemNoticeNotify {
                    message_id,
                    sent_at_ms,
                    from,
                    text,
                },
            )
            .boxed(),
        (any::<u8>(), wire_str(255), any::<u64>(), wire_str(600))
            .prop_map(
                |(action, actor, expires_at_ms, reason)| Packet::ModerationNotify {
                    action,
                    actor,
                    expires_at_ms,
                    reason,
                },
            )
            .boxed(),
    ])
}

proptest! {
    #[test]
    fn every_packet_round_trips(packet in any_packet()) {
        let bytes = enc(&packet);
        prop_assert_eq!(bytes.len(), encoded_len(&packet).expect("fits"));
        prop_assert_eq!(dec_all(&bytes).expect("valid"), vec![packet]);
    }

    #[test]
    fn a_stream_split_anywhere_frames_the_same_packets(
        packets in prop::collection::vec(any_packet(), 1..20),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let mut wire = Vec::new();
        for p in &packets {
            wire.extend(enc(p));
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut start = 0;
        for end in points {
            buf.extend_from_slice(&wire[start..end]);
            start = end;
            while let Some(p) = decode(&mut buf, MAX_PACKET_LIMIT).expect("valid stream") {
                out.push(p);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(out, packets);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_overread(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        max in 4usize..=MAX_PACKET_LIMIT,
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match decode(&mut buf, max) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

fn chat_type() -> impl Strategy<Value = PacketType> {
    prop::sample::select(vec![
        PacketType::BroadcastNotify,
        PacketType::WhisperNotify,
        PacketType::RoomChatNotify,
    ])
}

proptest! {
    #[test]
    fn the_chat_fast_path_reads_what_decode_reads(packet in any_packet(), extra in 0usize..8) {
        let mut bytes = enc(&packet);
        let size = bytes.len();
        // Whatever follows the packet is not its business.
        bytes.extend(std::iter::repeat_n(0x5A, extra));
        let peeked = peek_chat_notification(&bytes, MAX_PACKET_LIMIT).expect("valid");
        prop_assert_eq!(peeked, ChatNotification::of(&packet));
        if let Some(view) = peeked {
            prop_assert_eq!(view.size, size, "the packet's own bytes, not what follows");
            for cut in [0, 1, HEADER_LEN, size - 1] {
                prop_assert_eq!(
                    peek_chat_notification(&bytes[..cut], MAX_PACKET_LIMIT),
                    Ok(None),
                    "an incomplete packet waits"
                );
            }
        }
    }

    #[test]
    fn the_chat_fast_path_refuses_what_decode_refuses(
        packet_type in chat_type(),
        body in prop::collection::vec(any::<u8>(), 0..120),
        max in 4usize..=200,
    ) {
        let mut bytes = Vec::new();
        bytes.extend(((HEADER_LEN + body.len()) as u16).to_le_bytes());
        bytes.extend((packet_type as u16).to_le_bytes());
        bytes.extend(&body);
        let peeked = peek_chat_notification(&bytes, max);
        let mut buf = BytesMut::from(&bytes[..]);
        match decode(&mut buf, max) {
            Ok(Some(packet)) => {
                prop_assert_eq!(peeked, Ok(ChatNotification::of(&packet)));
            }
            Ok(None) => prop_assert_eq!(peeked, Ok(None)),
            Err(err) => prop_assert_eq!(peeked, Err(err)),
        }
    }
}
