//! Adversarial input: decoding never panics, corruption is always rejected,
//! and every valid input round-trips.

use proptest::collection::vec;
use proptest::prelude::*;
use shopify_events_core::envelope::{encode, stamp, Envelope, Stamp};
use shopify_events_core::event_id::EventId;

fn topic() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._-]{1,249}".prop_filter("reserved", |t| t != "." && t != "..")
}

type Header = (String, Vec<u8>);

fn header() -> impl Strategy<Value = Header> {
    (any::<String>(), vec(any::<u8>(), 0..64))
}

fn valid_envelope() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<[u8; 16]>(),
        any::<i64>(),
        topic(),
        proptest::option::of(vec(any::<u8>(), 0..64)),
        vec(header(), 0..6),
        vec(any::<u8>(), 0..300),
        proptest::option::of((1..=u64::MAX, any::<u64>())),
    )
        .prop_map(|(id, time, topic, key, headers, payload, stamped)| {
            let headers: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            let mut out = Vec::new();
            encode(
                &mut out,
                EventId::from_bytes(id),
                time,
                &topic,
                key.as_deref(),
                &headers,
                &payload,
            )
            .unwrap();
            if let Some((producer, seq)) = stamped {
                stamp(&mut out, Stamp { producer, seq }).unwrap();
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..512)) {
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn decoding_bytes_behind_a_valid_prefix_never_panics(tail in vec(any::<u8>(), 0..512), len in 0u32..600, version in 1u8..=2) {
        // Random bytes rarely pass the magic check; this drives them deeper.
        let mut bytes = vec![b'S', b'E', version, 0];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&tail);
        let _ = Envelope::decode(&bytes);
    }

    #[test]
    fn every_truncation_of_a_valid_envelope_is_rejected(bytes in valid_envelope()) {
        for n in 0..bytes.len() {
            prop_assert!(Envelope::decode(&bytes[..n]).is_err(), "accepted a {}-byte prefix", n);
        }
    }

    #[test]
    fn every_single_bit_flip_is_rejected(bytes in valid_envelope()) {
        let mut bytes = bytes;
        for bit in 0..bytes.len() * 8 {
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(Envelope::decode(&bytes).is_err(), "accepted a flip of bit {}", bit);
            bytes[bit / 8] ^= 1 << (bit % 8);
        }
    }

    #[test]
    fn encode_decode_round_trips(
        id in any::<[u8; 16]>(),
        time in any::<i64>(),
        topic in topic(),
        key in proptest::option::of(vec(any::<u8>(), 0..64)),
        headers in vec(header(), 0..6),
        payload in vec(any::<u8>(), 0..300),
        prefix in vec(any::<u8>(), 0..9),
    ) {
        let pairs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        let mut out = prefix.clone();
        let len = encode(&mut out, EventId::from_bytes(id), time, &topic, key.as_deref(), &pairs, &payload).unwrap();
        prop_assert_eq!(&out[..prefix.len()], &prefix[..]);
        prop_assert_eq!(out.len(), prefix.len() + len);
        let env = Envelope::decode(&out[prefix.len()..]).unwrap();
        prop_assert_eq!(env.id, EventId::from_bytes(id));
        prop_assert_eq!(env.time_us, time);
        prop_assert_eq!(env.topic, topic.as_str());
        prop_assert_eq!(env.key, key.as_deref());
        prop_assert_eq!(env.headers.iter().collect::<Vec<_>>(), pairs);
        prop_assert_eq!(env.payload, &payload[..]);
    }
}

/// splitmix64: a fixed-seed generator so the loop below is reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn two_hundred_thousand_random_byte_strings_are_rejected_without_panicking() {
    let mut rng = SplitMix(0x5345_0001);
    let mut bytes = Vec::new();
    for i in 0..200_000 {
        bytes.clear();
        let len = rng.below(300);
        bytes.extend((0..len).map(|_| rng.next() as u8));
        if i % 2 == 0 && len >= 8 {
            // Half get a plausible prefix so they reach the checksum and beyond.
            // Versions 1 and 2 in turn.
            bytes[..4].copy_from_slice(&[b'S', b'E', 1 + (i / 2 % 2) as u8, 0]);
            bytes[4..8].copy_from_slice(&(len as u32).to_le_bytes());
        }
        // Random bytes pass the CRC with odds of 2^-32; with this seed, none do.
        assert!(
            Envelope::decode(&bytes).is_err(),
            "accepted random bytes {bytes:02x?}"
        );
    }
}

#[test]
fn random_mutations_of_valid_envelopes_are_rejected_or_decode_cleanly() {
    let mut rng = SplitMix(0x5345_0002);
    let mut base = Vec::new();
    let headers: &[(&str, &[u8])] = &[("trace-id", b"abc\0def"), ("schema", b"v3")];
    encode(
        &mut base,
        EventId::generate(1_700_000_000_000_000),
        1_700_000_000_000_000,
        "orders.created",
        Some(b"shop-1"),
        headers,
        b"{\"total\":12.5}",
    )
    .unwrap();
    let mut accepted = 0;
    for _ in 0..200_000 {
        let mut bytes = base.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(4) {
                0 if !bytes.is_empty() => {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                2 => {
                    let at = rng.below(bytes.len() + 1);
                    bytes.insert(at, rng.next() as u8);
                }
                _ if !bytes.is_empty() => {
                    bytes.remove(rng.below(bytes.len()));
                }
                _ => {}
            }
        }
        if let Ok(env) = Envelope::decode(&bytes) {
            // Only possible if the mutations cancelled out.
            assert_eq!(bytes, base, "accepted a mutated envelope: {env:?}");
            accepted += 1;
        }
    }
    assert!(accepted < 1000);
}
