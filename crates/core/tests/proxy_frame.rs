//! The proxy wire codec: round trips, incremental decoding, and decoders
//! that never panic on arbitrary bytes.

use proptest::prelude::*;
use shopify_events_core::proxy::wire::frame::{
    DataHeader, FrameError, Hello, NackReason, Reply, Status, Welcome, DATA_HEADER_LEN,
    MAX_TOKEN_LEN, PROTOCOL_VERSION,
};

#[test]
fn handshake_round_trips_and_needs_every_byte() {
    let hello = Hello {
        version: PROTOCOL_VERSION,
        token: b"s3cret".to_vec(),
    };
    let mut bytes = Vec::new();
    hello.encode(&mut bytes).unwrap();
    assert_eq!(&bytes[..4], b"SEPX");
    for cut in 0..bytes.len() {
        assert_eq!(Hello::decode(&bytes[..cut]).unwrap(), None, "cut at {cut}");
    }
    assert_eq!(Hello::decode(&bytes).unwrap(), Some((hello, bytes.len())));
}

#[test]
fn handshake_with_foreign_magic_or_long_token_is_refused() {
    let err = Hello::decode(b"GET / HTTP/1.1\r\n").unwrap_err();
    assert!(matches!(err, FrameError::BadMagic { .. }), "{err}");
    let mut bytes = b"SEPX\x01\x00".to_vec();
    bytes.extend_from_slice(&((MAX_TOKEN_LEN + 1) as u16).to_le_bytes());
    assert_eq!(
        Hello::decode(&bytes).unwrap_err(),
        FrameError::TokenTooLong {
            len: MAX_TOKEN_LEN + 1
        }
    );
    let long = Hello {
        version: 1,
        token: vec![b'x'; MAX_TOKEN_LEN + 1],
    };
    assert!(long.encode(&mut Vec::new()).is_err());
}

#[test]
fn welcome_ack_and_nack_round_trip() {
    let welcome = Welcome {
        version: 1,
        status: Status::Busy,
        max_envelope: 8192,
        text: "at the limit".into(),
    };
    let mut bytes = Vec::new();
    welcome.encode(&mut bytes);
    assert_eq!(
        Welcome::decode(&bytes).unwrap(),
        Some((welcome, bytes.len()))
    );

    let replies = [
        Reply::Ack(7),
        Reply::Nack {
            seq: 9,
            reason: NackReason::CrcMismatch,
            text: "checksum".into(),
        },
    ];
    let mut bytes = Vec::new();
    for r in &replies {
        r.encode(&mut bytes);
    }
    let (first, n) = Reply::decode(&bytes).unwrap().unwrap();
    assert_eq!(first, replies[0]);
    assert_eq!(n, 9);
    let (second, m) = Reply::decode(&bytes[n..]).unwrap().unwrap();
    assert_eq!(second, replies[1]);
    assert_eq!(n + m, bytes.len());
    assert!(matches!(
        Reply::decode(&[0x7f]).unwrap_err(),
        FrameError::UnknownReply { kind: 0x7f }
    ));
}

#[test]
fn data_header_is_length_then_sequence_little_endian() {
    let mut frame = vec![0u8; DATA_HEADER_LEN + 44];
    DataHeader::write(&mut frame, 44, 0x0102);
    assert_eq!(&frame[..4], &52u32.to_le_bytes());
    assert_eq!(&frame[4..12], &0x0102u64.to_le_bytes());
    let head: [u8; DATA_HEADER_LEN] = frame[..12].try_into().unwrap();
    let header = DataHeader::decode(&head);
    assert_eq!(
        (header.len, header.seq, header.envelope_len()),
        (52, 0x0102, 44)
    );
}

