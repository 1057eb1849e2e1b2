//! Envelope encoding and decoding: round trips, framing, and one crafted
//! input per decode error.

use proptest::prelude::*;
use shopify_events_core::envelope::{
    encode, encode_bytes, envelope_len, stamp, DecodeError, EncodeError, Envelope, EnvelopeWriter,
    Flags, PayloadError, Seal, Stamp, StampError, CRC_LEN, FIXED_LEN, FIXED_LEN_V1, MIN_LEN,
    MIN_LEN_V2, STAMP_LEN, STAMP_OFFSET,
};
use shopify_events_core::event_id::EventId;
use shopify_events_core::topic::{Topic, TopicError};

const TIME: i64 = 1_700_000_000_123_456;

fn id() -> EventId {
    EventId::from_bytes([
        0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b, 0x71, 0xf9, 0x8a, 0x0b, 0x1c, 0x2d, 0x3e, 0x4f, 0x50,
        0x61,
    ])
}

fn envelope(key: Option<&[u8]>, headers: &[(&str, &[u8])], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = encode(
        &mut out,
        id(),
        TIME,
        "checkout.completed",
        key,
        headers,
        payload,
    )
    .unwrap();
    assert_eq!(len, out.len());
    out
}

/// Rewrites the CRC after a deliberate edit, so the decoder gets past the checksum.
fn reseal(bytes: &mut [u8]) {
    let body = bytes.len() - CRC_LEN;
    let crc = crc32c::crc32c(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn round_trip_without_key() {
    let bytes = envelope(None, &[], b"{\"a\":1}");
    let env = Envelope::decode(&bytes).unwrap();
    assert_eq!(env.id, id());
    assert_eq!(env.time_us, TIME);
    assert_eq!(env.topic, "checkout.completed");
    assert_eq!(env.key, None);
    assert!(env.headers.is_empty());
    assert_eq!(env.payload, b"{\"a\":1}");
    assert_eq!(env.flags, Flags::empty());
}

#[test]
fn empty_key_differs_from_no_key() {
    let none = envelope(None, &[], b"x");
    let empty = envelope(Some(b""), &[], b"x");
    assert_eq!(Envelope::decode(&none).unwrap().key, None);
    let env = Envelope::decode(&empty).unwrap();
    assert_eq!(env.key, Some(&b""[..]));
    assert!(env.flags.contains(Flags::KEY_PRESENT));
    assert_eq!(empty.len(), none.len() + 4);
}

#[test]
fn round_trip_with_key_and_binary_headers() {
    let headers: &[(&str, &[u8])] = &[
        ("trace", b"abc"),
        ("bin\0name", b"\0\xff\0\x01"),
        ("empty", b""),
        ("trace", b"dup"),
    ];
    let bytes = envelope(Some(b"shop-42"), headers, b"payload");
    let env = Envelope::decode(&bytes).unwrap();
    assert_eq!(env.key, Some(&b"shop-42"[..]));
    assert_eq!(env.headers.len(), 4);
    assert_eq!(env.headers.iter().collect::<Vec<_>>(), headers.to_vec());
    assert_eq!(env.headers.into_iter().count(), 4);
}

#[test]
fn empty_payload_round_trips_and_is_the_smallest_envelope() {
    let mut out = Vec::new();
    let len = encode(&mut out, id(), TIME, "t", None, &[], b"").unwrap();
    assert_eq!(len, MIN_LEN_V2);
    assert_eq!(Envelope::decode(&out).unwrap().payload, b"");
}

#[test]
fn max_length_topic_round_trips() {
    let topic = "a".repeat(249);
    let mut out = Vec::new();
    encode(&mut out, id(), TIME, &topic, None, &[], b"p").unwrap();
    assert_eq!(Envelope::decode(&out).unwrap().topic, topic);
    assert_eq!(out[FIXED_LEN - 1], 249);
}

#[test]
fn topic_error_leaves_output_untouched() {
    let mut out = b"existing".to_vec();
    let err = encode(&mut out, id(), TIME, "bad topic", None, &[], b"p").unwrap_err();
    assert!(matches!(
        err,
        EncodeError::InvalidTopic(TopicError::InvalidChar { index: 3, .. })
    ));
    assert_eq!(out, b"existing");
    let err = EnvelopeWriter::begin(&mut out, id(), TIME, "", None).unwrap_err();
    assert_eq!(err, EncodeError::InvalidTopic(TopicError::Empty));
    assert_eq!(out, b"existing");
}

#[test]
fn writer_appends_after_an_existing_mtype_prefix() {
    let mtype = 7i64.to_ne_bytes();
    let mut out = mtype.to_vec();
    let mut w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", Some(b"k")).unwrap();
    w.header("h", b"v").unwrap();
    let len = w.payload(b"body").unwrap();
    assert_eq!(out.len(), 8 + len);
    assert_eq!(out[..8], mtype);
    assert_eq!(
        out[8..],
        envelope_bytes("orders", Some(b"k"), &[("h", b"v")], b"body")
    );
    assert_eq!(Envelope::decode(&out[8..]).unwrap().payload, b"body");
}

fn envelope_bytes(
    topic: &str,
    key: Option<&[u8]>,
    headers: &[(&str, &[u8])],
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out, id(), TIME, topic, key, headers, payload).unwrap();
    out
}

#[test]
fn payload_with_writes_in_place_and_sets_the_json_flag() {
    let mut out = vec![9u8; 8];
    let w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    let len = w
        .payload_with(true, |buf| {
            buf.extend_from_slice(b"{\"id\":1}");
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    let env = Envelope::decode(&out[8..8 + len]).unwrap();
    assert!(env.flags.contains(Flags::PAYLOAD_JSON));
    assert_eq!(env.payload, b"{\"id\":1}");
}

#[test]
fn payload_writer_failure_truncates_back_to_the_prefix() {
    let mut out = vec![9u8; 8];
    let w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    let err = w
        .payload_with(true, |buf| {
            buf.extend_from_slice(b"{\"half");
            Err("unsupported type")
        })
        .unwrap_err();
    assert!(matches!(err, PayloadError::Write("unsupported type")));
    assert_eq!(out, vec![9u8; 8]);
}

#[test]
fn payload_writer_that_shrinks_the_buffer_is_an_error() {
    let mut out = vec![9u8; 8];
    let w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    let err = w
        .payload_with(false, |buf| {
            buf.truncate(3);
            Ok::<_, ()>(())
        })
        .unwrap_err();
    assert!(matches!(
        err,
        PayloadError::Encode(EncodeError::BufferShrunk { len: 3, .. })
    ));
    assert_eq!(out.len(), 3);
}

#[test]
fn abort_and_drop_truncate_an_unfinished_envelope() {
    let mut out = b"pre".to_vec();
    let mut w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    w.header("a", b"b").unwrap();
    w.abort();
    assert_eq!(out, b"pre");
    drop(EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap());
    assert_eq!(out, b"pre");
}

#[test]
fn too_many_headers_is_an_error_and_the_writer_stays_usable() {
    let mut out = Vec::new();
    let mut w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    for _ in 0..u16::MAX {
        w.header("", b"").unwrap();
    }
    assert_eq!(
        w.header("", b""),
        Err(EncodeError::TooManyHeaders { count: 65536 })
    );
    let len = w.payload(b"").unwrap();
    assert_eq!(Envelope::decode(&out[..len]).unwrap().headers.len(), 65535);
}

#[test]
fn header_name_longer_than_u16_is_an_error() {
    let mut out = Vec::new();
    let mut w = EnvelopeWriter::begin(&mut out, id(), TIME, "orders", None).unwrap();
    let name = "n".repeat(65536);
    assert!(matches!(
        w.header(&name, b""),
        Err(EncodeError::HeaderNameTooLong { len: 65536, .. })
    ));
    assert_eq!(w.header_count(), 0);
}

#[test]
fn envelope_len_frames_two_concatenated_envelopes() {
    let a = envelope(None, &[], b"first");
    let b = envelope(Some(b"k"), &[("h", b"v")], b"second, longer");
    let stream = [a.clone(), b.clone()].concat();
    assert_eq!(envelope_len(&stream[..7]), Ok(None));
    let first = envelope_len(&stream).unwrap().unwrap();
    assert_eq!(first, a.len());
    let second = envelope_len(&stream[first..]).unwrap().unwrap();
    assert_eq!(second, b.len());
    assert_eq!(
        Envelope::decode(&stream[..first]).unwrap().payload,
        b"first"
    );
    assert_eq!(
        Envelope::decode(&stream[first..first + second])
            .unwrap()
            .payload,
        b"second, longer"
    );
}

#[test]
fn envelope_len_rejects_garbage_from_the_first_bytes() {
    assert_eq!(
        envelope_len(b"XY"),
        Err(DecodeError::BadMagic { found: *b"XY" })
    );
    assert_eq!(
        envelope_len(b"SE\x03"),
        Err(DecodeError::UnsupportedVersion { version: 3 })
    );
    assert_eq!(
        envelope_len(b"SE\x01\x00\x00\x00\x00\x00"),
        Err(DecodeError::LengthTooSmall {
            declared: 0,
            minimum: MIN_LEN
        })
    );
}

#[test]
fn decode_error_truncated() {
    let bytes = envelope(None, &[], b"payload");
    assert!(matches!(
        Envelope::decode(&bytes[..5]),
        Err(DecodeError::Truncated {
            field: "envelope prefix",
            needed: 8,
            available: 5
        })
    ));
    let n = bytes.len();
    assert_eq!(
        Envelope::decode(&bytes[..n - 1]),
        Err(DecodeError::Truncated {
            field: "envelope",
            needed: n,
            available: n - 1
        })
    );
}

#[test]
fn decode_error_truncated_field_inside_a_consistent_frame() {
    // Payload length claims one byte more than the frame holds; CRC resealed.
    let mut bytes = envelope(None, &[], b"payload");
    let at = bytes.len() - CRC_LEN - 7 - 4;
    bytes[at..at + 4].copy_from_slice(&8u32.to_le_bytes());
    reseal(&mut bytes);
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::Truncated {
            field: "payload",
            needed: 8,
            available: 7
        })
    );
}

#[test]
fn decode_error_bad_magic() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[0] = b'X';
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::BadMagic { found: *b"XE" })
    );
}

#[test]
fn decode_error_unsupported_version() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[2] = 3;
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::UnsupportedVersion { version: 3 })
    );
    bytes[2] = 0;
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::UnsupportedVersion { version: 0 })
    );
}

#[test]
fn decode_error_reserved_flags() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[3] = 0b100;
    reseal(&mut bytes);
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::ReservedFlags { flags: 0b100 })
    );
}

#[test]
fn decode_error_length_mismatch() {
    // Payload length one short of the frame: one byte is left over before the CRC.
    let mut bytes = envelope(None, &[], b"payload");
    let at = bytes.len() - CRC_LEN - 7 - 4;
    bytes[at..at + 4].copy_from_slice(&6u32.to_le_bytes());
    reseal(&mut bytes);
    let n = bytes.len();
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::LengthMismatch {
            declared: n,
            actual: n - 1
        })
    );
}

#[test]
fn decode_error_length_too_small() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[4..8].copy_from_slice(&10u32.to_le_bytes());
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::LengthTooSmall {
            declared: 10,
            minimum: MIN_LEN
        })
    );
}

#[test]
fn decode_error_invalid_topic() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[FIXED_LEN + 8] = b' '; // "checkout completed"
    reseal(&mut bytes);
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(DecodeError::InvalidTopic(TopicError::InvalidChar {
            ch: ' ',
            index: 8,
            ..
        }))
    ));
    let mut bytes = envelope(None, &[], b"p");
    bytes[FIXED_LEN - 1] = 0; // topic length 0
    reseal(&mut bytes);
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(DecodeError::InvalidTopic(TopicError::Empty))
    ));
}