#[test]
fn long_reason_texts_are_cut_on_a_character_boundary() {
    let mut bytes = Vec::new();
    Reply::Nack {
        seq: 1,
        reason: NackReason::Malformed,
        text: "é".repeat(2000),
    }
    .encode(&mut bytes);
    let (Reply::Nack { text, .. }, _) = Reply::decode(&bytes).unwrap().unwrap() else {
        panic!("not a nack");
    };
    assert!(text.len() <= 1024 && text.chars().all(|c| c == 'é'));
}

proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2100)) {
        let _ = Hello::decode(&bytes);
        let _ = Welcome::decode(&bytes);
        let _ = Reply::decode(&bytes);
        let mut prefixed = b"SEPX".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = Hello::decode(&prefixed);
        let mut welcome = b"SEPY".to_vec();
        welcome.extend_from_slice(&bytes);
        let _ = Welcome::decode(&welcome);
    }

    #[test]
    fn a_decoded_reply_never_claims_more_bytes_than_it_was_given(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(Some((_, n))) = Reply::decode(&bytes) {
            prop_assert!(n <= bytes.len());
        }
    }

    #[test]
    fn every_cut_of_a_valid_message_asks_for_more_and_never_errs(
        token in proptest::collection::vec(any::<u8>(), 0..64),
        text in "[a-z é]{0,40}",
        seq in any::<u64>(),
    ) {
        let mut hello = Vec::new();
        Hello { version: PROTOCOL_VERSION, token }.encode(&mut hello).unwrap();
        let mut welcome = Vec::new();
        Welcome { version: PROTOCOL_VERSION, status: Status::Busy, max_envelope: 7, text: text.clone() }
            .encode(&mut welcome);
        let mut nack = Vec::new();
        Reply::Nack { seq, reason: NackReason::CrcMismatch, text }.encode(&mut nack);
        for cut in 0..hello.len() {
            prop_assert_eq!(Hello::decode(&hello[..cut]), Ok(None));
        }
        for cut in 0..welcome.len() {
            prop_assert_eq!(Welcome::decode(&welcome[..cut]), Ok(None));
        }
        for cut in 0..nack.len() {
            prop_assert_eq!(Reply::decode(&nack[..cut]), Ok(None));
        }
    }

    #[test]
    fn a_stream_of_replies_decodes_the_same_however_it_is_split(
        seqs in proptest::collection::vec(any::<u64>(), 1..20),
        splits in proptest::collection::vec(1usize..40, 1..40),
    ) {
        let replies: Vec<Reply> = seqs
            .iter()
            .map(|&s| if s % 3 == 0 {
                Reply::Nack { seq: s, reason: NackReason::from_byte((s % 5) as u8), text: format!("r{s}") }
            } else {
                Reply::Ack(s)
            })
            .collect();
        let mut bytes = Vec::new();
        for r in &replies {
            r.encode(&mut bytes);
        }
        // Fed in chunks, as a non-blocking reader sees them.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut at = 0;
        for len in splits.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = (at + len).min(bytes.len());
            buf.extend_from_slice(&bytes[at..end]);
            at = end;
            while let Ok(Some((r, n))) = Reply::decode(&buf) {
                buf.drain(..n);
                got.push(r);
            }
        }
        prop_assert!(buf.is_empty());
        let expected: Vec<Reply> = replies
            .into_iter()
            .map(|r| match r {
                Reply::Nack { seq, reason, text } => Reply::Nack { seq, reason: NackReason::from_byte(reason as u8), text },
                ack => ack,
            })
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn a_flipped_bit_in_a_handshake_is_an_error_or_a_different_handshake(
        token in proptest::collection::vec(any::<u8>(), 0..32),
        bit in any::<prop::sample::Index>(),
    ) {
        let hello = Hello { version: PROTOCOL_VERSION, token };
        let mut bytes = Vec::new();
        hello.encode(&mut bytes).unwrap();
        let bit = bit.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        // Never mistaken for the same handshake, never a panic.
        if let Ok(Some((decoded, _))) = Hello::decode(&bytes) {
            prop_assert_ne!(decoded, hello);
        }
    }
}