#[test]
fn decode_error_header_name_not_utf8() {
    let mut bytes = envelope(None, &[("ok", b"1"), ("h\u{e9}", b"2")], b"p");
    let at = bytes
        .windows(3)
        .position(|w| w == "h\u{e9}".as_bytes())
        .unwrap();
    bytes[at + 1] = 0xff;
    reseal(&mut bytes);
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::HeaderNameNotUtf8 { index: 1 })
    );
}

#[test]
fn decode_error_checksum_mismatch() {
    let mut bytes = envelope(None, &[], b"payload");
    let n = bytes.len();
    bytes[n - 6] ^= 0x20;
    assert!(matches!(
        Envelope::decode(&bytes),
        Err(DecodeError::ChecksumMismatch { .. })
    ));
}

#[test]
fn decode_error_trailing_bytes() {
    let mut bytes = envelope(None, &[], b"p");
    bytes.extend_from_slice(b"xyz");
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::TrailingBytes { count: 3 })
    );
}

#[test]
fn errors_read_as_sentences_naming_the_value() {
    let mut out = Vec::new();
    let err = encode(&mut out, id(), TIME, "checkout completed", None, &[], b"").unwrap_err();
    assert!(
        err.to_string().contains("character ' ' at index 8"),
        "{err}"
    );
    assert_eq!(
        DecodeError::UnsupportedVersion { version: 3 }.to_string(),
        "unsupported envelope version 3; this reader knows versions 1 and 2, upgrade it"
    );
}

/// The hex dump under `heading` in docs/PROTOCOL.md.
fn protocol_md_example(heading: &str) -> Vec<u8> {
    let doc = include_str!("../../../docs/PROTOCOL.md");
    let section = &doc[doc.find(heading).expect("worked example section")..];
    let start = section.find("```text\n").expect("hex block") + "```text\n".len();
    let end = start + section[start..].find("```").expect("end of hex block");
    section[start..end]
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).expect("hex byte"))
        .collect()
}

fn worked_example_id() -> EventId {
    "018bcfe5-687b-774b-8a0b-1c2d3e4f5061".parse().unwrap()
}

#[test]
fn worked_example_in_protocol_md_is_what_the_encoder_and_stamp_write() {
    let id = worked_example_id();
    let mut out = Vec::new();
    let mut w =
        EnvelopeWriter::begin(&mut out, id, 1_700_000_000_123_456, "orders", Some(b"k1")).unwrap();
    w.header("trace", b"ab").unwrap();
    let len = w
        .payload_with(true, |buf| {
            buf.extend_from_slice(b"{\"n\":1}");
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap();
    assert_eq!(len, 91);
    let documented = protocol_md_example("### Worked example\n");
    // The encoder leaves the stamp zero, with a CRC of its own.
    assert_eq!(out[STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN], [0; STAMP_LEN]);
    assert_eq!(out[..STAMP_OFFSET], documented[..STAMP_OFFSET]);
    assert_eq!(out[48..87], documented[48..87]);
    assert_eq!(Envelope::decode(&out).unwrap().stamp, None);
    let producer = 0x5f1c_2a9e_0b7d_4c33;
    stamp(&mut out, Stamp { producer, seq: 41 }).unwrap();
    assert_eq!(out, documented);
    let env = Envelope::decode(&out).unwrap();
    assert_eq!(env.version, 2);
    assert_eq!(env.stamp, Some(Stamp { producer, seq: 41 }));
    // The documented id is what `generate` lays out for that time, up to the random bits.
    let generated = EventId::generate(1_700_000_000_123_456);
    assert_eq!(generated.as_bytes()[..8], id.as_bytes()[..8]);
}

#[test]
fn version_1_worked_example_in_protocol_md_decodes_to_its_fields() {
    let bytes = protocol_md_example("### Worked example, version 1\n");
    assert_eq!(bytes.len(), 75);
    let env = Envelope::decode(&bytes).unwrap();
    assert_eq!(env.version, 1);
    assert_eq!(env.stamp, None);
    assert_eq!(env.id, worked_example_id());
    assert_eq!(env.time_us, 1_700_000_000_123_456);
    assert_eq!(env.topic, "orders");
    assert_eq!(env.key, Some(&b"k1"[..]));
    assert_eq!(
        env.headers.iter().collect::<Vec<_>>(),
        vec![("trace", &b"ab"[..])]
    );
    assert_eq!(env.payload, b"{\"n\":1}");
    assert_eq!(env.flags, Flags::KEY_PRESENT | Flags::PAYLOAD_JSON);
    assert_eq!(envelope_len(&bytes), Ok(Some(75)));
}

/// The version 1 form of a version 2 envelope: the stamp cut out, version,
/// length and CRC rewritten, as gems before the stamp wrote it.
fn as_version_1(v2: &[u8]) -> Vec<u8> {
    let mut v1 = [&v2[..STAMP_OFFSET], &v2[STAMP_OFFSET + STAMP_LEN..]].concat();
    v1[2] = 1;
    let len = v1.len() as u32;
    v1[4..8].copy_from_slice(&len.to_le_bytes());
    reseal(&mut v1);
    v1
}

#[test]
fn version_1_envelopes_stay_readable_field_for_field() {
    let headers: &[(&str, &[u8])] = &[("trace", b"abc"), ("bin", b"\0\xff")];
    for key in [None, Some(&b""[..]), Some(&b"shop-42"[..])] {
        let v2 = envelope(key, headers, b"{\"a\":1}");
        let v1 = as_version_1(&v2);
        assert_eq!(v1.len() + STAMP_LEN, v2.len());
        let (old, new) = (
            Envelope::decode(&v1).unwrap(),
            Envelope::decode(&v2).unwrap(),
        );
        assert_eq!((old.version, new.version), (1, 2));
        assert_eq!(old.stamp, None);
        assert_eq!(
            (
                old.id,
                old.time_us,
                old.topic,
                old.key,
                old.flags,
                old.payload
            ),
            (
                new.id,
                new.time_us,
                new.topic,
                new.key,
                new.flags,
                new.payload
            )
        );
        assert_eq!(
            old.headers.iter().collect::<Vec<_>>(),
            new.headers.iter().collect::<Vec<_>>()
        );
        assert_eq!(v1[FIXED_LEN_V1 - 1] as usize, "checkout.completed".len());
    }
    let mut smallest = Vec::new();
    encode(&mut smallest, id(), TIME, "t", None, &[], b"").unwrap();
    assert_eq!(as_version_1(&smallest).len(), MIN_LEN);
}

#[test]
fn stamp_numbers_an_encoded_envelope_and_seals_it_again() {
    let mut bytes = vec![7u8; 8];
    let len = encode(
        &mut bytes,
        id(),
        TIME,
        "orders",
        Some(b"k"),
        &[("h", b"v")],
        b"p",
    )
    .unwrap();
    let unstamped = bytes[8..].to_vec();
    let first = Stamp {
        producer: 0xfeed,
        seq: 0,
    };
    stamp(&mut bytes[8..], first).unwrap();
    assert_eq!(bytes[..8], [7u8; 8], "the mtype prefix is not touched");
    assert_eq!(Envelope::decode(&bytes[8..]).unwrap().stamp, Some(first));
    // Stamping again (a resend with a new number) overwrites the stamp.
    let again = Stamp {
        producer: u64::MAX,
        seq: u64::MAX,
    };
    stamp(&mut bytes[8..], again).unwrap();
    let env = Envelope::decode(&bytes[8..]).unwrap();
    assert_eq!(env.stamp, Some(again));
    assert_eq!(env.payload, b"p");
    // Only the stamp and the CRC changed.
    let diff: Vec<usize> = (0..len).filter(|&i| bytes[8 + i] != unstamped[i]).collect();
    assert!(
        diff.iter()
            .all(|&i| (STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN).contains(&i) || i >= len - CRC_LEN),
        "{diff:?}"
    );
}

#[test]
fn stamp_refuses_what_it_cannot_number_and_writes_nothing() {
    let good = Stamp {
        producer: 1,
        seq: 1,
    };
    let v2 = envelope(None, &[], b"p");
    let mut v1 = as_version_1(&v2);
    let before = v1.clone();
    assert_eq!(
        stamp(&mut v1, good),
        Err(StampError::Version { version: 1 })
    );
    assert_eq!(v1, before);
    let mut cut = v2[..v2.len() - 1].to_vec();
    assert_eq!(
        stamp(&mut cut, good),
        Err(StampError::Length {
            declared: v2.len(),
            len: v2.len() - 1
        })
    );
    assert_eq!(
        stamp(&mut b"XY not an envelope".to_vec(), good),
        Err(StampError::NotAnEnvelope { len: 18 })
    );
    let mut bytes = v2.clone();
    assert_eq!(
        stamp(
            &mut bytes,
            Stamp {
                producer: 0,
                seq: 0
            }
        ),
        Err(StampError::ZeroProducer)
    );
    assert_eq!(bytes, v2);
    assert!(StampError::Version { version: 1 }
        .to_string()
        .contains("only version 2 carries a stamp"));
}

#[test]
fn an_unstamped_envelope_with_a_sequence_number_is_malformed() {
    let mut bytes = envelope(None, &[], b"p");
    bytes[STAMP_OFFSET + 8] = 5;
    reseal(&mut bytes);
    assert_eq!(
        Envelope::decode(&bytes),
        Err(DecodeError::UnstampedSequence { seq: 5 })
    );
}

#[test]
fn a_version_2_envelope_shorter_than_its_fixed_fields_is_rejected() {
    // A 44-byte "version 2" envelope frames (44 is the smallest of any
    // version) but cannot hold a stamp and a topic.
    let mut v1 = as_version_1(&envelope(None, &[], b""));
    v1.truncate(MIN_LEN);
    v1[4..8].copy_from_slice(&(MIN_LEN as u32).to_le_bytes());
    v1[2] = 2;
    reseal(&mut v1);
    assert_eq!(envelope_len(&v1), Ok(Some(MIN_LEN)));
    assert!(Envelope::decode(&v1).is_err());
}

/// What the streaming writer writes for an event without headers.
fn streamed(prefix: &[u8], topic: &str, key: Option<&[u8]>, payload: &[u8], seal: Seal) -> Vec<u8> {
    let mut out = prefix.to_vec();
    EnvelopeWriter::begin(&mut out, id(), TIME, topic, key)
        .unwrap()
        .sealed_by(seal)
        .payload(payload)
        .unwrap();
    out
}

proptest! {
    #[test]
    fn the_one_pass_encoder_writes_the_streaming_writers_bytes(
        prefix in proptest::collection::vec(any::<u8>(), 0..9),
        topic in "[a-zA-Z0-9._-]{1,249}",
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        payload in proptest::collection::vec(any::<u8>(), 0..600),
        by_stamp in any::<bool>(),
    ) {
        prop_assume!(topic != "." && topic != "..");
        let seal = if by_stamp { Seal::ByStamp } else { Seal::Now };
        let mut one_pass = prefix.clone();
        let checked = Topic::new(topic.as_str()).unwrap();
        let len = encode_bytes(&mut one_pass, id(), TIME, &checked, key.as_deref(), &payload, seal)
            .unwrap();
        prop_assert_eq!(len, one_pass.len() - prefix.len());
        prop_assert_eq!(&one_pass, &streamed(&prefix, &topic, key.as_deref(), &payload, seal));
    }
}

#[test]
fn a_topic_is_checked_once_when_made_and_bytes_need_not_be_utf8_to_fail_cleanly() {
    assert_eq!(Topic::new("orders.v1").unwrap().as_str(), "orders.v1");
    assert_eq!(
        Topic::from_bytes(b"orders-v1").unwrap().as_str(),
        "orders-v1"
    );
    assert!(matches!(
        Topic::new("no spaces"),
        Err(TopicError::InvalidChar { index: 2, .. })
    ));
    assert!(matches!(
        Topic::from_bytes(b"t\xff\xfe"),
        Err(TopicError::InvalidChar { index: 1, .. })
    ));
    assert_eq!(Topic::from_bytes(b""), Err(TopicError::Empty));
    assert!(matches!(
        Topic::from_bytes(b".."),
        Err(TopicError::Reserved { .. })
    ));
}

#[test]
fn an_envelope_sealed_by_stamp_is_whole_once_stamped_and_only_then() {
    let numbered = Stamp {
        producer: 42,
        seq: 7,
    };
    for seal_by_stamp in [
        |out: &mut Vec<u8>| {
            let topic = Topic::new("orders").unwrap();
            encode_bytes(out, id(), TIME, &topic, Some(b"k"), b"{}", Seal::ByStamp).unwrap();
        },
        |out: &mut Vec<u8>| {
            EnvelopeWriter::begin(out, id(), TIME, "orders", Some(b"k"))
                .unwrap()
                .sealed_by(Seal::ByStamp)
                .payload_with(true, |out| {
                    out.extend_from_slice(b"{}");
                    Ok::<(), ()>(())
                })
                .unwrap();
        },
    ] {
        let mut unsealed = Vec::new();
        seal_by_stamp(&mut unsealed);
        assert!(
            matches!(
                Envelope::decode(&unsealed),
                Err(DecodeError::ChecksumMismatch { stored: 0, .. })
            ),
            "an unsealed envelope must not pass for a whole one"
        );
        stamp(&mut unsealed, numbered).unwrap();
        let env = Envelope::decode(&unsealed).expect("sealed by the stamp");
        assert_eq!(env.stamp, Some(numbered));
        assert_eq!(env.payload, b"{}");
        assert_eq!(env.key, Some(&b"k"[..]));
    }
}

#[test]
fn the_one_pass_encoder_writes_the_streaming_writers_bytes_at_the_edges() {
    // The longest topic Kafka takes (its length is one byte in the
    // envelope), an empty payload, an empty key and no key: the cases a
    // random run may miss.
    let longest = "t".repeat(249);
    for (topic, key, payload) in [
        (longest.as_str(), None, &b""[..]),
        (longest.as_str(), Some(&b""[..]), &b"p"[..]),
        ("t", Some(&b""[..]), &b""[..]),
        ("t", None, &b""[..]),
    ] {
        let checked = Topic::new(topic).unwrap();
        for seal in [Seal::Now, Seal::ByStamp] {
            let mut one_pass = vec![7];
            let len =
                encode_bytes(&mut one_pass, id(), TIME, &checked, key, payload, seal).unwrap();
            assert_eq!(len, one_pass.len() - 1);
            assert_eq!(one_pass, streamed(&[7], topic, key, payload, seal));
        }
        let mut sealed = Vec::new();
        encode_bytes(&mut sealed, id(), TIME, &checked, key, payload, Seal::Now).unwrap();
        let env = Envelope::decode(&sealed).expect("whole");
        assert_eq!((env.topic, env.key, env.payload), (topic, key, payload));
    }
    // A 250-byte topic never becomes a Topic, and `encode` (which makes
    // one) writes nothing for it.
    assert!(matches!(
        Topic::new("t".repeat(250)),
        Err(TopicError::TooLong { len: 250, .. })
    ));
    let mut out = Vec::new();
    assert!(encode(&mut out, id(), TIME, &"t".repeat(250), None, &[], b"").is_err());
    assert!(out.is_empty());
}
